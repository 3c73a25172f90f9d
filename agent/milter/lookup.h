/* SPDX-License-Identifier: GPL-2.0 */
/*
 * From the MTA's {client_addr} and {client_port} macros to the RFC 8314
 * section 4.3 clause of the client's connection through mailktlsd.
 */
#ifndef MAILKTLS_MILTER_LOOKUP_H
#define MAILKTLS_MILTER_LOOKUP_H

#include <stddef.h>
#include <sys/socket.h>

/* "tls " + a cipher name of at most 63 octets, or "tls 0x1302" */
#define MK_LOOKUP_CLAUSE_MAX 96

int mk_lookup_client(const char *addr, const char *port, struct sockaddr_storage *ss);
int mk_lookup_clause(const struct sockaddr_storage *ss, char *clause, size_t len,
		     const char **source);

#endif
