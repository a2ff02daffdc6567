/* queue/report.h - private to the queue component: what `drover queue list` and the admin
 * API's summary and inspection share (summary.c) about a spooled message's place in the queue.
 */
#ifndef DROVER_QUEUE_REPORT_H
#define DROVER_QUEUE_REPORT_H

#include <stddef.h>

#include <jansson.h>

struct config;
struct envelope;

/* A JSON string, or null for NULL. */
json_t *report_string_or_null(const char *);
/* The stream the engine files a message under: its own if the configuration knows it (or it
 * is "default"), else "default". */
const char *report_stream(const struct config *, const struct envelope *);
/* The queue (lane) name for one domain of the message, as engine_queue_add makes it; *pool
 * the lane's pool (NULL: none). */
void report_lane(const struct config *, const struct envelope *, const char *domain, char *buf,
                 size_t size, const char **pool);
/* Where each recipient stands: address, state (pending, delivered, bounced, expired),
 * attempts, next_attempt, queue (pending ones), last_reply. */
json_t *report_rcpt_states(const struct config *, const struct envelope *);

#endif
