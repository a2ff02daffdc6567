/* Command lines as clients send them: every verb, any case, and the lines a server must
 * refuse before looking at their arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

static int
parse(const char *line, struct smtp_command *cmd, struct smtp_error *err)
{
	return smtp_command_parse(line, strlen(line), cmd, err);
}

static void
expect_error(const char *line, size_t len, int code, const char *status)
{
	struct smtp_command cmd;
	struct smtp_error err = {0};

	assert_int_equal(smtp_command_parse(line, len, &cmd, &err), -1);
	assert_int_equal(err.code, code);
	assert_string_equal(err.status, status);
	assert_non_null(err.text);
	assert_null(strpbrk(err.text, "\r\n"));
}

static void
test_every_verb_is_recognised(void **state)
{
	static const struct {
		const char *line;
		enum smtp_verb verb;
		const char *name, *args;
	} cases[] = {
	    {"EHLO client.example", SMTP_EHLO, "EHLO", "client.example"},
	    {"HELO client.example", SMTP_HELO, "HELO", "client.example"},
	    {"MAIL FROM:<a@example.com>", SMTP_MAIL, "MAIL", "<a@example.com>"},
	    {"RCPT TO:<b@example.com>", SMTP_RCPT, "RCPT", "<b@example.com>"},
	    {"DATA", SMTP_DATA, "DATA", ""},
	    {"BDAT 1000 LAST", SMTP_BDAT, "BDAT", "1000 LAST"},
	    {"RSET", SMTP_RSET, "RSET", ""},
	    {"NOOP", SMTP_NOOP, "NOOP", ""},
	    {"QUIT", SMTP_QUIT, "QUIT", ""},
	    {"VRFY postmaster", SMTP_VRFY, "VRFY", "postmaster"},
	    {"EXPN staff", SMTP_EXPN, "EXPN", "staff"},
	    {"HELP", SMTP_HELP, "HELP", ""},
	    {"STARTTLS", SMTP_STARTTLS, "STARTTLS", ""},
	    {"AUTH PLAIN dGVzdAB0ZXN0AHRlc3Q=", SMTP_AUTH, "AUTH", "PLAIN dGVzdAB0ZXN0AHRlc3Q="},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct smtp_command cmd;
		struct smtp_error err;

		assert_int_equal(parse(cases[i].line, &cmd, &err), 0);
		assert_int_equal(cmd.verb, cases[i].verb);
		assert_string_equal(cmd.verb_text, cases[i].name);
		assert_string_equal(cmd.args, cases[i].args);
		assert_string_equal(smtp_verb_name(cmd.verb), cases[i].name);
	}
}

static void
test_verbs_are_case_insensitive(void **state)
{
	struct smtp_command cmd;
	struct smtp_error err;

	assert_int_equal(parse("ehlo x.example", &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_EHLO);
	assert_string_equal(cmd.verb_text, "EHLO");
	assert_int_equal(parse("StartTls", &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_STARTTLS);
	assert_int_equal(parse("mail from:<a@b.example>", &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_MAIL);
	assert_string_equal(cmd.args, "<a@b.example>");
	assert_int_equal(parse("rCpT tO:<a@b.example>", &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_RCPT);
}

static void
test_arguments_skip_the_spaces_after_the_verb(void **state)
{
	struct smtp_command cmd;
	struct smtp_error err;

	assert_int_equal(parse("HELO   spaced.example", &cmd, &err), 0);
	assert_string_equal(cmd.args, "spaced.example");
	assert_int_equal(parse("QUIT ", &cmd, &err), 0);
	assert_string_equal(cmd.args, "");
}

static void
test_mail_from_keeps_what_follows_the_colon(void **state)
{
	struct smtp_command cmd;
	struct smtp_error err;

	/* The one space some clients put before "<" is for the path parser to judge. */
	assert_int_equal(parse("MAIL FROM: <a@b.example>", &cmd, &err), 0);
	assert_string_equal(cmd.args, " <a@b.example>");
	assert_int_equal(parse("MAIL FROM:", &cmd, &err), 0);
	assert_string_equal(cmd.args, "");
	assert_int_equal(parse("RCPT TO:<c@d.example> NOTIFY=NEVER", &cmd, &err), 0);
	assert_string_equal(cmd.args, "<c@d.example> NOTIFY=NEVER");
}

static void
test_malformed_mail_and_rcpt_are_501(void **state)
{
	static const char *lines[] = {
	    "MAIL",
	    "MAIL FROM",
	    "MAIL FROM<a@b.example>",
	    "MAIL TO:<a@b.example>",
	    "MAIL  FROM:<a@b>",
	    "MAILFROM:<a@b>",
	    "RCPT",
	    "RCPT TO",
	    "RCPT FROM:<a@b>",
	    "RCPT TO <a@b>",
	};
	struct smtp_command cmd;
	struct smtp_error err;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int r = parse(lines[i], &cmd, &err);

		assert_int_equal(r, -1);
		if (strncmp(lines[i], "MAILFROM", 8) == 0) {
			assert_int_equal(err.code, 500); /* not even a verb */
		} else {
			assert_int_equal(err.code, 501);
			assert_string_equal(err.status, "5.5.4");
		}
	}
	/* The verb is still known, so the session can log and count it. */
	assert_int_equal(parse("RCPT", &cmd, &err), -1);
	assert_int_equal(cmd.verb, SMTP_RCPT);
}

static void
test_unknown_commands_are_500(void **state)
{
	static const char *lines[] = {"",         " ",       "FOO",     "MAILX FROM:<a@b>",
	                              "EHL",      "EHLOO x", " EHLO x", "\xc3\xa9HLO x",
	                              "STARTTLSX"};
	struct smtp_command cmd;

	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		expect_error(lines[i], strlen(lines[i]), 500, "5.5.2");
		smtp_command_parse(lines[i], strlen(lines[i]), &cmd, NULL);
		assert_int_equal(cmd.verb, SMTP_UNKNOWN);
		assert_string_equal(cmd.verb_text, "");
	}
	assert_string_equal(smtp_verb_name(SMTP_UNKNOWN), "?");
	assert_string_equal(smtp_verb_name(SMTP_VERB_COUNT), "?");
	assert_string_equal(smtp_verb_name((enum smtp_verb) - 1), "?");
}

static void
test_control_characters_are_refused(void **state)
{
	/* NUL inside the line: a C-string consumer would see only "MAIL FROM:<a@b>". */
	static const char nul[] = "MAIL FROM:<a@b>\0RCPT TO:<c@d>";

	expect_error(nul, sizeof(nul) - 1, 500, "5.5.2");
	expect_error("NOOP\r", 5, 500, "5.5.2");
	expect_error("NOOP\rQUIT", 9, 500, "5.5.2");
	expect_error("EHLO\tx.example", 14, 500, "5.5.2");
	expect_error("EHLO x\x1b[2J", 10, 500, "5.5.2");
	expect_error("NOOP \x7f", 6, 500, "5.5.2");
	expect_error("DATA\n", 5, 500, "5.5.2");
}

static void
test_len_bounds_the_line(void **state)
{
	struct smtp_command cmd;
	struct smtp_error err;

	/* Only the first four bytes are the line: "QUIT". */
	assert_int_equal(smtp_command_parse("QUITTER", 4, &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_QUIT);
	/* Eight bit bytes in arguments are not the command parser's concern. */
	assert_int_equal(parse("VRFY j\xc3\xb6rg", &cmd, &err), 0);
	assert_int_equal(cmd.verb, SMTP_VRFY);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_verb_is_recognised),
	    cmocka_unit_test(test_verbs_are_case_insensitive),
	    cmocka_unit_test(test_arguments_skip_the_spaces_after_the_verb),
	    cmocka_unit_test(test_mail_from_keeps_what_follows_the_colon),
	    cmocka_unit_test(test_malformed_mail_and_rcpt_are_501),
	    cmocka_unit_test(test_unknown_commands_are_500),
	    cmocka_unit_test(test_control_characters_are_refused),
	    cmocka_unit_test(test_len_bounds_the_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
