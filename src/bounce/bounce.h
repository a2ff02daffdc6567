/* bounce/bounce.h - what becomes of mail that is not delivered.
 *
 * Today: delivery status notifications (DSNs) - who gets one (RFC 3461 NOTIFY, loop
 * prevention) and the message itself (RFC 3464 delivery-status in an RFC 6522
 * multipart/report, RFC 6533 for SMTPUTF8 mail). Later (issue 8) this header also holds the
 * bounce classifier, DSN/ARF parsing and suppression; each has its own section and prefix
 * (dsn_, bounce_, suppress_).
 *
 * Everything in the DSN section is pure: no I/O, no clock, no randomness, no shared state.
 * The time, the reporting host name and a unique token come in as arguments, so the same
 * inputs give the same octets. Any thread may call it.
 */
#ifndef DROVER_BOUNCE_H
#define DROVER_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "smtp/smtp.h"

struct envelope;
struct evbuffer;

/* ==== Delivery status notifications ==== */

/* The largest original message a DSN returns whole; a larger one comes back as its headers
 * only (and the text part says so). Big enough for a typical HTML transactional message with
 * its headers, small enough that a bounce storm of newsletters does not double the outbound
 * traffic. Postfix's bounce_size_limit is 50 KB. */
#define DSN_DEF_RETURN_MAX (128 * 1024)
/* Returned headers are cut (at a line end) past this: real header sections are a few KB,
 * and a DSN should not carry megabytes of them. */
#define DSN_HEADERS_MAX (64 * 1024)
/* A diagnostic (the remote reply) is cut past this: the longest real multi-line 5xx replies
 * are under 2 KB. */
#define DSN_DIAGNOSTIC_MAX 4096
/* The unique token (Message-ID left side, MIME boundary): at most this many characters of
 * [A-Za-z0-9._-], so that the boundary stays within RFC 2046's 70. */
#define DSN_UNIQUE_MAX 40

/* RFC 3464 §2.3.3 Action. */
enum dsn_action {
	DSN_FAILED = 0, /* will not be delivered: a 5xx, or the queue lifetime passed */
	DSN_DELAYED,    /* not yet delivered, still being retried */
	DSN_DELIVERED,  /* accepted by the final destination */
	DSN_RELAYED,    /* handed to a system that will not send DSNs */
	DSN_EXPANDED,   /* delivered to a list or alias that forwarded it */
};

/* "failed", "delayed", "delivered", "relayed", "expanded"; "?" for anything else. */
const char *dsn_action_name(enum dsn_action);

/* ---- Who gets a DSN ---- */

/* RFC 3461 §4.1 for one recipient's NOTIFY bits (SMTP_NOTIFY_*): 0 (not given) means
 * FAILURE,DELAY; NEVER means nothing; delivered, relayed and expanded need SUCCESS. */
bool dsn_notify_wants(unsigned notify, enum dsn_action);

enum dsn_to {
	DSN_TO_NOBODY = 0,
	DSN_TO_SENDER,     /* the original envelope sender */
	DSN_TO_POSTMASTER, /* the configured postmaster: the sender was null */
};

/* Where a DSN about recipient `rcpt` (index into env->rcpt) with this action goes:
 * - a null sender ("<>", usually itself a DSN) never gets one: that is how DSN loops are
 *   prevented. Only if it failed, have_postmaster is true and its NOTIFY is not NEVER, the
 *   postmaster is told instead (a "double bounce");
 * - otherwise the sender gets one if dsn_notify_wants() the recipient's NOTIFY bits.
 * An out-of-range index is DSN_TO_NOBODY. */
enum dsn_to dsn_route(const struct envelope *env, size_t rcpt, enum dsn_action,
                      bool have_postmaster);

/* ---- Composing a DSN ---- */

/* One recipient being reported. */
struct dsn_rcpt {
	size_t index; /* into env->rcpt: its address and ORCPT */
	enum dsn_action action;
	const char *status;     /* RFC 3463 "5.1.1"; NULL or malformed: 5.0.0 / 4.0.0 / 2.0.0 */
	const char *remote_mta; /* the MX host that answered, NULL if none */
	const char *diagnostic; /* its reply, "550 5.1.1 <x@y>: user unknown" (multi-line
	                           replies may keep their CRLFs), NULL if none */
	const char *diagnostic_type; /* NULL: "smtp" (a remote reply); "X-Drover" for text of
	                                our own (connection refused, DNS failure) */
	uint64_t last_attempt_us;    /* wall clock; 0 = no attempt to report */
	uint64_t retry_until_us;     /* DSN_DELAYED only: end of the queue lifetime; 0 = omit */
};

struct dsn_report {
	const struct envelope *env; /* the original message's envelope */
	const void *content;        /* the original message as stored (headers + body, CRLF),
	                               NULL if it cannot be returned */
	size_t content_len;
	const struct dsn_rcpt *rcpt; /* the recipients reported (at least one) */
	size_t nrcpt;
	const char *hostname;   /* ours: Reporting-MTA, MAILER-DAEMON@hostname, Message-ID */
	uint64_t now_us;        /* Date: */
	const char *unique;     /* [A-Za-z0-9._-]{1,DSN_UNIQUE_MAX}, never used twice (e.g. the
	                           DSN's own queue id): Message-ID and MIME boundary */
	const char *postmaster; /* NULL: to the envelope sender. Set: to this address instead
	                           (DSN_TO_POSTMASTER), with a text for the postmaster */
	size_t return_max;      /* DSN_DEF_RETURN_MAX or configured; 0: never the whole message */
};

/* What of the original a DSN carries. The whole message only in a DSN that reports a
 * failure, when RET was FULL or not given (RFC 3461 §4.3 leaves that to the MTA) and it is
 * no larger than return_max; otherwise its headers (RET=HDRS, delay and success reports,
 * too large). */
enum dsn_returned { DSN_RETURNED_NOTHING = 0, DSN_RETURNED_HEADERS, DSN_RETURNED_FULL };

/* How to send the DSN composed. Its envelope: the null sender, one recipient. */
struct dsn_result {
	const char *rcpt;    /* the original sender or the postmaster (points into the report) */
	bool smtputf8;       /* UTF-8 in addresses or headers: send with SMTPUTF8 (RFC 6531) */
	enum smtp_body body; /* BODY= to send with (8BITMIME if any octet is 8-bit) */
	enum dsn_returned returned;
	bool global; /* RFC 6533 types (message/global-delivery-status ...) used */
};

/* Appends to out a complete RFC 5322 message (CRLF lines, none over 998 octets except
 * inside the returned original, which is included as is): From "Mail Delivery System"
 * <MAILER-DAEMON@hostname>, To, Subject, Date, Message-ID, Auto-Submitted: auto-replied
 * (RFC 3834), and a multipart/report; report-type=delivery-status of three parts: a text
 * for people, the message/delivery-status (RFC 3464), and the original (message/rfc822) or
 * its headers (text/rfc822-headers). For SMTPUTF8 mail (env->smtputf8, or a UTF-8 address)
 * the RFC 6533 types: message/global-delivery-status, message/global,
 * message/global-headers, and "utf-8" address types for non-ASCII addresses.
 *
 * ENVID comes back xtext-decoded as Original-Envelope-Id (RFC 3461 §6.3(a)); each ORCPT as
 * Original-Recipient with its address xtext-decoded (§6.3(d)), and no Original-Recipient
 * without one. Remote text is cleaned (controls become spaces, non-ASCII '?' outside
 * SMTPUTF8 mail), cut at DSN_DIAGNOSTIC_MAX and folded.
 *
 * Does not decide who gets a DSN: call dsn_route() for each recipient first. Returns 0
 * and fills *res, or -1 with a reason in err (out unchanged): no recipient, an index out of
 * range, an invalid hostname or unique token, a null sender without a postmaster. */
int dsn_compose(const struct dsn_report *, struct evbuffer *out, struct dsn_result *res, char *err,
                size_t errlen);

/* Fills *out (whose old contents are not freed) with the envelope to queue the DSN under:
 * the null sender, res->rcpt as the one recipient (NOTIFY not given, so a DSN that fails is
 * reported to the postmaster, never to a sender), BODY and SMTPUTF8 from res, received_us =
 * now_us, protocol "DSN". Free it with envelope_clear(). */
void dsn_envelope(const struct dsn_result *res, uint64_t now_us, struct envelope *out);

#endif
