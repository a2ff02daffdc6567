/* test_auth_dmarc_record - DMARC policy records as parsed (RFC 7489 §6.3, §6.4, §6.6.3): what
 * is a DMARC record at all, every tag and its defaults, the rua= fallback for a missing or bad
 * p=, the errors a publisher is told about, and records built to hurt a parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/dmarc_internal.h"

static struct dmarc_record
parse_ok(const char *text)
{
	struct dmarc_record rec;
	char err[256] = "x";

	if (dmarc_record_parse(text, strlen(text), &rec, err, sizeof(err)) != 1)
		fail_msg("\"%s\": %s", text, err);
	if (!rec.p_fallback && err[0] != '\0')
		fail_msg("\"%s\": valid, yet err says \"%s\"", text, err);
	return rec;
}

static void
parse_error(const char *text, const char *why)
{
	struct dmarc_record rec;
	char err[256] = "";

	if (dmarc_record_parse(text, strlen(text), &rec, err, sizeof(err)) != -1)
		fail_msg("\"%s\" parsed, want an error saying \"%s\"", text, why);
	if (strstr(err, why) == NULL)
		fail_msg("\"%s\": \"%s\", want \"%s\"", text, err, why);
	/* Nothing half-read is left behind. */
	assert_int_equal(rec.p, DMARC_P_NONE);
	assert_int_equal(rec.nrua, 0);
	assert_string_equal(rec.rua, "");
}

static void
not_dmarc(const char *text)
{
	struct dmarc_record rec;
	char err[256] = "x";

	if (dmarc_record_parse(text, strlen(text), &rec, err, sizeof(err)) != 0)
		fail_msg("\"%s\" taken for a DMARC record (%s)", text, err);
	assert_string_equal(err, "");
}

static void
test_what_is_a_dmarc_record(void **state)
{
	not_dmarc("");
	not_dmarc("v=spf1 -all");
	not_dmarc("v=DMARC2; p=reject");
	not_dmarc("v=dmarc1; p=reject"); /* §6.3: "MUST match precisely" */
	not_dmarc("v=DMARC10; p=reject");
	not_dmarc("v=DMARC1x; p=reject");
	not_dmarc(" v=DMARC1; p=reject"); /* v= first: nothing before it */
	not_dmarc("p=reject; v=DMARC1");
	not_dmarc("x=1; v=DMARC1; p=reject");
	not_dmarc("v=");
	not_dmarc("v");

	assert_int_equal(dmarc_version_len("v=DMARC1", 8), 8);
	assert_int_equal(dmarc_version_len("v=DMARC1;p=none", 15), 8);
	assert_int_equal(dmarc_version_len("V = DMARC1 ; p=none", 19), 10);
	assert_int_equal(dmarc_version_len("v=DMARC1\tp", 10), 8);
	assert_int_equal(dmarc_version_len("v=DMARC1", 7), 0); /* len is the truth */

	/* A DMARC record by its version, malformed after it: counted, and an error. */
	parse_error("v=DMARC1 p=reject", "v=DMARC1 must be followed by \";\"");
	parse_error("v=DMARC1", "p= is missing");
	parse_error("v=DMARC1;", "p= is missing");
}

static void
test_minimal_and_defaults(void **state)
{
	struct dmarc_record r = parse_ok("v=DMARC1; p=reject");

	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_int_equal(r.sp, DMARC_P_REJECT); /* §6.3: sp defaults to p */
	assert_false(r.sp_given);
	assert_int_equal(r.adkim, DMARC_ALIGN_RELAXED);
	assert_int_equal(r.aspf, DMARC_ALIGN_RELAXED);
	assert_int_equal(r.pct, 100);
	assert_int_equal(r.ri, 86400);
	assert_int_equal(r.fo, DMARC_FO_0);
	assert_true(r.rf_afrf);
	assert_false(r.p_fallback);
	assert_int_equal(r.nrua, 0);
	assert_int_equal(r.nruf, 0);
	assert_string_equal(r.rua, "");

	r = parse_ok("v=DMARC1;p=none");
	assert_int_equal(r.p, DMARC_P_NONE);
	r = parse_ok("v=DMARC1; p=quarantine;");
	assert_int_equal(r.p, DMARC_P_QUARANTINE);
	r = parse_ok("v=DMARC1 ;\tp = Reject ;  "); /* white space around everything */
	assert_int_equal(r.p, DMARC_P_REJECT);
	r = parse_ok("V=DMARC1; P=REJECT"); /* ABNF literals are case-insensitive */
	assert_int_equal(r.p, DMARC_P_REJECT);
	r = parse_ok("v=DMARC1;; p=none;;"); /* empty tag-specs say nothing */
	assert_int_equal(r.p, DMARC_P_NONE);
}

static void
test_every_tag(void **state)
{
	struct dmarc_record r =
	    parse_ok("v=DMARC1; p=quarantine; sp=reject; adkim=s; aspf=S; pct=20; ri=3600; "
	             "fo=1:d : S; rf=afrf:iodef; rua=mailto:agg@example.com, "
	             "https://report.example.net/dmarc!10m; ruf=mailto:fail@example.com!500k");

	assert_int_equal(r.p, DMARC_P_QUARANTINE);
	assert_int_equal(r.sp, DMARC_P_REJECT);
	assert_true(r.sp_given);
	assert_int_equal(r.adkim, DMARC_ALIGN_STRICT);
	assert_int_equal(r.aspf, DMARC_ALIGN_STRICT);
	assert_int_equal(r.pct, 20);
	assert_int_equal(r.ri, 3600);
	assert_int_equal(r.fo, DMARC_FO_1 | DMARC_FO_D | DMARC_FO_S);
	assert_true(r.rf_afrf);
	assert_int_equal(r.nrua, 2);
	assert_string_equal(r.rua, "mailto:agg@example.com, https://report.example.net/dmarc!10m");
	assert_int_equal(r.nruf, 1);
	assert_string_equal(r.ruf, "mailto:fail@example.com!500k");

	r = parse_ok("v=DMARC1; p=none; pct=0; ri=0; fo=0");
	assert_int_equal(r.pct, 0);
	assert_int_equal(r.ri, 0);
	assert_int_equal(r.fo, DMARC_FO_0);
	r = parse_ok("v=DMARC1; p=none; pct=100; ri=4294967295");
	assert_int_equal(r.pct, 100);
	assert_int_equal(r.ri, 4294967295u);
	r = parse_ok("v=DMARC1; p=none; pct=050");
	assert_int_equal(r.pct, 50);
	r = parse_ok("v=DMARC1; p=none; rf=iodef"); /* §6.3: an unknown format is ignored */
	assert_false(r.rf_afrf);
	r = parse_ok("v=DMARC1; p=none; rua=mailto:a%2Cb@example.com,mailto:c@example.com");
	assert_int_equal(r.nrua, 2);
	/* Tags in any order after v=; unknown tags (and their values) ignored (§6.3). */
	r = parse_ok(
	    "v=DMARC1; rua=mailto:a@example.com; np=reject; psd=y; x_y=\x01\xff; p=reject");
	assert_int_equal(r.p, DMARC_P_REJECT);
	assert_int_equal(r.nrua, 1);
}

static void
test_rua_fallback(void **state)
{
	struct dmarc_record r;
	char err[256];

	/* §6.6.3: a record without a valid p= but with a usable rua= is read as p=none. */
	const char *text = "v=DMARC1; rua=mailto:dmarc@example.com";
	assert_int_equal(dmarc_record_parse(text, strlen(text), &r, err, sizeof(err)), 1);
	assert_true(r.p_fallback);
	assert_int_equal(r.p, DMARC_P_NONE);
	assert_int_equal(r.sp, DMARC_P_NONE);
	assert_non_null(strstr(err, "p= is missing"));
	assert_non_null(strstr(err, "read as p=none"));

	text = "v=DMARC1; p=rejected; sp=reject; rua=mailto:dmarc@example.com";
	assert_int_equal(dmarc_record_parse(text, strlen(text), &r, err, sizeof(err)), 1);
	assert_true(r.p_fallback);
	assert_int_equal(r.p, DMARC_P_NONE);
	assert_int_equal(r.sp, DMARC_P_NONE); /* as if "v=DMARC1; p=none" */
	assert_non_null(strstr(err, "p=rejected"));

	text = "v=DMARC1; p=reject; sp=bogus; rua=mailto:dmarc@example.com";
	assert_int_equal(dmarc_record_parse(text, strlen(text), &r, err, sizeof(err)), 1);
	assert_true(r.p_fallback);
	assert_int_equal(r.p, DMARC_P_NONE);

	text = "v=DMARC1; p=reject; p=none; rua=mailto:dmarc@example.com";
	assert_int_equal(dmarc_record_parse(text, strlen(text), &r, err, sizeof(err)), 1);
	assert_true(r.p_fallback);
	assert_non_null(strstr(err, "given twice"));

	/* Without a usable rua=, no DMARC processing: an error. */
	parse_error("v=DMARC1; rua=dmarc@example.com", "rua= not a URI");
	parse_error("v=DMARC1; p=rejected", "tag 2 \"p=rejected\": p= must be none, quarantine or "
	                                    "reject");
	parse_error("v=DMARC1; p=reject; sp=all", "sp= must be none, quarantine or reject");
	parse_error("v=DMARC1; p=", "p= must be");
	parse_error("v=DMARC1; sp=none", "p= is missing");
	/* Other errors are not rescued by rua=. */
	parse_error("v=DMARC1; rua=mailto:a@example.com; adkim=x", "adkim= must be r");
}

static void
test_errors_say_which_tag(void **state)
{
	parse_error("v=DMARC1; p=none; adkim=relaxed", "tag 3 \"adkim=relaxed\": adkim= must be r "
	                                               "(relaxed) or s (strict)");
	parse_error("v=DMARC1; p=none; aspf=", "aspf= must be r");
	parse_error("v=DMARC1; p=none; pct=101", "pct= must be a percentage from 0 to 100");
	parse_error("v=DMARC1; p=none; pct=1000", "pct= must be a percentage");
	parse_error("v=DMARC1; p=none; pct=0100", "pct= must be a percentage"); /* 1*3DIGIT */
	parse_error("v=DMARC1; p=none; pct=-1", "pct= must be a number");
	parse_error("v=DMARC1; p=none; pct=50%", "pct= must be a number");
	parse_error("v=DMARC1; p=none; pct= ", "pct= must be a number");
	parse_error("v=DMARC1; p=none; ri=4294967296", "ri= must be a number of seconds");
	parse_error("v=DMARC1; p=none; ri=99999999999999999999999", "ri= must be");
	parse_error("v=DMARC1; p=none; ri=1h", "ri= must be a number");
	parse_error("v=DMARC1; p=none; fo=2", "fo= must be a ':'-separated list of 0, 1, d and s");
	parse_error("v=DMARC1; p=none; fo=0:", "fo= must be");
	parse_error("v=DMARC1; p=none; fo=0,1", "fo= must be");
	parse_error("v=DMARC1; p=none; rf=", "rf= must be a ':'-separated list of format names");
	parse_error("v=DMARC1; p=none; rf=afrf-", "rf= must be");
	parse_error("v=DMARC1; p=none; rf=a f", "rf= must be");
	parse_error("v=DMARC1; p=none; rua=", "rua= must list at least one URI");
	parse_error("v=DMARC1; p=none; rua=mailto:a@example.com,", "rua= an empty URI");
	parse_error("v=DMARC1; p=none; rua=,mailto:a@example.com", "rua= an empty URI");
	parse_error("v=DMARC1; p=none; rua=mailto:", "rua= a URI with nothing after its scheme");
	parse_error("v=DMARC1; p=none; rua=1mailto:a@b", "rua= not a URI");
	parse_error("v=DMARC1; p=none; ruf=mailto:a b@example.com",
	            "ruf= a character a URI cannot");
	parse_error("v=DMARC1; p=none; ruf=mailto:a@example.com!", "ruf= a size limit after '!'");
	parse_error("v=DMARC1; p=none; ruf=mailto:a@example.com!10x", "a size limit after '!'");
	parse_error("v=DMARC1; p=none; ruf=mailto:a@example.com!k", "a size limit after '!'");
	parse_error("v=DMARC1; p=none; ruf=mailto:a%2@example.com", "a character a URI cannot");
	parse_error("v=DMARC1; p=none; ruf=mailto:a%zz@example.com", "a character a URI cannot");
	parse_error("v=DMARC1; p=none; ruf=mailto:a@exämple.com", "a character a URI cannot");
	parse_error("v=DMARC1; p=none; pct=50; pct=100", "tag 4 \"pct=100\": pct= given twice");
	parse_error("v=DMARC1; p=none; rua", "tag 3 \"rua\": not name=value");
	parse_error("v=DMARC1; p=none; 1x=y", "tag 3 \"1x=y\": not a tag name");
	parse_error("v=DMARC1; p=none; =y", "not a tag name");
	parse_error("v=DMARC1; p=none; a-b=y", "not a tag name");
	/* The first error is the one reported. */
	parse_error("v=DMARC1; p=none; adkim=x; aspf=y", "adkim=");
}

static void
test_hostile_records(void **state)
{
	struct dmarc_record rec;
	char err[256];
	size_t big = 1 << 20;
	char *t = malloc(big + 64);
	int rc;

	/* NUL and control octets: never a valid value, never copied into err as they are. */
	const char nul[] = "v=DMARC1; p=re\0ject";
	assert_int_equal(dmarc_record_parse(nul, sizeof(nul) - 1, &rec, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "p=re?ject"));
	const char ctl[] = "v=DMARC1; p=none; adkim=\r\n\x1b[31m";
	assert_int_equal(dmarc_record_parse(ctl, sizeof(ctl) - 1, &rec, err, sizeof(err)), -1);
	for (const char *p = err; *p; p++)
		assert_true((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f);
	/* A NUL right after the version: "DMARC1" is not followed by ';', so not DMARC1. */
	const char early[] = "v=DMARC1\0; p=none";
	assert_int_equal(dmarc_record_parse(early, sizeof(early) - 1, &rec, err, sizeof(err)), 0);
	const char later[] = "v=DMARC1 \0; p=none";
	assert_int_equal(dmarc_record_parse(later, sizeof(later) - 1, &rec, err, sizeof(err)), -1);

	/* A megabyte of semicolons, then p=: linear, and fine. */
	strcpy(t, "v=DMARC1");
	memset(t + 8, ';', big);
	strcpy(t + 8 + big, "p=reject");
	assert_int_equal(dmarc_record_parse(t, strlen(t), &rec, err, sizeof(err)), 1);
	assert_int_equal(rec.p, DMARC_P_REJECT);

	/* A megabyte of unknown tags. */
	size_t n = 0;
	n += (size_t)sprintf(t, "v=DMARC1; p=quarantine");
	while (n + 8 < big)
		n += (size_t)sprintf(t + n, "; x%u=y", (unsigned)(n % 1000));
	assert_int_equal(dmarc_record_parse(t, n, &rec, err, sizeof(err)), 1);
	assert_int_equal(rec.p, DMARC_P_QUARANTINE);

	/* A megabyte of URIs: counted, kept cut to its bound with a mark. */
	n = (size_t)sprintf(t, "v=DMARC1; p=none; rua=");
	for (unsigned i = 0; n + 40 < big; i++)
		n += (size_t)sprintf(t + n, "%smailto:r%u@example.com", i ? "," : "", i);
	assert_int_equal(dmarc_record_parse(t, n, &rec, err, sizeof(err)), 1);
	assert_true(rec.nrua > 20000);
	assert_int_equal(strlen(rec.rua), DMARC_URIS_TEXT_MAX);
	assert_string_equal(rec.rua + DMARC_URIS_TEXT_MAX - 3, "...");

	/* A megabyte-long value in an error: the message stays short. */
	n = (size_t)sprintf(t, "v=DMARC1; p=");
	memset(t + n, 'r', big - n);
	rc = dmarc_record_parse(t, big, &rec, err, sizeof(err));
	assert_int_equal(rc, -1);
	assert_true(strlen(err) < 140);
	assert_non_null(strstr(err, "rrr..."));

	/* A number with a megabyte of digits does not overflow into a valid pct. */
	n = (size_t)sprintf(t, "v=DMARC1; p=none; pct=");
	memset(t + n, '0', big - n - 2);
	memcpy(t + big - 2, "50", 2);
	assert_int_equal(dmarc_record_parse(t, big, &rec, err, sizeof(err)), -1);
	n = (size_t)sprintf(t, "v=DMARC1; p=none; ri=");
	memset(t + n, '9', big - n);
	assert_int_equal(dmarc_record_parse(t, big, &rec, err, sizeof(err)), -1);

	/* err may be NULL or tiny. */
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=x", 13, &rec, NULL, 0), -1);
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=x", 13, &rec, err, 1), -1);
	assert_string_equal(err, "");
	assert_int_equal(dmarc_record_parse("v=DMARC1; p=none", 16, &rec, NULL, 0), 1);
	free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_what_is_a_dmarc_record),
	    cmocka_unit_test(test_minimal_and_defaults),
	    cmocka_unit_test(test_every_tag),
	    cmocka_unit_test(test_rua_fallback),
	    cmocka_unit_test(test_errors_say_which_tag),
	    cmocka_unit_test(test_hostile_records),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
