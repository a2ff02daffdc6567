/* background.c - the server's own preflight: every signing domain checked at start-up and on
 * SIGHUP, in a thread with its own loop and resolver so that the SMTP and delivery loops never
 * wait for it, each problem logged as a warning naming what to publish.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "core/core.h"
#include "dns/dns.h"
#include "preflight/preflight.h"

struct preflight_background {
	const struct config *cfg;
	char **key_records, **key_errors; /* read on the starting thread (see preflight.h) */
	pthread_t thread;
	unsigned pending;
	atomic_bool finished;
};

static void
on_report(void *arg, const struct preflight_report *rep)
{
	struct preflight_background *bg = arg;

	for (size_t i = 0; i < rep->n; i++) {
		const struct preflight_finding *f = &rep->findings[i];

		if (f->verdict == PREFLIGHT_FAIL)
			log_warn("preflight %s: %s: %s%s%s", rep->domain, f->check, f->text,
			         f->fix[0] ? "; fix: " : "", f->fix);
		else
			log_info("preflight %s: %s %s: %s", rep->domain, f->check,
			         preflight_verdict_name(f->verdict), f->text);
	}
	bg->pending--;
}

/* The domains to check: each key's d= and each domain its sign_for names, once. */
static size_t
signing_domains(const struct config *cfg, const char **out, size_t max)
{
	size_t n = 0;

	for (size_t i = 0; i < cfg->ndkim_keys; i++) {
		const struct dkim_key_conf *k = &cfg->dkim_keys[i];

		for (size_t j = 0; j <= k->nsign_for; j++) {
			const char *d = j == 0 ? k->domain : k->sign_for[j - 1];
			bool seen = strcmp(d, "*") == 0;

			for (size_t m = 0; m < n && !seen; m++)
				seen = strcmp(out[m], d) == 0;
			if (!seen && n < max)
				out[n++] = d;
		}
	}
	return n;
}

static void *
background_main(void *arg)
{
	struct preflight_background *bg = arg;
	const struct delivery_conf *d = &bg->cfg->delivery;
	struct dns_options opt = {.timeout_ms = d->dns_timeout_s * 1000};
	const char *domains[64];
	struct event_base *base = event_base_new();
	struct dns_resolver *resolver;
	char err[256];
	size_t n;

	if (base == NULL)
		fatal("preflight: cannot create an event loop");
	opt.forwarders = (const char *const *)d->dns_forwarders;
	resolver = dns_resolver_new(base, &opt, err, sizeof(err));
	if (resolver == NULL) {
		log_warn("preflight: no resolver: %s", err);
		event_base_free(base);
		atomic_store(&bg->finished, true);
		return NULL;
	}
	n = signing_domains(bg->cfg, domains, nitems(domains));
	for (size_t i = 0; i < n; i++) {
		struct preflight_request req = {
		    .from = domains[i],
		    .cfg = bg->cfg,
		    .key_records = (const char *const *)bg->key_records,
		    .key_errors = (const char *const *)bg->key_errors,
		};

		bg->pending++;
		if (preflight_run(base, resolver, &req, on_report, bg, err, sizeof(err)) < 0) {
			log_warn("preflight %s: %s", domains[i], err);
			bg->pending--;
		}
	}
	while (bg->pending > 0 && event_base_loop(base, EVLOOP_ONCE) == 0)
		;
	dns_resolver_free(resolver);
	event_base_free(base);
	atomic_store(&bg->finished, true);
	return NULL;
}

static void
background_free(struct preflight_background *bg)
{
	for (size_t i = 0; i < bg->cfg->ndkim_keys; i++) {
		free(bg->key_records[i]);
		free(bg->key_errors[i]);
	}
	free(bg->key_records);
	free(bg->key_errors);
	free(bg);
}

struct preflight_background *
preflight_background_start(const struct config *cfg)
{
	struct preflight_background *bg;

	if (cfg->ndkim_keys == 0)
		return NULL;
	bg = xcalloc(1, sizeof(*bg));
	bg->cfg = cfg;
	bg->key_records = xcalloc(cfg->ndkim_keys, sizeof(*bg->key_records));
	bg->key_errors = xcalloc(cfg->ndkim_keys, sizeof(*bg->key_errors));
	for (size_t i = 0; i < cfg->ndkim_keys; i++) {
		char err[256];
		struct dkim_key *key = dkim_key_load(cfg->dkim_keys[i].key_path, err, sizeof(err));

		if (key == NULL) {
			bg->key_errors[i] = xstrdup(err);
			continue;
		}
		bg->key_records[i] = dkim_key_dns_record(key);
		dkim_key_free(key);
	}
	if (pthread_create(&bg->thread, NULL, background_main, bg) != 0) {
		log_warn("preflight: cannot start its thread");
		background_free(bg);
		return NULL;
	}
	return bg;
}

bool
preflight_background_running(struct preflight_background *bg)
{
	return bg != NULL && !atomic_load(&bg->finished);
}

void
preflight_background_wait(struct preflight_background *bg)
{
	if (bg == NULL)
		return;
	pthread_join(bg->thread, NULL);
	background_free(bg);
}
