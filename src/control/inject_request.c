/* inject_request.c - the injection request (docs/injection.md): its JSON read into a struct,
 * checked so that what reaches the SMTP pipeline is well formed, and the {{name}}
 * substitution.
 *
 * Everything a 400 is for is found here, before the first message leaves: a value that would
 * put CR or LF into a header field (header injection) is refused whichever recipient it
 * belongs to, not discovered half-way through the sending.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "control/inject.h"
#include "core/core.h"
#include "smtp/smtp.h"

void
inject_buf_add(struct inject_buf *b, const void *data, size_t len)
{
	/* Even for nothing: an empty buffer is "", never NULL. */
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + len + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	if (len > 0)
		memcpy(b->p + b->len, data, len);
	b->len += len;
	b->p[b->len] = '\0';
}

void
inject_buf_str(struct inject_buf *b, const char *s)
{
	inject_buf_add(b, s, strlen(s));
}

void
inject_buf_free(struct inject_buf *b)
{
	free(b->p);
	*b = (struct inject_buf){0};
}

static void __attribute__((format(printf, 3, 4)))
say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- Substitution ---- */

static bool
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.';
}

/* A placeholder at p[0..n): "{{", blanks, a name, blanks, "}}". Its length, and the name
 * in *name / *name_len; 0 if p does not start one. */
static size_t
placeholder(const char *p, size_t n, const char **name, size_t *name_len)
{
	size_t i = 2, start;

	if (n < 5 || p[0] != '{' || p[1] != '{')
		return 0;
	while (i < n && p[i] == ' ')
		i++;
	start = i;
	while (i < n && name_char(p[i]) && i - start <= INJECT_NAME_MAX)
		i++;
	if (i == start || i - start > INJECT_NAME_MAX)
		return 0;
	*name = p + start;
	*name_len = i - start;
	while (i < n && p[i] == ' ')
		i++;
	if (i + 1 >= n || p[i] != '}' || p[i + 1] != '}')
		return 0;
	return i + 2;
}

/* The value of a name as text: its string, its number written out, "true"/"false", or ""
 * for null or an unknown name. The string is in buf (or the JSON's own). */
static const char *
value_text(const json_t *local, const json_t *global, const char *name, size_t len, char *buf,
           size_t size)
{
	const json_t *v = NULL;

	if (local != NULL)
		v = json_object_getn(local, name, len);
	if (v == NULL && global != NULL)
		v = json_object_getn(global, name, len);
	if (json_is_string(v))
		return json_string_value(v);
	if (json_is_integer(v))
		snprintf(buf, size, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	else if (json_is_real(v))
		snprintf(buf, size, "%.17g", json_real_value(v));
	else if (json_is_boolean(v))
		snprintf(buf, size, "%s", json_is_true(v) ? "true" : "false");
	else
		buf[0] = '\0';
	return buf;
}

int
inject_render(struct inject_buf *out, const char *tpl, size_t len, const json_t *local,
              const json_t *global, bool header, char *err, size_t errlen)
{
	size_t i = 0, lit = 0;

	while (i < len) {
		const char *name, *v, *brace = memchr(tpl + i, '{', len - i);
		size_t name_len, n;
		char num[64];

		if (brace == NULL)
			break;
		i = (size_t)(brace - tpl);
		if ((n = placeholder(tpl + i, len - i, &name, &name_len)) == 0) {
			i++;
			continue;
		}
		inject_buf_add(out, tpl + lit, i - lit);
		v = value_text(local, global, name, name_len, num, sizeof(num));
		if (header && strpbrk(v, "\r\n") != NULL) {
			say(err, errlen,
			    "substitution \"%.*s\" contains CR or LF and is used in a header field",
			    (int)name_len, name);
			return -1;
		}
		inject_buf_str(out, v);
		i += n;
		lit = i;
	}
	inject_buf_add(out, tpl + lit, len - lit);
	return 0;
}

/* Calls fn for every placeholder's name in tpl[0..len). */
static void
each_name(const char *tpl, size_t len, void (*fn)(void *, const char *, size_t), void *arg)
{
	for (size_t i = 0; tpl != NULL && i < len;) {
		const char *name, *brace = memchr(tpl + i, '{', len - i);
		size_t name_len, n;

		if (brace == NULL)
			return;
		i = (size_t)(brace - tpl);
		if ((n = placeholder(tpl + i, len - i, &name, &name_len)) == 0) {
			i++;
			continue;
		}
		fn(arg, name, name_len);
		i += n;
	}
}

static void
add_name(void *arg, const char *name, size_t len)
{
	json_object_setn_new(arg, name, len, json_true());
}

static size_t
slen(const char *s)
{
	return s != NULL ? strlen(s) : 0;
}

size_t
inject_raw_header_len(const char *p, size_t n)
{
	size_t head = 0;

	while (head < n) {
		const char *lf = memchr(p + head, '\n', n - head);
		size_t eol;

		if (lf == NULL)
			return n;
		eol = (size_t)(lf - p);
		if (eol == head || (eol == head + 1 && p[head] == '\r'))
			return head; /* the empty line */
		head = eol + 1;
	}
	return n;
}

/* The names used in header fields (header true) or anywhere (false), as object keys. */
static json_t *
names_used(const struct inject_request *r, bool header)
{
	const struct inject_content *c = &r->content;
	json_t *set = json_object();

	if (c->raw != NULL) {
		each_name(c->raw, header ? inject_raw_header_len(c->raw, c->raw_len) : c->raw_len,
		          add_name, set);
		return set;
	}
	each_name(c->subject, slen(c->subject), add_name, set);
	each_name(c->from.name, slen(c->from.name), add_name, set);
	each_name(c->reply_to.name, slen(c->reply_to.name), add_name, set);
	for (size_t i = 0; i < c->nheaders; i++)
		each_name(c->headers[i].value, strlen(c->headers[i].value), add_name, set);
	if (!header) {
		each_name(c->text_body, slen(c->text_body), add_name, set);
		each_name(c->html_body, slen(c->html_body), add_name, set);
	}
	return set;
}

json_t *
inject_names(const struct inject_request *r)
{
	json_t *set = names_used(r, false), *names = json_array();
	const char *k;
	json_t *v;

	json_object_foreach(set, k, v) json_array_append_new(names, json_string(k));
	json_decref(set);
	return names;
}

void
inject_group_key(const struct inject_request *r, const json_t *names, size_t i,
                 struct inject_buf *key)
{
	size_t k;
	json_t *name;

	key->len = 0;
	inject_buf_add(key, "", 0);
	json_array_foreach(names, k, name)
	{
		const char *n = json_string_value(name);
		char num[64], len[24];
		const char *v =
		    value_text(r->rcpt[i].subst, r->subst, n, strlen(n), num, sizeof(num));

		/* Length-prefixed: no value can pass for two. */
		snprintf(len, sizeof(len), "%zu:", strlen(v));
		inject_buf_str(key, len);
		inject_buf_str(key, v);
	}
	/* The recipient's name is in To: of a message of its own; two recipients may share a
	 * message only when neither has one. */
	if (r->rcpt[i].name != NULL) {
		inject_buf_str(key, "\n");
		inject_buf_str(key, r->rcpt[i].email);
	}
}

/* ---- Reading the request ---- */

static char *
opt_string(const json_t *o, const char *key, bool *bad)
{
	const json_t *v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = true;
		return NULL;
	}
	return xstrndup(json_string_value(v), json_string_length(v));
}

/* A value that goes into a header field as given: no CR, LF or NUL. */
static bool
header_safe(const char *s)
{
	return s == NULL || strpbrk(s, "\r\n") == NULL;
}

/* Printable ASCII, 1-64 octets: a stream, tenant or campaign name. */
static bool
name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x21 || s[i] > 0x7e)
			return false;
	return true;
}

/* An address as MAIL or RCPT would take it: 0, or -1 with the refusal in code/reply. */
static int
address_check(const char *email, bool is_sender, bool *utf8, int *code, char *reply, size_t size)
{
	struct smtp_path path;
	struct smtp_error e;
	const char *params;
	char *args;
	int rc;

	if (strpbrk(email, "<>\r\n") != NULL || strlen(email) > SMTP_PATH_MAX * 4) {
		*code = 501;
		snprintf(reply, size, "5.1.3 Error: bad address syntax");
		return -1;
	}
	args = xasprintf("<%s>", email);
	rc = smtp_path_parse(args, is_sender, is_sender, true, &path, &params, &e);
	if (rc == 0 && *params != '\0')
		rc = 1; /* junk after the address: it had a '>' of its own, or blanks */
	free(args);
	if (rc != 0 || path.source_route) {
		*code = rc < 0 ? e.code : 501;
		snprintf(reply, size, "%s Error: %s", rc < 0 ? e.status : "5.1.3",
		         rc < 0 ? e.text : "bad address syntax");
		return -1;
	}
	*utf8 = path.utf8;
	return 0;
}

static bool
scalar(const json_t *v)
{
	return json_is_string(v) || json_is_number(v) || json_is_boolean(v) || json_is_null(v);
}

static int
subst_object(const json_t *v, json_t **out, const char *what, char *err, size_t errlen)
{
	const char *k;
	json_t *x;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v)) {
		say(err, errlen, "%s: must be an object of names and values", what);
		return -1;
	}
	json_object_foreach((json_t *)v, k, x) if (!scalar(x))
	{
		say(err, errlen, "%s.%s: a value must be a string, a number, a boolean or null",
		    what, k);
		return -1;
	}
	*out = json_incref((json_t *)v);
	return 0;
}

static int
read_mailbox(const json_t *v, struct inject_mailbox *m, const char *what, char *err, size_t errlen)
{
	bool bad = false, utf8;
	char reply[INJECT_REPLY_MAX];
	int code;

	if (v == NULL || json_is_null(v))
		return 0;
	if (json_is_string(v)) {
		m->email = xstrdup(json_string_value(v));
	} else if (json_is_object(v)) {
		m->email = opt_string(v, "email", &bad);
		m->name = opt_string(v, "name", &bad);
	} else {
		bad = true;
	}
	if (bad || m->email == NULL) {
		say(err, errlen, "content.%s: expected {\"email\": \"...\", \"name\": \"...\"}",
		    what);
		return -1;
	}
	if (!header_safe(m->name)) {
		say(err, errlen, "content.%s.name: CR or LF in a header field", what);
		return -1;
	}
	if (m->email[0] == '\0' ||
	    address_check(m->email, true, &utf8, &code, reply, sizeof(reply)) < 0) {
		say(err, errlen, "content.%s.email: \"%.100s\" is no address", what, m->email);
		return -1;
	}
	return 0;
}

/* Field names the builder writes itself, or that the request says otherwise. */
static bool
header_reserved(const char *name)
{
	static const char *const reserved[] = {"MIME-Version", "Content-Type",
	                                       "Content-Transfer-Encoding"};

	if (strncasecmp(name, "X-Drover-", 9) == 0)
		return true;
	for (size_t i = 0; i < nitems(reserved); i++)
		if (strcasecmp(name, reserved[i]) == 0)
			return true;
	return false;
}

/* RFC 5322 §3.6.8 field name: printable ASCII but ':'. */
static bool
field_name_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 76)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 33 || s[i] > 126 || s[i] == ':')
			return false;
	return true;
}

static int
read_headers(const json_t *v, struct inject_content *c, char *err, size_t errlen)
{
	const char *k;
	json_t *x;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_object(v)) {
		say(err, errlen, "content.headers: must be an object of field names and values");
		return -1;
	}
	if (json_object_size(v) > INJECT_HEADERS_MAX) {
		say(err, errlen, "content.headers: more than %d fields", INJECT_HEADERS_MAX);
		return -1;
	}
	c->headers = xcalloc(json_object_size(v) + 1, sizeof(*c->headers));
	json_object_foreach((json_t *)v, k, x)
	{
		if (!field_name_valid(k)) {
			say(err, errlen, "content.headers: \"%.80s\" is no field name", k);
			return -1;
		}
		if (header_reserved(k)) {
			say(err, errlen,
			    "content.headers: %s is written by the server (use stream, tenant, "
			    "campaign, attachments)",
			    k);
			return -1;
		}
		if (!json_is_string(x)) {
			say(err, errlen, "content.headers.%s: must be a string", k);
			return -1;
		}
		if (!header_safe(json_string_value(x)) ||
		    strlen(json_string_value(x)) != json_string_length(x)) {
			say(err, errlen, "content.headers.%s: CR, LF or NUL in a header field", k);
			return -1;
		}
		c->headers[c->nheaders].name = xstrdup(k);
		c->headers[c->nheaders++].value = xstrdup(json_string_value(x));
	}
	return 0;
}

/* base64 (RFC 4648 §4), blanks and line ends ignored. Its length, or -1. */
static long
base64_decode(const char *s, size_t n, unsigned char *out)
{
	unsigned acc = 0, bits = 0, pad = 0;
	long o = 0;

	for (size_t i = 0; i < n; i++) {
		int v;

		if (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')
			continue;
		if (s[i] == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (v = base64_value((unsigned char)s[i])) < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (pad > 2 || bits >= 6)
		return -1;
	return o;
}

static bool
content_type_valid(const char *s)
{
	const char *slash = strchr(s, '/');

	if (slash == NULL || slash == s || slash[1] == '\0' || strlen(s) > 200)
		return false;
	for (const char *p = s; *p; p++)
		if (*p < 33 || *p > 126 || strchr("()<>@,;:\\\"[]?=", *p) != NULL)
			if (*p != '/')
				return false;
	return true;
}

static int
read_attachments(const json_t *v, struct inject_content *c, char *err, size_t errlen)
{
	size_t i;
	json_t *a;

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_array(v) || json_array_size(v) > INJECT_ATTACHMENTS_MAX) {
		say(err, errlen, "content.attachments: must be an array of at most %d objects",
		    INJECT_ATTACHMENTS_MAX);
		return -1;
	}
	c->attachments = xcalloc(json_array_size(v) + 1, sizeof(*c->attachments));
	json_array_foreach(v, i, a)
	{
		struct inject_attachment *at = &c->attachments[c->nattachments++];
		const json_t *data = json_object_get(a, "data"),
		             *b64 = json_object_get(a, "base64");
		bool bad = false;
		long len;

		if (!json_is_object(a) || !json_is_string(data) ||
		    (b64 != NULL && !json_is_boolean(b64))) {
			say(err, errlen,
			    "content.attachments[%zu]: expected {\"data\": \"...\", "
			    "\"content_type\": \"...\", \"file_name\": \"...\", \"base64\": bool}",
			    i);
			return -1;
		}
		at->content_type = opt_string(a, "content_type", &bad);
		at->file_name = opt_string(a, "file_name", &bad);
		if (bad || (at->content_type != NULL && !content_type_valid(at->content_type)) ||
		    !header_safe(at->file_name) ||
		    (at->file_name != NULL && strlen(at->file_name) > 255)) {
			say(err, errlen,
			    "content.attachments[%zu]: content_type must be type/subtype, "
			    "file_name a "
			    "string of at most 255 octets without CR or LF",
			    i);
			return -1;
		}
		at->data = xmalloc(json_string_length(data) + 1);
		if (json_is_true(b64)) {
			len = base64_decode(json_string_value(data), json_string_length(data),
			                    at->data);
			if (len < 0) {
				say(err, errlen, "content.attachments[%zu].data: not base64", i);
				return -1;
			}
			at->len = (size_t)len;
		} else {
			at->len = json_string_length(data);
			memcpy(at->data, json_string_value(data), at->len);
		}
	}
	return 0;
}

static int
read_content(const json_t *v, struct inject_content *c, char *err, size_t errlen)
{
	bool bad = false;

	if (json_is_string(v)) {
		c->raw_len = json_string_length(v);
		c->raw = xstrndup(json_string_value(v), c->raw_len);
		if (c->raw_len == 0) {
			say(err, errlen, "content: empty");
			return -1;
		}
		return 0;
	}
	if (!json_is_object(v)) {
		say(err, errlen, "content: required, raw RFC 5322 text (a string) or an object");
		return -1;
	}
	c->subject = opt_string(v, "subject", &bad);
	c->text_body = opt_string(v, "text_body", &bad);
	c->html_body = opt_string(v, "html_body", &bad);
	if (bad) {
		say(err, errlen, "content: subject, text_body and html_body must be strings");
		return -1;
	}
	if (!header_safe(c->subject)) {
		say(err, errlen, "content.subject: CR or LF in a header field");
		return -1;
	}
	if (read_mailbox(json_object_get(v, "from"), &c->from, "from", err, errlen) < 0 ||
	    read_mailbox(json_object_get(v, "reply_to"), &c->reply_to, "reply_to", err, errlen) <
	        0 ||
	    read_headers(json_object_get(v, "headers"), c, err, errlen) < 0 ||
	    read_attachments(json_object_get(v, "attachments"), c, err, errlen) < 0)
		return -1;
	if (c->text_body == NULL && c->html_body == NULL && c->nattachments == 0) {
		say(err, errlen, "content: needs text_body, html_body or attachments");
		return -1;
	}
	return 0;
}

static int
read_recipient(const json_t *v, size_t i, struct inject_recipient *r, char *err, size_t errlen)
{
	bool bad = false;

	if (json_is_string(v)) {
		r->email = xstrndup(json_string_value(v), json_string_length(v));
	} else if (json_is_object(v)) {
		r->email = opt_string(v, "email", &bad);
		r->name = opt_string(v, "name", &bad);
		if (subst_object(json_object_get(v, "substitutions"), &r->subst, "substitutions",
		                 err, errlen) < 0) {
			size_t n = strlen(err);

			snprintf(err + n, errlen - n, " (recipients[%zu])", i);
			return -1;
		}
	}
	if (bad || r->email == NULL) {
		say(err, errlen,
		    "recipients[%zu]: expected \"address\" or {\"email\": \"address\", "
		    "\"substitutions\": {...}}",
		    i);
		return -1;
	}
	if (!header_safe(r->name)) {
		say(err, errlen, "recipients[%zu].name: CR or LF in a header field", i);
		return -1;
	}
	/* A bad address is the recipient's failure, as RCPT would answer it, not the request's:
	 * one typo must not hold back thousands of good recipients. */
	if (strlen(r->email) !=
	        json_string_length(json_is_string(v) ? v : json_object_get(v, "email")) ||
	    address_check(r->email, false, &r->utf8, &r->code, r->reply, sizeof(r->reply)) < 0) {
		if (r->code == 0) {
			r->code = 501;
			snprintf(r->reply, sizeof(r->reply), "5.1.3 Error: bad address syntax");
		}
	}
	return 0;
}

/* CR or LF from a substitution into a header field: refused for every recipient now, not
 * found when its turn to be sent comes. */
static int
check_header_values(const struct inject_request *r, char *err, size_t errlen)
{
	json_t *set = names_used(r, true);
	const char *name;
	json_t *dummy;
	int rc = 0;

	json_object_foreach(set, name, dummy)
	{
		const json_t *v = r->subst != NULL ? json_object_get(r->subst, name) : NULL;

		if (json_is_string(v) && !header_safe(json_string_value(v))) {
			say(err, errlen,
			    "substitutions.%s: CR or LF, and {{%s}} is used in a header field",
			    name, name);
			rc = -1;
			break;
		}
		for (size_t i = 0; i < r->nrcpt && rc == 0; i++) {
			v = r->rcpt[i].subst != NULL ? json_object_get(r->rcpt[i].subst, name)
			                             : NULL;
			if (json_is_string(v) && !header_safe(json_string_value(v))) {
				say(err, errlen,
				    "recipients[%zu].substitutions.%s: CR or LF, and {{%s}} is "
				    "used in a "
				    "header field",
				    i, name, name);
				rc = -1;
			}
		}
		if (rc < 0)
			break;
	}
	json_decref(set);
	return rc;
}

int
inject_request_parse(const json_t *body, struct inject_request *r, char *err, size_t errlen)
{
	const json_t *rcpts = json_object_get(body, "recipients");
	const json_t *sender = json_object_get(body, "envelope_sender");
	const char *names[] = {"stream", "tenant", "campaign"};
	char **fields[] = {&r->stream, &r->tenant, &r->campaign};
	char reply[INJECT_REPLY_MAX];
	bool bad = false;
	size_t i;
	json_t *v;
	int code;

	memset(r, 0, sizeof(*r));
	if (!json_is_object(body)) {
		say(err, errlen, "the body must be a JSON object");
		return -1;
	}
	if (!json_is_string(sender)) {
		say(err, errlen, "envelope_sender: required, an address (or \"\" for <>)");
		goto fail;
	}
	r->sender = xstrdup(json_string_value(sender));
	if (r->sender[0] != '\0' &&
	    (strlen(r->sender) != json_string_length(sender) ||
	     address_check(r->sender, true, &r->sender_utf8, &code, reply, sizeof(reply)) < 0)) {
		say(err, errlen, "envelope_sender: \"%.100s\" is no address", r->sender);
		goto fail;
	}
	if (!json_is_array(rcpts) || json_array_size(rcpts) == 0) {
		say(err, errlen, "recipients: required, a non-empty array");
		goto fail;
	}
	if (json_array_size(rcpts) > INJECT_RECIPIENTS_MAX) {
		say(err, errlen, "recipients: more than %d in one request", INJECT_RECIPIENTS_MAX);
		goto fail;
	}
	r->rcpt = xcalloc(json_array_size(rcpts), sizeof(*r->rcpt));
	json_array_foreach(rcpts, i, v)
	{
		r->nrcpt++;
		if (read_recipient(v, i, &r->rcpt[i], err, errlen) < 0)
			goto fail;
	}
	if (subst_object(json_object_get(body, "substitutions"), &r->subst, "substitutions", err,
	                 errlen) < 0)
		goto fail;
	if (json_object_get(body, "content") == NULL) {
		say(err, errlen, "content: required, raw RFC 5322 text (a string) or an object");
		goto fail;
	}
	if (read_content(json_object_get(body, "content"), &r->content, err, errlen) < 0)
		goto fail;
	for (i = 0; i < nitems(names); i++) {
		*fields[i] = opt_string(body, names[i], &bad);
		if (bad || (*fields[i] != NULL && !name_valid(*fields[i]))) {
			say(err, errlen, "%s: must be a name of 1-64 printable ASCII characters",
			    names[i]);
			goto fail;
		}
	}
	if (check_header_values(r, err, errlen) < 0)
		goto fail;
	return 0;
fail:
	inject_request_free(r);
	return -1;
}

void
inject_request_free(struct inject_request *r)
{
	struct inject_content *c = &r->content;

	free(r->sender);
	for (size_t i = 0; i < r->nrcpt; i++) {
		free(r->rcpt[i].email);
		free(r->rcpt[i].name);
		json_decref(r->rcpt[i].subst);
	}
	free(r->rcpt);
	json_decref(r->subst);
	free(c->raw);
	free(c->from.email);
	free(c->from.name);
	free(c->reply_to.email);
	free(c->reply_to.name);
	free(c->subject);
	free(c->text_body);
	free(c->html_body);
	for (size_t i = 0; i < c->nheaders; i++) {
		free(c->headers[i].name);
		free(c->headers[i].value);
	}
	free(c->headers);
	for (size_t i = 0; i < c->nattachments; i++) {
		free(c->attachments[i].content_type);
		free(c->attachments[i].file_name);
		free(c->attachments[i].data);
	}
	free(c->attachments);
	free(r->stream);
	free(r->tenant);
	free(r->campaign);
	memset(r, 0, sizeof(*r));
}
