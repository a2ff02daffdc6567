/* spf_macro.c - SPF macros (RFC 7208 §7): their syntax, checked when a record is parsed, and
 * their expansion, done when a term is evaluated or an explanation is built.
 *
 *   macro-expand = ( "%{" macro-letter transformers *delimiter "}" ) / "%%" / "%_" / "%-"
 *   transformers = *DIGIT [ "r" ]        delimiter = "." / "-" / "+" / "," / "/" / "_" / "="
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/spf_internal.h"
#include "core/core.h"

/* A part count above this keeps every part anyway (a name has at most 127 labels). */
#define PARTS_CAP 1000

struct macro {
	char letter;     /* lower case */
	bool upper;      /* URL-escape the result (§7.3) */
	unsigned digits; /* right-hand parts to keep; 0: all */
	bool reverse;
	char delims[8]; /* the delimiters given, "" for the default "." */
};

static bool
is_delimiter(char c)
{
	return c != '\0' && strchr(".-+,/_=", c) != NULL;
}

static bool
letter_allowed(char c, unsigned flags)
{
	c = (char)tolower((unsigned char)c);
	if (c != '\0' && strchr("slodipvh", c) != NULL)
		return true;
	/* §7.3: c, r and t only make sense to a person reading an explanation. */
	return (flags & SPF_MACRO_EXPLAIN) && c != '\0' && strchr("crt", c) != NULL;
}

static bool
literal_allowed(unsigned char c, unsigned flags)
{
	/* macro-literal = %x21-24 / %x26-7E; explain-string adds SP. */
	if (c == '%')
		return false;
	if (c == ' ')
		return (flags & SPF_MACRO_EXPLAIN) != 0;
	return c >= 0x21 && c <= 0x7e;
}

/* The macro-expand at text[*i] (which is '%'). Advances *i past it. For "%%", "%_" and "%-",
 * m->letter is that second character. */
static int
macro_parse(const char *text, size_t len, size_t *i, unsigned flags, struct macro *m,
            const char **why)
{
	size_t p = *i + 1, nd = 0;

	memset(m, 0, sizeof(*m));
	if (p >= len) {
		*why = "'%' at the end of a macro-string";
		return -1;
	}
	if (text[p] == '%' || text[p] == '_' || text[p] == '-') {
		m->letter = text[p];
		*i = p + 1;
		return 0;
	}
	if (text[p] != '{') {
		*why = "'%' must be followed by '{', '%', '_' or '-'";
		return -1;
	}
	p++;
	if (p >= len || !letter_allowed(text[p], flags)) {
		*why = p < len && strchr("crtCRT", text[p]) != NULL
		           ? "macro letters c, r and t are only allowed in explanations"
		           : "unknown macro letter";
		return -1;
	}
	m->letter = (char)tolower((unsigned char)text[p]);
	m->upper = isupper((unsigned char)text[p]) != 0;
	p++;
	if (p < len && isdigit((unsigned char)text[p])) {
		unsigned long n = 0;

		while (p < len && isdigit((unsigned char)text[p])) {
			if (n < PARTS_CAP)
				n = n * 10 + (unsigned long)(text[p] - '0');
			p++;
		}
		/* §7.3: "If a DIGIT is specified, the value MUST be nonzero." */
		if (n == 0) {
			*why = "a macro's part count must not be zero";
			return -1;
		}
		m->digits = n > PARTS_CAP ? PARTS_CAP : (unsigned)n;
	}
	if (p < len && (text[p] == 'r' || text[p] == 'R')) {
		m->reverse = true;
		p++;
	}
	while (p < len && is_delimiter(text[p])) {
		if (nd + 1 < sizeof(m->delims) && strchr(m->delims, text[p]) == NULL)
			m->delims[nd++] = text[p];
		p++;
	}
	if (p >= len || text[p] != '}') {
		*why = "a macro must end with '}' after its letter, transformers and delimiters";
		return -1;
	}
	*i = p + 1;
	return 0;
}

int
spf_macro_syntax(const char *text, size_t len, unsigned flags, bool *ends_with_macro,
                 const char **why)
{
	bool last_macro = false;

	for (size_t i = 0; i < len;) {
		struct macro m;

		if (text[i] == '%') {
			if (macro_parse(text, len, &i, flags, &m, why) == -1)
				return -1;
			last_macro = true;
			continue;
		}
		if (!literal_allowed((unsigned char)text[i], flags)) {
			*why = "a character that is not printable ASCII";
			return -1;
		}
		last_macro = false;
		i++;
	}
	if (ends_with_macro != NULL)
		*ends_with_macro = last_macro;
	return 0;
}

bool
spf_macro_uses_p(const char *text, size_t len)
{
	for (size_t i = 0; i + 2 < len; i++) {
		if (text[i] == '%' && text[i + 1] == '%') {
			i++; /* "%%{p}" is a literal "%{p}" */
			continue;
		}
		if (text[i] == '%' && text[i + 1] == '{' &&
		    (text[i + 2] == 'p' || text[i + 2] == 'P'))
			return true;
	}
	return false;
}

/* ---- Expansion ---- */

struct out {
	char *p;
	size_t len, size; /* size includes the NUL */
	bool over;
};

static void
put(struct out *o, const char *s, size_t n)
{
	if (o->over || n > o->size - 1 - o->len) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* §7.3: "i" is the dotted quad, or 32 dot-separated nibbles for IPv6. The nibbles are upper
 * case, as the OpenSPF suite expects in explanations (DNS does not care). */
static void
ip_dotted(const struct dns_address *ip, char *buf, size_t size)
{
	static const char hex[] = "0123456789ABCDEF";

	if (ip->family == AF_INET) {
		inet_ntop(AF_INET, &ip->u.v4, buf, (socklen_t)size);
		return;
	}
	if (ip->family != AF_INET6 || size < 64) {
		buf[0] = '\0';
		return;
	}
	char *p = buf;

	for (int i = 0; i < 16; i++) {
		*p++ = hex[ip->u.v6.s6_addr[i] >> 4];
		*p++ = '.';
		*p++ = hex[ip->u.v6.s6_addr[i] & 0xf];
		*p++ = i == 15 ? '\0' : '.';
	}
}

static const char *
macro_value(const struct macro *m, const struct spf_macro_vars *v, char *buf, size_t size)
{
	const char *s;

	switch (m->letter) {
	case 's':
		s = v->sender;
		break;
	case 'l':
		s = v->local;
		break;
	case 'o':
		s = v->sender_domain;
		break;
	case 'd':
		s = v->domain;
		break;
	case 'i':
		ip_dotted(&v->ip, buf, size);
		return buf;
	case 'p':
		s = v->ptr != NULL ? v->ptr : "unknown";
		break;
	case 'v':
		s = v->ip.family == AF_INET ? "in-addr" : "ip6";
		break;
	case 'h':
		s = v->helo;
		break;
	case 'c':
		/* §7.3: the dotted quad, or any RFC 4291 form for IPv6: the RFC 5952 one. */
		if (v->ip.family != AF_INET && v->ip.family != AF_INET6)
			return "";
		inet_ntop(v->ip.family,
		          v->ip.family == AF_INET ? (const void *)&v->ip.u.v4
		                                  : (const void *)&v->ip.u.v6,
		          buf, (socklen_t)size);
		return buf;
	case 'r':
		s = v->receiver != NULL ? v->receiver : "unknown";
		break;
	case 't':
		snprintf(buf, size, "%" PRId64, v->now != 0 ? v->now : (int64_t)time(NULL));
		return buf;
	default:
		s = NULL;
	}
	return s != NULL ? s : "";
}

static bool
unreserved(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

static void
put_escaped(struct out *o, const char *s, size_t n, bool escape)
{
	static const char hex[] = "0123456789ABCDEF";

	if (!escape) {
		put(o, s, n);
		return;
	}
	for (size_t i = 0; i < n && !o->over; i++) {
		unsigned char c = (unsigned char)s[i];
		char e[3] = {'%', hex[c >> 4], hex[c & 0xf]};

		if (unreserved(c))
			put(o, s + i, 1);
		else
			put(o, e, 3);
	}
}

/* §7.3: split on the delimiters, reverse if asked, keep the rightmost parts, join with "." */
static void
put_transformed(struct out *o, const struct macro *m, const char *value)
{
	const char *delims = m->delims[0] != '\0' ? m->delims : ".";
	size_t len = strlen(value), nparts = 1, first;
	struct part {
		const char *s;
		size_t n;
	} * parts;
	size_t start = 0, k = 0;
	struct out joined;

	if (m->digits == 0 && !m->reverse && m->delims[0] == '\0') {
		put_escaped(o, value, len, m->upper);
		return;
	}
	for (size_t i = 0; i < len; i++)
		nparts += strchr(delims, value[i]) != NULL;
	parts = xcalloc(nparts, sizeof(*parts));
	for (size_t i = 0; i <= len; i++) {
		if (i == len || strchr(delims, value[i]) != NULL) {
			parts[k].s = value + start;
			parts[k].n = i - start;
			k++;
			start = i + 1;
		}
	}
	if (m->reverse) {
		for (size_t i = 0; i < nparts / 2; i++) {
			struct part t = parts[i];

			parts[i] = parts[nparts - 1 - i];
			parts[nparts - 1 - i] = t;
		}
	}
	first = m->digits != 0 && m->digits < nparts ? nparts - m->digits : 0;
	joined.size = len + 2;
	joined.p = xmalloc(joined.size);
	joined.len = 0;
	joined.over = false;
	joined.p[0] = '\0';
	for (size_t i = first; i < nparts; i++) {
		if (i > first)
			put(&joined, ".", 1);
		put(&joined, parts[i].s, parts[i].n);
	}
	put_escaped(o, joined.p, joined.len, m->upper);
	free(joined.p);
	free(parts);
}

ssize_t
spf_macro_expand(const char *text, size_t len, unsigned flags, const struct spf_macro_vars *v,
                 char *out, size_t outsize, char *err, size_t errlen)
{
	struct out o = {out, 0, outsize, false};
	const char *why;
	char buf[80];

	if (outsize == 0) {
		snprintf(err, errlen, "no room for the expansion");
		return -1;
	}
	out[0] = '\0';
	if (spf_macro_syntax(text, len, flags, NULL, &why) == -1) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	for (size_t i = 0; i < len && !o.over;) {
		struct macro m;

		if (text[i] != '%') {
			size_t j = i;

			while (j < len && text[j] != '%')
				j++;
			put(&o, text + i, j - i);
			i = j;
			continue;
		}
		(void)macro_parse(text, len, &i, flags, &m, &why); /* checked above */
		switch (m.letter) {
		case '%':
			put(&o, "%", 1);
			break;
		case '_':
			put(&o, " ", 1);
			break;
		case '-':
			put(&o, "%20", 3);
			break;
		default:
			put_transformed(&o, &m, macro_value(&m, v, buf, sizeof(buf)));
		}
	}
	if (o.over) {
		snprintf(err, errlen, "the expansion is longer than %zu octets", outsize - 1);
		out[0] = '\0';
		return -1;
	}
	if (flags & SPF_MACRO_DOMAIN) {
		size_t skip = 0;

		if (o.len > 0 && out[o.len - 1] == '.')
			out[--o.len] = '\0';
		/* §7.3: "if the expanded domain name exceeds 253 characters ..., the left side is
		 * truncated to fit, by removing successive domain labels". */
		while (o.len - skip > DNS_NAME_MAX) {
			char *dot = memchr(out + skip, '.', o.len - skip);

			skip = dot != NULL ? (size_t)(dot - out) + 1 : o.len;
		}
		memmove(out, out + skip, o.len - skip + 1);
		o.len -= skip;
	}
	return (ssize_t)o.len;
}
