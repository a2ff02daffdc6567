/* queue/queue.h - the delivery scheduler: which messages go where next, and when a deferred
 * one is tried again.
 *
 * Pure logic in the spirit of Postfix's qmgr: no I/O, no threads, no clock, no hidden
 * randomness. Time is passed in (now_us: wall clock in microseconds, the unit of the spool's
 * next-attempt times) and randomness comes from a seedable generator, so every decision
 * replays on a fake clock in a unit test. The delivery engine drives it from one event loop:
 *
 *	queue_add()          each (message, destination) to deliver: at reception, at restart
 *	queue_next_due_us()  when to fire the loop's one timer (never a poll, never a scan)
 *	queue_take()         a batch of items for one new connection, or expired items to bounce
 *	queue_feedback()     the connection's fate: the site answered, or could not be reached
 *	queue_feedback_transaction()  one more transaction answered on a connection already open
 *	queue_item_done()    each item's outcome: delivered, deferred, bounced
 *	queue_release()      the connection is gone, its slot is free
 *
 * An item is one message's recipients at one destination (a message for three domains is
 * three items with the same id). It costs 40 bytes plus its share of the heaps and the id
 * index: about 60 bytes in all (docs/queue.md has the measurement). Envelopes and bodies stay
 * in the spool; the engine reads them when it takes an item.
 *
 A destination is a *site* (a domain) with one or more *lanes*: one per class of mail (the
 * engine's streams) and way out (its pools), so that a backlog in one lane never stands in
 * front of another's mail. Each lane has a scheduled queue (a 4-ary heap by next attempt time)
 * and a ready queue (FIFO of due items) bounded by ready_max: when it is full, due items stay
 * scheduled and the lane stops being woken until a take makes room. A heap of lanes keyed by
 * their earliest scheduled item gives the next due time. Lanes with ready items that may
 * connect wait in a round-robin ring, so a huge destination does not starve others. The
 * handle struct queue_dest is a lane.
 *
 * A site's lanes share its connections. When it is a site's turn, its lane of highest class
 * priority goes first; a class may reserve a share of every site's window that other classes
 * leave free for it (never the last slot of a window of one); and a connection being reused
 * gives its slot up (queue_take_more returns nothing) when a lane of higher priority at its
 * site has mail ready and no slot. Everything below that says "destination" is the site's:
 * the window, failures, death and probe.
 *
 * Per destination: a concurrency window (connections at once) opens at initial_window, grows
 * by one per connection that reached the site and by one per `window` transactions answered
 * on connections reused, up to max_window, and shrinks by one per connection that failed.
 * After dead_after consecutive failures the destination is dead for a cooldown (doubling per
 * consecutive death, up to dead_cooldown_max): its items are not offered but held to the end
 * of the cooldown without counting an attempt, or expired if that end falls after their
 * lifetime. Then one connection probes it: reaching the site revives it at the initial
 * window, failing kills it again for longer.
 *
 * Complexity (n items, m items of one lane, d lanes, k items returned; a site's lanes and
 * classes, a handful, count as constants):
 *	queue_add                   O(log m + log d), amortized (id index and arrays double)
 *	queue_remove                O(log m + log d) per item with that id
 *	queue_next_due_us           O(1)
 *	queue_advance               O(log m + log d) per item moved or held, at most advance_max
 *	                            items per call; O(1) when nothing is due
 *	queue_take, queue_take_more O(k + log d), plus the advance they start with
 *	queue_item_done             O(log m + log d)
 *	queue_feedback*, release    O(log d); killing a destination: O(r log m), r = its ready items
 *	queue_foreach_*, stats      O(n) / O(d), for the CLI and metrics
 *
 * Item storage is not returned mid-run: it grows in chunks of 65,536 items, reused through a
 * free list. Heaps shrink as they drain; an empty destination is freed.
 *
 * Thread-safety: none. A struct queue belongs to one event loop.
 *
 * The last section, "Engine", is not pure: it is the delivery engine that drives a struct
 * queue from its own thread and event loop, with the spool, the resolver, the SMTP client and
 * the DSN composer (docs/delivery.md, "The engine").
 */
#ifndef DROVER_QUEUE_H
#define DROVER_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Ids are the spool's: 24 hex digits (spool.h SPOOL_ID_LEN), kept as 12 raw bytes. */
#define QUEUE_ID_LEN 24
/* A site's name with its NUL: a domain name (253 octets at most) or a provider's. */
#define QUEUE_SITE_NAME_MAX 256

/* ---- Defaults: every setting named, with its reason; conf/ takes them from here ---- */

/* Retries: 5, 10, 20, 40 minutes, then hourly. Postfix backs off from 300 s to 4000 s; the
 * doubling reaches a greylisting server (typically 5-15 min) early, and hourly retries after
 * that keep a deferred backlog from hammering a receiver that is throttling us. */
#define DEF_RETRY_INTERVALS_S 300, 600, 1200, 2400, 3600
/* ±10 %: messages deferred in one burst (a provider throttling a campaign) come back spread
 * over a minute or more instead of all at once, without drifting far from the schedule. */
#define DEF_RETRY_JITTER_PCT 10
/* Beyond ±50 % the schedule would lose its order (a 5 min retry after a 10 min one). */
#define LIM_RETRY_JITTER_PCT_MAX 50
/* Postfix's maximal_queue_lifetime and RFC 5321 §4.5.4.1's "at least 4-5 days". */
#define DEF_QUEUE_LIFETIME_S (5 * 24 * 3600)
/* Due items kept ready per destination: enough for several connections' batches; the rest
 * wait in the scheduled queue (Postfix's qmgr_message_active_limit plays this role). */
#define DEF_QUEUE_READY_MAX 1000
/* Items per take = messages per connection (DESIGN.md max_messages_per_connection); Postfix
 * delivers up to 50 recipients per transaction, and reuse makes a connection worth more. */
#define DEF_QUEUE_BATCH_MAX 100
/* A new destination gets 2 connections until it has shown it answers (Postfix starts at 5
 * for all transports; mailbox providers punish bursts from unknown senders). */
#define DEF_QUEUE_INITIAL_WINDOW 2
/* Postfix's default_destination_concurrency_limit. */
#define DEF_QUEUE_MAX_WINDOW 20
/* Consecutive failed connections before the destination is held back (Postfix declares a
 * site dead after a cohort of failures at concurrency 1; 5 tolerates one bad MX host). */
#define DEF_QUEUE_DEAD_AFTER 5
/* First hold-back: Postfix's minimal_backoff_time, after which it unthrottles a dead site. */
#define DEF_QUEUE_DEAD_COOLDOWN_S 300
/* Doubling stops at an hour, the retry schedule's own final interval. */
#define DEF_QUEUE_DEAD_COOLDOWN_MAX_S 3600
/* Items moved or held per queue_advance call: a few milliseconds of work, so that a restart with a
 * million due items or a dead destination holding a million does not stall the event loop;
 * the rest is done at the next call (queue_next_due_us says "now"). */
#define DEF_QUEUE_ADVANCE_MAX 10000
/* A retry list longer than this is a typo, not a policy. */
#define QUEUE_RETRY_MAX 16

/* ---- Randomness: splitmix64, seeded by the caller (tests with a constant) ---- */

struct queue_rng {
	uint64_t state;
};
void queue_rng_seed(struct queue_rng *, uint64_t seed);
uint64_t queue_rng_next(struct queue_rng *);
/* Uniform in [0, bound), without modulo bias; bound 0 gives 0. */
uint64_t queue_rng_below(struct queue_rng *, uint64_t bound);

/* ---- Retry schedule (pure functions) ---- */

struct retry_schedule {
	unsigned n;                            /* intervals in use, 1..QUEUE_RETRY_MAX */
	uint64_t interval_us[QUEUE_RETRY_MAX]; /* after attempt 1, 2, ... n; the last repeats */
	unsigned jitter_pct;                   /* each wait is uniform in interval ± this % */
	uint64_t lifetime_us;                  /* from reception to expiry; 0: never expires */
};

void retry_schedule_default(struct retry_schedule *);
/* The wait after the given number of failed attempts (0 counts as 1), without jitter. */
uint64_t retry_interval_us(const struct retry_schedule *, unsigned attempts);
/* When to try again after the attempts-th attempt failed at now: now + interval ± jitter.
 * The same rng state gives the same answer. Saturates at UINT64_MAX. */
uint64_t retry_next(const struct retry_schedule *, unsigned attempts, uint64_t now_us,
                    struct queue_rng *);
/* received + lifetime (UINT64_MAX if the lifetime is 0). An item whose next attempt would come
 * after this is expired instead of rescheduled (the engine bounces it). */
uint64_t retry_expires_us(const struct retry_schedule *, uint64_t received_us);

/* ---- The scheduler ---- */

struct queue;
struct queue_item; /* handle: valid from queue_take until queue_item_done */
struct queue_dest; /* handle: valid while the caller holds a slot (queue_take .. release) */

/* A class of mail (the engine's stream): its lanes' priority at a site, the share of each
 * site's connections only it may use, and its retry schedule and lifetime. */
struct queue_class {
	unsigned priority;    /* higher first */
	unsigned reserve_pct; /* 0..100; over all classes at most 100 */
	struct retry_schedule retry;
};
/* More streams than this is a configuration mistake, and a site keeps a counter per class. */
#define QUEUE_CLASSES_MAX 64

struct queue_options {
	unsigned ready_max;            /* ready items per destination, >= 1 */
	unsigned batch_max;            /* items per take, >= 1 */
	unsigned initial_window;       /* connections at once for a new or revived destination */
	unsigned max_window;           /* >= initial_window */
	unsigned dead_after;           /* consecutive failed connections, >= 1 */
	uint64_t dead_cooldown_us;     /* first hold-back, > 0 */
	uint64_t dead_cooldown_max_us; /* >= dead_cooldown_us */
	unsigned advance_max;          /* items moved or held per queue_advance, >= 1 */
	struct retry_schedule retry;
	/* Classes, copied by queue_new: nclasses 0 is one class with the retry schedule above,
	 * no priority, no reserve. queue_add uses class 0. */
	const struct queue_class *classes;
	unsigned nclasses;
	uint64_t seed; /* for the jitter: the engine passes something random, tests a constant */
};

void queue_options_default(struct queue_options *);
/* NULL with a message in err if an option is out of range. */
struct queue *queue_new(const struct queue_options *, char *err, size_t errlen);
/* New options for a queue in use (a configuration reload): classes may change their settings
 * and new ones may be added at the end, never removed (lanes keep their class's index). The
 * retry schedules apply to the next attempt of every item; windows and the dead-site settings
 * to sites as they next change. 0, or -1 with the reason in err and nothing changed. */
int queue_reconfigure(struct queue *, const struct queue_options *, char *err, size_t errlen);
/* Frees everything; handles held by the caller die with it. */
void queue_free(struct queue *);

/* Where an item waits: a lane of a site. Names are compared as exact bytes (the caller
 * lower-cases domains); a lane name stands for one site and one class. */
struct queue_lane {
	const char *site; /* the destination: its lanes share its connections */
	const char *name; /* the lane, unique over all sites; NULL: the site's name */
	const char *via;  /* kept with a new lane for the caller (its pool); NULL: none */
	unsigned cls;     /* index into the options' classes */
	/* The site's window top (its shaping's max_connections); 0: the options' max_window.
	 * The latest add that gives one sets it. */
	unsigned max_window;
	/* Where the site's window opens (slow start); 0: the options' initial_window. */
	unsigned initial_window;
};

/* Queue one message's recipients at one destination, in one lane. next_attempt_us in the past
 * or 0 means as soon as possible; attempts are those already made (restart recovery); the
 * lifetime is the class's. Returns 0, or -1 with errno EINVAL (id not 24 hex digits, empty
 * site, unknown class, a lane name already standing for another site or class) or EEXIST
 * (this id is already queued in this lane). */
int queue_add_lane(struct queue *, const char *id, const struct queue_lane *, uint64_t received_us,
                   uint64_t next_attempt_us, unsigned attempts);
/* queue_add_lane with the site as the lane's name, no via, class 0. */
int queue_add(struct queue *, const char *id, const char *dest, uint64_t received_us,
              uint64_t next_attempt_us, unsigned attempts);

/* Operator delete: every item with this id leaves the queue. Items being delivered are only
 * marked: their queue_item_done removes them whatever the outcome. Returns the number of
 * items removed or marked, or -1 (errno EINVAL) for a malformed id. */
int queue_remove(struct queue *, const char *id);

/* When queue_take or queue_advance next has something to do: 0 (or any time not after now)
 * means now; UINT64_MAX means nothing that time alone will make due (empty, or waiting on
 * slots or ready-queue room, which queue_release and queue_take free). Arm the timer for this
 * after every call. */
uint64_t queue_next_due_us(const struct queue *);

/* Move due items into their destinations' ready queues (while there is room), hold back the
 * due items of dead destinations, and set expired ones aside: at most advance_max items per
 * call, the rest at the next. queue_take and queue_take_more do this themselves. */
void queue_advance(struct queue *, uint64_t now_us);

enum queue_work {
	QUEUE_WORK_NONE = 0,
	QUEUE_WORK_DELIVER, /* items for one new connection to dest: a slot is now held */
	QUEUE_WORK_EXPIRE,  /* items whose lifetime ended while their destination was dead:
	                     * bounce each as expired (QUEUE_EXPIRED); dest is NULL */
};

struct queue_batch {
	enum queue_work work;
	struct queue_dest *dest;
	size_t n;
};

/* Fill items[] (at most cap, and at most batch_max) with work due now: expired items first,
 * then the next destination in round-robin order that has ready items and a free slot in its
 * window. Each item returned must be answered with queue_item_done; each DELIVER batch's slot
 * with queue_release. Returns the number of items (0: nothing to do now). */
size_t queue_take(struct queue *, uint64_t now_us, struct queue_batch *, struct queue_item **items,
                  size_t cap);
/* More ready items for a connection already open to dest (reuse: the caller counts messages per
 * connection); no new slot. 0 if none, or if dest is dead. */
size_t queue_take_more(struct queue *, struct queue_dest *, uint64_t now_us,
                       struct queue_item **items, size_t cap);

enum queue_conn {
	QUEUE_CONN_NONE = 0, /* nothing to report (already reported, or no connection made) */
	QUEUE_CONN_OK,       /* the site answered: greeting and EHLO accepted */
	QUEUE_CONN_FAILED,   /* unreachable, timed out, 421 at greeting, TLS required and failed */
};

enum queue_dest_state {
	QUEUE_DEST_ALIVE = 0,
	QUEUE_DEST_DEAD,  /* held back until dead_until */
	QUEUE_DEST_PROBE, /* cooldown over: one connection allowed to test it */
};

/* The connection on a slot of dest reached the site or not: feeds the window and dead-site
 * detection. At most once per slot, while it is held (or through queue_release). Returns the
 * destination's state afterwards, so that the engine can log a death or a revival. */
enum queue_dest_state queue_feedback(struct queue *, struct queue_dest *, enum queue_conn,
                                     uint64_t now_us);
/* Positive feedback from a connection already counted by queue_feedback(QUEUE_CONN_OK): the
 * site answered one more transaction on it. The window opens by one for every `window` such
 * answers (Postfix's positive feedback of 1/concurrency per delivery), so a burst carried by
 * reused connections opens the window too, instead of waiting for connections to turn over.
 * A failed connection starts the count again. Only while the destination is alive. Returns
 * true if the window grew: another connection may then be taken (queue_next_due_us() is 0 if
 * dest has ready items). Any number of times per slot, while it is held. */
bool queue_feedback_transaction(struct queue *, struct queue_dest *, uint64_t now_us);
/* The slot's connection has ended (with its feedback if not given yet). dest may be freed
 * here if nothing else refers to it: do not use the handle afterwards. */
void queue_release(struct queue *, struct queue_dest *, enum queue_conn, uint64_t now_us);

enum queue_outcome {
	QUEUE_DELIVERED, /* every recipient of the item is done: removed */
	QUEUE_BOUNCED,   /* permanent failure (the engine sends the DSN): removed */
	QUEUE_EXPIRED,   /* from a QUEUE_WORK_EXPIRE batch (the engine bounces it): removed */
	QUEUE_DEFERRED,  /* some recipient got 4xx, or the connection failed: one more attempt
	                  * counted, rescheduled by the retry schedule, or expired */
	QUEUE_UNTRIED,   /* never attempted (the connection ended first): due again now, no
	                  * attempt counted */
};

enum queue_fate {
	QUEUE_FATE_REMOVED,     /* gone from the queue (delivered, bounced, or deleted) */
	QUEUE_FATE_RESCHEDULED, /* scheduled again at *next_us */
	QUEUE_FATE_EXPIRED,     /* deferred past its lifetime: removed, the engine bounces it */
};

/* Report one taken item's outcome. next_us (may be NULL) receives the next attempt time when
 * the fate is RESCHEDULED. The item handle is invalid afterwards. */
enum queue_fate queue_item_done(struct queue *, struct queue_item *, enum queue_outcome,
                                uint64_t now_us, uint64_t *next_us);
/* The same, a deferral waiting by this schedule's intervals instead of its class's (shaping's
 * retry for a provider, backoff mode); its lifetime stays the item's own. NULL: the class's. */
enum queue_fate queue_item_done_with(struct queue *, struct queue_item *, enum queue_outcome,
                                     uint64_t now_us, const struct retry_schedule *retry,
                                     uint64_t *next_us);

/* Shaping says the lane may not open a connection before until_us (a rate token, a
 * suspension, a daily cap): its mail waits, ready or scheduled, and the lane is woken then
 * (queue_next_due_us), not polled. until_us at or before now lifts the hold. The caller holds
 * a slot or an item of the lane (the handle must be valid). O(lanes of the site). */
void queue_hold(struct queue *, struct queue_dest *, uint64_t until_us, uint64_t now_us);
/* The same for every lane of a site (a provider suspended); 0 if no such site is queued. */
int queue_hold_site(struct queue *, const char *site, uint64_t until_us, uint64_t now_us);
/* Every hold lifted (the shaping rules changed: each lane asks them again). O(lanes). */
void queue_hold_none(struct queue *, uint64_t now_us);
/* True if a lane of higher priority at d's site has mail ready and no connection: a
 * connection of d with nothing to send should close rather than idle on its slot. */
bool queue_dest_yields(const struct queue *, const struct queue_dest *);
/* A new window top for a site (an adaptive limit, a reload): a larger window closes to it at
 * once. 0 if no such site is queued (the next queue_add_lane's max_window sets it). */
int queue_site_limit(struct queue *, const char *site, unsigned max_window);

/* ---- An operator's hand (the admin API: engine_admin.c) ---- */

/* Every item with this id, any state (one per destination), at most cap; 0 for a malformed
 * id. The handles are valid until the queue next changes. */
size_t queue_find(const struct queue *, const char *id, struct queue_item **items, size_t cap);
enum queue_item_state queue_item_state(const struct queue_item *);
/* True for a scheduled item put back by queue_item_park and not taken since. */
bool queue_item_parked(const struct queue_item *);
/* Take one queued item out of turn (an operator's bounce or delete): it becomes ACTIVE, to be
 * answered with queue_item_done like any taken item; no slot is held. -1 if it is ACTIVE
 * already (being delivered). */
int queue_item_take(struct queue *, struct queue_item *, uint64_t now_us);
/* A taken item goes back untried, scheduled at until_us (a suspension's end, its expiry):
 * no attempt counted, its retry schedule untouched, and marked parked (queue_item_parked)
 * until it is taken again. An item removed meanwhile (queue_remove) goes. */
void queue_item_park(struct queue *, struct queue_item *, uint64_t until_us, uint64_t now_us);
/* A scheduled item becomes due now, its attempts unchanged. 1 if it was scheduled later. */
int queue_item_due_now(struct queue *, struct queue_item *, uint64_t now_us);
/* A dead site (held back after failed connections) is probed at once, as at the end of its
 * cooldown. 1 if it was dead. */
int queue_site_revive(struct queue *, const char *site, uint64_t now_us);

/* ---- Looking inside (engine, CLI, metrics) ---- */

/* Writes the id as 24 lower-case hex digits and a NUL. */
void queue_item_id(const struct queue_item *, char id[QUEUE_ID_LEN + 1]);
unsigned queue_item_attempts(const struct queue_item *);
uint64_t queue_item_expires_us(const struct queue_item *);
struct queue_dest *queue_item_dest(const struct queue *, const struct queue_item *);
const char *queue_dest_name(const struct queue_dest *); /* the lane's */
const char *queue_dest_site(const struct queue_dest *);
const char *queue_dest_via(const struct queue_dest *); /* NULL if none */
unsigned queue_dest_class(const struct queue_dest *);
/* NULL if the destination has nothing queued and no state worth keeping. */
struct queue_dest *queue_dest_find(const struct queue *, const char *name);

enum queue_item_state {
	QUEUE_ITEM_SCHEDULED = 1, /* waiting for its next attempt time */
	QUEUE_ITEM_READY,         /* due, waiting for a connection slot */
	QUEUE_ITEM_ACTIVE,        /* taken: being delivered or bounced */
	QUEUE_ITEM_EXPIRING,      /* expired while held back, waiting to be taken and bounced */
};

struct queue_item_info {
	char id[QUEUE_ID_LEN + 1];
	const char *dest;
	enum queue_item_state state;
	unsigned attempts;
	uint64_t next_attempt_us; /* SCHEDULED only, else 0 */
	uint64_t expires_us;      /* UINT64_MAX: never */
};

struct queue_dest_stats {
	const char *name; /* the lane */
	const char *site;
	const char *via; /* NULL if none */
	unsigned cls;
	enum queue_dest_state state; /* the site's */
	unsigned scheduled, ready, active_items, expiring;
	unsigned slots;         /* connections held by the lane */
	unsigned site_slots;    /* ... by every lane of its site */
	unsigned window;        /* the site's connections allowed now (1 probing, 0 dead) */
	unsigned failures;      /* the site's consecutive failed connections */
	uint64_t next_due_us;   /* earliest scheduled item, UINT64_MAX if none */
	uint64_t dead_until_us; /* DEAD: end of the cooldown; else 0. As of the latest now_us
	                         * the queue was given. */
	uint64_t held_until_us; /* the lane is held (queue_hold) until then; 0: not held */
	unsigned max_window;    /* the site's window top */
	uint64_t delivered, deferred, bounced, expired; /* item outcomes since creation */
};

struct queue_stats {
	uint64_t items; /* = scheduled + ready + active + expiring */
	uint64_t scheduled, ready, active, expiring;
	uint64_t dests, sites, dead_dests; /* lanes, sites, dead sites */
	uint64_t memory_bytes; /* what the scheduler has allocated (items, heaps, indexes) */
	unsigned item_size;    /* bytes of one item's own record (sizeof) */
};

void queue_stats(const struct queue *, struct queue_stats *);
void queue_dest_stats(const struct queue *, const struct queue_dest *, struct queue_dest_stats *);

/* Visit every item (in no particular order) or every destination; return false to stop. The
 * queue must not be changed from inside the callback. O(n), O(d): for listings, not for the
 * delivery path. */
typedef bool queue_item_fn(void *arg, const struct queue_item_info *);
typedef bool queue_dest_fn(void *arg, const struct queue_dest_stats *);
void queue_foreach_item(const struct queue *, queue_item_fn *, void *arg);
void queue_foreach_dest(const struct queue *, queue_dest_fn *, void *arg);

/* ==== Engine ====
 *
 * The delivery engine: one thread running one event loop that owns a struct queue, a DNS
 * resolver and the SMTP clients. It turns queued recipients into delivered, deferred (retried
 * on the configured schedule), bounced or expired ones: each change is written to the spool
 * (one spool_rcpt_change per message and destination, which removes the message when nothing
 * is pending), logged in the event log (Delivery, TransientFailure, Bounce, Expiration,
 * DelayNotice, DsnQueued) and, for failures, reported to the sender in a DSN queued like any
 * message; recipients still deferred past delivery.delay_notice_after get one delay notice.
 * Recipient domains in UTF-8 are queued, routed and looked up by their A-labels.
 *
 * Crash safety: the spool is the truth. A recipient's outcome is written after the server's
 * reply, so a crash in between delivers it again (a duplicate, never a loss); a DSN is
 * committed before the recipients it reports are marked failed. A delay notice is the other
 * way round: its recipients are claimed in the spool first, so a crash loses it rather than
 * sending a second one.
 *
 * Thread-safety: start and stop from one thread (the main one); submit from any thread
 * between them. */

struct config;
struct envelope;
struct eventlog;
struct spool;
struct queue_engine;

/* Connections open at once over all destinations by default (delivery.max_connections_total;
 * each window is per destination): every connection is a descriptor, and the SMTP listeners
 * and sessions need theirs too. */
#define DEF_ENGINE_MAX_CONNECTIONS_TOTAL 512

/* Reads every pending recipient from the spool (on the calling thread: the loop has not
 * started), queues one item per message and recipient domain, then starts the thread. cfg,
 * spool and log must outlive the engine. NULL with a reason in err (the resolver's
 * forwarders, the queue's settings). */
struct queue_engine *queue_engine_start(const struct config *, struct spool *, struct eventlog *,
                                        char *err, size_t errlen);

/* Hard bounces whose rules say "suppress" go on this list (suppress.h); NULL: none. It must
 * outlive the engine. Any thread. */
struct suppress;
void queue_engine_set_suppression(struct queue_engine *, struct suppress *);

/* The bounce rules as the server reloads them (SIGHUP): from this call on, failures are
 * classified with the slot's current table instead of the one read at start. The slot must
 * outlive the engine. Any thread. */
struct classify_slot;
void queue_engine_set_bounce_rules(struct queue_engine *, struct classify_slot *);
/* Recipients bounced (and expired, as "message-expired") since start, per category: counts
 * has CLASSIFY_CATEGORY_COUNT entries (classify.h), for the metrics. Any thread. */
void queue_engine_bounce_counts(struct queue_engine *, uint64_t *counts);

/* A message just committed to the spool: queued for each of its recipients' domains. Any
 * thread; env is copied (id, arrival time, domains) before the call returns. */
void queue_engine_submit(struct queue_engine *, const struct envelope *);
/* The same with the signature of struct ingress_hooks.accepted (arg is the engine). */
void queue_engine_accepted(void *engine, const struct envelope *);

/* Stops taking work, ends every connection (QUIT after the message in flight), waits up to
 * grace_s seconds for them, then for the spool to answer what was asked of it, and frees
 * everything. What was not finished stays pending in the spool and is delivered after the
 * next start. Call it after the last submit (after ingress_stop). */
void queue_engine_stop(struct queue_engine *, unsigned grace_s);

/* `drover queue list | show ID` (cli.c): what the spool holds, read-only, beside the daemon
 * or without it; the queue of each pending recipient as the engine would file it under cfg.
 * json: one JSON object per line. Return the exit status. */
struct spool;
int queue_cli_list(const struct config *, struct spool *, bool json);
int queue_cli_show(const struct config *, struct spool *, const char *id);

/* ---- Summaries and inspection from the spool (summary.c) ----
 *
 * For `drover queue summary` (without a server) and the admin API (with one, on a thread that
 * may block). Reading the spool is O(queue): every envelope is read. */

/* What a summary groups pending recipients by. queue: the lane ("stream:pool@domain"),
 * shown with its stream, pool and destination. provider: the shaping rules' provider of the
 * destination domain, by the rules' domain lists. */
enum queue_summary_key {
	QUEUE_BY_QUEUE,
	QUEUE_BY_STREAM,
	QUEUE_BY_POOL,
	QUEUE_BY_TENANT,
	QUEUE_BY_CAMPAIGN,
	QUEUE_BY_DESTINATION,
	QUEUE_BY_PROVIDER,
	QUEUE_BY_COUNT
};
/* "queue", "stream", ... */
const char *queue_summary_key_name(enum queue_summary_key);
/* "tenant,campaign" into keys (room for QUEUE_BY_COUNT), *n of them; -1 with why in err
 * (an unknown key, one given twice, none). */
int queue_summary_keys_parse(const char *text, enum queue_summary_key *keys, size_t *n, char *err,
                             size_t errlen);

struct queue_summary;
struct shape_rules;
/* Groups by keys (n >= 1); rules (a reference is taken; NULL: no providers) for the provider
 * key. cfg must outlive it. */
struct queue_summary *queue_summary_new(const struct config *, const enum queue_summary_key *keys,
                                        size_t n, struct shape_rules *rules);
/* Counts a message's pending recipients (each in its group; the message once per group). */
void queue_summary_add(struct queue_summary *, const struct envelope *);
/* The groups, and frees the summary: {"by": [keys], "groups": [{the keys' values,
 * "messages", "recipients", "bytes", "oldest", "oldest_age_s", "last_error"}], "messages",
 * "recipients"}, groups by most messages first (by queue: by stream first). */
struct json_t *queue_summary_finish(struct queue_summary *, uint64_t now_us);
/* All of that over the spool; NULL if it cannot be read. */
struct json_t *queue_summary_json(const struct config *, struct spool *,
                                  const enum queue_summary_key *keys, size_t n,
                                  struct shape_rules *rules, uint64_t now_us);
/* A message as the API's inspection shows it: envelope, recipients with their states, its
 * queues, and its header section from body (at most header_max octets; body NULL: null). */
struct evbuffer;
struct json_t *queue_message_json(const struct config *, const struct envelope *,
                                  struct evbuffer *body, size_t header_max, uint64_t now_us);

/* A configuration reload (docs/operations.md, "Reloading"): delivery settings, routes,
 * domains, sources and pools, streams (classes keep their place; new ones are added), the
 * CA store, and the shaping rules (delivery.shaping) are made and checked by prepare on the
 * calling thread (NULL with every error, file:line, in err: nothing changes); commit swaps
 * them in on the engine's thread: connections opened from then on use them, those open
 * finish on the configuration they started with. Throttles, adaptive actions, warm-up counts
 * and queued mail carry over; held mail asks the new settings at once. cancel drops a
 * prepared reload. Not reloaded (restart): the DNS forwarders and timeout, VERP,
 * delivery.enabled, and turning shaping on or off ("none"). From one thread at a time, not
 * the engine's; cfg is referenced by the reload. */
struct engine_reload;
struct engine_reload *queue_engine_reload_prepare(struct queue_engine *, const struct config *cfg,
                                                  char *err, size_t errlen);
void queue_engine_reload_commit(struct engine_reload *);
void queue_engine_reload_cancel(struct engine_reload *);

/* The adaptive actions active now (docs/shaping.md, AdaptiveAction records' fields), as a JSON
 * array (a new reference; empty without shaping). Any thread. */
struct json_t;
struct json_t *queue_engine_shaping_json(struct queue_engine *);

/* The admin API's verbs (engine_admin.c; docs/operations.md, "Control API"): "suspend",
 * "resume", "suspensions", "bounce", "delete", "retry", with the request's body (a JSON
 * object; NULL: none). Blocking: it may read the whole spool, then waits while the engine's
 * thread applies the verb (in slices: the loop goes on between them); bounce and delete answer
 * once every matching item is taken, their DSNs and spool changes following. Call it from a
 * thread of one's own, never from an event loop, and never after queue_engine_stop. Returns
 * an HTTP status (200; 400 and 404 with {"error": why}; 503 while stopping) and the answer in
 * *answer (a new reference). Suspensions live in memory: a restart forgets them. */
int queue_engine_admin(struct queue_engine *, const char *verb, struct json_t *body,
                       struct json_t **answer);

/* Questions to the engine thread for the admin API (engine_inspect.c): what only the engine
 * knows (its in-memory queue, its shaping state) is read or changed there, and the answer
 * posted back to the asker's mailbox. args (taken: the engine frees it) and the answer are
 * JSON objects; status is an HTTP status (200, 201, 400, 404, 503 with {"error": why}).
 *	QUEUE_ASK_TOP              args {"by": "destination"|"provider", "limit": N}
 *	QUEUE_ASK_ADAPTIVE         args {}
 *	QUEUE_ASK_OVERRIDES        args {}
 *	QUEUE_ASK_OVERRIDE_ADD     args: POST /api/v1/shaping/overrides's body
 *	QUEUE_ASK_OVERRIDE_REMOVE  args {"id": N}
 * Any thread; e NULL (delivery off) answers 503 through the mailbox too. */
enum queue_engine_question {
	QUEUE_ASK_TOP,
	QUEUE_ASK_ADAPTIVE,
	QUEUE_ASK_OVERRIDES,
	QUEUE_ASK_OVERRIDE_ADD,
	QUEUE_ASK_OVERRIDE_REMOVE,
};
struct mailbox;
typedef void queue_engine_answer_fn(void *arg, int status, struct json_t *answer);
void queue_engine_ask(struct queue_engine *, enum queue_engine_question, struct json_t *args,
                      struct mailbox *reply_to, queue_engine_answer_fn *, void *arg);
/* The shaping rules in force, a new reference (NULL without shaping). Any thread. */
struct shape_rules *queue_engine_shape_rules(struct queue_engine *);

/* Counters since start, for logs and metrics (recipients unless said otherwise). */
struct queue_engine_stats {
	uint64_t loaded;          /* items queued from the spool at start */
	uint64_t submitted;       /* items queued by queue_engine_submit() */
	uint64_t delivered;       /* recipients accepted by a server */
	uint64_t deferred;        /* recipient attempts that will be retried */
	uint64_t bounced;         /* recipients refused for good */
	uint64_t expired;         /* recipients given up at the end of their lifetime */
	uint64_t dsns;            /* DSNs queued */
	uint64_t connections;     /* SMTP sessions started */
	uint64_t connections_ok;  /* ... that reached a server */
	uint64_t messages_reused; /* transactions on a connection's second message or later */
	uint64_t items;           /* items in the queue now */
	unsigned open;            /* connections open now */
};
void queue_engine_stats(struct queue_engine *, struct queue_engine_stats *);

/* What the metrics show of the queue and of shaping (engine_metrics.c): the engine's loop
 * publishes the queue's figures once a second, and this copies the latest (all zero before
 * the first); counters are as of the call. Any thread; never waits for the loop. */
#define QUEUE_METRICS_SITES_MAX  50 /* sites named; the others are summed as one */
#define QUEUE_METRICS_SITE_OTHER "_other"
struct queue_engine_site_items {
	char stream[65];                /* the lane's stream ("default" for none) */
	char site[QUEUE_SITE_NAME_MAX]; /* the provider or the domain, or SITE_OTHER */
	uint64_t items;
};
struct dns_latency;
struct queue_engine_metrics {
	uint64_t published_us;                       /* wall clock of the snapshot; 0: none yet */
	uint64_t scheduled, ready, active, expiring; /* items by state */
	uint64_t lanes_ready; /* lanes with items ready, waiting for a connection */
	uint64_t lanes_held;  /* lanes shaping holds back (a rate or warm-up wait, a suspension) */
	uint64_t lanes_dead;  /* lanes of sites held back after failed connections */
	uint64_t sites_held;  /* sites with a lane held back by shaping */
	struct queue_engine_site_items *sites; /* items by (stream, site), malloc'd */
	size_t nsites;
	struct {
		const char *name; /* shape_action_name() */
		uint64_t active;
	} actions[8]; /* adaptive actions in force, by kind */
	size_t nactions;
	int64_t admin_suspensions;          /* operators' suspensions in force; -1: not known */
	uint64_t throttle_waits_message;    /* messages that waited for a message_rate token */
	uint64_t throttle_waits_connection; /* connections that waited for connection_rate */
	const struct dns_latency *dns;      /* the delivery resolver's answer times (dns.h) */
};
void queue_engine_metrics(struct queue_engine *, struct queue_engine_metrics *);
/* Frees what queue_engine_metrics() allocated. */
void queue_engine_metrics_clear(struct queue_engine_metrics *);

#endif
