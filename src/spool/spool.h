/* spool/spool.h - the durable message store.
 *
 * A message is durable once spool_message_commit() has called back with SPOOL_OK: its
 * envelope and body have been written in an LMDB write transaction whose commit fsynced
 * (group commit: one transaction, one fsync, serves every request queued meanwhile). It
 * survives kill -9 and power loss. Nothing else is ever acknowledged to a client.
 *
 * Large bodies are streamed: the caller hands over the body in chunks as it arrives
 * (spool_message_write), so a message in transit costs at most a chunk or two of memory.
 * Chunks of a message that is never committed are removed by spool_message_abort(), or at
 * the next spool_open() after a crash.
 *
 * Thread-safety: one struct spool serves all threads. Requests may be made from any event
 * loop; each request's callback runs on the struct mailbox given with it, in request order.
 * A spool opened SPOOL_READONLY (the CLI, while the daemon runs) only reads.
 */
#ifndef DROVER_SPOOL_H
#define DROVER_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mailbox;
struct evbuffer;

/* Queue ids: 24 lower-case hex digits, time-ordered (microseconds, then a sequence). */
#define SPOOL_ID_LEN 24
/* Bodies are stored in chunks of at most this size (the streaming unit). */
#define SPOOL_CHUNK_SIZE (256 * 1024)

enum spool_status {
	SPOOL_OK = 0,
	SPOOL_FULL,     /* map or disk full: answer 452 4.3.1, nothing accepted is lost */
	SPOOL_IO_ERROR, /* any other failure of the store: 451 4.3.0 */
};

/* ---- The envelope: everything about a message but its body ---- */

enum rcpt_state { RCPT_PENDING = 0, RCPT_DELIVERED, RCPT_BOUNCED, RCPT_EXPIRED };

/* envelope_rcpt.flags */
#define RCPT_DELAY_NOTIFIED 0x01 /* a delay DSN was sent for it: never a second one */

struct envelope_rcpt {
	char *address;  /* "local@domain" */
	char *orcpt;    /* RFC 3461 ORCPT as received ("rfc822;a@b"), NULL if none */
	uint8_t notify; /* SMTP_NOTIFY_* bits (smtp.h), 0 = not given */
	uint8_t state;  /* enum rcpt_state */
	uint8_t flags;  /* RCPT_* flags below */
	uint16_t attempts;
	uint64_t next_attempt_us; /* wall clock; 0 = as soon as possible */
	char *last_reply;         /* last remote reply for this recipient, NULL if none */
};

struct envelope {
	char id[SPOOL_ID_LEN + 1];
	char *sender;         /* reverse-path mailbox, "" for the null sender */
	uint8_t dsn_ret;      /* enum smtp_dsn_ret */
	char *envid;          /* RFC 3461 ENVID as received (xtext), NULL if none */
	uint8_t body_type;    /* enum smtp_body */
	bool smtputf8;        /* RFC 6531: the transaction used SMTPUTF8 */
	uint64_t received_us; /* wall clock at the 250 */
	char *client_ip;      /* "192.0.2.1" / "2001:db8::1" */
	char *helo;           /* EHLO/HELO argument */
	char *listener;       /* name of the listener that received it */
	char *protocol;       /* "ESMTP", "SMTP", "HTTP" ... (Received: "with") */
	char *auth_user;      /* authenticated user, NULL if none */
	/* Header fields computed at the end of data (DKIM-Signature, Authentication-Results),
	 * CRLF-terminated, that go before the stored octets: the body is streamed into the
	 * spool before they exist. NULL if none. The spool's readers put them in front. */
	char *headers;
	/* Classification at reception (docs/routing.md): the message's stream, tenant and
	 * campaign, and the pool a rule or a trusted X-Drover-Pool chose. NULL: none (the
	 * default stream; the pool the stream, tenant or destination gives). */
	char *stream;
	char *tenant;
	char *campaign;
	char *pool;
	uint64_t size; /* message octets as delivered: headers and the stored octets (Received:
	                  header included) */
	size_t nrcpt;
	struct envelope_rcpt *rcpt;
};

/* Free every string and the recipient array (not the struct itself), and zero it. */
void envelope_clear(struct envelope *);
/* Deep copy into dst (whose old contents are not freed); envelope_clear(dst) frees it. */
void envelope_copy(struct envelope *dst, const struct envelope *src);

/* The on-disk form: versioned, length-prefixed, little-endian (docs/spool.md). encode
 * returns a malloc'd buffer; decode validates everything (it reads disk that may be
 * damaged, and is fuzzed) and returns 0, or -1 leaving *env cleared. decode treats *env as
 * output only: it does not free what was in it. */
void *envelope_encode(const struct envelope *, size_t *len);
int envelope_decode(const void *buf, size_t len, struct envelope *env);

/* ---- Opening ---- */

#define SPOOL_READONLY 0x1

struct spool_options {
	uint64_t max_size;  /* LMDB map size: the spool's capacity in bytes */
	unsigned batch_max; /* most requests in one group commit */
};

/* Opens (creating if needed, mode 0700) the spool in dir. Read-write: both options must be
 * > 0; recovers (removes chunks of uncommitted messages) and starts the writer thread.
 * SPOOL_READONLY: options may be NULL; the spool must exist; no recovery, no writer, every
 * write request fails (SPOOL_IO_ERROR / -1). One process opens a given spool once (LMDB);
 * other processes may open it read-only meanwhile. */
struct spool *spool_open(const char *dir, const struct spool_options *, int flags, char *err,
                         size_t errlen);
/* Stops the reader and the writer after finishing every queued request, loads included
 * (their callbacks are posted: the mailboxes must still exist, and their loops must run
 * again to deliver them). */
void spool_close(struct spool *);

/* Number of committed messages (recovered + committed since open - removed). */
uint64_t spool_message_count(struct spool *);

/* Counters since open, for metrics. commits / messages is the group-commit ratio. */
struct spool_stats {
	uint64_t commits;       /* LMDB write transactions committed (= fsyncs) */
	uint64_t requests;      /* writer requests applied (chunks, commits, aborts, updates,
	                         * removes, recipient changes, deletes) */
	uint64_t messages;      /* messages committed */
	uint64_t chunks;        /* body chunks stored */
	uint64_t bytes;         /* body octets stored */
	uint64_t largest_batch; /* most requests in one transaction */
	uint64_t full;          /* requests answered SPOOL_FULL */
	uint64_t io_errors;     /* requests answered SPOOL_IO_ERROR (loads included) */
	uint64_t loads;         /* spool_load() requests answered, SPOOL_OK or not */
	uint64_t changes;       /* spool_rcpt_change() requests applied */
	uint64_t removals;      /* messages removed (spool_remove, spool_delete, all rcpts done) */
};
void spool_stats(struct spool *, struct spool_stats *);
/* Group commit as histograms (core.h), for the metrics; valid while the spool is open, read
 * from any thread. Latency: each message's commit, in microseconds from the moment it was
 * queued for the writer to the end of the fsync'd transaction that stored it (what the SMTP
 * client waits for, less the reply). Batch sizes: the requests of each transaction
 * committed. */
struct histogram;
const struct histogram *spool_commit_latency(struct spool *);
const struct histogram *spool_batch_sizes(struct spool *);

/* ---- Receiving a message (asynchronous, from an event loop) ----
 *
 * Every call for a given message must be made on the thread running the event loop of
 * its mailbox, where its callbacks run too. Each callback runs at most once, in request
 * order; a callback may call spool_message_abort(), write or commit. */

struct spool_message;

typedef void spool_done_cb(void *arg, enum spool_status);

/* Starts a message: assigns its queue id (available at once, for the Received: header). */
struct spool_message *spool_message_begin(struct spool *, struct mailbox *);
const char *spool_message_id(const struct spool_message *);

/* Hands over a chunk of body (at most SPOOL_CHUNK_SIZE octets are moved out of buf, which
 * the caller keeps). cb reports when the chunk is stored; the caller should stop reading
 * from its client until then (backpressure). A failure is reported again at commit.
 * cb may be NULL. An empty buf stores nothing (cb still reports, in order). */
void spool_message_write(struct spool_message *, struct evbuffer *buf, spool_done_cb *cb,
                         void *arg);

/* Makes the message durable: stores the rest of the body (all of buf, which is drained) and
 * the envelope (env->id and env->size are set by the spool), fsynced, then calls cb. The
 * struct spool_message is freed after cb returns. env is copied: the caller keeps it. */
void spool_message_commit(struct spool_message *, struct envelope *env, struct evbuffer *buf,
                          spool_done_cb *cb, void *arg);

/* Drops a message that will not be committed (rejected, or the client went away); frees
 * it. Any chunks already written are removed. From this call on, no callback of this
 * message runs (not even one already on its way), so the caller may free its own state
 * at once.
 * Called after spool_message_commit() but before its callback ran (the client went away
 * while waiting for its reply), it only detaches: the commit goes ahead and the message
 * is stored unless storing fails, but cb is not called. After the commit's callback ran,
 * the message no longer exists: do not call abort then. */
void spool_message_abort(struct spool_message *);

/* ---- Reading (any thread; a read-only spool too) ---- */

/* Calls fn for every committed message in id (= arrival) order; stop early by returning
 * non-zero, which spool_foreach returns. -1 on a read error. The envelope is freed after fn
 * returns (copy with envelope_copy). A damaged record is logged and skipped. The snapshot
 * is renewed every 1024 messages, so a long listing sees later changes in part. fn may
 * call spool_remove() or spool_envelope_update() (from a thread that may block). */
typedef int spool_foreach_fn(void *arg, const struct envelope *);
int spool_foreach(struct spool *, spool_foreach_fn *fn, void *arg);

/* Reads one message's envelope (0, or -1 if there is none or it cannot be read); free it
 * with envelope_clear(). */
int spool_envelope_get(struct spool *, const char *id, struct envelope *env);

/* Appends the whole body of a message to out. 0, or -1 (no such message, or a chunk is
 * missing or the size disagrees with the envelope; out is then unchanged). Blocking: not
 * for an event loop. */
int spool_body_read(struct spool *, const char *id, struct evbuffer *out);

/* ---- Changing (synchronous, blocking: for worker threads and tests, not event loops) ---- */

/* Rewrites a committed message's envelope (recipient states, attempts), durably: env as
 * read by spool_envelope_get() or spool_foreach(), changed (keep id and size). 0, or -1 if
 * there is no such message (it is not created) or the store failed. */
int spool_envelope_update(struct spool *, const struct envelope *env);
/* Removes a message, envelope and body, durably. 0, or -1 if there was no such message or
 * the store failed. */
int spool_remove(struct spool *, const char *id);

/* ---- Asynchronous reads and changes, for the delivery loop ----
 *
 * Requests may come from any event loop; each callback runs on the given mailbox. They never
 * block the caller: loads run on the spool's reader thread, changes go through the writer
 * (group-committed with everything else). Loads are answered in request order, and so are
 * changes and deletes, but a load and a change are not ordered with each other: a load
 * made after a change's callback ran sees the change. An invalid id is answered
 * SPOOL_IO_ERROR, in order. A read-only spool loads; its changes and deletes fail. */

/* Loads a message: cb gets ownership of *env (envelope_clear() then free()) and, when
 * with_body, of body (evbuffer_free()); both NULL unless status is SPOOL_OK. A message that
 * is not there is SPOOL_IO_ERROR, and so is a body that does not match its envelope's size
 * (checked as by spool_body_read). */
typedef void spool_load_cb(void *arg, enum spool_status, struct envelope *env,
                           struct evbuffer *body);
void spool_load(struct spool *, const char *id, bool with_body, struct mailbox *, spool_load_cb *cb,
                void *arg);

/* A change to one recipient of a stored message (envelope_rcpt.state, attempts,
 * next_attempt_us, last_reply). */
struct spool_rcpt_change {
	size_t index; /* into envelope.rcpt */
	uint8_t state;
	uint16_t attempts;
	uint64_t next_attempt_us;
	const char *last_reply; /* copied; NULL keeps the old one */
};

/* Applies changes to recipients of a stored message as a read-modify-write inside one write
 * transaction on the writer thread, so deliveries of different recipients of one message,
 * finishing at the same time, never lose each other's changes. When no recipient is left
 * RCPT_PENDING, the message (envelope and body) is removed in the same transaction, and
 * the callback's removed says so. The changes are copied before the call returns. All or nothing:
 * if the message is not there, or a change's index is out of range or its state unknown, the answer
 * is SPOOL_IO_ERROR and nothing is written. Changes are applied in array order. n == 0 writes
 * nothing, but removes a message with no recipient pending. cb may be NULL (then mbox may be too).
 * removed is false unless status is SPOOL_OK. */
typedef void spool_change_cb(void *arg, enum spool_status, bool removed);
void spool_rcpt_change(struct spool *, const char *id, const struct spool_rcpt_change *, size_t n,
                       struct mailbox *, spool_change_cb *cb, void *arg);

/* Claims envelope_rcpt.flags (RCPT_DELAY_NOTIFIED) for recipients of a stored message, as one
 * read-modify-write on the writer like spool_rcpt_change (and ordered with changes): each
 * recipient idx[i] that is still RCPT_PENDING and has none of the flags yet gets them, and
 * claimed[i] says so (the array belongs to the spool: valid during the callback). Of two
 * claims racing for one recipient exactly one gets it, in one process or across restarts:
 * this is how something that must happen at most once per recipient (a delay notice) is
 * decided. State, attempts, next attempt and reply are left as they are; the message is
 * never removed. The indexes are copied before the call returns. All or nothing: a message
 * that is not there, an index out of range or flags 0 is SPOOL_IO_ERROR with nothing claimed
 * (claimed NULL). cb may be NULL (then mbox may be too). */
typedef void spool_claim_cb(void *arg, enum spool_status, const bool *claimed, size_t n);
void spool_rcpt_claim(struct spool *, const char *id, uint8_t flags, const size_t *idx, size_t n,
                      struct mailbox *, spool_claim_cb *cb, void *arg);

/* Removes a message (an operator's delete, a message all of whose recipients are done),
 * durably. A message that is not there is SPOOL_IO_ERROR. cb may be NULL (then mbox may
 * be too). */
void spool_delete(struct spool *, const char *id, struct mailbox *, spool_done_cb *cb, void *arg);

#endif
