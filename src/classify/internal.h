/* classify/internal.h - private to classify/: the table's layout, the name maps, the text
 * normaliser and the answer cache.
 */
#ifndef DROVER_CLASSIFY_INTERNAL_H
#define DROVER_CLASSIFY_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "classify/classify.h"

/* A code pattern: each of the three digits, or -1 for 'x'. */
struct code_pat {
	int8_t d[3];
};

/* A status pattern "5.1.1", "5.1.*", "*.7.1": each part, or -1 for '*'. */
struct status_pat {
	int16_t p[3];
};

/* A parsed enhanced status; p[0] == -1: none. */
struct status {
	int16_t p[3];
};

struct rule {
	unsigned line;
	enum classify_category category;
	int provider; /* index, -1: any */
	uint8_t ncodes, nstatus;
	struct code_pat codes[CLASSIFY_LIST_MAX];
	struct status_pat status[CLASSIFY_LIST_MAX];
	pcre2_code *re; /* NULL: no text condition */
};

struct decision {
	unsigned line;
	int provider; /* -1: any */
	int category; /* -1: any */
	int klass;    /* 4, 5, or 0: any */
	enum classify_action action;
};

/* Open-addressing map from a string to an int, built once at load time and read-only after.
 * Keys come from the rules file, so nobody outside can aim them at one slot. */
struct strmap_slot {
	const char *key; /* NULL: empty */
	uint32_t hash;
	uint32_t len;
	int value;
};

struct strmap {
	struct strmap_slot *slots;
	size_t mask; /* slots - 1, a power of two minus one */
	size_t count;
};

void strmap_init(struct strmap *);
void strmap_free(struct strmap *);
/* Adds key (not copied: it must outlive the map) -> value. Returns the value already there
 * instead (and adds nothing) if key is present, else -1. */
int strmap_put(struct strmap *, const char *key, size_t len, int value);
/* The value of key[0..len), -1 if absent. */
int strmap_get(const struct strmap *, const char *key, size_t len);

/* Names of providers' MX suffixes and domains: value = provider index, plus this bit for
 * a "domain" entry (matched exactly, not as a suffix). */
#define NAME_EXACT 0x40000000

struct cache;

/* Rule lists by class of reply code: [0] no code (or one outside 200..599), [2] to [5] by
 * the code's first digit. A list holds, in file order, the rules whose code condition can
 * match that class, so that a 4xx reply never runs the regexes of 5xx-only rules. */
#define CLASSES 6

struct classify_table {
	atomic_uint refs;
	char *name; /* the file, for errors */
	struct rule *rules;
	size_t nrules;
	struct decision *decisions;
	size_t ndecisions;
	char **providers; /* names */
	size_t nproviders;
	struct strmap provider_index; /* name -> index */
	struct strmap names;          /* MX suffix / domain -> index | NAME_EXACT */
	char **strings;               /* the names' storage */
	size_t nstrings;
	uint32_t *by_class[CLASSES];
	size_t nby_class[CLASSES];
	pcre2_match_context *mctx;
	struct cache *cache; /* NULL: no cache */
	/* Replies classified without the cache (none, or a text too long for it): counted
	 * outside the cache's locks, which such a reply never takes. */
	atomic_uint_least64_t uncachable;
};

/* Normalises text (at most CLASSIFY_TEXT_MAX octets of it) into out, which has room for
 * CLASSIFY_TEXT_MAX + 1 octets; returns the length. Never longer than the input. */
size_t classify_normalize(const char *text, char *out);

/* Parses an RFC 3463 status (class 2, 4 or 5; subject and detail 1-3 digits); p[0] = -1 if
 * s is NULL, empty or malformed. */
void status_parse(const char *s, struct status *st);

/* The provider index of a name, -1 if none or unknown. */
int provider_lookup(const struct classify_table *, const char *name);

/* ---- Cache ---- */

struct cache_key {
	int provider;
	int code;
	struct status status;
	const char *text;
	size_t len;
	uint64_t hash;
};

struct cache_answer {
	enum classify_category category;
	int rule;
};

struct cache *cache_new(size_t entries);
void cache_free(struct cache *);
uint64_t cache_hash(const struct cache *, const struct cache_key *);
bool cache_get(struct cache *, const struct cache_key *, struct cache_answer *);
void cache_put(struct cache *, const struct cache_key *, const struct cache_answer *);
void cache_stats(struct cache *, struct classify_stats *);

#endif
