/* config_changes() and config_same_settings(): what a reload reports as changed. */

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "conf/conf.h"

static char tmpdir[] = "/tmp/drover-test-digest-XXXXXX";

struct seen {
	char what[16][128];
	enum config_change change[16];
	bool restart[16];
	size_t n;
};

static void
record(void *arg, const char *key, enum config_change change, bool restart)
{
	struct seen *s = arg;

	assert_true(s->n < 16);
	snprintf(s->what[s->n], sizeof(s->what[0]), "%s", key);
	s->change[s->n] = change;
	s->restart[s->n] = restart;
	s->n++;
}

static struct config *
load(const char *name, const char *text)
{
	char path[256], err[4096];
	struct config *c;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	c = config_load(path, err, sizeof(err));
	if (c == NULL)
		fail_msg("config_load: %s", err);
	return c;
}

static const char base[] = "hostname = \"mx.example.com\"\n"
                           "threads = 2\n"
                           "listener \"a\" {\n  address = \"127.0.0.1:2525\"\n}\n"
                           "route \"example.net\" {\n  hosts = { \"127.0.0.1:2600\" }\n}\n";

static size_t
find(const struct seen *s, const char *what)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->what[i], what) == 0)
			return i;
	fail_msg("no change reported for %s", what);
	return 0;
}

static void
test_same_file_no_change(void **state)
{
	struct config *a = load("a.conf", base);
	/* Layout, comments and a default written out make no difference. */
	struct config *b = load("b.conf", "# the same\nhostname=\"mx.example.com\"\n"
	                                  "threads = 2\nlistener \"a\" { address = "
	                                  "\"127.0.0.1:2525\" }\nroute \"example.net\" {\n"
	                                  "  hosts = { \"127.0.0.1:2600\" }\n}\n"
	                                  "smtp {\n  max_recipients = 1000\n}\n");
	struct seen s = {0};

	assert_int_equal(config_changes(a, b, record, &s), 0);
	assert_true(config_same_settings(a, b, "listener"));
	config_unref(a);
	config_unref(b);
}

static void
test_added_changed_removed_and_restart(void **state)
{
	struct config *a = load("a.conf", base);
	struct config *b = load("b.conf", "hostname = \"mx.example.com\"\n"
	                                  "threads = 3\n"
	                                  "listener \"a\" {\n  address = \"127.0.0.1:2526\"\n}\n"
	                                  "listener \"b\" {\n  address = \"127.0.0.1:2527\"\n}\n");
	struct seen s = {0};
	size_t i;

	/* delivery.enabled = auto: on with a route, off without one (a restart applies it). */
	assert_int_equal(config_changes(a, b, record, &s), 5);
	assert_true(s.restart[find(&s, "delivery.enabled")]);
	i = find(&s, "threads");
	assert_int_equal(s.change[i], CONFIG_CHANGED);
	assert_true(s.restart[i]);
	i = find(&s, "listener \"a\"");
	assert_int_equal(s.change[i], CONFIG_CHANGED);
	assert_false(s.restart[i]);
	i = find(&s, "listener \"b\"");
	assert_int_equal(s.change[i], CONFIG_ADDED);
	i = find(&s, "route \"example.net\"");
	assert_int_equal(s.change[i], CONFIG_REMOVED);
	assert_false(s.restart[i]);
	assert_false(config_same_settings(a, b, "listener"));
	assert_false(config_same_settings(a, b, "route"));
	assert_true(config_same_settings(a, b, "tls_certificate"));
	config_unref(a);
	config_unref(b);
}

static void
test_restart_only_settings_inside_sections(void **state)
{
	struct config *a = load("a.conf", base);
	struct config *b = load("b.conf", "hostname = \"mx.example.com\"\n"
	                                  "threads = 2\n"
	                                  "listener \"a\" {\n  address = \"127.0.0.1:2525\"\n}\n"
	                                  "route \"example.net\" {\n  hosts = { \"127.0.0.1:2600\" "
	                                  "}\n}\n"
	                                  "control {\n  address = \"127.0.0.1:9025\"\n}\n");
	struct seen s = {0};

	config_changes(a, b, record, &s);
	assert_false(s.restart[find(&s, "control")]);
	assert_true(s.restart[find(&s, "control.address")]);
	config_unref(a);
	config_unref(b);
}

static void
test_references(void **state)
{
	struct config *a = load("a.conf", base);

	assert_ptr_equal(config_ref(a), a);
	config_unref(a);
	assert_string_equal(a->hostname, "mx.example.com"); /* one reference left */
	config_unref(a);
	config_unref(NULL);
}

static int
setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/a.conf", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/b.conf", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_file_no_change),
	    cmocka_unit_test(test_added_changed_removed_and_restart),
	    cmocka_unit_test(test_restart_only_settings_inside_sections),
	    cmocka_unit_test(test_references),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
