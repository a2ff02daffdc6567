/* test_dns_util.h - what the resolver's live tests share: a real DNS server on loopback
 * (tests/integration/dnsserver.py, started with /usr/bin/python3 and its python3-dnslib) serving
 * a zone file these tests write, an event loop run until an answer or a deadline, and copies
 * of results (a result lives only as long as its callback). */
#ifndef DROVER_TEST_DNS_UTIL_H
#define DROVER_TEST_DNS_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/core.h"
#include "dns/dns.h"

#ifndef DROVER_SOURCE_DIR
#error "DROVER_SOURCE_DIR (the repository) must be defined: the tests run its dnsserver.py"
#endif

#define PYTHON          "/usr/bin/python3" /* Debian's, with python3-dnslib */
#define SERVER_START_MS 20000              /* a cold Python under a loaded CI machine */

struct dns_server {
	pid_t pid;
	int port;
	char dir[64];
	char zone[128];
	char forwarder[32];
};

/* Writes the zone atomically (a new file renamed over the old): the server re-reads it when
 * it changes, and never sees half a file. */
static inline void
zone_write(struct dns_server *s, const char *json)
{
	char tmp[160];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", s->zone);
	if ((f = fopen(tmp, "w")) == NULL)
		fail_msg("%s: %s", tmp, strerror(errno));
	fputs(json, f);
	if (fclose(f) != 0 || rename(tmp, s->zone) != 0)
		fail_msg("%s: %s", s->zone, strerror(errno));
}

static inline uint64_t
mono_ms(void)
{
	return time_mono_us() / 1000;
}

/* Starts the server on a free port it picks and prints ("port N"); waits for that line with a
 * deadline. Returns 0, or -1 with the reason printed. */
static inline int
dns_server_start(struct dns_server *s, const char *json)
{
	char line[64] = "", *script = DROVER_SOURCE_DIR "/tests/integration/dnsserver.py";
	uint64_t deadline = mono_ms() + SERVER_START_MS;
	size_t got = 0;
	int fds[2];

	strlcpy_s(s->dir, "/tmp/drover-dns-XXXXXX", sizeof(s->dir));
	if (mkdtemp(s->dir) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	snprintf(s->zone, sizeof(s->zone), "%s/zone.json", s->dir);
	zone_write(s, json);
	if (pipe(fds) == -1)
		fail_msg("pipe: %s", strerror(errno));
	if ((s->pid = fork()) == -1)
		fail_msg("fork: %s", strerror(errno));
	if (s->pid == 0) {
		/* If this test dies without its teardown, the server goes with it. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execl(PYTHON, PYTHON, script, s->zone, (char *)NULL);
		fprintf(stderr, "exec %s: %s\n", PYTHON, strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	while (strchr(line, '\n') == NULL && got < sizeof(line) - 1) {
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		int64_t left = (int64_t)(deadline - mono_ms());
		ssize_t n;

		if (left <= 0 || poll(&p, 1, (int)left) <= 0)
			break;
		if ((n = read(fds[0], line + got, sizeof(line) - 1 - got)) <= 0)
			break; /* exited: its traceback is on stderr (python3-dnslib missing?) */
		got += (size_t)n;
		line[got] = '\0';
	}
	close(fds[0]);
	if (sscanf(line, "port %d", &s->port) != 1) {
		print_error("dnsserver.py did not start (is python3-dnslib installed?): \"%s\"\n",
		            line);
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		return -1;
	}
	snprintf(s->forwarder, sizeof(s->forwarder), "127.0.0.1@%d", s->port);
	return 0;
}

static inline int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* SIGTERM, then SIGKILL if it has not exited by the deadline. */
static inline void
dns_server_stop(struct dns_server *s)
{
	uint64_t deadline = mono_ms() + 5000;
	int status;

	kill(s->pid, SIGTERM);
	while (waitpid(s->pid, &status, WNOHANG) == 0) {
		if (mono_ms() > deadline) {
			kill(s->pid, SIGKILL);
			waitpid(s->pid, &status, 0);
			break;
		}
		poll(NULL, 0, 10);
	}
	nftw(s->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* ---- The zone every live test reads ---- */

/* Written with ' for " (swapped before use), so that it reads as the JSON it is. */
static const char zone_template[] =
    "{'ttl': 300, 'negative_ttl': 1, 'zones': ['drover.example'],\n"
    " 'records': {\n"
    "  'multi.drover.example':    {'MX': [[10, 'a.drover.example'], [10, 'b.drover.example'],\n"
    "                                     [10, 'c.drover.example'], [20, 'd.drover.example'],\n"
    "                                     [30, 'e.drover.example']]},\n"
    "  'a.drover.example':        {'A': ['127.0.0.1'], 'AAAA': ['::1']},\n"
    "  'b.drover.example':        {'A': ['127.0.0.2']},\n"
    "  'c.drover.example':        {'AAAA': ['::2']},\n"
    "  'd.drover.example':        {'A': ['127.0.0.4']},\n"
    "  'e.drover.example':        {'TXT': ['no address here']},\n"
    "  'b2.drover.example':       {'A': ['127.0.0.2']},\n"
    "  'cname.drover.example':    {'CNAME': 'multi.drover.example'},\n"
    "  'nullmx.drover.example':   {'MX': [[0, '.']]},\n"
    "  'nomx.drover.example':     {'A': ['127.0.0.9'], 'AAAA': ['::9']},\n"
    "  'noaddr.drover.example':   {'TXT': ['neither MX nor address']},\n"
    "  'deadmx.drover.example':   {'MX': [[10, 'missing.drover.example']]},\n"
    "  'failmx.drover.example':   {'MX': [[10, 'broken.drover.example']]},\n"
    "  'partial.drover.example':  {'MX': [[10, 'broken.drover.example'],\n"
    "                                     [20, 'a.drover.example']]},\n"
    "  'dup.drover.example':      {'MX': [[10, 'a.drover.example'], [20, 'A.drover.example']]},\n"
    "  'dupaddr.drover.example':  {'MX': [[10, 'b.drover.example'], [20, 'b2.drover.example']]},\n"
    "  'txt.drover.example':      {'TXT': ['v=spf1 -all', ['part one ', 'part two'], '%0600d']},\n"
    "  'slowmx.drover.example':   {'MX': [[10, 'silent.drover.example']]},\n"
    "  'halfslow.drover.example': {'MX': [[10, 'silent.drover.example'],\n"
    "                                     [20, 'a.drover.example']]},\n"
    "  '_25._tcp.a.drover.example': {'TLSA': ['3 1 1 0123abcd']},\n"
    "  'ttl.drover.example':      {'MX': {'ttl': 1, 'data': [[10, '%s']]}}%s\n"
    " },\n"
    " 'servfail': ['broken.drover.example'],\n"
    " 'drop': ['silent.drover.example']\n"
    "}\n";

/* ttl_host: the MX host of ttl.drover.example (TTL 1 s); neg_exists: whether
 * neg.drover.example exists yet (negative answers are cached for 1 s). */
static inline void
zone_json(char *buf, size_t size, const char *ttl_host, bool neg_exists)
{
	snprintf(buf, size, zone_template, 0, ttl_host,
	         neg_exists ? ",\n  'neg.drover.example':      {'A': ['127.0.0.5']}" : "");
	for (char *p = buf; (p = strchr(p, '\'')) != NULL; p++)
		*p = '"';
}

/* ---- An event loop run until the answers expected have come, or a deadline ---- */

struct loop {
	struct event_base *base;
	struct dns_resolver *r;
	unsigned answers;
};

static inline struct dns_resolver *
resolver_with(struct event_base *base, const char *forwarder, unsigned timeout_ms, uint64_t seed)
{
	const char *fwd[] = {forwarder, NULL};
	struct dns_options opt = {.forwarders = fwd, .timeout_ms = timeout_ms, .seed = seed};
	char err[256] = "";
	struct dns_resolver *r = dns_resolver_new(base, &opt, err, sizeof(err));

	if (r == NULL)
		fail_msg("dns_resolver_new: %s", err);
	return r;
}

static inline void
loop_init(struct loop *l, const char *forwarder, unsigned timeout_ms)
{
	l->base = event_base_new();
	assert_non_null(l->base);
	l->r = resolver_with(l->base, forwarder, timeout_ms, 0);
	l->answers = 0;
}

static inline void
loop_free(struct loop *l)
{
	dns_resolver_free(l->r);
	event_base_free(l->base);
}

static inline void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Runs the loop until l->answers reaches n, failing the test after timeout_ms. */
static inline void
loop_until(struct loop *l, unsigned n, unsigned timeout_ms)
{
	bool expired = false;
	struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
	struct event *deadline = evtimer_new(l->base, on_deadline, &expired);

	evtimer_add(deadline, &tv);
	while (l->answers < n && !expired)
		event_base_loop(l->base, EVLOOP_ONCE);
	event_free(deadline);
	if (l->answers < n)
		fail_msg("%u of %u answers after %u ms", l->answers, n, timeout_ms);
}

/* Runs the loop for a while with nothing expected (to show nothing comes). */
static inline void
loop_for(struct loop *l, unsigned ms)
{
	bool expired = false;
	struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
	struct event *deadline = evtimer_new(l->base, on_deadline, &expired);

	evtimer_add(deadline, &tv);
	while (!expired)
		event_base_loop(l->base, EVLOOP_ONCE);
	event_free(deadline);
}

/* ---- Copies of results ---- */

#define HOSTS_MAX   DNS_MX_HOSTS_MAX
#define TARGETS_MAX 64

struct got {
	struct loop *l;
	unsigned calls;
	enum dns_status status;
	bool implicit;
	uint32_t ttl;
	char error[128];
	size_t n;
	uint16_t pref[TARGETS_MAX];
	char name[TARGETS_MAX][DNS_NAME_MAX + 1]; /* MX hosts, target hosts, TXT texts */
	size_t len[TARGETS_MAX];                  /* TXT and rdata lengths */
	char addr[TARGETS_MAX][INET6_ADDRSTRLEN]; /* addresses and targets' addresses */
	unsigned char rdata[TARGETS_MAX][64];
};

static inline void
got_common(struct got *g, enum dns_status status, uint32_t ttl, const char *error)
{
	g->calls++;
	g->l->answers++;
	g->status = status;
	g->ttl = ttl;
	strlcpy_s(g->error, error ? error : "", sizeof(g->error));
}

static inline void
got_mx(void *arg, const struct dns_mx_result *res)
{
	struct got *g = arg;

	got_common(g, res->status, res->ttl, res->error);
	g->implicit = res->implicit;
	g->n = res->nhosts;
	assert_in_range(res->nhosts, 0, HOSTS_MAX);
	for (size_t i = 0; i < res->nhosts; i++) {
		g->pref[i] = res->hosts[i].preference;
		strlcpy_s(g->name[i], res->hosts[i].name, sizeof(g->name[i]));
	}
}

static inline void
got_addr(void *arg, const struct dns_addr_result *res)
{
	struct got *g = arg;

	got_common(g, res->status, res->ttl, res->error);
	g->n = res->naddrs;
	assert_in_range(res->naddrs, 0, TARGETS_MAX);
	for (size_t i = 0; i < res->naddrs; i++)
		dns_address_str(&res->addrs[i], g->addr[i], sizeof(g->addr[i]));
}

static inline void
got_mx_addrs(void *arg, const struct dns_mx_addrs_result *res)
{
	struct got *g = arg;

	got_common(g, res->status, res->ttl, res->error);
	g->implicit = res->implicit;
	g->n = res->ntargets;
	assert_in_range(res->ntargets, 0, TARGETS_MAX);
	for (size_t i = 0; i < res->ntargets; i++) {
		g->pref[i] = res->targets[i].preference;
		strlcpy_s(g->name[i], res->targets[i].host, sizeof(g->name[i]));
		dns_address_str(&res->targets[i].addr, g->addr[i], sizeof(g->addr[i]));
	}
}

static inline void
got_txt(void *arg, const struct dns_txt_result *res)
{
	struct got *g = arg;

	got_common(g, res->status, res->ttl, res->error);
	g->n = res->nrecords;
	assert_in_range(res->nrecords, 0, TARGETS_MAX);
	for (size_t i = 0; i < res->nrecords; i++) {
		assert_true(res->records[i].len < sizeof(g->name[i]) * 4);
		g->len[i] = res->records[i].len;
		strlcpy_s(g->name[i], res->records[i].text, sizeof(g->name[i]));
	}
}

static inline void
got_rr(void *arg, const struct dns_rr_result *res)
{
	struct got *g = arg;

	got_common(g, res->status, res->ttl, res->error);
	g->n = res->nrdata;
	assert_in_range(res->nrdata, 0, TARGETS_MAX);
	for (size_t i = 0; i < res->nrdata; i++) {
		g->len[i] = res->rdata[i].len;
		memcpy(g->rdata[i], res->rdata[i].data,
		       res->rdata[i].len < sizeof(g->rdata[i]) ? res->rdata[i].len
		                                               : sizeof(g->rdata[i]));
	}
}

static inline void
got_init(struct got *g, struct loop *l)
{
	memset(g, 0, sizeof(*g));
	g->l = l;
	g->status = (enum dns_status) - 1;
}

/* Index of a name among the first n, or -1. */
static inline int
name_index(const struct got *g, const char *name)
{
	for (size_t i = 0; i < g->n; i++)
		if (strcmp(g->name[i], name) == 0)
			return (int)i;
	return -1;
}

#endif
