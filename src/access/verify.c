/* verify.c - password checks on worker threads, answered on the caller's event loop.
 *
 * A check costs ~100 ms of CPU (yescrypt, by design): on an event loop it would stall every
 * session of that loop. So a request is queued to a small pool of threads, checked there with
 * crypt_rn(), and its answer posted to the caller's mailbox.
 *
 * Ownership of a request: the caller may cancel it until its callback runs, from the loop
 * that owns reply_to. Cancelling only sets a flag; the request is freed by whoever next
 * looks at it: a full queue's purge (under the queue's lock), the worker (before or after
 * crypt, if it sees the flag it frees and posts nothing) or the answer on the loop (which sees the
 * flag because the cancel ran on that same loop before it, and frees without calling back). After a
 * post the worker never touches the request again, so there is exactly one owner at any time. */
#include <crypt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "access/internal.h"
#include "core/core.h"

struct access_verify {
	struct access_verify *next; /* the queue */
	atomic_bool cancelled;
	bool known; /* the name is a user: hash is theirs, not the dummy */
	enum access_verify_result result;
	struct mailbox *reply_to;
	access_verify_cb *cb;
	void *arg;
	char *password; /* NUL-terminated copy, wiped before it is freed; NULL once checked */
	size_t password_len;
	char hash[ACCESS_HASH_MAX + 1];
};

struct access_verifier {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct access_verify *head, **tail;
	size_t queued, queue_max;
	bool stopping;
	unsigned nthreads;
	pthread_t *threads;
};

const char *
access_verify_result_name(enum access_verify_result r)
{
	switch (r) {
	case ACCESS_VERIFY_OK:
		return "ok";
	case ACCESS_VERIFY_BAD:
		return "bad";
	case ACCESS_VERIFY_NO_USER:
		return "no-user";
	case ACCESS_VERIFY_TEMPFAIL:
		return "tempfail";
	}
	return "?";
}

static void
request_free(struct access_verify *rq)
{
	if (rq->password != NULL) {
		explicit_bzero(rq->password, rq->password_len);
		free(rq->password);
	}
	explicit_bzero(rq->hash, sizeof(rq->hash));
	free(rq);
}

/* On the caller's loop. */
static void
deliver(void *arg)
{
	struct access_verify *rq = arg;

	if (!atomic_load(&rq->cancelled))
		rq->cb(rq->arg, rq->result);
	request_free(rq);
}

/* Hands the request to its loop, or frees it if nobody wants the answer any more. */
static void
answer(struct access_verify *rq, enum access_verify_result result)
{
	if (rq->password != NULL) {
		explicit_bzero(rq->password, rq->password_len);
		free(rq->password);
		rq->password = NULL;
	}
	rq->result = result;
	if (atomic_load(&rq->cancelled))
		request_free(rq);
	else
		mailbox_post(rq->reply_to, deliver, rq);
}

/* Equality of crypt's output and the stored hash in time that depends only on their
 * lengths (which the method fixes), never on where they first differ. */
static bool
equal_ct(const char *computed, const char *stored)
{
	size_t n = strlen(stored), m = strlen(computed);
	volatile unsigned char diff = n != m;

	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)stored[i] ^ (unsigned char)(i < m ? computed[i] : 0);
	return diff == 0;
}

static void
check(struct access_verify *rq, struct crypt_data *data)
{
	enum access_verify_result result;
	const char *out;

	if (atomic_load(&rq->cancelled)) {
		answer(rq, ACCESS_VERIFY_TEMPFAIL);
		return;
	}
	/* An unknown user's request crypts the dummy just the same, and compares, and the
	 * answer differs only at the very end: the time spent does not say the user exists. */
	out = crypt_rn(rq->password, rq->hash, data, (int)sizeof(*data));
	if (out == NULL || out[0] == '*')
		result = ACCESS_VERIFY_TEMPFAIL; /* the hash was checked at load: out of memory */
	else if (equal_ct(out, rq->hash))
		result = ACCESS_VERIFY_OK;
	else
		result = ACCESS_VERIFY_BAD;
	if (!rq->known)
		result = ACCESS_VERIFY_NO_USER;
	/* crypt_data holds a copy of the passphrase (its input field) and intermediate state. */
	explicit_bzero(data, sizeof(*data));
	answer(rq, result);
}

static void *
worker(void *arg)
{
	struct access_verifier *v = arg;
	struct crypt_data *data = xcalloc(1, sizeof(*data));
	struct access_verify *rq;

	for (;;) {
		pthread_mutex_lock(&v->lock);
		while (v->head == NULL && !v->stopping)
			pthread_cond_wait(&v->wake, &v->lock);
		if ((rq = v->head) == NULL) {
			pthread_mutex_unlock(&v->lock);
			break;
		}
		if ((v->head = rq->next) == NULL)
			v->tail = &v->head;
		v->queued--;
		pthread_mutex_unlock(&v->lock);
		check(rq, data);
	}
	free(data);
	return NULL;
}

struct access_verifier *
access_verifier_new(unsigned threads)
{
	struct access_verifier *v = xcalloc(1, sizeof(*v));

	if (threads == 0)
		threads = ACCESS_VERIFY_THREADS_DEFAULT;
	if (threads > ACCESS_VERIFY_THREADS_MAX)
		threads = ACCESS_VERIFY_THREADS_MAX;
	pthread_mutex_init(&v->lock, NULL);
	pthread_cond_init(&v->wake, NULL);
	v->tail = &v->head;
	v->queue_max = (size_t)threads * ACCESS_VERIFY_QUEUE_PER_THREAD;
	v->threads = xcalloc(threads, sizeof(*v->threads));
	for (v->nthreads = 0; v->nthreads < threads; v->nthreads++) {
		int rc = pthread_create(&v->threads[v->nthreads], NULL, worker, v);

		if (rc != 0)
			fatal("access: cannot start a password thread: %s", strerror(rc));
	}
	return v;
}

void
access_verifier_free(struct access_verifier *v)
{
	struct access_verify *rq, *next;

	if (v == NULL)
		return;
	pthread_mutex_lock(&v->lock);
	v->stopping = true;
	rq = v->head;
	v->head = NULL;
	v->tail = &v->head;
	v->queued = 0;
	pthread_cond_broadcast(&v->wake);
	pthread_mutex_unlock(&v->lock);
	for (; rq != NULL; rq = next) {
		next = rq->next;
		answer(rq, ACCESS_VERIFY_TEMPFAIL);
	}
	for (unsigned i = 0; i < v->nthreads; i++)
		pthread_join(v->threads[i], NULL);
	free(v->threads);
	pthread_cond_destroy(&v->wake);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* Under the lock: frees the queued requests whose sessions have gone, so that they do not
 * hold places in a full queue until a worker reaches them. A queued request is touched by no
 * worker, and its loop, having cancelled, never touches it again. */
static void
purge_cancelled(struct access_verifier *v)
{
	struct access_verify **p = &v->head, *rq;

	while ((rq = *p) != NULL) {
		if (!atomic_load(&rq->cancelled)) {
			p = &rq->next;
			continue;
		}
		*p = rq->next;
		v->queued--;
		request_free(rq);
	}
	v->tail = p;
}

struct access_verify *
access_verify(struct access_verifier *v, const struct access_users *users, const char *name,
              const char *password, size_t password_len, struct mailbox *reply_to,
              access_verify_cb *cb, void *arg)
{
	struct access_verify *rq = xcalloc(1, sizeof(*rq));
	const struct access_user *u = name != NULL ? access_users_find(users, name) : NULL;
	bool queued = false;

	if (password == NULL) {
		password = "";
		password_len = 0;
	}
	atomic_init(&rq->cancelled, false);
	rq->reply_to = reply_to;
	rq->cb = cb;
	rq->arg = arg;
	rq->known = u != NULL;
	strlcpy_s(rq->hash, u != NULL ? access_user_hash(u) : access_users_dummy(users),
	          sizeof(rq->hash));
	/* crypt refuses longer passphrases, and a NUL would cut the password short: either way
	 * it cannot match, and answering without a crypt tells nothing about the user. */
	if (password_len > ACCESS_PASSWORD_MAX || memchr(password, '\0', password_len) != NULL) {
		answer(rq, ACCESS_VERIFY_BAD);
		return rq;
	}
	rq->password = xmalloc(password_len + 1);
	rq->password_len = password_len;
	memcpy(rq->password, password, password_len);
	rq->password[password_len] = '\0';

	pthread_mutex_lock(&v->lock);
	if (v->queued >= v->queue_max)
		purge_cancelled(v);
	if (!v->stopping && v->queued < v->queue_max) {
		*v->tail = rq;
		v->tail = &rq->next;
		v->queued++;
		queued = true;
		pthread_cond_signal(&v->wake);
	}
	pthread_mutex_unlock(&v->lock);
	if (!queued)
		answer(rq, ACCESS_VERIFY_TEMPFAIL);
	return rq;
}

void
access_verify_cancel(struct access_verify *rq)
{
	if (rq != NULL)
		atomic_store(&rq->cancelled, true);
}
