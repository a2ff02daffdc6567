/* adaptive.c - adaptive rules at work: counting matches, starting and ending actions, and
 * the answers the engine asks for on its hot path (suspended? limited? bounce?).
 *
 * An action is one record per (kind, source, destination) (per (kind, destination) for
 * suspend-provider), found by hash; a second trigger while it is active extends it instead
 * of starting another. Records sit in a heap by end time, so expiry costs O(log n) per
 * action and nothing per query: a query compares the end time with now, which is why
 * everything returns to normal by itself even if shape_expire() is never called.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

#define KEY_SIZE (SHAPE_DEST_MAX + 2 * SHAPE_NAME_MAX + 32)

struct action {
	struct shape_event ev; /* as it stands: kind start, rule, scope, times, values */
	char *key;
	size_t heap;           /* index in st->heap */
	const char *rule_name; /* interned: origins may point at it after the action ends */
};

/* Matches of one rule within its period, oldest first (a ring). */
struct window {
	unsigned n, head, cap;
	uint64_t t[];
};

/* ---- The heap of actions by end time ---- */

static bool
earlier(const struct action *a, const struct action *b)
{
	return a->ev.ends_us < b->ev.ends_us;
}

static void
heap_set(struct shape_state *st, size_t i, struct action *a)
{
	st->heap[i] = a;
	a->heap = i;
}

static void
heap_up(struct shape_state *st, size_t i)
{
	struct action *a = st->heap[i];

	while (i > 0 && earlier(a, st->heap[(i - 1) / 2])) {
		heap_set(st, i, st->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(st, i, a);
}

static void
heap_down(struct shape_state *st, size_t i)
{
	struct action *a = st->heap[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= st->nheap)
			break;
		if (c + 1 < st->nheap && earlier(st->heap[c + 1], st->heap[c]))
			c++;
		if (!earlier(st->heap[c], a))
			break;
		heap_set(st, i, st->heap[c]);
		i = c;
	}
	heap_set(st, i, a);
}

static void
heap_push(struct shape_state *st, struct action *a)
{
	if (st->nheap == st->heap_alloc) {
		st->heap_alloc = st->heap_alloc ? st->heap_alloc * 2 : 64;
		st->heap = xrealloc(st->heap, st->heap_alloc * sizeof(*st->heap));
	}
	heap_set(st, st->nheap++, a);
	heap_up(st, st->nheap - 1);
}

static void
heap_remove(struct shape_state *st, struct action *a)
{
	size_t i = a->heap;

	st->nheap--;
	if (i == st->nheap)
		return;
	heap_set(st, i, st->heap[st->nheap]);
	heap_up(st, i);
	heap_down(st, st->heap[i]->heap);
}

/* ---- Records ---- */

static const char *
action_key_kind(enum shape_action a)
{
	return shape_action_name(a);
}

/* The source an action of this kind is scoped to ("" for a provider-wide one). */
static const char *
scope_source(enum shape_action a, const char *source)
{
	if (a == SHAPE_ACT_SUSPEND_PROVIDER || source == NULL)
		return "";
	return source;
}

static struct action *
action_find(const struct shape_state *st, enum shape_action kind, const char *source,
            const char *dest)
{
	char key[KEY_SIZE];
	size_t len =
	    shape_key(key, sizeof(key), action_key_kind(kind), scope_source(kind, source), dest);
	struct tslot *s;

	if (len == 0 || len >= sizeof(key))
		return NULL;
	s = sh_ttab_find(&st->actions, key, len);
	return s != NULL ? s->v.ptr : NULL;
}

/* An active one at now_us (an expired record not yet collected is not). */
static const struct action *
action_active(const struct shape_state *st, enum shape_action kind, const char *source,
              const char *dest, uint64_t now_us)
{
	const struct action *a = action_find(st, kind, source, dest);

	return a != NULL && a->ev.ends_us > now_us ? a : NULL;
}

static const char *
intern(struct shape_state *st, const char *name)
{
	for (size_t i = 0; i < st->nnames; i++) {
		if (strcmp(st->names[i], name) == 0)
			return st->names[i];
	}
	st->names = xrealloc(st->names, (st->nnames + 1) * sizeof(char *));
	st->names[st->nnames] = xstrdup(name);
	return st->names[st->nnames++];
}

/* Ends a, writing its END event into *ev (if not NULL), and frees it. */
static void
action_end(struct shape_state *st, struct action *a, enum shape_end_reason why, uint64_t now_us,
           struct shape_event *ev)
{
	struct tslot *s = sh_ttab_find(&st->actions, a->key, strlen(a->key));

	if (ev != NULL) {
		*ev = a->ev;
		ev->kind = SHAPE_EV_END;
		ev->reason = why;
		if (why != SHAPE_END_EXPIRED)
			ev->ends_us = now_us; /* when it ended, not when it would have */
	}
	heap_remove(st, a);
	if (s != NULL)
		sh_ttab_remove(&st->actions, s);
	free(a->key);
	free(a);
}

void
sh_actions_free(struct shape_state *st)
{
	while (st->nheap > 0)
		action_end(st, st->heap[0], SHAPE_END_CANCELLED, 0, NULL);
	free(st->heap);
	st->heap = NULL;
	st->heap_alloc = 0;
}

/* ---- Matching ---- */

static bool
code_matches(const struct adaptive *r, int code)
{
	if (r->ncodes == 0)
		return true;
	if (code < 200 || code > 599)
		return false;
	for (unsigned i = 0; i < r->ncodes; i++) {
		const struct code_pat *c = &r->codes[i];
		int d[3] = {code / 100, code / 10 % 10, code % 10};

		if ((c->d[0] < 0 || c->d[0] == d[0]) && (c->d[1] < 0 || c->d[1] == d[1]) &&
		    (c->d[2] < 0 || c->d[2] == d[2]))
			return true;
	}
	return false;
}

static bool
status_matches(const struct adaptive *r, const int16_t st[3])
{
	if (r->nstatus == 0)
		return true;
	if (st[0] < 0)
		return false;
	for (unsigned i = 0; i < r->nstatus; i++) {
		const struct status_pat *p = &r->status[i];

		if ((p->p[0] < 0 || p->p[0] == st[0]) && (p->p[1] < 0 || p->p[1] == st[1]) &&
		    (p->p[2] < 0 || p->p[2] == st[2]))
			return true;
	}
	return false;
}

bool
sh_adaptive_match(const struct shape_rules *rules, const struct adaptive *r, int code,
                  const int16_t status[3], const char *text, size_t len, pcre2_match_data *md)
{
	if (!code_matches(r, code) || !status_matches(r, status))
		return false;
	if (r->re == NULL)
		return true;
	return pcre2_match(r->re, (PCRE2_SPTR)text, len, 0, 0, md, rules->mctx) >= 0;
}

/* Counts a match of rule i; returns the matches that fire its trigger (N), or 0. */
static unsigned
count_match(struct shape_state *st, size_t i, const struct adaptive *r, const char *source,
            const char *dest, uint64_t now_us)
{
	char key[KEY_SIZE], kind[16];
	struct window *w;
	struct tslot *s;
	size_t len;
	bool created;

	if (r->trigger_n <= 1)
		return 1;
	snprintf(kind, sizeof(kind), "t%zu", i);
	len = shape_key(key, sizeof(key), kind, scope_source(r->action, source), dest);
	if (len == 0 || len >= sizeof(key))
		return 0;
	sh_ttab_sweep(&st->triggers, now_us, 2);
	if ((s = sh_ttab_insert(&st->triggers, key, len, now_us, &created)) == NULL)
		return 0;
	if (created) {
		s->v.ptr = xcalloc(1, sizeof(struct window) + r->trigger_n * sizeof(uint64_t));
		((struct window *)s->v.ptr)->cap = r->trigger_n;
	}
	w = s->v.ptr;
	/* Matches older than the period no longer count ("N within PERIOD": a sliding
	 * window, exact: the times themselves are kept). */
	while (w->n > 0 && w->t[w->head] + r->trigger_period_us <= now_us) {
		w->head = (w->head + 1) % w->cap;
		w->n--;
	}
	w->t[(w->head + w->n) % w->cap] = now_us;
	w->n++;
	s->expires_us = now_us + r->trigger_period_us;
	if (w->n < w->cap)
		return 0;
	/* Fired: the next firing needs N new matches. */
	w->n = 0;
	w->head = 0;
	return r->trigger_n;
}

static void
copy_text(char *dst, size_t size, const char *src)
{
	size_t o = 0;

	for (; src != NULL && *src != '\0' && o + 1 < size; src++)
		dst[o++] = *src == '\n' || *src == '\r' ? ' ' : *src;
	dst[o] = '\0';
}

/* Starts or extends rule r's action for (source, dest). Writes 0 to 2 events (the end of an
 * uncollected expired record, then start or extend) and returns how many. */
static size_t
fire(struct shape_state *st, const struct adaptive *r, const char *source, const char *provider,
     const char *domain, const char *dest, int code, const char *status, const char *text,
     unsigned matches, uint64_t now_us, struct shape_event ev[2])
{
	const char *src = scope_source(r->action, source);
	struct action *a = action_find(st, r->action, source, dest);
	uint64_t ends = now_us + r->duration_us;
	size_t n = 0;

	if (a != NULL && a->ev.ends_us <= now_us) {
		action_end(st, a, SHAPE_END_EXPIRED, now_us, &ev[n++]);
		a = NULL;
	}
	if (a == NULL) {
		char key[KEY_SIZE];
		size_t len = shape_key(key, sizeof(key), action_key_kind(r->action), src, dest);
		struct tslot *s;

		if (len == 0 || len >= sizeof(key))
			return n;
		if ((s = sh_ttab_insert(&st->actions, key, len, now_us, NULL)) == NULL) {
			st->actions_dropped++;
			return n;
		}
		a = xcalloc(1, sizeof(*a));
		s->v.ptr = a;
		a->key = xstrndup(key, len);
		a->ev.action = r->action;
		strlcpy_s(a->ev.source, src, sizeof(a->ev.source));
		strlcpy_s(a->ev.dest, dest, sizeof(a->ev.dest));
		strlcpy_s(a->ev.provider, provider != NULL ? provider : "", sizeof(a->ev.provider));
		a->ev.started_us = now_us;
		a->ev.ends_us = ends;
		if (r->action == SHAPE_ACT_LIMIT) {
			a->ev.message_rate = r->message_rate;
			a->ev.max_connections = r->max_connections;
		}
		heap_push(st, a);
		ev[n].kind = SHAPE_EV_START;
	} else {
		if (ends > a->ev.ends_us) {
			a->ev.ends_us = ends;
			heap_down(st, a->heap);
		}
		/* A limit triggered again limits at least as much as either rule says. */
		if (r->action == SHAPE_ACT_LIMIT) {
			if (r->message_rate.count > 0 &&
			    (a->ev.message_rate.count == 0 ||
			     shape_rate_stricter(&r->message_rate, &a->ev.message_rate)))
				a->ev.message_rate = r->message_rate;
			if (r->max_connections > 0 && (a->ev.max_connections == 0 ||
			                               r->max_connections < a->ev.max_connections))
				a->ev.max_connections = r->max_connections;
		}
		ev[n].kind = SHAPE_EV_EXTEND;
	}
	/* The rule that keeps it going is the one to name. */
	strlcpy_s(a->ev.rule, r->name, sizeof(a->ev.rule));
	strlcpy_s(a->ev.file, r->file != NULL ? r->file : "", sizeof(a->ev.file));
	a->ev.line = r->line;
	a->rule_name = intern(st, r->name);
	if (r->action == SHAPE_ACT_BACKOFF) {
		if (r->nretry > 0) {
			memcpy(a->ev.retry_s, r->retry_s, sizeof(a->ev.retry_s));
			a->ev.nretry = r->nretry;
		} else {
			struct shape_params p;

			shape_params(st->rules, source, provider, domain, &p);
			memcpy(a->ev.retry_s, p.s.backoff_retry_s, sizeof(a->ev.retry_s));
			a->ev.nretry = p.s.nbackoff_retry;
		}
	}
	/* What set it off goes with this event only. */
	enum shape_event_kind kind = ev[n].kind;

	ev[n] = a->ev;
	ev[n].kind = kind;
	ev[n].reason = SHAPE_END_NONE;
	ev[n].code = code;
	copy_text(ev[n].status, sizeof(ev[n].status), status);
	copy_text(ev[n].text, sizeof(ev[n].text), text);
	ev[n].matches = matches;
	return n + 1;
}

size_t
shape_observe(struct shape_state *st, const char *source, const char *provider, const char *domain,
              int code, const char *status, const char *text, uint64_t now_us,
              struct shape_event *out, size_t max)
{
	const struct shape_rules *rules = st->rules;
	int p = sh_rules_provider(rules, provider);
	char dest[SHAPE_DEST_MAX + 1], dom[SHAPE_DEST_MAX + 2];
	const uint32_t *list = p >= 0 ? rules->providers[p].rules : rules->unscoped;
	size_t nlist = p >= 0 ? rules->providers[p].nrules : rules->nunscoped, n = 0, len;
	int16_t stp[3];

	sh_rules_dest(rules, p, domain, dest);
	if (dest[0] == '\0')
		return 0;
	if (!sh_name_lower(domain, dom, sizeof(dom), &len))
		dom[0] = '\0';
	if (source == NULL)
		source = "";
	if (text == NULL)
		text = "";
	len = strlen(text);
	if (len > SHAPE_TEXT_MAX)
		len = SHAPE_TEXT_MAX;
	sh_status_parse(status, stp);
	for (size_t k = 0; k < nlist; k++) {
		const struct adaptive *r = &rules->rules[list[k]];
		struct shape_event ev[2];
		unsigned matches;
		size_t m;

		if (r->domain != NULL && strcmp(r->domain, dom) != 0)
			continue;
		if (!sh_adaptive_match(rules, r, code, stp, text, len, st->md))
			continue;
		if ((matches = count_match(st, list[k], r, source, dest, now_us)) == 0)
			continue;
		m = fire(st, r, source, p >= 0 ? rules->providers[p].name : NULL, domain, dest,
		         code, status, text, matches, now_us, ev);
		for (size_t i = 0; i < m; i++, n++) {
			if (n < max)
				out[n] = ev[i];
		}
	}
	return n;
}

size_t
shape_observe_success(struct shape_state *st, const char *source, const char *dest, uint64_t now_us,
                      struct shape_event *out, size_t max)
{
	struct action *a = action_find(st, SHAPE_ACT_BACKOFF, source, dest);
	struct shape_event ev;

	if (a == NULL)
		return 0;
	/* Past its end it expired, whatever happened since. */
	action_end(st, a, a->ev.ends_us <= now_us ? SHAPE_END_EXPIRED : SHAPE_END_SUCCESS, now_us,
	           &ev);
	if (max >= 1)
		out[0] = ev;
	return 1;
}

size_t
shape_expire(struct shape_state *st, uint64_t now_us, struct shape_event *out, size_t max)
{
	size_t n = 0;

	while (n < max && st->nheap > 0 && st->heap[0]->ev.ends_us <= now_us)
		action_end(st, st->heap[0], SHAPE_END_EXPIRED, now_us, &out[n++]);
	sh_ttab_sweep(&st->throttles, now_us, 8);
	sh_ttab_sweep(&st->triggers, now_us, 8);
	sh_ttab_sweep(&st->warm, now_us, 8);
	return n;
}

uint64_t
shape_next_expiry(const struct shape_state *st)
{
	return st->nheap > 0 ? st->heap[0]->ev.ends_us : 0;
}

size_t
shape_cancel(struct shape_state *st, const char *source, const char *dest, int action,
             uint64_t now_us, struct shape_event *out, size_t max)
{
	struct action **hit = xcalloc(st->nheap ? st->nheap : 1, sizeof(*hit));
	size_t nhit = 0, n = 0;
	char d[SHAPE_DEST_MAX + 2];
	size_t len;

	if (!sh_name_lower(dest, d, sizeof(d), &len)) {
		free(hit);
		return 0;
	}
	for (size_t i = 0; i < st->nheap; i++) {
		struct action *a = st->heap[i];

		if (strcmp(a->ev.dest, d) != 0)
			continue;
		if (action >= 0 && (int)a->ev.action != action)
			continue;
		if (source != NULL && strcmp(a->ev.source, source) != 0)
			continue;
		hit[nhit++] = a;
	}
	for (size_t i = 0; i < nhit; i++, n++) {
		struct shape_event ev;

		action_end(st, hit[i],
		           hit[i]->ev.ends_us <= now_us ? SHAPE_END_EXPIRED : SHAPE_END_CANCELLED,
		           now_us, &ev);
		if (n < max)
			out[n] = ev;
	}
	free(hit);
	return n;
}

/* ---- Queries ---- */

bool
shape_suspended(const struct shape_state *st, const char *source, const char *dest, uint64_t now_us,
                uint64_t *until_us)
{
	const struct action *s = action_active(st, SHAPE_ACT_SUSPEND_SOURCE, source, dest, now_us);
	const struct action *p = action_active(st, SHAPE_ACT_SUSPEND_PROVIDER, NULL, dest, now_us);
	uint64_t until = 0;

	if (s != NULL)
		until = s->ev.ends_us;
	if (p != NULL && p->ev.ends_us > until)
		until = p->ev.ends_us;
	if (until_us != NULL)
		*until_us = until;
	return until != 0;
}

bool
shape_should_bounce(const struct shape_state *st, const char *source, const char *dest,
                    uint64_t now_us)
{
	return action_active(st, SHAPE_ACT_BOUNCE, source, dest, now_us) != NULL;
}

static void
adaptive_origin(struct shape_params *p, enum shape_field f, const struct action *a)
{
	p->origin[f] = (struct shape_origin){
	    .layer = SHAPE_LAYER_ADAPTIVE, .name = a->rule_name, .file = NULL, .line = a->ev.line};
}

void
shape_apply_actions(const struct shape_state *st, const char *source, struct shape_params *p,
                    uint64_t now_us)
{
	const struct action *l = action_active(st, SHAPE_ACT_LIMIT, source, p->dest, now_us);
	const struct action *b = action_active(st, SHAPE_ACT_BACKOFF, source, p->dest, now_us);

	if (l != NULL) {
		p->limited = true;
		if (l->ev.message_rate.count > 0 &&
		    shape_rate_stricter(&l->ev.message_rate, &p->s.message_rate)) {
			p->s.message_rate = l->ev.message_rate;
			adaptive_origin(p, SHAPE_F_MESSAGE_RATE, l);
		}
		if (l->ev.max_connections > 0 && l->ev.max_connections < p->s.max_connections) {
			p->s.max_connections = l->ev.max_connections;
			adaptive_origin(p, SHAPE_F_MAX_CONNECTIONS, l);
		}
	}
	if (b != NULL) {
		p->backoff = true;
		p->s.max_connections = 1;
		adaptive_origin(p, SHAPE_F_MAX_CONNECTIONS, b);
		if (b->ev.nretry > 0) {
			memcpy(p->s.retry_s, b->ev.retry_s, sizeof(p->s.retry_s));
			p->s.nretry = b->ev.nretry;
			adaptive_origin(p, SHAPE_F_RETRY, b);
		}
		if (shape_rate_stricter(&p->s.backoff_message_rate, &p->s.message_rate)) {
			p->s.message_rate = p->s.backoff_message_rate;
			adaptive_origin(p, SHAPE_F_MESSAGE_RATE, b);
		}
	}
	if (p->s.initial_connections > p->s.max_connections) {
		p->s.initial_connections = p->s.max_connections;
		p->origin[SHAPE_F_INITIAL_CONNECTIONS] = p->origin[SHAPE_F_MAX_CONNECTIONS];
	}
}

void
shape_effective(const struct shape_state *st, const char *source, const char *provider,
                const char *domain, uint64_t now_us, struct shape_params *out)
{
	shape_params(st->rules, source, provider, domain, out);
	shape_apply_overrides(st, source, domain, out, now_us);
	shape_apply_actions(st, source, out, now_us);
}

static int
by_end(const void *a, const void *b)
{
	const struct action *x = *(struct action *const *)a, *y = *(struct action *const *)b;

	if (x->ev.ends_us != y->ev.ends_us)
		return x->ev.ends_us < y->ev.ends_us ? -1 : 1;
	return strcmp(x->key, y->key);
}

size_t
shape_active(const struct shape_state *st, uint64_t now_us, struct shape_event *out, size_t max)
{
	struct action **v = xcalloc(st->nheap ? st->nheap : 1, sizeof(*v));
	size_t n = 0;

	for (size_t i = 0; i < st->nheap; i++) {
		if (st->heap[i]->ev.ends_us > now_us)
			v[n++] = st->heap[i];
	}
	qsort(v, n, sizeof(*v), by_end);
	for (size_t i = 0; i < n && i < max; i++) {
		out[i] = v[i]->ev;
		out[i].kind = SHAPE_EV_START;
		out[i].reason = SHAPE_END_NONE;
	}
	free(v);
	return n;
}
