/* access/access.h - authenticated submission and abuse control: the users file, password
 * checks off the event loop, password hashing, rate limits and failed-authentication tracking.
 *
 * No SMTP and no configuration here: ingress asks these questions (may this user log in, may
 * this client try again, may this user send now) and turns the answers into replies; conf
 * supplies the parameters.
 *
 * Thread-safety:
 * - A users table is immutable once loaded and may be read from any thread. Its reference
 *   count is atomic: a reload loads a new table, publishes it, and drops the old one's
 *   reference; whoever still holds a reference keeps the old table valid.
 * - The verifier may be used from any thread; each answer runs on the event loop that owns
 *   the mailbox given with the request. A request handle belongs to that loop.
 * - Limiters and failure trackers are internally locked (striped mutexes): one instance is
 *   shared by every event-loop thread, so a per-user limit holds across all of them.
 * - access_hash_password() and access_rate_parse() are pure and reentrant.
 */
#ifndef DROVER_ACCESS_H
#define DROVER_ACCESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mailbox;
struct sockaddr;

/* ---- The users file ---- */

/* "name:hash[:domain,domain,...]" per line, '#' comments and blank lines allowed. */
#define ACCESS_NAME_MAX       255  /* octets of a user name: printable ASCII, no ':' */
#define ACCESS_USERS_LINE_MAX 4096 /* octets of a line without its newline */
/* A crypt(3) string and a passphrase, as libxcrypt bounds them (CRYPT_OUTPUT_SIZE - 1 and
 * CRYPT_MAX_PASSPHRASE_SIZE - 1): crypt refuses longer passphrases. */
#define ACCESS_HASH_MAX     383
#define ACCESS_PASSWORD_MAX 511

struct access_users; /* immutable, reference-counted */
struct access_user;  /* one entry, valid while its table is */

/* Reads and checks the whole file (blocking I/O: call it at start-up or from the reload path,
 * never on an event loop). Returns a table holding one reference, or NULL with the first
 * problem in err as "file:line: what", e.g. "users:7: duplicate user \"ann\" (first at line
 * 2)". Refused: DES, MD5-crypt and any hash other than yescrypt ($y$), bcrypt ($2b$, $2y$) and
 * sha512-crypt ($6$); malformed hashes; bad names and domains; lines over
 * ACCESS_USERS_LINE_MAX. */
struct access_users *access_users_load(const char *path, char *err, size_t errlen);
struct access_users *access_users_ref(struct access_users *);
/* Drops one reference; the last one frees the table. NULL is a no-op. */
void access_users_unref(struct access_users *);
size_t access_users_count(const struct access_users *);

/* O(1). Names are case-sensitive. NULL if there is no such user. */
const struct access_user *access_users_find(const struct access_users *, const char *name);
const char *access_user_name(const struct access_user *);
/* May this user send as this domain (the MAIL FROM or From: domain)? True if the user's
 * line lists no domains; else if the domain is one listed or a subdomain of one
 * ("example.com" covers "mail.example.com", not "badexample.com"). Case-insensitive;
 * U-labels are compared as their A-labels. */
bool access_user_may_send_from(const struct access_user *, const char *domain);

/* ---- Checking passwords ---- */

enum access_verify_result {
	ACCESS_VERIFY_OK = 0,   /* the password matches */
	ACCESS_VERIFY_BAD,      /* wrong password (or longer than ACCESS_PASSWORD_MAX) */
	ACCESS_VERIFY_NO_USER,  /* no such user (after the same work as a wrong password) */
	ACCESS_VERIFY_TEMPFAIL, /* overloaded (queue full), shutting down, or crypt failed:
	                           answer 454 4.7.0 and let the client retry */
};

/* "ok", "bad", "no-user", "tempfail" (for logs). */
const char *access_verify_result_name(enum access_verify_result);

#define ACCESS_VERIFY_THREADS_DEFAULT 2
#define ACCESS_VERIFY_THREADS_MAX     64
/* Requests waiting for a thread, per thread. A yescrypt check costs ~100 ms of CPU and 16 MB:
 * past ~6 s of backlog the client has better odds retrying than waiting. */
#define ACCESS_VERIFY_QUEUE_PER_THREAD 64

struct access_verifier;
struct access_verify; /* one request: the caller's handle */

typedef void access_verify_cb(void *arg, enum access_verify_result);

/* Starts the worker threads (0: ACCESS_VERIFY_THREADS_DEFAULT). Never NULL. */
struct access_verifier *access_verifier_new(unsigned threads);
/* Requests still queued are answered ACCESS_VERIFY_TEMPFAIL, those being checked are
 * finished, then the threads are joined. Their answers are posted: free the verifier before
 * the mailboxes it answers to, and run those loops once more to deliver (or drop) them. */
void access_verifier_free(struct access_verifier *);

/* Checks name and password against the table on a worker thread, then runs cb(arg, result)
 * on the event loop that owns reply_to: always later, never from inside this call, exactly
 * once unless the request is cancelled first. The table need only be valid during this call
 * (the hash is copied). The password is copied and every copy is wiped (explicit_bzero) once
 * checked; the caller wipes its own buffer. Comparison is constant-time, and an unknown user
 * costs one crypt of a hash of the table's most common method and cost, so that timing does
 * not tell which users exist. The handle is valid until cb returns or cancel is called. */
struct access_verify *access_verify(struct access_verifier *, const struct access_users *,
                                    const char *name, const char *password, size_t password_len,
                                    struct mailbox *reply_to, access_verify_cb *cb, void *arg);
/* From reply_to's loop only, e.g. when the session closes before its answer: cb will not run
 * and the library frees the request. A no-op from inside the request's own callback. */
void access_verify_cancel(struct access_verify *);

/* ---- Hashing (drover user add) ---- */

enum access_hash_method {
	ACCESS_HASH_YESCRYPT = 0, /* $y$, libxcrypt's default cost */
	ACCESS_HASH_BCRYPT,       /* $2b$, cost ACCESS_BCRYPT_COST */
	ACCESS_HASH_SHA512,       /* $6$, ACCESS_SHA512_ROUNDS rounds */
};

/* Costs of the optional methods, chosen to cost about what yescrypt's default does (~100 ms
 * here): libxcrypt's own defaults (bcrypt 5, sha512 5000 rounds) cost 1-3 ms, which an
 * attacker with a stolen file turns into millions of guesses per second. */
#define ACCESS_BCRYPT_COST   10
#define ACCESS_SHA512_ROUNDS 400000
/* bcrypt hashes only the first 72 octets: a longer password is refused, not truncated. */
#define ACCESS_BCRYPT_PASSWORD_MAX 72

/* "yescrypt", "bcrypt", "sha512-crypt" (also "sha512") → 0, else -1. */
int access_hash_method_parse(const char *name, enum access_hash_method *out);
const char *access_hash_method_name(enum access_hash_method);

/* A fresh salt from the kernel's random source, then crypt. Writes the hash (at most
 * ACCESS_HASH_MAX octets and the NUL) to out. Returns 0, or -1 with err: an empty password,
 * one too long for crypt or for bcrypt, out too small, or crypt failing. */
int access_hash_password(const char *password, enum access_hash_method, char *out, size_t outlen,
                         char *err, size_t errlen);

/* ---- Keys for limits ---- */

#define ACCESS_KEY_MAX 255 /* octets of a key that count; longer keys are cut there */
/* The default number of keys a limiter or failure tracker remembers. */
#define ACCESS_MAX_KEYS_DEFAULT 100000

/* The key for a client address: an IPv4 address as text, an IPv4-mapped IPv6 address as its
 * IPv4, and an IPv6 address as its /64 ("2001:db8:1:2::/64"), because one IPv6 subscriber
 * usually holds a whole /64 and could otherwise change key at every connection. Returns 0, or
 * -1 for another family or too small a buffer (64 octets always suffice). */
int access_client_key(const struct sockaddr *, char *out, size_t outlen);

/* ---- Rate limits ---- */

/* count events per period_us, in a burst of at most burst (access_rate_parse() sets burst =
 * count). count 0 means unlimited. */
struct access_rate {
	uint64_t count;
	uint64_t period_us;
	uint64_t burst;
};

#define ACCESS_RATE_COUNT_MAX  1000000000ULL              /* a billion per period */
#define ACCESS_RATE_PERIOD_MAX (366ULL * 86400 * 1000000) /* a (leap) year */

/* "1000/h", "20/m", "5/s", "100000/d", "300/10m", or "0" (unlimited). Lower-case units only,
 * as in the configuration's durations. Returns 0, or -1 with err saying what is expected. */
int access_rate_parse(const char *text, struct access_rate *out, char *err, size_t errlen);

/* GCRA (a token bucket of burst tokens refilled at count per period): O(1) per call, 40
 * octets per key, at most max_keys keys (0: ACCESS_MAX_KEYS_DEFAULT); a key idle long
 * enough for its bucket to fill again is forgotten (lazily, by later calls), and when the
 * limit is reached the least recently used key is. Never NULL. */
struct access_limiter;
struct access_limiter *access_limiter_new(const struct access_rate *, size_t max_keys);
void access_limiter_free(struct access_limiter *);
/* A reload: keys keep what they have used, measured from now on at the new rate. */
void access_limiter_set_rate(struct access_limiter *, const struct access_rate *);
/* Takes one token for key at now_us (any clock that does not go backwards; monotonic is
 * best). True if allowed; else false and, if wait_us is not NULL, the time until a token will
 * be there. Always true for an unlimited rate. */
bool access_rate_take(struct access_limiter *, const char *key, uint64_t now_us, uint64_t *wait_us);
/* Keys remembered now (tests, metrics). */
size_t access_limiter_keys(struct access_limiter *);

/* ---- Failed authentication ---- */

struct access_authfail_params {
	uint64_t delay_first_us; /* delay before answering the first failure */
	uint64_t delay_max_us;   /* each further consecutive failure doubles it, up to this */
	unsigned block_after;    /* failures within window_us that block the IP (0: never) */
	uint64_t window_us;      /* from the window's first failure; the next window also
	                            starts the delay again */
	uint64_t block_us;       /* how long a block lasts */
	size_t max_keys;         /* 0: ACCESS_MAX_KEYS_DEFAULT */
};

/* Suggested values (ingress/conf own the real defaults): 1 s, 2 s, 4 s, ... up to 16 s, which
 * costs a guesser far more than a person who mistyped; and 10 failures within 15 minutes
 * block the address for an hour. */
#define ACCESS_AUTHFAIL_DELAY_FIRST_US 1000000ULL
#define ACCESS_AUTHFAIL_DELAY_MAX_US   16000000ULL
#define ACCESS_AUTHFAIL_BLOCK_AFTER    10
#define ACCESS_AUTHFAIL_WINDOW_US      (15 * 60 * 1000000ULL)
#define ACCESS_AUTHFAIL_BLOCK_US       (60 * 60 * 1000000ULL)

struct access_authfail_verdict {
	uint64_t delay_us;   /* wait this long before sending the failure reply */
	bool blocked;        /* the address is blocked (now, or already was) */
	uint64_t blocked_us; /* if blocked: for how much longer */
	unsigned failures;   /* failures counted in the current window */
};

/* Same memory bounds and thread-safety as the limiter. Never NULL. */
struct access_authfail;
struct access_authfail *access_authfail_new(const struct access_authfail_params *);
void access_authfail_free(struct access_authfail *);
/* A failed authentication from key (usually access_client_key()) at now_us. Failures while
 * blocked are not counted and do not extend the block. */
struct access_authfail_verdict access_authfail_record(struct access_authfail *, const char *key,
                                                      uint64_t now_us);
/* Is key blocked at now_us? If so and remaining_us is not NULL, for how much longer. */
bool access_authfail_blocked(struct access_authfail *, const char *key, uint64_t now_us,
                             uint64_t *remaining_us);
/* A successful authentication: the delay starts again from delay_first_us. The failures
 * counted toward a block are kept until their window ends: otherwise an attacker holding one
 * valid account could log into it between guesses at others and never be blocked. */
void access_authfail_success(struct access_authfail *, const char *key, uint64_t now_us);
size_t access_authfail_keys(struct access_authfail *);

#endif
