/* engine_dispatch.c - what the timer does: due items move to their ready queues, idle
 * connections take more of their destination's mail, then new connections are opened while
 * the queue grants slots, and items that expired while their destination was held back are
 * bounced. */
#include <event2/event.h>

#include "conf/conf.h"
#include "core/core.h"
#include "queue/engine_internal.h"

/* Items that expired while their destination was dead: each is loaded and bounced as
 * expired, without a connection. */
static void
dispatch_expired(struct queue_engine *e, struct queue_item **items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct job *j = job_new(e, NULL, items[i]);

		j->expire_only = true;
		e->nexpiring++;
		job_load(j);
	}
}

void
engine_dispatch(struct queue_engine *e)
{
	struct queue_item *items[DEF_QUEUE_BATCH_MAX];
	struct queue_batch b;
	struct attempt *a, *next;
	uint64_t now = time_now_us();
	size_t n, cap;

	if (e->stopping)
		return;
	queue_advance(e->q, now);
	/* Connections already open and idle first: their destination's new mail goes on them
	 * rather than on a new connection (reuse). */
	for (a = e->attempts; a != NULL; a = next) {
		next = a->next;
		if (a->idle)
			attempt_refill(a);
	}
	while (e->nattempts < e->max_conns && e->nexpiring < ENGINE_EXPIRING_MAX) {
		cap = e->max_messages < ENGINE_PREFETCH ? e->max_messages : ENGINE_PREFETCH;
		/* With pools, a connection's messages are handed out one by one, each on the
		 * round robin's turn of its source (attempt_refill): a batch would give them all
		 * to the first source picked. */
		if (e->cfg->npools > 0)
			cap = 1;
		n = queue_take(e->q, now, &b, items, cap);
		if (n == 0)
			break;
		if (b.work == QUEUE_WORK_EXPIRE)
			dispatch_expired(e, items, n);
		else
			attempt_new(e, b.dest, items, n);
	}
}
