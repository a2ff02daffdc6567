/* suppress/suppress.h - the durable suppression list: addresses (and whole domains) that mail
 * must not go to any more, per tenant or for everyone, with the reason and the time.
 *
 * Storage: an LMDB environment of its own in a directory (docs/suppression.md). An entry is
 * durable once its add has returned / called back SUPPRESS_OK (its transaction committed,
 * fsynced): it survives kill -9 and power loss. Several processes may open the same list at
 * once (the daemon read-write, `drover suppress` read-write or read-only): LMDB serialises
 * their writers and never blocks a reader.
 *
 * What an entry matches: an address entry "local@domain" matches that recipient; a domain
 * entry "@domain" matches every recipient at exactly that domain (not its subdomains). An
 * entry under tenant "" (global) applies to every tenant; an entry under tenant T only to T.
 * Domains are compared case-insensitively (ASCII). Local parts are compared
 * case-insensitively too unless the list was created SUPPRESS_LOCAL_EXACT: the rule is kept
 * in the store, so every process that opens it applies the same one. An entry whose expiry
 * has passed matches nothing; suppress_sweep() removes it.
 *
 * Thread-safety: one struct suppress serves every thread. suppress_check() may run on any
 * number of threads at once (each thread keeps a read transaction of its own, reused). The
 * synchronous writes (add, remove, import, sweep) block on the disk: worker threads and the
 * CLI only. Event loops use the asynchronous forms, whose callbacks run on the given
 * mailbox, in request order.
 */
#ifndef DROVER_SUPPRESS_H
#define DROVER_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mailbox;

/* Tenant names: at most this many octets, printable ASCII ("" = global). */
#define SUPPRESS_TENANT_MAX 64
/* Addresses: RFC 5321's 64-octet local part, "@", 255-octet domain. */
#define SUPPRESS_ADDRESS_MAX 320
/* The source text kept with an entry (the bounce reply, who added it): longer is cut. */
#define SUPPRESS_SOURCE_MAX 200

/* Defaults (suppress_options fields left 0). */
#define SUPPRESS_DEF_MAP_SIZE     (4ULL << 30) /* LMDB map: ~40 million entries; sparse on disk */
#define SUPPRESS_DEF_BATCH_MAX    1024         /* asynchronous requests in one transaction */
#define SUPPRESS_DEF_IMPORT_BATCH 1000000      /* import records per transaction (one fsync each) */
/* Where `drover suppress` keeps the list when neither --dir nor a default directory is given:
 * beside the messages of the embedded defaults' spool (./var/spool). */
#define SUPPRESS_DEF_DIR "./var/spool/suppress"

enum suppress_status {
	SUPPRESS_OK = 0,
	SUPPRESS_NOT_FOUND, /* remove: there was no such entry */
	SUPPRESS_INVALID,   /* the address, tenant or reason cannot be stored */
	SUPPRESS_FULL,      /* LMDB map or disk full */
	SUPPRESS_IO_ERROR,  /* any other failure of the store, or a read-only list */
};
const char *suppress_status_str(enum suppress_status);

enum suppress_reason {
	SUPPRESS_HARD_BOUNCE = 0, /* a permanent failure for this recipient */
	SUPPRESS_COMPLAINT,       /* a feedback-loop report (ARF) */
	SUPPRESS_UNSUBSCRIBE,     /* the recipient asked */
	SUPPRESS_MANUAL,          /* an operator added it */
	SUPPRESS_IMPORT,          /* came in with a list */
};
#define SUPPRESS_REASON_COUNT 5
/* "hard-bounce", "complaint", "unsubscribe", "manual", "import". */
const char *suppress_reason_name(enum suppress_reason);
/* The reason named (case-insensitive; '_' for '-' and "bounce" for "hard-bounce" accepted):
 * 0, or -1 if it names none. */
int suppress_reason_parse(const char *, enum suppress_reason *);

/* ---- Opening ---- */

#define SUPPRESS_READONLY    0x1 /* only reads: the list must exist; every write fails */
#define SUPPRESS_LOCAL_EXACT 0x2 /* at creation only: compare local parts as given */

struct suppress_options {
	uint64_t map_size;   /* LMDB map size in bytes (0: SUPPRESS_DEF_MAP_SIZE) */
	unsigned batch_max;  /* asynchronous requests in one transaction (0: default) */
	size_t import_batch; /* import lines per transaction (0: default) */
	/* The wall clock for expiry, in microseconds (NULL: time_now_us()). Tests inject it. */
	uint64_t (*clock)(void *clock_arg);
	void *clock_arg;
};

/* Opens (creating dir, mode 0700, and the list if needed) the list in dir. opt may be NULL.
 * Read-write starts the writer thread of the asynchronous requests. On failure NULL, with
 * the reason in err. One process opens a given list once (LMDB); other processes may open
 * it meanwhile. */
struct suppress *suppress_open(const char *dir, const struct suppress_options *opt, int flags,
                               char *err, size_t errlen);
/* Answers every asynchronous request queued (their mailboxes must still exist and their
 * loops run again to deliver the answers), then closes. No other thread may be inside a
 * suppress_ call, or exiting, meanwhile; threads that made calls earlier may still be
 * alive (their kept read transactions are ended here). */
void suppress_close(struct suppress *);

/* True if local parts are compared as given (created SUPPRESS_LOCAL_EXACT). */
bool suppress_local_exact(const struct suppress *);

/* ---- Entries ---- */

/* What is stored, as read back. */
struct suppress_entry {
	char tenant[SUPPRESS_TENANT_MAX + 1];   /* "" = global */
	char address[SUPPRESS_ADDRESS_MAX + 1]; /* normalised; "@domain" for a domain entry */
	enum suppress_reason reason;
	uint64_t added_us;   /* wall clock */
	uint64_t expires_us; /* wall clock; 0 = never */
	char source[SUPPRESS_SOURCE_MAX + 1];
};

/* What to store. Strings are copied before the call returns. */
struct suppress_record {
	const char *tenant;  /* NULL or "" = global */
	const char *address; /* "local@domain", "<local@domain>", or "@domain" for a domain */
	enum suppress_reason reason;
	uint64_t added_us;   /* 0 = now */
	uint64_t expires_us; /* 0 = never */
	const char *source;  /* NULL = none; control characters become spaces; cut to fit */
};

/* The stored form of an address: surrounding "<>" and blanks removed, the domain lower-cased
 * (ASCII), the local part too if fold_local. Writes it NUL-terminated to out and returns its
 * length, or -1 (with why, if not NULL, saying what is wrong) if it cannot be an entry: no
 * '@', an empty domain, an empty local part other than a domain entry's, a control
 * character, a space outside a quoted local part, or too long. */
int suppress_address_normalize(const char *address, bool fold_local, char *out, size_t outlen,
                               const char **why);

/* Is address suppressed for tenant (NULL or "" = global only)? Looks up the tenant's
 * address entry, the global address entry, the tenant's domain entry, the global domain
 * entry, in that order (at most four B-tree lookups in one read snapshot); expired entries
 * do not count. 1 suppressed (the matching entry in *entry if not NULL), 0 not (an address
 * that cannot be an entry is never suppressed), -1 the store could not be read (the caller
 * chooses to fail open or closed). Any thread; never blocks on writers. */
int suppress_check(struct suppress *, const char *tenant, const char *address,
                   struct suppress_entry *entry);

/* Synchronous writes (they wait for the fsync: not on an event loop). An add replaces an
 * existing entry of the same tenant and address. err (may be NULL) says why on failure. */
enum suppress_status suppress_add(struct suppress *, const struct suppress_record *, char *err,
                                  size_t errlen);
/* SUPPRESS_OK removed, SUPPRESS_NOT_FOUND if there was no such entry. */
enum suppress_status suppress_remove(struct suppress *, const char *tenant, const char *address,
                                     char *err, size_t errlen);

/* ---- Asynchronous writes, for event loops ----
 *
 * Queued to the list's writer thread, which applies everything queued meanwhile (up to
 * batch_max requests) in one transaction: one fsync for a burst of hard bounces. cb runs on
 * mbox after the commit, in request order; n is 1 if the entry was added / removed, the
 * number removed for a sweep. cb may be NULL (then mbox may be too). A request the list
 * refuses at once (invalid, read-only) is answered the same way, in its turn. */
typedef void suppress_done_cb(void *arg, enum suppress_status, uint64_t n);

void suppress_add_async(struct suppress *, const struct suppress_record *, struct mailbox *,
                        suppress_done_cb *cb, void *arg);
/* n records queued together, so that they share a transaction (unless, with what is queued
 * before them, they are more than batch_max): one answer per record, each with its own arg
 * (args[i], or NULL if args is NULL). */
void suppress_add_async_many(struct suppress *, const struct suppress_record *, size_t n,
                             struct mailbox *, suppress_done_cb *cb, void *const *args);
void suppress_remove_async(struct suppress *, const char *tenant, const char *address,
                           struct mailbox *, suppress_done_cb *cb, void *arg);
/* suppress_sweep() on the writer thread. */
void suppress_sweep_async(struct suppress *, uint64_t now_us, struct mailbox *,
                          suppress_done_cb *cb, void *arg);

/* ---- Reading everything (list, export) ---- */

#define SUPPRESS_FOREACH_EXPIRED 0x1 /* include expired entries */

/* Calls fn for every entry of tenant (NULL = every tenant, "" = global only) in key order
 * (tenant, then address); stop early by returning non-zero, which suppress_foreach returns.
 * -1 on a read error. The snapshot is renewed every few thousand entries, so a long listing
 * does not hold old pages; it may see later changes in part. A damaged record is logged and
 * skipped. */
typedef int suppress_foreach_fn(void *arg, const struct suppress_entry *);
int suppress_foreach(struct suppress *, const char *tenant, int flags, suppress_foreach_fn *fn,
                     void *arg);

/* Entries stored, expired ones not yet swept included. */
uint64_t suppress_count(struct suppress *);

/* Removes every entry whose expiry is at or before now_us, in transactions of a few thousand
 * deletions. The number removed, or -1 (what was removed before the failure stays removed). */
int64_t suppress_sweep(struct suppress *, uint64_t now_us);

/* Counters since open, for metrics and tests. */
struct suppress_stats {
	uint64_t commits;       /* write transactions committed (= fsyncs), every kind */
	uint64_t added;         /* entries added or replaced */
	uint64_t removed;       /* entries removed (remove, sweep) */
	uint64_t requests;      /* asynchronous requests answered */
	uint64_t largest_batch; /* most asynchronous requests in one transaction */
	uint64_t failed;        /* writes answered other than SUPPRESS_OK / SUPPRESS_NOT_FOUND */
};
void suppress_stats(struct suppress *, struct suppress_stats *);

/* ---- Import ----
 *
 * A file of one entry per line. Blank lines and lines starting with '#' are skipped.
 * Without a header line, a line is ADDRESS[,REASON[,SOURCE]]. A first line naming columns
 * (the CSV that `drover suppress export` writes: tenant,address,reason,added,expires,source;
 * "email" is taken for address, unknown columns are ignored) makes the rest CSV in that
 * order. Fields may be double-quoted ("" inside for a quote). Times are RFC 3339 or Unix
 * seconds; an empty field takes the default. */

/* The columns seen so far in a file: zero it before the first line. */
struct suppress_columns {
	uint8_t col[16];
	unsigned n;  /* 0: no header (the positional form) */
	bool header; /* a header was read */
	bool data;   /* a record was read (a header after one is a record) */
};

/* Parses one line (len octets, no newline needed; modified in place). Returns 1 and sets the
 * fields of rec that the line gives (strings pointing into line; the rest left as they
 * were), 0 for a line that holds no record (blank, comment, header), -1 if malformed (err
 * says why). The address is not checked here: suppress_address_normalize() does that. */
int suppress_import_parse(struct suppress_columns *, char *line, size_t len,
                          struct suppress_record *rec, char *err, size_t errlen);

struct suppress_import_result {
	uint64_t lines;     /* read */
	uint64_t imported;  /* records written (a later line for the same entry replaces it) */
	uint64_t malformed; /* lines refused (reported through the error function) */
};
/* Called for each refused line: its number (from 1) and why. */
typedef void suppress_import_error_fn(void *arg, uint64_t lineno, const char *why);

/* Reads in to the end and stores every record, import_batch lines per transaction (sorted
 * within the batch, appended without a B-tree search where they follow everything stored):
 * a crash leaves whole batches. defaults gives what a line leaves out (tenant, reason,
 * expiry, source; its address is ignored; NULL: global, SUPPRESS_IMPORT, none). 0, or -1
 * if reading or the store failed (err says which; whole batches before it are stored). */
int suppress_import(struct suppress *, FILE *in, const struct suppress_record *defaults,
                    suppress_import_error_fn *on_error, void *arg,
                    struct suppress_import_result *result, char *err, size_t errlen);

/* Parses an RFC 3339 time ("2026-11-29T08:36:38Z", fraction and offset optional, ' ' for
 * 'T' accepted) or Unix seconds: 0, or -1. */
int suppress_time_parse(const char *text, uint64_t *us);

/* ---- The command line ---- */

/* `drover suppress ...`: argv[0] is "suppress", argv[1] the action (add, remove, list,
 * import, export, check, sweep, help). default_dir is the list's directory unless --dir
 * is given (NULL: SUPPRESS_DEF_DIR). Returns the exit status: 0 done (check: suppressed),
 * 1 not (check: not suppressed; remove: no such entry; import: some lines refused), 2 usage
 * or store error. */
int suppress_cli(int argc, char **argv, const char *default_dir);

#endif
