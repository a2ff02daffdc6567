/* plain.c - bounces without a delivery-status part: qmail, Exim's old format, Sendmail
 * before DSNs, Exchange 2003, Yahoo, Postfix with DSNs off, and whatever else says
 * "Undeliverable". They are text for people, so this reads them like one:
 *
 * 1. Is it a bounce at all? The subject, the sender and the wording say so; an auto-reply
 *    or a person answering the bounce address must not count.
 * 2. The text before the copy of the original ("--- Below this line is a copy of the
 *    message.") is the report; the copy, if any, gives the original's headers.
 * 3. Recipients: "<addr>:" paragraphs (qmail, Yahoo, Postfix), and address lines in the
 *    lists that follow "The following address(es) failed:" and its kin (Exim, Sendmail,
 *    Exchange, Gmail). What follows an address, up to an empty line, is its diagnostic.
 * 4. No recipient found that way: Exim's X-Failed-Recipients, else the address next to the
 *    first SMTP error in the text.
 * 5. A recipient without a reply code gets the SMTP error line that names it (Sendmail's
 *    transcript), or the only one there is.
 *
 * Only ever line by line over at most FEEDBACK_TEXT_MAX octets, each line compared with a
 * fixed set of phrases: linear work.
 */
#include <string.h>

#include "core/core.h"
#include "feedback/internal.h"

/* Lines that end the report and begin a copy of the original message. */
static const char *const copy_markers[] = {
    "below this line is a copy of the message", /* qmail, Yahoo */
    "this is a copy of the message",            /* Exim */
    "original message follows",                 /* Sendmail */
    "unsent message follows",                   /* Sendmail */
    "message header follows",
    "original message headers:", /* Exchange */
    "----- original message -----",
    "header of the original message is following",
};

/* Wording only a bounce uses. */
static const char *const strong_markers[] = {
    "this is the qmail-send program",
    "wasn't able to deliver your message",
    "this is the mail system at host",
    "the original message was received at",
    "addresses had permanent fatal errors",
    "addresses had transient non-fatal errors",
    "could not be delivered to one or more of its recipients",
    "has not yet been delivered to one or more of its recipients",
    "following address(es) failed",
    "recipient(s) cannot be reached",
    "did not reach some or all of the intended recipients",
    "delivery has failed to these recipients",
    "unable to deliver your message to the following address",
    "delivery to the following recipient",
    "message wasn't delivered to",
    "couldn't be delivered to",
    "message could not be delivered",
    "was not delivered to",
};

/* Wording a bounce uses that other mail might. */
static const char *const weak_markers[] = {
    "permanent error",     "delivery failed",   "not delivered",     "user unknown",
    "unknown user",        "no such user",      "does not exist",    "address rejected",
    "mailbox unavailable", "mailbox not found", "invalid recipient", "undeliverable",
    "could not deliver",   "delivery failure",  "returned mail",     "recipient not found",
};

static const char *const subject_markers[] = {
    "undeliver", /* Undeliverable, Undelivered Mail Returned to Sender */
    "mail delivery failed",
    "delivery status notification",
    "failure notice",
    "returned mail",
    "delivery failure",
    "delivery failed",
    "could not send message",
    "mail system error",
    "nondeliverable",
    "non-delivery",
    "delivery has failed",
    "message not delivered",
    "delayed mail",
    "delivery delayed",
    "mail delivery problem",
};

static const char *const from_markers[] = {
    "mailer-daemon", "postmaster", "mail delivery", "mail administrator", "mail system",
};

/* Phrases that head a list of recipients, with what happened to them. */
static const struct {
	const char *phrase;
	enum feedback_action action;
} sections[] = {
    {"had permanent fatal errors", FEEDBACK_ACTION_FAILED},              /* Sendmail */
    {"had transient non-fatal errors", FEEDBACK_ACTION_DELAYED},         /* Sendmail */
    {"address(es) failed", FEEDBACK_ACTION_FAILED},                      /* Exim */
    {"not yet been delivered", FEEDBACK_ACTION_DELAYED},                 /* Exim, delay */
    {"recipient(s) cannot be reached", FEEDBACK_ACTION_FAILED},          /* Exchange 2003 */
    {"delivery has failed to these recipients", FEEDBACK_ACTION_FAILED}, /* Office 365 */
    {"following recipient failed permanently", FEEDBACK_ACTION_FAILED},  /* Gmail */
    {"following recipient has been delayed", FEEDBACK_ACTION_DELAYED},   /* Gmail */
    {"transcript of session follows", FEEDBACK_ACTION_NONE},             /* Sendmail */
    {"to the following recipient", FEEDBACK_ACTION_NONE},
    {"to the following address", FEEDBACK_ACTION_NONE},
    {"following recipients", FEEDBACK_ACTION_NONE},
};

/* The whole report is a delay warning when it says so and nowhere that it gave up. */
static const char *const delay_markers[] = {
    "delayed",
    "not yet been delivered",
    "transient non-fatal",
    "will continue trying",
    "will keep trying",
    "will retry",
    "could not send message for past",
    "still trying",
};
/* ("fatal" alone would match Sendmail's "transient non-fatal errors".) */
static const char *const final_markers[] = {
    "permanent", "fatal error", "giving up", "gave up", "not going to try again",
};

static bool
any(const char *s, size_t len, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (ci_find(s, len, list[i]) >= 0)
			return true;
	return false;
}
#define ANY(s, len, list) any(s, len, list, nitems(list))

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

/* An address line: the line is an address, in <> or not, perhaps followed by " on <date>",
 * "<mailto:...>", "(reason ...)", "... User unknown" (those stay with the entry as its
 * start of diagnostic). */
static bool
address_line(const char *line, size_t len, struct slice *addr, struct slice *rest)
{
	const char *end = line + len, *p = skip_ws(line, end);
	size_t pos = 0;
	bool bracket = p < end && *p == '<';

	p += bracket;
	if (p >= end || !addr_find(p, (size_t)(end - p), &pos, addr) || addr->p != p)
		return false;
	p = addr->p + addr->len;
	if (bracket) {
		if (p >= end || *p != '>')
			return false;
		p++;
	}
	if (p < end && *p != ' ' && *p != '\t' && *p != '<' && *p != '(' && *p != '.' &&
	    *p != ':' && *p != ',')
		return false;
	rest->p = p;
	rest->len = (size_t)(end - p);
	return true;
}

static bool
addr_same(const char *a, struct slice b)
{
	return strlen(a) == b.len && ci_prefix(b.p, b.len, a);
}

/* Addresses in a bounce that are not the failed recipient. */
static bool
addr_acceptable(const struct feedback_report *r, struct slice a)
{
	return !ci_prefix(a.p, a.len, "mailer-daemon@") && !ci_prefix(a.p, a.len, "postmaster@") &&
	       !addr_same(r->to, a) && !addr_same(r->from, a);
}

static bool
first_acceptable(const struct feedback_report *r, const char *s, size_t len, struct slice *out)
{
	size_t pos = 0;

	while (addr_find(s, len, &pos, out))
		if (addr_acceptable(r, *out))
			return true;
	return false;
}

/* Nothing ends in a space (the header's promise): not after a cut, not after an append of
 * what turned out to be only control characters. */
static void
trim_end(char *d)
{
	size_t n = strlen(d);

	while (n > 0 && d[n - 1] == ' ')
		d[--n] = '\0';
}

static void
diag_append(struct feedback_rcpt *e, const char *s, size_t len)
{
	size_t o = strlen(e->diagnostic);

	if (o + 2 >= sizeof(e->diagnostic))
		return;
	if (o > 0)
		e->diagnostic[o++] = ' ';
	text_put(e->diagnostic + o, sizeof(e->diagnostic) - o, s, len);
	trim_end(e->diagnostic);
}

/* A reply quoted in prose loses its closing quote ("returned '552 5.2.2 Mailbox full'"),
 * one inside "<host #5.1.1 smtp;550 ...>" (Exchange) its closing bracket. */
static void
diag_tidy(char *d, char before)
{
	size_t n = strlen(d), lt = 0, gt = 0;

	if (n > 0 && (before == '\'' || before == '"') && d[n - 1] == before)
		d[--n] = '\0';
	for (size_t i = 0; i < n; i++) {
		lt += d[i] == '<';
		gt += d[i] == '>';
	}
	if (n > 0 && d[n - 1] == '>' && gt > lt)
		d[--n] = '\0';
	trim_end(d);
}

struct extract {
	struct feedback_report *r;
	size_t first; /* rcpt[] entries from here on are this text's */
	struct feedback_rcpt *cur;
	bool in_list;
	bool gap; /* an empty line since cur last grew */
	enum feedback_action section_action;
};

/* A new entry for addr, or the existing one (the same address listed twice). */
static void
entry_start(struct extract *x, struct slice addr)
{
	struct feedback_report *r = x->r;

	for (size_t i = x->first; i < r->nrcpt; i++)
		if (addr_same(r->rcpt[i].address, addr)) {
			x->cur = &r->rcpt[i];
			x->gap = false;
			return;
		}
	x->cur = rcpt_add(r);
	x->gap = false;
	if (x->cur == NULL)
		return;
	text_put(x->cur->address, sizeof(x->cur->address), addr.p, addr.len);
	x->cur->action = x->section_action;
}

static void
lines_read(struct extract *x, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *next;

	while (p < end) {
		size_t n = line_next(p, end, &next);
		struct slice addr, rest;
		size_t s;

		if (line_blank(p, n)) {
			x->gap = true;
		} else if (p[0] == '<' && address_line(p, n, &addr, &rest) && rest.len > 0 &&
		           rest.p[0] == ':') {
			/* qmail, Yahoo, Postfix: "<bob@example.org>: reason" at the line start */
			entry_start(x, addr);
			if (x->cur != NULL)
				diag_append(x->cur, rest.p + 1, rest.len - 1);
		} else if (x->in_list && address_line(p, n, &addr, &rest)) {
			entry_start(x, addr);
			/* Sendmail's "<bob@example.org>... Deferred": the words, not the dots */
			while (rest.len > 0 && strchr(".:, \t", rest.p[0]) != NULL) {
				rest.p++;
				rest.len--;
			}
			if (x->cur != NULL && rest.len > 0)
				diag_append(x->cur, rest.p, rest.len);
		} else {
			for (s = 0; s < nitems(sections); s++)
				if (ci_find(p, n, sections[s].phrase) >= 0)
					break;
			if (s < nitems(sections)) {
				x->in_list = true;
				x->section_action = sections[s].action;
				x->cur = NULL;
			} else if (skip_ws(p, p + n) + 5 <= p + n &&
			           ci_prefix(skip_ws(p, p + n), 5, "-----")) {
				x->in_list = false; /* Sendmail's next "----- ... -----" section */
				x->cur = NULL;
			} else if (x->cur != NULL && !x->gap) {
				diag_append(x->cur, p, n);
			}
		}
		p = next;
	}
}

/* The first line of text holding an SMTP error (4xx/5xx) that names addr (any address if
 * addr is NULL), with the lines that continue it: its place in *reply. */
static bool
reply_find(const char *text, size_t len, const char *addr, struct slice *reply)
{
	const char *p = text, *end = text + len, *next;

	while (p < end) {
		size_t n = line_next(p, end, &next), at;
		char status[SMTP_STATUS_MAX + 1];
		int code;

		reply_scan(p, n, &code, status, &at);
		if (code >= 400 && (addr == NULL || ci_find(p, n, addr) >= 0)) {
			const char *q = next;

			reply->p = p + at;
			reply->len = n - at;
			/* Continuation lines: indented, as Postfix and Exim fold. */
			while (q < end && (*q == ' ' || *q == '\t')) {
				size_t m = line_next(q, end, &next);

				if (line_blank(q, m))
					break;
				reply->len = (size_t)(q + m - reply->p);
				q = next;
			}
			return true;
		}
		p = next;
	}
	return false;
}

/* Where the report's text ends and a copy of the original begins: the marker line's start
 * (len if none), *copy after it. */
static size_t
report_end(const char *text, size_t len, const char **copy)
{
	const char *p = text, *end = text + len, *next;

	*copy = NULL;
	while (p < end) {
		size_t n = line_next(p, end, &next);

		if (ANY(p, n, copy_markers)) {
			*copy = next;
			return (size_t)(p - text);
		}
		p = next;
	}
	return len;
}

static bool
is_bounce(const struct feedback_report *r, const char *text, size_t len,
          const struct bounce_hints *h)
{
	size_t slen = strlen(r->subject);
	bool subject = ANY(r->subject, slen, subject_markers);
	bool from = h->from.p != NULL && ANY(h->from.p, h->from.len, from_markers);
	bool weak = ANY(text, len, weak_markers);
	struct slice reply;

	if (h->have_failed || ANY(text, len, strong_markers))
		return true;
	if (!subject && !from)
		return false;
	return (subject && from) || weak || reply_find(text, len, NULL, &reply);
}

bool
plain_read(struct feedback_report *r, const char *text, size_t len,
           const struct bounce_hints *hints)
{
	struct extract x = {.r = r, .first = r->nrcpt};
	size_t before = r->rcpt_total;
	const char *copy;
	size_t rlen = report_end(text, len, &copy);
	bool delayed;

	if (!is_bounce(r, text, rlen, hints))
		return false;
	if (copy != NULL) {
		const char *end = text + len, *next;

		while (copy < end && line_blank(copy, line_next(copy, end, &next)))
			copy = next;
		original_read(r, copy, (size_t)(end - copy), FEEDBACK_RETURNED_INLINE);
	}
	lines_read(&x, text, rlen);
	if (r->rcpt_total == before && hints->have_failed) {
		size_t pos = 0;
		struct slice a;

		while (addr_find(hints->failed.p, hints->failed.len, &pos, &a))
			entry_start(&x, a);
	}
	if (r->rcpt_total == before) {
		struct slice reply, a;

		/* The address next to the first SMTP error, else the first one that is not the
		 * bounce's own sender or recipient. */
		if ((reply_find(text, rlen, NULL, &reply) &&
		     first_acceptable(r, reply.p, reply.len, &a)) ||
		    first_acceptable(r, text, rlen, &a))
			entry_start(&x, a);
	}

	delayed = (ANY(r->subject, strlen(r->subject), delay_markers) ||
	           ANY(text, rlen, delay_markers)) &&
	          !ANY(text, rlen, final_markers);
	for (size_t i = x.first; i < r->nrcpt; i++) {
		struct feedback_rcpt *e = &r->rcpt[i];
		struct slice reply;
		char status[SMTP_STATUS_MAX + 1];
		size_t at;
		int code;

		reply_scan(e->diagnostic, strlen(e->diagnostic), &code, status, &at);
		if (code == 0 &&
		    (reply_find(text, rlen, e->address, &reply) ||
		     (r->nrcpt - x.first == 1 && reply_find(text, rlen, NULL, &reply)))) {
			e->diagnostic[0] = '\0';
			diag_append(e, reply.p, reply.len);
			diag_tidy(e->diagnostic, reply.p > text ? reply.p[-1] : '\0');
		} else if (code != 0) {
			/* Keep the reply from its code on, as a DSN's Diagnostic-Code has it: the
			 * classifier matches the same text whichever way the bounce came. */
			char lead = at > 0 ? e->diagnostic[at - 1] : '\0';

			memmove(e->diagnostic, e->diagnostic + at, strlen(e->diagnostic + at) + 1);
			diag_tidy(e->diagnostic, lead);
		}
		rcpt_diagnose(e);
		if (e->action == FEEDBACK_ACTION_NONE)
			e->action = delayed && e->status[0] != '5' ? FEEDBACK_ACTION_DELAYED
			                                           : FEEDBACK_ACTION_FAILED;
	}
	return true;
}
