// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls.ko: several threads tagging, re-tagging, querying, dumping and
 * closing at once, with the garbage collector running along.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kmod_util.h"

static const struct km_tag tag13 = {
	.version = 0x0304, .cipher_id = 0x1301, .cipher = "TLS_AES_128_GCM_SHA256",
	.client = "[2001:db8::5]:60000", .listener = "pop3s",
};

FIXTURE(life) {
	struct mk_genl g;
};

FIXTURE_SETUP(life)
{
	if (!km_module_loaded())
		SKIP(return, "mailktls.ko not loaded");
	setenv(MAILKTLS_QUERY_ENV, "/nonexistent/query.sock", 1);
	ASSERT_EQ(0, mk_genl_open(&self->g));
	ASSERT_EQ(0, km_set_gc_ms(100));
}

FIXTURE_TEARDOWN(life)
{
	mk_genl_close(&self->g);
	km_set_gc_ms(1000);
}

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

struct stress {
	atomic_int st_errors;
	atomic_int st_stop;
	atomic_int st_fd;	/* a shared tagged socket, closed under the others */
	int st_iter;
};

static void *stress_tagger(void *arg)
{
	struct stress *st = arg;
	struct mk_genl g;
	int i, err;

	if (mk_genl_open(&g)) {
		st->st_errors++;
		return NULL;
	}
	for (i = 0; i < st->st_iter; i++) {
		err = cycle(&g, i % 4 ? AF_UNIX : AF_INET, i % 50 == 0);
		if (err)
			st->st_errors++;
	}
	mk_genl_close(&g);
	return NULL;
}

/* Tags, re-tags and closes a socket other threads ask about by fd. */
static void *stress_closer(void *arg)
{
	struct stress *st = arg;
	struct mk_genl g;
	int i, sv[2];

	if (mk_genl_open(&g)) {
		st->st_errors++;
		return NULL;
	}
	for (i = 0; i < st->st_iter; i++) {
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
			continue;
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

static void *stress_reader(void *arg)
{
	struct stress *st = arg;
	struct mailktls_info mi;
	struct mk_genl g;
	int err;

	if (mk_genl_open(&g)) {
		st->st_errors++;
		return NULL;
	}
	while (!atomic_load(&st->st_stop)) {
		/* The fd may be closed or even reused meanwhile: any of these. */
		err = mailktls_query_fd(atomic_load(&st->st_fd), &mi);
		if (err && err != -ENOENT && err != -EBADF && err != -ENOTSOCK &&
		    err != -EPROTONOSUPPORT)
			st->st_errors++;
		if (km_dump_count(&g) < 0)
			st->st_errors++;
		km_proc("tags_live");
	}
	mk_genl_close(&g);
	return NULL;
}

TEST_F_TIMEOUT(life, threads_tag_query_close_at_once, 280)
{
	struct stress st = { .st_iter = 2000, .st_fd = -1 };
	pthread_t t[6];
	int i;

	ASSERT_EQ(0, km_set_gc_ms(10));	/* the collector runs along */
	for (i = 0; i < 3; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, stress_tagger, &st));
	ASSERT_EQ(0, pthread_create(&t[3], NULL, stress_closer, &st));
	for (i = 4; i < 6; i++)
		ASSERT_EQ(0, pthread_create(&t[i], NULL, stress_reader, &st));
	for (i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	atomic_store(&st.st_stop, 1);
	for (i = 4; i < 6; i++)
		pthread_join(t[i], NULL);
	EXPECT_EQ(0, atomic_load(&st.st_errors));
	EXPECT_EQ(0, km_proc("tags_live"));
	EXPECT_EQ(0, km_wait_gc());
}

TEST_HARNESS_MAIN
