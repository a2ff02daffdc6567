/* store.c - the LMDB environment: open, recovery after a crash, close, and every read.
 *
 * Two named databases. "msg": queue id (24 octets) -> encoded envelope; a message exists
 * exactly when its record does. "body": id + 4-octet big-endian chunk index -> the chunk's
 * octets. Chunks are written before their envelope, so a crash between the two leaves
 * chunks without a record; spool_open() removes them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/buffer.h>

#include "core/core.h"
#include "spool/spool_private.h"

/* Readers at once, over every process (the daemon's threads, CLI invocations). */
#define SPOOL_MAX_READERS 1024
/* spool_foreach() renews its read transaction this often, so that a long listing does not
 * pin old pages (which would make the file grow while the daemon writes). */
#define SPOOL_FOREACH_TXN_MAX 1024

void
spool_body_key(uint8_t key[SPOOL_BODY_KEY_LEN], const char *id, uint32_t index)
{
	memcpy(key, id, SPOOL_ID_LEN);
	key[SPOOL_ID_LEN + 0] = index >> 24;
	key[SPOOL_ID_LEN + 1] = index >> 16;
	key[SPOOL_ID_LEN + 2] = index >> 8;
	key[SPOOL_ID_LEN + 3] = index;
}

static uint32_t
body_key_index(const uint8_t *key)
{
	const uint8_t *p = key + SPOOL_ID_LEN;

	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

bool
spool_id_valid(const char *id)
{
	size_t i;

	if (id == NULL)
		return false;
	for (i = 0; i < SPOOL_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return id[i] == '\0';
}

int
spool_txn_begin_read(struct spool *sp, MDB_txn **txn)
{
	int rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, txn);

	/* A read-only process sees the daemon grow the map (after a restart with a larger
	 * max_size): adopt the new size and retry. Only a read-only spool can see this, as
	 * the read-write one sets the size itself. */
	if (rc == MDB_MAP_RESIZED && sp->readonly && mdb_env_set_mapsize(sp->env, 0) == 0)
		rc = mdb_txn_begin(sp->env, NULL, MDB_RDONLY, txn);
	if (rc != 0)
		log_error("spool: cannot begin a read transaction: %s", mdb_strerror(rc));
	return rc;
}

int
spool_delete_chunks(struct spool *sp, MDB_txn *txn, const char *id, uint64_t *ndeleted)
{
	uint8_t first[SPOOL_BODY_KEY_LEN];
	MDB_cursor *cur;
	MDB_val key, val;
	int rc;

	spool_body_key(first, id, 0);
	if ((rc = mdb_cursor_open(txn, sp->dbi_body, &cur)) != 0)
		return rc;
	/* Seek again after each delete rather than rely on where a deletion leaves the
	 * cursor: a message has few chunks, and the seek is a B-tree descent. */
	for (;;) {
		key.mv_size = sizeof(first);
		key.mv_data = first;
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		if (rc != 0 || key.mv_size != SPOOL_BODY_KEY_LEN ||
		    memcmp(key.mv_data, id, SPOOL_ID_LEN) != 0)
			break;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			break;
		if (ndeleted != NULL)
			(*ndeleted)++;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? 0 : rc;
}

/* The wall-clock part of an id-shaped key, 0 if it has none. */
static uint64_t
key_time_us(const MDB_val *key)
{
	const char *p = key->mv_data;
	uint64_t t = 0;

	if (key->mv_size < SPOOL_ID_LEN)
		return 0;
	for (int i = 0; i < 16; i++) {
		char c = p[i];

		if (c >= '0' && c <= '9')
			t = t << 4 | (uint64_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			t = t << 4 | (uint64_t)(c - 'a' + 10);
		else
			return 0;
	}
	return t;
}

/* Removes the chunks whose message has no envelope record (a transfer cut short by a
 * crash, or chunks the writer could not delete), in one pass over "body" in key order,
 * which is id order, with one lookup in "msg" per distinct id. */
static int
spool_recover(struct spool *sp, uint64_t *norphans)
{
	uint8_t resume[SPOOL_BODY_KEY_LEN];
	char id[SPOOL_ID_LEN];
	bool have_id = false, live = false;
	unsigned in_txn = 0;
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val key, val, last;
	int rc;

	if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0)
		goto fail;
	/* The newest id so far, so that new ids sort after it even if the clock stepped
	 * back across the restart. */
	if ((rc = mdb_cursor_open(txn, sp->dbi_msg, &cur)) != 0)
		goto fail;
	if (mdb_cursor_get(cur, &last, &val, MDB_LAST) == 0)
		sp->id_floor_us = key_time_us(&last);
	mdb_cursor_close(cur);
	if ((rc = mdb_cursor_open(txn, sp->dbi_body, &cur)) != 0)
		goto fail;
	if (mdb_cursor_get(cur, &last, &val, MDB_LAST) == 0 && key_time_us(&last) > sp->id_floor_us)
		sp->id_floor_us = key_time_us(&last);

	rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
	while (rc == 0) {
		if (key.mv_size == SPOOL_BODY_KEY_LEN &&
		    (!have_id || memcmp(key.mv_data, id, SPOOL_ID_LEN) != 0)) {
			MDB_val k = {SPOOL_ID_LEN, id}, v;

			memcpy(id, key.mv_data, SPOOL_ID_LEN);
			have_id = true;
			rc = mdb_get(txn, sp->dbi_msg, &k, &v);
			if (rc != 0 && rc != MDB_NOTFOUND)
				goto fail;
			live = rc == 0;
		}
		if (key.mv_size == SPOOL_BODY_KEY_LEN && live) {
			rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT);
			continue;
		}
		/* An orphan (or a key of no known shape): delete, then seek past it. */
		if (key.mv_size > sizeof(resume)) {
			log_warn("spool: body key of %zu octets removed", key.mv_size);
			key.mv_size = sizeof(resume);
		}
		memcpy(resume, key.mv_data, key.mv_size);
		key.mv_data = resume;
		if ((rc = mdb_cursor_del(cur, 0)) != 0)
			goto fail;
		(*norphans)++;
		if (++in_txn >= SPOOL_RECOVERY_TXN_MAX) {
			mdb_cursor_close(cur);
			cur = NULL;
			if ((rc = mdb_txn_commit(txn)) != 0) {
				txn = NULL;
				goto fail;
			}
			if ((rc = mdb_txn_begin(sp->env, NULL, 0, &txn)) != 0) {
				txn = NULL;
				goto fail;
			}
			if ((rc = mdb_cursor_open(txn, sp->dbi_body, &cur)) != 0)
				goto fail;
			in_txn = 0;
		}
		rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	}
	if (rc != MDB_NOTFOUND)
		goto fail;
	mdb_cursor_close(cur);
	rc = mdb_txn_commit(txn);
	if (rc != 0)
		log_error("spool: recovery: commit: %s", mdb_strerror(rc));
	return rc;
fail:
	log_error("spool: recovery: %s", mdb_strerror(rc));
	if (cur != NULL)
		mdb_cursor_close(cur);
	if (txn != NULL)
		mdb_txn_abort(txn);
	return rc;
}

static int
open_dbis(struct spool *sp, char *err, size_t errlen, const char *dir)
{
	unsigned flags = sp->readonly ? 0 : MDB_CREATE;
	MDB_txn *txn;
	int rc;

	rc = mdb_txn_begin(sp->env, NULL, sp->readonly ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		goto fail;
	if ((rc = mdb_dbi_open(txn, "msg", flags, &sp->dbi_msg)) != 0 ||
	    (rc = mdb_dbi_open(txn, "body", flags, &sp->dbi_body)) != 0) {
		mdb_txn_abort(txn);
		goto fail;
	}
	/* Committing makes the handles usable by every later transaction. */
	if ((rc = mdb_txn_commit(txn)) != 0)
		goto fail;
	return 0;
fail:
	snprintf(err, errlen, "spool %s: cannot open its databases: %s", dir,
	         rc == MDB_NOTFOUND ? "not initialised (never opened read-write)"
	                            : mdb_strerror(rc));
	return -1;
}

struct spool *
spool_open(const char *dir, const struct spool_options *opt, int flags, char *err, size_t errlen)
{
	struct spool *sp = xcalloc(1, sizeof(*sp));
	uint64_t norphans = 0;
	unsigned envflags = MDB_NOTLS;
	MDB_stat st;
	int rc;

	sp->readonly = (flags & SPOOL_READONLY) != 0;
	spool_histograms_new(sp);
	pthread_mutex_init(&sp->lock, NULL);
	pthread_cond_init(&sp->wake, NULL);
	pthread_cond_init(&sp->synced, NULL);
	pthread_mutex_init(&sp->rlock, NULL);
	pthread_cond_init(&sp->rwake, NULL);
	sp->tail = &sp->head;
	sp->rtail = &sp->rhead;
	if (!sp->readonly) {
		if (opt == NULL || opt->max_size == 0 || opt->batch_max == 0) {
			snprintf(err, errlen, "spool %s: max_size and batch_max must be > 0", dir);
			goto fail;
		}
		sp->batch_max = opt->batch_max;
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "spool %s: cannot create: %s", dir, strerror(errno));
			goto fail;
		}
	} else
		envflags |= MDB_RDONLY;

	if ((rc = mdb_env_create(&sp->env)) != 0) {
		snprintf(err, errlen, "spool %s: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	mdb_env_set_maxdbs(sp->env, 2);
	mdb_env_set_maxreaders(sp->env, SPOOL_MAX_READERS);
	/* Read-only: no size given, LMDB takes the one recorded in the file. */
	if (!sp->readonly && (rc = mdb_env_set_mapsize(sp->env, opt->max_size)) != 0) {
		snprintf(err, errlen, "spool %s: max_size %llu: %s", dir,
		         (unsigned long long)opt->max_size, mdb_strerror(rc));
		goto fail;
	}
	/* Default durability: every commit fsyncs (no MDB_NOSYNC, no MDB_NOMETASYNC).
	 * MDB_NOTLS: read transactions are not tied to a thread's slot. */
	if ((rc = mdb_env_open(sp->env, dir, envflags, 0600)) != 0) {
		snprintf(err, errlen, "spool %s: cannot open: %s", dir, mdb_strerror(rc));
		goto fail;
	}
	/* Reader slots left by a crashed process (an interrupted CLI) would pin old pages. */
	mdb_reader_check(sp->env, NULL);
	if (open_dbis(sp, err, errlen, dir) < 0)
		goto fail;

	if (!sp->readonly) {
		rc = spool_recover(sp, &norphans);
		/* A full map can refuse even deletions (they copy pages): start anyway, the
		 * orphans cost space but no correctness, and the next start tries again. */
		if (rc == MDB_MAP_FULL)
			log_warn("spool %s: full, orphan chunks left in place", dir);
		else if (rc != 0) {
			snprintf(err, errlen, "spool %s: recovery failed: %s", dir,
			         mdb_strerror(rc));
			goto fail;
		}
	}
	{
		MDB_txn *txn;

		if ((rc = spool_txn_begin_read(sp, &txn)) != 0) {
			snprintf(err, errlen, "spool %s: %s", dir, mdb_strerror(rc));
			goto fail;
		}
		rc = mdb_stat(txn, sp->dbi_msg, &st);
		mdb_txn_abort(txn);
		if (rc != 0) {
			snprintf(err, errlen, "spool %s: %s", dir, mdb_strerror(rc));
			goto fail;
		}
		atomic_store(&sp->nmsg, st.ms_entries);
	}
	/* The reader serves spool_load() on a read-only spool too. */
	if (spool_reader_start(sp, err, errlen) < 0)
		goto fail;
	if (!sp->readonly) {
		log_info("spool: %llu messages recovered, %llu orphan chunks removed",
		         (unsigned long long)st.ms_entries, (unsigned long long)norphans);
		if (spool_writer_start(sp, err, errlen) < 0)
			goto fail;
	}
	return sp;
fail:
	spool_reader_stop(sp);
	if (sp->env != NULL)
		mdb_env_close(sp->env);
	pthread_cond_destroy(&sp->rwake);
	pthread_mutex_destroy(&sp->rlock);
	pthread_cond_destroy(&sp->synced);
	pthread_cond_destroy(&sp->wake);
	pthread_mutex_destroy(&sp->lock);
	spool_histograms_free(sp);
	free(sp);
	return NULL;
}

void
spool_close(struct spool *sp)
{
	if (sp == NULL)
		return;
	/* Each drains its queue first: every load and change made so far is answered. */
	spool_reader_stop(sp);
	if (!sp->readonly)
		spool_writer_stop(sp);
	mdb_env_close(sp->env);
	pthread_cond_destroy(&sp->rwake);
	pthread_mutex_destroy(&sp->rlock);
	pthread_cond_destroy(&sp->synced);
	pthread_cond_destroy(&sp->wake);
	pthread_mutex_destroy(&sp->lock);
	spool_histograms_free(sp);
	free(sp);
}

uint64_t
spool_message_count(struct spool *sp)
{
	return atomic_load(&sp->nmsg);
}

void
spool_stats(struct spool *sp, struct spool_stats *out)
{
	pthread_mutex_lock(&sp->lock);
	*out = sp->stats;
	pthread_mutex_unlock(&sp->lock);
}

void
spool_histograms_new(struct spool *sp)
{
	static const uint64_t latency[] = {HISTOGRAM_LATENCY_US};
	/* Up to LIM_SPOOL_BATCH_MAX (conf/defaults.h); the default batch_max is 256. */
	static const uint64_t sizes[] = {1,   2,   5,    10,   20,   50,   100,
	                                 200, 500, 1000, 2000, 5000, 10000};

	sp->commit_us = histogram_new(latency, nitems(latency));
	sp->batch_size = histogram_new(sizes, nitems(sizes));
}

void
spool_histograms_free(struct spool *sp)
{
	histogram_free(sp->commit_us);
	histogram_free(sp->batch_size);
}

const struct histogram *
spool_commit_latency(struct spool *sp)
{
	return sp->commit_us;
}

const struct histogram *
spool_batch_sizes(struct spool *sp)
{
	return sp->batch_size;
}

/* ---- reading ---- */

/* The id comes from the key, which is what the record is filed under. */
int
spool_decode_record(const MDB_val *key, const MDB_val *val, struct envelope *env)
{
	if (key->mv_size != SPOOL_ID_LEN || envelope_decode(val->mv_data, val->mv_size, env) < 0) {
		log_error("spool: damaged envelope record \"%.*s\" (%zu octets): skipped",
		          (int)(key->mv_size > 64 ? 64 : key->mv_size), (const char *)key->mv_data,
		          val->mv_size);
		return -1;
	}
	memcpy(env->id, key->mv_data, SPOOL_ID_LEN);
	env->id[SPOOL_ID_LEN] = '\0';
	return 0;
}

int
spool_foreach(struct spool *sp, spool_foreach_fn *fn, void *arg)
{
	uint8_t resume[SPOOL_ID_LEN];
	bool started = false;
	MDB_cursor *cur;
	MDB_txn *txn;
	MDB_val key, val;
	int rc, ret = 0;

	for (;;) {
		unsigned n = 0;

		if (spool_txn_begin_read(sp, &txn) != 0)
			return -1;
		if ((rc = mdb_cursor_open(txn, sp->dbi_msg, &cur)) != 0) {
			mdb_txn_abort(txn);
			return -1;
		}
		if (started) {
			key.mv_size = sizeof(resume);
			key.mv_data = resume;
			rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
		} else
			rc = mdb_cursor_get(cur, &key, &val, MDB_FIRST);
		started = true;
		for (; rc == 0 && ret == 0; rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
			struct envelope env;

			if (n++ == SPOOL_FOREACH_TXN_MAX && key.mv_size == SPOOL_ID_LEN) {
				memcpy(resume, key.mv_data, SPOOL_ID_LEN);
				break;
			}
			if (spool_decode_record(&key, &val, &env) < 0)
				continue;
			ret = fn(arg, &env);
			envelope_clear(&env);
		}
		mdb_cursor_close(cur);
		mdb_txn_abort(txn);
		if (ret != 0)
			return ret;
		if (rc == MDB_NOTFOUND)
			return 0;
		if (rc != 0) {
			log_error("spool: reading envelopes: %s", mdb_strerror(rc));
			return -1;
		}
	}
}

int
spool_envelope_get(struct spool *sp, const char *id, struct envelope *env)
{
	MDB_val key = {SPOOL_ID_LEN, (void *)id}, val;
	MDB_txn *txn;
	int rc;

	memset(env, 0, sizeof(*env));
	if (!spool_id_valid(id) || spool_txn_begin_read(sp, &txn) != 0)
		return -1;
	rc = mdb_get(txn, sp->dbi_msg, &key, &val);
	if (rc == 0)
		rc = spool_decode_record(&key, &val, env);
	else if (rc != MDB_NOTFOUND)
		log_error("spool: reading envelope %s: %s", id, mdb_strerror(rc));
	mdb_txn_abort(txn);
	return rc == 0 ? 0 : -1;
}

struct evbuffer *
spool_body_get(struct spool *sp, MDB_txn *txn, const struct envelope *env)
{
	uint8_t first[SPOOL_BODY_KEY_LEN];
	struct evbuffer *body = evbuffer_new();
	MDB_cursor *cur;
	MDB_val key, val;
	uint32_t expect = 0;
	uint64_t total = 0;
	int rc;

	if (body == NULL)
		fatal("spool: out of memory");
	/* The fields computed at end of data go first; see struct envelope. */
	if (env->headers != NULL) {
		if (evbuffer_add(body, env->headers, strlen(env->headers)) < 0)
			fatal("spool: out of memory");
		total += strlen(env->headers);
	}
	if ((rc = mdb_cursor_open(txn, sp->dbi_body, &cur)) != 0) {
		log_error("spool: message %s: reading body: %s", env->id, mdb_strerror(rc));
		goto fail;
	}
	spool_body_key(first, env->id, 0);
	key.mv_size = sizeof(first);
	key.mv_data = first;
	for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE);
	     rc == 0 && key.mv_size == SPOOL_BODY_KEY_LEN &&
	     memcmp(key.mv_data, env->id, SPOOL_ID_LEN) == 0;
	     rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
		if (body_key_index(key.mv_data) != expect++) {
			log_error("spool: message %s: body chunk %u missing", env->id, expect - 1);
			goto fail_cur;
		}
		if (evbuffer_add(body, val.mv_data, val.mv_size) < 0)
			fatal("spool: out of memory");
		total += val.mv_size;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		log_error("spool: message %s: reading body: %s", env->id, mdb_strerror(rc));
		goto fail_cur;
	}
	if (total != env->size) {
		log_error("spool: message %s: body has %llu octets, envelope says %llu", env->id,
		          (unsigned long long)total, (unsigned long long)env->size);
		goto fail_cur;
	}
	mdb_cursor_close(cur);
	return body;
fail_cur:
	mdb_cursor_close(cur);
fail:
	evbuffer_free(body);
	return NULL;
}

int
spool_body_read(struct spool *sp, const char *id, struct evbuffer *out)
{
	struct evbuffer *body = NULL;
	struct envelope env;
	MDB_txn *txn;
	MDB_val key = {SPOOL_ID_LEN, (void *)id}, val;

	if (!spool_id_valid(id) || spool_txn_begin_read(sp, &txn) != 0)
		return -1;
	/* The envelope, in the same snapshot: the message must exist, and its size says
	 * whether every chunk is there. */
	if (mdb_get(txn, sp->dbi_msg, &key, &val) == 0 &&
	    spool_decode_record(&key, &val, &env) == 0) {
		body = spool_body_get(sp, txn, &env);
		envelope_clear(&env);
	}
	mdb_txn_abort(txn);
	if (body == NULL)
		return -1;
	evbuffer_add_buffer(out, body);
	evbuffer_free(body);
	return 0;
}
