/* engine_rules.c - the bounce rules the engine classifies failures with, as the server
 * reloads them (SIGHUP), and the bounces counted per category for the metrics.
 *
 * The engine loads the rules at start (engine.c), so that a bad file stops it with its
 * file:line. Once main.c hands it the slot it publishes reloads through, every failure is
 * classified with the slot's current table, the one the bounce listener uses too: a reload
 * swaps both at once, and a job holds its own reference while it classifies, so a reload in
 * the middle never frees a table under it. The engine's own table is dropped on the engine
 * thread, the only one that reads it, so no lock is needed.
 */
#include "core/core.h"
#include "queue/engine_internal.h"

static void
drop_own_rules(void *arg)
{
	struct queue_engine *e = arg;

	classify_unref(e->classify);
	e->classify = NULL;
}

void
queue_engine_set_bounce_rules(struct queue_engine *e, struct classify_slot *slot)
{
	if (slot == NULL)
		return;
	atomic_store(&e->rules, slot);
	mailbox_post(e->mbox, drop_own_rules, e);
}

struct classify_table *
engine_rules_get(struct queue_engine *e)
{
	struct classify_slot *slot = atomic_load(&e->rules);
	struct classify_table *t = slot != NULL ? classify_slot_get(slot) : NULL;

	return t != NULL ? t : classify_ref(e->classify);
}

void
engine_count_bounce(struct queue_engine *e, enum classify_category c)
{
	if ((unsigned)c < CLASSIFY_CATEGORY_COUNT)
		atomic_fetch_add(&e->st_bounce_category[c], 1);
}

void
queue_engine_bounce_counts(struct queue_engine *e, uint64_t *counts)
{
	for (unsigned c = 0; c < CLASSIFY_CATEGORY_COUNT; c++)
		counts[c] = atomic_load(&e->st_bounce_category[c]);
}
