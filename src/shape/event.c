/* event.c - adaptive actions as event log records ("AdaptiveAction", docs/shaping.md). */
#include <stdio.h>

#include "core/core.h"
#include "shape/internal.h"

const char *
shape_event_kind_name(enum shape_event_kind k)
{
	static const char *const names[] = {"start", "extend", "end"};

	return (unsigned)k < nitems(names) ? names[k] : "?";
}

const char *
shape_end_reason_name(enum shape_end_reason r)
{
	static const char *const names[] = {"", "expired", "success", "cancelled"};

	return (unsigned)r < nitems(names) ? names[r] : "?";
}

static json_t *
time_json(uint64_t us)
{
	char buf[40];

	time_rfc3339(us, buf, sizeof(buf));
	return json_string(buf);
}

/* Strings from replies may hold any octet: jansson refuses invalid UTF-8, so those go as
 * their printable ASCII. */
static json_t *
text_json(const char *s)
{
	json_t *j = json_string(s);
	char buf[256];
	size_t o = 0;

	if (j != NULL)
		return j;
	for (; *s != '\0' && o + 1 < sizeof(buf); s++)
		buf[o++] = (unsigned char)*s >= 0x20 && (unsigned char)*s < 0x7f ? *s : '?';
	buf[o] = '\0';
	return json_string(buf);
}

json_t *
shape_event_json(const struct shape_event *ev)
{
	json_t *o = json_object();
	char buf[64];

	json_object_set_new(o, "event", json_string(shape_event_kind_name(ev->kind)));
	json_object_set_new(o, "action", json_string(shape_action_name(ev->action)));
	json_object_set_new(o, "rule", text_json(ev->rule));
	json_object_set_new(o, "file", text_json(ev->file));
	json_object_set_new(o, "line", json_integer(ev->line));
	json_object_set_new(o, "source", ev->source[0] ? text_json(ev->source) : json_null());
	json_object_set_new(o, "dest", text_json(ev->dest));
	json_object_set_new(o, "provider", ev->provider[0] ? text_json(ev->provider) : json_null());
	json_object_set_new(o, "started", time_json(ev->started_us));
	json_object_set_new(o, "ends", time_json(ev->ends_us));
	if (ev->kind == SHAPE_EV_END) {
		json_object_set_new(o, "reason", json_string(shape_end_reason_name(ev->reason)));
	} else {
		json_object_set_new(o, "code", ev->code ? json_integer(ev->code) : json_null());
		json_object_set_new(o, "status",
		                    ev->status[0] ? text_json(ev->status) : json_null());
		json_object_set_new(o, "text", text_json(ev->text));
		json_object_set_new(o, "matches", json_integer(ev->matches));
	}
	if (ev->action == SHAPE_ACT_LIMIT) {
		if (ev->message_rate.count > 0) {
			shape_rate_format(&ev->message_rate, buf, sizeof(buf));
			json_object_set_new(o, "message_rate", json_string(buf));
		} else {
			json_object_set_new(o, "message_rate", json_null());
		}
		json_object_set_new(o, "max_connections",
		                    ev->max_connections ? json_integer(ev->max_connections)
		                                        : json_null());
	}
	if (ev->action == SHAPE_ACT_BACKOFF) {
		json_t *a = json_array();

		for (unsigned i = 0; i < ev->nretry; i++) {
			units_format_duration(ev->retry_s[i], buf, sizeof(buf));
			json_array_append_new(a, json_string(buf));
		}
		json_object_set_new(o, "retry", a);
	}
	return o;
}
