/* fields.c - the layered settings: their names, kinds, bounds, built-in defaults, and the
 * layering itself.
 *
 * The built-in defaults are drover.conf's delivery defaults (src/conf/defaults.h), so that
 * shaping without a rules file changes nothing; docs/shaping.md lists them with reasons, and
 * etc/shaping.conf's defaults { } shows the same values.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

#define TIMEOUT_MIN        1
#define TIMEOUT_MAX        86400 /* a day: as drover.conf's timeouts */
#define CONNECTIONS_MAX    1000
#define COUNT_MAX          1000000
#define RETRY_INTERVAL_MAX 86400 /* as delivery.retry: longer is a typo for a lifetime */

#define F(name, kind, min, max, zero, member, bounds)                                              \
	{                                                                                          \
		name, kind, min, max, zero, offsetof(struct shape_settings, member), bounds        \
	}

const struct field_info sh_fields[SHAPE_FIELD_COUNT] = {
    F("max_connections", FK_COUNT, 1, CONNECTIONS_MAX, false, max_connections,
      "must be from 1 to 1000"),
    F("initial_connections", FK_COUNT, 1, CONNECTIONS_MAX, false, initial_connections,
      "must be from 1 to 1000"),
    F("provider_max_connections", FK_COUNT, 1, 100000, true, provider_max_connections,
      "must be 0 (no limit) or from 1 to 100000"),
    F("max_messages_per_connection", FK_COUNT, 1, COUNT_MAX, false, max_messages_per_connection,
      "must be from 1 to 1000000"),
    F("message_rate", FK_RATE, 0, 0, false, message_rate, NULL),
    F("provider_message_rate", FK_RATE, 0, 0, false, provider_message_rate, NULL),
    F("connection_rate", FK_RATE, 0, 0, false, connection_rate, NULL),
    F("max_recipients_per_transaction", FK_COUNT, 1, 100000, false, max_recipients_per_transaction,
      "must be from 1 to 100000"),
    F("connect_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, connect_timeout_s, NULL),
    F("greeting_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, greeting_timeout_s, NULL),
    F("ehlo_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, ehlo_timeout_s, NULL),
    F("mail_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, mail_timeout_s, NULL),
    F("rcpt_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, rcpt_timeout_s, NULL),
    F("data_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, data_timeout_s, NULL),
    F("data_block_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, data_block_timeout_s,
      NULL),
    F("dot_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, dot_timeout_s, NULL),
    F("idle_timeout", FK_DURATION, TIMEOUT_MIN, TIMEOUT_MAX, false, idle_timeout_s, NULL),
    F("retry", FK_RETRY, 1, RETRY_INTERVAL_MAX, false, retry_s, NULL),
    F("tls", FK_TLS, 0, 0, false, tls, NULL),
    F("on_421", FK_ON_421, 0, 0, false, on_421, NULL),
    F("backoff_retry", FK_RETRY, 1, RETRY_INTERVAL_MAX, false, backoff_retry_s, NULL),
    F("backoff_message_rate", FK_RATE, 0, 0, false, backoff_message_rate, NULL),
};

const char *
shape_field_name(enum shape_field f)
{
	return (unsigned)f < SHAPE_FIELD_COUNT ? sh_fields[f].name : "?";
}

int
sh_field_index(const char *name)
{
	for (int i = 0; i < SHAPE_FIELD_COUNT; i++) {
		if (strcmp(sh_fields[i].name, name) == 0)
			return i;
	}
	return -1;
}

const char *
shape_layer_name(enum shape_layer l)
{
	static const char *const names[] = {"builtin", "defaults", "provider", "domain",
	                                    "source",  "adaptive", "override"};

	return (unsigned)l < nitems(names) ? names[l] : "?";
}

void
shape_settings_builtin(struct shape_settings *s)
{
	memset(s, 0, sizeof(*s));
	s->max_connections = 20;         /* drover.conf delivery.max_connections */
	s->initial_connections = 2;      /* delivery.initial_connections */
	s->provider_max_connections = 0; /* no limit over all sources */
	s->max_messages_per_connection = 100;
	s->max_recipients_per_transaction = 100; /* RFC 5321 §4.5.3.1.8: servers take 100 */
	s->connect_timeout_s = 30;
	s->greeting_timeout_s = 300; /* RFC 5321 §4.5.3.2.1 */
	s->ehlo_timeout_s = 300;
	s->mail_timeout_s = 300;       /* §4.5.3.2.2 */
	s->rcpt_timeout_s = 300;       /* §4.5.3.2.3 */
	s->data_timeout_s = 120;       /* §4.5.3.2.4 */
	s->data_block_timeout_s = 180; /* §4.5.3.2.5 */
	s->dot_timeout_s = 600;        /* §4.5.3.2.6 */
	s->idle_timeout_s = 5;
	static const uint64_t retry[] = {300, 600, 1200, 2400, 3600};
	memcpy(s->retry_s, retry, sizeof(retry));
	s->nretry = nitems(retry);
	s->tls = SHAPE_TLS_OPPORTUNISTIC;
	s->on_421 = SHAPE_421_NEXT_MX;
	/* Backoff: a provider that said "slow down" is tried again after longer waits. */
	static const uint64_t backoff[] = {900, 1800, 3600};
	memcpy(s->backoff_retry_s, backoff, sizeof(backoff));
	s->nbackoff_retry = nitems(backoff);
}

static void *
member(struct shape_settings *s, enum shape_field f)
{
	return (char *)s + sh_fields[f].offset;
}

static const void *
cmember(const struct shape_settings *s, enum shape_field f)
{
	return (const char *)s + sh_fields[f].offset;
}

/* The count of a retry list lives next to it. */
static unsigned *
retry_count(struct shape_settings *s, enum shape_field f)
{
	return f == SHAPE_F_RETRY ? &s->nretry : &s->nbackoff_retry;
}

int
sh_field_parse(enum shape_field f, const char *value, struct shape_settings *s, bool append,
               const char **why)
{
	const struct field_info *fi = &sh_fields[f];
	uint64_t v;
	int e;

	switch (fi->kind) {
	case FK_COUNT:
		if (sh_parse_count(value, &v, why) != 0)
			return -1;
		if (v == 0 && fi->zero_unlimited) {
			*(unsigned *)member(s, f) = 0;
			return 0;
		}
		if (v < (uint64_t)fi->min || v > (uint64_t)fi->max) {
			*why = fi->bounds;
			return -1;
		}
		*(unsigned *)member(s, f) = (unsigned)v;
		return 0;
	case FK_DURATION:
		if (sh_parse_duration(value, &v, why) != 0)
			return -1;
		if (v < (uint64_t)fi->min || v > (uint64_t)fi->max) {
			*why = "must be from 1s to 1d";
			return -1;
		}
		*(unsigned *)member(s, f) = (unsigned)v;
		return 0;
	case FK_RATE:
		return shape_rate_parse(value, member(s, f), why);
	case FK_RETRY: {
		unsigned *n = retry_count(s, f);

		if (!append)
			*n = 0;
		if (sh_parse_duration(value, &v, why) != 0)
			return -1;
		if (v < (uint64_t)fi->min || v > (uint64_t)fi->max) {
			*why = "each interval must be from 1s to 1d";
			return -1;
		}
		if (*n >= SHAPE_RETRY_MAX) {
			*why = "more than 16 intervals (the last one repeats)";
			return -1;
		}
		((uint64_t *)member(s, f))[(*n)++] = v;
		return 0;
	}
	case FK_TLS:
		if ((e = sh_tls_value(value)) < 0) {
			*why = "expected disabled, opportunistic, required or required-verify";
			return -1;
		}
		s->tls = (enum shape_tls)e;
		return 0;
	case FK_ON_421:
		if ((e = sh_on_421_value(value)) < 0) {
			*why = "expected next-mx or backoff";
			return -1;
		}
		s->on_421 = (enum shape_on_421)e;
		return 0;
	}
	return -1;
}

void
sh_field_copy(enum shape_field f, struct shape_settings *dst, const struct shape_settings *src)
{
	switch (sh_fields[f].kind) {
	case FK_COUNT:
	case FK_DURATION:
		*(unsigned *)member(dst, f) = *(const unsigned *)cmember(src, f);
		break;
	case FK_RATE:
		*(struct shape_rate *)member(dst, f) = *(const struct shape_rate *)cmember(src, f);
		break;
	case FK_RETRY:
		memcpy(member(dst, f), cmember(src, f), SHAPE_RETRY_MAX * sizeof(uint64_t));
		*retry_count(dst, f) = *retry_count((struct shape_settings *)src, f);
		break;
	case FK_TLS:
		dst->tls = src->tls;
		break;
	case FK_ON_421:
		dst->on_421 = src->on_421;
		break;
	}
}

void
shape_field_format(const struct shape_settings *s, enum shape_field f, char *buf, size_t size)
{
	char d[32];
	size_t o;

	if (size == 0)
		return;
	buf[0] = '\0';
	if ((unsigned)f >= SHAPE_FIELD_COUNT)
		return;
	switch (sh_fields[f].kind) {
	case FK_COUNT:
		snprintf(buf, size, "%u", *(const unsigned *)cmember(s, f));
		break;
	case FK_DURATION:
		units_format_duration(*(const unsigned *)cmember(s, f), buf, size);
		break;
	case FK_RATE:
		shape_rate_format(cmember(s, f), buf, size);
		break;
	case FK_RETRY: {
		const uint64_t *v = cmember(s, f);
		unsigned n = f == SHAPE_F_RETRY ? s->nretry : s->nbackoff_retry;

		o = (size_t)snprintf(buf, size, "{");
		for (unsigned i = 0; i < n && o < size; i++) {
			units_format_duration(v[i], d, sizeof(d));
			o += (size_t)snprintf(buf + o, size - o, "%s\"%s\"", i ? ", " : "", d);
		}
		if (o < size)
			snprintf(buf + o, size - o, "}");
		break;
	}
	case FK_TLS:
		snprintf(buf, size, "%s", sh_tls_name(s->tls));
		break;
	case FK_ON_421:
		snprintf(buf, size, "%s", sh_on_421_name(s->on_421));
		break;
	}
}

void
sh_layer_apply(const struct layer *l, enum shape_layer kind, const char *name,
               struct shape_settings *s, struct shape_origin *origin)
{
	if (l == NULL || l->set == 0)
		return;
	for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
		if (!(l->set & (1u << f)))
			continue;
		sh_field_copy((enum shape_field)f, s, &l->v);
		origin[f] = (struct shape_origin){
		    .layer = kind, .name = name, .file = l->file[f], .line = l->line[f]};
	}
}
