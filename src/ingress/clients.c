/* clients.c - how many sessions each client address has open, and in total.
 *
 * The accept loop counts a session in before handing it to a worker; the worker counts it
 * out when it closes. A mutex is enough: it is taken twice per connection, never per
 * command. IPv4-mapped IPv6 addresses count as the IPv4 address they carry. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ingress/internal.h"

#define CLIENT_BUCKETS 4096 /* power of two */

struct client {
	uint8_t addr[16];
	unsigned sessions;
	struct client *next;
};

struct client_table {
	pthread_mutex_t lock;
	unsigned total;
	uint64_t refused_total, refused_per_ip; /* for the metrics */
	struct client *bucket[CLIENT_BUCKETS];
};

/* The address as 16 octets (IPv4 as v4-mapped), so both families share one key form. */
static void
client_key(const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

static unsigned
client_hash(const uint8_t key[16])
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h & (CLIENT_BUCKETS - 1);
}

struct client_table *
client_table_new(void)
{
	struct client_table *t = xcalloc(1, sizeof(*t));

	pthread_mutex_init(&t->lock, NULL);
	return t;
}

void
client_table_free(struct client_table *t)
{
	for (size_t i = 0; i < CLIENT_BUCKETS; i++) {
		struct client *c, *next;
		for (c = t->bucket[i]; c != NULL; c = next) {
			next = c->next;
			free(c);
		}
	}
	pthread_mutex_destroy(&t->lock);
	free(t);
}

int
client_table_enter(struct client_table *t, const struct sockaddr *sa, unsigned max_total,
                   unsigned max_per_ip, const char **why)
{
	uint8_t key[16];
	struct client *c;
	unsigned h;
	int rc = 0;

	client_key(sa, key);
	h = client_hash(key);
	pthread_mutex_lock(&t->lock);
	for (c = t->bucket[h]; c != NULL; c = c->next)
		if (memcmp(c->addr, key, 16) == 0)
			break;
	if (t->total >= max_total) {
		*why = "Too many connections, try again later";
		t->refused_total++;
		rc = -1;
	} else if (c != NULL && c->sessions >= max_per_ip) {
		*why = "Too many connections from your address, try again later";
		t->refused_per_ip++;
		rc = -1;
	} else {
		if (c == NULL) {
			c = xcalloc(1, sizeof(*c));
			memcpy(c->addr, key, 16);
			c->next = t->bucket[h];
			t->bucket[h] = c;
		}
		c->sessions++;
		t->total++;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void
client_table_leave(struct client_table *t, const struct sockaddr *sa)
{
	uint8_t key[16];
	struct client **cp, *c;

	client_key(sa, key);
	pthread_mutex_lock(&t->lock);
	for (cp = &t->bucket[client_hash(key)]; (c = *cp) != NULL; cp = &c->next) {
		if (memcmp(c->addr, key, 16) != 0)
			continue;
		t->total--;
		if (--c->sessions == 0) {
			*cp = c->next;
			free(c);
		}
		break;
	}
	pthread_mutex_unlock(&t->lock);
}

unsigned
client_table_total(struct client_table *t)
{
	unsigned n;

	pthread_mutex_lock(&t->lock);
	n = t->total;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void
client_table_refused(struct client_table *t, uint64_t *total, uint64_t *per_ip)
{
	pthread_mutex_lock(&t->lock);
	*total = t->refused_total;
	*per_ip = t->refused_per_ip;
	pthread_mutex_unlock(&t->lock);
}
