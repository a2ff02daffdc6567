/* dkim_keygen.c - `drover dkim keygen`: a new key on disk (PKCS#8 PEM, mode 0600, never
 * over an existing file) and the TXT record that publishes it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

static const struct {
	const char *name;
	enum dkim_keygen_type type;
	unsigned bits;
} types[] = {
    {"rsa1024", DKIM_KEYGEN_RSA1024, 1024}, {"rsa2048", DKIM_KEYGEN_RSA2048, 2048},
    {"rsa4096", DKIM_KEYGEN_RSA4096, 4096}, {"ed25519", DKIM_KEYGEN_ED25519, 0},
    {"rsa", DKIM_KEYGEN_RSA2048, 2048},
};

int
dkim_keygen_type_parse(const char *name, enum dkim_keygen_type *type)
{
	for (size_t i = 0; i < nitems(types); i++) {
		if (strcasecmp(name, types[i].name) == 0) {
			*type = types[i].type;
			return 0;
		}
	}
	return -1;
}

const char *
dkim_keygen_type_name(enum dkim_keygen_type type)
{
	for (size_t i = 0; i < nitems(types); i++)
		if (types[i].type == type)
			return types[i].name;
	return "?";
}

static int
write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
dkim_keygen(enum dkim_keygen_type type, const char *path, char **dns_record, char *err,
            size_t errlen)
{
	enum dkim_algorithm alg =
	    type == DKIM_KEYGEN_ED25519 ? DKIM_ED25519_SHA256 : DKIM_RSA_SHA256;
	size_t bits = type == DKIM_KEYGEN_RSA1024   ? 1024
	              : type == DKIM_KEYGEN_RSA4096 ? 4096
	                                            : 2048;
	EVP_PKEY *pkey;
	BIO *mem = NULL;
	char *pem = NULL, *rec = NULL;
	long pemlen;
	int fd = -1;

	*dns_record = NULL;
	pkey = alg == DKIM_ED25519_SHA256 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
	                                  : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
	if (pkey == NULL || (mem = BIO_new(BIO_s_secmem())) == NULL ||
	    PEM_write_bio_PrivateKey(mem, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (pemlen = BIO_get_mem_data(mem, &pem)) <= 0 ||
	    (rec = dkim_pkey_dns_record(pkey, alg)) == NULL) {
		snprintf(err, errlen, "dkim keygen: OpenSSL could not generate a %s key",
		         dkim_keygen_type_name(type));
		ERR_clear_error();
		goto fail;
	}
	/* O_EXCL: a key already published must not be replaced by accident. */
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			snprintf(err, errlen,
			         "dkim keygen: %s exists: keygen does not overwrite a key "
			         "(messages signed with it may still be in flight); remove it or "
			         "choose another file",
			         path);
		else
			snprintf(err, errlen, "dkim keygen: %s: %s", path, strerror(errno));
		goto fail;
	}
	/* Exactly 0600 whatever the umask left of it. */
	if (fchmod(fd, 0600) < 0 || write_all(fd, pem, (size_t)pemlen) < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "dkim keygen: %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		goto fail;
	}
	if (close(fd) < 0) {
		snprintf(err, errlen, "dkim keygen: %s: %s", path, strerror(errno));
		unlink(path);
		goto fail;
	}
	BIO_free(mem); /* secure memory: the PEM text is cleared */
	EVP_PKEY_free(pkey);
	*dns_record = rec;
	return 0;

fail:
	free(rec);
	BIO_free(mem);
	EVP_PKEY_free(pkey);
	return -1;
}

char *
dkim_dns_zone_line(const char *selector, const char *domain, const char *record)
{
	struct dbuf b = {0};
	size_t len = strlen(record);

	dbuf_printf(&b, "%s._domainkey.%s. IN TXT (", selector, domain);
	/* A TXT character-string holds 255 octets; resolvers join the strings of a record. */
	for (size_t off = 0; off < len;) {
		size_t n = len - off < 255 ? len - off : 255;

		dbuf_adds(&b, " \"");
		for (size_t i = 0; i < n; i++) {
			if (record[off + i] == '"' || record[off + i] == '\\')
				dbuf_addc(&b, '\\');
			dbuf_addc(&b, record[off + i]);
		}
		dbuf_addc(&b, '"');
		off += n;
	}
	dbuf_adds(&b, " )");
	return dbuf_steal(&b);
}
