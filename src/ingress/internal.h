/* ingress/internal.h - private to the ingress component: workers, sessions, transactions. */
#ifndef DROVER_INGRESS_INTERNAL_H
#define DROVER_INGRESS_INTERNAL_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "conf/conf.h"
#include "core/core.h"
#include "access/access.h"
#include "auth/auth.h"
#include "ingress/ingress.h"
#include "route/route.h"
#include "smtp/smtp.h"
#include "spool/spool.h"

#ifndef TAILQ_FOREACH_SAFE /* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
	for ((var) = TAILQ_FIRST(head); (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);     \
	     (var) = (tvar))
#endif

struct event;
struct evbuffer;
struct evconnlistener;
struct client_table;

/* A session's place in the protocol. Command states are bits for the command table. */
enum session_state {
	S_CONNECTED, /* greeting sent, no EHLO/HELO yet */
	S_READY,     /* EHLO/HELO done, no transaction */
	S_MAIL,      /* MAIL accepted, no recipient yet */
	S_RCPT,      /* at least one recipient accepted */
	S_DATA,      /* reading DATA content */
	S_BDAT,      /* reading a BDAT chunk */
	S_AUTH,      /* AUTH: waiting for the password check or the failure delay */
	S_VERIFY,    /* end of data: waiting for SPF, DKIM, DMARC (input is not read) */
	S_COMMIT,    /* waiting for the spool (no input is read meanwhile) */
	S_CLOSING,   /* final reply queued, closing once it is written */
};
#define ST(s) (1u << (s))

/* What sessions run on: a configuration and what was made from it. A live reload
 * (ingress_reconfigure) makes a new generation; the workers switch to it, and each session
 * keeps the one it started with until it ends, so that nothing changes under a message in
 * the middle of its transaction. Reference counted from any thread. */
struct ingress_gen {
	_Atomic unsigned refs;
	const struct config *cfg;     /* a reference */
	struct dkim_signing *signing; /* the DKIM keys (signing.c), NULL: none */
	struct tls_server *tls;       /* the certificates (tls.c), NULL: no TLS */
	struct route_rules *routing;  /* classification rules, compiled (classify.c) */
	struct access_users *users;   /* auth.users_file, a reference; NULL: no AUTH */
};
struct ingress_gen *ingress_gen_ref(struct ingress_gen *);
void ingress_gen_unref(struct ingress_gen *);

/* One SMTP event-loop thread and everything it owns. */
struct worker {
	struct ingress *ingress;
	unsigned index;
	pthread_t thread;
	struct event_base *base;
	struct mailbox *mailbox;
	TAILQ_HEAD(, session) sessions;
	unsigned nsessions;
	unsigned commits_pending; /* spool commits not yet answered */
	bool stopping;
	char *line;        /* scratch for one command line (line_max + 1) */
	unsigned line_max; /* the largest command_line_max of any generation it has had */
	struct dns_resolver *resolver;  /* for verify = { }, made on first use (verify.c) */
	struct spf_dns spf_dns;         /* through resolver */
	struct dkim_lookup dkim_lookup; /* through resolver: DKIM keys, DMARC policies */
	struct ingress_gen *gen;        /* what new sessions start on (a reference) */
	struct listen_ctx **listeners;  /* one socket per configured listener, in gen's order */
	size_t nlisteners;
	bool accepting; /* ingress_open() has come: listeners are enabled */
};

/* The mail transaction: MAIL .. end of data. Reset by RSET, EHLO, and after each message. */
struct transaction {
	char *sender; /* "" for <> */
	struct smtp_mail_params mail;
	struct envelope_rcpt *rcpt;
	size_t nrcpt, rcpt_alloc;
	unsigned rcpt_attempts; /* RCPT commands, accepted or not */
	bool bdat_used;
	struct spool_message *msg; /* open spool message, from DATA / the first BDAT */
	char id[SPOOL_ID_LEN + 1]; /* its queue id, kept for the commit's reply */
	struct evbuffer *body;     /* content not yet handed to the spool */
	size_t header_len;         /* our Received: header, at the start of the body */
	struct body_scanner scan;
	uint64_t bdat_size; /* octets of the current BDAT chunk */
	uint64_t bdat_left; /* of which still to read */
	bool bdat_last;
	enum session_state bdat_return; /* state to go back to after a refused chunk */
	const char *bdat_refusal;       /* read the chunk, then refuse it with this reply */
	uint64_t received_us;           /* when the data ended: the envelope's arrival time */
	uint64_t size;                  /* octets stored, as the spool counted them */
	bool chunk_in_flight;           /* a chunk is with the spool: stop reading */
	struct dkim_signing_msg *sign;  /* the message's DKIM signer, NULL: not signed */
	struct auth_verify *verify;     /* SPF, DKIM, DMARC checks (verify.c), NULL: none */
	size_t auth_fed;    /* octets of body signer and checks have seen (not our Received:) */
	char *auth_results; /* the Authentication-Results field, once checked */
	bool verify_now;    /* inside auth_verify_finish(): its callback is not from the loop */
	bool from_checked;  /* the header From was checked against the user's domains */
	unsigned ndropped;  /* recipients accepted and dropped (suppressed, at_reception = drop) */
	const char *from_refusal; /* the 553 for a From the user may not use, NULL if fine */
	struct evbuffer *report;  /* bounce listener: the message, kept to be read (reports.c) */
	/* Classification (classify.c): done once the header section is in, before any of it
	 * leaves for the spool, the signer or the checks. */
	bool classified;
	size_t classify_seen;         /* octets of content when it was last looked for */
	const char *classify_refusal; /* the reply at the end of data, NULL if none */
	char classify_reply[192];
	struct route_result route;
};

struct session {
	TAILQ_ENTRY(session) entry;
	struct worker *worker;
	struct ingress_gen *gen;  /* a reference, for the session's life */
	const struct config *cfg; /* gen's */
	const struct listener_conf *listener;
	int fd;
	struct event *ev_read, *ev_write;
	struct evbuffer *in, *out;
	bool reading; /* ev_read is added */
	bool writing; /* ev_write is added: output waits for the socket */
	struct sockaddr_storage peer;
	char peer_ip[INET6_ADDRSTRLEN];
	enum session_state state;
	bool esmtp;           /* EHLO (not HELO) */
	bool relay_allowed;   /* client is inside relay_networks */
	bool discarding_line; /* inside an over-long command line */
	unsigned errors;
	char *helo;
	char *auth_user; /* after a successful AUTH, NULL before */
	struct {
		enum {
			AUTH_STEP_NONE,
			AUTH_STEP_PLAIN,
			AUTH_STEP_LOGIN_USER,
			AUTH_STEP_LOGIN_PASSWORD
		} step;
		const char *mechanism;
		char *name, *password;         /* being collected; the password wiped when used */
		struct access_verify *pending; /* the check on a verifier thread */
		struct event *delay;           /* the failure delay before 535 */
	} auth;
	uint64_t id; /* session number, for logs */
	struct transaction txn;
	SSL *ssl;            /* TLS (tls.c), NULL in clear */
	bool handshaking;    /* the TLS handshake is in progress: no SMTP yet */
	bool starttls_after; /* STARTTLS answered: the handshake starts once the 220 is out */
	char tls_info[160];  /* "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits)" */
	unsigned refs;       /* the session plus pending spool callbacks */
	bool freed;          /* connection gone; free when refs drops to zero */
};

/* server.c */
struct listen_ctx {
	struct ingress *ingress;
	struct worker *worker;
	const struct listener_conf *conf; /* in the worker's gen */
	struct evconnlistener *lev;
};

/* metrics.c: measured on the SMTP threads, kept across reloads. */
struct ingress_metrics {
	struct dns_latency *verify_dns;    /* every worker's resolver (verify.c) */
	struct dkim_signing_times signing; /* every signed message (message.c) */
};

struct ingress {
	struct event_base *base;
	const struct config *cfg; /* gen's: the main thread's view */
	struct ingress_gen *gen;  /* the current generation (the main thread's reference) */
	struct spool *spool;
	struct eventlog *log;
	const struct ingress_hooks *hooks;
	struct worker *workers;
	unsigned nworkers, next_worker;
	struct client_table *clients;
	struct suppress *suppress; /* checked at RCPT; NULL: none */
	struct reports *reports;   /* the bounce listener's (reports.c); NULL: none */
	/* AUTH and limits (auth.c) */
	struct access_verifier *verifier; /* made when a generation first has users */
	struct access_authfail *authfail;
	struct access_limiter *user_limiter, *client_limiter;
	struct dmarc_psl *psl; /* the Public Suffix List, for verify = { "dmarc" } */
	/* The control plane's injection (inject.c): sessions of this listener, "api", are not
	 * accepted but made on a socketpair; they may relay, are not counted in the client
	 * table, and their X-Drover-* fields are trusted. */
	struct listener_conf api_listener;
	atomic_uint_fast64_t sessions_total, messages_accepted, messages_rejected, session_seq;
	struct ingress_metrics metrics; /* metrics.c */
};

/* metrics.c */
void ingress_metrics_init(struct ingress_metrics *);
void ingress_metrics_free(struct ingress_metrics *);

/* clients.c: sessions per client address, shared by the accept loop and the workers. */
struct client_table *client_table_new(void);
void client_table_free(struct client_table *);
/* Counts a new session from addr unless a limit is reached; returns 0, or -1 with *why. */
int client_table_enter(struct client_table *, const struct sockaddr *addr, unsigned max_total,
                       unsigned max_per_ip, const char **why);
void client_table_leave(struct client_table *, const struct sockaddr *addr);
unsigned client_table_total(struct client_table *);
/* Sessions refused by client_table_enter since start: over max_total, over max_per_ip. */
void client_table_refused(struct client_table *, uint64_t *total, uint64_t *per_ip);

/* tls.c: the certificates, chosen by SNI; reloaded on SIGHUP. new: NULL with err if a file
 * cannot be used (and NULL without error when there is no tls_certificate). */
struct tls_server;
struct tls_server *tls_server_new(const struct config *, char *err, size_t errlen);
struct tls_server *tls_server_ref(struct tls_server *);
void tls_server_free(struct tls_server *); /* drops a reference */
/* A server-side SSL on fd, in accept state. */
SSL *tls_server_session(struct tls_server *, int fd);

/* session.c: writes what is queued as far as the socket takes it (the rest when it can). */
void session_flush(struct session *);
/* session.c: STARTTLS was accepted: the handshake starts once the 220 is written. */
void session_starttls(struct session *);

/* auth.c */
int auth_server_init(struct ingress *, char *err, size_t errlen);
void auth_server_free(struct ingress *);
void auth_server_set_rates(struct ingress *, const struct config *);
bool auth_offered(const struct session *);
/* At connect: a client address blocked for failed AUTH gets its 421 (true: close). */
bool auth_blocked_at_connect(struct session *);
void cmd_auth(struct session *, const struct smtp_command *);
/* A line of the SASL exchange (auth.step != AUTH_STEP_NONE); it is wiped afterwards. */
void auth_line(struct session *, char *line, size_t len);
/* The connection is going: cancel the check and the delay, wipe what was collected. */
void auth_session_end(struct session *);
/* MAIL: the user's and the client's message rates. 0, or -1 with the 450 reply. */
int auth_rate_check(struct session *, char *reply, size_t size);
bool auth_may_send_from(struct session *, const char *domain);

/* verify.c: a message's checks. begin: NULL when the listener checks nothing. finish: cb
 * gets the Authentication-Results field (malloc'd, the callee's), now or later from the
 * worker's loop; auth_verify_free() cancels (cb will not run). */
struct auth_verify;
typedef void auth_verify_cb(void *arg, char *field);
struct auth_verify *auth_verify_begin(struct session *);
void auth_verify_update(struct auth_verify *, const void *data, size_t len);
void auth_verify_finish(struct auth_verify *, auth_verify_cb *cb, void *arg);
void auth_verify_free(struct auth_verify *);

/* server.c: a stopping worker leaves its loop once nothing is left to answer. */
void worker_check_exit(struct worker *);

/* inject.c: in->api_listener, at ingress_start. */
void internal_listener_init(struct ingress *);
/* inject.c: the session is the control plane's injection (listener "api"). */
static inline bool
session_internal(const struct session *s)
{
	return s->listener == &s->worker->ingress->api_listener;
}

/* session.c */
void session_start(struct worker *, int fd, const struct sockaddr *peer, socklen_t len,
                   const struct listener_conf *);
void session_reply(struct session *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void session_error(struct session *, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void session_close_after_reply(struct session *);
void session_kill(struct session *); /* drop the connection now, reply or not */
void session_resume(struct session *);
void session_read_pause(struct session *); /* until session_resume() */
void session_shutdown(struct session *);   /* 421 4.3.2 and close, if idle */
void session_reject_event(struct session *, const char *command, const char *recipient,
                          const char *reply);
void session_ref(struct session *);
void session_unref(struct session *);

/* commands.c */
void command_dispatch(struct session *, const char *line, size_t len);
void transaction_reset(struct session *);

/* message.c: DATA and BDAT */
void message_data_start(struct session *);
void message_bdat_start(struct session *, const char *args);
/* Feeds input in S_DATA / S_BDAT; returns false if the session must stop reading now. */
bool message_feed(struct session *, struct evbuffer *input);

/* classify.c: the message's stream, tenant, campaign and pool (docs/routing.md).
 * header: called before content leaves the body buffer (final: the data has ended);
 * classifies once the header section is complete (removing the X-Drover-* fields from the
 * buffered octets first) or over ROUTE_HEADERS_MAX (then refused at the end). false: hold
 * the buffer, the section is still arriving. finish: at the end of data, the reply that
 * refuses the message, or NULL after the recipients suppressed for its tenant are dropped.
 * envelope, record: the result into the envelope and the Reception record. */
bool classify_header(struct session *, bool final);
const char *classify_finish(struct session *);
void classify_envelope(const struct transaction *, struct envelope *);
void classify_record(const struct transaction *, const struct route_rules *, json_t *);

/* reports.c: the bounce listener (role "bounce"). init: none without such a listener; 0, or
 * -1 with err. rcpt: true if the recipient is taken (the caller adds it), false if refused
 * (replied). begin: instead of a spool message, t->report; keep: the body scanned so far
 * into t->report, bounded; finish: after the scanner's verdict, read, log, suppress, reply. */
struct smtp_path;
int reports_init(struct ingress *, char *err, size_t errlen);
void reports_free(struct ingress *);
bool reports_rcpt(struct session *, const struct smtp_path *);
void reports_begin(struct session *, bool dot_mode);
void reports_keep(struct session *);
void reports_finish(struct session *);

#endif
