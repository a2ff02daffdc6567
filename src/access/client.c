/* client.c - the limit key of a client address. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "access/access.h"

int
access_client_key(const struct sockaddr *sa, char *out, size_t outlen)
{
	char text[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		if (inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text)) == NULL)
			return -1;
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		struct in6_addr prefix = sin6->sin6_addr;

		/* A dual-stack listener sees IPv4 clients as ::ffff:a.b.c.d: key them as the IPv4
		 * address they are, or they would share one /64 with every other IPv4 client. */
		if (IN6_IS_ADDR_V4MAPPED(&prefix)) {
			if (inet_ntop(AF_INET, &prefix.s6_addr[12], text, sizeof(text)) == NULL)
				return -1;
		} else {
			memset(&prefix.s6_addr[8], 0, 8);
			if (inet_ntop(AF_INET6, &prefix, text, sizeof(text)) == NULL)
				return -1;
			if (strlen(text) + 4 >= sizeof(text))
				return -1;
			strcat(text, "/64");
		}
	} else {
		return -1;
	}
	if (strlen(text) >= outlen)
		return -1;
	memcpy(out, text, strlen(text) + 1);
	return 0;
}
