/* inject.c - POST /api/v1/inject (docs/injection.md): a request's recipients become
 * messages, and the messages go through the server's own SMTP pipeline.
 *
 * The control thread speaks SMTP, on its event loop and never blocking it, to sessions of
 * the internal listener "api" (ingress_connect_internal: a socketpair to an SMTP thread). So
 * an injected message meets the same policies (relay, size, recipients, suppression,
 * classification), the same DKIM signing and the same durability as one from an SMTP client:
 * a recipient is reported "queued" only after the 250 that follows the spool's fsync.
 *
 * Recipients whose content comes out identical (the same values for the names the content
 * uses, and no display name of their own) share a message, up to smtp.max_recipients; the
 * others get one each. Up to INJECT_SESSIONS sessions work through the messages at once, so
 * that their commits meet in the spool's group commit. Each session pipelines MAIL and the
 * RCPTs, then sends the content with BDAT LAST once a recipient has been accepted (RSET if
 * none was: a refused BDAT would count as a client error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "conf/conf.h"
#include "control/inject.h"
#include "control/internal.h"
#include "core/core.h"
#include "ingress/ingress.h"

/* SMTP sessions per request: enough for their commits to share the spool's fsyncs (group
 * commit), few enough that one request leaves the SMTP threads to other clients too. */
#define INJECT_SESSIONS 8
/* Waiting for a reply: the spool may be slow under load, but a session that says nothing
 * this long is broken (RFC 5321 §4.5.3.2.6's 10 minutes for the reply to the data). */
#define INJECT_REPLY_TIMEOUT_S 600
/* What our client announces: the Received: field says "from [127.0.0.1]". */
#define INJECT_HELO "[127.0.0.1]"

enum result_status { R_PENDING, R_QUEUED, R_DROPPED, R_FAILED };

struct rcpt_result {
	enum result_status status;
	bool accepted; /* its RCPT got 2xx in the current transaction */
	int code;
	char *text; /* queued: the queue id; failed, dropped: the reply after the code */
};

/* Recipients that share a message. */
struct inject_msg {
	size_t *rcpt;
	size_t n;
};

enum conn_state { C_GREETING, C_EHLO, C_RCPT, C_BDAT, C_RSET, C_QUIT, C_CLOSED };

struct inject_conn {
	struct inject_job *job;
	struct bufferevent *bev;
	enum conn_state state;
	struct inject_msg *msg; /* in progress; NULL between messages */
	size_t replies;         /* to MAIL and RCPT, of this message */
	size_t accepted;        /* recipients accepted */
	int mail_code;          /* the reply to MAIL */
	char mail_text[INJECT_REPLY_MAX];
	struct inject_buf content; /* the message being sent */
};

struct inject_job {
	struct control *c;
	struct evhttp_request *req;
	struct inject_request r;
	struct rcpt_result *res;
	struct inject_msg *msgs;
	size_t nmsgs, next; /* messages; the next one to take */
	struct inject_conn conns[INJECT_SESSIONS];
	size_t nconns, open;
	char token[17]; /* random, per job: with a counter, each message's unique token */
	size_t built;
	int last_code; /* why the last session ended early */
	char last_text[INJECT_REPLY_MAX];
	bool stopping; /* a session was told "421 4.3.2": the server is shutting down */
	/* Inside a session's read callback, which the job must outlive: the last session's
	 * end then only marks the job done, and the callback finishes it on its way out. */
	bool reading, done;
	uint64_t started_us;
	struct inject_job *next_job, **prev_job; /* c->inject_jobs */
};

static void conn_next_message(struct inject_conn *);
static void job_conn_closed(struct inject_job *);
static void job_done(struct inject_job *);

static void
result_set(struct rcpt_result *res, enum result_status status, int code, const char *text)
{
	free(res->text);
	res->status = status;
	res->code = code;
	res->text = xstrdup(text);
}

/* Every recipient of a message still pending fails with this reply. */
static void
fail_pending(struct inject_job *job, const struct inject_msg *m, int code, const char *text)
{
	for (size_t i = 0; i < m->n; i++) {
		struct rcpt_result *res = &job->res[m->rcpt[i]];

		if (res->status == R_PENDING)
			result_set(res, R_FAILED, code, text);
	}
}

static void
conn_write(struct inject_conn *cn, const char *text)
{
	bufferevent_write(cn->bev, text, strlen(text));
}

/* The session ends: what it had in hand fails with why (unless it was quitting anyway). */
static void
conn_close(struct inject_conn *cn, int code, const char *why)
{
	struct inject_job *job = cn->job;

	if (cn->state == C_CLOSED)
		return;
	if (cn->msg != NULL) {
		/* After BDAT the message may be in the spool: the client learns it was not
		 * confirmed, as an SMTP client would (and may send it again). */
		fail_pending(job, cn->msg, code,
		             cn->state == C_BDAT && code == 451
		                 ? "4.4.2 Error: the SMTP session ended before the reply to the "
		                   "data; the message may have been queued"
		                 : why);
		cn->msg = NULL;
	}
	if (cn->state != C_QUIT) {
		job->last_code = code;
		strlcpy_s(job->last_text, why, sizeof(job->last_text));
	}
	cn->state = C_CLOSED;
	bufferevent_free(cn->bev);
	cn->bev = NULL;
	inject_buf_free(&cn->content);
	job_conn_closed(job);
}

/* ---- One message on a session ---- */

static bool
eight_bit(const struct inject_buf *b)
{
	for (size_t i = 0; i < b->len; i++)
		if ((unsigned char)b->p[i] >= 0x80)
			return true;
	return false;
}

/* Builds the message and sends MAIL and its RCPTs, pipelined (RFC 2920). false if it could
 * not be built (its recipients have failed). */
static bool
conn_send_message(struct inject_conn *cn, struct inject_msg *m)
{
	struct inject_job *job = cn->job;
	const struct inject_request *r = &job->r;
	char unique[64], err[256];
	struct inject_build_opts o = {
	    .hostname = job->c->cfg->hostname,
	    .now_us = time_now_us(),
	    .unique = unique,
	};
	struct evbuffer *out = bufferevent_get_output(cn->bev);
	bool utf8 = r->sender_utf8;

	snprintf(unique, sizeof(unique), "%llx.%s.%zu", (unsigned long long)(o.now_us / USEC),
	         job->token, job->built++);
	if (inject_build(r, m->rcpt, m->n, &o, &cn->content, err, sizeof(err)) < 0) {
		fail_pending(job, m, 554, err); /* checked at parse: not expected */
		return false;
	}
	for (size_t i = 0; i < m->n; i++)
		utf8 |= r->rcpt[m->rcpt[i]].utf8;
	evbuffer_add_printf(out, "MAIL FROM:<%s> SIZE=%zu%s%s\r\n", r->sender, cn->content.len,
	                    eight_bit(&cn->content) ? " BODY=8BITMIME" : "",
	                    utf8 ? " SMTPUTF8" : "");
	for (size_t i = 0; i < m->n; i++)
		evbuffer_add_printf(out, "RCPT TO:<%s>\r\n", r->rcpt[m->rcpt[i]].email);
	cn->msg = m;
	cn->replies = 0;
	cn->accepted = 0;
	cn->state = C_RCPT;
	return true;
}

static void
conn_next_message(struct inject_conn *cn)
{
	struct inject_job *job = cn->job;

	cn->msg = NULL;
	while (job->next < job->nmsgs)
		if (conn_send_message(cn, &job->msgs[job->next++]))
			return;
	conn_write(cn, "QUIT\r\n");
	cn->state = C_QUIT;
}

/* A reply to MAIL (the first) or to a RCPT. */
static void
conn_rcpt_reply(struct inject_conn *cn, int code, const char *text)
{
	struct inject_job *job = cn->job;
	struct inject_msg *m = cn->msg;
	char head[32];

	if (cn->replies++ == 0) {
		cn->mail_code = code;
		strlcpy_s(cn->mail_text, text, sizeof(cn->mail_text));
		return;
	}
	{
		struct rcpt_result *res = &job->res[m->rcpt[cn->replies - 2]];

		/* A refused MAIL makes every RCPT a "503 need MAIL": the MAIL reply says why. */
		if (cn->mail_code / 100 != 2)
			result_set(res, R_FAILED, cn->mail_code, cn->mail_text);
		else if (code / 100 == 2) {
			res->accepted = true;
			cn->accepted++;
		} else
			result_set(res, R_FAILED, code, text);
	}
	if (cn->replies < m->n + 1)
		return;
	if (cn->mail_code / 100 != 2) {
		conn_next_message(cn);
	} else if (cn->accepted == 0) {
		conn_write(cn, "RSET\r\n");
		cn->state = C_RSET;
	} else {
		snprintf(head, sizeof(head), "BDAT %zu LAST\r\n", cn->content.len);
		conn_write(cn, head);
		bufferevent_write(cn->bev, cn->content.p, cn->content.len);
		cn->state = C_BDAT;
	}
}

/* The reply to the data: the message is durable (250 "queued as ID") or refused. */
static void
conn_data_reply(struct inject_conn *cn, int code, const char *text)
{
	struct inject_job *job = cn->job;
	const struct inject_msg *m = cn->msg;
	const char *id = strstr(text, "queued as ");
	char qid[64];

	if (id != NULL) {
		size_t n = strcspn(id + 10, " ");

		snprintf(qid, sizeof(qid), "%.*s", (int)(n < 63 ? n : 63), id + 10);
	}
	for (size_t i = 0; i < m->n; i++) {
		struct rcpt_result *res = &job->res[m->rcpt[i]];

		if (!res->accepted || res->status != R_PENDING)
			continue;
		if (code / 100 == 2 && id != NULL)
			result_set(res, R_QUEUED, code, qid);
		else if (code / 100 == 2) /* "dropped (every recipient is suppressed)" */
			result_set(res, R_DROPPED, code, text);
		else
			result_set(res, R_FAILED, code, text);
	}
	inject_buf_free(&cn->content);
	conn_next_message(cn);
}

/* A final reply line: "NNN text". */
static void
conn_reply(struct inject_conn *cn, int code, const char *text)
{
	switch (cn->state) {
	case C_GREETING:
		if (code != 220)
			break;
		conn_write(cn, "EHLO " INJECT_HELO "\r\n");
		cn->state = C_EHLO;
		return;
	case C_EHLO:
		if (code != 250)
			break;
		conn_next_message(cn);
		return;
	case C_RCPT:
		conn_rcpt_reply(cn, code, text);
		return;
	case C_BDAT:
		conn_data_reply(cn, code, text);
		return;
	case C_RSET:
		if (code != 250)
			break;
		conn_next_message(cn);
		return;
	case C_QUIT:
	case C_CLOSED:
		break;
	}
	/* Unexpected here (a 421 at the greeting when the server stops, say): the session is
	 * of no further use. */
	if (code == 421 && strncmp(text, "4.3.2", 5) == 0)
		cn->job->stopping = true;
	conn_close(cn, code, text);
}

static void
conn_read_cb(struct bufferevent *bev, void *arg)
{
	struct inject_conn *cn = arg;
	struct inject_job *job = cn->job;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line;

	job->reading = true;
	while (cn->state != C_CLOSED &&
	       (line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL) {
		bool ok = len >= 3 && line[0] >= '2' && line[0] <= '5' && line[1] >= '0' &&
		          line[1] <= '9' && line[2] >= '0' && line[2] <= '9' &&
		          (len == 3 || line[3] == ' ' || line[3] == '-');
		int code = ok ? atoi(line) : 451;

		if (!ok)
			conn_close(cn, 451, "4.5.0 Error: the SMTP session answered nonsense");
		else if (len == 3 || line[3] == ' ') /* "250-..." lines continue the reply */
			conn_reply(cn, code, len > 4 ? line + 4 : "");
		free(line);
	}
	job->reading = false;
	if (job->done)
		job_done(job);
}

static void
conn_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct inject_conn *cn = arg;

	if (what & BEV_EVENT_TIMEOUT)
		conn_close(cn, 451, "4.4.2 Error: timeout waiting for the SMTP pipeline");
	else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		conn_close(cn, 451, "4.4.2 Error: the SMTP session ended");
}

/* ---- The job ---- */

static void
job_free(struct inject_job *job)
{
	for (size_t i = 0; i < job->nconns; i++) {
		if (job->conns[i].bev != NULL)
			bufferevent_free(job->conns[i].bev);
		inject_buf_free(&job->conns[i].content);
	}
	for (size_t i = 0; i < job->r.nrcpt; i++)
		free(job->res[i].text);
	for (size_t i = 0; i < job->nmsgs; i++)
		free(job->msgs[i].rcpt);
	free(job->msgs);
	free(job->res);
	inject_request_free(&job->r);
	if (job->prev_job != NULL) {
		*job->prev_job = job->next_job;
		if (job->next_job != NULL)
			job->next_job->prev_job = job->prev_job;
	}
	free(job);
}

static json_t *
job_results(struct inject_job *job, size_t *queued, size_t *failed)
{
	json_t *results = json_array();

	*queued = *failed = 0;
	for (size_t i = 0; i < job->r.nrcpt; i++) {
		const struct rcpt_result *res = &job->res[i];
		json_t *o = json_pack("{s:s}", "recipient", job->r.rcpt[i].email);

		switch (res->status) {
		case R_QUEUED:
			json_object_set_new(o, "status", json_string("queued"));
			json_object_set_new(o, "id", json_string(res->text));
			++*queued;
			break;
		case R_DROPPED:
			json_object_set_new(o, "status", json_string("dropped"));
			json_object_set_new(o, "reply", json_string(res->text));
			++*queued;
			break;
		default: /* R_PENDING cannot be left, but would be a failure */
			json_object_set_new(o, "status", json_string("failed"));
			json_object_set_new(o, "code", json_integer(res->code ? res->code : 451));
			json_object_set_new(o, "reply", json_string(res->text ? res->text : ""));
			++*failed;
			break;
		}
		json_array_append_new(results, o);
	}
	return results;
}

static void
job_finish(struct inject_job *job)
{
	size_t queued, failed;
	json_t *results = job_results(job, &queued, &failed);
	double ms = (double)(time_mono_us() - job->started_us) / 1000.0;

	log_info("inject: %zu recipients in %zu messages: %zu queued, %zu failed (%.0f ms)",
	         job->r.nrcpt, job->nmsgs, queued, failed, ms);
	if (queued == 0 && job->stopping) {
		json_decref(results);
		control_reply_error(job->req, 503, "Service Unavailable", "the server is stopping");
	} else {
		control_reply_json(job->req, 200, "OK",
		                   json_pack("{s:I,s:I,s:o}", "success_count", (json_int_t)queued,
		                             "failure_count", (json_int_t)failed, "results",
		                             results));
	}
	job_free(job);
}

/* The last session is gone (or none could be made). */
static void
job_done(struct inject_job *job)
{
	if (job->reading) {
		job->done = true;
		return;
	}
	/* The last session is gone: what nobody took fails with the last reason heard. */
	for (; job->next < job->nmsgs; job->next++)
		fail_pending(job, &job->msgs[job->next], job->last_code ? job->last_code : 451,
		             job->last_text[0] ? job->last_text : "4.4.2 Error: no SMTP session");
	job_finish(job);
}

static void
job_conn_closed(struct inject_job *job)
{
	if (--job->open == 0)
		job_done(job);
}

/* Recipients into messages: those with the same key share one, up to max per message. */
static void
job_group(struct inject_job *job, unsigned max)
{
	json_t *names = inject_names(&job->r), *open = json_object();
	struct inject_buf key = {0};

	job->msgs = xcalloc(job->r.nrcpt, sizeof(*job->msgs));
	for (size_t i = 0; i < job->r.nrcpt; i++) {
		const struct inject_recipient *rc = &job->r.rcpt[i];
		struct inject_msg *m = NULL;
		json_t *at;

		if (rc->code != 0) { /* its address: refused as RCPT would */
			result_set(&job->res[i], R_FAILED, rc->code, rc->reply);
			continue;
		}
		inject_group_key(&job->r, names, i, &key);
		at = json_object_getn(open, key.p, key.len);
		if (at != NULL && job->msgs[json_integer_value(at)].n < max)
			m = &job->msgs[json_integer_value(at)];
		if (m == NULL) {
			m = &job->msgs[job->nmsgs];
			m->rcpt =
			    xcalloc(max < job->r.nrcpt ? max : job->r.nrcpt, sizeof(*m->rcpt));
			json_object_setn_new_nocheck(open, key.p, key.len,
			                             json_integer((json_int_t)job->nmsgs++));
		}
		m->rcpt[m->n++] = i;
	}
	inject_buf_free(&key);
	json_decref(open);
	json_decref(names);
}

static int
job_connect(struct inject_job *job, char *err, size_t errlen)
{
	size_t want = job->nmsgs < INJECT_SESSIONS ? job->nmsgs : INJECT_SESSIONS;
	struct timeval tv = {.tv_sec = INJECT_REPLY_TIMEOUT_S};

	for (size_t i = 0; i < want; i++) {
		struct inject_conn *cn = &job->conns[i];
		int fd = ingress_connect_internal(job->c->src.ingress, err, errlen);

		if (fd < 0)
			break;
		cn->job = job;
		cn->state = C_GREETING;
		cn->bev = bufferevent_socket_new(job->c->base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (cn->bev == NULL)
			fatal("inject: out of memory for a session");
		bufferevent_setcb(cn->bev, conn_read_cb, NULL, conn_event_cb, cn);
		bufferevent_set_timeouts(cn->bev, &tv, &tv);
		bufferevent_enable(cn->bev, EV_READ | EV_WRITE);
		job->nconns++;
		job->open++;
	}
	return job->nconns > 0 ? 0 : -1;
}

void
control_handle_inject(struct control *c, struct evhttp_request *req, const char *path)
{
	struct inject_job *job;
	json_t *body;
	char err[512];
	unsigned char rnd[8];

	if (c->src.ingress == NULL) {
		control_reply_error(req, 503, "Service Unavailable",
		                    "SMTP reception is not running");
		return;
	}
	if ((body = control_request_json(req)) == NULL)
		return;
	job = xcalloc(1, sizeof(*job));
	if (inject_request_parse(body, &job->r, err, sizeof(err)) < 0) {
		json_decref(body);
		free(job);
		control_reply_error(req, 400, "Bad Request", err);
		return;
	}
	json_decref(body);
	job->c = c;
	job->req = req;
	job->started_us = time_mono_us();
	job->res = xcalloc(job->r.nrcpt, sizeof(*job->res));
	if (getrandom(rnd, sizeof(rnd), GRND_NONBLOCK) != (ssize_t)sizeof(rnd))
		memcpy(rnd, &job->started_us, sizeof(rnd)); /* uniqueness, not secrecy */
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(job->token + 2 * i, 3, "%02x", rnd[i]);
	job->next_job = c->inject_jobs;
	if (job->next_job != NULL)
		job->next_job->prev_job = &job->next_job;
	job->prev_job = &c->inject_jobs;
	c->inject_jobs = job;
	job_group(job, c->cfg->smtp.max_recipients);
	if (job->nmsgs == 0) {
		job_finish(job); /* every address was refused */
		return;
	}
	if (job_connect(job, err, sizeof(err)) < 0) {
		log_error("inject: no SMTP session: %s", err);
		control_reply_error(req, 503, "Service Unavailable", "the server is stopping");
		job_free(job);
	}
}

void
control_inject_stop(struct control *c)
{
	/* The control thread has stopped: the requests are dropped with their connections (a
	 * message whose 250 was not seen is reported nowhere, as for an SMTP client cut off). */
	while (c->inject_jobs != NULL)
		job_free(c->inject_jobs);
}
