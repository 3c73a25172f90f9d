// SPDX-License-Identifier: GPL-2.0
/*
 * What a worker lends its connections: SQEs of its ring, the ring of
 * receive buffers, the pool of pipes for splice, and the admission counts.
 * conn.c uses these; worker.c, the loop that dispatches completions to
 * conn.c, sets them up. Kept apart from the loop so that the connection
 * code and the loop do not call each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "worker.h"

#define MK_PIPE_SIZE (256 * 1024)

/**
 * mk_worker_sqe() - a free SQE of @w's ring, submitting first if it is full
 * @w: the worker
 *
 * Return: the SQE, or NULL if the ring stays full.
 */
struct io_uring_sqe *mk_worker_sqe(struct mk_worker *w)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&w->w_ring);

	if (!sqe) {
		/* The SQ is full: hand what we have to the kernel and retry. */
		io_uring_submit(&w->w_ring);
		sqe = io_uring_get_sqe(&w->w_ring);
	}
	return sqe;
}

/**
 * mk_worker_rbuf() - the memory of a receive buffer of the ring
 * @w:   the worker
 * @bid: the buffer id a completion reported
 *
 * Return: MK_RECV_BUF_SIZE bytes.
 */
uint8_t *mk_worker_rbuf(struct mk_worker *w, unsigned int bid)
{
	return w->w_rbuf_mem + (size_t)bid * MK_RECV_BUF_SIZE;
}

/**
 * mk_worker_rbuf_put() - give a receive buffer back to the ring
 * @w:   the worker
 * @bid: its id
 *
 * Not wiped here: the next receive overwrites it, and the whole ring is
 * wiped when the worker ends (wiping every receive would cost as much as
 * copying it).
 */
void mk_worker_rbuf_put(struct mk_worker *w, unsigned int bid)
{
	io_uring_buf_ring_add(w->w_rbufs, mk_worker_rbuf(w, bid), MK_RECV_BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(MK_RECV_BUFS), 0);
	io_uring_buf_ring_advance(w->w_rbufs, 1);
}

/**
 * mk_worker_rbufs_init() - register the ring of receive buffers of @w
 * @w: the worker, its ring set up
 *
 * Kernels before 5.19 have no buffer rings: connections then receive into
 * buffers of their own, allocated for each receive (w_rbufs stays NULL).
 */
void mk_worker_rbufs_init(struct mk_worker *w)
{
	size_t ring_len = MK_RECV_BUFS * sizeof(struct io_uring_buf);
	size_t mem_len = (size_t)MK_RECV_BUFS * MK_RECV_BUF_SIZE;
	struct io_uring_buf_reg reg = { .ring_entries = MK_RECV_BUFS, .bgid = MK_RECV_BGID };
	void *ring, *mem;
	unsigned int i;
	int ret;

	ring = mmap(NULL, ring_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Resident from the start: the ring is the worker's memory, whatever
	 * the number of connections, and traffic touches all of it anyway. */
	mem = mmap(NULL, mem_len, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (ring == MAP_FAILED || mem == MAP_FAILED) {
		ret = -ENOMEM;
		goto out_unmap;
	}
	reg.ring_addr = (uintptr_t)ring;
	ret = io_uring_register_buf_ring(&w->w_ring, &reg, 0);
	if (ret)
		goto out_unmap;
	w->w_rbufs = ring;
	w->w_rbuf_mem = mem;
	io_uring_buf_ring_init(w->w_rbufs);
	for (i = 0; i < MK_RECV_BUFS; i++)
		io_uring_buf_ring_add(w->w_rbufs, mk_worker_rbuf(w, i), MK_RECV_BUF_SIZE,
				      (unsigned short)i, io_uring_buf_ring_mask(MK_RECV_BUFS), (int)i);
	io_uring_buf_ring_advance(w->w_rbufs, MK_RECV_BUFS);
	return;

out_unmap:
	if (ring != MAP_FAILED)
		munmap(ring, ring_len);
	if (mem != MAP_FAILED)
		munmap(mem, mem_len);
	if (w->w_id == 0)
		mk_log(LOG_NOTICE, "io_uring buffer ring: %s; receiving into per-connection buffers",
		       strerror(-ret));
}

/**
 * mk_worker_rbufs_free() - wipe and unmap the receive buffers of @w
 * @w: the worker, its ring about to go
 */
void mk_worker_rbufs_free(struct mk_worker *w)
{
	if (!w->w_rbufs)
		return;
	OPENSSL_cleanse(w->w_rbuf_mem, (size_t)MK_RECV_BUFS * MK_RECV_BUF_SIZE);
	munmap(w->w_rbuf_mem, (size_t)MK_RECV_BUFS * MK_RECV_BUF_SIZE);
	munmap(w->w_rbufs, MK_RECV_BUFS * sizeof(struct io_uring_buf));
	w->w_rbufs = NULL;
}

/**
 * mk_worker_pipe_get() - borrow a pipe for a splice in flight
 * @w: the worker
 *
 * Return: a pipe from the pool or a new one, or NULL (out of fds).
 */
struct mk_pipe *mk_worker_pipe_get(struct mk_worker *w)
{
	struct mk_pipe *p = w->w_pipes;

	if (p) {
		w->w_pipes = p->p_next;
		w->w_npipes--;
		return p;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	if (pipe2(p->p_fd, O_CLOEXEC | O_NONBLOCK)) {
		free(p);
		return NULL;
	}
	/* Bigger than the 64 KiB default so one splice moves a full TLS
	 * record burst; failure is harmless. */
	fcntl(p->p_fd[0], F_SETPIPE_SZ, MK_PIPE_SIZE);
	return p;
}

/**
 * mk_worker_pipe_put() - return an empty pipe to the pool (or close it
 * when the pool is full)
 * @w: the worker
 * @p: the pipe
 */
void mk_worker_pipe_put(struct mk_worker *w, struct mk_pipe *p)
{
	if (w->w_npipes >= w->w_adm->ad_pipe_pool) {
		close(p->p_fd[0]);
		close(p->p_fd[1]);
		free(p);
		return;
	}
	p->p_next = w->w_pipes;
	w->w_pipes = p;
	w->w_npipes++;
}

/**
 * mk_worker_admit() - count a new connection of @l against max_connections
 * and the process's connection ceiling
 * @w:   the worker that accepted it
 * @l:   its listener
 * @max: the listener's max_connections
 *
 * Return: NULL when admitted (mk_worker_release() gives it back), or the
 * reason for refusing: "max_connections" or "connection_ceiling".
 */
const char *mk_worker_admit(struct mk_worker *w, struct mk_listener *l, unsigned int max)
{
	struct mk_admission *adm = w->w_adm;

	if (atomic_fetch_add(l->l_active, 1) >= max) {
		atomic_fetch_sub(l->l_active, 1);
		return "max_connections";
	}
	if (atomic_fetch_add(&adm->ad_open, 1) >= adm->ad_ceiling) {
		atomic_fetch_sub(&adm->ad_open, 1);
		atomic_fetch_sub(l->l_active, 1);
		return "connection_ceiling";
	}
	return NULL;
}

/**
 * mk_worker_release() - a connection admitted by mk_worker_admit() is gone
 * @w: its worker
 * @l: its listener
 */
void mk_worker_release(struct mk_worker *w, struct mk_listener *l)
{
	atomic_fetch_sub(&w->w_adm->ad_open, 1);
	atomic_fetch_sub(l->l_active, 1);
}
