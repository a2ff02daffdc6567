/* authfail.c - failed authentications per client address: a growing delay before each
 * failure reply, and a block after too many failures in a window.
 *
 * The delay doubles with each consecutive failure (1 s, 2 s, 4 s ... capped): a person who
 * mistyped waits a second, a guesser on one connection is slowed to a crawl. The delay alone
 * does not stop a guesser with many parallel connections, hence the count per window and
 * the block. A record holds the window's start, the block's end and two counters. */
#include <stdlib.h>

#include "access/internal.h"
#include "core/core.h"

#define EXPIRE_PER_CALL 2

/* n[] and t[] of a record. */
#define FAILURES    0 /* n: failures counted in the current window */
#define CONSECUTIVE 1 /* n: failures since the last success (the delay's exponent) */
#define SINCE       0 /* t: start of the window (µs) */
#define UNTIL       1 /* t: end of the block (µs), 0 if none */

struct access_authfail {
	struct keytab kt;
	struct access_authfail_params p; /* immutable */
};

struct access_authfail *
access_authfail_new(const struct access_authfail_params *p)
{
	struct access_authfail *t = xcalloc(1, sizeof(*t));

	t->p = *p;
	if (t->p.delay_max_us < t->p.delay_first_us)
		t->p.delay_max_us = t->p.delay_first_us;
	/* The counters are 16 bits: a threshold above that could never be reached. */
	if (t->p.block_after > UINT16_MAX)
		t->p.block_after = UINT16_MAX;
	keytab_init(&t->kt, p->max_keys);
	return t;
}

void
access_authfail_free(struct access_authfail *t)
{
	if (t == NULL)
		return;
	keytab_destroy(&t->kt);
	free(t);
}

/* Neither blocked nor inside a window: the record says nothing a fresh one would not. */
static bool
authfail_idle(const struct kt_entry *e, uint64_t now, const void *ctx)
{
	const struct access_authfail_params *p = ctx;

	return e->t[UNTIL] <= now && now - e->t[SINCE] >= p->window_us;
}

static uint64_t
delay_for(const struct access_authfail_params *p, unsigned consecutive)
{
	uint64_t d = p->delay_first_us;

	for (unsigned i = 1; i < consecutive && d < p->delay_max_us; i++)
		d = d > p->delay_max_us / 2 ? p->delay_max_us : d * 2;
	return d < p->delay_max_us ? d : p->delay_max_us;
}

static uint16_t
inc16(uint16_t v)
{
	return v == UINT16_MAX ? v : (uint16_t)(v + 1);
}

struct access_authfail_verdict
access_authfail_record(struct access_authfail *t, const char *key, uint64_t now)
{
	const struct access_authfail_params *p = &t->p;
	uint64_t id = keytab_id(&t->kt, key);
	struct kt_stripe *s = keytab_lock(&t->kt, id);
	struct access_authfail_verdict v = {0};
	struct kt_entry *e;

	kt_expire(s, now, authfail_idle, p, EXPIRE_PER_CALL);
	if ((e = kt_find(s, id)) == NULL) {
		e = kt_insert(s, id);
		e->t[SINCE] = now;
	}
	if (e->t[UNTIL] > now) {
		v.blocked = true;
		v.blocked_us = e->t[UNTIL] - now;
		v.delay_us = p->delay_max_us;
		v.failures = e->n[FAILURES];
		keytab_unlock(s);
		return v;
	}
	/* A block that has ended starts a clean slate: it was the punishment for that count. */
	if (e->t[UNTIL] != 0) {
		e->t[UNTIL] = 0;
		e->n[FAILURES] = e->n[CONSECUTIVE] = 0;
		e->t[SINCE] = now;
	}
	/* A new window forgets the old one's delay too: the same as forgetting an idle record,
	 * whether or not the table got round to it. */
	if (now - e->t[SINCE] >= p->window_us) {
		e->n[FAILURES] = e->n[CONSECUTIVE] = 0;
		e->t[SINCE] = now;
	}
	e->n[FAILURES] = inc16(e->n[FAILURES]);
	e->n[CONSECUTIVE] = inc16(e->n[CONSECUTIVE]);
	v.failures = e->n[FAILURES];
	v.delay_us = delay_for(p, e->n[CONSECUTIVE]);
	if (p->block_after != 0 && e->n[FAILURES] >= p->block_after) {
		e->t[UNTIL] = p->block_us > UINT64_MAX - now ? UINT64_MAX : now + p->block_us;
		v.blocked = e->t[UNTIL] > now;
		v.blocked_us = e->t[UNTIL] - now;
	}
	keytab_unlock(s);
	return v;
}

bool
access_authfail_blocked(struct access_authfail *t, const char *key, uint64_t now,
                        uint64_t *remaining_us)
{
	uint64_t id = keytab_id(&t->kt, key);
	struct kt_stripe *s = keytab_lock(&t->kt, id);
	struct kt_entry *e = kt_find(s, id);
	bool blocked = e != NULL && e->t[UNTIL] > now;

	if (remaining_us != NULL)
		*remaining_us = blocked ? e->t[UNTIL] - now : 0;
	keytab_unlock(s);
	return blocked;
}

void
access_authfail_success(struct access_authfail *t, const char *key, uint64_t now)
{
	uint64_t id = keytab_id(&t->kt, key);
	struct kt_stripe *s = keytab_lock(&t->kt, id);
	struct kt_entry *e = kt_find(s, id);

	if (e != NULL) {
		e->n[CONSECUTIVE] = 0;
		if (authfail_idle(e, now, &t->p))
			kt_remove(s, e);
	}
	keytab_unlock(s);
}

size_t
access_authfail_keys(struct access_authfail *t)
{
	return keytab_count(&t->kt);
}
