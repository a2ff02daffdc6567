/* change.c - changing committed messages: envelope updates and removal.
 *
 * Synchronous for the caller, but the work goes through the writer's queue like any other
 * request, so a delivery thread's updates are group-committed with everything else. The
 * caller blocks until the transaction is fsynced: never call these on an event loop.
 */
#include <stdlib.h>

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
