/* dkim_tags.c - tag lists (RFC 6376 §3.2) and the two things written in them: the
 * DKIM-Signature field (§3.5) and the key record (§3.6.1, RFC 8463 §4).
 *
 * Whatever a message or a zone says is read with bounded work and checked before use; a
 * problem becomes the reason of a permerror, never a crash or a guess. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

static bool
is_fws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int
dkim_tags_parse(const char *s, size_t len, struct dkim_tag *tags, size_t max, size_t *n,
                const char **why)
{
	size_t pos = 0, count = 0;

	*n = 0;
	for (;;) {
		const char *semi = memchr(s + pos, ';', len - pos);
		size_t end = semi ? (size_t)(semi - s) : len, a = pos, b = end, eq, ne, va, vb;

		while (a < b && is_fws(s[a]))
			a++;
		while (b > a && is_fws(s[b - 1]))
			b--;
		if (a == b) {
			if (semi == NULL)
				break; /* nothing after the last ";" (or nothing at all) */
			*why = "an empty tag";
			return -1;
		}
		for (eq = a; eq < b && s[eq] != '='; eq++)
			;
		if (eq == b) {
			*why = "a tag without \"=\"";
			return -1;
		}
		for (ne = eq; ne > a && is_fws(s[ne - 1]); ne--)
			;
		if (ne == a || !is_alpha(s[a])) {
			*why = "a tag name that does not start with a letter";
			return -1;
		}
		for (size_t i = a; i < ne; i++) {
			if (!is_alpha(s[i]) && !is_digit(s[i]) && s[i] != '_') {
				*why = "a tag name with other than letters, digits and \"_\"";
				return -1;
			}
		}
		for (va = eq + 1; va < b && is_fws(s[va]); va++)
			;
		vb = b;
		for (size_t i = va; i < vb; i++) {
			unsigned char c = (unsigned char)s[i];
			if ((c < 0x20 && !is_fws((char)c)) || c == 0x7f) {
				*why = "a control character in a tag value";
				return -1;
			}
		}
		for (size_t k = 0; k < count; k++) {
			if (tags[k].namelen == ne - a && memcmp(tags[k].name, s + a, ne - a) == 0) {
				*why = "a tag given twice";
				return -1;
			}
		}
		if (count == max) {
			*why = "too many tags";
			return -1;
		}
		tags[count++] = (struct dkim_tag){
		    .name = s + a,
		    .namelen = ne - a,
		    .value = s + va,
		    .valuelen = vb - va,
		    .raw_start = eq + 1,
		    .raw_end = end,
		};
		if (semi == NULL)
			break;
		pos = end + 1;
	}
	*n = count;
	return 0;
}

static const struct dkim_tag *
tag_find(const struct dkim_tag *tags, size_t n, const char *name)
{
	size_t len = strlen(name);

	for (size_t i = 0; i < n; i++)
		if (tags[i].namelen == len && memcmp(tags[i].name, name, len) == 0)
			return &tags[i];
	return NULL;
}

static bool
tag_is(const struct dkim_tag *t, const char *word)
{
	return t->valuelen == strlen(word) && memcmp(t->value, word, t->valuelen) == 0;
}

/* A value without any FWS in it, into a bounded string (truncated). */
static void
copy_value(const struct dkim_tag *t, char *out, size_t size)
{
	size_t o = 0;

	for (size_t i = 0; i < t->valuelen && o + 1 < size; i++)
		if (!is_fws(t->value[i]))
			out[o++] = t->value[i];
	out[o] = '\0';
}

/* Digits only (RFC 6376: 1*12DIGIT for times, 1*76DIGIT for l=), saturating. */
static int
number(const struct dkim_tag *t, uint64_t *v)
{
	*v = 0;
	if (t->valuelen == 0 || t->valuelen > 76)
		return -1;
	for (size_t i = 0; i < t->valuelen; i++) {
		if (!is_digit(t->value[i]))
			return -1;
		if (*v > (UINT64_MAX - 9) / 10)
			*v = UINT64_MAX;
		else
			*v = *v * 10 + (uint64_t)(t->value[i] - '0');
	}
	return 0;
}

/* Calls fn for each element of a colon-separated list, FWS trimmed; stops at a non-zero. */
static int
each_in_list(const char *s, size_t len, int (*fn)(void *, const char *, size_t), void *arg)
{
	size_t pos = 0;

	while (pos <= len) {
		const char *colon = memchr(s + pos, ':', len - pos);
		size_t end = colon ? (size_t)(colon - s) : len, a = pos, b = end;
		int rc;

		while (a < b && is_fws(s[a]))
			a++;
		while (b > a && is_fws(s[b - 1]))
			b--;
		if ((rc = fn(arg, s + a, b - a)) != 0)
			return rc;
		if (colon == NULL)
			break;
		pos = end + 1;
	}
	return 0;
}

static int
list_has(void *arg, const char *s, size_t len)
{
	const char *word = arg;

	return ascii_caseeq(s, len, word, strlen(word)) ? 1 : 0;
}

static bool
in_list(const struct dkim_tag *t, const char *word)
{
	return each_in_list(t->value, t->valuelen, list_has, (void *)word) == 1;
}

/* ---- DKIM-Signature ---- */

struct hlist {
	struct dkim_sig *sig;
	struct dbuf names;
	size_t count;
	bool bad, from;
};

static int
h_name(void *arg, const char *s, size_t len)
{
	struct hlist *h = arg;

	if (len == 0) {
		h->bad = true;
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f || c == ':') {
			h->bad = true;
			return -1;
		}
	}
	if (++h->count > DKIM_SIG_HEADERS_MAX) {
		h->bad = true;
		return -1;
	}
	if (ascii_caseeq(s, len, "from", 4))
		h->from = true;
	dbuf_add(&h->names, s, len);
	dbuf_addc(&h->names, '\0');
	return 0;
}

static void
why_set(char *why, size_t whylen, const char *fmt, const char *arg)
{
	snprintf(why, whylen, fmt, arg);
}

void
dkim_sig_free(struct dkim_sig *sig)
{
	free(sig->hbuf);
	free(sig->h);
	sig->hbuf = NULL;
	sig->h = NULL;
	sig->nh = 0;
}

int
dkim_sig_parse(const char *field, size_t len, struct dkim_sig *sig, char *why, size_t whylen)
{
	struct dkim_tag tags[DKIM_TAGS_MAX];
	const struct dkim_tag *v, *a, *b, *bh, *c, *d, *h, *i, *l, *q, *s, *t, *x;
	const char *colon = memchr(field, ':', len), *terr = NULL;
	size_t n, voff;
	char word[64];
	ssize_t got;

	memset(sig, 0, sizeof(*sig));
	if (colon == NULL) {
		why_set(why, whylen, "%s", "not a header field");
		return -1;
	}
	voff = (size_t)(colon + 1 - field);
	if (dkim_tags_parse(colon + 1, len - voff, tags, nitems(tags), &n, &terr) < 0) {
		why_set(why, whylen, "malformed signature: %s", terr);
		return -1;
	}
	v = tag_find(tags, n, "v");
	a = tag_find(tags, n, "a");
	b = tag_find(tags, n, "b");
	bh = tag_find(tags, n, "bh");
	c = tag_find(tags, n, "c");
	d = tag_find(tags, n, "d");
	h = tag_find(tags, n, "h");
	i = tag_find(tags, n, "i");
	l = tag_find(tags, n, "l");
	q = tag_find(tags, n, "q");
	s = tag_find(tags, n, "s");
	t = tag_find(tags, n, "t");
	x = tag_find(tags, n, "x");

	/* What the result reports, as far as it can be read. */
	if (d)
		copy_value(d, sig->domain, sizeof(sig->domain));
	if (s)
		copy_value(s, sig->selector, sizeof(sig->selector));
	if (a)
		copy_value(a, sig->algorithm, sizeof(sig->algorithm));
	if (b)
		copy_value(b, sig->bprefix, sizeof(sig->bprefix));
	if (i)
		copy_value(i, sig->identity, sizeof(sig->identity));
	else if (d)
		snprintf(sig->identity, sizeof(sig->identity), "@%s", sig->domain);

	if (v == NULL || a == NULL || b == NULL || bh == NULL || d == NULL || h == NULL ||
	    s == NULL) {
		why_set(why, whylen, "signature without %s=",
		        !v    ? "v"
		        : !a  ? "a"
		        : !b  ? "b"
		        : !bh ? "bh"
		        : !d  ? "d"
		        : !h  ? "h"
		              : "s");
		return -1;
	}
	if (!tag_is(v, "1")) {
		why_set(why, whylen, "%s", "signature version v= is not 1");
		return -1;
	}
	if (tag_is(a, "rsa-sha256"))
		sig->alg = DKIM_RSA_SHA256;
	else if (tag_is(a, "ed25519-sha256"))
		sig->alg = DKIM_ED25519_SHA256;
	else if (tag_is(a, "rsa-sha1")) {
		why_set(why, whylen, "%s", "rsa-sha1 is not accepted (RFC 8301)");
		return -1;
	} else {
		why_set(why, whylen, "unknown algorithm a=%s", sig->algorithm);
		return -1;
	}
	got = b64_decode(b->value, b->valuelen, sig->b, sizeof(sig->b));
	if (got <= 0) {
		why_set(why, whylen, "%s", got == 0 ? "b= is empty" : "b= is not base64");
		return -1;
	}
	sig->blen = (size_t)got;
	sig->b_start = voff + b->raw_start;
	sig->b_end = voff + b->raw_end;
	unsigned char bhbuf[DKIM_HASH_LEN + 1];
	got = b64_decode(bh->value, bh->valuelen, bhbuf, sizeof(bhbuf));
	if (got != DKIM_HASH_LEN) {
		why_set(why, whylen, "%s", "bh= is not a SHA-256 hash in base64");
		return -1;
	}
	memcpy(sig->bh, bhbuf, DKIM_HASH_LEN);
	sig->hcanon = sig->bcanon = DKIM_CANON_SIMPLE;
	if (c) {
		copy_value(c, word, sizeof(word));
		if (c->valuelen >= sizeof(word) ||
		    dkim_canon_parse(word, &sig->hcanon, &sig->bcanon) < 0) {
			why_set(why, whylen, "unknown canonicalization c=%s", word);
			return -1;
		}
	}
	if (!dkim_domain_valid(d->value, d->valuelen)) {
		why_set(why, whylen, "%s", "d= is not a domain name");
		return -1;
	}
	if (s->valuelen > DKIM_SELECTOR_MAX || !dkim_domain_valid(s->value, s->valuelen)) {
		why_set(why, whylen, "%s", "s= is not a selector");
		return -1;
	}

	struct hlist hl = {.sig = sig};
	each_in_list(h->value, h->valuelen, h_name, &hl);
	if (hl.bad) {
		dbuf_free(&hl.names);
		why_set(why, whylen, "%s", "h= is not a list of field names");
		return -1;
	}
	if (!hl.from) {
		dbuf_free(&hl.names);
		why_set(why, whylen, "%s", "h= does not include From");
		return -1;
	}
	sig->hbuf = dbuf_steal(&hl.names);
	sig->h = xcalloc(hl.count, sizeof(*sig->h));
	for (const char *p = sig->hbuf; sig->nh < hl.count; p += strlen(p) + 1)
		sig->h[sig->nh++] = p;

	if (i) {
		const char *at = memchr(i->value, '@', i->valuelen), *p;
		if (at == NULL || i->valuelen > DKIM_IDENTITY_MAX) {
			why_set(why, whylen, "%s", "i= is not an identity");
			return -1;
		}
		while ((p = memchr(at + 1, '@', i->valuelen - (size_t)(at + 1 - i->value))))
			at = p;
		size_t dl = i->valuelen - (size_t)(at + 1 - i->value);
		if (!(ascii_caseeq(at + 1, dl, d->value, d->valuelen) ||
		      (dl > d->valuelen && at[dl - d->valuelen] == '.' &&
		       ascii_caseeq(at + 1 + dl - d->valuelen, d->valuelen, d->value,
		                    d->valuelen)))) {
			why_set(why, whylen, "%s", "i= is not within d=");
			return -1;
		}
	}
	if (l && number(l, &sig->l) < 0) {
		why_set(why, whylen, "%s", "l= is not a number");
		return -1;
	}
	sig->has_l = l != NULL;
	if (q && !in_list(q, "dns/txt")) {
		why_set(why, whylen, "%s", "q= does not allow dns/txt");
		return -1;
	}
	if (t && number(t, &sig->t) < 0) {
		why_set(why, whylen, "%s", "t= is not a number");
		return -1;
	}
	if (x && number(x, &sig->x) < 0) {
		why_set(why, whylen, "%s", "x= is not a number");
		return -1;
	}
	sig->has_t = t != NULL;
	sig->has_x = x != NULL;
	if (t && x && sig->x < sig->t) {
		why_set(why, whylen, "%s", "x= is before t=");
		return -1;
	}
	return 0;
}

/* ---- Key records ---- */

void
dkim_keyrec_free(struct dkim_keyrec *kr)
{
	EVP_PKEY_free(kr->pkey);
	kr->pkey = NULL;
}

static int
flag(void *arg, const char *s, size_t len)
{
	struct dkim_keyrec *kr = arg;

	if (len == 1 && s[0] == 'y')
		kr->testing = true;
	else if (len == 1 && s[0] == 's')
		kr->strict = true;
	return 0; /* unknown flags are ignored (§3.6.1) */
}

static int
service(void *arg, const char *s, size_t len)
{
	return (len == 1 && s[0] == '*') || ascii_caseeq(s, len, "email", 5) ? 1 : 0;
}

/* The public key of p=, or NULL if it is not one that decodes to the last octet. */
static EVP_PKEY *
key_decode(enum dkim_algorithm alg, const unsigned char *der, size_t len)
{
	const unsigned char *q = der;
	EVP_PKEY *pkey;

	if (alg == DKIM_ED25519_SHA256 && len == 32) {
		pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, der, 32);
		q = der + len;
	} else {
		/* SubjectPublicKeyInfo as everyone publishes; a bare RSAPublicKey as a few do. */
		pkey = d2i_PUBKEY(NULL, &q, (long)len);
		if (pkey == NULL && alg == DKIM_RSA_SHA256) {
			q = der;
			pkey = d2i_PublicKey(EVP_PKEY_RSA, NULL, &q, (long)len);
		}
	}
	if (pkey == NULL || q != der + len) {
		ERR_clear_error();
		EVP_PKEY_free(pkey);
		return NULL;
	}
	return pkey;
}

/* Decoding an RSA public key is most of what verifying a signature costs with OpenSSL 3 (its
 * decoders run about 1.4 M instructions, the verification 0.4 M) and its locks are shared by
 * every thread. The same few keys sign most of the mail a server receives: the last ones
 * decoded are kept, by their exact octets. EVP_PKEY is reference-counted and read-only once
 * made, so one may serve any number of threads. */
#define KEY_CACHE_SIZE 64

static struct {
	enum dkim_algorithm alg;
	unsigned char *der;
	size_t len;
	EVP_PKEY *pkey;
	uint64_t used;
} key_cache[KEY_CACHE_SIZE];
static uint64_t key_cache_clock;
static pthread_mutex_t key_cache_lock = PTHREAD_MUTEX_INITIALIZER;

static EVP_PKEY *
key_cached(enum dkim_algorithm alg, const unsigned char *der, size_t len)
{
	EVP_PKEY *pkey = NULL;
	size_t i, victim = 0;

	pthread_mutex_lock(&key_cache_lock);
	for (i = 0; i < KEY_CACHE_SIZE; i++) {
		if (key_cache[i].pkey != NULL && key_cache[i].alg == alg &&
		    key_cache[i].len == len && memcmp(key_cache[i].der, der, len) == 0) {
			key_cache[i].used = ++key_cache_clock;
			pkey = key_cache[i].pkey;
			EVP_PKEY_up_ref(pkey);
			break;
		}
		if (key_cache[i].used < key_cache[victim].used)
			victim = i;
	}
	pthread_mutex_unlock(&key_cache_lock);
	if (pkey != NULL)
		return pkey;

	if ((pkey = key_decode(alg, der, len)) == NULL)
		return NULL;
	pthread_mutex_lock(&key_cache_lock);
	EVP_PKEY_free(key_cache[victim].pkey);
	free(key_cache[victim].der);
	key_cache[victim].alg = alg;
	key_cache[victim].der = xmalloc(len);
	memcpy(key_cache[victim].der, der, len);
	key_cache[victim].len = len;
	key_cache[victim].pkey = pkey;
	key_cache[victim].used = ++key_cache_clock;
	EVP_PKEY_up_ref(pkey); /* one for the cache, one for the caller */
	pthread_mutex_unlock(&key_cache_lock);
	return pkey;
}

int
dkim_keyrec_parse(const char *txt, size_t len, struct dkim_keyrec *kr, char *why, size_t whylen)
{
	struct dkim_tag tags[DKIM_TAGS_MAX];
	const struct dkim_tag *v, *h, *k, *s, *t, *p;
	const char *terr = NULL;
	unsigned char der[2048];
	ssize_t got;
	size_t n;

	memset(kr, 0, sizeof(*kr));
	if (dkim_tags_parse(txt, len, tags, nitems(tags), &n, &terr) < 0) {
		why_set(why, whylen, "malformed key record: %s", terr);
		return -1;
	}
	v = tag_find(tags, n, "v");
	h = tag_find(tags, n, "h");
	k = tag_find(tags, n, "k");
	s = tag_find(tags, n, "s");
	t = tag_find(tags, n, "t");
	p = tag_find(tags, n, "p");
	if (v && (v != &tags[0] || !tag_is(v, "DKIM1"))) {
		why_set(why, whylen, "%s", "key record v= is not DKIM1 first");
		return -1;
	}
	if (h && !in_list(h, "sha256")) {
		why_set(why, whylen, "%s", "key record h= does not allow sha256");
		return -1;
	}
	kr->alg = DKIM_RSA_SHA256;
	if (k && ascii_caseeq(k->value, k->valuelen, "ed25519", 7))
		kr->alg = DKIM_ED25519_SHA256;
	else if (k && !ascii_caseeq(k->value, k->valuelen, "rsa", 3)) {
		why_set(why, whylen, "%s", "key record k= is an unknown key type");
		return -1;
	}
	if (s && each_in_list(s->value, s->valuelen, service, NULL) != 1) {
		why_set(why, whylen, "%s", "key record s= excludes email");
		return -1;
	}
	if (t)
		each_in_list(t->value, t->valuelen, flag, kr);
	if (p == NULL) {
		why_set(why, whylen, "%s", "key record without p=");
		return -1;
	}
	got = b64_decode(p->value, p->valuelen, der, sizeof(der));
	if (got < 0) {
		why_set(why, whylen, "%s", "key record p= is not base64");
		return -1;
	}
	if (got == 0) {
		kr->revoked = true;
		return 0;
	}
	kr->pkey = key_cached(kr->alg, der, (size_t)got);
	if (kr->pkey == NULL) {
		why_set(why, whylen, "key record p= is not a%s public key",
		        kr->alg == DKIM_ED25519_SHA256 ? "n Ed25519" : "n RSA");
		return -1;
	}
	int type = EVP_PKEY_get_base_id(kr->pkey);
	if ((kr->alg == DKIM_RSA_SHA256 && type != EVP_PKEY_RSA) ||
	    (kr->alg == DKIM_ED25519_SHA256 && type != EVP_PKEY_ED25519)) {
		dkim_keyrec_free(kr);
		why_set(why, whylen, "%s", "key record p= is not a key of type k=");
		return -1;
	}
	kr->bits = (unsigned)EVP_PKEY_get_bits(kr->pkey);
	return 0;
}
