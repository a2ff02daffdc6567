/* auth/dmarc_internal.h - private to the DMARC files of auth/: the record's version test that
 * policy discovery counts records with, the loaded Public Suffix List, and the DKIM helpers the
 * DMARC files borrow (tests and the fuzz target include it to reach the pure parts). */
#ifndef DROVER_AUTH_DMARC_INTERNAL_H
#define DROVER_AUTH_DMARC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <libpsl.h>

#include "auth/auth.h"
#include "auth/dkim_internal.h"

struct dmarc_psl {
	psl_ctx_t *ctx;       /* NULL when the built-in list serves */
	const psl_ctx_t *use; /* ctx, or psl_builtin() */
	char source[288];
};

/* The length of "v" *WSP "=" *WSP "DMARC1" at the start of text when a ';', white space or
 * the end follows (what makes a TXT record a DMARC record, §6.6.3 step 2), else 0. */
size_t dmarc_version_len(const char *text, size_t len);

/* A domain name as DMARC compares it: trailing dot dropped, lower-cased, checked
 * (dkim_domain_valid). 0 or -1. */
int dmarc_domain_norm(const char *domain, char out[DNS_NAME_MAX + 1]);

#endif
