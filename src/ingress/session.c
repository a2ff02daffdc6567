/* session.c - one SMTP connection: its I/O, its timeouts, its life and death.
 *
 * Input is read through a bufferevent with a high watermark, so a client that sends faster
 * than we process is throttled by TCP rather than by our memory. Commands are taken one
 * line at a time and handed to the command table (commands.c); message data goes to the
 * scanner (message.c). While a message is being committed no input is read at all: replies
 * to pipelined commands must come in order, and the 250 must follow the fsync.
 *
 * A session is freed when its connection is gone and no spool callback is pending
 * (refs): the spool always answers a commit, even for a client that has left.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "ingress/internal.h"

/* Input read ahead of processing; beyond it, TCP flow control holds the client. */
#define SESSION_INPUT_MAX (256 * 1024)
/* Replies queued for a client that does not read them; beyond it, we stop reading its
 * commands until it catches up (a pipelining client cannot make us buffer without end). */
#define SESSION_OUTPUT_MAX (64 * 1024)

static void session_read_cb(struct bufferevent *, void *);
static void session_write_cb(struct bufferevent *, void *);
static void session_event_cb(struct bufferevent *, short, void *);

static void
session_set_timeout(struct session *s)
{
	const struct smtp_limits *lim = &s->cfg->smtp;
	unsigned secs = (s->state == S_DATA || s->state == S_BDAT) ? lim->data_timeout_s
	                                                           : lim->command_timeout_s;
	struct timeval tv = {.tv_sec = secs};

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void
session_start(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
              const struct listener_conf *listener)
{
	struct session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = w->ingress->cfg;
	const void *addr;

	s->worker = w;
	s->cfg = cfg;
	s->listener = listener;
	s->refs = 1;
	s->id = atomic_fetch_add(&w->ingress->session_seq, 1) + 1;
	memcpy(&s->peer, peer, len);
	addr = peer->sa_family == AF_INET6
	           ? (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr
	           : (const void *)&((const struct sockaddr_in *)peer)->sin_addr;
	inet_ntop(peer->sa_family, addr, s->peer_ip, sizeof(s->peer_ip));
	s->relay_allowed = netmask_match_any(cfg->relay_networks, cfg->nrelay_networks, peer);
	s->state = S_CONNECTED;

	s->bev = bufferevent_socket_new(w->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		log_error("session: cannot create a buffer for %s", s->peer_ip);
		evutil_closesocket(fd);
		client_table_leave(w->ingress->clients, (const struct sockaddr *)&s->peer);
		free(s);
		return;
	}
	bufferevent_setcb(s->bev, session_read_cb, session_write_cb, session_event_cb, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, SESSION_INPUT_MAX);
	session_set_timeout(s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&w->sessions, s, entry);
	w->nsessions++;
	atomic_fetch_add(&w->ingress->sessions_total, 1);
	log_debug("session %llu: connect from [%s] on %s", (unsigned long long)s->id, s->peer_ip,
	          listener->name);
	session_reply(s, "220 %s ESMTP %s", cfg->hostname, DROVER_NAME);
}

void
session_ref(struct session *s)
{
	s->refs++;
}

void
session_unref(struct session *s)
{
	if (--s->refs > 0)
		return;
	transaction_reset(s);
	free(s->helo);
	free(s);
}

/* The connection goes away now (the session may live on for a pending commit). */
void
session_kill(struct session *s)
{
	struct worker *w = s->worker;

	if (s->freed)
		return;
	s->freed = true;
	log_debug("session %llu: disconnect [%s]", (unsigned long long)s->id, s->peer_ip);
	bufferevent_free(s->bev);
	s->bev = NULL;
	TAILQ_REMOVE(&w->sessions, s, entry);
	w->nsessions--;
	client_table_leave(w->ingress->clients, (const struct sockaddr *)&s->peer);
	/* A message still being received is given up; one being committed is not. */
	if (s->state != S_COMMIT)
		transaction_reset(s);
	session_unref(s);
	worker_check_exit(w);
}

static void
session_vreply(struct session *s, const char *fmt, va_list ap)
{
	struct evbuffer *out;

	if (s->freed || s->state == S_CLOSING)
		return;
	out = bufferevent_get_output(s->bev);
	evbuffer_add_vprintf(out, fmt, ap);
	evbuffer_add(out, "\r\n", 2);
}

void
session_reply(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
}

/* A reply that counts as a client error; too many and the session ends (Postfix's
 * smtpd_hard_error_limit: a client that keeps erring is broken or probing). */
void
session_error(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	session_vreply(s, fmt, ap);
	va_end(ap);
	if (++s->errors >= s->cfg->smtp.max_errors && s->state != S_CLOSING) {
		session_reply(s, "421 4.7.0 %s Error: too many errors", s->cfg->hostname);
		session_reject_event(s, "ERRORS", NULL, "421 4.7.0 Error: too many errors");
		session_close_after_reply(s);
	}
}

void
session_close_after_reply(struct session *s)
{
	if (s->freed)
		return;
	if (s->state == S_DATA || s->state == S_BDAT)
		transaction_reset(s);
	if (s->state != S_COMMIT)
		s->state = S_CLOSING;
	bufferevent_disable(s->bev, EV_READ);
	if (s->state == S_CLOSING && evbuffer_get_length(bufferevent_get_output(s->bev)) == 0)
		session_kill(s);
}

void
session_reject_event(struct session *s, const char *command, const char *address, const char *reply)
{
	json_t *f = json_object();

	json_object_set_new(f, "session", json_integer((json_int_t)s->id));
	json_object_set_new(f, "client_ip", json_string(s->peer_ip));
	json_object_set_new(f, "listener", json_string(s->listener->name));
	if (s->helo != NULL)
		json_object_set_new(f, "helo", json_string(s->helo));
	/* At MAIL the address is the refused sender; later it is a recipient. */
	if (address != NULL && strcmp(command, "MAIL") == 0)
		json_object_set_new(f, "sender", json_string(address));
	else if (s->txn.sender != NULL)
		json_object_set_new(f, "sender", json_string(s->txn.sender));
	if (address != NULL && strcmp(command, "MAIL") != 0)
		json_object_set_new(f, "recipient", json_string(address));
	json_object_set_new(f, "command", json_string(command));
	json_object_set_new(f, "reply", json_string(reply));
	eventlog_write(s->worker->ingress->log, "Rejection", f);
}

/* Takes one command line off the input. Returns false when no complete line is there. */
static bool
session_read_command(struct session *s, struct evbuffer *in)
{
	const struct smtp_limits *lim = &s->cfg->smtp;
	size_t eol_len, len, total;
	struct evbuffer_ptr eol;
	char *line;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
	if (eol.pos < 0) {
		/* No end of line yet. Past the limit the line can only be refused: drop what
		 * we have and remember to drop the rest of it too. */
		if (evbuffer_get_length(in) > lim->command_line_max) {
			evbuffer_drain(in, evbuffer_get_length(in));
			s->discarding_line = true;
		}
		return false;
	}
	total = (size_t)eol.pos + 1;
	if (s->discarding_line || total > lim->command_line_max) {
		evbuffer_drain(in, total);
		s->discarding_line = false;
		session_error(s, "500 5.5.2 Error: line too long (limit %u octets)",
		              lim->command_line_max);
		return true;
	}
	line = s->worker->line;
	evbuffer_remove(in, line, total);
	len = total - 1;
	if (len == 0 || line[len - 1] != '\r') {
		/* RFC 5321 §2.3.8: lines end with CRLF, never a bare LF. */
		session_error(s,
		              "500 5.5.2 Error: bare <LF> received; lines must end with <CR><LF>");
		return true;
	}
	line[--len] = '\0';
	command_dispatch(s, line, len);
	return true;
}

/* Runs everything the input holds, until a command needs to wait (a commit, a chunk
 * write, a client not reading its replies) or the input runs dry. */
static void
session_process(struct session *s)
{
	while (!s->freed) {
		struct evbuffer *in = bufferevent_get_input(s->bev);
		struct evbuffer *out = bufferevent_get_output(s->bev);
		enum session_state before = s->state;

		if (s->state == S_COMMIT || s->state == S_CLOSING)
			return;
		/* Stopping: a message whose data was arriving has been finished (committed or
		 * refused); now the session goes. */
		if (s->worker->stopping && s->state != S_DATA && s->state != S_BDAT) {
			session_shutdown(s);
			return;
		}
		if (evbuffer_get_length(out) > SESSION_OUTPUT_MAX) {
			bufferevent_disable(s->bev, EV_READ);
			return;
		}
		if (s->state == S_DATA || s->state == S_BDAT) {
			if (!message_feed(s, in))
				return;
		} else if (!session_read_command(s, in))
			return;
		if (!s->freed && s->state != before)
			session_set_timeout(s);
	}
}

/* Reading resumes after a wait (commit done, chunk stored, replies drained). */
void
session_resume(struct session *s)
{
	if (s->freed || s->state == S_CLOSING || s->state == S_COMMIT)
		return;
	if (s->txn.chunk_in_flight)
		return;
	session_set_timeout(s);
	bufferevent_enable(s->bev, EV_READ);
	session_process(s);
}

/* Worker shutdown: a session waiting for nothing is told and closed. */
void
session_shutdown(struct session *s)
{
	/* A client in the middle of its message data may finish it within the grace period
	 * (ingress_stop); session_process brings it here again once the message is done. */
	if (s->state == S_COMMIT || s->state == S_CLOSING || s->state == S_DATA ||
	    s->state == S_BDAT)
		return;
	session_reply(s, "421 4.3.2 %s Service shutting down, try again later", s->cfg->hostname);
	session_close_after_reply(s);
}

static void
session_read_cb(struct bufferevent *bev, void *arg)
{
	session_process(arg);
}

static void
session_write_cb(struct bufferevent *bev, void *arg)
{
	struct session *s = arg;

	/* Called when the output has drained completely. */
	if (s->state == S_CLOSING) {
		session_kill(s);
		return;
	}
	if (s->state != S_COMMIT && !s->txn.chunk_in_flight &&
	    !(bufferevent_get_enabled(s->bev) & EV_READ))
		session_resume(s);
}

static void
session_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct session *s = arg;

	if ((what & BEV_EVENT_TIMEOUT) && (what & BEV_EVENT_READING) && s->state != S_CLOSING) {
		const char *cmd = (s->state == S_DATA || s->state == S_BDAT) ? "DATA" : "TIMEOUT";
		session_reject_event(s, cmd, NULL, "421 4.4.2 Error: timeout exceeded");
		session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
		/* Writing must still work for the reply to leave. */
		bufferevent_enable(s->bev, EV_WRITE);
		session_close_after_reply(s);
		return;
	}
	/* EOF, error, or a client that stopped reading our replies: nothing more to say. */
	if (s->state == S_DATA || s->state == S_BDAT)
		session_reject_event(s, "DATA", NULL, "connection lost during message data");
	session_kill(s);
}
