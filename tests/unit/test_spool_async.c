/* test_spool_async.c - the delivery loop's side of the spool: asynchronous loads on the
 * reader thread, recipient changes and deletes through the writer, answered on mailboxes. */
#include <pthread.h>
#include <sys/wait.h>

#include "test_spool_util.h"

#define MB (1024 * 1024)

/* ---- answers ---- */

struct loaded {
	struct loop *loop;
	unsigned order; /* the loop's answer count when this one arrived */
	bool called;
	enum spool_status status;
	struct envelope *env;
	struct evbuffer *body;
};

static void
load_cb(void *arg, enum spool_status status, struct envelope *env, struct evbuffer *body)
{
	struct loaded *r = arg;

	assert_false(r->called);
	r->called = true;
	r->status = status;
	r->env = env;
	r->body = body;
	r->order = r->loop->answers++;
}

static void
loaded_clear(struct loaded *r)
{
	if (r->env != NULL) {
		envelope_clear(r->env);
		free(r->env);
	}
	if (r->body != NULL)
		evbuffer_free(r->body);
	r->env = NULL;
	r->body = NULL;
}

struct changed {
	struct loop *loop;
	unsigned order;
	bool called;
	enum spool_status status;
	bool removed;
};

static void
change_cb(void *arg, enum spool_status status, bool removed)
{
	struct changed *c = arg;

	assert_false(c->called);
	c->called = true;
	c->status = status;
	c->removed = removed;
	c->order = c->loop->answers++;
}

/* Loads and waits: the answer is in *r (loaded_clear() it). */
static void
load_wait(struct spool *sp, struct loop *l, const char *id, bool with_body, struct loaded *r)
{
	unsigned target = l->answers + 1;

	*r = (struct loaded){.loop = l};
	spool_load(sp, id, with_body, l->mbox, load_cb, r);
	loop_until(l, target);
	assert_true(r->called);
	if (r->status != SPOOL_OK) {
		assert_null(r->env);
		assert_null(r->body);
	} else {
		assert_non_null(r->env);
		assert_true(with_body ? r->body != NULL : r->body == NULL);
	}
}

static enum spool_status
change_wait(struct spool *sp, struct loop *l, const char *id, const struct spool_rcpt_change *ch,
            size_t n, bool *removed)
{
	struct changed c = {.loop = l};
	unsigned target = l->answers + 1;

	spool_rcpt_change(sp, id, ch, n, l->mbox, change_cb, &c);
	loop_until(l, target);
	assert_true(c.called);
	if (c.status != SPOOL_OK)
		assert_false(c.removed);
	if (removed != NULL)
		*removed = c.removed;
	return c.status;
}

static enum spool_status
delete_wait(struct spool *sp, struct loop *l, const char *id)
{
	struct answer a = {l, SPOOL_OK, false};
	unsigned target = l->answers + 1;

	spool_delete(sp, id, l->mbox, answer_cb, &a);
	loop_until(l, target);
	assert_true(a.called);
	return a.status;
}

/* The envelope as stored now (sync read), for comparisons. */
static void
stored(struct spool *sp, const char *id, struct envelope *env)
{
	assert_int_equal(spool_envelope_get(sp, id, env), 0);
}

/* ---- loads ---- */

/* With and without the body: exactly what was committed. */
static void
test_load(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	size_t len = 2 * SPOOL_CHUNK_SIZE + 123;
	unsigned char *body = xmalloc(len);
	char id[SPOOL_ID_LEN + 1], empty[SPOOL_ID_LEN + 1];
	struct envelope env;
	struct loaded r;
	struct loop l;

	loop_init(&l);
	sample_envelope(&env, 3);
	fill_body(body, len, 5);
	assert_int_equal(commit_message(sp, &l, &env, body, len, id), SPOOL_OK);

	load_wait(sp, &l, id, false, &r);
	assert_int_equal(r.status, SPOOL_OK);
	assert_envelope_equal(r.env, &env);
	loaded_clear(&r);

	load_wait(sp, &l, id, true, &r);
	assert_int_equal(r.status, SPOOL_OK);
	assert_envelope_equal(r.env, &env);
	assert_int_equal(evbuffer_get_length(r.body), len);
	assert_memory_equal(evbuffer_pullup(r.body, -1), body, len);
	loaded_clear(&r);

	/* Headers computed at end of data come first, and count in the size. */
	{
		static const char hdr[] = "DKIM-Signature: v=1; d=example.org; b=AA\r\n";
		char hid[SPOOL_ID_LEN + 1];

		env.headers = xstrdup(hdr);
		assert_int_equal(commit_message(sp, &l, &env, body, len, hid), SPOOL_OK);
		load_wait(sp, &l, hid, true, &r);
		assert_int_equal(r.status, SPOOL_OK);
		assert_string_equal(r.env->headers, hdr);
		assert_int_equal(r.env->size, strlen(hdr) + len);
		assert_int_equal(evbuffer_get_length(r.body), strlen(hdr) + len);
		assert_memory_equal(evbuffer_pullup(r.body, -1), hdr, strlen(hdr));
		assert_memory_equal(evbuffer_pullup(r.body, -1) + strlen(hdr), body, len);
		loaded_clear(&r);
		free(env.headers);
		env.headers = NULL;
	}

	/* An empty body is an empty evbuffer, not an error. */
	assert_int_equal(commit_message(sp, &l, &env, "", 0, empty), SPOOL_OK);
	load_wait(sp, &l, empty, true, &r);
	assert_int_equal(r.status, SPOOL_OK);
	assert_int_equal(r.env->size, 0);
	assert_int_equal(evbuffer_get_length(r.body), 0);
	loaded_clear(&r);

	spool_close(sp);
	loop_free(&l);
	envelope_clear(&env);
	free(body);
	scratch_remove(dir);
}

/* A message that is not there (never was, removed, or an id that cannot be one) is
 * SPOOL_IO_ERROR; answers come in request order whatever they are. */
static void
test_load_missing(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	const char *never = "0000000000000000deadbeef";
	char id[SPOOL_ID_LEN + 1], gone[SPOOL_ID_LEN + 1];
	struct loaded r[6];
	struct spool_stats st;
	struct envelope env;
	struct loop l;

	loop_init(&l);
	sample_envelope(&env, 1);
	assert_int_equal(commit_message(sp, &l, &env, "body\r\n", 6, id), SPOOL_OK);
	assert_int_equal(commit_message(sp, &l, &env, "gone\r\n", 6, gone), SPOOL_OK);
	assert_int_equal(spool_remove(sp, gone), 0);

	load_wait(sp, &l, never, false, &r[0]);
	assert_int_equal(r[0].status, SPOOL_IO_ERROR);
	load_wait(sp, &l, gone, true, &r[0]);
	assert_int_equal(r[0].status, SPOOL_IO_ERROR);

	/* All at once, good and bad mixed: in order. */
	{
		const char *ids[6] = {never, id, "bogus", id, NULL, gone};
		unsigned base = l.answers;

		for (int i = 0; i < 6; i++) {
			r[i] = (struct loaded){.loop = &l};
			spool_load(sp, ids[i], i % 2 == 1, l.mbox, load_cb, &r[i]);
		}
		loop_until(&l, base + 6);
		for (int i = 0; i < 6; i++) {
			assert_true(r[i].called);
			assert_int_equal(r[i].order, base + i);
			assert_int_equal(r[i].status, ids[i] == id ? SPOOL_OK : SPOOL_IO_ERROR);
			if (r[i].status == SPOOL_OK) {
				assert_string_equal(r[i].env->id, id);
				assert_int_equal(evbuffer_get_length(r[i].body), 6);
			} else {
				assert_null(r[i].env);
				assert_null(r[i].body);
			}
			loaded_clear(&r[i]);
		}
	}
	spool_stats(sp, &st);
	assert_int_equal(st.loads, 8);
	assert_true(st.io_errors >= 6);

	spool_close(sp);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* ---- recipient changes ---- */

/* Three recipients finished one at a time: the envelope follows, and the message goes
 * (envelope and body) with the last one. */
static void
test_rcpt_change_one_by_one(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	size_t len = SPOOL_CHUNK_SIZE + 1;
	unsigned char *body = xmalloc(len);
	char id[SPOOL_ID_LEN + 1], other[SPOOL_ID_LEN + 1], reply[64];
	struct spool_rcpt_change ch;
	struct envelope env, want, got;
	struct spool_stats st;
	struct loaded r;
	struct loop l;
	bool removed = true;

	loop_init(&l);
	sample_envelope(&env, 3);
	fill_body(body, len, 9);
	assert_int_equal(commit_message(sp, &l, &env, body, len, id), SPOOL_OK);
	envelope_copy(&want, &env);
	assert_int_equal(commit_message(sp, &l, &env, "other", 5, other), SPOOL_OK);
	assert_int_equal(spool_message_count(sp), 2);

	/* A retry: still pending. The reply string is copied at the call. */
	strlcpy_s(reply, "421 4.7.0 try later", sizeof(reply));
	ch = (struct spool_rcpt_change){.index = 2,
	                                .state = RCPT_PENDING,
	                                .attempts = 1,
	                                .next_attempt_us = 1767225700000000ULL,
	                                .last_reply = reply};
	{
		struct changed c = {.loop = &l};
		unsigned target = l.answers + 1;

		spool_rcpt_change(sp, id, &ch, 1, l.mbox, change_cb, &c);
		memset(reply, 'X', sizeof(reply) - 1);
		loop_until(&l, target);
		assert_true(c.called);
		assert_int_equal(c.status, SPOOL_OK);
		assert_false(c.removed);
	}
	want.rcpt[2].attempts = 1;
	want.rcpt[2].next_attempt_us = 1767225700000000ULL;
	want.rcpt[2].last_reply = xstrdup("421 4.7.0 try later");
	stored(sp, id, &got);
	assert_envelope_equal(&got, &want);
	envelope_clear(&got);

	/* Recipient 0 delivered. */
	ch = (struct spool_rcpt_change){
	    .index = 0, .state = RCPT_DELIVERED, .attempts = 1, .last_reply = "250 2.0.0 ok"};
	assert_int_equal(change_wait(sp, &l, id, &ch, 1, &removed), SPOOL_OK);
	assert_false(removed);
	want.rcpt[0].state = RCPT_DELIVERED;
	want.rcpt[0].attempts = 1;
	want.rcpt[0].next_attempt_us = 0;
	want.rcpt[0].last_reply = xstrdup("250 2.0.0 ok");
	load_wait(sp, &l, id, true, &r);
	assert_int_equal(r.status, SPOOL_OK);
	assert_envelope_equal(r.env, &want);
	assert_int_equal(evbuffer_get_length(r.body), len);
	loaded_clear(&r);

	/* Recipient 1 bounced. */
	ch = (struct spool_rcpt_change){
	    .index = 1, .state = RCPT_BOUNCED, .attempts = 2, .last_reply = "550 5.1.1 no"};
	assert_int_equal(change_wait(sp, &l, id, &ch, 1, &removed), SPOOL_OK);
	assert_false(removed);
	assert_int_equal(spool_message_count(sp), 2);

	/* Recipient 2 expires, keeping its last reply (NULL keeps the old one): the last. */
	ch = (struct spool_rcpt_change){.index = 2, .state = RCPT_EXPIRED, .attempts = 2};
	load_wait(sp, &l, id, false, &r);
	assert_int_equal(r.env->rcpt[1].state, RCPT_BOUNCED);
	assert_string_equal(r.env->rcpt[1].last_reply, "550 5.1.1 no");
	assert_int_equal(r.env->rcpt[2].state, RCPT_PENDING);
	loaded_clear(&r);
	assert_int_equal(change_wait(sp, &l, id, &ch, 1, &removed), SPOOL_OK);
	assert_true(removed);
	assert_int_equal(spool_message_count(sp), 1);
	load_wait(sp, &l, id, false, &r);
	assert_int_equal(r.status, SPOOL_IO_ERROR);
	/* Gone: a further change fails. */
	assert_int_equal(change_wait(sp, &l, id, &ch, 1, &removed), SPOOL_IO_ERROR);
	assert_false(removed);

	spool_stats(sp, &st);
	assert_int_equal(st.changes, 4);
	assert_int_equal(st.removals, 1);
	spool_close(sp);
	/* Envelope and body chunks gone; the other message intact. */
	assert_int_equal(raw_count(dir, "msg"), 1);
	assert_int_equal(raw_count(dir, "body"), 1);
	sp = open_spool(dir, 64 * MB, 0);
	assert_int_equal(spool_message_count(sp), 1);
	assert_int_equal(spool_envelope_get(sp, id, &got), -1);
	spool_close(sp);

	loop_free(&l);
	envelope_clear(&env);
	envelope_clear(&want);
	free(body);
	scratch_remove(dir);
}

/* Changes to different recipients of one message queued back to back (in one group
 * commit, whenever the writer lets them meet): each reads what the one before wrote. */
static void
test_rcpt_change_same_batch(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	struct envelope env;
	struct loop l;
	bool shared = false;
	int tries;

	loop_init(&l);
	sample_envelope(&env, 3);
	for (tries = 0; tries < 100 && !shared; tries++) {
		struct spool_rcpt_change a = {
		    .index = 0, .state = RCPT_DELIVERED, .attempts = 1, .last_reply = "250 a"};
		struct spool_rcpt_change b = {.index = 1,
		                              .state = RCPT_PENDING,
		                              .attempts = 7,
		                              .next_attempt_us = 42,
		                              .last_reply = "451 b"};
		struct spool_rcpt_change c = {.index = 2, .state = RCPT_BOUNCED, .attempts = 1};
		struct spool_rcpt_change d = {.index = 1, .state = RCPT_EXPIRED, .attempts = 8};
		struct changed ca = {.loop = &l}, cb = {.loop = &l}, cc = {.loop = &l};
		struct changed cd = {.loop = &l}, ce = {.loop = &l};
		char id[SPOOL_ID_LEN + 1];
		struct spool_stats before, after;
		struct loaded r;
		unsigned base;

		assert_int_equal(commit_message(sp, &l, &env, "x", 1, id), SPOOL_OK);
		spool_stats(sp, &before);
		base = l.answers;
		spool_rcpt_change(sp, id, &a, 1, l.mbox, change_cb, &ca);
		spool_rcpt_change(sp, id, &b, 1, l.mbox, change_cb, &cb);
		spool_rcpt_change(sp, id, &c, 1, l.mbox, change_cb, &cc);
		loop_until(&l, base + 3);
		spool_stats(sp, &after);
		assert_int_equal(ca.status, SPOOL_OK);
		assert_int_equal(cb.status, SPOOL_OK);
		assert_int_equal(cc.status, SPOOL_OK);
		assert_false(ca.removed || cb.removed || cc.removed);
		assert_true(ca.order < cb.order && cb.order < cc.order);
		shared = after.commits - before.commits == 1;

		/* Every change survived. */
		load_wait(sp, &l, id, false, &r);
		assert_int_equal(r.status, SPOOL_OK);
		assert_int_equal(r.env->rcpt[0].state, RCPT_DELIVERED);
		assert_string_equal(r.env->rcpt[0].last_reply, "250 a");
		assert_int_equal(r.env->rcpt[1].state, RCPT_PENDING);
		assert_int_equal(r.env->rcpt[1].attempts, 7);
		assert_int_equal(r.env->rcpt[1].next_attempt_us, 42);
		assert_string_equal(r.env->rcpt[1].last_reply, "451 b");
		assert_int_equal(r.env->rcpt[2].state, RCPT_BOUNCED);
		assert_null(r.env->rcpt[2].last_reply);
		loaded_clear(&r);

		/* The last recipient done removes the message; what is queued after it finds
		 * nothing. */
		base = l.answers;
		spool_rcpt_change(sp, id, &d, 1, l.mbox, change_cb, &cd);
		spool_rcpt_change(sp, id, NULL, 0, l.mbox, change_cb, &ce);
		loop_until(&l, base + 2);
		assert_int_equal(cd.status, SPOOL_OK);
		assert_true(cd.removed);
		assert_int_equal(ce.status, SPOOL_IO_ERROR);
		assert_false(ce.removed);
	}
	print_message("same batch after %d tries\n", tries);
	assert_true(shared);
	assert_int_equal(spool_message_count(sp), 0);
	spool_close(sp);
	assert_int_equal(raw_count(dir, "msg"), 0);
	assert_int_equal(raw_count(dir, "body"), 0);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* A bad change fails alone, all or nothing: the envelope is unchanged, and a good change
 * queued in the same batch still applies. */
static void
test_rcpt_change_bad(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	char id[SPOOL_ID_LEN + 1];
	struct envelope env, before, got;
	struct loop l;
	bool removed;

	loop_init(&l);
	sample_envelope(&env, 3);
	assert_int_equal(commit_message(sp, &l, &env, "body", 4, id), SPOOL_OK);
	stored(sp, id, &before);

	{
		/* A good change first, then an index out of range: neither is written. */
		struct spool_rcpt_change ch[2] = {
		    {.index = 0, .state = RCPT_DELIVERED, .attempts = 1, .last_reply = "250"},
		    {.index = 3, .state = RCPT_DELIVERED, .attempts = 1},
		};
		assert_int_equal(change_wait(sp, &l, id, ch, 2, &removed), SPOOL_IO_ERROR);
		ch[1].index = (size_t)-1;
		assert_int_equal(change_wait(sp, &l, id, ch, 2, &removed), SPOOL_IO_ERROR);
		/* An unknown state. */
		ch[1] = (struct spool_rcpt_change){.index = 1, .state = RCPT_EXPIRED + 1};
		assert_int_equal(change_wait(sp, &l, id, ch, 2, &removed), SPOOL_IO_ERROR);
	}
	stored(sp, id, &got);
	assert_envelope_equal(&got, &before);
	envelope_clear(&got);

	{
		/* Bad and good back to back: only the bad one fails. */
		struct spool_rcpt_change bad = {.index = 9, .state = RCPT_DELIVERED};
		struct spool_rcpt_change good = {.index = 1, .state = RCPT_PENDING, .attempts = 3};
		struct changed c1 = {.loop = &l}, c2 = {.loop = &l}, c3 = {.loop = &l};
		unsigned base = l.answers;

		spool_rcpt_change(sp, id, &bad, 1, l.mbox, change_cb, &c1);
		spool_rcpt_change(sp, id, &good, 1, l.mbox, change_cb, &c2);
		spool_rcpt_change(sp, "not-an-id", &good, 1, l.mbox, change_cb, &c3);
		loop_until(&l, base + 3);
		assert_int_equal(c1.status, SPOOL_IO_ERROR);
		assert_int_equal(c2.status, SPOOL_OK);
		assert_int_equal(c3.status, SPOOL_IO_ERROR);
		assert_true(c1.order < c2.order && c2.order < c3.order);
	}
	/* A change sets state, attempts and next_attempt_us; last_reply only if given. */
	before.rcpt[1].attempts = 3;
	before.rcpt[1].next_attempt_us = 0;
	stored(sp, id, &got);
	assert_envelope_equal(&got, &before);
	envelope_clear(&got);

	/* No such message; a NULL callback is allowed. */
	{
		struct spool_rcpt_change ch = {.index = 0, .state = RCPT_DELIVERED};

		assert_int_equal(change_wait(sp, &l, "0000000000000000deadbeef", &ch, 1, &removed),
		                 SPOOL_IO_ERROR);
		spool_rcpt_change(sp, id, &ch, 1, NULL, NULL, NULL);
	}
	assert_int_equal(spool_message_count(sp), 1);
	spool_close(sp);
	/* The NULL-callback change was applied before close returned. */
	sp = open_spool(dir, 64 * MB, 0);
	stored(sp, id, &got);
	assert_int_equal(got.rcpt[0].state, RCPT_DELIVERED);
	envelope_clear(&got);
	spool_close(sp);

	loop_free(&l);
	envelope_clear(&before);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* Changes queued around a commit that overflows the map, while the writer is busy with an
 * earlier commit so that they tend to share the failing batch: it is replayed request by
 * request from the copies, and the changes still apply, each seeing the one before. */
static void
test_rcpt_change_full_batch(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 4 * MB, 0);
	unsigned char *body = xcalloc(1, 8 * MB);
	struct evbuffer *buf = evbuffer_new(), *bbuf = evbuffer_new();
	char id[SPOOL_ID_LEN + 1];
	struct envelope env, got;
	struct loop l;

	loop_init(&l);
	sample_envelope(&env, 3);
	assert_int_equal(commit_message(sp, &l, &env, "small", 5, id), SPOOL_OK);
	for (int i = 0; i < 3; i++) {
		struct spool_rcpt_change a = {.index = 0,
		                              .state = RCPT_PENDING,
		                              .attempts = (uint16_t)(i + 1),
		                              .last_reply = "451 a"};
		struct spool_rcpt_change b = {.index = 1,
		                              .state = RCPT_PENDING,
		                              .attempts = (uint16_t)(i + 1),
		                              .last_reply = "451 b"};
		struct changed ca = {.loop = &l}, cb = {.loop = &l};
		struct answer blocker = {&l, SPOOL_IO_ERROR, false}, big = {&l, SPOOL_OK, false};
		struct spool_message *bmsg = spool_message_begin(sp, l.mbox);
		struct spool_message *msg = spool_message_begin(sp, l.mbox);
		unsigned base = l.answers;
		char bid[SPOOL_ID_LEN + 1];

		strlcpy_s(bid, spool_message_id(bmsg), sizeof(bid));
		evbuffer_add(bbuf, body, 1 * MB);
		evbuffer_add(buf, body, 8 * MB);
		spool_message_commit(bmsg, &env, bbuf, answer_cb, &blocker);
		spool_rcpt_change(sp, id, &a, 1, l.mbox, change_cb, &ca);
		spool_message_commit(msg, &env, buf, answer_cb, &big);
		spool_rcpt_change(sp, id, &b, 1, l.mbox, change_cb, &cb);
		loop_until(&l, base + 4);
		assert_int_equal(big.status, SPOOL_FULL);
		assert_int_equal(ca.status, SPOOL_OK);
		assert_int_equal(cb.status, SPOOL_OK);
		assert_false(ca.removed || cb.removed);
		stored(sp, id, &got);
		assert_int_equal(got.rcpt[0].attempts, i + 1);
		assert_string_equal(got.rcpt[0].last_reply, "451 a");
		assert_int_equal(got.rcpt[1].attempts, i + 1);
		assert_string_equal(got.rcpt[1].last_reply, "451 b");
		envelope_clear(&got);
		/* Make room again for the next round. */
		assert_int_equal(blocker.status, SPOOL_OK);
		assert_int_equal(delete_wait(sp, &l, bid), SPOOL_OK);
	}
	spool_close(sp);

	evbuffer_free(buf);
	evbuffer_free(bbuf);
	loop_free(&l);
	envelope_clear(&env);
	free(body);
	scratch_remove(dir);
}

/* ---- delete, and the count ---- */

static void
test_delete(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	size_t len = 3 * SPOOL_CHUNK_SIZE;
	unsigned char *body = xmalloc(len);
	char id[SPOOL_ID_LEN + 1], keep[SPOOL_ID_LEN + 1], quiet[SPOOL_ID_LEN + 1];
	struct spool_stats st;
	struct envelope env;
	struct loaded r;
	struct loop l;

	loop_init(&l);
	sample_envelope(&env, 2);
	fill_body(body, len, 1);
	assert_int_equal(commit_message(sp, &l, &env, body, len, id), SPOOL_OK);
	assert_int_equal(commit_message(sp, &l, &env, "keep", 4, keep), SPOOL_OK);
	assert_int_equal(commit_message(sp, &l, &env, "quiet", 5, quiet), SPOOL_OK);
	assert_int_equal(spool_message_count(sp), 3);

	assert_int_equal(delete_wait(sp, &l, id), SPOOL_OK);
	assert_int_equal(spool_message_count(sp), 2);
	load_wait(sp, &l, id, true, &r);
	assert_int_equal(r.status, SPOOL_IO_ERROR);
	assert_int_equal(delete_wait(sp, &l, id), SPOOL_IO_ERROR);
	assert_int_equal(delete_wait(sp, &l, "bogus"), SPOOL_IO_ERROR);
	assert_int_equal(spool_message_count(sp), 2);
	spool_stats(sp, &st);
	assert_int_equal(st.removals, 1);
	spool_delete(sp, quiet, NULL, NULL, NULL); /* nobody to tell: done before close returns */

	spool_close(sp);
	assert_int_equal(raw_count(dir, "msg"), 1);
	assert_int_equal(raw_count(dir, "body"), 1);
	sp = open_spool(dir, 64 * MB, 0);
	assert_int_equal(spool_message_count(sp), 1);
	load_wait(sp, &l, keep, true, &r);
	assert_int_equal(r.status, SPOOL_OK);
	assert_int_equal(evbuffer_get_length(r.body), 4);
	loaded_clear(&r);
	spool_close(sp);

	loop_free(&l);
	envelope_clear(&env);
	free(body);
	scratch_remove(dir);
}

/* Every way out keeps the count right: delete, the last recipient, spool_remove; and a
 * failed one changes nothing. */
static void
test_count(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	char ids[10][SPOOL_ID_LEN + 1];
	struct spool_rcpt_change done[2] = {
	    {.index = 0, .state = RCPT_DELIVERED},
	    {.index = 1, .state = RCPT_BOUNCED},
	};
	struct spool_stats st;
	struct envelope env;
	struct loop l;
	bool removed;

	loop_init(&l);
	sample_envelope(&env, 2);
	for (int i = 0; i < 10; i++)
		assert_int_equal(commit_message(sp, &l, &env, "m", 1, ids[i]), SPOOL_OK);
	assert_int_equal(spool_message_count(sp), 10);
	for (int i = 0; i < 3; i++)
		assert_int_equal(delete_wait(sp, &l, ids[i]), SPOOL_OK);
	assert_int_equal(spool_message_count(sp), 7);
	for (int i = 3; i < 6; i++) {
		assert_int_equal(change_wait(sp, &l, ids[i], done, 2, &removed), SPOOL_OK);
		assert_true(removed);
	}
	assert_int_equal(spool_message_count(sp), 4);
	assert_int_equal(spool_remove(sp, ids[6]), 0);
	assert_int_equal(spool_message_count(sp), 3);
	/* Already gone, each way. */
	assert_int_equal(delete_wait(sp, &l, ids[3]), SPOOL_IO_ERROR);
	assert_int_equal(change_wait(sp, &l, ids[0], done, 2, &removed), SPOOL_IO_ERROR);
	assert_int_equal(spool_remove(sp, ids[4]), -1);
	/* Half done: stays. */
	assert_int_equal(change_wait(sp, &l, ids[7], done, 1, &removed), SPOOL_OK);
	assert_false(removed);
	assert_int_equal(spool_message_count(sp), 3);
	spool_stats(sp, &st);
	assert_int_equal(st.removals, 7);
	spool_close(sp);

	sp = open_spool(dir, 64 * MB, 0);
	assert_int_equal(spool_message_count(sp), 3);
	spool_close(sp);
	assert_int_equal(raw_count(dir, "body"), 3);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* ---- close ---- */

#define CLOSE_MSGS 20

/* spool_close with loads and changes still queued: each is done and answered. */
static void
test_close_pending(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	char ids[CLOSE_MSGS][SPOOL_ID_LEN + 1];
	struct loaded r[CLOSE_MSGS];
	struct changed c[CLOSE_MSGS];
	struct answer del;
	unsigned char body[5000];
	struct envelope env;
	struct loop l;

	loop_init(&l);
	sample_envelope(&env, 1);
	fill_body(body, sizeof(body), 3);
	for (int i = 0; i < CLOSE_MSGS; i++)
		assert_int_equal(commit_message(sp, &l, &env, body, sizeof(body), ids[i]),
		                 SPOOL_OK);
	l.answers = 0;
	for (int i = 0; i < CLOSE_MSGS; i++) {
		/* Odd messages delivered: removed. Even ones retried: rewritten. */
		struct spool_rcpt_change ch = {.index = 0,
		                               .state = i % 2 ? RCPT_DELIVERED : RCPT_PENDING,
		                               .attempts = (uint16_t)(i + 1),
		                               .last_reply = "closing"};

		r[i] = (struct loaded){.loop = &l};
		c[i] = (struct changed){.loop = &l};
		spool_load(sp, ids[i], true, l.mbox, load_cb, &r[i]);
		spool_rcpt_change(sp, ids[i], &ch, 1, l.mbox, change_cb, &c[i]);
	}
	del = (struct answer){&l, SPOOL_IO_ERROR, false};
	spool_delete(sp, ids[0], l.mbox, answer_cb, &del);
	spool_close(sp);
	/* Everything is posted by now: one more turn of the loop delivers it. */
	loop_until(&l, 2 * CLOSE_MSGS + 1);
	for (int i = 0; i < CLOSE_MSGS; i++) {
		assert_true(r[i].called);
		/* Loads and changes are not ordered with each other: a load may find its
		 * message removed already, but never fails because of the close. */
		if (i % 2 == 0 && i != 0)
			assert_int_equal(r[i].status, SPOOL_OK);
		if (r[i].status == SPOOL_OK) {
			assert_int_equal(evbuffer_get_length(r[i].body), sizeof(body));
			assert_memory_equal(evbuffer_pullup(r[i].body, -1), body, sizeof(body));
		} else
			assert_int_equal(r[i].status, SPOOL_IO_ERROR);
		loaded_clear(&r[i]);
		assert_true(c[i].called);
		assert_int_equal(c[i].status, SPOOL_OK);
		assert_int_equal(c[i].removed, i % 2 == 1);
	}
	assert_int_equal(del.status, SPOOL_OK);

	sp = open_spool(dir, 64 * MB, 0);
	assert_int_equal(spool_message_count(sp), CLOSE_MSGS / 2 - 1);
	for (int i = 2; i < CLOSE_MSGS; i += 2) {
		struct envelope got;

		stored(sp, ids[i], &got);
		assert_int_equal(got.rcpt[0].attempts, i + 1);
		assert_string_equal(got.rcpt[0].last_reply, "closing");
		envelope_clear(&got);
	}
	spool_close(sp);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

/* ---- many loads from several loops, while the writer changes the same messages ---- */

#define LOOPS     4
#define PER_LOOP  200
#define NMSG      16
#define NCHANGES  100
#define LOAD_BODY (SPOOL_CHUNK_SIZE + 700)

struct loader {
	struct spool *sp;
	pthread_barrier_t *start;
	char (*ids)[SPOOL_ID_LEN + 1];
	const struct envelope *env;
	unsigned seed;
	unsigned ok;
};

static void *
loader_main(void *arg)
{
	struct loader *w = arg;
	struct loaded *r = xcalloc(PER_LOOP, sizeof(*r));
	unsigned char *body = xmalloc(LOAD_BODY);
	struct loop l;

	loop_init(&l);
	pthread_barrier_wait(w->start);
	for (int i = 0; i < PER_LOOP; i++) {
		r[i] = (struct loaded){.loop = &l};
		spool_load(w->sp, w->ids[(w->seed + i) % NMSG], i % 3 == 0, l.mbox, load_cb, &r[i]);
	}
	loop_until(&l, PER_LOOP);
	for (int i = 0; i < PER_LOOP; i++) {
		unsigned m = (w->seed + i) % NMSG;

		/* In request order, each the message asked for. */
		if (!r[i].called || r[i].order != (unsigned)i || r[i].status != SPOOL_OK ||
		    strcmp(r[i].env->id, w->ids[m]) != 0 ||
		    strcmp(r[i].env->sender, w->env->sender) != 0 ||
		    r[i].env->nrcpt != w->env->nrcpt || r[i].env->size != LOAD_BODY)
			continue;
		if (i % 3 == 0) {
			fill_body(body, LOAD_BODY, m);
			if (evbuffer_get_length(r[i].body) != LOAD_BODY ||
			    memcmp(evbuffer_pullup(r[i].body, -1), body, LOAD_BODY) != 0)
				continue;
		}
		w->ok++;
	}
	for (int i = 0; i < PER_LOOP; i++)
		loaded_clear(&r[i]);
	loop_free(&l);
	free(body);
	free(r);
	return NULL;
}

static void
test_concurrent_loads(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 256 * MB, 0);
	char ids[NMSG][SPOOL_ID_LEN + 1];
	unsigned char *body = xmalloc(LOAD_BODY);
	struct changed *c = xcalloc(NCHANGES, sizeof(*c));
	struct loader w[LOOPS];
	pthread_t tid[LOOPS];
	pthread_barrier_t start;
	struct spool_stats st;
	struct envelope env;
	struct loop l;
	unsigned ok = 0;

	loop_init(&l);
	sample_envelope(&env, 2);
	for (int i = 0; i < NMSG; i++) {
		fill_body(body, LOAD_BODY, i);
		assert_int_equal(commit_message(sp, &l, &env, body, LOAD_BODY, ids[i]), SPOOL_OK);
	}
	pthread_barrier_init(&start, NULL, LOOPS + 1);
	for (int i = 0; i < LOOPS; i++) {
		w[i] = (struct loader){sp, &start, ids, &env, (unsigned)i * 5, 0};
		assert_int_equal(pthread_create(&tid[i], NULL, loader_main, &w[i]), 0);
	}
	/* Meanwhile, this loop retries recipients of the same messages. */
	pthread_barrier_wait(&start);
	l.answers = 0;
	for (int i = 0; i < NCHANGES; i++) {
		struct spool_rcpt_change ch = {.index = (size_t)i % 2,
		                               .state = RCPT_PENDING,
		                               .attempts = (uint16_t)i,
		                               .last_reply = "451 4.3.0 later"};

		c[i] = (struct changed){.loop = &l};
		spool_rcpt_change(sp, ids[i % NMSG], &ch, 1, l.mbox, change_cb, &c[i]);
	}
	loop_until(&l, NCHANGES);
	for (int i = 0; i < LOOPS; i++) {
		pthread_join(tid[i], NULL);
		ok += w[i].ok;
	}
	pthread_barrier_destroy(&start);
	for (int i = 0; i < NCHANGES; i++)
		assert_int_equal(c[i].status, SPOOL_OK);
	assert_int_equal(ok, LOOPS * PER_LOOP);
	spool_stats(sp, &st);
	assert_int_equal(st.loads, LOOPS * PER_LOOP);
	assert_int_equal(st.changes, NCHANGES);
	assert_int_equal(st.io_errors, 0);
	assert_int_equal(spool_message_count(sp), NMSG);
	spool_close(sp);

	loop_free(&l);
	envelope_clear(&env);
	free(c);
	free(body);
	scratch_remove(dir);
}

/* ---- read-only ---- */

/* The CLI's read-only spool loads, but refuses changes and deletes (another process:
 * LMDB allows one open per process). */
static void
test_readonly(void **state)
{
	char *dir = scratch_dir();
	struct spool *sp = open_spool(dir, 64 * MB, 0);
	char id[SPOOL_ID_LEN + 1];
	struct envelope env;
	struct loop l;
	int status;
	pid_t pid;

	loop_init(&l);
	sample_envelope(&env, 2);
	assert_int_equal(commit_message(sp, &l, &env, "hello\r\n", 7, id), SPOOL_OK);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct spool_rcpt_change ch = {.index = 0, .state = RCPT_DELIVERED};
		struct changed c;
		struct answer a;
		struct loaded r;
		struct loop cl;
		char err[256];
		struct spool *ro = spool_open(dir, NULL, SPOOL_READONLY, err, sizeof(err));

		if (ro == NULL)
			_exit(10);
		loop_init(&cl);
		r = (struct loaded){.loop = &cl};
		spool_load(ro, id, true, cl.mbox, load_cb, &r);
		loop_until(&cl, 1);
		if (r.status != SPOOL_OK || evbuffer_get_length(r.body) != 7 ||
		    r.env->rcpt[0].state != RCPT_PENDING)
			_exit(11);
		loaded_clear(&r);
		c = (struct changed){.loop = &cl};
		a = (struct answer){&cl, SPOOL_OK, false};
		spool_rcpt_change(ro, id, &ch, 1, cl.mbox, change_cb, &c);
		spool_delete(ro, id, cl.mbox, answer_cb, &a);
		loop_until(&cl, 3);
		if (c.status != SPOOL_IO_ERROR || a.status != SPOOL_IO_ERROR)
			_exit(12);
		spool_close(ro);
		loop_free(&cl);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(spool_message_count(sp), 1);
	spool_close(sp);
	loop_free(&l);
	envelope_clear(&env);
	scratch_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_load_missing),
	    cmocka_unit_test(test_rcpt_change_one_by_one),
	    cmocka_unit_test(test_rcpt_change_same_batch),
	    cmocka_unit_test(test_rcpt_change_bad),
	    cmocka_unit_test(test_rcpt_change_full_batch),
	    cmocka_unit_test(test_delete),
	    cmocka_unit_test(test_count),
	    cmocka_unit_test(test_close_pending),
	    cmocka_unit_test(test_concurrent_loads),
	    cmocka_unit_test(test_readonly),
	};

	log_set_level(LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
