// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for mk_proxy_v2_decode(). Besides memory safety it checks
 * that what the decoder accepts is self-consistent, that re-encoding the
 * decoded fields yields a header that decodes to the same fields, and that
 * encoding them within a limit (taken from the input's last two bytes)
 * stays within it, leaves TLVs out only in order, and still decodes.
 */
#include <errno.h>
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

/* PP2_SEND_* bits of the TLVs @d has, that an encoder could leave out. */
static unsigned int present(const struct mk_proxy_decoded *d)
{
	unsigned int have = PP2_SEND_CRC32C;

	have |= d->pd_authority[0] ? PP2_SEND_AUTHORITY : 0;
	have |= d->pd_alpn[0] ? PP2_SEND_ALPN : 0;
	if (d->pd_has_ssl) {
		have |= PP2_SEND_SSL;
		have |= d->pd_version[0] ? PP2_SEND_SSL_VERSION : 0;
		have |= d->pd_cipher[0] ? PP2_SEND_SSL_CIPHER : 0;
		have |= d->pd_sig_alg[0] ? PP2_SEND_SSL_SIG_ALG : 0;
		have |= d->pd_cn[0] ? PP2_SEND_SSL_CN : 0;
	}
	return have;
}

/*
 * Within @max, with the TLVs of @send: the header fits, decodes, and what is
 * left out is a prefix, in the PP2_SEND_* order, of what could be sent.
 */
static void check_within(const struct mk_proxy_decoded *d, const struct mk_proxy_info *info,
			 unsigned int send, size_t max)
{
	static struct mk_proxy_decoded dec;
	size_t need = 16 + (d->pd_family == 1 ? 12 : 36);
	unsigned int omitted, avail = send & present(d);
	uint8_t buf[PP2_HEADER_MAX];
	ssize_t n;

	n = mk_proxy_v2_encode_within(buf, sizeof(buf), info, send, max, &omitted);
	if (n == -ENOSPC && max < need)
		return;
	if (n <= 0 || (size_t)n > max || (omitted & ~avail) ||
	    mk_proxy_v2_decode(buf, (size_t)n, &dec) != n)
		abort();
	/* Nothing still sent may come before the last bit left out. */
	if (omitted && (avail & ~omitted & ((1u << (31 - __builtin_clz(omitted))) - 1)))
		abort();
	if (dec.pd_has_crc != !!(avail & ~omitted & PP2_SEND_CRC32C) ||
	    (dec.pd_has_crc && !dec.pd_crc_ok))
		abort();
	if (dec.pd_has_ssl != !!(avail & ~omitted & PP2_SEND_SSL))
		abort();
}

/* Re-encode what was decoded (INET/INET6 only: the encoder sends no UNIX). */
static void check_roundtrip(const struct mk_proxy_decoded *d, const uint8_t *data, size_t size)
{
	struct mk_proxy_info info = {
		.pi_src = (const void *)&d->pd_src, .pi_dst = (const void *)&d->pd_dst,
		.pi_ssl = d->pd_has_ssl, .pi_client_flags = d->pd_client_flags,
		.pi_verify = d->pd_verify, .pi_version = opt(d->pd_version),
		.pi_cipher = opt(d->pd_cipher), .pi_sig_alg = opt(d->pd_sig_alg),
		.pi_cn = opt(d->pd_cn),
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
	    strcmp(again.pd_authority, d->pd_authority) || strcmp(again.pd_alpn, d->pd_alpn) ||
	    strcmp(again.pd_cn, d->pd_cn))
		abort();
	check_within(d, &info, data[size - 1] & PP2_SEND_ALL,
		     (size_t)data[size - 2] << 8 | data[size - 1]);
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
	check_roundtrip(&d, data, size);
	return 0;
}
