/* MAIL FROM and RCPT TO paths: what real clients send, what RFC 5321 allows, and what a
 * hostile client tries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

#define SENDER    true
#define RECIPIENT false

static struct smtp_path path;
static struct smtp_error err;
static const char *params;

static int
sender(const char *args, bool utf8_ok)
{
	return smtp_path_parse(args, SENDER, true, utf8_ok, &path, &params, &err);
}

static int
recipient(const char *args, bool utf8_ok)
{
	return smtp_path_parse(args, RECIPIENT, false, utf8_ok, &path, &params, &err);
}

static void
assert_refused(int r, int code, const char *status)
{
	assert_int_equal(r, -1);
	assert_int_equal(err.code, code);
	assert_string_equal(err.status, status);
	assert_non_null(err.text);
	assert_null(strpbrk(err.text, "\r\n"));
	assert_string_equal(path.mailbox, "");
}

static char *
repeat(char *buf, char c, size_t n)
{
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static void
test_plain_address(void **state)
{
	assert_int_equal(sender("<alice@example.com>", false), 0);
	assert_false(path.null);
	assert_false(path.source_route);
	assert_false(path.quoted);
	assert_false(path.utf8);
	assert_string_equal(path.local, "alice");
	assert_string_equal(path.domain, "example.com");
	assert_string_equal(path.mailbox, "alice@example.com");
	assert_string_equal(params, "");
}

static void
test_one_space_before_the_bracket_is_tolerated(void **state)
{
	assert_int_equal(sender(" <alice@example.com>", false), 0);
	assert_string_equal(path.mailbox, "alice@example.com");
	assert_refused(sender("  <alice@example.com>", false), 501, "5.5.4");
	assert_refused(recipient("  <bob@example.com>", false), 501, "5.5.4");
}

static void
test_brackets_are_required(void **state)
{
	assert_refused(sender("alice@example.com", false), 501, "5.5.4");
	assert_refused(recipient("bob@example.com", false), 501, "5.5.4");
	assert_refused(sender("", false), 501, "5.5.4");
	assert_refused(sender("<alice@example.com", false), 501, "5.1.7");
	assert_refused(recipient("<bob@example.com", false), 501, "5.1.3");
	assert_refused(sender("<alice@example.com>>", false), 501, "5.5.4");
	assert_refused(sender("<<alice@example.com>>", false), 501, "5.1.7");
	assert_refused(sender("<alice@example.com>SIZE=1", false), 501, "5.5.4");
}

static void
test_null_path(void **state)
{
	assert_int_equal(sender("<>", false), 0);
	assert_true(path.null);
	assert_string_equal(path.mailbox, "");
	assert_int_equal(sender("<> SIZE=100", false), 0);
	assert_true(path.null);
	assert_string_equal(params, "SIZE=100");
	/* RCPT TO:<> is not a recipient. */
	assert_refused(recipient("<>", false), 501, "5.1.3");
}

static void
test_parameters_follow_the_path(void **state)
{
	assert_int_equal(sender("<a@example.com> SIZE=10 BODY=8BITMIME", false), 0);
	assert_string_equal(params, "SIZE=10 BODY=8BITMIME");
	assert_int_equal(sender("<a@example.com>   SIZE=10", false), 0);
	assert_string_equal(params, "SIZE=10");
	assert_int_equal(sender("<a@example.com> ", false), 0);
	assert_string_equal(params, "");
}

static void
test_address_without_domain(void **state)
{
	assert_refused(sender("<alice>", false), 553, "5.1.7");
	assert_refused(recipient("<bob>", false), 553, "5.1.3");
	assert_refused(recipient("<postmaster>", false), 553, "5.1.3");
	assert_refused(recipient("<\"bob smith\">", false), 553, "5.1.3");
	/* "user@" is a broken address, not one without a domain. */
	assert_refused(recipient("<bob@>", false), 501, "5.1.3");
	assert_refused(sender("<@example.com>", false), 501, "5.1.7");
}

static void
test_malformed_addresses(void **state)
{
	static const char *bad[] = {
	    "<a b@example.com>",
	    "<.a@example.com>",
	    "<a.@example.com>",
	    "<a..b@example.com>",
	    "<a@b@example.com>",
	    "<a@example..com>",
	    "<a@.example.com>",
	    "<a@example.com.>",
	    "<a@-example.com>",
	    "<a@example-.com>",
	    "<a@exa_mple.com>",
	    "<a@example.com >",
	    "< a@example.com>",
	    "<a(comment)@example.com>",
	    "<a@[1.2.3.4>",
	    "<\"unterminated@example.com>",
	    "<a\"b\"@example.com>",
	    "<a@example.com:>",
	    "<a\\@b@example.com>",
	    "<\"a\"b@example.com>",
	    "<a,b@example.com>",
	    "<a@@example.com>",
	    "<@>",
	    "<@:a@example.com>",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(sender(bad[i], false), -1);
		assert_int_equal(err.code, 501);
		assert_int_equal(recipient(bad[i], false), -1);
		assert_int_equal(err.code, 501);
	}
}

static void
test_atext_specials_in_local_part(void **state)
{
	/* '%' and '!' are valid syntax; refusing them for relay reasons is the session's job. */
	assert_int_equal(recipient("<a%b@example.com>", false), 0);
	assert_string_equal(path.local, "a%b");
	assert_int_equal(recipient("<host!user@example.com>", false), 0);
	assert_int_equal(recipient("<first.last+tag@example.com>", false), 0);
	assert_int_equal(recipient("<!#$%&'*+-/=?^_`{|}~@example.com>", false), 0);
	assert_string_equal(path.local, "!#$%&'*+-/=?^_`{|}~");
}

static void
test_quoted_local_parts(void **state)
{
	assert_int_equal(recipient("<\"john smith\"@example.com>", false), 0);
	assert_true(path.quoted);
	assert_string_equal(path.local, "\"john smith\"");
	assert_string_equal(path.mailbox, "\"john smith\"@example.com");

	/* Quoted-pairs hide '"', '\' and '>' from the parser. */
	assert_int_equal(recipient("<\"a\\\"b\"@example.com>", false), 0);
	assert_string_equal(path.local, "\"a\\\"b\"");
	assert_int_equal(recipient("<\"a>b\"@example.com> NOTIFY=NEVER", false), 0);
	assert_string_equal(path.local, "\"a>b\"");
	assert_string_equal(params, "NOTIFY=NEVER");
	assert_int_equal(recipient("<\"a\\\\\"@example.com>", false), 0);
	assert_int_equal(recipient("<\"@\"@example.com>", false), 0);
	assert_string_equal(path.domain, "example.com");
	/* The empty quoted string is valid RFC 5321 syntax. */
	assert_int_equal(recipient("<\"\"@example.com>", false), 0);

	/* A backslash must escape something printable. */
	assert_refused(recipient("<\"a\\\"@example.com>", false), 501, "5.1.3");
}

static void
test_source_route_is_accepted_and_dropped(void **state)
{
	assert_int_equal(recipient("<@relay.example:bob@example.com>", false), 0);
	assert_true(path.source_route);
	assert_string_equal(path.mailbox, "bob@example.com");
	assert_int_equal(recipient("<@a.example,@b.example:bob@example.com>", false), 0);
	assert_true(path.source_route);
	assert_string_equal(path.local, "bob");
	assert_int_equal(sender("<@[192.0.2.1],@b.example:alice@example.com>", false), 0);
	assert_true(path.source_route);

	assert_refused(recipient("<@a.example bob@example.com>", false), 501, "5.1.3");
	assert_refused(recipient("<@a.example,b.example:bob@example.com>", false), 501, "5.1.3");
	assert_refused(recipient("<@a.example,:bob@example.com>", false), 501, "5.1.3");
	assert_refused(recipient("<@a_b.example:bob@example.com>", false), 501, "5.1.3");
	assert_refused(recipient("<@a.example:>", false), 501, "5.1.3");
}

static void
test_address_literals(void **state)
{
	assert_int_equal(recipient("<postmaster@[192.0.2.1]>", false), 0);
	assert_string_equal(path.domain, "[192.0.2.1]");
	assert_int_equal(recipient("<postmaster@[IPv6:2001:db8::1]>", false), 0);
	assert_string_equal(path.domain, "[IPv6:2001:db8::1]");
	assert_int_equal(recipient("<postmaster@[ipv6:::ffff:192.0.2.1]>", false), 0);

	static const char *bad[] = {
	    "<a@[192.0.2.256]>",       "<a@[192.0.2]>",
	    "<a@[192.0.2.1.5]>",       "<a@[01.2.3.4]>",
	    "<a@[2001:db8::1]>",       "<a@[IPv6:1.2.3.4]>",
	    "<a@[IPv6:2001:db8:::1]>", "<a@[]>",
	    "<a@[x-tag:foo]>",         "<a@[192.0.2.1]x>",
	    "<a@[ 192.0.2.1]>",        "<a@[IPv6:fe80::1%eth0]>",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(recipient(bad[i], false), 501, "5.1.3");
}

static void
test_length_limits(void **state)
{
	char local[300], domain[300], args[700];

	/* 64 octets of local part is the limit, 65 is too long. */
	snprintf(args, sizeof(args), "<%s@example.com>", repeat(local, 'a', 64));
	assert_int_equal(recipient(args, false), 0);
	assert_int_equal(strlen(path.local), 64);
	snprintf(args, sizeof(args), "<%s@example.com>", repeat(local, 'a', 65));
	assert_refused(recipient(args, false), 501, "5.1.3");
	assert_refused(sender(args, false), 501, "5.1.7");
	snprintf(args, sizeof(args), "<%s>", repeat(local, 'a', 65));
	assert_refused(sender(args, false), 501, "5.1.7");

	/* Labels are at most 63 octets. */
	snprintf(args, sizeof(args), "<a@%s.com>", repeat(domain, 'd', 63));
	assert_int_equal(recipient(args, false), 0);
	snprintf(args, sizeof(args), "<a@%s.com>", repeat(domain, 'd', 64));
	assert_refused(recipient(args, false), 501, "5.1.3");

	/* A 250-octet domain in a 256-octet path: "<ab@" + 250 + ">" = 255. */
	repeat(domain, 'd', 250);
	for (size_t i = 60; i < 250; i += 61)
		domain[i] = '.';
	snprintf(args, sizeof(args), "<ab@%s>", domain);
	assert_int_equal(recipient(args, false), 0);
	assert_int_equal(strlen(path.domain), 250);

	/* Path limit: 256 octets including the brackets. */
	char route[300];
	repeat(route, 'r', 200);
	route[0] = '@';
	for (size_t i = 60; i < 200; i += 61)
		route[i] = '.';
	snprintf(args, sizeof(args), "<%s:%s@b.example>", route, repeat(local, 'a', 43));
	assert_int_equal(strlen(args), 256);
	assert_int_equal(recipient(args, false), 0);
	snprintf(args, sizeof(args), "<%s:%s@b.example>", route, repeat(local, 'a', 44));
	assert_refused(recipient(args, false), 501, "5.1.3");
	assert_string_equal(err.text, "Path too long");

	/* A runaway path with no '>' is cut short as too long, not read to its end. */
	repeat(args, 'x', 650);
	args[0] = '<';
	assert_refused(recipient(args, false), 501, "5.1.3");
}

static void
test_utf8_requires_smtputf8(void **state)
{
	const char *jorg = "<j\xc3\xb6rg@b\xc3\xbc\x63her.example>";

	assert_refused(sender(jorg, false), 553, "5.6.7");
	assert_refused(recipient(jorg, false), 553, "5.6.7");
	assert_refused(recipient("<bob@\xe4\xbe\x8b\xe3\x81\x88.jp>", false), 553, "5.6.7");

	assert_int_equal(sender(jorg, true), 0);
	assert_true(path.utf8);
	assert_string_equal(path.local, "j\xc3\xb6rg");
	assert_string_equal(path.domain, "b\xc3\xbc\x63her.example");
	assert_int_equal(recipient("<\"\xc3\xa9t\xc3\xa9\"@example.com>", true), 0);
	assert_true(path.quoted);
	assert_true(path.utf8);
}

static void
test_invalid_utf8_is_refused(void **state)
{
	static const char *bad[] = {
	    "<\xc0\xafroot@example.com>",     /* overlong '/' */
	    "<a@\xe0\x80\xafx.example>",      /* overlong, 3 bytes */
	    "<\xed\xa0\x80@example.com>",     /* surrogate U+D800 */
	    "<\xf4\x90\x80\x80@example.com>", /* past U+10FFFF */
	    "<\xc3@example.com>",             /* truncated */
	    "<\x80@example.com>",             /* stray continuation */
	    "<\xff@example.com>",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_refused(recipient(bad[i], true), 501, "5.1.3");
		assert_refused(recipient(bad[i], false), 553, "5.6.7");
	}
}

static void
test_no_output_is_left_on_error(void **state)
{
	assert_int_equal(recipient("<bob@example.com> NOTIFY=NEVER", false), 0);
	assert_int_equal(recipient("<bob@example.com", false), -1);
	assert_string_equal(path.mailbox, "");
	assert_string_equal(path.local, "");
	assert_string_equal(params, "");
	/* NULL out-pointers for params and err are allowed. */
	assert_int_equal(smtp_path_parse("<a@b.example>", true, true, false, &path, NULL, NULL), 0);
	assert_int_equal(smtp_path_parse("a@b.example", true, true, false, &path, NULL, NULL), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_address),
	    cmocka_unit_test(test_one_space_before_the_bracket_is_tolerated),
	    cmocka_unit_test(test_brackets_are_required),
	    cmocka_unit_test(test_null_path),
	    cmocka_unit_test(test_parameters_follow_the_path),
	    cmocka_unit_test(test_address_without_domain),
	    cmocka_unit_test(test_malformed_addresses),
	    cmocka_unit_test(test_atext_specials_in_local_part),
	    cmocka_unit_test(test_quoted_local_parts),
	    cmocka_unit_test(test_source_route_is_accepted_and_dropped),
	    cmocka_unit_test(test_address_literals),
	    cmocka_unit_test(test_length_limits),
	    cmocka_unit_test(test_utf8_requires_smtputf8),
	    cmocka_unit_test(test_invalid_utf8_is_refused),
	    cmocka_unit_test(test_no_output_is_left_on_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
