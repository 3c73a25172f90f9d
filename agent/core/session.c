// SPDX-License-Identifier: GPL-2.0
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/un.h>

#include "session.h"

/**
 * mk_sockaddr_str() - "203.0.113.9:51234", "[2001:db8::1]:993" or "unix:/path"
 * @ss:  the address
 * @buf: output
 * @len: its size
 *
 * Return: @buf.
 */
char *mk_sockaddr_str(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	switch (ss->ss_family) {
	case AF_INET: {
		const struct sockaddr_in *in = (const void *)ss;

		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(in->sin_port));
		break;
	}
	case AF_INET6: {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
		break;
	}
	case AF_UNIX:
		snprintf(buf, len, "unix:%s", ((const struct sockaddr_un *)ss)->sun_path);
		break;
	default:
		snprintf(buf, len, "-");
	}
	return buf;
}
