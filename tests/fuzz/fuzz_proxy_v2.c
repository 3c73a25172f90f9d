// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for mk_proxy_v2_decode(). Besides memory safety it checks
 * that what the decoder accepts is self-consistent, and that re-encoding the
 * decoded fields yields a header that decodes to the same fields.
 */
#include <stdlib.h>
#include <string.h>

#include "proxy_v2.h"

static void check_str(const char *s, size_t size)
{
	if (!memchr(s, '\0', size))
		abort();
}

static const char *opt(const char *s)
{
	return *s ? s : NULL;
}

/* Re-encode what was decoded (INET/INET6 only: the encoder sends no UNIX). */
static void check_roundtrip(const struct mk_proxy_decoded *d)
{
	struct mk_proxy_info info = {
		.pi_src = (const void *)&d->pd_src, .pi_dst = (const void *)&d->pd_dst,
		.pi_ssl = d->pd_has_ssl, .pi_client_flags = d->pd_client_flags,
		.pi_verify = d->pd_verify, .pi_version = opt(d->pd_version),
		.pi_cipher = opt(d->pd_cipher), .pi_sig_alg = opt(d->pd_sig_alg),
		.pi_authority = d->pd_authority, .pi_alpn = d->pd_alpn,
	};
	static struct mk_proxy_decoded again;
	uint8_t buf[PP2_HEADER_MAX];
	ssize_t n;

	if (d->pd_family != 1 && d->pd_family != 2)
		return;
	n = mk_proxy_v2_encode(buf, sizeof(buf), &info);
	if (n <= 0 || mk_proxy_v2_decode(buf, n, &again) != n)
		abort();
	if (!again.pd_crc_ok || again.pd_family != d->pd_family ||
	    memcmp(&again.pd_src, &d->pd_src, sizeof(again.pd_src)) ||
	    memcmp(&again.pd_dst, &d->pd_dst, sizeof(again.pd_dst)) ||
	    again.pd_has_ssl != d->pd_has_ssl ||
	    strcmp(again.pd_cipher, d->pd_cipher) || strcmp(again.pd_version, d->pd_version) ||
	    strcmp(again.pd_sig_alg, d->pd_sig_alg) ||
	    strcmp(again.pd_authority, d->pd_authority) || strcmp(again.pd_alpn, d->pd_alpn))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/**
 * LLVMFuzzerTestOneInput() - libFuzzer entry point
 * @data: input bytes
 * @size: how many
 *
 * Return: 0 always (crashes and aborts are the findings).
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mk_proxy_decoded d;
	ssize_t n = mk_proxy_v2_decode(data, size, &d);

	if (n < 0 || n == 0)
		return 0;
	if ((size_t)n > size || d.pd_len != (size_t)n || n < 16)
		abort();
	if (d.pd_has_crc && !d.pd_crc_ok)
		abort();
	check_str(d.pd_version, sizeof(d.pd_version));
	check_str(d.pd_cipher, sizeof(d.pd_cipher));
	check_str(d.pd_sig_alg, sizeof(d.pd_sig_alg));
	check_str(d.pd_authority, sizeof(d.pd_authority));
	check_str(d.pd_alpn, sizeof(d.pd_alpn));
	check_roundtrip(&d);
	return 0;
}
