/* query.c - the life of a query: its unbound lookups, its deadline, the always-asynchronous
 * delivery of its result, and cancellation. The kinds (mx.c, addr.c, ...) only say which
 * lookups to make and how to read their answers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <unbound.h>

#include "core/core.h"
#include "dns/internal.h"

#define DNS_CLASS_IN 1

static void on_timer(evutil_socket_t, short, void *);

struct dns_query *
query_new(struct dns_resolver *r, const char *name, void (*phase_done)(struct dns_query *),
          void (*deliver)(struct dns_query *))
{
	struct dns_query *q = xcalloc(1, sizeof(*q));

	q->r = r;
	/* Only reported back; an over-long name is refused by its lookup (name_is_valid). */
	strlcpy_s(q->name, name != NULL ? name : "", sizeof(q->name));
	q->phase_done = phase_done;
	q->deliver = deliver;
	if ((q->timer = evtimer_new(r->base, on_timer, q)) == NULL)
		fatal("dns: evtimer_new failed");
	snprintf(q->timeout_text, sizeof(q->timeout_text), "timed out after %u ms", r->timeout_ms);
	TAILQ_INSERT_TAIL(&r->queries, q, entry);
	return q;
}

static void
query_free(struct dns_query *q)
{
	for (size_t i = 0; i < q->nlookups; i++) {
		struct dns_lookup *l = q->lookups[i];

		/* Only a pending lookup touches the resolver: a query being delivered has none,
		 * so its callback may free the resolver before we get here. */
		if (l->pending)
			ub_cancel(q->r->ub, l->ub_id);
		if (l->res != NULL)
			ub_resolve_free(l->res);
		free(l->name);
		free(l);
	}
	free(q->lookups);
	free(q->hosts);
	free(q->host_names);
	event_free(q->timer);
	free(q);
}

/* Every lookup has answered: deliver from the timer event, i.e. from the loop's next turn,
 * which keeps the rule "never from inside the call" whatever unbound does, and keeps callers'
 * callbacks out of ub_process(). */
static void
query_complete(struct dns_query *q)
{
	q->complete = true;
	event_del(q->timer);
	event_active(q->timer, EV_TIMEOUT, 0);
}

static void
phase_end(struct dns_query *q)
{
	if (q->phase_done != NULL)
		q->phase_done(q);
	q->phase++;
	if (q->npending == 0)
		query_complete(q);
}

static void
on_answer(void *arg, int err, struct ub_result *res)
{
	struct dns_lookup *l = arg;
	struct dns_query *q = l->q;

	l->pending = false;
	latency_observe(l, time_mono_us());
	l->res = res;
	l->status = status_of_answer(err, res, &l->error);
	l->ttl = res != NULL && res->ttl > 0 ? (uint32_t)res->ttl : 0;
	if (--q->npending == 0)
		phase_end(q);
}

/* The name as unbound reads it (presentation format, RFC 1035 §5.1): octets other than
 * letters, digits, '-', '_' and the dots between labels as \DDD, so that a space, a
 * backslash or a ';' in a label is asked as it is. out holds 4 * (DNS_NAME_MAX + 1) + 1. */
static void
name_to_presentation(const char *name, char *out)
{
	size_t o = 0;

	for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++) {
		if (*p == '.' || *p == '-' || *p == '_' || (*p >= '0' && *p <= '9') ||
		    (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))
			out[o++] = (char)*p;
		else
			o += (size_t)sprintf(out + o, "\\%03u", *p);
	}
	out[o] = '\0';
}

void
query_lookup(struct dns_query *q, const char *name, uint16_t type, size_t slot)
{
	struct dns_lookup *l = xcalloc(1, sizeof(*l));
	char escaped[4 * (DNS_NAME_MAX + 1) + 1];
	int rc;

	if (q->nlookups == q->lookups_cap) {
		q->lookups_cap = q->lookups_cap ? 2 * q->lookups_cap : 2;
		q->lookups = xrealloc(q->lookups, q->lookups_cap * sizeof(*q->lookups));
	}
	q->lookups[q->nlookups++] = l;
	l->q = q;
	l->name = xstrdup(name);
	l->type = type;
	l->slot = slot;
	if (!name_is_valid(name)) {
		l->status = DNS_BADNAME;
		l->error = "not a valid domain name";
		return;
	}
	name_to_presentation(name, escaped);
	l->asked_us = time_mono_us();
	rc = ub_resolve_async(q->r->ub, escaped, type, DNS_CLASS_IN, l, on_answer, &l->ub_id);
	if (rc != 0) {
		l->status = status_of_answer(rc, NULL, &l->error);
		return;
	}
	l->pending = true;
	q->npending++;
}

void
query_start(struct dns_query *q)
{
	struct timeval tv = {q->r->timeout_ms / 1000, (q->r->timeout_ms % 1000) * 1000};

	if (q->npending == 0) {
		phase_end(q);
		if (q->complete)
			return;
	}
	evtimer_add(q->timer, &tv);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct dns_query *q = arg;

	if (!q->complete) {
		/* The deadline: whatever has not answered is a temporary failure, and what has
		 * answered still counts (one MX host's addresses are enough to try). */
		uint64_t now = time_mono_us();

		for (size_t i = 0; i < q->nlookups; i++) {
			struct dns_lookup *l = q->lookups[i];

			if (!l->pending)
				continue;
			latency_observe(l, now);
			ub_cancel(q->r->ub, l->ub_id);
			l->pending = false;
			l->status = DNS_TEMPFAIL;
			l->error = q->timeout_text;
		}
		q->npending = 0;
		q->timed_out = true;
		if (q->phase_done != NULL)
			q->phase_done(q);
	}
	TAILQ_REMOVE(&q->r->queries, q, entry);
	q->delivering = true;
	q->deliver(q);
	query_free(q);
}

void
dns_cancel(struct dns_query *q)
{
	if (q == NULL || q->delivering)
		return;
	TAILQ_REMOVE(&q->r->queries, q, entry);
	query_free(q);
}
