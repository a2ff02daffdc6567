/* delivery/internal.h - private to the delivery component: the client's state, its command
 * queue, the transaction, the content encoder. */
#ifndef DROVER_DELIVERY_INTERNAL_H
#define DROVER_DELIVERY_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "core/core.h"
#include "delivery/delivery.h"
#include "smtp/smtp.h"
#include "spool/spool.h"

struct bufferevent;
struct event;

/* A reply line longer than this is a protocol error. RFC 5321 §4.5.3.1.5 says 512 octets;
 * servers exceed it, none by this much. */
#define DELIVERY_REPLY_LINE_MAX 4096
/* A reply with more lines is a protocol error (a server streaming "250-" lines forever
 * would otherwise hold the client until the phase's timeout). */
#define DELIVERY_REPLY_LINES_MAX 1000
/* Content is encoded into the connection's output this much at a time, and more is added
 * when the output drains below CONTENT_LOW: a large message never sits twice in memory. */
#define DELIVERY_CONTENT_CHUNK (64 * 1024)
#define DELIVERY_CONTENT_LOW   (16 * 1024)

/* The client's place in the conversation (docs/delivery.md draws it). */
enum client_state {
	C_NEW,        /* no connection yet */
	C_CONNECTING, /* TCP connect in progress to targets[cur] */
	C_GREETING,   /* waiting for the 220 */
	C_EHLO,       /* EHLO sent */
	C_HELO,       /* EHLO refused with 5xx; HELO sent */
	C_STARTTLS,   /* STARTTLS sent (EHLO offered it, the policy wants it) */
	C_TLS,        /* 220 to STARTTLS: the handshake runs; then EHLO again (C_EHLO) */
	C_TXN,        /* a transaction's commands (RSET, MAIL, RCPT, DATA) and their replies */
	C_CONTENT,    /* writing the content; the end-of-data reply is pending */
	C_DOT,        /* content written, waiting for the end-of-data reply */
	C_IDLE,       /* established, no message in flight */
	C_QUIT,       /* QUIT sent */
	C_CLOSED,     /* gone; closed was called */
};

/* Commands whose replies are awaited, in the order sent. */
enum client_cmd {
	CMD_GREETING, /* not a command: the greeting is awaited like a reply */
	CMD_EHLO,
	CMD_HELO,
	CMD_STARTTLS,
	CMD_RSET,
	CMD_MAIL,
	CMD_RCPT,
	CMD_DATA,
	CMD_DOT,  /* the end of data after DATA's 354 */
	CMD_BDAT, /* BDAT n LAST */
	CMD_QUIT,
};

struct pending {
	enum client_cmd cmd;
	size_t rcpt;  /* CMD_RCPT: position in msg->rcpt */
	bool discard; /* CMD_DOT: a "." sent only to close a 354 nobody wanted */
};

/* The content encoder: DATA's dot-stuffing with CRLF line ends, or BDAT's octets as is. */
struct content_encoder {
	size_t offset; /* next octet of the body to read */
	bool raw;      /* BDAT: no stuffing, no terminator */
	bool bol;      /* at the beginning of a line */
	bool cr;       /* the last octet was CR */
	bool done;     /* everything, terminator included, is in the output */
};

void content_encoder_init(struct content_encoder *, bool raw);
/* Appends to out the wire form of up to max more octets of body; on reaching the body's end
 * also the final CRLF if missing and, for DATA, ".\r\n"; then sets done and returns true. */
bool content_encode(struct content_encoder *, struct evbuffer *body, struct evbuffer *out,
                    size_t max);

struct txn_rcpt {
	bool decided;  /* result is final */
	bool accepted; /* RCPT got 2xx: the end-of-data reply decides */
};

/* One message in flight. */
struct txn {
	const struct delivery_message *msg;
	struct delivery_rcpt_result *res; /* msg->nrcpt, in msg->rcpt order */
	struct txn_rcpt *r;
	char **texts; /* reply texts the results point to, owned */
	size_t ntexts;
	size_t accepted;   /* RCPTs with 2xx */
	size_t sent_rcpt;  /* recipients done with by txn_pump() (RCPT written or skipped) */
	size_t nrcpt_sent; /* RCPT commands written */
	bool need_rset;    /* the previous transaction was left open */
	bool sent_rset, sent_mail, sent_data;
	bool mail_failed; /* MAIL refused: every recipient is decided by that reply */
	bool use_bdat;    /* BINARYMIME: BDAT n LAST instead of DATA */
	bool reused;
	struct content_encoder enc;
};

struct target {
	char *host;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	char ip[INET6_ADDRSTRLEN];
	uint16_t port;
	bool no_starttls; /* opportunistic: skip STARTTLS (told so, or its handshake failed) */
};

/* The TLS of the current connection (reset when a connection starts). */
struct client_tls {
	bool active;   /* the handshake succeeded: everything since is encrypted */
	bool verified; /* the certificate chains to the CA store and names the host */
	char version[16];
	char cipher[64];
	char verify_error[128]; /* why it did not verify (OpenSSL's words) */
};

struct delivery_client {
	struct event_base *base;
	char *helo_name;
	struct sockaddr_storage source;
	socklen_t source_len; /* 0: no source address */
	int source_errno;     /* bind() to source failed with this: nothing else is tried */
	struct delivery_timeouts to;
	bool stop_at_421; /* delivery_options.stop_at_421 */
	enum delivery_tls_policy tls_policy;
	const struct delivery_tls_ctx *tls_ctx; /* NULL: no TLS */
	struct client_tls tls;
	struct target *targets;
	size_t ntargets, cur; /* cur: the target being tried or used */
	struct delivery_callbacks cb;
	void *arg;

	enum client_state state;
	struct bufferevent *bev;
	struct event *timer; /* the one deadline of the current phase */
	struct event *kick;  /* runs scheduled work from the loop, never from an API call */

	struct pending *pend; /* FIFO of awaited replies: pend[head .. head+npend) */
	size_t pend_head, npend, pend_alloc;
	struct smtp_reply reply; /* the reply being read */

	bool esmtp; /* EHLO accepted (ehlo is valid) */
	struct smtp_ehlo ehlo;
	bool established;
	bool txn_open; /* MAIL accepted and the transaction not ended: RSET before MAIL */
	bool closing;  /* delivery_client_close() was called */
	bool broken;   /* the connection cannot carry another message */

	const struct delivery_message *queued; /* handed in, not yet started */
	bool in_txn;
	struct txn txn;
	unsigned tried, messages;

	bool has_error;
	enum delivery_phase error_phase;
	struct delivery_reply error; /* why the session failed; text owned */

	int depth;  /* libevent callbacks running */
	bool freed; /* delivery_client_free() was called during one */
	char line[DELIVERY_REPLY_LINE_MAX + 1];
};

/* client.c, for transaction.c */
void client_send_line(struct delivery_client *, enum client_cmd, size_t rcpt, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void client_pend(struct delivery_client *, enum client_cmd, size_t rcpt, bool discard);
void client_arm_reply_timer(struct delivery_client *);
void client_content_start(struct delivery_client *);
void client_content_stop(struct delivery_client *);
bool client_continue(struct delivery_client *);
/* The session cannot go on: before it is established, the next candidate is tried; after,
 * what is in flight is deferred with this failure and the session ends. */
void client_fail(struct delivery_client *, enum delivery_phase, int code, const char *status,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void client_fail_reply(struct delivery_client *, enum delivery_phase, const struct smtp_reply *);
struct evbuffer *client_output(struct delivery_client *);

/* tls.c */
/* A TLS client filter over c->bev for the current target (SNI and the name to verify set),
 * not yet handshaking: c->bev must not be used afterwards except through the filter, which
 * owns it. */
struct bufferevent *tls_filter_new(struct delivery_client *);
/* After the handshake: version, cipher and verification of c->bev's session into c->tls. */
void tls_session_info(struct delivery_client *);
/* Why the handshake on bev failed, from the OpenSSL errors it collected; dflt if none. */
void tls_error_text(struct bufferevent *bev, const char *dflt, char *buf, size_t size);
/* The delivery_tls of the session for a result: inactive unless established over TLS. */
struct delivery_tls tls_result(const struct delivery_client *);

/* transaction.c */
/* Takes the message in flight (in_txn) without sending anything. */
void txn_init(struct delivery_client *, const struct delivery_message *);
/* txn_init, the checks against what EHLO announced, then the first commands. */
void txn_start(struct delivery_client *, const struct delivery_message *);
void txn_pump(struct delivery_client *);
void txn_reply(struct delivery_client *, const struct pending *, const struct smtp_reply *);
/* Decides every undecided recipient (accepted ones included) with this reply. */
void txn_decide_rest(struct delivery_client *, enum delivery_phase, enum delivery_status,
                     const struct delivery_reply *);
/* Reports the result and forgets the message. false if the client was freed meanwhile. */
bool txn_report(struct delivery_client *);

#endif
