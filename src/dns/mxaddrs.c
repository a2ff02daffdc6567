/* mxaddrs.c - where to connect for a domain: its MX hosts (mx.c), then the A and AAAA of every
 * host at once, flattened into (host, address) pairs in the order delivery tries them. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "dns/internal.h"

#define TYPE_MX 15

static void
mx_addrs_phase_done(struct dns_query *q)
{
	int fam[2];
	size_t nfam;

	if (q->phase > 0)
		return;
	mx_stage_done(q);
	if (q->mx_status != DNS_OK || q->timed_out)
		return;
	/* Lookups in host order, then family order: the order of the targets (mx_addrs_deliver
	 * walks them as they are). All at once: the deadline covers the query, not each host. */
	nfam = policy_families(q->policy, fam);
	for (size_t i = 0; i < q->nhosts; i++)
		for (size_t f = 0; f < nfam; f++)
			query_lookup(q, q->hosts[i].name, family_type(fam[f]), i);
}

static bool
same_address(const struct dns_address *a, const struct dns_address *b)
{
	if (a->family != b->family)
		return false;
	return a->family == AF_INET ? memcmp(&a->u.v4, &b->u.v4, sizeof(a->u.v4)) == 0
	                            : memcmp(&a->u.v6, &b->u.v6, sizeof(a->u.v6)) == 0;
}

/* Appends a lookup's addresses as targets, leaving out those an earlier (better) host already
 * gave: two MX names for one machine would otherwise cost two connection attempts to it. */
static size_t
add_targets(struct dns_target *t, size_t n, const struct dns_mx_host *host,
            const struct dns_address *addrs, size_t naddrs)
{
	for (size_t i = 0; i < naddrs; i++) {
		bool seen = false;

		for (size_t j = 0; j < n && !seen; j++)
			seen = same_address(&t[j].addr, &addrs[i]);
		if (!seen)
			t[n++] = (struct dns_target){host->name, host->preference, addrs[i]};
	}
	return n;
}

static void
mx_addrs_deliver(struct dns_query *q)
{
	struct dns_mx_addrs_result res = {
	    .status = q->mx_status,
	    .domain = q->name,
	    .implicit = q->implicit,
	    .error = q->mx_error,
	};
	enum dns_status best = DNS_BADNAME;
	const char *best_error = NULL;
	struct dns_target *targets = NULL;
	uint32_t ttl = q->mx_ttl;

	if (q->mx_status != DNS_OK) {
		if (q->mx_status == DNS_NXDOMAIN || q->mx_status == DNS_NULL_MX)
			res.ttl = ttl;
		q->cb.mx_addrs(q->arg, &res);
		return;
	}
	/* Lookup 0 is the MX; then each host's families, each at most a bounded count. */
	targets = xcalloc(q->nlookups * DNS_ADDRS_PER_FAMILY_MAX, sizeof(*targets));
	for (size_t i = 1; i < q->nlookups; i++) {
		const struct dns_lookup *l = q->lookups[i];
		struct dns_address addrs[DNS_ADDRS_PER_FAMILY_MAX];
		size_t n = addrs_of_lookup(l, addrs);
		const char *error;
		enum dns_status s = addr_lookup_status(l, n, &error);

		if (status_combine(best, s) != best) {
			best = s;
			best_error = error;
		}
		if (s == DNS_OK && l->ttl < ttl)
			ttl = l->ttl;
		res.ntargets = add_targets(targets, res.ntargets, &q->hosts[l->slot], addrs, n);
	}
	res.targets = targets;
	if (res.ntargets > 0) {
		res.status = DNS_OK;
		res.error = NULL;
		res.ttl = ttl;
	} else if (best == DNS_TEMPFAIL) {
		res.status = DNS_TEMPFAIL;
		res.error = best_error;
	} else {
		/* Every host answered, none with an address: RFC 5321 §5.1 leaves nowhere to
		 * deliver; delivery bounces (5.4.4, as Postfix does). */
		res.status = DNS_NODATA;
		res.error = q->implicit ? "the domain has no MX and no address records"
		                        : "no MX host has an address";
	}
	q->cb.mx_addrs(q->arg, &res);
	free(targets);
}

struct dns_query *
dns_mx_addrs(struct dns_resolver *r, const char *domain, enum dns_ip_policy policy,
             dns_mx_addrs_cb *cb, void *arg)
{
	struct dns_query *q = query_new(r, domain, mx_addrs_phase_done, mx_addrs_deliver);

	q->cb.mx_addrs = cb;
	q->arg = arg;
	q->policy = policy;
	query_lookup(q, domain, TYPE_MX, 0);
	query_start(q);
	return q;
}
