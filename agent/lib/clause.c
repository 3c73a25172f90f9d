// SPDX-License-Identifier: GPL-2.0
/*
 * libmailktls: the RFC 8314 section 4.3 Received clause.
 *
 *   tls-cipher-clause = CFWS "tls" FWS tls-cipher
 *   tls-cipher-name   = ALPHA *(ALPHA / DIGIT / "_")
 *   tls-cipher-hex    = "0x" 4HEXDIG
 *
 * The caller's header provides the CFWS before "tls"; we write one space as
 * the FWS.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mailktls.h"
#include "mk_addr.h"

#define MK_API __attribute__((visibility("default")))

/* A name usable as tls-cipher-name; anything else goes out in hex. */
static int mk_cipher_name_ok(const char *s)
{
	if (!isalpha((unsigned char)*s))
		return 0;
	for (s++; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	return 1;
}

/**
 * mailktls_received_clause() - the RFC 8314 section 4.3 Received clause
 * @info: a query answer
 * @buf:  receives "tls NAME" or "tls 0xHHHH"
 * @len:  size of @buf
 *
 * Return: the length written, -ENOSPC, or -EINVAL.
 */
MK_API int mailktls_received_clause(const struct mailktls_info *info, char *buf, size_t len)
{
	int n;

	if (!info || !buf)
		return -EINVAL;
	if (len)
		buf[0] = '\0';
	if (mk_cipher_name_ok(info->mi_cipher))
		n = snprintf(buf, len, "tls %s", info->mi_cipher);
	else if (info->mi_cipher_id)
		n = snprintf(buf, len, "tls 0x%04X", info->mi_cipher_id);
	else
		return -EINVAL;
	if (n < 0 || (size_t)n >= len) {
		if (len)
			buf[0] = '\0';
		return -ENOSPC;
	}
	return n;
}

/**
 * mailktls_version_name() - printable TLS version
 * @version: 0x0303, 0x0304, ...
 * Return: a static string.
 */
MK_API const char *mailktls_version_name(uint16_t version)
{
	return mk_tls_version_name(version);
}
