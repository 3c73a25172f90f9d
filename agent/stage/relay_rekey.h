/* SPDX-License-Identifier: GPL-2.0 */
/*
 * TLS 1.3 KeyUpdate on kernel TLS (relay_rekey.c): the two traffic secrets
 * a connection keeps from the handover on, and what the relay calls when
 * the kernel hands it a KeyUpdate. The secrets live from the handover to
 * the end, so every stage that holds the connection meanwhile (handshake,
 * backend, relay) frees them in its h_free: mk_rekey_free() is idempotent.
 */
#ifndef MAILKTLS_RELAY_REKEY_H
#define MAILKTLS_RELAY_REKEY_H

#include <stdbool.h>

#include <openssl/ssl.h>

#include "conn.h"
#include "tls_keys.h"

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

#endif
