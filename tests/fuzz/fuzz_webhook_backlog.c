/* fuzz_webhook_backlog.c - a webhook's backlog opened on whatever a disk may hold: the state
 * file, and one or two segment files. The input's first line is the state file; the rest is
 * the first segment, split at a form feed into a second one whose name (its first id) is
 * near what the first one's lines say (the first octet picks below, at, or above). Then
 * everything is read, in small batches, acknowledged, and a record appended and read back.
 * It must never crash, leak or loop, and what it returns must hold together:
 *  - ids only grow, and every record read is one JSON object;
 *  - a request body made of a batch is a JSON array of as many objects;
 *  - the record appended after it all comes back, with an id above every id read;
 *  - a state line that parses is printed back the same. */
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "core/core.h"
#include "webhook/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *dir, *hook;

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return path == NULL || strcmp(path, dir) == 0 ? 0 : remove(path);
}

/* The scratch directory goes when the fuzzer exits. */
static void
remove_dir(void)
{
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	rmdir(dir);
}

static void
put(const char *name, const uint8_t *data, size_t len)
{
	char *path = xasprintf("%s/%s", hook, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len)
		abort();
	close(fd);
	free(path);
}

static void
check_state_line(const uint8_t *data, size_t len)
{
	struct backlog_state st;
	char again[BACKLOG_STATE_MAX];
	const char *why = NULL;

	if (backlog_state_parse((const char *)data, len, &st, &why) != 0) {
		if (why == NULL)
			abort();
		return;
	}
	if (backlog_state_format(&st, again, sizeof(again)) != len || memcmp(again, data, len) != 0)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size), *rest, *ff;
	size_t state_len = nl != NULL ? (size_t)(nl - data) + 1 : size, rest_len;
	struct backlog_batch bt = {0};
	struct backlog *b;
	uint64_t last = 0, lines = 0;
	char err[256], name[32];
	const char *rec = "{\"type\":\"Delivery\",\"fuzz\":true}";
	struct backlog_item item = {rec, strlen(rec)};
	bool found = false;

	if (dir == NULL) {
		log_set_level(LOG_ERROR);
		dir = xstrdup("/tmp/fuzz-webhook-XXXXXX");
		if (mkdtemp(dir) == NULL)
			abort();
		hook = xasprintf("%s/hook", dir);
		atexit(remove_dir);
	}
	nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	if (mkdir(hook, 0700) < 0)
		abort();

	check_state_line(data, state_len);
	put("state", data, state_len);
	rest = data + state_len;
	rest_len = size - state_len;
	ff = memchr(rest, '\f', rest_len);
	put("00000000000000000001.jsonl", rest, ff != NULL ? (size_t)(ff - rest) : rest_len);
	if (ff != NULL) {
		for (const uint8_t *p = rest; p < ff; p++)
			lines += *p == '\n';
		/* 1 + lines is what the first segment's lines say; the first octet moves it. */
		snprintf(name, sizeof(name), "%020llu.jsonl",
		         (unsigned long long)(lines + 1 + (data[0] % 3)) - (lines > 0));
		put(name, ff + 1, rest_len - (size_t)(ff + 1 - rest));
	}

	b = backlog_open(hook, NULL, 64 * 1024, err, sizeof(err));
	if (b == NULL)
		abort(); /* the directory is fine: damaged contents never stop it */
	for (int round = 0; round < 100000; round++) {
		size_t n = backlog_read(b, &bt, 7, 4096), len;
		char *body;
		json_t *a;

		if (n == 0)
			break;
		for (size_t k = 0; k < n; k++) {
			if (bt.recs[k].id <= last ||
			    !webhook_record_valid(bt.buf + bt.recs[k].off, bt.recs[k].len))
				abort();
			last = bt.recs[k].id;
		}
		body = webhook_body(&bt, backlog_epoch(b), &len);
		a = json_loadb(body, len, 0, NULL);
		if (a == NULL || json_array_size(a) != n)
			abort();
		json_decref(a);
		free(body);
		backlog_ack(b, &bt);
	}
	if (backlog_append(b, &item, 1) != 1)
		abort();
	while (backlog_read(b, &bt, 7, 4096) > 0) {
		for (size_t k = 0; k < bt.n; k++) {
			if (bt.recs[k].id <= last)
				abort();
			last = bt.recs[k].id;
			found |= bt.recs[k].len == item.len &&
			         memcmp(bt.buf + bt.recs[k].off, rec, item.len) == 0;
		}
	}
	if (!found)
		abort();
	backlog_batch_free(&bt);
	backlog_close(b);
	return 0;
}
