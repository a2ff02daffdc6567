/* dkim_message.c - the message as signers and verifiers read it: the header section kept
 * (up to DKIM_HEADERS_MAX), split into fields once complete; the body left to the
 * canonicalizers. The header section ends at the first empty line, which may straddle two
 * pieces of input ("\r" at the end of one, "\n" at the start of the next). */
#include <stdlib.h>
#include <string.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

void
dkim_msg_init(struct dkim_msg *m)
{
	*m = (struct dkim_msg){.bol = true};
}

void
dkim_msg_free(struct dkim_msg *m)
{
	dbuf_free(&m->hdr);
	free(m->fields);
	m->fields = NULL;
	m->nfields = 0;
}

static void
keep(struct dkim_msg *m, const char *p, size_t n)
{
	if (m->overflow)
		return;
	if (m->hdr.len + n > DKIM_HEADERS_MAX) {
		m->overflow = true;
		return;
	}
	dbuf_add(&m->hdr, p, n);
}

size_t
dkim_msg_headers(struct dkim_msg *m, const char *p, size_t n)
{
	size_t i = 0;

	while (i < n && !m->done) {
		if (m->crbol) {
			m->crbol = false;
			if (p[i] == '\n') {
				m->done = true;
				return i + 1;
			}
			keep(m, "\r", 1); /* a line that starts with a lone CR */
			m->bol = false;
			continue;
		}
		if (m->bol) {
			if (p[i] == '\n') {
				m->done = true;
				return i + 1;
			}
			if (p[i] == '\r') {
				m->crbol = true;
				i++;
				continue;
			}
		}
		const char *nl = memchr(p + i, '\n', n - i);
		size_t end = nl ? (size_t)(nl - p) + 1 : n;
		keep(m, p + i, end - i);
		m->bol = nl != NULL;
		i = end;
	}
	return i;
}

static void
add_field(struct dkim_msg *m, size_t off, size_t len, size_t *cap)
{
	const char *f = m->hdr.p + off;
	const char *colon = memchr(f, ':', len);
	const char *eol = memchr(f, '\n', len);
	size_t namelen = 0;

	/* The name is on the first line; a line without a colon is not a field. */
	if (colon != NULL && (eol == NULL || colon < eol)) {
		namelen = (size_t)(colon - f);
		while (namelen > 0 && is_wsp(f[namelen - 1]))
			namelen--;
	}
	if (m->nfields == *cap) {
		*cap = *cap ? *cap * 2 : 32;
		m->fields = xrealloc(m->fields, *cap * sizeof(*m->fields));
	}
	m->fields[m->nfields++] = (struct dkim_field){
	    .off = off, .len = len, .namelen = namelen, .hash = dkim_name_hash(f, namelen)};
}

void
dkim_msg_end_headers(struct dkim_msg *m)
{
	size_t cap = 0, pos = 0, start = 0, end = 0;
	bool open = false;

	if (m->crbol) {
		m->crbol = false;
		keep(m, "\r", 1);
	}
	m->done = true;
	free(m->fields);
	m->fields = NULL;
	m->nfields = 0;
	while (pos < m->hdr.len) {
		const char *line = m->hdr.p + pos;
		const char *nl = memchr(line, '\n', m->hdr.len - pos);
		size_t next = nl ? (size_t)(nl - m->hdr.p) + 1 : m->hdr.len;
		size_t lend = nl ? (size_t)(nl - m->hdr.p) : m->hdr.len;

		if (nl != NULL && lend > pos && m->hdr.p[lend - 1] == '\r')
			lend--;
		if (is_wsp(line[0]) && open) {
			end = lend; /* a continuation line: the field goes on */
		} else {
			if (open)
				add_field(m, start, end - start, &cap);
			start = pos;
			end = lend;
			open = true;
		}
		pos = next;
	}
	if (open)
		add_field(m, start, end - start, &cap);
}

uint32_t
dkim_name_hash(const char *name, size_t len)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)ascii_lower(name[i])) * 16777619u;
	return h;
}

static bool
field_named(const struct dkim_msg *m, const struct dkim_field *f, const char *name, size_t len,
            uint32_t hash)
{
	return f->hash == hash && f->namelen == len && f->namelen > 0 &&
	       ascii_caseeq(m->hdr.p + f->off, f->namelen, name, len);
}

bool
dkim_field_is(const struct dkim_msg *m, const struct dkim_field *f, const char *name)
{
	size_t len = strlen(name);

	return field_named(m, f, name, len, dkim_name_hash(name, len));
}

const char *
dkim_field_value(const struct dkim_msg *m, const struct dkim_field *f, size_t *len)
{
	const char *p = m->hdr.p + f->off;
	const char *colon = memchr(p, ':', f->len);

	if (colon == NULL) {
		*len = 0;
		return p + f->len;
	}
	*len = f->len - (size_t)(colon + 1 - p);
	return colon + 1;
}

size_t
dkim_msg_count(const struct dkim_msg *m, const char *name)
{
	size_t len = strlen(name), n = 0;
	uint32_t hash = dkim_name_hash(name, len);

	for (size_t i = 0; i < m->nfields; i++)
		n += field_named(m, &m->fields[i], name, len, hash);
	return n;
}

void
dkim_msg_select(const struct dkim_msg *m, const char *const *names, size_t n, enum dkim_canon canon,
                struct dbuf *out)
{
	/* cursor[i]: where the search for names[i] goes on from (bottom-up), shared by every
	 * occurrence of the same name in the list. */
	size_t *cursor = xcalloc(n ? n : 1, sizeof(*cursor));

	for (size_t i = 0; i < n; i++) {
		size_t from = m->nfields, nlen = strlen(names[i]);
		uint32_t hash = dkim_name_hash(names[i], nlen);

		for (size_t j = 0; j < i; j++) {
			if (ascii_caseeq(names[j], strlen(names[j]), names[i], nlen)) {
				from = cursor[j];
				break;
			}
		}
		while (from > 0) {
			const struct dkim_field *f = &m->fields[--from];

			if (field_named(m, f, names[i], nlen, hash)) {
				dkim_canon_header(canon, m->hdr.p + f->off, f->len, true, out);
				break;
			}
		}
		/* Every earlier entry for this name shares the cursor. */
		for (size_t j = 0; j <= i; j++)
			if (ascii_caseeq(names[j], strlen(names[j]), names[i], nlen))
				cursor[j] = from;
	}
	free(cursor);
}

/* ---- The From domain ---- */

/* Skips a quoted string or a (possibly nested) comment starting at p[i]; returns the index
 * after it. */
static size_t
skip_quoted(const char *p, size_t len, size_t i)
{
	if (p[i] == '"') {
		for (i++; i < len && p[i] != '"'; i++)
			if (p[i] == '\\' && i + 1 < len)
				i++;
		return i < len ? i + 1 : len;
	}
	int depth = 0;
	for (; i < len; i++) {
		if (p[i] == '\\' && i + 1 < len)
			i++;
		else if (p[i] == '(')
			depth++;
		else if (p[i] == ')' && --depth == 0)
			return i + 1;
	}
	return len;
}

int
dkim_from_domain(const char *p, size_t len, char out[DNS_NAME_MAX + 1])
{
	size_t start = 0, end = len, i = 0, at = SIZE_MAX;

	/* The first mailbox: up to a ',' outside quotes, comments and angle brackets; its
	 * address is in <> if there are any. */
	bool angle = false;
	for (i = 0; i < len; i++) {
		if (p[i] == '"' || p[i] == '(') {
			i = skip_quoted(p, len, i) - 1;
		} else if (p[i] == '<') {
			start = i + 1;
			angle = true;
		} else if (p[i] == '>' && angle) {
			end = i;
			break;
		} else if (p[i] == ',' && !angle) {
			end = i;
			break;
		} else if (p[i] == ':' && !angle) {
			start = i + 1; /* a group: "undisclosed: a@b;" */
		}
	}
	for (i = start; i < end; i++) {
		if (p[i] == '"' || p[i] == '(')
			i = skip_quoted(p, end, i) - 1;
		else if (p[i] == '@')
			at = i;
	}
	if (at == SIZE_MAX)
		return -1;
	size_t ds = at + 1, de = ds;
	while (ds < end && (is_wsp(p[ds]) || p[ds] == '\r' || p[ds] == '\n'))
		ds++;
	de = ds;
	while (de < end && !is_wsp(p[de]) && p[de] != '\r' && p[de] != '\n' && p[de] != '(' &&
	       p[de] != ';' && p[de] != '>')
		de++;
	if (de > ds && p[de - 1] == '.')
		de--;
	if (!dkim_domain_valid(p + ds, de - ds))
		return -1;
	for (i = ds; i < de; i++)
		out[i - ds] = ascii_lower(p[i]);
	out[de - ds] = '\0';
	return 0;
}
