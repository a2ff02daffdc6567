/* data.c - the message-data scanner shared by DATA and BDAT.
 *
 * One pass over the octets as they arrive, whatever the read boundaries: DATA's dot
 * unstuffing and its terminator, and the checks that decide the reply at end of data (size,
 * line length, bare CR or LF, NUL, undeclared 8-bit). Only CRLF "." CRLF ends DATA: a "."
 * line after a bare LF is content, never an end, which is what closes the SMTP smuggling
 * hole (a relay and its next hop disagreeing on where a message ends).
 *
 * Content is appended to the caller's buffer in runs, not octet by octet; once the message
 * is known to be rejected, nothing more is kept (only counted), so a hostile client cannot
 * make us hold more than it could have sent legitimately.
 */
#include <event2/buffer.h>

#include "ingress/ingress.h"

enum scan_state {
	SCAN_BOL,    /* at the start of a line */
	SCAN_DOT,    /* DATA: "." at the start of a line, not yet known to be the end */
	SCAN_DOT_CR, /* DATA: ".\r" at the start of a line */
	SCAN_TEXT,   /* inside a line */
	SCAN_CR,     /* just after a CR inside a line */
	SCAN_DONE,
};

void
body_scanner_init(struct body_scanner *s, int dot_mode, int allow_8bit, unsigned line_max,
                  uint64_t size_max)
{
	*s = (struct body_scanner){
	    .state = SCAN_BOL,
	    .dot_mode = dot_mode,
	    .allow_8bit = allow_8bit,
	    .line_max = line_max,
	    .size_max = size_max,
	};
}

static void
violate(struct body_scanner *s, unsigned what, struct evbuffer *out)
{
	/* The first violation dooms the message: drop what we kept of it. */
	if (s->violations == 0)
		evbuffer_drain(out, evbuffer_get_length(out));
	s->violations |= what;
}

static void
emit(struct body_scanner *s, const char *p, size_t n, struct evbuffer *out)
{
	if (n == 0)
		return;
	s->size += n;
	if (s->size > s->size_max && !(s->violations & BODY_TOO_BIG))
		violate(s, BODY_TOO_BIG, out);
	if (s->violations == 0)
		evbuffer_add(out, p, n);
}

size_t
body_scanner_feed(struct body_scanner *s, const char *p, size_t n, struct evbuffer *out, int *done)
{
	size_t i, run = 0; /* p[run..i) is content not yet emitted */

	*done = s->state == SCAN_DONE;
	if (*done)
		return 0;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];

		s->line_len++;
		if (s->line_max != 0 && s->line_len > s->line_max &&
		    !(s->violations & BODY_LINE_TOO_LONG))
			violate(s, BODY_LINE_TOO_LONG, out);

		switch (s->state) {
		case SCAN_BOL:
			if (s->dot_mode && c == '.') {
				/* RFC 5321 §4.5.3.1.6: the line limit does not count the dot
				 * doubled for transparency. */
				s->line_len--;
				emit(s, p + run, i - run, out);
				run = i + 1; /* held back: stuffing, or the terminator */
				s->state = SCAN_DOT;
				continue;
			}
			break;
		case SCAN_DOT:
			if (c == '\r') {
				run = i + 1;
				s->state = SCAN_DOT_CR;
				continue;
			}
			/* A stuffed dot (RFC 5321 §4.5.2): it stays dropped, c is content. */
			break;
		case SCAN_DOT_CR:
			if (c == '\n') {
				s->state = SCAN_DONE;
				*done = 1;
				return i + 1;
			}
			/* ".\r" then something else: the dot was stuffing, the CR is bare. */
			emit(s, "\r", 1, out);
			violate(s, BODY_BARE_CR, out);
			run = i;
			break;
		case SCAN_CR:
			if (c == '\n') {
				s->state = SCAN_BOL;
				s->line_len = 0;
				continue;
			}
			violate(s, BODY_BARE_CR, out);
			break;
		default:
			break;
		}

		/* c is content inside a line. */
		s->state = SCAN_TEXT;
		if (c == '\r') {
			s->state = SCAN_CR;
		} else if (c == '\n') {
			/* Bare LF: content, and deliberately not a line start (see above). */
			violate(s, BODY_BARE_LF, out);
			s->line_len = 0;
		} else if (c == '\0') {
			violate(s, BODY_NUL, out);
		} else if (c >= 0x80) {
			s->eightbit = 1;
			if (!s->allow_8bit && !(s->violations & BODY_8BIT_UNDECLARED))
				violate(s, BODY_8BIT_UNDECLARED, out);
		}
	}
	/* Octets held back (a "." or ".\r" at a line start) are already outside the run. */
	emit(s, p + run, n - run, out);
	return n;
}
