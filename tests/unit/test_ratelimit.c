// SPDX-License-Identifier: GPL-2.0
/*
 * The log rate limiter, driven by an injected clock.
 */
#include <pthread.h>

#include "kselftest_harness.h"
#include "ratelimit.h"

#define T0 100000

TEST(burst_then_suppressed)
{
	struct mk_ratelimit rl = MK_RATELIMIT_INIT(5, 1000);
	unsigned int ended, i, allowed = 0;

	for (i = 0; i < 100; i++) {
		if (mk_ratelimit_allow(&rl, T0 + i, &ended))
			allowed++;
		ASSERT_EQ(0, ended);
	}
	ASSERT_EQ(5, allowed);
	/* Still inside the window: nothing to report yet. */
	ASSERT_EQ(0, mk_ratelimit_flush(&rl, T0 + 999));
	/* The first event after the window reports the 95 and passes. */
	ASSERT_TRUE(mk_ratelimit_allow(&rl, T0 + 1000, &ended));
	ASSERT_EQ(95, ended);
	/* Reported once only. */
	ASSERT_EQ(0, mk_ratelimit_flush(&rl, T0 + 5000));
}

TEST(flush_reports_when_no_event_follows)
{
	struct mk_ratelimit rl = MK_RATELIMIT_INIT(3, 1000);
	unsigned int ended, i;

	for (i = 0; i < 10; i++)
		mk_ratelimit_allow(&rl, T0 + 10 * i, &ended);
	ASSERT_EQ(0, mk_ratelimit_flush(&rl, T0 + 500));
	ASSERT_EQ(7, mk_ratelimit_flush(&rl, T0 + 1000));
	ASSERT_EQ(0, mk_ratelimit_flush(&rl, T0 + 2000));
	/* The flush opened a new window at T0+1000: a new burst passes. */
	for (i = 0; i < 3; i++) {
		ASSERT_TRUE(mk_ratelimit_allow(&rl, T0 + 2100 + i, &ended));
		ASSERT_EQ(0, ended);
	}
	ASSERT_FALSE(mk_ratelimit_allow(&rl, T0 + 2200, &ended));
}

TEST(quiet_kind_is_never_reported)
{
	struct mk_ratelimit rl = MK_RATELIMIT_INIT(5, 1000);
	unsigned int ended, i;

	/* A few lines a second, below the burst, forever: all pass. */
	for (i = 0; i < 50; i++) {
		ASSERT_TRUE(mk_ratelimit_allow(&rl, T0 + 250 * i, &ended));
		ASSERT_EQ(0, ended);
		ASSERT_EQ(0, mk_ratelimit_flush(&rl, T0 + 250 * i + 100));
	}
}

TEST(steady_flood_is_a_few_lines_a_second)
{
	struct mk_ratelimit rl = MK_RATELIMIT_INIT(5, 1000);
	unsigned int ended, allowed = 0, reported = 0, suppressed = 0, i;

	/* 100,000 events over 10 s, as an accept loop at EMFILE would make. */
	for (i = 0; i < 100000; i++) {
		if (mk_ratelimit_allow(&rl, T0 + i / 10, &ended))
			allowed++;
		else
			suppressed++;
		if (ended)
			reported++;
		suppressed -= ended;
	}
	suppressed -= mk_ratelimit_flush(&rl, T0 + 20000);
	ASSERT_EQ(50, allowed);
	ASSERT_EQ(9, reported);
	ASSERT_EQ(0, suppressed);	/* every suppressed line was reported */
}

#define THREADS 4
#define EVENTS 200000

struct racer {
	struct mk_ratelimit *r_rl;
	_Atomic uint64_t *r_clock;
	unsigned int r_allowed, r_reported;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	unsigned int ended, i;

	for (i = 0; i < EVENTS; i++) {
		uint64_t now = T0 + atomic_fetch_add(r->r_clock, 1);

		if (mk_ratelimit_allow(r->r_rl, now, &ended))
			r->r_allowed++;
		r->r_reported += ended;
		if (i % 1000 == 0)
			r->r_reported += mk_ratelimit_flush(r->r_rl, now);
	}
	return NULL;
}

/* Workers log at once: no suppressed line is lost or counted twice, and a
 * window lets through at most the burst plus one per racing thread. */
TEST(threads_count_every_line_once)
{
	struct mk_ratelimit rl = MK_RATELIMIT_INIT(5, 1000);
	_Atomic uint64_t clock = 0;
	struct racer r[THREADS];
	pthread_t t[THREADS];
	unsigned int allowed = 0, reported = 0, i;

	for (i = 0; i < THREADS; i++) {
		r[i] = (struct racer){ .r_rl = &rl, .r_clock = &clock };
		ASSERT_EQ(0, pthread_create(&t[i], NULL, race, &r[i]));
	}
	for (i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		allowed += r[i].r_allowed;
		reported += r[i].r_reported;
	}
	reported += mk_ratelimit_flush(&rl, T0 + 1000000);
	/* One event a millisecond of clock: 800 windows of 1 s. */
	ASSERT_EQ(THREADS * EVENTS, allowed + reported);
	ASSERT_LE(allowed, 801 * (5 + THREADS));
	ASSERT_GE(allowed, 799 * 5);
}

TEST_HARNESS_MAIN
