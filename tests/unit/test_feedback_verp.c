/* VERP return paths: what the delivery engine writes, what comes back after receivers and
 * forwarders have handled it (case changes, angle brackets), secret rotation, the tenant a
 * token carries, version 1 tokens still in flight, and every way a token can be forged or
 * mangled. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "feedback/feedback.h"

#define CURRENT  "feedback-test-secret-current-1"
#define PREVIOUS "feedback-test-secret-previous-0"
#define QID      "0190a1b2c3d4e5f600000001"
#define DOMAIN   "bounces.example.com"

static struct feedback_verp_keys
keys_for(const char *current, const char *previous)
{
	struct feedback_verp_keys k;
	char err[256];

	assert_int_equal(feedback_verp_keys_init(&k, NULL, current, previous, err, sizeof(err)), 0);
	return k;
}

static void
encode(const struct feedback_verp_keys *k, const char *qid, uint32_t rcpt, const char *address,
       char out[FEEDBACK_VERP_ADDR_MAX])
{
	assert_true(feedback_verp_encode(k, qid, rcpt, address, NULL, DOMAIN, out,
	                                 FEEDBACK_VERP_ADDR_MAX) > 0);
}

static void
encode_tenant(const struct feedback_verp_keys *k, uint32_t rcpt, const char *address,
              const char *tenant, char out[FEEDBACK_VERP_ADDR_MAX])
{
	assert_true(feedback_verp_encode(k, QID, rcpt, address, tenant, DOMAIN, out,
	                                 FEEDBACK_VERP_ADDR_MAX) > 0);
}

static void
test_round_trip(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, NULL);
	char addr[FEEDBACK_VERP_ADDR_MAX];
	struct feedback_verp v;
	const char *at;

	encode(&k, QID, 41, "bob@example.org", addr);
	/* bounce+<56 base32>@bounces.example.com, the local part within RFC 5321's 64 */
	at = strchr(addr, '@');
	assert_non_null(at);
	assert_int_equal(at - addr, strlen("bounce+") + FEEDBACK_VERP_TOKEN_LEN);
	assert_true(at - addr <= 64);
	assert_memory_equal(addr, "bounce+", 7);
	for (const char *p = addr + 7; p < at; p++)
		assert_true((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'));
	assert_string_equal(at + 1, DOMAIN);

	assert_int_equal(feedback_verp_decode(&k, addr, &v), FEEDBACK_VERP_OK);
	assert_string_equal(v.queue_id, QID);
	assert_int_equal(v.rcpt, 41);
	assert_int_equal(v.key, 0);
	assert_string_equal(v.domain, DOMAIN);
	assert_int_equal(v.version, 2);
	assert_true(feedback_verp_rcpt_matches(&k, &v, "bob@example.org"));
	assert_false(feedback_verp_rcpt_matches(&k, &v, "rob@example.org"));
	assert_false(feedback_verp_rcpt_matches(&k, &v, ""));
	/* Made without a tenant: it names none, and no tenant */
	assert_true(feedback_verp_tenant_matches(&k, &v, NULL));
	assert_true(feedback_verp_tenant_matches(&k, &v, ""));
	assert_false(feedback_verp_tenant_matches(&k, &v, "acme"));
}

static void
test_same_inputs_same_address(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, NULL);
	char a[FEEDBACK_VERP_ADDR_MAX], b[FEEDBACK_VERP_ADDR_MAX], c[FEEDBACK_VERP_ADDR_MAX];

	encode(&k, QID, 0, "bob@example.org", a);
	encode(&k, QID, 0, "bob@example.org", b);
	encode(&k, QID, 1, "bob@example.org", c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
}

static void
test_extreme_values_round_trip(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, NULL);
	char addr[FEEDBACK_VERP_ADDR_MAX];
	struct feedback_verp v;

	encode(&k, "ffffffffffffffffffffffff", FEEDBACK_VERP_RCPT_MAX, "x@y.example", addr);
	assert_int_equal(feedback_verp_decode(&k, addr, &v), FEEDBACK_VERP_OK);
	assert_string_equal(v.queue_id, "ffffffffffffffffffffffff");
	assert_int_equal(v.rcpt, FEEDBACK_VERP_RCPT_MAX);

	/* An upper-case queue id is the same id: the spool writes lower case. */
	encode(&k, "0190A1B2C3D4E5F600000000", 0, "x@y.example", addr);
	assert_int_equal(feedback_verp_decode(&k, addr, &v), FEEDBACK_VERP_OK);
	assert_string_equal(v.queue_id, "0190a1b2c3d4e5f600000000");
	assert_int_equal(v.rcpt, 0);
}

static void
upper(char *s)
{
	for (; *s != '\0'; s++)
		*s = (char)toupper((unsigned char)*s);
}

static void
test_case_changes_survive(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, NULL);
	char addr[FEEDBACK_VERP_ADDR_MAX], mixed[FEEDBACK_VERP_ADDR_MAX + 2];
	struct feedback_verp v;

	encode(&k, QID, 7, "Carol@Example.NET", addr);
	/* A receiver that upper-cases the whole address */
	strcpy(mixed, addr);
	upper(mixed);
	assert_int_equal(feedback_verp_decode(&k, mixed, &v), FEEDBACK_VERP_OK);
	assert_int_equal(v.rcpt, 7);
	assert_string_equal(v.domain, DOMAIN);
	/* ... or only some letters, and puts it in angle brackets */
	snprintf(mixed, sizeof(mixed), "<%s>", addr);
	for (size_t i = 1; mixed[i] != '\0'; i += 3)
		mixed[i] = (char)toupper((unsigned char)mixed[i]);
	assert_int_equal(feedback_verp_decode(&k, mixed, &v), FEEDBACK_VERP_OK);
	/* The recipient tag ignores case too: receivers report addresses as they like. */
	assert_true(feedback_verp_rcpt_matches(&k, &v, "carol@example.net"));
	assert_true(feedback_verp_rcpt_matches(&k, &v, "<CAROL@EXAMPLE.NET>"));
}

static void
test_rotation(void **state)
{
	struct feedback_verp_keys old_only = keys_for(PREVIOUS, NULL);
	struct feedback_verp_keys rotated = keys_for(CURRENT, PREVIOUS);
	struct feedback_verp_keys new_only = keys_for(CURRENT, NULL);
	char signed_old[FEEDBACK_VERP_ADDR_MAX], signed_new[FEEDBACK_VERP_ADDR_MAX];
	struct feedback_verp v;

	encode(&old_only, QID, 3, "dave@example.org", signed_old);
	encode(&rotated, QID, 3, "dave@example.org", signed_new);
	/* Signed with the first secret only */
	assert_string_not_equal(signed_old, signed_new);
	assert_int_equal(feedback_verp_decode(&new_only, signed_new, &v), FEEDBACK_VERP_OK);

	/* During the rotation: both accepted, and the one that verified is named */
	assert_int_equal(feedback_verp_decode(&rotated, signed_old, &v), FEEDBACK_VERP_OK);
	assert_int_equal(v.key, 1);
	assert_int_equal(v.rcpt, 3);
	assert_true(feedback_verp_rcpt_matches(&rotated, &v, "dave@example.org"));
	assert_int_equal(feedback_verp_decode(&rotated, signed_new, &v), FEEDBACK_VERP_OK);
	assert_int_equal(v.key, 0);

	/* After it: the old secret's tokens are forgeries */
	assert_int_equal(feedback_verp_decode(&new_only, signed_old, &v), FEEDBACK_VERP_FORGED);
}

static void
test_every_altered_character_is_refused(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, PREVIOUS);
	char addr[FEEDBACK_VERP_ADDR_MAX], bad[FEEDBACK_VERP_ADDR_MAX];
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";
	struct feedback_verp v;

	encode(&k, QID, 5, "erin@example.org", addr);
	for (size_t i = 7; i < 7 + FEEDBACK_VERP_TOKEN_LEN; i++) {
		for (size_t a = 0; a < sizeof(alphabet) - 1; a++) {
			enum feedback_verp_status s;

			if (alphabet[a] == addr[i])
				continue;
			strcpy(bad, addr);
			bad[i] = alphabet[a];
			s = feedback_verp_decode(&k, bad, &v);
			/* The version octet is checked before the MAC: a malformed token then */
			assert_true(s == FEEDBACK_VERP_FORGED || s == FEEDBACK_VERP_MALFORMED);
			if (i >= 9)
				assert_int_equal(s, FEEDBACK_VERP_FORGED);
		}
	}
}

static void
test_forged_with_another_secret(void **state)
{
	struct feedback_verp_keys ours = keys_for(CURRENT, PREVIOUS);
	struct feedback_verp_keys theirs = keys_for("an-attacker-guessed-this-one", NULL);
	char addr[FEEDBACK_VERP_ADDR_MAX];
	struct feedback_verp v;

	encode(&theirs, QID, 0, "bob@example.org", addr);
	assert_int_equal(feedback_verp_decode(&ours, addr, &v), FEEDBACK_VERP_FORGED);
}

static void
test_not_ours_and_malformed(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, NULL);
	char addr[FEEDBACK_VERP_ADDR_MAX], bad[FEEDBACK_VERP_ADDR_MAX + 8];
	struct feedback_verp v;
	const char *at;

	encode(&k, QID, 0, "bob@example.org", addr);
	at = strchr(addr, '@');

	assert_int_equal(feedback_verp_decode(&k, "postmaster@bounces.example.com", &v),
	                 FEEDBACK_VERP_NOT_OURS);
	assert_int_equal(feedback_verp_decode(&k, "bounce@bounces.example.com", &v),
	                 FEEDBACK_VERP_NOT_OURS);
	assert_int_equal(feedback_verp_decode(&k, "bounces+abc@bounces.example.com", &v),
	                 FEEDBACK_VERP_NOT_OURS);
	assert_int_equal(feedback_verp_decode(&k, "bounce+abc", &v), FEEDBACK_VERP_NOT_OURS);
	assert_int_equal(feedback_verp_decode(&k, "", &v), FEEDBACK_VERP_NOT_OURS);
	assert_int_equal(feedback_verp_decode(&k, "<>", &v), FEEDBACK_VERP_NOT_OURS);

	assert_int_equal(feedback_verp_decode(&k, "bounce+@bounces.example.com", &v),
	                 FEEDBACK_VERP_MALFORMED);
	/* One character short, one too many */
	snprintf(bad, sizeof(bad), "%.*s%s", (int)(at - addr - 1), addr, at);
	assert_int_equal(feedback_verp_decode(&k, bad, &v), FEEDBACK_VERP_MALFORMED);
	snprintf(bad, sizeof(bad), "%.*sa%s", (int)(at - addr), addr, at);
	assert_int_equal(feedback_verp_decode(&k, bad, &v), FEEDBACK_VERP_MALFORMED);
	/* Characters outside base32: 0, 1, 8, 9 and punctuation */
	strcpy(bad, addr);
	bad[20] = '0';
	assert_int_equal(feedback_verp_decode(&k, bad, &v), FEEDBACK_VERP_MALFORMED);
	bad[20] = '8';
	assert_int_equal(feedback_verp_decode(&k, bad, &v), FEEDBACK_VERP_MALFORMED);
	bad[20] = '-';
	assert_int_equal(feedback_verp_decode(&k, bad, &v), FEEDBACK_VERP_MALFORMED);
	/* No domain */
	snprintf(bad, sizeof(bad), "%.*s@", (int)(at - addr), addr);
	assert_int_equal(feedback_verp_decode(&k, bad, &v), FEEDBACK_VERP_MALFORMED);
}

static void
test_custom_prefix(void **state)
{
	struct feedback_verp_keys k;
	char addr[FEEDBACK_VERP_ADDR_MAX], err[256];
	struct feedback_verp v;

	assert_int_equal(feedback_verp_keys_init(&k, "rp.4-_x", CURRENT, NULL, err, sizeof(err)),
	                 0);
	encode(&k, QID, 9, "f@example.org", addr);
	assert_memory_equal(addr, "rp.4-_x+", 8);
	/* The longest prefix fills the local part exactly */
	assert_int_equal(strchr(addr, '@') - addr, 64);
	assert_int_equal(feedback_verp_decode(&k, addr, &v), FEEDBACK_VERP_OK);
	/* The default prefix's keys do not know this one */
	{
		struct feedback_verp_keys d = keys_for(CURRENT, NULL);

		assert_int_equal(feedback_verp_decode(&d, addr, &v), FEEDBACK_VERP_NOT_OURS);
	}
}

static void
test_keys_init_refuses_bad_configuration(void **state)
{
	struct feedback_verp_keys k;
	char err[256];

	assert_int_equal(feedback_verp_keys_init(&k, NULL, "short", NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "current secret"));
	assert_int_equal(feedback_verp_keys_init(&k, NULL, NULL, NULL, err, sizeof(err)), -1);
	assert_int_equal(feedback_verp_keys_init(&k, NULL, CURRENT, "tiny", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "previous secret"));
	assert_int_equal(feedback_verp_keys_init(&k, NULL, CURRENT, CURRENT, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "same"));
	assert_int_equal(feedback_verp_keys_init(&k, "a+b", CURRENT, NULL, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "prefix"));
	assert_int_equal(feedback_verp_keys_init(&k, "", CURRENT, NULL, err, sizeof(err)), -1);
	/* 8 + 1 + 56 would be 65 octets of local part */
	assert_int_equal(feedback_verp_keys_init(&k, "bounces1", CURRENT, NULL, err, sizeof(err)),
	                 -1);
	assert_int_equal(feedback_verp_keys_init(&k, ".dot", CURRENT, NULL, err, sizeof(err)), -1);
	assert_int_equal(feedback_verp_keys_init(&k, "bounces", CURRENT, NULL, err, sizeof(err)),
	                 0);
	feedback_verp_keys_wipe(&k);
	assert_int_equal(k.nsecrets, 0);
	for (size_t i = 0; i < sizeof(k.secret[0].key); i++)
		assert_int_equal(k.secret[0].key[i], 0);
}

static void
test_encode_refuses_bad_arguments(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, NULL);
	char out[FEEDBACK_VERP_ADDR_MAX], longdom[300];

	char tenant[FEEDBACK_TENANT_MAX + 2];

	assert_int_equal(
	    feedback_verp_encode(&k, "0190a1b2", 0, "a@b.example", NULL, DOMAIN, out, sizeof(out)),
	    -1);
	assert_int_equal(feedback_verp_encode(&k, "0190a1b2c3d4e5f60000000g", 0, "a@b.example",
	                                      NULL, DOMAIN, out, sizeof(out)),
	                 -1);
	assert_int_equal(feedback_verp_encode(&k, QID, FEEDBACK_VERP_RCPT_MAX + 1, "a@b.example",
	                                      NULL, DOMAIN, out, sizeof(out)),
	                 -1);
	assert_int_equal(
	    feedback_verp_encode(&k, QID, 0, "a@b.example", NULL, "bad domain", out, sizeof(out)),
	    -1);
	assert_int_equal(feedback_verp_encode(&k, QID, 0, NULL, NULL, DOMAIN, out, sizeof(out)),
	                 -1);
	/* A tenant name longer than any the suppression list stores */
	memset(tenant, 't', sizeof(tenant) - 1);
	tenant[sizeof(tenant) - 1] = '\0';
	assert_int_equal(
	    feedback_verp_encode(&k, QID, 0, "a@b.example", tenant, DOMAIN, out, sizeof(out)), -1);
	tenant[FEEDBACK_TENANT_MAX] = '\0';
	assert_true(
	    feedback_verp_encode(&k, QID, 0, "a@b.example", tenant, DOMAIN, out, sizeof(out)) > 0);
	/* out too small by one */
	assert_int_equal(
	    feedback_verp_encode(&k, QID, 0, "a@b.example", NULL, DOMAIN, out,
	                         strlen("bounce+") + FEEDBACK_VERP_TOKEN_LEN + 1 + strlen(DOMAIN)),
	    -1);
	assert_int_equal(
	    feedback_verp_encode(&k, QID, 0, "a@b.example", NULL, DOMAIN, out,
	                         strlen("bounce+") + FEEDBACK_VERP_TOKEN_LEN + 2 + strlen(DOMAIN)),
	    (int)(strlen("bounce+") + FEEDBACK_VERP_TOKEN_LEN + 1 + strlen(DOMAIN)));
	/* A domain that makes the path longer than RFC 5321's 256 octets */
	memset(longdom, 0, sizeof(longdom));
	for (size_t i = 0; i < 4; i++)
		memcpy(longdom + i * 50, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.", 50);
	strcat(longdom, "example");
	assert_int_equal(
	    feedback_verp_encode(&k, QID, 0, "a@b.example", NULL, longdom, out, sizeof(out)), -1);
}

static void
test_tenant_round_trip(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, PREVIOUS);
	struct feedback_verp_keys old_only = keys_for(PREVIOUS, NULL);
	char a[FEEDBACK_VERP_ADDR_MAX], b[FEEDBACK_VERP_ADDR_MAX], c[FEEDBACK_VERP_ADDR_MAX];
	struct feedback_verp v;

	encode_tenant(&k, 2, "bob@example.org", "acme", a);
	encode_tenant(&k, 2, "bob@example.org", "globex", b);
	encode(&k, QID, 2, "bob@example.org", c);
	/* The tenant is in the token: the three differ, at the same length */
	assert_string_not_equal(a, b);
	assert_string_not_equal(a, c);
	assert_int_equal(strlen(a), strlen(c));

	assert_int_equal(feedback_verp_decode(&k, a, &v), FEEDBACK_VERP_OK);
	assert_int_equal(v.rcpt, 2);
	assert_true(feedback_verp_tenant_matches(&k, &v, "acme"));
	assert_false(feedback_verp_tenant_matches(&k, &v, "globex"));
	assert_false(feedback_verp_tenant_matches(&k, &v, NULL));
	assert_false(feedback_verp_tenant_matches(&k, &v, ""));
	/* Tenant names are exact: another case is another tenant */
	assert_false(feedback_verp_tenant_matches(&k, &v, "ACME"));
	assert_false(feedback_verp_tenant_matches(&k, &v, "acme "));
	assert_true(feedback_verp_rcpt_matches(&k, &v, "bob@example.org"));

	/* Upper-casing the whole address changes nothing */
	upper(a);
	assert_int_equal(feedback_verp_decode(&k, a, &v), FEEDBACK_VERP_OK);
	assert_true(feedback_verp_tenant_matches(&k, &v, "acme"));

	/* Signed with the previous secret: its tag is checked with that secret */
	encode_tenant(&old_only, 4, "carol@example.org", "acme", a);
	assert_int_equal(feedback_verp_decode(&k, a, &v), FEEDBACK_VERP_OK);
	assert_int_equal(v.key, 1);
	assert_true(feedback_verp_tenant_matches(&k, &v, "acme"));
	assert_false(feedback_verp_tenant_matches(&k, &v, "globex"));
}

/* The tenant tag is under the MAC: a bounce cannot be moved to another tenant's list by
 * editing the token (every single-character change is refused, test above), nor by
 * splicing the tenant part of one token into another. */
static void
test_tenant_cannot_be_spliced(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, NULL);
	char a[FEEDBACK_VERP_ADDR_MAX], b[FEEDBACK_VERP_ADDR_MAX];
	struct feedback_verp v;
	/* The tenant tag is octets 20..24: characters 32..39 of the token hold octets 20..24
	 * exactly (40 bits), after "bounce+". */
	size_t from = 7 + 32, to = 7 + 40;

	encode_tenant(&k, 1, "bob@example.org", "acme", a);
	encode_tenant(&k, 1, "bob@example.org", "globex", b);
	assert_memory_not_equal(a + from, b + from, to - from);
	memcpy(a + from, b + from, to - from);
	assert_int_equal(feedback_verp_decode(&k, a, &v), FEEDBACK_VERP_FORGED);
}

/* A version 1 token (48 characters, no tenant), made here the way verp.c made them before
 * the tenant tag, still decodes: it was in flight when the format changed. */
static void
make_v1(const char *secret, uint32_t rcpt, const char *address, char *out, size_t size)
{
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	unsigned char tok[30], msg[64 + 300], md[EVP_MAX_MD_SIZE];
	unsigned mdlen, buf = 0, bits = 0;
	char text[49], lower[300];
	size_t n = 0, clen;

	tok[0] = 1;
	for (size_t i = 0; i < 12; i++) {
		unsigned x;

		sscanf(&QID[2 * i], "%2x", &x);
		tok[1 + i] = (unsigned char)x;
	}
	tok[13] = (unsigned char)(rcpt >> 16);
	tok[14] = (unsigned char)(rcpt >> 8);
	tok[15] = (unsigned char)rcpt;
	for (size_t i = 0; address[i] != '\0'; i++)
		lower[i] = (char)tolower((unsigned char)address[i]), lower[i + 1] = '\0';
	clen = sizeof("drover-verp-rcpt");
	memcpy(msg, "drover-verp-rcpt", clen);
	memcpy(msg + clen, lower, strlen(lower));
	HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, clen + strlen(lower), md, &mdlen);
	memcpy(tok + 16, md, 4);
	clen = sizeof("drover-verp");
	memcpy(msg, "drover-verp", clen);
	memcpy(msg + clen, tok, 20);
	HMAC(EVP_sha256(), secret, (int)strlen(secret), msg, clen + 20, md, &mdlen);
	memcpy(tok + 20, md, 10);
	for (size_t i = 0; i < sizeof(tok); i++) {
		buf = (buf << 8) | tok[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			text[n++] = b32[(buf >> bits) & 31];
		}
	}
	text[n] = '\0';
	assert_int_equal(n, FEEDBACK_VERP_TOKEN_V1_LEN);
	snprintf(out, size, "bounce+%s@%s", text, DOMAIN);
}

static void
test_version_1_still_read(void **state)
{
	struct feedback_verp_keys k = keys_for(CURRENT, PREVIOUS);
	char addr[FEEDBACK_VERP_ADDR_MAX];
	struct feedback_verp v;

	make_v1(PREVIOUS, 12, "Dave@Example.org", addr, sizeof(addr));
	assert_int_equal(feedback_verp_decode(&k, addr, &v), FEEDBACK_VERP_OK);
	assert_int_equal(v.version, 1);
	assert_int_equal(v.key, 1);
	assert_int_equal(v.rcpt, 12);
	assert_string_equal(v.queue_id, QID);
	assert_true(feedback_verp_rcpt_matches(&k, &v, "dave@example.org"));
	/* It never carried a tenant: global */
	assert_true(feedback_verp_tenant_matches(&k, &v, NULL));
	assert_false(feedback_verp_tenant_matches(&k, &v, "acme"));
	/* A 48-character token's version octet must say 1: the first character holds its top
	 * five bits ("a": 00000); "b" makes it 0x09 */
	assert_int_equal(addr[7], 'a');
	addr[7] = 'b';
	assert_int_equal(feedback_verp_decode(&k, addr, &v), FEEDBACK_VERP_MALFORMED);
	/* With another secret: forged */
	make_v1("some-other-secret-entirely", 12, "dave@example.org", addr, sizeof(addr));
	assert_int_equal(feedback_verp_decode(&k, addr, &v), FEEDBACK_VERP_FORGED);
}

static void
test_names(void **state)
{
	assert_string_equal(feedback_verp_status_name(FEEDBACK_VERP_OK), "ok");
	assert_string_equal(feedback_verp_status_name(FEEDBACK_VERP_NOT_OURS), "not-ours");
	assert_string_equal(feedback_verp_status_name(FEEDBACK_VERP_FORGED), "forged");
	assert_string_equal(feedback_verp_status_name(FEEDBACK_VERP_MALFORMED), "malformed");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_same_inputs_same_address),
	    cmocka_unit_test(test_extreme_values_round_trip),
	    cmocka_unit_test(test_case_changes_survive),
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_every_altered_character_is_refused),
	    cmocka_unit_test(test_forged_with_another_secret),
	    cmocka_unit_test(test_not_ours_and_malformed),
	    cmocka_unit_test(test_custom_prefix),
	    cmocka_unit_test(test_keys_init_refuses_bad_configuration),
	    cmocka_unit_test(test_encode_refuses_bad_arguments),
	    cmocka_unit_test(test_tenant_round_trip),
	    cmocka_unit_test(test_tenant_cannot_be_spliced),
	    cmocka_unit_test(test_version_1_still_read),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
