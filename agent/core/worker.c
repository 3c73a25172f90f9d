// SPDX-License-Identifier: GPL-2.0
/*
 * The event loop.
 *
 * Threading model. mailktlsd runs one worker thread per core (config key
 * `workers`). Each worker owns an io_uring, its own listening socket per
 * listener (bound with SO_REUSEPORT, so the kernel spreads new connections
 * over the workers), its own connection table, its own pipe pool and its
 * own ring of receive buffers. A
 * connection is accepted, handshaken, relayed and closed by the worker
 * that accepted it, and only ever touched by that thread. That is why the
 * connection code has no locks at all.
 *
 * What is shared, and how:
 *  - the runtime (configuration + TLS policies): immutable once built,
 *    reference counted; the main thread builds a new one on SIGHUP and
 *    publishes it, workers take it for new connections (runtime.c);
 *  - admission (struct mk_admission): each listener's active-connection
 *    count for max_connections and the process's count against the
 *    connection ceiling that the descriptor limit allows (fdbudget.c),
 *    atomic counters;
 *  - the rate limiters of repeated log lines: atomics (ratelimit.h);
 *  - the registry of established sessions for the query socket: each
 *    worker adds and removes in its own shard, under a mutex only the
 *    query server also takes (briefly, for a lookup), once when TLS is
 *    established and once at close, never while doing I/O; the module's
 *    tags go out on the worker's own netlink socket, sent without waiting
 *    (the kernel tags inside the send), and its refusals come back as a
 *    completion of a poll in the ring (registry.c, registry_tag.c);
 *  - stop and reload requests: atomics, plus an eventfd per worker that the
 *    main thread writes to wake the ring.
 *
 * The loop follows liburing's examples: every SQE's user_data encodes the
 * operation and the connection slot (worker.h), we submit and wait for at
 * least one completion, then drain the whole CQ, calling one handler per
 * operation. A one-second tick re-arms itself and enforces the handshake,
 * pre-TLS and idle timeouts. Nothing blocks: the only synchronous system
 * calls on the hot path are setsockopt() for the kTLS handover, the
 * non-blocking send of the module's tags and shutdown()/close().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "keyproc.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "worker.h"

#define MK_RING_ENTRIES 4096
/* Back-off of a listener whose accept ran out of descriptors or memory. */
#define MK_ACCEPT_BACKOFF_MIN_MS 10
#define MK_ACCEPT_BACKOFF_MAX_MS 1000

atomic_bool mk_stop_requested;
atomic_uint mk_reload_generation;

static void worker_arm_accept(struct mk_worker *w, struct mk_listener *l)
{
	struct io_uring_sqe *sqe;

	if (l->l_accepting || l->l_fd < 0 || w->w_stopping)
		return;
	sqe = mk_worker_sqe(w);
	if (!sqe)
		return;
	io_uring_prep_accept(sqe, l->l_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, mk_udata(MK_OP_ACCEPT, (uint32_t)(l - w->w_listeners), 0));
	l->l_accepting = true;
}

static void worker_arm_tick(struct mk_worker *w)
{
	struct io_uring_sqe *sqe = mk_worker_sqe(w);

	if (!sqe)
		return;
	w->w_tick_ts.tv_sec = 1;
	w->w_tick_ts.tv_nsec = 0;
	io_uring_prep_timeout(sqe, &w->w_tick_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, mk_udata(MK_OP_TICK, 0, 0));
}

static void worker_arm_wake(struct mk_worker *w)
{
	struct io_uring_sqe *sqe = mk_worker_sqe(w);

	if (!sqe)
		return;
	io_uring_prep_read(sqe, w->w_wake_fd, &w->w_wake_val, sizeof(w->w_wake_val), 0);
	io_uring_sqe_set_data64(sqe, mk_udata(MK_OP_WAKE, 0, 0));
}

static int worker_listen(const struct mk_listener_cfg *lc)
{
	const struct sockaddr *sa = (const struct sockaddr *)&lc->lc_listen.sa_storage;
	int fd, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto out_err;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)))
		goto out_close;
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, sa, lc->lc_listen.sa_len) || listen(fd, 1024))
		goto out_close;
	return fd;

out_close:
	close(fd);
out_err:
	mk_log(LOG_ERR, "listener %s: %.200s: %s", lc->lc_name, lc->lc_listen.sa_text,
	       strerror(errno));
	return -1;
}

/* Errors that the next accept would hit again at once. */
static bool accept_out_of_resources(int res)
{
	return res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM;
}

/*
 * Out of descriptors or memory: the connection stays in the backlog, so an
 * accept re-armed now fails again at once, as fast as the ring turns. Wait
 * instead, 10 ms doubling up to 1 s, on a timeout in the ring.
 */
static void worker_pause_accept(struct mk_worker *w, struct mk_listener *l, int res)
{
	struct io_uring_sqe *sqe;

	l->l_backoff_ms = l->l_backoff_ms ? l->l_backoff_ms * 2 : MK_ACCEPT_BACKOFF_MIN_MS;
	if (l->l_backoff_ms > MK_ACCEPT_BACKOFF_MAX_MS)
		l->l_backoff_ms = MK_ACCEPT_BACKOFF_MAX_MS;
	mk_log_limited(MK_LOG_ACCEPT, LOG_WARNING, "listener %s: accept: %s (paused %u ms)",
		       l->l_name, strerror(-res), l->l_backoff_ms);
	mk_metrics_add(l->l_index, MK_M_ACCEPT_PAUSES, 1);
	sqe = mk_worker_sqe(w);
	if (!sqe)
		return;
	l->l_backoff_ts.tv_sec = l->l_backoff_ms / 1000;
	l->l_backoff_ts.tv_nsec = (long long)(l->l_backoff_ms % 1000) * 1000000;
	io_uring_prep_timeout(sqe, &l->l_backoff_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, mk_udata(MK_OP_ACCEPT_RESUME,
					      (uint32_t)(l - w->w_listeners), 0));
	l->l_accepting = true;
}

/* Take the runtime published by the main thread for new connections. */
static void worker_reload(struct mk_worker *w)
{
	struct mk_runtime *rt;

	w->w_reload_seen = atomic_load(&mk_reload_generation);
	rt = mk_runtime_current();

	if (!rt || rt == w->w_rt) {
		mk_runtime_put(rt);
		return;
	}
	mk_runtime_put(w->w_rt);
	w->w_rt = rt;
}

static void worker_accept_done(struct mk_worker *w, uint32_t idx, int res)
{
	struct mk_listener *l;

	if (idx >= w->w_nlisteners)
		return;
	l = &w->w_listeners[idx];
	l->l_accepting = false;
	if (res >= 0) {
		/* A reload the wake-up has not brought yet applies already. */
		if (atomic_load(&mk_reload_generation) != w->w_reload_seen)
			worker_reload(w);
		l->l_backoff_ms = 0;
		if (w->w_stopping)
			close(res);
		else
			mk_conn_accepted(w, l, res);
	} else if (!w->w_stopping && accept_out_of_resources(res)) {
		worker_pause_accept(w, l, res);
		return;
	} else if (!w->w_stopping && res != -ECANCELED && res != -EAGAIN && res != -EINTR &&
		   res != -ECONNABORTED) {
		mk_log_limited(MK_LOG_ACCEPT, LOG_WARNING, "listener %s: accept: %s", l->l_name,
			       strerror(-res));
	}
	worker_arm_accept(w, l);
}

static void worker_accept_resume(struct mk_worker *w, uint32_t idx)
{
	if (idx >= w->w_nlisteners)
		return;
	w->w_listeners[idx].l_accepting = false;
	worker_arm_accept(w, &w->w_listeners[idx]);
}

/* Answers of the key process arrive on the channel's socket: one poll
 * queued for it at a time. */
static void worker_arm_keyproc(struct mk_worker *w)
{
	struct io_uring_sqe *sqe;
	int fd;

	if (!w->w_kp)
		return;
	fd = mk_keyproc_chan_fd(w->w_kp);
	if (fd != w->w_kp_fd) {
		w->w_kp_fd = fd;
		w->w_kp_gen = (w->w_kp_gen + 1) & 0xffffff;
		w->w_kp_armed = false;
	}
	if (fd < 0 || w->w_kp_armed)
		return;
	sqe = mk_worker_sqe(w);
	if (!sqe)
		return;		/* the tick tries again */
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, mk_udata(MK_OP_KEYPROC, w->w_kp_gen, 0));
	w->w_kp_armed = true;
}

/* A signature of @waiter, a connection in its handshake, is answered or
 * failed: its handshake goes on. */
static void worker_keyproc_resume(void *waiter, void *arg)
{
	mk_conn_resume(waiter, MK_OP_KEYPROC);
}

static void worker_keyproc_done(struct mk_worker *w, uint32_t gen)
{
	if (gen != w->w_kp_gen)
		return;		/* the poll of a socket replaced since */
	w->w_kp_armed = false;
	mk_keyproc_chan_input(w->w_kp);
	worker_arm_keyproc(w);
}

/* The module's refusals arrive on the worker's netlink socket: one poll
 * queued for it at a time. */
static void worker_arm_registry(struct mk_worker *w)
{
	struct io_uring_sqe *sqe;
	int fd = mk_registry_worker_fd(w->w_reg);

	if (fd < 0 || w->w_reg_armed)
		return;
	sqe = mk_worker_sqe(w);
	if (!sqe)
		return;		/* the tick tries again */
	io_uring_prep_poll_add(sqe, fd, POLLIN);
	io_uring_sqe_set_data64(sqe, mk_udata(MK_OP_TAG, 0, 0));
	w->w_reg_armed = true;
}

static void worker_registry_done(struct mk_worker *w, int res)
{
	w->w_reg_armed = false;
	mk_registry_worker_input(w->w_reg);
	if (res >= 0)
		worker_arm_registry(w);
}

static void worker_tick(struct mk_worker *w)
{
	uint64_t now = mk_now_ms();
	uint32_t i;

	for (i = 0; i < w->w_nslots; i++)
		if (w->w_conns[i])
			mk_conn_tick(w->w_conns[i], now);
	if (w->w_kp) {
		mk_keyproc_chan_expire(w->w_kp, now);
		worker_arm_keyproc(w);
	}
	worker_arm_registry(w);
	/* A listener whose accept or back-off found the ring full. */
	for (i = 0; i < w->w_nlisteners; i++)
		worker_arm_accept(w, &w->w_listeners[i]);
	mk_log_limited_flush();
	worker_arm_tick(w);
}

static void worker_stop(struct mk_worker *w)
{
	uint32_t i;
	size_t l;

	if (w->w_stopping)
		return;
	w->w_stopping = true;
	for (l = 0; l < w->w_nlisteners; l++) {
		/* Closing the fd alone does not finish a queued accept. */
		shutdown(w->w_listeners[l].l_fd, SHUT_RDWR);
		close(w->w_listeners[l].l_fd);
		w->w_listeners[l].l_fd = -1;
	}
	for (i = 0; i < w->w_nslots; i++)
		if (w->w_conns[i])
			mk_conn_shutdown(w->w_conns[i]);
}

static void worker_wake_done(struct mk_worker *w, int res)
{
	/* A key process restarted (or could not be): its new socket. */
	if (w->w_kp) {
		mk_keyproc_chan_refresh(w->w_kp);
		worker_arm_keyproc(w);
	}
	if (atomic_load(&mk_stop_requested))
		worker_stop(w);
	else
		worker_reload(w);
	if (!w->w_stopping || res < 0)
		worker_arm_wake(w);
}

static void worker_complete(struct mk_worker *w, struct io_uring_cqe *cqe)
{
	uint64_t u = io_uring_cqe_get_data64(cqe);
	uint32_t slot = mk_udata_slot(u);
	enum mk_op op = mk_udata_op(u);
	struct mk_conn *c;

	switch (op) {
	case MK_OP_ACCEPT:
		worker_accept_done(w, slot, cqe->res);
		return;
	case MK_OP_ACCEPT_RESUME:
		worker_accept_resume(w, slot);
		return;
	case MK_OP_TICK:
		worker_tick(w);
		return;
	case MK_OP_WAKE:
		worker_wake_done(w, cqe->res);
		return;
	case MK_OP_KEYPROC:
		worker_keyproc_done(w, slot);
		return;
	case MK_OP_TAG:
		worker_registry_done(w, cqe->res);
		return;
	default:
		break;
	}
	if (slot >= w->w_nslots || (w->w_gens[slot] & 0xffffff) != mk_udata_gen(u))
		return;
	c = w->w_conns[slot];
	if (c)
		mk_conn_complete(w, c, op, cqe->res, cqe->flags);
}

static void *worker_main(void *arg)
{
	struct mk_worker *w = arg;
	struct io_uring_cqe *cqe;
	unsigned int head, n;
	size_t i;

	for (i = 0; i < w->w_nlisteners; i++)
		worker_arm_accept(w, &w->w_listeners[i]);
	worker_arm_tick(w);
	worker_arm_wake(w);
	w->w_reg = mk_registry_worker_open((unsigned int)w->w_id);
	worker_arm_registry(w);
	w->w_kp = mk_keyproc_chan_get((unsigned int)w->w_id);
	w->w_kp_fd = -1;
	mk_keyproc_chan_bind(w->w_kp, worker_keyproc_resume, w);
	if (w->w_kp) {
		mk_keyproc_chan_refresh(w->w_kp);
		worker_arm_keyproc(w);
	}

	while (!(w->w_stopping && w->w_nconns == 0)) {
		int err = io_uring_submit_and_wait(&w->w_ring, 1);

		if (err < 0 && err != -EINTR && err != -EBUSY) {
			mk_log(LOG_ERR, "worker %d: io_uring_submit_and_wait: %s", w->w_id,
			       strerror(-err));
			w->w_exit_code = 1;
			break;
		}
		n = 0;
		io_uring_for_each_cqe(&w->w_ring, head, cqe) {
			worker_complete(w, cqe);
			n++;
		}
		io_uring_cq_advance(&w->w_ring, n);
	}
	/* A poll still queued holds its own reference to the socket. */
	mk_registry_worker_close(w->w_reg);
	w->w_reg = NULL;
	return NULL;
}

/**
 * mk_worker_start() - open the listeners and start the worker thread
 * @w:      zeroed worker
 * @id:     its number, for logs
 * @rt:     runtime in force (the worker takes its own reference)
 * @adm:    admission counters and limits shared by all workers
 *
 * Return: 0, or -1 after logging why (a listener cannot be bound, no
 * io_uring).
 */
int mk_worker_start(struct mk_worker *w, int id, struct mk_runtime *rt, struct mk_admission *adm)
{
	const struct mk_config *cfg = rt->rt_cfg;
	size_t i;
	int ret;

	w->w_id = id;
	w->w_adm = adm;
	w->w_nslots = 0;
	for (i = 0; i < cfg->cf_nlisteners; i++)
		w->w_nslots += cfg->cf_listeners[i].lc_max_connections;
	if (w->w_nslots > 1u << 24)
		w->w_nslots = 1u << 24;
	w->w_conns = calloc(w->w_nslots, sizeof(*w->w_conns));
	w->w_gens = calloc(w->w_nslots, sizeof(*w->w_gens));
	if (!w->w_conns || !w->w_gens) {
		mk_log(LOG_ERR, "worker %d: out of memory", id);
		return -1;
	}
	ret = io_uring_queue_init(MK_RING_ENTRIES, &w->w_ring, 0);
	if (ret < 0) {
		mk_log(LOG_ERR, "worker %d: io_uring_queue_init: %s", id, strerror(-ret));
		return -1;
	}
	mk_worker_rbufs_init(w);
	w->w_wake_fd = eventfd(0, EFD_CLOEXEC);
	if (w->w_wake_fd < 0) {
		mk_log(LOG_ERR, "worker %d: eventfd: %s", id, strerror(errno));
		return -1;
	}
	for (i = 0; i < cfg->cf_nlisteners; i++) {
		struct mk_listener *l = &w->w_listeners[i];

		l->l_fd = worker_listen(&cfg->cf_listeners[i]);
		if (l->l_fd < 0)
			return -1;
		l->l_index = (int)i;
		l->l_active = &adm->ad_active[i];
		snprintf(l->l_name, sizeof(l->l_name), "%s", cfg->cf_listeners[i].lc_name);
	}
	w->w_nlisteners = cfg->cf_nlisteners;
	mk_runtime_get(rt);
	w->w_rt = rt;
	w->w_reload_seen = atomic_load(&mk_reload_generation);
	if (pthread_create(&w->w_thread, NULL, worker_main, w)) {
		mk_log(LOG_ERR, "worker %d: cannot start thread", id);
		return -1;
	}
	return 0;
}

/**
 * mk_worker_wake() - make the worker look at the stop and reload flags
 * @w: the worker
 */
void mk_worker_wake(struct mk_worker *w)
{
	uint64_t one = 1;

	if (write(w->w_wake_fd, &one, sizeof(one)) < 0)
		mk_log(LOG_WARNING, "worker %d: wake: %s", w->w_id, strerror(errno));
}

/**
 * mk_worker_join() - wait for a stopping worker and free what it owned
 * @w: the worker
 */
void mk_worker_join(struct mk_worker *w)
{
	struct mk_pipe *p;

	pthread_join(w->w_thread, NULL);
	while ((p = w->w_pipes)) {
		w->w_pipes = p->p_next;
		close(p->p_fd[0]);
		close(p->p_fd[1]);
		free(p);
	}
	io_uring_queue_exit(&w->w_ring);
	mk_worker_rbufs_free(w);
	close(w->w_wake_fd);
	mk_runtime_put(w->w_rt);
	free(w->w_conns);
	free(w->w_gens);
}
