/* test_shape_throttle.c - rates as written, GCRA on a fake clock (the rate held within 1% over
 * a simulated minute, bursts, the wait it names), idle keys and the memory bound, and
 * connection slots: per source, per provider over all sources, shared by a provider's
 * domains. */
#include "test_shape_util.h"

static struct shape_rate
rate(const char *text)
{
	struct shape_rate r;
	const char *why;

	if (shape_rate_parse(text, &r, &why) != 0)
		fail_msg("\"%s\": %s", text, why);
	return r;
}

static void
test_rate_parse(void **state)
{
	static const struct {
		const char *text;
		uint64_t count, per_s;
		uint32_t burst;
		const char *formatted;
	} ok[] = {
	    {"unlimited", 0, 0, 0, "unlimited"},
	    {"0", 0, 0, 0, "unlimited"},
	    {"50/s", 50, 1, 1, "50/s"},
	    {"50/sec", 50, 1, 1, "50/s"},
	    {"300/min", 300, 60, 1, "300/min"},
	    {"300/m", 300, 60, 1, "300/min"},
	    {"300/min burst 20", 300, 60, 20, "300/min burst 20"},
	    {"300/min  burst\t20", 300, 60, 20, "300/min burst 20"},
	    {"1000/h", 1000, 3600, 1, "1000/h"},
	    {"1000/hour", 1000, 3600, 1, "1000/h"},
	    {"20000/day", 20000, 86400, 1, "20000/day"},
	    {"20000/d", 20000, 86400, 1, "20000/day"},
	    {"7/10min", 7, 600, 1, "7/10min"},
	    {"1/30day", 1, 30 * 86400, 1, "1/30day"},
	    {"1000000000/s", 1000000000, 1, 1, "1000000000/s"},
	};
	static const char *const bad[] = {
	    "",
	    "300",
	    "300/",
	    "300/mn",
	    "/min",
	    "0/min",
	    "-1/min",
	    "300/min burst",
	    "300/min burst 0",
	    "300/min burst 301",
	    "300/min burst 2x",
	    "300/min bust 2",
	    "1/31day",
	    "1000000001/s",
	    "99999999999999999999/s",
	    "300/0min",
	    "300 /min",
	    "300/min x",
	    "unlimited burst 2",
	};
	struct shape_rate r;
	const char *why;
	char buf[64];

	for (size_t i = 0; i < nitems(ok); i++) {
		if (shape_rate_parse(ok[i].text, &r, &why) != 0)
			fail_msg("\"%s\": %s", ok[i].text, why);
		assert_int_equal(r.count, ok[i].count);
		assert_int_equal(r.per_s, ok[i].per_s);
		if (r.count > 0)
			assert_int_equal(r.burst, ok[i].burst);
		shape_rate_format(&r, buf, sizeof(buf));
		assert_string_equal(buf, ok[i].formatted);
	}
	for (size_t i = 0; i < nitems(bad); i++) {
		why = NULL;
		if (shape_rate_parse(bad[i], &r, &why) == 0)
			fail_msg("\"%s\" parsed", bad[i]);
		assert_non_null(why);
	}
	r = rate("10/min");
	struct shape_rate s = rate("1/s"), u = rate("unlimited");

	assert_true(shape_rate_stricter(&r, &s));
	assert_false(shape_rate_stricter(&s, &r));
	assert_true(shape_rate_stricter(&s, &u));
	assert_false(shape_rate_stricter(&u, &s));
	assert_false(shape_rate_stricter(&r, &r));
}

/* Offers one event every step_us for duration_us from T0; returns how many conformed. */
static unsigned
offer(struct shape_state *st, const char *key, const struct shape_rate *r, uint64_t start,
      uint64_t duration_us, uint64_t step_us)
{
	unsigned n = 0;
	uint64_t next;

	for (uint64_t t = start; t < start + duration_us; t += step_us)
		n += shape_throttle_take(st, key, r, t, &next);
	return n;
}

static void
within_one_percent(unsigned got, double want)
{
	if (got < want * 0.99 || got > want * 1.01)
		fail_msg("%u conformed, want %.0f +- 1%%", got, want);
}

static void
test_gcra_rate_over_a_minute(void **state)
{
	struct shape_state *st = state_on("");
	struct shape_rate r;

	/* Offered far faster than the rate, for one simulated minute each. */
	r = rate("300/min");
	within_one_percent(offer(st, "a", &r, T0, MINUTE, 1000), 300);
	r = rate("3000/min");
	within_one_percent(offer(st, "b", &r, T0, MINUTE, 100), 3000);
	r = rate("7/s"); /* an interval that is not a whole number of microseconds */
	within_one_percent(offer(st, "c", &r, T0, MINUTE, 997), 420);
	r = rate("50/s burst 50");
	within_one_percent(offer(st, "d", &r, T0, MINUTE, 1000), 3000 + 49);
	/* Over an hour at 1000/h, offers every 0.1 s. */
	r = rate("1000/h");
	within_one_percent(offer(st, "e", &r, T0, HOUR, 100000), 1000);
	/* Offered slower than the rate: everything conforms. */
	r = rate("300/min");
	assert_int_equal(offer(st, "f", &r, T0, MINUTE, 250000), 240);
	shape_state_free(st);
}

/* The rate raised (a reload, a limit's end): the slow rate's debt holds the key back one new
 * interval at most, then the new rate is in force. */
static void
test_gcra_rate_raised(void **state)
{
	struct shape_state *st = state_on("");
	struct shape_rate slow = rate("1/min"), fast = rate("100/s");
	uint64_t next = 0;

	(void)state;
	assert_true(shape_throttle_take(st, "k", &slow, T0, &next));
	assert_false(shape_throttle_take(st, "k", &slow, T0 + 1000, &next));
	assert_int_equal(next, T0 + MINUTE);
	assert_false(shape_throttle_take(st, "k", &fast, T0 + 1000, &next));
	assert_true(next <= T0 + 1000 + 10000);
	assert_true(shape_throttle_take(st, "k", &fast, next, &next));
	within_one_percent(offer(st, "k", &fast, T0 + 20000, MINUTE, 1000), 6000);
	/* Lowered again: the slower rate holds from there. */
	assert_true(offer(st, "k", &slow, T0 + MINUTE + 20000, MINUTE, 1000) <= 2);
	shape_state_free(st);
}

static void
test_gcra_burst_and_wait(void **state)
{
	struct shape_state *st = state_on("");
	struct shape_rate r = rate("300/min burst 20"); /* T = 200 ms */
	uint64_t next = 0, t = T0;

	/* A burst of 20 at once after a quiet time, then one per 200 ms. */
	for (int i = 0; i < 20; i++) {
		assert_true(shape_throttle_take(st, "k", &r, t, &next));
		assert_int_equal(next, t);
	}
	assert_false(shape_throttle_take(st, "k", &r, t, &next));
	assert_int_equal(next, t + 200 * MSEC);
	/* Asking does not take: the same answer again, and none before the time named. */
	assert_false(shape_throttle_peek(st, "k", &r, t + 200 * MSEC - 1, &next));
	assert_int_equal(next, t + 200 * MSEC);
	assert_true(shape_throttle_peek(st, "k", &r, t + 200 * MSEC, &next));
	assert_true(shape_throttle_peek(st, "k", &r, t + 200 * MSEC, &next));
	assert_true(shape_throttle_take(st, "k", &r, t + 200 * MSEC, &next));
	assert_false(shape_throttle_take(st, "k", &r, t + 200 * MSEC, &next));
	assert_int_equal(next, t + 400 * MSEC);
	/* After 20 intervals of quiet, a full burst again. */
	t += 200 * MSEC + 20 * 200 * MSEC;
	for (int i = 0; i < 20; i++)
		assert_true(shape_throttle_take(st, "k", &r, t, &next));
	assert_false(shape_throttle_take(st, "k", &r, t, &next));

	/* Without a burst: evenly spaced, the first at once. */
	r = rate("2/s");
	assert_true(shape_throttle_take(st, "even", &r, T0, &next));
	assert_false(shape_throttle_take(st, "even", &r, T0 + 1, &next));
	assert_int_equal(next, T0 + 500 * MSEC);
	/* The rate may change under a key (a reload, a limit): its state carries over. */
	r = rate("1/min");
	assert_false(shape_throttle_take(st, "even", &r, T0 + 400 * MSEC, &next));
	assert_int_equal(next, T0 + 500 * MSEC);
	assert_true(shape_throttle_take(st, "even", &r, T0 + 500 * MSEC, &next));
	assert_false(shape_throttle_take(st, "even", &r, T0 + 30 * USEC, &next));
	assert_int_equal(next, T0 + 500 * MSEC + MINUTE);
	/* Unlimited: always, and no key kept. */
	r = rate("unlimited");
	for (int i = 0; i < 1000; i++)
		assert_true(shape_throttle_take(st, "free", &r, T0, &next));
	shape_state_free(st);
}

static void
test_idle_keys_and_bound(void **state)
{
	struct shape_rules *rules = rules_ok("");
	struct shape_state *st = shape_state_new(rules, 64, 0);
	struct shape_rate r = rate("1/min");
	struct shape_stats s;
	char key[32];
	uint64_t next;

	/* Keys that went idle (their bucket full again) are dropped as others come. */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		assert_true(shape_throttle_take(st, key, &r, T0 + (uint64_t)i * MINUTE, &next));
	}
	shape_state_stats(st, &s);
	assert_true(s.throttle_keys <= 64);
	assert_int_equal(s.evictions, 0);
	/* Many keys busy at once: the bound holds, by evicting (counted). */
	for (int i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "busy%d", i);
		assert_true(shape_throttle_take(st, key, &r, T0 + DAY, &next));
	}
	shape_state_stats(st, &s);
	assert_true(s.throttle_keys <= 64);
	assert_true(s.evictions >= 1000 - 64);
	/* A key still held is still limited. */
	assert_false(shape_throttle_take(st, "busy999", &r, T0 + DAY, &next));
	/* shape_expire sweeps idle keys too, a few slots per call: 64 keys in 128 slots are
	 * gone after (64 + 128) / 8 calls. */
	for (int i = 0; i < 24; i++)
		shape_expire(st, T0 + 2 * DAY, NULL, 0);
	shape_state_stats(st, &s);
	assert_int_equal(s.throttle_keys, 0);
	shape_state_free(st);
	shape_rules_unref(rules);
}

static const char providers[] = "provider \"gmail\" {\n"
                                "  mx_suffix = [\".google.com\"]\n"
                                "  domains = [\"gmail.com\", \"googlemail.com\"]\n"
                                "  message_rate = \"60/min\"\n"
                                "  provider_message_rate = \"90/min\"\n"
                                "  max_connections = 2\n"
                                "  provider_max_connections = 3\n"
                                "  connection_rate = \"2/s\"\n"
                                "}\n";

static void
test_message_rate_shared(void **state)
{
	struct shape_state *st = state_on(providers);
	struct shape_params a1, a2, src[3];
	uint64_t next = 0, t;
	unsigned got = 0;

	/* Two domains of one provider: one destination, one set of counters. */
	shape_effective(st, "ip-1", "gmail", "gmail.com", T0, &a1);
	shape_effective(st, "ip-1", "gmail", "workspace.example", T0, &a2);
	assert_string_equal(a1.dest, "gmail");
	assert_string_equal(a2.dest, "gmail");
	for (t = T0; t < T0 + MINUTE; t += 10 * MSEC)
		got += shape_message_take(st, "ip-1", (t / (10 * MSEC)) % 2 ? &a1 : &a2, t, &next);
	within_one_percent(got, 60);
	shape_state_free(st);

	/* Three sources at 60/min each, the provider at 90/min over all of them. */
	st = state_on(providers);
	got = 0;
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof(name), "ip-%d", i);
		shape_effective(st, name, "gmail", i == 1 ? "gmail.com" : "googlemail.com", T0,
		                &src[i]);
	}
	for (t = T0; t < T0 + MINUTE; t += 10 * MSEC) {
		for (int i = 0; i < 3; i++) {
			char name[16];

			snprintf(name, sizeof(name), "ip-%d", i);
			got += shape_message_take(st, name, &src[i], t, &next);
		}
	}
	within_one_percent(got, 90);
	/* A refusal names when both limits allow one: not a moment before. */
	assert_false(shape_message_take(st, "ip-0", &src[0], t, &next));
	assert_true(next > t);
	assert_false(shape_message_take(st, "ip-0", &src[0], next - 1, &t));
	assert_true(shape_message_take(st, "ip-0", &src[0], next, &t));
	shape_state_free(st);
}

static void
test_connection_slots(void **state)
{
	struct shape_state *st = state_on(providers);
	struct shape_params g, w, x;
	uint64_t when;

	shape_effective(st, "ip-1", "gmail", "gmail.com", T0, &g);
	shape_effective(st, "ip-1", "gmail", "workspace.example", T0, &w);
	shape_effective(st, "ip-2", "gmail", "gmail.com", T0, &x);
	/* Two per source across the provider's domains. */
	assert_int_equal(shape_conn_acquire(st, "ip-1", &g, T0, &when), SHAPE_GO);
	/* connection_rate 2/s: the next one in half a second. */
	assert_int_equal(shape_conn_acquire(st, "ip-1", &w, T0, &when), SHAPE_RATE);
	assert_int_equal(when, T0 + 500 * MSEC);
	/* The documented key asks the same question without taking. */
	{
		char key[64];
		uint64_t next;

		shape_key(key, sizeof(key), "conn", "ip-1", w.dest);
		assert_false(shape_throttle_peek(st, key, &w.s.connection_rate, T0 + 1, &next));
		assert_int_equal(next, T0 + 500 * MSEC);
		shape_key(key, sizeof(key), "msg", "ip-1", w.dest);
		assert_true(shape_throttle_peek(st, key, &w.s.message_rate, T0 + 1, &next));
		assert_true(shape_message_take(st, "ip-1", &w, T0 + 1, &next));
		assert_false(shape_throttle_peek(st, key, &w.s.message_rate, T0 + 2, &next));
		assert_int_equal(next, T0 + 1 + USEC);
		shape_key(key, sizeof(key), "pmsg", NULL, w.dest);
		assert_false(
		    shape_throttle_peek(st, key, &w.s.provider_message_rate, T0 + 2, &next));
	}
	assert_int_equal(shape_conn_acquire(st, "ip-1", &w, T0 + 500 * MSEC, &when), SHAPE_GO);
	assert_int_equal(shape_conn_acquire(st, "ip-1", &g, T0 + USEC, &when), SHAPE_NO_SLOT);
	assert_int_equal(when, 0);
	assert_int_equal(shape_conn_count(st, "ip-1", "gmail"), 2);
	/* Three over all sources. */
	assert_int_equal(shape_conn_acquire(st, "ip-2", &x, T0 + USEC, &when), SHAPE_GO);
	assert_int_equal(shape_conn_acquire(st, "ip-2", &x, T0 + 2 * USEC, &when), SHAPE_NO_SLOT);
	assert_int_equal(shape_conn_count(st, NULL, "gmail"), 3);
	/* A release frees a slot of its source and of the provider. */
	shape_conn_release(st, "ip-1", "gmail");
	assert_int_equal(shape_conn_count(st, "ip-1", "gmail"), 1);
	assert_int_equal(shape_conn_acquire(st, "ip-2", &x, T0 + 3 * USEC, &when), SHAPE_GO);
	/* A release without a slot takes nothing from anyone. */
	shape_conn_release(st, "ip-3", "gmail");
	shape_conn_release(st, "ip-1", "nowhere");
	assert_int_equal(shape_conn_count(st, NULL, "gmail"), 3);
	shape_conn_release(st, "ip-1", "gmail");
	shape_conn_release(st, "ip-2", "gmail");
	shape_conn_release(st, "ip-2", "gmail");
	shape_conn_release(st, "ip-2", "gmail");
	assert_int_equal(shape_conn_count(st, NULL, "gmail"), 0);
	{
		struct shape_stats s;

		shape_state_stats(st, &s);
		assert_int_equal(s.connections, 0);
		assert_int_equal(s.connection_keys, 0);
	}
	/* Another destination has slots of its own. */
	shape_effective(st, "ip-1", NULL, "other.example", T0, &g);
	assert_string_equal(g.dest, "other.example");
	for (int i = 0; i < 20; i++)
		assert_int_equal(shape_conn_acquire(st, "ip-1", &g, T0, &when), SHAPE_GO);
	assert_int_equal(shape_conn_acquire(st, "ip-1", &g, T0, &when), SHAPE_NO_SLOT);
	shape_state_free(st);
}

static void
test_keys(void **state)
{
	char buf[64];

	assert_int_equal(shape_key(buf, sizeof(buf), "msg", "ip-1", "gmail"), 14);
	assert_string_equal(buf, "msg:ip-1:gmail");
	shape_key(buf, sizeof(buf), "pmsg", NULL, "gmail");
	assert_string_equal(buf, "pmsg::gmail");
	assert_int_equal(shape_key(buf, 5, "msg", "ip-1", "gmail"), 14);
	assert_string_equal(buf, "msg:");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rate_parse),
	    cmocka_unit_test(test_gcra_rate_over_a_minute),
	    cmocka_unit_test(test_gcra_rate_raised),
	    cmocka_unit_test(test_gcra_burst_and_wait),
	    cmocka_unit_test(test_idle_keys_and_bound),
	    cmocka_unit_test(test_message_rate_shared),
	    cmocka_unit_test(test_connection_slots),
	    cmocka_unit_test(test_keys),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
