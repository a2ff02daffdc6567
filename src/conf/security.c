/* conf/security.c - the settings of TLS (tls { }, tls_certificate "name" { }), of AUTH and
 * its limits (auth { }), and of the listener roles: small parsers and the copy into struct
 * config.
 *
 * Certificates and the users file are only named here: reading them needs OpenSSL and
 * libxcrypt, so the server and check-config read them after config_load() and report a bad
 * file at the file:line kept beside it.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/defaults.h"
#include "conf/internal.h"
#include "core/core.h"

int
rate_parse_why(const char *text, struct rate_conf *out, const char **why)
{
	static const struct {
		char unit;
		uint64_t s;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
	const char *slash = strchr(text, '/');
	uint64_t n = 0;
	const char *p;

	*why = "expected a count per period, as in \"1000/h\" (s, m, h or d), or \"0\" for no "
	       "limit";
	for (p = text; *p >= '0' && *p <= '9'; p++) {
		if (n > UINT64_MAX / 10 - 10)
			return -1;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	if (p == text)
		return -1;
	if (*p == '\0' && n == 0) {
		*out = (struct rate_conf){0, 0};
		return 0;
	}
	if (slash != p || slash[1] == '\0' || slash[2] != '\0')
		return -1;
	for (size_t i = 0; i < nitems(units); i++) {
		if (slash[1] == units[i].unit) {
			*out = (struct rate_conf){n, units[i].s};
			return 0;
		}
	}
	return -1;
}

int
role_value(const char *text)
{
	if (strcasecmp(text, "mx") == 0 || strcasecmp(text, "relay") == 0)
		return ROLE_MX;
	if (strcasecmp(text, "submission") == 0)
		return ROLE_SUBMISSION;
	if (strcasecmp(text, "submissions") == 0)
		return ROLE_SUBMISSIONS;
	if (strcasecmp(text, "bounce") == 0)
		return ROLE_BOUNCE;
	return -1;
}

unsigned
tls_version_value(const char *text)
{
	if (strcasecmp(text, "TLSv1.2") == 0)
		return 0x0303;
	if (strcasecmp(text, "TLSv1.3") == 0)
		return 0x0304;
	return 0;
}

static const char *
where_of(const struct seen_key *seen, size_t n, const char *title)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(seen[i].title, title) == 0)
			return seen[i].where;
	return NULL;
}

static void
copy_rate(cfg_t *sec, const char *name, struct rate_conf *out)
{
	const char *why;

	if (rate_parse_why(cfg_getstr(sec, name), out, &why) != 0)
		*out = (struct rate_conf){0, 0}; /* reported while parsing */
}

/* control { }: an address other than loopback needs a token (checked in load.c). */
static void
copy_control(cfg_t *sec, struct config *conf)
{
	const char *address = cfg_getstr(sec, "address"), *token = cfg_getstr(sec, "token");
	const char *why;

	conf->control.address = xstrdup(address);
	if (address[0] != '\0' && listen_address_parse(address, &conf->control.sockaddr,
	                                               &conf->control.socklen, &why) != 0)
		conf->control.address[0] = '\0'; /* reported while parsing */
	conf->control.token = token[0] != '\0' ? xstrdup(token) : NULL;
	conf->control.max_request_size = (uint64_t)cfg_getint(sec, "max_request_size");
}

void
copy_security(cfg_t *cfg, struct config *conf, const struct load_ctx *ctx)
{
	cfg_t *tls = cfg_getsec(cfg, "tls"), *auth = cfg_getsec(cfg, "auth");
	unsigned n = cfg_size(cfg, "tls_certificate");
	const char *ciphers = cfg_getstr(tls, "ciphers");
	const char *users = cfg_getstr(auth, "users_file");

	conf->tls_min_version = tls_version_value(cfg_getstr(tls, "min_version"));
	if (conf->tls_min_version == 0)
		conf->tls_min_version = 0x0303; /* reported while parsing */
	conf->tls_ciphers = ciphers != NULL && ciphers[0] != '\0' ? xstrdup(ciphers) : NULL;
	conf->tls_certificates = xcalloc(n ? n : 1, sizeof(*conf->tls_certificates));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "tls_certificate", i);
		struct tls_certificate_conf *c = &conf->tls_certificates[conf->ntls_certificates];
		const char *cert = cfg_getstr(sec, "certificate"), *key = cfg_getstr(sec, "key");
		const char *where = where_of(ctx->certs, ctx->ncerts, cfg_title(sec));

		if (cert == NULL || key == NULL)
			continue; /* reported while parsing */
		c->name = xstrdup(cfg_title(sec));
		c->certificate = xstrdup(cert);
		c->key = xstrdup(key);
		c->where =
		    where != NULL ? xstrdup(where) : xasprintf("tls_certificate \"%s\"", c->name);
		conf->ntls_certificates++;
	}
	if (users != NULL && users[0] != '\0') {
		conf->auth.users_file = xstrdup(users);
		conf->auth.users_where =
		    xstrdup(ctx->users_where != NULL ? ctx->users_where : "auth.users_file");
	}
	conf->auth.failures_max = (unsigned)cfg_getint(auth, "failures_max");
	conf->auth.failure_window_s = (uint64_t)cfg_getint(auth, "failure_window");
	conf->auth.block_s = (uint64_t)cfg_getint(auth, "block_time");
	copy_rate(auth, "user_rate", &conf->auth.user_rate);
	copy_rate(auth, "client_rate", &conf->auth.client_rate);
	copy_control(cfg_getsec(cfg, "control"), conf);
	{
		cfg_t *sup = cfg_getsec(cfg, "suppression");
		const char *dir = cfg_getstr(sup, "directory"),
		           *at = cfg_getstr(sup, "at_reception");

		conf->suppression.directory =
		    dir[0] != '\0' ? xstrdup(dir) : xasprintf("%s/suppress", conf->spool_directory);
		conf->suppression.at_reception = strcmp(at, "drop") == 0  ? SUPPRESSION_DROP
		                                 : strcmp(at, "off") == 0 ? SUPPRESSION_OFF
		                                                          : SUPPRESSION_REFUSE;
	}
}

void
free_security(struct config *conf)
{
	for (size_t i = 0; i < conf->ntls_certificates; i++) {
		free(conf->tls_certificates[i].name);
		free(conf->tls_certificates[i].certificate);
		free(conf->tls_certificates[i].key);
		free(conf->tls_certificates[i].where);
	}
	free(conf->tls_certificates);
	free(conf->tls_ciphers);
	free(conf->auth.users_file);
	free(conf->auth.users_where);
	free(conf->suppression.directory);
	free(conf->control.address);
	free(conf->control.token);
}
