/* client.c - one SMTP client connection: candidates, connecting, the greeting and EHLO/HELO
 * handshake, reading replies and matching them to the commands awaiting them, timeouts,
 * connection reuse, QUIT, and the end of the session.
 *
 * Everything a command needs is in the table below: its name for messages, the phase it
 * stands for in results, the timeout of its reply. Replies are matched to commands in the
 * order sent (RFC 2920 §3.1: the server answers in order, pipelined or not); the timer
 * always watches the oldest unanswered command.
 *
 * Failures before the session is established (see delivery.h) move on to the next candidate;
 * after, they defer what is in flight and end the session. A reply 421 ends the session
 * wherever it comes (RFC 5321 §3.8: the server is closing the channel).
 *
 * STARTTLS sits between EHLO and the session being established: the policy (delivery.h) is
 * met or the candidate fails; tls.c holds what touches OpenSSL.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>

#include "delivery/internal.h"

static const struct {
	const char *name;          /* in messages */
	enum delivery_phase phase; /* in results */
	size_t timeout;            /* offsetof(struct delivery_timeouts, ...) */
	const char *during;        /* "lost connection with X while ..." */
} commands[] = {
    [CMD_GREETING] = {"greeting", DELIVERY_PHASE_GREETING,
                      offsetof(struct delivery_timeouts, greeting_ms),
                      "receiving the initial server greeting"},
    [CMD_EHLO] = {"EHLO", DELIVERY_PHASE_EHLO, offsetof(struct delivery_timeouts, helo_ms),
                  "performing the EHLO handshake"},
    [CMD_HELO] = {"HELO", DELIVERY_PHASE_HELO, offsetof(struct delivery_timeouts, helo_ms),
                  "performing the HELO handshake"},
    /* The reply to STARTTLS and the handshake after it wait as long as EHLO (Postfix's
     * smtp_starttls_timeout is also 300 s). */
    [CMD_STARTTLS] = {"STARTTLS", DELIVERY_PHASE_STARTTLS,
                      offsetof(struct delivery_timeouts, helo_ms), "sending STARTTLS"},
    [CMD_RSET] = {"RSET", DELIVERY_PHASE_RSET, offsetof(struct delivery_timeouts, rset_ms),
                  "sending RSET"},
    [CMD_MAIL] = {"MAIL FROM", DELIVERY_PHASE_MAIL, offsetof(struct delivery_timeouts, mail_ms),
                  "sending MAIL FROM"},
    [CMD_RCPT] = {"RCPT TO", DELIVERY_PHASE_RCPT, offsetof(struct delivery_timeouts, rcpt_ms),
                  "sending RCPT TO"},
    [CMD_DATA] = {"DATA", DELIVERY_PHASE_DATA, offsetof(struct delivery_timeouts, data_ms),
                  "sending DATA command"},
    [CMD_DOT] = {"end of data", DELIVERY_PHASE_DOT, offsetof(struct delivery_timeouts, dot_ms),
                 "sending end of data -- message may be sent more than once"},
    [CMD_BDAT] = {"BDAT", DELIVERY_PHASE_DOT, offsetof(struct delivery_timeouts, dot_ms),
                  "sending BDAT -- message may be sent more than once"},
    [CMD_QUIT] = {"QUIT", DELIVERY_PHASE_QUIT, offsetof(struct delivery_timeouts, quit_ms),
                  "sending QUIT"},
};

static const char *const phase_names[] = {
    [DELIVERY_PHASE_CONNECT] = "connect",   [DELIVERY_PHASE_GREETING] = "greeting",
    [DELIVERY_PHASE_EHLO] = "ehlo",         [DELIVERY_PHASE_HELO] = "helo",
    [DELIVERY_PHASE_STARTTLS] = "starttls", [DELIVERY_PHASE_RSET] = "rset",
    [DELIVERY_PHASE_MAIL] = "mail",         [DELIVERY_PHASE_RCPT] = "rcpt",
    [DELIVERY_PHASE_DATA] = "data",         [DELIVERY_PHASE_CONTENT] = "content",
    [DELIVERY_PHASE_DOT] = "dot",           [DELIVERY_PHASE_QUIT] = "quit",
};

const char *
delivery_phase_name(enum delivery_phase p)
{
	return (size_t)p < nitems(phase_names) && phase_names[p] != NULL ? phase_names[p] : "?";
}

const char *
delivery_status_name(enum delivery_status s)
{
	switch (s) {
	case DELIVERY_DELIVERED:
		return "delivered";
	case DELIVERY_DEFERRED:
		return "deferred";
	case DELIVERY_BOUNCED:
		return "bounced";
	}
	return "?";
}

static void client_read_cb(struct bufferevent *, void *);
static void client_write_cb(struct bufferevent *, void *);
static void client_event_cb(struct bufferevent *, short, void *);
static void client_connect_next(struct delivery_client *);
static void client_session_closed(struct delivery_client *);
static void client_quit(struct delivery_client *);

/* ---- Life ---- */

static void
client_destroy(struct delivery_client *c)
{
	if (c->bev != NULL)
		bufferevent_free(c->bev);
	event_free(c->timer);
	event_free(c->kick);
	if (c->in_txn) {
		for (size_t i = 0; i < c->txn.ntexts; i++)
			free(c->txn.texts[i]);
		free(c->txn.texts);
		free(c->txn.res);
		free(c->txn.r);
	}
	for (size_t i = 0; i < c->ntargets; i++)
		free(c->targets[i].host);
	free(c->targets);
	free(c->pend);
	free((char *)c->error.text);
	free(c->helo_name);
	free(c);
}

/* Every libevent callback is bracketed by enter/leave, so that delivery_client_free() from
 * one of our callbacks only marks the client, which is destroyed when the stack unwinds. */
static void
enter(struct delivery_client *c)
{
	c->depth++;
}

static void
leave(struct delivery_client *c)
{
	if (--c->depth == 0 && c->freed)
		client_destroy(c);
}

static void
set_timer(struct delivery_client *c, unsigned ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	evtimer_add(c->timer, &tv);
}

static unsigned
cmd_timeout(const struct delivery_client *c, enum client_cmd cmd)
{
	return *(const unsigned *)((const char *)&c->to + commands[cmd].timeout);
}

static void
set_error(struct delivery_client *c, enum delivery_phase phase, int code, const char *status,
          const char *text, bool local)
{
	free((char *)c->error.text);
	c->error_phase = phase;
	c->error.code = code;
	strlcpy_s(c->error.status, status, sizeof(c->error.status));
	c->error.text = xstrdup(text);
	c->error.local = local;
	c->has_error = true;
}

static void
close_connection(struct delivery_client *c)
{
	if (c->bev != NULL) {
		bufferevent_free(c->bev);
		c->bev = NULL;
	}
	evtimer_del(c->timer);
	c->npend = 0;
	c->pend_head = 0;
	c->txn_open = false;
	smtp_reply_init(&c->reply);
}

static const char *
target_host(const struct delivery_client *c)
{
	return c->cur < c->ntargets ? c->targets[c->cur].host : "?";
}

static const char *
target_ip(const struct delivery_client *c)
{
	return c->cur < c->ntargets ? c->targets[c->cur].ip : "?";
}

static unsigned
target_port(const struct delivery_client *c)
{
	return c->cur < c->ntargets ? c->targets[c->cur].port : 0;
}

/* ---- Commands and replies ---- */

void
client_pend(struct delivery_client *c, enum client_cmd cmd, size_t rcpt, bool discard)
{
	if (c->pend_head + c->npend == c->pend_alloc) {
		if (c->pend_head > 0) {
			memmove(c->pend, c->pend + c->pend_head, c->npend * sizeof(*c->pend));
			c->pend_head = 0;
		} else {
			c->pend_alloc = c->pend_alloc ? c->pend_alloc * 2 : 8;
			c->pend = xrealloc(c->pend, c->pend_alloc * sizeof(*c->pend));
		}
	}
	c->pend[c->pend_head + c->npend++] = (struct pending){cmd, rcpt, discard};
}

void
client_send_line(struct delivery_client *c, enum client_cmd cmd, size_t rcpt, const char *fmt, ...)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(out, fmt, ap);
	va_end(ap);
	evbuffer_add(out, "\r\n", 2);
	client_pend(c, cmd, rcpt, false);
}

struct evbuffer *
client_output(struct delivery_client *c)
{
	return bufferevent_get_output(c->bev);
}

/* The timer watches the oldest unanswered command; while content is being written the
 * bufferevent's write timeout watches progress instead. */
void
client_arm_reply_timer(struct delivery_client *c)
{
	if (c->state == C_CONTENT)
		return;
	if (c->npend == 0) {
		evtimer_del(c->timer);
		return;
	}
	set_timer(c, cmd_timeout(c, c->pend[c->pend_head].cmd));
}

/* The phase of what we are waiting for, for failures that are not replies. */
static enum delivery_phase
current_phase(const struct delivery_client *c)
{
	if (c->state == C_CONNECTING || c->state == C_NEW)
		return DELIVERY_PHASE_CONNECT;
	if (c->state == C_CONTENT)
		return DELIVERY_PHASE_CONTENT;
	if (c->state == C_TLS)
		return DELIVERY_PHASE_STARTTLS;
	if (c->npend > 0)
		return commands[c->pend[c->pend_head].cmd].phase;
	return c->state == C_QUIT ? DELIVERY_PHASE_QUIT : DELIVERY_PHASE_MAIL;
}

static const char *
current_during(const struct delivery_client *c)
{
	if (c->state == C_CONTENT)
		return "sending message body";
	if (c->state == C_TLS)
		return "performing the TLS handshake";
	if (c->npend > 0)
		return commands[c->pend[c->pend_head].cmd].during;
	return "idle";
}

/* The session cannot go on (c->error says why). Not yet established: try the next candidate.
 * Established: what is in flight is deferred (a broken session is never a reason to bounce),
 * and the session ends. */
static void
client_abort(struct delivery_client *c)
{
	log_debug("delivery: %s[%s]: %s: %d %s %s", target_host(c), target_ip(c),
	          delivery_phase_name(c->error_phase), c->error.code, c->error.status,
	          c->error.text);
	close_connection(c);
	if (!c->established) {
		c->cur++;
		if (c->error.code == 421 && !c->error.local && c->stop_at_421)
			c->cur = c->ntargets; /* every MX would say the same */
		client_connect_next(c);
		return;
	}
	c->broken = true;
	if (c->in_txn) {
		txn_decide_rest(c, c->error_phase, DELIVERY_DEFERRED, &c->error);
		if (!txn_report(c))
			return;
	}
	client_session_closed(c);
}

/* A failure found by the client: lost connection, timeout, malformed reply. */
void
client_fail(struct delivery_client *c, enum delivery_phase phase, int code, const char *status,
            const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	set_error(c, phase, code, status, text, true);
	client_abort(c);
}

/* Leaving a server that is not closing: it waits for QUIT (RFC 5321 §3.1), said without
 * waiting for the answer, straight to the socket if nothing else is queued. Not inside TLS:
 * the socket carries records there, and a bare QUIT would be garbage. */
static void
say_quit(struct delivery_client *c)
{
	if (c->bev != NULL && !c->tls.active && c->state != C_TLS &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		(void)send(bufferevent_getfd(c->bev), "QUIT\r\n", 6, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* A reply that ends the session: 421 anywhere, a refused greeting, EHLO, HELO or RSET. */
void
client_fail_reply(struct delivery_client *c, enum delivery_phase phase, const struct smtp_reply *r)
{
	set_error(c, phase, r->code, smtp_reply_status(r), r->text, false);
	/* After 421 the server is already closing. */
	if (r->code != 421)
		say_quit(c);
	client_abort(c);
}

/* The TLS policy cannot be met with this server: the next candidate, or the message waits.
 * Never a bounce: the server did nothing wrong by SMTP's rules, and a certificate renewed or
 * a STARTTLS turned back on fixes it. */
static void client_tls_unmet(struct delivery_client *, const char *status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
client_tls_unmet(struct delivery_client *c, const char *status, const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	set_error(c, DELIVERY_PHASE_STARTTLS, 451, status, text, true);
	say_quit(c);
	client_abort(c);
}

static void
client_quit(struct delivery_client *c)
{
	c->state = C_QUIT;
	client_send_line(c, CMD_QUIT, 0, "QUIT");
	client_arm_reply_timer(c);
}

/* Between messages: the one handed in, or the caller's next, or idle, or QUIT. A message is
 * started from the loop (kick), never from here: a caller whose messages all fail at once
 * (too big for this server) would otherwise recurse without bound. */
bool
client_continue(struct delivery_client *c)
{
	if (c->broken) {
		if (!c->has_error)
			set_error(c, DELIVERY_PHASE_DOT, 451, "4.5.0",
			          "connection unusable: the server answered out of turn", true);
		close_connection(c);
		client_session_closed(c);
		return false;
	}
	if (c->queued == NULL && !c->closing && c->cb.next != NULL) {
		const struct delivery_message *m = c->cb.next(c->arg, c);

		if (c->freed)
			return false;
		if (c->queued == NULL)
			c->queued = m;
	}
	c->state = C_IDLE;
	evtimer_del(c->timer);
	if (c->queued != NULL)
		event_active(c->kick, EV_TIMEOUT, 1);
	else if (c->closing)
		client_quit(c);
	else
		set_timer(c, c->to.idle_ms);
	return true;
}

static void
client_ready(struct delivery_client *c)
{
	c->established = true;
	client_continue(c);
}

static void
send_ehlo(struct delivery_client *c, bool helo)
{
	c->state = helo ? C_HELO : C_EHLO;
	client_send_line(c, helo ? CMD_HELO : CMD_EHLO, 0, "%s %s", helo ? "HELO" : "EHLO",
	                 c->helo_name);
	client_arm_reply_timer(c);
}

/* EHLO (or HELO) accepted: STARTTLS if the policy wants it and the server offers it, else
 * the session is established, unless the policy requires TLS. */
static void
client_greeted(struct delivery_client *c)
{
	const struct target *t = &c->targets[c->cur];
	bool offered = c->esmtp && c->ehlo.starttls;

	if (c->tls.active || c->tls_policy == DELIVERY_TLS_DISABLED ||
	    (c->tls_policy == DELIVERY_TLS_OPPORTUNISTIC &&
	     (!offered || t->no_starttls || c->tls_ctx == NULL))) {
		client_ready(c);
		return;
	}
	if (!offered) {
		client_tls_unmet(c, "4.7.4", "TLS required but not offered by %s[%s]", t->host,
		                 t->ip);
		return;
	}
	c->state = C_STARTTLS;
	client_send_line(c, CMD_STARTTLS, 0, "STARTTLS");
	client_arm_reply_timer(c);
}

/* 220 to STARTTLS: the handshake starts over the same connection. */
static void
client_start_tls(struct delivery_client *c)
{
	struct bufferevent *bev;

	/* Anything after the 220 arrived in clear, before the handshake: it must not be read
	 * as if it came through TLS (the STARTTLS injection class of bugs, CVE-2011-0411 and
	 * its kin on the client side). A server has nothing to say before our ClientHello. */
	evbuffer_drain(bufferevent_get_input(c->bev),
	               evbuffer_get_length(bufferevent_get_input(c->bev)));
	bev = tls_filter_new(c);
	c->bev = bev; /* owns the socket's bufferevent now */
	bufferevent_setcb(bev, client_read_cb, client_write_cb, client_event_cb, c);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	/* RFC 3207 §4.2: what the server said before TLS is forgotten; EHLO is said again. */
	c->esmtp = false;
	memset(&c->ehlo, 0, sizeof(c->ehlo));
	c->state = C_TLS;
	set_timer(c, c->to.helo_ms);
}

/* The handshake failed (why). Opportunistic: the same server again at once, on a new
 * connection, in clear; the caller hears of it (tls_fallback) to skip STARTTLS there next
 * time. Required: this candidate fails. */
static void
client_tls_failed(struct delivery_client *c, const char *why)
{
	struct target *t = &c->targets[c->cur];

	if (c->tls_policy != DELIVERY_TLS_OPPORTUNISTIC) {
		client_tls_unmet(c, "4.7.5", "TLS handshake with %s[%s] failed: %s", t->host, t->ip,
		                 why);
		return;
	}
	log_debug("delivery: %s[%s]: TLS handshake failed (%s): again in clear", t->host, t->ip,
	          why);
	close_connection(c);
	t->no_starttls = true;
	if (c->cb.tls_fallback != NULL) {
		c->cb.tls_fallback(c->arg, c, t->host, t->ip, t->port, why);
		if (c->freed)
			return;
	}
	client_connect_next(c); /* from c->cur: the same server */
}

/* The handshake is done: the certificate decides under required-verify, then EHLO again. */
static void
client_tls_ready(struct delivery_client *c)
{
	const struct target *t = &c->targets[c->cur];

	tls_session_info(c);
	log_debug("delivery: %s[%s]: %s %s, certificate %s%s", t->host, t->ip, c->tls.version,
	          c->tls.cipher, c->tls.verified ? "verified" : "not verified: ",
	          c->tls.verified ? "" : c->tls.verify_error);
	if (c->tls_policy == DELIVERY_TLS_REQUIRED_VERIFY && !c->tls.verified) {
		client_tls_unmet(c, "4.7.5", "TLS certificate of %s[%s] not verified: %s", t->host,
		                 t->ip, c->tls.verify_error);
		return;
	}
	send_ehlo(c, false);
}

static void
client_reply(struct delivery_client *c)
{
	const struct smtp_reply *r = &c->reply;
	struct pending p;

	if (c->npend == 0) {
		/* Unsolicited: a server closing an idle connection says 421 first. */
		if (c->state == C_IDLE) {
			log_debug("delivery: %s[%s] while idle: %d %s", target_host(c),
			          target_ip(c), r->code, r->text);
			close_connection(c);
			client_session_closed(c);
			return;
		}
		client_fail(c, current_phase(c), 451, "4.5.0",
		            "unexpected reply from %s[%s]: %d %s", target_host(c), target_ip(c),
		            r->code, r->text);
		return;
	}
	p = c->pend[c->pend_head++];
	if (--c->npend == 0)
		c->pend_head = 0;
	client_arm_reply_timer(c);

	if (r->code == 421 && p.cmd != CMD_QUIT) {
		client_fail_reply(c, commands[p.cmd].phase, r);
		return;
	}
	switch (p.cmd) {
	case CMD_GREETING:
		/* 554 (RFC 5321 §3.1) or any other refusal: this server takes no mail now, the
		 * next MX may (Postfix's smtp_skip_5xx_greeting). */
		if (r->code / 100 != 2)
			client_fail_reply(c, DELIVERY_PHASE_GREETING, r);
		else
			send_ehlo(c, false);
		return;
	case CMD_EHLO:
		if (r->code / 100 == 2) {
			c->esmtp = true;
			smtp_ehlo_parse(r, &c->ehlo);
			client_greeted(c);
		} else if (r->code / 100 == 5) {
			send_ehlo(c, true); /* RFC 5321 §3.2: an old server, try HELO */
		} else {
			client_fail_reply(c, DELIVERY_PHASE_EHLO, r);
		}
		return;
	case CMD_HELO:
		if (r->code / 100 != 2)
			client_fail_reply(c, DELIVERY_PHASE_HELO, r);
		else
			client_greeted(c);
		return;
	case CMD_STARTTLS:
		if (r->code / 100 == 2)
			client_start_tls(c);
		else if (c->tls_policy == DELIVERY_TLS_OPPORTUNISTIC)
			client_ready(c); /* RFC 3207 §4: refused, the session goes on in clear */
		else
			client_tls_unmet(c, "4.7.4",
			                 "TLS required but STARTTLS refused by %s[%s]: %d %s",
			                 target_host(c), target_ip(c), r->code, r->text);
		return;
	case CMD_QUIT:
		close_connection(c);
		client_session_closed(c);
		return;
	default:
		txn_reply(c, &p, r);
		return;
	}
}

static void
client_line(struct delivery_client *c, const char *line, size_t len)
{
	struct smtp_error err;
	int rc = smtp_reply_feed(&c->reply, line, len, &err);

	if (rc < 0) {
		client_fail(c, current_phase(c), err.code, err.status,
		            "malformed reply from %s[%s] while %s: %s", target_host(c),
		            target_ip(c), current_during(c), err.text);
	} else if (rc == 0) {
		if (c->reply.lines > DELIVERY_REPLY_LINES_MAX)
			client_fail(c, current_phase(c), 451, "4.5.0",
			            "reply from %s[%s] longer than %d lines", target_host(c),
			            target_ip(c), DELIVERY_REPLY_LINES_MAX);
	} else {
		client_reply(c);
		smtp_reply_init(&c->reply);
	}
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct delivery_client *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);

	enter(c);
	/* Stop when a line changed the connection: closed it, or moved to the next MX. */
	while (!c->freed && c->bev == bev) {
		size_t eol_len;
		struct evbuffer_ptr eol =
		    evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);

		if (eol.pos < 0 ? evbuffer_get_length(in) > DELIVERY_REPLY_LINE_MAX
		                : (size_t)eol.pos > DELIVERY_REPLY_LINE_MAX) {
			client_fail(c, current_phase(c), 451, "4.5.0",
			            "reply line from %s[%s] longer than %d octets", target_host(c),
			            target_ip(c), DELIVERY_REPLY_LINE_MAX);
			break;
		}
		if (eol.pos < 0)
			break;
		evbuffer_remove(in, c->line, (size_t)eol.pos);
		evbuffer_drain(in, eol_len);
		c->line[eol.pos] = '\0';
		client_line(c, c->line, (size_t)eol.pos);
	}
	leave(c);
}

/* ---- Content ---- */

static void
content_fill(struct delivery_client *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	while (evbuffer_get_length(out) < DELIVERY_CONTENT_CHUNK) {
		if (content_encode(&c->txn.enc, c->txn.msg->body, out, DELIVERY_CONTENT_CHUNK)) {
			/* All of it is queued: now the end-of-data reply's timeout runs, while
			 * the write timeout still catches a peer that stops reading. */
			c->state = C_DOT;
			client_arm_reply_timer(c);
			return;
		}
	}
}

void
client_content_start(struct delivery_client *c)
{
	struct timeval tv = {.tv_sec = c->to.data_block_ms / 1000,
	                     .tv_usec = (c->to.data_block_ms % 1000) * 1000};

	c->state = C_CONTENT;
	evtimer_del(c->timer);
	bufferevent_set_timeouts(c->bev, NULL, &tv);
	bufferevent_setwatermark(c->bev, EV_WRITE, DELIVERY_CONTENT_LOW, 0);
	content_fill(c);
}

void
client_content_stop(struct delivery_client *c)
{
	if (c->bev == NULL)
		return;
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct delivery_client *c = arg;

	enter(c);
	if (c->state == C_CONTENT && c->bev == bev)
		content_fill(c);
	leave(c);
}

/* ---- Connecting ---- */

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct delivery_client *c = arg;
	int e = EVUTIL_SOCKET_ERROR();

	enter(c);
	if (c->state == C_TLS) {
		char why[256];

		if (what & BEV_EVENT_CONNECTED)
			client_tls_ready(c);
		else if (what & BEV_EVENT_ERROR) {
			tls_error_text(bev, e != 0 ? evutil_socket_error_to_string(e) : "error",
			               why, sizeof(why));
			client_tls_failed(c, why);
		} else
			client_tls_failed(c, "connection closed by the server");
		leave(c);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		log_debug("delivery: connected to %s[%s]:%u", target_host(c), target_ip(c),
		          target_port(c));
		c->state = C_GREETING;
		bufferevent_enable(c->bev, EV_READ);
		client_pend(c, CMD_GREETING, 0, false);
		client_arm_reply_timer(c);
	} else if (c->state == C_CONNECTING) {
		client_fail(c, DELIVERY_PHASE_CONNECT, 451, "4.4.1", "connect to %s[%s]:%u: %s",
		            target_host(c), target_ip(c), target_port(c),
		            e != 0 ? evutil_socket_error_to_string(e) : "connection failed");
	} else if (c->state == C_QUIT || c->state == C_IDLE) {
		/* The server hung up after QUIT, or dropped an idle connection: a normal end. */
		close_connection(c);
		client_session_closed(c);
	} else if (what & BEV_EVENT_TIMEOUT) {
		client_fail(c, current_phase(c), 451, "4.4.2",
		            "conversation with %s[%s] timed out while %s", target_host(c),
		            target_ip(c), current_during(c));
	} else {
		client_fail(c, current_phase(c), 451, "4.4.2",
		            "lost connection with %s[%s] while %s", target_host(c), target_ip(c),
		            current_during(c));
	}
	leave(c);
}

static int
target_connect(struct delivery_client *c, const struct target *t, char *why, size_t whylen)
{
	int fd;

	memset(&c->tls, 0, sizeof(c->tls)); /* a new connection starts in clear */
	if (c->source_len > 0 && c->source.ss_family != t->addr.ss_family) {
		snprintf(why, whylen, "no %s source address to reach %s[%s]",
		         t->addr.ss_family == AF_INET6 ? "IPv6" : "IPv4", t->host, t->ip);
		return -1;
	}
	fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(why, whylen, "connect to %s[%s]:%u: socket: %s", t->host, t->ip, t->port,
		         strerror(errno));
		return -1;
	}
	if (c->source_len > 0) {
#ifdef IP_BIND_ADDRESS_NO_PORT
		/* Let connect() choose the port per destination: binding first would take a
		 * port out of the source address's whole range for each connection. */
		int one = 1;

		(void)setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
#endif
		if (bind(fd, (const struct sockaddr *)&c->source, c->source_len) < 0) {
			c->source_errno = errno;
			snprintf(why, whylen,
			         "connect to %s[%s]:%u: bind to the source address: %s", t->host,
			         t->ip, t->port, strerror(errno));
			close(fd);
			return -1;
		}
	}
	c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (c->bev == NULL) {
		close(fd);
		snprintf(why, whylen, "connect to %s[%s]:%u: no memory for a connection", t->host,
		         t->ip, t->port);
		return -1;
	}
	/* No input watermark is needed: every line is parsed as soon as it is complete, and
	 * an incomplete one is bounded by DELIVERY_REPLY_LINE_MAX. */
	bufferevent_setcb(c->bev, client_read_cb, client_write_cb, client_event_cb, c);
	if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)&t->addr, t->addr_len) <
	    0) {
		snprintf(why, whylen, "connect to %s[%s]:%u: %s", t->host, t->ip, t->port,
		         strerror(errno));
		bufferevent_free(c->bev);
		c->bev = NULL;
		return -1;
	}
	/* Reading starts once connected: a greeting must not be parsed before the connection
	 * is known to be up (libevent may report both in one loop turn, read first). */
	return 0;
}

/* Tries the candidates from c->cur on; when none is left, the session ends unestablished. */
static void
client_connect_next(struct delivery_client *c)
{
	char why[512];

	while (c->cur < c->ntargets) {
		c->tried++;
		if (target_connect(c, &c->targets[c->cur], why, sizeof(why)) == 0) {
			c->state = C_CONNECTING;
			set_timer(c, c->to.connect_ms);
			return;
		}
		set_error(c, DELIVERY_PHASE_CONNECT, 451, "4.4.1", why, true);
		log_debug("delivery: %s", why);
		if (c->source_errno != 0) {
			/* The source address cannot be bound (not on this machine): every other
			 * candidate would fail the same way, and none of them is at fault. */
			c->tried--;
			break;
		}
		c->cur++;
	}
	c->cur = c->ntargets - 1; /* results name the last candidate tried */
	client_session_closed(c);
}

/* The end: a message handed in but never started is deferred, then closed is called. */
static void
client_session_closed(struct delivery_client *c)
{
	struct delivery_session s;
	bool connected = c->established;

	if (c->state == C_CLOSED)
		return;
	c->state = C_CLOSED;
	c->broken = true;
	close_connection(c);
	if (c->queued != NULL) {
		const struct delivery_message *m = c->queued;

		c->queued = NULL;
		if (!c->has_error)
			set_error(c, DELIVERY_PHASE_MAIL, 451, "4.4.2",
			          "connection closed before the message could be sent", true);
		txn_init(c, m);
		txn_decide_rest(c, c->error_phase, DELIVERY_DEFERRED, &c->error);
		if (!txn_report(c))
			return;
	}
	s = (struct delivery_session){
	    .established = connected,
	    .tried = c->tried,
	    .source_errno = c->source_errno,
	    .messages = c->messages,
	    .mx_host = c->tried > 0 ? target_host(c) : NULL,
	    .mx_addr = c->tried > 0 ? target_ip(c) : NULL,
	    .mx_port = (uint16_t)(c->tried > 0 ? target_port(c) : 0),
	    .error = c->has_error ? &c->error : NULL,
	    .ehlo = c->esmtp ? &c->ehlo : NULL,
	    .tls = tls_result(c),
	};
	if (c->cb.closed != NULL)
		c->cb.closed(c->arg, c, &s);
}

static void
client_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery_client *c = arg;

	enter(c);
	switch (c->state) {
	case C_CONNECTING:
		client_fail(c, DELIVERY_PHASE_CONNECT, 451, "4.4.1",
		            "connect to %s[%s]:%u: timed out", target_host(c), target_ip(c),
		            target_port(c));
		break;
	case C_IDLE:
		client_quit(c);
		break;
	case C_TLS:
		client_tls_failed(c, "timed out");
		break;
	case C_QUIT:
		close_connection(c);
		client_session_closed(c);
		break;
	case C_NEW:
	case C_CLOSED:
		break;
	default:
		client_fail(c, current_phase(c), 451, "4.4.2",
		            "conversation with %s[%s] timed out while %s", target_host(c),
		            target_ip(c), current_during(c));
		break;
	}
	leave(c);
}

/* Work scheduled by the API or between messages, run from the loop. */
static void
client_kick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct delivery_client *c = arg;
	const struct delivery_message *m;

	enter(c);
	switch (c->state) {
	case C_NEW:
		if (c->queued != NULL)
			client_connect_next(c);
		else if (c->closing)
			client_session_closed(c);
		break;
	case C_IDLE:
		if (c->queued != NULL) {
			m = c->queued;
			c->queued = NULL;
			evtimer_del(c->timer);
			txn_start(c, m);
		} else if (c->closing) {
			client_quit(c);
		}
		break;
	default:
		break;
	}
	leave(c);
}

/* ---- API ---- */

struct delivery_client *
delivery_client_new(struct event_base *base, const struct delivery_options *opts,
                    const struct delivery_target *targets, size_t ntargets,
                    const struct delivery_callbacks *cb, void *arg, char *err, size_t errlen)
{
	static const struct delivery_timeouts defaults = {
	    .connect_ms = DELIVERY_DEF_CONNECT_MS,
	    .greeting_ms = DELIVERY_DEF_GREETING_MS,
	    .helo_ms = DELIVERY_DEF_HELO_MS,
	    .mail_ms = DELIVERY_DEF_MAIL_MS,
	    .rcpt_ms = DELIVERY_DEF_RCPT_MS,
	    .data_ms = DELIVERY_DEF_DATA_MS,
	    .data_block_ms = DELIVERY_DEF_DATA_BLOCK_MS,
	    .dot_ms = DELIVERY_DEF_DOT_MS,
	    .rset_ms = DELIVERY_DEF_RSET_MS,
	    .quit_ms = DELIVERY_DEF_QUIT_MS,
	    .idle_ms = DELIVERY_DEF_IDLE_MS,
	};
	struct delivery_client *c;
	unsigned *to;
	const unsigned *def;

	if (opts == NULL || opts->helo_name == NULL || !smtp_helo_valid(opts->helo_name)) {
		snprintf(err, errlen, "delivery: the EHLO name is missing or not a domain name");
		return NULL;
	}
	if (ntargets == 0) {
		snprintf(err, errlen, "delivery: no address to connect to");
		return NULL;
	}
	if (opts->tls != DELIVERY_TLS_OPPORTUNISTIC && opts->tls != DELIVERY_TLS_DISABLED &&
	    opts->tls_ctx == NULL) {
		snprintf(err, errlen, "delivery: TLS is required but there is no TLS context");
		return NULL;
	}
	if (opts->source != NULL &&
	    (opts->source_len > sizeof(struct sockaddr_storage) ||
	     (opts->source->sa_family != AF_INET && opts->source->sa_family != AF_INET6))) {
		snprintf(err, errlen, "delivery: the source address is not IPv4 or IPv6");
		return NULL;
	}
	for (size_t i = 0; i < ntargets && i < DELIVERY_TARGETS_MAX; i++) {
		const struct sockaddr *sa = targets[i].addr;

		if (sa == NULL || targets[i].addr_len > sizeof(struct sockaddr_storage) ||
		    (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)) {
			snprintf(err, errlen, "delivery: target %zu is not an IPv4 or IPv6 address",
			         i);
			return NULL;
		}
	}

	c = xcalloc(1, sizeof(*c));
	c->base = base;
	c->helo_name = xstrdup(opts->helo_name);
	c->tls_policy = opts->tls;
	c->tls_ctx = opts->tls_ctx;
	if (opts->source != NULL) {
		memcpy(&c->source, opts->source, opts->source_len);
		c->source_len = opts->source_len;
	}
	/* Walked as an array: every member is an unsigned (checked below). */
	_Static_assert(sizeof(struct delivery_timeouts) == 11 * sizeof(unsigned),
	               "delivery_timeouts holds only unsigned members");
	c->to = opts->timeouts;
	c->stop_at_421 = opts->stop_at_421;
	to = (unsigned *)&c->to;
	def = (const unsigned *)&defaults;
	for (size_t i = 0; i < sizeof(c->to) / sizeof(unsigned); i++)
		if (to[i] == 0)
			to[i] = def[i];
	c->ntargets = ntargets < DELIVERY_TARGETS_MAX ? ntargets : DELIVERY_TARGETS_MAX;
	c->targets = xcalloc(c->ntargets, sizeof(*c->targets));
	for (size_t i = 0; i < c->ntargets; i++) {
		struct target *t = &c->targets[i];

		t->host = xstrdup(targets[i].host != NULL ? targets[i].host : "");
		t->no_starttls = targets[i].no_starttls;
		memcpy(&t->addr, targets[i].addr, targets[i].addr_len);
		t->addr_len = targets[i].addr_len;
		if (t->addr.ss_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&t->addr;

			inet_ntop(AF_INET6, &sin6->sin6_addr, t->ip, sizeof(t->ip));
			t->port = ntohs(sin6->sin6_port);
		} else {
			const struct sockaddr_in *sin = (const struct sockaddr_in *)&t->addr;

			inet_ntop(AF_INET, &sin->sin_addr, t->ip, sizeof(t->ip));
			t->port = ntohs(sin->sin_port);
		}
	}
	if (cb != NULL)
		c->cb = *cb;
	c->arg = arg;
	c->state = C_NEW;
	c->timer = evtimer_new(base, client_timer_cb, c);
	c->kick = event_new(base, -1, 0, client_kick_cb, c);
	smtp_reply_init(&c->reply);
	return c;
}

int
delivery_client_send(struct delivery_client *c, const struct delivery_message *m)
{
	if (m == NULL || m->nrcpt == 0 || m->env == NULL || m->body == NULL)
		return -1;
	/* Between messages in_txn is false, also during the result callback. */
	if (c->closing || c->broken || c->in_txn || c->queued != NULL || c->state == C_CLOSED ||
	    (c->state != C_NEW && !c->established))
		return -1;
	c->queued = m;
	event_active(c->kick, EV_TIMEOUT, 1);
	return 0;
}

void
delivery_client_close(struct delivery_client *c)
{
	if (c->closing || c->state == C_CLOSED)
		return;
	c->closing = true;
	if (c->state == C_NEW || (c->state == C_IDLE && c->queued == NULL))
		event_active(c->kick, EV_TIMEOUT, 1);
}

void
delivery_client_free(struct delivery_client *c)
{
	if (c == NULL)
		return;
	if (c->depth > 0) {
		c->freed = true;
		return;
	}
	client_destroy(c);
}

bool
delivery_client_idle(const struct delivery_client *c)
{
	return c->state == C_IDLE && c->queued == NULL && !c->closing && !c->broken;
}
