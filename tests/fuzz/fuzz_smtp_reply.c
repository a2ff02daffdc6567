/* fuzz_smtp_reply - the input is what a server sends, split into lines at "\n" (a trailing
 * "\r" is dropped, as the client's line reader does). Lines are fed until a reply completes
 * or is refused, then the next reply starts. Whatever is accepted must honour the header's
 * promises: a code 200-599 agreed by every line, a well-formed status of the code's class,
 * bounded text that is a C string whose only control octets are "\n" separators and TAB,
 * and EHLO parsing of any reply. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(const struct smtp_reply *r)
{
	struct smtp_ehlo e;
	size_t newlines = 0;
	const char *st;

	if (r->code < 200 || r->code > 599)
		abort();
	if (r->status[0] != '\0' && (!smtp_status_valid(r->status, strlen(r->status)) ||
	                             r->status[0] - '0' != r->code / 100))
		abort();
	st = smtp_reply_status(r);
	if (r->code / 100 != 3 &&
	    (!smtp_status_valid(st, strlen(st)) || st[0] - '0' != r->code / 100))
		abort();
	if (r->text_len > SMTP_REPLY_TEXT_MAX || strlen(r->text) != r->text_len)
		abort();
	for (size_t i = 0; i < r->text_len; i++) {
		unsigned char c = (unsigned char)r->text[i];

		if (c == '\n')
			newlines++;
		else if ((c < 0x20 && c != '\t') || c == 0x7f)
			abort();
	}
	if (r->lines_kept > SMTP_REPLY_LINES_MAX || r->lines_kept > r->lines ||
	    (r->lines_kept > 0 && newlines != r->lines_kept - 1))
		abort();
	if (!r->truncated && r->lines_kept != r->lines)
		abort();

	smtp_ehlo_parse(r, &e);
	if (strlen(e.auth_mechanisms) > SMTP_EHLO_AUTH_MAX || (e.size_max > 0 && !e.size) ||
	    (e.auth_mechanisms[0] != '\0' && !e.auth))
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct smtp_reply r;
	struct smtp_error err;

	smtp_reply_init(&r);
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t len;
		int rc;

		if (eol == NULL)
			eol = end;
		len = (size_t)(eol - p);
		if (len > 0 && p[len - 1] == '\r')
			len--;
		rc = smtp_reply_feed(&r, p, len, &err);
		if (rc < 0) {
			if (err.code != 451 || strcmp(err.status, "4.5.0") != 0 || err.text == NULL)
				abort();
			smtp_reply_init(&r);
		} else if (rc == 1) {
			if (!r.done)
				abort();
			check_reply(&r);
			smtp_reply_init(&r);
		} else if (r.done) {
			abort();
		}
		p = eol + (eol < end);
	}
	return 0;
}
