/* verify.c - checking incoming mail on a listener with verify = { ... }: SPF for the MAIL
 * FROM identity, DKIM for every signature, DMARC from those two and the author's policy, and
 * the Authentication-Results field (RFC 8601) that reports them, put on top of the message.
 *
 * Everything runs on the session's worker loop, asynchronously, while the message arrives:
 * SPF starts with the data (MAIL FROM, HELO and the client address are known by then), DKIM
 * keys are looked up as soon as the header section is complete, and only DMARC waits for the
 * end of data (it needs both results). The DNS is the worker's own resolver, created on first
 * use with the delivery section's forwarders. A check is never a reason to refuse a message:
 * the verdict is in the field, for the mailbox software downstream.
 *
 * A check belongs to its transaction: transaction_reset() cancels it (no callback runs), so a
 * session that goes away while its message is being checked leaves nothing behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "ingress/internal.h"

struct auth_verify {
	struct worker *worker;
	unsigned what; /* VERIFY_* */

	struct spf_check *spf; /* in flight */
	bool spf_done;
	enum spf_result spf_result;
	char *spf_resinfo;
	char spf_domain[DNS_NAME_MAX + 1]; /* "" if none */

	struct dkim_verify *dkim; /* its results live as long as it does */
	bool dkim_done;
	struct dkim_results dkim_results; /* its sigs live as long as dkim does */

	/* The header section, for DMARC's From domain: kept until its empty line. */
	char *headers;
	size_t hlen, hcap;
	bool headers_done;

	struct dmarc_check *dmarc;
	char *dmarc_resinfo;
	bool dmarc_starting; /* inside dmarc_check_start(), which may answer at once */

	bool finishing;
	auth_verify_cb *cb;
	void *arg;
};

/* The worker's resolver and lookups, made on first use (on the worker's thread). */
static int
worker_dns(struct worker *w)
{
	const struct delivery_conf *d = &w->gen->cfg->delivery;
	struct dns_options opt = {.timeout_ms = d->dns_timeout_s * 1000};
	char err[256];

	if (w->resolver != NULL)
		return 0;
	opt.forwarders = (const char *const *)d->dns_forwarders;
	opt.latency = w->ingress->metrics.verify_dns;
	w->resolver = dns_resolver_new(w->base, &opt, err, sizeof(err));
	if (w->resolver == NULL) {
		log_error("SMTP thread %u: no resolver for verification: %s", w->index, err);
		return -1;
	}
	spf_dns_use_resolver(&w->spf_dns, w->resolver, w->base);
	dkim_lookup_dns(&w->dkim_lookup, w->resolver);
	return 0;
}

static char *
resinfo_printf(const char *fmt, const char *a, const char *b)
{
	return xasprintf(fmt, a, b);
}

static void verify_maybe_done(struct auth_verify *v);

static void
on_spf(void *arg, const struct spf_outcome *o)
{
	struct auth_verify *v = arg;
	const char *domain = dmarc_spf_domain(o);

	v->spf = NULL;
	v->spf_done = true;
	v->spf_result = o->result;
	v->spf_resinfo = spf_resinfo(o, NULL);
	if (domain != NULL)
		snprintf(v->spf_domain, sizeof(v->spf_domain), "%s", domain);
	verify_maybe_done(v);
}

static void
on_dkim(void *arg, const struct dkim_results *r)
{
	struct auth_verify *v = arg;

	v->dkim_done = true;
	v->dkim_results = *r; /* *r itself is valid only during the call */
	verify_maybe_done(v);
}

static void
on_dmarc(void *arg, const struct dmarc_outcome *o)
{
	struct auth_verify *v = arg;

	v->dmarc = NULL;
	v->dmarc_resinfo = dmarc_resinfo(o);
	if (!v->dmarc_starting)
		verify_maybe_done(v);
}

struct auth_verify *
auth_verify_begin(struct session *s)
{
	struct worker *w = s->worker;
	struct auth_verify *v;
	unsigned what = s->listener->verify;

	if (what == 0)
		return NULL;
	v = xcalloc(1, sizeof(*v));
	v->worker = w;
	v->what = what;
	if (worker_dns(w) < 0) {
		/* Reported as temperror for everything asked: the client's message is not the
		 * problem. */
		v->spf_done = v->dkim_done = true;
		v->spf_result = SPF_TEMPERROR;
		if (what & VERIFY_SPF)
			v->spf_resinfo = xstrdup("spf=temperror reason=\"no resolver\"");
		v->what &= ~(unsigned)(VERIFY_DKIM | VERIFY_DMARC);
		return v;
	}
	if (what & VERIFY_SPF) {
		struct spf_request req = {
		    .scope = SPF_SCOPE_MFROM,
		    .sender = s->txn.sender,
		    .helo = s->helo,
		    .receiver = s->cfg->hostname,
		};

		if (spf_ip_parse(s->peer_ip, &req.ip) == 0) {
			v->spf = spf_check_start(&w->spf_dns, &req, on_spf, v);
		} else {
			v->spf_done = true;
			v->spf_result = SPF_NONE;
			v->spf_resinfo = resinfo_printf("spf=none reason=\"%s%s\"",
			                                "client address not IP: ", s->peer_ip);
		}
	} else {
		v->spf_done = true;
	}
	if (what & VERIFY_DKIM)
		v->dkim = dkim_verify_new(&w->dkim_lookup, NULL);
	else
		v->dkim_done = true;
	return v;
}

/* Keeps the header section (up to DKIM_HEADERS_MAX) for the From domain. */
static void
keep_headers(struct auth_verify *v, const char *p, size_t n)
{
	size_t from = v->hlen >= 3 ? v->hlen - 3 : 0;

	if (v->headers_done)
		return;
	if (v->hlen + n > DKIM_HEADERS_MAX)
		n = DKIM_HEADERS_MAX - v->hlen;
	if (v->hlen + n + 1 > v->hcap) {
		v->hcap = v->hcap ? v->hcap * 2 : 4096;
		while (v->hcap < v->hlen + n + 1)
			v->hcap *= 2;
		v->headers = xrealloc(v->headers, v->hcap);
	}
	memcpy(v->headers + v->hlen, p, n);
	v->hlen += n;
	v->headers[v->hlen] = '\0';
	/* A message that starts with the empty line has no header section at all. */
	if (v->hlen >= 2 && memcmp(v->headers, "\r\n", 2) == 0) {
		v->hlen = 0;
		v->headers_done = true;
		return;
	}
	for (size_t i = from; i + 4 <= v->hlen; i++) {
		if (memcmp(v->headers + i, "\r\n\r\n", 4) == 0) {
			v->hlen = i + 2;
			v->headers_done = true;
			return;
		}
	}
	if (v->hlen >= DKIM_HEADERS_MAX)
		v->headers_done = true;
}

void
auth_verify_update(struct auth_verify *v, const void *data, size_t len)
{
	if (v->dkim != NULL)
		dkim_verify_update(v->dkim, data, len);
	if (v->what & VERIFY_DMARC)
		keep_headers(v, data, len);
}

/* Once SPF and DKIM have answered: DMARC, if asked for. */
static void
start_dmarc(struct auth_verify *v)
{
	const struct dmarc_psl *psl = v->worker->ingress->psl;
	char from[DNS_NAME_MAX + 1], why[256];
	struct dmarc_request req = {
	    .spf = v->spf_result,
	    .spf_domain = v->spf_domain[0] != '\0' ? v->spf_domain : NULL,
	    .dkim = (v->what & VERIFY_DKIM) ? &v->dkim_results : NULL,
	};
	struct dmarc_check *c;

	if (psl == NULL) {
		v->dmarc_resinfo = xstrdup("dmarc=temperror reason=\"no public suffix list\"");
		return;
	}
	if (dmarc_from_domain(v->headers != NULL ? v->headers : "", v->hlen, from, why,
	                      sizeof(why)) != 0) {
		struct dmarc_outcome o;

		memset(&o, 0, sizeof(o));
		o.result = DMARC_PERMERROR;
		o.pct = 100;
		snprintf(o.reason, sizeof(o.reason), "%s", why);
		v->dmarc_resinfo = dmarc_resinfo(&o);
		return;
	}
	v->dmarc_starting = true;
	c = dmarc_check_start(&v->worker->dkim_lookup, psl, from, &req, on_dmarc, v);
	v->dmarc_starting = false;
	if (v->dmarc_resinfo == NULL)
		v->dmarc = c; /* answers later */
}

static void
verify_maybe_done(struct auth_verify *v)
{
	const char *resinfo[2 + DKIM_VERIFY_SIGNATURES_MAX + 1];
	char *dkim[DKIM_VERIFY_SIGNATURES_MAX + 1];
	size_t n = 0, ndkim = 0;
	char *field;

	if (!v->finishing || !v->spf_done || !v->dkim_done)
		return;
	if ((v->what & VERIFY_DMARC) && v->dmarc_resinfo == NULL) {
		if (v->dmarc == NULL)
			start_dmarc(v);
		if (v->dmarc_resinfo == NULL)
			return; /* on_dmarc comes back here */
	}
	if (v->spf_resinfo != NULL)
		resinfo[n++] = v->spf_resinfo;
	if (v->what & VERIFY_DKIM) {
		const struct dkim_results *r = &v->dkim_results;

		if (r->n == 0) {
			dkim[ndkim++] = xstrdup("dkim=none");
		} else {
			for (size_t i = 0; i < r->n && ndkim < nitems(dkim); i++)
				dkim[ndkim++] = dkim_resinfo(&r->sigs[i]);
		}
		for (size_t i = 0; i < ndkim; i++)
			resinfo[n++] = dkim[i];
	}
	if (v->dmarc_resinfo != NULL)
		resinfo[n++] = v->dmarc_resinfo;
	field = auth_results_header(v->worker->gen->cfg->hostname, resinfo, n);
	for (size_t i = 0; i < ndkim; i++)
		free(dkim[i]);
	v->finishing = false;
	/* The callback may free v. */
	v->cb(v->arg, field);
}

void
auth_verify_finish(struct auth_verify *v, auth_verify_cb *cb, void *arg)
{
	v->cb = cb;
	v->arg = arg;
	v->finishing = true;
	if (v->dkim != NULL && !v->dkim_done) {
		dkim_verify_final(v->dkim, on_dkim, v);
		return; /* on_dkim, now or later, goes on */
	}
	verify_maybe_done(v);
}

void
auth_verify_free(struct auth_verify *v)
{
	if (v == NULL)
		return;
	if (v->spf != NULL)
		spf_check_cancel(v->spf);
	if (v->dmarc != NULL)
		dmarc_check_cancel(v->dmarc);
	dkim_verify_free(v->dkim);
	free(v->spf_resinfo);
	free(v->dmarc_resinfo);
	free(v->headers);
	free(v);
}
