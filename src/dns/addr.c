/* addr.c - a host's IPv4 and IPv6 addresses (A and AAAA), in the order a policy prefers. */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <unbound.h>

#include "core/core.h"
#include "dns/internal.h"

#define TYPE_A    1
#define TYPE_AAAA 28

size_t
policy_families(enum dns_ip_policy policy, int fam[2])
{
	switch (policy) {
	case DNS_IP_PREFER_V4:
		fam[0] = AF_INET;
		fam[1] = AF_INET6;
		return 2;
	case DNS_IP_V6_ONLY:
		fam[0] = AF_INET6;
		return 1;
	case DNS_IP_V4_ONLY:
		fam[0] = AF_INET;
		return 1;
	case DNS_IP_PREFER_V6:
	default:
		fam[0] = AF_INET6;
		fam[1] = AF_INET;
		return 2;
	}
}

uint16_t
family_type(int family)
{
	return family == AF_INET ? TYPE_A : TYPE_AAAA;
}

size_t
addrs_of_lookup(const struct dns_lookup *l, struct dns_address *out)
{
	size_t n = 0;

	if (l->status != DNS_OK)
		return 0;
	for (size_t i = 0; l->res->data[i] != NULL && n < DNS_ADDRS_PER_FAMILY_MAX; i++) {
		size_t len = (size_t)l->res->len[i];

		/* Unbound checks rdata lengths against the type, but a wrong one must still only
		 * cost that record. */
		if (l->type == TYPE_A && len == sizeof(out[n].u.v4)) {
			out[n].family = AF_INET;
			memcpy(&out[n].u.v4, l->res->data[i], len);
			n++;
		} else if (l->type == TYPE_AAAA && len == sizeof(out[n].u.v6)) {
			out[n].family = AF_INET6;
			memcpy(&out[n].u.v6, l->res->data[i], len);
			n++;
		}
	}
	return n;
}

enum dns_status
addr_lookup_status(const struct dns_lookup *l, size_t naddrs, const char **error)
{
	if (l->status == DNS_OK && naddrs == 0) {
		*error = "malformed address records";
		return DNS_TEMPFAIL;
	}
	*error = l->error;
	return l->status;
}

static void
addr_deliver(struct dns_query *q)
{
	struct dns_address addrs[2 * DNS_ADDRS_PER_FAMILY_MAX];
	struct dns_addr_result res = {.status = DNS_BADNAME, .host = q->name, .addrs = addrs};
	uint32_t ttl = UINT32_MAX;

	for (size_t i = 0; i < q->nlookups; i++) {
		size_t n = addrs_of_lookup(q->lookups[i], addrs + res.naddrs);
		const char *error;
		enum dns_status s = addr_lookup_status(q->lookups[i], n, &error);

		res.naddrs += n;
		if (s == DNS_OK && q->lookups[i]->ttl < ttl)
			ttl = q->lookups[i]->ttl;
		if (status_combine(res.status, s) != res.status || i == 0) {
			res.status = s;
			res.error = error;
		}
	}
	if (res.status == DNS_OK) {
		res.ttl = ttl;
		res.error = NULL;
	}
	q->cb.addr(q->arg, &res);
}

struct dns_query *
dns_addr(struct dns_resolver *r, const char *host, enum dns_ip_policy policy, dns_addr_cb *cb,
         void *arg)
{
	struct dns_query *q = query_new(r, host, NULL, addr_deliver);
	int fam[2];
	size_t nfam = policy_families(policy, fam);

	q->cb.addr = cb;
	q->arg = arg;
	q->policy = policy;
	for (size_t i = 0; i < nfam; i++)
		query_lookup(q, host, family_type(fam[i]), 0);
	query_start(q);
	return q;
}

const char *
dns_address_str(const struct dns_address *a, char *buf, size_t size)
{
	if (inet_ntop(a->family,
	              a->family == AF_INET ? (const void *)&a->u.v4 : (const void *)&a->u.v6, buf,
	              (socklen_t)size) == NULL)
		strlcpy_s(buf, "?", size);
	return buf;
}

socklen_t
dns_address_sockaddr(const struct dns_address *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		sin->sin_addr = a->u.v4;
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	sin6->sin6_addr = a->u.v6;
	return sizeof(*sin6);
}
