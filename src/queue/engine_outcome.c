/* engine_outcome.c - a job from its load to its outcome: the message read from the spool, its
 * pending recipients at the destination cut into transactions, then, once the server (or the
 * DNS, or the end of the connection) has decided, one outcome per recipient:
 *
 *	delivered   RCPT_DELIVERED                                      "Delivery"
 *	deferred    stays pending: attempts + 1, next attempt from the  "TransientFailure"
 *	            queue's retry schedule, last reply; once queued longer
 *	            than delivery.delay_notice_after, one delay notice   "DelayNotice"
 *	bounced     RCPT_BOUNCED, DSN                                   "Bounce"
 *	expired     RCPT_EXPIRED, DSN (4.4.7, the last reply)           "Expiration"
 *	untried     unchanged (the connection ended before it)
 *
 * All of one message's changes at this destination go in one spool_rcpt_change, after the DSN
 * that reports them is durable; the spool removes the message when nothing is pending. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "bounce/bounce.h"
#include "core/core.h"
#include "queue/engine_admin.h"
#include "queue/engine_internal.h"
#include "suppress/suppress.h"

void
engine_spool_op_done(struct queue_engine *e)
{
	e->spool_ops--;
	engine_check_stopped(e);
}

/* ---- Loading ---- */

struct job *
job_new(struct queue_engine *e, struct attempt *a, struct queue_item *item)
{
	struct job *j = xcalloc(1, sizeof(*j));
	struct queue_dest *lane = queue_item_dest(e->q, item);

	j->e = e;
	j->item = item;
	queue_item_id(item, j->id);
	/* The lane's domain: its site may be a provider's name (engine_shape_site). */
	j->domain = xstrdup(a != NULL ? a->domain : engine_lane_domain(queue_dest_name(lane)));
	j->lane = xstrdup(queue_dest_name(lane));
	j->pool = queue_dest_via(lane) != NULL ? xstrdup(queue_dest_via(lane)) : NULL;
	return j;
}

/* This destination's pending recipients, cut into transactions of max_rcpts. */
static void
job_prepare(struct job *j)
{
	const struct envelope *env = j->env;
	unsigned max = engine_max_rcpts(j->e, j->a);
	char dom[DNS_NAME_MAX + 3];

	j->ridx = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*j->ridx));
	for (size_t i = 0; i < env->nrcpt; i++) {
		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		engine_domain(env->rcpt[i].address, dom, sizeof(dom));
		if (strcmp(dom, j->domain) == 0)
			j->ridx[j->nr++] = i;
	}
	j->res = xcalloc(j->nr ? j->nr : 1, sizeof(*j->res));
	if (j->expire_only || j->nr == 0)
		return;
	/* With VERP, a transaction per recipient, each with its return path (engine_verp.c). */
	if (engine_verp_slice(j))
		return;
	j->ntxn = (j->nr + max - 1) / max;
	j->txn = xcalloc(j->ntxn, sizeof(*j->txn));
	for (size_t t = 0; t < j->ntxn; t++) {
		size_t off = t * max;

		j->txn[t] = (struct delivery_message){
		    .env = j->env,
		    .rcpt = j->ridx + off,
		    .nrcpt = j->nr - off < max ? j->nr - off : max,
		    .body = j->body,
		    .arg = j,
		};
	}
}

static void
on_loaded(void *arg, enum spool_status st, struct envelope *env, struct evbuffer *body)
{
	struct job *j = arg;
	struct queue_engine *e = j->e;

	e->spool_ops--;
	if (st != SPOOL_OK || env == NULL || body == NULL) {
		/* Removed meanwhile (an operator's delete), or unreadable (spool_foreach skips
		 * a damaged record at the next start, too): nothing left to deliver. */
		log_warn("delivery: message %s: cannot be read from the spool: dropped from the "
		         "queue",
		         j->id);
		if (env != NULL) {
			envelope_clear(env);
			free(env);
		}
		if (body != NULL)
			evbuffer_free(body);
		j->gone = true;
	} else {
		j->env = env;
		j->body = body;
		job_prepare(j);
	}
	j->state = JOB_READY;
	if (j->expire_only) {
		if (!j->gone)
			job_decide_all(j, R_EXPIRED, 0, "4.4.7", NULL, false);
		job_finish(j);
	} else if (j->admin_text != NULL) {
		/* An operator's bounce (engine_admin.c): no connection, no attempt counted. */
		if (!j->gone)
			job_decide_all(j, R_BOUNCED, 550, "5.0.0", j->admin_text, true);
		job_finish(j);
	} else if (j->a != NULL && !j->gone && engine_admin_hold_job(j)) {
		/* A suspended tenant's or campaign's: parked (or expired), the job is gone. */
	} else if (j->a != NULL)
		attempt_job_loaded(j->a, j);
	else
		job_finish(j);
	engine_check_stopped(e);
}

void
job_load(struct job *j)
{
	j->e->spool_ops++;
	spool_load(j->e->spool, j->id, true, j->e->mbox, on_loaded, j);
}

void
job_decide_all(struct job *j, enum rcpt_fate fate, int code, const char *status, const char *text,
               bool local)
{
	uint64_t elapsed = j->a != NULL ? (time_mono_us() - j->a->started_mono) / 1000 : 0;

	for (size_t k = 0; k < j->nr; k++) {
		struct rcpt_result *r = &j->res[k];

		if (r->fate != R_UNDECIDED)
			continue;
		r->fate = fate;
		r->code = code;
		strlcpy_s(r->status, status, sizeof(r->status));
		r->text = text != NULL ? xstrdup(text) : NULL;
		r->local = local;
		r->elapsed_ms = elapsed;
	}
}

/* ---- The outcome ---- */

/* "550 5.1.1 text" (the reply as one string, for the spool, the event log and DSNs). An
 * expiry without a reply of this attempt uses the one the spool kept. */
static char *
reply_string(const struct job *j, size_t k)
{
	const struct rcpt_result *r = &j->res[k];

	if (r->code == 0) {
		const char *last = j->env->rcpt[j->ridx[k]].last_reply;
		return last != NULL ? xstrdup(last) : NULL;
	}
	return xasprintf("%d %s %s", r->code, r->status, r->text != NULL ? r->text : "");
}

static const char *const record_types[] = {
    [R_DELIVERED] = "Delivery",
    [R_DEFERRED] = "TransientFailure",
    [R_BOUNCED] = "Bounce",
    [R_EXPIRED] = "Expiration",
};

static void
log_rcpt(struct job *j, size_t k, const char *reply, unsigned attempt, uint64_t now)
{
	const struct rcpt_result *r = &j->res[k];
	const struct envelope *env = j->env;
	uint64_t queued = now > env->received_us ? now - env->received_us : 0;
	json_t *o;

	if (j->e->log == NULL)
		return;
	o = json_object();
	json_object_set_new(o, "id", json_string(j->id));
	json_object_set_new(o, "recipient", json_string(env->rcpt[j->ridx[k]].address));
	json_object_set_new(o, "sender", json_string(env->sender));
	json_object_set_new(o, "destination", json_string(j->domain));
	/* Where it waited and how it was classified: the queue (lane) and its parts. */
	json_object_set_new(o, "queue", json_string(j->lane));
	json_object_set_new(o, "stream",
	                    json_string(env->stream != NULL ? env->stream : "default"));
	json_object_set_new(o, "tenant",
	                    env->tenant != NULL ? json_string(env->tenant) : json_null());
	json_object_set_new(o, "campaign",
	                    env->campaign != NULL ? json_string(env->campaign) : json_null());
	json_object_set_new(o, "pool", j->pool != NULL ? json_string(j->pool) : json_null());
	json_object_set_new(o, "mx", r->mx != NULL ? json_string(r->mx) : json_null());
	json_object_set_new(o, "ip", r->ip != NULL ? json_string(r->ip) : json_null());
	json_object_set_new(o, "port", r->port != 0 ? json_integer(r->port) : json_null());
	json_object_set_new(o, "reply", reply != NULL ? json_string(reply) : json_null());
	json_object_set_new(o, "status",
	                    json_string(r->fate == R_EXPIRED ? "4.4.7"
	                                : r->status[0]       ? r->status
	                                                     : "4.0.0"));
	if (r->fate == R_EXPIRED) {
		json_object_set_new(o, "category", json_string("message-expired"));
	} else if (r->classified) {
		json_object_set_new(o, "category",
		                    json_string(classify_category_name(r->category)));
		json_object_set_new(o, "decision", json_string(classify_action_name(r->action)));
		json_object_set_new(o, "rule_line",
		                    r->rule_line != 0 ? json_integer(r->rule_line) : json_null());
	}
	json_object_set_new(o, "attempt", json_integer(attempt));
	json_object_set_new(o, "queue_time_s", json_integer((json_int_t)(queued / USEC)));
	json_object_set_new(o, "elapsed_ms", json_integer((json_int_t)r->elapsed_ms));
	json_object_set_new(o, "reused", json_boolean(r->reused));
	/* The egress source it left from (null without a pool, or when none was up). */
	json_object_set_new(o, "source", r->source != NULL ? json_string(r->source) : json_null());
	json_object_set_new(o, "source_ip",
	                    r->source_ip != NULL ? json_string(r->source_ip) : json_null());
	if (r->tls) {
		json_t *t = json_object();

		json_object_set_new(t, "version", json_string(r->tls_version));
		json_object_set_new(t, "cipher", json_string(r->tls_cipher));
		json_object_set_new(t, "verified", json_boolean(r->tls_verified));
		json_object_set_new(o, "tls", t);
	} else
		json_object_set_new(o, "tls", json_null());
	eventlog_write(j->e->log, record_types[r->fate], o);
}

static void
job_done(struct job *j)
{
	struct queue_engine *e = j->e;

	if (!j->item_done) {
		/* Untried with some recipients decided: given back only now, so that the next
		 * attempt reads the spool with those changes in it. */
		queue_item_done(e->q, j->item, QUEUE_UNTRIED, time_now_us(), NULL);
		j->item_done = true;
		engine_kick(e);
	}
	if (j->expire_only) {
		e->nexpiring--;
		engine_kick(e);
	}
	if (j->admin_text != NULL)
		engine_admin_job_done(e); /* the next of an operator's bounces may load */
	job_free(j);
	engine_check_stopped(e);
}

/* ---- Delay notices ---- */

/* Who a delay notice would report, from the envelope as loaded: this job's recipients just
 * deferred, and the message's recipients at its other destinations that are still pending
 * after an attempt (deferred there too), so that the sender gets one notice for the message
 * rather than one per destination. Each must want one (NOTIFY; never for a null sender,
 * which is how DSNs are sent) and not have had one. The spool has the last word
 * (spool_rcpt_claim): a recipient delivered meanwhile, or claimed by a delivery to another
 * destination finishing at the same time, is left out. */
static void
delay_candidates(struct job *j, uint64_t now)
{
	struct queue_engine *e = j->e;
	const struct envelope *env = j->env;
	char dom[DNS_NAME_MAX + 3];
	size_t k = 0;

	if (e->delay_notice_us == 0 || env->sender == NULL || env->sender[0] == '\0' ||
	    now < env->received_us || now - env->received_us < e->delay_notice_us)
		return;
	j->delay_idx = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*j->delay_idx));
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		bool own;

		/* ridx is in envelope order: walk it along. */
		while (k < j->nr && j->ridx[k] < i)
			k++;
		own = k < j->nr && j->ridx[k] == i;
		if (r->state != RCPT_PENDING || (r->flags & RCPT_DELAY_NOTIFIED) != 0 ||
		    dsn_route(env, i, DSN_DELAYED, e->postmaster != NULL) != DSN_TO_SENDER)
			continue;
		if (own) {
			if (j->res[k].fate != R_DEFERRED)
				continue;
		} else {
			/* Not tried yet is not delayed; and a recipient of this destination that
			 * is not in the job (none should be) is not this job's to report. */
			engine_domain(r->address, dom, sizeof(dom));
			if (r->attempts == 0 || strcmp(dom, j->domain) == 0)
				continue;
		}
		j->delay_idx[j->ndelay++] = i;
	}
}

static void
on_delay_done(struct job *j, bool ok)
{
	job_done(j);
}

static void
on_claimed(void *arg, enum spool_status st, const bool *claimed, size_t n)
{
	struct job *j = arg;
	struct queue_engine *e = j->e;

	e->spool_ops--;
	if (st != SPOOL_OK)
		log_error(
		    "delivery: message %s: no delay notice: the spool could not record it (%s)",
		    j->id, st == SPOOL_FULL ? "spool full" : "spool error");
	else if (n == j->ndelay && dsn_inject_delay(j, claimed, on_delay_done))
		return;
	job_done(j);
}

/* After the recipients' changes: a delay notice if one is due. The recipients are claimed
 * first, the notice composed for those the spool gave: a crash in between loses that notice
 * rather than sending it twice, since a recipient gets at most one. */
static void
delay_notice(struct job *j)
{
	struct queue_engine *e = j->e;

	if (j->ndelay == 0) {
		job_done(j);
		return;
	}
	e->spool_ops++;
	spool_rcpt_claim(e->spool, j->id, RCPT_DELAY_NOTIFIED, j->delay_idx, j->ndelay, e->mbox,
	                 on_claimed, j);
}

static void
on_changed(void *arg, enum spool_status st, bool removed)
{
	struct job *j = arg;
	struct queue_engine *e = j->e;

	e->spool_ops--;
	if (st != SPOOL_OK)
		log_error("delivery: message %s: recipient states not stored (%s): they will be "
		          "tried again",
		          j->id, st == SPOOL_FULL ? "spool full" : "spool error");
	(void)removed;
	delay_notice(j);
}

static void
apply_changes(struct job *j)
{
	struct queue_engine *e = j->e;

	if (j->nchanges == 0) {
		delay_notice(j);
		return;
	}
	e->spool_ops++;
	spool_rcpt_change(e->spool, j->id, j->changes, j->nchanges, e->mbox, on_changed, j);
}

/* The DSN is stored (ok), or could not be: then its recipients stay pending, to be tried and
 * reported again, rather than marked failed with nobody told. */
static void
on_dsn_done(struct job *j, bool ok)
{
	if (!ok) {
		size_t w = 0;

		for (size_t c = 0; c < j->nchanges; c++)
			if (j->changes[c].state != RCPT_BOUNCED &&
			    j->changes[c].state != RCPT_EXPIRED)
				j->changes[w++] = j->changes[c];
		j->nchanges = w;
	}
	apply_changes(j);
}

/* A recipient the rules say to suppress goes on the list (global for now: tenants come with
 * streams), with the reply that earned it. */
static void
job_suppress(struct job *j, size_t k, const char *reply)
{
	struct suppress *list = atomic_load(&j->e->suppress);
	struct suppress_record rec = {
	    .address = j->env->rcpt[j->ridx[k]].address,
	    .reason = SUPPRESS_HARD_BOUNCE,
	    .source = reply,
	};

	/* No answer asked: the list outlives the engine (main.c closes it after), and a
	 * failure to store it costs a later bounce, not a message. */
	if (list != NULL)
		suppress_add_async(list, &rec, NULL, NULL, NULL);
}

/* Every failure gets a category from its reply (the bounce rules), and the rules' decision
 * may turn it: a 4xx the provider means for good bounces now, a 5xx that is only a rate limit
 * is retried (docs/bounces.md). Deliveries are left alone. */
static void
job_classify(struct job *j)
{
	struct classify_table *t;

	if (j->admin_text != NULL)
		return; /* an operator's bounce is final, whatever the rules make of its words */
	t = engine_rules_get(j->e); /* the current rules (SIGHUP) */
	for (size_t k = 0; k < j->nr; k++) {
		struct rcpt_result *r = &j->res[k];
		struct classify_result cr;
		const char *provider;

		if (r->fate != R_DEFERRED && r->fate != R_BOUNCED)
			continue;
		provider = classify_provider_of(t, r->mx != NULL ? r->mx : j->domain);
		if (provider == NULL)
			provider = classify_provider_of(t, j->domain);
		classify_reply(t, provider, r->code, r->status[0] ? r->status : NULL, r->text, &cr);
		r->classified = true;
		r->category = cr.category;
		r->rule_line = cr.line;
		r->action = classify_decide(t, provider, cr.category, r->code, &r->decision_line);
		if (r->action == CLASSIFY_TRANSIENT)
			r->fate = R_DEFERRED;
		else
			r->fate = R_BOUNCED;
	}
	classify_unref(t);
}

void
job_finish(struct job *j)
{
	struct queue_engine *e = j->e;
	struct attempt *a = j->a;
	bool deferred = false, undecided = false, bounced = false, decided = false;
	enum queue_fate fate = QUEUE_FATE_REMOVED;
	uint64_t now = time_now_us(), next_us = 0;

	if (j->state == JOB_FINISHING)
		return;
	j->state = JOB_FINISHING;
	if (a != NULL)
		attempt_job_gone(a, j);
	j->a = NULL;

	if (j->gone || j->env == NULL) {
		queue_item_done(e->q, j->item, QUEUE_DELIVERED, now, NULL);
		j->item_done = true;
		atomic_fetch_sub(&e->st_items, 1);
		job_done(j);
		return;
	}
	job_classify(j);
	for (size_t k = 0; k < j->nr; k++) {
		switch (j->res[k].fate) {
		case R_UNDECIDED:
			undecided = true;
			break;
		case R_DEFERRED:
			deferred = true;
			break;
		case R_BOUNCED:
		case R_EXPIRED:
			bounced = true;
			break;
		case R_DELIVERED:
			break;
		}
		decided |= j->res[k].fate != R_UNDECIDED;
	}
	j->outcome = j->expire_only ? QUEUE_EXPIRED
	             : deferred     ? QUEUE_DEFERRED
	             : undecided    ? QUEUE_UNTRIED
	             : bounced      ? QUEUE_BOUNCED
	                            : QUEUE_DELIVERED;
	if (j->outcome != QUEUE_UNTRIED || !decided) {
		fate = queue_item_done_with(e->q, j->item, j->outcome, now,
		                            j->has_retry ? &j->retry : NULL, &next_us);
		j->item_done = true;
		if (fate != QUEUE_FATE_RESCHEDULED)
			atomic_fetch_sub(&e->st_items, 1);
		engine_kick(e);
	}

	j->changes = xcalloc(j->nr ? j->nr : 1, sizeof(*j->changes));
	j->change_replies = xcalloc(j->nr ? j->nr : 1, sizeof(*j->change_replies));
	for (size_t k = 0; k < j->nr; k++) {
		struct rcpt_result *r = &j->res[k];
		const struct envelope_rcpt *er = &j->env->rcpt[j->ridx[k]];
		struct spool_rcpt_change *c;
		unsigned attempt = er->attempts + (j->expire_only ? 0u : 1u);
		char *reply;

		if (r->fate == R_UNDECIDED)
			continue;
		if (r->fate == R_DEFERRED && fate == QUEUE_FATE_EXPIRED)
			r->fate = R_EXPIRED;
		reply = reply_string(j, k);
		j->change_replies[j->nreplies++] = reply;
		c = &j->changes[j->nchanges++];
		*c = (struct spool_rcpt_change){
		    .index = j->ridx[k],
		    .attempts = (uint16_t)(attempt > UINT16_MAX ? UINT16_MAX : attempt),
		    .last_reply = reply,
		};
		switch (r->fate) {
		case R_DELIVERED:
			c->state = RCPT_DELIVERED;
			atomic_fetch_add(&e->st_delivered, 1);
			break;
		case R_DEFERRED:
			c->state = RCPT_PENDING;
			c->next_attempt_us = next_us;
			atomic_fetch_add(&e->st_deferred, 1);
			break;
		case R_BOUNCED:
			c->state = RCPT_BOUNCED;
			atomic_fetch_add(&e->st_bounced, 1);
			engine_count_bounce(e, r->classified ? r->category : CLASSIFY_OTHER);
			if (r->classified && r->action == CLASSIFY_SUPPRESS)
				job_suppress(j, k, reply);
			break;
		case R_EXPIRED:
			c->state = RCPT_EXPIRED;
			atomic_fetch_add(&e->st_expired, 1);
			engine_count_bounce(e, CLASSIFY_MESSAGE_EXPIRED);
			break;
		case R_UNDECIDED:
			break;
		}
		log_rcpt(j, k, reply, attempt, now);
	}
	if (deferred && fate == QUEUE_FATE_RESCHEDULED)
		delay_candidates(j, now);
	if (bounced || fate == QUEUE_FATE_EXPIRED) {
		if (dsn_inject(j, on_dsn_done))
			return;
	}
	apply_changes(j);
}

void
job_free(struct job *j)
{
	for (size_t k = 0; k < j->nr; k++) {
		free(j->res[k].text);
		free(j->res[k].mx);
		free(j->res[k].ip);
	}
	for (size_t c = 0; c < j->nreplies; c++)
		free(j->change_replies[c]);
	free(j->change_replies);
	free(j->changes);
	free(j->delay_idx);
	free(j->admin_text);
	free(j->lane);
	free(j->pool);
	free(j->res);
	free(j->ridx);
	free(j->txn);
	free(j->domain);
	if (j->env != NULL) {
		envelope_clear(j->env);
		free(j->env);
	}
	if (j->body != NULL)
		evbuffer_free(j->body);
	free(j);
}
