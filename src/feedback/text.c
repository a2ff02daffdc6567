/* text.c - bounded, clean strings out of hostile text: every string a report holds comes
 * through text_put(), so the event log (JSON, which wants UTF-8) and the classifier can
 * take them as they are. */
#include <ctype.h>
#include <string.h>

#include "feedback/internal.h"
#include "smtp/smtp.h"

void
text_put(char *dst, size_t size, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t o = 0, i = 0;
	bool space = false;

	if (size == 0)
		return;
	while (i < len) {
		size_t n;

		if (u[i] <= ' ' || u[i] == 0x7f) {
			space = o > 0;
			i++;
			continue;
		}
		n = smtp_utf8_seq_len(u + i, len - i);
		if (o + (space ? 1 : 0) + (n == 0 ? 1 : n) > size - 1)
			break;
		if (space)
			dst[o++] = ' ';
		space = false;
		if (n == 0) {
			dst[o++] = '?';
			i++;
		} else {
			memcpy(dst + o, s + i, n);
			o += n;
			i += n;
		}
	}
	dst[o] = '\0';
}

static void
trim(const char **s, size_t *len)
{
	while (*len > 0 && isspace((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && isspace((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

void
addr_put(char *dst, size_t size, const char *s, size_t len)
{
	trim(&s, &len);
	if (ci_prefix(s, len, "mailto:")) {
		s += 7;
		len -= 7;
	}
	if (len > 0 && s[0] == '<') {
		const char *close = memchr(s, '>', len);

		s++;
		len = close != NULL ? (size_t)(close - s) : len - 1;
	}
	trim(&s, &len);
	text_put(dst, size, s, len);
}

void
typed_split(const char *s, size_t len, struct slice *type, struct slice *value)
{
	const char *semi = memchr(s, ';', len);
	const char *t = s;
	size_t tlen;

	type->p = s;
	type->len = 0;
	value->p = s;
	value->len = len;
	if (semi == NULL)
		return;
	tlen = (size_t)(semi - s);
	trim(&t, &tlen);
	if (tlen == 0 || tlen > FEEDBACK_TYPE_MAX)
		return;
	for (size_t i = 0; i < tlen; i++)
		if (!isalnum((unsigned char)t[i]) && t[i] != '-' && t[i] != '_' && t[i] != '.')
			return;
	type->p = t;
	type->len = tlen;
	value->p = semi + 1;
	value->len = len - (size_t)(semi + 1 - s);
	trim(&value->p, &value->len);
}

static bool
local_char(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || strchr("!#$%&'*+/=?^_`{|}~.-", c) != NULL;
}

static bool
domain_char(unsigned char c)
{
	return isalnum(c) || c >= 0x80 || c == '.' || c == '-';
}

bool
addr_find(const char *s, size_t len, size_t *pos, struct slice *addr)
{
	const unsigned char *u = (const unsigned char *)s;

	for (size_t at = *pos; at < len; at++) {
		size_t l = at, r = at + 1;
		bool dot = false;

		if (s[at] != '@')
			continue;
		/* Bounded both ways (RFC 5321 sizes, generously): a run of local-part characters
		 * is read at most twice, from two neighbouring "@". */
		while (l > *pos && at - l < SMTP_LOCAL_PART_MAX * 4 && local_char(u[l - 1]))
			l--;
		while (l < at && s[l] == '.')
			l++;
		while (r < len && r - at <= SMTP_DOMAIN_MAX && domain_char(u[r])) {
			dot |= s[r] == '.';
			r++;
		}
		while (r > at + 1 && (s[r - 1] == '.' || s[r - 1] == '-'))
			r--;
		if (l == at || r == at + 1 || !dot || s[at + 1] == '.' || s[at + 1] == '-')
			continue;
		addr->p = s + l;
		addr->len = r - l;
		*pos = r;
		return true;
	}
	*pos = len;
	return false;
}

void
first_address(char *dst, size_t size, const char *s, size_t len)
{
	const char *lt = memchr(s, '<', len);
	size_t pos = 0;
	struct slice a;

	dst[0] = '\0';
	while (lt != NULL) {
		size_t rest = len - (size_t)(lt - s);
		const char *gt = memchr(lt, '>', rest);

		if (gt == NULL)
			break;
		if (memchr(lt, '@', (size_t)(gt - lt)) != NULL) {
			addr_put(dst, size, lt + 1, (size_t)(gt - lt - 1));
			return;
		}
		lt = memchr(gt, '<', len - (size_t)(gt - s));
	}
	if (addr_find(s, len, &pos, &a))
		text_put(dst, size, a.p, a.len);
}

static bool
isdig(const char *s, size_t len, size_t i)
{
	return i < len && s[i] >= '0' && s[i] <= '9';
}

/* A status "c.s.d" at s[i]; its length or 0. */
static size_t
status_at(const char *s, size_t len, size_t i)
{
	size_t j = i + 1, n;

	if (i >= len || (s[i] != '2' && s[i] != '4' && s[i] != '5'))
		return 0;
	if (i > 0 && (isdig(s, len, i - 1) || s[i - 1] == '.'))
		return 0;
	for (int part = 0; part < 2; part++) {
		if (j >= len || s[j] != '.')
			return 0;
		j++;
		for (n = 0; n < 3 && isdig(s, len, j); n++)
			j++;
		if (n == 0 || isdig(s, len, j))
			return 0;
	}
	/* "5.1.1." ends a sentence; "5.1.1.2" is an address or a version. */
	if (j < len && s[j] == '.' && isdig(s, len, j + 1))
		return 0;
	return j - i;
}

/* A reply code standing alone at s[i]: "550 ", "550-", "550" at the end; not part of a
 * number, an address, a date or a time. */
static bool
code_at(const char *s, size_t len, size_t i)
{
	if (i + 3 > len || (s[i] != '2' && s[i] != '4' && s[i] != '5') || !isdig(s, len, i + 1) ||
	    !isdig(s, len, i + 2))
		return false;
	if (i > 0 && (isalnum((unsigned char)s[i - 1]) || strchr(".:-/#[+=_", s[i - 1]) != NULL))
		return false;
	return i + 3 == len || s[i + 3] == ' ' || s[i + 3] == '-' || s[i + 3] == '\t' ||
	       s[i + 3] == '\r' || s[i + 3] == '\n';
}

void
reply_scan(const char *s, size_t len, int *code, char *status, size_t *code_pos)
{
	*code = 0;
	status[0] = '\0';
	for (size_t i = 0; i < len && (*code == 0 || status[0] == '\0'); i++) {
		size_t n;

		if (*code == 0 && code_at(s, len, i)) {
			*code = (s[i] - '0') * 100 + (s[i + 1] - '0') * 10 + (s[i + 2] - '0');
			if (code_pos != NULL)
				*code_pos = i;
			i += 2;
			continue;
		}
		if (status[0] == '\0' && (n = status_at(s, len, i)) > 0) {
			memcpy(status, s + i, n);
			status[n] = '\0';
			i += n - 1;
		}
	}
}

/* ASCII case folding without the locale: these run over every line of a bounce. */
static inline unsigned char
lc(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

bool
ci_prefix(const char *s, size_t len, const char *lit)
{
	size_t i;

	for (i = 0; lit[i] != '\0'; i++)
		if (i == len || lc((unsigned char)s[i]) != lc((unsigned char)lit[i]))
			return false;
	return true;
}

bool
ci_eq(struct slice s, const char *lit)
{
	return s.len == strlen(lit) && ci_prefix(s.p, s.len, lit);
}

long
ci_find(const char *hay, size_t len, const char *needle)
{
	size_t n = strlen(needle);
	unsigned char first, upper;

	if (n == 0 || n > len)
		return n == 0 ? 0 : -1;
	first = lc((unsigned char)needle[0]);
	upper = first >= 'a' && first <= 'z' ? (unsigned char)(first - 32) : first;
	for (size_t i = 0; i + n <= len; i++)
		if (((unsigned char)hay[i] == first || (unsigned char)hay[i] == upper) &&
		    ci_prefix(hay + i + 1, len - i - 1, needle + 1))
			return (long)i;
	return -1;
}
