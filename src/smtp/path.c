/* smtp/path.c - Reverse-path and Forward-path (RFC 5321 §4.1.2), with the UTF-8 addresses of
 * SMTPUTF8 (RFC 6531 §3.3). */
#include <string.h>

#include "smtp/smtp.h"

enum path_fault {
	F_BRACKETS,
	F_SYNTAX,
	F_NULL,
	F_PATH_LONG,
	F_LOCAL_LONG,
	F_DOMAIN_LONG,
	F_NO_DOMAIN,
	F_NONASCII,
	F_UTF8,
	F_TRAILING,
	F_COUNT
};

/* The same fault reads 5.1.7 for a sender and 5.1.3 for a recipient (RFC 3463), so a client
 * knows which address to fix. */
static const struct smtp_error sender_faults[F_COUNT] = {
    [F_BRACKETS] = {501, "5.5.4", "Syntax: MAIL FROM:<address>"},
    [F_SYNTAX] = {501, "5.1.7", "Bad sender address syntax"},
    [F_NULL] = {501, "5.1.7", "Null sender not allowed"},
    [F_PATH_LONG] = {501, "5.1.7", "Path too long"},
    [F_LOCAL_LONG] = {501, "5.1.7", "Local part too long"},
    [F_DOMAIN_LONG] = {501, "5.1.7", "Domain too long"},
    [F_NO_DOMAIN] = {553, "5.1.7", "Sender address must contain a domain"},
    [F_NONASCII] = {553, "5.6.7", "Non-ASCII address requires SMTPUTF8"},
    [F_UTF8] = {501, "5.1.7", "Bad UTF-8 in sender address"},
    [F_TRAILING] = {501, "5.5.4", "Syntax error after address"},
};

static const struct smtp_error recipient_faults[F_COUNT] = {
    [F_BRACKETS] = {501, "5.5.4", "Syntax: RCPT TO:<address>"},
    [F_SYNTAX] = {501, "5.1.3", "Bad recipient address syntax"},
    [F_NULL] = {501, "5.1.3", "Null recipient not allowed"},
    [F_PATH_LONG] = {501, "5.1.3", "Path too long"},
    [F_LOCAL_LONG] = {501, "5.1.3", "Local part too long"},
    [F_DOMAIN_LONG] = {501, "5.1.3", "Domain too long"},
    [F_NO_DOMAIN] = {553, "5.1.3", "Recipient address must contain a domain"},
    [F_NONASCII] = {553, "5.6.7", "Non-ASCII address requires SMTPUTF8"},
    [F_UTF8] = {501, "5.1.3", "Bad UTF-8 in recipient address"},
    [F_TRAILING] = {501, "5.5.4", "Syntax error after address"},
};

static bool
alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* RFC 5321 atext, widened by RFC 6531 to UTF8-non-ascii (whether it is allowed at all and
 * well formed was settled before the grammar is walked). */
static bool
atext(unsigned char c)
{
	return alnum(c) || c >= 0x80 || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* qtextSMTP: printable ASCII except '"' and '\', plus UTF8-non-ascii. */
static bool
qtext(unsigned char c)
{
	return (c >= 32 && c <= 126 && c != '"' && c != '\\') || c >= 0x80;
}

/* Find the '>' that closes the path opened at start[0] == '<', quoted-string aware, looking
 * no further than SMTP_PATH_MAX octets so that work stays bounded. */
static enum path_fault
find_close(const unsigned char *start, const unsigned char **close)
{
	bool quoted = false;

	for (const unsigned char *p = start + 1;; p++) {
		if ((size_t)(p - start) >= SMTP_PATH_MAX)
			return F_PATH_LONG;
		if (*p == '\0')
			return F_SYNTAX;
		if (quoted && *p == '\\') {
			if (p[1] == '\0')
				return F_SYNTAX;
			p++;
		} else if (*p == '"') {
			quoted = !quoted;
		} else if (!quoted && *p == '>') {
			*close = p;
			return F_COUNT;
		}
	}
}

/* Length of the Domain or address-literal at p (stopping before end), not yet validated. */
static size_t
domain_span(const unsigned char *p, const unsigned char *end)
{
	size_t n = 0;

	if (p < end && *p == '[') {
		while (p + n < end && p[n] != ']')
			n++;
		return p + n < end ? n + 1 : n;
	}
	while (p + n < end && (alnum(p[n]) || p[n] == '.' || p[n] == '-' || p[n] >= 0x80))
		n++;
	return n;
}

static enum path_fault
check_domain(const unsigned char *p, size_t n)
{
	if (n > SMTP_DOMAIN_MAX)
		return F_DOMAIN_LONG;
	if (n > 0 && p[0] == '[')
		return smtp_address_literal_valid((const char *)p, n) ? F_COUNT : F_SYNTAX;
	return smtp_domain_valid((const char *)p, n, true) ? F_COUNT : F_SYNTAX;
}

/* A-d-l = At-domain *( "," At-domain ) ":" — parsed so that a well-formed route is accepted
 * and then dropped (RFC 5321 §4.1.2 and Appendix C: relays ignore it). */
static enum path_fault
skip_route(const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = *pp;
	enum path_fault f;

	for (;;) {
		size_t n;

		if (p >= end || *p != '@')
			return F_SYNTAX;
		p++;
		n = domain_span(p, end);
		if ((f = check_domain(p, n)) != F_COUNT)
			return f;
		p += n;
		if (p < end && *p == ',')
			p++;
		else if (p < end && *p == ':')
			break;
		else
			return F_SYNTAX;
	}
	*pp = p + 1;
	return F_COUNT;
}

/* Local-part = Dot-string / Quoted-string. */
static enum path_fault
skip_local(const unsigned char **pp, const unsigned char *end, bool *quoted)
{
	const unsigned char *p = *pp;

	if (p < end && *p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			/* quoted-pairSMTP = "\" %d32-126 */
			if (*p == '\\' && p + 1 < end && p[1] >= 32 && p[1] <= 126)
				p++;
			else if (!qtext(*p))
				return F_SYNTAX;
		}
		if (p >= end)
			return F_SYNTAX;
		*quoted = true;
		*pp = p + 1;
		return F_COUNT;
	}
	for (;;) {
		const unsigned char *atom = p;

		while (p < end && atext(*p))
			p++;
		if (p == atom)
			return F_SYNTAX;
		if (p >= end || *p != '.')
			break;
		p++;
	}
	*pp = p;
	return F_COUNT;
}

static bool
has_nonascii(const unsigned char *p, const unsigned char *end)
{
	for (; p < end; p++) {
		if (*p >= 0x80)
			return true;
	}
	return false;
}

static enum path_fault
parse(const unsigned char *start, bool allow_null, bool utf8_ok, struct smtp_path *path,
      const unsigned char **after)
{
	const unsigned char *end, *p, *local, *domain;
	enum path_fault f;
	size_t local_len, domain_len;

	if ((f = find_close(start, &end)) != F_COUNT)
		return f;
	*after = end + 1;
	p = start + 1;
	if (p == end) {
		if (!allow_null)
			return F_NULL;
		path->null = true;
		return F_COUNT;
	}

	/* Settle the character set before the grammar: an RFC 5321 client that sends a UTF-8
	 * address without SMTPUTF8 needs 5.6.7, not a syntax error. */
	path->utf8 = has_nonascii(p, end);
	if (path->utf8 && !utf8_ok)
		return F_NONASCII;
	if (path->utf8 && !smtp_utf8_valid((const char *)p, (size_t)(end - p)))
		return F_UTF8;

	if (*p == '@') {
		if ((f = skip_route(&p, end)) != F_COUNT)
			return f;
		path->source_route = true;
	}
	local = p;
	if ((f = skip_local(&p, end, &path->quoted)) != F_COUNT)
		return f;
	local_len = (size_t)(p - local);
	if (p == end)
		return local_len > SMTP_LOCAL_PART_MAX ? F_LOCAL_LONG : F_NO_DOMAIN;
	if (*p != '@')
		return F_SYNTAX;
	domain = ++p;
	domain_len = domain_span(domain, end);
	if (domain_len == 0 || domain + domain_len != end)
		return F_SYNTAX;
	if ((f = check_domain(domain, domain_len)) != F_COUNT)
		return f;
	if (local_len > SMTP_LOCAL_PART_MAX)
		return F_LOCAL_LONG;

	/* Lengths were bounded above, so these copies fit by construction. */
	memcpy(path->local, local, local_len);
	path->local[local_len] = '\0';
	memcpy(path->domain, domain, domain_len);
	path->domain[domain_len] = '\0';
	memcpy(path->mailbox, local, local_len);
	path->mailbox[local_len] = '@';
	memcpy(path->mailbox + local_len + 1, domain, domain_len);
	path->mailbox[local_len + 1 + domain_len] = '\0';
	return F_COUNT;
}

int
smtp_path_parse(const char *args, bool is_sender, bool allow_null, bool utf8_ok,
                struct smtp_path *path, const char **params, struct smtp_error *err)
{
	const struct smtp_error *faults = is_sender ? sender_faults : recipient_faults;
	const unsigned char *p = (const unsigned char *)(args != NULL ? args : "");
	const unsigned char *after = NULL;
	enum path_fault f;

	memset(path, 0, sizeof(*path));
	if (params != NULL)
		*params = "";

	/* RFC 5321 wants "FROM:<", but enough clients send "FROM: <" that refusing it helps
	 * no one; one space is the whole of the leniency. */
	if (*p == ' ')
		p++;
	if (*p != '<')
		f = F_BRACKETS;
	else
		f = parse(p, allow_null, utf8_ok, path, &after);
	if (f == F_COUNT) {
		if (*after == ' ') {
			while (*after == ' ')
				after++;
		} else if (*after != '\0') {
			f = F_TRAILING;
		}
	}
	if (f != F_COUNT) {
		memset(path, 0, sizeof(*path));
		if (err != NULL)
			*err = faults[f];
		return -1;
	}
	if (params != NULL)
		*params = (const char *)after;
	return 0;
}
