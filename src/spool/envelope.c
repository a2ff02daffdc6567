/* envelope.c - the envelope's on-disk form.
 *
 * Version 3, all integers little-endian and fixed-width:
 *
 *	u8  version (3)
 *	str id, str sender
 *	u8  dsn_ret, u8 body_type, u8 smtputf8 (0 or 1), u64 received_us
 *	str envid, client_ip, helo, listener, protocol, auth_user, headers
 *	str stream, tenant, campaign, pool
 *	u64 size
 *	u32 nrcpt, then nrcpt times:
 *		str address, str orcpt, u8 notify, u8 state, u8 flags, u16 attempts,
 *		u64 next_attempt_us, str last_reply
 *
 * Version 2 had no classification (stream, tenant, campaign, pool), version 1 (the first
 * release) no headers and no recipient flags either; both are still read, the missing fields
 * as NULL and 0, so a spool survives the upgrade. Only version 3 is written.
 *
 * A str is a u32 length then that many octets (no NUL inside), or the length 0xffffffff
 * alone for NULL, so NULL and "" stay distinct. The form is canonical: every envelope has
 * exactly one encoding, and decode accepts nothing else (no trailing octets, booleans 0 or
 * 1), so encode(decode(x)) == x, which the fuzzer checks.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "spool/spool_private.h"

#define ENVELOPE_VERSION    3
#define ENVELOPE_VERSION_V1 1
#define STR_NULL            0xffffffffu
/* The smallest encoded recipient: three empty or NULL strings (4 octets each) and 12
 * octets of numbers (version 1: no flags). Bounds the recipient count a buffer can claim
 * before allocating. */
#define RCPT_MIN_LEN (3 * 4 + 1 + 1 + 2 + 8)

/* ---- encoding: one pass to measure (p == NULL), one to write ---- */

struct wbuf {
	uint8_t *p;
	size_t len;
};

static void
put_bytes(struct wbuf *w, const void *v, size_t n)
{
	if (w->p != NULL && n > 0)
		memcpy(w->p + w->len, v, n);
	w->len += n;
}

static void
put_u8(struct wbuf *w, uint8_t v)
{
	put_bytes(w, &v, 1);
}

static void
put_u16(struct wbuf *w, uint16_t v)
{
	uint8_t b[2] = {v & 0xff, v >> 8};

	put_bytes(w, b, sizeof(b));
}

static void
put_u32(struct wbuf *w, uint32_t v)
{
	uint8_t b[4];

	for (int i = 0; i < 4; i++)
		b[i] = (v >> (8 * i)) & 0xff;
	put_bytes(w, b, sizeof(b));
}

static void
put_u64(struct wbuf *w, uint64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (v >> (8 * i)) & 0xff;
	put_bytes(w, b, sizeof(b));
}

static void
put_str(struct wbuf *w, const char *s)
{
	size_t n;

	if (s == NULL) {
		put_u32(w, STR_NULL);
		return;
	}
	n = strlen(s);
	if (n >= STR_NULL)
		fatal("envelope: string of %zu octets", n);
	put_u32(w, (uint32_t)n);
	put_bytes(w, s, n);
}

static void
put_envelope(struct wbuf *w, const struct envelope *env)
{
	put_u8(w, ENVELOPE_VERSION);
	put_str(w, env->id);
	put_str(w, env->sender);
	put_u8(w, env->dsn_ret);
	put_u8(w, env->body_type);
	put_u8(w, env->smtputf8 ? 1 : 0);
	put_u64(w, env->received_us);
	put_str(w, env->envid);
	put_str(w, env->client_ip);
	put_str(w, env->helo);
	put_str(w, env->listener);
	put_str(w, env->protocol);
	put_str(w, env->auth_user);
	put_str(w, env->headers);
	put_str(w, env->stream);
	put_str(w, env->tenant);
	put_str(w, env->campaign);
	put_str(w, env->pool);
	put_u64(w, env->size);
	if (env->nrcpt >= STR_NULL)
		fatal("envelope: %zu recipients", env->nrcpt);
	put_u32(w, (uint32_t)env->nrcpt);
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];

		put_str(w, r->address);
		put_str(w, r->orcpt);
		put_u8(w, r->notify);
		put_u8(w, r->state);
		put_u8(w, r->flags);
		put_u16(w, r->attempts);
		put_u64(w, r->next_attempt_us);
		put_str(w, r->last_reply);
	}
}

void *
envelope_encode(const struct envelope *env, size_t *len)
{
	struct wbuf w = {NULL, 0};

	put_envelope(&w, env);
	w.p = xmalloc(w.len);
	*len = w.len;
	w.len = 0;
	put_envelope(&w, env);
	return w.p;
}

/* ---- decoding: every read checks what is left; the first failure sticks ---- */

struct rbuf {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *
take(struct rbuf *r, size_t n)
{
	const uint8_t *p;

	if (r->bad || n > r->left) {
		r->bad = true;
		return NULL;
	}
	p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint8_t
get_u8(struct rbuf *r)
{
	const uint8_t *p = take(r, 1);

	return p != NULL ? p[0] : 0;
}

static uint16_t
get_u16(struct rbuf *r)
{
	const uint8_t *p = take(r, 2);

	return p != NULL ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

static uint32_t
get_u32(struct rbuf *r)
{
	const uint8_t *p = take(r, 4);
	uint32_t v = 0;

	for (int i = 0; p != NULL && i < 4; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static uint64_t
get_u64(struct rbuf *r)
{
	const uint8_t *p = take(r, 8);
	uint64_t v = 0;

	for (int i = 0; p != NULL && i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static bool
get_bool(struct rbuf *r)
{
	uint8_t v = get_u8(r);

	if (v > 1)
		r->bad = true;
	return v == 1;
}

/* A malloc'd string, or NULL (for the NULL marker, or on failure: r->bad tells). */
static char *
get_str(struct rbuf *r)
{
	uint32_t n = get_u32(r);
	const uint8_t *p;

	if (r->bad || n == STR_NULL)
		return NULL;
	if ((p = take(r, n)) == NULL)
		return NULL;
	if (memchr(p, '\0', n) != NULL) {
		r->bad = true;
		return NULL;
	}
	return xstrndup((const char *)p, n);
}

int
envelope_decode(const void *buf, size_t len, struct envelope *env)
{
	struct rbuf r = {buf, len, false};
	char *id;
	uint32_t n;
	uint8_t version;

	memset(env, 0, sizeof(*env));
	if (buf == NULL)
		return -1;
	version = get_u8(&r);
	if (version < ENVELOPE_VERSION_V1 || version > ENVELOPE_VERSION)
		return -1;
	id = get_str(&r);
	if (id == NULL || strlen(id) > SPOOL_ID_LEN)
		r.bad = true;
	else
		memcpy(env->id, id, strlen(id) + 1);
	free(id);
	env->sender = get_str(&r);
	env->dsn_ret = get_u8(&r);
	env->body_type = get_u8(&r);
	env->smtputf8 = get_bool(&r);
	env->received_us = get_u64(&r);
	env->envid = get_str(&r);
	env->client_ip = get_str(&r);
	env->helo = get_str(&r);
	env->listener = get_str(&r);
	env->protocol = get_str(&r);
	env->auth_user = get_str(&r);
	if (version >= 2)
		env->headers = get_str(&r);
	if (version >= 3) {
		env->stream = get_str(&r);
		env->tenant = get_str(&r);
		env->campaign = get_str(&r);
		env->pool = get_str(&r);
	}
	env->size = get_u64(&r);
	n = get_u32(&r);
	/* Claim no more recipients than the octets left could hold, before allocating. */
	if (r.bad || n > r.left / RCPT_MIN_LEN)
		goto fail;
	if (n > 0)
		env->rcpt = xcalloc(n, sizeof(*env->rcpt));
	env->nrcpt = n;
	for (uint32_t i = 0; i < n && !r.bad; i++) {
		struct envelope_rcpt *rc = &env->rcpt[i];

		rc->address = get_str(&r);
		rc->orcpt = get_str(&r);
		rc->notify = get_u8(&r);
		rc->state = get_u8(&r);
		if (version >= 2)
			rc->flags = get_u8(&r);
		rc->attempts = get_u16(&r);
		rc->next_attempt_us = get_u64(&r);
		rc->last_reply = get_str(&r);
	}
	if (r.bad || r.left != 0)
		goto fail;
	return 0;
fail:
	envelope_clear(env);
	return -1;
}

void
envelope_clear(struct envelope *env)
{
	free(env->sender);
	free(env->envid);
	free(env->client_ip);
	free(env->helo);
	free(env->listener);
	free(env->protocol);
	free(env->auth_user);
	free(env->headers);
	free(env->stream);
	free(env->tenant);
	free(env->campaign);
	free(env->pool);
	for (size_t i = 0; i < env->nrcpt; i++) {
		free(env->rcpt[i].address);
		free(env->rcpt[i].orcpt);
		free(env->rcpt[i].last_reply);
	}
	free(env->rcpt);
	memset(env, 0, sizeof(*env));
}

static char *
dup_or_null(const char *s)
{
	return s != NULL ? xstrdup(s) : NULL;
}

void
envelope_copy(struct envelope *dst, const struct envelope *src)
{
	*dst = *src;
	dst->sender = dup_or_null(src->sender);
	dst->envid = dup_or_null(src->envid);
	dst->client_ip = dup_or_null(src->client_ip);
	dst->helo = dup_or_null(src->helo);
	dst->listener = dup_or_null(src->listener);
	dst->protocol = dup_or_null(src->protocol);
	dst->auth_user = dup_or_null(src->auth_user);
	dst->headers = dup_or_null(src->headers);
	dst->stream = dup_or_null(src->stream);
	dst->tenant = dup_or_null(src->tenant);
	dst->campaign = dup_or_null(src->campaign);
	dst->pool = dup_or_null(src->pool);
	dst->rcpt = NULL;
	if (src->nrcpt > 0) {
		dst->rcpt = xcalloc(src->nrcpt, sizeof(*dst->rcpt));
		for (size_t i = 0; i < src->nrcpt; i++) {
			dst->rcpt[i] = src->rcpt[i];
			dst->rcpt[i].address = dup_or_null(src->rcpt[i].address);
			dst->rcpt[i].orcpt = dup_or_null(src->rcpt[i].orcpt);
			dst->rcpt[i].last_reply = dup_or_null(src->rcpt[i].last_reply);
		}
	}
}
