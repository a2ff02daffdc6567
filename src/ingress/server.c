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

static void worker_unlisten(struct worker *);

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

/* Each worker accepts on its own socket of every listener (SO_REUSEPORT: the kernel spreads
 * connections), so a new session costs no hand-off between threads. */
static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len, void *arg)
{
	struct listen_ctx *ctx = arg;
	struct ingress *in = ctx->ingress;
	const struct smtp_limits *lim = &in->cfg->smtp;
	const char *why;

	if (ctx->worker->stopping) {
		close(fd);
		return;
	}
	if (client_table_enter(in->clients, sa, lim->max_sessions, lim->max_sessions_per_ip, &why) <
	    0) {
		accept_refuse(in, fd, sa, ctx->conf, why);
		return;
	}
	session_start(ctx->worker, fd, sa, (socklen_t)len, ctx->conf);
}

static void
accept_resume(evutil_socket_t fd, short what, void *arg)
{
	evconnlistener_enable(arg);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct listen_ctx *ctx = arg;
	int err = EVUTIL_SOCKET_ERROR();
	struct timeval pause = {.tv_sec = 1};

	/* Out of descriptors (EMFILE, ENFILE) or memory: the pending connection stays in the
	 * backlog and the socket stays readable, so accepting again at once would spin. Pause
	 * this listener for a second, as Postfix's master does. */
	log_error("accept on %s: %s; pausing it for 1 s", ctx->conf->address,
	          evutil_socket_error_to_string(err));
	evconnlistener_disable(l);
	event_base_once(ctx->worker->base, -1, EV_TIMEOUT, accept_resume, l, &pause);
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
	worker_unlisten(w);
	TAILQ_FOREACH_SAFE(s, &w->sessions, entry, next)
	session_shutdown(s);
	worker_check_exit(w);
	if (w->nsessions > 0)
		event_base_once(w->base, -1, EV_TIMEOUT, worker_grace_expired, w, &tv);
}

/* Fails early, with the usual message, if someone already listens on the address: SO_REUSEPORT
 * would otherwise let a second server (of the same user) share the port silently. */
static int
listen_probe(const struct listener_conf *lc, char *err, size_t errlen)
{
	int fd = socket(lc->sockaddr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), on = 1;

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (fd < 0 || bind(fd, (const struct sockaddr *)&lc->sockaddr, lc->socklen) < 0) {
		snprintf(err, errlen, "listener \"%s\": cannot listen on %s: %s", lc->name,
		         lc->address, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int
worker_listen(struct worker *w, char *err, size_t errlen)
{
	const struct config *cfg = w->ingress->cfg;

	w->listeners = xcalloc(cfg->nlisteners, sizeof(*w->listeners));
	w->listen_ctx = xcalloc(cfg->nlisteners, sizeof(*w->listen_ctx));
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_conf *lc = &cfg->listeners[i];
		struct listen_ctx *ctx = &w->listen_ctx[i];

		ctx->ingress = w->ingress;
		ctx->worker = w;
		ctx->conf = lc;
		w->listeners[i] = evconnlistener_new_bind(
		    w->base, accept_cb, ctx,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
		        LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
		    LISTEN_BACKLOG, (const struct sockaddr *)&lc->sockaddr, (int)lc->socklen);
		if (w->listeners[i] == NULL) {
			snprintf(err, errlen, "listener \"%s\": cannot listen on %s: %s", lc->name,
			         lc->address, strerror(errno));
			return -1;
		}
		evconnlistener_set_error_cb(w->listeners[i], accept_error_cb);
		w->nlisteners++;
	}
	return 0;
}

static void
worker_unlisten(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++)
		evconnlistener_free(w->listeners[i]);
	free(w->listeners);
	free(w->listen_ctx);
	w->listeners = NULL;
	w->listen_ctx = NULL;
	w->nlisteners = 0;
}

static void
workers_free(struct ingress *in)
{
	for (unsigned i = 0; i < in->nworkers; i++) {
		struct worker *w = &in->workers[i];

		worker_unlisten(w); /* only left when start failed: stop frees them on the loop */
		if (w->resolver != NULL)
			dns_resolver_free(w->resolver);
		if (w->mailbox != NULL)
			mailbox_free(w->mailbox);
		if (w->base != NULL)
			event_base_free(w->base);
		free(w->line);
	}
	free(in->workers);
	client_table_free(in->clients);
	dkim_signing_free(in->signing);
	tls_server_free(in->tls);
	auth_server_free(in);
	reports_free(in);
	route_rules_free(in->routing);
	dmarc_psl_free(in->psl);
	free(in);
}

struct ingress *
ingress_start(struct event_base *base, const struct config *cfg, struct spool *spool,
              struct eventlog *log, const struct ingress_hooks *hooks, char *err, size_t errlen)
{
	struct ingress *in = xcalloc(1, sizeof(*in));
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

	in->base = base;
	in->cfg = cfg;
	in->spool = spool;
	in->log = log;
	in->hooks = hooks;
	in->clients = client_table_new();
	if (auth_server_init(in, err, errlen) < 0)
		goto fail;
	if (reports_init(in, err, errlen) < 0)
		goto fail;
	in->routing = route_rules_new(cfg); /* classification (classify.c) */
	if (cfg->ntls_certificates > 0) {
		in->tls = tls_server_new(cfg, err, errlen);
		if (in->tls == NULL)
			goto fail;
		log_info("TLS: %zu certificates", cfg->ntls_certificates);
	}
	if (cfg->ndkim_keys > 0) {
		char kerr[4096];
		unsigned nbad;

		/* A key that cannot be read is an error, but not one to refuse service for: the
		 * messages it would sign follow dkim.on_key_error, and SIGHUP reads it again. */
		in->signing = dkim_signing_new(cfg, kerr, sizeof(kerr), &nbad);
		if (nbad > 0)
			log_error("%s", kerr);
		log_info("DKIM: %zu signing keys, %u unusable", cfg->ndkim_keys, nbad);
	}
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		char perr[256];

		if (!(cfg->listeners[i].verify & VERIFY_DMARC) || in->psl != NULL)
			continue;
		/* Without the list DMARC answers temperror; everything else still works. */
		in->psl = dmarc_psl_load(NULL, perr, sizeof(perr));
		if (in->psl == NULL)
			log_error("DMARC: no Public Suffix List: %s", perr);
		else
			log_info("DMARC: Public Suffix List from %s", dmarc_psl_source(in->psl));
	}
	in->nworkers = cfg->threads ? cfg->threads : (unsigned)(ncpu > 0 ? ncpu : 1);
	in->workers = xcalloc(in->nworkers, sizeof(*in->workers));
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (listen_probe(&cfg->listeners[i], err, errlen) < 0)
			goto fail;
	/* Every socket is bound before any thread runs: privileged ports are taken while we
	 * still may, and a failure leaves nothing running. */
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
		if (worker_listen(w, err, errlen) < 0)
			goto fail;
	}
	for (unsigned i = 0; i < in->nworkers; i++)
		if (pthread_create(&in->workers[i].thread, NULL, worker_main, &in->workers[i]) != 0)
			fatal("cannot start SMTP thread %u", i);
	for (size_t i = 0; i < cfg->nlisteners; i++)
		log_info("listening on %s (listener \"%s\")", cfg->listeners[i].address,
		         cfg->listeners[i].name);
	log_info("SMTP: %u threads", in->nworkers);
	return in;
fail:
	workers_free(in);
	return NULL;
}

void
ingress_stop(struct ingress *in, unsigned grace_s)
{
	for (unsigned i = 0; i < in->nworkers; i++) {
		struct worker_stop *ws = xmalloc(sizeof(*ws));
		ws->worker = &in->workers[i];
		ws->grace_s = grace_s;
		mailbox_post(in->workers[i].mailbox, worker_stop, ws);
	}
	for (unsigned i = 0; i < in->nworkers; i++)
		pthread_join(in->workers[i].thread, NULL);
	workers_free(in);
}

void
ingress_stats(struct ingress *in, struct ingress_stats *st)
{
	st->sessions_open = client_table_total(in->clients);
	st->sessions_total = atomic_load(&in->sessions_total);
	st->messages_accepted = atomic_load(&in->messages_accepted);
	st->messages_rejected = atomic_load(&in->messages_rejected);
}

unsigned
ingress_reload_keys(struct ingress *in)
{
	return in->signing != NULL ? dkim_signing_reload(in->signing) : 0;
}

int
ingress_reload_certificates(struct ingress *in)
{
	char err[1024];

	if (in->tls == NULL)
		return 0;
	if (tls_server_reload(in->tls, err, sizeof(err)) < 0) {
		log_error("TLS: certificates not reloaded, the old ones stay: %s", err);
		return -1;
	}
	log_info("TLS: %zu certificates reloaded", in->cfg->ntls_certificates);
	return 0;
}

/* On the worker's loop: its sockets start accepting. */
static void
worker_open(void *arg)
{
	struct worker *w = arg;

	for (size_t i = 0; i < w->nlisteners; i++)
		evconnlistener_enable(w->listeners[i]);
}

void
ingress_open(struct ingress *in)
{
	for (unsigned i = 0; i < in->nworkers; i++)
		mailbox_post(in->workers[i].mailbox, worker_open, &in->workers[i]);
}

void
ingress_set_suppression(struct ingress *in, struct suppress *list)
{
	in->suppress = list;
}
