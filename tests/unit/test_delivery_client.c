/* The SMTP client against real receivers on loopback: tests/integration/receiver.py runs as a
 * subprocess with the flags of each scenario, the client delivers to it on a real event
 * loop, and each test checks both sides: the outcome per recipient, and what the receiver
 * recorded (envelope, parameters, content, the commands in order).
 *
 * Every wait has a deadline; every receiver is stopped by the teardown, even after a failed
 * assertion. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <jansson.h>

#include "core/core.h"
#include "delivery/delivery.h"
#include "spool/spool.h"

#define PYTHON   "/usr/bin/python3"
#define RECEIVER DROVER_SOURCE_DIR "/tests/integration/receiver.py"
#define HELO     "client.drover.example"

#define START_DEADLINE_MS  15000 /* the receiver prints its port */
#define RUN_DEADLINE_MS    20000 /* a whole client session */
#define RECORD_DEADLINE_MS 5000  /* the receiver writes a session record after the close */

/* ---- Receivers ---- */

struct rx {
	pid_t pid;
	int port;
	char record[64];
};

#define RX_MAX 3
static struct rx receivers[RX_MAX];

static uint64_t
now_ms(void)
{
	return time_mono_us() / 1000;
}

/* Starts receiver.py with flags (NULL-terminated); returns once it listens. */
static struct rx *
rx_start(const char *const *flags)
{
	struct rx *rx = NULL;
	const char *argv[64];
	int pipefd[2], argc = 0, fd;
	char buf[128];
	size_t got = 0;
	uint64_t deadline = now_ms() + START_DEADLINE_MS;

	if (access(PYTHON, X_OK) != 0)
		skip(); /* Debian's python3 is a test dependency (make deps-test) */
	for (int i = 0; i < RX_MAX && rx == NULL; i++)
		if (receivers[i].pid == 0)
			rx = &receivers[i];
	assert_non_null(rx);
	strlcpy_s(rx->record, "/tmp/drover-rx-XXXXXX", sizeof(rx->record));
	fd = mkstemp(rx->record);
	assert_true(fd >= 0);
	close(fd);

	argv[argc++] = PYTHON;
	argv[argc++] = RECEIVER;
	argv[argc++] = "--record";
	argv[argc++] = rx->record;
	for (int i = 0; flags != NULL && flags[i] != NULL; i++)
		argv[argc++] = flags[i];
	argv[argc] = NULL;

	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	rx->pid = fork();
	assert_true(rx->pid >= 0);
	if (rx->pid == 0) {
		dup2(pipefd[1], STDOUT_FILENO);
		execv(PYTHON, (char *const *)argv);
		_exit(127);
	}
	close(pipefd[1]);
	/* Read "port N\n" within the deadline. */
	while (memchr(buf, '\n', got) == NULL) {
		struct pollfd p = {.fd = pipefd[0], .events = POLLIN};
		uint64_t now = now_ms();
		ssize_t n;

		if (now >= deadline)
			fail_msg("receiver.py did not print its port in time");
		if (poll(&p, 1, (int)(deadline - now)) <= 0)
			continue;
		n = read(pipefd[0], buf + got, sizeof(buf) - 1 - got);
		if (n <= 0)
			fail_msg("receiver.py exited before listening (flags wrong?)");
		got += (size_t)n;
		if (got >= sizeof(buf) - 1)
			fail_msg("receiver.py said too much");
	}
	close(pipefd[0]);
	buf[got] = '\0';
	assert_int_equal(sscanf(buf, "port %d", &rx->port), 1);
	return rx;
}

static void
rx_stop(struct rx *rx)
{
	uint64_t deadline = now_ms() + 5000;
	int status;

	if (rx->pid <= 0)
		return;
	kill(rx->pid, SIGTERM);
	while (waitpid(rx->pid, &status, WNOHANG) == 0) {
		if (now_ms() > deadline) {
			kill(rx->pid, SIGKILL);
			waitpid(rx->pid, &status, 0);
			break;
		}
		usleep(10 * 1000);
	}
	unlink(rx->record);
	memset(rx, 0, sizeof(*rx));
}

/* The receiver's records of one type, as a JSON array (caller decrefs). */
static json_t *
rx_records(const struct rx *rx, const char *type)
{
	json_t *all = json_array();
	FILE *f = fopen(rx->record, "r");
	char *line = NULL;
	size_t cap = 0;

	assert_non_null(f);
	while (getline(&line, &cap, f) > 0) {
		json_error_t err;
		json_t *rec = json_loads(line, 0, &err);

		if (rec == NULL) /* a line being written */
			continue;
		if (strcmp(json_string_value(json_object_get(rec, "type")), type) == 0)
			json_array_append(all, rec);
		json_decref(rec);
	}
	free(line);
	fclose(f);
	return all;
}

/* Waits until the receiver has written at least n records of a type. */
static json_t *
rx_wait(const struct rx *rx, const char *type, size_t n)
{
	uint64_t deadline = now_ms() + RECORD_DEADLINE_MS;

	for (;;) {
		json_t *recs = rx_records(rx, type);

		if (json_array_size(recs) >= n)
			return recs;
		json_decref(recs);
		if (now_ms() > deadline)
			fail_msg("receiver recorded fewer than %zu %s records", n, type);
		usleep(10 * 1000);
	}
}

static const char *
jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	assert_non_null(s);
	return s;
}

/* True if the JSON array of strings arr contains s. */
static bool
jhas(const json_t *arr, const char *s)
{
	for (size_t i = 0; i < json_array_size(arr); i++)
		if (strcmp(json_string_value(json_array_get(arr, i)), s) == 0)
			return true;
	return false;
}

/* The session's command verbs joined with spaces: "EHLO MAIL RCPT DATA QUIT". */
static void
verbs(const json_t *session, char *out, size_t size)
{
	const json_t *cmds = json_object_get(session, "commands");
	size_t i, n = 0;
	json_t *v;

	out[0] = '\0';
	json_array_foreach(cmds, i, v)
	{
		const char *c = json_string_value(v);
		size_t len = strcspn(c, " ");

		n += (size_t)snprintf(out + n, size - n, "%s%.*s", n ? " " : "", (int)len, c);
		if (n >= size)
			break;
	}
}

/* ---- Messages ---- */

struct test_msg {
	struct envelope env;
	size_t idx[8];
	struct evbuffer *body;
	struct delivery_message m;
};

#define MSG_MAX 8

/* A message from sender to the recipients (NULL-terminated), with this body. */
static void
msg_init(struct test_msg *t, const char *sender, const char *const *rcpts, const char *body,
         size_t body_len)
{
	size_t n = 0;

	memset(t, 0, sizeof(*t));
	while (rcpts[n] != NULL)
		n++;
	t->env.sender = xstrdup(sender);
	t->env.nrcpt = n;
	t->env.rcpt = xcalloc(n, sizeof(*t->env.rcpt));
	for (size_t i = 0; i < n; i++) {
		t->env.rcpt[i].address = xstrdup(rcpts[i]);
		t->idx[i] = i;
	}
	t->body = evbuffer_new();
	evbuffer_add(t->body, body, body_len);
	t->env.size = body_len;
	t->m = (struct delivery_message){
	    .env = &t->env, .rcpt = t->idx, .nrcpt = n, .body = t->body, .arg = t};
}

static void
msg_free(struct test_msg *t)
{
	envelope_clear(&t->env);
	if (t->body != NULL)
		evbuffer_free(t->body);
	t->body = NULL;
}

/* ---- Running a client ---- */

struct rcpt_copy {
	size_t rcpt;
	enum delivery_status status;
	enum delivery_phase phase;
	int code;
	char st[16];
	char text[512];
	bool local;
};

struct result_copy {
	struct test_msg *msg;
	bool reused;
	char mx_host[64], mx_addr[64];
	unsigned port;
	size_t nrcpt;
	struct rcpt_copy r[8];
};

struct run {
	struct event_base *base;
	struct delivery_client *client;
	struct test_msg msgs[MSG_MAX];
	int nmsgs;
	int next;      /* next message the next callback hands out */
	int feed_upto; /* the next callback hands out messages below this index */
	struct result_copy results[MSG_MAX];
	int nresults;
	bool closed;
	struct delivery_session session;
	int error_code;
	char error_status[16], error_text[512];
	bool had_error, had_ehlo;
	/* behaviours */
	bool free_in_result;   /* delivery_client_free() from the first result */
	int send_later_ms;     /* after the first result, idle, then send msgs[next] */
	bool close_after_send; /* delivery_client_close() right after that send */
	struct event *later;
};

static struct run run;

static void
copy_result(const struct delivery_result *res)
{
	struct result_copy *c;

	assert_true(run.nresults < MSG_MAX);
	c = &run.results[run.nresults++];
	c->msg = res->msg->arg;
	c->reused = res->reused;
	strlcpy_s(c->mx_host, res->mx_host ? res->mx_host : "", sizeof(c->mx_host));
	strlcpy_s(c->mx_addr, res->mx_addr ? res->mx_addr : "", sizeof(c->mx_addr));
	c->port = res->mx_port;
	c->nrcpt = res->nrcpt;
	for (size_t i = 0; i < res->nrcpt && i < 8; i++) {
		const struct delivery_rcpt_result *r = &res->rcpt[i];

		c->r[i] = (struct rcpt_copy){.rcpt = r->rcpt,
		                             .status = r->status,
		                             .phase = r->phase,
		                             .code = r->reply.code,
		                             .local = r->reply.local};
		strlcpy_s(c->r[i].st, r->reply.status, sizeof(c->r[i].st));
		strlcpy_s(c->r[i].text, r->reply.text ? r->reply.text : "", sizeof(c->r[i].text));
	}
}

static void
later_cb(evutil_socket_t fd, short what, void *arg)
{
	assert_true(delivery_client_idle(run.client));
	assert_int_equal(delivery_client_send(run.client, &run.msgs[run.next].m), 0);
	run.next++;
	/* Busy now: a second message is refused. */
	assert_int_equal(delivery_client_send(run.client, &run.msgs[0].m), -1);
	assert_false(delivery_client_idle(run.client));
	if (run.close_after_send)
		delivery_client_close(run.client);
}

static void
on_result(void *arg, struct delivery_client *c, const struct delivery_result *res)
{
	copy_result(res);
	if (run.free_in_result) {
		delivery_client_free(c);
		run.client = NULL;
		event_base_loopbreak(run.base);
		return;
	}
	if (run.send_later_ms > 0 && run.nresults == 1) {
		struct timeval tv = {.tv_sec = 0, .tv_usec = run.send_later_ms * 1000};

		run.later = evtimer_new(run.base, later_cb, NULL);
		evtimer_add(run.later, &tv);
	}
}

static const struct delivery_message *
on_next(void *arg, struct delivery_client *c)
{
	if (run.next < run.feed_upto)
		return &run.msgs[run.next++].m;
	return NULL;
}

static void
on_closed(void *arg, struct delivery_client *c, const struct delivery_session *s)
{
	run.closed = true;
	run.session = *s;
	run.had_error = s->error != NULL;
	run.had_ehlo = s->ehlo != NULL;
	if (s->error != NULL) {
		run.error_code = s->error->code;
		strlcpy_s(run.error_status, s->error->status, sizeof(run.error_status));
		strlcpy_s(run.error_text, s->error->text, sizeof(run.error_text));
	}
	run.session.error = NULL;
	run.session.ehlo = NULL;
	run.session.mx_host = run.session.mx_addr = NULL;
	event_base_loopbreak(run.base);
}

static const struct delivery_callbacks callbacks = {on_result, on_next, on_closed, NULL};

static struct sockaddr_storage target_addrs[4];

/* A target on loopback (IPv4 or IPv6) at port. */
static struct delivery_target
target(int i, const char *host, const char *ip, int port)
{
	struct sockaddr_storage *ss = &target_addrs[i];
	socklen_t len;

	memset(ss, 0, sizeof(*ss));
	if (strchr(ip, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, ip, &s6->sin6_addr), 1);
		len = sizeof(*s6);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, ip, &s4->sin_addr), 1);
		len = sizeof(*s4);
	}
	return (struct delivery_target){
	    .host = host, .addr = (struct sockaddr *)ss, .addr_len = len};
}

/* Short timeouts, so that the timeout scenarios take a fraction of a second. */
static struct delivery_options
fast_options(void)
{
	return (struct delivery_options){
	    .helo_name = HELO,
	    .timeouts = {.connect_ms = 2000,
	                 .greeting_ms = 2000,
	                 .helo_ms = 2000,
	                 .mail_ms = 2000,
	                 .rcpt_ms = 2000,
	                 .data_ms = 2000,
	                 .data_block_ms = 2000,
	                 .dot_ms = 2000,
	                 .rset_ms = 2000,
	                 .quit_ms = 2000,
	                 .idle_ms = 100},
	};
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	event_base_loopbreak(run.base);
}

/* Creates the client for these targets, hands it msgs[0] (messages below feed_upto follow
 * through the next callback) and runs the loop until the session is closed. */
static void
run_client(const struct delivery_options *opts, const struct delivery_target *targets,
           size_t ntargets, int feed_upto)
{
	char err[256];
	struct event *deadline;
	struct timeval tv = {.tv_sec = RUN_DEADLINE_MS / 1000};

	run.client = delivery_client_new(run.base, opts, targets, ntargets, &callbacks, NULL, err,
	                                 sizeof(err));
	if (run.client == NULL)
		fail_msg("delivery_client_new: %s", err);
	run.feed_upto = feed_upto;
	run.next = 1;
	if (run.nmsgs > 0)
		assert_int_equal(delivery_client_send(run.client, &run.msgs[0].m), 0);
	else
		delivery_client_close(run.client);
	deadline = evtimer_new(run.base, deadline_cb, NULL);
	evtimer_add(deadline, &tv);
	event_base_dispatch(run.base);
	event_free(deadline);
	if (run.client != NULL && !run.closed)
		fail_msg("the client session did not end within %d ms", RUN_DEADLINE_MS);
	if (run.client != NULL)
		delivery_client_free(run.client);
	run.client = NULL;
}

static void
run_one(const struct delivery_options *opts, const struct rx *rx)
{
	struct delivery_target t = target(0, "mx.test.example", "127.0.0.1", rx->port);

	run_client(opts, &t, 1, run.nmsgs);
}

static const char *const two_rcpts[] = {"b@example.com", "c@example.com", NULL};

static struct test_msg *
add_msg(const char *const *rcpts, const char *body)
{
	struct test_msg *t = &run.msgs[run.nmsgs++];

	msg_init(t, "sender@example.org", rcpts, body, strlen(body));
	return t;
}

static void
assert_rcpt(const struct result_copy *r, size_t i, enum delivery_status st,
            enum delivery_phase phase, int code, const char *status)
{
	if (r->r[i].status != st || r->r[i].phase != phase || r->r[i].code != code ||
	    strcmp(r->r[i].st, status) != 0)
		fail_msg("recipient %zu: %s at %s %d %s \"%s\"%s; expected %s at %s %d %s", i,
		         delivery_status_name(r->r[i].status), delivery_phase_name(r->r[i].phase),
		         r->r[i].code, r->r[i].st, r->r[i].text, r->r[i].local ? " (local)" : "",
		         delivery_status_name(st), delivery_phase_name(phase), code, status);
}

/* The MAIL FROM of the i-th "message" record of a receiver. */
static const char *
mail_from_of(json_t *msgs, size_t i)
{
	return jstr(json_array_get(msgs, i), "mail_from");
}

/* ---- Fixture ---- */

static int
setup(void **state)
{
	memset(&run, 0, sizeof(run));
	run.base = event_base_new();
	return run.base == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	for (int i = 0; i < RX_MAX; i++)
		rx_stop(&receivers[i]);
	if (run.client != NULL)
		delivery_client_free(run.client);
	if (run.later != NULL)
		event_free(run.later);
	for (int i = 0; i < run.nmsgs; i++)
		msg_free(&run.msgs[i]);
	event_base_free(run.base);
	memset(&run, 0, sizeof(run));
	return 0;
}

/* ---- Scenarios ---- */

static void
test_accept_all_records_envelope_and_content(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--size", "100000", NULL});
	static const char body[] = "Subject: dots\r\n\r\n.leading dot\r\n..two\r\nbare lf\n.\nend";
	static const char wire[] =
	    "Subject: dots\r\n\r\n.leading dot\r\n..two\r\nbare lf\r\n.\r\nend\r\n";
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(two_rcpts, body);
	json_t *msgs, *sessions, *rec;
	char v[256];

	m->env.body_type = SMTP_BODY_8BITMIME;
	run_one(&opts, rx);

	assert_int_equal(run.nresults, 1);
	assert_int_equal(run.results[0].nrcpt, 2);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_rcpt(&run.results[0], 1, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].r[0].text, "Ok: queued as S1T1");
	assert_false(run.results[0].r[0].local);
	assert_false(run.results[0].reused);
	assert_string_equal(run.results[0].mx_host, "mx.test.example");
	assert_string_equal(run.results[0].mx_addr, "127.0.0.1");
	assert_int_equal(run.results[0].port, rx->port);
	assert_true(run.closed);
	assert_true(run.session.established);
	assert_false(run.had_error); /* idle timeout, then QUIT: a normal end */
	assert_true(run.had_ehlo);
	assert_int_equal(run.session.tried, 1);
	assert_int_equal(run.session.messages, 1);

	msgs = rx_wait(rx, "message", 1);
	rec = json_array_get(msgs, 0);
	assert_string_equal(jstr(rec, "mail_from"), "sender@example.org");
	assert_string_equal(jstr(rec, "helo"), HELO);
	assert_string_equal(jstr(rec, "peer"), "127.0.0.1");
	assert_true(jhas(json_object_get(rec, "rcpt_to"), "b@example.com"));
	assert_true(jhas(json_object_get(rec, "rcpt_to"), "c@example.com"));
	snprintf(v, sizeof(v), "SIZE=%zu", strlen(body));
	assert_true(jhas(json_object_get(rec, "mail_params"), v));
	assert_true(jhas(json_object_get(rec, "mail_params"), "BODY=8BITMIME"));
	assert_string_equal(jstr(rec, "data"), wire);
	assert_int_equal(json_integer_value(json_object_get(rec, "bare_lf")), 0);
	assert_true(json_is_true(json_object_get(rec, "pipelined")));
	json_decref(msgs);

	sessions = rx_wait(rx, "session", 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "EHLO MAIL RCPT RCPT DATA QUIT");
	assert_true(json_is_true(json_object_get(json_array_get(sessions, 0), "quit")));
	json_decref(sessions);
}

static void
test_several_messages_per_connection_with_rset(void **state)
{
	static const char *const bad_only[] = {"bad@example.com", NULL};
	struct rx *rx = rx_start(
	    (const char *const[]){"--rcpt-reply", "bad@example.com=550 5.1.1 no such user", NULL});
	struct delivery_options opts = fast_options();
	json_t *msgs, *sessions;
	char v[256];

	add_msg(two_rcpts, "first\r\n");
	add_msg(bad_only, "second\r\n"); /* MAIL accepted, every RCPT refused: RSET next */
	add_msg(two_rcpts, "third\r\n");
	run_one(&opts, rx);

	assert_int_equal(run.nresults, 3);
	assert_false(run.results[0].reused);
	assert_true(run.results[1].reused);
	assert_true(run.results[2].reused);
	assert_rcpt(&run.results[0], 1, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_rcpt(&run.results[1], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_RCPT, 550, "5.1.1");
	assert_string_equal(run.results[1].r[0].text, "no such user");
	assert_rcpt(&run.results[2], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_int_equal(run.session.messages, 3);

	msgs = rx_wait(rx, "message", 2);
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(jstr(json_array_get(msgs, 1), "data"), "third\r\n");
	json_decref(msgs);
	sessions = rx_wait(rx, "session", 1);
	assert_int_equal(json_array_size(sessions), 1); /* one connection for all three */
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "EHLO MAIL RCPT RCPT DATA MAIL RCPT DATA RSET MAIL RCPT RCPT DATA "
	                       "QUIT");
	json_decref(sessions);
}

static void
test_idle_reuse(void **state)
{
	struct rx *rx = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct delivery_target t = target(0, "mx.test.example", "127.0.0.1", rx->port);
	json_t *sessions;
	char v[256];
	uint64_t t0 = now_ms();

	opts.timeouts.idle_ms = 5000;
	add_msg(two_rcpts, "one\r\n");
	add_msg(two_rcpts, "two\r\n");
	run.send_later_ms = 150; /* idle for a while, then handed a message */
	run.close_after_send = true;
	run_client(&opts, &t, 1, 0);

	assert_int_equal(run.nresults, 2);
	assert_rcpt(&run.results[1], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_true(run.results[1].reused);
	assert_false(run.had_error);
	/* Closed right after the second message, not at the 5 s idle timeout. */
	assert_true(now_ms() - t0 < 4000);
	sessions = rx_wait(rx, "session", 1);
	assert_int_equal(json_array_size(sessions), 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "EHLO MAIL RCPT RCPT DATA MAIL RCPT RCPT DATA QUIT");
	json_decref(sessions);
}

static void
test_4xx_then_accept(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--reply", "dot=451 4.3.0 try again later",
	                                               "--times", "dot=1", NULL});
	struct delivery_options opts = fast_options();

	add_msg(two_rcpts, "retry me\r\n");
	add_msg(two_rcpts, "retry me\r\n"); /* the engine's retry, on the same connection */
	run_one(&opts, rx);

	assert_int_equal(run.nresults, 2);
	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_DOT, 451, "4.3.0");
	assert_rcpt(&run.results[0], 1, DELIVERY_DEFERRED, DELIVERY_PHASE_DOT, 451, "4.3.0");
	assert_string_equal(run.results[0].r[0].text, "try again later");
	assert_false(run.results[0].r[0].local);
	assert_rcpt(&run.results[1], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_rcpt(&run.results[1], 1, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
}

static void
test_5xx_for_one_recipient_of_several(void **state)
{
	static const char *const three[] = {"a@example.com", "bad@example.com", "c@example.com",
	                                    NULL};
	struct rx *rx = rx_start((const char *const[]){
	    "--rcpt-reply", "BAD@example.com=550 5.1.1 <bad@example.com>: no such user", NULL});
	struct delivery_options opts = fast_options();
	json_t *msgs;

	add_msg(three, "partial\r\n");
	run_one(&opts, rx);

	assert_int_equal(run.nresults, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_rcpt(&run.results[0], 1, DELIVERY_BOUNCED, DELIVERY_PHASE_RCPT, 550, "5.1.1");
	assert_rcpt(&run.results[0], 2, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].r[1].text, "<bad@example.com>: no such user");
	assert_int_equal(run.results[0].r[1].rcpt, 1);
	msgs = rx_wait(rx, "message", 1);
	assert_int_equal(json_array_size(json_object_get(json_array_get(msgs, 0), "rcpt_to")), 2);
	json_decref(msgs);
}

static void
test_4xx_rcpt_defers_only_that_recipient(void **state)
{
	struct rx *rx =
	    rx_start((const char *const[]){"--rcpt-reply", "c@example.com=452 4.2.2 mailbox full",
	                                   "--no-enhancedstatuscodes", NULL});
	struct delivery_options opts = fast_options();

	add_msg(two_rcpts, "x\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	/* Scripted replies keep their status; the normal ones lost theirs (class default). */
	assert_rcpt(&run.results[0], 1, DELIVERY_DEFERRED, DELIVERY_PHASE_RCPT, 452, "4.2.2");
}

static void
test_drop_mid_data_defers(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--drop", "content", NULL});
	struct delivery_options opts = fast_options();
	size_t len = 4 * 1024 * 1024;
	char *big = xmalloc(len + 1);
	struct test_msg *m;

	for (size_t i = 0; i < len; i++)
		big[i] = i % 100 == 99 ? '\n' : 'x';
	big[len] = '\0';
	m = add_msg(two_rcpts, big);
	free(big);
	(void)m;
	run_one(&opts, rx);

	assert_int_equal(run.nresults, 1);
	for (int i = 0; i < 2; i++) {
		const struct rcpt_copy *r = &run.results[0].r[i];

		assert_int_equal(r->status, DELIVERY_DEFERRED);
		assert_true(r->phase == DELIVERY_PHASE_CONTENT || r->phase == DELIVERY_PHASE_DOT);
		assert_int_equal(r->code, 451);
		assert_string_equal(r->st, "4.4.2");
		assert_true(r->local);
		assert_non_null(strstr(r->text, "lost connection with mx.test.example[127.0.0.1]"));
	}
	assert_true(run.session.established);
	assert_true(run.had_error);
	assert_string_equal(run.error_status, "4.4.2");
}

static void
test_stall_past_the_timeout_defers(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--stall", "rcpt", NULL});
	struct delivery_options opts = fast_options();
	uint64_t t0 = now_ms();

	opts.timeouts.rcpt_ms = 300;
	add_msg(two_rcpts, "x\r\n");
	run_one(&opts, rx);

	assert_int_equal(run.nresults, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_RCPT, 451, "4.4.2");
	assert_rcpt(&run.results[0], 1, DELIVERY_DEFERRED, DELIVERY_PHASE_RCPT, 451, "4.4.2");
	assert_non_null(strstr(run.results[0].r[0].text, "timed out while sending RCPT TO"));
	assert_true(run.results[0].r[0].local);
	assert_true(now_ms() - t0 < 1800); /* the RCPT timeout, not any longer one */
}

static void
test_stall_at_end_of_data_defers(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--stall", "dot", NULL});
	struct delivery_options opts = fast_options();

	opts.timeouts.dot_ms = 300;
	add_msg(two_rcpts, "x\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_DOT, 451, "4.4.2");
	assert_non_null(strstr(run.results[0].r[0].text, "may be sent more than once"));
}

static void
test_stalled_reader_hits_the_data_block_timeout(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--stall", "content", NULL});
	struct delivery_options opts = fast_options();
	size_t len = 32 * 1024 * 1024; /* more than the socket buffers hold */
	char *big = xmalloc(len + 1);

	memset(big, 'y', len);
	for (size_t i = 99; i < len; i += 100)
		big[i] = '\n';
	big[len] = '\0';
	add_msg(two_rcpts, big);
	free(big);
	opts.timeouts.data_block_ms = 300;
	opts.timeouts.dot_ms = 60000;
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_CONTENT, 451, "4.4.2");
	assert_non_null(strstr(run.results[0].r[0].text, "timed out while sending message body"));
}

static void
test_421_greeting_tries_the_next_mx(void **state)
{
	struct rx *busy = rx_start((const char *const[]){"--greeting", "421 4.3.2 busy", NULL});
	struct rx *good = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct delivery_target t[2] = {target(0, "mx1.test.example", "127.0.0.1", busy->port),
	                               target(1, "mx2.test.example", "127.0.0.1", good->port)};
	json_t *msgs;

	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, t, 2, 1);

	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].mx_host, "mx2.test.example");
	assert_int_equal(run.results[0].port, good->port);
	assert_int_equal(run.session.tried, 2);
	assert_true(run.session.established);
	msgs = rx_wait(good, "message", 1);
	json_decref(msgs);
	msgs = rx_records(busy, "message");
	assert_int_equal(json_array_size(msgs), 0);
	json_decref(msgs);
}

static void
test_554_greeting_and_refused_connection_try_the_next(void **state)
{
	struct rx *refuses = rx_start((const char *const[]){"--greeting", "554 5.7.1 no", NULL});
	struct rx *good = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct delivery_target t[3];
	json_t *sessions;
	char v[128];
	int closed_port;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t slen = sizeof(sin);

	/* A port nobody listens on: bound, never listened. */
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &slen);
	closed_port = ntohs(sin.sin_port);
	t[0] = target(0, "mx0.test.example", "127.0.0.1", closed_port);
	t[1] = target(1, "mx1.test.example", "127.0.0.1", refuses->port);
	t[2] = target(2, "mx2.test.example", "127.0.0.1", good->port);

	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, t, 3, 1);
	close(fd);

	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].mx_host, "mx2.test.example");
	assert_int_equal(run.session.tried, 3);
	/* The refusing server waits for QUIT (RFC 5321 §3.1), and gets it. */
	sessions = rx_wait(refuses, "session", 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "QUIT");
	json_decref(sessions);
}

static void
test_every_mx_failing_defers_with_the_last_reply(void **state)
{
	struct rx *a = rx_start((const char *const[]){"--greeting", "421 4.3.2 busy one", NULL});
	struct rx *b = rx_start((const char *const[]){"--greeting", "554 5.3.2 busy two", NULL});
	struct delivery_options opts = fast_options();
	struct delivery_target t[2] = {target(0, "mx1.test.example", "127.0.0.1", a->port),
	                               target(1, "mx2.test.example", "127.0.0.1", b->port)};

	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, t, 2, 1);

	/* Failures before MAIL defer, whatever the code (see docs/delivery.md). */
	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_GREETING, 554, "5.3.2");
	assert_string_equal(run.results[0].r[0].text, "busy two");
	assert_false(run.results[0].r[0].local);
	assert_string_equal(run.results[0].mx_host, "mx2.test.example");
	assert_false(run.session.established);
	assert_int_equal(run.session.tried, 2);
	assert_int_equal(run.session.messages, 0);
	assert_true(run.had_error);
	assert_int_equal(run.error_code, 554);
}

static void
test_connection_refused_everywhere(void **state)
{
	struct delivery_options opts = fast_options();
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t slen = sizeof(sin);
	struct delivery_target t;

	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	getsockname(fd, (struct sockaddr *)&sin, &slen);
	t = target(0, "mx.test.example", "127.0.0.1", ntohs(sin.sin_port));
	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, &t, 1, 1);
	close(fd);

	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_CONNECT, 451, "4.4.1");
	assert_non_null(strstr(run.results[0].r[0].text, "Connection refused"));
	assert_true(run.results[0].r[0].local);
	assert_false(run.session.established);
}

static void
test_connect_timeout(void **state)
{
	struct delivery_options opts = fast_options();
	/* TEST-NET-1: never answers (or is unreachable at once, in a sandbox). */
	struct delivery_target t = target(0, "mx.test.example", "192.0.2.1", 25);
	uint64_t t0 = now_ms();

	opts.timeouts.connect_ms = 300;
	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, &t, 1, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_CONNECT, 451, "4.4.1");
	assert_true(now_ms() - t0 < 1500);
}

static void
test_stalled_greeting_tries_the_next_mx(void **state)
{
	struct rx *mute = rx_start((const char *const[]){"--stall", "greeting", NULL});
	struct rx *good = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct delivery_target t[2] = {target(0, "mx1.test.example", "127.0.0.1", mute->port),
	                               target(1, "mx2.test.example", "127.0.0.1", good->port)};

	opts.timeouts.greeting_ms = 300;
	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, t, 2, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].mx_host, "mx2.test.example");
}

static void
test_without_pipelining_commands_go_one_by_one(void **state)
{
	static const char *const three[] = {"a@example.com", "b@example.com", "c@example.com",
	                                    NULL};
	struct rx *rx = rx_start((const char *const[]){"--no-pipelining", NULL});
	struct delivery_options opts = fast_options();
	json_t *msgs, *sessions;

	add_msg(three, "x\r\n");
	add_msg(three, "y\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[1], 2, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(rx, "message", 2);
	assert_true(json_is_false(json_object_get(json_array_get(msgs, 0), "pipelined")));
	json_decref(msgs);
	sessions = rx_wait(rx, "session", 1);
	assert_int_equal(json_integer_value(
	                     json_object_get(json_array_get(sessions, 0), "unexpected_pipelining")),
	                 0);
	json_decref(sessions);
}

static void
test_all_recipients_refused_without_pipelining_sends_no_data(void **state)
{
	static const char *const bad[] = {"bad1@example.com", "bad2@example.com", NULL};
	struct rx *rx = rx_start((const char *const[]){
	    "--no-pipelining", "--rcpt-reply", "bad1@example.com=550 5.1.1 no", "--rcpt-reply",
	    "bad2@example.com=450 4.2.1 later", NULL});
	struct delivery_options opts = fast_options();
	json_t *sessions;
	char v[128];

	add_msg(bad, "x\r\n");
	add_msg(two_rcpts, "y\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_RCPT, 550, "5.1.1");
	assert_rcpt(&run.results[0], 1, DELIVERY_DEFERRED, DELIVERY_PHASE_RCPT, 450, "4.2.1");
	assert_rcpt(&run.results[1], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	sessions = rx_wait(rx, "session", 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "EHLO MAIL RCPT RCPT RSET MAIL RCPT RCPT DATA QUIT");
	json_decref(sessions);
}

static void
test_354_without_recipients_gets_an_empty_message(void **state)
{
	static const char *const bad[] = {"bad1@example.com", "bad2@example.com", NULL};
	struct rx *rx = rx_start(
	    (const char *const[]){"--rcpt-reply", "bad1@example.com=550 5.1.1 no", "--rcpt-reply",
	                          "bad2@example.com=550 5.1.1 no", "--reply",
	                          "data=354 go ahead anyway", "--times", "data=1", NULL});
	struct delivery_options opts = fast_options();
	json_t *msgs, *sessions;
	char v[128];

	add_msg(bad, "never\r\n");
	add_msg(two_rcpts, "next\r\n");
	run_one(&opts, rx);
	assert_int_equal(run.nresults, 2);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_RCPT, 550, "5.1.1");
	assert_rcpt(&run.results[0], 1, DELIVERY_BOUNCED, DELIVERY_PHASE_RCPT, 550, "5.1.1");
	assert_rcpt(&run.results[1], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(rx, "message", 1);
	assert_int_equal(json_array_size(msgs), 1);
	assert_string_equal(jstr(json_array_get(msgs, 0), "data"), "next\r\n");
	json_decref(msgs);
	sessions = rx_wait(rx, "session", 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	/* The "." that closed the unwanted 354 is content, not a command. */
	assert_string_equal(v, "EHLO MAIL RCPT RCPT DATA MAIL RCPT RCPT DATA QUIT");
	json_decref(sessions);
}

static void
test_reply_during_content_ends_the_connection(void **state)
{
	struct rx *rx =
	    rx_start((const char *const[]){"--reply", "content=552 5.3.4 too big, stop", NULL});
	struct delivery_options opts = fast_options();
	size_t len = 8 * 1024 * 1024;
	char *big = xmalloc(len + 1);

	memset(big, 'q', len);
	for (size_t i = 99; i < len; i += 100)
		big[i] = '\n';
	big[len] = '\0';
	add_msg(two_rcpts, big);
	free(big);
	add_msg(two_rcpts, "never sent\r\n");
	run_one(&opts, rx);
	assert_int_equal(run.nresults, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_DOT, 552, "5.3.4");
	assert_true(run.had_error);
	assert_non_null(strstr(run.error_text, "out of turn"));
}

static void
test_refused_mail_decides_every_recipient(void **state)
{
	struct rx *rx = rx_start((const char *const[]){
	    "--reply", "mail=550-5.7.1 sender blocked\\n550 5.7.1 see https://example.net/why",
	    NULL});
	struct delivery_options opts = fast_options();
	json_t *msgs;

	add_msg(two_rcpts, "x\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 550, "5.7.1");
	assert_rcpt(&run.results[0], 1, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 550, "5.7.1");
	assert_string_equal(run.results[0].r[0].text,
	                    "sender blocked\nsee https://example.net/why");
	msgs = rx_records(rx, "message");
	assert_int_equal(json_array_size(msgs), 0);
	json_decref(msgs);
}

static void
test_refused_data_decides_the_accepted(void **state)
{
	struct rx *rx =
	    rx_start((const char *const[]){"--reply", "data=554 5.7.0 no data today", NULL});
	struct delivery_options opts = fast_options();

	add_msg(two_rcpts, "x\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_DATA, 554, "5.7.0");
	assert_rcpt(&run.results[0], 1, DELIVERY_BOUNCED, DELIVERY_PHASE_DATA, 554, "5.7.0");
}

static void
test_421_mid_session_ends_it(void **state)
{
	struct rx *rx = rx_start((const char *const[]){
	    "--rcpt-reply", "c@example.com=421 4.7.0 [TS01] try again later", NULL});
	struct delivery_options opts = fast_options();

	add_msg(two_rcpts, "x\r\n");
	add_msg(two_rcpts, "never sent\r\n");
	run_one(&opts, rx);
	/* Even the recipient accepted before the 421 is deferred: no DATA will follow. */
	assert_int_equal(run.nresults, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DEFERRED, DELIVERY_PHASE_RCPT, 421, "4.7.0");
	assert_rcpt(&run.results[0], 1, DELIVERY_DEFERRED, DELIVERY_PHASE_RCPT, 421, "4.7.0");
	assert_string_equal(run.results[0].r[1].text, "[TS01] try again later");
	assert_true(run.had_error);
	assert_int_equal(run.error_code, 421);
}

static void
test_8bit_to_a_server_without_8bitmime_is_sent_as_is(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--no-8bitmime", NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(two_rcpts, "caf\xc3\xa9\r\n");
	json_t *msgs, *params;

	m->env.body_type = SMTP_BODY_8BITMIME;
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(rx, "message", 1);
	params = json_object_get(json_array_get(msgs, 0), "mail_params");
	for (size_t i = 0; i < json_array_size(params); i++)
		assert_null(strstr(json_string_value(json_array_get(params, i)), "BODY"));
	/* Latin-1 decoding in the record: one character per octet. */
	assert_string_equal(jstr(json_array_get(msgs, 0), "data"), "caf\xc3\x83\xc2\xa9\r\n");
	json_decref(msgs);
}

static void
test_smtputf8_needed_but_not_offered_bounces(void **state)
{
	static const char *const utf8_rcpt[] = {"j\xc3\xb6rg@example.com", "b@example.com", NULL};
	struct rx *rx = rx_start((const char *const[]){"--no-smtputf8", NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(utf8_rcpt, "x\r\n");
	json_t *sessions;
	char v[128];

	m->env.smtputf8 = true;
	add_msg(two_rcpts, "ascii\r\n"); /* the connection stays usable */
	run_one(&opts, rx);
	assert_int_equal(run.nresults, 2);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 550, "5.6.7");
	assert_rcpt(&run.results[0], 1, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 550, "5.6.7");
	assert_true(run.results[0].r[0].local);
	assert_non_null(strstr(run.results[0].r[0].text, "SMTPUTF8 is required"));
	assert_rcpt(&run.results[1], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	sessions = rx_wait(rx, "session", 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "EHLO MAIL RCPT RCPT DATA QUIT"); /* only the second message */
	json_decref(sessions);
}

static void
test_smtputf8_offered_is_used(void **state)
{
	static const char *const utf8_rcpt[] = {"j\xc3\xb6rg@example.com", NULL};
	struct rx *rx = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(utf8_rcpt, "x\r\n");
	json_t *msgs;

	m->env.smtputf8 = true;
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(rx, "message", 1);
	assert_true(jhas(json_object_get(json_array_get(msgs, 0), "mail_params"), "SMTPUTF8"));
	json_decref(msgs);
}

static void
test_size_limit_refuses_early_and_size_is_announced(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--size", "1000", NULL});
	struct delivery_options opts = fast_options();
	char big[2001];
	json_t *msgs, *sessions;
	char v[128];

	memset(big, 'z', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	add_msg(two_rcpts, big);
	add_msg(two_rcpts, "small\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 552, "5.3.4");
	assert_true(run.results[0].r[0].local);
	assert_non_null(strstr(run.results[0].r[0].text, "exceeds size limit 1000"));
	assert_rcpt(&run.results[1], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(rx, "message", 1);
	assert_true(jhas(json_object_get(json_array_get(msgs, 0), "mail_params"), "SIZE=7"));
	json_decref(msgs);
	sessions = rx_wait(rx, "session", 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "EHLO MAIL RCPT RCPT DATA QUIT");
	json_decref(sessions);
}

static void
test_ehlo_rejected_falls_back_to_helo(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--no-ehlo", NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(two_rcpts, "x\r\n");
	json_t *msgs, *sessions;
	char v[128];

	m->env.body_type = SMTP_BODY_8BITMIME;
	m->env.dsn_ret = SMTP_DSN_RET_HDRS;
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_false(run.had_ehlo);
	msgs = rx_wait(rx, "message", 1);
	assert_true(json_is_false(json_object_get(json_array_get(msgs, 0), "esmtp")));
	assert_int_equal(json_array_size(json_object_get(json_array_get(msgs, 0), "mail_params")),
	                 0);
	json_decref(msgs);
	sessions = rx_wait(rx, "session", 1);
	verbs(json_array_get(sessions, 0), v, sizeof(v));
	assert_string_equal(v, "EHLO HELO MAIL RCPT RCPT DATA QUIT");
	json_decref(sessions);
}

static void
test_ehlo_4xx_tries_the_next_mx(void **state)
{
	struct rx *a = rx_start((const char *const[]){"--reply", "ehlo=451 4.3.0 not now", NULL});
	struct rx *b = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct delivery_target t[2] = {target(0, "mx1.test.example", "127.0.0.1", a->port),
	                               target(1, "mx2.test.example", "127.0.0.1", b->port)};

	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, t, 2, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].mx_host, "mx2.test.example");
}

static void
test_dsn_parameters_pass_through_only_when_offered(void **state)
{
	struct rx *with = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(two_rcpts, "x\r\n");
	json_t *msgs, *rec, *rp;

	m->env.dsn_ret = SMTP_DSN_RET_FULL;
	m->env.envid = xstrdup("QQ314159+2Bx");
	m->env.rcpt[0].notify = SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE;
	m->env.rcpt[0].orcpt = xstrdup("rfc822;b@example.com");
	m->env.rcpt[1].notify = SMTP_NOTIFY_NEVER;
	run_one(&opts, with);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(with, "message", 1);
	rec = json_array_get(msgs, 0);
	assert_true(jhas(json_object_get(rec, "mail_params"), "RET=FULL"));
	assert_true(jhas(json_object_get(rec, "mail_params"), "ENVID=QQ314159+2Bx"));
	rp = json_object_get(rec, "rcpt_params");
	assert_true(jhas(json_array_get(rp, 0), "NOTIFY=SUCCESS,FAILURE"));
	assert_true(jhas(json_array_get(rp, 0), "ORCPT=rfc822;b@example.com"));
	assert_true(jhas(json_array_get(rp, 1), "NOTIFY=NEVER"));
	json_decref(msgs);
}

static void
test_dsn_parameters_withheld_without_dsn(void **state)
{
	struct rx *without = rx_start((const char *const[]){"--no-dsn", NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(two_rcpts, "x\r\n");
	json_t *msgs, *rec;

	m->env.dsn_ret = SMTP_DSN_RET_FULL;
	m->env.envid = xstrdup("QQ314159");
	m->env.rcpt[0].notify = SMTP_NOTIFY_SUCCESS;
	m->env.rcpt[0].orcpt = xstrdup("rfc822;b@example.com");
	run_one(&opts, without);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(without, "message", 1);
	rec = json_array_get(msgs, 0);
	/* None: the receiver would have refused a DSN parameter with 555 anyway. */
	assert_int_equal(json_array_size(json_object_get(rec, "mail_params")), 0);
	assert_int_equal(json_array_size(json_array_get(json_object_get(rec, "rcpt_params"), 0)),
	                 0);
	json_decref(msgs);
}

static void
test_ipv6(void **state)
{
	int probe = socket(AF_INET6, SOCK_STREAM, 0);
	struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
	struct rx *rx;
	struct delivery_options opts = fast_options();
	struct delivery_target t;
	json_t *msgs;

	if (probe < 0 || bind(probe, (struct sockaddr *)&s6, sizeof(s6)) < 0) {
		if (probe >= 0)
			close(probe);
		skip(); /* no IPv6 loopback here */
	}
	close(probe);
	rx = rx_start((const char *const[]){"--host", "::1", NULL});
	t = target(0, "mx6.test.example", "::1", rx->port);
	add_msg(two_rcpts, "over IPv6\r\n");
	run_client(&opts, &t, 1, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].mx_addr, "::1");
	msgs = rx_wait(rx, "message", 1);
	assert_string_equal(jstr(json_array_get(msgs, 0), "peer"), "::1");
	json_decref(msgs);
}

static void
test_source_address_is_bound(void **state)
{
	struct rx *rx = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct sockaddr_in src = {.sin_family = AF_INET};
	json_t *msgs;

	inet_pton(AF_INET, "127.0.0.2", &src.sin_addr); /* all of 127/8 is loopback on Linux */
	opts.source = (struct sockaddr *)&src;
	opts.source_len = sizeof(src);
	add_msg(two_rcpts, "from a chosen source\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(rx, "message", 1);
	assert_string_equal(jstr(json_array_get(msgs, 0), "peer"), "127.0.0.2");
	json_decref(msgs);
}

static void
test_source_family_mismatch_skips_the_target(void **state)
{
	struct rx *rx = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct sockaddr_in src = {.sin_family = AF_INET};
	struct delivery_target t[2];

	inet_pton(AF_INET, "127.0.0.1", &src.sin_addr);
	opts.source = (struct sockaddr *)&src;
	opts.source_len = sizeof(src);
	t[0] = target(0, "mx6.test.example", "::1", rx->port);
	t[1] = target(1, "mx4.test.example", "127.0.0.1", rx->port);
	add_msg(two_rcpts, "x\r\n");
	run_client(&opts, t, 2, 1);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_string_equal(run.results[0].mx_host, "mx4.test.example");
}

static void
test_binarymime_goes_by_bdat(void **state)
{
	static const char body[] = "raw\n.\r\n..not stuffed\r\n\x01\x02";
	struct rx *rx = rx_start((const char *const[]){"--chunking", NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(two_rcpts, body);
	json_t *msgs, *rec;

	m->env.body_type = SMTP_BODY_BINARYMIME;
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	msgs = rx_wait(rx, "message", 1);
	rec = json_array_get(msgs, 0);
	assert_string_equal(jstr(rec, "via"), "BDAT");
	assert_string_equal(jstr(rec, "data"), body);
	assert_true(jhas(json_object_get(rec, "mail_params"), "BODY=BINARYMIME"));
	json_decref(msgs);
}

static void
test_binarymime_without_chunking_bounces(void **state)
{
	struct rx *rx = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct test_msg *m = add_msg(two_rcpts, "x\r\n");

	m->env.body_type = SMTP_BODY_BINARYMIME;
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 554, "5.6.3");
}

static void
test_server_dropping_idle_connection_is_a_normal_end(void **state)
{
	struct rx *rx = rx_start((const char *const[]){"--idle-close", "0.2", NULL});
	struct delivery_options opts = fast_options();

	opts.timeouts.idle_ms = 3000;
	add_msg(two_rcpts, "x\r\n");
	run_one(&opts, rx);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_true(run.closed);
	assert_false(run.had_error);
}

static void
test_free_from_the_result_callback(void **state)
{
	struct rx *rx = rx_start((const char *const[]){NULL});
	struct delivery_options opts = fast_options();
	struct delivery_target t = target(0, "mx.test.example", "127.0.0.1", rx->port);
	char err[128];
	struct timeval tv = {.tv_sec = RUN_DEADLINE_MS / 1000};

	add_msg(two_rcpts, "x\r\n");
	run.free_in_result = true;
	run.client =
	    delivery_client_new(run.base, &opts, &t, 1, &callbacks, NULL, err, sizeof(err));
	assert_non_null(run.client);
	assert_int_equal(delivery_client_send(run.client, &run.msgs[0].m), 0);
	event_base_loopexit(run.base, &tv);
	event_base_dispatch(run.base);
	assert_int_equal(run.nresults, 1);
	assert_null(run.client);
	assert_false(run.closed); /* no callback after free */
}

/* A message's return_path (a VERP address) is its MAIL FROM; the envelope's sender stays what
 * it was for the next message on the same connection, and a return path that cannot go on a
 * command line bounces the message without sending it. */
static void
test_return_path_replaces_the_sender(void **state)
{
	static const char *const one[] = {"b@example.com", NULL};
	struct rx *rx = rx_start(NULL);
	struct delivery_options opts = fast_options();
	struct test_msg *a = add_msg(one, "Subject: a\r\n\r\na\r\n");
	struct test_msg *b = add_msg(one, "Subject: b\r\n\r\nb\r\n");
	struct test_msg *c = add_msg(one, "Subject: c\r\n\r\nc\r\n");
	json_t *msgs;

	a->m.return_path = "bounce+abc@bounces.example.net";
	c->m.return_path = "bounce+x\r\nRCPT TO:<evil@example.com>@bounces.example.net";
	(void)b;
	run_one(&opts, rx);

	assert_int_equal(run.nresults, 3);
	assert_rcpt(&run.results[0], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_rcpt(&run.results[1], 0, DELIVERY_DELIVERED, DELIVERY_PHASE_DOT, 250, "2.0.0");
	assert_rcpt(&run.results[2], 0, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 553, "5.1.7");
	assert_true(run.results[2].r[0].local);
	msgs = rx_wait(rx, "message", 2);
	assert_int_equal(json_array_size(msgs), 2);
	assert_string_equal(mail_from_of(msgs, 0), "bounce+abc@bounces.example.net");
	assert_string_equal(mail_from_of(msgs, 1), "sender@example.org");
	json_decref(msgs);
}

static void
test_close_before_connecting_and_bad_options(void **state)
{
	struct delivery_options opts = fast_options();
	struct delivery_target t = target(0, "mx.test.example", "127.0.0.1", 25);
	char err[128];

	run_client(&opts, &t, 1, 0); /* no message: closed at once */
	assert_true(run.closed);
	assert_int_equal(run.session.tried, 0);
	assert_false(run.session.established);

	opts.helo_name = "not a name";
	assert_null(
	    delivery_client_new(run.base, &opts, &t, 1, &callbacks, NULL, err, sizeof(err)));
	assert_non_null(strstr(err, "EHLO name"));
	opts.helo_name = HELO;
	assert_null(
	    delivery_client_new(run.base, &opts, &t, 0, &callbacks, NULL, err, sizeof(err)));
	assert_string_equal(delivery_phase_name(DELIVERY_PHASE_RCPT), "rcpt");
	assert_string_equal(delivery_status_name(DELIVERY_BOUNCED), "bounced");
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
	    T(test_accept_all_records_envelope_and_content),
	    T(test_several_messages_per_connection_with_rset),
	    T(test_idle_reuse),
	    T(test_4xx_then_accept),
	    T(test_5xx_for_one_recipient_of_several),
	    T(test_4xx_rcpt_defers_only_that_recipient),
	    T(test_drop_mid_data_defers),
	    T(test_stall_past_the_timeout_defers),
	    T(test_stall_at_end_of_data_defers),
	    T(test_stalled_reader_hits_the_data_block_timeout),
	    T(test_421_greeting_tries_the_next_mx),
	    T(test_554_greeting_and_refused_connection_try_the_next),
	    T(test_every_mx_failing_defers_with_the_last_reply),
	    T(test_connection_refused_everywhere),
	    T(test_connect_timeout),
	    T(test_stalled_greeting_tries_the_next_mx),
	    T(test_without_pipelining_commands_go_one_by_one),
	    T(test_all_recipients_refused_without_pipelining_sends_no_data),
	    T(test_354_without_recipients_gets_an_empty_message),
	    T(test_reply_during_content_ends_the_connection),
	    T(test_refused_mail_decides_every_recipient),
	    T(test_refused_data_decides_the_accepted),
	    T(test_421_mid_session_ends_it),
	    T(test_8bit_to_a_server_without_8bitmime_is_sent_as_is),
	    T(test_smtputf8_needed_but_not_offered_bounces),
	    T(test_smtputf8_offered_is_used),
	    T(test_size_limit_refuses_early_and_size_is_announced),
	    T(test_ehlo_rejected_falls_back_to_helo),
	    T(test_ehlo_4xx_tries_the_next_mx),
	    T(test_dsn_parameters_pass_through_only_when_offered),
	    T(test_dsn_parameters_withheld_without_dsn),
	    T(test_ipv6),
	    T(test_source_address_is_bound),
	    T(test_source_family_mismatch_skips_the_target),
	    T(test_binarymime_goes_by_bdat),
	    T(test_binarymime_without_chunking_bounces),
	    T(test_server_dropping_idle_connection_is_a_normal_end),
	    T(test_free_from_the_result_callback),
	    T(test_close_before_connecting_and_bad_options),
	    T(test_return_path_replaces_the_sender),
	};

	signal(SIGPIPE, SIG_IGN);
	log_set_level(getenv("DROVER_TEST_DEBUG") ? LOG_DEBUG : LOG_WARN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
