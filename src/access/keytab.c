/* keytab.c - the striped, bounded, LRU-ordered table of per-key records behind the limiter
 * and the failure tracker (see internal.h). */
#include <stdlib.h>
#include <string.h>

#include "access/internal.h"
#include "core/core.h"

/* Below this many records per stripe, fewer stripes: a small table (tests, a tiny server)
 * then evicts in true LRU order rather than per stripe. */
#define KT_STRIPE_MIN  256
#define KT_STRIPES_MAX 16
/* 2^28 keys is 10 GB of records: more is a typo, not a tuning. */
#define KT_KEYS_MAX (1UL << 28)
#define KT_GROW_MIN 16

void
keytab_init(struct keytab *kt, size_t max_keys)
{
	size_t cap;

	if (max_keys == 0)
		max_keys = ACCESS_MAX_KEYS_DEFAULT;
	if (max_keys > KT_KEYS_MAX)
		max_keys = KT_KEYS_MAX;
	siphash_key_random(kt->key);
	kt->nstripes = KT_STRIPES_MAX;
	while (kt->nstripes > 1 && max_keys / kt->nstripes < KT_STRIPE_MIN)
		kt->nstripes /= 2;
	cap = (max_keys + kt->nstripes - 1) / kt->nstripes;
	kt->stripes = xcalloc(kt->nstripes, sizeof(*kt->stripes));
	for (unsigned i = 0; i < kt->nstripes; i++) {
		struct kt_stripe *s = &kt->stripes[i];

		pthread_mutex_init(&s->lock, NULL);
		s->cap = (uint32_t)cap;
		s->free = s->newest = s->oldest = KT_NIL;
	}
}

void
keytab_destroy(struct keytab *kt)
{
	for (unsigned i = 0; i < kt->nstripes; i++) {
		pthread_mutex_destroy(&kt->stripes[i].lock);
		free(kt->stripes[i].e);
		free(kt->stripes[i].bucket);
	}
	free(kt->stripes);
	kt->stripes = NULL;
}

uint64_t
keytab_id(const struct keytab *kt, const char *key)
{
	return siphash24(kt->key, key, strnlen(key, ACCESS_KEY_MAX));
}

/* The stripe from the top bits, the bucket from the bottom ones: independent. */
static struct kt_stripe *
stripe_of(struct keytab *kt, uint64_t id)
{
	return &kt->stripes[(id >> 56) & (kt->nstripes - 1)];
}

struct kt_stripe *
keytab_lock(struct keytab *kt, uint64_t id)
{
	struct kt_stripe *s = stripe_of(kt, id);

	pthread_mutex_lock(&s->lock);
	return s;
}

void
keytab_unlock(struct kt_stripe *s)
{
	pthread_mutex_unlock(&s->lock);
}

void
keytab_lock_all(struct keytab *kt)
{
	for (unsigned i = 0; i < kt->nstripes; i++)
		pthread_mutex_lock(&kt->stripes[i].lock);
}

void
keytab_unlock_all(struct keytab *kt)
{
	for (unsigned i = kt->nstripes; i-- > 0;)
		pthread_mutex_unlock(&kt->stripes[i].lock);
}

static uint32_t *
bucket_of(struct kt_stripe *s, uint64_t id)
{
	return &s->bucket[id & (s->nbucket - 1)];
}

static void
lru_unlink(struct kt_stripe *s, uint32_t i)
{
	struct kt_entry *e = &s->e[i];

	if (e->newer != KT_NIL)
		s->e[e->newer].older = e->older;
	else
		s->newest = e->older;
	if (e->older != KT_NIL)
		s->e[e->older].newer = e->newer;
	else
		s->oldest = e->newer;
}

static void
lru_push_newest(struct kt_stripe *s, uint32_t i)
{
	struct kt_entry *e = &s->e[i];

	e->newer = KT_NIL;
	e->older = s->newest;
	if (s->newest != KT_NIL)
		s->e[s->newest].newer = i;
	s->newest = i;
	if (s->oldest == KT_NIL)
		s->oldest = i;
}

struct kt_entry *
kt_find(struct kt_stripe *s, uint64_t id)
{
	if (s->nbucket == 0)
		return NULL;
	for (uint32_t i = *bucket_of(s, id); i != KT_NIL; i = s->e[i].next) {
		if (s->e[i].id != id)
			continue;
		if (s->newest != i) {
			lru_unlink(s, i);
			lru_push_newest(s, i);
		}
		return &s->e[i];
	}
	return NULL;
}

static void
chain_unlink(struct kt_stripe *s, uint32_t i)
{
	uint32_t *p = bucket_of(s, s->e[i].id);

	while (*p != i)
		p = &s->e[*p].next;
	*p = s->e[i].next;
}

void
kt_remove(struct kt_stripe *s, struct kt_entry *e)
{
	uint32_t i = (uint32_t)(e - s->e);

	chain_unlink(s, i);
	lru_unlink(s, i);
	e->next = s->free;
	s->free = i;
	s->count--;
}

/* More records, and buckets to match (one per record keeps chains about one long). */
static void
grow(struct kt_stripe *s)
{
	uint32_t n = s->nalloc < KT_GROW_MIN ? KT_GROW_MIN : s->nalloc * 2;
	uint32_t nb = 1;

	if (n > s->cap)
		n = s->cap;
	while (nb < n)
		nb *= 2;
	s->e = xrealloc(s->e, (size_t)n * sizeof(*s->e));
	s->nalloc = n;
	if (nb == s->nbucket)
		return;
	free(s->bucket);
	s->bucket = xmalloc((size_t)nb * sizeof(*s->bucket));
	s->nbucket = nb;
	for (uint32_t b = 0; b < nb; b++)
		s->bucket[b] = KT_NIL;
	/* Rehash what is in use: walking the LRU list visits exactly those. */
	for (uint32_t i = s->newest; i != KT_NIL; i = s->e[i].older) {
		uint32_t *head = bucket_of(s, s->e[i].id);

		s->e[i].next = *head;
		*head = i;
	}
}

struct kt_entry *
kt_insert(struct kt_stripe *s, uint64_t id)
{
	struct kt_entry *e;
	uint32_t i, *head;

	if (s->free == KT_NIL && s->nused == s->cap)
		kt_remove(s, &s->e[s->oldest]);
	if (s->free != KT_NIL) {
		i = s->free;
		s->free = s->e[i].next;
	} else {
		if (s->nused == s->nalloc)
			grow(s);
		i = s->nused++;
	}
	e = &s->e[i];
	memset(e, 0, sizeof(*e));
	e->id = id;
	head = bucket_of(s, id);
	e->next = *head;
	*head = i;
	lru_push_newest(s, i);
	s->count++;
	return e;
}

void
kt_expire(struct kt_stripe *s, uint64_t now, kt_idle_fn *idle, const void *ctx, unsigned max)
{
	while (max-- > 0 && s->oldest != KT_NIL && idle(&s->e[s->oldest], now, ctx))
		kt_remove(s, &s->e[s->oldest]);
}

size_t
keytab_count(struct keytab *kt)
{
	size_t n = 0;

	for (unsigned i = 0; i < kt->nstripes; i++) {
		pthread_mutex_lock(&kt->stripes[i].lock);
		n += kt->stripes[i].count;
		pthread_mutex_unlock(&kt->stripes[i].lock);
	}
	return n;
}
