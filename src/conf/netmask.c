/* conf/netmask.c - address prefixes ("127.0.0.0/8", "::1", "2001:db8::/32") and matching a
 * client against them.
 *
 * IPv4 clients reach an IPv6 socket as v4-mapped addresses (::ffff:192.0.2.1): they are
 * matched as the IPv4 address they are, so "127.0.0.0/8" covers them. For the same reason a
 * v4-mapped prefix written in the file (::ffff:10.0.0.0/104) is kept as its IPv4 equivalent.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "conf/internal.h"

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* True if the bits of addr after the first prefix bits are all zero. */
static bool
host_bits_zero(const uint8_t *addr, unsigned bytes, unsigned prefix)
{
	for (unsigned i = 0; i < bytes; i++) {
		unsigned keep = prefix >= 8 * (i + 1) ? 8 : prefix > 8 * i ? prefix - 8 * i : 0;
		uint8_t hostmask = (uint8_t)(0xff >> keep);

		if (addr[i] & hostmask)
			return false;
	}
	return true;
}

int
netmask_parse_why(const char *text, struct netmask *out, const char **why)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash;
	size_t alen;
	unsigned maxbits, prefix;
	struct netmask m;

	memset(&m, 0, sizeof(m));
	*why = "expected an IPv4 or IPv6 address with an optional /prefix, "
	       "as in 127.0.0.0/8, ::1, 2001:db8::/32";
	if (text == NULL)
		return -1;
	slash = strchr(text, '/');
	alen = slash != NULL ? (size_t)(slash - text) : strlen(text);
	if (alen == 0 || alen >= sizeof(addr))
		return -1;
	memcpy(addr, text, alen);
	addr[alen] = '\0';

	if (inet_pton(AF_INET, addr, m.addr) == 1) {
		m.family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, addr, m.addr) == 1) {
		m.family = AF_INET6;
		maxbits = 128;
	} else {
		return -1;
	}

	prefix = maxbits;
	if (slash != NULL) {
		const char *p = slash + 1;
		size_t n = strspn(p, "0123456789");

		/* Decimal, no sign, no leading zeros: "/08" is more likely a typo than 8. */
		if (n == 0 || p[n] != '\0' || n > 3 || (n > 1 && p[0] == '0')) {
			*why = "the prefix after / must be a decimal number of bits";
			return -1;
		}
		prefix = 0;
		for (size_t i = 0; i < n; i++)
			prefix = prefix * 10 + (unsigned)(p[i] - '0');
		if (prefix > maxbits) {
			*why = m.family == AF_INET ? "an IPv4 prefix is at most /32"
			                           : "an IPv6 prefix is at most /128";
			return -1;
		}
	}
	m.prefix = prefix;

	/* "10.1.2.3/8" is either a typo or a misunderstanding; either way the operator should
	 * see what is actually allowed (as Postfix warns for mynetworks). */
	if (!host_bits_zero(m.addr, maxbits / 8, prefix)) {
		*why = "address bits beyond the prefix are set (write the network address, "
		       "as in 10.0.0.0/8)";
		return -1;
	}

	if (m.family == AF_INET6 && prefix >= 96 &&
	    memcmp(m.addr, v4mapped_prefix, sizeof(v4mapped_prefix)) == 0) {
		memmove(m.addr, m.addr + 12, 4);
		memset(m.addr + 4, 0, 12);
		m.family = AF_INET;
		m.prefix = prefix - 96;
	}
	*out = m;
	return 0;
}

int
netmask_parse(const char *text, struct netmask *out)
{
	const char *why;

	return netmask_parse_why(text, out, &why);
}

static bool
prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned bytes = bits / 8, rest = bits % 8;

	if (memcmp(a, b, bytes) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (a[bytes] & mask) == (b[bytes] & mask);
}

bool
netmask_match_any(const struct netmask *masks, size_t n, const struct sockaddr *sa)
{
	uint8_t addr[16];
	int family;

	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		family = AF_INET;
		memcpy(addr, &sin->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
			family = AF_INET;
			memcpy(addr, sin6->sin6_addr.s6_addr + 12, 4);
		} else {
			family = AF_INET6;
			memcpy(addr, sin6->sin6_addr.s6_addr, 16);
		}
	} else {
		return false; /* a UNIX socket has no address to match */
	}

	for (size_t i = 0; i < n; i++) {
		if (masks[i].family == family && prefix_equal(masks[i].addr, addr, masks[i].prefix))
			return true;
	}
	return false;
}
