/* core/siphash.c - SipHash-2-4, the keyed hash of every table whose keys a client chooses. */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "core/core.h"

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

static unsigned char
octet(const unsigned char *p, bool fold)
{
	return fold ? (unsigned char)tolower(*p) : *p;
}

static uint64_t
load_le64(const unsigned char *p, bool fold)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = (v << 8) | octet(p + i, fold);
	return v;
}

static uint64_t
siphash(const uint64_t key[2], const void *data, size_t len, bool fold)
{
	const unsigned char *p = data;
	uint64_t v0 = 0x736f6d6570736575ULL ^ key[0];
	uint64_t v1 = 0x646f72616e646f6dULL ^ key[1];
	uint64_t v2 = 0x6c7967656e657261ULL ^ key[0];
	uint64_t v3 = 0x7465646279746573ULL ^ key[1];
	uint64_t m, b = (uint64_t)len << 56;
	size_t i, end = len - len % 8;

	for (i = 0; i < end; i += 8) {
		m = load_le64(p + i, fold);
		v3 ^= m;
		SIPROUND;
		SIPROUND;
		v0 ^= m;
	}
	for (size_t k = 0; i + k < len; k++)
		b |= (uint64_t)octet(p + i + k, fold) << (8 * k);
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

uint64_t
siphash24(const uint64_t key[2], const void *data, size_t len)
{
	return siphash(key, data, len, false);
}

uint64_t
siphash24_fold(const uint64_t key[2], const void *data, size_t len)
{
	return siphash(key, data, len, true);
}

void
siphash_key_random(uint64_t key[2])
{
	unsigned char *p = (unsigned char *)key;
	size_t got = 0;

	while (got < 2 * sizeof(uint64_t)) {
		ssize_t n = getrandom(p + got, 2 * sizeof(uint64_t) - got, 0);

		if (n < 0 && errno != EINTR)
			fatal("siphash: getrandom: %s", strerror(errno));
		if (n > 0)
			got += (size_t)n;
	}
}
