/* test_spool_envelope.c - the envelope's on-disk form: round trips, and damaged input. */
#include "test_spool_util.h"

static void
round_trip(const struct envelope *env)
{
	struct envelope out;
	size_t len, len2;
	void *buf = envelope_encode(env, &len);
	void *buf2;

	assert_int_equal(envelope_decode(buf, len, &out), 0);
	assert_envelope_equal(env, &out);
	/* Canonical: encoding what was decoded gives the same octets. */
	buf2 = envelope_encode(&out, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(buf, buf2, len);
	envelope_clear(&out);
	free(buf);
	free(buf2);
}

static void
test_round_trip_full(void **state)
{
	struct envelope env;

	sample_envelope(&env, 3);
	strlcpy_s(env.id, "0123456789abcdef01234567", sizeof(env.id));
	env.size = 123456789012ULL;
	env.rcpt[1].state = RCPT_DELIVERED;
	env.rcpt[2].last_reply = xstrdup("451 4.7.1 try again later");
	env.headers = xstrdup("DKIM-Signature: v=1; a=ed25519-sha256; d=example.org;\r\n"
	                      "\tb=AAAA\r\n");
	env.stream = xstrdup("bulk");
	env.tenant = xstrdup("acme");
	env.campaign = xstrdup("");
	env.pool = NULL;
	round_trip(&env);
	envelope_clear(&env);
}

static void
test_null_sender_and_null_vs_empty(void **state)
{
	struct envelope env;
	struct envelope out;
	size_t len;
	void *buf;

	sample_envelope(&env, 1);
	free(env.sender);
	env.sender = xstrdup(""); /* MAIL FROM:<> */
	free(env.envid);
	env.envid = NULL;
	free(env.helo);
	env.helo = xstrdup("");
	env.auth_user = xstrdup("");
	round_trip(&env);

	buf = envelope_encode(&env, &len);
	assert_int_equal(envelope_decode(buf, len, &out), 0);
	assert_non_null(out.sender);
	assert_string_equal(out.sender, "");
	assert_null(out.envid);
	assert_non_null(out.auth_user);
	assert_string_equal(out.auth_user, "");
	assert_null(out.rcpt[0].orcpt);
	envelope_clear(&out);
	free(buf);
	envelope_clear(&env);
}

static void
test_all_null_and_no_recipients(void **state)
{
	struct envelope env;

	memset(&env, 0, sizeof(env));
	round_trip(&env);
}

static void
test_many_recipients(void **state)
{
	struct envelope env;

	sample_envelope(&env, 10000);
	round_trip(&env);
	envelope_clear(&env);
}

static void
test_utf8(void **state)
{
	struct envelope env;

	sample_envelope(&env, 2);
	env.smtputf8 = true;
	free(env.sender);
	env.sender = xstrdup("δοκιμή@παράδειγμα.ελ");
	free(env.rcpt[0].address);
	env.rcpt[0].address = xstrdup("用户@例子.广告");
	free(env.helo);
	env.helo = xstrdup("\xf0\x9f\x93\xa7.example");
	round_trip(&env);
	envelope_clear(&env);
}

static void
test_copy(void **state)
{
	struct envelope env, copy;

	sample_envelope(&env, 5);
	env.rcpt[3].last_reply = xstrdup("250 ok");
	envelope_copy(&copy, &env);
	assert_envelope_equal(&env, &copy);
	assert_ptr_not_equal(env.sender, copy.sender);
	assert_ptr_not_equal(env.rcpt, copy.rcpt);
	envelope_clear(&env);
	/* The copy stands alone. */
	assert_string_equal(copy.rcpt[3].last_reply, "250 ok");
	envelope_clear(&copy);
}

/* Every proper prefix of a valid encoding is refused, and leaves the envelope cleared. */
static void
test_truncated(void **state)
{
	struct envelope env, out;
	size_t len;
	unsigned char *buf;

	sample_envelope(&env, 4);
	env.rcpt[0].last_reply = xstrdup("550 5.1.1 no such user");
	buf = envelope_encode(&env, &len);
	for (size_t n = 0; n < len; n++) {
		memset(&out, 0xa5, sizeof(out));
		assert_int_equal(envelope_decode(buf, n, &out), -1);
		assert_null(out.sender);
		assert_null(out.rcpt);
		assert_int_equal(out.nrcpt, 0);
	}
	free(buf);
	envelope_clear(&env);
}

static void
test_garbage(void **state)
{
	struct envelope env, out;
	unsigned char *buf, *bad;
	size_t len;

	sample_envelope(&env, 2);
	buf = envelope_encode(&env, &len);
	bad = xmalloc(len + 1);

	/* Trailing octets. */
	memcpy(bad, buf, len);
	bad[len] = 0;
	assert_int_equal(envelope_decode(bad, len + 1, &out), -1);
	/* Unknown versions. */
	memcpy(bad, buf, len);
	bad[0] = 4;
	assert_int_equal(envelope_decode(bad, len, &out), -1);
	bad[0] = 0;
	assert_int_equal(envelope_decode(bad, len, &out), -1);
	/* A length running past the end (the id's). */
	memcpy(bad, buf, len);
	bad[1] = 0xfe;
	bad[2] = bad[3] = bad[4] = 0xff;
	assert_int_equal(envelope_decode(bad, len, &out), -1);
	/* An id longer than an id. */
	memcpy(bad, buf, len);
	bad[1] = SPOOL_ID_LEN + 1;
	assert_int_equal(envelope_decode(bad, len, &out), -1);
	/* A huge recipient count: refused before allocating (the last field before the
	 * recipients is the u64 size; the count follows it). */
	{
		struct envelope none;
		unsigned char *b2;
		size_t l2;

		memset(&none, 0, sizeof(none));
		b2 = envelope_encode(&none, &l2);
		b2[l2 - 4] = b2[l2 - 3] = b2[l2 - 2] = b2[l2 - 1] = 0xff;
		assert_int_equal(envelope_decode(b2, l2, &out), -1);
		free(b2);
	}
	/* Every single-octet change decodes or fails, never crashes, never leaks (ASan). */
	for (size_t i = 0; i < len; i++) {
		for (unsigned v = 0; v < 256; v += 51) {
			memcpy(bad, buf, len);
			bad[i] ^= (unsigned char)(v | 1);
			if (envelope_decode(bad, len, &out) == 0)
				envelope_clear(&out);
		}
	}
	assert_int_equal(envelope_decode(NULL, 0, &out), -1);
	free(bad);
	free(buf);
	envelope_clear(&env);
}

/* A record the first release wrote (version 1: no headers, no recipient flags) is still
 * read, so a spool survives the upgrade; it is written back as version 3. */
static void
test_version_1(void **state)
{
	const char *path = DROVER_SOURCE_DIR "/tests/unit/data/envelope-v1-one-rcpt";
	unsigned char v1[4096], *again;
	struct envelope env, out;
	size_t n, len;
	FILE *f = fopen(path, "rb");

	assert_non_null(f);
	n = fread(v1, 1, sizeof(v1), f);
	fclose(f);
	assert_int_equal(v1[0], 1);
	assert_int_equal(envelope_decode(v1, n, &env), 0);
	assert_string_equal(env.id, "0006442d3a7f1c2b00000001");
	assert_string_equal(env.sender, "sender@example.org");
	assert_null(env.headers);
	assert_int_equal(env.size, 4096);
	assert_int_equal(env.nrcpt, 1);
	assert_string_equal(env.rcpt[0].address, "rcpt0@example.com");
	assert_int_equal(env.rcpt[0].flags, 0);
	again = envelope_encode(&env, &len);
	assert_null(env.stream);
	assert_null(env.pool);
	assert_int_equal(again[0], 3);
	/* NULL headers, stream, tenant, campaign and pool strings; one flags octet */
	assert_int_equal(len, n + 5 * 4 + 1);
	assert_int_equal(envelope_decode(again, len, &out), 0);
	assert_envelope_equal(&env, &out);
	envelope_clear(&out);
	envelope_clear(&env);
	free(again);
}

/* A NUL inside a string could not round-trip through a C string: refused. */
static void
test_embedded_nul(void **state)
{
	struct envelope env, out;
	unsigned char *buf;
	size_t len;

	memset(&env, 0, sizeof(env));
	env.sender = xstrdup("ab");
	buf = envelope_encode(&env, &len);
	/* version, id "" (4), sender len (4) then "ab" */
	assert_int_equal(buf[9], 'a');
	buf[9] = '\0';
	assert_int_equal(envelope_decode(buf, len, &out), -1);
	free(buf);
	envelope_clear(&env);
}

static void
write_seed(const char *dir, const char *name, const struct envelope *env)
{
	char *path = xasprintf("%s/%s", dir, name);
	size_t len;
	void *buf = envelope_encode(env, &len);
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
	free(buf);
	free(path);
}

/* With SPOOL_FUZZ_SEEDS=dir, writes the fuzzer's seed corpus
 * (tests/fuzz/corpus/fuzz_spool_envelope/) from the envelopes tested here. */
static void
test_write_fuzz_seeds(void **state)
{
	const char *dir = getenv("SPOOL_FUZZ_SEEDS");
	struct envelope env;

	if (dir == NULL)
		skip();
	memset(&env, 0, sizeof(env));
	write_seed(dir, "empty", &env);

	sample_envelope(&env, 1);
	strlcpy_s(env.id, "0006442d3a7f1c2b00000001", sizeof(env.id));
	env.size = 4096;
	write_seed(dir, "one-rcpt", &env);
	envelope_clear(&env);

	sample_envelope(&env, 3);
	free(env.sender);
	env.sender = xstrdup("");
	env.auth_user = xstrdup("alice");
	env.rcpt[1].state = RCPT_BOUNCED;
	env.rcpt[1].last_reply = xstrdup("550 5.1.1 <rcpt1@example.com>: user unknown");
	env.rcpt[2].state = RCPT_PENDING;
	env.rcpt[2].last_reply = xstrdup("");
	write_seed(dir, "null-sender-three-rcpt", &env);
	envelope_clear(&env);

	sample_envelope(&env, 2);
	env.smtputf8 = true;
	free(env.sender);
	env.sender = xstrdup("δοκιμή@παράδειγμα.ελ");
	write_seed(dir, "utf8", &env);
	envelope_clear(&env);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip_full),
	    cmocka_unit_test(test_null_sender_and_null_vs_empty),
	    cmocka_unit_test(test_all_null_and_no_recipients),
	    cmocka_unit_test(test_many_recipients),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_copy),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_embedded_nul),
	    cmocka_unit_test(test_version_1),
	    cmocka_unit_test(test_write_fuzz_seeds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
