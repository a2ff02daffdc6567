/* test_classify_concurrency.c - threads classifying while another reloads: every answer comes
 * from a whole table (the one the reader holds), none from a freed one (ASan would say), and a
 * shared cache under contention and evictions gives the answers the rules give. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "test_classify_util.h"

#define READERS 4
#define SWAPS   300

/* Table A has one rule, table B two: a reader knows which it holds by counting. */
static const char table_a[] = "rule spam-related text blocked\n";
static const char table_b[] = "rule other code 4xx\n"
                              "rule bad-mailbox text blocked\n";

struct shared {
	struct classify_slot *slot;
	atomic_bool done;
	atomic_int started; /* readers that have classified once */
	atomic_int wrong;
	atomic_long classified;
};

static void *
reader(void *arg)
{
	struct shared *sh = arg;
	char text[128];
	long n = 0;

	/* At least some work even if the swapper is quick, then until it is done. */
	for (unsigned i = 0; n < 2000 || !atomic_load(&sh->done); i++, n++) {
		struct classify_table *t = classify_slot_get(sh->slot);
		struct classify_result r;
		bool a;

		/* No cmocka asserts off the main thread: a failure there cannot unwind. */
		if (t == NULL) {
			atomic_fetch_add(&sh->wrong, 1);
			break;
		}
		a = classify_rule_count(t) == 1;
		/* A few hundred distinct texts: hits, misses and inserts all happen. */
		snprintf(text, sizeof(text),
		         "550 blocked word%u for <u%u@example.com> [192.0.2.%u]", i % 300, i,
		         i % 250);
		classify_reply(t, NULL, 550, "5.7.1", text, &r);
		if (r.category != (a ? CLASSIFY_SPAM_RELATED : CLASSIFY_BAD_MAILBOX) ||
		    r.line != (a ? 1u : 2u))
			atomic_fetch_add(&sh->wrong, 1);
		classify_unref(t);
		if (i == 0)
			atomic_fetch_add(&sh->started, 1);
	}
	atomic_fetch_add(&sh->classified, n);
	return NULL;
}

static void
test_swap_while_classifying(void **state)
{
	struct shared sh = {.slot = NULL};
	pthread_t th[READERS];
	char err[256];

	atomic_init(&sh.done, false);
	atomic_init(&sh.started, 0);
	atomic_init(&sh.wrong, 0);
	atomic_init(&sh.classified, 0);
	sh.slot = classify_slot_new(
	    classify_parse("a", table_a, sizeof(table_a) - 1, 64, err, sizeof(err)));
	for (int i = 0; i < READERS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, reader, &sh), 0);
	/* Swap only once every reader is at work, so that swaps and reads overlap. */
	while (atomic_load(&sh.started) < READERS)
		sched_yield();
	for (int i = 0; i < SWAPS; i++) {
		const char *text = i % 2 ? table_a : table_b;
		/* A small cache: evictions race with lookups too. */
		struct classify_table *t =
		    classify_parse(i % 2 ? "a" : "b", text, strlen(text), 64, err, sizeof(err));

		assert_non_null(t);
		classify_slot_set(sh.slot, t);
		sched_yield();
	}
	atomic_store(&sh.done, true);
	for (int i = 0; i < READERS; i++)
		pthread_join(th[i], NULL);
	classify_slot_free(sh.slot);
	assert_int_equal(atomic_load(&sh.wrong), 0);
	assert_true(atomic_load(&sh.classified) >= READERS * 2000);
}

struct hammer {
	struct classify_table *t, *plain;
	atomic_int wrong;
	unsigned seed;
};

static const char rules[] = "provider gmail mx google.com\n"
                            "rule bad-mailbox provider gmail status 5.1.1\n"
                            "rule rate-limited code 421\n"
                            "rule spam-related text word1\\d\n"
                            "rule quota-issues text word2\n"
                            "rule other text .\n";

static void *
hammer(void *arg)
{
	struct hammer *h = arg;
	static const char *const providers[] = {NULL, "gmail", "other"};
	static const int codes[] = {550, 421, 452};
	static const char *const statuses[] = {"5.1.1", "4.7.0", NULL, ""};
	unsigned x = h->seed;

	for (int i = 0; i < 20000; i++) {
		struct classify_result a, b;
		char text[64];

		x = x * 1103515245u + 12345u;
		snprintf(text, sizeof(text), "reply word%u", (x >> 8) % 997);
		const char *p = providers[(x >> 4) % 3];
		int code = codes[(x >> 6) % 3];
		const char *st = statuses[(x >> 10) % 4];

		classify_reply(h->t, p, code, st, text, &a);
		classify_reply(h->plain, p, code, st, text, &b);
		if (a.category != b.category || a.rule != b.rule)
			atomic_fetch_add(&h->wrong, 1);
	}
	return NULL;
}

/* One table, one cache far smaller than the set of replies, four threads. */
static void
test_shared_cache_under_contention(void **state)
{
	char err[256];
	struct hammer h[READERS];
	pthread_t th[READERS];
	struct classify_table *t =
	    classify_parse("r", rules, sizeof(rules) - 1, 256, err, sizeof(err));
	struct classify_table *plain =
	    classify_parse("r", rules, sizeof(rules) - 1, 0, err, sizeof(err));
	struct classify_stats st;

	assert_non_null(t);
	assert_non_null(plain);
	for (int i = 0; i < READERS; i++) {
		h[i].t = t;
		h[i].plain = plain;
		h[i].seed = (unsigned)i * 7919u + 1;
		atomic_init(&h[i].wrong, 0);
		assert_int_equal(pthread_create(&th[i], NULL, hammer, &h[i]), 0);
	}
	for (int i = 0; i < READERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(atomic_load(&h[i].wrong), 0);
	}
	classify_stats(t, &st);
	assert_int_equal(st.lookups, READERS * 20000);
	assert_true(st.hits > 0);
	assert_true(st.evictions > 0);
	assert_true(st.entries <= st.capacity);
	classify_unref(plain);
	classify_unref(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_swap_while_classifying),
	    cmocka_unit_test(test_shared_cache_under_contention),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
