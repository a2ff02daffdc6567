/* status.c - what an unbound answer means for a sender, and the small rules every query
 * shares: which names are worth asking about, how two answers combine, the shuffle's rng. */
#include <string.h>

#include <unbound.h>

#include "dns/internal.h"

const char *
dns_status_name(enum dns_status s)
{
	static const char *const names[] = {
	    [DNS_OK] = "OK",           [DNS_NODATA] = "NODATA",     [DNS_NXDOMAIN] = "NXDOMAIN",
	    [DNS_NULL_MX] = "NULL_MX", [DNS_TEMPFAIL] = "TEMPFAIL", [DNS_BADNAME] = "BADNAME",
	};

	if ((unsigned)s >= sizeof(names) / sizeof(names[0]))
		return "?";
	return names[s];
}

static const char *
rcode_text(int rcode)
{
	static const char *const names[] = {
	    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED",
	};

	if (rcode >= 0 && (unsigned)rcode < sizeof(names) / sizeof(names[0]))
		return names[rcode];
	return "error rcode from the DNS server";
}

enum dns_status
status_of_answer(int err, const struct ub_result *res, const char **error)
{
	*error = NULL;
	if (err != 0 || res == NULL) {
		*error = ub_strerror(err);
		/* A name unbound cannot encode: only a sender's typo gets this far. */
		return err == UB_SYNTAX ? DNS_BADNAME : DNS_TEMPFAIL;
	}
	/* No trust anchor is configured yet, so nothing validates as bogus today; when DANE adds
	 * one, a forged answer must mean "try later", never "deliver there". */
	if (res->bogus) {
		*error = "DNSSEC validation failed";
		return DNS_TEMPFAIL;
	}
	switch (res->rcode) {
	case 0:
		if (res->havedata)
			return DNS_OK;
		*error = "no records of that type";
		return DNS_NODATA;
	case 3:
		*error = "no such domain";
		return DNS_NXDOMAIN;
	default:
		/* SERVFAIL is also what unbound answers when the servers never replied: a
		 * temporary condition by RFC 5321 §5.1, like REFUSED or a malformed reply. */
		*error = rcode_text(res->rcode);
		return DNS_TEMPFAIL;
	}
}

/* The better of two answers for the same name (A and AAAA; several MX hosts): any data wins;
 * a failure to learn beats a proof of absence, since the data may yet exist. */
enum dns_status
status_combine(enum dns_status a, enum dns_status b)
{
	static const int rank[] = {
	    [DNS_OK] = 0,       [DNS_TEMPFAIL] = 1, [DNS_NODATA] = 2,
	    [DNS_NXDOMAIN] = 3, [DNS_BADNAME] = 4,  [DNS_NULL_MX] = 5,
	};

	return rank[a] <= rank[b] ? a : b;
}

bool
name_is_valid(const char *name)
{
	size_t len = strnlen(name, DNS_NAME_MAX + 2), label = 0;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		/* A label may hold any octet (RFC 2181 §11): SPF macros expand into names with
		 * spaces and '%' (RFC 7208 §7). Control characters never make sense in one. The
		 * query escapes what unbound's presentation format would misread (query.c). */
		if (c < ' ' || c == 0x7f)
			return false;
		if (++label > 63)
			return false;
	}
	return label > 0; /* "a.." left an empty last label */
}

/* splitmix64 (Steele, Lea, Flood 2014): tiny, seedable, and good enough to spread load. */
uint64_t
rng_next(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}
