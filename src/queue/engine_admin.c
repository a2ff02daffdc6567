/* engine_admin.c - an operator's hand on the delivery engine (docs/operations.md, "Control
 * API"): suspensions, bounces, deletes and retries.
 *
 * queue_engine_admin() runs on a thread of the caller's (the control plane starts one per
 * request): it parses the request, reads the spool when a filter needs the envelopes (tenant,
 * campaign, sender, age), then hands an operation to the engine's thread and waits for its
 * answer. Everything that touches the queue or the suspensions runs there, in slices of
 * ADMIN_SLICE matches per turn of the loop, so that a bounce of 100,000 messages does not
 * stall deliveries.
 *
 * Suspensions (in memory; a restart forgets them, a reload keeps them):
 *	destination, provider, pool, stream  a connection for a matching lane is refused before
 *	                                     it opens: its items go back untried, the lane is
 *	                                     held until the suspension ends (attempt_new)
 *	source                               the source is skipped when a pool picks one
 *	                                     (engine_shape_pick); a pool with no other source
 *	                                     holds its lanes the same way
 *	tenant, campaign                     a message loaded for delivery is parked untried until
 *	                                     the end (queue_item_park) before its connection opens
 * None counts an attempt or moves a retry time. A resume lifts every hold (lanes ask again, a
 * suspension still in force holds them again) and makes the parked items of the tenant or
 * campaign due now.
 *
 * Bounces and deletes take the matching items out of the queue at once (items being delivered
 * are left to finish and reported as in flight), then load and finish at most
 * ADMIN_JOBS_MAX messages at a time: a bounce as a job bounced "550 5.0.0" (DSN, Bounce
 * records), a delete as a recipient change without DSN (AdminDelete record).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_admin.h"
#include "queue/engine_internal.h"

/* Matches handled per turn of the engine's loop: about a millisecond of work. */
#define ADMIN_SLICE 1000
/* Bounced or deleted messages loaded at once (each bounce holds its body for the DSN). */
#define ADMIN_JOBS_MAX 64
/* Destinations of one message looked at (a message has one item per recipient domain). */
#define ADMIN_ITEMS_MAX      256
#define ADMIN_DEFAULT_BOUNCE "administratively bounced"
#define ADMIN_DELETE_REPLY   "550 5.0.0 deleted by an administrator"

struct suspension {
	unsigned long id;
	enum admin_selector sel;
	char *value;
	char *reason; /* NULL: none given */
	uint64_t since_us;
	uint64_t until_us; /* ADMIN_FOREVER: until resumed */
};

/* One message's pending recipients at one destination, as the spool has them. */
struct admin_match {
	char id[SPOOL_ID_LEN + 1];
	char *domain;
	unsigned nrcpt;
};

/* A message being deleted: its items taken, then one recipient change. */
struct admin_delete {
	struct queue_engine *e;
	char id[SPOOL_ID_LEN + 1];
	struct queue_item **items;
	char **domains;
	size_t n;
	json_t *filter;
};

/* Taken items waiting for a load slot: a bounce (item) or a delete (del). */
struct admin_work {
	struct admin_work *next;
	struct queue_item *item;
	char *reason;
	struct admin_delete *del;
};

struct engine_admin {
	struct suspension *s;
	size_t n, cap;
	unsigned long next_id;
	unsigned sources; /* suspensions of sources: engine_shape_pick filters while any */
	struct event *timer;
	struct admin_work *head, *tail;
	unsigned running;
};

enum op_kind { OP_SUSPEND, OP_RESUME, OP_LIST, OP_BOUNCE, OP_DELETE, OP_RETRY, OP_RELEASE };

/* An operation handed to the engine's thread; the caller waits on cond for done. */
struct admin_op {
	struct queue_engine *e;
	enum op_kind kind;
	struct admin_suspend req;
	const struct admin_filter *filter;
	struct admin_match *m;
	size_t nm, next;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int status;
	json_t *answer;

	/* For the caller, after a suspend or resume: parked items of this tenant or campaign
	 * are due again (their suspension changed). */
	bool release;
	enum admin_selector release_sel;
	char release_value[ADMIN_VALUE_MAX + 1];

	/* Counts. */
	size_t messages, rcpts, in_flight, items;
	char last_id[SPOOL_ID_LEN + 1];
	struct admin_delete *del; /* the message being collected */
};

static void admin_pump(struct queue_engine *);

/* ---- The state (engine thread) ---- */

static struct engine_admin *
admin_get(struct queue_engine *e)
{
	if (e->admin == NULL) {
		e->admin = xcalloc(1, sizeof(*e->admin));
		e->admin->next_id = 1;
	}
	return e->admin;
}

static void
suspension_clear(struct suspension *s)
{
	free(s->value);
	free(s->reason);
}

static void
admin_delete_free(struct admin_delete *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->domains[i]);
	free(d->domains);
	free(d->items);
	json_decref(d->filter);
	free(d);
}

size_t
engine_admin_suspension_count(const struct queue_engine *e)
{
	return e->admin != NULL ? e->admin->n : 0;
}

void
engine_admin_free(struct queue_engine *e)
{
	struct engine_admin *ad = e->admin;
	struct admin_work *w, *next;

	if (ad == NULL)
		return;
	if (ad->timer != NULL)
		event_free(ad->timer);
	for (size_t i = 0; i < ad->n; i++)
		suspension_clear(&ad->s[i]);
	free(ad->s);
	/* Work not started at the stop: its items stay pending in the spool. */
	for (w = ad->head; w != NULL; w = next) {
		next = w->next;
		free(w->reason);
		if (w->del != NULL)
			admin_delete_free(w->del);
		free(w);
	}
	free(ad);
	e->admin = NULL;
}

static json_t *
time_json(uint64_t us)
{
	char buf[64];

	if (us == ADMIN_FOREVER)
		return json_null();
	time_rfc3339(us, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
suspension_json(const struct suspension *s, uint64_t now)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer((json_int_t)s->id));
	json_object_set_new(o, "selector", json_string(admin_selector_name(s->sel)));
	json_object_set_new(o, "value", json_string(s->value));
	json_object_set_new(o, "since", time_json(s->since_us));
	json_object_set_new(o, "until", time_json(s->until_us));
	json_object_set_new(
	    o, "remaining_s",
	    s->until_us == ADMIN_FOREVER
	        ? json_null()
	        : json_integer(
	              (json_int_t)((s->until_us > now ? s->until_us - now : 0) + USEC - 1) / USEC));
	json_object_set_new(o, "reason", s->reason != NULL ? json_string(s->reason) : json_null());
	return o;
}

static void
admin_log(struct queue_engine *e, const char *type, const struct suspension *s, bool expired)
{
	json_t *o;

	log_info("delivery: %s %s \"%s\"%s",
	         strcmp(type, "AdminSuspend") == 0 ? "suspended" : "resumed",
	         admin_selector_name(s->sel), s->value, expired ? " (its time is over)" : "");
	if (e->log == NULL)
		return;
	o = json_object();
	json_object_set_new(o, "id", json_integer((json_int_t)s->id));
	json_object_set_new(o, "selector", json_string(admin_selector_name(s->sel)));
	json_object_set_new(o, "value", json_string(s->value));
	json_object_set_new(o, "until", time_json(s->until_us));
	json_object_set_new(o, "reason", s->reason != NULL ? json_string(s->reason) : json_null());
	if (strcmp(type, "AdminResume") == 0)
		json_object_set_new(o, "expired", json_boolean(expired));
	eventlog_write(e->log, type, o);
}

static void
suspension_remove(struct engine_admin *ad, size_t i)
{
	if (ad->s[i].sel == ADMIN_SEL_SOURCE)
		ad->sources--;
	suspension_clear(&ad->s[i]);
	ad->s[i] = ad->s[--ad->n];
}

static void timer_arm(struct queue_engine *);

/* Timed suspensions whose end came: gone, with their record. Their holds end by themselves
 * (lanes were held until then, parked items scheduled then). */
static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct queue_engine *e = arg;
	struct engine_admin *ad = e->admin;
	uint64_t now = time_now_us();

	(void)fd;
	(void)what;
	for (size_t i = 0; i < ad->n;) {
		if (ad->s[i].until_us <= now) {
			admin_log(e, "AdminResume", &ad->s[i], true);
			suspension_remove(ad, i);
		} else
			i++;
	}
	timer_arm(e);
	engine_kick(e);
}

static void
timer_arm(struct queue_engine *e)
{
	struct engine_admin *ad = e->admin;
	uint64_t next = UINT64_MAX, now = time_now_us(), wait;
	struct timeval tv;

	for (size_t i = 0; i < ad->n; i++)
		if (ad->s[i].until_us != ADMIN_FOREVER && ad->s[i].until_us < next)
			next = ad->s[i].until_us;
	if (ad->timer == NULL)
		ad->timer = evtimer_new(e->base, on_timer, e);
	if (next == UINT64_MAX) {
		evtimer_del(ad->timer);
		return;
	}
	wait = next > now ? next - now : 0;
	tv.tv_sec = (time_t)(wait / USEC);
	tv.tv_usec = (suseconds_t)(wait % USEC);
	evtimer_add(ad->timer, &tv);
}

/* ---- Hooks (engine thread) ---- */

static void
lane_of(struct queue_engine *e, struct queue_dest *dest, struct admin_lane *l)
{
	unsigned cls = queue_dest_class(dest);

	l->domain = engine_lane_domain(queue_dest_name(dest));
	l->site = queue_dest_site(dest);
	l->provider = engine_provider(e, l->domain);
	l->pool = queue_dest_via(dest);
	l->stream = cls < e->nclasses ? e->class_names[cls] : NULL;
}

bool
engine_admin_lane_held(struct queue_engine *e, struct queue_dest *dest, uint64_t now,
                       uint64_t *until)
{
	struct engine_admin *ad = e->admin;
	struct admin_lane l;
	uint64_t u = 0;

	if (ad == NULL || ad->n == 0)
		return false;
	lane_of(e, dest, &l);
	for (size_t i = 0; i < ad->n; i++) {
		const struct suspension *s = &ad->s[i];

		if (s->until_us > now && admin_selector_is_lane(s->sel) &&
		    admin_lane_matches(s->sel, s->value, &l) && s->until_us > u)
			u = s->until_us;
	}
	*until = u;
	return u != 0;
}

bool
engine_admin_sources_held(const struct queue_engine *e)
{
	return e->admin != NULL && e->admin->sources > 0;
}

bool
engine_admin_source_held(struct queue_engine *e, const char *source, uint64_t now, uint64_t *until)
{
	struct engine_admin *ad = e->admin;
	uint64_t u = 0;

	if (ad == NULL || ad->sources == 0 || source == NULL)
		return false;
	for (size_t i = 0; i < ad->n; i++) {
		const struct suspension *s = &ad->s[i];

		if (s->sel == ADMIN_SEL_SOURCE && s->until_us > now &&
		    strcmp(s->value, source) == 0 && s->until_us > u)
			u = s->until_us;
	}
	*until = u;
	return u != 0;
}

bool
engine_admin_hold_job(struct job *j)
{
	struct queue_engine *e = j->e;
	struct engine_admin *ad = e->admin;
	uint64_t now = time_now_us(), until = 0, expires;
	struct attempt *a = j->a;

	if (ad == NULL || ad->n == 0 || j->env == NULL || a == NULL)
		return false;
	for (size_t i = 0; i < ad->n; i++) {
		const struct suspension *s = &ad->s[i];

		if (s->until_us > now &&
		    admin_message_matches(s->sel, s->value, j->env->tenant, j->env->campaign) &&
		    s->until_us > until)
			until = s->until_us;
	}
	if (until == 0)
		return false;
	expires = queue_item_expires_us(j->item);
	if (expires <= now) {
		/* Its lifetime ended while suspended: expired as it would have been. */
		job_decide_all(j, R_EXPIRED, 0, "4.4.7", NULL, false);
		job_finish(j);
		return true;
	}
	/* Back untried, until the suspension's end (or its own expiry, to bounce it then):
	 * the attempt does not open a connection for it. */
	j->state = JOB_FINISHING;
	attempt_job_gone(a, j);
	j->a = NULL;
	queue_item_park(e->q, j->item, until < expires ? until : expires, now);
	j->item_done = true;
	job_free(j);
	engine_kick(e);
	return true;
}

void
engine_admin_job_done(struct queue_engine *e)
{
	if (e->admin != NULL && e->admin->running > 0)
		e->admin->running--;
	admin_pump(e);
}

/* ---- Bounce and delete work ---- */

static void
on_delete_changed(void *arg, enum spool_status st, bool removed)
{
	struct admin_delete *d = arg;
	struct queue_engine *e = d->e;
	uint64_t now = time_now_us();

	(void)removed;
	e->spool_ops--;
	for (size_t i = 0; i < d->n; i++) {
		if (st == SPOOL_OK) {
			queue_item_done(e->q, d->items[i], QUEUE_BOUNCED, now, NULL);
			atomic_fetch_sub(&e->st_items, 1);
		} else
			queue_item_done(e->q, d->items[i], QUEUE_UNTRIED, now, NULL);
	}
	if (st != SPOOL_OK)
		log_error("delivery: message %s: not deleted: the spool could not record it (%s)",
		          d->id, st == SPOOL_FULL ? "spool full" : "spool error");
	admin_delete_free(d);
	engine_admin_job_done(e);
	engine_kick(e);
	engine_check_stopped(e);
}

static bool
delete_wants(const struct admin_delete *d, const char *domain)
{
	for (size_t i = 0; i < d->n; i++)
		if (strcmp(d->domains[i], domain) == 0)
			return true;
	return false;
}

static void
on_delete_loaded(void *arg, enum spool_status st, struct envelope *env, struct evbuffer *body)
{
	struct admin_delete *d = arg;
	struct queue_engine *e = d->e;
	struct spool_rcpt_change *c;
	json_t *rcpts = json_array(), *o;
	size_t n = 0;

	(void)body;
	e->spool_ops--;
	if (st != SPOOL_OK || env == NULL) {
		/* Gone meanwhile: nothing left to delete. */
		for (size_t i = 0; i < d->n; i++) {
			queue_item_done(e->q, d->items[i], QUEUE_DELIVERED, time_now_us(), NULL);
			atomic_fetch_sub(&e->st_items, 1);
		}
		json_decref(rcpts);
		admin_delete_free(d);
		engine_admin_job_done(e);
		engine_check_stopped(e);
		return;
	}
	c = xcalloc(env->nrcpt ? env->nrcpt : 1, sizeof(*c));
	for (size_t i = 0; i < env->nrcpt; i++) {
		char dom[DNS_NAME_MAX + 3];

		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		engine_domain(env->rcpt[i].address, dom, sizeof(dom));
		if (!delete_wants(d, dom))
			continue;
		/* The spool has no "deleted" state: a failed recipient with the reason as its
		 * last reply, which no DSN reports. */
		c[n++] = (struct spool_rcpt_change){
		    .index = i,
		    .state = RCPT_BOUNCED,
		    .attempts = env->rcpt[i].attempts,
		    .last_reply = ADMIN_DELETE_REPLY,
		};
		json_array_append_new(rcpts, json_string(env->rcpt[i].address));
	}
	if (e->log != NULL) {
		o = json_object();
		json_object_set_new(o, "id", json_string(d->id));
		json_object_set_new(o, "sender", json_string(env->sender));
		json_object_set_new(o, "recipients", rcpts);
		json_object_set_new(o, "filter", json_incref(d->filter));
		eventlog_write(e->log, "AdminDelete", o);
	} else
		json_decref(rcpts);
	e->spool_ops++;
	spool_rcpt_change(e->spool, d->id, c, n, e->mbox, on_delete_changed, d);
	free(c);
	envelope_clear(env);
	free(env);
}

/* Starts what waits, while fewer than ADMIN_JOBS_MAX are loading or finishing. */
static void
admin_pump(struct queue_engine *e)
{
	struct engine_admin *ad = e->admin;
	struct admin_work *w;

	if (ad == NULL)
		return;
	while (!e->stopping && ad->running < ADMIN_JOBS_MAX && (w = ad->head) != NULL) {
		ad->head = w->next;
		if (ad->head == NULL)
			ad->tail = NULL;
		ad->running++;
		if (w->del != NULL) {
			e->spool_ops++;
			spool_load(e->spool, w->del->id, false, e->mbox, on_delete_loaded, w->del);
		} else {
			struct job *j = job_new(e, NULL, w->item);

			j->admin_text = w->reason; /* given */
			w->reason = NULL;
			job_load(j);
		}
		free(w);
	}
}

static void
work_add(struct engine_admin *ad, struct queue_item *item, const char *reason,
         struct admin_delete *del)
{
	struct admin_work *w = xcalloc(1, sizeof(*w));

	w->item = item;
	w->reason = reason != NULL ? xstrdup(reason) : NULL;
	w->del = del;
	if (ad->tail != NULL)
		ad->tail->next = w;
	else
		ad->head = w;
	ad->tail = w;
}

/* ---- Operations (engine thread) ---- */

static void
op_answer(struct admin_op *op, int status, json_t *answer)
{
	pthread_mutex_lock(&op->lock);
	op->status = status;
	op->answer = answer;
	op->done = true;
	pthread_cond_signal(&op->cond);
	pthread_mutex_unlock(&op->lock);
}

static json_t *
error_json(const char *fmt, const char *a, const char *b)
{
	char why[512];

	snprintf(why, sizeof(why), fmt, a, b);
	return json_pack("{s:s}", "error", why);
}

/* Names the configuration defines must be defined: a typo would hold nothing, silently. */
static const char *
unknown_name(const struct queue_engine *e, const struct admin_suspend *r)
{
	const struct config *cfg = e->cfg;

	switch (r->sel) {
	case ADMIN_SEL_SOURCE:
		for (size_t i = 0; i < cfg->nsources; i++)
			if (strcmp(cfg->sources[i].name, r->value) == 0)
				return NULL;
		return "no source \"%s\" in %s";
	case ADMIN_SEL_POOL:
		return config_pool(cfg, r->value) != NULL ? NULL : "no pool \"%s\" in %s";
	case ADMIN_SEL_STREAM:
		if (strcmp(r->value, "default") == 0 || config_stream(cfg, r->value) != NULL)
			return NULL;
		return "no stream \"%s\" in %s";
	default:
		return NULL;
	}
}

static struct suspension *
suspension_find(struct engine_admin *ad, const struct admin_suspend *r)
{
	for (size_t i = 0; i < ad->n; i++) {
		struct suspension *s = &ad->s[i];

		if (r->has_id ? s->id == r->id
		              : s->sel == r->sel && strcmp(s->value, r->value) == 0)
			return s;
	}
	return NULL;
}

/* Connections under a new suspension end after what they carry (QUIT): their unsent
 * messages go back untried, and the next connection is refused. */
static void
end_attempts(struct queue_engine *e, const struct suspension *s)
{
	struct attempt *a, *next;
	struct admin_lane l;

	for (a = e->attempts; a != NULL; a = next) {
		next = a->next;
		if (a->over || a->dest == NULL)
			continue;
		if (s->sel == ADMIN_SEL_SOURCE) {
			if (a->source < 0 || strcmp(a->cfg->sources[a->source].name, s->value) != 0)
				continue;
		} else if (admin_selector_is_lane(s->sel)) {
			lane_of(e, a->dest, &l);
			if (!admin_lane_matches(s->sel, s->value, &l))
				continue;
		} else
			continue;
		attempt_end_soon(a);
	}
}

static void
op_suspend(struct admin_op *op)
{
	struct queue_engine *e = op->e;
	struct engine_admin *ad = admin_get(e);
	const struct admin_suspend *r = &op->req;
	uint64_t now = time_now_us();
	struct suspension *s;
	const char *why = unknown_name(e, r);

	if (why != NULL) {
		op_answer(op, 404,
		          error_json(why, r->value,
		                     e->cfg->path != NULL ? e->cfg->path : "the configuration"));
		return;
	}
	if ((s = suspension_find(ad, r)) != NULL) {
		/* Again: the new duration and reason replace the old ones. Parked messages wake
		 * to be parked again until the new end. */
		free(s->reason);
		op->release = s->sel == ADMIN_SEL_TENANT || s->sel == ADMIN_SEL_CAMPAIGN;
	} else {
		if (ad->n == ad->cap) {
			ad->cap = ad->cap ? 2 * ad->cap : 8;
			ad->s = xrealloc(ad->s, ad->cap * sizeof(*ad->s));
		}
		s = &ad->s[ad->n++];
		*s = (struct suspension){.id = ad->next_id++,
		                         .sel = r->sel,
		                         .value = xstrdup(r->value),
		                         .since_us = now};
		if (s->sel == ADMIN_SEL_SOURCE)
			ad->sources++;
	}
	s->reason = r->reason[0] != '\0' ? xstrdup(r->reason) : NULL;
	s->until_us = r->duration_s > 0 ? now + r->duration_s * USEC : ADMIN_FOREVER;
	op->release_sel = s->sel;
	strlcpy_s(op->release_value, s->value, sizeof(op->release_value));
	admin_log(e, "AdminSuspend", s, false);
	end_attempts(e, s);
	/* Lanes held by an earlier end ask again (a shorter suspension than before). */
	queue_hold_none(e->q, now);
	timer_arm(e);
	engine_kick(e);
	op_answer(op, 200, suspension_json(s, now));
}

static void
op_resume(struct admin_op *op)
{
	struct queue_engine *e = op->e;
	struct engine_admin *ad = admin_get(e);
	struct suspension *s = suspension_find(ad, &op->req);
	uint64_t now = time_now_us();
	json_t *o;

	if (s == NULL) {
		op_answer(op, 404,
		          json_pack("{s:s}", "error",
		                    op->req.has_id ? "no such suspension"
		                                   : "nothing is suspended by that selector"));
		return;
	}
	o = suspension_json(s, now);
	json_object_set_new(o, "resumed", json_true());
	admin_log(e, "AdminResume", s, false);
	op->release = s->sel == ADMIN_SEL_TENANT || s->sel == ADMIN_SEL_CAMPAIGN;
	op->release_sel = s->sel;
	strlcpy_s(op->release_value, s->value, sizeof(op->release_value));
	suspension_remove(ad, (size_t)(s - ad->s));
	/* Every held lane asks again: shaping's own holds come back at once, this
	 * suspension's do not. */
	queue_hold_none(e->q, now);
	timer_arm(e);
	engine_kick(e);
	op_answer(op, 200, o);
}

struct held_count {
	struct queue_engine *e;
	const struct suspension *s;
	uint64_t items;
};

static bool
pool_has_source(const struct config *cfg, const char *pool, const char *source)
{
	const struct pool_conf *p = config_pool(cfg, pool);

	for (size_t i = 0; p != NULL && i < p->nmembers; i++)
		if (strcmp(cfg->sources[p->members[i].source].name, source) == 0)
			return true;
	return false;
}

static bool
count_lane(void *arg, const struct queue_dest_stats *st)
{
	struct held_count *h = arg;
	struct admin_lane l = {
	    .domain = engine_lane_domain(st->name),
	    .site = st->site,
	    .pool = st->via,
	    .stream = st->cls < h->e->nclasses ? h->e->class_names[st->cls] : NULL,
	};
	bool match;

	if (h->s->sel == ADMIN_SEL_SOURCE)
		match = st->via != NULL && pool_has_source(h->e->cfg, st->via, h->s->value);
	else {
		l.provider = engine_provider(h->e, l.domain);
		match = admin_lane_matches(h->s->sel, h->s->value, &l);
	}
	if (match)
		h->items += st->scheduled + st->ready;
	return true;
}

static void
op_list(struct admin_op *op)
{
	struct queue_engine *e = op->e;
	struct engine_admin *ad = e->admin;
	uint64_t now = time_now_us();
	json_t *list = json_array();

	for (size_t i = 0; ad != NULL && i < ad->n; i++) {
		const struct suspension *s = &ad->s[i];
		json_t *o;

		if (s->until_us <= now)
			continue;
		o = suspension_json(s, now);
		if (s->sel != ADMIN_SEL_TENANT && s->sel != ADMIN_SEL_CAMPAIGN) {
			struct held_count h = {e, s, 0};

			queue_foreach_dest(e->q, count_lane, &h);
			json_object_set_new(o, "held", json_integer((json_int_t)h.items));
		}
		json_array_append_new(list, o);
	}
	op_answer(op, 200, json_pack("{s:o}", "suspensions", list));
}

/* The item of match m in the queue, if the filter's lane fields agree. */
static struct queue_item *
item_of(struct admin_op *op, const struct admin_match *m)
{
	struct queue_engine *e = op->e;
	struct queue_item *found[ADMIN_ITEMS_MAX];
	size_t n = queue_find(e->q, m->id, found, nitems(found));

	for (size_t i = 0; i < n; i++) {
		struct queue_dest *d = queue_item_dest(e->q, found[i]);
		unsigned cls = queue_dest_class(d);

		if (strcmp(engine_lane_domain(queue_dest_name(d)), m->domain) != 0)
			continue;
		if (op->filter != NULL &&
		    !admin_filter_lane(op->filter, cls < e->nclasses ? e->class_names[cls] : NULL,
		                       queue_dest_via(d)))
			return NULL;
		return found[i];
	}
	return NULL;
}

static void
delete_flush(struct admin_op *op)
{
	if (op->del != NULL)
		work_add(admin_get(op->e), NULL, NULL, op->del);
	op->del = NULL;
}

static void
op_item(struct admin_op *op, const struct admin_match *m, uint64_t now)
{
	struct queue_engine *e = op->e;
	struct queue_item *it = item_of(op, m);
	struct queue_dest *d;

	if (it == NULL)
		return;
	switch (op->kind) {
	case OP_RETRY:
		d = queue_item_dest(e->q, it);
		/* A site held back after failed connections is probed now. */
		(void)queue_site_revive(e->q, queue_dest_site(d), now);
		if (!queue_item_parked(it) && queue_item_due_now(e->q, it, now))
			op->items++;
		return;
	case OP_RELEASE:
		if (queue_item_parked(it) && queue_item_due_now(e->q, it, now))
			op->items++;
		return;
	default:
		break;
	}
	if (queue_item_take(e->q, it, now) < 0) {
		op->in_flight++; /* being delivered: left to finish */
		return;
	}
	if (strcmp(op->last_id, m->id) != 0) {
		op->messages++;
		strlcpy_s(op->last_id, m->id, sizeof(op->last_id));
		if (op->kind == OP_DELETE) {
			delete_flush(op);
			op->del = xcalloc(1, sizeof(*op->del));
			op->del->e = e;
			strlcpy_s(op->del->id, m->id, sizeof(op->del->id));
			op->del->filter = admin_filter_json(op->filter);
		}
	}
	op->rcpts += m->nrcpt;
	if (op->kind == OP_BOUNCE) {
		work_add(admin_get(e), it,
		         op->filter->reason != NULL ? op->filter->reason : ADMIN_DEFAULT_BOUNCE,
		         NULL);
		return;
	}
	op->del->items = xrealloc(op->del->items, (op->del->n + 1) * sizeof(*op->del->items));
	op->del->domains = xrealloc(op->del->domains, (op->del->n + 1) * sizeof(*op->del->domains));
	op->del->items[op->del->n] = it;
	op->del->domains[op->del->n] = xstrdup(m->domain);
	op->del->n++;
}

static void
op_slice(void *arg)
{
	struct admin_op *op = arg;
	struct queue_engine *e = op->e;
	uint64_t now = time_now_us();
	size_t end = op->next + ADMIN_SLICE < op->nm ? op->next + ADMIN_SLICE : op->nm;
	json_t *o;

	if (e->stopping) {
		delete_flush(op);
		op_answer(op, 503, json_pack("{s:s}", "error", "the server is stopping"));
		return;
	}
	for (; op->next < end; op->next++)
		op_item(op, &op->m[op->next], now);
	if (op->next < op->nm) {
		mailbox_post(e->mbox, op_slice, op); /* the loop runs in between */
		admin_pump(e);
		return;
	}
	delete_flush(op);
	admin_pump(e);
	engine_kick(e);
	if (op->kind == OP_RETRY || op->kind == OP_RELEASE)
		o = json_pack("{s:I}", "items", (json_int_t)op->items);
	else
		o = json_pack("{s:I,s:I,s:I}", "matched_messages", (json_int_t)op->messages,
		              "recipients", (json_int_t)op->rcpts, "in_flight",
		              (json_int_t)op->in_flight);
	op_answer(op, 200, o);
}

static void
op_start(void *arg)
{
	struct admin_op *op = arg;

	if (op->e->stopping) {
		op_answer(op, 503, json_pack("{s:s}", "error", "the server is stopping"));
		return;
	}
	switch (op->kind) {
	case OP_SUSPEND:
		op_suspend(op);
		break;
	case OP_RESUME:
		op_resume(op);
		break;
	case OP_LIST:
		op_list(op);
		break;
	default:
		op_slice(op);
		break;
	}
}

/* ---- The caller's thread ---- */

/* Hands op to the engine's thread and waits for its answer. */
static int
op_run(struct admin_op *op)
{
	pthread_mutex_init(&op->lock, NULL);
	pthread_cond_init(&op->cond, NULL);
	mailbox_post(op->e->mbox, op_start, op);
	pthread_mutex_lock(&op->lock);
	while (!op->done)
		pthread_cond_wait(&op->cond, &op->lock);
	pthread_mutex_unlock(&op->lock);
	pthread_cond_destroy(&op->cond);
	pthread_mutex_destroy(&op->lock);
	return op->status;
}

struct scan {
	const struct admin_filter *f;
	uint64_t now;
	struct admin_match *m;
	size_t n, cap;
	uint64_t messages;
};

/* A message that the filter names: one match per destination of its pending recipients that
 * the filter's domain allows. */
static int
scan_one(void *arg, const struct envelope *env)
{
	struct scan *sc = arg;
	size_t first = sc->n;
	char dom[DNS_NAME_MAX + 3];

	if (!admin_filter_message(sc->f, env, sc->now))
		return 0;
	for (size_t i = 0; i < env->nrcpt; i++) {
		size_t k;

		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		engine_domain(env->rcpt[i].address, dom, sizeof(dom));
		if (dom[0] == '\0' || !admin_filter_domain(sc->f, dom))
			continue;
		for (k = first; k < sc->n && strcmp(sc->m[k].domain, dom) != 0; k++)
			;
		if (k == sc->n) {
			if (sc->n == sc->cap) {
				sc->cap = sc->cap ? 2 * sc->cap : 256;
				sc->m = xrealloc(sc->m, sc->cap * sizeof(*sc->m));
			}
			strlcpy_s(sc->m[k].id, env->id, sizeof(sc->m[k].id));
			sc->m[k].domain = xstrdup(dom);
			sc->m[k].nrcpt = 0;
			sc->n++;
		}
		sc->m[k].nrcpt++;
	}
	if (sc->n > first)
		sc->messages++;
	return 0;
}

static void
scan_free(struct scan *sc)
{
	for (size_t i = 0; i < sc->n; i++)
		free(sc->m[i].domain);
	free(sc->m);
}

/* What the spool has pending that the filter names (blocking: LMDB reads). */
static int
scan_spool(struct queue_engine *e, const struct admin_filter *f, struct scan *sc)
{
	memset(sc, 0, sizeof(*sc));
	sc->f = f;
	sc->now = time_now_us();
	if (f->id != NULL) {
		struct envelope env;

		if (spool_envelope_get(e->spool, f->id, &env) == 0) {
			scan_one(sc, &env);
			envelope_clear(&env);
		}
		return 0;
	}
	return spool_foreach(e->spool, scan_one, sc) < 0 ? -1 : 0;
}

static int
run_filtered(struct queue_engine *e, enum op_kind kind, const struct admin_filter *f,
             json_t **answer)
{
	struct admin_op op = {.e = e, .kind = kind, .filter = f};
	struct scan sc;
	int status;

	if (scan_spool(e, f, &sc) < 0) {
		scan_free(&sc);
		*answer = json_pack("{s:s}", "error", "cannot read the spool");
		return 500;
	}
	op.m = sc.m;
	op.nm = sc.n;
	status = op_run(&op);
	scan_free(&sc);
	*answer = op.answer;
	return status;
}

/* After a tenant's or campaign's suspension changed: its parked messages are due now (those
 * still suspended by something else are parked again when loaded). */
static void
release(struct queue_engine *e, enum admin_selector sel, const char *value)
{
	struct admin_filter f = {0};
	json_t *answer = NULL;

	if (sel == ADMIN_SEL_TENANT)
		f.tenant = (char *)value;
	else
		f.campaign = (char *)value;
	(void)run_filtered(e, OP_RELEASE, &f, &answer);
	json_decref(answer);
}

/* Items queued for a tenant or campaign, from the spool: what its suspension holds. */
static void
count_messages(struct queue_engine *e, json_t *list)
{
	size_t i;
	json_t *o;

	json_array_foreach(list, i, o)
	{
		const char *sel = json_string_value(json_object_get(o, "selector"));
		struct admin_filter f = {0};
		struct scan sc;

		if (json_object_get(o, "held") != NULL || sel == NULL)
			continue;
		if (strcmp(sel, "tenant") == 0)
			f.tenant = (char *)json_string_value(json_object_get(o, "value"));
		else
			f.campaign = (char *)json_string_value(json_object_get(o, "value"));
		if (scan_spool(e, &f, &sc) == 0)
			json_object_set_new(o, "held", json_integer((json_int_t)sc.n));
		scan_free(&sc);
	}
}

int
queue_engine_admin(struct queue_engine *e, const char *verb, json_t *body, json_t **answer)
{
	struct admin_op op = {.e = e};
	struct admin_filter f;
	json_t *empty = NULL;
	char err[512];
	int status;

	if (body == NULL)
		body = empty = json_object();
	*answer = NULL;
	if (strcmp(verb, "suspend") == 0 || strcmp(verb, "resume") == 0) {
		bool resume = verb[0] == 'r';

		op.kind = resume ? OP_RESUME : OP_SUSPEND;
		if (admin_parse_suspend(body, resume, &op.req, err, sizeof(err)) < 0) {
			*answer = json_pack("{s:s}", "error", err);
			status = 400;
		} else {
			status = op_run(&op);
			*answer = op.answer;
			if (status == 200 && op.release)
				release(e, op.release_sel, op.release_value);
		}
	} else if (strcmp(verb, "suspensions") == 0) {
		op.kind = OP_LIST;
		status = op_run(&op);
		*answer = op.answer;
		if (status == 200)
			count_messages(e, json_object_get(*answer, "suspensions"));
	} else if (strcmp(verb, "bounce") == 0 || strcmp(verb, "delete") == 0 ||
	           strcmp(verb, "retry") == 0) {
		enum op_kind kind = verb[0] == 'b'   ? OP_BOUNCE
		                    : verb[0] == 'd' ? OP_DELETE
		                                     : OP_RETRY;

		if (admin_parse_filter(body, kind == OP_RETRY, kind == OP_BOUNCE, &f, err,
		                       sizeof(err)) < 0) {
			*answer = json_pack("{s:s}", "error", err);
			status = 400;
		} else {
			status = run_filtered(e, kind, &f, answer);
			admin_filter_clear(&f);
		}
	} else {
		*answer = json_pack("{s:s}", "error", "no such admin verb");
		status = 404;
	}
	json_decref(empty);
	return status;
}
