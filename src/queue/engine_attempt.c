/* engine_attempt.c - one connection's life: a queue slot for a destination, the messages
 * loaded for it, the SMTP client that carries them one transaction at a time, more messages
 * of the same destination while the connection lasts (up to max_messages_per_connection),
 * and the slot given back with the connection's fate (reached the site or not).
 *
 *	attempt_new ─► targets (route / smarthost / MX)  ┐
 *	            └► spool_load per message            ┴► client: send, result, next ... closed
 *
 * An attempt ends ("over") when its client has closed, when it has no target (DNS), or when
 * the engine stops; it is freed once its last job has left. Jobs not sent when it ends are
 * untried: their items are due again at once, no attempt counted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_admin.h"
#include "queue/engine_internal.h"

static const struct delivery_message *on_next(void *arg, struct delivery_client *);
static void on_result(void *arg, struct delivery_client *, const struct delivery_result *);
static void on_closed(void *arg, struct delivery_client *, const struct delivery_session *);
static void on_tls_fallback(void *arg, struct delivery_client *, const char *host, const char *ip,
                            uint16_t port, const char *why);

static const struct delivery_callbacks client_callbacks = {
    .result = on_result,
    .next = on_next,
    .closed = on_closed,
    .tls_fallback = on_tls_fallback,
};

/* ---- Jobs on the attempt ---- */

static void
attach(struct attempt *a, struct job *j)
{
	j->a = a;
	j->prev = a->jobs_tail;
	j->next = NULL;
	if (a->jobs_tail != NULL)
		a->jobs_tail->next = j;
	else
		a->jobs = j;
	a->jobs_tail = j;
	a->njobs++;
	a->taken++;
}

static void
detach(struct attempt *a, struct job *j)
{
	if (j->prev != NULL)
		j->prev->next = j->next;
	else
		a->jobs = j->next;
	if (j->next != NULL)
		j->next->prev = j->prev;
	else
		a->jobs_tail = j->prev;
	j->prev = j->next = NULL;
	j->a = NULL;
	a->njobs--;
	if (a->current == j)
		a->current = NULL;
}

static void
take(struct attempt *a, struct queue_item **items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct job *j = job_new(a->e, a, items[i]);

		j->has_retry = engine_shape_retry(a, &j->retry);
		attach(a, j);
		job_load(j);
	}
}

/* The job whose transaction goes next: the rest of the current message's recipients first,
 * then the oldest message loaded. */
static struct job *
pick(struct attempt *a)
{
	if (a->current != NULL && a->current->next_txn < a->current->ntxn)
		return a->current;
	for (struct job *j = a->jobs; j != NULL; j = j->next)
		if (j->state == JOB_READY && j->ntxn > 0)
			return j;
	return NULL;
}

static const struct delivery_message *
commit(struct attempt *a, struct job *j)
{
	const struct delivery_message *m = &j->txn[j->next_txn++];

	if (j->state == JOB_READY) {
		j->state = JOB_SENDING;
		j->started_mono = time_mono_us();
	}
	a->current = j;
	a->inflight = true;
	a->idle = false;
	return m;
}

/* ---- The end ---- */

static void
attempt_maybe_free(struct attempt *a)
{
	struct queue_engine *e = a->e;

	if (!a->over || a->njobs > 0 || a->client != NULL || a->busy > 0)
		return;
	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		e->attempts = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	targets_free(a);
	engine_shape_attempt_free(a);
	if (a->end_timer != NULL)
		event_free(a->end_timer);
	free(a->domain);
	config_unref(a->cfg);
	free(a);
	e->nattempts--;
	atomic_fetch_sub(&e->st_open, 1);
	engine_kick(e);
	engine_check_stopped(e);
}

/* The connection is over: the slot goes back with its fate, unsent jobs finish untried (those
 * still loading, when they arrive). */
static void
attempt_over(struct attempt *a, enum queue_conn fate)
{
	struct queue_engine *e = a->e;
	uint64_t now = time_now_us();
	struct job *j, *next;

	if (a->over)
		return;
	a->over = true;
	a->idle = false;
	if (fate == QUEUE_CONN_OK && a->fed_back)
		fate = QUEUE_CONN_NONE; /* given at its first answer (site_answered) */
	if (fate != QUEUE_CONN_NONE) {
		enum queue_dest_state st = queue_feedback(e->q, a->dest, fate, now);

		if (st == QUEUE_DEST_DEAD && fate == QUEUE_CONN_FAILED)
			log_warn("delivery: %s: connections keep failing: destination held back",
			         a->domain);
	}
	queue_release(e->q, a->dest, QUEUE_CONN_NONE, now);
	a->dest = NULL;
	a->busy++; /* finishing a job may end the attempt: not while walking its list */
	for (j = a->jobs; j != NULL; j = next) {
		next = j->next;
		if (j->state != JOB_LOADING)
			job_finish(j);
	}
	a->busy--;
	attempt_maybe_free(a);
}

/* ---- Sending ---- */

/* Opportunistic TLS: the targets whose handshake failed lately go without STARTTLS. */
static void
skip_failed_tls(struct attempt *a)
{
	struct queue_engine *e = a->e;
	uint64_t now = time_now_us();

	if (a->tls != DELIVERY_TLS_OPPORTUNISTIC || e->tls_memory == NULL)
		return;
	for (size_t i = 0; i < a->ntargets; i++) {
		const struct sockaddr *sa = a->targets[i].addr;
		char ip[INET6_ADDRSTRLEN] = "";
		uint16_t port;

		if (sa->sa_family == AF_INET6) {
			const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;

			inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof(ip));
			port = ntohs(s6->sin6_port);
		} else {
			const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;

			inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof(ip));
			port = ntohs(s4->sin_port);
		}
		a->targets[i].no_starttls =
		    tls_memory_has(e->tls_memory, a->targets[i].host, ip, port, now);
	}
}

static void
attempt_pump(struct attempt *a)
{
	struct queue_engine *e = a->e;
	struct job *j;
	char err[256];

	if (a->over || a->tstate != T_READY || a->inflight || e->stopping)
		return;
	j = pick(a);
	if (j == NULL)
		return;
	if (!engine_shape_may_send(a))
		return; /* a timer resumes it, or the connection ends */
	if (a->client == NULL) {
		struct delivery_options o = e->dopts;

		o.tls = a->tls;
		engine_shape_options(a, &o);
		if (a->source >= 0) {
			const struct source_conf *src = &a->cfg->sources[a->source];

			o.source = (const struct sockaddr *)&src->sockaddr;
			o.source_len = src->socklen;
			o.helo_name = src->ehlo;
		}
		skip_failed_tls(a);
		a->client = delivery_client_new(e->base, &o, a->targets, a->ntargets,
		                                &client_callbacks, a, err, sizeof(err));
		if (a->client == NULL) {
			log_error("delivery: %s: %s", a->domain, err);
			for (struct job *k = a->jobs; k != NULL; k = k->next)
				job_decide_all(k, R_DEFERRED, 451, "4.3.0", err, true);
			attempt_over(a, QUEUE_CONN_NONE);
			return;
		}
		atomic_fetch_add(&e->st_connections, 1);
	} else if (!delivery_client_idle(a->client))
		return; /* closing: on_closed finishes the jobs */
	if (delivery_client_send(a->client, &j->txn[j->next_txn]) == 0) {
		bool first = a->taken == a->njobs && j->state == JOB_READY && j == a->jobs;

		(void)commit(a, j);
		/* The connection's first message: its time includes finding and reaching the
		 * server. */
		if (first)
			j->started_mono = a->started_mono;
	}
}

/* ---- Pools: one message at a time, on its source's turn ----
 *
 * With a pool, the round robin decides per message, not per connection: a connection takes
 * the destination's next message only when the pick is its own source, so the weights hold
 * in messages however many each connection carries. Each message taken moves the turn on,
 * and the idle connection whose turn it now is takes the next (egress_wake). When it is the
 * turn of a source with no connection to the destination, a new one opens if the window
 * has room; if not, an idle connection of another source gives its slot up (yield_slot). */

static void egress_wake(struct queue_engine *, struct queue_dest *);

static size_t
refill_pooled(struct attempt *a, size_t want)
{
	struct queue_engine *e = a->e;
	uint64_t now = time_now_us();
	struct queue_item *it;
	size_t got = 0;

	while (got < want && engine_shape_pick(a, now, false, NULL) == a->source &&
	       queue_take_more(e->q, a->dest, now, &it, 1) == 1) {
		(void)engine_shape_pick(a, now, true, NULL);
		a->idle = false;
		take(a, &it, 1);
		got++;
	}
	return got;
}

/* An idle connection that is not its source's turn: it keeps its slot while the source whose
 * turn it is has a connection (that one takes the message) or can get one (the window has
 * room); otherwise it closes, and its slot goes to that source. */
static void
yield_slot(struct attempt *a)
{
	struct queue_engine *e = a->e;
	struct queue_dest_stats st;
	long turn;

	if (a->over || !a->idle || a->njobs > 0 || a->client == NULL || a->dest == NULL)
		return;
	turn = engine_shape_pick(a, time_now_us(), false, NULL);
	if (turn < 0 || turn == a->source)
		return;
	for (struct attempt *b = e->attempts; b != NULL; b = b->next)
		if (b != a && !b->over && b->dest == a->dest && b->source == turn)
			return;
	queue_dest_stats(e->q, a->dest, &st);
	if (st.ready == 0)
		return;
	if (st.slots < st.window) {
		engine_kick(e);
		return;
	}
	a->idle = false;
	delivery_client_close(a->client);
}

/* A message was taken for dest: the idle connections whose turn may have come take theirs,
 * until none takes any. */
static void
egress_wake(struct queue_engine *e, struct queue_dest *dest)
{
	bool again = true;

	if (e->waking)
		return;
	e->waking = true;
	while (again) {
		again = false;
		for (struct attempt *b = e->attempts; b != NULL; b = b->next) {
			unsigned before = b->taken;

			if (b->dest != dest || b->over || !b->idle || b->pool == NULL)
				continue;
			attempt_refill(b);
			again = again || b->taken != before;
		}
	}
	e->waking = false;
}

void
attempt_refill(struct attempt *a)
{
	struct queue_engine *e = a->e;
	struct queue_item *items[ENGINE_PREFETCH];
	size_t room, left, n;

	if (a->over || e->stopping || a->njobs >= ENGINE_PREFETCH ||
	    a->taken >= engine_max_messages(a) || a->ending)
		return;
	room = ENGINE_PREFETCH - a->njobs;
	left = engine_max_messages(a) - a->taken;
	if (a->pool != NULL) {
		if (a->source >= 0 && refill_pooled(a, room < left ? room : left) > 0)
			egress_wake(e, a->dest);
		else
			yield_slot(a);
		return;
	}
	n = queue_take_more(e->q, a->dest, time_now_us(), items, room < left ? room : left);
	if (n > 0) {
		a->idle = false;
		take(a, items, n);
	}
}

/* ---- Client callbacks ---- */

static const struct delivery_message *
on_next(void *arg, struct delivery_client *c)
{
	struct attempt *a = arg;
	struct job *j;

	if (a->e->stopping)
		return NULL;
	attempt_refill(a);
	j = pick(a);
	if (j != NULL) {
		if (!engine_shape_may_send(a))
			return NULL; /* the rate timer sends it (attempt_resume) */
		return commit(a, j);
	}
	if (a->njobs == 0) {
		/* Done, or its slot is wanted by higher-priority mail at the site (a stream's). */
		if (a->taken >= engine_max_messages(a) || a->ending ||
		    (a->dest != NULL && queue_dest_yields(a->e->q, a->dest)))
			delivery_client_close(c);
		else {
			a->idle = true; /* the dispatcher may give it more (engine_dispatch) */
			if (a->pool != NULL)
				yield_slot(a);
		}
	}
	return NULL; /* idle: a message that finishes loading is sent by attempt_pump */
}

static enum rcpt_fate
fate_of(enum delivery_status st)
{
	switch (st) {
	case DELIVERY_DELIVERED:
		return R_DELIVERED;
	case DELIVERY_BOUNCED:
		return R_BOUNCED;
	case DELIVERY_DEFERRED:
	default:
		return R_DEFERRED;
	}
}

/* The window's feedback as soon as the site has answered, not when the connection ends: a
 * connection carries up to max_messages_per_connection messages, and a burst to one
 * destination would otherwise wait at the initial window for connections to turn over (the
 * DSN trickle of docs/performance.md). The first answer counts the connection
 * (queue_feedback), each later one the transaction (queue_feedback_transaction). A 421 is the
 * server asking us to slow down: no positive feedback for it. */
static void
site_answered(struct attempt *a, const struct delivery_result *r)
{
	struct queue_engine *e = a->e;
	bool answered = false, grew;

	for (size_t i = 0; i < r->nrcpt && !answered; i++)
		answered = !r->rcpt[i].reply.local && r->rcpt[i].reply.code != 421;
	if (!answered || a->dest == NULL)
		return;
	if (!a->fed_back) {
		a->fed_back = true;
		queue_feedback(e->q, a->dest, QUEUE_CONN_OK, time_now_us());
		grew = true;
	} else
		grew = queue_feedback_transaction(e->q, a->dest, time_now_us());
	if (grew)
		engine_kick(e); /* the window may let another connection start now */
}

/* What the receiver said goes to the adaptive rules: the transaction's first failure once
 * (a 421 at RCPT repeats for every recipient; counting it per recipient would trip an "N in
 * period" trigger with one message), a delivery as a success. */
static void
shape_saw(struct attempt *a, const struct delivery_result *r)
{
	bool delivered = false;

	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct delivery_rcpt_result *rr = &r->rcpt[i];

		if (rr->status == DELIVERY_DELIVERED) {
			delivered = true;
			continue;
		}
		if (!rr->reply.local) {
			engine_shape_reply(a, rr->reply.code, rr->reply.status, rr->reply.text);
			return;
		}
	}
	if (delivered)
		engine_shape_delivered(a);
}

static void
on_result(void *arg, struct delivery_client *c, const struct delivery_result *r)
{
	struct attempt *a = arg;
	const struct delivery_message *m = r->msg;
	struct job *j = m->arg;
	size_t off = (size_t)(m->rcpt - j->ridx);
	uint64_t elapsed = (time_mono_us() - j->started_mono) / 1000;

	a->inflight = false;
	if (r->source_errno != 0) {
		/* The source could not be bound: nothing was tried, the message goes again at
		 * once from another source of the pool (on_closed marks this one down). */
		if (++j->done_txn == j->ntxn)
			job_finish(j);
		return;
	}
	site_answered(a, r);
	shape_saw(a, r);
	if (r->reused)
		atomic_fetch_add(&a->e->st_reused, 1);
	for (size_t i = 0; i < r->nrcpt && off + i < j->nr; i++) {
		const struct delivery_rcpt_result *rr = &r->rcpt[i];
		struct rcpt_result *res = &j->res[off + i];

		/* A reused connection that broke before MAIL was answered was most likely closed
		 * by the server while idle: not this message's failure. It stays untried and goes
		 * again at once, on a new connection (Postfix does the same). */
		if (r->reused && rr->reply.local && rr->status == DELIVERY_DEFERRED &&
		    (rr->phase == DELIVERY_PHASE_RSET || rr->phase == DELIVERY_PHASE_MAIL))
			continue;
		res->fate = fate_of(rr->status);
		res->code = rr->reply.code;
		strlcpy_s(res->status, rr->reply.status, sizeof(res->status));
		free(res->text);
		res->text = xstrdup(rr->reply.text != NULL ? rr->reply.text : "");
		res->local = rr->reply.local;
		free(res->mx);
		free(res->ip);
		res->mx = r->mx_host != NULL ? xstrdup(r->mx_host) : NULL;
		res->ip = r->mx_addr != NULL ? xstrdup(r->mx_addr) : NULL;
		res->port = r->mx_port;
		res->reused = r->reused;
		res->elapsed_ms = elapsed;
		res->source = a->source >= 0 ? a->cfg->sources[a->source].name : NULL;
		res->source_ip = a->source >= 0 ? a->cfg->sources[a->source].address : NULL;
		res->tls = r->tls.active;
		res->tls_verified = r->tls.active && r->tls.verified;
		strlcpy_s(res->tls_version, r->tls.active ? r->tls.version : "",
		          sizeof(res->tls_version));
		strlcpy_s(res->tls_cipher, r->tls.active ? r->tls.cipher : "",
		          sizeof(res->tls_cipher));
	}
	if (++j->done_txn == j->ntxn)
		job_finish(j); /* leaves the attempt; next() comes right after */
}

/* The source's address cannot be bound (EADDRNOTAVAIL: not on this machine): its pools go
 * on with their other sources, and it is tried again after EGRESS_SOURCE_RETRY_S. Said once
 * when it goes down, not at every retry. */
static void
source_down(struct attempt *a, int err)
{
	struct queue_engine *e = a->e;
	const struct source_conf *src = &a->cfg->sources[a->source];
	json_t *o;

	/* After a reload the engine's sources are another configuration's: say nothing of this
	 * one there (the next connection from it finds out for itself). */
	if (a->cfg != e->cfg ||
	    !egress_source_failed(e->egress, (size_t)a->source, time_now_us())) {
		log_debug("delivery: source \"%s\" (%s) still cannot be bound: %s", src->name,
		          src->address, strerror(err));
		return;
	}
	log_error("delivery: source \"%s\" (%s) is down: cannot bind its address: %s; its pools "
	          "use their other sources, and it is tried again every %ds",
	          src->name, src->address, strerror(err), EGRESS_SOURCE_RETRY_S);
	if (e->log == NULL)
		return;
	o = json_object();
	json_object_set_new(o, "source", json_string(src->name));
	json_object_set_new(o, "source_ip", json_string(src->address));
	json_object_set_new(o, "error", json_string(strerror(err)));
	json_object_set_new(o, "retry_s", json_integer(EGRESS_SOURCE_RETRY_S));
	eventlog_write(e->log, "SourceDown", o);
}

static void
on_closed(void *arg, struct delivery_client *c, const struct delivery_session *s)
{
	struct attempt *a = arg;
	enum queue_conn fate = s->established ? QUEUE_CONN_OK
	                       : s->tried > 0 ? QUEUE_CONN_FAILED
	                                      : QUEUE_CONN_NONE;

	if (s->source_errno != 0 && a->source >= 0) {
		source_down(a, s->source_errno);
		fate = QUEUE_CONN_NONE; /* not the destination's failure */
	} else if (s->established && a->source >= 0 && a->cfg == a->e->cfg &&
	           egress_source_worked(a->e->egress, (size_t)a->source))
		log_info("delivery: source \"%s\" (%s) is up again",
		         a->cfg->sources[a->source].name, a->cfg->sources[a->source].address);
	if (!s->established && s->tried > 0 && s->error != NULL && s->source_errno == 0)
		engine_shape_reply(a, s->error->local ? 0 : s->error->code, s->error->status,
		                   s->error->text);
	if (s->established)
		atomic_fetch_add(&a->e->st_connections_ok, 1);
	else if (s->tried > 0 && s->error != NULL)
		log_debug("delivery: %s: no server reached (%u tried): %d %s %s", a->domain,
		          s->tried, s->error->code, s->error->status, s->error->text);
	delivery_client_free(c);
	a->client = NULL;
	a->inflight = false;
	attempt_over(a, fate);
}

/* Opportunistic TLS: the handshake with this server failed, and the client is sending to it
 * in clear at once; remembered, so that the next connections skip STARTTLS there instead of
 * failing a handshake each time (for delivery.tls_failure_memory). */
static void
on_tls_fallback(void *arg, struct delivery_client *c, const char *host, const char *ip,
                uint16_t port, const char *why)
{
	struct attempt *a = arg;
	struct queue_engine *e = a->e;
	uint64_t secs = e->cfg->delivery.tls_failure_memory_s;
	char memory[32];

	if (e->tls_memory == NULL) {
		log_warn("delivery: %s: TLS handshake with %s[%s]:%u failed (%s): sending in clear",
		         a->domain, host, ip, (unsigned)port, why);
		return;
	}
	tls_memory_add(e->tls_memory, host, ip, port, time_now_us());
	if (secs % 3600 == 0)
		snprintf(memory, sizeof(memory), "%lluh", (unsigned long long)(secs / 3600));
	else if (secs % 60 == 0)
		snprintf(memory, sizeof(memory), "%llum", (unsigned long long)(secs / 60));
	else
		snprintf(memory, sizeof(memory), "%llus", (unsigned long long)secs);
	log_warn("delivery: %s: TLS handshake with %s[%s]:%u failed (%s): sending in clear, and "
	         "without STARTTLS to it for the next %s",
	         a->domain, host, ip, (unsigned)port, why, memory);
}

/* ---- Lifecycle ---- */

const char *
engine_lane_domain(const char *lane)
{
	const char *at = strrchr(lane, '@');

	return at != NULL ? at + 1 : lane;
}

/* Shaping says no connection now: the items go back untried, the lane waits until when, and
 * the slot is given back. Nothing was attempted, so nothing counts against the site. */
static void
attempt_refused(struct attempt *a, struct queue_item **items, size_t n, uint64_t when)
{
	struct queue_engine *e = a->e;
	uint64_t now = time_now_us();

	for (size_t i = 0; i < n; i++)
		queue_item_done(e->q, items[i], QUEUE_UNTRIED, now, NULL);
	queue_hold(e->q, a->dest, when, now);
	queue_release(e->q, a->dest, QUEUE_CONN_NONE, now);
	engine_shape_attempt_free(a);
	free(a->domain);
	config_unref(a->cfg);
	free(a);
	engine_kick(e);
}

struct attempt *
attempt_new(struct queue_engine *e, struct queue_dest *dest, struct queue_item **items, size_t n)
{
	struct attempt *a = xcalloc(1, sizeof(*a));
	uint64_t now = time_now_us(), when = UINT64_MAX;
	enum shape_verdict v = SHAPE_GO;

	a->e = e;
	a->dest = dest;
	a->domain = xstrdup(engine_lane_domain(queue_dest_name(dest)));
	a->tls = engine_tls_policy(e, a->domain);
	a->source = -1;
	a->cfg = config_ref(e->cfg);
	a->pool = config_pool(a->cfg, queue_dest_via(dest));
	if (engine_admin_lane_held(e, dest, now, &when)) {
		/* An operator suspended it (engine_admin.c): no connection until the end. */
		attempt_refused(a, items, n, when);
		return NULL;
	}
	if (a->pool != NULL)
		a->source = engine_shape_pick(a, now, true, &when);
	if (a->pool != NULL && a->source < 0 && when != UINT64_MAX) {
		/* Sources are up, but shaping holds each back (suspended, capped for today, out of
		 * connection tokens): the lane waits for the first of them. */
		attempt_refused(a, items, n, when);
		return NULL;
	}
	if (a->pool == NULL || a->source >= 0)
		v = engine_shape_admit(a, now, &when);
	if (v != SHAPE_GO) {
		log_debug("delivery: %s: no connection now (%s)", a->domain, shape_verdict_name(v));
		attempt_refused(a, items, n, when);
		return NULL;
	}
	a->started_mono = time_mono_us();
	a->next = e->attempts;
	if (e->attempts != NULL)
		e->attempts->prev = a;
	e->attempts = a;
	e->nattempts++;
	atomic_fetch_add(&e->st_open, 1);
	take(a, items, n);
	if (a->pool != NULL && a->source < 0) {
		/* Every source of the pool is down: the mail waits (retried on its schedule); it
		 * never leaves from an address the operator did not name. */
		a->tstate = T_FAILED;
		a->fail_fate = R_DEFERRED;
		a->fail_code = 451;
		strlcpy_s(a->fail_status, "4.4.0", sizeof(a->fail_status));
		a->fail_text = xasprintf("no source of pool \"%s\" is up (their addresses cannot "
		                         "be bound)",
		                         a->pool->name);
		attempt_targets_done(a);
		return NULL; /* may be freed already */
	}
	if (engine_shape_bounce(a, now)) {
		/* An adaptive rule bounces what is queued here (docs/shaping.md). */
		a->tstate = T_FAILED;
		a->fail_fate = R_BOUNCED;
		a->fail_code = 550;
		strlcpy_s(a->fail_status, "5.7.1", sizeof(a->fail_status));
		a->fail_text =
		    xasprintf("bounced without a connection: an adaptive rule bounces the "
		              "mail queued for %s",
		              a->sp.dest);
		attempt_targets_done(a);
		return NULL;
	}
	targets_resolve(a);
	return a;
}

void
attempt_resume(struct attempt *a)
{
	if (a->over || a->inflight)
		return;
	/* Not connected yet (the first message waited), or connected and idle. */
	if (a->client == NULL || delivery_client_idle(a->client))
		attempt_pump(a);
}

/* Not connected yet: ended from the loop, not from inside whatever called attempt_end_soon
 * (which may still use the attempt). */
static void
on_end_timer(evutil_socket_t fd, short what, void *arg)
{
	struct attempt *a = arg;

	(void)fd;
	(void)what;
	if (a->over)
		return;
	if (a->client != NULL) {
		delivery_client_close(a->client);
		return;
	}
	targets_cancel(a);
	attempt_over(a, QUEUE_CONN_NONE);
}

void
attempt_end_soon(struct attempt *a)
{
	if (a->over || a->ending)
		return;
	a->ending = true;
	if (a->client != NULL) {
		delivery_client_close(a->client); /* QUIT after what is in flight; on_closed */
		return;
	}
	if (a->end_timer == NULL)
		a->end_timer = evtimer_new(a->e->base, on_end_timer, a);
	event_active(a->end_timer, EV_TIMEOUT, 1);
}

void
attempt_targets_done(struct attempt *a)
{
	struct job *j, *next;

	if (a->over)
		return;
	if (a->tstate == T_READY) {
		attempt_pump(a);
		return;
	}
	/* No target: every message gets the failure, without a connection (not a site
	 * failure for the queue's window: nothing was reached or not reached). */
	for (j = a->jobs; j != NULL; j = next) {
		next = j->next;
		if (j->state != JOB_LOADING)
			job_decide_all(j, a->fail_fate, a->fail_code, a->fail_status, a->fail_text,
			               true);
	}
	attempt_over(a, QUEUE_CONN_NONE);
}

/* A job has loaded (or failed to): send it, or fail it like the others, or finish it. */
void
attempt_job_loaded(struct attempt *a, struct job *j)
{
	if (a->tstate == T_FAILED) {
		job_decide_all(j, a->fail_fate, a->fail_code, a->fail_status, a->fail_text, true);
		job_finish(j);
		return;
	}
	if (a->over || j->gone || j->ntxn == 0) {
		job_finish(j);
		return;
	}
	attempt_pump(a);
}

void
attempt_job_gone(struct attempt *a, struct job *j)
{
	detach(a, j);
	if (a->over) {
		attempt_maybe_free(a);
		return;
	}
	if (a->client == NULL) {
		/* Not connected yet: the next message loaded may start it; with none left, the
		 * slot is of no use. */
		attempt_pump(a);
		if (a->njobs == 0) {
			targets_cancel(a);
			attempt_over(a, QUEUE_CONN_NONE);
		}
		return;
	}
	/* Outside the client's callbacks (a message that was not there, nothing pending for
	 * this destination): keep the connection fed. Inside them, next() does this. */
	if (!a->inflight && a->client != NULL && delivery_client_idle(a->client)) {
		attempt_refill(a);
		attempt_pump(a);
		if (a->njobs == 0 && !a->inflight)
			a->idle = true;
	}
}

void
attempt_stop(struct attempt *a)
{
	if (a->over)
		return;
	targets_cancel(a);
	if (a->client != NULL)
		delivery_client_close(a->client); /* QUIT after what is in flight; on_closed */
	else
		attempt_over(a, QUEUE_CONN_NONE);
}

void
attempt_abort(struct attempt *a)
{
	if (a->client != NULL) {
		/* No callback after this: what was in flight stays pending in the spool (it may
		 * have been delivered: a duplicate after restart, never a loss). */
		delivery_client_free(a->client);
		a->client = NULL;
		a->inflight = false;
	}
	attempt_over(a, QUEUE_CONN_NONE);
}

void
engine_close_idle(struct queue_engine *e)
{
	struct attempt *a, *next;

	for (a = e->attempts; a != NULL; a = next) {
		next = a->next;
		if (a->idle && !a->over && a->client != NULL) {
			a->idle = false; /* closing: no more work for it (attempt_refill) */
			delivery_client_close(a->client);
		}
	}
}
