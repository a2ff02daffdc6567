/* config_load(): embedded defaults, a full file, include(), the shipped example. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "conf/conf.h"
#include "conf/defaults.h"

static char tmpdir[] = "/tmp/drover-test-conf-XXXXXX";
static char err[8192];

/* Writes dir/name (creating subdirectories one level deep); returns the path, static. */
static const char *
put(const char *name, const char *text)
{
	static char path[512];
	char *slash;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	if ((slash = strrchr(path, '/')) != NULL && slash > path + strlen(tmpdir)) {
		*slash = '\0';
		mkdir(path, 0700);
		*slash = '/';
	}
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

static struct config *
load_ok(const char *path)
{
	struct config *c = config_load(path, err, sizeof(err));

	if (c == NULL)
		fail_msg("config_load(%s) failed:\n%s", path ? path : "NULL", err);
	return c;
}

static char *
load_fails(const char *path)
{
	struct config *c = config_load(path, err, sizeof(err));

	if (c != NULL)
		fail_msg("config_load(%s) succeeded", path);
	return err;
}

static void
assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("expected \"%s\" in:\n%s", needle, haystack);
}

static uint16_t
port_of(const struct listener_conf *l)
{
	if (l->sockaddr.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&l->sockaddr)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)&l->sockaddr)->sin6_port);
}

static void
assert_defaults(const struct config *c)
{
	assert_non_null(c->hostname);
	assert_true(strlen(c->hostname) > 0);
	assert_true(c->threads >= 1 && c->threads <= DEF_THREADS_CPU_CAP);
	assert_string_equal(c->log_level, DEF_LOG_LEVEL);
	assert_int_equal(c->log_level_value, 1); /* LOG_INFO */
	assert_string_equal(c->event_log, DEF_EVENT_LOG);
	assert_string_equal(c->spool_directory, DEF_SPOOL_DIRECTORY);
	assert_int_equal(c->spool_max_size, 4ULL << 30);
	assert_int_equal(c->spool_batch_max, DEF_SPOOL_BATCH_MAX);

	assert_int_equal(c->nrelay_networks, 2);
	assert_int_equal(c->relay_networks[0].family, AF_INET);
	assert_int_equal(c->relay_networks[0].prefix, 8);
	assert_int_equal(c->relay_networks[0].addr[0], 127);
	assert_int_equal(c->relay_networks[1].family, AF_INET6);
	assert_int_equal(c->relay_networks[1].prefix, 128);

	assert_int_equal(c->nlisteners, 1);
	assert_string_equal(c->listeners[0].name, "smtp");
	assert_string_equal(c->listeners[0].address, "127.0.0.1:2525");
	assert_int_equal(c->listeners[0].sockaddr.ss_family, AF_INET);
	assert_int_equal(c->listeners[0].socklen, sizeof(struct sockaddr_in));
	assert_int_equal(port_of(&c->listeners[0]), 2525);

	assert_int_equal(c->smtp.max_sessions, 1000);
	assert_int_equal(c->smtp.max_sessions_per_ip, 100);
	assert_int_equal(c->smtp.max_message_size, 25ULL << 20);
	assert_int_equal(c->smtp.max_recipients, 1000);
	assert_int_equal(c->smtp.max_errors, 20);
	assert_int_equal(c->smtp.command_line_max, 1024);
	assert_int_equal(c->smtp.data_line_max, 1000);
	assert_int_equal(c->smtp.command_timeout_s, 300);
	assert_int_equal(c->smtp.data_timeout_s, 300);
	assert_true(c->smtp.reject_8bit_without_8bitmime);
}

static void
test_embedded_defaults_without_file(void **state)
{
	struct config *c = load_ok(NULL);

	assert_null(c->path);
	assert_defaults(c);
	config_free(c);
}

static void
test_empty_file_is_the_defaults(void **state)
{
	struct config *c = load_ok(put("empty.conf", ""));

	assert_non_null(c->path);
	assert_defaults(c);
	config_free(c);
}

static void
test_full_file(void **state)
{
	const char *path = put(
	    "full.conf", "hostname = \"mta.example.com\"\n"
	                 "threads = 3\n"
	                 "log_level = \"debug\"\n"
	                 "event_log = \"-\"\n"
	                 "relay_networks = { \"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\" }\n"
	                 "spool {\n"
	                 "\tdirectory = \"/var/spool/drover\"\n"
	                 "\tmax_size = \"64G\"\n"
	                 "\tbatch_max = 64\n"
	                 "}\n"
	                 "listener \"mx\" {\n"
	                 "\taddress = \"0.0.0.0:25\"\n"
	                 "}\n"
	                 "listener \"submission-v6\" {\n"
	                 "\taddress = \"[::]:587\"\n"
	                 "}\n"
	                 "smtp {\n"
	                 "\tmax_sessions = 5000\n"
	                 "\tmax_sessions_per_ip = 50\n"
	                 "\tmax_message_size = \"50M\"\n"
	                 "\tmax_recipients = 100\n"
	                 "\tmax_errors = 10\n"
	                 "\tcommand_line_max = 2048\n"
	                 "\tdata_line_max = 0\n"
	                 "\tcommand_timeout = \"2m\"\n"
	                 "\tdata_timeout = 600\n"
	                 "\treject_8bit_without_8bitmime = false\n"
	                 "}\n");
	struct config *c = load_ok(path);

	assert_string_equal(c->path, path);
	assert_string_equal(c->hostname, "mta.example.com");
	assert_int_equal(c->threads, 3);
	assert_string_equal(c->log_level, "debug");
	assert_int_equal(c->log_level_value, 0); /* LOG_DEBUG */
	assert_string_equal(c->event_log, "-");

	assert_int_equal(c->nrelay_networks, 3);
	assert_int_equal(c->relay_networks[0].prefix, 8);
	assert_int_equal(c->relay_networks[1].family, AF_INET6);
	assert_int_equal(c->relay_networks[1].prefix, 32);
	assert_int_equal(c->relay_networks[2].prefix, 32);

	assert_string_equal(c->spool_directory, "/var/spool/drover");
	assert_int_equal(c->spool_max_size, 64ULL << 30);
	assert_int_equal(c->spool_batch_max, 64);

	assert_int_equal(c->nlisteners, 2);
	assert_string_equal(c->listeners[0].name, "mx");
	assert_string_equal(c->listeners[0].address, "0.0.0.0:25");
	assert_int_equal(port_of(&c->listeners[0]), 25);
	assert_string_equal(c->listeners[1].name, "submission-v6");
	assert_int_equal(c->listeners[1].sockaddr.ss_family, AF_INET6);
	assert_int_equal(c->listeners[1].socklen, sizeof(struct sockaddr_in6));
	assert_int_equal(port_of(&c->listeners[1]), 587);

	assert_int_equal(c->smtp.max_sessions, 5000);
	assert_int_equal(c->smtp.max_sessions_per_ip, 50);
	assert_int_equal(c->smtp.max_message_size, 50ULL << 20);
	assert_int_equal(c->smtp.max_recipients, 100);
	assert_int_equal(c->smtp.max_errors, 10);
	assert_int_equal(c->smtp.command_line_max, 2048);
	assert_int_equal(c->smtp.data_line_max, 0);
	assert_int_equal(c->smtp.command_timeout_s, 120);
	assert_int_equal(c->smtp.data_timeout_s, 600);
	assert_false(c->smtp.reject_8bit_without_8bitmime);
	config_free(c);
}

static void
test_threads_zero_means_one_per_cpu(void **state)
{
	struct config *c = load_ok(put("t.conf", "threads = 0\n"));
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	assert_int_equal(c->threads, cpus > 16 ? 16 : cpus);
	config_free(c);
}

static void
test_empty_relay_networks_admits_nobody(void **state)
{
	struct config *c = load_ok(put("r.conf", "relay_networks = {}\n"));

	assert_int_equal(c->nrelay_networks, 0);
	config_free(c);
}

static void
test_unquoted_values(void **state)
{
	struct config *c = load_ok(put("u.conf", "smtp {\n max_message_size = 10M\n"
	                                         " command_timeout = 90s\n}\n"
	                                         "log_level = warn\n"));

	assert_int_equal(c->smtp.max_message_size, 10ULL << 20);
	assert_int_equal(c->smtp.command_timeout_s, 90);
	assert_int_equal(c->log_level_value, 2); /* LOG_WARN */
	config_free(c);
}

static void
test_sections_may_repeat_and_merge(void **state)
{
	struct config *c =
	    load_ok(put("m.conf", "smtp { max_errors = 5 }\nsmtp { max_recipients = 200 }\n"));

	assert_int_equal(c->smtp.max_errors, 5);
	assert_int_equal(c->smtp.max_recipients, 200);
	config_free(c);
}

static void
test_include_relative_to_including_file(void **state)
{
	put("inc/limits.conf", "smtp {\n\tmax_errors = 7\n}\ninclude(\"more.conf\")\n");
	put("inc/more.conf", "threads = 5\n");
	const char *path = put("main.conf", "# main\ninclude(\"inc/limits.conf\")\nthreads = 2\n"
	                                    "hostname = \"a.example\"\n");
	struct config *c = load_ok(path);

	assert_int_equal(c->smtp.max_errors, 7);
	assert_int_equal(c->threads, 2); /* the main file sets it after the include */
	assert_string_equal(c->hostname, "a.example");
	config_free(c);
}

static void
test_include_inside_a_section(void **state)
{
	put("lim.conf", "max_recipients = 300\nmax_errors = 3\n");
	struct config *c = load_ok(put("sec.conf", "smtp {\n\tinclude(\"lim.conf\")\n}\n"));

	assert_int_equal(c->smtp.max_recipients, 300);
	assert_int_equal(c->smtp.max_errors, 3);
	config_free(c);
}

static void
test_include_errors_name_the_included_file(void **state)
{
	char expect[512];

	put("bad/inner.conf", "# a comment\n\nsmtp {\n\tmax_errors = 0\n}\n");
	const char *path = put("outer.conf", "threads = 1\ninclude(\"bad/inner.conf\")\n"
	                                     "threads = 100\n");
	char *e = load_fails(path);

	snprintf(expect, sizeof(expect), "%s/bad/inner.conf:4: smtp.max_errors: \"0\"", tmpdir);
	assert_contains(e, expect);
	snprintf(expect, sizeof(expect), "%s/outer.conf:3: threads: \"100\"", tmpdir);
	assert_contains(e, expect);
}

static void
test_include_missing_file(void **state)
{
	char expect[512];
	char *e = load_fails(put("miss.conf", "\ninclude(\"nope.conf\")\nthreads = 99\n"));

	snprintf(expect, sizeof(expect),
	         "%s/miss.conf:2: include: \"%s/nope.conf\": No such file or directory", tmpdir,
	         tmpdir);
	assert_contains(e, expect);
	/* and the rest of the file is still checked */
	snprintf(expect, sizeof(expect), "%s/miss.conf:3: threads: \"99\"", tmpdir);
	assert_contains(e, expect);
}

static void
test_include_loop(void **state)
{
	put("loop/b.conf", "threads = 1\ninclude(\"a.conf\")\n");
	char *e = load_fails(put("loop/a.conf", "include(\"b.conf\")\n"));

	assert_contains(e, "/loop/b.conf:2: include: ");
	assert_contains(e, "already being included (an include loop)");
}

static void
test_include_syntax(void **state)
{
	char *e = load_fails(put("isyn.conf", "threads = 1\ninclude(\"a\", \"b\")\n"));

	assert_contains(e, "/isyn.conf:2: include: expected one file name");
}

static void
test_comments_keep_line_numbers_true(void **state)
{
	/* libconfuse 3.3 alone would count each comment line several times. */
	char *e = load_fails(put("comments.conf", "# one\n"
	                                          "// two\n"
	                                          "/* three\n"
	                                          "   four */\n"
	                                          "threads = 1 # five\n"
	                                          "smtp { # six\n"
	                                          "\tmax_errors = 0\n"
	                                          "}\n"));

	assert_contains(e, "/comments.conf:7: smtp.max_errors: \"0\"");
}

static void
test_comments_inside_lists_and_strings(void **state)
{
	struct config *c = load_ok(put("clist.conf", "relay_networks = {\n"
	                                             "\t\"10.0.0.0/8\",   # office\n"
	                                             "\t\"::1\"  // loopback\n"
	                                             "\t/* \"192.0.2.0/24\", */\n"
	                                             "}\n"
	                                             "event_log = \"/var/log/#drover//x\"\n"));

	assert_int_equal(c->nrelay_networks, 2);
	assert_string_equal(c->event_log, "/var/log/#drover//x");
	config_free(c);
}

/* etc/drover.conf shows every setting at its default: it must load, and equal the defaults. */
static void
test_example_config_is_the_defaults(void **state)
{
	char path[1024];
	const char *src = __FILE__; /* .../tests/unit/test_conf_load.c */
	const char *cut = strstr(src, "tests/unit/");

	if (cut == NULL || src[0] != '/')
		skip();
	snprintf(path, sizeof(path), "%.*setc/drover.conf", (int)(cut - src), src);
	struct config *c = load_ok(path);

	assert_defaults(c);
	config_free(c);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_embedded_defaults_without_file),
	    cmocka_unit_test(test_empty_file_is_the_defaults),
	    cmocka_unit_test(test_full_file),
	    cmocka_unit_test(test_threads_zero_means_one_per_cpu),
	    cmocka_unit_test(test_empty_relay_networks_admits_nobody),
	    cmocka_unit_test(test_unquoted_values),
	    cmocka_unit_test(test_sections_may_repeat_and_merge),
	    cmocka_unit_test(test_include_relative_to_including_file),
	    cmocka_unit_test(test_include_inside_a_section),
	    cmocka_unit_test(test_include_errors_name_the_included_file),
	    cmocka_unit_test(test_include_missing_file),
	    cmocka_unit_test(test_include_loop),
	    cmocka_unit_test(test_include_syntax),
	    cmocka_unit_test(test_comments_keep_line_numbers_true),
	    cmocka_unit_test(test_comments_inside_lists_and_strings),
	    cmocka_unit_test(test_example_config_is_the_defaults),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
