/* test_webhook_request.c - what a webhook sends and when: the body is a JSON array of the
 * records as written, each with its event_id; retries back off from 1 s, doubling, up to
 * retry_max, never in step; the state file and segment names parse strictly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/core.h"
#include "webhook/internal.h"

static void
add(struct backlog_batch *bt, uint64_t id, const char *line)
{
	size_t len = strlen(line);

	bt->buf = xrealloc(bt->buf, bt->len + len);
	memcpy(bt->buf + bt->len, line, len);
	bt->recs = xrealloc(bt->recs, (bt->n + 1) * sizeof(*bt->recs));
	bt->recs[bt->n++] = (struct backlog_rec){id, bt->len, len};
	bt->len += len;
}

static void
test_body(void **state)
{
	struct backlog_batch bt = {0};
	size_t len;
	char *body;
	json_t *a;

	add(&bt, 41, "{\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"Delivery\",\"id\":\"q1\"}");
	add(&bt, 42, "{}");
	add(&bt, 18446744073709551615ULL, "{\"type\":\"Bounce\",\"nested\":{\"a\":[1,{}]}}");
	body = webhook_body(&bt, 0xabcdef0123456789ULL, &len);
	assert_int_equal(strlen(body), len);
	a = json_loadb(body, len, 0, NULL);
	assert_non_null(a);
	assert_true(json_is_array(a));
	assert_int_equal(json_array_size(a), 3);
	/* The record as written, its members in order, event_id last. */
	assert_string_equal(
	    body, "[{\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"Delivery\",\"id\":\"q1\","
	          "\"event_id\":\"abcdef0123456789-41\"},{\"event_id\":\"abcdef0123456789-42\"},"
	          "{\"type\":\"Bounce\",\"nested\":{\"a\":[1,{}]},"
	          "\"event_id\":\"abcdef0123456789-18446744073709551615\"}]");
	json_decref(a);
	free(body);

	/* An empty batch is an empty array (never sent, but well-formed). */
	bt.n = 0;
	body = webhook_body(&bt, 1, &len);
	assert_string_equal(body, "[]");
	free(body);
	free(bt.buf);
	free(bt.recs);
}

static void
test_record_valid(void **state)
{
	static const char *const good[] = {"{}", "{\"a\":1}", "{\"a\":[{\"b\":null}]}"};
	static const char *const bad[] = {
	    "",
	    "{",
	    "}",
	    "[]",
	    "{\"a\":1} ",
	    " {\"a\":1}",
	    "{a:1}",
	    "{\"a\":1}{\"b\":2}",
	    "{\"a\":\"\x01\"}",
	    "null",
	    "{\"a\":1,}",
	};

	for (size_t i = 0; i < nitems(good); i++)
		assert_true(webhook_record_valid(good[i], strlen(good[i])));
	for (size_t i = 0; i < nitems(bad); i++) {
		if (webhook_record_valid(bad[i], strlen(bad[i])))
			fail_msg("accepted: %s", bad[i]);
	}
	/* A NUL inside is not JSON. */
	assert_false(webhook_record_valid("{\"a\":\"\0\"}", 9));
}

static void
test_backoff(void **state)
{
	uint64_t max = 600 * USEC;

	/* No jitter (random 0): 1, 2, 4, ... s, then max. */
	assert_int_equal(webhook_backoff_us(1, max, 0), 1 * USEC);
	assert_int_equal(webhook_backoff_us(2, max, 0), 2 * USEC);
	assert_int_equal(webhook_backoff_us(3, max, 0), 4 * USEC);
	assert_int_equal(webhook_backoff_us(10, max, 0), 512 * USEC);
	assert_int_equal(webhook_backoff_us(11, max, 0), max);
	assert_int_equal(webhook_backoff_us(1000000, max, 0), max);
	/* A retry_max below 1 s is never passed. */
	assert_int_equal(webhook_backoff_us(1, USEC / 2, 0), USEC / 2);
	/* Jitter: up to 20% shorter, never longer. */
	for (uint32_t r = 0; r < 1000; r++) {
		uint64_t d = webhook_backoff_us(4, max, r * 2654435761u);

		assert_true(d <= 8 * USEC);
		assert_true(d >= 8 * USEC * 80 / 100);
	}
	assert_int_equal(webhook_backoff_us(4, max, 20), 8 * USEC * 80 / 100);
}

static void
test_state_roundtrip(void **state)
{
	struct backlog_state s = {0x0123456789abcdefULL, 1234567, 1234000, 89012}, t;
	char line[BACKLOG_STATE_MAX];
	size_t len = backlog_state_format(&s, line, sizeof(line));
	const char *why;

	assert_string_equal(line, "drover-webhook-backlog 1 epoch=0123456789abcdef ack=1234567 "
	                          "segment=1234000 offset=89012\n");
	assert_int_equal(backlog_state_parse(line, len, &t, &why), 0);
	assert_memory_equal(&s, &t, sizeof(s));

	s = (struct backlog_state){UINT64_MAX, UINT64_MAX, UINT64_MAX, 0};
	len = backlog_state_format(&s, line, sizeof(line));
	assert_int_equal(backlog_state_parse(line, len, &t, &why), 0);
	assert_int_equal(t.ack_id, UINT64_MAX);
}

static void
test_state_rejects(void **state)
{
	static const char *const bad[] = {
	    "",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=5 segment=1 offset=10", /* no \n */
	    "drover-webhook-backlog 2 epoch=0123456789abcdef ack=5 segment=1 offset=10\n", /* v2 */
	    "drover-webhook-backlog 1 epoch=0123456789ABCDEF ack=5 segment=1 offset=10\n", /* case
	                                                                                    */
	    "drover-webhook-backlog 1 epoch=0123456789abcde ack=5 segment=1 offset=10\n",  /* 15 */
	    "drover-webhook-backlog 1 epoch=0123456789abcdef0 ack=5 segment=1 offset=10\n",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=0 segment=0 offset=0\n",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=5 segment=6 offset=10\n",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=5 segment=5 offset=10\n",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=5 segment=1 offset=0\n",
	    ("drover-webhook-backlog 1 epoch=0123456789abcdef ack=18446744073709551616 segment=1 "
	     "offset=1\n"),
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=-5 segment=1 offset=10\n",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=5 segment=1 offset=10\nx",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=5  segment=1 offset=10\n",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack= segment=1 offset=10\n",
	    "drover-webhook-backlog 1 epoch=0123456789abcdef ack=5 segment=1 offset=010\n",
	};
	struct backlog_state t;
	const char *why;

	for (size_t i = 0; i < nitems(bad); i++) {
		if (backlog_state_parse(bad[i], strlen(bad[i]), &t, &why) == 0)
			fail_msg("accepted: %s", bad[i]);
	}
}

static void
test_segment_names(void **state)
{
	uint64_t id;

	assert_int_equal(backlog_segment_id("00000000000000000001.jsonl", &id), 0);
	assert_int_equal(id, 1);
	assert_int_equal(backlog_segment_id("18446744073709551615.jsonl", &id), 0);
	assert_int_equal(id, UINT64_MAX);
	assert_int_equal(backlog_segment_id("18446744073709551616.jsonl", &id), -1);
	assert_int_equal(backlog_segment_id("00000000000000000000.jsonl", &id), -1);
	assert_int_equal(backlog_segment_id("0000000000000000001.jsonl", &id), -1);
	assert_int_equal(backlog_segment_id("0000000000000000000a.jsonl", &id), -1);
	assert_int_equal(backlog_segment_id("00000000000000000001.json", &id), -1);
	assert_int_equal(backlog_segment_id("00000000000000000001.jsonl~", &id), -1);
	assert_int_equal(backlog_segment_id("state", &id), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_body),          cmocka_unit_test(test_record_valid),
	    cmocka_unit_test(test_backoff),       cmocka_unit_test(test_state_roundtrip),
	    cmocka_unit_test(test_state_rejects), cmocka_unit_test(test_segment_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
