/* dkim_verify.c - verifying the DKIM signatures of a received message (RFC 6376 §6).
 *
 * The message streams in as for signing. When its header section is complete, every
 * DKIM-Signature (up to the limit) is parsed and checked for what needs no key (syntax,
 * algorithm, expiry), its body hash starts, and its key lookup starts, so the DNS works
 * while the body arrives. The results come when the message has ended and every key has
 * answered. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

struct vsig {
	struct dkim_verify *v;
	size_t field; /* its DKIM-Signature field in the message */
	struct dkim_sig sig;
	struct dkim_sig_result *res;
	bool decided; /* the result is known without a key (or the key settled it) */
	bool body_on;
	struct dkim_body body;
	unsigned char bh[DKIM_HASH_LEN];
	bool waiting; /* for the key */
	void *handle;
	bool key_ok;
	struct dkim_keyrec key;
};

struct dkim_verify {
	struct dkim_lookup lookup;
	unsigned max;
	uint64_t now;
	uint64_t skew;
	struct dkim_msg msg;
	bool headers_done;
	struct vsig *sigs;
	size_t nsigs;
	struct dkim_sig_result *results;
	size_t nresults;
	unsigned pending; /* lookups in flight */
	bool finaled, reported;
	dkim_verify_cb *cb;
	void *arg;
};

struct dkim_verify *
dkim_verify_new(const struct dkim_lookup *lookup, const struct dkim_verify_options *opt)
{
	struct dkim_verify *v = xcalloc(1, sizeof(*v));

	v->lookup = *lookup;
	v->max = opt && opt->max_signatures ? opt->max_signatures : DKIM_VERIFY_SIGNATURES_MAX;
	v->now = opt && opt->now_s ? opt->now_s : (uint64_t)time(NULL);
	v->skew = !opt || opt->clock_skew_s == 0 ? DKIM_VERIFY_CLOCK_SKEW_S
	          : opt->clock_skew_s < 0        ? 0
	                                         : (uint64_t)opt->clock_skew_s;
	dkim_msg_init(&v->msg);
	return v;
}

static void __attribute__((format(printf, 3, 4)))
decide(struct vsig *vs, enum dkim_result r, const char *fmt, ...)
{
	va_list ap;

	vs->decided = true;
	vs->res->result = r;
	va_start(ap, fmt);
	vsnprintf(vs->res->reason, sizeof(vs->res->reason), fmt, ap);
	va_end(ap);
}

static void maybe_report(struct dkim_verify *);

static void
on_key(void *token, const struct dkim_lookup_answer *a)
{
	struct vsig *vs = token;
	struct dkim_verify *v = vs->v;
	char why[160] = "", first[160] = "";

	vs->waiting = false;
	vs->handle = NULL;
	v->pending--;
	if (a->status == DKIM_LOOKUP_TEMPFAIL) {
		decide(vs, DKIM_RESULT_TEMPERROR, "key lookup failed: %s",
		       a->error ? a->error : "temporary DNS failure");
	} else if (a->status != DKIM_LOOKUP_OK || a->nrecords == 0) {
		decide(vs, DKIM_RESULT_PERMERROR, "no key at %s._domainkey.%s", vs->sig.selector,
		       vs->sig.domain);
	} else {
		/* Several records at one name are a zone error (RFC 6376 §3.6.2.2); the
		 * first that is a key record serves. */
		for (size_t i = 0; i < a->nrecords && !vs->key_ok; i++) {
			if (dkim_keyrec_parse(a->records[i].text, a->records[i].len, &vs->key, why,
			                      sizeof(why)) == 0)
				vs->key_ok = true;
			else if (first[0] == '\0')
				snprintf(first, sizeof(first), "%s", why);
		}
		if (!vs->key_ok)
			decide(vs, DKIM_RESULT_PERMERROR, "%s", first);
		else if (vs->key.revoked)
			decide(vs, DKIM_RESULT_PERMERROR, "key revoked (empty p=)");
		else {
			vs->res->key_bits = vs->key.bits;
			vs->res->testing = vs->key.testing;
		}
	}
	maybe_report(v);
}

static void
start_lookup(struct dkim_verify *v, struct vsig *vs)
{
	char name[DKIM_SELECTOR_MAX + DNS_NAME_MAX + 16];
	void *h;

	snprintf(name, sizeof(name), "%s._domainkey.%s", vs->sig.selector, vs->sig.domain);
	if (strlen(name) > DNS_NAME_MAX) {
		decide(vs, DKIM_RESULT_PERMERROR, "s= and d= make a name too long for the DNS");
		return;
	}
	vs->waiting = true;
	v->pending++;
	h = v->lookup.start(v->lookup.arg, name, on_key, vs);
	if (vs->waiting)
		vs->handle = h; /* else it answered already */
}

static void
fill_names(struct dkim_sig_result *r, const struct dkim_sig *sig)
{
	snprintf(r->domain, sizeof(r->domain), "%s", sig->domain);
	snprintf(r->selector, sizeof(r->selector), "%s", sig->selector);
	snprintf(r->identity, sizeof(r->identity), "%s", sig->identity);
	snprintf(r->algorithm, sizeof(r->algorithm), "%s", sig->algorithm);
	snprintf(r->b, sizeof(r->b), "%s", sig->bprefix);
}

static void
on_headers(struct dkim_verify *v)
{
	size_t count = 0, k = 0;
	char why[160];

	v->headers_done = true;
	dkim_msg_end_headers(&v->msg);
	if (v->msg.overflow) {
		v->results = xcalloc(1, sizeof(*v->results));
		v->nresults = 1;
		v->results[0].result = DKIM_RESULT_PERMERROR;
		snprintf(v->results[0].reason, sizeof(v->results[0].reason),
		         "header section larger than %d octets", DKIM_HEADERS_MAX);
		return;
	}
	count = dkim_msg_count(&v->msg, "dkim-signature");
	if (count == 0)
		return;
	v->results = xcalloc(count, sizeof(*v->results));
	v->nresults = count;
	v->sigs = xcalloc(count < v->max ? count : v->max, sizeof(*v->sigs));

	/* Parse them all first: lookups may answer at once, and need the array complete. */
	for (size_t i = 0; i < v->msg.nfields; i++) {
		const struct dkim_field *f = &v->msg.fields[i];
		struct dkim_sig_result *r;

		if (!dkim_field_is(&v->msg, f, "dkim-signature"))
			continue;
		r = &v->results[k++];
		if (k > v->max) {
			struct dkim_sig tmp;
			dkim_sig_parse(v->msg.hdr.p + f->off, f->len, &tmp, why, sizeof(why));
			fill_names(r, &tmp);
			dkim_sig_free(&tmp);
			r->result = DKIM_RESULT_NEUTRAL;
			snprintf(r->reason, sizeof(r->reason),
			         "not verified: more than %u signatures", v->max);
			continue;
		}
		struct vsig *vs = &v->sigs[v->nsigs++];
		vs->v = v;
		vs->field = i;
		vs->res = r;
		if (dkim_sig_parse(v->msg.hdr.p + f->off, f->len, &vs->sig, why, sizeof(why)) < 0)
			decide(vs, DKIM_RESULT_PERMERROR, "%s", why);
		fill_names(r, &vs->sig);
		if (vs->decided)
			continue;
		if (vs->sig.has_x && vs->sig.x + v->skew < v->now)
			decide(vs, DKIM_RESULT_FAIL, "signature expired (x=%llu)",
			       (unsigned long long)vs->sig.x);
		else if (vs->sig.has_t && vs->sig.t > v->now + v->skew)
			decide(vs, DKIM_RESULT_PERMERROR, "signature time t= is in the future");
		if (vs->decided)
			continue;
		dkim_body_init(&vs->body, vs->sig.bcanon, vs->sig.has_l ? vs->sig.l : UINT64_MAX);
		vs->body_on = true;
	}
	for (size_t j = 0; j < v->nsigs; j++)
		if (!v->sigs[j].decided)
			start_lookup(v, &v->sigs[j]);
}

void
dkim_verify_update(struct dkim_verify *v, const void *data, size_t len)
{
	const char *p = data;

	if (v->finaled)
		return;
	if (!v->headers_done) {
		size_t took = dkim_msg_headers(&v->msg, p, len);

		if (!v->msg.done)
			return;
		on_headers(v);
		p += took;
		len -= took;
	}
	for (size_t i = 0; i < v->nsigs; i++)
		if (v->sigs[i].body_on)
			dkim_body_update(&v->sigs[i].body, p, len);
}

/* The checks that need the key, the body hash and the header hash. */
static void
evaluate(struct dkim_verify *v, struct vsig *vs)
{
	const struct dkim_sig *sig = &vs->sig;
	const struct dkim_field *f = &v->msg.fields[vs->field];
	const char *raw = v->msg.hdr.p + f->off;
	struct dbuf data = {0};

	if (vs->key.alg != sig->alg) {
		decide(vs, DKIM_RESULT_PERMERROR, "key type %s does not match a=%s",
		       vs->key.alg == DKIM_ED25519_SHA256 ? "ed25519" : "rsa", sig->algorithm);
		return;
	}
	if (sig->alg == DKIM_RSA_SHA256 && vs->key.bits < DKIM_RSA_BITS_MIN) {
		decide(vs, DKIM_RESULT_PERMERROR, "%u-bit RSA key: shorter than %d bits (RFC 8301)",
		       vs->key.bits, DKIM_RSA_BITS_MIN);
		return;
	}
	if (vs->key.strict) {
		const char *at = strrchr(sig->identity, '@');
		if (at == NULL || strcasecmp(at + 1, sig->domain) != 0) {
			decide(vs, DKIM_RESULT_PERMERROR,
			       "i= is below d= but the key allows d= only (t=s)");
			return;
		}
	}
	if (sig->has_l && vs->body.total < sig->l) {
		decide(vs, DKIM_RESULT_FAIL, "body shorter than l=%llu",
		       (unsigned long long)sig->l);
		return;
	}
	if (memcmp(vs->bh, sig->bh, DKIM_HASH_LEN) != 0) {
		decide(vs, DKIM_RESULT_FAIL, "body hash did not verify");
		return;
	}
	/* The fields h= names, then this one with b='s value taken out (RFC 6376 §3.7). */
	dkim_msg_select(&v->msg, sig->h, sig->nh, sig->hcanon, &data);
	char *self = xmalloc(f->len - (sig->b_end - sig->b_start) + 1);
	memcpy(self, raw, sig->b_start);
	memcpy(self + sig->b_start, raw + sig->b_end, f->len - sig->b_end);
	dkim_canon_header(sig->hcanon, self, f->len - (sig->b_end - sig->b_start), false, &data);
	free(self);
	if (dkim_crypto_verify(vs->key.pkey, sig->alg, &data, sig->b, sig->blen) == 0) {
		vs->decided = true;
		vs->res->result = DKIM_RESULT_PASS;
		vs->res->reason[0] = '\0';
	} else
		decide(vs, DKIM_RESULT_FAIL, "signature did not verify");
	dbuf_free(&data);
}

static void
maybe_report(struct dkim_verify *v)
{
	if (v->reported || !v->finaled || v->pending > 0)
		return;
	v->reported = true;
	for (size_t i = 0; i < v->nsigs; i++)
		if (!v->sigs[i].decided && v->sigs[i].key_ok)
			evaluate(v, &v->sigs[i]);
	struct dkim_results res = {.n = v->nresults, .sigs = v->results};
	v->cb(v->arg, &res); /* last: it may free v */
}

void
dkim_verify_final(struct dkim_verify *v, dkim_verify_cb *cb, void *arg)
{
	if (v->finaled)
		return;
	v->cb = cb;
	v->arg = arg;
	if (!v->headers_done)
		on_headers(v); /* a message without a body */
	for (size_t i = 0; i < v->nsigs; i++) {
		if (v->sigs[i].body_on) {
			dkim_body_final(&v->sigs[i].body, v->sigs[i].bh);
		}
	}
	v->finaled = true;
	maybe_report(v);
}

void
dkim_verify_free(struct dkim_verify *v)
{
	if (v == NULL)
		return;
	for (size_t i = 0; i < v->nsigs; i++) {
		struct vsig *vs = &v->sigs[i];

		if (vs->waiting && vs->handle != NULL && v->lookup.cancel != NULL)
			v->lookup.cancel(v->lookup.arg, vs->handle);
		if (vs->body_on)
			dkim_body_free(&vs->body);
		dkim_keyrec_free(&vs->key);
		dkim_sig_free(&vs->sig);
	}
	free(v->sigs);
	free(v->results);
	dkim_msg_free(&v->msg);
	free(v);
}

/* ---- Key lookups ---- */

struct dns_pending {
	struct dns_query *q;
	dkim_lookup_done *done;
	void *token;
};

static void
dns_answer(void *arg, const struct dns_txt_result *r)
{
	struct dns_pending *p = arg;
	dkim_lookup_done *done = p->done;
	void *token = p->token;
	struct dkim_lookup_answer a = {
	    .status = r->status == DNS_OK         ? DKIM_LOOKUP_OK
	              : r->status == DNS_TEMPFAIL ? DKIM_LOOKUP_TEMPFAIL
	                                          : DKIM_LOOKUP_NOTFOUND,
	    .records = r->records,
	    .nrecords = r->nrecords,
	    .error = r->error,
	};

	free(p);
	done(token, &a);
}

static void *
dns_start(void *arg, const char *name, dkim_lookup_done *done, void *token)
{
	struct dns_pending *p = xmalloc(sizeof(*p));

	p->done = done;
	p->token = token;
	p->q = dns_txt(arg, name, dns_answer, p); /* answers later, never from here */
	return p;
}

static void
dns_stop(void *arg, void *handle)
{
	struct dns_pending *p = handle;

	dns_cancel(p->q);
	free(p);
}

void
dkim_lookup_dns(struct dkim_lookup *l, struct dns_resolver *r)
{
	*l = (struct dkim_lookup){.start = dns_start, .cancel = dns_stop, .arg = r};
}

static bool
name_eq(const char *a, const char *b)
{
	size_t al = strlen(a), bl = strlen(b);

	if (al > 0 && a[al - 1] == '.')
		al--;
	if (bl > 0 && b[bl - 1] == '.')
		bl--;
	return ascii_caseeq(a, al, b, bl);
}

static void *
table_start(void *arg, const char *name, dkim_lookup_done *done, void *token)
{
	const char *const *pairs = arg;
	struct dkim_lookup_answer a = {.status = DKIM_LOOKUP_NOTFOUND, .error = "not in the table"};
	struct dns_txt_record rec;

	for (size_t i = 0; pairs[i] != NULL; i += 2) {
		if (!name_eq(pairs[i], name))
			continue;
		if (pairs[i + 1] == NULL) {
			a = (struct dkim_lookup_answer){.status = DKIM_LOOKUP_TEMPFAIL,
			                                .error = "temporary failure (table)"};
		} else {
			rec = (struct dns_txt_record){pairs[i + 1], strlen(pairs[i + 1])};
			a = (struct dkim_lookup_answer){
			    .status = DKIM_LOOKUP_OK, .records = &rec, .nrecords = 1};
		}
		break;
	}
	done(token, &a);
	return NULL;
}

void
dkim_lookup_table(struct dkim_lookup *l, const char *const *pairs)
{
	*l = (struct dkim_lookup){.start = table_start, .cancel = NULL, .arg = (void *)pairs};
}
