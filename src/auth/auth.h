/* auth/auth.h - message authentication: DKIM signing and verification (RFC 6376, with
 * Ed25519 from RFC 8463 and the algorithm and key-size rules of RFC 8301), key generation, and
 * the Authentication-Results header field (RFC 8601). SPF, Sender ID and DMARC have their own
 * sections below.
 *
 * Thread-safety: a struct dkim_key may be shared by any number of threads signing at once
 * (each with its own struct dkim_sign) and reloaded while they do: a signature started
 * before a reload finishes with the key it started with. A struct dkim_sign or
 * struct dkim_verify belongs to one thread at a time. Verification looks keys up through a
 * struct dkim_lookup; the DNS one (dkim_lookup_dns) is bound to one resolver, so to one event
 * loop, and its callbacks run on that loop.
 *
 * Every parser here is bounded for any input (they are fuzzed) and never changes the octets
 * of a message: 8-bit and UTF-8 content pass untouched.
 */
#ifndef DROVER_AUTH_H
#define DROVER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns/dns.h"

/* ==== DKIM ==== */

/* RFC 8301 §3.2: signers use at least 1024 bits; verifiers accept 1024 to 4096. A signing
 * key outside that range is refused when it is loaded, not discovered at a receiver. */
#define DKIM_RSA_BITS_MIN 1024
#define DKIM_RSA_BITS_MAX 4096
/* The header section is kept in memory while a message is signed or verified (the body is
 * only hashed). Postfix's header_size_limit is 100 KB; this leaves room for long lists. */
#define DKIM_HEADERS_MAX (1024 * 1024)
/* Signatures one message may carry from us (RSA + Ed25519 for the author's domain and the
 * platform's is four). */
#define DKIM_SIGNERS_MAX 8
/* DKIM-Signature fields a verifier checks in one message; the others are reported neutral.
 * Each costs a DNS lookup and a public-key operation: a message must not buy unlimited work. */
#define DKIM_VERIFY_SIGNATURES_MAX 5
/* How far a signer's clock may be ahead of ours (t=) or an expiry behind it (x=). */
#define DKIM_VERIFY_CLOCK_SKEW_S 300
/* RFC 5322 §2.1.1: lines of at most 78 characters; the DKIM-Signature we add keeps to it. */
#define DKIM_LINE_MAX 78
/* i= (local-part "@" domain) as kept in results; a selector is a sequence of DNS labels. */
#define DKIM_IDENTITY_MAX 320
#define DKIM_SELECTOR_MAX 63

enum dkim_algorithm {
	DKIM_RSA_SHA256,     /* "rsa-sha256" */
	DKIM_ED25519_SHA256, /* "ed25519-sha256" (RFC 8463) */
};

enum dkim_canon {
	DKIM_CANON_SIMPLE,
	DKIM_CANON_RELAXED,
};

const char *dkim_algorithm_name(enum dkim_algorithm);
const char *dkim_canon_name(enum dkim_canon);
/* "relaxed/simple", "relaxed" (body simple, RFC 6376 §3.5 c=), for configuration. 0 or -1. */
int dkim_canon_parse(const char *text, enum dkim_canon *header, enum dkim_canon *body);

/* ---- Signing keys ----
 *
 * A PEM private key file: RSA (PKCS#1 "BEGIN RSA PRIVATE KEY" or PKCS#8 "BEGIN PRIVATE KEY")
 * of 1024 to 4096 bits, or Ed25519 (PKCS#8). Unencrypted: the server starts unattended. */
struct dkim_key;

/* NULL with the reason in err, naming the file: missing or unreadable (strerror), not a PEM
 * private key, encrypted, a key of another type (EC, DSA, …), an RSA key too short or too
 * long. */
struct dkim_key *dkim_key_load(const char *path, char *err, size_t errlen);
/* Reads the same file again (after a key rotation). On error the key keeps what it had and
 * err says why: a bad file on disk never leaves a signer without a key. 0 or -1. Safe while
 * other threads sign. */
int dkim_key_reload(struct dkim_key *, char *err, size_t errlen);
void dkim_key_free(struct dkim_key *);
/* A new handle on the key as it is now (its material shared, not read again): a reload that
 * cannot read the file keeps signing with what was read before. */
struct dkim_key *dkim_key_copy(struct dkim_key *);
const char *dkim_key_path(const struct dkim_key *);
enum dkim_algorithm dkim_key_algorithm(const struct dkim_key *);
unsigned dkim_key_bits(const struct dkim_key *); /* 253 for Ed25519 (as OpenSSL counts) */
/* The TXT record that publishes the key: "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>"
 * or "v=DKIM1; k=ed25519; p=<base64 of the raw 32-octet key>" (RFC 8463 §4). free() it. */
char *dkim_key_dns_record(const struct dkim_key *);

/* ---- Key generation (`drover dkim keygen`) ---- */

enum dkim_keygen_type {
	DKIM_KEYGEN_RSA1024,
	DKIM_KEYGEN_RSA2048, /* the default: every verifier accepts it */
	DKIM_KEYGEN_RSA4096,
	DKIM_KEYGEN_ED25519,
};

/* "rsa1024", "rsa2048", "rsa4096", "ed25519" (also "rsa" = rsa2048). 0 or -1. */
int dkim_keygen_type_parse(const char *name, enum dkim_keygen_type *);
const char *dkim_keygen_type_name(enum dkim_keygen_type);
/* Generates a key and writes it to path as PKCS#8 PEM, mode 0600, refusing to overwrite an
 * existing file (a live key replaced by mistake breaks every message in flight). On success
 * *dns_record holds the TXT record text to publish (as dkim_key_dns_record(); free() it).
 * 0, or -1 with the reason in err (and no file left behind). */
int dkim_keygen(enum dkim_keygen_type, const char *path, char **dns_record, char *err,
                size_t errlen);
/* The record in zone-file syntax, split into character-strings of at most 255 octets:
 * sel._domainkey.example.com. IN TXT ( "v=DKIM1; k=rsa; p=MIIB…" "…" )   free() it. */
char *dkim_dns_zone_line(const char *selector, const char *domain, const char *record);
/* A signing domain and selector as DNS names (letters, digits, '-', '_' in labels of 1-63
 * octets) whose key name sel._domainkey.domain fits in 253 octets: for keygen's arguments and
 * the configuration. 0, or -1 with the reason in err. */
int dkim_check_names(const char *domain, const char *selector, char *err, size_t errlen);

/* ---- Signing ----
 *
 * One struct dkim_sign per message, fed the message as it arrives (in any pieces) and
 * asked for the DKIM-Signature fields at the end; the caller puts them on top of the message.
 *
 *   s = dkim_sign_new(now_s);
 *   dkim_sign_add(s, &platform_signer, err, sizeof(err));     // known before the message
 *   dkim_sign_on_headers(s, choose_by_from, cfg);             // or chosen by From domain
 *   while (chunk) dkim_sign_update(s, data, len);
 *   fields = dkim_sign_final(s, err, sizeof(err));            // "DKIM-Signature: …\r\n…"
 *
 * The message is what the SMTP client sent after dot-unstuffing: lines end in CRLF (a bare
 * LF is read as CRLF, as canonicalization must see line ends). Headers are kept until the
 * header section ends (at most DKIM_HEADERS_MAX octets); the body is hashed as it comes, in
 * each body canonicalization the signers use. No l= is ever emitted: a body length lets
 * anyone append content that still verifies. */

struct dkim_signer {
	struct dkim_key *key; /* a= follows the key's type */
	const char *domain;   /* d= */
	const char *selector; /* s= */
	const char *identity; /* i=, "[local-part]@domain" within d=; NULL: none (= "@d") */
	enum dkim_canon header_canon, body_canon;
	/* Field names to sign, NULL-terminated; NULL: dkim_default_headers. Each present field
	 * is signed (every instance of a repeated one); From is always signed. */
	const char *const *headers;
	/* Names listed once more than present (RFC 6376 §8.15), so that none can be added
	 * without breaking the signature, NULL-terminated. From always is, first. */
	const char *const *oversign;
	uint32_t expire_s; /* x= t + expire_s; 0: no x= (t= is always present) */
};

/* From, Reply-To, Subject, Date, To, Cc, the Resent-* fields, In-Reply-To, References, the
 * List-* fields (RFC 2369, 2919, 8058), Message-ID, Sender, MIME-Version, the Content-*
 * fields, Feedback-ID. NULL-terminated. */
extern const char *const dkim_default_headers[];

struct dkim_sign;

/* now_s: t= (seconds since the epoch). */
struct dkim_sign *dkim_sign_new(uint64_t now_s);
/* One more signature. Until the header section is complete (at creation or from the
 * on_headers callback). 0, or -1 with err: no key, bad domain, selector or identity, too
 * many signers, or too late. */
int dkim_sign_add(struct dkim_sign *, const struct dkim_signer *, char *err, size_t errlen);
/* Called once, from inside dkim_sign_update() or dkim_sign_final(), when the header section
 * is complete and before any body octet is hashed: the place to add signers chosen by the
 * domain of the From field (lower-cased; NULL if the message has no usable From). */
typedef void dkim_sign_headers_cb(void *arg, struct dkim_sign *, const char *from_domain);
void dkim_sign_on_headers(struct dkim_sign *, dkim_sign_headers_cb *, void *arg);
/* 0, or -1 once the header section is over DKIM_HEADERS_MAX (dkim_sign_final() then fails
 * with that reason). */
int dkim_sign_update(struct dkim_sign *, const void *data, size_t len);
/* The DKIM-Signature fields, one per signer in the order added, each folded to at most
 * DKIM_LINE_MAX characters a line and ending in CRLF; NUL-terminated, free() it. NULL with err
 * if the message cannot be signed (no signer, header section too large, a crypto error). */
char *dkim_sign_final(struct dkim_sign *, char *err, size_t errlen);
void dkim_sign_free(struct dkim_sign *);

/* The domain of the first mailbox of a From field's value (display names, comments and
 * quoted strings skipped), lower-cased, into out. 0, or -1 if there is none. */
int dkim_from_domain(const char *value, size_t len, char out[DNS_NAME_MAX + 1]);

/* ---- Key lookup for verification ----
 *
 * Pluggable so that tests and tools verify against a fixed table and the server against the
 * DNS. start() looks up the TXT records at name ("sel._domainkey.example.com") and calls
 * done(token, answer) exactly once: before start() returns (then it returns NULL) or later
 * (then it returns a handle that cancel() accepts until done runs). The answer is valid only
 * during the call. */

enum dkim_lookup_status {
	DKIM_LOOKUP_OK,       /* records found */
	DKIM_LOOKUP_NOTFOUND, /* NXDOMAIN, no TXT record, or not a valid name */
	DKIM_LOOKUP_TEMPFAIL, /* try again later */
};

struct dkim_lookup_answer {
	enum dkim_lookup_status status;
	const struct dns_txt_record *records;
	size_t nrecords;
	const char *error; /* unless OK, for the reason ("SERVFAIL", "timed out") */
};

typedef void dkim_lookup_done(void *token, const struct dkim_lookup_answer *);

struct dkim_lookup {
	void *(*start)(void *arg, const char *name, dkim_lookup_done *done, void *token);
	void (*cancel)(void *arg, void *handle);
	void *arg;
};

/* Through dns_txt() on the resolver's event loop. */
void dkim_lookup_dns(struct dkim_lookup *, struct dns_resolver *);
/* A fixed table: pairs of (name, record) strings, then NULL; the table must outlive its use.
 * A name not in it is NOTFOUND; a record that is NULL answers TEMPFAIL. Answers at once. */
void dkim_lookup_table(struct dkim_lookup *, const char *const *pairs);

/* ---- Verification ---- */

/* RFC 8601 §2.7.1 result keywords. */
enum dkim_result {
	DKIM_RESULT_NONE,      /* the message carries no signature */
	DKIM_RESULT_PASS,      /* verified */
	DKIM_RESULT_FAIL,      /* well-formed but did not verify: body hash, signature, expired */
	DKIM_RESULT_POLICY,    /* (not produced: no local signature policy yet) */
	DKIM_RESULT_NEUTRAL,   /* not evaluated: over DKIM_VERIFY_SIGNATURES_MAX */
	DKIM_RESULT_TEMPERROR, /* the key could not be fetched now */
	DKIM_RESULT_PERMERROR, /* malformed signature or key record, no key, revoked key,
	                          rsa-sha1 (RFC 8301), unknown algorithm, key too short */
};

const char *dkim_result_name(enum dkim_result); /* "pass", "fail", … */

struct dkim_sig_result {
	enum dkim_result result;
	char reason[160];                     /* "body hash did not verify", … */
	char domain[DNS_NAME_MAX + 1];        /* d=, "" if unreadable */
	char selector[DKIM_SELECTOR_MAX + 1]; /* s= */
	char identity[DKIM_IDENTITY_MAX + 1]; /* i=, or "@" d= */
	char algorithm[24];                   /* a= as written */
	char b[9];                            /* the first 8 characters of b= (RFC 6008) */
	unsigned key_bits;                    /* when the key was read */
	bool testing;                         /* the key record says t=y */
};

struct dkim_results {
	size_t n; /* 0: no signature (dkim=none) */
	const struct dkim_sig_result *sigs;
};

struct dkim_verify_options {
	unsigned max_signatures; /* 0: DKIM_VERIFY_SIGNATURES_MAX */
	uint64_t now_s;          /* 0: the clock */
	int clock_skew_s;        /* 0: DKIM_VERIFY_CLOCK_SKEW_S; -1: none */
};

struct dkim_verify;
typedef void dkim_verify_cb(void *arg, const struct dkim_results *);

/* Key lookups start as soon as the header section is complete, while the body still
 * arrives. opts may be NULL. The lookup is copied. */
struct dkim_verify *dkim_verify_new(const struct dkim_lookup *, const struct dkim_verify_options *);
void dkim_verify_update(struct dkim_verify *, const void *data, size_t len);
/* End of message: cb gets every signature's result, top to bottom, once every key has
 * answered: before dkim_verify_final() returns if none is outstanding (no signature, a
 * table lookup), else later from the lookup's event loop. The results live until
 * dkim_verify_free(), which may be called from cb. */
void dkim_verify_final(struct dkim_verify *, dkim_verify_cb *cb, void *arg);
/* Cancels lookups in flight: cb will not run. */
void dkim_verify_free(struct dkim_verify *);

/* One RFC 8601 resinfo for a signature: "dkim=pass (2048-bit rsa key) header.d=example.com
 * header.i=@example.com header.s=sel header.a=rsa-sha256 header.b=\"AbCd/EfG\"", with
 * reason="…" unless pass. free() it. */
char *dkim_resinfo(const struct dkim_sig_result *);
/* "Authentication-Results: authserv-id; dkim=…; dkim=…\r\n" (dkim=none without signature),
 * folded, CRLF-terminated. free() it. */
char *dkim_auth_results(const char *authserv_id, const struct dkim_results *);

/* ==== Authentication-Results (RFC 8601), shared by DKIM, SPF and DMARC ==== */

/* "Authentication-Results: authserv-id;" then the resinfos separated by ";", each on its
 * own line when they do not fit ("none" if n is 0), folded at spaces, ending in CRLF. */
char *auth_results_header(const char *authserv_id, const char *const *resinfo, size_t n);

/* ==== SPF (RFC 7208) and Sender ID (RFC 4406/4407) ==== */

/* One engine, check_host() of RFC 7208 §4, for three identities (scopes): the MAIL FROM
 * address (mfrom; the null sender is checked as postmaster@HELO), the HELO name (helo), and
 * Sender ID's Purported Responsible Address (pra: spf2.0/pra records first, else v=spf1).
 *
 * DNS goes through a struct spf_dns, a small table of asynchronous lookups: the DNS one
 * (spf_dns_use_resolver) on a resolver, and others (tests: the conformance suite's zones in
 * memory). A check is single-threaded: it runs on the loop of its spf_dns. */

/* ---- Limits (RFC 7208 §4.6.4, with the RFC's values) ---- */

/* include, a, mx, ptr, exists and redirect evaluated per check, includes included (counted as
 * they are evaluated: terms after a match cost nothing); one more is a permerror. */
#define SPF_DNS_MECHANISMS_MAX 10
/* DNS mechanisms answered NXDOMAIN or with no records; one more is a permerror. */
#define SPF_VOID_LOOKUPS_MAX 2
/* The MX names of one mx mechanism; more is a permerror. */
#define SPF_MX_NAMES_MAX 10
/* The PTR names ptr and %{p} look at; those past it are ignored. */
#define SPF_PTR_NAMES_MAX 10
/* §4.6.4: "MTAs or other processors SHOULD impose a limit on the maximum amount of elapsed
 * time to evaluate check_host(). Such a limit SHOULD allow at least 20 seconds." Over it, the
 * result is temperror. Only with an event loop (struct spf_dns.base). */
#define SPF_CHECK_TIMEOUT_MS 20000
/* A macro expansion (a target name before its §7.3 truncation to 253 octets, an explanation)
 * longer than this is a permerror (for an explanation: the default one is given instead). No
 * sane record needs a tenth of it. */
#define SPF_EXPANSION_MAX 8192
/* An identity (sender address, HELO name) longer than this gives none, "malformed": SMTP
 * limits a path to 256 octets (RFC 5321 §4.5.3.1.3). */
#define SPF_IDENTITY_MAX 1024
/* The explanation given with fail when the domain publishes none (exp=), a macro-string. */
#define SPF_DEFAULT_EXPLANATION "%{d} does not designate %{c} as permitted sender"

enum spf_result {
	SPF_NONE,      /* no record, or no valid domain to check */
	SPF_NEUTRAL,   /* ?all, or no mechanism matched */
	SPF_PASS,      /* the client is authorized */
	SPF_FAIL,      /* explicitly not authorized (with an explanation) */
	SPF_SOFTFAIL,  /* probably not authorized */
	SPF_TEMPERROR, /* a DNS error: try again later */
	SPF_PERMERROR, /* the published records cannot be interpreted, or exceed the limits */
};

enum spf_scope {
	SPF_SCOPE_MFROM, /* RFC 7208 §2.4: MAIL FROM, v=spf1 records */
	SPF_SCOPE_HELO,  /* RFC 7208 §2.3: the HELO/EHLO name, v=spf1 records */
	SPF_SCOPE_PRA,   /* RFC 4406: the PRA (senderid_pra()), spf2.0/pra then v=spf1 */
};

/* "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror" (RFC 8601). */
const char *spf_result_name(enum spf_result);
/* "mfrom", "helo", "pra"; and back (0 or -1). */
const char *spf_scope_name(enum spf_scope);
int spf_scope_parse(const char *name, enum spf_scope *);

/* ---- DNS for SPF ----
 *
 * Each lookup calls cb exactly once: before it returns (then it returns NULL) or later from
 * the event loop (then it returns a handle that cancel() accepts until cb runs). The answer
 * and all it points to are valid only during cb. */

enum spf_dns_status {
	SPF_DNS_OK,       /* n records (n may be 0: the same as NODATA) */
	SPF_DNS_NODATA,   /* the name exists without records of the type */
	SPF_DNS_NXDOMAIN, /* the name does not exist, or is not a name the DNS can carry */
	SPF_DNS_TEMPFAIL, /* SERVFAIL, timeout, ...: the check is a temperror */
};

struct spf_dns_txt {
	const char *data; /* the record's character-strings joined (RFC 7208 §3.3) */
	size_t len;       /* data may hold any octet, NUL included */
};

struct spf_dns_answer {
	enum spf_dns_status status;
	const char *error; /* unless OK: why, for the reason ("SERVFAIL", "timed out") */
	size_t n;
	const struct spf_dns_txt *txt;   /* txt() */
	const struct dns_address *addrs; /* a() (AF_INET), aaaa() (AF_INET6) */
	const char *const *names;        /* mx() hosts, ptr() names: text, any order */
};

typedef void spf_dns_cb(void *arg, const struct spf_dns_answer *);

struct spf_dns {
	void *ctx;
	void *(*txt)(void *ctx, const char *name, spf_dns_cb *, void *arg);
	void *(*a)(void *ctx, const char *name, spf_dns_cb *, void *arg);
	void *(*aaaa)(void *ctx, const char *name, spf_dns_cb *, void *arg);
	void *(*mx)(void *ctx, const char *name, spf_dns_cb *, void *arg);
	void *(*ptr)(void *ctx, const struct dns_address *ip, spf_dns_cb *, void *arg);
	void (*cancel)(void *ctx, void *handle);
	/* If set, a check's result is delivered from this loop, never from inside
	 * spf_check_start(). NULL: as soon as known, which may be inside the call. */
	struct event_base *base;
};

/* Lookups through the resolver (dns_txt, dns_rr for A, AAAA, MX and PTR: every record, no
 * implicit MX, no shuffle), results delivered from base, the resolver's loop. */
void spf_dns_use_resolver(struct spf_dns *, struct dns_resolver *, struct event_base *base);

/* ---- Checking ---- */

struct spf_request {
	enum spf_scope scope;
	struct dns_address ip; /* the SMTP client; IPv4-mapped IPv6 is checked as IPv4 */
	const char *sender;    /* mfrom: MAIL FROM ("" or NULL: null sender); pra: the PRA */
	const char *helo;      /* the HELO/EHLO name (%{h}; the identity of the helo scope) */
	const char *receiver;  /* %{r} in explanations: this host's name; NULL: "unknown" */
	int64_t now;           /* %{t}: seconds since the epoch; 0: the clock */
	unsigned timeout_ms;   /* the whole check; 0: SPF_CHECK_TIMEOUT_MS */
};

struct spf_outcome {
	enum spf_result result;
	const char *scope;        /* "mfrom", "helo", "pra" */
	const char *identity;     /* the address checked: "postmaster@helo" for a null sender */
	const char *domain;       /* the domain whose policy decided, or the identity's domain */
	const char *mechanism;    /* the term that matched ("-all", "include:x"), else NULL */
	const char *explanation;  /* fail: the domain's exp= text or SPF_DEFAULT_EXPLANATION */
	bool default_explanation; /* fail: the domain gave no (usable) exp= */
	const char *reason;       /* always: why, for logs and people */
};

struct spf_check;
typedef void spf_check_cb(void *arg, const struct spf_outcome *);

/* Starts check_host() for the request (copied) through dns (copied). cb runs exactly once,
 * with an outcome valid during the call. Returns a handle for spf_check_cancel(), valid until
 * cb returns; NULL if cb already ran (only when dns->base is NULL). */
struct spf_check *spf_check_start(const struct spf_dns *, const struct spf_request *,
                                  spf_check_cb *cb, void *arg);
/* Stops a check: cb will not run. Lookups in flight are cancelled. */
void spf_check_cancel(struct spf_check *);

/* The RFC 8601 resinfo of an outcome: "spf=pass smtp.mailfrom=user@example.com" (helo scope:
 * smtp.helo=NAME; pra scope: "sender-id=pass header.FIELD=ADDRESS", FIELD the lower-cased
 * name of the field the PRA came from, pra_field, "from" if NULL), with reason="..." unless
 * pass. free() it. */
char *spf_resinfo(const struct spf_outcome *, const char *pra_field);

/* ---- The pure parts (bounded for any input: they are fuzzed) ---- */

/* A client address: "192.0.2.1", "2001:db8::1", "::ffff:192.0.2.1". 0 or -1. */
int spf_ip_parse(const char *text, struct dns_address *);

/* Checks a TXT record: is it an SPF record ("v=spf1" or "spf2.0/scopes", then a space or its
 * end, case-insensitively), and is every term valid (§4.6, §12)? 1: a valid SPF record, 0:
 * not an SPF record, -1: an SPF record with an error, described in err (what, and where:
 * "term 3 \"ip4:1.2.3\": ..."). Preflight uses it to say what to fix. */
int spf_record_check(const char *text, size_t len, char *err, size_t errlen);

/* What the macros of §7.3 stand for. NULL strings expand to "". */
struct spf_macro_vars {
	const char *sender;        /* s: local-part@domain */
	const char *local;         /* l */
	const char *sender_domain; /* o */
	const char *domain;        /* d: the current domain */
	struct dns_address ip;     /* i, c, v */
	const char *ptr;           /* p: the validated name of ip; NULL: "unknown" */
	const char *helo;          /* h */
	const char *receiver;      /* r; NULL: "unknown" */
	int64_t now;               /* t */
};

#define SPF_MACRO_EXPLAIN 0x1 /* explanation text: spaces, and the letters c, r, t allowed */
/* A target name: a trailing dot dropped, then labels removed from the left until at most 253
 * octets remain (§7.3). */
#define SPF_MACRO_DOMAIN 0x2

/* Expands a macro-string (§7) into out (outsize bytes, NUL-terminated): transformers, reversal,
 * delimiters, URL-escaping of upper-case macros (%{L}). Returns the length, or -1 with the
 * reason in err: a syntax error (§7.1: '%' not followed by '{', '%', '_' or '-', an unknown
 * letter, c/r/t outside an explanation, a zero part count), or an expansion that does not fit
 * outsize - 1 octets. */
ssize_t spf_macro_expand(const char *text, size_t len, unsigned flags,
                         const struct spf_macro_vars *, char *out, size_t outsize, char *err,
                         size_t errlen);

/* ---- Sender ID's Purported Responsible Address (RFC 4407 §2) ---- */

#define SENDERID_PRA_MAX 512 /* local-part "@" domain, as kept */

struct senderid_pra {
	char address[SENDERID_PRA_MAX + 1]; /* local-part@domain, comments and display name gone */
	char header[16];                    /* "Resent-Sender", "Resent-From", "Sender", "From" */
};

/* Finds the PRA in a header section (fields up to the first empty line or the end of the
 * buffer; CRLF or LF line ends; folded fields unfolded): the first non-empty Resent-Sender
 * (unless a Resent-From above it is separated from it by Received or Return-Path fields), else
 * the first non-empty Resent-From, else the only non-empty Sender, else the only non-empty From;
 * that field must hold exactly one mailbox with a domain. 0, or -1 if the message has no PRA
 * (RFC 4407 §2 step 6: several Sender or From fields, several mailboxes, a group, no domain, a
 * domain literal, malformed), with the reason in err. Sender ID then gives permerror. */
int senderid_pra(const char *headers, size_t len, struct senderid_pra *, char *err, size_t errlen);

/* ---- `drover spf` ----
 *
 * drover spf --ip IP --sender ADDRESS --helo NAME [--scope mfrom|helo|pra] [--message FILE]
 *            [--dns IP[@PORT]]... [--timeout MS] [--receiver NAME]
 *
 * argv[0] is "spf". Prints the result keyword on the first line, then "explanation: ..."
 * (fail), "mechanism: ..." (when one matched), "identity: ...", "domain: ..." and
 * "reason: ...". --scope pra takes the PRA from
 * the header section of --message FILE when given, else --sender. Exit status 0 when a result
 * was printed (whatever it is), 2 for a usage error, 1 if the resolver cannot start. */
int spf_cli(int argc, char **argv);

/* ==== DMARC (RFC 7489) ====
 *
 * Whether the author's domain (the RFC5322.From domain) is authenticated by an SPF or DKIM
 * pass for an aligned domain, and what its owner asks receivers to do when it is not.
 *
 *   psl = dmarc_psl_load(NULL, err, sizeof(err));           // once; shared by every thread
 *   dmarc_from_domain(headers, len, from, err, sizeof(err)); // exactly one From, one domain
 *   dmarc_policy_lookup(&lookup, psl, from, on_policy, arg); // as soon as the headers are in
 *   dmarc_evaluate(psl, &policy, &req, &outcome);            // once SPF and DKIM have answered
 *   resinfo = dmarc_resinfo(&outcome);                       // for auth_results_header()
 *
 * or dmarc_check_start(), which looks the policy up and evaluates it in one go. Policy
 * records are TXT records looked up through a struct dkim_lookup (dkim_lookup_dns() on the
 * loop's resolver, or dmarc_lookup_table()), so a lookup runs on the loop of its resolver.
 * Nothing here sends reports (rua=, ruf= are parsed and kept, not used). */

/* rua= and ruf= as kept in a struct dmarc_record, for people and logs: longer values are cut. */
#define DMARC_URIS_TEXT_MAX 255
/* §6.3 defaults. */
#define DMARC_PCT_DEFAULT 100
#define DMARC_RI_DEFAULT  86400

/* RFC 8601 / RFC 7489 §11.2 result keywords. */
enum dmarc_result {
	DMARC_NONE,      /* no policy record (or several, §6.6.3) for the From domain */
	DMARC_PASS,      /* an aligned identifier passed SPF or DKIM */
	DMARC_FAIL,      /* a policy exists and no aligned identifier passed */
	DMARC_TEMPERROR, /* a policy lookup failed for now (SERVFAIL, timeout) */
	DMARC_PERMERROR, /* the policy record is malformed, or the message has no usable From */
};

/* p= and sp=, and the disposition applied (§6.6.4, pct= included). */
enum dmarc_p {
	DMARC_P_NONE,
	DMARC_P_QUARANTINE,
	DMARC_P_REJECT,
};

/* adkim= and aspf= (§3.1.1, §3.1.2). */
enum dmarc_align {
	DMARC_ALIGN_RELAXED, /* the same organizational domain */
	DMARC_ALIGN_STRICT,  /* the same domain */
};

const char *dmarc_result_name(enum dmarc_result); /* "none", "pass", "fail", … */
const char *dmarc_p_name(enum dmarc_p);           /* "none", "quarantine", "reject" */

/* fo= options (§6.3): when to send failure reports. */
#define DMARC_FO_0 0x1 /* "0": SPF and DKIM both failed to give an aligned pass (the default) */
#define DMARC_FO_1 0x2 /* "1": either did */
#define DMARC_FO_D 0x4 /* "d": a DKIM signature failed */
#define DMARC_FO_S 0x8 /* "s": SPF failed */

/* ---- Policy records (§6.3, §6.4) ---- */

struct dmarc_record {
	enum dmarc_p p;
	enum dmarc_p sp;        /* p when sp= is absent */
	bool sp_given;          /* sp= was present */
	enum dmarc_align adkim; /* relaxed when absent */
	enum dmarc_align aspf;  /* relaxed when absent */
	unsigned pct;           /* 0-100; DMARC_PCT_DEFAULT when absent */
	uint32_t ri;            /* seconds; DMARC_RI_DEFAULT when absent */
	unsigned fo;            /* DMARC_FO_* bits; DMARC_FO_0 when absent */
	bool rf_afrf;           /* rf= lists afrf, the one format defined (true when absent) */
	bool p_fallback;        /* p= missing or invalid, or sp= invalid: read as p=none (and
	                           sp=none) because rua= holds a valid URI (§6.6.3) */
	unsigned nrua, nruf;    /* URIs in rua= and ruf= (each syntactically valid) */
	char rua[DMARC_URIS_TEXT_MAX + 1]; /* as written, cut to DMARC_URIS_TEXT_MAX */
	char ruf[DMARC_URIS_TEXT_MAX + 1];
};

/* Reads a TXT record (any octets, len of them). 1: a valid DMARC record, in *rec; err is ""
 * or, with p_fallback, says why p=none was assumed. 0: not a DMARC record (it does not start
 * with "v=DMARC1" followed by ";", white space or its end: §6.6.3 ignores it). -1: a DMARC
 * record with an error, described in err with the tag at fault ("tag \"p=rejct\": p= must be
 * none, quarantine or reject"). Strict: v= first and exactly "DMARC1"; p= required (or the
 * rua= fallback); every known tag valid (§6.4 grammar, pct 0-100, ri within 32 bits, URIs as in
 * RFC 3986 with an optional "!size"), at most once; unknown tags and empty tag-specs ignored.
 * Preflight uses it to say what to fix. err may be NULL. */
int dmarc_record_parse(const char *text, size_t len, struct dmarc_record *rec, char *err,
                       size_t errlen);

/* ---- The Public Suffix List and the organizational domain (§3.2) ----
 *
 * Read-only once loaded: one struct dmarc_psl may serve every thread at once. To pick up a
 * newer list, load another and free the old one when no check uses it any more. */

struct dmarc_psl;

/* path NULL: libpsl's psl_latest(NULL), the newer of the distribution's list (Debian's
 * publicsuffix package, /usr/share/publicsuffix/) and the one built into libpsl, else the
 * built-in one. path set: that file (public_suffix_list.dat or a .dafsa). NULL with the reason
 * in err if no list could be loaded. It reads a file: at startup or reload, not on a loop. */
struct dmarc_psl *dmarc_psl_load(const char *path, char *err, size_t errlen);
void dmarc_psl_free(struct dmarc_psl *);
/* Where the list came from: its file name, or "libpsl built-in list (YYYY-MM-DD)". */
const char *dmarc_psl_source(const struct dmarc_psl *);

/* The organizational domain of a domain name (lower-cased, any trailing dot dropped): the
 * public suffix plus one label ("mail.example.co.uk" -> "example.co.uk"); a public suffix is
 * its own ("co.uk" -> "co.uk"). 0, or -1 if domain is not a domain name (labels of letters,
 * digits, '-', '_', of 1-63 octets, 253 at most). */
int dmarc_org_domain(const struct dmarc_psl *, const char *domain, char out[DNS_NAME_MAX + 1]);
/* Identifier alignment (§3.1): strict, the same name; relaxed, the same organizational
 * domain. Case-insensitive, trailing dots ignored; false if either is not a domain name. */
bool dmarc_aligned(const struct dmarc_psl *, enum dmarc_align, const char *from_domain,
                   const char *domain);

/* ---- The author domain (§6.6.1) ---- */

/* The From domain of a header section (fields up to the first empty line or the end of the
 * buffer, CRLF or LF line ends, folded fields read whole), lower-cased into out. DMARC applies
 * only to a message with exactly one From field whose mailboxes (one or more, groups read
 * through) are all in one domain. 0, or -1 with why in err: no From field, several, no
 * mailbox, a mailbox without a domain or with a domain literal, not a domain name (U-labels
 * included), several domains (RFC 7489 would evaluate each; Drover refuses the message's
 * DMARC instead), malformed (an unterminated quoted string, comment or angle address, a
 * mailbox with several '@' outside quotes: obs-route included). err may be NULL. */
int dmarc_from_domain(const char *headers, size_t len, char out[DNS_NAME_MAX + 1], char *err,
                      size_t errlen);

/* ---- Policy discovery (§6.6.3) ----
 *
 * _dmarc.<From domain> first; if it holds no DMARC record (NXDOMAIN, no TXT, no record
 * starting with v=DMARC1), _dmarc.<organizational domain>, whose sp= then applies. Several
 * DMARC records at the name asked: none (no fallback). A lookup that fails: temperror. A
 * malformed record: permerror. */

enum dmarc_discovery {
	DMARC_FOUND,    /* record holds the policy: evaluate it */
	DMARC_ABSENT,   /* no record, or several: dmarc=none */
	DMARC_TEMPFAIL, /* a lookup failed: dmarc=temperror */
	DMARC_INVALID,  /* the record is malformed, or from_domain is not a domain name:
	                   dmarc=permerror */
};

/* A plain value: copy it to keep it. */
struct dmarc_policy {
	enum dmarc_discovery status;
	char from_domain[DNS_NAME_MAX + 1]; /* lower-cased */
	char org_domain[DNS_NAME_MAX + 1];  /* of from_domain ("" if not a domain name) */
	char domain[DNS_NAME_MAX + 1];      /* where the record was found, or "" */
	bool subdomain;                     /* found at org_domain for a From below it: sp= */
	struct dmarc_record record;         /* DMARC_FOUND */
	char reason[384]; /* always, for logs and people: where the record was found, or why
	                     there is none ("no DMARC record at _dmarc.example.com") */
};

/* Like dkim_lookup_table(), and a name listed several times answers all its records (to test
 * the several-records rule). The table must outlive its use. Answers at once. */
void dmarc_lookup_table(struct dkim_lookup *, const char *const *pairs);

struct dmarc_check;
typedef void dmarc_policy_cb(void *arg, const struct dmarc_policy *);

/* Starts discovery for from_domain through lookup (copied); psl must outlive the lookup. cb
 * runs exactly once with a policy valid during the call: before this returns (then it returns
 * NULL: a table lookup, a from_domain that is not a domain name) or later from the lookup's
 * event loop (then it returns a handle for dmarc_check_cancel(), valid until cb returns). */
struct dmarc_check *dmarc_policy_lookup(const struct dkim_lookup *, const struct dmarc_psl *,
                                        const char *from_domain, dmarc_policy_cb *cb, void *arg);

/* ---- Evaluation (§6.6.2, §6.6.4) ---- */

/* What authenticated the message. */
struct dmarc_request {
	enum spf_result spf;    /* the SPF result of MAIL FROM (RFC 7208 checks a null sender as
	                           postmaster@HELO, so this is the HELO's result then) */
	const char *spf_domain; /* the domain SPF checked: MAIL FROM's, or the HELO name for a
	                           null sender (dmarc_spf_domain()); NULL: no SPF result */
	const struct dkim_results *dkim; /* every signature's result; NULL: not verified */
	/* pct= sampling (§6.6.4), from the caller's random source so that tests can fix it: the
	 * policy applies when pct_roll <= pct. 1-100; 0: drawn here from getrandom(2). */
	unsigned pct_roll;
};

/* The domain of an SPF outcome's identity (the mfrom and helo scopes), the one DMARC aligns:
 * a pointer into o->identity, valid as long as it is; NULL for the pra scope. */
const char *dmarc_spf_domain(const struct spf_outcome *o);

/* A plain value: copy it to keep it. */
struct dmarc_outcome {
	enum dmarc_result result;
	/* What the domain asks for: p=, or sp= for a subdomain; none without a record. */
	enum dmarc_p policy;
	/* What to do (§6.6.4): none on pass; on fail the policy, or, for a message pct= leaves
	 * out, the next one down (reject -> quarantine -> none). */
	enum dmarc_p disposition;
	unsigned pct;      /* of the record (100 without one) */
	bool subdomain;    /* sp= applied */
	bool spf_aligned;  /* SPF passed for an aligned domain */
	bool dkim_aligned; /* a DKIM signature passed for an aligned d= */
	char from_domain[DNS_NAME_MAX + 1];
	char policy_domain[DNS_NAME_MAX + 1]; /* where the record was found, or "" */
	char dkim_domain[DNS_NAME_MAX + 1];   /* the first aligned passing d=, or "" */
	char spf_domain[DNS_NAME_MAX + 1];    /* the SPF domain if aligned and passing, or "" */
	char record_p[12];                    /* the record's p= for resinfo ("" without one) */
	char reason[384];                     /* always: what aligned, or what did not and why */
};

/* Pure: no DNS, no allocation (only getrandom(2), for a fail when req->pct_roll is 0). */
void dmarc_evaluate(const struct dmarc_psl *, const struct dmarc_policy *,
                    const struct dmarc_request *, struct dmarc_outcome *);

typedef void dmarc_check_cb(void *arg, const struct dmarc_outcome *);

/* dmarc_policy_lookup(), then dmarc_evaluate() with req (copied, DKIM results included). cb
 * as dmarc_policy_lookup()'s: exactly once, before this returns (then NULL) or later. */
struct dmarc_check *dmarc_check_start(const struct dkim_lookup *, const struct dmarc_psl *,
                                      const char *from_domain, const struct dmarc_request *req,
                                      dmarc_check_cb *cb, void *arg);
/* Stops a lookup or check: its callback will not run. A no-op from inside the callback. */
void dmarc_check_cancel(struct dmarc_check *);

/* The RFC 8601 resinfo (RFC 7489 §11.2): "dmarc=pass (p=reject dis=none)
 * header.from=example.com"; the comment, with a record, gives p=, sp= when it applied, pct=
 * when under 100, and the disposition; reason="..." unless pass. free() it. */
char *dmarc_resinfo(const struct dmarc_outcome *);

#endif
