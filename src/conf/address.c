/* conf/address.c - listener addresses ("127.0.0.1:2525", "[::1]:2525"), host names, the hosts
 * that delivery connects to ("mx.example.com:2525"), DNS forwarders ("127.0.0.1@5353") and mail
 * addresses (postmaster). Syntax only: nothing here resolves a name.
 */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>

#include "conf/internal.h"

int
listen_address_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                     const char **why)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hbeg, *hend, *p;
	unsigned long port = 0;
	bool bracketed;

	*why = "expected a numeric address and port, as in 127.0.0.1:2525 or [::1]:2525";
	if (text == NULL || *text == '\0')
		return -1;

	bracketed = text[0] == '[';
	if (bracketed) {
		hbeg = text + 1;
		hend = strchr(hbeg, ']');
		if (hend == NULL || hend[1] != ':')
			return -1;
		colon = hend + 1;
	} else {
		hbeg = text;
		colon = strrchr(text, ':');
		if (colon == NULL) {
			*why = "a port is required, as in 127.0.0.1:2525";
			return -1;
		}
		hend = colon;
		if (memchr(hbeg, ':', (size_t)(hend - hbeg)) != NULL) {
			*why = "an IPv6 address goes in brackets, as in [::1]:2525";
			return -1;
		}
	}
	if (hend == hbeg || (size_t)(hend - hbeg) >= sizeof(host))
		return -1;
	memcpy(host, hbeg, (size_t)(hend - hbeg));
	host[hend - hbeg] = '\0';

	/* Port: 1-5 decimal digits, 1-65535. */
	p = colon + 1;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p) || strlen(p) > 5) {
		*why = "the port must be a number from 1 to 65535";
		return -1;
	}
	for (; *p != '\0'; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	if (port < 1 || port > 65535) {
		*why = "the port must be a number from 1 to 65535";
		return -1;
	}

	memset(ss, 0, sizeof(*ss));
	if (!bracketed) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1) {
			*why = "not a numeric IPv4 address (host names are not resolved here)";
			return -1;
		}
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1) {
			*why = "not a numeric IPv6 address inside the brackets";
			return -1;
		}
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
	}
	return 0;
}

bool
hostname_valid(const char *name)
{
	size_t total = strlen(name), label = 0;
	char prev = '.';

	if (total == 0 || total > 253)
		return false;
	for (const char *p = name; *p != '\0'; p++) {
		char c = *p;

		if (c == '.') {
			if (label == 0 || prev == '-')
				return false;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		           (c >= '0' && c <= '9') || c == '-') {
			if (c == '-' && label == 0)
				return false;
			if (++label > 63)
				return false;
		} else {
			return false;
		}
		prev = c;
	}
	return label != 0 && prev != '-';
}

/* Digits and dots only: meant as an IPv4 address, whatever hostname_valid() says. */
static bool
all_digits_and_dots(const char *s, size_t n)
{
	return n > 0 && strspn(s, "0123456789.") >= n;
}

/* "1".."65535", digits only. */
static bool
port_valid(const char *p)
{
	unsigned long port = 0;
	size_t n = strlen(p);

	if (n == 0 || n > 5 || strspn(p, "0123456789") != n)
		return false;
	for (; *p != '\0'; p++)
		port = port * 10 + (unsigned long)(*p - '0');
	return port >= 1 && port <= 65535;
}

int
host_port_parse_why(const char *text, const char **why)
{
	char host[256];
	const char *colon, *hend;

	*why = "expected a host name or address with an optional port, as in mx.example.com, "
	       "mx.example.com:2525, 192.0.2.1:25 or [2001:db8::1]:25";
	if (text == NULL || *text == '\0')
		return -1;

	if (text[0] == '[') {
		char addr[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;

		hend = strchr(text, ']');
		if (hend == NULL || (hend[1] != '\0' && hend[1] != ':'))
			return -1;
		if ((size_t)(hend - text - 1) >= sizeof(addr) || hend == text + 1) {
			*why = "not a numeric IPv6 address inside the brackets";
			return -1;
		}
		memcpy(addr, text + 1, (size_t)(hend - text - 1));
		addr[hend - text - 1] = '\0';
		if (inet_pton(AF_INET6, addr, &a6) != 1) {
			*why = "not a numeric IPv6 address inside the brackets";
			return -1;
		}
		colon = hend[1] == ':' ? hend + 1 : NULL;
	} else {
		colon = strchr(text, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			*why = "an IPv6 address goes in brackets, as in [2001:db8::1]:25";
			return -1;
		}
		hend = colon != NULL ? colon : text + strlen(text);
		if (hend == text || (size_t)(hend - text) >= sizeof(host))
			return -1;
		memcpy(host, text, (size_t)(hend - text));
		host[hend - text] = '\0';
		if (all_digits_and_dots(host, strlen(host))) {
			struct in_addr a4;

			if (inet_pton(AF_INET, host, &a4) != 1) {
				*why = "not a valid IPv4 address";
				return -1;
			}
		} else if (!hostname_valid(host)) {
			*why =
			    "not a valid host name (letters, digits, hyphens and dots; labels of "
			    "at most 63 octets, 253 in all)";
			return -1;
		}
	}
	if (colon != NULL && !port_valid(colon + 1)) {
		*why = "the port must be a number from 1 to 65535";
		return -1;
	}
	return 0;
}

int
forwarder_parse_why(const char *text, const char **why)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *at;
	uint8_t buf[16];
	size_t n;

	*why = "expected a numeric IP address with an optional @port, as in 192.0.2.53, "
	       "127.0.0.1@5353 or 2001:db8::53@53";
	if (text == NULL || *text == '\0')
		return -1;
	at = strrchr(text, '@');
	n = at != NULL ? (size_t)(at - text) : strlen(text);
	if (n == 0 || n >= sizeof(addr))
		return -1;
	memcpy(addr, text, n);
	addr[n] = '\0';
	if (inet_pton(AF_INET, addr, buf) != 1 && inet_pton(AF_INET6, addr, buf) != 1) {
		if (addr[0] == '[')
			*why = "no brackets: an IPv6 forwarder is written 2001:db8::53@53";
		else if (strchr(addr, ':') == NULL && !all_digits_and_dots(addr, n))
			*why =
			    "a numeric IP address is needed (the resolver cannot look up its own "
			    "name)";
		return -1;
	}
	if (at != NULL && !port_valid(at + 1)) {
		*why = "the port after @ must be a number from 1 to 65535";
		return -1;
	}
	return 0;
}

bool
helo_name_valid(const char *name)
{
	size_t n = strlen(name);
	char addr[INET6_ADDRSTRLEN + 1];
	uint8_t buf[16];

	if (hostname_valid(name) && !all_digits_and_dots(name, n))
		return true;
	/* RFC 5321 §4.1.3 address literal: [192.0.2.1], [IPv6:2001:db8::1]. */
	if (n < 3 || name[0] != '[' || name[n - 1] != ']' || n - 2 >= sizeof(addr))
		return false;
	memcpy(addr, name + 1, n - 2);
	addr[n - 2] = '\0';
	if (strncasecmp(addr, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, addr + 5, buf) == 1;
	return inet_pton(AF_INET, addr, buf) == 1;
}

/* RFC 5322 atext, the characters of a dot-atom local part. */
static bool
atext(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

int
mailbox_parse_why(const char *text, const char **why)
{
	const char *at, *p;
	size_t local;

	*why = "expected an address with a domain, as in postmaster@example.com";
	if (text == NULL || *text == '\0')
		return -1;
	if (text[0] == '<') {
		*why = "without angle brackets, as in postmaster@example.com";
		return -1;
	}
	at = strrchr(text, '@');
	if (at == NULL || at == text)
		return -1;
	local = (size_t)(at - text);
	if (local > 64) {
		*why = "the local part (before @) is longer than 64 octets (RFC 5321 §4.5.3.1.1)";
		return -1;
	}
	if (text[0] == '"') {
		/* Quoted string: printable ASCII, backslash escapes one character. */
		for (p = text + 1; p < at - 1; p++) {
			if (*p == '\\')
				p++;
			else if (*p == '"' || (unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
				return -1;
		}
		if (local < 2 || p != at - 1 || at[-1] != '"')
			return -1;
	} else {
		/* Dot-atom: atext, single dots inside. */
		for (p = text; p < at; p++) {
			if (*p == '.' ? p == text || p + 1 == at || p[1] == '.' : !atext(*p))
				return -1;
		}
	}
	if (!helo_name_valid(at + 1)) {
		*why = "the domain (after @) is not a valid domain name or address literal";
		return -1;
	}
	return 0;
}

int
ip_version_value(const char *text)
{
	if (strcmp(text, "any") == 0)
		return 0;
	if (strcmp(text, "ipv4") == 0)
		return 4;
	if (strcmp(text, "ipv6") == 0)
		return 6;
	return -1;
}
