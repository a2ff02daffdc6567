/* core/units.c - durations ("5m") and plain numbers as operators write them, for drover.conf
 * and the shaping rules alike. Each caller words its own message around the result. */

#include <stdio.h>

#include "core/core.h"

const char *
units_digits(const char *text, uint64_t *out)
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
units_duration(const char *text, uint64_t *out)
{
	const char *p;
	uint64_t v, mult;

	if (text == NULL || (p = units_digits(text, &v)) == NULL)
		return text != NULL && *text >= '0' && *text <= '9' ? -2 : -1;
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
	if (v > UINT64_MAX / mult)
		return -2;
	*out = v * mult;
	return 0;
}

void
units_format_duration(uint64_t s, char *buf, size_t size)
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

void
units_format_age(uint64_t s, char *buf, size_t size)
{
	if (s < 120)
		snprintf(buf, size, "%llus", (unsigned long long)s);
	else if (s < 7200)
		snprintf(buf, size, "%llum", (unsigned long long)s / 60);
	else if (s < 172800)
		snprintf(buf, size, "%lluh", (unsigned long long)s / 3600);
	else
		snprintf(buf, size, "%llud", (unsigned long long)s / 86400);
}
