/* test_classify_util.h - what the classifier tests share: rules files written to scratch
 * paths, errors with the scratch path replaced by "rules", and raw replies fed through the
 * SMTP client's reply parser, so that tests classify exactly what delivery would. */
#ifndef DROVER_TEST_CLASSIFY_UTIL_H
#define DROVER_TEST_CLASSIFY_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "classify/classify.h"
#include "core/core.h"
#include "smtp/smtp.h"

/* Writes text to a fresh file in the working directory (ctest's: the build tree); returns its
 * path, to unlink() and free(). */
static inline char *
rules_file(const char *text)
{
	char *path = xstrdup("./classify-rules-XXXXXX");
	int fd = mkstemp(path);
	size_t len = strlen(text);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
	return path;
}

/* Loads text as a rules file with a cache of cache_entries; NULL with the error in err, the
 * scratch path replaced by "rules" so that tests compare whole messages. */
static inline struct classify_table *
load_rules_cache(const char *text, size_t cache_entries, char *err, size_t errlen)
{
	char *path = rules_file(text);
	char raw[1024] = "";
	struct classify_table *t = classify_load(path, cache_entries, raw, sizeof(raw));
	size_t n = strlen(path);

	if (strncmp(raw, path, n) == 0)
		snprintf(err, errlen, "rules%s", raw + n);
	else
		strlcpy_s(err, raw, errlen);
	unlink(path);
	free(path);
	return t;
}

static inline struct classify_table *
load_rules(const char *text, char *err, size_t errlen)
{
	return load_rules_cache(text, CLASSIFY_DEF_CACHE_ENTRIES, err, errlen);
}

/* Loads text that must load; fails the test with the error otherwise. */
static inline struct classify_table *
must_load(const char *text)
{
	char err[1024];
	struct classify_table *t = load_rules(text, err, sizeof(err));

	if (t == NULL)
		fail_msg("%s", err);
	return t;
}

/* Parses a raw reply, lines separated by "\n" ("550-5.1.1 a\n550 5.1.1 b"), as the SMTP
 * client would. */
static inline void
parse_reply(const char *raw, struct smtp_reply *r)
{
	struct smtp_error err;
	const char *line = raw;
	int rc = 0;

	smtp_reply_init(r);
	while (rc == 0) {
		const char *nl = strchr(line, '\n');
		size_t len = nl != NULL ? (size_t)(nl - line) : strlen(line);

		rc = smtp_reply_feed(r, line, len, &err);
		if (rc < 0)
			fail_msg("reply does not parse (%s): %s", err.text, raw);
		if (nl == NULL)
			break;
		line = nl + 1;
	}
	if (rc != 1)
		fail_msg("reply incomplete: %s", raw);
}

/* Classifies a raw reply; "@STATUS TEXT" is a local failure without a reply code (STATUS "-"
 * for none), as the delivery engine reports expiry. */
static inline void
classify_raw(const struct classify_table *t, const char *provider, const char *raw,
             struct classify_result *res)
{
	struct smtp_reply r;

	if (raw[0] == '@') {
		char status[16] = "";
		const char *sp = strchr(raw, ' ');

		assert_non_null(sp);
		if (raw[1] != '-')
			snprintf(status, sizeof(status), "%.*s", (int)(sp - raw - 1), raw + 1);
		classify_reply(t, provider, 0, status, sp + 1, res);
		return;
	}
	parse_reply(raw, &r);
	classify_smtp_reply(t, provider, &r, res);
}

#endif
