/* test_suppress_async.c - the suppression list beside a running server: asynchronous adds
 * from event loops answered on their mailboxes and group-committed; lookups on many
 * threads while the writer writes; a kill -9 in the middle of an import. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include <lmdb.h>

#include "test_suppress_util.h"

/* ---- answers ---- */

struct answer {
	struct loop *loop;
	bool called;
	enum suppress_status status;
	uint64_t n;
	unsigned order; /* the loop's answer count when this one arrived */
	pthread_t thread;
};

static void
answer_cb(void *arg, enum suppress_status status, uint64_t n)
{
	struct answer *a = arg;

	assert_false(a->called);
	a->called = true;
	a->status = status;
	a->n = n;
	a->order = a->loop->answers++;
	a->thread = pthread_self();
}

static struct suppress_record
record(const char *address)
{
	return (struct suppress_record){
	    .address = address, .reason = SUPPRESS_HARD_BOUNCE, .source = "550 5.1.1"};
}

/* Adds, removes and refusals, answered on the loop's thread, in request order. */
static void
test_answers_on_the_loop(void **state)
{
	char *dir = scratch_dir();
	struct fake_clock clk = {T0};
	struct suppress *list = open_list(dir, &clk);
	struct suppress_record a = record("a@example.com"), bad = record("no-domain"),
	                       b = record("b@example.com");
	struct answer ans[6];
	struct loop l;

	loop_init(&l);
	for (size_t i = 0; i < nitems(ans); i++)
		ans[i] = (struct answer){.loop = &l};
	suppress_add_async(list, &a, l.mbox, answer_cb, &ans[0]);
	suppress_add_async(list, &bad, l.mbox, answer_cb, &ans[1]);
	suppress_add_async(list, &b, l.mbox, answer_cb, &ans[2]);
	suppress_remove_async(list, NULL, "B@EXAMPLE.COM", l.mbox, answer_cb, &ans[3]);
	suppress_remove_async(list, NULL, "nobody@example.com", l.mbox, answer_cb, &ans[4]);
	suppress_remove_async(list, NULL, "", l.mbox, answer_cb, &ans[5]);
	/* Fire and forget: no callback, no mailbox. */
	{
		struct suppress_record c = record("c@example.com");

		suppress_add_async(list, &c, NULL, NULL, NULL);
	}
	loop_until(&l, nitems(ans));
	for (unsigned i = 0; i < nitems(ans); i++) {
		assert_true(ans[i].called);
		assert_int_equal(ans[i].order, i);
		assert_true(pthread_equal(ans[i].thread, pthread_self()));
	}
	assert_int_equal(ans[0].status, SUPPRESS_OK);
	assert_int_equal(ans[0].n, 1);
	assert_int_equal(ans[1].status, SUPPRESS_INVALID);
	assert_int_equal(ans[2].status, SUPPRESS_OK);
	assert_int_equal(ans[3].status, SUPPRESS_OK);
	assert_int_equal(ans[3].n, 1);
	assert_int_equal(ans[4].status, SUPPRESS_NOT_FOUND);
	assert_int_equal(ans[4].n, 0);
	assert_int_equal(ans[5].status, SUPPRESS_INVALID);
	/* Answered means committed: visible to every reader. */
	assert_int_equal(suppress_check(list, NULL, "a@example.com", NULL), 1);
	assert_int_equal(suppress_check(list, NULL, "b@example.com", NULL), 0);
	suppress_close(list); /* the fire-and-forget add is done by now */
	list = open_list(dir, &clk);
	assert_int_equal(suppress_check(list, NULL, "c@example.com", NULL), 1);
	assert_int_equal(suppress_count(list), 2);
	suppress_close(list);
	loop_free(&l);
	scratch_remove(dir);
}

/* Records queued together share one transaction: one fsync for a burst of bounces. */
static void
test_many_in_one_commit(void **state)
{
	enum { N = 200 };
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_record recs[N];
	struct answer ans[N];
	void *args[N];
	char addr[N][32];
	struct suppress_stats before, after;
	struct loop l;

	loop_init(&l);
	for (int i = 0; i < N; i++) {
		snprintf(addr[i], sizeof(addr[i]), "user%d@example.com", i);
		recs[i] = record(addr[i]);
		recs[i].tenant = i % 2 ? "acme" : NULL;
		ans[i] = (struct answer){.loop = &l};
		args[i] = &ans[i];
	}
	suppress_stats(list, &before);
	suppress_add_async_many(list, recs, N, l.mbox, answer_cb, args);
	loop_until(&l, N);
	suppress_stats(list, &after);
	assert_int_equal(after.commits - before.commits, 1);
	assert_int_equal(after.largest_batch, N);
	assert_int_equal(after.added - before.added, N);
	assert_int_equal(after.requests - before.requests, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ans[i].status, SUPPRESS_OK);
		assert_int_equal(ans[i].order, (unsigned)i);
		assert_int_equal(suppress_check(list, i % 2 ? "acme" : NULL, addr[i], NULL), 1);
	}
	suppress_close(list);
	loop_free(&l);
	scratch_remove(dir);
}

/* ---- batching behind another process's writer ----
 *
 * A child process holds LMDB's write lock (as a CLI import would); the writer thread takes
 * the first request and waits for the lock; the next 99, queued one by one meanwhile, go
 * in one transaction once it is free. */

static void
write_byte(int fd, char c)
{
	if (write(fd, &c, 1) != 1)
		_exit(9);
}

/* A byte from the other process, or 0 after 30 s: a test that goes wrong fails, it
 * never hangs (other builds run these tests too). */
static char
read_byte(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c = 0;

	if (poll(&p, 1, 30 * 1000) != 1)
		return 0;
	return read(fd, &c, 1) == 1 ? c : 0;
}

static void
hold_write_lock(const char *dir, int in, int out)
{
	MDB_env *env;
	MDB_txn *txn;

	if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 2) != 0 ||
	    mdb_env_open(env, dir, 0, 0600) != 0 || mdb_txn_begin(env, NULL, 0, &txn) != 0)
		_exit(3);
	write_byte(out, 'L');
	read_byte(in); /* released (or the parent died) */
	mdb_txn_abort(txn);
	mdb_env_close(env);
	_exit(0);
}

static void
test_batched_while_locked(void **state)
{
	enum { N = 100 };
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_record recs[N];
	struct answer ans[N];
	char addr[N][32];
	struct suppress_stats st;
	int to_child[2], from_child[2], status;
	struct loop l;
	pid_t pid;

	/* Created, then closed: the fork happens with no thread of ours running. */
	suppress_close(list);
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(from_child), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		hold_write_lock(dir, to_child[0], from_child[1]);
	assert_int_equal(read_byte(from_child[0]), 'L');

	list = open_list(dir, NULL);
	loop_init(&l);
	for (int i = 0; i < N; i++) {
		snprintf(addr[i], sizeof(addr[i]), "b%03d@example.com", i);
		recs[i] = record(addr[i]);
		ans[i] = (struct answer){.loop = &l};
	}
	suppress_add_async(list, &recs[0], l.mbox, answer_cb, &ans[0]);
	usleep(100 * 1000); /* the writer has taken it and waits for the lock */
	for (int i = 1; i < N; i++)
		suppress_add_async(list, &recs[i], l.mbox, answer_cb, &ans[i]);
	usleep(50 * 1000);
	assert_int_equal(l.answers, 0);
	write_byte(to_child[1], 'R');
	loop_until(&l, N);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

	suppress_stats(list, &st);
	assert_true(st.commits <= 2);
	assert_true(st.largest_batch >= N - 1);
	for (int i = 0; i < N; i++) {
		assert_int_equal(ans[i].status, SUPPRESS_OK);
		assert_int_equal(ans[i].order, (unsigned)i);
	}
	assert_int_equal(suppress_count(list), N);
	suppress_close(list);
	loop_free(&l);
	close(to_child[0]);
	close(to_child[1]);
	close(from_child[0]);
	close(from_child[1]);
	scratch_remove(dir);
}

/* The sweep through the writer; and requests queued at close are still answered. */
static void
test_sweep_async_and_close(void **state)
{
	enum { N = 50 };
	char *dir = scratch_dir();
	struct fake_clock clk = {T0};
	struct suppress *list = open_list(dir, &clk);
	struct answer ans[N + 1];
	char addr[N][32];
	struct loop l;

	loop_init(&l);
	for (int i = 0; i < N; i++) {
		struct suppress_record rec = record(addr[i]);

		snprintf(addr[i], sizeof(addr[i]), "s%02d@example.com", i);
		rec.expires_us = i < 20 ? T0 + HOUR : 0;
		ans[i] = (struct answer){.loop = &l};
		suppress_add_async(list, &rec, l.mbox, answer_cb, &ans[i]);
	}
	ans[N] = (struct answer){.loop = &l};
	suppress_sweep_async(list, T0 + 2 * HOUR, l.mbox, answer_cb, &ans[N]);
	/* Close at once: every request is answered before the writer stops. */
	suppress_close(list);
	loop_until(&l, N + 1);
	for (int i = 0; i < N; i++)
		assert_int_equal(ans[i].status, SUPPRESS_OK);
	assert_int_equal(ans[N].status, SUPPRESS_OK);
	assert_int_equal(ans[N].n, 20);
	assert_int_equal(ans[N].order, N);

	list = open_list(dir, &clk);
	assert_int_equal(suppress_count(list), N - 20);
	suppress_close(list);
	loop_free(&l);
	scratch_remove(dir);
}

static void
test_readonly_refuses(void **state)
{
	char *dir = scratch_dir();
	struct suppress *list = open_list(dir, NULL);
	struct suppress_record rec = record("a@example.com");
	struct answer a[2];
	struct loop l;

	suppress_close(list);
	list = open_list_opt(dir, NULL, SUPPRESS_READONLY, 0);
	loop_init(&l);
	a[0] = a[1] = (struct answer){.loop = &l};
	suppress_add_async(list, &rec, l.mbox, answer_cb, &a[0]);
	suppress_sweep_async(list, T0, l.mbox, answer_cb, &a[1]);
	loop_until(&l, 2);
	assert_int_equal(a[0].status, SUPPRESS_IO_ERROR);
	assert_int_equal(a[1].status, SUPPRESS_IO_ERROR);
	assert_int_equal(suppress_count(list), 0);
	suppress_close(list);
	loop_free(&l);
	scratch_remove(dir);
}

/* ---- lookups on many threads while the writer writes ---- */

#define READERS 4
#define BASE    500
#define ADDED   2000
#define BURST   50

struct shared {
	struct suppress *list;
	atomic_uint committed; /* new entries answered so far: all visible */
	atomic_bool writing;
};

struct reader {
	struct shared *sh;
	unsigned id;
	uint64_t lookups, wrong, errors;
};

static void *
reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t seed = 88172645463325252ULL + r->id;
	char a[64];

	while (atomic_load(&r->sh->writing)) {
		unsigned done = atomic_load(&r->sh->committed);
		int got;

		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		switch (seed % 3) {
		case 0: /* there all along */
			snprintf(a, sizeof(a), "base%llu@example.com",
			         (unsigned long long)(seed >> 8) % BASE);
			got = suppress_check(r->sh->list, "t1", a, NULL);
			r->wrong += got == 0;
			break;
		case 1: /* added before we looked: must be seen */
			if (done == 0)
				continue;
			snprintf(a, sizeof(a), "new%llu@example.com",
			         (unsigned long long)(seed >> 8) % done);
			got = suppress_check(r->sh->list, "t1", a, NULL);
			r->wrong += got == 0;
			break;
		default: /* never added */
			snprintf(a, sizeof(a), "absent%llu@example.com",
			         (unsigned long long)(seed >> 8) % 1000);
			got = suppress_check(r->sh->list, "t1", a, NULL);
			r->wrong += got == 1;
			break;
		}
		r->errors += got < 0;
		r->lookups++;
	}
	return NULL; /* the thread's kept read transaction is ended as it exits */
}

static void
test_readers_while_writing(void **state)
{
	char *dir = scratch_dir();
	struct shared sh = {.list = open_list(dir, NULL)};
	struct reader readers[READERS];
	pthread_t tid[READERS];
	char addr[BURST][32];
	struct answer ans[BURST];
	struct loop l;

	for (int i = 0; i < BASE; i++) {
		char a[32];

		snprintf(a, sizeof(a), "base%d@example.com", i);
		add(sh.list, NULL, a, SUPPRESS_MANUAL, 0);
	}
	atomic_store(&sh.writing, true);
	for (unsigned i = 0; i < READERS; i++) {
		readers[i] = (struct reader){.sh = &sh, .id = i};
		assert_int_equal(pthread_create(&tid[i], NULL, reader_main, &readers[i]), 0);
	}
	/* The writer: an event loop adding bursts, as the delivery engine would. */
	loop_init(&l);
	for (int done = 0; done < ADDED; done += BURST) {
		unsigned target = l.answers + BURST;

		for (int i = 0; i < BURST; i++) {
			struct suppress_record rec = record(addr[i]);

			snprintf(addr[i], sizeof(addr[i]), "new%d@example.com", done + i);
			rec.tenant = "t1";
			ans[i] = (struct answer){.loop = &l};
			suppress_add_async(sh.list, &rec, l.mbox, answer_cb, &ans[i]);
		}
		loop_until(&l, target);
		for (int i = 0; i < BURST; i++)
			assert_int_equal(ans[i].status, SUPPRESS_OK);
		atomic_store(&sh.committed, (unsigned)(done + BURST));
	}
	atomic_store(&sh.writing, false);
	for (unsigned i = 0; i < READERS; i++) {
		assert_int_equal(pthread_join(tid[i], NULL), 0);
		assert_true(readers[i].lookups > 0);
		assert_int_equal(readers[i].wrong, 0);
		assert_int_equal(readers[i].errors, 0);
	}
	assert_int_equal(suppress_count(sh.list), BASE + ADDED);
	/* This thread's reader, and none left by the threads gone: close ends them all. */
	assert_int_equal(suppress_check(sh.list, "t1", "new0@example.com", NULL), 1);
	suppress_close(sh.list);
	loop_free(&l);
	scratch_remove(dir);
}

/* ---- kill -9 during an import ---- */

#define CRASH_LINES 300000
#define CRASH_BATCH 500

static int
count_entry(void *arg, const struct suppress_entry *e)
{
	(*(uint64_t *)arg)++;
	return 0;
}

static void
test_kill9_mid_import(void **state)
{
	char *dir = scratch_dir();
	char file[600];
	struct suppress *list;
	struct suppress_entry e;
	uint64_t n = 0, deadline;
	int status;
	FILE *f;
	pid_t pid;

	snprintf(file, sizeof(file), "%s.txt", dir);
	f = fopen(file, "w");
	assert_non_null(f);
	for (unsigned i = 0; i < CRASH_LINES; i++)
		fprintf(f, "c%06u@example.com,hard-bounce,line %u\n", i, i);
	fclose(f);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct suppress_options opt = {.import_batch = CRASH_BATCH};
		char err[512];
		struct suppress *l = suppress_open(dir, &opt, 0, err, sizeof(err));
		FILE *in = fopen(file, "r");

		if (l == NULL || in == NULL)
			_exit(3);
		suppress_import(l, in, NULL, NULL, NULL, NULL, err, sizeof(err));
		_exit(0);
	}
	/* Watch it from here (another process, read-only) and kill it once a few batches
	 * are in. */
	deadline = time_mono_us() + 60 * USEC;
	while (n < 10 * CRASH_BATCH) {
		char err[512];
		struct suppress *ro = suppress_open(dir, NULL, SUPPRESS_READONLY, err, sizeof(err));

		if (ro != NULL) {
			n = suppress_count(ro);
			suppress_close(ro);
		}
		if (time_mono_us() > deadline) {
			kill(pid, SIGKILL);
			fail_msg("the import did not get going");
		}
		usleep(2000);
	}
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

	/* Consistent: whole batches, the first lines of the file, every record readable. */
	list = open_list(dir, NULL);
	n = suppress_count(list);
	assert_true(n >= 10 * CRASH_BATCH);
	assert_true(n < CRASH_LINES); /* it was killed in the middle */
	assert_int_equal(n % CRASH_BATCH, 0);
	{
		char a[64];

		snprintf(a, sizeof(a), "c%06llu@example.com", (unsigned long long)n - 1);
		assert_int_equal(suppress_check(list, NULL, a, &e), 1);
		snprintf(a, sizeof(a), "line %llu", (unsigned long long)n - 1);
		assert_string_equal(e.source, a);
		snprintf(a, sizeof(a), "c%06llu@example.com", (unsigned long long)n);
		assert_int_equal(suppress_check(list, NULL, a, NULL), 0);
	}
	{
		uint64_t seen = 0;

		assert_int_equal(suppress_foreach(list, NULL, 0, count_entry, &seen), 0);
		assert_int_equal(seen, n);
	}
	/* The dead writer's lock is recovered: writing works. */
	add(list, NULL, "after@example.com", SUPPRESS_MANUAL, 0);
	assert_int_equal(suppress_count(list), n + 1);
	suppress_close(list);
	unlink(file);
	scratch_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_answers_on_the_loop),
	    cmocka_unit_test(test_many_in_one_commit),
	    cmocka_unit_test(test_batched_while_locked),
	    cmocka_unit_test(test_sweep_async_and_close),
	    cmocka_unit_test(test_readonly_refuses),
	    cmocka_unit_test(test_readers_while_writing),
	    cmocka_unit_test(test_kill9_mid_import),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
