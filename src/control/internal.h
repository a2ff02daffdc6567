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
	const struct config *cfg;
	struct control_sources src;
	struct event_base *base;
	struct evhttp *http;
	struct mailbox *mailbox; /* to run something on the control thread from another one */
	pthread_t thread;
	bool running;
	uint64_t started_us;
};

typedef void control_handler(struct control *, struct evhttp_request *, const char *path);

/* Replies; body is consumed (a new reference is given up). */
void control_reply_json(struct evhttp_request *, int code, const char *reason, json_t *body);
void control_reply_error(struct evhttp_request *, int code, const char *reason,
                         const char *error);
/* The request's body as JSON (an object), or NULL after answering 400 with the reason. An
 * empty body is an empty object. */
json_t *control_request_json(struct evhttp_request *);
/* A query parameter of the request's URI (decoded, malloc'd), NULL if absent. */
char *control_query_param(struct evhttp_request *, const char *name);

#endif
