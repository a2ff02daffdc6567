/* Fuzz the DATA/BDAT scanner: any octets, any read boundaries. Checks, beyond "no crash",
 * the properties the session relies on: never more consumed than given, content only when
 * no violation, and DATA content never longer than what was consumed. */
#include <stdint.h>
#include <stdlib.h>

#include <event2/buffer.h>

#include "ingress/ingress.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct body_scanner s;
	struct evbuffer *out;
	size_t off = 0, consumed = 0;
	int done = 0;

	if (size < 2)
		return 0;
	/* First octet: mode and flags; second: the read size. */
	out = evbuffer_new();
	body_scanner_init(&s, data[0] & 1, (data[0] >> 1) & 1, (data[0] & 4) ? 80 : 1000, 4096);
	size_t step = (size_t)data[1] + 1;
	data += 2;
	size -= 2;
	while (off < size && !done) {
		size_t n = size - off < step ? size - off : step;
		size_t used = body_scanner_feed(&s, (const char *)data + off, n, out, &done);
		if (used > n)
			abort();
		off += used;
		consumed += used;
	}
	if (s.violations != 0 && evbuffer_get_length(out) != 0)
		abort();
	if (evbuffer_get_length(out) > consumed + 1)
		abort();
	evbuffer_free(out);
	return 0;
}
