/* store.c - the LMDB environment of the suppression list: open, close, the synchronous
 * writes, iteration, the expiry sweep, counters.
 *
 * Two named databases: "entries" (key.c: tenant NUL address -> record) and "meta" (the
 * local-part rule the list was created with, so that the daemon and every CLI invocation
 * build the same keys).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "suppress/suppress_private.h"

/* Reader slots over every process: the daemon's threads (one each, kept), CLI runs. */
#define SUPPRESS_MAX_READERS 1024

#define META_LOCAL_CASE "local-case"

uint64_t
suppress_now(struct suppress *list)
{
	return list->clock != NULL ? list->clock(list->clock_arg) : time_now_us();
}

bool
suppress_local_exact(const struct suppress *list)
{
	return list->local_exact;
}

int
suppress_txn_begin_read(struct suppress *list, MDB_txn **txn)
{
	int rc = mdb_txn_begin(list->env, NULL, MDB_RDONLY, txn);

	/* Another process grew the map past ours (it was opened with a larger map size):
	 * adopt the new size. Only safe with no transaction of ours open, which holds for a
	 * read-only list (the CLI, one thread). */
	if (rc == MDB_MAP_RESIZED && list->readonly && mdb_env_set_mapsize(list->env, 0) == 0)
		rc = mdb_txn_begin(list->env, NULL, MDB_RDONLY, txn);
	if (rc != 0)
		log_error("suppress: %s: cannot begin a read transaction: %s", list->dir,
		          mdb_strerror(rc));
	return rc;
}

void
suppress_count_commit(struct suppress *list, uint64_t added, uint64_t removed)
{
	pthread_mutex_lock(&list->lock);
	list->stats.commits++;
	list->stats.added += added;
	list->stats.removed += removed;
	pthread_mutex_unlock(&list->lock);
}

static void
count_failure(struct suppress *list)
{
	pthread_mutex_lock(&list->lock);
	list->stats.failed++;
	pthread_mutex_unlock(&list->lock);
}

/* mkdir -p, each missing level mode 0700: the default directory sits two levels under a
 * ./var that a first `drover suppress add` may have to create. */
static int
make_dirs(const char *dir)
{
	char buf[4096];

	if (strlcpy_s(buf, dir, sizeof(buf)) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* One attempt at opening the databases and reading the local-part rule, in a read
 * transaction (write false) or, creating what is missing, a write one. 0 or the LMDB
 * error (MDB_NOTFOUND: not created yet). */
static int
open_dbis_txn(struct suppress *list, bool write, bool want_exact)
{
	unsigned flags = write ? MDB_CREATE : 0;
	MDB_val key = {sizeof(META_LOCAL_CASE) - 1, META_LOCAL_CASE}, val;
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(list->env, NULL, write ? 0 : MDB_RDONLY, &txn)) != 0)
		return rc;
	if ((rc = mdb_dbi_open(txn, "entries", flags, &list->dbi)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", flags, &list->dbi_meta)) != 0)
		goto fail;
	rc = mdb_get(txn, list->dbi_meta, &key, &val);
	if (rc == 0) {
		/* The flag only chooses at creation: every later open, the CLI's included,
		 * follows what the store says. */
		list->local_exact = val.mv_size == 5 && memcmp(val.mv_data, "exact", 5) == 0;
	} else if (rc == MDB_NOTFOUND && write) {
		list->local_exact = want_exact;
		val.mv_size = want_exact ? 5 : 4;
		val.mv_data = want_exact ? "exact" : "fold";
		if ((rc = mdb_put(txn, list->dbi_meta, &key, &val, 0)) != 0)
			goto fail;
	} else
		goto fail;
	/* Committing makes the handles usable by every later transaction. */
	return mdb_txn_commit(txn);
fail:
	mdb_txn_abort(txn);
	return rc;
}

/* Opens the databases. An existing list is opened in a read transaction: opening never
 * waits for LMDB's write lock, which another process (a long import) may hold. */
static int
open_dbis(struct suppress *list, bool want_exact, char *err, size_t errlen)
{
	int rc = open_dbis_txn(list, false, want_exact);

	if (rc == MDB_NOTFOUND && !list->readonly)
		rc = open_dbis_txn(list, true, want_exact);
	if (rc == 0)
		return 0;
	snprintf(err, errlen, "suppression list %s: cannot open its databases: %s", list->dir,
	         rc == MDB_NOTFOUND ? "not initialised (never opened read-write)"
	                            : mdb_strerror(rc));
	return -1;
}

static void
list_free(struct suppress *list)
{
	if (list->env != NULL)
		mdb_env_close(list->env);
	pthread_cond_destroy(&list->wake);
	pthread_mutex_destroy(&list->lock);
	pthread_mutex_destroy(&list->rlock);
	free(list->dir);
	free(list);
}

struct suppress *
suppress_open(const char *dir, const struct suppress_options *opt, int flags, char *err,
              size_t errlen)
{
	struct suppress *list = xcalloc(1, sizeof(*list));
	unsigned envflags = MDB_NOTLS;
	struct stat st;
	int rc, dead;

	list->dir = xstrdup(dir);
	list->readonly = (flags & SUPPRESS_READONLY) != 0;
	list->batch_max =
	    opt != NULL && opt->batch_max > 0 ? opt->batch_max : SUPPRESS_DEF_BATCH_MAX;
	list->import_batch =
	    opt != NULL && opt->import_batch > 0 ? opt->import_batch : SUPPRESS_DEF_IMPORT_BATCH;
	/* A batch is sorted in memory (~90 bytes a record) and numbered in 32 bits. */
	if (list->import_batch > SUPPRESS_IMPORT_BATCH_MAX)
		list->import_batch = SUPPRESS_IMPORT_BATCH_MAX;
	if (opt != NULL) {
		list->clock = opt->clock;
		list->clock_arg = opt->clock_arg;
	}
	pthread_mutex_init(&list->lock, NULL);
	pthread_cond_init(&list->wake, NULL);
	pthread_mutex_init(&list->rlock, NULL);
	list->tail = &list->head;

	if (list->readonly) {
		envflags |= MDB_RDONLY;
		if (stat(dir, &st) < 0) {
			snprintf(err, errlen, "suppression list %s: %s%s", dir, strerror(errno),
			         errno == ENOENT ? " (nothing was ever added to it?)" : "");
			goto fail;
		}
	} else if (make_dirs(dir) < 0) {
		snprintf(err, errlen, "suppression list %s: cannot create: %s", dir,
		         strerror(errno));
		goto fail;
	}
	if ((rc = mdb_env_create(&list->env)) != 0) {
		snprintf(err, errlen, "suppression list %s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	mdb_env_set_maxdbs(list->env, 2);
	mdb_env_set_maxreaders(list->env, SUPPRESS_MAX_READERS);
	/* A read-only open takes the size the file records; a larger map than some other
	 * process uses is harmless (LMDB keeps the larger). */
	if (!list->readonly)
		mdb_env_set_mapsize(list->env, opt != NULL && opt->map_size > 0
		                                   ? opt->map_size
		                                   : SUPPRESS_DEF_MAP_SIZE);
	if ((rc = mdb_env_open(list->env, dir, envflags, 0600)) != 0) {
		snprintf(err, errlen, "suppression list %s: %s%s", dir, mdb_strerror(rc),
		         rc == ENOENT ? " (nothing was ever added to it?)" : "");
		goto fail;
	}
	/* Reader slots of processes killed while reading (a CLI run cut short) would stay
	 * taken and, in time, pin old pages: free them. */
	if (mdb_reader_check(list->env, &dead) == 0 && dead > 0)
		log_info("suppress: %s: %d stale reader slots freed", dir, dead);
	if (open_dbis(list, (flags & SUPPRESS_LOCAL_EXACT) != 0, err, errlen) < 0)
		goto fail;
	if (suppress_readers_init(list) < 0) {
		snprintf(err, errlen, "suppression list %s: no thread-specific key left", dir);
		goto fail;
	}
	if (!list->readonly && suppress_writer_start(list, err, errlen) < 0) {
		suppress_readers_close(list);
		goto fail;
	}
	return list;
fail:
	list_free(list);
	return NULL;
}

void
suppress_close(struct suppress *list)
{
	if (list == NULL)
		return;
	/* The writer answers everything queued before it stops. */
	if (!list->readonly)
		suppress_writer_stop(list);
	suppress_readers_close(list);
	list_free(list);
}

uint64_t
suppress_count(struct suppress *list)
{
	MDB_txn *txn;
	MDB_stat st;
	int rc;

	if (suppress_txn_begin_read(list, &txn) != 0)
		return 0;
	rc = mdb_stat(txn, list->dbi, &st);
	mdb_txn_abort(txn);
	return rc == 0 ? st.ms_entries : 0;
}

void
suppress_stats(struct suppress *list, struct suppress_stats *out)
{
	pthread_mutex_lock(&list->lock);
	*out = list->stats;
	pthread_mutex_unlock(&list->lock);
}

/* ---- synchronous writes ---- */

/* One write transaction on the caller's thread: put (val != NULL) or delete. */
static int
write_one(struct suppress *list, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen)
{
	MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
	MDB_txn *txn;
	int rc;

	if ((rc = mdb_txn_begin(list->env, NULL, 0, &txn)) != 0)
		return rc;
	rc = val != NULL ? mdb_put(txn, list->dbi, &k, &v, 0) : mdb_del(txn, list->dbi, &k, NULL);
	if (rc != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

enum suppress_status
suppress_add(struct suppress *list, const struct suppress_record *rec, char *err, size_t errlen)
{
	uint8_t key[SUPPRESS_KEY_MAX], val[SUPPRESS_VALUE_MAX];
	enum suppress_status st;
	size_t klen, vlen;
	int rc;

	if (list->readonly) {
		if (err != NULL)
			snprintf(err, errlen, "suppression list %s is open read-only", list->dir);
		return SUPPRESS_IO_ERROR;
	}
	st = suppress_prepare(list, rec, key, &klen, val, &vlen, err, errlen);
	if (st != SUPPRESS_OK)
		return st;
	if ((rc = write_one(list, key, klen, val, vlen)) != 0) {
		if (err != NULL)
			snprintf(err, errlen, "suppression list %s: %s", list->dir,
			         mdb_strerror(rc));
		count_failure(list);
		return suppress_status_of(rc);
	}
	suppress_count_commit(list, 1, 0);
	return SUPPRESS_OK;
}

enum suppress_status
suppress_remove(struct suppress *list, const char *tenant, const char *address, char *err,
                size_t errlen)
{
	char norm[SUPPRESS_ADDRESS_MAX + 1];
	uint8_t key[SUPPRESS_KEY_MAX];
	const char *why;
	int klen, rc;

	if (list->readonly) {
		if (err != NULL)
			snprintf(err, errlen, "suppression list %s is open read-only", list->dir);
		return SUPPRESS_IO_ERROR;
	}
	if (suppress_address_normalize(address, !list->local_exact, norm, sizeof(norm), &why) < 0 ||
	    (klen = suppress_key(key, tenant, norm)) < 0) {
		if (err != NULL)
			snprintf(err, errlen, "\"%.100s\": %s", address,
			         why != NULL ? why : "invalid tenant");
		return SUPPRESS_INVALID;
	}
	rc = write_one(list, key, (size_t)klen, NULL, 0);
	if (rc == MDB_NOTFOUND)
		return SUPPRESS_NOT_FOUND;
	if (rc != 0) {
		if (err != NULL)
			snprintf(err, errlen, "suppression list %s: %s", list->dir,
			         mdb_strerror(rc));
		count_failure(list);
		return suppress_status_of(rc);
	}
	suppress_count_commit(list, 0, 1);
	return SUPPRESS_OK;
}

/* ---- iteration ---- */

/* Where a tenant's range starts: its name and the NUL. */
static size_t
tenant_prefix(uint8_t *buf, const char *tenant)
{
	size_t n = strlen(tenant);

	memcpy(buf, tenant, n);
	buf[n] = '\0';
	return n + 1;
}

int
suppress_foreach(struct suppress *list, const char *tenant, int flags, suppress_foreach_fn *fn,
                 void *arg)
{
	uint8_t prefix[SUPPRESS_TENANT_MAX + 1], resume[SUPPRESS_KEY_MAX];
	size_t plen = 0, rlen = 0;
	bool started = false;
	uint64_t now = suppress_now(list);
	int rc, ret = 0;

	if (tenant != NULL) {
		if (!suppress_tenant_valid(tenant))
			return 0; /* no entry can be filed under it */
		plen = tenant_prefix(prefix, tenant);
	}
	for (;;) {
		MDB_cursor *cur;
		MDB_txn *txn;
		MDB_val key, val;
		unsigned n = 0;

		if (suppress_txn_begin_read(list, &txn) != 0)
			return -1;
		if ((rc = mdb_cursor_open(txn, list->dbi, &cur)) != 0) {
			mdb_txn_abort(txn);
			return -1;
		}
		if (started) {
			key.mv_size = rlen;
			key.mv_data = resume;
			rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		} else if (plen > 0) {
			key.mv_size = plen;
			key.mv_data = prefix;
			rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		} else
			rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		started = true;
		for (; rc == 0 && ret == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
			struct suppress_entry e;
			uint64_t exp;

			if (plen > 0 &&
			    (key.mv_size < plen || memcmp(key.mv_data, prefix, plen) != 0)) {
				rc = MDB_NOTFOUND;
				break;
			}
			if (n++ == SUPPRESS_SCAN_TXN_MAX && key.mv_size <= sizeof(resume)) {
				rlen = key.mv_size;
				memcpy(resume, key.mv_data, rlen);
				break;
			}
			if (suppress_record_decode(&key, &val, &e) < 0) {
				log_error("suppress: %s: damaged entry of %zu octets: skipped",
				          list->dir, key.mv_size);
				continue;
			}
			exp = e.expires_us;
			if (exp != 0 && exp <= now && !(flags & SUPPRESS_FOREACH_EXPIRED))
				continue;
			ret = fn(arg, &e);
		}
		mdb_cursor_close(cur);
		mdb_txn_abort(txn);
		if (ret != 0)
			return ret;
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc != 0) {
			log_error("suppress: %s: reading entries: %s", list->dir, mdb_strerror(rc));
			return -1;
		}
	}
}

/* ---- expiry ---- */

/* One transaction's worth of the sweep: from resume (or the start) on, at most
 * SUPPRESS_SCAN_TXN_MAX entries looked at. *more says whether any are left. */
static int
sweep_step(struct suppress *list, MDB_txn *txn, uint64_t now, uint8_t *resume, size_t *rlen,
           bool *started, bool *more, uint64_t *removed)
{
	MDB_cursor *cur;
	MDB_val key, val;
	unsigned n = 0;
	int rc;

	*more = false;
	if ((rc = mdb_cursor_open(txn, list->dbi, &cur)) != 0)
		return rc;
	if (*started) {
		key.mv_size = *rlen;
		key.mv_data = resume;
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	} else
		rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	*started = true;
	while (rc == 0) {
		uint64_t exp = suppress_record_expiry(&val);

		if (key.mv_size > SUPPRESS_KEY_MAX) {
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
			continue; /* not ours to judge: left for an operator */
		}
		*rlen = key.mv_size;
		memcpy(resume, key.mv_data, *rlen);
		if (n++ == SUPPRESS_SCAN_TXN_MAX) {
			*more = true;
			break;
		}
		if (exp == 0 || exp > now) {
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
			continue;
		}
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		(*removed)++;
		/* Seek past the deleted key rather than rely on where a deletion leaves the
		 * cursor (page merges move it). */
		key.mv_size = *rlen;
		key.mv_data = resume;
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

int64_t
suppress_sweep(struct suppress *list, uint64_t now_us)
{
	uint8_t resume[SUPPRESS_KEY_MAX];
	size_t rlen = 0;
	bool started = false, more = true;
	uint64_t total = 0;

	if (list->readonly)
		return -1;
	while (more) {
		uint64_t removed = 0;
		MDB_txn *txn;
		int rc;

		if ((rc = mdb_txn_begin(list->env, NULL, 0, &txn)) != 0) {
			log_error("suppress: %s: sweep: %s", list->dir, mdb_strerror(rc));
			return -1;
		}
		rc = sweep_step(list, txn, now_us, resume, &rlen, &started, &more, &removed);
		if (rc != 0) {
			mdb_txn_abort(txn);
			log_error("suppress: %s: sweep: %s", list->dir, mdb_strerror(rc));
			count_failure(list);
			return -1;
		}
		/* A transaction that deleted nothing writes nothing and costs no fsync. */
		if ((rc = mdb_txn_commit(txn)) != 0) {
			log_error("suppress: %s: sweep: commit: %s", list->dir, mdb_strerror(rc));
			count_failure(list);
			return -1;
		}
		if (removed > 0)
			suppress_count_commit(list, 0, removed);
		total += removed;
	}
	if (total > 0)
		log_info("suppress: %s: %llu expired entries removed", list->dir,
		         (unsigned long long)total);
	return (int64_t)total;
}
