/* test_access_verify.c - password checks through the asynchronous verifier, answered on a test
 * event loop: every hash method, wrong passwords, unknown users, cancellation, shutdown with
 * requests pending, a full queue; and new hashes from access_hash_password(). */
#include <pthread.h>
#include <time.h>

#include "access/internal.h"
#include "test_access_util.h"

struct answer {
	struct loop *loop;
	bool called;
	unsigned calls;
	enum access_verify_result result;
	pthread_t thread;
};

static void
answer_cb(void *arg, enum access_verify_result result)
{
	struct answer *a = arg;

	a->called = true;
	a->calls++;
	a->result = result;
	a->thread = pthread_self();
	a->loop->answers++;
}

static struct access_verify *
start(struct access_verifier *v, const struct access_users *t, struct loop *l, const char *name,
      const char *password, struct answer *a)
{
	*a = (struct answer){.loop = l};
	return access_verify(v, t, name, password, strlen(password), l->mbox, answer_cb, a);
}

/* Checks and waits for the answer. */
static enum access_verify_result
verify_wait(struct access_verifier *v, const struct access_users *t, struct loop *l,
            const char *name, const char *password)
{
	struct answer a;
	unsigned target = l->answers + 1;

	start(v, t, l, name, password, &a);
	/* Never from inside the call. */
	assert_false(a.called);
	loop_until(l, target);
	assert_int_equal(a.calls, 1);
	assert_true(pthread_equal(a.thread, pthread_self()));
	return a.result;
}

static struct access_users *
sample_table(void)
{
	char err[512];
	struct access_users *t = load_text("ann:" HASH_Y "\n"
	                                   "bob:" HASH_2B "\n"
	                                   "carl:" HASH_2Y "\n"
	                                   "dora:" HASH_6 "\n"
	                                   "eve:" HASH_6_ROUNDS "\n",
	                                   err, sizeof(err));

	if (t == NULL)
		fail_msg("%s", err);
	return t;
}

static void
test_every_method(void **state)
{
	static const char *const names[] = {"ann", "bob", "carl", "dora", "eve"};
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(2);
	struct loop l;

	loop_init(&l);
	for (size_t i = 0; i < nitems(names); i++) {
		assert_int_equal(verify_wait(v, t, &l, names[i], PASSWORD), ACCESS_VERIFY_OK);
		assert_int_equal(verify_wait(v, t, &l, names[i], "correct horse batter"),
		                 ACCESS_VERIFY_BAD);
		assert_int_equal(verify_wait(v, t, &l, names[i], PASSWORD " "), ACCESS_VERIFY_BAD);
		assert_int_equal(verify_wait(v, t, &l, names[i], ""), ACCESS_VERIFY_BAD);
	}
	assert_int_equal(verify_wait(v, t, &l, "zed", PASSWORD), ACCESS_VERIFY_NO_USER);
	assert_int_equal(verify_wait(v, t, &l, "Ann", PASSWORD), ACCESS_VERIFY_NO_USER);
	assert_int_equal(verify_wait(v, t, &l, "", PASSWORD), ACCESS_VERIFY_NO_USER);
	access_verifier_free(v);
	access_users_unref(t);
	loop_free(&l);
}

/* Many requests at once from one loop, on several threads: each answered once, correctly. */
static void
test_concurrent(void **state)
{
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(4);
	struct answer a[24];
	struct loop l;

	loop_init(&l);
	for (size_t i = 0; i < nitems(a); i++)
		start(v, t, &l,
		      i % 3 == 0   ? "carl"
		      : i % 3 == 1 ? "dora"
		                   : "nobody",
		      i % 2 == 0 ? PASSWORD : "wrong", &a[i]);
	loop_until(&l, nitems(a));
	for (size_t i = 0; i < nitems(a); i++) {
		enum access_verify_result want = i % 3 == 2   ? ACCESS_VERIFY_NO_USER
		                                 : i % 2 == 0 ? ACCESS_VERIFY_OK
		                                              : ACCESS_VERIFY_BAD;

		assert_int_equal(a[i].calls, 1);
		assert_int_equal(a[i].result, want);
	}
	access_verifier_free(v);
	access_users_unref(t);
	loop_free(&l);
}

static void
test_odd_passwords(void **state)
{
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(1);
	char *huge = xmalloc(ACCESS_PASSWORD_MAX + 2);
	struct answer a;
	struct loop l;

	loop_init(&l);
	/* Too long for crypt: bad, answered later all the same. */
	memset(huge, 'p', ACCESS_PASSWORD_MAX + 1);
	huge[ACCESS_PASSWORD_MAX + 1] = '\0';
	start(v, t, &l, "ann", huge, &a);
	assert_false(a.called);
	loop_until(&l, 1);
	assert_int_equal(a.result, ACCESS_VERIFY_BAD);
	/* A NUL inside would cut the password short: "correct horse battery\0x" is not it. */
	a = (struct answer){.loop = &l};
	access_verify(v, t, "ann", PASSWORD "\0x", sizeof(PASSWORD "\0x") - 1, l.mbox, answer_cb,
	              &a);
	loop_until(&l, 2);
	assert_int_equal(a.result, ACCESS_VERIFY_BAD);
	/* Not NUL-terminated: only password_len counts. */
	a = (struct answer){.loop = &l};
	access_verify(v, t, "ann", PASSWORD "xyz", strlen(PASSWORD), l.mbox, answer_cb, &a);
	loop_until(&l, 3);
	assert_int_equal(a.result, ACCESS_VERIFY_OK);
	/* No name at all. */
	a = (struct answer){.loop = &l};
	access_verify(v, t, NULL, PASSWORD, strlen(PASSWORD), l.mbox, answer_cb, &a);
	loop_until(&l, 4);
	assert_int_equal(a.result, ACCESS_VERIFY_NO_USER);
	free(huge);
	access_verifier_free(v);
	access_users_unref(t);
	loop_free(&l);
}

/* The table need only live during the call: a reload may drop it while the check runs. */
static void
test_table_dropped_during_check(void **state)
{
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(1);
	struct answer a;
	struct loop l;

	loop_init(&l);
	start(v, t, &l, "ann", PASSWORD, &a);
	access_users_unref(t);
	loop_until(&l, 1);
	assert_int_equal(a.result, ACCESS_VERIFY_OK);
	access_verifier_free(v);
	loop_free(&l);
}

/* A session that closes cancels: its callback never runs, whether the request is queued,
 * being checked, or already answered and waiting in the mailbox. */
static void
test_cancel(void **state)
{
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(1); /* one thread: FIFO */
	struct answer a[6];
	struct access_verify *rq[6];
	struct loop l;
	struct timespec pause = {.tv_nsec = 400 * 1000 * 1000};

	loop_init(&l);
	for (size_t i = 0; i < 4; i++)
		rq[i] = start(v, t, &l, "ann", PASSWORD, &a[i]);
	access_verify_cancel(rq[0]); /* probably being checked */
	access_verify_cancel(rq[1]); /* queued */
	access_verify_cancel(rq[2]);
	loop_until(&l, 1);
	assert_true(a[3].called);
	assert_int_equal(a[3].result, ACCESS_VERIFY_OK);

	/* Answered while the loop was not running, cancelled before the loop delivered it. */
	rq[4] = start(v, t, &l, "ann", PASSWORD, &a[4]);
	nanosleep(&pause, NULL);
	access_verify_cancel(rq[4]);
	start(v, t, &l, "bob", PASSWORD, &a[5]);
	loop_until(&l, 2);
	assert_true(a[5].called);
	for (size_t i = 0; i < 5; i++)
		if (i != 3)
			assert_false(a[i].called);
	access_verify_cancel(NULL);
	access_verifier_free(v);
	access_users_unref(t);
	loop_free(&l);
}

/* Cancelling from inside the request's own callback changes nothing. */
static void
cancel_self_cb(void *arg, enum access_verify_result result)
{
	struct access_verify **rq = arg;

	access_verify_cancel(*rq);
	*rq = NULL;
}

static void
test_cancel_inside_callback(void **state)
{
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(1);
	struct access_verify *rq;
	struct loop l;

	loop_init(&l);
	rq = access_verify(v, t, "dora", PASSWORD, strlen(PASSWORD), l.mbox, cancel_self_cb, &rq);
	while (rq != NULL)
		event_base_loop(l.base, EVLOOP_ONCE);
	access_verifier_free(v);
	access_users_unref(t);
	loop_free(&l);
}

/* Shutdown: what is queued is answered TEMPFAIL, exactly once each. */
static void
test_free_with_pending(void **state)
{
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(1);
	struct answer a[5];
	struct loop l;
	unsigned tempfail = 0;

	loop_init(&l);
	for (size_t i = 0; i < nitems(a); i++)
		start(v, t, &l, "ann", PASSWORD, &a[i]);
	access_verifier_free(v);
	loop_until(&l, nitems(a));
	for (size_t i = 0; i < nitems(a); i++) {
		assert_int_equal(a[i].calls, 1);
		if (a[i].result == ACCESS_VERIFY_TEMPFAIL)
			tempfail++;
		else
			assert_int_equal(a[i].result, ACCESS_VERIFY_OK);
	}
	assert_in_range(tempfail, nitems(a) - 1, nitems(a));
	access_users_unref(t);
	loop_free(&l);
}

/* More requests than the queue holds: the excess is answered TEMPFAIL at once, no crypt. */
static void
test_queue_full(void **state)
{
	enum { N = ACCESS_VERIFY_QUEUE_PER_THREAD + 4 };
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(1);
	struct answer *a = xcalloc(N + 1, sizeof(*a));
	struct access_verify **rq = xcalloc(N, sizeof(*rq));
	struct loop l;
	unsigned refused = 0;

	loop_init(&l);
	for (size_t i = 0; i < N; i++)
		rq[i] = start(v, t, &l, "ann", PASSWORD, &a[i]);
	/* One is being checked or still queued, 64 are queued, the rest overflowed. */
	for (size_t i = 0; i < 5; i++)
		event_base_loop(l.base, EVLOOP_NONBLOCK);
	loop_until(&l, 3);
	for (size_t i = 0; i < N; i++) {
		if (a[i].called && i == 0 && a[i].result == ACCESS_VERIFY_OK)
			continue; /* a slow machine let the loop wait for the first check */
		if (a[i].called) {
			assert_int_equal(a[i].result, ACCESS_VERIFY_TEMPFAIL);
			assert_true(i >= ACCESS_VERIFY_QUEUE_PER_THREAD);
			refused++;
		} else {
			access_verify_cancel(rq[i]);
		}
	}
	assert_in_range(refused, 3, 4);
	/* Once the cancelled ones are gone, the queue takes requests again. */
	start(v, t, &l, "dora", PASSWORD, &a[N]);
	loop_until(&l, l.answers + 1);
	assert_int_equal(a[N].result, ACCESS_VERIFY_OK);
	access_verifier_free(v);
	access_users_unref(t);
	loop_free(&l);
	free(a);
	free(rq);
}

static double
seconds(void)
{
	return (double)time_mono_us() / 1e6;
}

/* An unknown user costs a crypt of the table's most common cost: same ballpark as a known
 * user's wrong password, not the microseconds a lookup miss would take. */
static void
test_unknown_user_costs_a_crypt(void **state)
{
	struct access_users *t = sample_table();
	struct access_verifier *v = access_verifier_new(1);
	double t0, known = 1e9, unknown = 1e9;
	struct loop l;

	loop_init(&l);
	verify_wait(v, t, &l, "ann", "warm-up");
	for (int i = 0; i < 3; i++) {
		t0 = seconds();
		verify_wait(v, t, &l, "ann", "wrong");
		known = known < seconds() - t0 ? known : seconds() - t0;
		t0 = seconds();
		verify_wait(v, t, &l, "nobody", "wrong");
		unknown = unknown < seconds() - t0 ? unknown : seconds() - t0;
	}
	assert_true(unknown > known / 3);
	access_verifier_free(v);
	access_users_unref(t);
	loop_free(&l);
}

/* The dummy follows the table: three bcrypt users outweigh one yescrypt user. */
static void
test_dummy_is_most_common_cost(void **state)
{
	char err[512];
	struct access_users *t = load_text("ann:" HASH_Y "\n"
	                                   "bob:" HASH_2Y "\n"
	                                   "carl:" HASH_2Y "\n"
	                                   "dora:" HASH_2Y "\n",
	                                   err, sizeof(err));

	assert_non_null(t);
	assert_string_equal(access_users_dummy(t), HASH_2Y);
	access_users_unref(t);
	t = load_text("ann:" HASH_Y "\n", err, sizeof(err));
	assert_string_equal(access_users_dummy(t), HASH_Y);
	access_users_unref(t);
	/* No users: still a yescrypt of default cost. */
	t = load_text("", err, sizeof(err));
	assert_memory_equal(access_users_dummy(t), "$y$j9T$", 7);
	access_users_unref(t);
}

/* ---- hashing ---- */

static void
test_hash_round_trip(void **state)
{
	static const struct {
		enum access_hash_method m;
		const char *prefix;
	} cases[] = {
	    {ACCESS_HASH_YESCRYPT, "$y$j9T$"},
	    {ACCESS_HASH_BCRYPT, "$2b$10$"},
	    {ACCESS_HASH_SHA512, "$6$rounds=400000$"},
	};
	struct access_verifier *v = access_verifier_new(2);
	struct loop l;

	loop_init(&l);
	for (size_t i = 0; i < nitems(cases); i++) {
		char h1[ACCESS_HASH_MAX + 1], h2[ACCESS_HASH_MAX + 1], err[256] = "", text[1024];
		struct access_users *t;

		assert_int_equal(access_hash_password("s3cret pass", cases[i].m, h1, sizeof(h1),
		                                      err, sizeof(err)),
		                 0);
		assert_int_equal(access_hash_password("s3cret pass", cases[i].m, h2, sizeof(h2),
		                                      err, sizeof(err)),
		                 0);
		assert_memory_equal(h1, cases[i].prefix, strlen(cases[i].prefix));
		assert_string_not_equal(h1, h2); /* fresh salt each time */
		/* What it makes, the users file takes. */
		snprintf(text, sizeof(text), "ann:%s\nbob:%s\n", h1, h2);
		t = load_text(text, err, sizeof(err));
		if (t == NULL)
			fail_msg("%s: %s", h1, err);
		assert_int_equal(verify_wait(v, t, &l, "ann", "s3cret pass"), ACCESS_VERIFY_OK);
		assert_int_equal(verify_wait(v, t, &l, "bob", "s3cret pass"), ACCESS_VERIFY_OK);
		assert_int_equal(verify_wait(v, t, &l, "ann", "s3cret Pass"), ACCESS_VERIFY_BAD);
		access_users_unref(t);
	}
	access_verifier_free(v);
	loop_free(&l);
}

static void
test_hash_refusals(void **state)
{
	char out[ACCESS_HASH_MAX + 1], small[20], err[256];
	char *longpw = xmalloc(ACCESS_PASSWORD_MAX + 2);
	enum access_hash_method m;

	assert_int_equal(
	    access_hash_password("", ACCESS_HASH_YESCRYPT, out, sizeof(out), err, sizeof(err)), -1);
	assert_string_equal(err, "empty password");
	memset(longpw, 'p', ACCESS_PASSWORD_MAX + 1);
	longpw[ACCESS_PASSWORD_MAX + 1] = '\0';
	assert_int_equal(
	    access_hash_password(longpw, ACCESS_HASH_YESCRYPT, out, sizeof(out), err, sizeof(err)),
	    -1);
	assert_string_equal(err, "password longer than 511 octets");
	longpw[ACCESS_PASSWORD_MAX] = '\0';
	assert_int_equal(
	    access_hash_password(longpw, ACCESS_HASH_SHA512, out, sizeof(out), err, sizeof(err)),
	    0);
	longpw[ACCESS_BCRYPT_PASSWORD_MAX + 1] = '\0';
	assert_int_equal(
	    access_hash_password(longpw, ACCESS_HASH_BCRYPT, out, sizeof(out), err, sizeof(err)),
	    -1);
	assert_string_equal(err, "bcrypt uses only the first 72 octets of a password; use "
	                         "yescrypt for longer ones");
	longpw[ACCESS_BCRYPT_PASSWORD_MAX] = '\0';
	assert_int_equal(
	    access_hash_password(longpw, ACCESS_HASH_BCRYPT, out, sizeof(out), err, sizeof(err)),
	    0);
	assert_int_equal(access_hash_password("pw", ACCESS_HASH_YESCRYPT, small, sizeof(small), err,
	                                      sizeof(err)),
	                 -1);
	assert_string_equal(err, "yescrypt: hash longer than the buffer (20 octets)");
	free(longpw);

	assert_int_equal(access_hash_method_parse("yescrypt", &m), 0);
	assert_int_equal(m, ACCESS_HASH_YESCRYPT);
	assert_int_equal(access_hash_method_parse("bcrypt", &m), 0);
	assert_int_equal(m, ACCESS_HASH_BCRYPT);
	assert_int_equal(access_hash_method_parse("sha512-crypt", &m), 0);
	assert_int_equal(m, ACCESS_HASH_SHA512);
	assert_int_equal(access_hash_method_parse("md5", &m), -1);
	assert_string_equal(access_hash_method_name(ACCESS_HASH_BCRYPT), "bcrypt");
	assert_string_equal(access_verify_result_name(ACCESS_VERIFY_NO_USER), "no-user");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_method),
	    cmocka_unit_test(test_concurrent),
	    cmocka_unit_test(test_odd_passwords),
	    cmocka_unit_test(test_table_dropped_during_check),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_cancel_inside_callback),
	    cmocka_unit_test(test_free_with_pending),
	    cmocka_unit_test(test_queue_full),
	    cmocka_unit_test(test_unknown_user_costs_a_crypt),
	    cmocka_unit_test(test_dummy_is_most_common_cost),
	    cmocka_unit_test(test_hash_round_trip),
	    cmocka_unit_test(test_hash_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
