/* queue/engine_internal.h - private to the delivery engine (engine*.c): the engine, its
 * connection attempts and the jobs they carry.
 *
 * Vocabulary (docs/delivery.md, "The engine"):
 *	attempt   one connection's life: a queue slot for one destination, its targets (route,
 *	          smarthost or MX), one SMTP client, the jobs it carries
 *	job       one queue item on an attempt: one message's pending recipients at the
 *	          attempt's destination, loaded from the spool, sent in one or more transactions
 *	          (max_recipients_per_transaction), then finished: outcome per recipient
 */
#ifndef DROVER_QUEUE_ENGINE_INTERNAL_H
#define DROVER_QUEUE_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "delivery/delivery.h"
#include "dns/dns.h"
#include "classify/classify.h"
#include "shape/shape.h"
#include "queue/queue.h"
#include "spool/spool.h"

struct engine_verp;
struct event;
struct event_base;
struct mailbox;
struct pool_conf;

/* Messages an attempt keeps loaded or loading ahead of the one being sent: the next one is
 * in memory when the server answers the current one (a spool read costs well under a
 * millisecond; a transaction, a few round trips), and a connection never holds more than
 * this many bodies. */
#define ENGINE_PREFETCH 4
/* Expired items being bounced at once (each loads its message for the DSN): a destination
 * held back for days may expire a million items in one go. */
#define ENGINE_EXPIRING_MAX 64
/* Hosts of one route or of the smarthost list (conf checks nothing about the count). */
#define ENGINE_ROUTE_HOSTS_MAX 16
/* Servers remembered for a failed TLS handshake (tls_memory): far more than the few broken
 * ones a sender meets; past it the one due to be forgotten first goes. */
#define ENGINE_TLS_MEMORY_MAX 1024
/* A source whose address cannot be bound is left out of its pools for this long, then tried
 * again: long enough not to fail every connection meanwhile, short enough that an address
 * added to the machine (or an interface brought up) is used within a minute. */
#define EGRESS_SOURCE_RETRY_S 60

/* A recipient's fate on this attempt. */
enum rcpt_fate {
	R_UNDECIDED = 0, /* not tried (the connection ended first): left as it is */
	R_DELIVERED,
	R_DEFERRED,
	R_BOUNCED,
	R_EXPIRED, /* deferred past its lifetime, or expired while its destination was held */
};

struct rcpt_result {
	enum rcpt_fate fate;
	int code;
	char status[SMTP_STATUS_MAX + 1];
	char *text; /* reply text, owned */
	bool local; /* made by us (client or engine), not a server's reply */
	char *mx;   /* the server that answered, owned; NULL if none */
	char *ip;   /* its address, owned; NULL if none */
	uint16_t port;
	bool reused;
	uint64_t elapsed_ms;
	/* The egress source (config.sources: live as long as the engine); NULL without a pool. */
	const char *source, *source_ip;
	/* The reply's category and what was decided from it (classify.h), for failures. */
	bool classified;
	enum classify_category category;
	enum classify_action action;
	unsigned rule_line, decision_line;
	/* The session's TLS (delivery_tls): tls false when in clear or never established. */
	bool tls, tls_verified;
	char tls_version[16];
	char tls_cipher[64];
};

enum job_state {
	JOB_LOADING = 0, /* spool_load in flight */
	JOB_READY,       /* loaded, no transaction sent yet */
	JOB_SENDING,     /* some transaction handed to the client */
	JOB_FINISHING,   /* outcome decided; spool writes (DSN, changes) in flight */
};

struct job {
	struct queue_engine *e;
	struct attempt *a; /* NULL once finishing, and for an expiry (no connection) */
	struct job *prev, *next;
	enum job_state state;
	struct queue_item *item;
	char id[SPOOL_ID_LEN + 1];
	char *domain;     /* the destination */
	char *lane;       /* the queue it waits in: "stream:pool@domain" (engine_queue_add) */
	char *pool;       /* the lane's pool, NULL: none */
	bool expire_only; /* from a QUEUE_WORK_EXPIRE batch */
	bool gone;        /* the spool could not give the message: nothing to do */
	char *admin_text; /* an operator's bounce (engine_admin.c): 550 5.0.0 this, no attempt */

	struct envelope *env; /* owned once loaded */
	struct evbuffer *body;
	size_t *ridx; /* env->rcpt indexes of this destination's pending recipients */
	size_t nr;
	struct rcpt_result *res; /* nr, parallel to ridx */

	struct delivery_message *txn; /* transactions: slices of ridx */
	size_t ntxn, next_txn, done_txn;
	uint64_t started_mono; /* first transaction handed to the client */
	/* The attempt's retry schedule when shaping sets one (engine_shape_retry). */
	bool has_retry;
	struct retry_schedule retry;

	/* Finishing. */
	enum queue_outcome outcome;
	bool item_done; /* queue_item_done called */
	struct spool_rcpt_change *changes;
	size_t nchanges;
	char **change_replies; /* the last_reply strings of changes, owned */
	size_t nreplies;
	unsigned pending_ops; /* DSN commit, rcpt change */
	/* Delay notice: recipients of the message (env->rcpt indexes) to claim and report,
	 * when this job deferred some past delivery.delay_notice_after. */
	size_t *delay_idx;
	size_t ndelay;
};

enum target_state {
	T_RESOLVING = 0,
	T_READY,  /* targets known */
	T_FAILED, /* no target: every job gets the failure (bounce or defer) */
};

struct attempt {
	struct queue_engine *e;
	struct attempt *prev, *next;
	struct queue_dest *dest; /* valid until released */
	char *domain;
	uint64_t started_mono;

	enum target_state tstate;
	struct dns_query *mxq;                           /* MX delivery */
	struct dns_query *hostq[ENGINE_ROUTE_HOSTS_MAX]; /* route / smarthost names */
	size_t nhosts, hosts_pending;
	struct route_host *hosts; /* route / smarthost entries, in order */
	struct delivery_target *targets;
	struct sockaddr_storage *addrs;
	char **target_hosts;
	size_t ntargets;
	/* T_FAILED: what every recipient gets. */
	enum rcpt_fate fail_fate;
	int fail_code;
	char fail_status[SMTP_STATUS_MAX + 1];
	char *fail_text;

	enum delivery_tls_policy tls; /* config_tls_policy() for the domain */
	/* The configuration the attempt started on (a reference): a reload swaps the engine's,
	 * and pool and source stay this one's. */
	const struct config *cfg;
	/* The pool for the domain (config_pool_for) and the source this connection leaves
	 * from (index into cfg->sources); NULL and -1 without a pool. */
	const struct pool_conf *pool;
	long source;
	/* Shaping (engine_shape.c): the settings for this source and destination, found when
	 * the connection was admitted; shaped false without rules. */
	struct shape_params sp;
	bool shaped;
	bool shape_slot;          /* a shaping connection slot is held */
	bool rate_wait;           /* waiting for the next message's rate token */
	struct event *rate_timer; /* ... on this */
	struct delivery_client *client;
	bool inflight; /* a transaction is with the client */
	bool over;     /* the connection is over (closed, failed, or never to be): released */
	bool idle;     /* the client waits for work (next() found none) */
	bool ending;   /* shaping said stop: QUIT after what is in flight */
	struct event *end_timer; /* ... from the loop, when not connected yet */
	bool fed_back;           /* queue_feedback(QUEUE_CONN_OK) given at the first answer */
	unsigned taken;          /* jobs taken for this connection (max_messages_per_connection) */
	unsigned busy;           /* walking the job list: do not free */
	struct job *jobs, *jobs_tail; /* unfinished jobs, in the order taken */
	unsigned njobs;
	struct job *current; /* the job whose transaction is in flight or continues next */
};

/* A host of a route or the smarthost list, parsed. */
struct route_host {
	struct attempt *a;
	size_t index; /* in a->hosts */
	char name[DNS_NAME_MAX + 1];
	uint16_t port;
	bool literal; /* an IP address: addr is set */
	struct sockaddr_storage addr;
	socklen_t addr_len;
	/* Resolved addresses (names only). */
	struct sockaddr_storage *addrs;
	size_t naddrs;
	enum dns_status status;
	char *error;
};

struct queue_engine {
	const struct config *cfg;
	struct spool *spool;
	struct eventlog *log;
	struct event_base *base;
	struct mailbox *mbox;
	struct dns_resolver *dns;
	struct queue *q;
	struct event *timer;
	struct event *grace;
	pthread_t thread;
	bool thread_started;

	/* Settings, from cfg->delivery with zeros taken as the defaults. */
	struct delivery_options dopts;
	uint16_t port;
	enum dns_ip_policy ip;
	unsigned max_messages;
	unsigned max_rcpts;
	const char *postmaster; /* NULL: none */
	size_t dsn_return_max;
	unsigned max_conns;       /* connections at once over all destinations */
	uint64_t delay_notice_us; /* 0: no delay notices */
	uint64_t lifetime_us; /* the queue lifetime (delay notices' Will-Retry-Until); 0: none */
	struct delivery_tls_ctx *tls_ctx; /* the CA store, read at start */
	struct classify_table *classify;  /* bounce categories and decisions, read at start */
	_Atomic(struct classify_slot *)
	    rules;                           /* as reloaded, once main.c sets it (engine_rules.c) */
	struct engine_verp *verp;            /* VERP return paths (engine_verp.c); NULL: off */
	_Atomic(struct suppress *) suppress; /* hard bounces to suppress; NULL: none */
	struct tls_memory *tls_memory;       /* NULL: delivery.tls_failure_memory is 0 */
	struct egress *egress;               /* sources and pools (egress.c) */
	/* The queue's classes: one per stream, [0] "default" (engine_classes). */
	struct queue_class *classes;
	const char **class_names; /* owned: "default", then the streams (engine_classes) */
	unsigned nclasses;
	/* Reloads (engine_reload.c). cfg above is a reference, swapped on the engine thread;
	 * cfg_latest is the last one handed over, for the reloading thread to compare with. TLS
	 * contexts replaced by a reload stay until the engine ends: connections opened before
	 * it may still use them (a CA store changes rarely). */
	const struct config *cfg_latest;
	struct delivery_tls_ctx **retired_tls;
	size_t nretired_tls;
	bool waking; /* in egress_wake(): not again from inside it */
	/* Shaping (engine_shape.c); NULL without rules (delivery.shaping = "none"). */
	struct shape_rules *shape_rules;
	struct shape_state *shape;
	struct event *shape_timer; /* the next end of an adaptive action */
	/* The active adaptive actions as JSON, for the control API (any thread, under the lock);
	 * made again at each start, extension and end. */
	pthread_mutex_t shape_lock;
	bool shape_lock_made;
	char *shape_snapshot;
	struct provider_cache *providers;
	struct engine_metrics *metrics; /* engine_metrics.c */

	/* Suspensions and an operator's bounces and deletes (engine_admin.c); NULL until used. */
	struct engine_admin *admin;

	/* State (engine thread only). */
	struct attempt *attempts;
	unsigned nattempts;
	unsigned spool_ops; /* loads, changes and commits in flight */
	unsigned nexpiring; /* expiry jobs (QUEUE_WORK_EXPIRE) not finished */
	bool stopping;
	bool grace_over;

	/* Counters, read by queue_engine_stats() from any thread. */
	_Atomic uint64_t st_loaded, st_submitted, st_delivered, st_deferred, st_bounced, st_expired,
	    st_dsns, st_connections, st_connections_ok, st_reused, st_items;
	_Atomic uint64_t st_bounce_category[CLASSIFY_CATEGORY_COUNT]; /* bounced and expired */
	_Atomic unsigned st_open;
};

/* tls_memory.c: servers whose TLS handshake failed, for a while (pure; time is given). */
struct tls_memory;
struct tls_memory *tls_memory_new(size_t max, uint64_t ttl_us);
void tls_memory_free(struct tls_memory *);
/* Remembers (or remembers again, for the full ttl) a server by its name, address, port. */
void tls_memory_add(struct tls_memory *, const char *host, const char *ip, uint16_t port,
                    uint64_t now_us);
/* True while remembered (NULL: never). Host names are compared case-insensitively. */
bool tls_memory_has(struct tls_memory *, const char *host, const char *ip, uint16_t port,
                    uint64_t now_us);
/* Entries not yet forgotten at now_us. */
size_t tls_memory_count(const struct tls_memory *, uint64_t now_us);

/* egress.c: egress sources and pools. */
struct egress;
/* nginx's smooth weighted round robin, pure: adds each usable weight to cur[i], returns the
 * index with the largest cur (the first on a tie) after subtracting the usable total from
 * it; SIZE_MAX (cur unchanged) if none is usable. */
size_t egress_wrr_pick(int64_t *cur, const unsigned *weight, const bool *usable, size_t n);
struct egress *egress_new(const struct config *);
void egress_free(struct egress *);
/* The source (index into cfg->sources) the next connection or message of pool p for dest
 * leaves from, skipping sources that are down; -1 if none is up. consume false only looks. */
long egress_pick(struct egress *, const struct pool_conf *, const char *dest, uint64_t now_us,
                 bool consume);
bool egress_source_up(const struct egress *, size_t source, uint64_t now_us);
/* egress_pick among the sources for which usable(arg, source) is true as well. */
long egress_pick_filtered(struct egress *, const struct pool_conf *, const char *dest,
                          uint64_t now_us, bool consume, bool (*usable)(void *, size_t), void *arg);
/* Binding the source failed: down for EGRESS_SOURCE_RETRY_S. True if it was up (log it). */
bool egress_source_failed(struct egress *, size_t source, uint64_t now_us);
/* A connection from the source reached a server: up. True if it was down (log it). */
bool egress_source_worked(struct egress *, size_t source);

/* engine.c */
/* A lane's name: "stream:pool@domain", or "stream@domain" without a pool. */
#define QUEUE_LANE_NAME_MAX (64 + 1 + 64 + 1 + DNS_NAME_MAX + 3)
/* Queues one message's recipients at domain in the lane its stream, tenant and pool give
 * (config_message_pool); queue_add_lane's return. */
int engine_queue_add(struct queue_engine *, const char *id, uint64_t received_us,
                     const char *stream, const char *tenant, const char *pool, const char *domain,
                     uint64_t next_us, unsigned attempts);
/* Arms the one timer for the queue's next due time (at once if due; not while at the
 * connection limit: an attempt that ends kicks again). */
void engine_kick(struct queue_engine *);
/* Closes the connections that wait, idle, for more of their own destination's mail. */
void engine_close_idle(struct queue_engine *);
/* While stopping: ends the loop once nothing is left in flight. */
void engine_check_stopped(struct queue_engine *);
/* Lower-cased domain of an address ("" if none) into buf. */
void engine_domain(const char *address, char *buf, size_t size);
/* The TLS policy for mail to a domain (route, domain section, delivery.tls). */
enum delivery_tls_policy engine_tls_policy(const struct queue_engine *, const char *domain);

/* engine.c: the settings made from e->cfg (delivery's, with defaults) into e and qo, and the
 * queue classes (one per stream; after a reload, merged with those already there). */
void engine_settings(struct queue_engine *, struct queue_options *);
void engine_classes(struct queue_engine *, struct queue_options *);
void engine_classes_free(struct queue_engine *);

/* engine_shape.c */
int engine_shape_start(struct queue_engine *, char *err, size_t errlen);
/* The shaping rules for e->cfg (the file, or the built-in rules), over its delivery
 * settings as engine_settings() made them in e. NULL with the reason in err. */
struct shape_rules *engine_shape_rules_load(const struct queue_engine *, char *err, size_t errlen);
/* On the engine thread: the new rules (a reference given) in force from now on. */
void engine_shape_rules_set(struct queue_engine *, struct shape_rules *);
void engine_shape_stop(struct queue_engine *);
/* Arms the shaping timer for the next end of an adaptive action or an override. */
void engine_shape_timer_arm(struct queue_engine *);

/* engine_inspect.c: the admin API's questions (queue_engine_ask). */
/* Ends the overrides whose time has come (ShapingOverride records, site windows again). */
void engine_overrides_expire(struct queue_engine *);
/* The rules' provider for a domain: named by the rules, or learned from its MX hosts. */
const char *engine_provider(struct queue_engine *, const char *domain);
void engine_shape_learn(struct queue_engine *, const char *domain, const char *const *mx_hosts,
                        size_t n);
/* The queue site of a domain's mail (the domain, its provider, or its own rules section) and
 * the site's window top for a lane leaving from pool (0: the queue's default). */
void engine_shape_site(struct queue_engine *, const char *domain, const struct pool_conf *pool,
                       char *site, size_t size, unsigned *max_window, unsigned *initial_window);
/* egress_pick, skipping sources suspended, capped or out of connection tokens there;
 * *earliest (may be NULL) is the soonest one of those could go. */
long engine_shape_pick(struct attempt *, uint64_t now, bool consume, uint64_t *earliest);
/* May the attempt's connection open? Sets a->sp. Not SHAPE_GO: *when is when to look again. */
enum shape_verdict engine_shape_admit(struct attempt *, uint64_t now, uint64_t *when);
void engine_shape_release(struct attempt *);
bool engine_shape_bounce(struct attempt *, uint64_t now);
void engine_shape_options(const struct attempt *, struct delivery_options *);
unsigned engine_max_messages(const struct attempt *);
unsigned engine_max_rcpts(const struct queue_engine *, const struct attempt *);
bool engine_shape_retry(const struct attempt *, struct retry_schedule *);
/* May the next message go now (rate, warm-up)? false: it waits (a timer resumes the attempt,
 * or the connection ends and the lane is held). */
bool engine_shape_may_send(struct attempt *);
void engine_shape_attempt_free(struct attempt *);
/* A reply from the destination (a failure): adaptive rules see it. */
void engine_shape_reply(struct attempt *, int code, const char *status, const char *text);
/* A delivery succeeded: backoff mode there ends. */
void engine_shape_delivered(struct attempt *);

/* engine_metrics.c: start before the resolver is made (it sets dopt->latency), stop after it
 * is freed. The others count what the metrics show; any may be called before start. */
void engine_metrics_start(struct queue_engine *, struct dns_options *dopt);
void engine_metrics_stop(struct queue_engine *);
/* A message (true) or a connection (false) waits for a rate token. */
void engine_metrics_throttle_wait(struct queue_engine *, bool message);
/* The adaptive actions in force now (shape_active()'s). */
void engine_metrics_actions(struct queue_engine *, const struct shape_event *, size_t n);

/* engine_dispatch.c */
void engine_dispatch(struct queue_engine *);

/* engine_targets.c */
/* Starts finding the attempt's targets; ends in attempt_targets_done(). */
void targets_resolve(struct attempt *);
void targets_cancel(struct attempt *);
void targets_free(struct attempt *);

/* engine_attempt.c */
struct attempt *attempt_new(struct queue_engine *, struct queue_dest *, struct queue_item **,
                            size_t);
void attempt_targets_done(struct attempt *);
/* Sends the next message if one may go (after a rate wait). */
void attempt_resume(struct attempt *);
/* No more messages on this connection: QUIT after what is in flight. */
void attempt_end_soon(struct attempt *);
/* The recipient domain of a lane ("stream:pool@domain"). */
const char *engine_lane_domain(const char *lane);
/* Loads more items of the attempt's destination if it has room (idle reuse, prefetch). */
void attempt_refill(struct attempt *);
/* Stop: QUIT after what is in flight (or at once). */
void attempt_stop(struct attempt *);
/* Grace over: drop the connection, leaving what is in flight pending. */
void attempt_abort(struct attempt *);
/* A job is leaving its attempt (finished): the attempt may take more, or end. */
void attempt_job_gone(struct attempt *, struct job *);
/* A job's load has come back. */
void attempt_job_loaded(struct attempt *, struct job *);

/* engine_outcome.c */
struct job *job_new(struct queue_engine *, struct attempt *, struct queue_item *);
void job_load(struct job *);
/* Every recipient of the job not yet decided gets this. */
void job_decide_all(struct job *, enum rcpt_fate, int code, const char *status, const char *text,
                    bool local);
/* The job's outcome: queue_item_done, spool changes, events, DSN. Frees the job when the
 * spool has answered. */
void job_finish(struct job *);
void job_free(struct job *);
void engine_spool_op_done(struct queue_engine *);

/* engine_verp.c: VERP return paths. init reads cfg->verp (0, or -1 with err); slice cuts the
 * job into one transaction per recipient, each with its return path, and returns true, or
 * does nothing and returns false (VERP off, or the null sender). */
int engine_verp_init(struct queue_engine *, char *err, size_t errlen);
void engine_verp_free(struct queue_engine *);
bool engine_verp_slice(struct job *);

/* engine_rules.c: the current bounce rules (a reference: classify_unref() it), and the
 * bounces counted per category. */
struct classify_table *engine_rules_get(struct queue_engine *);
void engine_count_bounce(struct queue_engine *, enum classify_category);

/* engine_dsn.c */
/* Queues a DSN for the job's recipients that failed (bounced or expired) and want one; calls
 * done(job, ok) when it is durable (ok) or could not be stored; returns false (and calls
 * nothing) if no DSN is due. */
bool dsn_inject(struct job *, void (*done)(struct job *, bool ok));
/* Queues one delay notice (Action: delayed) for the recipients j->delay_idx[i] with
 * claimed[i] (the spool gave them RCPT_DELAY_NOTIFIED); calls done(job, ok) when it is
 * durable or could not be stored; returns false (and calls nothing) if none is due. */
bool dsn_inject_delay(struct job *, const bool *claimed, void (*done)(struct job *, bool ok));

#endif
