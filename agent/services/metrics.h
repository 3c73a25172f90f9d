/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Counters for monitoring, and their Prometheus text exposition.
 *
 * Workers count as things happen (atomics, no lock on the hot path: a few
 * updates per connection); the metrics thread reads them when scraped.
 * Labelled counters whose labels come from the TLS session (version and
 * cipher, handshake failure reasons) live in a small table under one mutex,
 * taken once per handshake.
 */
#ifndef MAILKTLS_METRICS_H
#define MAILKTLS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* Connection states as the gauge names them (enum mk_conn_state order). */
#define MK_METRICS_NSTATES 6

enum mk_metric {
	MK_M_ACCEPTED,			/* connections accepted */
	MK_M_REFUSED_MAX,		/* refused: listener's max_connections */
	MK_M_REFUSED_CEILING,		/* refused: the descriptor ceiling */
	MK_M_HANDSHAKES,		/* TLS established */
	MK_M_STARTTLS,			/* STARTTLS/STLS upgrades begun */
	MK_M_AUTH_REFUSED,		/* cleartext logins refused */
	MK_M_PROXY_REFUSED,		/* accept_proxy: closed before TLS */
	MK_M_ACCEPT_PAUSES,		/* accept paused: out of descriptors/memory */
	MK_M_BYTES_IN,			/* plaintext from clients */
	MK_M_BYTES_OUT,			/* plaintext to clients */
	MK_M_KEYUPDATE_RECEIVED,	/* TLS 1.3 KeyUpdates read on kTLS */
	MK_M_KEYUPDATE_SENT,		/* ours, answering update_requested */
	MK_M_KEYUPDATE_REFUSED,		/* closed for one: no rekey, rate limit */
	MK_M_NCOUNTERS,
};

/* Remember the listener names for the labels. */
void mk_metrics_set_listeners(const struct mk_config *cfg);

/* Add @n to counter @m of listener @li. */
void mk_metrics_add(int li, enum mk_metric m, uint64_t n);

/* A connection of listener @li moved from state @from to @to (-1: none). */
void mk_metrics_state(int li, int from, int to);

/* TLS established on listener @li: version, IANA cipher, and where the
 * records are (kernel both ways or user space), for the gauges. */
void mk_metrics_tls_up(int li, const char *version, const char *cipher, const char *group,
		       bool ktls);
/* ... and ended. */
void mk_metrics_tls_down(bool ktls);

/* A runtime was built (@delta 1) or freed (-1): the live runtimes gauge. */
void mk_metrics_runtime(int delta);

/* A handshake on listener @li failed; @reason is a short token. */
void mk_metrics_handshake_failed(int li, const char *reason);

/**
 * mk_metrics_render() - the whole exposition, text format 0.0.4
 * @out:    receives malloc()ed text (the caller frees it)
 *
 * Return: its length, or -ENOMEM.
 */
long mk_metrics_render(char **out);

/**
 * mk_metrics_parse_request() - is this the start of an HTTP request for
 * the metrics? (fuzz target)
 * @buf: the bytes received so far
 * @len: their number
 *
 * Return: 200 for "GET /metrics" or "GET /", 404 for another path, 405 for
 * another method, 400 for a malformed request line, 0 when the request
 * line is not complete yet.
 */
int mk_metrics_parse_request(const char *buf, size_t len);

/**
 * mk_metrics_server_start() - serve GET /metrics at @addr on a thread
 * @addr: a loopback TCP address or a unix socket
 *
 * Return: 0, or a negative errno.
 */
int mk_metrics_server_start(const struct mk_sockaddr *addr);
void mk_metrics_server_stop(void);

#endif
