/* test_queue_summary.c - the queue summary's grouping (summary.c): by queue, by tenant and
 * campaign, by provider; a message counted once per group, its pending recipients each; the
 * oldest reception; the newest deferral's reply; the keys' parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/queue.h"
#include "shape/shape.h"
#include "spool/spool.h"

#define T0 (1796083200ULL * USEC)

static struct config *cfg;

static int
setup(void **state)
{
	char err[1024];

	cfg = config_load(NULL, err, sizeof(err));
	return cfg == NULL;
}

static int
teardown(void **state)
{
	config_free(cfg);
	return 0;
}

static struct envelope_rcpt rcpts[4];

/* A message with recipients given as "address" or "address!reply" (deferred with that reply
 * and one attempt, next attempt at T0 + attempt_at seconds) or "address=" (delivered). */
static struct envelope
message(const char *tenant, const char *campaign, uint64_t received_us, const char *const *to,
        size_t n, uint64_t attempt_at)
{
	struct envelope env;

	memset(&env, 0, sizeof(env));
	memset(rcpts, 0, sizeof(rcpts));
	snprintf(env.id, sizeof(env.id), "0123456789abcdef01234567");
	env.sender = "s@app.example";
	env.tenant = (char *)tenant;
	env.campaign = (char *)campaign;
	env.received_us = received_us;
	env.size = 1000;
	for (size_t i = 0; i < n; i++) {
		const char *bang = strchr(to[i], '!');
		size_t len = bang != NULL ? (size_t)(bang - to[i]) : strlen(to[i]);

		rcpts[i].address = strndup(to[i], len);
		if (rcpts[i].address[len - 1] == '=') {
			rcpts[i].address[len - 1] = '\0';
			rcpts[i].state = RCPT_DELIVERED;
		}
		if (bang != NULL) {
			rcpts[i].last_reply = (char *)bang + 1;
			rcpts[i].attempts = 1;
			rcpts[i].next_attempt_us = T0 + attempt_at * USEC;
		}
	}
	env.rcpt = rcpts;
	env.nrcpt = n;
	return env;
}

static void
message_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpt; i++)
		free(env->rcpt[i].address);
}

static void
add(struct queue_summary *s, const char *tenant, const char *campaign, uint64_t received_us,
    const char *const *to, size_t n, uint64_t attempt_at)
{
	struct envelope env = message(tenant, campaign, received_us, to, n, attempt_at);

	queue_summary_add(s, &env);
	message_free(&env);
}

static json_t *
group(json_t *out, size_t i)
{
	return json_array_get(json_object_get(out, "groups"), i);
}

static long long
num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static const char *
str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static struct queue_summary *
summary_by(const char *by, struct shape_rules *rules)
{
	enum queue_summary_key keys[QUEUE_BY_COUNT];
	char err[256];
	size_t n;

	assert_int_equal(queue_summary_keys_parse(by, keys, &n, err, sizeof(err)), 0);
	return queue_summary_new(cfg, keys, n, rules);
}

static void
test_by_tenant_and_campaign(void **state)
{
	struct queue_summary *s = summary_by("tenant,campaign", NULL);
	const char *a[] = {"x@one.example", "y@one.example!451 4.7.1 later", "z@two.example="};
	const char *b[] = {"x@two.example!421 old"};
	const char *c[] = {"x@two.example!421 newer"};
	json_t *out, *g;

	add(s, "t1", "c1", T0 - 100 * USEC, a, 3, 10);
	add(s, "t1", "c1", T0 - 300 * USEC, b, 1, 5);
	add(s, "t1", "c2", T0 - 50 * USEC, c, 1, 20);
	add(s, NULL, NULL, T0 - 10 * USEC, c, 1, 1);
	out = queue_summary_finish(s, T0);
	assert_int_equal(num(out, "messages"), 4);
	assert_int_equal(num(out, "recipients"), 5); /* z@ was delivered */
	assert_int_equal(json_array_size(json_object_get(out, "groups")), 3);
	/* Most messages first. */
	g = group(out, 0);
	assert_string_equal(str(g, "tenant"), "t1");
	assert_string_equal(str(g, "campaign"), "c1");
	assert_null(json_object_get(g, "queue"));
	assert_int_equal(num(g, "messages"), 2);
	assert_int_equal(num(g, "recipients"), 3);
	assert_int_equal(num(g, "bytes"), 2000);
	assert_int_equal(num(g, "oldest_age_s"), 300);
	/* The reply of the recipient deferred last (latest next attempt). */
	assert_string_equal(str(g, "last_error"), "451 4.7.1 later");
	/* No tenant is a group of its own, shown as null. */
	for (size_t i = 1; i < 3; i++) {
		g = group(out, i);
		if (json_is_null(json_object_get(g, "tenant"))) {
			assert_true(json_is_null(json_object_get(g, "campaign")));
			assert_int_equal(num(g, "oldest_age_s"), 10);
		} else
			assert_string_equal(str(g, "campaign"), "c2");
	}
	json_decref(out);
}

static void
test_by_queue_and_destination(void **state)
{
	struct queue_summary *s = summary_by("queue", NULL);
	const char *a[] = {"x@One.Example", "y@one.example", "z@two.example"};
	json_t *out, *g;

	add(s, "t1", NULL, T0, a, 3, 0);
	out = queue_summary_finish(s, T0);
	assert_int_equal(json_array_size(json_object_get(out, "groups")), 2);
	g = group(out, 0);
	assert_string_equal(str(g, "queue"), "default@one.example");
	assert_string_equal(str(g, "stream"), "default");
	assert_true(json_is_null(json_object_get(g, "pool")));
	assert_string_equal(str(g, "destination"), "one.example");
	assert_int_equal(num(g, "messages"), 1);
	assert_int_equal(num(g, "recipients"), 2);
	assert_null(json_object_get(g, "tenant"));
	assert_true(json_is_null(json_object_get(g, "last_error")));
	json_decref(out);
}

static void
test_by_provider(void **state)
{
	static const char rules_text[] = "provider \"gmail\" { domains = [\"gmail.com\", "
	                                 "\"googlemail.com\"] }\n";
	char err[1024];
	struct shape_rules *r = shape_rules_parse("r.conf", rules_text, strlen(rules_text), NULL,
	                                          NULL, err, sizeof(err));
	struct queue_summary *s;
	const char *a[] = {"x@gmail.com", "y@googlemail.com", "z@other.example"};
	json_t *out, *g;

	assert_non_null(r);
	s = summary_by("provider", r);
	shape_rules_unref(r); /* the summary holds its own */
	add(s, NULL, NULL, T0, a, 3, 0);
	out = queue_summary_finish(s, T0);
	assert_int_equal(json_array_size(json_object_get(out, "groups")), 2);
	/* gmail's two domains in one group (one message, two recipients); the other domain has
	 * no provider: null. Both groups have one message: ordered by their keys. */
	for (size_t i = 0; i < 2; i++) {
		g = group(out, i);
		assert_int_equal(num(g, "messages"), 1);
		if (json_is_null(json_object_get(g, "provider")))
			assert_int_equal(num(g, "recipients"), 1);
		else {
			assert_string_equal(str(g, "provider"), "gmail");
			assert_int_equal(num(g, "recipients"), 2);
		}
	}
	assert_true(json_is_null(json_object_get(group(out, 0), "provider")) !=
	            json_is_null(json_object_get(group(out, 1), "provider")));
	json_decref(out);
}

static void
test_keys_parse(void **state)
{
	enum queue_summary_key keys[QUEUE_BY_COUNT];
	char err[256];
	size_t n;

	assert_int_equal(queue_summary_keys_parse("destination", keys, &n, err, sizeof(err)), 0);
	assert_int_equal(n, 1);
	assert_int_equal(keys[0], QUEUE_BY_DESTINATION);
	assert_int_equal(queue_summary_keys_parse("stream,pool,tenant,campaign,provider", keys, &n,
	                                          err, sizeof(err)),
	                 0);
	assert_int_equal(n, 5);
	assert_int_equal(queue_summary_keys_parse("tenant,bogus", keys, &n, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "\"bogus\": expected"));
	assert_int_equal(queue_summary_keys_parse("tenant,tenant", keys, &n, err, sizeof(err)), -1);
	assert_int_equal(queue_summary_keys_parse("tenant,", keys, &n, err, sizeof(err)), -1);
	assert_int_equal(queue_summary_keys_parse("", keys, &n, err, sizeof(err)), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_by_tenant_and_campaign),
	    cmocka_unit_test(test_by_queue_and_destination),
	    cmocka_unit_test(test_by_provider),
	    cmocka_unit_test(test_keys_parse),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
