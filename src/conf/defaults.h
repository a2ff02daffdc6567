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
/* Messages are signed wherever they arrive when a dkim_key matches their From domain: a
 * key is configured to be used. A listener that receives inbound mail turns it off. */
#define DEF_LISTENER_DKIM_SIGN true
/* Checking is work and DNS traffic a relay for its own platform does not need. */
#define DEF_LISTENER_VERIFY "{}"

/* Started as root, the server becomes this user once its ports are bound and its keys read
 * (scripts/deps.sh creates it): a flaw in code that reads from the network then does not
 * hand out root. */
#define DEF_USER "drover"

/* A listener relays mail for relay_networks and authenticated users, as port 25 does. */
#define DEF_LISTENER_ROLE "mx"
/* STARTTLS is offered wherever there is a certificate: encryption costs little. */
#define DEF_LISTENER_STARTTLS true
/* A password in clear on the network is a password given away. */
#define DEF_LISTENER_AUTH_WITHOUT_TLS false
/* TLS 1.0 and 1.1 are deprecated (RFC 8996). */
#define DEF_TLS_MIN_VERSION "TLSv1.2"
/* Failed AUTH attempts from one address before it is blocked, within the window; a mail
 * client with a stale password retries a few times, a guesser thousands. */
#define DEF_AUTH_FAILURES_MAX   5
#define DEF_AUTH_FAILURE_WINDOW (10 * 60)
#define DEF_AUTH_BLOCK_TIME     (15 * 60)
/* No rate limit unless configured: a platform's own senders set their own. */
#define DEF_RATE "0"

/* Metrics and the admin API on loopback: reachable by the operator's tools on the host,
 * by nobody else. */
#define DEF_CONTROL_ADDRESS "127.0.0.1:8025"
/* A request body the control plane reads whole into memory: an injection of thousands of
 * recipients with attachments fits; an accident or a hostile client cannot take more. The
 * other endpoints take far less (64 KiB). */
#define DEF_CONTROL_MAX_REQUEST_SIZE     (32L * 1024 * 1024)
#define LIM_CONTROL_MAX_REQUEST_SIZE_MIN (64L * 1024)
#define LIM_CONTROL_MAX_REQUEST_SIZE_MAX (1L * 1024 * 1024 * 1024)

/* A recipient on the suppression list is refused at RCPT (550 5.7.1): the client learns at
 * once, and nothing is queued for an address that hard-bounced or complained. */
#define DEF_SUPPRESSION_AT_RECEPTION "refuse"

/* relaxed/relaxed survives the header refolding and whitespace changes that relays and
 * list software make; simple breaks on them. It is what mailbox providers sign with. */
#define DEF_DKIM_CANONICALIZATION "relaxed/relaxed"
/* A key that cannot be used defers rather than sending unsigned: an unsigned message from a
 * domain that publishes DMARC p=reject is rejected, so waiting for the operator is safer. */
#define DEF_DKIM_ON_KEY_ERROR "defer"
/* No x= by default: expired signatures break forwarded and delayed mail. */
#define DEF_DKIM_EXPIRE 0
/* x= below an hour would expire before a retried message is delivered. */
#define LIM_DKIM_EXPIRE_MIN 3600

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

/* ---- delivery { } ----
 *
 * The delivery engine's own headers define the same values for callers that run without a
 * configuration (tests, tools): src/queue/queue.h (DEF_RETRY_*, DEF_QUEUE_*),
 * src/delivery/delivery.h (DELIVERY_DEF_*_MS), src/dns/dns.h (DNS_DEFAULT_TIMEOUT_MS) and
 * src/bounce/bounce.h (DSN_DEF_RETURN_MAX). conf/ does not link those components, so the
 * values are copied here; tests/unit/test_conf_delivery.c checks that they still agree. */

/* helo_name: no constant; the top-level hostname, the name the greeting already uses, so
 * that one PTR and SPF record cover both directions. */

/* RFC 5321 §4.5.4.2 (and every MX on the Internet): SMTP relays over port 25. */
#define DEF_DELIVERY_PORT 25
/* dns.h DNS_DEFAULT_TIMEOUT_MS: unbound retries a silent server for much longer than a
 * delivery attempt should wait to learn that it must retry later. */
#define DEF_DELIVERY_DNS_TIMEOUT 10
/* A resolver silent for 5 minutes will not answer; the message waits for its retry. */
#define LIM_DELIVERY_DNS_TIMEOUT_MAX 300
/* Both families, IPv6 first (RFC 6724 order), as the MX hosts publish them. */
/* auto: deliver only when the configuration says how (a delivery { } section or a route), so
 * that the embedded defaults, `make run` and a test rig that only receives never send mail
 * towards the Internet by accident. */
#define DEF_DELIVERY_ENABLED    "auto"
#define DEF_DELIVERY_IP_VERSION "any"
/* queue.h DEF_RETRY_INTERVALS_S (300, 600, 1200, 2400, 3600): 5, 10, 20, 40 minutes, then
 * hourly. The doubling reaches a greylisting server (typically 5-15 min) early; hourly retries
 * after that keep a deferred backlog from hammering a receiver that is throttling us. A
 * libconfuse list. */
#define DEF_DELIVERY_RETRY "{\"5m\", \"10m\", \"20m\", \"40m\", \"1h\"}"
/* queue.h QUEUE_RETRY_MAX (conf.h DELIVERY_RETRY_MAX): a longer list is a typo, not a
 * policy. */
#define LIM_DELIVERY_RETRY_COUNT 16
/* More than a day between two attempts, inside a lifetime of days, is a typo for hours. */
#define LIM_DELIVERY_RETRY_INTERVAL_MAX 86400
/* queue.h DEF_RETRY_JITTER_PCT: messages deferred in one burst come back spread over a minute
 * or more instead of all at once, without drifting far from the schedule. */
#define DEF_DELIVERY_RETRY_JITTER 10
/* queue.h LIM_RETRY_JITTER_PCT_MAX: beyond ±50 % the schedule would lose its order. */
#define LIM_DELIVERY_RETRY_JITTER_MAX 50
/* queue.h DEF_QUEUE_LIFETIME_S: Postfix's maximal_queue_lifetime and RFC 5321 §4.5.4.1's "at
 * least 4-5 days". */
#define DEF_DELIVERY_QUEUE_LIFETIME (5 * 86400)
/* Seconds are allowed: a time-critical stream (one-time codes) may want mail that cannot go
 * within a minute bounced rather than delivered late, and tests want expiry quickly. */
#define LIM_DELIVERY_QUEUE_LIFETIME_MIN 1
/* A message months old is of no use to its sender: longer is a typo. */
#define LIM_DELIVERY_QUEUE_LIFETIME_MAX (100 * 86400)
/* queue.h DEF_QUEUE_MAX_WINDOW: Postfix's default_destination_concurrency_limit. */
#define DEF_DELIVERY_MAX_CONNECTIONS 20
/* queue.h DEF_QUEUE_INITIAL_WINDOW: a new destination gets 2 connections until it has shown
 * it answers; mailbox providers punish bursts from unknown senders. */
#define DEF_DELIVERY_INITIAL_CONNECTIONS 2
/* No receiver accepts more from one client; each costs a descriptor. */
#define LIM_DELIVERY_CONNECTIONS_MAX 1000
/* queue.h DEF_QUEUE_BATCH_MAX: reusing a connection saves a handshake (and a TLS one) per
 * message; a bound makes a busy destination's connections turn over, so one cannot hold a slot
 * at the receiver for ever. */
#define DEF_DELIVERY_MAX_MESSAGES_PER_CONNECTION 100
/* RFC 5321 §4.5.3.1.8: a server must accept at least 100 recipients per transaction, so 100
 * never meets a 452 from a conforming server. */
#define DEF_DELIVERY_MAX_RECIPIENTS_PER_TRANSACTION 100
/* queue.h DEF_QUEUE_DEAD_AFTER: Postfix declares a site dead after a cohort of failures; 5
 * tolerates one bad MX host. */
#define DEF_DELIVERY_DEAD_AFTER 5
/* queue.h DEF_QUEUE_DEAD_COOLDOWN_S: Postfix's minimal_backoff_time. */
#define DEF_DELIVERY_DEAD_COOLDOWN 300
/* Timeouts, seconds. delivery.h DELIVERY_DEF_*_MS; RFC 5321 §4.5.3.2 where it gives one. */
#define DEF_DELIVERY_CONNECT_TIMEOUT    30  /* not in the RFC: a silent host costs 30 s */
#define DEF_DELIVERY_GREETING_TIMEOUT   300 /* §4.5.3.2.1 initial 220 */
#define DEF_DELIVERY_HELO_TIMEOUT       300 /* EHLO/HELO: as MAIL */
#define DEF_DELIVERY_MAIL_TIMEOUT       300 /* §4.5.3.2.2 */
#define DEF_DELIVERY_RCPT_TIMEOUT       300 /* §4.5.3.2.3 */
#define DEF_DELIVERY_DATA_TIMEOUT       120 /* §4.5.3.2.4 DATA's 354 */
#define DEF_DELIVERY_DATA_BLOCK_TIMEOUT 180 /* §4.5.3.2.5 no write progress */
#define DEF_DELIVERY_DOT_TIMEOUT        600 /* §4.5.3.2.6 reply to the final "." */
/* Kept open with nothing to send: long enough for the scheduler to find the next message for
 * the same site, short enough not to hold a slot at the receiver (Postfix keeps 2 s). */
#define DEF_DELIVERY_IDLE_TIMEOUT 5
/* bounce.h DSN_DEF_RETURN_MAX: a DSN returns the original whole up to 128 KiB, enough for a
 * typical HTML transactional message; a larger one comes back as its headers only, so that a
 * bounce storm of newsletters does not double the outbound traffic (Postfix's
 * bounce_size_limit is 50 KB). 0 = always headers only. */
#define DEF_DELIVERY_DSN_RETURN_MAX (128L * 1024)
/* Counts of failed connections: beyond 1000 a dead site is never detected. */
#define LIM_DELIVERY_DEAD_AFTER_MAX 1000
/* queue.h DEF_ENGINE_MAX_CONNECTIONS_TOTAL: connections open at once over all destinations.
 * Each is a descriptor, and the SMTP listeners and sessions need theirs too: 512 fits beside
 * smtp.max_sessions (1000) under a descriptor limit of a few thousand. */
#define DEF_DELIVERY_MAX_CONNECTIONS_TOTAL 512
/* One event loop serves every connection; past 65,536 at once a source address runs out of
 * local ports towards one receiver, and a value that large is a typo for a smaller one. */
#define LIM_DELIVERY_MAX_CONNECTIONS_TOTAL_MAX 65536
/* No delay notices (0): the sender hears only of the final outcome. Operators usually set
 * 4h, as Postfix's delay_warning_time is usually set. */
#define DEF_DELIVERY_DELAY_NOTICE_AFTER 0
/* Opportunistic STARTTLS for every destination: whatever can be encrypted is, and no mail
 * waits because a server has no TLS or a certificate that does not verify for its MX name
 * (most do not: RFC 7672 §1.3). Destinations known to do better get a domain section. */
#define DEF_DELIVERY_TLS "opportunistic"
/* delivery.h DELIVERY_TLS_DEF_MIN_VERSION: RFC 8996 deprecates TLS 1.0 and 1.1, and every
 * mailbox provider speaks 1.2. */
#define DEF_DELIVERY_TLS_MIN_VERSION "TLSv1.2"
/* A server whose handshake failed gets mail in clear without STARTTLS for an hour: a busy
 * destination does not pay a failed handshake per connection, and a repaired server is
 * noticed within the hour. */
#define DEF_DELIVERY_TLS_FAILURE_MEMORY 3600
/* Beyond a week, a repaired server would go on receiving in clear for too long. */
#define LIM_DELIVERY_TLS_FAILURE_MEMORY_MAX (7 * 86400)

/* Egress pools: a source without a weight has weight 1, so pool "p" { source "a" { }
 * source "b" { } } shares evenly. Weights above 1000 express nothing that smaller ones
 * cannot (a share of 1/1000), and keep the round robin's sums far from overflow. */
#define DEF_POOL_WEIGHT     1
#define LIM_POOL_WEIGHT_MAX 1000

/* ---- stream "name" { }, tenant "name" { }, classification { } (docs/routing.md) ---- */

/* Every stream equal until the operator ranks them: a new stream must not overtake
 * transactional mail by accident. */
#define DEF_STREAM_PRIORITY 0
/* A thousand ranks are more than any operator has streams; a bound keeps the value a rank,
 * not an arbitrary weight. */
#define LIM_STREAM_PRIORITY_MAX 1000
/* No reserved share: a stream that needs connections kept free for it says so. */
#define DEF_STREAM_RESERVE "0%"
/* Rules are evaluated in order for every message: a thousand is far more than a platform's
 * senders need, and keeps the cost of one classification small. */
#define LIM_CLASSIFICATION_RULES_MAX 1000
/* Entries of one condition's list (clients, domains, users, headers): longer lists belong in
 * fewer, broader entries (a prefix, a parent domain). */
#define LIM_RULE_LIST_MAX 1000
/* Campaign names go into the envelope, event records and metrics labels: short, printable
 * ASCII (a campaign_header value that is not is ignored). */
#define LIM_CAMPAIGN_MAX 64
/* A header pattern longer than this is a mistake; PCRE2 compiles what is given at load. */
#define LIM_RULE_PATTERN_MAX 1024

/* ---- webhook "name" { } (docs/webhooks.md) ---- */

/* 100 records make a request of some 50 KB: few requests per second at volume, and a body
 * any receiver's default request-size limit accepts. */
#define DEF_WEBHOOK_BATCH_MAX 100
/* A request is held in memory (and resent whole): beyond 10,000 records a batch is megabytes. */
#define LIM_WEBHOOK_BATCH_MAX 10000
/* A record reaches the receiver within about a second when traffic is light. */
#define DEF_WEBHOOK_BATCH_WAIT 1
/* An hour-old partial batch is no longer an event stream. */
#define LIM_WEBHOOK_BATCH_WAIT_MAX 3600
/* A receiver that has not answered in 10 s is failing; the batch is retried. */
#define DEF_WEBHOOK_TIMEOUT     10
#define LIM_WEBHOOK_TIMEOUT_MAX 600
/* Retries double from 1 s; at 10 minutes a receiver that comes back is noticed soon
 * enough, and one down for a day costs a few hundred requests. */
#define DEF_WEBHOOK_RETRY_MAX     (10 * 60)
#define LIM_WEBHOOK_RETRY_MAX_MAX 86400
/* 1 GiB holds about two million records: a day of a busy server's events while the
 * receiver is down, and little of a disk. */
#define DEF_WEBHOOK_BACKLOG_MAX (1L * 1024 * 1024 * 1024)
/* Below 64 KiB the backlog would not hold a batch of large records. */
#define LIM_WEBHOOK_BACKLOG_MAX_MIN (64L * 1024)

/* ---- verp { } (docs/feedback.md): feedback.h's bounds, held equal by test_conf_verp ---- */

/* The local part before "+TOKEN": what most senders use, short enough for the token. */
#define DEF_VERP_PREFIX "bounce"
/* 7 + "+" + the 56-character token = RFC 5321's 64-octet local part. */
#define LIM_VERP_PREFIX_MAX 7
/* Shorter secrets are guessable offline from one token; longer buy nothing over
 * HMAC-SHA256's block. */
#define LIM_VERP_SECRET_MIN 16
#define LIM_VERP_SECRET_MAX 128

/* Counts above a million are typos (sessions, per-ip sessions). */
#define LIM_COUNT_MAX 1000000

/* At most this many errors are reported; past it the rest are counted. */
#define LIM_ERRORS_REPORTED 50

#endif
