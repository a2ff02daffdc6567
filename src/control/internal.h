/* control/internal.h - private to the control component: the server, its endpoints, and
 * the replies they share.
 *
 * Every endpoint is a row of the table in http.c: a method, a path (exact, or a prefix ending
 * in '/'), and a handler. A handler answers with control_reply_*() now, or keeps the request
 * and answers later from the control thread (after another thread posted the answer to
 * control->mailbox): evhttp holds the connection meanwhile. */
#ifndef DROVER_CONTROL_INTERNAL_H
#define DROVER_CONTROL_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "control/control.h"

struct evhttp_request;

struct control {
	const struct config *cfg; /* a reference, swapped on the control thread by a reload */
	struct control_sources src;
	struct event_base *base;
	struct evhttp *http;
	struct mailbox *mailbox; /* to run something on the control thread from another one */
	pthread_t thread;
	bool running;
	uint64_t started_us;
	struct control_admin *admin;    /* api_admin.c: its requests' threads; NULL until one */
	struct inject_job *inject_jobs; /* injections in progress (inject.c) */
};

typedef void control_handler(struct control *, struct evhttp_request *, const char *path);

/* api_admin.c: suspend, resume, suspensions, bounce, delete, retry (the path's last word
 * is the verb); control_admin_stop waits for the requests' threads, after the loop ends. */
void control_handle_admin(struct control *, struct evhttp_request *, const char *path);
void control_admin_stop(struct control *);

/* api_reload.c */
void control_handle_reload(struct control *, struct evhttp_request *, const char *path);

/* inject.c: POST /api/v1/inject; stop: drops the injections in progress (the loop has
 * stopped). */
void control_handle_inject(struct control *, struct evhttp_request *, const char *path);
void control_inject_stop(struct control *);

/* api_queue.c: the queue's and the shaping state's read verbs, and shaping overrides. */
void control_api_queue_summary(struct control *, struct evhttp_request *, const char *path);
void control_api_message(struct control *, struct evhttp_request *, const char *path);
void control_api_top(struct control *, struct evhttp_request *, const char *path);
void control_api_adaptive(struct control *, struct evhttp_request *, const char *path);
void control_api_overrides(struct control *, struct evhttp_request *, const char *path);
void control_api_override_add(struct control *, struct evhttp_request *, const char *path);
void control_api_override_remove(struct control *, struct evhttp_request *, const char *path);
/* A request answered later, from this thread (after another thread posted the answer to
 * control->mailbox): if its client has gone meanwhile, the answer is dropped. reply consumes
 * the body and the pending request. */
struct control_pending;
struct control_pending *control_pending_new(struct control *, struct evhttp_request *);
void control_pending_reply(struct control_pending *, int status, json_t *body);

/* Replies; body is consumed (a new reference is given up). */
void control_reply_json(struct evhttp_request *, int code, const char *reason, json_t *body);
void control_reply_error(struct evhttp_request *, int code, const char *reason, const char *error);
/* The request's body as JSON (an object), or NULL after answering 400 with the reason. An
 * empty body is an empty object. */
json_t *control_request_json(struct evhttp_request *);
/* A query parameter of the request's URI (decoded, malloc'd), NULL if absent. */
char *control_query_param(struct evhttp_request *, const char *name);

#endif
