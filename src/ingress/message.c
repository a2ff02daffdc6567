/* message.c - message data (DATA and BDAT) and the reception pipeline: Received: header,
 * streaming into the spool, the verdict at end of data, the durable commit, the reply.
 *
 * Content is streamed: once a spool chunk's worth has arrived it is handed to the spool and
 * reading pauses until the spool has it, so a 50 MB message costs a chunk or two of memory.
 * The 250 is sent only from the commit callback, after the fsync. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "ingress/internal.h"

/* RFC 3848 / RFC 6531 protocol names for the Received: "with" clause. */
static const char *
message_protocol(const struct session *s)
{
	bool tls = s->ssl != NULL, auth = s->auth_user != NULL;

	/* RFC 3848 (S: TLS, A: authenticated) and RFC 6531 for SMTPUTF8. */
	if (s->txn.mail.smtputf8)
		return auth ? (tls ? "UTF8SMTPSA" : "UTF8SMTPA") : (tls ? "UTF8SMTPS" : "UTF8SMTP");
	if (!s->esmtp)
		return "SMTP";
	return auth ? (tls ? "ESMTPSA" : "ESMTPA") : (tls ? "ESMTPS" : "ESMTP");
}

static void
message_add_received(struct session *s)
{
	struct transaction *t = &s->txn;
	char date[64];

	time_rfc5322(time_now_us(), date, sizeof(date));
	evbuffer_add_printf(t->body, "Received: from %s (%s%s%s%s)\r\n", s->helo, "[",
	                    s->peer.ss_family == AF_INET6 ? "IPv6:" : "", s->peer_ip, "]");
	if (s->ssl != NULL)
		evbuffer_add_printf(t->body, "\t(using %s)\r\n", s->tls_info);
	evbuffer_add_printf(t->body, "\tby %s (%s) with %s id %s", s->cfg->hostname, DROVER_NAME,
	                    message_protocol(s), spool_message_id(t->msg));
	/* "for" names the recipient only when there is one: listing several would disclose
	 * the other (Bcc) recipients to each (RFC 5321 §4.4). */
	if (t->nrcpt == 1)
		evbuffer_add_printf(t->body, "\r\n\tfor <%s>", t->rcpt[0].address);
	evbuffer_add_printf(t->body, "; %s\r\n", date);
}

static void
message_begin(struct session *s, bool dot_mode)
{
	struct transaction *t = &s->txn;
	const struct smtp_limits *lim = &s->cfg->smtp;
	bool allow_8bit = t->mail.body != SMTP_BODY_7BIT || t->mail.smtputf8 ||
	                  !lim->reject_8bit_without_8bitmime;

	if (s->listener->role == ROLE_BOUNCE) { /* read, never queued (reports.c) */
		reports_begin(s, dot_mode);
		return;
	}
	t->msg = spool_message_begin(s->worker->ingress->spool, s->worker->mailbox);
	t->body = evbuffer_new();
	message_add_received(s);
	t->header_len = evbuffer_get_length(t->body);
	t->auth_fed = t->header_len;
	if (s->listener->dkim_sign)
		t->sign = dkim_signing_begin(s->gen->signing, time_now_us() / 1000000,
		                             &s->worker->ingress->metrics.signing);
	t->verify = auth_verify_begin(s);
	body_scanner_init(&t->scan, dot_mode, allow_8bit, lim->data_line_max,
	                  lim->max_message_size);
}

/* No recipient to send to: the reply depends on whether any were tried (RFC 2920 §3.1). */
static const char *
message_no_recipients(const struct session *s)
{
	if (s->state == S_CONNECTED)
		return "503 5.5.1 Error: send HELO/EHLO first";
	if (s->state == S_READY)
		return "503 5.5.1 Error: need MAIL command";
	return s->txn.rcpt_attempts > 0 ? "554 5.5.1 Error: no valid recipients"
	                                : "503 5.5.1 Error: need RCPT command";
}

void
message_data_start(struct session *s)
{
	struct transaction *t = &s->txn;

	if (t->bdat_used) {
		session_reject_event(s, "DATA", NULL, "503 5.5.1 Error: DATA after BDAT");
		session_error(s, "503 5.5.1 Error: DATA cannot follow BDAT in a transaction");
		return;
	}
	if (t->nrcpt == 0 && t->ndropped == 0) {
		const char *reply = message_no_recipients(s);
		session_reject_event(s, "DATA", NULL, reply);
		session_error(s, "%s", reply);
		return;
	}
	message_begin(s, true);
	s->state = S_DATA;
	session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

void
message_bdat_start(struct session *s, const char *args)
{
	struct transaction *t = &s->txn;
	uint64_t size = 0;
	const char *p = args;
	int digits = 0;

	for (; *p >= '0' && *p <= '9' && digits < 20; p++, digits++) {
		uint64_t next = size * 10 + (uint64_t)(*p - '0');
		if (next < size)
			break;
		size = next;
	}
	t->bdat_last = false;
	if (digits > 0 && *p == ' ' && strcasecmp(p + 1, "LAST") == 0) {
		t->bdat_last = true;
		p += 5;
	}
	if (digits == 0 || digits == 20 || *p != '\0') {
		/* The chunk size is unknown, so what follows cannot be skipped: it will be read
		 * as commands, fail, and end in max_errors. */
		session_reject_event(s, "BDAT", NULL, "501 5.5.4 Error: BDAT syntax");
		session_error(s, "501 5.5.4 Error: syntax is BDAT <size> [LAST]");
		return;
	}
	t->bdat_size = t->bdat_left = size;
	t->bdat_return = s->state;
	t->bdat_refusal = NULL;
	if (s->state != S_RCPT)
		t->bdat_refusal = message_no_recipients(s);
	else if (t->msg == NULL) {
		message_begin(s, false);
		t->bdat_used = true;
	}
	s->state = S_BDAT;
	if (size == 0)
		message_feed(s, NULL);
}

/* The verdict on content the scanner judged bad, in order of what a sender can act on. */
static const char *
message_violation_reply(unsigned v)
{
	if (v & BODY_TOO_BIG)
		return "552 5.3.4 Error: message exceeds the size limit";
	if (v & (BODY_BARE_LF | BODY_BARE_CR))
		return "550 5.5.2 Error: bare <CR> or <LF> in message data; lines must end with "
		       "<CR><LF>";
	if (v & BODY_NUL)
		return "554 5.6.0 Error: message data contains NUL characters";
	if (v & BODY_LINE_TOO_LONG)
		return "500 5.5.2 Error: message line too long";
	return "554 5.6.0 Error: 8-bit message data requires BODY=8BITMIME";
}

/* Gives the signer and the checks the content they have not seen yet: the body buffer from auth_fed
 * on. */
static void
message_auth_feed(struct transaction *t)
{
	size_t len = evbuffer_get_length(t->body);

	if (t->sign == NULL && t->verify == NULL)
		return;
	while (t->auth_fed < len) {
		struct evbuffer_iovec v[16];
		struct evbuffer_ptr pos;
		int n;

		if (evbuffer_ptr_set(t->body, &pos, t->auth_fed, EVBUFFER_PTR_SET) < 0)
			break;
		n = evbuffer_peek(t->body, -1, &pos, v, nitems(v));
		if (n > (int)nitems(v))
			n = nitems(v);
		for (int i = 0; i < n; i++) {
			if (t->sign != NULL)
				dkim_signing_update(t->sign, v[i].iov_base, v[i].iov_len);
			if (t->verify != NULL)
				auth_verify_update(t->verify, v[i].iov_base, v[i].iov_len);
			t->auth_fed += v[i].iov_len;
		}
	}
}

/* An authenticated user limited to some sender domains may use them in the header From too,
 * not only in MAIL FROM: checked once, on the header section at the start of the body (before
 * its first chunk leaves for the spool). */
static void
message_check_header_from(struct session *s)
{
	struct transaction *t = &s->txn;
	size_t len = evbuffer_get_length(t->body) - t->header_len;
	char domain[DNS_NAME_MAX + 1];
	struct evbuffer_ptr pos;
	char *head;

	if (t->from_checked || s->auth_user == NULL)
		return;
	t->from_checked = true;
	if (len > DKIM_HEADERS_MAX)
		len = DKIM_HEADERS_MAX;
	head = xmalloc(len + 1);
	evbuffer_ptr_set(t->body, &pos, t->header_len, EVBUFFER_PTR_SET);
	evbuffer_copyout_from(t->body, &pos, head, len);
	head[len] = '\0';
	if (dmarc_from_domain(head, len, domain, NULL, 0) != 0) {
		if (!auth_may_send_from(s, NULL))
			t->from_refusal =
			    "553 5.7.1 Error: the message needs one From address in one domain";
	} else if (!auth_may_send_from(s, domain))
		t->from_refusal = "553 5.7.1 Error: header From address not owned by the user";
	free(head);
}

/* The message is refused at the end of its data (or of a BDAT chunk): counted, logged as a
 * Rejection, dropped with its transaction; the session goes on. */
static void
message_refuse(struct session *s, const char *reply)
{
	atomic_fetch_add(&s->worker->ingress->messages_rejected, 1);
	session_reject_event(s, s->txn.bdat_used ? "BDAT" : "DATA", NULL, reply);
	transaction_reset(s);
	s->state = S_READY;
	session_reply(s, "%s", reply);
}

/* Hands the durable message to whoever delivers it (the queue engine). */
static void
message_accepted(struct session *s)
{
	const struct ingress_hooks *hooks = s->worker->ingress->hooks;
	struct transaction *t = &s->txn;
	struct envelope env;

	if (hooks == NULL || hooks->accepted == NULL)
		return;
	env = (struct envelope){
	    .sender = t->sender,
	    .dsn_ret = (uint8_t)t->mail.ret,
	    .envid = t->mail.envid_given ? t->mail.envid : NULL,
	    .body_type = (uint8_t)t->mail.body,
	    .smtputf8 = t->mail.smtputf8,
	    .received_us = t->received_us,
	    .client_ip = s->peer_ip,
	    .helo = s->helo,
	    .listener = (char *)s->listener->name,
	    .protocol = (char *)message_protocol(s),
	    .size = t->size,
	    .nrcpt = t->nrcpt,
	    .rcpt = t->rcpt,
	};
	strlcpy_s(env.id, t->id, sizeof(env.id));
	classify_envelope(t, &env);
	hooks->accepted(hooks->arg, &env);
}

static void
message_commit_done(void *arg, enum spool_status status)
{
	struct session *s = arg;
	struct worker *w = s->worker;
	struct transaction *t = &s->txn;
	char reply[128];

	switch (status) {
	case SPOOL_OK:
		message_accepted(s);
		snprintf(reply, sizeof(reply), "250 2.0.0 Ok: queued as %s", t->id);
		atomic_fetch_add(&w->ingress->messages_accepted, 1);
		break;
	case SPOOL_FULL:
		snprintf(reply, sizeof(reply), "452 4.3.1 Error: insufficient system storage");
		break;
	default:
		snprintf(reply, sizeof(reply),
		         "451 4.3.0 Error: queue write error, try again later");
		break;
	}
	if (status == SPOOL_OK) {
		json_t *f = json_object(), *rcpts = json_array();
		for (size_t i = 0; i < t->nrcpt; i++)
			json_array_append_new(rcpts, json_string(t->rcpt[i].address));
		json_object_set_new(f, "id", json_string(t->id));
		json_object_set_new(f, "session", json_integer((json_int_t)s->id));
		json_object_set_new(f, "client_ip", json_string(s->peer_ip));
		json_object_set_new(f, "helo", json_string(s->helo));
		json_object_set_new(f, "listener", json_string(s->listener->name));
		json_object_set_new(f, "protocol", json_string(message_protocol(s)));
		json_object_set_new(f, "sender", json_string(t->sender));
		json_object_set_new(f, "recipients", rcpts);
		json_object_set_new(f, "size", json_integer((json_int_t)t->scan.size));
		if (t->auth_results != NULL)
			json_object_set_new(f, "authentication_results",
			                    json_string(t->auth_results));
		json_object_set_new(f, "reply", json_string(reply));
		classify_record(t, s->gen->routing, f);
		eventlog_write(w->ingress->log, "Reception", f);
	} else {
		log_error("session %llu: spool commit of %s failed: %s", (unsigned long long)s->id,
		          t->id, reply);
		atomic_fetch_add(&w->ingress->messages_rejected, 1);
		session_reject_event(s, t->bdat_used ? "BDAT" : "DATA", NULL, reply);
	}
	transaction_reset(s);
	if (!s->freed) {
		s->state = S_READY;
		session_reply(s, "%s", reply);
		if (w->stopping)
			session_shutdown(s);
		else
			session_resume(s);
	}
	session_unref(s);
	w->commits_pending--;
	worker_check_exit(w);
}

/* The message is judged and checked: sign it and make it durable, or defer it. */
static void
message_commit(struct session *s)
{
	struct transaction *t = &s->txn;
	struct spool_message *msg = t->msg;
	struct envelope env;
	char *fields = NULL, *headers, why[256];

	if (t->sign != NULL && dkim_signing_final(t->sign, &fields, why, sizeof(why)) < 0) {
		/* RFC 3463 4.3.5: system incorrectly configured; the client keeps the message
		 * and retries, which an unsigned message under DMARC p=reject would not need. */
		const char *reply = "451 4.3.5 Error: message cannot be DKIM-signed now, try again "
		                    "later";
		log_error("session %llu: message %s deferred: DKIM: %s", (unsigned long long)s->id,
		          spool_message_id(msg), why);
		message_refuse(s, reply);
		return;
	}
	/* Newest on top: our signatures, then what we found checking the message. */
	if (fields != NULL && t->auth_results != NULL)
		headers = xasprintf("%s%s", fields, t->auth_results);
	else
		headers = fields != NULL ? fields : t->auth_results;
	t->received_us = time_now_us();
	env = (struct envelope){
	    .sender = t->sender,
	    .dsn_ret = (uint8_t)t->mail.ret,
	    .envid = t->mail.envid_given ? t->mail.envid : NULL,
	    .body_type = (uint8_t)t->mail.body,
	    .smtputf8 = t->mail.smtputf8,
	    .received_us = t->received_us,
	    .client_ip = s->peer_ip,
	    .helo = s->helo,
	    .listener = s->listener->name,
	    .protocol = (char *)message_protocol(s),
	    .nrcpt = t->nrcpt,
	    .rcpt = t->rcpt,
	    .headers = headers,
	};
	strlcpy_s(t->id, spool_message_id(msg), sizeof(t->id));
	classify_envelope(t, &env);
	/* The spool owns the message from here and always calls back, even if the client
	 * leaves meanwhile: the session stays alive for that callback. */
	t->msg = NULL;
	/* Input that arrives meanwhile stays buffered (bounded by the read watermark) and is
	 * run after the reply: reading is not switched off, which would cost two epoll_ctl
	 * calls per message. */
	s->state = S_COMMIT;
	session_ref(s);
	s->worker->commits_pending++;
	spool_message_commit(msg, &env, t->body, message_commit_done, s);
	t->size = env.size; /* set by the spool at the call */
	if (headers != fields && headers != t->auth_results)
		free(headers);
	free(fields);
}

/* The checks are done (now, or later from the loop): commit. */
static void
message_verified(void *arg, char *field)
{
	struct session *s = arg;
	struct transaction *t = &s->txn;
	bool later = !t->verify_now;

	t->auth_results = field;
	auth_verify_free(t->verify);
	t->verify = NULL;
	message_commit(s);
	/* Called back from the loop, not from inside session_process(): if the message was
	 * refused rather than committed, the reply must go out and input be read again. */
	if (later && s->state != S_COMMIT)
		session_resume(s);
}

/* End of the message's data: judge it, check it, then commit it or refuse it. */
static void
message_finish(struct session *s)
{
	struct transaction *t = &s->txn;
	const char *refusal;

	if (t->scan.violations != 0) {
		const char *reply = message_violation_reply(t->scan.violations);
		message_refuse(s, reply);
		return;
	}
	if (t->report != NULL) {
		reports_finish(s);
		return;
	}
	if ((refusal = classify_finish(s)) != NULL) { /* classify.c */
		message_refuse(s, refusal);
		return;
	}
	if (t->nrcpt == 0) {
		/* Every recipient was suppressed and dropped: the client hears it went well. */
		transaction_reset(s);
		s->state = S_READY;
		session_reply(s, "250 2.0.0 Ok: dropped (every recipient is suppressed)");
		return;
	}
	message_auth_feed(t);
	message_check_header_from(s);
	if (t->from_refusal != NULL) {
		message_refuse(s, t->from_refusal);
		return;
	}
	if (t->verify != NULL) {
		s->state = S_VERIFY;
		t->verify_now = true;
		auth_verify_finish(t->verify, message_verified, s);
		if (s->state == S_VERIFY)
			t->verify_now = false;
		return;
	}
	message_commit(s);
}

static void
message_chunk_done(void *arg, enum spool_status status)
{
	struct session *s = arg;

	/* A failure is reported again by the commit; nothing to say to the client yet. */
	s->txn.chunk_in_flight = false;
	session_resume(s);
}

/* Scans up to limit octets of input (all of it when limit is SIZE_MAX) into the body. */
static size_t
message_scan(struct session *s, struct evbuffer *in, size_t limit, int *done)
{
	struct transaction *t = &s->txn;
	struct evbuffer_iovec v[16];
	size_t used = 0;
	int n;

	*done = 0;
	n = evbuffer_peek(in, limit == SIZE_MAX ? -1 : (ev_ssize_t)limit, NULL, v, nitems(v));
	if (n > (int)nitems(v))
		n = nitems(v);
	for (int i = 0; i < n && used < limit && !*done; i++) {
		size_t len = v[i].iov_len;
		if (len > limit - used)
			len = limit - used;
		if (t->bdat_refusal != NULL) {
			used += len; /* a refused chunk is read, not kept */
			continue;
		}
		used += body_scanner_feed(&t->scan, v[i].iov_base, len, t->body, done);
	}
	evbuffer_drain(in, used);
	if (t->report != NULL) /* the bounce listener keeps it in memory, bounded */
		reports_keep(s);
	return used;
}

static void
message_bdat_done(struct session *s)
{
	struct transaction *t = &s->txn;

	if (t->bdat_refusal != NULL) {
		const char *reply = t->bdat_refusal;
		s->state = t->bdat_return;
		t->bdat_refusal = NULL;
		session_reject_event(s, "BDAT", NULL, reply);
		session_error(s, "%s", reply);
		return;
	}
	if (t->bdat_last) {
		message_finish(s);
		return;
	}
	if (t->scan.violations & BODY_TOO_BIG) {
		/* RFC 3030 §4.2: say so now; the sender must not send more chunks. */
		const char *reply = message_violation_reply(BODY_TOO_BIG);
		message_refuse(s, reply);
		return;
	}
	s->state = S_RCPT;
	session_reply(s, "250 2.0.0 %llu octets received", (unsigned long long)t->bdat_size);
}

bool
message_feed(struct session *s, struct evbuffer *in)
{
	struct transaction *t = &s->txn;
	int done = 0;

	if (s->state == S_BDAT) {
		if (t->bdat_left > 0 && in != NULL) {
			size_t avail = evbuffer_get_length(in);
			size_t want = t->bdat_left < avail ? (size_t)t->bdat_left : avail;
			t->bdat_left -= message_scan(s, in, want, &done);
		}
		if (t->bdat_left == 0) {
			message_bdat_done(s);
			return true;
		}
	} else {
		if (evbuffer_get_length(in) == 0)
			return false;
		message_scan(s, in, SIZE_MAX, &done);
		if (done) {
			message_finish(s);
			return true;
		}
	}
	/* Hand a full chunk to the spool and wait for it before reading more. */
	if (t->body != NULL && t->scan.violations == 0 &&
	    evbuffer_get_length(t->body) >= SPOOL_CHUNK_SIZE && classify_header(s, false)) {
		t->chunk_in_flight = true;
		session_read_pause(s);
		message_auth_feed(t);
		message_check_header_from(s);
		spool_message_write(t->msg, t->body, message_chunk_done, s);
		t->auth_fed = evbuffer_get_length(t->body); /* what is left was seen */
		return false;
	}
	return evbuffer_get_length(in) > 0;
}
