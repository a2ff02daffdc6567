/* config_load(): dkim { }, dkim_key "name" { } and the listener's dkim_sign and verify: the
 * defaults, a full file, and errors with their file, line and setting. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"

#include "test_conf_util.h"

static void
test_defaults(void **state)
{
	struct config *c = config_load(NULL, err, sizeof(err));

	assert_non_null(c);
	assert_int_equal(c->ndkim_keys, 0);
	assert_int_equal(c->dkim_on_key_error, DKIM_KEY_ERROR_DEFER);
	assert_true(c->listeners[0].dkim_sign);
	assert_int_equal(c->listeners[0].verify, 0);
	config_free(c);
}

static void
test_full(void **state)
{
	struct config *c =
	    config_load(put("dkim.conf", "listener \"in\" {\n"
	                                 "  address = \"127.0.0.1:25\"\n"
	                                 "  dkim_sign = false\n"
	                                 "  verify = { \"dmarc\" }\n"
	                                 "}\n"
	                                 "listener \"out\" {\n"
	                                 "  address = \"127.0.0.1:587\"\n"
	                                 "  verify = { \"DKIM\" }\n"
	                                 "}\n"
	                                 "dkim { on_key_error = \"unsigned\" }\n"
	                                 "dkim_key \"a\" {\n"
	                                 "  domain = \"Example.COM\"\n"
	                                 "  selector = \"s2026\"\n"
	                                 "  key = \"/keys/a.pem\"\n"
	                                 "}\n"
	                                 "dkim_key \"b\" {\n"
	                                 "  domain = \"esp.example\"\n"
	                                 "  selector = \"p1.sub\"\n"
	                                 "  key = \"/keys/b.pem\"\n"
	                                 "  sign_for = { \"*\", \"Other.Example\" }\n"
	                                 "  fallback = true\n"
	                                 "  canonicalization = \"simple\"\n"
	                                 "  headers = { \"From\", \"Subject\" }\n"
	                                 "  expire = \"7d\"\n"
	                                 "}\n"),
	                err, sizeof(err));
	const struct dkim_key_conf *a, *b;

	if (c == NULL)
		fail_msg("%s", err);
	assert_false(c->listeners[0].dkim_sign);
	assert_int_equal(c->listeners[0].verify, VERIFY_SPF | VERIFY_DKIM | VERIFY_DMARC);
	assert_true(c->listeners[1].dkim_sign);
	assert_int_equal(c->listeners[1].verify, VERIFY_DKIM);
	assert_int_equal(c->dkim_on_key_error, DKIM_KEY_ERROR_UNSIGNED);
	assert_int_equal(c->ndkim_keys, 2);
	a = &c->dkim_keys[0];
	b = &c->dkim_keys[1];
	assert_string_equal(a->name, "a");
	assert_string_equal(a->domain, "example.com");
	assert_string_equal(a->selector, "s2026");
	assert_string_equal(a->key_path, "/keys/a.pem");
	assert_non_null(strstr(a->where, "dkim.conf:14"));
	assert_int_equal(a->nsign_for, 1);
	assert_string_equal(a->sign_for[0], "example.com");
	assert_false(a->fallback);
	assert_true(a->header_relaxed && a->body_relaxed);
	assert_int_equal(a->nheaders, 0);
	assert_int_equal(a->expire_s, 0);
	assert_non_null(strstr(b->where, "dkim.conf:19"));
	assert_int_equal(b->nsign_for, 2);
	assert_string_equal(b->sign_for[0], "*");
	assert_string_equal(b->sign_for[1], "other.example");
	assert_true(b->fallback);
	assert_false(b->header_relaxed);
	assert_false(b->body_relaxed);
	assert_int_equal(b->nheaders, 2);
	assert_string_equal(b->headers[1], "Subject");
	assert_int_equal(b->expire_s, 7 * 86400);
	config_free(c);
}

static void
test_errors(void **state)
{
	const char *e = errors_of("dkim_key \"k\" {\n"
	                          "  domain = \"-bad-\"\n"
	                          "  selector = \"a..b\"\n"
	                          "  key = \"\"\n"
	                          "  canonicalization = \"relaxed/\"\n"
	                          "  expire = \"59m\"\n"
	                          "}\n"
	                          "dkim_key \"empty\" { }\n"
	                          "listener \"l\" {\n"
	                          "  address = \"127.0.0.1:25\"\n"
	                          "  verify = { \"arc\" }\n"
	                          "}\n");

	expect(e, "2: dkim_key \"k\".domain: \"-bad-\"");
	expect(e, "3: dkim_key \"k\".selector: \"a..b\"");
	expect(e, "4: dkim_key \"k\".key:");
	expect(e, "5: dkim_key \"k\".canonicalization: \"relaxed/\"");
	expect(e, "6: dkim_key \"k\".expire: \"59m\"");
	assert_non_null(strstr(e, "dkim_key \"empty\".domain: required"));
	assert_non_null(strstr(e, "dkim_key \"empty\".selector: required"));
	assert_non_null(strstr(e, "dkim_key \"empty\".key: required"));
	expect(e, "11: listener \"l\".verify: \"arc\": expected spf, dkim or dmarc");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
