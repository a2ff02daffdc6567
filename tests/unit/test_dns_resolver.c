/* test_dns_resolver.c - the answers delivery and authentication get, from a real DNS server
 * on loopback: MX order, implicit and null MX, NXDOMAIN, SERVFAIL, mail exchanger addresses,
 * TXT and TLSA. */
#include "test_dns_util.h"

#define ANSWER_MS 5000

static struct dns_server server;

static int
setup(void **state)
{
	char zone[8192];

	zone_json(zone, sizeof(zone), "old.drover.example", false);
	return dns_server_start(&server, zone);
}

static int
teardown(void **state)
{
	dns_server_stop(&server);
	return 0;
}

static struct loop l;

static int
loop_setup(void **state)
{
	loop_init(&l, server.forwarder, 0);
	return 0;
}

static int
loop_teardown(void **state)
{
	loop_free(&l);
	return 0;
}

static void
mx(struct got *g, const char *domain)
{
	got_init(g, &l);
	dns_mx(l.r, domain, got_mx, g);
	loop_until(&l, l.answers + 1, ANSWER_MS);
	assert_int_equal(g->calls, 1);
}

static void
mx_addrs(struct got *g, const char *domain, enum dns_ip_policy policy)
{
	got_init(g, &l);
	dns_mx_addrs(l.r, domain, policy, got_mx_addrs, g);
	loop_until(&l, l.answers + 1, ANSWER_MS);
	assert_int_equal(g->calls, 1);
}

static void
addr(struct got *g, const char *host, enum dns_ip_policy policy)
{
	got_init(g, &l);
	dns_addr(l.r, host, policy, got_addr, g);
	loop_until(&l, l.answers + 1, ANSWER_MS);
	assert_int_equal(g->calls, 1);
}

static void
test_mx_by_preference(void **state)
{
	struct got g;

	mx(&g, "multi.drover.example");
	assert_int_equal(g.status, DNS_OK);
	assert_false(g.implicit);
	assert_int_equal(g.n, 5);
	assert_in_range(g.ttl, 1, 300);
	assert_string_equal(g.error, "");
	for (int i = 0; i < 3; i++) {
		assert_int_equal(g.pref[i], 10);
		assert_non_null(strchr("abc", g.name[i][0]));
	}
	assert_true(name_index(&g, "a.drover.example") < 3);
	assert_true(name_index(&g, "b.drover.example") < 3);
	assert_true(name_index(&g, "c.drover.example") < 3);
	assert_int_equal(g.pref[3], 20);
	assert_string_equal(g.name[3], "d.drover.example");
	assert_int_equal(g.pref[4], 30);
	assert_string_equal(g.name[4], "e.drover.example");
}

/* The answer is cached after the first query, but each answer is shuffled anew, so that load
 * spreads over equal exchangers. */
static void
test_equal_preferences_take_turns(void **state)
{
	bool first[3] = {false};
	struct got g;

	for (int i = 0; i < 40; i++) {
		mx(&g, "multi.drover.example");
		assert_int_equal(g.status, DNS_OK);
		first[g.name[0][0] - 'a'] = true;
	}
	assert_true(first[0] && first[1] && first[2]);
}

static void
test_mx_through_a_cname_and_in_any_case(void **state)
{
	struct got g;

	mx(&g, "cname.drover.example");
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 5);
	assert_string_equal(g.name[4], "e.drover.example");

	mx(&g, "MULTI.Drover.Example.");
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 5);
}

static void
test_null_mx(void **state)
{
	struct got g;

	mx(&g, "nullmx.drover.example");
	assert_int_equal(g.status, DNS_NULL_MX);
	assert_int_equal(g.n, 0);
	assert_in_range(g.ttl, 1, 300);
	assert_non_null(strstr(g.error, "RFC 7505"));

	mx_addrs(&g, "nullmx.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_NULL_MX);
	assert_int_equal(g.n, 0);
}

static void
test_nxdomain(void **state)
{
	struct got g;

	mx(&g, "nowhere.drover.example");
	assert_int_equal(g.status, DNS_NXDOMAIN);
	assert_int_equal(g.n, 0);
	assert_string_equal(g.error, "no such domain");

	mx_addrs(&g, "nowhere.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_NXDOMAIN);
}

static void
test_servfail_is_a_temporary_failure(void **state)
{
	struct got g;
	uint64_t start = mono_ms();

	mx(&g, "broken.drover.example");
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_int_equal(g.ttl, 0);
	assert_string_equal(g.error, "SERVFAIL");
	/* Unbound's answer, not our deadline. */
	assert_true(mono_ms() - start < DNS_DEFAULT_TIMEOUT_MS);
}

static void
test_no_mx_means_the_domain_itself(void **state)
{
	struct got g;

	mx(&g, "nomx.drover.example");
	assert_int_equal(g.status, DNS_OK);
	assert_true(g.implicit);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.pref[0], 0);
	assert_string_equal(g.name[0], "nomx.drover.example");

	mx_addrs(&g, "nomx.drover.example.", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_OK);
	assert_true(g.implicit);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.name[0], "nomx.drover.example");
	assert_string_equal(g.addr[0], "::9");
	assert_string_equal(g.addr[1], "127.0.0.9");

	mx_addrs(&g, "nomx.drover.example", DNS_IP_V4_ONLY);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.addr[0], "127.0.0.9");
}

static void
test_mx_addresses_in_the_order_to_try(void **state)
{
	struct got g;

	mx_addrs(&g, "multi.drover.example", DNS_IP_PREFER_V4);
	assert_int_equal(g.status, DNS_OK);
	assert_false(g.implicit);
	/* a: 127.0.0.1 and ::1, b: 127.0.0.2, c: ::2, d: 127.0.0.4, e: none */
	assert_int_equal(g.n, 5);
	assert_in_range(g.ttl, 1, 300);
	for (size_t i = 1; i < g.n; i++)
		assert_true(g.pref[i - 1] <= g.pref[i]);
	int a4 = -1, a6 = -1;

	for (size_t i = 0; i < g.n; i++) {
		if (strcmp(g.addr[i], "127.0.0.1") == 0)
			a4 = (int)i;
		if (strcmp(g.addr[i], "::1") == 0)
			a6 = (int)i;
	}
	assert_true(a4 >= 0 && a6 == a4 + 1); /* a's addresses together, IPv4 first */
	assert_string_equal(g.name[a4], "a.drover.example");
	assert_int_equal(g.pref[3], 10); /* a's two, b's and c's one each */
	assert_int_equal(g.pref[4], 20);
	assert_string_equal(g.name[4], "d.drover.example");
	assert_string_equal(g.addr[4], "127.0.0.4");

	mx_addrs(&g, "multi.drover.example", DNS_IP_V6_ONLY);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	for (size_t i = 0; i < g.n; i++)
		assert_non_null(strchr(g.addr[i], ':'));
}

static void
test_mx_hosts_without_addresses(void **state)
{
	struct got g;

	mx_addrs(&g, "noaddr.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_NODATA);
	assert_true(g.implicit);
	assert_int_equal(g.n, 0);

	mx_addrs(&g, "deadmx.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_NODATA);
	assert_string_equal(g.error, "no MX host has an address");

	/* The only host's lookup failed: it may have addresses, try later. */
	mx_addrs(&g, "failmx.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_string_equal(g.error, "SERVFAIL");

	/* One host is enough to try. */
	mx_addrs(&g, "partial.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.name[0], "a.drover.example");
	assert_string_equal(g.addr[0], "::1");
	assert_string_equal(g.addr[1], "127.0.0.1");
}

static void
test_each_host_and_address_once(void **state)
{
	struct got g;

	mx(&g, "dup.drover.example");
	assert_int_equal(g.n, 1);
	assert_int_equal(g.pref[0], 10);

	mx_addrs(&g, "dupaddr.drover.example", DNS_IP_PREFER_V4);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.name[0], "b.drover.example");
	assert_string_equal(g.addr[0], "127.0.0.2");
}

static void
test_addresses(void **state)
{
	struct got g;

	addr(&g, "a.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.addr[0], "::1");
	assert_string_equal(g.addr[1], "127.0.0.1");
	assert_in_range(g.ttl, 1, 300);

	addr(&g, "a.drover.example", DNS_IP_PREFER_V4);
	assert_string_equal(g.addr[0], "127.0.0.1");
	assert_string_equal(g.addr[1], "::1");

	addr(&g, "b.drover.example", DNS_IP_PREFER_V6); /* IPv4 only */
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_string_equal(g.addr[0], "127.0.0.2");

	addr(&g, "b.drover.example", DNS_IP_V6_ONLY);
	assert_int_equal(g.status, DNS_NODATA);
	assert_int_equal(g.n, 0);

	addr(&g, "missing.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_NXDOMAIN);

	addr(&g, "broken.drover.example", DNS_IP_PREFER_V6);
	assert_int_equal(g.status, DNS_TEMPFAIL);
}

static void
test_txt(void **state)
{
	struct got g;
	bool spf = false, joined = false, long_one = false;

	got_init(&g, &l);
	dns_txt(l.r, "txt.drover.example", got_txt, &g);
	loop_until(&l, 1, ANSWER_MS);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 3);
	for (size_t i = 0; i < g.n; i++) { /* unbound may rotate an RRset: any order */
		spf |= strcmp(g.name[i], "v=spf1 -all") == 0 && g.len[i] == 11;
		joined |= strcmp(g.name[i], "part one part two") == 0;
		long_one |= g.len[i] == 600 && strspn(g.name[i], "0") == strlen(g.name[i]);
	}
	assert_true(spf && joined && long_one);

	got_init(&g, &l);
	dns_txt(l.r, "a.drover.example", got_txt, &g);
	loop_until(&l, 2, ANSWER_MS);
	assert_int_equal(g.status, DNS_NODATA);
	assert_int_equal(g.n, 0);
}

static void
test_any_type(void **state)
{
	static const unsigned char tlsa[] = {3, 1, 1, 0x01, 0x23, 0xab, 0xcd};
	struct got g;

	got_init(&g, &l);
	dns_rr(l.r, "_25._tcp.a.drover.example", 52, got_rr, &g);
	loop_until(&l, 1, ANSWER_MS);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 1);
	assert_int_equal(g.len[0], sizeof(tlsa));
	assert_memory_equal(g.rdata[0], tlsa, sizeof(tlsa));

	got_init(&g, &l);
	dns_rr(l.r, "_25._tcp.b.drover.example", 52, got_rr, &g);
	loop_until(&l, 2, ANSWER_MS);
	assert_int_equal(g.status, DNS_NXDOMAIN);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, loop_setup, loop_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_mx_by_preference),
	    T(test_equal_preferences_take_turns),
	    T(test_mx_through_a_cname_and_in_any_case),
	    T(test_null_mx),
	    T(test_nxdomain),
	    T(test_servfail_is_a_temporary_failure),
	    T(test_no_mx_means_the_domain_itself),
	    T(test_mx_addresses_in_the_order_to_try),
	    T(test_mx_hosts_without_addresses),
	    T(test_each_host_and_address_once),
	    T(test_addresses),
	    T(test_txt),
	    T(test_any_type),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
