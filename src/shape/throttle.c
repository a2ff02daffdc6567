/* throttle.c - GCRA throttles per key, and connection slots.
 *
 * GCRA (the generic cell rate algorithm) keeps one time per key, the theoretical arrival time
 * (TAT): when the bucket would be full again. With emission interval T = period / count and
 * tolerance tau = (burst - 1) * T, an event at now conforms if TAT - now <= tau; it then
 * moves TAT to max(TAT, now) + T. burst events go back to back after a quiet time, and over
 * any long window no more than count per period (plus the burst) conform. A key whose TAT
 * has passed carries no information (it is the same as no key), so it may be dropped at
 * once: that is the table's expiry. Times are nanoseconds internally, so that T stays exact
 * enough for rates like 7/s (142857142.86 ns); T is rounded up, so rounding never allows
 * more than the rate.
 */
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

/* Idle keys looked at per decision: more than keys can be created per decision (one), so the
 * table drains as fast as it fills. */
#define SWEEP_PER_CALL 2

size_t
shape_key(char *buf, size_t size, const char *kind, const char *source, const char *dest)
{
	int n = snprintf(buf, size, "%s:%s:%s", kind, source != NULL ? source : "",
	                 dest != NULL ? dest : "");

	return n < 0 ? 0 : (size_t)n;
}

/* A key in a stack buffer; false if it does not fit (names are bounded, so only nonsense
 * input gets there). */
static bool
key_of(char *buf, size_t size, size_t *len, const char *kind, const char *source, const char *dest)
{
	*len = shape_key(buf, size, kind, source, dest);
	return *len > 0 && *len < size;
}

#define KEY_SIZE (SHAPE_DEST_MAX + 2 * SHAPE_NAME_MAX + 32)

static void
gcra_params(const struct shape_rate *r, uint64_t *t_ns, uint64_t *tau_ns)
{
	/* per_s <= 30 days and burst <= count (shape_rate_parse): no overflow. */
	*t_ns = (r->per_s * 1000000000ULL + r->count - 1) / r->count;
	*tau_ns = (r->burst > 1 ? r->burst - 1 : 0) * *t_ns;
}

static bool
gcra(struct shape_state *st, const char *key, size_t len, const struct shape_rate *r,
     uint64_t now_us, uint64_t *next_ok_us, bool take)
{
	uint64_t now_ns = now_us * NSEC_PER_USEC, t, tau, tat;
	struct tslot *s;

	if (next_ok_us != NULL)
		*next_ok_us = now_us;
	if (r == NULL || r->count == 0 || r->per_s == 0)
		return true;
	gcra_params(r, &t, &tau);
	s = sh_ttab_find(&st->throttles, key, len);
	tat = s != NULL && s->v.tat_ns > now_ns ? s->v.tat_ns : now_ns;
	/* A key's debt is at most what the rate in force allows (a burst just taken): when the
	 * rate was raised (a reload, a limit action's end), the old, slower rate's debt does not
	 * hold the events back for longer than one new interval. */
	if (tat - now_ns > t + tau) {
		tat = now_ns + t + tau;
		s->v.tat_ns = tat; /* kept: the next event's question starts from it */
	}
	if (tat - now_ns > tau) {
		if (next_ok_us != NULL)
			*next_ok_us = (tat - tau + NSEC_PER_USEC - 1) / NSEC_PER_USEC;
		return false;
	}
	if (!take)
		return true;
	sh_ttab_sweep(&st->throttles, now_us, SWEEP_PER_CALL);
	/* A full table evicts (shape.h): insert fails only if nothing may go. Then the event
	 * goes unthrottled rather than stopping delivery for a bookkeeping limit. */
	if ((s = sh_ttab_insert(&st->throttles, key, len, now_us, NULL)) != NULL) {
		s->v.tat_ns = tat + t;
		s->expires_us = (tat + t + NSEC_PER_USEC - 1) / NSEC_PER_USEC;
	}
	return true;
}

bool
shape_throttle_take(struct shape_state *st, const char *key, const struct shape_rate *r,
                    uint64_t now_us, uint64_t *next_ok_us)
{
	return gcra(st, key, strlen(key), r, now_us, next_ok_us, true);
}

bool
shape_throttle_peek(struct shape_state *st, const char *key, const struct shape_rate *r,
                    uint64_t now_us, uint64_t *next_ok_us)
{
	return gcra(st, key, strlen(key), r, now_us, next_ok_us, false);
}

bool
shape_message_take(struct shape_state *st, const char *source, const struct shape_params *p,
                   uint64_t now_us, uint64_t *next_ok_us)
{
	char k1[KEY_SIZE], k2[KEY_SIZE];
	size_t l1, l2;
	uint64_t n1 = now_us, n2 = now_us;
	bool ok1, ok2;

	if (!key_of(k1, sizeof(k1), &l1, "msg", source, p->dest) ||
	    !key_of(k2, sizeof(k2), &l2, "pmsg", NULL, p->dest)) {
		if (next_ok_us != NULL)
			*next_ok_us = now_us;
		return true;
	}
	ok1 = gcra(st, k1, l1, &p->s.message_rate, now_us, &n1, false);
	ok2 = gcra(st, k2, l2, &p->s.provider_message_rate, now_us, &n2, false);
	if (!ok1 || !ok2) {
		if (next_ok_us != NULL)
			*next_ok_us = n1 > n2 ? n1 : n2;
		return false;
	}
	gcra(st, k1, l1, &p->s.message_rate, now_us, NULL, true);
	gcra(st, k2, l2, &p->s.provider_message_rate, now_us, NULL, true);
	if (next_ok_us != NULL)
		*next_ok_us = now_us;
	return true;
}

/* ---- Connection slots ---- */

static unsigned
slots_held(const struct shape_state *st, const char *key, size_t len)
{
	const struct tslot *s = sh_ttab_find(&st->conns, key, len);

	return s != NULL ? s->v.conns : 0;
}

const char *
shape_verdict_name(enum shape_verdict v)
{
	static const char *const names[] = {"go", "suspended", "no-slot", "rate"};

	return (unsigned)v < nitems(names) ? names[v] : "?";
}

enum shape_verdict
shape_conn_acquire(struct shape_state *st, const char *source, const struct shape_params *p,
                   uint64_t now_us, uint64_t *when_us)
{
	char ks[KEY_SIZE], kd[KEY_SIZE], kr[KEY_SIZE];
	size_t ls, ld, lr;
	uint64_t until = 0;
	struct tslot *s, *d;

	*when_us = 0;
	if (shape_suspended(st, source, p->dest, now_us, &until)) {
		*when_us = until;
		return SHAPE_SUSPENDED;
	}
	if (!key_of(ks, sizeof(ks), &ls, "conn", source, p->dest) ||
	    !key_of(kd, sizeof(kd), &ld, "pconn", NULL, p->dest) ||
	    !key_of(kr, sizeof(kr), &lr, "conn", source, p->dest))
		return SHAPE_NO_SLOT;
	if (slots_held(st, ks, ls) >= p->s.max_connections)
		return SHAPE_NO_SLOT;
	if (p->s.provider_max_connections > 0 &&
	    slots_held(st, kd, ld) >= p->s.provider_max_connections)
		return SHAPE_NO_SLOT;
	if (!gcra(st, kr, lr, &p->s.connection_rate, now_us, when_us, false))
		return SHAPE_RATE;
	/* Both counters or neither: a slot counted in one only would leak at release. */
	if ((s = sh_ttab_insert(&st->conns, ks, ls, now_us, NULL)) == NULL)
		return SHAPE_NO_SLOT;
	s->v.conns++;
	if ((d = sh_ttab_insert(&st->conns, kd, ld, now_us, NULL)) == NULL) {
		s = sh_ttab_find(&st->conns, ks, ls);
		if (--s->v.conns == 0)
			sh_ttab_remove(&st->conns, s);
		return SHAPE_NO_SLOT;
	}
	d->v.conns++;
	gcra(st, kr, lr, &p->s.connection_rate, now_us, NULL, true);
	st->connections++;
	*when_us = 0;
	return SHAPE_GO;
}

static bool
slot_put(struct shape_state *st, const char *key, size_t len)
{
	struct tslot *s = sh_ttab_find(&st->conns, key, len);

	if (s == NULL || s->v.conns == 0)
		return false;
	if (--s->v.conns == 0)
		sh_ttab_remove(&st->conns, s);
	return true;
}

void
shape_conn_release(struct shape_state *st, const char *source, const char *dest)
{
	char ks[KEY_SIZE], kd[KEY_SIZE];
	size_t ls, ld;

	if (!key_of(ks, sizeof(ks), &ls, "conn", source, dest) ||
	    !key_of(kd, sizeof(kd), &ld, "pconn", NULL, dest))
		return;
	/* The per-destination count moves only with a per-source one, so that a release
	 * without a slot cannot take another source's. */
	if (!slot_put(st, ks, ls))
		return;
	slot_put(st, kd, ld);
	if (st->connections > 0)
		st->connections--;
}

unsigned
shape_conn_count(const struct shape_state *st, const char *source, const char *dest)
{
	char k[KEY_SIZE];
	size_t l;

	if (source == NULL ? !key_of(k, sizeof(k), &l, "pconn", NULL, dest)
	                   : !key_of(k, sizeof(k), &l, "conn", source, dest))
		return 0;
	return slots_held(st, k, l);
}
