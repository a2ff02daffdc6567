/* relay_networks: which clients a netmask list admits. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "conf/conf.h"

static struct sockaddr_storage
client(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		assert_int_equal(inet_pton(AF_INET6, ip, &sin6->sin6_addr), 1);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		assert_int_equal(inet_pton(AF_INET, ip, &sin->sin_addr), 1);
	}
	return ss;
}

/* True if the client ip is inside the single mask text. */
static bool
admits(const char *mask, const char *ip)
{
	struct netmask m;
	struct sockaddr_storage ss = client(ip);

	assert_int_equal(netmask_parse(mask, &m), 0);
	return netmask_match_any(&m, 1, (struct sockaddr *)&ss);
}

static void
test_parse_v4(void **state)
{
	struct netmask m;

	assert_int_equal(netmask_parse("127.0.0.0/8", &m), 0);
	assert_int_equal(m.family, AF_INET);
	assert_int_equal(m.prefix, 8);
	assert_int_equal(m.addr[0], 127);

	assert_int_equal(netmask_parse("192.0.2.7", &m), 0);
	assert_int_equal(m.prefix, 32); /* a bare address is a full-length prefix */
	assert_int_equal(netmask_parse("0.0.0.0/0", &m), 0);
	assert_int_equal(m.prefix, 0);
	assert_int_equal(netmask_parse("192.0.2.7/32", &m), 0);
}

static void
test_parse_v6(void **state)
{
	struct netmask m;

	assert_int_equal(netmask_parse("::1", &m), 0);
	assert_int_equal(m.family, AF_INET6);
	assert_int_equal(m.prefix, 128);
	assert_int_equal(m.addr[15], 1);

	assert_int_equal(netmask_parse("2001:db8::/32", &m), 0);
	assert_int_equal(m.prefix, 32);
	assert_int_equal(netmask_parse("::/0", &m), 0);
	assert_int_equal(m.prefix, 0);
	assert_int_equal(netmask_parse("fe80::/10", &m), 0);
}

static void
test_v4_mapped_prefix_becomes_v4(void **state)
{
	struct netmask m;

	assert_int_equal(netmask_parse("::ffff:10.0.0.0/104", &m), 0);
	assert_int_equal(m.family, AF_INET);
	assert_int_equal(m.prefix, 8);
	assert_int_equal(m.addr[0], 10);
	assert_true(admits("::ffff:10.0.0.0/104", "10.1.2.3"));
}

static void
test_parse_rejects(void **state)
{
	struct netmask m;
	const char *bad[] = {
	    "",
	    "/8",
	    "127.0.0.0/",
	    "127.0.0.0/33",
	    "127.0.0.0/-1",
	    "127.0.0.0/+8",
	    "127.0.0.0/08",
	    "127.0.0.0/8x",
	    "127.0.0.0/8/8",
	    "::1/129",
	    "::1/1000",
	    "256.0.0.0/8",
	    "127.0.0/8",
	    "127.0.0.0.0",
	    "localhost",
	    "10.1.2.3/8", /* host bits set: write 10.0.0.0/8 */
	    "2001:db8::1/32",
	    " 127.0.0.1",
	    "127.0.0.1 ",
	    "[::1]",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (netmask_parse(bad[i], &m) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
	}
	assert_int_equal(netmask_parse(NULL, &m), -1);
}

static void
test_match_v4(void **state)
{
	assert_true(admits("127.0.0.0/8", "127.0.0.1"));
	assert_true(admits("127.0.0.0/8", "127.255.255.255"));
	assert_false(admits("127.0.0.0/8", "128.0.0.1"));
	assert_true(admits("192.0.2.0/25", "192.0.2.127"));
	assert_false(admits("192.0.2.0/25", "192.0.2.128"));
	assert_true(admits("192.0.2.7", "192.0.2.7"));
	assert_false(admits("192.0.2.7", "192.0.2.6"));
	assert_true(admits("0.0.0.0/0", "203.0.113.9"));
	assert_false(admits("0.0.0.0/0", "2001:db8::1")); /* an IPv4 mask says nothing of IPv6 */
}

static void
test_match_v6(void **state)
{
	assert_true(admits("::1", "::1"));
	assert_false(admits("::1", "::2"));
	assert_true(admits("2001:db8::/32", "2001:db8:ffff::1"));
	assert_false(admits("2001:db8::/32", "2001:db9::1"));
	assert_true(admits("fe80::/10", "febf::1"));
	assert_false(admits("fe80::/10", "fec0::1"));
	assert_true(admits("::/0", "2001:db8::1"));
	assert_false(admits("::/0", "192.0.2.1"));
}

static void
test_v4_mapped_client_matches_v4_masks(void **state)
{
	/* An IPv4 client accepted on an IPv6 socket. */
	assert_true(admits("127.0.0.0/8", "::ffff:127.0.0.1"));
	assert_false(admits("127.0.0.0/8", "::ffff:128.0.0.1"));
	assert_false(admits("::1", "::ffff:127.0.0.1"));
	assert_true(admits("0.0.0.0/0", "::ffff:198.51.100.1"));
	assert_false(admits("::/0", "::ffff:198.51.100.1"));
}

static void
test_match_any_of_several(void **state)
{
	struct netmask m[3];
	struct sockaddr_storage a = client("10.9.8.7"), b = client("::1"), c = client("8.8.8.8");
	struct sockaddr_storage d;

	assert_int_equal(netmask_parse("127.0.0.0/8", &m[0]), 0);
	assert_int_equal(netmask_parse("::1", &m[1]), 0);
	assert_int_equal(netmask_parse("10.0.0.0/8", &m[2]), 0);
	assert_true(netmask_match_any(m, 3, (struct sockaddr *)&a));
	assert_true(netmask_match_any(m, 3, (struct sockaddr *)&b));
	assert_false(netmask_match_any(m, 3, (struct sockaddr *)&c));
	assert_false(netmask_match_any(m, 0, (struct sockaddr *)&a)); /* empty list: nobody */

	memset(&d, 0, sizeof(d));
	d.ss_family = AF_UNIX;
	assert_false(netmask_match_any(m, 3, (struct sockaddr *)&d));
	assert_false(netmask_match_any(m, 3, NULL));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_v4),
	    cmocka_unit_test(test_parse_v6),
	    cmocka_unit_test(test_v4_mapped_prefix_becomes_v4),
	    cmocka_unit_test(test_parse_rejects),
	    cmocka_unit_test(test_match_v4),
	    cmocka_unit_test(test_match_v6),
	    cmocka_unit_test(test_v4_mapped_client_matches_v4_masks),
	    cmocka_unit_test(test_match_any_of_several),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
