/* warmup.c - IP warm-up: a daily cap per (source, destination) from a schedule, counted per
 * UTC day.
 *
 * The day is the UTC day of the time passed in, so the count starts again at midnight UTC
 * whatever the machine's time zone; day 1 is the schedule's start date. A counter carries its
 * day, so yesterday's count never counts today, and it expires at the end of its day.
 */
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "shape/internal.h"

#define DAY_US   (DAY_S * USEC)
#define KEY_SIZE (SHAPE_DEST_MAX + 2 * SHAPE_NAME_MAX + 32)

static const struct warmup *
warmup_of(const struct shape_rules *r, const char *source, const char *dest)
{
	const struct warmup *w;
	int i;

	if (source == NULL || *source == '\0' || dest == NULL)
		return NULL;
	if ((i = sh_strmap_get(&r->warmup_by_source, source, strlen(source))) < 0)
		return NULL;
	w = &r->warmups[i];
	if (w->nproviders == 0)
		return w;
	for (size_t k = 0; k < w->nproviders; k++) {
		if (strcasecmp(r->providers[w->providers[k]].name, dest) == 0)
			return w;
	}
	return NULL;
}

static uint64_t
cap_on(const struct warmup *w, int64_t today)
{
	int64_t day = today - w->start_day + 1;
	uint64_t c;

	if (w->nschedule == 0)
		return w->after;
	if (day < 1)
		day = 1; /* before its start a source is as new as on day 1 */
	if (w->doubling) {
		c = w->schedule[0];
		for (int64_t d = 1; d < day && c < w->after; d++)
			c = c > UINT64_MAX / 2 ? UINT64_MAX : c * 2;
		return c < w->after ? c : w->after;
	}
	return (uint64_t)day <= w->nschedule ? w->schedule[day - 1] : w->after;
}

bool
shape_warmup_cap(const struct shape_rules *r, const char *source, const char *dest, uint64_t now_us,
                 uint64_t *cap)
{
	const struct warmup *w = warmup_of(r, source, dest);

	if (w == NULL)
		return false;
	*cap = cap_on(w, (int64_t)(now_us / DAY_US));
	return true;
}

static bool
warm_key(char *buf, size_t *len, const char *source, const char *dest)
{
	*len = shape_key(buf, KEY_SIZE, "warm", source, dest);
	return *len > 0 && *len < KEY_SIZE;
}

bool
shape_warmup_allow(struct shape_state *st, const char *source, const char *dest, uint64_t now_us,
                   uint64_t *until_us)
{
	const struct warmup *w = warmup_of(st->rules, source, dest);
	int64_t today = (int64_t)(now_us / DAY_US);
	uint64_t cap, count = 0;
	char key[KEY_SIZE];
	struct tslot *s;
	size_t len;

	if (until_us != NULL)
		*until_us = 0;
	if (w == NULL)
		return true;
	cap = cap_on(w, today);
	if (!warm_key(key, &len, source, dest))
		return true;
	if ((s = sh_ttab_find(&st->warm, key, len)) != NULL && s->v.warm.day == today)
		count = s->v.warm.count;
	if (s == NULL) {
		/* No counter and no room for one: the count could not be kept, so the cap
		 * could not hold (shape.h: fail closed). */
		sh_ttab_sweep(&st->warm, now_us, 8);
		if (st->warm.count >= st->warm.max)
			count = cap;
	}
	if (count < cap)
		return true;
	if (until_us != NULL)
		*until_us = (uint64_t)(today + 1) * DAY_US;
	return false;
}

uint64_t
shape_warmup_count(struct shape_state *st, const char *source, const char *dest, uint64_t now_us,
                   uint64_t n)
{
	int64_t today = (int64_t)(now_us / DAY_US);
	char key[KEY_SIZE];
	struct tslot *s;
	size_t len;

	if (warmup_of(st->rules, source, dest) == NULL || !warm_key(key, &len, source, dest))
		return 0;
	if ((s = sh_ttab_insert(&st->warm, key, len, now_us, NULL)) == NULL)
		return 0;
	if (s->v.warm.day != today) {
		s->v.warm.day = today;
		s->v.warm.count = 0;
	}
	s->v.warm.count = n > UINT64_MAX - s->v.warm.count ? UINT64_MAX : s->v.warm.count + n;
	s->expires_us = (uint64_t)(today + 1) * DAY_US;
	return s->v.warm.count;
}
