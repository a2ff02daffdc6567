/* core/core.h - what every component shares: memory, time, logging, the cross-thread
 * mailbox that hands work back to an event loop, and the JSON event log.
 *
 * Thread-safety: everything here may be called from any thread, except a mailbox's
 * callbacks, which run on the event loop that owns the mailbox.
 */
#ifndef DROVER_CORE_H
#define DROVER_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct event_base;

#define DROVER_NAME    "Drover"
#define DROVER_VERSION "0.1.0"

#define MSEC 1000ULL    /* microseconds in a millisecond */
#define USEC 1000000ULL /* microseconds in a second */

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Memory: allocation failure is fatal (logged, then abort), so callers need not check. */
void *xmalloc(size_t);
void *xcalloc(size_t, size_t);
void *xrealloc(void *, size_t);
char *xstrdup(const char *);
char *xstrndup(const char *, size_t);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Bounded string copy: always NUL-terminates, returns strlen(src) like strlcpy(3). */
size_t strlcpy_s(char *dst, const char *src, size_t size);

/* Time in microseconds: wall clock (for logs and queue times), monotonic (for intervals). */
uint64_t time_now_us(void);
uint64_t time_mono_us(void);
/* Monotonic in nanoseconds: for intervals of a few microseconds (a hash update). */
uint64_t time_mono_ns(void);
/* RFC 5322 date-time of a wall-clock time, e.g. "Sun, 29 Nov 2026 08:36:38 +0000". */
void time_rfc5322(uint64_t us, char *buf, size_t size);
/* RFC 3339 with microseconds, UTC, e.g. "2026-11-29T08:36:38.123456Z". */
void time_rfc3339(uint64_t us, char *buf, size_t size);

/* Diagnostic log on stderr, one line per call: "time level message". */
enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
void log_set_level(enum log_level);
void log_msg(enum log_level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
_Noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Mailbox: any thread posts a function call; it runs on the mailbox's event loop, in the
 * order posted. This is how worker threads (spool writer, crypto) answer an event loop. */
struct mailbox;
typedef void mailbox_fn(void *arg);
struct mailbox *mailbox_new(struct event_base *);
void mailbox_post(struct mailbox *, mailbox_fn *, void *arg);
void mailbox_free(struct mailbox *);

/* Event log: one JSON object per line, written by its own thread so that no event loop
 * waits on the disk. Every record gets "time" (RFC 3339) and "type" first.
 * path "-" means standard output; NULL or "" disables the log. */
struct eventlog;
struct eventlog *eventlog_open(const char *path, char *err, size_t errlen);
/* Takes ownership of the object (json_decref'd after writing). */
void eventlog_write(struct eventlog *, const char *type, json_t *fields);
/* Reopen the file (after rotation) at the next write. */
void eventlog_reopen(struct eventlog *);
/* Writes everything still queued, then closes. */
void eventlog_close(struct eventlog *);
/* A tap sees every record, in the order written, in batches, on the writer's thread (after
 * the batch went to the file; with no file too): webhooks follow the log this way. A tap
 * must return quickly (the next batch waits for it) and must not write to the log. It is
 * added before the records it wants are written and never removed: its arg must outlive
 * eventlog_close(), which hands it the last records. With no tap, nothing changes. */
struct eventlog_record {
	const char *type; /* "Delivery", as given to eventlog_write() */
	const char *line; /* the JSON object, without the "\n" */
	size_t len;
};
typedef void eventlog_tap_fn(void *arg, const struct eventlog_record *, size_t n);
#define EVENTLOG_TAPS_MAX 8
/* 0, or -1 when EVENTLOG_TAPS_MAX taps are set already. */
int eventlog_add_tap(struct eventlog *, eventlog_tap_fn *, void *arg);

/* ---- Histograms (histogram.c), for the metrics ---- */

/* A histogram counts observations into fixed buckets given once, at creation: upper bounds,
 * ascending, in the caller's unit (microseconds, octets, requests), plus one bucket above
 * them all. histogram_observe() is O(1) and lock-free (two atomic additions): any thread
 * may observe while any other takes a snapshot. */
#define HISTOGRAM_BOUNDS_MAX 24
/* Bounds for durations in microseconds, 100 us to 10 s (a DNS answer, an fsync, a signature). */
#define HISTOGRAM_LATENCY_US                                                                       \
	100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,     \
	    2500000, 5000000, 10000000
struct histogram;
struct histogram_snapshot {
	size_t nbounds;
	uint64_t bounds[HISTOGRAM_BOUNDS_MAX];
	/* Observations <= bounds[i]; [nbounds] counts them all (the +Inf bucket). */
	uint64_t cumulative[HISTOGRAM_BOUNDS_MAX + 1];
	uint64_t count; /* = cumulative[nbounds] */
	uint64_t sum;   /* of the values observed (it wraps after 2^64) */
};
/* NULL if n is 0 or above HISTOGRAM_BOUNDS_MAX, or the bounds do not ascend strictly. */
struct histogram *histogram_new(const uint64_t *bounds, size_t n);
/* Both accept NULL (and do nothing). */
void histogram_free(struct histogram *);
void histogram_observe(struct histogram *, uint64_t value);
/* What the histogram holds now; all zero for NULL. */
void histogram_snapshot(const struct histogram *, struct histogram_snapshot *);

/* The value 0-63 of a base64 digit (RFC 4648 §4), or -1 for any other octet. */
int base64_value(unsigned char c);

/* ---- Configuration text (cfgtext.c) ---- */

/* The text libconfuse parses: a configuration file with its include()s expanded (relative to
 * the including file) and its comments removed, and a map from each line of that text back
 * to a file and line (libconfuse miscounts lines after comments). drover.conf and the
 * shaping rules are read this way. One object, one thread. */
struct cfgtext_segment {
	int text_line;    /* from this line of the text on, */
	const char *file; /* the lines are this file's */
	int file_line;    /* from this line on */
};
struct cfgtext {
	char *text;
	size_t len, cap;
	int line; /* lines of text so far, 1-based */
	struct cfgtext_segment *segs;
	size_t nsegs;
	char **files; /* names, as given or resolved; files[0] is the main file */
	size_t nfiles;
};
/* A problem at file:line (line 0: the file as a whole); msg is the problem alone. */
typedef void cfgtext_error_fn(void *arg, const char *file, int line, const char *msg);
struct cfgtext_opts {
	cfgtext_error_fn *error;
	void *arg;
	bool brackets; /* [ ] lists are read as { } lists */
};
/* Reads path and what it includes into the text; -1 (reported) if path cannot be read. */
int cfgtext_load(struct cfgtext *, const char *path, const struct cfgtext_opts *);
/* The same for text in memory, name standing for the file; include() is then an error. */
int cfgtext_load_text(struct cfgtext *, const char *name, const char *data, size_t len,
                      const struct cfgtext_opts *);
/* The file and line that a line of the text came from (line 0: unknown). */
void cfgtext_where(const struct cfgtext *, int text_line, const char **file, int *line);
/* True for a byte that can be part of an unquoted word in libconfuse's scanner. */
bool cfgtext_word_char(char c);
void cfgtext_free(struct cfgtext *);

/* ---- Values as operators write them (units.c) ---- */

/* Leading decimal digits of text into *out; the first byte after them, or NULL if there are
 * none or the value does not fit in 64 bits. Signs, spaces, "0x" are not digits. */
const char *units_digits(const char *text, uint64_t *out);
/* Seconds with an optional lower-case s, m, h or d suffix ("300", "5m", "1d"): 0, -1 if the
 * text is not such a duration, -2 if it does not fit in 64 bits. */
int units_duration(const char *text, uint64_t *out);
/* The shortest of those: "1d", "2h", "5m", "30s". */
void units_format_duration(uint64_t s, char *buf, size_t size);
/* An age for a table, rounded down to one unit: "45s" (under 2 min), "12m", "5h", "3d". */
void units_format_age(uint64_t s, char *buf, size_t size);

/* ---- SipHash-2-4 (siphash.c) ---- */

/* SipHash-2-4 (Aumasson and Bernstein): a 64-bit keyed hash of len octets, for tables whose
 * keys a client chooses. The _fold one hashes the octets as tolower() gives them. */
uint64_t siphash24(const uint64_t key[2], const void *data, size_t len);
uint64_t siphash24_fold(const uint64_t key[2], const void *data, size_t len);
/* 128 random bits for a table's hash key, from getrandom(2) (waits for the entropy pool). */
void siphash_key_random(uint64_t key[2]);

/* ---- Privileges (privileges.c) ---- */

struct run_user {
	char name[64];
	unsigned uid, gid;
};
/* The user to become: it must exist and not be root. 0, or -1 with why in err. */
int privileges_lookup(const char *user, struct run_user *, char *err, size_t errlen);
/* Becomes that user for good (groups, group, user; root cannot be regained). 0 or -1. */
int privileges_drop(const struct run_user *, char *err, size_t errlen);

#endif
