// SPDX-License-Identifier: GPL-2.0
/*
 * Life cycle of a client connection: accept, dispatch of completions to the
 * handler table of the stage in charge (c_ops), timeouts, and the one way
 * out (mk_conn_end then the last completion frees it).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "ktls.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"

/* Enough for a TLS record plus headroom; a client cannot make it grow past. */
#define MK_CIN_MAX (64 * 1024)
#define MK_COUT_MAX (256 * 1024)
#define MK_BOUT_MAX (256 * 1024)
#define MK_RECV_CHUNK MK_RECV_BUF_SIZE
/* Quiet for this long: give back what the stage keeps for traffic. */
#define MK_IDLE_TRIM_MS 1000
/* ENOBUFS this many times in a row: the next receive uses an own buffer. */
#define MK_RECV_NOBUFS_RETRIES 2

/* The bytes of one completed receive: in a ring buffer or an own one. */
struct conn_rx {
	uint8_t *rx_data;
	int rx_bid;		/* ring buffer id, -1 for an own buffer */
	size_t rx_len;
};

/* The first stage of a connection, by the listener's `tls` mode. Set by
 * main.c before any worker starts, read-only afterwards. */
static int (*conn_entry[MK_TLS_STARTTLS + 1])(struct mk_conn *c);

/* The first stage of a listener with accept_proxy: the balancer's header. */
static int (*conn_proxy_entry)(struct mk_conn *c);

/* Until a stage installs its own: nothing to do on any event. */
static const struct mk_conn_ops conn_no_ops;

static bool conn_reap(struct mk_conn *c);

/**
 * mk_conn_set_entry() - the stage that connections of @tls listeners start in
 * @tls:   the listener's `tls` mode
 * @start: sets the connection up for that stage and installs its handlers;
 *         returns 0 or a negative errno (the connection then ends)
 *
 * Called before the workers start.
 */
void mk_conn_set_entry(enum mk_tls_mode tls, int (*start)(struct mk_conn *c))
{
	conn_entry[tls] = start;
}

/**
 * mk_conn_set_proxy_entry() - the stage that reads a load balancer's PROXY
 * header on listeners with accept_proxy; it calls mk_conn_begin() after it
 * @start: as for mk_conn_set_entry()
 */
void mk_conn_set_proxy_entry(int (*start)(struct mk_conn *c))
{
	conn_proxy_entry = start;
}

static int conn_slot_alloc(struct mk_worker *w)
{
	uint32_t i, s;

	for (i = 0; i < w->w_nslots; i++) {
		s = (w->w_free_hint + i) % w->w_nslots;
		if (!w->w_conns[s]) {
			w->w_free_hint = s + 1;
			return (int)s;
		}
	}
	return -1;
}

/**
 * mk_conn_sqe() - an SQE for an operation of @c, counted as in flight
 * @c:  the connection
 * @op: the operation, encoded in user_data with the connection's slot
 *
 * Return: the SQE, or NULL when the ring is full even after a submit.
 */
struct io_uring_sqe *mk_conn_sqe(struct mk_conn *c, enum mk_op op)
{
	struct io_uring_sqe *sqe = mk_worker_sqe(c->c_worker);

	if (!sqe)
		return NULL;
	io_uring_sqe_set_data64(sqe, mk_udata(op, c->c_slot, c->c_gen));
	c->c_inflight++;
	return sqe;
}

/* Refuse at once, before any per-connection state exists. */
static void conn_refuse(struct mk_listener *l, int fd, const char *why)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char addr[80] = "-";

	if (!getpeername(fd, (struct sockaddr *)&ss, &len))
		mk_sockaddr_str(&ss, addr, sizeof(addr));
	mk_log_limited(MK_LOG_REFUSED, LOG_WARNING, "refused listener=%s client=%s reason=%s",
		       l->l_name, addr, why);
	if (!strcmp(why, "max_connections"))
		mk_metrics_add(l->l_index, MK_M_REFUSED_MAX, 1);
	else if (!strcmp(why, "connection_ceiling"))
		mk_metrics_add(l->l_index, MK_M_REFUSED_CEILING, 1);
	close(fd);
}

/**
 * mk_conn_begin() - start the listener's first stage with the client:
 * the greeting of a STARTTLS listener, or the handshake
 * @c: the connection
 *
 * Return: 0, or a negative errno from the stage's setup.
 */
int mk_conn_begin(struct mk_conn *c)
{
	int (*start)(struct mk_conn *c) = conn_entry[c->c_cfg->lc_tls];

	return start ? start(c) : -ENOSYS;
}

/**
 * mk_conn_accepted() - a client connected: enforce max_connections and the
 * connection ceiling before any TLS, set up the connection and start its
 * first stage (a balancer's PROXY header, the greeting or the handshake)
 * @w:  the worker that accepted it
 * @l:  the listener
 * @fd: the accepted socket; owned by this function from now on
 */
void mk_conn_accepted(struct mk_worker *w, struct mk_listener *l, int fd)
{
	struct mk_runtime *rt = w->w_rt;
	const struct mk_listener_cfg *lc;
	const char *refusal;
	struct mk_conn *c;
	socklen_t len;
	int slot, err, one = 1;

	lc = &rt->rt_cfg->cf_listeners[l->l_index];
	refusal = mk_worker_admit(w, l, lc->lc_max_connections);
	if (refusal) {
		conn_refuse(l, fd, refusal);
		return;
	}
	slot = conn_slot_alloc(w);
	c = slot < 0 ? NULL : calloc(1, sizeof(*c));
	if (!c) {
		mk_worker_release(w, l);
		conn_refuse(l, fd, "out_of_memory");
		return;
	}
	c->c_worker = w;
	c->c_slot = (uint32_t)slot;
	c->c_gen = ++w->w_gens[slot] & 0xffffff;
	c->c_listener = l;
	c->c_ops = &conn_no_ops;
	mk_metrics_add(l->l_index, MK_M_ACCEPTED, 1);
	mk_metrics_state(l->l_index, -1, (int)c->c_state);
	mk_runtime_get(rt);
	c->c_rt = rt;
	c->c_cfg = lc;
	c->c_fd = fd;
	c->c_bfd = -1;
	c->c_start_ms = c->c_last_ms = mk_now_ms();
	/* Mail is a dialogue of small writes: without this, a reply that
	 * follows another small record waits for the peer's delayed ACK. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	len = sizeof(c->c_client);
	getpeername(fd, (struct sockaddr *)&c->c_client, &len);
	mk_buf_init(&c->c_cin, MK_CIN_MAX);
	mk_buf_init(&c->c_cout, MK_COUT_MAX);
	mk_buf_init(&c->c_bout, MK_BOUT_MAX);
	mk_buf_init(&c->c_bin, MK_COUT_MAX);
	w->w_conns[slot] = c;
	w->w_nconns++;

	err = lc->lc_accept_proxy && conn_proxy_entry ? conn_proxy_entry(c) : mk_conn_begin(c);
	if (err)
		mk_conn_end(c, "error:setup");
	conn_reap(c);
}

/**
 * mk_conn_drain_wbio() - move what OpenSSL wrote into c->c_cout
 * @c: a connection whose records are still in user space
 *
 * Callers make sure no send from c_cout is in flight: appending may move
 * the buffer.
 *
 * Return: the number of bytes moved, or -ENOBUFS.
 */
int mk_conn_drain_wbio(struct mk_conn *c)
{
	size_t pending = BIO_ctrl_pending(c->c_wbio);
	uint8_t *p;
	int n;

	if (!pending)
		return 0;
	p = mk_buf_reserve(&c->c_cout, pending);
	if (!p)
		return -ENOBUFS;
	n = BIO_read(c->c_wbio, p, (int)pending);
	if (n > 0)
		c->c_cout.b_len += (size_t)n;
	return n;
}

/**
 * mk_conn_close_notify() - write the close_notify the client is owed
 * (RFC 8314 §3.4): the one way it is made, at the daemon's EOF (relay.c)
 * and when the connection ends (mk_conn_end())
 * @c: a connection past its handshake, no send to the client in flight
 *
 * With kTLS the kernel sends the alert at once; in user space OpenSSL
 * writes it, once, and it is queued in c_cout for the caller to send.
 *
 * Return: true if the alert waits in c_cout.
 */
bool mk_conn_close_notify(struct mk_conn *c)
{
	if (c->c_ktls) {
		mk_ktls_send_alert(c->c_fd, 1, 0);
		return false;
	}
	if (SSL_get_shutdown(c->c_ssl) & SSL_SENT_SHUTDOWN)
		return false;
	SSL_shutdown(c->c_ssl);
	return mk_conn_drain_wbio(c) > 0;
}

/* The connection ends: the close_notify, best effort, if not sent yet
 * (the socket is non-blocking and this is the last thing we write). */
static void conn_end_close_notify(struct mk_conn *c)
{
	if (!c->c_handshake_done || c->c_b2c.d_done)
		return;
	c->c_b2c.d_done = true;
	if (!c->c_ktls && (!c->c_ssl || c->c_csend_busy))
		return;
	if (mk_conn_close_notify(c))
		send(c->c_fd, mk_buf_head(&c->c_cout), mk_buf_used(&c->c_cout),
		     MSG_NOSIGNAL | MSG_DONTWAIT);
}

static void conn_free(struct mk_conn *c)
{
	struct mk_worker *w = c->c_worker;

	if (c->c_ops->h_free)
		c->c_ops->h_free(c);
	mk_metrics_state(c->c_listener->l_index, (int)c->c_state, -1);
	mk_metrics_add(c->c_listener->l_index, MK_M_BYTES_IN, c->c_c2b.d_bytes);
	mk_metrics_add(c->c_listener->l_index, MK_M_BYTES_OUT, c->c_b2c.d_bytes);
	if (c->c_tls_counted)
		mk_metrics_tls_down(c->c_ktls);
	mk_log_close(c->c_cfg->lc_name, &c->c_client, c->c_c2b.d_bytes, c->c_b2c.d_bytes,
		     mk_now_ms() - c->c_start_ms, c->c_end[0] ? c->c_end : "close");
	if (c->c_fd >= 0)
		close(c->c_fd);
	if (c->c_bfd >= 0)
		close(c->c_bfd);
	if (c->c_c2b.d_pipe)
		mk_worker_pipe_put(w, c->c_c2b.d_pipe);
	if (c->c_b2c.d_pipe)
		mk_worker_pipe_put(w, c->c_b2c.d_pipe);
	SSL_free(c->c_ssl);
	if (c->c_session) {
		OPENSSL_cleanse(c->c_session, sizeof(*c->c_session));
		free(c->c_session);
	}
	mk_buf_free(&c->c_cin);
	mk_buf_free(&c->c_cout);
	mk_buf_free(&c->c_bout);
	mk_buf_free(&c->c_bin);
	free(c->c_proxy_dst);
	free(c->c_crecv_own);
	free(c->c_brecv_own);
	mk_worker_release(w, c->c_listener);
	mk_runtime_put(c->c_rt);
	w->w_conns[c->c_slot] = NULL;
	w->w_nconns--;
	free(c);
}

/**
 * mk_conn_set_state() - move @c to another stage, counted for the metrics
 * @c:     the connection
 * @state: its new state
 */
void mk_conn_set_state(struct mk_conn *c, enum mk_conn_state state)
{
	mk_metrics_state(c->c_listener->l_index, (int)c->c_state, (int)state);
	c->c_state = state;
}

/* A handshake ended without TLS, and handshake.c did not say why. */
static void conn_count_handshake_failure(struct mk_conn *c)
{
	const char *why = c->c_end;

	if (c->c_handshake_failure_counted)
		return;
	c->c_handshake_failure_counted = true;
	if (!strncmp(why, "error:", 6))
		why += 6;
	if (!strcmp(why, "eof_before_tls"))
		why = "eof";
	mk_metrics_handshake_failed(c->c_listener->l_index, why[0] ? why : "close");
}

/**
 * mk_conn_end() - end the connection for the reason given
 * @c:   the connection
 * @why: the `end=` value of the close log line (printf format)
 *
 * The first reason wins. Sockets are shut down so that every queued
 * operation completes; conn_reap() frees it after the last one.
 */
void mk_conn_end(struct mk_conn *c, const char *why, ...)
{
	va_list ap;

	if (!c->c_end[0]) {
		va_start(ap, why);
		vsnprintf(c->c_end, sizeof(c->c_end), why, ap);
		va_end(ap);
	}
	if (c->c_state != MK_CS_CLOSING) {
		if (c->c_state == MK_CS_HANDSHAKE && !c->c_handshake_done)
			conn_count_handshake_failure(c);
		mk_conn_set_state(c, MK_CS_CLOSING);
		conn_end_close_notify(c);
		shutdown(c->c_fd, SHUT_RDWR);
		if (c->c_bfd >= 0)
			shutdown(c->c_bfd, SHUT_RDWR);
	}
}

/*
 * Free @c if it is closing and nothing is in flight; called after every
 * completion and by the timers, handlers never free. Return: true if @c
 * was freed.
 */
static bool conn_reap(struct mk_conn *c)
{
	if (c->c_state != MK_CS_CLOSING || c->c_inflight)
		return false;
	conn_free(c);
	return true;
}

/**
 * mk_conn_resume() - a wait of @c outside the ring is over
 * @c:  the connection
 * @op: what it waited for (MK_OP_KEYPROC: a key process answered)
 *
 * Hands the event to the stage in charge as a completion with result 0,
 * then finishes the connection if that closed it.
 */
void mk_conn_resume(struct mk_conn *c, enum mk_op op)
{
	if (c->c_ops->h_complete)
		c->c_ops->h_complete(c, op, 0);
	conn_reap(c);
}

/**
 * mk_conn_shutdown() - the agent is stopping: close with close_notify
 * @c: the connection
 */
void mk_conn_shutdown(struct mk_conn *c)
{
	mk_conn_end(c, "shutdown");
	conn_reap(c);
}

/**
 * mk_conn_tick() - the worker's one-second tick: enforce the pre-TLS,
 * handshake, backend-connect and idle deadlines
 * @c:   the connection (freed if it ends here with nothing in flight)
 * @now: mk_now_ms()
 */
void mk_conn_tick(struct mk_conn *c, uint64_t now)
{
	if (c->c_state == MK_CS_CLOSING)
		return;
	if (c->c_state == MK_CS_RELAY) {
		if (c->c_cfg->lc_idle_timeout_ms &&
		    now - c->c_last_ms >= c->c_cfg->lc_idle_timeout_ms)
			mk_conn_end(c, "timeout");
		else if (now - c->c_last_ms >= MK_IDLE_TRIM_MS && c->c_ops->h_idle)
			c->c_ops->h_idle(c);
		return;
	}
	if (c->c_deadline_ms && now >= c->c_deadline_ms) {
		if (c->c_ops->h_timeout)
			c->c_ops->h_timeout(c);
		else
			mk_conn_end(c, "timeout");
	}
	conn_reap(c);
}

/**
 * mk_conn_send_client() - send c->c_cout to the client unless a send is
 * already queued (its completion sends the rest)
 * @c: the connection
 */
void mk_conn_send_client(struct mk_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->c_csend_busy || !mk_buf_used(&c->c_cout) || c->c_state == MK_CS_CLOSING)
		return;
	sqe = mk_conn_sqe(c, MK_OP_CLIENT_SEND);
	if (!sqe) {
		mk_conn_end(c, "error:no_sqe");
		return;
	}
	io_uring_prep_send(sqe, c->c_fd, mk_buf_head(&c->c_cout), mk_buf_used(&c->c_cout),
			   MSG_NOSIGNAL);
	c->c_csend_busy = true;
}

/*
 * Queue a receive of at most @len bytes from @fd: into a buffer of the
 * worker's ring, which the kernel picks only when bytes are there, or into
 * a new own buffer *@own when there is no ring or it ran dry.
 */
static int conn_queue_recv(struct mk_conn *c, enum mk_op op, int fd, size_t len, uint8_t **own,
			   uint8_t nobufs)
{
	bool ring = c->c_worker->w_rbufs && nobufs < MK_RECV_NOBUFS_RETRIES;
	struct io_uring_sqe *sqe;

	if (!ring) {
		*own = malloc(len);
		if (!*own)
			return -ENOMEM;
	}
	sqe = mk_conn_sqe(c, op);
	if (!sqe) {
		free(*own);
		*own = NULL;
		return -EBUSY;
	}
	if (ring) {
		/* The length still bounds the read (the handover relies on it). */
		io_uring_prep_recv(sqe, fd, NULL, len, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = MK_RECV_BGID;
	} else {
		io_uring_prep_recv(sqe, fd, *own, len, 0);
	}
	return 0;
}

/* Which buffer a completed receive used; *@own is handed over to @rx. */
static void conn_rx_take(struct mk_conn *c, struct conn_rx *rx, int res, uint32_t flags,
			 uint8_t **own)
{
	rx->rx_len = res > 0 ? (size_t)res : 0;
	rx->rx_bid = -1;
	rx->rx_data = *own;
	*own = NULL;
	if (flags & IORING_CQE_F_BUFFER) {
		rx->rx_bid = (int)(flags >> IORING_CQE_BUFFER_SHIFT);
		rx->rx_data = mk_worker_rbuf(c->c_worker, (unsigned int)rx->rx_bid);
	}
}

static void conn_rx_release(struct mk_conn *c, struct conn_rx *rx)
{
	if (rx->rx_bid >= 0)
		mk_worker_rbuf_put(c->c_worker, (unsigned int)rx->rx_bid);
	else if (rx->rx_data)
		OPENSSL_clear_free(rx->rx_data, rx->rx_len);
	rx->rx_data = NULL;
	rx->rx_bid = -1;
}

/* Hand the received bytes to @b: in place when @b is empty, else after
 * what it already holds. Return: 0 or -ENOBUFS (past its limit). */
static int conn_rx_lend(struct conn_rx *rx, struct mk_buf *b)
{
	if (!mk_buf_used(b)) {
		mk_buf_borrow(b, rx->rx_data, rx->rx_len);
		return 0;
	}
	return mk_buf_append(b, rx->rx_data, rx->rx_len) ? -ENOBUFS : 0;
}

/* The stage is done with the bytes: keep only what it left unread, in
 * memory of @b's own, and give the receive buffer back. */
static int conn_rx_settle(struct mk_conn *c, struct conn_rx *rx, struct mk_buf *b)
{
	int err = mk_buf_unborrow(b);

	conn_rx_release(c, rx);
	return err;
}

/**
 * mk_conn_recv_client() - queue one receive from the client; its bytes
 * reach the stage in c->c_cin
 * @c: the connection
 */
void mk_conn_recv_client(struct mk_conn *c)
{
	size_t len;
	int err;

	if (c->c_crecv_busy || c->c_state == MK_CS_CLOSING)
		return;
	len = MK_RECV_CHUNK;
	/* Before a kTLS handover, never read past the record we wait for:
	 * what follows belongs to the kernel. */
	if (c->c_recv_limit && c->c_recv_limit < len)
		len = c->c_recv_limit;
	if (mk_buf_used(&c->c_cin) + len > c->c_cin.b_max) {
		mk_conn_end(c, "error:input_too_long");
		return;
	}
	err = conn_queue_recv(c, MK_OP_CLIENT_RECV, c->c_fd, len, &c->c_crecv_own,
			      c->c_crecv_nobufs);
	if (err) {
		mk_conn_end(c, err == -EBUSY ? "error:no_sqe" : "error:no_memory");
		return;
	}
	c->c_crecv_busy = true;
}

/**
 * mk_conn_send_backend() - send c->c_bout to the backend
 * @c: the connection
 */
void mk_conn_send_backend(struct mk_conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->c_bsend_busy || !mk_buf_used(&c->c_bout) || c->c_state == MK_CS_CLOSING)
		return;
	sqe = mk_conn_sqe(c, MK_OP_BACKEND_SEND);
	if (!sqe) {
		mk_conn_end(c, "error:no_sqe");
		return;
	}
	io_uring_prep_send(sqe, c->c_bfd, mk_buf_head(&c->c_bout), mk_buf_used(&c->c_bout),
			   MSG_NOSIGNAL);
	c->c_bsend_busy = true;
}

/**
 * mk_conn_recv_backend() - queue one receive from the backend; its bytes
 * reach the stage in c->c_bin
 * @c: the connection
 */
void mk_conn_recv_backend(struct mk_conn *c)
{
	int err;

	if (c->c_brecv_busy || c->c_state == MK_CS_CLOSING)
		return;
	if (mk_buf_used(&c->c_bin) + MK_RECV_CHUNK > c->c_bin.b_max) {
		mk_conn_end(c, "error:backend_buffer");
		return;
	}
	err = conn_queue_recv(c, MK_OP_BACKEND_RECV, c->c_bfd, MK_RECV_CHUNK, &c->c_brecv_own,
			      c->c_brecv_nobufs);
	if (err) {
		mk_conn_end(c, err == -EBUSY ? "error:no_sqe" : "error:no_memory");
		return;
	}
	c->c_brecv_busy = true;
}

/*
 * The first steps of a receive completion, alike for both sockets: take
 * the buffer, and when the ring had none queue the receive again (its
 * buffers come back as this batch of completions is handled, so the ring is
 * tried once more before an own buffer). Return: whether the stage is to
 * see the result.
 */
static bool conn_rx_begin(struct mk_conn *c, struct conn_rx *rx, int res, uint32_t flags,
			  uint8_t **own, uint8_t *nobufs, void (*again)(struct mk_conn *c))
{
	conn_rx_take(c, rx, res, flags, own);
	if (c->c_state == MK_CS_CLOSING)
		return false;
	if (res == -ENOBUFS) {
		(*nobufs)++;
		again(c);
		return false;
	}
	*nobufs = 0;
	return true;
}

static void conn_client_recv_done(struct mk_conn *c, int res, uint32_t flags)
{
	struct conn_rx rx;

	c->c_crecv_busy = false;
	if (!conn_rx_begin(c, &rx, res, flags, &c->c_crecv_own, &c->c_crecv_nobufs,
			   mk_conn_recv_client))
		goto out_release;
	if (res < 0) {
		mk_conn_end(c, res == -ECONNRESET ? "reset" : "error:recv:%s", strerror(-res));
		goto out_release;
	}
	if (res == 0) {
		if (c->c_ops->h_client_eof)
			c->c_ops->h_client_eof(c);
		else
			mk_conn_end(c, c->c_handshake_done ? "eof" : "error:eof_before_tls");
		goto out_release;
	}
	if (conn_rx_lend(&rx, &c->c_cin)) {
		mk_conn_end(c, "error:input_too_long");
		goto out_release;
	}
	c->c_last_ms = mk_now_ms();
	if (c->c_ops->h_client_input)
		c->c_ops->h_client_input(c);
	if (conn_rx_settle(c, &rx, &c->c_cin))
		mk_conn_end(c, "error:no_memory");
	return;

out_release:
	conn_rx_release(c, &rx);
}

static void conn_client_send_done(struct mk_conn *c, int res)
{
	c->c_csend_busy = false;
	if (c->c_state == MK_CS_CLOSING)
		return;
	if (res <= 0) {
		mk_conn_end(c, res == -ECONNRESET || res == -EPIPE ? "reset" : "error:send:%s",
			    strerror(-res));
		return;
	}
	mk_buf_consume(&c->c_cout, (size_t)res);
	c->c_last_ms = mk_now_ms();
	if (mk_buf_used(&c->c_cout)) {
		mk_conn_send_client(c);
		return;
	}
	if (c->c_ops->h_client_sent)
		c->c_ops->h_client_sent(c);
}

static void conn_backend_send_done(struct mk_conn *c, int res)
{
	c->c_bsend_busy = false;
	if (c->c_state == MK_CS_CLOSING)
		return;
	if (res <= 0) {
		mk_conn_end(c, "error:backend_send:%s", strerror(-res));
		return;
	}
	mk_buf_consume(&c->c_bout, (size_t)res);
	c->c_last_ms = mk_now_ms();
	if (mk_buf_used(&c->c_bout)) {
		mk_conn_send_backend(c);
		return;
	}
	if (c->c_ops->h_backend_sent)
		c->c_ops->h_backend_sent(c);
}

static void conn_backend_recv_done(struct mk_conn *c, int res, uint32_t flags)
{
	struct conn_rx rx;

	c->c_brecv_busy = false;
	if (!conn_rx_begin(c, &rx, res, flags, &c->c_brecv_own, &c->c_brecv_nobufs,
			   mk_conn_recv_backend))
		goto out_release;
	if (res < 0) {
		mk_conn_end(c, "error:backend_recv:%s", strerror(-res));
		goto out_release;
	}
	if (res > 0) {
		if (conn_rx_lend(&rx, &c->c_bin)) {
			mk_conn_end(c, "error:backend_buffer");
			goto out_release;
		}
		c->c_last_ms = mk_now_ms();
	} else {
		c->c_b2c.d_eof = true;
	}
	if (c->c_ops->h_backend_input)
		c->c_ops->h_backend_input(c);
	if (conn_rx_settle(c, &rx, &c->c_bin))
		mk_conn_end(c, "error:no_memory");
	return;

out_release:
	conn_rx_release(c, &rx);
}

/**
 * mk_conn_complete() - one completion for @c
 * @w:     its worker
 * @c:     the connection
 * @op:    what completed
 * @res:   the CQE result
 * @flags: the CQE flags (which receive buffer)
 */
void mk_conn_complete(struct mk_worker *w, struct mk_conn *c, enum mk_op op, int res,
		      uint32_t flags)
{
	c->c_inflight--;
	switch (op) {
	case MK_OP_CLIENT_RECV:
		conn_client_recv_done(c, res, flags);
		break;
	case MK_OP_CLIENT_SEND:
		conn_client_send_done(c, res);
		break;
	case MK_OP_BACKEND_SEND:
		conn_backend_send_done(c, res);
		break;
	case MK_OP_BACKEND_RECV:
		conn_backend_recv_done(c, res, flags);
		break;
	default:
		if (c->c_ops->h_complete)
			c->c_ops->h_complete(c, op, res);
		break;
	}
	/* Whatever the handler did, a closing connection with nothing in
	 * flight is finished now. */
	conn_reap(c);
}
