/* test_queue_dest.c - per-destination state: the concurrency window that opens with success
 * and closes with failure, and the dead destination that is held back instead of hammered,
 * probed after its cooldown, and given up on when its messages outlive their lifetime. */
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

/* initial window 2, max 5, dead after 3 failures, cooldown 5 min doubling to 20 min. */
static struct queue *
new_queue(unsigned batch_max)
{
	struct queue_options o;
	struct queue *q;
	char err[128];

	queue_options_default(&o);
	o.seed = 1;
	o.batch_max = batch_max;
	o.initial_window = 2;
	o.max_window = 5;
	o.dead_after = 3;
	o.dead_cooldown_us = 5 * MINUTE;
	o.dead_cooldown_max_us = 20 * MINUTE;
	q = queue_new(&o, err, sizeof(err));
	if (q == NULL)
		fail_msg("%s", err);
	return q;
}

static struct queue_dest_stats
dstats(struct queue *q, const char *name)
{
	struct queue_dest_stats st;
	struct queue_dest *d = queue_dest_find(q, name);

	if (d == NULL)
		fail_msg("no destination %s", name);
	queue_dest_stats(q, d, &st);
	return st;
}

/* Take one connection's batch, report every item and the connection, release. Returns the
 * number of items taken. */
static size_t
attempt(struct queue *q, uint64_t now, enum queue_conn conn, enum queue_outcome outcome)
{
	struct queue_item *items[16];
	struct queue_batch b;
	size_t n = queue_take(q, now, &b, items, nitems(items));

	if (n == 0)
		return 0;
	assert_int_equal(b.work, QUEUE_WORK_DELIVER);
	queue_feedback(q, b.dest, conn, now);
	for (size_t i = 0; i < n; i++)
		queue_item_done(q, items[i], outcome, now, NULL);
	queue_release(q, b.dest, QUEUE_CONN_NONE, now);
	return n;
}

static void
test_window_grows_and_shrinks(void **state)
{
	struct queue *q = new_queue(1);

	for (uint64_t i = 0; i < 100; i++)
		queue_add(q, id_of(i), "example.com", T0, T0, 0);
	assert_int_equal(dstats(q, "example.com").window, 2);
	/* +1 per connection that reached the site, up to max_window. */
	for (unsigned w = 3; w <= 5; w++) {
		assert_int_equal(attempt(q, T0, QUEUE_CONN_OK, QUEUE_DELIVERED), 1);
		assert_int_equal(dstats(q, "example.com").window, w);
	}
	assert_int_equal(attempt(q, T0, QUEUE_CONN_OK, QUEUE_DELIVERED), 1);
	assert_int_equal(dstats(q, "example.com").window, 5);
	/* -1 per failure; a success between failures keeps it alive and resets the count. */
	assert_int_equal(attempt(q, T0, QUEUE_CONN_FAILED, QUEUE_DEFERRED), 1);
	assert_int_equal(attempt(q, T0, QUEUE_CONN_FAILED, QUEUE_DEFERRED), 1);
	assert_int_equal(dstats(q, "example.com").window, 3);
	assert_int_equal(dstats(q, "example.com").failures, 2);
	assert_int_equal(attempt(q, T0, QUEUE_CONN_OK, QUEUE_DELIVERED), 1);
	assert_int_equal(dstats(q, "example.com").failures, 0);
	assert_int_equal(dstats(q, "example.com").window, 4);
	assert_int_equal(dstats(q, "example.com").state, QUEUE_DEST_ALIVE);
	queue_free(q);
}

/* The window counts connections at once: with window 2, the third take waits. */
static void
test_window_is_concurrency(void **state)
{
	struct queue *q = new_queue(1);
	struct queue_item *a, *b2, *c;
	struct queue_batch b1, bb, bc;

	for (uint64_t i = 0; i < 10; i++)
		queue_add(q, id_of(i), "example.com", T0, T0, 0);
	assert_int_equal(queue_take(q, T0, &b1, &a, 1), 1);
	assert_int_equal(queue_take(q, T0, &bb, &b2, 1), 1);
	assert_int_equal(queue_take(q, T0, &bc, &c, 1), 0);
	assert_int_equal(dstats(q, "example.com").slots, 2);
	/* Feedback before release opens the window at once: a third connection may start. */
	queue_feedback(q, b1.dest, QUEUE_CONN_OK, T0);
	assert_int_equal(queue_take(q, T0, &bc, &c, 1), 1);
	queue_item_done(q, a, QUEUE_DELIVERED, T0, NULL);
	queue_item_done(q, b2, QUEUE_DELIVERED, T0, NULL);
	queue_item_done(q, c, QUEUE_DELIVERED, T0, NULL);
	queue_release(q, b1.dest, QUEUE_CONN_NONE, T0);
	queue_release(q, bb.dest, QUEUE_CONN_OK, T0);
	queue_release(q, bc.dest, QUEUE_CONN_OK, T0);
	assert_int_equal(dstats(q, "example.com").window, 5);
	queue_free(q);
}

/* A burst to one destination (the DSNs of a campaign, all to the sender's domain) rides
 * connections that are reused for message after message. Each transaction the site answers
 * on them is positive feedback too, so the window opens while the burst lasts: by one per
 * round of its connections, up to max_window, instead of staying at the initial window until
 * connections turn over (each after max_messages_per_connection). */
static void
test_window_opens_during_a_burst_on_reused_connections(void **state)
{
	struct queue_options o;
	struct queue *q;
	struct queue_item *it;
	struct queue_batch b;
	struct queue_dest *conns[32];
	unsigned nconns = 0, rounds = 0;
	char err[128];

	queue_options_default(&o);
	o.seed = 1;
	o.batch_max = 1;
	o.initial_window = 2;
	o.max_window = 20;
	q = queue_new(&o, err, sizeof(err));
	assert_non_null(q);
	for (uint64_t i = 0; i < 2000; i++)
		queue_add(q, id_of(i), "senders.example", T0, T0, 0);

	/* Two connections open, and each reaches the site: +1 each, as before. */
	while (queue_take(q, T0, &b, &it, 1) == 1) {
		conns[nconns++] = b.dest;
		queue_item_done(q, it, QUEUE_DELIVERED, T0, NULL);
	}
	assert_int_equal(nconns, 2);
	for (unsigned c = 0; c < nconns; c++)
		queue_feedback(q, conns[c], QUEUE_CONN_OK, T0);
	assert_int_equal(dstats(q, "senders.example").window, 4);

	/* Then every connection carries one more message per round, and the dispatcher opens
	 * what the window allows. Whenever the window grows, the queue says at once that
	 * another connection may start. (The new connections' own first answers are left out
	 * here: the growth comes from reused connections alone.) */
	while (nconns < 20) {
		assert_true(rounds++ < 40);
		for (unsigned c = 0; c < nconns; c++) {
			assert_int_equal(queue_take_more(q, conns[c], T0, &it, 1), 1);
			queue_item_done(q, it, QUEUE_DELIVERED, T0, NULL);
			if (queue_feedback_transaction(q, conns[c], T0))
				assert_true(queue_next_due_us(q) == 0);
		}
		while (queue_take(q, T0, &b, &it, 1) == 1) {
			assert_true(nconns < nitems(conns));
			conns[nconns++] = b.dest;
			queue_item_done(q, it, QUEUE_DELIVERED, T0, NULL);
		}
		assert_int_equal(nconns, dstats(q, "senders.example").window);
	}
	/* Additive: about one more connection per round (4 -> 20 in some 16 rounds), never
	 * more than the window. */
	assert_in_range(rounds, 12, 20);
	assert_int_equal(dstats(q, "senders.example").window, 20);
	assert_int_equal(dstats(q, "senders.example").slots, 20);
	assert_int_equal(queue_take(q, T0, &b, &it, 1), 0);
	/* At max_window, answers change nothing. */
	assert_false(queue_feedback_transaction(q, conns[0], T0));
	assert_int_equal(dstats(q, "senders.example").window, 20);
	for (unsigned c = 0; c < nconns; c++)
		queue_release(q, conns[c], QUEUE_CONN_NONE, T0);
	queue_free(q);
}

/* The count of answers starts again after a failed connection, and nothing opens the window
 * of a destination held back. */
static void
test_transaction_feedback_after_failures(void **state)
{
	struct queue *q = new_queue(1);
	struct queue_item *it;
	struct queue_batch b, fb;
	struct queue_dest *d;

	for (uint64_t i = 0; i < 100; i++)
		queue_add(q, id_of(i), "example.com", T0, T0, 0);
	assert_int_equal(queue_take(q, T0, &b, &it, 1), 1);
	queue_item_done(q, it, QUEUE_DELIVERED, T0, NULL);
	d = b.dest;
	queue_feedback(q, d, QUEUE_CONN_OK, T0); /* window 3 */
	assert_false(queue_feedback_transaction(q, d, T0));
	assert_false(queue_feedback_transaction(q, d, T0));
	/* Another connection fails: window 2, and the two answers no longer count. */
	assert_int_equal(queue_take(q, T0, &fb, &it, 1), 1);
	queue_item_done(q, it, QUEUE_DEFERRED, T0, NULL);
	queue_release(q, fb.dest, QUEUE_CONN_FAILED, T0);
	assert_int_equal(dstats(q, "example.com").window, 2);
	assert_false(queue_feedback_transaction(q, d, T0));
	assert_true(queue_feedback_transaction(q, d, T0));
	assert_int_equal(dstats(q, "example.com").window, 3);

	/* Two more failures make three in a row: dead. The old connection's answers open
	 * nothing while it is held back. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(queue_take(q, T0, &fb, &it, 1), 1);
		queue_item_done(q, it, QUEUE_DEFERRED, T0, NULL);
		queue_release(q, fb.dest, QUEUE_CONN_FAILED, T0);
	}
	assert_int_equal(dstats(q, "example.com").state, QUEUE_DEST_DEAD);
	for (int i = 0; i < 10; i++)
		assert_false(queue_feedback_transaction(q, d, T0));
	assert_int_equal(dstats(q, "example.com").window, 0);
	queue_release(q, d, QUEUE_CONN_NONE, T0);
	queue_free(q);
}

struct attempts_seen {
	unsigned max_attempts;
	uint64_t min_next;
};

static bool
see_item(void *arg, const struct queue_item_info *info)
{
	struct attempts_seen *s = arg;

	if (info->attempts > s->max_attempts)
		s->max_attempts = info->attempts;
	if (info->state == QUEUE_ITEM_SCHEDULED && info->next_attempt_us < s->min_next)
		s->min_next = info->next_attempt_us;
	return true;
}

/* Three failed connections in a row: the destination is dead. Its items are not offered
 * during the cooldown and no attempt is counted for them; then one probe connection. */
static void
test_dead_destination_is_held_back_then_probed(void **state)
{
	struct queue *q = new_queue(2);
	struct queue_item *items[4];
	struct queue_batch b, b2;
	struct queue_stats st;
	struct attempts_seen seen = {0, UINT64_MAX};
	uint64_t until;

	for (uint64_t i = 0; i < 20; i++)
		queue_add(q, id_of(i), "dead.example", T0, T0, 0);
	queue_add(q, id_of(100), "alive.example", T0, T0, 0);
	/* alive.example is served too, in turn; only dead.example's connections fail. */
	for (int i = 0; i < 3; i++) {
		size_t n = queue_take(q, T0, &b, items, nitems(items));

		if (strcmp(queue_dest_name(b.dest), "alive.example") == 0) {
			queue_item_done(q, items[0], QUEUE_DELIVERED, T0, NULL);
			queue_release(q, b.dest, QUEUE_CONN_OK, T0);
			n = queue_take(q, T0, &b, items, nitems(items));
		}
		assert_string_equal(queue_dest_name(b.dest), "dead.example");
		assert_int_equal(n, 2);
		for (size_t k = 0; k < n; k++)
			queue_item_done(q, items[k], QUEUE_DEFERRED, T0, NULL);
		queue_release(q, b.dest, QUEUE_CONN_FAILED, T0);
	}
	assert_int_equal(dstats(q, "dead.example").state, QUEUE_DEST_DEAD);
	until = dstats(q, "dead.example").dead_until_us;
	assert_true(until == T0 + 5 * MINUTE);
	assert_int_equal(dstats(q, "dead.example").window, 0);
	queue_stats(q, &st);
	assert_int_equal(st.dead_dests, 1);

	/* Nothing is offered during the cooldown, whatever the items' own retry times. */
	for (uint64_t t = T0; t < until; t += 10 * USEC)
		assert_int_equal(queue_take(q, t, &b, items, nitems(items)), 0);
	assert_int_equal(dstats(q, "dead.example").ready, 0);
	/* Held, not attempted: only the 6 items tried before the death have an attempt. */
	queue_foreach_item(q, see_item, &seen);
	assert_int_equal(seen.max_attempts, 1);
	assert_true(seen.min_next >= until);
	assert_true(queue_next_due_us(q) == until);
	/* A message arriving meanwhile waits too. */
	queue_add(q, id_of(50), "dead.example", until - 1, until - 1, 0);
	assert_int_equal(queue_take(q, until - 1, &b, items, nitems(items)), 0);

	/* Cooldown over: one probe connection, not two. */
	assert_int_equal(queue_take(q, until, &b, items, 1), 1);
	assert_int_equal(dstats(q, "dead.example").state, QUEUE_DEST_PROBE);
	assert_int_equal(dstats(q, "dead.example").window, 1);
	assert_int_equal(queue_take(q, until, &b2, &items[1], 1), 0);
	/* The probe reaches the site: alive again, reopening from the initial window. */
	assert_int_equal(queue_feedback(q, b.dest, QUEUE_CONN_OK, until), QUEUE_DEST_ALIVE);
	assert_int_equal(dstats(q, "dead.example").window, 2);
	assert_int_equal(dstats(q, "dead.example").failures, 0);
	queue_item_done(q, items[0], QUEUE_DELIVERED, until, NULL);
	queue_release(q, b.dest, QUEUE_CONN_NONE, until);
	queue_stats(q, &st);
	assert_int_equal(st.dead_dests, 0);
	while (attempt(q, until, QUEUE_CONN_OK, QUEUE_DELIVERED) > 0)
		;
	queue_stats(q, &st);
	/* What is left are deferred items whose own retry time is after the cooldown. */
	seen = (struct attempts_seen){0, UINT64_MAX};
	queue_foreach_item(q, see_item, &seen);
	assert_in_range(st.items, 0, 6);
	assert_true(seen.min_next > until || st.items == 0);
	assert_true(queue_next_due_us(q) > until);
	queue_free(q);
}

/* Each failed probe doubles the cooldown, up to dead_cooldown_max; a revival resets it. */
static void
test_failed_probe_doubles_cooldown(void **state)
{
	struct queue *q = new_queue(1);
	const uint64_t expect[] = {5 * MINUTE, 10 * MINUTE, 20 * MINUTE, 20 * MINUTE};
	uint64_t now = T0;

	for (uint64_t i = 0; i < 50; i++)
		queue_add(q, id_of(i), "down.example", T0, T0, 0);
	for (int i = 0; i < 3; i++)
		attempt(q, now, QUEUE_CONN_FAILED, QUEUE_UNTRIED);
	for (size_t k = 0; k < nitems(expect); k++) {
		uint64_t until = dstats(q, "down.example").dead_until_us;

		assert_int_equal(dstats(q, "down.example").state, QUEUE_DEST_DEAD);
		assert_true(until == now + expect[k]);
		/* The untried items were due now: advancing holds them to the cooldown's end. */
		queue_advance(q, now);
		assert_true(queue_next_due_us(q) == until);
		now = until;
		/* One failed probe is enough: dead again, for longer. */
		assert_int_equal(attempt(q, now, QUEUE_CONN_FAILED, QUEUE_UNTRIED), 1);
	}
	now = dstats(q, "down.example").dead_until_us;
	assert_int_equal(attempt(q, now, QUEUE_CONN_OK, QUEUE_DELIVERED), 1);
	assert_int_equal(dstats(q, "down.example").state, QUEUE_DEST_ALIVE);
	for (int i = 0; i < 3; i++)
		attempt(q, now, QUEUE_CONN_FAILED, QUEUE_UNTRIED);
	assert_true(dstats(q, "down.example").dead_until_us == now + 5 * MINUTE);
	queue_free(q);
}

/* A connection opened before the death that then reaches the site revives the destination
 * (as Postfix unthrottles on positive feedback). */
static void
test_late_success_revives(void **state)
{
	struct queue *q = new_queue(1);
	struct queue_item *old;
	struct queue_batch ob;

	for (uint64_t i = 0; i < 10; i++)
		queue_add(q, id_of(i), "flaky.example", T0, T0, 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(attempt(q, T0, QUEUE_CONN_OK, QUEUE_DELIVERED), 1);
	assert_int_equal(dstats(q, "flaky.example").window, 5);
	/* A slow connection is still in its session while three others fail. */
	assert_int_equal(queue_take(q, T0, &ob, &old, 1), 1);
	for (int i = 0; i < 3; i++)
		assert_int_equal(attempt(q, T0, QUEUE_CONN_FAILED, QUEUE_DEFERRED), 1);
	assert_int_equal(dstats(q, "flaky.example").state, QUEUE_DEST_DEAD);
	queue_item_done(q, old, QUEUE_DELIVERED, T0 + 1, NULL);
	assert_int_equal(queue_feedback(q, ob.dest, QUEUE_CONN_OK, T0 + 1), QUEUE_DEST_ALIVE);
	queue_release(q, ob.dest, QUEUE_CONN_NONE, T0 + 1);
	assert_int_equal(dstats(q, "flaky.example").window, 2);
	/* Items already held keep their time (the end of the cooldown); new mail goes now. */
	queue_add(q, id_of(99), "flaky.example", T0 + 1, T0 + 1, 0);
	assert_int_equal(attempt(q, T0 + 1, QUEUE_CONN_OK, QUEUE_DELIVERED), 1);
	queue_free(q);
}

/* A destination that never comes back still bounces its mail when the lifetime ends: items
 * whose lifetime would end before the cooldown does are set aside as expired, without another
 * attempt, and handed out for bouncing before any delivery. */
static void
test_held_items_expire(void **state)
{
	struct queue_options o;
	struct queue_item *items[16];
	struct queue_batch b;
	struct queue_stats st;
	struct queue *q;
	char err[128];
	uint64_t now = T0;
	size_t expired = 0;

	queue_options_default(&o);
	o.batch_max = 4;
	o.dead_after = 1;
	o.dead_cooldown_us = o.dead_cooldown_max_us = 30 * MINUTE;
	o.retry.lifetime_us = 2 * HOUR;
	o.retry.jitter_pct = 0;
	q = queue_new(&o, err, sizeof(err));
	assert_non_null(q);
	/* 4 received now (expire at T0 + 2 h), 4 received an hour later (expire at T0 + 3 h). */
	for (uint64_t i = 0; i < 8; i++)
		queue_add(q, id_of(i), "gone.example", i < 4 ? T0 : T0 + HOUR, T0 + HOUR, 0);
	now = T0 + HOUR;
	assert_int_equal(attempt(q, now, QUEUE_CONN_FAILED, QUEUE_UNTRIED), 4);
	/* Dead until T0 + 1.5 h, then probe failures every 30 min: T0 + 2 h, 2.5 h, 3 h. */
	while (now < T0 + 4 * HOUR) {
		size_t n;

		now = queue_next_due_us(q) == 0 ? now : queue_next_due_us(q);
		n = queue_take(q, now, &b, items, nitems(items));
		if (n == 0)
			continue;
		if (b.work == QUEUE_WORK_EXPIRE) {
			assert_null(b.dest);
			for (size_t i = 0; i < n; i++) {
				assert_true(queue_item_expires_us(items[i]) < now + 30 * MINUTE);
				assert_int_equal(queue_item_attempts(items[i]), 0);
				assert_int_equal(
				    queue_item_done(q, items[i], QUEUE_EXPIRED, now, NULL),
				    QUEUE_FATE_REMOVED);
			}
			expired += n;
			continue;
		}
		queue_feedback(q, b.dest, QUEUE_CONN_FAILED, now);
		for (size_t i = 0; i < n; i++)
			queue_item_done(q, items[i], QUEUE_UNTRIED, now, NULL);
		queue_release(q, b.dest, QUEUE_CONN_NONE, now);
	}
	assert_int_equal(expired, 8);
	queue_stats(q, &st);
	assert_int_equal(st.items, 0);
	queue_free(q);
}

/* A dead destination with nothing left is forgotten once its cooldown ends. */
static void
test_empty_dead_destination_is_forgotten(void **state)
{
	struct queue *q = new_queue(1);
	struct queue_item *it;
	struct queue_batch b;
	struct queue_stats st;
	uint64_t until;

	queue_add(q, id_of(1), "x.example", T0, T0, 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(queue_take(q, T0, &b, &it, 1), 1);
		queue_item_done(q, it, QUEUE_UNTRIED, T0, NULL);
		queue_release(q, b.dest, QUEUE_CONN_FAILED, T0);
	}
	until = dstats(q, "x.example").dead_until_us;
	assert_int_equal(queue_remove(q, id_of(1)), 1);
	assert_non_null(queue_dest_find(q, "x.example")); /* still dead: remembered */
	assert_true(queue_next_due_us(q) == until);
	queue_advance(q, until);
	assert_null(queue_dest_find(q, "x.example"));
	queue_stats(q, &st);
	assert_int_equal(st.dests, 0);
	assert_int_equal(st.dead_dests, 0);
	assert_true(queue_next_due_us(q) == UINT64_MAX);
	queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_window_grows_and_shrinks),
	    cmocka_unit_test(test_window_is_concurrency),
	    cmocka_unit_test(test_window_opens_during_a_burst_on_reused_connections),
	    cmocka_unit_test(test_transaction_feedback_after_failures),
	    cmocka_unit_test(test_dead_destination_is_held_back_then_probed),
	    cmocka_unit_test(test_failed_probe_doubles_cooldown),
	    cmocka_unit_test(test_late_success_revives),
	    cmocka_unit_test(test_held_items_expire),
	    cmocka_unit_test(test_empty_dead_destination_is_forgotten),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
