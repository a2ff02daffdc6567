/* fuzz_control_inject - the input is an injection request body (JSON). Whatever the parser
 * accepts is grouped and built as the server would build it, and every message must keep the
 * promises docs/injection.md makes: CRLF line ends only, a header section whose every line is
 * a field or a continuation (no value can inject a field), and for built content lines within
 * 998 octets and nothing but 7-bit octets when no address is non-ASCII. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "control/inject.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Messages built per input: enough to reach per-recipient values, bounded for speed. */
#define FUZZ_MESSAGES_MAX 4

static void
check_message(const struct inject_request *r, const struct inject_buf *m, bool utf8)
{
	size_t line = 0, start = 0;
	bool in_head = true;

	for (size_t i = 0; i < m->len; i++) {
		unsigned char c = (unsigned char)m->p[i];

		if (c == '\n' && (i == 0 || m->p[i - 1] != '\r'))
			abort(); /* a bare LF */
		if (c == '\r' && (i + 1 >= m->len || m->p[i + 1] != '\n'))
			abort(); /* a bare CR */
		if (r->content.raw == NULL && c >= 0x80 && !utf8)
			abort();
		if (c != '\n') {
			line++;
			continue;
		}
		if (r->content.raw == NULL && line - 1 > INJECT_LINE_MAX)
			abort();
		if (in_head && r->content.raw == NULL) {
			const char *p = m->p + start;
			size_t n = i - 1 - start, k = 0;

			if (n == 0) {
				in_head = false;
			} else if (p[0] != ' ' && p[0] != '\t') {
				while (k < n && p[k] > 32 && p[k] < 127 && p[k] != ':')
					k++;
				if (k == 0 || k >= n || p[k] != ':')
					abort(); /* neither a field nor a continuation */
			}
		}
		line = 0;
		start = i + 1;
	}
	if (m->len < 2 || memcmp(m->p + m->len - 2, "\r\n", 2) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct inject_build_opts o = {
	    .hostname = "mta.example.com", .now_us = 1700000000000000ULL, .unique = "f.1"};
	struct inject_request r;
	struct inject_buf key = {0}, out = {0};
	char err[512];
	json_t *body = json_loadb((const char *)data, size, 0, NULL), *names;
	size_t built = 0;

	if (body == NULL)
		return 0;
	if (inject_request_parse(body, &r, err, sizeof(err)) < 0) {
		json_decref(body);
		if (strlen(err) == 0)
			abort(); /* a 400 says why */
		return 0;
	}
	json_decref(body);
	names = inject_names(&r);
	for (size_t i = 0; i < r.nrcpt && built < FUZZ_MESSAGES_MAX; i++) {
		bool utf8 = r.rcpt[i].utf8 || r.sender_utf8;

		if (r.rcpt[i].code != 0)
			continue;
		inject_group_key(&r, names, i, &key);
		if (r.content.from.email != NULL)
			for (const char *p = r.content.from.email; *p; p++)
				utf8 |= (unsigned char)*p >= 0x80;
		if (r.content.reply_to.email != NULL)
			for (const char *p = r.content.reply_to.email; *p; p++)
				utf8 |= (unsigned char)*p >= 0x80;
		/* Every check of the request was made at parse: building cannot fail. */
		if (inject_build(&r, &i, 1, &o, &out, err, sizeof(err)) < 0)
			abort();
		check_message(&r, &out, utf8);
		built++;
	}
	inject_buf_free(&key);
	inject_buf_free(&out);
	json_decref(names);
	inject_request_free(&r);
	return 0;
}
