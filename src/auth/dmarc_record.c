/* dmarc_record.c - DMARC policy records (RFC 7489 §6.3, §6.4): which TXT records are DMARC
 * records, and their tags, read strictly. One leniency, the one §6.6.3 asks for: a record whose
 * p= (or sp=) is missing or invalid still means p=none when its rua= is usable, so that its
 * owner keeps receiving the reports that would show the mistake. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth/dmarc_internal.h"
#include "core/core.h"

enum tag {
	T_P,
	T_SP,
	T_ADKIM,
	T_ASPF,
	T_PCT,
	T_RI,
	T_FO,
	T_RF,
	T_RUA,
	T_RUF,
};

static const char *const tag_names[] = {
    [T_P] = "p",   [T_SP] = "sp", [T_ADKIM] = "adkim", [T_ASPF] = "aspf", [T_PCT] = "pct",
    [T_RI] = "ri", [T_FO] = "fo", [T_RF] = "rf",       [T_RUA] = "rua",   [T_RUF] = "ruf",
};

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

size_t
dmarc_version_len(const char *t, size_t len)
{
	size_t i = 0;

	if (len == 0 || (t[0] != 'v' && t[0] != 'V'))
		return 0;
	for (i = 1; i < len && is_wsp(t[i]); i++)
		;
	if (i >= len || t[i] != '=')
		return 0;
	for (i++; i < len && is_wsp(t[i]); i++)
		;
	/* §6.3: "The value of this tag MUST match precisely": DMARC1 in capitals. */
	if (len - i < 6 || memcmp(t + i, "DMARC1", 6) != 0)
		return 0;
	i += 6;
	if (i < len && t[i] != ';' && !is_wsp(t[i]))
		return 0;
	return i;
}

/* A tag as written, for messages: cut, and with octets outside printable ASCII shown as '?'
 * so that a hostile record cannot put control characters into a log line. */
static void
show(char *out, size_t size, const char *s, size_t n)
{
	size_t o = 0, max = 60;

	for (size_t i = 0; i < n && o + 4 < size; i++) {
		if (i == max) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		unsigned char c = (unsigned char)s[i];
		out[o++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
	}
	out[o] = '\0';
}

static void __attribute__((format(printf, 3, 4))) say(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;

	if (buf == NULL || size == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, size, fmt, ap);
	va_end(ap);
}

/* One of the words, case-insensitively (§6.4's literals are ABNF strings). */
static int
word(const char *v, size_t n, const char *const *words, size_t nwords)
{
	for (size_t i = 0; i < nwords; i++)
		if (ascii_caseeq(v, n, words[i], strlen(words[i])))
			return (int)i;
	return -1;
}

static const char *
parse_policy(const char *v, size_t n, enum dmarc_p *p)
{
	static const char *const names[] = {"none", "quarantine", "reject"};
	int w = word(v, n, names, nitems(names));

	if (w < 0)
		return "must be none, quarantine or reject";
	*p = (enum dmarc_p)w;
	return NULL;
}

static const char *
parse_align(const char *v, size_t n, enum dmarc_align *a)
{
	static const char *const names[] = {"r", "s"};
	int w = word(v, n, names, nitems(names));

	if (w < 0)
		return "must be r (relaxed) or s (strict)";
	*a = w == 0 ? DMARC_ALIGN_RELAXED : DMARC_ALIGN_STRICT;
	return NULL;
}

static const char *
parse_number(const char *v, size_t n, uint64_t max, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0)
		return "must be a number";
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(v[i]))
			return "must be a number";
		x = x * 10 + (uint64_t)(v[i] - '0');
		if (x > max)
			return NULL; /* the caller names the range */
	}
	*out = x;
	return NULL;
}

static const char *
parse_pct(const char *v, size_t n, unsigned *pct)
{
	uint64_t x = UINT64_MAX;
	const char *why = parse_number(v, n, 100, &x);

	if (why != NULL)
		return why;
	if (x > 100 || n > 3) /* §6.4: 1*3DIGIT */
		return "must be a percentage from 0 to 100";
	*pct = (unsigned)x;
	return NULL;
}

static const char *
parse_ri(const char *v, size_t n, uint32_t *ri)
{
	uint64_t x = UINT64_MAX;
	const char *why = parse_number(v, n, UINT32_MAX, &x);

	if (why != NULL)
		return why;
	if (x > UINT32_MAX)
		return "must be a number of seconds of at most 4294967295";
	*ri = (uint32_t)x;
	return NULL;
}

/* Items separated by ':' with white space around them (fo=, rf=). */
static bool
next_item(const char *v, size_t n, size_t *pos, const char **item, size_t *len)
{
	size_t i = *pos, end;

	if (i > n)
		return false;
	end = i;
	while (end < n && v[end] != ':')
		end++;
	*item = v + i;
	*len = end - i;
	while (*len > 0 && is_wsp((*item)[0])) {
		(*item)++;
		(*len)--;
	}
	while (*len > 0 && is_wsp((*item)[*len - 1]))
		(*len)--;
	*pos = end + 1;
	return true;
}

static const char *
parse_fo(const char *v, size_t n, unsigned *fo)
{
	static const char *const names[] = {"0", "1", "d", "s"};
	const char *item;
	size_t len, pos = 0;
	unsigned bits = 0;

	while (next_item(v, n, &pos, &item, &len)) {
		int w = word(item, len, names, nitems(names));

		if (w < 0)
			return "must be a ':'-separated list of 0, 1, d and s";
		bits |= 1u << w;
	}
	*fo = bits;
	return NULL;
}

static const char *
parse_rf(const char *v, size_t n, bool *afrf)
{
	const char *item;
	size_t len, pos = 0;
	bool any = false;

	while (next_item(v, n, &pos, &item, &len)) {
		/* RFC 5321 Keyword (Ldh-str): letters, digits, '-', not ending in '-'. */
		if (len == 0 || item[len - 1] == '-')
			return "must be a ':'-separated list of format names";
		for (size_t i = 0; i < len; i++)
			if (!is_alpha(item[i]) && !is_digit(item[i]) && item[i] != '-')
				return "must be a ':'-separated list of format names";
		/* §6.3: a format not in the registry SHOULD be ignored, not the record. */
		if (ascii_caseeq(item, len, "afrf", 4))
			any = true;
	}
	*afrf = any;
	return NULL;
}

static bool
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986: unreserved, reserved (less ',' and '!', which §6.2 wants percent-encoded, and ';',
 * the tag separator), or '%' HEXDIG HEXDIG. */
static bool
uri_char(const char *u, size_t n, size_t *i)
{
	char c = u[*i];

	if (c == '%') {
		if (*i + 2 >= n || !is_hex(u[*i + 1]) || !is_hex(u[*i + 2]))
			return false;
		*i += 3;
		return true;
	}
	if (is_alpha(c) || is_digit(c) || (c != '\0' && strchr("-._~:/?#[]@$&'()*+=", c) != NULL)) {
		(*i)++;
		return true;
	}
	return false;
}

/* dmarc-uri = URI [ "!" 1*DIGIT [ "k" / "m" / "g" / "t" ] ] */
static const char *
check_uri(const char *u, size_t n)
{
	const char *bang = memchr(u, '!', n);
	size_t ulen = bang != NULL ? (size_t)(bang - u) : n, i;

	if (bang != NULL) {
		size_t s = ulen + 1, digits = 0;

		while (s < n && is_digit(u[s])) {
			s++;
			digits++;
		}
		if (s < n && u[s] != '\0' && strchr("kmgtKMGT", u[s]) != NULL)
			s++;
		if (digits == 0 || s != n)
			return "a size limit after '!' is digits and one of k, m, g, t";
	}
	if (ulen == 0 || !is_alpha(u[0]))
		return "not a URI (scheme:...)";
	for (i = 1; i < ulen && u[i] != ':'; i++)
		if (!is_alpha(u[i]) && !is_digit(u[i]) && u[i] != '+' && u[i] != '-' && u[i] != '.')
			return "not a URI (scheme:...)";
	if (i >= ulen)
		return "not a URI (scheme:...)";
	if (++i >= ulen)
		return "a URI with nothing after its scheme";
	while (i < ulen)
		if (!uri_char(u, ulen, &i))
			return "a character a URI cannot hold (',' and '!' must be %-encoded)";
	return NULL;
}

/* dmarc-uri *(*WSP "," *WSP dmarc-uri) */
static const char *
parse_uris(const char *v, size_t n, unsigned *count, char *keep, size_t keepsize)
{
	size_t pos = 0;
	unsigned c = 0;

	if (n == 0)
		return "must list at least one URI";
	while (pos <= n) {
		size_t end = pos, s, e;

		while (end < n && v[end] != ',')
			end++;
		for (s = pos; s < end && is_wsp(v[s]); s++)
			;
		for (e = end; e > s && is_wsp(v[e - 1]); e--)
			;
		if (s == e)
			return "an empty URI in the list";
		const char *why = check_uri(v + s, e - s);
		if (why != NULL)
			return why;
		c++;
		pos = end + 1;
	}
	*count = c;
	if (n < keepsize) {
		memcpy(keep, v, n);
		keep[n] = '\0';
	} else {
		memcpy(keep, v, keepsize - 4);
		memcpy(keep + keepsize - 4, "...", 4);
	}
	return NULL;
}

/* DKIM tag-name (§6.4 takes DKIM's tag-list syntax): ALPHA *(ALPHA / DIGIT / "_"). */
static bool
tag_name_ok(const char *s, size_t n)
{
	if (n == 0 || !is_alpha(s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_')
			return false;
	return true;
}

static void
record_defaults(struct dmarc_record *rec)
{
	*rec = (struct dmarc_record){
	    .p = DMARC_P_NONE,
	    .sp = DMARC_P_NONE,
	    .adkim = DMARC_ALIGN_RELAXED,
	    .aspf = DMARC_ALIGN_RELAXED,
	    .pct = DMARC_PCT_DEFAULT,
	    .ri = DMARC_RI_DEFAULT,
	    .fo = DMARC_FO_0,
	    .rf_afrf = true,
	};
}

int
dmarc_record_parse(const char *text, size_t len, struct dmarc_record *rec, char *err, size_t errlen)
{
	char first[200] = "", perr[200] = "", sperr[200] = "", shown[72];
	unsigned seen = 0, ntag = 1;
	size_t pos;
	bool has_p = false;

	record_defaults(rec);
	say(err, errlen, "%s", "");
	if ((pos = dmarc_version_len(text, len)) == 0)
		return 0;
	while (pos < len && is_wsp(text[pos]))
		pos++;
	if (pos < len && text[pos] != ';') {
		say(err, errlen, "v=DMARC1 must be followed by \";\" (RFC 7489 §6.4)");
		return -1;
	}
	while (pos < len) {
		size_t start = ++pos, end = start, s, e, eq;

		while (end < len && text[end] != ';')
			end++;
		pos = end;
		for (s = start; s < end && is_wsp(text[s]); s++)
			;
		for (e = end; e > s && is_wsp(text[e - 1]); e--)
			;
		if (s == e)
			continue; /* ";;" or a final "; ": nothing is said, nothing is lost */
		ntag++;
		show(shown, sizeof(shown), text + s, e - s);
		for (eq = s; eq < e && text[eq] != '='; eq++)
			;
		size_t ne = eq, vs = eq + 1;
		while (ne > s && is_wsp(text[ne - 1]))
			ne--;
		while (vs < e && is_wsp(text[vs]))
			vs++;
		if (eq == e || !tag_name_ok(text + s, ne - s)) {
			if (first[0] == '\0')
				snprintf(first, sizeof(first), "tag %u \"%s\": %s", ntag, shown,
				         eq == e ? "not name=value" : "not a tag name");
			continue;
		}
		const char *v = text + vs;
		size_t vn = vs <= e ? e - vs : 0;
		int t = word(text + s, ne - s, tag_names, nitems(tag_names));
		const char *why = NULL;
		char *slot = first;

		if (t < 0)
			continue; /* §6.3: unknown tags MUST be ignored */
		if (t == T_P || t == T_SP)
			slot = t == T_P ? perr : sperr;
		if (seen & (1u << t)) {
			why = "given twice";
		} else {
			seen |= 1u << t;
			switch ((enum tag)t) {
			case T_P:
				why = parse_policy(v, vn, &rec->p);
				has_p = why == NULL;
				break;
			case T_SP:
				why = parse_policy(v, vn, &rec->sp);
				rec->sp_given = why == NULL;
				break;
			case T_ADKIM:
				why = parse_align(v, vn, &rec->adkim);
				break;
			case T_ASPF:
				why = parse_align(v, vn, &rec->aspf);
				break;
			case T_PCT:
				why = parse_pct(v, vn, &rec->pct);
				break;
			case T_RI:
				why = parse_ri(v, vn, &rec->ri);
				break;
			case T_FO:
				why = parse_fo(v, vn, &rec->fo);
				break;
			case T_RF:
				why = parse_rf(v, vn, &rec->rf_afrf);
				break;
			case T_RUA:
				why = parse_uris(v, vn, &rec->nrua, rec->rua, sizeof(rec->rua));
				break;
			case T_RUF:
				why = parse_uris(v, vn, &rec->nruf, rec->ruf, sizeof(rec->ruf));
				break;
			}
		}
		if (why != NULL && slot[0] == '\0')
			snprintf(slot, sizeof(first), "tag %u \"%s\": %s= %s", ntag, shown,
			         tag_names[t], why);
	}
	if (first[0] != '\0') {
		say(err, errlen, "%s", first);
		goto bad;
	}
	if (!has_p && perr[0] == '\0')
		snprintf(perr, sizeof(perr), "p= is missing (RFC 7489 §6.3: required)");
	if (perr[0] != '\0' || sperr[0] != '\0') {
		const char *why = perr[0] != '\0' ? perr : sperr;

		if (rec->nrua == 0) {
			say(err, errlen, "%s", why);
			goto bad;
		}
		say(err, errlen, "%s: read as p=none because rua= is valid (RFC 7489 §6.6.3)", why);
		rec->p = rec->sp = DMARC_P_NONE;
		rec->sp_given = false;
		rec->p_fallback = true;
		return 1;
	}
	if (!rec->sp_given)
		rec->sp = rec->p;
	return 1;
bad:
	record_defaults(rec); /* nothing half-read is left for a caller to trust */
	return -1;
}
