/* hash.c - new password hashes, for `drover user add`. */
#include <crypt.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "access/access.h"
#include "core/core.h"

static const struct {
	const char *name;
	const char *prefix;
	unsigned long cost; /* 0: libxcrypt's default */
} methods[] = {
    [ACCESS_HASH_YESCRYPT] = {"yescrypt", "$y$", 0},
    [ACCESS_HASH_BCRYPT] = {"bcrypt", "$2b$", ACCESS_BCRYPT_COST},
    [ACCESS_HASH_SHA512] = {"sha512-crypt", "$6$", ACCESS_SHA512_ROUNDS},
};

int
access_hash_method_parse(const char *name, enum access_hash_method *out)
{
	for (size_t i = 0; i < nitems(methods); i++) {
		if (strcmp(name, methods[i].name) == 0) {
			*out = (enum access_hash_method)i;
			return 0;
		}
	}
	if (strcmp(name, "sha512") == 0) {
		*out = ACCESS_HASH_SHA512;
		return 0;
	}
	return -1;
}

const char *
access_hash_method_name(enum access_hash_method m)
{
	return (size_t)m < nitems(methods) ? methods[m].name : "?";
}

int
access_hash_password(const char *password, enum access_hash_method m, char *out, size_t outlen,
                     char *err, size_t errlen)
{
	char setting[CRYPT_GENSALT_OUTPUT_SIZE];
	struct crypt_data *data;
	size_t len = strnlen(password, ACCESS_PASSWORD_MAX + 1);
	const char *h;
	int rc = -1;

	if ((size_t)m >= nitems(methods)) {
		snprintf(err, errlen, "unknown hash method %d", (int)m);
		return -1;
	}
	if (len == 0) {
		snprintf(err, errlen, "empty password");
		return -1;
	}
	if (len > ACCESS_PASSWORD_MAX) {
		snprintf(err, errlen, "password longer than %d octets", ACCESS_PASSWORD_MAX);
		return -1;
	}
	/* bcrypt would silently ignore the rest: the user would believe in a password that is
	 * not the one protecting the account. */
	if (m == ACCESS_HASH_BCRYPT && len > ACCESS_BCRYPT_PASSWORD_MAX) {
		snprintf(err, errlen,
		         "bcrypt uses only the first %d octets of a password; use yescrypt for "
		         "longer ones",
		         ACCESS_BCRYPT_PASSWORD_MAX);
		return -1;
	}
	/* NULL random bytes: libxcrypt draws the salt from getrandom(2) itself. */
	if (crypt_gensalt_rn(methods[m].prefix, methods[m].cost, NULL, 0, setting,
	                     (int)sizeof(setting)) == NULL) {
		snprintf(err, errlen, "%s: cannot make a salt: %s", methods[m].name,
		         strerror(errno));
		return -1;
	}
	data = xcalloc(1, sizeof(*data));
	h = crypt_rn(password, setting, data, (int)sizeof(*data));
	if (h == NULL || h[0] == '*')
		snprintf(err, errlen, "%s: crypt failed: %s", methods[m].name, strerror(errno));
	else if (strlen(h) >= outlen)
		snprintf(err, errlen, "%s: hash longer than the buffer (%zu octets)",
		         methods[m].name, outlen);
	else {
		strlcpy_s(out, h, outlen);
		rc = 0;
	}
	/* The passphrase was copied into data->input. */
	explicit_bzero(data, sizeof(*data));
	free(data);
	return rc;
}
