/* test_auth_dkim_canon.c - the pure parts of DKIM: canonicalization (RFC 6376 §3.4 and its
 * §3.4.5 example), the header section reader, tag lists, DKIM-Signature and key record
 * parsing, base64, the From domain. */
#include "test_auth_dkim_util.h"

/* RFC 6376 §3.4.5, with <SP>, <HTAB> and <CRLF> written out. */
static const char rfc_example[] = "A: X\r\n"
                                  "B : Y\t\r\n"
                                  "\tZ  \r\n"
                                  "\r\n"
                                  " C \r\n"
                                  "D \t E\r\n"
                                  "\r\n"
                                  "\r\n";

/* The header section and body of msg, canonicalized, with msg fed in pieces of chunk. */
static void
canonicalize(const char *msg, size_t len, size_t chunk, enum dkim_canon hc, enum dkim_canon bc,
             struct dbuf *headers, struct dbuf *body)
{
	struct dkim_msg m;
	struct dkim_body b;
	unsigned char hash[DKIM_HASH_LEN];

	dkim_msg_init(&m);
	dkim_body_init(&b, bc, UINT64_MAX);
	b.capture = body;
	for (size_t off = 0; off < len; off += chunk) {
		size_t n = len - off < chunk ? len - off : chunk, took = 0;

		if (!m.done)
			took = dkim_msg_headers(&m, msg + off, n);
		if (m.done)
			dkim_body_update(&b, msg + off + took, n - took);
	}
	dkim_msg_end_headers(&m);
	for (size_t i = 0; i < m.nfields; i++)
		dkim_canon_header(hc, m.hdr.p + m.fields[i].off, m.fields[i].len, true, headers);
	dkim_body_final(&b, hash);
	dkim_body_free(&b);
	dkim_msg_free(&m);
}

static void
assert_canon(const char *msg, enum dkim_canon hc, enum dkim_canon bc, const char *want_h,
             const char *want_b)
{
	size_t len = strlen(msg);

	/* Whatever the pieces: one octet at a time, and every two-piece split. */
	for (size_t chunk = 1; chunk <= len + 1; chunk = chunk == 1 ? 2 : chunk + 3) {
		struct dbuf h = {0}, b = {0};

		canonicalize(msg, len, chunk, hc, bc, &h, &b);
		if (strcmp(h.p ? h.p : "", want_h) != 0 || strcmp(b.p ? b.p : "", want_b) != 0)
			fail_msg("chunk %zu: headers \"%s\" body \"%s\"", chunk, h.p ? h.p : "",
			         b.p ? b.p : "");
		dbuf_free(&h);
		dbuf_free(&b);
	}
}

static void
test_rfc6376_example_relaxed(void **state)
{
	assert_canon(rfc_example, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, "a:X\r\nb:Y Z\r\n",
	             " C\r\nD E\r\n");
}

static void
test_rfc6376_example_simple(void **state)
{
	assert_canon(rfc_example, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE,
	             "A: X\r\nB : Y\t\r\n\tZ  \r\n", " C \r\nD \t E\r\n");
}

struct body_case {
	const char *in, *simple, *relaxed;
};

static const struct body_case bodies[] = {
    {"", "\r\n", ""}, /* empty: simple is CRLF, relaxed is nothing (§3.4.3, §3.4.4) */
    {"\r\n", "\r\n", ""},
    {"\r\n\r\n\r\n", "\r\n", ""},
    {"abc", "abc\r\n", "abc\r\n"}, /* no final CRLF: added */
    {"abc\r\n\r\n\r\n", "abc\r\n", "abc\r\n"},
    {" \r\n", " \r\n", ""},
    {" \t \r\n\r\n", " \t \r\n", ""},
    {"a  b \t\r\n \r\n\r\nc", "a  b \t\r\n \r\n\r\nc\r\n", "a b\r\n\r\n\r\nc\r\n"},
    {"\t lead\r\n", "\t lead\r\n", " lead\r\n"},
    {"a\nb\n\n", "a\r\nb\r\n", "a\r\nb\r\n"}, /* bare LF ends a line */
    {"a\rb\r\n", "a\rb\r\n", "a\rb\r\n"},     /* bare CR is content */
    {"x\r", "x\r\r\n", "x\r\r\n"},
    {"x \r", "x \r\r\n", "x \r\r\n"},
    {"h\xc3\xa9llo w\xc3\xb6rld \xff\r\n", "h\xc3\xa9llo w\xc3\xb6rld \xff\r\n",
     "h\xc3\xa9llo w\xc3\xb6rld \xff\r\n"},
    {"line\r\n.\r\n..dot\r\n", "line\r\n.\r\n..dot\r\n", "line\r\n.\r\n..dot\r\n"},
};

static void
test_body_cases(void **state)
{
	for (size_t i = 0; i < nitems(bodies); i++) {
		char *msg = xasprintf("From: a@b.example\r\n\r\n%s", bodies[i].in);

		assert_canon(msg, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE, "From: a@b.example\r\n",
		             bodies[i].simple);
		assert_canon(msg, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, "from:a@b.example\r\n",
		             bodies[i].relaxed);
		free(msg);
	}
}

static void
body_hash(const char *body, enum dkim_canon c, char out[B64_LEN(DKIM_HASH_LEN) + 1])
{
	struct dkim_body b;
	unsigned char h[DKIM_HASH_LEN];

	dkim_body_init(&b, c, UINT64_MAX);
	dkim_body_update(&b, body, strlen(body));
	dkim_body_final(&b, h);
	dkim_body_free(&b);
	b64_encode(h, sizeof(h), out);
}

static void
test_empty_body_hashes_differ(void **state)
{
	char h[B64_LEN(DKIM_HASH_LEN) + 1];

	body_hash("", DKIM_CANON_SIMPLE, h);
	assert_string_equal(h, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY="); /* SHA-256(CRLF) */
	body_hash("\r\n\r\n", DKIM_CANON_SIMPLE, h);
	assert_string_equal(h, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	body_hash("", DKIM_CANON_RELAXED, h);
	assert_string_equal(h, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="); /* SHA-256("") */
	body_hash(" \r\n\t\r\n", DKIM_CANON_RELAXED, h);
	assert_string_equal(h, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

static void
test_rfc8463_body_hash(void **state)
{
	char h[B64_LEN(DKIM_HASH_LEN) + 1];

	body_hash("Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n",
	          DKIM_CANON_RELAXED, h);
	assert_string_equal(h, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
}

static void
test_body_length_limit(void **state)
{
	struct dkim_body b;
	struct dbuf cap = {0};
	unsigned char h1[DKIM_HASH_LEN], h2[DKIM_HASH_LEN];

	/* l=5 of "hello\r\n" + anything hashes as "hello". */
	dkim_body_init(&b, DKIM_CANON_SIMPLE, 5);
	b.capture = &cap;
	dkim_body_update(&b, "hello\r\nworld\r\n", 14);
	dkim_body_final(&b, h1);
	assert_int_equal(b.total, 14);
	dkim_body_free(&b);
	dbuf_free(&cap);
	EVP_Digest("hello", 5, h2, NULL, EVP_sha256(), NULL);
	assert_memory_equal(h1, h2, sizeof(h1));
}

struct header_case {
	const char *in, *relaxed;
};

static const struct header_case headers[] = {
    {"Subject:   hello   world  ", "subject:hello world\r\n"},
    {"SUBJECT \t: x", "subject:x\r\n"},
    {"To: a,\r\n\tb,\r\n  c", "to:a, b, c\r\n"},
    {"X-Empty:", "x-empty:\r\n"},
    {"X-Empty:  \t ", "x-empty:\r\n"},
    {"Subject: h\xc3\xa9llo  \xe4\xb8\x96\xe7\x95\x8c",
     "subject:h\xc3\xa9llo \xe4\xb8\x96\xe7\x95\x8c\r\n"},
    {"X-Lf: a\n b", "x-lf:a b\r\n"},
    {"X-Cr: a\rb", "x-cr:a\rb\r\n"},
};

static void
test_header_relaxed(void **state)
{
	for (size_t i = 0; i < nitems(headers); i++) {
		struct dbuf out = {0};

		dkim_canon_header(DKIM_CANON_RELAXED, headers[i].in, strlen(headers[i].in), true,
		                  &out);
		assert_string_equal(out.p, headers[i].relaxed);
		dbuf_free(&out);
	}
}

static void
test_header_simple_keeps_everything(void **state)
{
	struct dbuf out = {0};
	const char *f = "SubJect :  a \r\n\tb  ";

	dkim_canon_header(DKIM_CANON_SIMPLE, f, strlen(f), true, &out);
	assert_string_equal(out.p, "SubJect :  a \r\n\tb  \r\n");
	dbuf_free(&out);
	/* A bare LF inside a folded field stands for CRLF. */
	dkim_canon_header(DKIM_CANON_SIMPLE, "To: a\n b", 8, false, &out);
	assert_string_equal(out.p, "To: a\r\n b");
	dbuf_free(&out);
}

/* ---- The header section reader ---- */

static const char repeated[] = "Received: from a\r\n"
                               "\tby b\r\n"
                               "To: first@example.com\r\n"
                               "Subject: one\r\n"
                               " two\r\n"
                               "To: second@example.com\r\n"
                               "not a field\r\n"
                               "To: third@example.com\r\n"
                               "\r\n"
                               "body\r\n";

static void
test_fields_split_and_select_bottom_up(void **state)
{
	struct dkim_msg m;
	struct dbuf out = {0};
	const char *names[] = {"to", "subject", "to", "to", "to", "received"};
	size_t took;

	dkim_msg_init(&m);
	took = dkim_msg_headers(&m, repeated, strlen(repeated));
	assert_true(m.done);
	assert_string_equal(repeated + took, "body\r\n");
	dkim_msg_end_headers(&m);
	assert_int_equal(m.nfields, 6);
	assert_int_equal(m.fields[0].len, strlen("Received: from a\r\n\tby b"));
	assert_int_equal(m.fields[4].namelen, 0); /* "not a field" */
	assert_true(dkim_field_is(&m, &m.fields[3], "TO"));

	/* RFC 6376 §5.4.2: repeated names are taken from the bottom up; one name too many
	 * (over-signing) adds nothing. */
	dkim_msg_select(&m, names, nitems(names), DKIM_CANON_RELAXED, &out);
	assert_string_equal(out.p, "to:third@example.com\r\n"
	                           "subject:one two\r\n"
	                           "to:second@example.com\r\n"
	                           "to:first@example.com\r\n"
	                           "received:from a by b\r\n");
	dbuf_free(&out);
	dkim_msg_free(&m);
}

static void
test_header_section_edges(void **state)
{
	struct dkim_msg m;

	/* No blank line at all: everything is headers, the last without its line end. */
	dkim_msg_init(&m);
	assert_int_equal(dkim_msg_headers(&m, "A: 1\r\nB: 2", 10), 10);
	assert_false(m.done);
	dkim_msg_end_headers(&m);
	assert_int_equal(m.nfields, 2);
	assert_int_equal(m.fields[1].len, 4);
	dkim_msg_free(&m);

	/* A blank line first: no headers, all body. */
	dkim_msg_init(&m);
	assert_int_equal(dkim_msg_headers(&m, "\r\nbody", 6), 2);
	assert_true(m.done);
	dkim_msg_end_headers(&m);
	assert_int_equal(m.nfields, 0);
	dkim_msg_free(&m);

	/* The blank line split as "\r" | "\n". */
	dkim_msg_init(&m);
	assert_int_equal(dkim_msg_headers(&m, "A: 1\r\n\r", 7), 7);
	assert_false(m.done);
	assert_int_equal(dkim_msg_headers(&m, "\nbody", 5), 1);
	assert_true(m.done);
	dkim_msg_end_headers(&m);
	assert_int_equal(m.nfields, 1);
	dkim_msg_free(&m);

	/* A lone CR starting a line is not the blank line. */
	dkim_msg_init(&m);
	assert_int_equal(dkim_msg_headers(&m, "A: 1\r\n\rX: 2\r\n\r\n", 15), 15);
	assert_true(m.done);
	dkim_msg_end_headers(&m);
	assert_int_equal(m.nfields, 2);
	dkim_msg_free(&m);

	/* LF line ends. */
	dkim_msg_init(&m);
	assert_int_equal(dkim_msg_headers(&m, "A: 1\n\nbody\n", 11), 6);
	dkim_msg_end_headers(&m);
	assert_int_equal(m.nfields, 1);
	assert_int_equal(m.fields[0].len, 4);
	dkim_msg_free(&m);
}

static void
test_header_section_limit(void **state)
{
	struct dkim_msg m;
	char line[1000];

	memset(line, 'x', sizeof(line));
	memcpy(line, "X-Pad: ", 7);
	line[sizeof(line) - 2] = '\r';
	line[sizeof(line) - 1] = '\n';
	dkim_msg_init(&m);
	for (int i = 0; i < DKIM_HEADERS_MAX / (int)sizeof(line) + 2; i++)
		dkim_msg_headers(&m, line, sizeof(line));
	assert_true(m.overflow);
	assert_true(m.hdr.len <= DKIM_HEADERS_MAX);
	dkim_msg_free(&m);
}

/* ---- Tag lists ---- */

static void
test_tag_lists(void **state)
{
	struct dkim_tag t[8];
	const char *why = NULL, *s = " v = 1 ;\r\n\ta=rsa-sha256; b=ab\r\n cd ;";
	size_t n;

	assert_int_equal(dkim_tags_parse(s, strlen(s), t, 8, &n, &why), 0);
	assert_int_equal(n, 3);
	assert_int_equal(t[0].namelen, 1);
	assert_memory_equal(t[0].value, "1", 1);
	assert_int_equal(t[2].valuelen, strlen("ab\r\n cd"));
	/* raw: from after "=" to the ";" (b='s value with the white space around it). */
	assert_memory_equal(s + t[2].raw_start, "ab\r\n cd ", t[2].raw_end - t[2].raw_start);
	assert_int_equal(dkim_tags_parse("", 0, t, 8, &n, &why), 0);
	assert_int_equal(n, 0);
	assert_int_equal(dkim_tags_parse("a=", 2, t, 8, &n, &why), 0);
	assert_int_equal(t[0].valuelen, 0);

	const char *bad[] = {"a",     "v=1;;a=2", "9x=1", "v=1; v=2",
	                     "a-b=1", "a=\x01",   "=1",   "a=1; ;"};
	for (size_t i = 0; i < nitems(bad); i++)
		if (dkim_tags_parse(bad[i], strlen(bad[i]), t, 8, &n, &why) == 0)
			fail_msg("\"%s\" accepted", bad[i]);
	assert_int_equal(dkim_tags_parse("a=1;b=2;c=3", 11, t, 2, &n, &why), -1);
	assert_string_equal(why, "too many tags");
}

/* ---- DKIM-Signature ---- */

#define BH "bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;"

static int
sig(const char *field, struct dkim_sig *s, char *why)
{
	int rc = dkim_sig_parse(field, strlen(field), s, why, 160);

	return rc;
}

static void
test_signature_parse(void **state)
{
	const char *f = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed;\r\n"
	                " d=Example.COM; i=joe@sub.example.com; s=sel.2025; t=100; x=200;\r\n"
	                " l=42; q=dns/txt:other; h=From : To:\r\n subject; " BH "\r\n"
	                " b=AAAA\r\n BBBB ; z=ignored";
	struct dkim_sig s;
	char why[160];

	assert_int_equal(sig(f, &s, why), 0);
	assert_int_equal(s.alg, DKIM_ED25519_SHA256);
	assert_int_equal(s.hcanon, DKIM_CANON_RELAXED);
	assert_int_equal(s.bcanon, DKIM_CANON_SIMPLE); /* "c=relaxed" is relaxed/simple */
	assert_string_equal(s.domain, "Example.COM");
	assert_string_equal(s.selector, "sel.2025");
	assert_string_equal(s.identity, "joe@sub.example.com");
	assert_int_equal(s.nh, 3);
	assert_string_equal(s.h[0], "From");
	assert_string_equal(s.h[2], "subject");
	assert_int_equal(s.blen, 6);
	assert_true(s.has_l && s.l == 42 && s.t == 100 && s.x == 200);
	assert_string_equal(s.bprefix, "AAAABBBB");
	assert_memory_equal(f + s.b_start, "AAAA\r\n BBBB ", s.b_end - s.b_start);
	dkim_sig_free(&s);
}

static void
test_signature_errors(void **state)
{
	static const struct {
		const char *field, *why;
	} cases[] = {
	    {"DKIM-Signature: a=rsa-sha256; d=x.example; s=s; h=from; " BH " b=AA==",
	     "signature without v="},
	    {"DKIM-Signature: v=2; a=rsa-sha256; d=x.example; s=s; h=from; " BH " b=AA==",
	     "signature version v= is not 1"},
	    {"DKIM-Signature: v=1; a=rsa-sha1; d=x.example; s=s; h=from; " BH " b=AA==",
	     "rsa-sha1 is not accepted (RFC 8301)"},
	    {"DKIM-Signature: v=1; a=rsa-md5; d=x.example; s=s; h=from; " BH " b=AA==",
	     "unknown algorithm a=rsa-md5"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=to; " BH " b=AA==",
	     "h= does not include From"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from::to; " BH " b=AA==",
	     "h= is not a list of field names"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; i=a@y.example; s=s; h=from; " BH
	     " b=AA==",
	     "i= is not within d="},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; i=a@badx.example; s=s; h=from; " BH
	     " b=AA==",
	     "i= is not within d="},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=AA==",
	     "bh= is not a SHA-256 hash in base64"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from; " BH " b=",
	     "b= is empty"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; h=from; " BH " b=A*A=",
	     "b= is not base64"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; c=fancy; d=x.example; s=s; h=from; " BH " b=AA==",
	     "unknown canonicalization c=fancy"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x..example; s=s; h=from; " BH " b=AA==",
	     "d= is not a domain name"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s/1; h=from; " BH " b=AA==",
	     "s= is not a selector"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; t=10; x=5; h=from; " BH
	     " b=AA==",
	     "x= is before t="},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; l=-1; h=from; " BH " b=AA==",
	     "l= is not a number"},
	    {"DKIM-Signature: v=1; a=rsa-sha256; d=x.example; s=s; q=http; h=from; " BH " b=AA==",
	     "q= does not allow dns/txt"},
	    {"DKIM-Signature: v=1;; a=rsa-sha256", "malformed signature: an empty tag"},
	};
	struct dkim_sig s;
	char why[160];

	for (size_t i = 0; i < nitems(cases); i++) {
		if (sig(cases[i].field, &s, why) == 0)
			fail_msg("accepted: %s", cases[i].field);
		assert_string_equal(why, cases[i].why);
		dkim_sig_free(&s);
	}
	/* What a result reports is read even from a signature that fails. */
	assert_int_equal(sig(cases[2].field, &s, why), -1);
	assert_string_equal(s.domain, "x.example");
	assert_string_equal(s.algorithm, "rsa-sha1");
	assert_string_equal(s.identity, "@x.example");
	dkim_sig_free(&s);
}

/* ---- Key records ---- */

static const char ed_pub[] = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char rsa_spki[] =
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5q"
    "hdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1"
    "Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3"
    "QIDAQAB";

static void
test_key_records(void **state)
{
	struct dkim_keyrec k;
	char why[160], *rec;

	rec = xasprintf("v=DKIM1; k=ed25519; p=%s", ed_pub);
	assert_int_equal(dkim_keyrec_parse(rec, strlen(rec), &k, why, sizeof(why)), 0);
	assert_int_equal(k.alg, DKIM_ED25519_SHA256);
	assert_non_null(k.pkey);
	dkim_keyrec_free(&k);
	free(rec);

	rec = xasprintf("v=DKIM1; h=sha1:sha256; s=email:*; t=y:s:x; p=%.40s\r\n %s", rsa_spki,
	                rsa_spki + 40);
	assert_int_equal(dkim_keyrec_parse(rec, strlen(rec), &k, why, sizeof(why)), 0);
	assert_int_equal(k.alg, DKIM_RSA_SHA256); /* k= defaults to rsa */
	assert_int_equal(k.bits, 1024);
	assert_true(k.testing && k.strict);
	dkim_keyrec_free(&k);
	free(rec);

	assert_int_equal(dkim_keyrec_parse("v=DKIM1; p=", 11, &k, why, sizeof(why)), 0);
	assert_true(k.revoked);
	assert_null(k.pkey);

	static const struct {
		const char *rec, *why;
	} bad[] = {
	    {"v=DKIM2; p=AAAA", "key record v= is not DKIM1 first"},
	    {"k=rsa; v=DKIM1; p=AAAA", "key record v= is not DKIM1 first"},
	    {"h=sha1; p=AAAA", "key record h= does not allow sha256"},
	    {"k=dsa; p=AAAA", "key record k= is an unknown key type"},
	    {"s=tlsrpt; p=AAAA", "key record s= excludes email"},
	    {"v=DKIM1; k=rsa", "key record without p="},
	    {"p=A*AA", "key record p= is not base64"},
	    {"k=rsa; p=AAAA", "key record p= is not an RSA public key"},
	    {"k=ed25519; p=AAAA", "key record p= is not an Ed25519 public key"},
	    {"v=DKIM1; p=x; p=y", "malformed key record: a tag given twice"},
	};
	for (size_t i = 0; i < nitems(bad); i++) {
		if (dkim_keyrec_parse(bad[i].rec, strlen(bad[i].rec), &k, why, sizeof(why)) == 0)
			fail_msg("accepted: %s", bad[i].rec);
		assert_string_equal(why, bad[i].why);
	}
	/* An RSA key in k=ed25519's clothing. */
	rec = xasprintf("k=ed25519; p=%s", rsa_spki);
	assert_int_equal(dkim_keyrec_parse(rec, strlen(rec), &k, why, sizeof(why)), -1);
	assert_string_equal(why, "key record p= is not a key of type k=");
	free(rec);
}

/* ---- base64, From domain, names ---- */

static void
test_base64(void **state)
{
	unsigned char out[16];
	char enc[16];

	assert_int_equal(b64_decode("aGVs bG8=\r\n", 11, out, sizeof(out)), 5);
	assert_memory_equal(out, "hello", 5);
	assert_int_equal(b64_decode("", 0, out, sizeof(out)), 0);
	assert_int_equal(b64_decode("aGVsbG8", 7, out, sizeof(out)), -1);   /* no padding */
	assert_int_equal(b64_decode("aGVsbG8=x", 9, out, sizeof(out)), -1); /* after padding */
	assert_int_equal(b64_decode("aGVsbG8===", 10, out, sizeof(out)), -1);
	assert_int_equal(b64_decode("aGVsbG8=", 8, out, 4), -1); /* too long for out */
	assert_int_equal(b64_encode((const unsigned char *)"hello", 5, enc), 8);
	assert_string_equal(enc, "aGVsbG8=");
	b64_encode((const unsigned char *)"he", 2, enc);
	assert_string_equal(enc, "aGU=");
}

static void
test_from_domain(void **state)
{
	static const struct {
		const char *value, *domain;
	} cases[] = {
	    {" Joe <joe@Example.COM>", "example.com"},
	    {" \"a@b.example\" <c@d.example>", "d.example"},
	    {" joe@x.example (Joe @ home)", "x.example"},
	    {" a@b.example, c@d.example", "b.example"},
	    {" <@route.example:joe@x.example>", "x.example"},
	    {" \"J, O\" <j@\r\n y.example>", "y.example"},
	    {" j@z.example.", "z.example"},
	    {" =?utf-8?q?J=C3=B6?= <j@utf.example>", "utf.example"},
	    {" undisclosed:;", NULL},
	    {" no address", NULL},
	    {" joe@[192.0.2.1]", NULL},
	};
	char out[DNS_NAME_MAX + 1];

	for (size_t i = 0; i < nitems(cases); i++) {
		int rc = dkim_from_domain(cases[i].value, strlen(cases[i].value), out);
		if (cases[i].domain == NULL) {
			if (rc == 0)
				fail_msg("\"%s\" gave %s", cases[i].value, out);
			continue;
		}
		if (rc != 0)
			fail_msg("\"%s\": no domain", cases[i].value);
		assert_string_equal(out, cases[i].domain);
	}
}

static void
test_names(void **state)
{
	enum dkim_canon h, b;

	assert_int_equal(dkim_canon_parse("relaxed/simple", &h, &b), 0);
	assert_true(h == DKIM_CANON_RELAXED && b == DKIM_CANON_SIMPLE);
	assert_int_equal(dkim_canon_parse("simple/relaxed", &h, &b), 0);
	assert_true(h == DKIM_CANON_SIMPLE && b == DKIM_CANON_RELAXED);
	assert_int_equal(dkim_canon_parse("relaxed", &h, &b), 0);
	assert_true(h == DKIM_CANON_RELAXED && b == DKIM_CANON_SIMPLE);
	assert_int_equal(dkim_canon_parse("relaxed/", &h, &b), -1);
	assert_int_equal(dkim_canon_parse("loose", &h, &b), -1);
	assert_string_equal(dkim_result_name(DKIM_RESULT_PERMERROR), "permerror");
	assert_string_equal(dkim_algorithm_name(DKIM_ED25519_SHA256), "ed25519-sha256");
	assert_true(dkim_domain_valid("a-b.example_1.com", 17));
	assert_false(dkim_domain_valid("a..b", 4));
	assert_false(dkim_domain_valid(".a", 2));
	assert_false(dkim_domain_valid("a b", 3));

	char err[512], longdom[250];
	assert_int_equal(dkim_check_names("example.com", "s2025", err, sizeof(err)), 0);
	assert_int_equal(dkim_check_names("example .com", "s", err, sizeof(err)), -1);
	assert_string_equal(err, "dkim: \"example .com\" is not a domain name to sign for");
	assert_int_equal(dkim_check_names("example.com", "", err, sizeof(err)), -1);
	assert_string_equal(err, "dkim: selector \"\" is not one or more DNS labels");
	memset(longdom, 'a', sizeof(longdom));
	for (size_t i = 60; i < sizeof(longdom); i += 61)
		longdom[i] = '.';
	longdom[sizeof(longdom) - 1] = '\0';
	assert_int_equal(dkim_check_names(longdom, "selector", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "is longer than a DNS name can be"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc6376_example_relaxed),
	    cmocka_unit_test(test_rfc6376_example_simple),
	    cmocka_unit_test(test_body_cases),
	    cmocka_unit_test(test_empty_body_hashes_differ),
	    cmocka_unit_test(test_rfc8463_body_hash),
	    cmocka_unit_test(test_body_length_limit),
	    cmocka_unit_test(test_header_relaxed),
	    cmocka_unit_test(test_header_simple_keeps_everything),
	    cmocka_unit_test(test_fields_split_and_select_bottom_up),
	    cmocka_unit_test(test_header_section_edges),
	    cmocka_unit_test(test_header_section_limit),
	    cmocka_unit_test(test_tag_lists),
	    cmocka_unit_test(test_signature_parse),
	    cmocka_unit_test(test_signature_errors),
	    cmocka_unit_test(test_key_records),
	    cmocka_unit_test(test_base64),
	    cmocka_unit_test(test_from_domain),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
