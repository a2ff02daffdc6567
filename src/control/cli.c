/* cli.c - the drover commands that ask a running server through its admin API (docs/operations.md,
 * "Control API"): `drover queue summary`, `inspect`, `top`, `adaptive`, `override …`.
 *
 * Every command is a row of verbs[]: its words, its usage, a builder that turns the command
 * line into one HTTP request, and a printer that turns the JSON reply into a table (--json
 * prints the reply as it came). Adding a command is adding a row.
 *
 * The client is a small blocking HTTP/1.0 one, bounded in time and size: a command has no
 * event loop to keep free. It finds the server at control.address of --config (the embedded
 * defaults without it) and sends control.token as a bearer token. Exit status: 0 done, 1 the
 * server refused or failed (its error is printed), 2 a usage error.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/http.h>
#include <jansson.h>

#include "conf/conf.h"
#include "control/control.h"
#include "core/core.h"
#include "queue/queue.h"
#include "shape/shape.h"
#include "spool/spool.h"

/* A reply is awaited this long: a queue summary reads the whole spool on the server. */
#define CLI_TIMEOUT_MS 30000
/* Largest reply read (a summary of a queue with very many destinations). */
#define CLI_REPLY_MAX (64u << 20)
#define CLI_ARGS_MAX  8
#define CLI_OPTS_MAX  24
#define CLI_PATH_MAX  2048

struct cli_opt {
	const char *name; /* without the dashes */
	const char *value;
	bool used;
};

/* A command line, parsed: the verb's own arguments and options. */
struct cli {
	const char *config_path;
	struct config *cfg;
	bool json;
	const char *args[CLI_ARGS_MAX]; /* positional, after the verb's words */
	size_t nargs;
	struct cli_opt opts[CLI_OPTS_MAX];
	size_t nopts;
};

struct cli_request {
	const char *method; /* "GET", "POST", "DELETE" */
	char path[CLI_PATH_MAX];
	json_t *body; /* NULL: none */
};

struct verb {
	const char *words; /* "queue summary": the command's words, space-separated */
	const char *usage; /* what follows them */
	/* Fills the request from the command line; -1 after printing why the line is wrong. */
	int (*build)(struct cli *, struct cli_request *);
	/* Prints a successful reply as text; NULL: as indented JSON. */
	void (*print)(struct cli *, json_t *reply);
	/* Run instead when the server does not answer (not running); NULL: that is an error. */
	int (*offline)(struct cli *);
};

/* ---- The command line ---- */

/* The value of --name (marked used), or NULL. */
static const char *
opt(struct cli *c, const char *name)
{
	for (size_t i = 0; i < c->nopts; i++)
		if (strcmp(c->opts[i].name, name) == 0) {
			c->opts[i].used = true;
			return c->opts[i].value;
		}
	return NULL;
}

static int
usage_error(const char *words, const char *usage, const char *why)
{
	if (why != NULL)
		fprintf(stderr, "drover: %s\n", why);
	fprintf(stderr, "usage: drover %s%s%s\n", words, usage[0] ? " " : "", usage);
	return 2;
}

/* Splits argv after the verb's words into options (--name VALUE or --name=VALUE; --json and
 * --help take none) and positional arguments. */
static int
parse_line(struct cli *c, int argc, char **argv, char *why, size_t size)
{
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *eq;

		if (strcmp(a, "--json") == 0) {
			c->json = true;
			continue;
		}
		if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
			if (c->nargs >= CLI_ARGS_MAX) {
				snprintf(why, size, "too many arguments");
				return -1;
			}
			c->args[c->nargs++] = a;
			continue;
		}
		if (c->nopts >= CLI_OPTS_MAX) {
			snprintf(why, size, "too many options");
			return -1;
		}
		if ((eq = strchr(a, '=')) != NULL) {
			/* --name=value: the name is cut in place (argv is ours to change). */
			argv[i][eq - a] = '\0';
			c->opts[c->nopts++] = (struct cli_opt){a + 2, eq + 1, false};
		} else if (i + 1 < argc) {
			c->opts[c->nopts++] = (struct cli_opt){a + 2, argv[++i], false};
		} else {
			snprintf(why, size, "%s needs a value", a);
			return -1;
		}
		if (strcmp(c->opts[c->nopts - 1].name, "config") == 0 ||
		    strcmp(c->opts[c->nopts - 1].name, "c") == 0) {
			c->config_path = c->opts[c->nopts - 1].value;
			c->opts[c->nopts - 1].used = true;
		}
	}
	return 0;
}

/* Appends ?name=value or &name=value (URI-encoded) to the request's path. */
static void
path_query(struct cli_request *r, const char *name, const char *value)
{
	char *enc;
	size_t len = strlen(r->path);

	if (value == NULL)
		return;
	enc = evhttp_uriencode(value, -1, 0);
	snprintf(r->path + len, sizeof(r->path) - len, "%s%s=%s", strchr(r->path, '?') ? "&" : "?",
	         name, enc != NULL ? enc : "");
	free(enc);
}

/* Appends a path segment (URI-encoded). */
static void
path_segment(struct cli_request *r, const char *segment)
{
	char *enc = evhttp_uriencode(segment, -1, 0);
	size_t len = strlen(r->path);

	snprintf(r->path + len, sizeof(r->path) - len, "/%s", enc != NULL ? enc : "");
	free(enc);
}

/* ---- HTTP ---- */

enum http_result {
	HTTP_DONE,    /* a reply came: *status and *body */
	HTTP_REFUSED, /* nobody listens there (or the control plane is off) */
	HTTP_FAILED,  /* something else: the reason in err */
};

static int
wait_fd(int fd, short events, uint64_t end)
{
	struct pollfd pfd = {.fd = fd, .events = events};
	uint64_t now = time_mono_us();
	int rc;

	if (now >= end)
		return 0;
	do
		rc = poll(&pfd, 1, (int)((end - now) / 1000) + 1);
	while (rc < 0 && errno == EINTR);
	return rc;
}

static int
send_all(int fd, const char *p, size_t len, uint64_t end)
{
	while (len > 0) {
		ssize_t n;

		if (wait_fd(fd, POLLOUT, end) != 1)
			return -1;
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* One request, its reply read to the end (HTTP/1.0: the server closes). */
static enum http_result
http_call(const struct config *cfg, const char *method, const char *path, const char *body,
          int *status, char **reply, char *err, size_t errlen)
{
	const char *token = cfg->control.token != NULL ? cfg->control.token : "";
	uint64_t end = time_mono_us() + (uint64_t)CLI_TIMEOUT_MS * 1000;
	size_t blen = body != NULL ? strlen(body) : 0, len = 0, cap = 0;
	char *head = NULL, *buf = NULL, *sep;
	int fd, rc, soerr = 0, hlen;
	socklen_t sl = sizeof(soerr);

	*reply = NULL;
	if (cfg->control.address == NULL || cfg->control.address[0] == '\0')
		return HTTP_REFUSED;
	fd = socket(cfg->control.sockaddr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return HTTP_FAILED;
	}
	rc = connect(fd, (const struct sockaddr *)&cfg->control.sockaddr, cfg->control.socklen);
	if (rc < 0 && errno != EINPROGRESS) {
		soerr = errno;
		goto connect_failed;
	}
	if (wait_fd(fd, POLLOUT, end) != 1) {
		snprintf(err, errlen, "%s: no answer to the connection", cfg->control.address);
		goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr != 0)
		goto connect_failed;
	hlen =
	    asprintf(&head,
	             "%s %s HTTP/1.0\r\nHost: %s\r\n%s%s%sContent-Type: application/json\r\n"
	             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
	             method, path, cfg->control.address, token[0] ? "Authorization: Bearer " : "",
	             token, token[0] ? "\r\n" : "", blen);
	if (hlen < 0)
		fatal("out of memory");
	if (send_all(fd, head, (size_t)hlen, end) < 0 || send_all(fd, body, blen, end) < 0) {
		snprintf(err, errlen, "%s: cannot send the request: %s", cfg->control.address,
		         strerror(errno));
		goto fail;
	}
	for (;;) {
		ssize_t n;

		if (wait_fd(fd, POLLIN, end) != 1) {
			snprintf(err, errlen, "%s: no reply within %d s", cfg->control.address,
			         CLI_TIMEOUT_MS / 1000);
			goto fail;
		}
		if (len + 4096 + 1 > cap) {
			if (cap >= CLI_REPLY_MAX) {
				snprintf(err, errlen, "%s: reply larger than %u MiB",
				         cfg->control.address, CLI_REPLY_MAX >> 20);
				goto fail;
			}
			cap = cap ? 2 * cap : 16384;
			buf = xrealloc(buf, cap);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0) {
			snprintf(err, errlen, "%s: %s", cfg->control.address, strerror(errno));
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	free(head);
	if (buf == NULL || (buf[len] = '\0', strncmp(buf, "HTTP/1.", 7) != 0) || len < 12 ||
	    (sep = strstr(buf, "\r\n\r\n")) == NULL) {
		snprintf(err, errlen, "%s: not an HTTP reply", cfg->control.address);
		free(buf);
		return HTTP_FAILED;
	}
	*status = atoi(buf + 9);
	memmove(buf, sep + 4, len - (size_t)(sep + 4 - buf) + 1);
	*reply = buf;
	return HTTP_DONE;
connect_failed:
	if (soerr == ECONNREFUSED) {
		close(fd);
		return HTTP_REFUSED;
	}
	snprintf(err, errlen, "%s: cannot connect: %s", cfg->control.address, strerror(soerr));
fail:
	close(fd);
	free(head);
	free(buf);
	return HTTP_FAILED;
}

/* The reply of a request as JSON, or NULL after printing why not; *refused: nobody listens
 * (said only if !quiet_refused). */
static json_t *
api_call(struct cli *c, const struct cli_request *r, bool quiet_refused, bool *refused)
{
	char err[512] = "", *text = NULL, *reply = NULL;
	int status = 0;
	enum http_result hr;
	json_error_t jerr;
	json_t *o;

	if (r->body != NULL)
		text = json_dumps(r->body, JSON_COMPACT);
	hr = http_call(c->cfg, r->method, r->path, text, &status, &reply, err, sizeof(err));
	free(text);
	*refused = hr == HTTP_REFUSED;
	if (hr == HTTP_REFUSED) {
		if (c->cfg->control.address == NULL || c->cfg->control.address[0] == '\0')
			snprintf(err, sizeof(err),
			         "the control plane is off (control.address \"\")");
		else
			snprintf(err, sizeof(err),
			         "%s: connection refused (is drover serve running with this "
			         "configuration?)",
			         c->cfg->control.address);
	}
	if (hr != HTTP_DONE) {
		if (hr != HTTP_REFUSED || !quiet_refused)
			fprintf(stderr, "drover: %s\n", err);
		return NULL;
	}
	o = json_loads(reply, JSON_DECODE_ANY, &jerr);
	if (status < 200 || status > 299) {
		const char *why = json_string_value(json_object_get(o, "error"));

		fprintf(stderr, "drover: %s %s: HTTP %d: %s\n", r->method, r->path, status,
		        why != NULL ? why : reply);
		json_decref(o);
		free(reply);
		return NULL;
	}
	if (o == NULL)
		fprintf(stderr, "drover: %s %s: the reply is not JSON: %s\n", r->method, r->path,
		        jerr.text);
	free(reply);
	return o;
}

/* ---- Printing helpers ---- */

static const char *
str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s != NULL && s[0] != '\0' ? s : "-";
}

static long long
num(json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));
}

static void
print_json(json_t *o, size_t flags)
{
	char *text = json_dumps(o, flags | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);

	if (text != NULL)
		puts(text);
	free(text);
}

static void
print_age(json_t *o, const char *key, char *buf, size_t size)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		units_format_age((uint64_t)json_integer_value(v), buf, size);
	else
		snprintf(buf, size, "-");
}

/* The adaptive actions as `queue summary` and `adaptive` show them. */
static void
print_actions(json_t *list)
{
	size_t i;
	json_t *a;

	printf("%zu adaptive action%s in force\n", json_array_size(list),
	       json_array_size(list) == 1 ? "" : "s");
	json_array_foreach(list, i, a)
	{
		const char *src = json_string_value(json_object_get(a, "source"));

		printf("  %-16s %-18s %-24s %-14s until %s  (rule %s, %s:%lld)\n", str(a, "action"),
		       str(a, "dest"), src != NULL && src[0] != '\0' ? src : "(every source)",
		       str(a, "provider"), str(a, "ends"), str(a, "rule"), str(a, "file"),
		       num(a, "line"));
	}
}

/* ---- queue summary ---- */

static int
build_summary(struct cli *c, struct cli_request *r)
{
	enum queue_summary_key keys[QUEUE_BY_COUNT];
	const char *by = opt(c, "by");
	size_t n;
	char why[256];

	if (c->nargs > 0)
		return -1;
	if (queue_summary_keys_parse(by != NULL ? by : "queue", keys, &n, why, sizeof(why)) < 0) {
		fprintf(stderr, "drover: --by %s: %s\n", by, why);
		return -1;
	}
	r->method = "GET";
	snprintf(r->path, sizeof(r->path), "/api/v1/queue/summary");
	path_query(r, "by", by != NULL ? by : "queue");
	return 0;
}

/* Messages and recipients per value of one field of the groups (the per-queue table's
 * totals per stream, per pool). */
static void
print_totals(json_t *groups, const char *field, const char *title)
{
	json_t *totals = json_object(), *g, *t;
	const char *name;
	size_t i;

	json_array_foreach(groups, i, g)
	{
		name = str(g, field);
		if ((t = json_object_get(totals, name)) == NULL) {
			t = json_pack("{s:I,s:I}", "messages", (json_int_t)0, "recipients",
			              (json_int_t)0);
			json_object_set_new(totals, name, t);
		}
		json_object_set_new(t, "messages",
		                    json_integer(num(t, "messages") + num(g, "messages")));
		json_object_set_new(t, "recipients",
		                    json_integer(num(t, "recipients") + num(g, "recipients")));
	}
	printf("\n%-14s %9s %10s\n", title, "MESSAGES", "RECIPIENTS");
	json_object_foreach(totals, name, t)
	{
		printf("%-14s %9lld %10lld\n", name, num(t, "messages"), num(t, "recipients"));
	}
	json_decref(totals);
}

/* The summary's table; `actions` is GET /api/v1/shaping's list, or NULL when unknown. */
static void
print_summary_table(json_t *reply, json_t *actions)
{
	json_t *by = json_object_get(reply, "by"), *groups = json_object_get(reply, "groups"), *g,
	       *k;
	bool lanes = json_array_size(by) == 1 &&
	             strcmp(json_string_value(json_array_get(by, 0)), "queue") == 0;
	char age[16];
	size_t i, j;

	if (lanes)
		printf("%-14s %-14s %-30s ", "STREAM", "POOL", "DESTINATION");
	else
		json_array_foreach(by, j, k)
		{
			char title[32];
			size_t m;

			snprintf(title, sizeof(title), "%s", json_string_value(k));
			for (m = 0; title[m] != '\0'; m++)
				title[m] = (char)(title[m] >= 'a' && title[m] <= 'z' ? title[m] - 32
				                                                     : title[m]);
			printf("%-24s ", title);
		}
	printf("%8s %8s %6s  %s\n", "MESSAGES", "RCPTS", "OLDEST", "LAST ERROR");
	json_array_foreach(groups, i, g)
	{
		if (lanes)
			printf("%-14s %-14s %-30s ", str(g, "stream"), str(g, "pool"),
			       str(g, "destination"));
		else
			json_array_foreach(by, j, k)
			{
				printf("%-24s ", str(g, json_string_value(k)));
			}
		print_age(g, "oldest_age_s", age, sizeof(age));
		printf("%8lld %8lld %6s  %s\n", num(g, "messages"), num(g, "recipients"), age,
		       str(g, "last_error"));
	}
	if (lanes) {
		print_totals(groups, "stream", "STREAM");
		print_totals(groups, "pool", "POOL");
	}
	printf("\n%lld message%s in %zu %s%s\n", num(reply, "messages"),
	       num(reply, "messages") == 1 ? "" : "s", json_array_size(groups),
	       lanes ? "queue" : "group", json_array_size(groups) == 1 ? "" : "s");
	if (actions != NULL) {
		printf("\n");
		print_actions(actions);
	} else
		printf(
		    "\nadaptive actions: unknown (the server is not running, or its control plane "
		    "is off or refused)\n");
}

/* --json: one line per group, then the adaptive actions (null: unknown), so that a script
 * can read it line by line as before the API existed. */
static void
print_summary_lines(json_t *reply, json_t *actions)
{
	json_t *g, *line = json_object();
	size_t i;

	json_array_foreach(json_object_get(reply, "groups"), i, g)
	{
		print_json(g, JSON_COMPACT);
	}
	json_object_set(line, "adaptive_actions", actions != NULL ? actions : json_null());
	print_json(line, JSON_COMPACT);
	json_decref(line);
}

static void
print_summary(struct cli *c, json_t *reply)
{
	struct cli_request r = {.method = "GET", .path = "/api/v1/shaping"};
	bool refused;
	json_t *shaping = api_call(c, &r, true, &refused);
	json_t *actions = json_object_get(shaping, "actions");

	if (c->json)
		print_summary_lines(reply, json_is_array(actions) ? actions : NULL);
	else
		print_summary_table(reply, json_is_array(actions) ? actions : NULL);
	json_decref(shaping);
}

/* The server does not answer: the same summary from the spool, read-only. */
static int
offline_summary(struct cli *c)
{
	enum queue_summary_key keys[QUEUE_BY_COUNT];
	const char *by = opt(c, "by");
	struct spool_options sopt = {.max_size = c->cfg->spool_max_size,
	                             .batch_max = c->cfg->spool_batch_max};
	struct shape_rules *rules = NULL;
	char err[4096] = "";
	struct spool *sp;
	json_t *reply;
	size_t n;

	if (queue_summary_keys_parse(by != NULL ? by : "queue", keys, &n, err, sizeof(err)) < 0)
		return 2;
	fprintf(stderr, "drover: the server does not answer; reading the spool %s directly\n",
	        c->cfg->spool_directory);
	sp = spool_open(c->cfg->spool_directory, &sopt, SPOOL_READONLY, err, sizeof(err));
	if (sp == NULL) {
		fprintf(stderr, "drover: spool %s: %s\n", c->cfg->spool_directory, err);
		return 1;
	}
	/* Providers by the rules' domain lists (the server also knows those learned from MX
	 * hosts). */
	if (c->cfg->delivery.shaping == NULL)
		rules = shape_rules_builtin(NULL, NULL, err, sizeof(err));
	else if (strcmp(c->cfg->delivery.shaping, "none") != 0)
		rules = shape_rules_load(c->cfg->delivery.shaping, NULL, NULL, err, sizeof(err));
	reply = queue_summary_json(c->cfg, sp, keys, n, rules, time_now_us());
	shape_rules_unref(rules);
	spool_close(sp);
	if (reply == NULL) {
		fprintf(stderr, "drover: cannot read the spool\n");
		return 1;
	}
	if (c->json)
		print_summary_lines(reply, NULL);
	else
		print_summary_table(reply, NULL);
	json_decref(reply);
	return 0;
}

/* ---- inspect ---- */

/* A request on one thing named by the command's one argument: prefix/ARG. */
static int
build_one(struct cli *c, struct cli_request *r, const char *method, const char *prefix)
{
	if (c->nargs != 1)
		return -1;
	r->method = method;
	snprintf(r->path, sizeof(r->path), "%s", prefix);
	path_segment(r, c->args[0]);
	return 0;
}

static int
build_inspect(struct cli *c, struct cli_request *r)
{
	return build_one(c, r, "GET", "/api/v1/messages");
}

static void
print_inspect(struct cli *c, json_t *m)
{
	json_t *rcpts = json_object_get(m, "recipients"), *x;
	char age[16];
	size_t i;

	print_age(m, "age_s", age, sizeof(age));
	printf("id:        %s\nsender:    <%s>\nreceived:  %s (%s ago)\nsize:      %lld\n",
	       str(m, "id"), json_string_value(json_object_get(m, "sender")), str(m, "received"),
	       age, num(m, "size"));
	printf("stream:    %s\ntenant:    %s\ncampaign:  %s\npool:      %s\n", str(m, "stream"),
	       str(m, "tenant"), str(m, "campaign"), str(m, "pool"));
	printf("queues:   ");
	json_array_foreach(json_object_get(m, "queues"), i, x)
	{
		printf(" %s", json_string_value(x));
	}
	printf("\n\n%-36s %-10s %8s %-26s %s\n", "RECIPIENT", "STATE", "ATTEMPTS", "NEXT ATTEMPT",
	       "LAST REPLY");
	json_array_foreach(rcpts, i, x)
	{
		printf("%-36s %-10s %8lld %-26s %s\n", str(x, "address"), str(x, "state"),
		       num(x, "attempts"), str(x, "next_attempt"), str(x, "last_reply"));
	}
	printf("\n%s%s", str(m, "headers"),
	       json_is_true(json_object_get(m, "headers_truncated")) ? "[… cut]\n" : "");
}

/* ---- top ---- */

static int
build_top(struct cli *c, struct cli_request *r)
{
	if (c->nargs > 0)
		return -1;
	r->method = "GET";
	snprintf(r->path, sizeof(r->path), "/api/v1/top");
	path_query(r, "by", opt(c, "by"));
	path_query(r, "limit", opt(c, "limit"));
	return 0;
}

static void
print_top(struct cli *c, json_t *reply)
{
	json_t *g;
	size_t i;

	printf("%-30s %8s %8s %6s %5s %6s %-6s %9s %9s %8s\n",
	       strcmp(str(reply, "by"), "provider") == 0 ? "PROVIDER" : "DESTINATION", "PENDING",
	       "READY", "SCHED", "ACTIVE", "CONNS", "WINDOW", "STATE", "DEFERRED", "DELIVERED");
	json_array_foreach(json_object_get(reply, "groups"), i, g)
	{
		printf("%-30s %8lld %8lld %6lld %5lld %6lld %-6lld %9s %9lld %8lld\n",
		       str(g, "name"), num(g, "pending"), num(g, "ready"), num(g, "scheduled"),
		       num(g, "active"), num(g, "connections"), num(g, "window"), str(g, "state"),
		       num(g, "deferred"), num(g, "delivered"));
	}
}

/* ---- adaptive ---- */

static int
build_get(struct cli *c, struct cli_request *r, const char *path)
{
	if (c->nargs > 0)
		return -1;
	r->method = "GET";
	snprintf(r->path, sizeof(r->path), "%s", path);
	return 0;
}

static int
build_adaptive(struct cli *c, struct cli_request *r)
{
	return build_get(c, r, "/api/v1/adaptive");
}

static void print_override_rows(json_t *list);

static void
print_adaptive(struct cli *c, json_t *reply)
{
	json_t *s;
	size_t i;

	print_actions(json_object_get(reply, "actions"));
	printf("\n%-28s %-12s %-16s %6s %-22s %-8s %s\n", "SITE", "PROVIDER", "SOURCE", "CONNS",
	       "MESSAGE RATE", "MODE", "WARM-UP");
	json_array_foreach(json_object_get(reply, "sites"), i, s)
	{
		json_t *w = json_object_get(s, "warmup");
		char warm[64] = "-";

		if (json_is_object(w))
			snprintf(warm, sizeof(warm), "%lld/%s today", num(w, "sent"),
			         str(w, "cap"));
		printf("%-28s %-12s %-16s %6lld %-22s %-8s %s\n", str(s, "site"),
		       str(s, "provider"), str(s, "source"), num(s, "max_connections"),
		       str(s, "message_rate"),
		       json_is_true(json_object_get(s, "backoff"))   ? "backoff"
		       : json_is_true(json_object_get(s, "limited")) ? "limited"
		                                                     : "normal",
		       warm);
	}
	printf("\n");
	print_override_rows(json_object_get(reply, "overrides"));
}

/* ---- override set | list | remove ---- */

static int
build_override_set(struct cli *c, struct cli_request *r)
{
	const char *provider = opt(c, "provider"), *domain = opt(c, "domain");
	const char *source = opt(c, "source"), *dur = opt(c, "for");
	json_t *set = json_object();

	if (c->nargs > 0 || (provider == NULL) == (domain == NULL)) {
		json_decref(set);
		return -1;
	}
	/* Every other option is a setting: --max-connections 2 is "max_connections": "2"
	 * (the server parses values as the rules file's). */
	for (size_t i = 0; i < c->nopts; i++) {
		char name[64];

		if (c->opts[i].used)
			continue;
		c->opts[i].used = true;
		snprintf(name, sizeof(name), "%s", c->opts[i].name);
		for (char *p = name; *p != '\0'; p++)
			if (*p == '-')
				*p = '_';
		json_object_set_new(set, name, json_string(c->opts[i].value));
	}
	if (json_object_size(set) == 0) {
		json_decref(set);
		fprintf(stderr,
		        "drover: override set: no setting given (e.g. --max-connections 2)\n");
		return -1;
	}
	r->method = "POST";
	snprintf(r->path, sizeof(r->path), "/api/v1/shaping/overrides");
	r->body = json_object();
	if (provider != NULL)
		json_object_set_new(r->body, "provider", json_string(provider));
	if (domain != NULL)
		json_object_set_new(r->body, "domain", json_string(domain));
	if (source != NULL)
		json_object_set_new(r->body, "source", json_string(source));
	if (dur != NULL)
		json_object_set_new(r->body, "duration", json_string(dur));
	json_object_set_new(r->body, "set", set);
	return 0;
}

static void
print_override_rows(json_t *list)
{
	json_t *o;
	size_t i;

	printf("%zu shaping override%s\n", json_array_size(list),
	       json_array_size(list) == 1 ? "" : "s");
	if (json_array_size(list) == 0)
		return;
	printf("%-6s %-28s %-16s %-26s %s\n", "ID", "TARGET", "SOURCE", "ENDS", "SET");
	json_array_foreach(list, i, o)
	{
		json_t *set = json_object_get(o, "set"), *v;
		const char *name, *p = json_string_value(json_object_get(o, "provider"));
		char target[96];

		snprintf(target, sizeof(target), "%s %s", p != NULL ? "provider" : "domain",
		         p != NULL ? p : str(o, "domain"));
		printf("%-6lld %-28s %-16s %-26s", num(o, "id"), target, str(o, "source"),
		       json_is_string(json_object_get(o, "ends")) ? str(o, "ends")
		                                                  : "until removed");
		json_object_foreach(set, name, v)
		{
			printf(" %s=%s", name, json_string_value(v));
		}
		printf("\n");
	}
}

static void
print_override_set(struct cli *c, json_t *reply)
{
	json_t *list = json_array();

	json_array_append(list, reply);
	printf("override %lld in force\n", num(reply, "id"));
	print_override_rows(list);
	json_decref(list);
}

static int
build_override_list(struct cli *c, struct cli_request *r)
{
	return build_get(c, r, "/api/v1/shaping/overrides");
}

static void
print_override_list(struct cli *c, json_t *reply)
{
	print_override_rows(json_object_get(reply, "overrides"));
}

static int
build_override_remove(struct cli *c, struct cli_request *r)
{
	return build_one(c, r, "DELETE", "/api/v1/shaping/overrides");
}

static void
print_override_removed(struct cli *c, json_t *reply)
{
	printf("override %lld removed\n", num(reply, "id"));
}

/* ---- The commands ---- */

/* ---- status, inject ---- */

static int
build_status(struct cli *c, struct cli_request *r)
{
	return build_get(c, r, "/api/v1/status");
}

/* The request body is the file named (or standard input without one, or "-"): the JSON of
 * POST /api/v1/inject (docs/injection.md). */
static int
build_inject(struct cli *c, struct cli_request *r)
{
	const char *path = c->nargs > 0 ? c->args[0] : "-";
	json_error_t jerr;

	if (c->nargs > 1)
		return -1;
	r->body =
	    strcmp(path, "-") == 0 ? json_loadf(stdin, 0, &jerr) : json_load_file(path, 0, &jerr);
	if (r->body == NULL) {
		fprintf(stderr, "drover: %s: line %d: %s\n",
		        strcmp(path, "-") == 0 ? "stdin" : path, jerr.line, jerr.text);
		return -1;
	}
	r->method = "POST";
	snprintf(r->path, sizeof(r->path), "/api/v1/inject");
	return 0;
}

static void
print_injected(struct cli *c, json_t *reply)
{
	json_t *res;
	size_t i;

	printf("%lld queued, %lld failed\n", num(reply, "success_count"),
	       num(reply, "failure_count"));
	json_array_foreach(json_object_get(reply, "results"), i, res)
	{
		if (json_is_string(json_object_get(res, "id")))
			printf("  %-40s %-8s %s\n", str(res, "recipient"), str(res, "status"),
			       str(res, "id"));
		else
			printf("  %-40s %-8s %lld %s\n", str(res, "recipient"), str(res, "status"),
			       num(res, "code"), str(res, "reply"));
	}
}

/* ---- reload ---- */

static int
build_reload(struct cli *c, struct cli_request *r)
{
	if (c->nargs > 0)
		return -1;
	r->method = "POST";
	snprintf(r->path, sizeof(r->path), "/api/v1/reload");
	return 0;
}

static void
print_reload(struct cli *c, json_t *reply)
{
	json_t *ch;
	size_t i, n = json_array_size(json_object_get(reply, "changes"));

	printf("configuration from %s in force: %zu change%s\n",
	       json_is_string(json_object_get(reply, "config")) ? str(reply, "config")
	                                                        : "the embedded defaults",
	       n, n == 1 ? "" : "s");
	json_array_foreach(json_object_get(reply, "changes"), i, ch) printf(
	    "  %-40s %-8s %s\n", str(ch, "what"), str(ch, "change"),
	    json_is_true(json_object_get(ch, "applied")) ? "applied" : "at the next restart");
}

/* ---- suspend, resume, suspensions, bounce, delete, retry (api_admin.c) ---- */

static const char *const admin_selectors[] = {"destination", "provider", "source",  "pool",
                                              "stream",      "tenant",   "campaign"};

static bool
admin_selector(const char *word)
{
	for (size_t i = 0; i < nitems(admin_selectors); i++)
		if (strcmp(word, admin_selectors[i]) == 0)
			return true;
	return false;
}

static int
build_suspend(struct cli *c, struct cli_request *r)
{
	const char *dur = opt(c, "for"), *reason = opt(c, "reason");

	if (c->nargs != 2 || !admin_selector(c->args[0]))
		return -1;
	r->method = "POST";
	snprintf(r->path, sizeof(r->path), "/api/v1/suspend");
	r->body = json_object();
	json_object_set_new(r->body, c->args[0], json_string(c->args[1]));
	if (dur != NULL)
		json_object_set_new(r->body, "duration", json_string(dur));
	if (reason != NULL)
		json_object_set_new(r->body, "reason", json_string(reason));
	return 0;
}

static void
print_suspended(struct cli *c, json_t *reply)
{
	printf("suspension %lld: %s %s suspended %s%s\n", num(reply, "id"), str(reply, "selector"),
	       str(reply, "value"), json_is_string(json_object_get(reply, "until")) ? "until " : "",
	       json_is_string(json_object_get(reply, "until")) ? str(reply, "until")
	                                                       : "until resumed");
}

static int
build_resume(struct cli *c, struct cli_request *r)
{
	const char *id = opt(c, "id");
	char *end;
	long long n;

	r->method = "POST";
	snprintf(r->path, sizeof(r->path), "/api/v1/resume");
	if (id != NULL) {
		n = strtoll(id, &end, 10);
		if (c->nargs != 0 || *end != '\0' || n <= 0)
			return -1;
		r->body = json_pack("{s:I}", "id", (json_int_t)n);
		return 0;
	}
	if (c->nargs != 2 || !admin_selector(c->args[0]))
		return -1;
	r->body = json_pack("{s:s}", c->args[0], c->args[1]);
	return 0;
}

static void
print_resumed(struct cli *c, json_t *reply)
{
	printf("suspension %lld: %s %s resumed\n", num(reply, "id"), str(reply, "selector"),
	       str(reply, "value"));
}

static int
build_suspensions(struct cli *c, struct cli_request *r)
{
	return build_get(c, r, "/api/v1/suspensions");
}

static void
print_suspensions(struct cli *c, json_t *reply)
{
	json_t *list = json_object_get(reply, "suspensions"), *o;
	size_t i;

	printf("%zu suspension%s\n", json_array_size(list), json_array_size(list) == 1 ? "" : "s");
	if (json_array_size(list) == 0)
		return;
	printf("%-5s %-12s %-28s %-22s %-10s %8s  %s\n", "ID", "SELECTOR", "VALUE", "UNTIL", "LEFT",
	       "HELD", "REASON");
	json_array_foreach(list, i, o)
	{
		char left[32] = "-";

		if (json_is_integer(json_object_get(o, "remaining_s")))
			units_format_duration((uint64_t)num(o, "remaining_s"), left, sizeof(left));
		printf("%-5lld %-12s %-28s %-22s %-10s %8lld  %s\n", num(o, "id"),
		       str(o, "selector"), str(o, "value"),
		       json_is_string(json_object_get(o, "until")) ? str(o, "until")
		                                                   : "until resumed",
		       left, num(o, "held"), str(o, "reason"));
	}
}

/* --domain D --tenant T ... as the filter of the body; --older-than is older_than. */
static int
build_filter(struct cli *c, struct cli_request *r, const char *path, bool reason)
{
	static const char *const fields[] = {"id",       "domain", "sender", "tenant",
	                                     "campaign", "stream", "pool"};
	const char *v;

	if (c->nargs != 0)
		return -1;
	r->method = "POST";
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->body = json_object();
	for (size_t i = 0; i < nitems(fields); i++)
		if ((v = opt(c, fields[i])) != NULL)
			json_object_set_new(r->body, fields[i], json_string(v));
	if ((v = opt(c, "older-than")) != NULL)
		json_object_set_new(r->body, "older_than", json_string(v));
	if (reason && (v = opt(c, "reason")) != NULL)
		json_object_set_new(r->body, "reason", json_string(v));
	return 0;
}

static int
build_bounce(struct cli *c, struct cli_request *r)
{
	return build_filter(c, r, "/api/v1/bounce", true);
}

static int
build_delete(struct cli *c, struct cli_request *r)
{
	return build_filter(c, r, "/api/v1/delete", false);
}

static int
build_retry(struct cli *c, struct cli_request *r)
{
	return build_filter(c, r, "/api/v1/retry", false);
}

static void
print_matched(const char *done, json_t *reply)
{
	printf("%s %lld message%s (%lld recipient%s); %lld in flight, left to finish\n", done,
	       num(reply, "matched_messages"), num(reply, "matched_messages") == 1 ? "" : "s",
	       num(reply, "recipients"), num(reply, "recipients") == 1 ? "" : "s",
	       num(reply, "in_flight"));
}

static void
print_bounced(struct cli *c, json_t *reply)
{
	print_matched("bounced", reply);
}

static void
print_deleted(struct cli *c, json_t *reply)
{
	print_matched("deleted", reply);
}

static void
print_retried(struct cli *c, json_t *reply)
{
	printf("%lld queue item%s due now\n", num(reply, "items"),
	       num(reply, "items") == 1 ? "" : "s");
}

#define FILTER_USAGE                                                                               \
	"[--id ID] [--domain D] [--sender ADDRESS|@DOMAIN] [--tenant T] [--campaign C] "           \
	"[--stream S] [--pool P] [--older-than DURATION]"

static const struct verb verbs[] = {
    {"reload", "[--json] [--config FILE]", build_reload, print_reload, NULL},
    {"status", "[--config FILE]", build_status, NULL, NULL},
    {"inject", "[FILE|-] [--json] [--config FILE]", build_inject, print_injected, NULL},
    {"queue summary", "[--by KEY[,KEY]] [--json] [--config FILE]", build_summary, print_summary,
     offline_summary},
    {"inspect", "ID [--json] [--config FILE]", build_inspect, print_inspect, NULL},
    {"top", "[--by destination|provider] [--limit N] [--json] [--config FILE]", build_top,
     print_top, NULL},
    {"adaptive", "[--json] [--config FILE]", build_adaptive, print_adaptive, NULL},
    {"override set",
     "--provider NAME|--domain NAME [--source NAME] --SETTING VALUE... [--for DURATION]",
     build_override_set, print_override_set, NULL},
    {"override list", "[--json] [--config FILE]", build_override_list, print_override_list, NULL},
    {"override remove", "ID [--config FILE]", build_override_remove, print_override_removed, NULL},
    {"suspend",
     "destination|provider|source|pool|stream|tenant|campaign NAME [--for DURATION] "
     "[--reason TEXT]",
     build_suspend, print_suspended, NULL},
    {"resume", "destination|provider|source|pool|stream|tenant|campaign NAME | --id N",
     build_resume, print_resumed, NULL},
    {"suspensions", "[--json] [--config FILE]", build_suspensions, print_suspensions, NULL},
    {"bounce", FILTER_USAGE " [--reason TEXT]", build_bounce, print_bounced, NULL},
    {"delete", FILTER_USAGE, build_delete, print_deleted, NULL},
    {"retry", FILTER_USAGE, build_retry, print_retried, NULL},
};

/* The number of argv words the verb's words take, 0 if they do not match. */
static int
verb_match(const struct verb *v, int argc, char **argv)
{
	const char *w = v->words;
	int n = 0;

	while (*w != '\0') {
		size_t len = strcspn(w, " ");

		if (n >= argc || strlen(argv[n]) != len || strncmp(argv[n], w, len) != 0)
			return 0;
		n++;
		w += len;
		w += *w == ' ';
	}
	return n;
}

bool
control_cli_handles(int argc, char **argv)
{
	for (size_t i = 0; i < nitems(verbs); i++)
		if (verb_match(&verbs[i], argc, argv) > 0)
			return true;
	return false;
}

void
control_cli_usage(FILE *out)
{
	for (size_t i = 0; i < nitems(verbs); i++)
		fprintf(out, "  %s %s\n", verbs[i].words, verbs[i].usage);
}

int
control_cli(int argc, char **argv)
{
	const struct verb *v = NULL;
	struct cli c = {0};
	struct cli_request r = {0};
	char why[256], err[8192];
	bool refused = false;
	json_t *reply;
	int n = 0, rc;

	for (size_t i = 0; i < nitems(verbs) && v == NULL; i++)
		if ((n = verb_match(&verbs[i], argc, argv)) > 0)
			v = &verbs[i];
	if (v == NULL) {
		fprintf(stderr, "drover: no such command\n");
		return 2;
	}
	if (parse_line(&c, argc - n, argv + n, why, sizeof(why)) < 0)
		return usage_error(v->words, v->usage, why);
	for (size_t i = 0; i < c.nopts; i++)
		if (strcmp(c.opts[i].name, "help") == 0)
			return usage_error(v->words, v->usage, NULL);
	c.cfg = config_load(c.config_path, err, sizeof(err));
	if (c.cfg == NULL) {
		fprintf(stderr, "%s%s", err, err[0] && err[strlen(err) - 1] != '\n' ? "\n" : "");
		return 2;
	}
	if (v->build(&c, &r) < 0) {
		json_decref(r.body);
		config_free(c.cfg);
		return usage_error(v->words, v->usage, NULL);
	}
	for (size_t i = 0; i < c.nopts; i++)
		if (!c.opts[i].used) {
			snprintf(why, sizeof(why), "unknown option --%s", c.opts[i].name);
			json_decref(r.body);
			config_free(c.cfg);
			return usage_error(v->words, v->usage, why);
		}
	reply = api_call(&c, &r, v->offline != NULL, &refused);
	json_decref(r.body);
	if (reply == NULL) {
		rc = refused && v->offline != NULL ? v->offline(&c) : 1;
	} else {
		if (c.json && v->print != print_summary)
			print_json(reply, JSON_INDENT(2));
		else if (v->print != NULL)
			v->print(&c, reply);
		else
			print_json(reply, JSON_INDENT(2));
		json_decref(reply);
		rc = 0;
	}
	config_free(c.cfg);
	return rc;
}
