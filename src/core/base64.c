/* base64.c - the value of a base64 digit (RFC 4648 §4), shared by the decoders that differ in
 * what else they accept: DKIM's tag values (white space inside), MIME bodies (anything outside
 * the alphabet ignored) and SASL responses (nothing else at all). */
#include "core/core.h"

int
base64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}
