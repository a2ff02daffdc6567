/* test_dns_mx.c - reading what DNS servers send (MX, names, TXT) without trusting a length in
 * it, and the order a sender tries a domain's mail exchangers in. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "dns/dns.h"

#define MX_RDATA(s) ((const unsigned char *)(s)), (sizeof(s) - 1)

static uint16_t pref;
static char name[DNS_NAME_MAX + 1];

static void
test_mx_rdata(void **state)
{
	assert_int_equal(dns_mx_rdata_parse(MX_RDATA("\x00\x0a\x03mx1\x07"
	                                             "example\x04test\x00"),
	                                    &pref, name),
	                 0);
	assert_int_equal(pref, 10);
	assert_string_equal(name, "mx1.example.test");

	assert_int_equal(dns_mx_rdata_parse(MX_RDATA("\xff\xfe\x02Mx\x01_\x01-\x00"), &pref, name),
	                 0);
	assert_int_equal(pref, 0xfffe);
	assert_string_equal(name, "Mx._.-"); /* case kept; '_' and '-' are host characters */
}

static void
test_mx_rdata_root_is_the_null_mx_target(void **state)
{
	assert_int_equal(dns_mx_rdata_parse(MX_RDATA("\x00\x00\x00"), &pref, name), 0);
	assert_int_equal(pref, 0);
	assert_string_equal(name, ".");
}

static void
assert_malformed(const char *rdata, size_t len)
{
	assert_int_equal(dns_mx_rdata_parse((const unsigned char *)rdata, len, &pref, name), -1);
}

static void
test_mx_rdata_malformed(void **state)
{
	assert_malformed("", 0);
	assert_malformed("\x00", 1);
	assert_malformed("\x00\x0a", 2);               /* no name */
	assert_malformed("\x00\x0a\x03mx", 5);         /* label runs past the end */
	assert_malformed("\x00\x0a\x02mx", 5);         /* no terminating root label */
	assert_malformed("\x00\x0a\xc0\x0c", 4);       /* compression pointer */
	assert_malformed("\x00\x0a\x40mx\x00", 6);     /* extended label type */
	assert_malformed("\x00\x0a\x02mx\x00\x00", 7); /* trailing octets */
	assert_malformed("\x00\x0a\x03m x\x00", 7);    /* a space */
	assert_malformed("\x00\x0a\x03m.x\x00", 7);    /* a dot inside a label */
	assert_malformed("\x00\x0a\x03m\x00x\x00", 7); /* a NUL inside a label */
	assert_malformed("\x00\x0a\x03m\xffx\x00", 7); /* 8-bit */
	assert_malformed("\x00\x0a\x03m\nx\x00", 7);   /* a line break for a log line */
}

/* Labels of 63 octets: 3 of them and one of 61 make the longest name, 255 octets in wire form
 * and 253 characters as text; one octet more is refused. */
static size_t
long_name(unsigned char *buf, size_t last_label)
{
	size_t n = 0;

	buf[n++] = 0;
	buf[n++] = 5;
	for (int l = 0; l < 4; l++) {
		size_t len = l < 3 ? 63 : last_label;

		buf[n++] = (unsigned char)len;
		memset(buf + n, 'a' + l, len);
		n += len;
	}
	buf[n++] = 0;
	return n;
}

static void
test_mx_rdata_name_length_limits(void **state)
{
	unsigned char buf[300];
	size_t len = long_name(buf, 61);

	assert_int_equal(len, 2 + 255);
	assert_int_equal(dns_mx_rdata_parse(buf, len, &pref, name), 0);
	assert_int_equal(strlen(name), DNS_NAME_MAX);

	len = long_name(buf, 62);
	assert_int_equal(dns_mx_rdata_parse(buf, len, &pref, name), -1);

	buf[2] = 64; /* a label over 63 octets */
	assert_int_equal(dns_mx_rdata_parse(buf, len, &pref, name), -1);
}

static void
test_name_from_wire_respects_the_output_size(void **state)
{
	const unsigned char wire[] = "\x03mx1\x07"
	                             "example\x00";
	char small[8];

	assert_int_equal(dns_name_from_wire(wire, sizeof(wire) - 1, name, sizeof(name)), 13);
	assert_string_equal(name, "mx1.example");
	assert_int_equal(dns_name_from_wire(wire, sizeof(wire) - 1, small, sizeof(small)), -1);
	assert_int_equal(dns_name_from_wire(wire, 0, name, sizeof(name)), -1);
}

/* Whatever a server sends, parsing ends, stays inside the buffer (ASan watches) and yields
 * either -1 or a name of host characters. */
static void
test_mx_rdata_random_bytes_never_crash(void **state)
{
	uint64_t rng = 42;
	unsigned char buf[64];

	for (int i = 0; i < 200000; i++) {
		uint64_t r = rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
		size_t len = (size_t)(r >> 58); /* 0..63 */

		for (size_t j = 0; j < len; j++) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			/* Small octets, so that lengths often fit and the parser goes deep. */
			buf[j] = (unsigned char)((rng >> 33) % (j % 3 ? 256 : 8));
		}
		/* An exact-size copy: a read past len is a heap overflow ASan reports. */
		unsigned char *exact = test_malloc(len ? len : 1);

		memcpy(exact, buf, len);
		if (dns_mx_rdata_parse(exact, len, &pref, name) == 0)
			assert_int_equal(
			    strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			                 "0123456789-_."),
			    strlen(name));
		test_free(exact);
	}
}

static void
test_null_mx(void **state)
{
	struct dns_mx_host null[] = {{0, "."}};
	struct dns_mx_host odd_pref[] = {{10, "."}};
	struct dns_mx_host mixed[] = {{0, "."}, {10, "mx.example.test"}};
	struct dns_mx_host normal[] = {{0, "mx.example.test"}};

	assert_true(dns_mx_is_null(null, 1));
	/* RFC 7505 says preference 0; the intent of a lone "." is the same whatever the
	 * preference (Postfix reads it so too). */
	assert_true(dns_mx_is_null(odd_pref, 1));
	/* Not a null MX: the stray "." is dropped and the real host used. */
	assert_false(dns_mx_is_null(mixed, 2));
	assert_false(dns_mx_is_null(normal, 1));
	assert_false(dns_mx_is_null(NULL, 0));
}

static void
test_order_by_preference(void **state)
{
	struct dns_mx_host h[] = {
	    {30, "c"}, {10, "a"}, {20, "b"}, {65535, "z"}, {0, "first"},
	};
	uint64_t rng = 1;

	dns_mx_order(h, 5, &rng);
	assert_string_equal(h[0].name, "first");
	assert_string_equal(h[1].name, "a");
	assert_string_equal(h[2].name, "b");
	assert_string_equal(h[3].name, "c");
	assert_string_equal(h[4].name, "z");
	dns_mx_order(h, 0, &rng); /* nothing to do, nothing touched */
}

/* A hostile zone's thousands of records: ordered, and quickly (n log n). */
static void
test_order_thousands_of_hosts(void **state)
{
	enum { N = 20000 };
	struct dns_mx_host *h = test_calloc(N, sizeof(*h));
	uint64_t rng = 3, start = time_mono_us();

	for (size_t i = 0; i < N; i++)
		h[i] = (struct dns_mx_host){(uint16_t)(N - i) % 4, "x"};
	dns_mx_order(h, N, &rng);
	for (size_t i = 1; i < N; i++)
		assert_true(h[i - 1].preference <= h[i].preference);
	assert_true(time_mono_us() - start < 2 * USEC); /* ~2 ms; n² would take seconds */
	test_free(h);
}

static int
perm_index(const struct dns_mx_host *h)
{
	/* Positions of "a", "b", "c" as a number 0..5. */
	static const char *const perms[] = {"abc", "acb", "bac", "bca", "cab", "cba"};
	char s[4] = {h[0].name[0], h[1].name[0], h[2].name[0], 0};

	for (int i = 0; i < 6; i++)
		if (strcmp(s, perms[i]) == 0)
			return i;
	fail_msg("not a permutation: %s", s);
	return -1;
}

static void
test_equal_preferences_are_shuffled_evenly(void **state)
{
	unsigned seen[6] = {0};
	uint64_t rng = 7;

	for (int i = 0; i < 6000; i++) {
		struct dns_mx_host h[] = {{20, "x"}, {10, "a"}, {10, "b"}, {10, "c"}, {5, "w"}};

		dns_mx_order(h, 5, &rng);
		/* The shuffle stays within its preference. */
		assert_string_equal(h[0].name, "w");
		assert_string_equal(h[4].name, "x");
		seen[perm_index(h + 1)]++;
	}
	for (int i = 0; i < 6; i++)
		assert_in_range(seen[i], 850, 1150); /* 1000 expected, > 5 sigma */
}

static void
test_the_same_seed_gives_the_same_order(void **state)
{
	char first[2][8];

	for (int run = 0; run < 2; run++) {
		struct dns_mx_host h[] = {{10, "a"}, {10, "b"}, {10, "c"}, {10, "d"}};
		uint64_t rng = 12345;
		char *p = first[run];

		dns_mx_order(h, 4, &rng);
		for (int i = 0; i < 4; i++)
			*p++ = h[i].name[0];
		*p = '\0';
	}
	assert_string_equal(first[0], first[1]);
}

static void
test_txt_join(void **state)
{
	char out[64];

	assert_int_equal(dns_txt_join((const unsigned char *)"\x0bv=spf1 -all", 12, out), 11);
	assert_string_equal(out, "v=spf1 -all");
	/* Several character-strings are joined without a separator (RFC 7208 §3.3). */
	assert_int_equal(dns_txt_join((const unsigned char *)"\x04v=DK\x05IM1; \x01p", 13, out),
	                 10);
	assert_string_equal(out, "v=DKIM1; p");
	assert_int_equal(dns_txt_join((const unsigned char *)"\x00", 1, out), 0);
	assert_string_equal(out, "");
	/* NUL octets are data: the length says where the text ends. */
	assert_int_equal(dns_txt_join((const unsigned char *)"\x03\x61\x00\x62", 4, out), 3);
	assert_memory_equal(out, "a\0b", 4);

	assert_int_equal(dns_txt_join((const unsigned char *)"", 0, out), -1);
	assert_int_equal(dns_txt_join((const unsigned char *)"\x05spf", 4, out), -1);
	assert_int_equal(dns_txt_join((const unsigned char *)"\x01s\x02x", 4, out), -1);
}

static void
test_status_names(void **state)
{
	assert_string_equal(dns_status_name(DNS_OK), "OK");
	assert_string_equal(dns_status_name(DNS_NULL_MX), "NULL_MX");
	assert_string_equal(dns_status_name(DNS_TEMPFAIL), "TEMPFAIL");
	assert_string_equal(dns_status_name((enum dns_status)99), "?");
}

static void
test_addresses(void **state)
{
	struct dns_address a4 = {.family = AF_INET}, a6 = {.family = AF_INET6};
	struct sockaddr_storage ss;
	char buf[INET6_ADDRSTRLEN];

	inet_pton(AF_INET, "192.0.2.1", &a4.u.v4);
	inet_pton(AF_INET6, "2001:db8::1", &a6.u.v6);
	assert_string_equal(dns_address_str(&a4, buf, sizeof(buf)), "192.0.2.1");
	assert_string_equal(dns_address_str(&a6, buf, sizeof(buf)), "2001:db8::1");

	assert_int_equal(dns_address_sockaddr(&a4, 25, &ss), sizeof(struct sockaddr_in));
	assert_int_equal(((struct sockaddr_in *)&ss)->sin_port, htons(25));
	assert_int_equal(dns_address_sockaddr(&a6, 2525, &ss), sizeof(struct sockaddr_in6));
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(((struct sockaddr_in6 *)&ss)->sin6_port, htons(2525));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mx_rdata),
	    cmocka_unit_test(test_mx_rdata_root_is_the_null_mx_target),
	    cmocka_unit_test(test_mx_rdata_malformed),
	    cmocka_unit_test(test_mx_rdata_name_length_limits),
	    cmocka_unit_test(test_name_from_wire_respects_the_output_size),
	    cmocka_unit_test(test_mx_rdata_random_bytes_never_crash),
	    cmocka_unit_test(test_null_mx),
	    cmocka_unit_test(test_order_by_preference),
	    cmocka_unit_test(test_order_thousands_of_hosts),
	    cmocka_unit_test(test_equal_preferences_are_shuffled_evenly),
	    cmocka_unit_test(test_the_same_seed_gives_the_same_order),
	    cmocka_unit_test(test_txt_join),
	    cmocka_unit_test(test_status_names),
	    cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
