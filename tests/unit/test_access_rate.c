/* test_access_rate.c - rate limits on a fake clock: parsing, burst, steady rate, refill, many
 * keys, idle keys forgotten, the key cap, a rate change, several threads on one key; and the
 * key of a client address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "test_access_util.h"

#define SEC  USEC
#define HOUR (3600 * USEC)

static struct access_rate
rate(const char *text)
{
	struct access_rate r;
	char err[256];

	if (access_rate_parse(text, &r, err, sizeof(err)) < 0)
		fail_msg("%s", err);
	return r;
}

static void
test_parse(void **state)
{
	static const struct {
		const char *text;
		uint64_t count, period_us;
	} good[] = {
	    {"1000/h", 1000, 3600 * USEC},
	    {"5/s", 5, USEC},
	    {"20/m", 20, 60 * USEC},
	    {"100000/d", 100000, 86400 * USEC},
	    {"300/10m", 300, 600 * USEC},
	    {"1/366d", 1, 366ULL * 86400 * USEC},
	    {"0", 0, 0},
	    {"1000000000/s", 1000000000, USEC},
	};
	static const struct {
		const char *text, *err;
	} bad[] = {
	    {"", "rate \"\": expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), or 0 for "
	         "unlimited"},
	    {"1000", "rate \"1000\": expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), or 0 for "
	             "unlimited"},
	    {"1000/H", "rate \"1000/H\": expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), or 0 "
	               "for unlimited"},
	    {"1000/hour",
	     "rate \"1000/hour\": expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), "
	     "or 0 for unlimited"},
	    {"10/0m", "rate \"10/0m\": expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), or 0 "
	              "for unlimited"},
	    {" 10/m", "rate \" 10/m\": expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), or 0 "
	              "for unlimited"},
	    {"-1/m", "rate \"-1/m\": expected N/s, N/m, N/h or N/d (or N/5m, N/12h, ...), or 0 for "
	             "unlimited"},
	    {"0/h", "rate \"0/h\": 0 events per period: write 0 for unlimited"},
	    {"1000000001/s", "rate \"1000000001/s\": count too large (at most 1000000000)"},
	    {"99999999999999999999999/s", "rate \"99999999999999999999999/s\": count too large"},
	    {"1/367d", "rate \"1/367d\": period too long (at most 366d)"},
	};
	struct access_rate r;
	char err[256];

	for (size_t i = 0; i < nitems(good); i++) {
		r = rate(good[i].text);
		assert_int_equal(r.count, good[i].count);
		assert_int_equal(r.period_us, good[i].period_us);
		assert_int_equal(r.burst, good[i].count);
	}
	for (size_t i = 0; i < nitems(bad); i++) {
		assert_int_equal(access_rate_parse(bad[i].text, &r, err, sizeof(err)), -1);
		if (strcmp(err, bad[i].err) != 0)
			fail_msg("%s:\n got  %s\n want %s", bad[i].text, err, bad[i].err);
	}
}

/* 1000/h: a burst of 1000, then one every 3.6 s, and the wait says exactly when. */
static void
test_burst_then_steady(void **state)
{
	struct access_rate r = rate("1000/h");
	struct access_limiter *l = access_limiter_new(&r, 0);
	uint64_t now = 5 * HOUR, wait = 0;

	for (int i = 0; i < 1000; i++)
		assert_true(access_rate_take(l, "ann", now, &wait));
	assert_false(access_rate_take(l, "ann", now, &wait));
	assert_int_equal(wait, 3600 * MSEC);
	/* Refusals take nothing: the wait does not grow with asking. */
	assert_false(access_rate_take(l, "ann", now + 1 * SEC, &wait));
	assert_int_equal(wait, 2600 * MSEC);
	assert_false(access_rate_take(l, "ann", now + 3600 * MSEC - 1, &wait));
	assert_int_equal(wait, 1);
	assert_true(access_rate_take(l, "ann", now + 3600 * MSEC, &wait));
	assert_int_equal(wait, 0);
	assert_false(access_rate_take(l, "ann", now + 3600 * MSEC, NULL));
	/* Another key has its own bucket. */
	assert_true(access_rate_take(l, "bob", now, NULL));
	access_limiter_free(l);
}

/* Offered far above the rate for a long time, the limiter admits the rate (plus the burst). */
static void
test_steady_rate(void **state)
{
	struct access_rate r = rate("300/m"); /* 5/s */
	struct access_limiter *l = access_limiter_new(&r, 0);
	uint64_t now = 0, wait;
	unsigned admitted = 0;

	for (int i = 0; i < 60000; i++, now += 10 * MSEC) /* 600 s of offers at 100/s */
		admitted += access_rate_take(l, "10.0.0.1", now, &wait);
	assert_int_equal(admitted, 300 + 600 * 5 - 1);
	access_limiter_free(l);

	/* A rate that does not divide the second evenly never lets more than its count through:
	 * the interval is rounded up. */
	r = rate("7/s");
	r.burst = 1;
	l = access_limiter_new(&r, 0);
	admitted = 0;
	for (uint64_t t = 0; t < 100 * SEC; t += MSEC)
		admitted += access_rate_take(l, "k", t, NULL);
	assert_int_equal(admitted, 700);
	access_limiter_free(l);
}

/* An emptied bucket refills at the rate, up to the burst and no more. */
static void
test_refill(void **state)
{
	struct access_rate r = rate("10/m"); /* one per 6 s */
	struct access_limiter *l = access_limiter_new(&r, 0);
	uint64_t now = HOUR;
	int n;

	for (n = 0; access_rate_take(l, "ann", now, NULL); n++)
		;
	assert_int_equal(n, 10);
	now += 30 * SEC; /* five tokens back */
	for (n = 0; access_rate_take(l, "ann", now, NULL); n++)
		;
	assert_int_equal(n, 5);
	now += 24 * HOUR; /* a full bucket, not 14,400 tokens */
	for (n = 0; access_rate_take(l, "ann", now, NULL); n++)
		;
	assert_int_equal(n, 10);
	access_limiter_free(l);
}

static void
test_unlimited(void **state)
{
	struct access_rate r = rate("0");
	struct access_limiter *l = access_limiter_new(&r, 0);
	uint64_t wait = 7;

	for (int i = 0; i < 100000; i++)
		assert_true(access_rate_take(l, "ann", 0, &wait));
	assert_int_equal(wait, 0);
	assert_int_equal(access_limiter_keys(l), 0);
	access_limiter_free(l);
	l = access_limiter_new(NULL, 0);
	assert_true(access_rate_take(l, "ann", 0, NULL));
	access_limiter_free(l);
}

/* Many keys, each held to its own budget; the count of keys is what was asked. */
static void
test_many_keys(void **state)
{
	struct access_rate r = rate("3/m");
	struct access_limiter *l = access_limiter_new(&r, 200000);
	char key[64];

	for (int i = 0; i < 50000; i++) {
		snprintf(key, sizeof(key), "198.51.%d.%d", i / 256, i % 256);
		for (int k = 0; k < 3; k++)
			assert_true(access_rate_take(l, key, SEC, NULL));
	}
	assert_int_equal(access_limiter_keys(l), 50000);
	for (int i = 0; i < 50000; i += 7) {
		snprintf(key, sizeof(key), "198.51.%d.%d", i / 256, i % 256);
		assert_false(access_rate_take(l, key, SEC, NULL));
	}
	access_limiter_free(l);
}

/* A key idle until its bucket is full again is forgotten: memory follows active keys.
 * Forgetting is lazy: a call forgets idle keys of its own stripe as it goes. */
static void
test_idle_keys_forgotten(void **state)
{
	struct access_rate r = rate("60/m"); /* one take is given back after 1 s */
	struct access_limiter *l = access_limiter_new(&r, 0);
	char key[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "old%d", i);
		assert_true(access_rate_take(l, key, 0, NULL));
	}
	assert_int_equal(access_limiter_keys(l), 1000);
	/* Their buckets are not full yet: kept. */
	for (int i = 0; i < 50; i++)
		assert_true(access_rate_take(l, "new", 500 * MSEC + (uint64_t)i, NULL));
	assert_int_equal(access_limiter_keys(l), 1001);
	/* Ten minutes later every old bucket is full: the next calls drop them. */
	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "fresh%d", i % 200);
		access_rate_take(l, key, 10 * 60 * SEC + (uint64_t)i, NULL);
	}
	assert_int_equal(access_limiter_keys(l), 200);
	access_limiter_free(l);
}

/* A flood of random keys cannot grow the table past its cap; the least recently used key
 * goes first, so a key in use keeps its state. */
static void
test_cap_and_eviction(void **state)
{
	struct access_rate r = rate("2/h");
	struct access_limiter *l = access_limiter_new(&r, 100);
	char key[32];
	uint64_t now = SEC;

	assert_true(access_rate_take(l, "victim", now, NULL));
	assert_true(access_rate_take(l, "victim", now, NULL));
	assert_true(access_rate_take(l, "active", now, NULL));
	assert_true(access_rate_take(l, "active", now, NULL));
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "flood%d", i);
		assert_true(access_rate_take(l, key, now, NULL));
		if (i % 50 == 0) /* "active" stays recently used */
			assert_false(access_rate_take(l, "active", now, NULL));
		assert_true(access_limiter_keys(l) <= 100);
	}
	assert_false(access_rate_take(l, "active", now, NULL));
	/* "victim" was least recently used: forgotten, so it starts afresh. */
	assert_true(access_rate_take(l, "victim", now, NULL));
	access_limiter_free(l);

	/* A large cap is spread over stripes, each held to its share. */
	l = access_limiter_new(&r, 10000);
	for (int i = 0; i < 200000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		access_rate_take(l, key, now, NULL);
	}
	assert_in_range(access_limiter_keys(l), 9000, 10000);
	access_limiter_free(l);
}

/* Keys longer than ACCESS_KEY_MAX count up to there. */
static void
test_long_keys(void **state)
{
	struct access_rate r = rate("1/h");
	struct access_limiter *l = access_limiter_new(&r, 0);
	char a[400], b[400];

	memset(a, 'k', sizeof(a) - 1);
	a[sizeof(a) - 1] = '\0';
	memcpy(b, a, sizeof(b));
	b[300] = 'x';
	assert_true(access_rate_take(l, a, 0, NULL));
	assert_false(access_rate_take(l, b, 0, NULL));
	b[200] = 'x';
	assert_true(access_rate_take(l, b, 0, NULL));
	access_limiter_free(l);
}

/* A reload changes the rate for keys already known. */
static void
test_set_rate(void **state)
{
	struct access_rate r = rate("2/m"), faster = rate("60/m");
	struct access_limiter *l = access_limiter_new(&r, 0);
	uint64_t wait;

	assert_true(access_rate_take(l, "ann", 0, NULL));
	assert_true(access_rate_take(l, "ann", 0, NULL));
	assert_false(access_rate_take(l, "ann", 0, &wait));
	assert_int_equal(wait, 30 * SEC);
	access_limiter_set_rate(l, &faster);
	/* What it used (60 s of the old rate) is now a full burst of the new: one per second. */
	assert_false(access_rate_take(l, "ann", 0, &wait));
	assert_int_equal(wait, 1 * SEC);
	assert_true(access_rate_take(l, "ann", 1 * SEC, NULL));
	assert_false(access_rate_take(l, "ann", 1 * SEC, NULL));
	access_limiter_set_rate(l, &(struct access_rate){0});
	assert_true(access_rate_take(l, "ann", 0, NULL));
	access_limiter_free(l);
}

/* Several event-loop threads taking from one user's budget: the budget holds exactly. */
struct taker {
	struct access_limiter *l;
	unsigned admitted;
};

static void *
take_many(void *arg)
{
	struct taker *t = arg;
	char key[32];

	for (int i = 0; i < 20000; i++) {
		t->admitted += access_rate_take(t->l, "shared", 1000 * SEC, NULL);
		snprintf(key, sizeof(key), "own%d", i % 500);
		access_rate_take(t->l, key, 1000 * SEC, NULL);
	}
	return NULL;
}

static void
test_threads_share_one_budget(void **state)
{
	struct access_rate r = rate("1000/h");
	struct access_limiter *l = access_limiter_new(&r, 0);
	struct taker t[8];
	pthread_t th[8];
	unsigned total = 0;

	for (int i = 0; i < 8; i++) {
		t[i] = (struct taker){.l = l};
		pthread_create(&th[i], NULL, take_many, &t[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		total += t[i].admitted;
	}
	assert_int_equal(total, 1000);
	access_limiter_free(l);
}

static void
test_client_key(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
	struct sockaddr sa = {.sa_family = AF_UNIX};
	char key[64], tiny[8];

	inet_pton(AF_INET, "192.0.2.7", &sin.sin_addr);
	assert_int_equal(access_client_key((struct sockaddr *)&sin, key, sizeof(key)), 0);
	assert_string_equal(key, "192.0.2.7");
	inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", &sin6.sin6_addr);
	assert_int_equal(access_client_key((struct sockaddr *)&sin6, key, sizeof(key)), 0);
	assert_string_equal(key, "2001:db8:1:2::/64");
	inet_pton(AF_INET6, "::ffff:198.51.100.9", &sin6.sin6_addr);
	assert_int_equal(access_client_key((struct sockaddr *)&sin6, key, sizeof(key)), 0);
	assert_string_equal(key, "198.51.100.9");
	inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
	assert_int_equal(access_client_key((struct sockaddr *)&sin6, key, sizeof(key)), 0);
	assert_string_equal(key, "::/64");
	assert_int_equal(access_client_key((struct sockaddr *)&sin, tiny, sizeof(tiny)), -1);
	assert_int_equal(access_client_key(&sa, key, sizeof(key)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test(test_burst_then_steady),
	    cmocka_unit_test(test_steady_rate),
	    cmocka_unit_test(test_refill),
	    cmocka_unit_test(test_unlimited),
	    cmocka_unit_test(test_many_keys),
	    cmocka_unit_test(test_idle_keys_forgotten),
	    cmocka_unit_test(test_cap_and_eviction),
	    cmocka_unit_test(test_long_keys),
	    cmocka_unit_test(test_set_rate),
	    cmocka_unit_test(test_threads_share_one_budget),
	    cmocka_unit_test(test_client_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
