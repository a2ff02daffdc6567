/* smtp/helo.c - the EHLO/HELO argument (RFC 5321 §4.1.1.1). */
#include <string.h>

#include "smtp/smtp.h"

/* Deliberately wider than smtp_domain_valid(): real clients announce bare host names,
 * Windows machine names with '_' and names with a trailing dot. The argument is logged and
 * put in Received:, never routed on, so it need only be one clean token. */
static bool
helo_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c >= 0x80;
}

bool
smtp_helo_valid(const char *arg)
{
	bool nonascii = false;
	size_t len;

	if (arg == NULL)
		return false;
	len = strnlen(arg, SMTP_DOMAIN_MAX + 1);
	if (len == 0 || len > SMTP_DOMAIN_MAX)
		return false;
	if (arg[0] == '[')
		return smtp_address_literal_valid(arg, len);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)arg[i];

		if (!helo_char(c))
			return false;
		nonascii = nonascii || c >= 0x80;
	}
	return !nonascii || smtp_utf8_valid(arg, len);
}
