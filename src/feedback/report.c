/* report.c - feedback_parse(): walks the MIME tree of a report, reads its delivery-status
 * (RFC 3464) or feedback-report (RFC 5965) part and the original's headers, and falls back
 * to the plain-bounce heuristics; feedback_attribute() ties the result to a VERP.
 *
 * The walk does not descend into a returned original (message/rfc822): what a bounce
 * returns may itself be a bounce or a report, and must not be taken for this one. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "feedback/internal.h"

struct walk {
	struct feedback_report *r;
	unsigned parts;
	bool have_dsn, have_arf;
	struct decoded text; /* the first non-empty text/plain */
	char *html;          /* the first text/html, as text */
	size_t html_len;
	struct bounce_hints hints;
};

/* ---- names ---- */

const char *
feedback_kind_name(enum feedback_kind k)
{
	switch (k) {
	case FEEDBACK_NOT_REPORT:
		return "not-a-report";
	case FEEDBACK_DSN:
		return "dsn";
	case FEEDBACK_ARF:
		return "arf";
	case FEEDBACK_PLAIN_BOUNCE:
		return "plain-bounce";
	}
	return "?";
}

static const char *const action_names[] = {"",          "failed",  "delayed",
                                           "delivered", "relayed", "expanded"};

const char *
feedback_action_name(enum feedback_action a)
{
	return (size_t)a < nitems(action_names) ? action_names[a] : "?";
}

static const char *const type_names[] = {"unknown", "abuse",    "fraud",       "virus",
                                         "other",   "not-spam", "auth-failure"};

const char *
feedback_type_name(enum feedback_type t)
{
	return (size_t)t < nitems(type_names) ? type_names[t] : "?";
}

const char *
feedback_verp_source_name(enum feedback_verp_source s)
{
	static const char *const names[] = {"", "rcpt-to", "to", "return-path",
	                                    "original-mail-from"};

	return (size_t)s < nitems(names) ? names[s] : "?";
}

/* ---- recipients ---- */

struct feedback_rcpt *
rcpt_add(struct feedback_report *r)
{
	struct feedback_rcpt *e;

	r->rcpt_total++;
	if (r->nrcpt == FEEDBACK_RCPT_MAX) {
		r->cut |= FEEDBACK_CUT_RCPT;
		return NULL;
	}
	e = &r->rcpt[r->nrcpt++];
	memset(e, 0, sizeof(*e));
	return e;
}

/* A multi-line reply unfolded reads "550-5.1.1 The email account ... 550-5.1.1 double-
 * checking ... 550 5.1.1 https://..." (Gmail): the code and status repeated on each line
 * are dropped, so the text reads as one sentence and a classifier's pattern can span what
 * were lines. */
static void
diag_unrepeat(char *d, const char *status)
{
	char dash[5 + SMTP_STATUS_MAX + 2], space[5 + SMTP_STATUS_MAX + 2];
	size_t n, o = 4;

	if ((d[3] != '-' && d[3] != ' ') || strncmp(d + 4, status, strlen(status)) != 0)
		return;
	snprintf(dash, sizeof(dash), " %.3s-%s ", d, status);
	snprintf(space, sizeof(space), " %.3s %s ", d, status);
	n = strlen(dash);
	d[3] = ' ';
	for (size_t i = 4; d[i] != '\0';) {
		if (strncmp(d + i, dash, n) == 0 || strncmp(d + i, space, n) == 0) {
			i += n - 1; /* to the pattern's last space, which stays */
			continue;
		}
		d[o++] = d[i++];
	}
	d[o] = '\0';
}

void
rcpt_diagnose(struct feedback_rcpt *e)
{
	char status[SMTP_STATUS_MAX + 1];
	size_t at = 0;

	reply_scan(e->diagnostic, strlen(e->diagnostic), &e->reply_code, status, &at);
	if (e->reply_code != 0 && at == 0 && status[0] != '\0')
		diag_unrepeat(e->diagnostic, status);
	if (e->status[0] == '\0')
		strlcpy_s(e->status, status, sizeof(e->status));
}

static enum feedback_action
action_parse(struct slice v)
{
	struct slice word = v;

	while (word.len > 0 && isspace((unsigned char)word.p[0])) {
		word.p++;
		word.len--;
	}
	/* "failed (bad address)": the first word. */
	for (size_t i = 0; i < word.len; i++)
		if (!isalpha((unsigned char)word.p[i])) {
			word.len = i;
			break;
		}
	for (size_t a = 1; a < nitems(action_names); a++)
		if (ci_eq(word, action_names[a]))
			return (enum feedback_action)a;
	return FEEDBACK_ACTION_NONE;
}

/* "5.1.1 (user unknown)": the status, if it is one. */
static void
status_put(char *dst, size_t size, struct slice v)
{
	size_t n = 0;

	while (v.len > 0 && isspace((unsigned char)v.p[0])) {
		v.p++;
		v.len--;
	}
	while (n < v.len && (isdigit((unsigned char)v.p[n]) || v.p[n] == '.'))
		n++;
	if (n < size && smtp_status_valid(v.p, n)) {
		memcpy(dst, v.p, n);
		dst[n] = '\0';
	}
}

/* "rfc822; <bob@example.org>": the address without its type. */
static void
typed_addr_put(char *dst, size_t size, struct slice v)
{
	struct slice type, value;

	typed_split(v.p, v.len, &type, &value);
	addr_put(dst, size, value.p, value.len);
}

/* "dns; gmail-smtp-in.l.google.com. (2607:f8b0:4864:20::c2e, the server for ...)": the
 * host name alone, without its type, comment or final dot. */
static void
mta_put(char *dst, size_t size, struct slice v)
{
	struct slice type, value;
	size_t n = 0;

	typed_split(v.p, v.len, &type, &value);
	while (n < value.len && !isspace((unsigned char)value.p[n]) && value.p[n] != '(')
		n++;
	if (n > 1 && value.p[n - 1] == '.')
		n--;
	text_put(dst, size, value.p, n);
}

static void
set_once(char *dst, size_t size, struct slice v)
{
	if (dst[0] == '\0')
		text_put(dst, size, v.p, v.len);
}

/* ---- the original's headers ---- */

/* Our Received: field, "from ... by host (Drover) with ESMTP id 0190a1b2c3d4e5f600000001;
 * date" (ingress/message.c): the queue id, if this is one of ours. */
static bool
received_ours(struct slice v, char *id)
{
	long at = ci_find(v.p, v.len, "(" DROVER_NAME ")");
	const char *p, *end = v.p + v.len;

	if (at < 0)
		return false;
	for (p = v.p + at; p + 3 + FEEDBACK_QUEUE_ID_LEN <= end; p++) {
		size_t n = 0;

		if (!ci_prefix(p, (size_t)(end - p), " id ") &&
		    !ci_prefix(p, (size_t)(end - p), "\tid "))
			continue;
		p += 4;
		while (n < FEEDBACK_QUEUE_ID_LEN && p + n < end && isxdigit((unsigned char)p[n]))
			n++;
		if (n == FEEDBACK_QUEUE_ID_LEN &&
		    (p + n == end || !isxdigit((unsigned char)p[n]))) {
			for (size_t i = 0; i < n; i++)
				id[i] = (char)tolower((unsigned char)p[i]);
			id[n] = '\0';
			return true;
		}
	}
	return false;
}

void
original_read(struct feedback_report *r, const char *p, size_t len, enum feedback_returned how)
{
	struct feedback_original *o = &r->original;
	const char *end = p + len, *next;
	struct header_iter it;
	struct slice name, value;

	if (o->returned != FEEDBACK_RETURNED_NONE)
		return;
	o->returned = how;
	/* Some generators start text/rfc822-headers with an empty line. */
	while (p < end && line_blank(p, line_next(p, end, &next)) && next > p)
		p = next;
	header_begin(&it, p, (size_t)(end - p));
	while (header_next(&it, &name, &value)) {
		if (ci_eq(name, "message-id")) {
			const char *lt = memchr(value.p, '<', value.len), *gt;

			if (lt != NULL &&
			    (gt = memchr(lt, '>', value.len - (size_t)(lt - value.p))) != NULL) {
				value.p = lt;
				value.len = (size_t)(gt - lt) + 1;
			}
			set_once(o->message_id, sizeof(o->message_id), value);
		} else if (ci_eq(name, "return-path") && o->return_path[0] == '\0') {
			addr_put(o->return_path, sizeof(o->return_path), value.p, value.len);
		} else if (ci_eq(name, "from") && o->from[0] == '\0') {
			first_address(o->from, sizeof(o->from), value.p, value.len);
		} else if (ci_eq(name, "to") && o->to[0] == '\0') {
			first_address(o->to, sizeof(o->to), value.p, value.len);
		} else if (ci_eq(name, "subject")) {
			set_once(o->subject, sizeof(o->subject), value);
		} else if (ci_eq(name, "received") && o->queue_id[0] == '\0') {
			received_ours(value, o->queue_id);
		}
	}
}

/* ---- message/delivery-status and message/feedback-report ---- */

/* Calls fn for each group of fields ("header sections" separated by empty lines). */
static void
groups_read(const char *p, size_t len, void (*fn)(struct feedback_report *, struct header_iter *),
            struct feedback_report *r)
{
	const char *end = p + len, *next;

	while (p < end) {
		struct header_iter it;

		while (p < end && line_blank(p, line_next(p, end, &next)))
			p = next;
		if (p >= end)
			break;
		header_begin(&it, p, (size_t)(end - p));
		fn(r, &it);
		if (header_body(&it) <= p)
			break;
		p = header_body(&it);
	}
}

static void
dsn_group(struct feedback_report *r, struct header_iter *it)
{
	struct slice name, v, f[6] = {{0}};
	enum { FINAL, ORIGINAL, ACTION, STATUS, DIAG, REMOTE };
	struct feedback_rcpt *e;

	while (header_next(it, &name, &v)) {
		if (ci_eq(name, "reporting-mta") && r->reporting_mta[0] == '\0')
			mta_put(r->reporting_mta, sizeof(r->reporting_mta), v);
		else if (ci_eq(name, "original-envelope-id"))
			set_once(r->envelope_id, sizeof(r->envelope_id), v);
		else if (ci_eq(name, "arrival-date"))
			set_once(r->arrival_date, sizeof(r->arrival_date), v);
		else if (ci_eq(name, "final-recipient"))
			f[FINAL] = v;
		else if (ci_eq(name, "original-recipient"))
			f[ORIGINAL] = v;
		else if (ci_eq(name, "action"))
			f[ACTION] = v;
		else if (ci_eq(name, "status"))
			f[STATUS] = v;
		else if (ci_eq(name, "diagnostic-code"))
			f[DIAG] = v;
		else if (ci_eq(name, "remote-mta"))
			f[REMOTE] = v;
	}
	/* A recipient group, by RFC 3464 one with Final-Recipient; broken MTAs leave it out
	 * and give the rest. */
	if (f[FINAL].p == NULL && f[ORIGINAL].p == NULL && f[ACTION].p == NULL &&
	    f[STATUS].p == NULL)
		return;
	if ((e = rcpt_add(r)) == NULL)
		return;
	if (f[FINAL].p != NULL)
		typed_addr_put(e->address, sizeof(e->address), f[FINAL]);
	if (f[ORIGINAL].p != NULL)
		typed_addr_put(e->original, sizeof(e->original), f[ORIGINAL]);
	if (f[STATUS].p != NULL)
		status_put(e->status, sizeof(e->status), f[STATUS]);
	if (f[DIAG].p != NULL) {
		struct slice type, value;

		typed_split(f[DIAG].p, f[DIAG].len, &type, &value);
		text_put(e->diagnostic_type, sizeof(e->diagnostic_type), type.p, type.len);
		for (char *c = e->diagnostic_type; *c != '\0'; c++)
			*c = (char)tolower((unsigned char)*c);
		text_put(e->diagnostic, sizeof(e->diagnostic), value.p, value.len);
	}
	if (f[REMOTE].p != NULL)
		mta_put(e->remote_mta, sizeof(e->remote_mta), f[REMOTE]);
	rcpt_diagnose(e);
	e->action = f[ACTION].p != NULL ? action_parse(f[ACTION]) : FEEDBACK_ACTION_NONE;
	if (e->action == FEEDBACK_ACTION_NONE && e->status[0] != '\0')
		e->action = e->status[0] == '5'   ? FEEDBACK_ACTION_FAILED
		            : e->status[0] == '4' ? FEEDBACK_ACTION_DELAYED
		                                  : FEEDBACK_ACTION_DELIVERED;
}

static enum feedback_type
type_parse(const char *s)
{
	for (size_t t = 1; t < nitems(type_names); t++)
		if (strcmp(s, type_names[t]) == 0)
			return (enum feedback_type)t;
	return FEEDBACK_TYPE_UNKNOWN;
}

static void
arf_group(struct feedback_report *r, struct header_iter *it)
{
	struct feedback_arf *a = &r->arf;
	struct slice name, v;

	while (header_next(it, &name, &v)) {
		if (ci_eq(name, "feedback-type") && a->feedback_type[0] == '\0') {
			text_put(a->feedback_type, sizeof(a->feedback_type), v.p, v.len);
			for (char *c = a->feedback_type; *c != '\0'; c++)
				*c = (char)tolower((unsigned char)*c);
			a->type = type_parse(a->feedback_type);
		} else if (ci_eq(name, "user-agent")) {
			set_once(a->user_agent, sizeof(a->user_agent), v);
		} else if (ci_eq(name, "version")) {
			set_once(a->version, sizeof(a->version), v);
		} else if (ci_eq(name, "original-mail-from") && a->original_mail_from[0] == '\0') {
			addr_put(a->original_mail_from, sizeof(a->original_mail_from), v.p, v.len);
		} else if (ci_eq(name, "original-rcpt-to") || ci_eq(name, "removal-recipient")) {
			/* Removal-Recipient: the ARF drafts' name, still sent by old FBLs. */
			struct feedback_rcpt *e = rcpt_add(r);

			if (e != NULL)
				addr_put(e->address, sizeof(e->address), v.p, v.len);
		} else if (ci_eq(name, "arrival-date") || ci_eq(name, "received-date")) {
			set_once(r->arrival_date, sizeof(r->arrival_date), v);
		} else if (ci_eq(name, "source-ip")) {
			set_once(a->source_ip, sizeof(a->source_ip), v);
		} else if (ci_eq(name, "reported-domain")) {
			set_once(a->reported_domain, sizeof(a->reported_domain), v);
		} else if (ci_eq(name, "reporting-mta") && r->reporting_mta[0] == '\0') {
			mta_put(r->reporting_mta, sizeof(r->reporting_mta), v);
		} else if (ci_eq(name, "original-envelope-id")) {
			set_once(r->envelope_id, sizeof(r->envelope_id), v);
		} else if (ci_eq(name, "incidents") && a->incidents == 0) {
			char n[16];

			text_put(n, sizeof(n), v.p, v.len);
			a->incidents = (unsigned)strtoul(n, NULL, 10);
		}
	}
}

/* ---- the walk ---- */

static void
machine_read(struct walk *w, bool arf, const char *p, size_t len, enum cte cte)
{
	struct decoded d;

	if (arf ? w->have_arf : w->have_dsn)
		return;
	body_decode(cte, p, len, FEEDBACK_DECODE_MAX, &d);
	if (d.cut)
		w->r->cut |= FEEDBACK_CUT_DECODE;
	if (arf) {
		w->have_arf = true;
		groups_read(d.p, d.len, arf_group, w->r);
	} else {
		w->have_dsn = true;
		groups_read(d.p, d.len, dsn_group, w->r);
	}
	decoded_free(&d);
}

static void
text_keep(struct walk *w, bool html, const char *p, size_t len, enum cte cte)
{
	struct decoded d;

	if (html ? w->html != NULL : w->text.p != NULL)
		return;
	body_decode(cte, p, len, FEEDBACK_TEXT_MAX, &d);
	if (d.cut)
		w->r->cut |= FEEDBACK_CUT_DECODE;
	if (line_blank(d.p, d.len)) {
		decoded_free(&d);
		return;
	}
	if (!html) {
		w->text = d;
		return;
	}
	w->html = xmalloc(d.len + 1);
	w->html_len = html_to_text(d.p, d.len, w->html, d.len);
	decoded_free(&d);
}

static void
top_field(struct walk *w, struct slice name, struct slice v)
{
	struct feedback_report *r = w->r;

	if (ci_eq(name, "from") && w->hints.from.p == NULL) {
		w->hints.from = v;
		first_address(r->from, sizeof(r->from), v.p, v.len);
	} else if (ci_eq(name, "to") && r->to[0] == '\0') {
		first_address(r->to, sizeof(r->to), v.p, v.len);
	} else if (ci_eq(name, "subject")) {
		set_once(r->subject, sizeof(r->subject), v);
	} else if (ci_eq(name, "message-id")) {
		set_once(r->message_id, sizeof(r->message_id), v);
	} else if (ci_eq(name, "x-failed-recipients") && !w->hints.have_failed) {
		w->hints.failed = v;
		w->hints.have_failed = true;
	}
}

static bool
is(const struct content_type *ct, const char *type, const char *subtype)
{
	return strcmp(ct->type, type) == 0 && strcmp(ct->subtype, subtype) == 0;
}

/* One entity: header section and body. report_type: the parent is a multipart/report of
 * that type (else NULL), and this is its index-th part. */
static void
walk_entity(struct walk *w, const char *p, size_t len, unsigned depth, const char *report_type,
            unsigned index)
{
	struct header_iter it;
	struct slice name, v;
	struct content_type ct;
	enum cte cte = CTE_IDENTITY;
	bool have_ct = false;
	const char *body;
	size_t blen;

	if (++w->parts > FEEDBACK_PARTS_MAX) {
		w->r->cut |= FEEDBACK_CUT_PARTS;
		return;
	}
	header_begin(&it, p, len);
	while (header_next(&it, &name, &v)) {
		if (ci_eq(name, "content-type") && !have_ct) {
			content_type_parse(v.p, v.len, &ct);
			have_ct = true;
		} else if (ci_eq(name, "content-transfer-encoding")) {
			cte = cte_parse(v.p, v.len);
		} else if (depth == 0) {
			top_field(w, name, v);
		}
	}
	if (!have_ct)
		content_type_parse("", 0, &ct);
	body = header_body(&it);
	blen = (size_t)(p + len - body);

	if (strcmp(ct.type, "multipart") == 0) {
		const char *child_report =
		    strcmp(ct.subtype, "report") == 0 ? ct.report_type : NULL;
		struct part_iter parts;
		struct slice part;
		unsigned i = 0;

		if (depth + 1 >= FEEDBACK_DEPTH_MAX) {
			w->r->cut |= FEEDBACK_CUT_DEPTH;
			return;
		}
		part_begin(&parts, body, blen, ct.boundary);
		while (part_next(&parts, &part) && w->parts < FEEDBACK_PARTS_MAX)
			walk_entity(w, part.p, part.len, depth + 1, child_report, i++);
		if (i == 0) /* no boundary found: what there is may still be read */
			text_keep(w, false, body, blen, cte);
		else if (!parts.done)
			w->r->cut |= FEEDBACK_CUT_PARTS;
	} else if (is(&ct, "message", "delivery-status") ||
	           is(&ct, "message", "global-delivery-status")) {
		machine_read(w, false, body, blen, cte);
	} else if (is(&ct, "message", "feedback-report")) {
		machine_read(w, true, body, blen, cte);
	} else if (is(&ct, "text", "rfc822-headers") || is(&ct, "message", "global-headers") ||
	           is(&ct, "message", "rfc822-headers")) {
		struct decoded d;

		body_decode(cte, body, blen, FEEDBACK_HEADER_MAX, &d);
		original_read(w->r, d.p, d.len, FEEDBACK_RETURNED_HEADERS);
		decoded_free(&d);
	} else if (is(&ct, "message", "rfc822") || is(&ct, "message", "global")) {
		struct decoded d;

		/* Only its header section is read; RFC 2046 forbids encoding message/rfc822,
		 * some gateways do it anyway. */
		body_decode(cte, body, blen, cte == CTE_IDENTITY ? blen : FEEDBACK_HEADER_MAX, &d);
		original_read(w->r, d.p, d.len, FEEDBACK_RETURNED_MESSAGE);
		decoded_free(&d);
	} else if (report_type != NULL && index == 1 &&
	           (strcmp(report_type, "delivery-status") == 0 ||
	            strcmp(report_type, "global-delivery-status") == 0 ||
	            strcmp(report_type, "feedback-report") == 0)) {
		/* The machine-readable part of a report, mislabelled (text/plain is common). */
		machine_read(w, strcmp(report_type, "feedback-report") == 0, body, blen, cte);
	} else if (is(&ct, "text", "plain")) {
		text_keep(w, false, body, blen, cte);
	} else if (is(&ct, "text", "html")) {
		text_keep(w, true, body, blen, cte);
	}
}

enum feedback_kind
feedback_parse(const void *data, size_t len, struct feedback_report *r)
{
	struct walk w = {.r = r};
	const char *text;
	size_t text_len;

	memset(r, 0, sizeof(*r));
	r->verp_rcpt = -1;
	if (len > FEEDBACK_INPUT_MAX) {
		len = FEEDBACK_INPUT_MAX;
		r->cut |= FEEDBACK_CUT_INPUT;
	}
	walk_entity(&w, data, len, 0, NULL, 0);
	text = w.text.p != NULL ? w.text.p : w.html;
	text_len = w.text.p != NULL ? w.text.len : w.html_len;

	if (w.have_arf) {
		r->kind = FEEDBACK_ARF;
		/* Without Original-Rcpt-To, the recipient is the one the original was sent to
		 * (providers that redact it leave no "@"). */
		if (r->rcpt_total == 0 && strchr(r->original.to, '@') != NULL) {
			struct feedback_rcpt *e = rcpt_add(r);

			strlcpy_s(e->address, r->original.to, sizeof(e->address));
		}
	} else if (w.have_dsn) {
		r->kind = FEEDBACK_DSN;
		if (r->rcpt_total == 0 && text != NULL)
			plain_read(r, text, text_len, &w.hints);
	} else if (plain_read(r, text != NULL ? text : "", text != NULL ? text_len : 0, &w.hints)) {
		r->kind = FEEDBACK_PLAIN_BOUNCE;
	} else {
		r->kind = FEEDBACK_NOT_REPORT;
	}
	decoded_free(&w.text);
	free(w.html);
	return r->kind;
}

/* ---- attribution ---- */

enum feedback_verp_status
feedback_attribute(const struct feedback_verp_keys *keys, const char *rcpt_to,
                   struct feedback_report *r)
{
	const struct {
		const char *address;
		enum feedback_verp_source source;
	} tries[] = {
	    {rcpt_to, FEEDBACK_VERP_FROM_RCPT_TO},
	    {r->to, FEEDBACK_VERP_FROM_TO},
	    {r->original.return_path, FEEDBACK_VERP_FROM_RETURN_PATH},
	    {r->arf.original_mail_from, FEEDBACK_VERP_FROM_MAIL_FROM},
	};
	enum feedback_verp_status worst = FEEDBACK_VERP_NOT_OURS;

	r->verp_status = FEEDBACK_VERP_NOT_OURS;
	r->verp_source = FEEDBACK_VERP_FROM_NONE;
	r->verp_rcpt = -1;
	memset(&r->verp, 0, sizeof(r->verp));
	for (size_t i = 0; i < r->nrcpt; i++)
		r->rcpt[i].verp_match = false;
	for (size_t i = 0; i < nitems(tries); i++) {
		enum feedback_verp_status s;

		if (tries[i].address == NULL || tries[i].address[0] == '\0')
			continue;
		s = feedback_verp_decode(keys, tries[i].address, &r->verp);
		if (s == FEEDBACK_VERP_OK) {
			r->verp_status = s;
			r->verp_source = tries[i].source;
			break;
		}
		/* Forged outranks malformed: it is the one worth an operator's attention. */
		if (s == FEEDBACK_VERP_FORGED ||
		    (s == FEEDBACK_VERP_MALFORMED && worst != FEEDBACK_VERP_FORGED))
			worst = s;
	}
	if (r->verp_status != FEEDBACK_VERP_OK) {
		memset(&r->verp, 0, sizeof(r->verp));
		r->verp_status = worst;
		return worst;
	}
	for (size_t i = 0; i < r->nrcpt; i++) {
		struct feedback_rcpt *e = &r->rcpt[i];

		e->verp_match = feedback_verp_rcpt_matches(keys, &r->verp, e->address) ||
		                feedback_verp_rcpt_matches(keys, &r->verp, e->original);
		if (e->verp_match && r->verp_rcpt < 0)
			r->verp_rcpt = (int)i;
	}
	return r->verp_status;
}
