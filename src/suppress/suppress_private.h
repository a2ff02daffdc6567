/* suppress/suppress_private.h - what the suppression list's files share; nobody outside
 * src/suppress/ sees it.
 *
 * Threads. Lookups (check.c) use a read transaction kept per thread and per list (a
 * pthread key of the list), reset after each lookup and renewed at the next: a renewal
 * costs far less than a begin, and a reset transaction pins no snapshot. The environment
 * is opened MDB_NOTLS, so LMDB ties reader slots to transactions, not threads, and a thread
 * may hold a read transaction while it writes.
 * Synchronous writes open their own write transactions on the caller's thread; LMDB's
 * writer lock (shared between processes) serialises them with the writer thread
 * (writer.c), which applies the asynchronous requests in batches.
 */
#ifndef DROVER_SUPPRESS_PRIVATE_H
#define DROVER_SUPPRESS_PRIVATE_H

#include <pthread.h>

#include <lmdb.h>

#include "suppress/suppress.h"

/* Key: tenant, NUL, normalised address. */
#define SUPPRESS_KEY_MAX (SUPPRESS_TENANT_MAX + 1 + SUPPRESS_ADDRESS_MAX)

/* Value: u8 version | u8 reason | u16 source length | u64 added_us | u64 expires_us |
 * source octets. Little-endian. */
#define SUPPRESS_RECORD_VERSION 1
#define SUPPRESS_RECORD_HEAD    20
#define SUPPRESS_VALUE_MAX      (SUPPRESS_RECORD_HEAD + SUPPRESS_SOURCE_MAX)

/* Sweeps and foreach renew their transactions this often: no long-lived snapshot pins
 * pages the writers would reuse (the file would grow), and no write transaction grows
 * without bound. */
#define SUPPRESS_SCAN_TXN_MAX 10000

/* The largest import batch honoured (suppress_options.import_batch). */
#define SUPPRESS_IMPORT_BATCH_MAX 10000000

enum suppress_req_type { REQ_ADD, REQ_REMOVE, REQ_SWEEP };

struct suppress_req {
	struct suppress_req *next;
	enum suppress_req_type type;
	enum suppress_status status; /* preset to the refusal of an invalid request */
	bool refused;                /* answered with status, nothing to apply */
	uint8_t key[SUPPRESS_KEY_MAX];
	size_t klen;
	uint8_t val[SUPPRESS_VALUE_MAX];
	size_t vlen;
	uint64_t now_us; /* SWEEP */
	uint64_t n;      /* outcome: entries added / removed */
	struct mailbox *mbox;
	suppress_done_cb *cb;
	void *arg;
};

/* One thread's read transaction on one list (check.c). */
struct suppress_reader {
	struct suppress *list;
	MDB_txn *txn;
	struct suppress_reader *prev, *next;
};

struct suppress {
	MDB_env *env;
	MDB_dbi dbi;      /* "entries": key -> record */
	MDB_dbi dbi_meta; /* "meta": "local-case" -> "fold" | "exact" */
	bool readonly;
	bool local_exact;
	unsigned batch_max;
	size_t import_batch;
	uint64_t (*clock)(void *);
	void *clock_arg;
	char *dir;

	/* check.c: every thread's cached read transaction, so that close can end them. */
	pthread_key_t tls;
	pthread_mutex_t rlock; /* protects readers */
	struct suppress_reader *readers;

	/* writer.c */
	pthread_mutex_t lock; /* protects everything below */
	pthread_cond_t wake;
	struct suppress_req *head, **tail;
	bool stopping;
	bool writer_running;
	pthread_t writer;
	struct suppress_stats stats;
};

/* key.c */
/* The key of (tenant, normalised address): its length, or -1 if the tenant is invalid. */
int suppress_key(uint8_t key[SUPPRESS_KEY_MAX], const char *tenant, const char *norm);
bool suppress_tenant_valid(const char *tenant);
/* Encodes rec's reason, times and source (added_us already resolved). Length. */
size_t suppress_record_encode(uint8_t val[SUPPRESS_VALUE_MAX], enum suppress_reason,
                              uint64_t added_us, uint64_t expires_us, const char *source);
/* Decodes a stored key and record into *e: 0, or -1 if either is damaged. */
int suppress_record_decode(const MDB_val *key, const MDB_val *val, struct suppress_entry *e);
/* The expiry of a stored record without decoding the rest (0: never / damaged). */
uint64_t suppress_record_expiry(const MDB_val *val);
/* Key and value of a record to store: SUPPRESS_OK, or SUPPRESS_INVALID with err set. */
enum suppress_status suppress_prepare(struct suppress *, const struct suppress_record *,
                                      uint8_t key[SUPPRESS_KEY_MAX], size_t *klen,
                                      uint8_t val[SUPPRESS_VALUE_MAX], size_t *vlen, char *err,
                                      size_t errlen);
enum suppress_status suppress_status_of(int mdb_rc);

/* store.c */
uint64_t suppress_now(struct suppress *);
int suppress_txn_begin_read(struct suppress *, MDB_txn **);
void suppress_count_commit(struct suppress *, uint64_t added, uint64_t removed);

/* check.c */
/* The per-thread key: 0, or -1 if the process has no key left. */
int suppress_readers_init(struct suppress *);
/* Ends every thread's cached transaction (close). */
void suppress_readers_close(struct suppress *);

/* writer.c */
int suppress_writer_start(struct suppress *, char *err, size_t errlen);
void suppress_writer_stop(struct suppress *);

#endif
