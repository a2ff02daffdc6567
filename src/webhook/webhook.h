/* webhook/webhook.h - event records POSTed to HTTP endpoints (docs/webhooks.md).
 *
 * Each webhook "name" { } section follows the event log through a tap: the records it wants
 * are appended, by the event log's writer thread, to a backlog of its own on disk
 * (<spool directory>/webhooks/<name>/), and a thread of its own POSTs them in batches, a
 * JSON array per request, in the order they were written. A 2xx answer acknowledges a
 * batch; anything else is retried with backoff, the same batch, until it is acknowledged.
 * The acknowledged position is kept on disk, so a restart or a crash resends from the
 * first record not acknowledged: delivery is at least once, and every record carries an
 * "event_id" to recognize one seen before. A receiver that is down costs disk, bounded by
 * backlog_max (past it the oldest records are dropped, counted and logged), never memory,
 * and never delays mail, the event log, or another webhook.
 *
 * Thread-safety: the functions are called from the main thread, in the order
 * open, run, stop, close; webhooks_stats() from any thread between open and close.
 */
#ifndef DROVER_WEBHOOK_H
#define DROVER_WEBHOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct eventlog;
struct run_user;

struct webhooks;

/* Opens the backlogs (creating the directories; owned by owner when not NULL and running as
 * root, so that they stay usable once privileges are dropped), reads the CA files, and taps
 * the event log: records are kept from now on. NULL without error (err "") when the
 * configuration has no webhook; NULL with the reason in err when one cannot be set up. cfg
 * is not kept. Nothing is sent until webhooks_run(). */
struct webhooks *webhooks_open(const struct config *, struct eventlog *,
                               const struct run_user *owner, char *err, size_t errlen);
/* Starts the senders (one thread per webhook). NULL is accepted. */
void webhooks_run(struct webhooks *);
/* Stops the senders: a request in flight is aborted (its batch was not acknowledged, so it is
 * sent again next time). Records keep going to the backlogs: call it before eventlog_close()
 * (the senders write WebhookFailing / WebhookRecovered records), then webhooks_close(). */
void webhooks_stop(struct webhooks *);
/* After eventlog_close(), which hands the tap its last records. NULL is accepted. */
void webhooks_close(struct webhooks *);

struct webhook_stats {
	const char *name;         /* the section title; valid until webhooks_close() */
	uint64_t records_sent;    /* acknowledged by the receiver */
	uint64_t batches_sent;    /* requests answered 2xx */
	uint64_t batches_failed;  /* requests that failed (each one retried) */
	uint64_t records_dropped; /* by backlog_max, or too large, or not written (disk) */
	uint64_t records_damaged; /* unreadable lines of the backlog, skipped */
	uint64_t backlog_bytes;   /* the backlog's files on disk */
	uint64_t backlog_records; /* written and not yet acknowledged */
	bool failing;             /* the last request failed */
};

/* How many webhooks there are (0 for NULL), and the counters of the i-th one. */
size_t webhooks_count(const struct webhooks *);
void webhooks_stats(struct webhooks *, size_t i, struct webhook_stats *);

#endif
