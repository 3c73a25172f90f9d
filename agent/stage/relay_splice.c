// SPDX-License-Identifier: GPL-2.0
/*
 * Zero-copy relay for kernel TLS connections: for each direction,
 *
 *   POLL_ADD(src, POLLIN) -> SPLICE(src -> pipe) -> SPLICE(pipe -> dst)
 *     -> SPLICE(src -> pipe) -> ... until src has nothing: POLL_ADD again
 *
 * The pipe is borrowed from the worker's pool after the poll fires and
 * returned when the source runs dry, so an idle connection holds no pipe.
 * While data streams, the next splice is tried straight away: a poll per
 * record would cost a third more operations.
 *
 * The sockets are non-blocking and io_uring hands a splice that would
 * block back as -EAGAIN: reading, we wait for POLLIN; writing (the peer
 * is slow), for POLLOUT on the destination. Never by retrying at once,
 * which would spin.
 *
 * The kernel cannot splice a record that is not application data: the
 * splice fails (EINVAL on 6.1) and the record is read with its type
 * (ktls.c); tls_record.c says what it calls for. close_notify ends the
 * client's direction; other alerts end the connection; a well-formed
 * KeyUpdate is followed where the kernel can rekey (relay_rekey.c says how
 * the order of records is kept both ways) and ends the connection with
 * internal_error where it cannot (Linux before 6.14); a malformed control
 * record gets the alert RFC 8446 names. Errors the kernel's record layer
 * reports by errno get the alert the errno identifies (bad_record_mac,
 * record_overflow).
 *
 * While a handshake message is split across records, the next record is
 * spliced one byte at a time into the pipe, never further: a record that
 * splices is application data between the fragments and is dropped. A
 * kernel that can rekey stops decrypting after a record that begins a
 * KeyUpdate; when the message goes on in the next record, TLS_RX is set
 * again to the same keys to let it read on.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ktls.h"
#include "log.h"
#include "relay_rekey.h"
#include "relay_splice.h"
#include "tls_record.h"

#define MK_SPLICE_LEN (256 * 1024)
#define MK_TLS_MAX_PLAINTEXT 16384	/* a whole record: never half of one */

struct splice_ops {
	enum mk_op so_poll, so_in, so_out, so_wpoll;
};

static const struct splice_ops c2b_ops = {
	MK_OP_POLL_C2B, MK_OP_SPLICE_IN_C2B, MK_OP_SPLICE_OUT_C2B, MK_OP_WPOLL_C2B
};
static const struct splice_ops b2c_ops = {
	MK_OP_POLL_B2C, MK_OP_SPLICE_IN_B2C, MK_OP_SPLICE_OUT_B2C, MK_OP_WPOLL_B2C
};

static bool splice_is_c2b(enum mk_op op)
{
	return op == MK_OP_POLL_C2B || op == MK_OP_SPLICE_IN_C2B || op == MK_OP_SPLICE_OUT_C2B ||
	       op == MK_OP_WPOLL_C2B;
}

static void splice_poll(struct mk_conn *c, struct mk_dir *d, int fd, enum mk_op op,
			unsigned int events)
{
	struct io_uring_sqe *sqe = mk_conn_sqe(c, op);

	if (!sqe) {
		mk_conn_end(c, "error:no_sqe");
		return;
	}
	io_uring_prep_poll_add(sqe, fd, events);
	d->d_busy = true;
}

static void splice_arm_poll(struct mk_conn *c, struct mk_dir *d, int src, const struct splice_ops *o)
{
	if (d->d_busy || d->d_eof || c->c_state != MK_CS_RELAY)
		return;
	splice_poll(c, d, src, o->so_poll, POLLIN | POLLRDHUP);
}

/**
 * mk_relay_splice_start() - let both directions splice as far as they may
 * @c: a kTLS connection in relay
 *
 * Backend -> client waits while the capability filter is active;
 * client -> backend while bytes queued for the backend are unsent.
 */
void mk_relay_splice_start(struct mk_conn *c)
{
	if (!c->c_filter && !mk_buf_used(&c->c_cout) && !c->c_csend_busy && !c->c_brecv_busy)
		splice_arm_poll(c, &c->c_b2c, c->c_bfd, &b2c_ops);
	if (!mk_buf_used(&c->c_bout) && !c->c_bsend_busy && !c->c_c2b.d_done)
		splice_arm_poll(c, &c->c_c2b, c->c_fd, &c2b_ops);
}

static void splice_queue_flags(struct mk_conn *c, struct mk_dir *d, enum mk_op op, int in,
			       int out, unsigned int len, unsigned int flags)
{
	struct io_uring_sqe *sqe = mk_conn_sqe(c, op);

	if (!sqe) {
		mk_conn_end(c, "error:no_sqe");
		return;
	}
	io_uring_prep_splice(sqe, in, -1, out, -1, len, SPLICE_F_MOVE | flags);
	d->d_busy = true;
}

static void splice_queue(struct mk_conn *c, struct mk_dir *d, enum mk_op op, int in, int out,
			 unsigned int len)
{
	splice_queue_flags(c, d, op, in, out, len, SPLICE_F_NONBLOCK);
}

static void splice_release_pipe(struct mk_conn *c, struct mk_dir *d)
{
	if (d->d_pipe) {
		mk_worker_pipe_put(c->c_worker, d->d_pipe);
		d->d_pipe = NULL;
	}
}

/*
 * A fatal alert, then close (no close_notify after it). After a record
 * error the kernel may have marked the socket (tls_err_abort(): EBADMSG),
 * and a socket error fails every later send, the alert's too: reading
 * SO_ERROR clears it.
 */
static void splice_fatal(struct mk_conn *c, uint8_t alert, const char *why)
{
	socklen_t len = sizeof(int);
	int soerr;

	getsockopt(c->c_fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
	mk_ktls_send_alert(c->c_fd, 2, alert);
	c->c_b2c.d_done = true;
	mk_conn_end(c, "error:%s", why);
}

/* An errno of the kernel's record layer: answer it. False if not one. */
static bool splice_record_error(struct mk_conn *c, int err)
{
	int alert = mk_tls_errno_alert(err);

	if (alert < 0)
		return false;
	splice_fatal(c, (uint8_t)alert, alert == MK_TLS_ALERT_BAD_RECORD_MAC ? "bad_record_mac" :
									   "record_overflow");
	return true;
}

/*
 * splice() from a kTLS socket returns 0 at the end of the stream, but also
 * for a zero-length application data record (legal in TLS 1.2 and 1.3): the
 * kernel consumes it and splices nothing. Only a real end reads 0 again.
 */
static bool splice_client_at_eof(struct mk_conn *c)
{
	union {
		char cu_buf[CMSG_SPACE(sizeof(uint8_t))];
		struct cmsghdr cu_align;
	} cu;
	uint8_t byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = cu.cu_buf,	/* so a control record peeks too */
		.msg_controllen = sizeof(cu.cu_buf),
	};

	/* an empty record (its type in a cmsg) is not the end either */
	return recvmsg(c->c_fd, &msg, MSG_PEEK | MSG_DONTWAIT) == 0 && !msg.msg_controllen;
}

/* The client's direction is at its end: relay.c finishes it. */
static enum mk_splice_end splice_end_c2b(struct mk_conn *c, const char *how)
{
	if (!c->c_end[0])
		snprintf(c->c_end, sizeof(c->c_end), "%s", how);
	c->c_c2b.d_eof = true;
	return MK_SPLICE_END_C2B;
}

/* A well-formed KeyUpdate: follow it, or end the connection as it says. */
static void splice_key_update(struct mk_conn *c)
{
	switch (mk_rekey_received(c, c->c_tls_rx.rx_ku_requested)) {
	case MK_REKEY_OK:
		splice_arm_poll(c, &c->c_c2b, c->c_fd, &c2b_ops);
		break;
	case MK_REKEY_REFUSED:
		splice_fatal(c, MK_TLS_ALERT_INTERNAL_ERROR, "key_update_unsupported");
		break;
	case MK_REKEY_RATE:
		c->c_b2c.d_done = true;
		mk_conn_end(c, "error:key_update_rate");
		break;
	case MK_REKEY_FAILED:
		splice_fatal(c, MK_TLS_ALERT_INTERNAL_ERROR, "key_update_failed");
		break;
	case MK_REKEY_ENDED:
		break;
	}
}

/*
 * A fragment that starts a KeyUpdate stopped a kernel that can rekey: the
 * rest of the message comes under the same keys.
 */
static bool splice_fragment_resume(struct mk_conn *c, bool starts_key_update)
{
	char why[64];
	int err;

	if (!starts_key_update || !mk_ktls_can_rekey())
		return true;
	err = mk_ktls_rx_resume(c->c_fd);
	if (!err)
		return true;
	snprintf(why, sizeof(why), "key_update_fragment:%s", strerror(-err));
	splice_fatal(c, MK_TLS_ALERT_INTERNAL_ERROR, why);
	return false;
}

/* A record splice could not take: read it with its type and act on it. */
static enum mk_splice_end splice_control_record(struct mk_conn *c)
{
	bool starts_ku;
	uint8_t buf[MK_TLS_MAX_PLAINTEXT], type = 0, alert = 0;
	char why[64];
	int version;
	ssize_t n;

	n = mk_ktls_recv_record(c->c_fd, buf, sizeof(buf), &type);
	if (n < 0 && n != -EAGAIN) {
		if (!splice_record_error(c, (int)n))
			mk_conn_end(c, "error:tls_recv:%s", strerror((int)-n));
		return MK_SPLICE_GOING;
	}
	if (n == 0 && type == 0)	/* TCP end of stream, no close_notify */
		return splice_end_c2b(c, "eof");
	version = mk_ktls_rx_version(c->c_fd);
	if (version < 0) {
		mk_conn_end(c, "error:tls_version:%s", strerror(-version));
		return MK_SPLICE_GOING;
	}
	/*
	 * splice refused a record at the head, yet none is there: the
	 * kernel's record parser stopped at a header it refused (EINVAL,
	 * consumed by the splice: a version other than 0x0303).
	 */
	if (n == -EAGAIN) {
		splice_fatal(c, mk_tls_header_alert((uint16_t)version), "bad_record_header");
		return MK_SPLICE_GOING;
	}
	starts_ku = type == MK_TLS_CT_HANDSHAKE && n > 0 && buf[0] == MK_TLS_HS_KEY_UPDATE &&
		    !mk_tls_rx_pending(&c->c_tls_rx);
	switch (mk_tls_control_record(&c->c_tls_rx, (uint16_t)version, type, buf, (size_t)n,
				      &alert)) {
	case MK_TLS_CTL_MORE:
		if (splice_fragment_resume(c, starts_ku))
			splice_arm_poll(c, &c->c_c2b, c->c_fd, &c2b_ops);
		break;
	case MK_TLS_CTL_CLOSE_NOTIFY:
		snprintf(c->c_end, sizeof(c->c_end), "close_notify");
		return splice_end_c2b(c, "close_notify");
	case MK_TLS_CTL_PEER_ALERT:
		c->c_b2c.d_done = true;
		mk_conn_end(c, "error:alert:%u", alert);
		break;
	case MK_TLS_CTL_WARNING:
		mk_ktls_send_alert(c->c_fd, 1, alert);
		splice_arm_poll(c, &c->c_c2b, c->c_fd, &c2b_ops);
		break;
	case MK_TLS_CTL_KEY_UPDATE:
		splice_key_update(c);
		break;
	case MK_TLS_CTL_FATAL:
		snprintf(why, sizeof(why), "bad_control_record:type=%u:alert=%u", type, alert);
		splice_fatal(c, alert, why);
		break;
	}
	return MK_SPLICE_GOING;
}

/* Application data between handshake fragments: empty the pipe of it. */
static void splice_unexpected_data(struct mk_conn *c, struct mk_dir *d, int res)
{
	uint8_t sink[64];
	ssize_t n;

	while (res > 0 && (n = read(d->d_pipe->p_fd[0], sink, sizeof(sink))) > 0)
		res -= (int)n;
	splice_release_pipe(c, d);
	splice_fatal(c, MK_TLS_ALERT_UNEXPECTED_MESSAGE, "bad_control_record:type=23:alert=10");
}

static enum mk_splice_end splice_in_done(struct mk_conn *c, struct mk_dir *d, bool c2b, int res)
{
	const struct splice_ops *o = c2b ? &c2b_ops : &b2c_ops;
	int dst = c2b ? c->c_bfd : c->c_fd;

	if (res > 0 && c2b && mk_tls_rx_pending(&c->c_tls_rx)) {
		splice_unexpected_data(c, d, res);
		return MK_SPLICE_GOING;
	}
	if (res > 0) {
		d->d_in_pipe = (size_t)res;
		splice_queue(c, d, o->so_out, d->d_pipe->p_fd[0], dst, (unsigned int)res);
		return MK_SPLICE_GOING;
	}
	splice_release_pipe(c, d);
	if (res == 0 && c2b && !splice_client_at_eof(c)) {
		splice_arm_poll(c, d, c->c_fd, o);
	} else if (res == 0) {
		if (c2b && !c->c_end[0])
			snprintf(c->c_end, sizeof(c->c_end), "eof");
		d->d_eof = true;
		return c2b ? MK_SPLICE_END_C2B : MK_SPLICE_END_B2C;
	} else if (res == -EAGAIN) {
		splice_arm_poll(c, d, c2b ? c->c_fd : c->c_bfd, o);
	} else if (c2b && splice_record_error(c, res)) {
		return MK_SPLICE_GOING;
	} else if (c2b && (res == -EINVAL || res == -EIO)) {
		return splice_control_record(c);
	} else if (res == -ECONNRESET) {
		mk_conn_end(c, c2b ? "reset" : "error:backend_reset");
	} else {
		mk_conn_end(c, "error:splice:%s", strerror(-res));
	}
	return MK_SPLICE_GOING;
}

static void splice_out_done(struct mk_conn *c, struct mk_dir *d, bool c2b, int res)
{
	const struct splice_ops *o = c2b ? &c2b_ops : &b2c_ops;
	int dst = c2b ? c->c_bfd : c->c_fd;

	if (res <= 0) {
		if (res == -EAGAIN) {
			splice_poll(c, d, dst, o->so_wpoll, POLLOUT);
			return;
		}
		splice_release_pipe(c, d);
		mk_conn_end(c, c2b ? "error:backend_send:%s" : "reset%.0s", strerror(-res));
		return;
	}
	d->d_in_pipe -= (size_t)res;
	d->d_bytes += (uint64_t)res;
	c->c_last_ms = mk_now_ms();
	if (d->d_in_pipe) {
		splice_queue(c, d, o->so_out, d->d_pipe->p_fd[0], dst, (unsigned int)d->d_in_pipe);
		return;
	}
	/* nothing of ours on the way to the client: a pending KeyUpdate may go */
	if (!c2b && mk_rekey_tx_resume(c))
		return;
	/* Streaming: try the next chunk now; -EAGAIN brings the poll back. */
	splice_queue(c, d, o->so_in, c2b ? c->c_fd : c->c_bfd, d->d_pipe->p_fd[1], MK_SPLICE_LEN);
}

static void splice_wpoll_done(struct mk_conn *c, struct mk_dir *d, bool c2b, int res)
{
	const struct splice_ops *o = c2b ? &c2b_ops : &b2c_ops;

	if (res < 0) {
		splice_release_pipe(c, d);
		mk_conn_end(c, "error:poll:%s", strerror(-res));
		return;
	}
	splice_queue(c, d, o->so_out, d->d_pipe->p_fd[0], c2b ? c->c_bfd : c->c_fd,
		     (unsigned int)d->d_in_pipe);
}

static void splice_poll_done(struct mk_conn *c, struct mk_dir *d, bool c2b, int res)
{
	const struct splice_ops *o = c2b ? &c2b_ops : &b2c_ops;
	int src = c2b ? c->c_fd : c->c_bfd;

	if (res < 0) {
		mk_conn_end(c, "error:poll:%s", strerror(-res));
		return;
	}
	d->d_pipe = mk_worker_pipe_get(c->c_worker);
	if (!d->d_pipe) {
		mk_conn_end(c, "error:no_pipe");
		return;
	}
	/*
	 * A kTLS socket can poll readable while only part of a record is in:
	 * a non-blocking splice would then fail and the poll fire again at
	 * once. This one may wait (in io_uring's worker) for the record.
	 */
	splice_queue_flags(c, d, o->so_in, src, d->d_pipe->p_fd[1],
			   c2b && mk_tls_rx_pending(&c->c_tls_rx) ? 1 : MK_SPLICE_LEN, 0);
}

/**
 * mk_relay_splice_complete() - a poll or splice of the relay completed
 * @c:   the connection
 * @op:  which
 * @res: its result
 *
 * Return: the direction whose source reached its end (close_notify or FIN
 * from the client, EOF from the daemon), for relay.c to finish, or
 * MK_SPLICE_GOING.
 */
enum mk_splice_end mk_relay_splice_complete(struct mk_conn *c, enum mk_op op, int res)
{
	bool c2b = splice_is_c2b(op);
	struct mk_dir *d = c2b ? &c->c_c2b : &c->c_b2c;

	d->d_busy = false;
	if (c->c_state == MK_CS_CLOSING) {
		splice_release_pipe(c, d);
		return MK_SPLICE_GOING;
	}
	switch (op) {
	case MK_OP_POLL_C2B:
	case MK_OP_POLL_B2C:
		splice_poll_done(c, d, c2b, res);
		break;
	case MK_OP_SPLICE_IN_C2B:
	case MK_OP_SPLICE_IN_B2C:
		return splice_in_done(c, d, c2b, res);
	case MK_OP_SPLICE_OUT_C2B:
	case MK_OP_SPLICE_OUT_B2C:
		splice_out_done(c, d, c2b, res);
		break;
	case MK_OP_WPOLL_C2B:
	case MK_OP_WPOLL_B2C:
		splice_wpoll_done(c, d, c2b, res);
		break;
	default:
		break;
	}
	return MK_SPLICE_GOING;
}
