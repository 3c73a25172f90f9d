// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls.ko: several threads tagging, re-tagging, querying, dumping and
 * closing at once, with the garbage collector running along.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "kmod_life.h"

/* Rounds of the stress test in one run (-r N), to hunt rare races in one VM boot. */
static int stress_rounds = 1;

struct stress {
	atomic_int st_errors;
	atomic_int st_stop;
	atomic_int st_fd;	/* a shared tagged socket, closed under the others */
	atomic_ulong st_ino;	/* its inode, published before st_fd */
	int st_iter;
};

/* Which socket (inode) @fd names now; 0 for none. */
static unsigned long fd_ino(int fd)
{
	struct stat sb;

	return fd >= 0 && !fstat(fd, &sb) ? sb.st_ino : 0;
}

/* Count an error; say which operation failed how (the first few only). */
static void stress_error(struct stress *st, const char *who, const char *op, int err)
{
	if (atomic_fetch_add(&st->st_errors, 1) < 10)
		fprintf(stderr, "# %s: %s failed: %s (%d)\n", who, op, strerror(-err), err);
}

static void *stress_tagger(void *arg)
{
	struct stress *st = arg;
	struct mk_genl g;
	const char *op;
	int i, err;

	err = mk_genl_open(&g);
	if (err) {
		stress_error(st, "tagger", "mk_genl_open", err);
		return NULL;
	}
	for (i = 0; i < st->st_iter; i++) {
		err = km_cycle(&g, i % 4 ? AF_UNIX : AF_INET, i % 50 == 0, &op);
		if (err)
			stress_error(st, "tagger", op, err);
	}
	mk_genl_close(&g);
	return NULL;
}

/* Tags, re-tags and closes a socket other threads ask about by fd. */
static void *stress_closer(void *arg)
{
	struct stress *st = arg;
	struct mk_genl g;
	int i, sv[2], err;

	err = mk_genl_open(&g);
	if (err) {
		stress_error(st, "closer", "mk_genl_open", err);
		return NULL;
	}
	for (i = 0; i < st->st_iter; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			continue;
		atomic_store(&st->st_ino, fd_ino(sv[1]));
		km_tag_fd(&g, sv[0], &tag13);
		atomic_store(&st->st_fd, sv[1]);
		km_tag_fd(&g, sv[0], &tag13);
		close(sv[0]);
		atomic_store(&st->st_fd, -1);
		close(sv[1]);
	}
	mk_genl_close(&g);
	return NULL;
}

/*
 * The fd was closed, or reused by another thread, during the query: it may
 * name nothing (EBADF), a /proc file (ENOTSOCK), a netlink socket (the
 * module: EPROTONOSUPPORT; the library, when the swap came after the
 * module's answer: EAFNOSUPPORT), a TCP listener or a TCP or AF_UNIX
 * socket not connected yet (a tagger's, or the library's own query socket
 * client): ENOTCONN, or a connection nobody tagged or whose peer closed
 * (ENOENT).  All are mailktls_query_fd()'s documented answers for such fds.
 */
static bool stress_reused_fd_errno(int err)
{
	return !err || err == -ENOENT || err == -EBADF || err == -ENOTSOCK ||
	       err == -EPROTONOSUPPORT || err == -EAFNOSUPPORT || err == -ENOTCONN;
}

static void *stress_reader(void *arg)
{
	struct stress *st = arg;
	struct mailktls_info mi;
	struct mk_genl g;
	int err;

	err = mk_genl_open(&g);
	if (err) {
		stress_error(st, "reader", "mk_genl_open", err);
		return NULL;
	}
	while (!atomic_load(&st->st_stop)) {
		int fd = atomic_load(&st->st_fd);
		unsigned long ino = fd_ino(fd);

		err = mailktls_query_fd(fd, &mi);
		if (ino && ino == atomic_load(&st->st_ino) && fd_ino(fd) == ino) {
			/* The closer's socket all along: its peer is tagged or closed. */
			if (err && err != -ENOENT)
				stress_error(st, "reader", "mailktls_query_fd(closer's fd)", err);
		} else if (!stress_reused_fd_errno(err)) {
			int dom = -1, lis = -1;
			socklen_t sl = sizeof(int);

			getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &sl);
			sl = sizeof(int);
			getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &lis, &sl);
			/* What took the fd's place tells a new race from a bug. */
			fprintf(stderr, "# reader: fd %d now: domain %d, listening %d\n", fd, dom, lis);
			stress_error(st, "reader", "mailktls_query_fd(reused fd)", err);
		}
		err = km_dump_count(&g);
		if (err < 0)
			stress_error(st, "reader", "DUMP", err);
		km_proc("tags_live");
	}
	mk_genl_close(&g);
	return NULL;
}

/* One round: six threads at once; Return: the number of errors counted. */
static int stress_round(void)
{
	struct stress st = { .st_iter = 2000, .st_fd = -1 };
	void *(*fn[6])(void *) = {
		stress_tagger, stress_tagger, stress_tagger, stress_closer,
		stress_reader, stress_reader,
	};
	pthread_t t[6];
	int i;

	for (i = 0; i < 6; i++) {
		/* Threads already running use @st: no way back but out. */
		if (pthread_create(&t[i], NULL, fn[i], &st))
			abort();
	}
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	atomic_store(&st.st_stop, 1);
	for (i = 4; i < 6; i++)
		pthread_join(t[i], NULL);
	return atomic_load(&st.st_errors);
}

TEST_F_TIMEOUT(life, threads_tag_query_close_at_once, 280)
{
	double t0 = km_now();
	int round;

	ASSERT_EQ(0, km_set_gc_ms(10));	/* the collector runs along */
	/* Extra rounds stop early enough for the harness timeout. */
	for (round = 0; round < stress_rounds && (!round || km_now() - t0 < 200); round++) {
		ASSERT_EQ(0, stress_round()) {
			TH_LOG("round %d of %d", round + 1, stress_rounds);
		}
	}
	if (stress_rounds > 1)
		TH_LOG("%d rounds", round);
	EXPECT_EQ(0, km_proc("tags_live"));
	EXPECT_EQ(0, km_wait_gc());
}

/*
 * The closer's window in one thread: the tagged end is closed, the other
 * still open.  The module treats the dead tag as absent and the query
 * socket cannot know a connection that is over: -ENOENT, as for TCP.
 * (This VM has no unix_diag module, so the library's fallback ends in
 * ENOENT here anyway; with unix_diag it used to say ENOTCONN.)
 */
TEST_F(life, query_fd_after_tagged_peer_closed_is_enoent)
{
	struct mailktls_info mi;
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	ASSERT_EQ(0, km_tag_fd(&self->g, sv[0], &tag13));
	ASSERT_EQ(0, mailktls_query_fd(sv[1], &mi));
	EXPECT_TRUE(mi.mi_peer);
	close(sv[0]);
	EXPECT_EQ(-ENOENT, mailktls_query_fd(sv[1], &mi));
	close(sv[1]);
	EXPECT_EQ(0, km_wait_gc());
}

/* The harness of 6.1 takes no arguments; -r N runs N rounds of the stress. */
int main(int argc, char **argv)
{
	int opt;

	while ((opt = getopt(argc, argv, "r:")) != -1)
		if (opt == 'r')
			stress_rounds = atoi(optarg) > 0 ? atoi(optarg) : 1;
	return test_harness_run(argc, argv);
}
