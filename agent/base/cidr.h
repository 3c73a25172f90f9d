/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Address ranges as operators write them ("10.0.0.0/8", "2001:db8::/32"),
 * for the list of load balancers a listener takes PROXY headers from.
 */
#ifndef MAILKTLS_CIDR_H
#define MAILKTLS_CIDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#define MK_CIDRS_MAX 32		/* ranges in one list */

struct mk_cidr {
	sa_family_t ci_family;		/* AF_INET or AF_INET6 */
	uint8_t ci_prefix;		/* 0..32 or 0..128 */
	uint8_t ci_addr[16];		/* network order; 4 bytes used for AF_INET */
};

struct mk_cidrs {
	struct mk_cidr cs_net[MK_CIDRS_MAX];
	unsigned int cs_n;
};

/**
 * mk_cidr_parse() - one range: "ADDR/PREFIX", or a bare address (/32, /128)
 * @s:   the text, NUL-terminated
 * @out: the range
 *
 * Host bits set beyond the prefix ("10.1.2.3/8") are refused: such a value
 * is usually a typo for a narrower range than the one it would mean.
 *
 * Return: 0, or -EINVAL.
 */
int mk_cidr_parse(const char *s, struct mk_cidr *out);

/**
 * mk_cidrs_match() - is @sa inside one of the ranges of @set?
 * @set: the ranges
 * @sa:  an AF_INET or AF_INET6 address; an IPv4-mapped IPv6 address
 *       (::ffff:a.b.c.d, what a dual-stack socket reports) is matched
 *       against the IPv4 ranges as a.b.c.d
 *
 * Return: true if it is, false otherwise (and for any other family).
 */
bool mk_cidrs_match(const struct mk_cidrs *set, const struct sockaddr *sa);

#endif
