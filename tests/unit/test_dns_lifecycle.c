/* test_dns_lifecycle.c - the resolver's promises beyond the answers: callbacks always later and
 * exactly once, cancellation, freeing with queries in flight, the per-query deadline, answers
 * cached for their TTL and no longer, and configuration errors that say what is wrong. */
#include <netinet/in.h>
#include <sys/socket.h>

#include "test_dns_util.h"

#define ANSWER_MS 5000

static struct dns_server server;

static int
setup(void **state)
{
	char zone[8192];

	zone_json(zone, sizeof(zone), "old.drover.example", false);
	return dns_server_start(&server, zone);
}

static int
teardown(void **state)
{
	dns_server_stop(&server);
	return 0;
}

static struct loop l;

static int
loop_setup(void **state)
{
	loop_init(&l, server.forwarder, 0);
	return 0;
}

static int
loop_teardown(void **state)
{
	if (l.r != NULL)
		loop_free(&l);
	else
		event_base_free(l.base);
	return 0;
}

/* Starts one query of each kind; returns how many. */
static unsigned
start_all(const char *name, struct got g[5])
{
	for (int i = 0; i < 5; i++)
		got_init(&g[i], &l);
	dns_mx(l.r, name, got_mx, &g[0]);
	dns_addr(l.r, name, DNS_IP_PREFER_V6, got_addr, &g[1]);
	dns_mx_addrs(l.r, name, DNS_IP_PREFER_V6, got_mx_addrs, &g[2]);
	dns_txt(l.r, name, got_txt, &g[3]);
	dns_rr(l.r, name, 52, got_rr, &g[4]);
	return 5;
}

static void
assert_calls(const struct got g[5], unsigned calls)
{
	for (int i = 0; i < 5; i++)
		assert_int_equal(g[i].calls, calls);
}

/* Even a cached answer comes from the loop, never from inside dns_mx() and friends: callers
 * may start a query while holding state their callback changes. */
static void
test_callbacks_never_run_inside_the_call(void **state)
{
	struct got g[5];
	unsigned n;

	n = start_all("a.drover.example", g);
	assert_calls(g, 0);
	loop_until(&l, n, ANSWER_MS);
	assert_calls(g, 1);

	n += start_all("a.drover.example", g); /* cached now */
	assert_calls(g, 0);
	loop_until(&l, n, ANSWER_MS);
	assert_calls(g, 1);
	assert_int_equal(g[1].status, DNS_OK);
}

static void
test_invalid_names_answer_later_too(void **state)
{
	/* A space or a backslash is a valid octet of a label (RFC 2181 §11; SPF macros make
	 * such names); control characters are not. */
	const char *names[] = {"", ".", "a..example", "a\tb.example", "a\x01.b", "..", NULL, NULL};
	char long_label[80], long_name[300];
	unsigned n = 0;
	struct got g[5];

	memset(long_label, 'x', 64); /* one octet over the label limit */
	strcpy(long_label + 64, ".example");
	for (int i = 0; i < 254; i++) /* labels of 49 */
		long_name[i] = i % 50 == 49 ? '.' : 'y';
	long_name[254] = '\0';
	names[6] = long_label;
	names[7] = NULL;
	for (int i = 0; names[i] != NULL; i++) {
		n += start_all(names[i], g);
		assert_calls(g, 0);
		loop_until(&l, n, ANSWER_MS);
		assert_calls(g, 1);
		for (int k = 0; k < 5; k++)
			assert_int_equal(g[k].status, DNS_BADNAME);
	}
	/* 254 characters: one too many (RFC 1035 §2.3.4) */
	n += start_all(long_name, g);
	loop_until(&l, n, ANSWER_MS);
	assert_int_equal(g[0].status, DNS_BADNAME);
	long_name[253] = '\0'; /* 253: fine, and does not exist */
	n += start_all(long_name, g);
	loop_until(&l, n, ANSWER_MS);
	assert_int_equal(g[0].status, DNS_NXDOMAIN);
}

static void
test_cancelled_queries_never_call_back(void **state)
{
	struct dns_query *q[5];
	struct got g[5], after;

	for (int i = 0; i < 5; i++)
		got_init(&g[i], &l);
	q[0] = dns_mx(l.r, "multi.drover.example", got_mx, &g[0]);
	q[1] = dns_addr(l.r, "a.drover.example", DNS_IP_PREFER_V6, got_addr, &g[1]);
	q[2] = dns_mx_addrs(l.r, "multi.drover.example", DNS_IP_PREFER_V6, got_mx_addrs, &g[2]);
	q[3] = dns_txt(l.r, "txt.drover.example", got_txt, &g[3]);
	q[4] = dns_mx(l.r, "", got_mx, &g[4]); /* already answered, not yet delivered */
	for (int i = 0; i < 5; i++)
		dns_cancel(q[i]);
	dns_cancel(NULL);

	/* The same names again, to completion: their answers pass through the loop while the
	 * cancelled ones' may still arrive from unbound. */
	got_init(&after, &l);
	dns_mx_addrs(l.r, "multi.drover.example", DNS_IP_PREFER_V6, got_mx_addrs, &after);
	loop_until(&l, 1, ANSWER_MS);
	loop_for(&l, 200);
	assert_int_equal(after.status, DNS_OK);
	assert_calls(g, 0);
}

static struct dns_query *self_query;

static void
cancel_self(void *arg, const struct dns_mx_result *res)
{
	got_mx(arg, res);
	dns_cancel(self_query); /* e.g. the owner tearing itself down: must be harmless */
}

static void
test_cancel_from_inside_the_callback_is_harmless(void **state)
{
	struct got g;

	got_init(&g, &l);
	self_query = dns_mx(l.r, "multi.drover.example", cancel_self, &g);
	loop_until(&l, 1, ANSWER_MS);
	assert_int_equal(g.calls, 1);
	assert_int_equal(g.status, DNS_OK);
}

static void
test_free_with_queries_in_flight(void **state)
{
	struct got g[5], silent;

	start_all("multi.drover.example", g);
	got_init(&silent, &l);
	dns_mx(l.r, "silent.drover.example", got_mx, &silent);
	dns_resolver_free(l.r);
	l.r = NULL;
	loop_for(&l, 200);
	assert_calls(g, 0);
	assert_int_equal(silent.calls, 0);
}

static void
free_resolver(void *arg, const struct dns_mx_result *res)
{
	got_mx(arg, res);
	dns_resolver_free(l.r); /* the last user of the loop's resolver going away */
	l.r = NULL;
}

static void
test_free_from_inside_a_callback(void **state)
{
	struct got first, second;

	got_init(&first, &l);
	got_init(&second, &l);
	dns_mx(l.r, "", free_resolver, &first); /* answers (BADNAME) before the other */
	dns_mx(l.r, "silent.drover.example", got_mx, &second);
	loop_until(&l, 1, ANSWER_MS);
	loop_for(&l, 100);
	assert_int_equal(first.calls, 1);
	assert_int_equal(second.calls, 0);
	assert_null(l.r);
}

/* A UDP port where nothing ever answers: the forwarder of a resolver whose deadline must end
 * the query, since unbound itself keeps retrying for much longer. */
static void
test_deadline_when_the_server_never_answers(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	char fwd[32];
	struct got g[5];
	uint64_t start;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	snprintf(fwd, sizeof(fwd), "127.0.0.1@%u", ntohs(sin.sin_port));
	dns_resolver_free(l.r);
	l.r = resolver_with(l.base, fwd, 500, 0);

	start = mono_ms();
	start_all("multi.drover.example", g);
	loop_until(&l, 5, ANSWER_MS);
	assert_in_range(mono_ms() - start, 450, 3000);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].status, DNS_TEMPFAIL);
		assert_string_equal(g[i].error, "timed out after 500 ms");
		assert_int_equal(g[i].ttl, 0);
	}
	close(fd);
}

static void
test_deadline_covers_every_phase(void **state)
{
	struct got g;
	uint64_t start = mono_ms();

	dns_resolver_free(l.r);
	l.r = resolver_with(l.base, server.forwarder, 600, 0);

	/* The MX answers, its only host's addresses never do. */
	got_init(&g, &l);
	dns_mx_addrs(l.r, "slowmx.drover.example", DNS_IP_PREFER_V6, got_mx_addrs, &g);
	loop_until(&l, 1, ANSWER_MS);
	assert_in_range(mono_ms() - start, 550, 3000);
	assert_int_equal(g.status, DNS_TEMPFAIL);
	assert_string_equal(g.error, "timed out after 600 ms");

	/* One host silent, the other answered: what answered is enough to try. */
	got_init(&g, &l);
	dns_mx_addrs(l.r, "halfslow.drover.example", DNS_IP_PREFER_V4, got_mx_addrs, &g);
	loop_until(&l, 2, ANSWER_MS);
	assert_int_equal(g.status, DNS_OK);
	assert_int_equal(g.n, 2);
	assert_string_equal(g.name[0], "a.drover.example");
	assert_string_equal(g.addr[0], "127.0.0.1");
}

/* Runs MX queries every 50 ms until the first host is `want`; returns the ms it took. */
static uint64_t
mx_until(const char *domain, const char *want, enum dns_status want_status)
{
	uint64_t start = mono_ms();

	for (;;) {
		struct got g;

		got_init(&g, &l);
		dns_mx(l.r, domain, got_mx, &g);
		loop_until(&l, l.answers + 1, ANSWER_MS);
		if (g.status == want_status && (want == NULL || strcmp(g.name[0], want) == 0))
			return mono_ms() - start;
		if (mono_ms() - start > 5000)
			fail_msg("%s: still %s %s after 5 s", domain, dns_status_name(g.status),
			         g.name[0]);
		loop_for(&l, 50);
	}
}

static void
rewrite_zone(const char *ttl_host, bool neg_exists)
{
	char zone[8192];

	zone_json(zone, sizeof(zone), ttl_host, neg_exists);
	zone_write(&server, zone);
}

/* Unbound's cache: an answer is reused for its TTL (1 s here), then asked again. */
static void
test_answers_are_cached_for_their_ttl(void **state)
{
	struct got g;
	uint64_t start = mono_ms(), took;

	got_init(&g, &l);
	dns_mx(l.r, "ttl.drover.example", got_mx, &g);
	loop_until(&l, 1, ANSWER_MS);
	assert_string_equal(g.name[0], "old.drover.example");
	assert_in_range(g.ttl, 0, 1);

	rewrite_zone("new.drover.example", false);
	got_init(&g, &l);
	dns_mx(l.r, "ttl.drover.example", got_mx, &g);
	loop_until(&l, 2, ANSWER_MS);
	assert_string_equal(g.name[0], "old.drover.example"); /* from the cache */

	mx_until("ttl.drover.example", "new.drover.example", DNS_OK);
	took = mono_ms() - start;
	assert_true(took >= 500); /* not before the TTL has (nearly: whole seconds) run out */
	rewrite_zone("old.drover.example", false);
}

/* Negative answers are cached for the SOA minimum (1 s here, RFC 2308), then asked again. */
static void
test_negative_answers_are_cached_for_the_soa_minimum(void **state)
{
	struct got g;

	got_init(&g, &l);
	dns_mx(l.r, "neg.drover.example", got_mx, &g);
	loop_until(&l, 1, ANSWER_MS);
	assert_int_equal(g.status, DNS_NXDOMAIN);

	rewrite_zone("old.drover.example", true);
	got_init(&g, &l);
	dns_mx(l.r, "neg.drover.example", got_mx, &g);
	loop_until(&l, 2, ANSWER_MS);
	assert_int_equal(g.status, DNS_NXDOMAIN); /* from the cache */

	/* Then the name exists, without MX: the implicit MX. */
	mx_until("neg.drover.example", "neg.drover.example", DNS_OK);
	rewrite_zone("old.drover.example", false);
}

static void
test_many_queries_at_once(void **state)
{
	enum { N = 300 };
	static struct got g[N];
	static const char *const names[] = {"multi.drover.example", "nomx.drover.example",
	                                    "nullmx.drover.example", "nowhere.drover.example",
	                                    "broken.drover.example"};
	static const enum dns_status want[] = {DNS_OK, DNS_OK, DNS_NULL_MX, DNS_NXDOMAIN,
	                                       DNS_TEMPFAIL};

	for (int i = 0; i < N; i++) {
		got_init(&g[i], &l);
		dns_mx_addrs(l.r, names[i % 5], DNS_IP_PREFER_V6, got_mx_addrs, &g[i]);
	}
	loop_until(&l, N, 3 * ANSWER_MS);
	for (int i = 0; i < N; i++) {
		assert_int_equal(g[i].calls, 1);
		assert_int_equal(g[i].status, want[i % 5]);
	}
}

static void
test_configuration_errors_say_what_is_wrong(void **state)
{
	const char *bad[] = {"mx.example.com", NULL};
	struct dns_options opt = {.forwarders = bad};
	char err[256] = "", path[128];
	FILE *f;

	assert_null(dns_resolver_new(l.base, &opt, err, sizeof(err)));
	assert_non_null(strstr(err, "forwarder \"mx.example.com\""));

	opt = (struct dns_options){.resolv_conf = "/nonexistent/resolv.conf"};
	assert_null(dns_resolver_new(l.base, &opt, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/resolv.conf"));

	/* The system's way: nameservers from a resolv.conf (loopback allowed). */
	snprintf(path, sizeof(path), "%s/resolv.conf", server.dir);
	assert_non_null(f = fopen(path, "w"));
	fputs("# a comment\nnameserver 127.0.0.1\nnameserver ::1\n", f);
	fclose(f);
	opt = (struct dns_options){.resolv_conf = path};
	struct dns_resolver *r = dns_resolver_new(l.base, &opt, err, sizeof(err));

	assert_non_null(r);
	dns_resolver_free(r);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, loop_setup, loop_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_callbacks_never_run_inside_the_call),
	    T(test_invalid_names_answer_later_too),
	    T(test_cancelled_queries_never_call_back),
	    T(test_cancel_from_inside_the_callback_is_harmless),
	    T(test_free_with_queries_in_flight),
	    T(test_free_from_inside_a_callback),
	    T(test_deadline_when_the_server_never_answers),
	    T(test_deadline_covers_every_phase),
	    T(test_answers_are_cached_for_their_ttl),
	    T(test_negative_answers_are_cached_for_the_soa_minimum),
	    T(test_many_queries_at_once),
	    T(test_configuration_errors_say_what_is_wrong),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
