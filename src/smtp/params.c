/* smtp/params.c - ESMTP parameters of MAIL and RCPT (RFC 5321 §4.1.2 esmtp-param): SIZE
 * (RFC 1870), BODY (RFC 6152, RFC 3030), SMTPUTF8 (RFC 6531), RET/ENVID/NOTIFY/ORCPT
 * (RFC 3461). */
#include <string.h>
#include <strings.h>

#include "smtp/smtp.h"

#define SIZE_DIGITS_MAX 20 /* UINT64_MAX has 20 digits */

static const struct smtp_error err_syntax = {501, "5.5.4", "Bad parameter syntax"};
static const struct smtp_error err_unknown = {555, "5.5.4", "Unsupported parameter"};
static const struct smtp_error err_not_offered = {555, "5.5.4", "Extension not offered"};
static const struct smtp_error err_duplicate = {501, "5.5.4", "Duplicate parameter"};
static const struct smtp_error err_size = {501, "5.5.4", "Bad SIZE value"};
static const struct smtp_error err_body = {501, "5.5.4", "Bad BODY value"};
static const struct smtp_error err_smtputf8 = {501, "5.5.4", "SMTPUTF8 takes no value"};
static const struct smtp_error err_ret = {501, "5.5.4", "Bad RET value"};
static const struct smtp_error err_envid = {501, "5.5.4", "Bad ENVID value"};
static const struct smtp_error err_notify = {501, "5.5.4", "Bad NOTIFY value"};
static const struct smtp_error err_orcpt = {501, "5.5.4", "Bad ORCPT value"};

struct param {
	const char *key, *val; /* val is NULL for "KEYWORD" without "=" */
	size_t key_len, val_len;
};

static int
fail(struct smtp_error *err, const struct smtp_error *what)
{
	if (err != NULL)
		*err = *what;
	return -1;
}

static bool
alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool
is(const char *s, size_t len, const char *word)
{
	return strlen(word) == len && strncasecmp(s, word, len) == 0;
}

/* Next esmtp-param from *pp: esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-"),
 * esmtp-value = 1*(%d33-60 / %d62-126), widened to UTF8-non-ascii by RFC 6531. Spaces
 * between parameters are taken generously (several, or trailing). Returns 1 with a
 * parameter, 0 at the end, -1 on a syntax error. */
static int
param_next(const char **pp, struct param *prm)
{
	const unsigned char *p = (const unsigned char *)*pp;

	while (*p == ' ')
		p++;
	if (*p == '\0')
		return 0;
	prm->key = (const char *)p;
	if (!alnum(*p))
		return -1;
	while (alnum(*p) || *p == '-')
		p++;
	prm->key_len = (size_t)((const char *)p - prm->key);
	prm->val = NULL;
	prm->val_len = 0;
	if (*p == '=') {
		prm->val = (const char *)++p;
		while ((*p >= 33 && *p <= 126 && *p != '=') || *p >= 0x80)
			p++;
		prm->val_len = (size_t)((const char *)p - prm->val);
		if (prm->val_len == 0)
			return -1;
	}
	if (*p != ' ' && *p != '\0')
		return -1;
	*pp = (const char *)p;
	return 1;
}

static bool
parse_size(const struct param *prm, uint64_t *size)
{
	uint64_t v = 0;

	if (prm->val == NULL || prm->val_len > SIZE_DIGITS_MAX)
		return false;
	for (size_t i = 0; i < prm->val_len; i++) {
		unsigned d = (unsigned char)prm->val[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*size = v;
	return true;
}

/* ENVID: xtext whose decoded form fits RFC 3461's 100 octets; "+XX" decodes to one. */
static bool
envid_valid(const struct param *prm)
{
	size_t decoded = 0;

	if (prm->val == NULL || !smtp_xtext_valid(prm->val, prm->val_len))
		return false;
	for (size_t i = 0; i < prm->val_len; i += prm->val[i] == '+' ? 3 : 1)
		decoded++;
	return decoded <= SMTP_ENVID_MAX;
}

static bool
notify_parse(const struct param *prm, unsigned *notify)
{
	const char *p = prm->val, *end = prm->val + prm->val_len;
	unsigned bits = 0;

	if (p == NULL)
		return false;
	while (p <= end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		size_t n = (size_t)((comma != NULL ? comma : end) - p);

		if (is(p, n, "NEVER"))
			bits |= SMTP_NOTIFY_NEVER;
		else if (is(p, n, "SUCCESS"))
			bits |= SMTP_NOTIFY_SUCCESS;
		else if (is(p, n, "FAILURE"))
			bits |= SMTP_NOTIFY_FAILURE;
		else if (is(p, n, "DELAY"))
			bits |= SMTP_NOTIFY_DELAY;
		else
			return false; /* also an empty element: "SUCCESS,,DELAY", "DELAY," */
		p += n + 1;
	}
	/* RFC 3461 §4.1: NEVER stands alone. */
	if ((bits & SMTP_NOTIFY_NEVER) && bits != SMTP_NOTIFY_NEVER)
		return false;
	*notify = bits;
	return true;
}

/* RFC 5322 atext: what an atom may hold, hence an ORCPT addr-type ("rfc822", "utf-8"). */
static bool
atext(unsigned char c)
{
	return alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* ORCPT = addr-type ";" xtext, at most 500 octets as sent (RFC 3461 §4.2). */
static bool
orcpt_valid(const struct param *prm)
{
	const char *semi;
	size_t type_len;

	if (prm->val == NULL || prm->val_len > SMTP_ORCPT_MAX)
		return false;
	semi = memchr(prm->val, ';', prm->val_len);
	if (semi == NULL || semi == prm->val || semi + 1 == prm->val + prm->val_len)
		return false;
	type_len = (size_t)(semi - prm->val);
	for (size_t i = 0; i < type_len; i++) {
		if (!atext((unsigned char)prm->val[i]))
			return false;
	}
	return smtp_xtext_valid(semi + 1, prm->val_len - type_len - 1);
}

static int
mail_params(const char *params, const struct smtp_offer *offer, struct smtp_mail_params *out,
            struct smtp_error *err)
{
	enum { SEEN_SIZE = 1, SEEN_BODY = 2, SEEN_UTF8 = 4, SEEN_RET = 8, SEEN_ENVID = 16 };
	static const struct smtp_offer none;
	const char *p = params != NULL ? params : "";
	struct param prm;
	unsigned seen = 0, bit;
	int r;

	memset(out, 0, sizeof(*out));
	if (offer == NULL)
		offer = &none;
	while ((r = param_next(&p, &prm)) > 0) {
		/* Recognise, then check the offer, then duplicates, then the value: a client
		 * learns first that the whole parameter is wrong, then how. */
		if (is(prm.key, prm.key_len, "SIZE")) {
			if (!offer->size)
				return fail(err, &err_not_offered);
			bit = SEEN_SIZE;
		} else if (is(prm.key, prm.key_len, "BODY")) {
			if (!offer->eightbitmime && !offer->binarymime)
				return fail(err, &err_not_offered);
			bit = SEEN_BODY;
		} else if (is(prm.key, prm.key_len, "SMTPUTF8")) {
			if (!offer->smtputf8)
				return fail(err, &err_not_offered);
			bit = SEEN_UTF8;
		} else if (is(prm.key, prm.key_len, "RET")) {
			if (!offer->dsn)
				return fail(err, &err_not_offered);
			bit = SEEN_RET;
		} else if (is(prm.key, prm.key_len, "ENVID")) {
			if (!offer->dsn)
				return fail(err, &err_not_offered);
			bit = SEEN_ENVID;
		} else {
			return fail(err, &err_unknown);
		}
		if (seen & bit)
			return fail(err, &err_duplicate);
		seen |= bit;

		switch (bit) {
		case SEEN_SIZE:
			if (!parse_size(&prm, &out->size))
				return fail(err, &err_size);
			out->size_given = true;
			break;
		case SEEN_BODY:
			if (prm.val == NULL)
				return fail(err, &err_body);
			if (is(prm.val, prm.val_len, "7BIT")) {
				out->body = SMTP_BODY_7BIT;
			} else if (is(prm.val, prm.val_len, "8BITMIME")) {
				if (!offer->eightbitmime)
					return fail(err, &err_not_offered);
				out->body = SMTP_BODY_8BITMIME;
			} else if (is(prm.val, prm.val_len, "BINARYMIME")) {
				if (!offer->binarymime)
					return fail(err, &err_not_offered);
				out->body = SMTP_BODY_BINARYMIME;
			} else {
				return fail(err, &err_body);
			}
			break;
		case SEEN_UTF8:
			if (prm.val != NULL)
				return fail(err, &err_smtputf8);
			out->smtputf8 = true;
			break;
		case SEEN_RET:
			if (prm.val != NULL && is(prm.val, prm.val_len, "FULL"))
				out->ret = SMTP_DSN_RET_FULL;
			else if (prm.val != NULL && is(prm.val, prm.val_len, "HDRS"))
				out->ret = SMTP_DSN_RET_HDRS;
			else
				return fail(err, &err_ret);
			break;
		case SEEN_ENVID:
			if (!envid_valid(&prm))
				return fail(err, &err_envid);
			/* Decoded length <= 100 bounds the xtext to 300 octets: it fits. */
			memcpy(out->envid, prm.val, prm.val_len);
			out->envid[prm.val_len] = '\0';
			out->envid_given = true;
			break;
		}
	}
	if (r < 0)
		return fail(err, &err_syntax);
	return 0;
}

static int
rcpt_params(const char *params, const struct smtp_offer *offer, struct smtp_rcpt_params *out,
            struct smtp_error *err)
{
	static const struct smtp_offer none;
	const char *p = params != NULL ? params : "";
	struct param prm;
	int r;

	memset(out, 0, sizeof(*out));
	if (offer == NULL)
		offer = &none;
	while ((r = param_next(&p, &prm)) > 0) {
		if (is(prm.key, prm.key_len, "NOTIFY")) {
			if (!offer->dsn)
				return fail(err, &err_not_offered);
			if (out->notify != 0)
				return fail(err, &err_duplicate);
			if (!notify_parse(&prm, &out->notify))
				return fail(err, &err_notify);
		} else if (is(prm.key, prm.key_len, "ORCPT")) {
			if (!offer->dsn)
				return fail(err, &err_not_offered);
			if (out->orcpt_given)
				return fail(err, &err_duplicate);
			if (!orcpt_valid(&prm))
				return fail(err, &err_orcpt);
			memcpy(out->orcpt, prm.val, prm.val_len);
			out->orcpt[prm.val_len] = '\0';
			out->orcpt_given = true;
		} else {
			return fail(err, &err_unknown);
		}
	}
	if (r < 0)
		return fail(err, &err_syntax);
	return 0;
}

/* On failure the output is cleared, so that a half-parsed set of parameters can never be
 * mistaken for an accepted one. */
int
smtp_mail_params_parse(const char *params, const struct smtp_offer *offer,
                       struct smtp_mail_params *out, struct smtp_error *err)
{
	if (mail_params(params, offer, out, err) < 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	return 0;
}

int
smtp_rcpt_params_parse(const char *params, const struct smtp_offer *offer,
                       struct smtp_rcpt_params *out, struct smtp_error *err)
{
	if (rcpt_params(params, offer, out, err) < 0) {
		memset(out, 0, sizeof(*out));
		return -1;
	}
	return 0;
}
