/* control/control.h - the control plane's HTTP side: metrics for Prometheus and the admin
 * API, served by libevent's evhttp on a thread of its own (127.0.0.1:8025 by default).
 *
 * Every handler reads counters the other components keep for any thread (atomics, or a
 * short lock): serving a scrape never waits for an SMTP or delivery loop. On an address
 * other than loopback a bearer token is required (the configuration refuses one without).
 *
 * Endpoints (docs/operations.md, "Control API"):
 *	GET /metrics            Prometheus text format 0.0.4
 *	GET /api/v1/status      the same counters as JSON
 *	GET /api/v1/shaping     the adaptive actions active now: {"actions": [...]}
 *	POST /api/v1/inject     HTTP injection through the SMTP pipeline (docs/injection.md)
 */
#ifndef DROVER_CONTROL_H
#define DROVER_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

struct config;
struct control;
struct control_reload;
struct ingress;
struct queue_engine;
struct spool;
struct webhooks;

/* What the control plane reports on. ingress and engine may be NULL (delivery off). */
struct control_sources {
	struct ingress *ingress;
	struct queue_engine *engine;
	struct spool *spool;
	struct webhooks *webhooks; /* NULL: none configured */
	/* POST /api/v1/reload: called on the control thread with a ticket; the server reloads
	 * (on its own thread) and answers with control_reload_done(). NULL: not offered. */
	void (*reload)(void *arg, struct control_reload *ticket);
	void *reload_arg;
};

/* The reload's report (a reference given), {"reloaded": true|false, ...}: 200 or 422. Any
 * thread, once per ticket. */
void control_reload_done(struct control_reload *, json_t *report);
/* The configuration the control plane uses from now on (its bearer token): a reload. Any
 * thread; cfg is referenced. */
void control_set_config(struct control *, const struct config *cfg);

struct control;

/* Binds control.address (while the server may still be root); NULL without error when
 * control.address is "" (off); NULL with a reason in err when the address cannot be bound.
 * cfg and the sources must outlive it. Nothing is served until control_run(). */
struct control *control_start(const struct config *, const struct control_sources *, char *err,
                              size_t errlen);
/* Starts serving, on a thread of its own. NULL is accepted. */
void control_run(struct control *);
/* Stops the thread and closes the socket. NULL is accepted. */
void control_stop(struct control *);

/* The Prometheus text for the sources (for tests and the CLI); free() it. */
char *control_metrics_text(const struct control_sources *, double uptime_s);
/* The same counters as a JSON object (a new reference). */
json_t *control_status_json(const struct control_sources *, double uptime_s);

/* The commands that ask a running server through the admin API (cli.c): `drover queue
 * summary`, `inspect`, `top`, `adaptive`, `override set|list|remove`, ... argv starts at the
 * command's first word ("queue", "inspect"). control_cli_handles: is it one of them?
 * control_cli: runs it; the exit status (0 done, 1 the server refused or failed, 2 usage).
 * control_cli_usage: a line per command, for `drover help`. */
bool control_cli_handles(int argc, char **argv);
int control_cli(int argc, char **argv);
void control_cli_usage(FILE *out);

#endif
