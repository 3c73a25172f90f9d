/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The client's records after the handshake that are not application data,
 * and the alert each one is owed (RFC 8446 §5, §6; RFC 5246 §6, §7.2).
 */
#ifndef MAILKTLS_TLS_RECORD_H
#define MAILKTLS_TLS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MK_TLS_ALERT_CLOSE_NOTIFY 0
#define MK_TLS_ALERT_UNEXPECTED_MESSAGE 10
#define MK_TLS_ALERT_BAD_RECORD_MAC 20
#define MK_TLS_ALERT_RECORD_OVERFLOW 22
#define MK_TLS_ALERT_ILLEGAL_PARAMETER 47
#define MK_TLS_ALERT_DECODE_ERROR 50
#define MK_TLS_ALERT_PROTOCOL_VERSION 70
#define MK_TLS_ALERT_INTERNAL_ERROR 80
#define MK_TLS_ALERT_NO_RENEGOTIATION 100

#define MK_TLS_HS_KEY_UPDATE 24		/* handshake message type */

/*
 * What is left over from the client's last record: a handshake message
 * split across records (kTLS path), or where the next record header starts
 * (user-space path). A connection uses one of the two.
 */
struct mk_tls_rx {
	uint32_t rx_left;	/* user space: bytes of the current record to come */
	uint8_t rx_part[5];	/* the partial header (message or record) */
	uint8_t rx_part_len;
	bool rx_primed;		/* user space: rx_left is known */
	bool rx_broken;		/* user space: a record was replaced, drop the rest */
	bool rx_ku_requested;	/* the last KeyUpdate asked for ours */
};

enum mk_tls_control {
	MK_TLS_CTL_MORE,		/* a handshake fragment: read the next record */
	MK_TLS_CTL_CLOSE_NOTIFY,	/* the client is done sending */
	MK_TLS_CTL_PEER_ALERT,		/* the client's alert ends it: no answer */
	MK_TLS_CTL_KEY_UPDATE,		/* a well-formed KeyUpdate */
	MK_TLS_CTL_WARNING,		/* answer with the warning alert given, go on */
	MK_TLS_CTL_FATAL,		/* answer with the fatal alert given */
};

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
 * The answers are OpenSSL's on the user-space path where RFC 8446 leaves
 * a choice: a malformed alert record is unexpected_message, a TLS 1.2
 * ClientHello (whole in its record) a no_renegotiation warning. A
 * KeyUpdate longer than its one byte is decode_error (RFC 8446 §6: a
 * message that cannot be parsed; OpenSSL says illegal_parameter).
 *
 * Return: what to do; MK_TLS_CTL_MORE while a message is incomplete. For
 * MK_TLS_CTL_KEY_UPDATE, @rx->rx_ku_requested says whether it asked for an
 * update in return.
 */
enum mk_tls_control mk_tls_control_record(struct mk_tls_rx *rx, uint16_t version, uint8_t type,
					  const uint8_t *p, size_t len, uint8_t *alert);

/**
 * mk_tls_rx_pending() - is a handshake message split across records?
 * @rx: the connection's state
 *
 * Return: true if the next record must be a handshake record.
 */
static inline bool mk_tls_rx_pending(const struct mk_tls_rx *rx)
{
	return rx->rx_part_len != 0;
}

/**
 * mk_tls_errno_alert() - the alert a kTLS receive error identifies
 * @err: negative errno from splice or recvmsg on a kTLS socket
 *
 * Linux 6.1 reports EBADMSG for a record that fails to decrypt, a
 * ciphertext shorter than the cipher's overhead and (TLS 1.3) a plaintext
 * of padding only; EMSGSIZE for a record longer than 2^14 bytes of
 * plaintext plus the overhead.
 *
 * Return: the alert description, or -1 if @err names no record error.
 */
int mk_tls_errno_alert(int err);

/**
 * mk_tls_header_alert() - the alert for a record header whose version is
 * not 0x0303
 * @version: TLS1_2_VERSION or TLS1_3_VERSION
 *
 * What OpenSSL sends: TLS 1.3 decode_error, TLS 1.2 protocol_version.
 *
 * Return: the alert description.
 */
uint8_t mk_tls_header_alert(uint16_t version);

/**
 * mk_tls_min_ciphertext() - the shortest record OpenSSL must see on the
 * user-space path
 * @version:   TLS1_2_VERSION or TLS1_3_VERSION
 * @cipher_id: the IANA id of the suite
 *
 * OpenSSL 3.0 answers a TLS 1.2 AEAD record shorter than its explicit
 * nonce and tag with internal_error; TLS 1.3 it answers right.
 *
 * Return: the length below which a record must be replaced, 0 for none.
 */
size_t mk_tls_min_ciphertext(uint16_t version, uint16_t cipher_id);

#define MK_TLS_MIN_CIPHERTEXT_MAX 24	/* the largest mk_tls_min_ciphertext() */

/**
 * mk_tls_rx_scan() - follow record boundaries in the client's ciphertext
 * @rx:  the connection's state; starts at a record boundary
 * @min: from mk_tls_min_ciphertext(), not 0
 * @p:   the bytes, in stream order
 * @len: how many
 *
 * Return: @len, or the offset in @p of the low length byte of a record
 * shorter than @min: the caller passes @p up to there, then the length
 * byte @min and @min zero bytes, which cannot authenticate
 * (bad_record_mac), and drops the rest. Afterwards the scan returns 0.
 */
size_t mk_tls_rx_scan(struct mk_tls_rx *rx, size_t min, const uint8_t *p, size_t len);

/**
 * mk_tls_count_records() - how many whole TLS records @buf holds
 * @buf:     bytes of a record stream, starting at a record boundary
 * @len:     their number
 * @partial: out: bytes still missing from a last, incomplete record
 *
 * The handshake counts the records of its final flight with it (where the
 * kernel's sequence numbers start), the handover those the client sent
 * behind its Finished.
 *
 * Return: the number of complete records.
 */
unsigned int mk_tls_count_records(const uint8_t *buf, size_t len, size_t *partial);

#endif
