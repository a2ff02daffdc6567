/* test_spool_store.c - messages in and out of the spool: commit, reopen, stream, abort,
 * recovery after a crash, update and remove, and a read-only reader in another process. */
#include <sys/wait.h>

#include "test_spool_util.h"

#define MB (1024 * 1024)

struct found {
	char ids[8][SPOOL_ID_LEN + 1];
	struct envelope first;
	size_t n;
};

static int
collect(void *arg, const struct envelope *env)
{
	struct found *f = arg;

	if (f->n == 0)
		envelope_copy(&f->first, env);
	if (f->n < 8)
		strlcpy_s(f->ids[f->n], env->id, sizeof(f->ids[0]));
	f->n++;
	return 0;
}

static void
test_ids(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 16 * MB, 0);
	struct loop l;
	char prev[SPOOL_ID_LEN + 1] = "";

	loop_init(&l);
	for (int i = 0; i < 1000; i++) {
		struct spool_message *msg = spool_message_begin(sp, l.mbox);
		const char *id = spool_message_id(msg);

		assert_int_equal(strlen(id), SPOOL_ID_LEN);
		assert_int_equal(strspn(id, "0123456789abcdef"), SPOOL_ID_LEN);
		/* Unique and in order, even when many fall in one microsecond. */
		assert_true(strcmp(prev, id) < 0);
		strlcpy_s(prev, id, sizeof(prev));
		spool_message_abort(msg); /* nothing written: nothing queued */
	}
	spool_close(sp);
	loop_free(&l);
	scratch_remove(dir);
}

/* The basic promise: committed, closed, reopened, and everything is still there. */
static void
test_commit_reopen_foreach(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	size_t blen = 600 * 1024; /* more than two chunks' worth in the commit */
	unsigned char *body = xmalloc(blen);
	struct envelope env, got;
	struct evbuffer *out;
	struct found f = {0};
	struct loop l;
	char id[SPOOL_ID_LEN + 1], id2[SPOOL_ID_LEN + 1];

	loop_init(&l);
	fill_body(body, blen, 1);
	sample_envelope(&env, 3);
	assert_int_equal(commit_message(sp, &l, &env, body, blen, id), SPOOL_OK);
	/* The spool filled in the caller's id and size. */
	assert_string_equal(env.id, id);
	assert_int_equal(env.size, blen);
	assert_int_equal(commit_message(sp, &l, &env, "x\r\n", 3, id2), SPOOL_OK);
	assert_int_equal(spool_message_count(sp), 2);
	spool_close(sp);

	sp = open_spool(dir, 64 * MB, 0);
	assert_int_equal(spool_message_count(sp), 2);
	assert_int_equal(spool_foreach(sp, collect, &f), 0);
	assert_int_equal(f.n, 2);
	assert_string_equal(f.ids[0], id);
	assert_string_equal(f.ids[1], id2);
	env.size = blen;
	strlcpy_s(env.id, id, sizeof(env.id));
	assert_envelope_equal(&env, &f.first);
	envelope_clear(&f.first);

	assert_int_equal(spool_envelope_get(sp, id, &got), 0);
	assert_envelope_equal(&env, &got);
	envelope_clear(&got);
	assert_int_equal(spool_envelope_get(sp, "ffffffffffffffffffffffff", &got), -1);
	assert_int_equal(spool_envelope_get(sp, "not an id", &got), -1);

	out = evbuffer_new();
	evbuffer_add(out, "prefix", 6); /* appended to, not replaced */
	assert_int_equal(spool_body_read(sp, id, out), 0);
	assert_int_equal(evbuffer_get_length(out), 6 + blen);
	assert_memory_equal(evbuffer_pullup(out, -1) + 6, body, blen);
	evbuffer_drain(out, evbuffer_get_length(out));
	assert_int_equal(spool_body_read(sp, "ffffffffffffffffffffffff", out), -1);
	assert_int_equal(evbuffer_get_length(out), 0);
	evbuffer_free(out);

	spool_close(sp);
	loop_free(&l);
	envelope_clear(&env);
	free(body);
	scratch_remove(dir);
}

/* A 5 MB body arrives in pieces; the session hands over a chunk whenever it has one and
 * waits for it (backpressure), then commits the rest. */
static void
test_stream_5mb(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	size_t blen = 5 * MB + 12345;
	unsigned char *body = xmalloc(blen);
	struct evbuffer *in = evbuffer_new(), *out = evbuffer_new();
	struct spool_message *msg;
	struct envelope env;
	struct spool_stats st;
	struct answer a;
	struct loop l;
	char id[SPOOL_ID_LEN + 1];
	unsigned writes = 0;

	loop_init(&l);
	fill_body(body, blen, 5);
	sample_envelope(&env, 1);
	msg = spool_message_begin(sp, l.mbox);
	strlcpy_s(id, spool_message_id(msg), sizeof(id));
	for (size_t off = 0; off < blen; off += 100000) {
		size_t n = blen - off < 100000 ? blen - off : 100000;

		evbuffer_add(in, body + off, n);
		if (evbuffer_get_length(in) >= SPOOL_CHUNK_SIZE) {
			a = (struct answer){&l, SPOOL_IO_ERROR, false};
			spool_message_write(msg, in, answer_cb, &a);
			assert_true(evbuffer_get_length(in) < SPOOL_CHUNK_SIZE);
			loop_until(&l, ++writes);
			assert_int_equal(a.status, SPOOL_OK);
		}
	}
	a = (struct answer){&l, SPOOL_IO_ERROR, false};
	spool_message_commit(msg, &env, in, answer_cb, &a);
	loop_until(&l, ++writes);
	assert_int_equal(a.status, SPOOL_OK);
	assert_int_equal(env.size, blen);

	assert_int_equal(spool_body_read(sp, id, out), 0);
	assert_int_equal(evbuffer_get_length(out), blen);
	assert_memory_equal(evbuffer_pullup(out, -1), body, blen);
	spool_stats(sp, &st);
	assert_int_equal(st.chunks, (blen + SPOOL_CHUNK_SIZE - 1) / SPOOL_CHUNK_SIZE);
	assert_int_equal(st.bytes, blen);
	assert_int_equal(st.messages, 1);
	spool_close(sp);
	assert_int_equal(raw_count(dir, "body"), (blen + SPOOL_CHUNK_SIZE - 1) / SPOOL_CHUNK_SIZE);

	loop_free(&l);
	evbuffer_free(in);
	evbuffer_free(out);
	envelope_clear(&env);
	free(body);
	scratch_remove(dir);
}

static void
must_not_be_called(void *arg, enum spool_status status)
{
	fail_msg("callback of an aborted message called");
}

/* Abort removes the written chunks; no callback of the message runs after abort, even one
 * already queued or on its way. */
static void
test_abort(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	unsigned char *body = xmalloc(3 * SPOOL_CHUNK_SIZE);
	struct evbuffer *in = evbuffer_new();
	struct spool_message *msg;
	struct envelope env;
	struct answer a = {0};
	struct loop l;
	char id[SPOOL_ID_LEN + 1];

	loop_init(&l);
	fill_body(body, 3 * SPOOL_CHUNK_SIZE, 9);
	sample_envelope(&env, 1);

	/* Two chunks stored and answered, a third in flight, then abort. */
	msg = spool_message_begin(sp, l.mbox);
	evbuffer_add(in, body, 3 * SPOOL_CHUNK_SIZE);
	a.loop = &l;
	spool_message_write(msg, in, answer_cb, &a);
	spool_message_write(msg, in, answer_cb, &a);
	loop_until(&l, 2);
	assert_int_equal(a.status, SPOOL_OK);
	spool_message_write(msg, in, must_not_be_called, NULL);
	spool_message_abort(msg);
	/* A later message on the same mailbox: its answer comes after anything the aborted
	 * one could still have had delivered. */
	assert_int_equal(commit_message(sp, &l, &env, "hello\r\n", 7, id), SPOOL_OK);
	assert_int_equal(l.answers, 3);

	/* Abort with nothing written. */
	msg = spool_message_begin(sp, l.mbox);
	spool_message_abort(msg);
	spool_close(sp);

	/* Only the committed message's one chunk is left. */
	assert_int_equal(raw_count(dir, "body"), 1);
	assert_int_equal(raw_count(dir, "msg"), 1);
	loop_free(&l);
	evbuffer_free(in);
	envelope_clear(&env);
	free(body);
	scratch_remove(dir);
}

/* The client goes away after the final dot: abort after commit detaches; the message is
 * stored anyway and no callback runs. */
static void
test_abort_after_commit_detaches(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	struct evbuffer *in = evbuffer_new();
	struct spool_message *msg;
	struct envelope env;
	struct loop l;
	char id[SPOOL_ID_LEN + 1], id2[SPOOL_ID_LEN + 1];

	loop_init(&l);
	sample_envelope(&env, 1);
	msg = spool_message_begin(sp, l.mbox);
	strlcpy_s(id, spool_message_id(msg), sizeof(id));
	evbuffer_add(in, "body\r\n", 6);
	spool_message_commit(msg, &env, in, must_not_be_called, NULL);
	spool_message_abort(msg);
	assert_int_equal(commit_message(sp, &l, &env, "x", 1, id2), SPOOL_OK);
	assert_int_equal(l.answers, 1);
	assert_int_equal(spool_message_count(sp), 2);
	spool_close(sp);
	loop_free(&l);
	evbuffer_free(in);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* A crash mid-transfer: a child process writes chunks of a message it never commits (and
 * commits another), then dies without closing. The next open removes the orphans. */
static void
test_orphans_removed_at_open(void **state)
{
	char *dir = scratch_dir();
	unsigned char *body = xmalloc(2 * SPOOL_CHUNK_SIZE + 10);
	char id[SPOOL_ID_LEN + 1];
	struct envelope env;
	struct evbuffer *out;
	struct spool *sp;
	struct found f = {0};
	int status;
	pid_t pid;

	fill_body(body, 2 * SPOOL_CHUNK_SIZE + 10, 3);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct loop l;
		struct answer a;
		struct evbuffer *in = evbuffer_new();

		sp = open_spool(dir, 64 * MB, 0);
		loop_init(&l);
		sample_envelope(&env, 1);
		a = (struct answer){&l, SPOOL_IO_ERROR, false};
		for (int m = 0; m < 3; m++) {
			struct spool_message *msg = spool_message_begin(sp, l.mbox);

			evbuffer_add(in, body, 2 * SPOOL_CHUNK_SIZE + 10);
			for (int c = 0; c < 3; c++)
				spool_message_write(msg, in, answer_cb, &a);
			loop_until(&l, l.answers + 3);
			if (a.status != SPOOL_OK)
				_exit(2);
			if (m == 1 && commit_message(sp, &l, &env, "kept", 4, id) != SPOOL_OK)
				_exit(3);
		}
		_exit(0); /* as if killed: nothing closed, nothing aborted */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* 3 messages x 3 chunks, plus the committed one's own. */
	assert_int_equal(raw_count(dir, "body"), 10);

	sp = open_spool(dir, 64 * MB, 0);
	assert_int_equal(spool_message_count(sp), 1);
	assert_int_equal(spool_foreach(sp, collect, &f), 0);
	assert_int_equal(f.n, 1);
	envelope_clear(&f.first);
	out = evbuffer_new();
	assert_int_equal(spool_body_read(sp, f.ids[0], out), 0);
	assert_int_equal(evbuffer_get_length(out), 4);
	evbuffer_free(out);
	spool_close(sp);
	assert_int_equal(raw_count(dir, "body"), 1);
	free(body);
	scratch_remove(dir);
}

static void
test_update_and_remove(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	struct envelope env, got;
	struct evbuffer *out = evbuffer_new();
	struct loop l;
	char id[SPOOL_ID_LEN + 1];

	loop_init(&l);
	sample_envelope(&env, 2);
	assert_int_equal(commit_message(sp, &l, &env, "body", 4, id), SPOOL_OK);

	assert_int_equal(spool_envelope_get(sp, id, &got), 0);
	got.rcpt[0].state = RCPT_DELIVERED;
	got.rcpt[1].attempts = 3;
	got.rcpt[1].last_reply = xstrdup("421 4.7.0 [TS01] try again later");
	assert_int_equal(spool_envelope_update(sp, &got), 0);
	envelope_clear(&got);
	spool_close(sp);

	sp = open_spool(dir, 64 * MB, 0);
	assert_int_equal(spool_envelope_get(sp, id, &got), 0);
	assert_int_equal(got.rcpt[0].state, RCPT_DELIVERED);
	assert_int_equal(got.rcpt[1].attempts, 3);
	assert_string_equal(got.rcpt[1].last_reply, "421 4.7.0 [TS01] try again later");

	assert_int_equal(spool_remove(sp, id), 0);
	assert_int_equal(spool_message_count(sp), 0);
	assert_int_equal(spool_remove(sp, id), -1);
	/* Removed stays removed: an update does not bring it back. */
	assert_int_equal(spool_envelope_update(sp, &got), -1);
	envelope_clear(&got);
	assert_int_equal(spool_envelope_get(sp, id, &got), -1);
	assert_int_equal(spool_body_read(sp, id, out), -1);
	assert_int_equal(spool_remove(sp, "bogus"), -1);
	spool_close(sp);
	assert_int_equal(raw_count(dir, "msg"), 0);
	assert_int_equal(raw_count(dir, "body"), 0);

	evbuffer_free(out);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* `drover queue list` while the daemon runs: another process opens the spool read-only
 * and reads what the daemon has committed (LMDB forbids two opens in one process). */
static void
test_readonly_while_open(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	struct envelope env;
	struct loop l;
	char id[SPOOL_ID_LEN + 1];
	int status;
	pid_t pid;

	loop_init(&l);
	sample_envelope(&env, 1);
	for (int i = 0; i < 5; i++)
		assert_int_equal(commit_message(sp, &l, &env, "hello\r\n", 7, id), SPOOL_OK);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char err[256];
		struct spool *ro = spool_open(dir, NULL, SPOOL_READONLY, err, sizeof(err));
		struct evbuffer *out = evbuffer_new();
		struct found f = {0};
		struct envelope e2;

		if (ro == NULL)
			_exit(10);
		if (spool_message_count(ro) != 5 || spool_foreach(ro, collect, &f) != 0 || f.n != 5)
			_exit(11);
		if (spool_body_read(ro, id, out) != 0 || evbuffer_get_length(out) != 7)
			_exit(12);
		/* It only reads. */
		if (spool_remove(ro, id) != -1 || spool_envelope_get(ro, id, &e2) != 0 ||
		    spool_envelope_update(ro, &e2) != -1)
			_exit(13);
		spool_close(ro);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	/* The daemon carries on. */
	assert_int_equal(commit_message(sp, &l, &env, "more", 4, id), SPOOL_OK);
	assert_int_equal(spool_message_count(sp), 6);
	spool_close(sp);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

struct walk {
	char last[SPOOL_ID_LEN + 1];
	unsigned n, stop_at;
};

static int
walk(void *arg, const struct envelope *env)
{
	struct walk *w = arg;

	assert_true(strcmp(w->last, env->id) < 0);
	strlcpy_s(w->last, env->id, sizeof(w->last));
	return ++w->n == w->stop_at ? 7 : 0;
}

/* More messages than one read snapshot covers: every one seen once, in id order; and a
 * walk stopped early returns what the callback returned. */
static void
test_foreach_many(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	struct evbuffer *buf = evbuffer_new();
	struct answer a;
	struct envelope env;
	struct walk w = {"", 0, 0};
	struct loop l;
	const unsigned n = 2500;

	loop_init(&l);
	sample_envelope(&env, 1);
	a = (struct answer){&l, SPOOL_OK, false};
	for (unsigned i = 0; i < n; i++) {
		evbuffer_add(buf, "x", 1);
		spool_message_commit(spool_message_begin(sp, l.mbox), &env, buf, answer_cb, &a);
	}
	loop_until(&l, n);
	assert_int_equal(spool_message_count(sp), n);
	assert_int_equal(spool_foreach(sp, walk, &w), 0);
	assert_int_equal(w.n, n);
	w = (struct walk){"", 0, 1500};
	assert_int_equal(spool_foreach(sp, walk, &w), 7);
	assert_int_equal(w.n, 1500);
	spool_close(sp);
	loop_free(&l);
	evbuffer_free(buf);
	envelope_clear(&env);
	scratch_remove(dir);
}

static void
test_open_errors(void **state)
{
	struct spool_options opt = {.max_size = 0, .batch_max = 16};
	char *dir = scratch_dir();
	char *missing = xasprintf("%s/nope", dir);
	char err[256];

	assert_null(spool_open(dir, &opt, 0, err, sizeof(err)));
	assert_non_null(strstr(err, "max_size"));
	assert_null(spool_open(missing, NULL, SPOOL_READONLY, err, sizeof(err)));
	assert_non_null(strstr(err, "nope"));
	free(missing);
	scratch_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_commit_reopen_foreach),
	    cmocka_unit_test(test_stream_5mb),
	    cmocka_unit_test(test_abort),
	    cmocka_unit_test(test_abort_after_commit_detaches),
	    cmocka_unit_test(test_orphans_removed_at_open),
	    cmocka_unit_test(test_update_and_remove),
	    cmocka_unit_test(test_readonly_while_open),
	    cmocka_unit_test(test_foreach_many),
	    cmocka_unit_test(test_open_errors),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
