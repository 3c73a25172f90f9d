// SPDX-License-Identifier: GPL-2.0
/*
 * Address ranges: parsing and matching, byte-wise so that one loop serves
 * both families.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "cidr.h"

/* "/N" with 1 to 3 digits, N <= @max; "" means the full length. */
static int parse_prefix(const char *s, unsigned int max, uint8_t *out)
{
	unsigned int n = 0;
	size_t i;

	if (!*s) {
		*out = (uint8_t)max;
		return 0;
	}
	if (*s++ != '/' || !*s || strlen(s) > 3)
		return -EINVAL;
	for (i = 0; s[i]; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		n = n * 10 + (unsigned int)(s[i] - '0');
	}
	if (n > max)
		return -EINVAL;
	*out = (uint8_t)n;
	return 0;
}

/* Do the first @prefix bits of @a and @b agree? */
static bool prefix_equal(const uint8_t *a, const uint8_t *b, unsigned int prefix)
{
	unsigned int full = prefix / 8, rest = prefix % 8;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));

	if (memcmp(a, b, full))
		return false;
	return !rest || !((a[full] ^ b[full]) & mask);
}

static bool host_bits_clear(const struct mk_cidr *c)
{
	unsigned int bits = c->ci_family == AF_INET ? 32 : 128, i;

	for (i = c->ci_prefix; i < bits; i++)
		if (c->ci_addr[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

/**
 * mk_cidr_parse() - one range: "ADDR/PREFIX", or a bare address (/32, /128)
 * @s:   the text, NUL-terminated
 * @out: the range
 *
 * Host bits set beyond the prefix ("10.1.2.3/8") are refused: such a value
 * is usually a typo for a narrower range than the one it would mean.
 *
 * Return: 0, or -EINVAL (bad address, bad prefix, host bits set).
 */
int mk_cidr_parse(const char *s, struct mk_cidr *out)
{
	char host[INET6_ADDRSTRLEN];
	size_t hlen = strcspn(s, "/");
	unsigned int max;

	memset(out, 0, sizeof(*out));
	if (!hlen || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hlen);
	host[hlen] = '\0';
	if (inet_pton(AF_INET, host, out->ci_addr) == 1)
		out->ci_family = AF_INET;
	else if (inet_pton(AF_INET6, host, out->ci_addr) == 1)
		out->ci_family = AF_INET6;
	else
		return -EINVAL;
	max = out->ci_family == AF_INET ? 32 : 128;
	if (parse_prefix(s + hlen, max, &out->ci_prefix) || !host_bits_clear(out))
		return -EINVAL;
	return 0;
}

/**
 * mk_cidrs_match() - is @sa inside one of the ranges of @set?
 * @set: the ranges
 * @sa:  an AF_INET or AF_INET6 address; an IPv4-mapped IPv6 address is
 *       matched against the IPv4 ranges
 *
 * Return: true if it is, false otherwise (and for any other family).
 */
bool mk_cidrs_match(const struct mk_cidrs *set, const struct sockaddr *sa)
{
	const struct sockaddr_in6 *s6 = (const void *)sa;
	const struct sockaddr_in *s4 = (const void *)sa;
	const uint8_t *addr;
	sa_family_t fam = sa->sa_family;
	unsigned int i;

	if (fam == AF_INET) {
		addr = (const uint8_t *)&s4->sin_addr;
	} else if (fam == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
		fam = AF_INET;
		addr = s6->sin6_addr.s6_addr + 12;
	} else if (fam == AF_INET6) {
		addr = s6->sin6_addr.s6_addr;
	} else {
		return false;
	}
	for (i = 0; i < set->cs_n && i < MK_CIDRS_MAX; i++)
		if (set->cs_net[i].ci_family == fam &&
		    prefix_equal(set->cs_net[i].ci_addr, addr, set->cs_net[i].ci_prefix))
			return true;
	return false;
}
