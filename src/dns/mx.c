/* mx.c - a domain's mail exchangers (RFC 5321 §5.1): the MX records in the order to try them,
 * the implicit MX of a domain without any, and the null MX of one that takes no mail
 * (RFC 7505). dns_mx() is this stage alone; dns_mx_addrs() (mxaddrs.c) continues from it. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <unbound.h>

#include "core/core.h"
#include "dns/internal.h"

#define TYPE_MX 15

bool
dns_mx_is_null(const struct dns_mx_host *hosts, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(hosts[i].name, ".") != 0)
			return false;
	return true;
}

static int
by_preference(const void *a, const void *b)
{
	const struct dns_mx_host *x = a, *y = b;

	return (x->preference > y->preference) - (x->preference < y->preference);
}

void
dns_mx_order(struct dns_mx_host *hosts, size_t n, uint64_t *rng)
{
	/* qsort, not a stable sort: the shuffle below erases any order within a preference
	 * anyway, and a hostile zone's thousands of records must cost n log n, not n². */
	if (n > 1)
		qsort(hosts, n, sizeof(*hosts), by_preference);
	/* RFC 5321 §5.1: hosts of equal preference are tried in random order. */
	for (size_t start = 0, end; start < n; start = end) {
		for (end = start + 1; end < n && hosts[end].preference == hosts[start].preference;
		     end++)
			;
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + (size_t)(rng_next(rng) % (i - start + 1));
			struct dns_mx_host t = hosts[i];

			hosts[i] = hosts[j];
			hosts[j] = t;
		}
	}
}

/* After ordering: leave out the root (a stray "." next to real hosts names none) and repeats
 * (each host resolved and tried once, at its best preference), keep DNS_MX_HOSTS_MAX. */
static size_t
mx_keep(struct dns_mx_host *hosts, size_t n)
{
	size_t kept = 0;

	for (size_t i = 0; i < n && kept < DNS_MX_HOSTS_MAX; i++) {
		bool repeat = strcmp(hosts[i].name, ".") == 0;

		for (size_t j = 0; j < kept && !repeat; j++)
			repeat = strcasecmp(hosts[j].name, hosts[i].name) == 0;
		if (!repeat)
			hosts[kept++] = hosts[i];
	}
	return kept;
}

static void
mx_from_answer(struct dns_query *q, const struct ub_result *res)
{
	size_t n, total = 0, parsed = 0;
	struct dns_mx_host *hosts;
	char *names, *p;

	for (n = 0; res->data[n] != NULL; n++)
		total += (size_t)res->len[n];
	/* A name in text takes no more octets than in wire form (dots for length octets, the
	 * NUL for the root label), so the rdata's total size bounds every name's. */
	hosts = xcalloc(n, sizeof(*hosts));
	p = names = xmalloc(total + 1);
	for (size_t i = 0; i < n; i++) {
		char name[DNS_NAME_MAX + 1];
		uint16_t pref;
		size_t len;

		if (dns_mx_rdata_parse((const unsigned char *)res->data[i], (size_t)res->len[i],
		                       &pref, name) == -1)
			continue;
		len = strlen(name);
		memcpy(p, name, len + 1);
		hosts[parsed++] = (struct dns_mx_host){pref, p};
		p += len + 1;
	}
	if (parsed < n)
		log_debug("dns: %s: %zu of %zu MX records malformed, left out", q->name, n - parsed,
		          n);
	if (parsed == 0) {
		q->mx_status = DNS_TEMPFAIL;
		q->mx_error = "malformed MX records";
	} else if (dns_mx_is_null(hosts, parsed)) {
		q->mx_status = DNS_NULL_MX;
		q->mx_error = "null MX: the domain accepts no mail (RFC 7505)";
	} else {
		dns_mx_order(hosts, parsed, &q->r->rng);
		q->mx_status = DNS_OK;
		q->hosts = hosts;
		q->nhosts = mx_keep(hosts, parsed);
		q->host_names = names;
		return;
	}
	free(hosts);
	free(names);
}

/* RFC 5321 §5.1: no MX records, the domain itself is the one exchanger, preference 0. */
static void
mx_implicit(struct dns_query *q)
{
	size_t len = strlen(q->name);

	if (len > 1 && q->name[len - 1] == '.')
		len--;
	q->host_names = xstrndup(q->name, len);
	q->hosts = xcalloc(1, sizeof(*q->hosts));
	q->hosts[0] = (struct dns_mx_host){0, q->host_names};
	q->nhosts = 1;
	q->implicit = true;
	q->mx_status = DNS_OK;
}

void
mx_stage_done(struct dns_query *q)
{
	const struct dns_lookup *l = q->lookups[0];

	if (q->phase > 0)
		return; /* a later phase's (dns_mx_addrs()) */
	q->mx_ttl = l->ttl;
	switch (l->status) {
	case DNS_OK:
		mx_from_answer(q, l->res);
		break;
	case DNS_NODATA:
		mx_implicit(q);
		break;
	default:
		q->mx_status = l->status;
		q->mx_error = l->error;
		break;
	}
}

static void
mx_deliver(struct dns_query *q)
{
	struct dns_mx_result res = {
	    .status = q->mx_status,
	    .domain = q->name,
	    .implicit = q->implicit,
	    .hosts = q->hosts,
	    .nhosts = q->nhosts,
	    .error = q->mx_status == DNS_OK ? NULL : q->mx_error,
	};

	/* An answer from the DNS, positive or negative, has a TTL; a failure has none. */
	if (q->mx_status == DNS_OK || q->mx_status == DNS_NXDOMAIN || q->mx_status == DNS_NULL_MX)
		res.ttl = q->mx_ttl;
	q->cb.mx(q->arg, &res);
}

struct dns_query *
dns_mx(struct dns_resolver *r, const char *domain, dns_mx_cb *cb, void *arg)
{
	struct dns_query *q = query_new(r, domain, mx_stage_done, mx_deliver);

	q->cb.mx = cb;
	q->arg = arg;
	query_lookup(q, domain, TYPE_MX, 0);
	query_start(q);
	return q;
}
