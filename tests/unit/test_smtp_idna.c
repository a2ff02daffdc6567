/* test_smtp_idna.c - smtp_domain_to_ascii(): the name delivery looks up for a recipient
 * domain. UTF-8 domains of SMTPUTF8 mail become A-labels (IDNA2008, UTS #46 non-transitional);
 * ASCII domains are only lower-cased; what has no A-label is refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp.h"

static const char *
ascii(const char *domain)
{
	static char out[SMTP_DOMAIN_MAX + 1];
	const char *why = NULL;

	if (smtp_domain_to_ascii(domain, out, sizeof(out), &why) != 0)
		fail_msg("\"%s\": refused: %s", domain, why);
	return out;
}

static const char *
refused(const char *domain)
{
	char out[SMTP_DOMAIN_MAX + 1];
	const char *why = NULL;

	if (smtp_domain_to_ascii(domain, out, sizeof(out), &why) == 0)
		fail_msg("\"%s\": accepted as \"%s\"", domain, out);
	assert_non_null(why);
	assert_true(why[0] != '\0');
	return why;
}

static void
test_u_labels_become_a_labels(void **state)
{
	assert_string_equal(ascii("bücher.example"), "xn--bcher-kva.example");
	/* UTS #46 mapping: case folded and NFC-normalized before conversion. */
	assert_string_equal(ascii("Bücher.EXAMPLE"), "xn--bcher-kva.example");
	assert_string_equal(ascii("bu\xcc\x88"
	                          "cher.example"),
	                    "xn--bcher-kva.example");
	/* Non-transitional: ß is itself (IDNA2008), not "ss" (IDNA2003). */
	assert_string_equal(ascii("faß.de"), "xn--fa-hia.de");
	assert_string_equal(ascii("例え.テスト"), "xn--r8jz45g.xn--zckzah");
	/* Only the labels that need it change. */
	assert_string_equal(ascii("mail.bücher.example"), "mail.xn--bcher-kva.example");
}

static void
test_ascii_is_lower_cased_only(void **state)
{
	assert_string_equal(ascii("Example.COM"), "example.com");
	assert_string_equal(ascii("xn--bcher-kva.example"), "xn--bcher-kva.example");
	/* Names IDNA would refuse but the DNS may serve are not ours to judge. */
	assert_string_equal(ascii("ab--cd.example"), "ab--cd.example");
	assert_string_equal(ascii("_dmarc.example"), "_dmarc.example");
}

static void
test_no_a_label_is_refused(void **state)
{
	/* DISALLOWED code points, hyphens at a label's end, bidi rules, oversize labels. */
	refused("☃.example");
	refused("ü-.example");
	refused("\xd9\xa0"
	        "1.example");
	refused("é"
	        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example");
	/* Not UTF-8 at all. */
	refused("b\xfc"
	        "cher.example");
}

static void
test_output_bounded(void **state)
{
	char small[8];
	const char *why = NULL;

	assert_int_equal(smtp_domain_to_ascii("bücher.example", small, sizeof(small), &why), -1);
	assert_non_null(why);
	assert_int_equal(smtp_domain_to_ascii("example.com", small, sizeof(small), &why), -1);
	assert_int_equal(smtp_domain_to_ascii("a.b.com", small, sizeof(small), &why), 0);
	assert_string_equal(small, "a.b.com");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_u_labels_become_a_labels),
	    cmocka_unit_test(test_ascii_is_lower_cased_only),
	    cmocka_unit_test(test_no_a_label_is_refused),
	    cmocka_unit_test(test_output_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
