/* test_spool_claim.c - spool_rcpt_claim(): a recipient flag set at most once, decided by the
 * writer's read-modify-write. It is what keeps a recipient to one delay notice, across
 * concurrent deliveries of one message and across restarts. */
#include "test_spool_util.h"

#define MB (1024 * 1024)

struct claimed {
	struct loop *loop;
	enum spool_status status;
	bool called;
	bool got[8];
	bool null;
	size_t n;
};

static void
claim_cb(void *arg, enum spool_status status, const bool *claimed, size_t n)
{
	struct claimed *c = arg;

	c->status = status;
	c->called = true;
	c->null = claimed == NULL;
	c->n = n;
	for (size_t i = 0; claimed != NULL && i < n && i < nitems(c->got); i++)
		c->got[i] = claimed[i];
	c->loop->answers++;
}

struct changed {
	struct loop *loop;
	enum spool_status status;
	bool called;
};

static void
change_cb(void *arg, enum spool_status status, bool removed)
{
	struct changed *c = arg;

	c->status = status;
	c->called = true;
	c->loop->answers++;
}

static void
claim_wait(struct spool *sp, struct loop *l, const char *id, uint8_t flags, const size_t *idx,
           size_t n, struct claimed *c)
{
	unsigned target = l->answers + 1;

	*c = (struct claimed){.loop = l};
	spool_rcpt_claim(sp, id, flags, idx, n, l->mbox, claim_cb, c);
	loop_until(l, target);
	assert_true(c->called);
}

static void
change_wait(struct spool *sp, struct loop *l, const char *id, const struct spool_rcpt_change *ch,
            size_t n)
{
	struct changed c = {.loop = l};
	unsigned target = l->answers + 1;

	spool_rcpt_change(sp, id, ch, n, l->mbox, change_cb, &c);
	loop_until(l, target);
	assert_true(c.called);
	assert_int_equal(c.status, SPOOL_OK);
}

/* Four recipients; sample_envelope() has already flagged 1 and 3. */
static void
store_four(struct spool *sp, struct loop *l, char id[SPOOL_ID_LEN + 1])
{
	struct envelope env;

	sample_envelope(&env, 4);
	assert_int_equal(commit_message(sp, l, &env, "body\r\n", 6, id), SPOOL_OK);
	envelope_clear(&env);
}

/* Only recipients still pending and not yet flagged are claimed; nothing else changes. */
static void
test_claim_pending_unflagged_only(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 16 * MB, 0);
	const size_t all[] = {0, 1, 2, 3};
	struct spool_rcpt_change done = {
	    .index = 2, .state = RCPT_DELIVERED, .attempts = 1, .last_reply = "250 ok"};
	char id[SPOOL_ID_LEN + 1];
	struct envelope before, after;
	struct claimed c;
	struct loop l;

	loop_init(&l);
	store_four(sp, &l, id);
	change_wait(sp, &l, id, &done, 1);
	assert_int_equal(spool_envelope_get(sp, id, &before), 0);

	claim_wait(sp, &l, id, RCPT_DELAY_NOTIFIED, all, 4, &c);
	assert_int_equal(c.status, SPOOL_OK);
	assert_int_equal(c.n, 4);
	assert_true(c.got[0]);  /* pending, not flagged */
	assert_false(c.got[1]); /* flagged already */
	assert_false(c.got[2]); /* delivered */
	assert_false(c.got[3]); /* flagged already */

	assert_int_equal(spool_envelope_get(sp, id, &after), 0);
	before.rcpt[0].flags |= RCPT_DELAY_NOTIFIED;
	assert_envelope_equal(&after, &before);
	envelope_clear(&after);

	/* A second claim of the same recipient gets nothing. */
	claim_wait(sp, &l, id, RCPT_DELAY_NOTIFIED, all, 1, &c);
	assert_int_equal(c.status, SPOOL_OK);
	assert_false(c.got[0]);

	envelope_clear(&before);
	spool_close(sp);
	loop_free(&l);
	scratch_remove(dir);
}

/* Two claims queued at once (two deliveries of one message deferred together): the writer
 * applies them in turn, and the recipient goes to exactly one. A change afterwards (the next
 * deferral) keeps the flag. */
static void
test_racing_claims_one_wins(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 16 * MB, 0);
	const size_t first[] = {0, 2}, second[] = {2, 0};
	struct spool_rcpt_change retry = {
	    .index = 0, .state = RCPT_PENDING, .attempts = 3, .next_attempt_us = 42};
	char id[SPOOL_ID_LEN + 1];
	struct claimed a = {.loop = NULL}, b = {.loop = NULL};
	struct envelope env;
	struct loop l;
	unsigned target;

	loop_init(&l);
	store_four(sp, &l, id);
	a.loop = b.loop = &l;
	target = l.answers + 2;
	spool_rcpt_claim(sp, id, RCPT_DELAY_NOTIFIED, first, 2, l.mbox, claim_cb, &a);
	spool_rcpt_claim(sp, id, RCPT_DELAY_NOTIFIED, second, 2, l.mbox, claim_cb, &b);
	loop_until(&l, target);
	assert_int_equal(a.status, SPOOL_OK);
	assert_int_equal(b.status, SPOOL_OK);
	assert_true(a.got[0] && a.got[1]);
	assert_false(b.got[0] || b.got[1]);

	change_wait(sp, &l, id, &retry, 1);
	assert_int_equal(spool_envelope_get(sp, id, &env), 0);
	assert_int_equal(env.rcpt[0].flags, RCPT_DELAY_NOTIFIED);
	assert_int_equal(env.rcpt[0].attempts, 3);
	assert_int_equal(env.rcpt[0].next_attempt_us, 42);
	assert_int_equal(env.rcpt[2].flags, RCPT_DELAY_NOTIFIED);
	envelope_clear(&env);

	spool_close(sp);
	loop_free(&l);
	scratch_remove(dir);
}

/* The flag is on disk: after a restart the recipient cannot be claimed again. */
static void
test_claim_survives_restart(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 16 * MB, 0);
	const size_t zero[] = {0};
	char id[SPOOL_ID_LEN + 1];
	struct claimed c;
	struct loop l;

	loop_init(&l);
	store_four(sp, &l, id);
	claim_wait(sp, &l, id, RCPT_DELAY_NOTIFIED, zero, 1, &c);
	assert_true(c.got[0]);
	spool_close(sp);

	sp = open_spool(dir, 16 * MB, 0);
	claim_wait(sp, &l, id, RCPT_DELAY_NOTIFIED, zero, 1, &c);
	assert_int_equal(c.status, SPOOL_OK);
	assert_false(c.got[0]);
	spool_close(sp);
	loop_free(&l);
	scratch_remove(dir);
}

/* All or nothing: a bad index, no such message, no flags. */
static void
test_claim_refused(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 16 * MB, 0);
	const size_t bad[] = {0, 4};
	const size_t zero[] = {0};
	char id[SPOOL_ID_LEN + 1];
	struct envelope env;
	struct claimed c;
	struct loop l;

	loop_init(&l);
	store_four(sp, &l, id);
	claim_wait(sp, &l, id, RCPT_DELAY_NOTIFIED, bad, 2, &c);
	assert_int_equal(c.status, SPOOL_IO_ERROR);
	assert_true(c.null);
	assert_int_equal(spool_envelope_get(sp, id, &env), 0);
	assert_int_equal(env.rcpt[0].flags, 0); /* recipient 0 was not claimed either */
	envelope_clear(&env);

	claim_wait(sp, &l, "0123456789abcdef01234567", RCPT_DELAY_NOTIFIED, zero, 1, &c);
	assert_int_equal(c.status, SPOOL_IO_ERROR);
	claim_wait(sp, &l, "not an id", RCPT_DELAY_NOTIFIED, zero, 1, &c);
	assert_int_equal(c.status, SPOOL_IO_ERROR);
	claim_wait(sp, &l, id, 0, zero, 1, &c);
	assert_int_equal(c.status, SPOOL_IO_ERROR);

	/* Nothing to claim is a success with nothing claimed. */
	claim_wait(sp, &l, id, RCPT_DELAY_NOTIFIED, NULL, 0, &c);
	assert_int_equal(c.status, SPOOL_OK);
	assert_int_equal(c.n, 0);
	spool_close(sp);
	loop_free(&l);
	scratch_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_claim_pending_unflagged_only),
	    cmocka_unit_test(test_racing_claims_one_wins),
	    cmocka_unit_test(test_claim_survives_restart),
	    cmocka_unit_test(test_claim_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
