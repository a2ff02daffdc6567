/* spf_util.c - the small vocabulary SPF shares: result and scope names, client addresses and
 * their networks, reverse names, and what a name to look up must look like. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "auth/spf_internal.h"
#include "core/core.h"

const char *
spf_result_name(enum spf_result r)
{
	static const char *const names[] = {
	    [SPF_NONE] = "none",           [SPF_NEUTRAL] = "neutral",
	    [SPF_PASS] = "pass",           [SPF_FAIL] = "fail",
	    [SPF_SOFTFAIL] = "softfail",   [SPF_TEMPERROR] = "temperror",
	    [SPF_PERMERROR] = "permerror",
	};

	if ((unsigned)r >= nitems(names))
		return "?";
	return names[r];
}

static const char *const scope_names[] = {
    [SPF_SCOPE_MFROM] = "mfrom",
    [SPF_SCOPE_HELO] = "helo",
    [SPF_SCOPE_PRA] = "pra",
};

const char *
spf_scope_name(enum spf_scope s)
{
	if ((unsigned)s >= nitems(scope_names))
		return "?";
	return scope_names[s];
}

int
spf_scope_parse(const char *name, enum spf_scope *scope)
{
	for (size_t i = 0; i < nitems(scope_names); i++) {
		if (strcasecmp(name, scope_names[i]) == 0) {
			*scope = (enum spf_scope)i;
			return 0;
		}
	}
	return -1;
}

int
spf_ip_parse(const char *text, struct dns_address *ip)
{
	memset(ip, 0, sizeof(*ip));
	if (text == NULL)
		return -1;
	if (inet_pton(AF_INET, text, &ip->u.v4) == 1) {
		ip->family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, text, &ip->u.v6) == 1) {
		ip->family = AF_INET6;
		return 0;
	}
	return -1;
}

void
spf_ip_normalize(struct dns_address *ip)
{
	if (ip->family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&ip->u.v6)) {
		struct in_addr v4;

		memcpy(&v4, &ip->u.v6.s6_addr[12], sizeof(v4));
		ip->family = AF_INET;
		ip->u.v4 = v4;
	}
}

bool
spf_ip_in(const struct dns_address *ip, const struct dns_address *net, unsigned bits)
{
	const unsigned char *a, *b;
	unsigned max;

	if (ip->family != net->family)
		return false;
	if (ip->family == AF_INET) {
		a = (const unsigned char *)&ip->u.v4;
		b = (const unsigned char *)&net->u.v4;
		max = 32;
	} else {
		a = ip->u.v6.s6_addr;
		b = net->u.v6.s6_addr;
		max = 128;
	}
	if (bits > max)
		bits = max;
	if (memcmp(a, b, bits / 8) != 0)
		return false;
	if (bits % 8 != 0) {
		unsigned char mask = (unsigned char)(0xff << (8 - bits % 8));

		if ((a[bits / 8] & mask) != (b[bits / 8] & mask))
			return false;
	}
	return true;
}

void
spf_ip_reverse_name(const struct dns_address *ip, char out[DNS_NAME_MAX + 1])
{
	static const char hex[] = "0123456789abcdef";

	if (ip->family == AF_INET) {
		const unsigned char *b = (const unsigned char *)&ip->u.v4;

		snprintf(out, DNS_NAME_MAX + 1, "%u.%u.%u.%u.in-addr.arpa", b[3], b[2], b[1], b[0]);
		return;
	}
	char *p = out;

	for (int i = 15; i >= 0; i--) {
		unsigned char b = ip->u.v6.s6_addr[i];

		*p++ = hex[b & 0xf];
		*p++ = '.';
		*p++ = hex[b >> 4];
		*p++ = '.';
	}
	strcpy(p, "ip6.arpa"); /* 64 + 8 characters: fits */
}

bool
spf_name_is_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (name[i] == '.') {
			if (label == 0)
				return false;
			label = 0;
		} else if (++label > 63)
			return false;
	}
	return label > 0;
}

bool
spf_name_within(const char *name, const char *domain)
{
	size_t n = strlen(name), d = strlen(domain);

	if (n > 0 && name[n - 1] == '.')
		n--;
	if (d > 0 && domain[d - 1] == '.')
		d--;
	if (d == 0 || n < d)
		return false;
	if (strncasecmp(name + n - d, domain, d) != 0)
		return false;
	return n == d || name[n - d - 1] == '.';
}

char *
spf_resinfo(const struct spf_outcome *o, const char *pra_field)
{
	char field[32], reason[400];
	size_t r = 0;
	char *out;

	/* reason="..." as an RFC 8601 quoted-string: '"' and '\' escaped, controls dropped. */
	for (const char *p = o->reason != NULL ? o->reason : "";
	     *p != '\0' && r + 3 < sizeof(reason); p++) {
		if (*p == '"' || *p == '\\')
			reason[r++] = '\\';
		if ((unsigned char)*p >= 0x20 && *p != 0x7f)
			reason[r++] = *p;
	}
	reason[r] = '\0';
	if (strcmp(o->scope, "pra") == 0) {
		size_t i;

		for (i = 0; pra_field != NULL && pra_field[i] != '\0' && i + 1 < sizeof(field); i++)
			field[i] = (char)tolower((unsigned char)pra_field[i]);
		field[i] = '\0';
		out = xasprintf("sender-id=%s header.%s=%s", spf_result_name(o->result),
		                i > 0 ? field : "from", o->identity);
	} else if (strcmp(o->scope, "helo") == 0) {
		const char *at = strrchr(o->identity, '@');

		out = xasprintf("spf=%s smtp.helo=%s", spf_result_name(o->result),
		                at != NULL ? at + 1 : o->identity);
	} else
		out = xasprintf("spf=%s smtp.mailfrom=%s", spf_result_name(o->result), o->identity);
	if (o->result != SPF_PASS && reason[0] != '\0') {
		char *with = xasprintf("%s reason=\"%s\"", out, reason);

		free(out);
		out = with;
	}
	return out;
}
