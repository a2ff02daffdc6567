/* mime.c - just enough MIME (RFC 2045-2047) to read reports: header sections with folding,
 * Content-Type parameters, multipart boundaries, quoted-printable and base64, and HTML
 * reduced to its text. Lenient where generators are sloppy (LF line ends, long boundaries,
 * missing close delimiters, junk in base64), strict about bounds. */
#include <ctype.h>
#include <string.h>

#include "core/core.h"
#include "feedback/internal.h"

size_t
line_next(const char *p, const char *end, const char **next)
{
	const char *lf = memchr(p, '\n', (size_t)(end - p));
	size_t len;

	if (lf == NULL) {
		*next = end;
		return (size_t)(end - p);
	}
	*next = lf + 1;
	len = (size_t)(lf - p);
	if (len > 0 && p[len - 1] == '\r')
		len--;
	return len;
}

bool
line_blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
			return false;
	return true;
}

void
header_begin(struct header_iter *it, const char *p, size_t len)
{
	it->p = p;
	it->end = p + len;
	it->limit = p + (len < FEEDBACK_HEADER_MAX ? len : FEEDBACK_HEADER_MAX);
}

bool
header_next(struct header_iter *it, struct slice *name, struct slice *value)
{
	while (it->p < it->end) {
		const char *line = it->p, *next, *colon, *vend;
		size_t len = line_next(line, it->end, &next);

		if (line_blank(line, len)) {
			it->p = next;
			it->end = next; /* the section ends here; header_body() reports it */
			return false;
		}
		it->p = next;
		/* Continuation lines of a field we did not take (or before any field) */
		if (line[0] == ' ' || line[0] == '\t')
			continue;
		colon = memchr(line, ':', len);
		if (colon == NULL || colon == line)
			continue;
		/* Its continuation lines. */
		vend = line + len;
		while (it->p < it->end && (it->p[0] == ' ' || it->p[0] == '\t')) {
			size_t clen = line_next(it->p, it->end, &next);

			/* A whitespace-only line ends the section for generators that put spaces
			 * on the empty line; RFC 5322 would call it a fold. */
			if (line_blank(it->p, clen))
				break;
			vend = it->p + clen;
			it->p = next;
		}
		if (line > it->limit)
			continue; /* past FEEDBACK_HEADER_MAX: keep looking for the body only */
		name->p = line;
		name->len = (size_t)(colon - line);
		while (name->len > 0 &&
		       (name->p[name->len - 1] == ' ' || name->p[name->len - 1] == '\t'))
			name->len--;
		value->p = colon + 1;
		value->len = (size_t)(vend - value->p);
		return true;
	}
	return false;
}

const char *
header_body(const struct header_iter *it)
{
	return it->p;
}

/* ---- Content-Type ---- */

static const char *
skip_cfws(const char *p, const char *end)
{
	while (p < end) {
		if (isspace((unsigned char)*p)) {
			p++;
		} else if (*p == '(') { /* a comment, nested at most a few levels in practice */
			int depth = 0;

			for (; p < end; p++) {
				if (*p == '\\' && p + 1 < end)
					p++;
				else if (*p == '(')
					depth++;
				else if (*p == ')' && --depth == 0) {
					p++;
					break;
				}
			}
		} else {
			break;
		}
	}
	return p;
}

static bool
tspecial(unsigned char c)
{
	return c <= ' ' || c >= 0x7f || strchr("()<>@,;:\\\"/[]?=", c) != NULL;
}

/* A token into dst (lower-cased, cut to size); returns the position after it. */
static const char *
token_read(const char *p, const char *end, char *dst, size_t size, bool lower)
{
	size_t n = 0;

	for (; p < end && !tspecial((unsigned char)*p); p++)
		if (n + 1 < size)
			dst[n++] = lower ? (char)tolower((unsigned char)*p) : *p;
	dst[n] = '\0';
	return p;
}

/* A token or quoted-string value into dst. */
static const char *
value_read(const char *p, const char *end, char *dst, size_t size)
{
	size_t n = 0;

	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (*p == '\r' || *p == '\n')
				continue; /* folded inside the quotes */
			if (n + 1 < size)
				dst[n++] = *p;
		}
		dst[n] = '\0';
		return p < end ? p + 1 : p;
	}
	/* Unquoted: a token, but generators put "=" and "/" in boundaries unquoted. */
	for (; p < end && *p != ';' && !isspace((unsigned char)*p); p++)
		if (n + 1 < size)
			dst[n++] = *p;
	dst[n] = '\0';
	return p;
}

void
content_type_parse(const char *s, size_t len, struct content_type *ct)
{
	const char *p = s, *end = s + len;

	memset(ct, 0, sizeof(*ct));
	p = token_read(skip_cfws(p, end), end, ct->type, sizeof(ct->type), true);
	p = skip_cfws(p, end);
	if (p < end && *p == '/')
		p = token_read(skip_cfws(p + 1, end), end, ct->subtype, sizeof(ct->subtype), true);
	if (ct->type[0] == '\0' || ct->subtype[0] == '\0') {
		/* RFC 2045 §5.2: a Content-Type that cannot be read is text/plain. */
		strlcpy_s(ct->type, "text", sizeof(ct->type));
		strlcpy_s(ct->subtype, "plain", sizeof(ct->subtype));
	}
	while (p < end) {
		char name[32], val[BOUNDARY_MAX + 1];
		const char *semi = memchr(p, ';', (size_t)(end - p));

		if (semi == NULL)
			break;
		p = token_read(skip_cfws(semi + 1, end), end, name, sizeof(name), true);
		p = skip_cfws(p, end);
		if (p >= end || *p != '=')
			continue;
		p = value_read(skip_cfws(p + 1, end), end, val, sizeof(val));
		if (strcmp(name, "boundary") == 0 && ct->boundary[0] == '\0') {
			size_t n = strlen(val);

			while (n > 0 && val[n - 1] == ' ') /* RFC 2046 forbids a final space */
				val[--n] = '\0';
			strlcpy_s(ct->boundary, val, sizeof(ct->boundary));
		} else if (strcmp(name, "report-type") == 0 && ct->report_type[0] == '\0') {
			for (char *c = val; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			strlcpy_s(ct->report_type, val, sizeof(ct->report_type));
		}
	}
}

enum cte
cte_parse(const char *s, size_t len)
{
	struct slice v = {s, len};

	while (v.len > 0 && isspace((unsigned char)v.p[0])) {
		v.p++;
		v.len--;
	}
	while (v.len > 0 && (isspace((unsigned char)v.p[v.len - 1]) || v.p[v.len - 1] == ';'))
		v.len--;
	if (ci_eq(v, "base64"))
		return CTE_BASE64;
	if (ci_eq(v, "quoted-printable"))
		return CTE_QP;
	return CTE_IDENTITY; /* 7bit, 8bit, binary, and what nobody can decode anyway */
}

/* ---- transfer encodings ---- */

/* RFC 2045 §6.8: characters outside the alphabet are ignored; "=" ends the data. */
static size_t
b64_decode(const char *in, size_t len, char *out, size_t max, bool *cut)
{
	unsigned buf = 0, bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		int v = base64_value((unsigned char)in[i]);

		if (in[i] == '=')
			break;
		if (v < 0)
			continue;
		buf = (buf << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == max) {
				*cut = true;
				break;
			}
			out[o++] = (char)(buf >> bits);
		}
	}
	return o;
}

static int
hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)toupper(c);
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 2045 §6.7; lower-case hex accepted, a stray "=" kept as it is. */
static size_t
qp_decode(const char *in, size_t len, char *out, size_t max, bool *cut)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];

		if (c == '=') {
			size_t j = i + 1;

			while (j < len && (in[j] == ' ' || in[j] == '\t'))
				j++;
			if (j < len && in[j] == '\r')
				j++;
			if (j < len && in[j] == '\n') { /* soft line break */
				i = j;
				continue;
			}
			if (j >= len) /* "=" at the very end: a soft break cut short */
				break;
			if (i + 2 < len && hex_value((unsigned char)in[i + 1]) >= 0 &&
			    hex_value((unsigned char)in[i + 2]) >= 0) {
				c = (char)(hex_value((unsigned char)in[i + 1]) << 4 |
				           hex_value((unsigned char)in[i + 2]));
				i += 2;
			}
		}
		if (o == max) {
			*cut = true;
			break;
		}
		out[o++] = c;
	}
	return o;
}

void
body_decode(enum cte cte, const char *p, size_t len, size_t max, struct decoded *d)
{
	memset(d, 0, sizeof(*d));
	if (cte == CTE_IDENTITY) {
		d->p = p;
		d->len = len < max ? len : max;
		d->cut = len > max;
		return;
	}
	/* Both decoders shrink their input: len octets are enough. */
	d->owned = xmalloc((len < max ? len : max) + 1);
	if (cte == CTE_BASE64)
		d->len = b64_decode(p, len, d->owned, len < max ? len : max, &d->cut);
	else
		d->len = qp_decode(p, len, d->owned, len < max ? len : max, &d->cut);
	d->p = d->owned;
}

void
decoded_free(struct decoded *d)
{
	free(d->owned);
	memset(d, 0, sizeof(*d));
}

/* ---- HTML ---- */

static const struct {
	const char *name;
	char c;
} entities[] = {
    {"lt;", '<'},    {"gt;", '>'},   {"amp;", '&'},  {"quot;", '"'},
    {"apos;", '\''}, {"nbsp;", ' '}, {"#39;", '\''}, {"#64;", '@'},
};

/* Tags after which text continues on a new line: keeps "address" and "reason" on
 * different lines, as the heuristics expect. */
static bool
block_tag(const char *name, size_t n)
{
	static const char *const blocks[] = {"br", "p",  "div",   "tr", "li",  "h1",        "h2",
	                                     "h3", "h4", "table", "td", "pre", "blockquote"};
	struct slice s = {name, n};

	for (size_t i = 0; i < nitems(blocks); i++)
		if (ci_eq(s, blocks[i]))
			return true;
	return false;
}

size_t
html_to_text(const char *in, size_t len, char *out, size_t max)
{
	size_t o = 0, i = 0;
	const char *skip_until = NULL; /* inside <style> or <script>: their closing tag */

	while (i < len && o < max) {
		if (in[i] == '<') {
			const char *gt = memchr(in + i, '>', len - i);
			size_t j = i + 1, n;
			bool closing = j < len && in[j] == '/';

			if (gt == NULL)
				break;
			if (closing)
				j++;
			for (n = 0; j + n < len && isalnum((unsigned char)in[j + n]); n++)
				;
			if (skip_until != NULL) {
				if (closing && ci_prefix(in + j, n, skip_until) &&
				    n == strlen(skip_until))
					skip_until = NULL;
			} else if (!closing && ((n == 5 && ci_prefix(in + j, n, "style")) ||
			                        (n == 6 && ci_prefix(in + j, n, "script")))) {
				skip_until = n == 5 ? "style" : "script";
			} else if (block_tag(in + j, n)) {
				out[o++] = '\n';
			}
			i = (size_t)(gt - in) + 1;
			continue;
		}
		if (skip_until != NULL) {
			i++;
			continue;
		}
		if (in[i] == '&') {
			size_t k;

			for (k = 0; k < nitems(entities); k++)
				if (ci_prefix(in + i + 1, len - i - 1, entities[k].name))
					break;
			if (k < nitems(entities)) {
				out[o++] = entities[k].c;
				i += 1 + strlen(entities[k].name);
				continue;
			}
		}
		out[o++] = in[i++];
	}
	return o;
}

/* ---- multipart ---- */

void
part_begin(struct part_iter *it, const char *body, size_t len, const char *boundary)
{
	memset(it, 0, sizeof(*it));
	it->p = body;
	it->end = body + len;
	it->boundary = boundary;
	it->blen = strlen(boundary);
	it->done = it->blen == 0;
}

/* If the line is a delimiter: 1, or 2 for the close delimiter; else 0. */
static int
delimiter(const struct part_iter *it, const char *line, size_t len)
{
	if (len < 2 + it->blen || line[0] != '-' || line[1] != '-' ||
	    memcmp(line + 2, it->boundary, it->blen) != 0)
		return 0;
	line += 2 + it->blen;
	len -= 2 + it->blen;
	if (len >= 2 && line[0] == '-' && line[1] == '-')
		return 2;
	return line_blank(line, len) ? 1 : 0;
}

bool
part_next(struct part_iter *it, struct slice *part)
{
	while (!it->done && it->p < it->end) {
		const char *line = it->p, *next;
		size_t len = line_next(line, it->end, &next);
		int d = delimiter(it, line, len);

		it->p = next;
		if (d == 0)
			continue;
		if (it->start == NULL) { /* the preamble ends */
			it->done = d == 2;
			it->start = next;
			continue;
		}
		/* The line end before the delimiter belongs to it (RFC 2046 §5.1.1). */
		part->p = it->start;
		part->len = (size_t)(line - it->start);
		if (part->len > 0 && part->p[part->len - 1] == '\n')
			part->len--;
		if (part->len > 0 && part->p[part->len - 1] == '\r')
			part->len--;
		it->done = d == 2;
		it->start = next;
		return true;
	}
	if (it->done || it->start == NULL || it->start >= it->end) {
		it->done = true;
		return false;
	}
	/* No close delimiter: a truncated message; its last part runs to the end. */
	it->done = true;
	part->p = it->start;
	part->len = (size_t)(it->end - it->start);
	return true;
}
