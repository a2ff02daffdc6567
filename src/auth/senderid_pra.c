/* senderid_pra.c - the Purported Responsible Address of a message (RFC 4407 §2): which header
 * field names the party responsible for the latest transmission, and its one mailbox.
 *
 * The mailbox is read with RFC 5322's grammar (§3.4, with the obsolete forms of §4.4 that
 * old mailers still write: CFWS around dots, a source route), as tokens: comments and folding
 * white space disappear, quoted strings stay whole. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/spf_internal.h"
#include "core/core.h"

/* Fields looked at per message, and tokens per field value: the PRA is among the first
 * fields of any real message, and a mailbox is a few dozen tokens. */
#define PRA_FIELDS_MAX 1000
#define PRA_TOKENS_MAX 512
#define PRA_VALUE_MAX  8192 /* a field's value, unfolded */

struct field {
	const char *name;
	size_t nlen;
	const char *value; /* raw, folding included, up to the line end */
	size_t vlen;
};

enum tok_kind { T_ATOM, T_QSTRING, T_DLITERAL, T_SPECIAL };

struct token {
	enum tok_kind kind;
	const char *s; /* into the unfolded value */
	size_t n;
};

static int __attribute__((format(printf, 3, 4)))
pra_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* The fields of the header section: up to the first empty line. Returns how many. */
static size_t
fields_read(const char *h, size_t len, struct field *out, size_t max)
{
	size_t i = 0, n = 0;

	while (i < len && n < max) {
		size_t start = i, colon, eol;

		if (h[i] == '\n' || (h[i] == '\r' && i + 1 < len && h[i + 1] == '\n'))
			break; /* the empty line: the body follows */
		/* The field: this line and the continuation lines after it (RFC 5322 §2.2.3). */
		for (eol = i; eol < len; eol++) {
			if (h[eol] == '\n' &&
			    !(eol + 1 < len && (h[eol + 1] == ' ' || h[eol + 1] == '\t')))
				break;
		}
		i = eol < len ? eol + 1 : len;
		if (h[start] == ' ' || h[start] == '\t')
			continue; /* a continuation with no field before it */
		for (colon = start; colon < eol && h[colon] != ':' && h[colon] != '\n'; colon++)
			;
		if (colon >= eol || h[colon] != ':')
			continue; /* not a field: no name */
		out[n].name = h + start;
		out[n].nlen = colon - start;
		/* obs-optional: white space between the name and the colon */
		while (out[n].nlen > 0 && (out[n].name[out[n].nlen - 1] == ' ' ||
		                           out[n].name[out[n].nlen - 1] == '\t'))
			out[n].nlen--;
		out[n].value = h + colon + 1;
		out[n].vlen = eol - colon - 1;
		n++;
	}
	return n;
}

static bool
field_is(const struct field *f, const char *name)
{
	return f->nlen == strlen(name) && strncasecmp(f->name, name, f->nlen) == 0;
}

static bool
is_atext(unsigned char c)
{
	/* RFC 5322 §3.2.3, and any 8-bit octet (UTF-8 display names, RFC 6532). */
	return isalnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL) || c >= 0x80;
}

/* Unfolds value into buf and splits it into tokens. -1 if malformed (an unterminated comment,
 * quoted string or domain literal; a character no mailbox holds), with why. */
static int
tokenize(const struct field *f, char *buf, struct token *tok, size_t *ntok, const char **why)
{
	size_t n = 0, len = 0;

	for (size_t i = 0; i < f->vlen && len < PRA_VALUE_MAX; i++) {
		unsigned char c = (unsigned char)f->value[i];

		if (c == '\r' || c == '\n')
			continue; /* unfolding */
		/* RFC 5322 allows no control characters in a mailbox (nor NUL anywhere). */
		if ((c < 0x20 && c != '\t') || c == 0x7f) {
			*why = "a control character";
			return -1;
		}
		buf[len++] = (char)c;
	}
	*ntok = 0;
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)buf[i];
		size_t start = i;

		if (c == ' ' || c == '\t') {
			i++;
			continue;
		}
		if (c == '(') {
			int depth = 0;

			for (; i < len; i++) {
				if (buf[i] == '\\' && i + 1 < len)
					i++;
				else if (buf[i] == '(')
					depth++;
				else if (buf[i] == ')' && --depth == 0)
					break;
			}
			if (i >= len) {
				*why = "an unterminated comment";
				return -1;
			}
			i++;
			continue;
		}
		if (n == PRA_TOKENS_MAX) {
			*why = "too many words for one mailbox";
			return -1;
		}
		if (c == '"' || c == '[') {
			char close = c == '"' ? '"' : ']';

			for (i++; i < len && buf[i] != close; i++)
				if (buf[i] == '\\' && i + 1 < len)
					i++;
			if (i >= len) {
				*why = c == '"' ? "an unterminated quoted string"
				                : "an unterminated domain literal";
				return -1;
			}
			i++;
			tok[n++] = (struct token){c == '"' ? T_QSTRING : T_DLITERAL, buf + start,
			                          i - start};
			continue;
		}
		if (strchr("<>@,;:.", c) != NULL) {
			tok[n++] = (struct token){T_SPECIAL, buf + i, 1};
			i++;
			continue;
		}
		if (!is_atext(c)) {
			*why = "a character no address holds";
			return -1;
		}
		while (i < len && is_atext((unsigned char)buf[i]))
			i++;
		tok[n++] = (struct token){T_ATOM, buf + start, i - start};
	}
	*ntok = n;
	return 0;
}

static bool
special(const struct token *t, char c)
{
	return t->kind == T_SPECIAL && t->s[0] == c;
}

/* addr-spec = local-part "@" domain, from tokens [i, end): local-part is words joined by dots,
 * domain a dot-atom (a domain literal is not a domain name, RFC 4407 §2 step 5). */
static int
addr_spec(const struct token *t, size_t i, size_t end, char *out, size_t size, const char **why)
{
	size_t o = 0, at;

	for (at = i; at < end && !special(&t[at], '@'); at++)
		;
	if (at == end) {
		*why = "an address without \"@domain\"";
		return -1;
	}
	if (at == i) {
		*why = "an address without a local-part";
		return -1;
	}
	/* local-part: word *( "." word ) */
	for (size_t k = i; k < at; k++) {
		bool want_word = (k - i) % 2 == 0;

		if (want_word ? (t[k].kind != T_ATOM && t[k].kind != T_QSTRING)
		              : !special(&t[k], '.')) {
			*why = "a malformed local-part";
			return -1;
		}
	}
	if ((at - i) % 2 == 0) {
		*why = "a local-part ending with a dot";
		return -1;
	}
	if (at + 1 < end && t[at + 1].kind == T_DLITERAL) {
		*why = "a domain literal, not a domain name";
		return -1;
	}
	/* domain: atom *( "." atom ) */
	if (at + 1 == end || (end - at - 1) % 2 == 0) {
		*why = "a malformed domain";
		return -1;
	}
	for (size_t k = at + 1; k < end; k++) {
		bool want_atom = (k - at - 1) % 2 == 0;

		if (want_atom ? t[k].kind != T_ATOM : !special(&t[k], '.')) {
			*why = "a malformed domain";
			return -1;
		}
	}
	for (size_t k = i; k < end; k++) {
		if (o + t[k].n >= size) {
			*why = "an address too long to be one";
			return -1;
		}
		memcpy(out + o, t[k].s, t[k].n);
		o += t[k].n;
	}
	out[o] = '\0';
	return 0;
}

/* The field's one mailbox: name-addr ([display-name] "<" [obs-route] addr-spec ">") or a bare
 * addr-spec. More than one mailbox, a group, or no domain: -1. */
static int
one_mailbox(const struct field *f, struct senderid_pra *pra, char *err, size_t errlen)
{
	char *buf = xmalloc(PRA_VALUE_MAX + 1);
	struct token *t = xcalloc(PRA_TOKENS_MAX, sizeof(*t));
	size_t n, lt = SIZE_MAX, gt = SIZE_MAX, first = SIZE_MAX, end;
	const char *why = NULL;
	int rc = -1;

	if (tokenize(f, buf, t, &n, &why) == -1)
		goto out;
	/* obs-mbox-list allows empty elements: leading and trailing commas are not mailboxes */
	for (first = 0; first < n && special(&t[first], ','); first++)
		;
	for (end = n; end > first && special(&t[end - 1], ','); end--)
		;
	for (size_t k = first; k < end; k++) {
		if (special(&t[k], '<') && lt == SIZE_MAX)
			lt = k;
		else if (special(&t[k], '>') && lt != SIZE_MAX && gt == SIZE_MAX)
			gt = k;
		else if (lt == SIZE_MAX || gt != SIZE_MAX) {
			/* outside the angle brackets */
			if (special(&t[k], ',') || special(&t[k], '<') || special(&t[k], '>')) {
				why = "more than one mailbox";
				goto out;
			}
			if (special(&t[k], ':') || special(&t[k], ';')) {
				why = "a group, not a mailbox";
				goto out;
			}
		}
	}
	if (first == end) {
		why = "no mailbox";
		goto out;
	}
	if (lt != SIZE_MAX) {
		size_t i = lt + 1;

		if (gt == SIZE_MAX || gt + 1 != end) {
			why = gt == SIZE_MAX ? "a '<' without its '>'" : "words after the address";
			goto out;
		}
		/* obs-route: "@a,@b:" before the address */
		if (i < gt && special(&t[i], '@')) {
			while (i < gt && !special(&t[i], ':'))
				i++;
			if (i == gt) {
				why = "a malformed source route";
				goto out;
			}
			i++;
		}
		for (size_t k = first; k < lt; k++) {
			if (t[k].kind == T_SPECIAL && !special(&t[k], '.')) {
				why = "a malformed display name";
				goto out;
			}
		}
		rc = addr_spec(t, i, gt, pra->address, sizeof(pra->address), &why);
	} else
		rc = addr_spec(t, first, end, pra->address, sizeof(pra->address), &why);
out:
	if (rc == -1)
		pra_error(err, errlen, "%.*s: %s", (int)f->nlen, f->name, why);
	free(buf);
	free(t);
	return rc;
}

/* Non-empty: something other than white space and comments. */
static bool
nonempty(const struct field *f)
{
	int depth = 0;

	for (size_t i = 0; i < f->vlen; i++) {
		char c = f->value[i];

		if (depth > 0) {
			if (c == '\\')
				i++;
			else if (c == '(')
				depth++;
			else if (c == ')')
				depth--;
			continue;
		}
		if (c == '(')
			depth++;
		else if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
			return true;
	}
	return false;
}

static size_t
first_of(const struct field *fs, size_t n, const char *name, size_t from, size_t *count)
{
	size_t found = SIZE_MAX;

	if (count != NULL)
		*count = 0;
	for (size_t i = from; i < n; i++) {
		if (!field_is(&fs[i], name) || !nonempty(&fs[i]))
			continue;
		if (found == SIZE_MAX)
			found = i;
		if (count != NULL)
			(*count)++;
	}
	return found;
}

int
senderid_pra(const char *headers, size_t len, struct senderid_pra *pra, char *err, size_t errlen)
{
	struct field *fs = xcalloc(PRA_FIELDS_MAX, sizeof(*fs));
	size_t n = fields_read(headers, len, fs, PRA_FIELDS_MAX);
	size_t sel = SIZE_MAX, rs, rf, count;
	const char *name = NULL;
	int rc;

	memset(pra, 0, sizeof(*pra));
	/* Step 1: the first non-empty Resent-Sender, unless a Resent-From above it is separated
	 * from it by trace fields: it then belongs to an older resending. */
	rs = first_of(fs, n, "Resent-Sender", 0, NULL);
	if (rs != SIZE_MAX) {
		bool older = false;

		rf = first_of(fs, n, "Resent-From", 0, NULL);
		for (size_t i = rf; rf < rs && i < rs && !older; i++)
			older = field_is(&fs[i], "Received") || field_is(&fs[i], "Return-Path");
		if (!older) {
			sel = rs;
			name = "Resent-Sender";
		}
	}
	/* Step 2: the first non-empty Resent-From. */
	if (sel == SIZE_MAX && (rf = first_of(fs, n, "Resent-From", 0, NULL)) != SIZE_MAX) {
		sel = rf;
		name = "Resent-From";
	}
	/* Step 3: the Sender field, if exactly one. */
	if (sel == SIZE_MAX) {
		size_t s = first_of(fs, n, "Sender", 0, &count);

		if (count > 1) {
			rc =
			    pra_error(err, errlen, "%zu Sender fields (RFC 4407 §2 step 3)", count);
			goto out;
		}
		if (count == 1) {
			sel = s;
			name = "Sender";
		}
	}
	/* Step 4: the From field, if exactly one. */
	if (sel == SIZE_MAX) {
		size_t s = first_of(fs, n, "From", 0, &count);

		if (count == 0) {
			rc = pra_error(err, errlen,
			               "no Resent-Sender, Resent-From, Sender or From field");
			goto out;
		}
		if (count > 1) {
			rc = pra_error(err, errlen, "%zu From fields (RFC 4407 §2 step 4)", count);
			goto out;
		}
		sel = s;
		name = "From";
	}
	/* Step 5: exactly one well-formed mailbox with a domain. */
	strlcpy_s(pra->header, name, sizeof(pra->header));
	rc = one_mailbox(&fs[sel], pra, err, errlen);
	if (rc == -1)
		pra->address[0] = '\0';
out:
	free(fs);
	return rc;
}
