/* inject_build.c - the message an injection sends (docs/injection.md, "Built content").
 *
 * Built content is MIME (RFC 2045-2049): text/plain and text/html become
 * multipart/alternative, attachments make it multipart/mixed. What is written is 7-bit and
 * its lines are at most 78 octets (but for 7bit text parts and header fields given as they
 * are, at most 998): text that is not plain ASCII in short lines is quoted-printable,
 * attachments are base64, header values that are not ASCII are RFC 2047 encoded-words (UTF-8).
 * Date, Message-ID and MIME-Version are added; the X-Drover-* fields go on top, for the SMTP
 * pipeline to read and remove. Raw content is sent as given, substituted, with CRLF line ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/inject.h"
#include "core/core.h"

/* The boundaries start with "=_": a sequence that quoted-printable and base64 never write,
 * and that 7bit text is checked for (BOUNDARY_MARK), so no part can contain one. */
#define BOUNDARY_MARK "=_drover"
#define QP_LINE_MAX   76 /* RFC 2045 §6.7 (5) */
#define B64_LINE_MAX  76 /* RFC 2045 §6.8 */
/* RFC 2047 §2: an encoded-word is at most 75 octets: "=?UTF-8?B?" + 60 + "?=" = 72. */
#define EW_OCTETS_MAX 45

static const char b64_digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void
b64_group(struct inject_buf *out, const unsigned char *p, size_t n)
{
	char q[4];
	unsigned v = (unsigned)p[0] << 16 | (n > 1 ? (unsigned)p[1] << 8 : 0) | (n > 2 ? p[2] : 0);

	q[0] = b64_digits[(v >> 18) & 63];
	q[1] = b64_digits[(v >> 12) & 63];
	q[2] = n > 1 ? b64_digits[(v >> 6) & 63] : '=';
	q[3] = n > 2 ? b64_digits[v & 63] : '=';
	inject_buf_add(out, q, 4);
}

/* base64 in lines of 76 and CRLF. */
static void
b64_body(struct inject_buf *out, const unsigned char *p, size_t n)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i += 3) {
		b64_group(out, p + i, n - i < 3 ? n - i : 3);
		col += 4;
		if (col >= B64_LINE_MAX) {
			inject_buf_add(out, "\r\n", 2);
			col = 0;
		}
	}
	if (col > 0)
		inject_buf_add(out, "\r\n", 2);
}

static bool
ascii(const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)p[i] >= 0x80 || p[i] == '\0')
			return false;
	return true;
}

/* Text may go as 7bit: ASCII without NUL or a bare CR, lines within 998 octets, and nothing
 * that could be taken for a boundary. */
static bool
text_is_7bit(const char *p, size_t n)
{
	size_t line = 0;

	if (!ascii(p, n))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			return false;
		if (p[i] == '\n')
			line = 0;
		else if (p[i] != '\r' && ++line > INJECT_LINE_MAX)
			return false;
	}
	return strstr(p, BOUNDARY_MARK) == NULL;
}

/* Line ends (CRLF, LF or a lone CR) as CRLF. */
static void
crlf_text(struct inject_buf *out, const char *p, size_t n)
{
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\r' && p[i] != '\n')
			continue;
		inject_buf_add(out, p + start, i - start);
		inject_buf_add(out, "\r\n", 2);
		if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
			i++;
		start = i + 1;
	}
	inject_buf_add(out, p + start, n - start);
}

/* Quoted-printable (RFC 2045 §6.7): line ends are hard line breaks, soft breaks keep lines
 * within 76. */
static void
qp_body(struct inject_buf *out, const char *p, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		bool eol = c == '\r' || c == '\n';
		char enc[3];
		size_t len;

		if (eol) {
			inject_buf_add(out, "\r\n", 2);
			if (c == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
			col = 0;
			continue;
		}
		/* A blank before a line end (or the end) is encoded: transports strip them. */
		bool last = i + 1 >= n || p[i + 1] == '\r' || p[i + 1] == '\n';
		if ((c >= 33 && c <= 126 && c != '=') || ((c == ' ' || c == '\t') && !last)) {
			enc[0] = (char)c;
			len = 1;
		} else {
			enc[0] = '=';
			enc[1] = hex[c >> 4];
			enc[2] = hex[c & 15];
			len = 3;
		}
		if (col + len > QP_LINE_MAX - 1) {
			inject_buf_add(out, "=\r\n", 3);
			col = 0;
		}
		inject_buf_add(out, enc, len);
		col += len;
	}
}

/* The UTF-8 octets of s[0..n) as encoded-words (RFC 2047 "B", UTF-8), folded onto lines of
 * their own after the first. */
static void
encoded_words(struct inject_buf *out, const char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t take = n - i < EW_OCTETS_MAX ? n - i : EW_OCTETS_MAX;

		/* Never split a UTF-8 sequence between two words (RFC 2047 §5 (3)). */
		while (take > 1 && i + take < n && ((unsigned char)s[i + take] & 0xc0) == 0x80)
			take--;
		if (i > 0)
			inject_buf_add(out, "\r\n ", 3);
		inject_buf_str(out, "=?UTF-8?B?");
		for (size_t k = 0; k < take; k += 3)
			b64_group(out, (const unsigned char *)s + i + k,
			          take - k < 3 ? take - k : 3);
		inject_buf_str(out, "?=");
		i += take;
	}
}

/* "Name: value": as it is when it is ASCII and fits a line, else as encoded-words. */
static void
header_field(struct inject_buf *out, const char *name, const char *value)
{
	size_t n = strlen(value);

	inject_buf_str(out, name);
	inject_buf_str(out, ": ");
	if (ascii(value, n) && strlen(name) + 2 + n <= INJECT_LINE_MAX)
		inject_buf_add(out, value, n);
	else
		encoded_words(out, value, n);
	inject_buf_add(out, "\r\n", 2);
}

/* "Name: "Display Name" <email>" (the name quoted, or encoded-words when not ASCII). */
static void
mailbox_field(struct inject_buf *out, const char *field, const char *name, const char *email)
{
	inject_buf_str(out, field);
	inject_buf_str(out, ": ");
	if (name != NULL && name[0] != '\0') {
		size_t n = strlen(name);

		if (ascii(name, n) && n <= 200) {
			inject_buf_add(out, "\"", 1);
			for (size_t i = 0; i < n; i++) {
				if (name[i] == '"' || name[i] == '\\')
					inject_buf_add(out, "\\", 1);
				inject_buf_add(out, name + i, 1);
			}
			inject_buf_str(out, "\" <");
		} else {
			encoded_words(out, name, n);
			inject_buf_str(out, "\r\n <");
		}
	} else {
		inject_buf_add(out, "<", 1);
	}
	inject_buf_str(out, email);
	inject_buf_str(out, ">\r\n");
}

/* A text part: its header fields and content. */
static void
text_part(struct inject_buf *out, const char *subtype, const char *text)
{
	size_t n = strlen(text);
	bool plain = text_is_7bit(text, n);

	inject_buf_str(out, "Content-Type: text/");
	inject_buf_str(out, subtype);
	inject_buf_str(out, "; charset=utf-8\r\nContent-Transfer-Encoding: ");
	inject_buf_str(out, plain ? "7bit\r\n\r\n" : "quoted-printable\r\n\r\n");
	if (plain)
		crlf_text(out, text, n);
	else
		qp_body(out, text, n);
}

/* A parameter value (RFC 2045 quoted-string), or RFC 2231 for one that is not plain ASCII. */
static void
param(struct inject_buf *out, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(value);
	bool plain = ascii(value, n) && strpbrk(value, "\"\\") == NULL && n <= 78;

	inject_buf_str(out, ";\r\n ");
	inject_buf_str(out, name);
	if (plain) {
		inject_buf_str(out, "=\"");
		inject_buf_add(out, value, n);
		inject_buf_add(out, "\"", 1);
		return;
	}
	/* name*0*=utf-8''%E2%82%AC...; name*1*=... in pieces that keep lines short. */
	for (size_t i = 0, k = 0; i < n; k++) {
		char head[64];
		size_t col = 0;

		snprintf(head, sizeof(head), "%s*%zu*=%s", k > 0 ? ";\r\n " : "", k,
		         k == 0 ? "utf-8''" : "");
		if (k > 0)
			inject_buf_str(out, name);
		inject_buf_str(out, head);
		for (; i < n && col < 40; i++) {
			unsigned char c = (unsigned char)value[i];

			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || strchr("!#$&+-.^_`|~", c) != NULL) {
				inject_buf_add(out, &value[i], 1);
				col++;
			} else {
				char e[3] = {'%', hex[c >> 4], hex[c & 15]};

				inject_buf_add(out, e, 3);
				col += 3;
			}
		}
	}
}

static void
attachment_part(struct inject_buf *out, const struct inject_attachment *a)
{
	inject_buf_str(out, "Content-Type: ");
	inject_buf_str(out, a->content_type != NULL ? a->content_type : "application/octet-stream");
	if (a->file_name != NULL)
		param(out, "name", a->file_name);
	inject_buf_str(out,
	               "\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment");
	if (a->file_name != NULL)
		param(out, "filename", a->file_name);
	inject_buf_str(out, "\r\n\r\n");
	b64_body(out, a->data, a->len);
}

struct parts {
	const char *text, *html; /* rendered bodies; NULL: none */
	const struct inject_content *content;
	const char *unique;
};

static void
multipart_head(struct inject_buf *out, const char *subtype, const char *boundary)
{
	inject_buf_str(out, "Content-Type: multipart/");
	inject_buf_str(out, subtype);
	inject_buf_str(out, ";\r\n boundary=\"");
	inject_buf_str(out, boundary);
	inject_buf_str(out, "\"\r\n\r\n");
}

/* A part's content need not end with a line end: the CRLF before "--" is the delimiter's
 * (RFC 2046 §5.1.1), so a text's last line end, if it has one, stays its own. */
static void
delimiter(struct inject_buf *out, const char *boundary, bool first, bool close)
{
	inject_buf_str(out, first ? "--" : "\r\n--");
	inject_buf_str(out, boundary);
	inject_buf_str(out, close ? "--\r\n" : "\r\n");
}

/* The text and html, alone or as multipart/alternative. */
static void
alternative(struct inject_buf *out, const struct parts *p)
{
	char boundary[128];

	if (p->text == NULL || p->html == NULL) {
		if (p->text != NULL || p->html != NULL)
			text_part(out, p->text != NULL ? "plain" : "html",
			          p->text != NULL ? p->text : p->html);
		return;
	}
	snprintf(boundary, sizeof(boundary), BOUNDARY_MARK "_alt_%s", p->unique);
	multipart_head(out, "alternative", boundary);
	delimiter(out, boundary, true, false);
	text_part(out, "plain", p->text);
	delimiter(out, boundary, false, false);
	text_part(out, "html", p->html);
	delimiter(out, boundary, false, true);
}

static void
body(struct inject_buf *out, const struct parts *p)
{
	const struct inject_content *c = p->content;
	char boundary[128];

	if (c->nattachments == 0) {
		alternative(out, p);
		return;
	}
	snprintf(boundary, sizeof(boundary), BOUNDARY_MARK "_mix_%s", p->unique);
	multipart_head(out, "mixed", boundary);
	if (p->text != NULL || p->html != NULL) {
		delimiter(out, boundary, true, false);
		alternative(out, p);
	}
	for (size_t i = 0; i < c->nattachments; i++) {
		delimiter(out, boundary, i == 0 && p->text == NULL && p->html == NULL, false);
		attachment_part(out, &c->attachments[i]);
	}
	delimiter(out, boundary, false, true);
}

static bool
has_header(const struct inject_content *c, const char *name)
{
	for (size_t i = 0; i < c->nheaders; i++)
		if (strcasecmp(c->headers[i].name, name) == 0)
			return true;
	return false;
}

/* A template rendered into a string of its own (for header values and bodies). */
static char *
render(const char *tpl, const json_t *local, const json_t *global, bool header, int *rc, char *err,
       size_t errlen)
{
	struct inject_buf b = {0};

	if (tpl == NULL)
		return NULL;
	inject_buf_add(&b, "", 0);
	if (inject_render(&b, tpl, strlen(tpl), local, global, header, err, errlen) < 0)
		*rc = -1;
	if (b.p == NULL)
		return xstrdup("");
	return b.p;
}

static int
build_mime(const struct inject_request *r, const struct inject_recipient *first, size_t n,
           const struct inject_build_opts *o, struct inject_buf *out, char *err, size_t errlen)
{
	const struct inject_content *c = &r->content;
	const json_t *local = first->subst, *global = r->subst;
	int rc = 0;
	char *subject = render(c->subject, local, global, true, &rc, err, errlen);
	char *from_name = render(c->from.name, local, global, true, &rc, err, errlen);
	char *reply_name = render(c->reply_to.name, local, global, true, &rc, err, errlen);
	struct parts p = {
	    .text = render(c->text_body, local, global, false, &rc, err, errlen),
	    .html = render(c->html_body, local, global, false, &rc, err, errlen),
	    .content = c,
	    .unique = o->unique,
	};
	char date[64];

	if (!has_header(c, "Date")) {
		time_rfc5322(o->now_us, date, sizeof(date));
		header_field(out, "Date", date);
	}
	if (!has_header(c, "Message-ID")) {
		inject_buf_str(out, "Message-ID: <");
		inject_buf_str(out, o->unique);
		inject_buf_str(out, "@");
		inject_buf_str(out, o->hostname);
		inject_buf_str(out, ">\r\n");
	}
	if (c->from.email != NULL)
		mailbox_field(out, "From", from_name, c->from.email);
	else if (!has_header(c, "From") && r->sender[0] != '\0')
		mailbox_field(out, "From", NULL, r->sender);
	if (c->reply_to.email != NULL)
		mailbox_field(out, "Reply-To", reply_name, c->reply_to.email);
	if (!has_header(c, "To")) {
		if (n == 1)
			mailbox_field(out, "To", first->name, first->email);
		else /* never disclose one recipient to the others */
			inject_buf_str(out, "To: undisclosed-recipients:;\r\n");
	}
	if (subject != NULL)
		header_field(out, "Subject", subject);
	for (size_t i = 0; i < c->nheaders && rc == 0; i++) {
		char *v = render(c->headers[i].value, local, global, true, &rc, err, errlen);

		header_field(out, c->headers[i].name, v);
		free(v);
	}
	inject_buf_str(out, "MIME-Version: 1.0\r\n");
	if (rc == 0)
		body(out, &p);
	free(subject);
	free(from_name);
	free(reply_name);
	free((char *)p.text);
	free((char *)p.html);
	return rc;
}

int
inject_build(const struct inject_request *r, const size_t *rcpt, size_t n,
             const struct inject_build_opts *o, struct inject_buf *out, char *err, size_t errlen)
{
	const struct inject_recipient *first = &r->rcpt[rcpt[0]];
	const char *names[] = {"X-Drover-Stream", "X-Drover-Tenant", "X-Drover-Campaign"};
	const char *values[] = {r->stream, r->tenant, r->campaign};

	out->len = 0;
	inject_buf_add(out, "", 0);
	/* On top, so that the pipeline finds them whatever the content: it reads and removes
	 * them before anything stores or signs the message. */
	for (size_t i = 0; i < nitems(names); i++)
		if (values[i] != NULL)
			header_field(out, names[i], values[i]);
	if (r->content.raw == NULL) {
		int rc = build_mime(r, first, n, o, out, err, errlen);

		/* The message ends with a line end, as SMTP's DATA will need it. */
		if (out->len < 2 || memcmp(out->p + out->len - 2, "\r\n", 2) != 0)
			inject_buf_add(out, "\r\n", 2);
		return rc;
	}
	{
		struct inject_buf text = {0};
		const struct inject_content *c = &r->content;
		/* The header section (to its empty line) is substituted as header fields are:
		 * a value with CR or LF there is refused. */
		size_t head = inject_raw_header_len(c->raw, c->raw_len);
		int rc =
		    inject_render(&text, c->raw, head, first->subst, r->subst, true, err, errlen);
		if (rc == 0)
			rc = inject_render(&text, c->raw + head, c->raw_len - head, first->subst,
			                   r->subst, false, err, errlen);
		if (rc == 0) {
			crlf_text(out, text.p != NULL ? text.p : "", text.len);
			if (out->len < 2 || memcmp(out->p + out->len - 2, "\r\n", 2) != 0)
				inject_buf_add(out, "\r\n", 2);
		}
		inject_buf_free(&text);
		return rc;
	}
}
