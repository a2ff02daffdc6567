/* smtp/smtp.h - the SMTP protocol that the server (ingress) and the client (delivery) share:
 * command lines, paths and addresses, ESMTP parameters (SIZE, BODY, SMTPUTF8, DSN), xtext.
 *
 * Every parser here is pure: no allocation beyond what it returns, no I/O, bounded work for
 * any input (they are fuzzed). A parse error comes back as a struct smtp_error naming the
 * reply code and RFC 3463 enhanced status a standards-aware peer acts on.
 */
#ifndef DROVER_SMTP_H
#define DROVER_SMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 5321 §4.5.3.1 size limits. */
#define SMTP_LOCAL_PART_MAX 64
#define SMTP_DOMAIN_MAX     255
#define SMTP_PATH_MAX       256 /* reverse-path / forward-path incl. the angle brackets */
#define SMTP_ENVID_MAX      100 /* RFC 3461 §4.4, after xtext decoding */
#define SMTP_ORCPT_MAX      500 /* RFC 3461 §4.2, as sent (addr-type ";" xtext) */

/* A rejection: reply code, enhanced status ("5.5.4") and a human text without CRLF. */
struct smtp_error {
	int code;
	const char *status;
	const char *text;
};

/* ---- Command lines ---- */

enum smtp_verb {
	SMTP_UNKNOWN = 0,
	SMTP_EHLO,
	SMTP_HELO,
	SMTP_MAIL,
	SMTP_RCPT,
	SMTP_DATA,
	SMTP_BDAT,
	SMTP_RSET,
	SMTP_NOOP,
	SMTP_QUIT,
	SMTP_VRFY,
	SMTP_EXPN,
	SMTP_HELP,
	SMTP_STARTTLS,
	SMTP_AUTH,
	SMTP_VERB_COUNT
};

struct smtp_command {
	enum smtp_verb verb;
	const char *verb_text; /* canonical upper-case name, "" for SMTP_UNKNOWN */
	const char *args;      /* points into the line: after "MAIL FROM:" / "RCPT TO:" for
	                          those two, else after the verb and its spaces; "" if none */
};

/* Split one command line (without its CRLF; may contain any bytes except that len bounds it)
 * into verb and arguments. Verbs are case-insensitive. "MAIL FROM:" and "RCPT TO:" are
 * recognised with optional spaces before the path (RFC 5321 §3.3 says none, real clients send
 * one). Returns 0, or -1 with *err for: an unknown verb (500 5.5.2), a NUL byte or other
 * control character in the line (500 5.5.2), a malformed MAIL/RCPT (501 5.5.4).
 * cmd->args is used as a C string, so line[len] must be '\0' (the line itself never holds
 * one: that is refused). For MAIL/RCPT, args starts right after the colon; the one optional
 * space before "<" is smtp_path_parse()'s to accept. */
int smtp_command_parse(const char *line, size_t len, struct smtp_command *cmd,
                       struct smtp_error *err);

/* Verb name for logs ("MAIL"); "?" for unknown. */
const char *smtp_verb_name(enum smtp_verb);

/* ---- Paths and addresses ---- */

struct smtp_path {
	bool null;         /* "<>" */
	bool source_route; /* "<@a,@b:user@d>" was given (the route itself is dropped) */
	bool utf8;         /* contains non-ASCII octets (valid UTF-8, RFC 6531) */
	bool quoted;       /* local part was a quoted-string */
	char local[SMTP_LOCAL_PART_MAX * 4 + 3]; /* as received, quotes included; UTF-8 allowed */
	char domain[SMTP_DOMAIN_MAX + 1];    /* "example.com" or an address literal "[192.0.2.1]" */
	char mailbox[SMTP_PATH_MAX * 4 + 1]; /* "local@domain", "" for the null path */
};

/* Parse "<path>" followed by optional " PARAM=value ..." in args. On success *params points
 * at the first parameter (or at the terminating NUL). utf8_ok: non-ASCII octets allowed
 * (SMTPUTF8 was given; they must still be valid UTF-8). allow_null: "<>" accepted (MAIL).
 * Addresses without a domain are errors (553 5.1.3 for RCPT, 553 5.1.7 for MAIL: pass
 * is_sender). Too long: 501 5.1.3 / 501 5.1.7. Non-ASCII without utf8_ok: 553 5.6.7. */
int smtp_path_parse(const char *args, bool is_sender, bool allow_null, bool utf8_ok,
                    struct smtp_path *path, const char **params, struct smtp_error *err);
/* MAIL's SMTPUTF8 parameter comes after the path it licenses, so for MAIL pass
 * utf8_ok = offer.smtputf8, parse the parameters, then refuse with 553 5.6.7 if path.utf8 and
 * not params.smtputf8. Other faults: no "<" (one space before it tolerated) or junk after ">"
 * 501 5.5.4; "<>" when !allow_null 501 5.1.3/5.1.7; a source route is accepted and dropped
 * (path.source_route tells); '%' and '!' are ordinary local-part characters here.
 * Lengths are octets: local part 64 (quotes included), domain 255, path 256. */

/* RFC 5321 Domain: dot-separated labels of letters, digits and inner hyphens (<= 63 octets
 * each), <= 255 octets, no trailing dot; with utf8_ok also UTF-8 U-labels. */
bool smtp_domain_valid(const char *s, size_t len, bool utf8_ok);
/* RFC 5321 §4.1.3 address literal: "[192.0.2.1]" or "[IPv6:2001:db8::1]". */
bool smtp_address_literal_valid(const char *s, size_t len);
/* The form of a recipient domain that the DNS knows: a domain with non-ASCII octets (an
 * SMTPUTF8 address, RFC 6531 §3.2) becomes its A-labels by IDNA2008 (RFC 5891) with UTS #46
 * non-transitional mapping (libidn2, as browsers and mailbox providers convert), so
 * "Bücher.example" is "xn--bcher-kva.example" and "faß.de" is "xn--fa-hia.de". An ASCII
 * domain (A-labels included) is only lower-cased: its validity is the DNS's to judge. Writes
 * at most size octets with the NUL. Returns 0, or -1 with a reason in why (static): not
 * UTF-8, a disallowed character, a bad hyphen, a label or name too long, or out too small. */
int smtp_domain_to_ascii(const char *domain, char *out, size_t size, const char **why);

/* ---- ESMTP parameters ---- */

enum smtp_body { SMTP_BODY_7BIT = 0, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };
enum smtp_dsn_ret { SMTP_DSN_RET_UNSPEC = 0, SMTP_DSN_RET_FULL, SMTP_DSN_RET_HDRS };

/* RFC 3461 NOTIFY bits; 0 means the client did not say (defaults to FAILURE,DELAY). */
#define SMTP_NOTIFY_NEVER   0x1
#define SMTP_NOTIFY_SUCCESS 0x2
#define SMTP_NOTIFY_FAILURE 0x4
#define SMTP_NOTIFY_DELAY   0x8

/* What the server offers; a parameter of an extension not offered is 555 5.5.4. */
struct smtp_offer {
	bool size, eightbitmime, smtputf8, dsn, binarymime;
};

struct smtp_mail_params {
	bool size_given;
	uint64_t size;
	enum smtp_body body;
	bool smtputf8;
	enum smtp_dsn_ret ret;
	bool envid_given;
	char envid[SMTP_ENVID_MAX * 3 + 1]; /* kept in xtext form, as received (validated) */
};

struct smtp_rcpt_params {
	unsigned notify; /* SMTP_NOTIFY_* bits, 0 = not given */
	bool orcpt_given;
	char orcpt[SMTP_ORCPT_MAX + 1]; /* "rfc822;user@example.com" as received (validated) */
};

/* Parse the parameters after a MAIL FROM path. Errors: unknown or not-offered parameter
 * 555 5.5.4; repeated parameter, bad value (SIZE not a number, BODY other than 7BIT /
 * 8BITMIME, RET other than FULL/HDRS, ENVID not valid xtext or too long) 501 5.5.4. */
int smtp_mail_params_parse(const char *params, const struct smtp_offer *offer,
                           struct smtp_mail_params *out, struct smtp_error *err);

/* Parse the parameters after a RCPT TO path: NOTIFY (NEVER alone, or a comma list of
 * SUCCESS, FAILURE, DELAY), ORCPT (addr-type ";" xtext, addr-type an atom, "rfc822" or
 * "utf-8" typical). Same error conventions as above. */
int smtp_rcpt_params_parse(const char *params, const struct smtp_offer *offer,
                           struct smtp_rcpt_params *out, struct smtp_error *err);

/* RFC 3461 §4 xtext: validate (true if every "+" is followed by two upper-case hex digits
 * and every other char is in 33..126 except "+" and "="), and decode into out (NUL-ended);
 * returns the decoded length or -1 if invalid or it does not fit. */
bool smtp_xtext_valid(const char *s, size_t len);
int smtp_xtext_decode(const char *s, size_t len, char *out, size_t outsize);

/* ---- EHLO / HELO argument ---- */

/* A domain name or address literal as the client's EHLO/HELO argument. Returns false on an
 * empty argument or one with spaces, controls or over SMTP_DOMAIN_MAX octets (501 5.5.4). */
bool smtp_helo_valid(const char *arg);

/* ---- UTF-8 ---- */

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool smtp_utf8_valid(const char *s, size_t len);
/* Length of the UTF-8 sequence starting at p (at most n octets available, n >= 1), or 0 if it
 * is malformed (overlong, surrogate, past U+10FFFF, truncated). */
size_t smtp_utf8_seq_len(const unsigned char *p, size_t n);

/* ---- Replies (what the client reads) ---- */

/* A reply is kept bounded whatever the server sends: RFC 5321 §4.5.3.1.5 allows 512 octets
 * per line, real servers send longer lines and long multi-line replies (EHLO, Gmail's
 * rejections). Past these bounds text is dropped, but the reply is still parsed to its end. */
#define SMTP_REPLY_TEXT_MAX  4096 /* octets of text kept, lines joined with "\n" */
#define SMTP_REPLY_LINES_MAX 64   /* lines kept */
/* RFC 3463 status-code: class "." subject "." detail, subject and detail 1-3 digits. */
#define SMTP_STATUS_MAX 9 /* "5.123.456" */

/* One reply, possibly multi-line ("250-a", "250-b", "250 c"), accumulated line by line. */
struct smtp_reply {
	int code;                         /* 200..599; 0 until the first line */
	char status[SMTP_STATUS_MAX + 1]; /* RFC 3463 enhanced status of the first line, "" if
	                                     none; its class is always the code's */
	bool done;                        /* the last line ("250 " or "250") has been fed */
	bool truncated;                   /* text was dropped (too many lines or octets) */
	unsigned lines;                   /* lines fed, dropped ones included */
	unsigned lines_kept;              /* lines in text */
	size_t text_len;                  /* strlen(text) */
	/* The lines' text, after the code and its separator and, on each line, after the
	 * enhanced status when the first line had one (Gmail repeats it on every line); joined
	 * with "\n". Control octets other than TAB become "?" so that "\n" only separates
	 * lines; octets >= 0x80 are kept (RFC 6531 servers may send UTF-8). */
	char text[SMTP_REPLY_TEXT_MAX + 1];
};

/* Starts an empty reply; call it before each reply. */
void smtp_reply_init(struct smtp_reply *);

/* Feeds one reply line without its CRLF (line[0..len), any octets). Returns 0 when more lines
 * are expected, 1 when this line completed the reply, -1 on a protocol error, which leaves
 * the reply unusable and fills *err (if not NULL) with the local reply a client acts on,
 * 451 4.5.0 with a description: a line without a 3-digit code (first digit 2-5), a code
 * followed by something other than " ", "-" or the end of the line, a code different from
 * the first line's, or a line fed after the reply was done.
 * The enhanced status is taken from the first line whether or not ENHANCEDSTATUSCODES was
 * announced (servers send it regardless, and the greeting and the EHLO reply precede the
 * announcement): a syntactically valid "c.s.d" followed by a space or the end of the line.
 * A class that disagrees with the reply code is replaced by the code's (the code governs). */
int smtp_reply_feed(struct smtp_reply *, const char *line, size_t len, struct smtp_error *err);

/* The enhanced status, or the class default ("2.0.0", "4.0.0", "5.0.0") when the server gave
 * none; "" for other codes (3xx). */
const char *smtp_reply_status(const struct smtp_reply *);

/* True if s[0..len) is an RFC 3463 status-code whose class is 2, 4 or 5. */
bool smtp_status_valid(const char *s, size_t len);

/* ---- EHLO capabilities ---- */

#define SMTP_EHLO_AUTH_MAX 127 /* octets of AUTH mechanism names kept */

/* What the server announced in its EHLO reply. */
struct smtp_ehlo {
	bool pipelining;          /* RFC 2920 */
	bool size;                /* RFC 1870 */
	uint64_t size_max;        /* SIZE's argument; 0: none or unreadable (no fixed limit) */
	bool eightbitmime;        /* RFC 6152 */
	bool smtputf8;            /* RFC 6531 */
	bool enhancedstatuscodes; /* RFC 2034 */
	bool chunking;            /* RFC 3030 BDAT */
	bool binarymime;          /* RFC 3030 */
	bool dsn;                 /* RFC 3461 */
	bool starttls;            /* RFC 3207 */
	bool auth;                /* RFC 4954, also the old "AUTH=" form */
	char auth_mechanisms[SMTP_EHLO_AUTH_MAX + 1]; /* upper-case, space-separated, "" if none */
};

/* Reads the keywords of a complete EHLO reply (lines after the first; case-insensitive;
 * unknown ones ignored) into *ehlo, which is cleared first. Only the kept text is read:
 * extensions announced past SMTP_REPLY_LINES_MAX lines are not seen. */
void smtp_ehlo_parse(const struct smtp_reply *, struct smtp_ehlo *);

#endif
