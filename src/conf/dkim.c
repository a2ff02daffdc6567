/* conf/dkim.c - the DKIM signing settings (dkim { } and dkim_key "name" { }) and the
 * listener's authentication settings: their small parsers and the copy into struct config.
 *
 * Keys are only named here: reading them needs OpenSSL, which is the auth component's, so
 * the server and check-config read them after config_load() (ingress/signing.c) and report a
 * bad key at the file:line kept in dkim_key_conf.where.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/defaults.h"
#include "conf/internal.h"
#include "core/core.h"

int
canonicalization_parse(const char *text, bool *header_relaxed, bool *body_relaxed)
{
	const char *slash = strchr(text, '/');
	size_t hlen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	const char *body = slash != NULL ? slash + 1 : "simple";

	/* RFC 6376 §3.5 c=: a missing body algorithm is "simple". */
	if (hlen == 6 && strncasecmp(text, "simple", 6) == 0)
		*header_relaxed = false;
	else if (hlen == 7 && strncasecmp(text, "relaxed", 7) == 0)
		*header_relaxed = true;
	else
		return -1;
	if (strcasecmp(body, "simple") == 0)
		*body_relaxed = false;
	else if (strcasecmp(body, "relaxed") == 0)
		*body_relaxed = true;
	else
		return -1;
	return 0;
}

unsigned
verify_value(const char *text)
{
	if (strcasecmp(text, "spf") == 0)
		return VERIFY_SPF;
	if (strcasecmp(text, "dkim") == 0)
		return VERIFY_DKIM;
	if (strcasecmp(text, "dmarc") == 0)
		return VERIFY_DMARC;
	return 0;
}

int
key_error_policy_value(const char *text)
{
	if (strcasecmp(text, "defer") == 0)
		return DKIM_KEY_ERROR_DEFER;
	if (strcasecmp(text, "unsigned") == 0)
		return DKIM_KEY_ERROR_UNSIGNED;
	return -1;
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

void
copy_dkim(cfg_t *cfg, struct config *conf, const struct load_ctx *ctx)
{
	unsigned n = cfg_size(cfg, "dkim_key");
	int policy = key_error_policy_value(cfg_getstr(cfg_getsec(cfg, "dkim"), "on_key_error"));

	conf->dkim_on_key_error =
	    policy < 0 ? DKIM_KEY_ERROR_DEFER : (enum dkim_key_error_policy)policy;
	conf->dkim_keys = xcalloc(n ? n : 1, sizeof(*conf->dkim_keys));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "dkim_key", i);
		struct dkim_key_conf *k = &conf->dkim_keys[conf->ndkim_keys];
		const char *domain = cfg_getstr(sec, "domain");
		const char *selector = cfg_getstr(sec, "selector");
		const char *key = cfg_getstr(sec, "key");

		if (domain == NULL || selector == NULL || key == NULL)
			continue; /* reported while parsing */
		k->name = xstrdup(cfg_title(sec));
		k->domain = xstrdup(domain);
		lower(k->domain);
		k->selector = xstrdup(selector);
		k->key_path = xstrdup(key);
		k->where = NULL;
		for (size_t j = 0; j < ctx->nkeys; j++)
			if (strcmp(ctx->keys[j].title, k->name) == 0)
				k->where = xstrdup(ctx->keys[j].where);
		if (k->where == NULL)
			k->where = xasprintf("dkim_key \"%s\"", k->name);
		if (cfg_size(sec, "sign_for") > 0) {
			k->sign_for = copy_list(sec, "sign_for", &k->nsign_for);
			for (size_t j = 0; j < k->nsign_for; j++)
				lower(k->sign_for[j]);
		} else {
			k->sign_for = xcalloc(2, sizeof(*k->sign_for));
			k->sign_for[0] = xstrdup(k->domain);
			k->nsign_for = 1;
		}
		k->fallback = cfg_getbool(sec, "fallback") == cfg_true;
		if (canonicalization_parse(cfg_getstr(sec, "canonicalization"), &k->header_relaxed,
		                           &k->body_relaxed) != 0)
			k->header_relaxed = k->body_relaxed = true; /* reported while parsing */
		if (cfg_size(sec, "headers") > 0)
			k->headers = copy_list(sec, "headers", &k->nheaders);
		k->expire_s = (uint64_t)cfg_getint(sec, "expire");
		conf->ndkim_keys++;
	}
}

void
free_dkim(struct config *conf)
{
	for (size_t i = 0; i < conf->ndkim_keys; i++) {
		struct dkim_key_conf *k = &conf->dkim_keys[i];

		free(k->name);
		free(k->domain);
		free(k->selector);
		free(k->key_path);
		free(k->where);
		free_list(k->sign_for, k->nsign_for);
		free_list(k->headers, k->nheaders);
	}
	free(conf->dkim_keys);
}

bool
config_dkim_key_covers(const struct dkim_key_conf *kc, const char *from_domain)
{
	size_t flen = strlen(from_domain);

	for (size_t i = 0; i < kc->nsign_for; i++) {
		const char *d = kc->sign_for[i];
		size_t dlen = strlen(d);

		if (strcmp(d, "*") == 0 || strcmp(d, from_domain) == 0)
			return true;
		if (flen > dlen && from_domain[flen - dlen - 1] == '.' &&
		    strcmp(from_domain + flen - dlen, d) == 0)
			return true;
	}
	return false;
}

size_t
config_dkim_keys_for(const struct config *cfg, const char *from_domain, size_t *out, size_t max)
{
	size_t n = 0;

	for (int fallback = 0; fallback <= 1 && n == 0; fallback++) {
		for (size_t i = 0; i < cfg->ndkim_keys; i++) {
			const struct dkim_key_conf *kc = &cfg->dkim_keys[i];

			if (kc->fallback != (fallback == 1) ||
			    !config_dkim_key_covers(kc, from_domain))
				continue;
			if (n < max)
				out[n] = i;
			n++;
		}
	}
	return n;
}
