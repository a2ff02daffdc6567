/* text.c - cleaning, folding and encoding the text a DSN carries. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "bounce/internal.h"
#include "core/core.h"
#include "smtp/smtp.h"

void
put(struct evbuffer *out, const void *p, size_t n)
{
	if (n > 0 && evbuffer_add(out, p, n) != 0)
		fatal("evbuffer_add: out of memory");
}

void
put_str(struct evbuffer *out, const char *s)
{
	put(out, s, strlen(s));
}

void
putf(struct evbuffer *out, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	if (r < 0)
		fatal("evbuffer_add_vprintf: out of memory");
}

/* The code point of the valid sequence at p of length len. */
static unsigned long
utf8_decode(const unsigned char *p, size_t len)
{
	static const unsigned char lead_mask[] = {0, 0x7f, 0x1f, 0x0f, 0x07};
	unsigned long cp = p[0] & lead_mask[len];

	for (size_t i = 1; i < len; i++)
		cp = cp << 6 | (p[i] & 0x3f);
	return cp;
}

char *
text_clean(const char *s, size_t len, bool utf8, size_t max)
{
	const unsigned char *p = (const unsigned char *)s;
	/* Worst case every octet is kept, plus "..." and the NUL. */
	char *out = xmalloc((len < max ? len : max) + 4);
	size_t n = 0;
	bool space = true; /* the last octet written was a space (or nothing yet) */
	bool cut = false;

	for (size_t i = 0; i < len;) {
		size_t seq = 1;

		if (p[i] < 0x20 || p[i] == 0x7f || p[i] == ' ') {
			if (!space && n < max) {
				out[n++] = ' ';
				space = true;
			}
			i++;
			continue;
		}
		if (p[i] >= 0x80) {
			seq = utf8 ? smtp_utf8_seq_len(p + i, len - i) : 0;
			if (seq == 0) {
				if (n + 1 > max) {
					cut = true;
					break;
				}
				out[n++] = '?';
				space = false;
				i++;
				continue;
			}
		}
		if (n + seq > max) {
			cut = true;
			break;
		}
		memcpy(out + n, p + i, seq);
		n += seq;
		i += seq;
		space = false;
	}
	while (n > 0 && out[n - 1] == ' ')
		n--;
	if (cut) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

bool
text_is_ascii(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] >= 0x80)
			return false;
	return true;
}

bool
text_is_printable(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

bool
text_is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] > 0x7e || s[i] == ';')
			return false;
	return true;
}

/* RFC 6533 §3 QCHAR: printable ASCII but space, "+", "=" and "\". */
static bool
is_qchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e && c != '+' && c != '=' && c != '\\';
}

char *
utf8_addr_encode(const char *s, size_t len, bool unitext)
{
	const unsigned char *p = (const unsigned char *)s;
	/* "\x{10FFFF}" is 10 octets for a 4-octet character: at most 10 per input octet. */
	char *out = xmalloc(len * 10 + 1);
	size_t n = 0;

	for (size_t i = 0; i < len;) {
		size_t seq = smtp_utf8_seq_len(p + i, len - i);

		if (seq == 0)
			seq =
			    1; /* not UTF-8 after all: encode the octet as if it were a character */
		if (seq == 1 && is_qchar(p[i])) {
			out[n++] = (char)p[i];
		} else if (seq > 1 && unitext) {
			memcpy(out + n, p + i, seq);
			n += seq;
		} else {
			unsigned long cp = seq > 1 ? utf8_decode(p + i, seq) : p[i];

			/* HEXPOINT: upper-case, no leading zero beyond two digits. */
			n += (size_t)snprintf(out + n, 11, "\\x{%02lX}", cp);
		}
		i += seq;
	}
	out[n] = '\0';
	return out;
}

/* How many octets of a word of n octets at w fit in max, ending at a character boundary. */
static size_t
word_cut(const char *w, size_t n, size_t max)
{
	size_t k;

	if (n <= max)
		return n;
	k = max;
	while (k > 0 && ((unsigned char)w[k] & 0xc0) == 0x80)
		k--;
	return k > 0 ? k : max;
}

/* The folding both put_field() and put_wrapped() do. header: fold by inserting CRLF before
 * the space (so it stays, as the continuation's leading white space); else drop the space
 * and start the next line with cont. */
static void
put_folded(struct evbuffer *out, const char *first, const char *cont, const char *text,
           size_t width, bool header)
{
	size_t col = strlen(first), contlen = strlen(cont);
	const char *p = text;
	bool empty = true; /* nothing after the prefix on this line yet */

	put_str(out, first);
	while (*p != '\0') {
		bool sp = false;
		const char *w;
		size_t wlen;

		while (*p == ' ') {
			sp = true;
			p++;
		}
		w = p;
		while (*p != '\0' && *p != ' ')
			p++;
		wlen = (size_t)(p - w);
		if (wlen == 0)
			break;
		if (!empty && col + (sp ? 1 : 0) + word_cut(w, wlen, WORD_MAX) > width) {
			put(out, "\r\n", 2);
			if (header) {
				put(out, " ", 1);
				col = 1;
			} else {
				put(out, cont, contlen);
				col = contlen;
			}
		} else if (sp && !empty) {
			put(out, " ", 1);
			col++;
		}
		while (wlen > 0) {
			size_t k = word_cut(w, wlen, WORD_MAX);

			put(out, w, k);
			col += k;
			w += k;
			wlen -= k;
			empty = false;
			if (wlen > 0) {
				/* No space to fold at: the word itself is broken. */
				put(out, "\r\n", 2);
				put(out, header ? " " : cont, header ? 1 : contlen);
				col = header ? 1 : contlen;
			}
		}
	}
	put(out, "\r\n", 2);
}

void
put_field(struct evbuffer *out, const char *first, const char *text)
{
	put_folded(out, first, " ", text, LINE_SHOULD, true);
}

void
put_wrapped(struct evbuffer *out, const char *first, const char *cont, const char *text)
{
	put_folded(out, first, cont, text, 76, false);
}
