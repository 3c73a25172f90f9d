// SPDX-License-Identifier: GPL-2.0
/*
 * The client's control and malformed records after the handshake.
 *
 * With kernel TLS the agent alone answers them: the kernel decrypts and
 * hands over every record that is not application data with its type, or
 * fails the read with an errno. The answers follow RFC 8446 and are the
 * ones OpenSSL gives on the user-space path, so a client sees the same
 * alert on both.
 *
 * On the user-space path OpenSSL answers, except for one case where it is
 * wrong (a TLS 1.2 AEAD record too short to hold its nonce and tag gets
 * internal_error): such a record is replaced, before OpenSSL reads it, by
 * one of the shortest valid length whose tag cannot verify.
 */
#include <errno.h>

#include <openssl/tls1.h>

#include "tls_record.h"

#define MK_TLS_CT_ALERT 21
#define MK_TLS_CT_HANDSHAKE 22
#define MK_TLS_HS_CLIENT_HELLO 1
#define MK_TLS_HS_HEADER 4		/* type, 24-bit length */
#define MK_TLS_RECORD_HEADER 5		/* type, version, 16-bit length */
#define MK_TLS_AEAD_TAG 16
#define MK_TLS12_GCM_EXPLICIT_NONCE 8

static enum mk_tls_control fatal(struct mk_tls_rx *rx, uint8_t *alert, uint8_t description)
{
	rx->rx_part_len = 0;
	*alert = description;
	return MK_TLS_CTL_FATAL;
}

/*
 * TLS 1.2: a ClientHello asks for a renegotiation, which this agent never
 * does: a no_renegotiation warning and the connection goes on (RFC 5246
 * §7.2.2), as from OpenSSL. Anything else, or a ClientHello not whole in
 * its record, is unexpected.
 */
static enum mk_tls_control renegotiation(struct mk_tls_rx *rx, const uint8_t *p, size_t len,
					 uint8_t *alert)
{
	uint32_t mlen;

	if (len < MK_TLS_HS_HEADER || p[0] != MK_TLS_HS_CLIENT_HELLO)
		return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
	mlen = (uint32_t)p[1] << 16 | p[2] << 8 | p[3];
	if (len - MK_TLS_HS_HEADER != mlen)
		return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
	*alert = MK_TLS_ALERT_NO_RENEGOTIATION;
	return MK_TLS_CTL_WARNING;
}

/*
 * After the handshake a client may send a server only KeyUpdate (RFC 8446
 * §4.6.3; this server never asks for post-handshake authentication), and
 * that message is five bytes: it is decided as soon as its bytes say so,
 * which also bounds what is kept between records.
 */
static enum mk_tls_control handshake_record(struct mk_tls_rx *rx, uint16_t version,
					    const uint8_t *p, size_t len, uint8_t *alert)
{
	uint32_t mlen;

	if (version != TLS1_3_VERSION)
		return renegotiation(rx, p, len, alert);
	/* RFC 8446 §5.1: no zero-length handshake fragment */
	if (!len)
		return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
	while (len) {
		rx->rx_part[rx->rx_part_len++] = *p++;
		len--;
		if (rx->rx_part[0] != MK_TLS_HS_KEY_UPDATE)
			return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
		if (rx->rx_part_len < MK_TLS_HS_HEADER)
			continue;
		mlen = (uint32_t)rx->rx_part[1] << 16 | rx->rx_part[2] << 8 | rx->rx_part[3];
		/* RFC 8446 §4.6.3: exactly one byte; §6: decode_error */
		if (mlen != 1)
			return fatal(rx, alert, MK_TLS_ALERT_DECODE_ERROR);
		if (rx->rx_part_len < MK_TLS_HS_HEADER + 1)
			continue;
		if (rx->rx_part[MK_TLS_HS_HEADER] > 1)	/* update_requested is 0 or 1 */
			return fatal(rx, alert, MK_TLS_ALERT_ILLEGAL_PARAMETER);
		/* RFC 8446 §5.1: a KeyUpdate ends its record (a key change follows) */
		if (len)
			return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
		rx->rx_ku_requested = rx->rx_part[MK_TLS_HS_HEADER] == 1;
		rx->rx_part_len = 0;
		return MK_TLS_CTL_KEY_UPDATE;
	}
	return MK_TLS_CTL_MORE;
}

/**
 * mk_tls_control_record() - what a decrypted record that is not
 * application data (or one that follows a handshake fragment) calls for
 * @rx:      carries a handshake message split across records
 * @version: TLS1_2_VERSION or TLS1_3_VERSION
 * @type:    the record's (TLS 1.3: inner) content type
 * @p:       its plaintext
 * @len:     its length
 * @alert:   out: the alert to send (MK_TLS_CTL_FATAL, MK_TLS_CTL_WARNING)
 *           or received (MK_TLS_CTL_PEER_ALERT)
 *
 * Return: what to do; MK_TLS_CTL_MORE while a message is incomplete.
 */
enum mk_tls_control mk_tls_control_record(struct mk_tls_rx *rx, uint16_t version, uint8_t type,
					  const uint8_t *p, size_t len, uint8_t *alert)
{
	/* RFC 8446 §5.1: handshake messages are not interleaved with others */
	if (mk_tls_rx_pending(rx) && type != MK_TLS_CT_HANDSHAKE)
		return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
	switch (type) {
	case MK_TLS_CT_ALERT:
		/* RFC 8446 §5.1: exactly one two-byte alert per record */
		if (len != 2)
			return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
		if (p[0] != 1 && p[0] != 2)	/* neither warning nor fatal */
			return fatal(rx, alert, MK_TLS_ALERT_ILLEGAL_PARAMETER);
		*alert = p[1];
		return p[1] == MK_TLS_ALERT_CLOSE_NOTIFY ? MK_TLS_CTL_CLOSE_NOTIFY :
							   MK_TLS_CTL_PEER_ALERT;
	case MK_TLS_CT_HANDSHAKE:
		return handshake_record(rx, version, p, len, alert);
	default:	/* change_cipher_spec, an unknown type, data mid-message */
		return fatal(rx, alert, MK_TLS_ALERT_UNEXPECTED_MESSAGE);
	}
}

/**
 * mk_tls_errno_alert() - the alert a kTLS receive error identifies
 * @err: negative errno from splice or recvmsg on a kTLS socket
 *
 * Return: the alert description, or -1 if @err names no record error.
 */
int mk_tls_errno_alert(int err)
{
	switch (err) {
	case -EBADMSG:
		return MK_TLS_ALERT_BAD_RECORD_MAC;
	case -EMSGSIZE:
		return MK_TLS_ALERT_RECORD_OVERFLOW;
	default:
		return -1;
	}
}

/**
 * mk_tls_header_alert() - the alert for a record header whose version is
 * not 0x0303
 * @version: TLS1_2_VERSION or TLS1_3_VERSION
 *
 * Return: the alert description.
 */
uint8_t mk_tls_header_alert(uint16_t version)
{
	return version == TLS1_3_VERSION ? MK_TLS_ALERT_DECODE_ERROR :
					   MK_TLS_ALERT_PROTOCOL_VERSION;
}

/**
 * mk_tls_min_ciphertext() - the shortest record OpenSSL must see on the
 * user-space path
 * @version:   TLS1_2_VERSION or TLS1_3_VERSION
 * @cipher_id: the IANA id of the suite
 *
 * Return: the length below which a record must be replaced, 0 for none.
 */
size_t mk_tls_min_ciphertext(uint16_t version, uint16_t cipher_id)
{
	if (version != TLS1_2_VERSION)
		return 0;
	/* RFC 7905: ChaCha20-Poly1305 has no explicit nonce; GCM (RFC 5288) 8 bytes */
	if ((cipher_id & 0xff00) == 0xcc00)
		return MK_TLS_AEAD_TAG;
	return MK_TLS12_GCM_EXPLICIT_NONCE + MK_TLS_AEAD_TAG;
}

/**
 * mk_tls_rx_scan() - follow record boundaries in the client's ciphertext
 * @rx:  the connection's state; starts at a record boundary
 * @min: from mk_tls_min_ciphertext(), not 0
 * @p:   the bytes, in stream order
 * @len: how many
 *
 * Return: @len, or the offset in @p of the low length byte of a record
 * shorter than @min; 0 once such a record was found.
 */
size_t mk_tls_rx_scan(struct mk_tls_rx *rx, size_t min, const uint8_t *p, size_t len)
{
	size_t i = 0, n;

	if (rx->rx_broken)
		return 0;
	while (i < len) {
		if (rx->rx_left) {
			n = len - i < rx->rx_left ? len - i : rx->rx_left;
			rx->rx_left -= (uint32_t)n;
			i += n;
			continue;
		}
		rx->rx_part[rx->rx_part_len++] = p[i];
		if (rx->rx_part_len < MK_TLS_RECORD_HEADER) {
			i++;
			continue;
		}
		rx->rx_part_len = 0;
		rx->rx_left = (uint32_t)rx->rx_part[3] << 8 | rx->rx_part[4];
		if (rx->rx_left < min) {
			rx->rx_left = 0;
			rx->rx_broken = true;
			return i;
		}
		i++;
	}
	return len;
}

/**
 * mk_tls_count_records() - how many whole TLS records @buf holds
 * @buf:     bytes of a record stream, starting at a record boundary
 * @len:     their number
 * @partial: out: bytes still missing from a last, incomplete record (0 if
 *           the buffer ends on a boundary); a header cut short counts as
 *           missing its remaining header bytes
 *
 * Return: the number of complete records.
 */
unsigned int mk_tls_count_records(const uint8_t *buf, size_t len, size_t *partial)
{
	unsigned int n = 0;
	size_t off = 0, rec;

	*partial = 0;
	while (off < len) {
		if (len - off < MK_TLS_RECORD_HEADER) {
			*partial = MK_TLS_RECORD_HEADER - (len - off);
			break;
		}
		rec = MK_TLS_RECORD_HEADER + ((size_t)buf[off + 3] << 8 | buf[off + 4]);
		if (len - off < rec) {
			*partial = rec - (len - off);
			break;
		}
		off += rec;
		n++;
	}
	return n;
}
