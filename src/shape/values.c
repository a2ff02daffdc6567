/* values.c - the values of a shaping rules file as operators write them: counts, durations,
 * rates ("300/min burst 20"), triggers ("3 in 5m"), dates, reply code and status patterns.
 * Each parser says why it refused, in words that go into "file:line: setting: problem".
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

#define RATE_COUNT_MAX     1000000000ULL /* events per period: more is a typo */
#define RATE_PERIOD_MAX    (30 * DAY_S)  /* a rate over more than a month is a schedule */
#define TRIGGER_PERIOD_MAX (7 * DAY_S)

static const char *
blanks(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

int
sh_parse_count(const char *text, uint64_t *out, const char **why)
{
	const char *p;

	*why = "expected a whole number";
	if (text == NULL || (p = units_digits(text, out)) == NULL) {
		if (text != NULL && *text >= '0' && *text <= '9')
			*why = "too large";
		return -1;
	}
	return *p == '\0' ? 0 : -1;
}

int
sh_parse_duration(const char *text, uint64_t *out, const char **why)
{
	int rc = units_duration(text, out);

	*why = rc == -2 ? "too large"
	                : "expected a number of seconds with an optional s, m, h or d suffix, "
	                  "as in 30, 30s, 5m, 2h, 1d";
	return rc == 0 ? 0 : -1;
}

/* ---- Rates ---- */

static const struct {
	const char *name;
	uint64_t seconds;
} rate_units[] = {
    {"s", 1},       {"sec", 1},  {"second", 1},  {"m", 60},    {"min", 60},
    {"minute", 60}, {"h", 3600}, {"hour", 3600}, {"d", DAY_S}, {"day", DAY_S},
};

int
shape_rate_parse(const char *text, struct shape_rate *out, const char **why)
{
	static const char expect[] =
	    "expected N/s, N/min, N/h or N/day (or N/10min, ...), optionally followed by "
	    "\"burst B\", or \"unlimited\"";
	const char *p, *unit;
	uint64_t count, mult = 1, burst = 1, secs = 0;
	size_t ulen;

	*why = expect;
	if (text == NULL)
		return -1;
	if (strcmp(text, "unlimited") == 0 || strcmp(text, "0") == 0) {
		*out = (struct shape_rate){0};
		return 0;
	}
	if ((p = units_digits(text, &count)) == NULL || *p != '/')
		return -1;
	if (count == 0) {
		*why = "0 per period sends nothing: write \"unlimited\" for no limit, or suspend "
		       "with an adaptive rule";
		return -1;
	}
	if (count > RATE_COUNT_MAX) {
		*why = "count too large (at most 1000000000 per period)";
		return -1;
	}
	p++;
	if (*p >= '0' && *p <= '9') {
		if ((p = units_digits(p, &mult)) == NULL || mult == 0)
			return -1;
	}
	unit = p;
	while (isalpha((unsigned char)*p))
		p++;
	ulen = (size_t)(p - unit);
	for (size_t i = 0; i < nitems(rate_units); i++) {
		if (strlen(rate_units[i].name) == ulen &&
		    memcmp(rate_units[i].name, unit, ulen) == 0)
			secs = rate_units[i].seconds;
	}
	if (secs == 0)
		return -1;
	if (mult > RATE_PERIOD_MAX / secs) {
		*why = "period too long (at most 30 days)";
		return -1;
	}
	p = blanks(p);
	if (*p != '\0') {
		if (strncmp(p, "burst", 5) != 0 || (p[5] != ' ' && p[5] != '\t'))
			return -1;
		p = blanks(p + 5);
		if ((p = units_digits(p, &burst)) == NULL || *blanks(p) != '\0')
			return -1;
		if (burst == 0 || burst > count) {
			*why = "burst must be from 1 (evenly spaced) to the count per period";
			return -1;
		}
	}
	out->count = count;
	out->per_s = mult * secs;
	out->burst = (uint32_t)burst;
	return 0;
}

void
shape_rate_format(const struct shape_rate *r, char *buf, size_t size)
{
	const char *unit = "s";
	uint64_t mult = r->per_s;
	char b[32] = "";

	if (r->count == 0) {
		snprintf(buf, size, "unlimited");
		return;
	}
	if (mult % DAY_S == 0) {
		unit = "day";
		mult /= DAY_S;
	} else if (mult % 3600 == 0) {
		unit = "h";
		mult /= 3600;
	} else if (mult % 60 == 0) {
		unit = "min";
		mult /= 60;
	}
	if (r->burst > 1)
		snprintf(b, sizeof(b), " burst %u", r->burst);
	if (mult == 1)
		snprintf(buf, size, "%llu/%s%s", (unsigned long long)r->count, unit, b);
	else
		snprintf(buf, size, "%llu/%llu%s%s", (unsigned long long)r->count,
		         (unsigned long long)mult, unit, b);
}

bool
shape_rate_stricter(const struct shape_rate *a, const struct shape_rate *b)
{
	if (a->count == 0)
		return false;
	if (b->count == 0)
		return true;
	/* a.count / a.per_s < b.count / b.per_s, without division; both factors < 2^32. */
	return (unsigned __int128)a->count * b->per_s < (unsigned __int128)b->count * a->per_s;
}

/* ---- Triggers and dates ---- */

int
sh_parse_trigger(const char *text, unsigned *count, uint64_t *period_s, const char **why)
{
	const char *p;
	uint64_t n;
	char dur[32];
	size_t len;

	*why = "expected \"once\" or \"N in DURATION\", as in \"3 in 5m\"";
	if (text == NULL)
		return -1;
	if (strcmp(text, "once") == 0) {
		*count = 1;
		*period_s = 0;
		return 0;
	}
	if ((p = units_digits(text, &n)) == NULL)
		return -1;
	if (*p != ' ' && *p != '\t')
		return -1;
	p = blanks(p);
	if (strncmp(p, "in", 2) != 0 || (p[2] != ' ' && p[2] != '\t'))
		return -1;
	p = blanks(p + 2);
	len = strcspn(p, " \t");
	if (len == 0 || len >= sizeof(dur) || *blanks(p + len) != '\0')
		return -1;
	memcpy(dur, p, len);
	dur[len] = '\0';
	if (n == 0 || n > SHAPE_TRIGGER_MAX) {
		*why = "N must be from 1 to 100";
		return -1;
	}
	if (sh_parse_duration(dur, period_s, why) != 0)
		return -1;
	if (*period_s == 0 || *period_s > TRIGGER_PERIOD_MAX) {
		*why = "the period must be from 1s to 7d";
		return -1;
	}
	*count = (unsigned)n;
	if (n == 1)
		*period_s = 0; /* "1 in 5m" is "once" */
	return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era;
	unsigned yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = (unsigned)(y - era * 400);
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

int
sh_parse_date(const char *text, int64_t *day, const char **why)
{
	static const unsigned mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	unsigned y, m, d;

	*why = "expected a date as YYYY-MM-DD (UTC), as in 2026-12-01";
	if (text == NULL || strlen(text) != 10 || text[4] != '-' || text[7] != '-')
		return -1;
	for (int i = 0; i < 10; i++) {
		if (i != 4 && i != 7 && !isdigit((unsigned char)text[i]))
			return -1;
	}
	y = (unsigned)atoi(text);
	m = (unsigned)atoi(text + 5);
	d = (unsigned)atoi(text + 8);
	if (y < 1970 || m < 1 || m > 12 || d < 1 || d > mdays[m - 1])
		return -1;
	if (m == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0)))
		return -1;
	*day = days_from_civil(y, m, d);
	return 0;
}

/* ---- Reply patterns ---- */

int
sh_parse_code_pat(const char *s, struct code_pat *c, const char **why)
{
	*why = "expected a reply code of 3 digits like 421, or a class like 42x or 4xx";
	if (s == NULL || strlen(s) != 3 || s[0] < '2' || s[0] > '5')
		return -1;
	c->d[0] = (int8_t)(s[0] - '0');
	for (int i = 1; i < 3; i++) {
		if (s[i] == 'x' || s[i] == 'X')
			c->d[i] = -1;
		else if (isdigit((unsigned char)s[i]) && c->d[i - 1] >= 0)
			c->d[i] = (int8_t)(s[i] - '0');
		else
			return -1; /* "4x1" would be a strange thing to mean */
	}
	return 0;
}

int
sh_parse_status_pat(const char *s, struct status_pat *st, const char **why)
{
	int n = 0;

	*why = "expected an enhanced status class.subject.detail like 4.7.0, with * for any part: "
	       "4.7.*, 4.*, *.7.1";
	if (s == NULL || *s == '\0')
		return -1;
	for (;;) {
		size_t len = strcspn(s, ".");

		if (n == 3)
			return -1;
		if (len == 1 && s[0] == '*') {
			st->p[n] = -1;
		} else if (len >= 1 && len <= 3 && strspn(s, "0123456789") >= len) {
			st->p[n] = (int16_t)atoi(s);
			if (n == 0 && st->p[0] != 2 && st->p[0] != 4 && st->p[0] != 5)
				return -1;
		} else {
			return -1;
		}
		n++;
		if (s[len] == '\0')
			break;
		s += len + 1;
	}
	if (n < 3 && st->p[n - 1] != -1)
		return -1; /* "4.7" is a typo more often than a prefix: say "4.7.*" */
	for (; n < 3; n++)
		st->p[n] = -1;
	return 0;
}

void
sh_status_parse(const char *s, int16_t out[3])
{
	out[0] = out[1] = out[2] = -1;
	if (s == NULL)
		return;
	for (int n = 0; n < 3; n++) {
		size_t len = strspn(s, "0123456789");

		if (len == 0 || len > 3 || (n < 2 && s[len] != '.') ||
		    (n == 2 && s[len] != '\0' && s[len] != ' ')) {
			out[0] = out[1] = out[2] = -1;
			return;
		}
		out[n] = (int16_t)atoi(s);
		s += len + (n < 2);
	}
}

/* ---- Names ---- */

static const char *const action_names[] = {"suspend-source", "suspend-provider", "limit", "backoff",
                                           "bounce"};
static const char *const tls_names[] = {"disabled", "opportunistic", "required", "required-verify"};
static const char *const on_421_names[] = {"next-mx", "backoff"};

static int
value_of(const char *const *names, size_t n, const char *text)
{
	for (size_t i = 0; text != NULL && i < n; i++) {
		if (strcmp(text, names[i]) == 0)
			return (int)i;
	}
	return -1;
}

int
sh_action_value(const char *text)
{
	return value_of(action_names, nitems(action_names), text);
}

int
sh_tls_value(const char *text)
{
	return value_of(tls_names, nitems(tls_names), text);
}

int
sh_on_421_value(const char *text)
{
	return value_of(on_421_names, nitems(on_421_names), text);
}

const char *
shape_action_name(enum shape_action a)
{
	return (unsigned)a < nitems(action_names) ? action_names[a] : "?";
}

const char *
sh_tls_name(enum shape_tls t)
{
	return (unsigned)t < nitems(tls_names) ? tls_names[t] : "?";
}

const char *
sh_on_421_name(enum shape_on_421 v)
{
	return (unsigned)v < nitems(on_421_names) ? on_421_names[v] : "?";
}

bool
sh_name_lower(const char *name, char *buf, size_t size, size_t *len)
{
	size_t n = name != NULL ? strlen(name) : 0;

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (n == 0 || n > SHAPE_DEST_MAX || n + 1 > size)
		return false;
	for (size_t i = 0; i < n; i++)
		buf[i] = (char)tolower((unsigned char)name[i]);
	buf[n] = '\0';
	*len = n;
	return true;
}

bool
sh_host_valid(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0, label = 0;

	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0 || n > SHAPE_DEST_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (!isalnum(c) && c != '-' && c != '_')
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0;
}
