/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Logging: plain messages, and the two key=value lines per connection that
 * operators parse (the `tls` and `close` lines, whose fields mailktlsd(8)
 * lists: keep them stable). Secrets never come here.
 */
#ifndef MAILKTLS_LOG_H
#define MAILKTLS_LOG_H

#include <stdint.h>
#include <syslog.h>

#include "config.h"
#include "session.h"

void mk_log_ident(const char *name);
void mk_log_open(enum mk_log_target target);
void mk_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Lines one event per connection can repeat: each kind is rate-limited on
 * its own (MK_LOG_BURST a second), then one "suppressed N kind=K" line.
 */
enum mk_log_kind {
	MK_LOG_ACCEPT,		/* accept(2) failed */
	MK_LOG_REFUSED,		/* "refused listener=... reason=..." */
	MK_LOG_HANDSHAKE,	/* "handshake failed ..." */
	MK_LOG_BACKEND,		/* the backend connect failed */
	MK_LOG_PROXY,		/* "proxy_refused listener=... reason=..." */
	MK_LOG_NKINDS,
};

#define MK_LOG_BURST 5
#define MK_LOG_WINDOW_MS 1000

void mk_log_limited(enum mk_log_kind kind, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void mk_log_limited_flush(void);

/* "tls listener=... client=... version=... cipher=... group=... sni=... alpn=... ktls=..." */
void mk_log_tls(const struct mk_session *s);

/* "close listener=... client=... bytes_in=... bytes_out=... duration=... end=..." */
void mk_log_close(const char *listener, const struct sockaddr_storage *client,
		  uint64_t bytes_in, uint64_t bytes_out, uint64_t duration_ms, const char *end);

#endif
