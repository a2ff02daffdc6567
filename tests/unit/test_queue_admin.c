/* test_queue_admin.c - an operator's hand on the scheduler (engine_admin.c): items found by
 * id and taken out of turn (bounce, delete), parked untried until a suspension ends, made due
 * now (retry), dead sites revived; and the admin API's filters, selectors and durations. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "queue/engine_admin.h"
#include "queue/queue.h"
#include "queue_testing.h"
#include "spool/spool.h"

/* Retries every hour, a day's lifetime, no jitter; ready queues of ready_max. */
static struct queue *
new_queue(unsigned ready_max)
{
	struct queue_options o;
	struct queue *q;
	char err[128];

	queue_options_default(&o);
	o.seed = 7;
	o.ready_max = ready_max;
	o.batch_max = 8;
	o.dead_after = 1;
	o.retry = (struct retry_schedule){
	    .n = 1, .interval_us = {HOUR}, .jitter_pct = 0, .lifetime_us = 24 * HOUR};
	q = queue_new(&o, err, sizeof(err));
	assert_non_null(q);
	return q;
}

static void
test_find_and_take(void **state)
{
	struct queue *q = new_queue(100);
	struct queue_item *found[4], *items[8];
	struct queue_batch b;
	struct queue_stats st;

	(void)state;
	assert_int_equal(queue_add(q, id_of(1), "a.example", T0, 0, 0), 0);
	assert_int_equal(queue_add(q, id_of(1), "b.example", T0, T0 + HOUR, 1), 0);
	assert_int_equal(queue_add(q, id_of(2), "a.example", T0, 0, 0), 0);
	assert_int_equal(queue_find(q, id_of(1), found, 4), 2);
	assert_int_equal(queue_find(q, id_of(3), found, 4), 0);
	assert_int_equal(queue_find(q, "not an id", found, 4), 0);
	assert_int_equal(queue_find(q, id_of(2), found, 4), 1);
	assert_int_equal(queue_item_state(found[0]), QUEUE_ITEM_SCHEDULED);

	/* Taken out of turn: active, not offered to a connection, done like any other. */
	assert_int_equal(queue_item_take(q, found[0], T0), 0);
	assert_int_equal(queue_item_state(found[0]), QUEUE_ITEM_ACTIVE);
	assert_int_equal(queue_item_take(q, found[0], T0), -1);
	assert_int_equal(queue_take(q, T0, &b, items, 8), 1); /* message 1 only */
	assert_string_equal(queue_dest_name(b.dest), "a.example");
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0);
	queue_item_done(q, found[0], QUEUE_BOUNCED, T0, NULL);
	queue_stats(q, &st);
	assert_int_equal(st.items, 1);
	queue_free(q);
}

/* A suspended tenant's item goes back untried until the suspension ends: no attempt, and
 * it is found again as parked until taken. */
static void
test_park(void **state)
{
	struct queue *q = new_queue(100);
	struct queue_item *items[8], *found[2];
	struct queue_batch b;

	(void)state;
	assert_int_equal(queue_add(q, id_of(1), "a.example", T0, 0, 2), 0);
	assert_int_equal(queue_take(q, T0, &b, items, 8), 1);
	queue_item_park(q, items[0], T0 + HOUR, T0);
	queue_release(q, b.dest, QUEUE_CONN_NONE, T0);
	assert_int_equal(queue_find(q, id_of(1), found, 2), 1);
	assert_true(queue_item_parked(found[0]));
	assert_int_equal(queue_item_attempts(found[0]), 2);
	assert_int_equal(queue_next_due_us(q), T0 + HOUR);
	assert_int_equal(queue_take(q, T0 + MINUTE, &b, items, 8), 0);

	/* Resumed early: due now, and no longer parked. */
	assert_int_equal(queue_item_due_now(q, found[0], T0 + MINUTE), 1);
	assert_false(queue_item_parked(found[0]));
	assert_int_equal(queue_take(q, T0 + MINUTE, &b, items, 8), 1);
	assert_int_equal(queue_item_attempts(items[0]), 2);
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0 + MINUTE, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + MINUTE);

	/* Removed while parked-active: gone at the park. */
	assert_int_equal(queue_add(q, id_of(2), "a.example", T0, 0, 0), 0);
	assert_int_equal(queue_take(q, T0 + MINUTE, &b, items, 8), 1);
	assert_int_equal(queue_remove(q, id_of(2)), 1);
	queue_item_park(q, items[0], T0 + HOUR, T0 + MINUTE);
	queue_release(q, b.dest, QUEUE_CONN_NONE, T0 + MINUTE);
	assert_int_equal(queue_find(q, id_of(2), found, 2), 0);
	queue_free(q);
}

/* Retry now: a deferred item goes at once with its attempts; a dead site is probed. */
static void
test_due_now_and_revive(void **state)
{
	struct queue *q = new_queue(100);
	struct queue_item *items[8], *found[2];
	struct queue_batch b;

	(void)state;
	assert_int_equal(queue_add(q, id_of(1), "a.example", T0, T0 + HOUR, 1), 0);
	assert_int_equal(queue_find(q, id_of(1), found, 2), 1);
	assert_int_equal(queue_item_due_now(q, found[0], T0), 1);
	assert_int_equal(queue_item_due_now(q, found[0], T0), 0); /* already due */
	assert_int_equal(queue_take(q, T0, &b, items, 8), 1);
	assert_int_equal(queue_item_due_now(q, items[0], T0), 0); /* active */
	/* The connection fails: dead (dead_after 1), the item held to the cooldown's end. */
	queue_item_done(q, items[0], QUEUE_UNTRIED, T0, NULL);
	queue_release(q, b.dest, QUEUE_CONN_FAILED, T0);
	assert_int_equal(queue_take(q, T0 + 1, &b, items, 8), 0);
	assert_int_equal(queue_site_revive(q, "a.example", T0 + 1), 1);
	assert_int_equal(queue_site_revive(q, "a.example", T0 + 1), 0);
	assert_int_equal(queue_site_revive(q, "nowhere.example", T0 + 1), 0);
	assert_int_equal(queue_find(q, id_of(1), found, 2), 1);
	(void)queue_item_due_now(q, found[0], T0 + 1);
	assert_int_equal(queue_take(q, T0 + 1, &b, items, 8), 1);
	queue_item_done(q, items[0], QUEUE_DELIVERED, T0 + 1, NULL);
	queue_release(q, b.dest, QUEUE_CONN_OK, T0 + 1);
	queue_free(q);
}

/* A held lane with more due mail than its ready queue holds waits for the hold's end: the
 * advance does not spin on it (a suspended destination with a backlog). */
static void
test_held_full_lane_waits(void **state)
{
	struct queue *q = new_queue(2);
	struct queue_item *items[8];
	struct queue_batch b;
	struct queue_dest *d;

	(void)state;
	for (uint64_t i = 1; i <= 5; i++)
		assert_int_equal(queue_add(q, id_of(i), "a.example", T0, 0, 0), 0);
	assert_int_equal(queue_take(q, T0, &b, items, 1), 1);
	queue_item_done(q, items[0], QUEUE_UNTRIED, T0, NULL);
	queue_hold(q, b.dest, T0 + HOUR, T0);
	queue_release(q, b.dest, QUEUE_CONN_NONE, T0);
	queue_advance(q, T0 + 1);
	assert_int_equal(queue_next_due_us(q), T0 + HOUR);
	assert_int_equal(queue_take(q, T0 + MINUTE, &b, items, 8), 0);
	d = queue_dest_find(q, "a.example");
	assert_non_null(d);
	queue_hold(q, d, 0, T0 + MINUTE);
	assert_int_equal(queue_take(q, T0 + MINUTE, &b, items, 8), 2);
	queue_free(q);
}

/* ---- The API's words ---- */

static json_t *
body(const char *text)
{
	json_t *j = json_loads(text, 0, NULL);

	assert_non_null(j);
	return j;
}

static int
suspend(const char *text, bool resume, struct admin_suspend *r, char *err)
{
	json_t *j = body(text);
	int rc = admin_parse_suspend(j, resume, r, err, 256);

	json_decref(j);
	return rc;
}

static void
test_selectors(void **state)
{
	struct admin_suspend r;
	char err[256];

	(void)state;
	assert_int_equal(suspend("{\"destination\": \"Example.COM\", \"duration\": \"2h\", "
	                         "\"reason\": \"complaints\"}",
	                         false, &r, err),
	                 0);
	assert_int_equal(r.sel, ADMIN_SEL_DESTINATION);
	assert_string_equal(r.value, "example.com");
	assert_int_equal(r.duration_s, 7200);
	assert_string_equal(r.reason, "complaints");
	assert_int_equal(suspend("{\"tenant\": \"acme\"}", false, &r, err), 0);
	assert_int_equal(r.duration_s, 0); /* until resumed */
	assert_int_equal(suspend("{\"source\": \"s1\", \"duration\": 90}", false, &r, err), 0);
	assert_int_equal(r.duration_s, 90);
	/* Refused, each with its reason. */
	assert_int_equal(suspend("{\"domain\": \"example.com\"}", false, &r, err), -1);
	assert_non_null(strstr(err, "unknown field \"domain\""));
	assert_int_equal(suspend("{\"pool\": \"a\", \"stream\": \"b\"}", false, &r, err), -1);
	assert_non_null(strstr(err, "exactly one selector"));
	assert_int_equal(suspend("{}", false, &r, err), -1);
	assert_non_null(strstr(err, "a selector is required"));
	assert_int_equal(
	    suspend("{\"provider\": \"google\", \"duration\": \"2 hours\"}", false, &r, err), -1);
	assert_non_null(strstr(err, "duration \"2 hours\""));
	assert_int_equal(suspend("{\"campaign\": \"\"}", false, &r, err), -1);
	assert_int_equal(suspend("{\"campaign\": 3}", false, &r, err), -1);
	/* Resume: a selector or an id, no duration. */
	assert_int_equal(suspend("{\"id\": 4}", true, &r, err), 0);
	assert_true(r.has_id);
	assert_int_equal(r.id, 4);
	assert_int_equal(suspend("{\"id\": 4}", false, &r, err), -1);
	assert_int_equal(suspend("{\"id\": 4, \"tenant\": \"a\"}", true, &r, err), -1);
	assert_int_equal(suspend("{\"stream\": \"bulk\", \"duration\": \"1h\"}", true, &r, err),
	                 -1);
}

static void
test_durations(void **state)
{
	const struct {
		const char *json;
		int rc;
		uint64_t s;
	} cases[] = {
	    {"\"30s\"", 0, 30}, {"\"5m\"", 0, 300},    {"\"2h\"", 0, 7200}, {"\"1d\"", 0, 86400},
	    {"\"90\"", 0, 90},  {"45", 0, 45},         {"\"0\"", -1, 0},    {"0", -1, 0},
	    {"-5", -1, 0},      {"\"2H\"", -1, 0},     {"\"h\"", -1, 0},    {"\"\"", -1, 0},
	    {"\"1w\"", -1, 0},  {"\"20000d\"", -1, 0}, {"true", -1, 0},
	};
	char err[256];

	(void)state;
	for (size_t i = 0; i < nitems(cases); i++) {
		json_t *v = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		uint64_t s = 0;

		assert_non_null(v);
		assert_int_equal(admin_parse_duration(v, &s, err, sizeof(err)), cases[i].rc);
		if (cases[i].rc == 0)
			assert_int_equal(s, cases[i].s);
		json_decref(v);
	}
}

static void
test_lane_matching(void **state)
{
	struct admin_lane l = {.domain = "mail.example",
	                       .site = "google",
	                       .provider = "google",
	                       .pool = "bulk",
	                       .stream = "newsletters"};
	struct admin_lane plain = {.domain = "other.example", .site = "other.example"};

	(void)state;
	assert_true(admin_lane_matches(ADMIN_SEL_DESTINATION, "mail.example", &l));
	assert_true(admin_lane_matches(ADMIN_SEL_DESTINATION, "MAIL.example", &l));
	assert_false(admin_lane_matches(ADMIN_SEL_DESTINATION, "example", &l));
	assert_true(admin_lane_matches(ADMIN_SEL_PROVIDER, "google", &l));
	assert_false(admin_lane_matches(ADMIN_SEL_PROVIDER, "google", &plain));
	assert_true(admin_lane_matches(ADMIN_SEL_PROVIDER, "other.example", &plain)); /* its site */
	assert_true(admin_lane_matches(ADMIN_SEL_POOL, "bulk", &l));
	assert_false(admin_lane_matches(ADMIN_SEL_POOL, "bulk", &plain));
	assert_true(admin_lane_matches(ADMIN_SEL_STREAM, "newsletters", &l));
	assert_false(admin_lane_matches(ADMIN_SEL_STREAM, "Newsletters", &l));
	/* Sources, tenants and campaigns are not a lane's. */
	assert_false(admin_lane_matches(ADMIN_SEL_TENANT, "mail.example", &l));
	assert_false(admin_lane_matches(ADMIN_SEL_SOURCE, "bulk", &l));
	assert_true(admin_selector_is_lane(ADMIN_SEL_PROVIDER));
	assert_false(admin_selector_is_lane(ADMIN_SEL_SOURCE));
	assert_false(admin_selector_is_lane(ADMIN_SEL_CAMPAIGN));
	assert_true(admin_message_matches(ADMIN_SEL_TENANT, "acme", "acme", NULL));
	assert_false(admin_message_matches(ADMIN_SEL_TENANT, "acme", NULL, "acme"));
	assert_true(admin_message_matches(ADMIN_SEL_CAMPAIGN, "spring", "acme", "spring"));
	assert_false(admin_message_matches(ADMIN_SEL_CAMPAIGN, "spring", "acme", NULL));
	assert_false(admin_message_matches(ADMIN_SEL_DESTINATION, "acme", "acme", "acme"));
}

static int
filter(const char *text, bool allow_empty, struct admin_filter *f, char *err)
{
	json_t *j = body(text);
	int rc = admin_parse_filter(j, allow_empty, true, f, err, 256);

	json_decref(j);
	return rc;
}

static void
test_filters(void **state)
{
	struct admin_filter f;
	struct envelope env = {.id = "0123456789abcdef01234567",
	                       .sender = "News@Shop.example",
	                       .tenant = "acme",
	                       .campaign = "spring",
	                       .received_us = T0};
	char err[256];
	json_t *j;

	(void)state;
	/* Empty: refused for bounce and delete, everything for retry. */
	assert_int_equal(filter("{}", false, &f, err), -1);
	assert_non_null(strstr(err, "empty filter"));
	assert_int_equal(filter("{}", true, &f, err), 0);
	assert_true(admin_filter_message(&f, &env, T0));
	assert_true(admin_filter_domain(&f, "any.example"));
	assert_true(admin_filter_lane(&f, "default", NULL));
	admin_filter_clear(&f);
	assert_int_equal(filter("{\"reason\": \"x\"}", false, &f, err), -1); /* no filter */
	assert_int_equal(filter("{\"color\": \"red\"}", true, &f, err), -1);
	assert_non_null(strstr(err, "unknown field \"color\""));
	assert_int_equal(filter("{\"id\": \"xyz\"}", true, &f, err), -1);
	assert_int_equal(filter("{\"sender\": \"shop.example\"}", true, &f, err), -1);
	assert_int_equal(filter("{\"older_than\": \"soon\"}", true, &f, err), -1);

	/* Every field given must match. */
	assert_int_equal(filter("{\"sender\": \"@SHOP.example\", \"tenant\": \"acme\", "
	                        "\"older_than\": \"1h\", \"domain\": \"Gmail.com\", "
	                        "\"reason\": \"recall\"}",
	                        false, &f, err),
	                 0);
	assert_string_equal(f.reason, "recall");
	assert_false(admin_filter_message(&f, &env, T0 + MINUTE)); /* not an hour old yet */
	assert_true(admin_filter_message(&f, &env, T0 + HOUR));
	assert_true(admin_filter_domain(&f, "gmail.com"));
	assert_false(admin_filter_domain(&f, "yahoo.com"));
	j = admin_filter_json(&f);
	assert_string_equal(json_string_value(json_object_get(j, "older_than")), "1h");
	assert_string_equal(json_string_value(json_object_get(j, "domain")), "gmail.com");
	assert_null(json_object_get(j, "reason"));
	json_decref(j);
	admin_filter_clear(&f);

	assert_int_equal(
	    filter("{\"sender\": \"news@shop.example\", \"campaign\": \"fall\"}", false, &f, err),
	    0);
	assert_false(admin_filter_message(&f, &env, T0)); /* campaign differs */
	admin_filter_clear(&f);
	assert_int_equal(filter("{\"id\": \"0123456789ABCDEF01234567\"}", false, &f, err), 0);
	assert_true(admin_filter_message(&f, &env, T0));
	admin_filter_clear(&f);
	assert_int_equal(filter("{\"stream\": \"bulk\", \"pool\": \"p1\"}", false, &f, err), 0);
	assert_true(admin_filter_message(&f, &env, T0)); /* lane fields: the lane's */
	assert_true(admin_filter_lane(&f, "bulk", "p1"));
	assert_false(admin_filter_lane(&f, "bulk", NULL));
	assert_false(admin_filter_lane(&f, "default", "p1"));
	admin_filter_clear(&f);
	/* A message without tenant never matches a tenant filter. */
	env.tenant = NULL;
	assert_int_equal(filter("{\"tenant\": \"acme\"}", false, &f, err), 0);
	assert_false(admin_filter_message(&f, &env, T0));
	admin_filter_clear(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find_and_take),      cmocka_unit_test(test_park),
	    cmocka_unit_test(test_due_now_and_revive), cmocka_unit_test(test_held_full_lane_waits),
	    cmocka_unit_test(test_selectors),          cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_lane_matching),      cmocka_unit_test(test_filters),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
