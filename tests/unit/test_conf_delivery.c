/* config_load(): the delivery { } section and route "domain" { } sections: defaults (the same
 * as the delivery engine's own headers), a full file, config_route(), and every kind of error
 * with its file, line and setting. */

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
/* For their #defines only (nothing of theirs is linked): conf/defaults.h copies these values,
 * and this test keeps the copies honest. */
#include "bounce/bounce.h"
#include "delivery/delivery.h"
#include "dns/dns.h"
#include "queue/queue.h"

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
assert_delivery_defaults(const struct config *c)
{
	const struct delivery_conf *d = &c->delivery;
	static const uint64_t retry[] = {DEF_RETRY_INTERVALS_S};

	assert_string_equal(d->helo_name, c->hostname);
	assert_int_equal(d->port, 25);
	assert_int_equal(d->nsmarthost, 0);
	assert_int_equal(d->ndns_forwarders, 0);
	assert_int_equal(d->dns_timeout_s * 1000, DNS_DEFAULT_TIMEOUT_MS);
	assert_int_equal(d->ip_version, 0);

	assert_int_equal(d->nretry, sizeof(retry) / sizeof(retry[0]));
	for (size_t i = 0; i < d->nretry; i++)
		assert_int_equal(d->retry_s[i], retry[i]);
	assert_int_equal(d->retry_s[0], 300);
	assert_int_equal(d->retry_s[4], 3600);
	assert_int_equal(d->retry_jitter_pct, DEF_RETRY_JITTER_PCT);
	assert_int_equal(d->queue_lifetime_s, DEF_QUEUE_LIFETIME_S);
	assert_int_equal(d->queue_lifetime_s, 5 * 86400);
	assert_int_equal(d->max_connections, DEF_QUEUE_MAX_WINDOW);
	assert_int_equal(d->initial_connections, DEF_QUEUE_INITIAL_WINDOW);
	assert_int_equal(d->max_messages_per_connection, DEF_QUEUE_BATCH_MAX);
	assert_int_equal(d->max_recipients_per_transaction, 100);
	assert_int_equal(d->dead_after, DEF_QUEUE_DEAD_AFTER);
	assert_int_equal(d->dead_cooldown_s, DEF_QUEUE_DEAD_COOLDOWN_S);

	assert_int_equal(d->connect_timeout_s * 1000, DELIVERY_DEF_CONNECT_MS);
	assert_int_equal(d->greeting_timeout_s * 1000, DELIVERY_DEF_GREETING_MS);
	assert_int_equal(d->helo_timeout_s * 1000, DELIVERY_DEF_HELO_MS);
	assert_int_equal(d->mail_timeout_s * 1000, DELIVERY_DEF_MAIL_MS);
	assert_int_equal(d->rcpt_timeout_s * 1000, DELIVERY_DEF_RCPT_MS);
	assert_int_equal(d->data_timeout_s * 1000, DELIVERY_DEF_DATA_MS);
	assert_int_equal(d->data_block_timeout_s * 1000, DELIVERY_DEF_DATA_BLOCK_MS);
	assert_int_equal(d->dot_timeout_s * 1000, DELIVERY_DEF_DOT_MS);
	assert_int_equal(d->idle_timeout_s * 1000, DELIVERY_DEF_IDLE_MS);

	assert_null(d->postmaster);
	assert_int_equal(d->dsn_return_max, DSN_DEF_RETURN_MAX);
	assert_int_equal(d->max_connections_total, DEF_ENGINE_MAX_CONNECTIONS_TOTAL);
	assert_int_equal(d->max_connections_total, 512);
	assert_int_equal(d->delay_notice_after_s, 0); /* no delay notices */

	assert_int_equal(c->nroutes, 0);
	assert_null(config_route(c, "example.com"));
}

static void
test_defaults_are_the_engines(void **state)
{
	struct config *c = config_load(NULL, err, sizeof(err));

	assert_non_null(c);
	assert_delivery_defaults(c);
	config_free(c);

	c = load_ok("delivery {\n}\n");
	assert_delivery_defaults(c);
	config_free(c);
}

/* enabled = auto: mail goes out only when the configuration says how. */
static void
test_delivery_enabled_auto(void **state)
{
	struct config *c = config_load(NULL, err, sizeof(err));

	assert_false(c->delivery.enabled); /* the embedded defaults never send */
	config_free(c);
	c = load_ok("hostname = \"a.example\"\nsmtp {\n max_errors = 3\n}\n");
	assert_false(c->delivery.enabled); /* a file that only says how to receive */
	config_free(c);
	c = load_ok("delivery {\n}\n");
	assert_true(c->delivery.enabled);
	config_free(c);
	c = load_ok("route \"example.com\" {\n hosts = { \"127.0.0.1:2600\" }\n}\n");
	assert_true(c->delivery.enabled);
	config_free(c);
	c = load_ok("delivery {\n enabled = false\n port = 2525\n}\n");
	assert_false(c->delivery.enabled);
	config_free(c);
	c = load_ok("delivery {\n enabled = \"yes\"\n}\n");
	assert_true(c->delivery.enabled);
	config_free(c);
	assert_true(strstr(errors_of("delivery {\n enabled = \"maybe\"\n}\n"),
	                   "drover.conf:2: delivery.enabled: \"maybe\": expected auto, true or "
	                   "false") != NULL);
}

static void
test_helo_name_follows_hostname(void **state)
{
	struct config *c = load_ok("hostname = \"mx1.example.org\"\n");

	assert_string_equal(c->delivery.helo_name, "mx1.example.org");
	config_free(c);
}

static void
test_full_file(void **state)
{
	struct config *c = load_ok(
	    "hostname = \"in.example.org\"\n"
	    "delivery {\n"
	    "\thelo_name = \"mta.example.com\"\n"
	    "\tport = 2525\n"
	    "\tsmarthost = { \"relay.example.net:587\", \"192.0.2.1\", \"[2001:db8::1]:25\" }\n"
	    "\tdns_forwarders = { \"127.0.0.1@5353\", \"2001:db8::53\", \"::1@53\" }\n"
	    "\tdns_timeout = \"3s\"\n"
	    "\tip_version = \"ipv6\"\n"
	    "\tretry = { \"1m\", \"30s\", \"2h\" }  # not increasing: allowed\n"
	    "\tretry_jitter = 0\n"
	    "\tqueue_lifetime = \"2d\"\n"
	    "\tmax_connections = 50\n"
	    "\tinitial_connections = 50\n"
	    "\tmax_messages_per_connection = 1000\n"
	    "\tmax_recipients_per_transaction = 500\n"
	    "\tdead_after = 3\n"
	    "\tdead_cooldown = \"10m\"\n"
	    "\tconnect_timeout = \"10s\"\n"
	    "\tgreeting_timeout = 60\n"
	    "\thelo_timeout = 61\n"
	    "\tmail_timeout = 62\n"
	    "\trcpt_timeout = 63\n"
	    "\tdata_timeout = 64\n"
	    "\tdata_block_timeout = 65\n"
	    "\tdot_timeout = \"15m\"\n"
	    "\tidle_timeout = \"1s\"\n"
	    "\tpostmaster = \"postmaster@example.com\"\n"
	    "\tdsn_return_max = \"1M\"\n"
	    "\tmax_connections_total = 2000\n"
	    "\tdelay_notice_after = \"4h\"\n"
	    "}\n"
	    "route \"Example.COM\" {\n"
	    "\thosts = { \"127.0.0.1:2600\", \"mx2.example.com\" }\n"
	    "}\n"
	    "route \"b.example\" {\n"
	    "\thosts = { \"[::1]:2601\" }\n"
	    "}\n");
	const struct delivery_conf *d = &c->delivery;

	assert_string_equal(c->hostname, "in.example.org");
	assert_string_equal(d->helo_name, "mta.example.com");
	assert_int_equal(d->port, 2525);
	assert_int_equal(d->nsmarthost, 3);
	assert_string_equal(d->smarthost[0], "relay.example.net:587");
	assert_string_equal(d->smarthost[1], "192.0.2.1");
	assert_string_equal(d->smarthost[2], "[2001:db8::1]:25");
	assert_int_equal(d->ndns_forwarders, 3);
	assert_string_equal(d->dns_forwarders[0], "127.0.0.1@5353");
	assert_string_equal(d->dns_forwarders[1], "2001:db8::53");
	assert_string_equal(d->dns_forwarders[2], "::1@53");
	assert_int_equal(d->dns_timeout_s, 3);
	assert_int_equal(d->ip_version, 6);
	assert_int_equal(d->nretry, 3);
	assert_int_equal(d->retry_s[0], 60);
	assert_int_equal(d->retry_s[1], 30);
	assert_int_equal(d->retry_s[2], 7200);
	assert_int_equal(d->retry_jitter_pct, 0);
	assert_int_equal(d->queue_lifetime_s, 2 * 86400);
	assert_int_equal(d->max_connections, 50);
	assert_int_equal(d->initial_connections, 50);
	assert_int_equal(d->max_messages_per_connection, 1000);
	assert_int_equal(d->max_recipients_per_transaction, 500);
	assert_int_equal(d->dead_after, 3);
	assert_int_equal(d->dead_cooldown_s, 600);
	assert_int_equal(d->connect_timeout_s, 10);
	assert_int_equal(d->greeting_timeout_s, 60);
	assert_int_equal(d->helo_timeout_s, 61);
	assert_int_equal(d->mail_timeout_s, 62);
	assert_int_equal(d->rcpt_timeout_s, 63);
	assert_int_equal(d->data_timeout_s, 64);
	assert_int_equal(d->data_block_timeout_s, 65);
	assert_int_equal(d->dot_timeout_s, 900);
	assert_int_equal(d->idle_timeout_s, 1);
	assert_string_equal(d->postmaster, "postmaster@example.com");
	assert_int_equal(d->dsn_return_max, 1 << 20);
	assert_int_equal(d->max_connections_total, 2000);
	assert_int_equal(d->delay_notice_after_s, 4 * 3600);

	assert_int_equal(c->nroutes, 2);
	const struct route_conf *r = config_route(c, "example.com");

	assert_non_null(r);
	assert_string_equal(r->domain, "example.com"); /* stored lower case */
	assert_int_equal(r->nhosts, 2);
	assert_string_equal(r->hosts[0], "127.0.0.1:2600");
	assert_string_equal(r->hosts[1], "mx2.example.com");
	r = config_route(c, "b.example");
	assert_non_null(r);
	assert_int_equal(r->nhosts, 1);
	assert_string_equal(r->hosts[0], "[::1]:2601");
	config_free(c);
}

static void
test_ip_versions_and_zeroes(void **state)
{
	struct config *c = load_ok("delivery {\n ip_version = ipv4\n dsn_return_max = 0\n"
	                           " delay_notice_after = \"4h\"\n delay_notice_after = 0\n}\n");

	assert_int_equal(c->delivery.ip_version, 4);
	assert_int_equal(c->delivery.dsn_return_max, 0);
	assert_int_equal(c->delivery.delay_notice_after_s, 0);
	config_free(c);
	c = load_ok("delivery {\n ip_version = \"any\"\n}\n");
	assert_int_equal(c->delivery.ip_version, 0);
	config_free(c);
}

static void
test_retry_lists_replace_and_extend(void **state)
{
	struct config *c = load_ok("delivery {\n"
	                           " retry = { \"1m\" }\n"
	                           " retry += { \"2m\", \"3m\" }\n"
	                           "}\n");

	assert_int_equal(c->delivery.nretry, 3);
	assert_int_equal(c->delivery.retry_s[2], 180);
	config_free(c);

	/* 16 intervals: the most allowed. */
	c = load_ok("delivery {\n retry = { 1s, 2s, 3s, 4s, 5s, 6s, 7s, 8s,\n"
	            "   9s, 10s, 11s, 12s, 13s, 14s, 15s, 16s }\n}\n");
	assert_int_equal(c->delivery.nretry, 16);
	assert_int_equal(c->delivery.retry_s[15], 16);
	config_free(c);
}

static void
test_config_route_matching(void **state)
{
	struct config *c = load_ok("route \"example.com\" { hosts = { \"a.example\" } }\n"
	                           "route \"MIXED.Example.Org\" { hosts = { \"b.example\" } }\n"
	                           "route \"z.example\" { hosts = { \"c.example\" } }\n"
	                           "route \"a.example\" { hosts = { \"d.example\" } }\n");
	const struct route_conf *r;

	assert_int_equal(c->nroutes, 4);
	r = config_route(c, "EXAMPLE.COM");
	assert_non_null(r);
	assert_string_equal(r->hosts[0], "a.example");
	r = config_route(c, "mixed.example.org");
	assert_non_null(r);
	assert_string_equal(r->domain, "mixed.example.org");
	assert_string_equal(r->hosts[0], "b.example");
	assert_string_equal(config_route(c, "Z.example")->hosts[0], "c.example");
	assert_string_equal(config_route(c, "a.example")->hosts[0], "d.example");

	/* Exact match only: no parent, no subdomain, no prefix. */
	assert_null(config_route(c, "mx.example.com"));
	assert_null(config_route(c, "example.co"));
	assert_null(config_route(c, "example.com."));
	assert_null(config_route(c, "com"));
	assert_null(config_route(c, ""));
	assert_null(config_route(c, NULL));
	assert_null(config_route(NULL, "example.com"));
	config_free(c);
}

static void
test_many_routes(void **state)
{
	size_t cap = 2000 * 64, len = 0;
	char *text = malloc(cap), name[64];
	struct config *c;

	assert_non_null(text);
	for (int i = 1999; i >= 0; i--)
		len += (size_t)snprintf(text + len, cap - len,
		                        "route \"D%d.example\" { hosts = { \"h%d.example\" } }\n",
		                        i, i);
	c = load_ok(text);
	free(text);
	assert_int_equal(c->nroutes, 2000);
	for (int i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "d%d.EXAMPLE", i);
		const struct route_conf *r = config_route(c, name);

		assert_non_null(r);
		snprintf(name, sizeof(name), "h%d.example", i);
		assert_string_equal(r->hosts[0], name);
	}
	assert_null(config_route(c, "d2000.example"));
	config_free(c);
}

/* ---- Errors ---- */

static void
test_bad_hosts(void **state)
{
	const char *e = errors_of("delivery {\n"
	                          " smarthost = {\n"
	                          "  \"relay.example.net:587\",\n"
	                          "  \"relay example.net\",\n"
	                          "  \"2001:db8::1\",\n"
	                          "  \"[2001:db8::1\",\n"
	                          "  \"[192.0.2.1]:25\",\n"
	                          "  \"300.1.1.1:25\",\n"
	                          "  \"\",\n"
	                          "  \"-mx.example.com\"\n"
	                          " }\n"
	                          "}\n");

	expect(e, "4: delivery.smarthost: \"relay example.net\": not a valid host name");
	expect(e, "5: delivery.smarthost: \"2001:db8::1\": an IPv6 address goes in brackets, "
	          "as in [2001:db8::1]:25");
	expect(e, "6: delivery.smarthost: \"[2001:db8::1\": expected a host name or address "
	          "with an optional port");
	expect(e, "7: delivery.smarthost: \"[192.0.2.1]:25\": not a numeric IPv6 address inside "
	          "the brackets");
	expect(e, "8: delivery.smarthost: \"300.1.1.1:25\": not a valid IPv4 address");
	expect(e, "9: delivery.smarthost: \"\": expected a host name");
	expect(e, "10: delivery.smarthost: \"-mx.example.com\": not a valid host name");
	assert_int_equal(count_lines(e), 7);

	e = errors_of("route \"example.com\" {\n hosts = { \"mx.example.com\", \"mx_1.example\" }\n"
	              "}\n");
	expect(e, "2: route \"example.com\".hosts: \"mx_1.example\": not a valid host name");
	assert_int_equal(count_lines(e), 1);
}

static void
test_bad_ports(void **state)
{
	const char *e = errors_of("delivery {\n"
	                          " smarthost = { \"relay.example.net:0\", \"relay:65536\",\n"
	                          "   \"[::1]:\", \"192.0.2.1:+25\", \"relay:smtp\" }\n"
	                          " port = 0\n"
	                          "}\n"
	                          "delivery { port = 65536 }\n"
	                          "route \"a.example\" { hosts = { \"mx.a.example:99999\" } }\n");

	expect(e, "2: delivery.smarthost: \"relay.example.net:0\": the port must be a number from "
	          "1 to 65535");
	expect(e, "2: delivery.smarthost: \"relay:65536\": the port must be");
	expect(e, "3: delivery.smarthost: \"[::1]:\": the port must be");
	expect(e, "3: delivery.smarthost: \"192.0.2.1:+25\": the port must be");
	expect(e, "3: delivery.smarthost: \"relay:smtp\": the port must be");
	expect(e, "4: delivery.port: \"0\": must be from 1 to 65535");
	expect(e, "6: delivery.port: \"65536\": must be from 1 to 65535");
	expect(e, "7: route \"a.example\".hosts: \"mx.a.example:99999\": the port must be");
	assert_int_equal(count_lines(e), 8);
}

static void
test_bad_forwarders(void **state)
{
	const char *e = errors_of("delivery {\n"
	                          " dns_forwarders = {\n"
	                          "  \"127.0.0.1@5353\",\n"
	                          "  \"ns1.example.net\",\n"
	                          "  \"127.0.0.1:53\",\n"
	                          "  \"[::1]@53\",\n"
	                          "  \"127.0.0.1@0\",\n"
	                          "  \"127.0.0.1@\",\n"
	                          "  \"@53\"\n"
	                          " }\n"
	                          "}\n");

	expect(e, "4: delivery.dns_forwarders: \"ns1.example.net\": a numeric IP address is "
	          "needed");
	expect(e, "5: delivery.dns_forwarders: \"127.0.0.1:53\": expected a numeric IP address "
	          "with an optional @port");
	expect(e, "6: delivery.dns_forwarders: \"[::1]@53\": no brackets");
	expect(e, "7: delivery.dns_forwarders: \"127.0.0.1@0\": the port after @ must be a number "
	          "from 1 to 65535");
	expect(e, "8: delivery.dns_forwarders: \"127.0.0.1@\": the port after @ must be");
	expect(e, "9: delivery.dns_forwarders: \"@53\": expected a numeric IP address");
	assert_int_equal(count_lines(e), 6);
}

static void
test_bad_ip_version(void **state)
{
	const char *e = errors_of("delivery {\n\n ip_version = \"v4\"\n}\n");

	expect(e, "3: delivery.ip_version: \"v4\": expected any, ipv4 or ipv6");
	expect(errors_of("delivery { ip_version = \"IPv6\" }\n"),
	       "1: delivery.ip_version: \"IPv6\": expected any, ipv4 or ipv6");
}

static void
test_empty_retry_list(void **state)
{
	const char *e = errors_of("delivery {\n port = 25\n retry = {}\n}\n");

	expect(e, "3: delivery.retry: empty: at least one interval is needed");
	assert_int_equal(count_lines(e), 1);
	/* On several lines: the line of the setting's name. */
	expect(errors_of("# retry = { \"5m\" }\ndelivery {\n\tretry =\n\t{\n\t}\n}\n"),
	       "3: delivery.retry: empty");
	/* The last assignment counts; "retry" inside a string is not one. */
	expect(errors_of("delivery {\n retry = {}\n retry = { 1m }\n retry = {}\n"
	                 " postmaster = \"retry=@example.com\"\n}\n"),
	       "4: delivery.retry: empty");
}

static void
test_too_many_retry_intervals(void **state)
{
	const char *e = errors_of("delivery {\n"
	                          " retry = { 1m, 2m, 3m, 4m, 5m, 6m, 7m, 8m,\n"
	                          "  9m, 10m, 11m, 12m, 13m, 14m, 15m, 16m,\n"
	                          "  17m, 18m }\n"
	                          "}\n");

	expect(e, "4: delivery.retry: \"17m\": more than 16 intervals (the last one repeats; a "
	          "longer list is a typo, not a policy)");
	assert_int_equal(count_lines(e), 1);
	/* Extended past 16 with +=. */
	expect(errors_of("delivery {\n retry = { 1m, 2m, 3m, 4m, 5m, 6m, 7m, 8m,"
	                 " 9m, 10m, 11m, 12m, 13m, 14m, 15m, 16m }\n"
	                 " retry += { 1h }\n}\n"),
	       "3: delivery.retry: \"1h\": more than 16 intervals");
}

static void
test_bad_retry_intervals(void **state)
{
	const char *e = errors_of("delivery {\n retry = { \"5m\", \"0s\",\n \"5M\", \"2d\" }\n"
	                          " retry_jitter = 51\n queue_lifetime = \"0s\"\n}\n");

	expect(e, "2: delivery.retry: \"0s\": each interval must be from 1s to 1d");
	expect(e, "3: delivery.retry: \"5M\": expected a number of seconds");
	expect(e, "3: delivery.retry: \"2d\": each interval must be from 1s to 1d");
	expect(e, "4: delivery.retry_jitter: \"51\": must be from 0 to 50");
	expect(e, "5: delivery.queue_lifetime: \"0s\": must be from 1s to 100d");
	assert_int_equal(count_lines(e), 5);
}

static void
test_initial_connections_above_max(void **state)
{
	const char *e;

	/* initial set last: its line, naming both. */
	e = errors_of("delivery {\n max_connections = 5\n initial_connections = 6\n}\n");
	expect(e, "3: delivery.initial_connections: 6 is more than delivery.max_connections (5)");
	assert_int_equal(count_lines(e), 1);
	/* max set last. */
	e = errors_of("delivery {\n initial_connections = 6\n max_connections = 5\n}\n");
	expect(e, "3: delivery.max_connections: 5 is less than delivery.initial_connections (6)");
	assert_int_equal(count_lines(e), 1);
	/* Only one of them set: that one, against the other's default. */
	expect(errors_of("delivery {\n\n max_connections = 1\n}\n"),
	       "3: delivery.max_connections: 1 is less than delivery.initial_connections (2)");
	expect(errors_of("delivery {\n initial_connections = 21\n}\n"),
	       "2: delivery.initial_connections: 21 is more than delivery.max_connections (20)");
	/* Across sections: the order of the text, not of the lines in one file. */
	expect(errors_of("delivery { initial_connections = 8 }\nsmtp { }\n"
	                 "delivery { max_connections = 4 }\n"),
	       "3: delivery.max_connections: 4 is less than delivery.initial_connections (8)");
}

static void
test_duplicate_route_titles(void **state)
{
	expect(errors_of("route \"example.com\" {\n hosts = { \"a.example\" }\n}\n"
	                 "route \"example.com\" {\n hosts = { \"b.example\" }\n}\n"),
	       "4: route \"example.com\": defined twice");
	/* Different case, the same domain. */
	expect(errors_of("route \"example.com\" {\n hosts = { \"a.example\" }\n}\n"
	                 "route \"Example.COM\" {\n hosts = { \"b.example\" }\n}\n"),
	       "6: route \"Example.COM\": defined twice (as route \"example.com\" before; domains "
	       "are case-insensitive)");
}

static void
test_bad_routes(void **state)
{
	const char *e = errors_of("route \"example.com\" {\n}\n"
	                          "route \"b.example\" {\n hosts = {}\n}\n"
	                          "route \"not a domain\" {\n hosts = { \"a.example\" }\n}\n"
	                          "route \"\" {\n hosts = { \"a.example\" }\n}\n");

	expect(e, "2: route \"example.com\".hosts: at least one host is required, as in hosts = "
	          "{ \"mx.example.com\", \"192.0.2.25:2525\" }");
	expect(e, "5: route \"b.example\".hosts: at least one host is required");
	expect(e, "8: route \"not a domain\": the title must be a domain name, as in route "
	          "\"example.com\" { }");
	expect(e, "11: route \"\": the title must be a domain name");
	assert_int_equal(count_lines(e), 4);
	expect(errors_of("route {\n hosts = { \"a.example\" }\n}\n"), "1: route: needs a title");
	expect(errors_of("route \"a.example\" {\n host = { \"a.example\" }\n}\n"),
	       "2: route \"a.example\".host: unknown setting");
}

static void
test_bad_postmaster(void **state)
{
	const char *e = errors_of("delivery {\n postmaster = \"postmaster\"\n}\n"
	                          "delivery {\n postmaster = \"<postmaster@example.com>\"\n}\n"
	                          "delivery {\n postmaster = \"postmaster@\"\n}\n"
	                          "delivery {\n postmaster = \"a..b@example.com\"\n}\n"
	                          "delivery {\n postmaster = \"pm@exa mple.com\"\n}\n"
	                          "delivery {\n postmaster = \"\"\n}\n");

	expect(e, "2: delivery.postmaster: \"postmaster\": expected an address with a domain, as "
	          "in postmaster@example.com");
	expect(e, "5: delivery.postmaster: \"<postmaster@example.com>\": without angle brackets");
	expect(e, "8: delivery.postmaster: \"postmaster@\": the domain (after @) is not a valid "
	          "domain name");
	expect(e, "11: delivery.postmaster: \"a..b@example.com\": expected an address");
	expect(e, "14: delivery.postmaster: \"pm@exa mple.com\": the domain (after @)");
	expect(e, "17: delivery.postmaster: \"\": expected an address");
	assert_int_equal(count_lines(e), 6);
}

static void
test_good_postmasters(void **state)
{
	static const char *const ok[] = {
	    "postmaster@example.com", "bounce+ops@mail.example.org", "\"john doe\"@example.com",
	    "pm@[192.0.2.1]",         "pm@[IPv6:2001:db8::1]",
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char text[256];
		struct config *c;

		snprintf(text, sizeof(text), "delivery { postmaster = '%s' }\n", ok[i]);
		c = load_ok(text);
		assert_string_equal(c->delivery.postmaster, ok[i]);
		config_free(c);
	}
}

static void
test_bad_helo_name_and_numbers(void **state)
{
	const char *e = errors_of("delivery {\n"
	                          " helo_name = \"192.0.2.1\"\n"
	                          " dns_timeout = \"10m\"\n"
	                          " max_connections = 0\n"
	                          " dead_after = 0\n"
	                          " connect_timeout = 0\n"
	                          " idle_timeout = \"2d\"\n"
	                          " dsn_return_max = 100\n"
	                          " max_recipients_per_transaction = 0\n"
	                          " max_connections_total = 0\n"
	                          " max_connections_total = 65537\n"
	                          " delay_notice_after = \"101d\"\n"
	                          "}\n");

	expect(e, "2: delivery.helo_name: \"192.0.2.1\": not a valid domain name or address "
	          "literal");
	expect(e, "3: delivery.dns_timeout: \"10m\": must be from 1s to 5m");
	expect(e, "4: delivery.max_connections: \"0\": must be from 1 to 1000 (per destination)");
	expect(e, "5: delivery.dead_after: \"0\": must be from 1 to 1000");
	expect(e, "6: delivery.connect_timeout: \"0\": must be from 1s to 1d");
	expect(e, "7: delivery.idle_timeout: \"2d\": must be from 1s to 1d");
	expect(e, "8: delivery.dsn_return_max: \"100\": must be 0 (headers only) or from 1k to 1G");
	expect(e, "9: delivery.max_recipients_per_transaction: \"0\": must be from 1 to 100000");
	expect(e, "10: delivery.max_connections_total: \"0\": must be from 1 to 65536 (over all "
	          "destinations; each is a descriptor and a local port)");
	expect(e, "11: delivery.max_connections_total: \"65537\": must be from 1 to 65536");
	expect(e, "12: delivery.delay_notice_after: \"101d\": must be 0 (off) or from 1s to 100d");
	assert_int_equal(count_lines(e), 11);

	struct config *c = load_ok("delivery { helo_name = \"[192.0.2.1]\" }\n");

	assert_string_equal(c->delivery.helo_name, "[192.0.2.1]");
	config_free(c);
}

static void
test_errors_in_an_included_file(void **state)
{
	char want[1024];

	put("routes.conf", "route \"a.example\" {\n\thosts = { \"a b\" }\n}\n");
	const char *e = errors_of("delivery {\n retry = {}\n}\ninclude(\"routes.conf\")\n");

	snprintf(want, sizeof(want),
	         "%s/routes.conf:2: route \"a.example\".hosts: \"a b\":", tmpdir);
	if (strstr(e, want) == NULL)
		fail_msg("expected \"%s\" in:\n%s", want, e);
	expect(e, "2: delivery.retry: empty");

	put("retry.conf", "\n\nretry = {}\n");
	e = errors_of("delivery {\n include(\"retry.conf\")\n}\n");
	snprintf(want, sizeof(want), "%s/retry.conf:3: delivery.retry: empty", tmpdir);
	if (strstr(e, want) == NULL)
		fail_msg("expected \"%s\" in:\n%s", want, e);
}

/* etc/drover.conf shows every setting at its default: its delivery section too. */
static void
test_example_config_is_the_defaults(void **state)
{
	struct config *c = config_load(DROVER_SOURCE_DIR "/etc/drover.conf", err, sizeof(err));

	if (c == NULL)
		fail_msg("etc/drover.conf: %s", err);
	assert_delivery_defaults(c);
	config_free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults_are_the_engines),
	    cmocka_unit_test(test_delivery_enabled_auto),
	    cmocka_unit_test(test_helo_name_follows_hostname),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_ip_versions_and_zeroes),
	    cmocka_unit_test(test_retry_lists_replace_and_extend),
	    cmocka_unit_test(test_config_route_matching),
	    cmocka_unit_test(test_many_routes),
	    cmocka_unit_test(test_bad_hosts),
	    cmocka_unit_test(test_bad_ports),
	    cmocka_unit_test(test_bad_forwarders),
	    cmocka_unit_test(test_bad_ip_version),
	    cmocka_unit_test(test_empty_retry_list),
	    cmocka_unit_test(test_too_many_retry_intervals),
	    cmocka_unit_test(test_bad_retry_intervals),
	    cmocka_unit_test(test_initial_connections_above_max),
	    cmocka_unit_test(test_duplicate_route_titles),
	    cmocka_unit_test(test_bad_routes),
	    cmocka_unit_test(test_bad_postmaster),
	    cmocka_unit_test(test_good_postmasters),
	    cmocka_unit_test(test_bad_helo_name_and_numbers),
	    cmocka_unit_test(test_errors_in_an_included_file),
	    cmocka_unit_test(test_example_config_is_the_defaults),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
