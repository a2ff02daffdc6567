/* test_shape_adaptive.c - adaptive rules on a fake clock: a trigger at once and "N in a
 * period", the actions (suspend a source or a provider, limit, backoff until a delivery
 * succeeds, bounce), their scope, extension, expiry and the end of each by itself, the
 * listing, an operator's resume, reloads, the bound on actions, and the event records. */
#include "test_shape_util.h"

static const char rules[] =
    "provider \"yahoo\" { mx_suffix = [\".yahoodns.net\"] domains = [\"yahoo.com\", "
    "\"aol.com\"] }\n"                                                              /* 1 */
    "provider \"gmail\" {\n"                                                        /* 2 */
    "  domains = [\"gmail.com\"]\n"                                                 /* 3 */
    "  backoff_retry = [\"20m\", \"40m\"]\n"                                        /* 4 */
    "  backoff_message_rate = \"30/min\"\n"                                         /* 5 */
    "  message_rate = \"600/min\"\n"                                                /* 6 */
    "  max_connections = 10\n"                                                      /* 7 */
    "}\n"                                                                           /* 8 */
    "provider \"slow\" { domains = [\"slow.example\"] message_rate = \"1/min\" }\n" /* 9 */
    "adaptive \"ts01\" {\n"                                                         /* 10 */
    "  provider = \"yahoo\" code = \"421\" status = \"4.7.0\"\n"                    /* 11 */
    "  text = '\\[TS01\\]'\n"                                                       /* 12 */
    "  action = \"suspend-source\" duration = \"1h\"\n"                             /* 13 */
    "}\n"                                                                           /* 14 */
    "adaptive \"volume\" {\n"                                                       /* 15 */
    "  provider = \"yahoo\" code = \"4xx\" trigger = \"3 in 5m\"\n"                 /* 16 */
    "  action = \"limit\" message_rate = \"10/min\" max_connections = 2\n"          /* 17 */
    "  duration = \"30m\"\n"                                                        /* 18 */
    "}\n"                                                                           /* 19 */
    "adaptive \"gmail-backoff\" { provider = \"gmail\" status = \"4.7.28\"\n"       /* 20 */
    "  action = \"backoff\" duration = \"4h\" }\n"                                  /* 21 */
    "adaptive \"gmail-block\" { provider = \"gmail\" code = \"550\" text = 'BLOCKED'\n"
    "  action = \"suspend-provider\" duration = \"2h\" }\n"                      /* 23 */
    "adaptive \"any-bounce\" { code = \"5xx\" status = \"5.7.*\"\n"              /* 24 */
    "  text = 'permanently deferred' action = \"bounce\" duration = \"10m\" }\n" /* 25 */
    "adaptive \"dom\" { domain = \"Small.Example\" code = \"421\"\n"             /* 26 */
    "  action = \"suspend-source\" duration = \"5m\" }\n"                        /* 27 */
    "adaptive \"slow-limit\" { provider = \"slow\" code = \"451\"\n"             /* 28 */
    "  action = \"limit\" message_rate = \"10/min\" duration = \"5m\" }\n"       /* 29 */
    "adaptive \"gmail-slower\" { provider = \"gmail\" status = \"4.7.0\"\n"      /* 30 */
    "  backoff_retry = [\"2h\"] action = \"backoff\" duration = \"1h\" }\n";     /* 31 */

#define TS01 "[TS01] Messages from 192.0.2.1 temporarily deferred due to user complaints"

static struct shape_event ev[8];

static size_t
observe(struct shape_state *st, const char *source, const char *provider, const char *domain,
        int code, const char *status, const char *text, uint64_t now)
{
	memset(ev, 0, sizeof(ev));
	return shape_observe(st, source, provider, domain, code, status, text, now, ev, nitems(ev));
}

static void
test_once_suspends_and_recovers(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_params p;
	struct shape_event end[4], act[4];
	uint64_t until = 0, when;

	assert_int_equal(observe(st, "ip-1", "yahoo", "aol.com", 421, "4.7.0", TS01, T0), 1);
	assert_int_equal(ev[0].kind, SHAPE_EV_START);
	assert_int_equal(ev[0].action, SHAPE_ACT_SUSPEND_SOURCE);
	assert_string_equal(ev[0].rule, "ts01");
	assert_string_equal(ev[0].file, "rules.conf");
	assert_int_equal(ev[0].line, 10);
	assert_string_equal(ev[0].source, "ip-1");
	assert_string_equal(ev[0].dest, "yahoo");
	assert_string_equal(ev[0].provider, "yahoo");
	assert_int_equal(ev[0].started_us, T0);
	assert_int_equal(ev[0].ends_us, T0 + HOUR);
	assert_int_equal(ev[0].code, 421);
	assert_string_equal(ev[0].status, "4.7.0");
	assert_string_equal(ev[0].text, TS01);
	assert_int_equal(ev[0].matches, 1);

	/* The source is held for the provider (every domain of it), other sources are not. */
	assert_true(shape_suspended(st, "ip-1", "yahoo", T0 + 1, &until));
	assert_int_equal(until, T0 + HOUR);
	assert_false(shape_suspended(st, "ip-2", "yahoo", T0 + 1, &until));
	assert_int_equal(until, 0);
	shape_effective(st, "ip-1", "yahoo", "yahoo.com", T0 + 1, &p);
	assert_int_equal(shape_conn_acquire(st, "ip-1", &p, T0 + 1, &when), SHAPE_SUSPENDED);
	assert_int_equal(when, T0 + HOUR);

	/* Listed while active. */
	assert_int_equal(shape_active(st, T0 + 30 * MINUTE, act, nitems(act)), 1);
	assert_string_equal(act[0].rule, "ts01");
	assert_int_equal(act[0].kind, SHAPE_EV_START);

	/* The engine's expiry timer: the earliest end, also once it has passed. */
	assert_int_equal(shape_next_expiry(st), T0 + HOUR);
	assert_int_equal(observe(st, "ip-2", "yahoo", "aol.com", 421, "4.7.0", TS01, T0 + MINUTE),
	                 1);
	assert_int_equal(shape_next_expiry(st), T0 + HOUR);
	/* It ends by itself, whether or not anyone collects it... */
	assert_false(shape_suspended(st, "ip-1", "yahoo", T0 + HOUR, NULL));
	assert_int_equal(shape_active(st, T0 + HOUR, act, nitems(act)), 1);
	assert_string_equal(act[0].source, "ip-2");
	assert_int_equal(shape_conn_acquire(st, "ip-1", &p, T0 + HOUR, &when), SHAPE_GO);
	/* ... and shape_expire gives its end event once. */
	assert_int_equal(shape_expire(st, T0 + HOUR - 1, end, nitems(end)), 0);
	assert_int_equal(shape_expire(st, T0 + HOUR, end, nitems(end)), 1);
	assert_int_equal(shape_next_expiry(st), T0 + HOUR + MINUTE);
	assert_int_equal(end[0].kind, SHAPE_EV_END);
	assert_int_equal(end[0].reason, SHAPE_END_EXPIRED);
	assert_string_equal(end[0].rule, "ts01");
	assert_int_equal(end[0].started_us, T0);
	assert_int_equal(end[0].ends_us, T0 + HOUR);
	assert_int_equal(shape_expire(st, T0 + DAY, end, nitems(end)), 1);
	assert_int_equal(shape_expire(st, T0 + DAY, end, nitems(end)), 0);
	assert_int_equal(shape_next_expiry(st), 0);
	shape_state_free(st);
}

static void
test_n_in_period(void **state)
{
	struct shape_state *st = state_on(rules);
	const char *busy = "Service temporarily unavailable, try again later";

	/* 3 in 5m, a sliding window: the first match leaves it before the third arrives. */
	assert_int_equal(observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, busy, T0), 0);
	assert_int_equal(
	    observe(st, "ip-1", "yahoo", "yahoo.com", 451, NULL, busy, T0 + 4 * MINUTE), 0);
	assert_int_equal(observe(st, "ip-1", "yahoo", "aol.com", 421, NULL, busy, T0 + 5 * MINUTE),
	                 0);
	/* Each source counts for itself. */
	assert_int_equal(
	    observe(st, "ip-2", "yahoo", "yahoo.com", 421, NULL, busy, T0 + 5 * MINUTE), 0);
	assert_int_equal(
	    observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, busy, T0 + 6 * MINUTE), 1);
	assert_int_equal(ev[0].action, SHAPE_ACT_LIMIT);
	assert_string_equal(ev[0].rule, "volume");
	assert_int_equal(ev[0].matches, 3);
	assert_int_equal(ev[0].max_connections, 2);
	assert_int_equal(ev[0].message_rate.count, 10);
	assert_int_equal(ev[0].ends_us, T0 + 36 * MINUTE);
	/* Fired: counting starts again, so one more match only extends nothing. */
	assert_int_equal(
	    observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, busy, T0 + 7 * MINUTE), 0);
	/* Replies that do not match count for nothing: a 5xx, another provider. */
	assert_int_equal(
	    observe(st, "ip-2", "yahoo", "yahoo.com", 550, NULL, busy, T0 + 6 * MINUTE), 0);
	assert_int_equal(
	    observe(st, "ip-2", "gmail", "gmail.com", 421, NULL, busy, T0 + 6 * MINUTE), 0);
	assert_int_equal(
	    observe(st, "ip-2", "yahoo", "yahoo.com", 421, NULL, busy, T0 + 7 * MINUTE), 0);
	assert_int_equal(
	    observe(st, "ip-2", "yahoo", "yahoo.com", 421, NULL, busy, T0 + 8 * MINUTE), 1);
	shape_state_free(st);
}

static void
test_extend_and_restart(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_event end[4];

	assert_int_equal(observe(st, "ip-1", "yahoo", "aol.com", 421, "4.7.0", TS01, T0), 1);
	assert_int_equal(
	    observe(st, "ip-1", "yahoo", "aol.com", 421, "4.7.0", TS01, T0 + 30 * MINUTE), 1);
	assert_int_equal(ev[0].kind, SHAPE_EV_EXTEND);
	assert_int_equal(ev[0].started_us, T0);
	assert_int_equal(ev[0].ends_us, T0 + 90 * MINUTE);
	assert_int_equal(shape_expire(st, T0 + HOUR, end, nitems(end)), 0);
	assert_true(shape_suspended(st, "ip-1", "yahoo", T0 + 89 * MINUTE, NULL));
	/* Past its end but not collected: a new trigger ends the old one, then starts anew. */
	assert_int_equal(observe(st, "ip-1", "yahoo", "aol.com", 421, "4.7.0", TS01, T0 + 2 * HOUR),
	                 2);
	assert_int_equal(ev[0].kind, SHAPE_EV_END);
	assert_int_equal(ev[0].reason, SHAPE_END_EXPIRED);
	assert_int_equal(ev[0].ends_us, T0 + 90 * MINUTE);
	assert_int_equal(ev[1].kind, SHAPE_EV_START);
	assert_int_equal(ev[1].started_us, T0 + 2 * HOUR);
	assert_int_equal(shape_expire(st, T0 + 3 * HOUR, end, nitems(end)), 1);
	assert_int_equal(end[0].started_us, T0 + 2 * HOUR);
	shape_state_free(st);
}

static void
test_limit(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_params p;
	char buf[64];

	for (int i = 0; i < 3; i++)
		observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, "busy", T0 + (uint64_t)i);
	shape_effective(st, "ip-1", "yahoo", "aol.com", T0 + MINUTE, &p);
	assert_true(p.limited);
	assert_false(p.backoff);
	shape_field_format(&p.s, SHAPE_F_MESSAGE_RATE, buf, sizeof(buf));
	assert_string_equal(buf, "10/min");
	assert_int_equal(p.origin[SHAPE_F_MESSAGE_RATE].layer, SHAPE_LAYER_ADAPTIVE);
	assert_string_equal(p.origin[SHAPE_F_MESSAGE_RATE].name, "volume");
	assert_int_equal(p.origin[SHAPE_F_MESSAGE_RATE].line, 15);
	assert_int_equal(p.s.max_connections, 2);
	assert_int_equal(p.s.initial_connections, 2);
	/* The limit holds in the throttle too: 10/min. */
	{
		unsigned got = 0;
		uint64_t next;

		for (uint64_t t = T0 + MINUTE; t < T0 + 2 * MINUTE; t += 100 * MSEC)
			got += shape_message_take(st, "ip-1", &p, t, &next);
		assert_int_equal(got, 10);
	}
	/* Another source is not limited; after the duration, nobody is. */
	shape_effective(st, "ip-2", "yahoo", "aol.com", T0 + MINUTE, &p);
	assert_false(p.limited);
	assert_int_equal(p.s.message_rate.count, 0);
	shape_effective(st, "ip-1", "yahoo", "aol.com", T0 + 30 * MINUTE + 2, &p);
	assert_false(p.limited);
	assert_int_equal(p.s.max_connections, 20);

	/* A limit never raises: "slow" sends 1/min, its limit rule says 10/min. */
	observe(st, "ip-1", "slow", "slow.example", 451, NULL, "later", T0);
	shape_effective(st, "ip-1", "slow", "slow.example", T0 + 1, &p);
	assert_true(p.limited);
	assert_int_equal(p.s.message_rate.count, 1);
	assert_int_equal(p.origin[SHAPE_F_MESSAGE_RATE].layer, SHAPE_LAYER_PROVIDER);
	shape_state_free(st);
}

static void
test_backoff_until_success(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_params p;
	struct shape_event end[2];
	char buf[128];

	assert_int_equal(observe(st, "ip-1", "gmail", "gmail.com", 421, "4.7.28",
	                         "Our system has detected an unusual rate of unsolicited mail", T0),
	                 1);
	assert_int_equal(ev[0].action, SHAPE_ACT_BACKOFF);
	assert_int_equal(ev[0].nretry, 2); /* the provider's backoff_retry */
	assert_int_equal(ev[0].retry_s[1], 2400);
	shape_effective(st, "ip-1", "gmail", "gmail.com", T0 + MINUTE, &p);
	assert_true(p.backoff);
	assert_int_equal(p.s.max_connections, 1);
	assert_int_equal(p.s.initial_connections, 1);
	shape_field_format(&p.s, SHAPE_F_RETRY, buf, sizeof(buf));
	assert_string_equal(buf, "{\"20m\", \"40m\"}");
	assert_int_equal(p.origin[SHAPE_F_RETRY].layer, SHAPE_LAYER_ADAPTIVE);
	assert_string_equal(p.origin[SHAPE_F_RETRY].name, "gmail-backoff");
	shape_field_format(&p.s, SHAPE_F_MESSAGE_RATE, buf, sizeof(buf));
	assert_string_equal(buf, "30/min"); /* backoff_message_rate under 600/min */
	/* A success elsewhere changes nothing; one from this source ends it. */
	assert_int_equal(shape_observe_success(st, "ip-2", "gmail", T0 + MINUTE, end, 2), 0);
	assert_int_equal(shape_observe_success(st, "ip-1", "gmail", T0 + 2 * MINUTE, end, 2), 1);
	assert_int_equal(end[0].kind, SHAPE_EV_END);
	assert_int_equal(end[0].reason, SHAPE_END_SUCCESS);
	assert_int_equal(end[0].ends_us, T0 + 2 * MINUTE);
	shape_effective(st, "ip-1", "gmail", "gmail.com", T0 + 2 * MINUTE, &p);
	assert_false(p.backoff);
	assert_int_equal(p.s.max_connections, 10);
	assert_int_equal(p.s.nretry, 5);
	assert_int_equal(shape_expire(st, T0 + DAY, end, 2), 0);

	/* Without a success, the duration ends it; a rule's own backoff_retry wins. */
	assert_int_equal(
	    observe(st, "ip-1", "gmail", "gmail.com", 421, "4.7.0", "Try again later", T0 + HOUR),
	    1);
	assert_int_equal(ev[0].nretry, 1);
	assert_int_equal(ev[0].retry_s[0], 7200);
	assert_int_equal(shape_expire(st, T0 + 2 * HOUR, end, 2), 1);
	assert_int_equal(end[0].reason, SHAPE_END_EXPIRED);
	shape_effective(st, "ip-1", "gmail", "gmail.com", T0 + 2 * HOUR, &p);
	assert_false(p.backoff);
	shape_state_free(st);
}

static void
test_suspend_provider_and_bounce(void **state)
{
	struct shape_state *st = state_on(rules);
	uint64_t until;
	json_t *j;

	assert_int_equal(observe(st, "ip-1", "gmail", "gmail.com", 550, "5.7.1",
	                         "Messages from 192.0.2.1 blocked", T0),
	                 1);
	assert_int_equal(ev[0].action, SHAPE_ACT_SUSPEND_PROVIDER);
	assert_string_equal(ev[0].source, "");
	/* Every source is held for the provider. */
	assert_true(shape_suspended(st, "ip-2", "gmail", T0 + 1, &until));
	assert_int_equal(until, T0 + 2 * HOUR);
	assert_true(shape_suspended(st, NULL, "gmail", T0 + 1, &until));
	j = shape_event_json(&ev[0]);
	assert_true(json_is_null(json_object_get(j, "source")));
	assert_string_equal(json_string_value(json_object_get(j, "action")), "suspend-provider");
	json_decref(j);

	/* An unscoped rule applies to any destination, provider or not. */
	assert_int_equal(observe(st, "ip-1", NULL, "Mail.Example", 554, "5.7.9",
	                         "All messages will be permanently deferred", T0),
	                 1);
	assert_int_equal(ev[0].action, SHAPE_ACT_BOUNCE);
	assert_string_equal(ev[0].dest, "mail.example");
	assert_string_equal(ev[0].provider, "");
	assert_true(shape_should_bounce(st, "ip-1", "mail.example", T0 + 1));
	assert_false(shape_should_bounce(st, "ip-2", "mail.example", T0 + 1));
	assert_false(shape_should_bounce(st, "ip-1", "mail.example", T0 + 10 * MINUTE));
	shape_state_free(st);
}

static void
test_matching(void **state)
{
	struct shape_state *st = state_on(rules);

	/* Scope: a domain rule for its domain only (any case), a provider rule not elsewhere. */
	assert_int_equal(observe(st, "ip-1", NULL, "other.example", 421, NULL, "x", T0), 0);
	assert_int_equal(observe(st, "ip-1", NULL, "SMALL.example.", 421, NULL, "x", T0), 1);
	assert_string_equal(ev[0].rule, "dom");
	assert_int_equal(observe(st, "ip-1", "gmail", "gmail.com", 421, "4.7.0", TS01, T0), 1);
	assert_string_equal(ev[0].rule, "gmail-slower");
	/* Conditions: code, status (none sent: no match for a status rule), caseless text. */
	assert_int_equal(observe(st, "ip-3", "yahoo", "aol.com", 421, NULL, TS01, T0), 0);
	assert_int_equal(observe(st, "ip-4", "yahoo", "aol.com", 450, "4.7.0", TS01, T0), 0);
	assert_int_equal(
	    observe(st, "ip-7", "yahoo", "aol.com", 421, "4.7.0", "[ts01] lower case", T0), 1);
	assert_int_equal(
	    observe(st, "ip-4", "gmail", "gmail.com", 550, NULL, "you are BlOcKeD", T0), 1);
	assert_int_equal(observe(st, "ip-5", NULL, "x.example", 0, NULL, NULL, T0), 0);
	assert_int_equal(
	    observe(st, "ip-5", NULL, "x.example", 554, "5.7.9 ", "permanently deferred", T0), 1);
	assert_int_equal(
	    observe(st, "ip-6", NULL, "x.example", 554, "4.7.9", "permanently deferred", T0), 0);
	shape_state_free(st);
}

static void
test_every_matching_rule(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_event one[1];

	observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, "busy", T0);
	observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, "busy", T0 + 1);
	/* The third 4xx is a [TS01] too: both rules act on it, in file order. */
	assert_int_equal(observe(st, "ip-1", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0 + 2), 2);
	assert_string_equal(ev[0].rule, "ts01");
	assert_string_equal(ev[1].rule, "volume");
	/* Room for fewer events than there are: the count says so, the actions happen. */
	assert_int_equal(
	    shape_observe(st, "ip-2", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0, one, 0), 1);
	assert_true(shape_suspended(st, "ip-2", "yahoo", T0 + 1, NULL));
	shape_state_free(st);
}

static void
test_cancel(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_event out[8];

	observe(st, "ip-1", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0);
	observe(st, "ip-2", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0);
	observe(st, "ip-1", "gmail", "gmail.com", 550, NULL, "blocked", T0);
	/* One source's, of one kind; the others stay. */
	assert_int_equal(shape_cancel(st, "ip-1", "Yahoo", SHAPE_ACT_LIMIT, T0 + 1, out, 8), 0);
	assert_int_equal(shape_cancel(st, "ip-1", "yahoo", -1, T0 + 1, out, 8), 1);
	assert_int_equal(out[0].reason, SHAPE_END_CANCELLED);
	assert_int_equal(out[0].ends_us, T0 + 1);
	assert_false(shape_suspended(st, "ip-1", "yahoo", T0 + 2, NULL));
	assert_true(shape_suspended(st, "ip-2", "yahoo", T0 + 2, NULL));
	/* A provider-wide one belongs to no source: only a cancel for every source ends it. */
	assert_int_equal(shape_cancel(st, "ip-1", "gmail", -1, T0 + 1, out, 8), 0);
	assert_int_equal(shape_cancel(st, NULL, "gmail", -1, T0 + 1, out, 8), 1);
	assert_false(shape_suspended(st, "ip-1", "gmail", T0 + 2, NULL));
	assert_int_equal(shape_active(st, T0 + 2, out, 8), 1);
	shape_state_free(st);
}

static void
test_reload(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_rules *next = rules_ok(
	    "provider \"yahoo\" { domains = [\"yahoo.com\"] }\n"
	    "adaptive \"volume\" { provider = \"yahoo\" code = \"4xx\" trigger = \"3 in 5m\"\n"
	    "  action = \"limit\" max_connections = 1 duration = \"30m\" }\n");

	observe(st, "ip-1", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0);    /* ts01, volume 1 */
	observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, "busy", T0 + 1); /* volume 2 */
	shape_state_set_rules(st, next);
	shape_rules_unref(next);
	assert_ptr_equal(shape_state_rules(st), next);
	/* The suspension runs to its end though its rule is gone... */
	assert_true(shape_suspended(st, "ip-1", "yahoo", T0 + 59 * MINUTE, NULL));
	/* ... and counting starts again under the new rules. */
	assert_int_equal(observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, "busy", T0 + 2), 0);
	assert_int_equal(observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, "busy", T0 + 3), 0);
	assert_int_equal(observe(st, "ip-1", "yahoo", "yahoo.com", 421, NULL, "busy", T0 + 4), 1);
	assert_int_equal(ev[0].max_connections, 1);
	shape_state_free(st);
}

static void
test_actions_bound(void **state)
{
	struct shape_rules *r = rules_ok(rules);
	struct shape_state *st = shape_state_new(r, 0, 1);
	struct shape_stats s;

	assert_int_equal(observe(st, "ip-1", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0), 1);
	assert_int_equal(observe(st, "ip-2", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0), 0);
	assert_false(shape_suspended(st, "ip-2", "yahoo", T0 + 1, NULL));
	shape_state_stats(st, &s);
	assert_int_equal(s.actions, 1);
	assert_int_equal(s.actions_dropped, 1);
	/* Room again once the first is collected. */
	shape_expire(st, T0 + HOUR, ev, nitems(ev));
	assert_int_equal(observe(st, "ip-2", "yahoo", "yahoo.com", 421, "4.7.0", TS01, T0 + HOUR),
	                 1);
	shape_state_free(st);
	shape_rules_unref(r);
}

static void
test_event_json(void **state)
{
	struct shape_state *st = state_on(rules);
	struct shape_event end[1];
	json_t *j;
	char *s;

	for (int i = 0; i < 3; i++)
		observe(st, "ip-1", "yahoo", "yahoo.com", 421, "4.7.1", "line one\nline two\xff",
		        T0 + (uint64_t)i);
	assert_string_equal(ev[0].text, "line one line two\xff");
	j = shape_event_json(&ev[0]);
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(
	    s,
	    "{\"event\":\"start\",\"action\":\"limit\",\"rule\":\"volume\",\"file\":\"rules.conf\","
	    "\"line\":15,\"source\":\"ip-1\",\"dest\":\"yahoo\",\"provider\":\"yahoo\","
	    "\"started\":\"2026-12-01T00:00:00.000002Z\",\"ends\":\"2026-12-01T00:30:00.000002Z\","
	    "\"code\":421,\"status\":\"4.7.1\",\"text\":\"line one line two?\",\"matches\":3,"
	    "\"message_rate\":\"10/min\",\"max_connections\":2}");
	free(s);
	json_decref(j);
	assert_int_equal(shape_expire(st, T0 + HOUR, end, 1), 1);
	j = shape_event_json(&end[0]);
	s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_string_equal(
	    s,
	    "{\"event\":\"end\",\"action\":\"limit\",\"rule\":\"volume\",\"file\":\"rules.conf\","
	    "\"line\":15,\"source\":\"ip-1\",\"dest\":\"yahoo\",\"provider\":\"yahoo\","
	    "\"started\":\"2026-12-01T00:00:00.000002Z\",\"ends\":\"2026-12-01T00:30:00.000002Z\","
	    "\"reason\":\"expired\",\"message_rate\":\"10/min\",\"max_connections\":2}");
	free(s);
	json_decref(j);
	observe(st, "ip-1", "gmail", "gmail.com", 421, "4.7.28", "slow down", T0);
	j = shape_event_json(&ev[0]);
	s = json_dumps(json_object_get(j, "retry"), JSON_COMPACT | JSON_ENCODE_ANY);
	assert_string_equal(s, "[\"20m\",\"40m\"]");
	free(s);
	json_decref(j);
	shape_state_free(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_once_suspends_and_recovers),
	    cmocka_unit_test(test_n_in_period),
	    cmocka_unit_test(test_extend_and_restart),
	    cmocka_unit_test(test_limit),
	    cmocka_unit_test(test_backoff_until_success),
	    cmocka_unit_test(test_suspend_provider_and_bounce),
	    cmocka_unit_test(test_matching),
	    cmocka_unit_test(test_every_matching_rule),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_reload),
	    cmocka_unit_test(test_actions_bound),
	    cmocka_unit_test(test_event_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
