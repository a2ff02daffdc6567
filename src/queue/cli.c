/* cli.c - `drover queue list | show`: what is queued, read from the spool (`queue summary`
 * is control/cli.c's: through the running server, or summary.c's reading of the spool).
 *
 * The spool is the truth and LMDB lets a reader in beside the running daemon, so these work
 * whether or not it runs, and see what a restart would load. The queue a recipient waits in is
 * computed as the engine computes it (engine_queue_add: the stream, and the pool
 * config_message_pool gives), from the same configuration file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <jansson.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"
#include "queue/queue.h"
#include "queue/report.h"
#include "spool/spool.h"

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
	json_object_set_new(dsn, "envid", report_string_or_null(env->envid));
	for (size_t i = 0; i < env->nrcpt; i++) {
		json_t *r = json_object(), *notify = json_array();

		for (unsigned b = 0; b < 4; b++)
			if (env->rcpt[i].notify & (1u << b))
				json_array_append_new(notify, json_string(notify_names[b]));
		json_object_set_new(r, "address", json_string(env->rcpt[i].address));
		json_object_set_new(r, "notify", notify);
		json_object_set_new(r, "orcpt", report_string_or_null(env->rcpt[i].orcpt));
		json_array_append_new(rcpts, r);
	}
	json_object_set_new(dsn, "recipients", rcpts);
	return dsn;
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
		json_object_set_new(o, "stream", json_string(report_stream(ctx->cfg, env)));
		json_object_set_new(o, "tenant", report_string_or_null(env->tenant));
		json_object_set_new(o, "campaign", report_string_or_null(env->campaign));
		json_object_set_new(o, "pool", report_string_or_null(env->pool));
		json_object_set_new(o, "dsn", list_dsn(env));
		json_object_set_new(o, "delivery", report_rcpt_states(ctx->cfg, env));
		text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		puts(text);
		free(text);
		json_decref(o);
		return 0;
	}
	units_format_age(age, agebuf, sizeof(agebuf));
	printf("%-24s %9llu %5s %-14s <%s>", env->id, (unsigned long long)env->size, agebuf,
	       report_stream(ctx->cfg, env), env->sender);
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
	       report_stream(cfg, &env), env.tenant != NULL ? env.tenant : "-",
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
