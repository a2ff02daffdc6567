/* eventlog.c - the operator's record of what happened to mail: JSON lines.
 *
 * Event loops format a record (cheap) and queue the line; one thread writes queued lines
 * in batches with a single write(2), so no loop ever waits on the disk. Lines are written
 * in the order they were queued. The file is opened O_APPEND so that an external rotation
 * (rename, then eventlog_reopen) never tears a line. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

/* Bound on queued but unwritten lines: past it, records are counted and dropped rather
 * than letting a stalled disk grow memory without end. */
#define EVENTLOG_QUEUE_MAX 100000
#define EVENTLOG_BATCH_MAX 512
/* Records are written at most this long after they happen: the writer sleeps between
 * batches instead of being woken for every record (a wake-up is a context switch, per
 * message, on a machine whose cores the SMTP loops need). */
#define EVENTLOG_LINGER_MS 50

struct eventlog_line {
	char *text; /* ends with "\n" */
	size_t len;
	struct eventlog_line *next;
	char type[]; /* for the taps */
};

struct eventlog {
	char *path;
	int fd;
	bool reopen, stopping;
	bool idle; /* the writer waits for a first record: wake it */
	size_t queued;
	uint64_t dropped;
	struct eventlog_line *head, **tail;
	/* Taps are only ever added: an entry is complete before ntaps counts it. */
	struct {
		eventlog_tap_fn *fn;
		void *arg;
	} taps[EVENTLOG_TAPS_MAX];
	atomic_size_t ntaps;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
};

static int
eventlog_open_fd(const char *path, char *err, size_t errlen)
{
	int fd;

	if (strcmp(path, "-") == 0)
		return dup(STDOUT_FILENO);
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0 && err != NULL)
		snprintf(err, errlen, "event log %s: %s", path, strerror(errno));
	return fd;
}

/* The taps get what the file got, in the same slices. */
static void
eventlog_tap(struct eventlog *log, const struct iovec *iov, struct eventlog_line *const *lines,
             int n)
{
	size_t ntaps = atomic_load(&log->ntaps);
	struct eventlog_record recs[EVENTLOG_BATCH_MAX];

	if (ntaps == 0)
		return;
	for (int i = 0; i < n; i++)
		recs[i] =
		    (struct eventlog_record){lines[i]->type, iov[i].iov_base, iov[i].iov_len - 1};
	for (size_t t = 0; t < ntaps; t++)
		log->taps[t].fn(log->taps[t].arg, recs, (size_t)n);
}

static void
eventlog_flush(struct eventlog *log, struct eventlog_line *batch)
{
	struct iovec iov[EVENTLOG_BATCH_MAX];
	struct eventlog_line *line, *next, *lines[EVENTLOG_BATCH_MAX];
	int n = 0;

	for (line = batch; line != NULL; line = next) {
		next = line->next;
		iov[n].iov_base = line->text;
		iov[n].iov_len = line->len;
		lines[n] = line;
		if (++n == EVENTLOG_BATCH_MAX || next == NULL) {
			/* A short write on a regular file means the disk is full: the rest of
			 * this batch is lost, and we say so once per batch. */
			if (log->fd >= 0 && writev(log->fd, iov, n) < 0)
				log_warn("event log %s: write: %s", log->path, strerror(errno));
			eventlog_tap(log, iov, lines, n);
			n = 0;
		}
	}
	for (line = batch; line != NULL; line = next) {
		next = line->next;
		free(line->text);
		free(line);
	}
}

static void *
eventlog_thread(void *arg)
{
	struct eventlog *log = arg;

	for (;;) {
		struct eventlog_line *batch;
		bool reopen, stop;

		pthread_mutex_lock(&log->lock);
		while (log->head == NULL && !log->stopping && !log->reopen) {
			log->idle = true;
			pthread_cond_wait(&log->wake, &log->lock);
		}
		log->idle = false;
		if (!log->stopping && !log->reopen && log->queued < EVENTLOG_BATCH_MAX) {
			/* Let the batch fill; writers do not signal meanwhile. */
			struct timespec until;
			clock_gettime(CLOCK_REALTIME, &until);
			until.tv_nsec += EVENTLOG_LINGER_MS * 1000000L;
			if (until.tv_nsec >= 1000000000L) {
				until.tv_sec++;
				until.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&log->wake, &log->lock, &until);
		}
		batch = log->head;
		log->head = NULL;
		log->tail = &log->head;
		log->queued = 0;
		reopen = log->reopen;
		log->reopen = false;
		stop = log->stopping;
		pthread_mutex_unlock(&log->lock);

		if (reopen) {
			int fd = eventlog_open_fd(log->path, NULL, 0);
			if (fd >= 0) {
				close(log->fd);
				log->fd = fd;
			} else
				log_warn("event log %s: reopen: %s", log->path, strerror(errno));
		}
		eventlog_flush(log, batch);
		if (stop)
			return NULL;
	}
}

struct eventlog *
eventlog_open(const char *path, char *err, size_t errlen)
{
	struct eventlog *log = xcalloc(1, sizeof(*log));

	log->fd = -1;
	log->tail = &log->head;
	pthread_mutex_init(&log->lock, NULL);
	pthread_cond_init(&log->wake, NULL);
	if (path != NULL && *path != '\0') {
		log->path = xstrdup(path);
		log->fd = eventlog_open_fd(path, err, errlen);
		if (log->fd < 0) {
			free(log->path);
			free(log);
			return NULL;
		}
	}
	if (pthread_create(&log->thread, NULL, eventlog_thread, log) != 0)
		fatal("event log: cannot start thread");
	return log;
}

void
eventlog_write(struct eventlog *log, const char *type, json_t *fields)
{
	struct eventlog_line *line;
	json_t *record;
	char stamp[40], *text;

	if (log == NULL || (log->fd < 0 && atomic_load(&log->ntaps) == 0)) {
		json_decref(fields);
		return;
	}
	/* "time" and "type" first, so that a person reading the file sees them first. */
	time_rfc3339(time_now_us(), stamp, sizeof(stamp));
	record = json_object();
	json_object_set_new(record, "time", json_string(stamp));
	json_object_set_new(record, "type", json_string(type));
	if (fields != NULL)
		json_object_update(record, fields);
	json_decref(fields);
	text = json_dumps(record, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
	json_decref(record);
	if (text == NULL)
		return;

	line = xmalloc(sizeof(*line) + strlen(type) + 1);
	memcpy(line->type, type, strlen(type) + 1);
	line->len = strlen(text) + 1;
	line->text = xrealloc(text, line->len + 1);
	line->text[line->len - 1] = '\n';
	line->text[line->len] = '\0';
	line->next = NULL;

	pthread_mutex_lock(&log->lock);
	if (log->queued >= EVENTLOG_QUEUE_MAX) {
		log->dropped++;
		pthread_mutex_unlock(&log->lock);
		free(line->text);
		free(line);
		return;
	}
	*log->tail = line;
	log->tail = &line->next;
	log->queued++;
	if (log->idle) {
		log->idle = false;
		pthread_cond_signal(&log->wake);
	}
	pthread_mutex_unlock(&log->lock);
}

int
eventlog_add_tap(struct eventlog *log, eventlog_tap_fn *fn, void *arg)
{
	size_t n;

	pthread_mutex_lock(&log->lock);
	n = atomic_load(&log->ntaps);
	if (n == EVENTLOG_TAPS_MAX) {
		pthread_mutex_unlock(&log->lock);
		return -1;
	}
	log->taps[n].fn = fn;
	log->taps[n].arg = arg;
	atomic_store(&log->ntaps, n + 1);
	pthread_mutex_unlock(&log->lock);
	return 0;
}

void
eventlog_reopen(struct eventlog *log)
{
	if (log == NULL || log->path == NULL)
		return;
	pthread_mutex_lock(&log->lock);
	log->reopen = true;
	pthread_cond_signal(&log->wake);
	pthread_mutex_unlock(&log->lock);
}

void
eventlog_close(struct eventlog *log)
{
	if (log == NULL)
		return;
	pthread_mutex_lock(&log->lock);
	log->stopping = true;
	pthread_cond_signal(&log->wake);
	pthread_mutex_unlock(&log->lock);
	pthread_join(log->thread, NULL);
	if (log->dropped > 0)
		log_warn("event log: %llu records dropped (writer fell behind)",
		         (unsigned long long)log->dropped);
	if (log->fd >= 0)
		close(log->fd);
	pthread_cond_destroy(&log->wake);
	pthread_mutex_destroy(&log->lock);
	free(log->path);
	free(log);
}
