/* test_spool_util.h - what the spool's tests share: a scratch directory, an event loop with
 * a mailbox to receive the spool's answers, a sample envelope, and a direct look into the
 * LMDB files (with the spool closed: LMDB allows one open per process). */
#ifndef DROVER_TEST_SPOOL_UTIL_H
#define DROVER_TEST_SPOOL_UTIL_H

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <lmdb.h>

#include "core/core.h"
#include "spool/spool.h"

/* Scratch spools live under the working directory (ctest's: the build tree), on a real
 * disk, so that fsync costs what it costs. */
static inline char *
scratch_dir(void)
{
	char *tmpl = xstrdup("./spool-test-XXXXXX");

	if (mkdtemp(tmpl) == NULL)
		fail_msg("mkdtemp: %m");
	return tmpl;
}

static inline int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline void
scratch_remove(char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

static inline struct spool *
open_spool(const char *dir, uint64_t max_size, int flags)
{
	struct spool_options opt = {.max_size = max_size, .batch_max = 256};
	char err[256] = "";
	struct spool *sp = spool_open(dir, &opt, flags, err, sizeof(err));

	if (sp == NULL)
		fail_msg("spool_open: %s", err);
	return sp;
}

/* An event loop and its mailbox, and the answers it has received. */
struct loop {
	struct event_base *base;
	struct mailbox *mbox;
	unsigned answers;
};

static inline void
loop_init(struct loop *l)
{
	l->base = event_base_new();
	assert_non_null(l->base);
	l->mbox = mailbox_new(l->base);
	l->answers = 0;
}

static inline void
loop_free(struct loop *l)
{
	mailbox_free(l->mbox);
	event_base_free(l->base);
}

/* Runs the loop until it has received n answers in all. */
static inline void
loop_until(struct loop *l, unsigned n)
{
	while (l->answers < n)
		event_base_loop(l->base, EVLOOP_ONCE);
}

/* One answer: the status, and the loop to count it on. */
struct answer {
	struct loop *loop;
	enum spool_status status;
	bool called;
};

static inline void
answer_cb(void *arg, enum spool_status status)
{
	struct answer *a = arg;

	a->status = status;
	a->called = true;
	a->loop->answers++;
}

/* A fully populated envelope: every string set, so round trips are meaningful. */
static inline void
sample_envelope(struct envelope *env, size_t nrcpt)
{
	memset(env, 0, sizeof(*env));
	env->sender = xstrdup("sender@example.org");
	env->dsn_ret = 1;
	env->envid = xstrdup("QQ314159");
	env->body_type = 1;
	env->smtputf8 = false;
	env->received_us = 1767225600123456ULL;
	env->client_ip = xstrdup("192.0.2.7");
	env->helo = xstrdup("client.example.net");
	env->listener = xstrdup("submission");
	env->protocol = xstrdup("ESMTPSA");
	env->auth_user = NULL;
	env->nrcpt = nrcpt;
	env->rcpt = xcalloc(nrcpt ? nrcpt : 1, sizeof(*env->rcpt));
	for (size_t i = 0; i < nrcpt; i++) {
		env->rcpt[i].address = xasprintf("rcpt%zu@example.com", i);
		env->rcpt[i].orcpt = i % 2 ? xasprintf("rfc822;rcpt%zu@example.com", i) : NULL;
		env->rcpt[i].notify = (uint8_t)(i & 0xf);
		env->rcpt[i].state = 0;
		env->rcpt[i].flags = i % 2 ? RCPT_DELAY_NOTIFIED : 0;
		env->rcpt[i].attempts = (uint16_t)i;
		env->rcpt[i].next_attempt_us = i * 1000;
		env->rcpt[i].last_reply = NULL;
	}
}

static inline void
assert_str_or_null_equal(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static inline void
assert_envelope_equal(const struct envelope *a, const struct envelope *b)
{
	assert_string_equal(a->id, b->id);
	assert_str_or_null_equal(a->sender, b->sender);
	assert_int_equal(a->dsn_ret, b->dsn_ret);
	assert_str_or_null_equal(a->envid, b->envid);
	assert_int_equal(a->body_type, b->body_type);
	assert_int_equal(a->smtputf8, b->smtputf8);
	assert_int_equal(a->received_us, b->received_us);
	assert_str_or_null_equal(a->client_ip, b->client_ip);
	assert_str_or_null_equal(a->helo, b->helo);
	assert_str_or_null_equal(a->listener, b->listener);
	assert_str_or_null_equal(a->protocol, b->protocol);
	assert_str_or_null_equal(a->auth_user, b->auth_user);
	assert_str_or_null_equal(a->headers, b->headers);
	assert_str_or_null_equal(a->stream, b->stream);
	assert_str_or_null_equal(a->tenant, b->tenant);
	assert_str_or_null_equal(a->campaign, b->campaign);
	assert_str_or_null_equal(a->pool, b->pool);
	assert_int_equal(a->size, b->size);
	assert_int_equal(a->nrcpt, b->nrcpt);
	for (size_t i = 0; i < a->nrcpt; i++) {
		assert_str_or_null_equal(a->rcpt[i].address, b->rcpt[i].address);
		assert_str_or_null_equal(a->rcpt[i].orcpt, b->rcpt[i].orcpt);
		assert_int_equal(a->rcpt[i].notify, b->rcpt[i].notify);
		assert_int_equal(a->rcpt[i].state, b->rcpt[i].state);
		assert_int_equal(a->rcpt[i].flags, b->rcpt[i].flags);
		assert_int_equal(a->rcpt[i].attempts, b->rcpt[i].attempts);
		assert_int_equal(a->rcpt[i].next_attempt_us, b->rcpt[i].next_attempt_us);
		assert_str_or_null_equal(a->rcpt[i].last_reply, b->rcpt[i].last_reply);
	}
}

/* Deterministic body octets: a test can regenerate what it stored. */
static inline void
fill_body(unsigned char *p, size_t n, unsigned seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/* Begins and commits a message with the given body in one go; waits for the answer. */
static inline enum spool_status
commit_message(struct spool *sp, struct loop *l, struct envelope *env, const void *body, size_t len,
               char id[SPOOL_ID_LEN + 1])
{
	struct spool_message *msg = spool_message_begin(sp, l->mbox);
	struct evbuffer *buf = evbuffer_new();
	struct answer a = {l, SPOOL_IO_ERROR, false};
	unsigned target = l->answers + 1;

	evbuffer_add(buf, body, len);
	strlcpy_s(id, spool_message_id(msg), SPOOL_ID_LEN + 1);
	spool_message_commit(msg, env, buf, answer_cb, &a);
	assert_int_equal(evbuffer_get_length(buf), 0);
	loop_until(l, target);
	assert_true(a.called);
	evbuffer_free(buf);
	return a.status;
}

/* Entries in one of the spool's databases, read straight from LMDB (spool closed). */
static inline size_t
raw_count(const char *dir, const char *db)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;

	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 4);
	assert_int_equal(mdb_env_open(env, dir, MDB_RDONLY, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	assert_int_equal(mdb_stat(txn, dbi, &st), 0);
	mdb_txn_abort(txn);
	mdb_env_close(env);
	return st.ms_entries;
}

#endif
