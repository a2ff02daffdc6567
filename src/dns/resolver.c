/* resolver.c - one libunbound context per event loop: its configuration, and the descriptor
 * on which its background thread hands answers back to the loop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>
#include <unbound.h>

#include "core/core.h"
#include "dns/internal.h"

static void
on_answers(evutil_socket_t fd, short what, void *arg)
{
	struct dns_resolver *r = arg;
	int rc;

	/* Runs the unbound callbacks (query.c on_answer), which only record answers: callers'
	 * callbacks run later from their query's timer, so nothing here can free r. */
	if ((rc = ub_process(r->ub)) != 0)
		log_warn("dns: ub_process: %s", ub_strerror(rc));
}

/* Unbound's default local zones for the documentation and link-local ranges (unbound.conf(5)),
 * handed back to the forwarders. */
static const char *const documentation_zones[] = {
    "2.0.192.in-addr.arpa. nodefault",     "100.51.198.in-addr.arpa. nodefault",
    "113.0.203.in-addr.arpa. nodefault",   "254.169.in-addr.arpa. nodefault",
    "8.b.d.0.1.0.0.2.ip6.arpa. nodefault",
};

static int
configure(struct ub_ctx *ub, const struct dns_options *opt, char *err, size_t errlen)
{
	int rc;

	/* A thread, not unbound's default forked process: forking a threaded server duplicates
	 * its state, and a thread shares the process's limits and lifetime. */
	if ((rc = ub_ctx_async(ub, 1)) != 0) {
		snprintf(err, errlen, "dns: ub_ctx_async: %s", ub_strerror(rc));
		return -1;
	}
	/* Unbound refuses to send queries to loopback by default (measured), but a local caching
	 * resolver (127.0.0.1, systemd-resolved's 127.0.0.53) and test servers live there. */
	if ((rc = ub_ctx_set_option(ub, "do-not-query-localhost:", "no")) != 0) {
		snprintf(err, errlen, "dns: do-not-query-localhost: %s", ub_strerror(rc));
		return -1;
	}
	/* Unbound answers the reverse zones of private and documentation addresses itself
	 * (NXDOMAIN) unless told otherwise. Drover only ever forwards, to resolvers that know the
	 * local network: a PTR lookup for a 10/8 or 192.168/16 client (SPF's ptr and %{p}) must
	 * reach them. The RFC 6761 names (.test, .invalid, .localhost, .onion) stay local. */
	if ((rc = ub_ctx_set_option(ub, "unblock-lan-zones:", "yes")) != 0 ||
	    (rc = ub_ctx_set_option(ub, "insecure-lan-zones:", "yes")) != 0) {
		snprintf(err, errlen, "dns: lan zones: %s", ub_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < nitems(documentation_zones); i++) {
		if ((rc = ub_ctx_set_option(ub, "local-zone:", documentation_zones[i])) != 0) {
			snprintf(err, errlen, "dns: local-zone %s: %s", documentation_zones[i],
			         ub_strerror(rc));
			return -1;
		}
	}
	if (opt->forwarders != NULL && opt->forwarders[0] != NULL) {
		for (const char *const *f = opt->forwarders; *f != NULL; f++) {
			if ((rc = ub_ctx_set_fwd(ub, *f)) != 0) {
				snprintf(err, errlen,
				         "dns: forwarder \"%s\": %s (expected an IP address, "
				         "optionally @port)",
				         *f, ub_strerror(rc));
				return -1;
			}
		}
		return 0;
	}
	if ((rc = ub_ctx_resolvconf(ub, opt->resolv_conf)) != 0) {
		snprintf(err, errlen, "dns: %s: %s%s%s",
		         opt->resolv_conf ? opt->resolv_conf : "/etc/resolv.conf", ub_strerror(rc),
		         rc == UB_READFILE ? ": " : "", rc == UB_READFILE ? strerror(errno) : "");
		return -1;
	}
	return 0;
}

static uint64_t
random_seed(void)
{
	uint64_t seed = 0;

	/* Only the spread of load over equal MX hosts depends on it: the clock will do if the
	 * kernel cannot answer. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = time_now_us() ^ time_mono_us();
	return seed;
}

struct dns_resolver *
dns_resolver_new(struct event_base *base, const struct dns_options *opt, char *err, size_t errlen)
{
	static const struct dns_options defaults;
	struct dns_resolver *r;
	int fd;

	if (opt == NULL)
		opt = &defaults;
	r = xcalloc(1, sizeof(*r));
	r->base = base;
	r->timeout_ms = opt->timeout_ms ? opt->timeout_ms : DNS_DEFAULT_TIMEOUT_MS;
	r->rng = opt->seed ? opt->seed : random_seed();
	r->latency = opt->latency;
	TAILQ_INIT(&r->queries);
	if ((r->ub = ub_ctx_create()) == NULL) {
		snprintf(err, errlen, "dns: cannot create an unbound context");
		goto fail;
	}
	if (configure(r->ub, opt, err, errlen) == -1)
		goto fail;
	if ((fd = ub_fd(r->ub)) == -1) {
		snprintf(err, errlen, "dns: unbound gave no descriptor to watch");
		goto fail;
	}
	r->ub_event = event_new(base, fd, EV_READ | EV_PERSIST, on_answers, r);
	if (r->ub_event == NULL || event_add(r->ub_event, NULL) == -1) {
		snprintf(err, errlen, "dns: cannot watch unbound's descriptor");
		goto fail;
	}
	return r;
fail:
	if (r->ub_event != NULL)
		event_free(r->ub_event);
	if (r->ub != NULL)
		ub_ctx_delete(r->ub);
	free(r);
	return NULL;
}

void
dns_resolver_free(struct dns_resolver *r)
{
	struct dns_query *q;

	if (r == NULL)
		return;
	while ((q = TAILQ_FIRST(&r->queries)) != NULL)
		dns_cancel(q);
	event_free(r->ub_event);
	/* Stops and joins unbound's thread; nothing of ours is pending in it any more. */
	ub_ctx_delete(r->ub);
	free(r);
}
