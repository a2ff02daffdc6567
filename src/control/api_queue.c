/* api_queue.c - the admin API's read verbs and shaping overrides (docs/operations.md,
 * "Control API"):
 *
 *	GET    /api/v1/queue/summary?by=KEY[,KEY]   from the spool (on this thread: O(queue))
 *	GET    /api/v1/messages/ID                  from the spool (its reader thread)
 *	GET    /api/v1/top?by=destination|provider&limit=N      the engine's memory
 *	GET    /api/v1/adaptive                                 the engine's shaping state
 *	GET    /api/v1/shaping/overrides
 *	POST   /api/v1/shaping/overrides
 *	DELETE /api/v1/shaping/overrides/ID
 *
 * What the engine owns is asked on its thread (queue_engine_ask); the answer comes back to
 * this thread's mailbox, and evhttp keeps the connection meanwhile. A client that goes away
 * first is noticed (the connection's close callback), and its answer dropped.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "conf/conf.h"
#include "control/internal.h"
#include "core/core.h"
#include "queue/queue.h"
#include "shape/shape.h"
#include "spool/spool.h"

/* Octets of a message's header section an inspection returns. */
#define INSPECT_HEADERS_MAX (16 * 1024)

static const char *
reason_of(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 409:
		return "Conflict";
	case 503:
		return "Service Unavailable";
	default:
		return "Error";
	}
}

/* ---- A request answered later ---- */

struct control_pending {
	struct control *c;
	struct evhttp_request *req; /* NULL once the client has gone */
};

static void
on_client_gone(struct evhttp_connection *conn, void *arg)
{
	struct control_pending *p = arg;

	p->req = NULL;
}

struct control_pending *
control_pending_new(struct control *c, struct evhttp_request *req)
{
	struct control_pending *p = xcalloc(1, sizeof(*p));

	p->c = c;
	p->req = req;
	evhttp_connection_set_closecb(evhttp_request_get_connection(req), on_client_gone, p);
	return p;
}

void
control_pending_reply(struct control_pending *p, int status, json_t *body)
{
	if (p->req != NULL) {
		evhttp_connection_set_closecb(evhttp_request_get_connection(p->req), NULL, NULL);
		control_reply_json(p->req, status, reason_of(status), body);
	} else
		json_decref(body);
	free(p);
}

/* queue_engine_answer_fn: on this thread. */
static void
on_engine_answer(void *arg, int status, json_t *answer)
{
	control_pending_reply(arg, status, answer);
}

static void
ask_engine(struct control *c, struct evhttp_request *req, enum queue_engine_question q,
           json_t *args)
{
	queue_engine_ask(c->src.engine, q, args, c->mailbox, on_engine_answer,
	                 control_pending_new(c, req));
}

/* ---- Summary ---- */

void
control_api_queue_summary(struct control *c, struct evhttp_request *req, const char *path)
{
	enum queue_summary_key keys[QUEUE_BY_COUNT];
	char *by = control_query_param(req, "by"), why[256];
	struct shape_rules *rules;
	size_t n;
	json_t *out;

	if (queue_summary_keys_parse(by != NULL ? by : "destination", keys, &n, why, sizeof(why)) <
	    0) {
		char msg[320];

		snprintf(msg, sizeof(msg), "by: %s", why);
		control_reply_error(req, 400, "Bad Request", msg);
		free(by);
		return;
	}
	free(by);
	/* The providers of the rules in force (NULL without shaping or delivery). */
	rules = queue_engine_shape_rules(c->src.engine);
	out = queue_summary_json(c->cfg, c->src.spool, keys, n, rules, time_now_us());
	shape_rules_unref(rules);
	if (out == NULL) {
		control_reply_error(req, 503, "Service Unavailable", "the spool cannot be read");
		return;
	}
	control_reply_json(req, 200, "OK", out);
}

/* ---- One message ---- */

static void
on_message_loaded(void *arg, enum spool_status status, struct envelope *env, struct evbuffer *body)
{
	struct control_pending *p = arg;

	if (status != SPOOL_OK || env == NULL) {
		control_pending_reply(p, 404,
		                      json_pack("{s:s}", "error", "no such message queued"));
	} else
		control_pending_reply(
		    p, 200,
		    queue_message_json(p->c->cfg, env, body, INSPECT_HEADERS_MAX, time_now_us()));
	if (env != NULL) {
		envelope_clear(env);
		free(env);
	}
	if (body != NULL)
		evbuffer_free(body);
}

void
control_api_message(struct control *c, struct evhttp_request *req, const char *path)
{
	const char *id = path + strlen("/api/v1/messages/");
	size_t len = strlen(id);

	/* A spool id is 24 hex digits: anything else is not one (and never reaches LMDB). */
	if (len != SPOOL_ID_LEN || strspn(id, "0123456789abcdefABCDEF") != len) {
		control_reply_error(req, 404, "Not Found", "no such message queued");
		return;
	}
	spool_load(c->src.spool, id, true, c->mailbox, on_message_loaded,
	           control_pending_new(c, req));
}

/* ---- Engine questions ---- */

void
control_api_top(struct control *c, struct evhttp_request *req, const char *path)
{
	char *by = control_query_param(req, "by"), *limit = control_query_param(req, "limit");
	json_t *args = json_object();
	uint64_t n;

	if (by != NULL)
		json_object_set_new(args, "by", json_string(by));
	if (limit != NULL) {
		const char *end = units_digits(limit, &n);

		if (end == NULL || *end != '\0' || n > INT32_MAX) {
			control_reply_error(req, 400, "Bad Request", "limit: expected a number");
			json_decref(args);
			free(by);
			free(limit);
			return;
		}
		json_object_set_new(args, "limit", json_integer((json_int_t)n));
	}
	free(by);
	free(limit);
	ask_engine(c, req, QUEUE_ASK_TOP, args);
}

void
control_api_adaptive(struct control *c, struct evhttp_request *req, const char *path)
{
	ask_engine(c, req, QUEUE_ASK_ADAPTIVE, json_object());
}

void
control_api_overrides(struct control *c, struct evhttp_request *req, const char *path)
{
	ask_engine(c, req, QUEUE_ASK_OVERRIDES, json_object());
}

void
control_api_override_add(struct control *c, struct evhttp_request *req, const char *path)
{
	json_t *body = control_request_json(req);

	if (body != NULL)
		ask_engine(c, req, QUEUE_ASK_OVERRIDE_ADD, body);
}

void
control_api_override_remove(struct control *c, struct evhttp_request *req, const char *path)
{
	const char *id = path + strlen("/api/v1/shaping/overrides/");
	const char *end;
	uint64_t n;

	end = units_digits(id, &n);
	if (end == NULL || *end != '\0' || n == 0 || n > UINT32_MAX) {
		control_reply_error(req, 404, "Not Found", "no such override");
		return;
	}
	ask_engine(c, req, QUEUE_ASK_OVERRIDE_REMOVE, json_pack("{s:I}", "id", (json_int_t)n));
}
