/* test_shape_util.h - what the shaping tests share: rules from text (named "rules.conf" in
 * errors and origins), a fake clock, and checks of error lists. Header-only, included once by
 * each test program. */
#ifndef DROVER_TEST_SHAPE_UTIL_H
#define DROVER_TEST_SHAPE_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "shape/shape.h"

#define TEST_UNUSED __attribute__((unused))

/* The fake clock starts at 2026-12-01T00:00:00Z (a UTC midnight, for warm-up days). */
#define T0     (1796083200ULL * USEC)
#define MINUTE (60 * USEC)
#define HOUR   (3600 * USEC)
#define DAY    (86400 * USEC)

static TEST_UNUSED struct shape_rules *
rules_ok(const char *text)
{
	char err[8192];
	struct shape_rules *r =
	    shape_rules_parse("rules.conf", text, strlen(text), NULL, NULL, err, sizeof(err));

	if (r == NULL)
		fail_msg("rules did not load:\n%s\n--- errors:\n%s", text, err);
	return r;
}

/* The errors of text, which must not load (always NUL-terminated). */
static TEST_UNUSED const char *
rules_errors(const char *text)
{
	static char err[16384];
	struct shape_rules *r;

	memset(err, 'x', sizeof(err));
	r = shape_rules_parse("rules.conf", text, strlen(text), NULL, NULL, err, sizeof(err));
	if (r != NULL)
		fail_msg("loaded without error:\n%s", text);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	return err;
}

/* errors contain "rules.conf:<where>" as a whole line (where = "3: defaults.x: ..."). */
static TEST_UNUSED void
expect_error(const char *errors, const char *where)
{
	char want[1024];
	const char *p;
	size_t n;

	snprintf(want, sizeof(want), "rules.conf:%s", where);
	n = strlen(want);
	for (p = errors; (p = strstr(p, want)) != NULL; p++) {
		if ((p == errors || p[-1] == '\n') && (p[n] == '\0' || p[n] == '\n'))
			return;
	}
	fail_msg("expected the line \"%s\" in:\n%s", want, errors);
}

static TEST_UNUSED size_t
count_lines(const char *s)
{
	size_t n = *s != '\0';

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

/* A state on rules (the state keeps its own reference; the caller's is dropped). */
static TEST_UNUSED struct shape_state *
state_on(const char *text)
{
	struct shape_rules *r = rules_ok(text);
	struct shape_state *st = shape_state_new(r, 0, 0);

	shape_rules_unref(r);
	return st;
}

#endif
