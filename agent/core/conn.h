/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One client connection, from accept to close. Owned by exactly one worker;
 * never touched by another thread.
 *
 *   accept -> [PROXY v2 from a balancer] -> [pretls: STARTTLS dialogue]
 *          -> handshake -> handover
 *          -> connect backend (+ PROXY v2) -> relay -> closing
 *
 * conn.c holds the life cycle (accept, timeouts, the one way out) and the
 * I/O primitives (receive, send, the SQEs of a connection). The stages
 * (stage.h) each install a handler table, struct mk_conn_ops, on the
 * connection; conn.c hands every event to the table in force and knows no
 * stage by name.
 */
#ifndef MAILKTLS_CONN_H
#define MAILKTLS_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "session.h"
#include "tls_record.h"
#include "worker.h"

enum mk_conn_state {
	MK_CS_PRETLS,
	MK_CS_HANDSHAKE,
	MK_CS_CONNECTING,
	MK_CS_RELAY,
	MK_CS_CLOSING,
	MK_CS_PROXY,		/* reading a load balancer's PROXY v2 header */
};

struct mk_conn;
/* State of one stage, known only to it; freed by its h_free. */
struct mk_pretls;
struct mk_capfilter;

/*
 * What the stage in charge does with the connection's events. A NULL
 * handler: the event needs nothing from this stage (timeout and client EOF
 * then end the connection). Every handler may call mk_conn_end(); none
 * frees the connection.
 */
struct mk_conn_ops {
	void (*h_client_input)(struct mk_conn *c);	/* bytes in c_cin */
	void (*h_client_eof)(struct mk_conn *c);	/* the client closed TCP */
	void (*h_client_sent)(struct mk_conn *c);	/* c_cout all sent */
	void (*h_backend_input)(struct mk_conn *c);	/* bytes in c_bin, or c_b2c.d_eof */
	void (*h_backend_sent)(struct mk_conn *c);	/* c_bout all sent */
	/* Completion of an operation the stage queued itself (connect,
	 * poll, splice). */
	void (*h_complete)(struct mk_conn *c, enum mk_op op, int res);
	void (*h_timeout)(struct mk_conn *c);		/* c_deadline_ms passed */
	void (*h_idle)(struct mk_conn *c);		/* relaying, quiet for a while */
	/* The connection is being freed: what the stage holds goes too. */
	void (*h_free)(struct mk_conn *c);
};

/* One direction of the relay. */
struct mk_dir {
	struct mk_pipe *d_pipe;		/* held only while bytes are in it */
	size_t d_in_pipe;		/* bytes in d_pipe */
	bool d_eof;			/* source finished */
	bool d_done;			/* destination shut for writing */
	bool d_busy;			/* an op of this direction is queued */
	bool d_started;			/* user-space relay: first read done */
	uint64_t d_bytes;
};

struct mk_conn {
	struct mk_worker *c_worker;
	uint32_t c_slot;
	uint32_t c_gen;
	struct mk_listener *c_listener;
	const struct mk_listener_cfg *c_cfg;	/* valid while c_rt is held */
	struct mk_runtime *c_rt;		/* reference held */
	enum mk_conn_state c_state;
	const struct mk_conn_ops *c_ops;	/* the stage in charge */
	int c_fd;				/* client */
	int c_bfd;				/* backend, -1 until connected */
	unsigned int c_inflight;		/* SQEs not yet completed */

	/* Before the handover only; freed after it. */
	SSL *c_ssl;
	BIO *c_rbio, *c_wbio;
	struct mk_pretls *c_pretls;		/* starttls.c */
	struct mk_session *c_session;
	struct mk_buf c_cin;			/* from client, not yet used */
	struct mk_buf c_cout;			/* to client (ciphertext or cleartext) */
	struct mk_buf c_bout;			/* to backend */
	struct mk_buf c_bin;			/* from backend */
	struct mk_capfilter *c_filter;		/* relay.c; NULL once done */
	bool c_csend_busy, c_crecv_busy, c_bsend_busy, c_brecv_busy;
	/* A receive goes into a buffer of the worker's ring; when the ring
	 * ran dry twice in a row, into one of the connection's own. */
	uint8_t *c_crecv_own, *c_brecv_own;	/* own buffer of the receive in flight */
	uint8_t c_crecv_nobufs, c_brecv_nobufs;	/* the ring was empty, times in a row */

	bool c_ktls;				/* record layer in the kernel */
	bool c_starttls_pending;		/* handshake after c_cout is sent */
	bool c_handshake_done;
	bool c_tls_counted;			/* in the metrics' TLS gauges */
	bool c_handshake_failure_counted;
	bool c_close_after_send;		/* a final alert or reply is queued */
	size_t c_recv_limit;			/* 0: no limit */
	uint64_t c_tx_seq, c_rx_seq;		/* records after the handshake */
	unsigned int c_tls13_post_records;	/* sent with the final flight */
	struct mk_tls_rx c_tls_rx;		/* the client's records in relay */
	struct mk_rekey *c_rekey;		/* TLS 1.3 on kTLS: secrets for KeyUpdate */

	struct mk_dir c_c2b, c_b2c;
	struct sockaddr_storage c_client;	/* for the log lines */
	/* Where the client connected, from a balancer's PROXY header; only
	 * behind one, until the handover copies it. */
	struct sockaddr_storage *c_proxy_dst;
	uint64_t c_start_ms;
	uint64_t c_deadline_ms;			/* handshake/pretls/connect deadline */
	uint64_t c_last_ms;			/* last relay activity */
	uint64_t c_registry_id;
	char c_end[96];				/* why it ended, first reason wins */
};

/* conn.c */
void mk_conn_set_entry(enum mk_tls_mode tls, int (*start)(struct mk_conn *c));
void mk_conn_set_proxy_entry(int (*start)(struct mk_conn *c));
void mk_conn_accepted(struct mk_worker *w, struct mk_listener *l, int fd);
int mk_conn_begin(struct mk_conn *c);
void mk_conn_complete(struct mk_worker *w, struct mk_conn *c, enum mk_op op, int res,
		      uint32_t flags);
void mk_conn_end(struct mk_conn *c, const char *why, ...) __attribute__((format(printf, 2, 3)));
void mk_conn_set_state(struct mk_conn *c, enum mk_conn_state state);
void mk_conn_tick(struct mk_conn *c, uint64_t now);
void mk_conn_shutdown(struct mk_conn *c);
void mk_conn_resume(struct mk_conn *c, enum mk_op op);
int mk_conn_drain_wbio(struct mk_conn *c);
bool mk_conn_close_notify(struct mk_conn *c);
struct io_uring_sqe *mk_conn_sqe(struct mk_conn *c, enum mk_op op);
void mk_conn_send_client(struct mk_conn *c);
void mk_conn_recv_client(struct mk_conn *c);
void mk_conn_send_backend(struct mk_conn *c);
void mk_conn_recv_backend(struct mk_conn *c);

#endif
