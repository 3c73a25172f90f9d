// SPDX-License-Identifier: GPL-2.0
/*
 * The connection to the daemon behind the agent: TCP or unix socket, with
 * the PROXY v2 header first when the listener asks for it, so that the
 * daemon logs the real client and (Dovecot) counts the session as secured.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "log.h"
#include "proxy_v2.h"
#include "registry.h"
#include "relay_rekey.h"
#include "stage.h"

static void backend_complete(struct mk_conn *c, enum mk_op op, int res);
static void backend_timeout(struct mk_conn *c);

static const struct mk_conn_ops backend_ops = {
	.h_complete = backend_complete,
	.h_timeout = backend_timeout,
	.h_free = mk_rekey_free,	/* the traffic secrets kept at the handover */
};

/* What was left out to fit the daemon's limit: a debug line, never an error. */
static void backend_log_omitted(const struct mk_conn *c, unsigned int omitted, ssize_t len)
{
	char names[96] = "", addr[80];
	unsigned int bit;
	size_t off = 0;

	for (bit = 1; bit <= PP2_SEND_ALL; bit <<= 1)
		if ((omitted & bit) && mk_proxy_v2_tlv_name(bit) && off < sizeof(names))
			off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s",
						off ? "," : "", mk_proxy_v2_tlv_name(bit));
	mk_log(LOG_DEBUG, "proxy_header listener=%s client=%s len=%zd max=%u omitted=%s",
	       c->c_cfg->lc_name, mk_sockaddr_str(&c->c_client, addr, sizeof(addr)), len,
	       c->c_cfg->lc_proxy_header_max, names);
}

/*
 * The header is built within the listener's proxy_header_max, leaving TLVs
 * out rather than failing: the client chooses the SNI's length, and a daemon
 * that reads fewer bytes drops the whole connection. It goes out in one
 * buffer, as daemons read it with one read or peek.
 */
static int backend_proxy_header(struct mk_conn *c)
{
	const struct mk_session *s = c->c_session;
	struct mk_proxy_info pi;
	uint8_t hdr[PP2_HEADER_MAX];
	unsigned int omitted;
	struct mk_buf nb;
	ssize_t len;

	mk_proxy_v2_session_info(&pi, s, mk_protocol_name(c->c_cfg->lc_protocol));
	len = mk_proxy_v2_encode_within(hdr, sizeof(hdr), &pi, c->c_cfg->lc_proxy_tlvs,
					c->c_cfg->lc_proxy_header_max, &omitted);
	if (len < 0)
		return (int)len;
	if (omitted)
		backend_log_omitted(c, omitted, len);
	/* The header goes before anything already queued for the backend
	 * (plaintext the client pipelined behind its Finished). */
	mk_buf_init(&nb, c->c_bout.b_max);
	if (mk_buf_append(&nb, hdr, (size_t)len) ||
	    mk_buf_append(&nb, mk_buf_head(&c->c_bout), mk_buf_used(&c->c_bout))) {
		mk_buf_free(&nb);
		return -ENOBUFS;
	}
	mk_buf_free(&c->c_bout);
	c->c_bout = nb;
	return 0;
}

/**
 * mk_backend_connect() - start connecting to the listener's backend
 * @c: the connection, TLS established
 */
void mk_backend_connect(struct mk_conn *c)
{
	const struct mk_sockaddr *b = &c->c_cfg->lc_backend;
	struct io_uring_sqe *sqe;
	int err, one = 1;

	mk_conn_set_state(c, MK_CS_CONNECTING);
	c->c_ops = &backend_ops;
	c->c_deadline_ms = mk_now_ms() + c->c_cfg->lc_handshake_timeout_ms;
	if (c->c_cfg->lc_proxy_v2) {
		err = backend_proxy_header(c);
		if (err) {
			mk_conn_end(c, "error:proxy_header:%s", strerror(-err));
			return;
		}
	}
	c->c_bfd = socket(b->sa_storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->c_bfd < 0) {
		mk_conn_end(c, "error:backend_socket:%s", strerror(errno));
		return;
	}
	if (b->sa_storage.ss_family != AF_UNIX)
		setsockopt(c->c_bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	sqe = mk_conn_sqe(c, MK_OP_BACKEND_CONNECT);
	if (!sqe) {
		mk_conn_end(c, "error:no_sqe");
		return;
	}
	io_uring_prep_connect(sqe, c->c_bfd, (const struct sockaddr *)&b->sa_storage, b->sa_len);
}

static void backend_register(struct mk_conn *c)
{
	struct mk_session *s = c->c_session;
	socklen_t len = sizeof(s->ss_backend_local);
	struct stat st;

	getsockname(c->c_bfd, (struct sockaddr *)&s->ss_backend_local, &len);
	if (!fstat(c->c_bfd, &st))
		s->ss_backend_inode = st.st_ino;
	c->c_registry_id = mk_registry_add(s, c->c_fd, c->c_bfd);
	/* The registry has its own copy; keep the connection small. */
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
	c->c_session = NULL;
}

static void backend_timeout(struct mk_conn *c)
{
	mk_conn_end(c, "error:backend_timeout");
}

/* The connect completed: @res is 0 or a negative errno. */
static void backend_connected(struct mk_conn *c, int res)
{
	char addr[80];

	if (c->c_state == MK_CS_CLOSING)
		return;
	if (res < 0) {
		mk_log_limited(MK_LOG_BACKEND, LOG_ERR, "backend listener=%s client=%s backend=%s: %s",
			       c->c_cfg->lc_name, mk_sockaddr_str(&c->c_client, addr, sizeof(addr)),
			       c->c_cfg->lc_backend.sa_text, strerror(-res));
		mk_conn_end(c, "error:backend:%s", strerror(-res));
		return;
	}
	/* The relay, which starts now, owns the registry entry. */
	backend_register(c);
	mk_conn_set_state(c, MK_CS_RELAY);
	c->c_deadline_ms = 0;
	c->c_last_ms = mk_now_ms();
	mk_relay_start(c);
}

static void backend_complete(struct mk_conn *c, enum mk_op op, int res)
{
	if (op == MK_OP_BACKEND_CONNECT)
		backend_connected(c, res);
}
