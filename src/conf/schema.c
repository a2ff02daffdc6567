/* conf/schema.c - the settings libconfuse knows, their defaults and bounds, and the callbacks
 * that check each value while the file is parsed.
 *
 * Values are checked in libconfuse's value callbacks rather than after parsing, because only
 * then are the file and line known. A callback reports into the load in progress and always
 * lets parsing go on (with the default in place of the bad value), so one run reports every
 * bad value; only syntax errors and unknown names stop libconfuse itself.
 *
 * libconfuse parses the text that source.c prepared (include()s expanded, comments removed),
 * so its line numbers are lines of that text: locate() maps them back to a file and line.
 */

#include <arpa/inet.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/defaults.h"
#include "conf/internal.h"
#include "core/core.h"

/* The load in progress: callbacks get only libconfuse's arguments. One at a time (see
 * schema_new). */
static struct load_ctx *current;
static cfg_t *current_root;

struct load_ctx *
schema_current(void)
{
	return current;
}

/* Values are echoed in messages: printable, and short. */
static const char *
shown(const char *value, char *buf, size_t size)
{
	size_t o = 0;

	for (const char *p = value; *p != '\0' && o + 5 < size; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else {
			buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		}
		if (o >= 80 && p[1] != '\0') {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* ---- Numeric settings: kind and bounds ---- */

static const struct setting settings[] = {
    {"auth", "failures_max", SETTING_COUNT, 1, 1000, NULL, NULL},
    {"auth", "failure_window", SETTING_DURATION, 1, 7L * 24 * 3600, NULL, NULL},
    {"auth", "block_time", SETTING_DURATION, 1, 7L * 24 * 3600, NULL, NULL},
    {"dkim_key", "expire", SETTING_DURATION, LIM_DKIM_EXPIRE_MIN, 366L * 24 * 3600,
     "no x=", "shorter expires before retried mail is delivered"},
    {NULL, "threads", SETTING_COUNT, 0, LIM_THREADS_MAX, NULL,
     "0 = one per CPU; more than 64 loops cannot be fed by one spool writer"},
    {"spool", "max_size", SETTING_SIZE, LIM_SPOOL_MAX_SIZE_MIN, LONG_MAX, NULL,
     "the LMDB map size, the spool's capacity"},
    {"spool", "batch_max", SETTING_COUNT, 1, LIM_SPOOL_BATCH_MAX, NULL,
     "messages per group commit"},
    {"smtp", "max_sessions", SETTING_COUNT, 1, LIM_COUNT_MAX, NULL, NULL},
    {"smtp", "max_sessions_per_ip", SETTING_COUNT, 1, LIM_COUNT_MAX, NULL, NULL},
    {"smtp", "max_message_size", SETTING_SIZE, LIM_SMTP_MAX_MESSAGE_SIZE_MIN,
     LIM_SMTP_MAX_MESSAGE_SIZE_MAX, NULL, NULL},
    {"smtp", "max_recipients", SETTING_COUNT, 1, LIM_SMTP_MAX_RECIPIENTS_MAX, NULL,
     "RFC 5321 §4.5.3.1.8 asks for at least 100"},
    {"smtp", "max_errors", SETTING_COUNT, 1, LIM_SMTP_MAX_ERRORS_MAX, NULL, NULL},
    {"smtp", "command_line_max", SETTING_COUNT, LIM_SMTP_COMMAND_LINE_MIN,
     LIM_SMTP_COMMAND_LINE_MAX, NULL,
     "RFC 5321 §4.5.3.1.4: servers must accept 512-octet command lines"},
    {"smtp", "data_line_max", SETTING_COUNT, LIM_SMTP_DATA_LINE_MIN, LIM_SMTP_DATA_LINE_MAX,
     "no limit", "RFC 5321 §4.5.3.1.6: text lines of 1000 octets incl. CRLF are legal"},
    {"smtp", "command_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"smtp", "data_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "port", SETTING_COUNT, 1, 65535, NULL, NULL},
    {"delivery", "dns_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_DELIVERY_DNS_TIMEOUT_MAX,
     NULL, "a resolver silent for 5 minutes will not answer"},
    {"delivery", "retry_jitter", SETTING_COUNT, 0, LIM_DELIVERY_RETRY_JITTER_MAX, NULL,
     "percent; beyond 50 the schedule would lose its order"},
    {"delivery", "queue_lifetime", SETTING_DURATION, LIM_DELIVERY_QUEUE_LIFETIME_MIN,
     LIM_DELIVERY_QUEUE_LIFETIME_MAX, NULL, NULL},
    {"delivery", "max_connections", SETTING_COUNT, 1, LIM_DELIVERY_CONNECTIONS_MAX, NULL,
     "per destination"},
    {"delivery", "initial_connections", SETTING_COUNT, 1, LIM_DELIVERY_CONNECTIONS_MAX, NULL,
     "per destination"},
    {"delivery", "max_messages_per_connection", SETTING_COUNT, 1, LIM_COUNT_MAX, NULL, NULL},
    {"delivery", "max_recipients_per_transaction", SETTING_COUNT, 1, LIM_SMTP_MAX_RECIPIENTS_MAX,
     NULL, NULL},
    {"delivery", "dead_after", SETTING_COUNT, 1, LIM_DELIVERY_DEAD_AFTER_MAX, NULL,
     "failed connections in a row"},
    {"delivery", "dead_cooldown", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "connect_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "greeting_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL,
     NULL},
    {"delivery", "helo_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "mail_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "rcpt_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "data_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "data_block_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL,
     NULL},
    {"delivery", "dot_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "idle_timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_TIMEOUT_MAX, NULL, NULL},
    {"delivery", "dsn_return_max", SETTING_SIZE, LIM_SMTP_MAX_MESSAGE_SIZE_MIN,
     LIM_SMTP_MAX_MESSAGE_SIZE_MAX, "headers only", NULL},
    {"delivery", "max_connections_total", SETTING_COUNT, 1, LIM_DELIVERY_MAX_CONNECTIONS_TOTAL_MAX,
     NULL, "over all destinations; each is a descriptor and a local port"},
    {"delivery", "delay_notice_after", SETTING_DURATION, LIM_TIMEOUT_MIN,
     LIM_DELIVERY_QUEUE_LIFETIME_MAX, "off", NULL},
    {"delivery", "tls_failure_memory", SETTING_DURATION, LIM_TIMEOUT_MIN,
     LIM_DELIVERY_TLS_FAILURE_MEMORY_MAX, "STARTTLS tried on every connection", NULL},
    {"source", "weight", SETTING_COUNT, 1, LIM_POOL_WEIGHT_MAX, NULL,
     "a source's share of its pool; 0 would be a source never used: leave it out"},
    {"control", "max_request_size", SETTING_SIZE, LIM_CONTROL_MAX_REQUEST_SIZE_MIN,
     LIM_CONTROL_MAX_REQUEST_SIZE_MAX, NULL, "the largest request body, POST /api/v1/inject"},
    {"webhook", "batch_max", SETTING_COUNT, 1, LIM_WEBHOOK_BATCH_MAX, NULL, "records per request"},
    {"webhook", "batch_wait", SETTING_DURATION, 0, LIM_WEBHOOK_BATCH_WAIT_MAX, NULL,
     "0 sends at once"},
    {"webhook", "timeout", SETTING_DURATION, LIM_TIMEOUT_MIN, LIM_WEBHOOK_TIMEOUT_MAX, NULL, NULL},
    {"webhook", "retry_max", SETTING_DURATION, 1, LIM_WEBHOOK_RETRY_MAX_MAX, NULL,
     "the backoff starts at 1s"},
    {"webhook", "backlog_max", SETTING_SIZE, LIM_WEBHOOK_BACKLOG_MAX_MIN, LONG_MAX, NULL,
     "octets on disk"},
};

size_t
setting_count(void)
{
	return nitems(settings);
}

int
setting_index(const char *section, const char *name)
{
	for (size_t i = 0; i < nitems(settings); i++) {
		const struct setting *s = &settings[i];

		if (strcmp(s->name, name) != 0)
			continue;
		if ((s->section == NULL) != (section == NULL))
			continue;
		if (section != NULL && strcmp(s->section, section) != 0)
			continue;
		return (int)i;
	}
	return -1;
}

/* ---- Reporting ---- */

static bool
is_root(cfg_t *cfg)
{
	return cfg == NULL || cfg == current_root;
}

/* The setting's name as the operator would look for it: "threads", "smtp.max_errors",
 * "listener \"smtp\".address". */
static void
setting_path(cfg_t *cfg, const char *name, char *buf, size_t size)
{
	if (is_root(cfg))
		snprintf(buf, size, "%s", name);
	else if (cfg->title != NULL)
		snprintf(buf, size, "%s \"%s\".%s", cfg->name, cfg->title, name);
	else
		snprintf(buf, size, "%s.%s", cfg->name, name);
}

/* The file and line libconfuse is at (in a section, the section's counter is the one that
 * moves). */
static void
locate(cfg_t *cfg, const char **file, int *line)
{
	*file = NULL;
	*line = 0;
	if (current->src != NULL && cfg != NULL && cfg->line > 0)
		cfgtext_where(current->src, cfg->line, file, line);
}

static void report(cfg_t *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
report(cfg_t *cfg, const char *fmt, ...)
{
	char msg[1024];
	const char *file;
	int line;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	locate(cfg, &file, &line);
	load_error_at(current, file, line, "%s", msg);
}

void
schema_report(cfg_t *cfg, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (current != NULL)
		report(cfg, "%s", msg);
}

static void
note_where(cfg_t *cfg, int idx)
{
	struct where *w = &current->where[idx];
	const char *file;

	locate(cfg, &file, &w->line);
	free(w->file);
	w->file = file != NULL ? xstrdup(file) : NULL;
	w->order = ++current->order;
}

/* libconfuse's own messages, reworded to "setting: problem" with the setting's full name. The
 * argument of each is an option name. Messages not listed (syntax errors from the lexer) are
 * passed on as they are, after "file:line:". */
static const struct {
	const char *confuse, *ours;
} rewordings[] = {
    {"no such option '%s'", "%s: unknown setting"},
    {"missing equal sign after option '%s'", "%s: expected '=' after the name"},
    {"attempt to append to non-list option '%s'", "%s: '+=' works on lists only"},
    {"missing opening brace for section '%s'", "%s: expected '{' to open the section"},
    {"missing parenthesis for function '%s'", "%s: expected '(', as in include(\"file\")"},
    {"syntax error in call of function '%s'", "%s: syntax error in the argument list"},
    {"invalid integer value for option '%s'", "%s: not a number"},
    {"invalid boolean value for option '%s'", "%s: expected true or false"},
};

/* The section kind that holds a section titled title (for the duplicate-title message). */
static const char *
titled_section_name(cfg_t *cfg, const char *title)
{
	for (cfg_opt_t *o = cfg->opts; o->name != NULL; o++) {
		if (o->type != CFGT_SEC || !(o->flags & CFGF_TITLE))
			continue;
		for (unsigned i = 0; i < o->nvalues; i++) {
			const char *t = o->values[i]->section->title;

			if (t != NULL && strcmp(t, title) == 0)
				return o->name;
		}
	}
	return "section";
}

static void
on_confuse_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char path[512], msg[1024];

	if (current == NULL) /* not during a load: nothing to report into */
		return;
	if (strcmp(fmt, "found duplicate title '%s'") == 0) {
		const char *title = va_arg(ap, const char *);

		report(cfg, "%s \"%s\": defined twice (each needs its own title)",
		       titled_section_name(cfg, title), title);
		return;
	}
	if (strcmp(fmt, "missing title for section '%s'") == 0) {
		const char *name = va_arg(ap, const char *);

		report(cfg, "%s: needs a title, as in %s \"name\" { }", name, name);
		return;
	}
	for (size_t i = 0; i < nitems(rewordings); i++) {
		if (strcmp(fmt, rewordings[i].confuse) != 0)
			continue;
		setting_path(cfg, va_arg(ap, const char *), path, sizeof(path));
		snprintf(msg, sizeof(msg), rewordings[i].ours, path);
		report(cfg, "%s", msg);
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	report(cfg, "%s", msg);
}

/* ---- Value callbacks: report, keep the default, let parsing go on ---- */

static void
format_bound(const struct setting *s, long v, char *buf, size_t size)
{
	if (s->kind == SETTING_SIZE)
		format_size((uint64_t)v, buf, size);
	else if (s->kind == SETTING_DURATION)
		units_format_duration((uint64_t)v, buf, size);
	else
		snprintf(buf, size, "%ld", v);
}

static int
parse_count_why(const char *text, uint64_t *out, const char **why)
{
	uint64_t v = 0;
	const char *p = text;

	*why = "expected a whole number";
	if (*p == '\0')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - 9) / 10) {
			*why = "too large";
			return -1;
		}
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p != '\0')
		return -1;
	*out = v;
	return 0;
}

static int
on_number(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], lo[32], hi[32], v[128];
	const char *why;
	uint64_t num = 0;
	int idx, rc;

	*(long *)result = opt->def.number;
	if (current == NULL || value == NULL)
		return 0;
	idx = setting_index(is_root(cfg) ? NULL : cfg->name, opt->name);
	if (idx < 0)
		fatal("conf: setting %s has no bounds in the table", opt->name);
	const struct setting *s = &settings[idx];

	note_where(cfg, idx);
	setting_path(cfg, opt->name, path, sizeof(path));
	switch (s->kind) {
	case SETTING_SIZE:
		rc = parse_size_why(value, &num, &why);
		break;
	case SETTING_DURATION:
		rc = parse_duration_why(value, &num, &why);
		break;
	default:
		rc = parse_count_why(value, &num, &why);
		break;
	}
	if (rc != 0) {
		report(cfg, "%s: \"%s\": %s", path, shown(value, v, sizeof(v)), why);
		return 0;
	}
	if (num == 0 && s->zero != NULL) {
		*(long *)result = 0;
		return 0;
	}
	if (num < (uint64_t)s->min || num > (uint64_t)s->max) {
		format_bound(s, s->min, lo, sizeof(lo));
		format_bound(s, s->max, hi, sizeof(hi));
		if (s->max == LONG_MAX && num > (uint64_t)s->max)
			report(cfg, "%s: \"%s\": too large", path, shown(value, v, sizeof(v)));
		else if (s->max == LONG_MAX)
			report(cfg, "%s: \"%s\": must be at least %s%s%s%s", path,
			       shown(value, v, sizeof(v)), lo, s->why ? " (" : "",
			       s->why ? s->why : "", s->why ? ")" : "");
		else
			report(cfg, "%s: \"%s\": must be %s%s%sfrom %s to %s%s%s%s", path,
			       shown(value, v, sizeof(v)), s->zero ? "0 (" : "",
			       s->zero ? s->zero : "", s->zero ? ") or " : "", lo, hi,
			       s->why ? " (" : "", s->why ? s->why : "", s->why ? ")" : "");
		return 0;
	}
	*(long *)result = (long)num;
	return 0;
}

static int
on_bool(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	int b = cfg_parse_boolean(value);

	*(int *)result = opt->def.boolean;
	if (b < 0) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": expected true or false", path,
		       shown(value ? value : "", v, sizeof(v)));
		return 0;
	}
	*(int *)result = b;
	return 0;
}

static int
on_hostname(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];

	*(const char **)result = value;
	if (!hostname_valid(value))
		report(cfg,
		       "hostname: \"%s\": not a valid domain name (letters, digits, hyphens and "
		       "dots; labels of at most 63 octets, 253 in all)",
		       shown(value, v, sizeof(v)));
	return 0;
}

static int
on_log_level(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	static const char *const levels[] = {"debug", "info", "warn", "error"};
	char v[128];

	*(const char **)result = value;
	for (size_t i = 0; i < nitems(levels); i++) {
		if (strcmp(value, levels[i]) == 0)
			return 0;
	}
	report(cfg, "log_level: \"%s\": expected debug, info, warn or error",
	       shown(value, v, sizeof(v)));
	return 0;
}

static int
on_nonempty(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512];

	*(const char **)result = value;
	if (*value == '\0') {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: must not be empty", path);
	}
	return 0;
}

static int
on_relay_network(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct netmask m;
	const char *why;
	char v[128];

	*(const char **)result = value;
	if (netmask_parse_why(value, &m, &why) != 0)
		report(cfg, "relay_networks: \"%s\": %s", shown(value, v, sizeof(v)), why);
	return 0;
}

static int
on_listener_address(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why, *title = cfg->title != NULL ? cfg->title : "";
	struct seen_listener *l = NULL;
	const char *file;
	char v[128];

	*(const char **)result = value;
	if (listen_address_parse(value, &ss, &len, &why) != 0) {
		report(cfg, "listener \"%s\".address: \"%s\": %s", title,
		       shown(value, v, sizeof(v)), why);
		return 0;
	}
	for (size_t i = 0; i < current->nlisteners; i++) {
		struct seen_listener *o = &current->listeners[i];

		if (strcmp(o->title, title) == 0) {
			l = o; /* the same listener's address set again: replaces */
			continue;
		}
		if (o->len == len && memcmp(&o->ss, &ss, len) == 0) {
			char there[600];
			int line;

			locate(cfg, &file, &line);
			if (o->where.file != NULL && file != NULL &&
			    strcmp(o->where.file, file) == 0)
				snprintf(there, sizeof(there), "line %d", o->where.line);
			else
				snprintf(there, sizeof(there), "%s:%d",
				         o->where.file ? o->where.file : "?", o->where.line);
			report(
			    cfg,
			    "listener \"%s\".address: \"%s\": already used by listener \"%s\" (%s)",
			    title, shown(value, v, sizeof(v)), o->title, there);
			return 0;
		}
	}
	if (l == NULL) {
		current->listeners = xrealloc(current->listeners, (current->nlisteners + 1) *
		                                                      sizeof(*current->listeners));
		l = &current->listeners[current->nlisteners++];
		memset(l, 0, sizeof(*l));
		l->title = xstrdup(title);
	}
	free(l->where.file);
	l->ss = ss;
	l->len = len;
	locate(cfg, &file, &l->where.line);
	l->where.file = file != NULL ? xstrdup(file) : NULL;
	return 0;
}

/* Titles name listeners in logs, events and metrics: keep them to a safe alphabet. */
static bool
title_valid(const char *t)
{
	size_t n = strlen(t);

	return n > 0 && n <= 64 &&
	       strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* After a listener section is read (cfg is the top level, the section the last one). */
static int
on_listener_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);

	if (sec == NULL)
		return 0;
	if (!title_valid(sec->title))
		report(
		    cfg,
		    "listener \"%s\": the title must be 1 to 64 letters, digits, '-', '_' or '.'",
		    sec->title);
	if (cfg_getstr(sec, "address") == NULL)
		report(cfg, "listener \"%s\".address: required, as in address = \"127.0.0.1:2525\"",
		       sec->title);
	return 0;
}

/* ---- delivery { } and route "domain" { } ---- */

/* smarthost and route hosts: syntax only (names are resolved when mail goes out). */
static int
on_delivery_host(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	const char *why;

	*(const char **)result = value;
	if (host_port_parse_why(value, &why) != 0) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": %s", path, shown(value, v, sizeof(v)), why);
	}
	return 0;
}

static int
on_forwarder(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];
	const char *why;

	*(const char **)result = value;
	if (forwarder_parse_why(value, &why) != 0)
		report(cfg, "delivery.dns_forwarders: \"%s\": %s", shown(value, v, sizeof(v)), why);
	return 0;
}

static int
on_ip_version(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];

	*(const char **)result = value;
	if (ip_version_value(value) < 0)
		report(cfg, "delivery.ip_version: \"%s\": expected any, ipv4 or ipv6",
		       shown(value, v, sizeof(v)));
	return 0;
}

static int
on_enabled(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];

	*(const char **)result = value;
	if (enabled_value(value) < -1)
		report(cfg, "delivery.enabled: \"%s\": expected auto, true or false",
		       shown(value, v, sizeof(v)));
	return 0;
}

static int
on_helo_name(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];

	*(const char **)result = value;
	if (!helo_name_valid(value))
		report(cfg,
		       "delivery.helo_name: \"%s\": not a valid domain name or address literal "
		       "(as in mta.example.com, [192.0.2.1], [IPv6:2001:db8::1])",
		       shown(value, v, sizeof(v)));
	return 0;
}

static int
on_postmaster(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];
	const char *why;

	*(const char **)result = value;
	if (mailbox_parse_why(value, &why) != 0)
		report(cfg, "delivery.postmaster: \"%s\": %s", shown(value, v, sizeof(v)), why);
	return 0;
}

/* One interval of the retry list. The count is checked here too, at the value that is one too
 * many; an empty list ({}) gives no callback at all and is checked after parsing (load.c). */
static int
on_retry(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128], hi[32];
	const char *why;
	uint64_t s;

	*(const char **)result = value;
	if (current == NULL)
		return 0;
	/* libconfuse has added the value's slot already: the size counts this one. */
	if (cfg_opt_size(opt) == LIM_DELIVERY_RETRY_COUNT + 1)
		report(cfg,
		       "delivery.retry: \"%s\": more than %d intervals (the last one repeats; a "
		       "longer list is a typo, not a policy)",
		       shown(value, v, sizeof(v)), LIM_DELIVERY_RETRY_COUNT);
	if (parse_duration_why(value, &s, &why) != 0) {
		report(cfg, "delivery.retry: \"%s\": %s", shown(value, v, sizeof(v)), why);
	} else if (s < 1 || s > LIM_DELIVERY_RETRY_INTERVAL_MAX) {
		units_format_duration(LIM_DELIVERY_RETRY_INTERVAL_MAX, hi, sizeof(hi));
		report(cfg, "delivery.retry: \"%s\": each interval must be from 1s to %s",
		       shown(value, v, sizeof(v)), hi);
	}
	return 0;
}

/* After a route section is read (cfg is the top level, the section the last one). */
static int
on_route_end(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned n = cfg_opt_size(opt);
	cfg_t *sec = n > 0 ? cfg_opt_getnsec(opt, n - 1) : NULL;
	char v[128];

	if (sec == NULL)
		return 0;
	shown(sec->title, v, sizeof(v));
	if (!hostname_valid(sec->title)) {
		report(cfg,
		       "route \"%s\": the title must be a domain name, as in route \"example.com\" "
		       "{ }",
		       v);
		return 0;
	}
	/* libconfuse refuses a title seen before only when it is written the same way. */
	for (unsigned i = 0; i + 1 < n; i++) {
		const char *t = cfg_opt_getnsec(opt, i)->title;

		if (strcasecmp(t, sec->title) == 0) {
			char first[128];

			report(cfg,
			       "route \"%s\": defined twice (as route \"%s\" before; domains are "
			       "case-insensitive): put all its hosts in one",
			       v, shown(t, first, sizeof(first)));
			return 0;
		}
	}
	if (cfg_size(sec, "hosts") == 0)
		report(cfg,
		       "route \"%s\".hosts: at least one host is required, as in hosts = { "
		       "\"mx.example.com\", \"192.0.2.25:2525\" }",
		       v);
	return 0;
}

/* ---- Outbound TLS: delivery.tls*, route "x".tls, domain "x" { } ---- */

static int
on_tls_policy(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (tls_policy_value(value) == TLS_POLICY_UNSET) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg,
		       "%s: \"%s\": expected disabled, opportunistic, required or required-verify",
		       path, shown(value, v, sizeof(v)));
	}
	return 0;
}

/* After a domain section is read (cfg is the top level, the section the last one). */
static int
on_domain_end(cfg_t *cfg, cfg_opt_t *opt)
{
	unsigned n = cfg_opt_size(opt);
	cfg_t *sec = n > 0 ? cfg_opt_getnsec(opt, n - 1) : NULL;
	char v[128], first[128];

	if (sec == NULL)
		return 0;
	shown(sec->title, v, sizeof(v));
	if (!hostname_valid(sec->title)) {
		report(cfg,
		       "domain \"%s\": the title must be a domain name, as in domain "
		       "\"example.com\" { }",
		       v);
		return 0;
	}
	/* libconfuse refuses a title seen before only when it is written the same way. */
	for (unsigned i = 0; i + 1 < n; i++) {
		const char *t = cfg_opt_getnsec(opt, i)->title;

		if (strcasecmp(t, sec->title) == 0) {
			report(cfg,
			       "domain \"%s\": defined twice (as domain \"%s\" before; domains are "
			       "case-insensitive): put all its settings in one",
			       v, shown(t, first, sizeof(first)));
			return 0;
		}
	}
	return 0;
}

/* ---- Egress: source "name" { }, pool "name" { source "a" { weight } }, the pool settings ----
 *
 * What refers to another section (a pool's sources, delivery/route/domain pool) is checked
 * once the whole file is read (egress.c), since a pool may come before its sources: here
 * only where each is written is remembered. */

static void
remember_egress(cfg_t *cfg, const char *key)
{
	const char *file;
	int line;

	if (current == NULL)
		return;
	locate(cfg, &file, &line);
	current->egress =
	    xrealloc(current->egress, (current->negress + 1) * sizeof(*current->egress));
	current->egress[current->negress].title = xstrdup(key);
	current->egress[current->negress].where =
	    file != NULL ? xasprintf("%s:%d", file, line) : xasprintf("line %d", line);
	current->negress++;
}

static int
on_source_address(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128], key[256];
	struct in6_addr a6;
	struct in_addr a4;

	*(const char **)result = value;
	if (current == NULL || cfg->title == NULL)
		return 0;
	snprintf(key, sizeof(key), "source \"%s\"", cfg->title);
	remember_egress(cfg, key);
	if (inet_pton(AF_INET, value, &a4) != 1 && inet_pton(AF_INET6, value, &a6) != 1)
		report(cfg,
		       "source \"%s\".address: \"%s\": not an IP address (a source is a local "
		       "IPv4 or IPv6 address to bind, as in address = \"192.0.2.10\")",
		       cfg->title, shown(value, v, sizeof(v)));
	return 0;
}

static int
on_source_ehlo(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];

	*(const char **)result = value;
	if (current != NULL && !helo_name_valid(value))
		report(cfg,
		       "source \"%s\".ehlo: \"%s\": not a valid domain name or address literal "
		       "(as in ehlo = \"mta2.example.com\")",
		       cfg->title != NULL ? cfg->title : "", shown(value, v, sizeof(v)));
	return 0;
}

/* After a source section is read (cfg is the top level, the section the last one). */
static int
on_source_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);

	if (sec == NULL)
		return 0;
	if (!title_valid(sec->title))
		report(cfg,
		       "source \"%s\": the title must be 1 to 64 letters, digits, '-', '_' or '.'",
		       sec->title);
	if (cfg_getstr(sec, "address") == NULL)
		report(cfg, "source \"%s\".address: required, as in address = \"192.0.2.10\"",
		       sec->title);
	return 0;
}

/* After a source is read inside a pool (cfg is the pool section). */
static int
on_pool_member_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	char key[256];

	if (sec == NULL || cfg->title == NULL)
		return 0;
	snprintf(key, sizeof(key), "pool \"%s\".source \"%s\"", cfg->title, sec->title);
	remember_egress(cfg, key);
	return 0;
}

/* After a pool section is read (cfg is the top level, the section the last one). */
static int
on_pool_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);

	if (sec == NULL)
		return 0;
	if (!title_valid(sec->title))
		report(cfg,
		       "pool \"%s\": the title must be 1 to 64 letters, digits, '-', '_' or '.'",
		       sec->title);
	if (cfg_size(sec, "source") == 0)
		report(cfg,
		       "pool \"%s\": no sources: name at least one, as in pool \"%s\" { source "
		       "\"a\" { weight = 1 } }",
		       sec->title, sec->title);
	return 0;
}

/* delivery.pool, route "x".pool, domain "x".pool: the pool is looked up in egress.c. */
static int
on_pool_ref(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512];

	on_nonempty(cfg, opt, value, result);
	setting_path(cfg, opt->name, path, sizeof(path));
	remember_egress(cfg, path);
	return 0;
}

/* ---- tls { }, tls_certificate "name" { }, auth { } and the listener's role ---- */

/* Where a file is named, for the errors found when it is read after the load. */
static void
remember_where(cfg_t *cfg, struct seen_key **list, size_t *n)
{
	const char *file;
	int line;

	if (current == NULL || cfg->title == NULL)
		return;
	locate(cfg, &file, &line);
	*list = xrealloc(*list, (*n + 1) * sizeof(**list));
	(*list)[*n].title = xstrdup(cfg->title);
	(*list)[*n].where =
	    file != NULL ? xasprintf("%s:%d", file, line) : xasprintf("line %d", line);
	(*n)++;
}

static int
on_certificate_file(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	on_nonempty(cfg, opt, value, result);
	if (current != NULL && strcmp(opt->name, "certificate") == 0)
		remember_where(cfg, &current->certs, &current->ncerts);
	return 0;
}

static int
on_users_file(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	const char *file;
	int line;

	*(const char **)result = value;
	if (current == NULL)
		return 0;
	locate(cfg, &file, &line);
	free(current->users_where);
	current->users_where =
	    file != NULL ? xasprintf("%s:%d", file, line) : xasprintf("line %d", line);
	return 0;
}

static int
on_rate(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	struct rate_conf r;
	const char *why;

	*(const char **)result = value;
	if (rate_parse_why(value, &r, &why) != 0) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": %s", path, shown(value, v, sizeof(v)), why);
	}
	return 0;
}

static int
on_role(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (role_value(value) < 0) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": expected mx, submission, submissions or bounce", path,
		       shown(value, v, sizeof(v)));
	}
	return 0;
}

/* tls.min_version and delivery.tls_min_version. */
static int
on_tls_version(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (tls_version_value(value) == 0) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg,
		       "%s: \"%s\": expected TLSv1.2 or TLSv1.3 (older versions are deprecated, "
		       "RFC 8996)",
		       path, shown(value, v, sizeof(v)));
	}
	return 0;
}

static int
on_control_address(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *why;
	char v[128];

	*(const char **)result = value;
	if (value[0] != '\0' && listen_address_parse(value, &ss, &len, &why) != 0)
		report(cfg, "control.address: \"%s\": %s", shown(value, v, sizeof(v)), why);
	return 0;
}

/* After a tls_certificate section is read (cfg is the top level, the section the last one). */
static int
on_tls_certificate_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);

	if (sec == NULL)
		return 0;
	if (!title_valid(sec->title))
		report(
		    cfg,
		    "tls_certificate \"%s\": the title must be 1 to 64 letters, digits, '-', '_' "
		    "or '.'",
		    sec->title);
	if (cfg_getstr(sec, "certificate") == NULL)
		report(cfg,
		       "tls_certificate \"%s\".certificate: required, as in certificate = "
		       "\"/etc/drover/tls/mta.example.com.pem\"",
		       sec->title);
	if (cfg_getstr(sec, "key") == NULL)
		report(cfg,
		       "tls_certificate \"%s\".key: required, as in key = "
		       "\"/etc/drover/tls/mta.example.com.key\"",
		       sec->title);
	return 0;
}

/* ---- dkim { }, dkim_key "name" { } and the listener's authentication settings ---- */

/* A selector: DNS labels of letters, digits, '-' and '_' (RFC 6376 §3.1). */
static bool
selector_valid(const char *s)
{
	size_t label = 0, n = strlen(s);

	if (n == 0 || n > 63 || s[0] == '.' || s[n - 1] == '.')
		return false;
	for (; *s != '\0'; s++) {
		if (*s == '.') {
			if (label == 0)
				return false;
			label = 0;
			continue;
		}
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
		           *s) == NULL)
			return false;
		label++;
	}
	return true;
}

static int
on_dkim_domain(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (!hostname_valid(value)) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": not a domain name, as in example.com", path,
		       shown(value, v, sizeof(v)));
	}
	return 0;
}

static int
on_dkim_selector(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (!selector_valid(value)) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg,
		       "%s: \"%s\": a selector is one or more DNS labels of letters, digits, '-' "
		       "and '_', as in s2026",
		       path, shown(value, v, sizeof(v)));
	}
	return 0;
}

/* Where the key file is named, for the errors found when it is read after the load. */
static int
on_dkim_key_file(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	on_nonempty(cfg, opt, value, result);
	if (current != NULL)
		remember_where(cfg, &current->keys, &current->nkeys);
	return 0;
}

static int
on_sign_for(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (strcmp(value, "*") != 0 && !hostname_valid(value)) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg,
		       "%s: \"%s\": expected a From domain (it covers its subdomains) or \"*\" for "
		       "every message",
		       path, shown(value, v, sizeof(v)));
	}
	return 0;
}

static int
on_header_name(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	size_t n = strlen(value);
	bool ok = n > 0 && n <= 64;

	*(const char **)result = value;
	/* RFC 5322 §3.6.8 field names: printable ASCII but ':'. */
	for (const char *p = value; ok && *p != '\0'; p++)
		ok = *p > 32 && *p < 127 && *p != ':';
	if (!ok) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": not a header field name, as in \"List-Unsubscribe\"", path,
		       shown(value, v, sizeof(v)));
	}
	return 0;
}

static int
on_canonicalization(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	bool h, b;

	*(const char **)result = value;
	if (canonicalization_parse(value, &h, &b) != 0) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg,
		       "%s: \"%s\": expected header/body, each simple or relaxed, as in "
		       "relaxed/relaxed",
		       path, shown(value, v, sizeof(v)));
	}
	return 0;
}

static int
on_key_error(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];

	*(const char **)result = value;
	if (key_error_policy_value(value) < 0)
		report(cfg, "dkim.on_key_error: \"%s\": expected defer or unsigned",
		       shown(value, v, sizeof(v)));
	return 0;
}

static int
on_verify(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (verify_value(value) == 0) {
		setting_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": expected spf, dkim or dmarc", path,
		       shown(value, v, sizeof(v)));
	}
	return 0;
}

/* After a dkim_key section is read (cfg is the top level, the section the last one). */
static int
on_dkim_key_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	static const char *const required[][2] = {
	    {"domain", "domain = \"example.com\""},
	    {"selector", "selector = \"s2026\""},
	    {"key", "key = \"/etc/drover/dkim/example.com.s2026.pem\""},
	};

	if (sec == NULL)
		return 0;
	if (!title_valid(sec->title))
		report(
		    cfg,
		    "dkim_key \"%s\": the title must be 1 to 64 letters, digits, '-', '_' or '.'",
		    sec->title);
	for (size_t i = 0; i < nitems(required); i++)
		if (cfg_getstr(sec, required[i][0]) == NULL)
			report(cfg, "dkim_key \"%s\".%s: required, as in %s", sec->title,
			       required[i][0], required[i][1]);
	return 0;
}

/* ---- For the sections kept in files of their own (internal.h) ---- */

void
schema_locate(cfg_t *cfg, const char **file, int *line)
{
	*file = NULL;
	*line = 0;
	if (current != NULL)
		locate(cfg, file, line);
}

const char *
schema_shown(const char *value, char *buf, size_t size)
{
	return shown(value, buf, size);
}

int
schema_on_number(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	return on_number(cfg, opt, value, result);
}

bool
schema_title_valid(const char *title)
{
	return title_valid(title);
}

/* ---- The schema ---- */

static cfg_opt_t spool_opts[] = {
    CFG_STR_CB("directory", DEF_SPOOL_DIRECTORY, CFGF_NONE, on_nonempty),
    CFG_INT_CB("max_size", DEF_SPOOL_MAX_SIZE, CFGF_NONE, on_number),
    CFG_INT_CB("batch_max", DEF_SPOOL_BATCH_MAX, CFGF_NONE, on_number),
    CFG_END(),
};

static cfg_opt_t listener_opts[] = {
    CFG_STR_CB("address", NULL, CFGF_NODEFAULT, on_listener_address),
    CFG_STR_CB("role", DEF_LISTENER_ROLE, CFGF_NONE, on_role),
    CFG_BOOL_CB("starttls", DEF_LISTENER_STARTTLS ? cfg_true : cfg_false, CFGF_NONE, on_bool),
    CFG_BOOL_CB("auth_without_tls", DEF_LISTENER_AUTH_WITHOUT_TLS ? cfg_true : cfg_false, CFGF_NONE,
                on_bool),
    CFG_BOOL_CB("dkim_sign", DEF_LISTENER_DKIM_SIGN ? cfg_true : cfg_false, CFGF_NONE, on_bool),
    CFG_STR_LIST_CB("verify", DEF_LISTENER_VERIFY, CFGF_NONE, on_verify),
    CFG_END(),
};

static cfg_opt_t tls_opts[] = {
    CFG_STR_CB("min_version", DEF_TLS_MIN_VERSION, CFGF_NONE, on_tls_version),
    CFG_STR("ciphers", "", CFGF_NONE),
    CFG_END(),
};

static cfg_opt_t tls_certificate_opts[] = {
    CFG_STR_CB("certificate", NULL, CFGF_NODEFAULT, on_certificate_file),
    CFG_STR_CB("key", NULL, CFGF_NODEFAULT, on_certificate_file),
    CFG_END(),
};

static int
on_at_reception(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char v[128];

	*(const char **)result = value;
	if (strcmp(value, "refuse") != 0 && strcmp(value, "drop") != 0 && strcmp(value, "off") != 0)
		report(cfg, "suppression.at_reception: \"%s\": expected refuse, drop or off",
		       shown(value, v, sizeof(v)));
	return 0;
}

static cfg_opt_t suppression_opts[] = {
    CFG_STR("directory", "", CFGF_NONE),
    CFG_STR_CB("at_reception", DEF_SUPPRESSION_AT_RECEPTION, CFGF_NONE, on_at_reception),
    CFG_END(),
};

static cfg_opt_t control_opts[] = {
    CFG_STR_CB("address", DEF_CONTROL_ADDRESS, CFGF_NONE, on_control_address),
    CFG_STR("token", "", CFGF_NONE),
    CFG_INT_CB("max_request_size", DEF_CONTROL_MAX_REQUEST_SIZE, CFGF_NONE, on_number),
    CFG_END(),
};

static cfg_opt_t auth_opts[] = {
    CFG_STR_CB("users_file", "", CFGF_NONE, on_users_file),
    CFG_INT_CB("failures_max", DEF_AUTH_FAILURES_MAX, CFGF_NONE, on_number),
    CFG_INT_CB("failure_window", DEF_AUTH_FAILURE_WINDOW, CFGF_NONE, on_number),
    CFG_INT_CB("block_time", DEF_AUTH_BLOCK_TIME, CFGF_NONE, on_number),
    CFG_STR_CB("user_rate", DEF_RATE, CFGF_NONE, on_rate),
    CFG_STR_CB("client_rate", DEF_RATE, CFGF_NONE, on_rate),
    CFG_END(),
};

static cfg_opt_t dkim_opts[] = {
    CFG_STR_CB("on_key_error", DEF_DKIM_ON_KEY_ERROR, CFGF_NONE, on_key_error),
    CFG_END(),
};

static cfg_opt_t dkim_key_opts[] = {
    CFG_STR_CB("domain", NULL, CFGF_NODEFAULT, on_dkim_domain),
    CFG_STR_CB("selector", NULL, CFGF_NODEFAULT, on_dkim_selector),
    CFG_STR_CB("key", NULL, CFGF_NODEFAULT, on_dkim_key_file),
    CFG_STR_LIST_CB("sign_for", NULL, CFGF_NONE, on_sign_for),
    CFG_BOOL_CB("fallback", cfg_false, CFGF_NONE, on_bool),
    CFG_STR_CB("canonicalization", DEF_DKIM_CANONICALIZATION, CFGF_NONE, on_canonicalization),
    CFG_STR_LIST_CB("headers", NULL, CFGF_NONE, on_header_name),
    CFG_INT_CB("expire", DEF_DKIM_EXPIRE, CFGF_NONE, on_number),
    CFG_END(),
};

static cfg_opt_t smtp_opts[] = {
    CFG_INT_CB("max_sessions", DEF_SMTP_MAX_SESSIONS, CFGF_NONE, on_number),
    CFG_INT_CB("max_sessions_per_ip", DEF_SMTP_MAX_SESSIONS_PER_IP, CFGF_NONE, on_number),
    CFG_INT_CB("max_message_size", DEF_SMTP_MAX_MESSAGE_SIZE, CFGF_NONE, on_number),
    CFG_INT_CB("max_recipients", DEF_SMTP_MAX_RECIPIENTS, CFGF_NONE, on_number),
    CFG_INT_CB("max_errors", DEF_SMTP_MAX_ERRORS, CFGF_NONE, on_number),
    CFG_INT_CB("command_line_max", DEF_SMTP_COMMAND_LINE_MAX, CFGF_NONE, on_number),
    CFG_INT_CB("data_line_max", DEF_SMTP_DATA_LINE_MAX, CFGF_NONE, on_number),
    CFG_INT_CB("command_timeout", DEF_SMTP_COMMAND_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("data_timeout", DEF_SMTP_DATA_TIMEOUT, CFGF_NONE, on_number),
    CFG_BOOL_CB("reject_8bit_without_8bitmime",
                DEF_SMTP_REJECT_8BIT_WITHOUT_8BITMIME ? cfg_true : cfg_false, CFGF_NONE, on_bool),
    CFG_END(),
};

static cfg_opt_t delivery_opts[] = {
    CFG_STR_CB("enabled", DEF_DELIVERY_ENABLED, CFGF_NONE, on_enabled),
    CFG_STR_CB("helo_name", NULL, CFGF_NODEFAULT, on_helo_name),
    CFG_INT_CB("port", DEF_DELIVERY_PORT, CFGF_NONE, on_number),
    CFG_STR_LIST_CB("smarthost", NULL, CFGF_NONE, on_delivery_host),
    CFG_STR_LIST_CB("dns_forwarders", NULL, CFGF_NONE, on_forwarder),
    CFG_INT_CB("dns_timeout", DEF_DELIVERY_DNS_TIMEOUT, CFGF_NONE, on_number),
    CFG_STR_CB("ip_version", DEF_DELIVERY_IP_VERSION, CFGF_NONE, on_ip_version),
    CFG_STR_LIST_CB("retry", DEF_DELIVERY_RETRY, CFGF_NONE, on_retry),
    CFG_INT_CB("retry_jitter", DEF_DELIVERY_RETRY_JITTER, CFGF_NONE, on_number),
    CFG_INT_CB("queue_lifetime", DEF_DELIVERY_QUEUE_LIFETIME, CFGF_NONE, on_number),
    CFG_INT_CB("max_connections", DEF_DELIVERY_MAX_CONNECTIONS, CFGF_NONE, on_number),
    CFG_INT_CB("initial_connections", DEF_DELIVERY_INITIAL_CONNECTIONS, CFGF_NONE, on_number),
    CFG_INT_CB("max_messages_per_connection", DEF_DELIVERY_MAX_MESSAGES_PER_CONNECTION, CFGF_NONE,
               on_number),
    CFG_INT_CB("max_recipients_per_transaction", DEF_DELIVERY_MAX_RECIPIENTS_PER_TRANSACTION,
               CFGF_NONE, on_number),
    CFG_INT_CB("dead_after", DEF_DELIVERY_DEAD_AFTER, CFGF_NONE, on_number),
    CFG_INT_CB("dead_cooldown", DEF_DELIVERY_DEAD_COOLDOWN, CFGF_NONE, on_number),
    CFG_INT_CB("connect_timeout", DEF_DELIVERY_CONNECT_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("greeting_timeout", DEF_DELIVERY_GREETING_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("helo_timeout", DEF_DELIVERY_HELO_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("mail_timeout", DEF_DELIVERY_MAIL_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("rcpt_timeout", DEF_DELIVERY_RCPT_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("data_timeout", DEF_DELIVERY_DATA_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("data_block_timeout", DEF_DELIVERY_DATA_BLOCK_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("dot_timeout", DEF_DELIVERY_DOT_TIMEOUT, CFGF_NONE, on_number),
    CFG_INT_CB("idle_timeout", DEF_DELIVERY_IDLE_TIMEOUT, CFGF_NONE, on_number),
    CFG_STR("bounce_rules", "", CFGF_NONE),
    CFG_STR("shaping", "", CFGF_NONE),
    CFG_STR_CB("postmaster", NULL, CFGF_NODEFAULT, on_postmaster),
    CFG_INT_CB("dsn_return_max", DEF_DELIVERY_DSN_RETURN_MAX, CFGF_NONE, on_number),
    CFG_INT_CB("max_connections_total", DEF_DELIVERY_MAX_CONNECTIONS_TOTAL, CFGF_NONE, on_number),
    CFG_INT_CB("delay_notice_after", DEF_DELIVERY_DELAY_NOTICE_AFTER, CFGF_NONE, on_number),
    CFG_STR_CB("tls", DEF_DELIVERY_TLS, CFGF_NONE, on_tls_policy),
    CFG_STR_CB("tls_ca_file", NULL, CFGF_NODEFAULT, on_nonempty),
    CFG_STR_CB("tls_min_version", DEF_DELIVERY_TLS_MIN_VERSION, CFGF_NONE, on_tls_version),
    CFG_INT_CB("tls_failure_memory", DEF_DELIVERY_TLS_FAILURE_MEMORY, CFGF_NONE, on_number),
    CFG_STR_CB("pool", NULL, CFGF_NODEFAULT, on_pool_ref),
    CFG_END(),
};

static cfg_opt_t route_opts[] = {
    CFG_STR_LIST_CB("hosts", NULL, CFGF_NONE, on_delivery_host),
    CFG_STR_CB("tls", NULL, CFGF_NODEFAULT, on_tls_policy),
    CFG_STR_CB("pool", NULL, CFGF_NODEFAULT, on_pool_ref),
    CFG_END(),
};

/* Settings for one destination domain; shaping will join tls here. */
static cfg_opt_t domain_opts[] = {
    CFG_STR_CB("tls", NULL, CFGF_NODEFAULT, on_tls_policy),
    CFG_STR_CB("pool", NULL, CFGF_NODEFAULT, on_pool_ref),
    CFG_END(),
};

static cfg_opt_t source_opts[] = {
    CFG_STR_CB("address", NULL, CFGF_NODEFAULT, on_source_address),
    CFG_STR_CB("ehlo", NULL, CFGF_NODEFAULT, on_source_ehlo),
    CFG_END(),
};

static cfg_opt_t pool_member_opts[] = {
    CFG_INT_CB("weight", DEF_POOL_WEIGHT, CFGF_NONE, on_number),
    CFG_END(),
};

static cfg_opt_t pool_opts[] = {
    CFG_SEC("source", pool_member_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_END(),
};

static cfg_opt_t root_opts[] = {
    CFG_STR_CB("hostname", NULL, CFGF_NODEFAULT, on_hostname),
    CFG_STR("user", DEF_USER, CFGF_NONE),
    CFG_INT_CB("threads", DEF_THREADS, CFGF_NONE, on_number),
    CFG_STR_CB("log_level", DEF_LOG_LEVEL, CFGF_NONE, on_log_level),
    CFG_STR("event_log", DEF_EVENT_LOG, CFGF_NONE),
    CFG_STR_LIST_CB("relay_networks", DEF_RELAY_NETWORKS, CFGF_NONE, on_relay_network),
    CFG_SEC("spool", spool_opts, CFGF_NONE),
    CFG_SEC("listener", listener_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("smtp", smtp_opts, CFGF_NONE),
    CFG_SEC("delivery", delivery_opts, CFGF_NONE),
    CFG_SEC("route", route_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("domain", domain_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("source", source_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("pool", pool_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("stream", routing_stream_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("tenant", routing_tenant_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("classification", routing_classification_opts, CFGF_NONE),
    CFG_SEC("tls", tls_opts, CFGF_NONE),
    CFG_SEC("tls_certificate", tls_certificate_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("auth", auth_opts, CFGF_NONE),
    CFG_SEC("control", control_opts, CFGF_NONE),
    CFG_SEC("suppression", suppression_opts, CFGF_NONE),
    CFG_SEC("verp", verp_opts, CFGF_NONE),
    CFG_SEC("dkim", dkim_opts, CFGF_NONE),
    CFG_SEC("dkim_key", dkim_key_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_SEC("webhook", webhook_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_END(),
};

cfg_t *
schema_new(struct load_ctx *ctx)
{
	cfg_t *cfg;

	current = ctx;
	current_root = NULL;
	cfg = cfg_init(root_opts, CFGF_NONE);
	if (cfg == NULL)
		fatal("conf: cfg_init: out of memory");
	current_root = cfg;
	cfg_set_error_function(cfg, on_confuse_error);
	cfg_set_validate_func(cfg, "listener", on_listener_end);
	cfg_set_validate_func(cfg, "route", on_route_end);
	cfg_set_validate_func(cfg, "domain", on_domain_end);
	cfg_set_validate_func(cfg, "source", on_source_end);
	cfg_set_validate_func(cfg, "pool", on_pool_end);
	cfg_set_validate_func(cfg, "pool|source", on_pool_member_end);
	cfg_set_validate_func(cfg, "dkim_key", on_dkim_key_end);
	cfg_set_validate_func(cfg, "verp", verp_section_end);
	cfg_set_validate_func(cfg, "tls_certificate", on_tls_certificate_end);
	routing_schema_begin(cfg, ctx); /* stream, tenant, classification (routing.c) */
	cfg_set_validate_func(cfg, "webhook", on_webhook_end);
	return cfg;
}

void
schema_free(cfg_t *cfg)
{
	if (cfg != NULL)
		cfg_free(cfg);
	routing_schema_end();
	current = NULL;
	current_root = NULL;
}
