// SPDX-License-Identifier: GPL-2.0
/*
 * Key-exchange groups (see tls_groups.h).
 *
 * OpenSSL 3.0 names a group it knows by NID and SSL_group_to_name() gives
 * its TLS name; a group from a provider (3.0) or one without a NID (3.5's
 * ML-KEM hybrids) comes back from SSL_get_negotiated_group() as
 * TLSEXT_nid_unknown | code point. 3.2 and later answer the name directly
 * (SSL_get0_group_name()).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "tls_groups.h"

/* Names in a list: "a:b", 3.5's tuples "a/b", prefixes '?' (ignore if
 * unknown), '*' (send a key share) and '-' (remove). */
#define GROUP_SEPARATORS ":/"

/* Does OpenSSL know the single group @name? */
static int group_known(SSL_CTX *ctx, const char *name, size_t len)
{
	char one[64];

	while (len && strchr("?*-", *name)) {
		name++;
		len--;
	}
	if (len == 0)
		return 1;	/* "?" alone: the list's syntax is OpenSSL's to judge */
	if (len >= sizeof(one))
		return 0;
	memcpy(one, name, len);
	one[len] = '\0';
	return SSL_CTX_set1_groups_list(ctx, one) == 1;
}

int mk_tls_groups_check(const char *list, char *bad, size_t badlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *p = list;
	int ret = 0;

	if (!ctx)
		return -ENOMEM;
	if (SSL_CTX_set1_groups_list(ctx, list) == 1)
		goto out;
	ret = -EINVAL;
	snprintf(bad, badlen, "%s", list);
	while (*p) {
		size_t len = strcspn(p, GROUP_SEPARATORS);

		if (p[0] != '?' && !group_known(ctx, p, len)) {
			snprintf(bad, badlen, "%.*s", (int)len, p);
			break;
		}
		p += len;
		p += strspn(p, GROUP_SEPARATORS);
	}
out:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return ret;
}

void mk_tls_group_name(SSL *ssl, char *out, size_t len)
{
	int nid = SSL_get_negotiated_group(ssl);
	const char *name = NULL;

	if (!nid) {
		snprintf(out, len, "%s", "");
		return;
	}
#if OPENSSL_VERSION_NUMBER >= 0x30200000L
	name = SSL_get0_group_name(ssl);
#endif
	if (!name)
		name = SSL_group_to_name(ssl, nid);
	if (name)
		snprintf(out, len, "%s", name);
	else
		snprintf(out, len, "0x%04x", (unsigned int)(nid & 0xffff));
}
