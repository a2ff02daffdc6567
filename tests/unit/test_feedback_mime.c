/* The pieces the report reader is made of, each with the sloppy input real generators send:
 * header folding, Content-Type parameters, boundaries, quoted-printable and base64 with
 * junk, HTML, addresses and reply codes in prose, and the string cleaning every result
 * goes through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "feedback/internal.h"

#define S(lit) lit, sizeof(lit) - 1

static void
test_header_folding_and_broken_lines(void **state)
{
	const char msg[] = "Subject: one\r\n two\r\n"
	                   "no colon here\r\n"
	                   " stray continuation\r\n"
	                   "X-Empty:\r\n"
	                   "Content-Type : text/plain\r\n"
	                   "\r\n"
	                   "body\r\n";
	struct header_iter it;
	struct slice name, value;
	char buf[64];

	header_begin(&it, S(msg));
	assert_true(header_next(&it, &name, &value));
	assert_true(ci_eq(name, "subject"));
	text_put(buf, sizeof(buf), value.p, value.len);
	assert_string_equal(buf, "one two");
	assert_true(header_next(&it, &name, &value));
	assert_true(ci_eq(name, "x-empty"));
	assert_int_equal(value.len, 0);
	assert_true(header_next(&it, &name, &value));
	assert_true(ci_eq(name, "content-type")); /* space before the colon tolerated */
	assert_false(header_next(&it, &name, &value));
	assert_string_equal(header_body(&it), "body\r\n");
}

static void
test_header_section_ends_at_whitespace_only_line(void **state)
{
	const char msg[] = "A: 1\n \t \nbody";
	struct header_iter it;
	struct slice name, value;

	header_begin(&it, S(msg));
	assert_true(header_next(&it, &name, &value));
	assert_int_equal(value.len, 2);
	assert_false(header_next(&it, &name, &value));
	assert_string_equal(header_body(&it), "body");
}

static void
test_content_type_parameters(void **state)
{
	struct content_type ct;
	const char *v;

	v = "multipart/report; report-type=delivery-status;\r\n\tboundary=\"a;b=c \\\"d\\\"\"";
	content_type_parse(v, strlen(v), &ct);
	assert_string_equal(ct.type, "multipart");
	assert_string_equal(ct.subtype, "report");
	assert_string_equal(ct.report_type, "delivery-status");
	assert_string_equal(ct.boundary, "a;b=c \"d\"");

	v = "MULTIPART/Mixed (a comment); BOUNDARY=----=_Part_1_2.3";
	content_type_parse(v, strlen(v), &ct);
	assert_string_equal(ct.type, "multipart");
	assert_string_equal(ct.subtype, "mixed");
	assert_string_equal(ct.boundary, "----=_Part_1_2.3");

	v = "multipart/report; report-type=\"Feedback-Report\"; boundary=x ";
	content_type_parse(v, strlen(v), &ct);
	assert_string_equal(ct.report_type, "feedback-report");
	assert_string_equal(ct.boundary, "x");

	/* Unreadable: text/plain (RFC 2045 §5.2) */
	content_type_parse(S("garbage"), &ct);
	assert_string_equal(ct.type, "text");
	assert_string_equal(ct.subtype, "plain");
	assert_int_equal(cte_parse(S(" Base64 ")), CTE_BASE64);
	assert_int_equal(cte_parse(S("quoted-printable;")), CTE_QP);
	assert_int_equal(cte_parse(S("x-uuencode")), CTE_IDENTITY);
}

static size_t
count_parts(const char *body, const char *boundary, struct slice *parts, size_t max)
{
	struct part_iter it;
	size_t n = 0;

	part_begin(&it, body, strlen(body), boundary);
	while (n < max && part_next(&it, &parts[n]))
		n++;
	return n;
}

static void
test_multipart_boundaries(void **state)
{
	struct slice p[4];

	/* Preamble and epilogue ignored; the CRLF before a delimiter is the delimiter's */
	assert_int_equal(
	    count_parts("preamble\r\n--b\r\nA\r\n--b \t\r\nB\r\n--b--\r\nepilogue", "b", p, 4), 2);
	assert_int_equal(p[0].len, 1);
	assert_memory_equal(p[0].p, "A", 1);
	assert_memory_equal(p[1].p, "B", 1);

	/* "--bb" is not a delimiter of boundary "b"; a text line that merely starts with
	 * "--b" and goes on is not either */
	assert_int_equal(count_parts("--b\nx\n--bb\n--b and more\ny\n--b--\n", "b", p, 4), 1);
	assert_int_equal(p[0].len, strlen("x\n--bb\n--b and more\ny"));

	/* No close delimiter: the last part runs to the end */
	assert_int_equal(count_parts("--b\nA\n--b\nB and the rest", "b", p, 4), 2);
	assert_memory_equal(p[1].p, "B and the rest", 14);

	/* A delimiter at the very end, nothing after it */
	assert_int_equal(count_parts("--b\nA\n--b\n", "b", p, 4), 1);
	/* No delimiter at all, or an empty boundary */
	assert_int_equal(count_parts("just text\n", "b", p, 4), 0);
	assert_int_equal(count_parts("--\nA\n", "", p, 4), 0);
	/* Close delimiter first */
	assert_int_equal(count_parts("--b--\n--b\nA\n", "b", p, 4), 0);
}

static void
decode(enum cte cte, const char *in, size_t max, char *out, size_t size, bool *cut)
{
	struct decoded d;

	body_decode(cte, in, strlen(in), max, &d);
	assert_true(d.len < size);
	memcpy(out, d.p, d.len);
	out[d.len] = '\0';
	*cut = d.cut;
	decoded_free(&d);
}

static void
test_transfer_encodings(void **state)
{
	char out[128];
	bool cut;

	decode(CTE_QP, "caf=C3=A9 =3d=3D soft=\r\nbreak=  \nand = stray=zz=", 100, out, sizeof(out),
	       &cut);
	assert_string_equal(out, "caf\xc3\xa9 == softbreakand = stray=zz");
	assert_false(cut);

	/* base64 with line breaks, junk characters, and padding that ends it */
	decode(CTE_BASE64, "UmVwb3J0\r\naW5n!!IE1U\nQQ==trailing", 100, out, sizeof(out), &cut);
	assert_string_equal(out, "Reporting MTA");
	decode(CTE_BASE64, "UmVwb3J0aW5n", 4, out, sizeof(out), &cut);
	assert_string_equal(out, "Repo");
	assert_true(cut);
	decode(CTE_IDENTITY, "0123456789", 4, out, sizeof(out), &cut);
	assert_string_equal(out, "0123");
	assert_true(cut);
}

static void
test_html_to_text(void **state)
{
	const char html[] = "<html><head><style>p { x: 1 }</style><script>var a='<p>';</script>"
	                    "</head><body><p>Delivery&nbsp;failed to:<br>"
	                    "<a href=\"mailto:x@y.example\">x&#64;y.example</a></p>"
	                    "<p>Remote Server returned &#39;550 5.1.1 &lt;x@y.example&gt;&#39;</p>"
	                    "&unknown; <b>end";
	char out[sizeof(html)];
	size_t n = html_to_text(S(html), out, sizeof(out));

	out[n] = '\0';
	assert_string_equal(out, "\nDelivery failed to:\nx@y.example\n"
	                         "\nRemote Server returned '550 5.1.1 <x@y.example>'\n"
	                         "&unknown; end");
	/* Bounded output, an unclosed tag */
	n = html_to_text(S("abcdef"), out, 3);
	assert_int_equal(n, 3);
	n = html_to_text(S("ab<p unclosed"), out, sizeof(out));
	assert_int_equal(n, 2);
}

static void
test_addresses_in_prose(void **state)
{
	const char text[] = "Mail to <bob@example.org>, carol.x+tag@Sub.Example.NET. "
	                    "Not: user@localhost, @foo.example, a@.example, x@-y.example, "
	                    "1.2.3.4, .dots.@x.example";
	size_t pos = 0;
	struct slice a;
	char buf[64];

	assert_true(addr_find(S(text), &pos, &a));
	text_put(buf, sizeof(buf), a.p, a.len);
	assert_string_equal(buf, "bob@example.org");
	assert_true(addr_find(S(text), &pos, &a));
	text_put(buf, sizeof(buf), a.p, a.len);
	assert_string_equal(buf, "carol.x+tag@Sub.Example.NET");
	assert_true(addr_find(S(text), &pos, &a));
	text_put(buf, sizeof(buf), a.p, a.len);
	assert_string_equal(buf, "dots.@x.example"); /* leading dots dropped */
	assert_false(addr_find(S(text), &pos, &a));

	first_address(buf, sizeof(buf), S("\"Bob <x>\" <bob@example.org>"));
	assert_string_equal(buf, "bob@example.org");
	first_address(buf, sizeof(buf), S("Bob Example bob@example.org (work)"));
	assert_string_equal(buf, "bob@example.org");
	first_address(buf, sizeof(buf), S("redacted"));
	assert_string_equal(buf, "");
	addr_put(buf, sizeof(buf), S("  mailto:<x@y.example> trailing"));
	assert_string_equal(buf, "x@y.example");
}

static void
test_reply_codes_in_prose(void **state)
{
	char status[SMTP_STATUS_MAX + 1];
	size_t at;
	int code;

	reply_scan(S("host 192.0.2.25 said on 3/3/2025 10:01: 550-5.1.1 gone"), &code, status, &at);
	assert_int_equal(code, 550);
	assert_string_equal(status, "5.1.1");
	assert_int_equal(at, strlen("host 192.0.2.25 said on 3/3/2025 10:01: "));

	reply_scan(S("<mx #5.1.1 smtp;550 5.1.1 <x>... User unknown>"), &code, status, NULL);
	assert_int_equal(code, 550);
	assert_string_equal(status, "5.1.1");

	/* Not codes: parts of numbers, versions, addresses; not statuses: IP addresses */
	reply_scan(S("size 25500 v4.550 id 550x port :250 ip 10.5.2.4 5.1.1.2"), &code, status,
	           NULL);
	assert_int_equal(code, 0);
	assert_string_equal(status, "");
	reply_scan(S("(status 4.7.1). Try later"), &code, status, NULL);
	assert_string_equal(status, "4.7.1");
	reply_scan(S("421"), &code, status, NULL);
	assert_int_equal(code, 421);
}

static void
test_typed_values(void **state)
{
	struct slice type, value;

	typed_split(S(" rfc822 ; <bob@example.org> "), &type, &value);
	assert_int_equal(type.len, 6);
	assert_memory_equal(type.p, "rfc822", 6);
	assert_int_equal(value.len, strlen("<bob@example.org>"));
	/* No type, or something before ";" that is not an atom */
	typed_split(S("bob@example.org"), &type, &value);
	assert_int_equal(type.len, 0);
	assert_int_equal(value.len, strlen("bob@example.org"));
	typed_split(S("550 5.1.1 user; unknown"), &type, &value);
	assert_int_equal(type.len, 0);
	assert_int_equal(value.len, strlen("550 5.1.1 user; unknown"));
}

static void
test_strings_are_cleaned_and_bounded(void **state)
{
	char buf[8];

	text_put(buf, sizeof(buf), S("  a\r\n\tb\x01\x7f c  "));
	assert_string_equal(buf, "a b c");
	/* Malformed UTF-8 becomes '?'; a character is never cut in half */
	text_put(buf, sizeof(buf), S("\xff\xc3("));
	assert_string_equal(buf, "?"
	                         "?(");
	text_put(buf, sizeof(buf), S("abcde\xc3\xa9x"));
	assert_string_equal(buf, "abcde\xc3\xa9");
	text_put(buf, sizeof(buf), S("abcdef\xc3\xa9"));
	assert_string_equal(buf, "abcdef");
	text_put(buf, sizeof(buf), S("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"));
	assert_string_equal(buf, "\xe2\x82\xac\xe2\x82\xac");
	/* Surrogates and overlongs are malformed */
	text_put(buf, sizeof(buf), S("\xed\xa0\x80\xc0\xaf"));
	assert_string_equal(buf, "?????");
}

static void
test_case_insensitive_search(void **state)
{
	assert_int_equal(ci_find(S("xx Undeliverable: yy"), "undeliverable"), 3);
	assert_int_equal(ci_find(S("short"), "much longer needle"), -1);
	assert_int_equal(ci_find(S("abc"), ""), 0);
	assert_true(ci_prefix(S("MAILER-DAEMON@x"), "mailer-daemon@"));
	assert_false(ci_prefix(S("MAIL"), "mailer"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header_folding_and_broken_lines),
	    cmocka_unit_test(test_header_section_ends_at_whitespace_only_line),
	    cmocka_unit_test(test_content_type_parameters),
	    cmocka_unit_test(test_multipart_boundaries),
	    cmocka_unit_test(test_transfer_encodings),
	    cmocka_unit_test(test_html_to_text),
	    cmocka_unit_test(test_addresses_in_prose),
	    cmocka_unit_test(test_reply_codes_in_prose),
	    cmocka_unit_test(test_typed_values),
	    cmocka_unit_test(test_strings_are_cleaned_and_bounded),
	    cmocka_unit_test(test_case_insensitive_search),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
