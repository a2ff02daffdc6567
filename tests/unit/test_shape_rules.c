/* test_shape_rules.c - the rules file: layering and where each value came from, providers by
 * MX suffix and by name, destinations, include() and list syntax, and what each mistake says
 * and where (file:line). */
#include <sys/stat.h>

#include "test_shape_util.h"

static const char layered[] = "defaults {\n"                      /* 1 */
                              "\tmax_connections = 8\n"           /* 2 */
                              "\tmessage_rate = \"1000/h\"\n"     /* 3 */
                              "\tretry = [\"1m\", \"2m\"]\n"      /* 4 */
                              "}\n"                               /* 5 */
                              "provider \"gmail\" {\n"            /* 6 */
                              "\tmx_suffix = [\".google.com\"]\n" /* 7 */
                              "\tdomains = [\"gmail.com\"]\n"     /* 8 */
                              "\tmax_connections = 10\n"          /* 9 */
                              "\tmessage_rate = \"3000/min\"\n"   /* 10 */
                              "\tsource \"ip-1\" {\n"             /* 11 */
                              "\t\tmessage_rate = \"600/h\"\n"    /* 12 */
                              "\t\ttls = \"required\"\n"          /* 13 */
                              "\t}\n"                             /* 14 */
                              "}\n"                               /* 15 */
                              "domain \"Corp.Example\" {\n"       /* 16 */
                              "\tmax_connections = 2\n"           /* 17 */
                              "\ttls = \"required-verify\"\n"     /* 18 */
                              "}\n";                              /* 19 */

static void
expect_origin(const struct shape_params *p, enum shape_field f, enum shape_layer layer,
              const char *name, unsigned line)
{
	const struct shape_origin *o = &p->origin[f];

	if (o->layer != layer || o->line != line || (name == NULL) != (o->name == NULL) ||
	    (name != NULL && strcmp(name, o->name) != 0))
		fail_msg("%s: origin %s \"%s\" line %u, want %s \"%s\" line %u",
		         shape_field_name(f), shape_layer_name(o->layer), o->name ? o->name : "-",
		         o->line, shape_layer_name(layer), name ? name : "-", line);
	if (line > 0)
		assert_string_equal(o->file, "rules.conf");
}

static void
test_layering_and_origins(void **state)
{
	struct shape_rules *r = rules_ok(layered);
	struct shape_params p;
	char buf[128];

	/* No provider, no section: builtin under defaults. */
	shape_params(r, "ip-1", NULL, "example.org", &p);
	assert_null(p.provider);
	assert_string_equal(p.dest, "example.org");
	assert_int_equal(p.s.max_connections, 8);
	expect_origin(&p, SHAPE_F_MAX_CONNECTIONS, SHAPE_LAYER_DEFAULTS, NULL, 2);
	assert_int_equal(p.s.message_rate.count, 1000);
	assert_int_equal(p.s.message_rate.per_s, 3600);
	assert_int_equal(p.s.nretry, 2);
	assert_int_equal(p.s.retry_s[1], 120);
	expect_origin(&p, SHAPE_F_RETRY, SHAPE_LAYER_DEFAULTS, NULL, 4);
	assert_int_equal(p.s.max_messages_per_connection, 100);
	expect_origin(&p, SHAPE_F_MAX_MESSAGES_PER_CONNECTION, SHAPE_LAYER_BUILTIN, NULL, 0);
	assert_null(p.origin[SHAPE_F_MAX_MESSAGES_PER_CONNECTION].file);

	/* Provider, then the source x provider layer. */
	shape_params(r, "ip-1", "gmail", "gmail.com", &p);
	assert_string_equal(p.provider, "gmail");
	assert_string_equal(p.dest, "gmail");
	assert_int_equal(p.s.max_connections, 10);
	expect_origin(&p, SHAPE_F_MAX_CONNECTIONS, SHAPE_LAYER_PROVIDER, "gmail", 9);
	shape_field_format(&p.s, SHAPE_F_MESSAGE_RATE, buf, sizeof(buf));
	assert_string_equal(buf, "600/h");
	expect_origin(&p, SHAPE_F_MESSAGE_RATE, SHAPE_LAYER_SOURCE, "ip-1", 12);
	assert_int_equal(p.s.tls, SHAPE_TLS_REQUIRED);
	expect_origin(&p, SHAPE_F_TLS, SHAPE_LAYER_SOURCE, "ip-1", 13);
	expect_origin(&p, SHAPE_F_RETRY, SHAPE_LAYER_DEFAULTS, NULL, 4);

	/* Another source of the same provider: the provider's values. */
	shape_params(r, "ip-2", "gmail", "gmail.com", &p);
	shape_field_format(&p.s, SHAPE_F_MESSAGE_RATE, buf, sizeof(buf));
	assert_string_equal(buf, "3000/min");
	expect_origin(&p, SHAPE_F_MESSAGE_RATE, SHAPE_LAYER_PROVIDER, "gmail", 10);
	assert_int_equal(p.s.tls, SHAPE_TLS_OPPORTUNISTIC);
	expect_origin(&p, SHAPE_F_TLS, SHAPE_LAYER_BUILTIN, NULL, 0);

	/* A domain section inside a provider: its own layer between provider and source, and
	 * its own destination. */
	shape_params(r, "ip-1", "gmail", "corp.example", &p);
	assert_string_equal(p.dest, "corp.example");
	assert_int_equal(p.s.max_connections, 2);
	expect_origin(&p, SHAPE_F_MAX_CONNECTIONS, SHAPE_LAYER_DOMAIN, "corp.example", 17);
	assert_int_equal(p.s.tls, SHAPE_TLS_REQUIRED); /* the source layer wins */
	expect_origin(&p, SHAPE_F_TLS, SHAPE_LAYER_SOURCE, "ip-1", 13);
	shape_params(r, "ip-2", "gmail", "CORP.EXAMPLE.", &p);
	assert_string_equal(p.dest, "corp.example");
	assert_int_equal(p.s.tls, SHAPE_TLS_REQUIRED_VERIFY);
	expect_origin(&p, SHAPE_F_TLS, SHAPE_LAYER_DOMAIN, "corp.example", 18);
	/* Its window cannot start above its top: builtin initial 2, max 2. */
	assert_int_equal(p.s.initial_connections, 2);

	/* An unknown provider name is no provider. */
	shape_params(r, NULL, "nope", "Example.ORG", &p);
	assert_null(p.provider);
	assert_string_equal(p.dest, "example.org");
	shape_rules_unref(r);
}

static void
test_base_and_clamp(void **state)
{
	struct shape_settings base;
	struct shape_origin where[SHAPE_FIELD_COUNT];
	struct shape_rules *r;
	struct shape_params p;
	char err[1024];
	const char *text = "provider \"x\" { domains = [\"x.example\"] max_connections = 1 }\n";

	shape_settings_builtin(&base);
	memset(where, 0, sizeof(where));
	base.idle_timeout_s = 9;
	base.initial_connections = 4;
	where[SHAPE_F_IDLE_TIMEOUT].file = "drover.conf";
	where[SHAPE_F_IDLE_TIMEOUT].line = 77;
	where[SHAPE_F_IDLE_TIMEOUT].name = "delivery";
	r = shape_rules_parse("rules.conf", text, strlen(text), &base, where, err, sizeof(err));
	assert_non_null(r);
	shape_params(r, NULL, "x", "x.example", &p);
	assert_int_equal(p.s.idle_timeout_s, 9);
	assert_string_equal(p.origin[SHAPE_F_IDLE_TIMEOUT].file, "drover.conf");
	assert_int_equal(p.origin[SHAPE_F_IDLE_TIMEOUT].line, 77);
	assert_int_equal(p.origin[SHAPE_F_IDLE_TIMEOUT].layer, SHAPE_LAYER_BUILTIN);
	assert_string_equal(p.origin[SHAPE_F_IDLE_TIMEOUT].name, "delivery");
	assert_null(p.origin[SHAPE_F_CONNECT_TIMEOUT].name);
	/* initial_connections 4 from the base, max 1 from the provider: clamped. */
	assert_int_equal(p.s.max_connections, 1);
	assert_int_equal(p.s.initial_connections, 1);
	shape_rules_unref(r);
}

static void
test_provider_of(void **state)
{
	struct shape_rules *r =
	    rules_ok("provider \"gmail\" { mx_suffix = [\".google.com\", \"googlemail.com\"]\n"
	             "  domains = [\"gmail.com\"] }\n"
	             "provider \"inner\" { mx_suffix = [\"*.mx.example.net\"] }\n"
	             "provider \"outer\" { mx_suffix = [\"example.net\"] }\n"
	             "provider \"named\" { domains = [\"example.net\"] }\n");
	const char *g[] = {"gmail-smtp-in.l.google.com"};
	const char *upper[] = {"ASPMX.L.GOOGLE.COM."};
	const char *exact[] = {"google.com"};
	const char *lookalike[] = {"mx.notgoogle.com", "google.com.evil.example"};
	const char *nested[] = {"a.mx.example.net"};
	const char *shallow[] = {"mx2.example.net"};
	const char *order[] = {"mx.other.example", "mx2.example.net", "alt1.aspmx.l.google.com"};
	const char *empty[] = {"", "."};

	assert_string_equal(shape_provider_of(r, "customer.example", g, 1), "gmail");
	assert_string_equal(shape_provider_of(r, "customer.example", upper, 1), "gmail");
	assert_string_equal(shape_provider_of(r, "x.example", exact, 1), "gmail");
	assert_null(shape_provider_of(r, "x.example", lookalike, 2));
	/* The longest suffix wins, whatever the order of the file. */
	assert_string_equal(shape_provider_of(r, "x.example", nested, 1), "inner");
	assert_string_equal(shape_provider_of(r, "x.example", shallow, 1), "outer");
	/* MX hosts in the order given: the first that belongs to a provider. */
	assert_string_equal(shape_provider_of(r, "x.example", order, 3), "outer");
	/* A named domain first, without MX hosts and before them. */
	assert_string_equal(shape_provider_of(r, "GMail.com.", NULL, 0), "gmail");
	assert_string_equal(shape_provider_of(r, "gmail.com", shallow, 1), "gmail");
	assert_string_equal(shape_provider_of(r, "example.net", g, 1), "named");
	/* Domains are exact: a subdomain of a named domain is not named. */
	assert_null(shape_provider_of(r, "sub.gmail.com", NULL, 0));
	assert_null(shape_provider_of(r, "", empty, 2));
	assert_null(shape_provider_of(r, NULL, NULL, 0));
	shape_rules_unref(r);
}

static void
test_lists_and_comments(void **state)
{
	/* { } and [ ] alike; comments anywhere, inside lists too; settings on one line. */
	struct shape_rules *r = rules_ok("defaults {\n"
	                                 "  retry = { \"1m\", # first\n"
	                                 "            \"2m\" // second\n"
	                                 "          }\n"
	                                 "  backoff_retry = [\"1h\", /* c */ \"2h\"]\n"
	                                 "  connect_timeout = \"10s\"  greeting_timeout = 60\n"
	                                 "  retry += [\"3m\"]\n"
	                                 "}\n");
	struct shape_params p;

	shape_params(r, NULL, NULL, "example.org", &p);
	assert_int_equal(p.s.nretry, 3);
	assert_int_equal(p.s.retry_s[2], 180);
	/* "+=" extends: the list still comes from where it started. */
	assert_int_equal(p.origin[SHAPE_F_RETRY].line, 2);
	assert_int_equal(p.s.nbackoff_retry, 2);
	assert_int_equal(p.s.connect_timeout_s, 10);
	assert_int_equal(p.s.greeting_timeout_s, 60);
	assert_int_equal(p.origin[SHAPE_F_GREETING_TIMEOUT].line, 6);
	shape_rules_unref(r);
}

static char tmpdir[] = "/tmp/drover-test-shape-XXXXXX";

static const char *
put(const char *name, const char *text)
{
	static char path[512];
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	assert_non_null(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	return path;
}

static void
test_include(void **state)
{
	char main_path[512], err[4096], want[600];
	struct shape_rules *r;
	struct shape_params p;

	assert_non_null(mkdtemp(tmpdir));
	put("providers.conf", "provider \"p\" {\n  domains = [\"p.example\"]\n"
	                      "  max_connections = 3\n}\n");
	snprintf(main_path, sizeof(main_path), "%s",
	         put("shaping.conf", "# main\ninclude(\"providers.conf\")\n"
	                             "defaults { idle_timeout = 7 }\n"));
	r = shape_rules_load(main_path, NULL, NULL, err, sizeof(err));
	if (r == NULL)
		fail_msg("%s", err);
	shape_params(r, NULL, "p", "p.example", &p);
	assert_int_equal(p.s.max_connections, 3);
	assert_int_equal(p.origin[SHAPE_F_MAX_CONNECTIONS].line, 3);
	assert_non_null(strstr(p.origin[SHAPE_F_MAX_CONNECTIONS].file, "providers.conf"));
	assert_int_equal(p.origin[SHAPE_F_IDLE_TIMEOUT].line, 3);
	assert_string_equal(p.origin[SHAPE_F_IDLE_TIMEOUT].file, main_path);
	shape_rules_unref(r);

	/* An error inside an included file names that file and line. */
	put("providers.conf", "provider \"p\" {\n  domains = [\"p.example\"]\n"
	                      "  max_connections = lots\n}\n");
	assert_null(shape_rules_load(main_path, NULL, NULL, err, sizeof(err)));
	snprintf(want, sizeof(want),
	         "%s/providers.conf:3: provider \"p\".max_connections: "
	         "\"lots\": expected a whole number",
	         tmpdir);
	assert_string_equal(err, want);

	/* A missing file, a missing include, and include() in rules given as text. */
	snprintf(want, sizeof(want), "%s/none.conf", tmpdir);
	assert_null(shape_rules_load(want, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "none.conf: cannot read: No such file or directory"));
	put("shaping.conf", "include(\"gone.conf\")\n");
	assert_null(shape_rules_load(main_path, NULL, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "shaping.conf:1: include: \""));
	expect_error(rules_errors("include(\"x.conf\")\n"),
	             "1: include: not available in rules given as text (there is no directory "
	             "to read \"x.conf\" from)");
	unlink(main_path);
	unlink(put("providers.conf", ""));
	rmdir(tmpdir);
}

static void
test_value_errors(void **state)
{
	const char *e = rules_errors("defaults {\n"                                /* 1 */
	                             "  max_connections = 0\n"                     /* 2 */
	                             "  message_rate = \"300/mn\"\n"               /* 3 */
	                             "  retry = [\"5m\", \"5 m\"]\n"               /* 4 */
	                             "  connect_timeout = \"2d\"\n"                /* 5 */
	                             "  on_421 = \"retry\"\n"                      /* 6 */
	                             "}\n"                                         /* 7 */
	                             "provider \"g\" {\n"                          /* 8 */
	                             "  mx_suffix = [\"bad..name\"]\n"             /* 9 */
	                             "  source \"ip-1\" {\n"                       /* 10 */
	                             "    message_rate = \"10/s burst 20\"\n"      /* 11 */
	                             "  }\n"                                       /* 12 */
	                             "}\n"                                         /* 13 */
	                             "domain \"x.example\" { tls = \"maybe\" }\n"  /* 14 */
	                             "adaptive \"a\" {\n"                          /* 15 */
	                             "  text = \"(unclosed\"\n"                    /* 16 */
	                             "  trigger = \"3 in\"\n"                      /* 17 */
	                             "  code = [\"421\", \"4x1\"]\n"               /* 18 */
	                             "  status = \"4.7\"\n"                        /* 19 */
	                             "  action = \"pause\"\n"                      /* 20 */
	                             "  duration = \"0\"\n"                        /* 21 */
	                             "}\n"                                         /* 22 */
	                             "warmup \"w\" { start = \"2026-02-29\" }\n"); /* 23 */

	expect_error(e, "2: defaults.max_connections: \"0\": must be from 1 to 1000");
	expect_error(e, "3: defaults.message_rate: \"300/mn\": expected N/s, N/min, N/h or N/day "
	                "(or N/10min, ...), optionally followed by \"burst B\", or \"unlimited\"");
	expect_error(e, "4: defaults.retry: \"5 m\": expected a number of seconds with an "
	                "optional s, m, h or d suffix, as in 30, 30s, 5m, 2h, 1d");
	expect_error(e, "5: defaults.connect_timeout: \"2d\": must be from 1s to 1d");
	expect_error(e, "6: defaults.on_421: \"retry\": expected next-mx or backoff");
	expect_error(e, "9: provider \"g\".mx_suffix: \"bad..name\": expected a domain name "
	                "(letters, digits, '-' and '_' in dot-separated labels of at most 63 "
	                "octets)");
	expect_error(e, "11: provider \"g\".source \"ip-1\".message_rate: \"10/s burst 20\": burst "
	                "must be from 1 (evenly spaced) to the count per period");
	expect_error(e, "14: domain \"x.example\".tls: \"maybe\": expected disabled, "
	                "opportunistic, required or required-verify");
	expect_error(e, "16: adaptive \"a\".text: \"(unclosed\": bad regex at offset 9: missing "
	                "closing parenthesis");
	expect_error(e, "17: adaptive \"a\".trigger: \"3 in\": expected \"once\" or \"N in "
	                "DURATION\", as in \"3 in 5m\"");
	expect_error(e, "18: adaptive \"a\".code: \"4x1\": expected a reply code of 3 digits like "
	                "421, or a class like 42x or 4xx");
	expect_error(e, "19: adaptive \"a\".status: \"4.7\": expected an enhanced status "
	                "class.subject.detail like 4.7.0, with * for any part: 4.7.*, 4.*, *.7.1");
	expect_error(e, "20: adaptive \"a\".action: \"pause\": expected suspend-source, "
	                "suspend-provider, limit, backoff or bounce");
	expect_error(e, "21: adaptive \"a\".duration: \"0\": must be from 1s to 30d");
	expect_error(e, "23: warmup \"w\".start: \"2026-02-29\": expected a date as YYYY-MM-DD "
	                "(UTC), as in 2026-12-01");
}

static void
test_section_errors(void **state)
{
	const char *e =
	    rules_errors("provider \"g\" {\n"                                       /* 1 */
	                 "  domains = [\"gmail.com\"]\n"                            /* 2 */
	                 "}\n"                                                      /* 3 */
	                 "provider \"G\" { domains = [\"GMAIL.com\"] }\n"           /* 4 */
	                 "provider \"empty\" {\n"                                   /* 5 */
	                 "}\n"                                                      /* 6 */
	                 "domain \"A.example\" { }\n"                               /* 7 */
	                 "domain \"a.example\" { }\n"                               /* 8 */
	                 "adaptive \"nothing\" {\n"                                 /* 9 */
	                 "  action = \"bounce\"\n"                                  /* 10 */
	                 "  duration = \"1h\"\n"                                    /* 11 */
	                 "}\n"                                                      /* 12 */
	                 "adaptive \"bad-scope\" {\n"                               /* 13 */
	                 "  provider = \"gmial\" code = \"421\"\n"                  /* 14 */
	                 "}\n"                                                      /* 15 */
	                 "adaptive \"limit\" {\n"                                   /* 16 */
	                 "  code = \"421\" action = \"limit\" duration = \"1h\"\n"  /* 17 */
	                 "}\n"                                                      /* 18 */
	                 "adaptive \"extra\" {\n"                                   /* 19 */
	                 "  code = \"421\" action = \"bounce\" duration = \"1h\"\n" /* 20 */
	                 "  max_connections = 1\n"                                  /* 21 */
	                 "  backoff_retry = [\"1h\"]\n"                             /* 22 */
	                 "  domain = \"x.example\" provider = \"g\"\n"              /* 23 */
	                 "}\n"                                                      /* 24 */
	                 "warmup \"w\" {\n"                                         /* 25 */
	                 "}\n"                                                      /* 26 */
	                 "warmup \"w2\" {\n"                                        /* 27 */
	                 "  sources = [\"ip-1\"] start = \"2026-12-01\"\n"          /* 28 */
	                 "  schedule = [100, \"200 doubling\"]\n"                   /* 29 */
	                 "  providers = [\"nope\"]\n"                               /* 30 */
	                 "}\n"                                                      /* 31 */
	                 "warmup \"w3\" {\n"                                        /* 32 */
	                 "  sources = [\"ip-1\"] start = \"2026-12-01\"\n"          /* 33 */
	                 "  schedule = [100]\n"                                     /* 34 */
	                 "}\n");                                                    /* 35 */

	expect_error(e, "4: provider \"G\": defined twice (names are case-insensitive)");
	expect_error(e, "4: provider \"G\".domains: \"gmail.com\" is listed twice (already for "
	                "provider \"g\")");
	expect_error(e, "5: provider \"empty\": needs mx_suffix or domains (no mail would belong "
	                "to it)");
	expect_error(e, "8: domain \"a.example\": defined twice (domains are case-insensitive): "
	                "put its settings in one");
	expect_error(e, "9: adaptive \"nothing\": needs a condition (code, status or text): it "
	                "would match every reply, successes too");
	expect_error(e, "14: adaptive \"bad-scope\".provider: \"gmial\": no such provider section");
	expect_error(e, "13: adaptive \"bad-scope\": needs an action (suspend-source, "
	                "suspend-provider, limit, backoff or bounce)");
	expect_error(e, "13: adaptive \"bad-scope\": needs a duration (everything returns to "
	                "normal by itself)");
	expect_error(e, "16: adaptive \"limit\": action limit needs message_rate or "
	                "max_connections (or both)");
	expect_error(e, "21: adaptive \"extra\".max_connections: only for action limit (this one "
	                "is bounce)");
	expect_error(e, "22: adaptive \"extra\".backoff_retry: only for action backoff (this one "
	                "is bounce)");
	expect_error(e, "23: adaptive \"extra\": give provider or domain, not both (a domain "
	                "scope is narrower than its provider's)");
	expect_error(e, "25: warmup \"w\": needs sources (the sources it warms up)");
	expect_error(e, "25: warmup \"w\": needs start, the first day (\"YYYY-MM-DD\", UTC)");
	expect_error(e, "25: warmup \"w\": needs a schedule (daily caps, day 1 first)");
	expect_error(e, "29: warmup \"w2\".schedule: \"N doubling\" is the whole schedule: give "
	                "it alone");
	expect_error(e, "30: warmup \"w2\".providers: \"nope\": no such provider section");
	expect_error(e, "33: warmup \"w3\".sources: \"ip-1\" is in warmup \"w2\" already (a "
	                "source has one schedule)");
}

static void
test_syntax_errors(void **state)
{
	const char *e;
	char big[64 * 1024];
	size_t o = 0;

	/* An unknown setting ends the parse: the last line, after what came before. */
	e = rules_errors(
	    "defaults { max_connections = x }\n"
	    "provider \"p\" {\n  domains = [\"a.example\"]\n  max_conections = 2\n}\n");
	expect_error(e, "1: defaults.max_connections: \"x\": expected a whole number");
	expect_error(e, "4: provider \"p\".max_conections: unknown setting");
	assert_int_equal(count_lines(e), 2);
	expect_error(rules_errors("bogus = 1\n"), "1: bogus: unknown setting");
	expect_error(rules_errors("\n\nprovider \"p\" {\n domains = [\"a.example\"]\n"),
	             "3: '{' is never closed (in this file)");
	expect_error(rules_errors("provider \"p\" { domains = [\"a.example\"] }\n}\n"),
	             "2: '}' without a '{' to close");
	expect_error(rules_errors("provider { domains = [\"a.example\"] }\n"),
	             "1: provider: needs a title, as in provider \"name\" { }");
	expect_error(rules_errors("adaptive \"a\" { code = \"421\" action = \"bounce\"\n"
	                          "duration = \"1h\" }\nadaptive \"a\" { }\n"),
	             "3: section \"a\": defined twice (one section per title)");
	expect_error(rules_errors("adaptive \"a\" { code = \"421\" trigger = \"101 in 5m\"\n"
	                          "  action = \"bounce\" duration = \"1h\" }\n"),
	             "1: adaptive \"a\".trigger: \"101 in 5m\": N must be from 1 to 100");
	expect_error(rules_errors("\ndomain \"*.example.com\" { max_connections = 1 }\n"),
	             "2: domain \"*.example.com\": not a domain name");
	expect_error(rules_errors("provider \"bad name\" { domains = [\"a.example\"] }\n"),
	             "1: provider \"bad name\": bad name (1 to 64 letters, digits, '-', '_', '.')");

	/* Every bad value is reported, up to 50 lines and a count of the rest. */
	o += (size_t)snprintf(big + o, sizeof(big) - o, "defaults {\n");
	for (int i = 0; i < 60; i++)
		o +=
		    (size_t)snprintf(big + o, sizeof(big) - o, " max_connections = %d\n", 5000 + i);
	snprintf(big + o, sizeof(big) - o, "}\n");
	e = rules_errors(big);
	assert_int_equal(count_lines(e), 51);
	assert_non_null(strstr(e, "\n(10 more errors)"));
	expect_error(e, "2: defaults.max_connections: \"5000\": must be from 1 to 1000");

	/* A text with a NUL octet is not a rules file. */
	{
		char err[256];

		assert_null(
		    shape_rules_parse("rules.conf", "a\0b", 3, NULL, NULL, err, sizeof(err)));
		assert_string_equal(err, "rules.conf: contains a NUL byte: not a text file");
	}
}

static void
test_names_and_accessors(void **state)
{
	struct shape_rules *r = rules_ok("provider \"a\" { domains = [\"a.example\"] }\n"
	                                 "provider \"b\" { domains = [\"b.example\"] }\n"
	                                 "\n"
	                                 "adaptive \"r\" { code = \"421\" action = \"bounce\"\n"
	                                 " duration = \"1h\" }\n");
	unsigned line = 0;

	assert_int_equal(shape_provider_count(r), 2);
	assert_string_equal(shape_provider_name(r, 1), "b");
	assert_null(shape_provider_name(r, 2));
	assert_int_equal(shape_adaptive_count(r), 1);
	assert_string_equal(shape_adaptive_name(r, 0, &line), "r");
	assert_int_equal(line, 4);
	assert_null(shape_adaptive_name(r, 1, &line));
	assert_string_equal(shape_field_name(SHAPE_F_ON_421), "on_421");
	assert_string_equal(shape_field_name(SHAPE_FIELD_COUNT), "?");
	assert_string_equal(shape_layer_name(SHAPE_LAYER_SOURCE), "source");
	assert_string_equal(shape_action_name(SHAPE_ACT_SUSPEND_PROVIDER), "suspend-provider");
	assert_string_equal(shape_verdict_name(SHAPE_NO_SLOT), "no-slot");
	assert_string_equal(shape_event_kind_name(SHAPE_EV_EXTEND), "extend");
	assert_string_equal(shape_end_reason_name(SHAPE_END_SUCCESS), "success");
	/* Empty rules are the built-in values. */
	shape_rules_unref(r);
	r = rules_ok("");
	assert_int_equal(shape_provider_count(r), 0);
	shape_rules_unref(shape_rules_ref(r));
	shape_rules_unref(r);
	shape_rules_unref(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layering_and_origins),
	    cmocka_unit_test(test_base_and_clamp),
	    cmocka_unit_test(test_provider_of),
	    cmocka_unit_test(test_lists_and_comments),
	    cmocka_unit_test(test_include),
	    cmocka_unit_test(test_value_errors),
	    cmocka_unit_test(test_section_errors),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_names_and_accessors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
