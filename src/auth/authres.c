/* authres.c - the Authentication-Results header field (RFC 8601): one resinfo per method
 * result, values quoted where RFC 2045 tokens cannot carry them, folded at spaces outside
 * quoted strings. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/dkim_internal.h"
#include "core/core.h"

/* RFC 2045 §5.1 token: not SPACE, CTL or tspecials. */
static bool
is_token_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* A pvalue: a token, "local@domain" as it is (RFC 8601 §2.3), else a quoted string. Control
 * characters never reach the header. */
static void
add_value(struct dbuf *b, const char *v, bool address)
{
	bool plain = *v != '\0';

	for (const unsigned char *p = (const unsigned char *)v; *p; p++)
		if (!is_token_char(*p) && !(address && (*p == '@' || *p == '.')))
			plain = false;
	if (plain) {
		dbuf_adds(b, v);
		return;
	}
	dbuf_addc(b, '"');
	for (const unsigned char *p = (const unsigned char *)v; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			continue;
		if (*p == '"' || *p == '\\')
			dbuf_addc(b, '\\');
		dbuf_addc(b, (char)*p);
	}
	dbuf_addc(b, '"');
}

static void
add_prop(struct dbuf *b, const char *name, const char *v, bool address)
{
	if (v[0] == '\0')
		return;
	dbuf_printf(b, " %s=", name);
	add_value(b, v, address);
}

char *
dkim_resinfo(const struct dkim_sig_result *r)
{
	struct dbuf b = {0};
	bool ed = strncmp(r->algorithm, "ed25519", 7) == 0;

	dbuf_printf(&b, "dkim=%s", dkim_result_name(r->result));
	if (r->result == DKIM_RESULT_PASS) {
		if (ed)
			dbuf_printf(&b, " (ed25519 key%s)", r->testing ? ", test mode" : "");
		else
			dbuf_printf(&b, " (%u-bit rsa key%s)", r->key_bits,
			            r->testing ? ", test mode" : "");
	} else if (r->reason[0] != '\0') {
		dbuf_adds(&b, " reason=");
		add_value(&b, r->reason, false);
	}
	add_prop(&b, "header.d", r->domain, false);
	add_prop(&b, "header.i", r->identity, true);
	add_prop(&b, "header.s", r->selector, false);
	add_prop(&b, "header.a", r->algorithm, false);
	add_prop(&b, "header.b", r->b, false);
	return dbuf_steal(&b);
}

/* Words of a resinfo: split at spaces outside quoted strings and comments. */
static void
fold_resinfo(struct dbuf *b, const char *s, size_t *col)
{
	bool first = true;

	while (*s) {
		size_t n = 0;
		bool quoted = false;
		int depth = 0;

		while (s[n] != '\0' && (quoted || depth > 0 || s[n] != ' ')) {
			if (s[n] == '\\' && s[n + 1] != '\0')
				n++;
			else if (s[n] == '"')
				quoted = !quoted;
			else if (!quoted && s[n] == '(')
				depth++;
			else if (!quoted && s[n] == ')' && depth > 0)
				depth--;
			n++;
		}
		/* Each resinfo starts a line; its words follow while they fit. */
		if (first || *col + 1 + n > DKIM_LINE_MAX) {
			dbuf_add(b, "\r\n ", 3);
			*col = 1;
		} else {
			dbuf_addc(b, ' ');
			(*col)++;
		}
		dbuf_add(b, s, n);
		*col += n;
		first = false;
		s += n;
		while (*s == ' ')
			s++;
	}
}

char *
auth_results_header(const char *authserv_id, const char *const *resinfo, size_t n)
{
	struct dbuf b = {0};
	size_t col;

	dbuf_adds(&b, "Authentication-Results: ");
	add_value(&b, authserv_id, true);
	dbuf_addc(&b, ';');
	col = b.len;
	if (n == 0) {
		dbuf_adds(&b, " none");
	}
	for (size_t i = 0; i < n; i++) {
		fold_resinfo(&b, resinfo[i], &col);
		if (i + 1 < n) {
			dbuf_addc(&b, ';');
			col++;
		}
	}
	dbuf_add(&b, "\r\n", 2);
	return dbuf_steal(&b);
}

char *
dkim_auth_results(const char *authserv_id, const struct dkim_results *res)
{
	size_t n = res->n ? res->n : 1;
	char **items = xcalloc(n, sizeof(*items));
	char *out;

	if (res->n == 0)
		items[0] = xstrdup("dkim=none");
	for (size_t i = 0; i < res->n; i++)
		items[i] = dkim_resinfo(&res->sigs[i]);
	out = auth_results_header(authserv_id, (const char *const *)items, n);
	for (size_t i = 0; i < n; i++)
		free(items[i]);
	free(items);
	return out;
}
