/* hash.c - SipHash-2-4 (core) under a random key, and the read-only name maps of compiled
 * rules. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/core.h"
#include "shape/internal.h"

static uint64_t hash_key[2];
static pthread_once_t hash_once = PTHREAD_ONCE_INIT;

static void
hash_init(void)
{
	/* Without randomness (very early boot) the tables still work, only predictably. */
	if (getrandom(hash_key, sizeof(hash_key), GRND_NONBLOCK) != (ssize_t)sizeof(hash_key)) {
		hash_key[0] = time_mono_us() ^ 0x9e3779b97f4a7c15ULL;
		hash_key[1] = (uint64_t)(uintptr_t)&hash_key;
	}
}

/* Over the lower-cased bytes: every map here compares names without case. */
uint64_t
sh_hash(const void *data, size_t len)
{
	pthread_once(&hash_once, hash_init);
	return siphash24_fold(hash_key, data, len);
}

void
sh_strmap_init(struct strmap *m)
{
	m->mask = 15;
	m->count = 0;
	m->slots = xcalloc(m->mask + 1, sizeof(*m->slots));
}

void
sh_strmap_free(struct strmap *m)
{
	free(m->slots);
	m->slots = NULL;
	m->count = 0;
}

static void
strmap_place(struct strmap_slot *slots, size_t mask, const struct strmap_slot *s)
{
	size_t i = (size_t)s->hash & mask;

	while (slots[i].key != NULL)
		i = (i + 1) & mask;
	slots[i] = *s;
}

int
sh_strmap_put(struct strmap *m, const char *key, size_t len, int value)
{
	uint64_t h = sh_hash(key, len);
	size_t i = (size_t)h & m->mask;
	struct strmap_slot s;

	for (; m->slots[i].key != NULL; i = (i + 1) & m->mask) {
		if (m->slots[i].hash == h && m->slots[i].len == len &&
		    strncasecmp(m->slots[i].key, key, len) == 0)
			return m->slots[i].value;
	}
	/* At most half full: probes stay short whatever the keys. */
	if ((m->count + 1) * 2 > m->mask + 1) {
		size_t mask = m->mask * 2 + 1;
		struct strmap_slot *slots = xcalloc(mask + 1, sizeof(*slots));

		for (size_t j = 0; j <= m->mask; j++) {
			if (m->slots[j].key != NULL)
				strmap_place(slots, mask, &m->slots[j]);
		}
		free(m->slots);
		m->slots = slots;
		m->mask = mask;
	}
	s = (struct strmap_slot){.key = key, .hash = h, .len = (uint32_t)len, .value = value};
	strmap_place(m->slots, m->mask, &s);
	m->count++;
	return -1;
}

int
sh_strmap_get(const struct strmap *m, const char *key, size_t len)
{
	uint64_t h;
	size_t i;

	if (m->slots == NULL || m->count == 0)
		return -1;
	h = sh_hash(key, len);
	for (i = (size_t)h & m->mask; m->slots[i].key != NULL; i = (i + 1) & m->mask) {
		if (m->slots[i].hash == h && m->slots[i].len == len &&
		    strncasecmp(m->slots[i].key, key, len) == 0)
			return m->slots[i].value;
	}
	return -1;
}
