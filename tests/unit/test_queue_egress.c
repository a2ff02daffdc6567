/* test_queue_egress.c - the choice of egress source: nginx's smooth weighted round robin as a
 * pure function (exact sequences), and the engine's per-destination picks over a pool loaded
 * from a configuration, with sources going down and coming back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"

static void
expect_sequence(const unsigned *w, const bool *up, size_t n, const char *want)
{
	int64_t cur[8] = {0};
	char got[64];
	size_t len = strlen(want);

	for (size_t i = 0; i < len; i++) {
		size_t k = egress_wrr_pick(cur, w, up, n);

		got[i] = k == SIZE_MAX ? '-' : (char)('a' + k);
	}
	got[len] = '\0';
	assert_string_equal(got, want);
}

static void
test_three_to_one_interleaves(void **state)
{
	static const unsigned w[] = {3, 1};
	static const bool up[] = {true, true};

	(void)state;
	/* a a b a, every round of the total weight (4), never b twice in a row. */
	expect_sequence(w, up, 2, "aabaaabaaaba");
}

static void
test_nginx_example(void **state)
{
	static const unsigned w[] = {5, 1, 1};
	static const bool up[] = {true, true, true};

	(void)state;
	/* The sequence nginx documents for weights 5, 1, 1 (ngx_http_upstream_round_robin.c). */
	expect_sequence(w, up, 3, "aabacaaaabacaa");
}

static void
test_equal_weights_alternate(void **state)
{
	static const unsigned w[] = {1, 1, 1};
	static const bool up[] = {true, true, true};

	(void)state;
	expect_sequence(w, up, 3, "abcabcabc");
}

static void
test_down_source_left_out(void **state)
{
	static const unsigned w[] = {3, 1, 2};
	static const bool up[] = {true, false, true};
	static const bool none[] = {false, false};
	int64_t cur[2] = {7, -7};

	(void)state;
	/* b is out of the sums: a and c share 3:2. */
	expect_sequence(w, up, 3, "acacaacaca");
	/* Nothing usable: no pick, and the state is left as it was. */
	assert_true(egress_wrr_pick(cur, w, none, 2) == SIZE_MAX);
	assert_int_equal(cur[0], 7);
	assert_int_equal(cur[1], -7);
}

static void
test_shares_exact_over_rounds(void **state)
{
	static const unsigned w[] = {3, 1};
	static const bool up[] = {true, true};
	int64_t cur[2] = {0};
	unsigned count[2] = {0};

	(void)state;
	for (int i = 0; i < 10000; i++)
		count[egress_wrr_pick(cur, w, up, 2)]++;
	assert_int_equal(count[0], 7500);
	assert_int_equal(count[1], 2500);
}

static struct config *
load(const char *text)
{
	char path[] = "/tmp/drover-test-egress-XXXXXX";
	char err[4096];
	int fd = mkstemp(path);
	struct config *c;
	FILE *fp;

	assert_true(fd >= 0);
	fp = fdopen(fd, "w");
	fputs(text, fp);
	fclose(fp);
	c = config_load(path, err, sizeof(err));
	remove(path);
	if (c == NULL)
		fail_msg("%s", err);
	return c;
}

static void
test_picks_per_destination_and_down_sources(void **state)
{
	struct config *c = load("hostname = \"mta.example.com\"\n"
	                        "source \"a\" { address = \"127.0.0.2\" }\n"
	                        "source \"b\" { address = \"127.0.0.3\" }\n"
	                        "pool \"p\" { source \"a\" { weight = 3 } source \"b\" { } }\n"
	                        "delivery { pool = \"p\" }\n");
	const struct pool_conf *p = config_pool(c, "p");
	struct egress *g = egress_new(c);
	char seq[16];
	uint64_t now = 1000 * USEC;

	(void)state;
	assert_non_null(p);
	/* Each destination has its own round: interleaving two does not change either. */
	for (int i = 0; i < 8; i++) {
		seq[i] = (char)('a' + egress_pick(g, p, "one.example", now, true));
		long peek = egress_pick(g, p, "two.example", now, false);

		assert_int_equal(egress_pick(g, p, "two.example", now, true), peek);
	}
	seq[8] = '\0';
	assert_string_equal(seq, "aabaaaba");
	/* Down: left out at once, said once; back after EGRESS_SOURCE_RETRY_S. */
	assert_true(egress_source_failed(g, 0, now));
	assert_false(egress_source_failed(g, 0, now));
	for (int i = 0; i < 4; i++)
		assert_int_equal(egress_pick(g, p, "one.example", now, true), 1);
	assert_false(egress_source_up(g, 0, now + EGRESS_SOURCE_RETRY_S * USEC - 1));
	assert_true(egress_source_up(g, 0, now + EGRESS_SOURCE_RETRY_S * USEC));
	/* Every source down: no pick (the mail waits). */
	egress_source_failed(g, 1, now);
	assert_int_equal(egress_pick(g, p, "one.example", now, true), -1);
	assert_true(egress_source_worked(g, 1));
	assert_false(egress_source_worked(g, 1));
	assert_int_equal(egress_pick(g, p, "one.example", now, true), 1);
	egress_free(g);
	config_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_three_to_one_interleaves),
	    cmocka_unit_test(test_nginx_example),
	    cmocka_unit_test(test_equal_weights_alternate),
	    cmocka_unit_test(test_down_source_left_out),
	    cmocka_unit_test(test_shares_exact_over_rounds),
	    cmocka_unit_test(test_picks_per_destination_and_down_sources),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
