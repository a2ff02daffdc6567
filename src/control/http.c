/* http.c - the control plane's HTTP server: one thread, one event base, evhttp. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <sys/queue.h>
#include <event2/thread.h>

#include "conf/conf.h"
#include "control/internal.h"
#include "core/core.h"
#include "queue/queue.h"

/* Constant time, so that a token cannot be guessed a character at a time. */
static bool
token_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned char diff = la != lb;

	for (size_t i = 0; i < la; i++)
		diff |= (unsigned char)(a[i] ^ b[i % (lb ? lb : 1)]);
	return diff == 0;
}

void
control_reply_json(struct evhttp_request *req, int code, const char *reason, json_t *body)
{
	struct evbuffer *out = evbuffer_new();
	char *text = json_dumps(body, JSON_COMPACT);

	evbuffer_add_printf(out, "%s\n", text);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "application/json");
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
	free(text);
	json_decref(body);
}

void
control_reply_error(struct evhttp_request *req, int code, const char *reason, const char *error)
{
	control_reply_json(req, code, reason, json_pack("{s:s}", "error", error));
}

json_t *
control_request_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *body;
	char why[256];

	if (len == 0)
		return json_object();
	body = json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, &jerr);
	if (body == NULL) {
		snprintf(why, sizeof(why), "the body is not JSON: %s (line %d, column %d)",
		         jerr.text, jerr.line, jerr.column);
		control_reply_error(req, 400, "Bad Request", why);
		return NULL;
	}
	if (!json_is_object(body)) {
		json_decref(body);
		control_reply_error(req, 400, "Bad Request", "the body must be a JSON object");
		return NULL;
	}
	return body;
}

char *
control_query_param(struct evhttp_request *req, const char *name)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
	struct evkeyvalq params;
	const char *v;
	char *copy = NULL;

	if (query == NULL)
		return NULL;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(query, &params) == 0 &&
	    (v = evhttp_find_header(&params, name)) != NULL)
		copy = xstrdup(v);
	evhttp_clear_headers(&params);
	return copy;
}

static bool
authorized(struct control *c, struct evhttp_request *req)
{
	const char *token = c->cfg->control.token, *h;

	if (token == NULL || token[0] == '\0')
		return true;
	h = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	return h != NULL && strncmp(h, "Bearer ", 7) == 0 && token_equal(h + 7, token);
}

static void
handle_metrics(struct control *c, struct evhttp_request *req, const char *path)
{
	struct evbuffer *out = evbuffer_new();
	char *text = control_metrics_text(&c->src, (double)(time_mono_us() - c->started_us) / 1e6);

	evbuffer_add(out, text, strlen(text));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
	                  "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
	free(text);
}

static void
handle_status(struct control *c, struct evhttp_request *req, const char *path)
{
	control_reply_json(
	    req, 200, "OK",
	    control_status_json(&c->src, (double)(time_mono_us() - c->started_us) / 1e6));
}

static void
handle_shaping(struct control *c, struct evhttp_request *req, const char *path)
{
	json_t *o = json_object();

	json_object_set_new(o, "actions", queue_engine_shaping_json(c->src.engine));
	control_reply_json(req, 200, "OK", o);
}

/* The endpoints (docs/operations.md, "Control API"). A path ending in '/' is a prefix: the
 * handler gets the whole path and reads what follows. */
static const struct endpoint {
	enum evhttp_cmd_type method;
	const char *path;
	control_handler *handler;
} endpoints[] = {
    {EVHTTP_REQ_GET, "/metrics", handle_metrics},
    {EVHTTP_REQ_GET, "/api/v1/status", handle_status},
    {EVHTTP_REQ_GET, "/api/v1/shaping", handle_shaping},
    {EVHTTP_REQ_POST, "/api/v1/reload", control_handle_reload},
    {EVHTTP_REQ_POST, "/api/v1/suspend", control_handle_admin},
    {EVHTTP_REQ_POST, "/api/v1/resume", control_handle_admin},
    {EVHTTP_REQ_GET, "/api/v1/suspensions", control_handle_admin},
    {EVHTTP_REQ_POST, "/api/v1/bounce", control_handle_admin},
    {EVHTTP_REQ_POST, "/api/v1/delete", control_handle_admin},
    {EVHTTP_REQ_POST, "/api/v1/retry", control_handle_admin},
    {EVHTTP_REQ_POST, "/api/v1/inject", control_handle_inject},
    {EVHTTP_REQ_GET, "/api/v1/queue/summary", control_api_queue_summary},
    {EVHTTP_REQ_GET, "/api/v1/messages/", control_api_message},
    {EVHTTP_REQ_GET, "/api/v1/top", control_api_top},
    {EVHTTP_REQ_GET, "/api/v1/adaptive", control_api_adaptive},
    {EVHTTP_REQ_GET, "/api/v1/shaping/overrides", control_api_overrides},
    {EVHTTP_REQ_POST, "/api/v1/shaping/overrides", control_api_override_add},
    {EVHTTP_REQ_DELETE, "/api/v1/shaping/overrides/", control_api_override_remove},
};

static bool
path_matches(const char *pattern, const char *path)
{
	size_t n = strlen(pattern);

	if (n > 0 && pattern[n - 1] == '/')
		return strncmp(path, pattern, n) == 0 && path[n] != '\0';
	return strcmp(path, pattern) == 0;
}

static void
on_request(struct evhttp_request *req, void *arg)
{
	struct control *c = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char allow[64] = "";

	if (!authorized(c, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
		                  "Bearer");
		control_reply_error(req, 401, "Unauthorized", "a bearer token is required");
		return;
	}
	if (path == NULL)
		path = "/";
	for (size_t i = 0; i < nitems(endpoints); i++) {
		const struct endpoint *ep = &endpoints[i];

		if (!path_matches(ep->path, path))
			continue;
		if (ep->method == method ||
		    (method == EVHTTP_REQ_HEAD && ep->method == EVHTTP_REQ_GET)) {
			ep->handler(c, req, path);
			return;
		}
		snprintf(allow + strlen(allow), sizeof(allow) - strlen(allow), "%s%s",
		         allow[0] ? ", " : "",
		         ep->method == EVHTTP_REQ_GET    ? "GET"
		         : ep->method == EVHTTP_REQ_POST ? "POST"
		                                         : "DELETE");
	}
	if (allow[0] == '\0') {
		control_reply_error(req, 404, "Not Found", "no such endpoint");
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	control_reply_error(req, 405, "Method Not Allowed", "method not allowed here");
}

static void *
control_main(void *arg)
{
	struct control *c = arg;

	event_base_loop(c->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

struct control *
control_start(const struct config *cfg, const struct control_sources *src, char *err, size_t errlen)
{
	const struct sockaddr *sa = (const struct sockaddr *)&cfg->control.sockaddr;
	struct control *c;
	char host[64];
	unsigned port;

	if (cfg->control.address == NULL || cfg->control.address[0] == '\0')
		return NULL;
	c = xcalloc(1, sizeof(*c));
	c->cfg = config_ref(cfg);
	c->src = *src;
	c->started_us = time_mono_us();
	c->base = event_base_new();
	if (c->base == NULL)
		fatal("control: cannot create an event loop");
	c->mailbox = mailbox_new(c->base);
	c->http = evhttp_new(c->base);
	evhttp_set_gencb(c->http, on_request, c);
	/* Requests are small but for injections (control.max_request_size, read at start); a
	 * client cannot make the server hold a larger one. */
	evhttp_set_max_headers_size(c->http, 16 * 1024);
	evhttp_set_max_body_size(c->http, cfg->control.max_request_size);
	evhttp_set_timeout(c->http, 30);
	evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
	                                        EVHTTP_REQ_DELETE);
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
	}
	if (evhttp_bind_socket(c->http, host, (uint16_t)port) != 0) {
		snprintf(err, errlen, "control.address %s: cannot listen there (in use?)",
		         cfg->control.address);
		evhttp_free(c->http);
		mailbox_free(c->mailbox);
		event_base_free(c->base);
		config_unref(c->cfg);
		free(c);
		return NULL;
	}
	return c;
}

void
control_run(struct control *c)
{
	if (c == NULL)
		return;
	if (pthread_create(&c->thread, NULL, control_main, c) != 0)
		fatal("control: cannot start its thread");
	c->running = true;
	log_info("control: HTTP API and metrics on %s%s", c->cfg->control.address,
	         c->cfg->control.token != NULL && c->cfg->control.token[0] ? " (bearer token)"
	                                                                   : "");
}

static void
control_quit(void *arg)
{
	struct control *c = arg;

	event_base_loopbreak(c->base);
}

void
control_stop(struct control *c)
{
	if (c == NULL)
		return;
	if (c->running) {
		mailbox_post(c->mailbox, control_quit, c);
		pthread_join(c->thread, NULL);
	}
	control_admin_stop(c); /* its threads may still post to the mailbox */
	control_inject_stop(c);
	evhttp_free(c->http);
	mailbox_free(c->mailbox);
	event_base_free(c->base);
	config_unref(c->cfg);
	free(c);
}

struct config_swap {
	struct control *c;
	const struct config *cfg;
};

static void
config_swap(void *arg)
{
	struct config_swap *sw = arg;

	config_unref(sw->c->cfg);
	sw->c->cfg = sw->cfg;
	free(sw);
}

void
control_set_config(struct control *c, const struct config *cfg)
{
	struct config_swap *sw;

	if (c == NULL)
		return;
	sw = xmalloc(sizeof(*sw));
	sw->c = c;
	sw->cfg = config_ref(cfg);
	mailbox_post(c->mailbox, config_swap, sw);
}
