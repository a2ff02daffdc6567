/* DSNs: who gets one (NOTIFY, null senders), and the message itself, parsed back: its
 * headers, the three parts of the multipart/report, the RFC 3464 fields, what RET, ENVID,
 * ORCPT and SMTPUTF8 become, line lengths and CRLFs.
 *
 * With DROVER_DSN_SAMPLES=dir set, test_samples also writes sample DSNs there
 * (<name>.eml) for tests/integration/test_dsn_format.py to check with Python's email
 * package. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <event2/buffer.h>

#include "bounce/bounce.h"
#include "core/core.h"
#include "smtp/smtp.h"
#include "spool/spool.h"

#define T0 1764400000000000ULL /* Sat, 29 Nov 2025 07:06:40 +0000 */

static const char original[] = "Received: from app.example.com ([192.0.2.7])\r\n"
                               "\tby mta.example.net with ESMTP id 0190a1b2c3d4e5f600000001\r\n"
                               "From: Alice <alice@example.com>\r\n"
                               "To: Bob <bob@example.org>, carol@example.org\r\n"
                               "Subject: Your receipt\r\n"
                               "Message-ID: <r-1@example.com>\r\n"
                               "\r\n"
                               "Thank you for your order.\r\n"
                               "\r\n"
                               "-- \r\n"
                               "Example Shop\r\n";

/* ---- building inputs ---- */

static struct envelope_rcpt rcpts[4];
static struct envelope env;

static void
setup_env(const char *sender)
{
	memset(&env, 0, sizeof(env));
	memset(rcpts, 0, sizeof(rcpts));
	strlcpy_s(env.id, "0190a1b2c3d4e5f600000001", sizeof(env.id));
	env.sender = (char *)sender;
	env.received_us = T0;
	env.size = sizeof(original) - 1;
	env.rcpt = rcpts;
	env.nrcpt = 2;
	rcpts[0].address = (char *)"bob@example.org";
	rcpts[1].address = (char *)"carol@example.org";
}

static struct dsn_rcpt
failed(size_t index, const char *status, const char *diag)
{
	return (struct dsn_rcpt){.index = index,
	                         .action = DSN_FAILED,
	                         .status = status,
	                         .remote_mta = "mx1.example.org",
	                         .diagnostic = diag,
	                         .last_attempt_us = T0 + 60 * USEC};
}

static struct dsn_report
report(const struct dsn_rcpt *r, size_t n)
{
	return (struct dsn_report){.env = &env,
	                           .content = original,
	                           .content_len = sizeof(original) - 1,
	                           .rcpt = r,
	                           .nrcpt = n,
	                           .hostname = "mta.example.net",
	                           .now_us = T0 + 120 * USEC,
	                           .unique = "0190a1b2c3d4e5f600000099",
	                           .return_max = DSN_DEF_RETURN_MAX};
}

/* ---- parsing the result back, just enough MIME for the essentials ---- */

struct part {
	char *head;
	char *body;
	size_t body_len;
};

struct parsed {
	char *raw;
	size_t len;
	struct dsn_result res;
	char *head;
	size_t nparts;
	struct part part[4];
};

static struct parsed p;

static void
parsed_free(void)
{
	free(p.raw);
	free(p.head);
	for (size_t i = 0; i < p.nparts; i++) {
		free(p.part[i].head);
		free(p.part[i].body);
	}
	memset(&p, 0, sizeof(p));
}

/* The unfolded value of the first field called name in a header block, or NULL. */
static char *
field(const char *block, const char *name)
{
	size_t nlen = strlen(name);
	const char *line = block;

	while (line != NULL && *line != '\0') {
		const char *eol = strstr(line, "\r\n");
		const char *end = eol != NULL ? eol : line + strlen(line);

		if ((size_t)(end - line) > nlen && strncasecmp(line, name, nlen) == 0 &&
		    line[nlen] == ':') {
			char *v = xmalloc(strlen(line) + 1);
			size_t n = 0;
			const char *s = line + nlen + 1;

			while (*s == ' ')
				s++;
			for (;;) {
				while (s < end)
					v[n++] = *s++;
				/* A continuation line starts with a space or a tab. */
				if (eol != NULL && (eol[2] == ' ' || eol[2] == '\t')) {
					s = eol + 2;
					eol = strstr(s, "\r\n");
					end = eol != NULL ? eol : s + strlen(s);
					continue;
				}
				break;
			}
			v[n] = '\0';
			return v;
		}
		line = eol != NULL ? eol + 2 : NULL;
	}
	return NULL;
}

static void
assert_field(const char *block, const char *name, const char *want)
{
	char *v = field(block, name);

	if (v == NULL)
		fail_msg("no %s field in:\n%s", name, block);
	assert_string_equal(v, want);
	free(v);
}

static void
assert_no_field(const char *block, const char *name)
{
	char *v = field(block, name);

	if (v != NULL)
		fail_msg("unexpected %s: %s", name, v);
}

/* Every line ends in CRLF, and none is longer than 998 octets, up to the returned original
 * (which is included as is). */
static void
assert_lines(const char *s, size_t len)
{
	size_t col = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '\n')
			assert_true(i > 0 && s[i - 1] == '\r');
		if (s[i] == '\r') {
			assert_true(i + 1 < len && s[i + 1] == '\n');
			col = 0;
			i++;
			continue;
		}
		col++;
		if (col > 998)
			fail_msg("line longer than 998 octets at offset %zu", i);
	}
	assert_true(len >= 2 && s[len - 2] == '\r' && s[len - 1] == '\n');
}

static void
parse(struct evbuffer *b)
{
	char *ct, *bp, *body, *delim;
	size_t dlen;
	const char *q;

	parsed_free();
	p.len = evbuffer_get_length(b);
	p.raw = xmalloc(p.len + 1);
	evbuffer_copyout(b, p.raw, p.len);
	p.raw[p.len] = '\0';
	assert_lines(p.raw, p.len);

	body = strstr(p.raw, "\r\n\r\n");
	assert_non_null(body);
	p.head = xstrndup(p.raw, (size_t)(body - p.raw) + 2);
	body += 4;
	ct = field(p.head, "Content-Type");
	assert_non_null(ct);
	assert_non_null(bp = strstr(ct, "boundary=\""));
	bp += strlen("boundary=\"");
	*strchr(bp, '"') = '\0';
	delim = xasprintf("\r\n--%s", bp);
	dlen = strlen(delim);
	free(ct);

	/* The preamble ends at the first delimiter; each part runs to the next one. */
	q = strstr(body - 2, delim);
	assert_non_null(q);
	while (q != NULL) {
		const char *start = q + dlen, *hend, *next;

		if (strncmp(start, "--", 2) == 0) {
			assert_string_equal(start, "--\r\n");
			break;
		}
		assert_memory_equal(start, "\r\n", 2);
		start += 2;
		hend = strstr(start, "\r\n\r\n");
		assert_non_null(hend);
		next = strstr(hend, delim);
		assert_non_null(next);
		assert_true(p.nparts < 4);
		p.part[p.nparts].head = xstrndup(start, (size_t)(hend - start) + 2);
		p.part[p.nparts].body_len = (size_t)(next - (hend + 4));
		p.part[p.nparts].body = xstrndup(hend + 4, p.part[p.nparts].body_len);
		p.nparts++;
		q = next;
	}
	free(delim);
}

/* Whether the text part says want, its lines unwrapped. */
static bool
text_says(const char *want)
{
	const char *s = p.part[0].body;
	char *flat = xmalloc(strlen(s) + 1);
	size_t n = 0;
	bool found;

	while (*s != '\0') {
		if (s[0] == '\r' && s[1] == '\n') {
			s += 2;
			while (*s == ' ')
				s++;
			flat[n++] = ' ';
			continue;
		}
		flat[n++] = *s++;
	}
	flat[n] = '\0';
	found = strstr(flat, want) != NULL;
	if (!found)
		print_message("text part, unwrapped:\n%s\n", flat);
	free(flat);
	return found;
}

static int
compose(const struct dsn_report *r)
{
	struct evbuffer *b = evbuffer_new();
	char err[256] = "";
	int rc = dsn_compose(r, b, &p.res, err, sizeof(err));

	if (rc == 0) {
		struct dsn_result res = p.res;

		parse(b);
		p.res = res;
	}
	evbuffer_free(b);
	return rc;
}

/* The n-th per-recipient group of the delivery-status part (0-based), copied. */
static char *
rcpt_group(size_t n)
{
	const char *s = p.part[1].body;

	for (size_t i = 0; i <= n; i++) {
		s = strstr(s, "\r\n\r\n");
		assert_non_null(s);
		s += 4;
	}
	const char *end = strstr(s, "\r\n\r\n");

	return end != NULL ? xstrndup(s, (size_t)(end - s) + 2) : xstrdup(s);
}

static int
teardown(void **state)
{
	parsed_free();
	return 0;
}

/* ---- who gets a DSN ---- */

static void
test_notify_defaults_to_failure_and_delay(void **state)
{
	assert_true(dsn_notify_wants(0, DSN_FAILED));
	assert_true(dsn_notify_wants(0, DSN_DELAYED));
	assert_false(dsn_notify_wants(0, DSN_DELIVERED));
	assert_false(dsn_notify_wants(0, DSN_RELAYED));
	assert_false(dsn_notify_wants(0, DSN_EXPANDED));
}

static void
test_notify_never_silences_everything(void **state)
{
	for (int a = DSN_FAILED; a <= DSN_EXPANDED; a++)
		assert_false(dsn_notify_wants(SMTP_NOTIFY_NEVER, (enum dsn_action)a));
}

static void
test_notify_success_only_when_asked(void **state)
{
	assert_true(dsn_notify_wants(SMTP_NOTIFY_SUCCESS, DSN_DELIVERED));
	assert_true(dsn_notify_wants(SMTP_NOTIFY_SUCCESS, DSN_RELAYED));
	assert_true(dsn_notify_wants(SMTP_NOTIFY_SUCCESS, DSN_EXPANDED));
	assert_false(dsn_notify_wants(SMTP_NOTIFY_SUCCESS, DSN_FAILED));
	assert_false(dsn_notify_wants(SMTP_NOTIFY_SUCCESS, DSN_DELAYED));
	assert_true(dsn_notify_wants(SMTP_NOTIFY_FAILURE, DSN_FAILED));
	assert_false(dsn_notify_wants(SMTP_NOTIFY_FAILURE, DSN_DELAYED));
	assert_true(dsn_notify_wants(SMTP_NOTIFY_DELAY | SMTP_NOTIFY_SUCCESS, DSN_DELAYED));
	assert_false(dsn_notify_wants(SMTP_NOTIFY_DELAY | SMTP_NOTIFY_SUCCESS, DSN_FAILED));
}

static void
test_route_to_the_sender_by_notify(void **state)
{
	setup_env("alice@example.com");
	rcpts[1].notify = SMTP_NOTIFY_NEVER;
	assert_int_equal(dsn_route(&env, 0, DSN_FAILED, true), DSN_TO_SENDER);
	assert_int_equal(dsn_route(&env, 0, DSN_DELIVERED, true), DSN_TO_NOBODY);
	assert_int_equal(dsn_route(&env, 1, DSN_FAILED, true), DSN_TO_NOBODY);
	assert_int_equal(dsn_route(&env, 2, DSN_FAILED, true), DSN_TO_NOBODY);
	assert_int_equal(dsn_route(NULL, 0, DSN_FAILED, true), DSN_TO_NOBODY);
}

static void
test_route_never_to_a_null_sender(void **state)
{
	setup_env("");
	rcpts[0].notify = SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY | SMTP_NOTIFY_SUCCESS;
	/* A bounce that bounces: the postmaster hears of it, nobody else, and only of a
	 * failure. */
	assert_int_equal(dsn_route(&env, 0, DSN_FAILED, false), DSN_TO_NOBODY);
	assert_int_equal(dsn_route(&env, 0, DSN_FAILED, true), DSN_TO_POSTMASTER);
	assert_int_equal(dsn_route(&env, 0, DSN_DELAYED, true), DSN_TO_NOBODY);
	assert_int_equal(dsn_route(&env, 0, DSN_DELIVERED, true), DSN_TO_NOBODY);
	assert_int_equal(dsn_route(&env, 1, DSN_FAILED, true), DSN_TO_POSTMASTER);
	rcpts[1].notify = SMTP_NOTIFY_NEVER;
	assert_int_equal(dsn_route(&env, 1, DSN_FAILED, true), DSN_TO_NOBODY);
	env.sender = NULL;
	assert_int_equal(dsn_route(&env, 0, DSN_FAILED, false), DSN_TO_NOBODY);
}

/* ---- the message ---- */

static void
test_failure_returns_the_whole_message(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", "550 5.1.1 <bob@example.org>: user unknown")};
	struct dsn_report rep;
	char *g;

	setup_env("alice@example.com");
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0);

	assert_field(p.head, "From", "\"Mail Delivery System\" <MAILER-DAEMON@mta.example.net>");
	assert_field(p.head, "To", "<alice@example.com>");
	assert_field(p.head, "Subject", "Undelivered Mail Returned to Sender");
	assert_field(p.head, "Date", "Sat, 29 Nov 2025 07:08:40 +0000");
	assert_field(p.head, "Message-ID", "<0190a1b2c3d4e5f600000099@mta.example.net>");
	assert_field(p.head, "Auto-Submitted", "auto-replied");
	assert_field(p.head, "MIME-Version", "1.0");
	assert_field(p.head, "Content-Type",
	             "multipart/report; report-type=delivery-status;\tboundary=\"=_drover_dsn_"
	             "0190a1b2c3d4e5f600000099\"");
	assert_no_field(p.head, "Content-Transfer-Encoding");

	assert_int_equal(p.nparts, 3);
	assert_field(p.part[0].head, "Content-Type", "text/plain; charset=us-ascii");
	assert_true(text_says("<bob@example.org>: delivery failed (5.1.1)."));
	assert_true(text_says("mx1.example.org said: 550 5.1.1"));
	assert_true(text_says("The original message is attached."));

	assert_field(p.part[1].head, "Content-Type", "message/delivery-status");
	assert_field(p.part[1].body, "Reporting-MTA", "dns; mta.example.net");
	assert_field(p.part[1].body, "Arrival-Date", "Sat, 29 Nov 2025 07:06:40 +0000");
	assert_field(p.part[1].body, "X-Drover-Queue-ID", "0190a1b2c3d4e5f600000001");
	assert_no_field(p.part[1].body, "Original-Envelope-Id");
	g = rcpt_group(0);
	assert_field(g, "Final-Recipient", "rfc822; bob@example.org");
	assert_field(g, "Action", "failed");
	assert_field(g, "Status", "5.1.1");
	assert_field(g, "Remote-MTA", "dns; mx1.example.org");
	assert_field(g, "Diagnostic-Code", "smtp; 550 5.1.1 <bob@example.org>: user unknown");
	assert_field(g, "Last-Attempt-Date", "Sat, 29 Nov 2025 07:07:40 +0000");
	assert_no_field(g, "Original-Recipient");
	assert_no_field(g, "Will-Retry-Until");
	free(g);

	assert_field(p.part[2].head, "Content-Type", "message/rfc822");
	assert_int_equal(p.part[2].body_len, sizeof(original) - 1);
	assert_memory_equal(p.part[2].body, original, sizeof(original) - 1);

	assert_string_equal(p.res.rcpt, "alice@example.com");
	assert_false(p.res.smtputf8);
	assert_false(p.res.global);
	assert_int_equal(p.res.body, SMTP_BODY_7BIT);
	assert_int_equal(p.res.returned, DSN_RETURNED_FULL);
}

static void
test_envid_comes_back_decoded(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", NULL)};
	struct dsn_report rep;

	setup_env("alice@example.com");
	env.envid = (char *)"QQ+2B314159+3Dx";
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0);
	assert_field(p.part[1].body, "Original-Envelope-Id", "QQ+314159=x");
	/* RFC 3464 §2.2: it comes first. */
	assert_memory_equal(p.part[1].body, "Original-Envelope-Id:", 21);

	/* A control character once decoded cannot go in a field: reported as received. */
	env.envid = (char *)"ab+0D+0Acd";
	assert_int_equal(compose(&rep), 0);
	assert_field(p.part[1].body, "Original-Envelope-Id", "ab+0D+0Acd");
}

static void
test_orcpt_becomes_original_recipient(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", NULL), failed(1, "5.2.2", NULL)};
	struct dsn_report rep;
	char *g;

	setup_env("alice@example.com");
	rcpts[0].orcpt = (char *)"rfc822;Bob+2Bshop@Example.ORG";
	rep = report(r, 2);
	assert_int_equal(compose(&rep), 0);
	g = rcpt_group(0);
	assert_field(g, "Original-Recipient", "rfc822; Bob+shop@Example.ORG");
	assert_memory_equal(g, "Original-Recipient:", 19);
	free(g);
	g = rcpt_group(1);
	assert_no_field(g, "Original-Recipient");
	assert_field(g, "Final-Recipient", "rfc822; carol@example.org");
	assert_field(g, "Status", "5.2.2");
	free(g);

	/* Non-ASCII once decoded: the RFC 6533 utf-8 type, xtext-encoded in the ASCII-only
	 * message/delivery-status. */
	rcpts[0].orcpt = (char *)"rfc822;caf+C3+A9@example.org";
	assert_int_equal(compose(&rep), 0);
	g = rcpt_group(0);
	assert_field(g, "Original-Recipient", "utf-8; caf\\x{E9}@example.org");
	free(g);

	/* A utf-8 ORCPT is already in the form the field takes. */
	rcpts[0].orcpt = (char *)"utf-8;caf\\x{E9}@example.org";
	assert_int_equal(compose(&rep), 0);
	g = rcpt_group(0);
	assert_field(g, "Original-Recipient", "utf-8; caf\\x{E9}@example.org");
	free(g);

	/* Another address type, kept with its decoded address. */
	rcpts[0].orcpt = (char *)"x400;/C+3DUS/S+3DSmith/";
	assert_int_equal(compose(&rep), 0);
	g = rcpt_group(0);
	assert_field(g, "Original-Recipient", "x400; /C=US/S=Smith/");
	free(g);

	/* Damaged beyond repair: left out rather than written wrong. */
	rcpts[0].orcpt = (char *)"no-semicolon";
	assert_int_equal(compose(&rep), 0);
	g = rcpt_group(0);
	assert_no_field(g, "Original-Recipient");
	free(g);
}

static void
test_ret_hdrs_returns_the_headers(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", NULL)};
	struct dsn_report rep;
	const char *body = strstr(original, "\r\n\r\n");

	setup_env("alice@example.com");
	env.dsn_ret = SMTP_DSN_RET_HDRS;
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0);
	assert_int_equal(p.nparts, 3);
	assert_field(p.part[2].head, "Content-Type", "text/rfc822-headers");
	assert_field(p.part[2].head, "Content-Description", "Undelivered Message Headers");
	assert_int_equal(p.part[2].body_len, (size_t)(body - original) + 2);
	assert_memory_equal(p.part[2].body, original, p.part[2].body_len);
	assert_true(text_says("(RET=HDRS)"));
	assert_int_equal(p.res.returned, DSN_RETURNED_HEADERS);

	/* RET=FULL: the whole message. */
	env.dsn_ret = SMTP_DSN_RET_FULL;
	assert_int_equal(compose(&rep), 0);
	assert_field(p.part[2].head, "Content-Type", "message/rfc822");
}

static void
test_a_large_message_comes_back_as_headers(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.3.4", "552 5.3.4 Message too big")};
	struct dsn_report rep;

	setup_env("alice@example.com");
	env.dsn_ret = SMTP_DSN_RET_FULL;
	rep = report(r, 1);
	rep.return_max = 100;
	assert_int_equal(compose(&rep), 0);
	assert_field(p.part[2].head, "Content-Type", "text/rfc822-headers");
	assert_true(text_says("larger than the 100 octets"));
	assert_int_equal(p.res.returned, DSN_RETURNED_HEADERS);

	/* return_max 0: never the whole message. */
	rep.return_max = 0;
	assert_int_equal(compose(&rep), 0);
	assert_field(p.part[2].head, "Content-Type", "text/rfc822-headers");

	/* No content at all: two parts. */
	rep.content = NULL;
	rep.content_len = 0;
	assert_int_equal(compose(&rep), 0);
	assert_int_equal(p.nparts, 2);
	assert_true(text_says("The original message is not attached."));
	assert_int_equal(p.res.returned, DSN_RETURNED_NOTHING);
}

static void
test_huge_headers_are_cut_at_a_line(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", NULL)};
	struct dsn_report rep;
	size_t n = 0, cap = DSN_HEADERS_MAX * 2;
	char *big = xmalloc(cap + 64);

	while (n < cap)
		n += (size_t)sprintf(big + n, "X-Filler-%06zu: yes\r\n", n);
	n += (size_t)sprintf(big + n, "\r\nbody\r\n");
	setup_env("alice@example.com");
	env.dsn_ret = SMTP_DSN_RET_HDRS;
	rep = report(r, 1);
	rep.content = big;
	rep.content_len = n;
	assert_int_equal(compose(&rep), 0);
	assert_true(p.part[2].body_len <= DSN_HEADERS_MAX);
	assert_true(p.part[2].body_len > DSN_HEADERS_MAX - 40);
	assert_memory_equal(p.part[2].body + p.part[2].body_len - 2, "\r\n", 2);
	assert_memory_equal(p.part[2].body, big, p.part[2].body_len);
	assert_true(text_says("They were cut at"));
	free(big);
}

static void
test_delay_notice(void **state)
{
	struct dsn_rcpt r[] = {{.index = 1,
	                        .action = DSN_DELAYED,
	                        .status = "4.2.2",
	                        .remote_mta = "mx2.example.org",
	                        .diagnostic = "452 4.2.2 Mailbox full",
	                        .last_attempt_us = T0 + 3600 * USEC,
	                        .retry_until_us = T0 + 5 * 86400 * USEC}};
	struct dsn_report rep;
	char *g;

	setup_env("alice@example.com");
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0);
	assert_field(p.head, "Subject", "Delayed Mail (still being retried)");
	g = rcpt_group(0);
	assert_field(g, "Final-Recipient", "rfc822; carol@example.org");
	assert_field(g, "Action", "delayed");
	assert_field(g, "Status", "4.2.2");
	assert_field(g, "Will-Retry-Until", "Thu, 4 Dec 2025 07:06:40 +0000");
	free(g);
	assert_true(text_says("retried until Thu, 4 Dec 2025"));
	/* Never the whole message in a delay notice (RET is about failures). */
	assert_field(p.part[2].head, "Content-Type", "text/rfc822-headers");
	assert_field(p.part[2].head, "Content-Description", "Delayed Message Headers");
}

static void
test_success_report(void **state)
{
	struct dsn_rcpt r[] = {{.index = 0, .action = DSN_DELIVERED, .remote_mta = "mx1"},
	                       {.index = 1, .action = DSN_RELAYED, .status = "2.0.0"}};
	struct dsn_report rep;
	char *g;

	setup_env("alice@example.com");
	rep = report(r, 2);
	assert_int_equal(compose(&rep), 0);
	assert_field(p.head, "Subject", "Successful Mail Delivery Report");
	g = rcpt_group(0);
	assert_field(g, "Action", "delivered");
	assert_field(g, "Status", "2.0.0"); /* none given: the action's class */
	free(g);
	g = rcpt_group(1);
	assert_field(g, "Action", "relayed");
	free(g);
	assert_field(p.part[2].head, "Content-Description", "Delivered Message Headers");
}

static void
test_mixed_report_is_headed_by_the_failure(void **state)
{
	struct dsn_rcpt r[] = {{.index = 0, .action = DSN_DELAYED, .status = "4.4.1"},
	                       failed(1, "5.1.1", NULL)};
	struct dsn_report rep;

	setup_env("alice@example.com");
	rep = report(r, 2);
	assert_int_equal(compose(&rep), 0);
	assert_field(p.head, "Subject", "Undelivered Mail Returned to Sender");
	assert_field(p.part[2].head, "Content-Type", "message/rfc822");
}

static void
test_malformed_status_falls_back_to_the_class(void **state)
{
	static const char *bad[] = {"5.1", "55.1.1", "5.1.1.1", "3.1.1", "5.1234.1", "x", ""};
	struct dsn_rcpt r[] = {failed(0, NULL, NULL)};
	struct dsn_report rep;

	setup_env("alice@example.com");
	rep = report(r, 1);
	for (size_t i = 0; i < nitems(bad); i++) {
		r[0].status = bad[i];
		assert_int_equal(compose(&rep), 0);
		assert_field(p.part[1].body, "Status", "5.0.0");
	}
	r[0].status = "5.7.26";
	assert_int_equal(compose(&rep), 0);
	assert_field(p.part[1].body, "Status", "5.7.26");
}

static void
test_smtputf8_uses_the_global_types(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", "550 5.1.1 «inconnu» ici"),
	                       failed(1, "5.1.1", NULL)};
	struct dsn_report rep;
	char *g;

	setup_env("álvaro@example.com");
	env.smtputf8 = true;
	rcpts[0].address = (char *)"usuário@exemplo.br";
	rep = report(r, 2);
	assert_int_equal(compose(&rep), 0);
	assert_field(p.head, "To", "<álvaro@example.com>");
	assert_field(p.head, "Content-Type",
	             "multipart/report; report-type=global-delivery-status;\tboundary=\"=_drover_"
	             "dsn_0190a1b2c3d4e5f600000099\"");
	assert_field(p.head, "Content-Transfer-Encoding", "8bit");
	assert_field(p.part[0].head, "Content-Type", "text/plain; charset=utf-8");
	assert_field(p.part[1].head, "Content-Type", "message/global-delivery-status");
	assert_field(p.part[2].head, "Content-Type", "message/global");
	g = rcpt_group(0);
	assert_field(g, "Final-Recipient", "utf-8; usuário@exemplo.br");
	assert_field(g, "Diagnostic-Code", "smtp; 550 5.1.1 «inconnu» ici");
	free(g);
	g = rcpt_group(1);
	assert_field(g, "Final-Recipient", "rfc822; carol@example.org");
	free(g);
	assert_true(p.res.smtputf8);
	assert_true(p.res.global);
	assert_int_equal(p.res.body, SMTP_BODY_8BITMIME);

	env.dsn_ret = SMTP_DSN_RET_HDRS;
	assert_int_equal(compose(&rep), 0);
	assert_field(p.part[2].head, "Content-Type", "message/global-headers");

	/* An ASCII sender: the DSN itself needs no SMTPUTF8, only 8BITMIME. */
	env.sender = (char *)"alice@example.com";
	assert_int_equal(compose(&rep), 0);
	assert_false(p.res.smtputf8);
	assert_true(p.res.global);
}

static void
test_non_ascii_outside_smtputf8_is_replaced(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", "550 5.1.1 bo\xc3\xaete pleine \xff\xfe")};
	struct dsn_report rep;
	char *g;

	setup_env("alice@example.com");
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0);
	g = rcpt_group(0);
	assert_field(g, "Diagnostic-Code", "smtp; 550 5.1.1 bo??te pleine ??");
	free(g);
	assert_int_equal(p.res.body, SMTP_BODY_7BIT);
}

static void
test_multiline_reply_is_one_field(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.7.1",
	                              "550-5.7.1 This message was rejected\r\n"
	                              "550-5.7.1 by policy. See\r\n"
	                              "550 5.7.1 https://example.org/policy \t\x01\x7f")};
	struct dsn_report rep;
	char *g;

	setup_env("alice@example.com");
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0);
	g = rcpt_group(0);
	assert_field(g, "Diagnostic-Code",
	             "smtp; 550-5.7.1 This message was rejected 550-5.7.1 by policy. See 550 5.7.1 "
	             "https://example.org/policy");
	free(g);
}

static void
test_long_diagnostic_is_folded_and_cut(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.0.0", NULL)};
	struct dsn_report rep;
	char *diag = xmalloc(8000), *g, *v;
	size_t n = 0;

	/* Words, then one 2000-octet word with no space to fold at, then more words. */
	for (int i = 0; i < 40; i++)
		n += (size_t)sprintf(diag + n, "word%02d ", i);
	memset(diag + n, 'x', 2000);
	n += 2000;
	for (int i = 0; n < 7000; i++)
		n += (size_t)sprintf(diag + n, " tail%04d", i);
	diag[n] = '\0';
	r[0].diagnostic = diag;

	setup_env("alice@example.com");
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0); /* compose() checks every line is <= 998 */
	g = rcpt_group(0);
	v = field(g, "Diagnostic-Code");
	assert_non_null(v);
	/* Folding at spaces gives the text back when unfolded; the long word was broken once
	 * (a space appears in it), and the whole was cut. */
	assert_memory_equal(v, "smtp; word00 word01 word02", 26);
	assert_non_null(strstr(v, "word39 xxxx"));
	assert_true(strlen(v) <= strlen("smtp; ") + DSN_DIAGNOSTIC_MAX + 3 + 2);
	assert_string_equal(v + strlen(v) - 3, "...");
	free(v);
	free(g);
	free(diag);
}

static void
test_postmaster_notice_for_a_null_sender(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", "550 5.1.1 no such user")};
	struct dsn_report rep;
	struct evbuffer *b = evbuffer_new();
	struct dsn_result res;
	char err[128];

	setup_env("");
	rep = report(r, 1);
	/* Never to the null sender itself. */
	evbuffer_add(b, "x", 1);
	assert_int_equal(dsn_compose(&rep, b, &res, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "null"));
	assert_int_equal(evbuffer_get_length(b), 1);
	evbuffer_free(b);

	rep.postmaster = "postmaster@mta.example.net";
	assert_int_equal(compose(&rep), 0);
	assert_field(p.head, "To", "<postmaster@mta.example.net>");
	assert_field(p.head, "Subject", "Postmaster Notice: Undelivered Mail");
	assert_true(text_says("This report is for the postmaster."));
	assert_null(strstr(p.part[0].body, "Your "));
	assert_string_equal(p.res.rcpt, "postmaster@mta.example.net");
}

static void
test_boundary_never_occurs_in_the_parts(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", NULL)};
	struct dsn_report rep;
	char *ct;
	const char *trap = "Subject: trap\r\n\r\n--=_drover_dsn_U1\r\n--=_drover_dsn_U1_1--\r\n";

	setup_env("alice@example.com");
	rep = report(r, 1);
	rep.unique = "U1";
	rep.content = trap;
	rep.content_len = strlen(trap);
	assert_int_equal(compose(&rep), 0);
	ct = field(p.head, "Content-Type");
	assert_non_null(strstr(ct, "boundary=\"=_drover_dsn_U1_2\""));
	free(ct);
	assert_int_equal(p.nparts, 3);
	assert_memory_equal(p.part[2].body, trap, strlen(trap));
}

static void
test_same_inputs_same_octets(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", "550 no"), failed(1, "5.1.1", "550 no")};
	struct dsn_report rep;
	struct evbuffer *a = evbuffer_new(), *b = evbuffer_new();
	struct dsn_result ra, rb;
	char err[64];

	setup_env("alice@example.com");
	env.envid = (char *)"E1";
	rep = report(r, 2);
	assert_int_equal(dsn_compose(&rep, a, &ra, err, sizeof(err)), 0);
	assert_int_equal(dsn_compose(&rep, b, &rb, err, sizeof(err)), 0);
	assert_int_equal(evbuffer_get_length(a), evbuffer_get_length(b));
	assert_memory_equal(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), evbuffer_get_length(a));
	evbuffer_free(a);
	evbuffer_free(b);
}

static void
test_bad_inputs_are_refused(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", NULL)};
	struct dsn_report rep;
	struct evbuffer *b = evbuffer_new();
	struct dsn_result res;
	char err[128];

	setup_env("alice@example.com");
#define REFUSED(what)                                                                              \
	do {                                                                                       \
		rep = report(r, 1);                                                                \
		what;                                                                              \
		err[0] = '\0';                                                                     \
		assert_int_equal(dsn_compose(&rep, b, &res, err, sizeof(err)), -1);                \
		assert_true(err[0] != '\0');                                                       \
		assert_int_equal(evbuffer_get_length(b), 0);                                       \
	} while (0)
	REFUSED(rep.nrcpt = 0);
	REFUSED(rep.rcpt = NULL);
	REFUSED(r[0].index = 2);
	r[0].index = 0;
	REFUSED(rep.hostname = "not a host");
	REFUSED(rep.hostname = NULL);
	REFUSED(rep.unique = "has space");
	REFUSED(rep.unique = "");
	REFUSED(rep.unique = "0123456789012345678901234567890123456789X");
	REFUSED(env.sender = (char *)"evil@example.com\r\nBcc: x@example.com");
	env.sender = (char *)"alice@example.com";
	REFUSED(rep.postmaster = "");
	REFUSED(rep.content = NULL);
#undef REFUSED
	evbuffer_free(b);
}

static void
test_the_dsn_envelope(void **state)
{
	struct dsn_rcpt r[] = {failed(0, "5.1.1", NULL)};
	struct dsn_report rep;
	struct envelope out;

	setup_env("álvaro@example.com");
	env.smtputf8 = true;
	rep = report(r, 1);
	assert_int_equal(compose(&rep), 0);
	dsn_envelope(&p.res, T0, &out);
	assert_string_equal(out.sender, "");
	assert_int_equal(out.nrcpt, 1);
	assert_string_equal(out.rcpt[0].address, "álvaro@example.com");
	assert_int_equal(out.rcpt[0].notify, 0);
	assert_null(out.rcpt[0].orcpt);
	assert_int_equal(out.dsn_ret, SMTP_DSN_RET_UNSPEC);
	assert_null(out.envid);
	assert_true(out.smtputf8);
	/* UTF-8 in the To: header needs SMTPUTF8; the body is plain ASCII. */
	assert_int_equal(out.body_type, SMTP_BODY_7BIT);
	assert_int_equal(out.received_us, T0);
	assert_string_equal(out.protocol, "DSN");
	/* A DSN that fails goes to the postmaster, never back to a sender. */
	assert_int_equal(dsn_route(&out, 0, DSN_FAILED, false), DSN_TO_NOBODY);
	assert_int_equal(dsn_route(&out, 0, DSN_FAILED, true), DSN_TO_POSTMASTER);
	envelope_clear(&out);
}

/* ---- samples for tests/integration/test_dsn_format.py ---- */

static void
write_sample(const char *dir, const char *name, const struct dsn_report *r)
{
	struct evbuffer *b = evbuffer_new();
	struct dsn_result res;
	char err[128], *path = xasprintf("%s/%s.eml", dir, name);
	FILE *f;

	if (dsn_compose(r, b, &res, err, sizeof(err)) != 0)
		fail_msg("%s: %s", name, err);
	if ((f = fopen(path, "wb")) == NULL)
		fail_msg("%s: %s", path, strerror(errno));
	assert_int_equal(fwrite(evbuffer_pullup(b, -1), 1, evbuffer_get_length(b), f),
	                 evbuffer_get_length(b));
	assert_int_equal(fclose(f), 0);
	free(path);
	evbuffer_free(b);
}

static void
test_samples(void **state)
{
	const char *dir = getenv("DROVER_DSN_SAMPLES");
	struct dsn_report rep;
	char *longdiag;

	if (dir == NULL || dir[0] == '\0')
		skip();

	/* failed-full: two failures, ENVID, one ORCPT, RET not given. */
	struct dsn_rcpt two[] = {failed(0, "5.1.1", "550 5.1.1 <bob@example.org>: user unknown"),
	                         failed(1, "5.2.1", "550 5.2.1 mailbox disabled")};
	setup_env("alice@example.com");
	env.envid = (char *)"QQ+2B314159";
	rcpts[0].orcpt = (char *)"rfc822;Bob+2Bshop@example.org";
	rep = report(two, 2);
	write_sample(dir, "failed-full", &rep);

	/* failed-hdrs: RET=HDRS. */
	env.dsn_ret = SMTP_DSN_RET_HDRS;
	rep = report(two, 1);
	write_sample(dir, "failed-hdrs", &rep);

	/* failed-large: RET=FULL, but larger than return_max. */
	env.dsn_ret = SMTP_DSN_RET_FULL;
	rep = report(two, 1);
	rep.return_max = 64;
	write_sample(dir, "failed-large", &rep);

	/* delayed: a delay notice, no ENVID, no ORCPT. */
	struct dsn_rcpt delayed[] = {{.index = 1,
	                              .action = DSN_DELAYED,
	                              .status = "4.4.1",
	                              .remote_mta = "mx2.example.org",
	                              .diagnostic = "connect to mx2.example.org: timed out",
	                              .diagnostic_type = "X-Drover",
	                              .last_attempt_us = T0 + 3600 * USEC,
	                              .retry_until_us = T0 + 5 * 86400 * USEC}};
	setup_env("alice@example.com");
	rep = report(delayed, 1);
	write_sample(dir, "delayed", &rep);

	/* delivered: NOTIFY=SUCCESS. */
	struct dsn_rcpt ok[] = {{.index = 0,
	                         .action = DSN_DELIVERED,
	                         .status = "2.0.0",
	                         .remote_mta = "mx1.example.org",
	                         .diagnostic = "250 2.0.0 OK queued",
	                         .last_attempt_us = T0 + 5 * USEC}};
	rcpts[0].notify = SMTP_NOTIFY_SUCCESS;
	rep = report(ok, 1);
	write_sample(dir, "delivered", &rep);

	/* smtputf8-full and smtputf8-hdrs: the RFC 6533 types. */
	struct dsn_rcpt u[] = {failed(0, "5.1.1", "550 5.1.1 usuário desconhecido")};
	setup_env("álvaro@example.com");
	env.smtputf8 = true;
	env.envid = (char *)"U8";
	rcpts[0].address = (char *)"usuário@exemplo.br";
	rcpts[0].orcpt = (char *)"utf-8;usu\\x{E1}rio@exemplo.br";
	rep = report(u, 1);
	write_sample(dir, "smtputf8-full", &rep);
	env.dsn_ret = SMTP_DSN_RET_HDRS;
	write_sample(dir, "smtputf8-hdrs", &rep);

	/* postmaster: a bounce that bounced. */
	setup_env("");
	rep = report(two, 1);
	rep.postmaster = "postmaster@mta.example.net";
	write_sample(dir, "postmaster", &rep);

	/* long-diagnostic: folded, cut, no line over 998. */
	longdiag = xmalloc(6001);
	for (size_t i = 0; i < 6000; i++)
		longdiag[i] = i % 97 == 96 ? ' ' : i > 1000 && i < 2500 ? 'y' : 'a' + i % 26;
	longdiag[6000] = '\0';
	struct dsn_rcpt ld[] = {failed(0, "5.7.1", longdiag)};
	setup_env("alice@example.com");
	rep = report(ld, 1);
	write_sample(dir, "long-diagnostic", &rep);
	free(longdiag);

	/* mixed: one failed, one delayed. */
	struct dsn_rcpt mixed[] = {failed(0, "5.1.1", "550 5.1.1 unknown"), delayed[0]};
	rep = report(mixed, 2);
	write_sample(dir, "mixed", &rep);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_notify_defaults_to_failure_and_delay),
	    cmocka_unit_test(test_notify_never_silences_everything),
	    cmocka_unit_test(test_notify_success_only_when_asked),
	    cmocka_unit_test(test_route_to_the_sender_by_notify),
	    cmocka_unit_test(test_route_never_to_a_null_sender),
	    cmocka_unit_test_teardown(test_failure_returns_the_whole_message, teardown),
	    cmocka_unit_test_teardown(test_envid_comes_back_decoded, teardown),
	    cmocka_unit_test_teardown(test_orcpt_becomes_original_recipient, teardown),
	    cmocka_unit_test_teardown(test_ret_hdrs_returns_the_headers, teardown),
	    cmocka_unit_test_teardown(test_a_large_message_comes_back_as_headers, teardown),
	    cmocka_unit_test_teardown(test_huge_headers_are_cut_at_a_line, teardown),
	    cmocka_unit_test_teardown(test_delay_notice, teardown),
	    cmocka_unit_test_teardown(test_success_report, teardown),
	    cmocka_unit_test_teardown(test_mixed_report_is_headed_by_the_failure, teardown),
	    cmocka_unit_test_teardown(test_malformed_status_falls_back_to_the_class, teardown),
	    cmocka_unit_test_teardown(test_smtputf8_uses_the_global_types, teardown),
	    cmocka_unit_test_teardown(test_non_ascii_outside_smtputf8_is_replaced, teardown),
	    cmocka_unit_test_teardown(test_multiline_reply_is_one_field, teardown),
	    cmocka_unit_test_teardown(test_long_diagnostic_is_folded_and_cut, teardown),
	    cmocka_unit_test_teardown(test_postmaster_notice_for_a_null_sender, teardown),
	    cmocka_unit_test_teardown(test_boundary_never_occurs_in_the_parts, teardown),
	    cmocka_unit_test(test_same_inputs_same_octets),
	    cmocka_unit_test(test_bad_inputs_are_refused),
	    cmocka_unit_test_teardown(test_the_dsn_envelope, teardown),
	    cmocka_unit_test(test_samples),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
