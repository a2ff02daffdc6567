/* load.c - the rules file: reading, checking, compiling it into a table.
 *
 *	# comment (a line whose first non-blank octet is '#')
 *	provider NAME mx SUFFIX... [domain DOMAIN...]
 *	rule CATEGORY [provider NAME] [code LIST] [status LIST] [text REGEX | text-case REGEX]
 *	decide CATEGORY|* 4xx|5xx|* transient|permanent|suppress [provider NAME]
 *
 * The regex is the rest of the line, so it needs no quoting; everything else is words. The
 * first problem stops the load and is reported as "file:line: what": a rules file with a
 * mistake in it must not half-apply at a reload.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "classify/internal.h"
#include "core/core.h"

struct parser {
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
	struct classify_table *t;
	size_t rules_alloc, decisions_alloc, providers_alloc, strings_alloc;
};

__attribute__((format(printf, 2, 3))) static int
perr(struct parser *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%u: %s", p->name, p->line, msg);
	return -1;
}

/* Next blank-separated word of the line, NUL-terminated in place; NULL at the end of the line
 * or at a '#' that starts a word (a trailing comment). */
static char *
next_word(char **cursor)
{
	char *s = *cursor, *w;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#') {
		*cursor = s;
		return NULL;
	}
	w = s;
	while (*s != '\0' && *s != ' ' && *s != '\t')
		s++;
	if (*s != '\0')
		*s++ = '\0';
	*cursor = s;
	return w;
}

static void
grow(void **v, size_t *alloc, size_t n, size_t size)
{
	if (n < *alloc)
		return;
	*alloc = *alloc ? *alloc * 2 : 16;
	*v = xrealloc(*v, *alloc * size);
}

/* ---- Providers ---- */

static bool
provider_name_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > CLASSIFY_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return false;
	}
	return true;
}

/* Lower-cases a host name or domain in place, dropping a leading "*." or "." (suffixes match
 * subdomains anyway, and people write them that way) and a trailing dot; false if what is
 * left is not a name of letters, digits, '-' and '_' in non-empty labels. */
static bool
host_clean(char **sp)
{
	char *s = *sp;
	size_t len;

	if (s[0] == '*' && s[1] == '.')
		s += 2;
	else if (s[0] == '.')
		s++;
	len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		s[--len] = '\0';
	if (len == 0 || len > 253 || s[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' && s[i + 1] == '.')
			return false;
		if (!isalnum(c) && c != '-' && c != '_' && c != '.')
			return false;
		s[i] = (char)tolower(c);
	}
	*sp = s;
	return true;
}

static int
provider_index(struct parser *p, const char *name)
{
	return strmap_get(&p->t->provider_index, name, strlen(name));
}

static int
unknown_provider(struct parser *p, const char *name)
{
	return perr(p, "unknown provider \"%s\" (declare it with a provider line first)", name);
}

static int
parse_provider(struct parser *p, char *cur)
{
	struct classify_table *t = p->t;
	char *name = next_word(&cur), *w;
	int idx, kind = -1;
	size_t added = 0;

	if (name == NULL)
		return perr(p, "provider: expected a name, then mx SUFFIX... or domain DOMAIN...");
	if (!provider_name_valid(name))
		return perr(p, "bad provider name \"%s\" (1 to %d letters, digits, '-', '_', '.')",
		            name, CLASSIFY_NAME_MAX);
	/* A provider may be declared over several lines, each adding names. */
	if ((idx = provider_index(p, name)) < 0) {
		if (t->nproviders >= CLASSIFY_PROVIDERS_MAX)
			return perr(p, "too many providers (at most %d)", CLASSIFY_PROVIDERS_MAX);
		grow((void **)&t->providers, &p->providers_alloc, t->nproviders,
		     sizeof(*t->providers));
		idx = (int)t->nproviders;
		t->providers[t->nproviders++] = xstrdup(name);
		strmap_put(&t->provider_index, t->providers[idx], strlen(name), idx);
	}
	while ((w = next_word(&cur)) != NULL) {
		char *host = w;
		int old;

		if (strcmp(w, "mx") == 0) {
			kind = 0;
			continue;
		}
		if (strcmp(w, "domain") == 0) {
			kind = NAME_EXACT;
			continue;
		}
		if (kind < 0)
			return perr(p, "provider %s: expected mx or domain before \"%s\"", name, w);
		if (!host_clean(&host))
			return perr(p, "provider %s: bad host name or domain \"%s\"", name, w);
		if (t->nstrings >= CLASSIFY_NAMES_MAX)
			return perr(p, "too many MX suffixes and domains (at most %d)",
			            CLASSIFY_NAMES_MAX);
		grow((void **)&t->strings, &p->strings_alloc, t->nstrings, sizeof(*t->strings));
		t->strings[t->nstrings] = xstrdup(host);
		old = strmap_put(&t->names, t->strings[t->nstrings], strlen(host), idx | kind);
		if (old >= 0) {
			free(t->strings[t->nstrings]);
			return perr(p, "\"%s\" is listed twice (already for provider %s)", host,
			            t->providers[old & ~NAME_EXACT]);
		}
		t->nstrings++;
		added++;
	}
	if (added == 0)
		return perr(p, "provider %s: expected mx SUFFIX... or domain DOMAIN...", name);
	return 0;
}

/* ---- Rules ---- */

static int
category_word(struct parser *p, const char *w, enum classify_category *out)
{
	if (classify_category_parse(w, out) == 0)
		return 0;
	return perr(p,
	            "unknown category \"%s\" (expected bad-mailbox, bad-domain, inactive-mailbox, "
	            "quota-issues, spam-related, policy-related, content-related, virus-related, "
	            "routing-errors, relaying-issues, no-answer-from-host, bad-connection, "
	            "protocol-errors, dns-failure, auth-failed, rate-limited, message-expired or "
	            "other)",
	            w);
}

/* "550", "55x", "5xx" (case-insensitive x). */
static bool
code_parse(const char *s, struct code_pat *c)
{
	if (strlen(s) != 3 || s[0] < '2' || s[0] > '5')
		return false;
	c->d[0] = (int8_t)(s[0] - '0');
	for (int i = 1; i < 3; i++) {
		if (s[i] == 'x' || s[i] == 'X')
			c->d[i] = -1;
		else if (isdigit((unsigned char)s[i]) && c->d[i - 1] >= 0)
			c->d[i] = (int8_t)(s[i] - '0');
		else
			return false; /* "5x0" would be a strange thing to mean */
	}
	return true;
}

/* "5.1.1", "5.1.*", "5.*", "*.7.1", "*": parts of 1-3 digits or '*'; fewer than three parts
 * only when the last is '*' (which then stands for the rest). */
static bool
status_pat_parse(const char *s, struct status_pat *st)
{
	int n = 0;

	for (;;) {
		size_t len = strcspn(s, ".");

		if (n == 3)
			return false;
		if (len == 1 && s[0] == '*') {
			st->p[n] = -1;
		} else if (len >= 1 && len <= 3 && strspn(s, "0123456789") >= len) {
			st->p[n] = (int16_t)atoi(s);
			if (n == 0 && st->p[0] != 2 && st->p[0] != 4 && st->p[0] != 5)
				return false;
		} else {
			return false;
		}
		n++;
		if (s[len] == '\0')
			break;
		s += len + 1;
	}
	if (n < 3 && st->p[n - 1] != -1)
		return false; /* "5.1" is a typo more often than a prefix: say "5.1.*" */
	for (; n < 3; n++)
		st->p[n] = -1;
	return true;
}

static int
parse_list(struct parser *p, const char *what, char *w, struct rule *r)
{
	bool code = strcmp(what, "code") == 0;

	for (char *item = w, *comma;; item = comma + 1) {
		if ((comma = strchr(item, ',')) != NULL)
			*comma = '\0';
		/* strtok() would skip an empty item; "550,,551" is a typo worth naming. */
		if (*item == '\0')
			return perr(p, "%s: empty item in the list", what);
		if (code) {
			if (r->ncodes >= CLASSIFY_LIST_MAX)
				return perr(p, "more than %d codes in one rule", CLASSIFY_LIST_MAX);
			if (!code_parse(item, &r->codes[r->ncodes]))
				return perr(
				    p,
				    "bad code \"%s\" (expected 3 digits like 550, or a class "
				    "like 55x or 5xx)",
				    item);
			r->ncodes++;
		} else {
			if (r->nstatus >= CLASSIFY_LIST_MAX)
				return perr(p, "more than %d statuses in one rule",
				            CLASSIFY_LIST_MAX);
			if (!status_pat_parse(item, &r->status[r->nstatus]))
				return perr(p,
				            "bad status \"%s\" (expected class.subject.detail like "
				            "5.1.1, with * for any part: 5.1.*, 5.*, *.7.1)",
				            item);
			r->nstatus++;
		}
		if (comma == NULL)
			return 0;
	}
}

static int
compile_regex(struct parser *p, char *re, bool caseless, struct rule *r)
{
	size_t len = strlen(re), off;
	int rc;

	/* The regex is the rest of the line: trailing blanks are layout, not pattern (write
	 * \x20 for a trailing space). */
	while (len > 0 && (re[len - 1] == ' ' || re[len - 1] == '\t'))
		re[--len] = '\0';
	if (len == 0)
		return perr(p, "text: expected a regex (the rest of the line)");
	/* Byte mode, never UTF: replies are not always valid UTF-8, and a UTF pattern would
	 * refuse to match those instead of matching what it can. */
	r->re = pcre2_compile((PCRE2_SPTR)re, len,
	                      (caseless ? PCRE2_CASELESS : 0) | PCRE2_NEVER_UTF | PCRE2_NEVER_UCP |
	                          PCRE2_NO_AUTO_CAPTURE,
	                      &rc, &off, NULL);
	if (r->re == NULL) {
		PCRE2_UCHAR msg[256];

		pcre2_get_error_message(rc, msg, sizeof(msg));
		return perr(p, "bad regex at offset %zu: %s", off, (const char *)msg);
	}
	/* Without JIT (unsupported CPU, no executable memory) PCRE2 interprets the same pattern:
	 * slower, same answers. */
	(void)pcre2_jit_compile(r->re, PCRE2_JIT_COMPLETE);
	return 0;
}

static int
parse_rule(struct parser *p, char *cur)
{
	struct classify_table *t = p->t;
	char *w = next_word(&cur);
	struct rule *r;
	bool have_provider = false;

	if (w == NULL)
		return perr(p, "rule: expected a category, then conditions");
	if (t->nrules >= CLASSIFY_RULES_MAX)
		return perr(p, "too many rules (at most %d)", CLASSIFY_RULES_MAX);
	grow((void **)&t->rules, &p->rules_alloc, t->nrules, sizeof(*t->rules));
	r = &t->rules[t->nrules];
	memset(r, 0, sizeof(*r));
	r->line = p->line;
	r->provider = -1;
	if (category_word(p, w, &r->category) < 0)
		return -1;
	/* The rule counts from here, so that a failure below frees what it compiled. */
	t->nrules++;
	while ((w = next_word(&cur)) != NULL) {
		char *v;

		if (strcmp(w, "text") == 0 || strcmp(w, "text-case") == 0) {
			if (r->re != NULL)
				return perr(p, "text given twice");
			return compile_regex(p, cur, strcmp(w, "text") == 0, r);
		}
		if (strcmp(w, "provider") != 0 && strcmp(w, "code") != 0 &&
		    strcmp(w, "status") != 0)
			return perr(p,
			            "unknown condition \"%s\" (expected provider, code, status, "
			            "text or text-case)",
			            w);
		if ((v = next_word(&cur)) == NULL)
			return perr(p, "%s: expected a value", w);
		if (strcmp(w, "provider") == 0) {
			if (have_provider)
				return perr(p, "provider given twice");
			if ((r->provider = provider_index(p, v)) < 0)
				return unknown_provider(p, v);
			have_provider = true;
		} else if (strcmp(w, "code") == 0) {
			if (r->ncodes > 0)
				return perr(p, "code given twice (list several as 550,551)");
			if (parse_list(p, w, v, r) < 0)
				return -1;
		} else {
			if (r->nstatus > 0)
				return perr(p, "status given twice (list several as 5.1.1,5.1.10)");
			if (parse_list(p, w, v, r) < 0)
				return -1;
		}
	}
	return 0;
}

/* ---- Decisions ---- */

static int
parse_decide(struct parser *p, char *cur)
{
	struct classify_table *t = p->t;
	char *cat = next_word(&cur), *klass = next_word(&cur), *action = next_word(&cur), *w;
	struct decision d = {.line = p->line, .provider = -1, .category = -1};
	enum classify_category c;

	if (cat == NULL || klass == NULL || action == NULL)
		return perr(p, "decide: expected CATEGORY|* 4xx|5xx|* transient|permanent|suppress "
		               "[provider NAME]");
	if (strcmp(cat, "*") != 0) {
		if (category_word(p, cat, &c) < 0)
			return -1;
		d.category = (int)c;
	}
	if (strcmp(klass, "4xx") == 0 || strcmp(klass, "4XX") == 0)
		d.klass = 4;
	else if (strcmp(klass, "5xx") == 0 || strcmp(klass, "5XX") == 0)
		d.klass = 5;
	else if (strcmp(klass, "*") != 0)
		return perr(p, "bad class \"%s\" (expected 4xx, 5xx or *)", klass);
	if (strcmp(action, "transient") == 0)
		d.action = CLASSIFY_TRANSIENT;
	else if (strcmp(action, "permanent") == 0)
		d.action = CLASSIFY_PERMANENT;
	else if (strcmp(action, "suppress") == 0)
		d.action = CLASSIFY_SUPPRESS;
	else
		return perr(p, "bad action \"%s\" (expected transient, permanent or suppress)",
		            action);
	if ((w = next_word(&cur)) != NULL) {
		char *v = next_word(&cur);

		if (strcmp(w, "provider") != 0 || v == NULL)
			return perr(p, "decide: after the action, only provider NAME");
		if ((d.provider = provider_index(p, v)) < 0)
			return unknown_provider(p, v);
		if ((w = next_word(&cur)) != NULL)
			return perr(p, "decide: unexpected \"%s\" after provider %s", w, v);
	}
	if (t->ndecisions >= CLASSIFY_RULES_MAX)
		return perr(p, "too many decisions (at most %d)", CLASSIFY_RULES_MAX);
	grow((void **)&t->decisions, &p->decisions_alloc, t->ndecisions, sizeof(*t->decisions));
	t->decisions[t->ndecisions++] = d;
	return 0;
}

/* ---- The file ---- */

static int
parse_line(struct parser *p, char *line)
{
	char *cur = line, *w = next_word(&cur);

	if (w == NULL)
		return 0; /* blank or comment */
	if (strcmp(w, "rule") == 0)
		return parse_rule(p, cur);
	if (strcmp(w, "provider") == 0)
		return parse_provider(p, cur);
	if (strcmp(w, "decide") == 0)
		return parse_decide(p, cur);
	return perr(p, "unknown directive \"%s\" (expected provider, rule or decide)", w);
}

/* Can a rule's code condition match a reply of this class (code / 100, 0 for none)? */
static bool
rule_in_class(const struct rule *r, int klass)
{
	if (r->ncodes == 0)
		return true;
	for (unsigned i = 0; i < r->ncodes; i++) {
		if (r->codes[i].d[0] == klass)
			return true;
	}
	return false;
}

static void
finish(struct classify_table *t, size_t cache_entries)
{
	for (int c = 0; c < CLASSES; c++) {
		t->by_class[c] = xcalloc(t->nrules ? t->nrules : 1, sizeof(uint32_t));
		for (size_t i = 0; i < t->nrules; i++) {
			if (rule_in_class(&t->rules[i], c))
				t->by_class[c][t->nby_class[c]++] = (uint32_t)i;
		}
	}
	if ((t->mctx = pcre2_match_context_create(NULL)) == NULL)
		fatal("out of memory for a PCRE2 match context");
	pcre2_set_match_limit(t->mctx, CLASSIFY_MATCH_LIMIT);
	pcre2_set_depth_limit(t->mctx, CLASSIFY_MATCH_LIMIT / 10);
	t->cache = cache_entries > 0 ? cache_new(cache_entries) : NULL;
}

struct classify_table *
classify_parse(const char *name, const char *text, size_t len, size_t cache_entries, char *err,
               size_t errlen)
{
	struct parser p = {.name = name, .err = err, .errlen = errlen};
	char *line = xmalloc(CLASSIFY_LINE_MAX + 1);
	size_t pos = 0;

	p.t = xcalloc(1, sizeof(*p.t));
	atomic_init(&p.t->refs, 1);
	atomic_init(&p.t->uncachable, 0);
	p.t->name = xstrdup(name);
	strmap_init(&p.t->provider_index);
	strmap_init(&p.t->names);
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t next = nl != NULL ? (size_t)(nl - text) + 1 : len;
		size_t n = (nl != NULL ? (size_t)(nl - text) : len) - pos;

		p.line++;
		if (n > 0 && text[pos + n - 1] == '\r')
			n--;
		if (n > CLASSIFY_LINE_MAX) {
			perr(&p, "line too long (%zu octets, at most %d)", n, CLASSIFY_LINE_MAX);
			goto fail;
		}
		if (memchr(text + pos, '\0', n) != NULL) {
			perr(&p, "NUL octet in the line");
			goto fail;
		}
		memcpy(line, text + pos, n);
		line[n] = '\0';
		if (parse_line(&p, line) < 0)
			goto fail;
		pos = next;
	}
	free(line);
	finish(p.t, cache_entries);
	return p.t;
fail:
	free(line);
	classify_unref(p.t);
	return NULL;
}

struct classify_table *
classify_load(const char *path, size_t cache_entries, char *err, size_t errlen)
{
	struct classify_table *t;
	FILE *f = fopen(path, "rb");
	char *text = NULL;
	size_t len = 0, alloc = 0, n;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (len == alloc) {
			alloc = alloc ? alloc * 2 : 64 * 1024;
			text = xrealloc(text, alloc);
		}
		n = fread(text + len, 1, alloc - len, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
		fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	t = classify_parse(path, text, len, cache_entries, err, errlen);
	free(text);
	return t;
}
