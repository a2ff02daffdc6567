/* test_shape_warmup.c - IP warm-up on a fake clock: the cap of each day of a schedule and
 * after it, "N doubling", days before the start, counts per (source, destination) that start
 * again at UTC midnight, providers a schedule is limited to, and what happens when the
 * counters' table is full (the cap holds). */
#include "test_shape_util.h"

static const char rules[] = "provider \"gmail\" { domains = [\"gmail.com\"] }\n"
                            "provider \"yahoo\" { domains = [\"yahoo.com\"] }\n"
                            "warmup \"new-ips\" {\n"
                            "  sources = [\"ip-3\", \"ip-4\"]\n"
                            "  start = \"2026-12-01\"\n"
                            "  schedule = [200, 400, 800, 1600]\n"
                            "}\n"
                            "warmup \"doubling\" {\n"
                            "  sources = [\"ip-5\"]\n"
                            "  start = \"2026-12-03\"\n"
                            "  schedule = \"100 doubling\"\n"
                            "  after = 1000\n"
                            "  providers = [\"gmail\"]\n"
                            "}\n";

static uint64_t
cap_at(const struct shape_rules *r, const char *source, const char *dest, uint64_t now)
{
	uint64_t cap = 0;

	assert_true(shape_warmup_cap(r, source, dest, now, &cap));
	return cap;
}

static void
test_schedule(void **state)
{
	struct shape_rules *r = rules_ok(rules);
	uint64_t cap;

	/* T0 is 2026-12-01T00:00:00Z, day 1. */
	assert_int_equal(cap_at(r, "ip-3", "gmail", T0), 200);
	assert_int_equal(cap_at(r, "ip-3", "gmail", T0 + DAY - 1), 200);
	assert_int_equal(cap_at(r, "ip-4", "example.org", T0 + DAY), 400);
	assert_int_equal(cap_at(r, "ip-3", "gmail", T0 + 3 * DAY + 5 * HOUR), 1600);
	/* After the schedule: after (unlimited by default). */
	assert_int_equal(cap_at(r, "ip-3", "gmail", T0 + 4 * DAY), UINT64_MAX);
	/* Before its start a source is as new as on day 1. */
	assert_int_equal(cap_at(r, "ip-3", "gmail", T0 - 10 * DAY), 200);
	/* Sources not in a schedule have no cap. */
	assert_false(shape_warmup_cap(r, "ip-1", "gmail", T0, &cap));
	assert_false(shape_warmup_cap(r, NULL, "gmail", T0, &cap));

	/* 100 doubling from 2026-12-03, up to 1000, for gmail only. */
	assert_int_equal(cap_at(r, "ip-5", "gmail", T0), 100);
	assert_int_equal(cap_at(r, "ip-5", "gmail", T0 + 2 * DAY), 100);
	assert_int_equal(cap_at(r, "ip-5", "gmail", T0 + 3 * DAY), 200);
	assert_int_equal(cap_at(r, "ip-5", "gmail", T0 + 4 * DAY), 400);
	assert_int_equal(cap_at(r, "ip-5", "gmail", T0 + 5 * DAY), 800);
	assert_int_equal(cap_at(r, "ip-5", "gmail", T0 + 6 * DAY), 1000);
	assert_int_equal(cap_at(r, "ip-5", "gmail", T0 + 400 * DAY), 1000);
	assert_false(shape_warmup_cap(r, "ip-5", "yahoo", T0, &cap));
	shape_rules_unref(r);
}

static void
test_daily_counts(void **state)
{
	struct shape_state *st = state_on(rules);
	uint64_t until = 1, now = T0 + 9 * HOUR;
	unsigned sent = 0;

	/* Day 1: 200 to gmail, then held until the next UTC midnight. */
	while (shape_warmup_allow(st, "ip-3", "gmail", now, &until)) {
		assert_int_equal(until, 0);
		assert_int_equal(shape_warmup_count(st, "ip-3", "gmail", now, 1), ++sent);
		now += 100 * MSEC;
		assert_true(sent <= 200);
	}
	assert_int_equal(sent, 200);
	assert_int_equal(until, T0 + DAY);
	/* Other destinations and other sources count for themselves. */
	assert_true(shape_warmup_allow(st, "ip-3", "yahoo", now, &until));
	assert_true(shape_warmup_allow(st, "ip-4", "gmail", now, &until));
	assert_true(shape_warmup_allow(st, "ip-1", "gmail", now, &until));
	assert_int_equal(shape_warmup_count(st, "ip-1", "gmail", now, 5), 0);
	/* A batch counted at once may go over; the next message is held. */
	assert_int_equal(shape_warmup_count(st, "ip-4", "gmail", now, 250), 250);
	assert_false(shape_warmup_allow(st, "ip-4", "gmail", now, &until));
	/* The last microsecond of the day is still the day; midnight UTC starts day 2 (400). */
	assert_false(shape_warmup_allow(st, "ip-3", "gmail", T0 + DAY - 1, &until));
	assert_true(shape_warmup_allow(st, "ip-3", "gmail", T0 + DAY, &until));
	assert_int_equal(shape_warmup_count(st, "ip-3", "gmail", T0 + DAY, 399), 399);
	assert_true(shape_warmup_allow(st, "ip-3", "gmail", T0 + DAY + 1, &until));
	assert_int_equal(shape_warmup_count(st, "ip-3", "gmail", T0 + DAY + 1, 1), 400);
	assert_false(shape_warmup_allow(st, "ip-3", "gmail", T0 + DAY + 2, &until));
	assert_int_equal(until, T0 + 2 * DAY);
	/* After the schedule, no cap. */
	assert_int_equal(shape_warmup_count(st, "ip-3", "gmail", T0 + 5 * DAY, 1000000), 1000000);
	assert_true(shape_warmup_allow(st, "ip-3", "gmail", T0 + 5 * DAY, &until));
	shape_state_free(st);
}

static void
test_full_table_holds_the_cap(void **state)
{
	struct shape_rules *r = rules_ok(rules);
	struct shape_state *st = shape_state_new(r, 2, 0);
	uint64_t until;

	assert_int_equal(shape_warmup_count(st, "ip-3", "gmail", T0, 1), 1);
	assert_int_equal(shape_warmup_count(st, "ip-3", "yahoo", T0, 1), 1);
	/* No room to count a third: held, not let through uncounted. */
	assert_false(shape_warmup_allow(st, "ip-4", "gmail", T0, &until));
	assert_int_equal(until, T0 + DAY);
	assert_int_equal(shape_warmup_count(st, "ip-4", "gmail", T0, 1), 0);
	/* Yesterday's counters make room the next day. */
	assert_true(shape_warmup_allow(st, "ip-4", "gmail", T0 + DAY, &until));
	assert_int_equal(shape_warmup_count(st, "ip-4", "gmail", T0 + DAY, 1), 1);
	shape_state_free(st);
	shape_rules_unref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_schedule),
	    cmocka_unit_test(test_daily_counts),
	    cmocka_unit_test(test_full_table_holds_the_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
