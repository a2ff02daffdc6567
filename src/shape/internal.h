/* shape/internal.h - private to shape/: the compiled rules, the hash tables, the state, and
 * the loader's pieces (source text, schema, value parsers).
 */
#ifndef DROVER_SHAPE_INTERNAL_H
#define DROVER_SHAPE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/core.h"
#include "shape/shape.h"

#define NSEC_PER_USEC 1000ULL
#define DAY_S         86400ULL

/* ---- Hashing (hash.c) ---- */

/* SipHash-2-4 under a per-process random key: names come from recipient domains, which
 * whoever submits mail chooses, so table positions must not be predictable. */
uint64_t sh_hash(const void *data, size_t len);

/* Open-addressing map from a string to an int, built at load time and read-only after. Keys
 * are not copied (they must outlive the map); lookups are case-insensitive on ASCII (keys are
 * stored in lower case). */
struct strmap_slot {
	const char *key; /* NULL: empty */
	uint64_t hash;
	uint32_t len;
	int value;
};

struct strmap {
	struct strmap_slot *slots;
	size_t mask; /* slots - 1 */
	size_t count;
};

void sh_strmap_init(struct strmap *);
void sh_strmap_free(struct strmap *);
/* Adds key (lower case) -> value; returns the value already there (adding nothing), or -1. */
int sh_strmap_put(struct strmap *, const char *key, size_t len, int value);
/* The value of key[0..len) compared without case, -1 if absent. */
int sh_strmap_get(const struct strmap *, const char *key, size_t len);

/* A keyed table of the state (table.c): string keys (copied), a small value, an expiry.
 * Linear probing with backward-shift deletion; grows by doubling up to max entries. */
struct tslot {
	char *key; /* NULL: empty */
	uint32_t len;
	uint64_t hash;
	uint64_t expires_us; /* droppable from then on; 0: never (removed explicitly) */
	union {
		uint64_t tat_ns; /* throttle: GCRA theoretical arrival time */
		struct {
			int64_t day; /* warm-up: UTC day number */
			uint64_t count;
		} warm;
		unsigned conns; /* connection slots held */
		uint64_t num;   /* the loader's: a text line */
		void *ptr;      /* trigger window, action */
	} v;
};

struct ttab {
	struct tslot *slots;
	size_t mask, count, max;
	size_t cursor; /* where the idle sweep goes on */
	bool evict;    /* full: evict the entry closest to expiry among a few; else refuse */
	bool free_ptr; /* v.ptr is free()d with the entry */
	uint64_t evictions;
};

void sh_ttab_init(struct ttab *, size_t max, bool evict, bool free_ptr);
void sh_ttab_free(struct ttab *);
/* Every entry dropped. */
void sh_ttab_clear(struct ttab *);
struct tslot *sh_ttab_find(const struct ttab *, const char *key, size_t len);
/* The entry for key, created (zeroed, expires 0) if absent: NULL if the table is full and may
 * not evict. The pointer is valid until the next insert or remove. *created (if not NULL)
 * says whether it is new. */
struct tslot *sh_ttab_insert(struct ttab *, const char *key, size_t len, uint64_t now_us,
                             bool *created);
void sh_ttab_remove(struct ttab *, struct tslot *);
/* Looks at up to n entries (4n slots) from the cursor, dropping those expired at now_us. */
void sh_ttab_sweep(struct ttab *, uint64_t now_us, size_t n);

/* ---- Values (values.c): parsers whose *why is a phrase for the message ---- */

int sh_parse_count(const char *text, uint64_t *out, const char **why);
/* "300", "300s", "5m", "2h", "1d" -> seconds (as drover.conf). */
int sh_parse_duration(const char *text, uint64_t *out, const char **why);
/* "once" -> 1 in 0; "N in DURATION" ("3 in 5m") -> N (2..SHAPE_TRIGGER_MAX) in seconds. */
int sh_parse_trigger(const char *text, unsigned *count, uint64_t *period_s, const char **why);
/* "YYYY-MM-DD" -> days since 1970-01-01. */
int sh_parse_date(const char *text, int64_t *day, const char **why);
/* A code pattern: "421", "42x", "4xx" (each digit, or -1 for x). */
struct code_pat {
	int8_t d[3];
};
int sh_parse_code_pat(const char *text, struct code_pat *out, const char **why);
/* A status pattern: "4.7.0", "4.7.*", "4.*", "*.7.1" (each part, or -1 for *). */
struct status_pat {
	int16_t p[3];
};
int sh_parse_status_pat(const char *text, struct status_pat *out, const char **why);
/* "suspend-source", ... -> enum shape_action; -1 if unknown. */
int sh_action_value(const char *text);
int sh_tls_value(const char *text);
int sh_on_421_value(const char *text);
const char *sh_tls_name(enum shape_tls);
const char *sh_on_421_name(enum shape_on_421);

/* A domain or host name: letters, digits, '-', '_' in dot-separated labels of 1 to 63
 * octets, 253 in all; one trailing dot allowed. */
bool sh_host_valid(const char *name);
/* Lower-cases a domain or host name into buf (size >= SHAPE_DEST_MAX + 2), dropping one
 * trailing dot; false if it is empty or longer than SHAPE_DEST_MAX. */
bool sh_name_lower(const char *name, char *buf, size_t size, size_t *len);

/* ---- Fields (fields.c) ---- */

enum field_kind { FK_COUNT, FK_RATE, FK_DURATION, FK_RETRY, FK_TLS, FK_ON_421 };

struct field_info {
	const char *name;
	enum field_kind kind;
	long min, max;       /* counts and durations */
	bool zero_unlimited; /* counts: 0 allowed, meaning no limit */
	size_t offset;       /* in struct shape_settings */
	const char *bounds;  /* counts: the message for a value out of bounds */
};

extern const struct field_info sh_fields[SHAPE_FIELD_COUNT];
/* The field of a setting name, -1 if none. */
int sh_field_index(const char *name);
/* Parses value into the field of s. 0, or -1 with why. For FK_RETRY, call once per element
 * with append = true after the first. */
int sh_field_parse(enum shape_field f, const char *value, struct shape_settings *s, bool append,
                   const char **why);
/* Copies field f from src to dst. */
void sh_field_copy(enum shape_field f, struct shape_settings *dst,
                   const struct shape_settings *src);

/* ---- Compiled rules ---- */

/* One section's settings: the fields it sets, their values, where each was written. */
struct layer {
	uint32_t set; /* bit per enum shape_field */
	struct shape_settings v;
	unsigned line[SHAPE_FIELD_COUNT];
	const char *file[SHAPE_FIELD_COUNT];
};

/* Applies the fields a layer sets over s/origin. */
void sh_layer_apply(const struct layer *, enum shape_layer, const char *name,
                    struct shape_settings *s, struct shape_origin *origin);

struct provider {
	char *name;
	const char *file;
	unsigned line;
	struct layer layer;
	/* builtin -> defaults -> this provider, precomputed */
	struct shape_settings merged;
	struct shape_origin origin[SHAPE_FIELD_COUNT];
	/* source "x" { } sections */
	char **source_names;
	struct layer *sources;
	size_t nsources;
	struct strmap source_index;
	/* adaptive rules in scope: unscoped and this provider's, in file order */
	uint32_t *rules;
	size_t nrules;
};

struct domain_sec {
	char *name; /* lower case */
	const char *file;
	unsigned line;
	struct layer layer;
};

struct adaptive {
	char *name;
	const char *file;
	unsigned line;
	int provider; /* index, -1: any */
	char *domain; /* lower case; NULL: any */
	uint8_t ncodes, nstatus;
	struct code_pat codes[SHAPE_LIST_MAX];
	struct status_pat status[SHAPE_LIST_MAX];
	pcre2_code *re;     /* NULL: no text condition */
	unsigned trigger_n; /* 1: once */
	uint64_t trigger_period_us;
	enum shape_action action;
	uint64_t duration_us;
	struct shape_rate message_rate;    /* limit; count 0: not lowered */
	unsigned max_connections;          /* limit; 0: not lowered */
	uint64_t retry_s[SHAPE_RETRY_MAX]; /* backoff; nretry 0: backoff_retry of the layers */
	unsigned nretry;
};

struct warmup {
	char *name;
	const char *file;
	unsigned line;
	int64_t start_day;
	uint64_t *schedule; /* daily caps, day 1 first */
	size_t nschedule;
	bool doubling;  /* "N doubling": schedule[0], doubled each day up to after */
	uint64_t after; /* UINT64_MAX: unlimited */
	int *providers; /* indexes of the destinations it covers; nproviders 0: all */
	size_t nproviders;
};

struct shape_rules {
	atomic_uint refs;
	char **files; /* every file read; origins point here */
	size_t nfiles;
	struct shape_settings base; /* builtin (or the caller's base) -> defaults */
	struct shape_origin base_origin[SHAPE_FIELD_COUNT];
	char *base_files[SHAPE_FIELD_COUNT]; /* copies of the caller's base_origin files */
	char *base_names[SHAPE_FIELD_COUNT]; /* and names */
	struct provider *providers;
	size_t nproviders;
	struct strmap provider_index;
	struct strmap exact;    /* providers' domains -> provider index */
	struct strmap suffixes; /* providers' MX suffixes -> provider index */
	char **name_keys;       /* their storage */
	size_t nname_keys;
	struct domain_sec *domains;
	size_t ndomains;
	struct strmap domain_index;
	struct adaptive *rules;
	size_t nrules;
	uint32_t *unscoped; /* rules with no provider scope (domain-scoped ones included) */
	size_t nunscoped;
	struct warmup *warmups;
	size_t nwarmups;
	struct strmap warmup_by_source; /* source -> warmup index */
	char **warmup_sources;          /* their storage */
	size_t nwarmup_sources;
	pcre2_match_context *mctx;
};

/* The rules' provider index of a name, -1 if none (or NULL). */
int sh_rules_provider(const struct shape_rules *, const char *name);
/* Fills dest (size SHAPE_DEST_MAX + 1) with the destination of domain under provider p
 * (index or -1): the domain if it has a domain section, else the provider's name, else the
 * domain; returns the domain section's index or -1. */
int sh_rules_dest(const struct shape_rules *, int p, const char *domain, char *dest);

/* True if rule r matches the reply (status parsed: part -1 = none). */
bool sh_adaptive_match(const struct shape_rules *, const struct adaptive *r, int code,
                       const int16_t status[3], const char *text, size_t len, pcre2_match_data *md);
/* "4.7.0" -> parts; all -1 if it is not an enhanced status. */
void sh_status_parse(const char *text, int16_t out[3]);

/* ---- State ---- */

struct action; /* adaptive.c */

struct shape_state {
	struct shape_rules *rules;
	size_t keys_max, actions_max;
	struct ttab throttles; /* "kind:source:dest" -> GCRA */
	struct ttab triggers;  /* "rule:source:dest" -> struct window */
	struct ttab warm;      /* "source:dest" -> day counter */
	struct ttab conns;     /* "source:dest" and ":dest" -> slots held */
	struct ttab actions;   /* "X:source:dest" -> struct action */
	struct action **heap;  /* actions by end time */
	size_t nheap, heap_alloc;
	uint64_t actions_dropped;
	unsigned connections;
	pcre2_match_data *md;
	char **names; /* adaptive rule names that origins point to (kept till the end) */
	size_t nnames;
	/* Operator overrides (override.c), oldest first. */
	struct shape_override *overrides;
	size_t noverrides;
	unsigned override_next_id;
};

/* Drops every active action (shape_state_free). */
void sh_actions_free(struct shape_state *);

/* ---- Loading (source.c, schema.c, load.c) ---- */

/* A section header found in the text: `kind "title" {` (or `kind {`), with its line. */
struct source_header {
	char *kind, *title; /* title NULL: none */
	int text_line;
	int depth;  /* 0: top level */
	int parent; /* index of the enclosing header, -1 at the top */
};

/* The text libconfuse parses (core's struct cfgtext: the file with its include()s expanded,
 * its comments removed, [ ] lists made { } lists, and a map back to each file and line), and
 * the section headers found in it. */
struct source {
	struct cfgtext t;
	struct source_header *headers;
	size_t nheaders;
};

struct load_ctx;

/* Reads path (or takes data, name standing for the file; include() then an error) and what
 * it includes into s, then finds its section headers; -1 (reported) if it cannot be read. */
int sh_source_load(struct source *, const char *path, struct load_ctx *);
int sh_source_load_text(struct source *, const char *name, const char *data, size_t len,
                        struct load_ctx *);
void sh_source_free(struct source *);

struct load_ctx {
	struct source *src;
	char *errors;
	size_t errors_len;
	unsigned nerrors;
	struct ttab where; /* "section@option" -> text line of its value */
};

#define LOAD_ERRORS_REPORTED 50

void sh_load_error_at(struct load_ctx *, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#include <confuse.h>

/* A libconfuse tree for the shaping schema, its callbacks reporting into ctx (one at a time:
 * the caller holds the load lock). */
cfg_t *sh_schema_new(struct load_ctx *);
void sh_schema_free(cfg_t *);
/* The text line where option name was last set in section sec (0: never). */
int sh_schema_line(struct load_ctx *, cfg_t *sec, const char *name);
/* "provider \"gmail\".message_rate" for messages. */
void sh_schema_path(cfg_t *sec, const char *name, char *buf, size_t size);
/* A value as messages show it: printable, about 80 octets at most. */
const char *sh_schema_shown(const char *value, char *buf, size_t size);
/* A section title (and source name) that names things in logs: 1 to 64 of [A-Za-z0-9-_.]. */
bool sh_title_valid(const char *title);

/* Compiles what libconfuse parsed into rules (load.c's build). */
struct shape_rules *sh_rules_build(cfg_t *, struct load_ctx *, const struct shape_settings *base,
                                   const struct shape_origin *base_origin);

#endif
