/* test_webhook_backlog.c - a webhook's backlog on disk: records appended come back in order
 * with their ids, an acknowledgement survives a restart (and what was read but not
 * acknowledged comes back), the bound drops the oldest and counts them, and damaged files
 * (a torn last line, garbage lines, a bad state file, foreign files) are reported and
 * skipped, never a crash. */
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/core.h"
#include "webhook/internal.h"

#define MB (1024 * 1024)

static char *
scratch_dir(void)
{
	char *tmpl = xstrdup("./webhook-test-XXXXXX");

	if (mkdtemp(tmpl) == NULL)
		fail_msg("mkdtemp: %m");
	return tmpl;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
scratch_remove(char *dir)
{
	nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

static struct backlog *
open_backlog(const char *dir, uint64_t max)
{
	char err[256] = "";
	char *path = xasprintf("%s/hook", dir);
	struct backlog *b = backlog_open(path, NULL, max, err, sizeof(err));

	if (b == NULL)
		fail_msg("backlog_open: %s", err);
	free(path);
	return b;
}

/* Record n as the event log would write it, padded to about size octets. */
static char *
record(unsigned n, size_t size)
{
	char *r = xasprintf("{\"time\":\"2026-01-01T00:00:00Z\",\"type\":\"Delivery\",\"n\":%u,"
	                    "\"pad\":\"%*s\"}",
	                    n, size > 60 ? (int)(size - 60) : 0, "");

	return r;
}

/* Appends records first..first+count-1 one call each (as the tap does per batch). */
static void
append_range(struct backlog *b, unsigned first, unsigned count, size_t size)
{
	for (unsigned i = first; i < first + count; i++) {
		char *r = record(i, size);
		struct backlog_item it = {r, strlen(r)};

		assert_int_equal(backlog_append(b, &it, 1), 1);
		free(r);
	}
}

/* The "n" of a batch's record k. */
static unsigned
rec_n(const struct backlog_batch *bt, size_t k)
{
	const char *p;

	assert_true(k < bt->n);
	p = memmem(bt->buf + bt->recs[k].off, bt->recs[k].len, "\"n\":", 4);
	assert_non_null(p);
	return (unsigned)strtoul(p + 4, NULL, 10);
}

static char *
seg_path(const char *dir, uint64_t first)
{
	return xasprintf("%s/hook/%020llu.jsonl", dir, (unsigned long long)first);
}

static size_t
count_files(const char *dir)
{
	char *cmd = xasprintf("ls %s/hook | grep -c jsonl", dir);
	FILE *p = popen(cmd, "r");
	unsigned n = 0;

	assert_non_null(p);
	assert_int_equal(fscanf(p, "%u", &n), 1);
	pclose(p);
	free(cmd);
	return n;
}

static void
test_append_read_ack(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * MB);
	struct backlog_batch bt = {0};
	struct backlog_stats st;

	append_range(b, 1, 10, 200);
	assert_int_equal(backlog_unread(b), 10);
	assert_int_equal(backlog_read(b, &bt, 4, WEBHOOK_BODY_MAX), 4);
	for (size_t k = 0; k < 4; k++) {
		assert_int_equal(bt.recs[k].id, k + 1);
		assert_int_equal(rec_n(&bt, k), k + 1);
		assert_true(webhook_record_valid(bt.buf + bt.recs[k].off, bt.recs[k].len));
	}
	assert_int_equal(backlog_unread(b), 6);
	backlog_stats(b, &st);
	assert_int_equal(st.records, 10); /* read, not acknowledged */
	assert_int_equal(backlog_ack(b, &bt), 0);
	backlog_stats(b, &st);
	assert_int_equal(st.records, 6);

	/* The rest, then nothing. */
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 6);
	assert_int_equal(bt.recs[0].id, 5);
	assert_int_equal(rec_n(&bt, 5), 10);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 0);
	/* More appended after the reader caught up are read next. */
	append_range(b, 11, 2, 200);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 2);
	assert_int_equal(bt.recs[0].id, 11);
	assert_int_equal(backlog_ack(b, &bt), 0);
	backlog_stats(b, &st);
	assert_int_equal(st.records, 0);
	assert_int_equal(st.dropped + st.damaged, 0);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

/* max_bytes ends a batch before the record that would pass it, but a batch takes one. */
static void
test_batch_byte_limit(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * MB);
	struct backlog_batch bt = {0};

	append_range(b, 1, 10, 1000);
	assert_int_equal(backlog_read(b, &bt, 100, 3500), 3);
	assert_true(bt.len <= 3500);
	assert_int_equal(backlog_read(b, &bt, 100, 10), 1);
	assert_int_equal(bt.recs[0].id, 4);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

/* At least once: what was acknowledged is not sent again after a restart; what was read
 * and not acknowledged is. Ids go on from where they were. */
static void
test_restart(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * MB);
	struct backlog_batch bt = {0};
	uint64_t epoch = backlog_epoch(b);

	append_range(b, 1, 20, 300);
	assert_int_equal(backlog_read(b, &bt, 7, WEBHOOK_BODY_MAX), 7);
	assert_int_equal(backlog_ack(b, &bt), 0);
	assert_int_equal(backlog_read(b, &bt, 5, WEBHOOK_BODY_MAX), 5); /* in flight at the stop */
	backlog_close(b);

	b = open_backlog(dir, 64 * MB);
	assert_int_equal(backlog_epoch(b), epoch);
	assert_int_equal(backlog_unread(b), 13);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 13);
	assert_int_equal(bt.recs[0].id, 8);
	assert_int_equal(rec_n(&bt, 0), 8);
	assert_int_equal(rec_n(&bt, 12), 20);
	append_range(b, 21, 1, 300);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 1);
	assert_int_equal(bt.recs[0].id, 21);
	assert_int_equal(backlog_ack(b, &bt), 0);
	backlog_close(b);

	/* Everything acknowledged: nothing comes back, and ids still go on. */
	b = open_backlog(dir, 64 * MB);
	assert_int_equal(backlog_unread(b), 0);
	append_range(b, 22, 1, 300);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 1);
	assert_int_equal(bt.recs[0].id, 22);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

/* The epoch (the event_ids' namespace) is kept from the first open on, so records sent and
 * not acknowledged before a restart keep their event_id when sent again. */
static void
test_epoch_kept_before_any_ack(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * MB);
	struct backlog_batch bt = {0};
	uint64_t epoch = backlog_epoch(b);

	append_range(b, 1, 3, 200);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 3);
	backlog_close(b); /* not acknowledged */
	b = open_backlog(dir, 64 * MB);
	assert_int_equal(backlog_epoch(b), epoch);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 3);
	assert_int_equal(bt.recs[0].id, 1);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

/* Segments are deleted once acknowledged; the disk holds about what is unacknowledged. */
static void
test_segments_deleted_when_acknowledged(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 256 * 1024); /* segments of 16 KiB */
	struct backlog_batch bt = {0};
	struct backlog_stats st;

	append_range(b, 1, 300, 500); /* ~150 KB: about ten segments */
	assert_true(count_files(dir) >= 8);
	while (backlog_read(b, &bt, 50, WEBHOOK_BODY_MAX) > 0)
		assert_int_equal(backlog_ack(b, &bt), 0);
	assert_int_equal(count_files(dir), 1); /* the one appended to */
	backlog_stats(b, &st);
	assert_true(st.bytes <= 16 * 1024);
	assert_int_equal(st.dropped, 0);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

/* backlog_max: the disk never holds more; the oldest records go first, counted, and the
 * reader gets the rest in order, each record either read or dropped. */
static void
test_bound_drops_oldest(void **state)
{
	char *dir = scratch_dir();
	uint64_t max = 64 * 1024;
	struct backlog *b = open_backlog(dir, max);
	struct backlog_batch bt = {0};
	struct backlog_stats st;
	unsigned total = 1000, got = 0, last = 0;

	for (unsigned i = 1; i <= total; i++) {
		append_range(b, i, 1, 400);
		backlog_stats(b, &st);
		assert_true(st.bytes <= max);
	}
	backlog_stats(b, &st);
	assert_true(st.dropped > 0);
	assert_true(st.bytes > max / 2); /* it drops segments, not everything */
	while (backlog_read(b, &bt, 64, WEBHOOK_BODY_MAX) > 0) {
		for (size_t k = 0; k < bt.n; k++) {
			unsigned n = rec_n(&bt, k);

			assert_true(n > last);
			assert_int_equal(bt.recs[k].id, n);
			last = n;
			got++;
		}
		assert_int_equal(backlog_ack(b, &bt), 0);
	}
	assert_int_equal(last, total); /* the newest are kept */
	assert_int_equal(got + st.dropped, total);
	backlog_stats(b, &st);
	assert_int_equal(st.records, 0);

	/* A record larger than the bound allows is dropped alone. */
	{
		char *big = record(9999, max + 10);
		struct backlog_item it = {big, strlen(big)};
		uint64_t before = st.dropped;

		assert_int_equal(backlog_append(b, &it, 1), 0);
		backlog_stats(b, &st);
		assert_int_equal(st.dropped, before + 1);
		free(big);
	}
	backlog_batch_free(&bt);
	backlog_close(b);

	/* A smaller bound at the next start applies at once. */
	b = open_backlog(dir, 64 * 1024);
	append_range(b, 1, 100, 400);
	backlog_close(b);
	b = open_backlog(dir, 16 * 1024);
	backlog_stats(b, &st);
	assert_true(st.bytes <= 16 * 1024);
	backlog_close(b);
	scratch_remove(dir);
}

/* The bound drops what the reader was about to read: the batch already read is kept, the
 * next read starts after the dropped ones. */
static void
test_bound_moves_reader(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * 1024);
	struct backlog_batch bt = {0};
	struct backlog_stats st;

	append_range(b, 1, 20, 400);
	assert_int_equal(backlog_read(b, &bt, 5, WEBHOOK_BODY_MAX), 5);
	append_range(b, 21, 300, 400); /* far past the bound */
	backlog_stats(b, &st);
	assert_true(st.dropped > 0);
	/* The batch in flight still counts as waiting: every record is waiting or dropped. */
	assert_int_equal(st.records + st.dropped, 320);
	assert_int_equal(backlog_ack(b, &bt), 0); /* the batch in flight is acknowledged */
	backlog_stats(b, &st);
	assert_int_equal(st.records + st.dropped + 5, 320);
	assert_int_equal(backlog_read(b, &bt, 1, WEBHOOK_BODY_MAX), 1);
	assert_int_equal(bt.recs[0].id, 5 + st.dropped + 1);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

static void
write_file(const char *path, const char *data, size_t len, int flags)
{
	int fd = open(path, O_WRONLY | O_CREAT | flags, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* A crash in the middle of an append leaves a partial line: cut off at the next open, and
 * the records before it are all there. */
static void
test_torn_last_line(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * MB);
	struct backlog_batch bt = {0};
	struct backlog_stats st;
	char *seg = seg_path(dir, 1);
	struct stat sb;

	append_range(b, 1, 5, 200);
	backlog_close(b);
	write_file(seg, "{\"time\":\"2026-01-01T00:00:00Z\",\"ty", 34, O_APPEND);

	b = open_backlog(dir, 64 * MB);
	backlog_stats(b, &st);
	assert_int_equal(st.damaged, 1);
	assert_int_equal(stat(seg, &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, st.bytes);
	append_range(b, 6, 1, 200);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 6);
	assert_int_equal(rec_n(&bt, 5), 6);
	assert_int_equal(bt.recs[5].id, 6);
	free(seg);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

/* Garbage in a segment: each bad line is skipped and counted, the good ones are sent; an
 * oversized line with no newline is skipped as one. */
static void
test_damaged_lines(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * MB);
	struct backlog_batch bt = {0};
	struct backlog_stats st;
	char *seg = seg_path(dir, 1), *data, *p;
	struct stat sb;
	FILE *f;
	size_t len;

	append_range(b, 1, 6, 200);
	backlog_close(b);
	/* Damage lines 2 and 4 in place (same length, so the other offsets hold). */
	assert_int_equal(stat(seg, &sb), 0);
	len = (size_t)sb.st_size;
	data = xmalloc(len);
	f = fopen(seg, "r+");
	assert_int_equal(fread(data, 1, len, f), len);
	p = strchr(data, '\n') + 1;
	p[3] = '\x01'; /* a control character inside a string: not JSON */
	p = strchr(strchr(p, '\n') + 1, '\n') + 1;
	p[0] = 'X'; /* not an object */
	rewind(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	fclose(f);
	free(data);

	b = open_backlog(dir, 64 * MB);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 4);
	assert_int_equal(rec_n(&bt, 0), 1);
	assert_int_equal(rec_n(&bt, 1), 3);
	assert_int_equal(rec_n(&bt, 2), 5);
	assert_int_equal(bt.recs[2].id, 5);
	backlog_stats(b, &st);
	assert_int_equal(st.damaged, 2);
	assert_int_equal(backlog_ack(b, &bt), 0);
	backlog_close(b);

	/* A whole segment of garbage without newlines, then a good one after it. */
	{
		char *junk = xmalloc(3 * MB), *seg7 = seg_path(dir, 7);

		memset(junk, 'x', 3 * MB);
		junk[3 * MB - 1] = '\n';
		write_file(seg7, junk, 3 * MB, O_TRUNC);
		free(junk);
		free(seg7);
	}
	b = open_backlog(dir, 64 * MB);
	append_range(b, 8, 2, 200);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 2);
	assert_int_equal(rec_n(&bt, 0), 8);
	assert_int_equal(bt.recs[0].id, 8);
	backlog_stats(b, &st);
	assert_int_equal(st.damaged, 1);
	free(seg);
	backlog_batch_free(&bt);
	backlog_close(b);
	scratch_remove(dir);
}

/* A state file that cannot be trusted: everything is sent again (at least once). A state
 * whose offset is not a line's start: the position is found by counting lines. Files that
 * are not the backlog's are left alone. */
static void
test_damaged_state(void **state)
{
	char *dir = scratch_dir();
	struct backlog *b = open_backlog(dir, 64 * MB);
	struct backlog_batch bt = {0};
	char *statep = xasprintf("%s/hook/state", dir), *other = xasprintf("%s/hook/notes", dir);
	char line[BACKLOG_STATE_MAX];
	struct backlog_state s;
	size_t len;

	append_range(b, 1, 10, 200);
	assert_int_equal(backlog_read(b, &bt, 4, WEBHOOK_BODY_MAX), 4);
	assert_int_equal(backlog_ack(b, &bt), 0);
	backlog_close(b);

	write_file(statep, "drover-webhook-backlog 1 epoch=zz\n", 34, O_TRUNC);
	write_file(other, "hello\n", 6, O_TRUNC);
	b = open_backlog(dir, 64 * MB);
	assert_int_equal(backlog_unread(b), 10);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 10);
	assert_int_equal(bt.recs[0].id, 1);
	backlog_close(b);

	/* ack=4 with an offset in the middle of a line. */
	s = (struct backlog_state){0x1234, 4, 1, 17};
	len = backlog_state_format(&s, line, sizeof(line));
	write_file(statep, line, len, O_TRUNC);
	b = open_backlog(dir, 64 * MB);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 7);
	assert_int_equal(bt.recs[0].id, 4);
	assert_int_equal(rec_n(&bt, 0), 4);
	assert_int_equal(backlog_epoch(b), 0x1234);
	backlog_close(b);

	/* A state ahead of the files (they were removed): nothing to send, ids go on. */
	s = (struct backlog_state){0x1234, 50, 40, 100};
	len = backlog_state_format(&s, line, sizeof(line));
	write_file(statep, line, len, O_TRUNC);
	b = open_backlog(dir, 64 * MB);
	assert_int_equal(backlog_unread(b), 0);
	append_range(b, 50, 1, 200);
	assert_int_equal(backlog_read(b, &bt, 100, WEBHOOK_BODY_MAX), 1);
	assert_int_equal(bt.recs[0].id, 50);
	assert_int_equal(access(other, F_OK), 0);
	backlog_close(b);

	free(statep);
	free(other);
	backlog_batch_free(&bt);
	scratch_remove(dir);
}

/* The appender (the event log's writer) and the reader (the sender) at once, with a bound
 * small enough to drop under them: every record is read at most once, in order, and read +
 * dropped == appended. */
struct writer_arg {
	struct backlog *b;
	unsigned total;
	atomic_bool done;
};

static void *
writer(void *arg)
{
	struct writer_arg *w = arg;

	for (unsigned i = 1; i <= w->total; i += 10)
		append_range(w->b, i, 10, 300);
	atomic_store(&w->done, true);
	return NULL;
}

static void
test_concurrent_append_read(void **state)
{
	char *dir = scratch_dir();
	struct writer_arg wa = {open_backlog(dir, 64 * 1024), 20000, false};
	struct backlog_batch bt = {0};
	struct backlog_stats st;
	unsigned got = 0, last = 0;
	pthread_t t;

	pthread_create(&t, NULL, writer, &wa);
	for (;;) {
		/* Read after the writer is done: once that read finds nothing, all is read. */
		bool done = atomic_load(&wa.done);
		size_t n = backlog_read(wa.b, &bt, 50, WEBHOOK_BODY_MAX);

		for (size_t k = 0; k < n; k++) {
			unsigned v = rec_n(&bt, k);

			assert_true(v > last);
			assert_int_equal(bt.recs[k].id, v);
			last = v;
			got++;
		}
		if (n > 0)
			assert_int_equal(backlog_ack(wa.b, &bt), 0);
		if (n == 0 && done)
			break;
	}
	pthread_join(t, NULL);
	backlog_stats(wa.b, &st);
	assert_int_equal(got + st.dropped, wa.total);
	assert_int_equal(st.damaged, 0);
	assert_true(st.bytes <= 64 * 1024);
	backlog_batch_free(&bt);
	backlog_close(wa.b);
	scratch_remove(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_read_ack),
	    cmocka_unit_test(test_batch_byte_limit),
	    cmocka_unit_test(test_restart),
	    cmocka_unit_test(test_epoch_kept_before_any_ack),
	    cmocka_unit_test(test_segments_deleted_when_acknowledged),
	    cmocka_unit_test(test_bound_drops_oldest),
	    cmocka_unit_test(test_bound_moves_reader),
	    cmocka_unit_test(test_torn_last_line),
	    cmocka_unit_test(test_damaged_lines),
	    cmocka_unit_test(test_damaged_state),
	    cmocka_unit_test(test_concurrent_append_read),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
