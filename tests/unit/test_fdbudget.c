// SPDX-License-Identifier: GPL-2.0
/*
 * The connection ceiling derived from the descriptor limit: every admitted
 * connection must find the descriptors for its backend socket (and, with
 * kTLS, its pipes) free.
 */
#include <errno.h>

#include "kselftest_harness.h"
#include "fdbudget.h"

TEST(ceiling_user_space_path)
{
	struct mk_fd_budget b = {
		.fb_nofile = 256, .fb_workers = 2, .fb_listeners = 1, .fb_ktls = false,
		.fb_max_connections = 10000,
	};

	ASSERT_EQ(0, mk_fd_budget_compute(&b));
	ASSERT_EQ(2, b.fb_per_conn);
	ASSERT_EQ(0, b.fb_pipe_pool);
	ASSERT_EQ(6 + 10 + 2 * (2 + 2), b.fb_reserve);
	ASSERT_EQ((256 - 24) / 2, b.fb_ceiling);
	ASSERT_EQ(b.fb_ceiling, b.fb_fd_ceiling);
	/* Every admitted connection has its backend descriptor. */
	ASSERT_LE(b.fb_reserve + 2ull * b.fb_ceiling, b.fb_nofile);
}

TEST(ceiling_counts_inherited_descriptors)
{
	struct mk_fd_budget b = {
		.fb_nofile = 256, .fb_open = 40, .fb_workers = 2, .fb_listeners = 1,
		.fb_max_connections = 10000,
	};

	/* A parent left 34 descriptors open besides the usual six. */
	ASSERT_EQ(0, mk_fd_budget_compute(&b));
	ASSERT_EQ(40 + 10 + 2 * (2 + 2), b.fb_reserve);
	ASSERT_EQ((256 - 58) / 2, b.fb_ceiling);
	/* Fewer than the usual: the usual are still reserved. */
	b.fb_open = 3;
	ASSERT_EQ(0, mk_fd_budget_compute(&b));
	ASSERT_EQ(6 + 10 + 2 * (2 + 2), b.fb_reserve);
}

TEST(ceiling_ktls_path_counts_pipes)
{
	struct mk_fd_budget b = {
		.fb_nofile = 4000, .fb_workers = 2, .fb_listeners = 6, .fb_ktls = true,
		.fb_max_connections = 60000,
	};

	ASSERT_EQ(0, mk_fd_budget_compute(&b));
	ASSERT_EQ(6, b.fb_per_conn);
	ASSERT_EQ(4000 / 8 / 4, b.fb_pipe_pool);
	/* Sockets, two pipes each, and the idle pools all fit. */
	ASSERT_LE(b.fb_reserve + 6ull * b.fb_ceiling + 2ull * 2 * b.fb_pipe_pool, b.fb_nofile);
	ASSERT_GT(b.fb_reserve + 6ull * (b.fb_ceiling + 1) + 2ull * 2 * b.fb_pipe_pool,
		  b.fb_nofile);
	/* A large limit: the pool is capped, max_connections bounds it. */
	b.fb_nofile = 1048576;
	ASSERT_EQ(0, mk_fd_budget_compute(&b));
	ASSERT_EQ(MK_PIPE_POOL_MAX, b.fb_pipe_pool);
	ASSERT_EQ(60000, b.fb_ceiling);
	ASSERT_GT(b.fb_fd_ceiling, 60000);
}

TEST(ceiling_limit_too_small)
{
	struct mk_fd_budget b = {
		.fb_nofile = 20, .fb_workers = 4, .fb_listeners = 2, .fb_ktls = false,
		.fb_max_connections = 10,
	};

	ASSERT_EQ(-EMFILE, mk_fd_budget_compute(&b));
	ASSERT_EQ(0, b.fb_ceiling);
}

TEST_HARNESS_MAIN
