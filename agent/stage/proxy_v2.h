/* SPDX-License-Identifier: GPL-2.0 */
/*
 * PROXY protocol version 2 (haproxy's proxy-protocol.txt, section 2.2):
 * the binary header the agent sends first on every backend connection,
 * so the daemon logs the real client address and knows TLS was used.
 */
#ifndef MAILKTLS_PROXY_V2_H
#define MAILKTLS_PROXY_V2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"

#define PP2_SIGNATURE "\r\n\r\n\0\r\nQUIT\n"
#define PP2_SIG_LEN 12
#define PP2_HEADER_MAX 1024	/* what the encoder will ever produce */

#define PP2_TYPE_ALPN		0x01
#define PP2_TYPE_AUTHORITY	0x02
#define PP2_TYPE_CRC32C		0x03
#define PP2_TYPE_NOOP		0x04
#define PP2_TYPE_SSL		0x20
#define PP2_SUBTYPE_SSL_VERSION	0x21
#define PP2_SUBTYPE_SSL_CN	0x22
#define PP2_SUBTYPE_SSL_CIPHER	0x23
#define PP2_SUBTYPE_SSL_SIG_ALG	0x24
#define PP2_SUBTYPE_SSL_KEY_ALG	0x25

/*
 * TLVs the encoder may leave out to keep a header within a receiver's limit,
 * one bit each, lowest bit first out. AUTHORITY goes first because the
 * client chooses the SNI's length; then what no daemon reads (signature
 * algorithm, cipher, version: Postfix, Exim, Cyrus read only addresses,
 * Dovecot ignores them); then the CRC32C that only haproxy checks; then ALPN;
 * then the client certificate's CN, which Dovecot takes as the user name for
 * SASL EXTERNAL (a login, where ALPN is only informative); PP2_TYPE_SSL last,
 * since its PP2_CLIENT_SSL flag is what makes Dovecot count the session as
 * secured. The addresses are never left out.
 */
#define PP2_SEND_AUTHORITY	0x01
#define PP2_SEND_SSL_SIG_ALG	0x02
#define PP2_SEND_SSL_CIPHER	0x04
#define PP2_SEND_SSL_VERSION	0x08
#define PP2_SEND_CRC32C		0x10
#define PP2_SEND_ALPN		0x20
#define PP2_SEND_SSL_CN		0x40
#define PP2_SEND_SSL		0x80
#define PP2_SEND_ALL		0xff
/*
 * What proxy_tlvs sends by default: everything but the ALPN TLV. Dovecot
 * 2.4.1 (Debian 13) drops every header that carries one, whatever its
 * value, and no other daemon behind the agent reads it.
 */
#define PP2_SEND_DEFAULT	(PP2_SEND_ALL & ~PP2_SEND_ALPN)

#define PP2_FIXED_LEN		16	/* signature, ver/cmd, family, length */
#define PP2_ADDR_LEN_INET	12
#define PP2_ADDR_LEN_INET6	36

#define PP2_CLIENT_SSL		0x01
#define PP2_CLIENT_CERT_CONN	0x02
#define PP2_CLIENT_CERT_SESS	0x04
/* verify of a session without a client certificate: the field is 0 only
 * when one was presented and verified (X509_V_ERR_UNSPECIFIED). */
#define PP2_VERIFY_NO_CERT	1

struct mk_proxy_info {
	const struct sockaddr *pi_src;	/* client; AF_INET or AF_INET6 */
	const struct sockaddr *pi_dst;	/* address the client connected to */
	bool pi_ssl;			/* emit PP2_TYPE_SSL */
	uint8_t pi_client_flags;	/* PP2_CLIENT_* */
	uint32_t pi_verify;		/* 0: a client cert was sent and verified */
	const char *pi_version;		/* "TLSv1.3", NULL to omit */
	const char *pi_cipher;		/* NULL to omit */
	const char *pi_sig_alg;		/* NULL to omit */
	const char *pi_cn;		/* verified client certificate's CN, NULL to omit */
	const char *pi_authority;	/* SNI, NULL or "" to omit */
	const char *pi_alpn;		/* NULL or "" to omit */
};

struct mk_session;

/**
 * mk_proxy_v2_session_info() - what the header says about a session
 * @pi:    filled in; its strings point into @s
 * @s:     the session, TLS established
 * @alpn:  the port's protocol as the config names it (mk_protocol_name())
 *
 * ALPN is the port's protocol (imap, pop3, submission), whatever the client
 * offered: Dovecot 2.4.1 and later drop a connection whose ALPN TLV is
 * anything else, "smtp" included. A client certificate sets CERT_SESS, and
 * CERT_CONN unless the session was resumed (the certificate then came with
 * an earlier connection); verify is 0 only for a certificate that was sent
 * and verified, which is what Dovecot 2.4.4 and later require before they
 * count it as valid, and the CN is sent only then.
 */
void mk_proxy_v2_session_info(struct mk_proxy_info *pi, const struct mk_session *s,
			      const char *alpn);

/**
 * mk_proxy_v2_encode() - build a PROXY v2 header with a CRC32C TLV
 * @buf:  output
 * @cap:  its size (PP2_HEADER_MAX is always enough)
 * @info: what to put in it
 *
 * Addresses of mixed families, or of a family other than INET/INET6, are
 * sent as family UNSPEC (LOCAL semantics are not used: the command is PROXY).
 *
 * Return: the header length, or -ENOSPC if @cap is too small, -EINVAL for
 * a string longer than a TLV can carry.
 */
ssize_t mk_proxy_v2_encode(uint8_t *buf, size_t cap, const struct mk_proxy_info *info);

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
 * until the header fits in the smaller of @cap and @max.
 *
 * Return: the header length, -ENOSPC if not even the addresses fit, or
 * -EINVAL for a string longer than a TLV can carry.
 */
ssize_t mk_proxy_v2_encode_within(uint8_t *buf, size_t cap, const struct mk_proxy_info *info,
				  unsigned int send, size_t max, unsigned int *omitted);

/**
 * mk_proxy_v2_tlv_name() - config name of one PP2_SEND_* bit
 * @bit: a single PP2_SEND_* bit
 *
 * PP2_SEND_SSL_SIG_ALG has no name: the agent does not send it.
 *
 * Return: "authority", "ssl_cipher", ..., or NULL for anything else.
 */
const char *mk_proxy_v2_tlv_name(unsigned int bit);

/* What the decoder found; strings are NUL-terminated copies. */
struct mk_proxy_decoded {
	uint8_t pd_command;		/* 0 LOCAL, 1 PROXY */
	uint8_t pd_family;		/* 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX */
	uint8_t pd_transport;		/* 0 UNSPEC, 1 STREAM, 2 DGRAM */
	struct sockaddr_storage pd_src, pd_dst;
	bool pd_has_ssl;
	uint8_t pd_client_flags;
	uint32_t pd_verify;
	char pd_version[64], pd_cipher[128], pd_sig_alg[64];
	char pd_authority[256], pd_alpn[64], pd_cn[256];
	bool pd_has_crc;
	bool pd_crc_ok;
	size_t pd_len;			/* total header length */
};

/**
 * mk_proxy_v2_decode() - parse a PROXY v2 header (tests, fuzzing, and any
 * future upstream-balancer support)
 * @buf: bytes received
 * @len: how many
 * @out: result
 *
 * Return: header length consumed (> 0), 0 if more bytes are needed,
 * -EINVAL if the bytes are not a valid PROXY v2 header.
 */
ssize_t mk_proxy_v2_decode(const uint8_t *buf, size_t len, struct mk_proxy_decoded *out);

/**
 * mk_proxy_v2_wanted() - how many more bytes complete the header that
 * starts @buf, so that a reader takes exactly the header and not one byte
 * of what follows it (a ClientHello, a cleartext command)
 * @buf: bytes received so far
 * @len: how many
 * @max: largest whole header the caller accepts
 *
 * Return: the number of bytes still to read (> 0), 0 when @len bytes are
 * the whole header, -EINVAL if they cannot start a PROXY v2 header
 * (signature or version), -EMSGSIZE if it announces more than @max bytes.
 */
ssize_t mk_proxy_v2_wanted(const uint8_t *buf, size_t len, size_t max);

/* CRC32C (Castagnoli), as used by PP2_TYPE_CRC32C; start with crc = 0. */
uint32_t mk_crc32c(uint32_t crc, const void *data, size_t len);

#endif
