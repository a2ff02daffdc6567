/* conf/units.c - sizes ("25M") and durations ("5m") as operators write them. */

#include <stdio.h>
#include <string.h>

#include "conf/internal.h"
#include "core/core.h"

int
parse_size_why(const char *text, uint64_t *out, const char **why)
{
	const char *p;
	uint64_t v, mult;

	*why = "expected a number of octets with an optional k, M, G or T suffix (1024-based), "
	       "as in 4096, 10k, 25M, 1G";
	if (text == NULL || (p = units_digits(text, &v)) == NULL) {
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
	int rc = units_duration(text, out);

	*why = rc == -2 ? "too large"
	                : "expected a number of seconds with an optional s, m, h or d suffix, "
	                  "as in 300, 300s, 5m, 2h, 1d";
	return rc == 0 ? 0 : -1;
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
