// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls.ko lifetimes: a tag ends with its socket (close, process exit),
 * and unloading the module with live tags is safe and leaves working
 * sockets behind.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "kmod_life.h"

TEST_F(life, close_frees_the_tag)
{
	long long closed = km_proc("tags_closed");
	int a, d;

	ASSERT_EQ(0, km_tcp_pair(AF_INET, &a, &d));
	ASSERT_EQ(0, km_tag_fd(&self->g, a, &tag13));
	EXPECT_EQ(1, km_proc("tags_live"));
	close(a);
	EXPECT_EQ(0, km_proc("tags_live"));
	EXPECT_EQ(0, km_dump_count(&self->g));
	ASSERT_EQ(0, km_wait_gc());
	EXPECT_EQ(closed + 1, km_proc("tags_closed"));
	close(d);
}

TEST_F(life, process_exit_frees_the_tag)
{
	struct mailktls_info mi;
	int sv[2], ready[2], status;
	pid_t pid;
	char c;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, pipe(ready));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {	/* the "agent": tags its end, then dies */
		struct mk_genl g;

		close(sv[1]);
		if (mk_genl_open(&g) || km_tag_fd(&g, sv[0], &tag13))
			_exit(1);
		if (write(ready[1], "x", 1) != 1)
			_exit(2);
		pause();
		_exit(0);
	}
	close(sv[0]);
	close(ready[1]);
	ASSERT_EQ(1, read(ready[0], &c, 1));
	ASSERT_EQ(0, mailktls_query_fd(sv[1], &mi));
	EXPECT_TRUE(mi.mi_peer);
	kill(pid, SIGKILL);
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	EXPECT_EQ(-ENOENT, mailktls_query_fd(sv[1], &mi));
	EXPECT_EQ(0, km_proc("tags_live"));
	close(sv[1]);
	close(ready[0]);
}

TEST_F(life, unload_with_live_tags_then_reload)
{
	struct mailktls_info mi;
	int a[4], d[4], i;
	char buf[4];

	if (access(KM_MODULE_PATH, R_OK))
		SKIP(return, "%s missing", KM_MODULE_PATH);
	for (i = 0; i < 4; i++) {
		ASSERT_EQ(0, km_tcp_pair(i % 2 ? AF_INET6 : AF_INET, &a[i], &d[i]));
		ASSERT_EQ(0, km_tag_fd(&self->g, a[i], &tag13));
	}
	close(a[3]);	/* one closed, not yet collected */
	mk_genl_close(&self->g);

	ASSERT_EQ(0, system("rmmod mailktls"));
	ASSERT_FALSE(km_module_loaded());
	EXPECT_EQ(-ENOENT, mailktls_query_fd(d[0], &mi));
	/* The sockets work on without the module. */
	ASSERT_EQ(2, write(a[0], "hi", 2));
	ASSERT_EQ(2, read(d[0], buf, 2));

	ASSERT_EQ(0, system("insmod " KM_MODULE_PATH));
	ASSERT_TRUE(km_module_loaded());
	ASSERT_EQ(0, km_set_gc_ms(100));
	ASSERT_EQ(0, mk_genl_open(&self->g));
	EXPECT_EQ(0, km_proc("tags_live"));
	EXPECT_EQ(-ENOENT, mailktls_query_fd(d[1], &mi));
	ASSERT_EQ(0, km_tag_fd(&self->g, a[1], &tag13));
	ASSERT_EQ(0, mailktls_query_fd(d[1], &mi));
	for (i = 0; i < 3; i++)
		close(a[i]);
	for (i = 0; i < 4; i++)
		close(d[i]);
	EXPECT_EQ(0, km_proc("tags_live"));
	EXPECT_EQ(0, km_wait_gc());
}

TEST_HARNESS_MAIN
