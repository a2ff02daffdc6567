/* dkim_canon.c - canonicalization (RFC 6376 §3.4): header fields one at a time, the body as
 * it streams, in pieces split anywhere (inside a CRLF, inside a run of white space).
 *
 * A bare LF ends a line as CRLF does: the canonical forms are defined on CRLF lines, and a
 * message that reaches us with LF line ends leaves with CRLF ones (SMTP has no other). A CR
 * not followed by LF is content. Octets above 127 are content like any other. */
#include <stdint.h>
#include <string.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

/* ---- Header fields ---- */

void
dkim_canon_header(enum dkim_canon canon, const char *f, size_t len, bool crlf, struct dbuf *out)
{
	if (canon == DKIM_CANON_SIMPLE) {
		/* As received, except that a bare LF inside a folded field is the CRLF it
		 * stands for. */
		size_t run = 0;
		for (size_t i = 0; i < len; i++) {
			if (f[i] == '\n' && (i == 0 || f[i - 1] != '\r')) {
				dbuf_add(out, f + run, i - run);
				dbuf_add(out, "\r\n", 2);
				run = i + 1;
			}
		}
		dbuf_add(out, f + run, len - run);
		if (crlf)
			dbuf_add(out, "\r\n", 2);
		return;
	}

	/* Relaxed: the name lower-cased without the white space before the colon; the value
	 * unfolded, runs of white space made one SP, none at either end. */
	const char *colon = memchr(f, ':', len);
	size_t namelen = colon ? (size_t)(colon - f) : len, i;
	bool wsp = false, any = false;

	while (namelen > 0 && is_wsp(f[namelen - 1]))
		namelen--;
	for (i = 0; i < namelen; i++)
		dbuf_addc(out, ascii_lower(f[i]));
	dbuf_addc(out, ':');
	if (colon == NULL) {
		if (crlf)
			dbuf_add(out, "\r\n", 2);
		return;
	}
	for (i = (size_t)(colon - f) + 1; i < len; i++) {
		char c = f[i];

		if (c == '\r' && i + 1 < len && f[i + 1] == '\n') {
			i++; /* unfold: the CRLF goes, the white space after it stays */
			continue;
		}
		if (c == '\n')
			continue;
		if (is_wsp(c)) {
			wsp = true;
			continue;
		}
		if (wsp && any)
			dbuf_addc(out, ' ');
		wsp = false;
		any = true;
		/* Runs of ordinary octets go in one piece. */
		size_t j = i + 1;
		while (j < len && !is_wsp(f[j]) && f[j] != '\r' && f[j] != '\n')
			j++;
		dbuf_add(out, f + i, j - i);
		i = j - 1;
	}
	if (crlf)
		dbuf_add(out, "\r\n", 2);
}

/* ---- The body ---- */

void
dkim_body_init(struct dkim_body *b, enum dkim_canon canon, uint64_t limit)
{
	memset(b, 0, offsetof(struct dkim_body, out));
	b->canon = canon;
	b->limit = limit;
	b->md = EVP_MD_CTX_new();
	if (b->md == NULL || EVP_DigestInit_ex(b->md, EVP_sha256(), NULL) != 1)
		fatal("dkim: cannot initialise SHA-256");
}

void
dkim_body_free(struct dkim_body *b)
{
	EVP_MD_CTX_free(b->md);
	b->md = NULL;
}

static void
flush(struct dkim_body *b)
{
	if (b->outlen == 0)
		return;
	EVP_DigestUpdate(b->md, b->out, b->outlen);
	b->outlen = 0;
}

/* Canonical octets: counted, captured, and hashed up to the limit. */
static void
emit(struct dkim_body *b, const char *p, size_t n)
{
	if (b->capture)
		dbuf_add(b->capture, p, n);
	if (b->total < b->limit) {
		uint64_t room = b->limit - b->total;
		size_t take = n < room ? n : (size_t)room;

		if (take > sizeof(b->out) - b->outlen) {
			flush(b);
			if (take > sizeof(b->out)) {
				EVP_DigestUpdate(b->md, p, take);
				take = 0;
			}
		}
		memcpy(b->out + b->outlen, p, take);
		b->outlen += take;
	}
	b->total += n;
}

/* Content is coming on this line: the empty lines held back were not the end of the body,
 * nor the white space held back the end of the line. */
static void
content(struct dkim_body *b, const char *p, size_t n)
{
	if (!b->inline_) {
		for (; b->blanks > 0; b->blanks--)
			emit(b, "\r\n", 2);
		b->inline_ = true;
	}
	if (b->wsp) {
		emit(b, " ", 1);
		b->wsp = false;
	}
	emit(b, p, n);
	b->any = true;
}

/* A line end: held back, since only empty lines may follow (RFC 6376 §3.4.3, §3.4.4). */
static void
line_end(struct dkim_body *b)
{
	b->wsp = false; /* relaxed: white space at the end of a line goes */
	b->inline_ = false;
	b->blanks++;
}

void
dkim_body_update(struct dkim_body *b, const char *p, size_t n)
{
	bool relaxed = b->canon == DKIM_CANON_RELAXED;
	size_t i = 0;

	if (b->cr && n > 0) {
		b->cr = false;
		if (p[0] == '\n') {
			line_end(b);
			i = 1;
		} else
			content(b, "\r", 1);
	}
	while (i < n) {
		char c = p[i];

		if (c == '\n') {
			line_end(b);
			i++;
		} else if (c == '\r') {
			if (i + 1 == n) {
				b->cr = true; /* the next piece says what it was */
				i++;
			} else if (p[i + 1] == '\n') {
				line_end(b);
				i += 2;
			} else {
				content(b, "\r", 1);
				i++;
			}
		} else if (relaxed && is_wsp(c)) {
			/* Relaxed: a run of white space is one SP, emitted only if content
			 * follows on the line. */
			b->wsp = true;
			i++;
		} else {
			size_t j = i + 1;
			while (j < n && p[j] != '\r' && p[j] != '\n' && !(relaxed && is_wsp(p[j])))
				j++;
			content(b, p + i, j - i);
			i = j;
		}
	}
}

void
dkim_body_final(struct dkim_body *b, unsigned char hash[DKIM_HASH_LEN])
{
	unsigned len = 0;

	if (b->cr) {
		b->cr = false;
		content(b, "\r", 1);
	}
	/* The last line's end, whether it had one or not (canonicalization adds it); trailing
	 * empty lines go. An empty body is CRLF for simple (§3.4.3), nothing for relaxed
	 * (§3.4.4). */
	if (b->inline_ || b->any || b->canon == DKIM_CANON_SIMPLE)
		emit(b, "\r\n", 2);
	flush(b);
	if (EVP_DigestFinal_ex(b->md, hash, &len) != 1 || len != DKIM_HASH_LEN)
		fatal("dkim: SHA-256 failed");
}
