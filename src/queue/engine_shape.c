/* engine_shape.c - the delivery engine under its shaping rules (src/shape, docs/shaping.md):
 * which site a domain's mail meets its limits at, whether a connection may open from which
 * source, whether the next message may go now, what a connection's settings are, and what
 * the receivers' replies change.
 *
 * Nothing here waits by polling: a connection or a message that may not go now is given a
 * time (the throttle's next conforming instant, the end of a suspension, the next UTC day
 * for a warm-up cap) and its lane is held until then (queue_hold), or the connection waits
 * on a timer. Adaptive actions' ends are logged by a timer that runs only while one is
 * active.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_admin.h"
#include "queue/engine_internal.h"

/* Domains whose provider was learned from their MX hosts (a Workspace domain is Google's):
 * a direct-mapped cache, an entry replaced by a later domain of the same slot. */
#define PROVIDER_CACHE_SLOTS 8192
/* Events taken from the shaping state at once. */
#define SHAPE_EVENTS_MAX 16
/* A connection waits this long at most, open and idle, for its next message's rate token;
 * longer, it closes and its lane is held (an idle connection costs the receiver a slot). */
#define SHAPE_WAIT_OPEN_MAX_US (2 * USEC)
/* With no free shaping slot (every source's max_connections reached elsewhere), the lane
 * looks again after this: a release anywhere could free one. */
#define SHAPE_NO_SLOT_WAIT_US (USEC / 2)

struct provider_entry {
	char *domain;
	char *provider;
};

struct provider_cache {
	struct provider_entry slot[PROVIDER_CACHE_SLOTS];
};

static uint64_t
fnv(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The retry schedule of a shaping setting, with delivery's jitter and the item's lifetime
 * (which the queue keeps per item anyway). */
static void
retry_from(const uint64_t *secs, unsigned n, const struct queue_engine *e,
           struct retry_schedule *out)
{
	*out = e->classes[0].retry;
	out->n = n < QUEUE_RETRY_MAX ? n : QUEUE_RETRY_MAX;
	for (unsigned i = 0; i < out->n; i++)
		out->interval_us[i] = secs[i] * USEC;
}

/* ---- Start, stop ---- */

static enum shape_tls
shape_tls_of(enum delivery_tls_policy p)
{
	switch (p) {
	case DELIVERY_TLS_DISABLED:
		return SHAPE_TLS_DISABLED;
	case DELIVERY_TLS_REQUIRED:
		return SHAPE_TLS_REQUIRED;
	case DELIVERY_TLS_REQUIRED_VERIFY:
		return SHAPE_TLS_REQUIRED_VERIFY;
	default:
		return SHAPE_TLS_OPPORTUNISTIC;
	}
}

/* drover.conf's delivery settings are the layer under every rule: an operator who sets
 * delivery.max_connections gets it wherever no provider, domain or source says otherwise. */
static void
base_settings(const struct queue_engine *e, struct shape_settings *b)
{
	const struct delivery_timeouts *t = &e->dopts.timeouts;
	const struct delivery_conf *d = &e->cfg->delivery;

	shape_settings_builtin(b);
	b->max_connections = d->max_connections ? d->max_connections : DEF_QUEUE_MAX_WINDOW;
	b->initial_connections =
	    d->initial_connections ? d->initial_connections : DEF_QUEUE_INITIAL_WINDOW;
	b->max_messages_per_connection = e->max_messages;
	b->max_recipients_per_transaction = e->max_rcpts;
	b->connect_timeout_s = t->connect_ms / 1000;
	b->greeting_timeout_s = t->greeting_ms / 1000;
	b->ehlo_timeout_s = t->helo_ms / 1000;
	b->mail_timeout_s = t->mail_ms / 1000;
	b->rcpt_timeout_s = t->rcpt_ms / 1000;
	b->data_timeout_s = t->data_ms / 1000;
	b->data_block_timeout_s = t->data_block_ms / 1000;
	b->dot_timeout_s = t->dot_ms / 1000;
	b->idle_timeout_s = t->idle_ms / 1000;
	b->nretry =
	    e->classes[0].retry.n < SHAPE_RETRY_MAX ? e->classes[0].retry.n : SHAPE_RETRY_MAX;
	for (unsigned i = 0; i < b->nretry; i++)
		b->retry_s[i] = e->classes[0].retry.interval_us[i] / USEC;
	b->tls = shape_tls_of(engine_tls_policy(e, ""));
}

/* The rules file (or the built-in rules) over drover.conf's delivery settings. */
struct shape_rules *
engine_shape_rules_load(const struct queue_engine *e, char *err, size_t errlen)
{
	const char *path = e->cfg->delivery.shaping;
	struct shape_settings base;
	struct shape_origin origin[SHAPE_FIELD_COUNT];
	struct shape_rules *r;
	char why[4096];

	base_settings(e, &base);
	for (size_t i = 0; i < SHAPE_FIELD_COUNT; i++)
		origin[i] = (struct shape_origin){
		    .layer = SHAPE_LAYER_BUILTIN, .file = e->cfg->path, .name = "delivery"};
	r = path != NULL ? shape_rules_load(path, &base, origin, why, sizeof(why))
	                 : shape_rules_builtin(&base, origin, why, sizeof(why));
	if (r == NULL)
		snprintf(err, errlen, "delivery.shaping: %s", why);
	return r;
}

int
engine_shape_start(struct queue_engine *e, char *err, size_t errlen)
{
	const char *path = e->cfg->delivery.shaping;

	if (path != NULL && strcmp(path, "none") == 0)
		return 0;
	e->shape_rules = engine_shape_rules_load(e, err, errlen);
	if (e->shape_rules == NULL)
		return -1;
	e->shape = shape_state_new(e->shape_rules, 0, 0);
	pthread_mutex_init(&e->shape_lock, NULL);
	e->shape_lock_made = true;
	e->providers = xcalloc(1, sizeof(*e->providers));
	return 0;
}

/* On the engine thread, the only one that reads the rules. The state keeps its throttles,
 * slots, warm-up counts and active actions (shape_state_set_rules); connections opened from
 * now on get the new settings, those open finish with theirs. */
void
engine_shape_rules_set(struct queue_engine *e, struct shape_rules *rules)
{
	shape_state_set_rules(e->shape, rules);
	/* Under the lock: queue_engine_shape_rules() takes a reference from another thread. */
	pthread_mutex_lock(&e->shape_lock);
	shape_rules_unref(e->shape_rules);
	e->shape_rules = rules; /* the reference given */
	pthread_mutex_unlock(&e->shape_lock);
}

void
engine_shape_stop(struct queue_engine *e)
{
	if (e->shape_timer != NULL)
		event_free(e->shape_timer);
	e->shape_timer = NULL;
	shape_state_free(e->shape);
	shape_rules_unref(e->shape_rules);
	e->shape = NULL;
	e->shape_rules = NULL;
	if (e->shape_lock_made)
		pthread_mutex_destroy(&e->shape_lock);
	e->shape_lock_made = false;
	free(e->shape_snapshot);
	e->shape_snapshot = NULL;
	if (e->providers != NULL) {
		for (size_t i = 0; i < PROVIDER_CACHE_SLOTS; i++) {
			free(e->providers->slot[i].domain);
			free(e->providers->slot[i].provider);
		}
		free(e->providers);
		e->providers = NULL;
	}
}

/* ---- Providers and sites ---- */

const char *
engine_provider(struct queue_engine *e, const char *domain)
{
	const struct provider_entry *p;
	const char *named;

	if (e->shape_rules == NULL)
		return NULL;
	if ((named = shape_provider_of(e->shape_rules, domain, NULL, 0)) != NULL)
		return named;
	p = &e->providers->slot[fnv(domain) % PROVIDER_CACHE_SLOTS];
	if (p->domain != NULL && strcmp(p->domain, domain) == 0)
		return p->provider;
	return NULL;
}

void
engine_shape_learn(struct queue_engine *e, const char *domain, const char *const *mx_hosts,
                   size_t n)
{
	struct provider_entry *p;
	const char *provider;

	if (e->shape_rules == NULL || n == 0)
		return;
	provider = shape_provider_of(e->shape_rules, domain, mx_hosts, n);
	if (provider == NULL || shape_provider_of(e->shape_rules, domain, NULL, 0) != NULL)
		return; /* none, or named directly: nothing to remember */
	p = &e->providers->slot[fnv(domain) % PROVIDER_CACHE_SLOTS];
	if (p->domain != NULL && strcmp(p->domain, domain) == 0 && p->provider != NULL &&
	    strcmp(p->provider, provider) == 0)
		return;
	free(p->domain);
	free(p->provider);
	p->domain = xstrdup(domain);
	p->provider = xstrdup(provider);
}

void
engine_shape_site(struct queue_engine *e, const char *domain, const struct pool_conf *pool,
                  char *site, size_t size, unsigned *max_window, unsigned *initial_window)
{
	struct shape_params p;
	uint64_t w;
	unsigned sources = pool != NULL && pool->nmembers > 0 ? (unsigned)pool->nmembers : 1;

	*max_window = 0;
	*initial_window = 0;
	if (e->shape_rules == NULL) {
		strlcpy_s(site, domain, size);
		return;
	}
	shape_params(e->shape_rules, NULL, engine_provider(e, domain), domain, &p);
	shape_apply_overrides(e->shape, NULL, domain, &p, time_now_us());
	strlcpy_s(site, p.dest, size);
	/* Each source may have max_connections there; the provider's cap bounds them all. */
	w = (uint64_t)p.s.max_connections * sources;
	if (p.s.provider_max_connections != 0 && p.s.provider_max_connections < w)
		w = p.s.provider_max_connections;
	*max_window = w == 0 ? 1 : w > UINT32_MAX ? UINT32_MAX : (unsigned)w;
	*initial_window = p.s.initial_connections;
}

/* ---- Events ---- */

/* Most actions listed in the control API's snapshot (the log has every one). */
#define SHAPE_SNAPSHOT_MAX 1000

/* The active actions for other threads (queue_engine_shaping_json). */
static void
shape_snapshot(struct queue_engine *e)
{
	size_t n, max = SHAPE_SNAPSHOT_MAX;
	struct shape_event *ev = xcalloc(max, sizeof(*ev));
	json_t *list = json_array();
	char *text;

	n = shape_active(e->shape, time_now_us(), ev, max);
	engine_metrics_actions(e, ev, n < max ? n : max);
	for (size_t i = 0; i < n && i < max; i++)
		json_array_append_new(list, shape_event_json(&ev[i]));
	text = json_dumps(list, JSON_COMPACT);
	json_decref(list);
	free(ev);
	pthread_mutex_lock(&e->shape_lock);
	free(e->shape_snapshot);
	e->shape_snapshot = text;
	pthread_mutex_unlock(&e->shape_lock);
}

struct shape_rules *
queue_engine_shape_rules(struct queue_engine *e)
{
	struct shape_rules *r = NULL;

	if (e == NULL || !e->shape_lock_made)
		return NULL;
	pthread_mutex_lock(&e->shape_lock);
	if (e->shape_rules != NULL)
		r = shape_rules_ref(e->shape_rules);
	pthread_mutex_unlock(&e->shape_lock);
	return r;
}

json_t *
queue_engine_shaping_json(struct queue_engine *e)
{
	json_t *j = NULL;

	if (e == NULL || !e->shape_lock_made)
		return json_array();
	pthread_mutex_lock(&e->shape_lock);
	if (e->shape_snapshot != NULL)
		j = json_loads(e->shape_snapshot, 0, NULL);
	pthread_mutex_unlock(&e->shape_lock);
	return j != NULL ? j : json_array();
}

/* An adaptive action began, grew or ended: its record, and what it changes in the queue. */
static void
shape_event(struct queue_engine *e, const struct shape_event *ev)
{
	uint64_t now = time_now_us();

	if (e->log != NULL)
		eventlog_write(e->log, SHAPE_EVENT_TYPE, shape_event_json(ev));
	log_info("delivery: adaptive rule \"%s\" (%s:%u): %s %s for %s%s%s", ev->rule, ev->file,
	         ev->line, shape_action_name(ev->action), shape_event_kind_name(ev->kind), ev->dest,
	         ev->source[0] != '\0' ? " from " : "", ev->source);
	switch (ev->action) {
	case SHAPE_ACT_SUSPEND_PROVIDER:
		/* Nothing goes there from any source until the end: every lane waits. */
		if (ev->kind != SHAPE_EV_END)
			queue_hold_site(e->q, ev->dest, ev->ends_us, now);
		else
			queue_hold_site(e->q, ev->dest, 0, now);
		break;
	case SHAPE_ACT_LIMIT:
	case SHAPE_ACT_BACKOFF: {
		/* The site's window follows the lowered limit while it lasts. */
		struct shape_params p;

		shape_effective(e->shape, ev->source[0] != '\0' ? ev->source : NULL,
		                ev->provider[0] != '\0' ? ev->provider : NULL, ev->dest, now, &p);
		queue_site_limit(e->q, ev->dest, p.s.max_connections ? p.s.max_connections : 1);
		break;
	}
	default:
		break;
	}
	shape_snapshot(e);
	engine_shape_timer_arm(e);
}

static void
on_shape_timer(evutil_socket_t fd, short what, void *arg)
{
	struct queue_engine *e = arg;
	struct shape_event ev[SHAPE_EVENTS_MAX];
	size_t n;

	(void)fd;
	(void)what;
	do {
		n = shape_expire(e->shape, time_now_us(), ev, SHAPE_EVENTS_MAX);
		for (size_t i = 0; i < n; i++)
			shape_event(e, &ev[i]);
	} while (n == SHAPE_EVENTS_MAX);
	engine_overrides_expire(e);
	engine_shape_timer_arm(e);
	engine_kick(e);
}

/* Wakes at the earliest end of an active action or an override, so that its end record is
 * written when it ends; no timer while none is active. */
void
engine_shape_timer_arm(struct queue_engine *e)
{
	uint64_t now = time_now_us(), next, wait;
	struct timeval tv;

	if (e->shape == NULL || e->base == NULL)
		return;
	if (e->shape_timer == NULL)
		e->shape_timer = evtimer_new(e->base, on_shape_timer, e);
	next = shape_next_expiry(e->shape);
	/* Operators' overrides end on the same timer (engine_inspect.c). */
	if (shape_override_next_expiry(e->shape) != 0 &&
	    (next == 0 || shape_override_next_expiry(e->shape) < next))
		next = shape_override_next_expiry(e->shape);
	if (next == 0) {
		evtimer_del(e->shape_timer);
		return;
	}
	wait = next > now ? next - now : 0;
	tv.tv_sec = (time_t)(wait / USEC);
	tv.tv_usec = (suseconds_t)(wait % USEC);
	evtimer_add(e->shape_timer, &tv);
}

/* ---- Connections ---- */

static const char *
source_name(const struct attempt *a)
{
	return a->source >= 0 ? a->cfg->sources[a->source].name : NULL;
}

/* Could source open a connection to the attempt's destination now, as far as suspensions,
 * warm-up caps and the connection rate say? If not, *when is when it could. */
static bool
source_usable(struct queue_engine *e, const char *source, const char *provider, const char *domain,
              uint64_t now, uint64_t *when)
{
	struct shape_params p;
	char key[SHAPE_NAME_MAX + SHAPE_DEST_MAX + 16];
	uint64_t t = 0;

	shape_effective(e->shape, source, provider, domain, now, &p);
	if (shape_suspended(e->shape, source, p.dest, now, &t)) {
		*when = t;
		return false;
	}
	if (!shape_warmup_allow(e->shape, source, p.dest, now, &t)) {
		*when = t;
		return false;
	}
	shape_key(key, sizeof(key), "conn", source, p.dest);
	if (!shape_throttle_peek(e->shape, key, &p.s.connection_rate, now, &t)) {
		*when = t;
		return false;
	}
	return true;
}

struct pick_ctx {
	struct queue_engine *e;
	const char *provider, *domain;
	uint64_t now, earliest; /* the soonest a refused source could go */
};

static bool
pick_filter(void *arg, size_t source)
{
	struct pick_ctx *c = arg;
	uint64_t when = UINT64_MAX;

	/* An operator's suspension (engine_admin.c) first: it holds with or without rules. */
	if (engine_admin_source_held(c->e, c->e->cfg->sources[source].name, c->now, &when)) {
		if (when < c->earliest)
			c->earliest = when;
		return false;
	}
	if (c->e->shape == NULL)
		return true;
	if (source_usable(c->e, c->e->cfg->sources[source].name, c->provider, c->domain, c->now,
	                  &when))
		return true;
	if (when < c->earliest)
		c->earliest = when;
	return false;
}

long
engine_shape_pick(struct attempt *a, uint64_t now, bool consume, uint64_t *earliest)
{
	struct queue_engine *e = a->e;
	struct pick_ctx c = {e, engine_provider(e, a->domain), a->domain, now, UINT64_MAX};

	/* A connection opened before a reload has the old configuration's pool and sources,
	 * which the engine's egress no longer counts: no other source's turn comes on it. */
	if (a->cfg != e->cfg)
		return -1;
	long s;

	if (e->shape == NULL && !engine_admin_sources_held(e))
		return egress_pick(e->egress, a->pool, a->domain, now, consume);
	s = egress_pick_filtered(e->egress, a->pool, a->domain, now, consume, pick_filter, &c);
	if (earliest != NULL)
		*earliest = c.earliest;
	return s;
}

enum shape_verdict
engine_shape_admit(struct attempt *a, uint64_t now, uint64_t *when)
{
	struct queue_engine *e = a->e;
	const char *src = source_name(a);
	enum shape_verdict v;

	*when = 0;
	if (e->shape == NULL)
		return SHAPE_GO;
	shape_effective(e->shape, src, engine_provider(e, a->domain), a->domain, now, &a->sp);
	a->shaped = true;
	if (src == NULL) {
		/* Without a pool, the one way out still has its suspensions and caps. */
		if (!source_usable(e, "", a->sp.provider, a->domain, now, when))
			return SHAPE_SUSPENDED;
	}
	v = shape_conn_acquire(e->shape, src, &a->sp, now, when);
	if (v == SHAPE_RATE)
		engine_metrics_throttle_wait(e, false);
	if (v == SHAPE_GO)
		a->shape_slot = true;
	else if (v == SHAPE_NO_SLOT)
		*when = now + SHAPE_NO_SLOT_WAIT_US;
	return v;
}

void
engine_shape_release(struct attempt *a)
{
	if (!a->shape_slot || a->e->shape == NULL)
		return;
	a->shape_slot = false;
	shape_conn_release(a->e->shape, source_name(a), a->sp.dest);
}

bool
engine_shape_bounce(struct attempt *a, uint64_t now)
{
	return a->shaped && shape_should_bounce(a->e->shape, source_name(a), a->sp.dest, now);
}

void
engine_shape_options(const struct attempt *a, struct delivery_options *o)
{
	const struct shape_settings *s = &a->sp.s;

	if (!a->shaped)
		return;
	o->timeouts.connect_ms = s->connect_timeout_s * 1000;
	o->timeouts.greeting_ms = s->greeting_timeout_s * 1000;
	o->timeouts.helo_ms = s->ehlo_timeout_s * 1000;
	o->timeouts.mail_ms = s->mail_timeout_s * 1000;
	o->timeouts.rcpt_ms = s->rcpt_timeout_s * 1000;
	o->timeouts.data_ms = s->data_timeout_s * 1000;
	o->timeouts.data_block_ms = s->data_block_timeout_s * 1000;
	o->timeouts.dot_ms = s->dot_timeout_s * 1000;
	o->timeouts.idle_ms = s->idle_timeout_s * 1000;
	o->stop_at_421 = s->on_421 == SHAPE_421_BACKOFF;
	/* A TLS policy set by the rules for this destination wins; their base is drover.conf's
	 * (a route's or a domain section's policy, else delivery.tls). */
	if (a->sp.origin[SHAPE_F_TLS].layer >= SHAPE_LAYER_PROVIDER) {
		switch (s->tls) {
		case SHAPE_TLS_DISABLED:
			o->tls = DELIVERY_TLS_DISABLED;
			break;
		case SHAPE_TLS_REQUIRED:
			o->tls = DELIVERY_TLS_REQUIRED;
			break;
		case SHAPE_TLS_REQUIRED_VERIFY:
			o->tls = DELIVERY_TLS_REQUIRED_VERIFY;
			break;
		default:
			o->tls = DELIVERY_TLS_OPPORTUNISTIC;
			break;
		}
	}
}

unsigned
engine_max_messages(const struct attempt *a)
{
	if (a->shaped && a->sp.s.max_messages_per_connection > 0)
		return a->sp.s.max_messages_per_connection;
	return a->e->max_messages;
}

unsigned
engine_max_rcpts(const struct queue_engine *e, const struct attempt *a)
{
	if (a != NULL && a->shaped && a->sp.s.max_recipients_per_transaction > 0)
		return a->sp.s.max_recipients_per_transaction;
	return e->max_rcpts;
}

bool
engine_shape_retry(const struct attempt *a, struct retry_schedule *out)
{
	const struct shape_settings *s = &a->sp.s;

	if (!a->shaped)
		return false;
	/* Backoff mode's schedule (shape_apply_actions put it in retry), or one the rules set
	 * for this destination; otherwise the stream's. */
	if (!a->sp.backoff && a->sp.origin[SHAPE_F_RETRY].layer < SHAPE_LAYER_PROVIDER)
		return false;
	if (s->nretry == 0)
		return false;
	retry_from(s->retry_s, s->nretry, a->e, out);
	return true;
}

/* ---- Messages ---- */

static void
on_rate_timer(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;

	(void)fd;
	(void)what;
	a->rate_wait = false;
	attempt_resume(a);
}

bool
engine_shape_may_send(struct attempt *a)
{
	struct queue_engine *e = a->e;
	const char *src = source_name(a);
	uint64_t now = time_now_us(), next = 0, midnight = 0;

	if (!a->shaped)
		return true;
	if (a->rate_wait)
		return false;
	if (!shape_warmup_allow(e->shape, src, a->sp.dest, now, &midnight)) {
		/* Today's cap for this source there is reached: the rest waits for tomorrow (or
		 * for another source of the pool, which a new connection picks). */
		if (a->dest != NULL)
			queue_hold(e->q, a->dest, midnight, now);
		attempt_end_soon(a);
		return false;
	}
	if (shape_message_take(e->shape, src, &a->sp, now, &next)) {
		shape_warmup_count(e->shape, src, a->sp.dest, now, 1);
		return true;
	}
	engine_metrics_throttle_wait(e, true);
	if (next - now > SHAPE_WAIT_OPEN_MAX_US || a->dest == NULL) {
		if (a->dest != NULL)
			queue_hold(e->q, a->dest, next, now);
		attempt_end_soon(a);
		return false;
	}
	if (a->rate_timer == NULL)
		a->rate_timer = evtimer_new(e->base, on_rate_timer, a);
	{
		struct timeval tv = {(time_t)((next - now) / USEC),
		                     (suseconds_t)((next - now) % USEC)};

		evtimer_add(a->rate_timer, &tv);
	}
	a->rate_wait = true;
	return false;
}

void
engine_shape_attempt_free(struct attempt *a)
{
	engine_shape_release(a);
	if (a->rate_timer != NULL)
		event_free(a->rate_timer);
	a->rate_timer = NULL;
}

/* ---- Replies ---- */

/* A suspension is of the source (or of every source) at the destination, not of the one
 * connection that saw the reply: the others it covers stop after what they have in flight. */
static void
end_covered(struct queue_engine *e, struct attempt *a, const struct shape_event *ev)
{
	const char *source = source_name(a);
	struct attempt *b, *next;

	for (b = e->attempts; b != NULL; b = next) {
		const char *bs = source_name(b);

		next = b->next;
		if (b == a || b->over || b->ending || !b->shaped ||
		    strcmp(b->sp.dest, a->sp.dest) != 0)
			continue;
		if (ev->action == SHAPE_ACT_SUSPEND_SOURCE &&
		    !(bs == source || (bs != NULL && source != NULL && strcmp(bs, source) == 0)))
			continue;
		attempt_end_soon(b);
	}
}

void
engine_shape_reply(struct attempt *a, int code, const char *status, const char *text)
{
	struct queue_engine *e = a->e;
	struct shape_event ev[SHAPE_EVENTS_MAX];
	size_t n;

	if (!a->shaped)
		return;
	n = shape_observe(e->shape, source_name(a), a->sp.provider, a->domain, code, status, text,
	                  time_now_us(), ev, SHAPE_EVENTS_MAX);
	if (n > SHAPE_EVENTS_MAX)
		n = SHAPE_EVENTS_MAX;
	for (size_t i = 0; i < n; i++) {
		shape_event(e, &ev[i]);
		/* This connection's source is suspended there, or the provider is: stop sending
		 * on it after what is in flight. */
		if (ev[i].action == SHAPE_ACT_SUSPEND_PROVIDER ||
		    ev[i].action == SHAPE_ACT_SUSPEND_SOURCE || ev[i].action == SHAPE_ACT_BOUNCE) {
			if (a->dest != NULL && ev[i].action == SHAPE_ACT_SUSPEND_SOURCE &&
			    ev[i].kind != SHAPE_EV_END && a->pool == NULL)
				queue_hold(e->q, a->dest, ev[i].ends_us, time_now_us());
			if (ev[i].action != SHAPE_ACT_BOUNCE && ev[i].kind != SHAPE_EV_END)
				end_covered(e, a, &ev[i]);
			attempt_end_soon(a);
		}
	}
}

void
engine_shape_delivered(struct attempt *a)
{
	struct shape_event ev;

	if (!a->shaped || !a->sp.backoff)
		return;
	if (shape_observe_success(a->e->shape, source_name(a), a->sp.dest, time_now_us(), &ev, 1) >
	    0) {
		a->sp.backoff = false;
		shape_event(a->e, &ev);
	}
}
