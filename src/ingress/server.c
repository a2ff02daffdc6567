/* server.c - listeners, the SMTP threads, and the hand-off of each connection.
 *
 * Connections are accepted on the main event loop, which applies the session limits (in
 * total and per client address) before a session exists, then passes the socket to a
 * worker thread round robin. Each worker owns its sessions entirely; the only things it
 * shares are the client table (counted out on close) and the spool's request queue. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "ingress/internal.h"

#define LISTEN_BACKLOG 1024

struct handoff {
	int fd;
	struct sockaddr_storage peer;
	socklen_t len;
	const struct listener_conf *listener;
	struct worker *worker;
};

static void
handoff_run(void *arg)
{
	struct handoff *h = arg;

	if (h->worker->stopping) {
		client_table_leave(h->worker->ingress->clients, (struct sockaddr *)&h->peer);
		close(h->fd);
	} else
		session_start(h->worker, h->fd, (struct sockaddr *)&h->peer, h->len, h->listener);
	free(h);
}

/* Over a session limit: the refusal replaces the greeting (RFC 5321 §3.1), written
 * straight to the new socket; if the client's window is full, it just sees the close. */
static void
accept_refuse(struct ingress *in, int fd, const struct sockaddr *sa,
              const struct listener_conf *listener, const char *why)
{
	char line[256], ip[INET6_ADDRSTRLEN] = "?";
	const void *addr = sa->sa_family == AF_INET6
	                       ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
	                       : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	json_t *f = json_object();
	int n;

	inet_ntop(sa->sa_family, addr, ip, sizeof(ip));
	n = snprintf(line, sizeof(line) - 2, "421 4.7.0 %s %s", in->cfg->hostname, why);
	json_object_set_new(f, "client_ip", json_string(ip));
	json_object_set_new(f, "listener", json_string(listener->name));
	json_object_set_new(f, "command", json_string("CONNECT"));
	json_object_set_new(f, "reply", json_string(line));
	eventlog_write(in->log, "Rejection", f);
	memcpy(line + n, "\r\n", 2);
	if (send(fd, line, (size_t)n + 2, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		log_debug("refusing [%s]: %s", ip, strerror(errno));
	close(fd);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct listen_ctx *ctx = arg;
	struct ingress *in = ctx->ingress;
	const struct smtp_limits *lim = &in->cfg->smtp;
	struct handoff *h;
	const char *why;

	if (client_table_enter(in->clients, sa, lim->max_sessions, lim->max_sessions_per_ip, &why) <
	    0) {
		accept_refuse(in, fd, sa, ctx->conf, why);
		return;
	}
	h = xcalloc(1, sizeof(*h));
	h->fd = fd;
	memcpy(&h->peer, sa, (size_t)len);
	h->len = (socklen_t)len;
	h->listener = ctx->conf;
	h->worker = &in->workers[in->next_worker++ % in->nworkers];
	mailbox_post(h->worker->mailbox, handoff_run, h);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	int err = EVUTIL_SOCKET_ERROR();

	/* EMFILE and friends: the listener backs off by itself at the next event; say why. */
	log_error("accept: %s", evutil_socket_error_to_string(err));
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	event_base_loop(w->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void
worker_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;
	struct session *s, *next;

	/* Idle clients had their 421; whoever is still here is not reading. Sessions waiting
	 * for a commit stay: the spool answers them. */
	TAILQ_FOREACH_SAFE(s, &w->sessions, entry, next)
	if (s->state != S_COMMIT)
		session_kill(s);
}

void
worker_check_exit(struct worker *w)
{
	if (w->stopping && w->nsessions == 0 && w->commits_pending == 0)
		event_base_loopexit(w->base, NULL);
}

struct worker_stop {
	struct worker *worker;
	unsigned grace_s;
};

static void
worker_stop(void *arg)
{
	struct worker_stop *ws = arg;
	struct worker *w = ws->worker;
	struct timeval tv = {.tv_sec = ws->grace_s};
	struct session *s, *next;

	free(ws);
	w->stopping = true;
	TAILQ_FOREACH_SAFE(s, &w->sessions, entry, next)
	session_shutdown(s);
	worker_check_exit(w);
	if (w->nsessions > 0)
		event_base_once(w->base, -1, EV_TIMEOUT, worker_grace_expired, w, &tv);
}

static int
ingress_listen(struct ingress *in, char *err, size_t errlen)
{
	const struct config *cfg = in->cfg;

	in->listeners = xcalloc(cfg->nlisteners, sizeof(*in->listeners));
	in->listen_ctx = xcalloc(cfg->nlisteners, sizeof(*in->listen_ctx));
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_conf *lc = &cfg->listeners[i];
		struct listen_ctx *ctx = &in->listen_ctx[i];

		ctx->ingress = in;
		ctx->conf = lc;
		in->listeners[i] = evconnlistener_new_bind(
		    in->base, accept_cb, ctx,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
		    LISTEN_BACKLOG, (const struct sockaddr *)&lc->sockaddr, (int)lc->socklen);
		if (in->listeners[i] == NULL) {
			snprintf(err, errlen, "listener \"%s\": cannot listen on %s: %s", lc->name,
			         lc->address, strerror(errno));
			return -1;
		}
		evconnlistener_set_error_cb(in->listeners[i], accept_error_cb);
		in->nlisteners++;
		log_info("listening on %s (listener \"%s\")", lc->address, lc->name);
	}
	return 0;
}

static void
ingress_unlisten(struct ingress *in)
{
	for (size_t i = 0; i < in->nlisteners; i++)
		evconnlistener_free(in->listeners[i]);
	free(in->listeners);
	free(in->listen_ctx);
	in->listeners = NULL;
	in->listen_ctx = NULL;
	in->nlisteners = 0;
}

struct ingress *
ingress_start(struct event_base *base, const struct config *cfg, struct spool *spool,
              struct eventlog *log, char *err, size_t errlen)
{
	struct ingress *in = xcalloc(1, sizeof(*in));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	in->base = base;
	in->cfg = cfg;
	in->spool = spool;
	in->log = log;
	in->clients = client_table_new();
	if (ingress_listen(in, err, errlen) < 0) {
		ingress_unlisten(in);
		client_table_free(in->clients);
		free(in);
		return NULL;
	}
	in->nworkers = cfg->threads ? cfg->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
	in->workers = xcalloc(in->nworkers, sizeof(*in->workers));
	for (unsigned i = 0; i < in->nworkers; i++) {
		struct worker *w = &in->workers[i];

		w->ingress = in;
		w->index = i;
		w->base = event_base_new();
		if (w->base == NULL)
			fatal("cannot create an event base");
		w->mailbox = mailbox_new(w->base);
		w->line = xmalloc(cfg->smtp.command_line_max + 1);
		TAILQ_INIT(&w->sessions);
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
			fatal("cannot start SMTP thread %u", i);
	}
	log_info("SMTP: %u threads", in->nworkers);
	return in;
}

void
ingress_stop(struct ingress *in, unsigned grace_s)
{
	ingress_unlisten(in);
	for (unsigned i = 0; i < in->nworkers; i++) {
		struct worker_stop *ws = xmalloc(sizeof(*ws));
		ws->worker = &in->workers[i];
		ws->grace_s = grace_s;
		mailbox_post(in->workers[i].mailbox, worker_stop, ws);
	}
	for (unsigned i = 0; i < in->nworkers; i++) {
		struct worker *w = &in->workers[i];
		pthread_join(w->thread, NULL);
		mailbox_free(w->mailbox);
		event_base_free(w->base);
		free(w->line);
	}
	free(in->workers);
	client_table_free(in->clients);
	free(in);
}

void
ingress_stats(struct ingress *in, struct ingress_stats *st)
{
	st->sessions_open = client_table_total(in->clients);
	st->sessions_total = atomic_load(&in->sessions_total);
	st->messages_accepted = atomic_load(&in->messages_accepted);
	st->messages_rejected = atomic_load(&in->messages_rejected);
}
