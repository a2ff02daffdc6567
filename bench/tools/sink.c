/* sink.c - a realistic SMTP receiver for Drover's delivery benchmarks (bench/realistic.sh,
 * bench/million.sh). Not part of Drover; built by bench/tools/Makefile into build/bench/.
 *
 *   sink -l 127.0.0.1:2700 [-l ADDR:PORT]... [-d DELAY_MS] [-t TEMPFAIL_PCT] [-p PERMFAIL_PCT]
 *        [-n DEFERRALS] [-s SEED] [-a DOMAIN]... [-D] [-o RECORDFILE] [-S STATSFILE]
 *        [-c MAX_CONNECTIONS] [-z MAX_SIZE]
 *
 * ESMTP with PIPELINING, 8BITMIME, SIZE, DSN and ENHANCEDSTATUSCODES. Every reply (greeting
 * included) leaves DELAY_MS (default 50) after the command it answers has been read, and the
 * commands of a connection are answered one after the other, as by a server that takes that
 * long per command; the wait is a timer, nothing blocks.
 *
 * Each recipient is decided by a seeded hash of its address (lower case), so a run can be
 * repeated exactly:
 *   - PERMFAIL_PCT % of addresses (default 2) always get 550 5.1.1;
 *   - the next TEMPFAIL_PCT % (default 5) get 451 4.7.1 on their first DEFERRALS (default 1)
 *     RCPTs, then 250: the sink counts RCPTs per address, so a retry is accepted;
 *   - the rest get 250;
 *   - -D: every recipient gets 451 4.7.1, for ever (a destination that defers everything);
 *   - recipients at a domain given with -a (and its subdomains) always get 250: the domain
 *     that DSNs go to.
 *
 * RECORDFILE (default none) gets one tab-separated line per event, flushed every 50 ms:
 *   A <tab> message-id <tab> recipient     the message was accepted (250 after the data) for
 *                                          this recipient
 *   T <tab> recipient <tab> n              451 to this recipient's n-th RCPT
 *   P <tab> recipient                      550 to this recipient
 *   D <tab> message-id <tab> recipient <tab> action
 *                                          an accepted message with a null sender (a DSN)
 *                                          reports this Final-Recipient with this Action
 * Each line ends with a last field, the time (seconds since the epoch, to the millisecond).
 * The message-id is the Message-ID header's value (without the angle brackets), or
 * "sink-CONN-N" for a message without one.
 *
 * SIGUSR1 prints the counters on standard error (and writes them to STATSFILE as one JSON
 * object); SIGTERM and SIGINT do the same, flush RECORDFILE and exit 0. "ready" is printed on
 * standard output once every listener is bound.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#define LINE_MAX_CMD   2048  /* a command line longer than this: 500 */
#define LINE_MAX_DATA  65536 /* a data line longer than this is read in pieces */
#define INPUT_MAX      (256 * 1024)
#define OUTPUT_MAX     (256 * 1024) /* replies a client does not read: stop answering */
#define RCPT_MAX       1000         /* per transaction; then 452 */
#define ADDR_MAX       512
#define ERRORS_MAX     50
#define IDLE_TIMEOUT_S 300
#define RECORD_BUF     (1024 * 1024)
#define LISTENERS_MAX  4096
#define ALWAYS_MAX     64

enum state { S_GREETING, S_COMMAND, S_DATA, S_QUIT };

struct conn {
	struct bufferevent *bev;
	struct event *timer;
	struct evbuffer *pending; /* the reply waiting for its timer */
	enum state state;
	bool waiting;     /* a reply is pending: do not read the next command yet */
	bool close_after; /* close once the pending reply is written */
	bool closing;     /* written everything, close when the output drains */
	bool ehlo, mail, null_sender;
	unsigned errors;
	uint64_t id, nmsg;
	/* The transaction. */
	char **rcpt;
	size_t nrcpt;
	uint64_t size;
	bool too_big, in_headers, in_long_line, header_msgid_next, dsn_report;
	char msgid[ADDR_MAX];
	char final_rcpt[ADDR_MAX];
	/* DSN records waiting for the end of the data (only kept if the message is accepted). */
	char **dsn_lines;
	size_t ndsn;
};

struct counters {
	uint64_t connections, connections_now, connections_refused, messages, bytes;
	uint64_t rcpt_accepted, rcpt_deferred, rcpt_bounced, dsns, dsn_recipients, errors;
};

static struct {
	struct event_base *base;
	unsigned delay_ms;
	double tempfail_pct, permfail_pct;
	unsigned deferrals;
	uint64_t seed;
	bool defer_all;
	char *always[ALWAYS_MAX];
	size_t nalways;
	const char *record_path, *stats_path;
	int record_fd;
	char *record_buf;
	size_t record_len;
	uint64_t max_conns;
	uint64_t max_size;
	struct timeval delay_tv;
	struct evconnlistener *listeners[LISTENERS_MAX];
	size_t nlisteners;
	struct event *listen_pause;
	struct counters c;
	uint64_t next_conn_id;
} g;

/* ---- Helpers ---- */

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("sink: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL)
		die("out of memory");
	return p;
}

static char *
xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xmalloc(n);

	memcpy(p, s, n);
	return p;
}

static uint64_t
mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

static uint64_t
hash_str(const char *s, uint64_t seed)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ mix64(seed);

	for (; *s; s++) {
		h ^= (unsigned char)tolower((unsigned char)*s);
		h *= 0x100000001b3ULL;
	}
	return mix64(h);
}

/* ---- Attempt counters: address -> RCPTs seen (only for addresses in the tempfail band) ---- */

struct slot {
	char *key;
	uint64_t hash;
	unsigned count;
};

static struct {
	struct slot *slots;
	size_t cap, used;
} attempts;

static unsigned
attempts_incr(const char *key, uint64_t hash)
{
	if (attempts.used * 10 >= attempts.cap * 7) {
		size_t ncap = attempts.cap ? attempts.cap * 2 : 4096;
		struct slot *ns = calloc(ncap, sizeof(*ns));

		if (ns == NULL)
			die("out of memory (attempt table)");
		for (size_t i = 0; i < attempts.cap; i++) {
			struct slot *s = &attempts.slots[i];
			if (s->key == NULL)
				continue;
			size_t j = s->hash & (ncap - 1);
			while (ns[j].key != NULL)
				j = (j + 1) & (ncap - 1);
			ns[j] = *s;
		}
		free(attempts.slots);
		attempts.slots = ns;
		attempts.cap = ncap;
	}
	size_t j = hash & (attempts.cap - 1);
	while (attempts.slots[j].key != NULL) {
		struct slot *s = &attempts.slots[j];
		if (s->hash == hash && strcasecmp(s->key, key) == 0)
			return ++s->count;
		j = (j + 1) & (attempts.cap - 1);
	}
	attempts.slots[j].key = xstrdup(key);
	attempts.slots[j].hash = hash;
	attempts.slots[j].count = 1;
	attempts.used++;
	return 1;
}

/* ---- Record file ---- */

static void
record_flush(void)
{
	size_t off = 0;

	while (off < g.record_len) {
		ssize_t w = write(g.record_fd, g.record_buf + off, g.record_len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("%s: write: %s", g.record_path, strerror(errno));
		off += (size_t)w;
	}
	g.record_len = 0;
}

/* Appends one line: fields joined by tabs; tabs and control characters in a field become
 * spaces, so that a line is always one record. */
static void
record(const char *f0, const char *f1, const char *f2, const char *f3)
{
	const char *f[4] = {f0, f1, f2, f3};
	struct timeval now;

	if (g.record_fd < 0)
		return;
	if (g.record_len + 4 * ADDR_MAX + 64 > RECORD_BUF)
		record_flush();
	for (int i = 0; i < 4 && f[i] != NULL; i++) {
		if (i > 0)
			g.record_buf[g.record_len++] = '\t';
		for (const char *p = f[i]; *p && p - f[i] < ADDR_MAX; p++)
			g.record_buf[g.record_len++] = (unsigned char)*p < 0x20 ? ' ' : *p;
	}
	/* The loop's cached time: cheap, and precise enough (one loop iteration). */
	event_base_gettimeofday_cached(g.base, &now);
	g.record_len += (size_t)snprintf(g.record_buf + g.record_len, 32, "\t%lld.%03ld\n",
	                                 (long long)now.tv_sec, (long)(now.tv_usec / 1000));
}

static void
on_record_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	if (g.record_len > 0)
		record_flush();
}

/* ---- Counters ---- */

static void
stats_write(void)
{
	char text[1024];
	const struct counters *c = &g.c;

	snprintf(
	    text, sizeof(text),
	    "{\"connections\": %llu, \"connections_now\": %llu, \"connections_refused\": %llu, "
	    "\"messages\": %llu, \"bytes\": %llu, \"rcpt_accepted\": %llu, "
	    "\"rcpt_deferred\": %llu, \"rcpt_bounced\": %llu, \"dsns\": %llu, "
	    "\"dsn_recipients\": %llu, \"errors\": %llu}\n",
	    (unsigned long long)c->connections, (unsigned long long)c->connections_now,
	    (unsigned long long)c->connections_refused, (unsigned long long)c->messages,
	    (unsigned long long)c->bytes, (unsigned long long)c->rcpt_accepted,
	    (unsigned long long)c->rcpt_deferred, (unsigned long long)c->rcpt_bounced,
	    (unsigned long long)c->dsns, (unsigned long long)c->dsn_recipients,
	    (unsigned long long)c->errors);
	fprintf(stderr, "sink: %s", text);
	if (g.stats_path != NULL) {
		char tmp[PATH_MAX];
		snprintf(tmp, sizeof(tmp), "%s.tmp", g.stats_path);
		FILE *f = fopen(tmp, "w");
		if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 ||
		    rename(tmp, g.stats_path) != 0)
			fprintf(stderr, "sink: %s: %s\n", g.stats_path, strerror(errno));
	}
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)what, (void)arg;
	if (g.record_fd >= 0 && g.record_len > 0)
		record_flush();
	stats_write();
	if (sig != SIGUSR1)
		event_base_loopbreak(g.base);
}

/* ---- Connections ---- */

static void conn_process(struct conn *);

static void
txn_reset(struct conn *c)
{
	for (size_t i = 0; i < c->nrcpt; i++)
		free(c->rcpt[i]);
	for (size_t i = 0; i < c->ndsn; i++)
		free(c->dsn_lines[i]);
	free(c->rcpt);
	free(c->dsn_lines);
	c->rcpt = NULL;
	c->dsn_lines = NULL;
	c->nrcpt = c->ndsn = 0;
	c->mail = c->null_sender = false;
	c->size = 0;
	c->too_big = c->in_long_line = c->header_msgid_next = c->dsn_report = false;
	c->msgid[0] = c->final_rcpt[0] = '\0';
}

static void
conn_free(struct conn *c)
{
	txn_reset(c);
	if (c->timer != NULL)
		event_free(c->timer);
	if (c->pending != NULL)
		evbuffer_free(c->pending);
	bufferevent_free(c->bev);
	free(c);
	g.c.connections_now--;
}

/* Queues a reply; it is written when the delay has passed (at once without a delay). */
static void
reply(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(c->pending, fmt, ap);
	va_end(ap);
	evbuffer_add(c->pending, "\r\n", 2);
	if (g.delay_ms == 0) {
		bufferevent_write_buffer(c->bev, c->pending);
		return;
	}
	c->waiting = true;
	evtimer_add(c->timer, &g.delay_tv);
}

static void
on_reply_timer(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd, (void)what;
	c->waiting = false;
	bufferevent_write_buffer(c->bev, c->pending);
	conn_process(c);
}

static bool
is_always(const char *domain)
{
	size_t dl = strlen(domain);

	for (size_t i = 0; i < g.nalways; i++) {
		size_t al = strlen(g.always[i]);
		if (strcasecmp(domain, g.always[i]) == 0 ||
		    (dl > al && domain[dl - al - 1] == '.' &&
		     strcasecmp(domain + dl - al, g.always[i]) == 0))
			return true;
	}
	return false;
}

/* "<addr> PARAMS" after "MAIL FROM:" / "RCPT TO:" -> addr (without brackets). -1 if bad. */
static int
parse_path(const char *p, char *out, size_t outlen)
{
	while (*p == ' ')
		p++;
	if (*p != '<')
		return -1;
	p++;
	const char *end = strchr(p, '>');
	if (end == NULL || (size_t)(end - p) >= outlen)
		return -1;
	memcpy(out, p, (size_t)(end - p));
	out[end - p] = '\0';
	for (char *q = out; *q; q++)
		if ((unsigned char)*q <= ' ')
			return -1;
	/* A source route (@a,@b:user@domain) is accepted and ignored. */
	char *colon = out[0] == '@' ? strchr(out, ':') : NULL;
	if (colon != NULL)
		memmove(out, colon + 1, strlen(colon + 1) + 1);
	return 0;
}

static uint64_t
param_size(const char *p)
{
	const char *s = strcasestr(p, " SIZE=");

	return s == NULL ? 0 : strtoull(s + 6, NULL, 10);
}

static void
cmd_rcpt(struct conn *c, const char *arg)
{
	char addr[ADDR_MAX];

	if (!c->mail) {
		reply(c, "503 5.5.1 MAIL first");
		return;
	}
	if (parse_path(arg, addr, sizeof(addr)) < 0 || addr[0] == '\0') {
		reply(c, "501 5.1.3 bad recipient address syntax");
		return;
	}
	if (c->nrcpt >= RCPT_MAX) {
		reply(c, "452 4.5.3 too many recipients");
		return;
	}
	const char *at = strrchr(addr, '@');
	if (at == NULL || !is_always(at + 1)) {
		uint64_t h = hash_str(addr, g.seed);
		double u = (double)(h % 1000000) / 10000.0; /* [0, 100) */
		if (g.defer_all) {
			g.c.rcpt_deferred++;
			record("T", addr, "0", NULL);
			reply(c, "451 4.7.1 <%s>: deferred, try again later", addr);
			return;
		}
		if (u < g.permfail_pct) {
			g.c.rcpt_bounced++;
			record("P", addr, NULL, NULL);
			reply(c, "550 5.1.1 <%s>: no such user", addr);
			return;
		}
		if (u < g.permfail_pct + g.tempfail_pct) {
			unsigned n = attempts_incr(addr, h);
			if (n <= g.deferrals) {
				char num[16];
				snprintf(num, sizeof(num), "%u", n);
				g.c.rcpt_deferred++;
				record("T", addr, num, NULL);
				reply(c, "451 4.7.1 <%s>: try again later", addr);
				return;
			}
		}
	}
	if (c->nrcpt % 8 == 0) {
		char **n = realloc(c->rcpt, (c->nrcpt + 8) * sizeof(*n));
		if (n == NULL)
			die("out of memory");
		c->rcpt = n;
	}
	c->rcpt[c->nrcpt++] = xstrdup(addr);
	reply(c, "250 2.1.5 ok");
}

static void
cmd(struct conn *c, char *line)
{
	size_t len = strlen(line);
	char verb[8];
	size_t i;

	for (i = 0; i < 4 && isalpha((unsigned char)line[i]); i++)
		verb[i] = (char)toupper((unsigned char)line[i]);
	verb[i] = '\0';
	const char *arg = line + i;

	if (c->errors >= ERRORS_MAX) {
		reply(c, "421 4.7.0 too many errors");
		c->close_after = true;
		return;
	}
	if (strcmp(verb, "EHLO") == 0 || strcmp(verb, "HELO") == 0) {
		txn_reset(c);
		c->ehlo = true;
		if (verb[0] == 'H')
			reply(c, "250 sink.example");
		else
			reply(c,
			      "250-sink.example\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE "
			      "%llu\r\n"
			      "250-DSN\r\n250 ENHANCEDSTATUSCODES",
			      (unsigned long long)g.max_size);
	} else if (strcmp(verb, "MAIL") == 0 && strncasecmp(arg, " FROM:", 6) == 0) {
		char addr[ADDR_MAX];
		if (!c->ehlo)
			reply(c, "503 5.5.1 EHLO first");
		else if (c->mail)
			reply(c, "503 5.5.1 nested MAIL");
		else if (parse_path(arg + 6, addr, sizeof(addr)) < 0)
			reply(c, "501 5.1.7 bad sender address syntax");
		else if (param_size(arg) > g.max_size)
			reply(c, "552 5.3.4 message too big");
		else {
			c->mail = true;
			c->null_sender = addr[0] == '\0';
			reply(c, "250 2.1.0 ok");
		}
	} else if (strcmp(verb, "RCPT") == 0 && strncasecmp(arg, " TO:", 4) == 0) {
		cmd_rcpt(c, arg + 4);
	} else if (strcmp(verb, "DATA") == 0 && arg[0] == '\0') {
		if (!c->mail)
			reply(c, "503 5.5.1 MAIL first");
		else if (c->nrcpt == 0) {
			reply(c, "554 5.5.1 no valid recipients");
			txn_reset(c);
		} else {
			c->state = S_DATA;
			c->in_headers = true;
			reply(c, "354 end data with <CRLF>.<CRLF>");
		}
	} else if (strcmp(verb, "RSET") == 0) {
		txn_reset(c);
		reply(c, "250 2.0.0 ok");
	} else if (strcmp(verb, "NOOP") == 0) {
		reply(c, "250 2.0.0 ok");
	} else if (strcmp(verb, "VRFY") == 0) {
		reply(c, "252 2.5.2 cannot verify");
	} else if (strcmp(verb, "QUIT") == 0) {
		reply(c, "221 2.0.0 bye");
		c->close_after = true;
		c->state = S_QUIT;
	} else {
		c->errors++;
		g.c.errors++;
		reply(c, len == 0 ? "500 5.5.2 empty command" : "502 5.5.1 command not recognized");
	}
}

/* The header's value if line is "Name: value" for this name (case-insensitive), else NULL. */
static const char *
header_value(const char *line, const char *name)
{
	size_t n = strlen(name);

	if (strncasecmp(line, name, n) != 0 || line[n] != ':')
		return NULL;
	line += n + 1;
	while (*line == ' ' || *line == '\t')
		line++;
	return line;
}

static void
set_msgid(struct conn *c, const char *v)
{
	while (*v == ' ' || *v == '\t' || *v == '<')
		v++;
	size_t n = strcspn(v, "> \t");
	if (n == 0)
		return;
	if (n >= sizeof(c->msgid))
		n = sizeof(c->msgid) - 1;
	memcpy(c->msgid, v, n);
	c->msgid[n] = '\0';
}

/* A line of a DSN's body: remembers Final-Recipient until its Action. */
static void
dsn_line(struct conn *c, const char *line)
{
	const char *v;

	if ((v = header_value(line, "Final-Recipient")) != NULL) {
		const char *semi = strchr(v, ';');
		v = semi ? semi + 1 : v;
		while (*v == ' ')
			v++;
		snprintf(c->final_rcpt, sizeof(c->final_rcpt), "%s", v);
		c->dsn_report = true;
	} else if ((v = header_value(line, "Action")) != NULL && c->final_rcpt[0] != '\0') {
		size_t len = strlen(c->final_rcpt) + strlen(v) + 2;
		char *rec = xmalloc(len);
		snprintf(rec, len, "%s\t%s", c->final_rcpt, v);
		if (c->ndsn % 8 == 0) {
			char **n = realloc(c->dsn_lines, (c->ndsn + 8) * sizeof(*n));
			if (n == NULL)
				die("out of memory");
			c->dsn_lines = n;
		}
		if (c->ndsn < RCPT_MAX)
			c->dsn_lines[c->ndsn++] = rec;
		else
			free(rec);
		c->final_rcpt[0] = '\0';
	}
}

static void
data_end(struct conn *c)
{
	char fallback[64];

	c->state = S_COMMAND;
	if (c->too_big) {
		reply(c, "552 5.3.4 message too big");
		txn_reset(c);
		return;
	}
	c->nmsg++;
	if (c->msgid[0] == '\0') {
		snprintf(fallback, sizeof(fallback), "sink-%llu-%llu", (unsigned long long)c->id,
		         (unsigned long long)c->nmsg);
		snprintf(c->msgid, sizeof(c->msgid), "%s", fallback);
	}
	g.c.messages++;
	g.c.bytes += c->size;
	for (size_t i = 0; i < c->nrcpt; i++) {
		record("A", c->msgid, c->rcpt[i], NULL);
		g.c.rcpt_accepted++;
	}
	if (c->ndsn > 0 || c->dsn_report)
		g.c.dsns++;
	for (size_t i = 0; i < c->ndsn; i++) {
		char *tab = strchr(c->dsn_lines[i], '\t');
		*tab = '\0';
		record("D", c->msgid, c->dsn_lines[i], tab + 1);
		g.c.dsn_recipients++;
	}
	reply(c, "250 2.0.0 ok: queued as %s", c->msgid);
	txn_reset(c);
}

/* One data line (without its line end, possibly truncated to cap). */
static void
data_line(struct conn *c, char *line, size_t len)
{
	if (c->in_headers) {
		const char *v;
		if (len == 0) {
			c->in_headers = false;
			c->header_msgid_next = false;
			return;
		}
		if (c->header_msgid_next && (line[0] == ' ' || line[0] == '\t')) {
			set_msgid(c, line);
			c->header_msgid_next = false;
		} else if ((v = header_value(line, "Message-ID")) != NULL) {
			if (*v == '\0')
				c->header_msgid_next = true; /* folded */
			else
				set_msgid(c, v);
		} else
			c->header_msgid_next = false;
		return;
	}
	if (c->null_sender)
		dsn_line(c, line);
}

/* Reads data lines; true if the end of the data was reached. */
static bool
data_consume(struct conn *c, struct evbuffer *in)
{
	char line[1024];

	for (;;) {
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		size_t len, avail = evbuffer_get_length(in);

		if (p.pos < 0) {
			if (avail < LINE_MAX_DATA)
				return false;
			/* A very long line: read this piece, the rest continues it. */
			evbuffer_drain(in, avail);
			c->size += avail;
			c->in_long_line = true;
			continue;
		}
		len = (size_t)p.pos;
		size_t take = len < sizeof(line) - 1 ? len : sizeof(line) - 1;
		evbuffer_copyout(in, line, take);
		line[take] = '\0';
		evbuffer_drain(in, len + eol_len);
		if (c->in_long_line) {
			c->in_long_line = false;
			c->size += len + 2;
			continue;
		}
		if (len == 1 && line[0] == '.') {
			data_end(c);
			return true;
		}
		c->size += len + 2;
		if (c->size > g.max_size)
			c->too_big = true;
		char *l = line[0] == '.' ? line + 1 : line; /* dot-stuffing */
		data_line(c, l, take - (size_t)(l - line));
	}
}

static void
conn_process(struct conn *c)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	char line[LINE_MAX_CMD + 1];

	while (!c->waiting && !c->close_after) {
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) > OUTPUT_MAX) {
			/* The client does not read its replies: neither read nor answer until
			 * it does (on_write resumes). */
			bufferevent_disable(c->bev, EV_READ);
			return;
		}
		if (c->state == S_DATA) {
			if (!data_consume(c, in))
				break;
			continue;
		}
		size_t eol_len = 0;
		struct evbuffer_ptr p = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		if (p.pos < 0) {
			if (evbuffer_get_length(in) > LINE_MAX_CMD) {
				reply(c, "500 5.5.2 line too long");
				c->close_after = true;
			}
			break;
		}
		if ((size_t)p.pos > LINE_MAX_CMD) {
			evbuffer_drain(in, (size_t)p.pos + eol_len);
			c->errors++;
			reply(c, "500 5.5.2 line too long");
			continue;
		}
		evbuffer_copyout(in, line, (size_t)p.pos);
		line[p.pos] = '\0';
		evbuffer_drain(in, (size_t)p.pos + eol_len);
		cmd(c, line);
	}
	if (c->close_after && !c->waiting) {
		/* The last reply is in the output: close once it is written. */
		c->closing = true;
		bufferevent_disable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
			conn_free(c);
		return;
	}
	/* Back-pressure: stop reading while a long pipelined backlog waits. */
	if (evbuffer_get_length(in) > INPUT_MAX)
		bufferevent_disable(c->bev, EV_READ);
	else
		bufferevent_enable(c->bev, EV_READ);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_process(arg);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (c->closing)
		conn_free(c);
	else if (!c->waiting)
		conn_process(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev, (void)what;
	conn_free(arg);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	(void)l, (void)sa, (void)salen, (void)arg;
	struct conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		evutil_closesocket(fd);
		return;
	}
	c->bev = bufferevent_socket_new(g.base, fd, BEV_OPT_CLOSE_ON_FREE);
	c->timer = evtimer_new(g.base, on_reply_timer, c);
	c->pending = evbuffer_new();
	if (c->bev == NULL || c->timer == NULL || c->pending == NULL)
		die("out of memory");
	c->id = ++g.next_conn_id;
	g.c.connections++;
	g.c.connections_now++;
	struct timeval idle = {IDLE_TIMEOUT_S, 0};
	bufferevent_set_timeouts(c->bev, &idle, &idle);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_enable(c->bev, EV_READ);
	c->state = S_COMMAND;
	if (g.c.connections_now > g.max_conns) {
		g.c.connections_refused++;
		reply(c, "421 4.7.0 too many connections");
		c->close_after = true;
		conn_process(c);
		return;
	}
	reply(c, "220 sink.example ESMTP sink");
}

static void
on_listen_resume(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what, (void)arg;
	for (size_t i = 0; i < g.nlisteners; i++)
		evconnlistener_enable(g.listeners[i]);
}

static void
on_listen_error(struct evconnlistener *l, void *arg)
{
	(void)l, (void)arg;
	int err = EVUTIL_SOCKET_ERROR();

	if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
		/* Out of descriptors: stop accepting for a moment instead of spinning. */
		for (size_t i = 0; i < g.nlisteners; i++)
			evconnlistener_disable(g.listeners[i]);
		struct timeval tv = {0, 100000};
		evtimer_add(g.listen_pause, &tv);
		return;
	}
	fprintf(stderr, "sink: accept: %s\n", strerror(err));
}

static void
listen_on(const char *spec)
{
	struct sockaddr_storage ss;
	int sslen = sizeof(ss);

	if (g.nlisteners >= LISTENERS_MAX)
		die("too many listeners (at most %d)", LISTENERS_MAX);
	if (evutil_parse_sockaddr_port(spec, (struct sockaddr *)&ss, &sslen) < 0)
		die("-l %s: not ADDRESS:PORT", spec);
	struct evconnlistener *l = evconnlistener_new_bind(
	    g.base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 4096,
	    (struct sockaddr *)&ss, sslen);
	if (l == NULL)
		die("-l %s: %s", spec, strerror(errno));
	evconnlistener_set_error_cb(l, on_listen_error);
	g.listeners[g.nlisteners++] = l;
}

static void
usage(void)
{
	fputs("usage: sink -l ADDR:PORT [-l ADDR:PORT]... [-d DELAY_MS] [-t TEMPFAIL_PCT]\n"
	      "            [-p PERMFAIL_PCT] [-n DEFERRALS] [-s SEED] [-a DOMAIN]... [-D]\n"
	      "            [-o RECORDFILE] [-S STATSFILE] [-c MAX_CONNECTIONS] [-z MAX_SIZE]\n",
	      stderr);
	exit(2);
}

static double
arg_pct(const char *s, char opt)
{
	char *end;
	double v = strtod(s, &end);

	if (*end != '\0' || v < 0 || v > 100)
		die("-%c %s: a percentage from 0 to 100", opt, s);
	return v;
}

static uint64_t
arg_num(const char *s, char opt, uint64_t max)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (*end != '\0' || s[0] == '\0' || s[0] == '-' || v > max)
		die("-%c %s: a number up to %llu", opt, s, (unsigned long long)max);
	return v;
}

int
main(int argc, char **argv)
{
	const char *listen[LISTENERS_MAX];
	size_t nlisten = 0;
	int opt;

	g.delay_ms = 50;
	g.tempfail_pct = 5;
	g.permfail_pct = 2;
	g.deferrals = 1;
	g.seed = 1;
	g.max_conns = 10000;
	g.max_size = 100 * 1024 * 1024;
	g.record_fd = -1;
	while ((opt = getopt(argc, argv, "l:d:t:p:n:s:a:Do:S:c:z:h")) != -1) {
		switch (opt) {
		case 'l':
			if (nlisten >= LISTENERS_MAX)
				die("too many -l (at most %d)", LISTENERS_MAX);
			listen[nlisten++] = optarg;
			break;
		case 'd':
			g.delay_ms = (unsigned)arg_num(optarg, 'd', 600000);
			break;
		case 't':
			g.tempfail_pct = arg_pct(optarg, 't');
			break;
		case 'p':
			g.permfail_pct = arg_pct(optarg, 'p');
			break;
		case 'n':
			g.deferrals = (unsigned)arg_num(optarg, 'n', 1000000);
			break;
		case 's':
			g.seed = arg_num(optarg, 's', UINT64_MAX);
			break;
		case 'a':
			if (g.nalways >= ALWAYS_MAX)
				die("too many -a (at most %d)", ALWAYS_MAX);
			g.always[g.nalways++] = optarg;
			break;
		case 'D':
			g.defer_all = true;
			break;
		case 'o':
			g.record_path = optarg;
			break;
		case 'S':
			g.stats_path = optarg;
			break;
		case 'c':
			g.max_conns = arg_num(optarg, 'c', 1000000);
			break;
		case 'z':
			g.max_size = arg_num(optarg, 'z', UINT64_MAX / 2);
			break;
		default:
			usage();
		}
	}
	if (optind != argc || nlisten == 0)
		usage();
	if (g.tempfail_pct + g.permfail_pct > 100)
		die("-t and -p add up to more than 100");
	g.delay_tv.tv_sec = g.delay_ms / 1000;
	g.delay_tv.tv_usec = (suseconds_t)(g.delay_ms % 1000) * 1000;

	/* Thousands of connections: as many descriptors as allowed. */
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);

	g.base = event_base_new();
	if (g.base == NULL)
		die("cannot create an event loop");
	if (g.record_path != NULL) {
		g.record_fd = open(g.record_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (g.record_fd < 0)
			die("%s: %s", g.record_path, strerror(errno));
		g.record_buf = xmalloc(RECORD_BUF);
		struct event *t = event_new(g.base, -1, EV_PERSIST, on_record_timer, NULL);
		struct timeval tv = {0, 50000};
		event_add(t, &tv);
	}
	g.listen_pause = evtimer_new(g.base, on_listen_resume, NULL);
	for (size_t i = 0; i < nlisten; i++)
		listen_on(listen[i]);
	int sigs[] = {SIGTERM, SIGINT, SIGUSR1};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		event_add(evsignal_new(g.base, sigs[i], on_signal, NULL), NULL);

	printf("ready\n");
	fflush(stdout);
	event_base_dispatch(g.base);
	if (g.record_fd >= 0) {
		if (g.record_len > 0)
			record_flush();
		close(g.record_fd);
	}
	return 0;
}
