/* smtp/reply.c - server replies as a client reads them (RFC 5321 §4.2), their enhanced
 * status codes (RFC 3463, RFC 2034), and the EHLO keywords (RFC 5321 §4.1.1.1).
 *
 * Incremental: the client feeds each line as it arrives, so a reply of any length costs a
 * fixed struct; what does not fit is dropped, but the reply is parsed to its last line so
 * the conversation stays in step. */
#include <limits.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

static const struct smtp_error err_no_code = {451, "4.5.0", "Malformed reply: no reply code"};
static const struct smtp_error err_separator = {451, "4.5.0",
                                                "Malformed reply: bad separator after code"};
static const struct smtp_error err_mixed = {451, "4.5.0",
                                            "Malformed reply: lines with different codes"};
static const struct smtp_error err_after_end = {451, "4.5.0", "Reply line after the last one"};

#define SIZE_DIGITS_MAX 20 /* UINT64_MAX has 20 digits */

static int
fail(struct smtp_error *err, const struct smtp_error *what)
{
	if (err != NULL)
		*err = *what;
	return -1;
}

static bool
digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Length of a 1*3digit run at s[0..len), 0 if none or longer than 3. */
static size_t
digits3(const char *s, size_t len)
{
	size_t n = 0;

	while (n < len && digit((unsigned char)s[n]))
		n++;
	return n <= 3 ? n : 0;
}

/* Length of a status-code at the start of s[0..len) ("5.1.1"), 0 if there is none. It must
 * end the line or be followed by a space, so "5.1.1x" and "2.0.0.1" are text. */
static size_t
status_prefix(const char *s, size_t len)
{
	size_t n, sub, det;

	if (len < 5 || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return 0;
	n = 2;
	if ((sub = digits3(s + n, len - n)) == 0)
		return 0;
	n += sub;
	if (n >= len || s[n] != '.')
		return 0;
	n++;
	if ((det = digits3(s + n, len - n)) == 0)
		return 0;
	n += det;
	if (n < len && s[n] != ' ')
		return 0;
	return n;
}

bool
smtp_status_valid(const char *s, size_t len)
{
	return len > 0 && status_prefix(s, len) == len;
}

void
smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->status[0] = '\0';
	r->done = false;
	r->truncated = false;
	r->lines = 0;
	r->lines_kept = 0;
	r->text_len = 0;
	r->text[0] = '\0';
}

/* Appends one line's text, sanitized, within the bounds. */
static void
keep_text(struct smtp_reply *r, const char *s, size_t len)
{
	size_t room;

	if (r->lines_kept >= SMTP_REPLY_LINES_MAX) {
		r->truncated = true;
		return;
	}
	if (r->lines_kept > 0) {
		if (r->text_len >= SMTP_REPLY_TEXT_MAX) {
			r->truncated = true;
			return;
		}
		r->text[r->text_len++] = '\n';
	}
	room = SMTP_REPLY_TEXT_MAX - r->text_len;
	if (len > room) {
		len = room;
		r->truncated = true;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		r->text[r->text_len++] = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : (char)c;
	}
	r->text[r->text_len] = '\0';
	r->lines_kept++;
}

int
smtp_reply_feed(struct smtp_reply *r, const char *line, size_t len, struct smtp_error *err)
{
	const unsigned char *p = (const unsigned char *)line;
	bool last;
	int code;
	size_t st;

	if (r->done)
		return fail(err, &err_after_end);
	if (len < 3 || p[0] < '2' || p[0] > '5' || !digit(p[1]) || !digit(p[2]))
		return fail(err, &err_no_code);
	code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (len > 3 && p[3] != ' ' && p[3] != '-')
		return fail(err, &err_separator);
	if (r->lines > 0 && code != r->code)
		return fail(err, &err_mixed);
	last = len == 3 || p[3] == ' ';
	line += len > 3 ? 4 : 3;
	len -= len > 3 ? 4 : 3;

	if (r->lines == 0) {
		r->code = code;
		st = code / 100 != 3 ? status_prefix(line, len) : 0;
		if (st > 0) {
			memcpy(r->status, line, st);
			r->status[st] = '\0';
			r->status[0] = (char)('0' + code / 100);
		}
	} else {
		st = r->status[0] != '\0' ? status_prefix(line, len) : 0;
	}
	if (st > 0) {
		line += st;
		len -= st;
		if (len > 0) /* the space after the status */
			line++, len--;
	}
	if (r->lines < UINT_MAX)
		r->lines++;
	keep_text(r, line, len);
	r->done = last;
	return last ? 1 : 0;
}

const char *
smtp_reply_status(const struct smtp_reply *r)
{
	if (r->status[0] != '\0')
		return r->status;
	switch (r->code / 100) {
	case 2:
		return "2.0.0";
	case 4:
		return "4.0.0";
	case 5:
		return "5.0.0";
	default:
		return "";
	}
}

/* ---- EHLO ---- */

static bool
keyword_is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

static uint64_t
size_value(const char *s, size_t len)
{
	uint64_t v = 0;

	if (len == 0 || len > SIZE_DIGITS_MAX)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned d = (unsigned char)s[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return 0;
		v = v * 10 + d;
	}
	return v;
}

/* Appends AUTH's mechanism names, upper-cased, space-separated, whole names only. */
static void
auth_mechanisms(struct smtp_ehlo *e, const char *s, size_t len)
{
	size_t used = strlen(e->auth_mechanisms);

	for (size_t i = 0; i < len;) {
		size_t n = 0;

		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		while (i + n < len && s[i + n] != ' ' && s[i + n] != '\t')
			n++;
		if (n == 0)
			break;
		if (used + (used > 0) + n <= SMTP_EHLO_AUTH_MAX) {
			if (used > 0)
				e->auth_mechanisms[used++] = ' ';
			for (size_t k = 0; k < n; k++) {
				char c = s[i + k];

				e->auth_mechanisms[used++] =
				    c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c;
			}
			e->auth_mechanisms[used] = '\0';
		}
		i += n;
	}
}

static void
ehlo_line(struct smtp_ehlo *e, const char *s, size_t len)
{
	size_t kw = 0;
	const char *arg;
	size_t arg_len;

	while (kw < len && s[kw] != ' ' && s[kw] != '=')
		kw++;
	arg = s + kw;
	arg_len = len - kw;
	while (arg_len > 0 && (*arg == ' ' || *arg == '=')) /* "AUTH=LOGIN" (pre-RFC 4954) */
		arg++, arg_len--;

	if (keyword_is(s, kw, "PIPELINING")) {
		e->pipelining = true;
	} else if (keyword_is(s, kw, "SIZE")) {
		size_t n = 0;

		while (n < arg_len && arg[n] != ' ')
			n++;
		e->size = true;
		e->size_max = size_value(arg, n);
	} else if (keyword_is(s, kw, "8BITMIME")) {
		e->eightbitmime = true;
	} else if (keyword_is(s, kw, "SMTPUTF8")) {
		e->smtputf8 = true;
	} else if (keyword_is(s, kw, "ENHANCEDSTATUSCODES")) {
		e->enhancedstatuscodes = true;
	} else if (keyword_is(s, kw, "CHUNKING")) {
		e->chunking = true;
	} else if (keyword_is(s, kw, "BINARYMIME")) {
		e->binarymime = true;
	} else if (keyword_is(s, kw, "DSN")) {
		e->dsn = true;
	} else if (keyword_is(s, kw, "STARTTLS")) {
		e->starttls = true;
	} else if (keyword_is(s, kw, "AUTH")) {
		e->auth = true;
		auth_mechanisms(e, arg, arg_len);
	}
}

void
smtp_ehlo_parse(const struct smtp_reply *r, struct smtp_ehlo *e)
{
	const char *p = r->text, *end = r->text + r->text_len;

	memset(e, 0, sizeof(*e));
	/* The first line is the server's name and greeting, not a keyword. */
	p = memchr(p, '\n', (size_t)(end - p));
	while (p != NULL && p < end) {
		const char *eol;

		p++;
		eol = memchr(p, '\n', (size_t)(end - p));
		if (eol == NULL)
			eol = end;
		ehlo_line(e, p, (size_t)(eol - p));
		p = eol;
	}
}
