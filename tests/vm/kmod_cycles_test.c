// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls.ko: 100,000 tag/query/close cycles leave no tag and no slab
 * memory behind.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "kmod_life.h"

TEST_F_TIMEOUT(life, hundred_thousand_cycles_slab_flat, 280)
{
	long long before, after, closed;
	const char *op = "";
	double t0;
	int i, err = 0;

	/* Warm the caches so that their first growth is not counted. */
	for (i = 0; i < 2000 && !err; i++)
		err = km_cycle(&self->g, i % 10 ? AF_UNIX : AF_INET, true, &op);
	ASSERT_EQ(0, err);
	ASSERT_EQ(0, km_wait_gc());
	closed = km_proc("tags_closed");
	before = km_meminfo("Slab");
	ASSERT_LT(0, before);

	t0 = km_now();
	for (i = 0; i < 100000 && !err; i++)
		err = km_cycle(&self->g, i % 100 ? AF_UNIX : AF_INET, i % 100 == 1, &op);
	TH_LOG("100000 cycles in %.1f s", km_now() - t0);
	ASSERT_EQ(0, err) TH_LOG("cycle %d: %s: %s", i, op, strerror(-err));
	ASSERT_EQ(0, km_wait_gc());
	usleep(200 * 1000);	/* RCU-freed sockets */
	after = km_meminfo("Slab");
	TH_LOG("Slab before %lld kB, after %lld kB", before, after);
	EXPECT_EQ(closed + 100000, km_proc("tags_closed"));
	EXPECT_EQ(0, km_proc("tags_live"));
	/* 100,000 leaked tags would be ~100 MB; allow noise of 4 MB. */
	EXPECT_GT(4096, after - before);
}

TEST_HARNESS_MAIN
