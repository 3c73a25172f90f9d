/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The one clock for deadlines: monotonic milliseconds.
 */
#ifndef MAILKTLS_CLOCK_H
#define MAILKTLS_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Milliseconds since an arbitrary start; never goes back. */
static inline uint64_t mk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

#endif
