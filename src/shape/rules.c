/* rules.c - compiled rules: their lifetime, providers by name and MX host, and the layered
 * settings of a (source, provider, domain).
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

struct shape_rules *
shape_rules_ref(struct shape_rules *r)
{
	if (r != NULL)
		atomic_fetch_add(&r->refs, 1);
	return r;
}

static void
rules_free(struct shape_rules *r)
{
	for (size_t i = 0; i < r->nproviders; i++) {
		struct provider *p = &r->providers[i];

		free(p->name);
		for (size_t j = 0; j < p->nsources; j++)
			free(p->source_names[j]);
		free(p->source_names);
		free(p->sources);
		sh_strmap_free(&p->source_index);
		free(p->rules);
	}
	free(r->providers);
	for (size_t i = 0; i < r->ndomains; i++)
		free(r->domains[i].name);
	free(r->domains);
	for (size_t i = 0; i < r->nrules; i++) {
		free(r->rules[i].name);
		free(r->rules[i].domain);
		pcre2_code_free(r->rules[i].re);
	}
	free(r->rules);
	free(r->unscoped);
	for (size_t i = 0; i < r->nwarmups; i++) {
		free(r->warmups[i].name);
		free(r->warmups[i].schedule);
		free(r->warmups[i].providers);
	}
	free(r->warmups);
	for (size_t i = 0; i < r->nname_keys && i < SHAPE_NAMES_MAX; i++)
		free(r->name_keys[i]);
	free(r->name_keys);
	for (size_t i = 0; i < r->nwarmup_sources; i++)
		free(r->warmup_sources[i]);
	free(r->warmup_sources);
	sh_strmap_free(&r->provider_index);
	sh_strmap_free(&r->exact);
	sh_strmap_free(&r->suffixes);
	sh_strmap_free(&r->domain_index);
	sh_strmap_free(&r->warmup_by_source);
	for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
		free(r->base_files[f]);
		free(r->base_names[f]);
	}
	for (size_t i = 0; i < r->nfiles; i++)
		free(r->files[i]);
	free(r->files);
	pcre2_match_context_free(r->mctx);
	free(r);
}

void
shape_rules_unref(struct shape_rules *r)
{
	if (r != NULL && atomic_fetch_sub(&r->refs, 1) == 1)
		rules_free(r);
}

size_t
shape_provider_count(const struct shape_rules *r)
{
	return r->nproviders;
}

const char *
shape_provider_name(const struct shape_rules *r, size_t i)
{
	return i < r->nproviders ? r->providers[i].name : NULL;
}

size_t
shape_adaptive_count(const struct shape_rules *r)
{
	return r->nrules;
}

const char *
shape_adaptive_name(const struct shape_rules *r, size_t i, unsigned *line)
{
	if (i >= r->nrules)
		return NULL;
	if (line != NULL)
		*line = r->rules[i].line;
	return r->rules[i].name;
}

int
sh_rules_provider(const struct shape_rules *r, const char *name)
{
	if (name == NULL || *name == '\0')
		return -1;
	return sh_strmap_get(&r->provider_index, name, strlen(name));
}

int
sh_rules_dest(const struct shape_rules *r, int p, const char *domain, char *dest)
{
	size_t len;
	int d;

	dest[0] = '\0';
	if (!sh_name_lower(domain, dest, SHAPE_DEST_MAX + 1, &len)) {
		/* No usable domain: the provider's counters, or none at all. */
		if (p >= 0)
			strlcpy_s(dest, r->providers[p].name, SHAPE_DEST_MAX + 1);
		return -1;
	}
	if ((d = sh_strmap_get(&r->domain_index, dest, len)) >= 0)
		return d;
	if (p >= 0)
		strlcpy_s(dest, r->providers[p].name, SHAPE_DEST_MAX + 1);
	return -1;
}

const char *
shape_provider_of(const struct shape_rules *r, const char *domain, const char *const *mx_hosts,
                  size_t n)
{
	char name[SHAPE_DEST_MAX + 2];
	size_t len;
	int p;

	if (r == NULL)
		return NULL;
	if (sh_name_lower(domain, name, sizeof(name), &len) &&
	    (p = sh_strmap_get(&r->exact, name, len)) >= 0)
		return r->providers[p].name;
	for (size_t i = 0; mx_hosts != NULL && i < n; i++) {
		if (!sh_name_lower(mx_hosts[i], name, sizeof(name), &len))
			continue;
		/* The whole name, then from each label on: the first hit is the longest
		 * suffix, and a suffix always starts at a label ("google.com" is not a suffix
		 * of "notgoogle.com"). */
		for (size_t at = 0; at < len;) {
			const char *dot;

			if ((p = sh_strmap_get(&r->suffixes, name + at, len - at)) >= 0)
				return r->providers[p].name;
			if ((dot = memchr(name + at, '.', len - at)) == NULL)
				break;
			at = (size_t)(dot - name) + 1;
		}
	}
	return NULL;
}

void
shape_params(const struct shape_rules *r, const char *source, const char *provider,
             const char *domain, struct shape_params *out)
{
	int p = sh_rules_provider(r, provider), d;

	out->limited = out->backoff = false;
	d = sh_rules_dest(r, p, domain, out->dest);
	if (p >= 0) {
		const struct provider *pv = &r->providers[p];

		out->s = pv->merged;
		memcpy(out->origin, pv->origin, sizeof(out->origin));
		out->provider = pv->name;
	} else {
		out->s = r->base;
		memcpy(out->origin, r->base_origin, sizeof(out->origin));
		out->provider = NULL;
	}
	if (d >= 0)
		sh_layer_apply(&r->domains[d].layer, SHAPE_LAYER_DOMAIN, r->domains[d].name,
		               &out->s, out->origin);
	if (p >= 0 && source != NULL && *source != '\0') {
		const struct provider *pv = &r->providers[p];
		int j = sh_strmap_get(&pv->source_index, source, strlen(source));

		if (j >= 0)
			sh_layer_apply(&pv->sources[j], SHAPE_LAYER_SOURCE, pv->source_names[j],
			               &out->s, out->origin);
	}
	/* Layers set these apart (a provider lowers max_connections under the defaults'
	 * initial_connections): the window cannot start above its top. */
	if (out->s.initial_connections > out->s.max_connections)
		out->s.initial_connections = out->s.max_connections;
}
