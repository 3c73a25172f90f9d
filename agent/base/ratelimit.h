/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A lock-free rate limiter for log lines that one event per connection can
 * repeat (accept errors, refusals, handshake and backend failures): at most
 * rl_burst lines a window, then the number suppressed is reported once the
 * window is over. Time is passed in, so tests can drive it.
 */
#ifndef MAILKTLS_RATELIMIT_H
#define MAILKTLS_RATELIMIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Locking: none. Every worker calls mk_ratelimit_allow() and
 * mk_ratelimit_flush() on the same limiter; the fields are atomics and a
 * window is ended by whichever thread wins the compare-and-swap on
 * rl_start_ms. A line let through during the swap may exceed rl_burst by
 * the number of racing threads; a suppressed line is always counted once.
 */
struct mk_ratelimit {
	unsigned int rl_burst;			/* lines let through a window */
	unsigned int rl_window_ms;
	_Atomic uint64_t rl_start_ms;		/* window start; 0: none open */
	atomic_uint rl_passed;			/* events seen in this window */
	atomic_uint rl_suppressed;		/* not yet reported */
};

#define MK_RATELIMIT_INIT(burst, window_ms) \
	{ .rl_burst = (burst), .rl_window_ms = (window_ms) }

bool mk_ratelimit_allow(struct mk_ratelimit *rl, uint64_t now_ms, unsigned int *ended);
unsigned int mk_ratelimit_flush(struct mk_ratelimit *rl, uint64_t now_ms);

#endif
