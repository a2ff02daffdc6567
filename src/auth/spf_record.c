/* spf_record.c - an SPF record's terms (RFC 7208 §4.6, §5, §6 and the ABNF of §12), parsed
 * whole before any is evaluated: §4.6 makes a syntax error anywhere in the record a permerror,
 * even after a mechanism that would have matched.
 *
 *   record  = version terms *SP         terms     = *( 1*SP ( directive / modifier ) )
 *   directive = [ qualifier ] mechanism  modifier = redirect / explanation / unknown-modifier
 *   unknown-modifier = name "=" macro-string   name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." )
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "auth/spf_internal.h"
#include "core/core.h"

static const struct {
	const char *name;
	enum spf_mech mech;
} mechanisms[] = {
    {"all", SPF_M_ALL}, {"include", SPF_M_INCLUDE}, {"a", SPF_M_A},     {"mx", SPF_M_MX},
    {"ptr", SPF_M_PTR}, {"ip4", SPF_M_IP4},         {"ip6", SPF_M_IP6}, {"exists", SPF_M_EXISTS},
};

size_t
spf_version_len(const char *text, size_t len)
{
	if (len < 6 || strncasecmp(text, "v=spf1", 6) != 0)
		return 0;
	return len == 6 || text[6] == ' ' ? 6 : 0;
}

size_t
senderid_version_len(const char *text, size_t len, bool *pra, bool *mfrom)
{
	size_t i = 7;

	*pra = *mfrom = false;
	if (len < 8 || strncasecmp(text, "spf2.0/", 7) != 0)
		return 0;
	/* RFC 4406 §3.1: "spf2.0/" scope *( "," scope ), scope = "mfrom" / "pra" / name. */
	for (;;) {
		size_t start = i;

		while (i < len && (isalnum((unsigned char)text[i]) || text[i] == '-' ||
		                   text[i] == '_' || text[i] == '.'))
			i++;
		if (i == start)
			return 0;
		if (i - start == 3 && strncasecmp(text + start, "pra", 3) == 0)
			*pra = true;
		if (i - start == 5 && strncasecmp(text + start, "mfrom", 5) == 0)
			*mfrom = true;
		if (i < len && text[i] == ',') {
			i++;
			continue;
		}
		break;
	}
	if (i < len && text[i] != ' ') {
		*pra = *mfrom = false;
		return 0;
	}
	return i;
}

static int __attribute__((format(printf, 5, 6)))
term_error(char *err, size_t errlen, size_t n, const char *term, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(err, errlen, "term %zu \"%.80s\": %s", n, term, what);
	return -1;
}

/* toplabel = ( *alphanum ALPHA *alphanum ) / ( 1*alphanum "-" *( alphanum / "-" ) alphanum ):
 * letters, digits and hyphens, not at either end, and not all digits (§7.1; "a:1.2.3.4" is a
 * common mistake for "ip4:1.2.3.4"). */
static bool
toplabel_is_valid(const char *s, size_t n)
{
	bool alpha = false, hyphen = false;

	if (n == 0 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isalpha(c))
			alpha = true;
		else if (c == '-')
			hyphen = true;
		else if (!isdigit(c))
			return false;
	}
	return alpha || hyphen;
}

/* domain-spec = macro-string domain-end; domain-end = ( "." toplabel [ "." ] ) / macro-expand */
static int
domain_spec_check(const char *s, size_t n, const char **why)
{
	bool macro_end;
	size_t end = n, dot;

	if (n == 0) {
		*why = "an empty domain-spec";
		return -1;
	}
	if (spf_macro_syntax(s, n, 0, &macro_end, why) == -1)
		return -1;
	if (macro_end)
		return 0;
	if (s[end - 1] == '.')
		end--;
	/* The top label: after the last dot, which must come after the last macro. */
	for (dot = end; dot > 0 && s[dot - 1] != '.' && s[dot - 1] != '}'; dot--)
		;
	if (dot == 0 || s[dot - 1] != '.' || !toplabel_is_valid(s + dot, end - dot)) {
		*why = "a domain-spec must end with a macro or a dot and a valid top label "
		       "(letters, digits, hyphens; not all digits)";
		return -1;
	}
	return 0;
}

/* "/" cidr with no leading zero (the OpenSPF suite: "/032" is an error, as in ip4-network). */
static int
cidr_parse(const char *s, size_t n, unsigned max, unsigned *bits)
{
	unsigned v = 0;

	if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v > max)
		return -1;
	*bits = v;
	return 0;
}

/* The dual-cidr-length at the end of s[0..*n) ("/24", "//64", "/24//64"): removes it from *n.
 * -1 if one is there but out of range or malformed. */
static int
dual_cidr_strip(const char *s, size_t *n, struct spf_term *t, const char **why)
{
	size_t end = *n, d = end;

	t->cidr4 = 32;
	t->cidr6 = 128;
	for (int pass = 0; pass < 2; pass++) {
		d = end;
		while (d > 0 && isdigit((unsigned char)s[d - 1]))
			d--;
		if (d == end || d == 0 || s[d - 1] != '/')
			break;
		if (d >= 2 && s[d - 2] == '/') {
			if (pass == 1)
				break; /* "//64//64" */
			if (cidr_parse(s + d, end - d, 128, &t->cidr6) == -1) {
				*why =
				    "an IPv6 prefix length must be 0 to 128, without leading zeros";
				return -1;
			}
			end = d - 2;
			continue;
		}
		if (cidr_parse(s + d, end - d, 32, &t->cidr4) == -1) {
			*why = "an IPv4 prefix length must be 0 to 32, without leading zeros";
			return -1;
		}
		end = d - 1;
		break;
	}
	*n = end;
	return 0;
}

/* ip4-network = qnum "." qnum "." qnum "." qnum, qnum = 0 to 255 without leading zeros. */
static int
ip4_parse(const char *s, size_t n, struct dns_address *a)
{
	unsigned char b[4];
	size_t i = 0;

	for (int k = 0; k < 4; k++) {
		size_t start = i;
		unsigned v = 0;

		while (i < n && isdigit((unsigned char)s[i]) && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
			return -1;
		b[k] = (unsigned char)v;
		if (k < 3) {
			if (i >= n || s[i] != '.')
				return -1;
			i++;
		}
	}
	if (i != n)
		return -1;
	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	memcpy(&a->u.v4, b, 4);
	return 0;
}

static int
ip6_parse(const char *s, size_t n, struct dns_address *a)
{
	char buf[INET6_ADDRSTRLEN + 1];

	if (n == 0 || n >= sizeof(buf))
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET6, buf, &a->u.v6) != 1)
		return -1;
	a->family = AF_INET6;
	return 0;
}

/* A mechanism: its name is s[0..namelen), what follows is s[namelen..n). */
static int
mechanism_parse(const char *s, size_t namelen, size_t n, struct spf_term *t, const char **why)
{
	const char *rest = s + namelen;
	size_t rn = n - namelen;
	size_t i;

	for (i = 0; i < nitems(mechanisms); i++) {
		if (strlen(mechanisms[i].name) == namelen &&
		    strncasecmp(s, mechanisms[i].name, namelen) == 0)
			break;
	}
	if (i == nitems(mechanisms)) {
		*why = "unknown mechanism";
		return -1;
	}
	t->mech = mechanisms[i].mech;
	if (rn > 0 && rest[0] != ':' && rest[0] != '/') {
		*why = "unknown mechanism";
		return -1;
	}
	switch (t->mech) {
	case SPF_M_ALL:
		if (rn != 0) {
			*why = "\"all\" takes no argument";
			return -1;
		}
		return 0;
	case SPF_M_INCLUDE:
	case SPF_M_EXISTS:
		if (rn == 0 || rest[0] != ':') {
			*why = "needs \":\" and a domain-spec";
			return -1;
		}
		if (domain_spec_check(rest + 1, rn - 1, why) == -1)
			return -1;
		t->spec = xstrndup(rest + 1, rn - 1);
		return 0;
	case SPF_M_A:
	case SPF_M_MX:
		if (dual_cidr_strip(rest, &rn, t, why) == -1)
			return -1;
		if (rn == 0)
			return 0;
		if (rest[0] != ':') {
			*why = "expected \":\" domain-spec or a prefix length";
			return -1;
		}
		if (domain_spec_check(rest + 1, rn - 1, why) == -1)
			return -1;
		t->spec = xstrndup(rest + 1, rn - 1);
		return 0;
	case SPF_M_PTR:
		if (rn == 0)
			return 0;
		if (rest[0] != ':') {
			*why = "\"ptr\" takes no prefix length";
			return -1;
		}
		if (domain_spec_check(rest + 1, rn - 1, why) == -1)
			return -1;
		t->spec = xstrndup(rest + 1, rn - 1);
		return 0;
	case SPF_M_IP4:
	case SPF_M_IP6: {
		bool v4 = t->mech == SPF_M_IP4;
		const char *slash;
		size_t netlen;

		if (rn < 2 || rest[0] != ':') {
			*why = v4 ? "needs \":\" and an IPv4 network"
			          : "needs \":\" and an IPv6 network";
			return -1;
		}
		rest++;
		rn--;
		slash = memchr(rest, '/', rn);
		netlen = slash != NULL ? (size_t)(slash - rest) : rn;
		if ((v4 ? ip4_parse(rest, netlen, &t->net) : ip6_parse(rest, netlen, &t->net)) ==
		    -1) {
			*why = v4 ? "not an IPv4 address (four decimal numbers 0 to 255, no "
			            "leading zeros)"
			          : "not an IPv6 address";
			return -1;
		}
		t->cidr4 = 32;
		t->cidr6 = 128;
		if (slash != NULL && cidr_parse(slash + 1, rn - netlen - 1, v4 ? 32 : 128,
		                                v4 ? &t->cidr4 : &t->cidr6) == -1) {
			*why =
			    v4 ? "an IPv4 prefix length must be /0 to /32, without leading zeros"
			       : "an IPv6 prefix length must be /0 to /128, without leading zeros";
			return -1;
		}
		return 0;
	}
	}
	*why = "unknown mechanism";
	return -1;
}

void
spf_record_free(struct spf_record *rec)
{
	for (size_t i = 0; i < rec->nterms; i++) {
		free(rec->terms[i].spec);
		free(rec->terms[i].text);
	}
	free(rec->terms);
	free(rec->redirect);
	free(rec->exp);
	memset(rec, 0, sizeof(*rec));
}

int
spf_record_parse(const char *text, size_t len, struct spf_record *rec, char *err, size_t errlen)
{
	size_t cap = 0, nterm = 0;

	memset(rec, 0, sizeof(*rec));
	/* §3.1 and §4.6.1: a record is printable US-ASCII; terms are separated by spaces and
	 * nothing else (not tabs, not line ends). */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)text[i];

		if (c < 0x20 || c > 0x7e) {
			snprintf(err, errlen,
			         "octet 0x%02x at offset %zu: SPF records are printable ASCII", c,
			         i);
			return -1;
		}
	}
	for (size_t i = 0; i < len;) {
		const char *s, *why = NULL;
		size_t n, name;
		struct spf_term t = {.qualifier = SPF_PASS};
		bool qualified = false;
		char shown[128];

		while (i < len && text[i] == ' ')
			i++;
		if (i == len)
			break;
		s = text + i;
		while (i < len && text[i] != ' ')
			i++;
		n = (size_t)(text + i - s);
		nterm++;
		snprintf(shown, sizeof(shown), "%.*s", (int)(n < 100 ? n : 100), s);
		if (strchr("+-~?", s[0]) != NULL) {
			t.qualifier = s[0] == '+'   ? SPF_PASS
			              : s[0] == '-' ? SPF_FAIL
			              : s[0] == '~' ? SPF_SOFTFAIL
			                            : SPF_NEUTRAL;
			qualified = true;
			s++;
			n--;
		}
		if (n == 0 || !isalpha((unsigned char)s[0])) {
			spf_record_free(rec);
			return term_error(
			    err, errlen, nterm, shown,
			    "a term starts with a letter (after an optional qualifier)");
		}
		for (name = 1; name < n && (isalnum((unsigned char)s[name]) || s[name] == '-' ||
		                            s[name] == '_' || s[name] == '.');
		     name++)
			;
		if (name < n && s[name] == '=') {
			/* A modifier. redirect and exp are never unknown modifiers, whatever
			 * follows (the suite's redirect-syntax-error: "redirect=-all" is an error).
			 */
			const char *value = s + name + 1;
			size_t vn = n - name - 1;
			char **slot = NULL;

			if (qualified) {
				spf_record_free(rec);
				return term_error(err, errlen, nterm, shown,
				                  "a modifier takes no qualifier");
			}
			if (name == 8 && strncasecmp(s, "redirect", 8) == 0)
				slot = &rec->redirect;
			else if (name == 3 && strncasecmp(s, "exp", 3) == 0)
				slot = &rec->exp;
			if (slot != NULL) {
				/* §6: "These two modifiers MUST NOT appear in a record more than
				 * once". */
				if (*slot != NULL)
					why = "appears twice";
				else if (domain_spec_check(value, vn, &why) == 0)
					*slot = xstrndup(value, vn);
			} else {
				/* §4.6.1: unknown modifiers are ignored, but must be macro-strings.
				 */
				(void)spf_macro_syntax(value, vn, 0, NULL,
				                       &why); /* why set on error */
			}
			if (why != NULL) {
				spf_record_free(rec);
				return term_error(err, errlen, nterm, shown, "%s", why);
			}
			continue;
		}
		if (mechanism_parse(s, name, n, &t, &why) == -1) {
			free(t.spec);
			spf_record_free(rec);
			return term_error(err, errlen, nterm, shown, "%s", why);
		}
		t.text = xstrndup(qualified ? s - 1 : s, qualified ? n + 1 : n);
		if (rec->nterms == cap) {
			cap = cap ? 2 * cap : 8;
			rec->terms = xrealloc(rec->terms, cap * sizeof(*rec->terms));
		}
		rec->terms[rec->nterms++] = t;
	}
	return 0;
}

int
spf_record_check(const char *text, size_t len, char *err, size_t errlen)
{
	struct spf_record rec;
	size_t v = spf_version_len(text, len);
	bool pra, mfrom;

	if (v == 0)
		v = senderid_version_len(text, len, &pra, &mfrom);
	if (v == 0) {
		snprintf(err, errlen,
		         "not an SPF record (it must start with \"v=spf1\" then a space)");
		return 0;
	}
	if (spf_record_parse(text + v, len - v, &rec, err, errlen) == -1)
		return -1;
	spf_record_free(&rec);
	if (errlen > 0)
		err[0] = '\0';
	return 1;
}
