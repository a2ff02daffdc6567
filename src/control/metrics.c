/* metrics.c - the counters of the ingress, the spool and the delivery engine, as Prometheus
 * text and as JSON. Counter names end in _total (Prometheus' convention for counters). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"
#include "core/core.h"
#include "ingress/ingress.h"
#include "queue/queue.h"
#include "spool/spool.h"

struct metric {
	const char *name;
	const char *type; /* "counter", "gauge" */
	const char *help;
	double value;
};

/* The metrics of this moment, in the order they are shown. */
static size_t
collect(const struct control_sources *src, double uptime_s, struct metric *m, size_t max)
{
	size_t n = 0;

#define ADD(nm, ty, hp, v)                                                                         \
	do {                                                                                       \
		if (n < max)                                                                       \
			m[n++] = (struct metric){nm, ty, hp, (double)(v)};                         \
	} while (0)
	ADD("drover_uptime_seconds", "gauge", "Seconds since the server started.", uptime_s);
	if (src->ingress != NULL) {
		struct ingress_stats st;

		ingress_stats(src->ingress, &st);
		ADD("drover_smtp_sessions_open", "gauge", "SMTP sessions open now.",
		    st.sessions_open);
		ADD("drover_smtp_sessions_total", "counter", "SMTP sessions accepted.",
		    st.sessions_total);
		ADD("drover_messages_received_total", "counter",
		    "Messages accepted (committed to the spool, 250 sent).", st.messages_accepted);
		ADD("drover_messages_refused_total", "counter",
		    "Messages refused at the end of their data.", st.messages_rejected);
	}
	if (src->spool != NULL) {
		struct spool_stats st;

		spool_stats(src->spool, &st);
		ADD("drover_spool_messages", "gauge", "Messages in the spool.",
		    spool_message_count(src->spool));
		ADD("drover_spool_commits_total", "counter",
		    "Spool write transactions committed (each one fsync).", st.commits);
		ADD("drover_spool_messages_committed_total", "counter",
		    "Messages committed to the spool.", st.messages);
		ADD("drover_spool_bytes_total", "counter", "Body octets stored.", st.bytes);
		ADD("drover_spool_largest_batch", "gauge",
		    "Most requests applied in one spool transaction.", st.largest_batch);
		ADD("drover_spool_full_total", "counter",
		    "Requests refused because the spool was full.", st.full);
		ADD("drover_spool_io_errors_total", "counter", "Spool requests that failed.",
		    st.io_errors);
	}
	if (src->engine != NULL) {
		struct queue_engine_stats st;

		queue_engine_stats(src->engine, &st);
		ADD("drover_queue_items", "gauge",
		    "Queue items (a message's recipients at one destination) now.", st.items);
		ADD("drover_delivered_total", "counter", "Recipients accepted by a server.",
		    st.delivered);
		ADD("drover_deferred_total", "counter", "Recipient attempts to be retried.",
		    st.deferred);
		ADD("drover_bounced_total", "counter", "Recipients refused for good.", st.bounced);
		ADD("drover_expired_total", "counter",
		    "Recipients given up at the end of their lifetime.", st.expired);
		ADD("drover_dsns_total", "counter", "Delivery status notifications queued.",
		    st.dsns);
		ADD("drover_connections_out_total", "counter", "Outgoing SMTP connections started.",
		    st.connections);
		ADD("drover_connections_out_ok_total", "counter",
		    "Outgoing SMTP connections that reached a server.", st.connections_ok);
		ADD("drover_connections_out_open", "gauge", "Outgoing SMTP connections open now.",
		    st.open);
		ADD("drover_messages_reused_total", "counter",
		    "Messages sent on an already used connection.", st.messages_reused);
	}
#undef ADD
	return n;
}

char *
control_metrics_text(const struct control_sources *src, double uptime_s)
{
	struct metric m[64];
	size_t n = collect(src, uptime_s, m, nitems(m));
	char *out = xstrdup("");

	for (size_t i = 0; i < n; i++) {
		char *next = xasprintf("%s# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", out, m[i].name,
		                       m[i].help, m[i].name, m[i].type, m[i].name, m[i].value);
		free(out);
		out = next;
	}
	return out;
}

json_t *
control_status_json(const struct control_sources *src, double uptime_s)
{
	struct metric m[64];
	size_t n = collect(src, uptime_s, m, nitems(m));
	json_t *o = json_object();

	json_object_set_new(o, "version", json_string(DROVER_VERSION));
	for (size_t i = 0; i < n; i++) {
		double v = m[i].value;
		json_t *j = v == (double)(json_int_t)v ? json_integer((json_int_t)v) : json_real(v);

		json_object_set_new(o, m[i].name + strlen("drover_"), j);
	}
	return o;
}
