/* test_auth_dkim_dns.c - verification with keys from a real DNS server on loopback
 * (tests/integration/dnsserver.py) through the resolver and dkim_lookup_dns(): records split
 * into several character-strings, NXDOMAIN, SERVFAIL, a server that never answers, and a
 * verifier freed while its lookups are in flight. */
#include "test_auth_dkim_util.h"
#include "test_dns_util.h"

#define ANSWER_MS 8000

static struct dns_server server;
static char *dir;
static struct dkim_key *rsa, *rsa4096, *ed;

static int
setup(void **state)
{
	char *rec_rsa, *rec_4096, *rec_ed, *zone;

	dir = tu_tmpdir();
	rsa = tu_key(dir, "rsa", DKIM_KEYGEN_RSA2048, &rec_rsa);
	rsa4096 = tu_key(dir, "rsa4096", DKIM_KEYGEN_RSA4096, &rec_4096);
	ed = tu_key(dir, "ed", DKIM_KEYGEN_ED25519, &rec_ed);
	/* The long records are split into 255-octet character-strings by the server. */
	zone = xasprintf(
	    "{\"ttl\": 300, \"negative_ttl\": 1, \"zones\": [\"example.com\"],\n"
	    " \"records\": {\n"
	    "  \"rsa._domainkey.example.com\": {\"TXT\": [\"%s\"]},\n"
	    "  \"big._domainkey.example.com\": {\"TXT\": [\"%s\"]},\n"
	    "  \"ed._domainkey.example.com\": {\"TXT\": [[\"v=DKIM1; k=ed25519; \", \"%s\"]]},\n"
	    "  \"two._domainkey.example.com\": {\"TXT\": [\"not a key\", \"%s\"]},\n"
	    "  \"revoked._domainkey.example.com\": {\"TXT\": [\"v=DKIM1; p=\"]}\n"
	    " },\n"
	    " \"servfail\": [\"broken._domainkey.example.com\"],\n"
	    " \"drop\": [\"silent._domainkey.example.com\"]\n"
	    "}\n",
	    rec_rsa, rec_4096, rec_ed + strlen("v=DKIM1; k=ed25519; "), rec_ed);
	free(rec_rsa);
	free(rec_4096);
	free(rec_ed);
	int rc = dns_server_start(&server, zone);
	free(zone);
	return rc;
}

static int
teardown(void **state)
{
	dns_server_stop(&server);
	dkim_key_free(rsa);
	dkim_key_free(rsa4096);
	dkim_key_free(ed);
	tu_rmdir(dir);
	return 0;
}

static const char msg[] = "From: Alice <alice@example.com>\r\n"
                          "To: bob@example.org\r\n"
                          "Subject: keys from the DNS\r\n"
                          "\r\n"
                          "Hello Bob.\r\n";

struct got_dkim {
	struct loop *l;
	struct tu_results r;
};

static void
on_results(void *arg, const struct dkim_results *res)
{
	struct got_dkim *g = arg;

	tu_copy_results(&g->r, res);
	g->l->answers++;
}

static char *
signed_by(const char *const *selectors, size_t n)
{
	struct dkim_signer s[8];

	for (size_t i = 0; i < n; i++) {
		struct dkim_key *k = strcmp(selectors[i], "rsa") == 0   ? rsa
		                     : strcmp(selectors[i], "big") == 0 ? rsa4096
		                                                        : ed;
		s[i] = (struct dkim_signer){.key = k,
		                            .domain = "example.com",
		                            .selector = selectors[i],
		                            .header_canon = DKIM_CANON_RELAXED,
		                            .body_canon = DKIM_CANON_SIMPLE};
	}
	return tu_signed(s, n, msg, time_now_us() / USEC);
}

static void
verify_live(struct loop *l, const char *m, struct got_dkim *g)
{
	struct dkim_lookup lookup;
	struct dkim_verify *v;

	memset(g, 0, sizeof(*g));
	g->l = l;
	dkim_lookup_dns(&lookup, l->r);
	v = dkim_verify_new(&lookup, NULL);
	dkim_verify_update(v, m, strlen(m));
	dkim_verify_final(v, on_results, g);
	loop_until(l, l->answers + 1, ANSWER_MS);
	dkim_verify_free(v);
}

static void
test_keys_from_the_dns(void **state)
{
	const char *sels[] = {"rsa", "big", "ed", "two", "revoked", "missing", "broken"};
	struct loop l;
	struct got_dkim g;
	char *m = signed_by(sels, nitems(sels));

	loop_init(&l, server.forwarder, 0);
	verify_live(&l, m, &g);
	assert_int_equal(g.r.n, 7);
	for (int i = 0; i < 4; i++)
		if (g.r.r[i].result != DKIM_RESULT_PASS)
			fail_msg("%s: %s", sels[i], g.r.r[i].reason);
	assert_int_equal(g.r.r[1].key_bits, 4096);
	assert_int_equal(g.r.r[4].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(g.r.r[4].reason, "key revoked (empty p=)");
	/* Over the limit of five: not looked up at all. */
	assert_int_equal(g.r.r[5].result, DKIM_RESULT_NEUTRAL);
	assert_int_equal(g.r.r[6].result, DKIM_RESULT_NEUTRAL);
	free(m);

	const char *bad[] = {"missing", "broken"};
	m = signed_by(bad, 2);
	verify_live(&l, m, &g);
	assert_int_equal(g.r.r[0].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(g.r.r[0].reason, "no key at missing._domainkey.example.com");
	assert_int_equal(g.r.r[1].result, DKIM_RESULT_TEMPERROR);
	assert_true(strncmp(g.r.r[1].reason, "key lookup failed: ", 19) == 0);
	free(m);
	loop_free(&l);
}

static void
test_silent_server(void **state)
{
	const char *sels[] = {"silent", "ed"};
	char *m = signed_by(sels, 2);
	struct loop l = {0};
	struct got_dkim g;

	/* A deadline: the silent one is a temperror, the other still passes. */
	l.base = event_base_new();
	l.r = resolver_with(l.base, server.forwarder, 700, 0);
	verify_live(&l, m, &g);
	assert_int_equal(g.r.r[0].result, DKIM_RESULT_TEMPERROR);
	assert_int_equal(g.r.r[1].result, DKIM_RESULT_PASS);

	/* Freed while the lookup is in flight: cancelled, no callback, nothing leaks. */
	struct dkim_lookup lookup;
	struct dkim_verify *v;
	memset(&g, 0, sizeof(g));
	g.l = &l;
	dkim_lookup_dns(&lookup, l.r);
	v = dkim_verify_new(&lookup, NULL);
	dkim_verify_update(v, m, strlen(m));
	dkim_verify_final(v, on_results, &g);
	loop_for(&l, 100);
	dkim_verify_free(v);
	loop_for(&l, 1000);
	assert_false(g.r.called);
	loop_free(&l);
	free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys_from_the_dns),
	    cmocka_unit_test(test_silent_server),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
