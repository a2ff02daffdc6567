/* content.c - the message content on the wire: RFC 5321 §4.5.2 dot-stuffing (a line that
 * begins with "." gets another), CRLF line ends (a bare LF becomes CRLF: §2.3.8 forbids
 * sending it), a final CRLF if the content lacks one, and the "." line that ends DATA.
 * BDAT (RFC 3030) sends the octets as they are.
 *
 * The body is read in place through evbuffer_peek and encoded into the connection's output
 * a chunk at a time, so the only copy is the one the socket needs. */
#include <event2/buffer.h>

#include "delivery/internal.h"

#define PEEK_VECS 16

void
content_encoder_init(struct content_encoder *e, bool raw)
{
	*e = (struct content_encoder){.raw = raw, .bol = true};
}

/* Encodes p[0..n) into out. */
static void
encode_run(struct content_encoder *e, const unsigned char *p, size_t n, struct evbuffer *out)
{
	size_t run = 0; /* start of the octets not yet appended */

	if (e->raw) {
		evbuffer_add(out, p, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];

		if (c == '\n') {
			if (!e->cr) {
				evbuffer_add(out, p + run, i - run);
				evbuffer_add(out, "\r", 1);
				run = i;
			}
			e->bol = true;
			e->cr = false;
			continue;
		}
		if (c == '.' && e->bol) {
			evbuffer_add(out, p + run, i - run);
			evbuffer_add(out, ".", 1);
			run = i;
		}
		e->bol = false;
		e->cr = c == '\r';
	}
	evbuffer_add(out, p + run, n - run);
}

bool
content_encode(struct content_encoder *e, struct evbuffer *body, struct evbuffer *out, size_t max)
{
	size_t len = evbuffer_get_length(body);

	if (e->done)
		return true;
	while (max > 0 && e->offset < len) {
		struct evbuffer_iovec vec[PEEK_VECS];
		struct evbuffer_ptr ptr;
		size_t want = len - e->offset < max ? len - e->offset : max;
		int n;

		if (evbuffer_ptr_set(body, &ptr, e->offset, EVBUFFER_PTR_SET) < 0)
			break;
		n = evbuffer_peek(body, (ev_ssize_t)want, &ptr, vec, PEEK_VECS);
		if (n > PEEK_VECS)
			n = PEEK_VECS;
		for (int i = 0; i < n && want > 0; i++) {
			size_t take = vec[i].iov_len < want ? vec[i].iov_len : want;

			encode_run(e, vec[i].iov_base, take, out);
			e->offset += take;
			want -= take;
			max -= take;
		}
		if (n <= 0)
			break;
	}
	if (e->offset < len)
		return false;
	if (!e->raw) {
		if (!e->bol)
			evbuffer_add(out, e->cr ? "\n" : "\r\n", e->cr ? 1 : 2);
		evbuffer_add(out, ".\r\n", 3);
	}
	e->done = true;
	return true;
}
