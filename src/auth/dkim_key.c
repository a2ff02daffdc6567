/* dkim_key.c - signing keys: PEM files read and checked once, shared by every signing
 * thread, replaced in place on reload; and the two public-key operations DKIM needs.
 *
 * A key's material (struct dkim_keydata) never changes once loaded. A reload swaps the
 * key's pointer under a mutex; each message takes a reference to the material it started
 * with, so a rotation in the middle of a message cannot mix two keys in one signature. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

/* A PEM key of 4096 bits is about 3.3 KB; anything this large is not a key file. */
#define KEY_FILE_MAX (64 * 1024)

struct dkim_key {
	char *path;
	pthread_mutex_t lock;
	struct dkim_keydata *kd;
};

/* Keys are unencrypted (the server starts unattended): never prompt for a passphrase. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int
read_file(const char *path, char **data, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t got = 0;

	if (fd < 0) {
		snprintf(err, errlen, "dkim key %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > KEY_FILE_MAX) {
		snprintf(err, errlen, "dkim key %s: %s", path,
		         !S_ISREG(st.st_mode) ? "not a regular file"
		                              : "too large to be a key file");
		close(fd);
		return -1;
	}
	*data = xmalloc((size_t)st.st_size + 1);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, *data + got, (size_t)st.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "dkim key %s: %s", path,
			         n < 0 ? strerror(errno) : "file shrank while read");
			OPENSSL_clear_free(*data, (size_t)st.st_size + 1);
			close(fd);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	(*data)[got] = '\0';
	*len = got;
	return 0;
}

struct dkim_keydata *
dkim_keydata_load(const char *path, char *err, size_t errlen)
{
	struct dkim_keydata *kd;
	EVP_PKEY *pkey;
	char *text;
	size_t len;
	BIO *bio;

	if (read_file(path, &text, &len, err, errlen) < 0)
		return NULL;
	bio = BIO_new_mem_buf(text, (int)len);
	pkey = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
	BIO_free(bio);
	if (pkey == NULL) {
		ERR_clear_error();
		const char *why = "not a PEM private key (expected \"BEGIN PRIVATE KEY\" or "
		                  "\"BEGIN RSA PRIVATE KEY\")";
		if (strstr(text, "ENCRYPTED") != NULL)
			why = "encrypted: Drover needs the key unencrypted (it starts unattended); "
			      "decrypt it with openssl pkey";
		else if (strstr(text, "BEGIN PUBLIC KEY") != NULL ||
		         strstr(text, "BEGIN RSA PUBLIC KEY") != NULL)
			why = "a public key: signing needs the private key";
		snprintf(err, errlen, "dkim key %s: %s", path, why);
		OPENSSL_clear_free(text, len + 1);
		return NULL;
	}
	OPENSSL_clear_free(text, len + 1);

	int type = EVP_PKEY_get_base_id(pkey), bits = EVP_PKEY_get_bits(pkey);
	if (type != EVP_PKEY_RSA && type != EVP_PKEY_ED25519) {
		const char *name = EVP_PKEY_get0_type_name(pkey);
		snprintf(err, errlen, "dkim key %s: a%s %s key: DKIM signs with RSA or Ed25519",
		         path, name && strchr("AEIOU", name[0]) ? "n" : "",
		         name ? name : "unknown");
		EVP_PKEY_free(pkey);
		return NULL;
	}
	if (type == EVP_PKEY_RSA && (bits < DKIM_RSA_BITS_MIN || bits > DKIM_RSA_BITS_MAX)) {
		snprintf(err, errlen,
		         "dkim key %s: an RSA key of %d bits: DKIM needs %d to %d (RFC 8301: "
		         "verifiers refuse shorter keys and need not accept longer ones)",
		         path, bits, DKIM_RSA_BITS_MIN, DKIM_RSA_BITS_MAX);
		EVP_PKEY_free(pkey);
		return NULL;
	}
	kd = xcalloc(1, sizeof(*kd));
	atomic_init(&kd->refs, 1);
	kd->pkey = pkey;
	kd->alg = type == EVP_PKEY_RSA ? DKIM_RSA_SHA256 : DKIM_ED25519_SHA256;
	kd->bits = (unsigned)bits;
	return kd;
}

void
dkim_keydata_release(struct dkim_keydata *kd)
{
	if (kd != NULL && atomic_fetch_sub(&kd->refs, 1) == 1) {
		EVP_PKEY_free(kd->pkey);
		free(kd);
	}
}

struct dkim_keydata *
dkim_key_acquire(struct dkim_key *k)
{
	struct dkim_keydata *kd;

	pthread_mutex_lock(&k->lock);
	kd = k->kd;
	atomic_fetch_add(&kd->refs, 1);
	pthread_mutex_unlock(&k->lock);
	return kd;
}

struct dkim_key *
dkim_key_load(const char *path, char *err, size_t errlen)
{
	struct dkim_keydata *kd = dkim_keydata_load(path, err, errlen);
	struct dkim_key *k;

	if (kd == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->path = xstrdup(path);
	pthread_mutex_init(&k->lock, NULL);
	k->kd = kd;
	return k;
}

int
dkim_key_reload(struct dkim_key *k, char *err, size_t errlen)
{
	struct dkim_keydata *kd = dkim_keydata_load(k->path, err, errlen), *old;

	if (kd == NULL)
		return -1;
	pthread_mutex_lock(&k->lock);
	old = k->kd;
	k->kd = kd;
	pthread_mutex_unlock(&k->lock);
	dkim_keydata_release(old); /* freed when the last message signing with it ends */
	return 0;
}

struct dkim_key *
dkim_key_copy(struct dkim_key *from)
{
	struct dkim_key *k = xcalloc(1, sizeof(*k));

	k->path = xstrdup(from->path);
	pthread_mutex_init(&k->lock, NULL);
	k->kd = dkim_key_acquire(from);
	return k;
}

void
dkim_key_free(struct dkim_key *k)
{
	if (k == NULL)
		return;
	dkim_keydata_release(k->kd);
	pthread_mutex_destroy(&k->lock);
	free(k->path);
	free(k);
}

const char *
dkim_key_path(const struct dkim_key *k)
{
	return k->path;
}

enum dkim_algorithm
dkim_key_algorithm(const struct dkim_key *k)
{
	struct dkim_keydata *kd = dkim_key_acquire((struct dkim_key *)k);
	enum dkim_algorithm alg = kd->alg;

	dkim_keydata_release(kd);
	return alg;
}

unsigned
dkim_key_bits(const struct dkim_key *k)
{
	struct dkim_keydata *kd = dkim_key_acquire((struct dkim_key *)k);
	unsigned bits = kd->bits;

	dkim_keydata_release(kd);
	return bits;
}

char *
dkim_key_dns_record(const struct dkim_key *k)
{
	struct dkim_keydata *kd = dkim_key_acquire((struct dkim_key *)k);
	char *rec = dkim_pkey_dns_record(kd->pkey, kd->alg);

	dkim_keydata_release(kd);
	return rec;
}

char *
dkim_pkey_dns_record(EVP_PKEY *pkey, enum dkim_algorithm alg)
{
	unsigned char raw[32], *der = NULL;
	const unsigned char *pub = raw;
	size_t len = sizeof(raw);
	char *b64, *rec;
	int n;

	if (alg == DKIM_ED25519_SHA256) {
		/* RFC 8463 §4.2: the bare 32-octet public key, not a SubjectPublicKeyInfo. */
		if (EVP_PKEY_get_raw_public_key(pkey, raw, &len) != 1 || len != 32)
			return NULL;
	} else {
		if ((n = i2d_PUBKEY(pkey, &der)) <= 0)
			return NULL;
		pub = der;
		len = (size_t)n;
	}
	b64 = xmalloc(B64_LEN(len) + 1);
	b64_encode(pub, len, b64);
	rec = xasprintf("v=DKIM1; k=%s; p=%s", alg == DKIM_ED25519_SHA256 ? "ed25519" : "rsa", b64);
	free(b64);
	OPENSSL_free(der);
	return rec;
}

/* ---- Signing and verifying ---- */

static int
prepare(EVP_PKEY *pkey, enum dkim_algorithm alg, const struct dbuf *h, const unsigned char **data,
        size_t *len, unsigned char hash[DKIM_HASH_LEN])
{
	unsigned hl = 0;

	*data = (const unsigned char *)(h->p ? h->p : "");
	*len = h->len;
	if (alg != DKIM_ED25519_SHA256)
		return 0;
	if (EVP_Digest(*data, *len, hash, &hl, EVP_sha256(), NULL) != 1 || hl != DKIM_HASH_LEN)
		return -1;
	*data = hash;
	*len = DKIM_HASH_LEN;
	return 0;
}

int
dkim_crypto_sign(EVP_PKEY *pkey, enum dkim_algorithm alg, const struct dbuf *h, unsigned char *sig,
                 size_t *siglen)
{
	unsigned char hash[DKIM_HASH_LEN];
	const unsigned char *data;
	EVP_MD_CTX *ctx;
	size_t len;
	int ok;

	if (prepare(pkey, alg, h, &data, &len, hash) < 0 || (ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestSignInit(ctx, NULL, alg == DKIM_ED25519_SHA256 ? NULL : EVP_sha256(), NULL,
	                        pkey) == 1 &&
	     EVP_DigestSign(ctx, sig, siglen, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok ? 0 : -1;
}

int
dkim_crypto_verify(EVP_PKEY *pkey, enum dkim_algorithm alg, const struct dbuf *h,
                   const unsigned char *sig, size_t siglen)
{
	unsigned char hash[DKIM_HASH_LEN];
	const unsigned char *data;
	EVP_MD_CTX *ctx;
	size_t len;
	int ok;

	if (prepare(pkey, alg, h, &data, &len, hash) < 0 || (ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	ok = EVP_DigestVerifyInit(ctx, NULL, alg == DKIM_ED25519_SHA256 ? NULL : EVP_sha256(), NULL,
	                          pkey) == 1 &&
	     EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		ERR_clear_error(); /* a bad signature is an answer, not an error to keep */
	return ok ? 0 : -1;
}
