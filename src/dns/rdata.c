/* rdata.c - reading the record data unbound hands back (uncompressed wire format). Every
 * length in it comes from the network: each is checked before it is used. */
#include <string.h>

#include "dns/dns.h"

#define WIRE_NAME_MAX  255 /* RFC 1035 §2.3.4 */
#define WIRE_LABEL_MAX 63

static bool
host_char(unsigned char c)
{
	/* RFC 952/1123 host names, plus '_' seen in the wild; never '.', a space, a control
	 * character or a byte that would need escaping in a log line. */
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_';
}

int
dns_name_from_wire(const unsigned char *buf, size_t len, char *name, size_t size)
{
	size_t pos = 0, out = 0;

	if (size < 2)
		return -1;
	for (;;) {
		size_t label;

		if (pos >= len)
			return -1;
		label = buf[pos++];
		if (label == 0)
			break;
		/* 0xC0: a compression pointer (unbound never leaves one in rdata it returns);
		 * 0x40/0x80: obsolete extended label types. */
		if (label > WIRE_LABEL_MAX)
			return -1;
		if (label > len - pos || pos + label >= WIRE_NAME_MAX)
			return -1;
		/* The label, and a dot before it unless first: must leave room for the NUL. */
		if (out + (out > 0) + label + 1 > size)
			return -1;
		if (out > 0)
			name[out++] = '.';
		for (size_t i = 0; i < label; i++) {
			if (!host_char(buf[pos + i]))
				return -1;
			name[out++] = (char)buf[pos + i];
		}
		pos += label;
	}
	if (out == 0)
		name[out++] = '.'; /* the root */
	name[out] = '\0';
	return (int)pos;
}

int
dns_mx_rdata_parse(const unsigned char *rdata, size_t len, uint16_t *preference,
                   char name[DNS_NAME_MAX + 1])
{
	int used;

	if (len < 3)
		return -1;
	used = dns_name_from_wire(rdata + 2, len - 2, name, DNS_NAME_MAX + 1);
	/* Trailing octets mean we do not understand this record: safer to skip it. */
	if (used == -1 || (size_t)used != len - 2)
		return -1;
	*preference = (uint16_t)(rdata[0] << 8 | rdata[1]);
	return 0;
}

ssize_t
dns_txt_join(const unsigned char *rdata, size_t len, char *out)
{
	size_t pos = 0, n = 0;

	/* RFC 1035 §3.3.14: one or more <character-string>s, each a length octet and its
	 * octets; RFC 7208 §3.3 and RFC 6376 §3.6.2.2 join them without separators. */
	if (len == 0)
		return -1;
	while (pos < len) {
		size_t slen = rdata[pos++];

		if (slen > len - pos)
			return -1;
		memcpy(out + n, rdata + pos, slen);
		n += slen;
		pos += slen;
	}
	out[n] = '\0';
	return (ssize_t)n;
}
