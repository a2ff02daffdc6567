/* rate.c - rate limits per key (a user, a client address): "N/period" parsing and a shared,
 * locked GCRA limiter.
 *
 * GCRA keeps one time per key, the theoretical arrival time (TAT): when the bucket would be
 * full again. A take at now is allowed if, after adding one emission interval T = period /
 * count, TAT - now stays within the tolerance burst * T; the refusal's wait is by how much it
 * would not. Times are kept in nanoseconds so that T stays exact enough for rates like
 * 7/s (142857.14 µs); T is rounded up, so rounding never allows more than the rate. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/internal.h"
#include "core/core.h"

#define NSEC_PER_US 1000ULL
/* Records checked for idleness per call: enough to drain faster than keys arrive. */
#define EXPIRE_PER_CALL 2

struct access_limiter {
	struct keytab kt;
	/* Read and written under the stripe locks (set_rate takes them all). */
	bool unlimited;
	uint64_t interval_ns;  /* T */
	uint64_t tolerance_ns; /* burst * T */
};

static int
rate_error(char *err, size_t errlen, const char *text, const char *why)
{
	snprintf(err, errlen, "rate \"%s\": %s", text, why);
	return -1;
}

int
access_rate_parse(const char *text, struct access_rate *out, char *err, size_t errlen)
{
	static const char expect[] = "expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), or 0 "
	                             "for unlimited";
	const char *p;
	uint64_t count, mult = 1, unit;

	if (text == NULL)
		return rate_error(err, errlen, "", expect);
	if ((p = units_digits(text, &count)) == NULL)
		return rate_error(err, errlen, text,
		                  *text >= '0' && *text <= '9' ? "count too large" : expect);
	if (*p == '\0' && count == 0) {
		*out = (struct access_rate){0};
		return 0;
	}
	if (*p++ != '/')
		return rate_error(err, errlen, text, expect);
	if (count == 0)
		return rate_error(err, errlen, text, "0 events per period: write 0 for unlimited");
	if (count > ACCESS_RATE_COUNT_MAX)
		return rate_error(err, errlen, text, "count too large (at most 1000000000)");
	if (*p >= '0' && *p <= '9') {
		if ((p = units_digits(p, &mult)) == NULL || mult == 0)
			return rate_error(err, errlen, text, expect);
	}
	/* Lower case only, as the configuration's durations: "M" could be a size. */
	switch (*p) {
	case 's':
		unit = 1;
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		return rate_error(err, errlen, text, expect);
	}
	if (p[1] != '\0')
		return rate_error(err, errlen, text, expect);
	if (mult > ACCESS_RATE_PERIOD_MAX / USEC / unit)
		return rate_error(err, errlen, text, "period too long (at most 366d)");
	out->count = count;
	out->period_us = mult * unit * USEC;
	out->burst = count;
	return 0;
}

/* Fills the limiter's parameters; the caller holds every stripe lock or is the creator. */
static void
apply_rate(struct access_limiter *l, const struct access_rate *r)
{
	uint64_t period_ns, burst;

	l->unlimited = r == NULL || r->count == 0 || r->period_us == 0;
	if (l->unlimited)
		return;
	period_ns =
	    (r->period_us > ACCESS_RATE_PERIOD_MAX ? ACCESS_RATE_PERIOD_MAX : r->period_us) *
	    NSEC_PER_US;
	l->interval_ns = (period_ns + r->count - 1) / r->count;
	burst = r->burst == 0 ? 1 : r->burst;
	/* Saturate rather than wrap: a huge burst means "effectively no burst limit". */
	l->tolerance_ns =
	    burst > UINT64_MAX / 4 / l->interval_ns ? UINT64_MAX / 4 : burst * l->interval_ns;
}

struct access_limiter *
access_limiter_new(const struct access_rate *r, size_t max_keys)
{
	struct access_limiter *l = xcalloc(1, sizeof(*l));

	keytab_init(&l->kt, max_keys);
	apply_rate(l, r);
	return l;
}

void
access_limiter_free(struct access_limiter *l)
{
	if (l == NULL)
		return;
	keytab_destroy(&l->kt);
	free(l);
}

void
access_limiter_set_rate(struct access_limiter *l, const struct access_rate *r)
{
	keytab_lock_all(&l->kt);
	apply_rate(l, r);
	keytab_unlock_all(&l->kt);
}

/* A key whose TAT has passed has a full bucket: forgetting it changes nothing. */
static bool
limiter_idle(const struct kt_entry *e, uint64_t now_ns, const void *ctx)
{
	return e->t[0] <= now_ns;
}

bool
access_rate_take(struct access_limiter *l, const char *key, uint64_t now_us, uint64_t *wait_us)
{
	uint64_t id = keytab_id(&l->kt, key), now = now_us * NSEC_PER_US, tat, next;
	struct kt_stripe *s = keytab_lock(&l->kt, id);
	struct kt_entry *e;
	bool ok;

	if (wait_us != NULL)
		*wait_us = 0;
	if (l->unlimited) {
		keytab_unlock(s);
		return true;
	}
	kt_expire(s, now, limiter_idle, NULL, EXPIRE_PER_CALL);
	e = kt_find(s, id);
	tat = e != NULL && e->t[0] > now ? e->t[0] : now;
	next = tat + l->interval_ns;
	ok = next - now <= l->tolerance_ns;
	if (ok) {
		if (e == NULL)
			e = kt_insert(s, id);
		e->t[0] = next;
	} else if (wait_us != NULL) {
		*wait_us = (next - now - l->tolerance_ns + NSEC_PER_US - 1) / NSEC_PER_US;
	}
	keytab_unlock(s);
	return ok;
}

size_t
access_limiter_keys(struct access_limiter *l)
{
	return keytab_count(&l->kt);
}
