/* api_admin.c - the admin API's write verbs (docs/operations.md, "Control API"):
 *
 *	POST /api/v1/suspend      {"destination": "example.com", "duration": "2h", "reason": "..."}
 *	POST /api/v1/resume       the same selector, or {"id": N}
 *	GET  /api/v1/suspensions  what is suspended, until when, and how much mail it holds
 *	POST /api/v1/bounce       a filter: what matches is bounced (DSN)
 *	POST /api/v1/delete       a filter: what matches is removed (no DSN)
 *	POST /api/v1/retry        a filter (or none): what matches is due now
 *
 * Each request runs on a thread of its own (queue_engine_admin() reads the spool and waits for
 * the engine), never on the control thread, which goes on serving meanwhile; the answer comes
 * back through the control thread's mailbox. control_stop() waits for those threads. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>

#include "control/internal.h"
#include "core/core.h"
#include "queue/queue.h"

#define API_PREFIX "/api/v1/"
/* Requests in progress at once; more get 503 (a client looping on bounce must not make the
 * server start threads without end). Each waits for the engine, which does them in turn. */
#define ADMIN_WORKERS_MAX 16

struct control_admin {
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned workers;
	bool stopping;
};

struct admin_call {
	struct control *c;
	struct control_admin *ad;
	struct control_pending *pending;
	char verb[16];
	json_t *body; /* NULL: none */
	int status;
	json_t *answer;
};

static void
admin_reply(void *arg)
{
	struct admin_call *call = arg;

	if (call->answer == NULL)
		call->answer = json_pack("{s:s}", "error", "no answer");
	control_pending_reply(call->pending, call->status, call->answer);
	free(call);
}

static void *
admin_worker(void *arg)
{
	struct admin_call *call = arg;
	struct control_admin *ad = call->ad;

	call->status =
	    queue_engine_admin(call->c->src.engine, call->verb, call->body, &call->answer);
	json_decref(call->body);
	call->body = NULL;
	pthread_mutex_lock(&ad->lock);
	if (!ad->stopping) {
		mailbox_post(call->c->mailbox, admin_reply, call);
	} else {
		/* The server is stopping: nobody to answer (evhttp closes the connection). */
		json_decref(call->answer);
		free(call->pending);
		free(call);
	}
	ad->workers--;
	pthread_cond_broadcast(&ad->idle);
	pthread_mutex_unlock(&ad->lock);
	return NULL;
}

void
control_handle_admin(struct control *c, struct evhttp_request *req, const char *path)
{
	struct admin_call *call;
	pthread_attr_t attr;
	pthread_t t;
	json_t *body = NULL;
	int rc;

	if (c->src.engine == NULL) {
		control_reply_error(req, 503, "Service Unavailable",
		                    "delivery is off: there is no queue to act on");
		return;
	}
	if (evhttp_request_get_command(req) == EVHTTP_REQ_POST &&
	    (body = control_request_json(req)) == NULL)
		return; /* answered 400 */
	if (c->admin == NULL) {
		c->admin = xcalloc(1, sizeof(*c->admin));
		pthread_mutex_init(&c->admin->lock, NULL);
		pthread_cond_init(&c->admin->idle, NULL);
	}
	call = xcalloc(1, sizeof(*call));
	call->c = c;
	call->ad = c->admin;
	call->body = body;
	strlcpy_s(call->verb, path + strlen(API_PREFIX), sizeof(call->verb));
	/* Before the thread exists: its answer may come at once. */
	call->pending = control_pending_new(c, req);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_mutex_lock(&c->admin->lock);
	rc = c->admin->workers >= ADMIN_WORKERS_MAX ? -1
	                                            : pthread_create(&t, &attr, admin_worker, call);
	if (rc == 0)
		c->admin->workers++;
	pthread_mutex_unlock(&c->admin->lock);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		json_decref(body);
		control_pending_reply(call->pending, 503,
		                      json_pack("{s:s}", "error",
		                                rc == -1
		                                    ? "too many admin requests in progress: "
		                                      "try again when they are answered"
		                                    : "cannot start a thread for the request"));
		free(call);
	}
}

void
control_admin_stop(struct control *c)
{
	struct control_admin *ad = c->admin;

	if (ad == NULL)
		return;
	pthread_mutex_lock(&ad->lock);
	ad->stopping = true;
	while (ad->workers > 0)
		pthread_cond_wait(&ad->idle, &ad->lock);
	pthread_mutex_unlock(&ad->lock);
	pthread_cond_destroy(&ad->idle);
	pthread_mutex_destroy(&ad->lock);
	free(ad);
	c->admin = NULL;
}
