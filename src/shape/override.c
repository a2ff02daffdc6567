/* override.c - an operator's temporary settings on top of the shaping rules (shape.h,
 * "Operator overrides"; docs/shaping.md, "Overrides").
 *
 * A short array, oldest first: an operator sets a few at a time, and each lookup is a scan of
 * them (no hash to keep right across removals for a list of a handful).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "shape/internal.h"

int
shape_override_set(struct shape_override *o, const char *name, const char *value, const char **why)
{
	int f = sh_field_index(name);
	struct shape_settings v = o->v;

	if (f < 0) {
		*why = "no such shaping setting";
		return -1;
	}
	if (sh_fields[f].kind == FK_RETRY) {
		/* A list, written "5m,10m" (or "5m, 10m") on a command line. */
		char buf[512], *save = NULL, *item;
		bool append = false;

		if (strlcpy_s(buf, value, sizeof(buf)) >= sizeof(buf)) {
			*why = "too long";
			return -1;
		}
		for (item = strtok_r(buf, ", ", &save); item != NULL;
		     item = strtok_r(NULL, ", ", &save), append = true)
			if (sh_field_parse((enum shape_field)f, item, &v, append, why) < 0)
				return -1;
		if (!append) {
			*why = "an empty list";
			return -1;
		}
	} else if (sh_field_parse((enum shape_field)f, value, &v, false, why) < 0)
		return -1;
	sh_field_copy((enum shape_field)f, &o->v, &v);
	o->set |= 1u << f;
	return 0;
}

static bool
in_force(const struct shape_override *o, uint64_t now_us)
{
	return o->ends_us == 0 || o->ends_us > now_us;
}

int
shape_override_add(struct shape_state *st, struct shape_override *o, uint64_t now_us)
{
	if (st->noverrides >= SHAPE_OVERRIDES_MAX)
		return -1;
	o->id = ++st->override_next_id;
	o->created_us = now_us;
	st->overrides = xrealloc(st->overrides, (st->noverrides + 1) * sizeof(*st->overrides));
	st->overrides[st->noverrides++] = *o;
	return 0;
}

bool
shape_override_remove(struct shape_state *st, unsigned id, struct shape_override *out)
{
	for (size_t i = 0; i < st->noverrides; i++) {
		if (st->overrides[i].id != id)
			continue;
		if (out != NULL)
			*out = st->overrides[i];
		memmove(&st->overrides[i], &st->overrides[i + 1],
		        (st->noverrides - i - 1) * sizeof(*st->overrides));
		st->noverrides--;
		return true;
	}
	return false;
}

size_t
shape_overrides(const struct shape_state *st, uint64_t now_us, struct shape_override *out,
                size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < st->noverrides; i++) {
		if (!in_force(&st->overrides[i], now_us))
			continue;
		if (n < max)
			out[n] = st->overrides[i];
		n++;
	}
	return n;
}

size_t
shape_override_expire(struct shape_state *st, uint64_t now_us, struct shape_override *out,
                      size_t max)
{
	size_t n = 0, i = 0;

	while (i < st->noverrides && n < max) {
		if (in_force(&st->overrides[i], now_us)) {
			i++;
			continue;
		}
		out[n++] = st->overrides[i];
		memmove(&st->overrides[i], &st->overrides[i + 1],
		        (st->noverrides - i - 1) * sizeof(*st->overrides));
		st->noverrides--;
	}
	return n;
}

uint64_t
shape_override_next_expiry(const struct shape_state *st)
{
	uint64_t next = 0;

	for (size_t i = 0; i < st->noverrides; i++) {
		uint64_t e = st->overrides[i].ends_us;

		if (e != 0 && (next == 0 || e < next))
			next = e;
	}
	return next;
}

bool
shape_override_matches(const struct shape_override *o, const char *source, const char *provider,
                       const char *domain)
{
	if (o->source[0] != '\0' && (source == NULL || strcmp(o->source, source) != 0))
		return false;
	if (o->provider[0] != '\0')
		return provider != NULL && strcasecmp(o->provider, provider) == 0;
	return domain != NULL && strcasecmp(o->domain, domain) == 0;
}

/* Provider-wide first, a domain's last; within each, every source's before one source's. */
static int
specificity(const struct shape_override *o)
{
	return (o->domain[0] != '\0' ? 2 : 0) + (o->source[0] != '\0' ? 1 : 0);
}

void
shape_apply_overrides(const struct shape_state *st, const char *source, const char *domain,
                      struct shape_params *p, uint64_t now_us)
{
	for (int level = 0; level < 4; level++) {
		for (size_t i = 0; i < st->noverrides; i++) {
			const struct shape_override *o = &st->overrides[i];

			if (specificity(o) != level || !in_force(o, now_us) ||
			    !shape_override_matches(o, source, p->provider, domain))
				continue;
			for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
				if (!(o->set & (1u << f)))
					continue;
				sh_field_copy((enum shape_field)f, &p->s, &o->v);
				p->origin[f] = (struct shape_origin){.layer = SHAPE_LAYER_OVERRIDE,
				                                     .name = "override"};
			}
		}
	}
}

json_t *
shape_override_json(const struct shape_override *o)
{
	json_t *j = json_object(), *set = json_object();
	char buf[512];

	json_object_set_new(j, "id", json_integer(o->id));
	if (o->provider[0] != '\0')
		json_object_set_new(j, "provider", json_string(o->provider));
	else
		json_object_set_new(j, "domain", json_string(o->domain));
	json_object_set_new(j, "source", o->source[0] ? json_string(o->source) : json_null());
	for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
		if (!(o->set & (1u << f)))
			continue;
		shape_field_format(&o->v, (enum shape_field)f, buf, sizeof(buf));
		json_object_set_new(set, shape_field_name((enum shape_field)f), json_string(buf));
	}
	json_object_set_new(j, "set", set);
	time_rfc3339(o->created_us, buf, sizeof(buf));
	json_object_set_new(j, "created", json_string(buf));
	if (o->ends_us != 0) {
		time_rfc3339(o->ends_us, buf, sizeof(buf));
		json_object_set_new(j, "ends", json_string(buf));
	} else
		json_object_set_new(j, "ends", json_null());
	return j;
}
