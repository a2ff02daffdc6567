/* state.c - the backlog's state file and segment names: the only text of the backlog parsed
 * besides the records themselves, so parsed strictly (tests/fuzz/fuzz_webhook_backlog.c).
 */
#include <stdio.h>
#include <string.h>

#include "webhook/internal.h"

#define STATE_MAGIC "drover-webhook-backlog 1 "

/* Decimal (or 16 hex digits when hex) at *p up to stop; moves *p past it. */
static int
take_number(const char **p, const char *end, char stop, bool hex, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	size_t n = 0;

	for (; s < end && *s != stop; s++, n++) {
		unsigned d;

		if (*s >= '0' && *s <= '9')
			d = (unsigned)(*s - '0');
		else if (hex && *s >= 'a' && *s <= 'f')
			d = (unsigned)(*s - 'a' + 10);
		else
			return -1;
		if (hex) {
			if (n >= 16)
				return -1;
			v = v << 4 | d;
		} else {
			if (n >= 20 || v > (UINT64_MAX - d) / 10)
				return -1;
			v = v * 10 + d;
		}
	}
	/* One way to write each number: 16 hex digits, or decimal without leading zeros. */
	if (s == end || n == 0 || (hex && n != 16) || (!hex && n > 1 && **p == '0'))
		return -1;
	*out = v;
	*p = s + 1;
	return 0;
}

static int
take_field(const char **p, const char *end, const char *name, char stop, bool hex, uint64_t *out)
{
	size_t n = strlen(name);

	if ((size_t)(end - *p) < n || memcmp(*p, name, n) != 0)
		return -1;
	*p += n;
	return take_number(p, end, stop, hex, out);
}

int
backlog_state_parse(const char *text, size_t len, struct backlog_state *st, const char **why)
{
	const char *p = text, *end = text + len;
	struct backlog_state s;

	*why = "not a state line (\"" STATE_MAGIC "epoch=... ack=... segment=... offset=...\")";
	if (len < strlen(STATE_MAGIC) || memcmp(p, STATE_MAGIC, strlen(STATE_MAGIC)) != 0)
		return -1;
	p += strlen(STATE_MAGIC);
	if (take_field(&p, end, "epoch=", ' ', true, &s.epoch) < 0 ||
	    take_field(&p, end, "ack=", ' ', false, &s.ack_id) < 0 ||
	    take_field(&p, end, "segment=", ' ', false, &s.ack_seg) < 0 ||
	    take_field(&p, end, "offset=", '\n', false, &s.ack_off) < 0)
		return -1;
	if (p != end) {
		*why = "text after the state line";
		return -1;
	}
	/* Ids start at 1; the acknowledged record is in its segment, at its start only if it is
	 * the segment's first. */
	if (s.ack_id == 0 || s.ack_seg == 0 || s.ack_seg > s.ack_id ||
	    (s.ack_off == 0) != (s.ack_id == s.ack_seg)) {
		*why = "a position that cannot be (ack, segment and offset disagree)";
		return -1;
	}
	*st = s;
	return 0;
}

size_t
backlog_state_format(const struct backlog_state *st, char *buf, size_t size)
{
	int n = snprintf(buf, size, STATE_MAGIC "epoch=%016llx ack=%llu segment=%llu offset=%llu\n",
	                 (unsigned long long)st->epoch, (unsigned long long)st->ack_id,
	                 (unsigned long long)st->ack_seg, (unsigned long long)st->ack_off);

	return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

int
backlog_segment_id(const char *name, uint64_t *id)
{
	uint64_t v = 0;

	if (strlen(name) != 26 || strcmp(name + 20, ".jsonl") != 0)
		return -1;
	for (const char *p = name; p < name + 20; p++) {
		unsigned d = (unsigned)(*p - '0');

		if (*p < '0' || *p > '9' || v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	if (v == 0)
		return -1;
	*id = v;
	return 0;
}
