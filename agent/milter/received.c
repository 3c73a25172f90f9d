// SPDX-License-Identifier: GPL-2.0
/*
 * The Received header value (what follows "Received:"), RFC 5321 section 4.4:
 *
 *   Stamp       = From-domain By-domain Opt-info [CFWS] ";" FWS date-time
 *   From-domain = "FROM" FWS Extended-Domain
 *   By-domain   = CFWS "BY" FWS Extended-Domain
 *   Opt-info    = [Via] [With] [ID] [For] [Additional-Registered-Clauses]
 *
 * We write
 *
 *   from HELO (NAME [ADDR])
 *           by HOST (mailktls) with ESMTPS[A] tls CIPHER;
 *           Tue, 01 Dec 2026 08:00:00 +0000
 *
 * "with" comes before the additional registered clause "tls", as Opt-info
 * orders them; "(mailktls)" is a comment (CFWS). Folded lines end in "\n"
 * followed by a tab, as milters pass them. The HELO name and the reverse
 * name come from the network: anything that is not a domain by RFC 5321's
 * grammar is left out, so nothing the client sends can end the line, open
 * a comment or add a clause.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "received.h"

/*
 * Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str]:
 * letters, digits and inner hyphens, labels of 1 to 63 octets.
 */
static bool mk_rcv_label_ok(const char *s, size_t n)
{
	size_t i;

	if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/**
 * mk_rcv_domain_ok() - is @s a Domain of RFC 5321 section 4.1.2?
 * @s: NUL-terminated candidate, may be NULL
 *
 * Return: true when every label is letters, digits and inner hyphens, 1 to
 * 63 octets, and the whole name at most MK_RCV_DOMAIN_MAX octets.
 */
bool mk_rcv_domain_ok(const char *s)
{
	const char *dot;
	size_t total;

	if (!s)
		return false;
	total = strnlen(s, MK_RCV_DOMAIN_MAX + 1);
	if (total == 0 || total > MK_RCV_DOMAIN_MAX)
		return false;
	for (;;) {
		dot = strchr(s, '.');
		if (!mk_rcv_label_ok(s, dot ? (size_t)(dot - s) : strlen(s)))
			return false;
		if (!dot)
			return true;
		s = dot + 1;
	}
}

/**
 * mk_rcv_clause_ok() - is @s an RFC 8314 section 4.3 clause, "tls" FWS
 * tls-cipher, as mailktls_received_clause() writes it?
 * @s: NUL-terminated candidate, may be NULL
 *
 * Return: true for "tls NAME" (ALPHA *(ALPHA / DIGIT / "_")) or
 * "tls 0xHHHH".
 */
bool mk_rcv_clause_ok(const char *s)
{
	size_t i;

	if (!s || strncmp(s, "tls ", 4))
		return false;
	s += 4;
	if (s[0] == '0' && s[1] == 'x') {
		for (i = 2; i < 6; i++)
			if (!isxdigit((unsigned char)s[i]))
				return false;
		return s[6] == '\0';
	}
	if (!isalpha((unsigned char)*s) || strlen(s) > 64)
		return false;
	for (s++; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/*
 * "[203.0.113.9]" or "[IPv6:2001:db8::1]" (RFC 5321 address literal) of
 * @ss into @buf. Return: the length written; -EAFNOSUPPORT for another
 * family; -ENOSPC when @buf is too small.
 */
static int rcv_address_literal(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];
	int n;

	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
	else
		return -EAFNOSUPPORT;
	n = snprintf(buf, len, "[%s%s]", ss->ss_family == AF_INET6 ? "IPv6:" : "", ip);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

/* RFC 5322 date-time in the C locale the milter runs in. */
static int mk_rcv_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm))
		return -EINVAL;
	return 0;
}

/**
 * mk_rcv_build() - the Received header value for one message
 * @rv:  what to say; rv_by and rv_clause must be valid (mk_rcv_domain_ok(),
 *       mk_rcv_clause_ok()), rv_helo and rv_client_name are checked here
 * @buf: receives the value without "Received:", NUL-terminated
 * @len: size of @buf
 *
 * A HELO name that is no Domain is replaced by the client's address
 * literal; a reverse name that is none is left out of the TCP-info.
 *
 * Return: the length written; -EINVAL when rv_by, rv_clause or the client
 * address is unusable; -ENOSPC when @buf is too small.
 */
int mk_rcv_build(const struct mk_received *rv, char *buf, size_t len)
{
	char lit[INET6_ADDRSTRLEN + 8], date[64];
	const char *from, *name;
	int n;

	if (!mk_rcv_domain_ok(rv->rv_by) || !mk_rcv_clause_ok(rv->rv_clause))
		return -EINVAL;
	if (rcv_address_literal(rv->rv_client, lit, sizeof(lit)) < 0)
		return -EINVAL;
	if (mk_rcv_date(rv->rv_time, date, sizeof(date)))
		return -EINVAL;
	from = mk_rcv_domain_ok(rv->rv_helo) ? rv->rv_helo : lit;
	name = rv->rv_client_name;
	if (name && (!strcmp(name, "unknown") || !mk_rcv_domain_ok(name)))
		name = NULL;
	n = snprintf(buf, len, "from %s (%s%s%s)\n\tby %s (mailktls) with %s %s;\n\t%s",
		     from, name ? name : "", name ? " " : "", lit, rv->rv_by,
		     rv->rv_auth ? "ESMTPSA" : "ESMTPS", rv->rv_clause, date);
	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return n;
}
