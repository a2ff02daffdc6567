/* conf/routing.c - streams, tenants and classification rules (docs/routing.md):
 *
 *   stream "bulk" { priority; pool; retry; lifetime; reserve }
 *   tenant "acme" { pool; stream "bulk" { pool } }
 *   classification { rule { conditions...  results... } ... }
 *
 * Values are checked in libconfuse's callbacks, where the file and line are known, like the
 * rest of the schema (schema.c); what names another section (a pool, a stream, a tenant, a
 * listener) is checked once the whole file is read, since sections may come in any order,
 * each error at the line where the name is written. Header patterns are compiled with PCRE2
 * here only to check them: route/ compiles them again for matching and keeps that code.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "conf/defaults.h"
#include "conf/internal.h"
#include "core/core.h"

/* The default stream exists whether or not a section configures it. */
#define STREAM_DEFAULT "default"

/* ---- Where things are written: remembered during the parse, for the later checks ----
 *
 * libconfuse gives a section no parent and no line of its own, so each value is remembered
 * by its section (the cfg_t, stable until the tree is freed), its option name and its place
 * in a list. One load at a time (config_load() holds its lock). */

struct seen_value {
	const cfg_t *sec;
	char *opt;
	unsigned idx;
	char *file;
	int line;
};

static struct load_ctx *rctx;
static struct seen_value *seen;
static size_t nseen;
static unsigned rules_ended; /* rule sections read so far: the one being read is the next */

static void
remember(cfg_t *sec, const char *opt, unsigned idx)
{
	const char *file;
	int line;

	schema_locate(sec, &file, &line);
	seen = xrealloc(seen, (nseen + 1) * sizeof(*seen));
	seen[nseen++] = (struct seen_value){
	    .sec = sec,
	    .opt = xstrdup(opt),
	    .idx = idx,
	    .file = file != NULL ? xstrdup(file) : NULL,
	    .line = line,
	};
}

/* An error at the line where sec's opt (its idx-th value) was written: the last time, as
 * the last value is the one that counts. */
static void error_at(const cfg_t *sec, const char *opt, unsigned idx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
error_at(const cfg_t *sec, const char *opt, unsigned idx, const char *fmt, ...)
{
	char msg[1024];
	const char *file = NULL;
	int line = 0;
	va_list ap;

	for (size_t i = nseen; i > 0; i--) {
		const struct seen_value *v = &seen[i - 1];

		if (v->sec == sec && v->idx == idx && strcmp(v->opt, opt) == 0) {
			file = v->file;
			line = v->line;
			break;
		}
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	load_error_at(rctx, file != NULL ? file : (rctx->src != NULL ? rctx->src->files[0] : NULL),
	              line, "%s", msg);
}

/* Values are echoed in messages: printable, and short. */
static const char *
shown(const char *value, char *buf, size_t size)
{
	size_t o = 0;

	for (const char *p = value; *p != '\0' && o + 5 < size; p++) {
		unsigned char c = (unsigned char)*p;

		buf[o++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
		if (o >= 80 && p[1] != '\0') {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
	}
	buf[o] = '\0';
	return buf;
}

/* Titles name streams and tenants in envelopes, event records and metrics; a tenant's name
 * is also its suppression list's (suppress.h): the same safe alphabet as listeners. */
static bool
title_valid(const char *t)
{
	size_t n = strlen(t);

	return n > 0 && n <= 64 &&
	       strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") == n;
}

/* "stream \"bulk\".pool", "tenant \"acme\".stream \"bulk\".pool", "classification.rule[2].x".
 * cfg->name alone cannot tell a tenant's stream from a top-level one: the callbacks that can
 * be in both say which. */
static void
path_of(cfg_t *cfg, const char *opt, char *buf, size_t size)
{
	if (strcmp(cfg->name, "rule") == 0)
		snprintf(buf, size, "classification.rule[%u].%s", rules_ended + 1, opt);
	else
		snprintf(buf, size, "%s \"%s\".%s", cfg->name, cfg->title ? cfg->title : "", opt);
}

/* The index of the value being set in a list option: libconfuse has added its slot. */
static unsigned
list_index(cfg_opt_t *opt)
{
	unsigned n = cfg_opt_size(opt);

	return n > 0 ? n - 1 : 0;
}

static int
parse_count(const char *text, uint64_t *out)
{
	uint64_t v = 0;

	if (*text == '\0')
		return -1;
	for (; *text >= '0' && *text <= '9'; text++) {
		if (v > 100000000)
			return -1;
		v = v * 10 + (uint64_t)(*text - '0');
	}
	if (*text != '\0')
		return -1;
	*out = v;
	return 0;
}

/* ---- stream "name" { } ---- */

static int
on_priority(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	uint64_t n;

	*(long *)result = DEF_STREAM_PRIORITY;
	if (rctx == NULL || value == NULL)
		return 0;
	path_of(cfg, opt->name, path, sizeof(path));
	if (parse_count(value, &n) != 0 || n > LIM_STREAM_PRIORITY_MAX) {
		schema_report(
		    cfg,
		    "%s: \"%s\": must be a whole number from 0 to %d (at a destination, a free "
		    "connection goes to the stream of highest priority)",
		    path, shown(value, v, sizeof(v)), LIM_STREAM_PRIORITY_MAX);
		return 0;
	}
	*(long *)result = (long)n;
	return 0;
}

static int
on_lifetime(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128], lo[32], hi[32];
	const char *why;
	uint64_t s;

	*(long *)result = 0;
	if (rctx == NULL || value == NULL)
		return 0;
	path_of(cfg, opt->name, path, sizeof(path));
	if (parse_duration_why(value, &s, &why) != 0) {
		schema_report(cfg, "%s: \"%s\": %s", path, shown(value, v, sizeof(v)), why);
		return 0;
	}
	if (s < LIM_DELIVERY_QUEUE_LIFETIME_MIN || s > LIM_DELIVERY_QUEUE_LIFETIME_MAX) {
		units_format_duration(LIM_DELIVERY_QUEUE_LIFETIME_MIN, lo, sizeof(lo));
		units_format_duration(LIM_DELIVERY_QUEUE_LIFETIME_MAX, hi, sizeof(hi));
		schema_report(cfg, "%s: \"%s\": must be from %s to %s, as delivery.queue_lifetime",
		              path, shown(value, v, sizeof(v)), lo, hi);
		return 0;
	}
	*(long *)result = (long)s;
	return 0;
}

/* The same syntax and limits as delivery.retry (schema.c); an empty list is no list: the
 * stream then uses delivery.retry. */
static int
on_stream_retry(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128], hi[32];
	const char *why;
	uint64_t s;

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	path_of(cfg, opt->name, path, sizeof(path));
	if (cfg_opt_size(opt) == LIM_DELIVERY_RETRY_COUNT + 1)
		schema_report(
		    cfg,
		    "%s: \"%s\": more than %d intervals (the last one repeats; a longer list is "
		    "a typo, not a policy)",
		    path, shown(value, v, sizeof(v)), LIM_DELIVERY_RETRY_COUNT);
	if (parse_duration_why(value, &s, &why) != 0) {
		schema_report(cfg, "%s: \"%s\": %s", path, shown(value, v, sizeof(v)), why);
	} else if (s < 1 || s > LIM_DELIVERY_RETRY_INTERVAL_MAX) {
		units_format_duration(LIM_DELIVERY_RETRY_INTERVAL_MAX, hi, sizeof(hi));
		schema_report(cfg, "%s: \"%s\": each interval must be from 1s to %s", path,
		              shown(value, v, sizeof(v)), hi);
	}
	return 0;
}

/* "20%" -> 20. 0 or -1. */
static int
reserve_parse(const char *text, unsigned *pct)
{
	uint64_t n = 0;
	size_t len = strlen(text);
	char digits[8];

	if (len < 2 || len > 4 || text[len - 1] != '%')
		return -1;
	memcpy(digits, text, len - 1);
	digits[len - 1] = '\0';
	if (parse_count(digits, &n) != 0 || n > 100)
		return -1;
	*pct = (unsigned)n;
	return 0;
}

static int
on_reserve(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	unsigned pct;

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	remember(cfg, opt->name, 0);
	if (reserve_parse(value, &pct) != 0) {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(
		    cfg,
		    "%s: \"%s\": expected a share of each destination's connections from 0%% "
		    "to 100%%, as in \"20%%\"",
		    path, shown(value, v, sizeof(v)));
	}
	return 0;
}

/* A name of another section (pool, stream, tenant): not empty here, looked up once the file
 * is read (copy_routing). */
static int
on_ref(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512];

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	remember(cfg, opt->name, 0);
	if (*value == '\0') {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(cfg, "%s: must not be empty", path);
	}
	return 0;
}

/* A tenant's stream "x" { pool }: named as such (cfg->name is "stream" either way). */
static int
on_tenant_stream_pool(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	remember(cfg, opt->name, 0);
	if (*value == '\0')
		schema_report(cfg, "tenant stream \"%s\".pool: must not be empty",
		              cfg->title ? cfg->title : "");
	return 0;
}

cfg_opt_t routing_stream_opts[] = {
    CFG_INT_CB("priority", DEF_STREAM_PRIORITY, CFGF_NONE, on_priority),
    CFG_STR_CB("pool", NULL, CFGF_NODEFAULT, on_ref),
    CFG_STR_LIST_CB("retry", NULL, CFGF_NONE, on_stream_retry),
    CFG_INT_CB("lifetime", 0, CFGF_NONE, on_lifetime),
    CFG_STR_CB("reserve", DEF_STREAM_RESERVE, CFGF_NONE, on_reserve),
    CFG_END(),
};

static cfg_opt_t tenant_stream_opts[] = {
    CFG_STR_CB("pool", NULL, CFGF_NODEFAULT, on_tenant_stream_pool),
    CFG_END(),
};

cfg_opt_t routing_tenant_opts[] = {
    CFG_STR_CB("pool", NULL, CFGF_NODEFAULT, on_ref),
    CFG_SEC("stream", tenant_stream_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
    CFG_END(),
};

/* After a stream or tenant section is read (cfg is the top level, the section the last). */
static int
on_titled_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	char v[128];

	if (sec == NULL)
		return 0;
	remember(sec, "", 0); /* where it ends: errors about the section itself */
	if (!title_valid(sec->title))
		schema_report(
		    cfg, "%s \"%s\": the title must be 1 to 64 letters, digits, '-', '_' or '.'",
		    opt->name, shown(sec->title, v, sizeof(v)));
	return 0;
}

/* After a tenant's stream section is read (cfg is the tenant section). */
static int
on_tenant_stream_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);

	if (sec == NULL)
		return 0;
	remember(sec, "", 0);
	if (cfg_size(sec, "pool") == 0)
		schema_report(
		    cfg,
		    "tenant \"%s\".stream \"%s\": no pool: a tenant's stream section says which "
		    "pool its mail of that stream leaves from, as in stream \"%s\" { pool = "
		    "\"%s-bulk\" }",
		    cfg->title ? cfg->title : "", sec->title, sec->title,
		    cfg->title ? cfg->title : "");
	return 0;
}

/* ---- classification { rule { } } ---- */

static int
on_rule_name(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512];

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	remember(cfg, opt->name, list_index(opt));
	if (*value == '\0') {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(cfg, "%s: an entry must not be empty", path);
	}
	return 0;
}

static int
on_rule_client(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	struct netmask m;
	const char *why;

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	if (netmask_parse_why(value, &m, &why) != 0) {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(cfg, "%s: \"%s\": %s", path, shown(value, v, sizeof(v)), why);
	}
	return 0;
}

static int
on_rule_domain(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (rctx != NULL && !hostname_valid(value)) {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(cfg,
		              "%s: \"%s\": not a domain name (it matches that domain and its "
		              "subdomains), as in \"example.com\"",
		              path, shown(value, v, sizeof(v)));
	}
	return 0;
}

/* RFC 5322 §3.6.8 field names: printable ASCII but ':' and space; a bound as for DKIM's
 * headers setting. */
static bool
field_name_valid(const char *name, size_t n)
{
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] <= 32 || name[i] >= 127 || name[i] == ':')
			return false;
	return true;
}

/* "Name: pattern": the name, then the pattern after the colon and the blanks that follow
 * it. 0, or -1 when there is no colon. */
static int
header_condition_split(const char *text, size_t *name_len, const char **pattern)
{
	const char *colon = strchr(text, ':');
	size_t n;

	if (colon == NULL)
		return -1;
	n = (size_t)(colon - text);
	while (n > 0 && (text[n - 1] == ' ' || text[n - 1] == '\t'))
		n--;
	*name_len = n;
	*pattern = colon + 1;
	while (**pattern == ' ' || **pattern == '\t')
		(*pattern)++;
	return 0;
}

static int
on_rule_header(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	const char *pattern;
	size_t name_len, off;
	pcre2_code *re;
	int rc;

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	path_of(cfg, opt->name, path, sizeof(path));
	if (header_condition_split(value, &name_len, &pattern) != 0 ||
	    !field_name_valid(value, name_len)) {
		schema_report(
		    cfg,
		    "%s: \"%s\": expected \"Field-Name: pattern\" (a PCRE2 pattern for the "
		    "field's value; nothing after the colon: the field is there), as in "
		    "\"Precedence: ^(bulk|list)$\"",
		    path, shown(value, v, sizeof(v)));
		return 0;
	}
	if (strlen(pattern) > LIM_RULE_PATTERN_MAX) {
		schema_report(cfg, "%s: \"%s\": the pattern is longer than %d octets", path,
		              shown(value, v, sizeof(v)), LIM_RULE_PATTERN_MAX);
		return 0;
	}
	/* The options route/ compiles with (route/rules.c): the same pattern must compile
	 * there. */
	re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
	                   PCRE2_CASELESS | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP |
	                       PCRE2_NO_AUTO_CAPTURE,
	                   &rc, &off, NULL);
	if (re == NULL) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		schema_report(cfg, "%s: \"%s\": bad pattern at offset %zu: %s", path,
		              shown(value, v, sizeof(v)), off, (const char *)msg);
		return 0;
	}
	pcre2_code_free(re);
	return 0;
}

static int
on_rule_count(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	uint64_t n;

	*(long *)result = 0;
	if (rctx == NULL || value == NULL)
		return 0;
	remember(cfg, opt->name, 0);
	if (parse_count(value, &n) != 0 || n < 1 || n > LIM_SMTP_MAX_RECIPIENTS_MAX) {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(cfg,
		              "%s: \"%s\": must be a whole number from 1 to %ld (recipients of one "
		              "message)",
		              path, shown(value, v, sizeof(v)), (long)LIM_SMTP_MAX_RECIPIENTS_MAX);
		return 0;
	}
	*(long *)result = (long)n;
	return 0;
}

/* A campaign name as it may be stored and logged: 1 to LIM_CAMPAIGN_MAX printable ASCII
 * octets, no blank at either end. */
static bool
campaign_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > LIM_CAMPAIGN_MAX || s[0] == ' ' || s[n - 1] == ' ')
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

static int
on_campaign(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	remember(cfg, opt->name, 0);
	if (!campaign_valid(value)) {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(
		    cfg,
		    "%s: \"%s\": a campaign is 1 to %d printable ASCII characters, without "
		    "blanks at either end",
		    path, shown(value, v, sizeof(v)), LIM_CAMPAIGN_MAX);
	}
	return 0;
}

static int
on_campaign_header(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];

	*(const char **)result = value;
	if (rctx == NULL)
		return 0;
	remember(cfg, opt->name, 0);
	if (!field_name_valid(value, strlen(value))) {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(cfg, "%s: \"%s\": not a header field name, as in \"X-Campaign-Id\"",
		              path, shown(value, v, sizeof(v)));
	}
	return 0;
}

static int
on_rule_bool(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
	char path[512], v[128];
	int b = cfg_parse_boolean(value);

	*(int *)result = cfg_false;
	if (rctx == NULL)
		return 0;
	remember(cfg, opt->name, 0);
	if (b < 0) {
		path_of(cfg, opt->name, path, sizeof(path));
		schema_report(cfg, "%s: \"%s\": expected true or false", path,
		              shown(value ? value : "", v, sizeof(v)));
		return 0;
	}
	*(int *)result = b;
	return 0;
}

static cfg_opt_t rule_opts[] = {
    /* Conditions */
    CFG_STR_LIST_CB("listener", NULL, CFGF_NONE, on_rule_name),
    CFG_STR_LIST_CB("auth_user", NULL, CFGF_NONE, on_rule_name),
    CFG_STR_LIST_CB("client", NULL, CFGF_NONE, on_rule_client),
    CFG_STR_LIST_CB("mail_from_domain", NULL, CFGF_NONE, on_rule_domain),
    CFG_STR_LIST_CB("from_domain", NULL, CFGF_NONE, on_rule_domain),
    CFG_STR_LIST_CB("header", NULL, CFGF_NONE, on_rule_header),
    CFG_INT_CB("min_recipients", 0, CFGF_NONE, on_rule_count),
    CFG_INT_CB("max_recipients", 0, CFGF_NONE, on_rule_count),
    /* Results */
    CFG_STR_CB("stream", NULL, CFGF_NODEFAULT, on_ref),
    CFG_STR_CB("tenant", NULL, CFGF_NODEFAULT, on_ref),
    CFG_STR_CB("campaign", NULL, CFGF_NODEFAULT, on_campaign),
    CFG_STR_CB("campaign_header", NULL, CFGF_NODEFAULT, on_campaign_header),
    CFG_STR_CB("pool", NULL, CFGF_NODEFAULT, on_ref),
    CFG_BOOL_CB("trust_headers", cfg_false, CFGF_NODEFAULT, on_rule_bool),
    CFG_BOOL_CB("final", cfg_false, CFGF_NONE, on_rule_bool),
    CFG_END(),
};

cfg_opt_t routing_classification_opts[] = {
    CFG_SEC("rule", rule_opts, CFGF_MULTI),
    CFG_END(),
};

static const char *const rule_lists[] = {"listener",         "auth_user",   "client",
                                         "mail_from_domain", "from_domain", "header"};

/* After a rule is read (cfg is the classification section, the rule the last). */
static int
on_rule_end(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *sec = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);
	unsigned n = ++rules_ended;

	if (sec == NULL)
		return 0;
	remember(sec, "", 0);
	if (n == LIM_CLASSIFICATION_RULES_MAX + 1)
		schema_report(
		    sec,
		    "classification.rule[%u]: more than %d rules (each message is matched "
		    "against them in turn)",
		    n, LIM_CLASSIFICATION_RULES_MAX);
	for (size_t i = 0; i < nitems(rule_lists); i++)
		if (cfg_size(sec, rule_lists[i]) > LIM_RULE_LIST_MAX)
			schema_report(
			    sec,
			    "classification.rule[%u].%s: more than %d entries (use broader "
			    "ones: a prefix, a parent domain)",
			    n, rule_lists[i], LIM_RULE_LIST_MAX);
	if (cfg_size(sec, "campaign") > 0 && cfg_size(sec, "campaign_header") > 0)
		schema_report(
		    sec,
		    "classification.rule[%u]: campaign and campaign_header both set: a rule "
		    "takes its campaign from one",
		    n);
	if (cfg_getint(sec, "min_recipients") > 0 && cfg_getint(sec, "max_recipients") > 0 &&
	    cfg_getint(sec, "min_recipients") > cfg_getint(sec, "max_recipients"))
		schema_report(
		    sec,
		    "classification.rule[%u]: min_recipients (%ld) is more than max_recipients "
		    "(%ld): no message could match",
		    n, cfg_getint(sec, "min_recipients"), cfg_getint(sec, "max_recipients"));
	if (cfg_size(sec, "stream") == 0 && cfg_size(sec, "tenant") == 0 &&
	    cfg_size(sec, "campaign") == 0 && cfg_size(sec, "campaign_header") == 0 &&
	    cfg_size(sec, "pool") == 0 && cfg_size(sec, "trust_headers") == 0 &&
	    cfg_getbool(sec, "final") != cfg_true)
		schema_report(
		    sec,
		    "classification.rule[%u]: decides nothing: set stream, tenant, campaign, "
		    "campaign_header, pool or trust_headers (or final = true, to stop at it)",
		    n);
	return 0;
}

void
routing_schema_begin(cfg_t *cfg, struct load_ctx *ctx)
{
	rctx = ctx;
	rules_ended = 0;
	cfg_set_validate_func(cfg, "stream", on_titled_end);
	cfg_set_validate_func(cfg, "tenant", on_titled_end);
	cfg_set_validate_func(cfg, "tenant|stream", on_tenant_stream_end);
	cfg_set_validate_func(cfg, "classification|rule", on_rule_end);
}

void
routing_schema_end(void)
{
	for (size_t i = 0; i < nseen; i++) {
		free(seen[i].opt);
		free(seen[i].file);
	}
	free(seen);
	seen = NULL;
	nseen = 0;
	rctx = NULL;
	rules_ended = 0;
}

/* ---- Where each rule begins ----
 *
 * A rule has no title, and libconfuse only knows the line where a section ends. The line an
 * operator recognises is the one with "rule": found in the text libconfuse parsed (comments
 * removed, include()s expanded), by following its sections. */

static bool
word_char(char c)
{
	return c != '\0' && strchr(" \t\r\n\"'={}()+,#", c) == NULL;
}

/* The text lines of the "rule" of each rule section in a classification section, in order
 * (the order libconfuse keeps them in); at most max. Returns how many there are. */
static size_t
rule_text_lines(const struct cfgtext *s, int *lines, size_t max)
{
	enum { K_OTHER, K_CLASSIFICATION, K_LIST };
	unsigned char stack[64];
	size_t depth = 0, overflow = 0, n = 0;
	int line = 1, name_line = 0;
	char name[32] = "";
	/* What came last: a name (then maybe its title), '=' / ',' / '(' (a value follows). */
	enum { AFTER_NOTHING, AFTER_NAME, AFTER_TITLE, AFTER_ASSIGN } state = AFTER_NOTHING;

	for (size_t i = 0; i < s->len; i++) {
		char c = s->text[i];

		if (c == '\n') {
			line++;
		} else if (c == ' ' || c == '\t' || c == '\r') {
			continue;
		} else if (c == '"' || c == '\'') {
			for (i++; i < s->len && s->text[i] != c; i++) {
				if (s->text[i] == '\\' && i + 1 < s->len)
					i++;
				line += s->text[i] == '\n';
			}
			state = state == AFTER_NAME ? AFTER_TITLE : AFTER_NOTHING;
		} else if (c == '{') {
			unsigned char kind = K_OTHER;

			if (state == AFTER_ASSIGN)
				kind = K_LIST;
			else if (state == AFTER_NAME && strcmp(name, "classification") == 0)
				kind = K_CLASSIFICATION;
			if (state == AFTER_NAME && strcmp(name, "rule") == 0 && depth > 0 &&
			    overflow == 0 && stack[depth - 1] == K_CLASSIFICATION && n < max)
				lines[n++] = name_line;
			if (depth < sizeof(stack))
				stack[depth++] = kind;
			else
				overflow++;
			state = AFTER_NOTHING;
		} else if (c == '}') {
			if (overflow > 0)
				overflow--;
			else if (depth > 0)
				depth--;
			state = AFTER_NOTHING;
		} else if (c == '=' || c == ',' || c == '(' || c == '+') {
			state = AFTER_ASSIGN;
		} else if (word_char(c)) {
			size_t len = 0;

			name_line = line;
			for (; i < s->len && word_char(s->text[i]); i++) {
				/* ${VAR} and ${VAR:-default}: libconfuse's environment variables */
				if (s->text[i] == '$' && i + 1 < s->len && s->text[i + 1] == '{') {
					while (i < s->len && s->text[i] != '}')
						i++;
					continue;
				}
				if (len + 1 < sizeof(name))
					name[len++] = s->text[i];
			}
			name[len] = '\0';
			i--;
			state = state == AFTER_ASSIGN ? AFTER_NOTHING : AFTER_NAME;
		} else {
			state = AFTER_NOTHING;
		}
	}
	return n;
}

/* ---- Copying, with the checks across sections ---- */

static const char *
pool_ref(struct config *conf, const cfg_t *sec, const char *opt, const char *path, const char *name)
{
	const struct pool_conf *p = config_pool(conf, name);

	if (p == NULL && name[0] != '\0')
		error_at(sec, opt, 0, "%s: no pool \"%s\" is defined", path, name);
	return p != NULL ? p->name : NULL;
}

static const char *
stream_ref(struct config *conf, const cfg_t *sec, const char *opt, const char *path,
           const char *name)
{
	const struct stream_conf *s = config_stream(conf, name);

	if (strcmp(name, STREAM_DEFAULT) == 0)
		return s != NULL ? s->name : STREAM_DEFAULT;
	if (s == NULL && name[0] != '\0')
		error_at(sec, opt, 0,
		         "%s: no stream \"%s\" is defined (a stream section, or \"default\")", path,
		         name);
	return s != NULL ? s->name : NULL;
}

static void
copy_streams(cfg_t *cfg, struct config *conf)
{
	unsigned n = cfg_size(cfg, "stream");

	conf->streams = xcalloc(n ? n : 1, sizeof(*conf->streams));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "stream", i);
		struct stream_conf *s = &conf->streams[conf->nstreams++];
		unsigned nretry = cfg_size(sec, "retry");

		s->name = xstrdup(cfg_title(sec));
		s->priority = (unsigned)cfg_getint(sec, "priority");
		s->lifetime_s = (uint64_t)cfg_getint(sec, "lifetime");
		/* A bad value has been reported already: the load fails. */
		for (unsigned k = 0; k < nretry && s->nretry < DELIVERY_RETRY_MAX; k++) {
			uint64_t v;

			if (parse_duration_s(cfg_getnstr(sec, "retry", k), &v) == 0 && v > 0)
				s->retry_s[s->nretry++] = v;
		}
		if (reserve_parse(cfg_getstr(sec, "reserve"), &s->reserve_pct) != 0)
			s->reserve_pct = 0;
	}
}

/* After copy_streams and the pools: the references, and the reserves' sum. */
static void
check_streams(cfg_t *cfg, struct config *conf)
{
	unsigned sum = 0;
	bool over = false;
	char path[512];

	for (size_t i = 0; i < conf->nstreams; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "stream", (unsigned)i);
		struct stream_conf *s = &conf->streams[i];
		const char *name = cfg_getstr(sec, "pool");

		if (name != NULL) {
			snprintf(path, sizeof(path), "stream \"%s\".pool", s->name);
			s->pool = pool_ref(conf, sec, "pool", path, name);
		}
		sum += s->reserve_pct;
		/* Reported at the stream that goes over, once: that is the line to change. */
		if (sum > 100 && !over) {
			over = true;
			error_at(sec, "reserve", 0,
			         "stream \"%s\".reserve: \"%u%%\": the streams' reserves add up to "
			         "%u%% so far: at most 100%% of a destination's connections can be "
			         "reserved",
			         s->name, s->reserve_pct, sum);
		}
	}
}

static void
copy_tenants(cfg_t *cfg, struct config *conf)
{
	unsigned n = cfg_size(cfg, "tenant");
	char path[512];

	conf->tenants = xcalloc(n ? n : 1, sizeof(*conf->tenants));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cfg, "tenant", i);
		struct tenant_conf *t = &conf->tenants[conf->ntenants++];
		unsigned m = cfg_size(sec, "stream");
		const char *name = cfg_getstr(sec, "pool");

		t->name = xstrdup(cfg_title(sec));
		if (name != NULL) {
			snprintf(path, sizeof(path), "tenant \"%s\".pool", t->name);
			t->pool = pool_ref(conf, sec, "pool", path, name);
		}
		t->streams = xcalloc(m ? m : 1, sizeof(*t->streams));
		for (unsigned k = 0; k < m; k++) {
			cfg_t *ss = cfg_getnsec(sec, "stream", k);
			struct tenant_stream_conf *ts = &t->streams[t->nstreams];
			const char *pool = cfg_getstr(ss, "pool");

			snprintf(path, sizeof(path), "tenant \"%s\".stream \"%s\"", t->name,
			         cfg_title(ss));
			ts->stream = stream_ref(conf, ss, cfg_size(ss, "pool") ? "pool" : "", path,
			                        cfg_title(ss));
			if (pool == NULL) /* reported while parsing */
				continue;
			snprintf(path, sizeof(path), "tenant \"%s\".stream \"%s\".pool", t->name,
			         cfg_title(ss));
			ts->pool = pool_ref(conf, ss, "pool", path, pool);
			if (ts->stream != NULL && ts->pool != NULL)
				t->nstreams++;
		}
	}
}

static char **
copy_lower_list(cfg_t *sec, const char *name, size_t *n)
{
	char **v = copy_list(sec, name, n);

	for (size_t i = 0; i < *n; i++)
		for (char *p = v[i]; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
	return v;
}

static void
copy_rule_conditions(cfg_t *sec, struct classification_rule_conf *r, const struct config *conf,
                     const char *path)
{
	unsigned n = cfg_size(sec, "client");

	r->listeners = copy_list(sec, "listener", &r->nlisteners);
	for (size_t k = 0; k < r->nlisteners; k++) {
		bool found = false;

		for (size_t l = 0; l < conf->nlisteners && !found; l++)
			found = strcmp(conf->listeners[l].name, r->listeners[k]) == 0;
		if (!found && r->listeners[k][0] != '\0')
			error_at(sec, "listener", (unsigned)k,
			         "%s.listener: no listener \"%s\" is defined", path,
			         r->listeners[k]);
	}
	r->auth_users = copy_list(sec, "auth_user", &r->nauth_users);
	r->clients = xcalloc(n ? n : 1, sizeof(*r->clients));
	for (unsigned k = 0; k < n; k++)
		if (netmask_parse(cfg_getnstr(sec, "client", k), &r->clients[r->nclients]) == 0)
			r->nclients++;
	r->mail_from_domains = copy_lower_list(sec, "mail_from_domain", &r->nmail_from_domains);
	r->from_domains = copy_lower_list(sec, "from_domain", &r->nfrom_domains);
	n = cfg_size(sec, "header");
	r->headers = xcalloc(n ? n : 1, sizeof(*r->headers));
	for (unsigned k = 0; k < n; k++) {
		const char *text = cfg_getnstr(sec, "header", k), *pattern;
		size_t name_len;

		if (header_condition_split(text, &name_len, &pattern) != 0)
			continue; /* reported while parsing */
		r->headers[r->nheaders].name = xmalloc(name_len + 1);
		memcpy(r->headers[r->nheaders].name, text, name_len);
		r->headers[r->nheaders].name[name_len] = '\0';
		r->headers[r->nheaders].pattern = xstrdup(pattern);
		r->nheaders++;
	}
	r->min_recipients = (unsigned)cfg_getint(sec, "min_recipients");
	r->max_recipients = (unsigned)cfg_getint(sec, "max_recipients");
}

static void
copy_rules(cfg_t *cfg, struct config *conf, struct load_ctx *ctx)
{
	cfg_t *cls = cfg_getsec(cfg, "classification");
	unsigned n = cls != NULL ? cfg_size(cls, "rule") : 0;
	int *text_lines = xcalloc(n ? n : 1, sizeof(*text_lines));
	size_t nlines = ctx->src != NULL ? rule_text_lines(ctx->src, text_lines, n) : 0;
	char path[512];

	conf->classification_rules = xcalloc(n ? n : 1, sizeof(*conf->classification_rules));
	for (unsigned i = 0; i < n; i++) {
		cfg_t *sec = cfg_getnsec(cls, "rule", i);
		struct classification_rule_conf *r =
		    &conf->classification_rules[conf->nclassification_rules++];
		const char *file = NULL, *name;

		snprintf(path, sizeof(path), "classification.rule[%u]", i + 1);
		/* Found in the text; if that ever disagrees with libconfuse, the line where the
		 * rule ends is still a line of the rule. */
		if (nlines == n)
			cfgtext_where(ctx->src, text_lines[i], &file, &r->line);
		else
			for (size_t k = nseen; k > 0; k--)
				if (seen[k - 1].sec == sec && seen[k - 1].opt[0] == '\0') {
					file = seen[k - 1].file;
					r->line = seen[k - 1].line;
					break;
				}
		r->where = xasprintf("%s:%d", file != NULL ? file : "(embedded defaults)", r->line);
		copy_rule_conditions(sec, r, conf, path);
		r->trust_headers = -1;
		if (cfg_size(sec, "trust_headers") > 0)
			r->trust_headers = cfg_getbool(sec, "trust_headers") == cfg_true;
		r->final = cfg_getbool(sec, "final") == cfg_true;
		if ((name = cfg_getstr(sec, "stream")) != NULL) {
			char p[600];

			snprintf(p, sizeof(p), "%s.stream", path);
			r->stream = stream_ref(conf, sec, "stream", p, name);
		}
		if ((name = cfg_getstr(sec, "tenant")) != NULL) {
			const struct tenant_conf *t = config_tenant(conf, name);

			if (t == NULL && name[0] != '\0')
				error_at(sec, "tenant", 0, "%s.tenant: no tenant \"%s\" is defined",
				         path, name);
			r->tenant = t != NULL ? t->name : NULL;
		}
		if ((name = cfg_getstr(sec, "pool")) != NULL) {
			char p[600];

			snprintf(p, sizeof(p), "%s.pool", path);
			r->pool = pool_ref(conf, sec, "pool", p, name);
		}
		if ((name = cfg_getstr(sec, "campaign")) != NULL)
			r->campaign = xstrdup(name);
		if ((name = cfg_getstr(sec, "campaign_header")) != NULL)
			r->campaign_header = xstrdup(name);
	}
	free(text_lines);
}

void
copy_routing(cfg_t *cfg, struct config *conf, struct load_ctx *ctx)
{
	copy_streams(cfg, conf);
	check_streams(cfg, conf);
	copy_tenants(cfg, conf);
	copy_rules(cfg, conf, ctx);
}

void
free_routing(struct config *conf)
{
	for (size_t i = 0; i < conf->nstreams; i++)
		free(conf->streams[i].name);
	free(conf->streams);
	for (size_t i = 0; i < conf->ntenants; i++) {
		free(conf->tenants[i].name);
		free(conf->tenants[i].streams);
	}
	free(conf->tenants);
	for (size_t i = 0; i < conf->nclassification_rules; i++) {
		struct classification_rule_conf *r = &conf->classification_rules[i];

		free(r->where);
		free_list(r->listeners, r->nlisteners);
		free_list(r->auth_users, r->nauth_users);
		free(r->clients);
		free_list(r->mail_from_domains, r->nmail_from_domains);
		free_list(r->from_domains, r->nfrom_domains);
		for (size_t k = 0; k < r->nheaders; k++) {
			free(r->headers[k].name);
			free(r->headers[k].pattern);
		}
		free(r->headers);
		free(r->campaign);
		free(r->campaign_header);
	}
	free(conf->classification_rules);
}
