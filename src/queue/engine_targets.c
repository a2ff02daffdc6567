/* engine_targets.c - where a destination's mail goes: the addresses an attempt connects to,
 * in order.
 *
 *	route "domain" { hosts = ... }   those hosts, in order (names resolved, IPs as they are)
 *	delivery.smarthost               the same, for every domain without a route
 *	otherwise                        the domain's MX hosts (implicit MX, null MX: dns.h)
 *	a domain literal [192.0.2.1]     that address
 *
 * Each host's addresses come in the resolver's order (the preferred family first); a route
 * host without a port uses delivery.port, as MX hosts do.
 *
 * What the DNS says about the recipient domain is final (null MX, NXDOMAIN: bounce); what it
 * says about a route's or smarthost's own names is the operator's problem, never the sender's:
 * the mail is deferred until the route works. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"
#include "smtp/smtp.h"

/* "host", "host:port", "192.0.2.1:2525", "[2001:db8::1]:25", "[2001:db8::1]", "2001:db8::1".
 * 0, or -1 if malformed (conf has checked the syntax already; this is the last guard). */
static int
route_host_parse(const char *text, uint16_t defport, struct route_host *h)
{
	const char *colon = strrchr(text, ':'), *end;
	char host[DNS_NAME_MAX + 1];
	size_t len;
	unsigned long port = defport;

	memset(h, 0, sizeof(*h));
	if (text[0] == '[') {
		end = strchr(text, ']');
		if (end == NULL)
			return -1;
		len = (size_t)(end - text - 1);
		if (end[1] == ':')
			port = strtoul(end + 2, NULL, 10);
		else if (end[1] != '\0')
			return -1;
		text++;
	} else if (colon != NULL && strchr(text, ':') == colon) {
		len = (size_t)(colon - text);
		port = strtoul(colon + 1, NULL, 10);
	} else
		len = strlen(text);
	if (len == 0 || len >= sizeof(host) || port == 0 || port > 65535)
		return -1;
	memcpy(host, text, len);
	host[len] = '\0';
	strlcpy_s(h->name, host, sizeof(h->name));
	h->port = (uint16_t)port;

	struct sockaddr_in *sin = (struct sockaddr_in *)&h->addr;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&h->addr;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(h->port);
		h->addr_len = sizeof(*sin);
		h->literal = true;
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(h->port);
		h->addr_len = sizeof(*sin6);
		h->literal = true;
	}
	return 0;
}

static bool
family_allowed(const struct queue_engine *e, int family)
{
	return !(e->ip == DNS_IP_V4_ONLY && family == AF_INET6) &&
	       !(e->ip == DNS_IP_V6_ONLY && family == AF_INET);
}

static void
add_target(struct attempt *a, const char *host, const struct sockaddr_storage *ss)
{
	size_t n = a->ntargets;

	if (n >= DELIVERY_TARGETS_MAX)
		return;
	a->addrs = xrealloc(a->addrs, (n + 1) * sizeof(*a->addrs));
	a->target_hosts = xrealloc(a->target_hosts, (n + 1) * sizeof(*a->target_hosts));
	a->addrs[n] = *ss;
	a->target_hosts[n] = xstrdup(host);
	a->ntargets = n + 1;
}

/* The client copies targets; these point into the attempt's arrays. */
static void
targets_ready(struct attempt *a)
{
	a->targets = xcalloc(a->ntargets, sizeof(*a->targets));
	for (size_t i = 0; i < a->ntargets; i++) {
		a->targets[i].host = a->target_hosts[i];
		a->targets[i].addr = (const struct sockaddr *)&a->addrs[i];
		a->targets[i].addr_len = a->addrs[i].ss_family == AF_INET6
		                             ? sizeof(struct sockaddr_in6)
		                             : sizeof(struct sockaddr_in);
	}
	a->tstate = T_READY;
	attempt_targets_done(a);
}

static void targets_fail(struct attempt *a, enum rcpt_fate fate, int code, const char *status,
                         const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
targets_fail(struct attempt *a, enum rcpt_fate fate, int code, const char *status, const char *fmt,
             ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	a->tstate = T_FAILED;
	a->fail_fate = fate;
	a->fail_code = code;
	strlcpy_s(a->fail_status, status, sizeof(a->fail_status));
	a->fail_text = xstrdup(text);
	log_debug("delivery: %s: %d %s %s", a->domain, code, status, text);
	attempt_targets_done(a);
}

/* ---- MX ---- */

static void
on_mx_addrs(void *arg, const struct dns_mx_addrs_result *r)
{
	struct attempt *a = arg;
	struct sockaddr_storage ss;

	a->mxq = NULL;
	switch (r->status) {
	case DNS_OK: {
		const char *hosts[DELIVERY_TARGETS_MAX];
		size_t nh = 0;

		for (size_t i = 0; i < r->ntargets; i++) {
			dns_address_sockaddr(&r->targets[i].addr, a->e->port, &ss);
			add_target(a, r->targets[i].host, &ss);
			if (nh < DELIVERY_TARGETS_MAX)
				hosts[nh++] = r->targets[i].host;
		}
		/* The MX hosts tell the provider (a Workspace domain is Google's): its next mail
		 * is queued at the provider's site. */
		engine_shape_learn(a->e, a->domain, hosts, nh);
		targets_ready(a);
		return;
	}
	case DNS_NULL_MX:
		targets_fail(a, R_BOUNCED, 550, "5.1.10",
		             "recipient domain %s accepts no mail: null MX (RFC 7505)", a->domain);
		return;
	case DNS_NXDOMAIN:
		targets_fail(a, R_BOUNCED, 550, "5.1.2",
		             "recipient domain %s not found (DNS: NXDOMAIN)", a->domain);
		return;
	case DNS_BADNAME:
		targets_fail(a, R_BOUNCED, 550, "5.1.2",
		             "recipient domain %s is not a valid domain name", a->domain);
		return;
	case DNS_NODATA:
		targets_fail(a, R_BOUNCED, 550, "5.4.4", "no address for any mail exchanger of %s",
		             a->domain);
		return;
	case DNS_TEMPFAIL:
	default:
		targets_fail(a, R_DEFERRED, 451, "4.4.3", "DNS lookup for %s failed: %s", a->domain,
		             r->error != NULL ? r->error : dns_status_name(r->status));
		return;
	}
}

/* ---- Routes and the smarthost ---- */

static void
hosts_collect(struct attempt *a)
{
	const char *why = NULL, *which = NULL;

	for (size_t i = 0; i < a->nhosts; i++) {
		struct route_host *h = &a->hosts[i];

		if (h->literal) {
			if (family_allowed(a->e, h->addr.ss_family))
				add_target(a, h->name, &h->addr);
			continue;
		}
		for (size_t k = 0; k < h->naddrs; k++)
			add_target(a, h->name, &h->addrs[k]);
		if (h->naddrs == 0 && why == NULL) {
			which = h->name;
			why = h->error != NULL ? h->error : dns_status_name(h->status);
		}
	}
	if (a->ntargets > 0) {
		targets_ready(a);
		return;
	}
	if (why != NULL)
		targets_fail(a, R_DEFERRED, 451, "4.4.3", "no address for route host %s: %s", which,
		             why);
	else
		targets_fail(a, R_DEFERRED, 451, "4.4.4",
		             "no route host of %s has an address of the configured family",
		             a->domain);
}

static void
on_host_addr(void *arg, const struct dns_addr_result *r)
{
	struct route_host *h = arg;
	struct attempt *a = h->a;

	a->hostq[h->index] = NULL;
	h->status = r->status;
	if (r->status == DNS_OK) {
		h->addrs = xcalloc(r->naddrs, sizeof(*h->addrs));
		for (size_t k = 0; k < r->naddrs; k++)
			dns_address_sockaddr(&r->addrs[k], h->port, &h->addrs[h->naddrs++]);
	} else if (r->error != NULL)
		h->error = xstrdup(r->error);
	if (--a->hosts_pending == 0)
		hosts_collect(a);
}

static void
resolve_hosts(struct attempt *a, char *const *hosts, size_t n, const char *what)
{
	struct queue_engine *e = a->e;

	if (n > ENGINE_ROUTE_HOSTS_MAX)
		n = ENGINE_ROUTE_HOSTS_MAX;
	a->hosts = xcalloc(n, sizeof(*a->hosts));
	for (size_t i = 0; i < n; i++) {
		if (route_host_parse(hosts[i], e->port, &a->hosts[a->nhosts]) < 0) {
			log_warn("delivery: %s host \"%s\" is malformed: skipped", what, hosts[i]);
			continue;
		}
		a->hosts[a->nhosts].a = a;
		a->hosts[a->nhosts].index = a->nhosts;
		a->nhosts++;
	}
	/* Count first: a lookup's callback never runs before this function returns, but the
	 * count must be complete before any can. */
	for (size_t i = 0; i < a->nhosts; i++)
		if (!a->hosts[i].literal)
			a->hosts_pending++;
	if (a->hosts_pending == 0) {
		hosts_collect(a);
		return;
	}
	for (size_t i = 0; i < a->nhosts; i++)
		if (!a->hosts[i].literal)
			a->hostq[i] =
			    dns_addr(e->dns, a->hosts[i].name, e->ip, on_host_addr, &a->hosts[i]);
}

/* ---- Domain literals ---- */

static void
resolve_literal(struct attempt *a)
{
	char text[DNS_NAME_MAX + 1];
	struct route_host h;
	size_t len = strlen(a->domain);

	/* "[192.0.2.1]" or "[ipv6:2001:db8::1]" (lower-cased). */
	if (len < 3 || a->domain[len - 1] != ']' || len - 2 >= sizeof(text)) {
		targets_fail(a, R_BOUNCED, 550, "5.1.2", "malformed address literal %s", a->domain);
		return;
	}
	memcpy(text, a->domain + 1, len - 2);
	text[len - 2] = '\0';
	if (route_host_parse(strncmp(text, "ipv6:", 5) == 0 ? text + 5 : text, a->e->port, &h) <
	        0 ||
	    !h.literal) {
		targets_fail(a, R_BOUNCED, 550, "5.1.2", "malformed address literal %s", a->domain);
		return;
	}
	if (!family_allowed(a->e, h.addr.ss_family)) {
		targets_fail(a, R_DEFERRED, 451, "4.4.4",
		             "address literal %s is of a family delivery does not use", a->domain);
		return;
	}
	add_target(a, a->domain, &h.addr);
	targets_ready(a);
}

void
targets_resolve(struct attempt *a)
{
	const struct config *cfg = a->cfg; /* the attempt's: its routes stay valid */
	const struct route_conf *route;
	char alabel[DNS_NAME_MAX + 1];
	const char *why = "not a domain name";

	if (a->domain[0] == '[') {
		resolve_literal(a);
		return;
	}
	/* engine_domain() made every convertible UTF-8 domain its A-label: one still UTF-8 has
	 * none, and no DNS name or route can match it. */
	for (const unsigned char *p = (const unsigned char *)a->domain; *p != '\0'; p++) {
		if (*p < 0x80)
			continue;
		(void)smtp_domain_to_ascii(a->domain, alabel, sizeof(alabel), &why);
		targets_fail(a, R_BOUNCED, 550, "5.1.2",
		             "recipient domain %s is not a valid internationalized domain name "
		             "(IDNA2008: %s)",
		             a->domain, why);
		return;
	}
	route = config_route(cfg, a->domain);
	if (route != NULL && route->nhosts > 0) {
		resolve_hosts(a, route->hosts, route->nhosts, "route");
		return;
	}
	if (cfg->delivery.nsmarthost > 0) {
		resolve_hosts(a, cfg->delivery.smarthost, cfg->delivery.nsmarthost, "smarthost");
		return;
	}
	a->mxq = dns_mx_addrs(a->e->dns, a->domain, a->e->ip, on_mx_addrs, a);
}

void
targets_cancel(struct attempt *a)
{
	if (a->mxq != NULL) {
		dns_cancel(a->mxq);
		a->mxq = NULL;
	}
	for (size_t i = 0; i < a->nhosts; i++)
		if (a->hostq[i] != NULL) {
			dns_cancel(a->hostq[i]);
			a->hostq[i] = NULL;
		}
}

void
targets_free(struct attempt *a)
{
	targets_cancel(a);
	for (size_t i = 0; i < a->nhosts; i++) {
		free(a->hosts[i].addrs);
		free(a->hosts[i].error);
	}
	free(a->hosts);
	for (size_t i = 0; i < a->ntargets; i++)
		free(a->target_hosts[i]);
	free(a->target_hosts);
	free(a->addrs);
	free(a->targets);
	free(a->fail_text);
}
