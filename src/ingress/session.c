/* session.c - one SMTP connection: its I/O, its timeouts, its life and death.
 *
 * I/O is done here directly on the socket, not through a bufferevent: replies are written
 * with one writev as soon as a batch of input has been handled, and the write event is
 * armed only when the socket's buffer is full. That saves two epoll_ctl calls per reply
 * and the FIONREAD before every read, a third of the server's system calls per message.
 *
 * Input is read up to a bound; beyond it, reading stops and TCP flow control holds the
 * client. Commands are taken one line at a time and handed to the command table
 * (commands.c); message data goes to the scanner (message.c). While a message is being
 * committed, input is buffered but not run: replies to pipelined commands must come in
 * order, and the 250 must follow the fsync.
 *
 * Lifetime: every entry point (I/O events, spool callbacks, shutdown) holds a reference
 * while it runs, so a session that closes deep inside a command is freed only when the
 * entry point returns; the spool's pending commit holds one too, because the spool always
 * answers, even for a client that has left.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "ingress/internal.h"

/* Input read ahead of processing; beyond it, TCP flow control holds the client. */
#define SESSION_INPUT_MAX (256 * 1024)
/* Octets taken per read(2); a read that fills it is followed by another, up to a few, so
 * that a fast client does not monopolise the loop. */
#define SESSION_READ_SIZE (64 * 1024)
#define SESSION_READS_MAX 4
/* Replies queued for a client that does not read them; beyond it, we stop reading its
 * commands until it catches up (a pipelining client cannot make us buffer without end). */
#define SESSION_OUTPUT_MAX (64 * 1024)

static void session_read_cb(evutil_socket_t, short, void *);
static void session_tls_begin(struct session *);
static void session_tls_continue(struct session *);
static void session_flush_arm(struct session *);
static void session_write_cb(evutil_socket_t, short, void *);

static struct timeval
session_timeout(const struct session *s)
{
	const struct smtp_limits *lim = &s->cfg->smtp;
	unsigned secs = (s->state == S_DATA || s->state == S_BDAT) ? lim->data_timeout_s
	                                                           : lim->command_timeout_s;
	return (struct timeval){.tv_sec = secs};
}

/* (Re)arms the read event with the timeout of the current state. event_add on an event
 * already added only moves its timer: no system call. */
static void
session_read_on(struct session *s)
{
	struct timeval tv = session_timeout(s);

	if (event_add(s->ev_read, &tv) == 0)
		s->reading = true;
}

void
session_read_pause(struct session *s)
{
	if (s->reading)
		event_del(s->ev_read);
	s->reading = false;
}

void
session_start(struct worker *w, int fd, const struct sockaddr *peer, socklen_t len,
              const struct listener_conf *listener)
{
	struct session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = w->gen->cfg;
	const void *addr;

	s->worker = w;
	s->gen = ingress_gen_ref(w->gen);
	s->cfg = cfg;
	s->listener = listener;
	s->refs = 1;
	s->fd = fd;
	s->id = atomic_fetch_add(&w->ingress->session_seq, 1) + 1;
	memcpy(&s->peer, peer, len);
	addr = peer->sa_family == AF_INET6
	           ? (const void *)&((const struct sockaddr_in6 *)peer)->sin6_addr
	           : (const void *)&((const struct sockaddr_in *)peer)->sin_addr;
	inet_ntop(peer->sa_family, addr, s->peer_ip, sizeof(s->peer_ip));
	s->relay_allowed = netmask_match_any(cfg->relay_networks, cfg->nrelay_networks, peer) ||
	                   session_internal(s);
	s->state = S_CONNECTED;
	s->in = evbuffer_new();
	s->out = evbuffer_new();
	s->ev_read = event_new(w->base, fd, EV_READ | EV_PERSIST, session_read_cb, s);
	s->ev_write = event_new(w->base, fd, EV_WRITE | EV_PERSIST, session_write_cb, s);
	if (s->in == NULL || s->out == NULL || s->ev_read == NULL || s->ev_write == NULL)
		fatal("session: out of memory for [%s]", s->peer_ip);
	TAILQ_INSERT_TAIL(&w->sessions, s, entry);
	w->nsessions++;
	atomic_fetch_add(&w->ingress->sessions_total, 1);
	log_debug("session %llu: connect from [%s] on %s", (unsigned long long)s->id, s->peer_ip,
	          listener->name);
	session_read_on(s);
	session_ref(s);
	if (!session_internal(s) && auth_blocked_at_connect(s)) {
		session_close_after_reply(s);
		session_flush(s);
	} else if (listener->role == ROLE_SUBMISSIONS) {
		/* RFC 8314: TLS from the first octet; the greeting comes after the handshake. */
		session_tls_begin(s);
	} else {
		session_reply(s, "220 %s ESMTP %s", cfg->hostname, DROVER_NAME);
		session_flush(s);
	}
	session_unref(s);
}

void
session_ref(struct session *s)
{
	s->refs++;
}

/* Not inlined: GCC's use-after-free analysis, seeing the free inside a caller that still
 * holds a reference, cannot know the count keeps it from running there. */
__attribute__((noinline)) static void
session_free(struct session *s)
{
	transaction_reset(s);
	free(s->helo);
	free(s->auth_user);
	ingress_gen_unref(s->gen);
	free(s);
}

void
session_unref(struct session *s)
{
	if (--s->refs > 0)
		return;
	session_free(s);
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
	auth_session_end(s);
	if (s->ssl != NULL) {
		/* A close_notify if the socket takes it; never waiting for the client's. */
		if (!s->handshaking)
			SSL_shutdown(s->ssl);
		SSL_free(s->ssl);
		s->ssl = NULL;
		ERR_clear_error();
	}
	event_free(s->ev_read);
	event_free(s->ev_write);
	evbuffer_free(s->in);
	evbuffer_free(s->out);
	close(s->fd);
	s->ev_read = s->ev_write = NULL;
	s->in = s->out = NULL;
	s->fd = -1;
	TAILQ_REMOVE(&w->sessions, s, entry);
	w->nsessions--;
	if (!session_internal(s)) /* never entered (inject.c) */
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
	out = s->out;
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

/* The session ends once what is queued has been written (see session_flush). */
void
session_close_after_reply(struct session *s)
{
	if (s->freed)
		return;
	if (s->state == S_DATA || s->state == S_BDAT)
		transaction_reset(s);
	if (s->state != S_COMMIT && s->state != S_VERIFY && s->state != S_AUTH)
		s->state = S_CLOSING;
	session_read_pause(s);
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
	if (s->auth.step != AUTH_STEP_NONE)
		auth_line(s, line, len); /* a SASL response, never a command */
	else
		command_dispatch(s, line, len);
	return true;
}

/* Runs everything the input holds, until a command needs to wait (a commit, a chunk
 * write, a client not reading its replies) or the input runs dry. */
static void
session_process(struct session *s)
{
	while (!s->freed) {
		enum session_state before = s->state;

		if (s->state == S_COMMIT || s->state == S_VERIFY || s->state == S_AUTH ||
		    s->state == S_CLOSING || s->starttls_after || s->handshaking)
			return;
		/* Stopping: a message whose data was arriving has been finished (committed or
		 * refused); now the session goes. */
		if (s->worker->stopping && s->state != S_DATA && s->state != S_BDAT) {
			session_shutdown(s);
			return;
		}
		if (evbuffer_get_length(s->out) > SESSION_OUTPUT_MAX) {
			session_read_pause(s); /* session_write_cb resumes */
			return;
		}
		if (s->state == S_DATA || s->state == S_BDAT) {
			if (!message_feed(s, s->in))
				return;
		} else if (!session_read_command(s, s->in))
			return;
		if (!s->freed && s->state != before && s->reading)
			session_read_on(s); /* the new state's timeout */
	}
}

/* ---- TLS ---- */

/* Writes the output through TLS as far as the socket takes it. 0, or -1: the connection is
 * broken. */
static int
session_tls_write(struct session *s)
{
	while (evbuffer_get_length(s->out) > 0) {
		struct evbuffer_iovec v;
		int n;

		if (evbuffer_peek(s->out, -1, NULL, &v, 1) < 1)
			return 0;
		ERR_clear_error();
		n = SSL_write(s->ssl, v.iov_base,
		              v.iov_len > INT32_MAX ? INT32_MAX : (int)v.iov_len);
		if (n > 0) {
			evbuffer_drain(s->out, (size_t)n);
			continue;
		}
		switch (SSL_get_error(s->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
		case SSL_ERROR_WANT_READ: /* a TLS 1.3 key update in progress: the read resumes it
		                           */
			return 0;
		default:
			return -1;
		}
	}
	return 0;
}

/* Reads through TLS into v. The number of octets, 0 when nothing is there now, -1 at the end
 * of the connection or on an error. */
static ssize_t
session_tls_read(struct session *s, void *buf, size_t len)
{
	int n;

	ERR_clear_error();
	n = SSL_read(s->ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	switch (SSL_get_error(s->ssl, n)) {
	case SSL_ERROR_WANT_READ:
		return 0;
	case SSL_ERROR_WANT_WRITE:
		session_flush_arm(s);
		return 0;
	default:
		return -1; /* close_notify, a reset, a bad record */
	}
}

/* The socket must tell us when it takes more output (TLS wants to write). */
static void
session_flush_arm(struct session *s)
{
	struct timeval tv = {.tv_sec = s->cfg->smtp.command_timeout_s};

	if (!s->writing) {
		event_add(s->ev_write, &tv);
		s->writing = true;
	}
}

/* STARTTLS accepted (its 220 is queued): what the client sent after the command is dropped,
 * never run under TLS (RFC 3207 §6; the STARTTLS injection of CVE-2011-0411), and the
 * handshake starts once the 220 is written. */
void
session_starttls(struct session *s)
{
	evbuffer_drain(s->in, evbuffer_get_length(s->in));
	s->starttls_after = true;
}

static void
session_tls_begin(struct session *s)
{
	s->starttls_after = false;
	s->ssl = tls_server_session(s->gen->tls, s->fd);
	if (s->ssl == NULL) {
		log_error("session %llu: cannot start TLS", (unsigned long long)s->id);
		session_kill(s);
		return;
	}
	s->handshaking = true;
	session_read_on(s);
	session_tls_continue(s);
}

static void
session_tls_continue(struct session *s)
{
	char reason[200];
	int rc;

	ERR_clear_error();
	rc = SSL_do_handshake(s->ssl);
	if (rc == 1) {
		const SSL_CIPHER *c = SSL_get_current_cipher(s->ssl);
		int alg = 0, bits = SSL_CIPHER_get_bits(c, &alg);

		s->handshaking = false;
		snprintf(s->tls_info, sizeof(s->tls_info), "%s with cipher %s (%d/%d bits)",
		         SSL_get_version(s->ssl), SSL_CIPHER_get_name(c), bits, alg);
		log_debug("session %llu: TLS %s", (unsigned long long)s->id, s->tls_info);
		if (s->writing)
			event_del(s->ev_write);
		s->writing = false;
		/* RFC 3207 §4.2: everything learnt before TLS is forgotten; EHLO comes again. */
		transaction_reset(s);
		free(s->helo);
		s->helo = NULL;
		s->esmtp = false;
		s->state = S_CONNECTED;
		session_read_on(s);
		if (s->listener->role == ROLE_SUBMISSIONS)
			session_reply(s, "220 %s ESMTP %s", s->cfg->hostname, DROVER_NAME);
		session_flush(s);
		return;
	}
	switch (SSL_get_error(s->ssl, rc)) {
	case SSL_ERROR_WANT_READ:
		return; /* the read event brings the client's next flight */
	case SSL_ERROR_WANT_WRITE:
		session_flush_arm(s);
		return;
	default:
		ERR_error_string_n(ERR_peek_last_error(), reason, sizeof(reason));
		log_info("session %llu: TLS handshake with [%s] failed: %s",
		         (unsigned long long)s->id, s->peer_ip,
		         ERR_peek_last_error() != 0 ? reason : "connection closed");
		session_reject_event(s, "STARTTLS", NULL, "TLS handshake failed");
		session_kill(s);
	}
}

/* Writes what is queued, as far as the socket takes it; arms the write event for the rest.
 * A closing session goes once everything is out. */
void
session_flush(struct session *s)
{
	if (s->freed)
		return;
	if (s->ssl != NULL && !s->handshaking) {
		if (session_tls_write(s) < 0) {
			session_kill(s);
			return;
		}
	} else if (evbuffer_get_length(s->out) > 0 && evbuffer_write(s->out, s->fd) < 0 &&
	           errno != EAGAIN && errno != EINTR) {
		session_kill(s); /* the client is gone: EPIPE, ECONNRESET */
		return;
	}
	if (evbuffer_get_length(s->out) == 0) {
		if (s->writing)
			event_del(s->ev_write);
		s->writing = false;
		if (s->state == S_CLOSING)
			session_kill(s);
		else if (s->starttls_after)
			session_tls_begin(s);
		return;
	}
	if (!s->writing) {
		/* A client that does not read its replies within the command timeout is cut. */
		struct timeval tv = {.tv_sec = s->cfg->smtp.command_timeout_s};
		event_add(s->ev_write, &tv);
		s->writing = true;
	}
}

/* Reading resumes after a wait (commit done, chunk stored, replies drained). */
void
session_resume(struct session *s)
{
	if (s->freed || s->state == S_CLOSING || s->state == S_COMMIT || s->state == S_VERIFY ||
	    s->state == S_AUTH)
		return;
	if (s->txn.chunk_in_flight)
		return;
	session_ref(s);
	session_read_on(s);
	session_process(s);
	session_flush(s);
	session_unref(s);
}

/* Worker shutdown: a session waiting for nothing is told and closed. */
void
session_shutdown(struct session *s)
{
	/* A client in the middle of its message data may finish it within the grace period
	 * (ingress_stop); session_process brings it here again once the message is done. */
	if (s->freed || s->state == S_COMMIT || s->state == S_VERIFY || s->state == S_AUTH ||
	    s->state == S_CLOSING || s->state == S_DATA || s->state == S_BDAT)
		return;
	session_ref(s);
	session_reply(s, "421 4.3.2 %s Service shutting down, try again later", s->cfg->hostname);
	session_close_after_reply(s);
	session_flush(s);
	session_unref(s);
}

/* Reads what the socket has, up to the input bound. Returns false at end of file or on an
 * error (the input read so far is still to be run). */
static bool
session_read_input(struct session *s)
{
	for (int i = 0; i < SESSION_READS_MAX; i++) {
		struct evbuffer_iovec v;
		ssize_t n;

		if (evbuffer_get_length(s->in) >= SESSION_INPUT_MAX) {
			/* Full: TCP holds the client until we have run what we have. */
			session_read_pause(s);
			return true;
		}
		if (evbuffer_reserve_space(s->in, SESSION_READ_SIZE, &v, 1) < 1)
			fatal("session: out of memory");
		if (v.iov_len > SESSION_READ_SIZE)
			v.iov_len = SESSION_READ_SIZE;
		if (s->ssl != NULL) {
			n = session_tls_read(s, v.iov_base, v.iov_len);
			if (n == 0) {
				v.iov_len = 0;
				evbuffer_commit_space(s->in, &v, 1);
				return true;
			}
		} else {
			n = recv(s->fd, v.iov_base, v.iov_len, 0);
		}
		if (n > 0) {
			size_t want = v.iov_len;
			v.iov_len = (size_t)n;
			evbuffer_commit_space(s->in, &v, 1);
			if ((size_t)n < want)
				return true; /* the socket is drained */
			continue;
		}
		if (n == 0)
			return false;
		if (errno == EAGAIN || errno == EINTR)
			return true;
		return false;
	}
	return true;
}

/* TLS may hold decrypted input the socket no longer signals (a read stopped at its bound):
 * run the read callback again for it. */
static void
session_tls_pending(struct session *s)
{
	if (!s->freed && s->ssl != NULL && !s->handshaking && s->reading && SSL_pending(s->ssl) > 0)
		event_active(s->ev_read, EV_READ, 0);
}

static void
session_timed_out(struct session *s)
{
	const char *cmd = (s->state == S_DATA || s->state == S_BDAT) ? "DATA" : "TIMEOUT";

	session_reject_event(s, cmd, NULL, "421 4.4.2 Error: timeout exceeded");
	session_reply(s, "421 4.4.2 %s Error: timeout exceeded", s->cfg->hostname);
	session_close_after_reply(s);
}

static void
session_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_ref(s);
	if (s->handshaking) {
		if (what & EV_TIMEOUT)
			session_kill(s); /* no SMTP to say it in */
		else
			session_tls_continue(s);
		if (!s->handshaking && !s->freed && evbuffer_get_length(s->in) == 0)
			session_tls_pending(s);
		session_unref(s);
		return;
	}
	if (what & EV_TIMEOUT) {
		if (s->state != S_CLOSING && s->state != S_COMMIT && s->state != S_VERIFY &&
		    s->state != S_AUTH)
			session_timed_out(s);
	} else if (!session_read_input(s)) {
		/* End of file or error: run what the client sent before it left (a pipelined
		 * QUIT, say), then the connection is gone; nothing more can be said. */
		session_process(s);
		if (!s->freed && (s->state == S_DATA || s->state == S_BDAT))
			session_reject_event(s, "DATA", NULL,
			                     "connection lost during message data");
		session_flush(s);
		session_kill(s);
	} else
		session_process(s);
	session_flush(s);
	session_tls_pending(s);
	session_unref(s);
}

static void
session_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct session *s = arg;

	session_ref(s);
	if (what & EV_TIMEOUT)
		session_kill(s); /* not reading its replies */
	else if (s->handshaking)
		session_tls_continue(s);
	else {
		session_flush(s);
		/* Reading was paused for a client that did not read its replies. */
		if (!s->freed && !s->writing && !s->reading)
			session_resume(s);
	}
	session_unref(s);
}
