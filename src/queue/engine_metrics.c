/* engine_metrics.c - what the delivery engine shows the metrics (docs/operations.md,
 * "Metrics"): the queue by stream and site, lanes held back, adaptive actions in force,
 * waits for a rate token, and the answer times of the delivery resolver.
 *
 * The control thread must never wait for the engine's loop, and the queue is the loop's
 * alone: so the loop publishes a snapshot once a second (a timer of its own), and readers
 * copy the latest one under a lock held only for the copy. Counters that change at a single
 * point (rate waits, actions) are atomics, read at any time.
 *
 * Cost: one pass over the lanes per second, O(d log d) for d lanes (sorting them by site);
 * at 100,000 lanes a few milliseconds of the loop's second. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/core.h"
#include "queue/engine_admin.h"
#include "queue/engine_internal.h"

/* How often the loop publishes the queue's figures. */
#define ENGINE_METRICS_PERIOD_S 1
/* The kinds of enum shape_action (shape.h: suspend-source .. bounce). */
#define ENGINE_METRICS_ACTIONS (SHAPE_ACT_BOUNCE + 1)

struct engine_metrics {
	struct queue_engine *e;
	struct event *timer;
	struct dns_latency *dns; /* the delivery resolver's answer times */
	_Atomic uint64_t waits_message, waits_connection;
	_Atomic uint64_t actions[ENGINE_METRICS_ACTIONS];
	pthread_mutex_t lock;
	struct queue_engine_metrics snap; /* under lock; sites owned */
};

/* One lane's items, or a (stream, site)'s once merged. */
struct lane_count {
	const char *site; /* the queue's: valid during the pass */
	unsigned cls;
	uint64_t items;
	size_t group; /* the site's index in the ranking */
};

struct site_total {
	uint64_t items;
	size_t first, n; /* its entries in the merged lane_count array */
	bool named;
};

struct pass {
	struct queue_engine *e;
	uint64_t now_us;
	struct queue_engine_metrics *snap;
	struct lane_count *lanes;
	size_t nlanes, cap;
	const char **held; /* sites of the lanes held */
	size_t nheld;
};

static bool
visit_lane(void *arg, const struct queue_dest_stats *st)
{
	struct pass *p = arg;
	uint64_t items = (uint64_t)st->scheduled + st->ready + st->active_items + st->expiring;

	if (st->ready > 0)
		p->snap->lanes_ready++;
	if (st->state == QUEUE_DEST_DEAD)
		p->snap->lanes_dead++;
	if (st->held_until_us > p->now_us) {
		p->snap->lanes_held++;
		p->held[p->nheld++] = st->site;
	}
	if (items == 0)
		return true;
	p->lanes[p->nlanes++] = (struct lane_count){st->site, st->cls, items, 0};
	return true;
}

static bool
count_lane(void *arg, const struct queue_dest_stats *st)
{
	(*(size_t *)arg)++;
	return true;
}

static int
by_site_then_class(const void *a, const void *b)
{
	const struct lane_count *x = a, *y = b;
	int c = strcmp(x->site, y->site);

	return c != 0 ? c : (x->cls > y->cls) - (x->cls < y->cls);
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Largest first; a tie by the order of the sites' names (stable from one second to the
 * next, so that the set named does not flicker). */
static int
by_items_desc(const void *a, const void *b)
{
	const struct site_total *x = *(const struct site_total *const *)a;
	const struct site_total *y = *(const struct site_total *const *)b;

	if (x->items != y->items)
		return x->items < y->items ? 1 : -1;
	return (x->first > y->first) - (x->first < y->first);
}

static size_t
distinct(const char **names, size_t n)
{
	size_t k = 0;

	qsort(names, n, sizeof(*names), by_name);
	for (size_t i = 0; i < n; i++)
		if (i == 0 || strcmp(names[i], names[i - 1]) != 0)
			k++;
	return k;
}

/* Sorted by (site, class), the lanes of one (site, class) merged: a stream's lanes of
 * several pools, and the lanes of a provider's domains, are one entry. */
static size_t
merge_lanes(struct lane_count *lanes, size_t n)
{
	size_t k = 0;

	qsort(lanes, n, sizeof(*lanes), by_site_then_class);
	for (size_t i = 0; i < n; i++) {
		if (k > 0 && lanes[k - 1].cls == lanes[i].cls &&
		    strcmp(lanes[k - 1].site, lanes[i].site) == 0)
			lanes[k - 1].items += lanes[i].items;
		else
			lanes[k++] = lanes[i];
	}
	return k;
}

static void
add_site_items(struct queue_engine_metrics *snap, const char *stream, const char *site,
               uint64_t items)
{
	struct queue_engine_site_items *s = &snap->sites[snap->nsites++];

	strlcpy_s(s->stream, stream, sizeof(s->stream));
	strlcpy_s(s->site, site, sizeof(s->site));
	s->items = items;
}

/* The items by (stream, site): the QUEUE_METRICS_SITES_MAX largest sites by name, the rest
 * summed per stream under QUEUE_METRICS_SITE_OTHER, so that a queue for 100,000 domains
 * gives a bounded number of series. */
static void
sites_snapshot(struct pass *p)
{
	struct queue_engine *e = p->e;
	size_t n = merge_lanes(p->lanes, p->nlanes), ngroups = 0;
	struct site_total *groups = xcalloc(n ? n : 1, sizeof(*groups));
	struct site_total **rank = xcalloc(n ? n : 1, sizeof(*rank));
	uint64_t *other = xcalloc(e->nclasses, sizeof(*other));

	for (size_t i = 0; i < n; i++) {
		if (i == 0 || strcmp(p->lanes[i].site, p->lanes[i - 1].site) != 0)
			groups[ngroups++] = (struct site_total){.first = i};
		groups[ngroups - 1].items += p->lanes[i].items;
		groups[ngroups - 1].n++;
		p->lanes[i].group = ngroups - 1;
	}
	for (size_t g = 0; g < ngroups; g++)
		rank[g] = &groups[g];
	qsort(rank, ngroups, sizeof(*rank), by_items_desc);
	for (size_t g = 0; g < ngroups && g < QUEUE_METRICS_SITES_MAX; g++)
		rank[g]->named = true;

	p->snap->sites = xcalloc(n + e->nclasses + 1, sizeof(*p->snap->sites));
	for (size_t i = 0; i < n; i++) {
		const struct lane_count *l = &p->lanes[i];

		if (groups[l->group].named)
			add_site_items(p->snap, e->class_names[l->cls], l->site, l->items);
		else
			other[l->cls] += l->items;
	}
	for (unsigned c = 0; c < e->nclasses; c++)
		if (other[c] > 0)
			add_site_items(p->snap, e->class_names[c], QUEUE_METRICS_SITE_OTHER,
			               other[c]);
	free(other);
	free(rank);
	free(groups);
}

static void
publish(struct engine_metrics *m)
{
	struct queue_engine *e = m->e;
	struct queue_engine_metrics snap = {0};
	struct queue_stats qs;
	struct pass p = {.e = e, .now_us = time_now_us(), .snap = &snap};
	size_t nlanes = 0;

	queue_stats(e->q, &qs);
	snap.published_us = p.now_us;
	snap.scheduled = qs.scheduled;
	snap.ready = qs.ready;
	snap.active = qs.active;
	snap.expiring = qs.expiring;
	queue_foreach_dest(e->q, count_lane, &nlanes);
	p.lanes = xcalloc(nlanes ? nlanes : 1, sizeof(*p.lanes));
	p.held = xcalloc(nlanes ? nlanes : 1, sizeof(*p.held));
	queue_foreach_dest(e->q, visit_lane, &p);
	snap.sites_held = distinct(p.held, p.nheld);
	sites_snapshot(&p);
	free(p.lanes);
	free(p.held);
	/* drover_admin_suspensions_active: the suspensions an operator made through the admin
	 * API (engine_admin.c). */
	snap.admin_suspensions = (int64_t)engine_admin_suspension_count(e);

	pthread_mutex_lock(&m->lock);
	free(m->snap.sites);
	m->snap = snap;
	pthread_mutex_unlock(&m->lock);
}

static void
on_publish(evutil_socket_t fd, short what, void *arg)
{
	publish(arg);
}

void
engine_metrics_start(struct queue_engine *e, struct dns_options *dopt)
{
	struct engine_metrics *m = xcalloc(1, sizeof(*m));
	struct timeval period = {ENGINE_METRICS_PERIOD_S, 0};

	m->e = e;
	m->dns = dns_latency_new();
	pthread_mutex_init(&m->lock, NULL);
	m->timer = event_new(e->base, -1, EV_PERSIST, on_publish, m);
	if (m->timer == NULL || event_add(m->timer, &period) != 0)
		fatal("delivery: cannot arm the metrics timer");
	e->metrics = m;
	dopt->latency = m->dns;
}

void
engine_metrics_stop(struct queue_engine *e)
{
	struct engine_metrics *m = e->metrics;

	if (m == NULL)
		return;
	if (m->timer != NULL)
		event_free(m->timer);
	dns_latency_free(m->dns);
	pthread_mutex_destroy(&m->lock);
	free(m->snap.sites);
	free(m);
	e->metrics = NULL;
}

void
engine_metrics_throttle_wait(struct queue_engine *e, bool message)
{
	if (e->metrics != NULL)
		atomic_fetch_add(
		    message ? &e->metrics->waits_message : &e->metrics->waits_connection, 1);
}

void
engine_metrics_actions(struct queue_engine *e, const struct shape_event *ev, size_t n)
{
	uint64_t count[ENGINE_METRICS_ACTIONS] = {0};

	if (e->metrics == NULL)
		return;
	for (size_t i = 0; i < n; i++)
		if ((unsigned)ev[i].action < ENGINE_METRICS_ACTIONS)
			count[ev[i].action]++;
	for (size_t a = 0; a < ENGINE_METRICS_ACTIONS; a++)
		atomic_store(&e->metrics->actions[a], count[a]);
}

void
queue_engine_metrics(struct queue_engine *e, struct queue_engine_metrics *out)
{
	struct engine_metrics *m = e->metrics;

	memset(out, 0, sizeof(*out));
	out->admin_suspensions = -1;
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->lock);
	*out = m->snap;
	if (m->snap.nsites > 0) {
		out->sites = xcalloc(m->snap.nsites, sizeof(*out->sites));
		memcpy(out->sites, m->snap.sites, m->snap.nsites * sizeof(*out->sites));
	} else
		out->sites = NULL;
	pthread_mutex_unlock(&m->lock);
	out->throttle_waits_message = atomic_load(&m->waits_message);
	out->throttle_waits_connection = atomic_load(&m->waits_connection);
	for (size_t a = 0; a < ENGINE_METRICS_ACTIONS && a < nitems(out->actions); a++) {
		out->actions[a].name = shape_action_name((enum shape_action)a);
		out->actions[a].active = atomic_load(&m->actions[a]);
		out->nactions++;
	}
	out->dns = m->dns;
}

void
queue_engine_metrics_clear(struct queue_engine_metrics *m)
{
	free(m->sites);
	m->sites = NULL;
	m->nsites = 0;
}
