/* auth/spf_internal.h - private to the SPF and Sender ID files of auth/: a parsed record, the
 * record selection rules, and the macro helpers the engine (spf_check.c) shares with the
 * parser (spf_record.c) and the expander (spf_macro.c). */
#ifndef DROVER_AUTH_SPF_INTERNAL_H
#define DROVER_AUTH_SPF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "auth/auth.h"

enum spf_mech {
	SPF_M_ALL,
	SPF_M_INCLUDE,
	SPF_M_A,
	SPF_M_MX,
	SPF_M_PTR,
	SPF_M_IP4,
	SPF_M_IP6,
	SPF_M_EXISTS,
};

struct spf_term {
	enum spf_mech mech;
	enum spf_result qualifier; /* the result when it matches: + pass, - fail, ~ softfail, ? */
	char *spec;                /* domain-spec (a macro-string); NULL: the current domain */
	unsigned cidr4, cidr6;     /* a, mx: the dual CIDR (32, 128 by default); ip4/ip6: the
	                              network's prefix length in cidr4 or cidr6 */
	struct dns_address net;    /* ip4, ip6 */
	char *text;                /* as written, for reasons */
};

struct spf_record {
	struct spf_term *terms; /* the directives, in order */
	size_t nterms;
	char *redirect; /* redirect= domain-spec, NULL if absent */
	char *exp;      /* exp= domain-spec, NULL if absent */
};

/* The version of an SPF record at the start of text: the length of "v=spf1" (any case) if a
 * space or the end follows, else 0 (§4.5: "v=spf10" and "v=spf1mx" are not SPF records). */
size_t spf_version_len(const char *text, size_t len);
/* The same for Sender ID's "spf2.0/scope,scope" (RFC 4406 §3.1); *pra and *mfrom say which
 * of the two scopes it lists. */
size_t senderid_version_len(const char *text, size_t len, bool *pra, bool *mfrom);

/* Parses the terms after the version (text may hold any octet: those outside printable ASCII
 * are a syntax error, §3.1/§4.6.1). 0, or -1 with what and where in err; rec is then empty. */
int spf_record_parse(const char *text, size_t len, struct spf_record *, char *err, size_t errlen);
void spf_record_free(struct spf_record *);

/* Macro-string syntax (§7.1): 0, or -1 with the reason in *why. flags: SPF_MACRO_EXPLAIN.
 * *ends_with_macro: the last item is a macro-expand (a domain-spec may then end without a
 * top label). */
int spf_macro_syntax(const char *text, size_t len, unsigned flags, bool *ends_with_macro,
                     const char **why);
/* Whether text uses %{p} (which needs DNS lookups before it can be expanded). */
bool spf_macro_uses_p(const char *text, size_t len);

/* A name to look up (after expansion): not empty, no empty label, labels of at most 63 and a
 * name of at most 253 octets (a trailing dot allowed). */
bool spf_name_is_valid(const char *name);
/* name equals domain or is a subdomain of it, case-insensitively (trailing dots ignored). */
bool spf_name_within(const char *name, const char *domain);
/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 address (§5, RFC 4291). */
void spf_ip_normalize(struct dns_address *);
/* Whether ip is in net/bits (same family only). */
bool spf_ip_in(const struct dns_address *ip, const struct dns_address *net, unsigned bits);
/* The reverse name of ip: "4.3.2.1.in-addr.arpa", "1.0.0...8.b.d.0.1.0.0.2.ip6.arpa". */
void spf_ip_reverse_name(const struct dns_address *, char out[DNS_NAME_MAX + 1]);

#endif
