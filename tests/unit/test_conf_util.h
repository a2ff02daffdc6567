/* test_conf_util.h - what the conf tests share: a scratch directory, files written into it,
 * and checks of the errors config_load() reports. Header-only, included once by each test
 * program (after cmocka.h and conf/conf.h); setup/teardown create and remove tmpdir. */
#ifndef DROVER_TEST_CONF_UTIL_H
#define DROVER_TEST_CONF_UTIL_H

#include <ftw.h>
#include <stdio.h>

#define TEST_UNUSED __attribute__((unused))

static char tmpdir[] = "/tmp/drover-test-conf-XXXXXX";
static char path[512];
static char err[16384];

/* Writes text to <tmpdir>/name and returns its path (static). */
static TEST_UNUSED const char *
put(const char *name, const char *text)
{
	FILE *fp;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fp = fopen(path, "w");
	assert_non_null(fp);
	fputs(text, fp);
	fclose(fp);
	return path;
}

/* Loads text as <tmpdir>/drover.conf, which must fail; returns the errors (always
 * NUL-terminated inside err, whatever their length). */
static TEST_UNUSED const char *
errors_of(const char *text)
{
	struct config *c;

	put("drover.conf", text);
	memset(err, 'x', sizeof(err));
	c = config_load(path, err, sizeof(err));
	if (c != NULL)
		fail_msg("loaded without error:\n%s", text);
	assert_non_null(memchr(err, '\0', sizeof(err)));
	return err;
}

/* The errors contain "<path>:<where>" (where = "3: smtp.max_errors: ..."). */
static TEST_UNUSED void
expect(const char *errors, const char *where)
{
	char want[1024];

	snprintf(want, sizeof(want), "%s:%s", path, where);
	if (strstr(errors, want) == NULL)
		fail_msg("expected \"%s\" in:\n%s", want, errors);
}

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* For cmocka_run_group_tests(): tmpdir made before the tests, removed with what they wrote. */
static TEST_UNUSED int
setup(void **state)
{
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static TEST_UNUSED int
teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static TEST_UNUSED size_t
count_lines(const char *s)
{
	size_t n = *s != '\0';

	for (; *s != '\0'; s++)
		n += *s == '\n';
	return n;
}

#endif
