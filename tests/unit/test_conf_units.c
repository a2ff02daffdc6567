/* Sizes and durations as operators write them in the configuration. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "conf/conf.h"

static uint64_t
size_of(const char *text)
{
	uint64_t v = 12345;

	assert_int_equal(parse_size(text, &v), 0);
	return v;
}

static void
assert_size_rejected(const char *text)
{
	uint64_t v = 12345;

	assert_int_equal(parse_size(text, &v), -1);
	assert_int_equal(v, 12345); /* untouched */
}

static uint64_t
duration_of(const char *text)
{
	uint64_t v = 12345;

	assert_int_equal(parse_duration_s(text, &v), 0);
	return v;
}

static void
assert_duration_rejected(const char *text)
{
	uint64_t v = 12345;

	assert_int_equal(parse_duration_s(text, &v), -1);
	assert_int_equal(v, 12345);
}

static void
test_sizes_are_1024_based(void **state)
{
	assert_int_equal(size_of("4096"), 4096);
	assert_int_equal(size_of("10k"), 10 * 1024);
	assert_int_equal(size_of("10K"), 10 * 1024);
	assert_int_equal(size_of("25M"), 25ULL * 1024 * 1024);
	assert_int_equal(size_of("25m"), 25ULL * 1024 * 1024);
	assert_int_equal(size_of("1G"), 1ULL << 30);
	assert_int_equal(size_of("4G"), 4ULL << 30);
	assert_int_equal(size_of("2T"), 2ULL << 40);
	assert_int_equal(size_of("0"),
	                 0); /* parses; each setting decides whether 0 means anything */
	assert_int_equal(size_of("007"), 7);
}

static void
test_size_garbage_is_rejected(void **state)
{
	assert_size_rejected(NULL);
	assert_size_rejected("");
	assert_size_rejected("M");
	assert_size_rejected("25MB"); /* 1000 or 1024? we do not guess */
	assert_size_rejected("25 M");
	assert_size_rejected(" 25M");
	assert_size_rejected("25M ");
	assert_size_rejected("-1");
	assert_size_rejected("+1");
	assert_size_rejected("1.5G");
	assert_size_rejected("0x100");
	assert_size_rejected("10P");
	assert_size_rejected("1e6");
}

static void
test_size_overflow_is_rejected(void **state)
{
	assert_int_equal(size_of("18446744073709551615"), UINT64_MAX);
	assert_size_rejected("18446744073709551616");
	assert_size_rejected("99999999999999999999999");
	assert_int_equal(size_of("16777215T"), 16777215ULL << 40);
	assert_size_rejected("16777216T"); /* 2^24 * 2^40 = 2^64 */
	assert_size_rejected("17179869184G");
}

static void
test_durations(void **state)
{
	assert_int_equal(duration_of("300"), 300);
	assert_int_equal(duration_of("300s"), 300);
	assert_int_equal(duration_of("5m"), 300);
	assert_int_equal(duration_of("2h"), 7200);
	assert_int_equal(duration_of("1d"), 86400);
	assert_int_equal(duration_of("0"), 0);
	assert_int_equal(duration_of("90s"), 90);
}

static void
test_duration_garbage_is_rejected(void **state)
{
	assert_duration_rejected(NULL);
	assert_duration_rejected("");
	assert_duration_rejected("s");
	assert_duration_rejected("5M"); /* minutes or a size typed in the wrong place? */
	assert_duration_rejected("5min");
	assert_duration_rejected("1h30m");
	assert_duration_rejected("-5s");
	assert_duration_rejected("5 m");
	assert_duration_rejected("1.5h");
	assert_duration_rejected("2w");
	assert_duration_rejected("18446744073709551616");
	assert_int_equal(duration_of("213503982334601d"), 213503982334601ULL * 86400);
	assert_duration_rejected("213503982334602d"); /* * 86400 overflows 64 bits */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sizes_are_1024_based),
	    cmocka_unit_test(test_size_garbage_is_rejected),
	    cmocka_unit_test(test_size_overflow_is_rejected),
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_duration_garbage_is_rejected),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
