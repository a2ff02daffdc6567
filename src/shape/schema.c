/* schema.c - the settings of a shaping rules file as libconfuse knows them, and the callbacks
 * that check each value while the file is parsed.
 *
 * Values are checked in libconfuse's value callbacks because only then are the file and line
 * known; a callback reports into the load in progress and lets parsing go on, so one run
 * reports every bad value. Each callback also notes the line of the value (load.c's checks
 * across settings need it). Layered settings have no libconfuse default: a section that does
 * not set one leaves it to the layer below, which is the point of layering.
 *
 * libconfuse parses the text source.c prepared, so its line numbers are lines of that text;
 * cfgtext_where() maps them back to a file and line.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

/* The load in progress: callbacks get only libconfuse's arguments. One at a time (the
 * caller holds load.c's lock). */
static struct load_ctx *current;
static cfg_t *current_root;

const char *
sh_schema_shown(const char *value, char *buf, size_t size)
{
	size_t o = 0;

	for (const char *p = value; p != NULL && *p != '\0' && o + 5 < size; p++) {
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

bool
sh_title_valid(const char *t)
{
	size_t n = t != NULL ? strlen(t) : 0;

	return n > 0 && n <= SHAPE_NAME_MAX &&
	       strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* ---- Where things are ---- */

static bool
is_root(cfg_t *cfg)
{
	return cfg == NULL || cfg == current_root;
}

/* The provider section being parsed (a source section's parent: libconfuse appends sections
 * in the order of the text, so the enclosing one is the last). */
static const char *
open_provider_title(void)
{
	cfg_opt_t *o;

	if (current_root == NULL || (o = cfg_getopt(current_root, "provider")) == NULL ||
	    o->nvalues == 0)
		return "?";
	return o->values[o->nvalues - 1]->section->title;
}

void
sh_schema_path(cfg_t *cfg, const char *name, char *buf, size_t size)
{
	if (is_root(cfg))
		snprintf(buf, size, "%s", name);
	else if (strcmp(cfg->name, "source") == 0)
		snprintf(buf, size, "provider \"%s\".source \"%s\".%s", open_provider_title(),
		         cfg->title ? cfg->title : "", name);
	else if (cfg->title != NULL)
		snprintf(buf, size, "%s \"%s\".%s", cfg->name, cfg->title, name);
	else
		snprintf(buf, size, "%s.%s", cfg->name, name);
}

static void
locate(cfg_t *cfg, const char **file, int *line)
{
	*file = NULL;
	*line = 0;
	if (current->src != NULL && cfg != NULL && cfg->line > 0)
		cfgtext_where(&current->src->t, cfg->line, file, line);
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
	sh_load_error_at(current, file, line, "%s", msg);
}

static size_t
where_key(cfg_t *sec, const char *name, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%p@%s", (void *)sec, name);

	return n < 0 || (size_t)n >= size ? 0 : (size_t)n;
}

/* The value's line: the first value of an assignment ("=" starts a list afresh; "+="
 * appends, and the setting still comes from where the list began). */
static void
note_where(cfg_t *cfg, cfg_opt_t *opt)
{
	char key[160];
	size_t len = where_key(cfg, opt->name, key, sizeof(key));
	struct tslot *s;

	if (len == 0 || opt->nvalues > 1)
		return;
	if ((s = sh_ttab_insert(&current->where, key, len, 0, NULL)) != NULL)
		s->v.num = (uint64_t)cfg->line;
}

int
sh_schema_line(struct load_ctx *ctx, cfg_t *sec, const char *name)
{
	char key[160];
	size_t len = where_key(sec, name, key, sizeof(key));
	struct tslot *s = len > 0 ? sh_ttab_find(&ctx->where, key, len) : NULL;

	return s != NULL ? (int)s->v.num : 0;
}

/* ---- libconfuse's own messages ---- */

/* Reworded to "setting: problem" with the setting's full name. The argument of each is an
 * option name. Messages not listed (syntax errors from the lexer) are passed on as they are,
 * after "file:line:". */
static const struct {
	const char *confuse, *ours;
} rewordings[] = {
    {"no such option '%s'", "%s: unknown setting"},
    {"missing equal sign after option '%s'", "%s: expected '=' after the name"},
    {"attempt to append to non-list option '%s'", "%s: '+=' works on lists only"},
    {"missing opening brace for section '%s'", "%s: expected '{' to open the section"},
    {"missing parenthesis for function '%s'", "%s: expected '(', as in include(\"file\")"},
    {"syntax error in call of function '%s'", "%s: syntax error in the argument list"},
};

static void
on_confuse_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	char path[512], msg[1024];

	if (current == NULL)
		return;
	if (strcmp(fmt, "found duplicate title '%s'") == 0) {
		report(cfg, "%s \"%s\": defined twice (one section per title)",
		       is_root(cfg) ? "section" : "source", va_arg(ap, const char *));
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
		sh_schema_path(cfg, va_arg(ap, const char *), path, sizeof(path));
		snprintf(msg, sizeof(msg), rewordings[i].ours, path);
		report(cfg, "%s", msg);
		return;
	}
	vsnprintf(msg, sizeof(msg), fmt, ap);
	report(cfg, "%s", msg);
}

/* ---- Value callbacks: report, note the line, let parsing go on ---- */

typedef int checker(const char *value, const char **why);

static int
check(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result, checker *fn)
{
	char path[512], v[128];
	const char *why = "bad value";

	*(const char **)result = value;
	if (current == NULL || value == NULL)
		return 0;
	note_where(cfg, opt);
	if (fn(value, &why) != 0) {
		sh_schema_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: \"%s\": %s", path, sh_schema_shown(value, v, sizeof(v)), why);
	}
	return 0;
}

/* A layered setting: its own parser and bounds (fields.c). Lists are checked element by
 * element; their length here, where the element is known. */
static int
on_setting(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	struct shape_settings scratch;
	char path[512], v[128];
	const char *why;
	int f = sh_field_index(opt->name);

	*(const char **)result = value;
	if (current == NULL || value == NULL || f < 0)
		return 0;
	note_where(cfg, opt);
	memset(&scratch, 0, sizeof(scratch));
	sh_schema_path(cfg, opt->name, path, sizeof(path));
	if (sh_fields[f].kind == FK_RETRY && opt->nvalues > SHAPE_RETRY_MAX) {
		if (opt->nvalues == SHAPE_RETRY_MAX + 1)
			report(cfg, "%s: more than %d intervals (the last one repeats)", path,
			       SHAPE_RETRY_MAX);
		return 0;
	}
	if (sh_field_parse((enum shape_field)f, value, &scratch, false, &why) != 0)
		report(cfg, "%s: \"%s\": %s", path, sh_schema_shown(value, v, sizeof(v)), why);
	return 0;
}

static int
check_name(const char *value, const char **why)
{
	*why = "expected a name of 1 to 64 letters, digits, '-', '_' or '.'";
	return sh_title_valid(value) ? 0 : -1;
}

/* A domain or host name; a suffix may start with "." or "*.". */
static int
check_host(const char *value, const char **why)
{
	*why = "expected a domain name (letters, digits, '-' and '_' in dot-separated labels of "
	       "at most 63 octets)";
	if (value[0] == '*' && value[1] == '.')
		value += 2;
	else if (value[0] == '.')
		value++;
	return sh_host_valid(value) ? 0 : -1;
}

static int
check_code(const char *value, const char **why)
{
	struct code_pat c;

	return sh_parse_code_pat(value, &c, why);
}

static int
check_status(const char *value, const char **why)
{
	struct status_pat st;

	return sh_parse_status_pat(value, &st, why);
}

static int
check_regex(const char *value, const char **why)
{
	static char msg[300];
	PCRE2_UCHAR m[256];
	PCRE2_SIZE off;
	pcre2_code *re;
	int rc;

	if (*value == '\0') {
		*why = "an empty regex matches every reply: leave text out instead";
		return -1;
	}
	re = pcre2_compile((PCRE2_SPTR)value, PCRE2_ZERO_TERMINATED,
	                   PCRE2_CASELESS | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP, &rc, &off, NULL);
	if (re != NULL) {
		pcre2_code_free(re);
		return 0;
	}
	pcre2_get_error_message(rc, m, sizeof(m));
	/* Loads are serialized (load.c's lock), and the message is used before the next. */
	snprintf(msg, sizeof(msg), "bad regex at offset %zu: %s", (size_t)off, (const char *)m);
	*why = msg;
	return -1;
}

static int
check_trigger(const char *value, const char **why)
{
	unsigned n;
	uint64_t p;

	return sh_parse_trigger(value, &n, &p, why);
}

static int
check_action(const char *value, const char **why)
{
	*why = "expected suspend-source, suspend-provider, limit, backoff or bounce";
	return sh_action_value(value) < 0 ? -1 : 0;
}

static int
check_duration(const char *value, const char **why)
{
	uint64_t v;

	if (sh_parse_duration(value, &v, why) != 0)
		return -1;
	if (v == 0 || v > 30 * DAY_S) {
		*why = "must be from 1s to 30d";
		return -1;
	}
	return 0;
}

static int
check_rate(const char *value, const char **why)
{
	struct shape_rate r;

	return shape_rate_parse(value, &r, why);
}

static int
check_connections(const char *value, const char **why)
{
	uint64_t v;

	if (sh_parse_count(value, &v, why) != 0)
		return -1;
	if (v < 1 || v > 1000) {
		*why = "must be from 1 to 1000";
		return -1;
	}
	return 0;
}

static int
check_retry(const char *value, const char **why)
{
	uint64_t v;

	if (sh_parse_duration(value, &v, why) != 0)
		return -1;
	if (v < 1 || v > DAY_S) {
		*why = "each interval must be from 1s to 1d";
		return -1;
	}
	return 0;
}

static int
check_date(const char *value, const char **why)
{
	int64_t d;

	return sh_parse_date(value, &d, why);
}

/* A warm-up day's cap: a number, or "N doubling" (only as the schedule's one entry: load.c
 * checks that). */
static int
check_schedule(const char *value, const char **why)
{
	uint64_t v;
	const char *sp = strchr(value, ' ');
	char num[32];

	*why = "expected a daily number of messages (1 to 1000000000), or \"N doubling\"";
	if (sp != NULL) {
		if (strcmp(sp, " doubling") != 0 || (size_t)(sp - value) >= sizeof(num))
			return -1;
		memcpy(num, value, (size_t)(sp - value));
		num[sp - value] = '\0';
		value = num;
	}
	if (sh_parse_count(value, &v, why) != 0 || v == 0 || v > 1000000000ULL) {
		*why = "expected a daily number of messages (1 to 1000000000), or \"N doubling\"";
		return -1;
	}
	return 0;
}

static int
check_after(const char *value, const char **why)
{
	uint64_t v;

	if (strcmp(value, "unlimited") == 0)
		return 0;
	if (sh_parse_count(value, &v, why) != 0 || v == 0 || v > 1000000000ULL) {
		*why = "expected \"unlimited\" or a daily number of messages (1 to 1000000000)";
		return -1;
	}
	return 0;
}

#define CHECKER(fn)                                                                                \
	static int on_##fn(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)            \
	{                                                                                          \
		return check(cfg, opt, value, result, check_##fn);                                 \
	}

CHECKER(name)
CHECKER(host)
CHECKER(regex)
CHECKER(trigger)
CHECKER(action)
CHECKER(duration)
CHECKER(rate)
CHECKER(connections)
CHECKER(retry)
CHECKER(date)
CHECKER(schedule)
CHECKER(after)

/* A list longer than SHAPE_LIST_MAX: said once, at the element that goes over. */
static int
on_list_item(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result, checker *fn)
{
	char path[512];

	if (current != NULL && value != NULL && opt->nvalues == SHAPE_LIST_MAX + 1) {
		sh_schema_path(cfg, opt->name, path, sizeof(path));
		report(cfg, "%s: more than %d entries", path, SHAPE_LIST_MAX);
	}
	return check(cfg, opt, value, result, fn);
}

static int
on_code_item(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	return on_list_item(cfg, opt, value, result, check_code);
}

static int
on_status_item(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	return on_list_item(cfg, opt, value, result, check_status);
}

/* ---- The schema ---- */

#define SETTING(name)      CFG_STR_CB(name, NULL, CFGF_NODEFAULT, on_setting)
#define SETTING_LIST(name) CFG_STR_LIST_CB(name, NULL, CFGF_NONE, on_setting)

#define SETTINGS                                                                                   \
	SETTING("max_connections"), SETTING("initial_connections"),                                \
	    SETTING("provider_max_connections"), SETTING("max_messages_per_connection"),           \
	    SETTING("message_rate"), SETTING("provider_message_rate"), SETTING("connection_rate"), \
	    SETTING("max_recipients_per_transaction"), SETTING("connect_timeout"),                 \
	    SETTING("greeting_timeout"), SETTING("ehlo_timeout"), SETTING("mail_timeout"),         \
	    SETTING("rcpt_timeout"), SETTING("data_timeout"), SETTING("data_block_timeout"),       \
	    SETTING("dot_timeout"), SETTING("idle_timeout"), SETTING_LIST("retry"),                \
	    SETTING("tls"), SETTING("on_421"), SETTING_LIST("backoff_retry"),                      \
	    SETTING("backoff_message_rate")

#define TITLED (CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES)

static cfg_opt_t defaults_opts[] = {SETTINGS, CFG_END()};
static cfg_opt_t domain_opts[] = {SETTINGS, CFG_END()};
static cfg_opt_t source_opts[] = {SETTINGS, CFG_END()};

static cfg_opt_t provider_opts[] = {
    SETTINGS,
    CFG_STR_LIST_CB("mx_suffix", NULL, CFGF_NONE, on_host),
    CFG_STR_LIST_CB("domains", NULL, CFGF_NONE, on_host),
    CFG_SEC("source", source_opts, TITLED),
    CFG_END(),
};

static cfg_opt_t adaptive_opts[] = {
    CFG_STR_CB("provider", NULL, CFGF_NODEFAULT, on_name),
    CFG_STR_CB("domain", NULL, CFGF_NODEFAULT, on_host),
    CFG_STR_LIST_CB("code", NULL, CFGF_NONE, on_code_item),
    CFG_STR_LIST_CB("status", NULL, CFGF_NONE, on_status_item),
    CFG_STR_CB("text", NULL, CFGF_NODEFAULT, on_regex),
    CFG_STR_CB("trigger", NULL, CFGF_NODEFAULT, on_trigger),
    CFG_STR_CB("action", NULL, CFGF_NODEFAULT, on_action),
    CFG_STR_CB("duration", NULL, CFGF_NODEFAULT, on_duration),
    CFG_STR_CB("message_rate", NULL, CFGF_NODEFAULT, on_rate),
    CFG_STR_CB("max_connections", NULL, CFGF_NODEFAULT, on_connections),
    CFG_STR_LIST_CB("backoff_retry", NULL, CFGF_NONE, on_retry),
    CFG_END(),
};

static cfg_opt_t warmup_opts[] = {
    CFG_STR_LIST_CB("sources", NULL, CFGF_NONE, on_name),
    CFG_STR_CB("start", NULL, CFGF_NODEFAULT, on_date),
    CFG_STR_LIST_CB("schedule", NULL, CFGF_NONE, on_schedule),
    CFG_STR_CB("after", NULL, CFGF_NODEFAULT, on_after),
    CFG_STR_LIST_CB("providers", NULL, CFGF_NONE, on_name),
    CFG_END(),
};

static cfg_opt_t root_opts[] = {
    CFG_SEC("defaults", defaults_opts, CFGF_NONE), CFG_SEC("provider", provider_opts, TITLED),
    CFG_SEC("domain", domain_opts, TITLED),        CFG_SEC("adaptive", adaptive_opts, TITLED),
    CFG_SEC("warmup", warmup_opts, TITLED),        CFG_END(),
};

cfg_t *
sh_schema_new(struct load_ctx *ctx)
{
	cfg_t *cfg;

	current = ctx;
	current_root = NULL;
	if ((cfg = cfg_init(root_opts, CFGF_NONE)) == NULL)
		fatal("shape: cfg_init: out of memory");
	current_root = cfg;
	cfg_set_error_function(cfg, on_confuse_error);
	return cfg;
}

void
sh_schema_free(cfg_t *cfg)
{
	if (cfg != NULL)
		cfg_free(cfg);
	current = NULL;
	current_root = NULL;
}
