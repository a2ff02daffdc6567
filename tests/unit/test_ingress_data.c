/* The DATA/BDAT scanner: what a client sends, what the spool gets, what the verdict is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "ingress/ingress.h"

struct scan_result {
	char content[4096];
	size_t consumed;
	int done;
	unsigned violations;
	int eightbit;
};

/* Feeds input in pieces of `step` octets (1 = every possible read boundary). */
static struct scan_result
scan(const char *input, size_t step, int dot_mode, int allow_8bit, unsigned line_max)
{
	struct scan_result r = {0};
	struct body_scanner s;
	struct evbuffer *out = evbuffer_new();
	size_t len = strlen(input), n;

	body_scanner_init(&s, dot_mode, allow_8bit, line_max, 1 << 20);
	for (size_t off = 0; off < len && !r.done; off += n) {
		size_t piece = len - off < step ? len - off : step;
		n = body_scanner_feed(&s, input + off, piece, out, &r.done);
		r.consumed += n;
	}
	n = evbuffer_get_length(out);
	assert_true(n < sizeof(r.content));
	evbuffer_remove(out, r.content, n);
	r.violations = s.violations;
	r.eightbit = s.eightbit;
	evbuffer_free(out);
	return r;
}

static void
test_data_ends_at_crlf_dot_crlf_and_unstuffs(void **state)
{
	const char *in = "Subject: x\r\n\r\n..leading dot\r\n.x\r\nlast\r\n.\r\nQUIT\r\n";

	for (size_t step = 1; step <= strlen(in); step++) {
		struct scan_result r = scan(in, step, 1, 0, 1000);
		assert_true(r.done);
		assert_int_equal(r.consumed, strlen(in) - strlen("QUIT\r\n"));
		assert_string_equal(r.content, "Subject: x\r\n\r\n.leading dot\r\nx\r\nlast\r\n");
		assert_int_equal(r.violations, 0);
	}
}

static void
test_empty_message(void **state)
{
	struct scan_result r = scan(".\r\n", 1, 1, 0, 1000);

	assert_true(r.done);
	assert_string_equal(r.content, "");
}

static void
test_bare_lf_dot_is_not_an_end(void **state)
{
	/* The SMTP smuggling shapes: none of these ends the data. */
	const char *shapes[] = {"a\n.\nMAIL FROM:<x@y>\r\n", "a\r\n.\nMAIL FROM:<x@y>\r\n",
	                        "a\n.\r\nMAIL FROM:<x@y>\r\n", "a\r.\r\nMAIL\r\n"};

	for (size_t i = 0; i < 4; i++) {
		struct scan_result r = scan(shapes[i], 3, 1, 0, 1000);
		assert_false(r.done);
		assert_true(r.violations & (BODY_BARE_LF | BODY_BARE_CR));
		assert_string_equal(r.content, ""); /* a doomed message keeps nothing */
	}
}

static void
test_nul_and_8bit(void **state)
{
	struct scan_result r;
	const char nul[] = {'a', '\0', 'b', '\r', '\n', '.', '\r', '\n', 0};
	struct body_scanner s;
	struct evbuffer *out = evbuffer_new();
	int done;

	body_scanner_init(&s, 1, 1, 1000, 1 << 20);
	body_scanner_feed(&s, nul, 8, out, &done);
	assert_true(done);
	assert_true(s.violations & BODY_NUL);
	evbuffer_free(out);

	r = scan("caf\xc3\xa9\r\n.\r\n", 4, 1, 0, 1000);
	assert_true(r.violations & BODY_8BIT_UNDECLARED);
	r = scan("caf\xc3\xa9\r\n.\r\n", 4, 1, 1, 1000);
	assert_int_equal(r.violations, 0);
	assert_true(r.eightbit);
	assert_string_equal(r.content, "caf\xc3\xa9\r\n");
}

static void
test_line_length_limit_counts_crlf(void **state)
{
	char line[1100];

	memset(line, 'x', 998);
	strcpy(line + 998, "\r\n.\r\n"); /* 1000 octets with CRLF: allowed */
	assert_int_equal(scan(line, 100, 1, 0, 1000).violations, 0);
	memset(line, 'x', 999);
	strcpy(line + 999, "\r\n.\r\n"); /* 1001: too long */
	assert_true(scan(line, 100, 1, 0, 1000).violations & BODY_LINE_TOO_LONG);
	assert_int_equal(scan(line, 100, 1, 0, 0).violations, 0); /* 0 = unlimited */
}

static void
test_size_limit(void **state)
{
	struct body_scanner s;
	struct evbuffer *out = evbuffer_new();
	int done;

	body_scanner_init(&s, 1, 0, 1000, 10);
	body_scanner_feed(&s, "0123456789\r\n.\r\n", 15, out, &done);
	assert_true(done);
	assert_true(s.violations & BODY_TOO_BIG);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);
}

static void
test_bdat_is_raw(void **state)
{
	struct scan_result r = scan("..x\r\n.\r\nmore\r\n", 5, 0, 0, 1000);

	assert_false(r.done);
	assert_string_equal(r.content, "..x\r\n.\r\nmore\r\n");
	assert_int_equal(r.violations, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_data_ends_at_crlf_dot_crlf_and_unstuffs),
	    cmocka_unit_test(test_empty_message),
	    cmocka_unit_test(test_bare_lf_dot_is_not_an_end),
	    cmocka_unit_test(test_nul_and_8bit),
	    cmocka_unit_test(test_line_length_limit_counts_crlf),
	    cmocka_unit_test(test_size_limit),
	    cmocka_unit_test(test_bdat_is_raw),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
