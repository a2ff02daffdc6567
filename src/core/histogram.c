/* histogram.c - a fixed-bucket histogram that any thread may add to without a lock.
 *
 * Buckets hold plain counts (not cumulative), so an observation touches one bucket and the
 * sum: two relaxed atomic additions. A snapshot reads them one by one while observations may
 * go on, then derives the cumulative counts and the total from the buckets it read, so that
 * what it reports is consistent in itself (the +Inf bucket always equals the count); the sum
 * may include an observation or two that the buckets missed, or miss one they include. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

struct histogram {
	size_t nbounds;
	uint64_t bounds[HISTOGRAM_BOUNDS_MAX];
	_Atomic uint64_t counts[HISTOGRAM_BOUNDS_MAX + 1]; /* [nbounds]: above every bound */
	_Atomic uint64_t sum;
};

struct histogram *
histogram_new(const uint64_t *bounds, size_t n)
{
	struct histogram *h;

	if (n == 0 || n > HISTOGRAM_BOUNDS_MAX)
		return NULL;
	for (size_t i = 1; i < n; i++)
		if (bounds[i] <= bounds[i - 1])
			return NULL;
	h = xcalloc(1, sizeof(*h));
	h->nbounds = n;
	memcpy(h->bounds, bounds, n * sizeof(*bounds));
	for (size_t i = 0; i <= n; i++)
		atomic_init(&h->counts[i], 0);
	atomic_init(&h->sum, 0);
	return h;
}

void
histogram_free(struct histogram *h)
{
	free(h);
}

void
histogram_observe(struct histogram *h, uint64_t value)
{
	size_t lo = 0, hi;

	if (h == NULL)
		return;
	/* The first bound not below the value (Prometheus' le is inclusive); nbounds if none. */
	hi = h->nbounds;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (h->bounds[mid] < value)
			lo = mid + 1;
		else
			hi = mid;
	}
	atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum, value, memory_order_relaxed);
}

void
histogram_snapshot(const struct histogram *h, struct histogram_snapshot *out)
{
	uint64_t total = 0;

	memset(out, 0, sizeof(*out));
	if (h == NULL)
		return;
	out->nbounds = h->nbounds;
	memcpy(out->bounds, h->bounds, h->nbounds * sizeof(*h->bounds));
	for (size_t i = 0; i <= h->nbounds; i++) {
		/* The const is the caller's promise not to change the histogram; reading an
		 * atomic needs a non-const pointer in C17. */
		total +=
		    atomic_load_explicit((_Atomic uint64_t *)&h->counts[i], memory_order_relaxed);
		out->cumulative[i] = total;
	}
	out->count = total;
	out->sum = atomic_load_explicit((_Atomic uint64_t *)&h->sum, memory_order_relaxed);
}
