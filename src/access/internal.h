/* access/internal.h - private to access/: the keyed hash, and the striped table of small
 * per-key records that the limiter and the failure tracker share.
 *
 * Keys come from clients (addresses, user names they typed), so they are hashed with
 * SipHash under a random key per table: nobody can aim keys at one bucket. A record holds
 * the 64-bit hash instead of the key itself, which keeps every record at 40 octets whatever
 * the key's length; two keys share a record only on a 64-bit collision of a secret-keyed
 * hash, and for a limiter that means two clients share a budget, nothing worse.
 *
 * The table is cut into stripes, each with its own mutex, records, buckets and LRU list, so
 * event-loop threads rarely wait for one another. A stripe's records live in one array that
 * grows by doubling up to the stripe's share of max_keys and never shrinks; a full stripe
 * reuses its least recently used record.
 */
#ifndef DROVER_ACCESS_INTERNAL_H
#define DROVER_ACCESS_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "access/access.h"

/* The crypt string of a user, and the setting an unknown user's check crypts with. */
const char *access_user_hash(const struct access_user *);
const char *access_users_dummy(const struct access_users *);

#define KT_NIL UINT32_MAX

struct kt_entry {
	uint64_t id;           /* siphash24 of the key */
	uint32_t next;         /* bucket chain */
	uint32_t newer, older; /* LRU list, most recently used at the stripe's newest */
	uint16_t n[2];         /* small counters (the failure tracker's) */
	uint64_t t[2];         /* times (the limiter's TAT; the tracker's window and block) */
};

struct kt_stripe {
	pthread_mutex_t lock;
	struct kt_entry *e;
	uint32_t *bucket; /* nbucket heads, a power of two >= nalloc */
	uint32_t nbucket;
	uint32_t nalloc; /* records allocated */
	uint32_t nused;  /* records ever handed out (the rest of e[] is unused) */
	uint32_t cap;    /* the stripe's share of max_keys */
	uint32_t count;  /* records in use */
	uint32_t free;   /* chain (through next) of records given back */
	uint32_t newest, oldest;
};

struct keytab {
	uint64_t key[2];
	unsigned nstripes; /* a power of two */
	struct kt_stripe *stripes;
};

/* Is this record worth nothing at now (equivalent to no record)? */
typedef bool kt_idle_fn(const struct kt_entry *, uint64_t now, const void *ctx);

void keytab_init(struct keytab *, size_t max_keys);
void keytab_destroy(struct keytab *);
uint64_t keytab_id(const struct keytab *, const char *key);
/* The stripe of an id, locked. */
struct kt_stripe *keytab_lock(struct keytab *, uint64_t id);
void keytab_unlock(struct kt_stripe *);
/* With the stripe locked: the record of id, made most recently used, or NULL. */
struct kt_entry *kt_find(struct kt_stripe *, uint64_t id);
/* With the stripe locked: a new, zeroed record for id (not yet present), most recently used;
 * the least recently used record makes room if the stripe is full. */
struct kt_entry *kt_insert(struct kt_stripe *, uint64_t id);
void kt_remove(struct kt_stripe *, struct kt_entry *);
/* With the stripe locked: forgets up to max idle records from the least recently used end,
 * stopping at the first that is not idle. Keeps a quiet table from holding stale records
 * without a timer or a scan. */
void kt_expire(struct kt_stripe *, uint64_t now, kt_idle_fn *, const void *ctx, unsigned max);
/* Records in use in all stripes. */
size_t keytab_count(struct keytab *);
/* Locks or unlocks every stripe, in order (a change of parameters). */
void keytab_lock_all(struct keytab *);
void keytab_unlock_all(struct keytab *);

#endif
