// SPDX-License-Identifier: GPL-2.0
/*
 * Postfix writes {client_addr} as "203.0.113.9" or "2001:db8::1" (Sendmail
 * as "IPv6:2001:db8::1") and {client_port} as a decimal port; behind
 * mailktlsd both come from the agent's PROXY v2 header.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "mailktls.h"
#include "lookup.h"

/**
 * mk_lookup_client() - the client's address from the MTA's macros
 * @addr: {client_addr}, may be NULL
 * @port: {client_port}, may be NULL
 * @ss:   receives an AF_INET or AF_INET6 address with the port
 *
 * Return: 0; -ENOENT when a macro is missing; -EINVAL when either is
 * malformed (port 0 included: Postfix sends it for a local submission).
 */
int mk_lookup_client(const char *addr, const char *port, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	unsigned long p;
	char *end;

	if (!addr || !port || !*addr || !*port)
		return -ENOENT;
	errno = 0;
	p = strtoul(port, &end, 10);
	if (*end || errno || p < 1 || p > 65535 || port[0] < '0' || port[0] > '9')
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)p);
		return 0;
	}
	if (!strncasecmp(addr, "IPv6:", 5))
		addr += 5;
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)p);
		return 0;
	}
	return -EINVAL;
}

/**
 * mk_lookup_clause() - ask libmailktls (the module, then the agent's query
 * socket) for the clause of this client's connection
 * @ss:     from mk_lookup_client()
 * @clause: receives "tls TLS_AES_256_GCM_SHA384" (or "tls 0x1302")
 * @len:    its size, MK_LOOKUP_CLAUSE_MAX is enough
 * @source: receives who answered, for the log
 *
 * Return: the clause's length; -ENOENT when no one knows the connection;
 * -ETIMEDOUT when the agent did not answer in time; another negative errno.
 */
int mk_lookup_clause(const struct sockaddr_storage *ss, char *clause, size_t len,
		     const char **source)
{
	struct mailktls_info info;
	socklen_t sl;
	int err;

	sl = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	err = mailktls_query_addr((const struct sockaddr *)ss, sl, &info);
	if (err)
		return err;
	*source = info.mi_source == MAILKTLS_FROM_MODULE ? "module" : "query_socket";
	return mailktls_received_clause(&info, clause, len);
}
