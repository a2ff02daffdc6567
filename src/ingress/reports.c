/* reports.c - the bounce listener (listener role "bounce"; docs/feedback.md): the MX of the
 * bounce domain, where asynchronous bounces and feedback-loop complaints come back.
 *
 * At RCPT only the bounce domain is taken. A VERP address (prefix+TOKEN) must verify: a
 * token no secret verifies is refused "550 5.7.1" as forged, a malformed one "550 5.1.1";
 * every other local part there (fbl@, abuse@, postmaster@, where providers send reports) is
 * a report mailbox. Nothing is relayed, and no AUTH is needed.
 *
 * The message is never queued: it is kept in memory, bounded (FEEDBACK_INPUT_MAX: what the
 * parser reads), and at the end of data feedback_parse() says what it is and
 * feedback_attribute() ties it to one of our messages through a VERP that verifies:
 *
 *	dsn, plain-bounce   an "AsyncBounce" record per failed recipient, with the category and
 *	                    decision of the bounce rules (the engine's, reloaded with them); a
 *	                    decision to suppress puts the recipient on the suppression list of
 *	                    the token's tenant ("AsyncNotice" for delayed / delivered entries)
 *	arf                 a "Feedback" record; abuse, fraud and virus complaints suppress the
 *	                    recipient for the tenant
 *	not-a-report        a "NotAReport" record
 *
 * Only an address the token vouches for is suppressed: the entry whose address matches the
 * token's recipient tag. A report that verifies nothing, or whose token is forged, is logged
 * ("attributed": false) and accepted, and suppresses nothing: anyone can send a report
 * naming any address. The 250 goes out only once the suppression list has committed what
 * the report added (suppress_add_async_many, one transaction for all), so a report accepted
 * is never lost; if the list cannot store them the client gets 451 and sends it again.
 *
 * Parsing runs on the session's loop: it is bounded (linear in at most 4 MiB: about 10 ms
 * for the worst, a few tens of microseconds for a real report) and allocates one report
 * struct (~62 KB) per message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "classify/classify.h"
#include "feedback/feedback.h"
#include "ingress/internal.h"
#include "suppress/suppress.h"

struct reports {
	struct feedback_verp_keys keys;
	char domain[SMTP_DOMAIN_MAX + 1];
	_Atomic(struct classify_slot *) rules; /* set before ingress_open(); NULL: unclassified */
	_Atomic uint64_t bounces[CLASSIFY_CATEGORY_COUNT];
	_Atomic uint64_t complaints, forged, unattributed;
};

int
reports_init(struct ingress *in, char *err, size_t errlen)
{
	const struct config *cfg = in->cfg;
	struct reports *r;
	bool wanted = false;
	char why[256];

	for (size_t i = 0; i < cfg->nlisteners; i++)
		wanted |= cfg->listeners[i].role == ROLE_BOUNCE;
	if (!wanted)
		return 0;
	if (cfg->verp.domain == NULL) { /* conf refuses this: defensive */
		snprintf(err, errlen, "bounce listener: no verp.domain");
		return -1;
	}
	r = xcalloc(1, sizeof(*r));
	if (feedback_verp_keys_init(&r->keys, cfg->verp.prefix, cfg->verp.secret,
	                            cfg->verp.previous_secret, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "bounce listener: verp: %s", why);
		free(r);
		return -1;
	}
	strlcpy_s(r->domain, cfg->verp.domain, sizeof(r->domain));
	in->reports = r;
	log_info("bounce listener: reports for %s (%s+TOKEN, %u secret%s)", r->domain,
	         r->keys.prefix, r->keys.nsecrets, r->keys.nsecrets == 1 ? "" : "s");
	return 0;
}

void
reports_free(struct ingress *in)
{
	if (in->reports == NULL)
		return;
	feedback_verp_keys_wipe(&in->reports->keys);
	free(in->reports);
	in->reports = NULL;
}

void
ingress_set_bounce_rules(struct ingress *in, struct classify_slot *slot)
{
	if (in->reports != NULL)
		atomic_store(&in->reports->rules, slot);
}

void
ingress_report_stats(struct ingress *in, struct ingress_report_stats *st)
{
	struct reports *r = in->reports;

	memset(st, 0, sizeof(*st));
	if (r == NULL)
		return;
	for (unsigned c = 0; c < CLASSIFY_CATEGORY_COUNT; c++)
		st->bounces[c] = atomic_load(&r->bounces[c]);
	st->complaints = atomic_load(&r->complaints);
	st->forged = atomic_load(&r->forged);
	st->unattributed = atomic_load(&r->unattributed);
}

/* ---- RCPT ---- */

static bool
refuse_rcpt(struct session *s, const char *address, const char *reply)
{
	session_reject_event(s, "RCPT", address, reply);
	/* Counted towards max_errors: guessing tokens costs a connection every few tries. */
	session_error(s, "%s", reply);
	return false;
}

bool
reports_rcpt(struct session *s, const struct smtp_path *path)
{
	struct reports *r = s->worker->ingress->reports;
	char reply[512]; /* RFC 5321 §4.5.3.1.5: a reply line; long addresses are cut */
	struct feedback_verp v;

	if (r == NULL || strcasecmp(path->domain, r->domain) != 0) {
		snprintf(reply, sizeof(reply),
		         "550 5.7.1 <%.200s>: relaying denied: this server takes mail for %.200s "
		         "only",
		         path->mailbox, r != NULL ? r->domain : "no domain");
		return refuse_rcpt(s, path->mailbox, reply);
	}
	switch (feedback_verp_decode(&r->keys, path->mailbox, &v)) {
	case FEEDBACK_VERP_FORGED:
		atomic_fetch_add(&r->forged, 1);
		snprintf(reply, sizeof(reply),
		         "550 5.7.1 <%.200s>: forged bounce address: its token does not verify",
		         path->mailbox);
		return refuse_rcpt(s, path->mailbox, reply);
	case FEEDBACK_VERP_MALFORMED:
		snprintf(reply, sizeof(reply),
		         "550 5.1.1 <%.200s>: no such bounce address: malformed token",
		         path->mailbox);
		return refuse_rcpt(s, path->mailbox, reply);
	case FEEDBACK_VERP_OK:
	case FEEDBACK_VERP_NOT_OURS: /* a report mailbox: fbl@, abuse@, postmaster@ */
		break;
	}
	return true;
}

/* ---- DATA ---- */

void
reports_begin(struct session *s, bool dot_mode)
{
	struct transaction *t = &s->txn;
	const struct smtp_limits *lim = &s->cfg->smtp;

	/* Every BDAT chunk begins the message while no spool message exists (message.c): only
	 * the first one does anything here. */
	if (t->report != NULL)
		return;
	t->body = evbuffer_new();
	t->report = evbuffer_new();
	if (t->body == NULL || t->report == NULL)
		fatal("bounce listener: out of memory");
	/* 8-bit text is allowed whatever BODY says: a bounce refused for that would be lost
	 * (its sender cannot be told), and the parser takes any octets. */
	body_scanner_init(&t->scan, dot_mode, true, lim->data_line_max, lim->max_message_size);
}

void
reports_keep(struct session *s)
{
	struct transaction *t = &s->txn;
	size_t have = evbuffer_get_length(t->report), len = evbuffer_get_length(t->body);

	/* What the parser would not read (the rest of a large returned original) is not
	 * kept: a session costs at most FEEDBACK_INPUT_MAX of memory. */
	if (have < FEEDBACK_INPUT_MAX && len > 0)
		evbuffer_remove_buffer(t->body, t->report,
		                       len < FEEDBACK_INPUT_MAX - have ? len
		                                                       : FEEDBACK_INPUT_MAX - have);
	evbuffer_drain(t->body, evbuffer_get_length(t->body));
}

/* ---- The end of data: read, log, suppress ---- */

/* One report in progress: its records wait for the suppression list's answer. */
struct report_job {
	struct session *s;
	struct eventlog *log;
	json_t *records[FEEDBACK_RCPT_MAX + 1];
	const char *types[FEEDBACK_RCPT_MAX + 1];
	int request[FEEDBACK_RCPT_MAX + 1]; /* index into recs of the record's entry, -1 */
	size_t nrecords;
	struct suppress_record recs[FEEDBACK_RCPT_MAX + 1];
	char *owned[2 * (FEEDBACK_RCPT_MAX + 1)]; /* strings recs point to */
	enum suppress_status answers[FEEDBACK_RCPT_MAX + 1];
	size_t nrecs, nowned, answered;
	bool failed;
	enum suppress_status failure; /* the first answer other than SUPPRESS_OK */
	char tenant[FEEDBACK_TENANT_MAX + 1];
};

/* The tenant a verified token names: *tenant (NULL for none), 0; or -1 when no tenant
 * section matches its tag (removed since, or the tags of two names collide). */
static int
token_tenant(const struct session *s, const struct feedback_report *rep, const char **tenant)
{
	const struct reports *r = s->worker->ingress->reports;
	const struct config *cfg = s->cfg;
	int found = 0;

	*tenant = NULL;
	if (feedback_verp_tenant_matches(&r->keys, &rep->verp, NULL))
		found++;
	for (size_t i = 0; i < cfg->ntenants; i++)
		if (feedback_verp_tenant_matches(&r->keys, &rep->verp, cfg->tenants[i].name)) {
			*tenant = cfg->tenants[i].name;
			found++;
		}
	return found == 1 ? 0 : -1;
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL && s[0] != '\0' ? json_string(s) : json_null();
}

/* What every record of one report says about it and where it came from. */
static json_t *
record_new(const struct session *s, const struct feedback_report *rep, bool attributed,
           const char *tenant, bool tenant_unknown)
{
	json_t *o = json_object();

	json_object_set_new(o, "session", json_integer((json_int_t)s->id));
	json_object_set_new(o, "client_ip", json_string(s->peer_ip));
	json_object_set_new(o, "kind", json_string(feedback_kind_name(rep->kind)));
	json_object_set_new(o, "attributed", json_boolean(attributed));
	json_object_set_new(o, "verp_status",
	                    json_string(feedback_verp_status_name(rep->verp_status)));
	json_object_set_new(o, "verp_source",
	                    str_or_null(feedback_verp_source_name(rep->verp_source)));
	json_object_set_new(o, "id", attributed ? json_string(rep->verp.queue_id) : json_null());
	json_object_set_new(o, "rcpt_index",
	                    attributed ? json_integer(rep->verp.rcpt) : json_null());
	json_object_set_new(o, "tenant", str_or_null(tenant));
	if (tenant_unknown)
		json_object_set_new(o, "tenant_unknown", json_true());
	json_object_set_new(o, "message_id", str_or_null(rep->original.message_id));
	json_object_set_new(o, "reporting_mta", str_or_null(rep->reporting_mta));
	return o;
}

static void
job_add(struct report_job *job, const char *type, json_t *o)
{
	job->types[job->nrecords] = type;
	job->request[job->nrecords] = -1;
	job->records[job->nrecords++] = o;
}

/* A suppression for the record just added. */
static void
job_suppress(struct report_job *job, const char *address, enum suppress_reason reason, char *source)
{
	struct suppress_record *rec = &job->recs[job->nrecs];
	char *copy = xstrdup(address); /* the report it points into is freed before the call */

	job->owned[job->nowned++] = source;
	job->owned[job->nowned++] = copy;
	*rec = (struct suppress_record){
	    .tenant = job->tenant,
	    .address = copy,
	    .reason = reason,
	    .source = source,
	};
	job->request[job->nrecords - 1] = (int)job->nrecs++;
}

/* The address of an entry that the token's recipient tag vouches for: its Final-Recipient
 * (or Original-Rcpt-To), else its Original-Recipient; NULL if neither matches (a forwarder
 * may have rewritten one of them). */
static const char *
vouched(const struct reports *r, const struct feedback_report *rep, const struct feedback_rcpt *e)
{
	if (feedback_verp_rcpt_matches(&r->keys, &rep->verp, e->address))
		return e->address;
	if (feedback_verp_rcpt_matches(&r->keys, &rep->verp, e->original))
		return e->original;
	return NULL;
}

/* The code whose class decides (classify_decide()): the reply's, else the status's class
 * (a DSN may carry Status: 5.1.1 without a Diagnostic-Code). */
static int
decide_code(const struct feedback_rcpt *e)
{
	if (e->reply_code != 0)
		return e->reply_code;
	return e->status[0] == '5' ? 550 : e->status[0] == '4' ? 450 : 0;
}

/* The enhanced status to classify with: the remote server's own, from its reply in the
 * diagnostic ("550 5.2.1 The account ... is disabled"), when the DSN's Status is only a class
 * default ("5.0.0", as Exim writes); else the DSN's. The rules are written against what
 * servers say (classify.h). */
static void
classify_status(const struct feedback_rcpt *e, char out[SMTP_STATUS_MAX + 1])
{
	const char *d = e->diagnostic;
	size_t n;

	strlcpy_s(out, e->status, SMTP_STATUS_MAX + 1);
	if (strlen(e->status) != 5 || strcmp(e->status + 1, ".0.0") != 0 || e->reply_code == 0)
		return;
	/* "NNN" then " " or "-", then the status up to a space */
	if (strlen(d) < 5 || d[0] != e->status[0] || (d[3] != ' ' && d[3] != '-'))
		return;
	d += 4;
	n = strcspn(d, " ");
	if (n <= SMTP_STATUS_MAX && smtp_status_valid(d, n) && d[0] == e->status[0]) {
		memcpy(out, d, n);
		out[n] = '\0';
	}
}

static void
bounce_records(struct session *s, struct report_job *job, const struct feedback_report *rep,
               bool attributed, const char *tenant, bool tenant_unknown)
{
	struct reports *r = s->worker->ingress->reports;
	struct classify_slot *slot = atomic_load(&r->rules);
	struct classify_table *t = slot != NULL ? classify_slot_get(slot) : NULL;
	struct feedback_rcpt none = {.action = FEEDBACK_ACTION_NONE};
	size_t n = rep->nrcpt > 0 ? rep->nrcpt : 1;

	for (size_t i = 0; i < n; i++) {
		const struct feedback_rcpt *e = rep->nrcpt > 0 ? &rep->rcpt[i] : &none;
		bool failed =
		    e->action == FEEDBACK_ACTION_FAILED || e->action == FEEDBACK_ACTION_NONE;
		const char *vouch = attributed && e->verp_match ? vouched(r, rep, e) : NULL;
		const char *addr = vouch != NULL           ? vouch
		                   : e->address[0] != '\0' ? e->address
		                                           : e->original;
		json_t *o = record_new(s, rep, attributed, tenant, tenant_unknown);

		json_object_set_new(o, "recipient", str_or_null(addr));
		json_object_set_new(o, "recipient_verified", json_boolean(vouch != NULL));
		json_object_set_new(o, "action", str_or_null(feedback_action_name(e->action)));
		json_object_set_new(o, "status", str_or_null(e->status));
		json_object_set_new(o, "reply_code",
		                    e->reply_code != 0 ? json_integer(e->reply_code) : json_null());
		json_object_set_new(o, "diagnostic", str_or_null(e->diagnostic));
		json_object_set_new(o, "remote_mta", str_or_null(e->remote_mta));
		if (!failed) {
			/* A delay warning or a success notice: nothing to classify or suppress. */
			job_add(job, "AsyncNotice", o);
			continue;
		}
		{
			const char *provider = NULL, *at = strrchr(addr, '@');
			struct classify_result cr;
			enum classify_action action = CLASSIFY_TRANSIENT;
			char status[SMTP_STATUS_MAX + 1];
			unsigned dline = 0;

			if (t != NULL && e->remote_mta[0] != '\0')
				provider = classify_provider_of(t, e->remote_mta);
			if (t != NULL && provider == NULL && at != NULL)
				provider = classify_provider_of(t, at + 1);
			classify_status(e, status);
			classify_reply(t, provider, e->reply_code, status, e->diagnostic, &cr);
			if (t != NULL)
				action = classify_decide(t, provider, cr.category, decide_code(e),
				                         &dline);
			atomic_fetch_add(&r->bounces[cr.category], 1);
			json_object_set_new(o, "category",
			                    json_string(classify_category_name(cr.category)));
			json_object_set_new(o, "decision",
			                    t != NULL ? json_string(classify_action_name(action))
			                              : json_null());
			json_object_set_new(o, "rule_line",
			                    cr.line != 0 ? json_integer(cr.line) : json_null());
			job_add(job, "AsyncBounce", o);
			/* Only the address the token vouches for, only for a tenant it names. */
			if (vouch != NULL && !tenant_unknown && action == CLASSIFY_SUPPRESS)
				job_suppress(job, vouch, SUPPRESS_HARD_BOUNCE,
				             xasprintf("async bounce: %s%s%s", e->status,
				                       e->status[0] != '\0' ? " " : "",
				                       e->diagnostic[0] != '\0'
				                           ? e->diagnostic
				                           : "(no diagnostic)"));
		}
	}
	classify_unref(t);
}

static void
feedback_record(struct session *s, struct report_job *job, const struct feedback_report *rep,
                bool attributed, const char *tenant, bool tenant_unknown)
{
	const struct feedback_arf *arf = &rep->arf;
	const struct feedback_rcpt *e = attributed && rep->verp_rcpt >= 0
	                                    ? &rep->rcpt[rep->verp_rcpt]
	                                : rep->nrcpt > 0 ? &rep->rcpt[0]
	                                                 : NULL;
	const struct reports *r = s->worker->ingress->reports;
	const char *vouch = attributed && rep->verp_rcpt >= 0 ? vouched(r, rep, e) : NULL;
	bool verified = vouch != NULL;
	const char *addr = vouch != NULL           ? vouch
	                   : e == NULL             ? NULL
	                   : e->address[0] != '\0' ? e->address
	                                           : e->original;
	json_t *o = record_new(s, rep, attributed, tenant, tenant_unknown);

	atomic_fetch_add(&s->worker->ingress->reports->complaints, 1);
	json_object_set_new(o, "feedback_type",
	                    json_string(arf->type == FEEDBACK_TYPE_UNKNOWN && arf->feedback_type[0]
	                                    ? arf->feedback_type
	                                    : feedback_type_name(arf->type)));
	json_object_set_new(o, "recipient", str_or_null(addr));
	json_object_set_new(o, "recipient_verified", json_boolean(verified));
	json_object_set_new(o, "user_agent", str_or_null(arf->user_agent));
	json_object_set_new(o, "source_ip", str_or_null(arf->source_ip));
	json_object_set_new(o, "reported_domain", str_or_null(arf->reported_domain));
	json_object_set_new(o, "original_mail_from", str_or_null(arf->original_mail_from));
	json_object_set_new(o, "arrival_date", str_or_null(rep->arrival_date));
	json_object_set_new(o, "incidents",
	                    arf->incidents != 0 ? json_integer(arf->incidents) : json_null());
	job_add(job, "Feedback", o);
	/* A complaint stops mail to the complainer; not-spam, auth-failure and unknown types
	 * are not complaints about receiving mail. */
	if (verified && !tenant_unknown && addr != NULL &&
	    (arf->type == FEEDBACK_TYPE_ABUSE || arf->type == FEEDBACK_TYPE_FRAUD ||
	     arf->type == FEEDBACK_TYPE_VIRUS))
		job_suppress(job, addr, SUPPRESS_COMPLAINT,
		             xasprintf("complaint (%s)%s%s", feedback_type_name(arf->type),
		                       arf->user_agent[0] != '\0' ? " from " : "",
		                       arf->user_agent));
}

/* Writes the records, each with "suppressed", and frees the job. */
static void
job_log(struct report_job *job, const enum suppress_status *answers)
{
	for (size_t i = 0; i < job->nrecords; i++) {
		int q = job->request[i];

		json_object_set_new(
		    job->records[i], "suppressed",
		    json_boolean(q >= 0 && answers != NULL && answers[q] == SUPPRESS_OK));
		eventlog_write(job->log, job->types[i], job->records[i]);
		job->records[i] = NULL;
	}
}

static void
job_free(struct report_job *job)
{
	for (size_t i = 0; i < job->nrecords; i++)
		if (job->records[i] != NULL)
			json_decref(job->records[i]);
	for (size_t i = 0; i < job->nowned; i++)
		free(job->owned[i]);
	free(job);
}

/* The session hears how it went; input is read again. */
static void
report_reply(struct session *s, const char *reply)
{
	transaction_reset(s);
	s->state = S_READY;
	session_reply(s, "%s", reply);
}

/* One answer per suppression, in request order, on this worker's loop; the last one ends the
 * report. */
static void
on_suppressed(void *arg, enum suppress_status st, uint64_t n)
{
	struct report_job *job = arg;
	struct session *s = job->s;
	struct worker *w = s->worker;

	job->answers[job->answered++] = st;
	if (st != SUPPRESS_OK && !job->failed) {
		job->failed = true;
		job->failure = st;
	}
	if (job->answered < job->nrecs)
		return;
	if (job->failed)
		/* Nothing is logged: the report comes again, and is logged then. */
		log_error("session %llu: bounce listener: the suppression list could not store "
		          "what a report asked (%s): 451 sent",
		          (unsigned long long)s->id, suppress_status_str(job->failure));
	else
		job_log(job, job->answers);
	transaction_reset(s);
	if (!s->freed) {
		s->state = S_READY;
		session_reply(s, "%s",
		              job->failed ? "451 4.3.0 Error: suppression list write error, try "
		                            "again later"
		                          : "250 2.0.0 Ok: report received");
		if (w->stopping)
			session_shutdown(s);
		else
			session_resume(s);
	}
	job_free(job);
	session_unref(s);
	w->commits_pending--;
	worker_check_exit(w);
}

void
reports_finish(struct session *s)
{
	struct transaction *t = &s->txn;
	struct reports *r = s->worker->ingress->reports;
	struct suppress *list = s->worker->ingress->suppress;
	struct feedback_report *rep = xmalloc(sizeof(*rep));
	struct report_job *job = xcalloc(1, sizeof(*job));
	const char *rcpt_to = NULL, *tenant = NULL;
	bool attributed, tenant_unknown = false;
	size_t len;
	const void *data;

	reports_keep(s);
	len = evbuffer_get_length(t->report);
	data = evbuffer_pullup(t->report, -1);
	feedback_parse(data != NULL ? data : "", data != NULL ? len : 0, rep);
	/* The envelope recipient a report was sent to is the first place to look: the
	 * first one that is a VERP (each verified at RCPT). */
	for (size_t i = 0; i < t->nrcpt && rcpt_to == NULL; i++) {
		struct feedback_verp v;

		if (feedback_verp_decode(&r->keys, t->rcpt[i].address, &v) == FEEDBACK_VERP_OK)
			rcpt_to = t->rcpt[i].address;
	}
	attributed = feedback_attribute(&r->keys, rcpt_to, rep) == FEEDBACK_VERP_OK;
	if (attributed && token_tenant(s, rep, &tenant) < 0) {
		tenant_unknown = true;
		log_warn("session %llu: bounce listener: message %s: the token's tenant is none of "
		         "the configured tenants (removed since?): nothing suppressed",
		         (unsigned long long)s->id, rep->verp.queue_id);
	}
	if (!attributed)
		atomic_fetch_add(&r->unattributed, 1);
	job->s = s;
	job->log = s->worker->ingress->log;
	strlcpy_s(job->tenant, tenant != NULL ? tenant : "", sizeof(job->tenant));

	switch (rep->kind) {
	case FEEDBACK_DSN:
	case FEEDBACK_PLAIN_BOUNCE:
		bounce_records(s, job, rep, attributed, tenant, tenant_unknown);
		break;
	case FEEDBACK_ARF:
		feedback_record(s, job, rep, attributed, tenant, tenant_unknown);
		break;
	case FEEDBACK_NOT_REPORT: {
		json_t *o = record_new(s, rep, attributed, tenant, tenant_unknown);

		json_object_set_new(o, "from", str_or_null(rep->from));
		json_object_set_new(o, "subject", str_or_null(rep->subject));
		job_add(job, "NotAReport", o);
		break;
	}
	}
	free(rep);

	if (job->nrecs == 0 || list == NULL) {
		job_log(job, NULL);
		job_free(job);
		report_reply(s, "250 2.0.0 Ok: report received");
		return;
	}
	/* The 250 waits for the list's commit, as a message's waits for the spool's. */
	s->state = S_COMMIT;
	session_ref(s);
	s->worker->commits_pending++;
	{
		void *args[FEEDBACK_RCPT_MAX + 1];

		for (size_t i = 0; i < job->nrecs; i++)
			args[i] = job;
		suppress_add_async_many(list, job->recs, job->nrecs, s->worker->mailbox,
		                        on_suppressed, args);
	}
}
