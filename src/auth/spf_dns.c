/* spf_dns.c - SPF's lookups through the project's resolver (dns/dns.h).
 *
 * TXT through dns_txt(); A, AAAA, MX and PTR through dns_rr(), read here, because SPF needs
 * what delivery does not want: every address (RFC 7208 sets no limit on A records), every MX
 * record in answer order, no implicit MX (§5.4: "check_host() MUST NOT pretend the target is
 * its single MX"), and MX or PTR names however odd their characters (the OpenSPF suite has
 * "foo:bar/baz.example.com"). */
#include <stdlib.h>
#include <string.h>

#include "auth/spf_internal.h"
#include "core/core.h"

#define TYPE_A    1
#define TYPE_PTR  12
#define TYPE_MX   15
#define TYPE_AAAA 28

struct rq {
	struct dns_query *q;
	uint16_t type;
	spf_dns_cb *cb;
	void *arg;
};

static enum spf_dns_status
status_of(enum dns_status s)
{
	switch (s) {
	case DNS_OK:
		return SPF_DNS_OK;
	case DNS_NODATA:
	case DNS_NULL_MX:
		return SPF_DNS_NODATA;
	case DNS_NXDOMAIN:
	case DNS_BADNAME: /* a name unbound cannot ask about does not exist for SPF */
		return SPF_DNS_NXDOMAIN;
	case DNS_TEMPFAIL:
	default:
		return SPF_DNS_TEMPFAIL;
	}
}

/* An uncompressed wire-format name into text: any printable ASCII but '.' and '\' within a
 * label (the DNS allows them; nothing here needs to escape them). The root is ".". Returns the
 * octets used, or -1. */
static int
wire_name(const unsigned char *p, size_t len, char out[DNS_NAME_MAX + 1])
{
	size_t i = 0, o = 0;

	for (;;) {
		size_t l;

		if (i >= len)
			return -1;
		if ((l = p[i++]) == 0)
			break;
		if (l > 63 || i + l > len)
			return -1;
		if (o > 0) {
			if (o + 1 > DNS_NAME_MAX)
				return -1;
			out[o++] = '.';
		}
		if (o + l > DNS_NAME_MAX)
			return -1;
		for (size_t k = 0; k < l; k++) {
			unsigned char c = p[i + k];

			if (c <= 0x20 || c >= 0x7f || c == '.' || c == '\\')
				return -1;
			out[o++] = (char)c;
		}
		i += l;
	}
	if (o == 0)
		out[o++] = '.';
	out[o] = '\0';
	return (int)i;
}

static void
on_txt(void *arg, const struct dns_txt_result *res)
{
	struct rq *r = arg;
	struct spf_dns_txt *txt = NULL;
	struct spf_dns_answer a = {.status = status_of(res->status), .error = res->error};

	if (a.status == SPF_DNS_OK) {
		txt = xcalloc(res->nrecords + 1, sizeof(*txt));
		for (size_t i = 0; i < res->nrecords; i++)
			txt[i] = (struct spf_dns_txt){res->records[i].text, res->records[i].len};
		a.txt = txt;
		a.n = res->nrecords;
	}
	r->cb(r->arg, &a);
	free(txt);
	free(r);
}

static void
on_rr(void *arg, const struct dns_rr_result *res)
{
	struct rq *r = arg;
	struct spf_dns_answer a = {.status = status_of(res->status), .error = res->error};
	struct dns_address *addrs = NULL;
	char(*names)[DNS_NAME_MAX + 1] = NULL;
	const char **namev = NULL;

	if (a.status == SPF_DNS_OK) {
		if (r->type == TYPE_A || r->type == TYPE_AAAA)
			addrs = xcalloc(res->nrdata + 1, sizeof(*addrs));
		else {
			names = xcalloc(res->nrdata + 1, sizeof(*names));
			namev = xcalloc(res->nrdata + 1, sizeof(*namev));
		}
		for (size_t i = 0; i < res->nrdata; i++) {
			const unsigned char *d = res->rdata[i].data;
			size_t len = res->rdata[i].len;
			int used;

			switch (r->type) {
			case TYPE_A:
				if (len != sizeof(addrs[0].u.v4))
					continue;
				addrs[a.n].family = AF_INET;
				memcpy(&addrs[a.n++].u.v4, d, len);
				break;
			case TYPE_AAAA:
				if (len != sizeof(addrs[0].u.v6))
					continue;
				addrs[a.n].family = AF_INET6;
				memcpy(&addrs[a.n++].u.v6, d, len);
				break;
			case TYPE_MX:
				if (len < 3 || (used = wire_name(d + 2, len - 2, names[a.n])) < 0 ||
				    (size_t)used != len - 2)
					continue;
				namev[a.n] = names[a.n];
				a.n++;
				break;
			case TYPE_PTR:
				if ((used = wire_name(d, len, names[a.n])) < 0 ||
				    (size_t)used != len)
					continue;
				namev[a.n] = names[a.n];
				a.n++;
				break;
			}
		}
		/* As the resolver does: an answer with nothing usable is a broken zone, which may
		 * be fixed, not a proof of absence. */
		if (a.n == 0 && res->nrdata > 0) {
			a.status = SPF_DNS_TEMPFAIL;
			a.error = "malformed records";
		}
		a.addrs = addrs;
		a.names = namev;
	}
	r->cb(r->arg, &a);
	free(addrs);
	free(names);
	free(namev);
	free(r);
}

static struct rq *
rq_new(uint16_t type, spf_dns_cb *cb, void *arg)
{
	struct rq *r = xcalloc(1, sizeof(*r));

	r->type = type;
	r->cb = cb;
	r->arg = arg;
	return r;
}

static void *
r_txt(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	struct rq *r = rq_new(0, cb, arg);

	r->q = dns_txt(ctx, name, on_txt, r);
	return r;
}

static void *
r_rr(void *ctx, uint16_t type, const char *name, spf_dns_cb *cb, void *arg)
{
	struct rq *r = rq_new(type, cb, arg);

	r->q = dns_rr(ctx, name, type, on_rr, r);
	return r;
}

static void *
r_a(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	return r_rr(ctx, TYPE_A, name, cb, arg);
}

static void *
r_aaaa(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	return r_rr(ctx, TYPE_AAAA, name, cb, arg);
}

static void *
r_mx(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	return r_rr(ctx, TYPE_MX, name, cb, arg);
}

static void *
r_ptr(void *ctx, const struct dns_address *ip, spf_dns_cb *cb, void *arg)
{
	char name[DNS_NAME_MAX + 1];

	spf_ip_reverse_name(ip, name);
	return r_rr(ctx, TYPE_PTR, name, cb, arg);
}

static void
r_cancel(void *ctx, void *handle)
{
	struct rq *r = handle;

	dns_cancel(r->q);
	free(r);
}

void
spf_dns_use_resolver(struct spf_dns *d, struct dns_resolver *r, struct event_base *base)
{
	*d = (struct spf_dns){
	    .ctx = r,
	    .txt = r_txt,
	    .a = r_a,
	    .aaaa = r_aaaa,
	    .mx = r_mx,
	    .ptr = r_ptr,
	    .cancel = r_cancel,
	    .base = base,
	};
}
