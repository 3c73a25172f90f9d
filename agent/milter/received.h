/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Received header mailktls-milter inserts for the hop MUA -> mailktlsd
 * (RFC 5321 section 4.4, with the RFC 8314 section 4.3 "tls" clause).
 */
#ifndef MAILKTLS_MILTER_RECEIVED_H
#define MAILKTLS_MILTER_RECEIVED_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <time.h>

/* A host name of RFC 5321 is at most 255 octets; HELO names longer are not used. */
#define MK_RCV_DOMAIN_MAX 255
/* Longest header value we build: well within RFC 5322's 998-octet lines. */
#define MK_RCV_VALUE_MAX 900

struct mk_received {
	const char *rv_helo;		/* HELO/EHLO argument, from the network */
	const char *rv_client_name;	/* verified reverse name, NULL or "unknown" */
	const struct sockaddr_storage *rv_client; /* AF_INET or AF_INET6 */
	const char *rv_by;		/* this host ({j}) */
	bool rv_auth;			/* the client authenticated (ESMTPSA) */
	const char *rv_clause;		/* "tls TLS_AES_256_GCM_SHA384" */
	time_t rv_time;
};

bool mk_rcv_domain_ok(const char *s);
bool mk_rcv_clause_ok(const char *s);
int mk_rcv_build(const struct mk_received *rv, char *buf, size_t len);

#endif
