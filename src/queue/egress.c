/* egress.c - which egress source a connection leaves from: the smooth weighted round robin of
 * a pool's sources per destination, and the sources that are down (their address cannot be
 * bound) for a while.
 *
 * The round robin is nginx's smooth weighted round robin: each pick adds every usable
 * source's weight to its current value, takes the largest, and subtracts the sum of the
 * usable weights from it. Weights 3:1 give a a b a, a a b a ...: exact over every round of
 * the total weight, and interleaved rather than in runs, so a destination sees each source's
 * share at any time scale. A source that is down is left out of the sums until it is back.
 *
 * The state is per (pool, destination), in a direct-mapped table of EGRESS_RR_SLOTS: more
 * destinations than slots at once push each other out, and one pushed out starts its round
 * again (its next pick favours the heaviest source once); the shares still hold over time.
 */
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"

/* Destinations whose round robin is kept at once (a slot is a pointer and, in use, a key and
 * one counter per source of the pool). */
#define EGRESS_RR_SLOTS 4096

struct egress_rr {
	char *key; /* pool name, '\0', destination */
	size_t keylen;
	size_t n;
	int64_t cur[]; /* per member of the pool */
};

struct egress {
	const struct config *cfg;
	uint64_t *down_until_us; /* per source; 0: up */
	bool *down;              /* marked down and not seen working since (for the logs) */
	struct egress_rr **rr;   /* EGRESS_RR_SLOTS */
};

size_t
egress_wrr_pick(int64_t *cur, const unsigned *weight, const bool *usable, size_t n)
{
	size_t best = SIZE_MAX;
	int64_t total = 0;

	for (size_t i = 0; i < n; i++) {
		if (!usable[i] || weight[i] == 0)
			continue;
		cur[i] += weight[i];
		total += weight[i];
		/* Ties go to the first: the order of the pool, as written. */
		if (best == SIZE_MAX || cur[i] > cur[best])
			best = i;
	}
	if (best != SIZE_MAX)
		cur[best] -= total;
	return best;
}

struct egress *
egress_new(const struct config *cfg)
{
	struct egress *g = xcalloc(1, sizeof(*g));

	g->cfg = cfg;
	g->down_until_us = xcalloc(cfg->nsources ? cfg->nsources : 1, sizeof(*g->down_until_us));
	g->down = xcalloc(cfg->nsources ? cfg->nsources : 1, sizeof(*g->down));
	g->rr = xcalloc(EGRESS_RR_SLOTS, sizeof(*g->rr));
	return g;
}

void
egress_free(struct egress *g)
{
	if (g == NULL)
		return;
	for (size_t i = 0; i < EGRESS_RR_SLOTS; i++) {
		if (g->rr[i] != NULL)
			free(g->rr[i]->key);
		free(g->rr[i]);
	}
	free(g->rr);
	free(g->down_until_us);
	free(g->down);
	free(g);
}

static uint64_t
hash(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
	return h;
}

/* The round robin of pool p for dest, made (or made again, when its slot held another) on
 * first use. */
static struct egress_rr *
rr_state(struct egress *g, const struct pool_conf *p, const char *dest)
{
	size_t np = strlen(p->name), nd = strlen(dest), n = np + 1 + nd;
	char *key = xmalloc(n);
	struct egress_rr **slot, *rr;

	memcpy(key, p->name, np + 1);
	memcpy(key + np + 1, dest, nd);
	slot = &g->rr[hash(key, n) % EGRESS_RR_SLOTS];
	rr = *slot;
	if (rr != NULL && rr->keylen == n && rr->n == p->nmembers && memcmp(rr->key, key, n) == 0) {
		free(key);
		return rr;
	}
	if (rr != NULL)
		free(rr->key);
	free(rr);
	rr = xcalloc(1, sizeof(*rr) + p->nmembers * sizeof(rr->cur[0]));
	rr->key = key;
	rr->keylen = n;
	rr->n = p->nmembers;
	*slot = rr;
	return rr;
}

long
egress_pick(struct egress *g, const struct pool_conf *p, const char *dest, uint64_t now_us,
            bool consume)
{
	unsigned weight[p->nmembers > 0 ? p->nmembers : 1];
	bool usable[p->nmembers > 0 ? p->nmembers : 1];
	int64_t scratch[p->nmembers > 0 ? p->nmembers : 1];
	struct egress_rr *rr;
	size_t best;

	if (p->nmembers == 0)
		return -1;
	for (size_t i = 0; i < p->nmembers; i++) {
		weight[i] = p->members[i].weight;
		usable[i] = egress_source_up(g, p->members[i].source, now_us);
	}
	rr = rr_state(g, p, dest);
	if (consume)
		best = egress_wrr_pick(rr->cur, weight, usable, p->nmembers);
	else {
		memcpy(scratch, rr->cur, p->nmembers * sizeof(scratch[0]));
		best = egress_wrr_pick(scratch, weight, usable, p->nmembers);
	}
	return best == SIZE_MAX ? -1 : (long)p->members[best].source;
}

long
egress_pick_filtered(struct egress *g, const struct pool_conf *p, const char *dest, uint64_t now_us,
                     bool consume, bool (*usable)(void *, size_t), void *arg)
{
	unsigned weight[p->nmembers > 0 ? p->nmembers : 1];
	bool ok[p->nmembers > 0 ? p->nmembers : 1];
	int64_t scratch[p->nmembers > 0 ? p->nmembers : 1];
	struct egress_rr *rr;
	size_t best;

	if (p->nmembers == 0)
		return -1;
	for (size_t i = 0; i < p->nmembers; i++) {
		weight[i] = p->members[i].weight;
		ok[i] = egress_source_up(g, p->members[i].source, now_us) &&
		        usable(arg, p->members[i].source);
	}
	rr = rr_state(g, p, dest);
	if (consume)
		best = egress_wrr_pick(rr->cur, weight, ok, p->nmembers);
	else {
		memcpy(scratch, rr->cur, p->nmembers * sizeof(scratch[0]));
		best = egress_wrr_pick(scratch, weight, ok, p->nmembers);
	}
	return best == SIZE_MAX ? -1 : (long)p->members[best].source;
}

bool
egress_source_up(const struct egress *g, size_t source, uint64_t now_us)
{
	return source < g->cfg->nsources && g->down_until_us[source] <= now_us;
}

bool
egress_source_failed(struct egress *g, size_t source, uint64_t now_us)
{
	bool was_up = !g->down[source];

	g->down[source] = true;
	g->down_until_us[source] = now_us + EGRESS_SOURCE_RETRY_S * USEC;
	return was_up;
}

bool
egress_source_worked(struct egress *g, size_t source)
{
	bool was_down = g->down[source];

	g->down[source] = false;
	g->down_until_us[source] = 0;
	return was_down;
}
