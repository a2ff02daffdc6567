/* queue.c - the scheduler: items, destinations, their heaps and ready queues, the round-robin
 * ring, and the feedback that opens and closes a destination's window (docs/queue.md).
 *
 * Items live in chunks that never move, and refer to each other by 32-bit index: a scheduled
 * item's index sits in its destination's heap, a ready one is linked into its destination's
 * FIFO, and the id index chains items through one more index. No item owns a pointer or a
 * string; the destination name is stored once, in struct queue_dest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "queue/queue.h"

#define NIL      UINT32_MAX
#define ID_BYTES (QUEUE_ID_LEN / 2)

/* 65,536 items of 40 bytes: 2.5 MiB per chunk, whose pages become resident only as items are
 * carved from it. */
#define CHUNK_SHIFT 16
#define CHUNK_ITEMS (1U << CHUNK_SHIFT)
#define CHUNK_MASK  (CHUNK_ITEMS - 1)
/* Items are numbered below NIL; a queue this large would need 160 GiB anyway. */
#define ITEMS_MAX (NIL - CHUNK_ITEMS)

#define ITEM_FREE      0   /* state of an item on the free list (public states start at 1) */
#define ITEM_CANCELLED 0x1 /* flags: removed by the operator while being delivered */
#define ITEM_PARKED    0x2 /* flags: put back by queue_item_park, not taken since */

#define IDX_BUCKETS_MIN  1024U
#define NAME_BUCKETS_MIN 64U
#define HEAP_MIN         4U

struct queue_item {
	uint8_t id[ID_BYTES];
	uint32_t self;     /* own index: handles given to the engine find their way back */
	uint32_t dest;     /* index in q->dests */
	uint32_t expire_s; /* expiry in seconds, rounded up; UINT32_MAX: never */
	uint32_t link;     /* SCHEDULED: position in the heap; READY, EXPIRING: next; FREE: next */
	uint32_t prev;     /* READY, EXPIRING: previous in the list */
	uint32_t hnext;    /* next in the id index bucket */
	uint16_t attempts;
	uint8_t state; /* enum queue_item_state, or ITEM_FREE */
	uint8_t flags;
};
_Static_assert(sizeof(struct queue_item) == 40, "an item is 40 bytes: docs/queue.md");

/* A 4-ary min-heap of (key, value), keys and values in separate arrays so that the four
 * children compared at each level share one cache line. Ties go to the lower value, which
 * keeps equal times in a stable, testable order. */
struct heap {
	uint64_t *key;
	uint32_t *val;
	uint32_t n, cap;
};

/* Doubly-linked FIFO of items through their link/prev indexes. */
struct item_list {
	uint32_t head, tail, n;
};

/* A name in a hash index: the first member of the structs kept by name (lanes, sites). */
struct named {
	char *name;
	uint64_t hash;
	struct named *hnext; /* bucket chain */
};

struct name_index {
	struct named **bucket;
	uint32_t mask, n;
};

/* A site: the destination as the network sees it (a domain, or the route's hosts). Its
 * lanes share its connections: the window, the failures that close it, the death and the
 * probe are the site's, whichever lane's connection saw them. */
struct queue_site {
	struct named n;
	struct queue_dest **lanes;
	uint32_t nlanes, lanes_cap;
	uint32_t *class_slots;   /* connections held per class (q->nclasses) */
	uint8_t state;           /* enum queue_dest_state */
	uint32_t slots;          /* connections held by all lanes */
	uint32_t max_window;     /* the window's top; 0: the options' max_window */
	uint32_t initial_window; /* where it opens (slow start); 0: the options' */
	uint32_t window;
	uint32_t credit; /* transactions answered on reused connections since the window last
	                  * grew: at `window` of them it grows (queue_feedback_transaction) */
	uint32_t fails;  /* consecutive failed connections */
	uint32_t deaths; /* consecutive dead periods: the cooldown doubles with each */
	uint64_t dead_until;
};

/* A lane (the public struct queue_dest): one class's mail to one site leaving one way (the
 * engine's stream and pool), with its own scheduled and ready queues, so that a backlog in one
 * lane never stands in front of another's mail. */
struct queue_dest {
	struct named n;
	struct queue_site *site;
	char *via;         /* the caller's word for the way out (a pool), NULL if none */
	uint32_t cls;      /* index into q->classes */
	uint32_t idx;      /* in q->dests */
	uint32_t due_pos;  /* position in q->due, NIL when not waiting for time */
	struct heap sched; /* scheduled items by next attempt time */
	struct item_list ready;
	struct queue_dest *rr_prev, *rr_next;
	bool in_ring;
	uint32_t slots;      /* connections held by this lane (takes not yet released) */
	uint64_t held_until; /* no new connection before this (queue_hold); 0: none */
	uint32_t active;     /* items taken and not done */
	uint32_t expiring;   /* items in q->expiring */
	uint64_t delivered, deferred, bounced, expired;
};

struct queue {
	struct queue_options opt;
	struct queue_rng rng;

	struct queue_item **chunks;
	uint32_t nchunks, chunks_cap;
	uint32_t nslots; /* items carved from the chunks so far */
	uint32_t free_head;
	uint64_t nitems;
	uint64_t count[QUEUE_ITEM_EXPIRING + 1]; /* items per state */

	uint32_t *idx_bucket; /* id index: chains of items through hnext */
	uint32_t idx_mask;

	struct queue_class *classes; /* nclasses >= 1; [0] is the default class */
	uint32_t nclasses;

	struct queue_dest **dests; /* lanes by index; NULL where freed */
	uint32_t ndests_slots, dests_cap;
	uint32_t *dest_free; /* freed indexes, reused first */
	uint32_t ndest_free, dest_free_cap;
	struct name_index lane_names, site_names;
	uint32_t ndead; /* sites */

	struct heap due; /* destinations by earliest scheduled item (values: dest indexes) */
	struct queue_dest *rr_head, *rr_tail;
	struct item_list expiring;
	uint64_t now_us; /* latest time seen: tells whether a dead destination may be forgotten */
};

/* ---- Items ---- */

static inline struct queue_item *
item_at(const struct queue *q, uint32_t i)
{
	return &q->chunks[i >> CHUNK_SHIFT][i & CHUNK_MASK];
}

static void
item_set_state(struct queue *q, struct queue_item *it, uint8_t state)
{
	if (it->state != ITEM_FREE)
		q->count[it->state]--;
	q->count[state]++;
	it->state = state;
}

static uint64_t
item_expires_us(const struct queue_item *it)
{
	return it->expire_s == UINT32_MAX ? UINT64_MAX : (uint64_t)it->expire_s * USEC;
}

static uint32_t
expire_seconds(uint64_t us)
{
	uint64_t s = us / USEC + (us % USEC != 0); /* rounded up: never expire early */

	return s >= UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
id_decode(const char *hex, uint8_t raw[ID_BYTES])
{
	if (hex == NULL)
		return -1;
	for (size_t i = 0; i < ID_BYTES; i++) {
		int hi, lo;

		if ((hi = hex_value(hex[2 * i])) < 0 || (lo = hex_value(hex[2 * i + 1])) < 0)
			return -1;
		raw[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[QUEUE_ID_LEN] == '\0' ? 0 : -1;
}

static uint32_t
id_hash(const uint8_t id[ID_BYTES])
{
	/* Spool ids begin with a timestamp: mix every bit into the bucket number
	 * (MurmurHash3's finalizer). */
	uint64_t a, h;
	uint32_t c;

	memcpy(&a, id, 8);
	memcpy(&c, id + 8, 4);
	h = a ^ (c * 0x9e3779b97f4a7c15ULL);
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (uint32_t)h;
}

static void
id_index_resize(struct queue *q, uint32_t nbuckets)
{
	free(q->idx_bucket);
	q->idx_bucket = xmalloc((size_t)nbuckets * sizeof(*q->idx_bucket));
	memset(q->idx_bucket, 0xff, (size_t)nbuckets * sizeof(*q->idx_bucket)); /* NIL */
	q->idx_mask = nbuckets - 1;
	for (uint32_t i = 0; i < q->nslots; i++) {
		struct queue_item *it = item_at(q, i);
		uint32_t *b;

		if (it->state == ITEM_FREE)
			continue;
		b = &q->idx_bucket[id_hash(it->id) & q->idx_mask];
		it->hnext = *b;
		*b = i;
	}
}

static void
id_link(struct queue *q, struct queue_item *it)
{
	uint32_t *b = &q->idx_bucket[id_hash(it->id) & q->idx_mask];

	it->hnext = *b;
	*b = it->self;
}

static void
id_unlink(struct queue *q, struct queue_item *it)
{
	uint32_t *p = &q->idx_bucket[id_hash(it->id) & q->idx_mask];

	while (*p != it->self)
		p = &item_at(q, *p)->hnext;
	*p = it->hnext;
}

static bool
id_queued(const struct queue *q, const uint8_t id[ID_BYTES], uint32_t dest)
{
	for (uint32_t i = q->idx_bucket[id_hash(id) & q->idx_mask]; i != NIL;) {
		const struct queue_item *it = item_at(q, i);

		if (it->dest == dest && memcmp(it->id, id, ID_BYTES) == 0)
			return true;
		i = it->hnext;
	}
	return false;
}

static struct queue_item *
item_alloc(struct queue *q)
{
	struct queue_item *it;
	uint32_t i;

	if (q->free_head != NIL) {
		i = q->free_head;
		it = item_at(q, i);
		q->free_head = it->link;
	} else {
		if (q->nslots >= ITEMS_MAX)
			fatal("queue: more than %u items", ITEMS_MAX);
		i = q->nslots++;
		if ((i & CHUNK_MASK) == 0) {
			if (q->nchunks == q->chunks_cap) {
				q->chunks_cap = q->chunks_cap ? 2 * q->chunks_cap : 16;
				q->chunks = xrealloc(q->chunks, q->chunks_cap * sizeof(*q->chunks));
			}
			q->chunks[q->nchunks++] = xmalloc(CHUNK_ITEMS * sizeof(struct queue_item));
		}
		it = item_at(q, i);
	}
	memset(it, 0, sizeof(*it));
	it->self = i;
	it->link = it->prev = it->hnext = NIL;
	/* Grow the id index at load 1, before linking: chains stay about one item long. */
	if (++q->nitems > (uint64_t)q->idx_mask + 1)
		id_index_resize(q, 2 * (q->idx_mask + 1));
	return it;
}

static void
item_free(struct queue *q, struct queue_item *it)
{
	id_unlink(q, it);
	q->nitems--;
	if (it->state != ITEM_FREE)
		q->count[it->state]--;
	it->state = ITEM_FREE;
	it->link = q->free_head;
	q->free_head = it->self;
}

/* ---- Item lists (ready queues, the expiring list) ---- */

static void
list_init(struct item_list *l)
{
	l->head = l->tail = NIL;
	l->n = 0;
}

static void
list_append(struct queue *q, struct item_list *l, struct queue_item *it)
{
	it->link = NIL;
	it->prev = l->tail;
	if (l->tail != NIL)
		item_at(q, l->tail)->link = it->self;
	else
		l->head = it->self;
	l->tail = it->self;
	l->n++;
}

static void
list_unlink(struct queue *q, struct item_list *l, struct queue_item *it)
{
	if (it->prev != NIL)
		item_at(q, it->prev)->link = it->link;
	else
		l->head = it->link;
	if (it->link != NIL)
		item_at(q, it->link)->prev = it->prev;
	else
		l->tail = it->prev;
	it->link = it->prev = NIL;
	l->n--;
}

static struct queue_item *
list_pop(struct queue *q, struct item_list *l)
{
	struct queue_item *it;

	if (l->head == NIL)
		return NULL;
	it = item_at(q, l->head);
	list_unlink(q, l, it);
	return it;
}

/* ---- 4-ary heaps ---- */

static inline void
heap_setpos(struct queue *q, struct heap *h, uint32_t val, uint32_t pos)
{
	if (h == &q->due)
		q->dests[val]->due_pos = pos;
	else
		item_at(q, val)->link = pos;
}

static inline bool
heap_before(uint64_t ka, uint32_t va, uint64_t kb, uint32_t vb)
{
	return ka < kb || (ka == kb && va < vb);
}

static inline void
heap_place(struct queue *q, struct heap *h, uint32_t pos, uint64_t key, uint32_t val)
{
	h->key[pos] = key;
	h->val[pos] = val;
	heap_setpos(q, h, val, pos);
}

static void
heap_sift_up(struct queue *q, struct heap *h, uint32_t pos, uint64_t key, uint32_t val)
{
	while (pos > 0) {
		uint32_t parent = (pos - 1) / 4;

		if (!heap_before(key, val, h->key[parent], h->val[parent]))
			break;
		heap_place(q, h, pos, h->key[parent], h->val[parent]);
		pos = parent;
	}
	heap_place(q, h, pos, key, val);
}

static void
heap_sift_down(struct queue *q, struct heap *h, uint32_t pos, uint64_t key, uint32_t val)
{
	for (;;) {
		uint64_t first = 4 * (uint64_t)pos + 1;
		uint32_t best, end;

		if (first >= h->n)
			break;
		end = h->n - first < 4 ? h->n : (uint32_t)first + 4;
		best = (uint32_t)first;
		for (uint32_t c = best + 1; c < end; c++)
			if (heap_before(h->key[c], h->val[c], h->key[best], h->val[best]))
				best = c;
		if (!heap_before(h->key[best], h->val[best], key, val))
			break;
		heap_place(q, h, pos, h->key[best], h->val[best]);
		pos = best;
	}
	heap_place(q, h, pos, key, val);
}

static void
heap_resize(struct heap *h, uint32_t cap)
{
	h->key = xrealloc(h->key, (size_t)cap * sizeof(*h->key));
	h->val = xrealloc(h->val, (size_t)cap * sizeof(*h->val));
	h->cap = cap;
}

static void
heap_push(struct queue *q, struct heap *h, uint64_t key, uint32_t val)
{
	if (h->n == h->cap)
		heap_resize(h, h->cap ? 2 * h->cap : HEAP_MIN);
	h->n++;
	heap_sift_up(q, h, h->n - 1, key, val);
}

static void
heap_remove(struct queue *q, struct heap *h, uint32_t pos)
{
	uint32_t last = --h->n;

	if (pos != last) {
		uint64_t key = h->key[last];
		uint32_t val = h->val[last];

		if (pos > 0 && heap_before(key, val, h->key[(pos - 1) / 4], h->val[(pos - 1) / 4]))
			heap_sift_up(q, h, pos, key, val);
		else
			heap_sift_down(q, h, pos, key, val);
	}
	/* A destination that drained a large backlog gives the memory back. */
	if (h->n == 0) {
		free(h->key);
		free(h->val);
		*h = (struct heap){0};
	} else if (h->cap > 64 && h->n < h->cap / 4) {
		heap_resize(h, h->cap / 2);
	}
}

static void
heap_update(struct queue *q, struct heap *h, uint32_t pos, uint64_t key)
{
	uint32_t val = h->val[pos];

	if (key < h->key[pos])
		heap_sift_up(q, h, pos, key, val);
	else
		heap_sift_down(q, h, pos, key, val);
}

/* ---- Name indexes (lanes, sites) ---- */

static uint64_t
name_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static void
name_index_init(struct name_index *x)
{
	x->bucket = xcalloc(NAME_BUCKETS_MIN, sizeof(*x->bucket));
	x->mask = NAME_BUCKETS_MIN - 1;
	x->n = 0;
}

static struct named *
name_lookup(const struct name_index *x, const char *name, uint64_t h)
{
	struct named *e = x->bucket[h & x->mask];

	while (e != NULL && (e->hash != h || strcmp(e->name, name) != 0))
		e = e->hnext;
	return e;
}

/* Load 1 at most: chains stay about one entry long. */
static void
name_insert(struct name_index *x, struct named *e)
{
	struct named **b;

	if (x->n + 1 > x->mask + 1) {
		uint32_t nb = 2 * (x->mask + 1);
		struct named **nbk = xcalloc(nb, sizeof(*nbk));

		for (uint32_t i = 0; i <= x->mask; i++) {
			for (struct named *c = x->bucket[i], *next; c != NULL; c = next) {
				next = c->hnext;
				c->hnext = nbk[c->hash & (nb - 1)];
				nbk[c->hash & (nb - 1)] = c;
			}
		}
		free(x->bucket);
		x->bucket = nbk;
		x->mask = nb - 1;
	}
	b = &x->bucket[e->hash & x->mask];
	e->hnext = *b;
	*b = e;
	x->n++;
}

static void
name_remove(struct name_index *x, struct named *e)
{
	struct named **p = &x->bucket[e->hash & x->mask];

	while (*p != e)
		p = &(*p)->hnext;
	*p = e->hnext;
	x->n--;
}

/* ---- Sites ---- */

static struct queue_site *
site_get(struct queue *q, const char *name)
{
	uint64_t h = name_hash(name);
	struct queue_site *s = (struct queue_site *)name_lookup(&q->site_names, name, h);

	if (s != NULL)
		return s;
	s = xcalloc(1, sizeof(*s));
	s->n.name = xstrdup(name);
	s->n.hash = h;
	s->class_slots = xcalloc(q->nclasses, sizeof(*s->class_slots));
	s->state = QUEUE_DEST_ALIVE;
	s->window = q->opt.initial_window;
	name_insert(&q->site_names, &s->n);
	return s;
}

static void
site_set_state(struct queue *q, struct queue_site *s, uint8_t state)
{
	if (s->state == QUEUE_DEST_DEAD)
		q->ndead--;
	if (state == QUEUE_DEST_DEAD)
		q->ndead++;
	s->state = state;
}

static void
site_release(struct queue *q, struct queue_site *s)
{
	name_remove(&q->site_names, &s->n);
	site_set_state(q, s, QUEUE_DEST_ALIVE); /* keeps ndead right */
	free(s->lanes);
	free(s->class_slots);
	free(s->n.name);
	free(s);
}

static uint32_t
site_max_window(const struct queue *q, const struct queue_site *s)
{
	return s->max_window != 0 ? s->max_window : q->opt.max_window;
}

/* The window a new or revived site opens at, within its top. */
static uint32_t
site_initial_window(const struct queue *q, const struct queue_site *s)
{
	uint32_t w = s->initial_window != 0 ? s->initial_window : q->opt.initial_window;

	return w < site_max_window(q, s) ? w : site_max_window(q, s);
}

/* Connections allowed at once now. */
static uint32_t
site_window(const struct queue_site *s)
{
	switch (s->state) {
	case QUEUE_DEST_DEAD:
		return 0;
	case QUEUE_DEST_PROBE:
		return 1;
	default:
		return s->window;
	}
}

/* A new top for the window: a window above it closes to it at once (connections already
 * open finish; no new one opens until the count is below). */
static void
site_set_max_window(struct queue_site *s, uint32_t max)
{
	s->max_window = max;
	if (s->window > max)
		s->window = max;
}

/* A class's reserved share of a window: rounded up, so that any share above 0 % is at
 * least one connection. */
static uint32_t
class_reserve(const struct queue *q, uint32_t cls, uint32_t window)
{
	uint64_t pct = q->classes[cls].reserve_pct;

	return (uint32_t)(((uint64_t)window * pct + 99) / 100);
}

/* May the lane open one more connection at its site? Within the window, and leaving the
 * slots other classes reserve and do not use yet; reservations never take the last free
 * slot of a window of one (a probe, or a window closed by failures) from whoever has mail. */
static bool
lane_may_connect(const struct queue *q, const struct queue_dest *d)
{
	const struct queue_site *s = d->site;
	uint32_t w = site_window(s), held = 0;

	if (s->slots >= w)
		return false;
	for (uint32_t c = 0; c < q->nclasses; c++) {
		uint32_t r;

		if (c == d->cls || q->classes[c].reserve_pct == 0)
			continue;
		r = class_reserve(q, c, w);
		if (r > s->class_slots[c])
			held += r - s->class_slots[c];
	}
	if (held > w - 1)
		held = w - 1;
	return w - s->slots > held;
}

/* ---- Lanes ---- */

static struct queue_dest *
dest_get(struct queue *q, const char *site, const char *name, const char *via, uint32_t cls)
{
	uint64_t h = name_hash(name);
	struct queue_dest *d = (struct queue_dest *)name_lookup(&q->lane_names, name, h);
	struct queue_site *s;

	if (d != NULL)
		return d;
	s = site_get(q, site);
	d = xcalloc(1, sizeof(*d));
	d->n.name = xstrdup(name);
	d->n.hash = h;
	d->site = s;
	d->via = via != NULL ? xstrdup(via) : NULL;
	d->cls = cls;
	d->due_pos = NIL;
	list_init(&d->ready);
	if (q->ndest_free > 0) {
		d->idx = q->dest_free[--q->ndest_free];
	} else {
		if (q->ndests_slots == q->dests_cap) {
			q->dests_cap = q->dests_cap ? 2 * q->dests_cap : 64;
			q->dests = xrealloc(q->dests, q->dests_cap * sizeof(*q->dests));
		}
		d->idx = q->ndests_slots++;
	}
	q->dests[d->idx] = d;
	name_insert(&q->lane_names, &d->n);
	if (s->nlanes == s->lanes_cap) {
		s->lanes_cap = s->lanes_cap ? 2 * s->lanes_cap : 4;
		s->lanes = xrealloc(s->lanes, s->lanes_cap * sizeof(*s->lanes));
	}
	s->lanes[s->nlanes++] = d;
	return d;
}

/* Frees the lane; its site stays (site_update frees a site without lanes). */
static void
dest_free(struct queue *q, struct queue_dest *d)
{
	struct queue_site *s = d->site;

	name_remove(&q->lane_names, &d->n);
	for (uint32_t i = 0; i < s->nlanes; i++) {
		if (s->lanes[i] == d) {
			s->lanes[i] = s->lanes[--s->nlanes];
			break;
		}
	}
	q->dests[d->idx] = NULL;
	if (q->ndest_free == q->dest_free_cap) {
		q->dest_free_cap = q->dest_free_cap ? 2 * q->dest_free_cap : 64;
		q->dest_free = xrealloc(q->dest_free, q->dest_free_cap * sizeof(*q->dest_free));
	}
	q->dest_free[q->ndest_free++] = d->idx;
	free(d->sched.key);
	free(d->sched.val);
	free(d->via);
	free(d->n.name);
	free(d);
}

static void
ring_append(struct queue *q, struct queue_dest *d)
{
	d->rr_next = NULL;
	d->rr_prev = q->rr_tail;
	if (q->rr_tail != NULL)
		q->rr_tail->rr_next = d;
	else
		q->rr_head = d;
	q->rr_tail = d;
	d->in_ring = true;
}

static void
ring_unlink(struct queue *q, struct queue_dest *d)
{
	if (d->rr_prev != NULL)
		d->rr_prev->rr_next = d->rr_next;
	else
		q->rr_head = d->rr_next;
	if (d->rr_next != NULL)
		d->rr_next->rr_prev = d->rr_prev;
	else
		q->rr_tail = d->rr_prev;
	d->rr_prev = d->rr_next = NULL;
	d->in_ring = false;
}

/* After any change to d or its site: put d where its state says it belongs. In the due heap
 * when it has scheduled items and room in its ready queue (keyed by its earliest item), or
 * its site is dead (keyed by the end of the cooldown if that comes first); in the ring when
 * it has ready items and may open a connection; freed when nothing refers to it and its site
 * has no dead-site memory worth keeping (as Postfix's qmgr drops an empty queue unless it is
 * dead). Returns false if d was freed. */
static bool
lane_update(struct queue *q, struct queue_dest *d)
{
	const struct queue_site *s = d->site;
	bool held = d->held_until > q->now_us;
	bool wake = d->sched.n > 0 && d->ready.n < q->opt.ready_max;
	bool runnable = !held && d->ready.n > 0 && lane_may_connect(q, d);
	uint64_t key = d->sched.n > 0 ? d->sched.key[0] : UINT64_MAX;

	if (d->sched.n == 0 && d->ready.n == 0 && d->active == 0 && d->expiring == 0 &&
	    d->slots == 0 && !(s->state == QUEUE_DEST_DEAD && q->now_us < s->dead_until)) {
		if (d->due_pos != NIL)
			heap_remove(q, &q->due, d->due_pos);
		if (d->in_ring)
			ring_unlink(q, d);
		dest_free(q, d);
		return false;
	}
	if (s->state == QUEUE_DEST_DEAD) {
		/* Woken at the end of the cooldown even with nothing scheduled: to probe, or to
		 * be forgotten. */
		wake = true;
		if (s->dead_until < key)
			key = s->dead_until;
	}
	if (held && (d->ready.n > 0 || d->sched.n > 0)) {
		/* Woken when the hold ends, to connect with what is ready by then. Before it only
		 * to move due items into a ready queue with room: keyed by a due item with the
		 * ready queue full, the advance would find the lane due again and again. */
		if (!wake)
			key = UINT64_MAX;
		wake = true;
		if (d->held_until < key)
			key = d->held_until;
	}
	if (wake) {
		if (d->due_pos == NIL)
			heap_push(q, &q->due, key, d->idx);
		else if (q->due.key[d->due_pos] != key)
			heap_update(q, &q->due, d->due_pos, key);
	} else if (d->due_pos != NIL) {
		heap_remove(q, &q->due, d->due_pos);
		d->due_pos = NIL;
	}
	if (runnable && !d->in_ring)
		ring_append(q, d);
	else if (!runnable && d->in_ring)
		ring_unlink(q, d);
	return true;
}

/* After any change to a site (slots, window, state) or one of its lanes: every lane of it
 * may change place, since they share its connections. Frees the site once it has no lane
 * left. The caller must not touch a lane or the site afterwards unless it holds a slot or an
 * item there. */
static void
site_update(struct queue *q, struct queue_site *s)
{
	/* Downwards: freeing lane i moves the last one, already seen, into its place. */
	for (uint32_t i = s->nlanes; i-- > 0;)
		(void)lane_update(q, s->lanes[i]);
	if (s->nlanes == 0 && s->slots == 0)
		site_release(q, s);
}

static void
note_now(struct queue *q, uint64_t now_us)
{
	if (now_us > q->now_us)
		q->now_us = now_us;
}

static void
schedule(struct queue *q, struct queue_dest *d, struct queue_item *it, uint64_t when_us)
{
	item_set_state(q, it, QUEUE_ITEM_SCHEDULED);
	heap_push(q, &d->sched, when_us, it->self);
}

static void
expire_aside(struct queue *q, struct queue_dest *d, struct queue_item *it)
{
	item_set_state(q, it, QUEUE_ITEM_EXPIRING);
	list_append(q, &q->expiring, it);
	d->expiring++;
}

/* Hold an item of a dead site until the end of its cooldown, without counting an attempt;
 * or set it aside as expired when its lifetime ends before that. */
static void
hold_or_expire(struct queue *q, struct queue_dest *d, struct queue_item *it)
{
	if (d->site->dead_until > item_expires_us(it))
		expire_aside(q, d, it);
	else
		schedule(q, d, it, d->site->dead_until);
}

static void
site_kill(struct queue *q, struct queue_site *s, uint64_t now_us)
{
	uint64_t cooldown = q->opt.dead_cooldown_us, max = q->opt.dead_cooldown_max_us;
	struct queue_item *it;

	for (uint32_t i = 0; i < s->deaths && cooldown < max; i++)
		cooldown = cooldown > max / 2 ? max : 2 * cooldown;
	if (cooldown > max)
		cooldown = max;
	if (s->deaths < UINT32_MAX)
		s->deaths++;
	s->dead_until = now_us > UINT64_MAX - cooldown ? UINT64_MAX : now_us + cooldown;
	site_set_state(q, s, QUEUE_DEST_DEAD);
	for (uint32_t i = 0; i < s->nlanes; i++)
		while ((it = list_pop(q, &s->lanes[i]->ready)) != NULL)
			hold_or_expire(q, s->lanes[i], it);
}

/* ---- The queue ---- */

void
queue_options_default(struct queue_options *o)
{
	*o = (struct queue_options){
	    .ready_max = DEF_QUEUE_READY_MAX,
	    .batch_max = DEF_QUEUE_BATCH_MAX,
	    .initial_window = DEF_QUEUE_INITIAL_WINDOW,
	    .max_window = DEF_QUEUE_MAX_WINDOW,
	    .dead_after = DEF_QUEUE_DEAD_AFTER,
	    .dead_cooldown_us = DEF_QUEUE_DEAD_COOLDOWN_S * USEC,
	    .dead_cooldown_max_us = DEF_QUEUE_DEAD_COOLDOWN_MAX_S * USEC,
	    .advance_max = DEF_QUEUE_ADVANCE_MAX,
	    .seed = 0,
	};
	retry_schedule_default(&o->retry);
}

static const char *
retry_check(const struct retry_schedule *r)
{
	if (r->n == 0 || r->n > QUEUE_RETRY_MAX)
		return "the retry schedule needs 1 to 16 intervals";
	for (unsigned i = 0; i < r->n; i++)
		if (r->interval_us[i] == 0)
			return "a retry interval must be more than 0";
	if (r->jitter_pct > LIM_RETRY_JITTER_PCT_MAX)
		return "retry jitter must be at most 50%";
	return NULL;
}

static const char *
options_check(const struct queue_options *o)
{
	unsigned reserved = 0;
	const char *why;

	if (o->ready_max == 0)
		return "ready_max must be at least 1";
	if (o->batch_max == 0)
		return "batch_max must be at least 1";
	if (o->initial_window == 0)
		return "initial_window must be at least 1";
	if (o->max_window < o->initial_window)
		return "max_window must be at least initial_window";
	if (o->dead_after == 0)
		return "dead_after must be at least 1";
	if (o->dead_cooldown_us == 0)
		return "dead_cooldown must be more than 0";
	if (o->dead_cooldown_max_us < o->dead_cooldown_us)
		return "dead_cooldown_max must be at least dead_cooldown";
	if (o->advance_max == 0)
		return "advance_max must be at least 1";
	if ((why = retry_check(&o->retry)) != NULL)
		return why;
	if (o->nclasses > QUEUE_CLASSES_MAX)
		return "too many classes";
	for (unsigned c = 0; c < o->nclasses; c++) {
		if ((why = retry_check(&o->classes[c].retry)) != NULL)
			return why;
		if (o->classes[c].reserve_pct > 100)
			return "a class's reserve must be at most 100%";
		reserved += o->classes[c].reserve_pct;
	}
	if (reserved > 100)
		return "the classes' reserves add up to more than 100%";
	return NULL;
}

struct queue *
queue_new(const struct queue_options *o, char *err, size_t errlen)
{
	const char *why = options_check(o);
	struct queue *q;

	if (why != NULL) {
		snprintf(err, errlen, "queue: %s", why);
		return NULL;
	}
	q = xcalloc(1, sizeof(*q));
	q->opt = *o;
	/* Without classes, one: the options' retry schedule, no priority, no reserve. */
	q->nclasses = o->nclasses > 0 ? o->nclasses : 1;
	q->classes = xcalloc(q->nclasses, sizeof(*q->classes));
	if (o->nclasses > 0)
		memcpy(q->classes, o->classes, o->nclasses * sizeof(*q->classes));
	else
		q->classes[0].retry = o->retry;
	q->opt.classes = NULL;
	queue_rng_seed(&q->rng, o->seed);
	q->free_head = NIL;
	list_init(&q->expiring);
	id_index_resize(q, IDX_BUCKETS_MIN);
	name_index_init(&q->lane_names);
	name_index_init(&q->site_names);
	return q;
}

int
queue_reconfigure(struct queue *q, const struct queue_options *o, char *err, size_t errlen)
{
	const char *why = options_check(o);
	uint32_t n = o->nclasses > 0 ? o->nclasses : 1;

	if (why == NULL && n < q->nclasses)
		why = "classes may be added, not removed (lanes refer to them by index)";
	if (why != NULL) {
		snprintf(err, errlen, "queue: %s", why);
		return -1;
	}
	/* Every site counts its connections per class: the new classes start at zero. */
	if (n > q->nclasses)
		for (uint32_t b = 0; b <= q->site_names.mask; b++)
			for (struct named *c = q->site_names.bucket[b]; c != NULL; c = c->hnext) {
				struct queue_site *site = (struct queue_site *)c;

				site->class_slots =
				    xrealloc(site->class_slots, n * sizeof(*site->class_slots));
				memset(site->class_slots + q->nclasses, 0,
				       (n - q->nclasses) * sizeof(*site->class_slots));
			}
	q->classes = xrealloc(q->classes, n * sizeof(*q->classes));
	if (o->nclasses > 0)
		memcpy(q->classes, o->classes, n * sizeof(*q->classes));
	else
		q->classes[0].retry = o->retry;
	q->nclasses = n;
	q->opt = *o;
	q->opt.classes = NULL;
	queue_rng_seed(&q->rng, o->seed);
	return 0;
}

void
queue_free(struct queue *q)
{
	if (q == NULL)
		return;
	for (uint32_t i = 0; i < q->ndests_slots; i++) {
		struct queue_dest *d = q->dests[i];

		if (d != NULL) {
			struct queue_site *s = d->site;

			dest_free(q, d);
			if (s->nlanes == 0)
				site_release(q, s);
		}
	}
	for (uint32_t i = 0; i < q->nchunks; i++)
		free(q->chunks[i]);
	free(q->chunks);
	free(q->idx_bucket);
	free(q->dests);
	free(q->dest_free);
	free(q->lane_names.bucket);
	free(q->site_names.bucket);
	free(q->classes);
	free(q->due.key);
	free(q->due.val);
	free(q);
}

int
queue_add_lane(struct queue *q, const char *id, const struct queue_lane *lane, uint64_t received_us,
               uint64_t next_attempt_us, unsigned attempts)
{
	uint8_t raw[ID_BYTES];
	struct queue_dest *d;
	struct queue_item *it;
	const char *name;

	if (id_decode(id, raw) < 0 || lane == NULL || lane->site == NULL || *lane->site == '\0' ||
	    lane->cls >= q->nclasses) {
		errno = EINVAL;
		return -1;
	}
	name = lane->name != NULL ? lane->name : lane->site;
	if (*name == '\0') {
		errno = EINVAL;
		return -1;
	}
	d = dest_get(q, lane->site, name, lane->via, lane->cls);
	if (strcmp(d->site->n.name, lane->site) != 0 || d->cls != lane->cls) {
		/* One name, one lane: the caller's names say what they stand for. */
		site_update(q, d->site);
		errno = EINVAL;
		return -1;
	}
	if (id_queued(q, raw, d->idx)) {
		site_update(q, d->site); /* frees the lane if it was made just now */
		errno = EEXIST;
		return -1;
	}
	if (lane->max_window != 0)
		site_set_max_window(d->site, lane->max_window);
	if (lane->initial_window != 0 && d->site->initial_window != lane->initial_window) {
		/* A site that has not opened past its old start opens from the new one. */
		bool fresh = d->site->window == site_initial_window(q, d->site);

		d->site->initial_window = lane->initial_window;
		if (fresh && d->site->state == QUEUE_DEST_ALIVE)
			d->site->window = site_initial_window(q, d->site);
	}
	it = item_alloc(q);
	memcpy(it->id, raw, ID_BYTES);
	it->dest = d->idx;
	it->expire_s = expire_seconds(retry_expires_us(&q->classes[d->cls].retry, received_us));
	it->attempts = attempts > UINT16_MAX ? UINT16_MAX : (uint16_t)attempts;
	id_link(q, it);
	schedule(q, d, it, next_attempt_us);
	(void)lane_update(q, d);
	return 0;
}

int
queue_add(struct queue *q, const char *id, const char *dest, uint64_t received_us,
          uint64_t next_attempt_us, unsigned attempts)
{
	struct queue_lane lane = {.site = dest, .name = dest};

	return queue_add_lane(q, id, &lane, received_us, next_attempt_us, attempts);
}

/* Unlinks a waiting item from its heap or list (its state is left for the caller to set);
 * false for one being delivered (ACTIVE), which is in none. */
static bool
item_unlink(struct queue *q, struct queue_dest *d, struct queue_item *it)
{
	switch (it->state) {
	case QUEUE_ITEM_SCHEDULED:
		heap_remove(q, &d->sched, it->link);
		return true;
	case QUEUE_ITEM_READY:
		list_unlink(q, &d->ready, it);
		return true;
	case QUEUE_ITEM_EXPIRING:
		list_unlink(q, &q->expiring, it);
		d->expiring--;
		return true;
	default:
		return false;
	}
}

/* Take an item out of the queue wherever it is; one being delivered is only marked. */
static void
item_drop(struct queue *q, struct queue_item *it)
{
	struct queue_dest *d = q->dests[it->dest];

	if (!item_unlink(q, d, it)) {
		it->flags |= ITEM_CANCELLED;
		return;
	}
	item_free(q, it);
	site_update(q, d->site);
}

int
queue_remove(struct queue *q, const char *id)
{
	uint8_t raw[ID_BYTES];
	uint32_t i;
	int n = 0;

	if (id_decode(id, raw) < 0) {
		errno = EINVAL;
		return -1;
	}
	for (i = q->idx_bucket[id_hash(raw) & q->idx_mask]; i != NIL;) {
		struct queue_item *it = item_at(q, i);

		i = it->hnext; /* before item_drop() frees it */
		if (memcmp(it->id, raw, ID_BYTES) == 0) {
			item_drop(q, it);
			n++;
		}
	}
	return n;
}

uint64_t
queue_next_due_us(const struct queue *q)
{
	if (q->expiring.n > 0 || q->rr_head != NULL)
		return 0;
	return q->due.n > 0 ? q->due.key[0] : UINT64_MAX;
}

void
queue_advance(struct queue *q, uint64_t now_us)
{
	unsigned budget = q->opt.advance_max;

	note_now(q, now_us);
	/* Each pass leaves the lane out of the heap (ready queue full, nothing scheduled) or
	 * keyed after now, so the loop visits each woken lane once, unless the budget runs out
	 * first. */
	while (q->due.n > 0 && q->due.key[0] <= now_us && budget > 0) {
		struct queue_dest *d = q->dests[q->due.val[0]];
		struct queue_site *s = d->site;
		struct heap *h = &d->sched;

		if (s->state == QUEUE_DEST_DEAD && now_us >= s->dead_until) {
			/* The cooldown is over: every lane of the site may take the probe. */
			site_set_state(q, s, QUEUE_DEST_PROBE);
			site_update(q, s);
			continue;
		}
		if (s->state == QUEUE_DEST_DEAD) {
			for (; budget > 0 && h->n > 0 && h->key[0] <= now_us; budget--) {
				struct queue_item *it = item_at(q, h->val[0]);

				if (s->dead_until > item_expires_us(it)) {
					heap_remove(q, h, 0);
					expire_aside(q, d, it);
				} else {
					heap_update(q, h, 0, s->dead_until);
				}
			}
		} else {
			for (; budget > 0 && d->ready.n < q->opt.ready_max && h->n > 0 &&
			       h->key[0] <= now_us;
			     budget--) {
				struct queue_item *it = item_at(q, h->val[0]);

				heap_remove(q, h, 0);
				item_set_state(q, it, QUEUE_ITEM_READY);
				list_append(q, &d->ready, it);
			}
		}
		(void)lane_update(q, d);
	}
}

/* The lane of d's site that a free connection goes to: the one with ready mail that may
 * connect whose class has the highest priority; d itself on a tie. d is in the ring. */
static struct queue_dest *
site_first_lane(const struct queue *q, struct queue_dest *d)
{
	const struct queue_site *s = d->site;
	struct queue_dest *best = d;

	for (uint32_t i = 0; i < s->nlanes; i++) {
		struct queue_dest *l = s->lanes[i];

		if (l->in_ring && q->classes[l->cls].priority > q->classes[best->cls].priority)
			best = l;
	}
	return best;
}

/* True if a lane of d's site of higher priority than d's has mail ready and no connection
 * to send it: d's connection should make room rather than take more. */
static bool
site_has_waiting_priority(const struct queue *q, const struct queue_dest *d)
{
	const struct queue_site *s = d->site;

	for (uint32_t i = 0; i < s->nlanes; i++) {
		const struct queue_dest *l = s->lanes[i];

		if (l != d && l->ready.n > 0 && !l->in_ring &&
		    q->classes[l->cls].priority > q->classes[d->cls].priority)
			return true;
	}
	return false;
}

static size_t
take_ready(struct queue *q, struct queue_dest *d, struct queue_item **items, size_t max)
{
	struct queue_item *it;
	size_t n = 0;

	while (n < max && (it = list_pop(q, &d->ready)) != NULL) {
		item_set_state(q, it, QUEUE_ITEM_ACTIVE);
		it->flags &= (uint8_t)~ITEM_PARKED;
		d->active++;
		items[n++] = it;
	}
	return n;
}

size_t
queue_take(struct queue *q, uint64_t now_us, struct queue_batch *b, struct queue_item **items,
           size_t cap)
{
	size_t max = cap < q->opt.batch_max ? cap : q->opt.batch_max;
	struct queue_dest *d;
	struct queue_item *it;

	*b = (struct queue_batch){.work = QUEUE_WORK_NONE};
	if (max == 0)
		return 0;
	queue_advance(q, now_us);
	if (q->expiring.n > 0) {
		/* Bouncing costs no connection slot; do it before anything waits on one. */
		while (b->n < max && (it = list_pop(q, &q->expiring)) != NULL) {
			d = q->dests[it->dest];
			d->expiring--;
			d->active++;
			item_set_state(q, it, QUEUE_ITEM_ACTIVE);
			items[b->n++] = it;
		}
		b->work = QUEUE_WORK_EXPIRE;
		return b->n;
	}
	if ((d = q->rr_head) == NULL)
		return 0;
	/* Round robin over the sites' lanes; at the site whose turn it is, the lane of the class
	 * of highest priority that may connect goes first (the one whose turn it is on a tie). It
	 * goes to the back of the ring (lane_update) if it still may take more; the others keep
	 * their places. */
	d = site_first_lane(q, d);
	ring_unlink(q, d);
	b->n = take_ready(q, d, items, max);
	d->slots++;
	d->site->slots++;
	d->site->class_slots[d->cls]++;
	b->work = QUEUE_WORK_DELIVER;
	b->dest = d;
	site_update(q, d->site);
	return b->n;
}

size_t
queue_take_more(struct queue *q, struct queue_dest *d, uint64_t now_us, struct queue_item **items,
                size_t cap)
{
	size_t n, max = cap < q->opt.batch_max ? cap : q->opt.batch_max;

	if (d->slots == 0)
		fatal("queue_take_more: no connection slot held for %s", d->n.name);
	queue_advance(q, now_us);
	if (d->site->state == QUEUE_DEST_DEAD)
		return 0;
	/* A reused connection hands its slot over to higher-priority mail waiting at the same
	 * site: it ends after what it carries, and the slot goes to that lane. */
	if (site_has_waiting_priority(q, d))
		return 0;
	n = take_ready(q, d, items, max);
	(void)lane_update(q, d);
	return n;
}

enum queue_dest_state
queue_feedback(struct queue *q, struct queue_dest *d, enum queue_conn conn, uint64_t now_us)
{
	struct queue_site *s = d->site;
	enum queue_dest_state state;

	note_now(q, now_us);
	switch (conn) {
	case QUEUE_CONN_OK:
		/* The site answers: a dead or probed site is alive again and reopens slowly from
		 * the initial window (Postfix's "slow open" after unthrottling). */
		s->fails = 0;
		if (s->state != QUEUE_DEST_ALIVE) {
			site_set_state(q, s, QUEUE_DEST_ALIVE);
			s->window = site_initial_window(q, s);
			s->credit = 0;
			s->deaths = 0;
			s->dead_until = 0;
		} else if (s->window < site_max_window(q, s)) {
			s->window++;
		}
		break;
	case QUEUE_CONN_FAILED:
		s->credit = 0;
		if (s->fails < UINT32_MAX)
			s->fails++;
		if (s->state == QUEUE_DEST_PROBE) {
			site_kill(q, s, now_us);
		} else if (s->state == QUEUE_DEST_ALIVE) {
			if (s->window > 1)
				s->window--;
			if (s->fails >= q->opt.dead_after)
				site_kill(q, s, now_us);
		}
		/* Already dead: the failures of connections opened before it died change
		 * nothing. */
		break;
	case QUEUE_CONN_NONE:
		break;
	}
	state = s->state;
	site_update(q, s); /* d holds a slot: neither it nor its site goes */
	return state;
}

bool
queue_feedback_transaction(struct queue *q, struct queue_dest *d, uint64_t now_us)
{
	struct queue_site *s = d->site;

	if (d->slots == 0)
		fatal("queue_feedback_transaction: no connection slot held for %s", d->n.name);
	note_now(q, now_us);
	/* A dead or probed site reopens through queue_feedback's revival only: one answered
	 * transaction on an old connection must not open a window still held back. */
	if (s->state != QUEUE_DEST_ALIVE || s->window >= site_max_window(q, s))
		return false;
	/* 1/window per answer: a window of w needs w answers to grow by one, as much as one
	 * round of its connections gives, so growth stays additive (Postfix, TCP). */
	if (++s->credit < s->window)
		return false;
	s->credit = 0;
	s->window++;
	site_update(q, s);
	return true;
}

void
queue_release(struct queue *q, struct queue_dest *d, enum queue_conn conn, uint64_t now_us)
{
	struct queue_site *s = d->site;

	if (d->slots == 0)
		fatal("queue_release: no connection slot held for %s", d->n.name);
	if (conn != QUEUE_CONN_NONE)
		queue_feedback(q, d, conn, now_us);
	note_now(q, now_us);
	d->slots--;
	s->slots--;
	s->class_slots[d->cls]--;
	site_update(q, s);
}

enum queue_fate
queue_item_done(struct queue *q, struct queue_item *it, enum queue_outcome outcome, uint64_t now_us,
                uint64_t *next_us)
{
	return queue_item_done_with(q, it, outcome, now_us, NULL, next_us);
}

enum queue_fate
queue_item_done_with(struct queue *q, struct queue_item *it, enum queue_outcome outcome,
                     uint64_t now_us, const struct retry_schedule *retry, uint64_t *next_us)
{
	enum queue_fate fate = QUEUE_FATE_REMOVED;
	struct queue_dest *d;
	uint64_t next = 0;

	if (it->state != QUEUE_ITEM_ACTIVE)
		fatal("queue_item_done: item %u was not taken", it->self);
	note_now(q, now_us);
	d = q->dests[it->dest];
	d->active--;
	switch (outcome) {
	case QUEUE_DELIVERED:
		d->delivered++;
		break;
	case QUEUE_BOUNCED:
		d->bounced++;
		break;
	case QUEUE_EXPIRED:
		d->expired++;
		break;
	case QUEUE_DEFERRED:
		d->deferred++;
		if (it->attempts < UINT16_MAX)
			it->attempts++;
		if (it->flags & ITEM_CANCELLED)
			break;
		next = retry_next(retry != NULL ? retry : &q->classes[d->cls].retry, it->attempts,
		                  now_us, &q->rng);
		if (next > item_expires_us(it)) {
			d->expired++;
			fate = QUEUE_FATE_EXPIRED;
			break;
		}
		schedule(q, d, it, next);
		fate = QUEUE_FATE_RESCHEDULED;
		break;
	case QUEUE_UNTRIED:
		if (it->flags & ITEM_CANCELLED)
			break;
		next = now_us;
		schedule(q, d, it, next);
		fate = QUEUE_FATE_RESCHEDULED;
		break;
	default:
		fatal("queue_item_done: unknown outcome %d", (int)outcome);
	}
	if (fate == QUEUE_FATE_RESCHEDULED) {
		if (next_us != NULL)
			*next_us = next;
	} else {
		item_free(q, it);
	}
	site_update(q, d->site);
	return fate;
}

void
queue_hold(struct queue *q, struct queue_dest *d, uint64_t until_us, uint64_t now_us)
{
	note_now(q, now_us);
	d->held_until = until_us;
	site_update(q, d->site);
}

int
queue_hold_site(struct queue *q, const char *site, uint64_t until_us, uint64_t now_us)
{
	struct queue_site *s =
	    (struct queue_site *)name_lookup(&q->site_names, site, name_hash(site));

	if (s == NULL)
		return 0;
	note_now(q, now_us);
	for (uint32_t i = 0; i < s->nlanes; i++)
		s->lanes[i]->held_until = until_us;
	site_update(q, s);
	return 1;
}

void
queue_hold_none(struct queue *q, uint64_t now_us)
{
	note_now(q, now_us);
	for (uint32_t i = 0; i < q->ndests_slots; i++) {
		struct queue_dest *d = q->dests[i];

		if (d == NULL || d->held_until == 0)
			continue;
		d->held_until = 0;
		site_update(q, d->site); /* may free lanes: the loop checks for NULL */
	}
}

bool
queue_dest_yields(const struct queue *q, const struct queue_dest *d)
{
	return site_has_waiting_priority(q, d);
}

int
queue_site_limit(struct queue *q, const char *site, unsigned max_window)
{
	struct queue_site *s =
	    (struct queue_site *)name_lookup(&q->site_names, site, name_hash(site));

	if (s == NULL)
		return 0;
	site_set_max_window(s, max_window);
	site_update(q, s);
	return 1;
}

/* ---- An operator's hand (engine_admin.c) ---- */

size_t
queue_find(const struct queue *q, const char *id, struct queue_item **items, size_t cap)
{
	uint8_t raw[ID_BYTES];
	size_t n = 0;

	if (id_decode(id, raw) < 0)
		return 0;
	for (uint32_t i = q->idx_bucket[id_hash(raw) & q->idx_mask]; i != NIL && n < cap;) {
		struct queue_item *it = item_at(q, i);

		if (memcmp(it->id, raw, ID_BYTES) == 0)
			items[n++] = it;
		i = it->hnext;
	}
	return n;
}

enum queue_item_state
queue_item_state(const struct queue_item *it)
{
	return (enum queue_item_state)it->state;
}

bool
queue_item_parked(const struct queue_item *it)
{
	return it->state == QUEUE_ITEM_SCHEDULED && (it->flags & ITEM_PARKED) != 0;
}

int
queue_item_take(struct queue *q, struct queue_item *it, uint64_t now_us)
{
	struct queue_dest *d = q->dests[it->dest];

	note_now(q, now_us);
	if (!item_unlink(q, d, it))
		return -1;
	item_set_state(q, it, QUEUE_ITEM_ACTIVE);
	it->flags &= (uint8_t)~ITEM_PARKED;
	d->active++;
	(void)lane_update(q, d); /* d->active keeps the lane */
	return 0;
}

void
queue_item_park(struct queue *q, struct queue_item *it, uint64_t until_us, uint64_t now_us)
{
	struct queue_dest *d;

	if (it->state != QUEUE_ITEM_ACTIVE)
		fatal("queue_item_park: item %u was not taken", it->self);
	note_now(q, now_us);
	d = q->dests[it->dest];
	d->active--;
	if (it->flags & ITEM_CANCELLED) {
		item_free(q, it);
	} else {
		schedule(q, d, it, until_us);
		it->flags |= ITEM_PARKED;
	}
	site_update(q, d->site);
}

int
queue_item_due_now(struct queue *q, struct queue_item *it, uint64_t now_us)
{
	struct queue_dest *d = q->dests[it->dest];

	if (it->state != QUEUE_ITEM_SCHEDULED)
		return 0;
	note_now(q, now_us);
	it->flags &= (uint8_t)~ITEM_PARKED;
	if (d->sched.key[it->link] <= now_us)
		return 0;
	heap_update(q, &d->sched, it->link, now_us);
	(void)lane_update(q, d);
	return 1;
}

int
queue_site_revive(struct queue *q, const char *site, uint64_t now_us)
{
	struct queue_site *s =
	    (struct queue_site *)name_lookup(&q->site_names, site, name_hash(site));

	if (s == NULL || s->state != QUEUE_DEST_DEAD)
		return 0;
	note_now(q, now_us);
	/* As at the end of its cooldown: one connection probes it; reaching the site reopens
	 * the window, failing kills it again (for longer). */
	s->dead_until = now_us;
	site_set_state(q, s, QUEUE_DEST_PROBE);
	site_update(q, s);
	return 1;
}

/* ---- Looking inside ---- */

void
queue_item_id(const struct queue_item *it, char id[QUEUE_ID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < ID_BYTES; i++) {
		id[2 * i] = hex[it->id[i] >> 4];
		id[2 * i + 1] = hex[it->id[i] & 0xf];
	}
	id[QUEUE_ID_LEN] = '\0';
}

unsigned
queue_item_attempts(const struct queue_item *it)
{
	return it->attempts;
}

uint64_t
queue_item_expires_us(const struct queue_item *it)
{
	return item_expires_us(it);
}

struct queue_dest *
queue_item_dest(const struct queue *q, const struct queue_item *it)
{
	return q->dests[it->dest];
}

const char *
queue_dest_name(const struct queue_dest *d)
{
	return d->n.name;
}

const char *
queue_dest_site(const struct queue_dest *d)
{
	return d->site->n.name;
}

const char *
queue_dest_via(const struct queue_dest *d)
{
	return d->via;
}

unsigned
queue_dest_class(const struct queue_dest *d)
{
	return d->cls;
}

struct queue_dest *
queue_dest_find(const struct queue *q, const char *name)
{
	return (struct queue_dest *)name_lookup(&q->lane_names, name, name_hash(name));
}

void
queue_dest_stats(const struct queue *q, const struct queue_dest *d, struct queue_dest_stats *st)
{
	/* A cooldown that ended since the last advance is shown as over (probing), as the
	 * next advance will make it. */
	const struct queue_site *s = d->site;
	bool over = s->state == QUEUE_DEST_DEAD && q->now_us >= s->dead_until;

	*st = (struct queue_dest_stats){
	    .name = d->n.name,
	    .site = s->n.name,
	    .via = d->via,
	    .cls = d->cls,
	    .state = over ? QUEUE_DEST_PROBE : s->state,
	    .scheduled = d->sched.n,
	    .ready = d->ready.n,
	    .active_items = d->active,
	    .expiring = d->expiring,
	    .slots = d->slots,
	    .site_slots = s->slots,
	    .window = over ? 1 : site_window(s),
	    .failures = s->fails,
	    .next_due_us = d->sched.n > 0 ? d->sched.key[0] : UINT64_MAX,
	    .dead_until_us = s->state == QUEUE_DEST_DEAD && !over ? s->dead_until : 0,
	    .held_until_us = d->held_until > q->now_us ? d->held_until : 0,
	    .max_window = site_max_window(q, s),
	    .delivered = d->delivered,
	    .deferred = d->deferred,
	    .bounced = d->bounced,
	    .expired = d->expired,
	};
}

void
queue_stats(const struct queue *q, struct queue_stats *st)
{
	uint64_t mem = sizeof(*q);

	mem += (uint64_t)q->nchunks * CHUNK_ITEMS * sizeof(struct queue_item);
	mem += (uint64_t)q->chunks_cap * sizeof(*q->chunks);
	mem += ((uint64_t)q->idx_mask + 1) * sizeof(*q->idx_bucket);
	mem += ((uint64_t)q->lane_names.mask + 1) * sizeof(*q->lane_names.bucket);
	mem += ((uint64_t)q->site_names.mask + 1) * sizeof(*q->site_names.bucket);
	mem += (uint64_t)q->nclasses * sizeof(*q->classes);
	mem += (uint64_t)q->dests_cap * sizeof(*q->dests);
	mem += (uint64_t)q->dest_free_cap * sizeof(*q->dest_free);
	mem += (uint64_t)q->due.cap * (sizeof(*q->due.key) + sizeof(*q->due.val));
	for (uint32_t i = 0; i < q->ndests_slots; i++) {
		const struct queue_dest *d = q->dests[i];

		const struct queue_site *s;

		if (d == NULL)
			continue;
		mem += sizeof(*d) + strlen(d->n.name) + 1 +
		       (d->via != NULL ? strlen(d->via) + 1 : 0) +
		       (uint64_t)d->sched.cap * (sizeof(*d->sched.key) + sizeof(*d->sched.val));
		s = d->site;
		if (s->lanes[0] == d) /* the site, once */
			mem += sizeof(*s) + strlen(s->n.name) + 1 +
			       (uint64_t)s->lanes_cap * sizeof(*s->lanes) +
			       (uint64_t)q->nclasses * sizeof(*s->class_slots);
	}
	*st = (struct queue_stats){
	    .scheduled = q->count[QUEUE_ITEM_SCHEDULED],
	    .ready = q->count[QUEUE_ITEM_READY],
	    .active = q->count[QUEUE_ITEM_ACTIVE],
	    .expiring = q->count[QUEUE_ITEM_EXPIRING],
	    .dests = q->lane_names.n,
	    .sites = q->site_names.n,
	    .dead_dests = q->ndead,
	    .memory_bytes = mem,
	    .item_size = sizeof(struct queue_item),
	};
	st->items = st->scheduled + st->ready + st->active + st->expiring;
}

void
queue_foreach_item(const struct queue *q, queue_item_fn *fn, void *arg)
{
	for (uint32_t i = 0; i < q->nslots; i++) {
		const struct queue_item *it = item_at(q, i);
		const struct queue_dest *d;
		struct queue_item_info info;

		if (it->state == ITEM_FREE)
			continue;
		d = q->dests[it->dest];
		queue_item_id(it, info.id);
		info.dest = d->n.name;
		info.state = it->state;
		info.attempts = it->attempts;
		info.next_attempt_us =
		    it->state == QUEUE_ITEM_SCHEDULED ? d->sched.key[it->link] : 0;
		info.expires_us = item_expires_us(it);
		if (!fn(arg, &info))
			return;
	}
}

void
queue_foreach_dest(const struct queue *q, queue_dest_fn *fn, void *arg)
{
	for (uint32_t i = 0; i < q->ndests_slots; i++) {
		struct queue_dest_stats st;

		if (q->dests[i] == NULL)
			continue;
		queue_dest_stats(q, q->dests[i], &st);
		if (!fn(arg, &st))
			return;
	}
}
