/* Reading bounces and complaints: every sample of tests/data/feedback/ and what it must
 * yield (kind, recipient, action, status, reply, the original's ids, the VERP it is tied
 * to), the fields of each kind in detail, the bounds (10,000 recipients, 4 MiB, nesting),
 * and every truncation of every sample read safely.
 *
 * The samples were written for the project: their VERP addresses were made with the
 * secrets below (one with the previous secret), their queue ids are 0190a1b2c3d4e5f6 and
 * the sample's number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "feedback/feedback.h"
#include "smtp/smtp.h"

#ifndef DROVER_SOURCE_DIR
#error "DROVER_SOURCE_DIR (the repository) must be defined: the samples are read from it"
#endif
#define SAMPLES DROVER_SOURCE_DIR "/tests/data/feedback/"

#define CURRENT  "feedback-test-secret-current-1"
#define PREVIOUS "feedback-test-secret-previous-0"
#define QID(n)   "0190a1b2c3d4e5f6000000" n

static struct feedback_verp_keys keys;

static char *
slurp(const char *name, size_t *len)
{
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s%s.eml", SAMPLES, name);
	f = fopen(path, "rb");
	if (f == NULL)
		fail_msg("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

/* What the header promises of every string: NUL within its array, valid UTF-8, no control
 * characters, no leading or trailing space. */
static void
check_string(const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	assert_true(n < size);
	assert_true(smtp_utf8_valid(s, n));
	for (size_t i = 0; i < n; i++)
		assert_true((unsigned char)s[i] >= 0x20 && s[i] != 0x7f);
	if (n > 0) {
		assert_true(s[0] != ' ');
		assert_true(s[n - 1] != ' ');
	}
}
#define CHECK(field) check_string((field), sizeof(field))

static void
check_report(const struct feedback_report *r)
{
	assert_true(r->kind <= FEEDBACK_PLAIN_BOUNCE);
	assert_true(r->nrcpt <= FEEDBACK_RCPT_MAX && r->nrcpt <= r->rcpt_total);
	assert_true(r->nrcpt == r->rcpt_total || (r->cut & FEEDBACK_CUT_RCPT));
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
		assert_true(e->action <= FEEDBACK_ACTION_EXPANDED);
		assert_true(e->reply_code == 0 || (e->reply_code >= 200 && e->reply_code <= 599));
		if (e->status[0] != '\0')
			assert_true(smtp_status_valid(e->status, strlen(e->status)));
	}
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

static struct feedback_report *
parse_sample(const char *name, const char *rcpt_to)
{
	struct feedback_report *r = malloc(sizeof(*r));
	size_t len;
	char *data = slurp(name, &len);

	assert_non_null(r);
	feedback_parse(data, len, r);
	free(data);
	check_report(r);
	feedback_attribute(&keys, rcpt_to, r);
	return r;
}

/* ---- the corpus: one line a sample ---- */

struct expect {
	const char *name;
	enum feedback_kind kind;
	size_t nrcpt, total;
	const char *address; /* rcpt[0] */
	enum feedback_action action;
	const char *status;
	int code;
	const char *diagnostic; /* rcpt[0].diagnostic starts with it */
	const char *message_id; /* the original's */
	const char *queue_id;   /* ours, from the original's Received */
	enum feedback_verp_status verp;
	uint32_t verp_index;
	int verp_rcpt;
	unsigned cut;
};

#define F  FEEDBACK_ACTION_FAILED
#define D  FEEDBACK_ACTION_DELAYED
#define N  FEEDBACK_ACTION_NONE
#define OK FEEDBACK_VERP_OK

static const struct expect corpus[] = {
    /* RFC 3464 DSNs */
    {"postfix-user-unknown", FEEDBACK_DSN, 1, 1, "bob@example.org", F, "5.1.1", 0,
     "user unknown; recipient address rejected: mailbox bob does not exist",
     "<order-10442.1741000000@shop.example.com>", QID("01"), OK, 0, 0, 0},
    {"postfix-delayed-mailbox-full", FEEDBACK_DSN, 1, 1, "carol@example.net", D, "4.2.2", 452,
     "452 4.2.2 <carol@example.net>: Mailbox full", "<nl-2025-03.carol.77@news.shop.example.com>",
     QID("02"), OK, 3, 0, 0},
    {"postfix-two-recipients", FEEDBACK_DSN, 2, 2, "dave@example.org", F, "5.1.1", 550,
     "550 5.1.1 <dave@example.org>: Recipient address rejected: User unknown in local "
     "recipient table",
     "<invite-551@shop.example.com>", QID("03"), OK, 1, 0, 0},
    {"exim-failed", FEEDBACK_DSN, 1, 1, "frank@mail.example.net", F, "5.0.0", 550,
     "550 5.2.1 The email account that you tried to reach is disabled.",
     "<order-10443.1741258000@shop.example.com>", QID("04"), OK, 0, 0, 0},
    {"exim-delayed", FEEDBACK_DSN, 1, 1, "grace@slow.example.org", D, "4.0.0", 451,
     "451 4.7.1 Greylisting in action", "<weekly-88120@shop.example.com>", QID("05"), OK, 2, 0, 0},
    {"exchange-2016-ndr", FEEDBACK_DSN, 1, 1, "heidi@corp.example.org", F, "5.1.1", 550,
     "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", "<pw-reset-88231@shop.example.com>",
     QID("06"), OK, 0, 0, 0},
    {"office365-recipient-not-found", FEEDBACK_DSN, 1, 1, "ivan@contoso-like.example", F, "5.1.10",
     550, "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient",
     "<inv-3391@billing.shop.example.com>", QID("07"), OK, 0, 0, 0},
    {"office365-blocked-base64-status", FEEDBACK_DSN, 1, 1, "judy@fabrikam-like.example", F,
     "5.7.708", 550, "550 5.7.708 Service unavailable. Access denied, traffic not accepted",
     "<sale-2025-spring.j5@news.shop.example.com>", QID("08"), OK, 5, 0, 0},
    {"gmail-no-such-user", FEEDBACK_DSN, 1, 1, "kim.nosuchbox@gmail-like.example", F, "5.1.1", 550,
     "550 5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos or unnecessary spaces.",
     "<verify-7731@shop.example.com>", QID("09"), OK, 0, 0, 0},
    {"gmail-delayed", FEEDBACK_DSN, 1, 1, "leo@slowbox.example", D, "4.4.1", 0,
     "The recipient server did not accept our requests to connect.",
     "<digest-556@shop.example.com>", QID("0a"), OK, 0, 0, 0},
    {"yahoo-dsn", FEEDBACK_DSN, 1, 1, "mona1999@yahoo-like.example", F, "5.0.0", 554,
     "554 delivery error: dd This user doesn't have", "<welcome-12@shop.example.com>", QID("0b"),
     OK, 0, 0, 0},
    {"sendmail-dsn", FEEDBACK_DSN, 1, 1, "nick@oldhost.example.edu", F, "5.1.1", 550,
     "550 5.1.1 <nick@oldhost.example.edu>... User unknown", "<alumni-news-4@shop.example.com>",
     QID("0c"), OK, 0, 0, 0},
    {"dsn-global-utf8", FEEDBACK_DSN, 1, 1, "δοκιμή@παράδειγμα.example", F, "5.1.1", 550,
     "550 5.1.1 Mailbox unavailable", "<utf8-1@shop.example.com>", QID("0d"), OK, 0, 0, 0},
    {"dsn-envid-orcpt", FEEDBACK_DSN, 1, 1, "olga@example.net", F, "5.1.1", 550,
     "550 5.1.1 unknown or illegal alias: olga@example.net", "", "", OK, 7, 0, 0},
    {"dsn-lf-line-ends", FEEDBACK_DSN, 1, 1, "paul@example.org", F, "5.1.1", 550,
     "550 5.1.1 <paul@example.org>: Recipient address rejected: User unknown", "", "", OK, 0, 0, 0},
    {"dsn-mislabelled-status-part", FEEDBACK_DSN, 1, 1, "quinn@legacy.example.org", F, "5.2.2", 552,
     "552 5.2.2 Mailbox quota exceeded", "<quota-1@shop.example.com>", QID("10"), OK, 0, 0, 0},
    {"dsn-success-delivered", FEEDBACK_DSN, 1, 1, "rita@example.net", FEEDBACK_ACTION_DELIVERED,
     "2.0.0", 0, "delivery via local: delivered to mailbox", "", "", OK, 0, 0, 0},
    {"dsn-100-recipients", FEEDBACK_DSN, FEEDBACK_RCPT_MAX, 100, "r0@list.example.org", F, "5.1.1",
     0, "", "", "", OK, 0, 0, FEEDBACK_CUT_RCPT},

    /* plain-text bounces */
    {"qmail-bounce", FEEDBACK_PLAIN_BOUNCE, 1, 1, "sam@qmail-host.example", F, "5.1.1", 550,
     "550 5.1.1 <sam@qmail-host.example>... User unknown", "<cart-991@shop.example.com>", QID("12"),
     OK, 0, 0, 0},
    {"qmail-local-two", FEEDBACK_PLAIN_BOUNCE, 2, 2, "tina@qmail-host.example", F, "5.1.1", 0,
     "Sorry, no mailbox here by that name. (#5.1.1)", "<loop-3@shop.example.com>", QID("13"), OK, 0,
     0, 0},
    {"exim-plain-failed", FEEDBACK_PLAIN_BOUNCE, 1, 1, "uma@exim-host.example", F, "5.1.1", 550,
     "550 5.1.1 <uma@exim-host.example>: Recipient address rejected: User unknown in virtual "
     "mailbox table",
     "<ticket-5521@support.shop.example.com>", QID("14"), OK, 0, 0, 0},
    {"exim-plain-delayed", FEEDBACK_PLAIN_BOUNCE, 1, 1, "victor@greylist.example", D, "4.2.2", 452,
     "452 4.2.2 Mailbox full", "", "", OK, 0, 0, 0},
    {"sendmail-old-returned", FEEDBACK_PLAIN_BOUNCE, 1, 1, "wendy@vintage.example", F, "5.1.1", 550,
     "550 5.1.1 <wendy@vintage.example>... User unknown", "<bday-coupon-77@shop.example.com>",
     QID("16"), OK, 0, 0, 0},
    {"sendmail-old-warning", FEEDBACK_PLAIN_BOUNCE, 1, 1, "xavier@vintage.example", D, "", 0,
     "Deferred: Connection timed out with inbox.vintage.example.", "<renewal-2@shop.example.com>",
     QID("17"), OK, 0, 0, 0},
    {"exchange-2003-plain", FEEDBACK_PLAIN_BOUNCE, 1, 1, "yara@exchange2003.example", F, "5.1.1",
     550, "550 5.1.1 <yara@exchange2003.example>... User unknown",
     "<order-10460.1743073140@shop.example.com>", QID("18"), OK, 0, 0, 0},
    {"yahoo-failure-notice", FEEDBACK_PLAIN_BOUNCE, 1, 1, "zoe_1980@yahoo-like.example", F, "", 554,
     "554 delivery error: dd Sorry your message to zoe_1980@yahoo-like.example cannot",
     "<winback-40@news.shop.example.com>", QID("19"), OK, 0, 0, 0},
    {"postfix-plain-text-only", FEEDBACK_PLAIN_BOUNCE, 1, 1, "adam@example.org", F, "5.1.1", 550,
     "550 5.1.1 <adam@example.org>: Recipient address rejected: User unknown in virtual "
     "mailbox table (in reply to RCPT TO command)",
     "", "", OK, 0, 0, 0},
    {"generic-delivery-failed", FEEDBACK_PLAIN_BOUNCE, 1, 1, "bea@appliance.example", F, "", 550,
     "550 Requested action not taken: mailbox unavailable", "", "", OK, 0, 0, 0},
    {"html-only-base64", FEEDBACK_PLAIN_BOUNCE, 1, 1, "carl@webmail.example", F, "5.2.2", 552,
     "552 5.2.2 Mailbox full", "", "", OK, 0, 0, 0},
    {"plain-base64-mixed", FEEDBACK_PLAIN_BOUNCE, 1, 1, "dora@intl.example", F, "5.4.1", 550,
     "550 5.4.1 Recipient address rejected: Access denied", "<intl-offer-5@shop.example.com>",
     QID("1d"), OK, 0, 0, 0},

    /* ARF */
    {"arf-yahoo", FEEDBACK_ARF, 1, 1, "abby@yahoo-like.example", N, "", 0, "",
     "<sale-2025-spring.a1@news.shop.example.com>", QID("1e"), OK, 0, 0, 0},
    {"arf-microsoft-jmrp", FEEDBACK_ARF, 0, 0, NULL, N, "", 0, "",
     "<promo-4411@news.shop.example.com>", QID("1f"), OK, 12, -1, 0},
    {"arf-aol-redacted-old-key", FEEDBACK_ARF, 0, 0, NULL, N, "", 0, "",
     "<cart-reminder-3@shop.example.com>", QID("20"), OK, 0, -1, 0},
    {"arf-not-spam-headers", FEEDBACK_ARF, 1, 1, "DINA@ISP.EXAMPLE", N, "", 0, "",
     "<ok-77@shop.example.com>", QID("21"), OK, 1, 0, 0},
    {"arf-fraud-incidents", FEEDBACK_ARF, 2, 2, "someone-else@isp.example", N, "", 0, "",
     "<acct-alert-9@shop.example.com>", QID("22"), OK, 0, 1, 0},

    /* neither */
    {"not-report-out-of-office", FEEDBACK_NOT_REPORT, 0, 0, NULL, N, "", 0, "", "", "",
     FEEDBACK_VERP_NOT_OURS, 0, -1, 0},
    {"not-report-human-reply", FEEDBACK_NOT_REPORT, 0, 0, NULL, N, "", 0, "", "", "",
     FEEDBACK_VERP_NOT_OURS, 0, -1, 0},

    /* malformed */
    {"malformed-truncated", FEEDBACK_DSN, 1, 1, "ida@example.org", F, "5.1.1", 550,
     "550 5.1.1 User unk", "", "", OK, 0, 0, 0},
    {"malformed-no-boundary", FEEDBACK_PLAIN_BOUNCE, 1, 1, "jack@example.org", F, "5.1.1", 550,
     "550 5.1.1 <jack@example.org>: Recipient address rejected", "", "", OK, 0, 0, 0},
    {"malformed-wrong-boundary", FEEDBACK_PLAIN_BOUNCE, 1, 1, "kate@example.org", F, "5.2.1", 550,
     "550 5.2.1 The email account that you tried to reach is disabled.", "", "", OK, 0, 0, 0},
    {"malformed-headers-only", FEEDBACK_PLAIN_BOUNCE, 0, 0, NULL, N, "", 0, "", "", "", OK, 4, -1,
     0},
    {"malformed-base64-status", FEEDBACK_DSN, 1, 1, "mark@example.org", F, "5.1.1", 550,
     "550 5.1.1 <mark@example.org>: Recipient address rejected: User unknown", "", "", OK, 0, 0, 0},
    {"forged-token", FEEDBACK_DSN, 1, 1, "nina@example.org", F, "5.1.1", 550,
     "550 5.1.1 User unknown", "", "", FEEDBACK_VERP_FORGED, 0, -1, 0},
    {"malformed-deep-nesting", FEEDBACK_PLAIN_BOUNCE, 0, 0, NULL, N, "", 0, "", "", "",
     FEEDBACK_VERP_NOT_OURS, 0, -1, FEEDBACK_CUT_DEPTH},
    {"malformed-many-parts", FEEDBACK_PLAIN_BOUNCE, 0, 0, NULL, N, "", 0, "", "", "",
     FEEDBACK_VERP_NOT_OURS, 0, -1, FEEDBACK_CUT_PARTS},
    {"malformed-binary-junk", FEEDBACK_NOT_REPORT, 0, 0, NULL, N, "", 0, "", "", "",
     FEEDBACK_VERP_NOT_OURS, 0, -1, 0},
};

static void
test_corpus(void **state)
{
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		const struct expect *x = &corpus[i];
		struct feedback_report *r = parse_sample(x->name, NULL);

		print_message("%s\n", x->name);
		assert_int_equal(r->kind, x->kind);
		assert_int_equal(r->nrcpt, x->nrcpt);
		assert_int_equal(r->rcpt_total, x->total);
		assert_int_equal(r->cut, x->cut);
		if (x->address != NULL) {
			const struct feedback_rcpt *e = &r->rcpt[0];

			assert_string_equal(e->address, x->address);
			assert_int_equal(e->action, x->action);
			assert_string_equal(e->status, x->status);
			assert_int_equal(e->reply_code, x->code);
			assert_memory_equal(e->diagnostic, x->diagnostic, strlen(x->diagnostic));
		}
		assert_string_equal(r->original.message_id, x->message_id);
		assert_string_equal(r->original.queue_id, x->queue_id);
		assert_int_equal(r->verp_status, x->verp);
		if (x->verp == OK) {
			assert_int_equal(r->verp.rcpt, x->verp_index);
			assert_memory_equal(r->verp.queue_id, "0190a1b2c3d4e5f6", 16);
			if (x->queue_id[0] != '\0')
				assert_string_equal(r->verp.queue_id, x->queue_id);
		}
		assert_int_equal(r->verp_rcpt, x->verp_rcpt);
		if (x->verp_rcpt >= 0)
			assert_true(r->rcpt[x->verp_rcpt].verp_match);
		free(r);
	}
}

/* ---- details of each kind ---- */

static void
test_dsn_per_message_and_recipient_fields(void **state)
{
	struct feedback_report *r = parse_sample("postfix-user-unknown", NULL);

	assert_string_equal(r->reporting_mta, "mx.example.org");
	assert_string_equal(r->arrival_date, "Mon, 3 Mar 2025 10:00:02 +0000 (UTC)");
	assert_string_equal(r->rcpt[0].original, "bob@example.org");
	assert_string_equal(r->rcpt[0].diagnostic_type, "x-postfix");
	assert_string_equal(r->subject, "Undelivered Mail Returned to Sender");
	assert_string_equal(r->from, "MAILER-DAEMON@mx.example.org");
	assert_string_equal(r->message_id, "<20250303100004.4Z5k1q2Vb9z9sQ@mx.example.org>");
	assert_int_equal(r->original.returned, FEEDBACK_RETURNED_HEADERS);
	assert_string_equal(r->original.subject, "Your receipt for order 10442");
	assert_string_equal(r->original.from, "orders@shop.example.com");
	assert_string_equal(r->original.to, "bob@example.org");
	assert_int_equal(r->verp_source, FEEDBACK_VERP_FROM_TO);
	free(r);

	/* ENVID comes back as Original-Envelope-Id; ORCPT as Original-Recipient, case kept;
	 * "Action: failed (bad mailbox)" and "Status: 5.1.1 (user unknown)" read. */
	r = parse_sample("dsn-envid-orcpt", NULL);
	assert_string_equal(r->envelope_id, QID("0e"));
	assert_string_equal(r->rcpt[0].original, "Olga@Example.NET");
	assert_string_equal(r->rcpt[0].remote_mta, "[198.51.100.77]");
	assert_true(r->rcpt[0].verp_match);
	free(r);

	/* Remote-MTA without its comment and final dot */
	r = parse_sample("gmail-no-such-user", NULL);
	assert_string_equal(r->rcpt[0].remote_mta, "gmail-smtp-in.l.google.com");
	assert_string_equal(r->reporting_mta, "googlemail.com");
	assert_int_equal(r->original.returned, FEEDBACK_RETURNED_MESSAGE);
	free(r);

	r = parse_sample("exchange-2016-ndr", NULL);
	assert_string_equal(r->reporting_mta, "EXCH01.corp.example.org");
	assert_string_equal(r->subject, "Undeliverable: Reset your password");
	free(r);
}

static void
test_dsn_expanded_alias_matches_both_recipients(void **state)
{
	/* The VERP was made for team@example.org, an alias the receiver expanded: both
	 * recipients name it as Original-Recipient. */
	struct feedback_report *r = parse_sample("postfix-two-recipients", NULL);

	assert_string_equal(r->rcpt[1].address, "erin@example.org");
	assert_string_equal(r->rcpt[1].status, "5.7.1");
	assert_int_equal(r->rcpt[1].reply_code, 554);
	assert_true(r->rcpt[0].verp_match);
	assert_true(r->rcpt[1].verp_match);
	assert_int_equal(r->original.returned, FEEDBACK_RETURNED_MESSAGE);
	free(r);
}

static void
test_plain_bounce_details(void **state)
{
	struct feedback_report *r = parse_sample("qmail-local-two", NULL);

	assert_string_equal(r->rcpt[1].address, "tina-archive@qmail-host.example");
	assert_string_equal(r->rcpt[1].status, "5.4.6");
	assert_int_equal(r->rcpt[1].action, FEEDBACK_ACTION_FAILED);
	assert_false(r->rcpt[1].verp_match);
	assert_true(r->rcpt[0].verp_match);
	assert_int_equal(r->original.returned, FEEDBACK_RETURNED_INLINE);
	free(r);

	r = parse_sample("qmail-bounce", NULL);
	/* The copy after "--- Below this line" carried the VERP as Return-Path */
	assert_int_equal(strncmp(r->original.return_path, "bounce+", 7), 0);
	assert_string_equal(r->original.subject, "Your cart is waiting");
	free(r);

	r = parse_sample("exchange-2003-plain", NULL);
	assert_int_equal(r->original.returned, FEEDBACK_RETURNED_MESSAGE);
	free(r);
}

static void
test_arf_fields(void **state)
{
	struct feedback_report *r = parse_sample("arf-yahoo", NULL);

	assert_int_equal(r->arf.type, FEEDBACK_TYPE_ABUSE);
	assert_string_equal(r->arf.feedback_type, "abuse");
	assert_string_equal(r->arf.user_agent, "Yahoo!-Mail-Feedback/2.0");
	assert_string_equal(r->arf.version, "0.1");
	assert_int_equal(strncmp(r->arf.original_mail_from, "bounce+", 7), 0);
	assert_string_equal(r->arf.source_ip, "203.0.113.10");
	assert_string_equal(r->arf.reported_domain, "news.shop.example.com");
	assert_string_equal(r->arrival_date, "Tue, 1 Apr 2025 09:58:00 +0000");
	/* The report went to the FBL address, not a VERP: the original's Return-Path tells */
	assert_int_equal(r->verp_source, FEEDBACK_VERP_FROM_RETURN_PATH);
	assert_true(r->rcpt[0].verp_match);
	free(r);

	r = parse_sample("arf-microsoft-jmrp", NULL);
	assert_string_equal(r->arf.user_agent, "Hotmail FBL");
	assert_int_equal(r->arf.incidents, 1);
	assert_string_equal(r->arf.original_mail_from, "");
	/* Recipient redacted: the VERP's index is what names it */
	assert_int_equal(r->verp.rcpt, 12);
	free(r);

	r = parse_sample("arf-aol-redacted-old-key", NULL);
	assert_int_equal(r->verp.key, 1); /* signed before the rotation */
	assert_string_equal(r->arf.user_agent, "AOL SComp");
	assert_string_equal(r->original.to, "");
	free(r);

	r = parse_sample("arf-not-spam-headers", NULL);
	assert_int_equal(r->arf.type, FEEDBACK_TYPE_NOT_SPAM);
	assert_string_equal(r->arf.source_ip, "2001:db8::25");
	/* No Original-Rcpt-To: the To of the original, matched whatever its case */
	assert_string_equal(r->rcpt[0].address, "DINA@ISP.EXAMPLE");
	assert_true(r->rcpt[0].verp_match);
	assert_int_equal(r->original.returned, FEEDBACK_RETURNED_HEADERS);
	free(r);

	r = parse_sample("arf-fraud-incidents", NULL);
	assert_int_equal(r->arf.type, FEEDBACK_TYPE_FRAUD);
	assert_int_equal(r->arf.incidents, 3);
	assert_string_equal(r->arf.reported_domain, "shop.example.com");
	assert_false(r->rcpt[0].verp_match);
	assert_true(r->rcpt[1].verp_match);
	assert_int_equal(r->verp_source, FEEDBACK_VERP_FROM_RETURN_PATH);
	free(r);
}

static void
test_attribution_order_and_forgeries(void **state)
{
	struct feedback_verp_keys k;
	char verp[FEEDBACK_VERP_ADDR_MAX], err[128];
	struct feedback_report *r;

	assert_int_equal(feedback_verp_keys_init(&k, NULL, CURRENT, NULL, err, sizeof(err)), 0);
	/* The envelope recipient comes first */
	assert_true(feedback_verp_encode(&k, QID("77"), 9, "bob@example.org", NULL, "b.example",
	                                 verp, sizeof(verp)) > 0);
	r = parse_sample("postfix-user-unknown", verp);
	assert_int_equal(r->verp_status, FEEDBACK_VERP_OK);
	assert_int_equal(r->verp_source, FEEDBACK_VERP_FROM_RCPT_TO);
	assert_string_equal(r->verp.queue_id, QID("77"));
	assert_int_equal(r->verp.rcpt, 9);
	assert_int_equal(r->verp_rcpt, 0);
	free(r);

	/* A forged envelope recipient does not hide a valid To */
	r = parse_sample("postfix-user-unknown",
	                 "bounce+aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa@x.example");
	assert_int_equal(r->verp_status, FEEDBACK_VERP_OK);
	assert_int_equal(r->verp_source, FEEDBACK_VERP_FROM_TO);
	free(r);

	/* Forged outranks malformed outranks not-ours when nothing verifies */
	r = parse_sample("forged-token", "bounce+zz@x.example");
	assert_int_equal(r->verp_status, FEEDBACK_VERP_FORGED);
	assert_int_equal(r->verp_source, FEEDBACK_VERP_FROM_NONE);
	assert_false(r->rcpt[0].verp_match);
	free(r);
	r = parse_sample("not-report-human-reply", "bounce+zz@x.example");
	assert_int_equal(r->verp_status, FEEDBACK_VERP_MALFORMED);
	free(r);
}

/* ---- bounds ---- */

static void
test_ten_thousand_recipients(void **state)
{
	const char head[] =
	    "From: MAILER-DAEMON@mx.example.org\r\n"
	    "To: bounces@bounces.example.com\r\n"
	    "Subject: Undelivered Mail Returned to Sender\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: multipart/report; report-type=delivery-status; "
	    "boundary=\"B\"\r\n\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
	    "Reporting-MTA: dns; mx.example.org\r\n\r\n";
	size_t cap = sizeof(head) + 10000 * 120 + 16, len = 0;
	char *data = malloc(cap);
	struct feedback_report *r = malloc(sizeof(*r));

	memcpy(data, head, sizeof(head) - 1);
	len = sizeof(head) - 1;
	for (int i = 0; i < 10000; i++)
		len += (size_t)snprintf(data + len, cap - len,
		                        "Final-Recipient: rfc822; user%05d@example.org\r\n"
		                        "Action: failed\r\nStatus: 5.1.1\r\n\r\n",
		                        i);
	len += (size_t)snprintf(data + len, cap - len, "--B--\r\n");

	assert_int_equal(feedback_parse(data, len, r), FEEDBACK_DSN);
	check_report(r);
	assert_int_equal(r->nrcpt, FEEDBACK_RCPT_MAX);
	assert_int_equal(r->rcpt_total, 10000);
	assert_true(r->cut & FEEDBACK_CUT_RCPT);
	assert_string_equal(r->rcpt[FEEDBACK_RCPT_MAX - 1].address, "user00031@example.org");
	free(r);
	free(data);
}

static void
test_input_past_the_limit_is_ignored(void **state)
{
	/* A DSN that returns a 5 MB original: the report is read, the rest not looked at */
	size_t len, big = FEEDBACK_INPUT_MAX + 1024 * 1024;
	char *sample = slurp("postfix-two-recipients", &len);
	char *data = malloc(big);
	struct feedback_report *r = malloc(sizeof(*r));
	char *close = strstr(sample, "\r\n--7Hq2bLm0Pz.1741163412/gw.example.org--");

	assert_non_null(close);
	memcpy(data, sample, (size_t)(close - sample));
	for (size_t i = (size_t)(close - sample); i < big; i++)
		data[i] = (i % 78 == 77) ? '\n' : 'x';
	assert_int_equal(feedback_parse(data, big, r), FEEDBACK_DSN);
	check_report(r);
	assert_int_equal(r->cut, FEEDBACK_CUT_INPUT);
	assert_int_equal(r->nrcpt, 2);
	assert_string_equal(r->original.message_id, "<invite-551@shop.example.com>");
	free(r);
	free(data);
	free(sample);
}

static void
test_crlf_and_lf_read_alike(void **state)
{
	size_t len, n = 0;
	char *crlf = slurp("exim-plain-failed", &len), *lf = malloc(len);
	struct feedback_report *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));

	for (size_t i = 0; i < len; i++)
		if (!(crlf[i] == '\r' && i + 1 < len && crlf[i + 1] == '\n'))
			lf[n++] = crlf[i];
	assert_true(n < len);
	feedback_parse(crlf, len, a);
	feedback_parse(lf, n, b);
	assert_int_equal(a->kind, b->kind);
	assert_int_equal(a->nrcpt, b->nrcpt);
	assert_string_equal(a->rcpt[0].address, b->rcpt[0].address);
	assert_string_equal(a->rcpt[0].diagnostic, b->rcpt[0].diagnostic);
	assert_string_equal(a->original.message_id, b->original.message_id);
	assert_string_equal(a->original.queue_id, b->original.queue_id);
	free(a);
	free(b);
	free(lf);
	free(crlf);
}

/* Every sample cut short at every 7th octet (a connection dropped, a size limit): read
 * safely, and what is read is as clean as ever. */
static void
test_every_truncation_is_safe(void **state)
{
	struct feedback_report *r = malloc(sizeof(*r));

	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++) {
		size_t len;
		char *data = slurp(corpus[i].name, &len);

		for (size_t cut = 0; cut <= len; cut += 7) {
			/* A copy of exactly cut octets, so a read past it is caught by ASan */
			char *part = malloc(cut + 1);

			memcpy(part, data, cut);
			feedback_parse(part, cut, r);
			check_report(r);
			free(part);
		}
		free(data);
	}
	free(r);
}

/* Found by fuzz_feedback_parse: a diagnostic line of nothing but control characters, or a
 * closing bracket dropped after a space, left a trailing space. */
static void
test_diagnostics_never_end_in_a_space(void **state)
{
	const char msg[] = "From: MAILER-DAEMON@mx.example.org\n"
	                   "Subject: failure notice\n\n"
	                   "<bob@example.org>:\n"
	                   "550 5.1.1 gone\n"
	                   "\x01\x02\n\n"
	                   "<carol@example.org>: <mx #5.1.1 smtp;550 5.1.1 no such user >\n";
	struct feedback_report *r = malloc(sizeof(*r));

	assert_int_equal(feedback_parse(msg, sizeof(msg) - 1, r), FEEDBACK_PLAIN_BOUNCE);
	check_report(r);
	assert_int_equal(r->nrcpt, 2);
	assert_string_equal(r->rcpt[0].diagnostic, "550 5.1.1 gone");
	assert_string_equal(r->rcpt[1].diagnostic, "550 5.1.1 no such user");
	free(r);
}

static void
test_empty_input(void **state)
{
	struct feedback_report *r = malloc(sizeof(*r));

	assert_int_equal(feedback_parse("", 0, r), FEEDBACK_NOT_REPORT);
	check_report(r);
	assert_int_equal(feedback_attribute(&keys, NULL, r), FEEDBACK_VERP_NOT_OURS);
	free(r);
}

static void
test_names(void **state)
{
	assert_string_equal(feedback_kind_name(FEEDBACK_DSN), "dsn");
	assert_string_equal(feedback_kind_name(FEEDBACK_ARF), "arf");
	assert_string_equal(feedback_kind_name(FEEDBACK_PLAIN_BOUNCE), "plain-bounce");
	assert_string_equal(feedback_kind_name(FEEDBACK_NOT_REPORT), "not-a-report");
	assert_string_equal(feedback_action_name(FEEDBACK_ACTION_DELAYED), "delayed");
	assert_string_equal(feedback_action_name(FEEDBACK_ACTION_NONE), "");
	assert_string_equal(feedback_type_name(FEEDBACK_TYPE_NOT_SPAM), "not-spam");
	assert_string_equal(feedback_verp_source_name(FEEDBACK_VERP_FROM_RETURN_PATH),
	                    "return-path");
}

static int
setup(void **state)
{
	char err[128];

	return feedback_verp_keys_init(&keys, NULL, CURRENT, PREVIOUS, err, sizeof(err));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_corpus),
	    cmocka_unit_test(test_dsn_per_message_and_recipient_fields),
	    cmocka_unit_test(test_dsn_expanded_alias_matches_both_recipients),
	    cmocka_unit_test(test_plain_bounce_details),
	    cmocka_unit_test(test_arf_fields),
	    cmocka_unit_test(test_attribution_order_and_forgeries),
	    cmocka_unit_test(test_ten_thousand_recipients),
	    cmocka_unit_test(test_input_past_the_limit_is_ignored),
	    cmocka_unit_test(test_crlf_and_lf_read_alike),
	    cmocka_unit_test(test_every_truncation_is_safe),
	    cmocka_unit_test(test_diagnostics_never_end_in_a_space),
	    cmocka_unit_test(test_empty_input),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
