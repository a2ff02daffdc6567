/* engine.c - the delivery engine's thread, event loop and lifecycle: settings from the
 * configuration, the queue loaded from the spool at start, messages submitted by reception,
 * the one timer, and the stop with its grace period.
 *
 * Everything but queue_engine_submit() and the counters runs on the engine's thread;
 * submissions cross over through its mailbox. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_admin.h"
#include "queue/engine_internal.h"
#include "smtp/smtp.h"

/* ---- Settings ---- */

static unsigned
ms(unsigned s)
{
	return s > UINT32_MAX / 1000 ? UINT32_MAX : s * 1000;
}

/* One queue class per stream: class 0 is "default" (its section's settings if the file has
 * one), then the other stream sections in the order of the file. What a stream does not set
 * comes from delivery (qo->retry, made from it, must be set already). */
/* A stream's settings over delivery's (c->retry holds delivery's already). */
static void
class_from_stream(struct queue_class *c, const struct stream_conf *sc)
{
	if (sc == NULL)
		return;
	c->priority = sc->priority;
	c->reserve_pct = sc->reserve_pct;
	if (sc->nretry > 0) {
		c->retry.n =
		    (unsigned)(sc->nretry < QUEUE_RETRY_MAX ? sc->nretry : QUEUE_RETRY_MAX);
		for (unsigned k = 0; k < c->retry.n; k++)
			c->retry.interval_us[k] = sc->retry_s[k] * USEC;
	}
	if (sc->lifetime_s > 0)
		c->retry.lifetime_us = sc->lifetime_s * USEC;
}

/* One queue class per stream: class 0 is "default" (with its section's settings if the file
 * has one), then the other stream sections in the order of the file. qo->retry (delivery's
 * schedule) must be set already. */
void
engine_classes(struct queue_engine *e, struct queue_options *qo)
{
	const struct config *cfg = e->cfg;
	unsigned nold = e->nclasses, max = nold + (unsigned)cfg->nstreams + 1, n;
	struct queue_class *classes = xcalloc(max, sizeof(*classes));
	char **names = xcalloc(max, sizeof(*names));

	/* A class keeps its index for good (lanes refer to it): after a reload, the classes
	 * already there come first, with the new settings where the stream is still
	 * configured, and a stream no longer configured keeps its schedule to drain its lanes,
	 * without a reserve; then the new streams. */
	if (nold == 0) {
		names[0] = xstrdup("default");
		n = 1;
	} else {
		for (unsigned i = 0; i < nold; i++) {
			names[i] = xstrdup(e->class_names[i]);
			classes[i] = e->classes[i];
			classes[i].reserve_pct = 0;
		}
		n = nold;
	}
	for (unsigned i = 0; i < n; i++) {
		const struct stream_conf *sc = config_stream(cfg, names[i]);

		if (sc == NULL && i != 0)
			continue;
		classes[i] = (struct queue_class){.retry = qo->retry};
		class_from_stream(&classes[i], sc);
	}
	for (size_t i = 0; i < cfg->nstreams && n < QUEUE_CLASSES_MAX; i++) {
		bool known = false;

		for (unsigned k = 0; k < n && !known; k++)
			known = strcmp(names[k], cfg->streams[i].name) == 0;
		if (known)
			continue;
		names[n] = xstrdup(cfg->streams[i].name);
		classes[n].retry = qo->retry;
		class_from_stream(&classes[n], &cfg->streams[i]);
		n++;
	}
	engine_classes_free(e);
	e->classes = classes;
	e->class_names = (const char **)names;
	e->nclasses = n;
	qo->classes = e->classes;
	qo->nclasses = n;
}

void
engine_classes_free(struct queue_engine *e)
{
	for (unsigned i = 0; i < e->nclasses; i++)
		free((char *)e->class_names[i]);
	free(e->classes);
	free(e->class_names);
	e->classes = NULL;
	e->class_names = NULL;
	e->nclasses = 0;
}

/* cfg->delivery, with a zero (a configuration that does not set it) taken as the default of
 * the component that owns the setting. */
void
engine_settings(struct queue_engine *e, struct queue_options *qo)
{
	const struct delivery_conf *d = &e->cfg->delivery;
	struct delivery_timeouts *t = &e->dopts.timeouts;
	uint64_t seed = 0;

	e->dopts.helo_name = d->helo_name != NULL ? d->helo_name : e->cfg->hostname;
	t->connect_ms = ms(d->connect_timeout_s);
	t->greeting_ms = ms(d->greeting_timeout_s);
	t->helo_ms = ms(d->helo_timeout_s);
	t->mail_ms = ms(d->mail_timeout_s);
	t->rcpt_ms = ms(d->rcpt_timeout_s);
	t->data_ms = ms(d->data_timeout_s);
	t->data_block_ms = ms(d->data_block_timeout_s);
	t->dot_ms = ms(d->dot_timeout_s);
	t->idle_ms = ms(d->idle_timeout_s);
	e->port = (uint16_t)(d->port != 0 && d->port <= 65535 ? d->port : 25);
	e->ip = d->ip_version == 4   ? DNS_IP_V4_ONLY
	        : d->ip_version == 6 ? DNS_IP_V6_ONLY
	                             : DNS_IP_PREFER_V6;
	e->max_messages =
	    d->max_messages_per_connection ? d->max_messages_per_connection : DEF_QUEUE_BATCH_MAX;
	e->max_rcpts = d->max_recipients_per_transaction ? d->max_recipients_per_transaction : 100;
	e->postmaster = d->postmaster != NULL && d->postmaster[0] != '\0' ? d->postmaster : NULL;
	/* The configuration's default is DSN_DEF_RETURN_MAX; 0 there means headers only. */
	e->dsn_return_max = (size_t)d->dsn_return_max;
	e->max_conns =
	    d->max_connections_total ? d->max_connections_total : DEF_ENGINE_MAX_CONNECTIONS_TOTAL;
	e->delay_notice_us = d->delay_notice_after_s * USEC;

	queue_options_default(qo);
	if (d->nretry > 0) {
		qo->retry.n = (unsigned)(d->nretry < QUEUE_RETRY_MAX ? d->nretry : QUEUE_RETRY_MAX);
		for (unsigned i = 0; i < qo->retry.n; i++)
			qo->retry.interval_us[i] = d->retry_s[i] * USEC;
		qo->retry.jitter_pct = d->retry_jitter_pct;
	}
	if (d->queue_lifetime_s > 0)
		qo->retry.lifetime_us = d->queue_lifetime_s * USEC;
	if (d->max_connections > 0)
		qo->max_window = d->max_connections;
	if (d->initial_connections > 0)
		qo->initial_window = d->initial_connections;
	if (qo->initial_window > qo->max_window)
		qo->initial_window = qo->max_window;
	if (d->dead_after > 0)
		qo->dead_after = d->dead_after;
	if (d->dead_cooldown_s > 0) {
		qo->dead_cooldown_us = d->dead_cooldown_s * USEC;
		if (qo->dead_cooldown_max_us < qo->dead_cooldown_us)
			qo->dead_cooldown_max_us = qo->dead_cooldown_us;
	}
	e->lifetime_us = qo->retry.lifetime_us;
	engine_classes(e, qo);
	qo->batch_max = e->max_messages;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = time_now_us() ^ time_mono_us();
	qo->seed = seed;
}

/* Every delivery connection and every SMTP session is a descriptor: past the process's limit,
 * connections fail with EMFILE and look like unreachable sites. A soft limit below what the
 * settings may need is raised (as far as the hard limit allows, as Redis does for its
 * maxclients): the defaults, 512 connections and 1000 sessions, already exceed the 1024 a
 * shell or systemd gives by default. What cannot be raised is said once, at start, with the
 * settings to change. */
static void
ensure_descriptors(const struct queue_engine *e)
{
	struct rlimit rl;
	/* The listeners, the spool, the event log, the resolver and the loops' own. */
	const uint64_t others = 64;
	uint64_t want = (uint64_t)e->max_conns + e->cfg->smtp.max_sessions + others;
	uint64_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
	    (uint64_t)rl.rlim_cur >= want)
		return;
	was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (uint64_t)rl.rlim_max >= want ? (rlim_t)want
	                                                                            : rl.rlim_max;
	if (rl.rlim_cur > was && setrlimit(RLIMIT_NOFILE, &rl) == 0)
		log_info("delivery: descriptor limit raised from %llu to %llu",
		         (unsigned long long)was, (unsigned long long)rl.rlim_cur);
	else
		rl.rlim_cur = was;
	if ((uint64_t)rl.rlim_cur >= want)
		return;
	log_warn("delivery: delivery.max_connections_total (%u) and smtp.max_sessions (%u) may "
	         "need %llu descriptors, more than the limit of %llu: raise it (ulimit -n, "
	         "LimitNOFILE=) or lower them",
	         e->max_conns, e->cfg->smtp.max_sessions, (unsigned long long)want,
	         (unsigned long long)rl.rlim_cur);
}

/* ---- Small shared helpers ---- */

void
engine_domain(const char *address, char *buf, size_t size)
{
	const char *at = strrchr(address, '@');
	const char *why;
	size_t i = 0;

	/* The destination is the name the DNS and the routes know: a UTF-8 domain (SMTPUTF8
	 * mail) goes by its A-label, so that "bücher.example" and "xn--bcher-kva.example" are
	 * one queue, looked up once. One that has no A-label keeps its UTF-8 form: its own
	 * destination, which targets_resolve() bounces (5.1.2). */
	if (at != NULL && at[1] != '[' && smtp_domain_to_ascii(at + 1, buf, size, &why) == 0)
		return;
	if (at != NULL)
		for (const char *p = at + 1; *p != '\0' && i + 1 < size; p++)
			buf[i++] = (char)tolower((unsigned char)*p);
	buf[i] = '\0';
}

enum delivery_tls_policy
engine_tls_policy(const struct queue_engine *e, const char *domain)
{
	switch (config_tls_policy(e->cfg, domain)) {
	case TLS_POLICY_DISABLED:
		return DELIVERY_TLS_DISABLED;
	case TLS_POLICY_REQUIRED:
		return DELIVERY_TLS_REQUIRED;
	case TLS_POLICY_REQUIRED_VERIFY:
		return DELIVERY_TLS_REQUIRED_VERIFY;
	case TLS_POLICY_OPPORTUNISTIC:
	case TLS_POLICY_UNSET:
	default:
		return DELIVERY_TLS_OPPORTUNISTIC;
	}
}

void
engine_kick(struct queue_engine *e)
{
	uint64_t due, now;
	struct timeval tv = {0, 0};

	if (e->stopping)
		return;
	/* At the limit, nothing can be taken: the next attempt to end kicks again. */
	if (e->nattempts >= e->max_conns || e->nexpiring >= ENGINE_EXPIRING_MAX) {
		evtimer_del(e->timer);
		/* Every slot taken while mail is due: connections idling for mail their own
		 * destination does not have hold slots that other destinations need. Close them
		 * now rather than at their idle timeout; each end kicks again. */
		if (e->nattempts >= e->max_conns && queue_next_due_us(e->q) <= time_now_us())
			engine_close_idle(e);
		return;
	}
	due = queue_next_due_us(e->q);
	if (due == UINT64_MAX) {
		evtimer_del(e->timer);
		return;
	}
	now = time_now_us();
	if (due > now) {
		uint64_t wait = due - now;
		tv.tv_sec = (time_t)(wait / USEC);
		tv.tv_usec = (suseconds_t)(wait % USEC);
	}
	evtimer_add(e->timer, &tv);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct queue_engine *e = arg;

	engine_dispatch(e);
	engine_kick(e);
}

/* ---- Startup: the queue from the spool ---- */

struct dest_acc {
	char name[DNS_NAME_MAX + 3]; /* room for "[IPv6:...]" literals is cut, as any name */
	uint64_t next_us;
	unsigned attempts;
};

/* The distinct domains of env's pending recipients (a linear search: messages with more
 * than a few domains are rare, and the count is bounded by the recipients). */
static size_t
group_domains(const struct envelope *env, struct dest_acc **out)
{
	struct dest_acc *d = NULL;
	size_t n = 0;

	for (size_t i = 0; i < env->nrcpt; i++) {
		const struct envelope_rcpt *r = &env->rcpt[i];
		char name[sizeof(d->name)];
		size_t k;

		if (r->state != RCPT_PENDING)
			continue;
		engine_domain(r->address, name, sizeof(name));
		for (k = 0; k < n && strcmp(d[k].name, name) != 0; k++)
			;
		if (k == n) {
			d = xrealloc(d, (n + 1) * sizeof(*d));
			strlcpy_s(d[n].name, name, sizeof(d[n].name));
			d[n].next_us = r->next_attempt_us;
			d[n].attempts = r->attempts;
			n++;
			continue;
		}
		if (r->next_attempt_us < d[k].next_us)
			d[k].next_us = r->next_attempt_us;
		if (r->attempts > d[k].attempts)
			d[k].attempts = r->attempts;
	}
	*out = d;
	return n;
}

/* The message's classification, as the engine keeps it until the item is queued. */
struct message_class {
	char *stream, *tenant, *pool; /* NULL: none */
};

static void
message_class_copy(struct message_class *mc, const struct envelope *env)
{
	mc->stream = env->stream != NULL ? xstrdup(env->stream) : NULL;
	mc->tenant = env->tenant != NULL ? xstrdup(env->tenant) : NULL;
	mc->pool = env->pool != NULL ? xstrdup(env->pool) : NULL;
}

static void
message_class_clear(struct message_class *mc)
{
	free(mc->stream);
	free(mc->tenant);
	free(mc->pool);
}

int
engine_queue_add(struct queue_engine *e, const char *id, uint64_t received_us, const char *stream,
                 const char *tenant, const char *pool, const char *domain, uint64_t next_us,
                 unsigned attempts)
{
	const struct pool_conf *p = config_message_pool(e->cfg, pool, stream, tenant, domain);
	struct queue_lane lane = {.via = p != NULL ? p->name : NULL};
	char name[QUEUE_LANE_NAME_MAX], site[SHAPE_DEST_MAX + 1];
	unsigned cls = 0;

	/* The site is where shaping counts: the domain's provider (every Gmail and Workspace
	 * domain at one window), or the domain. */
	engine_shape_site(e, domain, p, site, sizeof(site), &lane.max_window, &lane.initial_window);
	lane.site = site;

	/* A stream this configuration does not know (the spool was written under another) is
	 * "default"'s. */
	for (unsigned c = 1; c < e->nclasses && stream != NULL; c++)
		if (strcmp(e->class_names[c], stream) == 0)
			cls = c;
	lane.cls = cls;
	if (p != NULL)
		snprintf(name, sizeof(name), "%s:%s@%s", e->class_names[cls], p->name, domain);
	else
		snprintf(name, sizeof(name), "%s@%s", e->class_names[cls], domain);
	lane.name = name;
	return queue_add_lane(e->q, id, &lane, received_us, next_us, attempts);
}

static void
queue_dests(struct queue_engine *e, const char *id, uint64_t received_us,
            const struct message_class *mc, struct dest_acc *d, size_t n, _Atomic uint64_t *counter)
{
	for (size_t k = 0; k < n; k++) {
		if (d[k].name[0] == '\0') {
			log_warn("queue: message %s: a recipient without a domain cannot be "
			         "delivered; left in the spool",
			         id);
			continue;
		}
		if (engine_queue_add(e, id, received_us, mc->stream, mc->tenant, mc->pool,
		                     d[k].name, d[k].next_us, d[k].attempts) == 0) {
			atomic_fetch_add(counter, 1);
			atomic_fetch_add(&e->st_items, 1);
		} else if (errno != EEXIST)
			log_warn("queue: message %s to %s: cannot queue: %s", id, d[k].name,
			         strerror(errno));
	}
}

static int
load_one(void *arg, const struct envelope *env)
{
	struct queue_engine *e = arg;
	struct message_class mc = {env->stream, env->tenant, env->pool};
	struct dest_acc *d;
	size_t n = group_domains(env, &d);

	queue_dests(e, env->id, env->received_us, &mc, d, n, &e->st_loaded);
	free(d);
	return 0;
}

/* ---- Submissions (any thread) ---- */

struct submission {
	struct queue_engine *e;
	char id[SPOOL_ID_LEN + 1];
	uint64_t received_us;
	struct message_class mc;
	size_t n;
	struct dest_acc *d;
};

static void
on_submission(void *arg)
{
	struct submission *s = arg;

	queue_dests(s->e, s->id, s->received_us, &s->mc, s->d, s->n, &s->e->st_submitted);
	engine_kick(s->e);
	message_class_clear(&s->mc);
	free(s->d);
	free(s);
}

void
queue_engine_submit(struct queue_engine *qe, const struct envelope *env)
{
	struct queue_engine *e = qe;
	struct submission *s = xcalloc(1, sizeof(*s));

	s->e = e;
	strlcpy_s(s->id, env->id, sizeof(s->id));
	s->received_us = env->received_us;
	message_class_copy(&s->mc, env);
	s->n = group_domains(env, &s->d);
	/* A fresh message: due at once, no attempt made (group_domains took the envelope's,
	 * which reception leaves at zero). */
	for (size_t k = 0; k < s->n; k++) {
		s->d[k].next_us = 0;
		s->d[k].attempts = 0;
	}
	mailbox_post(e->mbox, on_submission, s);
}

void
queue_engine_accepted(void *engine, const struct envelope *env)
{
	queue_engine_submit(engine, env);
}

/* ---- Lifecycle ---- */

static void *
engine_main(void *arg)
{
	struct queue_engine *e = arg;

	engine_kick(e);
	event_base_dispatch(e->base);
	return NULL;
}

static void
engine_free(struct queue_engine *e)
{
	if (e->timer != NULL)
		event_free(e->timer);
	if (e->grace != NULL)
		event_free(e->grace);
	engine_shape_stop(e); /* its timer, before the loop goes */
	engine_admin_free(e); /* likewise */
	if (e->dns != NULL)
		dns_resolver_free(e->dns);
	if (e->q != NULL)
		queue_free(e->q);
	engine_metrics_stop(e);
	if (e->mbox != NULL)
		mailbox_free(e->mbox);
	if (e->base != NULL)
		event_base_free(e->base);
	tls_memory_free(e->tls_memory);
	egress_free(e->egress);
	delivery_tls_ctx_free(e->tls_ctx);
	classify_unref(e->classify);
	engine_verp_free(e);
	engine_classes_free(e);
	for (size_t i = 0; i < e->nretired_tls; i++)
		delivery_tls_ctx_free(e->retired_tls[i]);
	free(e->retired_tls);
	config_unref(e->cfg);
	free(e);
}

struct queue_engine *
queue_engine_start(const struct config *cfg, struct spool *spool, struct eventlog *log, char *err,
                   size_t errlen)
{
	struct queue_engine *e = xcalloc(1, sizeof(*e));
	const struct delivery_conf *d = &cfg->delivery;
	struct queue_options qo;
	struct dns_options dopt = {0};
	struct delivery_tls_options topt = {
	    .ca_file = d->tls_ca_file,
	    .min_version = d->tls_min_version == 0x0304 ? 13 : 12,
	};
	char why[256];
	uint64_t t0 = time_mono_us();

	e->cfg = config_ref(cfg);
	e->cfg_latest = e->cfg;
	e->spool = spool;
	e->log = log;
	engine_settings(e, &qo);
	ensure_descriptors(e);
	e->q = queue_new(&qo, why, sizeof(why));
	if (e->q == NULL) {
		snprintf(err, errlen, "delivery: %s", why);
		goto fail;
	}
	/* The CA store is read here, once, on the calling thread: verifying a certificate on
	 * the loop then costs no file access. */
	e->tls_ctx = delivery_tls_ctx_new(&topt, err, errlen);
	if (e->tls_ctx == NULL)
		goto fail;
	/* Compiled once (PCRE2 JIT) on the calling thread, as the CA store. */
	e->classify = d->bounce_rules != NULL
	                  ? classify_load(d->bounce_rules, CLASSIFY_DEF_CACHE_ENTRIES, err, errlen)
	                  : classify_builtin(CLASSIFY_DEF_CACHE_ENTRIES, err, errlen);
	if (e->classify == NULL)
		goto fail;
	if (engine_shape_start(e, err, errlen) < 0)
		goto fail;
	if (engine_verp_init(e, err, errlen) < 0)
		goto fail;
	e->dopts.tls_ctx = e->tls_ctx;
	if (d->tls_failure_memory_s > 0)
		e->tls_memory =
		    tls_memory_new(ENGINE_TLS_MEMORY_MAX, d->tls_failure_memory_s * USEC);
	e->egress = egress_new(e->cfg);
	e->base = event_base_new();
	if (e->base == NULL) {
		snprintf(err, errlen, "delivery: cannot create an event loop");
		goto fail;
	}
	e->mbox = mailbox_new(e->base);
	e->timer = evtimer_new(e->base, on_timer, e);
	engine_metrics_start(e, &dopt);
	dopt.forwarders = (const char *const *)d->dns_forwarders; /* NULL-terminated */
	dopt.timeout_ms = ms(d->dns_timeout_s);
	e->dns = dns_resolver_new(e->base, &dopt, err, errlen);
	if (e->dns == NULL)
		goto fail;

	if (spool_foreach(spool, load_one, e) < 0) {
		snprintf(err, errlen, "delivery: cannot read the spool");
		goto fail;
	}
	log_info("delivery: %llu queue items from the spool in %.3f s",
	         (unsigned long long)atomic_load(&e->st_loaded),
	         (double)(time_mono_us() - t0) / 1e6);

	if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
		snprintf(err, errlen, "delivery: cannot start the thread: %s", strerror(errno));
		goto fail;
	}
	e->thread_started = true;
	return e;
fail:
	engine_free(e);
	return NULL;
}

void
engine_check_stopped(struct queue_engine *e)
{
	if (e->stopping && e->nattempts == 0 && e->spool_ops == 0)
		event_base_loopbreak(e->base);
}

static void
on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct queue_engine *e = arg;
	struct attempt *a, *next;

	e->grace_over = true;
	if (e->nattempts > 0)
		log_warn("delivery: %u connection%s still busy after the grace period: dropped, "
		         "their messages stay queued",
		         e->nattempts, e->nattempts == 1 ? "" : "s");
	for (a = e->attempts; a != NULL; a = next) {
		next = a->next;
		attempt_abort(a);
	}
	engine_check_stopped(e);
}

struct stop_req {
	struct queue_engine *e;
	unsigned grace_s;
};

static void
on_stop(void *arg)
{
	struct stop_req *r = arg;
	struct queue_engine *e = r->e;
	struct attempt *a, *next;
	struct timeval tv = {.tv_sec = r->grace_s};

	free(r);
	e->stopping = true;
	evtimer_del(e->timer);
	for (a = e->attempts; a != NULL; a = next) {
		next = a->next;
		attempt_stop(a);
	}
	e->grace = evtimer_new(e->base, on_grace, e);
	evtimer_add(e->grace, &tv);
	engine_check_stopped(e);
}

void
queue_engine_stop(struct queue_engine *qe, unsigned grace_s)
{
	struct queue_engine *e = qe;
	struct stop_req *r;
	struct queue_engine_stats st;

	if (e == NULL)
		return;
	if (e->thread_started) {
		r = xmalloc(sizeof(*r));
		r->e = e;
		r->grace_s = grace_s;
		mailbox_post(e->mbox, on_stop, r);
		pthread_join(e->thread, NULL);
	}
	queue_engine_stats(qe, &st);
	log_info("delivery: %llu delivered, %llu deferred, %llu bounced, %llu expired, %llu DSNs, "
	         "%llu connections (%llu reached a server), %llu items left queued",
	         (unsigned long long)st.delivered, (unsigned long long)st.deferred,
	         (unsigned long long)st.bounced, (unsigned long long)st.expired,
	         (unsigned long long)st.dsns, (unsigned long long)st.connections,
	         (unsigned long long)st.connections_ok, (unsigned long long)st.items);
	engine_free(e);
}

void
queue_engine_stats(struct queue_engine *qe, struct queue_engine_stats *st)
{
	struct queue_engine *e = qe;

	*st = (struct queue_engine_stats){
	    .loaded = atomic_load(&e->st_loaded),
	    .submitted = atomic_load(&e->st_submitted),
	    .delivered = atomic_load(&e->st_delivered),
	    .deferred = atomic_load(&e->st_deferred),
	    .bounced = atomic_load(&e->st_bounced),
	    .expired = atomic_load(&e->st_expired),
	    .dsns = atomic_load(&e->st_dsns),
	    .connections = atomic_load(&e->st_connections),
	    .connections_ok = atomic_load(&e->st_connections_ok),
	    .messages_reused = atomic_load(&e->st_reused),
	    .items = atomic_load(&e->st_items),
	    .open = atomic_load(&e->st_open),
	};
}

void
queue_engine_set_suppression(struct queue_engine *e, struct suppress *list)
{
	atomic_store(&e->suppress, list);
}
