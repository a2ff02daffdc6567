/* route/route.h - classification at reception: the stream, tenant, campaign and pool of a
 * message, decided by the configuration's classification rules and, for senders a rule
 * trusts, by the message's X-Drover-Stream, -Pool, -Tenant and -Campaign fields
 * (docs/routing.md).
 *
 *   rules = route_rules_new(cfg);             // once per configuration
 *   route_classify(rules, &msg, &result);     // once per message, any thread
 *   n = route_strip_drover_fields(buf, len);  // before anything stores, signs or sends it
 *
 * Thread-safety: compiled rules are immutable; any number of threads may classify with the
 * same rules at once (each call has its own PCRE2 match data). The rules point into the
 * configuration they were compiled from, which must outlive them.
 *
 * The header parser is pure and bounded for any input (tests/fuzz/fuzz_route_headers.c).
 */
#ifndef DROVER_ROUTE_H
#define DROVER_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

struct config;

/* The fields a sender that a rule trusts (trust_headers) chooses with. They are removed from
 * every message before it is stored, trusted or not: never sent, never signed. */
#define ROUTE_FIELD_STREAM   "X-Drover-Stream"
#define ROUTE_FIELD_POOL     "X-Drover-Pool"
#define ROUTE_FIELD_TENANT   "X-Drover-Tenant"
#define ROUTE_FIELD_CAMPAIGN "X-Drover-Campaign"

/* The header section is held in memory until it is classified, and classified whole: one
 * longer than this is refused at reception (552 5.3.4). The same bound as the DKIM signer and
 * verifier keep (auth.h DKIM_HEADERS_MAX), and Exim's header_maxsize. */
#define ROUTE_HEADERS_MAX (1024 * 1024)
/* Fields that header conditions and campaign_header look at, from the top: far more than a
 * real message has (a few dozen); beyond it a message only costs time. X-Drover-* fields
 * are found and removed wherever they are. */
#define ROUTE_FIELDS_MAX 1000
/* Octets of a field's unfolded value that a pattern sees: a long To or References field is
 * matched on its start. */
#define ROUTE_VALUE_MAX 16384
/* conf/defaults.h LIM_CAMPAIGN_MAX: a campaign name, 1-64 printable ASCII octets. */
#define ROUTE_CAMPAIGN_MAX 64
/* Octets of an unknown name from a trusted field echoed in the reply and the log. */
#define ROUTE_SHOWN_MAX 64
/* PCRE2 backtracking per match: a pattern that cannot decide within it does not match (as
 * the bounce classifier's CLASSIFY_MATCH_LIMIT). */
#define ROUTE_MATCH_LIMIT 200000

/* ---- The header section (RFC 5322 §2.2, §3.6) ----
 *
 * Fields run from the top to the first empty line. A line that is neither a field ("Name:",
 * blanks allowed before the colon) nor a continuation (starting with a blank) ends the
 * section too: it is the start of a body without the empty line, as receivers read it.
 * Lines end in CRLF (a bare LF is accepted as a line end). */

struct route_field {
	size_t start;    /* offset of its first octet (its name) */
	size_t end;      /* offset after its last line end */
	size_t name_len; /* octets of its name, blanks before the colon not included */
	size_t value;    /* offset just after the colon */
	bool complete;   /* false: the buffer ended inside it (end is then the buffer's end) */
};

/* The field at *pos in p[0..n). 1: a field, in *f, and *pos moved after it. 0: the section
 * ends at *pos (an empty line or a line that is no field; *pos unchanged). -1: the buffer
 * ends before that can be told (at a line start, or inside a field's name). */
int route_header_next(const char *p, size_t n, size_t *pos, struct route_field *f);
/* True if f's name is name (case-insensitive, RFC 5322 §1.2.2). */
bool route_field_is(const char *p, const struct route_field *f, const char *name);
/* The field's value unfolded (line ends removed) and trimmed of blanks at both ends, its
 * first size - 1 octets NUL-terminated in out; returns their number. */
size_t route_field_value(const char *p, const struct route_field *f, char *out, size_t size);
/* True if p[0..n) holds the whole header section, which then ends at *end (where its empty
 * line or first non-field line starts, or n for a section without one: only when final,
 * that is, when nothing more will come). */
bool route_header_complete(const char *p, size_t n, bool final, size_t *end);
/* True if f is one of the ROUTE_FIELD_* fields. */
bool route_field_is_drover(const char *p, const struct route_field *f);
/* Removes every ROUTE_FIELD_* field of the header section at the start of buf[0..len) in
 * place; returns the new length. */
size_t route_strip_drover_fields(char *buf, size_t len);

/* ---- Classification ---- */

struct route_rules;

/* Compiles cfg's classification rules (their patterns were checked by config_load); the
 * JIT is used where the machine allows it. Never fails but for memory (fatal). */
struct route_rules *route_rules_new(const struct config *cfg);
void route_rules_free(struct route_rules *);

/* What a message is judged on. */
struct route_message {
	const char *listener;          /* the listener's name */
	const char *auth_user;         /* NULL: not authenticated */
	const struct sockaddr *client; /* NULL: not known (no client condition holds) */
	const char *sender;            /* the envelope sender, "" for <> */
	size_t nrcpt;                  /* recipients */
	const char *headers;           /* the header section (what follows it is ignored) */
	size_t headers_len;            /* at most ROUTE_HEADERS_MAX octets are looked at */
	bool trusted; /* the listener trusts the X-Drover-* fields whatever the rules say (the
	                 control plane's injection, listener "api") */
};

enum route_error {
	ROUTE_OK = 0,
	ROUTE_UNKNOWN_STREAM, /* a trusted X-Drover-Stream names no stream section (nor default) */
	ROUTE_UNKNOWN_POOL,   /* a trusted X-Drover-Pool names no pool section */
	ROUTE_UNKNOWN_TENANT, /* a trusted X-Drover-Tenant names no tenant section */
	ROUTE_BAD_CAMPAIGN,   /* a trusted X-Drover-Campaign is no campaign (1-64 printable) */
};

#define ROUTE_NO_RULE (-1)

struct route_result {
	/* Each NULL when nothing set it; names point into the configuration ("default" for
	 * the default stream named). */
	const char *stream, *tenant, *pool;
	char campaign[ROUTE_CAMPAIGN_MAX + 1]; /* "": none (a copy: the result may be copied) */
	/* Index into config.classification_rules of the rule that set each, or ROUTE_NO_RULE
	 * (not set, or set by a trusted field). trust_rule: the one that decided trust. */
	int stream_rule, tenant_rule, campaign_rule, pool_rule, trust_rule;
	bool trusted; /* the rules (or the listener) trust this sender's X-Drover-* fields */
	bool stream_from_field, pool_from_field; /* a trusted field decided them */
	bool tenant_from_field, campaign_from_field;
	enum route_error error;              /* ROUTE_OK, or which field named nothing */
	char bad_value[ROUTE_SHOWN_MAX + 4]; /* that field's value, printable, cut ("...") */
};

/* Judges msg: rules in order; each result from the first matching rule that sets it; a
 * final rule that matches ends the evaluation; then, if trusted, the X-Drover-* fields
 * (the first of each) override stream, pool, tenant and campaign. */
void route_classify(const struct route_rules *, const struct route_message *,
                    struct route_result *);
/* The lines of the rules that decided (stream, tenant, campaign, pool, or trust for a field
 * honoured), each once, in the order of the file; at most max into lines. Returns how many
 * were written. */
size_t route_result_lines(const struct route_rules *, const struct route_result *, int *lines,
                          size_t max);

#endif
