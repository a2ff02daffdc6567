/* summary.c - what is queued, grouped, and one message's place in the queue, read from the
 * spool: `drover queue summary` without a server, and the admin API's /api/v1/queue/summary
 * and /api/v1/messages/ID with one.
 *
 * The spool is the truth (the engine's memory holds ids and times only), so a summary reads
 * every envelope: O(queue), a second or so per hundred thousand messages. Groups are kept in
 * an open-addressing table keyed by their values joined; a message counts once per group,
 * its pending recipients each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"
#include "queue/queue.h"
#include "queue/report.h"
#include "shape/shape.h"
#include "spool/spool.h"

/* Groups in a summary before the table doubles (a power of two). */
#define SUMMARY_BUCKETS_MIN 256
/* Octets of a group's key: its values joined. */
#define SUMMARY_KEY_MAX (QUEUE_LANE_NAME_MAX + 3 * 256 + DNS_NAME_MAX + 64)

static const char *const key_names[QUEUE_BY_COUNT] = {
    "queue", "stream", "pool", "tenant", "campaign", "destination", "provider",
};

const char *
queue_summary_key_name(enum queue_summary_key k)
{
	return (unsigned)k < QUEUE_BY_COUNT ? key_names[k] : "?";
}

int
queue_summary_keys_parse(const char *text, enum queue_summary_key *keys, size_t *n, char *err,
                         size_t errlen)
{
	const char *p = text;

	*n = 0;
	while (*p != '\0') {
		size_t len = strcspn(p, ",");
		int found = -1;

		for (int k = 0; k < QUEUE_BY_COUNT; k++)
			if (strlen(key_names[k]) == len && strncmp(p, key_names[k], len) == 0)
				found = k;
		if (found < 0) {
			snprintf(err, errlen,
			         "\"%.*s\": expected queue, stream, pool, tenant, campaign, "
			         "destination or provider (comma-separated)",
			         (int)(len > 64 ? 64 : len), p);
			return -1;
		}
		for (size_t i = 0; i < *n; i++)
			if (keys[i] == (enum queue_summary_key)found) {
				snprintf(err, errlen, "\"%s\" given twice", key_names[found]);
				return -1;
			}
		keys[(*n)++] = (enum queue_summary_key)found;
		p += len;
		if (*p == ',' && *++p == '\0') {
			snprintf(err, errlen, "a comma at the end");
			return -1;
		}
	}
	if (*n == 0) {
		snprintf(err, errlen, "no key given");
		return -1;
	}
	return 0;
}

/* ---- What a message's recipients say (shared with `queue list`) ---- */

json_t *
report_string_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

const char *
report_stream(const struct config *cfg, const struct envelope *env)
{
	if (env->stream != NULL && config_stream(cfg, env->stream) != NULL)
		return env->stream;
	return "default";
}

void
report_lane(const struct config *cfg, const struct envelope *env, const char *domain, char *buf,
            size_t size, const char **pool)
{
	const struct pool_conf *p =
	    config_message_pool(cfg, env->pool, env->stream, env->tenant, domain);

	*pool = p != NULL ? p->name : NULL;
	if (p != NULL)
		snprintf(buf, size, "%s:%s@%s", report_stream(cfg, env), p->name, domain);
	else
		snprintf(buf, size, "%s@%s", report_stream(cfg, env), domain);
}

json_t *
report_rcpt_states(const struct config *cfg, const struct envelope *env)
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
			report_lane(cfg, env, domain, lane, sizeof(lane), &pool);
			json_object_set_new(o, "queue", json_string(lane));
		} else
			json_object_set_new(o, "queue", json_null());
		json_object_set_new(o, "last_reply", report_string_or_null(r->last_reply));
		json_array_append_new(list, o);
	}
	return list;
}

/* ---- Summary ---- */

/* Whole seconds from then to now (0 if then is not before now), as JSON. */
static json_t *
age_s(uint64_t now_us, uint64_t then_us)
{
	return json_integer((json_int_t)(now_us > then_us ? (now_us - then_us) / USEC : 0));
}

/* One group's totals. */
struct group {
	char *key;                   /* the values joined: the table's key */
	char *value[QUEUE_BY_COUNT]; /* by key; NULL: none (no tenant, no pool) */
	uint64_t messages, recipients, bytes;
	uint64_t oldest_us;     /* earliest reception */
	uint64_t last_error_us; /* the next attempt of the recipient whose reply is kept */
	char *last_error;       /* the reply that deferred its latest-deferred recipient */
	uint64_t last_msg_seen; /* message counter, so a message counts once per group */
};

struct queue_summary {
	const struct config *cfg;
	struct shape_rules *rules; /* for providers; NULL: none */
	enum queue_summary_key keys[QUEUE_BY_COUNT];
	size_t nkeys;
	struct group **bucket;
	size_t mask, n;
	uint64_t message_no;
	uint64_t messages, recipients;
};

struct queue_summary *
queue_summary_new(const struct config *cfg, const enum queue_summary_key *keys, size_t n,
                  struct shape_rules *rules)
{
	struct queue_summary *s = xcalloc(1, sizeof(*s));

	s->cfg = cfg;
	s->rules = rules != NULL ? shape_rules_ref(rules) : NULL;
	s->nkeys = n < QUEUE_BY_COUNT ? n : QUEUE_BY_COUNT;
	memcpy(s->keys, keys, s->nkeys * sizeof(*keys));
	s->mask = SUMMARY_BUCKETS_MIN - 1;
	s->bucket = xcalloc(SUMMARY_BUCKETS_MIN, sizeof(*s->bucket));
	return s;
}

static uint64_t
key_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
	return h;
}

static void
grow(struct queue_summary *s)
{
	size_t nmask = 2 * (s->mask + 1) - 1;
	struct group **nb = xcalloc(nmask + 1, sizeof(*nb));

	for (size_t k = 0; k <= s->mask; k++) {
		size_t j;

		if (s->bucket[k] == NULL)
			continue;
		j = key_hash(s->bucket[k]->key) & nmask;
		while (nb[j] != NULL)
			j = (j + 1) & nmask;
		nb[j] = s->bucket[k];
	}
	free(s->bucket);
	s->bucket = nb;
	s->mask = nmask;
}

/* Is a group's value for key k shown: a key grouped by, or (by queue) what the queue's name
 * is made of. */
static bool
shown(const struct queue_summary *s, enum queue_summary_key k)
{
	bool lanes = s->nkeys == 1 && s->keys[0] == QUEUE_BY_QUEUE;

	if (lanes && (k == QUEUE_BY_STREAM || k == QUEUE_BY_POOL || k == QUEUE_BY_DESTINATION))
		return true;
	for (size_t j = 0; j < s->nkeys; j++)
		if (s->keys[j] == k)
			return true;
	return false;
}

/* The group of these values, made if new (keeping the values shown). */
static struct group *
group_get(struct queue_summary *s, const char *key, const char *const *value)
{
	size_t i = key_hash(key) & s->mask;
	struct group *g;

	while (s->bucket[i] != NULL) {
		if (strcmp(s->bucket[i]->key, key) == 0)
			return s->bucket[i];
		i = (i + 1) & s->mask;
	}
	g = xcalloc(1, sizeof(*g));
	g->key = xstrdup(key);
	for (int k = 0; k < QUEUE_BY_COUNT; k++)
		if (value[k] != NULL && shown(s, (enum queue_summary_key)k))
			g->value[k] = xstrdup(value[k]);
	g->oldest_us = UINT64_MAX;
	s->bucket[i] = g;
	/* Open addressing at load 1/2 at most. */
	if (++s->n * 2 > s->mask + 1)
		grow(s);
	return g;
}

void
queue_summary_add(struct queue_summary *s, const struct envelope *env)
{
	s->message_no++;
	s->messages++;
	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		char domain[DNS_NAME_MAX + 3], lane[QUEUE_LANE_NAME_MAX], key[SUMMARY_KEY_MAX];
		const char *value[QUEUE_BY_COUNT] = {NULL}, *pool;
		size_t o = 0;
		struct group *g;

		if (r->state != RCPT_PENDING)
			continue;
		s->recipients++;
		engine_domain(r->address, domain, sizeof(domain));
		report_lane(s->cfg, env, domain, lane, sizeof(lane), &pool);
		value[QUEUE_BY_QUEUE] = lane;
		value[QUEUE_BY_STREAM] = report_stream(s->cfg, env);
		value[QUEUE_BY_POOL] = pool;
		value[QUEUE_BY_TENANT] = env->tenant;
		value[QUEUE_BY_CAMPAIGN] = env->campaign;
		value[QUEUE_BY_DESTINATION] = domain;
		value[QUEUE_BY_PROVIDER] =
		    s->rules != NULL ? shape_provider_of(s->rules, domain, NULL, 0) : NULL;
		/* The key: the grouped values, each ended by a byte no value holds; a missing
		 * one is a byte of its own, so "no tenant" and a tenant "" stay apart. */
		key[0] = '\0';
		for (size_t k = 0; k < s->nkeys && o < sizeof(key); k++) {
			const char *v = value[s->keys[k]];

			o += (size_t)snprintf(key + o, sizeof(key) - o, "%s\x1f",
			                      v != NULL ? v : "\x1e");
		}
		g = group_get(s, key, value);
		g->recipients++;
		if (g->last_msg_seen != s->message_no) {
			g->last_msg_seen = s->message_no;
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
}

static int
group_order(const void *a, const void *b)
{
	const struct group *x = *(struct group *const *)a, *y = *(struct group *const *)b;
	int c;

	/* By queue: the stream first (transactional apart from bulk), as the engine files them. */
	if (x->value[QUEUE_BY_QUEUE] != NULL && y->value[QUEUE_BY_QUEUE] != NULL &&
	    x->value[QUEUE_BY_STREAM] != NULL && y->value[QUEUE_BY_STREAM] != NULL &&
	    (c = strcmp(x->value[QUEUE_BY_STREAM], y->value[QUEUE_BY_STREAM])) != 0)
		return c;
	if (x->messages != y->messages)
		return x->messages > y->messages ? -1 : 1;
	return strcmp(x->key, y->key);
}

static void
group_free(struct group *g)
{
	free(g->key);
	for (int k = 0; k < QUEUE_BY_COUNT; k++)
		free(g->value[k]);
	free(g->last_error);
	free(g);
}

json_t *
queue_summary_finish(struct queue_summary *s, uint64_t now_us)
{
	struct group **list = xcalloc(s->n + 1, sizeof(*list));
	json_t *out = json_object(), *by = json_array(), *groups = json_array();
	size_t n = 0;

	for (size_t i = 0; i <= s->mask; i++)
		if (s->bucket[i] != NULL)
			list[n++] = s->bucket[i];
	qsort(list, n, sizeof(*list), group_order);
	for (size_t k = 0; k < s->nkeys; k++)
		json_array_append_new(by, json_string(key_names[s->keys[k]]));
	for (size_t i = 0; i < n; i++) {
		struct group *g = list[i];
		json_t *o = json_object();
		char stamp[40];

		for (int k = 0; k < QUEUE_BY_COUNT; k++)
			if (shown(s, (enum queue_summary_key)k))
				json_object_set_new(o, key_names[k],
				                    report_string_or_null(g->value[k]));
		time_rfc3339(g->oldest_us, stamp, sizeof(stamp));
		json_object_set_new(o, "messages", json_integer((json_int_t)g->messages));
		json_object_set_new(o, "recipients", json_integer((json_int_t)g->recipients));
		json_object_set_new(o, "bytes", json_integer((json_int_t)g->bytes));
		json_object_set_new(o, "oldest", json_string(stamp));
		json_object_set_new(o, "oldest_age_s", age_s(now_us, g->oldest_us));
		json_object_set_new(o, "last_error", report_string_or_null(g->last_error));
		json_array_append_new(groups, o);
		group_free(g);
	}
	json_object_set_new(out, "by", by);
	json_object_set_new(out, "groups", groups);
	json_object_set_new(out, "messages", json_integer((json_int_t)s->messages));
	json_object_set_new(out, "recipients", json_integer((json_int_t)s->recipients));
	free(list);
	free(s->bucket);
	shape_rules_unref(s->rules);
	free(s);
	return out;
}

static int
summary_one(void *arg, const struct envelope *env)
{
	queue_summary_add(arg, env);
	return 0;
}

json_t *
queue_summary_json(const struct config *cfg, struct spool *sp, const enum queue_summary_key *keys,
                   size_t n, struct shape_rules *rules, uint64_t now_us)
{
	struct queue_summary *s = queue_summary_new(cfg, keys, n, rules);

	if (spool_foreach(sp, summary_one, s) < 0) {
		json_decref(queue_summary_finish(s, now_us));
		return NULL;
	}
	return queue_summary_finish(s, now_us);
}

/* ---- One message ---- */

/* The header section of a stored message (up to its empty line), at most max octets, as
 * "headers" (bytes that are not UTF-8 shown as '?') and "headers_truncated". */
static void
header_section(json_t *o, struct evbuffer *body, size_t max)
{
	struct evbuffer_ptr crlf = evbuffer_search(body, "\r\n\r\n", 4, NULL);
	struct evbuffer_ptr lf = evbuffer_search(body, "\n\n", 2, NULL);
	size_t len = evbuffer_get_length(body);
	char *h;
	json_t *text;

	if (crlf.pos >= 0)
		len = (size_t)crlf.pos + 2;
	if (lf.pos >= 0 && (size_t)lf.pos + 1 < len)
		len = (size_t)lf.pos + 1;
	json_object_set_new(o, "headers_truncated", json_boolean(len > max));
	if (len > max)
		len = max;
	h = xmalloc(len + 1);
	evbuffer_copyout(body, h, len);
	h[len] = '\0';
	if ((text = json_stringn(h, len)) == NULL) {
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)h[i] >= 0x80 || h[i] == '\0')
				h[i] = '?';
		text = json_stringn(h, len);
	}
	json_object_set_new(o, "headers", text);
	free(h);
}

json_t *
queue_message_json(const struct config *cfg, const struct envelope *env, struct evbuffer *body,
                   size_t header_max, uint64_t now_us)
{
	json_t *o = json_object(), *queues = json_array();
	char stamp[40];

	time_rfc3339(env->received_us, stamp, sizeof(stamp));
	json_object_set_new(o, "id", json_string(env->id));
	json_object_set_new(o, "sender", json_string(env->sender));
	json_object_set_new(o, "recipients", report_rcpt_states(cfg, env));
	json_object_set_new(o, "stream", json_string(report_stream(cfg, env)));
	json_object_set_new(o, "tenant", report_string_or_null(env->tenant));
	json_object_set_new(o, "campaign", report_string_or_null(env->campaign));
	json_object_set_new(o, "pool", report_string_or_null(env->pool));
	json_object_set_new(o, "size", json_integer((json_int_t)env->size));
	json_object_set_new(o, "received", json_string(stamp));
	json_object_set_new(o, "age_s", age_s(now_us, env->received_us));
	/* Its queues: one per destination with a recipient pending, as the engine files it. */
	for (size_t i = 0; i < env->nrcpt; i++) {
		char domain[DNS_NAME_MAX + 3], lane[QUEUE_LANE_NAME_MAX];
		const char *pool;
		bool seen = false;
		size_t k;
		json_t *q;

		if (env->rcpt[i].state != RCPT_PENDING)
			continue;
		engine_domain(env->rcpt[i].address, domain, sizeof(domain));
		report_lane(cfg, env, domain, lane, sizeof(lane), &pool);
		json_array_foreach(queues, k, q)
		{
			seen = seen || strcmp(json_string_value(q), lane) == 0;
		}
		if (!seen)
			json_array_append_new(queues, json_string(lane));
	}
	json_object_set_new(o, "queues", queues);
	json_object_set_new(o, "headers", json_null());
	if (body != NULL)
		header_section(o, body, header_max);
	return o;
}
