/* conf/conf.h - the configuration: file format, schema, validation, embedded defaults.
 *
 * config_load() reads a libconfuse file (titled sections, include()), checks every value and
 * returns a plain struct that the rest of Drover reads; nobody else sees libconfuse. With no
 * file, the embedded defaults apply (they are the same defaults a file starts from). Every
 * error names file:line and the setting. Every default has its name and reason in
 * conf/defaults.h, and docs/configuration.md lists the same.
 *
 * A struct config is immutable once loaded; a reload builds a new one.
 */
#ifndef DROVER_CONF_H
#define DROVER_CONF_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An address prefix, "127.0.0.0/8", "::1", "2001:db8::/32". */
struct netmask {
	int family; /* AF_INET or AF_INET6 */
	uint8_t addr[16];
	unsigned prefix;
};

/* config.suppression.at_reception */
#define SUPPRESSION_OFF    0
#define SUPPRESSION_REFUSE 1
#define SUPPRESSION_DROP   2

/* listener_conf.verify: what is checked in mail received there, reported in an
 * Authentication-Results field (RFC 8601) added on top. DMARC needs the other two. */
#define VERIFY_SPF   0x1
#define VERIFY_DKIM  0x2
#define VERIFY_DMARC 0x4

/* What a listener is for (RFC 6409, RFC 8314); docs/configuration.md, listener. */
enum listener_role {
	ROLE_MX,          /* port 25: mail from anywhere to relay for relay_networks or users */
	ROLE_SUBMISSION,  /* port 587: AUTH required before MAIL, STARTTLS */
	ROLE_SUBMISSIONS, /* port 465: TLS from the first octet, AUTH required */
	ROLE_BOUNCE,      /* the bounce domain's MX: bounces and complaints for verp.domain,
	                     read, never relayed (docs/feedback.md) */
};

struct listener_conf {
	char *name; /* the section title */
	enum listener_role role;
	bool starttls;         /* offer STARTTLS (when there is a tls_certificate) */
	bool auth_without_tls; /* offer AUTH in clear too (loopback or a trusted network only) */
	char *address;         /* as written: "127.0.0.1:2525", "[::1]:2525" */
	struct sockaddr_storage sockaddr; /* resolved (numeric only) */
	socklen_t socklen;
	bool dkim_sign;  /* sign what is received here with the dkim_key sections */
	unsigned verify; /* VERIFY_* bits; 0: no Authentication-Results field */
};

/* A DKIM signing key: dkim_key "name" { }. Which messages it signs is decided by the domain
 * of their From field (docs/dkim.md, "Signing"). */
struct dkim_key_conf {
	char *name;     /* the section title */
	char *domain;   /* d=, lower case */
	char *selector; /* s= */
	char *key_path; /* PEM private key, as written (relative: to the working directory) */
	char *where;    /* "file:line" of the key setting, for errors found reading the key */
	/* From domains it signs: "example.com" (that domain and its subdomains) or "*" (any).
	 * Default: its own domain. */
	char **sign_for;
	size_t nsign_for;
	bool fallback; /* signs only the messages that no other key signs */
	bool header_relaxed, body_relaxed;
	char **headers; /* fields to sign; none: the default list (docs/dkim.md) */
	size_t nheaders;
	uint64_t expire_s; /* x= that long after t=; 0: none */
};

/* A certificate for the SMTP server: tls_certificate "name" { }. The first one is the default;
 * a client's SNI chooses among them by the names in each certificate. */
struct tls_certificate_conf {
	char *name;        /* the section title */
	char *certificate; /* PEM: the certificate, then its chain */
	char *key;         /* PEM private key */
	char *where;       /* "file:line" of the certificate setting, for errors found reading it */
};

/* A rate: count per period; count 0 = no limit. */
struct rate_conf {
	uint64_t count;
	uint64_t per_s;
};

/* AUTH (RFC 4954) and the limits on who may send how much. */
struct auth_conf {
	char *users_file; /* "name:crypt-hash[:domains]" lines; NULL: AUTH is not offered */
	char *users_where;
	unsigned failures_max; /* failed AUTH from one client IP within failure_window: blocked */
	uint64_t failure_window_s;
	uint64_t block_s;             /* how long a blocked client gets 421 at connect */
	struct rate_conf user_rate;   /* messages per authenticated user */
	struct rate_conf client_rate; /* messages per client IP address */
};

/* What a message that should be signed gets when its key cannot be used (unreadable after
 * a reload, a signing error). */
enum dkim_key_error_policy {
	DKIM_KEY_ERROR_DEFER,    /* 451 4.3.5 at the end of data: the client retries */
	DKIM_KEY_ERROR_UNSIGNED, /* accepted and sent without that signature, with a warning */
};

/* Limits of SMTP sessions; see docs/configuration.md for each default and its reason. */
struct smtp_limits {
	unsigned max_sessions;             /* in total; then 421 4.7.0 at connect */
	unsigned max_sessions_per_ip;      /* per client address; then 421 4.7.0 at connect */
	uint64_t max_message_size;         /* octets; SIZE= above it, or more data: 552 5.3.4 */
	unsigned max_recipients;           /* per message; then 452 4.5.3 */
	unsigned max_errors;               /* per session; then 421 4.7.0 and close */
	unsigned command_line_max;         /* octets incl. CRLF; then 500 5.5.2 */
	unsigned data_line_max;            /* octets incl. CRLF, 0 = unlimited; then 500 5.5.2 */
	unsigned command_timeout_s;        /* waiting for a command; then 421 4.4.2 and close */
	unsigned data_timeout_s;           /* waiting for data in DATA/BDAT; then 421 4.4.2 */
	bool reject_8bit_without_8bitmime; /* 8-bit body without BODY=8BITMIME: 554 5.6.0 */
};

/* Outbound TLS (STARTTLS) for a destination; docs/delivery.md, "TLS". */
enum tls_policy {
	TLS_POLICY_UNSET = 0, /* domain and route sections: not set there, the next level decides */
	TLS_POLICY_DISABLED,
	TLS_POLICY_OPPORTUNISTIC,
	TLS_POLICY_REQUIRED,        /* TLS or no delivery; any certificate */
	TLS_POLICY_REQUIRED_VERIFY, /* TLS with a certificate that verifies and names the host */
};

/* Settings for one destination domain: domain "example.com" { }. */
struct domain_conf {
	char *domain; /* the section title, lower case: "example.com" */
	enum tls_policy tls;
	const char *pool; /* pool for mail to this domain; NULL: as the route or delivery says */
};

/* A static route: mail for one domain goes to these hosts, tried in order, instead of the
 * domain's MX hosts. */
struct route_conf {
	char *domain;        /* the section title, lower case: "example.com" */
	enum tls_policy tls; /* for connections to these hosts; UNSET: as for the domain */
	char **hosts;        /* "host", "host:port", "192.0.2.1:2525", "[2001:db8::1]:25"; a host
	                        without a port uses delivery.port */
	size_t nhosts;
	const char *pool; /* pool for mail on this route; NULL: as the domain or delivery says */
};

/* An egress source: source "name" { address; ehlo }. A local address that outgoing
 * connections bind, and the name they announce in EHLO (docs/delivery.md, "Sources and
 * pools"). */
struct source_conf {
	char *name;                       /* the section title */
	char *address;                    /* as written: "192.0.2.10", "2001:db8::10" */
	struct sockaddr_storage sockaddr; /* the address, port 0 */
	socklen_t socklen;
	char *ehlo; /* the EHLO name; delivery.helo_name when the section does not say */
};

/* A source in a pool, with its share of the pool's connections. */
struct pool_member_conf {
	size_t source;   /* index into config.sources */
	unsigned weight; /* >= 1 */
};

/* A pool: pool "name" { source "a" { weight = 3 } ... }. Mail routed to it leaves from its
 * sources, chosen by smooth weighted round robin per destination. A later stream names a
 * pool the same way delivery.pool, route and domain sections do (config_pool()). */
struct pool_conf {
	char *name; /* the section title */
	struct pool_member_conf *members;
	size_t nmembers; /* >= 1 */
	unsigned total_weight;
};

#define DELIVERY_RETRY_MAX 16

/* A stream: stream "bulk" { priority; pool; retry; lifetime; reserve } (docs/routing.md).
 * Mail of each stream waits in its own queues per destination, so a backlog in one never
 * delays another. A message no rule classifies is in the stream named "default", which
 * exists whether or not the file has a section for it. */
struct stream_conf {
	char *name;        /* the section title */
	unsigned priority; /* 0..1000, default 0: at a destination, a free connection slot goes
	                      to the stream of highest priority with mail ready */
	const char *pool;  /* NULL: as the tenant or the destination says (config_message_pool) */
	uint64_t retry_s[DELIVERY_RETRY_MAX]; /* retry intervals; nretry 0: delivery.retry */
	size_t nretry;
	uint64_t lifetime_s;  /* 0: delivery.queue_lifetime */
	unsigned reserve_pct; /* share of each destination's connections that only this stream
	                         may use, 0..100 (rounded up to whole connections) */
};

/* A tenant: tenant "acme" { pool; stream "bulk" { pool } }. Its messages may leave from its
 * own pools (and are suppressed per tenant, suppress.h). */
struct tenant_stream_conf {
	const char *stream; /* a stream's name (validated: a stream section, or "default") */
	const char *pool;   /* a pool's name (validated) */
};
struct tenant_conf {
	char *name;       /* the section title */
	const char *pool; /* NULL: as the stream or the destination says */
	struct tenant_stream_conf *streams;
	size_t nstreams;
};

/* A header condition of a classification rule, written "Name: pattern". */
struct rule_header_conf {
	char *name;    /* the field name, as written (compared case-insensitively) */
	char *pattern; /* PCRE2, caseless, on the field's unfolded value; "": the field is there */
};

/* classification { rule { } } (docs/routing.md). A rule matches when every condition it
 * gives holds (a list holds if any element does; no condition: every message); each result
 * comes from the first matching rule that sets it. The patterns are compiled here only to
 * check them (a bad one is a file:line error); route/ compiles them again for matching and
 * keeps that code, so conf/ hands out no PCRE2 objects. Names are validated: results point
 * at the sections' own names ("default" for the default stream). */
struct classification_rule_conf {
	int line;         /* of its "rule" keyword: the Reception record's "rule" */
	char *where;      /* "file:line", for logs */
	char **listeners; /* listener section names */
	size_t nlisteners;
	char **auth_users; /* authenticated user names, exact */
	size_t nauth_users;
	struct netmask *clients; /* client address prefixes */
	size_t nclients;
	char **mail_from_domains; /* lower case: the envelope sender's domain, or a parent */
	size_t nmail_from_domains;
	char **from_domains; /* lower case: the header From's domain, or a parent */
	size_t nfrom_domains;
	struct rule_header_conf *headers;
	size_t nheaders;
	unsigned min_recipients; /* 0: no lower bound */
	unsigned max_recipients; /* 0: no upper bound */
	const char *stream;      /* results; NULL: not set by this rule */
	const char *tenant;
	char *campaign;        /* a literal campaign, or */
	char *campaign_header; /* the field whose value is the campaign */
	const char *pool;
	int trust_headers; /* -1 not set; 0 or 1: X-Drover-Stream and X-Drover-Pool are honoured */
	bool final;        /* no rule after this one is evaluated when it matches */
};

/* A webhook: webhook "name" { } (docs/webhooks.md). Event records go to url as JSON arrays
 * in POST requests, from an on-disk backlog of their own, retried until acknowledged. */
struct webhook_conf {
	char *name;    /* the section title */
	char *url;     /* http:// or https:// */
	char **events; /* record types sent; none: every type but Webhook* */
	size_t nevents;
	unsigned batch_max;    /* records per request */
	uint64_t batch_wait_s; /* a partial batch waits at most this long; 0: at once */
	uint64_t timeout_s;    /* per request */
	uint64_t retry_max_s;  /* the backoff doubles from 1 s up to this */
	uint64_t backlog_max;  /* octets on disk; past it the oldest records are dropped */
	char **headers;        /* "Name: value", added to each request */
	size_t nheaders;
	char *tls_ca_file; /* PEM CA certificates; NULL: the system's */
};

/* Outbound delivery; see docs/configuration.md for each default and its reason. */
struct delivery_conf {
	/* Whether mail is sent at all. "auto" (the default) means: when the configuration says
	 * how, with a delivery { } section or a route; so the embedded defaults queue mail and
	 * never send it. Mail waits in the queue meanwhile (it is not expired). */
	bool enabled;
	char *helo_name;  /* EHLO name; default: hostname */
	unsigned port;    /* the mail exchangers' SMTP port (25) */
	char **smarthost; /* hosts for every domain without a route; none = MX delivery */
	size_t nsmarthost;
	char **dns_forwarders; /* "ip" or "ip@port", NULL-terminated (as dns_options wants);
	                          none = the system's resolver */
	size_t ndns_forwarders;
	unsigned dns_timeout_s;
	int ip_version; /* 0 = both (IPv6 first, RFC 6724 style), 4 = IPv4 only, 6 = IPv6 only */
	uint64_t retry_s[DELIVERY_RETRY_MAX]; /* intervals; the last one repeats */
	size_t nretry;
	unsigned retry_jitter_pct;
	uint64_t queue_lifetime_s;    /* then expired and bounced */
	unsigned max_connections;     /* per destination (the concurrency window's top) */
	unsigned initial_connections; /* the window's start (slow start) */
	unsigned max_messages_per_connection;
	unsigned max_recipients_per_transaction;
	unsigned dead_after; /* failed connections in a row: destination held */
	uint64_t dead_cooldown_s;
	/* Timeouts, seconds (RFC 5321 §4.5.3.2 values by default). */
	unsigned connect_timeout_s, greeting_timeout_s, helo_timeout_s, mail_timeout_s,
	    rcpt_timeout_s, data_timeout_s, data_block_timeout_s, dot_timeout_s, idle_timeout_s;
	char *bounce_rules; /* the bounce classifier's rules file; NULL: the built-in rules */
	/* The shaping rules file (docs/shaping.md); NULL: the built-in rules (etc/shaping.conf);
	 * "none": no rules, delivery's own settings only. */
	char *shaping;
	char *postmaster;        /* receives the DSNs that cannot go to their sender; NULL: none */
	uint64_t dsn_return_max; /* largest original returned whole in a DSN */
	/* Connections at once over all destinations (each is a descriptor). */
	unsigned max_connections_total;
	/* A recipient still deferred this long after reception gets one delay notice (a DSN,
	 * Action: delayed); 0: none. */
	uint64_t delay_notice_after_s;
	enum tls_policy tls;      /* every destination's, unless a domain or route says */
	char *tls_ca_file;        /* PEM CA certificates for required-verify; NULL: the system's */
	unsigned tls_min_version; /* TLS1_2_VERSION (0x0303) or TLS1_3_VERSION (0x0304) */
	/* Opportunistic: a server whose TLS handshake failed gets mail in clear, without
	 * STARTTLS, for this long; 0: STARTTLS is tried (and fails) on every connection. */
	uint64_t tls_failure_memory_s;
	/* The pool for all mail unless a route or domain section names another; NULL: no pool,
	 * the system's default address and helo_name. Points into config.pools. */
	const char *pool;
};

struct config {
	_Atomic unsigned refs; /* config_ref / config_unref */
	char *path;            /* the file read, NULL for the embedded defaults */
	char *hostname;        /* greeting, Received:, EHLO; default: the machine's name */
	char *user;            /* started as root: the user to become once set up ("drover") */
	unsigned threads;      /* SMTP event-loop threads; 0 in the file = one per CPU (at most 16):
	                          config_load() resolves it, so it is never 0 here */

	char *spool_directory;
	uint64_t spool_max_size;
	unsigned spool_batch_max;

	char *event_log;     /* path, "-" for stdout, "" for none */
	char *log_level;     /* "debug", "info", "warn", "error" */
	int log_level_value; /* the same as an enum log_level of core/core.h */

	struct netmask *relay_networks;
	size_t nrelay_networks;

	struct listener_conf *listeners;
	size_t nlisteners;

	struct smtp_limits smtp;

	struct delivery_conf delivery;
	struct route_conf *routes;
	size_t nroutes;
	struct domain_conf *domains; /* sorted by domain (config_domain) */
	size_t ndomains;
	struct source_conf *sources; /* egress sources, in the order of the file */
	size_t nsources;
	struct pool_conf *pools; /* in the order of the file */
	size_t npools;
	struct stream_conf *streams; /* in the order of the file */
	size_t nstreams;
	struct tenant_conf *tenants; /* in the order of the file */
	size_t ntenants;
	struct classification_rule_conf *classification_rules; /* in the order of the file */
	size_t nclassification_rules;

	struct tls_certificate_conf *tls_certificates; /* in the order of the file */
	size_t ntls_certificates;
	unsigned tls_min_version; /* TLS1_2_VERSION (0x0303) or TLS1_3_VERSION (0x0304) */
	char *tls_ciphers;        /* TLS 1.2 cipher list (OpenSSL syntax); NULL: OpenSSL's */

	struct auth_conf auth;

	/* The suppression list: suppression { }. */
	struct {
		char *directory;  /* its LMDB environment; default: <spool directory>/suppress */
		int at_reception; /* SUPPRESSION_OFF, _REFUSE (550 5.7.1), _DROP (250, dropped) */
	} suppression;

	/* VERP return paths and the bounce listener: verp { } (docs/feedback.md). */
	struct {
		char *domain; /* the bounce domain, lower case; NULL: VERP off */
		char *prefix; /* the local part before "+TOKEN" */
		char *secret; /* the signing secret, read from secret_file at load; NULL when off */
		char *previous_secret; /* still accepted (rotation); NULL: none */
		char *secret_file, *previous_secret_file; /* as written, for logs */
	} verp;

	/* The HTTP control plane (metrics, admin API): control { }. */
	struct {
		char *address; /* "127.0.0.1:8025"; "" = off */
		struct sockaddr_storage sockaddr;
		socklen_t socklen;
		char *token;               /* bearer token; required off loopback; NULL = none */
		uint64_t max_request_size; /* octets of a request body (POST /api/v1/inject) */
	} control;

	struct dkim_key_conf *dkim_keys; /* in the order of the file */
	size_t ndkim_keys;
	enum dkim_key_error_policy dkim_on_key_error;

	struct webhook_conf *webhooks; /* in the order of the file */
	size_t nwebhooks;

	/* A fingerprint of each top-level setting and titled section (digest.c), for what a
	 * reload changes. */
	struct config_digest {
		char *key; /* "threads", "delivery", "listener \"mx\"" */
		uint64_t hash;
	} * digest;
	size_t ndigest;
};

/* The route for a domain (exact match, case-insensitive), or NULL. */
const struct route_conf *config_route(const struct config *, const char *domain);
/* The domain section for a domain (exact match, case-insensitive), or NULL. */
const struct domain_conf *config_domain(const struct config *, const char *domain);
/* The TLS policy for mail to a domain: its route's tls if set, else its domain section's,
 * else delivery.tls. Never TLS_POLICY_UNSET. */
enum tls_policy config_tls_policy(const struct config *, const char *domain);
/* The pool of that name, or NULL. */
const struct pool_conf *config_pool(const struct config *, const char *name);
/* The pool for mail to a domain: its route's pool if set, else its domain section's, else
 * delivery.pool; NULL when none is configured (the system's default address). */
const struct pool_conf *config_pool_for(const struct config *, const char *domain);
/* The stream section of that name, or NULL (also for "default" without a section). */
const struct stream_conf *config_stream(const struct config *, const char *name);
/* The tenant section of that name, or NULL. */
const struct tenant_conf *config_tenant(const struct config *, const char *name);
/* The pool a message's mail to a domain leaves from, by the first of: the message's own
 * pool (a classification rule's, or a trusted X-Drover-Pool); its tenant's pool for its
 * stream; its tenant's pool; its stream's pool; config_pool_for(domain). Any argument but
 * cfg and domain may be NULL; stream NULL is "default". Unknown names count as unset (a
 * spool written under another configuration). NULL: the system's default address. */
const struct pool_conf *config_message_pool(const struct config *, const char *pool,
                                            const char *stream, const char *tenant,
                                            const char *domain);
/* "disabled", "opportunistic", "required", "required-verify"; NULL for UNSET or unknown. */
const char *tls_policy_name(enum tls_policy);

/* True if the key signs mail whose From domain is from_domain (lower case): a sign_for entry
 * is that domain or a parent of it, or "*". */
bool config_dkim_key_covers(const struct dkim_key_conf *, const char *from_domain);
/* The keys that sign mail from from_domain: every non-fallback key covering it or, if there
 * is none, every fallback key covering it. Their indexes into cfg->dkim_keys go to out (at
 * most max); returns how many there are. */
size_t config_dkim_keys_for(const struct config *, const char *from_domain, size_t *out,
                            size_t max);

/* path NULL: embedded defaults. On error returns NULL and writes every error found, one per
 * line ("file:line: setting: problem"), into err. Every bad value is reported; a syntax
 * error or an unknown setting ends the parse, so it is the last error reported. Warnings
 * (an open relay_networks, max_recipients below RFC 5321's 100) go to log_warn().
 * include("file") inserts a file (relative to the one that includes it) where it appears.
 * Safe from any thread: loads are serialized (libconfuse's scanner is global). */
struct config *config_load(const char *path, char *err, size_t errlen);
/* The same for a reload of the running configuration: files read as root at start that the
 * server can no longer read (the VERP secrets, root-only as they should be) keep the values
 * running has, when the setting names the same file. */
struct config *config_reload(const char *path, const struct config *running, char *err,
                             size_t errlen);
void config_free(struct config *);
/* A loaded configuration is shared by what runs on it (a live reload swaps in a new one while
 * sessions and connections finish on the old): config_load() gives one reference, ref adds
 * one (returns its argument), unref drops one and frees at the last (config_free() is an
 * unref). Any thread; NULL is accepted. */
struct config *config_ref(const struct config *);
void config_unref(const struct config *);

/* What a reload from old to new changes, top-level setting by setting and section by section
 * (key: "delivery", "listener \"mx\"", or a setting a restart needs such as
 * "control.address"): fn once per difference; restart is true for what a running server
 * cannot take over (docs/operations.md, "Reloading"). Returns the number of differences. */
enum config_change { CONFIG_ADDED, CONFIG_CHANGED, CONFIG_REMOVED };
typedef void config_change_fn(void *arg, const char *key, enum config_change, bool restart);
size_t config_changes(const struct config *old, const struct config *new, config_change_fn *fn,
                      void *arg);
/* True if a and b have the same top-level setting name, or the same sections of that name
 * (titled: all of them), with the same values. */
bool config_same_settings(const struct config *a, const struct config *b, const char *name);

/* Parses "127.0.0.0/8", "::1" (a full-length prefix), "2001:db8::/32". 0 or -1. */
int netmask_parse(const char *text, struct netmask *out);
/* True if sa (AF_INET, AF_INET6 incl. v4-mapped) is inside any of the n masks. */
bool netmask_match_any(const struct netmask *masks, size_t n, const struct sockaddr *sa);

/* "25M", "1G", "4096", "10k" (1024-based) -> octets. 0 or -1. */
int parse_size(const char *text, uint64_t *out);
/* "300", "300s", "5m", "2h", "1d" -> seconds. 0 or -1. */
int parse_duration_s(const char *text, uint64_t *out);

#endif
