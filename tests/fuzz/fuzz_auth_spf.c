/* fuzz_auth_spf - SPF record parsing and macro expansion, and Sender ID's PRA extraction, on
 * arbitrary bytes. The first byte picks what to run and the macro flags; the rest is a TXT
 * record, a macro-string or a header section. Whatever is accepted must honour the header's
 * promises: a parsed record's terms are valid domain-specs that expand, an expansion fits its
 * buffer and is what strlen says, a target name is at most 253 octets, an explanation is
 * printable ASCII, a PRA is local@domain. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/spf_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define INPUT_MAX 8192

static struct spf_macro_vars
vars(bool v6)
{
	struct spf_macro_vars v = {
	    .sender = "strong-bad@email.example.com",
	    .local = "strong-bad",
	    .sender_domain = "email.example.com",
	    .domain = "email.example.com",
	    .ptr = NULL,
	    .helo = "mail.example.org",
	    .receiver = "mx.example.net",
	    .now = 1700000000,
	};

	(void)spf_ip_parse(v6 ? "2001:db8::cb01" : "192.0.2.3", &v.ip);
	return v;
}

static void
check_expansion(const char *text, size_t len, unsigned flags, const struct spf_macro_vars *v,
                size_t outsize)
{
	static char out[SPF_EXPANSION_MAX + 1];
	char err[256];
	bool ends;
	const char *why;
	ssize_t n = spf_macro_expand(text, len, flags, v, out, outsize, err, sizeof(err));
	bool syntax_ok = spf_macro_syntax(text, len, flags & SPF_MACRO_EXPLAIN, &ends, &why) == 0;

	if (n < 0) {
		if (memchr(err, '\0', sizeof(err)) == NULL || out[0] != '\0')
			abort();
		return;
	}
	if (!syntax_ok || (size_t)n >= outsize || strlen(out) != (size_t)n)
		abort();
	if ((flags & SPF_MACRO_DOMAIN) && n > DNS_NAME_MAX)
		abort();
	for (ssize_t i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
			abort();
	if (!(flags & SPF_MACRO_EXPLAIN) && memchr(out, ' ', (size_t)n) != NULL &&
	    strstr(text, "%_") == NULL && strstr(text, "%{") == NULL)
		abort(); /* spaces only from %_ or a value */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char text[INPUT_MAX + 1];
	struct spf_macro_vars v;
	struct spf_record rec;
	struct senderid_pra pra;
	char err[512];
	size_t len;
	int rc;

	if (size < 1 || size - 1 > INPUT_MAX)
		return 0;
	len = size - 1;
	memcpy(text, data + 1, len);
	text[len] = '\0';
	v = vars(data[0] & 0x08);

	switch (data[0] & 0x03) {
	case 0: /* a TXT record */
		rc = spf_record_check(text, len, err, sizeof(err));
		if (rc < -1 || rc > 1 || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		if (rc == 1 && err[0] != '\0')
			abort();
		if (spf_record_parse(text, len, &rec, err, sizeof(err)) == 0) {
			for (size_t i = 0; i < rec.nterms; i++) {
				const struct spf_term *t = &rec.terms[i];

				if (t->cidr4 > 32 || t->cidr6 > 128 || t->text == NULL)
					abort();
				if (t->spec != NULL)
					check_expansion(t->spec, strlen(t->spec), SPF_MACRO_DOMAIN,
					                &v, SPF_EXPANSION_MAX + 1);
			}
			if (rec.redirect != NULL)
				check_expansion(rec.redirect, strlen(rec.redirect),
				                SPF_MACRO_DOMAIN, &v, SPF_EXPANSION_MAX + 1);
			if (rec.exp != NULL)
				check_expansion(rec.exp, strlen(rec.exp), SPF_MACRO_DOMAIN, &v,
				                SPF_EXPANSION_MAX + 1);
			spf_record_free(&rec);
		} else if (rec.nterms != 0 || rec.terms != NULL)
			abort();
		break;
	case 1: /* a macro-string: explanation or domain, in a small or a large buffer */
		check_expansion(text, len, (data[0] & 0x04) ? SPF_MACRO_EXPLAIN : SPF_MACRO_DOMAIN,
		                &v, (data[0] & 0x10) ? 64 : SPF_EXPANSION_MAX + 1);
		(void)spf_macro_uses_p(text, len);
		break;
	default: /* a header section */
		if (senderid_pra(text, len, &pra, err, sizeof(err)) == 0) {
			const char *at = strrchr(pra.address, '@');

			if (at == NULL || at == pra.address || at[1] == '\0' ||
			    pra.header[0] == '\0' || strlen(pra.address) > SENDERID_PRA_MAX)
				abort();
		} else if (pra.address[0] != '\0' || memchr(err, '\0', sizeof(err)) == NULL)
			abort();
		break;
	}
	return 0;
}
