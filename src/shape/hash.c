/* hash.c - SipHash-2-4 under a random key, and the read-only name maps of compiled rules. */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "core/core.h"
#include "shape/internal.h"

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

#define SIPROUND                                                                                   \
	do {                                                                                       \
		v0 += v1;                                                                          \
		v1 = ROTL(v1, 13);                                                                 \
		v1 ^= v0;                                                                          \
		v0 = ROTL(v0, 32);                                                                 \
		v2 += v3;                                                                          \
		v3 = ROTL(v3, 16);                                                                 \
		v3 ^= v2;                                                                          \
		v0 += v3;                                                                          \
		v3 = ROTL(v3, 21);                                                                 \
		v3 ^= v0;                                                                          \
		v2 += v1;                                                                          \
		v1 = ROTL(v1, 17);                                                                 \
		v1 ^= v2;                                                                          \
		v2 = ROTL(v2, 32);                                                                 \
	} while (0)

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

static uint64_t
load_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Over the lower-cased bytes: every map here compares names without case. */
uint64_t
sh_hash(const void *data, size_t len)
{
	const unsigned char *p = data;
	unsigned char block[8];
	uint64_t v0, v1, v2, v3, m, b = (uint64_t)len << 56;
	size_t i, end = len - len % 8;

	pthread_once(&hash_once, hash_init);
	v0 = 0x736f6d6570736575ULL ^ hash_key[0];
	v1 = 0x646f72616e646f6dULL ^ hash_key[1];
	v2 = 0x6c7967656e657261ULL ^ hash_key[0];
	v3 = 0x7465646279746573ULL ^ hash_key[1];
	for (i = 0; i < end; i += 8) {
		for (int k = 0; k < 8; k++)
			block[k] = (unsigned char)tolower(p[i + k]);
		m = load_le64(block);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t k = 0; i + k < len; k++)
		b |= (uint64_t)(unsigned char)tolower(p[i + k]) << (8 * k);
	v3 ^= b;
	SIPROUND;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return v0 ^ v1 ^ v2 ^ v3;
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
