/* preflight.c - the checks of preflight.h: one run is a small state machine on an event loop.
 *
 * The source's address (when a name is given) comes first, because SPF needs it; then every
 * lookup starts at once: SPF's check_host(), the domain's TXT records (to quote the SPF
 * record in a fix), one TXT lookup per configured key, and DMARC policy discovery. When the
 * last answer is in, DMARC is evaluated as a receiver would (dmarc_evaluate) from what was
 * found: a key published as configured counts as a DKIM pass for its d=, and the From address
 * is taken as the envelope sender too (what a sender sets up to align SPF).
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "core/core.h"
#include "dns/dns.h"
#include "preflight/preflight.h"

enum key_state { KEY_PENDING, KEY_MATCH, KEY_MISSING, KEY_DIFFERENT, KEY_TEMPFAIL, KEY_BAD };

struct key_check {
	const struct dkim_key_conf *conf;
	char *expected;  /* the record that publishes the configured key */
	char *zone_line; /* the same as a zone file line */
	enum key_state state;
	char why[320];
	struct run *run;
};

struct run {
	struct event_base *base;
	struct dns_resolver *resolver;
	struct spf_dns spf_dns;
	struct dkim_lookup lookup;
	struct dmarc_psl *psl;
	const struct config *cfg;
	const char *const *key_records, *const *key_errors;
	preflight_cb *cb;
	void *arg;
	unsigned pending;

	char from[512];
	char domain[DNS_NAME_MAX + 1];
	char source_name[256];
	struct dns_address source;
	bool have_source;
	char source_error[256];

	bool spf_done;
	enum spf_result spf_result;
	char spf_reason[384];
	char spf_explanation[256];
	char spf_record[1024]; /* the v=spf1 record as published, "" if none */
	unsigned spf_records;
	bool txt_tempfail;

	struct key_check keys[DKIM_SIGNERS_MAX];
	size_t nkeys, nkeys_covering;

	struct dmarc_policy policy;
	bool policy_done;

	struct preflight_report rep;
};

/* snprintf() for the report's texts: they are cut where the buffer ends, by design (a DNS
 * record quoted in a fix can be long). */
static void say(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void
say(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

const char *
preflight_verdict_name(enum preflight_verdict v)
{
	switch (v) {
	case PREFLIGHT_PASS:
		return "pass";
	case PREFLIGHT_WARN:
		return "warn";
	default:
		return "FAIL";
	}
}

static struct preflight_finding *
finding(struct run *r, const char *check, enum preflight_verdict v)
{
	struct preflight_finding *f;

	if (r->rep.n == PREFLIGHT_FINDINGS_MAX)
		return &r->rep.findings[PREFLIGHT_FINDINGS_MAX - 1];
	f = &r->rep.findings[r->rep.n++];
	memset(f, 0, sizeof(*f));
	f->check = check;
	f->verdict = v;
	if (v == PREFLIGHT_FAIL)
		r->rep.failures++;
	else if (v == PREFLIGHT_WARN)
		r->rep.warnings++;
	return f;
}

/* The value of tag name in a DKIM tag list, white space removed, into out. 0 or -1. */
static int
tag_value(const char *list, const char *name, char *out, size_t size)
{
	size_t nlen = strlen(name);
	const char *p = list;

	while (*p != '\0') {
		const char *end = strchr(p, ';'), *q;
		size_t o = 0;

		if (end == NULL)
			end = p + strlen(p);
		while (p < end && isspace((unsigned char)*p))
			p++;
		q = p;
		while (q < end && !isspace((unsigned char)*q) && *q != '=')
			q++;
		if ((size_t)(q - p) == nlen && strncasecmp(p, name, nlen) == 0) {
			while (q < end && *q != '=')
				q++;
			for (q++; q < end && o + 1 < size; q++)
				if (!isspace((unsigned char)*q))
					out[o++] = *q;
			out[o] = '\0';
			return 0;
		}
		p = *end == ';' ? end + 1 : end;
	}
	return -1;
}

/* ---- SPF ---- */

static void
spf_findings(struct run *r)
{
	struct preflight_finding *f;
	char src[INET6_ADDRSTRLEN];
	const char *mech;

	if (r->have_source)
		dns_address_str(&r->source, src, sizeof(src));
	mech = r->have_source && r->source.family == AF_INET6 ? "ip6" : "ip4";
	if (!r->have_source) {
		if (r->spf_records == 1) {
			char why[256];

			if (spf_record_check(r->spf_record, strlen(r->spf_record), why,
			                     sizeof(why)) < 0) {
				f = finding(r, "SPF", PREFLIGHT_FAIL);
				say(f->text, sizeof(f->text),
				    "%s publishes an invalid SPF record: %s", r->domain, why);
				say(f->fix, sizeof(f->fix), "correct TXT %s \"%s\"", r->domain,
				    r->spf_record);
				return;
			}
			f = finding(r, "SPF", PREFLIGHT_WARN);
			say(f->text, sizeof(f->text),
			    "%s publishes \"%s\"%s%s; give --source to check a sending address",
			    r->domain, r->spf_record, r->source_error[0] ? ": " : "",
			    r->source_error);
			return;
		}
		f = finding(r, r->txt_tempfail ? "SPF" : "SPF",
		            r->txt_tempfail ? PREFLIGHT_WARN : PREFLIGHT_FAIL);
		if (r->txt_tempfail)
			say(f->text, sizeof(f->text), "the TXT lookup for %s failed; try again",
			    r->domain);
		else if (r->spf_records > 1)
			say(f->text, sizeof(f->text),
			    "%s publishes %u SPF records: receivers answer permerror", r->domain,
			    r->spf_records);
		else
			say(f->text, sizeof(f->text), "%s publishes no SPF record", r->domain);
		if (!r->txt_tempfail)
			say(f->fix, sizeof(f->fix),
			    "publish one TXT %s \"v=spf1 %s:<your sending address> ~all\"",
			    r->domain, mech);
		return;
	}
	switch (r->spf_result) {
	case SPF_PASS:
		f = finding(r, "SPF", PREFLIGHT_PASS);
		say(f->text, sizeof(f->text), "%s authorizes %s (%s)", r->domain, src,
		    r->spf_reason);
		return;
	case SPF_TEMPERROR:
		f = finding(r, "SPF", PREFLIGHT_WARN);
		say(f->text, sizeof(f->text), "temperror: %s; try again", r->spf_reason);
		return;
	case SPF_PERMERROR:
		f = finding(r, "SPF", PREFLIGHT_FAIL);
		say(f->text, sizeof(f->text), "permerror: %s", r->spf_reason);
		if (r->spf_record[0] != '\0')
			say(f->fix, sizeof(f->fix), "correct TXT %s \"%s\"", r->domain,
			    r->spf_record);
		return;
	case SPF_NONE:
		f = finding(r, "SPF", PREFLIGHT_FAIL);
		say(f->text, sizeof(f->text), "none: %s", r->spf_reason);
		say(f->fix, sizeof(f->fix), "publish TXT %s \"v=spf1 %s:%s ~all\"", r->domain, mech,
		    src);
		return;
	default:
		f = finding(r, "SPF", PREFLIGHT_FAIL);
		say(f->text, sizeof(f->text), "%s: %s does not authorize %s (%s)",
		    spf_result_name(r->spf_result), r->domain, src, r->spf_reason);
		/* The fix: the same record with this address added after the version. */
		if (r->spf_records == 1 && strncasecmp(r->spf_record, "v=spf1", 6) == 0)
			say(f->fix, sizeof(f->fix), "change TXT %s to \"v=spf1 %s:%s%s\"",
			    r->domain, mech, src, r->spf_record + 6);
		else
			say(f->fix, sizeof(f->fix),
			    "authorize %s:%s in the SPF record of %s (or of the domain it "
			    "includes)",
			    mech, src, r->domain);
		return;
	}
}

/* ---- DKIM ---- */

static void
key_findings(struct run *r)
{
	struct preflight_finding *f;

	if (r->nkeys_covering == 0) {
		f = finding(r, "DKIM", PREFLIGHT_FAIL);
		say(f->text, sizeof(f->text),
		    "no dkim_key signs mail from %s: it goes out unsigned (mailbox providers "
		    "require DKIM from bulk senders)",
		    r->domain);
		say(f->fix, sizeof(f->fix),
		    "drover dkim keygen --domain %s --selector s1 --key FILE; add a dkim_key "
		    "section with domain = \"%s\" and publish the record it prints",
		    r->domain, r->domain);
		return;
	}
	for (size_t i = 0; i < r->nkeys; i++) {
		struct key_check *k = &r->keys[i];
		const struct dkim_key_conf *kc = k->conf;
		enum preflight_verdict v = k->state == KEY_MATCH      ? PREFLIGHT_PASS
		                           : k->state == KEY_TEMPFAIL ? PREFLIGHT_WARN
		                                                      : PREFLIGHT_FAIL;

		f = finding(r, "DKIM", v);
		switch (k->state) {
		case KEY_MATCH:
			say(f->text, sizeof(f->text),
			    "key %s: %s._domainkey.%s publishes the configured key", kc->name,
			    kc->selector, kc->domain);
			break;
		case KEY_BAD:
			say(f->text, sizeof(f->text), "key %s: %s", kc->name, k->why);
			break;
		case KEY_TEMPFAIL:
			say(f->text, sizeof(f->text),
			    "key %s: the lookup of %s._domainkey.%s failed "
			    "(%s); try again",
			    kc->name, kc->selector, kc->domain, k->why);
			break;
		default:
			say(f->text, sizeof(f->text), "key %s: %s._domainkey.%s %s", kc->name,
			    kc->selector, kc->domain,
			    k->state == KEY_MISSING ? "publishes no DKIM key"
			                            : "publishes a different key than the one "
			                              "configured: signatures fail");
			say(f->fix, sizeof(f->fix), "publish %s", k->zone_line);
			break;
		}
	}
}

static void finish_maybe(struct run *r);

static void
on_key(void *token, const struct dkim_lookup_answer *a)
{
	struct key_check *k = token;
	char published[2048], expected[2048];

	if (a->status == DKIM_LOOKUP_TEMPFAIL) {
		k->state = KEY_TEMPFAIL;
		say(k->why, sizeof(k->why), "%s", a->error ? a->error : "temporary failure");
	} else if (a->status == DKIM_LOOKUP_NOTFOUND || a->nrecords == 0) {
		k->state = KEY_MISSING;
	} else {
		k->state = KEY_DIFFERENT;
		tag_value(k->expected, "p", expected, sizeof(expected));
		for (size_t i = 0; i < a->nrecords; i++)
			if (tag_value(a->records[i].text, "p", published, sizeof(published)) == 0 &&
			    strcmp(published, expected) == 0)
				k->state = KEY_MATCH;
	}
	k->run->pending--;
	finish_maybe(k->run);
}

/* ---- DMARC ---- */

static void
dmarc_findings(struct run *r)
{
	struct dkim_sig_result sigs[DKIM_SIGNERS_MAX];
	struct dkim_results dkim = {.n = 0, .sigs = sigs};
	struct dmarc_request req = {.pct_roll = 1};
	struct preflight_finding *f;
	struct dmarc_outcome o;

	switch (r->policy.status) {
	case DMARC_ABSENT:
		f = finding(r, "DMARC", PREFLIGHT_FAIL);
		say(f->text, sizeof(f->text),
		    "no DMARC policy for %s (%s): mailbox providers require one from bulk "
		    "senders",
		    r->domain, r->policy.reason);
		say(f->fix, sizeof(f->fix),
		    "publish TXT _dmarc.%s \"v=DMARC1; p=none; rua=mailto:dmarc-reports@%s\" "
		    "(then p=quarantine or p=reject once reports show only your mail)",
		    r->policy.org_domain[0] ? r->policy.org_domain : r->domain,
		    r->policy.org_domain[0] ? r->policy.org_domain : r->domain);
		return;
	case DMARC_TEMPFAIL:
		f = finding(r, "DMARC", PREFLIGHT_WARN);
		say(f->text, sizeof(f->text), "policy lookup failed: %s; try again",
		    r->policy.reason);
		return;
	case DMARC_INVALID:
		f = finding(r, "DMARC", PREFLIGHT_FAIL);
		say(f->text, sizeof(f->text), "invalid policy: %s", r->policy.reason);
		say(f->fix, sizeof(f->fix), "correct TXT _dmarc.%s",
		    r->policy.domain[0] ? r->policy.domain : r->domain);
		return;
	default:
		break;
	}
	/* What a receiver would see: a pass for each key published as configured. */
	for (size_t i = 0; i < r->nkeys && dkim.n < DKIM_SIGNERS_MAX; i++) {
		if (r->keys[i].state != KEY_MATCH)
			continue;
		memset(&sigs[dkim.n], 0, sizeof(sigs[0]));
		sigs[dkim.n].result = DKIM_RESULT_PASS;
		say(sigs[dkim.n].domain, sizeof(sigs[0].domain), "%s", r->keys[i].conf->domain);
		dkim.n++;
	}
	req.dkim = &dkim;
	req.spf = r->have_source && r->spf_done ? r->spf_result : SPF_NONE;
	req.spf_domain = r->have_source ? r->domain : NULL;
	dmarc_evaluate(r->psl, &r->policy, &req, &o);
	if (o.result == DMARC_PASS) {
		f = finding(r, "DMARC", PREFLIGHT_PASS);
		say(f->text, sizeof(f->text), "p=%s at %s; aligned by %s%s%s%s", o.record_p,
		    o.policy_domain, o.dkim_aligned ? "DKIM d=" : "",
		    o.dkim_aligned ? o.dkim_domain : "",
		    o.dkim_aligned && o.spf_aligned ? " and " : "", o.spf_aligned ? "SPF" : "");
		return;
	}
	f = finding(r, "DMARC", PREFLIGHT_FAIL);
	say(f->text, sizeof(f->text), "p=%s at %s would fail: %s", o.record_p, o.policy_domain,
	    o.reason);
	say(f->fix, sizeof(f->fix),
	    "sign with a dkim_key whose domain is %s (or its organizational domain%s) and "
	    "publish its key",
	    r->domain,
	    r->policy.record.adkim == DMARC_ALIGN_STRICT ? "; adkim=s asks for the same domain"
	                                                 : "");
}

static void
on_policy(void *arg, const struct dmarc_policy *p)
{
	struct run *r = arg;

	r->policy = *p;
	r->policy_done = true;
	r->pending--;
	finish_maybe(r);
}

/* ---- The run ---- */

static void
deliver(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;

	(void)fd;
	(void)what;
	spf_findings(r);
	key_findings(r);
	dmarc_findings(r);
	r->cb(r->arg, &r->rep);
	for (size_t i = 0; i < r->nkeys; i++) {
		free(r->keys[i].expected);
		free(r->keys[i].zone_line);
	}
	dmarc_psl_free(r->psl);
	free(r);
}

static void
finish_maybe(struct run *r)
{
	if (r->pending > 0)
		return;
	/* From the loop, never from inside a lookup's callback or preflight_run(). */
	event_base_once(r->base, -1, EV_TIMEOUT, deliver, r, NULL);
}

static void
on_spf(void *arg, const struct spf_outcome *o)
{
	struct run *r = arg;

	r->spf_done = true;
	r->spf_result = o->result;
	say(r->spf_reason, sizeof(r->spf_reason), "%s", o->reason ? o->reason : "");
	r->pending--;
	finish_maybe(r);
}

static void
on_txt(void *arg, const struct dns_txt_result *res)
{
	struct run *r = arg;

	r->txt_tempfail = res->status == DNS_TEMPFAIL;
	for (size_t i = 0; i < res->nrecords; i++) {
		const char *t = res->records[i].text;

		if (strncasecmp(t, "v=spf1", 6) == 0 && (t[6] == '\0' || t[6] == ' ')) {
			if (r->spf_records++ == 0)
				say(r->spf_record, sizeof(r->spf_record), "%s", t);
		}
	}
	r->pending--;
	finish_maybe(r);
}

static void
start_checks(struct run *r)
{
	size_t idx[DKIM_SIGNERS_MAX];

	r->pending = 2; /* the TXT records and the DMARC policy */
	if (r->have_source) {
		struct spf_request req = {
		    .scope = SPF_SCOPE_MFROM,
		    .ip = r->source,
		    .sender = r->from,
		    .helo = r->source_name[0] ? r->source_name : r->domain,
		};

		dns_address_str(&r->source, r->rep.source, sizeof(r->rep.source));
		r->pending++;
		spf_check_start(&r->spf_dns, &req, on_spf, r);
	}
	r->nkeys_covering =
	    r->cfg != NULL ? config_dkim_keys_for(r->cfg, r->domain, idx, nitems(idx)) : 0;
	r->nkeys = r->nkeys_covering < nitems(idx) ? r->nkeys_covering : nitems(idx);
	for (size_t i = 0; i < r->nkeys; i++) {
		struct key_check *k = &r->keys[i];
		char err[256], name[DNS_NAME_MAX + 1];
		struct dkim_key *key;

		k->run = r;
		k->conf = &r->cfg->dkim_keys[idx[i]];
		if (r->key_errors != NULL && r->key_errors[idx[i]] != NULL) {
			k->state = KEY_BAD;
			say(k->why, sizeof(k->why), "%s: the key cannot be read: %s",
			    k->conf->where, r->key_errors[idx[i]]);
			continue;
		}
		if (r->key_records != NULL && r->key_records[idx[i]] != NULL) {
			k->expected = xstrdup(r->key_records[idx[i]]);
		} else {
			key = dkim_key_load(k->conf->key_path, err, sizeof(err));
			if (key == NULL) {
				k->state = KEY_BAD;
				say(k->why, sizeof(k->why), "%s: the key cannot be read: %s",
				    k->conf->where, err);
				continue;
			}
			k->expected = dkim_key_dns_record(key);
			dkim_key_free(key);
		}
		k->zone_line = dkim_dns_zone_line(k->conf->selector, k->conf->domain, k->expected);
		say(name, sizeof(name), "%s._domainkey.%s", k->conf->selector, k->conf->domain);
		r->pending++;
		r->lookup.start(r->lookup.arg, name, on_key, k);
	}
	dns_txt(r->resolver, r->domain, on_txt, r);
	dmarc_policy_lookup(&r->lookup, r->psl, r->domain, on_policy, r);
}

static void
on_source(void *arg, const struct dns_addr_result *res)
{
	struct run *r = arg;

	if (res->naddrs > 0) {
		r->source = res->addrs[0];
		r->have_source = true;
	} else {
		say(r->source_error, sizeof(r->source_error), "the source %s has no address (%s)",
		    r->source_name, res->error ? res->error : dns_status_name(res->status));
	}
	start_checks(r);
}

int
preflight_run(struct event_base *base, struct dns_resolver *resolver,
              const struct preflight_request *req, preflight_cb *cb, void *arg, char *err,
              size_t errlen)
{
	struct run *r;
	const char *at = strrchr(req->from, '@');
	const char *domain = at != NULL ? at + 1 : req->from;
	char org[DNS_NAME_MAX + 1];

	r = xcalloc(1, sizeof(*r));
	r->psl = dmarc_psl_load(NULL, err, errlen);
	if (r->psl == NULL) {
		free(r);
		return -1;
	}
	say(r->domain, sizeof(r->domain), "%s", domain);
	for (char *p = r->domain; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	if (strlen(domain) >= sizeof(r->domain) || dmarc_org_domain(r->psl, r->domain, org) != 0 ||
	    strchr(r->domain, '.') == NULL) {
		say(err, errlen, "\"%s\": not a mail address or domain", req->from);
		dmarc_psl_free(r->psl);
		free(r);
		return -1;
	}
	if (at != NULL)
		say(r->from, sizeof(r->from), "%s", req->from);
	else
		say(r->from, sizeof(r->from), "postmaster@%s", r->domain);
	r->base = base;
	r->resolver = resolver;
	r->cfg = req->cfg;
	r->key_records = req->key_records;
	r->key_errors = req->key_errors;
	r->cb = cb;
	r->arg = arg;
	spf_dns_use_resolver(&r->spf_dns, resolver, base);
	dkim_lookup_dns(&r->lookup, resolver);
	say(r->rep.domain, sizeof(r->rep.domain), "%s", r->domain);
	if (req->source != NULL && spf_ip_parse(req->source, &r->source) == 0) {
		r->have_source = true;
	} else if (req->source != NULL) {
		if (strlen(req->source) >= sizeof(r->source_name) ||
		    dmarc_org_domain(r->psl, req->source, org) != 0) {
			say(err, errlen, "--source \"%s\": not an IP address or host name",
			    req->source);
			dmarc_psl_free(r->psl);
			free(r);
			return -1;
		}
		say(r->source_name, sizeof(r->source_name), "%s", req->source);
		dns_addr(resolver, r->source_name, DNS_IP_PREFER_V4, on_source, r);
		return 0;
	}
	start_checks(r);
	return 0;
}

char *
preflight_report_text(const struct preflight_report *rep)
{
	char *out = xasprintf("Mail from %s%s%s:\n", rep->domain,
	                      rep->source[0] ? " sent from " : "", rep->source);

	for (size_t i = 0; i < rep->n; i++) {
		const struct preflight_finding *f = &rep->findings[i];
		char *next = xasprintf(
		    "%s  %-5s %-4s %s\n%s%s%s", out, f->check, preflight_verdict_name(f->verdict),
		    f->text, f->fix[0] ? "             fix: " : "", f->fix, f->fix[0] ? "\n" : "");

		free(out);
		out = next;
	}
	{
		char *next =
		    xasprintf("%s%s: %u failed, %u warnings\n", out,
		              rep->failures ? "FAIL" : "pass", rep->failures, rep->warnings);
		free(out);
		out = next;
	}
	return out;
}
