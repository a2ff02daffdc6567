/* queue_testing.h - what the queue's unit tests share: a fixed start time, durations, and
 * queue ids made from numbers. */
#ifndef DROVER_TESTS_QUEUE_TESTING_H
#define DROVER_TESTS_QUEUE_TESTING_H

#include <stdint.h>
#include <stdio.h>

#include "core/core.h"
#include "queue/queue.h"

#define T0     (1700000000ULL * USEC)
#define MINUTE (60 * USEC)
#define HOUR   (60 * MINUTE)

/* The id for n (24 hex digits), in one of four buffers that take turns: up to four can be
 * used in one expression. */
static inline char *
id_of(uint64_t n)
{
	static char buf[4][QUEUE_ID_LEN + 1];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%024llx", (unsigned long long)n);
	return buf[k];
}

#endif
