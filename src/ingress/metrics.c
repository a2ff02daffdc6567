/* metrics.c - what the SMTP threads measure for the metrics (docs/operations.md, "Metrics"):
 * the answer times of their verification resolvers, the time DKIM signing costs, and the
 * connections refused over a session limit. Kept by the ingress itself, not by a
 * configuration's generation, so that a reload does not start them again. */
#include "dns/dns.h"
#include "ingress/internal.h"

void
ingress_metrics_init(struct ingress_metrics *m)
{
	m->verify_dns = dns_latency_new();
	dkim_signing_times_init(&m->signing);
}

void
ingress_metrics_free(struct ingress_metrics *m)
{
	dns_latency_free(m->verify_dns);
	dkim_signing_times_free(&m->signing);
}

void
ingress_metrics_read(struct ingress *in, struct ingress_metrics_view *v)
{
	v->verify_dns = in->metrics.verify_dns;
	v->dkim_sign_us = in->metrics.signing.sign_us;
	v->dkim_final_us = in->metrics.signing.final_us;
	client_table_refused(in->clients, &v->refused_max_sessions,
	                     &v->refused_max_sessions_per_ip);
}
