/* test_auth_dkim_verify.c - verification: every result keyword and its reason (tampering,
 * missing, revoked, mismatched and short keys, DNS failures, rsa-sha1, expiry, future
 * timestamps, t=y and t=s keys, l= in incoming mail), the limit on signatures, lookups that
 * answer later or never, any chunking, and the Authentication-Results field. */
#include "test_auth_dkim_util.h"

#include <openssl/x509.h>

static char *dir;
static struct dkim_key *rsa, *ed;
static char *recrsa, *reced;

static int
setup(void **state)
{
	dir = tu_tmpdir();
	rsa = tu_key(dir, "rsa", DKIM_KEYGEN_RSA2048, &recrsa);
	ed = tu_key(dir, "ed", DKIM_KEYGEN_ED25519, &reced);
	return 0;
}

static int
teardown(void **state)
{
	dkim_key_free(rsa);
	dkim_key_free(ed);
	free(recrsa);
	free(reced);
	tu_rmdir(dir);
	return 0;
}

static const char msg[] = "From: Alice <alice@example.com>\r\n"
                          "To: bob@example.org\r\n"
                          "Subject: test\r\n"
                          "\r\n"
                          "Hello Bob.\r\n";

static struct dkim_signer
signer(struct dkim_key *k, const char *selector)
{
	return (struct dkim_signer){.key = k,
	                            .domain = "example.com",
	                            .selector = selector,
	                            .header_canon = DKIM_CANON_RELAXED,
	                            .body_canon = DKIM_CANON_RELAXED};
}

/* A signature made from the parts, for what our signer never writes (l=, odd tags): tags is
 * the field up to bh=, h the names it lists. */
static char *
hand_signed(struct dkim_key *k, const char *tags, const char *const *h, size_t nh,
            enum dkim_canon hc, enum dkim_canon bc, uint64_t l, const char *m)
{
	struct dkim_msg dm;
	struct dkim_body body;
	struct dbuf data = {0};
	unsigned char bh[DKIM_HASH_LEN], sig[1024];
	char bh64[64], sig64[2048];
	size_t siglen = sizeof(sig), took;
	char *field, *out;

	dkim_msg_init(&dm);
	took = dkim_msg_headers(&dm, m, strlen(m));
	dkim_msg_end_headers(&dm);
	dkim_body_init(&body, bc, l);
	dkim_body_update(&body, m + took, strlen(m) - took);
	dkim_body_final(&body, bh);
	dkim_body_free(&body);
	b64_encode(bh, sizeof(bh), bh64);
	field = xasprintf("DKIM-Signature: %s bh=%s; b=", tags, bh64);
	dkim_msg_select(&dm, h, nh, hc, &data);
	dkim_canon_header(hc, field, strlen(field), false, &data);
	struct dkim_keydata *kd = dkim_key_acquire(k);
	assert_int_equal(dkim_crypto_sign(kd->pkey, kd->alg, &data, sig, &siglen), 0);
	dkim_keydata_release(kd);
	b64_encode(sig, siglen, sig64);
	out = xasprintf("%s%s\r\n%s", field, sig64, m);
	free(field);
	dbuf_free(&data);
	dkim_msg_free(&dm);
	return out;
}

static void
test_no_signature(void **state)
{
	const char *t[] = {NULL};
	struct tu_results r;
	struct dkim_results res = {0};
	char *ar;

	tu_verify(t, msg, T_NOW, &r);
	assert_int_equal(r.n, 0);
	ar = dkim_auth_results("mx.example.net", &res);
	assert_string_equal(ar, "Authentication-Results: mx.example.net;\r\n dkim=none\r\n");
	free(ar);
}

static void
test_tampering(void **state)
{
	struct dkim_signer s = signer(ed, "ed");
	const char *t[] = {"ed._domainkey.example.com", reced, NULL};
	struct tu_results r;
	char *m = tu_signed(&s, 1, msg, T_NOW), *c;

	tu_verify(t, m, T_NOW, &r);
	tu_assert_all_pass(&r, 1);

	c = xstrdup(m);
	strstr(c, "Hello")[0] = 'J';
	tu_verify(t, c, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	assert_string_equal(r.r[0].reason, "body hash did not verify");
	free(c);

	c = xstrdup(m);
	strstr(c, "Subject: test")[9] = 'T';
	tu_verify(t, c, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	assert_string_equal(r.r[0].reason, "signature did not verify");
	free(c);

	/* The signature field itself is signed (but for b=). */
	c = xstrdup(m);
	strstr(c, "t=1764400000")[11] = '1';
	tu_verify(t, c, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	free(c);

	/* A field nobody signed may be added, anywhere. */
	c = xasprintf("Received: by relay.example.org\r\n%s", m);
	tu_verify(t, c, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	free(c);

	/* LF line ends all through (a store that dropped the CRs): still the same message. */
	struct dbuf lf = {0};
	for (const char *p = m; *p; p++)
		if (!(p[0] == '\r' && p[1] == '\n'))
			dbuf_addc(&lf, *p);
	tu_verify(t, lf.p, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	dbuf_free(&lf);
	free(m);
}

static void
test_key_problems(void **state)
{
	struct dkim_signer s = signer(ed, "ed");
	struct dkim_signer sr = signer(rsa, "rsa");
	char *m = tu_signed(&s, 1, msg, T_NOW), *mr = tu_signed(&sr, 1, msg, T_NOW);
	struct tu_results r;

	/* Short RSA keys are not keys (RFC 8301). */
	EVP_PKEY *pk = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)512);
	unsigned char *der = NULL;
	int n = i2d_PUBKEY(pk, &der);
	char b64[1024];
	b64_encode(der, (size_t)n, b64);
	char *short_rec = xasprintf("v=DKIM1; k=rsa; p=%s", b64);
	OPENSSL_free(der);
	EVP_PKEY_free(pk);

	static const struct {
		const char *record; /* NULL: lookup fails temporarily; "": not in the table */
		bool rsa_sig;
		enum dkim_result result;
		const char *reason;
	} cases[] = {
	    {"", false, DKIM_RESULT_PERMERROR, "no key at ed._domainkey.example.com"},
	    {NULL, false, DKIM_RESULT_TEMPERROR, "key lookup failed: temporary failure (table)"},
	    {"v=DKIM1; k=ed25519; p=", false, DKIM_RESULT_PERMERROR, "key revoked (empty p=)"},
	    {"v=DKIM1; k=ed25519; p=not base64!", false, DKIM_RESULT_PERMERROR,
	     "key record p= is not base64"},
	    {"v=DKIM1; k=ed25519", false, DKIM_RESULT_PERMERROR, "key record without p="},
	    {"v=spf1 -all", false, DKIM_RESULT_PERMERROR, "key record v= is not DKIM1 first"},
	    {"RSA", false, DKIM_RESULT_PERMERROR, "key type rsa does not match a=ed25519-sha256"},
	    {"SHORT", true, DKIM_RESULT_PERMERROR,
	     "512-bit RSA key: shorter than 1024 bits (RFC 8301)"},
	    {"ED", true, DKIM_RESULT_PERMERROR, "key type ed25519 does not match a=rsa-sha256"},
	};
	for (size_t i = 0; i < nitems(cases); i++) {
		const char *rec = cases[i].record;
		if (rec && strcmp(rec, "RSA") == 0)
			rec = recrsa;
		else if (rec && strcmp(rec, "ED") == 0)
			rec = reced;
		else if (rec && strcmp(rec, "SHORT") == 0)
			rec = short_rec;
		const char *t[] = {cases[i].rsa_sig ? "rsa._domainkey.example.com"
		                                    : "ed._domainkey.example.com",
		                   rec, NULL};
		if (rec && rec[0] == '\0')
			t[0] = "other._domainkey.example.com";
		tu_verify(t, cases[i].rsa_sig ? mr : m, T_NOW, &r);
		assert_int_equal(r.n, 1);
		assert_string_equal(r.r[0].reason, cases[i].reason);
		assert_int_equal(r.r[0].result, cases[i].result);
	}
	free(short_rec);
	free(m);
	free(mr);
}

static void
test_key_flags(void **state)
{
	struct dkim_signer s = signer(ed, "ed");
	struct tu_results r;
	char *m, *rec, *ar;

	/* t=y: the result stands, and says the domain is testing. */
	rec = xasprintf("%s; t=y", reced);
	const char *t[] = {"ed._domainkey.example.com", rec, NULL};
	m = tu_signed(&s, 1, msg, T_NOW);
	tu_verify(t, m, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	assert_true(r.r[0].testing);
	ar = dkim_resinfo(&r.r[0]);
	assert_true(strncmp(ar, "dkim=pass (ed25519 key, test mode) header.d=example.com", 55) ==
	            0);
	free(ar);
	free(m);
	free(rec);

	/* t=s: an i= below d= is refused; i= in d= itself is fine. */
	rec = xasprintf("%s; t=s", reced);
	t[1] = rec;
	s.identity = "news@mail.example.com";
	m = tu_signed(&s, 1, msg, T_NOW);
	tu_verify(t, m, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(r.r[0].reason, "i= is below d= but the key allows d= only (t=s)");
	free(m);
	s.identity = "news@example.com";
	m = tu_signed(&s, 1, msg, T_NOW);
	tu_verify(t, m, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	free(m);
	free(rec);
}

static void
test_body_length_is_honoured(void **state)
{
	const char *h[] = {"from", "subject"};
	const char *t[] = {"ed._domainkey.example.com", reced, NULL};
	struct tu_results r;
	char *m, *more;

	/* "Hello Bob.\r\n" is 12 canonical octets: l=12 covers it; what a list appends after
	 * is not covered, and still verifies (we never sign with l= for this reason). */
	m = hand_signed(ed,
	                "v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com; s=ed; l=12; "
	                "h=from:subject;",
	                h, 2, DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, 12, msg);
	tu_verify(t, m, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	more = xasprintf("%s-- \r\nTo unsubscribe, write to list@example.org\r\n", m);
	tu_verify(t, more, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	free(more);
	free(m);

	/* l= beyond the body: fail. */
	m = hand_signed(ed,
	                "v=1; a=ed25519-sha256; c=simple/simple; d=example.com; s=ed; l=100; "
	                "h=from:subject;",
	                h, 2, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE, 100, msg);
	tu_verify(t, m, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_FAIL);
	assert_string_equal(r.r[0].reason, "body shorter than l=100");
	free(m);
}

static void
test_signature_problems(void **state)
{
	const char *h[] = {"from"};
	const char *t[] = {"ed._domainkey.example.com", reced, "rsa._domainkey.example.com", recrsa,
	                   NULL};
	struct tu_results r;
	char *m, *ar;

	/* rsa-sha1: refused before any key is fetched (RFC 8301). */
	m = xasprintf("DKIM-Signature: v=1; a=rsa-sha1; d=example.com; s=rsa; h=from;\r\n"
	              " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=; b=dGVzdA==\r\n%s",
	              msg);
	tu_verify(t, m, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(r.r[0].reason, "rsa-sha1 is not accepted (RFC 8301)");
	assert_string_equal(r.r[0].algorithm, "rsa-sha1");
	struct dkim_results res = {.n = 1, .sigs = r.r};
	ar = dkim_auth_results("mx.example.net", &res);
	assert_string_equal(ar, "Authentication-Results: mx.example.net;\r\n"
	                        " dkim=permerror reason=\"rsa-sha1 is not accepted (RFC 8301)\"\r\n"
	                        " header.d=example.com header.i=@example.com header.s=rsa "
	                        "header.a=rsa-sha1\r\n"
	                        " header.b=\"dGVzdA==\"\r\n");
	free(ar);
	free(m);

	/* A timestamp in the future, beyond the clock skew allowed. */
	m = hand_signed(ed, "v=1; a=ed25519-sha256; d=example.com; s=ed; t=1764500000; h=from;", h,
	                1, DKIM_CANON_SIMPLE, DKIM_CANON_SIMPLE, UINT64_MAX, msg);
	tu_verify(t, m, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(r.r[0].reason, "signature time t= is in the future");
	tu_verify(t, m, 1764500000 - DKIM_VERIFY_CLOCK_SKEW_S, &r);
	tu_assert_all_pass(&r, 1);
	free(m);

	/* Garbage where the tags should be. */
	m = xasprintf("DKIM-Signature: this is not a tag list\r\n%s", msg);
	tu_verify(t, m, T_NOW, &r);
	assert_int_equal(r.r[0].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(r.r[0].reason, "malformed signature: a tag without \"=\"");
	ar = dkim_resinfo(&r.r[0]);
	assert_string_equal(ar, "dkim=permerror reason=\"malformed signature: a tag without "
	                        "\\\"=\\\"\"");
	free(ar);
	free(m);

	/* The field name in any case; a lower-case one is still a signature. */
	struct dkim_signer s = signer(ed, "ed");
	m = tu_signed(&s, 1, msg, T_NOW);
	memcpy(m, "dkim-signature", 14);
	tu_verify(t, m, T_NOW, &r);
	tu_assert_all_pass(&r, 1);
	free(m);
}

static void
test_signature_limit(void **state)
{
	struct dkim_signer s[DKIM_SIGNERS_MAX];
	const char *t[] = {"ed._domainkey.example.com", reced, NULL};
	struct dkim_verify_options opt = {.now_s = T_NOW};
	struct dkim_lookup l;
	struct tu_results r = {0};

	for (int i = 0; i < 7; i++)
		s[i] = signer(ed, "ed");
	char *m = tu_signed(s, 7, msg, T_NOW);
	tu_verify(t, m, T_NOW, &r);
	assert_int_equal(r.n, 7);
	for (int i = 0; i < 5; i++)
		assert_int_equal(r.r[i].result, DKIM_RESULT_PASS);
	for (int i = 5; i < 7; i++) {
		assert_int_equal(r.r[i].result, DKIM_RESULT_NEUTRAL);
		assert_string_equal(r.r[i].reason, "not verified: more than 5 signatures");
		assert_string_equal(r.r[i].domain, "example.com");
	}
	/* The limit is a setting. */
	opt.max_signatures = 2;
	dkim_lookup_table(&l, t);
	struct dkim_verify *v = dkim_verify_new(&l, &opt);
	dkim_verify_update(v, m, strlen(m));
	dkim_verify_final(v, tu_copy_results, &r);
	dkim_verify_free(v);
	assert_int_equal(r.r[1].result, DKIM_RESULT_PASS);
	assert_int_equal(r.r[2].result, DKIM_RESULT_NEUTRAL);
	free(m);
}

static void
test_any_chunking(void **state)
{
	struct dkim_signer s[2] = {signer(rsa, "rsa"), signer(ed, "ed")};
	const char *t[] = {"ed._domainkey.example.com", reced, "rsa._domainkey.example.com", recrsa,
	                   NULL};
	struct tu_results r;

	s[1].header_canon = s[1].body_canon = DKIM_CANON_SIMPLE;
	char *m = tu_signed(s, 2, msg, T_NOW);
	for (size_t chunk = 1; chunk < strlen(m) + 1; chunk += chunk < 20 ? 1 : 17) {
		tu_verify_chunked(t, m, strlen(m), chunk, T_NOW, &r);
		tu_assert_all_pass(&r, 2);
	}
	free(m);
}

/* ---- Lookups that answer later ---- */

struct later {
	int started, cancelled;
	char names[4][128];
	dkim_lookup_done *done[4];
	void *token[4];
	bool open[4];
};

static void *
later_start(void *arg, const char *name, dkim_lookup_done *done, void *token)
{
	struct later *l = arg;
	int i = l->started++;

	snprintf(l->names[i], sizeof(l->names[i]), "%s", name);
	l->done[i] = done;
	l->token[i] = token;
	l->open[i] = true;
	return &l->open[i];
}

static void
later_cancel(void *arg, void *handle)
{
	struct later *l = arg;

	*(bool *)handle = false;
	l->cancelled++;
}

static void
later_answer(struct later *l, int i, const char *record)
{
	struct dns_txt_record rec = {record, strlen(record)};
	struct dkim_lookup_answer a = {.status = DKIM_LOOKUP_OK, .records = &rec, .nrecords = 1};

	assert_true(l->open[i]);
	l->open[i] = false;
	l->done[i](l->token[i], &a);
}

static void
test_lookups_answer_later(void **state)
{
	struct dkim_signer s[2] = {signer(rsa, "rsa"), signer(ed, "ed")};
	struct later st = {0};
	struct dkim_lookup l = {.start = later_start, .cancel = later_cancel, .arg = &st};
	struct dkim_verify_options opt = {.now_s = T_NOW};
	struct tu_results r = {0};
	char *m = tu_signed(s, 2, msg, T_NOW);
	char *body = strstr(m, "\r\n\r\n") + 4;
	struct dkim_verify *v = dkim_verify_new(&l, &opt);

	/* The lookups start with the header section, before the body. */
	dkim_verify_update(v, m, (size_t)(body - m));
	assert_int_equal(st.started, 2);
	assert_string_equal(st.names[0], "rsa._domainkey.example.com");
	assert_string_equal(st.names[1], "ed._domainkey.example.com");
	later_answer(&st, 1, reced); /* while the body still comes */
	dkim_verify_update(v, body, strlen(body));
	dkim_verify_final(v, tu_copy_results, &r);
	assert_false(r.called); /* one key outstanding */
	later_answer(&st, 0, recrsa);
	assert_true(r.called);
	tu_assert_all_pass(&r, 2);
	dkim_verify_free(v);
	assert_int_equal(st.cancelled, 0);

	/* Freed with lookups in flight: they are cancelled and the callback never runs. */
	memset(&st, 0, sizeof(st));
	memset(&r, 0, sizeof(r));
	v = dkim_verify_new(&l, &opt);
	dkim_verify_update(v, m, strlen(m));
	dkim_verify_final(v, tu_copy_results, &r);
	later_answer(&st, 0, recrsa);
	dkim_verify_free(v);
	assert_int_equal(st.cancelled, 1);
	assert_false(r.called);
	free(m);
}

/* The callback may free the verifier. */
static void
free_in_callback(void *arg, const struct dkim_results *res)
{
	struct dkim_verify **v = arg;

	assert_int_equal(res->n, 1);
	dkim_verify_free(*v);
	*v = NULL;
}

static void
test_free_from_callback(void **state)
{
	struct dkim_signer s = signer(ed, "ed");
	struct later st = {0};
	struct dkim_lookup l = {.start = later_start, .cancel = later_cancel, .arg = &st};
	char *m = tu_signed(&s, 1, msg, T_NOW);
	struct dkim_verify *v = dkim_verify_new(&l, NULL);

	dkim_verify_update(v, m, strlen(m));
	dkim_verify_final(v, free_in_callback, &v);
	later_answer(&st, 0, reced);
	assert_null(v);
	free(m);
}

/* ---- Authentication-Results ---- */

static void
test_authentication_results(void **state)
{
	struct dkim_sig_result r[3] = {
	    {.result = DKIM_RESULT_PASS,
	     .domain = "example.com",
	     .selector = "s2025",
	     .identity = "@example.com",
	     .algorithm = "rsa-sha256",
	     .b = "Ab/dEfGh",
	     .key_bits = 2048},
	    {.result = DKIM_RESULT_FAIL,
	     .reason = "body hash did not verify",
	     .domain = "platform.example",
	     .selector = "ed",
	     .identity = "bounces@platform.example",
	     .algorithm = "ed25519-sha256",
	     .b = "12345678"},
	    {.result = DKIM_RESULT_TEMPERROR,
	     .reason = "key lookup failed: timed out",
	     .domain = "slow.example",
	     .selector = "s",
	     .identity = "\"odd local\"@slow.example",
	     .algorithm = "rsa-sha256"},
	};
	struct dkim_results res = {3, r};
	char *ar = dkim_auth_results("mx1.example.net", &res);

	assert_string_equal(
	    ar, "Authentication-Results: mx1.example.net;\r\n"
	        " dkim=pass (2048-bit rsa key) header.d=example.com header.i=@example.com\r\n"
	        " header.s=s2025 header.a=rsa-sha256 header.b=\"Ab/dEfGh\";\r\n"
	        " dkim=fail reason=\"body hash did not verify\" header.d=platform.example\r\n"
	        " header.i=bounces@platform.example header.s=ed header.a=ed25519-sha256\r\n"
	        " header.b=12345678;\r\n"
	        " dkim=temperror reason=\"key lookup failed: timed out\" header.d=slow.example\r\n"
	        " header.i=\"\\\"odd local\\\"@slow.example\" header.s=s header.a=rsa-sha256\r\n");
	free(ar);

	/* The shared builder: "none" when no method has a result. */
	ar = auth_results_header("mx1.example.net", NULL, 0);
	assert_string_equal(ar, "Authentication-Results: mx1.example.net; none\r\n");
	free(ar);
}

static void
test_header_section_too_large(void **state)
{
	const char *t[] = {NULL};
	struct dkim_lookup l;
	struct tu_results r = {0};
	char line[1024];

	memset(line, 'x', sizeof(line));
	memcpy(line, "X-Big: ", 7);
	memcpy(line + sizeof(line) - 2, "\r\n", 2);
	dkim_lookup_table(&l, t);
	struct dkim_verify *v = dkim_verify_new(&l, NULL);
	for (int i = 0; i < 1100; i++)
		dkim_verify_update(v, line, sizeof(line));
	dkim_verify_update(v, "\r\nbody\r\n", 8);
	dkim_verify_final(v, tu_copy_results, &r);
	dkim_verify_free(v);
	assert_int_equal(r.n, 1);
	assert_int_equal(r.r[0].result, DKIM_RESULT_PERMERROR);
	assert_string_equal(r.r[0].reason, "header section larger than 1048576 octets");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_signature),
	    cmocka_unit_test(test_tampering),
	    cmocka_unit_test(test_key_problems),
	    cmocka_unit_test(test_key_flags),
	    cmocka_unit_test(test_body_length_is_honoured),
	    cmocka_unit_test(test_signature_problems),
	    cmocka_unit_test(test_signature_limit),
	    cmocka_unit_test(test_any_chunking),
	    cmocka_unit_test(test_lookups_answer_later),
	    cmocka_unit_test(test_free_from_callback),
	    cmocka_unit_test(test_authentication_results),
	    cmocka_unit_test(test_header_section_too_large),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
