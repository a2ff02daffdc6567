/* writer.c - the asynchronous writes: one thread applies every add and remove queued while
 * it was busy in one write transaction, one fsync for the lot (group commit, as the spool
 * does), then answers each on its mailbox.
 *
 * Hard bounces come in bursts (a campaign's bad addresses, a provider rejecting a whole
 * domain): the delivery loops queue them here and move on; a burst of a thousand costs a
 * fsync or two, not a thousand.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "suppress/suppress_private.h"

/* Runs on the request's mailbox. */
static void
deliver(void *arg)
{
	struct suppress_req *req = arg;

	req->cb(req->arg, req->status, req->n);
	free(req);
}

static void
answer(struct suppress_req *req)
{
	if (req->cb != NULL)
		mailbox_post(req->mbox, deliver, req);
	else
		free(req);
}

/* Applies one request inside txn: 0, or the LMDB error that dooms the transaction. The
 * outcome is set tentatively; it holds once the transaction commits. */
static int
apply(struct suppress *list, MDB_txn *txn, struct suppress_req *req)
{
	MDB_val key = {req->klen, req->key}, val = {req->vlen, req->val};
	int rc;

	req->n = 0;
	switch (req->type) {
	case REQ_ADD:
		if ((rc = mdb_put(txn, list->dbi, &key, &val, 0)) != 0)
			return rc;
		req->status = SUPPRESS_OK;
		req->n = 1;
		return 0;
	case REQ_REMOVE:
		rc = mdb_del(txn, list->dbi, &key, NULL);
		if (rc == MDB_NOTFOUND) {
			req->status = SUPPRESS_NOT_FOUND;
			return 0;
		}
		if (rc != 0)
			return rc;
		req->status = SUPPRESS_OK;
		req->n = 1;
		return 0;
	case REQ_SWEEP:
		break; /* never batched: see run_sweep() */
	}
	return EINVAL;
}

static int
run_txn(struct suppress *list, struct suppress_req **reqs, size_t n)
{
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(list->env, NULL, 0, &txn)) != 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		if (reqs[i]->refused)
			continue;
		if ((rc = apply(list, txn, reqs[i])) != 0) {
			mdb_txn_abort(txn);
			return rc;
		}
	}
	return mdb_txn_commit(txn);
}

/* Counts answered requests; committed: a transaction was committed for them. */
static void
count(struct suppress *list, struct suppress_req **reqs, size_t n, bool committed)
{
	uint64_t added = 0, removed = 0, failed = 0;

	for (size_t i = 0; i < n; i++) {
		if (reqs[i]->status == SUPPRESS_OK && reqs[i]->type == REQ_ADD)
			added += reqs[i]->n;
		else if (reqs[i]->status == SUPPRESS_OK)
			removed += reqs[i]->n;
		else if (reqs[i]->status != SUPPRESS_NOT_FOUND)
			failed++;
	}
	pthread_mutex_lock(&list->lock);
	list->stats.commits += committed;
	list->stats.added += added;
	list->stats.removed += removed;
	list->stats.failed += failed;
	list->stats.requests += n;
	if (committed && n > list->stats.largest_batch)
		list->stats.largest_batch = n;
	pthread_mutex_unlock(&list->lock);
}

static void
run_batch(struct suppress *list, struct suppress_req **batch, size_t n)
{
	bool any = false;
	int rc;

	for (size_t i = 0; i < n && !any; i++)
		any = !batch[i]->refused;
	if (!any) { /* nothing to write: no transaction, no fsync */
		count(list, batch, n, false);
		for (size_t i = 0; i < n; i++)
			answer(batch[i]);
		return;
	}
	rc = run_txn(list, batch, n);

	if (rc != 0 && n > 1) {
		/* One request's failure (a full map) must not fail the others that fit:
		 * each again alone. */
		log_debug("suppress: batch of %zu failed (%s): one by one", n, mdb_strerror(rc));
		for (size_t i = 0; i < n; i++)
			run_batch(list, &batch[i], 1);
		return;
	}
	if (rc != 0 && !batch[0]->refused) {
		log_error("suppress: %s: %s", list->dir, mdb_strerror(rc));
		batch[0]->status = suppress_status_of(rc);
		batch[0]->n = 0;
	}
	count(list, batch, n, rc == 0);
	for (size_t i = 0; i < n; i++)
		answer(batch[i]);
}

static void
run_sweep(struct suppress *list, struct suppress_req *req)
{
	int64_t n = suppress_sweep(list, req->now_us);

	req->status = n < 0 ? SUPPRESS_IO_ERROR : SUPPRESS_OK;
	req->n = n < 0 ? 0 : (uint64_t)n;
	pthread_mutex_lock(&list->lock);
	list->stats.requests++;
	pthread_mutex_unlock(&list->lock);
	answer(req);
}

static void *
writer_main(void *arg)
{
	struct suppress *list = arg;
	struct suppress_req **batch = xcalloc(list->batch_max, sizeof(*batch));

	for (;;) {
		struct suppress_req *sweep = NULL;
		size_t n = 0;

		pthread_mutex_lock(&list->lock);
		while (list->head == NULL && !list->stopping)
			pthread_cond_wait(&list->wake, &list->lock);
		/* A sweep runs alone, in its own transactions, after what came before it. */
		if (list->head != NULL && list->head->type == REQ_SWEEP) {
			sweep = list->head;
			list->head = sweep->next;
		}
		for (; sweep == NULL && list->head != NULL && list->head->type != REQ_SWEEP &&
		       n < list->batch_max;
		     n++) {
			batch[n] = list->head;
			list->head = list->head->next;
		}
		if (list->head == NULL)
			list->tail = &list->head;
		pthread_mutex_unlock(&list->lock);
		if (sweep != NULL)
			run_sweep(list, sweep);
		else if (n > 0)
			run_batch(list, batch, n);
		else
			break; /* stopping, and everything queued is answered */
	}
	free(batch);
	return NULL;
}

int
suppress_writer_start(struct suppress *list, char *err, size_t errlen)
{
	int rc = pthread_create(&list->writer, NULL, writer_main, list);

	if (rc != 0) {
		snprintf(err, errlen, "suppress: cannot start the writer thread: %s", strerror(rc));
		return -1;
	}
	list->writer_running = true;
	return 0;
}

void
suppress_writer_stop(struct suppress *list)
{
	pthread_mutex_lock(&list->lock);
	list->stopping = true;
	pthread_cond_signal(&list->wake);
	pthread_mutex_unlock(&list->lock);
	if (list->writer_running)
		pthread_join(list->writer, NULL);
	list->writer_running = false;
}

/* ---- requests ---- */

/* Queues first..last (linked by ->next), in order; if the list takes no requests
 * (read-only, closing), answers them all at once, refused, in order. */
static void
enqueue(struct suppress *list, struct suppress_req *first, struct suppress_req *last)
{
	struct suppress_req *req, *next;

	pthread_mutex_lock(&list->lock);
	if (list->writer_running && !list->stopping) {
		last->next = NULL;
		*list->tail = first;
		list->tail = &last->next;
		pthread_cond_signal(&list->wake);
		pthread_mutex_unlock(&list->lock);
		return;
	}
	pthread_mutex_unlock(&list->lock);
	for (req = first; req != NULL; req = next) {
		next = req == last ? NULL : req->next;
		if (!req->refused)
			req->status = SUPPRESS_IO_ERROR;
		req->n = 0;
		count(list, &req, 1, false);
		answer(req);
	}
}

static struct suppress_req *
req_new(enum suppress_req_type type, struct mailbox *mbox, suppress_done_cb *cb, void *arg)
{
	struct suppress_req *req = xcalloc(1, sizeof(*req));

	req->type = type;
	req->mbox = mbox;
	req->cb = cb;
	req->arg = arg;
	return req;
}

static struct suppress_req *
add_req(struct suppress *list, const struct suppress_record *rec, struct mailbox *mbox,
        suppress_done_cb *cb, void *arg)
{
	struct suppress_req *req = req_new(REQ_ADD, mbox, cb, arg);
	char err[256];

	req->status = suppress_prepare(list, rec, req->key, &req->klen, req->val, &req->vlen, err,
	                               sizeof(err));
	if (req->status != SUPPRESS_OK) {
		/* The delivery engine has nobody to tell but the log. */
		log_warn("suppress: not added: %s", err);
		req->refused = true;
	}
	return req;
}

void
suppress_add_async(struct suppress *list, const struct suppress_record *rec, struct mailbox *mbox,
                   suppress_done_cb *cb, void *arg)
{
	struct suppress_req *req = add_req(list, rec, mbox, cb, arg);

	enqueue(list, req, req);
}

void
suppress_add_async_many(struct suppress *list, const struct suppress_record *recs, size_t n,
                        struct mailbox *mbox, suppress_done_cb *cb, void *const *args)
{
	struct suppress_req *first = NULL, *last = NULL;

	for (size_t i = 0; i < n; i++) {
		struct suppress_req *req =
		    add_req(list, &recs[i], mbox, cb, args != NULL ? args[i] : NULL);

		if (last != NULL)
			last->next = req;
		else
			first = req;
		last = req;
	}
	if (first != NULL)
		enqueue(list, first, last);
}

void
suppress_remove_async(struct suppress *list, const char *tenant, const char *address,
                      struct mailbox *mbox, suppress_done_cb *cb, void *arg)
{
	struct suppress_req *req = req_new(REQ_REMOVE, mbox, cb, arg);
	char norm[SUPPRESS_ADDRESS_MAX + 1];
	const char *why = NULL;
	int klen = -1;

	if (address != NULL &&
	    suppress_address_normalize(address, !list->local_exact, norm, sizeof(norm), &why) >= 0)
		klen = suppress_key(req->key, tenant, norm);
	if (klen < 0) {
		log_warn("suppress: not removed: \"%.100s\": %s", address ? address : "",
		         why != NULL ? why : "invalid tenant");
		req->status = SUPPRESS_INVALID;
		req->refused = true;
	} else
		req->klen = (size_t)klen;
	enqueue(list, req, req);
}

void
suppress_sweep_async(struct suppress *list, uint64_t now_us, struct mailbox *mbox,
                     suppress_done_cb *cb, void *arg)
{
	struct suppress_req *req = req_new(REQ_SWEEP, mbox, cb, arg);

	req->now_us = now_us;
	enqueue(list, req, req);
}
