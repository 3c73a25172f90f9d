// SPDX-License-Identifier: GPL-2.0
/*
 * Rate limiting of repeated log lines, as the kernel's ___ratelimit() does
 * it (a burst per interval, then a count of what was missed), but without
 * its spinlock: workers must never wait for each other to log.
 */
#include "ratelimit.h"

/*
 * End the window that began at @start if it is over at @now; the next one
 * starts at @next (0: none open, the next event opens it).
 * Return: the lines suppressed in the ended window (0 if this thread did
 * not end it).
 */
static unsigned int ratelimit_roll(struct mk_ratelimit *rl, uint64_t start, uint64_t now,
				   uint64_t next)
{
	/* A thread that read the clock before another opened the window
	 * sees a start in its future: that is still the same window. */
	if (start && now < start + rl->rl_window_ms)
		return 0;
	if (!atomic_compare_exchange_strong(&rl->rl_start_ms, &start, next))
		return 0;	/* another thread ended it */
	atomic_store(&rl->rl_passed, 0);
	return atomic_exchange(&rl->rl_suppressed, 0);
}

/**
 * mk_ratelimit_allow() - may the line of one more event be written?
 * @rl:     the limiter of this kind of line
 * @now_ms: a monotonic clock in milliseconds, never 0
 * @ended:  set to the number of lines suppressed in a window this call
 *          ended (0 if none): the caller reports them before its own line
 *
 * Return: true if the line may be written, false if it is suppressed (and
 * counted for the report at the end of the window).
 */
bool mk_ratelimit_allow(struct mk_ratelimit *rl, uint64_t now_ms, unsigned int *ended)
{
	*ended = ratelimit_roll(rl, atomic_load(&rl->rl_start_ms), now_ms, now_ms);
	if (atomic_fetch_add(&rl->rl_passed, 1) < rl->rl_burst)
		return true;
	atomic_fetch_add(&rl->rl_suppressed, 1);
	return false;
}

/**
 * mk_ratelimit_flush() - end the window if it is over and lines were
 * suppressed in it, so the report does not wait for the next event
 * @rl:     the limiter
 * @now_ms: the same clock as for mk_ratelimit_allow()
 *
 * Return: the number of lines suppressed in the window just ended, 0 if
 * the window is still open, nothing was suppressed, or another thread
 * reports them.
 */
unsigned int mk_ratelimit_flush(struct mk_ratelimit *rl, uint64_t now_ms)
{
	uint64_t start = atomic_load(&rl->rl_start_ms);

	/* Ends the window without opening one: a window the tick opened would
	 * begin with no event in it, and a burst that came a moment later
	 * would straddle its end and pass twice. */
	if (!start || !atomic_load(&rl->rl_suppressed))
		return 0;
	return ratelimit_roll(rl, start, now_ms, 0);
}
