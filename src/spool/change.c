/* change.c - changing committed messages: envelope updates and removal.
 *
 * The work goes through the writer's queue like any other request, so delivery results
 * are group-committed with everything else. spool_envelope_update() and spool_remove()
 * block the caller until the transaction is fsynced: never call them on an event loop.
 * spool_rcpt_change() and spool_delete() are their asynchronous forms, answered on a
 * mailbox after the fsync; spool_rcpt_claim() is a change that sets recipient flags at most
 * once.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "spool/spool_private.h"

int
spool_envelope_update(struct spool *sp, const struct envelope *env)
{
	struct spool_req *req;
	int ret;

	if (!spool_id_valid(env->id))
		return -1;
	req = spool_req_new(REQ_UPDATE, env->id);
	req->env = envelope_encode(env, &req->envlen);
	spool_queue_wait(sp, req);
	ret = req->status == SPOOL_OK && req->found ? 0 : -1;
	spool_req_free(req);
	return ret;
}

int
spool_remove(struct spool *sp, const char *id)
{
	struct spool_req *req;
	int ret;

	if (!spool_id_valid(id))
		return -1;
	req = spool_req_new(REQ_REMOVE, id);
	spool_queue_wait(sp, req);
	ret = req->status == SPOOL_OK && req->found ? 0 : -1;
	spool_req_free(req);
	return ret;
}

/* ---- asynchronous ---- */

void
spool_change_deliver(void *arg)
{
	struct spool_req *req = arg;

	if (req->type == REQ_CHANGE && req->claim_flags != 0)
		req->claim_cb(req->arg, req->status, req->status == SPOOL_OK ? req->claimed : NULL,
		              req->status == SPOOL_OK ? req->nchanges : 0);
	else if (req->type == REQ_CHANGE)
		req->change_cb(req->arg, req->status, req->removed);
	else
		req->cb(req->arg, req->status);
	spool_req_free(req);
}

/* A request answered on mbox. An invalid id gets the all-NUL key, which no message has:
 * the writer answers it SPOOL_IO_ERROR in its turn, so answers stay in request order. */
static struct spool_req *
async_req(enum spool_req_type type, const char *id, struct mailbox *mbox)
{
	static const char none[SPOOL_ID_LEN];
	struct spool_req *req;

	if (!spool_id_valid(id)) {
		log_error("spool: %s: invalid queue id \"%.*s\"",
		          type == REQ_CHANGE ? "change" : "delete", id != NULL ? SPOOL_ID_LEN : 0,
		          id != NULL ? id : "");
		id = none;
	}
	req = spool_req_new(type, id);
	req->mbox = mbox;
	return req;
}

/* Queues req; if the spool takes no requests (read-only, or closing), answers it
 * SPOOL_IO_ERROR. */
static void
submit_async(struct spool *sp, struct spool_req *req)
{
	if (spool_queue(sp, req, req))
		return;
	log_error("spool: %s %.*s: the spool takes no more requests",
	          req->type == REQ_CHANGE ? "change" : "delete", SPOOL_ID_LEN, req->id);
	req->status = SPOOL_IO_ERROR;
	if (req->type == REQ_CHANGE ? req->change_cb != NULL || req->claim_cb != NULL
	                            : req->cb != NULL)
		mailbox_post(req->mbox, spool_change_deliver, req);
	else
		spool_req_free(req);
}

void
spool_rcpt_change(struct spool *sp, const char *id, const struct spool_rcpt_change *changes,
                  size_t n, struct mailbox *mbox, spool_change_cb *cb, void *arg)
{
	struct spool_req *req = async_req(REQ_CHANGE, id, mbox);

	req->changes = xcalloc(n > 0 ? n : 1, sizeof(*req->changes));
	req->nchanges = n;
	for (size_t i = 0; i < n; i++) {
		req->changes[i] = changes[i];
		if (changes[i].last_reply != NULL)
			req->changes[i].last_reply = xstrdup(changes[i].last_reply);
	}
	req->change_cb = cb;
	req->arg = arg;
	submit_async(sp, req);
}

void
spool_rcpt_claim(struct spool *sp, const char *id, uint8_t flags, const size_t *idx, size_t n,
                 struct mailbox *mbox, spool_claim_cb *cb, void *arg)
{
	struct spool_req *req = async_req(REQ_CHANGE, id, mbox);

	req->claim_idx = xcalloc(n > 0 ? n : 1, sizeof(*req->claim_idx));
	req->claimed = xcalloc(n > 0 ? n : 1, sizeof(*req->claimed));
	if (n > 0)
		memcpy(req->claim_idx, idx, n * sizeof(*idx));
	req->nchanges = n;
	req->claim_cb = cb;
	req->arg = arg;
	if (flags == 0) {
		/* Nothing to claim is a caller's mistake: answered in order, as an invalid id. */
		log_error("spool: claim %.*s: no flags", SPOOL_ID_LEN, req->id);
		memset(req->id, 0, sizeof(req->id));
		flags = RCPT_DELAY_NOTIFIED;
	}
	req->claim_flags = flags;
	submit_async(sp, req);
}

void
spool_delete(struct spool *sp, const char *id, struct mailbox *mbox, spool_done_cb *cb, void *arg)
{
	struct spool_req *req = async_req(REQ_DELETE, id, mbox);

	req->cb = cb;
	req->arg = arg;
	submit_async(sp, req);
}
