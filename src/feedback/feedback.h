/* feedback/feedback.h - what comes back after delivery: VERP return paths, asynchronous
 * bounces (RFC 3464 DSNs and the plain-text bounces of older MTAs) and feedback-loop
 * complaints (RFC 5965 ARF reports).
 *
 * VERP: every outgoing copy can carry its own return path, bounce+TOKEN@bounce-domain, where
 * TOKEN names the queue id, the recipient's index in the envelope and (by a tag) the
 * message's tenant, and is authenticated with a truncated HMAC-SHA256, so that a bounce
 * that arrives days later is tied to the message, recipient and tenant it is about, and a
 * forged one is refused.
 *
 * Parsing: feedback_parse() reads a whole message as received (hostile input from the
 * network) and says what it is and what it reports, into plain structs of bounded strings.
 * feedback_attribute() then ties the report to one of our messages through VERP.
 *
 * Everything here is pure: no I/O, no clock, no shared state, no randomness. Work and memory
 * are bounded for any input (FEEDBACK_* limits below; the parser is fuzzed). Any thread may
 * call any function. Strings in results are always NUL-terminated, valid UTF-8, without
 * control characters (folding, CR, LF and TAB become single spaces), cut at a character
 * boundary when too long.
 */
#ifndef DROVER_FEEDBACK_H
#define DROVER_FEEDBACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp.h"

/* ==== VERP return paths ==== */

/* A queue id as the spool writes it (spool.h SPOOL_ID_LEN): 24 lower-case hex digits. */
#define FEEDBACK_QUEUE_ID_LEN 24
/* The token written (version 2): 35 octets in base32 (RFC 4648, lower case, no padding),
 * 56 characters:
 * version (1) | queue id (12) | recipient index (3) | recipient tag (4) | tenant tag (5) |
 * MAC (10). */
#define FEEDBACK_VERP_TOKEN_LEN 56
/* Version 1, still read: 30 octets, 48 characters, without the tenant tag (no tenant). */
#define FEEDBACK_VERP_TOKEN_V1_LEN 48
/* The prefix before "+": the local part must stay within RFC 5321's 64 octets, and
 * 7 + 1 + 56 = 64. */
#define FEEDBACK_VERP_PREFIX_MAX 7
/* Tenant names a token can carry (suppress.h SUPPRESS_TENANT_MAX). */
#define FEEDBACK_TENANT_MAX      64
#define FEEDBACK_VERP_PREFIX_DEF "bounce"
/* Recipient indexes fit in 3 octets (conf allows at most 100,000 recipients a message). */
#define FEEDBACK_VERP_RCPT_MAX 0xffffff
/* Secrets: shorter than 16 octets is guessable offline from one token; longer than 128
 * buys nothing over HMAC-SHA256's block. */
#define FEEDBACK_SECRET_MIN 16
#define FEEDBACK_SECRET_MAX 128
/* A VERP address: local part, "@", domain, NUL. */
#define FEEDBACK_VERP_ADDR_MAX (SMTP_LOCAL_PART_MAX + 1 + SMTP_DOMAIN_MAX + 1)

/* The configured prefix and secrets. Two secrets for rotation: tokens are signed with the
 * current one and either is accepted, so a new secret can be introduced while bounces for
 * mail signed with the old one still arrive (up to a few days). */
struct feedback_verp_keys {
	char prefix[FEEDBACK_VERP_PREFIX_MAX + 1];
	unsigned nsecrets; /* 1 or 2 */
	struct {
		unsigned char key[FEEDBACK_SECRET_MAX];
		size_t len;
	} secret[2]; /* [0] signs; [1], if any, is only accepted */
};

/* Fills *keys. prefix: NULL for FEEDBACK_VERP_PREFIX_DEF, else 1..FEEDBACK_VERP_PREFIX_MAX
 * of [A-Za-z0-9._-] (no "+": it separates the token). current: the signing secret;
 * previous: NULL, or the one it replaced, still accepted. Returns 0, or -1 with the reason
 * in err: a bad prefix, a secret shorter than FEEDBACK_SECRET_MIN or longer than
 * FEEDBACK_SECRET_MAX, or two equal secrets. */
int feedback_verp_keys_init(struct feedback_verp_keys *keys, const char *prefix,
                            const char *current, const char *previous, char *err, size_t errlen);
/* Overwrites the secrets (OPENSSL_cleanse) before the struct is freed or reused. */
void feedback_verp_keys_wipe(struct feedback_verp_keys *keys);

/* Writes "prefix+TOKEN@domain" into out (FEEDBACK_VERP_ADDR_MAX is enough). queue_id: 24 hex
 * digits (either case); rcpt: the recipient's index in the envelope (<=
 * FEEDBACK_VERP_RCPT_MAX); rcpt_address: that recipient's address, of which only a 4-octet
 * keyed tag goes into the token (see feedback_verp_rcpt_matches()); tenant: the message's
 * tenant (NULL or "" for none, at most FEEDBACK_TENANT_MAX octets), of which only a 5-octet
 * keyed tag goes into the token (see feedback_verp_tenant_matches()); domain: the bounce
 * domain, an ASCII RFC 5321 domain. Returns the length written, or -1: a bad argument, an
 * address longer than 254 octets, or out too small. */
int feedback_verp_encode(const struct feedback_verp_keys *keys, const char *queue_id, uint32_t rcpt,
                         const char *rcpt_address, const char *tenant, const char *domain,
                         char *out, size_t outsize);

enum feedback_verp_status {
	FEEDBACK_VERP_OK = 0,
	FEEDBACK_VERP_NOT_OURS,  /* not prefix+something@domain: some other address */
	FEEDBACK_VERP_FORGED,    /* a well-formed token whose MAC no secret verifies */
	FEEDBACK_VERP_MALFORMED, /* prefix+... but not a token: wrong length or characters,
	                            an unknown version */
};
/* "ok", "not-ours", "forged", "malformed". */
const char *feedback_verp_status_name(enum feedback_verp_status);

struct feedback_verp {
	char queue_id[FEEDBACK_QUEUE_ID_LEN + 1]; /* lower-case hex */
	uint32_t rcpt;                            /* index into the envelope's recipients */
	unsigned key;                             /* the secret that verified: 0 current,
	                                             1 previous */
	unsigned char rcpt_tag[4];                /* for feedback_verp_rcpt_matches() */
	unsigned version;                         /* of the token: 1 or 2 */
	unsigned char tenant_tag[5];              /* for feedback_verp_tenant_matches();
	                                             version 2 only */
	char domain[SMTP_DOMAIN_MAX + 1];         /* as given, lower-cased */
};

/* Decodes an address ("local@domain", with or without angle brackets) that mail came back
 * to. The prefix and the token are read case-insensitively (forwarders and receivers may
 * change the case of a local part; base32 survives that). The domain is not checked: the
 * MAC authenticates the token wherever it arrives, and which domains a listener accepts is
 * its configuration's business. The MAC is compared in constant time. *out is filled only
 * for FEEDBACK_VERP_OK. */
enum feedback_verp_status feedback_verp_decode(const struct feedback_verp_keys *keys,
                                               const char *address, struct feedback_verp *out);

/* True if address (case-insensitive, angle brackets allowed) is the recipient the token was
 * made for. The token keeps only a tag of the address: the address itself would not fit in
 * 64 octets, and would show every relay who the recipient is. With the tag, an address a
 * bounce or complaint names is confirmed without any lookup; the index in the token finds it
 * in the message's records otherwise. */
bool feedback_verp_rcpt_matches(const struct feedback_verp_keys *keys,
                                const struct feedback_verp *verp, const char *address);

/* True if tenant (NULL or "" for none; compared exactly, as tenant names are) is the tenant
 * of the message the token was made for. The token keeps only a tag of the name (a name of
 * up to 64 octets would not fit): whoever reads a bounce finds its tenant among the names
 * it knows (the configuration's tenant sections). A version 1 token matches only "no
 * tenant": it never carried one. */
bool feedback_verp_tenant_matches(const struct feedback_verp_keys *keys,
                                  const struct feedback_verp *verp, const char *tenant);

/* ==== Parsing bounces and complaints ==== */

/* Bounds: work is linear in min(len, FEEDBACK_INPUT_MAX) times the nesting depth, memory at
 * most a decoded copy of each of three parts (FEEDBACK_DECODE_MAX each) and the text. */
#define FEEDBACK_INPUT_MAX                                                                         \
	(4 * 1024 * 1024)         /* octets read; the rest (a large returned                       \
	                              original) is ignored */
#define FEEDBACK_DEPTH_MAX  8     /* nested multiparts: real reports use 3 */
#define FEEDBACK_PARTS_MAX  64    /* MIME parts looked at: real reports have under 10 */
#define FEEDBACK_HEADER_MAX 65536 /* octets of one header section read for fields */
#define FEEDBACK_DECODE_MAX                                                                        \
	(1024 * 1024) /* octets of a base64 / quoted-printable part                                \
	                  decoded (10,000 DSN recipients fit) */
#define FEEDBACK_TEXT_MAX                                                                          \
	65536 /* octets of the human-readable text the plain-bounce                                \
	         heuristics read */
#define FEEDBACK_RCPT_MAX                                                                          \
	32 /* recipient entries kept (rcpt_total counts them all):                                 \
	      with VERP a bounce is about one recipient */

/* Sizes of the strings in results (without their NUL). */
#define FEEDBACK_ADDR_MAX  SMTP_PATH_MAX
#define FEEDBACK_FIELD_MAX 255
#define FEEDBACK_DIAG_MAX  1000 /* a remote reply: Gmail's multi-line 550 is ~450 */
#define FEEDBACK_TYPE_MAX  31

/* feedback_report.cut: which bound was reached. */
#define FEEDBACK_CUT_INPUT  0x01 /* input longer than FEEDBACK_INPUT_MAX */
#define FEEDBACK_CUT_DEPTH  0x02 /* multiparts nested deeper than FEEDBACK_DEPTH_MAX */
#define FEEDBACK_CUT_PARTS  0x04 /* more than FEEDBACK_PARTS_MAX parts */
#define FEEDBACK_CUT_RCPT   0x08 /* more than FEEDBACK_RCPT_MAX recipients */
#define FEEDBACK_CUT_DECODE 0x10 /* a part decoded past FEEDBACK_DECODE_MAX / TEXT_MAX */

enum feedback_kind {
	FEEDBACK_NOT_REPORT = 0, /* not a bounce or a complaint (an auto-reply, a person) */
	FEEDBACK_DSN,            /* RFC 3464 delivery-status (RFC 6522 multipart/report) */
	FEEDBACK_ARF,            /* RFC 5965 feedback-report */
	FEEDBACK_PLAIN_BOUNCE,   /* a bounce without a delivery-status part, read by heuristics */
};
/* "not-a-report", "dsn", "arf", "plain-bounce". */
const char *feedback_kind_name(enum feedback_kind);

/* RFC 3464 §2.3.3; NONE when not given (ARF entries, unreadable ones). */
enum feedback_action {
	FEEDBACK_ACTION_NONE = 0,
	FEEDBACK_ACTION_FAILED,
	FEEDBACK_ACTION_DELAYED,
	FEEDBACK_ACTION_DELIVERED,
	FEEDBACK_ACTION_RELAYED,
	FEEDBACK_ACTION_EXPANDED,
};
/* "", "failed", "delayed", "delivered", "relayed", "expanded". */
const char *feedback_action_name(enum feedback_action);

/* RFC 5965 §7.3 Feedback-Type, with RFC 6430's not-spam and RFC 6591's auth-failure. */
enum feedback_type {
	FEEDBACK_TYPE_UNKNOWN = 0, /* absent, or not a registered type (raw text kept) */
	FEEDBACK_TYPE_ABUSE,
	FEEDBACK_TYPE_FRAUD,
	FEEDBACK_TYPE_VIRUS,
	FEEDBACK_TYPE_OTHER,
	FEEDBACK_TYPE_NOT_SPAM,
	FEEDBACK_TYPE_AUTH_FAILURE,
};
/* "unknown", "abuse", "fraud", "virus", "other", "not-spam", "auth-failure". */
const char *feedback_type_name(enum feedback_type);

/* One recipient the report is about. DSN: one per-recipient group. Plain bounce: one
 * address the heuristics found, with the reply text near it. ARF: one per Original-Rcpt-To,
 * or, without any, the To address of the original's headers. */
struct feedback_rcpt {
	char address[FEEDBACK_ADDR_MAX + 1];  /* Final-Recipient, type ("rfc822;") and <>
	                                         removed; "" if none */
	char original[FEEDBACK_ADDR_MAX + 1]; /* Original-Recipient, the same way; "" */
	enum feedback_action action;          /* DSN: Action, or from Status's class when
	                                         absent; plain: failed or delayed */
	char status[SMTP_STATUS_MAX + 1];     /* RFC 3463 "5.1.1": Status, else one found in
	                                         the diagnostic; "" */
	int reply_code;                       /* SMTP code found in the diagnostic, 0 if none */
	char diagnostic_type[FEEDBACK_TYPE_MAX + 1]; /* "smtp", "x-postfix" (lower case); "" */
	char diagnostic[FEEDBACK_DIAG_MAX + 1];      /* the reply, unfolded: "550 5.1.1 ..." */
	char remote_mta[FEEDBACK_FIELD_MAX + 1];     /* type removed: "mx.example.org" */
	bool verp_match; /* feedback_attribute(): this is the recipient the VERP names */
};

/* What the report carries of the original message (for a plain bounce: its copy after
 * "--- Below this line is a copy of the message."). */
enum feedback_returned {
	FEEDBACK_RETURNED_NONE = 0,
	FEEDBACK_RETURNED_HEADERS, /* text/rfc822-headers, message/global-headers */
	FEEDBACK_RETURNED_MESSAGE, /* message/rfc822, message/global */
	FEEDBACK_RETURNED_INLINE,  /* a copy in the text of a plain bounce */
};

struct feedback_original {
	enum feedback_returned returned;
	char message_id[FEEDBACK_FIELD_MAX + 1];  /* "<r-1@example.com>" */
	char queue_id[FEEDBACK_QUEUE_ID_LEN + 1]; /* ours, from a Received: field of ours
	                                             ("by host (Drover) with ESMTP id ..."); "" */
	char return_path[FEEDBACK_ADDR_MAX + 1];  /* the address, without <> */
	char from[FEEDBACK_ADDR_MAX + 1];         /* the first address in From */
	char to[FEEDBACK_ADDR_MAX + 1];           /* the first address in To */
	char subject[FEEDBACK_FIELD_MAX + 1];     /* raw (RFC 2047 words not decoded) */
};

/* RFC 5965 §3.1-3.2 fields of a feedback report (Original-Rcpt-To go in rcpt[]). */
struct feedback_arf {
	enum feedback_type type;
	char feedback_type[FEEDBACK_TYPE_MAX + 1]; /* as given, lower case */
	char user_agent[FEEDBACK_FIELD_MAX + 1];
	char version[FEEDBACK_TYPE_MAX + 1];
	char original_mail_from[FEEDBACK_ADDR_MAX + 1]; /* without <> */
	char source_ip[FEEDBACK_TYPE_MAX + 16 + 1];     /* "192.0.2.1" / "2001:db8::1" */
	char reported_domain[FEEDBACK_FIELD_MAX + 1];   /* the first one */
	unsigned incidents;                             /* Incidents, 0 if absent */
};

/* Where the VERP that feedback_attribute() decoded came from. */
enum feedback_verp_source {
	FEEDBACK_VERP_FROM_NONE = 0,
	FEEDBACK_VERP_FROM_RCPT_TO,     /* the envelope recipient the report was sent to */
	FEEDBACK_VERP_FROM_TO,          /* the report's To: (a DSN goes to the return path) */
	FEEDBACK_VERP_FROM_RETURN_PATH, /* the original's Return-Path: (ARF reports) */
	FEEDBACK_VERP_FROM_MAIL_FROM,   /* ARF Original-Mail-From */
};
/* "", "rcpt-to", "to", "return-path", "original-mail-from". */
const char *feedback_verp_source_name(enum feedback_verp_source);

/* About 62 KB: allocate it, do not put it on an event loop's stack. */
struct feedback_report {
	enum feedback_kind kind;
	unsigned cut; /* FEEDBACK_CUT_* bits */

	/* The report's own header fields. */
	char from[FEEDBACK_ADDR_MAX + 1]; /* first address */
	char to[FEEDBACK_ADDR_MAX + 1];   /* first address */
	char subject[FEEDBACK_FIELD_MAX + 1];
	char message_id[FEEDBACK_FIELD_MAX + 1];

	/* Per-message fields: DSN (RFC 3464 §2.2) and ARF alike. */
	char reporting_mta[FEEDBACK_FIELD_MAX + 1]; /* type removed */
	char envelope_id[FEEDBACK_FIELD_MAX + 1];   /* DSN Original-Envelope-Id (our ENVID) */
	char arrival_date[FEEDBACK_FIELD_MAX + 1];  /* Arrival-Date (ARF: or Received-Date) */

	size_t nrcpt;      /* entries in rcpt[] */
	size_t rcpt_total; /* recipients seen, kept or not */
	struct feedback_rcpt rcpt[FEEDBACK_RCPT_MAX];

	struct feedback_arf arf; /* kind == FEEDBACK_ARF */
	struct feedback_original original;

	/* Filled by feedback_attribute(). */
	enum feedback_verp_status verp_status;
	enum feedback_verp_source verp_source;
	struct feedback_verp verp; /* when verp_status == FEEDBACK_VERP_OK */
	int verp_rcpt;             /* index into rcpt[] of the entry the VERP names, -1 */
};

/* Reads data[0..len) - a whole message, header section and body, CRLF or LF lines - and
 * fills *report (cleared first). Returns report->kind:
 * - FEEDBACK_ARF: a message/feedback-report part (or the second part of a multipart/report
 *   with report-type=feedback-report, whatever its label);
 * - FEEDBACK_DSN: a message/delivery-status or message/global-delivery-status part (or the
 *   second part of a report-type=delivery-status report). Recipients come from its
 *   per-recipient groups, or, if it has none, from the text as for a plain bounce;
 * - FEEDBACK_PLAIN_BOUNCE: no such part, but the subject, sender or text is a bounce's
 *   (qmail, Exim, Sendmail, Exchange, Yahoo, Postfix without DSN ...): recipients and
 *   replies come from heuristics and may be none (then the VERP says who);
 * - FEEDBACK_NOT_REPORT: anything else, auto-replies included.
 * The original's headers come from the text/rfc822-headers or message/rfc822 part, or from
 * the copy that follows a plain bounce's text. */
enum feedback_kind feedback_parse(const void *data, size_t len, struct feedback_report *report);

/* Ties a parsed report to one of our messages: decodes with keys, in this order, the
 * envelope recipient the report was sent to (rcpt_to, NULL if unknown), the report's To, the
 * original's Return-Path, ARF's Original-Mail-From; the first FEEDBACK_VERP_OK wins. Sets
 * report->verp_status (if none is ok: forged if any was forged, else malformed if any was,
 * else not-ours), verp_source, verp, and verp_rcpt with the rcpt[] entry whose address or
 * original is the VERP's recipient (feedback_verp_rcpt_matches(); its verp_match is set).
 * Returns verp_status. */
enum feedback_verp_status feedback_attribute(const struct feedback_verp_keys *keys,
                                             const char *rcpt_to, struct feedback_report *report);

#endif
