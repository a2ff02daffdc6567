/* test_queue_model.c - a simulated delivery engine drives the scheduler for days of fake time:
 * messages to healthy and broken destinations, random outcomes, operator deletions. A model
 * kept beside it checks that no item is lost, duplicated, handed out twice or before its
 * time, and that the counts the CLI will show add up. */
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

#define MESSAGES 20000
#define DESTS    16
#define PER_MSG  3 /* a message has items at up to 3 destinations */
#define CONNS    256

enum mstate { M_NONE, M_QUEUED, M_ACTIVE, M_GONE };

struct mitem {
	uint8_t state;
	bool cancelled;
	uint64_t not_before; /* never handed out for delivery before this */
};

struct conn {
	struct queue_dest *dest;
	size_t n;
	struct queue_item *items[8];
};

static struct mitem model[MESSAGES][DESTS];
static struct conn conns[CONNS];
static size_t nconn;
static uint64_t live, active, added, finished;
static uint64_t expired_aside, deaths, removed_active;

static void
locate(struct queue *q, const struct queue_item *it, unsigned *m, unsigned *d)
{
	char id[QUEUE_ID_LEN + 1];

	queue_item_id(it, id);
	*m = (unsigned)strtoul(id, NULL, 16);
	assert_in_range(*m, 0, MESSAGES - 1);
	assert_int_equal(sscanf(queue_dest_name(queue_item_dest(q, it)), "d%u.example", d), 1);
}

/* Destinations 0-3 never answer; the others answer 90 % of the time. */
static bool
reachable(unsigned d, struct queue_rng *rng)
{
	return d >= 4 && queue_rng_below(rng, 10) != 0;
}

static void
finish_item(struct queue *q, struct queue_item *it, enum queue_outcome o, uint64_t now)
{
	unsigned m, d;
	uint64_t next = 0;
	enum queue_fate fate;

	locate(q, it, &m, &d);
	assert_int_equal(model[m][d].state, M_ACTIVE);
	fate = queue_item_done(q, it, o, now, &next);
	active--;
	if (model[m][d].cancelled) {
		assert_int_equal(fate, QUEUE_FATE_REMOVED);
	} else if (o == QUEUE_DEFERRED) {
		assert_true(fate == QUEUE_FATE_RESCHEDULED || fate == QUEUE_FATE_EXPIRED);
	} else if (o == QUEUE_UNTRIED) {
		assert_int_equal(fate, QUEUE_FATE_RESCHEDULED);
		assert_true(next == now);
	} else {
		assert_int_equal(fate, QUEUE_FATE_REMOVED);
	}
	if (fate == QUEUE_FATE_RESCHEDULED) {
		assert_true(next >= now);
		model[m][d].state = M_QUEUED;
		model[m][d].not_before = next;
	} else {
		model[m][d].state = M_GONE;
		live--;
		finished++;
	}
}

static void
close_conn(struct queue *q, size_t c, uint64_t now, struct queue_rng *rng, bool all_well)
{
	struct conn *k = &conns[c];
	unsigned d;
	bool ok;

	assert_int_equal(sscanf(queue_dest_name(k->dest), "d%u.example", &d), 1);
	ok = all_well || reachable(d, rng);
	if (queue_feedback(q, k->dest, ok ? QUEUE_CONN_OK : QUEUE_CONN_FAILED, now) ==
	    QUEUE_DEST_DEAD)
		deaths++;
	for (size_t i = 0; i < k->n; i++) {
		unsigned r = (unsigned)queue_rng_below(rng, 100);
		enum queue_outcome o;

		if (!ok)
			o = r < 50 ? QUEUE_DEFERRED : QUEUE_UNTRIED;
		else if (all_well || r < 75)
			o = QUEUE_DELIVERED;
		else if (r < 93)
			o = QUEUE_DEFERRED;
		else if (r < 97)
			o = QUEUE_BOUNCED;
		else
			o = QUEUE_UNTRIED;
		finish_item(q, k->items[i], o, now);
	}
	queue_release(q, k->dest, QUEUE_CONN_NONE, now);
	conns[c] = conns[--nconn];
}

static void
take_all(struct queue *q, uint64_t now)
{
	struct queue_item *items[8];
	struct queue_batch b;
	size_t n;

	while (nconn < CONNS && (n = queue_take(q, now, &b, items, nitems(items))) > 0) {
		for (size_t i = 0; i < n; i++) {
			unsigned m, d;

			locate(q, items[i], &m, &d);
			assert_int_equal(model[m][d].state, M_QUEUED); /* never twice at once */
			assert_true(now >= model[m][d].not_before);    /* never early */
			model[m][d].state = M_ACTIVE;
			active++;
		}
		if (b.work == QUEUE_WORK_EXPIRE) {
			assert_null(b.dest);
			expired_aside += n;
			for (size_t i = 0; i < n; i++) {
				assert_true(queue_item_expires_us(items[i]) < now + HOUR);
				finish_item(q, items[i], QUEUE_EXPIRED, now);
			}
			continue;
		}
		assert_int_equal(b.work, QUEUE_WORK_DELIVER);
		conns[nconn] = (struct conn){.dest = b.dest, .n = n};
		memcpy(conns[nconn].items, items, n * sizeof(items[0]));
		nconn++;
	}
}

struct sums {
	uint64_t scheduled, ready, active, expiring, items;
};

static bool
sum_dest(void *arg, const struct queue_dest_stats *st)
{
	struct sums *s = arg;

	s->scheduled += st->scheduled;
	s->ready += st->ready;
	s->active += st->active_items;
	s->expiring += st->expiring;
	return true;
}

static bool
count_item(void *arg, const struct queue_item_info *info)
{
	((struct sums *)arg)->items++;
	return true;
}

static void
check_counts(struct queue *q)
{
	struct queue_stats st;
	struct sums s = {0};

	queue_stats(q, &st);
	assert_int_equal(st.items, live);
	assert_int_equal(st.active, active);
	queue_foreach_dest(q, sum_dest, &s);
	queue_foreach_item(q, count_item, &s);
	assert_int_equal(s.scheduled, st.scheduled);
	assert_int_equal(s.ready, st.ready);
	assert_int_equal(s.active, st.active);
	assert_int_equal(s.expiring, st.expiring);
	assert_int_equal(s.items, st.items);
	assert_int_equal(live + finished, added);
}

static void
test_simulated_days(void **state)
{
	struct queue_options o;
	struct queue_rng rng;
	struct queue *q;
	char err[128];
	uint64_t now = T0, next_msg = 0;
	int steps = 0;

	queue_options_default(&o);
	o.seed = 2024;
	o.batch_max = 8;
	o.ready_max = 50;
	o.initial_window = 2;
	o.max_window = 8;
	o.dead_after = 3;
	o.retry.lifetime_us = 6 * HOUR; /* short, so that expiry happens within the run */
	q = queue_new(&o, err, sizeof(err));
	assert_non_null(q);
	queue_rng_seed(&rng, 77);

	while (now < T0 + 24 * HOUR) {
		/* New mail: a few messages, each for 1-3 distinct destinations. */
		for (int k = (int)queue_rng_below(&rng, 4); k > 0 && next_msg < MESSAGES; k--) {
			unsigned nd = 1 + (unsigned)queue_rng_below(&rng, PER_MSG);
			unsigned d0 = (unsigned)queue_rng_below(&rng, DESTS);

			for (unsigned j = 0; j < nd; j++) {
				unsigned d = (d0 + j * 5) % DESTS;
				char dest[32];

				snprintf(dest, sizeof(dest), "d%u.example", d);
				assert_int_equal(queue_add(q, id_of(next_msg), dest, now, now, 0),
				                 0);
				model[next_msg][d] =
				    (struct mitem){.state = M_QUEUED, .not_before = now};
				live++;
				added++;
			}
			next_msg++;
		}
		/* The operator deletes a message now and then. */
		if (queue_rng_below(&rng, 50) == 0 && next_msg > 0) {
			unsigned m = (unsigned)queue_rng_below(&rng, next_msg);
			int expect = 0, got;

			for (unsigned d = 0; d < DESTS; d++)
				expect +=
				    model[m][d].state == M_QUEUED || model[m][d].state == M_ACTIVE;
			got = queue_remove(q, id_of(m));
			assert_int_equal(got, expect);
			for (unsigned d = 0; d < DESTS; d++) {
				if (model[m][d].state == M_QUEUED) {
					model[m][d].state = M_GONE;
					live--;
					finished++;
				} else if (model[m][d].state == M_ACTIVE) {
					model[m][d].cancelled = true;
					removed_active++;
				}
			}
		}
		take_all(q, now);
		/* Some connections end. */
		for (size_t c = 0; c < nconn;)
			if (queue_rng_below(&rng, 3) == 0)
				close_conn(q, c, now, &rng, false);
			else
				c++;
		check_counts(q);
		/* Time moves on: to the queue's next due time or a random step, whichever first. */
		{
			uint64_t step = now + (1 + queue_rng_below(&rng, 10)) * USEC;
			uint64_t due = queue_next_due_us(q);

			now = due > now && due < step ? due : step;
		}
		steps++;
	}
	/* Every destination recovers: everything left is delivered or expires. */
	while (nconn > 0)
		close_conn(q, 0, now, &rng, true);
	for (int i = 0; i < 100000 && live > 0; i++) {
		uint64_t due = queue_next_due_us(q);

		now = due > now && due != UINT64_MAX ? due : now + MINUTE;
		take_all(q, now);
		while (nconn > 0)
			close_conn(q, 0, now, &rng, true);
	}
	check_counts(q);
	assert_int_equal(live, 0);
	assert_true(queue_next_due_us(q) == UINT64_MAX);
	/* The run went through every path it is meant to check. */
	assert_true(added > 30000);
	assert_true(deaths > 10);
	assert_true(expired_aside > 0);
	assert_true(removed_active > 0);
	print_message("model: %d steps, %llu items, %llu deaths, %llu expired while held, all "
	              "accounted for\n",
	              steps, (unsigned long long)added, (unsigned long long)deaths,
	              (unsigned long long)expired_aside);
	queue_free(q);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_simulated_days),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
