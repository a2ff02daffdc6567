/* tls_memory.c - servers whose TLS handshake failed under opportunistic TLS, remembered for a
 * while so that later connections to them go in clear at once instead of failing a handshake
 * first (docs/delivery.md, "TLS").
 *
 * Keyed by host name, address and port: a name and an address together, since the name is
 * what the server's SNI sees (one name may fail where another works) and an MX name may have
 * several addresses behind different TLS terminators. Bounded: at most max entries; a new one
 * takes an expired slot, else the one that expires first. Lookups walk the array comparing
 * 64-bit hashes: a few hundred entries at most in practice, and a lookup per candidate when
 * a connection starts, which costs less than the connection's own system calls. Pure: time
 * comes from the caller. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "queue/engine_internal.h"

struct tls_memory_entry {
	uint64_t hash;
	uint64_t until_us; /* remembered until then */
	char *key;
};

struct tls_memory {
	struct tls_memory_entry *e;
	size_t n, max;
	uint64_t ttl_us;
};

struct tls_memory *
tls_memory_new(size_t max, uint64_t ttl_us)
{
	struct tls_memory *m = xcalloc(1, sizeof(*m));

	m->max = max > 0 ? max : 1;
	m->ttl_us = ttl_us;
	m->e = xcalloc(m->max, sizeof(*m->e));
	return m;
}

void
tls_memory_free(struct tls_memory *m)
{
	if (m == NULL)
		return;
	for (size_t i = 0; i < m->n; i++)
		free(m->e[i].key);
	free(m->e);
	free(m);
}

/* "mx.example.com[192.0.2.1]:25", the name lower-cased (DNS names are case-insensitive). */
static char *
make_key(const char *host, const char *ip, uint16_t port, uint64_t *hash)
{
	char *k =
	    xasprintf("%s[%s]:%u", host != NULL ? host : "", ip != NULL ? ip : "", (unsigned)port);
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (char *p = k; *p != '\0' && *p != '['; p++)
		*p = (char)tolower((unsigned char)*p);
	for (const unsigned char *p = (const unsigned char *)k; *p != '\0'; p++)
		h = (h ^ *p) * 0x100000001b3ULL;
	*hash = h;
	return k;
}

static struct tls_memory_entry *
find(struct tls_memory *m, const char *key, uint64_t hash)
{
	for (size_t i = 0; i < m->n; i++)
		if (m->e[i].hash == hash && m->e[i].key != NULL && strcmp(m->e[i].key, key) == 0)
			return &m->e[i];
	return NULL;
}

void
tls_memory_add(struct tls_memory *m, const char *host, const char *ip, uint16_t port,
               uint64_t now_us)
{
	uint64_t hash;
	char *key = make_key(host, ip, port, &hash);
	struct tls_memory_entry *e = find(m, key, hash);
	uint64_t until = now_us + m->ttl_us < now_us ? UINT64_MAX : now_us + m->ttl_us;

	if (e != NULL) {
		e->until_us = until;
		free(key);
		return;
	}
	if (m->n < m->max) {
		e = &m->e[m->n++];
	} else {
		/* Full: the entry that expires first goes (an expired one, if any). */
		e = &m->e[0];
		for (size_t i = 1; i < m->n; i++)
			if (m->e[i].until_us < e->until_us)
				e = &m->e[i];
		free(e->key);
	}
	*e = (struct tls_memory_entry){.hash = hash, .until_us = until, .key = key};
}

bool
tls_memory_has(struct tls_memory *m, const char *host, const char *ip, uint16_t port,
               uint64_t now_us)
{
	uint64_t hash;
	char *key;
	const struct tls_memory_entry *e;

	if (m == NULL || m->n == 0)
		return false;
	key = make_key(host, ip, port, &hash);
	e = find(m, key, hash);
	free(key);
	return e != NULL && e->until_us > now_us;
}

size_t
tls_memory_count(const struct tls_memory *m, uint64_t now_us)
{
	size_t n = 0;

	for (size_t i = 0; m != NULL && i < m->n; i++)
		n += m->e[i].until_us > now_us;
	return n;
}
