/* webhook.c - the webhooks of a running server: their backlogs, the event log's tap that fills
 * them, their senders, their counters.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "core/core.h"
#include "webhook/internal.h"
#include "webhook/webhook.h"

/* A CA file is a few hundred kilobytes at most (the whole Mozilla bundle is ~220 KB). */
#define CA_FILE_MAX (16 * 1024 * 1024)
/* Records the tap hands a backlog at once. */
#define TAP_CHUNK 256

struct webhooks {
	struct webhook **hooks;
	size_t n;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_status;

static void
curl_init(void)
{
	curl_status = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* Read now, while the server may be root: the file need not be readable by its user. */
static char *
read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *buf;
	size_t got = 0;

	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CA_FILE_MAX) {
		snprintf(err, errlen, "%s: not a file of PEM certificates (at most 16 MB)", path);
		close(fd);
		return NULL;
	}
	buf = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	*len = got;
	return buf;
}

static void
webhook_free(struct webhook *w)
{
	if (w == NULL)
		return;
	backlog_close(w->backlog);
	if (w->multi != NULL)
		curl_multi_cleanup(w->multi);
	curl_slist_free_all(w->headers);
	for (size_t i = 0; i < w->nevents; i++)
		free(w->events[i]);
	free(w->events);
	free(w->ca_blob);
	free(w->name);
	free(w->url);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

static struct webhook *
webhook_new(const struct webhook_conf *wc, const char *dir, struct eventlog *log,
            const struct run_user *owner, char *err, size_t errlen)
{
	struct webhook *w = xcalloc(1, sizeof(*w));
	pthread_condattr_t ca;
	char why[512], *path;

	w->name = xstrdup(wc->name);
	w->url = xstrdup(wc->url);
	w->events = xcalloc(wc->nevents + 1, sizeof(char *));
	for (size_t i = 0; i < wc->nevents; i++)
		w->events[w->nevents++] = xstrdup(wc->events[i]);
	w->batch_max = wc->batch_max;
	w->batch_wait_us = wc->batch_wait_s * USEC;
	w->timeout_ms = wc->timeout_s * 1000;
	w->retry_max_us = wc->retry_max_s * USEC;
	w->log = log;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->wake, &ca);
	pthread_condattr_destroy(&ca);

	/* "Expect:" off: curl would wait for a 100 Continue before a large body. */
	w->headers = curl_slist_append(w->headers, "Content-Type: application/json");
	w->headers = curl_slist_append(w->headers, "Expect:");
	for (size_t i = 0; i < wc->nheaders; i++)
		w->headers = curl_slist_append(w->headers, wc->headers[i]);
	if (wc->tls_ca_file != NULL) {
		w->ca_blob = read_file(wc->tls_ca_file, &w->ca_len, why, sizeof(why));
		if (w->ca_blob == NULL) {
			snprintf(err, errlen, "webhook \"%s\": tls_ca_file %s", wc->name, why);
			webhook_free(w);
			return NULL;
		}
	}
	w->multi = curl_multi_init();
	if (w->headers == NULL || w->multi == NULL) {
		snprintf(err, errlen, "webhook \"%s\": cannot set up curl", wc->name);
		webhook_free(w);
		return NULL;
	}
	path = xasprintf("%s/%s", dir, wc->name);
	w->backlog = backlog_open(path, owner, wc->backlog_max, why, sizeof(why));
	free(path);
	if (w->backlog == NULL) {
		snprintf(err, errlen, "webhook \"%s\": backlog %s", wc->name, why);
		webhook_free(w);
		return NULL;
	}
	return w;
}

/* ---- The tap: on the event log's writer thread ---- */

/* The "webhook" member of a record about a webhook; those are rare, so parsing is cheap. */
static bool
names_webhook(const struct eventlog_record *r, const char *name)
{
	json_t *o = json_loadb(r->line, r->len, 0, NULL);
	const char *v = json_string_value(json_object_get(o, "webhook"));
	bool same = v != NULL && strcmp(v, name) == 0;

	json_decref(o);
	return same;
}

/* Records about webhooks go only where they are asked for by name, and never to the webhook
 * they are about: a failing receiver would otherwise be sent news of its own failure, which
 * fails, which is news. */
static bool
wanted(const struct webhook *w, const struct eventlog_record *r)
{
	bool about_webhooks = strncmp(r->type, "Webhook", 7) == 0;
	size_t i;

	if (w->nevents == 0)
		return !about_webhooks;
	for (i = 0; i < w->nevents && strcmp(w->events[i], r->type) != 0; i++)
		;
	if (i == w->nevents)
		return false;
	return !about_webhooks || !names_webhook(r, w->name);
}

static void
tap(void *arg, const struct eventlog_record *recs, size_t n)
{
	struct webhooks *ws = arg;
	struct backlog_item items[TAP_CHUNK];

	for (size_t h = 0; h < ws->n; h++) {
		struct webhook *w = ws->hooks[h];
		size_t k = 0, added = 0;

		for (size_t i = 0; i < n; i++) {
			if (!wanted(w, &recs[i]))
				continue;
			items[k++] = (struct backlog_item){recs[i].line, recs[i].len};
			if (k == TAP_CHUNK) {
				added += backlog_append(w->backlog, items, k);
				k = 0;
			}
		}
		if (k > 0)
			added += backlog_append(w->backlog, items, k);
		if (added > 0)
			webhook_notify(w);
	}
}

/* ---- The server's side ---- */

struct webhooks *
webhooks_open(const struct config *cfg, struct eventlog *log, const struct run_user *owner,
              char *err, size_t errlen)
{
	struct webhooks *ws;
	char *dir;

	if (errlen > 0)
		err[0] = '\0';
	if (cfg->nwebhooks == 0)
		return NULL;
	pthread_once(&curl_once, curl_init);
	if (curl_status != CURLE_OK) {
		snprintf(err, errlen, "webhooks: curl_global_init: %s",
		         curl_easy_strerror(curl_status));
		return NULL;
	}
	dir = xasprintf("%s/webhooks", cfg->spool_directory);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "webhooks: %s: %s", dir, strerror(errno));
		free(dir);
		return NULL;
	}
	ws = xcalloc(1, sizeof(*ws));
	ws->hooks = xcalloc(cfg->nwebhooks, sizeof(*ws->hooks));
	for (size_t i = 0; i < cfg->nwebhooks; i++) {
		struct webhook *w = webhook_new(&cfg->webhooks[i], dir, log, owner, err, errlen);

		if (w == NULL) {
			free(dir);
			webhooks_close(ws);
			return NULL;
		}
		ws->hooks[ws->n++] = w;
	}
	free(dir);
	if (eventlog_add_tap(log, tap, ws) < 0) {
		snprintf(err, errlen, "webhooks: the event log takes no more taps");
		webhooks_close(ws);
		return NULL;
	}
	for (size_t i = 0; i < ws->n; i++) {
		struct backlog_stats st;

		backlog_stats(ws->hooks[i]->backlog, &st);
		/* Not the URL: it may hold a password. */
		log_info("webhook %s: %llu records in the backlog", ws->hooks[i]->name,
		         (unsigned long long)st.records);
	}
	return ws;
}

void
webhooks_run(struct webhooks *ws)
{
	if (ws == NULL)
		return;
	for (size_t i = 0; i < ws->n; i++) {
		struct webhook *w = ws->hooks[i];

		if (pthread_create(&w->thread, NULL, webhook_sender, w) != 0)
			fatal("webhook %s: cannot start a thread", w->name);
		w->started = true;
	}
}

void
webhooks_stop(struct webhooks *ws)
{
	if (ws == NULL)
		return;
	for (size_t i = 0; i < ws->n; i++) {
		struct webhook *w = ws->hooks[i];

		pthread_mutex_lock(&w->mu);
		w->stopping = true;
		pthread_cond_signal(&w->wake);
		pthread_mutex_unlock(&w->mu);
		curl_multi_wakeup(w->multi); /* a request in flight: abort it */
	}
	for (size_t i = 0; i < ws->n; i++) {
		struct webhook *w = ws->hooks[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		w->started = false;
	}
}

void
webhooks_close(struct webhooks *ws)
{
	if (ws == NULL)
		return;
	webhooks_stop(ws);
	for (size_t i = 0; i < ws->n; i++)
		webhook_free(ws->hooks[i]);
	free(ws->hooks);
	free(ws);
}

size_t
webhooks_count(const struct webhooks *ws)
{
	return ws != NULL ? ws->n : 0;
}

void
webhooks_stats(struct webhooks *ws, size_t i, struct webhook_stats *st)
{
	struct webhook *w = ws->hooks[i];
	struct backlog_stats bs;

	backlog_stats(w->backlog, &bs);
	*st = (struct webhook_stats){
	    .name = w->name,
	    .records_sent = atomic_load(&w->records_sent),
	    .batches_sent = atomic_load(&w->batches_sent),
	    .batches_failed = atomic_load(&w->batches_failed),
	    .records_dropped = bs.dropped,
	    .records_damaged = bs.damaged,
	    .backlog_bytes = bs.bytes,
	    .backlog_records = bs.records,
	    .failing = atomic_load(&w->failing),
	};
}
