/* dkim_internal.h - what the DKIM files share: a byte buffer, base64, the message reader
 * (header section kept, body streamed), canonicalization, tag-list parsing, the parsed forms
 * of a DKIM-Signature and of a key record, and the key material a signer holds on to.
 * Private to src/auth (tests and the fuzz target include it to reach the pure parts). */
#ifndef DROVER_AUTH_DKIM_INTERNAL_H
#define DROVER_AUTH_DKIM_INTERNAL_H

#include <stdatomic.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "auth/auth.h"

#define DKIM_HASH_LEN 32 /* SHA-256 */
/* b= of the largest RSA key a verifier accepts (RFC 8301: 4096 bits), with room to spare. */
#define DKIM_SIG_BYTES_MAX 1024
/* Tags in one tag-list (a DKIM-Signature has 14 kinds; a key record 7). */
#define DKIM_TAGS_MAX 64
/* Names in one h= (over-signed lists of every List-* field reach 60). */
#define DKIM_SIG_HEADERS_MAX 256

/* ---- A growing byte buffer ---- */

struct dbuf {
	char *p;
	size_t len, cap;
};

void dbuf_add(struct dbuf *, const void *, size_t);
void dbuf_addc(struct dbuf *, char);
void dbuf_adds(struct dbuf *, const char *);
void dbuf_printf(struct dbuf *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dbuf_free(struct dbuf *);
/* The contents as a NUL-terminated string, handed over to the caller; the buffer is emptied. */
char *dbuf_steal(struct dbuf *);

/* ---- base64 (RFC 4648 §4) ---- */

#define B64_LEN(n) (((n) + 2) / 3 * 4)
/* Writes B64_LEN(len) characters and a NUL; returns the characters written. */
size_t b64_encode(const unsigned char *in, size_t len, char *out);
/* Skips white space (FWS may fold a base64 value anywhere). Returns the octets decoded, or -1
 * if malformed (other characters, bad padding, data after padding) or longer than size. */
ssize_t b64_decode(const char *in, size_t len, unsigned char *out, size_t size);

/* ---- Small text helpers ---- */

static inline bool
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static inline char
ascii_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

bool ascii_caseeq(const char *a, size_t alen, const char *b, size_t blen);
/* Letters, digits, '-' and '_' in dot-separated labels of 1-63 octets, 253 at most. */
bool dkim_domain_valid(const char *, size_t);

/* ---- The message: header section kept, body passed on ---- */

struct dkim_field {
	size_t off, len; /* the field as received, without its final line end */
	size_t namelen;  /* the name (white space before the colon trimmed); 0: no colon */
	uint32_t hash;   /* of the name, lower-cased (name_hash) */
};

struct dkim_msg {
	struct dbuf hdr; /* the header section, without the blank line that ends it */
	bool bol, crbol; /* at the beginning of a line; a CR there, the blank line perhaps */
	bool done;       /* the header section is complete */
	bool overflow;   /* it went over DKIM_HEADERS_MAX (the rest was not kept) */
	struct dkim_field *fields;
	size_t nfields;
};

void dkim_msg_init(struct dkim_msg *);
void dkim_msg_free(struct dkim_msg *);
/* Takes header octets from data; returns how many it took. Once it returns less than len
 * (or len when the header section ended exactly there), m->done is set and the rest is body. */
size_t dkim_msg_headers(struct dkim_msg *, const char *data, size_t len);
/* End of the header section: at the blank line, or at the end of a message without one
 * (no body). Splits the fields. */
void dkim_msg_end_headers(struct dkim_msg *);
/* A field name's hash, case-insensitive: the first test when looking fields up by name, so
 * that a header section of many thousands of short fields costs little to search. */
uint32_t dkim_name_hash(const char *name, size_t len);
bool dkim_field_is(const struct dkim_msg *, const struct dkim_field *, const char *name);
/* How many fields have that name. */
size_t dkim_msg_count(const struct dkim_msg *, const char *name);
/* The value of a field: what follows the colon. */
const char *dkim_field_value(const struct dkim_msg *, const struct dkim_field *, size_t *len);
/* For each name in order, the last field of that name not yet taken (RFC 6376 §5.4.2),
 * canonicalized into out, CRLF-terminated; a name with none left adds nothing. */
void dkim_msg_select(const struct dkim_msg *, const char *const *names, size_t n, enum dkim_canon,
                     struct dbuf *out);

/* ---- Canonicalization (RFC 6376 §3.4) ---- */

/* A header field as received (name, colon, value with its folding, no final line end) in
 * canonical form; crlf: end it with CRLF (not for the DKIM-Signature being checked). */
void dkim_canon_header(enum dkim_canon, const char *field, size_t len, bool crlf, struct dbuf *out);

/* The body, canonicalized and hashed as it streams (any split), up to limit canonical
 * octets (l=). capture, if set, also gets the canonical octets (tests). */
struct dkim_body {
	enum dkim_canon canon;
	EVP_MD_CTX *md;
	uint64_t limit;  /* UINT64_MAX: all */
	uint64_t total;  /* canonical octets produced, hashed or not */
	uint64_t blanks; /* line ends held back: they count only if content follows */
	bool cr;         /* a CR, not yet known to start a CRLF */
	bool wsp;        /* relaxed: white space held back inside a line */
	bool inline_;    /* the current line has content */
	bool any;        /* content was ever produced */
	struct dbuf *capture;
	size_t outlen;
	unsigned char out[2048];
};

void dkim_body_init(struct dkim_body *, enum dkim_canon, uint64_t limit);
void dkim_body_update(struct dkim_body *, const char *data, size_t len);
void dkim_body_final(struct dkim_body *, unsigned char hash[DKIM_HASH_LEN]);
void dkim_body_free(struct dkim_body *);

/* ---- Tag lists (RFC 6376 §3.2) ---- */

struct dkim_tag {
	const char *name, *value; /* value without the white space around it */
	size_t namelen, valuelen;
	size_t raw_start, raw_end; /* the value with that white space, offsets in the input */
};

/* Splits s into tags. 0, or -1 with why: no "=", bad name, duplicate, empty tag, a control
 * character, too many tags. */
int dkim_tags_parse(const char *s, size_t len, struct dkim_tag *tags, size_t max, size_t *n,
                    const char **why);

/* ---- A DKIM-Signature, parsed ---- */

struct dkim_sig {
	enum dkim_algorithm alg;
	enum dkim_canon hcanon, bcanon;
	char domain[DNS_NAME_MAX + 1];
	char selector[DKIM_SELECTOR_MAX + 1];
	char identity[DKIM_IDENTITY_MAX + 1]; /* i=, or "@" d= */
	char algorithm[24];                   /* a= as written, for results */
	char bprefix[9];
	unsigned char b[DKIM_SIG_BYTES_MAX];
	size_t blen;
	unsigned char bh[DKIM_HASH_LEN];
	char *hbuf; /* the h= names, NUL-separated */
	const char **h;
	size_t nh;
	uint64_t t, x, l;
	bool has_t, has_x, has_l;
	size_t b_start, b_end; /* b='s value with its white space, offsets in the field */
};

/* field: the whole DKIM-Signature field as received. 0, or -1 with a reason in why; domain,
 * selector, identity, algorithm and bprefix are filled as far as they could be read either
 * way (for the result). dkim_sig_free() in both cases. */
int dkim_sig_parse(const char *field, size_t len, struct dkim_sig *, char *why, size_t whylen);
void dkim_sig_free(struct dkim_sig *);

/* ---- A key record (RFC 6376 §3.6.1, RFC 8463 §4), parsed ---- */

struct dkim_keyrec {
	enum dkim_algorithm alg; /* k= */
	EVP_PKEY *pkey;          /* NULL when revoked */
	bool revoked;            /* p= empty */
	bool testing;            /* t=y */
	bool strict;             /* t=s: i= must be in d= itself, not a subdomain */
	unsigned bits;
};

/* 0, or -1 with why (unknown v=, k=, h= without sha256, s= not for email, p= malformed or not
 * a key of type k=). */
int dkim_keyrec_parse(const char *txt, size_t len, struct dkim_keyrec *, char *why, size_t whylen);
void dkim_keyrec_free(struct dkim_keyrec *);

/* ---- Key material ---- */

/* What a reload replaces: immutable once loaded, shared by the signatures in progress. */
struct dkim_keydata {
	atomic_uint refs;
	EVP_PKEY *pkey;
	enum dkim_algorithm alg;
	unsigned bits;
};

/* A reference to the key's current material, for one message. */
struct dkim_keydata *dkim_key_acquire(struct dkim_key *);
void dkim_keydata_release(struct dkim_keydata *);
/* Reads and checks a PEM private key (for dkim_key_load and dkim_key_reload). */
struct dkim_keydata *dkim_keydata_load(const char *path, char *err, size_t errlen);
/* "v=DKIM1; k=…; p=…" for a key (public or private). NULL on a crypto error. */
char *dkim_pkey_dns_record(EVP_PKEY *, enum dkim_algorithm);

/* The data signed: for rsa-sha256 the canonical headers themselves (EVP hashes them), for
 * ed25519-sha256 their SHA-256 (RFC 8463 §3: PureEdDSA over the hash). 0 or -1. */
int dkim_crypto_sign(EVP_PKEY *, enum dkim_algorithm, const struct dbuf *headers,
                     unsigned char *sig, size_t *siglen);
int dkim_crypto_verify(EVP_PKEY *, enum dkim_algorithm, const struct dbuf *headers,
                       const unsigned char *sig, size_t siglen);

#endif
