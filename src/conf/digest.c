/* conf/digest.c - what a reload changes: a fingerprint of every top-level setting and section.
 *
 * Each top-level option of the parsed file (a setting, or one titled section such as
 * listener "mx") is printed by libconfuse with every value it ends up with, defaults included,
 * and the text hashed. Two configurations differ where the hashes do: comments, layout,
 * include() splits and a default written out make no difference, and nothing has to be kept in
 * step with the schema. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/internal.h"

/* Top-level settings a running server cannot take over: they name what it opened or became at
 * start. The rest reloads (docs/operations.md, "Reloading"). */
static const char *const restart_only[] = {
    "threads", "user", "spool", "event_log", "webhook", "verp",
};

static uint64_t
fnv1a(const char *p, size_t n, uint64_t h)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
	return h;
}

static void
digest_add(struct config *conf, const char *key, const char *text, size_t len)
{
	struct config_digest *d;

	conf->digest = xrealloc(conf->digest, (conf->ndigest + 1) * sizeof(*conf->digest));
	d = &conf->digest[conf->ndigest++];
	d->key = xstrdup(key);
	d->hash = fnv1a(text, len, 0xcbf29ce484222325ULL);
}

void
config_digest_build(struct config *conf, cfg_t *cfg)
{
	for (cfg_opt_t *opt = cfg->opts; opt->name != NULL; opt++) {
		char *text = NULL, key[256];
		size_t len = 0;
		FILE *f;

		if (opt->type == CFGT_SEC && (opt->flags & CFGF_TITLE)) {
			for (unsigned i = 0; i < cfg_opt_size(opt); i++) {
				cfg_t *sec = cfg_opt_getnsec(opt, i);

				f = open_memstream(&text, &len);
				if (f == NULL)
					fatal("out of memory");
				cfg_print(sec, f);
				fclose(f);
				snprintf(key, sizeof(key), "%s \"%s\"", opt->name, cfg_title(sec));
				digest_add(conf, key, text, len);
				free(text);
				text = NULL;
			}
			continue;
		}
		f = open_memstream(&text, &len);
		if (f == NULL)
			fatal("out of memory");
		cfg_opt_print(opt, f);
		fclose(f);
		digest_add(conf, opt->name, text, len);
		free(text);
	}
}

void
config_digest_free(struct config *conf)
{
	for (size_t i = 0; i < conf->ndigest; i++)
		free(conf->digest[i].key);
	free(conf->digest);
}

static const struct config_digest *
digest_find(const struct config *conf, const char *key)
{
	for (size_t i = 0; i < conf->ndigest; i++)
		if (strcmp(conf->digest[i].key, key) == 0)
			return &conf->digest[i];
	return NULL;
}

/* key is the setting name, or one of its titled sections ("name \"title\""). */
static bool
key_is(const char *key, const char *name)
{
	size_t n = strlen(name);

	return strncmp(key, name, n) == 0 && (key[n] == '\0' || key[n] == ' ');
}

bool
config_same_settings(const struct config *a, const struct config *b, const char *name)
{
	size_t na = 0, nb = 0;

	for (size_t i = 0; i < a->ndigest; i++) {
		const struct config_digest *d = &a->digest[i], *o;

		if (!key_is(d->key, name))
			continue;
		na++;
		if ((o = digest_find(b, d->key)) == NULL || o->hash != d->hash)
			return false;
	}
	for (size_t i = 0; i < b->ndigest; i++)
		nb += key_is(b->digest[i].key, name);
	return na == nb;
}

static bool
needs_restart(const char *key)
{
	size_t n = strcspn(key, " ");

	for (size_t i = 0; i < nitems(restart_only); i++)
		if (strlen(restart_only[i]) == n && strncmp(key, restart_only[i], n) == 0)
			return true;
	return false;
}

static bool
same_string(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool
same_list(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (!same_string(a[i], b[i]))
			return false;
	return true;
}

size_t
config_changes(const struct config *old, const struct config *new, config_change_fn *fn, void *arg)
{
	size_t n = 0;

	for (size_t i = 0; i < new->ndigest; i++) {
		const struct config_digest *d = &new->digest[i], *o = digest_find(old, d->key);

		if (o != NULL && o->hash == d->hash)
			continue;
		fn(arg, d->key, o == NULL ? CONFIG_ADDED : CONFIG_CHANGED, needs_restart(d->key));
		n++;
	}
	for (size_t i = 0; i < old->ndigest; i++) {
		if (digest_find(new, old->digest[i].key) != NULL)
			continue;
		fn(arg, old->digest[i].key, CONFIG_REMOVED, needs_restart(old->digest[i].key));
		n++;
	}
	/* Inside sections that otherwise reload, the settings only a restart takes. */
	if (!same_string(old->control.address, new->control.address)) {
		fn(arg, "control.address", CONFIG_CHANGED, true);
		n++;
	}
	if (!same_string(old->suppression.directory, new->suppression.directory)) {
		fn(arg, "suppression.directory", CONFIG_CHANGED, true);
		n++;
	}
	if (old->delivery.enabled != new->delivery.enabled) {
		fn(arg, "delivery.enabled", CONFIG_CHANGED, true);
		n++;
	}
	if (old->delivery.dns_timeout_s != new->delivery.dns_timeout_s ||
	    !same_list(old->delivery.dns_forwarders, old->delivery.ndns_forwarders,
	               new->delivery.dns_forwarders, new->delivery.ndns_forwarders)) {
		fn(arg, "delivery.dns_forwarders, delivery.dns_timeout", CONFIG_CHANGED, true);
		n++;
	}
	if ((old->delivery.shaping != NULL && strcmp(old->delivery.shaping, "none") == 0) !=
	    (new->delivery.shaping != NULL &&strcmp(new->delivery.shaping, "none") == 0)) {
		fn(arg, "delivery.shaping (on or off)", CONFIG_CHANGED, true);
		n++;
	}
	if (old->auth.failures_max != new->auth.failures_max ||
	    old->auth.failure_window_s != new->auth.failure_window_s ||
	    old->auth.block_s != new->auth.block_s) {
		fn(arg, "auth.failures_max, auth.failure_window, auth.block_time", CONFIG_CHANGED,
		   true);
		n++;
	}
	return n;
}
