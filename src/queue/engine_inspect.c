/* engine_inspect.c - the admin API's questions to the engine (queue_engine_ask): the busiest
 * destinations from the in-memory queue, the shaping state per site, and operators' shaping
 * overrides. Each runs on the engine thread, which owns the queue and the shaping state, and
 * its answer goes back to the asker's mailbox: the engine never waits on the asker.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"

/* Rows of a top list, unless asked for fewer. */
#define TOP_DEFAULT_LIMIT 10
#define TOP_MAX_LIMIT     1000
/* Sites an adaptive answer describes (the queue's, those with mail): the rest are counted. */
#define ADAPTIVE_SITES_MAX 1000

struct ask {
	struct queue_engine *e;
	enum queue_engine_question q;
	json_t *args;
	struct mailbox *reply_to;
	queue_engine_answer_fn *fn;
	void *arg;
	int status;
	json_t *answer;
};

/* On the asker's thread. */
static void
deliver(void *p)
{
	struct ask *a = p;

	a->fn(a->arg, a->status, a->answer);
	free(a);
}

static void
answer(struct ask *a, int status, json_t *body)
{
	a->status = status;
	a->answer = body;
}

static void __attribute__((format(printf, 3, 4)))
fail(struct ask *a, int status, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	answer(a, status, json_pack("{s:s}", "error", why));
}

/* The queue's lanes, copied out (the queue must not change under queue_foreach_dest). */
struct lane {
	char *site;   /* the queue's site (the shaping destination) */
	char *domain; /* after the lane name's '@' */
	char *via;    /* its pool, NULL: none */
	struct queue_dest_stats st;
};

struct lanes {
	struct lane *v;
	size_t n, cap;
};

static bool
collect_lane(void *arg, const struct queue_dest_stats *st)
{
	struct lanes *l = arg;
	const char *at = strrchr(st->name, '@');

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->n] = (struct lane){.site = xstrdup(st->site),
	                           .domain = xstrdup(at != NULL ? at + 1 : st->site),
	                           .via = st->via != NULL ? xstrdup(st->via) : NULL,
	                           .st = *st};
	/* The stats' strings are the queue's: not kept past the walk. */
	l->v[l->n].st.name = l->v[l->n].st.site = l->v[l->n].st.via = NULL;
	l->n++;
	return true;
}

static void
lanes_collect(struct queue_engine *e, struct lanes *l)
{
	*l = (struct lanes){0};
	queue_foreach_dest(e->q, collect_lane, l);
}

static void
lanes_free(struct lanes *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].site);
		free(l->v[i].domain);
		free(l->v[i].via);
	}
	free(l->v);
}

/* ---- top ---- */

static const char *
dest_state(const struct queue_dest_stats *st, uint64_t now)
{
	if (st->state == QUEUE_DEST_DEAD)
		return "dead";
	if (st->state == QUEUE_DEST_PROBE)
		return "probe";
	if (st->held_until_us > now)
		return "held";
	return "ok";
}

/* The worse of two states, for a group of lanes. */
static int
state_rank(const char *s)
{
	return strcmp(s, "dead") == 0 ? 3 : strcmp(s, "probe") == 0 ? 2 : strcmp(s, "held") == 0;
}

static void
add_count(json_t *row, const char *key, uint64_t n)
{
	json_object_set_new(
	    row, key, json_integer(json_integer_value(json_object_get(row, key)) + (json_int_t)n));
}

static int
by_pending(const void *a, const void *b)
{
	json_int_t x = json_integer_value(json_object_get(*(json_t *const *)a, "pending"));
	json_int_t y = json_integer_value(json_object_get(*(json_t *const *)b, "pending"));

	if (x != y)
		return x > y ? -1 : 1;
	return strcmp(json_string_value(json_object_get(*(json_t *const *)a, "name")),
	              json_string_value(json_object_get(*(json_t *const *)b, "name")));
}

static void
ask_top(struct ask *a)
{
	const char *by = json_string_value(json_object_get(a->args, "by"));
	json_t *limit_j = json_object_get(a->args, "limit");
	json_int_t limit = limit_j != NULL ? json_integer_value(limit_j) : TOP_DEFAULT_LIMIT;
	bool provider = by != NULL && strcmp(by, "provider") == 0;
	json_t *groups = json_object(), *list = json_array(), *row, **sorted;
	uint64_t now = time_now_us();
	struct lanes l;
	const char *name;
	size_t n = 0;

	if (by != NULL && !provider && strcmp(by, "destination") != 0) {
		fail(a, 400, "by=%s: expected destination or provider", by);
		json_decref(groups);
		json_decref(list);
		return;
	}
	if (limit < 1 || limit > TOP_MAX_LIMIT) {
		fail(a, 400, "limit: expected 1 to %d", TOP_MAX_LIMIT);
		json_decref(groups);
		json_decref(list);
		return;
	}
	lanes_collect(a->e, &l);
	for (size_t i = 0; i < l.n; i++) {
		const struct queue_dest_stats *st = &l.v[i].st;
		const char *p = provider ? engine_provider(a->e, l.v[i].domain) : NULL;
		const char *key = p != NULL ? p : l.v[i].domain, *state = dest_state(st, now);

		if ((row = json_object_get(groups, key)) == NULL) {
			row = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I}", "name",
			                key, "pending", (json_int_t)0, "ready", (json_int_t)0,
			                "scheduled", (json_int_t)0, "active", (json_int_t)0,
			                "connections", (json_int_t)0, "window", (json_int_t)0,
			                "state", "ok", "deferred", (json_int_t)0, "delivered",
			                (json_int_t)0, "bounced", (json_int_t)0);
			json_object_set_new(groups, key, row);
		}
		add_count(row, "pending",
		          (uint64_t)st->scheduled + st->ready + st->active_items + st->expiring);
		add_count(row, "ready", st->ready);
		add_count(row, "scheduled", st->scheduled);
		add_count(row, "active", st->active_items);
		add_count(row, "connections", st->slots);
		add_count(row, "deferred", st->deferred);
		add_count(row, "delivered", st->delivered);
		add_count(row, "bounced", st->bounced);
		/* The window is the site's: a group of lanes of one site shows it once; a
		 * provider's group of several sites, their sum. */
		if (json_object_get(row, "_sites") == NULL)
			json_object_set_new(row, "_sites", json_object());
		if (json_object_get(json_object_get(row, "_sites"), l.v[i].site) == NULL) {
			json_object_set_new(json_object_get(row, "_sites"), l.v[i].site,
			                    json_true());
			add_count(row, "window", st->window);
		}
		if (state_rank(state) >
		    state_rank(json_string_value(json_object_get(row, "state"))))
			json_object_set_new(row, "state", json_string(state));
	}
	lanes_free(&l);
	sorted = xcalloc(json_object_size(groups) + 1, sizeof(*sorted));
	json_object_foreach(groups, name, row)
	{
		json_object_del(row, "_sites");
		sorted[n++] = row;
	}
	qsort(sorted, n, sizeof(*sorted), by_pending);
	for (size_t i = 0; i < n && i < (size_t)limit; i++)
		json_array_append(list, sorted[i]);
	free(sorted);
	json_decref(groups);
	answer(a, 200,
	       json_pack("{s:s,s:I,s:o}", "by", provider ? "provider" : "destination", "total",
	                 (json_int_t)n, "groups", list));
}

/* ---- adaptive ---- */

static json_t *
overrides_json(struct queue_engine *e)
{
	json_t *list = json_array();
	struct shape_override *o;
	size_t n;

	if (e->shape == NULL)
		return list;
	o = xcalloc(SHAPE_OVERRIDES_MAX, sizeof(*o));
	n = shape_overrides(e->shape, time_now_us(), o, SHAPE_OVERRIDES_MAX);
	for (size_t i = 0; i < n && i < SHAPE_OVERRIDES_MAX; i++)
		json_array_append_new(list, shape_override_json(&o[i]));
	free(o);
	return list;
}

/* What the rules (with overrides and adaptive actions) give one source at one site now. */
static json_t *
site_json(struct queue_engine *e, const char *domain, const char *source, uint64_t now)
{
	const char *provider = engine_provider(e, domain);
	struct shape_params p;
	char rate[64];
	uint64_t cap;
	json_t *o;

	shape_effective(e->shape, source, provider, domain, now, &p);
	shape_rate_format(&p.s.message_rate, rate, sizeof(rate));
	o = json_object();
	json_object_set_new(o, "site", json_string(p.dest));
	json_object_set_new(o, "domain", json_string(domain));
	json_object_set_new(o, "provider",
	                    p.provider != NULL ? json_string(p.provider) : json_null());
	json_object_set_new(o, "source", source != NULL ? json_string(source) : json_null());
	json_object_set_new(o, "max_connections", json_integer(p.s.max_connections));
	json_object_set_new(o, "max_connections_from",
	                    json_string(shape_layer_name(p.origin[SHAPE_F_MAX_CONNECTIONS].layer)));
	json_object_set_new(o, "connections",
	                    json_integer(shape_conn_count(e->shape, source, p.dest)));
	json_object_set_new(o, "message_rate", json_string(rate));
	json_object_set_new(o, "message_rate_from",
	                    json_string(shape_layer_name(p.origin[SHAPE_F_MESSAGE_RATE].layer)));
	json_object_set_new(o, "limited", json_boolean(p.limited));
	json_object_set_new(o, "backoff", json_boolean(p.backoff));
	json_object_set_new(
	    o, "suspended",
	    json_boolean(shape_suspended(e->shape, source ? source : "", p.dest, now, NULL)));
	if (source != NULL && shape_warmup_cap(e->shape_rules, source, p.dest, now, &cap)) {
		char c[32];

		snprintf(c, sizeof(c), "%llu", (unsigned long long)cap);
		json_object_set_new(
		    o, "warmup",
		    json_pack("{s:s,s:I}", "cap", cap == UINT64_MAX ? "unlimited" : c, "sent",
		              (json_int_t)shape_warmup_count(e->shape, source, p.dest, now, 0)));
	} else
		json_object_set_new(o, "warmup", json_null());
	return o;
}

static void
ask_adaptive(struct ask *a)
{
	struct queue_engine *e = a->e;
	json_t *sites = json_array(), *seen = json_object();
	uint64_t now = time_now_us();
	size_t more = 0;
	struct lanes l;

	if (e->shape == NULL) {
		json_decref(seen);
		answer(
		    a, 200,
		    json_pack("{s:b,s:[],s:o,s:[]}", "shaping", 0, "actions", sites, "overrides"));
		return;
	}
	lanes_collect(e, &l);
	for (size_t i = 0; i < l.n; i++) {
		const struct pool_conf *pool = l.v[i].via ? config_pool(e->cfg, l.v[i].via) : NULL;
		size_t nsrc = pool != NULL ? pool->nmembers : 1;

		for (size_t k = 0; k < nsrc; k++) {
			const char *src =
			    pool != NULL ? e->cfg->sources[pool->members[k].source].name : NULL;
			json_t *s = site_json(e, l.v[i].domain, src, now);
			char key[SHAPE_DEST_MAX + SHAPE_NAME_MAX + 4];

			snprintf(key, sizeof(key), "%s\x1f%s",
			         json_string_value(json_object_get(s, "site")),
			         src != NULL ? src : "");
			if (json_object_get(seen, key) != NULL ||
			    json_array_size(sites) >= ADAPTIVE_SITES_MAX) {
				more += json_object_get(seen, key) == NULL;
				json_decref(s);
				continue;
			}
			json_object_set_new(seen, key, json_true());
			json_array_append_new(sites, s);
		}
	}
	lanes_free(&l);
	json_decref(seen);
	answer(a, 200,
	       json_pack("{s:b,s:o,s:o,s:I,s:o}", "shaping", 1, "actions",
	                 queue_engine_shaping_json(e), "sites", sites, "sites_not_shown",
	                 (json_int_t)more, "overrides", overrides_json(e)));
}

/* ---- overrides ---- */

/* The site windows an override touches follow it (as adaptive limits do): each lane of a
 * matching destination gets its site's window top again from the rules and overrides. */
static void
override_windows(struct queue_engine *e, const struct shape_override *o)
{
	struct lanes l;

	lanes_collect(e, &l);
	for (size_t i = 0; i < l.n; i++) {
		char site[SHAPE_DEST_MAX + 1];
		unsigned maxw, initw;

		if (!shape_override_matches(o, o->source[0] ? o->source : NULL,
		                            engine_provider(e, l.v[i].domain), l.v[i].domain))
			continue;
		engine_shape_site(e, l.v[i].domain,
		                  l.v[i].via ? config_pool(e->cfg, l.v[i].via) : NULL, site,
		                  sizeof(site), &maxw, &initw);
		queue_site_limit(e->q, site, maxw);
	}
	lanes_free(&l);
}

/* Its ShapingOverride record (event set, remove, expire), the windows, the timer. */
static void
override_changed(struct queue_engine *e, const struct shape_override *o, const char *event)
{
	json_t *rec = shape_override_json(o);

	json_object_set_new(rec, "event", json_string(event));
	log_info("delivery: shaping override %u (%s %s%s%s): %s", o->id,
	         o->provider[0] ? "provider" : "domain", o->provider[0] ? o->provider : o->domain,
	         o->source[0] ? ", source " : "", o->source, event);
	if (e->log != NULL)
		eventlog_write(e->log, SHAPE_OVERRIDE_EVENT_TYPE, rec);
	else
		json_decref(rec);
	override_windows(e, o);
	engine_shape_timer_arm(e);
	engine_kick(e);
}

/* A name as the rules write it: a provider or source title. */
static int
copy_name(struct ask *a, const char *what, json_t *v, char *buf, size_t size)
{
	const char *s = json_string_value(v);

	if (s == NULL || s[0] == '\0' || strlen(s) >= size) {
		fail(a, 400, "\"%s\": expected a name of 1 to %zu characters", what, size - 1);
		return -1;
	}
	strlcpy_s(buf, s, size);
	return 0;
}

static bool
known_source(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsources; i++)
		if (strcmp(cfg->sources[i].name, name) == 0)
			return true;
	return false;
}

static bool
known_provider(struct queue_engine *e, const char *name)
{
	for (size_t i = 0; i < shape_provider_count(e->shape_rules); i++)
		if (strcmp(shape_provider_name(e->shape_rules, i), name) == 0)
			return true;
	return false;
}

/* POST /api/v1/shaping/overrides's body into o; -1 after answering 400. */
static int
override_parse(struct ask *a, struct shape_override *o)
{
	json_t *b = a->args, *set = json_object_get(b, "set"), *v,
	       *dur = json_object_get(b, "duration");
	const char *key, *why;
	uint64_t secs;

	if ((json_object_get(b, "provider") != NULL) == (json_object_get(b, "domain") != NULL)) {
		fail(a, 400, "name either a \"provider\" or a \"domain\"");
		return -1;
	}
	if (json_object_get(b, "provider") != NULL) {
		if (copy_name(a, "provider", json_object_get(b, "provider"), o->provider,
		              sizeof(o->provider)) < 0)
			return -1;
		if (!known_provider(a->e, o->provider)) {
			fail(a, 400, "provider \"%s\": no such provider in the shaping rules",
			     o->provider);
			return -1;
		}
	} else {
		if (copy_name(a, "domain", json_object_get(b, "domain"), o->domain,
		              sizeof(o->domain)) < 0)
			return -1;
		for (char *p = o->domain; *p != '\0'; p++)
			*p = (char)(*p >= 'A' && *p <= 'Z' ? *p + 32 : *p);
	}
	if (json_object_get(b, "source") != NULL) {
		if (copy_name(a, "source", json_object_get(b, "source"), o->source,
		              sizeof(o->source)) < 0)
			return -1;
		if (!known_source(a->e->cfg, o->source)) {
			fail(a, 400, "source \"%s\": no such source in the configuration",
			     o->source);
			return -1;
		}
	}
	if (!json_is_object(set) || json_object_size(set) == 0) {
		fail(a, 400,
		     "\"set\": expected an object of shaping settings, e.g. "
		     "{\"max_connections\": 2}");
		return -1;
	}
	json_object_foreach(set, key, v)
	{
		char num[32];
		const char *text = json_string_value(v);

		if (json_is_integer(v)) {
			snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(v));
			text = num;
		}
		if (text == NULL) {
			fail(a, 400, "set.%s: expected a string or a number", key);
			return -1;
		}
		if (shape_override_set(o, key, text, &why) < 0) {
			fail(a, 400, "set.%s: \"%.100s\": %s", key, text, why);
			return -1;
		}
	}
	/* Without a duration it stays until removed (or until a restart). */
	if (dur != NULL && !json_is_null(dur)) {
		if (json_is_integer(dur) && json_integer_value(dur) > 0)
			secs = (uint64_t)json_integer_value(dur);
		else if (json_string_value(dur) == NULL ||
		         units_duration(json_string_value(dur), &secs) != 0 || secs == 0 ||
		         secs > 366ull * 86400) {
			fail(a, 400,
			     "\"duration\": expected 1s to 366d, as \"30m\", \"2h\" or seconds");
			return -1;
		}
		o->ends_us = time_now_us() + secs * USEC;
	}
	return 0;
}

static void
ask_override_add(struct ask *a)
{
	struct queue_engine *e = a->e;
	struct shape_override o = {0};

	if (override_parse(a, &o) < 0)
		return;
	if (shape_override_add(e->shape, &o, time_now_us()) < 0) {
		fail(a, 409, "%d overrides are in force already: remove one first",
		     SHAPE_OVERRIDES_MAX);
		return;
	}
	override_changed(e, &o, "set");
	answer(a, 201, shape_override_json(&o));
}

static void
ask_override_remove(struct ask *a)
{
	json_int_t id = json_integer_value(json_object_get(a->args, "id"));
	struct shape_override o;

	if (id <= 0 || id > UINT32_MAX || !shape_override_remove(a->e->shape, (unsigned)id, &o)) {
		fail(a, 404, "no override %lld", (long long)id);
		return;
	}
	override_changed(a->e, &o, "remove");
	answer(a, 200, shape_override_json(&o));
}

void
engine_overrides_expire(struct queue_engine *e)
{
	struct shape_override o[8];
	size_t n;

	if (e->shape == NULL)
		return;
	do {
		n = shape_override_expire(e->shape, time_now_us(), o, nitems(o));
		for (size_t i = 0; i < n; i++)
			override_changed(e, &o[i], "expire");
	} while (n == nitems(o));
}

/* ---- Asking ---- */

static void
on_ask(void *p)
{
	struct ask *a = p;

	if (a->e->shape == NULL && a->q >= QUEUE_ASK_OVERRIDES) {
		fail(a, 503, "shaping is off (delivery.shaping = \"none\"): nothing to override");
	} else
		switch (a->q) {
		case QUEUE_ASK_TOP:
			ask_top(a);
			break;
		case QUEUE_ASK_ADAPTIVE:
			ask_adaptive(a);
			break;
		case QUEUE_ASK_OVERRIDES:
			answer(a, 200, json_pack("{s:o}", "overrides", overrides_json(a->e)));
			break;
		case QUEUE_ASK_OVERRIDE_ADD:
			ask_override_add(a);
			break;
		case QUEUE_ASK_OVERRIDE_REMOVE:
			ask_override_remove(a);
			break;
		}
	json_decref(a->args);
	a->args = NULL;
	mailbox_post(a->reply_to, deliver, a);
}

void
queue_engine_ask(struct queue_engine *e, enum queue_engine_question q, json_t *args,
                 struct mailbox *reply_to, queue_engine_answer_fn *fn, void *arg)
{
	struct ask *a = xcalloc(1, sizeof(*a));

	*a = (struct ask){.e = e, .q = q, .args = args, .reply_to = reply_to, .fn = fn, .arg = arg};
	if (e == NULL) {
		json_decref(a->args);
		a->args = NULL;
		fail(a, 503, "delivery is off: there is no queue engine to ask");
		mailbox_post(reply_to, deliver, a);
		return;
	}
	mailbox_post(e->mbox, on_ask, a);
}
