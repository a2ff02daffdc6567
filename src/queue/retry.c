/* retry.c - the retry schedule and the scheduler's random numbers: pure functions of their
 * arguments, so that a test (or an operator reading the docs) can tell when a message will be
 * tried again. */
#include <stdint.h>

#include "core/core.h"
#include "queue/queue.h"

/* splitmix64 (Steele, Lea, Flood 2014): one 64-bit word of state, passes BigCrush, and any
 * seed, 0 included, is a good one. Jitter needs spread, not secrecy. */
void
queue_rng_seed(struct queue_rng *rng, uint64_t seed)
{
	rng->state = seed;
}

uint64_t
queue_rng_next(struct queue_rng *rng)
{
	uint64_t z = (rng->state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

uint64_t
queue_rng_below(struct queue_rng *rng, uint64_t bound)
{
	/* Reject the few values below 2^64 mod bound, so that every residue is equally likely. */
	uint64_t threshold, r;

	if (bound == 0)
		return 0;
	threshold = -bound % bound;
	do
		r = queue_rng_next(rng);
	while (r < threshold);
	return r % bound;
}

void
retry_schedule_default(struct retry_schedule *rs)
{
	static const uint64_t intervals_s[] = {DEF_RETRY_INTERVALS_S};

	*rs = (struct retry_schedule){0};
	for (size_t i = 0; i < nitems(intervals_s); i++)
		rs->interval_us[i] = intervals_s[i] * USEC;
	rs->n = nitems(intervals_s);
	rs->jitter_pct = DEF_RETRY_JITTER_PCT;
	rs->lifetime_us = (uint64_t)DEF_QUEUE_LIFETIME_S * USEC;
}

uint64_t
retry_interval_us(const struct retry_schedule *rs, unsigned attempts)
{
	unsigned n = rs->n;

	if (n == 0)
		return 0;
	if (n > QUEUE_RETRY_MAX)
		n = QUEUE_RETRY_MAX;
	if (attempts == 0)
		attempts = 1;
	return rs->interval_us[attempts < n ? attempts - 1 : n - 1];
}

static uint64_t
add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

uint64_t
retry_next(const struct retry_schedule *rs, unsigned attempts, uint64_t now_us,
           struct queue_rng *rng)
{
	uint64_t interval = retry_interval_us(rs, attempts);
	unsigned pct =
	    rs->jitter_pct > LIM_RETRY_JITTER_PCT_MAX ? LIM_RETRY_JITTER_PCT_MAX : rs->jitter_pct;
	/* interval / 100 * pct cannot overflow (pct <= 50); the remainder's share is added
	 * separately so that small intervals still get their exact spread. */
	uint64_t span = interval / 100 * pct + interval % 100 * pct / 100;
	uint64_t wait;

	if (span == 0)
		return add_sat(now_us, interval);
	/* Uniform in [interval - span, interval + span]. span <= interval / 2, so neither the
	 * subtraction nor 2 * span + 1 can wrap. */
	wait = add_sat(interval - span, queue_rng_below(rng, 2 * span + 1));
	return add_sat(now_us, wait);
}

uint64_t
retry_expires_us(const struct retry_schedule *rs, uint64_t received_us)
{
	if (rs->lifetime_us == 0)
		return UINT64_MAX;
	return add_sat(received_us, rs->lifetime_us);
}
