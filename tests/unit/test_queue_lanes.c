/* test_queue_lanes.c - streams apart: one lane per class of mail at a site, sharing the site's
 * connections. Higher priority goes first when a slot frees, a reserved share stays free for
 * its class, a reused connection gives its slot up to higher-priority mail, each class keeps
 * its own retry schedule and lifetime, and the site's failures and death are shared. */
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

enum { BULK = 0, TX = 1 };

/* Class 0 "bulk": priority 10, retries every hour, lives a day. Class 1 "transactional":
 * priority 100, reserve_pct as given, retries every minute, lives an hour. The window is
 * fixed at `window` (initial = max), batches of 4. */
static struct queue *
new_queue(unsigned window, unsigned reserve_pct)
{
	struct queue_class classes[2];
	struct queue_options o;
	struct queue *q;
	char err[128];

	queue_options_default(&o);
	o.seed = 7;
	o.batch_max = 4;
	o.initial_window = window;
	o.max_window = window;
	o.dead_after = 2;
	memset(classes, 0, sizeof(classes));
	classes[BULK].priority = 10;
	classes[BULK].retry = (struct retry_schedule){
	    .n = 1, .interval_us = {HOUR}, .jitter_pct = 0, .lifetime_us = 24 * HOUR};
	classes[TX].priority = 100;
	classes[TX].reserve_pct = reserve_pct;
	classes[TX].retry = (struct retry_schedule){
	    .n = 1, .interval_us = {MINUTE}, .jitter_pct = 0, .lifetime_us = HOUR};
	o.classes = classes;
	o.nclasses = 2;
	q = queue_new(&o, err, sizeof(err));
	if (q == NULL)
		fail_msg("%s", err);
	return q;
}

static void
add(struct queue *q, uint64_t n, unsigned cls, uint64_t now)
{
	struct queue_lane lane = {
	    .site = "example.com",
	    .name = cls == TX ? "transactional:tx@example.com" : "bulk:bulk@example.com",
	    .via = cls == TX ? "tx" : "bulk",
	    .cls = cls,
	};

	assert_int_equal(queue_add_lane(q, id_of(n), &lane, now, now, 0), 0);
}

static unsigned
lane_class(struct queue_dest *d)
{
	return queue_dest_class(d);
}

/* The highest priority goes first at a site, whatever the order mail arrived in; both lanes
 * name their site and keep their via. */
static void
test_priority_first(void **state)
{
	struct queue *q = new_queue(1, 0);
	struct queue_item *items[8];
	struct queue_batch b;

	(void)state;
	for (uint64_t i = 1; i <= 20; i++)
		add(q, i, BULK, T0);
	add(q, 100, TX, T0);
	assert_int_equal(queue_take(q, T0, &b, items, 8), 1);
	assert_int_equal(lane_class(b.dest), TX);
	assert_string_equal(queue_dest_site(b.dest), "example.com");
	assert_string_equal(queue_dest_via(b.dest), "tx");
	assert_string_equal(queue_dest_name(b.dest), "transactional:tx@example.com");
	/* The window (1) is full: bulk waits. */
	{
		struct queue_batch none;

		assert_int_equal(queue_take(q, T0, &none, items + 1, 7), 0);
	}
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0);
	assert_int_equal(queue_take(q, T0, &b, items, 8), 4);
	assert_int_equal(lane_class(b.dest), BULK);
	assert_string_equal(queue_dest_via(b.dest), "bulk");
	for (int i = 0; i < 4; i++)
		queue_item_done(q, items[i], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0);
	queue_free(q);
}

/* A reused bulk connection gives its slot up when transactional mail waits without one,
 * and the slot it frees goes to that mail. */
static void
test_reuse_yields_to_priority(void **state)
{
	struct queue *q = new_queue(2, 0);
	struct queue_item *a[8], *b2[8], *more[8];
	struct queue_batch ba, bb, bt;

	(void)state;
	for (uint64_t i = 1; i <= 40; i++)
		add(q, i, BULK, T0);
	assert_int_equal(queue_take(q, T0, &ba, a, 8), 4);
	assert_int_equal(queue_take(q, T0, &bb, b2, 8), 4);
	assert_int_equal(queue_take(q, T0, &bt, more, 8), 0); /* window full */
	/* Bulk alone: its connections go on. */
	for (int i = 0; i < 4; i++)
		queue_item_done(q, a[i], QUEUE_DELIVERED, T0, NULL);
	assert_int_equal(queue_take_more(q, ba.dest, T0, a, 8), 4);
	assert_false(queue_dest_yields(q, ba.dest));
	/* Transactional mail arrives: no slot for it, so reuse stops. */
	add(q, 100, TX, T0);
	assert_int_equal(queue_take(q, T0, &bt, more, 8), 0);
	assert_true(queue_dest_yields(q, ba.dest));
	for (int i = 0; i < 4; i++)
		queue_item_done(q, a[i], QUEUE_DELIVERED, T0, NULL);
	assert_int_equal(queue_take_more(q, ba.dest, T0, a, 8), 0);
	queue_release(q, ba.dest, QUEUE_CONN_OK, T0);
	/* The freed slot is transactional's, though bulk has more ready. */
	assert_int_equal(queue_take(q, T0, &bt, more, 8), 1);
	assert_int_equal(lane_class(bt.dest), TX);
	queue_item_done(q, more[0], QUEUE_DELIVERED, T0, NULL);
	/* Nothing higher waits now: bulk's other connection may reuse. */
	for (int i = 0; i < 4; i++)
		queue_item_done(q, b2[i], QUEUE_DELIVERED, T0, NULL);
	assert_int_equal(queue_take_more(q, bb.dest, T0, b2, 8), 4);
	for (int i = 0; i < 4; i++)
		queue_item_done(q, b2[i], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, bb.dest, QUEUE_CONN_OK, T0);
	queue_release(q, bt.dest, QUEUE_CONN_OK, T0);
	queue_free(q);
}

/* A reserved share stays free for its class even while it has no mail; it never takes the
 * only slot of a window of one. */
static void
test_reserve(void **state)
{
	struct queue *q = new_queue(4, 25); /* 25 % of 4: one connection */
	struct queue_item *items[4][8], *t[8];
	struct queue_batch b[4], bt;
	struct queue_dest_stats st;

	(void)state;
	for (uint64_t i = 1; i <= 100; i++)
		add(q, i, BULK, T0);
	for (int k = 0; k < 3; k++)
		assert_int_equal(queue_take(q, T0, &b[k], items[k], 8), 4);
	/* The fourth slot is transactional's. */
	assert_int_equal(queue_take(q, T0, &b[3], items[3], 8), 0);
	queue_dest_stats(q, b[0].dest, &st);
	assert_int_equal(st.site_slots, 3);
	assert_int_equal(st.window, 4);
	add(q, 1000, TX, T0);
	assert_int_equal(queue_take(q, T0, &bt, t, 8), 1);
	assert_int_equal(lane_class(bt.dest), TX);
	queue_item_done(q, t[0], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, bt.dest, QUEUE_CONN_OK, T0);
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 4; i++)
			queue_item_done(q, items[k][i], QUEUE_DELIVERED, T0, NULL);
		queue_release(q, b[k].dest, QUEUE_CONN_OK, T0);
	}
	queue_free(q);

	/* A window of one: a reserve cannot leave room, so it does not lock bulk out. */
	q = new_queue(1, 100);
	for (uint64_t i = 1; i <= 4; i++)
		add(q, i, BULK, T0);
	assert_int_equal(queue_take(q, T0, &b[0], items[0], 8), 4);
	assert_int_equal(lane_class(b[0].dest), BULK);
	for (int i = 0; i < 4; i++)
		queue_item_done(q, items[0][i], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, b[0].dest, QUEUE_CONN_OK, T0);
	queue_free(q);
}

/* Each class retries and expires on its own schedule. */
static void
test_class_retry_and_lifetime(void **state)
{
	struct queue *q = new_queue(2, 0);
	struct queue_item *items[8];
	struct queue_batch b;
	uint64_t next = 0;

	(void)state;
	add(q, 1, TX, T0);
	add(q, 2, BULK, T0);
	assert_int_equal(queue_take(q, T0, &b, items, 8), 1);
	assert_int_equal(lane_class(b.dest), TX);
	assert_int_equal(queue_item_expires_us(items[0]), T0 + HOUR);
	assert_int_equal(queue_item_done(q, items[0], QUEUE_DEFERRED, T0, &next),
	                 QUEUE_FATE_RESCHEDULED);
	assert_int_equal(next, T0 + MINUTE);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0);
	assert_int_equal(queue_take(q, T0, &b, items, 8), 1);
	assert_int_equal(lane_class(b.dest), BULK);
	assert_int_equal(queue_item_expires_us(items[0]), T0 + 24 * HOUR);
	assert_int_equal(queue_item_done(q, items[0], QUEUE_DEFERRED, T0, &next),
	                 QUEUE_FATE_RESCHEDULED);
	assert_int_equal(next, T0 + HOUR);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0);
	/* The transactional item's next retry would fall after its hour: expired. */
	assert_int_equal(queue_take(q, T0 + 59 * MINUTE + 1, &b, items, 8), 1);
	assert_int_equal(queue_item_done(q, items[0], QUEUE_DEFERRED, T0 + 59 * MINUTE + 1, &next),
	                 QUEUE_FATE_EXPIRED);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + 59 * MINUTE + 1);
	queue_free(q);
}

/* The site's failures are every lane's: a death holds both lanes' mail. */
static void
test_site_death_is_shared(void **state)
{
	struct queue *q = new_queue(2, 0);
	struct queue_item *items[8];
	struct queue_batch b;
	struct queue_stats qs;

	(void)state;
	add(q, 1, BULK, T0);
	add(q, 2, TX, T0);
	for (int k = 0; k < 2; k++) {
		size_t n = queue_take(q, T0, &b, items, 8);

		assert_int_equal(n, 1);
		queue_item_done(q, items[0], QUEUE_UNTRIED, T0, NULL);
		queue_release(q, b.dest, QUEUE_CONN_FAILED, T0);
	}
	queue_stats(q, &qs);
	assert_int_equal(qs.sites, 1);
	assert_int_equal(qs.dests, 2);
	assert_int_equal(qs.dead_dests, 1);
	/* Neither lane is offered while the site is dead. */
	assert_int_equal(queue_take(q, T0 + MINUTE, &b, items, 8), 0);
	assert_true(queue_next_due_us(q) > T0 + MINUTE);
	queue_free(q);
}

/* A lane name stands for one site and one class. */
static void
test_lane_names(void **state)
{
	struct queue *q = new_queue(2, 0);
	struct queue_lane lane = {.site = "example.com", .name = "x@example.com", .cls = 0};
	struct queue_stats qs;

	(void)state;
	assert_int_equal(queue_add_lane(q, id_of(1), &lane, T0, T0, 0), 0);
	lane.site = "example.org";
	errno = 0;
	assert_int_equal(queue_add_lane(q, id_of(2), &lane, T0, T0, 0), -1);
	assert_int_equal(errno, EINVAL);
	lane.site = "example.com";
	lane.cls = 1;
	assert_int_equal(queue_add_lane(q, id_of(2), &lane, T0, T0, 0), -1);
	lane.cls = 2; /* no such class */
	lane.name = "y@example.com";
	assert_int_equal(queue_add_lane(q, id_of(2), &lane, T0, T0, 0), -1);
	assert_int_equal(errno, EINVAL);
	queue_stats(q, &qs);
	assert_int_equal(qs.items, 1);
	assert_int_equal(qs.dests, 1);
	assert_int_equal(qs.sites, 1);
	queue_free(q);
}

/* 50,000 bulk items ready at a site whose window bulk fills; transactional mail still gets
 * the next slot that frees. */
static void
test_backlog_isolation(void **state)
{
	struct queue *q = new_queue(3, 0);
	struct queue_item *items[3][8], *t[8];
	struct queue_batch b[3], bt;
	size_t n;

	(void)state;
	for (uint64_t i = 1; i <= 50000; i++)
		add(q, i, BULK, T0);
	for (int k = 0; k < 3; k++)
		assert_int_equal(queue_take(q, T0, &b[k], items[k], 8), 4);
	for (uint64_t i = 0; i < 100; i++)
		add(q, 100000 + i, TX, T0);
	/* As each bulk connection finishes its transaction, it gives its slot up, and the slot
	 * goes to transactional mail (bulk has 49,988 ready meanwhile). */
	for (int k = 0; k < 3; k++) {
		for (int i = 0; i < 4; i++)
			queue_item_done(q, items[k][i], QUEUE_DELIVERED, T0, NULL);
		assert_int_equal(queue_take_more(q, b[k].dest, T0, items[k], 8), 0);
		queue_release(q, b[k].dest, QUEUE_CONN_OK, T0);
		n = queue_take(q, T0, &bt, t, 8);
		assert_int_equal(n, 4);
		assert_int_equal(lane_class(bt.dest), TX);
	}
	queue_free(q);
}

/* A held lane waits, woken by the due time, not polled; its site's other lanes go on. */
static void
test_hold(void **state)
{
	struct queue *q = new_queue(4, 0);
	struct queue_item *items[8];
	struct queue_batch b;
	struct queue_dest_stats st;

	(void)state;
	add(q, 1, BULK, T0);
	add(q, 2, BULK, T0);
	assert_int_equal(queue_take(q, T0, &b, items, 1), 1);
	/* Shaping refuses the connection: the item goes back untried, the lane waits a minute. */
	queue_item_done(q, items[0], QUEUE_UNTRIED, T0, NULL);
	queue_hold(q, b.dest, T0 + MINUTE, T0);
	queue_dest_stats(q, b.dest, &st);
	assert_int_equal(st.held_until_us, T0 + MINUTE);
	queue_release(q, b.dest, QUEUE_CONN_NONE, T0);
	assert_int_equal(queue_take(q, T0 + 1, &b, items, 8), 0);
	assert_int_equal(queue_next_due_us(q), T0 + MINUTE);
	/* Transactional mail at the same site is not held. */
	add(q, 3, TX, T0 + 2);
	assert_int_equal(queue_take(q, T0 + 2, &b, items, 8), 1);
	assert_int_equal(lane_class(b.dest), TX);
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0 + 2, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + 2);
	assert_int_equal(queue_next_due_us(q), T0 + MINUTE);
	/* The hold ends: both bulk items go. */
	assert_int_equal(queue_take(q, T0 + MINUTE, &b, items, 8), 2);
	assert_int_equal(lane_class(b.dest), BULK);
	for (int i = 0; i < 2; i++)
		queue_item_done(q, items[i], QUEUE_DELIVERED, T0 + MINUTE, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + MINUTE);
	/* A whole site held (a provider suspended). */
	add(q, 4, BULK, T0 + MINUTE);
	add(q, 5, TX, T0 + MINUTE);
	assert_int_equal(queue_hold_site(q, "example.com", T0 + HOUR, T0 + MINUTE), 1);
	assert_int_equal(queue_hold_site(q, "nowhere.example", T0 + HOUR, T0 + MINUTE), 0);
	assert_int_equal(queue_take(q, T0 + 2 * MINUTE, &b, items, 8), 0);
	assert_int_equal(queue_next_due_us(q), T0 + HOUR);
	assert_int_equal(queue_take(q, T0 + HOUR, &b, items, 8), 1);
	assert_int_equal(lane_class(b.dest), TX);
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0 + HOUR, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + HOUR);
	queue_free(q);
}

/* A site's window top comes from its lanes (shaping's max_connections), shared by them. */
static void
test_site_max_window(void **state)
{
	struct queue *q = new_queue(4, 0);
	struct queue_lane a = {
	    .site = "google", .name = "bulk@gmail.com", .cls = BULK, .max_window = 1};
	struct queue_lane b = {.site = "google", .name = "bulk@example-workspace.com", .cls = BULK};
	struct queue_item *items[8], *more[8];
	struct queue_batch ba, bb;
	struct queue_dest_stats st;

	(void)state;
	assert_int_equal(queue_add_lane(q, id_of(1), &a, T0, T0, 0), 0);
	assert_int_equal(queue_add_lane(q, id_of(2), &b, T0, T0, 0), 0);
	assert_int_equal(queue_take(q, T0, &ba, items, 8), 1);
	assert_int_equal(queue_take(q, T0, &bb, more, 8), 0); /* one connection for the site */
	queue_dest_stats(q, ba.dest, &st);
	assert_int_equal(st.max_window, 1);
	assert_int_equal(st.window, 1);
	/* Success does not open it past its top. */
	queue_feedback(q, ba.dest, QUEUE_CONN_OK, T0);
	queue_dest_stats(q, ba.dest, &st);
	assert_int_equal(st.window, 1);
	assert_int_equal(queue_site_limit(q, "google", 3), 1);
	queue_feedback_transaction(q, ba.dest, T0);
	assert_int_equal(queue_take(q, T0, &bb, more, 8), 1); /* the window grew to 2 */
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0, NULL);
	queue_item_done(q, more[0], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, ba.dest, QUEUE_CONN_OK, T0);
	queue_release(q, bb.dest, QUEUE_CONN_OK, T0);
	queue_free(q);
}

/* A site opens at its lanes' initial window (shaping's initial_connections), within its top. */
static void
test_site_initial_window(void **state)
{
	struct queue *q = new_queue(4, 0); /* options: initial = max = 4 */
	struct queue_lane l = {.site = "slow",
	                       .name = "bulk@slow.example",
	                       .cls = BULK,
	                       .max_window = 6,
	                       .initial_window = 1};
	struct queue_item *items[8];
	struct queue_batch b;
	struct queue_dest_stats st;

	(void)state;
	for (uint64_t i = 1; i <= 3; i++)
		assert_int_equal(queue_add_lane(q, id_of(i), &l, T0, T0, 0), 0);
	assert_int_equal(queue_take(q, T0, &b, items, 1), 1);
	queue_dest_stats(q, b.dest, &st);
	assert_int_equal(st.window, 1);
	assert_int_equal(st.max_window, 6);
	{
		struct queue_batch none;

		assert_int_equal(queue_take(q, T0, &none, items + 1, 1), 0); /* one at first */
	}
	queue_feedback(q, b.dest, QUEUE_CONN_OK, T0); /* it answered: two */
	queue_dest_stats(q, b.dest, &st);
	assert_int_equal(st.window, 2);
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, b.dest, QUEUE_CONN_NONE, T0);
	queue_free(q);
}

/* Bad classes are refused by queue_new. */
static void
test_class_options(void **state)
{
	struct queue_class classes[2];
	struct queue_options o;
	char err[128];

	(void)state;
	queue_options_default(&o);
	memset(classes, 0, sizeof(classes));
	classes[0].retry = o.retry;
	classes[1].retry = o.retry;
	classes[0].reserve_pct = 60;
	classes[1].reserve_pct = 50;
	o.classes = classes;
	o.nclasses = 2;
	assert_null(queue_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "100%"));
	classes[1].reserve_pct = 40;
	classes[1].retry.n = 0;
	assert_null(queue_new(&o, err, sizeof(err)));
	classes[1].retry = o.retry;
	queue_free(queue_new(&o, err, sizeof(err)));
}

/* A reload adds a class (a new stream) to a queue in use: sites already there count its
 * connections from zero, and its lane competes by its priority at once; classes cannot be
 * taken away (lanes refer to them by index). */
static void
test_reconfigure_adds_a_class(void **state)
{
	struct queue *q = new_queue(2, 0);
	struct queue_class classes[3];
	struct queue_item *a[8], *b2[8];
	struct queue_batch ba, bb;
	struct queue_options o;
	struct queue_lane urgent = {
	    .site = "example.com", .name = "urgent@example.com", .via = NULL, .cls = 2};
	char err[128];

	(void)state;
	for (uint64_t i = 1; i <= 20; i++)
		add(q, i, BULK, T0);
	assert_int_equal(queue_take(q, T0, &ba, a, 8), 4);
	queue_options_default(&o);
	o.seed = 7;
	o.batch_max = 4;
	o.initial_window = o.max_window = 2;
	o.dead_after = 2;
	memset(classes, 0, sizeof(classes));
	classes[BULK].priority = 10;
	classes[BULK].retry = (struct retry_schedule){
	    .n = 1, .interval_us = {HOUR}, .jitter_pct = 0, .lifetime_us = 24 * HOUR};
	classes[TX] = classes[BULK];
	classes[TX].priority = 100;
	classes[2] = classes[BULK];
	classes[2].priority = 1000;
	o.classes = classes;
	o.nclasses = 1;
	assert_int_equal(queue_reconfigure(q, &o, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not removed"));
	o.nclasses = 3;
	assert_int_equal(queue_reconfigure(q, &o, err, sizeof(err)), 0);
	assert_int_equal(queue_add_lane(q, id_of(500), &urgent, T0, T0, 0), 0);
	/* The one free slot goes to the new, highest class. */
	assert_int_equal(queue_take(q, T0, &bb, b2, 8), 1);
	assert_int_equal(lane_class(bb.dest), 2);
	queue_item_done(q, b2[0], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, bb.dest, QUEUE_CONN_OK, T0);
	for (int i = 0; i < 4; i++)
		queue_item_done(q, a[i], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, ba.dest, QUEUE_CONN_OK, T0);
	queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_priority_first),
	    cmocka_unit_test(test_reconfigure_adds_a_class),
	    cmocka_unit_test(test_reuse_yields_to_priority),
	    cmocka_unit_test(test_reserve),
	    cmocka_unit_test(test_class_retry_and_lifetime),
	    cmocka_unit_test(test_site_death_is_shared),
	    cmocka_unit_test(test_lane_names),
	    cmocka_unit_test(test_backlog_isolation),
	    cmocka_unit_test(test_class_options),
	    cmocka_unit_test(test_hold),
	    cmocka_unit_test(test_site_max_window),
	    cmocka_unit_test(test_site_initial_window),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
