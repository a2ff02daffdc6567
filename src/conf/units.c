/* conf/units.c - sizes ("25M") and durations ("5m") as operators write them. */

#include <stdio.h>
#include <string.h>

#include "conf/internal.h"

/* Leading decimal digits of text into *out; returns the first byte after them, or NULL if
 * there are none or the value does not fit in 64 bits. Signs, spaces, "0x" are not digits. */
static const char *
parse_digits(const char *text, uint64_t *out)
{
	const char *p = text;
	uint64_t v = 0;

	while (*p >= '0' && *p <= '9') {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return NULL;
		v = v * 10 + d;
		p++;
	}
	if (p == text)
		return NULL;
	*out = v;
	return p;
}

int
parse_size_why(const char *text, uint64_t *out, const char **why)
{
	const char *p;
	uint64_t v, mult;

	*why = "expected a number of octets with an optional k, M, G or T suffix (1024-based), "
	       "as in 4096, 10k, 25M, 1G";
	if (text == NULL || (p = parse_digits(text, &v)) == NULL) {
		if (text != NULL && *text >= '0' && *text <= '9')
			*why = "too large";
		return -1;
	}
	switch (*p) {
	case '\0':
		mult = 1;
		break;
	case 'k':
	case 'K':
		mult = 1ULL << 10;
		break;
	case 'm':
	case 'M':
		mult = 1ULL << 20;
		break;
	case 'g':
	case 'G':
		mult = 1ULL << 30;
		break;
	case 't':
	case 'T':
		mult = 1ULL << 40;
		break;
	default:
		return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	if (v > UINT64_MAX / mult) {
		*why = "too large";
		return -1;
	}
	*out = v * mult;
	return 0;
}

int
parse_size(const char *text, uint64_t *out)
{
	const char *why;

	return parse_size_why(text, out, &why);
}

int
parse_duration_why(const char *text, uint64_t *out, const char **why)
{
	const char *p;
	uint64_t v, mult;

	*why = "expected a number of seconds with an optional s, m, h or d suffix, "
	       "as in 300, 300s, 5m, 2h, 1d";
	if (text == NULL || (p = parse_digits(text, &v)) == NULL) {
		if (text != NULL && *text >= '0' && *text <= '9')
			*why = "too large";
		return -1;
	}
	/* Lower case only: "5M" could be meant as minutes or as a size typed in the wrong
	 * place, and guessing would be worse than asking. */
	switch (*p) {
	case '\0':
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return -1;
	}
	if (*p != '\0' && p[1] != '\0')
		return -1;
	if (v > UINT64_MAX / mult) {
		*why = "too large";
		return -1;
	}
	*out = v * mult;
	return 0;
}

int
parse_duration_s(const char *text, uint64_t *out)
{
	const char *why;

	return parse_duration_why(text, out, &why);
}

void
format_size(uint64_t v, char *buf, size_t size)
{
	static const char units[] = "kMGT";
	int u = -1;

	while (u < 3 && v != 0 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	if (u < 0)
		snprintf(buf, size, "%llu", (unsigned long long)v);
	else
		snprintf(buf, size, "%llu%c", (unsigned long long)v, units[u]);
}

void
format_duration(uint64_t s, char *buf, size_t size)
{
	if (s != 0 && s % 86400 == 0)
		snprintf(buf, size, "%llud", (unsigned long long)(s / 86400));
	else if (s != 0 && s % 3600 == 0)
		snprintf(buf, size, "%lluh", (unsigned long long)(s / 3600));
	else if (s != 0 && s % 60 == 0)
		snprintf(buf, size, "%llum", (unsigned long long)(s / 60));
	else
		snprintf(buf, size, "%llus", (unsigned long long)s);
}
