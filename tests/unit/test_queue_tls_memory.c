/* test_queue_tls_memory.c - the engine's memory of servers whose TLS handshake failed: a
 * server is skipped (no STARTTLS) for the configured while, then tried again; names are
 * case-insensitive, addresses and ports tell servers apart, and the memory stays bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "core/core.h"
#include "queue/engine_internal.h"

#define HOUR (3600 * USEC)

static void
test_remembered_for_the_ttl_then_forgotten(void **state)
{
	struct tls_memory *m = tls_memory_new(16, HOUR);
	uint64_t t0 = 1800000000ULL * USEC;

	assert_false(tls_memory_has(m, "mx.example.com", "192.0.2.1", 25, t0));
	tls_memory_add(m, "mx.example.com", "192.0.2.1", 25, t0);
	assert_true(tls_memory_has(m, "mx.example.com", "192.0.2.1", 25, t0));
	assert_true(tls_memory_has(m, "mx.example.com", "192.0.2.1", 25, t0 + HOUR - 1));
	assert_false(tls_memory_has(m, "mx.example.com", "192.0.2.1", 25, t0 + HOUR));
	assert_int_equal(tls_memory_count(m, t0), 1);
	assert_int_equal(tls_memory_count(m, t0 + HOUR), 0);
	tls_memory_free(m);
}

static void
test_failing_again_extends_the_while(void **state)
{
	struct tls_memory *m = tls_memory_new(16, HOUR);
	uint64_t t0 = 1000 * USEC;

	tls_memory_add(m, "mx.example.com", "192.0.2.1", 25, t0);
	tls_memory_add(m, "mx.example.com", "192.0.2.1", 25, t0 + HOUR / 2);
	assert_true(tls_memory_has(m, "mx.example.com", "192.0.2.1", 25, t0 + HOUR));
	assert_false(tls_memory_has(m, "mx.example.com", "192.0.2.1", 25, t0 + HOUR + HOUR / 2));
	assert_int_equal(tls_memory_count(m, t0), 1);
	tls_memory_free(m);
}

/* A name in any case is the same server; another address, port or name is another. */
static void
test_keys(void **state)
{
	struct tls_memory *m = tls_memory_new(16, HOUR);
	uint64_t t0 = 1000 * USEC;

	tls_memory_add(m, "MX.Example.COM", "2001:db8::25", 25, t0);
	assert_true(tls_memory_has(m, "mx.example.com", "2001:db8::25", 25, t0));
	assert_false(tls_memory_has(m, "mx.example.com", "2001:db8::26", 25, t0));
	assert_false(tls_memory_has(m, "mx.example.com", "2001:db8::25", 2525, t0));
	assert_false(tls_memory_has(m, "mx2.example.com", "2001:db8::25", 25, t0));
	assert_false(tls_memory_has(NULL, "mx.example.com", "2001:db8::25", 25, t0));
	tls_memory_free(m);
	tls_memory_free(NULL);
}

/* Full: a new server takes the place of the one due to be forgotten first. */
static void
test_bounded(void **state)
{
	struct tls_memory *m = tls_memory_new(4, HOUR);
	char host[64];

	for (unsigned i = 0; i < 4; i++) {
		snprintf(host, sizeof(host), "mx%u.example", i);
		tls_memory_add(m, host, "192.0.2.1", 25, (1000 + i) * USEC);
	}
	tls_memory_add(m, "mx0.example", "192.0.2.1", 25, 2000 * USEC); /* mx1 is now oldest */
	tls_memory_add(m, "new.example", "192.0.2.1", 25, 2001 * USEC);
	assert_true(tls_memory_has(m, "new.example", "192.0.2.1", 25, 2002 * USEC));
	assert_true(tls_memory_has(m, "mx0.example", "192.0.2.1", 25, 2002 * USEC));
	assert_false(tls_memory_has(m, "mx1.example", "192.0.2.1", 25, 2002 * USEC));
	assert_true(tls_memory_has(m, "mx2.example", "192.0.2.1", 25, 2002 * USEC));
	assert_true(tls_memory_has(m, "mx3.example", "192.0.2.1", 25, 2002 * USEC));
	assert_int_equal(tls_memory_count(m, 2002 * USEC), 4);

	/* Many more than it holds: never more than max. */
	for (unsigned i = 0; i < 1000; i++) {
		snprintf(host, sizeof(host), "h%u.example", i);
		tls_memory_add(m, host, "192.0.2.1", 25, (3000 + i) * USEC);
	}
	assert_int_equal(tls_memory_count(m, 3999 * USEC), 4);
	assert_true(tls_memory_has(m, "h999.example", "192.0.2.1", 25, 3999 * USEC));
	assert_false(tls_memory_has(m, "h0.example", "192.0.2.1", 25, 3999 * USEC));
	tls_memory_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_remembered_for_the_ttl_then_forgotten),
	    cmocka_unit_test(test_failing_again_extends_the_while),
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
