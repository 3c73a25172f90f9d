/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Addresses as text, "ip:port": the one format of the configuration, the
 * log lines and the query socket protocol, shared by the agent, the
 * milter, mailktlsctl and libmailktls. Static inline for the same reason
 * as mk_genl.h. IPv4-mapped IPv6 addresses are written and compared as
 * IPv4, so a daemon listening on [::] finds an agent that connected over
 * IPv4, and a log line names the client as the query socket does.
 */
#ifndef MAILKTLS_MK_ADDR_H
#define MAILKTLS_MK_ADDR_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* Copy with truncation; @dst is always terminated (@len > 0). */
static inline void mk_strlcpy(char *dst, const char *src, size_t len)
{
	size_t n = strnlen(src, len - 1);

	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* IPv4-mapped IPv6 to IPv4; other addresses unchanged. */
static inline void mk_addr_unmap(const struct sockaddr *sa, struct sockaddr_storage *out)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	struct sockaddr_in *sin = (struct sockaddr_in *)out;

	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET6 && IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		sin->sin_family = AF_INET;
		sin->sin_port = sin6->sin6_port;
		memcpy(&sin->sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
	} else if (sa->sa_family == AF_INET) {
		memcpy(out, sa, sizeof(struct sockaddr_in));
	} else if (sa->sa_family == AF_INET6) {
		memcpy(out, sa, sizeof(struct sockaddr_in6));
	}
}

/* Same address and port (the IPv6 scope and flow label do not count). */
static inline bool mk_addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	struct sockaddr_storage x, y;
	const struct sockaddr_in6 *x6 = (const struct sockaddr_in6 *)&x;
	const struct sockaddr_in6 *y6 = (const struct sockaddr_in6 *)&y;
	const struct sockaddr_in *x4 = (const struct sockaddr_in *)&x;
	const struct sockaddr_in *y4 = (const struct sockaddr_in *)&y;

	mk_addr_unmap(a, &x);
	mk_addr_unmap(b, &y);
	if (x.ss_family != y.ss_family)
		return false;
	if (x.ss_family == AF_INET)
		return x4->sin_port == y4->sin_port && x4->sin_addr.s_addr == y4->sin_addr.s_addr;
	if (x.ss_family == AF_INET6)
		return x6->sin6_port == y6->sin6_port &&
		       !memcmp(&x6->sin6_addr, &y6->sin6_addr, sizeof(x6->sin6_addr));
	return false;
}

/* "1.2.3.4:5" or "[::1]:5".  Return: 0, -EAFNOSUPPORT or -ENOSPC. */
static inline int mk_addr_format(const struct sockaddr *sa, char *buf, size_t len)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	char ip[INET6_ADDRSTRLEN];
	int n;

	mk_addr_unmap(sa, &ss);
	if (ss.ss_family == AF_INET) {
		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		n = snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		n = snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		return -EAFNOSUPPORT;
	}
	return n > 0 && (size_t)n < len ? 0 : -ENOSPC;
}

/**
 * mk_sockaddr_str() - mk_addr_format() for a log line
 * @ss:  the address
 * @buf: output
 * @len: its size
 *
 * Return: @buf, "-" in it when the address has no text.
 */
static inline char *mk_sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	if (mk_addr_format((const struct sockaddr *)ss, buf, len))
		snprintf(buf, len, "-");
	return buf;
}

/* Inverse of mk_addr_format(); @s is NUL-terminated.  Return: 0 or -EINVAL. */
static inline int mk_addr_parse(const char *s, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	bool v6 = *s == '[';
	const char *colon, *start = v6 ? s + 1 : s;
	char ip[INET6_ADDRSTRLEN];
	unsigned long port;
	char *end;
	size_t n;

	memset(ss, 0, sizeof(*ss));
	colon = v6 ? strstr(start, "]:") : strrchr(s, ':');
	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - start);
	if (v6)
		colon++;
	if (!n || n >= sizeof(ip) || colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	memcpy(ip, start, n);
	ip[n] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || port > 65535)
		return -EINVAL;
	if (!v6 && inet_pton(AF_INET, ip, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		return 0;
	}
	if (v6 && inet_pton(AF_INET6, ip, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		return 0;
	}
	return -EINVAL;
}

/* "TLSv1.2", "TLSv1.3", ... or "unknown". */
static inline const char *mk_tls_version_name(uint16_t version)
{
	switch (version) {
	case 0x0301:
		return "TLSv1";
	case 0x0302:
		return "TLSv1.1";
	case 0x0303:
		return "TLSv1.2";
	case 0x0304:
		return "TLSv1.3";
	default:
		return "unknown";
	}
}

#endif
