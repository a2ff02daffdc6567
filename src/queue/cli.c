/* cli.c - `drover queue list | summary | show`: what is queued, read from the spool.
 *
 * The spool is the truth and LMDB lets a reader in beside the running daemon, so these work
 * whether or not it runs, and see what a restart would load. The queue a recipient waits in is
 * computed as the engine computes it (engine_queue_add: the stream, and the pool
 * config_message_pool gives), from the same configuration file.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"
#include "queue/queue.h"
#include "spool/spool.h"

/* Groups in a summary before the table doubles (a power of two). */
#define SUMMARY_BUCKETS_MIN 256
/* The running server's answer about its adaptive state: how long to wait, how much to read. */
#define CONTROL_TIMEOUT_MS 2000
#define CONTROL_REPLY_MAX  (4 << 20)

static void
format_age(uint64_t secs, char *buf, size_t size)
{
	if (secs < 120)
		snprintf(buf, size, "%llus", (unsigned long long)secs);
	else if (secs < 7200)
		snprintf(buf, size, "%llum", (unsigned long long)secs / 60);
	else if (secs < 172800)
		snprintf(buf, size, "%lluh", (unsigned long long)secs / 3600);
	else
		snprintf(buf, size, "%llud", (unsigned long long)secs / 86400);
}

/* The stream the engine files a message under: its own if the configuration knows it (or
 * it is "default"), else "default". */
static const char *
stream_of(const struct config *cfg, const struct envelope *env)
{
	if (env->stream != NULL && config_stream(cfg, env->stream) != NULL)
		return env->stream;
	return "default";
}

/* The queue (lane) name for one domain of the message, as engine_queue_add makes it. */
static void
lane_of(const struct config *cfg, const struct envelope *env, const char *domain, char *buf,
        size_t size, const char **pool)
{
	const struct pool_conf *p =
	    config_message_pool(cfg, env->pool, env->stream, env->tenant, domain);

	*pool = p != NULL ? p->name : NULL;
	if (p != NULL)
		snprintf(buf, size, "%s:%s@%s", stream_of(cfg, env), p->name, domain);
	else
		snprintf(buf, size, "%s@%s", stream_of(cfg, env), domain);
}

static json_t *
string_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* ---- list ---- */

struct list_ctx {
	const struct config *cfg;
	bool json;
	uint64_t now_us;
	uint64_t count;
};

/* The RFC 3461 parameters kept for the message's DSNs, as received. */
static json_t *
list_dsn(const struct envelope *env)
{
	static const char *const notify_names[] = {"NEVER", "SUCCESS", "FAILURE", "DELAY"};
	json_t *dsn = json_object(), *rcpts = json_array();

	json_object_set_new(dsn, "ret",
	                    env->dsn_ret == SMTP_DSN_RET_FULL   ? json_string("FULL")
	                    : env->dsn_ret == SMTP_DSN_RET_HDRS ? json_string("HDRS")
	                                                        : json_null());
	json_object_set_new(dsn, "envid", string_or_null(env->envid));
	for (size_t i = 0; i < env->nrcpt; i++) {
		json_t *r = json_object(), *notify = json_array();

		for (unsigned b = 0; b < 4; b++)
			if (env->rcpt[i].notify & (1u << b))
				json_array_append_new(notify, json_string(notify_names[b]));
		json_object_set_new(r, "address", json_string(env->rcpt[i].address));
		json_object_set_new(r, "notify", notify);
		json_object_set_new(r, "orcpt", string_or_null(env->rcpt[i].orcpt));
		json_array_append_new(rcpts, r);
	}
	json_object_set_new(dsn, "recipients", rcpts);
	return dsn;
}

/* Where each recipient stands: pending (with its attempts so far, the next one and the queue
 * it waits in), delivered, bounced or expired, with the last reply from a receiver. */
static json_t *
list_states(const struct config *cfg, const struct envelope *env)
{
	static const char *const names[] = {"pending", "delivered", "bounced", "expired"};
	json_t *list = json_array();

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		json_t *o = json_object();
		char stamp[40], domain[DNS_NAME_MAX + 3], lane[QUEUE_LANE_NAME_MAX];
		const char *pool;

		json_object_set_new(o, "address", json_string(r->address));
		json_object_set_new(
		    o, "state",
		    json_string(r->state < nitems(names) ? names[r->state] : "unknown"));
		json_object_set_new(o, "attempts", json_integer(r->attempts));
		if (r->state == RCPT_PENDING && r->next_attempt_us != 0) {
			time_rfc3339(r->next_attempt_us, stamp, sizeof(stamp));
			json_object_set_new(o, "next_attempt", json_string(stamp));
		} else
			json_object_set_new(o, "next_attempt", json_null());
		if (r->state == RCPT_PENDING) {
			engine_domain(r->address, domain, sizeof(domain));
			lane_of(cfg, env, domain, lane, sizeof(lane), &pool);
			json_object_set_new(o, "queue", json_string(lane));
		} else
			json_object_set_new(o, "queue", json_null());
		json_object_set_new(o, "last_reply", string_or_null(r->last_reply));
		json_array_append_new(list, o);
	}
	return list;
}

static int
list_one(void *arg, const struct envelope *env)
{
	struct list_ctx *ctx = arg;
	uint64_t age = ctx->now_us > env->received_us ? (ctx->now_us - env->received_us) / USEC : 0;
	char agebuf[16];

	ctx->count++;
	if (ctx->json) {
		json_t *o = json_object(), *rcpts = json_array();
		char stamp[40], *text;

		time_rfc3339(env->received_us, stamp, sizeof(stamp));
		for (size_t i = 0; i < env->nrcpt; i++)
			json_array_append_new(rcpts, json_string(env->rcpt[i].address));
		json_object_set_new(o, "id", json_string(env->id));
		json_object_set_new(o, "sender", json_string(env->sender));
		json_object_set_new(o, "recipients", rcpts);
		json_object_set_new(o, "size", json_integer((json_int_t)env->size));
		json_object_set_new(o, "received", json_string(stamp));
		json_object_set_new(o, "age_s", json_integer((json_int_t)age));
		json_object_set_new(o, "stream", json_string(stream_of(ctx->cfg, env)));
		json_object_set_new(o, "tenant", string_or_null(env->tenant));
		json_object_set_new(o, "campaign", string_or_null(env->campaign));
		json_object_set_new(o, "pool", string_or_null(env->pool));
		json_object_set_new(o, "dsn", list_dsn(env));
		json_object_set_new(o, "delivery", list_states(ctx->cfg, env));
		text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		puts(text);
		free(text);
		json_decref(o);
		return 0;
	}
	format_age(age, agebuf, sizeof(agebuf));
	printf("%-24s %9llu %5s %-14s <%s>", env->id, (unsigned long long)env->size, agebuf,
	       stream_of(ctx->cfg, env), env->sender);
	for (size_t i = 0; i < env->nrcpt; i++)
		printf("%s<%s>", i == 0 ? " -> " : ", ", env->rcpt[i].address);
	putchar('\n');
	return 0;
}

int
queue_cli_list(const struct config *cfg, struct spool *sp, bool json)
{
	struct list_ctx ctx = {.cfg = cfg, .json = json, .now_us = time_now_us()};

	if (!json)
		printf("%-24s %9s %5s %-14s %s\n", "ID", "SIZE", "AGE", "STREAM",
		       "SENDER -> RECIPIENTS");
	if (spool_foreach(sp, list_one, &ctx) < 0) {
		fprintf(stderr, "drover: cannot read the spool\n");
		return 1;
	}
	if (!json)
		printf("%llu message%s\n", (unsigned long long)ctx.count,
		       ctx.count == 1 ? "" : "s");
	return 0;
}

/* ---- summary ---- */

/* One queue's totals. */
struct group {
	char *lane; /* the key */
	char *stream, *pool, *domain;
	uint64_t messages, recipients, bytes;
	uint64_t oldest_us;     /* earliest reception */
	uint64_t last_error_us; /* the next attempt of the recipient whose reply is kept */
	char *last_error;       /* the reply that deferred its latest-deferred recipient */
	uint64_t last_id_seen;  /* message counter, so a message counts once per queue */
};

struct summary_ctx {
	const struct config *cfg;
	struct group **bucket;
	size_t mask, n;
	uint64_t message_no;
	uint64_t messages;
};

static uint64_t
key_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static struct group *
group_get(struct summary_ctx *c, const char *lane, const char *stream, const char *pool,
          const char *domain)
{
	size_t i = key_hash(lane) & c->mask;
	struct group *g;

	while (c->bucket[i] != NULL) {
		if (strcmp(c->bucket[i]->lane, lane) == 0)
			return c->bucket[i];
		i = (i + 1) & c->mask;
	}
	g = xcalloc(1, sizeof(*g));
	g->lane = xstrdup(lane);
	g->stream = xstrdup(stream);
	g->pool = pool != NULL ? xstrdup(pool) : NULL;
	g->domain = xstrdup(domain);
	g->oldest_us = UINT64_MAX;
	c->bucket[i] = g;
	/* Open addressing at load 1/2 at most. */
	if (++c->n * 2 > c->mask + 1) {
		size_t nmask = 2 * (c->mask + 1) - 1;
		struct group **nb = xcalloc(nmask + 1, sizeof(*nb));

		for (size_t k = 0; k <= c->mask; k++) {
			size_t j;

			if (c->bucket[k] == NULL)
				continue;
			j = key_hash(c->bucket[k]->lane) & nmask;
			while (nb[j] != NULL)
				j = (j + 1) & nmask;
			nb[j] = c->bucket[k];
		}
		free(c->bucket);
		c->bucket = nb;
		c->mask = nmask;
	}
	return g;
}

static int
summary_one(void *arg, const struct envelope *env)
{
	struct summary_ctx *c = arg;

	c->message_no++;
	c->messages++;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		char domain[DNS_NAME_MAX + 3], lane[QUEUE_LANE_NAME_MAX];
		const char *pool;
		struct group *g;

		if (r->state != RCPT_PENDING)
			continue;
		engine_domain(r->address, domain, sizeof(domain));
		lane_of(c->cfg, env, domain, lane, sizeof(lane), &pool);
		g = group_get(c, lane, stream_of(c->cfg, env), pool, domain);
		g->recipients++;
		if (g->last_id_seen != c->message_no) {
			g->last_id_seen = c->message_no;
			g->messages++;
			g->bytes += env->size;
			if (env->received_us < g->oldest_us)
				g->oldest_us = env->received_us;
		}
		if (r->last_reply != NULL && r->attempts > 0 &&
		    (g->last_error == NULL || r->next_attempt_us > g->last_error_us)) {
			free(g->last_error);
			g->last_error = xstrdup(r->last_reply);
			g->last_error_us = r->next_attempt_us;
		}
	}
	return 0;
}

static int
group_order(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a, *y = *(struct group *const *)b;
	int c = strcmp(x->stream, y->stream);

	if (c != 0)
		return c;
	if (x->messages != y->messages)
		return x->messages > y->messages ? -1 : 1;
	return strcmp(x->lane, y->lane);
}

static void
summary_print_json(struct group **g, size_t n, uint64_t now)
{
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_object();
		char stamp[40], *text;

		time_rfc3339(g[i]->oldest_us, stamp, sizeof(stamp));
		json_object_set_new(o, "queue", json_string(g[i]->lane));
		json_object_set_new(o, "stream", json_string(g[i]->stream));
		json_object_set_new(o, "pool", string_or_null(g[i]->pool));
		json_object_set_new(o, "destination", json_string(g[i]->domain));
		json_object_set_new(o, "messages", json_integer((json_int_t)g[i]->messages));
		json_object_set_new(o, "recipients", json_integer((json_int_t)g[i]->recipients));
		json_object_set_new(o, "bytes", json_integer((json_int_t)g[i]->bytes));
		json_object_set_new(o, "oldest", json_string(stamp));
		json_object_set_new(
		    o, "oldest_age_s",
		    json_integer(
		        (json_int_t)(now > g[i]->oldest_us ? (now - g[i]->oldest_us) / USEC : 0)));
		json_object_set_new(o, "last_error", string_or_null(g[i]->last_error));
		text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		puts(text);
		free(text);
		json_decref(o);
	}
}

/* Totals per stream and per pool, after the per-queue table. */
static void
summary_print_totals(struct group **g, size_t n, bool by_pool)
{
	printf("\n%-14s %9s %10s\n", by_pool ? "POOL" : "STREAM", "MESSAGES", "RECIPIENTS");
	for (size_t i = 0; i < n; i++) {
		const char *name = by_pool ? (g[i]->pool != NULL ? g[i]->pool : "-") : g[i]->stream;
		uint64_t m = 0, r = 0;
		bool seen = false;

		for (size_t k = 0; k < i && !seen; k++)
			seen = strcmp(name, by_pool ? (g[k]->pool != NULL ? g[k]->pool : "-")
			                            : g[k]->stream) == 0;
		if (seen)
			continue;
		for (size_t k = i; k < n; k++) {
			if (strcmp(name, by_pool ? (g[k]->pool != NULL ? g[k]->pool : "-")
			                         : g[k]->stream) != 0)
				continue;
			m += g[k]->messages;
			r += g[k]->recipients;
		}
		printf("%-14s %9llu %10llu\n", name, (unsigned long long)m, (unsigned long long)r);
	}
}

/* ---- The running server's adaptive state (GET /api/v1/shaping) ---- */

/* A blocking HTTP/1.0 GET to the control plane, bounded in time and size: the CLI has no loop
 * to keep free. The body, or NULL (not running, no control plane, refused). */
static char *
control_get(const struct config *cfg, const char *path)
{
	struct pollfd pfd;
	char *buf = NULL, *body;
	size_t len = 0, cap = 0;
	uint64_t end = time_mono_us() + (uint64_t)CONTROL_TIMEOUT_MS * 1000;
	int fd, rc;
	char req[1024];

	if (cfg->control.address == NULL || cfg->control.address[0] == '\0')
		return NULL;
	fd = socket(cfg->control.sockaddr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return NULL;
	rc = connect(fd, (const struct sockaddr *)&cfg->control.sockaddr, cfg->control.socklen);
	if (rc < 0 && errno != EINPROGRESS)
		goto fail;
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n%s%s%sConnection: close\r\n\r\n", path,
	         cfg->control.token != NULL && cfg->control.token[0] != '\0'
	             ? "Authorization: Bearer "
	             : "",
	         cfg->control.token != NULL ? cfg->control.token : "",
	         cfg->control.token != NULL && cfg->control.token[0] != '\0' ? "\r\n" : "");
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, CONTROL_TIMEOUT_MS) != 1 || send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		goto fail;
	for (;;) {
		uint64_t now = time_mono_us();
		ssize_t n;

		if (now >= end)
			goto fail;
		pfd = (struct pollfd){.fd = fd, .events = POLLIN};
		if (poll(&pfd, 1, (int)((end - now) / 1000) + 1) != 1)
			goto fail;
		if (len + 4096 + 1 > cap) {
			if (cap >= CONTROL_REPLY_MAX)
				goto fail;
			cap = cap ? 2 * cap : 8192;
			buf = xrealloc(buf, cap);
		}
		n = recv(fd, buf + len, cap - len - 1, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf == NULL)
		return NULL;
	buf[len] = '\0';
	if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0 ||
	    (body = strstr(buf, "\r\n\r\n")) == NULL) {
		free(buf);
		return NULL;
	}
	memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
	return buf;
fail:
	close(fd);
	free(buf);
	return NULL;
}

/* The adaptive actions in force, after the table; or why they cannot be shown. */
static void
summary_print_shaping(const struct config *cfg, bool json)
{
	char *body = control_get(cfg, "/api/v1/shaping");
	json_t *o = body != NULL ? json_loads(body, 0, NULL) : NULL;
	json_t *list = o != NULL ? json_object_get(o, "actions") : NULL;
	size_t i;
	json_t *a;

	free(body);
	if (json) {
		json_t *line = json_object();
		char *text;

		json_object_set_new(line, "adaptive_actions",
		                    json_is_array(list) ? json_incref(list) : json_null());
		text = json_dumps(line, JSON_COMPACT);
		puts(text);
		free(text);
		json_decref(line);
		json_decref(o);
		return;
	}
	if (!json_is_array(list)) {
		printf(
		    "\nadaptive actions: unknown (the server is not running, or its control plane "
		    "is off or refused)\n");
		json_decref(o);
		return;
	}
	printf("\n%zu adaptive action%s in force\n", json_array_size(list),
	       json_array_size(list) == 1 ? "" : "s");
	json_array_foreach(list, i, a)
	{
		const char *src = json_string_value(json_object_get(a, "source"));

		printf("  %-16s %-18s %-24s %-14s until %s  (rule %s, %s:%lld)\n",
		       json_string_value(json_object_get(a, "action")),
		       json_string_value(json_object_get(a, "dest")),
		       src != NULL && src[0] != '\0' ? src : "(every source)",
		       json_string_value(json_object_get(a, "provider")) != NULL
		           ? json_string_value(json_object_get(a, "provider"))
		           : "-",
		       json_string_value(json_object_get(a, "ends")),
		       json_string_value(json_object_get(a, "rule")),
		       json_string_value(json_object_get(a, "file")),
		       (long long)json_integer_value(json_object_get(a, "line")));
	}
	json_decref(o);
}

int
queue_cli_summary(const struct config *cfg, struct spool *sp, bool json)
{
	struct summary_ctx c = {.cfg = cfg, .mask = SUMMARY_BUCKETS_MIN - 1};
	uint64_t now = time_now_us();
	struct group **list;
	size_t n = 0;
	int rc = 0;

	c.bucket = xcalloc(SUMMARY_BUCKETS_MIN, sizeof(*c.bucket));
	if (spool_foreach(sp, summary_one, &c) < 0) {
		fprintf(stderr, "drover: cannot read the spool\n");
		rc = 1;
	}
	list = xcalloc(c.n + 1, sizeof(*list));
	for (size_t i = 0; i <= c.mask; i++)
		if (c.bucket[i] != NULL)
			list[n++] = c.bucket[i];
	qsort(list, n, sizeof(*list), group_order);
	if (rc == 0 && json) {
		summary_print_json(list, n, now);
	} else if (rc == 0) {
		printf("%-14s %-14s %-30s %8s %8s %6s  %s\n", "STREAM", "POOL", "DESTINATION",
		       "MESSAGES", "RCPTS", "OLDEST", "LAST ERROR");
		for (size_t i = 0; i < n; i++) {
			char age[16];

			format_age(now > list[i]->oldest_us ? (now - list[i]->oldest_us) / USEC : 0,
			           age, sizeof(age));
			printf("%-14s %-14s %-30s %8llu %8llu %6s  %s\n", list[i]->stream,
			       list[i]->pool != NULL ? list[i]->pool : "-", list[i]->domain,
			       (unsigned long long)list[i]->messages,
			       (unsigned long long)list[i]->recipients, age,
			       list[i]->last_error != NULL ? list[i]->last_error : "-");
		}
		summary_print_totals(list, n, false);
		summary_print_totals(list, n, true);
		printf("\n%llu message%s in %zu queue%s\n", (unsigned long long)c.messages,
		       c.messages == 1 ? "" : "s", n, n == 1 ? "" : "s");
	}
	if (rc == 0)
		summary_print_shaping(cfg, json);
	for (size_t i = 0; i < n; i++) {
		free(list[i]->lane);
		free(list[i]->stream);
		free(list[i]->pool);
		free(list[i]->domain);
		free(list[i]->last_error);
		free(list[i]);
	}
	free(list);
	free(c.bucket);
	return rc;
}

/* ---- show ---- */

int
queue_cli_show(const struct config *cfg, struct spool *sp, const char *id)
{
	struct envelope env;
	struct evbuffer *body = evbuffer_new();
	int rc = 0;

	if (spool_envelope_get(sp, id, &env) < 0 || spool_body_read(sp, id, body) < 0) {
		fprintf(stderr, "drover: no message %s in the queue\n", id);
		evbuffer_free(body);
		return 1;
	}
	printf("X-Drover-Queue-Id: %s\nX-Drover-Sender: <%s>\n", env.id, env.sender);
	for (size_t i = 0; i < env.nrcpt; i++)
		printf("X-Drover-Recipient: <%s>\n", env.rcpt[i].address);
	printf("X-Drover-Classification: stream=%s; tenant=%s; campaign=%s; pool=%s\n",
	       stream_of(cfg, &env), env.tenant != NULL ? env.tenant : "-",
	       env.campaign != NULL ? env.campaign : "-", env.pool != NULL ? env.pool : "-");
	printf("\n");
	fflush(stdout);
	while (evbuffer_get_length(body) > 0)
		if (evbuffer_write(body, STDOUT_FILENO) < 0) {
			rc = 1;
			break;
		}
	envelope_clear(&env);
	evbuffer_free(body);
	return rc;
}
