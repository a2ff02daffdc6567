/* load.c - shape_rules_load(): read the rules file into the schema, check what needs more than
 * one value, and compile the result into hash tables and layers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "shape/internal.h"

/* libconfuse's scanner (flex) and the schema's callbacks keep global state: one load at a
 * time. (drover.conf's loads hold a lock of their own: see shape.h.) */
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;

/* Values noted per load: every value of a file of this many is more than any rules file. */
#define WHERE_MAX ((size_t)1 << 26)

void
sh_load_error_at(struct load_ctx *ctx, const char *file, int line, const char *fmt, ...)
{
	char msg[1024], head[512];
	va_list ap;
	size_t n;

	if (ctx->nerrors++ >= LOAD_ERRORS_REPORTED)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(head, sizeof(head), "%s:%d: ", file ? file : "(builtin)", line);
	else
		snprintf(head, sizeof(head), "%s: ", file ? file : "(builtin)");
	n = strlen(head) + strlen(msg) + 2;
	ctx->errors = xrealloc(ctx->errors, ctx->errors_len + n);
	snprintf(ctx->errors + ctx->errors_len, n, "%s%s%s", ctx->errors_len ? "\n" : "", head,
	         msg);
	ctx->errors_len += strlen(ctx->errors + ctx->errors_len);
}

/* ---- Where sections and settings are ---- */

struct builder {
	struct load_ctx *ctx;
	struct shape_rules *r;
	/* Headers of top-level sections, by kind, in the order of the text. */
	int *hdr[4];
	size_t nhdr[4];
	size_t names_alloc, wsrc_alloc;
};

static const char *const top_kinds[4] = {"provider", "domain", "adaptive", "warmup"};

static void
index_headers(struct builder *b)
{
	const struct source *s = b->ctx->src;

	for (size_t i = 0; i < s->nheaders; i++) {
		if (s->headers[i].depth != 0)
			continue;
		for (int k = 0; k < 4; k++) {
			if (strcmp(s->headers[i].kind, top_kinds[k]) != 0)
				continue;
			b->hdr[k] = xrealloc(b->hdr[k], (b->nhdr[k] + 1) * sizeof(int));
			b->hdr[k][b->nhdr[k]++] = (int)i;
		}
	}
}

/* The text line of header h if its title is title (a mismatch means this scan and
 * libconfuse read the text differently: then the section's end line does). */
static int
header_text_line(struct builder *b, int h, cfg_t *sec)
{
	const struct source_header *hd;

	if (h < 0)
		return sec->line;
	hd = &b->ctx->src->headers[h];
	if ((hd->title == NULL) != (sec->title == NULL) ||
	    (hd->title != NULL && strcmp(hd->title, sec->title) != 0))
		return sec->line;
	return hd->text_line;
}

/* The header of the i-th top-level section of kind k, or -1. */
static int
top_header(struct builder *b, int k, size_t i)
{
	return i < b->nhdr[k] ? b->hdr[k][i] : -1;
}

/* The header of the j-th source section under provider header h, or -1. */
static int
source_header(struct builder *b, int h, size_t j)
{
	const struct source *s = b->ctx->src;

	if (h < 0)
		return -1;
	for (size_t i = (size_t)h + 1; i < s->nheaders && s->headers[i].depth > 0; i++) {
		if (s->headers[i].parent == h && strcmp(s->headers[i].kind, "source") == 0 &&
		    j-- == 0)
			return (int)i;
	}
	return -1;
}

static void
where_of(struct builder *b, int text_line, const char **file, unsigned *line)
{
	int l = 0;

	cfgtext_where(&b->ctx->src->t, text_line, file, &l);
	*line = l > 0 ? (unsigned)l : 0;
}

__attribute__((format(printf, 3, 4))) static void
err_at(struct builder *b, int text_line, const char *fmt, ...)
{
	char msg[1024];
	const char *file;
	unsigned line;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	where_of(b, text_line, &file, &line);
	sh_load_error_at(b->ctx, file, (int)line, "%s", msg);
}

/* The line of setting name in sec, or else the section's. */
static int
setting_line(struct builder *b, cfg_t *sec, const char *name, int sec_line)
{
	int l = sh_schema_line(b->ctx, sec, name);

	return l > 0 ? l : sec_line;
}

/* ---- Layers ---- */

static void
read_layer(struct builder *b, cfg_t *sec, struct layer *l)
{
	memset(l, 0, sizeof(*l));
	for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
		const char *name = sh_fields[f].name, *why;
		unsigned n = cfg_size(sec, name);
		bool ok = n > 0;

		for (unsigned i = 0; i < n && ok; i++) {
			if (sh_fields[f].kind == FK_RETRY && i >= SHAPE_RETRY_MAX)
				break; /* reported while parsing */
			ok = sh_field_parse((enum shape_field)f, cfg_getnstr(sec, name, i), &l->v,
			                    i > 0, &why) == 0;
		}
		if (!ok)
			continue; /* not set, or reported while parsing */
		l->set |= 1u << f;
		where_of(b, sh_schema_line(b->ctx, sec, name), &l->file[f], &l->line[f]);
	}
}

/* ---- Providers ---- */

static bool
host_lower(const char *in, char *out, size_t size)
{
	size_t len;

	if (in[0] == '*' && in[1] == '.')
		in += 2;
	else if (in[0] == '.')
		in++;
	return sh_name_lower(in, out, size, &len);
}

/* Adds a provider's domain or MX suffix; a name listed twice is an error (the answer would
 * depend on the order of the file). */
static void
add_name(struct builder *b, struct strmap *m, const char *what, cfg_t *sec, const char *value,
         int p, int line)
{
	struct shape_rules *r = b->r;
	char name[SHAPE_DEST_MAX + 2];
	int old;

	if (!host_lower(value, name, sizeof(name)))
		return; /* reported while parsing */
	if (r->nname_keys >= SHAPE_NAMES_MAX) {
		if (r->nname_keys++ == SHAPE_NAMES_MAX)
			err_at(b, line, "too many mx_suffix and domains entries (at most %d)",
			       SHAPE_NAMES_MAX);
		return;
	}
	if (r->nname_keys == b->names_alloc) {
		b->names_alloc = b->names_alloc ? b->names_alloc * 2 : 64;
		r->name_keys = xrealloc(r->name_keys, b->names_alloc * sizeof(char *));
	}
	r->name_keys[r->nname_keys] = xstrdup(name);
	old = sh_strmap_put(m, r->name_keys[r->nname_keys], strlen(name), p);
	r->nname_keys++;
	if (old >= 0)
		err_at(b, line,
		       "provider \"%s\".%s: \"%s\" is listed twice (already for provider "
		       "\"%s\")",
		       sec->title, what, name, r->providers[old].name);
}

static void
build_provider(struct builder *b, cfg_t *sec, size_t i)
{
	struct shape_rules *r = b->r;
	struct provider *pv = &r->providers[r->nproviders];
	int h = top_header(b, 0, i), line = header_text_line(b, h, sec);
	unsigned nmx = cfg_size(sec, "mx_suffix"), ndom = cfg_size(sec, "domains");
	int p = (int)r->nproviders;

	if (!sh_title_valid(sec->title)) {
		err_at(b, line,
		       "provider \"%s\": bad name (1 to %d letters, digits, '-', '_', '.')",
		       sec->title, SHAPE_NAME_MAX);
		return;
	}
	memset(pv, 0, sizeof(*pv));
	pv->name = xstrdup(sec->title);
	where_of(b, line, &pv->file, &pv->line);
	sh_strmap_init(&pv->source_index);
	r->nproviders++;
	if (sh_strmap_put(&r->provider_index, pv->name, strlen(pv->name), p) >= 0)
		err_at(b, line, "provider \"%s\": defined twice (names are case-insensitive)",
		       pv->name);
	read_layer(b, sec, &pv->layer);
	pv->merged = r->base;
	memcpy(pv->origin, r->base_origin, sizeof(pv->origin));
	sh_layer_apply(&pv->layer, SHAPE_LAYER_PROVIDER, pv->name, &pv->merged, pv->origin);

	for (unsigned k = 0; k < nmx; k++)
		add_name(b, &r->suffixes, "mx_suffix", sec, cfg_getnstr(sec, "mx_suffix", k), p,
		         setting_line(b, sec, "mx_suffix", line));
	for (unsigned k = 0; k < ndom; k++)
		add_name(b, &r->exact, "domains", sec, cfg_getnstr(sec, "domains", k), p,
		         setting_line(b, sec, "domains", line));
	if (nmx == 0 && ndom == 0)
		err_at(b, line,
		       "provider \"%s\": needs mx_suffix or domains (no mail would belong to it)",
		       pv->name);

	pv->nsources = 0;
	unsigned ns = cfg_size(sec, "source");

	pv->sources = xcalloc(ns ? ns : 1, sizeof(*pv->sources));
	pv->source_names = xcalloc(ns ? ns : 1, sizeof(char *));
	for (unsigned j = 0; j < ns; j++) {
		cfg_t *ss = cfg_getnsec(sec, "source", j);
		int sl = header_text_line(b, source_header(b, h, j), ss);

		if (!sh_title_valid(ss->title)) {
			err_at(b, sl,
			       "provider \"%s\".source \"%s\": bad name (1 to %d letters, digits, "
			       "'-', '_', '.')",
			       pv->name, ss->title, SHAPE_NAME_MAX);
			continue;
		}
		pv->source_names[pv->nsources] = xstrdup(ss->title);
		read_layer(b, ss, &pv->sources[pv->nsources]);
		if (sh_strmap_put(&pv->source_index, pv->source_names[pv->nsources],
		                  strlen(ss->title), (int)pv->nsources) >= 0)
			err_at(b, sl, "provider \"%s\".source \"%s\": defined twice", pv->name,
			       ss->title);
		pv->nsources++;
	}
}

/* ---- Domains ---- */

static void
build_domain(struct builder *b, cfg_t *sec, size_t i)
{
	struct shape_rules *r = b->r;
	struct domain_sec *d = &r->domains[r->ndomains];
	int line = header_text_line(b, top_header(b, 1, i), sec);
	char name[SHAPE_DEST_MAX + 2];
	size_t len;

	if (!sh_host_valid(sec->title) || !sh_name_lower(sec->title, name, sizeof(name), &len)) {
		err_at(b, line, "domain \"%s\": not a domain name", sec->title);
		return;
	}
	memset(d, 0, sizeof(*d));
	d->name = xstrdup(name);
	where_of(b, line, &d->file, &d->line);
	read_layer(b, sec, &d->layer);
	if (sh_strmap_put(&r->domain_index, d->name, len, (int)r->ndomains) >= 0) {
		err_at(b, line,
		       "domain \"%s\": defined twice (domains are case-insensitive): put its "
		       "settings in one",
		       sec->title);
		free(d->name);
		return;
	}
	r->ndomains++;
}

/* ---- Adaptive rules ---- */

static void
build_adaptive(struct builder *b, cfg_t *sec, size_t i)
{
	struct shape_rules *r = b->r;
	struct adaptive *a = &r->rules[r->nrules];
	int line = header_text_line(b, top_header(b, 2, i), sec);
	const char *v, *why;
	char path[128];
	int act, rc;
	PCRE2_SIZE off;
	uint64_t u;

	snprintf(path, sizeof(path), "adaptive \"%s\"", sec->title);
	if (!sh_title_valid(sec->title)) {
		err_at(b, line, "%s: bad name (1 to %d letters, digits, '-', '_', '.')", path,
		       SHAPE_NAME_MAX);
		return;
	}
	memset(a, 0, sizeof(*a));
	a->name = xstrdup(sec->title);
	where_of(b, line, &a->file, &a->line);
	a->provider = -1;
	r->nrules++; /* counted from here, so that a failure below frees what it holds */

	if ((v = cfg_getstr(sec, "provider")) != NULL &&
	    (a->provider = sh_rules_provider(r, v)) < 0 && sh_title_valid(v))
		err_at(b, setting_line(b, sec, "provider", line),
		       "%s.provider: \"%s\": no such provider section", path, v);
	if ((v = cfg_getstr(sec, "domain")) != NULL) {
		char name[SHAPE_DEST_MAX + 2];
		size_t len;

		if (cfg_getstr(sec, "provider") != NULL)
			err_at(b, setting_line(b, sec, "domain", line),
			       "%s: give provider or domain, not both (a domain scope is narrower "
			       "than its provider's)",
			       path);
		else if (sh_name_lower(v, name, sizeof(name), &len))
			a->domain = xstrdup(name);
	}
	for (unsigned k = 0; k < cfg_size(sec, "code") && k < SHAPE_LIST_MAX; k++) {
		if (sh_parse_code_pat(cfg_getnstr(sec, "code", k), &a->codes[a->ncodes], &why) == 0)
			a->ncodes++;
	}
	for (unsigned k = 0; k < cfg_size(sec, "status") && k < SHAPE_LIST_MAX; k++) {
		if (sh_parse_status_pat(cfg_getnstr(sec, "status", k), &a->status[a->nstatus],
		                        &why) == 0)
			a->nstatus++;
	}
	if ((v = cfg_getstr(sec, "text")) != NULL && *v != '\0') {
		/* Byte mode, never UTF: replies are not always valid UTF-8, and a UTF pattern
		 * would refuse to match those instead of matching what it can. */
		a->re = pcre2_compile((PCRE2_SPTR)v, PCRE2_ZERO_TERMINATED,
		                      PCRE2_CASELESS | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP |
		                          PCRE2_NO_AUTO_CAPTURE,
		                      &rc, &off, NULL);
		/* Without JIT (no executable memory) PCRE2 interprets: slower, same answers. */
		if (a->re != NULL)
			(void)pcre2_jit_compile(a->re, PCRE2_JIT_COMPLETE);
	}
	if (cfg_size(sec, "code") == 0 && cfg_size(sec, "status") == 0 &&
	    cfg_getstr(sec, "text") == NULL)
		err_at(b, line,
		       "%s: needs a condition (code, status or text): it would match every "
		       "reply, successes too",
		       path);

	a->trigger_n = 1;
	if ((v = cfg_getstr(sec, "trigger")) != NULL &&
	    sh_parse_trigger(v, &a->trigger_n, &u, &why) == 0)
		a->trigger_period_us = u * USEC;

	if ((v = cfg_getstr(sec, "action")) == NULL) {
		err_at(b, line,
		       "%s: needs an action (suspend-source, suspend-provider, limit, backoff or "
		       "bounce)",
		       path);
		act = -1;
	} else if ((act = sh_action_value(v)) >= 0) {
		a->action = (enum shape_action)act;
	}
	if ((v = cfg_getstr(sec, "duration")) == NULL)
		err_at(b, line, "%s: needs a duration (everything returns to normal by itself)",
		       path);
	else if (sh_parse_duration(v, &u, &why) == 0)
		a->duration_us = u * USEC;

	if ((v = cfg_getstr(sec, "message_rate")) != NULL)
		(void)shape_rate_parse(v, &a->message_rate, &why);
	if ((v = cfg_getstr(sec, "max_connections")) != NULL && sh_parse_count(v, &u, &why) == 0)
		a->max_connections = u <= 1000 ? (unsigned)u : 1000;
	for (unsigned k = 0; k < cfg_size(sec, "backoff_retry"); k++) {
		if (k >= SHAPE_RETRY_MAX) {
			err_at(b, setting_line(b, sec, "backoff_retry", line),
			       "%s.backoff_retry: more than %d intervals (the last one repeats)",
			       path, SHAPE_RETRY_MAX);
			break;
		}
		if (sh_parse_duration(cfg_getnstr(sec, "backoff_retry", k), &u, &why) == 0)
			a->retry_s[a->nretry++] = u;
	}
	if (act == SHAPE_ACT_LIMIT && cfg_getstr(sec, "message_rate") == NULL &&
	    cfg_getstr(sec, "max_connections") == NULL)
		err_at(b, line, "%s: action limit needs message_rate or max_connections (or both)",
		       path);
	if (act >= 0 && act != SHAPE_ACT_LIMIT) {
		if (cfg_getstr(sec, "message_rate") != NULL)
			err_at(b, setting_line(b, sec, "message_rate", line),
			       "%s.message_rate: only for action limit (this one is %s)", path,
			       shape_action_name((enum shape_action)act));
		if (cfg_getstr(sec, "max_connections") != NULL)
			err_at(b, setting_line(b, sec, "max_connections", line),
			       "%s.max_connections: only for action limit (this one is %s)", path,
			       shape_action_name((enum shape_action)act));
	}
	if (act >= 0 && act != SHAPE_ACT_BACKOFF && cfg_size(sec, "backoff_retry") > 0)
		err_at(b, setting_line(b, sec, "backoff_retry", line),
		       "%s.backoff_retry: only for action backoff (this one is %s)", path,
		       shape_action_name((enum shape_action)act));
}

/* ---- Warm-up ---- */

static void
build_warmup(struct builder *b, cfg_t *sec, size_t i)
{
	struct shape_rules *r = b->r;
	struct warmup *w = &r->warmups[r->nwarmups];
	int line = header_text_line(b, top_header(b, 3, i), sec);
	unsigned nsrc = cfg_size(sec, "sources"), nsch = cfg_size(sec, "schedule");
	unsigned nprov = cfg_size(sec, "providers");
	const char *v, *why;
	char path[128];
	uint64_t u;

	snprintf(path, sizeof(path), "warmup \"%s\"", sec->title);
	if (!sh_title_valid(sec->title)) {
		err_at(b, line, "%s: bad name (1 to %d letters, digits, '-', '_', '.')", path,
		       SHAPE_NAME_MAX);
		return;
	}
	memset(w, 0, sizeof(*w));
	w->name = xstrdup(sec->title);
	where_of(b, line, &w->file, &w->line);
	w->after = UINT64_MAX;
	r->nwarmups++;

	if (nsrc == 0)
		err_at(b, line, "%s: needs sources (the sources it warms up)", path);
	for (unsigned k = 0; k < nsrc; k++) {
		const char *s = cfg_getnstr(sec, "sources", k);
		int old;

		if (!sh_title_valid(s))
			continue; /* reported while parsing */
		if (r->nwarmup_sources == b->wsrc_alloc) {
			b->wsrc_alloc = b->wsrc_alloc ? b->wsrc_alloc * 2 : 16;
			r->warmup_sources =
			    xrealloc(r->warmup_sources, b->wsrc_alloc * sizeof(char *));
		}
		r->warmup_sources[r->nwarmup_sources] = xstrdup(s);
		old = sh_strmap_put(&r->warmup_by_source, r->warmup_sources[r->nwarmup_sources],
		                    strlen(s), (int)(r->nwarmups - 1));
		r->nwarmup_sources++;
		if (old >= 0)
			err_at(b, setting_line(b, sec, "sources", line),
			       "%s.sources: \"%s\" is in warmup \"%s\" already (a source has one "
			       "schedule)",
			       path, s, r->warmups[old].name);
	}
	if ((v = cfg_getstr(sec, "start")) == NULL)
		err_at(b, line, "%s: needs start, the first day (\"YYYY-MM-DD\", UTC)", path);
	else
		(void)sh_parse_date(v, &w->start_day, &why);

	if (nsch == 0)
		err_at(b, line, "%s: needs a schedule (daily caps, day 1 first)", path);
	if (nsch > SHAPE_SCHEDULE_MAX)
		err_at(b, setting_line(b, sec, "schedule", line),
		       "%s.schedule: more than %d days (use \"N doubling\" and after)", path,
		       SHAPE_SCHEDULE_MAX);
	w->schedule = xcalloc(nsch ? nsch : 1, sizeof(uint64_t));
	for (unsigned k = 0; k < nsch && k < SHAPE_SCHEDULE_MAX; k++) {
		const char *e = cfg_getnstr(sec, "schedule", k);
		const char *sp = strchr(e, ' ');
		char num[32];

		if (sp != NULL) {
			if (nsch != 1 || strcmp(sp, " doubling") != 0) {
				if (strcmp(sp, " doubling") == 0)
					err_at(b, setting_line(b, sec, "schedule", line),
					       "%s.schedule: \"N doubling\" is the whole schedule: "
					       "give "
					       "it alone",
					       path);
				continue;
			}
			if ((size_t)(sp - e) >= sizeof(num))
				continue;
			memcpy(num, e, (size_t)(sp - e));
			num[sp - e] = '\0';
			e = num;
			w->doubling = true;
		}
		if (sh_parse_count(e, &u, &why) == 0 && u > 0)
			w->schedule[w->nschedule++] = u;
	}
	if ((v = cfg_getstr(sec, "after")) != NULL && strcmp(v, "unlimited") != 0 &&
	    sh_parse_count(v, &u, &why) == 0)
		w->after = u;
	w->providers = xcalloc(nprov ? nprov : 1, sizeof(int));
	for (unsigned k = 0; k < nprov; k++) {
		const char *pn = cfg_getnstr(sec, "providers", k);
		int p = sh_rules_provider(r, pn);

		if (p < 0 && sh_title_valid(pn))
			err_at(b, setting_line(b, sec, "providers", line),
			       "%s.providers: \"%s\": no such provider section", path, pn);
		else if (p >= 0)
			w->providers[w->nproviders++] = p;
	}
}

/* ---- The whole ---- */

static void
index_rules(struct shape_rules *r)
{
	size_t nun = 0;

	r->unscoped = xcalloc(r->nrules ? r->nrules : 1, sizeof(uint32_t));
	for (size_t i = 0; i < r->nrules; i++) {
		if (r->rules[i].provider < 0)
			r->unscoped[nun++] = (uint32_t)i;
	}
	r->nunscoped = nun;
	for (size_t p = 0; p < r->nproviders; p++) {
		struct provider *pv = &r->providers[p];

		pv->rules = xcalloc(r->nrules ? r->nrules : 1, sizeof(uint32_t));
		for (size_t i = 0; i < r->nrules; i++) {
			if (r->rules[i].provider < 0 || r->rules[i].provider == (int)p)
				pv->rules[pv->nrules++] = (uint32_t)i;
		}
	}
}

static void
check_counts(struct builder *b, cfg_t *cfg)
{
	static const struct {
		const char *kind;
		unsigned max;
	} limits[] = {{"provider", SHAPE_PROVIDERS_MAX},
	              {"domain", SHAPE_SECTIONS_MAX},
	              {"adaptive", SHAPE_ADAPTIVE_MAX},
	              {"warmup", SHAPE_WARMUP_MAX}};

	for (size_t i = 0; i < nitems(limits); i++) {
		unsigned n = cfg_size(cfg, limits[i].kind);

		if (n > limits[i].max) {
			cfg_t *sec = cfg_getnsec(cfg, limits[i].kind, limits[i].max);

			err_at(b, header_text_line(b, top_header(b, (int)i, limits[i].max), sec),
			       "too many %s sections (at most %u)", limits[i].kind, limits[i].max);
		}
	}
}

struct shape_rules *
sh_rules_build(cfg_t *cfg, struct load_ctx *ctx, const struct shape_settings *base,
               const struct shape_origin *base_origin)
{
	struct builder b = {.ctx = ctx};
	struct shape_rules *r = xcalloc(1, sizeof(*r));
	struct layer defaults;
	unsigned n;
	size_t nsources = 0;

	b.r = r;
	atomic_init(&r->refs, 1);
	/* The file names: origins and rules keep pointing at them. */
	r->files = ctx->src->t.files;
	r->nfiles = ctx->src->t.nfiles;
	sh_strmap_init(&r->provider_index);
	sh_strmap_init(&r->exact);
	sh_strmap_init(&r->suffixes);
	sh_strmap_init(&r->domain_index);
	sh_strmap_init(&r->warmup_by_source);
	index_headers(&b);
	check_counts(&b, cfg);

	if (base != NULL)
		r->base = *base;
	else
		shape_settings_builtin(&r->base);
	for (int f = 0; f < SHAPE_FIELD_COUNT; f++) {
		r->base_origin[f] = (struct shape_origin){.layer = SHAPE_LAYER_BUILTIN};
		if (base_origin == NULL)
			continue;
		r->base_origin[f].line = base_origin[f].line;
		if (base_origin[f].file != NULL) {
			r->base_files[f] = xstrdup(base_origin[f].file);
			r->base_origin[f].file = r->base_files[f];
		}
		if (base_origin[f].name != NULL) {
			r->base_names[f] = xstrdup(base_origin[f].name);
			r->base_origin[f].name = r->base_names[f];
		}
	}
	read_layer(&b, cfg_getsec(cfg, "defaults"), &defaults);
	sh_layer_apply(&defaults, SHAPE_LAYER_DEFAULTS, NULL, &r->base, r->base_origin);

	n = cfg_size(cfg, "provider");
	n = n < SHAPE_PROVIDERS_MAX ? n : SHAPE_PROVIDERS_MAX;
	r->providers = xcalloc(n ? n : 1, sizeof(*r->providers));
	for (unsigned i = 0; i < n; i++)
		build_provider(&b, cfg_getnsec(cfg, "provider", i), i);
	for (size_t i = 0; i < r->nproviders; i++)
		nsources += r->providers[i].nsources;
	if (nsources > SHAPE_SECTIONS_MAX)
		err_at(&b, 0, "too many source sections (at most %d over all providers)",
		       SHAPE_SECTIONS_MAX);

	n = cfg_size(cfg, "domain");
	n = n < SHAPE_SECTIONS_MAX ? n : SHAPE_SECTIONS_MAX;
	r->domains = xcalloc(n ? n : 1, sizeof(*r->domains));
	for (unsigned i = 0; i < n; i++)
		build_domain(&b, cfg_getnsec(cfg, "domain", i), i);

	n = cfg_size(cfg, "adaptive");
	n = n < SHAPE_ADAPTIVE_MAX ? n : SHAPE_ADAPTIVE_MAX;
	r->rules = xcalloc(n ? n : 1, sizeof(*r->rules));
	for (unsigned i = 0; i < n; i++)
		build_adaptive(&b, cfg_getnsec(cfg, "adaptive", i), i);

	n = cfg_size(cfg, "warmup");
	n = n < SHAPE_WARMUP_MAX ? n : SHAPE_WARMUP_MAX;
	r->warmups = xcalloc(n ? n : 1, sizeof(*r->warmups));
	for (unsigned i = 0; i < n; i++)
		build_warmup(&b, cfg_getnsec(cfg, "warmup", i), i);

	index_rules(r);
	if ((r->mctx = pcre2_match_context_create(NULL)) == NULL)
		fatal("shape: out of memory for a PCRE2 match context");
	pcre2_set_match_limit(r->mctx, SHAPE_MATCH_LIMIT);
	pcre2_set_depth_limit(r->mctx, SHAPE_MATCH_LIMIT / 10);

	/* The rules own the file names now. */
	ctx->src->t.files = NULL;
	ctx->src->t.nfiles = 0;
	for (int k = 0; k < 4; k++)
		free(b.hdr[k]);
	return r;
}

static struct shape_rules *
load(const char *name, const char *text, size_t len, const struct shape_settings *base,
     const struct shape_origin *base_origin, char *err, size_t errlen)
{
	struct load_ctx ctx;
	struct source src;
	struct shape_rules *r = NULL;
	cfg_t *cfg;
	FILE *fp;
	int rc;

	memset(&ctx, 0, sizeof(ctx));
	memset(&src, 0, sizeof(src));
	ctx.src = &src;
	sh_ttab_init(&ctx.where, WHERE_MAX, false, false);
	if (err != NULL && errlen > 0)
		err[0] = '\0';

	pthread_mutex_lock(&load_lock);
	cfg = sh_schema_new(&ctx);
	rc = text != NULL ? sh_source_load_text(&src, name, text, len, &ctx)
	                  : sh_source_load(&src, name, &ctx);
	if (rc == 0) {
		/* fmemopen() refuses an empty buffer; an empty file is empty rules. */
		if (src.t.len == 0) {
			rc = CFG_SUCCESS;
		} else {
			if ((fp = fmemopen(src.t.text, src.t.len, "r")) == NULL)
				fatal("shape: fmemopen: %s", strerror(errno));
			rc = cfg_parse_fp(cfg, fp);
			fclose(fp);
		}
		if (rc != CFG_SUCCESS && ctx.nerrors == 0)
			sh_load_error_at(&ctx, name, 0, "cannot parse (libconfuse gave no reason)");
		/* A parse that stopped early left values unread: checks across settings would
		 * judge a half-read file. */
		if (rc == CFG_SUCCESS)
			r = sh_rules_build(cfg, &ctx, base, base_origin);
	}
	sh_schema_free(cfg);
	pthread_mutex_unlock(&load_lock);

	if (ctx.nerrors > 0) {
		if (ctx.nerrors > LOAD_ERRORS_REPORTED) {
			char more[64];

			snprintf(more, sizeof(more), "\n(%u more errors)",
			         ctx.nerrors - LOAD_ERRORS_REPORTED);
			ctx.errors = xrealloc(ctx.errors, ctx.errors_len + strlen(more) + 1);
			memcpy(ctx.errors + ctx.errors_len, more, strlen(more) + 1);
		}
		if (err != NULL && errlen > 0)
			strlcpy_s(err, ctx.errors, errlen);
		shape_rules_unref(r);
		r = NULL;
	}
	free(ctx.errors);
	sh_ttab_free(&ctx.where);
	sh_source_free(&src);
	return r;
}

struct shape_rules *
shape_rules_load(const char *path, const struct shape_settings *base,
                 const struct shape_origin *base_origin, char *err, size_t errlen)
{
	return load(path, NULL, 0, base, base_origin, err, errlen);
}

struct shape_rules *
shape_rules_parse(const char *name, const char *text, size_t len, const struct shape_settings *base,
                  const struct shape_origin *base_origin, char *err, size_t errlen)
{
	return load(name, text != NULL ? text : "", text != NULL ? len : 0, base, base_origin, err,
	            errlen);
}

struct shape_rules *
shape_rules_builtin(const struct shape_settings *base, const struct shape_origin *base_origin,
                    char *err, size_t errlen)
{
	return shape_rules_parse("builtin shaping.conf", shape_builtin_rules,
	                         shape_builtin_rules_len, base, base_origin, err, errlen);
}
