/* test_auth_dmarc_align - what DMARC compares: the Public Suffix List and the organizational
 * domain (RFC 7489 §3.2: co.uk-type suffixes, wildcards and their exceptions, the private
 * section), identifier alignment relaxed and strict (§3.1), and the author domain taken from
 * the one From field (§6.6.1), with the From fields built to make a parser see another domain
 * than a reader does. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/dmarc_internal.h"

static struct dmarc_psl *psl;

static int
setup(void **state)
{
	char err[256];

	psl = dmarc_psl_load(NULL, err, sizeof(err));
	if (psl == NULL) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	return 0;
}

static int
teardown(void **state)
{
	dmarc_psl_free(psl);
	return 0;
}

static void
org_is(const char *domain, const char *want)
{
	char out[DNS_NAME_MAX + 1];

	if (dmarc_org_domain(psl, domain, out) != 0)
		fail_msg("%s: not a domain name?", domain);
	if (strcmp(out, want) != 0)
		fail_msg("organizational domain of %s: %s, want %s", domain, out, want);
}

static void
test_psl_loads(void **state)
{
	char err[256] = "", path[] = "/tmp/drover-psl-XXXXXX";
	struct dmarc_psl *p;
	FILE *f;
	int fd;

	/* The default: Debian's list if installed, else libpsl's own; either way it says which. */
	assert_true(strlen(dmarc_psl_source(psl)) > 0);

	/* A list of our own: only its rules count. */
	fd = mkstemp(path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	fputs("// ===BEGIN ICANN DOMAINS===\ncom\nuk\nco.uk\n*.test\n!keep.test\n"
	      "// ===END ICANN DOMAINS===\n",
	      f);
	fclose(f);
	p = dmarc_psl_load(path, err, sizeof(err));
	assert_non_null(p);
	assert_string_equal(dmarc_psl_source(p), path);
	char out[DNS_NAME_MAX + 1];
	assert_int_equal(dmarc_org_domain(p, "a.b.example.co.uk", out), 0);
	assert_string_equal(out, "example.co.uk");
	assert_int_equal(dmarc_org_domain(p, "x.y.zone.test", out), 0);
	assert_string_equal(out, "y.zone.test");
	assert_int_equal(dmarc_org_domain(p, "x.keep.test", out), 0);
	assert_string_equal(out, "keep.test");
	dmarc_psl_free(p);

	/* An empty file is no list; a missing one says why. */
	f = fopen(path, "w");
	fclose(f);
	assert_null(dmarc_psl_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "not a public suffix list"));
	unlink(path);
	assert_null(dmarc_psl_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, "No such file or directory"));
	assert_non_null(strstr(err, path));
	dmarc_psl_free(NULL);
}

static void
test_organizational_domains(void **state)
{
	char out[DNS_NAME_MAX + 1];

	org_is("example.com", "example.com");
	org_is("mail.example.com", "example.com");
	org_is("a.b.c.d.example.com", "example.com");
	org_is("Mail.EXAMPLE.com.", "example.com"); /* lower-cased, trailing dot dropped */
	/* Second-level public suffixes. */
	org_is("example.co.uk", "example.co.uk");
	org_is("mail.example.co.uk", "example.co.uk");
	org_is("a.b.example.com.au", "example.com.au");
	org_is("mail.example.ac.jp", "example.ac.jp");
	/* A public suffix is its own organizational domain: nothing above speaks for it. */
	org_is("co.uk", "co.uk");
	org_is("com", "com");
	org_is("uk", "uk");
	/* Wildcards and their exceptions (*.kawasaki.jp, !city.kawasaki.jp). */
	org_is("x.y.kawasaki.jp", "x.y.kawasaki.jp");
	org_is("a.x.y.kawasaki.jp", "x.y.kawasaki.jp");
	org_is("city.kawasaki.jp", "city.kawasaki.jp");
	org_is("www.city.kawasaki.jp", "city.kawasaki.jp");
	/* The private section: each github.io site is its owner's. */
	org_is("a.b.github.io", "b.github.io");
	/* A TLD not on the list: the default rule "*" (one label) applies. */
	org_is("a.b.example.invalidtld", "example.invalidtld");
	/* A-labels pass as they are. */
	org_is("mail.xn--bcher-kva.de", "xn--bcher-kva.de");

	assert_int_equal(dmarc_org_domain(psl, "", out), -1);
	assert_int_equal(dmarc_org_domain(psl, ".", out), -1);
	assert_int_equal(dmarc_org_domain(psl, "a..example.com", out), -1);
	assert_int_equal(dmarc_org_domain(psl, ".example.com", out), -1);
	assert_int_equal(dmarc_org_domain(psl, "exa mple.com", out), -1);
	assert_int_equal(dmarc_org_domain(psl,
	                                  "b\xc3\xbc"
	                                  "cher.de",
	                                  out),
	                 -1);
	assert_int_equal(dmarc_org_domain(psl, "[192.0.2.1]", out), -1);
	assert_int_equal(dmarc_org_domain(psl, NULL, out), -1);
	char big[300];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(dmarc_org_domain(psl, big, out), -1);
}

static void
test_alignment_matrix(void **state)
{
	static const struct {
		const char *from, *id;
		bool relaxed, strict;
	} m[] = {
	    {"example.com", "example.com", true, true},
	    {"example.com", "mail.example.com", true, false},
	    {"mail.example.com", "example.com", true, false},
	    {"a.example.com", "b.example.com", true, false},
	    {"a.b.example.com", "c.example.com", true, false},
	    {"EXAMPLE.com.", "example.COM", true, true},
	    {"example.com", "example.net", false, false},
	    {"example.com", "badexample.com", false, false},
	    {"example.com", "example.com.evil.net", false, false},
	    {"example.com", "com", false, false},
	    {"com", "example.com", false, false},
	    {"example.co.uk", "mail.example.co.uk", true, false},
	    {"example.co.uk", "other.co.uk", false, false},
	    {"example.co.uk", "co.uk", false, false},
	    {"co.uk", "example.co.uk", false, false},
	    {"co.uk", "co.uk", true, true},
	    {"a.x.y.kawasaki.jp", "b.x.y.kawasaki.jp", true, false},
	    {"x.y.kawasaki.jp", "z.y.kawasaki.jp", false, false},
	    {"city.kawasaki.jp", "mail.city.kawasaki.jp", true, false},
	    {"alice.github.io", "bob.github.io", false, false},
	    {"www.alice.github.io", "alice.github.io", true, false},
	    {"example.com", "", false, false},
	    {"", "", false, false},
	    {"example.com", "exa mple.com", false, false},
	    {"example.com", "example..com", false, false},
	};

	for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		bool r = dmarc_aligned(psl, DMARC_ALIGN_RELAXED, m[i].from, m[i].id);
		bool s = dmarc_aligned(psl, DMARC_ALIGN_STRICT, m[i].from, m[i].id);

		if (r != m[i].relaxed || s != m[i].strict)
			fail_msg("From %s, identifier %s: relaxed %d strict %d, want %d %d",
			         m[i].from, m[i].id, r, s, m[i].relaxed, m[i].strict);
	}
	assert_false(dmarc_aligned(psl, DMARC_ALIGN_RELAXED, NULL, "example.com"));
	assert_false(dmarc_aligned(psl, DMARC_ALIGN_RELAXED, "example.com", NULL));
}

static void
from_is(const char *headers, const char *want)
{
	char out[DNS_NAME_MAX + 1], err[256] = "x";

	if (dmarc_from_domain(headers, strlen(headers), out, err, sizeof(err)) != 0)
		fail_msg("%s: %s", headers, err);
	if (strcmp(out, want) != 0)
		fail_msg("%s: From domain %s, want %s", headers, out, want);
	assert_string_equal(err, "");
}

static void
from_bad(const char *headers, const char *why)
{
	char out[DNS_NAME_MAX + 1] = "x", err[256] = "";

	if (dmarc_from_domain(headers, strlen(headers), out, err, sizeof(err)) != -1)
		fail_msg("%s: From domain %s, want an error saying \"%s\"", headers, out, why);
	if (strstr(err, why) == NULL)
		fail_msg("%s: \"%s\", want \"%s\"", headers, err, why);
	assert_string_equal(out, "");
}

static void
test_from_domain(void **state)
{
	from_is("From: Alice <alice@Example.COM>\r\nTo: bob@example.org\r\n\r\nbody\r\n",
	        "example.com");
	from_is("To: bob@example.org\nFrom: alice@example.com\n\n", "example.com");
	from_is("from : alice@example.com", "example.com"); /* no end, name in any case */
	from_is("From:\r\n \"Alice\"\r\n\t<alice@example.com>\r\n\r\n", "example.com");
	from_is("From: alice@example.com.\r\n", "example.com");
	from_is("From: \"Doe, John\" <j@example.com> (work, really)\r\n", "example.com");
	from_is("From: (a@paypal.example) alice@example.com\r\n", "example.com");
	from_is("From: \"a@paypal.example\"@example.com\r\n", "example.com");
	from_is("From: \"Alice <a@paypal.example>\" <alice@example.com>\r\n", "example.com");
	/* Several mailboxes in one domain, groups read through. */
	from_is("From: a@example.com, \"B\" <b@EXAMPLE.com>,c@example.com\r\n", "example.com");
	from_is("From: Team: a@example.com, b@example.com;\r\n", "example.com");
	from_is("From: a@example.com, Nobody:;\r\n", "example.com");
	/* Other originator fields do not count; neither does the body. */
	from_is("Sender: s@other.example\r\nResent-From: r@other.example\r\n"
	        "From: a@example.com\r\n\r\nFrom: b@other.example\r\n",
	        "example.com");
	/* An mbox "From " line has no colon where a field name ends. */
	from_is("From alice@other.example Mon Jan  1 00:00:00 2024\r\nFrom: a@example.com\r\n",
	        "example.com");

	from_bad("To: bob@example.org\r\n\r\n", "no From field");
	from_bad("", "no From field");
	from_bad("To: bob@example.org\r\n\r\nFrom: a@example.com\r\n", "no From field");
	from_bad("From: a@example.com\r\nFrom: b@example.com\r\n", "2 From fields");
	from_bad("From: a@example.com\r\nfrom: a@example.com\r\n", "2 From fields");
	from_bad("From:\r\n", "From has no mailbox");
	from_bad("From:  (nobody)\r\n", "From has no mailbox");
	from_bad("From: undisclosed-recipients:;\r\n", "From has no mailbox");
	from_bad("From: alice\r\n", "From has a mailbox without a domain");
	from_bad("From: Alice <alice>\r\n", "From has a mailbox without a domain");
	from_bad("From: a@example.com, b@example.net\r\n", "several domains (example.com, "
	                                                   "example.net)");
	from_bad("From: a@example.com, b@mail.example.com\r\n", "several domains");
	from_bad("From: G: a@example.com;, b@example.net\r\n", "several domains");
	from_bad("From: a@paypal.example <b@example.com>\r\n", "several '@'");
	from_bad("From: <@relay.example:a@example.com>\r\n", "several '@'"); /* obs-route */
	from_bad("From: a@[192.0.2.1]\r\n", "not a domain name");
	from_bad("From: a@ex\xc3\xa4mple.com\r\n", "not a domain name");
	from_bad("From: a@example..com\r\n", "not a domain name");
	from_bad("From: <a@example.com\r\n", "unterminated angle address");
	from_bad("From: <<a@example.com>>\r\n", "'<' inside an angle address");
	from_bad("From: \"Alice <a@example.com>\r\n", "unterminated quoted string");
	from_bad("From: \"Alice\\\" <a@example.com>\r\n", "unterminated quoted string");
	from_bad("From: (Alice <a@example.com>\r\n", "unterminated comment");
	from_bad("From: ((Alice) <a@example.com>\r\n", "unterminated comment");

	char out[DNS_NAME_MAX + 1];
	assert_int_equal(dmarc_from_domain("From: x\r\n", 9, out, NULL, 0), -1);
	assert_int_equal(dmarc_from_domain("From: a@b.example", 17, out, NULL, 0), 0);
	/* len is the truth: the domain ends where the buffer does. */
	assert_int_equal(dmarc_from_domain("From: a@example.comXXX", 19, out, NULL, 0), 0);
	assert_string_equal(out, "example.com");
}

static void
test_from_domain_hostile(void **state)
{
	size_t big = 1 << 20, n;
	char *h = malloc(big + 64), out[DNS_NAME_MAX + 1], err[256];

	/* A hundred thousand mailboxes: one pass, one answer. */
	n = (size_t)sprintf(h, "From: ");
	while (n + 20 < big)
		n += (size_t)sprintf(h + n, "a@example.com, ");
	n += (size_t)sprintf(h + n, "z@example.com\r\n\r\n");
	assert_int_equal(dmarc_from_domain(h, n, out, err, sizeof(err)), 0);
	assert_string_equal(out, "example.com");

	/* Deeply nested comments, never closed. */
	n = (size_t)sprintf(h, "From: a@example.com ");
	memset(h + n, '(', big - n);
	assert_int_equal(dmarc_from_domain(h, big, out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unterminated comment"));

	/* A backslash as the very last octet. */
	n = (size_t)sprintf(h, "From: \"a\\");
	assert_int_equal(dmarc_from_domain(h, n, out, err, sizeof(err)), -1);

	/* Many thousand From fields. */
	n = 0;
	while (n + 30 < big)
		n += (size_t)sprintf(h + n, "From: a@example.com\r\n");
	assert_int_equal(dmarc_from_domain(h, n, out, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "From fields"));

	/* NUL octets inside the field. */
	const char nul[] = "From: a@exa\0mple.com\r\n";
	assert_int_equal(dmarc_from_domain(nul, sizeof(nul) - 1, out, err, sizeof(err)), -1);
	free(h);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_psl_loads),
	    cmocka_unit_test(test_organizational_domains),
	    cmocka_unit_test(test_alignment_matrix),
	    cmocka_unit_test(test_from_domain),
	    cmocka_unit_test(test_from_domain_hostile),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
