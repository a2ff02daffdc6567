/* verp { } and the bounce listener role: a good section, each error at its file:line, the
 * secret files (read at load, final line end dropped, refused when short, long, unprintable,
 * readable by everyone, missing, or the same twice), and the bounds shared with feedback.h. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include <sys/stat.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/defaults.h"
#include "feedback/feedback.h" /* constants only: conf does not link feedback */
#include "test_conf_util.h"

_Static_assert(LIM_VERP_PREFIX_MAX == FEEDBACK_VERP_PREFIX_MAX, "prefix bound");
_Static_assert(LIM_VERP_SECRET_MIN == FEEDBACK_SECRET_MIN, "secret bound");
_Static_assert(LIM_VERP_SECRET_MAX == FEEDBACK_SECRET_MAX, "secret bound");

static char secret_path[600], old_path[600];

/* A secret file of the given text and mode; returns its path (in one of two buffers). */
static const char *
secret(char *buf, const char *name, const char *text, mode_t mode)
{
	FILE *fp;

	snprintf(buf, 600, "%s/%s", tmpdir, name);
	fp = fopen(buf, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	assert_int_equal(chmod(buf, mode), 0);
	return buf;
}

static struct config *
load(const char *text)
{
	struct config *c;

	put("drover.conf", text);
	c = config_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("did not load:\n%s\n%s", text, err);
	return c;
}

static void
test_off_by_default(void **state)
{
	struct config *c = load("threads = 1\n");

	assert_null(c->verp.domain);
	assert_null(c->verp.secret);
	assert_string_equal(c->verp.prefix, "bounce");
	config_free(c);
}

static void
test_good_section(void **state)
{
	char text[2048];
	struct config *c;

	secret(secret_path, "verp.secret", "0123456789abcdef0123456789abcdef\n", 0600);
	secret(old_path, "verp.old", "an-older-secret-of-some-length\r\n", 0640);
	snprintf(text, sizeof(text),
	         "verp {\n"
	         "  domain = \"Bounces.Example.COM\"\n"
	         "  prefix = \"rp\"\n"
	         "  secret_file = \"%s\"\n"
	         "  previous_secret_file = \"%s\"\n"
	         "}\n"
	         "listener \"bounces\" {\n"
	         "  address = \"127.0.0.1:2526\"\n"
	         "  role = \"bounce\"\n"
	         "}\n",
	         secret_path, old_path);
	c = load(text);
	assert_string_equal(c->verp.domain, "bounces.example.com");
	assert_string_equal(c->verp.prefix, "rp");
	/* The final line end is not part of the secret (CR LF too) */
	assert_string_equal(c->verp.secret, "0123456789abcdef0123456789abcdef");
	assert_string_equal(c->verp.previous_secret, "an-older-secret-of-some-length");
	assert_string_equal(c->verp.secret_file, secret_path);
	assert_int_equal(c->nlisteners, 1);
	assert_int_equal(c->listeners[0].role, ROLE_BOUNCE);
	config_free(c);
}

/* A bounce listener needs no AUTH (unlike submission), but it needs the verp section. */
static void
test_bounce_role_needs_verp_not_auth(void **state)
{
	const char *e = errors_of("listener \"bounces\" {\n"
	                          "  address = \"127.0.0.1:2526\"\n"
	                          "  role = \"bounce\"\n"
	                          "}\n");

	expect(e, " listener \"bounces\".role: bounce needs a verp section");
	assert_null(strstr(e, "requires AUTH"));
	expect(errors_of(
	           "listener \"x\" {\n  address = \"127.0.0.1:2526\"\n  role = \"bouncer\"\n}\n"),
	       "3: listener \"x\".role: \"bouncer\": expected mx, submission, submissions or "
	       "bounce");
}

static void
test_bad_values_at_their_lines(void **state)
{
	char text[2048];

	secret(secret_path, "verp.secret", "0123456789abcdef0123456789abcdef", 0600);
	snprintf(text, sizeof(text),
	         "verp {\n"
	         "  domain = \"not a domain\"\n"
	         "  prefix = \"bounces+x\"\n"
	         "  secret_file = \"%s\"\n"
	         "}\n",
	         secret_path);
	const char *e = errors_of(text);
	expect(e, "2: verp.domain: \"not a domain\": not a domain name");
	expect(e, "3: verp.prefix: \"bounces+x\": expected 1 to 7 letters");
	assert_int_equal(count_lines(e), 2);

	snprintf(text, sizeof(text),
	         "verp {\n  domain = \"b.example\"\n  prefix = \"bounces\"\n  prefix = "
	         "\"verylong\"\n  secret_file = \"%s\"\n}\n",
	         secret_path);
	expect(errors_of(text), "4: verp.prefix: \"verylong\": expected 1 to 7");
	snprintf(text, sizeof(text),
	         "verp {\n  domain = \"b.example\"\n  prefix = \".b\"\n  secret_file = \"%s\"\n}\n",
	         secret_path);
	expect(errors_of(text), "3: verp.prefix: \".b\"");
	expect(errors_of("verp {\n  domain = \"b.example\"\n  secret = \"x\"\n}\n"),
	       "3: verp.secret: unknown setting");
}

static void
test_secret_files(void **state)
{
	char text[2048];
	const char *e;

#define WITH(file)                                                                                 \
	snprintf(text, sizeof(text),                                                               \
	         "verp {\n  domain = \"b.example\"\n  secret_file = \"%s\"\n}\n", file)

	WITH(secret(secret_path, "short", "fifteen-octets!\n", 0600));
	expect(errors_of(text), "3: verp.secret_file: \"");
	assert_non_null(strstr(err, "15 octets: at least 16 are needed"));

	{
		char big[200];

		memset(big, 'a', 129);
		big[129] = '\0';
		WITH(secret(secret_path, "long", big, 0600));
		expect(errors_of(text), "3: verp.secret_file: \"");
		assert_non_null(strstr(err, "longer than 128 octets"));
		big[128] = '\0';
		WITH(secret(secret_path, "long128", big, 0600));
		config_free(load(text));
	}

	WITH(secret(secret_path, "space", "a secret with spaces inside\n", 0600));
	errors_of(text);
	assert_non_null(strstr(err, "octet 2 is not a printable character"));

	WITH(secret(secret_path, "open", "0123456789abcdef0123456789abcdef\n", 0644));
	errors_of(text);
	assert_non_null(strstr(err, "readable by every user (mode 0644)"));

	WITH("/nonexistent/verp.secret");
	expect(errors_of(text),
	       "3: verp.secret_file: \"/nonexistent/verp.secret\": cannot be read");

	snprintf(text, sizeof(text), "verp {\n  domain = \"b.example\"\n  secret_file = \"\"\n}\n");
	expect(errors_of(text), "3: verp.secret_file: must not be empty");
#undef WITH
	(void)e;
}

static void
test_settings_that_need_each_other(void **state)
{
	char text[2048];
	const char *e;

	secret(secret_path, "cur", "0123456789abcdef0123456789abcdef", 0600);
	secret(old_path, "old", "0123456789abcdef0123456789abcdef\n", 0600);

	/* The section ends on line 3: its cross checks are reported there */
	e = errors_of("verp {\n  domain = \"b.example\"\n}\n");
	expect(e, "3: verp.secret_file: required with verp.domain");

	snprintf(text, sizeof(text), "verp {\n  secret_file = \"%s\"\n}\n", secret_path);
	expect(errors_of(text), "3: verp.domain: required when a secret is set");

	snprintf(text, sizeof(text),
	         "verp {\n  domain = \"b.example\"\n  previous_secret_file = \"%s\"\n}\n",
	         old_path);
	e = errors_of(text);
	expect(e, "4: verp.previous_secret_file: set without verp.secret_file");

	/* The same secret twice, whatever the line ends */
	snprintf(text, sizeof(text),
	         "verp {\n  domain = \"b.example\"\n  secret_file = \"%s\"\n"
	         "  previous_secret_file = \"%s\"\n}\n",
	         secret_path, old_path);
	expect(errors_of(text), "5: verp.previous_secret_file: holds the same secret");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_off_by_default),
	    cmocka_unit_test(test_good_section),
	    cmocka_unit_test(test_bounce_role_needs_verp_not_auth),
	    cmocka_unit_test(test_bad_values_at_their_lines),
	    cmocka_unit_test(test_secret_files),
	    cmocka_unit_test(test_settings_that_need_each_other),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
