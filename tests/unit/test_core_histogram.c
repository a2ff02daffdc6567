/* test_core_histogram.c - the metrics' histogram: observations land in the bucket whose
 * bound is the first not below them (Prometheus' le is inclusive), snapshots are cumulative
 * and consistent in themselves, and threads observing at once lose nothing. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"

static void
test_bounds_are_checked(void **state)
{
	uint64_t up[HISTOGRAM_BOUNDS_MAX + 1];
	static const uint64_t flat[] = {1, 2, 2}, down[] = {5, 1};

	for (size_t i = 0; i < nitems(up); i++)
		up[i] = i + 1;
	assert_null(histogram_new(up, 0));
	assert_null(histogram_new(up, HISTOGRAM_BOUNDS_MAX + 1));
	assert_null(histogram_new(flat, nitems(flat)));
	assert_null(histogram_new(down, nitems(down)));
	histogram_free(histogram_new(up, HISTOGRAM_BOUNDS_MAX));
	histogram_free(NULL);
}

static void
test_buckets_inclusive_and_cumulative(void **state)
{
	static const uint64_t bounds[] = {10, 100, 1000};
	struct histogram *h = histogram_new(bounds, nitems(bounds));
	struct histogram_snapshot s;
	/* 0 and 10 are <= 10; 11 and 100 <= 100; 1000 <= 1000; 1001 and a huge one above. */
	static const uint64_t values[] = {0, 10, 11, 100, 1000, 1001, UINT64_MAX / 2};
	uint64_t sum = 0;

	for (size_t i = 0; i < nitems(values); i++) {
		histogram_observe(h, values[i]);
		sum += values[i];
	}
	histogram_snapshot(h, &s);
	assert_int_equal(s.nbounds, 3);
	assert_true(s.bounds[0] == 10 && s.bounds[1] == 100 && s.bounds[2] == 1000);
	assert_int_equal(s.cumulative[0], 2);
	assert_int_equal(s.cumulative[1], 4);
	assert_int_equal(s.cumulative[2], 5);
	assert_int_equal(s.cumulative[3], 7);
	assert_int_equal(s.count, 7);
	assert_true(s.sum == sum);
	histogram_free(h);
}

static void
test_null_and_empty(void **state)
{
	static const uint64_t bounds[] = {HISTOGRAM_LATENCY_US};
	struct histogram *h = histogram_new(bounds, nitems(bounds));
	struct histogram_snapshot s;

	assert_non_null(h); /* the shared latency bounds are valid */
	histogram_observe(NULL, 5);
	histogram_snapshot(NULL, &s);
	assert_int_equal(s.nbounds, 0);
	assert_int_equal(s.count, 0);
	histogram_snapshot(h, &s);
	assert_int_equal(s.nbounds, nitems(bounds));
	assert_int_equal(s.count, 0);
	assert_int_equal(s.cumulative[nitems(bounds)], 0);
	histogram_free(h);
}

#define THREADS        4
#define PER_THREAD     200000
#define SNAPSHOTS_SEEN 1000

struct shared {
	struct histogram *h;
	unsigned seed;
};

static void *
observer(void *arg)
{
	struct shared *sh = arg;

	for (uint64_t i = 0; i < PER_THREAD; i++)
		histogram_observe(sh->h, (i * 7919 + sh->seed) % 2000);
	return NULL;
}

/* Observers on four threads while this one takes snapshots: every snapshot is cumulative
 * and its +Inf bucket is its count; at the end nothing is lost. */
static void
test_concurrent_observers(void **state)
{
	static const uint64_t bounds[] = {100, 500, 1000, 1500};
	struct histogram *h = histogram_new(bounds, nitems(bounds));
	struct shared sh[THREADS];
	pthread_t t[THREADS];
	struct histogram_snapshot s;
	uint64_t expect_sum = 0, last_count = 0;

	for (unsigned i = 0; i < THREADS; i++) {
		sh[i] = (struct shared){h, i};
		for (uint64_t k = 0; k < PER_THREAD; k++)
			expect_sum += (k * 7919 + i) % 2000;
		assert_int_equal(pthread_create(&t[i], NULL, observer, &sh[i]), 0);
	}
	for (int n = 0; n < SNAPSHOTS_SEEN; n++) {
		histogram_snapshot(h, &s);
		for (size_t b = 1; b <= s.nbounds; b++)
			assert_true(s.cumulative[b] >= s.cumulative[b - 1]);
		assert_true(s.cumulative[s.nbounds] == s.count);
		assert_true(s.count >= last_count);
		last_count = s.count;
	}
	for (unsigned i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	histogram_snapshot(h, &s);
	assert_int_equal(s.count, THREADS * PER_THREAD);
	assert_true(s.sum == expect_sum);
	histogram_free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bounds_are_checked),
	    cmocka_unit_test(test_buckets_inclusive_and_cumulative),
	    cmocka_unit_test(test_null_and_empty),
	    cmocka_unit_test(test_concurrent_observers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
