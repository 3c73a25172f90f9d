/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A worker: one thread, one io_uring, its own listening sockets
 * (SO_REUSEPORT spreads connections over workers) and its own connections.
 * See worker.c for why this needs no locks.
 */
#ifndef MAILKTLS_WORKER_H
#define MAILKTLS_WORKER_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "clock.h"
#include "config.h"
#include "runtime.h"

struct mk_conn;
struct mk_reg_worker;

/*
 * user_data of every SQE: which operation (low 8 bits) on which connection
 * slot (next 32 bits), with the slot's generation (high 24 bits) so that a
 * late completion for a reused slot is recognised and dropped.
 */
enum mk_op {
	MK_OP_ACCEPT = 1,	/* slot = listener index */
	MK_OP_ACCEPT_RESUME,	/* a paused listener's back-off is over */
	MK_OP_TICK,
	MK_OP_WAKE,
	MK_OP_CLIENT_RECV,
	MK_OP_CLIENT_SEND,
	MK_OP_BACKEND_CONNECT,
	MK_OP_BACKEND_RECV,
	MK_OP_BACKEND_SEND,
	MK_OP_POLL_C2B,		/* client readable (splice relay) */
	MK_OP_POLL_B2C,
	MK_OP_SPLICE_IN_C2B,	/* socket -> pipe */
	MK_OP_SPLICE_OUT_C2B,	/* pipe -> socket */
	MK_OP_SPLICE_IN_B2C,
	MK_OP_SPLICE_OUT_B2C,
	MK_OP_WPOLL_C2B,	/* backend writable again (splice relay) */
	MK_OP_WPOLL_B2C,	/* client writable again */
	MK_OP_CANCEL,
	MK_OP_KEYPROC,		/* answers on the worker's signing channel; slot = its gen */
	MK_OP_TAG,		/* the module answered on the worker's netlink socket */
};

static inline uint64_t mk_udata(enum mk_op op, uint32_t slot, uint32_t gen)
{
	return (uint64_t)op | ((uint64_t)slot << 8) | ((uint64_t)(gen & 0xffffff) << 40);
}
static inline enum mk_op mk_udata_op(uint64_t u) { return (enum mk_op)(u & 0xff); }
static inline uint32_t mk_udata_slot(uint64_t u) { return (uint32_t)(u >> 8); }
static inline uint32_t mk_udata_gen(uint64_t u) { return (uint32_t)(u >> 40); }

/*
 * Receive buffers: one group per worker, handed to the kernel as a provided
 * buffer ring. A receive names the group, not a buffer, so the kernel takes
 * one only when bytes arrive and an idle socket owns none; the connection
 * gives it back as soon as it has used (or copied) the bytes.
 */
#define MK_RECV_BUF_SIZE (16 * 1024 + 512)	/* a TLS record and its header */
#define MK_RECV_BUFS 64				/* a power of two */
#define MK_RECV_BGID 0

/*
 * Who may connect, shared by all workers. The counters are atomics, taken
 * and given back once per connection; the limits are set before any worker
 * starts and never change.
 */
struct mk_admission {
	atomic_uint ad_active[MK_MAX_LISTENERS];	/* per listener: max_connections */
	atomic_uint ad_open;				/* connections of the process */
	unsigned int ad_ceiling;			/* what the descriptors allow */
	unsigned int ad_pipe_pool;			/* idle pipes a worker keeps */
};

/* A listening socket of this worker; the config comes from the runtime. */
struct mk_listener {
	int l_fd;
	int l_index;			/* in rt_cfg->cf_listeners */
	char l_name[MK_NAME_MAX];
	bool l_accepting;		/* an accept or its back-off is queued */
	unsigned int l_backoff_ms;	/* after accept ran out of resources; 0: none */
	struct __kernel_timespec l_backoff_ts;
	atomic_uint *l_active;		/* shared by all workers: max_connections */
};

/* A pipe lent to a connection while data is in flight. */
struct mk_pipe {
	int p_fd[2];
	struct mk_pipe *p_next;
};

struct mk_worker {
	int w_id;
	pthread_t w_thread;
	struct io_uring w_ring;
	int w_wake_fd;			/* eventfd: main thread -> worker */
	uint64_t w_wake_val;
	unsigned int w_reload_seen;	/* mk_reload_generation w_rt is from */
	struct mk_runtime *w_rt;	/* runtime for new connections (ref held) */
	struct mk_listener w_listeners[MK_MAX_LISTENERS];
	size_t w_nlisteners;
	struct mk_conn **w_conns;	/* slot -> connection, NULL when free */
	uint32_t *w_gens;		/* generation of each slot */
	uint32_t w_nslots;
	uint32_t w_free_hint;
	uint32_t w_nconns;
	struct io_uring_buf_ring *w_rbufs;	/* NULL: the kernel has no buffer rings */
	uint8_t *w_rbuf_mem;		/* MK_RECV_BUFS x MK_RECV_BUF_SIZE */
	struct mk_pipe *w_pipes;	/* free pipes */
	unsigned int w_npipes;
	struct mk_admission *w_adm;
	struct __kernel_timespec w_tick_ts;
	struct mk_keyproc_chan *w_kp;	/* signing channel, NULL: no key process */
	int w_kp_fd;			/* the socket polled for it */
	uint32_t w_kp_gen;		/* counts its sockets: stale polls are ignored */
	bool w_kp_armed;		/* a poll for w_kp_fd is queued */
	struct mk_reg_worker *w_reg;	/* registry shard + netlink socket; NULL: shared */
	bool w_reg_armed;		/* a poll for its netlink socket is queued */
	bool w_stopping;
	int w_exit_code;
};

/* Shared between the main thread and the workers. */
extern atomic_bool mk_stop_requested;
extern atomic_uint mk_reload_generation;

int mk_worker_start(struct mk_worker *w, int id, struct mk_runtime *rt, struct mk_admission *adm);
void mk_worker_wake(struct mk_worker *w);
void mk_worker_join(struct mk_worker *w);

/* worker_pool.c, for connections: admission (NULL, or why not) and its end. */
const char *mk_worker_admit(struct mk_worker *w, struct mk_listener *l, unsigned int max);
void mk_worker_release(struct mk_worker *w, struct mk_listener *l);

/* For connections: queue an SQE, tagged with @op for @c. */
struct io_uring_sqe *mk_worker_sqe(struct mk_worker *w);
uint8_t *mk_worker_rbuf(struct mk_worker *w, unsigned int bid);
void mk_worker_rbuf_put(struct mk_worker *w, unsigned int bid);
struct mk_pipe *mk_worker_pipe_get(struct mk_worker *w);
void mk_worker_pipe_put(struct mk_worker *w, struct mk_pipe *p);
/* worker_pool.c, for worker.c: the receive buffers at start and stop. */
void mk_worker_rbufs_init(struct mk_worker *w);
void mk_worker_rbufs_free(struct mk_worker *w);

#endif
