/* fuzz_feedback_parse - the input is a message as a bounce listener receives it (hostile:
 * anyone can send mail to a bounce domain). Whatever it is, feedback_parse() must stay in
 * its bounds and keep the header's promises about what it returns: counts within limits,
 * every string NUL-terminated inside its array, valid UTF-8 without control characters or
 * surrounding spaces, statuses well-formed, reply codes 200-599. feedback_attribute() then
 * runs over the result as the listener would. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "feedback/feedback.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_string(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	if (n == size || !smtp_utf8_valid(s, n))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			abort();
	if (n > 0 && (s[0] == ' ' || s[n - 1] == ' '))
		abort();
}
#define CHECK(field) check_string((field), sizeof(field))

static void
check_report(const struct feedback_report *r)
{
	if (r->kind > FEEDBACK_PLAIN_BOUNCE || r->nrcpt > FEEDBACK_RCPT_MAX ||
	    r->nrcpt > r->rcpt_total || (r->nrcpt < r->rcpt_total && !(r->cut & FEEDBACK_CUT_RCPT)))
		abort();
	CHECK(r->from);
	CHECK(r->to);
	CHECK(r->subject);
	CHECK(r->message_id);
	CHECK(r->reporting_mta);
	CHECK(r->envelope_id);
	CHECK(r->arrival_date);
	for (size_t i = 0; i < r->nrcpt; i++) {
		const struct feedback_rcpt *e = &r->rcpt[i];

		CHECK(e->address);
		CHECK(e->original);
		CHECK(e->status);
		CHECK(e->diagnostic_type);
		CHECK(e->diagnostic);
		CHECK(e->remote_mta);
		if (e->action > FEEDBACK_ACTION_EXPANDED ||
		    (e->reply_code != 0 && (e->reply_code < 200 || e->reply_code > 599)) ||
		    (e->status[0] != '\0' && !smtp_status_valid(e->status, strlen(e->status))))
			abort();
	}
	if (r->arf.type > FEEDBACK_TYPE_AUTH_FAILURE)
		abort();
	CHECK(r->arf.feedback_type);
	CHECK(r->arf.user_agent);
	CHECK(r->arf.version);
	CHECK(r->arf.original_mail_from);
	CHECK(r->arf.source_ip);
	CHECK(r->arf.reported_domain);
	CHECK(r->original.message_id);
	CHECK(r->original.queue_id);
	CHECK(r->original.return_path);
	CHECK(r->original.from);
	CHECK(r->original.to);
	CHECK(r->original.subject);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct feedback_verp_keys keys;
	struct feedback_report *report = malloc(sizeof(*report));
	char err[128];

	if (report == NULL ||
	    feedback_verp_keys_init(&keys, NULL, "fuzz-secret-current-0001",
	                            "fuzz-secret-previous-01", err, sizeof(err)) != 0)
		abort();
	if (feedback_parse(data, size, report) != report->kind)
		abort();
	check_report(report);
	feedback_attribute(&keys, NULL, report);
	if (report->verp_status > FEEDBACK_VERP_MALFORMED ||
	    (report->verp_rcpt >= 0 && ((size_t)report->verp_rcpt >= report->nrcpt ||
	                                !report->rcpt[report->verp_rcpt].verp_match)))
		abort();
	check_report(report);
	free(report);
	return 0;
}
