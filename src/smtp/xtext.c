/* smtp/xtext.c - RFC 3461 §4 xtext, the encoding of ENVID and ORCPT values. */
#include <limits.h>

#include "smtp/smtp.h"

static int
hexval(unsigned char c)
{
	/* RFC 3461 hexchar: upper-case only, so "+2b" is not xtext. */
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
smtp_xtext_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		if (p[i] == '+') {
			if (len - i < 3 || hexval(p[i + 1]) < 0 || hexval(p[i + 2]) < 0)
				return false;
			i += 3;
		} else if (p[i] < 33 || p[i] > 126 || p[i] == '=') {
			return false;
		} else {
			i++;
		}
	}
	return true;
}

int
smtp_xtext_decode(const char *s, size_t len, char *out, size_t outsize)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;

	if (outsize == 0 || !smtp_xtext_valid(s, len))
		return -1;
	for (size_t i = 0; i < len; n++) {
		if (n + 1 >= outsize || n >= INT_MAX)
			return -1;
		if (p[i] == '+') {
			out[n] = (char)(hexval(p[i + 1]) << 4 | hexval(p[i + 2]));
			i += 3;
		} else {
			out[n] = (char)p[i];
			i++;
		}
	}
	out[n] = '\0';
	return (int)n;
}
