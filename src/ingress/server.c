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
accept_refuse(struct ingress *in, const struct config *cfg, int fd, const struct sockaddr *sa,
              const struct listener_conf *listener, const char *why)
{
	char line[256], ip[INET6_ADDRSTRLEN] = "?";
	const void *addr = sa->sa_family == AF_INET6
	                       ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
	                       : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
	json_t *f = json_object();
	int n;

	inet_ntop(sa->sa_family, addr, ip, sizeof(ip));
	n = snprintf(line, sizeof(line) - 2, "421 4.7.0 %s %s", cfg->hostname, why);
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
	const struct config *cfg = ctx->worker->gen->cfg;
	const struct smtp_limits *lim = &cfg->smtp;
	const char *why;

	if (ctx->worker->stopping) {
		close(fd);
		return;
	}
	if (client_table_enter(in->clients, sa, lim->max_sessions, lim->max_sessions_per_ip, &why) <
	    0) {
		accept_refuse(in, cfg, fd, sa, ctx->conf, why);
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

static struct listen_ctx *
listen_ctx_new(struct worker *w, const struct listener_conf *lc)
{
	struct listen_ctx *ctx = xcalloc(1, sizeof(*ctx));

	ctx->ingress = w->ingress;
	ctx->worker = w;
	ctx->conf = lc;
	return ctx;
}

static void
listen_ctx_free(struct listen_ctx *ctx)
{
	if (ctx->lev != NULL)
		evconnlistener_free(ctx->lev); /* closes the socket */
	free(ctx);
}

static int
worker_listen(struct worker *w, char *err, size_t errlen)
{
	const struct config *cfg = w->gen->cfg;

	w->listeners = xcalloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*w->listeners));
	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_conf *lc = &cfg->listeners[i];
		struct listen_ctx *ctx = listen_ctx_new(w, lc);

		w->listeners[w->nlisteners++] = ctx;
		ctx->lev = evconnlistener_new_bind(
		    w->base, accept_cb, ctx,
		    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT |
		        LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
		    LISTEN_BACKLOG, (const struct sockaddr *)&lc->sockaddr, (int)lc->socklen);
		if (ctx->lev == NULL) {
			snprintf(err, errlen, "listener \"%s\": cannot listen on %s: %s", lc->name,
			         lc->address, strerror(errno));
			return -1;
		}
		evconnlistener_set_error_cb(ctx->lev, accept_error_cb);
	}
	return 0;
}

static void
worker_unlisten(struct worker *w)
{
	for (size_t i = 0; i < w->nlisteners; i++)
		listen_ctx_free(w->listeners[i]);
	free(w->listeners);
	w->listeners = NULL;
	w->nlisteners = 0;
}

struct ingress_gen *
ingress_gen_ref(struct ingress_gen *g)
{
	atomic_fetch_add(&g->refs, 1);
	return g;
}

void
ingress_gen_unref(struct ingress_gen *g)
{
	if (g == NULL || atomic_fetch_sub(&g->refs, 1) > 1)
		return;
	dkim_signing_free(g->signing);
	tls_server_free(g->tls);
	route_rules_free(g->routing);
	access_users_unref(g->users);
	config_unref(g->cfg);
	free(g);
}

/* Everything sessions need from a configuration, made and checked: NULL with the reason
 * (file:line) in err. prev is the generation in use at a reload, NULL at start. A DKIM key
 * that cannot be read at a reload goes on with what prev read from the same file; one never
 * read is an error for a reload (what is in use stays, as the rest), while at start it is
 * logged and its messages get dkim.on_key_error, so that a key does not keep the server from
 * starting. */
static struct ingress_gen *
gen_new(const struct config *cfg, struct ingress_gen *prev, char *err, size_t errlen)
{
	struct ingress_gen *g = xcalloc(1, sizeof(*g));

	atomic_init(&g->refs, 1);
	g->cfg = config_ref(cfg);
	if (cfg->auth.users_file != NULL) {
		char why[1024];

		g->users = access_users_load(cfg->auth.users_file, why, sizeof(why));
		if (g->users == NULL && prev != NULL && prev->users != NULL &&
		    strcmp(prev->cfg->auth.users_file, cfg->auth.users_file) == 0) {
			log_error("%s: auth.users_file: %s; the users read before stay",
			          cfg->auth.users_where, why);
			g->users = access_users_ref(prev->users);
		}
		if (g->users == NULL) {
			snprintf(err, errlen, "%s: auth.users_file: %s", cfg->auth.users_where,
			         why);
			goto fail;
		}
	}
	g->routing = route_rules_new(cfg); /* classification (classify.c) */
	if (cfg->ntls_certificates > 0) {
		g->tls = tls_server_new(cfg, err, errlen);
		/* The same certificate settings, files the server (no longer root) cannot read or
		 * that are being replaced: what was read before stays in use. */
		if (g->tls == NULL && prev != NULL && prev->tls != NULL &&
		    config_same_settings(prev->cfg, cfg, "tls_certificate") &&
		    config_same_settings(prev->cfg, cfg, "tls")) {
			log_error("%s; the certificates read before stay in use", err);
			g->tls = tls_server_ref(prev->tls);
		}
		if (g->tls == NULL)
			goto fail;
	}
	if (cfg->ndkim_keys > 0) {
		char kerr[4096];
		unsigned nbad;

		g->signing = dkim_signing_renew(cfg, prev != NULL ? prev->signing : NULL, kerr,
		                                sizeof(kerr), &nbad);
		if (nbad > 0 && prev != NULL) {
			snprintf(err, errlen, "%s", kerr);
			goto fail;
		}
		if (nbad > 0)
			log_error("%s", kerr);
		log_info("DKIM: %zu signing keys, %u unusable", cfg->ndkim_keys, nbad);
	}
	return g;
fail:
	ingress_gen_unref(g);
	return NULL;
}

/* The Public Suffix List, read when a listener first verifies DMARC. */
static void
psl_load_if_needed(struct ingress *in, const struct config *cfg)
{
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
}

static void
workers_free(struct ingress *in)
{
	for (unsigned i = 0; i < in->nworkers; i++) {
		struct worker *w = &in->workers[i];

		worker_unlisten(w); /* only left when start failed: stop frees them on the loop */
		ingress_gen_unref(w->gen);
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
	ingress_metrics_free(&in->metrics);
	auth_server_free(in);
	reports_free(in);
	ingress_gen_unref(in->gen);
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
	ingress_metrics_init(&in->metrics);
	/* A key that cannot be read is an error, but not one to refuse service for: the messages
	 * it would sign follow dkim.on_key_error, and a reload reads it again. */
	in->gen = gen_new(cfg, NULL, err, errlen);
	if (in->gen == NULL)
		goto fail;
	if (in->gen->users != NULL)
		log_info("AUTH: %zu users from %s", access_users_count(in->gen->users),
		         cfg->auth.users_file);
	if (in->gen->tls != NULL)
		log_info("TLS: %zu certificates", cfg->ntls_certificates);
	if (auth_server_init(in, err, errlen) < 0)
		goto fail;
	if (reports_init(in, err, errlen) < 0)
		goto fail;
	internal_listener_init(in); /* the control plane's injection (inject.c) */
	psl_load_if_needed(in, cfg);
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
		w->gen = ingress_gen_ref(in->gen);
		w->base = event_base_new();
		if (w->base == NULL)
			fatal("cannot create an event base");
		w->mailbox = mailbox_new(w->base);
		w->line = xmalloc(cfg->smtp.command_line_max + 1);
		w->line_max = cfg->smtp.command_line_max;
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

/* On the worker's loop: its sockets start accepting. */
static void
worker_open(void *arg)
{
	struct worker *w = arg;

	w->accepting = true;
	for (size_t i = 0; i < w->nlisteners; i++)
		evconnlistener_enable(w->listeners[i]->lev);
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

/* ---- Live reload ---- */

/* Same address: a listener kept across a reload (its other settings may change). */
static bool
same_address(const struct listener_conf *a, const struct listener_conf *b)
{
	return a->socklen == b->socklen && memcmp(&a->sockaddr, &b->sockaddr, a->socklen) == 0;
}

static const struct listener_conf *
listener_at(const struct config *cfg, const struct listener_conf *lc)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (same_address(&cfg->listeners[i], lc))
			return &cfg->listeners[i];
	return NULL;
}

/* A listening socket of one worker for a new listener, bound and listening now (on the
 * calling thread), so that a reload fails before it changes anything when the address
 * cannot be had, and connections queue in the kernel until the worker takes the socket. */
static int
listen_socket(const struct listener_conf *lc, char *err, size_t errlen)
{
	int fd = socket(lc->sockaddr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int on = 1;

	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) < 0 ||
	    bind(fd, (const struct sockaddr *)&lc->sockaddr, lc->socklen) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "listener \"%s\": cannot listen on %s: %s", lc->name,
		         lc->address, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct worker_switch {
	struct worker *worker;
	struct ingress_gen *gen; /* a reference for the worker */
	int *fds;                /* per listener of gen: a new socket, or -1 (kept) */
};

/* On the worker's loop: new sessions start on the new generation; kept listeners go on
 * accepting on their sockets (nothing queued in them is lost), new ones start, removed ones
 * close. Sessions open now keep their generation. */
static void
worker_switch(void *arg)
{
	struct worker_switch *ws = arg;
	struct worker *w = ws->worker;
	const struct config *cfg = ws->gen->cfg;
	struct listen_ctx **next = xcalloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(*next));

	for (size_t i = 0; i < cfg->nlisteners; i++) {
		const struct listener_conf *lc = &cfg->listeners[i];
		struct listen_ctx *ctx = NULL;

		if (ws->fds[i] < 0) {
			for (size_t j = 0; j < w->nlisteners && ctx == NULL; j++)
				if (w->listeners[j] != NULL &&
				    same_address(w->listeners[j]->conf, lc)) {
					ctx = w->listeners[j];
					w->listeners[j] = NULL;
				}
		}
		if (ctx != NULL) {
			ctx->conf = lc;
		} else {
			ctx = listen_ctx_new(w, lc);
			ctx->lev = evconnlistener_new(w->base, accept_cb, ctx,
			                              LEV_OPT_CLOSE_ON_FREE |
			                                  LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
			                              -1, ws->fds[i]);
			if (ctx->lev == NULL)
				fatal("listener \"%s\": cannot take its socket", lc->name);
			evconnlistener_set_error_cb(ctx->lev, accept_error_cb);
			if (w->accepting && !w->stopping)
				evconnlistener_enable(ctx->lev);
		}
		next[i] = ctx;
	}
	/* The command line buffer fits the longest limit any session may still have. */
	if (cfg->smtp.command_line_max > w->line_max) {
		w->line = xrealloc(w->line, cfg->smtp.command_line_max + 1);
		w->line_max = cfg->smtp.command_line_max;
	}
	for (size_t j = 0; j < w->nlisteners; j++)
		if (w->listeners[j] != NULL)
			listen_ctx_free(w->listeners[j]); /* removed: its socket closes */
	free(w->listeners);
	w->listeners = next;
	w->nlisteners = cfg->nlisteners;
	ingress_gen_unref(w->gen);
	w->gen = ws->gen;
	free(ws->fds);
	free(ws);
}

int
ingress_reconfigure(struct ingress *in, const struct config *cfg, char *err, size_t errlen)
{
	struct ingress_gen *gen;
	int **fds;
	int rc = -1;

	gen = gen_new(cfg, in->gen, err, errlen);
	if (gen == NULL)
		return -1;
	/* The sockets of new listeners, one per worker (SO_REUSEPORT, as at start). */
	fds = xcalloc(in->nworkers, sizeof(*fds));
	for (unsigned i = 0; i < in->nworkers; i++) {
		fds[i] = xcalloc(cfg->nlisteners ? cfg->nlisteners : 1, sizeof(**fds));
		for (size_t j = 0; j < cfg->nlisteners; j++)
			fds[i][j] = -1;
	}
	for (size_t j = 0; j < cfg->nlisteners; j++) {
		const struct listener_conf *lc = &cfg->listeners[j];

		if (listener_at(in->cfg, lc) != NULL)
			continue;
		if (listen_probe(lc, err, errlen) < 0)
			goto out;
		for (unsigned i = 0; i < in->nworkers; i++)
			if ((fds[i][j] = listen_socket(lc, err, errlen)) < 0)
				goto out;
	}
	if (gen->users != NULL && in->verifier == NULL)
		in->verifier = access_verifier_new(0); /* before any session can see the users */
	psl_load_if_needed(in, cfg);
	auth_server_set_rates(in, cfg);
	for (unsigned i = 0; i < in->nworkers; i++) {
		struct worker_switch *ws = xmalloc(sizeof(*ws));

		ws->worker = &in->workers[i];
		ws->gen = ingress_gen_ref(gen);
		ws->fds = fds[i];
		fds[i] = NULL;
		mailbox_post(in->workers[i].mailbox, worker_switch, ws);
	}
	for (size_t j = 0; j < in->cfg->nlisteners; j++)
		if (listener_at(cfg, &in->cfg->listeners[j]) == NULL)
			log_info("listener \"%s\" on %s closed", in->cfg->listeners[j].name,
			         in->cfg->listeners[j].address);
	for (size_t j = 0; j < cfg->nlisteners; j++)
		if (listener_at(in->cfg, &cfg->listeners[j]) == NULL)
			log_info("listening on %s (listener \"%s\")", cfg->listeners[j].address,
			         cfg->listeners[j].name);
	ingress_gen_unref(in->gen);
	in->gen = ingress_gen_ref(gen);
	in->cfg = cfg;
	rc = 0;
out:
	for (unsigned i = 0; i < in->nworkers; i++) {
		if (fds[i] == NULL)
			continue;
		for (size_t j = 0; j < cfg->nlisteners; j++)
			if (fds[i][j] >= 0)
				close(fds[i][j]);
		free(fds[i]);
	}
	free(fds);
	ingress_gen_unref(gen);
	return rc;
}
