/* metrics.c - the counters of the ingress, the spool and the delivery engine, as Prometheus
 * text and as JSON (docs/operations.md, "Metrics"). Counter names end in _total and
 * durations are in seconds (Prometheus' conventions); every family is shown from the start,
 * with every series it has whatever happened, so that a rate() has a beginning.
 *
 * Every figure is read without waiting for an SMTP or delivery loop: atomics, histograms
 * (lock-free), or the snapshot the engine's loop publishes once a second (queue.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control/control.h"
#include "control/exposition.h"
#include "core/core.h"
#include "dns/dns.h"
#include "ingress/ingress.h"
#include "queue/queue.h"
#include "spool/spool.h"
#include "webhook/webhook.h"

/* Histograms observe microseconds; they are shown in seconds. */
#define US_PER_S 1e6

/* A family of one value without labels; values[i] goes with table[i]. */
struct scalar {
	const char *name;
	enum expo_type type;
	const char *help;
};

static void
scalars(struct exposition *x, const struct scalar *table, const uint64_t *values, size_t n)
{
	for (size_t i = 0; i < n; i++)
		expo_scalar(x, table[i].name, table[i].type, table[i].help, (double)values[i]);
}

static const struct scalar spool_scalars[] = {
    {"drover_spool_messages", EXPO_GAUGE, "Messages in the spool."},
    {"drover_spool_commits_total", EXPO_COUNTER,
     "Spool write transactions committed (each one fsync)."},
    {"drover_spool_messages_committed_total", EXPO_COUNTER, "Messages committed to the spool."},
    {"drover_spool_bytes_total", EXPO_COUNTER, "Body octets stored."},
    {"drover_spool_largest_batch", EXPO_GAUGE, "Most requests applied in one spool transaction."},
    {"drover_spool_full_total", EXPO_COUNTER, "Requests refused because the spool was full."},
    {"drover_spool_io_errors_total", EXPO_COUNTER, "Spool requests that failed."},
};

static const struct scalar engine_scalars[] = {
    {"drover_queue_items", EXPO_GAUGE,
     "Queue items (a message's recipients at one destination) now."},
    {"drover_delivered_total", EXPO_COUNTER, "Recipients accepted by a server."},
    {"drover_deferred_total", EXPO_COUNTER, "Recipient attempts to be retried."},
    {"drover_bounced_total", EXPO_COUNTER, "Recipients refused for good."},
    {"drover_expired_total", EXPO_COUNTER, "Recipients given up at the end of their lifetime."},
    {"drover_dsns_total", EXPO_COUNTER, "Delivery status notifications queued."},
    {"drover_connections_out_total", EXPO_COUNTER, "Outgoing SMTP connections started."},
    {"drover_connections_out_ok_total", EXPO_COUNTER,
     "Outgoing SMTP connections that reached a server."},
    {"drover_connections_out_open", EXPO_GAUGE, "Outgoing SMTP connections open now."},
    {"drover_messages_reused_total", EXPO_COUNTER, "Messages sent on an already used connection."},
};

static void
ingress_families(const struct control_sources *src, struct exposition *x)
{
	struct ingress_stats st;
	struct ingress_metrics_view v;
	struct expo_family *f;

	ingress_stats(src->ingress, &st);
	ingress_metrics_read(src->ingress, &v);
	expo_scalar(x, "drover_smtp_sessions_open", EXPO_GAUGE, "SMTP sessions open now.",
	            (double)st.sessions_open);
	expo_scalar(x, "drover_smtp_sessions_total", EXPO_COUNTER, "SMTP sessions accepted.",
	            (double)st.sessions_total);
	f = expo_family(x, "drover_smtp_connections_refused_total", EXPO_COUNTER,
	                "SMTP connections refused at connect (421) over a session limit.");
	expo_label(expo_value(f, (double)v.refused_max_sessions), "limit", "max_sessions");
	expo_label(expo_value(f, (double)v.refused_max_sessions_per_ip), "limit",
	           "max_sessions_per_ip");
	expo_scalar(x, "drover_messages_received_total", EXPO_COUNTER,
	            "Messages accepted (committed to the spool, 250 sent).",
	            (double)st.messages_accepted);
	expo_scalar(x, "drover_messages_refused_total", EXPO_COUNTER,
	            "Messages refused at the end of their data.", (double)st.messages_rejected);
	expo_histogram(expo_family(x, "drover_dkim_sign_seconds", EXPO_HISTOGRAM,
	                           "DKIM signing time per signed message: hashing its content and "
	                           "header, and the signatures."),
	               v.dkim_sign_us, US_PER_S);
	expo_histogram(expo_family(x, "drover_dkim_sign_final_seconds", EXPO_HISTOGRAM,
	                           "DKIM signing time per signed message spent at the end of its "
	                           "data: the header hash and the private-key operations."),
	               v.dkim_final_us, US_PER_S);
}

/* One family for the delivery resolver (user="delivery") and the SMTP threads' resolvers for
 * verify = { } (user="verify"), by record type. */
static void
dns_family(const struct control_sources *src, struct exposition *x)
{
	const struct dns_latency *lat[2] = {NULL, NULL};
	static const char *const users[2] = {"delivery", "verify"};
	struct expo_family *f;

	if (src->engine != NULL) {
		struct queue_engine_metrics m;

		queue_engine_metrics(src->engine, &m);
		lat[0] = m.dns;
		queue_engine_metrics_clear(&m);
	}
	if (src->ingress != NULL) {
		struct ingress_metrics_view v;

		ingress_metrics_read(src->ingress, &v);
		lat[1] = v.verify_dns;
	}
	if (lat[0] == NULL && lat[1] == NULL)
		return;
	f = expo_family(x, "drover_dns_query_seconds", EXPO_HISTOGRAM,
	                "DNS lookup time, from the question to the answer or the timeout, by "
	                "resolver user and record type.");
	for (size_t u = 0; u < nitems(users); u++) {
		if (lat[u] == NULL)
			continue;
		for (unsigned t = 0; t < DNS_LATENCY_TYPES; t++) {
			struct expo_sample *s =
			    expo_histogram(f, dns_latency_histogram(lat[u], t), US_PER_S);

			expo_label(s, "user", users[u]);
			expo_label(s, "type", dns_latency_type_name(t));
		}
	}
}

static void
spool_families(const struct control_sources *src, struct exposition *x)
{
	struct spool_stats st;

	spool_stats(src->spool, &st);
	scalars(x, spool_scalars,
	        (const uint64_t[nitems(spool_scalars)]){spool_message_count(src->spool), st.commits,
	                                                st.messages, st.bytes, st.largest_batch,
	                                                st.full, st.io_errors},
	        nitems(spool_scalars));
	expo_histogram(expo_family(x, "drover_spool_commit_seconds", EXPO_HISTOGRAM,
	                           "Time from a message's commit request to the end of the "
	                           "fsync'd transaction that stored it (waiting for the writer "
	                           "included)."),
	               spool_commit_latency(src->spool), US_PER_S);
	expo_histogram(expo_family(x, "drover_spool_commit_batch_size", EXPO_HISTOGRAM,
	                           "Requests per spool transaction committed (group commit)."),
	               spool_batch_sizes(src->spool), 1);
}

static void
engine_counters(const struct control_sources *src, struct exposition *x)
{
	struct queue_engine_stats st;

	queue_engine_stats(src->engine, &st);
	scalars(x, engine_scalars,
	        (const uint64_t[nitems(engine_scalars)]){
	            st.items, st.delivered, st.deferred, st.bounced, st.expired, st.dsns,
	            st.connections, st.connections_ok, st.open, st.messages_reused},
	        nitems(engine_scalars));
}

/* A family of one value per label value: names[i] = values[i]. */
static void
labelled(struct exposition *x, const char *name, enum expo_type type, const char *help,
         const char *label, const char *const *names, const uint64_t *values, size_t n)
{
	struct expo_family *f = expo_family(x, name, type, help);

	for (size_t i = 0; i < n; i++)
		expo_label(expo_value(f, (double)values[i]), label, names[i]);
}

/* The queue's and shaping's figures, from the snapshot the engine publishes each second. */
static void
engine_queue(const struct control_sources *src, struct exposition *x)
{
	static const char *const item_states[] = {"scheduled", "ready", "active", "expiring"};
	static const char *const lane_states[] = {"ready", "held", "dead"};
	static const char *const wait_kinds[] = {"message", "connection"};
	const char *action_names[nitems(((struct queue_engine_metrics *)0)->actions)];
	uint64_t action_counts[nitems(action_names)];
	struct queue_engine_metrics m;
	struct expo_family *f;

	queue_engine_metrics(src->engine, &m);
	labelled(x, "drover_queue_state_items", EXPO_GAUGE,
	         "Queue items by state: waiting for their next attempt, due and waiting for a "
	         "connection, being delivered, expired while held back.",
	         "state", item_states,
	         (const uint64_t[]){m.scheduled, m.ready, m.active, m.expiring},
	         nitems(item_states));
	f = expo_family(x, "drover_queue_site_items", EXPO_GAUGE,
	                "Queue items by stream and site (the provider, or the domain): the 50 "
	                "largest sites by name, the others summed as site=\"_other\".");
	for (size_t i = 0; i < m.nsites; i++) {
		struct expo_sample *s = expo_value(f, (double)m.sites[i].items);

		expo_label(s, "stream", m.sites[i].stream);
		expo_label(s, "site", m.sites[i].site);
	}
	labelled(x, "drover_queue_destinations", EXPO_GAUGE,
	         "Queue lanes (a destination's mail of one stream and pool) with items ready, held "
	         "back by shaping, or at a site held back after failed connections (not "
	         "exclusive).",
	         "state", lane_states,
	         (const uint64_t[]){m.lanes_ready, m.lanes_held, m.lanes_dead},
	         nitems(lane_states));
	expo_scalar(x, "drover_sites_held", EXPO_GAUGE,
	            "Sites with mail held back by shaping now (a suspension, a backoff, a rate or "
	            "warm-up wait).",
	            (double)m.sites_held);
	for (size_t i = 0; i < m.nactions && i < nitems(action_names); i++) {
		action_names[i] = m.actions[i].name;
		action_counts[i] = m.actions[i].active;
	}
	labelled(x, "drover_shaping_actions_active", EXPO_GAUGE,
	         "Adaptive shaping actions in force, by action.", "action", action_names,
	         action_counts, m.nactions);
	/* engine_metrics.c says -1 until engine_admin.c counts operators' suspensions. */
	if (m.admin_suspensions >= 0)
		expo_scalar(x, "drover_admin_suspensions_active", EXPO_GAUGE,
		            "Suspensions made by an operator through the admin API, in force.",
		            (double)m.admin_suspensions);
	labelled(x, "drover_throttle_waits_total", EXPO_COUNTER,
	         "Messages that waited for a message_rate token, connections that waited for a "
	         "connection_rate token.",
	         "kind", wait_kinds,
	         (const uint64_t[]){m.throttle_waits_message, m.throttle_waits_connection},
	         nitems(wait_kinds));
	queue_engine_metrics_clear(&m);
}

/* Per webhook, labelled with its name (a section title). */
static const struct {
	const char *name, *help, *json;
	enum expo_type type;
} webhook_metrics[] = {
    {"drover_webhook_records_sent_total", "Event records a webhook's receiver acknowledged.",
     "records_sent_total", EXPO_COUNTER},
    {"drover_webhook_batches_sent_total", "Webhook requests answered 2xx.", "batches_sent_total",
     EXPO_COUNTER},
    {"drover_webhook_batches_failed_total",
     "Webhook requests that failed (each retried with backoff).", "batches_failed_total",
     EXPO_COUNTER},
    {"drover_webhook_records_dropped_total",
     "Event records a webhook dropped (backlog_max reached, or not writable).",
     "records_dropped_total", EXPO_COUNTER},
    {"drover_webhook_records_damaged_total", "Damaged lines of a webhook's backlog, skipped.",
     "records_damaged_total", EXPO_COUNTER},
    {"drover_webhook_backlog_bytes", "Octets of a webhook's backlog on disk.", "backlog_bytes",
     EXPO_GAUGE},
    {"drover_webhook_backlog_records", "Event records in a webhook's backlog not yet acknowledged.",
     "backlog_records", EXPO_GAUGE},
    {"drover_webhook_failing", "1 while a webhook's requests fail.", "failing", EXPO_GAUGE},
};

static double
webhook_value(const struct webhook_stats *st, size_t i)
{
	const uint64_t v[] = {st->records_sent,    st->batches_sent,    st->batches_failed,
	                      st->records_dropped, st->records_damaged, st->backlog_bytes,
	                      st->backlog_records, st->failing};

	return (double)v[i];
}

static void
webhook_families(const struct control_sources *src, struct exposition *x)
{
	size_t n = webhooks_count(src->webhooks);

	for (size_t m = 0; n > 0 && m < nitems(webhook_metrics); m++) {
		struct expo_family *f = expo_family(
		    x, webhook_metrics[m].name, webhook_metrics[m].type, webhook_metrics[m].help);

		f->own_json = true;
		for (size_t i = 0; i < n; i++) {
			struct webhook_stats st;

			webhooks_stats(src->webhooks, i, &st);
			expo_label(expo_value(f, webhook_value(&st, m)), "webhook", st.name);
		}
	}
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

static void
bounce_families(const struct control_sources *src, struct exposition *x)
{
	uint64_t delivery[CLASSIFY_CATEGORY_COUNT];
	struct ingress_report_stats async;
	struct expo_family *f;

	if (src->engine == NULL && src->ingress == NULL)
		return;
	bounce_counts(src, delivery, &async);
	f = expo_family(x, "drover_bounces_total", EXPO_COUNTER,
	                "Recipients bounced, by category: at delivery (kind=\"delivery\") or "
	                "reported later by a bounce (kind=\"async\").");
	f->own_json = true;
	for (unsigned c = 0; c < CLASSIFY_CATEGORY_COUNT; c++)
		for (int k = 0; k < 2; k++) {
			struct expo_sample *s;

			if ((k == 0 && src->engine == NULL) || (k == 1 && src->ingress == NULL))
				continue;
			s = expo_value(f, (double)(k == 0 ? delivery[c] : async.bounces[c]));
			expo_label(s, "category", classify_category_name(c));
			expo_label(s, "kind", k == 0 ? "delivery" : "async");
		}
	if (src->ingress == NULL)
		return;
	expo_scalar(x, "drover_feedback_reports_total", EXPO_COUNTER,
	            "Feedback-loop complaints (ARF) read by the bounce listener.",
	            (double)async.complaints);
	expo_scalar(x, "drover_verp_forged_total", EXPO_COUNTER,
	            "Recipients refused by the bounce listener: a token that does not verify.",
	            (double)async.forged);
	expo_scalar(x, "drover_reports_unattributed_total", EXPO_COUNTER,
	            "Reports that no verified token ties to a message.",
	            (double)async.unattributed);
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
}

/* Every family of this moment, in the order they are shown. */
static void
gather(const struct control_sources *src, double uptime_s, struct exposition *x)
{
	expo_scalar(x, "drover_uptime_seconds", EXPO_GAUGE, "Seconds since the server started.",
	            uptime_s);
	if (src->ingress != NULL)
		ingress_families(src, x);
	dns_family(src, x);
	if (src->spool != NULL)
		spool_families(src, x);
	if (src->engine != NULL) {
		engine_counters(src, x);
		engine_queue(src, x);
	}
	bounce_families(src, x);
	if (src->webhooks != NULL)
		webhook_families(src, x);
}

char *
control_metrics_text(const struct control_sources *src, double uptime_s)
{
	struct exposition x = {0};
	char *text;

	gather(src, uptime_s, &x);
	text = expo_text(&x);
	expo_free(&x);
	return text;
}

json_t *
control_status_json(const struct control_sources *src, double uptime_s)
{
	struct exposition x = {0};
	json_t *o = json_object();

	json_object_set_new(o, "version", json_string(DROVER_VERSION));
	gather(src, uptime_s, &x);
	expo_json(&x, o);
	expo_free(&x);
	if (src->webhooks != NULL)
		json_object_set_new(o, "webhooks", webhook_json(src));
	bounce_json(src, o);
	return o;
}
