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
#include "webhook/webhook.h"

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

/* Per webhook, labelled with its name (a section title: no character to escape). */
static const struct {
	const char *name, *type, *help, *json;
} webhook_metrics[] = {
    {"drover_webhook_records_sent_total", "counter",
     "Event records a webhook's receiver acknowledged.", "records_sent_total"},
    {"drover_webhook_batches_sent_total", "counter", "Webhook requests answered 2xx.",
     "batches_sent_total"},
    {"drover_webhook_batches_failed_total", "counter",
     "Webhook requests that failed (each retried with backoff).", "batches_failed_total"},
    {"drover_webhook_records_dropped_total", "counter",
     "Event records a webhook dropped (backlog_max reached, or not writable).",
     "records_dropped_total"},
    {"drover_webhook_records_damaged_total", "counter",
     "Damaged lines of a webhook's backlog, skipped.", "records_damaged_total"},
    {"drover_webhook_backlog_bytes", "gauge", "Octets of a webhook's backlog on disk.",
     "backlog_bytes"},
    {"drover_webhook_backlog_records", "gauge",
     "Event records in a webhook's backlog not yet acknowledged.", "backlog_records"},
    {"drover_webhook_failing", "gauge", "1 while a webhook's requests fail.", "failing"},
};

static double
webhook_value(const struct webhook_stats *st, size_t i)
{
	const uint64_t v[] = {st->records_sent,    st->batches_sent,    st->batches_failed,
	                      st->records_dropped, st->records_damaged, st->backlog_bytes,
	                      st->backlog_records, st->failing};

	return (double)v[i];
}

static char *
webhook_text(const struct control_sources *src, char *out)
{
	size_t n = webhooks_count(src->webhooks);

	for (size_t m = 0; n > 0 && m < nitems(webhook_metrics); m++) {
		char *next = xasprintf("%s# HELP %s %s\n# TYPE %s %s\n", out,
		                       webhook_metrics[m].name, webhook_metrics[m].help,
		                       webhook_metrics[m].name, webhook_metrics[m].type);
		free(out);
		out = next;
		for (size_t i = 0; i < n; i++) {
			struct webhook_stats st;

			webhooks_stats(src->webhooks, i, &st);
			next = xasprintf("%s%s{webhook=\"%s\"} %.17g\n", out,
			                 webhook_metrics[m].name, st.name, webhook_value(&st, m));
			free(out);
			out = next;
		}
	}
	return out;
}

/* "webhooks": {"crm": {"records_sent_total": 12, ...}, ...} */
static json_t *
webhook_json(const struct control_sources *src)
{
	json_t *all = json_object();

	for (size_t i = 0; i < webhooks_count(src->webhooks); i++) {
		struct webhook_stats st;
		json_t *o = json_object();

		webhooks_stats(src->webhooks, i, &st);
		for (size_t m = 0; m < nitems(webhook_metrics); m++)
			json_object_set_new(o, webhook_metrics[m].json,
			                    json_integer((json_int_t)webhook_value(&st, m)));
		json_object_set_new(all, st.name, o);
	}
	return all;
}

/* Bounces by category (docs/bounces.md): "delivery" from the engine (bounced and expired
 * recipients), "async" from the bounce listener (failed recipients of the bounces it read),
 * every category shown so that each series exists from the start. Then the bounce
 * listener's other counters. */
static void
bounce_counts(const struct control_sources *src, uint64_t delivery[CLASSIFY_CATEGORY_COUNT],
              struct ingress_report_stats *async)
{
	memset(delivery, 0, CLASSIFY_CATEGORY_COUNT * sizeof(*delivery));
	memset(async, 0, sizeof(*async));
	if (src->engine != NULL)
		queue_engine_bounce_counts(src->engine, delivery);
	if (src->ingress != NULL)
		ingress_report_stats(src->ingress, async);
}

static char *
bounce_text(const struct control_sources *src, char *out)
{
	uint64_t delivery[CLASSIFY_CATEGORY_COUNT];
	struct ingress_report_stats async;
	char *next;

	if (src->engine == NULL && src->ingress == NULL)
		return out;
	bounce_counts(src, delivery, &async);
	next = xasprintf("%s# HELP drover_bounces_total Recipients bounced, by category: at "
	                 "delivery (kind=\"delivery\") or reported later by a bounce "
	                 "(kind=\"async\").\n# TYPE drover_bounces_total counter\n",
	                 out);
	free(out);
	out = next;
	for (unsigned c = 0; c < CLASSIFY_CATEGORY_COUNT; c++)
		for (int k = 0; k < 2; k++) {
			if ((k == 0 && src->engine == NULL) || (k == 1 && src->ingress == NULL))
				continue;
			next = xasprintf(
			    "%sdrover_bounces_total{category=\"%s\",kind=\"%s\"} %llu\n", out,
			    classify_category_name(c), k == 0 ? "delivery" : "async",
			    (unsigned long long)(k == 0 ? delivery[c] : async.bounces[c]));
			free(out);
			out = next;
		}
	if (src->ingress == NULL)
		return out;
	next =
	    xasprintf("%s# HELP drover_feedback_reports_total Feedback-loop complaints (ARF) "
	              "read by the bounce listener.\n# TYPE drover_feedback_reports_total "
	              "counter\ndrover_feedback_reports_total %llu\n"
	              "# HELP drover_verp_forged_total Recipients refused by the bounce listener: "
	              "a token that does not verify.\n# TYPE drover_verp_forged_total counter\n"
	              "drover_verp_forged_total %llu\n"
	              "# HELP drover_reports_unattributed_total Reports that no verified token "
	              "ties to a message.\n# TYPE drover_reports_unattributed_total counter\n"
	              "drover_reports_unattributed_total %llu\n",
	              out, (unsigned long long)async.complaints, (unsigned long long)async.forged,
	              (unsigned long long)async.unattributed);
	free(out);
	return next;
}

/* "bounces": {"delivery": {"bad-mailbox": 3, ...}, "async": {...}}, and the other three. */
static void
bounce_json(const struct control_sources *src, json_t *o)
{
	uint64_t delivery[CLASSIFY_CATEGORY_COUNT];
	struct ingress_report_stats async;
	json_t *b = json_object(), *d = json_object(), *a = json_object();

	bounce_counts(src, delivery, &async);
	for (unsigned c = 0; c < CLASSIFY_CATEGORY_COUNT; c++) {
		json_object_set_new(d, classify_category_name(c),
		                    json_integer((json_int_t)delivery[c]));
		json_object_set_new(a, classify_category_name(c),
		                    json_integer((json_int_t)async.bounces[c]));
	}
	json_object_set_new(b, "delivery", d);
	json_object_set_new(b, "async", a);
	json_object_set_new(o, "bounces", b);
	json_object_set_new(o, "feedback_reports_total",
	                    json_integer((json_int_t)async.complaints));
	json_object_set_new(o, "verp_forged_total", json_integer((json_int_t)async.forged));
	json_object_set_new(o, "reports_unattributed_total",
	                    json_integer((json_int_t)async.unattributed));
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
	return webhook_text(src, bounce_text(src, out));
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
	if (src->webhooks != NULL)
		json_object_set_new(o, "webhooks", webhook_json(src));
	bounce_json(src, o);
	return o;
}
