/* preflight/preflight.h - before sending: will mail from this domain, sent from this source,
 * pass the checks mailbox providers apply? From live DNS, with what to publish when not.
 *
 * Three checks, each a finding with a verdict, what was found and, when something is wrong,
 * the DNS record to publish or change:
 *
 *	SPF    the domain's record authorizes the source address (with no source given: the
 *	       record exists and is valid)
 *	DKIM   every configured key that signs mail from the domain (dkim_key sections, chosen
 *	       as at reception) is published at selector._domainkey.d= with the same public key
 *	DMARC  the domain (or its organizational domain) publishes a policy, and a signature by
 *	       a published key, or the SPF pass, aligns with the From domain
 *
 * `drover auth check --from ADDRESS [--source NAME|IP]` prints a report; the server runs the
 * same check for every signing domain at start-up and on SIGHUP, in a thread of its own, and
 * logs a warning per problem.
 *
 * A check runs on the event loop of the resolver it is given; nothing blocks.
 */
#ifndef DROVER_PREFLIGHT_H
#define DROVER_PREFLIGHT_H

#include <stdbool.h>
#include <stddef.h>

struct config;
struct dns_resolver;
struct event_base;

enum preflight_verdict {
	PREFLIGHT_PASS,
	PREFLIGHT_WARN, /* not wrong, but worth doing (no DMARC policy, no source to check) */
	PREFLIGHT_FAIL, /* mail would fail this check */
};

#define PREFLIGHT_FINDINGS_MAX 16

struct preflight_finding {
	const char *check; /* "SPF", "DKIM", "DMARC" */
	enum preflight_verdict verdict;
	char text[640]; /* what was found, and why it is a problem */
	char fix[2048]; /* what to publish: "TXT name \"value\"", "" if nothing */
};

struct preflight_report {
	char domain[256]; /* the From domain checked */
	char source[256]; /* the address SPF was checked from, "" if none */
	struct preflight_finding findings[PREFLIGHT_FINDINGS_MAX];
	size_t n;
	unsigned failures, warnings;
};

struct preflight_request {
	const char *from;   /* "user@example.com", or a domain alone */
	const char *source; /* an IP address, or a host name whose addresses are checked; NULL */
	const struct config *cfg; /* for the dkim_key sections; may have none */
	/* The published form of each configured key (index of cfg->dkim_keys), read beforehand
	 * (the server reads keys while it still may: before it stops being root); an entry
	 * NULL: read the key now. The array may be NULL. */
	const char *const *key_records;
	const char *const *key_errors; /* why a key could not be read beforehand, or NULL */
};

/* "pass", "warn", "FAIL" */
const char *preflight_verdict_name(enum preflight_verdict);

typedef void preflight_cb(void *arg, const struct preflight_report *);

/* Runs the checks through resolver (whose loop is base); cb gets the report once, from the
 * loop, valid during the call. -1 (and no callback) if the request is unusable, with why in
 * err: no domain in from, a source that is neither an address nor a host name. */
int preflight_run(struct event_base *base, struct dns_resolver *resolver,
                  const struct preflight_request *, preflight_cb *cb, void *arg, char *err,
                  size_t errlen);

/* The report as text, one finding a line, fixes indented under it. free() it. */
char *preflight_report_text(const struct preflight_report *);

/* For the server: checks every signing domain (the d= of each dkim_key, and each domain its
 * sign_for names) in a thread of its own with its own loop and resolver, logging a warning
 * per problem. Returns at once; the thread ends by itself. cfg must stay valid until
 * preflight_background_wait() returns. */
struct preflight_background;
struct preflight_background *preflight_background_start(const struct config *);
/* True while its checks still run. */
bool preflight_background_running(struct preflight_background *);
/* Waits for the thread (at most a DNS timeout or two) and frees it. NULL is accepted. */
void preflight_background_wait(struct preflight_background *);

#endif
