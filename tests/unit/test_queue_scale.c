/* test_queue_scale.c - a million deferred messages: what they cost in memory (the issue's
 * target is at most 300 bytes each beyond the spool), and how long queueing them all again
 * after a restart and draining them takes. Times are printed, not asserted: timing belongs
 * to bench/, but this must finish in seconds. */
#include <malloc.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "queue/queue.h"

#define N      1000000
#define T0     (1700000000ULL * USEC)
#define MINUTE (60 * USEC)
#define HOUR   (60 * MINUTE)

/* Sanitizers add redzones and shadow memory: the figures are printed, not checked. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

/* Bytes per item checked here: well inside the 300, so that a regression shows long
 * before the target is at risk. */
#define MAX_HEAP_BYTES_PER_ITEM 100
#define MAX_RSS_BYTES_PER_ITEM  150

static double
seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t
heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd; /* in use from the arenas + mmapped blocks */
}

static size_t
rss_bytes(void)
{
	unsigned long size, resident = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f == NULL)
		return 0;
	if (fscanf(f, "%lu %lu", &size, &resident) != 2)
		resident = 0;
	fclose(f);
	return resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Spool-like ids: a microsecond timestamp, then a sequence. */
static void
make_id(char id[QUEUE_ID_LEN + 1], uint64_t n)
{
	snprintf(id, QUEUE_ID_LEN + 1, "%016llx%08llx", (unsigned long long)(T0 + n / 16),
	         (unsigned long long)(n % 16));
}

static struct queue *
new_queue(void)
{
	struct queue_options o;
	char err[128];
	struct queue *q;

	queue_options_default(&o);
	o.seed = 1;
	o.max_window = 1000; /* drains fast; the window's logic has its own tests */
	o.initial_window = 1000;
	q = queue_new(&o, err, sizeof(err));
	if (q == NULL)
		fail_msg("%s", err);
	return q;
}

/* Restart recovery: every message of the spool, in id order, with the next attempt time the
 * spool recorded (spread over the coming hour: they were deferred). */
static double
add_all(struct queue *q, unsigned ndest, uint64_t now)
{
	struct queue_rng rng;
	char id[QUEUE_ID_LEN + 1], dest[32];
	double t = seconds();

	queue_rng_seed(&rng, 11);
	for (uint64_t i = 0; i < N; i++) {
		make_id(id, i);
		if (ndest == 1)
			snprintf(dest, sizeof(dest), "deferring.example");
		else
			snprintf(dest, sizeof(dest), "d%u.example", (unsigned)(i % ndest));
		if (queue_add(q, id, dest, now - HOUR, now + queue_rng_below(&rng, HOUR), 3) != 0)
			fail_msg("queue_add %llu failed", (unsigned long long)i);
	}
	return seconds() - t;
}

/* Deliver everything, one connection per batch, as fast as the queue hands it out. */
static double
drain_all(struct queue *q, uint64_t now)
{
	struct queue_item *items[128];
	struct queue_batch b;
	size_t n, total = 0;
	double t = seconds();

	while ((n = queue_take(q, now, &b, items, nitems(items))) > 0) {
		for (size_t i = 0; i < n; i++)
			queue_item_done(q, items[i], QUEUE_DELIVERED, now, NULL);
		queue_release(q, b.dest, QUEUE_CONN_OK, now);
		total += n;
	}
	assert_int_equal(total, N);
	return seconds() - t;
}

static void
measure(unsigned ndest)
{
	size_t heap0, rss0, heap1, rss1;
	struct queue_stats st;
	struct queue *q;
	double t_add, t_drain;

	malloc_trim(0);
	heap0 = heap_bytes();
	rss0 = rss_bytes();
	q = new_queue();
	t_add = add_all(q, ndest, T0);
	heap1 = heap_bytes();
	rss1 = rss_bytes();
	queue_stats(q, &st);
	assert_int_equal(st.items, N);
	assert_int_equal(st.scheduled, N);
	assert_int_equal(st.dests, ndest);
	print_message("queue scale, %u destination(s): item struct %u bytes; per item: "
	              "%.1f bytes malloc'd, %.1f bytes RSS growth, %.1f bytes by queue_stats\n",
	              ndest, st.item_size, (double)(heap1 - heap0) / N, (double)(rss1 - rss0) / N,
	              (double)st.memory_bytes / N);
	if (!SANITIZED) {
		assert_true((heap1 - heap0) / N <= MAX_HEAP_BYTES_PER_ITEM);
		assert_true((rss1 - rss0) / N <= MAX_RSS_BYTES_PER_ITEM);
	}
	assert_true(queue_next_due_us(q) >= T0 && queue_next_due_us(q) < T0 + HOUR);
	t_drain = drain_all(q, T0 + HOUR);
	queue_stats(q, &st);
	assert_int_equal(st.items, 0);
	print_message("queue scale, %u destination(s): 1M adds %.3f s (%.0f ns each), "
	              "drain %.3f s (%.0f ns per item)\n",
	              ndest, t_add, t_add * 1e9 / N, t_drain, t_drain * 1e9 / N);
	queue_free(q);
}

static void
test_one_deferring_destination(void **state)
{
	measure(1);
}

static void
test_thousand_destinations(void **state)
{
	measure(1000);
}

/* A million items at a destination that dies: each cooldown holds every due item again,
 * O(log n) each. Printed so that a regression in this worst case is seen. */
static void
test_dead_destination_with_a_million(void **state)
{
	struct queue_item *items[128];
	struct queue_batch b;
	struct queue_stats st;
	struct queue *q = new_queue();
	uint64_t now = T0 + HOUR, until;
	double total = 0, longest = 0;
	int calls = 0;
	size_t n;

	add_all(q, 1, T0);
	/* dead_after (5) failed connections. */
	for (int i = 0; i < 5; i++) {
		n = queue_take(q, now, &b, items, nitems(items));
		assert_int_equal(n, 100);
		for (size_t k = 0; k < n; k++)
			queue_item_done(q, items[k], QUEUE_UNTRIED, now, NULL);
		queue_release(q, b.dest, QUEUE_CONN_FAILED, now);
	}
	until = now + 5 * MINUTE;
	/* The engine's loop: advance while the queue says there is work now. */
	do {
		double t1 = seconds();

		queue_advance(q, now);
		t1 = seconds() - t1;
		total += t1;
		longest = t1 > longest ? t1 : longest;
		calls++;
	} while (queue_next_due_us(q) <= now);
	assert_true(queue_next_due_us(q) == until);
	queue_stats(q, &st);
	assert_int_equal(st.scheduled, N);
	assert_int_equal(st.dead_dests, 1);
	print_message("queue scale: holding 1M items of a dead destination: %.3f s in %d "
	              "advances, the longest %.1f ms\n",
	              total, calls, longest * 1e3);
	queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_one_deferring_destination),
	    cmocka_unit_test(test_thousand_destinations),
	    cmocka_unit_test(test_dead_destination_with_a_million),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
