/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Logging: plain messages, and the two key=value lines per connection that
 * operators parse (DESIGN.md, "Log"). Secrets never come here.
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

/* "tls listener=... client=... version=... cipher=... group=... sni=... alpn=... ktls=..." */
void mk_log_tls(const struct mk_session *s);

/* "close listener=... client=... bytes_in=... bytes_out=... duration=... end=..." */
void mk_log_close(const char *listener, const struct sockaddr_storage *client,
		  uint64_t bytes_in, uint64_t bytes_out, uint64_t duration_ms, const char *end);

#endif
