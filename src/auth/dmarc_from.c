/* dmarc_from.c - the author domain of a message (RFC 7489 §6.6.1): the domain of its one From
 * field. A From that a reader and this parser could see differently is where DMARC is bypassed
 * (two fields, two mailboxes, an address hidden in a comment), so anything ambiguous is refused
 * with its reason rather than guessed at. Works in place on the header section, in one pass. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/dmarc_internal.h"

static void __attribute__((format(printf, 3, 4))) say(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* The From fields of the header section: how many, and the value of the first. */
static size_t
find_from(const char *h, size_t len, const char **value, size_t *vlen)
{
	size_t pos = 0, n = 0;
	bool in_from = false;

	while (pos < len) {
		const char *nl = memchr(h + pos, '\n', len - pos);
		size_t next = nl != NULL ? (size_t)(nl - h) + 1 : len;
		size_t lend = nl != NULL ? (size_t)(nl - h) : len;

		if (lend > pos && h[lend - 1] == '\r')
			lend--;
		if (lend == pos)
			break; /* the empty line: the body follows */
		if (is_wsp(h[pos])) {
			if (in_from && n == 1)
				*vlen = lend - (size_t)(*value - h);
			pos = next;
			continue;
		}
		in_from = false;
		const char *colon = memchr(h + pos, ':', lend - pos);
		if (colon != NULL) {
			size_t nlen = (size_t)(colon - (h + pos));

			while (nlen > 0 && is_wsp(h[pos + nlen - 1]))
				nlen--;
			if (ascii_caseeq(h + pos, nlen, "From", 4)) {
				in_from = true;
				if (++n == 1) {
					*value = colon + 1;
					*vlen = lend - (size_t)(colon + 1 - h);
				}
			}
		}
		pos = next;
	}
	return n;
}

/* The index after a quoted string or (nested) comment that starts at v[i], or len + 1 if it
 * never ends. */
static size_t
skip_quoted(const char *v, size_t len, size_t i)
{
	int depth = 0;
	char open = v[i];

	for (; i < len; i++) {
		if (v[i] == '\\') {
			i++;
			continue;
		}
		if (open == '"') {
			if (v[i] == '"' && depth++ > 0)
				return i + 1;
			continue;
		}
		if (v[i] == '(')
			depth++;
		else if (v[i] == ')' && --depth == 0)
			return i + 1;
	}
	return len + 1;
}

/* One element of the mailbox list: 1 with its domain in out, 0 if it holds no mailbox (empty,
 * an empty group "undisclosed-recipients:;"), -1 with why. */
static int
mailbox(const char *v, size_t len, char out[DNS_NAME_MAX + 1], char *err, size_t errlen)
{
	size_t ats = 0;
	bool content = false, group = false;

	for (size_t i = 0; i < len; i++) {
		if (v[i] == '"' || v[i] == '(') {
			if (v[i] == '"')
				content = true;
			i = skip_quoted(v, len, i) - 1;
		} else if (v[i] == '@') {
			ats++;
		} else if (v[i] == ':' || v[i] == ';') {
			group = true;
		} else if (!is_wsp(v[i]) && v[i] != '\r' && v[i] != '\n') {
			content = true;
		}
	}
	if (ats == 0) {
		if (!content || group)
			return 0;
		say(err, errlen, "From has a mailbox without a domain");
		return -1;
	}
	if (ats > 1) {
		say(err, errlen, "From has a mailbox with several '@' (or a source route)");
		return -1;
	}
	if (dkim_from_domain(v, len, out) != 0) {
		say(err, errlen, "From has a mailbox without a usable domain (not a domain name)");
		return -1;
	}
	return 1;
}

int
dmarc_from_domain(const char *headers, size_t len, char out[DNS_NAME_MAX + 1], char *err,
                  size_t errlen)
{
	const char *v = NULL;
	size_t vlen = 0, n, start = 0, mailboxes = 0;
	char dom[DNS_NAME_MAX + 1];
	bool angle = false;

	out[0] = '\0';
	say(err, errlen, "%s", "");
	n = find_from(headers, len, &v, &vlen);
	if (n == 0) {
		say(err, errlen, "no From field");
		return -1;
	}
	if (n > 1) {
		say(err, errlen, "%zu From fields (RFC 5322 allows one)", n);
		return -1;
	}
	for (size_t i = 0; i <= vlen; i++) {
		if (i < vlen && (v[i] == '"' || v[i] == '(')) {
			size_t end = skip_quoted(v, vlen, i);

			if (end > vlen) {
				say(err, errlen, "From has an unterminated %s",
				    v[i] == '"' ? "quoted string" : "comment");
				goto bad;
			}
			i = end - 1;
			continue;
		}
		if (i < vlen && v[i] == '<') {
			if (angle) {
				say(err, errlen, "From has '<' inside an angle address");
				goto bad;
			}
			angle = true;
			continue;
		}
		if (i < vlen && v[i] == '>') {
			angle = false;
			continue;
		}
		if (i < vlen && (v[i] != ',' || angle))
			continue;
		if (angle) {
			say(err, errlen, "From has an unterminated angle address");
			goto bad;
		}
		int r = mailbox(v + start, i - start, dom, err, errlen);
		if (r < 0)
			goto bad;
		if (r > 0) {
			if (mailboxes++ == 0) {
				memcpy(out, dom, strlen(dom) + 1);
			} else if (strcmp(out, dom) != 0) {
				say(err, errlen, "From has mailboxes in several domains (%s, %s)",
				    out, dom);
				goto bad;
			}
		}
		start = i + 1;
	}
	if (mailboxes == 0) {
		say(err, errlen, "From has no mailbox");
		goto bad;
	}
	return 0;
bad:
	out[0] = '\0';
	return -1;
}
