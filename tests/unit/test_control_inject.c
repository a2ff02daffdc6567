/* HTTP injection (control/inject_request.c, inject_build.c): {{name}} substitution, the
 * request's checks (what is a 400, what is one recipient's failure), which recipients share a
 * message, and the messages built, parsed back: their structure, boundaries, encodings, line
 * ends and lengths. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "control/inject.h"
#include "core/core.h"

static json_t *
J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (j == NULL)
		fail_msg("bad JSON in the test: %s: %s", e.text, text);
	return j;
}

static char *
render(const char *tpl, const char *local, const char *global, bool header, int *rc)
{
	struct inject_buf b = {0};
	json_t *l = local ? J(local) : NULL, *g = global ? J(global) : NULL;
	char err[256];

	inject_buf_add(&b, "", 0);
	*rc = inject_render(&b, tpl, strlen(tpl), l, g, header, err, sizeof(err));
	json_decref(l);
	json_decref(g);
	return b.p ? b.p : xstrdup("");
}

static void
test_substitution(void **state)
{
	int rc;
	char *s;

	s = render("Hi {{name}}, {{ product }} {{n}} {{ok}} {{none}}[{{unknown}}]",
	           "{\"name\": \"Ann\", \"n\": 3}",
	           "{\"name\": \"Bob\", \"product\": \"Drover\", \"ok\": true, \"none\": null}",
	           false, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(s, "Hi Ann, Drover 3 true []"); /* recipient's wins; unknown: "" */
	free(s);
	/* Not placeholders: left as they are. */
	s = render("{{}} {x}} {{ a b }} {{a}", "{\"a\": \"A\"}", NULL, false, &rc);
	assert_string_equal(s, "{{}} {x}} {{ a b }} {{a}");
	free(s);
	/* Values inserted literally, even braces and line ends in a body. */
	s = render("<{{v}}>", "{\"v\": \"{{v}}\\r\\n<b>\"}", NULL, false, &rc);
	assert_int_equal(rc, 0);
	assert_string_equal(s, "<{{v}}\r\n<b>>");
	free(s);
	/* ... but never CR or LF in a header field. */
	s = render("Subject {{v}}", "{\"v\": \"x\\nBcc: evil@example.com\"}", NULL, true, &rc);
	assert_int_equal(rc, -1);
	free(s);
	/* A name too long is text. */
	char tpl[100];
	memset(tpl, 'a', sizeof(tpl));
	memcpy(tpl, "{{", 2);
	memcpy(tpl + 2 + INJECT_NAME_MAX + 1, "}}", 3);
	s = render(tpl, NULL, NULL, false, &rc);
	assert_string_equal(s, tpl);
	free(s);
}

static int
parse(const char *text, struct inject_request *r, char *err, size_t errlen)
{
	json_t *j = J(text);
	int rc = inject_request_parse(j, r, err, errlen);

	json_decref(j);
	return rc;
}

static void
expect_400(const char *text, const char *why)
{
	struct inject_request r;
	char err[512];

	if (parse(text, &r, err, sizeof(err)) == 0)
		fail_msg("accepted: %s", text);
	if (strstr(err, why) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", err, why);
}

#define RCPT    "\"recipients\": [\"a@example.net\"]"
#define SENDER  "\"envelope_sender\": \"b@example.com\""
#define CONTENT "\"content\": {\"text_body\": \"hi\"}"

static void
test_request_errors(void **state)
{
	struct inject_request r;
	char err[512];

	expect_400("[]", "JSON object");
	expect_400("{" RCPT ", " CONTENT "}", "envelope_sender");
	expect_400("{" SENDER ", " CONTENT "}", "recipients");
	expect_400("{" SENDER ", \"recipients\": [], " CONTENT "}", "recipients");
	expect_400("{" SENDER ", " RCPT "}", "content");
	expect_400("{\"envelope_sender\": \"not an address\", " RCPT ", " CONTENT "}",
	           "envelope_sender");
	expect_400("{" SENDER ", " RCPT ", \"content\": {\"subject\": \"x\"}}", "text_body");
	expect_400("{" SENDER ", " RCPT
	           ", \"content\": {\"text_body\": \"x\", \"subject\": \"a\\r\\nBcc: x\"}}",
	           "subject");
	expect_400("{" SENDER ", " RCPT
	           ", \"content\": {\"text_body\": \"x\", \"headers\": {\"X-A\": \"1\\n2\"}}}",
	           "X-A");
	expect_400("{" SENDER ", " RCPT
	           ", \"content\": {\"text_body\": \"x\", \"headers\": {\"Bad Name\": \"1\"}}}",
	           "field name");
	expect_400(
	    "{" SENDER ", " RCPT
	    ", \"content\": {\"text_body\": \"x\", \"headers\": {\"X-Drover-Pool\": \"p\"}}}",
	    "X-Drover-Pool");
	expect_400("{" SENDER ", " RCPT ", " CONTENT ", \"stream\": \"two words\"}", "stream");
	expect_400("{" SENDER ", " RCPT ", " CONTENT ", \"substitutions\": {\"a\": [1]}}",
	           "substitutions.a");
	expect_400("{" SENDER ", " RCPT ", \"content\": {\"text_body\": \"x\", \"attachments\": "
	           "[{\"data\": \"!!\", \"base64\": true}]}}",
	           "base64");
	/* A substitution with a line break, used in a header field: refused for any recipient. */
	expect_400("{" SENDER
	           ", \"recipients\": [\"a@example.net\", {\"email\": \"c@example.net\", "
	           "\"substitutions\": {\"n\": \"x\\r\\nBcc: evil@example.com\"}}], "
	           "\"content\": {\"text_body\": \"x\", \"subject\": \"Hi {{n}}\"}}",
	           "recipients[1].substitutions.n");
	expect_400("{" SENDER ", " RCPT ", \"substitutions\": {\"n\": \"a\\nb\"}, "
	           "\"content\": \"Subject: {{n}}\\r\\n\\r\\nbody\"}",
	           "substitutions.n");
	/* In a body it is fine; and in raw content's body too. */
	assert_int_equal(parse("{" SENDER ", " RCPT ", \"substitutions\": {\"n\": \"a\\nb\"}, "
	                       "\"content\": \"Subject: x\\r\\n\\r\\n{{n}}\"}",
	                       &r, err, sizeof(err)),
	                 0);
	inject_request_free(&r);
	/* A bad recipient address is that recipient's failure, not the request's. */
	assert_int_equal(parse("{\"envelope_sender\": \"\", \"recipients\": [\"a@example.net\", "
	                       "\"no-at-sign\", \"x@[bad\", {\"email\": \"c@example.net\", "
	                       "\"name\": \"C\"}], " CONTENT "}",
	                       &r, err, sizeof(err)),
	                 0);
	assert_int_equal(r.nrcpt, 4);
	assert_int_equal(r.rcpt[0].code, 0);
	assert_true(r.rcpt[1].code >= 500);
	assert_non_null(strstr(r.rcpt[1].reply, "5."));
	assert_true(r.rcpt[2].code >= 500);
	assert_int_equal(r.rcpt[3].code, 0);
	assert_string_equal(r.rcpt[3].name, "C");
	assert_string_equal(r.sender, "");
	inject_request_free(&r);
}

static void
test_grouping(void **state)
{
	struct inject_request r;
	struct inject_buf k[5] = {{0}};
	char err[256];
	json_t *names;

	assert_int_equal(
	    parse(
	        "{" SENDER ", \"substitutions\": {\"p\": \"D\"}, \"recipients\": ["
	        "{\"email\": \"a@x.net\", \"substitutions\": {\"name\": \"Ann\", \"unused\": 1}},"
	        "{\"email\": \"b@x.net\", \"substitutions\": {\"name\": \"Ann\"}},"
	        "{\"email\": \"c@x.net\", \"substitutions\": {\"name\": \"Bob\"}},"
	        "{\"email\": \"d@x.net\", \"substitutions\": {\"name\": \"Ann\"}, \"name\": \"D\"},"
	        "{\"email\": \"e@x.net\", \"substitutions\": {\"name\": \"Ann\", \"p\": \"E\"}}],"
	        "\"content\": {\"text_body\": \"{{name}} {{p}}\"}}",
	        &r, err, sizeof(err)),
	    0);
	names = inject_names(&r);
	assert_int_equal(json_array_size(names), 2);
	for (size_t i = 0; i < 5; i++)
		inject_group_key(&r, names, i, &k[i]);
	assert_true(k[0].len == k[1].len && memcmp(k[0].p, k[1].p, k[0].len) == 0);
	assert_false(k[0].len == k[2].len && memcmp(k[0].p, k[2].p, k[0].len) == 0);
	assert_false(k[0].len == k[3].len && memcmp(k[0].p, k[3].p, k[0].len) == 0); /* a name */
	assert_false(k[0].len == k[4].len && memcmp(k[0].p, k[4].p, k[0].len) == 0);
	for (size_t i = 0; i < 5; i++)
		inject_buf_free(&k[i]);
	json_decref(names);
	inject_request_free(&r);
}

/* ---- Reading a built message back ---- */

static void
check_lines(const char *m, size_t n)
{
	size_t line = 0;

	for (size_t i = 0; i < n; i++) {
		if (m[i] == '\n')
			assert_true(i > 0 && m[i - 1] == '\r'); /* no bare LF */
		if (m[i] == '\r')
			assert_true(i + 1 < n && m[i + 1] == '\n'); /* no bare CR */
		line = m[i] == '\n' ? 0 : line + 1;
		assert_true(line <= INJECT_LINE_MAX + 1);
	}
	assert_true(n >= 2 && memcmp(m + n - 2, "\r\n", 2) == 0);
}

/* The unfolded value of the first field named name in the header section at m, malloc'd. */
static char *
field(const char *m, const char *name)
{
	size_t n = strlen(name);
	const char *end = strstr(m, "\r\n\r\n");

	for (const char *p = m; p != NULL && p < end; p = strstr(p, "\r\n"), p = p ? p + 2 : p) {
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			struct inject_buf v = {0};
			const char *q = p + n + 1;

			while (*q == ' ')
				q++;
			for (; *q; q++) {
				if (q[0] == '\r' && q[1] == '\n' && q[2] != ' ' && q[2] != '\t')
					break;
				if (*q != '\r' && *q != '\n')
					inject_buf_add(&v, q, 1);
			}
			inject_buf_add(&v, "", 0);
			return v.p ? v.p : xstrdup("");
		}
	}
	return NULL;
}

static size_t
b64dec(const char *s, size_t n, unsigned char *out)
{
	unsigned acc = 0, bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int v = base64_value((unsigned char)s[i]);

		if (v < 0)
			continue;
		acc = (acc << 6) | (unsigned)v;
		if ((bits += 6) >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(acc >> bits);
		}
	}
	return o;
}

static char *
qpdec(const char *s, size_t n)
{
	struct inject_buf b = {0};

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '=' && i + 2 < n && s[i + 1] == '\r' && s[i + 2] == '\n') {
			i += 2;
		} else if (s[i] == '=' && i + 2 < n) {
			char h[3] = {s[i + 1], s[i + 2], 0};
			char c = (char)strtol(h, NULL, 16);

			inject_buf_add(&b, &c, 1);
			i += 2;
		} else {
			inject_buf_add(&b, s + i, 1);
		}
	}
	inject_buf_add(&b, "", 0);
	return b.p;
}

/* The decoded "=?UTF-8?B?...?=" words of a field value, concatenated. */
static char *
ewdec(const char *v)
{
	struct inject_buf b = {0};
	const char *p = v;

	while ((p = strstr(p, "=?UTF-8?B?")) != NULL) {
		const char *e = strstr(p + 10, "?=");
		unsigned char out[128];
		size_t n = b64dec(p + 10, (size_t)(e - p - 10), out);

		assert_true(e - p + 2 <= 75); /* RFC 2047 §2 */
		inject_buf_add(&b, out, n);
		p = e + 2;
	}
	inject_buf_add(&b, "", 0);
	return b.p;
}

/* The body parts between --boundary lines, each its header section and content. */
static size_t
parts(const char *m, const char *boundary, const char **start, size_t *len, size_t max)
{
	char delim[200];
	size_t n = 0;
	const char *p;

	snprintf(delim, sizeof(delim), "\r\n--%s", boundary);
	p = strstr(m, delim);
	assert_non_null(p);
	while (n < max) {
		const char *next;

		p += strlen(delim);
		if (strncmp(p, "--", 2) == 0)
			break; /* the close delimiter */
		assert_true(strncmp(p, "\r\n", 2) == 0);
		p += 2;
		next = strstr(p, delim);
		assert_non_null(next);
		start[n] = p;
		len[n++] = (size_t)(next - p);
		p = next;
	}
	return n;
}

static char *
boundary_of(const char *head)
{
	char *ct = field(head, "Content-Type"), *b = strstr(ct, "boundary=\""), *out;

	assert_non_null(b);
	out = xstrndup(b + 10, strcspn(b + 10, "\""));
	free(ct);
	return out;
}

static const struct inject_build_opts opts = {
    .hostname = "mta.example.com", .now_us = 1700000000ULL * 1000000, .unique = "abc.1"};

static char *
build(const char *request, size_t rcpt, size_t *len)
{
	struct inject_request r;
	struct inject_buf out = {0};
	char err[256];
	size_t idx[1] = {rcpt};

	if (parse(request, &r, err, sizeof(err)) < 0)
		fail_msg("parse: %s", err);
	assert_int_equal(inject_build(&r, idx, 1, &opts, &out, err, sizeof(err)), 0);
	inject_request_free(&r);
	check_lines(out.p, out.len);
	*len = out.len;
	return out.p;
}

static void
test_build_text(void **state)
{
	size_t n;
	char *m =
	    build("{" SENDER ", \"recipients\": [{\"email\": \"a@example.net\", \"name\": \"Ann "
	          "\\\"A\\\"\", \"substitutions\": {\"n\": \"Ann\"}}], "
	          "\"stream\": \"bulk\", \"tenant\": \"acme\", \"campaign\": \"c1\", "
	          "\"content\": {\"from\": {\"email\": \"news@example.com\", \"name\": \"News\"}, "
	          "\"subject\": \"Hello {{n}}\", \"text_body\": \"Dear {{n}},\\nbye\", "
	          "\"headers\": {\"X-Tag\": \"t-{{n}}\"}}}",
	          0, &n);
	static const char *const expect[][2] = {
	    {"Subject", "Hello Ann"},
	    {"From", "\"News\" <news@example.com>"},
	    {"To", "\"Ann \\\"A\\\"\" <a@example.net>"},
	    {"X-Tag", "t-Ann"},
	    {"Message-ID", "<abc.1@mta.example.com>"},
	    {"Date", "Tue, 14 Nov 2023 22:13:20 +0000"},
	    {"MIME-Version", "1.0"},
	    {"Content-Transfer-Encoding", "7bit"},
	};
	const char *top = "X-Drover-Stream: bulk\r\nX-Drover-Tenant: acme\r\n"
	                  "X-Drover-Campaign: c1\r\n";

	/* The X-Drover-* fields first, for the pipeline to take away. */
	assert_true(strncmp(m, top, strlen(top)) == 0);
	for (size_t i = 0; i < nitems(expect); i++) {
		char *v = field(m, expect[i][0]);

		assert_non_null(v);
		assert_string_equal(v, expect[i][1]);
		free(v);
	}
	assert_non_null(strstr(m, "\r\n\r\nDear Ann,\r\nbye\r\n"));
	free(m);
}

static void
test_build_utf8(void **state)
{
	const char *subject = "Grüße aus Köln — ünïcödé everywhere, long enough to need two "
	                      "encoded-words or more ✓✓✓";
	char req[1024], *m, *v, *d, *q;
	size_t n;

	snprintf(
	    req, sizeof(req),
	    "{" SENDER ", " RCPT ", \"content\": {\"from\": {\"email\": \"a@example.com\", "
	    "\"name\": \"Zoë\"}, \"subject\": \"%s\", \"text_body\": \"Prix: 10 € = cher\\n%s\"}}",
	    subject, "  trailing blank ");
	m = build(req, 0, &n);
	v = field(m, "Subject");
	d = ewdec(v);
	assert_string_equal(d, subject);
	free(v);
	free(d);
	v = field(m, "From");
	d = ewdec(v);
	assert_string_equal(d, "Zoë");
	assert_non_null(strstr(v, "<a@example.com>"));
	free(v);
	free(d);
	v = field(m, "Content-Transfer-Encoding");
	assert_string_equal(v, "quoted-printable");
	free(v);
	/* 7-bit on the wire; decoded, the text as given (line ends CRLF). */
	for (size_t i = 0; i < n; i++)
		assert_true((unsigned char)m[i] < 0x80);
	q = qpdec(strstr(m, "\r\n\r\n") + 4, strlen(strstr(m, "\r\n\r\n") + 4));
	assert_string_equal(q, "Prix: 10 € = cher\r\n  trailing blank \r\n");
	free(q);
	free(m);
}

static void
test_build_multipart(void **state)
{
	static const unsigned char bin[] = {0, 1, 2, 0xff, 0xfe, '\r', '\n', '-', '-', 'x', 0x80};
	char req[2048], b64[64], *m, *b, *b2, *v;
	const char *ps[8], *ps2[8];
	size_t pl[8], pl2[8], n, np;
	unsigned char out[64];

	/* bin in base64, written out by hand: AAEC//4NCi0teIA= */
	snprintf(b64, sizeof(b64), "AAEC//4NCi0teIA=");
	snprintf(req, sizeof(req),
	         "{" SENDER ", \"recipients\": [\"a@example.net\", \"b@example.net\"], "
	         "\"content\": {\"subject\": \"s\", \"text_body\": \"plain\", "
	         "\"html_body\": \"<p>html</p>\", \"attachments\": ["
	         "{\"content_type\": \"application/octet-stream\", \"file_name\": \"x.bin\", "
	         "\"data\": \"%s\", \"base64\": true},"
	         "{\"content_type\": \"text/plain\", \"file_name\": \"résumé.txt\", \"data\": "
	         "\"text attachment\"}]}}",
	         b64);
	m = build(req, 0, &n);
	v = field(m, "Content-Type");
	assert_non_null(strstr(v, "multipart/mixed"));
	free(v);
	b = boundary_of(m);
	np = parts(m, b, ps, pl, 8);
	assert_int_equal(np, 3);
	/* The first part: multipart/alternative, text then html. */
	assert_non_null(strstr(ps[0], "multipart/alternative"));
	b2 = boundary_of(ps[0]);
	assert_string_not_equal(b, b2);
	assert_int_equal(parts(ps[0], b2, ps2, pl2, 8), 2);
	assert_true(strncmp(ps2[0], "Content-Type: text/plain; charset=utf-8", 39) == 0);
	assert_true(strncmp(ps2[1], "Content-Type: text/html; charset=utf-8", 38) == 0);
	assert_non_null(strstr(ps2[1], "\r\n\r\n<p>html</p>"));
	/* The attachments decode to their bytes. */
	assert_non_null(strstr(ps[1], "Content-Transfer-Encoding: base64"));
	assert_non_null(strstr(ps[1], "filename=\"x.bin\""));
	{
		const char *body = strstr(ps[1], "\r\n\r\n") + 4;
		size_t k = b64dec(body, pl[1] - (size_t)(body - ps[1]), out);

		assert_int_equal(k, sizeof(bin));
		assert_memory_equal(out, bin, sizeof(bin));
	}
	{
		const char *body = strstr(ps[2], "\r\n\r\n") + 4;
		size_t k = b64dec(body, pl[2] - (size_t)(body - ps[2]), out);

		assert_int_equal(k, strlen("text attachment"));
		assert_memory_equal(out, "text attachment", k);
		/* RFC 2231 for the non-ASCII file name. */
		assert_non_null(strstr(ps[2], "filename*0*=utf-8''r%C3%A9sum%C3%A9.txt"));
	}
	free(b);
	free(b2);
	free(m);
}

static void
test_build_raw(void **state)
{
	size_t n;
	char *m = build("{" SENDER ", \"recipients\": [{\"email\": \"a@example.net\", "
	                "\"substitutions\": {\"name\": \"Ann\"}}], \"campaign\": \"c\", "
	                "\"content\": \"Subject: hi {{name}}\\nFrom: b@example.com\\n\\nDear "
	                "{{name}}\\n.\\nend\"}",
	                0, &n);

	assert_string_equal(m, "X-Drover-Campaign: c\r\nSubject: hi Ann\r\nFrom: b@example.com\r\n"
	                       "\r\nDear Ann\r\n.\r\nend\r\n");
	free(m);
}

/* Long lines: a 7bit candidate with a 2000-octet line goes quoted-printable, lines short. */
static void
test_build_long_lines(void **state)
{
	char *req = xmalloc(8192), *m, *v, *big = xmalloc(2001);
	size_t n;

	memset(big, 'x', 2000);
	big[2000] = '\0';
	snprintf(req, 8192,
	         "{" SENDER ", " RCPT ", \"content\": {\"subject\": \"%s\", \"text_body\": \"%s\", "
	         "\"headers\": {\"X-Long\": \"%s\"}}}",
	         big, big, big);
	m = build(req, 0, &n); /* check_lines: every line within 998 */
	v = field(m, "Content-Transfer-Encoding");
	assert_string_equal(v, "quoted-printable");
	free(v);
	v = field(m, "Subject");
	free(v);
	free(m);
	free(req);
	free(big);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_substitution), cmocka_unit_test(test_request_errors),
	    cmocka_unit_test(test_grouping),     cmocka_unit_test(test_build_text),
	    cmocka_unit_test(test_build_utf8),   cmocka_unit_test(test_build_multipart),
	    cmocka_unit_test(test_build_raw),    cmocka_unit_test(test_build_long_lines),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
