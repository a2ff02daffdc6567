/* The header section as classification reads it (route/header.c): fields, folding, case,
 * where the section ends (also when the buffer stops anywhere), and the removal of the
 * X-Drover-* fields. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "route/route.h"

/* The fields of text as "Name=value|" (unfolded values), up to the end of the section. */
static const char *
fields_of(const char *text, size_t n)
{
	static char out[4096];
	struct route_field f;
	size_t pos = 0, o = 0;
	char value[256];

	out[0] = '\0';
	while (route_header_next(text, n, &pos, &f) == 1) {
		route_field_value(text, &f, value, sizeof(value));
		o += (size_t)snprintf(out + o, sizeof(out) - o, "%.*s=%s|", (int)f.name_len,
		                      text + f.start, value);
	}
	return out;
}

static void
test_fields_and_folding(void **state)
{
	const char *m = "From: a@example.com\r\n"
	                "Subject: one\r\n"
	                "  two\r\n"
	                "\tthree  \r\n"
	                "X-Empty:\r\n"
	                "Precedence :  bulk \r\n"
	                "\r\n"
	                "Body: not a field\r\n";

	assert_string_equal(fields_of(m, strlen(m)),
	                    "From=a@example.com|Subject=one  two\tthree|X-Empty=|Precedence=bulk|");
}

static void
test_section_end(void **state)
{
	size_t end;
	const char *m = "A: 1\r\nB: 2\r\n\r\nbody\r\n";

	assert_true(route_header_complete(m, strlen(m), false, &end));
	assert_int_equal(end, 12); /* at the empty line */
	/* A line that is no field starts the body. */
	m = "A: 1\r\nthis is text\r\nB: 2\r\n";
	assert_true(route_header_complete(m, strlen(m), false, &end));
	assert_int_equal(end, 6);
	assert_string_equal(fields_of(m, strlen(m)), "A=1|");
	/* No header at all: a body of text lines. */
	m = "yyyyyyyyyyyy\r\n";
	assert_true(route_header_complete(m, strlen(m), false, &end));
	assert_int_equal(end, 0);
	/* A continuation line with no field before it is no field. */
	m = " indented: x\r\n";
	assert_true(route_header_complete(m, strlen(m), false, &end));
	assert_int_equal(end, 0);
	/* Bare LF line ends are read too. */
	m = "A: 1\nB: 2\n\nbody\n";
	assert_true(route_header_complete(m, strlen(m), false, &end));
	assert_int_equal(end, 10);
	assert_string_equal(fields_of(m, strlen(m)), "A=1|B=2|");
}

/* Cut anywhere, a section is complete only once its end is in the buffer (or the data has
 * ended: final), and no field is reported complete before its continuation is known. */
static void
test_incomplete(void **state)
{
	const char *m = "Subject: a\r\n b\r\nX-Drover-Pool: p\r\n\r\nbody";
	size_t n = strlen(m), sep = strstr(m, "\r\n\r\n") - m + 2, end;

	for (size_t cut = 0; cut < n; cut++) {
		bool complete = route_header_complete(m, cut, false, &end);

		/* Knowing the empty line is CRLF takes its LF too. */
		if (cut >= sep + 2) {
			assert_true(complete);
			assert_int_equal(end, sep);
		} else {
			assert_false(complete);
			assert_true(route_header_complete(m, cut, true, &end));
			assert_int_equal(end, cut);
		}
	}
	/* "Subj" at the end of the buffer: maybe a field, maybe not. */
	struct route_field f;
	size_t pos = 0;

	assert_int_equal(route_header_next("Subj", 4, &pos, &f), -1);
	assert_int_equal(route_header_next("A: 1\r", 5, &pos, &f), 1);
	assert_false(f.complete);
	assert_int_equal(f.end, 5);
	pos = 0;
	assert_int_equal(route_header_next("A: 1\r\n", 6, &pos, &f), 1);
	assert_false(f.complete); /* a continuation may follow */
	pos = 0;
	assert_int_equal(route_header_next("A: 1\r\nB", 7, &pos, &f), 1);
	assert_true(f.complete);
	assert_int_equal(pos, 6);
	assert_int_equal(route_header_next("A: 1\r\nB", 7, &pos, &f), -1);
}

static void
test_case(void **state)
{
	const char *m = "x-DROVER-pool: p\r\n";
	struct route_field f;
	size_t pos = 0;

	assert_int_equal(route_header_next(m, strlen(m), &pos, &f), 1);
	assert_true(route_field_is(m, &f, "X-Drover-Pool"));
	assert_true(route_field_is(m, &f, "x-drover-pool"));
	assert_false(route_field_is(m, &f, "X-Drover-Poo"));
	assert_false(route_field_is(m, &f, "X-Drover-Pools"));
}

static void
test_value_bounded(void **state)
{
	char big[3000], out[16];
	struct route_field f;
	size_t pos = 0;

	memset(big, 'v', sizeof(big));
	memcpy(big, "Long: ", 6);
	memcpy(big + sizeof(big) - 2, "\r\n", 2);
	assert_int_equal(route_header_next(big, sizeof(big), &pos, &f), 1);
	assert_int_equal(route_field_value(big, &f, out, sizeof(out)), 15);
	assert_string_equal(out, "vvvvvvvvvvvvvvv");
	assert_int_equal(route_field_value(big, &f, out, 1), 0);
	assert_string_equal(out, "");
}

static void
test_strip(void **state)
{
	char m[] = "From: a@example.com\r\n"
	           "X-Drover-Stream: bulk\r\n"
	           "Subject: hi\r\n"
	           "x-drover-pool: p1\r\n"
	           "  folded\r\n"
	           "X-Drover-Pool : p2\r\n"
	           "X-Drover-Poolside: stays\r\n"
	           "\r\n"
	           "X-Drover-Pool: in the body stays\r\n";
	size_t n = route_strip_drover_fields(m, strlen(m));

	m[n] = '\0';
	assert_string_equal(m, "From: a@example.com\r\n"
	                       "Subject: hi\r\n"
	                       "X-Drover-Poolside: stays\r\n"
	                       "\r\n"
	                       "X-Drover-Pool: in the body stays\r\n");

	/* Adjacent, first and last, and one that runs to the end of the data. */
	char m2[] = "X-Drover-Pool: a\r\nX-Drover-Stream: b\r\nA: 1\r\nX-Drover-Pool: c";
	n = route_strip_drover_fields(m2, strlen(m2));
	m2[n] = '\0';
	assert_string_equal(m2, "A: 1\r\n");
	/* Tenant and campaign too. */
	char m4[] = "X-Drover-Tenant: acme\r\nA: 1\r\nx-drover-campaign: spring\r\n\r\n";
	n = route_strip_drover_fields(m4, strlen(m4));
	m4[n] = '\0';
	assert_string_equal(m4, "A: 1\r\n\r\n");
	char m3[] = "X-Drover-Stream: only\r\n";
	assert_int_equal(route_strip_drover_fields(m3, strlen(m3)), 0);
	assert_int_equal(route_strip_drover_fields(m3, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fields_and_folding), cmocka_unit_test(test_section_end),
	    cmocka_unit_test(test_incomplete),         cmocka_unit_test(test_case),
	    cmocka_unit_test(test_value_bounded),      cmocka_unit_test(test_strip),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
