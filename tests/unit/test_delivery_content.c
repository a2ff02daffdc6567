/* The content on the wire: dot-stuffing, CRLF line ends and the final "." line, whatever the
 * body's chunk boundaries and the encoder's step; BDAT's octets untouched. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "delivery/internal.h"

/* Encodes body (built from pieces, each its own evbuffer chain) in steps of max octets;
 * returns the wire form as a malloc'd string. */
static char *
encode(const char *const *pieces, size_t npieces, bool raw, size_t max)
{
	struct evbuffer *body = evbuffer_new(), *out = evbuffer_new();
	struct content_encoder e;
	size_t len, rounds = 0;
	char *s;

	for (size_t i = 0; i < npieces; i++) {
		struct evbuffer *piece = evbuffer_new();

		evbuffer_add(piece, pieces[i], strlen(pieces[i]));
		evbuffer_add_buffer(body, piece); /* keeps the chain boundary */
		evbuffer_free(piece);
	}
	content_encoder_init(&e, raw);
	while (!content_encode(&e, body, out, max))
		assert_true(++rounds < 100000);
	assert_true(content_encode(&e, body, out, max)); /* done stays done, adds nothing */
	assert_int_equal(evbuffer_get_length(body), e.offset);
	len = evbuffer_get_length(out);
	s = malloc(len + 1);
	evbuffer_remove(out, s, len);
	s[len] = '\0';
	evbuffer_free(body);
	evbuffer_free(out);
	return s;
}

static void
expect(const char *const *pieces, size_t n, const char *wire)
{
	/* The same output for every step size and every split of the input. */
	static const size_t steps[] = {1, 2, 3, 7, 64, 65536};

	for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
		char *s = encode(pieces, n, false, steps[k]);

		assert_string_equal(s, wire);
		free(s);
	}
}

#define EXPECT(wire, ...)                                                                          \
	expect((const char *const[]){__VA_ARGS__},                                                 \
	       sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *), (wire))

static void
test_plain_lines_pass_unchanged(void **state)
{
	EXPECT("Subject: hi\r\n\r\nbody\r\n.\r\n", "Subject: hi\r\n\r\nbody\r\n");
}

static void
test_leading_dots_are_doubled(void **state)
{
	EXPECT("..\r\n...\r\n..x\r\na.b\r\n.. \r\n.\r\n", ".\r\n..\r\n.x\r\na.b\r\n. \r\n");
	EXPECT("..first\r\n.\r\n", ".first\r\n");
	/* A dot that starts a line in the next chunk. */
	EXPECT("a\r\n..b\r\n.\r\n", "a\r\n", ".b\r\n");
	EXPECT("a\r\n..b\r\n.\r\n", "a\r", "\n", ".", "b\r\n");
}

static void
test_line_ends_become_crlf(void **state)
{
	EXPECT("a\r\nb\r\n.\r\n", "a\nb\n");
	EXPECT("a\r\n..b\r\n.\r\n", "a\n.b\n");
	EXPECT("a\r\n\r\n.\r\n", "a\n", "\n");
	/* A CR alone inside a line is left as it is. */
	EXPECT("a\rb\r\n.\r\n", "a\rb\r\n");
}

static void
test_missing_final_line_end_is_added(void **state)
{
	EXPECT("last\r\n.\r\n", "last");
	EXPECT("..\r\n.\r\n", ".");
	EXPECT("cr\r\n.\r\n", "cr\r");
	EXPECT(".\r\n", "");
}

static void
test_the_terminator_cannot_be_forged(void **state)
{
	/* The SMTP smuggling forms: every line that is only "." is stuffed. */
	EXPECT("a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n", "a\r\n.\r\nMAIL FROM:<x@y>\r\n");
	EXPECT("a\r\n..\r\nb\r\n.\r\n", "a\n.\nb");
}

static void
test_raw_content_is_untouched(void **state)
{
	static const char *const pieces[] = {".a\n", "\r\n.\r\n", "\0x"};
	char *s = encode(pieces, 3, true, 2);

	assert_string_equal(s, ".a\n\r\n.\r\n");
	free(s);
}

static void
test_large_body_in_many_chains(void **state)
{
	enum { LINES = 5000 };
	const char **pieces = calloc(LINES, sizeof(*pieces));
	struct evbuffer *want = evbuffer_new();
	size_t len;
	char *w, *s;

	for (int i = 0; i < LINES; i++) {
		pieces[i] = i % 3 == 0 ? ".dot line\n" : "plain line of text\r\n";
		evbuffer_add_printf(want, "%s",
		                    i % 3 == 0 ? "..dot line\r\n" : "plain line of text\r\n");
	}
	evbuffer_add(want, ".\r\n", 3);
	len = evbuffer_get_length(want);
	w = malloc(len + 1);
	evbuffer_remove(want, w, len);
	w[len] = '\0';
	s = encode(pieces, LINES, false, DELIVERY_CONTENT_CHUNK);
	assert_string_equal(s, w);
	free(s);
	s = encode(pieces, LINES, false, 1000);
	assert_string_equal(s, w);
	free(s);
	free(w);
	free(pieces);
	evbuffer_free(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_lines_pass_unchanged),
	    cmocka_unit_test(test_leading_dots_are_doubled),
	    cmocka_unit_test(test_line_ends_become_crlf),
	    cmocka_unit_test(test_missing_final_line_end_is_added),
	    cmocka_unit_test(test_the_terminator_cannot_be_forged),
	    cmocka_unit_test(test_raw_content_is_untouched),
	    cmocka_unit_test(test_large_body_in_many_chains),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
