/* fuzz_auth_dkim - the first octet picks what the rest is:
 *   0  a DKIM-Signature field: parsed; what is accepted must be consistent (b= found inside
 *      the field, a non-empty signature, a valid d= and s=, From among the h= names);
 *   1  a key record: parsed; an accepted one has a key or is revoked, never both;
 *   2  a received message, verified in pieces whose size the input picks, every key lookup
 *      answered (Ed25519 or RSA, by selector): every signature gets one result with a reason
 *      unless it passed;
 *   3  a message signed with a fixed Ed25519 key (relaxed or simple, by the next octet), then
 *      verified: our own signature, on top, must pass, whatever the message holds (unless
 *      its first line continues our field, which makes it another message).
 * Everything is bounded; ASan and UBSan watch every path. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth/auth.h"
#include "auth/dkim_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 8463 A.1/A.2: the Ed25519 key and both records. */
static const char ed_pem[] = "-----BEGIN PRIVATE KEY-----\n"
                             "MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
                             "-----END PRIVATE KEY-----\n";
static const char ed_rec[] = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
static const char rsa_rec[] =
    "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qh"
    "dR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4h"
    "stT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB";

static struct dkim_key *key;

static void
load_key(void)
{
	char path[] = "/tmp/fuzz-dkim-XXXXXX", err[256];
	int fd = mkstemp(path);

	if (fd < 0 || write(fd, ed_pem, sizeof(ed_pem) - 1) != (ssize_t)sizeof(ed_pem) - 1)
		abort();
	close(fd);
	key = dkim_key_load(path, err, sizeof(err));
	unlink(path);
	if (key == NULL) {
		fprintf(stderr, "%s\n", err);
		abort();
	}
}

static void *
answer_all(void *arg, const char *name, dkim_lookup_done *done, void *token)
{
	const char *rec = name[0] == 'r' ? rsa_rec : ed_rec;
	struct dns_txt_record r = {rec, strlen(rec)};
	struct dkim_lookup_answer a = {.status = DKIM_LOOKUP_OK, .records = &r, .nrecords = 1};

	done(token, &a);
	return NULL;
}

struct outcome {
	int calls;
	size_t n;
	enum dkim_result first;
};

static void
check(void *arg, const struct dkim_results *res)
{
	struct outcome *o = arg;

	o->calls++;
	o->n = res->n;
	for (size_t i = 0; i < res->n; i++) {
		const struct dkim_sig_result *r = &res->sigs[i];
		if (r->result != DKIM_RESULT_PASS && r->reason[0] == '\0')
			abort();
		if (r->result == DKIM_RESULT_NONE || r->result == DKIM_RESULT_POLICY)
			abort();
	}
	if (res->n > 0)
		o->first = res->sigs[0].result;
	char *ar = dkim_auth_results("mx.example.net", res);
	for (char *p = ar; *p; p++)
		if ((unsigned char)*p < 0x20 && *p != '\r' && *p != '\n')
			abort();
	free(ar);
}

static struct outcome
verify(const char *msg, size_t len, size_t chunk)
{
	struct dkim_lookup l = {.start = answer_all};
	struct dkim_verify_options opt = {.now_s = 1528637909};
	struct dkim_verify *v = dkim_verify_new(&l, &opt);
	struct outcome o = {0};

	for (size_t off = 0; off < len; off += chunk)
		dkim_verify_update(v, msg + off, len - off < chunk ? len - off : chunk);
	dkim_verify_final(v, check, &o);
	if (o.calls != 1)
		abort();
	dkim_verify_free(v);
	return o;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	char why[160];

	if (size == 0)
		return 0;
	if (key == NULL)
		load_key();
	size--;
	switch (data[0] % 4) {
	case 0: {
		struct dkim_sig s;
		if (dkim_sig_parse(p, size, &s, why, sizeof(why)) == 0) {
			bool from = false;
			if (s.b_start > s.b_end || s.b_end > size || s.blen == 0 ||
			    !dkim_domain_valid(s.domain, strlen(s.domain)) ||
			    !dkim_domain_valid(s.selector, strlen(s.selector)))
				abort();
			for (size_t i = 0; i < s.nh; i++)
				from |= strcasecmp(s.h[i], "from") == 0;
			if (!from)
				abort();
		} else if (why[0] == '\0')
			abort();
		dkim_sig_free(&s);
		break;
	}
	case 1: {
		struct dkim_keyrec k;
		if (dkim_keyrec_parse(p, size, &k, why, sizeof(why)) == 0) {
			if ((k.pkey == NULL) != k.revoked)
				abort();
		} else if (why[0] == '\0' || k.pkey != NULL)
			abort();
		dkim_keyrec_free(&k);
		break;
	}
	case 2:
		verify(p, size, 1 + (size % 61));
		break;
	case 3: {
		if (size == 0)
			return 0;
		enum dkim_canon c = (enum dkim_canon)(p[0] & 1);
		struct dkim_signer s = {.key = key,
		                        .domain = "football.example.com",
		                        .selector = "brisbane",
		                        .header_canon = c,
		                        .body_canon = (enum dkim_canon)((p[0] >> 1) & 1)};
		struct dkim_sign *ctx = dkim_sign_new(1528637909);
		char err[256], *fields, *msg;
		size_t chunk = 1 + ((unsigned char)p[0] >> 2), flen;

		p++;
		size--;
		if (dkim_sign_add(ctx, &s, err, sizeof(err)) < 0)
			abort();
		for (size_t off = 0; off < size; off += chunk)
			dkim_sign_update(ctx, p + off, size - off < chunk ? size - off : chunk);
		fields = dkim_sign_final(ctx, err, sizeof(err));
		dkim_sign_free(ctx);
		if (fields == NULL)
			abort();
		flen = strlen(fields);
		msg = malloc(flen + size + 1);
		memcpy(msg, fields, flen);
		memcpy(msg + flen, p, size);
		struct outcome o = verify(msg, flen + size, chunk + 3);
		if (!(size > 0 && (p[0] == ' ' || p[0] == '\t')) &&
		    (o.n == 0 || o.first != DKIM_RESULT_PASS))
			abort();
		free(msg);
		free(fields);
		break;
	}
	}
	return 0;
}
