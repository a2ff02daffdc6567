/* latency.c - how long the DNS takes to answer, per record type, for the metrics.
 *
 * A lookup (one name, one type: one question to unbound) is timed from the moment it is
 * handed to unbound to its answer, or to the query's deadline when none came (a timeout is
 * observed at the deadline). Answers from unbound's cache count too: they are what the
 * caller waited for. Lookups refused before they were asked (an invalid name) and lookups
 * cancelled are not observed. */
#include <stdlib.h>

#include "core/core.h"
#include "dns/internal.h"

/* Type codes (RFC 1035 §3.2.2, RFC 3596). */
#define DNS_TYPE_A    1
#define DNS_TYPE_MX   15
#define DNS_TYPE_TXT  16
#define DNS_TYPE_AAAA 28

struct dns_latency {
	struct histogram *h[DNS_LATENCY_TYPES];
};

static const char *const type_names[DNS_LATENCY_TYPES] = {
    [DNS_LATENCY_MX] = "MX",   [DNS_LATENCY_A] = "A",         [DNS_LATENCY_AAAA] = "AAAA",
    [DNS_LATENCY_TXT] = "TXT", [DNS_LATENCY_OTHER] = "other",
};

struct dns_latency *
dns_latency_new(void)
{
	static const uint64_t bounds[] = {HISTOGRAM_LATENCY_US};
	struct dns_latency *l = xcalloc(1, sizeof(*l));

	for (size_t i = 0; i < DNS_LATENCY_TYPES; i++)
		l->h[i] = histogram_new(bounds, nitems(bounds));
	return l;
}

void
dns_latency_free(struct dns_latency *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < DNS_LATENCY_TYPES; i++)
		histogram_free(l->h[i]);
	free(l);
}

const char *
dns_latency_type_name(enum dns_latency_type t)
{
	return t < DNS_LATENCY_TYPES ? type_names[t] : "?";
}

const struct histogram *
dns_latency_histogram(const struct dns_latency *l, enum dns_latency_type t)
{
	return l != NULL && t < DNS_LATENCY_TYPES ? l->h[t] : NULL;
}

void
latency_observe(const struct dns_lookup *l, uint64_t now_us)
{
	struct dns_latency *lat = l->q->r->latency;
	enum dns_latency_type t;

	if (lat == NULL)
		return;
	switch (l->type) {
	case DNS_TYPE_MX:
		t = DNS_LATENCY_MX;
		break;
	case DNS_TYPE_A:
		t = DNS_LATENCY_A;
		break;
	case DNS_TYPE_AAAA:
		t = DNS_LATENCY_AAAA;
		break;
	case DNS_TYPE_TXT:
		t = DNS_LATENCY_TXT;
		break;
	default:
		t = DNS_LATENCY_OTHER;
		break;
	}
	histogram_observe(lat->h[t], now_us > l->asked_us ? now_us - l->asked_us : 0);
}
