/* dkim_sign.c - signing a message as it streams in (RFC 6376 §5, RFC 8463).
 *
 * The header section is kept until it is complete; the body is canonicalized and hashed as
 * it arrives, once per body canonicalization in use (signers that agree on it share a
 * hash). At the end each signer selects its fields bottom-up, adds its own DKIM-Signature
 * (b= empty) and signs. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

const char *const dkim_default_headers[] = {
    "from",
    "reply-to",
    "subject",
    "date",
    "to",
    "cc",
    "resent-date",
    "resent-from",
    "resent-sender",
    "resent-to",
    "resent-cc",
    "resent-message-id",
    "in-reply-to",
    "references",
    "list-id",
    "list-help",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "list-subscribe",
    "list-post",
    "list-owner",
    "list-archive",
    "message-id",
    "sender",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
    "content-id",
    "content-description",
    "feedback-id",
    NULL,
};

struct signer {
	struct dkim_keydata *kd;
	char *domain, *selector, *identity;
	enum dkim_canon hcanon, bcanon;
	char **names; /* to sign, lower-cased, each once, From among them */
	size_t nnames;
	char **over; /* to over-sign, From first */
	size_t nover;
	uint32_t expire_s;
};

struct dkim_sign {
	uint64_t now_s;
	struct signer s[DKIM_SIGNERS_MAX];
	size_t n;
	struct dkim_msg msg;
	bool body_started; /* the header section is complete; signers are fixed */
	bool used[2];      /* by enum dkim_canon: a body hash is needed */
	struct dkim_body body[2];
	dkim_sign_headers_cb *cb;
	void *cbarg;
	bool failed;
	char err[256];
};

struct dkim_sign *
dkim_sign_new(uint64_t now_s)
{
	struct dkim_sign *ctx = xcalloc(1, sizeof(*ctx));

	ctx->now_s = now_s;
	dkim_msg_init(&ctx->msg);
	return ctx;
}

static void
signer_clear(struct signer *s)
{
	dkim_keydata_release(s->kd);
	free(s->domain);
	free(s->selector);
	free(s->identity);
	for (size_t i = 0; i < s->nnames; i++)
		free(s->names[i]);
	for (size_t i = 0; i < s->nover; i++)
		free(s->over[i]);
	free(s->names);
	free(s->over);
}

void
dkim_sign_free(struct dkim_sign *ctx)
{
	if (ctx == NULL)
		return;
	for (size_t i = 0; i < ctx->n; i++)
		signer_clear(&ctx->s[i]);
	for (int c = 0; c < 2; c++)
		if (ctx->used[c] && ctx->body_started)
			dkim_body_free(&ctx->body[c]);
	dkim_msg_free(&ctx->msg);
	free(ctx);
}

void
dkim_sign_on_headers(struct dkim_sign *ctx, dkim_sign_headers_cb *cb, void *arg)
{
	ctx->cb = cb;
	ctx->cbarg = arg;
}

static bool
field_name_valid(const char *s)
{
	if (*s == '\0' || strlen(s) > 256)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f || *s == ':')
			return false;
	return true;
}

/* Adds a lower-cased copy of name to the list unless it is there already. */
static void
name_add(char ***list, size_t *n, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if (strcasecmp((*list)[i], name) == 0)
			return;
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	char *copy = xstrdup(name);
	for (char *p = copy; *p; p++)
		*p = ascii_lower(*p);
	(*list)[(*n)++] = copy;
}

/* i= is "[local-part]@domain", the domain d= or below it, and nothing that would end or
 * fold the tag. */
static bool
identity_valid(const char *id, const char *domain)
{
	const char *at = strrchr(id, '@');
	size_t dl = strlen(domain), il;

	for (const char *p = id; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == ';' || (unsigned char)*p == 0x7f)
			return false;
	if (at == NULL)
		return false;
	il = strlen(at + 1);
	if (!dkim_domain_valid(at + 1, il))
		return false;
	return strcasecmp(at + 1, domain) == 0 ||
	       (il > dl && at[il - dl] == '.' && strcasecmp(at + 1 + il - dl, domain) == 0);
}

int
dkim_sign_add(struct dkim_sign *ctx, const struct dkim_signer *sg, char *err, size_t errlen)
{
	const char *const *names = sg->headers ? sg->headers : dkim_default_headers;
	struct signer *s;

	if (ctx->body_started) {
		snprintf(err, errlen,
		         "dkim: signers are added before the body (from the headers "
		         "callback at the latest)");
		return -1;
	}
	if (ctx->n == DKIM_SIGNERS_MAX) {
		snprintf(err, errlen, "dkim: more than %d signatures for one message",
		         DKIM_SIGNERS_MAX);
		return -1;
	}
	if (sg->key == NULL) {
		snprintf(err, errlen, "dkim: no key for %s", sg->domain ? sg->domain : "signer");
		return -1;
	}
	if (dkim_check_names(sg->domain, sg->selector, err, errlen) < 0)
		return -1;
	if (sg->identity != NULL && (strlen(sg->identity) > DKIM_IDENTITY_MAX ||
	                             !identity_valid(sg->identity, sg->domain))) {
		snprintf(err, errlen, "dkim: identity \"%s\" is not an address at %s or below it",
		         sg->identity, sg->domain);
		return -1;
	}
	for (size_t i = 0; names[i]; i++) {
		if (!field_name_valid(names[i])) {
			snprintf(err, errlen, "dkim: \"%s\" is not a header field name", names[i]);
			return -1;
		}
	}
	for (size_t i = 0; sg->oversign && sg->oversign[i]; i++) {
		if (!field_name_valid(sg->oversign[i])) {
			snprintf(err, errlen, "dkim: \"%s\" is not a header field name",
			         sg->oversign[i]);
			return -1;
		}
	}

	s = &ctx->s[ctx->n++];
	*s = (struct signer){
	    .kd = dkim_key_acquire(sg->key),
	    .domain = xstrdup(sg->domain),
	    .selector = xstrdup(sg->selector),
	    .identity = sg->identity ? xstrdup(sg->identity) : NULL,
	    .hcanon = sg->header_canon,
	    .bcanon = sg->body_canon,
	    .expire_s = sg->expire_s,
	};
	/* RFC 6376 §5.4: From MUST be signed; and over-signed, so that none can be added. */
	name_add(&s->names, &s->nnames, "from");
	for (size_t i = 0; names[i]; i++)
		name_add(&s->names, &s->nnames, names[i]);
	name_add(&s->over, &s->nover, "from");
	for (size_t i = 0; sg->oversign && sg->oversign[i]; i++)
		name_add(&s->over, &s->nover, sg->oversign[i]);
	return 0;
}

static void
headers_complete(struct dkim_sign *ctx)
{
	dkim_msg_end_headers(&ctx->msg);
	if (ctx->cb != NULL) {
		char domain[DNS_NAME_MAX + 1];
		const char *from = NULL;

		for (size_t i = 0; i < ctx->msg.nfields; i++) {
			if (dkim_field_is(&ctx->msg, &ctx->msg.fields[i], "from")) {
				size_t len;
				const char *v =
				    dkim_field_value(&ctx->msg, &ctx->msg.fields[i], &len);
				if (dkim_from_domain(v, len, domain) == 0)
					from = domain;
				break;
			}
		}
		ctx->cb(ctx->cbarg, ctx, from);
	}
	ctx->body_started = true;
	for (size_t i = 0; i < ctx->n; i++)
		ctx->used[ctx->s[i].bcanon] = true;
	for (int c = 0; c < 2; c++)
		if (ctx->used[c])
			dkim_body_init(&ctx->body[c], (enum dkim_canon)c, UINT64_MAX);
}

int
dkim_sign_update(struct dkim_sign *ctx, const void *data, size_t len)
{
	const char *p = data;

	if (ctx->failed)
		return -1;
	if (!ctx->msg.done) {
		size_t took = dkim_msg_headers(&ctx->msg, p, len);

		if (ctx->msg.overflow) {
			ctx->failed = true;
			snprintf(ctx->err, sizeof(ctx->err),
			         "dkim: header section larger than %d octets", DKIM_HEADERS_MAX);
			return -1;
		}
		if (!ctx->msg.done)
			return 0;
		headers_complete(ctx);
		p += took;
		len -= took;
	}
	for (int c = 0; c < 2; c++)
		if (ctx->used[c])
			dkim_body_update(&ctx->body[c], p, len);
	return 0;
}

/* ---- The DKIM-Signature field ---- */

struct fold {
	struct dbuf *b;
	size_t col;
};

/* A word that cannot be broken, after a space or, if it would pass the line limit, a fold. */
static void
word(struct fold *f, const char *w, size_t n)
{
	if (f->col > 1 && f->col + 1 + n > DKIM_LINE_MAX) {
		dbuf_add(f->b, "\r\n ", 3);
		f->col = 1;
	} else {
		dbuf_addc(f->b, ' ');
		f->col++;
	}
	dbuf_add(f->b, w, n);
	f->col += n;
}

static void __attribute__((format(printf, 2, 3))) wordf(struct fold *f, const char *fmt, ...)
{
	char buf[1024]; /* identity, domain, field names: bounded when added */
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	word(f, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

/* Base64 that FWS may break anywhere: the rest of the line, then whole lines. */
static void
b64_folded(struct fold *f, const char *v, size_t n)
{
	while (n > 0) {
		if (f->col >= DKIM_LINE_MAX) {
			dbuf_add(f->b, "\r\n ", 3);
			f->col = 1;
		}
		size_t take = DKIM_LINE_MAX - f->col < n ? DKIM_LINE_MAX - f->col : n;
		dbuf_add(f->b, v, take);
		f->col += take;
		v += take;
		n -= take;
	}
}

static int
sign_one(struct dkim_sign *ctx, struct signer *s, const unsigned char bh[DKIM_HASH_LEN],
         struct dbuf *out)
{
	struct dbuf field = {0}, data = {0};
	struct fold f = {&field, 0};
	const char **h = NULL;
	size_t nh = 0, prefix;
	char bh64[B64_LEN(DKIM_HASH_LEN) + 1];
	unsigned char sig[DKIM_SIG_BYTES_MAX];
	size_t siglen = sizeof(sig);
	int rc = -1;

	/* h=: every instance of each name present (bottom-up selection takes them all), then
	 * the over-signed names once more. */
	for (size_t i = 0; i < s->nnames; i++) {
		size_t c = dkim_msg_count(&ctx->msg, s->names[i]);
		h = xrealloc(h, (nh + c + 1) * sizeof(*h));
		while (c-- > 0)
			h[nh++] = s->names[i];
	}
	h = xrealloc(h, (nh + s->nover + 1) * sizeof(*h));
	for (size_t i = 0; i < s->nover; i++)
		h[nh++] = s->over[i];

	dbuf_adds(&field, "DKIM-Signature:");
	f.col = field.len;
	/* The order of RFC 8463's example, which a test reproduces octet for octet. */
	word(&f, "v=1;", 4);
	wordf(&f, "a=%s;", dkim_algorithm_name(s->kd->alg));
	wordf(&f, "c=%s/%s;", dkim_canon_name(s->hcanon), dkim_canon_name(s->bcanon));
	wordf(&f, "d=%s;", s->domain);
	if (s->identity)
		wordf(&f, "i=%s;", s->identity);
	word(&f, "q=dns/txt;", 10);
	wordf(&f, "s=%s;", s->selector);
	wordf(&f, "t=%llu;", (unsigned long long)ctx->now_s);
	if (s->expire_s)
		wordf(&f, "x=%llu;", (unsigned long long)(ctx->now_s + s->expire_s));
	/* "h=from : to : subject;" as RFC 8463's example has it; lines fold after a colon. */
	for (size_t i = 0; i < nh; i++)
		wordf(&f, "%s%s%s", i == 0 ? "h=" : "", h[i], i + 1 == nh ? ";" : " :");
	b64_encode(bh, DKIM_HASH_LEN, bh64);
	/* bh= and b= on lines of their own, for the people who read these. */
	f.col = DKIM_LINE_MAX;
	wordf(&f, "bh=%s;", bh64);
	f.col = DKIM_LINE_MAX;
	word(&f, "b=", 2);
	prefix = field.len;

	/* What is signed: the selected fields, then this one with b= empty, without CRLF. */
	dkim_msg_select(&ctx->msg, h, nh, s->hcanon, &data);
	dkim_canon_header(s->hcanon, field.p, prefix, false, &data);
	if (dkim_crypto_sign(s->kd->pkey, s->kd->alg, &data, sig, &siglen) < 0) {
		snprintf(ctx->err, sizeof(ctx->err), "dkim: %s signing for %s failed in OpenSSL",
		         dkim_algorithm_name(s->kd->alg), s->domain);
		goto out;
	}
	char *b64 = xmalloc(B64_LEN(siglen) + 1);
	size_t n = b64_encode(sig, siglen, b64);
	b64_folded(&f, b64, n);
	free(b64);
	dbuf_add(&field, "\r\n", 2);
	dbuf_add(out, field.p, field.len);
	rc = 0;
out:
	free(h);
	dbuf_free(&field);
	dbuf_free(&data);
	return rc;
}

char *
dkim_sign_final(struct dkim_sign *ctx, char *err, size_t errlen)
{
	unsigned char bh[2][DKIM_HASH_LEN];
	struct dbuf out = {0};

	if (!ctx->failed && !ctx->body_started)
		headers_complete(ctx); /* a message without a body */
	if (!ctx->failed && ctx->n == 0) {
		ctx->failed = true;
		snprintf(ctx->err, sizeof(ctx->err), "dkim: no signer for this message");
	}
	if (ctx->failed) {
		snprintf(err, errlen, "%s", ctx->err);
		return NULL;
	}
	for (int c = 0; c < 2; c++)
		if (ctx->used[c])
			dkim_body_final(&ctx->body[c], bh[c]);
	for (size_t i = 0; i < ctx->n; i++) {
		if (sign_one(ctx, &ctx->s[i], bh[ctx->s[i].bcanon], &out) < 0) {
			ctx->failed = true;
			snprintf(err, errlen, "%s", ctx->err);
			dbuf_free(&out);
			return NULL;
		}
	}
	ctx->failed = true; /* final once */
	snprintf(ctx->err, sizeof(ctx->err), "dkim: dkim_sign_final() called twice");
	return dbuf_steal(&out);
}
