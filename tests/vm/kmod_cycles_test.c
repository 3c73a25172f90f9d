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

/* Tag one end of a fresh pair, ask from the other, close both. */
static int cycle(struct mk_genl *g, int family, bool use_library)
{
	struct mailktls_info mi;
	int a, d, sv[2], err;

	if (family == AF_UNIX) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			return -errno;
		a = sv[0];
		d = sv[1];
	} else if (km_tcp_pair(family, &a, &d)) {
		return -errno;
	}
	err = km_tag_fd(g, a, &tag13);
	if (!err)
		err = use_library ? mailktls_query_fd(d, &mi) : km_get_fd(g, d);
	close(a);
	close(d);
	return err;
}

TEST_F_TIMEOUT(life, hundred_thousand_cycles_slab_flat, 280)
{
	long long before, after, closed;
	double t0;
	int i, err = 0;

	/* Warm the caches so that their first growth is not counted. */
	for (i = 0; i < 2000 && !err; i++)
		err = cycle(&self->g, i % 10 ? AF_UNIX : AF_INET, true);
	ASSERT_EQ(0, err);
	ASSERT_EQ(0, km_wait_gc());
	closed = km_proc("tags_closed");
	before = km_meminfo("Slab");
	ASSERT_LT(0, before);

	t0 = km_now();
	for (i = 0; i < 100000 && !err; i++)
		err = cycle(&self->g, i % 100 ? AF_UNIX : AF_INET, i % 100 == 1);
	TH_LOG("100000 cycles in %.1f s", km_now() - t0);
	ASSERT_EQ(0, err) TH_LOG("cycle %d: %s", i, strerror(-err));
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
