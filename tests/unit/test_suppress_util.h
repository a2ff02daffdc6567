/* test_suppress_util.h - what the suppression list's tests share: a scratch directory, a
 * list opened on it with a clock the test sets, and an event loop with a mailbox to
 * receive asynchronous answers. */
#ifndef DROVER_TEST_SUPPRESS_UTIL_H
#define DROVER_TEST_SUPPRESS_UTIL_H

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <event2/event.h>

#include "core/core.h"
#include "suppress/suppress.h"

/* 2027-01-01T00:00:00Z: a fixed "now", so that expiry tests do not race the real clock. */
#define T0   1798761600000000ULL
#define HOUR (3600 * USEC)

/* Scratch lists live under the working directory (ctest's: the build tree), on a real disk,
 * so that fsync costs what it costs. */
static inline char *
scratch_dir(void)
{
	char *tmpl = xstrdup("./suppress-test-XXXXXX");

	if (mkdtemp(tmpl) == NULL)
		fail_msg("mkdtemp: %m");
	return tmpl;
}

static inline int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static inline void
scratch_remove(char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/* The test's clock: what suppress_options.clock reads. */
struct fake_clock {
	uint64_t now;
};

static inline uint64_t
fake_clock_read(void *arg)
{
	return ((struct fake_clock *)arg)->now;
}

static inline struct suppress *
open_list_opt(const char *dir, struct fake_clock *clk, int flags, size_t import_batch)
{
	struct suppress_options opt = {.map_size = 256ULL << 20,
	                               .import_batch = import_batch,
	                               .clock = clk != NULL ? fake_clock_read : NULL,
	                               .clock_arg = clk};
	char err[512] = "";
	struct suppress *list = suppress_open(dir, &opt, flags, err, sizeof(err));

	if (list == NULL)
		fail_msg("suppress_open: %s", err);
	return list;
}

static inline struct suppress *
open_list(const char *dir, struct fake_clock *clk)
{
	return open_list_opt(dir, clk, 0, 0);
}

/* Adds (synchronously) and insists it worked. */
static inline void
add(struct suppress *list, const char *tenant, const char *address, enum suppress_reason reason,
    uint64_t expires_us)
{
	struct suppress_record rec = {.tenant = tenant,
	                              .address = address,
	                              .reason = reason,
	                              .expires_us = expires_us,
	                              .source = "test"};
	char err[256] = "";
	enum suppress_status st = suppress_add(list, &rec, err, sizeof(err));

	if (st != SUPPRESS_OK)
		fail_msg("suppress_add(%s, %s): %s: %s", tenant ? tenant : "(null)", address,
		         suppress_status_str(st), err);
}

/* An event loop and its mailbox, and the answers it has received. */
struct loop {
	struct event_base *base;
	struct mailbox *mbox;
	unsigned answers;
};

static inline void
loop_init(struct loop *l)
{
	l->base = event_base_new();
	assert_non_null(l->base);
	l->mbox = mailbox_new(l->base);
	l->answers = 0;
}

static inline void
loop_free(struct loop *l)
{
	mailbox_free(l->mbox);
	event_base_free(l->base);
}

/* Runs the loop until it has received n answers in all. */
static inline void
loop_until(struct loop *l, unsigned n)
{
	while (l->answers < n)
		event_base_loop(l->base, EVLOOP_ONCE);
}

#endif
