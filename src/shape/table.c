/* table.c - the state's keyed tables: bounded, with idle entries dropped a few at a time.
 *
 * Linear probing at most half full, so a lookup is a couple of probes; deletion shifts the
 * following entries back instead of leaving tombstones, so a table that churns (throttle
 * keys come and go all day) never degrades. Idle entries are dropped by a sweep that looks
 * at a few entries per call (sh_ttab_sweep), and by inserts into a full table: the memory bound
 * holds without a timer or a full scan.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

/* Slots looked at, from the sweep cursor, for an entry to evict from a full table. */
#define EVICT_WINDOW  32
#define INITIAL_SLOTS 16

static size_t
slots_max(size_t max)
{
	size_t n = INITIAL_SLOTS;

	while (n < max * 2 && n < ((size_t)1 << 40))
		n *= 2;
	return n;
}

void
sh_ttab_init(struct ttab *t, size_t max, bool evict, bool free_ptr)
{
	memset(t, 0, sizeof(*t));
	t->max = max > 0 ? max : 1;
	t->mask = INITIAL_SLOTS - 1;
	t->slots = xcalloc(INITIAL_SLOTS, sizeof(*t->slots));
	t->evict = evict;
	t->free_ptr = free_ptr;
}

static void
drop(struct ttab *t, struct tslot *s)
{
	free(s->key);
	if (t->free_ptr)
		free(s->v.ptr);
	memset(s, 0, sizeof(*s));
}

void
sh_ttab_clear(struct ttab *t)
{
	for (size_t i = 0; i <= t->mask; i++) {
		if (t->slots[i].key != NULL)
			drop(t, &t->slots[i]);
	}
	t->count = 0;
	t->cursor = 0;
}

void
sh_ttab_free(struct ttab *t)
{
	if (t->slots == NULL)
		return;
	sh_ttab_clear(t);
	free(t->slots);
	t->slots = NULL;
}

struct tslot *
sh_ttab_find(const struct ttab *t, const char *key, size_t len)
{
	uint64_t h = sh_hash(key, len);

	for (size_t i = (size_t)h & t->mask; t->slots[i].key != NULL; i = (i + 1) & t->mask) {
		struct tslot *s = &t->slots[i];

		if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0)
			return s;
	}
	return NULL;
}

static struct tslot *
place(struct tslot *slots, size_t mask, uint64_t hash)
{
	size_t i = (size_t)hash & mask;

	while (slots[i].key != NULL)
		i = (i + 1) & mask;
	return &slots[i];
}

static void
grow(struct ttab *t)
{
	size_t mask = t->mask * 2 + 1;
	struct tslot *slots = xcalloc(mask + 1, sizeof(*slots));

	for (size_t i = 0; i <= t->mask; i++) {
		if (t->slots[i].key != NULL)
			*place(slots, mask, t->slots[i].hash) = t->slots[i];
	}
	free(t->slots);
	t->slots = slots;
	t->mask = mask;
	t->cursor &= mask;
}

void
sh_ttab_remove(struct ttab *t, struct tslot *s)
{
	size_t i = (size_t)(s - t->slots), j = i;

	drop(t, s);
	t->count--;
	/* Backward shift: an entry after the hole moves into it unless its home slot lies
	 * cyclically in (hole, its position]. */
	for (;;) {
		size_t home;

		j = (j + 1) & t->mask;
		if (t->slots[j].key == NULL)
			break;
		home = (size_t)t->slots[j].hash & t->mask;
		if (i <= j ? (home > i && home <= j) : (home > i || home <= j))
			continue;
		t->slots[i] = t->slots[j];
		memset(&t->slots[j], 0, sizeof(t->slots[j]));
		i = j;
	}
}

void
sh_ttab_sweep(struct ttab *t, uint64_t now_us, size_t n)
{
	/* n entries looked at, passing at most 4n slots: a table at its bound is more than a
	 * quarter full (slots < 4 x max), so that finds about n entries there, and a sparse
	 * table costs no more. */
	for (size_t seen = 0, visits = 0; seen < n && visits < 4 * n && t->count > 0; visits++) {
		struct tslot *s = &t->slots[t->cursor];

		if (s->key != NULL)
			seen++;
		/* A removal shifts the next entry into this slot: look at it again. */
		if (s->key != NULL && s->expires_us != 0 && s->expires_us <= now_us)
			sh_ttab_remove(t, s);
		else
			t->cursor = (t->cursor + 1) & t->mask;
	}
}

/* Makes room in a full table: an expired entry near the cursor, else the one that expires
 * first among EVICT_WINDOW entries (it carries the least information). false if none may go
 * (entries that never expire are never evicted). */
static bool
evict_one(struct ttab *t, uint64_t now_us)
{
	struct tslot *best = NULL;
	size_t seen = 0;

	for (size_t k = 0; k <= t->mask && seen < EVICT_WINDOW; k++) {
		struct tslot *s = &t->slots[(t->cursor + k) & t->mask];

		if (s->key == NULL)
			continue;
		seen++;
		if (s->expires_us == 0)
			continue;
		if (s->expires_us <= now_us) {
			sh_ttab_remove(t, s);
			return true;
		}
		if (best == NULL || s->expires_us < best->expires_us)
			best = s;
	}
	if (best == NULL)
		return false;
	t->cursor = ((size_t)(best - t->slots) + 1) & t->mask;
	sh_ttab_remove(t, best);
	t->evictions++;
	return true;
}

struct tslot *
sh_ttab_insert(struct ttab *t, const char *key, size_t len, uint64_t now_us, bool *created)
{
	uint64_t h;
	struct tslot *s = sh_ttab_find(t, key, len);

	if (created != NULL)
		*created = s == NULL;
	if (s != NULL)
		return s;
	if (t->count >= t->max) {
		sh_ttab_sweep(t, now_us, EVICT_WINDOW);
		if (t->count >= t->max && (!t->evict || !evict_one(t, now_us)))
			return NULL;
	}
	if ((t->count + 1) * 2 > t->mask + 1 && t->mask + 1 < slots_max(t->max))
		grow(t);
	h = sh_hash(key, len);
	s = place(t->slots, t->mask, h);
	s->key = xstrndup(key, len);
	s->len = (uint32_t)len;
	s->hash = h;
	t->count++;
	return s;
}
