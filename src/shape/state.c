/* state.c - a shaping state: its tables, its rules, its numbers. */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "shape/internal.h"

struct shape_state *
shape_state_new(struct shape_rules *rules, size_t keys_max, size_t actions_max)
{
	struct shape_state *st = xcalloc(1, sizeof(*st));

	st->rules = shape_rules_ref(rules);
	st->keys_max = keys_max > 0 ? keys_max : SHAPE_DEF_KEYS_MAX;
	st->actions_max = actions_max > 0 ? actions_max : SHAPE_DEF_ACTIONS_MAX;
	/* Throttles and trigger counts may lose a key under pressure (bounded memory first);
	 * warm-up counts and connection slots may not (a lost count is mail over a cap, a lost
	 * slot a limit gone), so those tables refuse instead. */
	sh_ttab_init(&st->throttles, st->keys_max, true, false);
	sh_ttab_init(&st->triggers,
	             st->keys_max < SHAPE_TRIGGER_KEYS_MAX ? st->keys_max : SHAPE_TRIGGER_KEYS_MAX,
	             true, true);
	sh_ttab_init(&st->warm, st->keys_max, false, false);
	sh_ttab_init(&st->conns, st->keys_max, false, false);
	sh_ttab_init(&st->actions, st->actions_max, false, false);
	if ((st->md = pcre2_match_data_create(1, NULL)) == NULL)
		fatal("shape: out of memory for PCRE2 match data");
	return st;
}

void
shape_state_free(struct shape_state *st)
{
	if (st == NULL)
		return;
	sh_actions_free(st);
	sh_ttab_free(&st->throttles);
	sh_ttab_free(&st->triggers);
	sh_ttab_free(&st->warm);
	sh_ttab_free(&st->conns);
	sh_ttab_free(&st->actions);
	pcre2_match_data_free(st->md);
	for (size_t i = 0; i < st->nnames; i++)
		free(st->names[i]);
	free(st->names);
	free(st->overrides);
	shape_rules_unref(st->rules);
	free(st);
}

void
shape_state_set_rules(struct shape_state *st, struct shape_rules *rules)
{
	struct shape_rules *old = st->rules;

	st->rules = shape_rules_ref(rules);
	shape_rules_unref(old);
	/* Trigger counts are keyed by rule index: under other rules they would count for
	 * another rule. */
	sh_ttab_clear(&st->triggers);
}

struct shape_rules *
shape_state_rules(const struct shape_state *st)
{
	return st->rules;
}

void
shape_state_stats(const struct shape_state *st, struct shape_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->throttle_keys = st->throttles.count;
	out->trigger_keys = st->triggers.count;
	out->warmup_keys = st->warm.count;
	out->connection_keys = st->conns.count;
	out->keys_max = st->keys_max;
	out->evictions = st->throttles.evictions + st->triggers.evictions;
	out->actions = st->nheap;
	out->actions_dropped = st->actions_dropped;
	out->connections = st->connections;
}
