/* test_shape_override.c - operators' overrides on a fake clock: values parsed as the rules
 * file's, applied over every layer and under adaptive actions, the more specific winning,
 * scoped to a source, ended by their duration or by removal, kept across a reload. */
#include "test_shape_util.h"

static const char rules[] =
    "provider \"gmail\" { domains = [\"gmail.com\", \"googlemail.com\"] max_connections = 10\n"
    "  message_rate = \"600/min\" }\n"
    "domain \"small.example\" { max_connections = 4 }\n"
    "adaptive \"volume\" { provider = \"gmail\" code = \"451\" action = \"limit\"\n"
    "  max_connections = 3 duration = \"30m\" }\n";

static struct shape_override
override_of(const char *provider, const char *domain, const char *source)
{
	struct shape_override o;

	memset(&o, 0, sizeof(o));
	if (provider != NULL)
		snprintf(o.provider, sizeof(o.provider), "%s", provider);
	if (domain != NULL)
		snprintf(o.domain, sizeof(o.domain), "%s", domain);
	if (source != NULL)
		snprintf(o.source, sizeof(o.source), "%s", source);
	return o;
}

static void
set_ok(struct shape_override *o, const char *name, const char *value)
{
	const char *why = NULL;

	if (shape_override_set(o, name, value, &why) != 0)
		fail_msg("%s = %s: %s", name, value, why);
}

static void
test_values_are_parsed_as_the_rules_file(void **state)
{
	struct shape_override o = override_of("gmail", NULL, NULL);
	const char *why = NULL;
	char buf[128];

	set_ok(&o, "max_connections", "2");
	set_ok(&o, "message_rate", "100/min");
	set_ok(&o, "retry", "5m, 10m");
	shape_field_format(&o.v, SHAPE_F_MESSAGE_RATE, buf, sizeof(buf));
	assert_string_equal(buf, "100/min");
	shape_field_format(&o.v, SHAPE_F_RETRY, buf, sizeof(buf));
	assert_string_equal(buf, "{\"5m\", \"10m\"}");
	assert_int_equal(o.set, (1u << SHAPE_F_MAX_CONNECTIONS) | (1u << SHAPE_F_MESSAGE_RATE) |
	                            (1u << SHAPE_F_RETRY));
	assert_int_equal(shape_override_set(&o, "max_connections", "0", &why), -1);
	assert_string_equal(why, "must be from 1 to 1000");
	assert_int_equal(shape_override_set(&o, "message_rate", "100/mn", &why), -1);
	assert_int_equal(shape_override_set(&o, "max_conections", "2", &why), -1);
	assert_string_equal(why, "no such shaping setting");
	/* A value refused leaves the one set before. */
	assert_int_equal(o.v.max_connections, 2);
}

static void
test_applies_over_the_layers_and_under_actions(void **state)
{
	struct shape_rules *r = rules_ok(rules);
	struct shape_state *st = shape_state_new(r, 0, 0);
	struct shape_override o = override_of("gmail", NULL, NULL);
	struct shape_params p;
	struct shape_event ev[2];

	set_ok(&o, "max_connections", "5");
	assert_int_equal(shape_override_add(st, &o, T0), 0);
	assert_int_equal(o.id, 1);
	shape_effective(st, "ip1", "gmail", "googlemail.com", T0, &p);
	assert_int_equal(p.s.max_connections, 5);
	assert_int_equal(p.origin[SHAPE_F_MAX_CONNECTIONS].layer, SHAPE_LAYER_OVERRIDE);
	assert_string_equal(shape_layer_name(p.origin[SHAPE_F_MAX_CONNECTIONS].layer), "override");
	/* What it does not set stays the rules'. */
	assert_int_equal(p.s.message_rate.count, 600);
	assert_int_equal(p.origin[SHAPE_F_MESSAGE_RATE].layer, SHAPE_LAYER_PROVIDER);
	/* Another provider's mail is untouched. */
	shape_effective(st, "ip1", NULL, "small.example", T0, &p);
	assert_int_equal(p.s.max_connections, 4);
	/* An adaptive limit still lowers it. */
	assert_int_equal(
	    shape_observe(st, "ip1", "gmail", "gmail.com", 451, NULL, "slow", T0, ev, nitems(ev)),
	    1);
	shape_effective(st, "ip1", "gmail", "gmail.com", T0, &p);
	assert_int_equal(p.s.max_connections, 3);
	assert_true(p.limited);
	shape_state_free(st);
	shape_rules_unref(r);
}

static void
test_more_specific_wins(void **state)
{
	struct shape_rules *r = rules_ok(rules);
	struct shape_state *st = shape_state_new(r, 0, 0);
	struct shape_override dom_src = override_of(NULL, "gmail.com", "ip2");
	struct shape_override dom = override_of(NULL, "gmail.com", NULL);
	struct shape_override prov = override_of("gmail", NULL, NULL);
	struct shape_params p;

	/* Added most specific first: the order of adding does not decide. */
	set_ok(&dom_src, "max_connections", "1");
	set_ok(&dom, "max_connections", "2");
	set_ok(&prov, "max_connections", "7");
	assert_int_equal(shape_override_add(st, &dom_src, T0), 0);
	assert_int_equal(shape_override_add(st, &dom, T0), 0);
	assert_int_equal(shape_override_add(st, &prov, T0), 0);
	shape_effective(st, "ip2", "gmail", "gmail.com", T0, &p);
	assert_int_equal(p.s.max_connections, 1);
	shape_effective(st, "ip1", "gmail", "gmail.com", T0, &p);
	assert_int_equal(p.s.max_connections, 2);
	shape_effective(st, NULL, "gmail", "gmail.com", T0, &p);
	assert_int_equal(p.s.max_connections, 2);
	shape_effective(st, "ip2", "gmail", "googlemail.com", T0, &p);
	assert_int_equal(p.s.max_connections, 7);
	shape_state_free(st);
	shape_rules_unref(r);
}

static void
test_ends_by_duration_or_removal_and_survives_reload(void **state)
{
	struct shape_rules *r = rules_ok(rules), *r2;
	struct shape_state *st = shape_state_new(r, 0, 0);
	struct shape_override a = override_of(NULL, "small.example", NULL);
	struct shape_override b = override_of("gmail", NULL, NULL), out[4];
	struct shape_params p;

	set_ok(&a, "max_connections", "1");
	a.ends_us = T0 + 30 * MINUTE;
	set_ok(&b, "max_connections", "2");
	assert_int_equal(shape_override_add(st, &a, T0), 0);
	assert_int_equal(shape_override_add(st, &b, T0), 0);
	assert_int_equal(shape_override_next_expiry(st), T0 + 30 * MINUTE);
	assert_int_equal(shape_overrides(st, T0, out, nitems(out)), 2);
	/* A reload keeps them. */
	r2 = rules_ok(rules);
	shape_state_set_rules(st, r2);
	shape_effective(st, NULL, NULL, "small.example", T0 + MINUTE, &p);
	assert_int_equal(p.s.max_connections, 1);
	/* Past its end it no longer applies, even before it is collected. */
	shape_effective(st, NULL, NULL, "small.example", T0 + 30 * MINUTE, &p);
	assert_int_equal(p.s.max_connections, 4);
	assert_int_equal(shape_overrides(st, T0 + 30 * MINUTE, out, nitems(out)), 1);
	assert_int_equal(shape_override_expire(st, T0 + 30 * MINUTE, out, nitems(out)), 1);
	assert_int_equal(out[0].id, a.id);
	assert_int_equal(shape_override_next_expiry(st), 0);
	/* Removal. */
	assert_true(shape_override_remove(st, b.id, &out[0]));
	assert_int_equal(out[0].v.max_connections, 2);
	assert_false(shape_override_remove(st, b.id, NULL));
	shape_effective(st, NULL, "gmail", "gmail.com", T0, &p);
	assert_int_equal(p.s.max_connections, 10);
	shape_state_free(st);
	shape_rules_unref(r);
	shape_rules_unref(r2);
}

static void
test_bounded_and_json(void **state)
{
	struct shape_rules *r = rules_ok(rules);
	struct shape_state *st = shape_state_new(r, 0, 0);
	struct shape_override o = override_of("gmail", NULL, "ip1");
	json_t *j;
	char *text;

	set_ok(&o, "message_rate", "100/min");
	for (int i = 0; i < SHAPE_OVERRIDES_MAX; i++)
		assert_int_equal(shape_override_add(st, &o, T0), 0);
	assert_int_equal(shape_override_add(st, &o, T0), -1);
	j = shape_override_json(&o);
	text = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	assert_string_equal(text,
	                    "{\"created\":\"2026-12-01T00:00:00.000000Z\",\"ends\":null,\"id\":256,"
	                    "\"provider\":\"gmail\",\"set\":{\"message_rate\":\"100/min\"},"
	                    "\"source\":\"ip1\"}");
	free(text);
	json_decref(j);
	shape_state_free(st);
	shape_rules_unref(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_values_are_parsed_as_the_rules_file),
	    cmocka_unit_test(test_applies_over_the_layers_and_under_actions),
	    cmocka_unit_test(test_more_specific_wins),
	    cmocka_unit_test(test_ends_by_duration_or_removal_and_survives_reload),
	    cmocka_unit_test(test_bounded_and_json),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
