/* test_access_authfail.c - failed authentications per client on a fake clock: growing delays,
 * blocking after too many in a window, the window and the block ending, success, memory. */
#include <pthread.h>

#include "test_access_util.h"

#define SEC USEC
#define MIN (60 * USEC)

static const struct access_authfail_params params = {
    .delay_first_us = 1 * SEC,
    .delay_max_us = 16 * SEC,
    .block_after = 5,
    .window_us = 10 * MIN,
    .block_us = 60 * MIN,
};

static void
test_delays_double_to_the_cap(void **state)
{
	struct access_authfail_params p = params;
	static const uint64_t want[] = {1, 2, 4, 8, 16, 16, 16};
	struct access_authfail *t;
	uint64_t now = 1000 * SEC;

	p.block_after = 0; /* never block */
	t = access_authfail_new(&p);
	for (size_t i = 0; i < nitems(want); i++, now += SEC) {
		struct access_authfail_verdict v = access_authfail_record(t, "192.0.2.1", now);

		assert_int_equal(v.delay_us, want[i] * SEC);
		assert_false(v.blocked);
		assert_int_equal(v.failures, i + 1);
	}
	/* Another address starts at the beginning. */
	assert_int_equal(access_authfail_record(t, "192.0.2.2", now).delay_us, 1 * SEC);
	access_authfail_free(t);
}

static void
test_block_after_n_in_window(void **state)
{
	struct access_authfail *t = access_authfail_new(&params);
	struct access_authfail_verdict v;
	uint64_t now = 1000 * SEC, left;

	for (int i = 0; i < 4; i++, now += 30 * SEC) {
		v = access_authfail_record(t, "192.0.2.1", now);
		assert_false(v.blocked);
		assert_false(access_authfail_blocked(t, "192.0.2.1", now, NULL));
	}
	v = access_authfail_record(t, "192.0.2.1", now);
	assert_true(v.blocked);
	assert_int_equal(v.blocked_us, 60 * MIN);
	assert_int_equal(v.failures, 5);
	assert_true(access_authfail_blocked(t, "192.0.2.1", now, &left));
	assert_int_equal(left, 60 * MIN);
	assert_false(access_authfail_blocked(t, "192.0.2.9", now, &left));
	assert_int_equal(left, 0);

	/* Failures while blocked neither count nor extend the block. */
	v = access_authfail_record(t, "192.0.2.1", now + 10 * MIN);
	assert_true(v.blocked);
	assert_int_equal(v.blocked_us, 50 * MIN);
	assert_int_equal(v.delay_us, 16 * SEC);
	assert_true(access_authfail_blocked(t, "192.0.2.1", now + 60 * MIN - 1, &left));
	assert_int_equal(left, 1);

	/* The block ends on time, and the next failure starts a clean slate. */
	assert_false(access_authfail_blocked(t, "192.0.2.1", now + 60 * MIN, NULL));
	v = access_authfail_record(t, "192.0.2.1", now + 60 * MIN);
	assert_false(v.blocked);
	assert_int_equal(v.failures, 1);
	assert_int_equal(v.delay_us, 1 * SEC);
	access_authfail_free(t);
}

/* Failures spread wider than the window never add up to a block. */
static void
test_window_ends(void **state)
{
	struct access_authfail *t = access_authfail_new(&params);
	struct access_authfail_verdict v;
	uint64_t now = 1000 * SEC;

	for (int round = 0; round < 5; round++) {
		for (int i = 0; i < 4; i++)
			v = access_authfail_record(t, "2001:db8::/64", now + (uint64_t)i * SEC);
		assert_false(v.blocked);
		assert_int_equal(v.failures, 4);
		now += 10 * MIN;
	}
	/* A new window also starts the delay again. */
	v = access_authfail_record(t, "2001:db8::/64", now);
	assert_int_equal(v.failures, 1);
	assert_int_equal(v.delay_us, 1 * SEC);
	access_authfail_free(t);
}

/* Success resets the delay; the count toward a block stays until its window ends, so that a
 * guesser cannot log into an account of their own between guesses to stay unblocked. */
static void
test_success(void **state)
{
	struct access_authfail *t = access_authfail_new(&params);
	struct access_authfail_verdict v;
	uint64_t now = 1000 * SEC;

	for (int i = 0; i < 3; i++)
		v = access_authfail_record(t, "192.0.2.1", now);
	assert_int_equal(v.delay_us, 4 * SEC);
	access_authfail_success(t, "192.0.2.1", now);
	v = access_authfail_record(t, "192.0.2.1", now);
	assert_int_equal(v.delay_us, 1 * SEC);
	assert_int_equal(v.failures, 4);
	access_authfail_success(t, "192.0.2.1", now);
	v = access_authfail_record(t, "192.0.2.1", now);
	assert_true(v.blocked);

	/* Success with nothing left to remember forgets the address. */
	access_authfail_record(t, "192.0.2.7", now);
	assert_int_equal(access_authfail_keys(t), 2);
	access_authfail_success(t, "192.0.2.7", now + 10 * MIN);
	assert_int_equal(access_authfail_keys(t), 1);
	access_authfail_success(t, "198.51.100.1", now); /* never failed: nothing */
	assert_int_equal(access_authfail_keys(t), 1);
	access_authfail_free(t);
}

/* A flood of addresses cannot grow the tracker past its cap, and quiet ones are forgotten. */
static void
test_memory_bounds(void **state)
{
	struct access_authfail_params p = params;
	struct access_authfail *t;
	char key[32];

	p.max_keys = 1000;
	t = access_authfail_new(&p);
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "10.%d.%d.%d", i >> 16, (i >> 8) & 255, i & 255);
		access_authfail_record(t, key, 1000 * SEC);
	}
	assert_true(access_authfail_keys(t) <= 1000);
	/* An hour later they are all stale; new failures sweep them out as they come. */
	for (int i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "172.16.0.%d", i % 50);
		access_authfail_record(t, key, 1000 * SEC + 60 * MIN + (uint64_t)i);
	}
	assert_int_equal(access_authfail_keys(t), 50);
	access_authfail_free(t);
}

struct failer {
	struct access_authfail *t;
};

static void *
fail_many(void *arg)
{
	struct failer *f = arg;

	for (int i = 0; i < 1000; i++)
		access_authfail_record(f->t, "203.0.113.5", 1000 * SEC);
	return NULL;
}

static void
test_threads(void **state)
{
	struct access_authfail_params p = params;
	struct failer f;
	pthread_t th[8];

	p.block_after = 60000;
	f.t = access_authfail_new(&p);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, fail_many, &f);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(access_authfail_record(f.t, "203.0.113.5", 1000 * SEC).failures, 8001);
	access_authfail_free(f.t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_delays_double_to_the_cap),
	    cmocka_unit_test(test_block_after_n_in_window),
	    cmocka_unit_test(test_window_ends),
	    cmocka_unit_test(test_success),
	    cmocka_unit_test(test_memory_bounds),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
