/* ESMTP parameters of MAIL and RCPT: each one valid and invalid, repeated, and sent when the
 * server did not offer its extension (RFC 1869: 555 5.5.4). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

static const struct smtp_offer ehlo = {
    .size = true, .eightbitmime = true, .smtputf8 = true, .dsn = true, .binarymime = false};
static const struct smtp_offer helo; /* HELO: no extensions at all */

static struct smtp_mail_params mp;
static struct smtp_rcpt_params rp;
static struct smtp_error err;

static int
mail(const char *params)
{
	return smtp_mail_params_parse(params, &ehlo, &mp, &err);
}

static int
rcpt(const char *params)
{
	return smtp_rcpt_params_parse(params, &ehlo, &rp, &err);
}

static void
assert_refused(int r, int code, const char *status)
{
	assert_int_equal(r, -1);
	assert_int_equal(err.code, code);
	assert_string_equal(err.status, status);
	assert_non_null(err.text);
	assert_null(strpbrk(err.text, "\r\n"));
}

static void
test_no_parameters(void **state)
{
	assert_int_equal(mail(""), 0);
	assert_false(mp.size_given);
	assert_int_equal(mp.body, SMTP_BODY_7BIT);
	assert_false(mp.smtputf8);
	assert_int_equal(mp.ret, SMTP_DSN_RET_UNSPEC);
	assert_false(mp.envid_given);
	assert_int_equal(rcpt(""), 0);
	assert_int_equal(rp.notify, 0);
	assert_false(rp.orcpt_given);
	assert_int_equal(smtp_mail_params_parse(NULL, &ehlo, &mp, &err), 0);
	assert_int_equal(smtp_rcpt_params_parse("   ", &ehlo, &rp, &err), 0);
}

static void
test_all_mail_parameters_together(void **state)
{
	assert_int_equal(mail("SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=QQ314159"), 0);
	assert_true(mp.size_given);
	assert_int_equal(mp.size, 12345);
	assert_int_equal(mp.body, SMTP_BODY_8BITMIME);
	assert_true(mp.smtputf8);
	assert_int_equal(mp.ret, SMTP_DSN_RET_HDRS);
	assert_true(mp.envid_given);
	assert_string_equal(mp.envid, "QQ314159");
}

static void
test_keywords_and_values_are_case_insensitive(void **state)
{
	assert_int_equal(mail("size=1 body=8bitmime smtputf8 ret=full"), 0);
	assert_int_equal(mp.size, 1);
	assert_int_equal(mp.body, SMTP_BODY_8BITMIME);
	assert_true(mp.smtputf8);
	assert_int_equal(mp.ret, SMTP_DSN_RET_FULL);
	assert_int_equal(rcpt("notify=success,Delay orcpt=RFC822;a@b.example"), 0);
	assert_int_equal(rp.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_DELAY);
}

static void
test_size(void **state)
{
	assert_int_equal(mail("SIZE=0"), 0);
	assert_int_equal(mp.size, 0);
	assert_int_equal(mail("SIZE=18446744073709551615"), 0);
	assert_int_equal(mp.size, UINT64_MAX);
	assert_int_equal(mail("SIZE=00000000000000000001"), 0); /* 20 digits */
	assert_int_equal(mp.size, 1);

	static const char *bad[] = {"SIZE",
	                            "SIZE=",
	                            "SIZE=-1",
	                            "SIZE=+1",
	                            "SIZE=1k",
	                            "SIZE=0x10",
	                            "SIZE= 1",
	                            "SIZE=18446744073709551616",
	                            "SIZE=99999999999999999999",
	                            "SIZE=000000000000000000001",
	                            "SIZE=1.5"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(mail(bad[i]), -1);
		assert_int_equal(err.code, 501);
		assert_string_equal(err.status, "5.5.4");
		assert_false(mp.size_given); /* nothing half-parsed is left */
	}
}

static void
test_body(void **state)
{
	struct smtp_offer binary = ehlo;

	assert_int_equal(mail("BODY=7BIT"), 0);
	assert_int_equal(mp.body, SMTP_BODY_7BIT);
	assert_int_equal(mail("BODY=8BITMIME"), 0);
	assert_int_equal(mp.body, SMTP_BODY_8BITMIME);
	/* BINARYMIME belongs to CHUNKING's BINARYMIME extension (RFC 3030). */
	assert_refused(mail("BODY=BINARYMIME"), 555, "5.5.4");
	binary.binarymime = true;
	assert_int_equal(smtp_mail_params_parse("BODY=BINARYMIME", &binary, &mp, &err), 0);
	assert_int_equal(mp.body, SMTP_BODY_BINARYMIME);

	assert_refused(mail("BODY"), 501, "5.5.4");
	assert_refused(mail("BODY=8BIT"), 501, "5.5.4");
	assert_refused(mail("BODY=8BITMIMEX"), 501, "5.5.4");
	assert_refused(mail("BODY=UTF8"), 501, "5.5.4");
}

static void
test_smtputf8_takes_no_value(void **state)
{
	assert_int_equal(mail("SMTPUTF8"), 0);
	assert_true(mp.smtputf8);
	assert_refused(mail("SMTPUTF8=yes"), 501, "5.5.4");
}

static void
test_ret(void **state)
{
	assert_int_equal(mail("RET=FULL"), 0);
	assert_int_equal(mp.ret, SMTP_DSN_RET_FULL);
	assert_int_equal(mail("RET=HDRS"), 0);
	assert_int_equal(mp.ret, SMTP_DSN_RET_HDRS);
	assert_refused(mail("RET"), 501, "5.5.4");
	assert_refused(mail("RET=NONE"), 501, "5.5.4");
	assert_refused(mail("RET=FULLHDRS"), 501, "5.5.4");
}

static void
test_envid(void **state)
{
	char buf[400], val[320];

	assert_int_equal(mail("ENVID=abc+2Bdef+3D"), 0);
	assert_string_equal(mp.envid, "abc+2Bdef+3D"); /* kept as received */

	/* 100 octets decoded is the limit, however they are encoded. */
	memset(val, 'x', 100);
	val[100] = '\0';
	snprintf(buf, sizeof(buf), "ENVID=%s", val);
	assert_int_equal(mail(buf), 0);
	for (int i = 0; i < 100; i++)
		memcpy(val + 3 * i, "+41", 3);
	val[300] = '\0';
	snprintf(buf, sizeof(buf), "ENVID=%s", val);
	assert_int_equal(mail(buf), 0);
	assert_int_equal(strlen(mp.envid), 300);
	snprintf(buf, sizeof(buf), "ENVID=%sx", val);
	assert_refused(mail(buf), 501, "5.5.4");

	assert_refused(mail("ENVID"), 501, "5.5.4");
	assert_refused(mail("ENVID=a+2b"), 501, "5.5.4"); /* hex must be upper-case */
	assert_refused(mail("ENVID=a+2"), 501, "5.5.4");
	assert_refused(mail("ENVID=a+"), 501, "5.5.4");
	assert_refused(mail("ENVID=a+GG"), 501, "5.5.4");
	assert_refused(mail("ENVID=\xc3\xa9"), 501, "5.5.4");
	/* '=' inside a value is not even esmtp-value syntax. */
	assert_refused(mail("ENVID=a=b"), 501, "5.5.4");
}

static void
test_notify(void **state)
{
	assert_int_equal(rcpt("NOTIFY=NEVER"), 0);
	assert_int_equal(rp.notify, SMTP_NOTIFY_NEVER);
	assert_int_equal(rcpt("NOTIFY=SUCCESS"), 0);
	assert_int_equal(rp.notify, SMTP_NOTIFY_SUCCESS);
	assert_int_equal(rcpt("NOTIFY=FAILURE,DELAY"), 0);
	assert_int_equal(rp.notify, SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);
	assert_int_equal(rcpt("NOTIFY=SUCCESS,FAILURE,DELAY"), 0);
	assert_int_equal(rp.notify, SMTP_NOTIFY_SUCCESS | SMTP_NOTIFY_FAILURE | SMTP_NOTIFY_DELAY);

	static const char *bad[] = {"NOTIFY",
	                            "NOTIFY=",
	                            "NOTIFY=NEVER,SUCCESS",
	                            "NOTIFY=DELAY,NEVER",
	                            "NOTIFY=ALWAYS",
	                            "NOTIFY=SUCCESS,",
	                            "NOTIFY=,SUCCESS",
	                            "NOTIFY=SUCCESS,,DELAY",
	                            "NOTIFY=SUCCESS;DELAY",
	                            "NOTIFY=NEVERMORE"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_refused(rcpt(bad[i]), 501, "5.5.4");
		assert_int_equal(rp.notify, 0);
	}
}

static void
test_orcpt(void **state)
{
	char buf[600], val[520];

	assert_int_equal(rcpt("ORCPT=rfc822;bob@example.com"), 0);
	assert_true(rp.orcpt_given);
	assert_string_equal(rp.orcpt, "rfc822;bob@example.com");
	assert_int_equal(rcpt("ORCPT=utf-8;j\\x{00F6}rg@example.com"), 0);
	assert_int_equal(rcpt("ORCPT=rfc822;bob+2Btag@example.com"), 0);

	/* 500 octets as sent is the limit. */
	memcpy(val, "rfc822;", 7);
	memset(val + 7, 'a', 493);
	val[500] = '\0';
	snprintf(buf, sizeof(buf), "ORCPT=%s", val);
	assert_int_equal(rcpt(buf), 0);
	assert_int_equal(strlen(rp.orcpt), 500);
	snprintf(buf, sizeof(buf), "ORCPT=%sa", val);
	assert_refused(rcpt(buf), 501, "5.5.4");

	static const char *bad[] = {"ORCPT",
	                            "ORCPT=",
	                            "ORCPT=bob@example.com",
	                            "ORCPT=;bob@b",
	                            "ORCPT=rfc822;",
	                            "ORCPT=rfc(822);bob@b",
	                            "ORCPT=rfc.822;bob@b",
	                            "ORCPT=rfc822;a+2",
	                            "ORCPT=rfc822;a+zz",
	                            "ORCPT=rfc822;a=b",
	                            "ORCPT=rfc822;\xc3\xa9@b"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_refused(rcpt(bad[i]), 501, "5.5.4");
		assert_false(rp.orcpt_given);
	}
}

static void
test_repeated_parameters_are_501(void **state)
{
	assert_refused(mail("SIZE=1 SIZE=1"), 501, "5.5.4");
	assert_refused(mail("BODY=7BIT body=8BITMIME"), 501, "5.5.4");
	assert_refused(mail("SMTPUTF8 SMTPUTF8"), 501, "5.5.4");
	assert_refused(mail("RET=FULL RET=HDRS"), 501, "5.5.4");
	assert_refused(mail("ENVID=a ENVID=a"), 501, "5.5.4");
	assert_refused(rcpt("NOTIFY=NEVER NOTIFY=NEVER"), 501, "5.5.4");
	assert_refused(rcpt("ORCPT=rfc822;a@b ORCPT=rfc822;a@b"), 501, "5.5.4");
}

static void
test_unknown_parameters_are_555(void **state)
{
	assert_refused(mail("FOO=bar"), 555, "5.5.4");
	assert_refused(mail("SIZE=1 XFOO"), 555, "5.5.4");
	assert_refused(mail("AUTH=<>"), 555, "5.5.4");
	assert_refused(mail("NOTIFY=NEVER"), 555, "5.5.4"); /* a RCPT parameter */
	assert_refused(rcpt("SIZE=1"), 555, "5.5.4");       /* a MAIL parameter */
	assert_refused(rcpt("RET=FULL"), 555, "5.5.4");
	assert_refused(mail("SIZES=1"), 555, "5.5.4");
	assert_refused(mail("X-UNKNOWN-\xc3\xa9=1"), 501, "5.5.4"); /* not even a keyword */
}

static void
test_parameters_of_extensions_not_offered_are_555(void **state)
{
	assert_refused(smtp_mail_params_parse("SIZE=1", &helo, &mp, &err), 555, "5.5.4");
	assert_refused(smtp_mail_params_parse("BODY=8BITMIME", &helo, &mp, &err), 555, "5.5.4");
	assert_refused(smtp_mail_params_parse("BODY=7BIT", &helo, &mp, &err), 555, "5.5.4");
	assert_refused(smtp_mail_params_parse("SMTPUTF8", &helo, &mp, &err), 555, "5.5.4");
	assert_refused(smtp_mail_params_parse("RET=FULL", &helo, &mp, &err), 555, "5.5.4");
	assert_refused(smtp_mail_params_parse("ENVID=x", &helo, &mp, &err), 555, "5.5.4");
	assert_refused(smtp_rcpt_params_parse("NOTIFY=NEVER", &helo, &rp, &err), 555, "5.5.4");
	assert_refused(smtp_rcpt_params_parse("ORCPT=rfc822;a@b", &helo, &rp, &err), 555, "5.5.4");
	/* Without an offer at all nothing is accepted, but no parameters is fine. */
	assert_refused(smtp_mail_params_parse("SIZE=1", NULL, &mp, &err), 555, "5.5.4");
	assert_int_equal(smtp_mail_params_parse("", &helo, &mp, &err), 0);

	struct smtp_offer no_dsn = ehlo;
	no_dsn.dsn = false;
	assert_int_equal(smtp_mail_params_parse("SIZE=1 BODY=8BITMIME", &no_dsn, &mp, &err), 0);
	assert_refused(smtp_rcpt_params_parse("NOTIFY=NEVER", &no_dsn, &rp, &err), 555, "5.5.4");
}

static void
test_parameter_syntax(void **state)
{
	/* Several spaces between parameters and trailing spaces are tolerated. */
	assert_int_equal(mail("SIZE=1   BODY=7BIT  "), 0);
	assert_int_equal(mp.size, 1);

	static const char *bad[] = {"=1",     "-SIZE=1", "SIZE==1",   "SIZE=1=2",
	                            "SIZE:1", "SI_ZE=1", "SIZE=\x01", "SMTPUTF8\tSIZE=1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refused(mail(bad[i]), 501, "5.5.4");
}

static void
test_utf8_sender_needs_the_smtputf8_parameter(void **state)
{
	/* How a session handles MAIL: SMTPUTF8 comes after the path it licenses. */
	const char *line = "MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8 SIZE=10";
	struct smtp_command cmd;
	struct smtp_path path;
	const char *params;

	assert_int_equal(smtp_command_parse(line, strlen(line), &cmd, &err), 0);
	assert_int_equal(smtp_path_parse(cmd.args, true, true, ehlo.smtputf8, &path, &params, &err),
	                 0);
	assert_int_equal(mail(params), 0);
	assert_true(path.utf8 && mp.smtputf8);
	assert_int_equal(mp.size, 10);

	/* Without the parameter the same path is the session's 553 5.6.7. */
	line = "MAIL FROM:<j\xc3\xb6rg@example.com> SIZE=10";
	assert_int_equal(smtp_command_parse(line, strlen(line), &cmd, &err), 0);
	assert_int_equal(smtp_path_parse(cmd.args, true, true, ehlo.smtputf8, &path, &params, &err),
	                 0);
	assert_int_equal(mail(params), 0);
	assert_true(path.utf8 && !mp.smtputf8);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_no_parameters),
	    cmocka_unit_test(test_all_mail_parameters_together),
	    cmocka_unit_test(test_keywords_and_values_are_case_insensitive),
	    cmocka_unit_test(test_size),
	    cmocka_unit_test(test_body),
	    cmocka_unit_test(test_smtputf8_takes_no_value),
	    cmocka_unit_test(test_ret),
	    cmocka_unit_test(test_envid),
	    cmocka_unit_test(test_notify),
	    cmocka_unit_test(test_orcpt),
	    cmocka_unit_test(test_repeated_parameters_are_501),
	    cmocka_unit_test(test_unknown_parameters_are_555),
	    cmocka_unit_test(test_parameters_of_extensions_not_offered_are_555),
	    cmocka_unit_test(test_parameter_syntax),
	    cmocka_unit_test(test_utf8_sender_needs_the_smtputf8_parameter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
