/* test_auth_dkim_util.h - what the DKIM tests share: scratch directories, keys made with
 * dkim_keygen(), signing a message in pieces of a chosen size, verifying against a fixed key
 * table, and copies of results. */
#ifndef DROVER_TEST_AUTH_DKIM_UTIL_H
#define DROVER_TEST_AUTH_DKIM_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/dkim_internal.h"
#include "core/core.h"

#define T_NOW 1764400000ULL /* Sat, 29 Nov 2025 07:06:40 +0000 */

static inline int
tu_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline char *
tu_tmpdir(void)
{
	char *d = xstrdup("/tmp/drover-dkim-XXXXXX");

	if (mkdtemp(d) == NULL)
		fail_msg("mkdtemp: %s", strerror(errno));
	return d;
}

static inline void
tu_rmdir(char *d)
{
	if (d != NULL)
		nftw(d, tu_rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(d);
}

static inline void
tu_write(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	if (len > 0 && fwrite(data, 1, len, f) != len)
		fail_msg("%s: short write", path);
	fclose(f);
}

/* A new key of that type at dir/name.pem, loaded; its TXT record in *record (if asked). */
static inline struct dkim_key *
tu_key(const char *dir, const char *name, enum dkim_keygen_type type, char **record)
{
	char path[2048], err[2560];
	char *rec = NULL;
	struct dkim_key *k;

	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	if (dkim_keygen(type, path, &rec, err, sizeof(err)) < 0)
		fail_msg("keygen: %s", err);
	if ((k = dkim_key_load(path, err, sizeof(err))) == NULL)
		fail_msg("load: %s", err);
	if (record)
		*record = rec;
	else
		free(rec);
	return k;
}

/* Feeds msg in pieces of chunk octets (0: at once), returns the fields or fails the test. */
static inline char *
tu_sign(const struct dkim_signer *s, size_t n, const char *msg, size_t len, size_t chunk,
        uint64_t now)
{
	struct dkim_sign *ctx = dkim_sign_new(now);
	char err[512];
	char *out;

	for (size_t i = 0; i < n; i++)
		if (dkim_sign_add(ctx, &s[i], err, sizeof(err)) < 0)
			fail_msg("dkim_sign_add: %s", err);
	if (chunk == 0)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len; off += chunk)
		assert_int_equal(
		    dkim_sign_update(ctx, msg + off, len - off < chunk ? len - off : chunk), 0);
	out = dkim_sign_final(ctx, err, sizeof(err));
	if (out == NULL)
		fail_msg("dkim_sign_final: %s", err);
	dkim_sign_free(ctx);
	return out;
}

/* Signature fields on top of the message. */
static inline char *
tu_signed(const struct dkim_signer *s, size_t n, const char *msg, uint64_t now)
{
	char *fields = tu_sign(s, n, msg, strlen(msg), 0, now);
	char *all = xasprintf("%s%s", fields, msg);

	free(fields);
	return all;
}

struct tu_results {
	bool called;
	size_t n;
	struct dkim_sig_result r[16];
};

static inline void
tu_copy_results(void *arg, const struct dkim_results *res)
{
	struct tu_results *out = arg;

	out->called = true;
	out->n = res->n;
	for (size_t i = 0; i < res->n && i < nitems(out->r); i++)
		out->r[i] = res->sigs[i];
}

/* Verifies msg (in pieces of chunk octets; 0: at once) against a key table. */
static inline void
tu_verify_chunked(const char *const *table, const char *msg, size_t len, size_t chunk, uint64_t now,
                  struct tu_results *out)
{
	struct dkim_lookup l;
	struct dkim_verify_options opt = {.now_s = now};
	struct dkim_verify *v;

	memset(out, 0, sizeof(*out));
	dkim_lookup_table(&l, table);
	v = dkim_verify_new(&l, &opt);
	if (chunk == 0)
		chunk = len ? len : 1;
	for (size_t off = 0; off < len; off += chunk)
		dkim_verify_update(v, msg + off, len - off < chunk ? len - off : chunk);
	dkim_verify_final(v, tu_copy_results, out);
	assert_true(out->called); /* a table answers at once */
	dkim_verify_free(v);
}

static inline void
tu_verify(const char *const *table, const char *msg, uint64_t now, struct tu_results *out)
{
	tu_verify_chunked(table, msg, strlen(msg), 0, now, out);
}

/* Every result pass, or the test fails naming the first that is not. */
static inline void
tu_assert_all_pass(const struct tu_results *r, size_t n)
{
	assert_int_equal(r->n, n);
	for (size_t i = 0; i < r->n; i++)
		if (r->r[i].result != DKIM_RESULT_PASS)
			fail_msg("signature %zu (d=%s s=%s): %s: %s", i, r->r[i].domain,
			         r->r[i].selector, dkim_result_name(r->r[i].result),
			         r->r[i].reason);
}

/* The value of tag name in a DKIM-Signature field, unfolded (FWS removed), into out. */
static inline void
tu_tag(const char *field, const char *name, char *out, size_t size)
{
	struct dkim_tag tags[DKIM_TAGS_MAX];
	const char *colon = strchr(field, ':'), *why = NULL;
	size_t n, o = 0;

	out[0] = '\0';
	assert_non_null(colon);
	if (dkim_tags_parse(colon + 1, strlen(colon + 1), tags, DKIM_TAGS_MAX, &n, &why) < 0)
		fail_msg("tags: %s", why);
	for (size_t i = 0; i < n; i++) {
		if (tags[i].namelen != strlen(name) || memcmp(tags[i].name, name, tags[i].namelen))
			continue;
		for (size_t j = 0; j < tags[i].valuelen && o + 1 < size; j++)
			if (!strchr(" \t\r\n", tags[i].value[j]))
				out[o++] = tags[i].value[j];
	}
	out[o] = '\0';
}

/* The key table entry name for a selector and domain. */
static inline char *
tu_keyname(const char *selector, const char *domain)
{
	return xasprintf("%s._domainkey.%s", selector, domain);
}

#endif
