/* verp.c - per-recipient return paths: bounce+TOKEN@domain, TOKEN authenticated.
 *
 * The token written (version 2) is 35 octets in base32 (56 characters, no padding:
 * 35 * 8 = 56 * 5):
 *
 *   version (1) | queue id (12) | rcpt index (3, big-endian) | rcpt tag (4) |
 *   tenant tag (5) | MAC (10)
 *
 * MAC = HMAC-SHA256(secret, "drover-verp\0" || the octets before it), first 10 octets: 80
 * bits, where an attacker can only test a guess by sending a bounce. The recipient tag is
 * HMAC-SHA256(secret, "drover-verp-rcpt\0" || lower-case address), first 4 octets: enough to
 * tell which of the few addresses a bounce names is ours, without carrying the address. The
 * tenant tag is HMAC-SHA256(secret, "drover-verp-tenant\0" || tenant name, "" for none),
 * first 5 octets: the listener finds the tenant among the few hundred names it knows, and 40
 * bits keep two of them from sharing a tag. The MAC covers both tags, so neither the tenant
 * nor the recipient can be changed. The context strings keep these MACs apart from anything
 * else the secret might key.
 *
 * Version 1 (30 octets, 48 characters) is the same without the tenant tag; it is still read
 * (a token in flight when the format changed), and means "no tenant". The two are told
 * apart by their length, and the version octet must agree.
 *
 * base32 rather than hex: 56 characters instead of 70, which leaves room for a prefix within
 * the 64-octet local part; rather than base64: receivers and forwarders change the case of
 * local parts, and base32 has one letter case.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/core.h"
#include "feedback/feedback.h"
#include "feedback/internal.h"
#include "spool/spool.h"

_Static_assert(FEEDBACK_QUEUE_ID_LEN == SPOOL_ID_LEN, "a VERP carries a spool queue id");

#define VERP_VERSION    2 /* written */
#define VERP_VERSION_V1 1 /* still read */
#define ID_OCTETS       (FEEDBACK_QUEUE_ID_LEN / 2)
#define OFF_ID          1
#define OFF_RCPT        (OFF_ID + ID_OCTETS)
#define OFF_TAG         (OFF_RCPT + 3)
#define OFF_TENANT      (OFF_TAG + 4) /* version 2 */
#define TENANT_OCTETS   5
#define MAC_OCTETS      10
#define OFF_MAC         (OFF_TENANT + TENANT_OCTETS)
#define OFF_MAC_V1      OFF_TENANT
#define TOKEN_OCTETS    (OFF_MAC + MAC_OCTETS)
#define TOKEN_OCTETS_V1 (OFF_MAC_V1 + MAC_OCTETS)

_Static_assert(TOKEN_OCTETS * 8 == FEEDBACK_VERP_TOKEN_LEN * 5, "base32 without padding");
_Static_assert(TOKEN_OCTETS_V1 * 8 == FEEDBACK_VERP_TOKEN_V1_LEN * 5, "base32 without padding");
_Static_assert(FEEDBACK_VERP_PREFIX_MAX + 1 + FEEDBACK_VERP_TOKEN_LEN <= SMTP_LOCAL_PART_MAX,
               "RFC 5321 local part");
_Static_assert(TENANT_OCTETS == sizeof(((struct feedback_verp *)0)->tenant_tag), "tenant tag");

static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";

static int
b32_value(unsigned char c)
{
	if (c >= 'a' && c <= 'z')
		return c - 'a';
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= '2' && c <= '7')
		return c - '2' + 26;
	return -1;
}

static void
b32_encode(const unsigned char *in, size_t n, char *out)
{
	unsigned buf = 0, bits = 0;

	for (size_t i = 0; i < n; i++) {
		buf = (buf << 8) | in[i];
		bits += 8;
		while (bits >= 5) {
			bits -= 5;
			*out++ = b32[(buf >> bits) & 31];
		}
	}
	if (bits > 0)
		*out++ = b32[(buf << (5 - bits)) & 31];
	*out = '\0';
}

/* Decodes exactly n characters (a multiple of 8: no padding bits) into n * 5 / 8 octets; -1
 * on a character outside the alphabet. */
static int
b32_decode(const char *in, size_t n, unsigned char *out)
{
	unsigned buf = 0, bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		int v = b32_value((unsigned char)in[i]);

		if (v < 0)
			return -1;
		buf = (buf << 5) | (unsigned)v;
		bits += 5;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(buf >> bits);
		}
	}
	return 0;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (unsigned char)tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void
hmac(const struct feedback_verp_keys *keys, unsigned k, const char *context,
     const unsigned char *data, size_t len, unsigned char *out, size_t outlen)
{
	unsigned char md[EVP_MAX_MD_SIZE], msg[sizeof("drover-verp-tenant") + FEEDBACK_ADDR_MAX];
	size_t clen = strlen(context) + 1; /* with its NUL: the separator */
	unsigned mdlen = 0;

	/* Callers bound len (a 25-octet payload, an address cut at FEEDBACK_ADDR_MAX, a tenant
	 * of at most FEEDBACK_TENANT_MAX) and pass one of the three contexts. */
	if (clen > sizeof("drover-verp-tenant") || len > FEEDBACK_ADDR_MAX)
		fatal("verp: HMAC input too long");
	memcpy(msg, context, clen);
	memcpy(msg + clen, data, len);
	if (HMAC(EVP_sha256(), keys->secret[k].key, (int)keys->secret[k].len, msg, clen + len, md,
	         &mdlen) == NULL)
		fatal("HMAC-SHA256 failed");
	memcpy(out, md, outlen);
	OPENSSL_cleanse(md, sizeof(md));
}

/* The tag of an address: case-folded (receivers report addresses in whatever case they
 * like), angle brackets and surrounding spaces dropped. */
static void
rcpt_tag(const struct feedback_verp_keys *keys, unsigned k, const char *address,
         unsigned char tag[4])
{
	unsigned char lower[FEEDBACK_ADDR_MAX];
	size_t n = 0, len;

	while (*address == ' ' || *address == '<')
		address++;
	len = strlen(address);
	while (len > 0 && (address[len - 1] == ' ' || address[len - 1] == '>'))
		len--;
	for (size_t i = 0; i < len && n < sizeof(lower); i++)
		lower[n++] = (unsigned char)tolower((unsigned char)address[i]);
	hmac(keys, k, "drover-verp-rcpt", lower, n, tag, 4);
}

/* The tag of a tenant name, as given ("" for none: tenant names are exact identifiers). */
static void
tenant_tag(const struct feedback_verp_keys *keys, unsigned k, const char *tenant,
           unsigned char tag[TENANT_OCTETS])
{
	const char *t = tenant != NULL ? tenant : "";

	hmac(keys, k, "drover-verp-tenant", (const unsigned char *)t, strlen(t), tag,
	     TENANT_OCTETS);
}

static bool
prefix_valid(const char *p)
{
	size_t n = strlen(p);

	if (n == 0 || n > FEEDBACK_VERP_PREFIX_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)p[i]) && p[i] != '.' && p[i] != '_' && p[i] != '-')
			return false;
	/* A dot may not start or end a dot-atom local part, nor come twice (RFC 5322 §3.4.1). */
	return p[0] != '.' && strstr(p, "..") == NULL;
}

int
feedback_verp_keys_init(struct feedback_verp_keys *keys, const char *prefix, const char *current,
                        const char *previous, char *err, size_t errlen)
{
	const char *s[2] = {current, previous};

	memset(keys, 0, sizeof(*keys));
	if (prefix == NULL)
		prefix = FEEDBACK_VERP_PREFIX_DEF;
	if (!prefix_valid(prefix)) {
		snprintf(err, errlen,
		         "VERP prefix \"%.40s\": expected 1-%d of letters, digits, '.', '_', '-'",
		         prefix, FEEDBACK_VERP_PREFIX_MAX);
		return -1;
	}
	strlcpy_s(keys->prefix, prefix, sizeof(keys->prefix));
	for (unsigned k = 0; k < 2; k++) {
		size_t n;

		if (s[k] == NULL) {
			if (k == 0) {
				snprintf(err, errlen, "VERP secret: none given");
				return -1;
			}
			break;
		}
		n = strlen(s[k]);
		if (n < FEEDBACK_SECRET_MIN || n > FEEDBACK_SECRET_MAX) {
			snprintf(err, errlen, "VERP %s secret: %zu octets, expected %d to %d",
			         k == 0 ? "current" : "previous", n, FEEDBACK_SECRET_MIN,
			         FEEDBACK_SECRET_MAX);
			feedback_verp_keys_wipe(keys);
			return -1;
		}
		memcpy(keys->secret[k].key, s[k], n);
		keys->secret[k].len = n;
		keys->nsecrets = k + 1;
	}
	if (keys->nsecrets == 2 && strcmp(current, previous) == 0) {
		snprintf(err, errlen, "VERP previous secret: the same as the current one");
		feedback_verp_keys_wipe(keys);
		return -1;
	}
	return 0;
}

void
feedback_verp_keys_wipe(struct feedback_verp_keys *keys)
{
	OPENSSL_cleanse(keys->secret, sizeof(keys->secret));
	keys->nsecrets = 0;
}

int
feedback_verp_encode(const struct feedback_verp_keys *keys, const char *queue_id, uint32_t rcpt,
                     const char *rcpt_address, const char *tenant, const char *domain, char *out,
                     size_t outsize)
{
	unsigned char tok[TOKEN_OCTETS];
	char text[FEEDBACK_VERP_TOKEN_LEN + 1];
	size_t dlen;
	int n;

	if (keys->nsecrets == 0 || queue_id == NULL || rcpt_address == NULL || domain == NULL ||
	    strlen(queue_id) != FEEDBACK_QUEUE_ID_LEN || rcpt > FEEDBACK_VERP_RCPT_MAX ||
	    (tenant != NULL && strlen(tenant) > FEEDBACK_TENANT_MAX))
		return -1;
	dlen = strlen(domain);
	if (!smtp_domain_valid(domain, dlen, false))
		return -1;
	tok[0] = VERP_VERSION;
	for (size_t i = 0; i < ID_OCTETS; i++) {
		int hi = hexval((unsigned char)queue_id[2 * i]),
		    lo = hexval((unsigned char)queue_id[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		tok[OFF_ID + i] = (unsigned char)(hi << 4 | lo);
	}
	tok[OFF_RCPT] = (unsigned char)(rcpt >> 16);
	tok[OFF_RCPT + 1] = (unsigned char)(rcpt >> 8);
	tok[OFF_RCPT + 2] = (unsigned char)rcpt;
	rcpt_tag(keys, 0, rcpt_address, tok + OFF_TAG);
	tenant_tag(keys, 0, tenant, tok + OFF_TENANT);
	hmac(keys, 0, "drover-verp", tok, OFF_MAC, tok + OFF_MAC, MAC_OCTETS);
	b32_encode(tok, sizeof(tok), text);
	/* RFC 5321 §4.5.3.1.3: a path of 256 octets with its brackets, so 254 for the address. */
	if (strlen(keys->prefix) + 1 + FEEDBACK_VERP_TOKEN_LEN + 1 + dlen > SMTP_PATH_MAX - 2)
		return -1;
	n = snprintf(out, outsize, "%s+%s@", keys->prefix, text);
	if (n < 0 || (size_t)n + dlen >= outsize)
		return -1;
	for (size_t i = 0; i <= dlen; i++)
		out[n + i] = (char)tolower((unsigned char)domain[i]);
	return n + (int)dlen;
}

const char *
feedback_verp_status_name(enum feedback_verp_status s)
{
	switch (s) {
	case FEEDBACK_VERP_OK:
		return "ok";
	case FEEDBACK_VERP_NOT_OURS:
		return "not-ours";
	case FEEDBACK_VERP_FORGED:
		return "forged";
	case FEEDBACK_VERP_MALFORMED:
		return "malformed";
	}
	return "?";
}

enum feedback_verp_status
feedback_verp_decode(const struct feedback_verp_keys *keys, const char *address,
                     struct feedback_verp *out)
{
	unsigned char tok[TOKEN_OCTETS], mac[MAC_OCTETS];
	const char *at, *end, *token;
	size_t plen = strlen(keys->prefix), len, tlen, off_mac;
	unsigned version;
	int verified = -1;

	while (*address == ' ')
		address++;
	if (*address == '<')
		address++;
	len = strlen(address);
	while (len > 0 && address[len - 1] == ' ')
		len--;
	if (len > 0 && address[len - 1] == '>')
		len--;
	end = address + len;
	/* The last "@": a quoted local part may hold one, a domain may not. */
	at = NULL;
	for (const char *p = address; p < end; p++)
		if (*p == '@')
			at = p;
	if (at == NULL || (size_t)(at - address) <= plen ||
	    strncasecmp(address, keys->prefix, plen) != 0 || address[plen] != '+')
		return FEEDBACK_VERP_NOT_OURS;
	token = address + plen + 1;
	tlen = (size_t)(at - token);
	if (tlen == FEEDBACK_VERP_TOKEN_LEN) {
		version = VERP_VERSION;
		off_mac = OFF_MAC;
	} else if (tlen == FEEDBACK_VERP_TOKEN_V1_LEN) {
		version = VERP_VERSION_V1;
		off_mac = OFF_MAC_V1;
	} else
		return FEEDBACK_VERP_MALFORMED;
	if (b32_decode(token, tlen, tok) != 0 || tok[0] != version || end - at - 1 < 1 ||
	    end - at - 1 > SMTP_DOMAIN_MAX)
		return FEEDBACK_VERP_MALFORMED;
	/* Every secret is tried, whichever verifies, so the time taken does not tell an
	 * attacker which secret is the current one; each comparison is constant-time. */
	for (unsigned k = 0; k < keys->nsecrets; k++) {
		hmac(keys, k, "drover-verp", tok, off_mac, mac, sizeof(mac));
		if (CRYPTO_memcmp(mac, tok + off_mac, sizeof(mac)) == 0 && verified < 0)
			verified = (int)k;
	}
	if (verified < 0)
		return FEEDBACK_VERP_FORGED;
	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < ID_OCTETS; i++)
		snprintf(out->queue_id + 2 * i, 3, "%02x", tok[OFF_ID + i]);
	out->rcpt =
	    (uint32_t)tok[OFF_RCPT] << 16 | (uint32_t)tok[OFF_RCPT + 1] << 8 | tok[OFF_RCPT + 2];
	out->key = (unsigned)verified;
	out->version = version;
	memcpy(out->rcpt_tag, tok + OFF_TAG, sizeof(out->rcpt_tag));
	if (version == VERP_VERSION)
		memcpy(out->tenant_tag, tok + OFF_TENANT, sizeof(out->tenant_tag));
	for (size_t i = 0; at + 1 + i < end; i++)
		out->domain[i] = (char)tolower((unsigned char)at[1 + i]);
	return FEEDBACK_VERP_OK;
}

bool
feedback_verp_rcpt_matches(const struct feedback_verp_keys *keys, const struct feedback_verp *verp,
                           const char *address)
{
	unsigned char tag[4];

	if (address == NULL || address[0] == '\0' || verp->key >= keys->nsecrets)
		return false;
	rcpt_tag(keys, verp->key, address, tag);
	return CRYPTO_memcmp(tag, verp->rcpt_tag, sizeof(tag)) == 0;
}

bool
feedback_verp_tenant_matches(const struct feedback_verp_keys *keys,
                             const struct feedback_verp *verp, const char *tenant)
{
	unsigned char tag[TENANT_OCTETS];

	if (verp->key >= keys->nsecrets || (tenant != NULL && strlen(tenant) > FEEDBACK_TENANT_MAX))
		return false;
	if (verp->version == VERP_VERSION_V1)
		return tenant == NULL || tenant[0] == '\0';
	tenant_tag(keys, verp->key, tenant, tag);
	return CRYPTO_memcmp(tag, verp->tenant_tag, sizeof(tag)) == 0;
}
