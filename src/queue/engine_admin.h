/* queue/engine_admin.h - private to the delivery engine: the admin API's words (docs/operations.md,
 * "Control API"). Suspensions name what they hold by one selector; bounce, delete and retry
 * name what they act on by a filter. Parsing and matching are pure (engine_admin_words.c), so
 * that the unit tests check them; engine_admin.c applies them on the engine's thread.
 */
#ifndef DROVER_QUEUE_ENGINE_ADMIN_H
#define DROVER_QUEUE_ENGINE_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

struct envelope;

/* Names and reasons in a request: longer is a mistake, not a name. */
#define ADMIN_VALUE_MAX  255
#define ADMIN_REASON_MAX 200
/* A suspension "until resumed" holds lanes until this time (the queue's holds take a time). */
#define ADMIN_FOREVER (UINT64_MAX - 1)

enum admin_selector {
	ADMIN_SEL_DESTINATION = 0, /* a recipient domain's lanes */
	ADMIN_SEL_PROVIDER,        /* every domain of a provider (shaping's providers) */
	ADMIN_SEL_SOURCE,          /* an egress source: not used for new connections */
	ADMIN_SEL_POOL,            /* the lanes leaving by a pool */
	ADMIN_SEL_STREAM,          /* the lanes of a stream */
	ADMIN_SEL_TENANT,          /* messages of a tenant (checked when a message is loaded) */
	ADMIN_SEL_CAMPAIGN,        /* messages of a campaign (likewise) */
	ADMIN_SEL_COUNT
};

const char *admin_selector_name(enum admin_selector);
/* Selectors that hold lanes (checked before a connection opens), not messages. */
bool admin_selector_is_lane(enum admin_selector);

/* A suspend or resume request. */
struct admin_suspend {
	enum admin_selector sel;
	char value[ADMIN_VALUE_MAX + 1];
	bool has_id; /* resume {"id": N} */
	unsigned long id;
	uint64_t duration_s; /* 0: until resumed */
	char reason[ADMIN_REASON_MAX + 1];
};

/* From a request body: {"<selector>": "value", "duration": "2h", "reason": "..."}, exactly
 * one selector; for a resume, a selector or {"id": N}, no duration. 0, or -1 with the reason
 * in err (the API's 400). */
int admin_parse_suspend(const json_t *body, bool resume, struct admin_suspend *, char *err,
                        size_t errlen);

/* A duration as the configuration writes them ("90", "30s", "5m", "2h", "1d"), more than 0. A
 * JSON integer is seconds. 0, or -1 with the reason. */
int admin_parse_duration(const json_t *v, uint64_t *seconds, char *err, size_t errlen);

/* What a lane is, to be matched by a lane selector. provider and pool may be NULL. */
struct admin_lane {
	const char *domain; /* the recipient domain */
	const char *site;   /* the queue's site: the domain, or its provider */
	const char *provider;
	const char *pool;
	const char *stream;
};

bool admin_lane_matches(enum admin_selector, const char *value, const struct admin_lane *);
/* A message selector (tenant, campaign) against a message's; NULL fields match nothing. */
bool admin_message_matches(enum admin_selector, const char *value, const char *tenant,
                           const char *campaign);

/* A bounce, delete or retry filter: every field given must match. */
struct admin_filter {
	char *id, *domain, *sender, *tenant, *campaign, *stream, *pool; /* NULL: any */
	uint64_t older_than_s;                                          /* 0: any */
	char *reason; /* bounce: the DSN's text; NULL: the default */
};

/* From a request body. An empty filter is refused unless allow_empty (retry: everything).
 * reason is accepted only with allow_reason (bounce). 0, or -1 with the reason in err. */
int admin_parse_filter(const json_t *body, bool allow_empty, bool allow_reason,
                       struct admin_filter *, char *err, size_t errlen);
void admin_filter_clear(struct admin_filter *);
/* The filter as the request gave it (for AdminDelete records): a new reference. */
json_t *admin_filter_json(const struct admin_filter *);
/* The message's own fields: id, sender, tenant, campaign, age at now_us. */
bool admin_filter_message(const struct admin_filter *, const struct envelope *, uint64_t now_us);
/* A destination of the message: the domain, and the lane's stream and pool (pool NULL: none). */
bool admin_filter_domain(const struct admin_filter *, const char *domain);
bool admin_filter_lane(const struct admin_filter *, const char *stream, const char *pool);

/* ---- Hooks in the engine (engine_admin.c; engine thread only) ---- */

struct job;
struct queue_dest;
struct queue_engine;

/* Is the lane under a destination, provider, pool or stream suspension? *until: its end
 * (ADMIN_FOREVER: until resumed). attempt_new refuses the connection then. */
bool engine_admin_lane_held(struct queue_engine *, struct queue_dest *, uint64_t now,
                            uint64_t *until);
/* Is any source suspended (engine_shape_pick filters the pools' sources then)? */
bool engine_admin_sources_held(const struct queue_engine *);
/* Is this source suspended? *until as above. */
bool engine_admin_source_held(struct queue_engine *, const char *source, uint64_t now,
                              uint64_t *until);
/* A delivery job's message has loaded: true if a tenant or campaign suspension took it (it
 * is parked, or expired: the job is gone), false to send it. */
bool engine_admin_hold_job(struct job *);
/* An operator's bounce job has finished: the next may load. */
void engine_admin_job_done(struct queue_engine *);
void engine_admin_free(struct queue_engine *);
/* Suspensions in force (engine thread), for the metrics. */
size_t engine_admin_suspension_count(const struct queue_engine *);

#endif
