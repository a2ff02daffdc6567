/* conf/address.c - listener addresses ("127.0.0.1:2525", "[::1]:2525") and host names. */

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

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
