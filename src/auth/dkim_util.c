/* dkim_util.c - the small pieces the DKIM files share: a byte buffer, base64, names. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

void
dbuf_add(struct dbuf *b, const void *p, size_t n)
{
	if (n == 0)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = xrealloc(b->p, cap);
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void
dbuf_addc(struct dbuf *b, char c)
{
	dbuf_add(b, &c, 1);
}

void
dbuf_adds(struct dbuf *b, const char *s)
{
	dbuf_add(b, s, strlen(s));
}

void
dbuf_printf(struct dbuf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n < sizeof(small)) {
		dbuf_add(b, small, (size_t)n);
		return;
	}
	char *big = xmalloc((size_t)n + 1);
	va_start(ap, fmt);
	vsnprintf(big, (size_t)n + 1, fmt, ap);
	va_end(ap);
	dbuf_add(b, big, (size_t)n);
	free(big);
}

void
dbuf_free(struct dbuf *b)
{
	free(b->p);
	*b = (struct dbuf){0};
}

char *
dbuf_steal(struct dbuf *b)
{
	char *p = b->p ? b->p : xstrdup("");

	*b = (struct dbuf){0};
	return p;
}

static const char b64chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t
b64_encode(const unsigned char *in, size_t len, char *out)
{
	size_t o = 0, i;

	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = b64chars[(v >> 6) & 63];
		out[o++] = b64chars[v & 63];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
		out[o++] = b64chars[v >> 18];
		out[o++] = b64chars[(v >> 12) & 63];
		out[o++] = i + 1 < len ? b64chars[(v >> 6) & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

ssize_t
b64_decode(const char *in, size_t len, unsigned char *out, size_t size)
{
	uint32_t acc = 0;
	size_t o = 0, nbits = 0, ndigits = 0, npad = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		int v;

		if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
			continue;
		if (c == '=') {
			npad++;
			continue;
		}
		if (npad > 0 || (v = base64_value(c)) < 0)
			return -1; /* data after padding, or not base64 */
		acc = (acc << 6) | (uint32_t)v;
		nbits += 6;
		ndigits++;
		if (nbits >= 8) {
			nbits -= 8;
			if (o >= size)
				return -1;
			out[o++] = (unsigned char)(acc >> nbits);
			acc &= (1u << nbits) - 1;
		}
	}
	/* Complete quanta only: 2 or 3 digits of a last group need "==" or "=". */
	if (npad > 2 || (ndigits + npad) % 4 != 0 || ndigits % 4 == 1)
		return -1;
	if (npad > 0 && (ndigits % 4) + npad != 4)
		return -1;
	return (ssize_t)o;
}

bool
ascii_caseeq(const char *a, size_t alen, const char *b, size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (ascii_lower(a[i]) != ascii_lower(b[i]))
			return false;
	return true;
}

bool
dkim_domain_valid(const char *s, size_t len)
{
	size_t label = 0;

	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-' || c == '_') {
			if (++label > 63)
				return false;
		} else
			return false;
	}
	return label > 0;
}

const char *
dkim_algorithm_name(enum dkim_algorithm a)
{
	return a == DKIM_ED25519_SHA256 ? "ed25519-sha256" : "rsa-sha256";
}

const char *
dkim_canon_name(enum dkim_canon c)
{
	return c == DKIM_CANON_RELAXED ? "relaxed" : "simple";
}

static int
canon_word(const char *s, size_t len, enum dkim_canon *c)
{
	if (ascii_caseeq(s, len, "simple", 6))
		*c = DKIM_CANON_SIMPLE;
	else if (ascii_caseeq(s, len, "relaxed", 7))
		*c = DKIM_CANON_RELAXED;
	else
		return -1;
	return 0;
}

int
dkim_canon_parse(const char *text, enum dkim_canon *header, enum dkim_canon *body)
{
	const char *slash = strchr(text, '/');

	if (slash == NULL) {
		*body = DKIM_CANON_SIMPLE; /* RFC 6376 §3.5: "c=relaxed" is relaxed/simple */
		return canon_word(text, strlen(text), header);
	}
	if (canon_word(text, (size_t)(slash - text), header) < 0)
		return -1;
	return canon_word(slash + 1, strlen(slash + 1), body);
}

const char *
dkim_result_name(enum dkim_result r)
{
	switch (r) {
	case DKIM_RESULT_NONE:
		return "none";
	case DKIM_RESULT_PASS:
		return "pass";
	case DKIM_RESULT_FAIL:
		return "fail";
	case DKIM_RESULT_POLICY:
		return "policy";
	case DKIM_RESULT_NEUTRAL:
		return "neutral";
	case DKIM_RESULT_TEMPERROR:
		return "temperror";
	case DKIM_RESULT_PERMERROR:
		return "permerror";
	}
	return "permerror";
}

int
dkim_check_names(const char *domain, const char *selector, char *err, size_t errlen)
{
	if (domain == NULL || !dkim_domain_valid(domain, strlen(domain))) {
		snprintf(err, errlen, "dkim: \"%s\" is not a domain name to sign for",
		         domain ? domain : "");
		return -1;
	}
	if (selector == NULL || strlen(selector) > DKIM_SELECTOR_MAX ||
	    !dkim_domain_valid(selector, strlen(selector))) {
		snprintf(err, errlen, "dkim: selector \"%s\" is not one or more DNS labels",
		         selector ? selector : "");
		return -1;
	}
	if (strlen(selector) + strlen("._domainkey.") + strlen(domain) > DNS_NAME_MAX) {
		snprintf(err, errlen, "dkim: %s._domainkey.%s is longer than a DNS name can be",
		         selector, domain);
		return -1;
	}
	return 0;
}
