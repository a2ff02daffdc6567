/* config_load() errors: each names the file, the line and the setting, and one run reports
 * every bad value. */

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
#include "test_conf_util.h"

static void
test_unknown_settings(void **state)
{
	expect(errors_of("threads = 1\nthread = 2\n"), "2: thread: unknown setting");
	expect(errors_of("smtp {\n\tmax_recipient = 5\n}\n"),
	       "2: smtp.max_recipient: unknown setting");
	expect(errors_of("listener \"a\" {\n address = \"127.0.0.1:25\"\n port = 25\n}\n"),
	       "3: listener \"a\".port: unknown setting");
	expect(errors_of("spooler {\n}\n"), "1: spooler: unknown setting");
}

static void
test_syntax_errors(void **state)
{
	expect(errors_of("threads 3\n"), "1: threads: expected '=' after the name");
	expect(errors_of("\nlistener {\n}\n"), "2: listener: needs a title");
	expect(errors_of("smtp = 3\n"), "1: smtp: expected '{' to open the section");
	expect(errors_of("threads += 3\n"), "1: threads: '+=' works on lists only");
	expect(errors_of("smtp {\n max_errors = 3\n"), "1: '{' is never closed");
	expect(errors_of("threads = 1\n}\n"), "2: '}' without a '{' to close");
	expect(errors_of("event_log = \"abc\n"), "1: unterminated \"...\" string");
	expect(errors_of("threads = 1 /* abc\n"), "1: unterminated /* comment");
}

static void
test_bad_types(void **state)
{
	expect(errors_of("threads = \"four\"\n"), "1: threads: \"four\": expected a whole number");
	expect(errors_of("threads = -1\n"), "1: threads: \"-1\": expected a whole number");
	expect(errors_of("threads = 4.5\n"), "1: threads: \"4.5\": expected a whole number");
	expect(errors_of("threads = 0x10\n"), "1: threads: \"0x10\": expected a whole number");
	expect(errors_of("smtp {\nreject_8bit_without_8bitmime = maybe\n}\n"),
	       "2: smtp.reject_8bit_without_8bitmime: \"maybe\": expected true or false");
	expect(errors_of("threads = 99999999999999999999999\n"),
	       "1: threads: \"99999999999999999999999\": too large");
}

static void
test_sizes(void **state)
{
	expect(errors_of("smtp {\n max_message_size = \"25Q\"\n}\n"),
	       "2: smtp.max_message_size: \"25Q\": expected a number of octets");
	expect(errors_of("smtp {\n max_message_size = \"25MB\"\n}\n"),
	       "2: smtp.max_message_size: \"25MB\": expected");
	expect(errors_of("smtp {\n max_message_size = 0\n}\n"),
	       "2: smtp.max_message_size: \"0\": must be from 1k to 1G");
	expect(errors_of("smtp {\n max_message_size = 1023\n}\n"),
	       "2: smtp.max_message_size: \"1023\": must be from 1k to 1G");
	expect(errors_of("smtp {\n max_message_size = \"2G\"\n}\n"),
	       "2: smtp.max_message_size: \"2G\": must be from 1k to 1G");
	expect(errors_of("spool {\n max_size = \"99999999999T\"\n}\n"),
	       "2: spool.max_size: \"99999999999T\": too large");
	expect(errors_of("spool {\n max_size = \"8388608T\"\n}\n"), /* 2^63 > LONG_MAX */
	       "2: spool.max_size: \"8388608T\": too large");
	expect(errors_of("spool {\n max_size = 0\n}\n"),
	       "2: spool.max_size: \"0\": must be at least 1M");
}

static void
test_durations(void **state)
{
	expect(errors_of("smtp {\n command_timeout = \"5M\"\n}\n"),
	       "2: smtp.command_timeout: \"5M\": expected a number of seconds");
	expect(errors_of("smtp {\n command_timeout = 0\n}\n"),
	       "2: smtp.command_timeout: \"0\": must be from 1s to 1d");
	expect(errors_of("smtp {\n data_timeout = \"0s\"\n}\n"),
	       "2: smtp.data_timeout: \"0s\": must be from 1s to 1d");
	expect(errors_of("smtp {\n data_timeout = \"2d\"\n}\n"),
	       "2: smtp.data_timeout: \"2d\": must be from 1s to 1d");
}

static void
test_limits(void **state)
{
	expect(errors_of("threads = 65\n"), "1: threads: \"65\": must be from 0 to 64");
	expect(errors_of("smtp {\n command_line_max = 511\n}\n"),
	       "2: smtp.command_line_max: \"511\": must be from 512 to 65536 (RFC 5321");
	expect(errors_of("smtp {\n data_line_max = 999\n}\n"),
	       "2: smtp.data_line_max: \"999\": must be 0 (no limit) or from 1000 to 1048576");
	expect(errors_of("smtp {\n max_recipients = 0\n}\n"),
	       "2: smtp.max_recipients: \"0\": must be from 1 to 100000");
	expect(errors_of("smtp {\n max_errors = 0\n}\n"), "2: smtp.max_errors: \"0\": must be");
	expect(errors_of("smtp {\n max_sessions = 0\n}\n"), "2: smtp.max_sessions: \"0\": must be");
	expect(errors_of("smtp {\n max_sessions_per_ip = 0\n}\n"),
	       "2: smtp.max_sessions_per_ip: \"0\": must be");
	expect(errors_of("spool {\n batch_max = 0\n}\n"), "2: spool.batch_max: \"0\": must be");
	expect(errors_of("spool {\n directory = \"\"\n}\n"),
	       "2: spool.directory: must not be empty");
}

static void
test_max_recipients_below_rfc_minimum_is_allowed(void **state)
{
	struct config *c;
	FILE *fp;

	snprintf(path, sizeof(path), "%s/ok.conf", tmpdir);
	fp = fopen(path, "w");
	fputs("smtp {\n max_recipients = 1\n}\n", fp);
	fclose(fp);
	c = config_load(path, err, sizeof(err)); /* a warning only */
	assert_non_null(c);
	assert_int_equal(c->smtp.max_recipients, 1);
	config_free(c);
}

static void
test_netmasks(void **state)
{
	const char *e = errors_of("relay_networks = {\n"
	                          " \"127.0.0.0/8\",\n"
	                          " \"10.0.0.0/33\",\n"
	                          " \"::1/129\",\n"
	                          " \"10.1.0.0/8\",\n"
	                          " \"localhost\",\n"
	                          " \"10.0.0.0/\"\n"
	                          "}\n");

	expect(e, "3: relay_networks: \"10.0.0.0/33\": an IPv4 prefix is at most /32");
	expect(e, "4: relay_networks: \"::1/129\": an IPv6 prefix is at most /128");
	expect(e, "5: relay_networks: \"10.1.0.0/8\": address bits beyond the prefix are set");
	expect(e, "6: relay_networks: \"localhost\": expected an IPv4 or IPv6 address");
	expect(e, "7: relay_networks: \"10.0.0.0/\": the prefix after / must be");
	assert_int_equal(count_lines(e), 5);
}

static void
test_listener_addresses(void **state)
{
	const char *e = errors_of("listener \"a\" { address = \"127.0.0.1\" }\n"
	                          "listener \"b\" { address = \"127.0.0.1:0\" }\n"
	                          "listener \"c\" { address = \"127.0.0.1:65536\" }\n"
	                          "listener \"d\" { address = \"localhost:25\" }\n"
	                          "listener \"e\" { address = \"::1:25\" }\n"
	                          "listener \"f\" { address = \"[::1]\" }\n"
	                          "listener \"g\" { address = \"[127.0.0.1]:25\" }\n"
	                          "listener \"h\" { address = \"127.0.0.1:+25\" }\n"
	                          "listener \"i\" { address = \"[::1]:25\" }\n");

	expect(e, "1: listener \"a\".address: \"127.0.0.1\": a port is required");
	expect(e, "2: listener \"b\".address: \"127.0.0.1:0\": the port must be a number from 1");
	expect(e, "3: listener \"c\".address: \"127.0.0.1:65536\": the port must be");
	expect(e, "4: listener \"d\".address: \"localhost:25\": not a numeric IPv4 address");
	expect(e, "5: listener \"e\".address: \"::1:25\": an IPv6 address goes in brackets");
	expect(e, "6: listener \"f\".address: \"[::1]\": expected a numeric address and port");
	expect(e, "7: listener \"g\".address: \"[127.0.0.1]:25\": not a numeric IPv6 address");
	expect(e, "8: listener \"h\".address: \"127.0.0.1:+25\": the port must be");
	assert_int_equal(count_lines(e), 8);
}

static void
test_listener_duplicates(void **state)
{
	const char *e = errors_of("listener \"a\" {\n address = \"127.0.0.1:2525\"\n}\n"
	                          "listener \"b\" {\n address = \"127.0.0.1:2525\"\n}\n");

	expect(e, "5: listener \"b\".address: \"127.0.0.1:2525\": already used by listener \"a\" "
	          "(line 2)");

	expect(errors_of("listener \"a\" { address = \"127.0.0.1:1\" }\n"
	                 "listener \"a\" { address = \"127.0.0.1:2\" }\n"),
	       "2: listener \"a\": defined twice");
}

static void
test_listener_needs_address_and_a_plain_title(void **state)
{
	expect(errors_of("listener \"a\" {\n}\n"),
	       "2: listener \"a\".address: required, as in address = ");
	expect(errors_of("listener \"a b\" {\n address = \"127.0.0.1:25\"\n}\n"),
	       "3: listener \"a b\": the title must be 1 to 64 letters");
	expect(errors_of("listener \"\" {\n address = \"127.0.0.1:25\"\n}\n"),
	       "3: listener \"\": the title must be");
}

static void
test_top_level_values(void **state)
{
	expect(errors_of("log_level = \"verbose\"\n"),
	       "1: log_level: \"verbose\": expected debug, info, warn or error");
	expect(errors_of("hostname = \"mta example.com\"\n"),
	       "1: hostname: \"mta example.com\": not a valid domain name");
	expect(errors_of("hostname = \"\"\n"), "1: hostname: \"\": not a valid domain name");
	expect(errors_of("hostname = \"-mta.example.com\"\n"), "1: hostname: ");
}

static void
test_spool_smaller_than_one_message(void **state)
{
	expect(errors_of("\nspool {\n max_size = \"1M\"\n}\n"),
	       "3: spool.max_size: 1M is smaller than smtp.max_message_size (25M)");
	expect(errors_of("smtp {\n max_message_size = \"1G\"\n}\nspool { max_size = \"512M\" }\n"),
	       "4: spool.max_size: 512M is smaller than smtp.max_message_size (1G)");
}

static void
test_every_error_is_reported(void **state)
{
	const char *e = errors_of("threads = 100\n"
	                          "log_level = \"loud\"\n"
	                          "smtp {\n"
	                          "\tmax_errors = 0\n"
	                          "\tcommand_timeout = \"soon\"\n"
	                          "}\n"
	                          "relay_networks = { \"300.0.0.0/8\" }\n");

	expect(e, "1: threads:");
	expect(e, "2: log_level:");
	expect(e, "4: smtp.max_errors:");
	expect(e, "5: smtp.command_timeout:");
	expect(e, "7: relay_networks:");
	assert_int_equal(count_lines(e), 5);
}

static void
test_unreadable_files(void **state)
{
	char dir[512];

	config_load("/nonexistent/drover.conf", err, sizeof(err));
	assert_string_equal(err,
	                    "/nonexistent/drover.conf: cannot read: No such file or directory");
	snprintf(dir, sizeof(dir), "%s", tmpdir);
	assert_null(config_load(dir, err, sizeof(err)));
	assert_non_null(strstr(err, ": cannot read: not a regular file"));
}

static void
test_small_error_buffer_is_terminated(void **state)
{
	char small[16];

	memset(small, 'x', sizeof(small));
	assert_null(config_load("/nonexistent/drover.conf", small, sizeof(small)));
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_null(config_load("/nonexistent/drover.conf", NULL, 0));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unknown_settings),
	    cmocka_unit_test(test_syntax_errors),
	    cmocka_unit_test(test_bad_types),
	    cmocka_unit_test(test_sizes),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_max_recipients_below_rfc_minimum_is_allowed),
	    cmocka_unit_test(test_netmasks),
	    cmocka_unit_test(test_listener_addresses),
	    cmocka_unit_test(test_listener_duplicates),
	    cmocka_unit_test(test_listener_needs_address_and_a_plain_title),
	    cmocka_unit_test(test_top_level_values),
	    cmocka_unit_test(test_spool_smaller_than_one_message),
	    cmocka_unit_test(test_every_error_is_reported),
	    cmocka_unit_test(test_unreadable_files),
	    cmocka_unit_test(test_small_error_buffer_is_terminated),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
