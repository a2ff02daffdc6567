/* table.c - a loaded rules table: its lifetime, its name maps, providers, and the slot that
 * publishes the current table to the threads that classify. */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "classify/internal.h"
#include "core/core.h"

/* ---- String map ---- */

/* FNV-1a: keys are short names from the rules file, and nobody outside chooses them. */
static uint32_t
strhash(const char *s, size_t len)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 16777619u;
	}
	return h;
}

void
strmap_init(struct strmap *m)
{
	m->mask = 15;
	m->count = 0;
	m->slots = xcalloc(m->mask + 1, sizeof(*m->slots));
}

void
strmap_free(struct strmap *m)
{
	free(m->slots);
	m->slots = NULL;
}

static struct strmap_slot *
strmap_find(const struct strmap *m, const char *key, size_t len, uint32_t h)
{
	for (size_t i = h & m->mask;; i = (i + 1) & m->mask) {
		struct strmap_slot *s = &m->slots[i];

		if (s->key == NULL ||
		    (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0))
			return s;
	}
}

int
strmap_put(struct strmap *m, const char *key, size_t len, int value)
{
	uint32_t h = strhash(key, len);
	struct strmap_slot *s;

	/* At most half full, so that a probe for an absent name stays short. */
	if ((m->count + 1) * 2 > m->mask + 1) {
		struct strmap old = *m;

		m->mask = (m->mask + 1) * 2 - 1;
		m->slots = xcalloc(m->mask + 1, sizeof(*m->slots));
		for (size_t i = 0; i <= old.mask; i++) {
			if (old.slots[i].key != NULL)
				*strmap_find(m, old.slots[i].key, old.slots[i].len,
				             old.slots[i].hash) = old.slots[i];
		}
		free(old.slots);
	}
	s = strmap_find(m, key, len, h);
	if (s->key != NULL)
		return s->value;
	s->key = key;
	s->len = (uint32_t)len;
	s->hash = h;
	s->value = value;
	m->count++;
	return -1;
}

int
strmap_get(const struct strmap *m, const char *key, size_t len)
{
	struct strmap_slot *s = strmap_find(m, key, len, strhash(key, len));

	return s->key != NULL ? s->value : -1;
}

/* ---- Lifetime ---- */

struct classify_table *
classify_ref(struct classify_table *t)
{
	if (t != NULL)
		atomic_fetch_add(&t->refs, 1);
	return t;
}

void
classify_unref(struct classify_table *t)
{
	if (t == NULL || atomic_fetch_sub(&t->refs, 1) != 1)
		return;
	for (size_t i = 0; i < t->nrules; i++)
		pcre2_code_free(t->rules[i].re);
	free(t->rules);
	free(t->decisions);
	for (size_t i = 0; i < t->nproviders; i++)
		free(t->providers[i]);
	free(t->providers);
	for (size_t i = 0; i < t->nstrings; i++)
		free(t->strings[i]);
	free(t->strings);
	strmap_free(&t->provider_index);
	strmap_free(&t->names);
	for (size_t c = 0; c < CLASSES; c++)
		free(t->by_class[c]);
	pcre2_match_context_free(t->mctx);
	cache_free(t->cache);
	free(t->name);
	free(t);
}

/* ---- Accessors ---- */

size_t
classify_rule_count(const struct classify_table *t)
{
	return t != NULL ? t->nrules : 0;
}

unsigned
classify_rule_line(const struct classify_table *t, size_t i)
{
	return t != NULL && i < t->nrules ? t->rules[i].line : 0;
}

size_t
classify_decision_count(const struct classify_table *t)
{
	return t != NULL ? t->ndecisions : 0;
}

size_t
classify_provider_count(const struct classify_table *t)
{
	return t != NULL ? t->nproviders : 0;
}

const char *
classify_provider_name(const struct classify_table *t, size_t i)
{
	return t != NULL && i < t->nproviders ? t->providers[i] : NULL;
}

int
provider_lookup(const struct classify_table *t, const char *name)
{
	if (name == NULL || t->nproviders == 0)
		return -1;
	return strmap_get(&t->provider_index, name, strlen(name));
}

const char *
classify_provider_of(const struct classify_table *t, const char *host)
{
	char name[256] = "";
	size_t len;
	int v;

	if (t == NULL || host == NULL || t->names.count == 0)
		return NULL;
	len = strnlen(host, sizeof(name));
	if (len == sizeof(name))
		return NULL; /* longer than any DNS name: nothing of ours */
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len == 0)
		return NULL;
	for (size_t i = 0; i < len; i++)
		name[i] = (char)tolower((unsigned char)host[i]);
	/* The whole name first, then each parent from the longest down: the first hit is the
	 * longest suffix, so "mail.protection.outlook.com" can belong to another provider than
	 * "outlook.com". */
	if ((v = strmap_get(&t->names, name, len)) >= 0)
		return t->providers[v & ~NAME_EXACT];
	for (size_t i = 0; i < len; i++) {
		if (name[i] != '.')
			continue;
		v = strmap_get(&t->names, name + i + 1, len - i - 1);
		if (v >= 0 && !(v & NAME_EXACT))
			return t->providers[v];
	}
	return NULL;
}

/* ---- Slot ---- */

struct classify_slot {
	pthread_mutex_t lock;
	struct classify_table *t;
};

struct classify_slot *
classify_slot_new(struct classify_table *initial)
{
	struct classify_slot *s = xcalloc(1, sizeof(*s));

	pthread_mutex_init(&s->lock, NULL);
	s->t = initial;
	return s;
}

struct classify_table *
classify_slot_get(struct classify_slot *s)
{
	struct classify_table *t;

	/* Loading the pointer and taking the reference must be one step: between the two, a
	 * reload could drop the last other reference and free the table. */
	pthread_mutex_lock(&s->lock);
	t = classify_ref(s->t);
	pthread_mutex_unlock(&s->lock);
	return t;
}

void
classify_slot_set(struct classify_slot *s, struct classify_table *t)
{
	struct classify_table *old;

	pthread_mutex_lock(&s->lock);
	old = s->t;
	s->t = t;
	pthread_mutex_unlock(&s->lock);
	/* Outside the lock: freeing a big table must not hold up readers of the new one. */
	classify_unref(old);
}

void
classify_slot_free(struct classify_slot *s)
{
	if (s == NULL)
		return;
	classify_unref(s->t);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

struct classify_table *
classify_builtin(size_t cache_entries, char *err, size_t errlen)
{
	return classify_parse("builtin bounce-rules.conf", classify_builtin_rules,
	                      classify_builtin_rules_len, cache_entries, err, errlen);
}
