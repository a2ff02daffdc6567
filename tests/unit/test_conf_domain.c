/* config_load(): outbound TLS settings (delivery.tls*, route "x".tls) and the per-destination
 * domain "x" { } sections: defaults, config_domain(), which policy applies to a destination
 * (config_tls_policy: route, then domain, then delivery), and the errors. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/defaults.h"
/* For its #defines only: conf/defaults.h copies the minimum version. */
#include "delivery/delivery.h"

#include "test_conf_util.h"

static struct config *
load_ok(const char *text)
{
	struct config *c = config_load(put("ok.conf", text), err, sizeof(err));

	if (c == NULL)
		fail_msg("config_load failed:\n%s\nfor:\n%s", err, text);
	return c;
}

static void
assert_tls_defaults(const struct config *c)
{
	assert_int_equal(c->delivery.tls, TLS_POLICY_OPPORTUNISTIC);
	assert_null(c->delivery.tls_ca_file);
	assert_int_equal(c->delivery.tls_min_version, 0x0303);
	assert_int_equal(DELIVERY_TLS_DEF_MIN_VERSION, 12); /* the same TLS 1.2 */
	assert_int_equal(c->delivery.tls_failure_memory_s, 3600);
	assert_int_equal(c->ndomains, 0);
	assert_null(config_domain(c, "example.com"));
	assert_int_equal(config_tls_policy(c, "example.com"), TLS_POLICY_OPPORTUNISTIC);
}

static void
test_defaults(void **state)
{
	struct config *c = config_load(NULL, err, sizeof(err));

	assert_non_null(c);
	assert_tls_defaults(c);
	config_free(c);
	c = load_ok("delivery {\n}\n");
	assert_tls_defaults(c);
	config_free(c);
}

/* etc/drover.conf shows every setting at its default: the TLS ones too. */
static void
test_example_config_is_the_defaults(void **state)
{
	struct config *c = config_load(DROVER_SOURCE_DIR "/etc/drover.conf", err, sizeof(err));

	if (c == NULL)
		fail_msg("etc/drover.conf: %s", err);
	assert_tls_defaults(c);
	config_free(c);
}

static void
test_full_file(void **state)
{
	struct config *c = load_ok("delivery {\n"
	                           "\ttls = \"required\"\n"
	                           "\ttls_ca_file = \"/etc/drover/ca.pem\"\n"
	                           "\ttls_min_version = \"TLSv1.3\"\n"
	                           "\ttls_failure_memory = \"10m\"\n"
	                           "}\n"
	                           "domain \"Example.COM\" {\n"
	                           "\ttls = \"required-verify\"\n"
	                           "}\n"
	                           "domain \"b.example\" {\n"
	                           "}\n"
	                           "domain \"r.example\" {\n"
	                           "\ttls = \"required\"\n"
	                           "}\n"
	                           "route \"r.example\" {\n"
	                           "\thosts = { \"10.0.0.5\" }\n"
	                           "\ttls = \"disabled\"\n"
	                           "}\n"
	                           "route \"s.example\" {\n"
	                           "\thosts = { \"10.0.0.6\" }\n"
	                           "}\n"
	                           "domain \"s.example\" { tls = \"opportunistic\" }\n");
	const struct domain_conf *d;

	assert_int_equal(c->delivery.tls, TLS_POLICY_REQUIRED);
	assert_string_equal(c->delivery.tls_ca_file, "/etc/drover/ca.pem");
	assert_int_equal(c->delivery.tls_min_version, 0x0304);
	assert_int_equal(c->delivery.tls_failure_memory_s, 600);
	assert_int_equal(c->ndomains, 4);

	d = config_domain(c, "example.com");
	assert_non_null(d);
	assert_string_equal(d->domain, "example.com"); /* stored in lower case */
	assert_int_equal(d->tls, TLS_POLICY_REQUIRED_VERIFY);
	assert_ptr_equal(config_domain(c, "EXAMPLE.com"), d);
	assert_null(config_domain(c, "sub.example.com")); /* exact match only */
	assert_int_equal(config_domain(c, "b.example")->tls, TLS_POLICY_UNSET);

	assert_int_equal(config_tls_policy(c, "Example.com"), TLS_POLICY_REQUIRED_VERIFY);
	assert_int_equal(config_tls_policy(c, "b.example"), TLS_POLICY_REQUIRED); /* delivery's */
	assert_int_equal(config_tls_policy(c, "r.example"), TLS_POLICY_DISABLED); /* the route's */
	assert_int_equal(config_tls_policy(c, "s.example"), TLS_POLICY_OPPORTUNISTIC);
	assert_int_equal(config_tls_policy(c, "other.example"), TLS_POLICY_REQUIRED);
	assert_int_equal(config_route(c, "s.example")->tls, TLS_POLICY_UNSET);
	config_free(c);

	c = load_ok("delivery { tls_failure_memory = 0 }\n");
	assert_int_equal(c->delivery.tls_failure_memory_s, 0);
	config_free(c);
}

static void
test_policy_names(void **state)
{
	static const char *const names[] = {"disabled", "opportunistic", "required",
	                                    "required-verify"};
	char text[256];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(text, sizeof(text), "delivery { tls = \"%s\" }\n", names[i]);
		struct config *c = load_ok(text);

		assert_string_equal(tls_policy_name(c->delivery.tls), names[i]);
		config_free(c);
	}
	assert_null(tls_policy_name(TLS_POLICY_UNSET));
}

/* Sorted once at load: a binary search finds each of many. */
static void
test_many_domains(void **state)
{
	size_t cap = 64 * 1024, len = 0;
	char *text = malloc(cap), name[64];
	struct config *c;

	assert_non_null(text);
	for (int i = 499; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len,
		                        "domain \"d%03d.example\" { tls = %s }\n", i,
		                        i % 2 ? "required" : "disabled");
	c = load_ok(text);
	free(text);
	assert_int_equal(c->ndomains, 500);
	for (int i = 0; i < 500; i++) {
		snprintf(name, sizeof(name), "D%03d.example", i);
		assert_int_equal(config_tls_policy(c, name),
		                 i % 2 ? TLS_POLICY_REQUIRED : TLS_POLICY_DISABLED);
	}
	assert_null(config_domain(c, "d500.example"));
	config_free(c);
}

static void
test_errors(void **state)
{
	const char *e = errors_of("delivery {\n"
	                          "\ttls = \"maybe\"\n"
	                          "\ttls_min_version = \"TLSv1.1\"\n"
	                          "\ttls_failure_memory = \"8d\"\n"
	                          "\ttls_ca_file = \"\"\n"
	                          "}\n"
	                          "domain \"a.example\" {\n"
	                          "\ttls = \"required_verify\"\n"
	                          "}\n"
	                          "route \"r.example\" {\n"
	                          "\thosts = { \"10.0.0.5\" }\n"
	                          "\ttls = \"yes\"\n"
	                          "}\n"
	                          "domain \"not a domain\" {\n"
	                          "}\n"
	                          "domain \"A.example\" {\n"
	                          "}\n");

	expect(e, "2: delivery.tls: \"maybe\": expected disabled, opportunistic, required or "
	          "required-verify");
	expect(e, "3: delivery.tls_min_version: \"TLSv1.1\": expected TLSv1.2 or TLSv1.3");
	expect(e, "4: delivery.tls_failure_memory: \"8d\": must be 0 (STARTTLS tried on every "
	          "connection) or from 1s to 7d");
	expect(e, "5: delivery.tls_ca_file: must not be empty");
	expect(e, "8: domain \"a.example\".tls: \"required_verify\": expected disabled, "
	          "opportunistic, required or required-verify");
	expect(e, "12: route \"r.example\".tls: \"yes\": expected");
	expect(e, "15: domain \"not a domain\": the title must be a domain name");
	expect(e, "17: domain \"A.example\": defined twice (as domain \"a.example\" before");
	assert_int_equal(count_lines(e), 8);

	e = errors_of("domain \"x.example\" {\n\tmax_connections = 3\n}\n");
	expect(e, "2: domain \"x.example\".max_connections: unknown setting");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_example_config_is_the_defaults),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_policy_names),
	    cmocka_unit_test(test_many_domains),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
