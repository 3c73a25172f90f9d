// SPDX-License-Identifier: GPL-2.0
/*
 * The connection ceiling. Refusing a connection before its handshake is
 * the only way to never establish a TLS session that then has no
 * descriptor for its backend socket, so the agent admits at most as many
 * connections as the descriptors left after its own fixed needs allow.
 */
#include <errno.h>

#include "fdbudget.h"

/*
 * Open before the ceiling is computed, when they cannot be counted: stdin,
 * stdout, stderr, the signalfd, syslog, the registry's netlink socket.
 */
#define MK_FDS_AT_START 6
/*
 * Opened by the process later: the query socket's listener, its stop
 * eventfd and the one client it serves at a time, and the configuration,
 * certificate and key files a reload reads (two pairs), with slack.
 */
#define MK_FDS_LATER 10

/*
 * Held by each worker: its io_uring and its wake eventfd; per listener its
 * listening socket and the one accepted socket that may be waiting in the
 * completion queue to be refused.
 */
#define MK_FDS_WORKER 2
#define MK_FDS_WORKER_LISTENER 2

/**
 * mk_fd_budget_compute() - the connection ceiling for a descriptor limit
 * @b: fb_nofile, fb_open, fb_workers, fb_listeners, fb_ktls and
 *     fb_max_connections set; the other fields are filled in
 *
 * On the kTLS path each worker keeps at most fb_pipe_pool idle pipes, an
 * eighth of the limit shared by the workers and no more than
 * MK_PIPE_POOL_MAX: a pipe in the pool is not lent to any connection, so
 * the pool is paid for apart from the MK_PIPE_FDS_PER_CONN a connection
 * may hold.
 *
 * Return: 0, or -EMFILE when the limit leaves room for no connection at
 * all (fb_reserve and the pipe pools say how many descriptors the process
 * needs first).
 */
int mk_fd_budget_compute(struct mk_fd_budget *b)
{
	uint64_t workers = b->fb_workers ? b->fb_workers : 1, pool = 0, used, left, n;

	b->fb_per_conn = MK_FDS_PER_CONN;
	if (b->fb_ktls) {
		b->fb_per_conn += MK_PIPE_FDS_PER_CONN;
		pool = b->fb_nofile / 8 / (2 * workers);
		if (pool > MK_PIPE_POOL_MAX)
			pool = MK_PIPE_POOL_MAX;
	}
	b->fb_pipe_pool = (unsigned int)pool;
	b->fb_reserve = (b->fb_open > MK_FDS_AT_START ? b->fb_open : MK_FDS_AT_START) +
			MK_FDS_LATER +
			workers * (MK_FDS_WORKER + MK_FDS_WORKER_LISTENER * (uint64_t)b->fb_listeners);
	used = b->fb_reserve + workers * pool * 2;
	left = b->fb_nofile > used ? b->fb_nofile - used : 0;
	n = left / b->fb_per_conn;
	if (n > UINT32_MAX >> 1)
		n = UINT32_MAX >> 1;
	b->fb_fd_ceiling = (unsigned int)n;
	if (b->fb_max_connections && n > b->fb_max_connections)
		n = b->fb_max_connections;
	b->fb_ceiling = (unsigned int)n;
	return n ? 0 : -EMFILE;
}
