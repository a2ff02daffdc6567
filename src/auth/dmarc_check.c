/* dmarc_check.c - policy discovery (RFC 7489 §6.6.3), a small state machine over at most two
 * asynchronous TXT lookups, and the evaluation of a policy against what SPF and DKIM said
 * (§6.6.2, §6.6.4), which is pure. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "auth/dmarc_internal.h"
#include "core/core.h"

/* ---- A table lookup that answers every record of a name ---- */

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
	struct dns_txt_record *recs;
	size_t n = 0;

	for (size_t i = 0; pairs[i] != NULL; i += 2)
		n += name_eq(pairs[i], name);
	recs = xcalloc(n ? n : 1, sizeof(*recs));
	n = 0;
	for (size_t i = 0; pairs[i] != NULL; i += 2) {
		if (!name_eq(pairs[i], name))
			continue;
		if (pairs[i + 1] == NULL) {
			a = (struct dkim_lookup_answer){.status = DKIM_LOOKUP_TEMPFAIL,
			                                .error = "temporary failure (table)"};
			n = 0;
			break;
		}
		recs[n++] = (struct dns_txt_record){pairs[i + 1], strlen(pairs[i + 1])};
		a = (struct dkim_lookup_answer){.status = DKIM_LOOKUP_OK, .records = recs};
	}
	a.nrecords = n;
	done(token, &a);
	free(recs);
	return NULL;
}

void
dmarc_lookup_table(struct dkim_lookup *l, const char *const *pairs)
{
	*l = (struct dkim_lookup){.start = table_start, .cancel = NULL, .arg = (void *)pairs};
}

/* ---- Discovery ---- */

enum stage { ASK_FROM, ASK_ORG, DONE };

struct dmarc_check {
	struct dkim_lookup lookup;
	const struct dmarc_psl *psl;
	enum stage stage;
	struct dmarc_policy pol;
	/* A lookup in flight: waiting until it answers; gen tells a lookup that answered inside
	 * start() (and perhaps started the next one) from the one whose handle start() returns. */
	bool waiting;
	unsigned gen;
	void *handle;
	/* Calls into this check on the stack (start, answers): the callback runs, and the check
	 * is freed, only when the last one returns, so no frame is left holding a freed check. */
	unsigned depth;
	bool delivering;
	/* Whose callback: a policy lookup's, or a check's (with what to evaluate). */
	dmarc_policy_cb *policy_cb;
	dmarc_check_cb *check_cb;
	void *arg;
	struct dmarc_request req;
	struct dkim_results dkim;
	struct dkim_sig_result *sigs;
	char spf_domain[DNS_NAME_MAX + 2]; /* a trailing dot too */
};

static void __attribute__((format(printf, 3, 4)))
finish(struct dmarc_check *c, enum dmarc_discovery status, const char *fmt, ...)
{
	va_list ap;

	c->pol.status = status;
	c->stage = DONE;
	va_start(ap, fmt);
	vsnprintf(c->pol.reason, sizeof(c->pol.reason), fmt, ap);
	va_end(ap);
}

static void ask(struct dmarc_check *, const char *domain);
static void deliver(struct dmarc_check *);

static void
on_answer(void *token, const struct dkim_lookup_answer *a)
{
	struct dmarc_check *c = token;
	const char *domain = c->stage == ASK_FROM ? c->pol.from_domain : c->pol.org_domain;
	const struct dns_txt_record *rec = NULL;
	size_t n = 0;
	char why[256];

	c->depth++;
	c->waiting = false;
	c->handle = NULL;
	if (a->status == DKIM_LOOKUP_TEMPFAIL) {
		finish(c, DMARC_TEMPFAIL, "_dmarc.%s: %s", domain,
		       a->error != NULL ? a->error : "temporary DNS failure");
		goto out;
	}
	if (a->status == DKIM_LOOKUP_OK) {
		/* §6.6.3 step 2: TXT records that do not start with v=DMARC1 are not there. */
		for (size_t i = 0; i < a->nrecords; i++) {
			if (dmarc_version_len(a->records[i].text, a->records[i].len) > 0) {
				rec = &a->records[i];
				n++;
			}
		}
	}
	if (n > 1) {
		finish(c, DMARC_ABSENT,
		       "%zu DMARC records at _dmarc.%s (RFC 7489 §6.6.3: none applies)", n, domain);
		goto out;
	}
	if (n == 1) {
		snprintf(c->pol.domain, sizeof(c->pol.domain), "%s", domain);
		c->pol.subdomain = c->stage == ASK_ORG;
		if (dmarc_record_parse(rec->text, rec->len, &c->pol.record, why, sizeof(why)) < 0) {
			finish(c, DMARC_INVALID, "_dmarc.%s: %s", domain, why);
			goto out;
		}
		finish(c, DMARC_FOUND, "policy at _dmarc.%s%s%s", domain,
		       c->pol.record.p_fallback ? ": " : "", c->pol.record.p_fallback ? why : "");
		goto out;
	}
	if (c->stage == ASK_FROM && strcmp(c->pol.org_domain, c->pol.from_domain) != 0) {
		c->stage = ASK_ORG;
		ask(c, c->pol.org_domain);
		goto out;
	}
	if (c->stage == ASK_FROM)
		finish(c, DMARC_ABSENT, "no DMARC record at _dmarc.%s", c->pol.from_domain);
	else
		finish(c, DMARC_ABSENT, "no DMARC record at _dmarc.%s or _dmarc.%s",
		       c->pol.from_domain, c->pol.org_domain);
out:
	c->depth--;
	if (c->depth == 0 && c->stage == DONE)
		deliver(c);
}

static void
ask(struct dmarc_check *c, const char *domain)
{
	char name[DNS_NAME_MAX + 8];
	unsigned gen = ++c->gen;
	void *h;

	/* "_dmarc." and a name of over 246 octets is no name the DNS can carry: nothing there. */
	if (strlen(domain) + 7 > DNS_NAME_MAX) {
		struct dkim_lookup_answer a = {.status = DKIM_LOOKUP_NOTFOUND};

		on_answer(c, &a);
		return;
	}
	snprintf(name, sizeof(name), "_dmarc.%s", domain);
	c->waiting = true;
	h = c->lookup.start(c->lookup.arg, name, on_answer, c);
	if (c->waiting && c->gen == gen)
		c->handle = h;
}

static void
deliver(struct dmarc_check *c)
{
	c->delivering = true;
	if (c->policy_cb != NULL) {
		c->policy_cb(c->arg, &c->pol);
	} else {
		struct dmarc_outcome o;

		dmarc_evaluate(c->psl, &c->pol, &c->req, &o);
		c->check_cb(c->arg, &o);
	}
	free(c->sigs);
	free(c);
}

static struct dmarc_check *
start(struct dmarc_check *c, const char *from_domain)
{
	c->depth = 1; /* no callback before this returns to the caller */
	c->stage = ASK_FROM;
	if (dmarc_domain_norm(from_domain, c->pol.from_domain) != 0) {
		char shown[68];
		size_t n = 0;

		/* Whatever the caller passed, the reason goes to logs and headers: printable. */
		for (const char *p = from_domain; p != NULL && *p != '\0' && n < 64; p++)
			shown[n++] = *p >= 0x20 && *p < 0x7f && *p != '"' ? *p : '?';
		shown[n] = '\0';
		finish(c, DMARC_INVALID, "From domain \"%s\" is not a domain name", shown);
		c->pol.from_domain[0] = '\0';
	} else {
		dmarc_org_domain(c->psl, c->pol.from_domain, c->pol.org_domain);
		ask(c, c->pol.from_domain);
	}
	c->depth--;
	if (c->stage == DONE) {
		deliver(c);
		return NULL;
	}
	return c;
}

struct dmarc_check *
dmarc_policy_lookup(const struct dkim_lookup *lookup, const struct dmarc_psl *psl,
                    const char *from_domain, dmarc_policy_cb *cb, void *arg)
{
	struct dmarc_check *c = xcalloc(1, sizeof(*c));

	c->lookup = *lookup;
	c->psl = psl;
	c->policy_cb = cb;
	c->arg = arg;
	return start(c, from_domain);
}

struct dmarc_check *
dmarc_check_start(const struct dkim_lookup *lookup, const struct dmarc_psl *psl,
                  const char *from_domain, const struct dmarc_request *req, dmarc_check_cb *cb,
                  void *arg)
{
	struct dmarc_check *c = xcalloc(1, sizeof(*c));

	c->lookup = *lookup;
	c->psl = psl;
	c->check_cb = cb;
	c->arg = arg;
	c->req = *req;
	/* The request's strings and results belong to the caller, who may free them before the
	 * lookups answer: keep what the evaluation reads. */
	c->req.spf_domain = NULL;
	if (req->spf_domain != NULL) {
		/* Cut, a name too long to be one could turn into one that aligns: keep it
		 * unalignable instead. */
		if (strlen(req->spf_domain) < sizeof(c->spf_domain))
			snprintf(c->spf_domain, sizeof(c->spf_domain), "%s", req->spf_domain);
		else
			snprintf(c->spf_domain, sizeof(c->spf_domain), "%s", "..");
		c->req.spf_domain = c->spf_domain;
	}
	c->req.dkim = NULL;
	if (req->dkim != NULL) {
		c->dkim.n = req->dkim->n;
		if (req->dkim->n > 0) {
			c->sigs = xcalloc(req->dkim->n, sizeof(*c->sigs));
			memcpy(c->sigs, req->dkim->sigs, req->dkim->n * sizeof(*c->sigs));
		}
		c->dkim.sigs = c->sigs;
		c->req.dkim = &c->dkim;
	}
	return start(c, from_domain);
}

void
dmarc_check_cancel(struct dmarc_check *c)
{
	if (c == NULL || c->delivering)
		return;
	if (c->waiting && c->handle != NULL && c->lookup.cancel != NULL)
		c->lookup.cancel(c->lookup.arg, c->handle);
	free(c->sigs);
	free(c);
}

/* ---- Evaluation ---- */

static unsigned
roll(unsigned given)
{
	uint32_t r = 0;

	if (given >= 1 && given <= 100)
		return given;
	/* A short read leaves r as it was; sampling is a policy knob, not a secret. */
	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)time_mono_us();
	return 1 + r % 100;
}

static enum dmarc_p
one_down(enum dmarc_p p)
{
	return p == DMARC_P_REJECT ? DMARC_P_QUARANTINE : DMARC_P_NONE;
}

static const char *
mode_name(enum dmarc_align m)
{
	return m == DMARC_ALIGN_STRICT ? "strict" : "relaxed";
}

void
dmarc_evaluate(const struct dmarc_psl *psl, const struct dmarc_policy *pol,
               const struct dmarc_request *req, struct dmarc_outcome *o)
{
	const struct dmarc_record *rec = &pol->record;
	const char *spf_dom = req->spf_domain;
	char dkim_seen[DNS_NAME_MAX + 1] = "";
	size_t r = 0;

	*o = (struct dmarc_outcome){.pct = DMARC_PCT_DEFAULT};
	memcpy(o->from_domain, pol->from_domain, sizeof(o->from_domain));
	memcpy(o->policy_domain, pol->domain, sizeof(o->policy_domain));
	if (pol->status != DMARC_FOUND) {
		o->result = pol->status == DMARC_TEMPFAIL  ? DMARC_TEMPERROR
		            : pol->status == DMARC_INVALID ? DMARC_PERMERROR
		                                           : DMARC_NONE;
		memcpy(o->reason, pol->reason, sizeof(o->reason));
		return;
	}
	o->subdomain = pol->subdomain;
	o->policy = pol->subdomain ? rec->sp : rec->p;
	o->pct = rec->pct;
	snprintf(o->record_p, sizeof(o->record_p), "%s", dmarc_p_name(rec->p));

	if (req->spf == SPF_PASS && spf_dom != NULL &&
	    dmarc_aligned(psl, rec->aspf, pol->from_domain, spf_dom)) {
		o->spf_aligned = true;
		dmarc_domain_norm(spf_dom, o->spf_domain);
	}
	for (size_t i = 0; req->dkim != NULL && i < req->dkim->n; i++) {
		const struct dkim_sig_result *s = &req->dkim->sigs[i];

		if (s->result != DKIM_RESULT_PASS)
			continue;
		if (dmarc_aligned(psl, rec->adkim, pol->from_domain, s->domain)) {
			o->dkim_aligned = true;
			dmarc_domain_norm(s->domain, o->dkim_domain);
			break;
		}
		if (dkim_seen[0] == '\0')
			snprintf(dkim_seen, sizeof(dkim_seen), "%s", s->domain);
	}

	if (o->spf_aligned || o->dkim_aligned) {
		o->result = DMARC_PASS;
		o->disposition = DMARC_P_NONE;
		if (o->dkim_aligned)
			r += (size_t)snprintf(o->reason, sizeof(o->reason),
			                      "DKIM pass for d=%s aligns (%s)", o->dkim_domain,
			                      mode_name(rec->adkim));
		if (o->spf_aligned && r < sizeof(o->reason))
			snprintf(o->reason + r, sizeof(o->reason) - r,
			         "%sSPF pass for %s aligns (%s)", r > 0 ? "; " : "", o->spf_domain,
			         mode_name(rec->aspf));
		return;
	}

	o->result = DMARC_FAIL;
	o->disposition = roll(req->pct_roll) <= rec->pct ? o->policy : one_down(o->policy);
	/* Say what did pass, since that is what its owner must align. */
	if (req->spf == SPF_PASS && spf_dom != NULL)
		r += (size_t)snprintf(o->reason, sizeof(o->reason),
		                      "SPF pass for %.253s does not align (%s)", spf_dom,
		                      mode_name(rec->aspf));
	else
		r += (size_t)snprintf(o->reason, sizeof(o->reason), "no SPF pass");
	if (r < sizeof(o->reason)) {
		if (dkim_seen[0] != '\0')
			snprintf(o->reason + r, sizeof(o->reason) - r,
			         "; DKIM pass for d=%s does not align (%s)", dkim_seen,
			         mode_name(rec->adkim));
		else
			snprintf(o->reason + r, sizeof(o->reason) - r, "; no DKIM pass");
	}
	if (o->disposition != o->policy) {
		r = strlen(o->reason);
		if (r < sizeof(o->reason))
			snprintf(o->reason + r, sizeof(o->reason) - r,
			         "; pct=%u left this message out", rec->pct);
	}
}
