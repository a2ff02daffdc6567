/* commands.c - the SMTP command table and the commands that are not message data.
 *
 * Which command may run in which state is written once, in the table; a command out of
 * sequence gets its 503 from the table, never from the command itself. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "ingress/internal.h"
#include "suppress/suppress.h"

#define IN_SESSION (ST(S_CONNECTED) | ST(S_READY) | ST(S_MAIL) | ST(S_RCPT))
#define IN_TXN     (ST(S_MAIL) | ST(S_RCPT))

struct command {
	enum smtp_verb verb;
	unsigned allowed;     /* ST() bits */
	const char *sequence; /* the 503 text when not allowed (after EHLO/HELO) */
	void (*run)(struct session *, const struct smtp_command *);
};

static void cmd_ehlo(struct session *, const struct smtp_command *);
static void cmd_mail(struct session *, const struct smtp_command *);
static void cmd_rcpt(struct session *, const struct smtp_command *);
static void cmd_data(struct session *, const struct smtp_command *);
static void cmd_bdat(struct session *, const struct smtp_command *);
static void cmd_rset(struct session *, const struct smtp_command *);
static void cmd_noop(struct session *, const struct smtp_command *);
static void cmd_quit(struct session *, const struct smtp_command *);
static void cmd_vrfy(struct session *, const struct smtp_command *);
static void cmd_help(struct session *, const struct smtp_command *);
static void cmd_starttls(struct session *, const struct smtp_command *);
static bool rcpt_suppressed(struct session *, const char *address);
static void cmd_not_implemented(struct session *, const struct smtp_command *);

static const struct command commands[] = {
    {SMTP_EHLO, IN_SESSION, NULL, cmd_ehlo},
    {SMTP_HELO, IN_SESSION, NULL, cmd_ehlo},
    {SMTP_MAIL, ST(S_READY), "nested MAIL command", cmd_mail},
    {SMTP_RCPT, IN_TXN, "need MAIL command", cmd_rcpt},
    {SMTP_DATA, IN_TXN, "need MAIL command", cmd_data},
    /* BDAT runs in every state: its chunk must be read before it can be refused. */
    {SMTP_BDAT, IN_SESSION, NULL, cmd_bdat},
    {SMTP_RSET, IN_SESSION, NULL, cmd_rset},
    {SMTP_NOOP, IN_SESSION, NULL, cmd_noop},
    {SMTP_QUIT, IN_SESSION, NULL, cmd_quit},
    {SMTP_VRFY, IN_SESSION, NULL, cmd_vrfy},
    {SMTP_HELP, IN_SESSION, NULL, cmd_help},
    {SMTP_EXPN, IN_SESSION, NULL, cmd_not_implemented},
    {SMTP_STARTTLS, IN_SESSION, NULL, cmd_starttls},
    {SMTP_AUTH, IN_SESSION, NULL, cmd_auth},
};

/* Refuses a command with a reply that is logged; client errors also count towards
 * max_errors, refusals of policy (size, recipient count) do not. */
static void __attribute__((format(printf, 5, 6)))
refuse(struct session *s, const char *command, const char *rcpt, bool is_error, const char *fmt,
       ...)
{
	char reply[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reply, sizeof(reply), fmt, ap);
	va_end(ap);
	session_reject_event(s, command, rcpt, reply);
	if (is_error)
		session_error(s, "%s", reply);
	else
		session_reply(s, "%s", reply);
}

static void
refuse_parse(struct session *s, const char *command, const char *rcpt, const struct smtp_error *e)
{
	refuse(s, command, rcpt, true, "%d %s Error: %s", e->code, e->status, e->text);
}

void
command_dispatch(struct session *s, const char *line, size_t len)
{
	struct smtp_command cmd;
	struct smtp_error e;

	if (smtp_command_parse(line, len, &cmd, &e) < 0) {
		refuse_parse(s, cmd.verb == SMTP_UNKNOWN ? "UNKNOWN" : smtp_verb_name(cmd.verb),
		             NULL, &e);
		return;
	}
	for (size_t i = 0; i < nitems(commands); i++) {
		const struct command *c = &commands[i];

		if (c->verb != cmd.verb)
			continue;
		if (c->allowed & ST(s->state))
			c->run(s, &cmd);
		else if (s->state == S_CONNECTED)
			refuse(s, smtp_verb_name(cmd.verb), NULL, true,
			       "503 5.5.1 Error: send HELO/EHLO first");
		else
			refuse(s, smtp_verb_name(cmd.verb), NULL, true, "503 5.5.1 Error: %s",
			       c->sequence);
		return;
	}
	refuse(s, "UNKNOWN", NULL, true, "500 5.5.2 Error: command not recognized");
}

void
transaction_reset(struct session *s)
{
	struct transaction *t = &s->txn;

	for (size_t i = 0; i < t->nrcpt; i++) {
		free(t->rcpt[i].address);
		free(t->rcpt[i].orcpt);
	}
	free(t->rcpt);
	free(t->sender);
	if (t->msg != NULL)
		spool_message_abort(t->msg);
	if (t->body != NULL)
		evbuffer_free(t->body);
	if (t->report != NULL)
		evbuffer_free(t->report);
	dkim_signing_end(t->sign);
	auth_verify_free(t->verify);
	free(t->auth_results);
	memset(t, 0, sizeof(*t));
}

/* STARTTLS is offered in clear on a listener that allows it, when there is a certificate. */
static bool
session_offers_starttls(const struct session *s)
{
	return s->ssl == NULL && s->listener->starttls && s->gen->tls != NULL;
}

static void
cmd_starttls(struct session *s, const struct smtp_command *cmd)
{
	if (cmd->args[0] != '\0') {
		refuse(s, "STARTTLS", NULL, true, "501 5.5.4 Error: STARTTLS takes no parameters");
		return;
	}
	if (s->ssl != NULL) {
		refuse(s, "STARTTLS", NULL, true, "503 5.5.1 Error: TLS is already active");
		return;
	}
	if (!session_offers_starttls(s)) {
		refuse(s, "STARTTLS", NULL, true, "502 5.5.1 Error: STARTTLS is not offered here");
		return;
	}
	if (!s->esmtp) {
		refuse(s, "STARTTLS", NULL, true, "503 5.5.1 Error: send EHLO first");
		return;
	}
	if (s->state != S_READY) {
		refuse(s, "STARTTLS", NULL, true,
		       "503 5.5.1 Error: STARTTLS is not allowed in a mail transaction");
		return;
	}
	session_reply(s, "220 2.0.0 Ready to start TLS");
	session_starttls(s);
}

static void
cmd_ehlo(struct session *s, const struct smtp_command *cmd)
{
	const struct config *cfg = s->cfg;
	char name[SMTP_DOMAIN_MAX + 2];
	size_t len = strlen(cmd->args);

	/* Some clients end the line with a space; the name is what comes before it. */
	while (len > 0 && cmd->args[len - 1] == ' ')
		len--;
	if (len >= sizeof(name))
		len = sizeof(name) - 1; /* still too long for smtp_helo_valid: refused */
	memcpy(name, cmd->args, len);
	name[len] = '\0';
	if (!smtp_helo_valid(name)) {
		refuse(s, smtp_verb_name(cmd->verb), NULL, true,
		       "501 5.5.4 Error: %s requires a domain name or address literal",
		       smtp_verb_name(cmd->verb));
		return;
	}
	transaction_reset(s);
	free(s->helo);
	s->helo = xstrdup(name);
	s->state = S_READY;
	s->esmtp = cmd->verb == SMTP_EHLO;
	if (!s->esmtp) {
		session_reply(s, "250 %s Hello %s [%s]", cfg->hostname, s->helo, s->peer_ip);
		return;
	}
	session_reply(s, "250-%s Hello %s [%s]", cfg->hostname, s->helo, s->peer_ip);
	session_reply(s, "250-PIPELINING");
	if (session_offers_starttls(s))
		session_reply(s, "250-STARTTLS");
	if (auth_offered(s))
		session_reply(s, "250-AUTH PLAIN LOGIN");
	session_reply(s, "250-SIZE %llu", (unsigned long long)cfg->smtp.max_message_size);
	session_reply(s, "250-8BITMIME");
	session_reply(s, "250-SMTPUTF8");
	session_reply(s, "250-ENHANCEDSTATUSCODES");
	session_reply(s, "250-CHUNKING");
	session_reply(s, "250-DSN");
	session_reply(s, "250 HELP");
}

/* What this session offers: after HELO, no extension at all (RFC 1869). */
static struct smtp_offer
session_offer(const struct session *s)
{
	struct smtp_offer offer = {0};

	if (s->esmtp)
		offer = (struct smtp_offer){
		    .size = true, .eightbitmime = true, .smtputf8 = true, .dsn = true};
	return offer;
}

static void
cmd_mail(struct session *s, const struct smtp_command *cmd)
{
	struct smtp_offer offer = session_offer(s);
	struct smtp_mail_params mp;
	struct smtp_path path;
	struct smtp_error e;
	const char *params;

	/* Parse the path allowing UTF-8 first: whether it may contain any depends on the
	 * SMTPUTF8 parameter that follows it. */
	if (smtp_path_parse(cmd->args, true, true, true, &path, &params, &e) < 0) {
		refuse_parse(s, "MAIL", NULL, &e);
		return;
	}
	if (smtp_mail_params_parse(params, &offer, &mp, &e) < 0) {
		refuse_parse(s, "MAIL", path.mailbox, &e);
		return;
	}
	if (path.utf8 && !mp.smtputf8) {
		refuse(s, "MAIL", path.mailbox, true,
		       "553 5.6.7 Error: non-ASCII sender address requires SMTPUTF8");
		return;
	}
	if (mp.size_given && mp.size > s->cfg->smtp.max_message_size) {
		refuse(s, "MAIL", path.mailbox, false,
		       "552 5.3.4 Error: message size %llu exceeds the limit of %llu octets",
		       (unsigned long long)mp.size,
		       (unsigned long long)s->cfg->smtp.max_message_size);
		return;
	}
	if (s->listener->role != ROLE_MX && s->listener->role != ROLE_BOUNCE &&
	    s->auth_user == NULL) {
		refuse(s, "MAIL", path.mailbox, false, "530 5.7.0 Error: authentication required");
		return;
	}
	if (!path.null && s->auth_user != NULL &&
	    !auth_may_send_from(
	        s, strrchr(path.mailbox, '@') != NULL ? strrchr(path.mailbox, '@') + 1 : NULL)) {
		refuse(s, "MAIL", path.mailbox, false,
		       "553 5.7.1 Error: <%s>: sender address not owned by user %s", path.mailbox,
		       s->auth_user);
		return;
	}
	{
		char reply[256];

		if (auth_rate_check(s, reply, sizeof(reply)) < 0) {
			refuse(s, "MAIL", path.mailbox, false, "%s", reply);
			return;
		}
	}
	s->txn.sender = xstrdup(path.null ? "" : path.mailbox);
	s->txn.mail = mp;
	s->state = S_MAIL;
	session_reply(s, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct session *s, const struct smtp_command *cmd)
{
	struct smtp_offer offer = session_offer(s);
	struct transaction *t = &s->txn;
	struct smtp_rcpt_params rp;
	struct envelope_rcpt *r;
	struct smtp_path path;
	struct smtp_error e;
	const char *params;

	t->rcpt_attempts++;
	if (t->bdat_used) {
		refuse(s, "RCPT", NULL, true, "503 5.5.1 Error: RCPT cannot follow BDAT");
		return;
	}
	if (smtp_path_parse(cmd->args, false, false, t->mail.smtputf8, &path, &params, &e) < 0) {
		refuse_parse(s, "RCPT", NULL, &e);
		return;
	}
	/* Routing tricks that make a relay forward where it was not asked to. */
	if (path.source_route) {
		refuse(s, "RCPT", path.mailbox, true,
		       "553 5.7.1 <%s>: Error: source routes are not accepted", path.mailbox);
		return;
	}
	if (strpbrk(path.local, "%!") != NULL) {
		refuse(s, "RCPT", path.mailbox, true,
		       "553 5.7.1 <%s>: Error: %%-hack and !-path addresses are not accepted",
		       path.mailbox);
		return;
	}
	if (s->listener->role == ROLE_BOUNCE) {
		if (!reports_rcpt(s, &path)) /* the bounce domain only; tokens verified */
			return;
	} else if (!s->relay_allowed) {
		refuse(s, "RCPT", path.mailbox, true, "554 5.7.1 <%s>: Relay access denied",
		       path.mailbox);
		return;
	}
	if (smtp_rcpt_params_parse(params, &offer, &rp, &e) < 0) {
		refuse_parse(s, "RCPT", path.mailbox, &e);
		return;
	}
	if (t->nrcpt >= s->cfg->smtp.max_recipients) {
		refuse(s, "RCPT", path.mailbox, false, "452 4.5.3 Error: too many recipients");
		return;
	}
	if (rcpt_suppressed(s, path.mailbox))
		return;
	if (t->nrcpt == t->rcpt_alloc) {
		t->rcpt_alloc = t->rcpt_alloc ? t->rcpt_alloc * 2 : 4;
		t->rcpt = xrealloc(t->rcpt, t->rcpt_alloc * sizeof(*t->rcpt));
	}
	r = &t->rcpt[t->nrcpt++];
	*r = (struct envelope_rcpt){
	    .address = xstrdup(path.mailbox),
	    .orcpt = rp.orcpt_given ? xstrdup(rp.orcpt) : NULL,
	    .notify = (uint8_t)rp.notify,
	};
	s->state = S_RCPT;
	session_reply(s, "250 2.1.5 Ok");
}

/* A recipient on the suppression list: refused (550 5.7.1) or accepted and dropped, as
 * suppression.at_reception says. True if it was handled here. */
static bool
rcpt_suppressed(struct session *s, const char *address)
{
	struct suppress_entry entry;
	json_t *f;

	if (s->worker->ingress->suppress == NULL ||
	    s->cfg->suppression.at_reception == SUPPRESSION_OFF)
		return false;
	/* A list that cannot be read lets mail through: the list is a courtesy to the
	 * recipients, never a reason to lose a message. */
	if (suppress_check(s->worker->ingress->suppress, "", address, &entry) != 1)
		return false;
	if (s->cfg->suppression.at_reception == SUPPRESSION_REFUSE) {
		refuse(s, "RCPT", address, false, "550 5.7.1 <%s>: recipient suppressed (%s)",
		       address, suppress_reason_name(entry.reason));
		return true;
	}
	f = json_object();
	json_object_set_new(f, "session", json_integer((json_int_t)s->id));
	json_object_set_new(f, "client_ip", json_string(s->peer_ip));
	json_object_set_new(f, "sender", json_string(s->txn.sender));
	json_object_set_new(f, "recipient", json_string(address));
	json_object_set_new(f, "reason", json_string(suppress_reason_name(entry.reason)));
	eventlog_write(s->worker->ingress->log, "Suppressed", f);
	s->txn.ndropped++;
	s->state = S_RCPT;
	session_reply(s, "250 2.1.5 Ok");
	return true;
}

static void
cmd_data(struct session *s, const struct smtp_command *cmd)
{
	if (*cmd->args != '\0') {
		refuse(s, "DATA", NULL, true, "501 5.5.4 Error: DATA takes no arguments");
		return;
	}
	message_data_start(s);
}

static void
cmd_bdat(struct session *s, const struct smtp_command *cmd)
{
	message_bdat_start(s, cmd->args);
}

static void
cmd_rset(struct session *s, const struct smtp_command *cmd)
{
	transaction_reset(s);
	if (s->state != S_CONNECTED)
		s->state = S_READY;
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct session *s, const struct smtp_command *cmd)
{
	session_reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct session *s, const struct smtp_command *cmd)
{
	session_reply(s, "221 2.0.0 Bye");
	transaction_reset(s);
	session_close_after_reply(s);
}

static void
cmd_vrfy(struct session *s, const struct smtp_command *cmd)
{
	/* RFC 5321 §3.5.3: never confirm or deny a mailbox (harvesting), but say that mail
	 * to it will be tried. */
	session_reply(s, "252 2.5.0 Cannot VRFY user, but will accept message and attempt "
	                 "delivery");
}

static void
cmd_help(struct session *s, const struct smtp_command *cmd)
{
	session_reply(s, "214-2.0.0 Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT "
	                 "VRFY HELP");
	session_reply(s, "214 2.0.0 End of HELP info");
}

static void
cmd_not_implemented(struct session *s, const struct smtp_command *cmd)
{
	refuse(s, smtp_verb_name(cmd->verb), NULL, true,
	       "502 5.5.1 Error: command not implemented");
}
