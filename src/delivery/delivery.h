/* delivery/delivery.h - the SMTP client: one connection to one destination's mail
 * exchangers, carrying one message after another.
 *
 * A client is given the destination's candidate addresses, already ordered (MX preference,
 * then the resolver's shuffle), and connects to them in turn until one greets it and
 * accepts EHLO (or HELO). Any failure before the first MAIL command - no connection,
 * timeout, lost connection, a greeting or EHLO/HELO reply other than 2xx (421 and 554
 * included: RFC 5321 §3.1 and §3.8) - moves on to the next address. Once a session is
 * established, it carries the message it was given, then asks its caller for the next one;
 * with none, it stays open, idle, until given one (connection reuse) or until the idle
 * timeout, when it says QUIT. docs/delivery.md has the state machine.
 *
 * Each message is one transaction: MAIL, one RCPT per recipient, DATA (or BDAT for
 * BINARYMIME), the content dot-stuffed with CRLF line ends. With PIPELINING the commands
 * up to DATA go in one write (RFC 2920) and the replies are matched in order. The outcome
 * comes back per recipient: delivered (2xx), deferred (4xx, or no usable reply: connection
 * lost, timeout, malformed reply) or bounced (5xx), with the reply and the phase that
 * decided it. Refused before sending, from what EHLO announced: a message larger than SIZE
 * (552 5.3.4), one needing SMTPUTF8 when it is not offered (550 5.6.7), BINARYMIME without
 * CHUNKING and BINARYMIME (554 5.6.3). An 8-bit message to a server without 8BITMIME is
 * sent as is, as Postfix does.
 *
 * STARTTLS (RFC 3207) follows options.tls: after EHLO, when the server offers it and the
 * policy wants it, the client upgrades the connection, says EHLO again and uses only what
 * the second EHLO announces (§4.2). A session is established only once its TLS policy is met.
 *
 * Thread-safety: none. A client lives on the event loop it was created on; all its I/O and
 * callbacks run there. Nothing blocks: connecting, reading and writing are asynchronous.
 *
 * Callbacks never run from inside a call into this API (delivery_client_send() and
 * delivery_client_close() only schedule work). From inside a callback the caller may call
 * delivery_client_send(), delivery_client_close() and delivery_client_free().
 */
#ifndef DROVER_DELIVERY_H
#define DROVER_DELIVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "smtp/smtp.h"

struct event_base;
struct evbuffer;
struct envelope;
struct delivery_client;

/* ---- Options ---- */

/* Timeouts in milliseconds; 0 in an option means the default below. RFC 5321 §4.5.3.2 gives
 * the values for the replies; the others are ours. */
#define DELIVERY_DEF_CONNECT_MS    (30 * 1000)  /* not in the RFC: a silent host costs 30 s */
#define DELIVERY_DEF_GREETING_MS   (300 * 1000) /* §4.5.3.2.1 initial 220 */
#define DELIVERY_DEF_HELO_MS       (300 * 1000) /* EHLO/HELO: as MAIL */
#define DELIVERY_DEF_MAIL_MS       (300 * 1000) /* §4.5.3.2.2 */
#define DELIVERY_DEF_RCPT_MS       (300 * 1000) /* §4.5.3.2.3 */
#define DELIVERY_DEF_DATA_MS       (120 * 1000) /* §4.5.3.2.4 DATA's 354 */
#define DELIVERY_DEF_DATA_BLOCK_MS (180 * 1000) /* §4.5.3.2.5 no write progress */
#define DELIVERY_DEF_DOT_MS        (600 * 1000) /* §4.5.3.2.6 reply to the final "." */
#define DELIVERY_DEF_RSET_MS       (20 * 1000)  /* not in the RFC: Postfix's smtp_rset_timeout */
#define DELIVERY_DEF_QUIT_MS       (20 * 1000)  /* not in the RFC: nothing depends on it */
/* Kept open with nothing to send: long enough for a scheduler to find the next message for
 * the same site, short enough not to hold a slot at the receiver (Postfix keeps 2 s). */
#define DELIVERY_DEF_IDLE_MS (5 * 1000)

struct delivery_timeouts {
	unsigned connect_ms;
	unsigned greeting_ms;
	unsigned helo_ms;
	unsigned mail_ms;
	unsigned rcpt_ms;
	unsigned data_ms;
	unsigned data_block_ms; /* while sending content: the longest wait for any progress */
	unsigned dot_ms;
	unsigned rset_ms;
	unsigned quit_ms;
	unsigned idle_ms;
};

/* ---- TLS (RFC 3207 STARTTLS; docs/delivery.md, "TLS") ---- */

/* What a client does about STARTTLS. A policy that cannot be met never sends in clear: the
 * candidate fails (phase "starttls", 451 4.7.4 or 4.7.5) like one that did not answer, and
 * the message waiting is deferred when none is left. */
enum delivery_tls_policy {
	/* STARTTLS when the server offers it, in clear when it does not (or refuses the
	 * command). A failed handshake is retried at once in clear on a new connection to the
	 * same server (callbacks.tls_fallback tells the caller, who may set no_starttls for it
	 * on later connections). The certificate is not required to verify. */
	DELIVERY_TLS_OPPORTUNISTIC = 0,
	DELIVERY_TLS_DISABLED,        /* never STARTTLS, even when offered */
	DELIVERY_TLS_REQUIRED,        /* TLS or nothing; any certificate */
	DELIVERY_TLS_REQUIRED_VERIFY, /* TLS with a certificate that chains to the CA store and
	                                 names the host connected to (MX or route host name) */
};

/* The minimum protocol version when the options say 0: TLS 1.2 (RFC 8996 deprecates 1.0
 * and 1.1; every mailbox provider speaks 1.2). */
#define DELIVERY_TLS_DEF_MIN_VERSION 12

struct delivery_tls_options {
	/* PEM file of the CA certificates to verify servers against; NULL: the system's store
	 * (OpenSSL's default certificate file, or $SSL_CERT_FILE). */
	const char *ca_file;
	unsigned min_version; /* 12 (TLS 1.2) or 13 (TLS 1.3); 0: the default */
};

/* What every connection of a delivery loop shares: the CA store and the protocol settings.
 * Made once, before the loop runs: it reads the CA file (never read again, so verifying
 * costs no file access on the loop). Immutable afterwards; may be shared between threads.
 * NULL with a reason in err when options.ca_file cannot be loaded; a system store that
 * cannot be read is only warned about (required-verify then always fails). */
struct delivery_tls_ctx;
struct delivery_tls_ctx *delivery_tls_ctx_new(const struct delivery_tls_options *, char *err,
                                              size_t errlen);
void delivery_tls_ctx_free(struct delivery_tls_ctx *);

struct delivery_options {
	const char *helo_name; /* EHLO/HELO argument (the egress source's name); required */
	/* Local address to connect from (the egress source; port 0), or NULL for the kernel's
	 * choice. Candidates of the other address family are skipped. */
	const struct sockaddr *source;
	socklen_t source_len;
	struct delivery_timeouts timeouts;
	enum delivery_tls_policy tls;
	/* Borrowed, must outlive the client. NULL: no TLS at all (opportunistic then means in
	 * clear; a required policy is refused by delivery_client_new). */
	const struct delivery_tls_ctx *tls_ctx;
	/* A 421 before the session is established means "back off" (the provider speaks for
	 * every MX host): no other candidate is tried. false: the next candidate (a busy host). */
	bool stop_at_421;
};

/* A candidate address: the MX host's name (for results and logs) and an IPv4 or IPv6
 * address with its port. Copied by delivery_client_new(). The host name is also the name
 * sent in SNI and the one the certificate must carry (an IP literal: its address). */
struct delivery_target {
	const char *host;
	const struct sockaddr *addr;
	socklen_t addr_len;
	/* Opportunistic only: do not try STARTTLS with this one (its handshake failed lately). */
	bool no_starttls;
};

/* At most this many candidates are kept; more add nothing to one connection attempt. */
#define DELIVERY_TARGETS_MAX 64

/* ---- Messages and results ---- */

/* One message for this destination. Borrowed: everything it points to must stay valid and
 * unchanged until its result callback returns. */
struct delivery_message {
	const struct envelope *env; /* sender, BODY, SMTPUTF8, RET, ENVID; recipients' NOTIFY
	                               and ORCPT */
	const size_t *rcpt;         /* indexes into env->rcpt of the recipients to deliver */
	size_t nrcpt;               /* >= 1 */
	/* The content as stored: CRLF line ends, not dot-stuffed. Read, never drained. Bare LF
	 * is sent as CRLF; a missing final CRLF is added. */
	struct evbuffer *body;
	void *arg; /* the caller's */
	/* The envelope sender for MAIL FROM, when it is not env->sender: a VERP return path
	 * (docs/feedback.md). NULL: env->sender. */
	const char *return_path;
};

enum delivery_status {
	DELIVERY_DELIVERED = 0, /* accepted by the server (2xx to the end of data) */
	DELIVERY_DEFERRED,      /* try again later */
	DELIVERY_BOUNCED,       /* permanent failure */
};

/* Where in the conversation a recipient's fate was decided. */
enum delivery_phase {
	DELIVERY_PHASE_CONNECT = 0,
	DELIVERY_PHASE_GREETING,
	DELIVERY_PHASE_EHLO,
	DELIVERY_PHASE_HELO,
	DELIVERY_PHASE_STARTTLS, /* STARTTLS's reply, the handshake, the certificate */
	DELIVERY_PHASE_RSET,     /* resetting a reused connection before MAIL */
	DELIVERY_PHASE_MAIL,     /* MAIL's reply, or refused before MAIL (SIZE, SMTPUTF8) */
	DELIVERY_PHASE_RCPT,
	DELIVERY_PHASE_DATA,    /* DATA's reply (or BDAT's, for BINARYMIME) */
	DELIVERY_PHASE_CONTENT, /* while sending the content */
	DELIVERY_PHASE_DOT,     /* the reply to the end of data */
	DELIVERY_PHASE_QUIT,
};

/* "connect", "greeting", "ehlo", "helo", "starttls", "rset", "mail", "rcpt", "data",
 * "content", "dot", "quit". */
const char *delivery_phase_name(enum delivery_phase);
const char *delivery_status_name(enum delivery_status); /* "delivered", "deferred", ... */

struct delivery_reply {
	int code;                         /* 250, 451, 550, ... */
	char status[SMTP_STATUS_MAX + 1]; /* enhanced status, always set: the server's, or its
	                                     class default ("4.0.0"), or ours when local */
	const char *text; /* the server's text (lines joined with "\n"), or our explanation */
	bool local; /* made by the client (timeout, lost connection, size), not the server's */
};

struct delivery_rcpt_result {
	size_t rcpt; /* index into env->rcpt */
	enum delivery_status status;
	enum delivery_phase phase;
	struct delivery_reply reply;
};

/* The TLS of the session that carried a message, for its log record: active is false when
 * it went in clear, or when no session was established. */
struct delivery_tls {
	bool active;
	const char *version; /* "TLSv1.3"; NULL without TLS */
	const char *cipher;  /* "TLS_AES_256_GCM_SHA384"; NULL without TLS */
	/* The certificate chains to the CA store and names the host. Always true under
	 * required-verify; reported, not required, under the other policies. */
	bool verified;
};

struct delivery_result {
	const struct delivery_message *msg;
	const char *mx_host; /* the server that answered, or the last one tried; NULL if none */
	const char *mx_addr; /* its address, "192.0.2.1" or "2001:db8::1"; NULL if none */
	uint16_t mx_port;
	bool reused; /* not the connection's first message: a failure before MAIL's
	                reply may just mean the server dropped an idle connection */
	size_t nrcpt;
	const struct delivery_rcpt_result *rcpt; /* one per msg->rcpt, in that order */
	struct delivery_tls tls;
	/* Not 0: binding options.source failed with this errno (EADDRNOTAVAIL: the address is
	 * not on this machine), so no server was tried; the message is deferred with it. */
	int source_errno;
};

/* How a connection ended, for dead-destination detection and logs. */
struct delivery_session {
	bool established;    /* a server greeted us and accepted EHLO/HELO */
	unsigned tried;      /* candidate addresses tried */
	unsigned messages;   /* messages whose transaction was started on this connection */
	const char *mx_host; /* as in struct delivery_result */
	const char *mx_addr;
	uint16_t mx_port;
	/* Why the session failed: the last candidate's failure when none was established, or
	 * what broke an established session; NULL after a normal QUIT or idle close. */
	const struct delivery_reply *error;
	const struct smtp_ehlo *ehlo; /* what the server announced; NULL without EHLO */
	struct delivery_tls tls;
	/* Not 0: binding options.source failed with this errno. Every candidate would fail the
	 * same way, so none is tried after it (tried is 0): the source is at fault, not the
	 * destination. */
	int source_errno;
};

struct delivery_callbacks {
	/* A message's outcome. Everything in *result is valid during the call only; the
	 * message may be freed from here. */
	void (*result)(void *arg, struct delivery_client *, const struct delivery_result *);
	/* The session can carry another message: return one, or NULL to go idle. May be NULL
	 * (always idle). Not called when a message was handed in by delivery_client_send()
	 * meanwhile, nor after delivery_client_close(). */
	const struct delivery_message *(*next)(void *arg, struct delivery_client *);
	/* The connection is closed and no message is in flight: the last callback. The caller
	 * frees the client (here or later). */
	void (*closed)(void *arg, struct delivery_client *, const struct delivery_session *);
	/* Opportunistic TLS only: the handshake with this server failed (why: OpenSSL's reason,
	 * a timeout, the connection closed), and the client is connecting to it again at once,
	 * in clear. For the caller to remember, so that later connections skip STARTTLS there
	 * (delivery_target.no_starttls) instead of failing the handshake each time. May be
	 * NULL. */
	void (*tls_fallback)(void *arg, struct delivery_client *, const char *host, const char *ip,
	                     uint16_t port, const char *why);
};

/* ---- The client ---- */

/* Copies options and targets. Connects only when given a message. NULL if the options are
 * unusable (no helo_name, no target), with a reason in err. */
struct delivery_client *delivery_client_new(struct event_base *, const struct delivery_options *,
                                            const struct delivery_target *targets, size_t ntargets,
                                            const struct delivery_callbacks *, void *arg, char *err,
                                            size_t errlen);

/* Hands a message to a client that has none in flight: a new client (it connects), an idle
 * one, or one between messages (from the result callback). 0, or -1 if a message is already
 * in flight or waiting, or the client is closing or closed (the message is not taken). */
int delivery_client_send(struct delivery_client *, const struct delivery_message *);

/* No more messages: QUIT after the message in flight (if any), or at once when idle; closed
 * is called when the connection is gone (also for a client that never connected). */
void delivery_client_close(struct delivery_client *);

/* Drops the connection at once, without QUIT and without any further callback: a message
 * in flight gets no result (count it deferred). Allowed from inside a callback. */
void delivery_client_free(struct delivery_client *);

/* True when the session is established, no message is in flight, and it can take one. */
bool delivery_client_idle(const struct delivery_client *);

#endif
