/* Replies as servers really send them: one line, several lines, Gmail's repeated enhanced
 * status, Postfix's EHLO, and the malformed ones a client must not act on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

/* Feeds the lines of a reply; returns the last feed's result. */
static int
feed_all(struct smtp_reply *r, const char *const *lines, size_t n, struct smtp_error *err)
{
	int rc = -1;

	smtp_reply_init(r);
	for (size_t i = 0; i < n; i++) {
		rc = smtp_reply_feed(r, lines[i], strlen(lines[i]), err);
		if (rc != 0)
			return i == n - 1 ? rc : -2;
	}
	return rc;
}

#define FEED(r, err, ...)                                                                          \
	feed_all((r), (const char *const[]){__VA_ARGS__},                                          \
	         sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *), (err))

static void
test_single_line_reply(void **state)
{
	struct smtp_reply r;
	struct smtp_error err;

	assert_int_equal(FEED(&r, &err, "250 2.1.0 Ok"), 1);
	assert_true(r.done);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.status, "2.1.0");
	assert_string_equal(r.text, "Ok");
	assert_int_equal(r.lines, 1);
	assert_false(r.truncated);
	assert_string_equal(smtp_reply_status(&r), "2.1.0");
}

static void
test_reply_without_status_gets_the_class_default(void **state)
{
	struct smtp_reply r;
	struct smtp_error err;

	assert_int_equal(FEED(&r, &err, "220 mx.example.net ESMTP Postfix"), 1);
	assert_string_equal(r.status, "");
	assert_string_equal(r.text, "mx.example.net ESMTP Postfix");
	assert_string_equal(smtp_reply_status(&r), "2.0.0");

	assert_int_equal(FEED(&r, &err, "451 Try again"), 1);
	assert_string_equal(smtp_reply_status(&r), "4.0.0");
	assert_int_equal(FEED(&r, &err, "550"), 1);
	assert_int_equal(r.code, 550);
	assert_string_equal(r.text, "");
	assert_string_equal(smtp_reply_status(&r), "5.0.0");
	assert_int_equal(FEED(&r, &err, "354 End data with <CR><LF>.<CR><LF>"), 1);
	assert_string_equal(smtp_reply_status(&r), "");
}

static void
test_multi_line_reply_joins_text(void **state)
{
	struct smtp_reply r;
	struct smtp_error err;

	assert_int_equal(FEED(&r, &err, "250-first", "250-second", "250 third"), 1);
	assert_int_equal(r.code, 250);
	assert_string_equal(r.text, "first\nsecond\nthird");
	assert_int_equal(r.lines, 3);
	assert_int_equal(r.lines_kept, 3);
	assert_int_equal(r.text_len, strlen(r.text));

	/* A bare code ends a reply too (RFC 5321 §4.2: the text is optional). */
	assert_int_equal(FEED(&r, &err, "250-first", "250"), 1);
	assert_string_equal(r.text, "first\n");
}

static void
test_incremental_feed_reports_more(void **state)
{
	struct smtp_reply r;
	struct smtp_error err;

	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "421-4.7.0 one", 13, &err), 0);
	assert_false(r.done);
	assert_int_equal(r.code, 421);
	assert_int_equal(smtp_reply_feed(&r, "421 4.7.0 two", 13, &err), 1);
	assert_true(r.done);
	assert_string_equal(r.status, "4.7.0");
	assert_string_equal(r.text, "one\ntwo");
	/* Past the last line: a protocol error, not a silent restart. */
	assert_int_equal(smtp_reply_feed(&r, "250 ok", 6, &err), -1);
	assert_int_equal(err.code, 451);
	assert_string_equal(err.status, "4.5.0");
}

static void
test_gmail_repeats_the_status_on_every_line(void **state)
{
	struct smtp_reply r;
	struct smtp_error err;

	assert_int_equal(
	    FEED(&r, &err,
	         "550-5.1.1 The email account that you tried to reach does not exist. Please try",
	         "550-5.1.1 double-checking the recipient's email address for typos or",
	         "550 5.1.1 unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser"),
	    1);
	assert_string_equal(r.status, "5.1.1");
	assert_string_equal(r.text,
	                    "The email account that you tried to reach does not exist. Please try\n"
	                    "double-checking the recipient's email address for typos or\n"
	                    "unnecessary spaces. https://support.google.com/mail/?p=NoSuchUser");
}

static void
test_enhanced_status_forms(void **state)
{
	static const struct {
		const char *line, *status, *text;
	} cases[] = {
	    {"250 2.0.0 Ok: queued as 4F1", "2.0.0", "Ok: queued as 4F1"},
	    {"550 5.7.1", "5.7.1", ""},
	    {"452 4.5.3 Too many recipients", "4.5.3", "Too many recipients"},
	    {"550 5.123.456 three digits", "5.123.456", "three digits"},
	    {"421 4.7.0 [TS01] Messages from 192.0.2.1 temporarily deferred", "4.7.0",
	     "[TS01] Messages from 192.0.2.1 temporarily deferred"},
	    /* Not status codes: they stay text. */
	    {"550 5.1.1x user unknown", "", "5.1.1x user unknown"},
	    {"550 5.1.1.1 user unknown", "", "5.1.1.1 user unknown"},
	    {"550 5.1234.1 user unknown", "", "5.1234.1 user unknown"},
	    {"550 3.1.1 user unknown", "", "3.1.1 user unknown"},
	    {"550 5..1 user unknown", "", "5..1 user unknown"},
	    {"550 5.1. user unknown", "", "5.1. user unknown"},
	    {"550 user 5.1.1 unknown", "", "user 5.1.1 unknown"},
	    /* The code governs: a class that disagrees is replaced. */
	    {"450 5.7.1 greylisted", "4.7.1", "greylisted"},
	    {"250 5.0.0 odd", "2.0.0", "odd"},
	    /* 3xx has no enhanced status. */
	    {"354 2.0.0 go ahead", "", "2.0.0 go ahead"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_reply r;
		struct smtp_error err;

		assert_int_equal(FEED(&r, &err, cases[i].line), 1);
		assert_string_equal(r.status, cases[i].status);
		assert_string_equal(r.text, cases[i].text);
	}
	assert_true(smtp_status_valid("5.1.1", 5));
	assert_true(smtp_status_valid("4.999.999", 9));
	assert_false(smtp_status_valid("5.1.1 ", 6));
	assert_false(smtp_status_valid("", 0));
	assert_false(smtp_status_valid("1.1.1", 5));
}

static void
test_malformed_replies_are_protocol_errors(void **state)
{
	static const char *const bad[] = {
	    "",          /* empty line */
	    "25",        /* short code */
	    "2x0 Ok",    /* not digits */
	    "099 Ok",    /* first digit out of range */
	    "650 Ok",    /* first digit out of range */
	    "150 Ok",    /* preliminary replies do not exist in SMTP */
	    "250Ok",     /* no separator */
	    "250_Ok",    /* bad separator */
	    "2500 Ok",   /* four digits */
	    "hello",     /* no code at all */
	    " 250 Ok",   /* leading space */
	    "250\t2.0.0" /* tab is not a separator */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct smtp_reply r;
		struct smtp_error err = {0};

		smtp_reply_init(&r);
		assert_int_equal(smtp_reply_feed(&r, bad[i], strlen(bad[i]), &err), -1);
		assert_int_equal(err.code, 451);
		assert_string_equal(err.status, "4.5.0");
		assert_non_null(err.text);
	}
}

static void
test_mixed_codes_are_a_protocol_error(void **state)
{
	struct smtp_reply r;
	struct smtp_error err = {0};

	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-a", 5, &err), 0);
	assert_int_equal(smtp_reply_feed(&r, "251 b", 5, &err), -1);
	assert_int_equal(err.code, 451);
	assert_non_null(strstr(err.text, "different codes"));
	/* The error pointer is optional. */
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "x", 1, NULL), -1);
}

static void
test_control_octets_are_neutralised(void **state)
{
	static const char line[] = "550 bad\0nul\rcr\x1b[31mesc\ttab\x7f\xc3\xa9";
	struct smtp_reply r;
	struct smtp_error err;

	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, line, sizeof(line) - 1, &err), 1);
	assert_string_equal(r.text, "bad?nul?cr?[31mesc\ttab?\xc3\xa9");
	assert_int_equal(r.text_len, strlen(r.text));
}

static void
test_long_replies_are_bounded_but_parsed_to_the_end(void **state)
{
	char line[1200];
	struct smtp_reply r;
	struct smtp_error err;

	/* Many lines: only SMTP_REPLY_LINES_MAX are kept. */
	smtp_reply_init(&r);
	for (int i = 0; i < 1000; i++) {
		int n = snprintf(line, sizeof(line), "250-line %d", i);

		assert_int_equal(smtp_reply_feed(&r, line, (size_t)n, &err), 0);
	}
	assert_int_equal(smtp_reply_feed(&r, "250 end", 7, &err), 1);
	assert_int_equal(r.lines, 1001);
	assert_int_equal(r.lines_kept, SMTP_REPLY_LINES_MAX);
	assert_true(r.truncated);
	assert_int_equal(r.text_len, strlen(r.text));
	assert_true(strncmp(r.text, "line 0\nline 1\n", 14) == 0);

	/* Long lines: at most SMTP_REPLY_TEXT_MAX octets. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "550-", 4);
	smtp_reply_init(&r);
	for (int i = 0; i < 10; i++)
		assert_int_equal(smtp_reply_feed(&r, line, sizeof(line), &err), 0);
	line[3] = ' ';
	assert_int_equal(smtp_reply_feed(&r, line, sizeof(line), &err), 1);
	assert_true(r.truncated);
	assert_int_equal(r.text_len, SMTP_REPLY_TEXT_MAX);
	assert_int_equal(strlen(r.text), SMTP_REPLY_TEXT_MAX);
	assert_int_equal(r.lines, 11);
}

static void
test_ehlo_postfix(void **state)
{
	struct smtp_reply r;
	struct smtp_ehlo e;
	struct smtp_error err;

	assert_int_equal(FEED(&r, &err, "250-mx.example.net", "250-PIPELINING", "250-SIZE 10240000",
	                      "250-VRFY", "250-ETRN", "250-STARTTLS", "250-ENHANCEDSTATUSCODES",
	                      "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING"),
	                 1);
	smtp_ehlo_parse(&r, &e);
	assert_true(e.pipelining);
	assert_true(e.size);
	assert_int_equal(e.size_max, 10240000);
	assert_true(e.starttls);
	assert_true(e.enhancedstatuscodes);
	assert_true(e.eightbitmime);
	assert_true(e.dsn);
	assert_true(e.smtputf8);
	assert_true(e.chunking);
	assert_false(e.binarymime);
	assert_false(e.auth);
	assert_string_equal(e.auth_mechanisms, "");
}

static void
test_ehlo_keywords_case_and_forms(void **state)
{
	struct smtp_reply r;
	struct smtp_ehlo e;
	struct smtp_error err;

	assert_int_equal(FEED(&r, &err, "250-pipelining is the first line, not a keyword",
	                      "250-size", "250-auth=login", "250-Auth plain Login  CRAM-MD5",
	                      "250-X-UNKNOWN whatever", "250-BINARYMIME", "250 8bitmime"),
	                 1);
	smtp_ehlo_parse(&r, &e);
	assert_false(e.pipelining);
	assert_true(e.size);
	assert_int_equal(e.size_max, 0); /* no argument: no fixed limit */
	assert_true(e.auth);
	assert_string_equal(e.auth_mechanisms, "LOGIN PLAIN LOGIN CRAM-MD5");
	assert_true(e.binarymime);
	assert_true(e.eightbitmime);
	assert_false(e.smtputf8);

	/* A SIZE that is not a number, or overflows, announces no usable limit. */
	assert_int_equal(FEED(&r, &err, "250-mx", "250 SIZE 99999999999999999999999"), 1);
	smtp_ehlo_parse(&r, &e);
	assert_true(e.size);
	assert_int_equal(e.size_max, 0);
	assert_int_equal(FEED(&r, &err, "250-mx", "250 SIZE 12ab"), 1);
	smtp_ehlo_parse(&r, &e);
	assert_int_equal(e.size_max, 0);

	/* A one-line EHLO reply announces nothing. */
	assert_int_equal(FEED(&r, &err, "250 mx.example.net"), 1);
	smtp_ehlo_parse(&r, &e);
	assert_false(e.size || e.pipelining || e.eightbitmime || e.auth);
}

static void
test_ehlo_auth_mechanisms_are_bounded(void **state)
{
	char line[600];
	struct smtp_reply r;
	struct smtp_ehlo e;
	struct smtp_error err;
	int n;

	n = snprintf(line, sizeof(line), "250 AUTH");
	for (int i = 0; i < 40; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " MECHANISM-%02d", i);
	smtp_reply_init(&r);
	assert_int_equal(smtp_reply_feed(&r, "250-mx", 6, &err), 0);
	assert_int_equal(smtp_reply_feed(&r, line, (size_t)n, &err), 1);
	smtp_ehlo_parse(&r, &e);
	assert_true(e.auth);
	assert_true(strlen(e.auth_mechanisms) <= SMTP_EHLO_AUTH_MAX);
	assert_true(strncmp(e.auth_mechanisms, "MECHANISM-00 MECHANISM-01", 25) == 0);
	/* Whole names only: the kept list ends with a complete one. */
	assert_int_equal(strlen(e.auth_mechanisms) % 13, 12);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_single_line_reply),
	    cmocka_unit_test(test_reply_without_status_gets_the_class_default),
	    cmocka_unit_test(test_multi_line_reply_joins_text),
	    cmocka_unit_test(test_incremental_feed_reports_more),
	    cmocka_unit_test(test_gmail_repeats_the_status_on_every_line),
	    cmocka_unit_test(test_enhanced_status_forms),
	    cmocka_unit_test(test_malformed_replies_are_protocol_errors),
	    cmocka_unit_test(test_mixed_codes_are_a_protocol_error),
	    cmocka_unit_test(test_control_octets_are_neutralised),
	    cmocka_unit_test(test_long_replies_are_bounded_but_parsed_to_the_end),
	    cmocka_unit_test(test_ehlo_postfix),
	    cmocka_unit_test(test_ehlo_keywords_case_and_forms),
	    cmocka_unit_test(test_ehlo_auth_mechanisms_are_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
