/* cache.c - answers of recent replies, keyed by (provider, code, status, normalised text).
 *
 * Set-associative: a key hashes to one set of WAYS entries, kept most recently used first, and
 * a new answer replaces the set's least recently used one. Lookup and insertion touch one set
 * only, whatever the load: O(1), with no chains for a flood of distinct replies to lengthen.
 * Sets are spread over striped mutexes so that threads classifying different replies rarely
 * wait for each other; a stripe's counters live beside its lock, not in shared atomics that
 * every lookup would bounce between cores.
 *
 * The hash is seeded per cache from getrandom(2): remote servers choose reply texts, and
 * should not be able to aim them at one set to evict what it holds.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "classify/internal.h"
#include "core/core.h"

#define WAYS        4
#define STRIPES_MAX 64

struct centry {
	uint64_t hash;
	char *text; /* allocated cap octets, reused when the entry is */
	uint32_t len, cap;
	int32_t provider;
	int16_t code;
	int16_t status[3];
	int32_t rule;
	uint8_t category;
	bool used;
};

struct cstripe {
	_Alignas(64) pthread_mutex_t lock; /* one cache line per stripe: no false sharing */
	uint64_t hits, misses, evictions;
	size_t entries;
};

struct cache {
	uint64_t seed;
	size_t mask; /* sets - 1 */
	unsigned nstripes;
	struct centry *e; /* sets x WAYS */
	struct cstripe *stripes;
};

struct cache *
cache_new(size_t entries)
{
	struct cache *c = xcalloc(1, sizeof(*c));
	size_t sets = 1, want;

	if (entries > CLASSIFY_CACHE_ENTRIES_MAX)
		entries = CLASSIFY_CACHE_ENTRIES_MAX;
	want = (entries + WAYS - 1) / WAYS;

	while (sets < want)
		sets *= 2;
	c->mask = sets - 1;
	c->nstripes = sets < STRIPES_MAX ? (unsigned)sets : STRIPES_MAX;
	c->e = xcalloc(sets * WAYS, sizeof(*c->e));
	c->stripes = aligned_alloc(_Alignof(struct cstripe), c->nstripes * sizeof(*c->stripes));
	if (c->stripes == NULL)
		fatal("out of memory for the classifier cache");
	memset(c->stripes, 0, c->nstripes * sizeof(*c->stripes));
	for (unsigned i = 0; i < c->nstripes; i++)
		pthread_mutex_init(&c->stripes[i].lock, NULL);
	if (getrandom(&c->seed, sizeof(c->seed), 0) != sizeof(c->seed))
		c->seed = time_mono_us() ^ (uint64_t)(uintptr_t)c;
	return c;
}

void
cache_free(struct cache *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < (c->mask + 1) * WAYS; i++)
		free(c->e[i].text);
	for (unsigned i = 0; i < c->nstripes; i++)
		pthread_mutex_destroy(&c->stripes[i].lock);
	free(c->stripes);
	free(c->e);
	free(c);
}

static uint64_t
mix(uint64_t h)
{
	/* splitmix64's finaliser: every input bit reaches the set index bits. */
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	return h ^ (h >> 31);
}

uint64_t
cache_hash(const struct cache *c, const struct cache_key *k)
{
	uint64_t h = c->seed ^ ((uint64_t)k->len * 0x9e3779b97f4a7c15ULL), w;
	size_t i = 0;

	/* Eight octets at a time: the text is most of the key, and this runs on every lookup. */
	for (; i + 8 <= k->len; i += 8) {
		memcpy(&w, k->text + i, 8);
		h = (h ^ w) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	w = 0;
	memcpy(&w, k->text + i, k->len - i);
	h = (h ^ w) * 0xff51afd7ed558ccdULL;
	h ^= mix((uint64_t)(uint32_t)k->provider << 32 | (uint32_t)k->code);
	h ^= mix((uint64_t)(uint16_t)k->status.p[0] << 32 |
	         (uint64_t)(uint16_t)k->status.p[1] << 16 | (uint16_t)k->status.p[2]);
	return mix(h);
}

static bool
same(const struct centry *e, const struct cache_key *k)
{
	return e->used && e->hash == k->hash && e->provider == k->provider && e->code == k->code &&
	       e->status[0] == k->status.p[0] && e->status[1] == k->status.p[1] &&
	       e->status[2] == k->status.p[2] && e->len == k->len &&
	       memcmp(e->text, k->text, k->len) == 0;
}

static struct cstripe *
stripe_of(struct cache *c, size_t set)
{
	return &c->stripes[set & (c->nstripes - 1)];
}

bool
cache_get(struct cache *c, const struct cache_key *k, struct cache_answer *a)
{
	size_t set = k->hash & c->mask;
	struct cstripe *s = stripe_of(c, set);
	struct centry *row = &c->e[set * WAYS];

	pthread_mutex_lock(&s->lock);
	for (unsigned w = 0; w < WAYS; w++) {
		if (!same(&row[w], k))
			continue;
		a->category = (enum classify_category)row[w].category;
		a->rule = row[w].rule;
		if (w > 0) {
			struct centry hit = row[w];

			memmove(row + 1, row, w * sizeof(*row));
			row[0] = hit;
		}
		s->hits++;
		pthread_mutex_unlock(&s->lock);
		return true;
	}
	s->misses++;
	pthread_mutex_unlock(&s->lock);
	return false;
}

void
cache_put(struct cache *c, const struct cache_key *k, const struct cache_answer *a)
{
	size_t set = k->hash & c->mask;
	struct cstripe *s = stripe_of(c, set);
	struct centry *row = &c->e[set * WAYS], victim;

	pthread_mutex_lock(&s->lock);
	for (unsigned w = 0; w < WAYS; w++) {
		if (same(&row[w], k)) {
			pthread_mutex_unlock(&s->lock);
			return; /* another thread got here first, with the same answer */
		}
	}
	victim = row[WAYS - 1];
	if (victim.used)
		s->evictions++;
	else
		s->entries++;
	if (victim.cap < k->len + 1) {
		victim.cap = (uint32_t)(k->len + 1 > 64 ? k->len + 1 : 64);
		victim.text = xrealloc(victim.text, victim.cap);
	}
	memcpy(victim.text, k->text, k->len);
	victim.text[k->len] = '\0';
	victim.len = (uint32_t)k->len;
	victim.hash = k->hash;
	victim.provider = k->provider;
	victim.code = (int16_t)k->code;
	memcpy(victim.status, k->status.p, sizeof(victim.status));
	victim.rule = a->rule;
	victim.category = (uint8_t)a->category;
	victim.used = true;
	memmove(row + 1, row, (WAYS - 1) * sizeof(*row));
	row[0] = victim;
	pthread_mutex_unlock(&s->lock);
}

void
cache_stats(struct cache *c, struct classify_stats *st)
{
	st->capacity = (c->mask + 1) * WAYS;
	for (unsigned i = 0; i < c->nstripes; i++) {
		struct cstripe *s = &c->stripes[i];

		pthread_mutex_lock(&s->lock);
		st->hits += s->hits;
		st->misses += s->misses;
		st->evictions += s->evictions;
		st->entries += s->entries;
		pthread_mutex_unlock(&s->lock);
	}
}
