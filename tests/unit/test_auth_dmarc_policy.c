/* test_auth_dmarc_policy - policy discovery (RFC 7489 §6.6.3) through table lookups: the From
 * domain's record, the organizational domain's with sp=, co.uk-type suffixes, several records,
 * DNS failures, malformed records; then evaluation (§6.6.2, §6.6.4): what aligns, pct=
 * sampling, the resinfo for Authentication-Results; and lookups that answer later from an
 * event loop, are cancelled, or outlive what the caller passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/event.h>

#include "auth/dmarc_internal.h"
#include "core/core.h"

static struct dmarc_psl *psl;

static int
setup(void **state)
{
	char err[256];

	psl = dmarc_psl_load(NULL, err, sizeof(err));
	if (psl == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	dmarc_psl_free(psl);
	return 0;
}

/* ---- A table lookup that notes the names asked ---- */

struct asked {
	struct dkim_lookup table;
	char names[8][DNS_NAME_MAX + 8];
	size_t n;
};

static void *
asked_start(void *arg, const char *name, dkim_lookup_done *done, void *token)
{
	struct asked *a = arg;

	if (a->n < 8)
		snprintf(a->names[a->n], sizeof(a->names[0]), "%s", name);
	a->n++;
	return a->table.start(a->table.arg, name, done, token);
}

static struct dkim_lookup
asking(struct asked *a, const char *const *pairs)
{
	memset(a, 0, sizeof(*a));
	dmarc_lookup_table(&a->table, pairs);
	return (struct dkim_lookup){.start = asked_start, .arg = a};
}

static void
on_policy(void *arg, const struct dmarc_policy *p)
{
	struct dmarc_policy *out = arg;

	assert_int_equal(out->reason[0], '\0'); /* exactly once */
	*out = *p;
	assert_true(out->reason[0] != '\0');
}

/* Discovery with a table: it answers at once, so the policy is there when the call returns. */
static struct dmarc_policy
discover(const char *const *pairs, const char *from, struct asked *a)
{
	struct dmarc_policy p = {0};
	struct asked local;
	struct dkim_lookup l = asking(a != NULL ? a : &local, pairs);

	assert_null(dmarc_policy_lookup(&l, psl, from, on_policy, &p));
	assert_true(p.reason[0] != '\0');
	return p;
}

static void
test_from_domain_record(void **state)
{
	static const char *const zone[] = {"_dmarc.example.com",
	                                   "v=DMARC1; p=reject; rua=mailto:d@example.com", //
	                                   "example.com", "v=spf1 -all",                   //
	                                   NULL};
	struct asked a;
	struct dmarc_policy p = discover(zone, "Example.COM.", &a);

	assert_int_equal(p.status, DMARC_FOUND);
	assert_string_equal(p.from_domain, "example.com");
	assert_string_equal(p.org_domain, "example.com");
	assert_string_equal(p.domain, "example.com");
	assert_false(p.subdomain);
	assert_int_equal(p.record.p, DMARC_P_REJECT);
	assert_int_equal(p.record.nrua, 1);
	assert_string_equal(p.reason, "policy at _dmarc.example.com");
	assert_int_equal(a.n, 1);
	assert_string_equal(a.names[0], "_dmarc.example.com");
}

static void
test_org_domain_fallback_with_sp(void **state)
{
	static const char *const zone[] = {"_dmarc.example.com",
	                                   "v=DMARC1; p=reject; sp=quarantine", //
	                                   "_dmarc.mail.example.com",
	                                   "v=spf1 -all", // not DMARC: not there
	                                   "_dmarc.own.example.com",
	                                   "v=DMARC1; p=none", //
	                                   NULL};
	struct asked a;
	struct dmarc_policy p = discover(zone, "mail.example.com", &a);

	assert_int_equal(p.status, DMARC_FOUND);
	assert_string_equal(p.domain, "example.com");
	assert_true(p.subdomain);
	assert_int_equal(p.record.sp, DMARC_P_QUARANTINE);
	assert_int_equal(a.n, 2);
	assert_string_equal(a.names[0], "_dmarc.mail.example.com");
	assert_string_equal(a.names[1], "_dmarc.example.com");

	/* Deeper: straight to the organizational domain, not label by label. */
	p = discover(zone, "a.b.c.example.com", &a);
	assert_int_equal(p.status, DMARC_FOUND);
	assert_int_equal(a.n, 2);
	assert_string_equal(a.names[1], "_dmarc.example.com");

	/* A subdomain with its own record: that one, and its p=. */
	p = discover(zone, "own.example.com", &a);
	assert_int_equal(p.status, DMARC_FOUND);
	assert_false(p.subdomain);
	assert_string_equal(p.domain, "own.example.com");
	assert_int_equal(p.record.p, DMARC_P_NONE);
	assert_int_equal(a.n, 1);

	/* No record anywhere. */
	p = discover(zone, "mail.example.org", &a);
	assert_int_equal(p.status, DMARC_ABSENT);
	assert_string_equal(p.reason,
	                    "no DMARC record at _dmarc.mail.example.org or _dmarc.example.org");
	assert_int_equal(a.n, 2);
	p = discover(zone, "example.org", &a);
	assert_int_equal(p.status, DMARC_ABSENT);
	assert_string_equal(p.reason, "no DMARC record at _dmarc.example.org");
	assert_int_equal(a.n, 1);
}

static void
test_public_suffixes_are_never_asked(void **state)
{
	static const char *const zone[] = {"_dmarc.co.uk", "v=DMARC1; p=reject", //
	                                   "_dmarc.example.co.uk",
	                                   "v=DMARC1; p=quarantine; sp=none", NULL};
	struct asked a;
	struct dmarc_policy p = discover(zone, "mail.example.co.uk", &a);

	assert_int_equal(p.status, DMARC_FOUND);
	assert_string_equal(p.org_domain, "example.co.uk");
	assert_true(p.subdomain);
	assert_int_equal(p.record.sp, DMARC_P_NONE);

	/* other.co.uk has no record: co.uk's must not speak for it. */
	p = discover(zone, "mail.other.co.uk", &a);
	assert_int_equal(p.status, DMARC_ABSENT);
	assert_int_equal(a.n, 2);
	assert_string_equal(a.names[1], "_dmarc.other.co.uk");
	p = discover(zone, "other.co.uk", &a);
	assert_int_equal(p.status, DMARC_ABSENT);
	assert_int_equal(a.n, 1);
}

static void
test_several_records(void **state)
{
	static const char *const zone[] = {"_dmarc.two.example",
	                                   "v=DMARC1; p=reject", //
	                                   "_dmarc.two.example",
	                                   "v=DMARC1; p=none", //
	                                   "_dmarc.sub.one.example",
	                                   "v=DMARC1; p=none", //
	                                   "_dmarc.sub.one.example",
	                                   "v=DMARC1 ; p=reject", //
	                                   "_dmarc.one.example",
	                                   "v=DMARC1; p=reject", //
	                                   "_dmarc.mixed.example",
	                                   "v=spf1 -all", //
	                                   "_dmarc.mixed.example",
	                                   "some verification token", //
	                                   "_dmarc.mixed.example",
	                                   "v=DMARC1; p=quarantine", //
	                                   "_dmarc.broken.example",
	                                   "v=DMARC1; p=none", //
	                                   "_dmarc.broken.example",
	                                   "v=DMARC1 p=reject", // malformed, still counted
	                                   "_dmarc.lower.example",
	                                   "v=DMARC1; p=reject", //
	                                   "_dmarc.lower.example",
	                                   "v=dmarc1; p=none", // not DMARC1: not counted
	                                   NULL};
	struct asked a;
	struct dmarc_policy p = discover(zone, "two.example", &a);

	/* §6.6.3: several records - no policy, and no looking further up. */
	assert_int_equal(p.status, DMARC_ABSENT);
	assert_string_equal(p.reason, "2 DMARC records at _dmarc.two.example (RFC 7489 §6.6.3: "
	                              "none applies)");
	p = discover(zone, "sub.one.example", &a);
	assert_int_equal(p.status, DMARC_ABSENT);
	assert_int_equal(a.n, 1);
	p = discover(zone, "mixed.example", &a);
	assert_int_equal(p.status, DMARC_FOUND);
	assert_int_equal(p.record.p, DMARC_P_QUARANTINE);
	p = discover(zone, "broken.example", &a);
	assert_int_equal(p.status, DMARC_ABSENT);
	p = discover(zone, "lower.example", &a);
	assert_int_equal(p.status, DMARC_FOUND);
	assert_int_equal(p.record.p, DMARC_P_REJECT);
}

static void
test_dns_failures_and_bad_records(void **state)
{
	static const char *const zone[] = {"_dmarc.fail.example",
	                                   NULL, // SERVFAIL
	                                   "_dmarc.fail.example.net",
	                                   NULL,
	                                   "_dmarc.example.net",
	                                   "v=DMARC1; p=reject",
	                                   "_dmarc.a.failorg.example",
	                                   "v=spf1",
	                                   "_dmarc.failorg.example",
	                                   NULL,
	                                   "_dmarc.bad.example",
	                                   "v=DMARC1; p=reject; pct=200",
	                                   "_dmarc.sub.bad.example",
	                                   "v=DMARC1; p=whatever",
	                                   "_dmarc.fallback.example",
	                                   "v=DMARC1; p=rejected; rua=mailto:d@fallback.example",
	                                   NULL};
	struct asked a;
	struct dmarc_policy p = discover(zone, "fail.example", &a);

	assert_int_equal(p.status, DMARC_TEMPFAIL);
	assert_string_equal(p.reason, "_dmarc.fail.example: temporary failure (table)");
	/* The From domain's lookup failed: whether it has a record is unknown, so temperror, not
	 * the organizational domain's policy. */
	p = discover(zone, "fail.example.net", &a);
	assert_int_equal(p.status, DMARC_TEMPFAIL);
	assert_int_equal(a.n, 1);
	/* The organizational domain's failed. */
	p = discover(zone, "a.failorg.example", &a);
	assert_int_equal(p.status, DMARC_TEMPFAIL);
	assert_string_equal(p.reason, "_dmarc.failorg.example: temporary failure (table)");
	assert_int_equal(a.n, 2);

	p = discover(zone, "bad.example", &a);
	assert_int_equal(p.status, DMARC_INVALID);
	assert_non_null(strstr(p.reason, "_dmarc.bad.example: tag 3 \"pct=200\": pct= must be"));
	assert_string_equal(p.domain, "bad.example");
	/* A malformed record at the From domain is not a missing one: no fallback. */
	p = discover(zone, "sub.bad.example", &a);
	assert_int_equal(p.status, DMARC_INVALID);
	assert_int_equal(a.n, 1);

	p = discover(zone, "fallback.example", &a);
	assert_int_equal(p.status, DMARC_FOUND);
	assert_true(p.record.p_fallback);
	assert_int_equal(p.record.p, DMARC_P_NONE);
	assert_non_null(strstr(p.reason, "read as p=none"));

	/* Not a domain name: permerror at once, no lookup. */
	p = discover(zone, "", &a);
	assert_int_equal(p.status, DMARC_INVALID);
	assert_int_equal(a.n, 0);
	p = discover(zone, "[192.0.2.1]", &a);
	assert_int_equal(p.status, DMARC_INVALID);
	assert_string_equal(p.reason, "From domain \"[192.0.2.1]\" is not a domain name");
	p = discover(zone, NULL, &a);
	assert_int_equal(p.status, DMARC_INVALID);

	/* _dmarc. and a 250-octet From domain is no DNS name: nothing there, org next. */
	char from[DNS_NAME_MAX + 1];
	memset(from, 'a', 238);
	strcpy(from + 238, ".a.example.net");
	for (size_t i = 60; i < 238; i += 61)
		from[i] = '.';
	p = discover(zone, from, &a);
	assert_int_equal(p.status, DMARC_FOUND);
	assert_string_equal(p.domain, "example.net");
	assert_int_equal(a.n, 1);
}

/* ---- Evaluation ---- */

static struct dkim_sig_result
sig(enum dkim_result r, const char *d)
{
	struct dkim_sig_result s = {.result = r};

	snprintf(s.domain, sizeof(s.domain), "%s", d);
	return s;
}

static struct dmarc_outcome
evaluate(const char *record, const char *from, bool sub, enum spf_result spf,
         const char *spf_domain, const struct dkim_sig_result *sigs, size_t nsigs, unsigned roll)
{
	struct dmarc_policy p = {.status = DMARC_FOUND, .subdomain = sub};
	struct dkim_results dr = {.n = nsigs, .sigs = sigs};
	struct dmarc_request req = {
	    .spf = spf, .spf_domain = spf_domain, .dkim = &dr, .pct_roll = roll};
	struct dmarc_outcome o;
	char err[128];

	assert_int_equal(dmarc_record_parse(record, strlen(record), &p.record, err, sizeof(err)),
	                 1);
	snprintf(p.from_domain, sizeof(p.from_domain), "%s", from);
	dmarc_evaluate(psl, &p, &req, &o);
	return o;
}

static void
test_alignment_decides(void **state)
{
	struct dkim_sig_result s[3];
	struct dmarc_outcome o;
	const char *relaxed = "v=DMARC1; p=reject";
	const char *strict = "v=DMARC1; p=reject; adkim=s; aspf=s";

	/* SPF alone. */
	o = evaluate(relaxed, "example.com", false, SPF_PASS, "bounce.example.com", NULL, 0, 1);
	assert_int_equal(o.result, DMARC_PASS);
	assert_true(o.spf_aligned);
	assert_false(o.dkim_aligned);
	assert_string_equal(o.spf_domain, "bounce.example.com");
	assert_int_equal(o.disposition, DMARC_P_NONE);
	assert_string_equal(o.reason, "SPF pass for bounce.example.com aligns (relaxed)");
	o = evaluate(strict, "example.com", false, SPF_PASS, "bounce.example.com", NULL, 0, 1);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_int_equal(o.disposition, DMARC_P_REJECT);
	assert_string_equal(o.reason, "SPF pass for bounce.example.com does not align (strict); "
	                              "no DKIM pass");
	o = evaluate(strict, "example.com", false, SPF_PASS, "EXAMPLE.com", NULL, 0, 1);
	assert_int_equal(o.result, DMARC_PASS);
	for (enum spf_result r = SPF_NONE; r <= SPF_PERMERROR; r++) {
		if (r == SPF_PASS)
			continue;
		o = evaluate(relaxed, "example.com", false, r, "example.com", NULL, 0, 1);
		assert_int_equal(o.result, DMARC_FAIL);
	}
	o = evaluate(relaxed, "example.com", false, SPF_PASS, "esp.example", NULL, 0, 1);
	assert_int_equal(o.result, DMARC_FAIL);
	o = evaluate(relaxed, "example.com", false, SPF_PASS, NULL, NULL, 0, 1);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_string_equal(o.reason, "no SPF pass; no DKIM pass");

	/* DKIM alone: only a passing signature for an aligned d= counts. */
	s[0] = sig(DKIM_RESULT_PASS, "esp.example");
	s[1] = sig(DKIM_RESULT_FAIL, "example.com");
	s[2] = sig(DKIM_RESULT_PASS, "mail.example.com");
	o = evaluate(relaxed, "example.com", false, SPF_FAIL, "esp.example", s, 2, 1);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_string_equal(o.reason, "no SPF pass; DKIM pass for d=esp.example does not align "
	                              "(relaxed)");
	o = evaluate(relaxed, "example.com", false, SPF_FAIL, "esp.example", s, 3, 1);
	assert_int_equal(o.result, DMARC_PASS);
	assert_true(o.dkim_aligned);
	assert_string_equal(o.dkim_domain, "mail.example.com");
	assert_string_equal(o.reason, "DKIM pass for d=mail.example.com aligns (relaxed)");
	o = evaluate(strict, "example.com", false, SPF_FAIL, "esp.example", s, 3, 1);
	assert_int_equal(o.result, DMARC_FAIL);
	for (enum dkim_result r = DKIM_RESULT_NONE; r <= DKIM_RESULT_PERMERROR; r++) {
		s[0] = sig(r, "example.com");
		o = evaluate(relaxed, "example.com", false, SPF_NONE, NULL, s, 1, 1);
		assert_int_equal(o.result, r == DKIM_RESULT_PASS ? DMARC_PASS : DMARC_FAIL);
	}

	/* Both. */
	s[0] = sig(DKIM_RESULT_PASS, "example.com");
	o = evaluate(relaxed, "example.com", false, SPF_PASS, "example.com", s, 1, 1);
	assert_true(o.spf_aligned && o.dkim_aligned);
	assert_string_equal(o.reason, "DKIM pass for d=example.com aligns (relaxed); SPF pass for "
	                              "example.com aligns (relaxed)");

	/* The organizational domain across a co.uk-type suffix, and a subdomain From. */
	s[0] = sig(DKIM_RESULT_PASS, "example.co.uk");
	o = evaluate(relaxed, "news.example.co.uk", true, SPF_NONE, NULL, s, 1, 1);
	assert_int_equal(o.result, DMARC_PASS);
	s[0] = sig(DKIM_RESULT_PASS, "other.co.uk");
	o = evaluate(relaxed, "news.example.co.uk", true, SPF_PASS, "co.uk", s, 1, 1);
	assert_int_equal(o.result, DMARC_FAIL);

	/* No DKIM results at all. */
	struct dmarc_policy p = {.status = DMARC_FOUND};
	struct dmarc_request req = {.spf = SPF_NONE};
	dmarc_record_parse("v=DMARC1; p=none", 16, &p.record, NULL, 0);
	strcpy(p.from_domain, "example.com");
	dmarc_evaluate(psl, &p, &req, &o);
	assert_int_equal(o.result, DMARC_FAIL);
	assert_int_equal(o.disposition, DMARC_P_NONE);
}

static void
test_policy_and_pct(void **state)
{
	struct dmarc_outcome o;
	const char *rec = "v=DMARC1; p=reject; sp=quarantine; pct=50";

	o = evaluate(rec, "example.com", false, SPF_FAIL, NULL, NULL, 0, 50);
	assert_int_equal(o.policy, DMARC_P_REJECT);
	assert_int_equal(o.disposition, DMARC_P_REJECT);
	assert_int_equal(o.pct, 50);
	o = evaluate(rec, "example.com", false, SPF_FAIL, NULL, NULL, 0, 51);
	assert_int_equal(o.policy, DMARC_P_REJECT);
	assert_int_equal(o.disposition, DMARC_P_QUARANTINE); /* §6.3 pct: one step down */
	assert_non_null(strstr(o.reason, "pct=50 left this message out"));
	o = evaluate(rec, "mail.example.com", true, SPF_FAIL, NULL, NULL, 0, 1);
	assert_int_equal(o.policy, DMARC_P_QUARANTINE);
	assert_int_equal(o.disposition, DMARC_P_QUARANTINE);
	assert_true(o.subdomain);
	o = evaluate(rec, "mail.example.com", true, SPF_FAIL, NULL, NULL, 0, 100);
	assert_int_equal(o.disposition, DMARC_P_NONE);
	o = evaluate("v=DMARC1; p=reject; pct=0", "example.com", false, SPF_FAIL, NULL, NULL, 0, 1);
	assert_int_equal(o.disposition, DMARC_P_QUARANTINE);
	o = evaluate("v=DMARC1; p=reject", "example.com", false, SPF_FAIL, NULL, NULL, 0, 100);
	assert_int_equal(o.disposition, DMARC_P_REJECT);
	o = evaluate("v=DMARC1; p=none; pct=0", "example.com", false, SPF_FAIL, NULL, NULL, 0, 99);
	assert_int_equal(o.disposition, DMARC_P_NONE);
	o = evaluate(rec, "example.com", false, SPF_PASS, "example.com", NULL, 0, 100);
	assert_int_equal(o.disposition, DMARC_P_NONE);

	/* Drawn here: over many messages, about pct of them get the policy. */
	unsigned rejected = 0;
	for (int i = 0; i < 2000; i++) {
		o = evaluate(rec, "example.com", false, SPF_FAIL, NULL, NULL, 0, 0);
		assert_true(o.disposition == DMARC_P_REJECT || o.disposition == DMARC_P_QUARANTINE);
		rejected += o.disposition == DMARC_P_REJECT;
	}
	assert_in_range(rejected, 800, 1200);
	/* A roll outside 1-100 is drawn too. */
	o = evaluate("v=DMARC1; p=reject; pct=0", "example.com", false, SPF_FAIL, NULL, NULL, 0,
	             1000);
	assert_int_equal(o.disposition, DMARC_P_QUARANTINE);
}

static void
check_resinfo(const struct dmarc_outcome *o, const char *want)
{
	char *r = dmarc_resinfo(o);

	if (strcmp(r, want) != 0)
		fail_msg("resinfo\n  %s\nwant\n  %s", r, want);
	free(r);
}

static void
on_outcome(void *arg, const struct dmarc_outcome *o)
{
	struct dmarc_outcome *out = arg;

	assert_int_equal(out->reason[0], '\0');
	*out = *o;
}

static struct dmarc_outcome
check(const char *const *pairs, const char *from, const struct dmarc_request *req)
{
	struct dkim_lookup l;
	struct dmarc_outcome o = {0};

	dmarc_lookup_table(&l, pairs);
	assert_null(dmarc_check_start(&l, psl, from, req, on_outcome, &o));
	assert_true(o.reason[0] != '\0');
	return o;
}

static void
test_results_and_resinfo(void **state)
{
	static const char *const zone[] = {"_dmarc.example.com",
	                                   "v=DMARC1; p=reject; sp=quarantine; pct=30",
	                                   "_dmarc.temp.example",
	                                   NULL,
	                                   "_dmarc.two.example",
	                                   "v=DMARC1; p=reject",
	                                   "_dmarc.two.example",
	                                   "v=DMARC1; p=none",
	                                   "_dmarc.bad.example",
	                                   "v=DMARC1; p=\"reject\"",
	                                   NULL};
	struct dkim_sig_result s = sig(DKIM_RESULT_PASS, "example.com");
	struct dkim_results dr = {.n = 1, .sigs = &s};
	struct dmarc_request pass = {.spf = SPF_SOFTFAIL, .dkim = &dr, .pct_roll = 1};
	struct dmarc_request fail = {.spf = SPF_PASS, .spf_domain = "esp.example", .pct_roll = 1};
	struct dmarc_outcome o;

	o = check(zone, "example.com", &pass);
	assert_int_equal(o.result, DMARC_PASS);
	assert_string_equal(o.policy_domain, "example.com");
	check_resinfo(&o, "dmarc=pass (p=reject pct=30 dis=none) header.from=example.com");

	o = check(zone, "mail.example.com", &fail);
	assert_int_equal(o.result, DMARC_FAIL);
	check_resinfo(&o, "dmarc=fail (p=reject sp=quarantine pct=30 dis=quarantine) "
	                  "reason=\"SPF pass for esp.example does not align (relaxed); no DKIM "
	                  "pass\" header.from=mail.example.com");
	fail.pct_roll = 31;
	o = check(zone, "example.com", &fail);
	check_resinfo(&o, "dmarc=fail (p=reject pct=30 dis=quarantine) reason=\"SPF pass for "
	                  "esp.example does not align (relaxed); no DKIM pass; pct=30 left this "
	                  "message out\" header.from=example.com");

	o = check(zone, "example.org", &pass);
	assert_int_equal(o.result, DMARC_NONE);
	assert_int_equal(o.policy, DMARC_P_NONE);
	assert_int_equal(o.disposition, DMARC_P_NONE);
	assert_false(o.dkim_aligned);
	check_resinfo(&o, "dmarc=none reason=\"no DMARC record at _dmarc.example.org\" "
	                  "header.from=example.org");

	/* Header fields stay ASCII: the reason's "§" is spelt out. */
	o = check(zone, "two.example", &pass);
	assert_int_equal(o.result, DMARC_NONE);
	check_resinfo(&o, "dmarc=none reason=\"2 DMARC records at _dmarc.two.example (RFC 7489 "
	                  "section 6.6.3: none applies)\" header.from=two.example");

	o = check(zone, "temp.example", &pass);
	assert_int_equal(o.result, DMARC_TEMPERROR);
	check_resinfo(&o, "dmarc=temperror reason=\"_dmarc.temp.example: temporary failure "
	                  "(table)\" header.from=temp.example");

	o = check(zone, "bad.example", &pass);
	assert_int_equal(o.result, DMARC_PERMERROR);
	check_resinfo(&o, "dmarc=permerror reason=\"_dmarc.bad.example: tag 2 \\\"p=?reject?\\\": "
	                  "p= must be none, quarantine or reject\" header.from=bad.example");

	o = check(zone, "", &pass);
	assert_int_equal(o.result, DMARC_PERMERROR);
	check_resinfo(&o, "dmarc=permerror reason=\"From domain \\\"\\\" is not a domain name\"");

	/* Into the header, with the other methods' resinfos. */
	o = check(zone, "example.com", &pass);
	char *dmarc = dmarc_resinfo(&o);
	const char *items[] = {"spf=softfail smtp.mailfrom=a@esp.example", dmarc};
	char *h = auth_results_header("mx.example.net", items, 2);
	assert_string_equal(h,
	                    "Authentication-Results: mx.example.net;\r\n"
	                    " spf=softfail smtp.mailfrom=a@esp.example;\r\n"
	                    " dmarc=pass (p=reject pct=30 dis=none) header.from=example.com\r\n");
	free(h);
	free(dmarc);

	assert_string_equal(dmarc_result_name(DMARC_TEMPERROR), "temperror");
	assert_string_equal(dmarc_result_name((enum dmarc_result)99), "?");
	assert_string_equal(dmarc_p_name(DMARC_P_QUARANTINE), "quarantine");
	assert_string_equal(dmarc_p_name((enum dmarc_p) - 1), "?");
}

static void
test_spf_domain(void **state)
{
	struct spf_outcome o = {.scope = "mfrom", .identity = "user@Bounce.Example.com"};

	assert_string_equal(dmarc_spf_domain(&o), "Bounce.Example.com");
	o = (struct spf_outcome){.scope = "mfrom", .identity = "postmaster@helo.example.net"};
	assert_string_equal(dmarc_spf_domain(&o), "helo.example.net"); /* a null sender */
	o = (struct spf_outcome){.scope = "helo", .identity = "postmaster@helo.example.net"};
	assert_string_equal(dmarc_spf_domain(&o), "helo.example.net");
	o = (struct spf_outcome){.scope = "pra", .identity = "a@example.com"};
	assert_null(dmarc_spf_domain(&o));
	o = (struct spf_outcome){.scope = "mfrom", .identity = "\"a@b\"@example.com"};
	assert_string_equal(dmarc_spf_domain(&o), "example.com");
}

/* ---- Lookups that answer later, from an event loop ---- */

struct later {
	struct event_base *base;
	const char *const *pairs;
	unsigned started, cancelled;
};

struct later_q {
	struct later *l;
	struct event *ev;
	char name[DNS_NAME_MAX + 8];
	dkim_lookup_done *done;
	void *token;
};

static void
later_fire(evutil_socket_t fd, short what, void *arg)
{
	struct later_q *q = arg;
	struct dkim_lookup table;

	/* The table answers inside its start(), which is now inside the loop. */
	dmarc_lookup_table(&table, q->l->pairs);
	event_free(q->ev);
	table.start(table.arg, q->name, q->done, q->token);
	free(q);
}

static void *
later_start(void *arg, const char *name, dkim_lookup_done *done, void *token)
{
	struct later *l = arg;
	struct later_q *q = xcalloc(1, sizeof(*q));
	struct timeval zero = {0, 0};

	q->l = l;
	snprintf(q->name, sizeof(q->name), "%s", name);
	q->done = done;
	q->token = token;
	q->ev = evtimer_new(l->base, later_fire, q);
	evtimer_add(q->ev, &zero);
	l->started++;
	return q;
}

static void
later_cancel(void *arg, void *handle)
{
	struct later *l = arg;
	struct later_q *q = handle;

	l->cancelled++;
	event_free(q->ev);
	free(q);
}

static struct dkim_lookup
later_lookup(struct later *l, const char *const *pairs)
{
	*l = (struct later){.base = event_base_new(), .pairs = pairs};
	return (struct dkim_lookup){.start = later_start, .cancel = later_cancel, .arg = l};
}

static unsigned calls;

static void
on_outcome_count(void *arg, const struct dmarc_outcome *o)
{
	calls++;
	on_outcome(arg, o);
}

static void
cancel_from_cb(void *arg, const struct dmarc_outcome *o)
{
	struct dmarc_check **c = arg;

	calls++;
	dmarc_check_cancel(*c); /* a no-op here */
}

static void
test_lookups_from_a_loop(void **state)
{
	static const char *const zone[] = {"_dmarc.example.com", "v=DMARC1; p=reject", NULL};
	struct later l;
	struct dkim_lookup lookup = later_lookup(&l, zone);
	struct dmarc_outcome o = {0};
	struct dmarc_check *c;
	char name[32];

	/* The caller's request goes away before the answers come: the check kept a copy. */
	struct dkim_sig_result *s = xcalloc(1, sizeof(*s));
	*s = sig(DKIM_RESULT_PASS, "mail.example.com");
	struct dkim_results *dr = xcalloc(1, sizeof(*dr));
	*dr = (struct dkim_results){.n = 1, .sigs = s};
	char *spf_domain = xstrdup("esp.example");
	struct dmarc_request req = {.spf = SPF_PASS, .spf_domain = spf_domain, .dkim = dr};

	snprintf(name, sizeof(name), "a.b.example.com");
	calls = 0;
	c = dmarc_check_start(&lookup, psl, name, &req, on_outcome_count, &o);
	assert_non_null(c);
	assert_int_equal(calls, 0);
	free(s);
	free(dr);
	free(spf_domain);
	memset(name, 'x', sizeof(name) - 1);
	event_base_dispatch(l.base);
	assert_int_equal(calls, 1);
	assert_int_equal(l.started, 2);
	assert_int_equal(o.result, DMARC_PASS);
	assert_string_equal(o.from_domain, "a.b.example.com");
	assert_string_equal(o.dkim_domain, "mail.example.com");

	/* Cancelled while the first lookup is out, and while the second is. */
	req = (struct dmarc_request){.spf = SPF_PASS, .spf_domain = "example.com"};
	calls = 0;
	c = dmarc_check_start(&lookup, psl, "example.com", &req, on_outcome_count, &o);
	dmarc_check_cancel(c);
	assert_int_equal(l.cancelled, 1);
	c = dmarc_check_start(&lookup, psl, "mail.example.org", &req, on_outcome_count, &o);
	event_base_loop(l.base, EVLOOP_ONCE);
	assert_int_equal(l.started, 5);
	dmarc_check_cancel(c);
	assert_int_equal(l.cancelled, 2);
	event_base_dispatch(l.base);
	assert_int_equal(calls, 0);

	/* Cancelled from its own callback: nothing happens twice. */
	c = dmarc_check_start(&lookup, psl, "example.com", &req, cancel_from_cb, &c);
	event_base_dispatch(l.base);
	assert_int_equal(calls, 1);

	/* A policy lookup answered later. */
	struct dmarc_policy p = {0};
	assert_non_null(dmarc_policy_lookup(&lookup, psl, "example.com", on_policy, &p));
	assert_int_equal(p.reason[0], '\0');
	event_base_dispatch(l.base);
	assert_int_equal(p.status, DMARC_FOUND);

	/* NULL is no check. */
	dmarc_check_cancel(NULL);
	event_base_free(l.base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_domain_record),
	    cmocka_unit_test(test_org_domain_fallback_with_sp),
	    cmocka_unit_test(test_public_suffixes_are_never_asked),
	    cmocka_unit_test(test_several_records),
	    cmocka_unit_test(test_dns_failures_and_bad_records),
	    cmocka_unit_test(test_alignment_decides),
	    cmocka_unit_test(test_policy_and_pct),
	    cmocka_unit_test(test_results_and_resinfo),
	    cmocka_unit_test(test_spf_domain),
	    cmocka_unit_test(test_lookups_from_a_loop),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
