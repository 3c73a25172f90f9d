/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel-TLS transport of the relay (relay.c): both directions by
 * splice. It reports the end of a direction to its caller rather than
 * calling back, so relay.c alone decides what follows.
 */
#ifndef MAILKTLS_RELAY_SPLICE_H
#define MAILKTLS_RELAY_SPLICE_H

#include "conn.h"

enum mk_splice_end {
	MK_SPLICE_GOING,	/* nothing ended (or the connection did) */
	MK_SPLICE_END_C2B,	/* the client's close_notify or FIN */
	MK_SPLICE_END_B2C,	/* the daemon's EOF */
};

void mk_relay_splice_start(struct mk_conn *c);
enum mk_splice_end mk_relay_splice_complete(struct mk_conn *c, enum mk_op op, int res);

#endif
