/* match.c - classifying a reply against a table, and deciding what to do about it. */
#include <string.h>

#include "classify/internal.h"
#include "core/core.h"
#include "smtp/smtp.h"

void
status_parse(const char *s, struct status *st)
{
	int part = 0, digits = 0, v = 0;

	st->p[0] = -1;
	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return;
	st->p[0] = (int16_t)(s[0] - '0');
	for (const char *c = s + 2;; c++) {
		if (*c >= '0' && *c <= '9' && digits < 3) {
			v = v * 10 + (*c - '0');
			digits++;
		} else if ((*c == '.' && part == 0) || *c == '\0') {
			if (digits == 0)
				break;
			st->p[++part] = (int16_t)v;
			if (*c == '\0')
				break;
			v = digits = 0;
		} else {
			break;
		}
	}
	if (part != 2)
		st->p[0] = -1;
}

static bool
code_matches(const struct rule *r, int code)
{
	int d[3] = {code / 100, code / 10 % 10, code % 10};

	for (unsigned i = 0; i < r->ncodes; i++) {
		const struct code_pat *c = &r->codes[i];

		if ((c->d[0] < 0 || c->d[0] == d[0]) && (c->d[1] < 0 || c->d[1] == d[1]) &&
		    (c->d[2] < 0 || c->d[2] == d[2]))
			return true;
	}
	return false;
}

static bool
status_matches(const struct rule *r, const struct status *st)
{
	if (st->p[0] < 0)
		return false; /* a status condition needs a status */
	for (unsigned i = 0; i < r->nstatus; i++) {
		const struct status_pat *s = &r->status[i];

		if ((s->p[0] < 0 || s->p[0] == st->p[0]) && (s->p[1] < 0 || s->p[1] == st->p[1]) &&
		    (s->p[2] < 0 || s->p[2] == st->p[2]))
			return true;
	}
	return false;
}

/* First match wins, in file order, among the rules that can match the code's class. */
static void
match_rules(const struct classify_table *t, const struct cache_key *k, struct cache_answer *a)
{
	int klass = k->code / 100;
	pcre2_match_data *md = NULL;

	a->category = CLASSIFY_OTHER;
	a->rule = -1;
	for (size_t i = 0; i < t->nby_class[klass]; i++) {
		uint32_t idx = t->by_class[klass][i];
		const struct rule *r = &t->rules[idx];

		if (r->provider >= 0 && r->provider != k->provider)
			continue;
		if (r->ncodes > 0 && !code_matches(r, k->code))
			continue;
		if (r->nstatus > 0 && !status_matches(r, &k->status))
			continue;
		if (r->re != NULL) {
			if (md == NULL && (md = pcre2_match_data_create(1, NULL)) == NULL)
				fatal("out of memory for PCRE2 match data");
			/* Errors (the match limit) count as no match: a rule that cannot
			 * decide does not get to. */
			if (pcre2_match(r->re, (PCRE2_SPTR)k->text, k->len, 0, 0, md, t->mctx) < 0)
				continue;
		}
		a->category = r->category;
		a->rule = (int)idx;
		break;
	}
	pcre2_match_data_free(md);
}

void
classify_reply(const struct classify_table *t, const char *provider, int code, const char *status,
               const char *text, struct classify_result *out)
{
	char norm[CLASSIFY_TEXT_MAX + 1];
	struct cache_key k;
	struct cache_answer a;
	bool cached = false;

	memset(out, 0, sizeof(*out));
	out->rule = -1;
	if (t == NULL)
		return;
	k.provider = provider_lookup(t, provider);
	k.code = code >= 200 && code <= 599 ? code : 0;
	status_parse(status, &k.status);
	k.len = classify_normalize(text != NULL ? text : "", norm);
	k.text = norm;
	if (t->cache != NULL && k.len <= CLASSIFY_CACHE_TEXT_MAX) {
		k.hash = cache_hash(t->cache, &k);
		if (cache_get(t->cache, &k, &a)) {
			cached = true;
		} else {
			/* Matched outside the cache's lock: two threads missing on the same reply
			 * both match it, and the second insert finds the first. */
			match_rules(t, &k, &a);
			cache_put(t->cache, &k, &a);
		}
	} else {
		atomic_fetch_add_explicit(&((struct classify_table *)t)->uncachable, 1,
		                          memory_order_relaxed);
		match_rules(t, &k, &a);
	}
	out->category = a.category;
	out->rule = a.rule;
	out->line = a.rule >= 0 ? t->rules[a.rule].line : 0;
	out->cached = cached;
}

void
classify_smtp_reply(const struct classify_table *t, const char *provider,
                    const struct smtp_reply *r, struct classify_result *out)
{
	classify_reply(t, provider, r->code, r->status, r->text, out);
}

enum classify_action
classify_decide(const struct classify_table *t, const char *provider,
                enum classify_category category, int code, unsigned *line)
{
	/* A 4xx, and anything that is not a 5xx (a local failure without a code), is retried
	 * unless a decision says otherwise: bouncing by mistake loses mail, retrying by
	 * mistake only costs time until the queue lifetime ends. */
	int klass = code >= 500 && code <= 599 ? 5 : 4;

	if (line != NULL)
		*line = 0;
	if (t != NULL) {
		int p = provider_lookup(t, provider);

		for (size_t i = 0; i < t->ndecisions; i++) {
			const struct decision *d = &t->decisions[i];

			if ((d->provider >= 0 && d->provider != p) ||
			    (d->category >= 0 && d->category != (int)category) ||
			    (d->klass != 0 && d->klass != klass))
				continue;
			if (line != NULL)
				*line = d->line;
			return d->action;
		}
	}
	if (klass == 4)
		return CLASSIFY_TRANSIENT;
	switch (category) {
	case CLASSIFY_BAD_MAILBOX:
	case CLASSIFY_BAD_DOMAIN:
	case CLASSIFY_INACTIVE_MAILBOX:
		/* The address will fail the same way next time: sending again only hurts the
		 * source's reputation with the receiver. */
		return CLASSIFY_SUPPRESS;
	default:
		return CLASSIFY_PERMANENT;
	}
}

void
classify_stats(const struct classify_table *t, struct classify_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (t == NULL)
		return;
	if (t->cache != NULL)
		cache_stats(t->cache, st);
	st->uncachable = atomic_load_explicit(&t->uncachable, memory_order_relaxed);
	st->lookups = st->hits + st->misses + st->uncachable;
}
