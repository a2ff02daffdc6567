/* check.c - suppress_check(): the lookup made for every recipient at reception.
 *
 * Cost: up to four mdb_get() in one read snapshot, each a B-tree descent through pages that
 * stay in the page cache (the upper levels of a tree of millions of entries are a few pages).
 * The read transaction is the thread's own, kept between lookups: mdb_txn_renew() and
 * mdb_txn_reset() take a few atomic operations, where mdb_txn_begin() would search LMDB's
 * reader table under its mutex every time. Reset between lookups, it pins no snapshot, so
 * the writers can reuse pages freed since.
 */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "suppress/suppress_private.h"

static void
reader_unlink(struct suppress *list, struct suppress_reader *r)
{
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		list->readers = r->next;
	if (r->next != NULL)
		r->next->prev = r->prev;
}

/* A thread that looked something up exits: its reader slot goes back to LMDB, so that
 * threads coming and going do not use up the reader table. */
static void
reader_exit(void *arg)
{
	struct suppress_reader *r = arg;
	struct suppress *list = r->list;

	pthread_mutex_lock(&list->rlock);
	reader_unlink(list, r);
	pthread_mutex_unlock(&list->rlock);
	mdb_txn_abort(r->txn);
	free(r);
}

int
suppress_readers_init(struct suppress *list)
{
	list->readers = NULL;
	return pthread_key_create(&list->tls, reader_exit) == 0 ? 0 : -1;
}

void
suppress_readers_close(struct suppress *list)
{
	struct suppress_reader *r, *next;

	/* Deleting the key first: no thread's exit runs reader_exit() for this list any
	 * more, and what threads still alive keep under the key is never read again. Their
	 * readers are all in the list (those of threads gone already are not). */
	pthread_key_delete(list->tls);
	pthread_mutex_lock(&list->rlock);
	for (r = list->readers; r != NULL; r = next) {
		next = r->next;
		mdb_txn_abort(r->txn);
		free(r);
	}
	list->readers = NULL;
	pthread_mutex_unlock(&list->rlock);
}

/* Drops this thread's reader (its transaction failed to renew). */
static void
reader_drop(struct suppress *list, struct suppress_reader *r)
{
	pthread_mutex_lock(&list->rlock);
	reader_unlink(list, r);
	pthread_mutex_unlock(&list->rlock);
	mdb_txn_abort(r->txn);
	free(r);
	pthread_setspecific(list->tls, NULL);
}

/* This thread's read transaction, renewed (or begun, the first time): NULL on failure. */
static MDB_txn *
reader_txn(struct suppress *list)
{
	struct suppress_reader *r = pthread_getspecific(list->tls);
	MDB_txn *txn;
	int rc;

	if (r != NULL) {
		if ((rc = mdb_txn_renew(r->txn)) == 0)
			return r->txn;
		log_warn("suppress: %s: renewing a read transaction: %s", list->dir,
		         mdb_strerror(rc));
		reader_drop(list, r);
	}
	if (suppress_txn_begin_read(list, &txn) != 0)
		return NULL;
	r = xcalloc(1, sizeof(*r));
	r->list = list;
	r->txn = txn;
	pthread_mutex_lock(&list->rlock);
	r->next = list->readers;
	if (r->next != NULL)
		r->next->prev = r;
	list->readers = r;
	pthread_mutex_unlock(&list->rlock);
	if (pthread_setspecific(list->tls, r) != 0) {
		/* No room for the value: this lookup still works, the next begins anew. */
		reader_drop(list, r);
		return suppress_txn_begin_read(list, &txn) == 0 ? txn : NULL;
	}
	return txn;
}

/* Ends a lookup's use of txn: reset if it is the thread's kept one, else aborted. */
static void
reader_done(struct suppress *list, MDB_txn *txn)
{
	struct suppress_reader *r = pthread_getspecific(list->tls);

	if (r != NULL && r->txn == txn)
		mdb_txn_reset(txn);
	else
		mdb_txn_abort(txn);
}

int
suppress_check(struct suppress *list, const char *tenant, const char *address,
               struct suppress_entry *entry)
{
	char norm[SUPPRESS_ADDRESS_MAX + 1];
	uint8_t keys[4][SUPPRESS_KEY_MAX];
	struct suppress_entry scratch;
	int klen[4], nkeys = 0, found = 0;
	const char *domain;
	uint64_t now;
	MDB_txn *txn;

	if (suppress_address_normalize(address, !list->local_exact, norm, sizeof(norm), NULL) < 0)
		return 0; /* cannot be an entry, so it is none */
	if (tenant == NULL || !suppress_tenant_valid(tenant))
		tenant = ""; /* a tenant that cannot exist has no entries; the global ones apply */
	domain = strrchr(norm, '@');
	/* Most specific first, so that the entry reported is the one an operator would
	 * remove to let the mail through for this tenant. */
	klen[nkeys] = suppress_key(keys[nkeys], tenant, norm);
	nkeys++;
	if (*tenant != '\0') {
		klen[nkeys] = suppress_key(keys[nkeys], "", norm);
		nkeys++;
	}
	if (domain != norm) { /* not itself a domain entry: the domain's entries apply too */
		klen[nkeys] = suppress_key(keys[nkeys], tenant, domain);
		nkeys++;
		if (*tenant != '\0') {
			klen[nkeys] = suppress_key(keys[nkeys], "", domain);
			nkeys++;
		}
	}
	now = suppress_now(list);
	if ((txn = reader_txn(list)) == NULL)
		return -1;
	for (int i = 0; i < nkeys && found == 0; i++) {
		MDB_val k = {(size_t)klen[i], keys[i]}, v;
		uint64_t exp;
		int rc = mdb_get(txn, list->dbi, &k, &v);

		if (rc == MDB_NOTFOUND)
			continue;
		if (rc != 0) {
			log_error("suppress: %s: lookup: %s", list->dir, mdb_strerror(rc));
			found = -1;
			break;
		}
		exp = suppress_record_expiry(&v);
		if (exp != 0 && exp <= now)
			continue;
		/* Decoded even when the caller does not want it: a damaged record must not
		 * count, whatever the caller asked for. */
		if (suppress_record_decode(&k, &v, entry != NULL ? entry : &scratch) < 0) {
			log_error("suppress: %s: damaged entry for %s: ignored", list->dir, norm);
			continue;
		}
		found = 1;
	}
	reader_done(list, txn);
	return found;
}
