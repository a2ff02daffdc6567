/* message.c - receiving a message: the asynchronous API an SMTP or HTTP session uses.
 *
 * Everything here runs on the caller's event loop and only queues requests; the writer
 * answers on the message's mailbox. A struct spool_message is reference-counted: the
 * caller's handle holds one reference, every request in flight (or its answer in the
 * mailbox) another, so it outlives an abort for as long as the writer or a mailbox still
 * points at it, and the session that aborted may be freed at once.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/core.h"
#include "spool/spool_private.h"

struct spool_message *
spool_message_begin(struct spool *sp, struct mailbox *mbox)
{
	struct spool_message *msg = xcalloc(1, sizeof(*msg));
	uint64_t seq = atomic_fetch_add(&sp->seq, 1);
	uint64_t now = time_now_us();

	/* Time first so ids sort by arrival; the sequence keeps them unique within a
	 * microsecond and if the clock steps back; the floor (the newest id at open) keeps
	 * them unique across a restart with the clock set back. */
	if (now <= sp->id_floor_us)
		now = sp->id_floor_us + 1;
	snprintf(msg->id, sizeof(msg->id), "%016llx%08x", (unsigned long long)now,
	         (unsigned)(seq & 0xffffffffu));
	msg->sp = sp;
	msg->mbox = mbox;
	atomic_init(&msg->refs, 1);
	atomic_init(&msg->cancelled, false);
	msg->failed = SPOOL_OK;
	return msg;
}

const char *
spool_message_id(const struct spool_message *msg)
{
	return msg->id;
}

void
spool_message_unref(struct spool_message *msg)
{
	if (atomic_fetch_sub(&msg->refs, 1) == 1)
		free(msg);
}

void
spool_req_deliver(void *arg)
{
	struct spool_req *req = arg;
	struct spool_message *msg = req->msg;

	/* Runs on the loop that also calls spool_message_abort(), so this check cannot race
	 * with it: after abort, no callback of the message runs. */
	if (!atomic_load(&msg->cancelled))
		req->cb(req->arg, req->status);
	spool_message_unref(msg);
	spool_req_free(req);
}

/* A request for msg that takes a reference; chunk requests move up to SPOOL_CHUNK_SIZE
 * octets out of buf. */
static struct spool_req *
chunk_req(struct spool_message *msg, struct evbuffer *buf)
{
	struct spool_req *req = spool_req_new(REQ_CHUNK, msg->id);
	size_t len = buf != NULL ? evbuffer_get_length(buf) : 0;

	if (len > SPOOL_CHUNK_SIZE)
		len = SPOOL_CHUNK_SIZE;
	req->msg = msg;
	atomic_fetch_add(&msg->refs, 1);
	if (len > 0) {
		/* Moves whole evbuffer chains where it can: no copy on the loop. */
		req->data = evbuffer_new();
		if (req->data == NULL || evbuffer_remove_buffer(buf, req->data, len) != (int)len)
			fatal("spool: out of memory");
		req->index = msg->nchunks++;
		msg->size += len;
	}
	return req;
}

/* Queues a list of requests; if the spool refuses them (read-only, or closing), each is
 * answered SPOOL_IO_ERROR on the mailbox, still in order. */
static void
submit(struct spool_message *msg, struct spool_req *first, struct spool_req *last)
{
	struct spool_req *req, *next;

	if (spool_queue(msg->sp, first, last))
		return;
	log_error("spool: message %s: the spool takes no more requests", msg->id);
	last->next = NULL;
	for (req = first; req != NULL; req = next) {
		next = req->next;
		req->status = SPOOL_IO_ERROR;
		if (req->cb != NULL)
			mailbox_post(msg->mbox, spool_req_deliver, req);
		else {
			spool_message_unref(msg);
			spool_req_free(req);
		}
	}
}

void
spool_message_write(struct spool_message *msg, struct evbuffer *buf, spool_done_cb *cb, void *arg)
{
	struct spool_req *req;

	if (msg->committed)
		fatal("spool: message %s: write after commit", msg->id);
	req = chunk_req(msg, buf);
	req->cb = cb;
	req->arg = arg;
	submit(msg, req, req);
}

void
spool_message_commit(struct spool_message *msg, struct envelope *env, struct evbuffer *buf,
                     spool_done_cb *cb, void *arg)
{
	struct spool_req *first = NULL, **tail = &first, *req;

	if (msg->committed)
		fatal("spool: message %s: committed twice", msg->id);
	/* The rest of the body, in chunks of the usual size (no callbacks: a failure shows
	 * in the commit's status). */
	while (buf != NULL && evbuffer_get_length(buf) > 0) {
		req = chunk_req(msg, buf);
		*tail = req;
		tail = &req->next;
	}
	memcpy(env->id, msg->id, sizeof(env->id));
	env->size = msg->size + (env->headers != NULL ? strlen(env->headers) : 0);
	req = spool_req_new(REQ_COMMIT, msg->id);
	req->msg = msg; /* the caller's reference: freed after cb */
	req->env = envelope_encode(env, &req->envlen);
	req->cb = cb;
	req->arg = arg;
	*tail = req;
	msg->committed = true;
	submit(msg, first, req);
}

void
spool_message_abort(struct spool_message *msg)
{
	struct spool_req *req;

	if (msg == NULL)
		return;
	atomic_store(&msg->cancelled, true);
	/* After commit, abort only detaches: the commit goes ahead, unanswered, and its
	 * request holds the caller's reference. */
	if (msg->committed)
		return;
	/* Queued after every chunk of the message, so it deletes whatever they wrote. */
	if (msg->nchunks > 0) {
		req = spool_req_new(REQ_ABORT, msg->id);
		if (!spool_queue(msg->sp, req, req))
			spool_req_free(req); /* the next spool_open() removes the chunks */
	}
	spool_message_unref(msg);
}
