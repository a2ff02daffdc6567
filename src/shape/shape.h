/* shape/shape.h - traffic shaping: how fast, how wide and how each destination is sent to, and
 * how that changes by itself when a receiver pushes back (docs/shaping.md).
 *
 * Two objects:
 * - struct shape_rules: the shaping rules file (defaults in etc/shaping.conf, built into the
 *   binary), compiled once into hash tables: layered settings (built-in -> defaults ->
 *   provider -> domain -> source x provider), providers (groups of domains by MX host suffix
 *   or by name), adaptive rules (PCRE2, JIT) and warm-up schedules. Immutable once loaded,
 *   reference-counted; a reload loads a new one.
 * - struct shape_state: what changes while mail goes out: GCRA throttles, connection slots,
 *   adaptive trigger counts and active actions, warm-up day counters. Memory is bounded (see
 *   the limits below); nothing in it depends on being called at any particular moment:
 *   every answer is computed from the time the caller passes.
 *
 * Time is always passed in (now_us: wall-clock microseconds since the epoch, as
 * time_now_us() gives; warm-up days are UTC days of it), so tests run on a fake clock. No
 * function here sleeps, polls or does I/O, except loading a rules file.
 *
 * Destinations. Counters are keyed by a destination name ("dest" below): the domain itself
 * if the rules have a domain "x" { } section for it, else its provider if it has one (so
 * every domain of a provider shares the provider's counters: "limits that name a provider
 * are enforced across all its domains"), else the domain. shape_params() gives it
 * (struct shape_params.dest). Per-source limits (max_connections, message_rate,
 * connection_rate, warm-up caps) count per (source, dest); the provider_* limits count per
 * dest over all sources.
 *
 * Thread-safety:
 * - Rules are immutable and may be used from any thread at once; their reference count is
 *   atomic. Loading does blocking file I/O (call it at start-up or from the reload path) and
 *   uses libconfuse, whose scanner is global: loads of shaping rules are serialized among
 *   themselves, but must not run while config_load() runs in another thread (the reload path
 *   does one after the other).
 * - A state is not locked: one thread (the delivery engine's) uses it, or the caller
 *   serializes. Every state operation is O(1) (hash lookups, a few entries of expiry sweep),
 *   except those that say otherwise.
 */
#ifndef DROVER_SHAPE_H
#define DROVER_SHAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

/* ---- Limits (each bounds what a rules file or the traffic can cost) ---- */

#define SHAPE_NAME_MAX      64    /* octets of a provider, source, rule or warm-up name */
#define SHAPE_DEST_MAX      253   /* octets of a destination (a domain name at most) */
#define SHAPE_RETRY_MAX     16    /* intervals in a retry schedule (as delivery.retry) */
#define SHAPE_PROVIDERS_MAX 1000  /* provider sections */
#define SHAPE_NAMES_MAX     50000 /* MX suffixes and domains of all providers together */
#define SHAPE_SECTIONS_MAX  50000 /* domain sections, and source sections of all providers */
#define SHAPE_ADAPTIVE_MAX  1000  /* adaptive rules */
#define SHAPE_WARMUP_MAX    1000  /* warmup sections */
#define SHAPE_LIST_MAX      16    /* codes or statuses in one adaptive rule */
/* N of a trigger "N in PERIOD": each counted (rule, source, destination) keeps the times of
 * its last N matches (8 octets each). */
#define SHAPE_TRIGGER_MAX  100
#define SHAPE_SCHEDULE_MAX 366 /* days in a warm-up schedule */
/* Octets of a reply's text that adaptive rules see (as the SMTP reply parser keeps). */
#define SHAPE_TEXT_MAX 4096
/* PCRE2 match limit per rule and reply: a pathological regex gives up (no match) instead of
 * backtracking for seconds. Real rules need a few hundred steps. */
#define SHAPE_MATCH_LIMIT 200000
/* Keys a state keeps for throttles, trigger counts and warm-up counters, each table (at
 * about 100 octets a key). Idle keys are dropped as soon as they carry no information (a
 * throttle whose bucket is full again); past the limit, see shape_state_new(). */
#define SHAPE_DEF_KEYS_MAX (1u << 20)
/* Trigger counts kept at once (each up to SHAPE_TRIGGER_MAX times): at most this many, or
 * keys_max if less. About 50 MB at worst. */
#define SHAPE_TRIGGER_KEYS_MAX 65536
/* Adaptive actions active at once (each is a (source, destination) under a rule). */
#define SHAPE_DEF_ACTIONS_MAX 10000

/* ---- Values ---- */

/* A rate: count per per_s seconds, with a burst (events that may go back to back after a
 * quiet time; 1: evenly spaced). count 0: unlimited. */
struct shape_rate {
	uint64_t count;
	uint64_t per_s;
	uint32_t burst;
};

/* "unlimited"; "N/s", "N/min", "N/h", "N/day" (also "N/sec", "N/m", "N/hour", "N/d", and a
 * multiple such as "N/10min"); then optionally " burst B" (1 <= B <= N). 0, or -1 with *why
 * a phrase for the message. */
int shape_rate_parse(const char *text, struct shape_rate *out, const char **why);
/* "unlimited", "300/min", "300/min burst 20", "7/10min". */
void shape_rate_format(const struct shape_rate *, char *buf, size_t size);
/* True if a allows fewer events per second than b (unlimited allows the most). */
bool shape_rate_stricter(const struct shape_rate *a, const struct shape_rate *b);

enum shape_tls {
	SHAPE_TLS_DISABLED,
	SHAPE_TLS_OPPORTUNISTIC,
	SHAPE_TLS_REQUIRED,
	SHAPE_TLS_REQUIRED_VERIFY,
};

/* What a 421 at the greeting or EHLO means: the host is busy (try the next MX), or the
 * provider wants this source to slow down (every MX would say the same: back off). */
enum shape_on_421 {
	SHAPE_421_NEXT_MX,
	SHAPE_421_BACKOFF,
};

/* The settings, one per field below (the order of enum shape_field). Timeouts in seconds. */
struct shape_settings {
	unsigned max_connections;          /* per (source, dest): the slow-start window's top */
	unsigned initial_connections;      /* the window's start (slow start) */
	unsigned provider_max_connections; /* per dest, all sources; 0: no limit */
	unsigned max_messages_per_connection;
	struct shape_rate message_rate;          /* per (source, dest) */
	struct shape_rate provider_message_rate; /* per dest, all sources */
	struct shape_rate connection_rate;       /* new connections per (source, dest) */
	unsigned max_recipients_per_transaction;
	unsigned connect_timeout_s, greeting_timeout_s, ehlo_timeout_s, mail_timeout_s,
	    rcpt_timeout_s, data_timeout_s, data_block_timeout_s, dot_timeout_s, idle_timeout_s;
	uint64_t retry_s[SHAPE_RETRY_MAX]; /* the last one repeats */
	unsigned nretry;
	enum shape_tls tls;
	enum shape_on_421 on_421;
	/* In backoff mode (an adaptive action): the retry schedule, and a rate cap. */
	uint64_t backoff_retry_s[SHAPE_RETRY_MAX];
	unsigned nbackoff_retry;
	struct shape_rate backoff_message_rate;
};

enum shape_field {
	SHAPE_F_MAX_CONNECTIONS,
	SHAPE_F_INITIAL_CONNECTIONS,
	SHAPE_F_PROVIDER_MAX_CONNECTIONS,
	SHAPE_F_MAX_MESSAGES_PER_CONNECTION,
	SHAPE_F_MESSAGE_RATE,
	SHAPE_F_PROVIDER_MESSAGE_RATE,
	SHAPE_F_CONNECTION_RATE,
	SHAPE_F_MAX_RECIPIENTS_PER_TRANSACTION,
	SHAPE_F_CONNECT_TIMEOUT,
	SHAPE_F_GREETING_TIMEOUT,
	SHAPE_F_EHLO_TIMEOUT,
	SHAPE_F_MAIL_TIMEOUT,
	SHAPE_F_RCPT_TIMEOUT,
	SHAPE_F_DATA_TIMEOUT,
	SHAPE_F_DATA_BLOCK_TIMEOUT,
	SHAPE_F_DOT_TIMEOUT,
	SHAPE_F_IDLE_TIMEOUT,
	SHAPE_F_RETRY,
	SHAPE_F_TLS,
	SHAPE_F_ON_421,
	SHAPE_F_BACKOFF_RETRY,
	SHAPE_F_BACKOFF_MESSAGE_RATE,
	SHAPE_FIELD_COUNT
};

/* The setting's name as written in the rules file ("max_connections"); "?" out of range. */
const char *shape_field_name(enum shape_field);
/* The field's value as it would be written in the rules file ("20", "300/min", "5m",
 * "{\"5m\", \"1h\"}", "opportunistic"). */
void shape_field_format(const struct shape_settings *, enum shape_field, char *buf, size_t size);
/* The compiled-in defaults (the values etc/shaping.conf's defaults { } shows). */
void shape_settings_builtin(struct shape_settings *);

/* Where a value came from, for explanations ("drover shaping show"). */
enum shape_layer {
	SHAPE_LAYER_BUILTIN,  /* compiled in, or the base the caller passed to the load */
	SHAPE_LAYER_DEFAULTS, /* defaults { } */
	SHAPE_LAYER_PROVIDER, /* provider "name" { } */
	SHAPE_LAYER_DOMAIN,   /* domain "name" { } */
	SHAPE_LAYER_SOURCE,   /* provider "p" { source "name" { } } */
	SHAPE_LAYER_ADAPTIVE, /* an active adaptive action (shape_effective() only) */
	SHAPE_LAYER_OVERRIDE, /* an operator's override (shape_effective() only) */
};
/* "builtin", "defaults", "provider", "domain", "source", "adaptive", "override". */
const char *shape_layer_name(enum shape_layer);

struct shape_origin {
	enum shape_layer layer;
	const char *name; /* the section's title or the rule's name; NULL for builtin, defaults */
	const char *file; /* NULL: built in (or the base's own, see shape_rules_load) */
	unsigned line;    /* 0: none */
};

struct shape_params {
	struct shape_settings s;
	struct shape_origin origin[SHAPE_FIELD_COUNT];
	const char *provider;          /* the rules' provider name, NULL if none */
	char dest[SHAPE_DEST_MAX + 1]; /* the destination counters are kept for (lower case) */
	bool limited;                  /* shape_effective(): a limit action applies */
	bool backoff;                  /* shape_effective(): backoff mode */
};

/* ---- Rules ---- */

struct shape_rules;

/* Reads, checks and compiles a rules file (include()s expanded). base: the values below
 * every layer (NULL: shape_settings_builtin()); base_origin, if not NULL, says where each
 * came from (its file, line and name are copied, e.g. "drover.conf", 0, "delivery"; the layer
 * is always builtin), else they are plain "builtin". Returns the
 * rules holding one reference, or NULL with every problem found in err, one per line, as
 * "file:line: setting: problem" (a syntax error or an unknown setting ends the parse and is
 * the last line), e.g.
 *	shaping.conf:12: provider "gmail".message_rate: "300/mn": expected N/s, N/min, ...
 *	shaping.conf:40: adaptive "ts01".provider: "gmial": no such provider section
 * A file that cannot be read: "file: cannot read: reason". */
struct shape_rules *shape_rules_load(const char *path, const struct shape_settings *base,
                                     const struct shape_origin *base_origin, char *err,
                                     size_t errlen);
/* The same from memory; name stands for the file in errors and origins. include() is an
 * error here (there is no directory to read from). */
struct shape_rules *shape_rules_parse(const char *name, const char *text, size_t len,
                                      const struct shape_settings *base,
                                      const struct shape_origin *base_origin, char *err,
                                      size_t errlen);
/* The rules built into the binary: etc/shaping.conf as it was at build time. */
extern const char shape_builtin_rules[];
extern const size_t shape_builtin_rules_len;
struct shape_rules *shape_rules_builtin(const struct shape_settings *base,
                                        const struct shape_origin *base_origin, char *err,
                                        size_t errlen);
struct shape_rules *shape_rules_ref(struct shape_rules *);
/* Drops one reference; the last frees the rules. NULL is a no-op. */
void shape_rules_unref(struct shape_rules *);

size_t shape_provider_count(const struct shape_rules *);
/* Name of provider i (file order), NULL if out of range. Valid while the rules are. */
const char *shape_provider_name(const struct shape_rules *, size_t i);
size_t shape_adaptive_count(const struct shape_rules *);
/* Name and line of adaptive rule i; NULL if out of range. */
const char *shape_adaptive_name(const struct shape_rules *, size_t i, unsigned *line);

/* The provider a recipient domain belongs to: a provider that names the domain in its
 * `domains` first; else the first MX host (in the order given: pass them by preference)
 * that equals an `mx_suffix` of a provider or ends with "." and one (the longest suffix
 * wins). Case-insensitive, a trailing dot ignored. NULL if none; the name is the rules'. */
const char *shape_provider_of(const struct shape_rules *, const char *domain,
                              const char *const *mx_hosts, size_t n);

/* The settings for mail from source (NULL or "": no source) to domain, whose provider is
 * provider (from shape_provider_of(); NULL or a name the rules do not know: none): each
 * field from the most specific layer that sets it, with its origin. O(fields): the layers
 * are found by hash. File names and titles in out are the rules' (valid while they are). */
void shape_params(const struct shape_rules *, const char *source, const char *provider,
                  const char *domain, struct shape_params *out);

/* ---- State ---- */

struct shape_state;

/* A state using rules (it takes its own reference). keys_max bounds each keyed table
 * (0: SHAPE_DEF_KEYS_MAX; trigger counts at most SHAPE_TRIGGER_KEYS_MAX). When the
 * throttle or trigger table is full of keys still in use,
 * a new key evicts the one closest to being idle among a few: that key's limit may then be
 * exceeded by up to its burst (counted in stats.evictions). Warm-up counters are never
 * evicted: when that table is full, sources in warm-up are held (fail closed).
 * actions_max (0: SHAPE_DEF_ACTIONS_MAX) bounds active actions: past it a trigger starts
 * nothing (counted in stats.actions_dropped). */
struct shape_state *shape_state_new(struct shape_rules *, size_t keys_max, size_t actions_max);
void shape_state_free(struct shape_state *);
/* After a reload: uses the new rules from now on (takes a reference, drops the old one).
 * Throttles, connection counts, warm-up counts and active actions are kept (an active action
 * runs to its end even if its rule is gone); trigger counts start again (they belong to the
 * rules that counted them). */
void shape_state_set_rules(struct shape_state *, struct shape_rules *);
/* The rules in use (no new reference). */
struct shape_rules *shape_state_rules(const struct shape_state *);

struct shape_stats {
	size_t throttle_keys, trigger_keys, warmup_keys, connection_keys;
	size_t keys_max;
	uint64_t evictions; /* throttle or trigger keys dropped while in use */
	size_t actions;     /* active now (ended ones not yet expired included) */
	uint64_t actions_dropped;
	unsigned connections; /* slots held, all destinations */
};
void shape_state_stats(const struct shape_state *, struct shape_stats *);

/* ---- Throttles (GCRA) ---- */

/* "kind:source:dest" ("msg:ip-1:gmail"; source NULL: "kind::dest"), NUL-terminated, cut to
 * size; returns the length it would have (as snprintf). Source and destination names contain
 * no ':' (section titles and domain names), so keys never collide. The throttles below use
 * these keys, so shape_throttle_peek() on them asks the same question without taking:
 *	"msg:SOURCE:DEST"   message_rate        (shape_message_take)
 *	"pmsg::DEST"        provider_message_rate (shape_message_take)
 *	"conn:SOURCE:DEST"  connection_rate     (shape_conn_acquire)
 * (Connection slots are counted in a table of their own: no throttle key is a slot.) */
size_t shape_key(char *buf, size_t size, const char *kind, const char *source, const char *dest);

/* One event under rate for key at now_us: true if it conforms (and is counted), false if
 * not, with *next_ok_us the first time one would. An unlimited rate always conforms and
 * keeps no key. The rate may change between calls (a reload, a limit action): the key's
 * state carries over. */
bool shape_throttle_take(struct shape_state *, const char *key, const struct shape_rate *,
                         uint64_t now_us, uint64_t *next_ok_us);
/* The same question, counting nothing. */
bool shape_throttle_peek(struct shape_state *, const char *key, const struct shape_rate *,
                         uint64_t now_us, uint64_t *next_ok_us);

/* One message from source to p->dest: message_rate for (source, dest) and
 * provider_message_rate for dest, both taken or neither. false: *next_ok_us is when both
 * would conform (as far as known now). Pass shape_effective()'s params. */
bool shape_message_take(struct shape_state *, const char *source, const struct shape_params *p,
                        uint64_t now_us, uint64_t *next_ok_us);

enum shape_verdict {
	SHAPE_GO,        /* granted (a connection: a slot is held, release it) */
	SHAPE_SUSPENDED, /* an adaptive suspension: *when_us is its end */
	SHAPE_NO_SLOT,   /* max_connections or provider_max_connections reached: wait for a
	                    release (*when_us is 0) */
	SHAPE_RATE,      /* connection_rate: *when_us is when the next may open */
};
/* "go", "suspended", "no-slot", "rate". */
const char *shape_verdict_name(enum shape_verdict);

/* May source open one more connection to p->dest now? Checks, in this order, suspensions
 * (source x dest, then dest), connection slots (max_connections per (source, dest),
 * provider_max_connections per dest) and connection_rate; on SHAPE_GO takes a slot and a
 * connection token. Pass shape_effective()'s params, so that limit and backoff actions
 * apply (backoff: one connection). */
enum shape_verdict shape_conn_acquire(struct shape_state *, const char *source,
                                      const struct shape_params *p, uint64_t now_us,
                                      uint64_t *when_us);
/* Gives back a slot taken by shape_conn_acquire (a release without a slot is ignored). */
void shape_conn_release(struct shape_state *, const char *source, const char *dest);
/* Slots held from source to dest (source NULL: from every source). */
unsigned shape_conn_count(const struct shape_state *, const char *source, const char *dest);

/* ---- Adaptive rules ---- */

enum shape_action {
	SHAPE_ACT_SUSPEND_SOURCE,   /* nothing from this source to this destination */
	SHAPE_ACT_SUSPEND_PROVIDER, /* nothing to this destination, from any source */
	SHAPE_ACT_LIMIT,            /* lower message_rate / max_connections for the source */
	SHAPE_ACT_BACKOFF,          /* one connection, backoff_retry, until a delivery succeeds */
	SHAPE_ACT_BOUNCE,           /* bounce what is queued for the source and destination */
};
/* "suspend-source", "suspend-provider", "limit", "backoff", "bounce". */
const char *shape_action_name(enum shape_action);

enum shape_event_kind {
	SHAPE_EV_START,  /* an action begins */
	SHAPE_EV_EXTEND, /* an active action triggered again: it ends later (or limits more) */
	SHAPE_EV_END,    /* an action ended */
};
/* "start", "extend", "end". */
const char *shape_event_kind_name(enum shape_event_kind);

enum shape_end_reason {
	SHAPE_END_NONE,      /* (not an end) */
	SHAPE_END_EXPIRED,   /* its duration passed */
	SHAPE_END_SUCCESS,   /* backoff: a delivery succeeded */
	SHAPE_END_CANCELLED, /* shape_cancel(): an operator resumed */
};
/* "", "expired", "success", "cancelled". */
const char *shape_end_reason_name(enum shape_end_reason);

/* An action's start, extension or end, or an active action (shape_active()). Self-contained
 * (no pointers): it may be kept after the state and the rules are gone. */
struct shape_event {
	enum shape_event_kind kind;
	enum shape_action action;
	enum shape_end_reason reason;
	char rule[SHAPE_NAME_MAX + 1]; /* the rule that started (or last extended) it */
	char file[256];                /* its file (cut to fit) and line */
	unsigned line;
	char source[SHAPE_NAME_MAX + 1]; /* "" for suspend-provider (every source) */
	char dest[SHAPE_DEST_MAX + 1];
	char provider[SHAPE_NAME_MAX + 1]; /* the destination's provider, "" if none */
	uint64_t started_us, ends_us;      /* ends_us: when it ends (or ended) */
	/* limit: the lowered values (count 0 / 0: not lowered); backoff: the retry schedule. */
	struct shape_rate message_rate;
	unsigned max_connections;
	uint64_t retry_s[SHAPE_RETRY_MAX];
	unsigned nretry;
	/* What set it off (start, extend): the reply, and the matches counted (the trigger's N). */
	int code;
	char status[16];
	char text[256]; /* cut to fit */
	unsigned matches;
};

/* The event log record type for these events. */
#define SHAPE_EVENT_TYPE "AdaptiveAction"
/* The record's fields (docs/shaping.md): event, action, rule, file, line, source, dest,
 * provider, started, ends, reason (end), code, status, text, matches (start, extend),
 * message_rate, max_connections (limit), retry (backoff). A new reference. */
json_t *shape_event_json(const struct shape_event *);

/* A reply from dest's servers to source (code 200..599, or 0 for a local failure; status as
 * sent, NULL or "" if none; text the reply's lines joined by "\n", NULL for ""): every
 * adaptive rule in scope (no scope, the provider's, the domain's) that matches counts it,
 * in file order (all of them, not the first only: a broad rule counting toward a limit and
 * a specific one that suspends both see the reply). A rule whose trigger fires starts its
 * action, or extends it if it is active. Returns how many events there are (start or
 * extend, at most one per rule); the first max of them go to out. O(rules in scope). */
size_t shape_observe(struct shape_state *, const char *source, const char *provider,
                     const char *domain, int code, const char *status, const char *text,
                     uint64_t now_us, struct shape_event *out, size_t max);
/* A delivery from source to dest succeeded: ends backoff mode there (at most one END event,
 * reason success, into out if max >= 1). Returns the number of events (0 or 1). O(1). */
size_t shape_observe_success(struct shape_state *, const char *source, const char *dest,
                             uint64_t now_us, struct shape_event *out, size_t max);
/* Actions whose end has come (ends_us <= now_us), removed, at most max of them into out
 * (END events, reason expired); call again while it returns max. Also drops a few idle keys.
 * Queries never depend on this being called: an action past its end is inactive already;
 * this frees it and gives the engine its end event. O(k log n) for k actions ended. */
size_t shape_expire(struct shape_state *, uint64_t now_us, struct shape_event *out, size_t max);
/* An operator's resume: ends the actions on (source, dest) now (source NULL: those of every
 * source and the provider-wide ones; action -1: all kinds). END events, reason cancelled.
 * O(active actions). */
size_t shape_cancel(struct shape_state *, const char *source, const char *dest, int action,
                    uint64_t now_us, struct shape_event *out, size_t max);

/* Is source suspended towards dest (its own suspension or the destination's)? If so,
 * *until_us (if not NULL) is when the later one ends. O(1). */
bool shape_suspended(const struct shape_state *, const char *source, const char *dest,
                     uint64_t now_us, uint64_t *until_us);
/* Should what is queued from source to dest be bounced now (a bounce action)? O(1). */
bool shape_should_bounce(const struct shape_state *, const char *source, const char *dest,
                         uint64_t now_us);
/* Applies the active limit and backoff actions of (source, p->dest) to p: limit lowers
 * message_rate and max_connections (never raises them); backoff sets max_connections and
 * initial_connections to 1, retry to backoff_retry and message_rate to at most
 * backoff_message_rate. Changed fields get origin layer adaptive (the rule's name and
 * line); p->limited, p->backoff say which applied. O(1). */
void shape_apply_actions(const struct shape_state *, const char *source, struct shape_params *p,
                         uint64_t now_us);
/* shape_params() with the state's rules, then shape_apply_overrides(), then
 * shape_apply_actions() (an adaptive limit still lowers what an override raised). */
void shape_effective(const struct shape_state *, const char *source, const char *provider,
                     const char *domain, uint64_t now_us, struct shape_params *out);
/* When the next action ends: the earliest end time of the actions not yet collected by
 * shape_expire() (possibly <= now_us: collect them now), 0 if there are none. For the
 * engine's expiry timer. O(1). */
uint64_t shape_next_expiry(const struct shape_state *);
/* Every action active at now_us (kind start), ordered by end time, the first max into out;
 * returns how many there are. For `drover queue summary` and the control API. O(n log n). */
size_t shape_active(const struct shape_state *, uint64_t now_us, struct shape_event *out,
                    size_t max);

/* ---- IP warm-up ---- */

/* Today's cap (the UTC day of now_us) for source towards dest, if a warmup section names the
 * source and covers dest: true with *cap (UINT64_MAX: unlimited, the schedule is over and
 * after is "unlimited"). false: the source is not in warm-up there. Days before the start
 * day have day 1's cap. O(1). */
bool shape_warmup_cap(const struct shape_rules *, const char *source, const char *dest,
                      uint64_t now_us, uint64_t *cap);
/* May source send one more message to dest today? false: the cap is reached (the engine
 * uses another source of the pool, or waits); *until_us (if not NULL) is the next UTC
 * midnight, when the count starts again. Always true for a source not in warm-up. */
bool shape_warmup_allow(struct shape_state *, const char *source, const char *dest, uint64_t now_us,
                        uint64_t *until_us);
/* Counts n messages sent from source to dest at now_us (call it when they are handed to
 * the receiver); returns today's count after them. Sources not in warm-up count nothing
 * and return 0. Counts live in memory: a restart starts the day again (the engine may call
 * this at start-up with what its log says was sent today). */
uint64_t shape_warmup_count(struct shape_state *, const char *source, const char *dest,
                            uint64_t now_us, uint64_t n);

/* ---- Operator overrides ----
 *
 * Temporary settings on top of the rules, set through the admin API: kept in the state (so a
 * reload of the rules keeps them; a restart forgets them), applied after every layer of the
 * rules and before adaptive actions. One names a provider or a domain (the recipient domain,
 * as written in a domain section), optionally one source; the more specific wins where two
 * set the same field (provider, then provider and source, then domain, then domain and
 * source; the newer on a tie). Applying them is O(overrides), a handful in practice. */

/* Overrides at once: more is a runaway script, not an operator. */
#define SHAPE_OVERRIDES_MAX 256

struct shape_override {
	unsigned id;                       /* given by shape_override_add, from 1 */
	char provider[SHAPE_NAME_MAX + 1]; /* "": by domain */
	char domain[SHAPE_DEST_MAX + 1];   /* lower case; "": by provider */
	char source[SHAPE_NAME_MAX + 1];   /* "": every source */
	uint32_t set;                      /* bit per enum shape_field */
	struct shape_settings v;           /* the values of the fields set */
	uint64_t created_us, ends_us;      /* ends_us 0: until removed */
};

/* Sets a field of o by its rules-file name and a value as the rules file writes it
 * ("max_connections", "2"; "message_rate", "100/min"; "retry", "5m,10m"). 0, or -1 with why. */
int shape_override_set(struct shape_override *, const char *name, const char *value,
                       const char **why);
/* Puts o in force (its id is given); -1 when SHAPE_OVERRIDES_MAX are. */
int shape_override_add(struct shape_state *, struct shape_override *, uint64_t now_us);
/* Takes override id out of force, a copy into out (may be NULL); false if there is none. */
bool shape_override_remove(struct shape_state *, unsigned id, struct shape_override *out);
/* Those in force at now_us, oldest first, the first max into out; how many there are. */
size_t shape_overrides(const struct shape_state *, uint64_t now_us, struct shape_override *out,
                       size_t max);
/* Those whose end has come, removed, at most max into out; call again while it returns max. */
size_t shape_override_expire(struct shape_state *, uint64_t now_us, struct shape_override *out,
                             size_t max);
/* The earliest end of an override (possibly past: collect it), 0 if none ends. */
uint64_t shape_override_next_expiry(const struct shape_state *);
/* Would o apply to mail from source to domain of provider? */
bool shape_override_matches(const struct shape_override *, const char *source, const char *provider,
                            const char *domain);
/* Applies the overrides in force to p (from shape_params for source, provider and domain):
 * changed fields get origin layer override. */
void shape_apply_overrides(const struct shape_state *, const char *source, const char *domain,
                           struct shape_params *p, uint64_t now_us);
/* {"id", "provider" or "domain", "source" (null: every), "set": {field: value as the rules
 * file writes it}, "created", "ends" (null: until removed)}. A new reference. */
json_t *shape_override_json(const struct shape_override *);
/* The event log record type for overrides set, removed and expired. */
#define SHAPE_OVERRIDE_EVENT_TYPE "ShapingOverride"

#endif
