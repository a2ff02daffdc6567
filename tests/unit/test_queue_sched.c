/* test_queue_sched.c - the scheduler's queues: due items come out in time order, ready queues
 * are FIFOs with a bound, destinations take turns, windows cap connections, and the operator
 * can delete and list. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "queue/queue.h"
#include "queue_testing.h"

static uint64_t
num_of(const struct queue_item *it)
{
	char id[QUEUE_ID_LEN + 1];

	queue_item_id(it, id);
	return strtoull(id, NULL, 16);
}

static struct queue *
new_queue(void (*tweak)(struct queue_options *))
{
	struct queue_options o;
	struct queue *q;
	char err[128];

	queue_options_default(&o);
	o.seed = 1;
	if (tweak != NULL)
		tweak(&o);
	q = queue_new(&o, err, sizeof(err));
	if (q == NULL)
		fail_msg("%s", err);
	return q;
}

static void
wide_open(struct queue_options *o)
{
	o->ready_max = 1000000;
	o->batch_max = 1000000;
	o->initial_window = o->max_window = 1000;
	o->advance_max = 1000000;
}

/* Many random times, with deletions mixed in: at every step the ready queue holds exactly the
 * items due by then, in time order, and queue_next_due_us is the earliest one left. */
static void
test_due_order_with_random_times(void **state)
{
	enum { N = 50000 };
	struct queue *q = new_queue(wide_open);
	uint64_t *due = xcalloc(N, sizeof(*due));
	bool *gone = xcalloc(N, sizeof(*gone));
	struct queue_item **items = xcalloc(N, sizeof(*items));
	struct queue_batch b;
	struct queue_rng rng;
	uint64_t now, last = 0;
	size_t taken = 0, removed = 0;

	queue_rng_seed(&rng, 99);
	for (uint64_t i = 0; i < N; i++) {
		/* Coarse times, so that many are equal and the tie order is exercised too. */
		due[i] = T0 + queue_rng_below(&rng, 5000) * MSEC;
		assert_int_equal(queue_add(q, id_of(i), "example.com", T0, due[i], 0), 0);
	}
	for (uint64_t i = 0; i < N; i += 7) {
		assert_int_equal(queue_remove(q, id_of(i)), 1);
		gone[i] = true;
		removed++;
	}
	while ((now = queue_next_due_us(q)) != UINT64_MAX) {
		uint64_t expect_next = UINT64_MAX;
		size_t n;

		assert_true(now >= last);
		n = queue_take(q, now, &b, items, N);
		assert_int_equal(b.work, QUEUE_WORK_DELIVER);
		for (size_t i = 0; i < n; i++) {
			uint64_t k = num_of(items[i]);

			assert_false(gone[k]);
			assert_true(due[k] <= now);
			assert_true(due[k] >= last); /* FIFO of a heap's output: in time order */
			last = due[k];
			gone[k] = true;
			assert_int_equal(queue_item_done(q, items[i], QUEUE_DELIVERED, now, NULL),
			                 QUEUE_FATE_REMOVED);
		}
		taken += n;
		queue_release(q, b.dest, QUEUE_CONN_OK, now);
		for (size_t i = 0; i < N; i++)
			if (!gone[i] && due[i] < expect_next)
				expect_next = due[i];
		/* Everything due by now was taken in that one batch. */
		assert_true(expect_next > now);
		assert_true(queue_next_due_us(q) == expect_next);
	}
	assert_int_equal(taken + removed, N);
	assert_null(queue_dest_find(q, "example.com")); /* an empty destination is forgotten */
	free(due);
	free(gone);
	free(items);
	queue_free(q);
}

/* The same across many destinations: each destination's items come out in time order. */
static void
test_due_order_across_destinations(void **state)
{
	enum { N = 20000, D = 37 };
	struct queue *q = new_queue(wide_open);
	uint64_t *due = xcalloc(N, sizeof(*due));
	uint64_t last[D] = {0};
	struct queue_item *items[64];
	struct queue_batch b;
	struct queue_rng rng;
	char dest[32];
	size_t taken = 0, n;
	uint64_t now = T0;

	queue_rng_seed(&rng, 5);
	for (uint64_t i = 0; i < N; i++) {
		due[i] = T0 + queue_rng_below(&rng, 3600) * USEC;
		snprintf(dest, sizeof(dest), "d%llu.example", (unsigned long long)(i % D));
		assert_int_equal(queue_add(q, id_of(i), dest, T0, due[i], 0), 0);
	}
	while (taken < N) {
		now += 10 * USEC;
		while ((n = queue_take(q, now, &b, items, nitems(items))) > 0) {
			for (size_t i = 0; i < n; i++) {
				uint64_t k = num_of(items[i]);

				assert_true(due[k] <= now);
				assert_true(due[k] >= last[k % D]);
				last[k % D] = due[k];
				queue_item_done(q, items[i], QUEUE_DELIVERED, now, NULL);
			}
			taken += n;
			queue_release(q, b.dest, QUEUE_CONN_OK, now);
		}
	}
	assert_true(queue_next_due_us(q) == UINT64_MAX);
	free(due);
	queue_free(q);
}

static void
three_ready(struct queue_options *o)
{
	o->ready_max = 3;
	o->batch_max = 2;
	o->initial_window = o->max_window = 100;
}

/* The ready queue is a FIFO of at most ready_max items; the rest wait in the scheduled queue
 * and move up as takes make room. */
static void
test_ready_queue_fifo_and_bound(void **state)
{
	struct queue *q = new_queue(three_ready);
	struct queue_dest_stats ds;
	struct queue_stats st;
	struct queue_item *items[8];
	struct queue_batch b;
	uint64_t expect = 0;
	size_t n;

	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(queue_add(q, id_of(i), "example.com", T0, T0 + i, 0), 0);
	queue_advance(q, T0 + 100);
	queue_stats(q, &st);
	assert_int_equal(st.ready, 3);
	assert_int_equal(st.scheduled, 7);
	queue_dest_stats(q, queue_dest_find(q, "example.com"), &ds);
	assert_int_equal(ds.ready, 3);
	assert_int_equal(ds.scheduled, 7);
	/* A full ready queue is no reason to wake up: there is work now, not later. */
	assert_true(queue_next_due_us(q) == 0);

	while ((n = queue_take(q, T0 + 100, &b, items, nitems(items))) > 0) {
		assert_int_equal(n, 2); /* batch_max */
		for (size_t i = 0; i < n; i++) {
			assert_true(num_of(items[i]) == expect++);
			queue_item_done(q, items[i], QUEUE_DELIVERED, T0 + 100, NULL);
		}
		queue_stats(q, &st);
		assert_true(st.ready <= 3);
		queue_release(q, b.dest, QUEUE_CONN_NONE, T0 + 100);
	}
	assert_int_equal(expect, 10);
	queue_free(q);
}

static void
small_batches(struct queue_options *o)
{
	o->batch_max = 5;
	o->initial_window = o->max_window = 100;
}

/* One destination with a large backlog does not starve the others: destinations with ready
 * work take turns, one batch each. */
static void
test_round_robin_fairness(void **state)
{
	struct queue *q = new_queue(small_batches);
	struct queue_item *items[5];
	struct queue_batch b;
	const char *order[12];
	int served_small = 0;

	for (uint64_t i = 0; i < 1000; i++)
		assert_int_equal(queue_add(q, id_of(i), "big.example", T0, T0, 0), 0);
	for (uint64_t i = 0; i < 10; i++) {
		assert_int_equal(queue_add(q, id_of(1000 + i), "b.example", T0, T0 + 1, 0), 0);
		assert_int_equal(queue_add(q, id_of(2000 + i), "c.example", T0, T0 + 2, 0), 0);
	}
	for (int t = 0; t < 12; t++) {
		size_t n = queue_take(q, T0 + 10, &b, items, nitems(items));

		assert_int_equal(n, 5);
		order[t] = queue_dest_name(b.dest);
		for (size_t i = 0; i < n; i++)
			queue_item_done(q, items[i], QUEUE_DELIVERED, T0 + 10, NULL);
		if (strcmp(order[t], "big.example") != 0)
			served_small += n;
		/* Slots stay held: fairness must not depend on connections ending. */
	}
	/* Turns in the order the destinations became ready; the small ones finish in 6 turns
	 * although the big one has 1000 items ahead of them. */
	assert_string_equal(order[0], "big.example");
	assert_string_equal(order[1], "b.example");
	assert_string_equal(order[2], "c.example");
	assert_string_equal(order[3], "big.example");
	assert_string_equal(order[4], "b.example");
	assert_string_equal(order[5], "c.example");
	for (int t = 6; t < 12; t++)
		assert_string_equal(order[t], "big.example");
	assert_int_equal(served_small, 20);
	queue_free(q);
}

static void
window_two(struct queue_options *o)
{
	o->batch_max = 1;
	o->initial_window = 2;
	o->max_window = 3;
}

/* A destination gets at most its window of connections; a released slot is reused. */
static void
test_window_caps_connections(void **state)
{
	struct queue *q = new_queue(window_two);
	struct queue_item *it[4];
	struct queue_dest *d;
	struct queue_batch b;

	for (uint64_t i = 0; i < 10; i++)
		assert_int_equal(queue_add(q, id_of(i), "example.com", T0, T0, 0), 0);
	assert_int_equal(queue_take(q, T0, &b, &it[0], 1), 1);
	d = b.dest;
	assert_int_equal(queue_take(q, T0, &b, &it[1], 1), 1);
	assert_ptr_equal(b.dest, d);
	assert_int_equal(queue_take(q, T0, &b, &it[2], 1), 0);
	assert_int_equal(b.work, QUEUE_WORK_NONE);
	assert_true(queue_next_due_us(q) == UINT64_MAX); /* waiting on a slot, not on time */

	/* Connection reuse: more items on a held slot, no new slot. */
	assert_int_equal(queue_take_more(q, d, T0, &it[2], 1), 1);
	queue_item_done(q, it[2], QUEUE_DELIVERED, T0, NULL);

	queue_item_done(q, it[0], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, d, QUEUE_CONN_NONE, T0);
	assert_true(queue_next_due_us(q) == 0);
	assert_int_equal(queue_take(q, T0, &b, &it[0], 1), 1);
	assert_int_equal(queue_take(q, T0, &b, &it[2], 1), 0);
	queue_item_done(q, it[0], QUEUE_DELIVERED, T0, NULL);
	queue_item_done(q, it[1], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, d, QUEUE_CONN_NONE, T0);
	queue_release(q, d, QUEUE_CONN_NONE, T0);
	queue_free(q);
}

static void
test_add_refuses_bad_input_and_duplicates(void **state)
{
	struct queue *q = new_queue(NULL);
	struct queue_stats st;

	errno = 0;
	assert_int_equal(queue_add(q, "0123", "example.com", T0, T0, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(queue_add(q, "0123456789abcdef0123456g", "example.com", T0, T0, 0), -1);
	assert_int_equal(queue_add(q, "0123456789abcdef012345678", "example.com", T0, T0, 0), -1);
	assert_int_equal(queue_add(q, NULL, "example.com", T0, T0, 0), -1);
	assert_int_equal(queue_add(q, "0123456789abcdef01234567", "", T0, T0, 0), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(queue_add(q, "0123456789abcdef01234567", "example.com", T0, T0, 0), 0);
	assert_int_equal(queue_add(q, "0123456789ABCDEF01234567", "example.com", T0, T0, 0), -1);
	assert_int_equal(errno, EEXIST);
	/* The same message for another domain is another item. */
	assert_int_equal(queue_add(q, "0123456789abcdef01234567", "example.org", T0, T0, 0), 0);
	assert_int_equal(queue_add(q, "0123456789abcdef01234567", "new.example", T0, T0, 0), 0);
	assert_int_equal(queue_add(q, "0123456789abcdef01234567", "new.example", T0, T0, 0), -1);
	queue_stats(q, &st);
	assert_int_equal(st.items, 3);
	assert_int_equal(st.dests, 3);
	queue_free(q);
}

struct listing {
	int n;
	int scheduled, ready, active;
	char seen_dest[64];
};

static bool
list_one(void *arg, const struct queue_item_info *info)
{
	struct listing *l = arg;

	l->n++;
	l->scheduled += info->state == QUEUE_ITEM_SCHEDULED;
	l->ready += info->state == QUEUE_ITEM_READY;
	l->active += info->state == QUEUE_ITEM_ACTIVE;
	if (strcmp(info->dest, "c.example") == 0) {
		assert_int_equal(info->state, QUEUE_ITEM_SCHEDULED);
		assert_true(info->next_attempt_us == T0 + 3600 * USEC);
		assert_string_equal(info->id, "00000000000000000000002a");
		assert_int_equal(info->attempts, 4);
		assert_true(info->expires_us == T0 + 5 * 24 * 3600 * USEC);
		snprintf(l->seen_dest, sizeof(l->seen_dest), "%s", info->dest);
	}
	return true;
}

static bool
count_dest(void *arg, const struct queue_dest_stats *st)
{
	(*(int *)arg)++;
	return true;
}

/* The operator deletes a message wherever its items are; one being delivered is marked and
 * leaves at its outcome, even a deferral. Listing shows each item's state. */
static void
test_remove_and_listing(void **state)
{
	struct queue *q = new_queue(window_two);
	struct listing l = {0};
	struct queue_item *it;
	struct queue_batch b;
	struct queue_stats st;
	int ndest = 0;

	/* 42 to three domains: one active, one ready, one scheduled in an hour. */
	assert_int_equal(queue_add(q, id_of(42), "a.example", T0, T0, 0), 0);
	assert_int_equal(queue_add(q, id_of(42), "b.example", T0, T0 + 1, 0), 0);
	assert_int_equal(queue_add(q, id_of(42), "c.example", T0, T0 + 3600 * USEC, 4), 0);
	assert_int_equal(queue_add(q, id_of(43), "a.example", T0, T0 + 5, 0), 0);
	assert_int_equal(queue_take(q, T0 + 2, &b, &it, 1), 1);
	assert_string_equal(queue_dest_name(b.dest), "a.example");
	assert_ptr_equal(queue_item_dest(q, it), b.dest);

	queue_foreach_item(q, list_one, &l);
	assert_int_equal(l.n, 4);
	assert_int_equal(l.active, 1);
	assert_int_equal(l.ready, 1);
	assert_int_equal(l.scheduled, 2);
	assert_string_equal(l.seen_dest, "c.example");
	queue_foreach_dest(q, count_dest, &ndest);
	assert_int_equal(ndest, 3);

	assert_int_equal(queue_remove(q, "nonsense"), -1);
	assert_int_equal(queue_remove(q, id_of(7)), 0);
	assert_int_equal(queue_remove(q, id_of(42)), 3);
	queue_stats(q, &st);
	assert_int_equal(st.items, 2); /* 43, and 42's active item until its outcome */
	assert_null(queue_dest_find(q, "b.example"));
	assert_null(queue_dest_find(q, "c.example"));
	assert_int_equal(queue_item_done(q, it, QUEUE_DEFERRED, T0 + 3, NULL), QUEUE_FATE_REMOVED);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + 3);
	queue_stats(q, &st);
	assert_int_equal(st.items, 1);
	/* Deleted, so it can be queued again (the operator re-injects it). */
	assert_int_equal(queue_add(q, id_of(42), "a.example", T0, T0, 0), 0);
	queue_free(q);
}

/* Items the connection never reached go back as due now, their attempts unchanged. */
static void
test_untried_items_come_back_now(void **state)
{
	struct queue *q = new_queue(NULL);
	struct queue_item *items[3];
	struct queue_batch b;
	uint64_t next;

	for (uint64_t i = 0; i < 3; i++)
		assert_int_equal(queue_add(q, id_of(i), "example.com", T0, T0, 2), 0);
	assert_int_equal(queue_take(q, T0, &b, items, 3), 3);
	assert_int_equal(queue_item_done(q, items[0], QUEUE_DELIVERED, T0 + 5, NULL),
	                 QUEUE_FATE_REMOVED);
	assert_int_equal(queue_item_done(q, items[1], QUEUE_UNTRIED, T0 + 5, &next),
	                 QUEUE_FATE_RESCHEDULED);
	assert_true(next == T0 + 5);
	assert_int_equal(queue_item_done(q, items[2], QUEUE_DEFERRED, T0 + 5, &next),
	                 QUEUE_FATE_RESCHEDULED);
	/* Its third attempt failed: 20 min ± 10 %. */
	assert_in_range(next, T0 + 5 + 1080 * USEC, T0 + 5 + 1320 * USEC);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + 5);
	assert_int_equal(queue_take(q, T0 + 5, &b, items, 3), 1);
	assert_int_equal(num_of(items[0]), 1);
	assert_int_equal(queue_item_attempts(items[0]), 2);
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0 + 6, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + 6);
	assert_int_equal(queue_take(q, next, &b, items, 3), 1);
	assert_int_equal(queue_item_attempts(items[0]), 3);
	queue_item_done(q, items[0], QUEUE_BOUNCED, next, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, next);
	queue_free(q);
}

static void
small_budget(struct queue_options *o)
{
	o->advance_max = 10;
	o->ready_max = 1000;
}

/* One advance does a bounded amount of work and says when there is more: the event loop is
 * never stalled by a large backlog falling due at once. */
static void
test_advance_is_bounded(void **state)
{
	struct queue *q = new_queue(small_budget);
	struct queue_stats st;
	int calls = 0;

	for (uint64_t i = 0; i < 95; i++)
		queue_add(q, id_of(i), i % 2 ? "a.example" : "b.example", T0, T0 + i, 0);
	do {
		queue_advance(q, T0 + 1000);
		queue_stats(q, &st);
		calls++;
		assert_int_equal(st.ready, calls * 10 < 95 ? calls * 10 : 95);
		assert_true(queue_next_due_us(q) == 0); /* ready work, or more to advance: now */
	} while (st.scheduled > 0);
	assert_int_equal(calls, 10);
	queue_free(q);
}

static void
test_empty_queue(void **state)
{
	struct queue *q = new_queue(NULL);
	struct queue_item *it;
	struct queue_batch b;
	struct queue_stats st;

	assert_true(queue_next_due_us(q) == UINT64_MAX);
	assert_int_equal(queue_take(q, T0, &b, &it, 1), 0);
	assert_int_equal(b.work, QUEUE_WORK_NONE);
	assert_null(b.dest);
	queue_add(q, id_of(1), "example.com", T0, T0 + 10, 0);
	assert_true(queue_next_due_us(q) == T0 + 10);
	assert_int_equal(queue_take(q, T0 + 9, &b, &it, 1), 0);
	assert_int_equal(queue_take(q, T0 + 10, &b, &it, 0), 0); /* no room, nothing taken */
	queue_stats(q, &st);
	assert_int_equal(st.items, 1);
	assert_int_equal(st.item_size, 40);
	queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_due_order_with_random_times),
	    cmocka_unit_test(test_due_order_across_destinations),
	    cmocka_unit_test(test_ready_queue_fifo_and_bound),
	    cmocka_unit_test(test_round_robin_fairness),
	    cmocka_unit_test(test_window_caps_connections),
	    cmocka_unit_test(test_add_refuses_bad_input_and_duplicates),
	    cmocka_unit_test(test_remove_and_listing),
	    cmocka_unit_test(test_untried_items_come_back_now),
	    cmocka_unit_test(test_advance_is_bounded),
	    cmocka_unit_test(test_empty_queue),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
