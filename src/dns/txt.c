/* txt.c - TXT records (SPF, DKIM keys, DMARC policies) and records of any other type (TLSA),
 * handed over as their rdata for the component that understands them. */
#include <stdlib.h>

#include <unbound.h>

#include "core/core.h"
#include "dns/internal.h"

#define TYPE_TXT 16

static void
txt_deliver(struct dns_query *q)
{
	const struct dns_lookup *l = q->lookups[0];
	struct dns_txt_result res = {
	    .status = l->status,
	    .name = q->name,
	    .error = l->error,
	};
	struct dns_txt_record *records = NULL;
	char *text = NULL, *p;
	size_t n, total = 0;

	if (l->status == DNS_OK) {
		for (n = 0; l->res->data[n] != NULL; n++)
			total += (size_t)l->res->len[n] + 1;
		/* Joined strings are shorter than their rdata (the length octets go). */
		records = xcalloc(n, sizeof(*records));
		p = text = xmalloc(total + 1);
		for (size_t i = 0; i < n; i++) {
			ssize_t len = dns_txt_join((const unsigned char *)l->res->data[i],
			                           (size_t)l->res->len[i], p);

			if (len < 0)
				continue;
			records[res.nrecords++] = (struct dns_txt_record){p, (size_t)len};
			p += len + 1;
		}
		res.records = records;
		if (res.nrecords == 0) {
			res.status = DNS_TEMPFAIL;
			res.error = "malformed TXT records";
		}
	}
	if (res.status == DNS_OK || res.status == DNS_NODATA || res.status == DNS_NXDOMAIN)
		res.ttl = l->ttl;
	q->cb.txt(q->arg, &res);
	free(records);
	free(text);
}

struct dns_query *
dns_txt(struct dns_resolver *r, const char *name, dns_txt_cb *cb, void *arg)
{
	struct dns_query *q = query_new(r, name, NULL, txt_deliver);

	q->cb.txt = cb;
	q->arg = arg;
	query_lookup(q, name, TYPE_TXT, 0);
	query_start(q);
	return q;
}

static void
rr_deliver(struct dns_query *q)
{
	const struct dns_lookup *l = q->lookups[0];
	struct dns_rr_result res = {
	    .status = l->status,
	    .name = q->name,
	    .type = l->type,
	    .error = l->error,
	};
	struct dns_rdata *rdata = NULL;

	if (l->status == DNS_OK) {
		size_t n;

		for (n = 0; l->res->data[n] != NULL; n++)
			;
		rdata = xcalloc(n, sizeof(*rdata));
		for (size_t i = 0; i < n; i++)
			rdata[i] = (struct dns_rdata){(const unsigned char *)l->res->data[i],
			                              (size_t)l->res->len[i]};
		res.rdata = rdata;
		res.nrdata = n;
	}
	if (l->res != NULL)
		res.secure = l->res->secure != 0;
	if (res.status == DNS_OK || res.status == DNS_NODATA || res.status == DNS_NXDOMAIN)
		res.ttl = l->ttl;
	q->cb.rr(q->arg, &res);
	free(rdata);
}

struct dns_query *
dns_rr(struct dns_resolver *r, const char *name, uint16_t type, dns_rr_cb *cb, void *arg)
{
	struct dns_query *q = query_new(r, name, NULL, rr_deliver);

	q->cb.rr = cb;
	q->arg = arg;
	query_lookup(q, name, type, 0);
	query_start(q);
	return q;
}
