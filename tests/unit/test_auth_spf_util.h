/* test_auth_spf_util.h - what SPF's tests share: a DNS in memory (a struct spf_dns) serving a
 * zone written in the JSON form of tests/conformance/spf/yaml2json.py, answering at once
 * (inside the lookup call) or later from an event loop, and a check run to its end.
 *
 * The zone: {"name": {"TXT": [["string", ...] or "string", ...], "A": [...], "AAAA": [...],
 * "MX": [[pref, "host"], ...], "PTR": [...], "CNAME": "name", "TIMEOUT": true}}. Names are
 * looked up lower-cased without a trailing dot; CNAMEs are followed (a loop is a TEMPFAIL); a
 * name not in the zone is NXDOMAIN; a type without records is NODATA, or TEMPFAIL with
 * "TIMEOUT"; with "HANG": true the lookups of a name never answer (with an event loop only).
 * Strings hold octets: each character U+0000..U+00FF is one octet. */
#ifndef DROVER_TEST_AUTH_SPF_UTIL_H
#define DROVER_TEST_AUTH_SPF_UTIL_H

#include <arpa/inet.h>
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <cmocka.h>
#include <event2/event.h>
#include <jansson.h>

#include "auth/auth.h"
#include "core/core.h"

#define MEMDNS_CNAME_MAX 8

/* An answer that owns what it points to. */
struct memdns_answer {
	struct spf_dns_answer a;
	struct spf_dns_txt *txt;
	char **bufs;
	struct dns_address *addrs;
	char **names;
	size_t nbufs;
};

struct memdns_pending {
	struct memdns *m;
	struct event *ev;
	spf_dns_cb *cb;
	void *arg;
	struct memdns_answer ans;
	TAILQ_ENTRY(memdns_pending) entry;
};

struct memdns {
	json_t *zone;            /* owned reference */
	struct event_base *base; /* NULL: answers inside the lookup call */
	unsigned lookups;        /* every lookup made */
	unsigned cancels;
	char last[DNS_NAME_MAX + 16]; /* "TXT example.com" of the last lookup */
	TAILQ_HEAD(, memdns_pending) pending;
};

/* The octets of a JSON string (U+0000..U+00FF each one octet): malloc'd, NUL-terminated. */
static inline char *
memdns_octets(const json_t *s, size_t *len)
{
	const unsigned char *u = (const unsigned char *)json_string_value(s);
	size_t n = json_string_length(s), o = 0;
	char *out = xmalloc(n + 1);

	for (size_t i = 0; i < n; i++) {
		if (u[i] < 0x80)
			out[o++] = (char)u[i];
		else if ((u[i] & 0xe0) == 0xc0 && i + 1 < n) {
			out[o++] = (char)(((u[i] & 0x1f) << 6) | (u[i + 1] & 0x3f));
			i++;
		} else
			fail_msg("zone string with a character over U+00FF");
	}
	out[o] = '\0';
	*len = o;
	return out;
}

static inline void
memdns_answer_free(struct memdns_answer *x)
{
	for (size_t i = 0; i < x->nbufs; i++)
		free(x->bufs[i]);
	free(x->bufs);
	free(x->txt);
	free(x->addrs);
	free(x->names);
	memset(x, 0, sizeof(*x));
}

static inline void
memdns_norm(const char *in, char *out, size_t size)
{
	size_t n = strlen(in), i;

	if (n > 1 && in[n - 1] == '.')
		n--;
	for (i = 0; i < n && i + 1 < size; i++)
		out[i] = (char)tolower((unsigned char)in[i]);
	out[i] = '\0';
}

/* What the zone answers for (name, type). */
static inline void
memdns_resolve(struct memdns *m, const char *type, const char *qname, struct memdns_answer *x)
{
	char name[1024];
	const json_t *rr = NULL, *recs;

	memset(x, 0, sizeof(*x));
	m->lookups++;
	snprintf(m->last, sizeof(m->last), "%s %.250s", type, qname);
	memdns_norm(qname, name, sizeof(name));
	for (int hop = 0;; hop++) {
		const json_t *cname;

		if (hop == MEMDNS_CNAME_MAX) {
			x->a.status = SPF_DNS_TEMPFAIL;
			x->a.error = "CNAME loop";
			return;
		}
		if ((rr = json_object_get(m->zone, name)) == NULL) {
			x->a.status = SPF_DNS_NXDOMAIN;
			x->a.error = "no such domain";
			return;
		}
		recs = json_object_get(rr, type);
		if (recs != NULL && json_array_size(recs) > 0)
			break;
		if ((cname = json_object_get(rr, "CNAME")) != NULL) {
			memdns_norm(json_string_value(cname), name, sizeof(name));
			continue;
		}
		if (json_is_true(json_object_get(rr, "TIMEOUT"))) {
			x->a.status = SPF_DNS_TEMPFAIL;
			x->a.error = "timed out";
		} else {
			x->a.status = SPF_DNS_NODATA;
			x->a.error = "no records";
		}
		return;
	}
	size_t n = json_array_size(recs);

	x->a.status = SPF_DNS_OK;
	x->a.n = n;
	if (strcmp(type, "TXT") == 0) {
		x->txt = xcalloc(n, sizeof(*x->txt));
		x->bufs = xcalloc(n, sizeof(*x->bufs));
		x->nbufs = n;
		for (size_t i = 0; i < n; i++) {
			const json_t *rec = json_array_get(recs, i);
			size_t total = 0, len;
			char *joined = xmalloc(1);

			joined[0] = '\0';
			/* A record is its character-strings joined (RFC 7208 §3.3). */
			for (size_t k = 0; k < (json_is_array(rec) ? json_array_size(rec) : 1);
			     k++) {
				char *s = memdns_octets(
				    json_is_array(rec) ? json_array_get(rec, k) : rec, &len);

				joined = xrealloc(joined, total + len + 1);
				memcpy(joined + total, s, len + 1);
				total += len;
				free(s);
			}
			x->bufs[i] = joined;
			x->txt[i] = (struct spf_dns_txt){joined, total};
		}
		x->a.txt = x->txt;
	} else if (strcmp(type, "A") == 0 || strcmp(type, "AAAA") == 0) {
		int family = strcmp(type, "A") == 0 ? AF_INET : AF_INET6;

		x->addrs = xcalloc(n, sizeof(*x->addrs));
		for (size_t i = 0; i < n; i++) {
			x->addrs[i].family = family;
			if (inet_pton(family, json_string_value(json_array_get(recs, i)),
			              &x->addrs[i].u) != 1)
				fail_msg("zone: %s %s: bad address", name, type);
		}
		x->a.addrs = x->addrs;
	} else {
		x->names = xcalloc(n, sizeof(*x->names));
		for (size_t i = 0; i < n; i++) {
			const json_t *rec = json_array_get(recs, i);

			/* MX: [preference, host], answered in zone order */
			x->names[i] = (char *)json_string_value(
			    json_is_array(rec) ? json_array_get(rec, 1) : rec);
		}
		x->a.names = (const char *const *)x->names;
	}
}

static inline void
memdns_fire(evutil_socket_t fd, short what, void *arg)
{
	struct memdns_pending *p = arg;

	TAILQ_REMOVE(&p->m->pending, p, entry);
	p->cb(p->arg, &p->ans.a);
	memdns_answer_free(&p->ans);
	event_free(p->ev);
	free(p);
}

static inline bool
memdns_hangs(struct memdns *m, const char *qname)
{
	char name[1024];

	memdns_norm(qname, name, sizeof(name));
	return json_is_true(json_object_get(json_object_get(m->zone, name), "HANG"));
}

static inline void *
memdns_lookup(struct memdns *m, const char *type, const char *name, spf_dns_cb *cb, void *arg)
{
	struct memdns_pending *p;

	if (m->base == NULL) {
		struct memdns_answer x;

		memdns_resolve(m, type, name, &x);
		cb(arg, &x.a);
		memdns_answer_free(&x);
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->m = m;
	p->cb = cb;
	p->arg = arg;
	memdns_resolve(m, type, name, &p->ans);
	p->ev = evtimer_new(m->base, memdns_fire, p);
	if (!memdns_hangs(m, name))
		event_active(p->ev, EV_TIMEOUT, 0);
	TAILQ_INSERT_TAIL(&m->pending, p, entry);
	return p;
}

static inline void *
memdns_txt(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	return memdns_lookup(ctx, "TXT", name, cb, arg);
}

static inline void *
memdns_a(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	return memdns_lookup(ctx, "A", name, cb, arg);
}

static inline void *
memdns_aaaa(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	return memdns_lookup(ctx, "AAAA", name, cb, arg);
}

static inline void *
memdns_mx(void *ctx, const char *name, spf_dns_cb *cb, void *arg)
{
	return memdns_lookup(ctx, "MX", name, cb, arg);
}

static inline void *
memdns_ptr(void *ctx, const struct dns_address *ip, spf_dns_cb *cb, void *arg)
{
	static const char hex[] = "0123456789abcdef";
	char name[DNS_NAME_MAX + 1], *p = name;

	if (ip->family == AF_INET) {
		const unsigned char *b = (const unsigned char *)&ip->u.v4;

		snprintf(name, sizeof(name), "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
	} else {
		for (int i = 15; i >= 0; i--) {
			*p++ = hex[ip->u.v6.s6_addr[i] & 0xf];
			*p++ = '.';
			*p++ = hex[ip->u.v6.s6_addr[i] >> 4];
			*p++ = '.';
		}
		strcpy(p, "ip6.arpa");
	}
	return memdns_lookup(ctx, "PTR", name, cb, arg);
}

static inline void
memdns_cancel(void *ctx, void *handle)
{
	struct memdns *m = ctx;
	struct memdns_pending *p = handle;

	m->cancels++;
	TAILQ_REMOVE(&m->pending, p, entry);
	memdns_answer_free(&p->ans);
	event_free(p->ev);
	free(p);
}

/* zone: JSON text, or NULL with zone_json an object (a new reference is taken). */
static inline struct memdns *
memdns_new(struct event_base *base, const char *zone, json_t *zone_json)
{
	struct memdns *m = xcalloc(1, sizeof(*m));
	json_error_t jerr;

	m->base = base;
	TAILQ_INIT(&m->pending);
	if (zone != NULL) {
		m->zone = json_loads(zone, JSON_ALLOW_NUL, &jerr);
		if (m->zone == NULL)
			fail_msg("zone: line %d: %s", jerr.line, jerr.text);
	} else
		m->zone = json_incref(zone_json);
	return m;
}

static inline void
memdns_free(struct memdns *m)
{
	struct memdns_pending *p;

	/* Every lookup is answered or cancelled by the time a check ends. */
	if (!TAILQ_EMPTY(&m->pending))
		fail_msg("memdns: a lookup was left pending");
	while ((p = TAILQ_FIRST(&m->pending)) != NULL)
		memdns_cancel(m, p);
	json_decref(m->zone);
	free(m);
}

static inline void
memdns_ops(struct memdns *m, struct spf_dns *d)
{
	*d = (struct spf_dns){
	    .ctx = m,
	    .txt = memdns_txt,
	    .a = memdns_a,
	    .aaaa = memdns_aaaa,
	    .mx = memdns_mx,
	    .ptr = memdns_ptr,
	    .cancel = memdns_cancel,
	    .base = m->base,
	};
}

/* ---- One check, run to its end ---- */

struct outcome {
	bool done;
	unsigned calls;
	enum spf_result result;
	char scope[8];
	char identity[SPF_IDENTITY_MAX + 1];
	char domain[DNS_NAME_MAX + 1];
	char mechanism[256];
	char explanation[SPF_EXPANSION_MAX + 1];
	bool has_explanation, default_explanation;
	char reason[600];
};

static inline void
outcome_copy(void *arg, const struct spf_outcome *o)
{
	struct outcome *out = arg;

	out->done = true;
	out->calls++;
	out->result = o->result;
	strlcpy_s(out->scope, o->scope, sizeof(out->scope));
	strlcpy_s(out->identity, o->identity, sizeof(out->identity));
	strlcpy_s(out->domain, o->domain, sizeof(out->domain));
	strlcpy_s(out->mechanism, o->mechanism != NULL ? o->mechanism : "", sizeof(out->mechanism));
	out->has_explanation = o->explanation != NULL;
	strlcpy_s(out->explanation, o->explanation != NULL ? o->explanation : "",
	          sizeof(out->explanation));
	out->default_explanation = o->default_explanation;
	strlcpy_s(out->reason, o->reason, sizeof(out->reason));
}

/* Runs one check through m (synchronously if m has no event loop) into out. */
static inline void
spf_run(struct memdns *m, const struct spf_request *req, struct outcome *out)
{
	struct spf_dns dns;
	struct spf_check *c;

	memset(out, 0, sizeof(*out));
	memdns_ops(m, &dns);
	c = spf_check_start(&dns, req, outcome_copy, out);
	if (m->base == NULL) {
		assert_null(c);
	} else {
		assert_non_null(c);
		assert_false(out->done); /* never from inside spf_check_start() */
		while (!out->done && event_base_loop(m->base, EVLOOP_ONCE) == 0)
			;
	}
	assert_true(out->done);
	assert_int_equal(out->calls, 1);
}

/* A request from text, the way the suite writes one. */
static inline struct spf_request
spf_req(enum spf_scope scope, const char *ip, const char *sender, const char *helo)
{
	struct spf_request r = {.scope = scope, .sender = sender, .helo = helo, .now = 1700000000};

	if (spf_ip_parse(ip, &r.ip) == -1)
		fail_msg("bad IP %s", ip);
	return r;
}

#endif
