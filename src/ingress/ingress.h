/* ingress/ingress.h - the SMTP server: listeners, sessions, and the reception pipeline that
 * turns an accepted message into a spool commit.
 *
 * ingress_start() binds every configured listener (so privileged ports are bound before
 * privileges are dropped) and starts the event-loop threads; connections are accepted on the
 * caller's event base and handed to the threads. A message gets its 250 only after the spool
 * has committed it durably.
 *
 * Thread-safety: start and stop from the thread that owns the event base given.
 */
#ifndef DROVER_INGRESS_H
#define DROVER_INGRESS_H

#include <stddef.h>
#include <stdint.h>

#include "classify/classify.h"

struct config;
struct event_base;
struct eventlog;
struct spool;

struct envelope;
struct ingress;

/* Told of every message once it is durable (after its commit, before its 250 is sent), on
 * the SMTP thread that received it: must not block. env is valid only during the call. */
struct ingress_hooks {
	void (*accepted)(void *arg, const struct envelope *env);
	void *arg;
};

/* Binds the listeners and starts the SMTP threads, which accept nothing until
 * ingress_open() (the server gives up root in between). NULL with a message in err if a
 * listener cannot be bound. cfg, spool, log and hooks must outlive the ingress; hooks may
 * be NULL. */
struct ingress *ingress_start(struct event_base *base, const struct config *cfg,
                              struct spool *spool, struct eventlog *log,
                              const struct ingress_hooks *hooks, char *err, size_t errlen);
/* The suppression list checked at RCPT (suppression.at_reception); NULL: none. Before
 * ingress_open(); it must outlive the ingress. */
struct suppress;
void ingress_set_suppression(struct ingress *, struct suppress *);
/* The bounce rules the bounce listener classifies bounces with, as reloaded (SIGHUP; the
 * engine's slot). Before ingress_open(); it must outlive the ingress. No-op without a bounce
 * listener. */
struct classify_slot;
void ingress_set_bounce_rules(struct ingress *, struct classify_slot *);

/* The listeners start accepting connections (the kernel has queued them meanwhile). */
void ingress_open(struct ingress *);
/* Stops accepting, answers idle sessions "421 4.3.2" and closes them, waits for messages
 * being committed to get their reply, then stops the threads (at most grace_s seconds, then
 * remaining sessions are cut). */
void ingress_stop(struct ingress *, unsigned grace_s);

/* A new SMTP session on one of the SMTP threads, for the control plane's injection: the
 * caller gets its end of a socketpair (non-blocking, CLOEXEC) and speaks SMTP on it. The
 * session is of the internal listener "api": the client counts as 127.0.0.1, may relay,
 * and its X-Drover-Stream/-Pool/-Tenant/-Campaign fields are trusted. It is not counted
 * against smtp.max_sessions(_per_ip). Any thread, after ingress_open(); -1 with err. */
int ingress_connect_internal(struct ingress *, char *err, size_t errlen);

/* Counters, for logs and metrics. */
struct ingress_stats {
	uint64_t sessions_open;
	uint64_t sessions_total;
	uint64_t messages_accepted;
	uint64_t messages_rejected;
};
void ingress_stats(struct ingress *, struct ingress_stats *);

/* The bounce listener's counters since start (all 0 without one). */
struct ingress_report_stats {
	uint64_t bounces[CLASSIFY_CATEGORY_COUNT]; /* failed recipients of bounces, by category */
	uint64_t complaints;                       /* feedback (ARF) reports */
	uint64_t forged;                           /* RCPTs refused: a token that does not verify */
	uint64_t unattributed;                     /* reports no verified token ties to a message */
};
void ingress_report_stats(struct ingress *, struct ingress_report_stats *);

/* What the SMTP threads measure, for the metrics (metrics.c); any thread, valid while the
 * ingress runs. Histograms in microseconds (core.h). */
struct dns_latency;
struct histogram;
struct ingress_metrics_view {
	const struct dns_latency *verify_dns;  /* the resolvers of verify = { } (dns.h) */
	const struct histogram *dkim_sign_us;  /* per signed message: hashing and signatures */
	const struct histogram *dkim_final_us; /* ... the signatures alone */
	uint64_t refused_max_sessions;         /* connections refused: smtp.max_sessions */
	uint64_t refused_max_sessions_per_ip;  /* ... smtp.max_sessions_per_ip */
};
void ingress_metrics_read(struct ingress *, struct ingress_metrics_view *);

/* Live reload (docs/operations.md, "Reloading"): what sessions need from cfg is made and
 * checked first (users, certificates, classification rules, DKIM keys — a key that cannot be
 * read is logged and dkim.on_key_error applies, as at start — and the sockets of listeners
 * new at their address), and only then swapped in: new sessions start on cfg, sessions open
 * now finish on the configuration they started with, listeners kept at their address go on
 * accepting on the same sockets (their settings change for new sessions), removed ones close.
 * 0, or -1 with the reason in err and nothing changed. cfg must stay referenced by the caller
 * until the call returns (the ingress takes its own reference). The SMTP thread count stays.
 * From the thread that started the ingress. */
int ingress_reconfigure(struct ingress *, const struct config *cfg, char *err, size_t errlen);
/* For check-config: every tls_certificate can be used. 0, or -1 with "file:line: ..." in err. */
int tls_check_config(const struct config *, char *err, size_t errlen);

/* ---- DKIM signing at reception (signing.c) ----
 *
 * The keys of the configuration's dkim_key sections and the choice of keys per message
 * (docs/dkim.md, "Signing"). Shared by every SMTP thread. */
struct dkim_signing;
struct dkim_signing_msg;

/* Reads every key. Always returns the table: a key that cannot be read is reported as a line
 * "file:line: dkim_key \"name\".key: reason" in err (lines separated by '\n'), counted in
 * *nerrors, and not used (the server starts; check-config fails). cfg must outlive it. */
struct dkim_signing *dkim_signing_new(const struct config *cfg, char *err, size_t errlen,
                                      unsigned *nerrors);
/* The same at a reload: a key whose file cannot be read now, but that prev (the table in use)
 * has read from the same file, goes on with what prev read (logged, not counted in
 * *nerrors). prev may be NULL. */
struct dkim_signing *dkim_signing_renew(const struct config *cfg, struct dkim_signing *prev,
                                        char *err, size_t errlen, unsigned *nerrors);
void dkim_signing_free(struct dkim_signing *);
size_t dkim_signing_count(const struct dkim_signing *);
/* What signing costs, per signed message in microseconds, for the metrics: in all (hashing as
 * the content arrived, then the signatures) and the final step alone. Observed from any
 * thread; kept by the ingress across reloads. */
struct dkim_signing_times {
	struct histogram *sign_us, *final_us;
};
void dkim_signing_times_init(struct dkim_signing_times *);
void dkim_signing_times_free(struct dkim_signing_times *);

/* One message: NULL when there are no keys at all. Feed it the content as received (after
 * dot-unstuffing, without our Received: field); keys are chosen when its header section is
 * complete. times: where its signing time goes (NULL: nowhere); it must outlive the message. */
struct dkim_signing_msg *dkim_signing_begin(const struct dkim_signing *, uint64_t now_s,
                                            struct dkim_signing_times *times);
void dkim_signing_update(struct dkim_signing_msg *, const void *data, size_t len);
/* 0 with *fields the DKIM-Signature fields (malloc'd; NULL when no key signs this message),
 * or -1 when the message must be deferred (dkim.on_key_error = defer and a chosen key cannot
 * be used), with the reason in err. */
int dkim_signing_final(struct dkim_signing_msg *, char **fields, char *err, size_t errlen);
void dkim_signing_end(struct dkim_signing_msg *);

/* ---- The DATA/BDAT body scanner (pure; public for its unit tests and fuzz target) ---- */

/* What a body violates; the session answers for the first that applies at end of data. */
#define BODY_TOO_BIG         0x01 /* 552 5.3.4 */
#define BODY_BARE_LF         0x02 /* 550 5.5.2 */
#define BODY_BARE_CR         0x04 /* 550 5.5.2 */
#define BODY_NUL             0x08 /* 554 5.6.0 */
#define BODY_LINE_TOO_LONG   0x10 /* 500 5.5.2 */
#define BODY_8BIT_UNDECLARED 0x20 /* 554 5.6.0 */

struct body_scanner {
	int state;           /* private */
	int dot_mode;        /* DATA: unstuff dots, stop at CRLF.CRLF; BDAT: raw */
	int allow_8bit;      /* BODY=8BITMIME or SMTPUTF8 was given */
	unsigned line_max;   /* octets incl. CRLF, 0 = unlimited */
	uint64_t size_max;   /* octets of content */
	uint64_t line_len;   /* octets of the current line so far */
	uint64_t size;       /* octets of content seen (after unstuffing) */
	unsigned violations; /* BODY_* bits */
	int eightbit;        /* content has octets >= 0x80 */
};

struct evbuffer;

void body_scanner_init(struct body_scanner *, int dot_mode, int allow_8bit, unsigned line_max,
                       uint64_t size_max);
/* Scans p[0..n): appends the content to out while no violation has been seen (after one,
 * content is only counted and discarded), and returns how many octets were consumed. In
 * dot mode, stops right after the terminating CRLF.CRLF and sets *done. */
size_t body_scanner_feed(struct body_scanner *, const char *p, size_t n, struct evbuffer *out,
                         int *done);

#endif
