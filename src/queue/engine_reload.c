/* engine_reload.c - a new configuration for the running engine (queue_engine_reconfigure).
 *
 * Everything that reads a file or can fail is done on the reloading thread, in a scratch
 * engine that has only the settings: the delivery settings with their defaults, the queue's
 * options, the CA store when it changed, the sources and pools, the shaping rules compiled
 * over the new delivery settings. The engine thread then takes them in one step, between two
 * events: no connection sees half of one configuration and half of the other. Attempts hold
 * a reference to the configuration they started on (their pool, source and route belong to
 * it), so the old one lives until the last of them ends. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"

struct engine_reload {
	struct queue_engine *e;
	struct queue_engine next;         /* settings only: cfg, dopts, port, ... classes */
	struct queue_options qo;          /* classes merged on the engine thread */
	struct delivery_tls_ctx *tls_ctx; /* a new CA store, NULL: the old one stays */
	struct egress *egress;
	struct shape_rules *rules; /* NULL: no shaping */
};

static bool
same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
reload_free(struct engine_reload *r)
{
	delivery_tls_ctx_free(r->tls_ctx);
	egress_free(r->egress);
	shape_rules_unref(r->rules);
	engine_classes_free(&r->next);
	config_unref(r->next.cfg);
	free(r);
}

/* On the engine thread. */
static void
reload_apply(void *arg)
{
	struct engine_reload *r = arg;
	struct queue_engine *e = r->e, *n = &r->next;
	const struct config *old = e->cfg;
	char err[256];

	e->cfg = n->cfg;
	n->cfg = NULL;
	e->dopts = n->dopts;
	if (r->tls_ctx != NULL) {
		e->retired_tls =
		    xrealloc(e->retired_tls, (e->nretired_tls + 1) * sizeof(*e->retired_tls));
		e->retired_tls[e->nretired_tls++] = e->tls_ctx;
		e->tls_ctx = r->tls_ctx;
		r->tls_ctx = NULL;
	}
	e->dopts.tls_ctx = e->tls_ctx;
	e->port = n->port;
	e->ip = n->ip;
	e->max_messages = n->max_messages;
	e->max_rcpts = n->max_rcpts;
	e->postmaster = n->postmaster;
	e->dsn_return_max = n->dsn_return_max;
	e->max_conns = n->max_conns;
	e->delay_notice_us = n->delay_notice_us;
	e->lifetime_us = n->lifetime_us;
	egress_free(e->egress);
	e->egress = r->egress;
	r->egress = NULL;
	/* The classes as the queue has them, with the new settings and new streams added. */
	engine_classes(e, &r->qo);
	if (queue_reconfigure(e->q, &r->qo, err, sizeof(err)) < 0)
		log_error("delivery: reload: %s; the queue keeps its previous settings", err);
	if (r->rules != NULL) {
		engine_shape_rules_set(e, r->rules);
		r->rules = NULL;
	}
	config_unref(old);
	reload_free(r);
	/* Mail held for a rate, a cap or a dead site asks the new settings now rather than at
	 * the old time (a suspension still in force holds it again at once). */
	queue_hold_none(e->q, time_now_us());
	log_info("delivery: new configuration in force");
	engine_kick(e);
}

struct engine_reload *
queue_engine_reload_prepare(struct queue_engine *e, const struct config *cfg, char *err,
                            size_t errlen)
{
	const struct delivery_conf *d = &cfg->delivery, *was = &e->cfg_latest->delivery;
	struct engine_reload *r = xcalloc(1, sizeof(*r));
	struct queue *trial;
	char why[256];

	r->e = e;
	r->next.cfg = config_ref(cfg);
	engine_settings(&r->next, &r->qo);
	/* The options as the queue will check them (the merge only adds reserve-less classes). */
	trial = queue_new(&r->qo, why, sizeof(why));
	if (trial == NULL) {
		snprintf(err, errlen, "delivery: %s", why);
		goto fail;
	}
	queue_free(trial);
	if (!same_string(d->tls_ca_file, was->tls_ca_file) ||
	    d->tls_min_version != was->tls_min_version) {
		struct delivery_tls_options topt = {
		    .ca_file = d->tls_ca_file,
		    .min_version = d->tls_min_version == 0x0304 ? 13 : 12,
		};

		r->tls_ctx = delivery_tls_ctx_new(&topt, err, errlen);
		if (r->tls_ctx == NULL)
			goto fail;
	}
	if (e->shape != NULL) {
		/* Over this configuration's delivery settings (and its default stream's retry). */
		r->rules = engine_shape_rules_load(&r->next, err, errlen);
		if (r->rules == NULL)
			goto fail;
	}
	r->egress = egress_new(cfg);
	return r;
fail:
	reload_free(r);
	return NULL;
}

void
queue_engine_reload_commit(struct engine_reload *r)
{
	r->e->cfg_latest = r->next.cfg;
	mailbox_post(r->e->mbox, reload_apply, r);
}

void
queue_engine_reload_cancel(struct engine_reload *r)
{
	if (r != NULL)
		reload_free(r);
}
