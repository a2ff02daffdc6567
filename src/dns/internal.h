/* dns/internal.h - private to dns/: the resolver, queries and their unbound lookups.
 *
 * A query (what a caller asked: MX, addresses, ...) is answered by one or more lookups (one
 * unbound request each: one name, one type), in phases: dns_mx_addrs() looks up the MX first,
 * then A and AAAA of every host. When the last lookup of a phase answers, the query's
 * phase_done hook may start the next phase; when none is pending after it, the query is
 * complete and its deliver hook runs from the query's timer event, never from the call that
 * started the query nor from inside ub_process().
 */
#ifndef DROVER_DNS_INTERNAL_H
#define DROVER_DNS_INTERNAL_H

#include <sys/queue.h>

#include "dns/dns.h"

struct ub_ctx;
struct ub_result;
struct event;

struct dns_resolver {
	struct event_base *base;
	struct ub_ctx *ub;
	struct event *ub_event; /* unbound's answer descriptor: readable → ub_process() */
	unsigned timeout_ms;
	uint64_t rng; /* splitmix64 state for dns_mx_order() */
	/* Where answer times go (latency.c); NULL: they are not kept. */
	struct dns_latency *latency;
	TAILQ_HEAD(, dns_query) queries;
};

struct dns_lookup {
	struct dns_query *q;
	char *name;
	uint16_t type;
	bool pending; /* waiting for unbound: ub_id is live */
	int ub_id;
	size_t slot; /* the hook's own index: which MX host this lookup is for */
	enum dns_status status;
	const char *error;     /* static text, unless status is DNS_OK */
	struct ub_result *res; /* the answer (NULL on error), freed with the query */
	uint32_t ttl;
	uint64_t asked_us; /* monotonic: when unbound was asked (latency.c) */
};

struct dns_query {
	struct dns_resolver *r;
	TAILQ_ENTRY(dns_query) entry;
	union {
		dns_mx_cb *mx;
		dns_addr_cb *addr;
		dns_mx_addrs_cb *mx_addrs;
		dns_txt_cb *txt;
		dns_rr_cb *rr;
	} cb;
	void *arg;
	char name[DNS_NAME_MAX + 2]; /* as asked (a trailing dot allowed) */
	enum dns_ip_policy policy;
	struct event *timer; /* the deadline; made active at once to deliver the result */
	bool complete;       /* every lookup has answered: the timer event delivers */
	bool timed_out;      /* the deadline passed: start no further phase */
	bool delivering;     /* the callback is running: dns_cancel() must not free */
	unsigned phase;      /* phases completed (phase_done sees 0 after the first) */
	char timeout_text[48];

	struct dns_lookup **lookups; /* every lookup of every phase, freed with the query */
	size_t nlookups, lookups_cap, npending;

	/* The MX stage, shared by dns_mx() and dns_mx_addrs(). */
	enum dns_status mx_status;
	const char *mx_error;
	bool implicit;
	uint32_t mx_ttl;
	struct dns_mx_host *hosts;
	size_t nhosts;
	char *host_names; /* one buffer for every hosts[i].name */

	void (*phase_done)(struct dns_query *);
	void (*deliver)(struct dns_query *);
};

/* query.c: query_lookup() adds a lookup to the current phase (an invalid name, or unbound
 * refusing it, gives a lookup already answered); query_start() arms the deadline once all the
 * first phase's lookups are added. phase_done may be NULL. */
struct dns_query *query_new(struct dns_resolver *, const char *name,
                            void (*phase_done)(struct dns_query *),
                            void (*deliver)(struct dns_query *));
void query_lookup(struct dns_query *, const char *name, uint16_t type, size_t slot);
void query_start(struct dns_query *);

/* latency.c: the lookup has its answer, or its deadline passed, at now_us (monotonic). */
void latency_observe(const struct dns_lookup *, uint64_t now_us);

/* status.c */
enum dns_status status_of_answer(int err, const struct ub_result *, const char **error);
enum dns_status status_combine(enum dns_status a, enum dns_status b);
bool name_is_valid(const char *);
uint64_t rng_next(uint64_t *state);

/* mx.c: the MX stage of dns_mx() and dns_mx_addrs(), from the query's first lookup. */
void mx_stage_done(struct dns_query *);

/* addr.c: the addresses of one lookup, in answer order, at most DNS_ADDRS_PER_FAMILY_MAX. */
size_t addrs_of_lookup(const struct dns_lookup *, struct dns_address *out);
/* Its status for the caller: an answer without one well-formed address is a temporary
 * failure (the zone is broken now, it may be fixed), not an absence. */
enum dns_status addr_lookup_status(const struct dns_lookup *, size_t naddrs, const char **error);
/* The families a policy asks for, in order: 1 or 2 of AF_INET6 / AF_INET into fam[2]. */
size_t policy_families(enum dns_ip_policy, int fam[2]);
uint16_t family_type(int family); /* A or AAAA */

#endif
