/* sender.c - a webhook's thread: waits for a batch, POSTs it, retries it until a 2xx.
 *
 * One request at a time, so the receiver gets records in the order they were written; the
 * batch of a failed request is kept (in memory, bounded by WEBHOOK_BODY_MAX) and sent again
 * as it was, after a backoff that doubles from 1 s up to retry_max. The thread waits on a
 * condition variable for records and for the backoff, and in curl_multi_poll() during a
 * request, so that a stop (webhooks_stop) wakes it at once and aborts a request in flight.
 *
 * An endpoint that starts failing gets one WebhookFailing record (and a warning), not one per
 * retry; when it answers 2xx again, one WebhookRecovered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/core.h"
#include "webhook/internal.h"

/* A request that cannot be sent again after a stop is aborted; curl_multi_poll() also returns
 * at least this often, so a lost wake-up costs at most this long. */
#define POLL_MS 1000

enum post_result { POST_OK, POST_FAILED, POST_STOPPED };

static void
abstime_in(uint64_t us, struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(us / USEC);
	ts->tv_nsec += (long)(us % USEC) * 1000;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

void
webhook_notify(struct webhook *w)
{
	pthread_mutex_lock(&w->mu);
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->mu);
}

/* Until batch_max records are unread, or fewer have waited batch_wait; -1 when stopping. */
static int
wait_for_batch(struct webhook *w)
{
	int rc = 0;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		uint64_t unread, now;
		struct timespec ts;

		if (w->stopping) {
			rc = -1;
			break;
		}
		unread = backlog_unread(w->backlog);
		now = time_mono_us();
		if (unread >= w->batch_max)
			break;
		if (unread == 0) {
			w->pending_since_us = 0;
			pthread_cond_wait(&w->wake, &w->mu);
			continue;
		}
		if (w->pending_since_us == 0)
			w->pending_since_us = now;
		if (now >= w->pending_since_us + w->batch_wait_us)
			break;
		abstime_in(w->pending_since_us + w->batch_wait_us - now, &ts);
		pthread_cond_timedwait(&w->wake, &w->mu, &ts);
	}
	/* What stays unread after this batch has waited since now at most. */
	w->pending_since_us = 0;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

/* Waits us, or less if stopping; -1 when stopping. */
static int
wait_stop(struct webhook *w, uint64_t us)
{
	struct timespec ts;
	int rc;

	abstime_in(us, &ts);
	pthread_mutex_lock(&w->mu);
	while (!w->stopping && pthread_cond_timedwait(&w->wake, &w->mu, &ts) != ETIMEDOUT)
		;
	rc = w->stopping ? -1 : 0;
	pthread_mutex_unlock(&w->mu);
	return rc;
}

static bool
stopping(struct webhook *w)
{
	bool s;

	pthread_mutex_lock(&w->mu);
	s = w->stopping;
	pthread_mutex_unlock(&w->mu);
	return s;
}

static size_t
discard(char *data, size_t size, size_t n, void *arg)
{
	return size * n; /* the answer's body says nothing the status does not */
}

static CURL *
easy_new(struct webhook *w, char *errbuf)
{
	CURL *c = curl_easy_init();

	if (c == NULL)
		return NULL;
	curl_easy_setopt(c, CURLOPT_URL, w->url);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	/* The daemon's environment decides nothing: no proxy unless configured (none is). */
	curl_easy_setopt(c, CURLOPT_PROXY, "");
	curl_easy_setopt(c, CURLOPT_USERAGENT, "drover/" DROVER_VERSION);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)w->timeout_ms);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
	if (w->ca_blob != NULL) {
		struct curl_blob blob = {w->ca_blob, w->ca_len, CURL_BLOB_NOCOPY};

		curl_easy_setopt(c, CURLOPT_CAINFO_BLOB, &blob);
	}
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	return c;
}

/* One request; on failure why says what happened ("HTTP 503", curl's reason). */
static enum post_result
post(struct webhook *w, CURL *c, const char *body, size_t len, char *errbuf, char *why,
     size_t whylen, long *status)
{
	CURLcode res = CURLE_OK;
	CURLMsg *msg;
	int running = 1, left;

	*status = 0;
	errbuf[0] = '\0';
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_multi_add_handle(w->multi, c);
	while (running) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		if (!running)
			break;
		if (stopping(w)) {
			curl_multi_remove_handle(w->multi, c);
			return POST_STOPPED;
		}
		curl_multi_poll(w->multi, NULL, 0, POLL_MS, NULL);
	}
	while ((msg = curl_multi_info_read(w->multi, &left)) != NULL)
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == c)
			res = msg->data.result;
	curl_multi_remove_handle(w->multi, c);
	if (res != CURLE_OK) {
		snprintf(why, whylen, "%s", errbuf[0] ? errbuf : curl_easy_strerror(res));
		return POST_FAILED;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (*status >= 200 && *status <= 299)
		return POST_OK;
	snprintf(why, whylen, "HTTP %ld", *status);
	return POST_FAILED;
}

static void
record_failing(struct webhook *w, const char *why, long status)
{
	struct backlog_stats st;
	json_t *o = json_object();

	backlog_stats(w->backlog, &st);
	json_object_set_new(o, "webhook", json_string(w->name));
	json_object_set_new(o, "error", json_string(why));
	json_object_set_new(o, "http_status", status != 0 ? json_integer(status) : json_null());
	json_object_set_new(o, "backlog_records", json_integer((json_int_t)st.records));
	eventlog_write(w->log, "WebhookFailing", o);
	log_warn("webhook %s: %s: retrying (backoff up to %llus; records wait in the backlog)",
	         w->name, why, (unsigned long long)(w->retry_max_us / USEC));
}

static void
record_recovered(struct webhook *w, unsigned failures, uint64_t since_us)
{
	uint64_t secs = (time_mono_us() - since_us) / USEC;
	json_t *o = json_object();

	json_object_set_new(o, "webhook", json_string(w->name));
	json_object_set_new(o, "failed_attempts", json_integer(failures));
	json_object_set_new(o, "failing_s", json_integer((json_int_t)secs));
	eventlog_write(w->log, "WebhookRecovered", o);
	log_info("webhook %s: recovered after %u failed attempts (%llus)", w->name, failures,
	         (unsigned long long)secs);
}

void *
webhook_sender(void *arg)
{
	struct webhook *w = arg;
	struct backlog_batch batch = {0};
	char errbuf[CURL_ERROR_SIZE], why[CURL_ERROR_SIZE + 32];
	char *body = NULL;
	size_t len = 0;
	unsigned failures = 0;
	uint64_t failing_since = 0;
	CURL *c = easy_new(w, errbuf);

	if (c == NULL) {
		log_error("webhook %s: cannot set up a curl handle: nothing is sent", w->name);
		return NULL;
	}
	for (;;) {
		enum post_result r;
		long status;

		if (body == NULL) {
			if (wait_for_batch(w) < 0)
				break;
			if (backlog_read(w->backlog, &batch, w->batch_max, WEBHOOK_BODY_MAX) == 0) {
				/* Only damaged lines, or records not readable yet: do not spin. */
				if (batch.ends)
					backlog_ack(w->backlog, &batch);
				if (wait_stop(w, USEC) < 0)
					break;
				continue;
			}
			body = webhook_body(&batch, backlog_epoch(w->backlog), &len);
		}
		r = post(w, c, body, len, errbuf, why, sizeof(why), &status);
		if (r == POST_STOPPED)
			break;
		if (r == POST_OK) {
			backlog_ack(w->backlog, &batch);
			atomic_fetch_add(&w->records_sent, batch.n);
			atomic_fetch_add(&w->batches_sent, 1);
			free(body);
			body = NULL;
			if (failures > 0) {
				atomic_store(&w->failing, false);
				record_recovered(w, failures, failing_since);
				failures = 0;
			}
			continue;
		}
		atomic_fetch_add(&w->batches_failed, 1);
		if (failures++ == 0) {
			failing_since = time_mono_us();
			atomic_store(&w->failing, true);
			record_failing(w, why, status);
		} else {
			log_debug("webhook %s: %u attempts failed: %s", w->name, failures, why);
		}
		uint32_t rnd = 0;
		if (getrandom(&rnd, sizeof(rnd), 0) != sizeof(rnd))
			rnd = (uint32_t)time_mono_us();
		if (wait_stop(w, webhook_backoff_us(failures, w->retry_max_us, rnd)) < 0)
			break;
	}
	/* A batch not acknowledged is sent again by the next run (the state file says where
	 * to start); nothing more to do for it. */
	free(body);
	backlog_batch_free(&batch);
	curl_easy_cleanup(c);
	return NULL;
}
