/* test_queue_retry.c - the retry schedule: the waits an operator reads in the docs, the jitter
 * that spreads a burst of deferrals, and the lifetime after which a message is given up. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "queue/queue.h"

#define MINUTE (60 * USEC)
#define HOUR   (60 * MINUTE)
#define DAY    (24 * HOUR)

static void
test_default_schedule(void **state)
{
	struct retry_schedule rs;
	static const uint64_t expect[] = {5 * MINUTE,  5 * MINUTE, 10 * MINUTE, 20 * MINUTE,
	                                  40 * MINUTE, HOUR,       HOUR,        HOUR};

	retry_schedule_default(&rs);
	assert_int_equal(rs.n, 5);
	assert_int_equal(rs.jitter_pct, 10);
	assert_true(rs.lifetime_us == 5 * DAY);
	/* attempts 0 counts as 1; after the 5th failure the last interval repeats. */
	for (unsigned a = 0; a < nitems(expect); a++)
		assert_true(retry_interval_us(&rs, a) == expect[a]);
	assert_true(retry_interval_us(&rs, 1000) == HOUR);
	assert_true(retry_interval_us(&rs, UINT32_MAX) == HOUR);
}

static void
test_no_jitter_is_exact(void **state)
{
	struct retry_schedule rs;
	struct queue_rng rng;
	uint64_t now = 1800000000ULL * USEC;

	retry_schedule_default(&rs);
	rs.jitter_pct = 0;
	queue_rng_seed(&rng, 1);
	assert_true(retry_next(&rs, 1, now, &rng) == now + 5 * MINUTE);
	assert_true(retry_next(&rs, 4, now, &rng) == now + 40 * MINUTE);
	assert_true(retry_next(&rs, 9, now, &rng) == now + HOUR);
}

/* Every wait stays within ±10 %, the whole range is used, and the waits centre on the
 * interval: a burst of deferrals comes back spread, not early or late on average. */
static void
test_jitter_bounds_and_spread(void **state)
{
	struct retry_schedule rs;
	struct queue_rng rng;
	uint64_t now = 1000 * USEC;

	retry_schedule_default(&rs);
	queue_rng_seed(&rng, 42);
	for (unsigned a = 1; a <= 6; a++) {
		uint64_t iv = retry_interval_us(&rs, a), lo = iv - iv / 10, hi = iv + iv / 10;
		uint64_t min = UINT64_MAX, max = 0;
		double sum = 0;
		const int n = 20000;

		for (int i = 0; i < n; i++) {
			uint64_t wait = retry_next(&rs, a, now, &rng) - now;

			assert_in_range(wait, lo, hi);
			min = wait < min ? wait : min;
			max = wait > max ? wait : max;
			sum += (double)wait;
		}
		/* 20,000 uniform draws come within 0.1 % of each end of the range. */
		assert_true(min < lo + iv / 1000);
		assert_true(max > hi - iv / 1000);
		assert_true(sum / n > (double)iv * 0.995 && sum / n < (double)iv * 1.005);
	}
}

static void
test_jitter_is_deterministic(void **state)
{
	struct retry_schedule rs;
	struct queue_rng a, b, c;
	int differ = 0;

	retry_schedule_default(&rs);
	queue_rng_seed(&a, 7);
	queue_rng_seed(&b, 7);
	queue_rng_seed(&c, 8);
	for (int i = 0; i < 100; i++) {
		uint64_t x = retry_next(&rs, 3, 0, &a), y = retry_next(&rs, 3, 0, &b);

		assert_true(x == y);
		differ += retry_next(&rs, 3, 0, &c) != x;
	}
	assert_true(differ > 90);
}

static void
test_custom_schedule_and_clamps(void **state)
{
	struct retry_schedule rs = {.n = 1, .interval_us = {30 * USEC}, .jitter_pct = 90};
	struct queue_rng rng;

	queue_rng_seed(&rng, 3);
	/* One interval repeats forever; jitter above 50 % is taken as 50 %. */
	for (unsigned a = 1; a < 1000; a++) {
		uint64_t next = retry_next(&rs, a, 0, &rng);

		assert_in_range(next, 15 * USEC, 45 * USEC);
	}
	/* Tiny intervals keep their exact spread: 10 % of 10 µs is 1 µs. */
	rs.interval_us[0] = 10;
	rs.jitter_pct = 10;
	for (int i = 0; i < 100; i++)
		assert_in_range(retry_next(&rs, 1, 0, &rng), 9, 11);
	/* Saturates instead of wrapping. */
	rs.interval_us[0] = HOUR;
	assert_true(retry_next(&rs, 1, UINT64_MAX - 5, &rng) == UINT64_MAX);
}

static void
test_lifetime(void **state)
{
	struct retry_schedule rs;

	retry_schedule_default(&rs);
	assert_true(retry_expires_us(&rs, 1000) == 1000 + 5 * DAY);
	assert_true(retry_expires_us(&rs, UINT64_MAX - 1) == UINT64_MAX);
	rs.lifetime_us = 0;
	assert_true(retry_expires_us(&rs, 1000) == UINT64_MAX);
}

static void
test_rng_below_is_uniform(void **state)
{
	struct queue_rng rng;
	unsigned count[10] = {0};

	queue_rng_seed(&rng, 0);
	assert_true(queue_rng_below(&rng, 0) == 0);
	assert_true(queue_rng_below(&rng, 1) == 0);
	for (int i = 0; i < 100000; i++)
		count[queue_rng_below(&rng, 10)]++;
	for (int i = 0; i < 10; i++)
		assert_in_range(count[i], 9500, 10500);
}

/* Through the queue: a message received at t0 with a 1 h lifetime and retries at 5, 10, 20,
 * 40 minutes is tried at 0, 5, 15 and 35 minutes; the next try would be at 75 minutes, after
 * its lifetime, so the fourth deferral expires it instead. */
static void
test_deferral_past_lifetime_expires(void **state)
{
	struct queue_options o;
	struct queue_item *it;
	struct queue_batch b;
	struct queue *q;
	char err[128];
	uint64_t t0 = 1700000000ULL * USEC, now = t0, next;
	const uint64_t expect[] = {5 * MINUTE, 15 * MINUTE, 35 * MINUTE};

	queue_options_default(&o);
	o.retry.n = 4;
	o.retry.jitter_pct = 0;
	o.retry.lifetime_us = HOUR;
	q = queue_new(&o, err, sizeof(err));
	assert_non_null(q);
	assert_int_equal(queue_add(q, "00000000000000000000000a", "example.com", t0, t0, 0), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(queue_take(q, now, &b, &it, 1), 1);
		assert_int_equal(queue_item_attempts(it), i);
		assert_int_equal(queue_item_done(q, it, QUEUE_DEFERRED, now, &next),
		                 QUEUE_FATE_RESCHEDULED);
		assert_true(next == t0 + expect[i]);
		queue_release(q, b.dest, QUEUE_CONN_OK, now);
		assert_true(queue_next_due_us(q) == next);
		assert_int_equal(queue_take(q, next - 1, &b, &it, 1), 0);
		now = next;
	}
	assert_int_equal(queue_take(q, now, &b, &it, 1), 1);
	assert_true(queue_item_expires_us(it) == t0 + HOUR);
	assert_int_equal(queue_item_done(q, it, QUEUE_DEFERRED, now, NULL), QUEUE_FATE_EXPIRED);
	queue_release(q, b.dest, QUEUE_CONN_OK, now);
	assert_true(queue_next_due_us(q) == UINT64_MAX);
	queue_free(q);
}

/* A next attempt exactly at the end of the lifetime is still made. */
static void
test_attempt_at_deadline_is_kept(void **state)
{
	struct queue_options o;
	struct queue_item *it;
	struct queue_batch b;
	struct queue *q;
	char err[128];
	uint64_t next;

	queue_options_default(&o);
	o.retry.n = 1;
	o.retry.interval_us[0] = 30 * MINUTE;
	o.retry.jitter_pct = 0;
	o.retry.lifetime_us = HOUR;
	q = queue_new(&o, err, sizeof(err));
	assert_int_equal(queue_add(q, "00000000000000000000000b", "example.com", 0, 0, 0), 0);
	assert_int_equal(queue_take(q, 30 * MINUTE, &b, &it, 1), 1);
	assert_int_equal(queue_item_done(q, it, QUEUE_DEFERRED, 30 * MINUTE, &next),
	                 QUEUE_FATE_RESCHEDULED);
	assert_true(next == HOUR);
	queue_release(q, b.dest, QUEUE_CONN_NONE, 30 * MINUTE);
	assert_int_equal(queue_take(q, HOUR, &b, &it, 1), 1);
	assert_int_equal(queue_item_done(q, it, QUEUE_DEFERRED, HOUR, NULL), QUEUE_FATE_EXPIRED);
	queue_release(q, b.dest, QUEUE_CONN_NONE, HOUR);
	queue_free(q);
}

static void
test_bad_options_are_refused(void **state)
{
	struct queue_options o;
	char err[128];

	queue_options_default(&o);
	o.max_window = 1;
	assert_null(queue_new(&o, err, sizeof(err)));
	assert_string_equal(err, "queue: max_window must be at least initial_window");
	queue_options_default(&o);
	o.retry.n = 0;
	assert_null(queue_new(&o, err, sizeof(err)));
	queue_options_default(&o);
	o.retry.interval_us[2] = 0;
	assert_null(queue_new(&o, err, sizeof(err)));
	queue_options_default(&o);
	o.retry.jitter_pct = 51;
	assert_null(queue_new(&o, err, sizeof(err)));
	queue_options_default(&o);
	o.dead_cooldown_max_us = o.dead_cooldown_us - 1;
	assert_null(queue_new(&o, err, sizeof(err)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_schedule),
	    cmocka_unit_test(test_no_jitter_is_exact),
	    cmocka_unit_test(test_jitter_bounds_and_spread),
	    cmocka_unit_test(test_jitter_is_deterministic),
	    cmocka_unit_test(test_custom_schedule_and_clamps),
	    cmocka_unit_test(test_lifetime),
	    cmocka_unit_test(test_rng_below_is_uniform),
	    cmocka_unit_test(test_deferral_past_lifetime_expires),
	    cmocka_unit_test(test_attempt_at_deadline_is_kept),
	    cmocka_unit_test(test_bad_options_are_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
