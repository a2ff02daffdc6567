/* reader.c - the reader thread: spool_load() for event loops.
 *
 * An event loop must not wait for the disk, so loads go to a thread of their own through a
 * FIFO queue, as writes go to the writer, but under a lock of its own: a load never waits
 * behind the writer's queue, and LMDB readers never wait for the writer's transaction or
 * its fsync. The reader takes everything queued (up to SPOOL_LOAD_BATCH_MAX), reads it in
 * one read transaction (one snapshot: loads queued together see the same state), and posts
 * each answer to its mailbox as soon as it is read, so a loop need not wait for the rest
 * of the batch. Answers leave in queue order: one loop's loads are answered in request
 * order.
 *
 * The reader runs on a read-only spool too: loading only reads.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/core.h"
#include "spool/spool_private.h"

/* Loads read in one read transaction: bounds how long a snapshot pins old pages. */
#define SPOOL_LOAD_BATCH_MAX 64

static void
load_deliver(void *arg)
{
	struct spool_load *ld = arg;

	if (ld->cb != NULL)
		ld->cb(ld->arg, ld->status, ld->env, ld->body);
	else {
		if (ld->env != NULL) {
			envelope_clear(ld->env);
			free(ld->env);
		}
		if (ld->body != NULL)
			evbuffer_free(ld->body);
	}
	free(ld);
}

/* Reads one message in txn into ld. */
static void
load_one(struct spool *sp, MDB_txn *txn, struct spool_load *ld)
{
	MDB_val key = {SPOOL_ID_LEN, ld->id}, val;
	struct envelope *env;
	int rc;

	ld->status = SPOOL_IO_ERROR;
	if ((rc = mdb_get(txn, sp->dbi_msg, &key, &val)) != 0) {
		/* No such message is the caller's to report (it knows why it asked). */
		if (rc == MDB_NOTFOUND)
			log_debug("spool: load %.*s: no such message", SPOOL_ID_LEN, ld->id);
		else
			log_error("spool: load %.*s: %s", SPOOL_ID_LEN, ld->id, mdb_strerror(rc));
		return;
	}
	env = xcalloc(1, sizeof(*env));
	if (spool_decode_record(&key, &val, env) < 0) {
		free(env);
		return;
	}
	if (ld->with_body && (ld->body = spool_body_get(sp, txn, env)) == NULL) {
		envelope_clear(env);
		free(env);
		return;
	}
	ld->env = env;
	ld->status = SPOOL_OK;
}

static void *
reader_main(void *arg)
{
	struct spool *sp = arg;

	for (;;) {
		struct spool_load *batch, *ld, *next, **cut;
		MDB_txn *txn = NULL;
		unsigned n = 0;

		pthread_mutex_lock(&sp->rlock);
		while (sp->rhead == NULL && !sp->rstopping)
			pthread_cond_wait(&sp->rwake, &sp->rlock);
		batch = sp->rhead;
		for (cut = &sp->rhead; *cut != NULL && n < SPOOL_LOAD_BATCH_MAX; n++)
			cut = &(*cut)->next;
		sp->rhead = *cut;
		*cut = NULL;
		if (sp->rhead == NULL)
			sp->rtail = &sp->rhead;
		pthread_mutex_unlock(&sp->rlock);
		if (n == 0)
			break; /* stopping, and every load queued is answered */

		/* If no transaction can be had, every load of the batch fails (logged). */
		if (spool_txn_begin_read(sp, &txn) != 0)
			txn = NULL;
		for (ld = batch; ld != NULL; ld = next) {
			next = ld->next;
			if (txn != NULL)
				load_one(sp, txn, ld);
			else
				ld->status = SPOOL_IO_ERROR;
			pthread_mutex_lock(&sp->lock);
			sp->stats.loads++;
			if (ld->status == SPOOL_IO_ERROR)
				sp->stats.io_errors++;
			pthread_mutex_unlock(&sp->lock);
			mailbox_post(ld->mbox, load_deliver, ld);
		}
		if (txn != NULL)
			mdb_txn_abort(txn);
	}
	return NULL;
}

int
spool_reader_start(struct spool *sp, char *err, size_t errlen)
{
	int rc = pthread_create(&sp->reader, NULL, reader_main, sp);

	if (rc != 0) {
		snprintf(err, errlen, "spool: cannot start the reader thread: %s", strerror(rc));
		return -1;
	}
	sp->reader_running = true;
	return 0;
}

void
spool_reader_stop(struct spool *sp)
{
	pthread_mutex_lock(&sp->rlock);
	sp->rstopping = true;
	pthread_cond_signal(&sp->rwake);
	pthread_mutex_unlock(&sp->rlock);
	if (sp->reader_running)
		pthread_join(sp->reader, NULL);
	sp->reader_running = false;
}

void
spool_load(struct spool *sp, const char *id, bool with_body, struct mailbox *mbox,
           spool_load_cb *cb, void *arg)
{
	struct spool_load *ld = xcalloc(1, sizeof(*ld));

	/* An invalid id keeps the all-NUL key, which no message has: answered in order, as
	 * any message that is not there. */
	if (spool_id_valid(id))
		memcpy(ld->id, id, SPOOL_ID_LEN);
	else
		log_error("spool: load: invalid queue id \"%.*s\"", id != NULL ? SPOOL_ID_LEN : 0,
		          id != NULL ? id : "");
	ld->with_body = with_body;
	ld->mbox = mbox;
	ld->cb = cb;
	ld->arg = arg;
	ld->status = SPOOL_IO_ERROR;

	pthread_mutex_lock(&sp->rlock);
	if (sp->rstopping) {
		pthread_mutex_unlock(&sp->rlock);
		log_error("spool: load %.*s: the spool is closing", SPOOL_ID_LEN, ld->id);
		mailbox_post(mbox, load_deliver, ld);
		return;
	}
	*sp->rtail = ld;
	sp->rtail = &ld->next;
	pthread_cond_signal(&sp->rwake);
	pthread_mutex_unlock(&sp->rlock);
}
