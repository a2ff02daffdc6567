/* config_load(): stream, tenant and classification { rule { } } sections (docs/routing.md):
 * what a good file gives, and each error with its file and line. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/defaults.h"

#include "test_conf_util.h"

static struct config *
load_ok(const char *text)
{
	struct config *c = config_load(put("ok.conf", text), err, sizeof(err));

	if (c == NULL)
		fail_msg("config_load failed:\n%s\nfor:\n%s", err, text);
	return c;
}

/* Sources and pools the files below refer to. */
#define POOLS                                                                                      \
	"source \"a\" { address = \"192.0.2.10\" }\n"                                              \
	"source \"b\" { address = \"192.0.2.11\" }\n"                                              \
	"pool \"tx\" { source \"a\" { } }\n"                                                       \
	"pool \"bulk\" { source \"b\" { } }\n"                                                     \
	"pool \"acme-main\" { source \"a\" { } }\n"                                                \
	"pool \"acme-bulk\" { source \"b\" { } }\n" /* 6 lines */

static void
test_none_by_default(void **state)
{
	struct config *c = config_load(NULL, err, sizeof(err));

	assert_non_null(c);
	assert_int_equal(c->nstreams, 0);
	assert_int_equal(c->ntenants, 0);
	assert_int_equal(c->nclassification_rules, 0);
	assert_null(config_stream(c, "default"));
	config_free(c);
	c = load_ok("classification {\n}\n");
	assert_int_equal(c->nclassification_rules, 0);
	config_free(c);
}

static void
test_streams(void **state)
{
	struct config *c = load_ok(POOLS "stream \"transactional\" {\n"
	                                 "\tpriority = 100\n"
	                                 "\tpool = \"tx\"\n"
	                                 "\tretry = { \"1m\", \"5m\", \"15m\", \"1h\" }\n"
	                                 "\tlifetime = \"1d\"\n"
	                                 "\treserve = \"20%\"\n"
	                                 "}\n"
	                                 "stream \"bulk\" { reserve = \"80%\" }\n"
	                                 "stream \"default\" { retry = {} }\n");
	const struct stream_conf *s = config_stream(c, "transactional");

	assert_int_equal(c->nstreams, 3);
	assert_ptr_equal(s, &c->streams[0]);
	assert_int_equal(s->priority, 100);
	assert_string_equal(s->pool, "tx");
	assert_ptr_equal(s->pool, config_pool(c, "tx")->name);
	assert_int_equal(s->nretry, 4);
	assert_int_equal(s->retry_s[0], 60);
	assert_int_equal(s->retry_s[3], 3600);
	assert_int_equal(s->lifetime_s, 86400);
	assert_int_equal(s->reserve_pct, 20);
	s = config_stream(c, "bulk");
	assert_int_equal(s->priority, DEF_STREAM_PRIORITY);
	assert_null(s->pool);
	assert_int_equal(s->nretry, 0);     /* delivery.retry */
	assert_int_equal(s->lifetime_s, 0); /* delivery.queue_lifetime */
	assert_int_equal(s->reserve_pct, 80);
	/* The default stream may be configured like any other. */
	s = config_stream(c, "default");
	assert_non_null(s);
	assert_int_equal(s->nretry, 0);
	config_free(c);
}

static void
test_tenants(void **state)
{
	struct config *c = load_ok(POOLS "stream \"bulk\" { }\n"
	                                 "tenant \"acme\" {\n"
	                                 "\tpool = \"acme-main\"\n"
	                                 "\tstream \"bulk\" { pool = \"acme-bulk\" }\n"
	                                 "\tstream \"default\" { pool = \"tx\" }\n"
	                                 "}\n"
	                                 "tenant \"globex\" { }\n");
	const struct tenant_conf *t = config_tenant(c, "acme");

	assert_int_equal(c->ntenants, 2);
	assert_non_null(t);
	assert_string_equal(t->pool, "acme-main");
	assert_int_equal(t->nstreams, 2);
	assert_string_equal(t->streams[0].stream, "bulk");
	assert_ptr_equal(t->streams[0].stream, config_stream(c, "bulk")->name);
	assert_string_equal(t->streams[0].pool, "acme-bulk");
	assert_string_equal(t->streams[1].stream, "default");
	assert_string_equal(t->streams[1].pool, "tx");
	t = config_tenant(c, "globex");
	assert_null(t->pool);
	assert_int_equal(t->nstreams, 0);
	assert_null(config_tenant(c, "nobody"));
	/* The order config_message_pool() documents: message, tenant's stream, tenant,
	 * stream, destination. */
	assert_string_equal(config_message_pool(c, "tx", "bulk", "acme", "x.example")->name, "tx");
	assert_string_equal(config_message_pool(c, NULL, "bulk", "acme", "x.example")->name,
	                    "acme-bulk");
	assert_string_equal(config_message_pool(c, NULL, NULL, "acme", "x.example")->name, "tx");
	assert_null(config_message_pool(c, NULL, "bulk", "globex", "x.example"));
	config_free(c);
}

static const char full_rules[] =
    POOLS "stream \"bulk\" { pool = \"bulk\" }\n" /* 7 */
          "tenant \"acme\" { pool = \"acme-main\" }\n"
          "listener \"submission\" { address = \"127.0.0.1:2587\" }\n"
          "listener \"mx\" { address = \"127.0.0.1:2525\" }\n" /* 10 */
          "classification {\n"
          "  rule {\n" /* 12 */
          "    listener = { \"submission\" }\n"
          "    auth_user = { \"app1\", \"app2\" }\n"
          "    client = { \"10.0.0.0/8\", \"::1\" }\n"
          "    mail_from_domain = { \"Example.COM\" }\n"
          "    from_domain = { \"news.example.com\" }\n"
          "    header = { \"Precedence: ^(bulk|list|junk)$\", \"List-Unsubscribe:\" }\n"
          "    min_recipients = 2\n"
          "    max_recipients = 1000\n" /* 20 */
          "    stream = \"bulk\"\n"
          "    tenant = \"acme\"\n"
          "    campaign = \"spring sale\"\n"
          "    pool = \"tx\"\n"
          "    trust_headers = true\n"
          "    final = true\n"
          "  }\n"
          "  rule\n" /* 28 */
          "  {\n"
          "    campaign_header = \"X-Campaign-Id\"\n" /* 30 */
          "    trust_headers = false\n"
          "  }\n"
          "  rule { stream = \"default\" }\n" /* 33 */
          "}\n";

static void
test_rules(void **state)
{
	struct config *c = load_ok(full_rules);
	const struct classification_rule_conf *r = &c->classification_rules[0];

	assert_int_equal(c->nclassification_rules, 3);
	assert_int_equal(r->line, 12);
	assert_non_null(strstr(r->where, "ok.conf:12"));
	assert_int_equal(r->nlisteners, 1);
	assert_string_equal(r->listeners[0], "submission");
	assert_int_equal(r->nauth_users, 2);
	assert_string_equal(r->auth_users[1], "app2");
	assert_int_equal(r->nclients, 2);
	assert_int_equal(r->clients[0].family, AF_INET);
	assert_int_equal(r->clients[0].prefix, 8);
	assert_int_equal(r->clients[1].family, AF_INET6);
	assert_int_equal(r->clients[1].prefix, 128);
	assert_int_equal(r->nmail_from_domains, 1);
	assert_string_equal(r->mail_from_domains[0], "example.com"); /* lower case */
	assert_string_equal(r->from_domains[0], "news.example.com");
	assert_int_equal(r->nheaders, 2);
	assert_string_equal(r->headers[0].name, "Precedence");
	assert_string_equal(r->headers[0].pattern, "^(bulk|list|junk)$");
	assert_string_equal(r->headers[1].name, "List-Unsubscribe");
	assert_string_equal(r->headers[1].pattern, "");
	assert_int_equal(r->min_recipients, 2);
	assert_int_equal(r->max_recipients, 1000);
	assert_ptr_equal(r->stream, config_stream(c, "bulk")->name);
	assert_ptr_equal(r->tenant, config_tenant(c, "acme")->name);
	assert_string_equal(r->campaign, "spring sale");
	assert_null(r->campaign_header);
	assert_ptr_equal(r->pool, config_pool(c, "tx")->name);
	assert_int_equal(r->trust_headers, 1);
	assert_true(r->final);

	r = &c->classification_rules[1];
	assert_int_equal(r->line, 28); /* "rule" on its own line, "{" on the next */
	assert_int_equal(r->nlisteners + r->nauth_users + r->nclients + r->nheaders, 0);
	assert_int_equal(r->min_recipients + r->max_recipients, 0);
	assert_null(r->stream);
	assert_null(r->campaign);
	assert_string_equal(r->campaign_header, "X-Campaign-Id");
	assert_int_equal(r->trust_headers, 0);
	assert_false(r->final);

	r = &c->classification_rules[2];
	assert_int_equal(r->line, 33);
	assert_string_equal(r->stream, "default"); /* no section: the name itself */
	assert_int_equal(r->trust_headers, -1);
	config_free(c);
}

/* Rules in an included file, and text that looks like a rule inside strings and other
 * sections, do not shift the lines. */
static void
test_rule_lines(void **state)
{
	struct config *c;

	put("rules.conf", "\n"
	                  "rule { header = { \"Subject: rule {\" } stream = \"default\" }\n"
	                  "rule {\n"
	                  "  campaign = 'it\\'s'\n"
	                  "}\n");
	c = load_ok("stream \"rule\" { }\n"
	            "classification {\n"
	            "  rule { stream = \"rule\" }   # rule {\n"
	            "  include(\"rules.conf\")\n"
	            "}\n"
	            "classification { rule { final = true } }\n");
	assert_int_equal(c->nclassification_rules, 4);
	assert_int_equal(c->classification_rules[0].line, 3);
	assert_int_equal(c->classification_rules[1].line, 2);
	assert_non_null(strstr(c->classification_rules[1].where, "rules.conf:2"));
	assert_int_equal(c->classification_rules[2].line, 3);
	assert_string_equal(c->classification_rules[2].campaign, "it's");
	assert_int_equal(c->classification_rules[3].line, 6);
	assert_true(c->classification_rules[3].final);
	config_free(c);
}

static void
test_stream_errors(void **state)
{
	const char *e = errors_of(POOLS "stream \"s1\" {\n" /* 7 */
	                                "\tpriority = 1001\n"
	                                "\tpool = \"nope\"\n"
	                                "\tretry = { \"1m\", \"2d\", \"x\" }\n" /* 10 */
	                                "\tlifetime = \"0\"\n"
	                                "\treserve = \"20\"\n"
	                                "}\n"
	                                "stream \"s2\" {\n"
	                                "\tpriority = \"high\"\n" /* 15 */
	                                "\tlifetime = \"101d\"\n"
	                                "\treserve = \"120%\"\n"
	                                "\tpool = \"\"\n"
	                                "}\n"
	                                "stream \"bad name\" { }\n"); /* 20 */

	expect(e, "8: stream \"s1\".priority: \"1001\": must be a whole number from 0 to 1000");
	expect(e, "9: stream \"s1\".pool: no pool \"nope\" is defined");
	expect(e, "10: stream \"s1\".retry: \"2d\": each interval must be from 1s to 1d");
	expect(e, "10: stream \"s1\".retry: \"x\": expected");
	expect(e, "11: stream \"s1\".lifetime: \"0\": must be from 1s to 100d");
	expect(e, "12: stream \"s1\".reserve: \"20\": expected a share of each destination's "
	          "connections from 0% to 100%");
	expect(e, "15: stream \"s2\".priority: \"high\": must be a whole number");
	expect(e, "16: stream \"s2\".lifetime: \"101d\": must be from 1s to 100d");
	expect(e, "17: stream \"s2\".reserve: \"120%\": expected a share");
	expect(e, "18: stream \"s2\".pool: must not be empty");
	expect(e, "20: stream \"bad name\": the title must be 1 to 64 letters");

	e = errors_of("stream \"r\" {\n\tretry = { \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", "
	              "\"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", \"1s\", "
	              "\"1s\", \"9s\" }\n}\n");
	expect(e, "2: stream \"r\".retry: \"9s\": more than 16 intervals");
	/* A syntax error: the parse stops there (so nothing is checked across sections). */
	e = errors_of("stream \"s1\" { }\nstream \"s1\" { }\n");
	expect(e, "2: stream \"s1\": defined twice");
	e = errors_of("stream \"r\" {\n\tspeed = 3\n}\n");
	expect(e, "2: stream \"r\".speed: unknown setting");
}

static void
test_reserve_sum(void **state)
{
	const char *e = errors_of("stream \"a\" { reserve = \"50%\" }\n"
	                          "stream \"b\" {\n"
	                          "  reserve = \"30%\"\n"
	                          "}\n"
	                          "stream \"c\" {\n"
	                          "  priority = 3\n"
	                          "  reserve = \"30%\"\n" /* 7: 110% */
	                          "}\n"
	                          "stream \"d\" { reserve = \"10%\" }\n");

	expect(e, "7: stream \"c\".reserve: \"30%\": the streams' reserves add up to 110% so far");
	assert_int_equal(count_lines(e), 1); /* once, at the stream that goes over */
	config_free(load_ok("stream \"a\" { reserve = \"50%\" }\n"
	                    "stream \"b\" { reserve = \"50%\" }\n"
	                    "stream \"c\" { reserve = \"0%\" }\n"));
}

static void
test_tenant_errors(void **state)
{
	const char *e = errors_of(POOLS "stream \"bulk\" { }\n" /* 7 */
	                                "tenant \"acme\" {\n"
	                                "\tpool = \"nope\"\n"
	                                "\tstream \"bluk\" {\n" /* 10 */
	                                "\t\tpool = \"acme-bulk\"\n"
	                                "\t}\n"
	                                "\tstream \"bulk\" { pool = \"gone\" }\n"
	                                "\tstream \"default\" {\n"
	                                "\t}\n" /* 15 */
	                                "}\n"
	                                "tenant \"a b\" { }\n");

	expect(e, "9: tenant \"acme\".pool: no pool \"nope\" is defined");
	expect(e, "11: tenant \"acme\".stream \"bluk\": no stream \"bluk\" is defined");
	expect(e, "13: tenant \"acme\".stream \"bulk\".pool: no pool \"gone\" is defined");
	expect(e, "15: tenant \"acme\".stream \"default\": no pool");
	expect(e, "17: tenant \"a b\": the title must be 1 to 64 letters");
	e = errors_of("tenant \"t\" {\n\tstream \"s\" {\n\t\tweight = 3\n\t}\n}\n");
	expect(e, "3: stream \"s\".weight: unknown setting");
}

static void
test_rule_errors(void **state)
{
	const char *e = errors_of(POOLS "tenant \"acme\" { }\n" /* 7 */
	                                "classification {\n"
	                                "  rule {\n"
	                                "    listener = { \"smtp\",\n" /* 10 */
	                                "                 \"nope\" }\n"
	                                "    client = { \"10.0.0.0/33\" }\n"
	                                "    mail_from_domain = { \"not a domain\" }\n"
	                                "    from_domain = { \"\" }\n"
	                                "    header = { \"Precedence ^bulk$\" }\n" /* 15 */
	                                "    header += { \"Subject: (\" }\n"
	                                "    min_recipients = 5\n"
	                                "    max_recipients = 2\n"
	                                "    stream = \"bluk\"\n"
	                                "    tenant = \"acne\"\n" /* 20 */
	                                "    pool = \"tx2\"\n"
	                                "    campaign = \" spaced\"\n"
	                                "    trust_headers = maybe\n"
	                                "  }\n"
	                                "  rule {\n" /* 25 */
	                                "    campaign = \"c\"\n"
	                                "    campaign_header = \"X Campaign\"\n"
	                                "    min_recipients = 0\n"
	                                "  }\n"
	                                "  rule { listener = { \"smtp\" } }\n" /* 30 */
	                                "  rule { auth_user = { \"\" } final = true }\n"
	                                "}\n");

	expect(e, "11: classification.rule[1].listener: no listener \"nope\" is defined");
	expect(e, "12: classification.rule[1].client: \"10.0.0.0/33\":");
	expect(e, "13: classification.rule[1].mail_from_domain: \"not a domain\": not a domain "
	          "name");
	expect(e, "14: classification.rule[1].from_domain: \"\": not a domain name");
	expect(e, "15: classification.rule[1].header: \"Precedence ^bulk$\": expected "
	          "\"Field-Name: pattern\"");
	expect(e, "16: classification.rule[1].header: \"Subject: (\": bad pattern at offset 1:");
	expect(e, "24: classification.rule[1]: min_recipients (5) is more than max_recipients (2)");
	expect(e, "19: classification.rule[1].stream: no stream \"bluk\" is defined (a stream "
	          "section, or \"default\")");
	expect(e, "20: classification.rule[1].tenant: no tenant \"acne\" is defined");
	expect(e, "21: classification.rule[1].pool: no pool \"tx2\" is defined");
	expect(e, "22: classification.rule[1].campaign: \" spaced\": a campaign is 1 to 64 "
	          "printable ASCII characters");
	expect(e, "23: classification.rule[1].trust_headers: \"maybe\": expected true or false");
	expect(e, "27: classification.rule[2].campaign_header: \"X Campaign\": not a header field "
	          "name");
	expect(e,
	       "28: classification.rule[2].min_recipients: \"0\": must be a whole number from 1");
	expect(e, "29: classification.rule[2]: campaign and campaign_header both set");
	expect(e, "30: classification.rule[3]: decides nothing");
	expect(e, "31: classification.rule[4].auth_user: an entry must not be empty");

	e = errors_of(
	    "classification {\n  rule {\n    stream = \"default\"\n    tls = 1\n  }\n}\n");
	expect(e, "4: rule.tls: unknown setting");
	e = errors_of("classification \"x\" {\n}\n");
	expect(e, "1: classification");
}

static void
test_rule_limits(void **state)
{
	size_t size = (LIM_CLASSIFICATION_RULES_MAX + 2) * 40 + 64, o = 0;
	char *text = malloc(size);
	char pattern[LIM_RULE_PATTERN_MAX + 128], aaa[LIM_RULE_PATTERN_MAX + 2];
	struct config *c;
	const char *e;

	o += (size_t)snprintf(text + o, size - o, "classification {\n");
	for (int i = 0; i < LIM_CLASSIFICATION_RULES_MAX; i++)
		o += (size_t)snprintf(text + o, size - o, "rule { campaign = \"c%d\" }\n", i);
	snprintf(text + o, size - o, "}\n");
	c = load_ok(text);
	assert_int_equal(c->nclassification_rules, LIM_CLASSIFICATION_RULES_MAX);
	assert_int_equal(c->classification_rules[LIM_CLASSIFICATION_RULES_MAX - 1].line,
	                 LIM_CLASSIFICATION_RULES_MAX + 1);
	config_free(c);
	snprintf(text + o, size - o, "rule { final = true }\n}\n");
	e = errors_of(text);
	expect(e, "1002: classification.rule[1001]: more than 1000 rules");
	free(text);

	memset(aaa, 'a', LIM_RULE_PATTERN_MAX + 1);
	aaa[LIM_RULE_PATTERN_MAX + 1] = '\0';
	snprintf(pattern, sizeof(pattern),
	         "classification { rule { final = true header = { \"X: %s\" } } }\n", aaa);
	e = errors_of(pattern);
	expect(e, "1: classification.rule[1].header: \"X: aaa");
	assert_non_null(strstr(e, "the pattern is longer than 1024 octets"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_none_by_default), cmocka_unit_test(test_streams),
	    cmocka_unit_test(test_tenants),         cmocka_unit_test(test_rules),
	    cmocka_unit_test(test_rule_lines),      cmocka_unit_test(test_stream_errors),
	    cmocka_unit_test(test_reserve_sum),     cmocka_unit_test(test_tenant_errors),
	    cmocka_unit_test(test_rule_errors),     cmocka_unit_test(test_rule_limits),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
