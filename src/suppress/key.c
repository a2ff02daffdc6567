/* key.c - what an entry looks like on disk: the normalised address, the key, the record;
 * and the names and times the CLI and imports read. Pure functions: no I/O, no clock.
 *
 * Key: tenant octets, NUL, normalised address. The NUL sorts a tenant's entries together
 * and ahead of any longer tenant name sharing its prefix, so a tenant's entries are one
 * contiguous key range (list, export) and the global ones (tenant "") come first.
 * Record (version 1, little-endian): u8 version | u8 reason | u16 source length |
 * u64 added_us | u64 expires_us | source octets. 20 octets plus the source: a million
 * entries with short sources fit in ~100 MB of map.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/core.h"
#include "suppress/suppress_private.h"

static const char *const reason_names[SUPPRESS_REASON_COUNT] = {
    [SUPPRESS_HARD_BOUNCE] = "hard-bounce", [SUPPRESS_COMPLAINT] = "complaint",
    [SUPPRESS_UNSUBSCRIBE] = "unsubscribe", [SUPPRESS_MANUAL] = "manual",
    [SUPPRESS_IMPORT] = "import",
};

/* ASCII only, whatever the locale: under a Latin-1 locale tolower() would change octets of
 * UTF-8 sequences, and the same address would make different keys in different processes. */
static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool
alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

const char *
suppress_reason_name(enum suppress_reason r)
{
	return (unsigned)r < SUPPRESS_REASON_COUNT ? reason_names[r] : "unknown";
}

int
suppress_reason_parse(const char *text, enum suppress_reason *r)
{
	char buf[32];
	size_t i;

	for (i = 0; text[i] != '\0' && i < sizeof(buf) - 1; i++)
		buf[i] = text[i] == '_' ? '-' : lower(text[i]);
	if (text[i] != '\0')
		return -1;
	buf[i] = '\0';
	/* "bounce" is what other systems' exports call a hard bounce: soft bounces are never
	 * suppressed, so there is nothing else it could mean. */
	if (strcmp(buf, "bounce") == 0 || strcmp(buf, "hardbounce") == 0) {
		*r = SUPPRESS_HARD_BOUNCE;
		return 0;
	}
	for (unsigned k = 0; k < SUPPRESS_REASON_COUNT; k++) {
		if (strcmp(buf, reason_names[k]) == 0) {
			*r = (enum suppress_reason)k;
			return 0;
		}
	}
	return -1;
}

const char *
suppress_status_str(enum suppress_status s)
{
	switch (s) {
	case SUPPRESS_OK:
		return "ok";
	case SUPPRESS_NOT_FOUND:
		return "no such entry";
	case SUPPRESS_INVALID:
		return "invalid entry";
	case SUPPRESS_FULL:
		return "suppression list full";
	case SUPPRESS_IO_ERROR:
		return "suppression list I/O error";
	}
	return "unknown status";
}

/* ---- addresses ---- */

/* The length of the well-formed UTF-8 sequence at p (at most left octets), 0 if there is
 * none: no overlong forms, no surrogates, nothing past U+10FFFF (RFC 3629). */
static size_t
utf8_len(const unsigned char *p, size_t left)
{
	size_t n;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

/* True if p[0..n) is well-formed UTF-8 (SMTPUTF8 addresses are; anything else would be
 * unprintable in listings and refused by JSON). */
static bool
utf8_valid(const char *p, size_t n)
{
	for (size_t i = 0, k; i < n; i += k)
		if ((k = utf8_len((const unsigned char *)p + i, n - i)) == 0)
			return false;
	return true;
}

/* RFC 5322 atext and '.', plus any octet of a UTF-8 sequence (RFC 6531 SMTPUTF8). */
static bool
local_char(unsigned char c)
{
	return alnum(c) || c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~.", c) != NULL);
}

/* Host names, address literals ("[192.0.2.1]", "[IPv6:...]"), U-labels. '_' is not in
 * host names, but it is in real domains' records and refusing it would refuse real mail. */
static bool
domain_char(unsigned char c)
{
	return alnum(c) || c >= 0x80 || c == '-' || c == '.' || c == '_' || c == '[' || c == ']' ||
	       c == ':';
}

int
suppress_address_normalize(const char *address, bool fold_local, char *out, size_t outlen,
                           const char **why)
{
	const char *p = address, *end, *at;
	const char *dummy;
	size_t llen, dlen;
	bool quoted;

	if (why == NULL)
		why = &dummy;
	*why = NULL;
	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end - p >= 2 && *p == '<' && end[-1] == '>') {
		p++;
		end--;
	}
	if (p == end) {
		*why = "empty address";
		return -1;
	}
	if ((size_t)(end - p) > SUPPRESS_ADDRESS_MAX) {
		*why = "address longer than 320 octets";
		return -1;
	}
	for (at = end; at > p && at[-1] != '@'; at--)
		;
	if (at == p) {
		*why = "no '@' in the address";
		return -1;
	}
	at--; /* the last '@' */
	llen = (size_t)(at - p);
	/* Trailing dots: "example.com." is the same domain written as fully qualified. */
	while (end > at + 1 && end[-1] == '.')
		end--;
	dlen = (size_t)(end - at - 1);
	if (dlen == 0) {
		*why = "no domain after '@'";
		return -1;
	}
	for (size_t i = 0; i < dlen; i++) {
		if (!domain_char((unsigned char)at[1 + i])) {
			*why = "character not allowed in a domain";
			return -1;
		}
	}
	if (!utf8_valid(p, (size_t)(end - p))) {
		*why = "invalid UTF-8 in the address";
		return -1;
	}
	quoted = llen >= 2 && p[0] == '"' && p[llen - 1] == '"';
	for (size_t i = 0; i < llen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c < 0x20 || c == 0x7f) {
			*why = "control character in the address";
			return -1;
		}
		if (!quoted && !local_char(c)) {
			*why = c == ' ' ? "space in an unquoted local part"
			                : "character not allowed in an unquoted local part";
			return -1;
		}
	}
	if (llen + 1 + dlen + 1 > outlen) {
		*why = "address too long";
		return -1;
	}
	for (size_t i = 0; i < llen; i++)
		out[i] = fold_local ? lower(p[i]) : p[i];
	out[llen] = '@';
	for (size_t i = 0; i < dlen; i++)
		out[llen + 1 + i] = lower(at[1 + i]);
	out[llen + 1 + dlen] = '\0';
	return (int)(llen + 1 + dlen);
}

bool
suppress_tenant_valid(const char *tenant)
{
	size_t i;

	for (i = 0; tenant[i] != '\0'; i++)
		if (i >= SUPPRESS_TENANT_MAX || tenant[i] < 0x21 || tenant[i] > 0x7e)
			return false;
	return true;
}

int
suppress_key(uint8_t key[SUPPRESS_KEY_MAX], const char *tenant, const char *norm)
{
	size_t tlen, alen = strlen(norm);

	if (tenant == NULL)
		tenant = "";
	if (!suppress_tenant_valid(tenant) || alen > SUPPRESS_ADDRESS_MAX)
		return -1;
	tlen = strlen(tenant);
	memcpy(key, tenant, tlen);
	key[tlen] = '\0';
	memcpy(key + tlen + 1, norm, alen);
	return (int)(tlen + 1 + alen);
}

/* ---- records ---- */

static void
put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

size_t
suppress_record_encode(uint8_t val[SUPPRESS_VALUE_MAX], enum suppress_reason reason,
                       uint64_t added_us, uint64_t expires_us, const char *source)
{
	size_t n = source != NULL ? strlen(source) : 0;

	if (n > SUPPRESS_SOURCE_MAX) {
		n = SUPPRESS_SOURCE_MAX;
		/* Not in the middle of a UTF-8 sequence: the cut text stays valid UTF-8. */
		while (n > 0 && ((unsigned char)source[n] & 0xc0) == 0x80)
			n--;
	}
	val[0] = SUPPRESS_RECORD_VERSION;
	val[1] = (uint8_t)reason;
	val[2] = (uint8_t)n;
	val[3] = (uint8_t)(n >> 8);
	put_u64(val + 4, added_us);
	put_u64(val + 12, expires_us);
	for (size_t i = 0, k; i < n; i += k) {
		const unsigned char *c = (const unsigned char *)source + i;
		uint8_t *o = val + SUPPRESS_RECORD_HEAD + i;

		/* One line per entry in listings and exports: a multi-line bounce reply is
		 * kept as one line. Stray 8-bit octets (a reply in some legacy charset)
		 * become '?', so that the text is always valid UTF-8. */
		if ((k = utf8_len(c, n - i)) == 0) {
			*o = '?';
			k = 1;
		} else if (k == 1)
			*o = *c < 0x20 || *c == 0x7f ? ' ' : *c;
		else
			memcpy(o, c, k);
	}
	return SUPPRESS_RECORD_HEAD + n;
}

uint64_t
suppress_record_expiry(const MDB_val *val)
{
	if (val->mv_size < SUPPRESS_RECORD_HEAD)
		return 0;
	return get_u64((const uint8_t *)val->mv_data + 12);
}

int
suppress_record_decode(const MDB_val *key, const MDB_val *val, struct suppress_entry *e)
{
	const uint8_t *k = key->mv_data, *v = val->mv_data, *nul;
	size_t tlen, alen, slen;

	nul = key->mv_size > 0 ? memchr(k, '\0', key->mv_size) : NULL;
	if (nul == NULL)
		return -1;
	tlen = (size_t)(nul - k);
	alen = key->mv_size - tlen - 1;
	if (tlen > SUPPRESS_TENANT_MAX || alen == 0 || alen > SUPPRESS_ADDRESS_MAX ||
	    memchr(nul + 1, '\0', alen) != NULL)
		return -1;
	if (val->mv_size < SUPPRESS_RECORD_HEAD || v[0] != SUPPRESS_RECORD_VERSION ||
	    v[1] >= SUPPRESS_REASON_COUNT)
		return -1;
	slen = (size_t)v[2] | (size_t)v[3] << 8;
	if (slen > SUPPRESS_SOURCE_MAX || val->mv_size != SUPPRESS_RECORD_HEAD + slen ||
	    memchr(v + SUPPRESS_RECORD_HEAD, '\0', slen) != NULL)
		return -1;
	memcpy(e->tenant, k, tlen);
	e->tenant[tlen] = '\0';
	memcpy(e->address, nul + 1, alen);
	e->address[alen] = '\0';
	e->reason = (enum suppress_reason)v[1];
	e->added_us = get_u64(v + 4);
	e->expires_us = get_u64(v + 12);
	memcpy(e->source, v + SUPPRESS_RECORD_HEAD, slen);
	e->source[slen] = '\0';
	return 0;
}

enum suppress_status
suppress_prepare(struct suppress *list, const struct suppress_record *rec,
                 uint8_t key[SUPPRESS_KEY_MAX], size_t *klen, uint8_t val[SUPPRESS_VALUE_MAX],
                 size_t *vlen, char *err, size_t errlen)
{
	char norm[SUPPRESS_ADDRESS_MAX + 1];
	const char *why;
	int n;

	if (rec->address == NULL || suppress_address_normalize(rec->address, !list->local_exact,
	                                                       norm, sizeof(norm), &why) < 0) {
		if (err != NULL)
			snprintf(err, errlen, "\"%.100s\": %s", rec->address ? rec->address : "",
			         rec->address ? why : "no address");
		return SUPPRESS_INVALID;
	}
	if ((unsigned)rec->reason >= SUPPRESS_REASON_COUNT) {
		if (err != NULL)
			snprintf(err, errlen, "%s: unknown reason %d", norm, (int)rec->reason);
		return SUPPRESS_INVALID;
	}
	if ((n = suppress_key(key, rec->tenant, norm)) < 0) {
		if (err != NULL)
			snprintf(err, errlen,
			         "tenant \"%.80s\": at most %d printable characters, no spaces",
			         rec->tenant, SUPPRESS_TENANT_MAX);
		return SUPPRESS_INVALID;
	}
	*klen = (size_t)n;
	*vlen = suppress_record_encode(val, rec->reason,
	                               rec->added_us != 0 ? rec->added_us : suppress_now(list),
	                               rec->expires_us, rec->source);
	return SUPPRESS_OK;
}

enum suppress_status
suppress_status_of(int rc)
{
	return rc == MDB_MAP_FULL || rc == ENOSPC || rc == EDQUOT ? SUPPRESS_FULL
	                                                          : SUPPRESS_IO_ERROR;
}

/* ---- times ---- */

static bool
digits(const char *p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		*v = *v * 10 + (p[i] - '0');
	}
	return true;
}

int
suppress_time_parse(const char *s, uint64_t *us)
{
	int year, mon, day, hour, min, sec, oh = 0, om = 0;
	uint64_t frac = 0, scale = 100000;
	int64_t offset = 0;
	struct tm tm = {0};
	time_t t;
	size_t i;

	if (*s == '\0')
		return -1;
	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++)
		;
	if (s[i] == '\0') {
		/* Unix seconds; more than 12 digits is past the year 33000, not a time. */
		if (i > 12)
			return -1;
		*us = strtoull(s, NULL, 10) * USEC;
		return 0;
	}
	if (strlen(s) < 19 || !digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &mon) ||
	    s[7] != '-' || !digits(s + 8, 2, &day) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &hour) ||
	    s[13] != ':' || !digits(s + 14, 2, &min) || s[16] != ':' || !digits(s + 17, 2, &sec))
		return -1;
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
	    sec > 60)
		return -1;
	s += 19;
	if (*s == '.') {
		if (!(*++s >= '0' && *s <= '9'))
			return -1;
		for (; *s >= '0' && *s <= '9'; s++, scale /= 10)
			frac += (uint64_t)(*s - '0') * scale;
	}
	if (*s == 'Z' || *s == 'z')
		s++;
	else if (*s == '+' || *s == '-') {
		if (!digits(s + 1, 2, &oh) || s[3] != ':' || !digits(s + 4, 2, &om) || oh > 23 ||
		    om > 59)
			return -1;
		offset = (*s == '-' ? -1 : 1) * (int64_t)(oh * 3600 + om * 60);
		s += 6;
	}
	if (*s != '\0')
		return -1;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 || (int64_t)t - offset < 0)
		return -1;
	*us = (uint64_t)((int64_t)t - offset) * USEC + frac;
	return 0;
}
