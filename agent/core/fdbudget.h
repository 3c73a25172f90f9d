/* SPDX-License-Identifier: GPL-2.0 */
/*
 * How many connections the descriptor limit allows: every connection holds
 * a client and a backend socket, on the kTLS path up to two pipes (one per
 * direction, lent while bytes are in them), and the process keeps a fixed
 * set of descriptors besides (fdbudget.c lists them).
 */
#ifndef MAILKTLS_FDBUDGET_H
#define MAILKTLS_FDBUDGET_H

#include <stdbool.h>
#include <stdint.h>

#define MK_FDS_PER_CONN 2		/* client and backend socket */
#define MK_PIPE_FDS_PER_CONN 4		/* two pipes, kTLS path only */
#define MK_PIPE_POOL_MAX 256		/* idle pipes a worker may keep */

struct mk_fd_budget {
	/* in */
	uint64_t fb_nofile;		/* RLIMIT_NOFILE (soft) */
	unsigned int fb_open;		/* descriptors open now; 0: unknown */
	unsigned int fb_workers;
	unsigned int fb_listeners;
	bool fb_ktls;			/* pipes are used */
	uint64_t fb_max_connections;	/* sum over listeners */
	/* out */
	unsigned int fb_per_conn;	/* descriptors a connection may hold */
	unsigned int fb_pipe_pool;	/* idle pipes each worker may keep */
	uint64_t fb_reserve;		/* held by the process and its workers */
	unsigned int fb_fd_ceiling;	/* what the descriptors allow */
	unsigned int fb_ceiling;	/* that, or fewer by max_connections */
};

int mk_fd_budget_compute(struct mk_fd_budget *b);

#endif
