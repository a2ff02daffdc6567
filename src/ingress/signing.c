/* signing.c - DKIM signing at reception: the keys of the dkim_key sections, which of them sign
 * a message (by the domain of its From field), and what happens when one cannot be used.
 *
 * A message is signed once, as it arrives, before the spool commit: the signer hashes the
 * content while it streams into the spool, and the DKIM-Signature fields go into the
 * envelope's headers, which the spool's readers put on top (spool.h). Nothing is re-read.
 *
 * Choosing keys: every key whose sign_for covers the From domain signs (an author-domain
 * key and a platform key give two signatures); a fallback key signs only when no other key
 * does. A key that could not be read (at start or at a reload) makes the messages it should
 * sign wait (451 4.3.5) or go without its signature, as dkim.on_key_error says.
 *
 * Keys are shared by every SMTP thread; a reload swaps a key's contents in place (auth.h), and
 * a key's usable flag is atomic, so nothing here locks.
 *
 * The time signing costs each signed message goes to the caller's histograms (struct
 * dkim_signing_times), which outlive a reload's new table: the time spent in
 * dkim_signing_update() (canonicalizing and hashing the content as it streams in) and in
 * dkim_signing_final() (the header hash and the private-key operations), and the latter
 * alone. The clock is read twice per chunk handed over: tens of nanoseconds per chunk of
 * kilobytes.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"
#include "conf/conf.h"
#include "core/core.h"
#include "ingress/ingress.h"

struct signing_key {
	const struct dkim_key_conf *conf;
	struct dkim_key *key; /* NULL if it could never be read */
	atomic_bool usable;
	const char **headers; /* NULL-terminated; NULL: the default list */
};

struct dkim_signing {
	const struct config *cfg;
	struct signing_key *keys;
	size_t nkeys;
};

struct dkim_signing_msg {
	const struct dkim_signing *sg;
	struct dkim_sign *sign;
	unsigned nsigners;
	char defer[256]; /* why the message must wait, "" if it need not */
	/* Where its signing time goes (NULL: nowhere), and the time in updates so far. */
	struct dkim_signing_times *times;
	uint64_t spent_ns;
};

/* Appends one line to err (which holds lines already). */
static void
error_line(char *err, size_t errlen, const char *fmt, const char *where, const char *name,
           const char *why)
{
	size_t used = strlen(err);

	if (used + 1 < errlen)
		snprintf(err + used, errlen - used, fmt, used > 0 ? "\n" : "", where, name, why);
}

/* prev's key read from path, NULL if none. */
static struct dkim_key *
previous_key(struct dkim_signing *prev, const char *path)
{
	for (size_t i = 0; prev != NULL && i < prev->nkeys; i++)
		if (prev->keys[i].key != NULL && atomic_load(&prev->keys[i].usable) &&
		    strcmp(prev->keys[i].conf->key_path, path) == 0)
			return prev->keys[i].key;
	return NULL;
}

struct dkim_signing *
dkim_signing_new(const struct config *cfg, char *err, size_t errlen, unsigned *nerrors)
{
	return dkim_signing_renew(cfg, NULL, err, errlen, nerrors);
}

struct dkim_signing *
dkim_signing_renew(const struct config *cfg, struct dkim_signing *prev, char *err, size_t errlen,
                   unsigned *nerrors)
{
	struct dkim_signing *sg = xcalloc(1, sizeof(*sg));
	char why[512];

	err[0] = '\0';
	*nerrors = 0;
	sg->cfg = cfg;
	sg->keys = xcalloc(cfg->ndkim_keys ? cfg->ndkim_keys : 1, sizeof(*sg->keys));
	sg->nkeys = cfg->ndkim_keys;
	for (size_t i = 0; i < cfg->ndkim_keys; i++) {
		const struct dkim_key_conf *kc = &cfg->dkim_keys[i];
		struct signing_key *k = &sg->keys[i];

		k->conf = kc;
		k->key = dkim_key_load(kc->key_path, why, sizeof(why));
		if (k->key == NULL && previous_key(prev, kc->key_path) != NULL) {
			/* A file being replaced, or one the server (no longer root) cannot read:
			 * the key read before stays in use. */
			k->key = dkim_key_copy(previous_key(prev, kc->key_path));
			log_error("%s: dkim_key \"%s\".key: %s; the key read before stays in use",
			          kc->where, kc->name, why);
		}
		atomic_init(&k->usable, k->key != NULL);
		if (k->key == NULL) {
			error_line(err, errlen, "%s%s: dkim_key \"%s\".key: %s", kc->where,
			           kc->name, why);
			(*nerrors)++;
		} else if (dkim_check_names(kc->domain, kc->selector, why, sizeof(why)) != 0) {
			error_line(err, errlen, "%s%s: dkim_key \"%s\": %s", kc->where, kc->name,
			           why);
			atomic_store(&k->usable, false);
			(*nerrors)++;
		}
		if (kc->nheaders > 0) {
			k->headers = xcalloc(kc->nheaders + 1, sizeof(*k->headers));
			for (size_t j = 0; j < kc->nheaders; j++)
				k->headers[j] = kc->headers[j];
		}
	}
	return sg;
}

void
dkim_signing_free(struct dkim_signing *sg)
{
	if (sg == NULL)
		return;
	for (size_t i = 0; i < sg->nkeys; i++) {
		dkim_key_free(sg->keys[i].key);
		free(sg->keys[i].headers);
	}
	free(sg->keys);
	free(sg);
}

void
dkim_signing_times_init(struct dkim_signing_times *t)
{
	/* From an Ed25519 signature of a short message (tens of microseconds) to an RSA 4096
	 * one of a large message on a busy machine. */
	static const uint64_t bounds[] = {10,   25,    50,    100,   250,    500,    1000,   2500,
	                                  5000, 10000, 25000, 50000, 100000, 250000, 1000000};

	t->sign_us = histogram_new(bounds, nitems(bounds));
	t->final_us = histogram_new(bounds, nitems(bounds));
}

void
dkim_signing_times_free(struct dkim_signing_times *t)
{
	histogram_free(t->sign_us);
	histogram_free(t->final_us);
}

size_t
dkim_signing_count(const struct dkim_signing *sg)
{
	return sg != NULL ? sg->nkeys : 0;
}

static void
add_signer(struct dkim_signing_msg *m, const struct signing_key *k)
{
	const struct dkim_key_conf *kc = k->conf;
	struct dkim_signer signer = {
	    .key = k->key,
	    .domain = kc->domain,
	    .selector = kc->selector,
	    .header_canon = kc->header_relaxed ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE,
	    .body_canon = kc->body_relaxed ? DKIM_CANON_RELAXED : DKIM_CANON_SIMPLE,
	    .headers = k->headers,
	    .expire_s = (uint32_t)kc->expire_s,
	};
	char why[256];

	if (!atomic_load(&k->usable)) {
		snprintf(why, sizeof(why), "key %s (d=%s) cannot be read", kc->name, kc->domain);
	} else if (dkim_sign_add(m->sign, &signer, why, sizeof(why)) == 0) {
		m->nsigners++;
		return;
	}
	if (m->sg->cfg->dkim_on_key_error == DKIM_KEY_ERROR_DEFER) {
		if (m->defer[0] == '\0')
			snprintf(m->defer, sizeof(m->defer), "%s", why);
	} else {
		log_warn("dkim: message sent without a d=%s signature: %s", kc->domain, why);
	}
}

static void
choose_keys(void *arg, struct dkim_sign *sign, const char *from_domain)
{
	struct dkim_signing_msg *m = arg;
	const struct dkim_signing *sg = m->sg;
	size_t idx[DKIM_SIGNERS_MAX], n;

	(void)sign;
	/* A message without a usable From cannot be signed (From is always signed). */
	if (from_domain == NULL)
		return;
	n = config_dkim_keys_for(sg->cfg, from_domain, idx, nitems(idx));
	if (n > nitems(idx)) {
		log_warn("dkim: %zu keys cover %s; the first %zu sign", n, from_domain,
		         nitems(idx));
		n = nitems(idx);
	}
	for (size_t i = 0; i < n; i++)
		add_signer(m, &sg->keys[idx[i]]);
}

struct dkim_signing_msg *
dkim_signing_begin(const struct dkim_signing *sg, uint64_t now_s, struct dkim_signing_times *times)
{
	struct dkim_signing_msg *m;

	if (sg == NULL || sg->nkeys == 0)
		return NULL;
	m = xcalloc(1, sizeof(*m));
	m->sg = sg;
	m->times = times;
	m->sign = dkim_sign_new(now_s);
	dkim_sign_on_headers(m->sign, choose_keys, m);
	return m;
}

void
dkim_signing_update(struct dkim_signing_msg *m, const void *data, size_t len)
{
	uint64_t t0 = time_mono_ns();

	/* A header section over DKIM_HEADERS_MAX shows at the end (no signer is chosen). */
	(void)dkim_sign_update(m->sign, data, len);
	m->spent_ns += time_mono_ns() - t0;
}

int
dkim_signing_final(struct dkim_signing_msg *m, char **fields, char *err, size_t errlen)
{
	char why[256];
	char *f;
	uint64_t t0 = time_mono_ns(), final_ns;

	*fields = NULL;
	/* The header section may end only here (a message without a body). */
	f = dkim_sign_final(m->sign, why, sizeof(why));
	final_ns = time_mono_ns() - t0;
	if (f != NULL && m->nsigners > 0 && m->times != NULL) {
		histogram_observe(m->times->final_us, final_ns / 1000);
		histogram_observe(m->times->sign_us, (m->spent_ns + final_ns) / 1000);
	}
	if (m->defer[0] != '\0') {
		free(f);
		snprintf(err, errlen, "%s", m->defer);
		return -1;
	}
	if (m->nsigners == 0) {
		free(f);
		return 0;
	}
	if (f == NULL) {
		if (m->sg->cfg->dkim_on_key_error == DKIM_KEY_ERROR_DEFER) {
			snprintf(err, errlen, "%s", why);
			return -1;
		}
		log_warn("dkim: message sent unsigned: %s", why);
		return 0;
	}
	*fields = f;
	return 0;
}

void
dkim_signing_end(struct dkim_signing_msg *m)
{
	if (m == NULL)
		return;
	dkim_sign_free(m->sign);
	free(m);
}
