/* test_auth_dkim_sign.c - signing: the RFC 8463 example reproduced octet for octet, round
 * trips for every algorithm, key size and canonicalization, the same signature whatever the
 * pieces the message comes in, folded and repeated headers, over-signing, empty and missing
 * bodies, the folding of the field, several signers, keys (loading errors, reload, keygen)
 * and signing from several threads with one key. */
#include <pthread.h>
#include <stdatomic.h>

#include <openssl/pem.h>

#include "test_auth_dkim_util.h"

static char *dir;
static struct dkim_key *rsa1024, *rsa2048, *rsa4096, *ed;
static char *rec1024, *rec2048, *rec4096, *reced;
static const char *table[16];

static int
setup(void **state)
{
	dir = tu_tmpdir();
	rsa1024 = tu_key(dir, "rsa1024", DKIM_KEYGEN_RSA1024, &rec1024);
	rsa2048 = tu_key(dir, "rsa2048", DKIM_KEYGEN_RSA2048, &rec2048);
	rsa4096 = tu_key(dir, "rsa4096", DKIM_KEYGEN_RSA4096, &rec4096);
	ed = tu_key(dir, "ed25519", DKIM_KEYGEN_ED25519, &reced);
	const char *t[] = {"r1024._domainkey.example.com",
	                   rec1024,
	                   "r2048._domainkey.example.com",
	                   rec2048,
	                   "r4096._domainkey.example.com",
	                   rec4096,
	                   "ed._domainkey.example.com",
	                   reced,
	                   "ed._domainkey.platform.example",
	                   reced,
	                   "r2048._domainkey.platform.example",
	                   rec2048,
	                   NULL};
	memcpy(table, t, sizeof(t));
	return 0;
}

static int
teardown(void **state)
{
	dkim_key_free(rsa1024);
	dkim_key_free(rsa2048);
	dkim_key_free(rsa4096);
	dkim_key_free(ed);
	free(rec1024);
	free(rec2048);
	free(rec4096);
	free(reced);
	tu_rmdir(dir);
	return 0;
}

static struct dkim_signer
signer(struct dkim_key *k, const char *selector)
{
	return (struct dkim_signer){
	    .key = k,
	    .domain = "example.com",
	    .selector = selector,
	    .header_canon = DKIM_CANON_RELAXED,
	    .body_canon = DKIM_CANON_RELAXED,
	};
}

/* ---- RFC 8463 Appendix A ---- */

/* A.1: the Ed25519 secret key (RFC 8032 §7.1 test 1) and the RSA key. */
static const char rfc_ed_seed[] = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
static const char rfc_rsa_pem[] =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";

/* A.2: the key records. */
static const char *const rfc_table[] = {
    "brisbane._domainkey.football.example.com",
    "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    "test._domainkey.football.example.com",
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qh"
    "dR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4h"
    "stT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB",
    NULL,
};

static const char rfc_message[] = "From: Joe SixPack <joe@football.example.com>\r\n"
                                  "To: Suzie Q <suzie@shopping.example.net>\r\n"
                                  "Subject: Is dinner ready?\r\n"
                                  "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
                                  "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
                                  "\r\n"
                                  "Hi.\r\n"
                                  "\r\n"
                                  "We lost the game.  Are you hungry yet?\r\n"
                                  "\r\n"
                                  "Joe.\r\n";

/* A.3: the two signature fields as published. */
static const char rfc_ed_field[] = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
                                   " d=football.example.com; i=@football.example.com;\r\n"
                                   " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
                                   " subject : date : message-id : from : subject : date;\r\n"
                                   " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
                                   " b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
                                   " Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n";
static const char rfc_rsa_field[] =
    "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n"
    " d=football.example.com; i=@football.example.com;\r\n"
    " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n"
    " date : message-id : from : subject : date;\r\n"
    " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
    " b=F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3\r\n"
    " DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGdaSGsgeefOsk2Jz\r\n"
    " dA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8=\r\n";

#define RFC_T 1528637909ULL

/* The Ed25519 seed as a PKCS#8 PEM file (RFC 8410: a fixed 16-octet prefix, then the seed). */
static char *
rfc_ed_pem(void)
{
	unsigned char der[48] = {0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
	                         0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20};
	char b64[B64_LEN(48) + 1];

	assert_int_equal(b64_decode(rfc_ed_seed, strlen(rfc_ed_seed), der + 16, 32), 32);
	b64_encode(der, sizeof(der), b64);
	return xasprintf("-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n", b64);
}

static struct dkim_key *
load_text(const char *name, const char *pem)
{
	char path[512], err[512];
	struct dkim_key *k;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	tu_write(path, pem, strlen(pem));
	if ((k = dkim_key_load(path, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	return k;
}

/* Two fields are the same after relaxed canonicalization with b= left in. */
static void
assert_relaxed_equal(const char *a, const char *b)
{
	struct dbuf ca = {0}, cb = {0};
	size_t la = strlen(a), lb = strlen(b);

	dkim_canon_header(DKIM_CANON_RELAXED, a, la - 2, false, &ca);
	dkim_canon_header(DKIM_CANON_RELAXED, b, lb - 2, false, &cb);
	/* Folding inside b= (no space in it on one side) is not relaxed-equal: compare with the
	 * base64 joined. */
	char *pa = strstr(ca.p, " b="), *pb = strstr(cb.p, " b=");
	assert_non_null(pa);
	assert_non_null(pb);
	*pa = *pb = '\0';
	assert_string_equal(ca.p, cb.p);
	dbuf_free(&ca);
	dbuf_free(&cb);
}

static void
test_rfc8463_signatures_reproduced(void **state)
{
	char *pem = rfc_ed_pem();
	struct dkim_key *edk = load_text("rfc-ed.pem", pem),
	                *rsak = load_text("rfc-rsa.pem", rfc_rsa_pem);
	const char *headers[] = {"from", "to", "subject", "date", "message-id", NULL};
	const char *over[] = {"from", "subject", "date", NULL};
	struct dkim_signer s[2] = {
	    {.key = edk,
	     .domain = "football.example.com",
	     .selector = "brisbane",
	     .identity = "@football.example.com",
	     .header_canon = DKIM_CANON_RELAXED,
	     .body_canon = DKIM_CANON_RELAXED,
	     .headers = headers,
	     .oversign = over},
	    {.key = rsak,
	     .domain = "football.example.com",
	     .selector = "test",
	     .identity = "@football.example.com",
	     .header_canon = DKIM_CANON_RELAXED,
	     .body_canon = DKIM_CANON_RELAXED,
	     .headers = headers,
	     .oversign = over},
	};
	char b[1024], want[1024], *fields, *second;

	assert_int_equal(dkim_key_algorithm(edk), DKIM_ED25519_SHA256);
	assert_int_equal(dkim_key_algorithm(rsak), DKIM_RSA_SHA256);
	assert_int_equal(dkim_key_bits(rsak), 1024);
	/* Our public record for the A.1 key is the A.2 record. */
	char *rec = dkim_key_dns_record(edk);
	assert_string_equal(rec, rfc_table[1]);
	free(rec);
	rec = dkim_key_dns_record(rsak);
	assert_string_equal(rec, rfc_table[3]);
	free(rec);

	fields = tu_sign(s, 2, rfc_message, strlen(rfc_message), 0, RFC_T);
	second = strstr(fields + 1, "DKIM-Signature:");
	assert_non_null(second);
	second[-1] = '\0'; /* split the two fields (the first keeps its CR) */

	tu_tag(fields, "b", b, sizeof(b));
	tu_tag(rfc_ed_field, "b", want, sizeof(want));
	assert_string_equal(b, want);
	tu_tag(fields, "bh", b, sizeof(b));
	assert_string_equal(b, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
	tu_tag(second, "b", b, sizeof(b));
	tu_tag(rfc_rsa_field, "b", want, sizeof(want));
	assert_string_equal(b, want);
	tu_tag(second, "bh", b, sizeof(b));
	assert_string_equal(b, "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");

	/* And the fields are the published ones but for where the lines fold. */
	char *first = xasprintf("%s\n", fields);
	assert_relaxed_equal(first, rfc_ed_field);
	assert_relaxed_equal(second, rfc_rsa_field);
	free(first);
	free(fields);
	dkim_key_free(edk);
	dkim_key_free(rsak);
	free(pem);
}

static void
test_rfc8463_published_message_verifies(void **state)
{
	char *msg = xasprintf("%s%s%s", rfc_ed_field, rfc_rsa_field, rfc_message);
	struct tu_results r;

	tu_verify(rfc_table, msg, RFC_T + 60, &r);
	tu_assert_all_pass(&r, 2);
	assert_string_equal(r.r[0].algorithm, "ed25519-sha256");
	assert_string_equal(r.r[0].identity, "@football.example.com");
	assert_string_equal(r.r[1].selector, "test");
	assert_int_equal(r.r[1].key_bits, 1024);
	/* One octet changed in the body: both fail on the body hash. */
	char *p = strstr(msg, "hungry");
	*p = 'H';
	tu_verify(rfc_table, msg, RFC_T + 60, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	assert_string_equal(r.r[0].reason, "body hash did not verify");
	assert_int_equal(r.r[1].result, DKIM_RESULT_FAIL);
	free(msg);
}

/* ---- Round trips ---- */

static const char sample[] = "Received: from app.example.com ([192.0.2.7])\r\n"
                             "\tby mta.example.net with ESMTP id 0190a1b2\r\n"
                             "Received: from localhost by app.example.com\r\n"
                             "From: =?utf-8?q?Z=C3=BCrich?= Shop <shop@example.com>\r\n"
                             "To: Bob <bob@example.org>,\r\n"
                             "   Carol <carol@example.org>\r\n"
                             "Subject: Your receipt \xe2\x80\x94 order  #42\t \r\n"
                             "Date: Sat, 29 Nov 2025 07:06:40 +0000\r\n"
                             "Message-ID: <r-1@example.com>\r\n"
                             "MIME-Version: 1.0\r\n"
                             "Content-Type: text/plain; charset=utf-8\r\n"
                             "Content-Transfer-Encoding: 8bit\r\n"
                             "X-Mailer: test\r\n"
                             "\r\n"
                             "Gr\xc3\xbc\xc3\x9f"
                             "e aus Z\xc3\xbcrich \xe2\x80\x94 \xe4\xbd\xa0\xe5\xa5\xbd   \r\n"
                             "\r\n"
                             "  Total:\t 42.00 \xe2\x82\xac  \r\n"
                             ".leading dot\r\n"
                             "\r\n"
                             "\r\n"
                             "last line without CRLF";

static void
test_round_trips(void **state)
{
	struct dkim_key *keys[] = {rsa1024, rsa2048, rsa4096, ed};
	const char *sels[] = {"r1024", "r2048", "r4096", "ed"};
	struct tu_results r;

	for (size_t k = 0; k < nitems(keys); k++) {
		for (int hc = 0; hc < 2; hc++) {
			for (int bc = 0; bc < 2; bc++) {
				struct dkim_signer s = signer(keys[k], sels[k]);
				s.header_canon = (enum dkim_canon)hc;
				s.body_canon = (enum dkim_canon)bc;
				char *msg = tu_signed(&s, 1, sample, T_NOW);
				char c[64];

				tu_tag(msg, "c", c, sizeof(c));
				assert_string_equal(c,
				                    hc ? (bc ? "relaxed/relaxed" : "relaxed/simple")
				                       : (bc ? "simple/relaxed" : "simple/simple"));
				tu_verify(table, msg, T_NOW + 10, &r);
				tu_assert_all_pass(&r, 1);
				assert_int_equal(r.r[0].key_bits, dkim_key_bits(keys[k]));
				free(msg);
			}
		}
	}
}

/* The same signature whatever the pieces: every size from 1 to 97, then random splits. */
static void
test_chunk_boundaries(void **state)
{
	struct dkim_signer s[2] = {signer(rsa2048, "r2048"), signer(ed, "ed")};
	const char *msgs[] = {sample, rfc_message, "From: a@example.com\r\n\r\n",
	                      "From: a@example.com\r\nSubject: no body"};
	s[1].header_canon = s[1].body_canon = DKIM_CANON_SIMPLE;

	for (size_t m = 0; m < nitems(msgs); m++) {
		size_t len = strlen(msgs[m]);
		char *want = tu_sign(s, 2, msgs[m], len, 0, T_NOW);

		for (size_t chunk = 1; chunk < 98; chunk++) {
			char *got = tu_sign(s, 2, msgs[m], len, chunk, T_NOW);
			assert_string_equal(got, want);
			free(got);
		}
		srandom(42);
		for (int round = 0; round < 50; round++) {
			struct dkim_sign *ctx = dkim_sign_new(T_NOW);
			char err[256], *got;

			for (int i = 0; i < 2; i++)
				assert_int_equal(dkim_sign_add(ctx, &s[i], err, sizeof(err)), 0);
			for (size_t off = 0; off < len;) {
				size_t n = 1 + (size_t)random() % 40;
				if (n > len - off)
					n = len - off;
				dkim_sign_update(ctx, msgs[m] + off, n);
				off += n;
			}
			got = dkim_sign_final(ctx, err, sizeof(err));
			assert_non_null(got);
			assert_string_equal(got, want);
			free(got);
			dkim_sign_free(ctx);
		}
		free(want);
	}
}

static void
test_repeated_and_folded_headers(void **state)
{
	const char *msg = "From: a@example.com\r\n"
	                  "To: one@example.org\r\n"
	                  "Subject: a long subject folded\r\n"
	                  "\tover\r\n"
	                  "  three lines\r\n"
	                  "To: two@example.org\r\n"
	                  "Cc: c@example.org\r\n"
	                  "To: three@example.org\r\n"
	                  "\r\n"
	                  "body\r\n";
	struct dkim_signer s = signer(ed, "ed");
	struct tu_results r;
	char h[512], *signed_, *p;

	for (int hc = 0; hc < 2; hc++) {
		s.header_canon = (enum dkim_canon)hc;
		signed_ = tu_signed(&s, 1, msg, T_NOW);
		tu_tag(signed_, "h", h, sizeof(h));
		assert_string_equal(h, "from:subject:to:to:to:cc:from");
		tu_verify(table, signed_, T_NOW, &r);
		tu_assert_all_pass(&r, 1);

		/* Each instance of To is signed: changing the middle one breaks it. */
		p = strstr(signed_, "two@");
		*p = 'T';
		tu_verify(table, signed_, T_NOW, &r);
		assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
		assert_string_equal(r.r[0].reason, "signature did not verify");
		*p = 't';

		/* Refolding the subject is invisible to relaxed only. */
		char *refolded = xstrdup(signed_);
		p = strstr(refolded, "\r\n\tover");
		p[2] = ' ';
		tu_verify(table, refolded, T_NOW, &r);
		assert_int_equal(r.r[0].result, hc ? DKIM_RESULT_PASS : DKIM_RESULT_FAIL);
		free(refolded);
		free(signed_);
	}
}

static void
test_from_is_oversigned(void **state)
{
	const char *msg = "From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n";
	const char *over[] = {"reply-to", NULL};
	struct dkim_signer s = signer(ed, "ed");
	struct tu_results r;
	char h[256];

	char *signed_ = tu_signed(&s, 1, msg, T_NOW);
	tu_tag(signed_, "h", h, sizeof(h));
	assert_string_equal(h, "from:subject:from");

	/* A second From added anywhere after signing: the signature breaks. */
	char *added = xasprintf("From: evil@attacker.example\r\n%s", signed_);
	tu_verify(table, added, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	free(added);
	/* A Reply-To added: not over-signed by default, so it still passes… */
	added = xasprintf("Reply-To: x@attacker.example\r\n%s", signed_);
	tu_verify(table, added, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	free(added);
	free(signed_);

	/* …unless configured to be. */
	s.oversign = over;
	signed_ = tu_signed(&s, 1, msg, T_NOW);
	tu_tag(signed_, "h", h, sizeof(h));
	assert_string_equal(h, "from:subject:from:reply-to");
	added = xasprintf("Reply-To: x@attacker.example\r\n%s", signed_);
	tu_verify(table, added, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	free(added);
	free(signed_);
}

static void
test_bodies(void **state)
{
	static const char *msgs[] = {
	    "From: a@example.com\r\nSubject: empty body\r\n\r\n",
	    "From: a@example.com\r\nSubject: no body at all\r\n",
	    "From: a@example.com\r\nSubject: no CRLF after the last field",
	    "From: a@example.com\r\n\r\nno final CRLF",
	    "From: a@example.com\r\n\r\n\r\n\r\n\r\n",
	    "From: a@example.com\r\n\r\n \t \r\n\r\n",
	    "From: a@example.com\r\n\r\n\xff\xfe\x80 8-bit, not UTF-8\r\n",
	    "\r\nno header section at all\r\n",
	};
	struct tu_results r;

	for (size_t i = 0; i < nitems(msgs); i++) {
		for (int c = 0; c < 4; c++) {
			struct dkim_signer s = signer(c % 2 ? ed : rsa2048, c % 2 ? "ed" : "r2048");
			s.header_canon = s.body_canon = (enum dkim_canon)(c / 2);
			char *m = tu_signed(&s, 1, msgs[i], T_NOW);
			tu_verify(table, m, T_NOW, &r);
			tu_assert_all_pass(&r, 1);
			free(m);
		}
	}
	/* Empty body: the simple and relaxed body hashes differ (CRLF vs nothing). */
	struct dkim_signer s = signer(ed, "ed");
	char bh[64];
	s.body_canon = DKIM_CANON_SIMPLE;
	char *m = tu_signed(&s, 1, msgs[0], T_NOW);
	tu_tag(m, "bh", bh, sizeof(bh));
	assert_string_equal(bh, "frcCV1k9oG9oKj3dpUqdJg1PxRT2RSN/XKdLCPjaYaY=");
	free(m);
	s.body_canon = DKIM_CANON_RELAXED;
	m = tu_signed(&s, 1, msgs[0], T_NOW);
	tu_tag(m, "bh", bh, sizeof(bh));
	assert_string_equal(bh, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
	free(m);
}

/* ---- The field ---- */

static void
assert_lines_fit(const char *fields)
{
	for (const char *p = fields; *p;) {
		const char *e = strstr(p, "\r\n");
		assert_non_null(e);
		if (e - p > DKIM_LINE_MAX)
			fail_msg("line of %d characters: %.*s", (int)(e - p), (int)(e - p), p);
		if (p != fields && strncmp(p, "DKIM-Signature:", 15) != 0)
			assert_true(p[0] == ' '); /* a continuation line */
		p = e + 2;
	}
}

static void
test_field_format(void **state)
{
	const char *over[] = {"to", "cc", "subject", "reply-to", "list-unsubscribe", NULL};
	struct dkim_signer s = signer(rsa4096, "r4096");
	char x[32], t[32], *f;

	/* Long enough to fold everywhere it may; a single word longer than a line (an i= of
	 * 80 characters) could not be folded at all. */
	s.domain = "a-rather-long-subdomain.of-an-organisation.example.com";
	s.identity = "notifications@a-rather-long-subdomain.of-an-organisation.example.com";
	s.oversign = over;
	s.expire_s = 7 * 86400;
	f = tu_sign(&s, 1, sample, strlen(sample), 0, T_NOW);
	assert_true(strncmp(f, "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed;", 53) == 0);
	assert_lines_fit(f);
	assert_null(strstr(f, " l=")); /* never a body length */
	tu_tag(f, "t", t, sizeof(t));
	tu_tag(f, "x", x, sizeof(x));
	assert_int_equal(strtoull(t, NULL, 10), T_NOW);
	assert_int_equal(strtoull(x, NULL, 10), T_NOW + 7 * 86400);
	free(f);

	/* Without expiry there is no x=; t= always. */
	s = signer(ed, "ed");
	f = tu_sign(&s, 1, sample, strlen(sample), 0, T_NOW);
	assert_lines_fit(f);
	assert_null(strstr(f, "x="));
	assert_non_null(strstr(f, " t=1764400000;"));
	assert_string_equal(f + strlen(f) - 2, "\r\n");
	free(f);
}

static void
test_expiry_is_checked(void **state)
{
	struct dkim_signer s = signer(ed, "ed");
	struct tu_results r;

	s.expire_s = 3600;
	char *m = tu_signed(&s, 1, sample, T_NOW);
	tu_verify(table, m, T_NOW + 3600, &r);
	tu_assert_all_pass(&r, 1);
	tu_verify(table, m, T_NOW + 3600 + DKIM_VERIFY_CLOCK_SKEW_S + 1, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	assert_string_equal(r.r[0].reason, "signature expired (x=1764403600)");
	free(m);
}

static void
test_several_signers(void **state)
{
	struct dkim_signer s[4] = {signer(rsa2048, "r2048"), signer(ed, "ed"),
	                           signer(rsa2048, "r2048"), signer(ed, "ed")};
	struct tu_results r;

	s[2].domain = s[3].domain = "platform.example";
	s[1].body_canon = DKIM_CANON_SIMPLE;
	char *m = tu_signed(s, 4, sample, T_NOW);
	tu_verify(table, m, T_NOW, &r);
	tu_assert_all_pass(&r, 4);
	assert_string_equal(r.r[0].algorithm, "rsa-sha256");
	assert_string_equal(r.r[1].algorithm, "ed25519-sha256");
	assert_string_equal(r.r[2].domain, "platform.example");
	free(m);
}

struct by_from {
	int calls;
	char from[DNS_NAME_MAX + 1];
	struct dkim_signer s;
};

static void
choose(void *arg, struct dkim_sign *ctx, const char *from_domain)
{
	struct by_from *b = arg;
	char err[256];

	b->calls++;
	snprintf(b->from, sizeof(b->from), "%s", from_domain ? from_domain : "(none)");
	if (from_domain && strcmp(from_domain, "example.com") == 0)
		assert_int_equal(dkim_sign_add(ctx, &b->s, err, sizeof(err)), 0);
}

static void
test_signer_chosen_by_from_domain(void **state)
{
	struct by_from b = {.s = signer(ed, "ed")};
	struct dkim_signer platform = signer(rsa2048, "r2048");
	struct dkim_sign *ctx;
	struct tu_results r;
	char err[256], *f, *m;

	platform.domain = "platform.example";
	ctx = dkim_sign_new(T_NOW);
	assert_int_equal(dkim_sign_add(ctx, &platform, err, sizeof(err)), 0);
	dkim_sign_on_headers(ctx, choose, &b);
	for (size_t i = 0; i < strlen(sample); i += 7)
		dkim_sign_update(ctx, sample + i, strlen(sample) - i < 7 ? strlen(sample) - i : 7);
	/* Too late now: the body has started. */
	assert_int_equal(dkim_sign_add(ctx, &platform, err, sizeof(err)), -1);
	f = dkim_sign_final(ctx, err, sizeof(err));
	assert_non_null(f);
	dkim_sign_free(ctx);
	assert_int_equal(b.calls, 1);
	assert_string_equal(b.from, "example.com");
	m = xasprintf("%s%s", f, sample);
	tu_verify(table, m, T_NOW, &r);
	tu_assert_all_pass(&r, 2);
	assert_string_equal(r.r[0].domain, "platform.example");
	assert_string_equal(r.r[1].domain, "example.com");
	free(m);
	free(f);

	/* No From: the callback hears NULL; no signer: no signature, and says so. */
	ctx = dkim_sign_new(T_NOW);
	b.calls = 0;
	dkim_sign_on_headers(ctx, choose, &b);
	dkim_sign_update(ctx, "Subject: x\r\n\r\nbody\r\n", 20);
	assert_null(dkim_sign_final(ctx, err, sizeof(err)));
	assert_string_equal(err, "dkim: no signer for this message");
	assert_string_equal(b.from, "(none)");
	dkim_sign_free(ctx);
}

static void
test_signer_errors(void **state)
{
	static const struct {
		const char *domain, *selector, *identity, *header, *why;
	} cases[] = {
	    {"bad domain", "s", NULL, NULL,
	     "dkim: \"bad domain\" is not a domain name to sign for"},
	    {"example.com", "s;x", NULL, NULL,
	     "dkim: selector \"s;x\" is not one or more DNS labels"},
	    {"example.com", "s", "joe@other.example", NULL,
	     "dkim: identity \"joe@other.example\" is not an address at example.com or below it"},
	    {"example.com", "s", "joe@notexample.com", NULL,
	     "dkim: identity \"joe@notexample.com\" is not an address at example.com or below it"},
	    {"example.com", "s", "a b@example.com", NULL,
	     "dkim: identity \"a b@example.com\" is not an address at example.com or below it"},
	    {"example.com", "s", NULL, "x:y", "dkim: \"x:y\" is not a header field name"},
	};
	char err[256];

	for (size_t i = 0; i < nitems(cases); i++) {
		const char *h[] = {cases[i].header, NULL};
		struct dkim_signer s = {.key = ed,
		                        .domain = cases[i].domain,
		                        .selector = cases[i].selector,
		                        .identity = cases[i].identity,
		                        .headers = cases[i].header ? h : NULL};
		struct dkim_sign *ctx = dkim_sign_new(T_NOW);

		assert_int_equal(dkim_sign_add(ctx, &s, err, sizeof(err)), -1);
		assert_string_equal(err, cases[i].why);
		dkim_sign_free(ctx);
	}
	/* A subdomain identity is fine. */
	struct dkim_signer ok = signer(ed, "ed");
	ok.identity = "bounces@mail.example.com";
	struct dkim_sign *ctx = dkim_sign_new(T_NOW);
	assert_int_equal(dkim_sign_add(ctx, &ok, err, sizeof(err)), 0);
	struct dkim_signer nokey = ok;
	nokey.key = NULL;
	assert_int_equal(dkim_sign_add(ctx, &nokey, err, sizeof(err)), -1);
	assert_string_equal(err, "dkim: no key for example.com");
	for (int i = 1; i < DKIM_SIGNERS_MAX; i++)
		assert_int_equal(dkim_sign_add(ctx, &ok, err, sizeof(err)), 0);
	assert_int_equal(dkim_sign_add(ctx, &ok, err, sizeof(err)), -1);
	dkim_sign_free(ctx);
}

static void
test_header_section_too_large(void **state)
{
	struct dkim_signer s = signer(ed, "ed");
	struct dkim_sign *ctx = dkim_sign_new(T_NOW);
	char line[1024], err[256];
	int rc = 0;

	memset(line, 'x', sizeof(line));
	memcpy(line, "X-Big: ", 7);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	assert_int_equal(dkim_sign_add(ctx, &s, err, sizeof(err)), 0);
	for (int i = 0; i < 1100 && rc == 0; i++)
		rc = dkim_sign_update(ctx, line, sizeof(line));
	assert_int_equal(rc, -1);
	assert_null(dkim_sign_final(ctx, err, sizeof(err)));
	assert_string_equal(err, "dkim: header section larger than 1048576 octets");
	dkim_sign_free(ctx);
}

/* ---- Keys ---- */

static void
assert_load_error(const char *name, const char *content, const char *why)
{
	char path[512], err[512], want[1024];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (content)
		tu_write(path, content, strlen(content));
	assert_null(dkim_key_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "dkim key %s: %s", path, why);
	assert_string_equal(err, want);
}

static char *
pem_of(EVP_PKEY *pk, const EVP_CIPHER *cipher)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_int_equal(PEM_write_bio_PrivateKey(b, pk, cipher, NULL, 0, NULL, (void *)"secret"),
	                 1);
	n = BIO_get_mem_data(b, &data);
	out = xstrndup(data, (size_t)n);
	BIO_free(b);
	return out;
}

static void
test_key_load_errors(void **state)
{
	char path[512], *pem;
	EVP_PKEY *pk;

	assert_load_error("missing.pem", NULL, "No such file or directory");
	snprintf(path, sizeof(path), "%s/adir", dir);
	mkdir(path, 0700);
	assert_load_error("adir", NULL, "not a regular file");
	assert_load_error("garbage.pem", "hello\n",
	                  "not a PEM private key (expected \"BEGIN PRIVATE KEY\" or \"BEGIN RSA "
	                  "PRIVATE KEY\")");
	assert_load_error("empty.pem", "",
	                  "not a PEM private key (expected \"BEGIN PRIVATE KEY\" "
	                  "or \"BEGIN RSA PRIVATE KEY\")");
	assert_load_error(
	    "public.pem",
	    "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMl"
	    "rwIaaPcHURo=\n-----END PUBLIC KEY-----\n",
	    "a public key: signing needs the private key");

	pk = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	pem = pem_of(pk, NULL);
	assert_load_error("ec.pem", pem, "an EC key: DKIM signs with RSA or Ed25519");
	free(pem);
	pem = pem_of(pk, EVP_aes_128_cbc());
	assert_load_error("encrypted.pem", pem,
	                  "encrypted: Drover needs the key unencrypted (it starts unattended); "
	                  "decrypt it with openssl pkey");
	free(pem);
	EVP_PKEY_free(pk);

	pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	pem = pem_of(pk, NULL);
	assert_load_error("rsa512.pem", pem,
	                  "an RSA key of 512 bits: DKIM needs 1024 to 4096 (RFC 8301: verifiers "
	                  "refuse shorter keys and need not accept longer ones)");
	free(pem);
	EVP_PKEY_free(pk);

	if (geteuid() != 0) { /* root reads whatever the mode says */
		snprintf(path, sizeof(path), "%s/rsa2048.pem", dir);
		chmod(path, 0);
		assert_load_error("rsa2048.pem", NULL, "Permission denied");
		chmod(path, 0600);
	}
}

static void
test_key_reload(void **state)
{
	char path[512], src[512], err[512], *data;
	struct dkim_key *k;
	struct dkim_signer s;
	struct dkim_sign *before;
	struct tu_results r;
	FILE *f;
	long n;

	/* A key file with an RSA key… */
	snprintf(src, sizeof(src), "%s/rsa2048.pem", dir);
	f = fopen(src, "r");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	data = xmalloc((size_t)n);
	assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	snprintf(path, sizeof(path), "%s/rotating.pem", dir);
	tu_write(path, data, (size_t)n);
	free(data);
	k = dkim_key_load(path, err, sizeof(err));
	assert_non_null(k);
	assert_string_equal(dkim_key_path(k), path);
	assert_int_equal(dkim_key_algorithm(k), DKIM_RSA_SHA256);

	/* …a message starts signing with it… */
	s = signer(k, "r2048");
	before = dkim_sign_new(T_NOW);
	assert_int_equal(dkim_sign_add(before, &s, err, sizeof(err)), 0);
	dkim_sign_update(before, sample, 100);

	/* …a broken file on disk leaves the key as it was… */
	tu_write(path, "junk", 4);
	assert_int_equal(dkim_key_reload(k, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a PEM private key"));
	assert_int_equal(dkim_key_algorithm(k), DKIM_RSA_SHA256);

	/* …and an Ed25519 key replaces it for new messages only. */
	snprintf(src, sizeof(src), "%s/ed25519.pem", dir);
	f = fopen(src, "r");
	char buf[512];
	size_t got = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	tu_write(path, buf, got);
	assert_int_equal(dkim_key_reload(k, err, sizeof(err)), 0);
	assert_int_equal(dkim_key_algorithm(k), DKIM_ED25519_SHA256);

	dkim_sign_update(before, sample + 100, strlen(sample) - 100);
	char *old = dkim_sign_final(before, err, sizeof(err));
	dkim_sign_free(before);
	assert_non_null(strstr(old, "a=rsa-sha256"));
	char *m = xasprintf("%s%s", old, sample);
	tu_verify(table, m, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	free(m);
	free(old);

	s = signer(k, "ed");
	m = tu_signed(&s, 1, sample, T_NOW);
	assert_non_null(strstr(m, "a=ed25519-sha256"));
	tu_verify(table, m, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	free(m);
	dkim_key_free(k);
}

static void
test_keygen(void **state)
{
	char path[512], err[512], *rec;
	struct stat st;
	unsigned char der[1024];
	enum dkim_keygen_type t;

	/* The keys made in setup: mode 0600, loadable, records of the right shape. */
	snprintf(path, sizeof(path), "%s/rsa2048.pem", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_true(strncmp(rec2048, "v=DKIM1; k=rsa; p=MIIBIjAN", 26) == 0);
	assert_int_equal(b64_decode(rec2048 + 18, strlen(rec2048 + 18), der, sizeof(der)), 294);
	assert_true(strncmp(rec4096, "v=DKIM1; k=rsa; p=", 18) == 0);
	assert_int_equal(b64_decode(rec4096 + 18, strlen(rec4096 + 18), der, sizeof(der)), 550);
	assert_true(strncmp(reced, "v=DKIM1; k=ed25519; p=", 22) == 0);
	assert_int_equal(b64_decode(reced + 22, strlen(reced + 22), der, sizeof(der)), 32);
	rec = dkim_key_dns_record(ed);
	assert_string_equal(rec, reced);
	free(rec);
	assert_int_equal(dkim_key_bits(rsa1024), 1024);
	assert_int_equal(dkim_key_bits(rsa4096), 4096);

	/* Never over an existing file; nothing left behind on failure. */
	assert_int_equal(dkim_keygen(DKIM_KEYGEN_ED25519, path, &rec, err, sizeof(err)), -1);
	assert_null(rec);
	assert_non_null(strstr(err, "exists: keygen does not overwrite a key"));
	snprintf(path, sizeof(path), "%s/no/such/dir/k.pem", dir);
	assert_int_equal(dkim_keygen(DKIM_KEYGEN_ED25519, path, &rec, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "No such file or directory"));

	/* A restrictive umask does not matter; a permissive one neither. */
	mode_t old = umask(0);
	snprintf(path, sizeof(path), "%s/umask.pem", dir);
	assert_int_equal(dkim_keygen(DKIM_KEYGEN_ED25519, path, &rec, err, sizeof(err)), 0);
	umask(old);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	free(rec);

	assert_int_equal(dkim_keygen_type_parse("ED25519", &t), 0);
	assert_int_equal(t, DKIM_KEYGEN_ED25519);
	assert_int_equal(dkim_keygen_type_parse("rsa", &t), 0);
	assert_int_equal(t, DKIM_KEYGEN_RSA2048);
	assert_int_equal(dkim_keygen_type_parse("rsa8192", &t), -1);
	assert_string_equal(dkim_keygen_type_name(DKIM_KEYGEN_RSA4096), "rsa4096");
}

static void
test_zone_line(void **state)
{
	char *z = dkim_dns_zone_line("s1", "example.com", reced), *want;

	want = xasprintf("s1._domainkey.example.com. IN TXT ( \"%s\" )", reced);
	assert_string_equal(z, want);
	free(z);
	free(want);

	/* 4096-bit: three character-strings of at most 255 octets that join to the record. */
	z = dkim_dns_zone_line("s2", "example.com", rec4096);
	struct dbuf joined = {0};
	int strings = 0;
	for (char *p = strchr(z, '"'); p; p = strchr(p + 1, '"')) {
		char *e = strchr(p + 1, '"');
		assert_true(e - p - 1 <= 255);
		dbuf_add(&joined, p + 1, (size_t)(e - p - 1));
		strings++;
		p = e;
	}
	assert_int_equal(strings, 3);
	assert_string_equal(joined.p, rec4096);
	dbuf_free(&joined);
	free(z);
}

/* ---- Threads ---- */

struct worker {
	struct dkim_key *key;
	const char *selector;
	int ok;
};

static void *
work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < 25; i++) {
		struct dkim_signer s = signer(w->key, w->selector);
		struct tu_results r;
		char *m;

		s.body_canon = (enum dkim_canon)(i % 2);
		m = tu_signed(&s, 1, sample, T_NOW + (uint64_t)i);
		tu_verify(table, m, T_NOW + 30, &r);
		w->ok += r.n == 1 && r.r[0].result == DKIM_RESULT_PASS;
		free(m);
	}
	return NULL;
}

static atomic_int stop_reloading;

static void *
reloader(void *arg)
{
	char err[512];
	int n = 0;

	while (!atomic_load(&stop_reloading)) {
		if (dkim_key_reload(arg, err, sizeof(err)) < 0)
			return (void *)-1L;
		n++;
	}
	return (void *)(long)n;
}

static void
test_threads_share_one_key(void **state)
{
	struct worker w[4] = {
	    {rsa2048, "r2048", 0}, {rsa2048, "r2048", 0}, {ed, "ed", 0}, {ed, "ed", 0}};
	pthread_t t[4], r1, r2;
	void *rv1, *rv2;

	/* Both keys reloaded (from the same files) all the while. */
	atomic_store(&stop_reloading, 0);
	pthread_create(&r1, NULL, reloader, rsa2048);
	pthread_create(&r2, NULL, reloader, ed);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, work, &w[i]);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop_reloading, 1);
	pthread_join(r1, &rv1);
	pthread_join(r2, &rv2);
	for (int i = 0; i < 4; i++)
		assert_int_equal(w[i].ok, 25);
	assert_true((long)rv1 > 0 && (long)rv2 > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc8463_signatures_reproduced),
	    cmocka_unit_test(test_rfc8463_published_message_verifies),
	    cmocka_unit_test(test_round_trips),
	    cmocka_unit_test(test_chunk_boundaries),
	    cmocka_unit_test(test_repeated_and_folded_headers),
	    cmocka_unit_test(test_from_is_oversigned),
	    cmocka_unit_test(test_bodies),
	    cmocka_unit_test(test_field_format),
	    cmocka_unit_test(test_expiry_is_checked),
	    cmocka_unit_test(test_several_signers),
	    cmocka_unit_test(test_signer_chosen_by_from_domain),
	    cmocka_unit_test(test_signer_errors),
	    cmocka_unit_test(test_header_section_too_large),
	    cmocka_unit_test(test_key_load_errors),
	    cmocka_unit_test(test_key_reload),
	    cmocka_unit_test(test_keygen),
	    cmocka_unit_test(test_zone_line),
	    cmocka_unit_test(test_threads_share_one_key),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
