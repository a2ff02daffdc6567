/* The small grammars under the parsers: xtext (RFC 3461), UTF-8 (RFC 3629), domains and
 * address literals (RFC 5321), the EHLO argument. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

static bool
xtext(const char *s)
{
	return smtp_xtext_valid(s, strlen(s));
}

static bool
utf8(const char *s)
{
	return smtp_utf8_valid(s, strlen(s));
}

static bool
domain(const char *s, bool utf8_ok)
{
	return smtp_domain_valid(s, strlen(s), utf8_ok);
}

static void
test_xtext_validation(void **state)
{
	assert_true(xtext(""));
	assert_true(xtext("plain"));
	assert_true(xtext("a+2Bb+3D"));
	assert_true(xtext("!~\"#$%&'()*,-./:;<>?@[\\]^_`{|}"));
	assert_true(xtext("+00"));

	assert_false(xtext("+"));
	assert_false(xtext("+2"));
	assert_false(xtext("a+2b")); /* lower-case hex */
	assert_false(xtext("+G0"));
	assert_false(xtext("a=b"));
	assert_false(xtext("a b"));
	assert_false(xtext("a\x7f"));
	assert_false(xtext("\xc3\xa9"));
	assert_false(xtext("a\tb"));
	/* len bounds the check: "+2B" cut to "+2" is invalid. */
	assert_false(smtp_xtext_valid("+2B", 2));
	assert_true(smtp_xtext_valid("ab=", 2));
}

static void
test_xtext_decoding(void **state)
{
	char out[16];

	assert_int_equal(smtp_xtext_decode("a+2Bb+3D", 8, out, sizeof(out)), 4);
	assert_string_equal(out, "a+b=");
	assert_int_equal(smtp_xtext_decode("", 0, out, sizeof(out)), 0);
	assert_string_equal(out, "");
	assert_int_equal(smtp_xtext_decode("+41+42", 6, out, sizeof(out)), 2);
	assert_string_equal(out, "AB");

	/* The output must hold the decoded text and its NUL. */
	assert_int_equal(smtp_xtext_decode("abc", 3, out, 4), 3);
	assert_int_equal(smtp_xtext_decode("abcd", 4, out, 4), -1);
	assert_int_equal(smtp_xtext_decode("a", 1, out, 0), -1);
	assert_int_equal(smtp_xtext_decode("a+2b", 4, out, sizeof(out)), -1);
	assert_int_equal(smtp_xtext_decode("a=", 2, out, sizeof(out)), -1);
}

static void
test_utf8_valid(void **state)
{
	assert_true(utf8(""));
	assert_true(utf8("ascii"));
	assert_true(utf8("j\xc3\xb6rg"));              /* U+00F6 */
	assert_true(utf8("\xc2\x80"));                 /* U+0080, smallest 2-byte */
	assert_true(utf8("\xe0\xa0\x80"));             /* U+0800, smallest 3-byte */
	assert_true(utf8("\xed\x9f\xbf"));             /* U+D7FF, below the surrogates */
	assert_true(utf8("\xee\x80\x80"));             /* U+E000, above them */
	assert_true(utf8("\xef\xbf\xbf"));             /* U+FFFF */
	assert_true(utf8("\xf0\x90\x80\x80"));         /* U+10000 */
	assert_true(utf8("\xf4\x8f\xbf\xbf"));         /* U+10FFFF */
	assert_true(utf8("\xe4\xbe\x8b\xe3\x81\x88")); /* 例え */
	assert_true(smtp_utf8_valid("a\0b", 3));       /* NUL is a character; callers refuse it */
}

static void
test_utf8_invalid(void **state)
{
	assert_false(utf8("\x80")); /* stray continuation */
	assert_false(utf8("\xbf"));
	assert_false(utf8("\xc0\x80"));         /* overlong NUL */
	assert_false(utf8("\xc1\xbf"));         /* overlong */
	assert_false(utf8("\xe0\x80\xaf"));     /* overlong '/' */
	assert_false(utf8("\xe0\x9f\xbf"));     /* overlong U+07FF */
	assert_false(utf8("\xf0\x8f\xbf\xbf")); /* overlong U+FFFF */
	assert_false(utf8("\xed\xa0\x80"));     /* U+D800 */
	assert_false(utf8("\xed\xbf\xbf"));     /* U+DFFF */
	assert_false(utf8("\xf4\x90\x80\x80")); /* U+110000 */
	assert_false(utf8("\xf5\x80\x80\x80"));
	assert_false(utf8("\xf8\x88\x80\x80\x80")); /* 5-byte form */
	assert_false(utf8("\xfe"));
	assert_false(utf8("\xff"));
	assert_false(utf8("\xc3")); /* truncated at the end */
	assert_false(utf8("\xe4\xbe"));
	assert_false(utf8("\xc3x")); /* truncated in the middle */
	assert_false(utf8("\xe4\xbe\x41"));
	assert_false(smtp_utf8_valid("\xc3\xb6", 1)); /* len cuts a sequence */
}

static void
test_domains(void **state)
{
	char buf[300];

	assert_true(domain("example.com", false));
	assert_true(domain("localhost", false));
	assert_true(domain("a-b.c0.example", false));
	assert_true(domain("123.example", false));
	assert_true(domain("xn--bcher-kva.example", false));

	assert_false(domain("", false));
	assert_false(domain(".", false));
	assert_false(domain("example.com.", false));
	assert_false(domain(".example.com", false));
	assert_false(domain("a..b", false));
	assert_false(domain("-a.example", false));
	assert_false(domain("a-.example", false));
	assert_false(domain("a_b.example", false));
	assert_false(domain("a b.example", false));
	assert_false(domain("[192.0.2.1]", false)); /* literals are a separate production */

	/* U-labels only with SMTPUTF8, and only well-formed. */
	assert_false(domain("b\xc3\xbc\x63her.example", false));
	assert_true(domain("b\xc3\xbc\x63her.example", true));
	assert_false(domain("b\xc3.example", true));

	/* 63-octet labels, 255-octet names. */
	memset(buf, 'a', 63);
	buf[63] = '\0';
	assert_true(domain(buf, false));
	memset(buf, 'a', 64);
	buf[64] = '\0';
	assert_false(domain(buf, false));
	memset(buf, 'a', 255);
	for (int i = 50; i < 250; i += 51)
		buf[i] = '.';
	buf[255] = '\0';
	assert_true(domain(buf, false));
	buf[255] = 'a';
	buf[256] = '\0';
	assert_false(domain(buf, false));
}

static void
test_address_literals(void **state)
{
	static const char *good[] = {"[192.0.2.1]",
	                             "[0.0.0.0]",
	                             "[255.255.255.255]",
	                             "[IPv6:2001:db8::1]",
	                             "[ipv6:::1]",
	                             "[IPv6:::ffff:192.0.2.1]",
	                             "[IPv6:2001:db8:0:0:0:0:0:1]"};
	static const char *bad[] = {
	    "",
	    "[",
	    "[]",
	    "192.0.2.1",
	    "[192.0.2.1",
	    "192.0.2.1]",
	    "[192.0.2.256]",
	    "[192.0.2]",
	    "[1.2.3.4.5]",
	    "[01.2.3.4]",
	    "[192.0.2.1 ]",
	    "[::1]",
	    "[IPv6:]",
	    "[IPv6:192.0.2.1]",
	    "[IPv6:2001:db8::1::2]",
	    "[IPv6:2001:db8::g]",
	    "[tag:content]",
	    "[IPv6:1:2:3:4:5:6:7:8:9]",
	    "[IPv6:0000:0000:0000:0000:0000:0000:0000:0000:0000:0000:0001]"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(smtp_address_literal_valid(good[i], strlen(good[i])));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(smtp_address_literal_valid(bad[i], strlen(bad[i])));
	/* An embedded NUL does not slip through the copy handed to inet_pton. */
	assert_false(smtp_address_literal_valid("[1.2.3.4\0x]", 11));
}

static void
test_helo_argument(void **state)
{
	char buf[300];

	assert_true(smtp_helo_valid("client.example"));
	assert_true(smtp_helo_valid("localhost"));
	assert_true(smtp_helo_valid("MY_PC"));           /* Windows machine names */
	assert_true(smtp_helo_valid("mx.example.com.")); /* trailing dot */
	assert_true(smtp_helo_valid("[192.0.2.1]"));
	assert_true(smtp_helo_valid("[IPv6:2001:db8::1]"));

	assert_false(smtp_helo_valid(NULL));
	assert_false(smtp_helo_valid(""));
	assert_false(smtp_helo_valid("two words"));
	assert_false(smtp_helo_valid("trailing "));
	assert_false(smtp_helo_valid("tab\there"));
	assert_false(smtp_helo_valid("cr\r"));
	assert_false(smtp_helo_valid("<client.example>"));
	assert_false(smtp_helo_valid("[192.0.2.300]"));
	assert_false(smtp_helo_valid("[not a literal]"));
	assert_false(smtp_helo_valid("bad\xc3"));

	memset(buf, 'h', 255);
	buf[255] = '\0';
	assert_true(smtp_helo_valid(buf));
	buf[255] = 'h';
	buf[256] = '\0';
	assert_false(smtp_helo_valid(buf));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xtext_validation), cmocka_unit_test(test_xtext_decoding),
	    cmocka_unit_test(test_utf8_valid),       cmocka_unit_test(test_utf8_invalid),
	    cmocka_unit_test(test_domains),          cmocka_unit_test(test_address_literals),
	    cmocka_unit_test(test_helo_argument),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
