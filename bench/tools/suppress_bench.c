/* suppress_bench.c - the suppression list's benchmark driver (bench/suppress.sh).
 *
 *   suppress_bench gen N FILE                       N distinct addresses, shuffled, one a line
 *   suppress_bench cli ACTION [ARGS...]             `drover suppress ACTION ARGS...` (the same
 *                                                   code, without needing main.c's dispatch)
 *   suppress_bench lookup DIR FILE SECONDS THREADS  suppress_check() rate: hits (addresses of
 *                                                   FILE) then misses, THREADS threads each
 *
 * Built against the static libraries of a Drover build: make -C bench/tools suppress_bench.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "suppress/suppress.h"

static uint64_t
xorshift(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

/* Distinct by construction (the index is in the local part), in a random order, spread
 * over 20,000 domains as a real list is. */
static int
gen(unsigned long n, const char *path)
{
	FILE *out = fopen(path, "w");
	uint32_t *order = xmalloc(n * sizeof(*order));
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	if (out == NULL) {
		perror(path);
		return 2;
	}
	for (unsigned long i = 0; i < n; i++)
		order[i] = (uint32_t)i;
	for (unsigned long i = n - 1; i > 0; i--) {
		unsigned long j = xorshift(&seed) % (i + 1);
		uint32_t t = order[i];

		order[i] = order[j];
		order[j] = t;
	}
	for (unsigned long i = 0; i < n; i++)
		fprintf(out, "user%u.%04x@domain%u.example\n", order[i],
		        order[i] * 2654435761u >> 16, order[i] % 20000);
	free(order);
	return fclose(out) == 0 ? 0 : 2;
}

struct addrs {
	char **a;
	size_t n;
};

static int
load(const char *path, struct addrs *as)
{
	FILE *in = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0, max = 1 << 20;
	ssize_t len;

	if (in == NULL) {
		perror(path);
		return -1;
	}
	as->a = xmalloc(max * sizeof(char *));
	as->n = 0;
	while ((len = getline(&line, &cap, in)) > 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (as->n == max)
			as->a = xrealloc(as->a, (max *= 2) * sizeof(char *));
		as->a[as->n++] = xstrdup(line);
	}
	free(line);
	fclose(in);
	return as->n > 0 ? 0 : -1;
}

struct worker {
	struct suppress *list;
	const struct addrs *as;
	bool miss;
	uint64_t deadline_us;
	uint64_t ops, hits;
	unsigned id;
};

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint64_t seed = 0x2545f4914f6cdd1dULL * (w->id + 1);
	char buf[SUPPRESS_ADDRESS_MAX + 8];

	while (time_mono_us() < w->deadline_us) {
		/* The clock is read every 1024 lookups: its cost stays out of the rate. */
		for (int i = 0; i < 1024; i++) {
			const char *a = w->as->a[xorshift(&seed) % w->as->n];
			int r;

			if (w->miss) {
				/* The local part with "-x" at its end: a key of nobody's (not
				 * gen's, nor bench/suppress.sh's second set), in a random place of
				 * the tree like a real miss, at a domain that exists (so that the
				 * domain lookups run too). */
				const char *at = strrchr(a, '@');

				snprintf(buf, sizeof(buf), "%.*s-x%s", (int)(at - a), a, at);
				a = buf;
			}
			r = suppress_check(w->list, "tenant1", a, NULL);
			if (r < 0)
				fatal("lookup failed");
			w->hits += (uint64_t)r;
		}
		w->ops += 1024;
	}
	return NULL;
}

static void
rss(const char *when)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];

	if (f == NULL)
		return;
	printf("rss %s:", when);
	while (fgets(line, sizeof(line), f) != NULL) {
		if (strncmp(line, "VmRSS:", 6) == 0 || strncmp(line, "RssAnon:", 8) == 0 ||
		    strncmp(line, "RssFile:", 8) == 0) {
			line[strcspn(line, "\n")] = '\0';
			printf(" %s", line);
		}
	}
	printf("\n");
	fclose(f);
}

static int
lookup(const char *dir, const char *path, double seconds, unsigned threads)
{
	struct addrs as;
	struct suppress *list;
	char err[512];
	int rc = 0;

	if (load(path, &as) < 0)
		return 2;
	rss("after loading the sample (addresses in memory)");
	list = suppress_open(dir, NULL, SUPPRESS_READONLY, err, sizeof(err));
	if (list == NULL) {
		fprintf(stderr, "%s\n", err);
		return 2;
	}
	printf("entries: %llu\n", (unsigned long long)suppress_count(list));
	for (int miss = 0; miss <= 1; miss++) {
		struct worker *w = xcalloc(threads, sizeof(*w));
		pthread_t *tid = xcalloc(threads, sizeof(*tid));
		uint64_t ops = 0, hits = 0, start = time_mono_us();

		for (unsigned i = 0; i < threads; i++) {
			w[i] = (struct worker){list, &as, miss, start + (uint64_t)(seconds * USEC),
			                       0,    0,   i};
			pthread_create(&tid[i], NULL, worker_main, &w[i]);
		}
		for (unsigned i = 0; i < threads; i++) {
			pthread_join(tid[i], NULL);
			ops += w[i].ops;
			hits += w[i].hits;
		}
		printf(
		    "%s: %u thread%s, %llu lookups in %.2f s: %.0f lookups/s (%llu suppressed)\n",
		    miss ? "misses" : "hits", threads, threads == 1 ? "" : "s",
		    (unsigned long long)ops, (double)(time_mono_us() - start) / USEC,
		    (double)ops / ((double)(time_mono_us() - start) / USEC),
		    (unsigned long long)hits);
		/* Every address of the file must be suppressed, and none of the others. */
		if (miss ? hits != 0 : hits != ops)
			rc = 1;
		free(w);
		free(tid);
	}
	rss("after the lookups (RssFile: the list's pages mapped)");
	suppress_close(list);
	for (size_t i = 0; i < as.n; i++)
		free(as.a[i]);
	free(as.a);
	return rc;
}

int
main(int argc, char **argv)
{
	log_set_level(LOG_WARN);
	if (argc >= 4 && strcmp(argv[1], "gen") == 0)
		return gen(strtoul(argv[2], NULL, 10), argv[3]);
	if (argc >= 2 && strcmp(argv[1], "cli") == 0)
		return suppress_cli(argc - 1, argv + 1, NULL);
	if (argc >= 6 && strcmp(argv[1], "lookup") == 0)
		return lookup(argv[2], argv[3], atof(argv[4]), (unsigned)atoi(argv[5]));
	fprintf(stderr, "usage: suppress_bench gen N FILE | cli ACTION [ARGS...] | "
	                "lookup DIR FILE SECONDS THREADS\n");
	return 2;
}
