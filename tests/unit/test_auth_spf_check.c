/* test_auth_spf_check - check_host() beyond the conformance suite: the processing limits of
 * RFC 7208 §4.6.4 at and over their edges, the identities of each scope (null sender, HELO,
 * Sender ID's PRA with spf2.0 records), explanations, DNS errors inside mechanisms, what the
 * caller is promised (one callback, never from inside spf_check_start() when there is a loop,
 * cancellation), and the resinfo for Authentication-Results. Zones are in memory. */
#include "test_auth_spf_util.h"

/* Runs the check with answers from a loop and inside the calls: both must agree. */
static struct outcome *
check(const char *zone, enum spf_scope scope, const char *ip, const char *sender, const char *helo)
{
	struct outcome *sync = xcalloc(1, sizeof(*sync)), *async = xcalloc(1, sizeof(*async));
	struct spf_request req = spf_req(scope, ip, sender, helo);
	struct event_base *base = event_base_new();
	struct memdns *m = memdns_new(NULL, zone, NULL), *ma = memdns_new(base, zone, NULL);

	spf_run(m, &req, sync);
	spf_run(ma, &req, async);
	assert_int_equal(sync->result, async->result);
	assert_string_equal(sync->reason, async->reason);
	assert_string_equal(sync->explanation, async->explanation);
	memdns_free(m);
	memdns_free(ma);
	event_base_free(base);
	free(sync);
	return async;
}

static void
expect(const char *zone, const char *ip, const char *sender, enum spf_result want,
       const char *reason_part)
{
	struct outcome *o = check(zone, SPF_SCOPE_MFROM, ip, sender, "helo.example.org");

	if (o->result != want || (reason_part != NULL && strstr(o->reason, reason_part) == NULL))
		fail_msg("%s from %s: %s (%s), want %s (\"%s\")", sender, ip,
		         spf_result_name(o->result), o->reason, spf_result_name(want),
		         reason_part != NULL ? reason_part : "");
	free(o);
}

/* ---- Limits (§4.6.4) ---- */

static void
test_ten_dns_mechanisms_pass_eleven_do_not(void **state)
{
	/* Ten DNS-querying terms before the match: allowed. */
	const char *ten = "{\"example.com\": {\"TXT\": [\"v=spf1 a a a a a a a a a a ip4:192.0.2.1 "
	                  "-all\"], \"A\": [\"198.51.100.1\"]}}";
	const char *eleven = "{\"example.com\": {\"TXT\": [\"v=spf1 a a a a a a a a a a a "
	                     "ip4:192.0.2.1 -all\"], \"A\": [\"198.51.100.1\"]}}";

	expect(ten, "192.0.2.1", "a@example.com", SPF_PASS, "ip4:192.0.2.1");
	expect(eleven, "192.0.2.1", "a@example.com", SPF_PERMERROR, "DNS-querying term number 11");
	/* Counted as evaluated: terms after a match cost nothing. */
	const char *lazy = "{\"example.com\": {\"TXT\": [\"v=spf1 ip4:192.0.2.1 a a a a a a a a a "
	                   "a a a a a -all\"]}}";

	expect(lazy, "192.0.2.1", "a@example.com", SPF_PASS, NULL);
}

static void
test_includes_and_redirects_count_towards_the_limit(void **state)
{
	/* 4 in example.com (include, a, a, redirect) + 3 in inc + 3 in red = 10: fine; one more
	 * anywhere is over. */
	const char *zone =
	    "{\"example.com\": {\"TXT\": [\"v=spf1 include:inc.example.com a a "
	    "redirect=red.example.com\"], \"A\": [\"198.51.100.1\"]},"
	    " \"inc.example.com\": {\"TXT\": [\"v=spf1 a a a\"], \"A\": [\"198.51.100.2\"]},"
	    " \"red.example.com\": {\"TXT\": [\"v=spf1 a a a ip4:192.0.2.1 -all\"],"
	    "   \"A\": [\"198.51.100.3\"]},"
	    " \"over.example.com\": {\"TXT\": [\"v=spf1 include:inc.example.com a a a "
	    "redirect=red.example.com\"], \"A\": [\"198.51.100.1\"]}}";

	expect(zone, "192.0.2.1", "a@example.com", SPF_PASS, "red.example.com");
	expect(zone, "192.0.2.1", "a@over.example.com", SPF_PERMERROR,
	       "DNS-querying term number 11");
}

static void
test_void_lookups(void **state)
{
	const char *zone = "{\"two.example.com\": {\"TXT\": [\"v=spf1 a:nx1.example.com "
	                   "mx:nodata.example.com ?all\"]},"
	                   " \"three.example.com\": {\"TXT\": [\"v=spf1 a:nx1.example.com "
	                   "mx:nodata.example.com exists:nx2.example.com ?all\"]},"
	                   " \"nodata.example.com\": {\"A\": [\"198.51.100.1\"]}}";

	expect(zone, "192.0.2.1", "a@two.example.com", SPF_NEUTRAL, "?all");
	expect(zone, "192.0.2.1", "a@three.example.com", SPF_PERMERROR, "void lookup number 3");
}

static void
test_mx_names_limit(void **state)
{
	/* Ten MX names are checked; eleven are a permerror even when the first matches. */
	char zone[4096];
	size_t n = 0;

	n += (size_t)snprintf(zone + n, sizeof(zone) - n,
	                      "{\"ten.example.com\": {\"TXT\": [\"v=spf1 mx -all\"], \"MX\": [");
	for (int i = 0; i < 10; i++)
		n += (size_t)snprintf(zone + n, sizeof(zone) - n, "%s[%d, \"mx%d.example.com\"]",
		                      i ? "," : "", i, i);
	n += (size_t)snprintf(
	    zone + n, sizeof(zone) - n,
	    "]}, \"eleven.example.com\": {\"TXT\": [\"v=spf1 mx -all\"], \"MX\": [");
	for (int i = 0; i < 11; i++)
		n += (size_t)snprintf(zone + n, sizeof(zone) - n, "%s[%d, \"mx%d.example.com\"]",
		                      i ? "," : "", i, i);
	n += (size_t)snprintf(zone + n, sizeof(zone) - n, "]}");
	for (int i = 0; i < 11; i++)
		n +=
		    (size_t)snprintf(zone + n, sizeof(zone) - n,
		                     ", \"mx%d.example.com\": {\"A\": [\"192.0.2.%d\"]}", i, i + 1);
	snprintf(zone + n, sizeof(zone) - n, "}");

	expect(zone, "192.0.2.10", "a@ten.example.com", SPF_PASS, "\"mx\" matched");
	expect(zone, "192.0.2.1", "a@eleven.example.com", SPF_PERMERROR, "11 MX records");
}

static void
test_ptr_names_past_ten_are_ignored(void **state)
{
	char zone[4096];
	size_t n = 0;

	n += (size_t)snprintf(zone + n, sizeof(zone) - n,
	                      "{\"example.com\": {\"TXT\": [\"v=spf1 ptr -all\"]},"
	                      " \"1.2.0.192.in-addr.arpa\": {\"PTR\": [");
	for (int i = 0; i < 11; i++)
		n += (size_t)snprintf(zone + n, sizeof(zone) - n, "%s\"h%d.example.com\"",
		                      i ? "," : "", i);
	n += (size_t)snprintf(zone + n, sizeof(zone) - n, "]}");
	/* only the eleventh name validates */
	snprintf(zone + n, sizeof(zone) - n, ", \"h10.example.com\": {\"A\": [\"192.0.2.1\"]}}");
	expect(zone, "192.0.2.1", "a@example.com", SPF_FAIL, "-all");
}

static void
test_a_records_are_not_limited(void **state)
{
	char zone[8192];
	size_t n = 0;

	n += (size_t)snprintf(zone + n, sizeof(zone) - n,
	                      "{\"example.com\": {\"TXT\": [\"v=spf1 a -all\"], \"A\": [");
	for (int i = 1; i <= 100; i++)
		n += (size_t)snprintf(zone + n, sizeof(zone) - n, "%s\"198.51.100.%d\"",
		                      i > 1 ? "," : "", i);
	snprintf(zone + n, sizeof(zone) - n, "]}}");
	expect(zone, "198.51.100.100", "a@example.com", SPF_PASS, NULL);
}

/* ---- DNS errors inside mechanisms (§5, §5.5) ---- */

static void
test_dns_errors(void **state)
{
	const char *zone =
	    "{\"mx.example.com\": {\"TXT\": [\"v=spf1 mx -all\"], \"MX\": [[0, "
	    "\"slow.example.com\"]]},"
	    " \"slow.example.com\": {\"TIMEOUT\": true},"
	    " \"ptr.example.com\": {\"TXT\": [\"v=spf1 ptr ?all\"]},"
	    " \"1.2.0.192.in-addr.arpa\": {\"TIMEOUT\": true},"
	    " \"ptrname.example.com\": {\"TXT\": [\"v=spf1 ptr ?all\"]},"
	    " \"2.2.0.192.in-addr.arpa\": {\"PTR\": [\"slow.ptrname.example.com\","
	    "   \"ok.ptrname.example.com\"]},"
	    " \"slow.ptrname.example.com\": {\"TIMEOUT\": true},"
	    " \"ok.ptrname.example.com\": {\"A\": [\"192.0.2.2\"]},"
	    " \"inc.example.com\": {\"TXT\": [\"v=spf1 include:none.example.com -all\"]},"
	    " \"none.example.com\": {\"A\": [\"192.0.2.1\"]}}";

	/* An MX host's address lookup failing is a temperror... */
	expect(zone, "192.0.2.1", "a@mx.example.com", SPF_TEMPERROR, "slow.example.com");
	/* ...the PTR lookup failing only makes ptr not match, */
	expect(zone, "192.0.2.1", "a@ptr.example.com", SPF_NEUTRAL, "?all");
	/* and one name failing validation is skipped. */
	expect(zone, "192.0.2.2", "a@ptrname.example.com", SPF_PASS, "\"ptr\" matched");
	/* An include of a domain without a record is a permerror (§5.2). */
	expect(zone, "192.0.2.1", "a@inc.example.com", SPF_PERMERROR,
	       "include:none.example.com: no SPF record");
}

/* ---- Identities and scopes ---- */

static void
test_null_sender_is_postmaster_at_helo(void **state)
{
	const char *zone =
	    "{\"helo.example.org\": {\"TXT\": [\"v=spf1 exists:%{l}.%{o}.x.example.org "
	    "-all\"]},"
	    " \"postmaster.helo.example.org.x.example.org\": {\"A\": [\"127.0.0.2\"]}}";
	struct outcome *o = check(zone, SPF_SCOPE_MFROM, "192.0.2.1", "", "helo.example.org");

	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->mechanism, "exists:%{l}.%{o}.x.example.org");
	assert_string_equal(o->identity, "postmaster@helo.example.org");
	assert_string_equal(o->scope, "mfrom");
	free(o);
	o = check(zone, SPF_SCOPE_MFROM, "192.0.2.1", NULL, "helo.example.org");
	assert_string_equal(o->identity, "postmaster@helo.example.org");
	free(o);
}

static void
test_helo_scope(void **state)
{
	const char *zone = "{\"mail.example.org\": {\"TXT\": [\"v=spf1 a -all\"],"
	                   "   \"A\": [\"192.0.2.25\"]},"
	                   " \"example.com\": {\"TXT\": [\"v=spf1 -all\"]}}";
	struct outcome *o =
	    check(zone, SPF_SCOPE_HELO, "192.0.2.25", "user@example.com", "mail.example.org");

	/* The sender plays no part: the HELO name is checked, as postmaster@HELO. */
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->identity, "postmaster@mail.example.org");
	assert_string_equal(o->domain, "mail.example.org");
	assert_string_equal(o->mechanism, "a");
	free(o);
	o = check(zone, SPF_SCOPE_HELO, "192.0.2.25", NULL, "[192.0.2.25]");
	assert_int_equal(o->result, SPF_NONE);
	free(o);
}

static void
test_identity_domains(void **state)
{
	const char *zone = "{\"example.com\": {\"TXT\": [\"v=spf1 -all\"]}}";

	expect(zone, "192.0.2.1", "user@example.com", SPF_FAIL, NULL);
	expect(zone, "192.0.2.1", "example.com", SPF_FAIL, NULL); /* no '@': all domain */
	expect(zone, "192.0.2.1", "\"odd@local\"@example.com", SPF_FAIL, NULL);
	expect(zone, "192.0.2.1", "user@example.com.", SPF_FAIL, NULL);
	expect(zone, "192.0.2.1", "user@nowhere.example.com", SPF_NONE, "does not exist");
	expect(zone, "192.0.2.1", "user@localhost", SPF_NONE, "not a valid domain");
	expect(zone, "192.0.2.1", "user@exa mple.com", SPF_NONE, "not a valid domain");
	expect(zone, "192.0.2.1", "user@caf\xc3\xa9.example", SPF_NONE, "not a valid domain");
	expect(zone, "192.0.2.1", "user@", SPF_NONE, "not a valid domain");
}

static void
test_sender_id_pra_scope(void **state)
{
	const char *zone =
	    "{\"both.example.com\": {\"TXT\": [\"v=spf1 -all\", \"spf2.0/pra ip4:192.0.2.1 "
	    "-all\"]},"
	    " \"mfromonly.example.com\": {\"TXT\": [\"spf2.0/mfrom -all\","
	    "   \"v=spf1 ip4:192.0.2.1 -all\"]},"
	    " \"spf1.example.com\": {\"TXT\": [\"v=spf1 ip4:192.0.2.1 -all\"]},"
	    " \"two.example.com\": {\"TXT\": [\"spf2.0/pra -all\", \"spf2.0/mfrom,pra +all\"]},"
	    " \"none.example.com\": {\"A\": [\"192.0.2.1\"]}}";
	struct outcome *o;

	/* spf2.0/pra is preferred for pra, and ignored by the mfrom scope. */
	o = check(zone, SPF_SCOPE_PRA, "192.0.2.1", "user@both.example.com", "h.example.org");
	assert_int_equal(o->result, SPF_PASS);
	assert_string_equal(o->scope, "pra");
	free(o);
	o = check(zone, SPF_SCOPE_MFROM, "192.0.2.1", "user@both.example.com", "h.example.org");
	assert_int_equal(o->result, SPF_FAIL);
	free(o);
	/* Without a spf2.0 record covering pra, v=spf1 serves both. */
	o = check(zone, SPF_SCOPE_PRA, "192.0.2.1", "user@mfromonly.example.com", "h.example.org");
	assert_int_equal(o->result, SPF_PASS);
	free(o);
	o = check(zone, SPF_SCOPE_PRA, "192.0.2.9", "user@spf1.example.com", "h.example.org");
	assert_int_equal(o->result, SPF_FAIL);
	free(o);
	/* Two records covering pra: permerror (RFC 4406 §3.4). */
	o = check(zone, SPF_SCOPE_PRA, "192.0.2.1", "user@two.example.com", "h.example.org");
	assert_int_equal(o->result, SPF_PERMERROR);
	assert_non_null(strstr(o->reason, "2 spf2.0 records"));
	free(o);
	/* Sender ID fails a PRA whose domain does not exist; SPF says none. */
	o = check(zone, SPF_SCOPE_PRA, "192.0.2.1", "user@nx.example.com", "h.example.org");
	assert_int_equal(o->result, SPF_FAIL);
	assert_true(o->default_explanation);
	free(o);
	o = check(zone, SPF_SCOPE_PRA, "192.0.2.1", "user@none.example.com", "h.example.org");
	assert_int_equal(o->result, SPF_NONE);
	free(o);
	/* No PRA at all. */
	o = check(zone, SPF_SCOPE_PRA, "192.0.2.1", "", "h.example.org");
	assert_int_equal(o->result, SPF_PERMERROR);
	free(o);
}

/* ---- Explanations ---- */

static void
test_explanations(void **state)
{
	const char *zone =
	    "{\"example.com\": {\"TXT\": [\"v=spf1 -all exp=why.%{d}\"]},"
	    " \"why.example.com\": {\"TXT\": [\"%{c} may not send for %{o} (%{p}, %{r}, %{t}) \"]},"
	    " \"1.2.0.192.in-addr.arpa\": {\"PTR\": [\"a.example.net\", \"mx.example.com\"]},"
	    " \"mx.example.com\": {\"A\": [\"192.0.2.1\"]},"
	    " \"a.example.net\": {\"A\": [\"192.0.2.1\"]},"
	    " \"noexp.example.com\": {\"TXT\": [\"v=spf1 ~all exp=why.example.com\"]}}";
	struct outcome *o = check(zone, SPF_SCOPE_MFROM, "192.0.2.1", "u@example.com", "h.example");

	assert_int_equal(o->result, SPF_FAIL);
	assert_false(o->default_explanation);
	/* %{p} prefers the validated name within <domain> (§7.3) */
	assert_string_equal(o->explanation,
	                    "192.0.2.1 may not send for example.com (mx.example.com, unknown, "
	                    "1700000000) ");
	assert_string_equal(o->mechanism, "-all");
	free(o);
	/* Explanations go with fail only. */
	o = check(zone, SPF_SCOPE_MFROM, "192.0.2.1", "u@noexp.example.com", "h.example");
	assert_int_equal(o->result, SPF_SOFTFAIL);
	assert_false(o->has_explanation);
	free(o);
}

/* ---- What callers are promised ---- */

static unsigned callbacks;

static void
count_cb(void *arg, const struct spf_outcome *o)
{
	callbacks++;
}

static void
test_cancel_stops_lookups_and_callback(void **state)
{
	struct event_base *base = event_base_new();
	struct memdns *m =
	    memdns_new(base, "{\"example.com\": {\"TXT\": [\"v=spf1 -all\"]}}", NULL);
	struct spf_request req =
	    spf_req(SPF_SCOPE_MFROM, "192.0.2.1", "u@example.com", "h.example");
	struct spf_dns dns;
	struct spf_check *c;

	memdns_ops(m, &dns);
	callbacks = 0;
	/* In flight: the TXT lookup is cancelled with the check. */
	c = spf_check_start(&dns, &req, count_cb, NULL);
	assert_non_null(c);
	spf_check_cancel(c);
	assert_int_equal(m->cancels, 1);
	/* Decided at once (a malformed domain), not yet delivered: still cancellable. */
	req.sender = "u@bad..example.com";
	c = spf_check_start(&dns, &req, count_cb, NULL);
	assert_non_null(c);
	spf_check_cancel(c);
	event_base_loop(base, EVLOOP_NONBLOCK);
	assert_int_equal(callbacks, 0);
	spf_check_cancel(NULL);
	memdns_free(m);
	event_base_free(base);
}

static void
test_whole_check_deadline(void **state)
{
	struct event_base *base = event_base_new();
	struct memdns *m = memdns_new(base,
	                              "{\"example.com\": {\"TXT\": [\"v=spf1 a:hang.example.com "
	                              "-all exp=hang.example.com\"]},"
	                              " \"fail.example.com\": {\"TXT\": [\"v=spf1 -all "
	                              "exp=hang.example.com\"]},"
	                              " \"hang.example.com\": {\"HANG\": true}}",
	                              NULL);
	struct spf_request req =
	    spf_req(SPF_SCOPE_MFROM, "192.0.2.1", "u@example.com", "h.example");
	struct outcome o;

	/* §4.6.4: a check that takes too long is a temperror, its lookup cancelled... */
	req.timeout_ms = 50;
	spf_run(m, &req, &o);
	assert_int_equal(o.result, SPF_TEMPERROR);
	assert_non_null(strstr(o.reason, "took over 50 ms"));
	assert_int_equal(m->cancels, 1);
	/* ...unless only the explanation was missing: fail, with the default one (§6.2). */
	req.sender = "u@fail.example.com";
	spf_run(m, &req, &o);
	assert_int_equal(o.result, SPF_FAIL);
	assert_true(o.default_explanation);
	assert_int_equal(m->cancels, 2);
	memdns_free(m);
	event_base_free(base);
}

static void
test_outcome_delivered_from_the_loop(void **state)
{
	struct event_base *base = event_base_new();
	struct memdns *m = memdns_new(base, "{}", NULL);
	struct spf_request req =
	    spf_req(SPF_SCOPE_MFROM, "192.0.2.1", "u@[192.0.2.1]", "h.example");
	struct outcome o;

	/* Even a result that needs no DNS comes from the loop (spf_run checks it). */
	spf_run(m, &req, &o);
	assert_int_equal(o.result, SPF_NONE);
	memdns_free(m);
	event_base_free(base);
}

static void
test_resinfo(void **state)
{
	struct spf_outcome o = {.result = SPF_PASS,
	                        .scope = "mfrom",
	                        .identity = "u@example.com",
	                        .reason = "example.com: \"a\" matched"};
	char *s = spf_resinfo(&o, NULL);

	assert_string_equal(s, "spf=pass smtp.mailfrom=u@example.com");
	free(s);
	o.result = SPF_FAIL;
	o.reason = "example.com: \"-all\" matched";
	s = spf_resinfo(&o, NULL);
	assert_string_equal(s, "spf=fail smtp.mailfrom=u@example.com "
	                       "reason=\"example.com: \\\"-all\\\" matched\"");
	free(s);
	o.scope = "helo";
	o.identity = "postmaster@mail.example.org";
	o.result = SPF_NONE;
	o.reason = "";
	s = spf_resinfo(&o, NULL);
	assert_string_equal(s, "spf=none smtp.helo=mail.example.org");
	free(s);
	o.scope = "pra";
	o.identity = "u@example.com";
	o.result = SPF_PASS;
	s = spf_resinfo(&o, "Resent-Sender");
	assert_string_equal(s, "sender-id=pass header.resent-sender=u@example.com");
	free(s);
}

static void
test_names_of_things(void **state)
{
	enum spf_scope s;

	assert_string_equal(spf_result_name(SPF_SOFTFAIL), "softfail");
	assert_string_equal(spf_result_name(SPF_PERMERROR), "permerror");
	assert_string_equal(spf_result_name((enum spf_result)99), "?");
	assert_int_equal(spf_scope_parse("PRA", &s), 0);
	assert_int_equal(s, SPF_SCOPE_PRA);
	assert_int_equal(spf_scope_parse("mfrom", &s), 0);
	assert_int_equal(s, SPF_SCOPE_MFROM);
	assert_int_equal(spf_scope_parse("ehlo", &s), -1);
	assert_string_equal(spf_scope_name(SPF_SCOPE_HELO), "helo");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ten_dns_mechanisms_pass_eleven_do_not),
	    cmocka_unit_test(test_includes_and_redirects_count_towards_the_limit),
	    cmocka_unit_test(test_void_lookups),
	    cmocka_unit_test(test_mx_names_limit),
	    cmocka_unit_test(test_ptr_names_past_ten_are_ignored),
	    cmocka_unit_test(test_a_records_are_not_limited),
	    cmocka_unit_test(test_dns_errors),
	    cmocka_unit_test(test_null_sender_is_postmaster_at_helo),
	    cmocka_unit_test(test_helo_scope),
	    cmocka_unit_test(test_identity_domains),
	    cmocka_unit_test(test_sender_id_pra_scope),
	    cmocka_unit_test(test_explanations),
	    cmocka_unit_test(test_cancel_stops_lookups_and_callback),
	    cmocka_unit_test(test_whole_check_deadline),
	    cmocka_unit_test(test_outcome_delivered_from_the_loop),
	    cmocka_unit_test(test_resinfo),
	    cmocka_unit_test(test_names_of_things),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
