/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The stages of a connection and what they call of each other. Each stage
 * installs its handler table (struct mk_conn_ops) when it takes over, then
 * hands the connection to the next one:
 *
 *   starttls.c   the cleartext dialogue of a STARTTLS listener
 *   handshake.c  the TLS handshake, OpenSSL over memory BIOs
 *   handover.c   the keys to kernel TLS, the `tls` log line
 *   backend.c    the connection to the daemon, PROXY v2, registry entry
 *   relay.c      the bytes both ways: OpenSSL in user space, or splice
 *                (relay_splice.c) once the kernel has the record layer
 *
 * main.c tells conn.c which stage a new connection starts in.
 */
#ifndef MAILKTLS_STAGE_H
#define MAILKTLS_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conn.h"
#include "tls_keys.h"

/* starttls.c */
int mk_starttls_start(struct mk_conn *c);

/* handshake.c */
unsigned int mk_tls_count_records(const uint8_t *buf, size_t len, size_t *partial);
int mk_handshake_start(struct mk_conn *c);

/* handover.c */
void mk_handover(struct mk_conn *c);

/* backend.c */
void mk_backend_connect(struct mk_conn *c);
void mk_backend_release(struct mk_conn *c);

/* relay_rekey.c */
enum mk_rekey_res {
	MK_REKEY_OK,		/* new receive keys set: go on */
	MK_REKEY_REFUSED,	/* this connection cannot rekey: internal_error */
	MK_REKEY_RATE,		/* over the rate limit: close */
	MK_REKEY_FAILED,	/* the kernel took no keys: internal_error */
	MK_REKEY_ENDED,		/* the connection was ended */
};
int mk_rekey_attach(struct mk_conn *c, SSL *ssl, unsigned int rx_updates, bool tx_updated,
		    bool tx_pending, struct mk_tls_dir_keys *rx, struct mk_tls_dir_keys *tx);
enum mk_rekey_res mk_rekey_received(struct mk_conn *c, bool requested);
int mk_rekey_tx_resume(struct mk_conn *c);
void mk_rekey_free(struct mk_conn *c);

/* relay.c, relay_splice.c */
void mk_relay_start(struct mk_conn *c);
void mk_relay_close_notify(struct mk_conn *c);
void mk_relay_splice_eof(struct mk_conn *c, bool c2b);
void mk_relay_splice_start(struct mk_conn *c);
void mk_relay_splice_complete(struct mk_conn *c, enum mk_op op, int res);

#endif
