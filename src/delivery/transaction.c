/* transaction.c - one message on an established session: the checks against what EHLO
 * announced, MAIL / RCPT / DATA (or BDAT) with their ESMTP parameters, what each reply
 * decides for which recipient, and the result.
 *
 * txn_pump() is the only place that writes the transaction's commands. With PIPELINING it
 * writes RSET (if needed), MAIL, every RCPT and DATA at once (RFC 2920 §3.1: DATA is the last
 * command of a group); without, one command per reply. Replies are matched in order by
 * client.c and handed to txn_reply(), which records what they decide and pumps again. The
 * transaction ends when nothing is left to send or await.
 *
 * Who decides a recipient: a refused MAIL decides them all; a refused RCPT decides its own;
 * for the accepted ones, a refused DATA or the reply to the end of data. 2xx delivered,
 * 5xx bounced, anything else deferred.
 */
#include <string.h>

#include <event2/buffer.h>

#include "delivery/internal.h"

/* ---- Recording outcomes ---- */

/* Keeps a copy of a reply text for the results of this message. */
static const char *
txn_text(struct txn *t, const char *text)
{
	t->texts = xrealloc(t->texts, (t->ntexts + 1) * sizeof(*t->texts));
	t->texts[t->ntexts] = xstrdup(text);
	return t->texts[t->ntexts++];
}

static void
decide(struct txn *t, size_t i, enum delivery_status st, enum delivery_phase phase,
       const struct delivery_reply *reply)
{
	t->r[i].decided = true;
	t->res[i].status = st;
	t->res[i].phase = phase;
	t->res[i].reply = *reply;
}

/* The outcome a reply means for the recipients it decides. */
static enum delivery_status
status_of(int code, bool success_possible)
{
	switch (code / 100) {
	case 2:
		return success_possible ? DELIVERY_DELIVERED : DELIVERY_DEFERRED;
	case 5:
		return DELIVERY_BOUNCED;
	default:
		return DELIVERY_DEFERRED;
	}
}

/* A server reply as results keep it; a reply without enhanced status gets its class's, and
 * one that makes no sense where it came (3xx to RCPT) "4.5.0", as it is deferred. */
static struct delivery_reply
reply_of(struct txn *t, const struct smtp_reply *r, enum delivery_status st)
{
	struct delivery_reply d = {.code = r->code, .local = false};
	const char *status = smtp_reply_status(r);

	if (status[0] == '\0' || (st == DELIVERY_DEFERRED && status[0] != '4'))
		status = st == DELIVERY_DEFERRED ? "4.5.0" : status;
	strlcpy_s(d.status, status, sizeof(d.status));
	d.text = txn_text(t, r->text);
	return d;
}

static struct delivery_reply
local_reply(struct txn *t, int code, const char *status, const char *text)
{
	struct delivery_reply d = {.code = code, .local = true};

	strlcpy_s(d.status, status, sizeof(d.status));
	d.text = txn_text(t, text);
	return d;
}

/* Decides every undecided recipient that this reply concerns: all of them, or only those
 * whose RCPT was accepted. */
static void
decide_by_reply(struct txn *t, const struct smtp_reply *r, enum delivery_phase phase,
                bool accepted_only, bool success_possible)
{
	enum delivery_status st = status_of(r->code, success_possible);
	struct delivery_reply d;
	bool any = false;

	for (size_t i = 0; i < t->msg->nrcpt; i++)
		any |= !t->r[i].decided && (!accepted_only || t->r[i].accepted);
	if (!any)
		return;
	d = reply_of(t, r, st);
	for (size_t i = 0; i < t->msg->nrcpt; i++)
		if (!t->r[i].decided && (!accepted_only || t->r[i].accepted))
			decide(t, i, st, phase, &d);
}

void
txn_decide_rest(struct delivery_client *c, enum delivery_phase phase, enum delivery_status st,
                const struct delivery_reply *reply)
{
	struct txn *t = &c->txn;
	struct delivery_reply d = *reply;

	d.text = txn_text(t, reply->text != NULL ? reply->text : "");
	for (size_t i = 0; i < t->msg->nrcpt; i++)
		if (!t->r[i].decided)
			decide(t, i, st, phase, &d);
}

static void
decide_all_local(struct txn *t, enum delivery_status st, enum delivery_phase phase, int code,
                 const char *status, const char *text)
{
	struct delivery_reply d = local_reply(t, code, status, text);

	for (size_t i = 0; i < t->msg->nrcpt; i++)
		if (!t->r[i].decided)
			decide(t, i, st, phase, &d);
}

/* ---- Start ---- */

void
txn_init(struct delivery_client *c, const struct delivery_message *m)
{
	struct txn *t = &c->txn;

	memset(t, 0, sizeof(*t));
	t->msg = m;
	t->res = xcalloc(m->nrcpt, sizeof(*t->res));
	t->r = xcalloc(m->nrcpt, sizeof(*t->r));
	for (size_t i = 0; i < m->nrcpt; i++)
		t->res[i].rcpt = m->rcpt[i];
	c->in_txn = true;
}

/* A string we put on a command line: no control octets (CR LF would inject a command), and
 * bounded. The spool validated it at reception; this guards against a damaged envelope. */
static bool
wire_safe(const char *s, size_t max)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max)
			return false;
	return true;
}

/* What the message needs that the server did not announce: decided here, before MAIL, with
 * the RFC 3463 status a bounce report names. */
static void
txn_check(struct delivery_client *c)
{
	struct txn *t = &c->txn;
	const struct envelope *env = t->msg->env;
	uint64_t size = evbuffer_get_length(t->msg->body);
	char text[512];

	for (size_t i = 0; i < t->msg->nrcpt; i++) {
		size_t k = t->msg->rcpt[i];
		struct delivery_reply d;

		if (k >= env->nrcpt) {
			d = local_reply(t, 451, "4.3.0", "internal error: no such recipient");
			decide(t, i, DELIVERY_DEFERRED, DELIVERY_PHASE_RCPT, &d);
		} else if (!wire_safe(env->rcpt[k].address, SMTP_PATH_MAX * 4) ||
		           (env->rcpt[k].orcpt != NULL &&
		            !wire_safe(env->rcpt[k].orcpt, SMTP_ORCPT_MAX))) {
			d = local_reply(t, 553, "5.1.3",
			                "recipient address unusable on a command line");
			decide(t, i, DELIVERY_BOUNCED, DELIVERY_PHASE_RCPT, &d);
		}
	}
	if (!wire_safe(t->msg->return_path != NULL ? t->msg->return_path : env->sender,
	               SMTP_PATH_MAX * 4) ||
	    (env->envid != NULL && !wire_safe(env->envid, SMTP_ENVID_MAX * 3))) {
		decide_all_local(t, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 553, "5.1.7",
		                 "sender address unusable on a command line");
		return;
	}
	if (env->smtputf8 && !c->ehlo.smtputf8) {
		/* RFC 6531 §3.2: no downgrade exists for UTF-8 addresses; bounce. */
		snprintf(text, sizeof(text),
		         "SMTPUTF8 is required, but was not offered by host %s[%s]",
		         c->targets[c->cur].host, c->targets[c->cur].ip);
		decide_all_local(t, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 550, "5.6.7", text);
		return;
	}
	if (env->body_type == SMTP_BODY_BINARYMIME && !(c->ehlo.binarymime && c->ehlo.chunking)) {
		/* RFC 3030 §3: binary content cannot go over DATA, and we do not convert. */
		snprintf(text, sizeof(text),
		         "BINARYMIME content, but host %s[%s] does not offer BINARYMIME and "
		         "CHUNKING",
		         c->targets[c->cur].host, c->targets[c->cur].ip);
		decide_all_local(t, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 554, "5.6.3", text);
		return;
	}
	if (c->ehlo.size_max > 0 && size > c->ehlo.size_max) {
		/* RFC 1870 §6: a fixed limit announced is a permanent refusal, no use trying. */
		snprintf(text, sizeof(text),
		         "message size %llu exceeds size limit %llu of server %s[%s]",
		         (unsigned long long)size, (unsigned long long)c->ehlo.size_max,
		         c->targets[c->cur].host, c->targets[c->cur].ip);
		decide_all_local(t, DELIVERY_BOUNCED, DELIVERY_PHASE_MAIL, 552, "5.3.4", text);
		return;
	}
}

static bool
all_decided(const struct txn *t)
{
	for (size_t i = 0; i < t->msg->nrcpt; i++)
		if (!t->r[i].decided)
			return false;
	return true;
}

static void
txn_finish(struct delivery_client *c)
{
	if (txn_report(c))
		client_continue(c);
}

void
txn_start(struct delivery_client *c, const struct delivery_message *m)
{
	struct txn *t = &c->txn;

	txn_init(c, m);
	c->messages++;
	t->reused = c->messages > 1;
	c->state = C_TXN;
	txn_check(c);
	if (all_decided(t)) {
		txn_finish(c);
		return;
	}
	t->use_bdat = m->env->body_type == SMTP_BODY_BINARYMIME;
	t->need_rset = c->txn_open;
	txn_pump(c);
}

/* ---- Commands ---- */

static void
send_mail(struct delivery_client *c)
{
	struct txn *t = &c->txn;
	const struct envelope *env = t->msg->env;
	struct evbuffer *out = client_output(c);

	evbuffer_add_printf(out, "MAIL FROM:<%s>",
	                    t->msg->return_path != NULL ? t->msg->return_path : env->sender);
	if (c->ehlo.size) /* RFC 1870: the content's size, before stuffing */
		evbuffer_add_printf(out, " SIZE=%zu", evbuffer_get_length(t->msg->body));
	/* Without 8BITMIME an 8-bit message goes as is (see delivery.h). */
	if (env->body_type == SMTP_BODY_8BITMIME && c->ehlo.eightbitmime)
		evbuffer_add_printf(out, " BODY=8BITMIME");
	else if (env->body_type == SMTP_BODY_BINARYMIME)
		evbuffer_add_printf(out, " BODY=BINARYMIME");
	if (env->smtputf8)
		evbuffer_add_printf(out, " SMTPUTF8");
	if (c->ehlo.dsn) { /* RFC 3461: only to a server that carries them on */
		if (env->dsn_ret == SMTP_DSN_RET_FULL)
			evbuffer_add_printf(out, " RET=FULL");
		else if (env->dsn_ret == SMTP_DSN_RET_HDRS)
			evbuffer_add_printf(out, " RET=HDRS");
		if (env->envid != NULL)
			evbuffer_add_printf(out, " ENVID=%s", env->envid);
	}
	evbuffer_add(out, "\r\n", 2);
	client_pend(c, CMD_MAIL, 0, false);
	t->sent_mail = true;
}

static void
send_rcpt(struct delivery_client *c, size_t i)
{
	const struct envelope_rcpt *rc = &c->txn.msg->env->rcpt[c->txn.msg->rcpt[i]];
	struct evbuffer *out = client_output(c);

	evbuffer_add_printf(out, "RCPT TO:<%s>", rc->address);
	if (c->ehlo.dsn) {
		if (rc->notify & SMTP_NOTIFY_NEVER) {
			evbuffer_add_printf(out, " NOTIFY=NEVER");
		} else if (rc->notify != 0) {
			static const struct {
				unsigned bit;
				const char *name;
			} kinds[] = {{SMTP_NOTIFY_SUCCESS, "SUCCESS"},
			             {SMTP_NOTIFY_FAILURE, "FAILURE"},
			             {SMTP_NOTIFY_DELAY, "DELAY"}};
			const char *sep = " NOTIFY=";

			for (size_t k = 0; k < nitems(kinds); k++) {
				if (rc->notify & kinds[k].bit) {
					evbuffer_add_printf(out, "%s%s", sep, kinds[k].name);
					sep = ",";
				}
			}
		}
		if (rc->orcpt != NULL)
			evbuffer_add_printf(out, " ORCPT=%s", rc->orcpt);
	}
	evbuffer_add(out, "\r\n", 2);
	client_pend(c, CMD_RCPT, i, false);
}

void
txn_pump(struct delivery_client *c)
{
	struct txn *t = &c->txn;
	bool pipelining = c->ehlo.pipelining;
	size_t awaited = c->npend;

	while (c->state == C_TXN) {
		if (!pipelining && c->npend > 0)
			break;
		if (t->need_rset && !t->sent_rset) {
			client_send_line(c, CMD_RSET, 0, "RSET");
			t->sent_rset = true;
			continue;
		}
		if (!t->sent_mail) {
			send_mail(c);
			continue;
		}
		if (t->mail_failed)
			break;
		if (t->sent_rcpt < t->msg->nrcpt) {
			size_t i = t->sent_rcpt++;

			if (!t->r[i].decided) { /* not refused locally */
				send_rcpt(c, i);
				t->nrcpt_sent++;
			}
			continue;
		}
		if (!t->sent_data) {
			/* DATA ends a pipelined group (RFC 2920 §3.1); BDAT carries the content
			 * at once, so it waits for the RCPT replies like lock-step DATA. */
			bool wait = !pipelining || t->use_bdat;

			if (t->nrcpt_sent == 0 || (wait && (c->npend > 0 || t->accepted == 0)))
				break;
			t->sent_data = true;
			if (t->use_bdat) {
				evbuffer_add_printf(client_output(c), "BDAT %zu LAST\r\n",
				                    evbuffer_get_length(t->msg->body));
				client_pend(c, CMD_BDAT, 0, false);
				content_encoder_init(&t->enc, true);
				client_content_start(c);
				break;
			}
			client_send_line(c, CMD_DATA, 0, "DATA");
			continue;
		}
		break;
	}
	if (awaited == 0 && c->npend > 0)
		client_arm_reply_timer(c);
	if (c->npend == 0 && c->state == C_TXN)
		txn_finish(c);
}

/* ---- Replies ---- */

void
txn_reply(struct delivery_client *c, const struct pending *p, const struct smtp_reply *r)
{
	struct txn *t = &c->txn;
	int cls = r->code / 100;

	switch (p->cmd) {
	case CMD_RSET:
		if (cls != 2) {
			/* The server cannot start over: nothing more can go on this connection. */
			client_fail_reply(c, DELIVERY_PHASE_RSET, r);
			return;
		}
		c->txn_open = false;
		break;
	case CMD_MAIL:
		if (cls == 2) {
			c->txn_open = true;
		} else {
			t->mail_failed = true;
			decide_by_reply(t, r, DELIVERY_PHASE_MAIL, false, false);
		}
		break;
	case CMD_RCPT:
		/* After a refused MAIL, the server's "503 need MAIL" decides nothing. */
		if (t->mail_failed || t->r[p->rcpt].decided)
			break;
		if (cls == 2) {
			t->r[p->rcpt].accepted = true;
			t->accepted++;
		} else {
			struct delivery_reply d = reply_of(t, r, status_of(r->code, false));

			decide(t, p->rcpt, status_of(r->code, false), DELIVERY_PHASE_RCPT, &d);
		}
		break;
	case CMD_DATA:
		if (r->code == 354) {
			if (!t->mail_failed && t->accepted > 0) {
				content_encoder_init(&t->enc, false);
				client_pend(c, CMD_DOT, 0, false);
				client_content_start(c);
				return;
			}
			/* RFC 2920 §3.1: a server that invites content with no recipient
			 * accepted gets an empty message, whose reply decides nothing. */
			evbuffer_add(client_output(c), ".\r\n", 3);
			client_pend(c, CMD_DOT, 0, true);
			client_arm_reply_timer(c);
			return;
		}
		if (cls == 2) /* 250 to DATA: no content was sent, the server's state is unknown */
			c->broken = true;
		if (!t->mail_failed)
			decide_by_reply(t, r, DELIVERY_PHASE_DATA, true, false);
		break;
	case CMD_DOT:
	case CMD_BDAT:
		/* A reply before all the content was written: the rest would be read as
		 * commands, so this connection carries nothing more. */
		if (c->state == C_CONTENT || evbuffer_get_length(client_output(c)) > 0)
			c->broken = true;
		client_content_stop(c);
		c->state = C_TXN;
		c->txn_open = false;
		if (!p->discard)
			decide_by_reply(t, r, DELIVERY_PHASE_DOT, true, true);
		break;
	default:
		break;
	}
	txn_pump(c);
}

/* ---- The result ---- */

bool
txn_report(struct delivery_client *c)
{
	struct txn *t = &c->txn;
	const struct target *tg = c->tried > 0 && c->cur < c->ntargets ? &c->targets[c->cur] : NULL;
	struct delivery_result res;

	/* Every path decides every recipient; this only guards against a missed one. */
	if (!all_decided(t))
		decide_all_local(t, DELIVERY_DEFERRED, DELIVERY_PHASE_DOT, 451, "4.3.0",
		                 "internal error: no outcome for this recipient");
	res = (struct delivery_result){
	    .msg = t->msg,
	    .mx_host = tg != NULL ? tg->host : NULL,
	    .mx_addr = tg != NULL ? tg->ip : NULL,
	    .mx_port = tg != NULL ? tg->port : 0,
	    .reused = t->reused,
	    .nrcpt = t->msg->nrcpt,
	    .rcpt = t->res,
	    .tls = tls_result(c),
	    .source_errno = c->source_errno,
	};
	c->in_txn = false;
	if (c->cb.result != NULL)
		c->cb.result(c->arg, c, &res);
	for (size_t i = 0; i < t->ntexts; i++)
		free(t->texts[i]);
	free(t->texts);
	free(t->res);
	free(t->r);
	memset(t, 0, sizeof(*t));
	return !c->freed;
}
