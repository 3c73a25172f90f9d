/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The stages of a connection and how each is entered. Each stage installs
 * its handler table (struct mk_conn_ops) when it takes over, keeps its
 * state to itself (freed through the table's h_free), then hands the
 * connection to the next one; none calls back into an earlier one:
 *
 *   proxy_in.c   a load balancer's PROXY v2 header (accept_proxy)
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

#include "conn.h"

/* proxy_in.c */
int mk_proxy_in_start(struct mk_conn *c);

/* starttls.c */
int mk_starttls_start(struct mk_conn *c);

/* handshake.c */
int mk_handshake_start(struct mk_conn *c);

/* handover.c */
void mk_handover(struct mk_conn *c);

/* backend.c */
void mk_backend_connect(struct mk_conn *c);

/* relay.c */
void mk_relay_start(struct mk_conn *c);

#endif
