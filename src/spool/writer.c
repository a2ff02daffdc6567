/* writer.c - the one thread that writes: group commit.
 *
 * Requests wait in a FIFO queue. The writer takes all of them (up to batch_max), applies
 * them in one LMDB write transaction and commits it: one fsync for the whole batch. While
 * it waits for the disk, new requests queue up, so batches grow with the load. Only then
 * does it answer, so nothing is ever reported stored before its fsync returned.
 *
 * If the batch's transaction fails (typically MDB_MAP_FULL: the spool is full), each
 * request is retried in a transaction of its own, so that those that fit are still stored
 * and only the others are refused.
 *
 * A recipient change reads the envelope inside the batch's transaction, so it sees what
 * every earlier request of the batch wrote: two changes to one message never lose each
 * other's work, whether or not they share a transaction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/core.h"
#include "spool/spool_private.h"

static const char *const req_names[] = {
    [REQ_CHUNK] = "chunk",   [REQ_COMMIT] = "commit", [REQ_ABORT] = "abort",
    [REQ_UPDATE] = "update", [REQ_REMOVE] = "remove", [REQ_CHANGE] = "change",
    [REQ_DELETE] = "delete",
};

struct spool_req *
spool_req_new(enum spool_req_type type, const char *id)
{
	struct spool_req *req = xcalloc(1, sizeof(*req));

	req->type = type;
	memcpy(req->id, id, SPOOL_ID_LEN);
	return req;
}

void
spool_req_free(struct spool_req *req)
{
	if (req->data != NULL)
		evbuffer_free(req->data);
	free(req->env);
	for (size_t i = 0; req->changes != NULL && i < req->nchanges; i++)
		free((char *)req->changes[i].last_reply);
	free(req->changes);
	free(req->claim_idx);
	free(req->claimed);
	free(req);
}

bool
spool_queue(struct spool *sp, struct spool_req *first, struct spool_req *last)
{
	uint64_t now = time_mono_us();

	for (struct spool_req *r = first; r != last; r = r->next)
		r->queued_us = now;
	last->queued_us = now;
	pthread_mutex_lock(&sp->lock);
	if (sp->readonly || sp->stopping) {
		pthread_mutex_unlock(&sp->lock);
		return false;
	}
	last->next = NULL;
	*sp->tail = first;
	sp->tail = &last->next;
	pthread_cond_signal(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	return true;
}

void
spool_queue_wait(struct spool *sp, struct spool_req *req)
{
	if (!spool_queue(sp, req, req)) {
		req->status = SPOOL_IO_ERROR;
		return;
	}
	pthread_mutex_lock(&sp->lock);
	while (!req->done)
		pthread_cond_wait(&sp->synced, &sp->lock);
	pthread_mutex_unlock(&sp->lock);
}

/* ---- applying a request inside a transaction ----
 *
 * Returns 0, or the LMDB error that dooms the transaction. What the request's outcome
 * will be if the transaction commits goes into req->status / req->found; nothing else
 * changes until then, so a failed batch can be replayed request by request. */

static int
apply_chunk(struct spool *sp, MDB_txn *txn, struct spool_req *req)
{
	uint8_t k[SPOOL_BODY_KEY_LEN];
	MDB_val key = {sizeof(k), k}, val;
	int rc;

	req->status = req->msg->failed;
	/* Nothing to store; or the message is gone (abort deletes what was written); or an
	 * earlier chunk failed and the message cannot be committed any more. */
	if (req->data == NULL || atomic_load(&req->msg->cancelled) || req->status != SPOOL_OK)
		return 0;
	spool_body_key(k, req->id, req->index);
	val.mv_size = evbuffer_get_length(req->data);
	val.mv_data = NULL;
	/* MDB_RESERVE: copy the chunk straight from the evbuffer into the page. */
	if ((rc = mdb_put(txn, sp->dbi_body, &key, &val, MDB_RESERVE)) != 0)
		return rc;
	evbuffer_copyout(req->data, val.mv_data, val.mv_size);
	return 0;
}

static int
apply_commit(struct spool *sp, MDB_txn *txn, struct spool_req *req)
{
	MDB_val key = {SPOOL_ID_LEN, req->id}, val = {req->envlen, req->env};
	int rc;

	req->status = req->msg->failed;
	if (req->status != SPOOL_OK)
		return spool_delete_chunks(sp, txn, req->id, NULL);
	rc = mdb_put(txn, sp->dbi_msg, &key, &val, MDB_NOOVERWRITE);
	if (rc == MDB_KEYEXIST) {
		/* Ids are unique by construction (a sequence, and a floor read at open): this
		 * is a bug, and the existing message must not be overwritten. */
		log_error("spool: commit %.*s: id already in use", SPOOL_ID_LEN, req->id);
		req->status = SPOOL_IO_ERROR;
		return 0;
	}
	return rc;
}

static int
apply_update(struct spool *sp, MDB_txn *txn, struct spool_req *req)
{
	MDB_val key = {SPOOL_ID_LEN, req->id}, val;
	int rc;

	req->status = SPOOL_OK;
	/* Only an existing message: an update racing with a remove must not revive it. */
	rc = mdb_get(txn, sp->dbi_msg, &key, &val);
	req->found = rc == 0;
	if (rc != 0)
		return rc == MDB_NOTFOUND ? 0 : rc;
	val.mv_size = req->envlen;
	val.mv_data = req->env;
	return mdb_put(txn, sp->dbi_msg, &key, &val, 0);
}

static int
apply_remove(struct spool *sp, MDB_txn *txn, struct spool_req *req)
{
	MDB_val key = {SPOOL_ID_LEN, req->id};
	int rc;

	req->status = SPOOL_OK;
	rc = mdb_del(txn, sp->dbi_msg, &key, NULL);
	req->found = rc == 0;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return rc;
	return spool_delete_chunks(sp, txn, req->id, NULL);
}

static int
apply_delete(struct spool *sp, MDB_txn *txn, struct spool_req *req)
{
	int rc = apply_remove(sp, txn, req);

	if (rc == 0 && !req->found) {
		log_debug("spool: delete %.*s: no such message", SPOOL_ID_LEN, req->id);
		req->status = SPOOL_IO_ERROR;
	}
	return rc;
}

/* A claim (spool_rcpt_claim) on env, the envelope as this transaction sees it: the flags go
 * to the recipients still pending without them, and the envelope is written back if any did.
 * Because the writer applies requests one after the other and reads what earlier ones wrote,
 * two claims of one recipient can never both succeed. Frees env. */
static int
apply_claim(struct spool *sp, MDB_txn *txn, struct spool_req *req, MDB_val *key,
            struct envelope *env)
{
	MDB_val val;
	bool any = false;
	int rc = 0;

	for (size_t i = 0; i < req->nchanges; i++) {
		if (req->claim_idx[i] >= env->nrcpt) {
			log_error("spool: claim %.*s: recipient %zu of %zu: refused", SPOOL_ID_LEN,
			          req->id, req->claim_idx[i], env->nrcpt);
			envelope_clear(env);
			return 0;
		}
	}
	/* Applied again from scratch if the batch is retried request by request. */
	for (size_t i = 0; i < req->nchanges; i++) {
		struct envelope_rcpt *r = &env->rcpt[req->claim_idx[i]];

		req->claimed[i] = r->state == RCPT_PENDING && (r->flags & req->claim_flags) == 0;
		if (req->claimed[i]) {
			r->flags |= req->claim_flags;
			any = true;
		}
	}
	if (any) {
		size_t len;
		void *buf = envelope_encode(env, &len);

		val.mv_size = len;
		val.mv_data = buf;
		rc = mdb_put(txn, sp->dbi_msg, key, &val, 0);
		free(buf);
	}
	envelope_clear(env);
	if (rc == 0)
		req->status = SPOOL_OK;
	return rc;
}

/* Read-modify-write: the envelope as this transaction sees it (earlier requests of the
 * batch included), changed, then written back, or removed with the body if no recipient
 * is left pending. A request that cannot apply (no such message, a damaged record, a bad
 * change) fails alone and writes nothing. */
static int
apply_change(struct spool *sp, MDB_txn *txn, struct spool_req *req)
{
	MDB_val key = {SPOOL_ID_LEN, req->id}, val;
	struct envelope env;
	bool pending = false;
	void *buf;
	size_t len;
	int rc;

	req->status = SPOOL_IO_ERROR;
	req->removed = false;
	if ((rc = mdb_get(txn, sp->dbi_msg, &key, &val)) != 0) {
		/* No such message is the caller's to report (it knows why it asked). */
		if (rc == MDB_NOTFOUND)
			log_debug("spool: change %.*s: no such message", SPOOL_ID_LEN, req->id);
		return rc == MDB_NOTFOUND ? 0 : rc;
	}
	if (spool_decode_record(&key, &val, &env) < 0)
		return 0;
	if (req->claim_flags != 0)
		return apply_claim(sp, txn, req, &key, &env);
	/* All or nothing: check every change before applying any. */
	for (size_t i = 0; i < req->nchanges; i++) {
		const struct spool_rcpt_change *c = &req->changes[i];

		if (c->index >= env.nrcpt || c->state > RCPT_EXPIRED) {
			log_error("spool: change %.*s: recipient %zu of %zu, state %u: refused",
			          SPOOL_ID_LEN, req->id, c->index, env.nrcpt, c->state);
			envelope_clear(&env);
			return 0;
		}
	}
	for (size_t i = 0; i < req->nchanges; i++) {
		const struct spool_rcpt_change *c = &req->changes[i];
		struct envelope_rcpt *r = &env.rcpt[c->index];

		r->state = c->state;
		r->attempts = c->attempts;
		r->next_attempt_us = c->next_attempt_us;
		/* Copied again: after a failed batch the request is applied once more. */
		if (c->last_reply != NULL) {
			free(r->last_reply);
			r->last_reply = xstrdup(c->last_reply);
		}
	}
	for (size_t i = 0; i < env.nrcpt && !pending; i++)
		pending = env.rcpt[i].state == RCPT_PENDING;
	if (!pending) {
		if ((rc = mdb_del(txn, sp->dbi_msg, &key, NULL)) == 0)
			rc = spool_delete_chunks(sp, txn, req->id, NULL);
		req->removed = rc == 0;
	} else if (req->nchanges > 0) {
		buf = envelope_encode(&env, &len);
		val.mv_size = len;
		val.mv_data = buf;
		rc = mdb_put(txn, sp->dbi_msg, &key, &val, 0);
		free(buf);
	}
	envelope_clear(&env);
	if (rc == 0)
		req->status = SPOOL_OK;
	return rc;
}

static int
apply(struct spool *sp, MDB_txn *txn, struct spool_req *req)
{
	switch (req->type) {
	case REQ_CHUNK:
		return apply_chunk(sp, txn, req);
	case REQ_COMMIT:
		return apply_commit(sp, txn, req);
	case REQ_ABORT:
		req->status = SPOOL_OK;
		return spool_delete_chunks(sp, txn, req->id, NULL);
	case REQ_UPDATE:
		return apply_update(sp, txn, req);
	case REQ_REMOVE:
		return apply_remove(sp, txn, req);
	case REQ_CHANGE:
		return apply_change(sp, txn, req);
	case REQ_DELETE:
		return apply_delete(sp, txn, req);
	}
	return EINVAL;
}

/* One transaction for n requests: 0 once it is committed (fsynced), or the error. */
static int
run_txn(struct spool *sp, struct spool_req **reqs, size_t n)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if ((rc = apply(sp, txn, reqs[i])) != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
	}
	/* mdb_txn_commit frees the transaction whatever it returns. */
	return mdb_txn_commit(txn);
}

static enum spool_status
status_of(int rc)
{
	return rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT ? SPOOL_FULL : SPOOL_IO_ERROR;
}

/* A request's transaction failed: it is refused, and what it leaves behind is cleaned. */
static void
fail(struct spool *sp, struct spool_req *req, int rc)
{
	MDB_txn *txn;

	req->status = status_of(rc);
	req->found = false;
	req->removed = false;
	if (req->status == SPOOL_FULL) {
		/* Once per episode: under load every session would log the same line. */
		if (!sp->full_logged)
			log_error("spool: full (%s): refusing what does not fit", mdb_strerror(rc));
		sp->full_logged = true;
	} else
		log_error("spool: %s %.*s: %s", req_names[req->type], SPOOL_ID_LEN, req->id,
		          mdb_strerror(rc));

	switch (req->type) {
	case REQ_CHUNK:
		/* Remembered, to be reported again at commit. */
		if (req->msg->failed == SPOOL_OK)
			req->msg->failed = req->status;
		break;
	case REQ_COMMIT:
	case REQ_ABORT:
		/* The message will never exist: remove its chunks now if the store lets us,
		 * else the next spool_open() does. */
		if (mdb_txn_begin(sp->env, NULL, 0, &txn) == 0) {
			if (spool_delete_chunks(sp, txn, req->id, NULL) == 0)
				mdb_txn_commit(txn);
			else
				mdb_txn_abort(txn);
		}
		break;
	case REQ_UPDATE:
	case REQ_REMOVE:
	case REQ_CHANGE:
	case REQ_DELETE:
		break;
	}
}

/* The request's outcome is final: count it and answer. */
static void
finish(struct spool *sp, struct spool_req *req)
{
	struct spool_message *msg = req->msg;

	pthread_mutex_lock(&sp->lock);
	sp->stats.requests++;
	if (req->status == SPOOL_FULL)
		sp->stats.full++;
	else if (req->status == SPOOL_IO_ERROR)
		sp->stats.io_errors++;
	switch (req->type) {
	case REQ_CHUNK:
		if (req->status == SPOOL_OK && req->data != NULL && !atomic_load(&msg->cancelled)) {
			sp->stats.chunks++;
			sp->stats.bytes += evbuffer_get_length(req->data);
		}
		break;
	case REQ_COMMIT:
		if (req->status == SPOOL_OK) {
			sp->stats.messages++;
			atomic_fetch_add(&sp->nmsg, 1);
		} else if (atomic_load(&msg->cancelled))
			log_warn("spool: message %s (client gone) not stored", msg->id);
		break;
	case REQ_CHANGE:
		if (req->status == SPOOL_OK) {
			sp->stats.changes++;
			if (req->removed) {
				sp->stats.removals++;
				atomic_fetch_sub(&sp->nmsg, 1);
			}
		}
		break;
	case REQ_DELETE:
		/* SPOOL_OK only if the message existed. */
		if (req->status == SPOOL_OK) {
			sp->stats.removals++;
			atomic_fetch_sub(&sp->nmsg, 1);
		}
		break;
	case REQ_REMOVE:
		if (req->status == SPOOL_OK && req->found) {
			sp->stats.removals++;
			atomic_fetch_sub(&sp->nmsg, 1);
		}
		/* FALLTHROUGH */
	case REQ_UPDATE:
		/* The caller waits for this and frees the request: hands off from here. */
		req->done = true;
		pthread_cond_broadcast(&sp->synced);
		pthread_mutex_unlock(&sp->lock);
		return;
	case REQ_ABORT:
		break;
	}
	pthread_mutex_unlock(&sp->lock);

	if (req->type == REQ_CHANGE || req->type == REQ_DELETE) {
		if (req->type == REQ_CHANGE ? req->change_cb != NULL || req->claim_cb != NULL
		                            : req->cb != NULL)
			mailbox_post(req->mbox, spool_change_deliver, req);
		else
			spool_req_free(req);
		return;
	}
	if (msg == NULL) {
		spool_req_free(req);
		return;
	}
	/* The data is no longer needed; the request itself travels to the mailbox. */
	if (req->data != NULL) {
		evbuffer_free(req->data);
		req->data = NULL;
	}
	free(req->env);
	req->env = NULL;
	/* An aborted message's callbacks are dropped here, and, if the abort comes after
	 * this check, by spool_req_deliver() on the caller's loop (where abort runs too). */
	if (req->cb != NULL && !atomic_load(&msg->cancelled))
		mailbox_post(msg->mbox, spool_req_deliver, req);
	else {
		spool_message_unref(msg);
		spool_req_free(req);
	}
}

/* A transaction of n requests is durable: its size, and for each message it committed the
 * time since the message's commit was queued (the wait for the writer included: what the
 * SMTP client waits for its 250). */
static void
observe_commit(struct spool *sp, struct spool_req **batch, size_t n)
{
	uint64_t now = time_mono_us();

	histogram_observe(sp->batch_size, n);
	for (size_t i = 0; i < n; i++)
		if (batch[i]->type == REQ_COMMIT && batch[i]->status == SPOOL_OK)
			histogram_observe(sp->commit_us, now - batch[i]->queued_us);
}

static void
run_batch(struct spool *sp, struct spool_req **batch, size_t n)
{
	int rc = run_txn(sp, batch, n);

	if (rc == 0) {
		observe_commit(sp, batch, n);
		pthread_mutex_lock(&sp->lock);
		sp->stats.commits++;
		if (n > sp->stats.largest_batch)
			sp->stats.largest_batch = n;
		pthread_mutex_unlock(&sp->lock);
		sp->full_logged = false;
		for (size_t i = 0; i < n; i++)
			finish(sp, batch[i]);
		return;
	}
	if (n > 1)
		log_debug("spool: group commit of %zu requests failed (%s): one by one", n,
		          mdb_strerror(rc));
	/* Each request is finished before the next is applied: a chunk that failed marks
	 * its message failed before that message's commit is tried. */
	for (size_t i = 0; i < n; i++) {
		if (n > 1)
			rc = run_txn(sp, &batch[i], 1);
		if (rc == 0) {
			observe_commit(sp, &batch[i], 1);
			pthread_mutex_lock(&sp->lock);
			sp->stats.commits++;
			pthread_mutex_unlock(&sp->lock);
		} else
			fail(sp, batch[i], rc);
		finish(sp, batch[i]);
	}
}

static void *
writer_main(void *arg)
{
	struct spool *sp = arg;
	struct spool_req **batch = xcalloc(sp->batch_max, sizeof(*batch));

	for (;;) {
		size_t n = 0;

		pthread_mutex_lock(&sp->lock);
		while (sp->head == NULL && !sp->stopping)
			pthread_cond_wait(&sp->wake, &sp->lock);
		for (; sp->head != NULL && n < sp->batch_max; n++) {
			batch[n] = sp->head;
			sp->head = sp->head->next;
		}
		if (sp->head == NULL)
			sp->tail = &sp->head;
		pthread_mutex_unlock(&sp->lock);
		if (n == 0)
			break; /* stopping, and everything queued is done */
		run_batch(sp, batch, n);
	}
	free(batch);
	return NULL;
}

int
spool_writer_start(struct spool *sp, char *err, size_t errlen)
{
	int rc = pthread_create(&sp->writer, NULL, writer_main, sp);

	if (rc != 0) {
		snprintf(err, errlen, "spool: cannot start the writer thread: %s", strerror(rc));
		return -1;
	}
	sp->writer_running = true;
	return 0;
}

void
spool_writer_stop(struct spool *sp)
{
	pthread_mutex_lock(&sp->lock);
	sp->stopping = true;
	pthread_cond_signal(&sp->wake);
	pthread_mutex_unlock(&sp->lock);
	if (sp->writer_running)
		pthread_join(sp->writer, NULL);
	sp->writer_running = false;
}
