/* loadgen.c - the load generator of Drover's delivery benchmarks (bench/realistic.sh,
 * bench/million.sh). Not part of Drover; built by bench/tools/Makefile into build/bench/.
 *
 *   loadgen -c ADDR:PORT [-n MESSAGES] [-s SESSIONS] [-m PER_CONNECTION] [-r MIN-MAX]
 *           [-D DOMAINS] [-x SUFFIX] [-l SIZE] [-f SENDER] [-T TAG] [-o ACKFILE] [-P]
 *           [-w DEADLINE_S] [-q]
 *
 * Sends MESSAGES (default 10000) messages over SESSIONS (default 32) concurrent SMTP sessions,
 * PER_CONNECTION (default 1) messages per connection (then QUIT and a new connection, as
 * smtp-source does), pipelining MAIL, RCPT and DATA when the server offers PIPELINING (-P:
 * never). Message i has between MIN and MAX (default 1-3) recipients, chosen from i by a hash,
 *
 *     m<i>.r<j>.<TAG>@d<NNNN>.<SUFFIX>     NNNN from 0001 to DOMAINS (default 1000),
 *                                          SUFFIX default "example"
 *
 * so that no two recipients of a run share an address and a duplicate delivery shows, and a
 * header "Message-ID: <m<i>.<TAG>@loadgen.example>" (TAG default: the process id). SIZE
 * (default 4096) is the message's size in octets, headers included, roughly.
 *
 * ACKFILE gets one line per message the server acknowledged (250 after the data):
 *     <message-id without brackets> <tab> <recipient> [<tab> <recipient>]...
 * listing the recipients the server accepted (2xx to RCPT). At the end one line on standard
 * output:
 *     messages=N acked=A failed=F unknown=U rcpts_acked=R sessions=S elapsed_s=E msgs_per_s=X
 * (unknown: the connection ended between the data and its reply). Exit status 0 if every
 * message was acknowledged, 1 if not, 2 for bad usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define RCPT_MAX_PER_MSG 64
#define ADDR_MAX         256
#define REPLY_LINE_MAX   4096
#define CONNECT_FAILS    1000 /* connection failures in a row: give up */

enum state { C_CONNECTING, C_GREETING, C_EHLO, C_HELO, C_TXN, C_DOT, C_RSET, C_QUIT };

struct session {
	struct bufferevent *bev;
	struct event *retry;
	enum state state;
	bool pipelining;
	unsigned on_conn; /* messages begun on this connection */
	/* The transaction. */
	uint64_t msg;
	unsigned nrcpt, replies, sent;
	bool rcpt_ok[RCPT_MAX_PER_MSG];
	bool mail_ok, data_ok;
	int code; /* of the reply being read (multi-line) */
};

static struct {
	struct event_base *base;
	struct sockaddr_storage addr;
	int addrlen;
	uint64_t n, next, acked, failed, unknown, rcpts_acked, done;
	unsigned sessions, per_conn, rmin, rmax, domains, active;
	const char *suffix, *sender, *tag;
	size_t size;
	bool no_pipelining, quiet;
	FILE *ack;
	char *body;
	size_t body_len;
	unsigned connect_fails;
	double t0;
	struct session *s;
} g;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t
mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static unsigned
msg_nrcpt(uint64_t i)
{
	return g.rmin + (unsigned)(mix64(i) % (g.rmax - g.rmin + 1));
}

static void
msg_rcpt(uint64_t i, unsigned j, char *out, size_t len)
{
	unsigned d = 1 + (unsigned)(mix64(i * RCPT_MAX_PER_MSG + j + 0x5bd1e995ULL) % g.domains);

	snprintf(out, len, "m%llu.r%u.%s@d%04u.%s", (unsigned long long)i, j, g.tag, d, g.suffix);
}

static void
finish(void)
{
	double el = now_s() - g.t0;

	if (g.ack != NULL && fclose(g.ack) != 0)
		fprintf(stderr, "loadgen: ack file: %s\n", strerror(errno));
	g.ack = NULL;
	printf("messages=%llu acked=%llu failed=%llu unknown=%llu rcpts_acked=%llu sessions=%u "
	       "elapsed_s=%.3f msgs_per_s=%.0f\n",
	       (unsigned long long)g.n, (unsigned long long)g.acked, (unsigned long long)g.failed,
	       (unsigned long long)g.unknown, (unsigned long long)g.rcpts_acked, g.sessions, el,
	       el > 0 ? (double)g.acked / el : 0.0);
	fflush(stdout);
}

/* ---- Sessions ---- */

static void session_connect(struct session *);

static void
session_close(struct session *s, bool again)
{
	if (s->state == C_DOT)
		g.unknown++, g.done++;
	else if (s->state == C_TXN)
		g.failed++, g.done++;
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	if (again && g.next < g.n) {
		session_connect(s);
		return;
	}
	g.active--;
	if (g.active == 0)
		event_base_loopbreak(g.base);
}

static void
send_cmd(struct session *s, const char *fmt, ...)
{
	va_list ap;
	struct evbuffer *out = bufferevent_get_output(s->bev);

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
}

/* The k-th command of the transaction: MAIL, RCPT..., DATA. */
static void
txn_send(struct session *s, unsigned k)
{
	char rcpt[ADDR_MAX];

	if (k == 0)
		send_cmd(s, "MAIL FROM:<%s> SIZE=%zu", g.sender, g.size);
	else if (k <= s->nrcpt) {
		msg_rcpt(s->msg, k - 1, rcpt, sizeof(rcpt));
		send_cmd(s, "RCPT TO:<%s>", rcpt);
	} else
		send_cmd(s, "DATA");
	s->sent = k + 1;
}

static void
txn_begin(struct session *s)
{
	if (g.next >= g.n || s->on_conn >= g.per_conn) {
		s->state = C_QUIT;
		send_cmd(s, "QUIT");
		return;
	}
	s->msg = g.next++;
	s->on_conn++;
	s->nrcpt = msg_nrcpt(s->msg);
	s->replies = s->sent = 0;
	s->mail_ok = s->data_ok = false;
	memset(s->rcpt_ok, 0, sizeof(s->rcpt_ok));
	s->state = C_TXN;
	if (s->pipelining)
		for (unsigned k = 0; k < s->nrcpt + 2; k++)
			txn_send(s, k);
	else
		txn_send(s, 0);
}

static void
send_message(struct session *s)
{
	struct evbuffer *out = bufferevent_get_output(s->bev);
	char rcpt[ADDR_MAX];

	msg_rcpt(s->msg, 0, rcpt, sizeof(rcpt));
	evbuffer_add_printf(out,
	                    "From: <%s>\r\nTo: <%s>\r\nSubject: loadgen message %llu\r\n"
	                    "Message-ID: <m%llu.%s@loadgen.example>\r\nMIME-Version: 1.0\r\n"
	                    "Content-Type: text/plain; charset=us-ascii\r\n\r\n",
	                    g.sender, rcpt, (unsigned long long)s->msg, (unsigned long long)s->msg,
	                    g.tag);
	evbuffer_add_reference(out, g.body, g.body_len, NULL, NULL);
	evbuffer_add(out, ".\r\n", 3);
	s->state = C_DOT;
}

static void
message_done(struct session *s, bool ok)
{
	g.done++;
	if (!ok) {
		g.failed++;
		s->state = C_RSET;
		send_cmd(s, "RSET");
		return;
	}
	g.acked++;
	for (unsigned j = 0; j < s->nrcpt; j++)
		g.rcpts_acked += s->rcpt_ok[j];
	if (g.ack != NULL) {
		char rcpt[ADDR_MAX];
		fprintf(g.ack, "m%llu.%s@loadgen.example", (unsigned long long)s->msg, g.tag);
		for (unsigned j = 0; j < s->nrcpt; j++) {
			if (!s->rcpt_ok[j])
				continue;
			msg_rcpt(s->msg, j, rcpt, sizeof(rcpt));
			fprintf(g.ack, "\t%s", rcpt);
		}
		fputc('\n', g.ack);
	}
	txn_begin(s);
}

/* A complete reply (the last line's code) in state s->state. */
static void
on_reply(struct session *s, int code)
{
	switch (s->state) {
	case C_GREETING:
		if (code != 220) {
			session_close(s, true);
			return;
		}
		s->state = C_EHLO;
		send_cmd(s, "EHLO loadgen.example");
		return;
	case C_EHLO:
		if (code / 100 != 2) {
			s->state = C_HELO;
			send_cmd(s, "HELO loadgen.example");
			return;
		}
		txn_begin(s);
		return;
	case C_HELO:
		if (code / 100 != 2) {
			session_close(s, true);
			return;
		}
		s->pipelining = false;
		txn_begin(s);
		return;
	case C_TXN: {
		unsigned k = s->replies++;
		if (k == 0)
			s->mail_ok = code / 100 == 2;
		else if (k <= s->nrcpt)
			s->rcpt_ok[k - 1] = code / 100 == 2;
		else {
			bool any = false;
			for (unsigned j = 0; j < s->nrcpt; j++)
				any |= s->rcpt_ok[j];
			if (code == 354 && s->mail_ok && any)
				send_message(s);
			else if (code == 354) {
				/* Data for nobody: end it at once. */
				evbuffer_add(bufferevent_get_output(s->bev), ".\r\n", 3);
				s->state = C_DOT;
				s->mail_ok = false;
			} else
				message_done(s, false);
			return;
		}
		if (!s->pipelining) {
			if (k == 0 && !s->mail_ok) {
				message_done(s, false);
				return;
			}
			txn_send(s, s->sent);
		}
		return;
	}
	case C_DOT:
		message_done(s, code / 100 == 2 && s->mail_ok);
		return;
	case C_RSET:
		txn_begin(s);
		return;
	case C_QUIT:
		session_close(s, true);
		return;
	case C_CONNECTING:
		return;
	}
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t len;

	/* on_reply() may close this connection and open the next (s->bev changes). */
	while (s->bev == bev && (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		bool last = len < 4 || line[3] != '-';
		int code = len >= 3 ? atoi(line) : 0;
		if (s->state == C_EHLO && len >= 14 && strncasecmp(line + 4, "PIPELINING", 10) == 0)
			s->pipelining = !g.no_pipelining;
		free(line);
		if (last)
			on_reply(s, code);
	}
	if (s->bev == bev && evbuffer_get_length(in) > REPLY_LINE_MAX) {
		fprintf(stderr, "loadgen: reply line too long\n");
		session_close(s, true);
	}
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED) {
		g.connect_fails = 0;
		s->state = C_GREETING;
		return;
	}
	if (s->state == C_CONNECTING) {
		if (++g.connect_fails >= CONNECT_FAILS)
			die("cannot connect: %s", strerror(EVUTIL_SOCKET_ERROR()));
		bufferevent_free(s->bev);
		s->bev = NULL;
		struct timeval tv = {0, 100000};
		evtimer_add(s->retry, &tv);
		return;
	}
	session_close(s, true);
}

static void
on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	session_connect(arg);
}

static void
session_connect(struct session *s)
{
	s->bev = bufferevent_socket_new(g.base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL)
		die("out of memory");
	s->state = C_CONNECTING;
	s->pipelining = false;
	s->on_conn = 0;
	bufferevent_setcb(s->bev, on_read, NULL, on_event, s);
	struct timeval tmo = {300, 0};
	bufferevent_set_timeouts(s->bev, &tmo, &tmo);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&g.addr, g.addrlen) < 0)
		on_event(s->bev, BEV_EVENT_ERROR, s);
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	fprintf(stderr, "loadgen: deadline reached, %llu of %llu messages done\n",
	        (unsigned long long)g.done, (unsigned long long)g.n);
	event_base_loopbreak(g.base);
}

static void
on_progress(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (g.ack != NULL)
		fflush(g.ack);
	if (!g.quiet)
		fprintf(stderr, "loadgen: %llu/%llu acked, %.0f/s\n", (unsigned long long)g.acked,
		        (unsigned long long)g.n, (double)g.acked / (now_s() - g.t0));
}

static void
usage(void)
{
	fputs(
	    "usage: loadgen -c ADDR:PORT [-n MESSAGES] [-s SESSIONS] [-m PER_CONNECTION]\n"
	    "               [-r MIN-MAX] [-D DOMAINS] [-x SUFFIX] [-l SIZE] [-f SENDER] [-T TAG]\n"
	    "               [-o ACKFILE] [-P] [-w DEADLINE_S] [-q]\n",
	    stderr);
	exit(2);
}

static unsigned long long
arg_num(const char *s, char opt, unsigned long long min, unsigned long long max)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end != '\0' || s[0] == '\0' || s[0] == '-' || v < min || v > max)
		die("-%c %s: a number from %llu to %llu", opt, s, min, max);
	return v;
}

int
main(int argc, char **argv)
{
	const char *connect_to = NULL, *ack_path = NULL;
	char tagbuf[32];
	unsigned deadline = 3600;
	int opt;

	g.n = 10000;
	g.sessions = 32;
	g.per_conn = 1;
	g.rmin = 1;
	g.rmax = 3;
	g.domains = 1000;
	g.suffix = "example";
	g.size = 4096;
	g.sender = "sender@senders.example";
	snprintf(tagbuf, sizeof(tagbuf), "%ld", (long)getpid());
	g.tag = tagbuf;
	while ((opt = getopt(argc, argv, "c:n:s:m:r:D:x:l:f:T:o:Pw:qh")) != -1) {
		switch (opt) {
		case 'c':
			connect_to = optarg;
			break;
		case 'n':
			g.n = arg_num(optarg, 'n', 1, 1ULL << 40);
			break;
		case 's':
			g.sessions = (unsigned)arg_num(optarg, 's', 1, 100000);
			break;
		case 'm':
			g.per_conn = (unsigned)arg_num(optarg, 'm', 1, 1000000000);
			break;
		case 'r': {
			unsigned a, b;
			char c;
			if (sscanf(optarg, "%u-%u%c", &a, &b, &c) == 2)
				;
			else if (sscanf(optarg, "%u%c", &a, &c) == 1)
				b = a;
			else
				die("-r %s: MIN-MAX or N", optarg);
			if (a < 1 || b < a || b > RCPT_MAX_PER_MSG)
				die("-r %s: from 1 to %d recipients", optarg, RCPT_MAX_PER_MSG);
			g.rmin = a, g.rmax = b;
			break;
		}
		case 'D':
			g.domains = (unsigned)arg_num(optarg, 'D', 1, 9999);
			break;
		case 'x':
			g.suffix = optarg;
			break;
		case 'l':
			g.size = arg_num(optarg, 'l', 0, 1ULL << 30);
			break;
		case 'f':
			g.sender = optarg;
			break;
		case 'T':
			g.tag = optarg;
			break;
		case 'o':
			ack_path = optarg;
			break;
		case 'P':
			g.no_pipelining = true;
			break;
		case 'w':
			deadline = (unsigned)arg_num(optarg, 'w', 1, 86400 * 7);
			break;
		case 'q':
			g.quiet = true;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || connect_to == NULL)
		usage();
	g.addrlen = sizeof(g.addr);
	if (evutil_parse_sockaddr_port(connect_to, (struct sockaddr *)&g.addr, &g.addrlen) < 0)
		die("-c %s: not ADDRESS:PORT", connect_to);
	if (ack_path != NULL) {
		g.ack = fopen(ack_path, "w");
		if (g.ack == NULL)
			die("%s: %s", ack_path, strerror(errno));
		setvbuf(g.ack, NULL, _IOFBF, 1 << 20);
	}
	if (g.sessions > g.n)
		g.sessions = (unsigned)g.n;

	/* The body: lines of 78 octets up to SIZE minus the headers (about 250 octets). */
	size_t want = g.size > 300 ? g.size - 300 : 0, lines = want / 80 + 1;
	g.body = malloc(lines * 80 + 1);
	if (g.body == NULL)
		die("out of memory");
	for (size_t i = 0; i < lines; i++) {
		static const char text[] = "The quick brown fox jumps over the lazy dog. ";
		char *l = g.body + i * 80;
		char num[16];
		int k = snprintf(num, sizeof(num), "%06zu ", i % 1000000);
		memcpy(l, num, (size_t)k);
		for (int x = k; x < 78; x++)
			l[x] = text[(size_t)(x - k) % (sizeof(text) - 1)];
		l[78] = '\r', l[79] = '\n';
	}
	g.body_len = lines * 80;

	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	g.base = event_base_new();
	if (g.base == NULL)
		die("cannot create an event loop");
	struct timeval dl = {deadline, 0}, every = {1, 0};
	event_add(evtimer_new(g.base, on_deadline, NULL), &dl);
	event_add(event_new(g.base, -1, EV_PERSIST, on_progress, NULL), &every);

	g.s = calloc(g.sessions, sizeof(*g.s));
	if (g.s == NULL)
		die("out of memory");
	g.t0 = now_s();
	g.active = g.sessions;
	for (unsigned i = 0; i < g.sessions; i++) {
		g.s[i].retry = evtimer_new(g.base, on_retry, &g.s[i]);
		session_connect(&g.s[i]);
	}
	event_base_dispatch(g.base);
	finish();
	return g.acked == g.n ? 0 : 1;
}
