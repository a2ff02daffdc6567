/* test_auth_senderid - Sender ID's Purported Responsible Address (RFC 4407 §2): which field is
 * chosen (Resent-Sender, Resent-From, Sender, From, in that order, with the trace-field rule of
 * step 1), and when a message has none (step 6): several Sender or From fields, several
 * mailboxes, a group, no domain, a domain literal, malformed addresses. */
#include "test_auth_spf_util.h"

static void
expect_pra(const char *headers, const char *field, const char *address)
{
	struct senderid_pra pra;
	char err[256] = "";

	if (senderid_pra(headers, strlen(headers), &pra, err, sizeof(err)) != 0)
		fail_msg("no PRA (%s) in:\n%s", err, headers);
	if (strcmp(pra.header, field) != 0 || strcmp(pra.address, address) != 0)
		fail_msg("PRA %s from %s, want %s from %s, in:\n%s", pra.address, pra.header,
		         address, field, headers);
}

static void
expect_none(const char *headers, const char *why)
{
	struct senderid_pra pra;
	char err[256] = "";

	if (senderid_pra(headers, strlen(headers), &pra, err, sizeof(err)) != -1)
		fail_msg("PRA %s from %s, want none (\"%s\") in:\n%s", pra.address, pra.header, why,
		         headers);
	if (strstr(err, why) == NULL)
		fail_msg("no PRA because \"%s\", want \"%s\"", err, why);
	assert_string_equal(pra.address, "");
}

static void
test_from_alone(void **state)
{
	expect_pra("From: john@example.com\r\nTo: x@example.net\r\n\r\n", "From",
	           "john@example.com");
	expect_pra("Subject: hi\nfrom: John Doe <john@example.com>\n\nFrom: body@example.org\n",
	           "From", "john@example.com");
	expect_pra("FROM : \"Doe, John\" <john.doe@example.com> (work)\r\n\r\n", "From",
	           "john.doe@example.com");
	/* folded, with comments and CFWS around the dots (RFC 5322 §4.4) */
	expect_pra("From: John (the (real) one)\r\n  <john . doe @ mail . example . com>\r\n",
	           "From", "john.doe@mail.example.com");
	expect_pra("From: \"john doe\"@example.com\r\n", "From", "\"john doe\"@example.com");
	expect_pra("From: <@relay.example.net,@b.example:user@example.com>\r\n", "From",
	           "user@example.com");
	expect_pra("From: user@example.com,\r\n", "From", "user@example.com"); /* obs-mbox-list */
	expect_pra("From: =?utf-8?q?J=C3=B6rg?= <j@example.com>\r\n", "From", "j@example.com");
	expect_pra("From: J\xc3\xb6rg <j@example.com>\r\n", "From", "j@example.com");
}

static void
test_sender_beats_from(void **state)
{
	expect_pra("From: a@example.com\r\nSender: list@lists.example.org\r\n", "Sender",
	           "list@lists.example.org");
	/* An empty Sender (white space, comments) is not there. */
	expect_pra("From: a@example.com\r\nSender: (nobody)  \r\n", "From", "a@example.com");
	/* Step 3: two Sender fields make the message ill-formed, whatever From says. */
	expect_none("From: a@example.com\r\nSender: s1@example.org\r\nSender: s2@example.org\r\n",
	            "2 Sender fields");
}

static void
test_resent_fields(void **state)
{
	/* Step 2: Resent-From beats Sender and From. */
	expect_pra(
	    "Resent-From: fwd@example.net\r\nFrom: a@example.com\r\nSender: s@example.org\r\n",
	    "Resent-From", "fwd@example.net");
	/* Step 1: the first Resent-Sender, with its own Resent-From around it. */
	expect_pra("Resent-Sender: rs@example.net\r\nResent-From: rf@example.net\r\n"
	           "From: a@example.com\r\n",
	           "Resent-Sender", "rs@example.net");
	expect_pra("Resent-From: rf@example.net\r\nResent-Sender: rs@example.net\r\n"
	           "From: a@example.com\r\n",
	           "Resent-Sender", "rs@example.net");
	/* ...but a Resent-From above it, separated by trace fields, is a later resending: the
	 * Resent-Sender belongs to an older one. */
	expect_pra("Resent-From: newer@example.net\r\nReceived: from x by y; Sun, 1 Jan 2023\r\n"
	           "Resent-Sender: older@example.org\r\nResent-From: older-from@example.org\r\n"
	           "From: a@example.com\r\n",
	           "Resent-From", "newer@example.net");
	expect_pra("Resent-From: newer@example.net\r\nReturn-Path: <bounce@example.net>\r\n"
	           "Resent-Sender: older@example.org\r\n",
	           "Resent-From", "newer@example.net");
	/* Empty resent fields are skipped. */
	expect_pra("Resent-Sender:\r\nResent-From: (none)\r\nFrom: a@example.com\r\n", "From",
	           "a@example.com");
	expect_pra("resent-sender: <rs@example.net>\r\n", "Resent-Sender", "rs@example.net");
}

static void
test_no_pra(void **state)
{
	expect_none("To: x@example.net\r\nSubject: hi\r\n\r\n", "no Resent-Sender");
	expect_none("", "no Resent-Sender");
	expect_none("From: a@example.com\r\nFrom: b@example.com\r\n", "2 From fields");
	expect_none("From: a@example.com, b@example.com\r\n", "more than one mailbox");
	expect_none("From: A <a@example.com>, B <b@example.com>\r\n", "more than one mailbox");
	expect_none("From: undisclosed-recipients:;\r\n", "a group");
	expect_none("From: team: a@example.com;\r\n", "a group");
	expect_none("From: john\r\n", "without \"@domain\"");
	expect_none("From: @example.com\r\n", "without a local-part");
	expect_none("From: john@[192.0.2.1]\r\n", "domain literal");
	expect_none("From: john@\r\n", "malformed domain");
	expect_none("From: john@example..com\r\n", "malformed domain");
	expect_none("From: john.@example.com\r\n", "ending with a dot");
	expect_none("From: John <john@example.com\r\n", "without its '>'");
	expect_none("From: <john@example.com> trailing\r\n", "words after");
	expect_none("From: John (unclosed <john@example.com>\r\n", "unterminated comment");
	expect_none("From: \"unclosed <john@example.com>\r\n", "unterminated quoted string");
	expect_none("From: john\\doe@example.com\r\n", "a character no address holds");
	expect_none("From: \"a\x01b\"@example.com\r\n", "a control character");
	{
		/* found by fuzz_auth_spf: a NUL inside a quoted local-part */
		static const char h[] = "From: \"n\0v=spf1\"@ pt.r/";
		struct senderid_pra pra;
		char err[128];

		assert_int_equal(senderid_pra(h, sizeof(h) - 1, &pra, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "a control character"));
	}
	/* the malformed field is the PRA: no falling back to From */
	expect_none("Sender: not an address\r\nFrom: a@example.com\r\n", "Sender:");
}

static void
test_header_section_bounds(void **state)
{
	/* Fields after the empty line are the body. */
	expect_none("To: x@example.net\r\n\r\nFrom: a@example.com\r\n", "no Resent-Sender");
	/* A continuation line with no field before it is ignored. */
	expect_pra("  stray continuation\r\nFrom: a@example.com\r\n", "From", "a@example.com");
	/* No final line end. */
	expect_pra("From: a@example.com", "From", "a@example.com");
	/* A line without a colon is not a field. */
	expect_pra("garbage line\r\nFrom: a@example.com\r\n", "From", "a@example.com");
}

static void
test_long_and_many(void **state)
{
	/* 2000 fields before From: only the first 1000 are read (bounded work). */
	size_t n = 0, cap = 2000 * 16 + 64;
	char *h = xmalloc(cap);

	for (int i = 0; i < 2000; i++)
		n += (size_t)snprintf(h + n, cap - n, "X-F%d: v\r\n", i);
	n += (size_t)snprintf(h + n, cap - n, "From: a@example.com\r\n");
	expect_none(h, "no Resent-Sender");
	free(h);

	/* An address longer than SENDERID_PRA_MAX. */
	h = xmalloc(SENDERID_PRA_MAX + 64);
	n = (size_t)snprintf(h, SENDERID_PRA_MAX + 64, "From: ");
	memset(h + n, 'a', SENDERID_PRA_MAX);
	n += SENDERID_PRA_MAX;
	snprintf(h + n, 64, "@example.com\r\n");
	expect_none(h, "too long");
	free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_from_alone),
	    cmocka_unit_test(test_sender_beats_from),
	    cmocka_unit_test(test_resent_fields),
	    cmocka_unit_test(test_no_pra),
	    cmocka_unit_test(test_header_section_bounds),
	    cmocka_unit_test(test_long_and_many),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
