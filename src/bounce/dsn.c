/* dsn.c - composing a delivery status notification: RFC 3464 fields in an RFC 6522
 * multipart/report, RFC 6533 types for SMTPUTF8 mail, RFC 3461 §6.3 for what the
 * original transaction's DSN parameters become.
 *
 * The message is built in a buffer of its own and appended to the caller's only when
 * complete, so a refused report leaves the output untouched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "bounce/bounce.h"
#include "bounce/internal.h"
#include "core/core.h"
#include "smtp/smtp.h"
#include "spool/spool.h"

/* A Remote-MTA name, an address in the text part, a diagnostic-type: cut past these. */
#define MTA_NAME_MAX      SMTP_DOMAIN_MAX
#define ADDRESS_MAX       (SMTP_PATH_MAX * 4)
#define DIAG_TYPE_MAX     32
#define BOUNDARY_ATTEMPTS 100

/* Why only the headers come back (the text part says it). */
enum why_headers { WHY_NONE = 0, WHY_ASKED, WHY_TOO_BIG, WHY_NOT_FAILURE };

struct compose {
	const struct dsn_report *r;
	const struct envelope *env;
	const char *to;
	bool postmaster;
	bool global;
	enum dsn_action kind; /* the headline: failed, else delayed, else a success */
	enum dsn_returned returned;
	enum why_headers why;
	const char *orig; /* the part of the original returned */
	size_t orig_len;
	bool headers_cut;
	char boundary[96];
};

static void
set_err(char *err, size_t errlen, const char *msg)
{
	if (errlen > 0)
		strlcpy_s(err, msg, errlen);
}

static bool
unique_valid(const char *s)
{
	size_t n = s == NULL ? 0 : strlen(s);

	if (n == 0 || n > DSN_UNIQUE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

/* An address for a To: header: no controls (a CR or LF would inject header lines), and
 * short enough for one line. */
static bool
to_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > WORD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
			return false;
	return true;
}

/* RFC 3463 status-code: class "." subject "." detail, 1-3 digits each, class 2, 4 or 5. */
static bool
status_valid(const char *s)
{
	size_t digits;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (int part = 0; part < 2; part++) {
		for (digits = 0; s[digits] >= '0' && s[digits] <= '9'; digits++)
			;
		if (digits == 0 || digits > 3)
			return false;
		s += digits;
		if (part == 0 && *s++ != '.')
			return false;
	}
	return *s == '\0';
}

static const char *
status_of(const struct dsn_rcpt *rc)
{
	if (status_valid(rc->status))
		return rc->status;
	switch (rc->action) {
	case DSN_FAILED:
		return "5.0.0";
	case DSN_DELAYED:
		return "4.0.0";
	default:
		return "2.0.0";
	}
}

/* ---- addresses in the delivery-status fields ---- */

static bool
has_controls(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return true;
	return false;
}

/* "rfc822; addr" for an ASCII address, "utf-8; addr" otherwise (RFC 6533 §3: the address
 * itself in message/global-delivery-status, utf-8-addr-xtext in the ASCII-only
 * message/delivery-status). malloc'd. */
static char *
typed_address(const char *addr, bool global)
{
	size_t n = strlen(addr);
	char *v, *s;

	if (text_is_ascii(addr, n) || !smtp_utf8_valid(addr, n)) {
		v = text_clean(addr, n, false, ADDRESS_MAX);
		s = xasprintf("rfc822; %s", v);
	} else if (global && !has_controls(addr, n)) {
		v = text_clean(addr, n, true, ADDRESS_MAX);
		s = xasprintf("utf-8; %s", v);
	} else {
		v = utf8_addr_encode(addr, n, global);
		s = xasprintf("utf-8; %s", v);
	}
	free(v);
	return s;
}

/* Original-Recipient from the ORCPT as received ("rfc822;a+2Bb@example.com"): RFC 3461
 * §6.3(d), "its value taken from the ORCPT parameter", the address xtext-decoded (§4.2).
 * A decoded rfc822 address with non-ASCII octets becomes a "utf-8" one (RFC 6533 §3); one
 * with controls, or an address-type we do not know that does not decode to printable
 * ASCII, is reported as received (xtext is printable ASCII). NULL if the ORCPT is damaged
 * beyond that (it was validated at reception). malloc'd. */
static char *
original_recipient(const char *orcpt, bool global)
{
	const char *semi = strchr(orcpt, ';');
	const char *xt;
	size_t tlen, xlen;
	char *dec, *v, *s = NULL;
	int n;

	if (semi == NULL)
		return NULL;
	tlen = (size_t)(semi - orcpt);
	xt = semi + 1;
	xlen = strlen(xt);
	if (!text_is_token(orcpt, tlen) || tlen > DIAG_TYPE_MAX || xlen > WORD_MAX)
		return NULL;
	if (tlen == 5 && strncasecmp(orcpt, "utf-8", 5) == 0) {
		/* Already utf-8-addr-xtext (RFC 6533 §3), which both delivery-status types take
		 * as it is. */
		if (!text_is_token(xt, xlen))
			return NULL;
		return xasprintf("%.*s; %s", (int)tlen, orcpt, xt);
	}
	dec = xmalloc(xlen + 1);
	n = smtp_xtext_decode(xt, xlen, dec, xlen + 1);
	if (n < 0) {
		if (text_is_printable(xt, xlen))
			s = xasprintf("%.*s; %s", (int)tlen, orcpt, xt);
	} else if (text_is_printable(dec, (size_t)n)) {
		s = xasprintf("%.*s; %s", (int)tlen, orcpt, dec);
	} else if (tlen == 6 && strncasecmp(orcpt, "rfc822", 6) == 0 &&
	           smtp_utf8_valid(dec, (size_t)n) && !text_is_ascii(dec, (size_t)n)) {
		if (global && !has_controls(dec, (size_t)n)) {
			s = xasprintf("utf-8; %s", dec);
		} else {
			v = utf8_addr_encode(dec, (size_t)n, global);
			s = xasprintf("utf-8; %s", v);
			free(v);
		}
	} else if (text_is_printable(xt, xlen)) {
		s = xasprintf("%.*s; %s", (int)tlen, orcpt, xt);
	}
	free(dec);
	return s;
}

/* Original-Envelope-Id: the ENVID xtext-decoded (RFC 3461 §6.3(a)), kept exactly (it is
 * case-sensitive and compared by the sender, RFC 3464 §2.2.1). §4.4 allows only printable
 * ASCII once decoded; anything else (a damaged spool, an injection API without the check)
 * is reported as received, cleaned. malloc'd. */
static char *
envelope_id(const char *envid)
{
	size_t len = strlen(envid);
	char *dec = xmalloc(len + 1);
	int n = smtp_xtext_decode(envid, len, dec, len + 1);

	if (n >= 0 && (size_t)n <= WORD_MAX && text_is_printable(dec, (size_t)n))
		return dec;
	free(dec);
	return text_clean(envid, len, false, WORD_MAX);
}

/* ---- the parts ---- */

static void
part_status(struct compose *c, struct evbuffer *b)
{
	const struct dsn_report *r = c->r;
	const struct envelope *env = c->env;
	char date[64];

	/* RFC 3464 §2.2 per-message fields, in the order of its grammar. */
	if (env->envid != NULL && env->envid[0] != '\0') {
		char *id = envelope_id(env->envid);

		putf(b, "Original-Envelope-Id: %s\r\n", id);
		free(id);
	}
	putf(b, "Reporting-MTA: dns; %s\r\n", r->hostname);
	if (env->received_us != 0) {
		time_rfc5322(env->received_us, date, sizeof(date));
		putf(b, "Arrival-Date: %s\r\n", date);
	}
	if (env->id[0] != '\0' && text_is_token(env->id, strlen(env->id)))
		putf(b, "X-Drover-Queue-ID: %s\r\n", env->id);

	/* §2.3 per-recipient fields, each group after a blank line. */
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct dsn_rcpt *rc = &r->rcpt[i];
		const struct envelope_rcpt *er = &env->rcpt[rc->index];
		char *v;

		put(b, "\r\n", 2);
		if (er->orcpt != NULL && (v = original_recipient(er->orcpt, c->global)) != NULL) {
			put_field(b, "Original-Recipient: ", v);
			free(v);
		}
		v = typed_address(er->address, c->global);
		put_field(b, "Final-Recipient: ", v);
		free(v);
		putf(b, "Action: %s\r\n", dsn_action_name(rc->action));
		putf(b, "Status: %s\r\n", status_of(rc));
		if (rc->remote_mta != NULL && rc->remote_mta[0] != '\0') {
			v = text_clean(rc->remote_mta, strlen(rc->remote_mta), false, MTA_NAME_MAX);
			if (v[0] != '\0')
				put_field(b, "Remote-MTA: dns; ", v);
			free(v);
		}
		if (rc->diagnostic != NULL) {
			const char *type = rc->diagnostic_type;
			char first[DIAG_TYPE_MAX + 32];

			if (type == NULL || strlen(type) > DIAG_TYPE_MAX ||
			    !text_is_token(type, strlen(type)))
				type = "smtp";
			v = text_clean(rc->diagnostic, strlen(rc->diagnostic), c->global,
			               DSN_DIAGNOSTIC_MAX);
			snprintf(first, sizeof(first), "Diagnostic-Code: %s; ", type);
			if (v[0] != '\0')
				put_field(b, first, v);
			free(v);
		}
		if (rc->last_attempt_us != 0) {
			time_rfc5322(rc->last_attempt_us, date, sizeof(date));
			putf(b, "Last-Attempt-Date: %s\r\n", date);
		}
		if (rc->action == DSN_DELAYED && rc->retry_until_us != 0) {
			time_rfc5322(rc->retry_until_us, date, sizeof(date));
			putf(b, "Will-Retry-Until: %s\r\n", date);
		}
	}
}

/* The diagnostic is what the remote server answered (type "smtp"), not text of ours. */
static bool
remote_reply(const struct dsn_rcpt *rc)
{
	return rc->diagnostic_type == NULL || strcasecmp(rc->diagnostic_type, "smtp") == 0;
}

static void
rcpt_text(struct compose *c, struct evbuffer *b, const struct dsn_rcpt *rc)
{
	const struct envelope_rcpt *er = &c->env->rcpt[rc->index];
	char *addr = text_clean(er->address, strlen(er->address), c->global, ADDRESS_MAX);
	const char *status = status_of(rc);
	char *line, *mta = NULL, *diag = NULL;
	char until[64];

	switch (rc->action) {
	case DSN_FAILED:
		line = xasprintf("<%s>: delivery failed (%s).", addr, status);
		break;
	case DSN_DELAYED:
		if (rc->retry_until_us != 0) {
			time_rfc5322(rc->retry_until_us, until, sizeof(until));
			line =
			    xasprintf("<%s>: delivery delayed (%s); it will be retried until %s.",
			              addr, status, until);
		} else {
			line = xasprintf("<%s>: delivery delayed (%s); it will be retried.", addr,
			                 status);
		}
		break;
	case DSN_DELIVERED:
		line = xasprintf("<%s>: delivered (%s).", addr, status);
		break;
	case DSN_RELAYED:
		line = xasprintf("<%s>: relayed to a system that sends no delivery reports (%s).",
		                 addr, status);
		break;
	case DSN_EXPANDED:
		line = xasprintf("<%s>: delivered to a list or alias, which forwarded it (%s).",
		                 addr, status);
		break;
	default:
		line = xasprintf("<%s>: %s.", addr, status);
		break;
	}
	put_wrapped(b, "", "    ", line);
	free(line);
	if (rc->remote_mta != NULL)
		mta = text_clean(rc->remote_mta, strlen(rc->remote_mta), false, MTA_NAME_MAX);
	if (rc->diagnostic != NULL)
		diag = text_clean(rc->diagnostic, strlen(rc->diagnostic), c->global,
		                  DSN_DIAGNOSTIC_MAX);
	if (mta != NULL && mta[0] == '\0') {
		free(mta);
		mta = NULL;
	}
	if (diag != NULL && diag[0] == '\0') {
		free(diag);
		diag = NULL;
	}
	if (mta != NULL && diag != NULL && remote_reply(rc)) {
		line = xasprintf("%s said: %s", mta, diag);
		put_wrapped(b, "    ", "      ", line);
		free(line);
	} else {
		if (mta != NULL) {
			line = xasprintf("Remote server: %s", mta);
			put_wrapped(b, "    ", "      ", line);
			free(line);
		}
		if (diag != NULL) {
			line = xasprintf("Reason: %s", diag);
			put_wrapped(b, "    ", "      ", line);
			free(line);
		}
	}
	put(b, "\r\n", 2);
	free(mta);
	free(diag);
	free(addr);
}

static void
part_text(struct compose *c, struct evbuffer *b)
{
	const struct dsn_report *r = c->r;
	char *s;

	s = xasprintf("This is the mail delivery system at %s.", r->hostname);
	put_wrapped(b, "", "", s);
	free(s);
	put(b, "\r\n", 2);
	if (c->postmaster) {
		put_wrapped(b, "", "",
		            "This report is for the postmaster. A message with a null sender (<>), "
		            "usually itself a delivery status notification, could not be delivered "
		            "to the recipients listed below. Mail with a null sender is never "
		            "returned to anyone, so that notifications cannot loop between mail "
		            "systems; this report is the only one.");
	} else if (c->kind == DSN_FAILED) {
		put_wrapped(
		    b, "", "",
		    "Your message could not be delivered to one or more recipients, and no "
		    "further attempts will be made for them. The reasons are listed below.");
	} else if (c->kind == DSN_DELAYED) {
		put_wrapped(b, "", "",
		            "Your message has not been delivered yet to one or more recipients. "
		            "Delivery will be retried; you do not need to send the message again. "
		            "The reasons for the delay are listed below.");
	} else {
		put_wrapped(b, "", "",
		            "Your message was delivered to the recipients listed below, as you "
		            "asked.");
	}
	put(b, "\r\n", 2);
	for (size_t i = 0; i < r->nrcpt; i++)
		rcpt_text(c, b, &r->rcpt[i]);

	switch (c->returned) {
	case DSN_RETURNED_FULL:
		s = xstrdup("The original message is attached.");
		break;
	case DSN_RETURNED_HEADERS:
		if (c->why == WHY_ASKED)
			s = xstrdup("Only the headers of the original message are attached, as its "
			            "sender asked (RET=HDRS).");
		else if (c->why == WHY_TOO_BIG)
			s = xasprintf(
			    "Only the headers of the original message are attached: at %zu "
			    "octets it is larger than the %zu octets a returned message may "
			    "have.",
			    r->content_len, r->return_max);
		else
			s = xstrdup("The headers of the original message are attached.");
		if (c->headers_cut) {
			char *t = xasprintf("%s They were cut at %d octets.", s, DSN_HEADERS_MAX);

			free(s);
			s = t;
		}
		break;
	default:
		s = xstrdup("The original message is not attached.");
		break;
	}
	put_wrapped(b, "", "", s);
	free(s);
}

/* ---- choosing what to return, and the boundary ---- */

static void
choose_returned(struct compose *c)
{
	const struct dsn_report *r = c->r;
	const char *p = r->content, *end;

	if (p == NULL) {
		c->returned = DSN_RETURNED_NOTHING;
		return;
	}
	if (c->kind == DSN_FAILED && c->env->dsn_ret != SMTP_DSN_RET_HDRS &&
	    r->content_len <= r->return_max) {
		c->returned = DSN_RETURNED_FULL;
		c->orig = p;
		c->orig_len = r->content_len;
		return;
	}
	c->returned = DSN_RETURNED_HEADERS;
	if (c->kind != DSN_FAILED)
		c->why = WHY_NOT_FAILURE;
	else if (c->env->dsn_ret == SMTP_DSN_RET_HDRS)
		c->why = WHY_ASKED;
	else
		c->why = WHY_TOO_BIG;

	/* The header section: every line up to the empty one (RFC 5322 §2.1), its last CRLF
	 * included; the whole message if it has no body. */
	c->orig = p;
	if (r->content_len >= 2 && p[0] == '\r' && p[1] == '\n') {
		c->orig_len = 0;
	} else if ((end = memmem(p, r->content_len, "\r\n\r\n", 4)) != NULL) {
		c->orig_len = (size_t)(end - p) + 2;
	} else {
		c->orig_len = r->content_len;
	}
	if (c->orig_len > DSN_HEADERS_MAX) {
		size_t n = DSN_HEADERS_MAX;

		/* Cut after the last complete line that fits. */
		while (n >= 2 && !(p[n - 2] == '\r' && p[n - 1] == '\n'))
			n--;
		c->orig_len = n >= 2 ? n : DSN_HEADERS_MAX;
		c->headers_cut = true;
	}
}

static bool
contains(const void *hay, size_t n, const char *needle)
{
	return n > 0 && memmem(hay, n, needle, strlen(needle)) != NULL;
}

/* A boundary that occurs in none of the parts (RFC 2046 §5.1.1). The unique token makes a
 * clash unlikely, but the returned original is anyone's text, and queue ids can be
 * guessed. */
static bool
choose_boundary(struct compose *c, struct evbuffer *text, struct evbuffer *status)
{
	size_t tn = evbuffer_get_length(text), sn = evbuffer_get_length(status);
	const void *t = evbuffer_pullup(text, -1), *s = evbuffer_pullup(status, -1);
	char delim[sizeof(c->boundary) + 2];

	for (int i = 0; i < BOUNDARY_ATTEMPTS; i++) {
		if (i == 0)
			snprintf(c->boundary, sizeof(c->boundary), "=_drover_dsn_%s", c->r->unique);
		else
			snprintf(c->boundary, sizeof(c->boundary), "=_drover_dsn_%s_%d",
			         c->r->unique, i);
		snprintf(delim, sizeof(delim), "--%s", c->boundary);
		if (!contains(t, tn, delim) && !contains(s, sn, delim) &&
		    !contains(c->orig, c->orig_len, delim))
			return true;
	}
	return false;
}

static bool
has_8bit(const void *p, size_t n)
{
	return n > 0 && !text_is_ascii(p, n);
}

static bool
buffer_8bit(struct evbuffer *b)
{
	size_t n = evbuffer_get_length(b);

	return has_8bit(evbuffer_pullup(b, -1), n);
}

/* ---- the whole ---- */

static bool
check(const struct dsn_report *r, char *err, size_t errlen)
{
	const struct envelope *env = r->env;
	bool null_sender;

	if (env == NULL || r->rcpt == NULL || r->nrcpt == 0) {
		set_err(err, errlen, "no recipient to report");
		return false;
	}
	for (size_t i = 0; i < r->nrcpt; i++) {
		if (r->rcpt[i].index >= env->nrcpt || env->rcpt[r->rcpt[i].index].address == NULL) {
			set_err(err, errlen, "recipient index out of range");
			return false;
		}
		if ((unsigned)r->rcpt[i].action > DSN_EXPANDED) {
			set_err(err, errlen, "unknown action");
			return false;
		}
	}
	if (r->hostname == NULL || !smtp_domain_valid(r->hostname, strlen(r->hostname), false)) {
		set_err(err, errlen, "hostname is not a domain name");
		return false;
	}
	if (!unique_valid(r->unique)) {
		set_err(err, errlen, "unique token must be 1 to 40 of [A-Za-z0-9._-]");
		return false;
	}
	null_sender = env->sender == NULL || env->sender[0] == '\0';
	if (r->postmaster != NULL) {
		if (!to_valid(r->postmaster)) {
			set_err(err, errlen, "postmaster address is empty or malformed");
			return false;
		}
	} else if (null_sender) {
		set_err(err, errlen, "the sender is null: no DSN goes to it (loop prevention)");
		return false;
	} else if (!to_valid(env->sender)) {
		set_err(err, errlen, "sender address is malformed");
		return false;
	}
	if (r->content == NULL && r->content_len != 0) {
		set_err(err, errlen, "content length without content");
		return false;
	}
	return true;
}

int
dsn_compose(const struct dsn_report *r, struct evbuffer *out, struct dsn_result *res, char *err,
            size_t errlen)
{
	struct compose c = {.r = r};
	struct evbuffer *msg, *text, *status;
	const char *subject, *orig_type, *desc;
	bool text8, status8, orig8, binary;
	char date[64];

	if (r == NULL || !check(r, err, errlen))
		return -1;
	c.env = r->env;
	c.postmaster = r->postmaster != NULL;
	c.to = c.postmaster ? r->postmaster : c.env->sender;
	c.global = c.env->smtputf8 || !text_is_ascii(c.to, strlen(c.to));
	c.kind = DSN_DELIVERED;
	for (size_t i = 0; i < r->nrcpt; i++) {
		const char *a = c.env->rcpt[r->rcpt[i].index].address;

		if (!text_is_ascii(a, strlen(a)))
			c.global = true;
		if (r->rcpt[i].action == DSN_FAILED)
			c.kind = DSN_FAILED;
		else if (r->rcpt[i].action == DSN_DELAYED && c.kind != DSN_FAILED)
			c.kind = DSN_DELAYED;
	}
	choose_returned(&c);

	text = evbuffer_new();
	status = evbuffer_new();
	msg = evbuffer_new();
	if (text == NULL || status == NULL || msg == NULL)
		fatal("evbuffer_new: out of memory");
	part_text(&c, text);
	part_status(&c, status);
	if (!choose_boundary(&c, text, status)) {
		set_err(err, errlen, "no MIME boundary found that the parts do not contain");
		evbuffer_free(text);
		evbuffer_free(status);
		evbuffer_free(msg);
		return -1;
	}
	text8 = buffer_8bit(text);
	status8 = buffer_8bit(status);
	orig8 = has_8bit(c.orig, c.orig_len);
	binary = c.returned == DSN_RETURNED_FULL && c.env->body_type == SMTP_BODY_BINARYMIME;

	switch (c.kind) {
	case DSN_FAILED:
		subject = c.postmaster ? "Postmaster Notice: Undelivered Mail"
		                       : "Undelivered Mail Returned to Sender";
		desc = c.returned == DSN_RETURNED_FULL ? "Undelivered Message"
		                                       : "Undelivered Message Headers";
		break;
	case DSN_DELAYED:
		subject = c.postmaster ? "Postmaster Notice: Delayed Mail"
		                       : "Delayed Mail (still being retried)";
		desc = "Delayed Message Headers";
		break;
	default:
		subject = c.postmaster ? "Postmaster Notice: Successful Mail Delivery Report"
		                       : "Successful Mail Delivery Report";
		desc = "Delivered Message Headers";
		break;
	}
	if (c.returned == DSN_RETURNED_FULL)
		orig_type = c.global ? "message/global" : "message/rfc822";
	else
		orig_type = c.global ? "message/global-headers" : "text/rfc822-headers";

	/* The header section. */
	putf(msg, "From: \"Mail Delivery System\" <MAILER-DAEMON@%s>\r\n", r->hostname);
	putf(msg, "To: <%s>\r\n", c.to);
	putf(msg, "Subject: %s\r\n", subject);
	time_rfc5322(r->now_us, date, sizeof(date));
	putf(msg, "Date: %s\r\n", date);
	putf(msg, "Message-ID: <%s@%s>\r\n", r->unique, r->hostname);
	/* RFC 3834 §5: a response generated automatically; mail systems and vacation
	 * responders must not answer it. */
	put_str(msg, "Auto-Submitted: auto-replied\r\n");
	put_str(msg, "MIME-Version: 1.0\r\n");
	/* RFC 6522 §3: report-type names the subtype of the second part. */
	putf(msg, "Content-Type: multipart/report; report-type=%s;\r\n\tboundary=\"%s\"\r\n",
	     c.global ? "global-delivery-status" : "delivery-status", c.boundary);
	if (binary)
		put_str(msg, "Content-Transfer-Encoding: binary\r\n");
	else if (text8 || status8 || orig8)
		put_str(msg, "Content-Transfer-Encoding: 8bit\r\n");
	put_str(msg, "\r\nThis is a MIME-encapsulated message.\r\n");

	/* 1: for people. */
	putf(msg, "\r\n--%s\r\n", c.boundary);
	put_str(msg, "Content-Description: Notification\r\n");
	putf(msg, "Content-Type: text/plain; charset=%s\r\n", text8 ? "utf-8" : "us-ascii");
	if (text8)
		put_str(msg, "Content-Transfer-Encoding: 8bit\r\n");
	put_str(msg, "\r\n");
	evbuffer_add_buffer(msg, text);

	/* 2: for programs. */
	putf(msg, "\r\n--%s\r\n", c.boundary);
	put_str(msg, "Content-Description: Delivery report\r\n");
	putf(msg, "Content-Type: %s\r\n",
	     c.global ? "message/global-delivery-status" : "message/delivery-status");
	if (status8)
		put_str(msg, "Content-Transfer-Encoding: 8bit\r\n");
	put_str(msg, "\r\n");
	evbuffer_add_buffer(msg, status);

	/* 3: the original, as stored: message/rfc822 content must not be re-encoded (RFC 2046
	 * §5.2.1), so 8-bit or binary content is labelled, not converted. */
	if (c.returned != DSN_RETURNED_NOTHING) {
		putf(msg, "\r\n--%s\r\n", c.boundary);
		putf(msg, "Content-Description: %s\r\n", desc);
		putf(msg, "Content-Type: %s\r\n", orig_type);
		if (binary)
			put_str(msg, "Content-Transfer-Encoding: binary\r\n");
		else if (orig8)
			put_str(msg, "Content-Transfer-Encoding: 8bit\r\n");
		put_str(msg, "\r\n");
		put(msg, c.orig, c.orig_len);
		/* The CRLF before a delimiter belongs to the delimiter (RFC 2046 §5.1.1): an
		 * original ending in CRLF keeps it. */
	}
	putf(msg, "\r\n--%s--\r\n", c.boundary);

	if (evbuffer_add_buffer(out, msg) != 0)
		fatal("evbuffer_add_buffer: out of memory");
	evbuffer_free(text);
	evbuffer_free(status);
	evbuffer_free(msg);

	res->rcpt = c.to;
	res->smtputf8 = !text_is_ascii(c.to, strlen(c.to));
	res->body = binary                      ? SMTP_BODY_BINARYMIME
	            : text8 || status8 || orig8 ? SMTP_BODY_8BITMIME
	                                        : SMTP_BODY_7BIT;
	res->returned = c.returned;
	res->global = c.global;
	return 0;
}

void
dsn_envelope(const struct dsn_result *res, uint64_t now_us, struct envelope *out)
{
	memset(out, 0, sizeof(*out));
	out->sender = xstrdup("");
	out->dsn_ret = SMTP_DSN_RET_UNSPEC;
	out->body_type = (uint8_t)res->body;
	out->smtputf8 = res->smtputf8;
	out->received_us = now_us;
	out->protocol = xstrdup("DSN");
	out->nrcpt = 1;
	out->rcpt = xcalloc(1, sizeof(*out->rcpt));
	out->rcpt[0].address = xstrdup(res->rcpt);
}
