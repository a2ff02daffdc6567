/* engine_dsn.c - a DSN for a job's failed recipients, injected into the spool as a new
 * message from the null sender and queued like any other.
 *
 * Who is told follows dsn_route() (RFC 3461 NOTIFY; a null sender never, except that its
 * failures go to delivery.postmaster when one is configured). The DSN's queue id is its
 * unique token (Message-ID, MIME boundary). It is committed before the recipients it reports
 * are marked failed, so a crash in between sends it twice rather than never. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "bounce/bounce.h"
#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"

struct dsn_ctx {
	struct job *j;
	void (*done)(struct job *, bool ok);
	char id[SPOOL_ID_LEN + 1];
	char *to;
	json_t *reported;
};

static void
on_committed(void *arg, enum spool_status st)
{
	struct dsn_ctx *ctx = arg;
	struct queue_engine *e = ctx->j->e;
	uint64_t now = time_now_us();
	char dom[DNS_NAME_MAX + 3];
	bool ok = st == SPOOL_OK;

	e->spool_ops--;
	if (ok) {
		engine_domain(ctx->to, dom, sizeof(dom));
		atomic_fetch_add(&e->st_dsns, 1);
		if (dom[0] != '\0' && queue_add(e->q, ctx->id, dom, now, 0, 0) == 0) {
			atomic_fetch_add(&e->st_items, 1);
			engine_kick(e);
		} else
			log_warn(
			    "delivery: DSN %s to <%s>: cannot be queued now (delivered after the "
			    "next start)",
			    ctx->id, ctx->to);
		if (e->log != NULL) {
			json_t *o = json_object();

			json_object_set_new(o, "id", json_string(ctx->id));
			json_object_set_new(o, "original_id", json_string(ctx->j->id));
			json_object_set_new(o, "recipient", json_string(ctx->to));
			json_object_set_new(o, "action", json_string("failed"));
			json_object_set(o, "reported", ctx->reported);
			eventlog_write(e->log, "DsnQueued", o);
		}
	} else
		log_error("delivery: message %s: the DSN could not be stored (%s): its recipients "
		          "stay queued",
		          ctx->j->id, st == SPOOL_FULL ? "spool full" : "spool error");
	ctx->done(ctx->j, ok);
	json_decref(ctx->reported);
	free(ctx->to);
	free(ctx);
	engine_check_stopped(e);
}

bool
dsn_inject(struct job *j, void (*done)(struct job *, bool ok))
{
	struct queue_engine *e = j->e;
	const struct envelope *env = j->env;
	struct dsn_rcpt *dr = xcalloc(j->nr ? j->nr : 1, sizeof(*dr));
	char **diag = xcalloc(j->nr ? j->nr : 1, sizeof(*diag));
	enum dsn_to to = DSN_TO_NOBODY;
	struct spool_message *msg;
	struct dsn_report report;
	struct dsn_result res;
	struct envelope denv = {0};
	struct evbuffer *out;
	struct dsn_ctx *ctx;
	uint64_t now = time_now_us();
	char err[256];
	size_t n = 0;

	for (size_t k = 0; k < j->nr; k++) {
		const struct rcpt_result *r = &j->res[k];
		enum dsn_to route;

		if (r->fate != R_BOUNCED && r->fate != R_EXPIRED)
			continue;
		route = dsn_route(env, j->ridx[k], DSN_FAILED, e->postmaster != NULL);
		if (route == DSN_TO_NOBODY)
			continue;
		to = route;
		if (r->code != 0)
			diag[n] = xasprintf("%d %s %s", r->code, r->status, r->text ? r->text : "");
		else if (env->rcpt[j->ridx[k]].last_reply != NULL)
			diag[n] = xstrdup(env->rcpt[j->ridx[k]].last_reply);
		dr[n] = (struct dsn_rcpt){
		    .index = j->ridx[k],
		    .action = DSN_FAILED,
		    .status = r->fate == R_EXPIRED ? "4.4.7" : r->status,
		    .remote_mta = r->mx,
		    .diagnostic = diag[n],
		    .diagnostic_type = r->local ? "X-Drover" : NULL,
		    .last_attempt_us = j->expire_only ? 0 : now,
		};
		n++;
	}
	if (n == 0) {
		free(dr);
		free(diag);
		return false;
	}

	msg = spool_message_begin(e->spool, e->mbox);
	report = (struct dsn_report){
	    .env = env,
	    .content = evbuffer_pullup(j->body, -1),
	    .content_len = evbuffer_get_length(j->body),
	    .rcpt = dr,
	    .nrcpt = n,
	    .hostname = e->cfg->hostname,
	    .now_us = now,
	    .unique = spool_message_id(msg),
	    .postmaster = to == DSN_TO_POSTMASTER ? e->postmaster : NULL,
	    .return_max = e->dsn_return_max,
	};
	out = evbuffer_new();
	if (dsn_compose(&report, out, &res, err, sizeof(err)) < 0) {
		log_error("delivery: message %s: no DSN: %s", j->id, err);
		spool_message_abort(msg);
		evbuffer_free(out);
		for (size_t k = 0; k < n; k++)
			free(diag[k]);
		free(diag);
		free(dr);
		return false;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->j = j;
	ctx->done = done;
	strlcpy_s(ctx->id, spool_message_id(msg), sizeof(ctx->id));
	ctx->to = xstrdup(res.rcpt);
	ctx->reported = json_array();
	for (size_t k = 0; k < n; k++)
		json_array_append_new(ctx->reported, json_string(env->rcpt[dr[k].index].address));
	dsn_envelope(&res, now, &denv);
	e->spool_ops++;
	spool_message_commit(msg, &denv, out, on_committed, ctx);
	envelope_clear(&denv);
	evbuffer_free(out);
	for (size_t k = 0; k < n; k++)
		free(diag[k]);
	free(diag);
	free(dr);
	return true;
}
