/* Classification (route/rules.c): each condition, the first matching rule deciding each
 * result, final, catch-all rules, campaigns from a field, the trusted X-Drover-* fields and
 * unknown names in them, folded fields and the case of names, the deciding lines, and many
 * threads classifying with the same rules. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "route/route.h"

static char dir[] = "/tmp/drover-test-route-XXXXXX";
static struct config *cfg;
static struct route_rules *rules;

#define POOLS                                                                                      \
	"source \"a\" { address = \"192.0.2.10\" }\n"                                              \
	"pool \"tx\" { source \"a\" { } }\n"                                                       \
	"pool \"bulk-a\" { source \"a\" { } }\n"                                                   \
	"pool \"bulk-b\" { source \"a\" { } }\n"                                                   \
	"stream \"transactional\" { }\n"                                                           \
	"stream \"bulk\" { }\n"                                                                    \
	"tenant \"acme\" { }\n"                                                                    \
	"tenant \"globex\" { }\n"                                                                  \
	"listener \"mx\" { address = \"127.0.0.1:2525\" }\n"                                       \
	"listener \"submission\" { address = \"127.0.0.1:2587\" }\n" /* 10 lines */

/* Loads POOLS + text as the configuration and compiles its rules. */
static void
load(const char *text)
{
	char path[256], err[4096];
	FILE *fp;

	route_rules_free(rules);
	config_free(cfg);
	snprintf(path, sizeof(path), "%s/drover.conf", dir);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(POOLS, fp);
	fputs(text, fp);
	fclose(fp);
	cfg = config_load(path, err, sizeof(err));
	if (cfg == NULL)
		fail_msg("config_load: %s", err);
	rules = route_rules_new(cfg);
}

struct msg {
	const char *listener, *user, *ip, *sender;
	size_t nrcpt;
	const char *headers;
};

static struct route_result
judge(struct msg m)
{
	struct sockaddr_storage ss;
	struct route_result res;
	struct route_message rm = {
	    .listener = m.listener ? m.listener : "mx",
	    .auth_user = m.user,
	    .sender = m.sender ? m.sender : "someone@example.org",
	    .nrcpt = m.nrcpt ? m.nrcpt : 1,
	    .headers = m.headers ? m.headers : "Subject: hi\r\n\r\nbody\r\n",
	};

	memset(&ss, 0, sizeof(ss));
	if (m.ip != NULL) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, m.ip, &s4->sin_addr) == 1)
			s4->sin_family = AF_INET;
		else if (inet_pton(AF_INET6, m.ip, &s6->sin6_addr) == 1)
			s6->sin6_family = AF_INET6;
		else
			fail_msg("bad address %s", m.ip);
		rm.client = (struct sockaddr *)&ss;
	}
	rm.headers_len = strlen(rm.headers);
	route_classify(rules, &rm, &res);
	return res;
}

/* The stream a message gets, "-" for none. */
static const char *
stream_of(struct msg m)
{
	static char out[128];
	struct route_result r = judge(m);

	snprintf(out, sizeof(out), "%s", r.stream ? r.stream : "-");
	return out;
}

static void
test_no_rules(void **state)
{
	struct route_result r;

	load("");
	r = judge((struct msg){.headers = "X-Drover-Stream: bulk\r\nX-Drover-Pool: nope\r\n\r\n"});
	assert_null(r.stream);
	assert_null(r.tenant);
	assert_string_equal(r.campaign, "");
	assert_null(r.pool);
	assert_false(r.trusted);
	assert_int_equal(r.error, ROUTE_OK); /* untrusted: never looked at */
	assert_int_equal(r.stream_rule, ROUTE_NO_RULE);
}

static void
test_envelope_conditions(void **state)
{
	load("classification {\n"
	     "  rule { listener = { \"submission\" } stream = \"transactional\" }\n"
	     "  rule { auth_user = { \"app1\", \"app2\" } stream = \"bulk\" }\n"
	     "}\n");
	assert_string_equal(stream_of((struct msg){.listener = "submission"}), "transactional");
	assert_string_equal(stream_of((struct msg){.listener = "mx"}), "-");
	assert_string_equal(stream_of((struct msg){.user = "app2"}), "bulk");
	assert_string_equal(stream_of((struct msg){.user = "App2"}), "-"); /* exact */
	assert_string_equal(stream_of((struct msg){.user = NULL}), "-");

	load("classification {\n"
	     "  rule { client = { \"10.0.0.0/8\", \"2001:db8::/32\" } stream = \"bulk\" }\n"
	     "}\n");
	assert_string_equal(stream_of((struct msg){.ip = "10.1.2.3"}), "bulk");
	assert_string_equal(stream_of((struct msg){.ip = "11.1.2.3"}), "-");
	assert_string_equal(stream_of((struct msg){.ip = "2001:db8::5"}), "bulk");
	assert_string_equal(stream_of((struct msg){.ip = "::ffff:10.0.0.1"}), "bulk");
	assert_string_equal(stream_of((struct msg){.ip = NULL}), "-");

	load("classification {\n"
	     "  rule { mail_from_domain = { \"example.com\" } stream = \"bulk\" }\n"
	     "}\n");
	assert_string_equal(stream_of((struct msg){.sender = "a@example.com"}), "bulk");
	assert_string_equal(stream_of((struct msg){.sender = "a@News.Example.COM"}), "bulk");
	assert_string_equal(stream_of((struct msg){.sender = "a@badexample.com"}), "-");
	assert_string_equal(stream_of((struct msg){.sender = "a@example.com.evil"}), "-");
	assert_string_equal(stream_of((struct msg){.sender = ""}), "-");

	load("classification {\n"
	     "  rule { min_recipients = 2 max_recipients = 3 stream = \"bulk\" }\n"
	     "  rule { min_recipients = 10 stream = \"transactional\" }\n"
	     "}\n");
	assert_string_equal(stream_of((struct msg){.nrcpt = 1}), "-");
	assert_string_equal(stream_of((struct msg){.nrcpt = 2}), "bulk");
	assert_string_equal(stream_of((struct msg){.nrcpt = 3}), "bulk");
	assert_string_equal(stream_of((struct msg){.nrcpt = 4}), "-");
	assert_string_equal(stream_of((struct msg){.nrcpt = 10}), "transactional");
}

static void
test_all_conditions_must_hold(void **state)
{
	load("classification {\n"
	     "  rule {\n"
	     "    listener = { \"submission\" }\n"
	     "    auth_user = { \"app1\" }\n"
	     "    header = { \"Precedence: bulk\" }\n"
	     "    stream = \"bulk\"\n"
	     "  }\n"
	     "}\n");
	assert_string_equal(stream_of((struct msg){.listener = "submission",
	                                           .user = "app1",
	                                           .headers = "Precedence: bulk\r\n\r\n"}),
	                    "bulk");
	assert_string_equal(stream_of((struct msg){.listener = "submission",
	                                           .user = "app1",
	                                           .headers = "Precedence: list\r\n\r\n"}),
	                    "-");
	assert_string_equal(stream_of((struct msg){.listener = "mx",
	                                           .user = "app1",
	                                           .headers = "Precedence: bulk\r\n\r\n"}),
	                    "-");
}

static void
test_header_conditions(void **state)
{
	load("classification {\n"
	     "  rule { header = { \"Precedence: ^(bulk|list|junk)$\", \"List-Unsubscribe:\" }\n"
	     "         stream = \"bulk\" }\n"
	     "}\n");
	assert_string_equal(stream_of((struct msg){.headers = "Precedence: bulk\r\n\r\n"}), "bulk");
	/* Field names in any case; the pattern is caseless; the value trimmed for anchors. */
	assert_string_equal(stream_of((struct msg){.headers = "PRECEDENCE:   Junk  \r\n\r\n"}),
	                    "bulk");
	assert_string_equal(stream_of((struct msg){.headers = "Precedence: bulky\r\n\r\n"}), "-");
	/* Folded: the pattern sees the unfolded value. */
	assert_string_equal(stream_of((struct msg){.headers = "Precedence:\r\n list\r\n\r\n"}),
	                    "bulk");
	/* An empty pattern: the field is there, whatever its value. */
	assert_string_equal(stream_of((struct msg){.headers = "list-unsubscribe:\r\n\r\n"}),
	                    "bulk");
	/* Any of several fields of that name. */
	assert_string_equal(
	    stream_of((struct msg){.headers = "Precedence: normal\r\nPrecedence: list\r\n\r\n"}),
	    "bulk");
	/* Not in the body, not after a line that ends the section. */
	assert_string_equal(
	    stream_of((struct msg){.headers = "Subject: x\r\n\r\nPrecedence: bulk\r\n"}), "-");
	assert_string_equal(
	    stream_of((struct msg){.headers = "Subject: x\r\nnot a field\r\nPrecedence: bulk\r\n"}),
	    "-");

	load("classification {\n"
	     "  rule { header = { \"Subject: ^\\\\[promo\\\\] .* sale$\" } stream = \"bulk\" }\n"
	     "}\n");
	assert_string_equal(
	    stream_of((struct msg){.headers = "Subject: [PROMO] spring\r\n  sale\r\n\r\n"}),
	    "bulk");
	assert_string_equal(stream_of((struct msg){.headers = "Subject: promo sale\r\n\r\n"}), "-");
}

static void
test_from_domain(void **state)
{
	load("classification {\n"
	     "  rule { from_domain = { \"example.com\" } stream = \"bulk\" }\n"
	     "}\n");
	assert_string_equal(
	    stream_of((struct msg){.headers = "From: \"A\" <a@news.example.com>\r\n\r\n"}), "bulk");
	assert_string_equal(stream_of((struct msg){.headers = "from: a@Example.com\r\n\r\n"}),
	                    "bulk");
	assert_string_equal(stream_of((struct msg){.headers = "From: a@other.example\r\n\r\n"}),
	                    "-");
	/* Two From fields: no author domain (dmarc_from_domain), no match. */
	assert_string_equal(stream_of((struct msg){.headers = "From: a@example.com\r\n"
	                                                      "From: b@example.com\r\n\r\n"}),
	                    "-");
	assert_string_equal(stream_of((struct msg){.headers = "Subject: x\r\n\r\n"}), "-");
	/* A From in the body is not the author. */
	assert_string_equal(
	    stream_of((struct msg){.headers = "Subject: x\r\n\r\nFrom: a@example.com\r\n"}), "-");
}

static void
test_first_match_per_result(void **state)
{
	struct route_result r;

	load("classification {\n"                                        /* 11 */
	     "  rule { listener = { \"mx\" } stream = \"bulk\" }\n"      /* 12 */
	     "  rule { stream = \"transactional\" tenant = \"acme\" }\n" /* 13 */
	     "  rule { tenant = \"globex\" pool = \"bulk-a\" campaign = \"c1\" }\n"
	     "  rule { pool = \"bulk-b\" }\n" /* 15 */
	     "}\n");
	r = judge((struct msg){.listener = "mx"});
	assert_string_equal(r.stream, "bulk");
	assert_int_equal(r.stream_rule, 0);
	assert_string_equal(r.tenant, "acme"); /* the rule's stream came too late; its tenant not */
	assert_int_equal(r.tenant_rule, 1);
	assert_string_equal(r.pool, "bulk-a");
	assert_int_equal(r.pool_rule, 2);
	assert_string_equal(r.campaign, "c1");
	assert_int_equal(r.campaign_rule, 2);

	int lines[8];
	size_t n = route_result_lines(rules, &r, lines, 8);
	assert_int_equal(n, 3);
	assert_int_equal(lines[0], 12);
	assert_int_equal(lines[1], 13);
	assert_int_equal(lines[2], 14);
	assert_int_equal(route_result_lines(rules, &r, lines, 1), 1);

	r = judge((struct msg){.listener = "submission"});
	assert_string_equal(r.stream, "transactional");
	assert_int_equal(r.stream_rule, 1);
}

static void
test_final_and_catch_all(void **state)
{
	struct route_result r;

	load("classification {\n"
	     "  rule { auth_user = { \"quiet\" } final = true }\n"
	     "  rule { listener = { \"submission\" } stream = \"transactional\" final = true }\n"
	     "  rule { stream = \"bulk\" tenant = \"acme\" }\n"
	     "}\n");
	r = judge((struct msg){.listener = "submission"});
	assert_string_equal(r.stream, "transactional");
	assert_null(r.tenant); /* final: the catch-all after it is not evaluated */
	r = judge((struct msg){.listener = "mx"});
	assert_string_equal(r.stream, "bulk"); /* the catch-all */
	assert_string_equal(r.tenant, "acme");
	r = judge((struct msg){.listener = "submission", .user = "quiet"});
	assert_null(r.stream); /* a final rule deciding nothing: nothing after it either */
	assert_null(r.tenant);
}

static void
test_campaign_from_header(void **state)
{
	struct route_result r;

	load("classification {\n"
	     "  rule { campaign_header = \"X-Campaign-Id\" }\n"
	     "  rule { campaign = \"fallback\" }\n"
	     "}\n");
	r = judge((struct msg){.headers = "x-campaign-id:  spring-2026 \r\n\r\n"});
	assert_string_equal(r.campaign, "spring-2026");
	assert_int_equal(r.campaign_rule, 0);
	/* Folded, then unfolded. */
	r = judge((struct msg){.headers = "X-Campaign-Id: spring\r\n 2026\r\n\r\n"});
	assert_string_equal(r.campaign, "spring 2026");
	/* No such field, an empty one, a too long one, one with control or 8-bit octets: no
	 * campaign from that rule, so the next one's. */
	const char *bad[] = {
	    "Subject: x\r\n\r\n",
	    "X-Campaign-Id:   \r\n\r\n",
	    "X-Campaign-Id: "
	    "12345678901234567890123456789012345678901234567890123456789012345\r\n\r\n",
	    "X-Campaign-Id: caf\xc3\xa9\r\n\r\n",
	    "X-Campaign-Id: a\x01"
	    "b\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = judge((struct msg){.headers = bad[i]});
		assert_string_equal(r.campaign, "fallback");
		assert_int_equal(r.campaign_rule, 1);
	}
	/* 64 octets is a campaign. */
	r = judge((struct msg){
	    .headers = "X-Campaign-Id: "
	               "1234567890123456789012345678901234567890123456789012345678901234\r\n\r\n"});
	assert_int_equal(strlen(r.campaign), 64);
	/* The first valid one of several. */
	r = judge((struct msg){.headers = "X-Campaign-Id:\r\nX-Campaign-Id: second\r\n\r\n"});
	assert_string_equal(r.campaign, "second");
}

static void
test_trusted_fields(void **state)
{
	struct route_result r;
	const char *fields = "X-Drover-Stream: transactional\r\nX-Drover-Pool: bulk-b\r\n\r\n";

	load("classification {\n"
	     "  rule { auth_user = { \"denied\" } trust_headers = false }\n"
	     "  rule { listener = { \"submission\" } stream = \"bulk\" pool = \"bulk-a\"\n" /* 13 */
	     "         trust_headers = true }\n"
	     "  rule { stream = \"bulk\" pool = \"bulk-a\" }\n"
	     "}\n");
	/* Trusted: the fields override the rules. */
	r = judge((struct msg){.listener = "submission", .headers = fields});
	assert_true(r.trusted);
	assert_int_equal(r.trust_rule, 1);
	assert_string_equal(r.stream, "transactional");
	assert_true(r.stream_from_field);
	assert_int_equal(r.stream_rule, ROUTE_NO_RULE);
	assert_string_equal(r.pool, "bulk-b");
	assert_true(r.pool_from_field);
	assert_int_equal(r.error, ROUTE_OK);
	int lines[8];
	assert_int_equal(route_result_lines(rules, &r, lines, 8), 1);
	assert_int_equal(lines[0], 13); /* the rule that trusted them */
	/* Field names in any case, values trimmed, the first field of each kind. */
	r = judge((struct msg){.listener = "submission",
	                       .headers = "x-drover-pool:  tx \r\nX-Drover-Pool: bulk-a\r\n\r\n"});
	assert_string_equal(r.pool, "tx");
	assert_string_equal(r.stream, "bulk"); /* no stream field: the rule's */
	assert_false(r.stream_from_field);
	/* "default" names the default stream. */
	r = judge(
	    (struct msg){.listener = "submission", .headers = "X-Drover-Stream: default\r\n\r\n"});
	assert_string_equal(r.stream, "default");
	/* Untrusted: ignored. */
	r = judge((struct msg){.listener = "mx", .headers = fields});
	assert_false(r.trusted);
	assert_string_equal(r.stream, "bulk");
	assert_string_equal(r.pool, "bulk-a");
	assert_false(r.stream_from_field || r.pool_from_field);
	assert_int_equal(route_result_lines(rules, &r, lines, 8), 1);
	assert_int_equal(lines[0], 15);
	/* The first rule deciding trust decides it: "denied" is not trusted on submission. */
	r = judge((struct msg){.listener = "submission", .user = "denied", .headers = fields});
	assert_false(r.trusted);
	assert_string_equal(r.stream, "bulk");
	/* Folded fields are read whole. */
	r = judge((struct msg){.listener = "submission",
	                       .headers = "X-Drover-Pool:\r\n\tbulk-b\r\n\r\n"});
	assert_string_equal(r.pool, "bulk-b");
}

static void
test_unknown_names_in_trusted_fields(void **state)
{
	struct route_result r;
	char many[200];

	load("classification {\n"
	     "  rule { trust_headers = true }\n"
	     "}\n");
	r = judge((struct msg){.headers = "X-Drover-Stream: bluk\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_UNKNOWN_STREAM);
	assert_string_equal(r.bad_value, "bluk");
	r = judge((struct msg){.headers = "X-Drover-Pool: x\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_UNKNOWN_POOL);
	assert_string_equal(r.bad_value, "x");
	/* Names are exact: a section "tx", not "TX". */
	r = judge((struct msg){.headers = "X-Drover-Pool: TX\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_UNKNOWN_POOL);
	r = judge((struct msg){.headers = "X-Drover-Pool:\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_UNKNOWN_POOL);
	assert_string_equal(r.bad_value, "");
	/* What is echoed is printable, without quotes, and cut. */
	r = judge((struct msg){.headers = "X-Drover-Stream: a\"b\x01\xff\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_UNKNOWN_STREAM);
	assert_string_equal(r.bad_value, "a?b??");
	memset(many, 'p', sizeof(many));
	memcpy(many, "X-Drover-Pool: ", 15);
	strcpy(many + 150, "\r\n\r\n");
	r = judge((struct msg){.headers = many});
	assert_int_equal(r.error, ROUTE_UNKNOWN_POOL);
	assert_int_equal(strlen(r.bad_value), ROUTE_SHOWN_MAX + 3);
	assert_string_equal(r.bad_value + ROUTE_SHOWN_MAX, "...");
	/* Known names pass. */
	r = judge((struct msg){.headers = "X-Drover-Stream: bulk\r\nX-Drover-Pool: tx\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_OK);
	/* A NUL does not cut a name short: "tx\0evil" is not "tx". */
	static const char nul[] = "X-Drover-Pool: tx\0evil\r\n\r\n";
	struct route_message m = {.listener = "mx",
	                          .sender = "",
	                          .nrcpt = 1,
	                          .headers = nul,
	                          .headers_len = sizeof(nul) - 1};
	route_classify(rules, &m, &r);
	assert_int_equal(r.error, ROUTE_UNKNOWN_POOL);
	assert_string_equal(r.bad_value, "tx?evil");
}

/* X-Drover-Tenant and X-Drover-Campaign: applied when trusted (by a rule, or by the listener
 * as the control plane's injection is), refused when they name nothing. */
static void
test_trusted_tenant_campaign(void **state)
{
	const char *fields = "X-Drover-Tenant: globex\r\nX-Drover-Campaign: spring-2026\r\n\r\n";
	struct route_result r;
	struct route_message m = {.listener = "api", .sender = "", .nrcpt = 1};
	int lines[8];

	load("classification {\n"
	     "  rule { listener = { \"submission\" } trust_headers = true }\n" /* 12 */
	     "  rule { tenant = \"acme\" campaign = \"rule\" }\n"
	     "}\n");
	r = judge((struct msg){.listener = "submission", .headers = fields});
	assert_int_equal(r.error, ROUTE_OK);
	assert_string_equal(r.tenant, "globex");
	assert_string_equal(r.campaign, "spring-2026");
	assert_true(r.tenant_from_field && r.campaign_from_field);
	assert_int_equal(r.tenant_rule, ROUTE_NO_RULE);
	assert_int_equal(route_result_lines(rules, &r, lines, 8), 1);
	assert_int_equal(lines[0], 12);
	/* Untrusted: the rule's. */
	r = judge((struct msg){.listener = "mx", .headers = fields});
	assert_string_equal(r.tenant, "acme");
	assert_string_equal(r.campaign, "rule");
	assert_false(r.tenant_from_field || r.campaign_from_field);
	/* Trusted by the listener, whatever the rules say. */
	m.headers = fields;
	m.headers_len = strlen(fields);
	m.trusted = true;
	route_classify(rules, &m, &r);
	assert_true(r.trusted);
	assert_string_equal(r.tenant, "globex");
	assert_string_equal(r.campaign, "spring-2026");
	/* A tenant that is no section, a campaign that is none. */
	r = judge(
	    (struct msg){.listener = "submission", .headers = "X-Drover-Tenant: nobody\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_UNKNOWN_TENANT);
	assert_string_equal(r.bad_value, "nobody");
	r = judge((struct msg){.listener = "submission", .headers = "X-Drover-Campaign:\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_BAD_CAMPAIGN);
	r = judge((struct msg){
	    .listener = "submission",
	    .headers =
	        "X-Drover-Campaign: "
	        "12345678901234567890123456789012345678901234567890123456789012345\r\n\r\n"});
	assert_int_equal(r.error, ROUTE_BAD_CAMPAIGN);
}

/* A trusted field far down a big header section is still honoured (X-Drover-* fields are
 * looked for everywhere, conditions only in the first ROUTE_FIELDS_MAX). */
static void
test_many_fields(void **state)
{
	size_t n = (ROUTE_FIELDS_MAX + 10) * 12 + 64, o = 0;
	char *h = malloc(n);
	struct route_result r;

	load("classification {\n"
	     "  rule { trust_headers = true header = { \"X-Late:\" } stream = \"bulk\" }\n"
	     "  rule { trust_headers = true }\n"
	     "}\n");
	for (int i = 0; i < ROUTE_FIELDS_MAX + 5; i++)
		o += (size_t)snprintf(h + o, n - o, "X-F: %05d\r\n", i);
	snprintf(h + o, n - o, "X-Late: 1\r\nX-Drover-Pool: tx\r\n\r\n");
	r = judge((struct msg){.headers = h});
	assert_null(r.stream); /* X-Late is field 1006: not looked at */
	assert_string_equal(r.pool, "tx");
	free(h);
}

/* Many threads, one set of rules: every answer right (run under TSan/ASan too). */
struct worker_arg {
	int id;
	int wrong;
};

static void *
worker(void *arg)
{
	struct worker_arg *w = arg;

	for (int i = 0; i < 3000; i++) {
		bool bulk = (i + w->id) % 2 == 0;
		struct route_result r = judge((struct msg){
		    .headers = bulk ? "Precedence: bulk\r\nX-Campaign-Id: c\r\n\r\n"
		                    : "Subject: receipt\r\nX-Drover-Stream: transactional\r\n\r\n",
		    .listener = bulk ? "mx" : "submission"});

		if (bulk && (r.stream == NULL || strcmp(r.stream, "bulk") != 0 ||
		             strcmp(r.campaign, "c") != 0))
			w->wrong++;
		if (!bulk && (r.stream == NULL || strcmp(r.stream, "transactional") != 0))
			w->wrong++;
	}
	return NULL;
}

static void
test_threads(void **state)
{
	pthread_t t[6];
	struct worker_arg a[6];

	load("classification {\n"
	     "  rule { header = { \"Precedence: ^(bulk|list)$\" } stream = \"bulk\"\n"
	     "         campaign_header = \"X-Campaign-Id\" }\n"
	     "  rule { listener = { \"submission\" } trust_headers = true }\n"
	     "}\n");
	for (int i = 0; i < 6; i++) {
		a[i] = (struct worker_arg){.id = i};
		assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
	}
	for (int i = 0; i < 6; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(a[i].wrong, 0);
	}
}

static int
setup(void **state)
{
	return mkdtemp(dir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char path[256];

	route_rules_free(rules);
	config_free(cfg);
	snprintf(path, sizeof(path), "%s/drover.conf", dir);
	unlink(path);
	return rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_rules),
	    cmocka_unit_test(test_envelope_conditions),
	    cmocka_unit_test(test_all_conditions_must_hold),
	    cmocka_unit_test(test_header_conditions),
	    cmocka_unit_test(test_from_domain),
	    cmocka_unit_test(test_first_match_per_result),
	    cmocka_unit_test(test_final_and_catch_all),
	    cmocka_unit_test(test_campaign_from_header),
	    cmocka_unit_test(test_trusted_fields),
	    cmocka_unit_test(test_unknown_names_in_trusted_fields),
	    cmocka_unit_test(test_trusted_tenant_campaign),
	    cmocka_unit_test(test_many_fields),
	    cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
