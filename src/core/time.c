/* time.c - clocks and the two date formats mail needs. */
#include <stdio.h>
#include <time.h>

#include "core/core.h"

uint64_t
time_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * USEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
time_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * USEC + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
time_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void
time_rfc5322(uint64_t us, char *buf, size_t size)
{
	/* Always UTC with "+0000": the day names and month names are fixed English (RFC 5322
	 * §3.3), so no locale-dependent strftime(%a). */
	static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
	                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	time_t t = (time_t)(us / USEC);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, size, "%s, %d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday], tm.tm_mday,
	         months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

void
time_rfc3339(uint64_t us, char *buf, size_t size)
{
	time_t t = (time_t)(us / USEC);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06uZ", tm.tm_year + 1900, tm.tm_mon + 1,
	         tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(us % USEC));
}
