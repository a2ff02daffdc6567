/* engine_admin_words.c - the admin API's selectors, filters and durations: parsed from request
 * bodies and matched against lanes and envelopes, with no state and no clock of their own. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "queue/engine_admin.h"
#include "spool/spool.h"

static const char *const selector_names[ADMIN_SEL_COUNT] = {
    [ADMIN_SEL_DESTINATION] = "destination", [ADMIN_SEL_PROVIDER] = "provider",
    [ADMIN_SEL_SOURCE] = "source",           [ADMIN_SEL_POOL] = "pool",
    [ADMIN_SEL_STREAM] = "stream",           [ADMIN_SEL_TENANT] = "tenant",
    [ADMIN_SEL_CAMPAIGN] = "campaign",
};

const char *
admin_selector_name(enum admin_selector s)
{
	return s < ADMIN_SEL_COUNT ? selector_names[s] : "?";
}

bool
admin_selector_is_lane(enum admin_selector s)
{
	return s == ADMIN_SEL_DESTINATION || s == ADMIN_SEL_PROVIDER || s == ADMIN_SEL_POOL ||
	       s == ADMIN_SEL_STREAM;
}

static int
selector_of(const char *key)
{
	for (int s = 0; s < ADMIN_SEL_COUNT; s++)
		if (strcmp(key, selector_names[s]) == 0)
			return s;
	return -1;
}

/* Domains are matched as the queue keeps them: lower case. */
static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)tolower((unsigned char)*s);
}

/* A non-empty string of at most max octets, without control characters, into out (may be
 * NULL: checked only). */
static int
text_field(const char *key, const json_t *v, size_t max, char *out, size_t outlen, char *err,
           size_t errlen)
{
	const char *s = json_string_value(v);
	size_t n;

	if (s == NULL) {
		snprintf(err, errlen, "\"%s\" must be a string", key);
		return -1;
	}
	n = strlen(s);
	if (n == 0 || n > max) {
		snprintf(err, errlen, "\"%s\" must be 1 to %zu characters", key, max);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
			snprintf(err, errlen, "\"%s\" must not contain control characters", key);
			return -1;
		}
	}
	if (out != NULL)
		strlcpy_s(out, s, outlen);
	return 0;
}

int
admin_parse_duration(const json_t *v, uint64_t *seconds, char *err, size_t errlen)
{
	uint64_t s = 0;

	if (json_is_integer(v)) {
		if (json_integer_value(v) <= 0) {
			snprintf(err, errlen, "duration %lld: must be more than 0 seconds",
			         (long long)json_integer_value(v));
			return -1;
		}
		s = (uint64_t)json_integer_value(v);
	} else if (!json_is_string(v) || units_duration(json_string_value(v), &s) != 0) {
		snprintf(err, errlen,
		         "duration %s%s%s: expected a number of seconds with an optional s, m, h "
		         "or d (\"90\", \"30s\", \"2h\", \"1d\")",
		         json_is_string(v) ? "\"" : "",
		         json_is_string(v) ? json_string_value(v) : "",
		         json_is_string(v) ? "\"" : "(not a string)");
		return -1;
	} else if (s == 0) {
		snprintf(err, errlen, "duration \"%s\": must be more than 0", json_string_value(v));
		return -1;
	}
	/* Ten years: beyond it a microsecond clock is no longer a comfortable margin away. */
	if (s > 10ULL * 366 * 86400) {
		snprintf(err, errlen, "duration: at most ten years (leave it out: until resumed)");
		return -1;
	}
	*seconds = s;
	return 0;
}

int
admin_parse_suspend(const json_t *body, bool resume, struct admin_suspend *out, char *err,
                    size_t errlen)
{
	const char *key;
	json_t *v;
	int nsel = 0;

	memset(out, 0, sizeof(*out));
	if (!json_is_object(body)) {
		snprintf(err, errlen, "the body must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)body, key, v)
	{
		int s = selector_of(key);

		if (s >= 0) {
			if (++nsel > 1) {
				snprintf(
				    err, errlen,
				    "exactly one selector (destination, provider, source, pool, "
				    "stream, tenant or campaign), not several");
				return -1;
			}
			if (text_field(key, v, ADMIN_VALUE_MAX, out->value, sizeof(out->value), err,
			               errlen) < 0)
				return -1;
			out->sel = (enum admin_selector)s;
			if (s == ADMIN_SEL_DESTINATION)
				lower(out->value);
		} else if (!resume && strcmp(key, "duration") == 0) {
			if (!json_is_null(v) &&
			    admin_parse_duration(v, &out->duration_s, err, errlen) < 0)
				return -1;
		} else if (strcmp(key, "reason") == 0) {
			if (!json_is_null(v) && text_field(key, v, ADMIN_REASON_MAX, out->reason,
			                                   sizeof(out->reason), err, errlen) < 0)
				return -1;
		} else if (resume && strcmp(key, "id") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) <= 0) {
				snprintf(err, errlen, "\"id\" must be a suspension's number (> 0)");
				return -1;
			}
			out->has_id = true;
			out->id = (unsigned long)json_integer_value(v);
		} else {
			snprintf(err, errlen, "unknown field \"%s\"%s", key,
			         resume
			             ? " (a selector: destination, provider, source, pool, stream, "
			               "tenant, campaign; or id)"
			             : " (a selector: destination, provider, source, pool, stream, "
			               "tenant, campaign; duration; reason)");
			return -1;
		}
	}
	if (nsel == 0 && !out->has_id) {
		snprintf(err, errlen,
		         "a selector is required: one of destination, provider, source, pool, "
		         "stream, tenant or campaign%s",
		         resume ? " (or id)" : "");
		return -1;
	}
	if (nsel > 0 && out->has_id) {
		snprintf(err, errlen, "either a selector or an id, not both");
		return -1;
	}
	return 0;
}

static bool
same(const char *a, const char *b)
{
	return a != NULL && b != NULL && strcasecmp(a, b) == 0;
}

bool
admin_lane_matches(enum admin_selector sel, const char *value, const struct admin_lane *l)
{
	switch (sel) {
	case ADMIN_SEL_DESTINATION:
		return same(value, l->domain);
	case ADMIN_SEL_PROVIDER:
		/* The site is the provider's name when shaping rolls domains up to it. */
		return same(value, l->provider) || same(value, l->site);
	case ADMIN_SEL_POOL:
		return l->pool != NULL && strcmp(value, l->pool) == 0;
	case ADMIN_SEL_STREAM:
		return l->stream != NULL && strcmp(value, l->stream) == 0;
	default:
		return false;
	}
}

bool
admin_message_matches(enum admin_selector sel, const char *value, const char *tenant,
                      const char *campaign)
{
	if (sel == ADMIN_SEL_TENANT)
		return tenant != NULL && strcmp(value, tenant) == 0;
	if (sel == ADMIN_SEL_CAMPAIGN)
		return campaign != NULL && strcmp(value, campaign) == 0;
	return false;
}

/* ---- Filters ---- */

static const char *const filter_keys[] = {"id",       "domain", "sender", "tenant",
                                          "campaign", "stream", "pool"};

static char **
filter_slot(struct admin_filter *f, size_t k)
{
	char **slots[] = {&f->id,       &f->domain, &f->sender, &f->tenant,
	                  &f->campaign, &f->stream, &f->pool};

	return slots[k];
}

static bool
is_queue_id(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (!isxdigit((unsigned char)s[n]))
			return false;
	return n == SPOOL_ID_LEN;
}

int
admin_parse_filter(const json_t *body, bool allow_empty, bool allow_reason, struct admin_filter *f,
                   char *err, size_t errlen)
{
	const char *key;
	json_t *v;
	char text[ADMIN_VALUE_MAX + 1];
	bool any = false;

	memset(f, 0, sizeof(*f));
	if (!json_is_object(body)) {
		snprintf(err, errlen, "the body must be a JSON object");
		return -1;
	}
	json_object_foreach((json_t *)body, key, v)
	{
		size_t k;

		for (k = 0; k < nitems(filter_keys) && strcmp(key, filter_keys[k]) != 0; k++)
			;
		if (k < nitems(filter_keys)) {
			if (text_field(key, v, ADMIN_VALUE_MAX, text, sizeof(text), err, errlen) <
			    0)
				goto fail;
			if (k == 0 && !is_queue_id(text)) {
				snprintf(err, errlen, "\"id\" must be a queue id (24 hex digits)");
				goto fail;
			}
			if (k == 0 || k == 1 || k == 2)
				lower(text); /* ids, domains, and senders compare without case */
			if (k == 2 && strchr(text, '@') == NULL) {
				snprintf(err, errlen,
				         "\"sender\" must be an address or @domain (\"%s\")", text);
				goto fail;
			}
			*filter_slot(f, k) = xstrdup(text);
			any = true;
		} else if (strcmp(key, "older_than") == 0) {
			if (admin_parse_duration(v, &f->older_than_s, err, errlen) < 0)
				goto fail;
			any = true;
		} else if (allow_reason && strcmp(key, "reason") == 0) {
			if (text_field(key, v, ADMIN_REASON_MAX, text, sizeof(text), err, errlen) <
			    0)
				goto fail;
			f->reason = xstrdup(text);
		} else {
			snprintf(err, errlen,
			         "unknown field \"%s\" (a filter has id, domain, sender, tenant, "
			         "campaign, stream, pool, older_than%s)",
			         key, allow_reason ? "; and reason" : "");
			goto fail;
		}
	}
	if (!any && !allow_empty) {
		snprintf(err, errlen,
		         "an empty filter would match the whole queue: give at least one of id, "
		         "domain, sender, tenant, campaign, stream, pool, older_than");
		goto fail;
	}
	return 0;
fail:
	admin_filter_clear(f);
	return -1;
}

void
admin_filter_clear(struct admin_filter *f)
{
	for (size_t k = 0; k < nitems(filter_keys); k++)
		free(*filter_slot(f, k));
	free(f->reason);
	memset(f, 0, sizeof(*f));
}

json_t *
admin_filter_json(const struct admin_filter *f)
{
	json_t *o = json_object();

	for (size_t k = 0; k < nitems(filter_keys); k++) {
		const char *v = *filter_slot((struct admin_filter *)f, k);

		if (v != NULL)
			json_object_set_new(o, filter_keys[k], json_string(v));
	}
	if (f->older_than_s > 0) {
		char d[32];

		units_format_duration(f->older_than_s, d, sizeof(d));
		json_object_set_new(o, "older_than", json_string(d));
	}
	return o;
}

static bool
sender_matches(const char *want, const char *sender)
{
	const char *at;

	if (sender == NULL)
		return false;
	if (want[0] == '@') {
		at = strrchr(sender, '@');
		return at != NULL && strcasecmp(at, want) == 0;
	}
	return strcasecmp(want, sender) == 0;
}

bool
admin_filter_message(const struct admin_filter *f, const struct envelope *env, uint64_t now_us)
{
	if (f->id != NULL && strcasecmp(f->id, env->id) != 0)
		return false;
	if (f->sender != NULL && !sender_matches(f->sender, env->sender))
		return false;
	if (f->tenant != NULL && (env->tenant == NULL || strcmp(f->tenant, env->tenant) != 0))
		return false;
	if (f->campaign != NULL &&
	    (env->campaign == NULL || strcmp(f->campaign, env->campaign) != 0))
		return false;
	if (f->older_than_s > 0 &&
	    (now_us < env->received_us || now_us - env->received_us < f->older_than_s * USEC))
		return false;
	return true;
}

bool
admin_filter_domain(const struct admin_filter *f, const char *domain)
{
	return f->domain == NULL || strcasecmp(f->domain, domain) == 0;
}

bool
admin_filter_lane(const struct admin_filter *f, const char *stream, const char *pool)
{
	if (f->stream != NULL && (stream == NULL || strcmp(f->stream, stream) != 0))
		return false;
	if (f->pool != NULL && (pool == NULL || strcmp(f->pool, pool) != 0))
		return false;
	return true;
}
