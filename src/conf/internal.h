/* conf/internal.h - private to conf/: the parsers with their reasons, the schema, and the
 * state of one config_load() in progress.
 */
#ifndef DROVER_CONF_INTERNAL_H
#define DROVER_CONF_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <confuse.h>

#include "conf/conf.h"
#include "core/core.h"

/* ---- Parsers (units.c, netmask.c, address.c). On -1, *why is a phrase for the message:
 * "expected a number with an optional k, M, G or T suffix". ---- */

int parse_size_why(const char *text, uint64_t *out, const char **why);
int parse_duration_why(const char *text, uint64_t *out, const char **why);
int netmask_parse_why(const char *text, struct netmask *out, const char **why);
/* "ip:port" or "[ipv6]:port", numeric only, port 1-65535. */
int listen_address_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len,
                         const char **why);
/* A domain name as RFC 1035 letters, digits and hyphens, at most 253 octets. */
bool hostname_valid(const char *name);
/* A host delivery connects to: "mx.example.com", "mx.example.com:2525", "192.0.2.1:25",
 * "[2001:db8::1]:25" (port optional, 1-65535). Syntax only, nothing is resolved. */
int host_port_parse_why(const char *text, const char **why);
/* A DNS forwarder: a numeric IPv4 or IPv6 address with an optional "@port". */
int forwarder_parse_why(const char *text, const char **why);
/* A DKIM canonicalization: "relaxed/simple", "relaxed" (body simple). 0 or -1. */
int canonicalization_parse(const char *text, bool *header_relaxed, bool *body_relaxed);
/* listener verify = { } entries: "spf", "dkim", "dmarc" -> VERIFY_* bits; 0 if unknown. */
unsigned verify_value(const char *text);
/* dkim.on_key_error: "defer", "unsigned" -> enum dkim_key_error_policy; -1 if unknown. */
int key_error_policy_value(const char *text);

struct load_ctx;

/* "1000/h", "10/m", "50/s", "20000/d", "0" (no limit). 0 or -1 with why. */
int rate_parse_why(const char *text, struct rate_conf *out, const char **why);
/* listener role: "mx" (also "relay"), "submission", "submissions"; -1 otherwise. */
int role_value(const char *text);
/* "TLSv1.2" 0x0303, "TLSv1.3" 0x0304; 0 otherwise. */
unsigned tls_version_value(const char *text);
/* tls { }, tls_certificate and auth { } into conf (security.c). */
void copy_security(cfg_t *cfg, struct config *conf, const struct load_ctx *ctx);
void free_security(struct config *conf);

/* A list setting's strings, copied: *n of them, then NULL. free_list() takes them back. */
char **copy_list(cfg_t *sec, const char *name, size_t *n);
void free_list(char **v, size_t n);

/* domain "name" { } sections into conf, sorted (domain.c); free_domains() takes them back. */
void copy_domains(cfg_t *cfg, struct config *conf);
void free_domains(struct config *conf);
/* A tls setting's value ("required-verify") -> enum tls_policy; TLS_POLICY_UNSET if unknown. */
enum tls_policy tls_policy_value(const char *text);

/* source and pool sections, and the pool settings of delivery, route and domain sections,
 * into conf, checked against each other (egress.c); free_egress() takes them back. After
 * copy_delivery, copy_routes and copy_domains. */
void copy_egress(cfg_t *cfg, struct config *conf, struct load_ctx *ctx);
void free_egress(struct config *conf);

/* stream, tenant and classification { rule { } } sections (routing.c): their schema, hooked
 * into the root one (its value callbacks report into the load in progress, which
 * routing_schema_begin() names and routing_schema_end() forgets); copy_routing() checks the
 * names they refer to, after copy_egress (pools) and the listeners; free_routing() takes them
 * back. */
extern cfg_opt_t routing_stream_opts[], routing_tenant_opts[], routing_classification_opts[];
void routing_schema_begin(cfg_t *cfg, struct load_ctx *ctx);
void routing_schema_end(void);
void copy_routing(cfg_t *cfg, struct config *conf, struct load_ctx *ctx);
void free_routing(struct config *conf);

/* verp { } (verp.c): its options and their checks, the copy into conf (after the listeners,
 * whose bounce role needs it), free_verp() wiping the secrets. */
extern cfg_opt_t verp_opts[];
int verp_section_end(cfg_t *cfg, cfg_opt_t *opt);
void copy_verp(cfg_t *cfg, struct config *conf, struct load_ctx *ctx);
void free_verp(struct config *conf);

/* dkim { } and dkim_key sections into conf (dkim.c); free_dkim() takes them back. */
void copy_dkim(cfg_t *cfg, struct config *conf, const struct load_ctx *ctx);
void free_dkim(struct config *conf);

/* An EHLO argument: a domain name, or an address literal ([192.0.2.1], [IPv6:2001:db8::1]). */
bool helo_name_valid(const char *name);
/* ip_version: "any" 0, "ipv4" 4, "ipv6" 6; -1 for anything else. */
int ip_version_value(const char *text);
/* A mail address with a domain, "local@domain", without angle brackets (ASCII only). */
int mailbox_parse_why(const char *text, const char **why);

/* "25M", "1G", "4096" (the largest exact unit); durations: units_format_duration(). */
void format_size(uint64_t v, char *buf, size_t size);

/* ---- The numeric settings: kind and bounds, one table (schema.c) ---- */

enum setting_kind {
	SETTING_COUNT,    /* a plain decimal number */
	SETTING_SIZE,     /* parse_size(): "25M" */
	SETTING_DURATION, /* parse_duration_s(): "5m" */
};

struct setting {
	const char *section; /* NULL: top level */
	const char *name;
	enum setting_kind kind;
	long min, max;
	const char *zero; /* 0 is allowed even though min > 0, and means this ("no limit");
	                     NULL: 0 is held to min like any value */
	const char *why;  /* reason for the bounds, for the error message; may be NULL */
};

/* ---- For sections kept in files of their own (webhook.c), from schema.c; and
 * schema_report() below ---- */

/* The file and line libconfuse is at (NULL and 0 outside a load or for the defaults). */
void schema_locate(cfg_t *cfg, const char **file, int *line);
/* A value as messages echo it: printable, about 80 octets at most. */
const char *schema_shown(const char *value, char *buf, size_t size);
/* The callback of the numeric settings (their bounds are in the table of schema.c). */
int schema_on_number(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result);
/* A section title that names things in logs, events and metrics: 1 to 64 of [A-Za-z0-9-_.]. */
bool schema_title_valid(const char *title);

/* webhook "name" { } sections (webhook.c): their options, the check once one is read, the
 * copy into conf; free_webhooks() takes them back. */
extern cfg_opt_t webhook_opts[];
int on_webhook_end(cfg_t *cfg, cfg_opt_t *opt);
void copy_webhooks(cfg_t *cfg, struct config *conf);
void free_webhooks(struct config *conf);
/* digest.c: the fingerprints of the parsed file's top-level options (config_changes). */
void config_digest_build(struct config *conf, cfg_t *cfg);
void config_digest_free(struct config *conf);

/* ---- One load in progress (load.c) ---- */

struct where {
	char *file; /* NULL: not set in any file (the default applies) */
	int line;
	unsigned long order; /* when it was set, in the order of the text (0: never) */
};

struct seen_listener {
	char *title;
	struct sockaddr_storage ss;
	socklen_t len;
	struct where where;
};

struct seen_key {
	char *title; /* the dkim_key section's */
	char *where; /* "file:line" */
};

struct load_ctx {
	struct cfgtext *src; /* the file as read (source_load()); NULL for the defaults */
	char *errors;        /* "file:line: setting: problem" lines, '\n'-separated */
	size_t errors_len;
	unsigned nerrors;
	struct where *where; /* per entry of the numeric settings table */
	unsigned long order; /* the last where.order given */
	struct seen_listener *listeners;
	size_t nlisteners;
	struct seen_key *keys; /* where each dkim_key's key file is named */
	size_t nkeys;
	struct seen_key *certs; /* where each tls_certificate's file is named */
	size_t ncerts;
	char *users_where; /* where auth.users_file is set */
	/* Where egress settings are written, for the checks across sections (egress.c):
	 * title "source \"a\"", "pool \"p\".source \"a\"", "route \"x\".pool", ... */
	struct seen_key *egress;
	size_t negress;
	/* A reload (config_reload): the configuration running, whose VERP secrets stand in for
	 * files the server can no longer read. NULL at start. */
	const struct config *running;
};
/* schema.c: the load in progress (under the load lock), NULL outside one. */
struct load_ctx *schema_current(void);

void load_error_at(struct load_ctx *, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads path and what it includes into s (core's cfgtext_load(), problems reported into ctx);
 * -1 (reported) if path itself cannot be read. */
int source_load(struct cfgtext *s, const char *path, struct load_ctx *ctx);
/* True if the text opens a section named name ("delivery {"), at any depth. */
bool source_has_section(const struct cfgtext *s, const char *name);
/* delivery.enabled: 1 true, 0 false, -1 auto, -2 not a value. */
int enabled_value(const char *value);
/* The line of the text of the last "name =" (not "+="), outside quoted strings; 0 if none.
 * For what libconfuse gives no callback for, such as a list set to {}. */
int source_last_assignment(const struct cfgtext *s, const char *name);

/* ---- Schema (schema.c) ---- */

/* A libconfuse tree holding the embedded defaults, its callbacks reporting into ctx. Only
 * one may exist at a time (libconfuse's lexer is global): config_load() holds a lock. */
cfg_t *schema_new(struct load_ctx *ctx);
void schema_free(cfg_t *);
/* For value callbacks in files of their own (verp.c): reports at the line libconfuse is at
 * in cfg, "file:line: message", as the schema's own callbacks do. */
void schema_report(cfg_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The numeric settings table: its size, and the index of one (-1 if none). */
size_t setting_count(void);
int setting_index(const char *section, const char *name);

#endif
