/* classify/classify.h - the bounce classifier: what a remote reply (or a local delivery error)
 * means, as one of a fixed set of categories, and what to do about it.
 *
 * A rules file (docs/bounces.md; defaults in etc/bounce-rules.conf) is loaded into an
 * immutable table: providers (groups of MX host suffixes and recipient domains), rules that map
 * (provider, reply code, enhanced status, text regex) to a category, first match wins, and
 * decisions that map (provider, category, code class) to an action. Every regex is compiled
 * once, with PCRE2's JIT. Answers are cached per table.
 *
 * Thread-safety:
 * - A table is immutable once loaded and may be used from any thread at once; its cache is
 *   internally locked (striped mutexes). Its reference count is atomic: a reload loads a new
 *   table and publishes it (classify_slot_set()); whoever still holds the old one keeps it
 *   valid until it calls classify_unref().
 * - Loading does blocking file I/O: call it at start-up or from the reload path, never on an
 *   event loop. Classifying never blocks on I/O and allocates only on a cache miss.
 */
#ifndef DROVER_CLASSIFY_H
#define DROVER_CLASSIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a failure means. CLASSIFY_OTHER is 0 so that a zeroed result never claims a category
 * that would suppress an address; the rest follow the order of docs/bounces.md. */
enum classify_category {
	CLASSIFY_OTHER = 0,
	CLASSIFY_BAD_MAILBOX,         /* the address does not exist */
	CLASSIFY_BAD_DOMAIN,          /* the domain does not exist or takes no mail */
	CLASSIFY_INACTIVE_MAILBOX,    /* exists, but disabled, suspended, expired */
	CLASSIFY_QUOTA_ISSUES,        /* mailbox full, over quota */
	CLASSIFY_SPAM_RELATED,        /* judged spam: content, IP or domain reputation, DNSBL */
	CLASSIFY_POLICY_RELATED,      /* refused by a local policy (rDNS, greylisting, TLS ...) */
	CLASSIFY_CONTENT_RELATED,     /* the message itself: size, format, attachments */
	CLASSIFY_VIRUS_RELATED,       /* malware found */
	CLASSIFY_ROUTING_ERRORS,      /* loops, hop counts, unrouteable addresses */
	CLASSIFY_RELAYING_ISSUES,     /* the server will not relay for us */
	CLASSIFY_NO_ANSWER_FROM_HOST, /* could not connect */
	CLASSIFY_BAD_CONNECTION,      /* connection lost, timed out, TLS failed */
	CLASSIFY_PROTOCOL_ERRORS,     /* SMTP syntax or sequence */
	CLASSIFY_DNS_FAILURE,         /* a DNS lookup failed (ours or the receiver's) */
	CLASSIFY_AUTH_FAILED,         /* SPF, DKIM or DMARC did not pass */
	CLASSIFY_RATE_LIMITED,        /* too much, too fast: slow down */
	CLASSIFY_MESSAGE_EXPIRED,     /* the queue lifetime passed */
	CLASSIFY_CATEGORY_COUNT
};

/* "bad-mailbox", ..., "other"; "?" out of range. */
const char *classify_category_name(enum classify_category);
/* The category of a name as written in rules files (exact, lower case); -1 if unknown. */
int classify_category_parse(const char *name, enum classify_category *out);

/* What becomes of the recipient. */
enum classify_action {
	CLASSIFY_TRANSIENT = 0, /* retry later */
	CLASSIFY_PERMANENT,     /* bounce now (DSN) */
	CLASSIFY_SUPPRESS,      /* bounce now and add the address to the suppression list */
};

/* "transient", "permanent", "suppress"; "?" out of range. */
const char *classify_action_name(enum classify_action);

/* ---- Limits (each bounds what a rules file or a reply can cost) ---- */

#define CLASSIFY_LINE_MAX      8192  /* octets of a rules-file line, without its newline */
#define CLASSIFY_RULES_MAX     20000 /* rules (and, separately, decisions) in one file */
#define CLASSIFY_PROVIDERS_MAX 1000  /* providers in one file */
#define CLASSIFY_NAMES_MAX     50000 /* MX suffixes and domains, all providers together */
#define CLASSIFY_NAME_MAX      63    /* octets of a provider name */
#define CLASSIFY_LIST_MAX      16    /* codes or statuses in one rule's comma list */
/* Octets of a reply's text considered: the SMTP reply parser keeps at most this much
 * (SMTP_REPLY_TEXT_MAX), and a longer text from elsewhere is cut, not refused. */
#define CLASSIFY_TEXT_MAX 4096
/* Normalised texts longer than this are classified but not cached, which bounds the cache's
 * memory at about entries x this. Real replies normalise to well under 1 KB. */
#define CLASSIFY_CACHE_TEXT_MAX 1024
/* Answers kept by default: a few hundred distinct replies a day make up nearly all bounces, and
 * a miss costs a few microseconds, so this is generous. */
#define CLASSIFY_DEF_CACHE_ENTRIES 16384
#define CLASSIFY_CACHE_ENTRIES_MAX (1u << 24) /* more is a configuration mistake */
/* PCRE2 match limit per regex and reply: a pathological regex in a rules file gives up (no
 * match) instead of backtracking for seconds. Real rules need a few hundred steps. */
#define CLASSIFY_MATCH_LIMIT 200000

/* ---- Tables ---- */

struct classify_table; /* immutable (its cache aside), reference-counted */

/* Reads and checks the whole rules file. Returns a table holding one reference, or NULL with
 * the first problem in err as "file:line: what", e.g.
 * "bounce-rules.conf:12: bad regex at offset 7: missing closing parenthesis",
 * "bounce-rules.conf:9: unknown category \"bad-mailbx\"",
 * "bounce-rules.conf:30: unknown provider \"gmial\" (declare it with a provider line first)";
 * a file that cannot be read: "file: reason". cache_entries: answers to cache (rounded up to a
 * power of two, at least 4; at most CLASSIFY_CACHE_ENTRIES_MAX), 0 for none,
 * CLASSIFY_DEF_CACHE_ENTRIES normally. */
struct classify_table *classify_load(const char *path, size_t cache_entries, char *err,
                                     size_t errlen);
/* The same from memory; name stands for the file in errors ("builtin", a path). */
struct classify_table *classify_parse(const char *name, const char *text, size_t len,
                                      size_t cache_entries, char *err, size_t errlen);
/* The rules built into the binary: etc/bounce-rules.conf as it was at build time. */
extern const char classify_builtin_rules[];
extern const size_t classify_builtin_rules_len;
struct classify_table *classify_builtin(size_t cache_entries, char *err, size_t errlen);
struct classify_table *classify_ref(struct classify_table *);
/* Drops one reference; the last one frees the table. NULL is a no-op. */
void classify_unref(struct classify_table *);

size_t classify_rule_count(const struct classify_table *);
/* Line of rule i in its file (for logs and tests); 0 if out of range. */
unsigned classify_rule_line(const struct classify_table *, size_t i);
size_t classify_decision_count(const struct classify_table *);
size_t classify_provider_count(const struct classify_table *);
/* Name of provider i, NULL if out of range. Valid while the table is. */
const char *classify_provider_name(const struct classify_table *, size_t i);

/* ---- Classifying ---- */

struct classify_result {
	enum classify_category category;
	int rule;      /* index of the rule that matched; -1: none did (category other) */
	unsigned line; /* that rule's line in the rules file, 0 if none */
	bool cached;   /* the answer came from the cache */
};

/* Classifies one reply. provider: a provider name (from classify_provider_of() or the
 * configuration; unknown names and NULL mean "no provider": only unscoped rules apply).
 * code: the reply code, 200..599 (anything else, e.g. 0 for a local failure without one,
 * matches only rules without a code condition). status: the RFC 3463 enhanced status as the
 * server sent it ("5.1.1"), NULL or "" if none; pass the one it sent, not a class default, so
 * that rules on "5.0.0" do not match replies that had none. text: the reply text (lines joined
 * with "\n", as struct smtp_reply keeps it), or the local error text; NULL is "".
 *
 * Regexes see the text normalised (see docs/bounces.md): whitespace runs become one space,
 * addresses "x@x", and ID-like tokens (long numbers, IP addresses, dates, long mixed tokens
 * with 4+ digits) "#". The cache is keyed by (provider, code, status, normalised text), so
 * the same reply about another recipient or with another queue id is a hit, and a hit is
 * always the answer the rules would give. O(1) on a hit; O(rules) on a miss. */
void classify_reply(const struct classify_table *, const char *provider, int code,
                    const char *status, const char *text, struct classify_result *out);

/* classify_reply() on a reply the SMTP client parsed: its code, the status it sent (never a
 * class default) and its text. */
struct smtp_reply;
void classify_smtp_reply(const struct classify_table *, const char *provider,
                         const struct smtp_reply *, struct classify_result *out);

/* The provider an MX host name or a recipient domain belongs to: the provider with the longest
 * "mx" suffix that equals the name or ends it at a label boundary, or whose "domain" equals
 * it. Case-insensitive, a trailing dot ignored. NULL if none. The name is the table's (valid
 * while it is); pass it back to classify_reply() and classify_decide(). */
const char *classify_provider_of(const struct classify_table *, const char *host_or_domain);

/* What to do: the first decision line matching (provider, category, class of code) gives the
 * action; without one, a 5xx is permanent (and suppresses for bad-mailbox, bad-domain and
 * inactive-mailbox) and anything else transient. *line (if not NULL) gets the decision's line,
 * 0 for the defaults. */
enum classify_action classify_decide(const struct classify_table *, const char *provider,
                                     enum classify_category, int code, unsigned *line);

/* Cache counters since the table was loaded. */
struct classify_stats {
	uint64_t lookups;    /* classify_reply() calls */
	uint64_t hits;       /* answered from the cache */
	uint64_t misses;     /* matched against the rules, then cached */
	uint64_t uncachable; /* matched against the rules, not cached (no cache, text too long) */
	uint64_t evictions;  /* answers dropped to make room */
	size_t entries;      /* answers cached now */
	size_t capacity;     /* answers the cache holds at most */
};
void classify_stats(const struct classify_table *, struct classify_stats *);

/* ---- Publishing a table for reloads ---- */

/* The current table, shared by the threads that classify. A reader takes its own reference
 * (one uncontended mutex, no copy), so a reload never frees a table under a reader. */
struct classify_slot;

/* Takes over the caller's reference to initial (which may be NULL). */
struct classify_slot *classify_slot_new(struct classify_table *initial);
/* A new reference to the current table (the caller unrefs it), NULL if none was set. */
struct classify_table *classify_slot_get(struct classify_slot *);
/* Publishes t, taking over the caller's reference, and drops the slot's reference to the old
 * table: it is freed when its last reader lets go. */
void classify_slot_set(struct classify_slot *, struct classify_table *t);
/* Drops the current table's reference and frees the slot. NULL is a no-op. */
void classify_slot_free(struct classify_slot *);

#endif
