/* test_auth_dmarc_dns.c - policy discovery against a real DNS server on loopback
 * (tests/integration/dnsserver.py) through the resolver and dkim_lookup_dns(): a record split
 * into several character-strings, NXDOMAIN at the From domain then the organizational domain,
 * several records, SERVFAIL, a server that never answers, and a check cancelled while its
 * lookup is in flight. */
#include "test_dns_util.h"

#include "auth/auth.h"

#define ANSWER_MS 8000

static struct dns_server server;
static struct dmarc_psl *psl;

static int
setup(void **state)
{
	char err[256];
	const char *zone =
	    "{\"ttl\": 300, \"negative_ttl\": 1, \"zones\": [\"example.com\"],\n"
	    " \"records\": {\n"
	    "  \"_dmarc.example.com\": {\"TXT\": [[\"v=DMARC1; p=reject; \", \"sp=quarantine; "
	    "rua=mailto:d@example.com\"], \"not a policy\"]},\n"
	    "  \"_dmarc.two.example.com\": {\"TXT\": [\"v=DMARC1; p=none\", \"v=DMARC1; "
	    "p=reject\"]},\n"
	    "  \"_dmarc.bad.example.com\": {\"TXT\": [\"v=DMARC1; p=nope\"]},\n"
	    "  \"mail.example.com\": {\"A\": [\"192.0.2.1\"]}\n"
	    " },\n"
	    " \"servfail\": [\"_dmarc.broken.example.com\"],\n"
	    " \"drop\": [\"_dmarc.silent.example.com\"]\n"
	    "}\n";

	psl = dmarc_psl_load(NULL, err, sizeof(err));
	if (psl == NULL)
		return -1;
	return dns_server_start(&server, zone);
}

static int
teardown(void **state)
{
	dns_server_stop(&server);
	dmarc_psl_free(psl);
	return 0;
}

struct got_dmarc {
	struct loop *l;
	struct dmarc_outcome o;
	unsigned calls;
};

static void
on_outcome(void *arg, const struct dmarc_outcome *o)
{
	struct got_dmarc *g = arg;

	g->o = *o;
	g->calls++;
	g->l->answers++;
}

static struct dmarc_outcome
check_live(struct loop *l, const char *from)
{
	struct dkim_sig_result sig = {.result = DKIM_RESULT_PASS, .domain = "esp.example"};
	struct dkim_results dr = {.n = 1, .sigs = &sig};
	struct dmarc_request req = {
	    .spf = SPF_PASS, .spf_domain = "example.com", .dkim = &dr, .pct_roll = 1};
	struct dkim_lookup lookup;
	struct got_dmarc g = {.l = l};

	dkim_lookup_dns(&lookup, l->r);
	/* The resolver never answers from inside the call. */
	assert_non_null(dmarc_check_start(&lookup, psl, from, &req, on_outcome, &g));
	assert_int_equal(g.calls, 0);
	loop_until(l, l->answers + 1, ANSWER_MS);
	assert_int_equal(g.calls, 1);
	return g.o;
}

static void
test_policies_from_the_dns(void **state)
{
	struct loop l;
	struct dmarc_outcome o;

	loop_init(&l, server.forwarder, 0);
	o = check_live(&l, "example.com");
	assert_int_equal(o.result, DMARC_PASS);
	assert_true(o.spf_aligned);
	assert_int_equal(o.policy, DMARC_P_REJECT);

	/* mail.example.com has no _dmarc (NXDOMAIN): example.com's sp= applies. */
	o = check_live(&l, "mail.example.com");
	assert_int_equal(o.result, DMARC_PASS);
	assert_true(o.subdomain);
	assert_int_equal(o.policy, DMARC_P_QUARANTINE);
	assert_string_equal(o.policy_domain, "example.com");
	o = check_live(&l, "x.y.example.com");
	assert_string_equal(o.policy_domain, "example.com");

	o = check_live(&l, "two.example.com");
	assert_int_equal(o.result, DMARC_NONE);
	assert_string_equal(o.reason, "2 DMARC records at _dmarc.two.example.com (RFC 7489 "
	                              "§6.6.3: none applies)");

	o = check_live(&l, "bad.example.com");
	assert_int_equal(o.result, DMARC_PERMERROR);

	o = check_live(&l, "broken.example.com");
	assert_int_equal(o.result, DMARC_TEMPERROR);
	assert_non_null(strstr(o.reason, "_dmarc.broken.example.com: "));
	loop_free(&l);
}

static void
test_silent_server(void **state)
{
	struct loop l = {0};
	struct dmarc_outcome o;

	l.base = event_base_new();
	l.r = resolver_with(l.base, server.forwarder, 700, 0);
	o = check_live(&l, "silent.example.com");
	assert_int_equal(o.result, DMARC_TEMPERROR);

	/* Cancelled while the lookup is in flight: no callback, nothing leaks. */
	struct dmarc_request req = {.spf = SPF_NONE};
	struct dkim_lookup lookup;
	struct got_dmarc g = {.l = &l};
	struct dmarc_check *c;

	dkim_lookup_dns(&lookup, l.r);
	c = dmarc_check_start(&lookup, psl, "silent.example.com", &req, on_outcome, &g);
	assert_non_null(c);
	loop_for(&l, 100);
	dmarc_check_cancel(c);
	loop_for(&l, 1000);
	assert_int_equal(g.calls, 0);
	loop_free(&l);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_policies_from_the_dns),
	    cmocka_unit_test(test_silent_server),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
