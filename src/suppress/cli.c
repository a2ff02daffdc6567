/* cli.c - `drover suppress ...`: the operator's hands on the suppression list.
 *
 * Reading actions (check, list, export) open the list read-only, so they run beside the
 * daemon and never create a list by mistake (a mistyped --dir is an error, not an empty
 * answer). Writing actions open it read-write; LMDB serialises them with the daemon's
 * writer. Exit status: 0 done, 1 a negative answer (check: not suppressed; remove: no such
 * entry; import: some lines refused), 2 usage or store error.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "suppress/suppress.h"

/* Refused import lines reported one by one; past this only counted (a wrong file would
 * otherwise print a million lines). */
#define CLI_IMPORT_ERRORS_SHOWN 20

enum {
	O_TENANT = 0x01,
	O_REASON = 0x02,
	O_EXPIRES = 0x04,
	O_SOURCE = 0x08,
	O_JSON = 0x10,
	O_EXPIRED = 0x20,
};

struct action;

struct cli {
	const struct action *action;
	const char *dir;
	const char *tenant; /* NULL: not given */
	const char *reason;
	const char *expires;
	const char *source;
	bool json, expired;
	int npos;
	char *pos[2];
};

struct action {
	const char *name;
	int npos;        /* positional arguments it takes */
	const char *arg; /* what the positional argument is: "ADDRESS" (checked), "FILE" */
	unsigned opts;   /* O_* it accepts (--dir always) */
	bool write;      /* opens the list read-write */
	int (*run)(struct cli *, struct suppress *);
	const char *usage;
};

static int cli_add(struct cli *, struct suppress *);
static int cli_remove(struct cli *, struct suppress *);
static int cli_check(struct cli *, struct suppress *);
static int cli_list(struct cli *, struct suppress *);
static int cli_import(struct cli *, struct suppress *);
static int cli_export(struct cli *, struct suppress *);
static int cli_sweep(struct cli *, struct suppress *);

static const struct action actions[] = {
    {"add", 1, "ADDRESS", O_TENANT | O_REASON | O_EXPIRES | O_SOURCE, true, cli_add,
     "add ADDRESS [--tenant T] [--reason R] [--expires WHEN] [--source TEXT]"},
    {"remove", 1, "ADDRESS", O_TENANT, true, cli_remove, "remove ADDRESS [--tenant T]"},
    {"check", 1, "ADDRESS", O_TENANT, false, cli_check, "check ADDRESS [--tenant T]"},
    {"list", 0, NULL, O_TENANT | O_JSON | O_EXPIRED, false, cli_list,
     "list [--tenant T] [--json] [--expired]"},
    {"import", 1, "FILE", O_TENANT | O_REASON | O_EXPIRES | O_SOURCE, true, cli_import,
     "import FILE|- [--tenant T] [--reason R] [--expires WHEN] [--source TEXT]"},
    {"export", 0, NULL, O_TENANT | O_EXPIRED, false, cli_export, "export [--tenant T] [--expired]"},
    {"sweep", 0, NULL, 0, true, cli_sweep, "sweep"},
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: drover suppress <action> [--dir DIR] [options]\n\nactions:\n");
	for (size_t i = 0; i < nitems(actions); i++)
		fprintf(out, "  %s\n", actions[i].usage);
	fprintf(out,
	        "\n"
	        "  ADDRESS   local@domain, or @domain for every address at that domain\n"
	        "  --tenant  the tenant the entry applies to (default: every tenant, global)\n"
	        "  --reason  hard-bounce, complaint, unsubscribe, manual (add's default) or\n"
	        "            import (import's default)\n"
	        "  --expires 30d, 12h, 90m, 2w, an RFC 3339 time, or never (the default)\n"
	        "  --dir     the list's directory (default %s)\n"
	        "\n"
	        "check exits 0 if the address is suppressed, 1 if not; every action exits 2 on a\n"
	        "usage or store error. See docs/suppression.md.\n",
	        SUPPRESS_DEF_DIR);
}

/* 2, after saying what is wrong and how the action is used. */
static int
usage_error(const struct action *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "drover suppress: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (a != NULL)
		fprintf(stderr, "\nusage: drover suppress %s [--dir DIR]\n", a->usage);
	else {
		fprintf(stderr, "\n");
		usage(stderr);
	}
	return 2;
}

static const struct {
	const char *name;
	unsigned bit;
	bool flag; /* takes no value */
} options[] = {
    {"--tenant", O_TENANT, false}, {"--reason", O_REASON, false}, {"--expires", O_EXPIRES, false},
    {"--source", O_SOURCE, false}, {"--json", O_JSON, true},      {"--expired", O_EXPIRED, true},
    {"--dir", 0, false},
};

static const char **
option_slot(struct cli *c, unsigned bit)
{
	switch (bit) {
	case O_TENANT:
		return &c->tenant;
	case O_REASON:
		return &c->reason;
	case O_EXPIRES:
		return &c->expires;
	case O_SOURCE:
		return &c->source;
	default:
		return &c->dir;
	}
}

/* Options anywhere after the action, "--opt value" or "--opt=value". */
static int
parse_args(struct cli *c, const struct action *a, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const char *arg = argv[i], *eq;
		size_t k;

		if (arg[0] != '-' || arg[1] == '\0' || strcmp(arg, "--") == 0) {
			if (strcmp(arg, "--") == 0 && i + 1 < argc)
				arg = argv[++i]; /* an address that starts with '-' */
			if (c->npos == a->npos)
				return usage_error(a, "%s: unexpected argument \"%s\"", a->name,
				                   arg);
			c->pos[c->npos++] = (char *)arg;
			continue;
		}
		eq = strchr(arg, '=');
		for (k = 0; k < nitems(options); k++) {
			size_t n = strlen(options[k].name);

			if (strncmp(arg, options[k].name, n) == 0 &&
			    (arg[n] == '\0' || arg[n] == '='))
				break;
		}
		if (k == nitems(options))
			return usage_error(a, "%s: unknown option %s", a->name, arg);
		if (options[k].bit != 0 && !(a->opts & options[k].bit))
			return usage_error(a, "%s: %s does not apply", a->name, options[k].name);
		if (options[k].flag) {
			if (eq != NULL)
				return usage_error(a, "%s takes no value", options[k].name);
			if (options[k].bit == O_JSON)
				c->json = true;
			else
				c->expired = true;
			continue;
		}
		if (eq != NULL)
			*option_slot(c, options[k].bit) = eq + 1;
		else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
			*option_slot(c, options[k].bit) = argv[++i];
		else /* "--tenant --dir x" is a forgotten value, not a tenant "--dir" */
			return usage_error(a, "%s needs a value (%s=VALUE if it starts with --)",
			                   options[k].name, options[k].name);
	}
	if (c->npos < a->npos)
		return usage_error(a, "%s: missing %s", a->name, a->arg);
	return 0;
}

/* --expires: a duration from now, an absolute time, or never. */
static int
parse_expires(const char *text, uint64_t now, uint64_t *us)
{
	static const struct {
		char unit;
		uint64_t secs;
	} units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 7 * 86400}};
	char *end;
	unsigned long long n;

	if (strcmp(text, "never") == 0) {
		*us = 0;
		return 0;
	}
	errno = 0;
	n = strtoull(text, &end, 10);
	if (end != text && errno == 0 && end[0] != '\0' && end[1] == '\0') {
		for (size_t i = 0; i < nitems(units); i++)
			if (*end == units[i].unit && n > 0 &&
			    n < 100000ULL * 86400 / units[i].secs) {
				*us = now + n * units[i].secs * USEC;
				return 0;
			}
		return -1;
	}
	/* A bare number would be ambiguous (seconds from now? a Unix time?): a unit or a
	 * date is required. */
	if (*end == '\0')
		return -1;
	return suppress_time_parse(text, us);
}

/* The record the options describe (add, import defaults). 0, or 2 after a message. */
static int
record_from_options(struct cli *c, const struct action *a, enum suppress_reason def,
                    struct suppress_record *rec)
{
	memset(rec, 0, sizeof(*rec));
	rec->tenant = c->tenant;
	rec->reason = def;
	rec->source = c->source;
	if (c->reason != NULL && suppress_reason_parse(c->reason, &rec->reason) < 0)
		return usage_error(a,
		                   "--reason \"%s\": hard-bounce, complaint, unsubscribe, manual "
		                   "or import",
		                   c->reason);
	if (c->expires != NULL && parse_expires(c->expires, time_now_us(), &rec->expires_us) < 0)
		return usage_error(a,
		                   "--expires \"%s\": a duration (30d, 12h, 90m, 2w), an RFC "
		                   "3339 time or never",
		                   c->expires);
	return 0;
}

static const char *
tenant_label(const char *tenant)
{
	return tenant == NULL || *tenant == '\0' ? "global" : tenant;
}

static void
time_or_never(uint64_t us, char *buf, size_t size)
{
	if (us == 0)
		strlcpy_s(buf, "never", size);
	else
		time_rfc3339(us, buf, size);
}

/* ---- actions ---- */

static int
cli_add(struct cli *c, struct suppress *list)
{
	const struct action *a = c->action;
	char err[512], norm[SUPPRESS_ADDRESS_MAX + 1];
	struct suppress_record rec;
	enum suppress_status st;
	int rc;

	if ((rc = record_from_options(c, a, SUPPRESS_MANUAL, &rec)) != 0)
		return rc;
	rec.address = c->pos[0];
	if ((st = suppress_add(list, &rec, err, sizeof(err))) != SUPPRESS_OK) {
		fprintf(stderr, "drover suppress: add: %s\n", err);
		return 2;
	}
	suppress_address_normalize(rec.address, !suppress_local_exact(list), norm, sizeof(norm),
	                           NULL);
	if (norm[0] == '@')
		printf("suppressed every address at %s (%s, %s)\n", norm + 1,
		       tenant_label(rec.tenant), suppress_reason_name(rec.reason));
	else
		printf("suppressed %s (%s, %s)\n", norm, tenant_label(rec.tenant),
		       suppress_reason_name(rec.reason));
	return 0;
}

static int
cli_remove(struct cli *c, struct suppress *list)
{
	char err[512];
	enum suppress_status st = suppress_remove(list, c->tenant, c->pos[0], err, sizeof(err));

	switch (st) {
	case SUPPRESS_OK:
		printf("removed %s (%s)\n", c->pos[0], tenant_label(c->tenant));
		return 0;
	case SUPPRESS_NOT_FOUND:
		printf("not in the list: %s (%s)\n", c->pos[0], tenant_label(c->tenant));
		return 1;
	default:
		fprintf(stderr, "drover suppress: remove: %s\n", err);
		return 2;
	}
}

static int
cli_check(struct cli *c, struct suppress *list)
{
	char added[40], expires[40];
	struct suppress_entry e;
	int r;

	if ((r = suppress_check(list, c->tenant, c->pos[0], &e)) < 0) {
		fprintf(stderr, "drover suppress: check: cannot read the list\n");
		return 2;
	}
	if (r == 0) {
		printf("not suppressed: %s (%s)\n", c->pos[0], tenant_label(c->tenant));
		return 1;
	}
	time_rfc3339(e.added_us, added, sizeof(added));
	time_or_never(e.expires_us, expires, sizeof(expires));
	printf("suppressed: %s by %s (%s, %s, added %s, expires %s)%s%s\n", c->pos[0], e.address,
	       tenant_label(e.tenant), suppress_reason_name(e.reason), added, expires,
	       e.source[0] ? ": " : "", e.source);
	return 0;
}

/* Stored text is valid UTF-8 (key.c checks and repairs it), but a damaged record must cost
 * a field, not the line: json_string() refuses invalid UTF-8. */
static json_t *
jstr(const char *s)
{
	json_t *j = json_string(s);

	return j != NULL ? j : json_null();
}

struct list_ctx {
	bool json;
	uint64_t count;
};

static int
list_one(void *arg, const struct suppress_entry *e)
{
	struct list_ctx *ctx = arg;
	char added[40], expires[40];

	ctx->count++;
	time_rfc3339(e->added_us, added, sizeof(added));
	if (ctx->json) {
		json_t *o = json_object();
		char *text;

		json_object_set_new(o, "tenant", jstr(e->tenant));
		json_object_set_new(o, "address", jstr(e->address));
		json_object_set_new(o, "reason", json_string(suppress_reason_name(e->reason)));
		json_object_set_new(o, "added", json_string(added));
		if (e->expires_us != 0) {
			time_rfc3339(e->expires_us, expires, sizeof(expires));
			json_object_set_new(o, "expires", json_string(expires));
		} else
			json_object_set_new(o, "expires", json_null());
		json_object_set_new(o, "source", e->source[0] ? jstr(e->source) : json_null());
		text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		if (text != NULL)
			puts(text);
		free(text);
		json_decref(o);
		return 0;
	}
	time_or_never(e->expires_us, expires, sizeof(expires));
	printf("%-16s %-40s %-11s %-27s %-27s %s\n", e->tenant[0] ? e->tenant : "-", e->address,
	       suppress_reason_name(e->reason), added, expires, e->source);
	return 0;
}

static int
cli_list(struct cli *c, struct suppress *list)
{
	struct list_ctx ctx = {.json = c->json};

	if (!c->json)
		printf("%-16s %-40s %-11s %-27s %-27s %s\n", "TENANT", "ADDRESS", "REASON", "ADDED",
		       "EXPIRES", "SOURCE");
	if (suppress_foreach(list, c->tenant, c->expired ? SUPPRESS_FOREACH_EXPIRED : 0, list_one,
	                     &ctx) < 0) {
		fprintf(stderr, "drover suppress: list: cannot read the list\n");
		return 2;
	}
	if (!c->json)
		printf("%llu entr%s\n", (unsigned long long)ctx.count,
		       ctx.count == 1 ? "y" : "ies");
	return 0;
}

struct import_ctx {
	const char *file;
	uint64_t shown;
};

static void
import_error(void *arg, uint64_t lineno, const char *why)
{
	struct import_ctx *ctx = arg;

	if (ctx->shown++ < CLI_IMPORT_ERRORS_SHOWN)
		fprintf(stderr, "%s:%llu: %s\n", ctx->file, (unsigned long long)lineno, why);
}

static int
cli_import(struct cli *c, struct suppress *list)
{
	const struct action *a = c->action;
	struct import_ctx ctx = {.file = c->pos[0]};
	struct suppress_import_result res;
	struct suppress_record def;
	uint64_t start = time_mono_us();
	bool is_stdin = strcmp(c->pos[0], "-") == 0;
	FILE *in;
	char err[512];
	int rc;

	if ((rc = record_from_options(c, a, SUPPRESS_IMPORT, &def)) != 0)
		return rc;
	if (is_stdin) {
		in = stdin;
		ctx.file = "(stdin)";
	} else if ((in = fopen(c->pos[0], "r")) == NULL) {
		fprintf(stderr, "drover suppress: import: %s: %s\n", c->pos[0], strerror(errno));
		return 2;
	}
	rc = suppress_import(list, in, &def, import_error, &ctx, &res, err, sizeof(err));
	if (!is_stdin)
		fclose(in);
	if (ctx.shown > CLI_IMPORT_ERRORS_SHOWN)
		fprintf(stderr, "%s: %llu more lines refused\n", ctx.file,
		        (unsigned long long)(ctx.shown - CLI_IMPORT_ERRORS_SHOWN));
	if (rc < 0) {
		fprintf(stderr, "drover suppress: import: %s\n", err);
		return 2;
	}
	printf("imported %llu entries from %s (%llu lines, %llu refused) in %.2f s\n",
	       (unsigned long long)res.imported, ctx.file, (unsigned long long)res.lines,
	       (unsigned long long)res.malformed, (double)(time_mono_us() - start) / USEC);
	return res.malformed > 0 ? 1 : 0;
}

/* One CSV field (RFC 4180): quoted if it holds a comma or a quote, would lose blanks at
 * either end, or would start a comment line at import. */
static void
csv_field(const char *s, bool last)
{
	size_t n = strlen(s);
	bool quote =
	    strpbrk(s, ",\"") != NULL || s[0] == '#' ||
	    (n > 0 && (s[0] == ' ' || s[0] == '\t' || s[n - 1] == ' ' || s[n - 1] == '\t'));

	if (!quote)
		fputs(s, stdout);
	else {
		putchar('"');
		for (; *s != '\0'; s++) {
			if (*s == '"')
				putchar('"');
			putchar(*s);
		}
		putchar('"');
	}
	putchar(last ? '\n' : ',');
}

static int
export_one(void *arg, const struct suppress_entry *e)
{
	char added[40], expires[40] = "";

	time_rfc3339(e->added_us, added, sizeof(added));
	if (e->expires_us != 0)
		time_rfc3339(e->expires_us, expires, sizeof(expires));
	csv_field(e->tenant, false);
	csv_field(e->address, false);
	csv_field(suppress_reason_name(e->reason), false);
	csv_field(added, false);
	csv_field(expires, false);
	csv_field(e->source, true);
	return ferror(stdout) ? -1 : 0;
}

static int
cli_export(struct cli *c, struct suppress *list)
{
	/* The header makes the file importable as it is (suppress_import_parse). */
	printf("tenant,address,reason,added,expires,source\n");
	if (suppress_foreach(list, c->tenant, c->expired ? SUPPRESS_FOREACH_EXPIRED : 0, export_one,
	                     NULL) != 0) {
		fprintf(stderr, "drover suppress: export: %s\n",
		        ferror(stdout) ? strerror(errno) : "cannot read the list");
		return 2;
	}
	return 0;
}

static int
cli_sweep(struct cli *c, struct suppress *list)
{
	int64_t n = suppress_sweep(list, time_now_us());

	if (n < 0) {
		fprintf(stderr, "drover suppress: sweep failed (see the log above)\n");
		return 2;
	}
	printf("%lld expired entr%s removed\n", (long long)n, n == 1 ? "y" : "ies");
	return 0;
}

int
suppress_cli(int argc, char **argv, const char *default_dir)
{
	struct cli c = {.dir = default_dir != NULL ? default_dir : SUPPRESS_DEF_DIR};
	const struct action *a = NULL;
	struct suppress *list;
	char err[512];
	int rc;

	if (argc < 2)
		return usage_error(NULL, "an action is needed");
	if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < nitems(actions); i++)
		if (strcmp(argv[1], actions[i].name) == 0)
			a = &actions[i];
	if (a == NULL)
		return usage_error(NULL, "unknown action \"%s\"", argv[1]);
	c.action = a;
	if ((rc = parse_args(&c, a, argc - 2, argv + 2)) != 0)
		return rc;
	if (c.dir[0] == '\0')
		return usage_error(a, "--dir needs a directory");
	if (c.tenant != NULL && strlen(c.tenant) > SUPPRESS_TENANT_MAX)
		return usage_error(a, "--tenant: at most %d characters", SUPPRESS_TENANT_MAX);
	/* Before opening anything: suppress_check() would call "postmaster" not suppressed
	 * (it cannot be in the list), and an operator who typed it wants to know it is not
	 * an address. */
	if (a->arg != NULL && strcmp(a->arg, "ADDRESS") == 0) {
		char norm[SUPPRESS_ADDRESS_MAX + 1];
		const char *why;

		if (suppress_address_normalize(c.pos[0], true, norm, sizeof(norm), &why) < 0) {
			fprintf(stderr, "drover suppress: %s: \"%s\": %s\n", a->name, c.pos[0],
			        why);
			return 2;
		}
	}
	list = suppress_open(c.dir, NULL, a->write ? 0 : SUPPRESS_READONLY, err, sizeof(err));
	if (list == NULL) {
		fprintf(stderr, "drover suppress: %s\n", err);
		return 2;
	}
	rc = a->run(&c, list);
	suppress_close(list);
	if (fflush(stdout) != 0 && rc != 2) {
		fprintf(stderr, "drover suppress: writing: %s\n", strerror(errno));
		rc = 2;
	}
	return rc;
}
