/* engine_dsn.c - DSNs about a job's recipients, injected into the spool as new messages from
 * the null sender and queued like any other:
 *
 *	failed    recipients bounced or expired; committed before they are marked failed, so a
 *	          crash in between sends it twice rather than never
 *	delayed   recipients still deferred past delivery.delay_notice_after (one notice per
 *	          recipient: the spool has already given them RCPT_DELAY_NOTIFIED)
 *
 * Who is told follows dsn_route() (RFC 3461 NOTIFY; a null sender never, except that its
 * failures go to delivery.postmaster when one is configured). The DSN's queue id is its
 * unique token (Message-ID, MIME boundary). */
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
	enum dsn_action action;
	char id[SPOOL_ID_LEN + 1];
	char *to;
	json_t *reported;
	json_t *notices; /* DelayNotice records, written once the DSN is durable */
};

/* One DSN being built: the recipients it reports and the strings they point to. */
struct dsn_build {
	struct dsn_rcpt *dr;
	char **diag;
	char (*status)[SMTP_STATUS_MAX + 1];
	size_t n;
};

static void
build_init(struct dsn_build *b, size_t max)
{
	b->dr = xcalloc(max ? max : 1, sizeof(*b->dr));
	b->diag = xcalloc(max ? max : 1, sizeof(*b->diag));
	b->status = xcalloc(max ? max : 1, sizeof(*b->status));
	b->n = 0;
}

static void
build_free(struct dsn_build *b)
{
	for (size_t k = 0; k < b->n; k++)
		free(b->diag[k]);
	free(b->diag);
	free(b->status);
	free(b->dr);
}

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
		if (dom[0] != '\0' &&
		    engine_queue_add(e, ctx->id, now, NULL, NULL, NULL, dom, 0, 0) == 0) {
			atomic_fetch_add(&e->st_items, 1);
			engine_kick(e);
		} else
			log_warn(
			    "delivery: DSN %s to <%s>: cannot be queued now (delivered after the "
			    "next start)",
			    ctx->id, ctx->to);
		if (e->log != NULL) {
			json_t *o = json_object();
			size_t i;
			json_t *rec;

			json_object_set_new(o, "id", json_string(ctx->id));
			json_object_set_new(o, "original_id", json_string(ctx->j->id));
			json_object_set_new(o, "recipient", json_string(ctx->to));
			json_object_set_new(o, "action", json_string(dsn_action_name(ctx->action)));
			json_object_set(o, "reported", ctx->reported);
			eventlog_write(e->log, "DsnQueued", o);
			json_array_foreach(ctx->notices, i, rec)
			{
				json_object_set_new(rec, "dsn_id", json_string(ctx->id));
				eventlog_write(e->log, "DelayNotice", json_incref(rec));
			}
		}
	} else if (ctx->action == DSN_DELAYED)
		log_error("delivery: message %s: the delay notice could not be stored (%s): not "
		          "sent (its recipients are marked as told, so that none is told twice)",
		          ctx->j->id, st == SPOOL_FULL ? "spool full" : "spool error");
	else
		log_error("delivery: message %s: the DSN could not be stored (%s): its recipients "
		          "stay queued",
		          ctx->j->id, st == SPOOL_FULL ? "spool full" : "spool error");
	ctx->done(ctx->j, ok);
	json_decref(ctx->reported);
	json_decref(ctx->notices);
	free(ctx->to);
	free(ctx);
	engine_check_stopped(e);
}

/* Composes the DSN reporting b's recipients and commits it; done() follows. false if it
 * cannot be composed (logged): then nothing is stored and done() is not called. */
static bool
dsn_send(struct job *j, const struct dsn_build *b, enum dsn_action action, enum dsn_to to,
         json_t *notices, void (*done)(struct job *, bool ok))
{
	struct queue_engine *e = j->e;
	const struct envelope *env = j->env;
	struct spool_message *msg = spool_message_begin(e->spool, e->mbox);
	struct envelope denv = {0};
	struct dsn_report report;
	struct dsn_result res;
	struct dsn_ctx *ctx;
	struct evbuffer *out = evbuffer_new();
	uint64_t now = time_now_us();
	char err[256];

	report = (struct dsn_report){
	    .env = env,
	    .content = evbuffer_pullup(j->body, -1),
	    .content_len = evbuffer_get_length(j->body),
	    .rcpt = b->dr,
	    .nrcpt = b->n,
	    .hostname = e->cfg->hostname,
	    .now_us = now,
	    .unique = spool_message_id(msg),
	    .postmaster = to == DSN_TO_POSTMASTER ? e->postmaster : NULL,
	    .return_max = e->dsn_return_max,
	};
	if (dsn_compose(&report, out, &res, err, sizeof(err)) < 0) {
		log_error("delivery: message %s: no %s DSN: %s", j->id, dsn_action_name(action),
		          err);
		spool_message_abort(msg);
		evbuffer_free(out);
		json_decref(notices);
		return false;
	}
	ctx = xcalloc(1, sizeof(*ctx));
	ctx->j = j;
	ctx->done = done;
	ctx->action = action;
	strlcpy_s(ctx->id, spool_message_id(msg), sizeof(ctx->id));
	ctx->to = xstrdup(res.rcpt);
	ctx->reported = json_array();
	ctx->notices = notices != NULL ? notices : json_array();
	for (size_t k = 0; k < b->n; k++)
		json_array_append_new(ctx->reported,
		                      json_string(env->rcpt[b->dr[k].index].address));
	dsn_envelope(&res, now, &denv);
	e->spool_ops++;
	spool_message_commit(msg, &denv, out, on_committed, ctx);
	envelope_clear(&denv);
	evbuffer_free(out);
	return true;
}

bool
dsn_inject(struct job *j, void (*done)(struct job *, bool ok))
{
	struct queue_engine *e = j->e;
	const struct envelope *env = j->env;
	enum dsn_to to = DSN_TO_NOBODY;
	uint64_t now = time_now_us();
	struct dsn_build b;
	bool sent;

	build_init(&b, j->nr);
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
			b.diag[b.n] =
			    xasprintf("%d %s %s", r->code, r->status, r->text ? r->text : "");
		else if (env->rcpt[j->ridx[k]].last_reply != NULL)
			b.diag[b.n] = xstrdup(env->rcpt[j->ridx[k]].last_reply);
		b.dr[b.n] = (struct dsn_rcpt){
		    .index = j->ridx[k],
		    .action = DSN_FAILED,
		    .status = r->fate == R_EXPIRED ? "4.4.7" : r->status,
		    .remote_mta = r->mx,
		    .diagnostic = b.diag[b.n],
		    .diagnostic_type = r->local ? "X-Drover" : NULL,
		    .last_attempt_us = j->expire_only ? 0 : now,
		};
		b.n++;
	}
	sent = b.n > 0 && dsn_send(j, &b, DSN_FAILED, to, NULL, done);
	build_free(&b);
	return sent;
}

/* The enhanced status of a stored reply, "451 4.7.1 text" -> "4.7.1"; "" if it has none
 * (dsn_compose then says 4.0.0). */
static void
reply_status(const char *reply, char *out, size_t size)
{
	const char *p = reply != NULL ? strchr(reply, ' ') : NULL;
	size_t n;

	out[0] = '\0';
	if (p == NULL || p[1] != '4')
		return;
	n = strcspn(p + 1, " ");
	if (n >= size)
		return;
	memcpy(out, p + 1, n);
	out[n] = '\0';
}

bool
dsn_inject_delay(struct job *j, const bool *claimed, void (*done)(struct job *, bool ok))
{
	struct queue_engine *e = j->e;
	const struct envelope *env = j->env;
	uint64_t now = time_now_us();
	uint64_t until = e->lifetime_us != 0 ? env->received_us + e->lifetime_us : 0;
	uint64_t queued = now > env->received_us ? now - env->received_us : 0;
	char dom[DNS_NAME_MAX + 3];
	json_t *notices = json_array();
	struct dsn_build b;
	size_t k = 0;
	bool sent;

	build_init(&b, j->ndelay);
	for (size_t c = 0; c < j->ndelay; c++) {
		size_t i = j->delay_idx[c];
		const struct envelope_rcpt *er = &env->rcpt[i];
		const struct rcpt_result *r = NULL;
		unsigned attempts = er->attempts;
		json_t *o;

		if (!claimed[c])
			continue;
		/* This job's own recipients have this attempt's reply; the others, at other
		 * destinations, the reply the spool kept. */
		while (k < j->nr && j->ridx[k] < i)
			k++;
		if (k < j->nr && j->ridx[k] == i && j->res[k].fate == R_DEFERRED) {
			r = &j->res[k];
			attempts++;
			b.diag[b.n] =
			    xasprintf("%d %s %s", r->code, r->status, r->text ? r->text : "");
			strlcpy_s(b.status[b.n], r->status, sizeof(b.status[b.n]));
		} else {
			b.diag[b.n] = er->last_reply != NULL ? xstrdup(er->last_reply) : NULL;
			reply_status(er->last_reply, b.status[b.n], sizeof(b.status[b.n]));
		}
		b.dr[b.n] = (struct dsn_rcpt){
		    .index = i,
		    .action = DSN_DELAYED,
		    .status = b.status[b.n][0] != '\0' ? b.status[b.n] : NULL,
		    .remote_mta = r != NULL ? r->mx : NULL,
		    .diagnostic = b.diag[b.n],
		    .diagnostic_type = r != NULL && r->local ? "X-Drover" : NULL,
		    .last_attempt_us = r != NULL ? now : 0,
		    .retry_until_us = until,
		};

		engine_domain(er->address, dom, sizeof(dom));
		o = json_object();
		json_object_set_new(o, "id", json_string(j->id));
		json_object_set_new(o, "recipient", json_string(er->address));
		json_object_set_new(o, "sender", json_string(env->sender));
		json_object_set_new(o, "destination", json_string(dom));
		json_object_set_new(o, "reply",
		                    b.diag[b.n] != NULL ? json_string(b.diag[b.n]) : json_null());
		json_object_set_new(o, "attempts", json_integer(attempts));
		json_object_set_new(o, "queue_time_s", json_integer((json_int_t)(queued / USEC)));
		json_array_append_new(notices, o);
		b.n++;
	}
	if (b.n > 0)
		sent = dsn_send(j, &b, DSN_DELAYED, DSN_TO_SENDER, notices, done);
	else {
		json_decref(notices);
		sent = false;
	}
	build_free(&b);
	return sent;
}
