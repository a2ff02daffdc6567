/* import.c - lists of addresses in bulk: the line parser (fuzzed) and the batched writer.
 *
 * Speed: a million lines must go in within seconds. Each batch (import_batch records) is
 * sorted by key in memory, then written in one transaction through one cursor: sorted puts
 * touch each leaf page once instead of once per key, and where the batch's keys all follow
 * the last key stored (an empty list, or a file sorted like the keys) they go in with
 * MDB_APPEND, which skips the B-tree search and fills pages completely. One fsync per batch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"
#include "suppress/suppress_private.h"

enum column {
	COL_IGNORE = 0,
	COL_TENANT,
	COL_ADDRESS,
	COL_REASON,
	COL_ADDED,
	COL_EXPIRES,
	COL_SOURCE,
};

/* Header names: ours (the export's), and what other senders' exports call the same. */
static const struct {
	const char *name;
	enum column col;
} column_names[] = {
    {"tenant", COL_TENANT},         {"address", COL_ADDRESS},    {"email", COL_ADDRESS},
    {"email_address", COL_ADDRESS}, {"recipient", COL_ADDRESS},  {"reason", COL_REASON},
    {"added", COL_ADDED},           {"created", COL_ADDED},      {"created_at", COL_ADDED},
    {"expires", COL_EXPIRES},       {"expires_at", COL_EXPIRES}, {"source", COL_SOURCE},
};

/* Positional lines (no header): ADDRESS[,REASON[,SOURCE]]. */
static const uint8_t positional[] = {COL_ADDRESS, COL_REASON, COL_SOURCE};

#define FIELDS_MAX 16 /* = nitems(suppress_columns.col) */

static bool
blank(char c)
{
	return c == ' ' || c == '\t';
}

/* Splits line (NUL at line[len]) into CSV fields, unquoting in place. The number of
 * fields, or -1 with *why. */
static int
split(char *line, size_t len, char *field[FIELDS_MAX], const char **why)
{
	char *p = line, *end = line + len;
	int n = 0;

	for (;;) {
		char *out, *start;

		while (p < end && blank(*p))
			p++;
		if (n == FIELDS_MAX) {
			*why = "more than 16 fields";
			return -1;
		}
		start = out = p;
		if (p < end && *p == '"') {
			p++;
			for (;;) {
				if (p == end) {
					*why = "a quoted field is not closed";
					return -1;
				}
				if (*p == '"') {
					if (p + 1 < end && p[1] == '"') {
						*out++ = '"';
						p += 2;
						continue;
					}
					p++;
					break;
				}
				*out++ = *p++;
			}
			while (p < end && blank(*p))
				p++;
			if (p < end && *p != ',') {
				*why = "text after a closing quote";
				return -1;
			}
		} else {
			while (p < end && *p != ',') {
				if (*p == '"') {
					*why = "a quote inside an unquoted field";
					return -1;
				}
				p++;
			}
			out = p;
			while (out > start && blank(out[-1]))
				out--;
		}
		field[n++] = start;
		if (p == end) {
			*out = '\0';
			return n;
		}
		*out = '\0'; /* out <= p, which is the comma */
		p++;
	}
}

static enum column
column_named(const char *name)
{
	for (size_t i = 0; i < nitems(column_names); i++)
		if (strcasecmp(name, column_names[i].name) == 0)
			return column_names[i].col;
	return COL_IGNORE;
}

/* A first line is a header if it names a column and none of its fields is an address. */
static bool
is_header(char **field, int n)
{
	bool named = false;

	for (int i = 0; i < n; i++) {
		if (strchr(field[i], '@') != NULL)
			return false;
		named = named || column_named(field[i]) != COL_IGNORE;
	}
	return named;
}

int
suppress_import_parse(struct suppress_columns *c, char *line, size_t len,
                      struct suppress_record *rec, char *err, size_t errlen)
{
	char *field[FIELDS_MAX];
	const uint8_t *cols;
	const char *why = NULL;
	const char *address = NULL;
	enum suppress_reason reason;
	unsigned ncols;
	uint64_t t;
	int n;

	if (memchr(line, '\0', len) != NULL) {
		snprintf(err, errlen, "NUL character in the line");
		return -1;
	}
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	line[len] = '\0';
	while (len > 0 && blank(*line)) {
		line++;
		len--;
	}
	if (len == 0 || *line == '#')
		return 0;
	if ((n = split(line, len, field, &why)) < 0) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	if (!c->header && !c->data && is_header(field, n)) {
		bool have_address = false;

		for (int i = 0; i < n; i++) {
			c->col[i] = (uint8_t)column_named(field[i]);
			have_address = have_address || c->col[i] == COL_ADDRESS;
		}
		if (!have_address) {
			snprintf(err, errlen, "header line without an address (or email) column");
			return -1;
		}
		c->n = (unsigned)n;
		c->header = true;
		return 0;
	}
	c->data = true;
	cols = c->header ? c->col : positional;
	ncols = c->header ? c->n : nitems(positional);
	if ((unsigned)n > ncols) {
		snprintf(err, errlen,
		         c->header ? "more fields than the header names"
		                   : "more than 3 fields (ADDRESS,REASON,SOURCE: quote a source "
		                     "with commas)");
		return -1;
	}
	for (int i = 0; i < n; i++) {
		const char *f = field[i];

		if (*f == '\0')
			continue; /* the default applies */
		switch ((enum column)cols[i]) {
		case COL_IGNORE:
			break;
		case COL_TENANT:
			rec->tenant = f;
			break;
		case COL_ADDRESS:
			address = f;
			break;
		case COL_REASON:
			if (suppress_reason_parse(f, &reason) < 0) {
				snprintf(err, errlen,
				         "unknown reason \"%.40s\" (hard-bounce, complaint, "
				         "unsubscribe, manual, import)",
				         f);
				return -1;
			}
			rec->reason = reason;
			break;
		case COL_ADDED:
			if (suppress_time_parse(f, &t) < 0) {
				snprintf(err, errlen,
				         "added \"%.40s\": not a time (RFC 3339 or Unix "
				         "seconds)",
				         f);
				return -1;
			}
			rec->added_us = t;
			break;
		case COL_EXPIRES:
			if (strcasecmp(f, "never") == 0)
				t = 0;
			else if (suppress_time_parse(f, &t) < 0) {
				snprintf(err, errlen,
				         "expires \"%.40s\": not a time (RFC 3339, Unix seconds or "
				         "never)",
				         f);
				return -1;
			}
			rec->expires_us = t;
			break;
		case COL_SOURCE:
			rec->source = f;
			break;
		}
	}
	if (address == NULL) {
		snprintf(err, errlen, "no address");
		return -1;
	}
	rec->address = address;
	return 1;
}

/* ---- the batch ---- */

struct item {
	size_t off; /* into the arena: key, then value */
	uint32_t seq;
	uint16_t klen, vlen;
	const uint8_t *key; /* set once the arena stops moving, for sorting */
};

struct batch {
	uint8_t *arena;
	size_t used, cap;
	struct item *items;
	size_t n, nalloc, max; /* max: records per transaction */
};

/* LMDB's default key order: memcmp over the shorter length, then the shorter first. */
static int
keycmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int d = memcmp(a, b, alen < blen ? alen : blen);

	return d != 0 ? d : (alen > blen) - (alen < blen);
}

static int
item_cmp(const void *x, const void *y)
{
	const struct item *a = x, *b = y;
	int d = keycmp(a->key, a->klen, b->key, b->klen);

	/* Equal keys keep file order, so that the later line wins. */
	return d != 0 ? d : (a->seq > b->seq) - (a->seq < b->seq);
}

static void
batch_add(struct batch *b, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	struct item *it;

	/* Both grow as needed: a three-line import costs kilobytes, not the largest batch. */
	while (b->used + klen + vlen > b->cap) {
		b->cap = b->cap == 0 ? 1 << 16 : b->cap * 2;
		b->arena = xrealloc(b->arena, b->cap);
	}
	if (b->n == b->nalloc) {
		b->nalloc = b->nalloc == 0 ? 1024 : b->nalloc * 2;
		b->items = xrealloc(b->items, b->nalloc * sizeof(*b->items));
	}
	it = &b->items[b->n];
	it->off = b->used;
	it->seq = (uint32_t)b->n;
	it->klen = (uint16_t)klen;
	it->vlen = (uint16_t)vlen;
	memcpy(b->arena + b->used, key, klen);
	memcpy(b->arena + b->used + klen, val, vlen);
	b->used += klen + vlen;
	b->n++;
}

/* Writes the batch in one transaction: 0, or the LMDB error (nothing of it written). */
static int
batch_flush(struct suppress *list, struct batch *b, uint64_t *written)
{
	uint8_t last[SUPPRESS_KEY_MAX];
	size_t lastlen = 0;
	bool have_last = false, append = false, can_append = true;
	uint64_t n = 0;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val key, val;
	int rc;

	if (b->n == 0)
		return 0;
	for (size_t i = 0; i < b->n; i++)
		b->items[i].key = b->arena + b->items[i].off;
	qsort(b->items, b->n, sizeof(*b->items), item_cmp);
	if ((rc = mdb_txn_begin(list->env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = mdb_cursor_open(txn, list->dbi, &cur)) != 0)
		goto fail;
	rc = mdb_cursor_get(cur, &key, &val, MDB_LAST);
	if (rc == 0 && key.mv_size <= sizeof(last)) {
		memcpy(last, key.mv_data, key.mv_size);
		lastlen = key.mv_size;
		have_last = true;
	} else if (rc == 0)
		can_append = false; /* a key longer than any of ours: not written by us */
	else if (rc != MDB_NOTFOUND)
		goto fail_cur;
	for (size_t i = 0; i < b->n; i++) {
		const struct item *it = &b->items[i];

		/* Of equal keys only the last (in file order) is written. */
		if (i + 1 < b->n &&
		    keycmp(it->key, it->klen, b->items[i + 1].key, b->items[i + 1].klen) == 0)
			continue;
		/* Sorted: once a key follows everything stored, so do all after it. */
		if (!append && can_append &&
		    (!have_last || keycmp(it->key, it->klen, last, lastlen) > 0))
			append = true;
		key.mv_size = it->klen;
		key.mv_data = (void *)it->key;
		val.mv_size = it->vlen;
		val.mv_data = (void *)(it->key + it->klen);
		if ((rc = mdb_cursor_put(cur, &key, &val, append ? MDB_APPEND : 0)) != 0)
			goto fail_cur;
		n++;
	}
	mdb_cursor_close(cur);
	if ((rc = mdb_txn_commit(txn)) != 0)
		return rc;
	suppress_count_commit(list, n, 0);
	*written += n;
	b->n = 0;
	b->used = 0;
	return 0;
fail_cur:
	mdb_cursor_close(cur);
fail:
	mdb_txn_abort(txn);
	return rc;
}

int
suppress_import(struct suppress *list, FILE *in, const struct suppress_record *defaults,
                suppress_import_error_fn *on_error, void *arg,
                struct suppress_import_result *result, char *err, size_t errlen)
{
	struct suppress_record def = {.reason = SUPPRESS_IMPORT};
	struct suppress_columns cols = {0};
	struct suppress_import_result res = {0};
	struct batch b = {0};
	char *line = NULL;
	size_t linecap = 0;
	ssize_t len;
	int rc, ret = 0;

	if (result != NULL)
		*result = res;
	if (list->readonly) {
		snprintf(err, errlen, "suppression list %s is open read-only", list->dir);
		return -1;
	}
	if (defaults != NULL)
		def = *defaults;
	def.address = NULL;
	/* One time for the whole import: the entries of one list arrived together. */
	if (def.added_us == 0)
		def.added_us = suppress_now(list);
	b.max = list->import_batch;
	while ((len = getline(&line, &linecap, in)) >= 0) {
		uint8_t key[SUPPRESS_KEY_MAX], val[SUPPRESS_VALUE_MAX];
		struct suppress_record rec = def;
		size_t klen, vlen;
		char why[256];
		int r;

		res.lines++;
		r = suppress_import_parse(&cols, line, (size_t)len, &rec, why, sizeof(why));
		if (r == 1 && suppress_prepare(list, &rec, key, &klen, val, &vlen, why,
		                               sizeof(why)) != SUPPRESS_OK)
			r = -1;
		if (r < 0) {
			res.malformed++;
			if (on_error != NULL)
				on_error(arg, res.lines, why);
			continue;
		}
		if (r == 0)
			continue;
		batch_add(&b, key, klen, val, vlen);
		if (b.n == b.max && (rc = batch_flush(list, &b, &res.imported)) != 0) {
			snprintf(err, errlen,
			         "suppression list %s: %s (%llu entries stored before)", list->dir,
			         mdb_strerror(rc), (unsigned long long)res.imported);
			ret = -1;
			goto done;
		}
	}
	if (ferror(in)) {
		snprintf(err, errlen, "reading: %s (%llu entries stored before)", strerror(errno),
		         (unsigned long long)res.imported);
		ret = -1;
		goto done;
	}
	if ((rc = batch_flush(list, &b, &res.imported)) != 0) {
		snprintf(err, errlen, "suppression list %s: %s (%llu entries stored before)",
		         list->dir, mdb_strerror(rc), (unsigned long long)res.imported);
		ret = -1;
	}
done:
	if (ret < 0) {
		pthread_mutex_lock(&list->lock);
		list->stats.failed++;
		pthread_mutex_unlock(&list->lock);
	}
	free(line);
	free(b.arena);
	free(b.items);
	if (result != NULL)
		*result = res;
	return ret;
}
