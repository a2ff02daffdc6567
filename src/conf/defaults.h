/* conf/defaults.h - every default and every bound of the configuration, with its reason.
 *
 * Private to conf/. The schema (schema.c) takes its defaults and ranges from here, and
 * docs/configuration.md lists the same names, values and reasons: change both together.
 * Sizes are in octets, durations in seconds.
 */
#ifndef DROVER_CONF_DEFAULTS_H
#define DROVER_CONF_DEFAULTS_H

/* ---- top level ---- */

/* hostname: no constant. gethostname(), made fully qualified through the resolver when it
 * has no dot, because RFC 5321 §4.1.1.1 wants a fully-qualified domain in EHLO and the
 * greeting, and the machine usually knows its own name. */

/* One event loop per CPU: reception is parsing and waiting on sockets, so more loops than
 * cores only add context switches. */
#define DEF_THREADS 0
/* Past 16 loops the single spool writer (group commit) is the bottleneck, not parsing. */
#define DEF_THREADS_CPU_CAP 16
/* An explicit count above 64 is a typo, not a tuning: the writer could not keep up. */
#define LIM_THREADS_MAX 64

/* info: one line per notable event (start, stop, listener bound, errors); debug is for
 * development and too verbose for a server sending at volume. */
#define DEF_LOG_LEVEL "info"

/* The event log (JSON lines) is what operators ship to their log pipeline; on by default,
 * relative to the working directory like the spool. */
#define DEF_EVENT_LOG "./var/log/events.jsonl"

/* Only this machine may relay: a fresh install is never an open relay. A libconfuse list. */
#define DEF_RELAY_NETWORKS "{\"127.0.0.0/8\", \"::1\"}"

/* ---- spool { } ---- */

/* Relative to the working directory, so a checkout runs without root or setup. */
#define DEF_SPOOL_DIRECTORY "./var/spool"
/* LMDB map size, the spool's capacity. LMDB reserves it as address space only; the file grows
 * as it is used. 4 GiB holds about a million typical (4 KB) messages. */
#define DEF_SPOOL_MAX_SIZE (4L * 1024 * 1024 * 1024)
/* LMDB needs a few pages of its own; anything smaller than 1 MiB is a typo for a bigger unit.
 */
#define LIM_SPOOL_MAX_SIZE_MIN (1L * 1024 * 1024)
/* Group commit: one fsync per batch. Measured (DESIGN.md): 1 message per commit ~1,700/s,
 * 200 ~38,000/s; past a few hundred the gain is small and the batch only waits longer. */
#define DEF_SPOOL_BATCH_MAX 256
/* A larger batch holds the single write transaction, and every client waiting for its 250,
 * longer for no throughput gain. */
#define LIM_SPOOL_BATCH_MAX 10000

/* ---- listener "name" { } ---- */

/* With no listener section at all: loopback on an unprivileged port, so a fresh install
 * needs no root and accepts only local submissions. */
#define DEF_LISTENER_NAME    "smtp"
#define DEF_LISTENER_ADDRESS "127.0.0.1:2525"

/* ---- smtp { } ---- */

/* Bounds memory and file descriptors (one per session); fits the usual 1024 descriptor
 * limit with room for listeners, the spool and logs. */
#define DEF_SMTP_MAX_SESSIONS 1000
/* One client cannot take every slot; an application's connection pool rarely needs more. */
#define DEF_SMTP_MAX_SESSIONS_PER_IP 100
/* What the large mailbox providers accept (Gmail 25 MB, Outlook.com 20-25 MB): bigger mail
 * would bounce downstream anyway. Advertised as EHLO SIZE. */
#define DEF_SMTP_MAX_MESSAGE_SIZE (25L * 1024 * 1024)
/* Smaller than 1 KiB cannot hold the headers of an ordinary message. */
#define LIM_SMTP_MAX_MESSAGE_SIZE_MIN 1024L
/* Far above any provider's limit; bounds what one session can make the spool write. */
#define LIM_SMTP_MAX_MESSAGE_SIZE_MAX (1L * 1024 * 1024 * 1024)
/* RFC 5321 §4.5.3.1.8 requires at least 100; bulk senders put many recipients in one
 * transaction, and 1000 keeps a transaction's memory bounded. */
#define DEF_SMTP_MAX_RECIPIENTS 1000
/* Below this, RFC 5321 §4.5.3.1.8 is not met (a warning, not an error). */
#define RFC_SMTP_MIN_RECIPIENTS 100
/* One transaction's recipient list is kept in memory. */
#define LIM_SMTP_MAX_RECIPIENTS_MAX 100000
/* A confused client gets enough chances; a broken or probing one is cut off (Postfix's
 * smtpd_hard_error_limit is 20 too). */
#define DEF_SMTP_MAX_ERRORS     20
#define LIM_SMTP_MAX_ERRORS_MAX 10000
/* RFC 5321 §4.5.3.1.4: 512 octets incl. CRLF, which extensions may raise (RFC 1869); DSN adds
 * up to 100 (ENVID) and 500 (ORCPT) octets (RFC 3461 §5). */
#define DEF_SMTP_COMMAND_LINE_MAX 1024
/* RFC 5321 §4.5.3.1.4: a server must accept command lines of 512 octets. */
#define LIM_SMTP_COMMAND_LINE_MIN 512
/* A command line is buffered whole; nothing legitimate comes near 64 KiB. */
#define LIM_SMTP_COMMAND_LINE_MAX 65536
/* RFC 5321 §4.5.3.1.6: a text line is at most 1000 octets incl. CRLF. 0 = unlimited. */
#define DEF_SMTP_DATA_LINE_MAX 1000
/* Smaller would reject lines RFC 5321 §4.5.3.1.6 allows. */
#define LIM_SMTP_DATA_LINE_MIN 1000
/* Bounded for the same reason as command lines; 0 lifts the limit entirely. */
#define LIM_SMTP_DATA_LINE_MAX (1024 * 1024)
/* RFC 5321 §4.5.3.2.7: a server should wait at least 5 minutes for the next command. */
#define DEF_SMTP_COMMAND_TIMEOUT 300
/* RFC 5321 §4.5.3.2.7 (the server timeout) also bounds the wait between data reads. */
#define DEF_SMTP_DATA_TIMEOUT 300
/* A timeout of 0 would drop every client at once; one of more than a day holds a session
 * slot for nothing. */
#define LIM_TIMEOUT_MIN 1
#define LIM_TIMEOUT_MAX 86400
/* RFC 6152: 8-bit data needs BODY=8BITMIME. Accepting it undeclared relays content that a
 * 7-bit hop downstream may mangle, and signs (DKIM) what may not arrive intact. */
#define DEF_SMTP_REJECT_8BIT_WITHOUT_8BITMIME 1

/* Counts above a million are typos (sessions, per-ip sessions). */
#define LIM_COUNT_MAX 1000000

/* At most this many errors are reported; past it the rest are counted. */
#define LIM_ERRORS_REPORTED 50

#endif
