/* test_auth_spf_macro - SPF macro expansion (RFC 7208 §7): the examples of §7.4, URL escaping,
 * the explanation-only letters, truncation of long names, and every syntax error of §7.1. */
#include "auth/spf_internal.h"
#include "test_auth_spf_util.h"

#define EXPAND_MAX 1024

/* The §7.4 example: sender strong-bad@email.example.com, client 192.0.2.3 (or 2001:db8::cb01),
 * validated PTR name mx.example.org. */
static struct spf_macro_vars
rfc_vars(const char *ip)
{
	struct spf_macro_vars v = {
	    .sender = "strong-bad@email.example.com",
	    .local = "strong-bad",
	    .sender_domain = "email.example.com",
	    .domain = "email.example.com",
	    .ptr = "mx.example.org",
	    .helo = "mail.example.net",
	    .receiver = "mx.drover.example",
	    .now = 1700000000,
	};

	assert_int_equal(spf_ip_parse(ip, &v.ip), 0);
	return v;
}

static void
expect(const struct spf_macro_vars *v, unsigned flags, const char *in, const char *want)
{
	char out[EXPAND_MAX], err[128] = "";
	ssize_t n = spf_macro_expand(in, strlen(in), flags, v, out, sizeof(out), err, sizeof(err));

	if (n < 0)
		fail_msg("\"%s\": %s", in, err);
	if (strcmp(out, want) != 0)
		fail_msg("\"%s\" expanded to \"%s\", want \"%s\"", in, out, want);
	assert_int_equal((size_t)n, strlen(want));
}

static void
expect_error(unsigned flags, const char *in, const char *why)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");
	char out[EXPAND_MAX], err[128] = "";

	if (spf_macro_expand(in, strlen(in), flags, &v, out, sizeof(out), err, sizeof(err)) != -1)
		fail_msg("\"%s\" expanded to \"%s\", want an error", in, out);
	if (strstr(err, why) == NULL)
		fail_msg("\"%s\": error \"%s\", want one saying \"%s\"", in, err, why);
}

static void
test_rfc7208_section_7_4_macros(void **state)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");
	static const char *const cases[][2] = {
	    {"%{s}", "strong-bad@email.example.com"},
	    {"%{o}", "email.example.com"},
	    {"%{d}", "email.example.com"},
	    {"%{d4}", "email.example.com"},
	    {"%{d3}", "email.example.com"},
	    {"%{d2}", "example.com"},
	    {"%{d1}", "com"},
	    {"%{dr}", "com.example.email"},
	    {"%{d2r}", "example.email"},
	    {"%{l}", "strong-bad"},
	    {"%{l-}", "strong.bad"},
	    {"%{lr}", "strong-bad"},
	    {"%{lr-}", "bad.strong"},
	    {"%{l1r-}", "strong"},
	};

	for (size_t i = 0; i < nitems(cases); i++)
		expect(&v, 0, cases[i][0], cases[i][1]);
}

static void
test_rfc7208_section_7_4_macro_strings(void **state)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");

	expect(&v, 0, "%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com");
	expect(&v, 0, "%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com");
	expect(&v, 0, "%{lr-}.lp.%{ir}.%{v}._spf.%{d2}",
	       "bad.strong.lp.3.2.0.192.in-addr._spf.example.com");
	expect(&v, 0, "%{ir}.%{v}.%{lr-}.lp._spf.%{d2}",
	       "3.2.0.192.in-addr.bad.strong.lp._spf.example.com");
	expect(&v, 0, "%{d2}.trusted-domains.example.net",
	       "example.com.trusted-domains.example.net");
}

static void
test_rfc7208_section_7_4_ipv6(void **state)
{
	struct spf_macro_vars v = rfc_vars("2001:db8::cb01");
	char out[EXPAND_MAX], err[128];
	const char *in = "%{ir}.%{v}._spf.%{d2}";

	/* The RFC prints the nibbles in lower case, the OpenSPF suite's explanations in upper
	 * case (v-macro-ip6): we write them upper case, and DNS names compare either way. */
	assert_true(spf_macro_expand(in, strlen(in), 0, &v, out, sizeof(out), err, sizeof(err)) >
	            0);
	assert_int_equal(strcasecmp(out,
	                            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0."
	                            "0.2.ip6._spf.example.com"),
	                 0);
	expect(&v, 0, "%{i}", "2.0.0.1.0.D.B.8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.C.B.0.1");
	expect(&v, SPF_MACRO_EXPLAIN, "%{c} %{v}", "2001:db8::cb01 ip6");
}

static void
test_literal_escapes_and_url_encoding(void **state)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");

	expect(&v, 0, "%%%_%-", "% %20");
	/* §7.3: an upper-case letter URL-escapes everything but ALPHA DIGIT - . _ ~ */
	v.local = "~jack&jill=up-a_b3.c";
	expect(&v, 0, "%{L}", "~jack%26jill%3Dup-a_b3.c");
	expect(&v, 0, "%{l}", "~jack&jill=up-a_b3.c");
	v.local = "a b/c";
	expect(&v, 0, "%{L}.%{l}", "a%20b%2Fc.a b/c");
	/* The transformers apply before the escaping. */
	v.sender_domain = "x+y.example.com";
	expect(&v, 0, "%{O2r}", "example.x%2By");
	expect(&v, 0, "%{O+}", "x.y.example.com");
}

static void
test_delimiters_reversal_and_counts(void **state)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");

	v.local = "foo-bar+zip+quux";
	expect(&v, 0, "%{l2r+-}", "bar.foo");
	expect(&v, 0, "%{l+-}", "foo.bar.zip.quux");
	expect(&v, 0, "%{l99}", "foo-bar+zip+quux");
	expect(&v, 0, "%{l1000000000000000000000}", "foo-bar+zip+quux");
	expect(&v, 0, "%{d=,/_}", "email.example.com"); /* delimiters that do not occur */
	v.domain = "a..b";
	expect(&v, 0, "%{dr}", "b..a"); /* empty parts are parts */
}

static void
test_explanation_only_letters(void **state)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");

	expect(&v, SPF_MACRO_EXPLAIN, "%{c} via %{r} at %{t}",
	       "192.0.2.3 via mx.drover.example at 1700000000");
	v.receiver = NULL;
	expect(&v, SPF_MACRO_EXPLAIN, "%{r}", "unknown");
	expect(&v, SPF_MACRO_EXPLAIN, "%{p} / %{P}", "mx.example.org / mx.example.org");
	v.ptr = NULL;
	expect(&v, SPF_MACRO_EXPLAIN, "%{p}", "unknown");
	expect_error(0, "%{c}.example.com", "only allowed in explanations");
	expect_error(0, "%{r}.example.com", "only allowed in explanations");
	expect_error(0, "%{t}.example.com", "only allowed in explanations");
	/* Spaces are explanation text, not domain-spec */
	expect_error(0, "a b", "not printable ASCII");
}

static void
test_syntax_errors(void **state)
{
	expect_error(0, "%", "at the end");
	expect_error(0, "foo%", "at the end");
	expect_error(0, "%(ir).sbl.example.com", "must be followed");
	expect_error(0, "foo%.sbl.example.com", "must be followed");
	expect_error(0, "%{", "unknown macro letter");
	expect_error(0, "%{a}.example.com", "unknown macro letter");
	expect_error(0, "%{d", "must end with '}'");
	expect_error(0, "%{d2r.x}", "must end with '}'");
	expect_error(0, "%{d0}", "must not be zero");
	expect_error(0, "%{dr2}", "must end with '}'"); /* the digits come first */
	expect_error(0, "caf\xc3\xa9.example.com", "not printable ASCII");
	expect_error(SPF_MACRO_EXPLAIN, "line\nbreak", "not printable ASCII");
}

static void
test_domain_truncation_and_trailing_dot(void **state)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");
	char in[64], out[EXPAND_MAX], err[128], label[301];
	ssize_t n;

	expect(&v, SPF_MACRO_DOMAIN, "%{d}.", "email.example.com");
	expect(&v, 0, "%{d}.", "email.example.com.");
	/* §7.3: labels come off the left until 253 octets are left (the suite's
	 * domain-name-truncation). Here 8 * 30 + 7 + 11 = 258. */
	v.sender_domain = "somewhat.long.exp.example.com";
	snprintf(in, sizeof(in),
	         "foobar.%%{o}.%%{o}.%%{o}.%%{o}.%%{o}.%%{o}.%%{o}.%%{o}.example.com");
	n = spf_macro_expand(in, strlen(in), SPF_MACRO_DOMAIN, &v, out, sizeof(out), err,
	                     sizeof(err));
	assert_int_equal(n, 251);
	assert_true(strncmp(out, "somewhat.long.", 14) == 0);
	assert_true(spf_name_is_valid(out));
	/* A single label over 253 octets leaves nothing: no name to look up. */
	memset(label, 'x', 300);
	label[300] = '\0';
	v.local = label;
	n = spf_macro_expand("%{l}", 4, SPF_MACRO_DOMAIN, &v, out, sizeof(out), err, sizeof(err));
	assert_int_equal(n, 0);
	assert_false(spf_name_is_valid(out));
}

static void
test_output_bound(void **state)
{
	struct spf_macro_vars v = rfc_vars("192.0.2.3");
	char out[16], err[128];

	assert_int_equal(spf_macro_expand("%{s}", 4, 0, &v, out, sizeof(out), err, sizeof(err)),
	                 -1);
	assert_non_null(strstr(err, "longer than 15"));
	assert_string_equal(out, "");
	assert_int_equal(spf_macro_expand("%{d1}", 5, 0, &v, out, sizeof(out), err, sizeof(err)),
	                 3);
	assert_int_equal(spf_macro_expand("x", 1, 0, &v, out, 0, err, sizeof(err)), -1);
}

static void
test_uses_p(void **state)
{
	assert_true(spf_macro_uses_p("%{p}", 4));
	assert_true(spf_macro_uses_p("a.%{P2}.b", 9));
	assert_false(spf_macro_uses_p("%%{p}", 5));
	assert_false(spf_macro_uses_p("%{d}", 4));
	assert_false(spf_macro_uses_p("%{", 2));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc7208_section_7_4_macros),
	    cmocka_unit_test(test_rfc7208_section_7_4_macro_strings),
	    cmocka_unit_test(test_rfc7208_section_7_4_ipv6),
	    cmocka_unit_test(test_literal_escapes_and_url_encoding),
	    cmocka_unit_test(test_delimiters_reversal_and_counts),
	    cmocka_unit_test(test_explanation_only_letters),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_domain_truncation_and_trailing_dot),
	    cmocka_unit_test(test_output_bound),
	    cmocka_unit_test(test_uses_p),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
