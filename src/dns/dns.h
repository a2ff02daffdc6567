/* dns/dns.h - asynchronous DNS for delivery and authentication: MX (with the RFC 5321 §5.1
 * implicit MX and the RFC 7505 null MX), A/AAAA, the addresses of a domain's mail exchangers,
 * TXT (SPF, DKIM, DMARC) and any other type (TLSA).
 *
 * Resolution runs in libunbound's background thread, which answers on a descriptor the event
 * loop watches, so no call here blocks the loop. Answers are cached by unbound for their TTL
 * (negative answers for the zone's SOA minimum), one cache per resolver.
 *
 * Thread-safety: none. One resolver per event loop thread, used only from that loop.
 *
 * Callbacks: every callback runs later from the event loop, never from inside the call that
 * started its query (not for a cached answer, not for an invalid name), exactly once unless
 * the query is cancelled first. The result and all it points to are valid only during the
 * callback. A query handle is valid until its callback returns or dns_cancel() is called.
 * Every query ends within the resolver's deadline (DNS_TEMPFAIL "timed out" at worst).
 */
#ifndef DROVER_DNS_H
#define DROVER_DNS_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct event_base;
struct dns_resolver;
struct dns_query;

/* A domain name as text, without the trailing dot: 255 octets in wire form (RFC 1035 §2.3.4)
 * is at most 253 characters. */
#define DNS_NAME_MAX 253
/* Unbound retries a silent server for a long time; a delivery attempt should not wait that
 * long to learn it must retry later. */
#define DNS_DEFAULT_TIMEOUT_MS 10000
/* MX hosts kept per domain, best preference first. Nobody publishes more; a hostile zone that
 * does must not make one delivery attempt resolve hundreds of names. */
#define DNS_MX_HOSTS_MAX 16
/* Addresses kept per host and family (a round-robin pool larger than this adds nothing to one
 * delivery attempt). */
#define DNS_ADDRS_PER_FAMILY_MAX 16

enum dns_status {
	DNS_OK = 0,   /* records found */
	DNS_NODATA,   /* the name exists without records of that type; dns_mx_addrs(): no MX
	                 host has an address (delivery bounces 5.4.4) */
	DNS_NXDOMAIN, /* the name does not exist (delivery bounces 5.1.2) */
	DNS_NULL_MX,  /* RFC 7505: the domain accepts no mail (delivery bounces 5.1.10) */
	DNS_TEMPFAIL, /* SERVFAIL, timeout, refused, malformed answer, resolver error: retry */
	DNS_BADNAME,  /* not a valid domain name: empty, too long, empty or long label */
};

/* "OK", "NODATA", "NXDOMAIN", "NULL_MX", "TEMPFAIL", "BADNAME" (for logs). */
const char *dns_status_name(enum dns_status);

/* ---- The resolver ---- */

/* Answer times by record type (latency.c), for the metrics: one histogram per type, in
 * microseconds (bounds HISTOGRAM_LATENCY_US), shared by any number of resolvers on any
 * threads. A lookup is timed from the question to its answer or to the deadline. */
struct dns_latency;
enum dns_latency_type {
	DNS_LATENCY_MX,
	DNS_LATENCY_A,
	DNS_LATENCY_AAAA,
	DNS_LATENCY_TXT,
	DNS_LATENCY_OTHER, /* TLSA, PTR, ... */
	DNS_LATENCY_TYPES
};
struct dns_latency *dns_latency_new(void);
void dns_latency_free(struct dns_latency *); /* after every resolver using it */
/* "MX", "A", "AAAA", "TXT", "other". */
const char *dns_latency_type_name(enum dns_latency_type);
struct histogram;
const struct histogram *dns_latency_histogram(const struct dns_latency *, enum dns_latency_type);

struct dns_options {
	/* Forwarders, "192.0.2.53" or "127.0.0.1@5353" (IP addresses, not names), NULL-terminated.
	 * NULL or empty: the nameservers of resolv_conf. Loopback servers are allowed. */
	const char *const *forwarders;
	const char *resolv_conf; /* NULL: /etc/resolv.conf */
	unsigned timeout_ms;     /* per query, all lookups included; 0: DNS_DEFAULT_TIMEOUT_MS */
	uint64_t seed;           /* shuffle of equal MX preferences; 0: from getrandom(2) */
	struct dns_latency *latency; /* answer times go there; NULL: not kept. Outlives it. */
};

/* NULL on error, with a message in err ("dns: forwarder \"x\": syntax error"). */
struct dns_resolver *dns_resolver_new(struct event_base *, const struct dns_options *, char *err,
                                      size_t errlen);
/* Cancels the queries in flight (no callback runs). Call it before event_base_free(). */
void dns_resolver_free(struct dns_resolver *);
/* Stops a query: its callback will not run. A no-op from inside the query's own callback. */
void dns_cancel(struct dns_query *);

/* ---- MX ---- */

struct dns_mx_host {
	uint16_t preference;
	const char *name; /* without the trailing dot, case as published */
};

struct dns_mx_result {
	enum dns_status status; /* OK, NXDOMAIN, NULL_MX, TEMPFAIL or BADNAME (never NODATA) */
	const char *domain;     /* as asked */
	bool implicit;          /* no MX records: hosts[0] is the domain itself (RFC 5321 §5.1) */
	uint32_t ttl; /* seconds this answer stays valid; 0 unless OK, NXDOMAIN, NULL_MX */
	const struct dns_mx_host *hosts; /* OK: by preference, equal ones shuffled */
	size_t nhosts;                   /* at most DNS_MX_HOSTS_MAX */
	const char *error;               /* unless OK: why, for logs ("SERVFAIL", "timed out") */
};

typedef void dns_mx_cb(void *arg, const struct dns_mx_result *);
struct dns_query *dns_mx(struct dns_resolver *, const char *domain, dns_mx_cb *, void *arg);

/* ---- Addresses ---- */

struct dns_address {
	int family; /* AF_INET or AF_INET6 */
	union {
		struct in_addr v4;
		struct in6_addr v6;
	} u;
};

/* Which families to look up, and which comes first when both are used. */
enum dns_ip_policy {
	DNS_IP_PREFER_V6 = 0,
	DNS_IP_PREFER_V4,
	DNS_IP_V6_ONLY,
	DNS_IP_V4_ONLY,
};

struct dns_addr_result {
	enum dns_status status; /* OK if any address; else TEMPFAIL if a family failed so */
	const char *host;
	uint32_t ttl;
	const struct dns_address *addrs; /* the preferred family first, each in answer order */
	size_t naddrs;
	const char *error;
};

typedef void dns_addr_cb(void *arg, const struct dns_addr_result *);
struct dns_query *dns_addr(struct dns_resolver *, const char *host, enum dns_ip_policy,
                           dns_addr_cb *, void *arg);

/* The mail exchangers of a domain as (host, address) pairs in the order to try them: MX hosts
 * by preference (equal ones shuffled), and for each host its addresses, the preferred family
 * first. Implicit MX when the domain has none. */
struct dns_target {
	const char *host;
	uint16_t preference;
	struct dns_address addr;
};

struct dns_mx_addrs_result {
	enum dns_status status; /* the MX lookup's if not OK; else OK if any address, TEMPFAIL if
	                           none but some host's lookup failed so, NODATA if none at all */
	const char *domain;
	bool implicit;
	uint32_t ttl; /* the smallest of all the answers used */
	const struct dns_target *targets;
	size_t ntargets;
	const char *error;
};

typedef void dns_mx_addrs_cb(void *arg, const struct dns_mx_addrs_result *);
struct dns_query *dns_mx_addrs(struct dns_resolver *, const char *domain, enum dns_ip_policy,
                               dns_mx_addrs_cb *, void *arg);

/* "192.0.2.1" or "2001:db8::1" into buf (INET6_ADDRSTRLEN bytes suffice); returns buf. */
const char *dns_address_str(const struct dns_address *, char *buf, size_t size);
/* The socket address to connect() to; returns its length. */
socklen_t dns_address_sockaddr(const struct dns_address *, uint16_t port,
                               struct sockaddr_storage *);

/* ---- TXT and any other type ---- */

struct dns_txt_record {
	const char *text; /* the record's character-strings joined, NUL-terminated */
	size_t len;       /* text may hold NUL bytes itself: trust len */
};

struct dns_txt_result {
	enum dns_status status; /* OK, NODATA, NXDOMAIN, TEMPFAIL or BADNAME */
	const char *name;
	uint32_t ttl;
	const struct dns_txt_record *records; /* answer order; malformed records left out */
	size_t nrecords;
	const char *error;
};

typedef void dns_txt_cb(void *arg, const struct dns_txt_result *);
struct dns_query *dns_txt(struct dns_resolver *, const char *name, dns_txt_cb *, void *arg);

struct dns_rdata {
	const unsigned char *data; /* wire format, uncompressed */
	size_t len;
};

struct dns_rr_result {
	enum dns_status status;
	const char *name;
	uint16_t type;
	uint32_t ttl;
	bool secure; /* DNSSEC-validated (needs a trust anchor, for DANE: not configured yet) */
	const struct dns_rdata *rdata;
	size_t nrdata;
	const char *error;
};

typedef void dns_rr_cb(void *arg, const struct dns_rr_result *);
struct dns_query *dns_rr(struct dns_resolver *, const char *name, uint16_t type, dns_rr_cb *,
                         void *arg);

/* ---- Parsing and ordering (pure, bounded, for any input; exposed for tests and tools) ---- */

/* An uncompressed wire-format name at the start of buf into text without the trailing dot
 * ("." for the root). Host-name characters only (letters, digits, '-', '_'): anything else
 * cannot be a mail exchanger and is refused rather than escaped. Returns the octets the name
 * took in buf, or -1 if malformed (overruns buf, compression pointer, label or name too long,
 * other characters, name longer than size - 1). */
int dns_name_from_wire(const unsigned char *buf, size_t len, char *name, size_t size);

/* One MX rdata: preference, then the target name, and nothing after it. 0 or -1 (malformed).
 */
int dns_mx_rdata_parse(const unsigned char *rdata, size_t len, uint16_t *preference,
                       char name[DNS_NAME_MAX + 1]);

/* Null MX (RFC 7505): every host is the root "." (one record, in a conforming zone). */
bool dns_mx_is_null(const struct dns_mx_host *, size_t n);

/* Sorts by preference, then shuffles each run of equal preference (Fisher-Yates) so that load
 * spreads over equal exchangers. rng is the state of a splitmix64 generator: the same state
 * gives the same order. */
void dns_mx_order(struct dns_mx_host *, size_t n, uint64_t *rng);

/* One TXT rdata's character-strings joined into out (at least len + 1 bytes), NUL-terminated.
 * Returns the joined length, or -1 if a string overruns the rdata. */
ssize_t dns_txt_join(const unsigned char *rdata, size_t len, char *out);

#endif
