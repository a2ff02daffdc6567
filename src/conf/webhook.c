/* conf/webhook.c - webhook "name" { } sections: where event records are POSTed, which ones,
 * how they are batched and retried, how much backlog they may keep (docs/webhooks.md).
 *
 * Values are checked while libconfuse reads them (so errors name file:line); the numbers go
 * through the schema's table like every other numeric setting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/defaults.h"
#include "conf/internal.h"
#include "core/core.h"

#define WEBHOOK_URL_MAX    2048
#define WEBHOOK_HEADER_MAX 1024

/* The record types Drover writes (docs/operations.md, "Event log records"). A name not
 * among them is allowed, since new types come with new features, but warned about: a typo
 * would otherwise send nothing, silently. */
static const char *const known_types[] = {
    "Reception", "Rejection",        "Suppressed",       "Authentication",
    "Delivery",  "TransientFailure", "Bounce",           "Expiration",
    "DsnQueued", "DelayNotice",      "SourceDown",       "AsyncBounce",
    "Feedback",  "WebhookFailing",   "WebhookRecovered", "AdaptiveAction",
};

/* http:// or https://, a host, an optional port; no spaces or control characters (curl
 * would send them as they are). Syntax only: the name is resolved when records go out. */
static int
url_check(const char *url, const char **why)
{
	const char *p, *host, *end, *at, *colon;
	size_t n = strlen(url);

	*why = "expected an http:// or https:// URL, as in "
	       "\"https://hooks.example.com/drover\"";
	if (strncasecmp(url, "http://", 7) == 0)
		p = url + 7;
	else if (strncasecmp(url, "https://", 8) == 0)
		p = url + 8;
	else
		return -1;
	if (n > WEBHOOK_URL_MAX) {
		*why = "longer than 2048 octets";
		return -1;
	}
	for (const char *c = url; *c != '\0'; c++) {
		if ((unsigned char)*c <= 0x20 || (unsigned char)*c >= 0x7f) {
			*why = "spaces, control characters and non-ASCII must be percent-encoded";
			return -1;
		}
	}
	end = p + strcspn(p, "/?#");
	at = memrchr(p, '@', (size_t)(end - p));
	host = at != NULL ? at + 1 : p;
	if (host == end) {
		*why = "no host, as in \"https://hooks.example.com/drover\"";
		return -1;
	}
	if (*host == '[') { /* an IPv6 literal */
		const char *close = memchr(host, ']', (size_t)(end - host));

		if (close == NULL || close == host + 1) {
			*why = "an IPv6 address needs its brackets closed, as in "
			       "\"http://[::1]:8080/\"";
			return -1;
		}
		colon = close + 1 < end ? close + 1 : NULL;
		if (colon != NULL && *colon != ':') {
			*why = "expected ':' and a port after the IPv6 address";
			return -1;
		}
	} else {
		colon = memchr(host, ':', (size_t)(end - host));
		if (colon == host) {
			*why = "no host, as in \"https://hooks.example.com/drover\"";
			return -1;
		}
	}
	if (colon != NULL) {
		unsigned long port = 0;
		const char *d = colon + 1;

		if (d == end) {
			*why = "no port after ':'";
			return -1;
		}
		for (; d < end; d++) {
			if (*d < '0' || *d > '9' ||
			    (port = port * 10 + (unsigned)(*d - '0')) > 65535) {
				*why = "the port must be a number from 1 to 65535";
				return -1;
			}
		}
		if (port == 0) {
			*why = "the port must be a number from 1 to 65535";
			return -1;
		}
	}
	return 0;
}

static int
on_url(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	const char *why;
	char v[128];

	*(const char **)result = value;
	if (url_check(value, &why) != 0)
		schema_report(cfg, "webhook \"%s\".url: \"%s\": %s", cfg->title ? cfg->title : "",
		              schema_shown(value, v, sizeof(v)), why);
	return 0;
}

static int
on_event(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	const char *title = cfg->title ? cfg->title : "", *file;
	size_t n = strlen(value);
	char v[128];
	int line;

	*(const char **)result = value;
	if (n == 0 || n > 64 ||
	    strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != n) {
		schema_report(cfg,
		              "webhook \"%s\".events: \"%s\": a record type is a name of letters, "
		              "digits and '_', as in \"Delivery\"",
		              title, schema_shown(value, v, sizeof(v)));
		return 0;
	}
	for (size_t i = 0; i < nitems(known_types); i++)
		if (strcmp(value, known_types[i]) == 0)
			return 0;
	schema_locate(cfg, &file, &line);
	if (file != NULL)
		log_warn("%s:%d: webhook \"%s\".events: \"%s\": Drover writes no record of that "
		         "type (yet); names are case-sensitive, as in \"Delivery\"",
		         file, line, title, schema_shown(value, v, sizeof(v)));
	return 0;
}

/* "Name: value". Content-Length and Transfer-Encoding would contradict the body curl sends. */
static int
on_header(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	const char *title = cfg->title ? cfg->title : "";
	size_t name = strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "0123456789!#$%&'*+-.^_`|~");
	char v[128];
	bool ok =
	    name > 0 && name <= 64 && value[name] == ':' && strlen(value) <= WEBHOOK_HEADER_MAX;

	*(const char **)result = value;
	for (const char *p = value + name; ok && *p != '\0'; p++)
		ok = (*p >= 0x20 && *p < 0x7f) || *p == '\t';
	if (!ok) {
		schema_report(
		    cfg,
		    "webhook \"%s\".header: \"%s\": expected \"Name: value\" (a field name, "
		    "':', printable text), as in \"Authorization: Bearer abc\"",
		    title, schema_shown(value, v, sizeof(v)));
		return 0;
	}
	if ((name == 14 && strncasecmp(value, "Content-Length", 14) == 0) ||
	    (name == 17 && strncasecmp(value, "Transfer-Encoding", 17) == 0))
		schema_report(cfg,
		              "webhook \"%s\".header: \"%.*s\" is set by Drover for each request's "
		              "body",
		              title, (int)name, value);
	return 0;
}

static int
on_ca_file(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	*(const char **)result = value;
	if (*value == '\0')
		schema_report(cfg,
		              "webhook \"%s\".tls_ca_file: must not be empty (leave it out for the "
		              "system's CA certificates)",
		              cfg->title ? cfg->title : "");
	return 0;
}

cfg_opt_t webhook_opts[] = {
    CFG_STR_CB("url", NULL, CFGF_NODEFAULT, on_url),
    CFG_STR_LIST_CB("events", NULL, CFGF_NONE, on_event),
    CFG_INT_CB("batch_max", DEF_WEBHOOK_BATCH_MAX, CFGF_NONE, schema_on_number),
    CFG_INT_CB("batch_wait", DEF_WEBHOOK_BATCH_WAIT, CFGF_NONE, schema_on_number),
    CFG_INT_CB("timeout", DEF_WEBHOOK_TIMEOUT, CFGF_NONE, schema_on_number),
    CFG_INT_CB("retry_max", DEF_WEBHOOK_RETRY_MAX, CFGF_NONE, schema_on_number),
    CFG_INT_CB("backlog_max", DEF_WEBHOOK_BACKLOG_MAX, CFGF_NONE, schema_on_number),
    CFG_STR_LIST_CB("header", NULL, CFGF_NONE, on_header),
    CFG_STR_CB("tls_ca_file", NULL, CFGF_NODEFAULT, on_ca_file),
    CFG_END(),
};

/* After a webhook section is read (cfg is the top level, the section the last one). */
int
on_webhook_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	char v[128];

	if (sec == NULL)
		return 0;
	/* The title names a directory of the backlog and a label of the metrics. */
	if (!schema_title_valid(sec->title))
		schema_report(
		    cfg,
		    "webhook \"%s\": the title must be 1 to 64 letters, digits, '-', '_' or "
		    "'.'",
		    schema_shown(sec->title, v, sizeof(v)));
	else if (sec->title[0] == '.')
		schema_report(cfg, "webhook \"%s\": the title must not start with '.'",
		              schema_shown(sec->title, v, sizeof(v)));
	if (cfg_getstr(sec, "url") == NULL)
		schema_report(cfg,
		              "webhook \"%s\".url: required, as in url = "
		              "\"https://hooks.example.com/drover\"",
		              schema_shown(sec->title, v, sizeof(v)));
	return 0;
}

void
copy_webhooks(cfg_t *cfg, struct config *conf)
{
	unsigned n = cfg_size(cfg, "webhook");

	conf->webhooks = xcalloc(n ? n : 1, sizeof(*conf->webhooks));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "webhook", i);
		struct webhook_conf *w = &conf->webhooks[conf->nwebhooks];
		const char *ca = cfg_getstr(sec, "tls_ca_file");

		/* No url: reported already; the load fails. */
		if (cfg_getstr(sec, "url") == NULL)
			continue;
		w->name = xstrdup(cfg_title(sec));
		w->url = xstrdup(cfg_getstr(sec, "url"));
		w->events = copy_list(sec, "events", &w->nevents);
		w->batch_max = (unsigned)cfg_getint(sec, "batch_max");
		w->batch_wait_s = (uint64_t)cfg_getint(sec, "batch_wait");
		w->timeout_s = (uint64_t)cfg_getint(sec, "timeout");
		w->retry_max_s = (uint64_t)cfg_getint(sec, "retry_max");
		w->backlog_max = (uint64_t)cfg_getint(sec, "backlog_max");
		w->headers = copy_list(sec, "header", &w->nheaders);
		w->tls_ca_file = ca != NULL ? xstrdup(ca) : NULL;
		conf->nwebhooks++;
	}
}

void
free_webhooks(struct config *conf)
{
	for (size_t i = 0; i < conf->nwebhooks; i++) {
		struct webhook_conf *w = &conf->webhooks[i];

		free(w->name);
		free(w->url);
		free_list(w->events, w->nevents);
		free_list(w->headers, w->nheaders);
		free(w->tls_ca_file);
	}
	free(conf->webhooks);
	conf->webhooks = NULL;
	conf->nwebhooks = 0;
}
