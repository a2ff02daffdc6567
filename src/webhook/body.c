/* body.c - what a webhook request carries, and when a failed one is tried again.
 *
 * The body is the records as the event log wrote them, joined into a JSON array: no record
 * is parsed and printed again (the backlog's reader has checked each is one JSON object).
 * Each gets an "event_id", unique per webhook and the same when a batch is sent again, for
 * the receiver to recognize a record it has seen (delivery is at least once).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "core/core.h"
#include "webhook/internal.h"

bool
webhook_record_valid(const char *line, size_t len)
{
	json_error_t e;
	json_t *o;
	bool ok;

	/* The body splices "event_id" in before the closing brace: exactly one object, no
	 * space around it (as the event log writes them). */
	if (len < 2 || line[0] != '{' || line[len - 1] != '}')
		return false;
	o = json_loadb(line, len, 0, &e);
	ok = o != NULL && json_is_object(o);
	json_decref(o);
	return ok;
}

/* True if the object has no member: "{}" or "{ }". */
static bool
object_empty(const char *line, size_t len)
{
	for (size_t i = 1; i + 1 < len; i++)
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r' && line[i] != '\n')
			return false;
	return true;
}

char *
webhook_body(const struct backlog_batch *b, uint64_t epoch, size_t *len)
{
	/* ,"event_id":"<16 hex>-<20 digits>"} is at most 56 octets. */
	size_t cap = 2 + b->len + b->n * 64, o = 0;
	char *out = xmalloc(cap + 1);

	out[o++] = '[';
	for (size_t i = 0; i < b->n; i++) {
		const struct backlog_rec *r = &b->recs[i];
		const char *line = b->buf + r->off;
		int n;

		if (i > 0)
			out[o++] = ',';
		memcpy(out + o, line, r->len - 1); /* all but the closing brace */
		o += r->len - 1;
		n = snprintf(out + o, cap - o, "%s\"event_id\":\"%016llx-%llu\"}",
		             object_empty(line, r->len) ? "" : ",", (unsigned long long)epoch,
		             (unsigned long long)r->id);
		o += (size_t)n;
	}
	out[o++] = ']';
	out[o] = '\0';
	*len = o;
	return out;
}

uint64_t
webhook_backoff_us(unsigned failures, uint64_t max_us, uint32_t random)
{
	uint64_t d = USEC;

	for (unsigned i = 1; i < failures && d < max_us; i++)
		d *= 2;
	if (d > max_us)
		d = max_us;
	return d - d / 100 * (random % 21);
}
