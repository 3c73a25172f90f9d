// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the incoming PROXY v2 path of accept_proxy
 * listeners, driven the way proxy_in.c reads a socket: ask
 * mk_proxy_v2_wanted() how many bytes to read, take exactly that many from
 * the input, repeat, then judge the whole header with mk_proxy_in_parse().
 * Besides memory safety it checks that the reader never takes a byte past
 * the header nor more than MK_PROXY_IN_MAX, and that an accepted header
 * says what the decoder says.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_in.h"
#include "proxy_v2.h"

/* An accepted PROXY command carries a TCP client of one IP family. */
static void check_accepted(const uint8_t *hdr, size_t len, const struct mk_proxy_in *pn)
{
	static struct mk_proxy_decoded d;

	if (mk_proxy_v2_decode(hdr, len, &d) != (ssize_t)len || d.pd_len != len)
		abort();
	if (pn->pn_local) {
		if (d.pd_command != 0 || pn->pn_client.ss_family)
			abort();
		return;
	}
	if (d.pd_command != 1 || d.pd_transport != 1 ||
	    (pn->pn_client.ss_family != AF_INET && pn->pn_client.ss_family != AF_INET6) ||
	    pn->pn_client.ss_family != pn->pn_dest.ss_family ||
	    memcmp(&pn->pn_client, &d.pd_src, sizeof(d.pd_src)))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry point
 * @data: the bytes a peer sends, header first
 * @size: how many
 *
 * Return: 0 always (crashes and aborts are the findings).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_proxy_in pn;
	const char *reason = NULL;
	size_t len = 0;
	ssize_t want;

	for (;;) {
		want = mk_proxy_v2_wanted(data, len, MK_PROXY_IN_MAX);
		if (want <= 0)
			break;
		if (len < PP2_FIXED_LEN && len + (size_t)want != PP2_FIXED_LEN)
			abort();
		if (len + (size_t)want > MK_PROXY_IN_MAX)
			abort();
		if ((size_t)want > size - len)
			return 0;	/* the peer stopped early: the timeout's case */
		len += (size_t)want;
	}
	if (want < 0)
		return 0;
	if (len < PP2_FIXED_LEN || len != PP2_FIXED_LEN + ((size_t)data[14] << 8 | data[15]))
		abort();
	if (mk_proxy_in_parse(data, len, &pn, &reason)) {
		if (!reason)
			abort();
		return 0;
	}
	check_accepted(data, len, &pn);
	return 0;
}
