/* conf/domain.c - per-destination settings: domain "example.com" { } sections, kept sorted
 * for a binary search, and the TLS policy that applies to a destination (route, then domain,
 * then delivery). More per-destination settings (shaping) will join the same section.
 */

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/internal.h"
#include "core/core.h"

static const char *const tls_policy_names[] = {
    [TLS_POLICY_DISABLED] = "disabled",
    [TLS_POLICY_OPPORTUNISTIC] = "opportunistic",
    [TLS_POLICY_REQUIRED] = "required",
    [TLS_POLICY_REQUIRED_VERIFY] = "required-verify",
};

enum tls_policy
tls_policy_value(const char *text)
{
	for (size_t i = 0; text != NULL && i < nitems(tls_policy_names); i++)
		if (tls_policy_names[i] != NULL && strcasecmp(text, tls_policy_names[i]) == 0)
			return (enum tls_policy)i;
	return TLS_POLICY_UNSET;
}

const char *
tls_policy_name(enum tls_policy p)
{
	return (size_t)p < nitems(tls_policy_names) ? tls_policy_names[p] : NULL;
}

static int
domain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct domain_conf *)a)->domain,
	              ((const struct domain_conf *)b)->domain);
}

void
copy_domains(cfg_t *cfg, struct config *conf)
{
	unsigned n = cfg_size(cfg, "domain");

	conf->domains = xcalloc(n ? n : 1, sizeof(*conf->domains));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "domain", i);
		struct domain_conf *d = &conf->domains[conf->ndomains];
		const char *title = cfg_title(sec);

		/* A bad title has been reported already (so has a domain given twice): the load
		 * fails. */
		if (!hostname_valid(title))
			continue;
		d->domain = xstrdup(title);
		for (char *p = d->domain; *p != '\0'; p++)
			*p = (char)tolower((unsigned char)*p);
		d->tls = tls_policy_value(cfg_getstr(sec, "tls"));
		conf->ndomains++;
	}
	qsort(conf->domains, conf->ndomains, sizeof(*conf->domains), domain_cmp);
}

void
free_domains(struct config *conf)
{
	for (size_t i = 0; i < conf->ndomains; i++)
		free(conf->domains[i].domain);
	free(conf->domains);
}

static int
domain_key_cmp(const void *key, const void *elem)
{
	return strcasecmp(key, ((const struct domain_conf *)elem)->domain);
}

const struct domain_conf *
config_domain(const struct config *conf, const char *domain)
{
	if (conf == NULL || domain == NULL || conf->ndomains == 0)
		return NULL;
	return bsearch(domain, conf->domains, conf->ndomains, sizeof(*conf->domains),
	               domain_key_cmp);
}

/* The route first: its hosts are what the connection reaches (a private relay may have no
 * certificate for its name, or must have one), so what it says about them wins. */
enum tls_policy
config_tls_policy(const struct config *conf, const char *domain)
{
	const struct route_conf *r = config_route(conf, domain);
	const struct domain_conf *d = config_domain(conf, domain);

	if (r != NULL && r->tls != TLS_POLICY_UNSET)
		return r->tls;
	if (d != NULL && d->tls != TLS_POLICY_UNSET)
		return d->tls;
	return conf->delivery.tls != TLS_POLICY_UNSET ? conf->delivery.tls
	                                              : TLS_POLICY_OPPORTUNISTIC;
}
