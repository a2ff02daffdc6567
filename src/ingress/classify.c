/* classify.c - classification at reception (docs/routing.md): the stream, tenant, campaign
 * and pool of a message, from the configuration's rules (route/), and what follows from them
 * here: the X-Drover-* fields removed, a trusted field naming nothing refused, recipients
 * suppressed for the tenant dropped, the result in the envelope and the Reception record.
 *
 * The header section is judged where it sits, at the start of the body buffer after our
 * Received: field, before the first chunk of it leaves for the spool and before the DKIM
 * signer or the checks see any of it (message.c calls classify_header() at those points).
 * So the X-Drover-* fields are removed from the buffered octets before anything else reads
 * them: never stored, never signed, never sent. While the section is still arriving the
 * buffer is held (up to ROUTE_HEADERS_MAX), not written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "ingress/internal.h"
#include "suppress/suppress.h"

/* While a long header section arrives, look for its end again after this much more: each
 * look copies the section so far. */
#define CLASSIFY_RECHECK (64 * 1024)

/* What a trusted field that names nothing gets: never silently misrouted. */
static void
refuse_unknown(struct transaction *t)
{
	static const struct {
		const char *field, *what;
	} why[] = {
	    [ROUTE_UNKNOWN_STREAM] = {ROUTE_FIELD_STREAM, "names no stream"},
	    [ROUTE_UNKNOWN_POOL] = {ROUTE_FIELD_POOL, "names no pool"},
	    [ROUTE_UNKNOWN_TENANT] = {ROUTE_FIELD_TENANT, "names no tenant"},
	    [ROUTE_BAD_CAMPAIGN] = {ROUTE_FIELD_CAMPAIGN, "is no campaign (1-64 printable ASCII)"},
	};
	enum route_error e = t->route.error < nitems(why) ? t->route.error : ROUTE_UNKNOWN_STREAM;

	snprintf(t->classify_reply, sizeof(t->classify_reply), "550 5.7.1 Error: %s %s \"%s\"",
	         why[e].field, why[e].what, t->route.bad_value);
	t->classify_refusal = t->classify_reply;
}

/* The X-Drover-* fields out of the body buffer: its header section (end octets after our
 * Received: field) is replaced by head[0..kept). Nothing has read those octets yet: the
 * signer and the checks are fed from auth_fed, which is still at header_len. */
static void
replace_header(struct transaction *t, const char *head, size_t end, size_t kept)
{
	struct evbuffer *front = evbuffer_new();

	if (front == NULL)
		fatal("out of memory");
	evbuffer_remove_buffer(t->body, front, t->header_len); /* our Received: field */
	evbuffer_drain(t->body, end);
	evbuffer_add(front, head, kept);
	evbuffer_prepend_buffer(t->body, front);
	evbuffer_free(front);
}

static void
judge(struct session *s, const char *head, size_t len)
{
	struct transaction *t = &s->txn;
	struct route_message m = {
	    .listener = s->listener->name,
	    .auth_user = s->auth_user,
	    .client = (const struct sockaddr *)&s->peer,
	    .sender = t->sender != NULL ? t->sender : "",
	    .nrcpt = t->nrcpt,
	    .headers = head,
	    .headers_len = len,
	    .trusted = session_internal(s),
	};

	route_classify(s->gen->routing, &m, &t->route);
	if (t->route.error != ROUTE_OK)
		refuse_unknown(t);
	log_debug("session %llu: message %s: stream %s, tenant %s, campaign %s, pool %s%s",
	          (unsigned long long)s->id, t->msg != NULL ? spool_message_id(t->msg) : "-",
	          t->route.stream != NULL ? t->route.stream : "default",
	          t->route.tenant != NULL ? t->route.tenant : "-",
	          t->route.campaign[0] != '\0' ? t->route.campaign : "-",
	          t->route.pool != NULL ? t->route.pool : "-",
	          t->route.trusted ? " (X-Drover-* fields trusted)" : "");
}

bool
classify_header(struct session *s, bool final)
{
	struct transaction *t = &s->txn;
	size_t have, n, end, kept;
	bool complete;
	char *head;

	if (t->classified || t->body == NULL || t->msg == NULL)
		return true;
	have = evbuffer_get_length(t->body) - t->header_len;
	n = have < ROUTE_HEADERS_MAX ? have : ROUTE_HEADERS_MAX;
	if (!final && n < ROUTE_HEADERS_MAX && t->classify_seen > 0 &&
	    have < t->classify_seen + CLASSIFY_RECHECK)
		return false;
	head = xmalloc(n + 1);
	if (n > 0) {
		struct evbuffer_ptr pos;

		evbuffer_ptr_set(t->body, &pos, t->header_len, EVBUFFER_PTR_SET);
		evbuffer_copyout_from(t->body, &pos, head, n);
	}
	complete = route_header_complete(head, n, final && n == have, &end);
	if (!complete && n < ROUTE_HEADERS_MAX) {
		t->classify_seen = have; /* held: the section is still arriving */
		free(head);
		return false;
	}
	t->classified = true;
	if (!complete) {
		/* Past the bound without its end: it cannot be classified whole, nor its
		 * X-Drover-* fields all removed. Refused, as Exim's header_maxsize does. */
		snprintf(t->classify_reply, sizeof(t->classify_reply),
		         "552 5.3.4 Error: message header section exceeds %d octets",
		         ROUTE_HEADERS_MAX);
		t->classify_refusal = t->classify_reply;
		free(head);
		return true;
	}
	judge(s, head, end);                         /* the fields are read, */
	kept = route_strip_drover_fields(head, end); /* then removed */
	if (kept != end)
		replace_header(t, head, end, kept);
	free(head);
	return true;
}

/* Recipients suppressed for the tenant: known only now, after RCPT was answered 250, so
 * they are dropped (as suppression.at_reception = drop does) whatever at_reception says,
 * unless it is off. */
static void
drop_suppressed(struct session *s)
{
	struct transaction *t = &s->txn;
	struct suppress *list = s->worker->ingress->suppress;
	size_t kept = 0;

	if (t->route.tenant == NULL || list == NULL ||
	    s->cfg->suppression.at_reception == SUPPRESSION_OFF)
		return;
	for (size_t i = 0; i < t->nrcpt; i++) {
		struct envelope_rcpt *r = &t->rcpt[i];
		struct suppress_entry e;
		int rc = suppress_check(list, t->route.tenant, r->address, &e);
		json_t *f;

		if (rc < 0)
			/* The list is a courtesy to the recipients, never a reason to lose mail. */
			log_warn(
			    "session %llu: suppression list unreadable: <%s> for tenant %s let "
			    "through",
			    (unsigned long long)s->id, r->address, t->route.tenant);
		if (rc != 1) {
			t->rcpt[kept++] = *r;
			continue;
		}
		f = json_object();
		json_object_set_new(f, "session", json_integer((json_int_t)s->id));
		json_object_set_new(f, "client_ip", json_string(s->peer_ip));
		json_object_set_new(f, "sender", json_string(t->sender));
		json_object_set_new(f, "recipient", json_string(r->address));
		json_object_set_new(f, "reason", json_string(suppress_reason_name(e.reason)));
		json_object_set_new(f, "tenant", json_string(t->route.tenant));
		eventlog_write(s->worker->ingress->log, "Suppressed", f);
		free(r->address);
		free(r->orcpt);
		t->ndropped++;
	}
	t->nrcpt = kept;
}

const char *
classify_finish(struct session *s)
{
	/* The refusal outlives the transaction, which is reset before the reply is queued;
	 * one per SMTP thread, used at once. */
	static _Thread_local char reply[sizeof(s->txn.classify_reply)];
	struct transaction *t = &s->txn;

	classify_header(s, true);
	if (t->classify_refusal != NULL) {
		strlcpy_s(reply, t->classify_refusal, sizeof(reply));
		return reply;
	}
	drop_suppressed(s);
	return NULL;
}

/* "default" is the stream of mail no rule classifies: the envelope says it as NULL. */
void
classify_envelope(const struct transaction *t, struct envelope *env)
{
	const struct route_result *r = &t->route;

	if (!t->classified)
		return;
	env->stream =
	    r->stream != NULL && strcmp(r->stream, "default") != 0 ? (char *)r->stream : NULL;
	env->tenant = (char *)r->tenant;
	env->campaign = r->campaign[0] != '\0' ? (char *)r->campaign : NULL;
	env->pool = (char *)r->pool;
}

static json_t *
string_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

void
classify_record(const struct transaction *t, const struct route_rules *routing, json_t *f)
{
	const struct route_result *r = &t->route;
	json_t *rules = json_array();
	int lines[5];
	size_t n = t->classified ? route_result_lines(routing, r, lines, nitems(lines)) : 0;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(rules, json_integer(lines[i]));
	json_object_set_new(
	    f, "stream", json_string(t->classified && r->stream != NULL ? r->stream : "default"));
	json_object_set_new(f, "tenant", string_or_null(t->classified ? r->tenant : NULL));
	json_object_set_new(f, "campaign",
	                    string_or_null(t->classified && r->campaign[0] ? r->campaign : NULL));
	json_object_set_new(f, "pool", string_or_null(t->classified ? r->pool : NULL));
	json_object_set_new(f, "rule", rules);
}
