/* smtp/domain.c - the Domain and address-literal productions of RFC 5321 §4.1.2/§4.1.3,
 * shared by paths and the EHLO argument, and the A-label form of a UTF-8 domain (IDNA2008)
 * that delivery looks up. */
#include <arpa/inet.h>
#include <string.h>
#include <strings.h>

#include <idn2.h>

#include "smtp/smtp.h"

#define LABEL_MAX 63 /* RFC 1035 §2.3.4 */

static bool
let_dig(unsigned char c, bool utf8_ok)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return utf8_ok && c >= 0x80;
}

bool
smtp_domain_valid(const char *s, size_t len, bool utf8_ok)
{
	const unsigned char *p = (const unsigned char *)s;
	bool nonascii = false;
	size_t start = 0;

	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && p[i] != '.') {
			if (p[i] >= 0x80)
				nonascii = true;
			else if (p[i] != '-' && !let_dig(p[i], false))
				return false;
			if (!utf8_ok && p[i] >= 0x80)
				return false;
			continue;
		}
		/* End of a label: sub-domain = Let-dig [Ldh-str], so no empty label (this also
		 * refuses a trailing dot) and no hyphen at either end. */
		if (i == start || !let_dig(p[start], utf8_ok) || !let_dig(p[i - 1], utf8_ok))
			return false;
		/* The 63-octet limit is on the A-label; a U-label's A-label length is not known
		 * without IDNA, so only ASCII labels are held to it here. */
		if (i - start > LABEL_MAX) {
			bool ascii = true;

			for (size_t k = start; k < i; k++)
				ascii = ascii && p[k] < 0x80;
			if (ascii)
				return false;
		}
		start = i + 1;
	}
	return !nonascii || smtp_utf8_valid(s, len);
}

bool
smtp_address_literal_valid(const char *s, size_t len)
{
	unsigned char addr[16];
	char buf[64];
	size_t n;

	if (len < 2 || s[0] != '[' || s[len - 1] != ']')
		return false;
	n = len - 2;
	if (n == 0 || n >= sizeof(buf) || memchr(s + 1, '\0', n) != NULL)
		return false;
	memcpy(buf, s + 1, n);
	buf[n] = '\0';
	/* inet_pton refuses what RFC 5321 refuses: leading zeros, octets over 255, short
	 * forms like "127.1". General-address-literal ("[tag:...]") has no registered tag
	 * besides IPv6, so it is refused too. */
	if (n > 5 && strncasecmp(buf, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, buf + 5, addr) == 1;
	return inet_pton(AF_INET, buf, addr) == 1;
}

int
smtp_domain_to_ascii(const char *domain, char *out, size_t size, const char **why)
{
	bool ascii = true;
	size_t n = 0;
	char *alabel = NULL;
	int rc;

	for (const unsigned char *p = (const unsigned char *)domain; *p != '\0'; p++, n++)
		ascii = ascii && *p < 0x80;
	if (ascii) {
		/* idn2 would refuse ASCII names the DNS serves ("ab--c.example", "_x"): they are
		 * not ours to judge, only to compare without case. */
		if (n >= size) {
			*why = "domain name too long";
			return -1;
		}
		for (size_t i = 0; i <= n; i++)
			out[i] = (char)(domain[i] >= 'A' && domain[i] <= 'Z' ? domain[i] + 32
			                                                     : domain[i]);
		return 0;
	}
	/* NONTRANSITIONAL: "ß" stays itself (xn--fa-hia.de), as IDNA2008 means it, not "ss" as
	 * IDNA2003 did; the UTS #46 mapping lower-cases and normalizes (NFC) first. */
	rc = idn2_to_ascii_8z(domain, &alabel, IDN2_NONTRANSITIONAL);
	if (rc != IDN2_OK) {
		*why = idn2_strerror(rc);
		return -1;
	}
	n = strlen(alabel);
	if (n >= size || n > SMTP_DOMAIN_MAX) {
		idn2_free(alabel);
		*why = "domain name too long";
		return -1;
	}
	memcpy(out, alabel, n + 1);
	idn2_free(alabel);
	return 0;
}
