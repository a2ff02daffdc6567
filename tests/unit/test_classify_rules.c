/* test_classify_rules.c - the rules file: what loads, what each mistake says and where, how
 * rules match (order, providers, codes, statuses, text), what the text looks like to them,
 * the cache, decisions, and reloading by swapping tables. */
#include "test_classify_util.h"

static void
expect(const struct classify_table *t, const char *provider, int code, const char *status,
       const char *text, enum classify_category want, unsigned line)
{
	struct classify_result r;

	classify_reply(t, provider, code, status, text, &r);
	if (r.category != want || r.line != line)
		fail_msg("%s %d %s \"%s\": got %s (line %u), want %s (line %u)",
		         provider ? provider : "-", code, status ? status : "-", text ? text : "-",
		         classify_category_name(r.category), r.line, classify_category_name(want),
		         line);
}

static void
test_names(void **state)
{
	enum classify_category c;

	for (int i = 0; i < CLASSIFY_CATEGORY_COUNT; i++) {
		const char *name = classify_category_name((enum classify_category)i);

		assert_int_equal(classify_category_parse(name, &c), 0);
		assert_int_equal(c, i);
	}
	assert_string_equal(classify_category_name(CLASSIFY_BAD_MAILBOX), "bad-mailbox");
	assert_string_equal(classify_category_name(CLASSIFY_NO_ANSWER_FROM_HOST),
	                    "no-answer-from-host");
	assert_string_equal(classify_category_name(CLASSIFY_CATEGORY_COUNT), "?");
	assert_int_equal(classify_category_parse("Bad-Mailbox", &c), -1);
	assert_int_equal(classify_category_parse("", &c), -1);
	assert_string_equal(classify_action_name(CLASSIFY_SUPPRESS), "suppress");
	assert_string_equal(classify_action_name((enum classify_action)7), "?");
}

static void
test_empty_and_comments(void **state)
{
	struct classify_table *t = must_load("# nothing yet\n\n   \t\n\t# indented comment\r\n");

	assert_int_equal(classify_rule_count(t), 0);
	assert_int_equal(classify_decision_count(t), 0);
	assert_int_equal(classify_provider_count(t), 0);
	expect(t, NULL, 550, "5.1.1", "User unknown", CLASSIFY_OTHER, 0);
	assert_null(classify_provider_of(t, "gmail.com"));
	classify_unref(t);
	t = must_load("");
	classify_unref(t);
	/* No newline at the end, CRLF lines, trailing comments on word lines. */
	t = must_load(
	    "rule bad-mailbox code 550 # unknown users\r\nrule quota-issues status 5.2.2");
	assert_int_equal(classify_rule_count(t), 2);
	assert_int_equal(classify_rule_line(t, 1), 2);
	assert_int_equal(classify_rule_line(t, 2), 0);
	expect(t, NULL, 550, NULL, "", CLASSIFY_BAD_MAILBOX, 1);
	expect(t, NULL, 552, "5.2.2", "", CLASSIFY_QUOTA_ISSUES, 2);
	classify_unref(t);
}

struct bad {
	const char *text;
	const char *err;
};

/* Every refusal, at the line where it is. */
static const struct bad bad_files[] = {
    {"# x\nrule bad-mailbx code 550\n",
     "rules:2: unknown category \"bad-mailbx\" (expected bad-mailbox, bad-domain, "
     "inactive-mailbox, quota-issues, spam-related, policy-related, content-related, "
     "virus-related, routing-errors, relaying-issues, no-answer-from-host, bad-connection, "
     "protocol-errors, dns-failure, auth-failed, rate-limited, message-expired or other)"},
    {"rule bad-mailbox text user (unknown\n",
     "rules:1: bad regex at offset 13: missing closing parenthesis"},
    {"\n\nrule spam-related text [a-\n",
     "rules:3: bad regex at offset 3: missing terminating ] for character class"},
    {"rule spam-related text (*UTF)x\n",
     "rules:1: bad regex at offset 6: using UTF is disabled by the application"},
    {"rule bad-mailbox provider gmial status 5.1.1\n",
     "rules:1: unknown provider \"gmial\" (declare it with a provider line first)"},
    {"rule bad-mailbox provider gmail\nprovider gmail mx google.com\n",
     "rules:1: unknown provider \"gmail\" (declare it with a provider line first)"},
    {"rule bad-mailbox code 6xx\n",
     "rules:1: bad code \"6xx\" (expected 3 digits like 550, or a class like 55x or 5xx)"},
    {"rule bad-mailbox code 5x0\n",
     "rules:1: bad code \"5x0\" (expected 3 digits like 550, or a class like 55x or 5xx)"},
    {"rule bad-mailbox code 550,,551\n", "rules:1: code: empty item in the list"},
    {"rule bad-mailbox status 5.1.1,\n", "rules:1: status: empty item in the list"},
    {"rule bad-mailbox code 5500\n",
     "rules:1: bad code \"5500\" (expected 3 digits like 550, or a class like 55x or 5xx)"},
    {"rule bad-mailbox status 5.1\n",
     "rules:1: bad status \"5.1\" (expected class.subject.detail like 5.1.1, with * for any "
     "part: 5.1.*, 5.*, *.7.1)"},
    {"rule bad-mailbox status 3.1.1\n",
     "rules:1: bad status \"3.1.1\" (expected class.subject.detail like 5.1.1, with * for any "
     "part: 5.1.*, 5.*, *.7.1)"},
    {"rule bad-mailbox status 5.1.1.1\n",
     "rules:1: bad status \"5.1.1.1\" (expected class.subject.detail like 5.1.1, with * for "
     "any part: 5.1.*, 5.*, *.7.1)"},
    {"rule bad-mailbox status 5.1234.1\n",
     "rules:1: bad status \"5.1234.1\" (expected class.subject.detail like 5.1.1, with * for "
     "any part: 5.1.*, 5.*, *.7.1)"},
    {"rule bad-mailbox status\n", "rules:1: status: expected a value"},
    {"rule bad-mailbox code 550 code 551\n", "rules:1: code given twice (list several as 550,551)"},
    {"rule bad-mailbox status 5.1.1 status 5.1.2\n",
     "rules:1: status given twice (list several as 5.1.1,5.1.10)"},
    {"provider p mx p.example\nrule bad-mailbox provider p provider p\n",
     "rules:2: provider given twice"},
    {"rule bad-mailbox txt unknown\n",
     "rules:1: unknown condition \"txt\" (expected provider, code, status, text or text-case)"},
    {"rule bad-mailbox text   \n", "rules:1: text: expected a regex (the rest of the line)"},
    {"rule\n", "rules:1: rule: expected a category, then conditions"},
    {"rules bad-mailbox\n",
     "rules:1: unknown directive \"rules\" (expected provider, rule or decide)"},
    {"provider\n", "rules:1: provider: expected a name, then mx SUFFIX... or domain DOMAIN..."},
    {"provider gmail\n", "rules:1: provider gmail: expected mx SUFFIX... or domain DOMAIN..."},
    {"provider gmail google.com\n",
     "rules:1: provider gmail: expected mx or domain before \"google.com\""},
    {"provider gm@il mx google.com\n",
     "rules:1: bad provider name \"gm@il\" (1 to 63 letters, digits, '-', '_', '.')"},
    {"provider gmail mx goo..gle.com\n",
     "rules:1: provider gmail: bad host name or domain \"goo..gle.com\""},
    {"provider gmail mx .\n", "rules:1: provider gmail: bad host name or domain \".\""},
    {"provider gmail mx google.com\nprovider other domain Google.COM\n",
     "rules:2: \"google.com\" is listed twice (already for provider gmail)"},
    {"decide bad-mailbox 4xx\n",
     "rules:1: decide: expected CATEGORY|* 4xx|5xx|* transient|permanent|suppress [provider "
     "NAME]"},
    {"decide bad-mailbox 55x permanent\n", "rules:1: bad class \"55x\" (expected 4xx, 5xx or *)"},
    {"decide bad-mailbox 4xx bounce\n",
     "rules:1: bad action \"bounce\" (expected transient, permanent or suppress)"},
    {"decide bad-mailbx 4xx permanent\n",
     "rules:1: unknown category \"bad-mailbx\" (expected bad-mailbox, bad-domain, "
     "inactive-mailbox, quota-issues, spam-related, policy-related, content-related, "
     "virus-related, routing-errors, relaying-issues, no-answer-from-host, bad-connection, "
     "protocol-errors, dns-failure, auth-failed, rate-limited, message-expired or other)"},
    {"decide bad-mailbox 4xx permanent provider yahoo\n",
     "rules:1: unknown provider \"yahoo\" (declare it with a provider line first)"},
    {"decide bad-mailbox 4xx permanent for yahoo\n",
     "rules:1: decide: after the action, only provider NAME"},
    {"provider y mx y.example\ndecide * * permanent provider y extra\n",
     "rules:2: decide: unexpected \"extra\" after provider y"},
};

static void
test_errors_name_the_line(void **state)
{
	for (size_t i = 0; i < nitems(bad_files); i++) {
		char err[1024] = "";
		struct classify_table *t = load_rules(bad_files[i].text, err, sizeof(err));

		if (t != NULL)
			fail_msg("case %zu loaded: %s", i, bad_files[i].text);
		if (strcmp(err, bad_files[i].err) != 0)
			fail_msg("case %zu:\n got  %s\n want %s", i, err, bad_files[i].err);
	}
}

static void
test_long_lines_nul_and_missing_file(void **state)
{
	size_t n = CLASSIFY_LINE_MAX + 100;
	char *text = xmalloc(n + 64), err[1024];
	struct classify_table *t;
	int len;

	/* A line of exactly the limit loads; one octet more does not. */
	len = snprintf(text, n + 64, "rule other text ");
	memset(text + len, 'a', CLASSIFY_LINE_MAX - (size_t)len);
	strcpy(text + CLASSIFY_LINE_MAX, "\n");
	t = must_load(text);
	classify_unref(t);
	memset(text + len, 'a', CLASSIFY_LINE_MAX + 1 - (size_t)len);
	strcpy(text + CLASSIFY_LINE_MAX + 1, "\n");
	assert_null(load_rules(text, err, sizeof(err)));
	assert_string_equal(err, "rules:1: line too long (8193 octets, at most 8192)");
	free(text);

	{
		static const char nul[] = "# a\nrule other\0 code 550\n";

		assert_null(classify_parse("mem", nul, sizeof(nul) - 1, 0, err, sizeof(err)));
	}
	assert_string_equal(err, "mem:2: NUL octet in the line");

	assert_null(classify_load("/nonexistent/bounce-rules.conf", 0, err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/bounce-rules.conf: No such file or directory");
}

/* File order decides, not how specific a rule is. */
static void
test_first_match_wins(void **state)
{
	struct classify_table *t = must_load("rule spam-related text blocked\n"
	                                     "rule bad-mailbox status 5.1.1\n"
	                                     "rule policy-related code 5xx\n"
	                                     "rule rate-limited code 421 text blocked\n");

	expect(t, NULL, 550, "5.1.1", "blocked: user unknown", CLASSIFY_SPAM_RELATED, 1);
	expect(t, NULL, 550, "5.1.1", "user unknown", CLASSIFY_BAD_MAILBOX, 2);
	expect(t, NULL, 550, "5.7.1", "user unknown", CLASSIFY_POLICY_RELATED, 3);
	/* Line 4 can never match: line 1 takes every "blocked". */
	expect(t, NULL, 421, "4.7.0", "blocked", CLASSIFY_SPAM_RELATED, 1);
	expect(t, NULL, 421, "4.7.0", "later", CLASSIFY_OTHER, 0);
	classify_unref(t);
}

static void
test_provider_scoping(void **state)
{
	struct classify_table *t = must_load("provider gmail mx google.com domain gmail.com\n"
	                                     "provider yahoo mx yahoodns.net\n"
	                                     "rule rate-limited provider gmail code 4xx\n"
	                                     "rule spam-related provider yahoo text deferred\n"
	                                     "rule other code 4xx\n");

	assert_int_equal(classify_provider_count(t), 2);
	assert_string_equal(classify_provider_name(t, 0), "gmail");
	assert_null(classify_provider_name(t, 2));
	expect(t, "gmail", 421, NULL, "deferred", CLASSIFY_RATE_LIMITED, 3);
	expect(t, "yahoo", 421, NULL, "deferred", CLASSIFY_SPAM_RELATED, 4);
	expect(t, "yahoo", 421, NULL, "later", CLASSIFY_OTHER, 5);
	/* No provider, or one the table does not know: unscoped rules only. */
	expect(t, NULL, 421, NULL, "deferred", CLASSIFY_OTHER, 5);
	expect(t, "hotmail", 421, NULL, "deferred", CLASSIFY_OTHER, 5);
	/* Names are the table's: the pointer from classify_provider_of() works as well. */
	expect(t, classify_provider_of(t, "alt1.aspmx.l.google.com"), 450, NULL, "x",
	       CLASSIFY_RATE_LIMITED, 3);
	classify_unref(t);
}

static void
test_provider_of(void **state)
{
	struct classify_table *t =
	    must_load("provider microsoft mx outlook.com domain hotmail.com\n"
	              "provider o365 mx *.mail.protection.outlook.com\n"
	              "provider microsoft domain live.com\n"
	              "provider gmail mx .google.com.\n");

	assert_int_equal(classify_provider_count(t), 3);
	assert_string_equal(classify_provider_of(t, "outlook.com"), "microsoft");
	assert_string_equal(classify_provider_of(t, "hotmail-com.olc.protection.outlook.com"),
	                    "microsoft");
	/* The longest suffix wins. */
	assert_string_equal(classify_provider_of(t, "example-com.mail.protection.outlook.com"),
	                    "o365");
	assert_string_equal(classify_provider_of(t, "mail.protection.outlook.com"), "o365");
	assert_string_equal(classify_provider_of(t, "HOTMAIL.COM."), "microsoft");
	assert_string_equal(classify_provider_of(t, "live.com"), "microsoft");
	assert_string_equal(classify_provider_of(t, "Gmail-SMTP-in.l.Google.com"), "gmail");
	/* A domain is exact; a suffix ends at a label boundary. */
	assert_null(classify_provider_of(t, "mx.hotmail.com"));
	assert_null(classify_provider_of(t, "notoutlook.com"));
	assert_null(classify_provider_of(t, "com"));
	assert_null(classify_provider_of(t, ""));
	assert_null(classify_provider_of(t, "."));
	assert_null(classify_provider_of(t, NULL));
	assert_null(classify_provider_of(NULL, "outlook.com"));
	classify_unref(t);
}

static void
test_codes_and_statuses(void **state)
{
	struct classify_table *t = must_load("rule bad-mailbox status 5.1.1,5.1.10\n"
	                                     "rule bad-domain status 5.1.*\n"
	                                     "rule policy-related status *.7.1\n"
	                                     "rule quota-issues code 452,552\n"
	                                     "rule protocol-errors code 50x\n"
	                                     "rule content-related status 5.*\n"
	                                     "rule rate-limited status *\n"
	                                     "rule other code 4XX\n"
	                                     "rule no-answer-from-host text .\n");

	expect(t, NULL, 550, "5.1.1", "", CLASSIFY_BAD_MAILBOX, 1);
	expect(t, NULL, 550, "5.1.10", "", CLASSIFY_BAD_MAILBOX, 1);
	expect(t, NULL, 550, "5.1.100", "", CLASSIFY_BAD_DOMAIN, 2);
	expect(t, NULL, 550, "5.1.2", "", CLASSIFY_BAD_DOMAIN, 2);
	expect(t, NULL, 550, "5.7.1", "", CLASSIFY_POLICY_RELATED, 3);
	expect(t, NULL, 450, "4.7.1", "", CLASSIFY_POLICY_RELATED, 3);
	expect(t, NULL, 552, "5.3.4", "", CLASSIFY_QUOTA_ISSUES, 4);
	expect(t, NULL, 452, NULL, "", CLASSIFY_QUOTA_ISSUES, 4);
	expect(t, NULL, 503, "5.5.1", "", CLASSIFY_PROTOCOL_ERRORS, 5);
	expect(t, NULL, 510, "5.5.1", "", CLASSIFY_CONTENT_RELATED, 6);
	expect(t, NULL, 421, "4.3.2", "", CLASSIFY_RATE_LIMITED, 7);
	expect(t, NULL, 421, "", "", CLASSIFY_OTHER, 8);
	/* A status condition needs a status: none, or a malformed one, never matches. */
	expect(t, NULL, 554, NULL, "x", CLASSIFY_NO_ANSWER_FROM_HOST, 9);
	expect(t, NULL, 554, "5.1", "x", CLASSIFY_NO_ANSWER_FROM_HOST, 9);
	expect(t, NULL, 554, "5.1.1 ", "x", CLASSIFY_NO_ANSWER_FROM_HOST, 9);
	expect(t, NULL, 554, "5.1234.1", "x", CLASSIFY_NO_ANSWER_FROM_HOST, 9);
	/* Outside 200..599 there is no code: only rules without a code condition apply. */
	expect(t, NULL, 0, "4.4.1", "", CLASSIFY_RATE_LIMITED, 7);
	expect(t, NULL, 0, NULL, "connection refused", CLASSIFY_NO_ANSWER_FROM_HOST, 9);
	expect(t, NULL, 999, NULL, "", CLASSIFY_OTHER, 0);
	classify_unref(t);
}

static void
test_text_matching(void **state)
{
	struct classify_table *t = must_load("rule bad-mailbox text ^user unknown$\n"
	                                     "rule spam-related text-case \\bSPAM\\b\n"
	                                     "rule quota-issues text mailbox full   \n"
	                                     "rule policy-related text a#b\n"
	                                     "rule other text (a+)+b\n");

	expect(t, NULL, 550, NULL, "User Unknown", CLASSIFY_BAD_MAILBOX, 1);
	/* Line breaks and runs of blanks read as one space, leading and trailing ones not at
	 * all. */
	expect(t, NULL, 550, NULL, "  user\r\n\t unknown \n", CLASSIFY_BAD_MAILBOX, 1);
	expect(t, NULL, 550, NULL, "SPAM detected", CLASSIFY_SPAM_RELATED, 2);
	expect(t, NULL, 550, NULL, "spam detected", CLASSIFY_OTHER, 0);
	/* Trailing blanks of a regex are layout. */
	expect(t, NULL, 552, NULL, "Mailbox FULL.", CLASSIFY_QUOTA_ISSUES, 3);
	/* A '#' inside a regex is the regex's, not a comment. */
	expect(t, NULL, 550, NULL, "a#b", CLASSIFY_POLICY_RELATED, 4);
	/* NULL text is "". */
	expect(t, NULL, 550, NULL, NULL, CLASSIFY_OTHER, 0);
	/* Catastrophic backtracking stops at the match limit: no match, no hang. */
	expect(t, NULL, 550, NULL, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaac",
	       CLASSIFY_OTHER, 0);
	/* Octets that are not UTF-8 are matched as bytes. */
	expect(t, NULL, 550, NULL, "\xff\xfe SPAM", CLASSIFY_SPAM_RELATED, 2);
	classify_unref(t);
}

/* What rules see: each of these rules names the masked form. */
static void
test_normalised_text(void **state)
{
	struct classify_table *t =
	    must_load("rule bad-mailbox text-case ^<x@x>: Recipient address rejected$\n"
	              "rule spam-related text-case ^\\[#\\] listed at zen\\.spamhaus\\.org$\n"
	              "rule rate-limited text-case ^\\[TSS04\\] from # deferred - #; \\(S3150\\) "
	              "OFR004_104 BL000001 4\\.7\\.28 AS\\(7555\\)$\n"
	              "rule policy-related text-case ^id=# at # host # ok$\n"
	              "rule auth-failed text-case ^\\(x@x:blocked\\) mailto:x@x\\. a@ @b @ x@x$\n");

	expect(t, NULL, 550, NULL, "<someone.else+tag@Example.COM>: Recipient address rejected",
	       CLASSIFY_BAD_MAILBOX, 1);
	expect(t, NULL, 550, NULL, "[198.51.100.7] listed at zen.spamhaus.org",
	       CLASSIFY_SPAM_RELATED, 2);
	expect(t, NULL, 421, NULL,
	       "[TSS04] from 10.0.0.1 deferred - 4.16.55.1; (S3150) OFR004_104 BL000001 4.7.28 "
	       "AS(7555)",
	       CLASSIFY_RATE_LIMITED, 3);
	expect(
	    t, NULL, 550, NULL,
	    "id=1234567 at 2024-05-08T09:12:33.456Z host AM4PEPF00025F98.EURPRD83.prod.outlook.com "
	    "ok",
	    CLASSIFY_POLICY_RELATED, 4);
	expect(t, NULL, 550, NULL, "(a@b.example:blocked) mailto:a@b.example. a@ @b @ x@y",
	       CLASSIFY_AUTH_FAILED, 5);
	classify_unref(t);
}

/* One entry serves every reply that normalises alike; it is keyed by provider, code and
 * status too. */
static void
test_cache(void **state)
{
	struct classify_table *t = must_load("provider gmail mx google.com\n"
	                                     "rule bad-mailbox provider gmail status 5.1.1\n"
	                                     "rule spam-related text blocked\n");
	struct classify_result r;
	struct classify_stats st;
	char text[256];

	for (int i = 0; i < 100; i++) {
		snprintf(text, sizeof(text),
		         "<user%d@example.com>: blocked, client [192.0.2.%d] id 4Tz8Xy1Lm%03dz9A",
		         i, i, i);
		classify_reply(t, NULL, 550, "5.7.1", text, &r);
		assert_int_equal(r.category, CLASSIFY_SPAM_RELATED);
		assert_int_equal(r.line, 3);
		assert_int_equal(r.cached, i > 0);
	}
	classify_stats(t, &st);
	assert_int_equal(st.lookups, 100);
	assert_int_equal(st.hits, 99);
	assert_int_equal(st.misses, 1);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.capacity, CLASSIFY_DEF_CACHE_ENTRIES);

	/* Same text, other provider, code or status: other entries, other answers. */
	classify_reply(t, "gmail", 550, "5.1.1", "blocked", &r);
	assert_int_equal(r.category, CLASSIFY_BAD_MAILBOX);
	assert_false(r.cached);
	classify_reply(t, NULL, 550, "5.1.1", "blocked", &r);
	assert_int_equal(r.category, CLASSIFY_SPAM_RELATED);
	assert_false(r.cached);
	classify_reply(t, "gmail", 550, "5.1.2", "blocked", &r);
	assert_int_equal(r.category, CLASSIFY_SPAM_RELATED);
	assert_false(r.cached);
	classify_reply(t, "gmail", 551, "5.1.1", "blocked", &r);
	assert_false(r.cached);
	classify_reply(t, "gmail", 550, "5.1.1", "blocked", &r);
	assert_int_equal(r.category, CLASSIFY_BAD_MAILBOX);
	assert_true(r.cached);
	/* An unknown provider is no provider. */
	classify_reply(t, "hotmail", 550, "5.1.1", "blocked", &r);
	assert_int_equal(r.category, CLASSIFY_SPAM_RELATED);
	assert_true(r.cached);

	/* Texts too long for the cache are classified every time. */
	{
		char *big = xmalloc(CLASSIFY_CACHE_TEXT_MAX + 100);

		memset(big, 'z', CLASSIFY_CACHE_TEXT_MAX + 99);
		memcpy(big, "blocked ", 8);
		big[CLASSIFY_CACHE_TEXT_MAX + 99] = '\0';
		for (int i = 0; i < 2; i++) {
			classify_reply(t, NULL, 550, NULL, big, &r);
			assert_int_equal(r.category, CLASSIFY_SPAM_RELATED);
			assert_false(r.cached);
		}
		free(big);
	}
	classify_stats(t, &st);
	assert_int_equal(st.uncachable, 2);
	assert_int_equal(st.lookups, st.hits + st.misses + st.uncachable);
	classify_unref(t);
}

/* A small cache keeps the most recently used answers and evicts the rest. */
static void
test_cache_eviction(void **state)
{
	char err[256], text[64];
	struct classify_table *t = load_rules_cache("rule other text reply\n", 4, err, sizeof(err));
	struct classify_result r;
	struct classify_stats st;

	assert_non_null(t);
	for (int i = 0; i < 50; i++) {
		snprintf(text, sizeof(text), "reply %c", 'a' + i % 26);
		classify_reply(t, NULL, 550, NULL, text, &r);
	}
	classify_stats(t, &st);
	assert_int_equal(st.capacity, 4);
	assert_int_equal(st.entries, 4);
	assert_true(st.evictions >= 40);
	/* The last one is still there. */
	classify_reply(t, NULL, 550, NULL, "reply x", &r);
	assert_true(r.cached);
	classify_unref(t);

	/* No cache at all. */
	t = load_rules_cache("rule other text reply\n", 0, err, sizeof(err));
	classify_reply(t, NULL, 550, NULL, "reply", &r);
	classify_reply(t, NULL, 550, NULL, "reply", &r);
	assert_false(r.cached);
	classify_stats(t, &st);
	assert_int_equal(st.capacity, 0);
	assert_int_equal(st.uncachable, 2);
	assert_int_equal(st.lookups, 2);
	classify_unref(t);
}

static void
test_decisions(void **state)
{
	struct classify_table *t = must_load("provider softfail mx softfail.example\n"
	                                     "provider other mx other.example\n"
	                                     "# a provider that answers unknown users with 4xx\n"
	                                     "decide bad-mailbox 4xx permanent provider softfail\n"
	                                     "decide rate-limited 5xx transient\n"
	                                     "decide * * suppress provider other\n"
	                                     "decide quota-issues * transient\n");
	unsigned line = 99;

	assert_int_equal(classify_decision_count(t), 4);
	assert_int_equal(classify_decide(t, "softfail", CLASSIFY_BAD_MAILBOX, 450, &line),
	                 CLASSIFY_PERMANENT);
	assert_int_equal(line, 4);
	/* Elsewhere a 4xx is retried, and a 5xx bad-mailbox suppresses. */
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_BAD_MAILBOX, 450, &line),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(line, 0);
	assert_int_equal(classify_decide(t, "softfail", CLASSIFY_BAD_MAILBOX, 550, &line),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(line, 0);
	assert_int_equal(classify_decide(t, "softfail", CLASSIFY_RATE_LIMITED, 550, &line),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(line, 5);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_RATE_LIMITED, 421, &line),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(line, 0);
	/* '*' matches any category and class; first match wins. */
	assert_int_equal(classify_decide(t, "other", CLASSIFY_QUOTA_ISSUES, 452, &line),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(line, 6);
	assert_int_equal(classify_decide(t, "other", CLASSIFY_RATE_LIMITED, 550, &line),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(line, 5);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_QUOTA_ISSUES, 552, &line),
	                 CLASSIFY_TRANSIENT);
	assert_int_equal(line, 7);
	/* Built-in defaults. */
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_BAD_DOMAIN, 550, NULL),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_INACTIVE_MAILBOX, 554, NULL),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_SPAM_RELATED, 554, NULL),
	                 CLASSIFY_PERMANENT);
	assert_int_equal(classify_decide(t, NULL, CLASSIFY_BAD_MAILBOX, 0, NULL),
	                 CLASSIFY_TRANSIENT);
	classify_unref(t);
	/* Without a table, the defaults alone. */
	assert_int_equal(classify_decide(NULL, "x", CLASSIFY_BAD_MAILBOX, 550, &line),
	                 CLASSIFY_SUPPRESS);
	assert_int_equal(line, 0);
	assert_int_equal(classify_decide(NULL, NULL, CLASSIFY_OTHER, 550, NULL),
	                 CLASSIFY_PERMANENT);
	assert_int_equal(classify_decide(NULL, NULL, CLASSIFY_OTHER, 421, NULL),
	                 CLASSIFY_TRANSIENT);
}

/* A reader keeps the table it took while a reload publishes another. */
static void
test_reload_by_swap(void **state)
{
	struct classify_slot *slot = classify_slot_new(must_load("rule spam-related text x\n"));
	struct classify_table *session = classify_slot_get(slot), *now;
	struct classify_result r;

	classify_slot_set(slot, must_load("rule bad-mailbox text x\n"));
	classify_reply(session, NULL, 550, NULL, "x", &r);
	assert_int_equal(r.category, CLASSIFY_SPAM_RELATED);
	now = classify_slot_get(slot);
	classify_reply(now, NULL, 550, NULL, "x", &r);
	assert_int_equal(r.category, CLASSIFY_BAD_MAILBOX);
	classify_unref(now);
	classify_unref(session);
	classify_slot_free(slot);

	/* An empty slot, and a NULL table, classify as nothing. */
	slot = classify_slot_new(NULL);
	assert_null(classify_slot_get(slot));
	classify_reply(NULL, NULL, 550, "5.1.1", "user unknown", &r);
	assert_int_equal(r.category, CLASSIFY_OTHER);
	assert_int_equal(r.rule, -1);
	classify_slot_free(slot);
	classify_slot_free(NULL);
	classify_unref(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_empty_and_comments),
	    cmocka_unit_test(test_errors_name_the_line),
	    cmocka_unit_test(test_long_lines_nul_and_missing_file),
	    cmocka_unit_test(test_first_match_wins),
	    cmocka_unit_test(test_provider_scoping),
	    cmocka_unit_test(test_provider_of),
	    cmocka_unit_test(test_codes_and_statuses),
	    cmocka_unit_test(test_text_matching),
	    cmocka_unit_test(test_normalised_text),
	    cmocka_unit_test(test_cache),
	    cmocka_unit_test(test_cache_eviction),
	    cmocka_unit_test(test_decisions),
	    cmocka_unit_test(test_reload_by_swap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
