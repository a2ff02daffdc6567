/* webhook "name" { } sections: the defaults, a full section, several of them, and each bad
 * value reported at its file:line with the setting's name. */

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
#include "conf/defaults.h"
#include "test_conf_util.h"

static struct config *
load(const char *text)
{
	struct config *c;

	put("drover.conf", text);
	c = config_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("did not load:\n%s\n%s", text, err);
	return c;
}

static void
test_none_by_default(void **state)
{
	struct config *c = load("threads = 1\n");

	assert_int_equal(c->nwebhooks, 0);
	config_free(c);
	c = config_load(NULL, err, sizeof(err));
	assert_non_null(c);
	assert_int_equal(c->nwebhooks, 0);
	config_free(c);
}

static void
test_defaults(void **state)
{
	struct config *c = load("webhook \"crm\" {\n"
	                        "  url = \"https://hooks.example.com/drover\"\n"
	                        "}\n");
	const struct webhook_conf *w = &c->webhooks[0];

	assert_int_equal(c->nwebhooks, 1);
	assert_string_equal(w->name, "crm");
	assert_string_equal(w->url, "https://hooks.example.com/drover");
	assert_int_equal(w->nevents, 0); /* every type */
	assert_int_equal(w->batch_max, DEF_WEBHOOK_BATCH_MAX);
	assert_int_equal(w->batch_wait_s, 1);
	assert_int_equal(w->timeout_s, 10);
	assert_int_equal(w->retry_max_s, 600);
	assert_int_equal(w->backlog_max, 1024ULL * 1024 * 1024);
	assert_int_equal(w->nheaders, 0);
	assert_null(w->tls_ca_file);
	config_free(c);
}

static void
test_full_sections(void **state)
{
	struct config *c = load("webhook \"crm\" {\n"
	                        "  url = \"http://127.0.0.1:8080/hook?x=1\"\n"
	                        "  events = { \"Delivery\", \"Bounce\", \"Feedback\" }\n"
	                        "  batch_max = 500\n"
	                        "  batch_wait = 0\n"
	                        "  timeout = \"30s\"\n"
	                        "  retry_max = \"1h\"\n"
	                        "  backlog_max = \"10M\"\n"
	                        "  header = { \"Authorization: Bearer abc\", \"X-Tenant:acme\" }\n"
	                        "  tls_ca_file = \"/etc/drover/hooks-ca.pem\"\n"
	                        "}\n"
	                        "webhook \"audit.log-2\" {\n"
	                        "  url = \"HTTPS://user:pw@[2001:db8::1]:8443/in\"\n"
	                        "}\n");
	const struct webhook_conf *w = &c->webhooks[0];

	assert_int_equal(c->nwebhooks, 2);
	assert_int_equal(w->nevents, 3);
	assert_string_equal(w->events[2], "Feedback");
	assert_int_equal(w->batch_max, 500);
	assert_int_equal(w->batch_wait_s, 0);
	assert_int_equal(w->timeout_s, 30);
	assert_int_equal(w->retry_max_s, 3600);
	assert_int_equal(w->backlog_max, 10 * 1024 * 1024);
	assert_int_equal(w->nheaders, 2);
	assert_string_equal(w->headers[1], "X-Tenant:acme");
	assert_string_equal(w->tls_ca_file, "/etc/drover/hooks-ca.pem");
	assert_string_equal(c->webhooks[1].name, "audit.log-2");
	assert_string_equal(c->webhooks[1].url, "HTTPS://user:pw@[2001:db8::1]:8443/in");
	config_free(c);
}

static void
test_bad_values_at_their_lines(void **state)
{
	const char *e = errors_of("webhook \"a\" {\n"                                   /* 1 */
	                          "  url = \"ftp://example.com/\"\n"                    /* 2 */
	                          "  events = { \"Delivery\", \"bad name\" }\n"         /* 3 */
	                          "  batch_max = 0\n"                                   /* 4 */
	                          "  batch_wait = \"2 weeks\"\n"                        /* 5 */
	                          "  timeout = 0\n"                                     /* 6 */
	                          "  retry_max = \"2d\"\n"                              /* 7 */
	                          "  backlog_max = \"1k\"\n"                            /* 8 */
	                          "  header = { \"NoColon\", \"Content-Length: 1\" }\n" /* 9 */
	                          "  tls_ca_file = \"\"\n"                              /* 10 */
	                          "}\n"                                                 /* 11 */
	                          "webhook \"b\" {\n"                                   /* 12 */
	                          "  url = \"http://:80/\"\n"                           /* 13 */
	                          "}\n"                                                 /* 14 */
	                          "webhook \"c\" {\n"                                   /* 15 */
	                          "  url = \"http://host:99999/\"\n"                    /* 16 */
	                          "}\n"                                                 /* 17 */
	                          "webhook \"d d\" {\n"                                 /* 18 */
	                          "}\n"                                                 /* 19 */
	                          "webhook \"e\" {\n"                                   /* 20 */
	                          "  url = \"https://hooks.example.com/a b\"\n"         /* 21 */
	                          "}\n");                                               /* 22 */

	expect(e, "2: webhook \"a\".url: \"ftp://example.com/\": expected an http:// or https://");
	expect(e, "3: webhook \"a\".events: \"bad name\": a record type is a name");
	expect(e, "4: webhook \"a\".batch_max: \"0\": must be from 1 to 10000");
	expect(e, "5: webhook \"a\".batch_wait: \"2 weeks\": expected a number of seconds");
	expect(e, "6: webhook \"a\".timeout: \"0\": must be from 1s to 10m");
	expect(e, "7: webhook \"a\".retry_max: \"2d\": must be from 1s to 1d");
	expect(e, "8: webhook \"a\".backlog_max: \"1k\": must be at least 64k");
	expect(e, "9: webhook \"a\".header: \"NoColon\": expected \"Name: value\"");
	expect(e, "9: webhook \"a\".header: \"Content-Length\" is set by Drover");
	expect(e, "10: webhook \"a\".tls_ca_file: must not be empty");
	expect(e, "13: webhook \"b\".url: \"http://:80/\": no host");
	expect(e, "16: webhook \"c\".url: \"http://host:99999/\": the port must be");
	expect(e, "19: webhook \"d d\": the title must be");
	expect(e, "19: webhook \"d d\".url: required");
	expect(e, "21: webhook \"e\".url: \"https://hooks.example.com/a b\": spaces");
	assert_null(strstr(e, "events: \"Delivery\""));
}

static void
test_duplicate_title(void **state)
{
	const char *e = errors_of("webhook \"a\" { url = \"http://127.0.0.1:1/\" }\n"
	                          "webhook \"a\" { url = \"http://127.0.0.1:2/\" }\n");

	expect(e, "2: webhook \"a\": defined twice");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_none_by_default),
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_full_sections),
	    cmocka_unit_test(test_bad_values_at_their_lines),
	    cmocka_unit_test(test_duplicate_title),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
