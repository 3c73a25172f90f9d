// SPDX-License-Identifier: GPL-2.0
/*
 * PROXY protocol v2 encoder (what the agent sends to a backend) and a strict
 * decoder (unit tests, fuzzing). Layout from haproxy's proxy-protocol.txt
 * section 2.2; the CRC32C TLV covers the whole header with its own value
 * zeroed, so a receiver that checks it (haproxy, Dovecot does not) catches
 * a header damaged or cut by something in between.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

#include "proxy_v2.h"
#include "session.h"

#define PP2_VER_CMD_PROXY	0x21
#define PP2_TLV_HDR		3	/* type, length (big-endian 16 bits) */
#define PP2_SSL_FIXED		5	/* client flags, verify */
#define PP2_CRC_LEN		4

#define PP2_FAM_UNSPEC		0x00
#define PP2_FAM_TCP4		0x11
#define PP2_FAM_TCP6		0x21

#define PP2_ADDR_LEN_UNIX	216

/*
 * Longest strings the encoder accepts; they match the decoder's fields so
 * that everything encoded decodes, and keep the worst case well under
 * PP2_HEADER_MAX (16 + 36 + 66 + 258 + 528 + 7 = 911 bytes).
 */
#define PP2_MAX_VERSION		63
#define PP2_MAX_CIPHER		127
#define PP2_MAX_SIG_ALG		63
#define PP2_MAX_AUTHORITY	255
#define PP2_MAX_ALPN		63
#define PP2_MAX_CN		255

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = v >> 8;
	p[1] = v & 0xff;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = v >> 24;
	p[1] = (v >> 16) & 0xff;
	p[2] = (v >> 8) & 0xff;
	p[3] = v & 0xff;
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Cursor over the output; the first overflow sticks and is reported once. */
struct pp2_out {
	uint8_t *o_buf;
	size_t o_cap;
	size_t o_len;
	bool o_full;
};

static uint8_t *out_take(struct pp2_out *o, size_t n)
{
	uint8_t *p;

	if (o->o_full || o->o_cap - o->o_len < n) {
		o->o_full = true;
		return NULL;
	}
	p = o->o_buf + o->o_len;
	o->o_len += n;
	return p;
}

/* Append a TLV header and value; returns the value's position (or NULL). */
static uint8_t *out_tlv(struct pp2_out *o, uint8_t type, const void *val, size_t len)
{
	uint8_t *p = out_take(o, PP2_TLV_HDR + len);

	if (!p)
		return NULL;
	p[0] = type;
	put_be16(p + 1, (uint16_t)len);
	if (val)
		memcpy(p + PP2_TLV_HDR, val, len);
	return p + PP2_TLV_HDR;
}

/* Optional string: NULL and "" are omitted, and so is a TLV not in @send. */
static void out_str_tlv(struct pp2_out *o, uint8_t type, const char *s, unsigned int send,
			unsigned int bit)
{
	if ((send & bit) && s && *s)
		out_tlv(o, type, s, strlen(s));
}

static bool str_fits(const char *s, size_t max)
{
	return !s || strnlen(s, max + 1) <= max;
}

static bool info_strings_fit(const struct mk_proxy_info *info)
{
	return str_fits(info->pi_version, PP2_MAX_VERSION) &&
	       str_fits(info->pi_cipher, PP2_MAX_CIPHER) &&
	       str_fits(info->pi_sig_alg, PP2_MAX_SIG_ALG) &&
	       str_fits(info->pi_authority, PP2_MAX_AUTHORITY) &&
	       str_fits(info->pi_alpn, PP2_MAX_ALPN) &&
	       str_fits(info->pi_cn, PP2_MAX_CN);
}

static uint8_t family_of(const struct sockaddr *src, const struct sockaddr *dst)
{
	if (!src || !dst || src->sa_family != dst->sa_family)
		return PP2_FAM_UNSPEC;
	if (src->sa_family == AF_INET)
		return PP2_FAM_TCP4;
	if (src->sa_family == AF_INET6)
		return PP2_FAM_TCP6;
	return PP2_FAM_UNSPEC;
}

/* Address block: both addresses, then both ports, all in network order. */
static void out_addresses(struct pp2_out *o, uint8_t fam, const struct sockaddr *src,
			  const struct sockaddr *dst)
{
	uint8_t *p;

	if (fam == PP2_FAM_TCP4) {
		const struct sockaddr_in *s = (const void *)src, *d = (const void *)dst;

		p = out_take(o, PP2_ADDR_LEN_INET);
		if (!p)
			return;
		memcpy(p, &s->sin_addr, 4);
		memcpy(p + 4, &d->sin_addr, 4);
		memcpy(p + 8, &s->sin_port, 2);
		memcpy(p + 10, &d->sin_port, 2);
	} else if (fam == PP2_FAM_TCP6) {
		const struct sockaddr_in6 *s = (const void *)src, *d = (const void *)dst;

		p = out_take(o, PP2_ADDR_LEN_INET6);
		if (!p)
			return;
		memcpy(p, &s->sin6_addr, 16);
		memcpy(p + 16, &d->sin6_addr, 16);
		memcpy(p + 32, &s->sin6_port, 2);
		memcpy(p + 34, &d->sin6_port, 2);
	}
}

/* PP2_TYPE_SSL: client flags, verify result, then its sub-TLVs. */
static void out_ssl(struct pp2_out *o, const struct mk_proxy_info *info, unsigned int send)
{
	size_t start = o->o_len;
	uint8_t *p = out_tlv(o, PP2_TYPE_SSL, NULL, PP2_SSL_FIXED);

	if (!p)
		return;
	p[0] = info->pi_client_flags;
	put_be32(p + 1, info->pi_verify);
	out_str_tlv(o, PP2_SUBTYPE_SSL_VERSION, info->pi_version, send, PP2_SEND_SSL_VERSION);
	out_str_tlv(o, PP2_SUBTYPE_SSL_CIPHER, info->pi_cipher, send, PP2_SEND_SSL_CIPHER);
	out_str_tlv(o, PP2_SUBTYPE_SSL_SIG_ALG, info->pi_sig_alg, send, PP2_SEND_SSL_SIG_ALG);
	out_str_tlv(o, PP2_SUBTYPE_SSL_CN, info->pi_cn, send, PP2_SEND_SSL_CN);
	if (!o->o_full)
		put_be16(o->o_buf + start + 1, (uint16_t)(o->o_len - start - PP2_TLV_HDR));
}

/* One attempt with the TLVs in @send; o_full tells whether it fit. */
static void encode_send(struct pp2_out *o, const struct mk_proxy_info *info, unsigned int send)
{
	uint8_t fam = family_of(info->pi_src, info->pi_dst);
	uint8_t *hdr, *crc = NULL;

	o->o_len = 0;
	o->o_full = false;
	hdr = out_take(o, PP2_FIXED_LEN);
	if (!hdr)
		return;
	memcpy(hdr, PP2_SIGNATURE, PP2_SIG_LEN);
	hdr[12] = PP2_VER_CMD_PROXY;
	hdr[13] = fam;
	out_addresses(o, fam, info->pi_src, info->pi_dst);
	out_str_tlv(o, PP2_TYPE_ALPN, info->pi_alpn, send, PP2_SEND_ALPN);
	out_str_tlv(o, PP2_TYPE_AUTHORITY, info->pi_authority, send, PP2_SEND_AUTHORITY);
	if (info->pi_ssl && (send & PP2_SEND_SSL))
		out_ssl(o, info, send);
	if (send & PP2_SEND_CRC32C)
		crc = out_tlv(o, PP2_TYPE_CRC32C, "\0\0\0\0", PP2_CRC_LEN);
	if (o->o_full)
		return;
	put_be16(hdr + 14, (uint16_t)(o->o_len - PP2_FIXED_LEN));
	if (crc)
		put_be32(crc, mk_crc32c(0, o->o_buf, o->o_len));
}

/* The PP2_SEND_* bits of what @info has to send: absent ones cannot be left out. */
static unsigned int info_present(const struct mk_proxy_info *info)
{
	unsigned int have = PP2_SEND_CRC32C;

	if (info->pi_authority && *info->pi_authority)
		have |= PP2_SEND_AUTHORITY;
	if (info->pi_alpn && *info->pi_alpn)
		have |= PP2_SEND_ALPN;
	if (!info->pi_ssl)
		return have;
	have |= PP2_SEND_SSL;
	if (info->pi_version && *info->pi_version)
		have |= PP2_SEND_SSL_VERSION;
	if (info->pi_cipher && *info->pi_cipher)
		have |= PP2_SEND_SSL_CIPHER;
	if (info->pi_sig_alg && *info->pi_sig_alg)
		have |= PP2_SEND_SSL_SIG_ALG;
	if (info->pi_cn && *info->pi_cn)
		have |= PP2_SEND_SSL_CN;
	return have;
}

/**
 * mk_proxy_v2_encode() - build a PROXY v2 header with a CRC32C TLV
 * @buf:  output
 * @cap:  its size (PP2_HEADER_MAX is always enough)
 * @info: what to put in it
 *
 * Strings are limited to what mk_proxy_v2_decode() stores (version 63,
 * cipher 127, signature algorithm 63, authority 255, ALPN 63, CN 255 bytes),
 * which bounds the header to 911 bytes.
 *
 * Return: the header length, or -ENOSPC if @cap is too small, -EINVAL for
 * a string longer than its limit.
 */
ssize_t mk_proxy_v2_encode(uint8_t *buf, size_t cap, const struct mk_proxy_info *info)
{
	struct pp2_out o = { .o_buf = buf, .o_cap = cap };

	if (!info_strings_fit(info))
		return -EINVAL;
	encode_send(&o, info, PP2_SEND_ALL);
	return o.o_full ? -ENOSPC : (ssize_t)o.o_len;
}

/**
 * mk_proxy_v2_encode_within() - build a PROXY v2 header of at most @max bytes
 * @buf:     output
 * @cap:     its size
 * @info:    what to put in it
 * @send:    PP2_SEND_* bits: which TLVs may be sent at all
 * @max:     largest header the receiver reads
 * @omitted: if not NULL, receives the PP2_SEND_* bits of TLVs that @info
 *           had and @send allowed but that were left out for @max
 *
 * TLVs are left out one at a time, in the order of the PP2_SEND_* bits,
 * until the header fits in the smaller of @cap and @max. Each attempt
 * rewrites the header from the start; there are at most nine.
 *
 * Return: the header length, -ENOSPC if not even the addresses fit, or
 * -EINVAL for a string longer than a TLV can carry.
 */
ssize_t mk_proxy_v2_encode_within(uint8_t *buf, size_t cap, const struct mk_proxy_info *info,
				  unsigned int send, size_t max, unsigned int *omitted)
{
	struct pp2_out o = { .o_buf = buf, .o_cap = cap < max ? cap : max };
	unsigned int want = send & PP2_SEND_ALL & info_present(info), bit = 1;

	if (omitted)
		*omitted = 0;
	if (!info_strings_fit(info))
		return -EINVAL;
	send = want;
	for (;;) {
		encode_send(&o, info, send);
		if (!o.o_full)
			break;
		while (bit <= PP2_SEND_ALL && !(send & bit))
			bit <<= 1;
		if (bit > PP2_SEND_ALL)
			return -ENOSPC;
		send &= ~bit;
	}
	if (omitted)
		*omitted = want & ~send;
	return (ssize_t)o.o_len;
}

/**
 * mk_proxy_v2_tlv_name() - config name of one PP2_SEND_* bit
 * @bit: a single PP2_SEND_* bit
 *
 * PP2_SEND_SSL_SIG_ALG has no name: the agent does not send it.
 *
 * Return: "authority", "ssl_cipher", ..., or NULL for anything else.
 */
const char *mk_proxy_v2_tlv_name(unsigned int bit)
{
	switch (bit) {
	case PP2_SEND_AUTHORITY:
		return "authority";
	case PP2_SEND_SSL_CIPHER:
		return "ssl_cipher";
	case PP2_SEND_SSL_VERSION:
		return "ssl_version";
	case PP2_SEND_CRC32C:
		return "crc32c";
	case PP2_SEND_ALPN:
		return "alpn";
	case PP2_SEND_SSL:
		return "ssl";
	case PP2_SEND_SSL_CN:
		return "ssl_cn";
	default:
		return NULL;
	}
}

/* Copy a TLV string value; NUL inside or too long makes the header invalid. */
static int copy_str(char *dst, size_t dst_size, const uint8_t *val, size_t len)
{
	if (len >= dst_size || memchr(val, 0, len))
		return -EINVAL;
	memcpy(dst, val, len);
	dst[len] = '\0';
	return 0;
}

static int decode_ssl_sub(uint8_t type, const uint8_t *v, size_t len,
			  struct mk_proxy_decoded *out)
{
	switch (type) {
	case PP2_SUBTYPE_SSL_VERSION:
		return copy_str(out->pd_version, sizeof(out->pd_version), v, len);
	case PP2_SUBTYPE_SSL_CIPHER:
		return copy_str(out->pd_cipher, sizeof(out->pd_cipher), v, len);
	case PP2_SUBTYPE_SSL_SIG_ALG:
		return copy_str(out->pd_sig_alg, sizeof(out->pd_sig_alg), v, len);
	case PP2_SUBTYPE_SSL_CN:
		return copy_str(out->pd_cn, sizeof(out->pd_cn), v, len);
	default:	/* key algorithm, future ones: not ours to judge */
		return 0;
	}
}

/* True if a (sub-)TLV header and its whole value fit in [off, end). */
static bool tlv_fits(const uint8_t *buf, size_t off, size_t end)
{
	return end - off >= PP2_TLV_HDR && end - off - PP2_TLV_HDR >= get_be16(buf + off + 1);
}

static int decode_ssl(const uint8_t *v, size_t len, struct mk_proxy_decoded *out)
{
	size_t off = PP2_SSL_FIXED;
	int err = 0;

	if (out->pd_has_ssl || len < PP2_SSL_FIXED)
		return -EINVAL;
	out->pd_has_ssl = true;
	out->pd_client_flags = v[0];
	out->pd_verify = get_be32(v + 1);
	while (!err && off < len) {
		if (!tlv_fits(v, off, len))
			return -EINVAL;
		err = decode_ssl_sub(v[off], v + off + PP2_TLV_HDR, get_be16(v + off + 1), out);
		off += PP2_TLV_HDR + get_be16(v + off + 1);
	}
	return err;
}

/* CRC over the header as sent, with the 4 CRC bytes counted as zeros. */
static bool crc_matches(const uint8_t *buf, size_t total, size_t crc_off)
{
	uint32_t crc;

	crc = mk_crc32c(0, buf, crc_off);
	crc = mk_crc32c(crc, "\0\0\0\0", PP2_CRC_LEN);
	crc = mk_crc32c(crc, buf + crc_off + PP2_CRC_LEN, total - crc_off - PP2_CRC_LEN);
	return crc == get_be32(buf + crc_off);
}

static int decode_tlv(const uint8_t *buf, size_t total, size_t off, struct mk_proxy_decoded *out)
{
	const uint8_t *v = buf + off + PP2_TLV_HDR;
	size_t len = get_be16(buf + off + 1);

	switch (buf[off]) {
	case PP2_TYPE_ALPN:
		return copy_str(out->pd_alpn, sizeof(out->pd_alpn), v, len);
	case PP2_TYPE_AUTHORITY:
		return copy_str(out->pd_authority, sizeof(out->pd_authority), v, len);
	case PP2_TYPE_SSL:
		return decode_ssl(v, len, out);
	case PP2_TYPE_CRC32C:
		if (out->pd_has_crc || len != PP2_CRC_LEN)
			return -EINVAL;
		out->pd_has_crc = true;
		out->pd_crc_ok = crc_matches(buf, total, off + PP2_TLV_HDR);
		return out->pd_crc_ok ? 0 : -EINVAL;
	default:	/* NOOP and unknown types are skipped, as the spec asks */
		return 0;
	}
}

static int decode_tlvs(const uint8_t *buf, size_t total, size_t off, struct mk_proxy_decoded *out)
{
	int err = 0;

	while (!err && off < total) {
		if (!tlv_fits(buf, off, total))
			return -EINVAL;
		err = decode_tlv(buf, total, off, out);
		off += PP2_TLV_HDR + get_be16(buf + off + 1);
	}
	return err;
}

/* Fill pd_src/pd_dst; returns the address block length or -EINVAL. */
static ssize_t decode_addresses(const uint8_t *a, size_t len, struct mk_proxy_decoded *out)
{
	switch (out->pd_family) {
	case 1: {
		struct sockaddr_in *s = (void *)&out->pd_src, *d = (void *)&out->pd_dst;

		if (len < PP2_ADDR_LEN_INET)
			return -EINVAL;
		s->sin_family = d->sin_family = AF_INET;
		memcpy(&s->sin_addr, a, 4);
		memcpy(&d->sin_addr, a + 4, 4);
		memcpy(&s->sin_port, a + 8, 2);
		memcpy(&d->sin_port, a + 10, 2);
		return PP2_ADDR_LEN_INET;
	}
	case 2: {
		struct sockaddr_in6 *s = (void *)&out->pd_src, *d = (void *)&out->pd_dst;

		if (len < PP2_ADDR_LEN_INET6)
			return -EINVAL;
		s->sin6_family = d->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, a, 16);
		memcpy(&d->sin6_addr, a + 16, 16);
		memcpy(&s->sin6_port, a + 32, 2);
		memcpy(&d->sin6_port, a + 34, 2);
		return PP2_ADDR_LEN_INET6;
	}
	case 3: {
		struct sockaddr_un *s = (void *)&out->pd_src, *d = (void *)&out->pd_dst;

		if (len < PP2_ADDR_LEN_UNIX)
			return -EINVAL;
		s->sun_family = d->sun_family = AF_UNIX;
		memcpy(s->sun_path, a, sizeof(s->sun_path));
		memcpy(d->sun_path, a + 108, sizeof(d->sun_path));
		return PP2_ADDR_LEN_UNIX;
	}
	default:	/* UNSPEC: no address, TLVs follow the fixed part */
		return 0;
	}
}

/* Signature, version, command, family and transport of the fixed part. */
static int check_fixed(const uint8_t *buf, struct mk_proxy_decoded *out)
{
	uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0f;
	uint8_t fam = buf[13] >> 4, proto = buf[13] & 0x0f;

	if (memcmp(buf, PP2_SIGNATURE, PP2_SIG_LEN) || ver != 2 || cmd > 1 || fam > 3 ||
	    proto > 2)
		return -EINVAL;
	out->pd_command = cmd;
	out->pd_family = fam;
	out->pd_transport = proto;
	return 0;
}

/**
 * mk_proxy_v2_decode() - parse a PROXY v2 header
 * @buf: bytes received
 * @len: how many
 * @out: result (zeroed first)
 *
 * Strict: the address block must be long enough for the family, every TLV
 * and SSL sub-TLV must end inside its parent, strings must fit the fields of
 * @out and hold no NUL, SSL and CRC32C TLVs may appear once, and a CRC32C
 * TLV must match. Unknown TLV types are skipped.
 *
 * Return: header length consumed (> 0), 0 if more bytes are needed,
 * -EINVAL if the bytes are not a valid PROXY v2 header.
 */
ssize_t mk_proxy_v2_decode(const uint8_t *buf, size_t len, struct mk_proxy_decoded *out)
{
	size_t total;
	ssize_t alen;
	int err;

	memset(out, 0, sizeof(*out));
	if (memcmp(buf, PP2_SIGNATURE, len < PP2_SIG_LEN ? len : PP2_SIG_LEN))
		return -EINVAL;
	if (len < PP2_FIXED_LEN)
		return 0;
	err = check_fixed(buf, out);
	if (err)
		return err;
	total = PP2_FIXED_LEN + get_be16(buf + 14);
	if (len < total)
		return 0;
	alen = decode_addresses(buf + PP2_FIXED_LEN, total - PP2_FIXED_LEN, out);
	if (alen < 0)
		return alen;
	err = decode_tlvs(buf, total, PP2_FIXED_LEN + (size_t)alen, out);
	if (err)
		return err;
	out->pd_len = total;
	return (ssize_t)total;
}

/**
 * mk_proxy_v2_wanted() - how many more bytes complete the header at @buf
 * @buf: bytes received so far
 * @len: how many
 * @max: largest whole header the caller accepts
 *
 * Only the fixed part is looked at: its 16 bytes first, then the length it
 * announces. Whether the rest is valid is mk_proxy_v2_decode()'s job.
 *
 * Return: bytes still to read (> 0), 0 when @len bytes are the whole
 * header, -EINVAL if they cannot start a PROXY v2 header, -EMSGSIZE if it
 * announces more than @max bytes (or @len is already beyond the header).
 */
ssize_t mk_proxy_v2_wanted(const uint8_t *buf, size_t len, size_t max)
{
	size_t total;

	if (memcmp(buf, PP2_SIGNATURE, len < PP2_SIG_LEN ? len : PP2_SIG_LEN))
		return -EINVAL;
	if (len > PP2_SIG_LEN && (buf[12] >> 4) != 2)
		return -EINVAL;
	if (len < PP2_FIXED_LEN)
		return (ssize_t)(PP2_FIXED_LEN - len);
	total = PP2_FIXED_LEN + get_be16(buf + 14);
	if (total > max || len > total)
		return -EMSGSIZE;
	return (ssize_t)(total - len);
}

void mk_proxy_v2_session_info(struct mk_proxy_info *pi, const struct mk_session *s,
			      const char *alpn)
{
	*pi = (struct mk_proxy_info){
		.pi_src = (const struct sockaddr *)&s->ss_client,
		.pi_dst = (const struct sockaddr *)&s->ss_local,
		.pi_ssl = true,
		.pi_client_flags = PP2_CLIENT_SSL,
		.pi_verify = PP2_VERIFY_NO_CERT,
		.pi_version = s->ss_version_name,
		.pi_cipher = s->ss_cipher,
		.pi_authority = s->ss_sni,
		.pi_alpn = alpn,
	};
	if (!s->ss_client_cert)
		return;
	pi->pi_client_flags |= PP2_CLIENT_CERT_SESS;
	if (!s->ss_resumed)
		pi->pi_client_flags |= PP2_CLIENT_CERT_CONN;
	pi->pi_verify = (uint32_t)s->ss_verify;
	if (s->ss_verify == 0)
		pi->pi_cn = s->ss_client_cn;
}
