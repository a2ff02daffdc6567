/* bench/dkim_sign.c - what DKIM costs Drover: signatures (and verifications) per second of
 * a 4 KB message, on one thread (= per core) and on N threads sharing one key, for RSA
 * 1024/2048/4096 and Ed25519. Built and run by bench/dkim.sh.
 *
 *   dkim_sign [SECONDS] [THREADS]      (defaults: 3, the number of CPUs)
 *
 * One "signature" is what reception does per message: a context, one signer, the message fed
 * in 1 KB pieces (as it arrives), the final field, free. Keys come from dkim_keygen() into a
 * scratch directory. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/core.h"

#define MSG_SIZE 4096
#define PIECE    1024

static char msg[MSG_SIZE + 1];
static size_t msglen;

static void
make_message(void)
{
	static const char head[] = "From: Shop <shop@example.com>\r\n"
	                           "To: customer@example.org\r\n"
	                           "Subject: Your receipt for order 4242\r\n"
	                           "Date: Sat, 29 Nov 2025 07:06:40 +0000\r\n"
	                           "Message-ID: <4242.1764400000@example.com>\r\n"
	                           "MIME-Version: 1.0\r\n"
	                           "Content-Type: text/plain; charset=utf-8\r\n"
	                           "Content-Transfer-Encoding: 8bit\r\n"
	                           "List-Unsubscribe: <mailto:unsub-4242@example.com>\r\n"
	                           "\r\n";
	static const char line[] =
	    "Thank you for your order. Lorem ipsum dolor sit amet, consectetur "
	    "adipiscing.\r\n";

	strcpy(msg, head);
	msglen = strlen(head);
	while (msglen + sizeof(line) - 1 <= MSG_SIZE) {
		memcpy(msg + msglen, line, sizeof(line) - 1);
		msglen += sizeof(line) - 1;
	}
	memset(msg + msglen, 'x', MSG_SIZE - msglen - 2);
	memcpy(msg + MSG_SIZE - 2, "\r\n", 2);
	msglen = MSG_SIZE;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct job {
	struct dkim_key *key;
	const char *selector;
	const char *record;
	bool verify;
	double seconds;
	atomic_int *go;
	unsigned long done;
};

static char *
sign_once(struct dkim_key *key, const char *selector)
{
	struct dkim_signer s = {.key = key,
	                        .domain = "example.com",
	                        .selector = selector,
	                        .header_canon = DKIM_CANON_RELAXED,
	                        .body_canon = DKIM_CANON_RELAXED};
	struct dkim_sign *ctx = dkim_sign_new((uint64_t)time(NULL));
	char err[256], *f;

	if (dkim_sign_add(ctx, &s, err, sizeof(err)) < 0)
		fatal("%s", err);
	for (size_t off = 0; off < msglen; off += PIECE)
		dkim_sign_update(ctx, msg + off, msglen - off < PIECE ? msglen - off : PIECE);
	if ((f = dkim_sign_final(ctx, err, sizeof(err))) == NULL)
		fatal("%s", err);
	dkim_sign_free(ctx);
	return f;
}

static void
verified(void *arg, const struct dkim_results *r)
{
	if (r->n != 1 || r->sigs[0].result != DKIM_RESULT_PASS)
		fatal("verification failed: %s", r->n ? r->sigs[0].reason : "no signature");
	*(int *)arg = 1;
}

static void *
run(void *arg)
{
	struct job *j = arg;
	char name[128], *signed_ = NULL;
	const char *table[3] = {name, j->record, NULL};
	struct dkim_lookup l;

	snprintf(name, sizeof(name), "%s._domainkey.example.com", j->selector);
	dkim_lookup_table(&l, table);
	if (j->verify) {
		char *f = sign_once(j->key, j->selector);
		signed_ = xasprintf("%s%s", f, msg);
		free(f);
	}
	while (!atomic_load(j->go))
		;
	double end = now_s() + j->seconds;
	while (now_s() < end) {
		for (int i = 0; i < 8; i++) {
			if (j->verify) {
				struct dkim_verify *v = dkim_verify_new(&l, NULL);
				int ok = 0;
				dkim_verify_update(v, signed_, strlen(signed_));
				dkim_verify_final(v, verified, &ok);
				dkim_verify_free(v);
			} else
				free(sign_once(j->key, j->selector));
			j->done++;
		}
	}
	free(signed_);
	return NULL;
}

/* Operations per second over THREADS threads sharing one key. */
static double
measure(struct dkim_key *key, const char *selector, const char *record, bool verify, int threads,
        double seconds)
{
	struct job *jobs = xcalloc((size_t)threads, sizeof(*jobs));
	pthread_t *t = xcalloc((size_t)threads, sizeof(*t));
	atomic_int go = 0;
	unsigned long total = 0;
	double start, took;

	for (int i = 0; i < threads; i++) {
		jobs[i] = (struct job){key, selector, record, verify, seconds, &go, 0};
		pthread_create(&t[i], NULL, run, &jobs[i]);
	}
	usleep(100000);
	start = now_s();
	atomic_store(&go, 1);
	for (int i = 0; i < threads; i++) {
		pthread_join(t[i], NULL);
		total += jobs[i].done;
	}
	took = now_s() - start;
	free(jobs);
	free(t);
	return (double)total / took;
}

int
main(int argc, char **argv)
{
	double seconds = argc > 1 ? atof(argv[1]) : 3;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int threads = argc > 2 ? atoi(argv[2]) : (int)(ncpu > 0 ? ncpu : 1);
	static const struct {
		const char *name;
		enum dkim_keygen_type type;
	} kinds[] = {{"rsa1024", DKIM_KEYGEN_RSA1024},
	             {"rsa2048", DKIM_KEYGEN_RSA2048},
	             {"rsa4096", DKIM_KEYGEN_RSA4096},
	             {"ed25519", DKIM_KEYGEN_ED25519}};
	char dir[] = "/tmp/drover-bench-dkim-XXXXXX";

	if (mkdtemp(dir) == NULL)
		fatal("mkdtemp failed");
	make_message();
	printf("message: %zu octets, fed in %d-octet pieces; relaxed/relaxed; %.0f s per "
	       "figure\n",
	       msglen, PIECE, seconds);
	printf("%-8s %14s %14s %14s %14s\n", "key", "sign/s 1 thr", "sign/s", "verify/s 1 thr",
	       "verify/s");
	printf("%-8s %14s %14s %14s %14s\n", "", "(per core)", "", "(per core)", "");
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		char path[256], err[512], *rec;
		struct dkim_key *key;

		snprintf(path, sizeof(path), "%s/%s.pem", dir, kinds[k].name);
		if (dkim_keygen(kinds[k].type, path, &rec, err, sizeof(err)) < 0 ||
		    (key = dkim_key_load(path, err, sizeof(err))) == NULL)
			fatal("%s", err);
		double s1 = measure(key, kinds[k].name, rec, false, 1, seconds);
		double sn = measure(key, kinds[k].name, rec, false, threads, seconds);
		double v1 = measure(key, kinds[k].name, rec, true, 1, seconds);
		double vn = measure(key, kinds[k].name, rec, true, threads, seconds);
		printf("%-8s %14.0f %14.0f %14.0f %14.0f   (%d threads)\n", kinds[k].name, s1, sn,
		       v1, vn, threads);
		fflush(stdout);
		dkim_key_free(key);
		unlink(path);
		free(rec);
	}
	rmdir(dir);
	return 0;
}
