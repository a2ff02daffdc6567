/* webhook/internal.h - private to webhook/: the on-disk backlog (backlog.c, state.c), the
 * request body (body.c), the sender (sender.c).
 */
#ifndef DROVER_WEBHOOK_INTERNAL_H
#define DROVER_WEBHOOK_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

struct eventlog;
struct run_user;

/* ---- The backlog (backlog.c) ----
 *
 * A directory of append-only segment files, "<first id>.jsonl" (20 digits), each record one
 * line (a JSON object, as the event log wrote it), and a file "state" with the position the
 * receiver acknowledged. Records are numbered from 1 in the order appended; a record's id is
 * its segment's first id plus its line number there. Segments are deleted once every record
 * in them is acknowledged, or, oldest first, when the backlog would pass its bound. */

/* No record the event log writes comes near 1 MiB; a larger one is dropped at the tap, so
 * that a reader never needs more memory than this for a line. */
#define BACKLOG_RECORD_MAX (1024 * 1024)
/* Segments of 1/16 of the bound: what the bound drops at a time, within these sizes. */
#define BACKLOG_SEGMENT_MIN (4 * 1024)
#define BACKLOG_SEGMENT_MAX (64 * 1024 * 1024)

struct backlog;

/* A record to append: a JSON object on one line, without the "\n". */
struct backlog_item {
	const char *data;
	size_t len;
};

/* Records read for one request: copies, with their ids, and where the batch ends. */
struct backlog_rec {
	uint64_t id;
	size_t off, len; /* in buf */
};
struct backlog_batch {
	char *buf;
	size_t len, cap;
	struct backlog_rec *recs;
	size_t n, ncap;
	/* Acknowledging the batch moves the persisted read position here. */
	uint64_t end_id, end_seg, end_off;
	bool ends; /* end_* are set */
};

struct backlog_stats {
	uint64_t bytes;   /* segment files on disk */
	uint64_t records; /* appended and not yet acknowledged (nor dropped) */
	uint64_t unread;  /* of those, not yet read into a batch */
	uint64_t dropped; /* by the bound, too large, or not written (a write error) */
	uint64_t damaged; /* lines that were not records, skipped by the reader */
};

/* Opens (or creates, mode 0700) the directory dir and recovers what it holds: a partial last
 * line (a crash while appending) is cut off, a damaged state file means resending from the
 * oldest record; each is logged. owner (may be NULL): when running as root, the directory and
 * its files are given to that user. max_bytes is the bound on the files' total size
 * (>= BACKLOG_SEGMENT_MIN). NULL with the reason in err if the directory cannot be used. */
struct backlog *backlog_open(const char *dir, const struct run_user *owner, uint64_t max_bytes,
                             char *err, size_t errlen);
void backlog_close(struct backlog *);
/* Appends the records in order (one write per segment touched); returns how many were
 * appended: the others were dropped (larger than the bound allows, or a write error). May
 * drop the oldest segments to stay within the bound. Any thread; serialized with the rest. */
size_t backlog_append(struct backlog *, const struct backlog_item *, size_t n);
/* Reads records from the read position into batch (emptied first) until it holds max_records
 * or the next one would pass max_bytes (it always takes one), and moves the read position
 * past them. Lines that are not JSON objects are skipped and counted. Returns the number of
 * records read: 0 when there is nothing unread. One reader at a time. */
size_t backlog_read(struct backlog *, struct backlog_batch *, size_t max_records, size_t max_bytes);
/* The batch was acknowledged: the acknowledged position moves to its end (never back), the
 * segments it completes are deleted, and the position is written to the state file. 0, or -1
 * if the state file could not be written (logged: those records would be sent again after a
 * restart). */
int backlog_ack(struct backlog *, const struct backlog_batch *);
/* Starts reading again at the acknowledged position (a batch given up, as at a stop). */
void backlog_rewind(struct backlog *);
uint64_t backlog_unread(struct backlog *);
void backlog_stats(struct backlog *, struct backlog_stats *);
/* A random number chosen when the backlog was created: the ids' namespace. */
uint64_t backlog_epoch(const struct backlog *);
void backlog_batch_free(struct backlog_batch *);

/* ---- The state file (state.c) ---- */

/* "drover-webhook-backlog 1 epoch=<16 hex> ack=<id> segment=<first id> offset=<octets>\n":
 * the next record not acknowledged, the segment it is in and where in it. */
struct backlog_state {
	uint64_t epoch;
	uint64_t ack_id, ack_seg, ack_off;
};
#define BACKLOG_STATE_MAX 160
/* 0, or -1 with why (a phrase) if text is not such a line. */
int backlog_state_parse(const char *text, size_t len, struct backlog_state *, const char **why);
/* The line into buf (BACKLOG_STATE_MAX); its length. */
size_t backlog_state_format(const struct backlog_state *, char *buf, size_t size);
/* A segment's file name "<20 digits>.jsonl" -> its first id. 0, or -1 for another name. */
int backlog_segment_id(const char *name, uint64_t *id);

/* ---- The request (body.c) ---- */

/* True if line (without "\n") is one JSON object: what the tap stored, undamaged. */
bool webhook_record_valid(const char *line, size_t len);
/* The body of a request: a JSON array of the batch's records, in order, each given an
 * "event_id" ("<epoch as 16 hex>-<id>") as its last member. malloc'd; length in *len. */
char *webhook_body(const struct backlog_batch *, uint64_t epoch, size_t *len);
/* The wait before the next attempt after failures failed ones in a row (>= 1): 1 s doubling
 * up to max_us, then up to 20% shorter by random (any 32-bit value), so that several
 * webhooks failing together do not retry in step. */
uint64_t webhook_backoff_us(unsigned failures, uint64_t max_us, uint32_t random);

/* ---- One webhook (webhook.c, sender.c) ---- */

/* A request's body is at most this large (or one record, if larger). */
#define WEBHOOK_BODY_MAX (4 * 1024 * 1024)

struct webhook {
	char *name, *url;
	char **events; /* none: every type but Webhook* */
	size_t nevents;
	unsigned batch_max;
	uint64_t batch_wait_us, timeout_ms, retry_max_us;
	struct curl_slist *headers;
	char *ca_blob; /* the tls_ca_file, read at start (the file may be root's) */
	size_t ca_len;
	struct backlog *backlog;
	struct eventlog *log;

	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* records appended, or stopping */
	bool stopping;
	uint64_t pending_since_us; /* when the sender saw unread records (a partial batch) */
	CURLM *multi;              /* woken to abort a request at a stop */

	atomic_uint_fast64_t records_sent, batches_sent, batches_failed;
	atomic_bool failing;
};

/* The sender's thread (sender.c): waits for a batch, POSTs it, retries, until stopping. */
void *webhook_sender(void *arg);
/* Wakes the sender: records were appended. */
void webhook_notify(struct webhook *);

#endif
