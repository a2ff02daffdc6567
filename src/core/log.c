/* log.c - the diagnostic log: one line per call on stderr, written with a single write(2)
 * so lines from several threads never interleave. Operators' records of mail go to the
 * event log instead (eventlog.c). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/core.h"

/* The one process-wide setting: written once at start-up (and on reload), read by all. */
static _Atomic int log_threshold = LOG_INFO;

void
log_set_level(enum log_level level)
{
	atomic_store(&log_threshold, (int)level);
}

static void
log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	static const char *const names[] = {"debug", "info", "warn", "error"};
	char line[2048], stamp[40];
	int n, m;

	time_rfc3339(time_now_us(), stamp, sizeof(stamp));
	n = snprintf(line, sizeof(line), "%s drover[%d] %s: ", stamp, (int)getpid(), names[level]);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* A failed write of a diagnostic has nowhere else to go. */
	if (write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level < atomic_load(&log_threshold))
		return;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, fmt, ap);
	va_end(ap);
	abort();
}
