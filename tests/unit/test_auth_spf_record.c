/* test_auth_spf_record - SPF records as parsed (RFC 7208 §4.5, §4.6, §5, §6, §12): versions,
 * qualifiers, every mechanism's arguments, dual CIDR lengths, modifiers, the errors a publisher
 * is told about, and the CIDR arithmetic that matches a client against a network. */
#include "auth/spf_internal.h"
#include "test_auth_spf_util.h"

static struct spf_record
parse_ok(const char *terms)
{
	struct spf_record rec;
	char err[256] = "";

	if (spf_record_parse(terms, strlen(terms), &rec, err, sizeof(err)) != 0)
		fail_msg("\"%s\": %s", terms, err);
	return rec;
}

static void
parse_error(const char *terms, const char *why)
{
	struct spf_record rec;
	char err[256] = "";

	if (spf_record_parse(terms, strlen(terms), &rec, err, sizeof(err)) != -1)
		fail_msg("\"%s\" parsed, want an error saying \"%s\"", terms, why);
	if (strstr(err, why) == NULL)
		fail_msg("\"%s\": \"%s\", want \"%s\"", terms, err, why);
	assert_int_equal(rec.nterms, 0);
	assert_null(rec.terms);
}

static struct dns_address
ip(const char *text)
{
	struct dns_address a;

	if (spf_ip_parse(text, &a) != 0)
		fail_msg("bad address %s", text);
	return a;
}

static void
test_versions(void **state)
{
	bool pra, mfrom;

	assert_int_equal(spf_version_len("v=spf1", 6), 6);
	assert_int_equal(spf_version_len("v=spf1 -all", 11), 6);
	assert_int_equal(spf_version_len("V=SpF1 -all", 11), 6); /* §4.5: case-insensitive */
	assert_int_equal(spf_version_len("v=spf10", 7), 0);      /* §4.5: exact, then a space */
	assert_int_equal(spf_version_len("v=spf1mx", 8), 0);
	assert_int_equal(spf_version_len(" v=spf1", 7), 0);
	assert_int_equal(spf_version_len("v=spf", 5), 0);
	assert_int_equal(spf_version_len("v=spf1\t-all", 11), 0);

	assert_int_equal(senderid_version_len("spf2.0/pra -all", 15, &pra, &mfrom), 10);
	assert_true(pra);
	assert_false(mfrom);
	assert_int_equal(senderid_version_len("SPF2.0/mfrom,pra", 16, &pra, &mfrom), 16);
	assert_true(pra && mfrom);
	assert_int_equal(senderid_version_len("spf2.0/mfrom ip4:1.2.3.4", 24, &pra, &mfrom), 12);
	assert_false(pra);
	assert_true(mfrom);
	assert_int_equal(senderid_version_len("spf2.0/pra,", 11, &pra, &mfrom), 0);
	assert_int_equal(senderid_version_len("spf2.0/", 7, &pra, &mfrom), 0);
	assert_int_equal(senderid_version_len("spf2.0/pra;x", 12, &pra, &mfrom), 0);
	assert_false(pra);
}

static void
test_mechanisms_and_qualifiers(void **state)
{
	struct spf_record rec = parse_ok(" +a -mx:%{d2} ~ptr:example.com ?ip4:192.0.2.0/24 "
	                                 "IP6:2001:DB8::/32 exists:%{i}.bl.example.com "
	                                 "include:_spf.example.net all  ");

	assert_int_equal(rec.nterms, 8);
	assert_int_equal(rec.terms[0].mech, SPF_M_A);
	assert_int_equal(rec.terms[0].qualifier, SPF_PASS);
	assert_null(rec.terms[0].spec);
	assert_int_equal(rec.terms[0].cidr4, 32);
	assert_int_equal(rec.terms[0].cidr6, 128);
	assert_int_equal(rec.terms[1].mech, SPF_M_MX);
	assert_int_equal(rec.terms[1].qualifier, SPF_FAIL);
	assert_string_equal(rec.terms[1].spec, "%{d2}");
	assert_int_equal(rec.terms[2].mech, SPF_M_PTR);
	assert_int_equal(rec.terms[2].qualifier, SPF_SOFTFAIL);
	assert_string_equal(rec.terms[2].spec, "example.com");
	assert_int_equal(rec.terms[3].mech, SPF_M_IP4);
	assert_int_equal(rec.terms[3].qualifier, SPF_NEUTRAL);
	assert_int_equal(rec.terms[3].cidr4, 24);
	assert_int_equal(rec.terms[4].mech, SPF_M_IP6);
	assert_int_equal(rec.terms[4].cidr6, 32);
	assert_int_equal(rec.terms[5].mech, SPF_M_EXISTS);
	assert_int_equal(rec.terms[6].mech, SPF_M_INCLUDE);
	assert_string_equal(rec.terms[6].spec, "_spf.example.net");
	assert_int_equal(rec.terms[7].mech, SPF_M_ALL);
	assert_string_equal(rec.terms[3].text, "?ip4:192.0.2.0/24");
	assert_null(rec.redirect);
	assert_null(rec.exp);
	spf_record_free(&rec);
}

static void
test_dual_cidr(void **state)
{
	struct spf_record rec = parse_ok("a/24 a//64 a/24//64 mx:example.com/0//0 "
	                                 "a:foo:bar/baz.example.com a:x.example.com/32//128");

	assert_int_equal(rec.terms[0].cidr4, 24);
	assert_int_equal(rec.terms[0].cidr6, 128);
	assert_int_equal(rec.terms[1].cidr4, 32);
	assert_int_equal(rec.terms[1].cidr6, 64);
	assert_int_equal(rec.terms[2].cidr4, 24);
	assert_int_equal(rec.terms[2].cidr6, 64);
	assert_int_equal(rec.terms[3].cidr4, 0);
	assert_int_equal(rec.terms[3].cidr6, 0);
	assert_string_equal(rec.terms[3].spec, "example.com");
	assert_string_equal(rec.terms[4].spec, "foo:bar/baz.example.com"); /* not a CIDR */
	assert_int_equal(rec.terms[4].cidr4, 32);
	assert_string_equal(rec.terms[5].spec, "x.example.com");
	spf_record_free(&rec);

	parse_error("a/33", "IPv4 prefix length");
	parse_error("a/024", "IPv4 prefix length");
	parse_error("a//129", "IPv6 prefix length");
	parse_error("a/24/64", "IPv4 prefix length"); /* ip6-cidr-length is "//" */
	parse_error("a//64//64", "expected");
	parse_error("a/", "expected");
	parse_error("mx/24x", "expected");
	parse_error("ptr/24", "no prefix length");
	parse_error("include:example.com/24", "top label");
	parse_error("exists:example.com/24", "top label");
}

static void
test_ip_networks(void **state)
{
	struct spf_record rec = parse_ok("ip4:0.0.0.0/0 ip4:255.255.255.255 ip6:::1.1.1.1/0 "
	                                 "ip6:::ffff:1.2.3.4 ip6:2001:db8::/128");

	assert_int_equal(rec.nterms, 5);
	assert_int_equal(rec.terms[0].cidr4, 0);
	assert_int_equal(rec.terms[1].cidr4, 32);
	assert_int_equal(rec.terms[2].net.family, AF_INET6);
	spf_record_free(&rec);

	parse_error("ip4", "needs");
	parse_error("ip4:", "needs");
	parse_error("ip4:1.2.3", "not an IPv4 address");
	parse_error("ip4:1.2.3.4.5", "not an IPv4 address");
	parse_error("ip4:1.2.3.256", "not an IPv4 address");
	parse_error("ip4:01.2.3.4", "not an IPv4 address");
	parse_error("ip4:1.2.3.4:8080", "not an IPv4 address");
	parse_error("ip4:1.2.3.4/33", "prefix length");
	parse_error("ip4:1.2.3.4/032", "prefix length");
	parse_error("ip4:1.2.3.4//32", "prefix length");
	parse_error("ip4:1.2.3.4/", "prefix length");
	parse_error("ip4:2001:db8::1", "not an IPv4 address");
	parse_error("ip6:1.2.3.4", "not an IPv6 address");
	parse_error("ip6::CAFE::BABE", "not an IPv6 address");
	parse_error("ip6:::1/129", "prefix length");
	parse_error("ip6:::1//33", "prefix length");
}

static void
test_domain_specs(void **state)
{
	struct spf_record rec = parse_ok("a:foo.example.xn--zckzah a:%{d} a:%{i}.%{d} "
	                                 "a:example.com. a:123-456.com a:mx.%%");

	assert_int_equal(rec.nterms, 6);
	/* §7.1: domain-end is "." toplabel ["."] or a macro, not a macro then a dot */
	parse_error("a:%{i}.%{d}.", "top label");
	spf_record_free(&rec);
	parse_error("a:", "empty domain-spec");
	parse_error("a:museum", "top label");
	parse_error("a:museum.", "top label");
	parse_error("a:111.222.33.44", "top label"); /* the ip4: mistake */
	parse_error("a:abc.123", "top label");
	parse_error("a:example.-com", "top label");
	parse_error("a:example.com-", "top label");
	parse_error("a:example.com:8080", "top label");
	parse_error("a:foo-bar", "top label");
	parse_error("a:%{d}x", "top label");
	parse_error("include", "needs");
	parse_error("include:", "empty domain-spec");
	parse_error("exists", "needs");
	parse_error("a:%{x}.example.com", "unknown macro letter");
	parse_error("a:%{c}.example.com", "only allowed in explanations");
	parse_error("a:%(d).example.com", "must be followed");
}

static void
test_modifiers(void **state)
{
	struct spf_record rec = parse_ok("-all exp=explain._spf.%{d} redirect=_spf.example.com "
	                                 "moo.cow-far_out=man:dog/cat default=pass x=");

	assert_int_equal(rec.nterms, 1);
	assert_string_equal(rec.exp, "explain._spf.%{d}");
	assert_string_equal(rec.redirect, "_spf.example.com");
	spf_record_free(&rec);

	parse_error("exp=a.example.com exp=b.example.com", "appears twice");
	parse_error("redirect=a.example.com REDIRECT=b.example.com", "appears twice");
	parse_error("redirect=", "empty domain-spec");
	parse_error("exp=", "empty domain-spec");
	parse_error("redirect=-all", "top label");
	parse_error("exp=%{r}.example.com", "only allowed in explanations");
	parse_error("foo=%abc", "must be followed");
	parse_error("1up=foo", "starts with a letter");
	parse_error("=all", "starts with a letter");
	parse_error("-exp=x.example.com", "no qualifier");
	parse_error("redirect:example.com", "unknown mechanism");
	parse_error("moo.cow/far_out=man:dog/cat", "unknown mechanism");
}

static void
test_syntax_errors_anywhere(void **state)
{
	parse_error("ip4:1.2.3.4 -all moo", "term 3 \"moo\": unknown mechanism");
	parse_error("-all.", "unknown mechanism");
	parse_error("-all:foobar", "takes no argument");
	parse_error("-all/8", "takes no argument");
	parse_error("+", "starts with a letter");
	parse_error("a\t-all", "octet 0x09");
	parse_error("a:ctrl.example.com\rptr", "octet 0x0d");
	parse_error("a:example.com\n", "octet 0x0a");
	parse_error("\x80"
	            "a",
	            "octet 0x80");
	{
		struct spf_record rec;
		char err[128];

		assert_int_equal(spf_record_parse("a\0b", 3, &rec, err, sizeof(err)), -1);
		assert_non_null(strstr(err, "octet 0x00"));
	}
}

static void
test_record_check(void **state)
{
	char err[256];

	assert_int_equal(spf_record_check("v=spf1 ip4:192.0.2.0/24 -all", 28, err, sizeof(err)), 1);
	assert_string_equal(err, "");
	assert_int_equal(spf_record_check("v=spf1", 6, err, sizeof(err)), 1);
	assert_int_equal(spf_record_check("spf2.0/pra a -all", 17, err, sizeof(err)), 1);
	assert_int_equal(spf_record_check("google-site-verification=x", 26, err, sizeof(err)), 0);
	assert_non_null(strstr(err, "not an SPF record"));
	assert_int_equal(spf_record_check("v=spf1 a:192.0.2.1 -all", 23, err, sizeof(err)), -1);
	assert_string_equal(err, "term 1 \"a:192.0.2.1\": a domain-spec must end with a macro or a "
	                         "dot and a valid top label (letters, digits, hyphens; not all "
	                         "digits)");
}

static void
test_cidr_matching(void **state)
{
	struct dns_address a = ip("192.0.2.130"), n24 = ip("192.0.2.0"), n = ip("192.0.2.128");
	struct dns_address v6 = ip("2001:db8::1"), v6net = ip("2001:db8::"),
	                   other = ip("2001:db9::1");

	assert_true(spf_ip_in(&a, &n24, 24));
	assert_true(spf_ip_in(&a, &n, 25));
	assert_false(spf_ip_in(&a, &n24, 25));
	assert_true(spf_ip_in(&a, &n24, 0));
	assert_false(spf_ip_in(&a, &n24, 32));
	a = ip("192.0.2.129");
	assert_true(spf_ip_in(&a, &n, 31));
	assert_false(spf_ip_in(&a, &n, 32));
	assert_true(spf_ip_in(&a, &a, 32));

	assert_true(spf_ip_in(&v6, &v6net, 32));
	assert_true(spf_ip_in(&v6, &v6net, 127));
	assert_false(spf_ip_in(&v6, &v6net, 128));
	assert_false(spf_ip_in(&other, &v6net, 32));
	assert_true(spf_ip_in(&other, &v6net, 31)); /* 2001:db8 and 2001:db9 share 31 bits */
	assert_true(spf_ip_in(&other, &v6net, 0));
	/* Families never match one another, even with /0 (§5.6). */
	assert_false(spf_ip_in(&v6, &n24, 0));
	assert_false(spf_ip_in(&n24, &v6net, 0));
}

static void
test_ipv4_mapped_clients_are_ipv4(void **state)
{
	struct dns_address a = ip("::ffff:192.0.2.1"), want = ip("192.0.2.1"), v6 = ip("::1");

	assert_int_equal(a.family, AF_INET6);
	spf_ip_normalize(&a);
	assert_int_equal(a.family, AF_INET);
	assert_memory_equal(&a.u.v4, &want.u.v4, 4);
	spf_ip_normalize(&v6);
	assert_int_equal(v6.family, AF_INET6);
	assert_int_equal(spf_ip_parse("1.2.3", &a), -1);
	assert_int_equal(spf_ip_parse("", &a), -1);
	assert_int_equal(spf_ip_parse(NULL, &a), -1);
}

static void
test_names(void **state)
{
	char name[DNS_NAME_MAX + 1];
	struct dns_address a = ip("192.0.2.3"), b = ip("2001:db8::cb01");

	spf_ip_reverse_name(&a, name);
	assert_string_equal(name, "3.2.0.192.in-addr.arpa");
	spf_ip_reverse_name(&b, name);
	assert_string_equal(
	    name, "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");

	assert_true(spf_name_is_valid("example.com"));
	assert_true(spf_name_is_valid("example.com."));
	assert_true(spf_name_is_valid("foo:bar/baz.example.com"));
	assert_true(spf_name_is_valid("a b.example.com")); /* the suite's macro-mania */
	assert_false(spf_name_is_valid(""));
	assert_false(spf_name_is_valid("."));
	assert_false(spf_name_is_valid("a..b"));
	assert_false(spf_name_is_valid(".a"));
	assert_false(
	    spf_name_is_valid("a12345678901234567890123456789012345678901234567890123456789"
	                      "01234.example.com"));

	assert_true(spf_name_within("mail.Example.com", "example.COM"));
	assert_true(spf_name_within("example.com.", "example.com"));
	assert_true(spf_name_within("a.b.example.com", "example.com."));
	assert_false(spf_name_within("badexample.com", "example.com"));
	assert_false(spf_name_within("com", "example.com"));
	assert_false(spf_name_within("example.com", ""));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_versions),
	    cmocka_unit_test(test_mechanisms_and_qualifiers),
	    cmocka_unit_test(test_dual_cidr),
	    cmocka_unit_test(test_ip_networks),
	    cmocka_unit_test(test_domain_specs),
	    cmocka_unit_test(test_modifiers),
	    cmocka_unit_test(test_syntax_errors_anywhere),
	    cmocka_unit_test(test_record_check),
	    cmocka_unit_test(test_cidr_matching),
	    cmocka_unit_test(test_ipv4_mapped_clients_are_ipv4),
	    cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
