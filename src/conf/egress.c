/* conf/egress.c - egress sources and pools: source "name" { address; ehlo },
 * pool "name" { source "a" { weight } }, and the pool that delivery, route and domain
 * sections name. Checked against each other once the whole file is read, since a pool may be
 * written before its sources; each error names the line where the reference is written
 * (schema.c remembered it).
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/internal.h"
#include "core/core.h"

/* Where key was written ("file:line"), or NULL (embedded defaults). */
static const char *
where_of(const struct load_ctx *ctx, const char *key)
{
	for (size_t i = ctx->negress; i > 0; i--)
		if (strcmp(ctx->egress[i - 1].title, key) == 0)
			return ctx->egress[i - 1].where;
	return NULL;
}

/* An error at the line key was written on ("file:line" as remembered). */
static void error_at(struct load_ctx *ctx, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
error_at(struct load_ctx *ctx, const char *key, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	const char *w = where_of(ctx, key);
	char file[1024] = "";
	int line = 0;

	if (w != NULL) {
		const char *colon = strrchr(w, ':');

		if (colon != NULL && strncmp(w, "line ", 5) != 0) {
			size_t n = (size_t)(colon - w) < sizeof(file) - 1 ? (size_t)(colon - w)
			                                                  : sizeof(file) - 1;

			memcpy(file, w, n);
			file[n] = '\0';
			line = atoi(colon + 1);
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	load_error_at(ctx, file[0] != '\0' ? file : NULL, line, "%s", msg);
}

static int
parse_ip(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
	memset(ss, 0, sizeof(*ss));
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

	if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		*len = sizeof(*s4);
		return 0;
	}
	if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		*len = sizeof(*s6);
		return 0;
	}
	return -1;
}

static bool
same_address(const struct source_conf *a, const struct source_conf *b)
{
	if (a->sockaddr.ss_family != b->sockaddr.ss_family)
		return false;
	if (a->sockaddr.ss_family == AF_INET)
		return ((const struct sockaddr_in *)&a->sockaddr)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)&b->sockaddr)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)&a->sockaddr)->sin6_addr,
	              &((const struct sockaddr_in6 *)&b->sockaddr)->sin6_addr,
	              sizeof(struct in6_addr)) == 0;
}

static void
copy_sources(cfg_t *cfg, struct config *conf, struct load_ctx *ctx)
{
	unsigned n = cfg_size(cfg, "source");
	char key[256];

	conf->sources = xcalloc(n ? n : 1, sizeof(*conf->sources));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "source", i);
		struct source_conf *s = &conf->sources[conf->nsources];
		const char *addr = cfg_getstr(sec, "address");
		const char *ehlo = cfg_getstr(sec, "ehlo");

		/* No address, or not an IP: reported already, the load fails. */
		if (addr == NULL || parse_ip(addr, &s->sockaddr, &s->socklen) != 0)
			continue;
		s->name = xstrdup(cfg_title(sec));
		s->address = xstrdup(addr);
		s->ehlo = xstrdup(ehlo != NULL ? ehlo : conf->delivery.helo_name);
		/* Two sources on one address would be one IP under two names: its reputation
		 * and its limits would be counted twice, each half as strict. */
		for (size_t k = 0; k < conf->nsources; k++) {
			if (!same_address(&conf->sources[k], s))
				continue;
			snprintf(key, sizeof(key), "source \"%s\"", s->name);
			error_at(ctx, key,
			         "source \"%s\".address: the same address as source \"%s\" (each "
			         "source is one local address)",
			         s->name, conf->sources[k].name);
			break;
		}
		conf->nsources++;
	}
}

static long
source_index(const struct config *conf, const char *name)
{
	for (size_t i = 0; i < conf->nsources; i++)
		if (strcmp(conf->sources[i].name, name) == 0)
			return (long)i;
	return -1;
}

static void
copy_pools(cfg_t *cfg, struct config *conf, struct load_ctx *ctx)
{
	unsigned n = cfg_size(cfg, "pool");
	char key[512];

	conf->pools = xcalloc(n ? n : 1, sizeof(*conf->pools));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "pool", i);
		unsigned m = cfg_size(sec, "source");
		struct pool_conf *p = &conf->pools[conf->npools++];

		p->name = xstrdup(cfg_title(sec));
		p->members = xcalloc(m ? m : 1, sizeof(*p->members));
		for (unsigned k = 0; k < m; k++) {
			cfg_t *ms = cfg_getnsec(sec, "source", k);
			long idx = source_index(conf, cfg_title(ms));

			if (idx < 0) {
				snprintf(key, sizeof(key), "pool \"%s\".source \"%s\"", p->name,
				         cfg_title(ms));
				error_at(ctx, key,
				         "pool \"%s\": no source \"%s\" is defined (a pool names "
				         "source sections, as in source \"a\" { address = "
				         "\"192.0.2.10\" })",
				         p->name, cfg_title(ms));
				continue;
			}
			p->members[p->nmembers].source = (size_t)idx;
			p->members[p->nmembers].weight = (unsigned)cfg_getint(ms, "weight");
			p->total_weight += p->members[p->nmembers].weight;
			p->nmembers++;
		}
	}
}

/* A pool named by key (delivery.pool, route "x".pool, ...): the name as stored, or NULL
 * (reported) when there is no such pool. */
static const char *
pool_ref(struct config *conf, struct load_ctx *ctx, const char *key, const char *name)
{
	const struct pool_conf *p = config_pool(conf, name);

	if (p == NULL && name[0] != '\0')
		error_at(ctx, key, "%s: no pool \"%s\" is defined", key, name);
	return p != NULL ? p->name : NULL;
}

void
copy_egress(cfg_t *cfg, struct config *conf, struct load_ctx *ctx)
{
	const char *name;
	char key[512];

	copy_sources(cfg, conf, ctx);
	copy_pools(cfg, conf, ctx);
	name = cfg_getstr(cfg_getsec(cfg, "delivery"), "pool");
	if (name != NULL)
		conf->delivery.pool = pool_ref(conf, ctx, "delivery.pool", name);
	for (unsigned i = 0; i < cfg_size(cfg, "route"); i++) {
		cfg_t *sec = cfg_getnsec(cfg, "route", i);
		struct route_conf *r = (struct route_conf *)config_route(conf, cfg_title(sec));

		name = cfg_getstr(sec, "pool");
		if (name == NULL || r == NULL)
			continue;
		snprintf(key, sizeof(key), "route \"%s\".pool", cfg_title(sec));
		r->pool = pool_ref(conf, ctx, key, name);
	}
	for (unsigned i = 0; i < cfg_size(cfg, "domain"); i++) {
		cfg_t *sec = cfg_getnsec(cfg, "domain", i);
		struct domain_conf *d = (struct domain_conf *)config_domain(conf, cfg_title(sec));

		name = cfg_getstr(sec, "pool");
		if (name == NULL || d == NULL)
			continue;
		snprintf(key, sizeof(key), "domain \"%s\".pool", cfg_title(sec));
		d->pool = pool_ref(conf, ctx, key, name);
	}
}

void
free_egress(struct config *conf)
{
	for (size_t i = 0; i < conf->nsources; i++) {
		free(conf->sources[i].name);
		free(conf->sources[i].address);
		free(conf->sources[i].ehlo);
	}
	free(conf->sources);
	for (size_t i = 0; i < conf->npools; i++) {
		free(conf->pools[i].name);
		free(conf->pools[i].members);
	}
	free(conf->pools);
}

const struct pool_conf *
config_pool(const struct config *conf, const char *name)
{
	if (conf == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < conf->npools; i++)
		if (strcmp(conf->pools[i].name, name) == 0)
			return &conf->pools[i];
	return NULL;
}

/* The route first, as for TLS: the operator who routes a domain through given hosts says
 * from where; then the domain's own section; then the default for all mail. */
const struct pool_conf *
config_pool_for(const struct config *conf, const char *domain)
{
	const struct route_conf *r = config_route(conf, domain);
	const struct domain_conf *d = config_domain(conf, domain);

	if (r != NULL && r->pool != NULL)
		return config_pool(conf, r->pool);
	if (d != NULL && d->pool != NULL)
		return config_pool(conf, d->pool);
	return config_pool(conf, conf->delivery.pool);
}

const struct stream_conf *
config_stream(const struct config *conf, const char *name)
{
	if (conf == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < conf->nstreams; i++)
		if (strcmp(conf->streams[i].name, name) == 0)
			return &conf->streams[i];
	return NULL;
}

const struct tenant_conf *
config_tenant(const struct config *conf, const char *name)
{
	if (conf == NULL || name == NULL)
		return NULL;
	for (size_t i = 0; i < conf->ntenants; i++)
		if (strcmp(conf->tenants[i].name, name) == 0)
			return &conf->tenants[i];
	return NULL;
}

/* The most specific choice first: what the message itself says (a rule, a trusted header),
 * then the tenant's (its reputation is its own), then the stream's (transactional apart from
 * bulk), then the destination's. A name the configuration no longer has is skipped rather
 * than holding the mail: a reload that drops a pool reroutes its queued mail. */
const struct pool_conf *
config_message_pool(const struct config *conf, const char *pool, const char *stream,
                    const char *tenant, const char *domain)
{
	const struct tenant_conf *t = config_tenant(conf, tenant);
	const struct stream_conf *s = config_stream(conf, stream != NULL ? stream : "default");
	const struct pool_conf *p;

	if ((p = config_pool(conf, pool)) != NULL)
		return p;
	if (t != NULL) {
		const char *sname = s != NULL ? s->name : "default";

		for (size_t i = 0; i < t->nstreams; i++)
			if (strcmp(t->streams[i].stream, sname) == 0 &&
			    (p = config_pool(conf, t->streams[i].pool)) != NULL)
				return p;
		if ((p = config_pool(conf, t->pool)) != NULL)
			return p;
	}
	if (s != NULL && (p = config_pool(conf, s->pool)) != NULL)
		return p;
	return config_pool_for(conf, domain);
}
