/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PROXY v2 from a load balancer in front of the agent (accept_proxy): the
 * header is read before anything else, only from a peer inside the
 * listener's trusted_proxies, and its client address replaces the
 * balancer's for the log lines, the registry and the header the agent
 * sends on to its own backend.
 */
#ifndef MAILKTLS_PROXY_IN_H
#define MAILKTLS_PROXY_IN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * Largest header accepted, TLVs included. The spec allows 16 + 65535
 * bytes; balancers send the addresses and a few small TLVs (haproxy's
 * unique-id, a cloud's endpoint id: tens of bytes; haproxy's SSL TLVs with
 * a client certificate's CN: a few hundred). Twice Dovecot's own limit
 * leaves room for those and keeps a bound on what a peer makes us hold.
 */
#define MK_PROXY_IN_MAX 3072

/* What a valid header says. */
struct mk_proxy_in {
	bool pn_local;				/* LOCAL: keep the socket's addresses */
	struct sockaddr_storage pn_client;	/* PROXY: the balancer's client */
	struct sockaddr_storage pn_dest;	/* ... and the address it connected to */
};

/**
 * mk_proxy_in_parse() - judge one whole header from a trusted balancer
 * @buf:    the header, exactly (mk_proxy_v2_wanted() returned 0 for it)
 * @len:    its length
 * @out:    what it says
 * @reason: on failure, the token for the log line ("malformed",
 *          "unsupported_address")
 *
 * The LOCAL command (a balancer's health check) is valid whatever its
 * address block holds, and means: use the connection's own endpoints.
 * The PROXY command must carry TCP over IPv4 or IPv6: UNSPEC, UNIX and
 * datagram addresses have no meaning for a mail client.
 *
 * Return: 0, or -EINVAL.
 */
int mk_proxy_in_parse(const uint8_t *buf, size_t len, struct mk_proxy_in *out,
		      const char **reason);

#endif
