/* spool/spool_private.h - what the spool's files share; nobody outside src/spool/ sees it.
 *
 * Threads: every LMDB write transaction runs on the writer thread (writer.c). Callers hand
 * it requests through a FIFO queue under sp->lock; it answers through each message's
 * mailbox (asynchronous requests) or by setting req->done under sp->lock and broadcasting
 * sp->synced (synchronous ones). spool_load() requests go to the reader thread (reader.c)
 * through a queue of their own under sp->rlock, and are answered on their mailboxes. Reads
 * (store.c) open their own read transactions on any thread (the env is opened MDB_NOTLS).
 */
#ifndef DROVER_SPOOL_PRIVATE_H
#define DROVER_SPOOL_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>

#include <lmdb.h>

#include "spool/spool.h"

/* Body keys: the 24-octet id, then the chunk index as a 4-octet big-endian number, so a
 * message's chunks sort together and in order. */
#define SPOOL_BODY_KEY_LEN (SPOOL_ID_LEN + 4)

/* Recovery commits its deletions every so many chunks, to keep transactions small. */
#define SPOOL_RECOVERY_TXN_MAX 8192

enum spool_req_type {
	REQ_CHUNK,  /* store one body chunk */
	REQ_COMMIT, /* store the envelope: the message exists from now on */
	REQ_ABORT,  /* delete the chunks of a message that will not be committed */
	REQ_UPDATE, /* rewrite an existing envelope (synchronous) */
	REQ_REMOVE, /* delete envelope and chunks (synchronous) */
	REQ_CHANGE, /* read-modify-write of recipients; removes the message when none is left
	             * pending (asynchronous, answered on req->mbox) */
	REQ_DELETE, /* delete envelope and chunks (asynchronous, answered on req->mbox) */
};

struct spool_message {
	struct spool *sp;
	struct mailbox *mbox;
	char id[SPOOL_ID_LEN + 1];
	atomic_uint refs;      /* the caller's handle + one per request in flight */
	atomic_bool cancelled; /* set by abort: no callback runs any more */
	/* Caller's thread only. */
	uint32_t nchunks; /* chunks handed over so far = the next chunk's index */
	uint64_t size;    /* body octets handed over so far */
	bool committed;
	/* Writer thread only: the failure of an earlier chunk, reported again at commit. */
	enum spool_status failed;
};

struct spool_req {
	struct spool_req *next;
	enum spool_req_type type;
	char id[SPOOL_ID_LEN];
	struct spool_message *msg; /* CHUNK, COMMIT: holds a reference */
	uint32_t index;            /* CHUNK */
	struct evbuffer *data;     /* CHUNK: the octets (NULL: nothing to store) */
	void *env;                 /* COMMIT, UPDATE: the encoded envelope */
	size_t envlen;
	struct mailbox *mbox;              /* CHANGE, DELETE: where the answer goes */
	struct spool_rcpt_change *changes; /* CHANGE: copied, last_reply strings too */
	size_t nchanges;
	spool_done_cb *cb;          /* CHUNK, COMMIT, DELETE: NULL = nobody to tell */
	spool_change_cb *change_cb; /* CHANGE: NULL = nobody to tell */
	/* CHANGE as a claim (spool_rcpt_claim) when claim_flags != 0: these flags for the
	 * recipients claim_idx[0..nchanges), the outcome in claimed[] (changes is NULL). */
	uint8_t claim_flags;
	size_t *claim_idx;
	bool *claimed;
	spool_claim_cb *claim_cb; /* NULL = nobody to tell */
	void *arg;
	/* Outcome. Set tentatively while applied in a transaction; final after it commits. */
	enum spool_status status;
	bool found;   /* UPDATE, REMOVE, DELETE: the message existed */
	bool removed; /* CHANGE: no recipient was left pending, the message was removed */
	bool done;    /* synchronous requests: the writer is finished with it */
	/* Monotonic: when spool_queue() took it (the commit latency's start). */
	uint64_t queued_us;
};

/* A spool_load() request: queued for the reader thread, then posted to mbox with its
 * outcome, whose ownership passes to cb. */
struct spool_load {
	struct spool_load *next;
	char id[SPOOL_ID_LEN]; /* all NUL for an invalid id: never a stored key */
	bool with_body;
	struct mailbox *mbox;
	spool_load_cb *cb;
	void *arg;
	enum spool_status status;
	struct envelope *env;
	struct evbuffer *body;
};

struct spool {
	MDB_env *env;
	MDB_dbi dbi_msg, dbi_body;
	bool readonly;
	unsigned batch_max;

	atomic_uint_fast64_t seq;  /* id sequence */
	uint64_t id_floor_us;      /* ids are never below the largest id found at open */
	atomic_uint_fast64_t nmsg; /* committed messages */

	pthread_mutex_t lock;  /* protects everything below */
	pthread_cond_t wake;   /* the writer: requests queued, or stopping */
	pthread_cond_t synced; /* synchronous callers: a request is done */
	struct spool_req *head, **tail;
	bool stopping;
	bool writer_running;
	pthread_t writer;
	bool full_logged; /* writer thread only: "spool full" was logged, no success since */
	struct spool_stats stats;
	/* For the metrics (spool.h): the writer thread observes, any thread reads. */
	struct histogram *commit_us;  /* a message's commit: queued to durable, microseconds */
	struct histogram *batch_size; /* requests per transaction committed */

	/* The reader thread's queue, under a lock of its own: queueing a load never waits
	 * for the writer's queue. */
	pthread_mutex_t rlock; /* protects rhead, rtail, rstopping */
	pthread_cond_t rwake;  /* the reader: loads queued, or stopping */
	struct spool_load *rhead, **rtail;
	bool rstopping;
	bool reader_running; /* the thread that opens and closes the spool only */
	pthread_t reader;
};

/* store.c */
void spool_histograms_new(struct spool *);
void spool_histograms_free(struct spool *);
void spool_body_key(uint8_t key[SPOOL_BODY_KEY_LEN], const char *id, uint32_t index);
int spool_txn_begin_read(struct spool *, MDB_txn **);
/* Deletes every body chunk of id in txn (counting them into *ndeleted if not NULL): 0 or
 * the LMDB error. */
int spool_delete_chunks(struct spool *, MDB_txn *, const char *id, uint64_t *ndeleted);
bool spool_id_valid(const char *id);
/* Decodes a "msg" record (the id comes from the key). -1 (logged) if it is damaged. */
int spool_decode_record(const MDB_val *key, const MDB_val *val, struct envelope *env);
/* The body of the message env describes, read in txn and checked against env->size (no
 * chunk missing, no octet more or less): a new evbuffer, or NULL (logged). */
struct evbuffer *spool_body_get(struct spool *, MDB_txn *, const struct envelope *env);

/* writer.c */
int spool_writer_start(struct spool *, char *err, size_t errlen);
void spool_writer_stop(struct spool *);
/* Queues requests (a list linked by ->next) in order. False if the spool takes no
 * requests (read-only, or closing): the caller still owns them. */
bool spool_queue(struct spool *, struct spool_req *first, struct spool_req *last);
/* Queues one synchronous request and waits for it; the request is the caller's again. */
void spool_queue_wait(struct spool *, struct spool_req *);
struct spool_req *spool_req_new(enum spool_req_type, const char *id);
void spool_req_free(struct spool_req *);

/* reader.c */
int spool_reader_start(struct spool *, char *err, size_t errlen);
/* Answers every load queued, then stops the thread. Refuses new loads from the start. */
void spool_reader_stop(struct spool *);

/* change.c */
/* Runs on req->mbox: calls a CHANGE or DELETE request's callback, then frees the request. */
void spool_change_deliver(void *req);

/* message.c */
void spool_message_unref(struct spool_message *);
/* Runs on the message's mailbox: calls the request's callback unless the message was
 * aborted, then frees the request. */
void spool_req_deliver(void *req);

#endif
