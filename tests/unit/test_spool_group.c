/* test_spool_group.c - the writer under load: group commit from several event loops, and
 * a full spool refusing what does not fit while keeping everything it acknowledged. */
#include <pthread.h>

#include "test_spool_util.h"

#define MB (1024 * 1024)

#define THREADS    4
#define PER_THREAD 50
#define BODY_LEN   4096

struct worker {
	struct spool *sp;
	pthread_barrier_t *start;
	bool one_by_one; /* wait for each answer before the next message, like one session */
	unsigned ok;
};

/* One event loop: starts all its messages at once, as many sessions would, then runs its
 * loop until every one has been answered. */
static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct answer answers[PER_THREAD];
	unsigned char body[BODY_LEN];
	struct evbuffer *buf = evbuffer_new();
	struct envelope env;
	struct loop l;

	loop_init(&l);
	sample_envelope(&env, 2);
	fill_body(body, sizeof(body), 7);
	pthread_barrier_wait(w->start);
	for (int i = 0; i < PER_THREAD; i++) {
		struct spool_message *msg = spool_message_begin(w->sp, l.mbox);

		answers[i] = (struct answer){&l, SPOOL_IO_ERROR, false};
		evbuffer_add(buf, body, sizeof(body));
		spool_message_commit(msg, &env, buf, answer_cb, &answers[i]);
		if (w->one_by_one)
			loop_until(&l, i + 1);
	}
	loop_until(&l, PER_THREAD);
	for (int i = 0; i < PER_THREAD; i++)
		w->ok += answers[i].called && answers[i].status == SPOOL_OK;
	envelope_clear(&env);
	evbuffer_free(buf);
	loop_free(&l);
	return NULL;
}

/* THREADS loops commit PER_THREAD messages each; the counters are in *st. */
static void
run_workers(struct spool *sp, bool one_by_one, struct spool_stats *st)
{
	struct worker w[THREADS];
	pthread_t tid[THREADS];
	pthread_barrier_t start;
	unsigned ok = 0;

	pthread_barrier_init(&start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		w[i] = (struct worker){sp, &start, one_by_one, 0};
		assert_int_equal(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		ok += w[i].ok;
	}
	pthread_barrier_destroy(&start);
	assert_int_equal(ok, THREADS * PER_THREAD);
	spool_stats(sp, st);
	print_message("group commit (%s): %llu messages in %llu commits (largest batch %llu)\n",
	              one_by_one ? "one by one" : "all at once", (unsigned long long)st->messages,
	              (unsigned long long)st->commits, (unsigned long long)st->largest_batch);
}

/* Every loop hands over all its messages at once, as many sessions would. */
static void
test_group_commit(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 256 * MB, 0);
	struct spool_stats st;

	run_workers(sp, false, &st);
	assert_int_equal(st.messages, THREADS * PER_THREAD);
	/* Two requests per message (its one chunk, then the commit), and far fewer
	 * transactions, hence fsyncs, than messages. */
	assert_int_equal(st.requests, 2 * THREADS * PER_THREAD);
	assert_true(st.commits * 4 <= st.messages);
	assert_int_equal(spool_message_count(sp), THREADS * PER_THREAD);
	spool_close(sp);

	sp = open_spool(dir, 256 * MB, 0);
	assert_int_equal(spool_message_count(sp), THREADS * PER_THREAD);
	spool_close(sp);
	scratch_remove(dir);
}

/* Each loop waits for every answer before its next message (one session each): batches
 * can hold at most one message per loop, and still share fsyncs. */
static void
test_group_commit_one_by_one(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 256 * MB, 0);
	struct spool_stats st;

	run_workers(sp, true, &st);
	assert_int_equal(st.messages, THREADS * PER_THREAD);
	assert_true(st.commits < st.messages);
	spool_close(sp);
	scratch_remove(dir);
}

/* ---- a full spool ---- */

#define FULL_TRIES 64
#define FULL_BODY  (40 * 1024)

struct stored {
	char id[FULL_TRIES][SPOOL_ID_LEN + 1];
	bool ok[FULL_TRIES];
	unsigned nok;
};

static void
check_stored(const char *dir, const struct stored *s)
{
	struct spool *sp = open_spool(dir, 1 * MB, 0);
	struct evbuffer *out = evbuffer_new();
	unsigned char body[FULL_BODY];

	fill_body(body, sizeof(body), 11);
	assert_int_equal(spool_message_count(sp), s->nok);
	for (int i = 0; i < FULL_TRIES; i++) {
		struct envelope env;

		if (!s->ok[i]) {
			assert_int_equal(spool_envelope_get(sp, s->id[i], &env), -1);
			continue;
		}
		assert_int_equal(spool_envelope_get(sp, s->id[i], &env), 0);
		envelope_clear(&env);
		assert_int_equal(spool_body_read(sp, s->id[i], out), 0);
		assert_int_equal(evbuffer_get_length(out), FULL_BODY);
		assert_memory_equal(evbuffer_pullup(out, -1), body, FULL_BODY);
		evbuffer_drain(out, FULL_BODY);
	}
	evbuffer_free(out);
	spool_close(sp);
}

/* Messages one at a time into a 1 MiB spool: the first ones fit, then SPOOL_FULL, and
 * every one acknowledged is intact after a reopen. */
static void
test_full_sequential(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 1 * MB, 0);
	unsigned char body[FULL_BODY];
	struct stored s = {0};
	struct envelope env;
	struct spool_stats st;
	struct loop l;
	unsigned nfull = 0;

	loop_init(&l);
	sample_envelope(&env, 1);
	fill_body(body, sizeof(body), 11);
	for (int i = 0; i < FULL_TRIES; i++) {
		enum spool_status status =
		    commit_message(sp, &l, &env, body, sizeof(body), s.id[i]);

		assert_true(status == SPOOL_OK || status == SPOOL_FULL);
		s.ok[i] = status == SPOOL_OK;
		s.nok += s.ok[i];
		nfull += status == SPOOL_FULL;
	}
	assert_true(s.nok > 5);
	assert_true(nfull > 0);
	spool_stats(sp, &st);
	assert_true(st.full >= nfull); /* requests: a chunk and its commit may both be refused */
	assert_int_equal(st.messages, s.nok);
	spool_close(sp);
	/* The refused messages left no chunks behind. */
	assert_int_equal(raw_count(dir, "body"), s.nok);
	check_stored(dir, &s);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* All at once: the batch transaction overflows, the writer retries request by request,
 * and those that fit are still stored. A streamed message whose chunk did not fit fails
 * at commit too. */
static void
test_full_batch(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 1 * MB, 0);
	unsigned char body[FULL_BODY];
	struct answer answers[FULL_TRIES], wa, ca;
	struct evbuffer *buf = evbuffer_new();
	struct spool_message *msg;
	struct stored s = {0};
	struct envelope env;
	struct loop l;

	loop_init(&l);
	sample_envelope(&env, 1);
	fill_body(body, sizeof(body), 11);
	for (int i = 0; i < FULL_TRIES; i++) {
		msg = spool_message_begin(sp, l.mbox);
		strlcpy_s(s.id[i], spool_message_id(msg), sizeof(s.id[i]));
		answers[i] = (struct answer){&l, SPOOL_IO_ERROR, false};
		evbuffer_add(buf, body, sizeof(body));
		spool_message_commit(msg, &env, buf, answer_cb, &answers[i]);
	}
	loop_until(&l, FULL_TRIES);
	for (int i = 0; i < FULL_TRIES; i++) {
		assert_true(answers[i].status == SPOOL_OK || answers[i].status == SPOOL_FULL);
		s.ok[i] = answers[i].status == SPOOL_OK;
		s.nok += s.ok[i];
	}
	assert_true(s.nok > 5);
	assert_true(s.nok < FULL_TRIES);

	/* Streaming into the full spool: the chunk is refused, and so is the commit. */
	msg = spool_message_begin(sp, l.mbox);
	evbuffer_add(buf, body, sizeof(body));
	evbuffer_add(buf, body, sizeof(body));
	wa = (struct answer){&l, SPOOL_OK, false};
	ca = (struct answer){&l, SPOOL_OK, false};
	spool_message_write(msg, buf, answer_cb, &wa);
	spool_message_commit(msg, &env, buf, answer_cb, &ca);
	loop_until(&l, FULL_TRIES + 2);
	assert_int_equal(wa.status, SPOOL_FULL);
	assert_int_equal(ca.status, SPOOL_FULL);

	spool_close(sp);
	check_stored(dir, &s);
	loop_free(&l);
	evbuffer_free(buf);
	envelope_clear(&env);
	scratch_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_group_commit),
	    cmocka_unit_test(test_group_commit_one_by_one),
	    cmocka_unit_test(test_full_sequential),
	    cmocka_unit_test(test_full_batch),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
