/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Kernel TLS: probing for it, installing keys on a socket, and the control
 * records (alerts, handshake messages) that cannot travel by splice.
 */
#ifndef MAILKTLS_KTLS_H
#define MAILKTLS_KTLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <linux/tls.h>

#include "tls_keys.h"

/* What setsockopt(SOL_TLS, TLS_TX/TLS_RX) takes, for every cipher we use. */
union mk_ktls_crypto_info {
	struct tls_crypto_info ci_info;
	struct tls12_crypto_info_aes_gcm_128 ci_gcm128;
	struct tls12_crypto_info_aes_gcm_256 ci_gcm256;
	struct tls12_crypto_info_chacha20_poly1305 ci_chacha;
};

/**
 * mk_ktls_crypto_info() - fill the kernel's crypto_info for one direction
 * @k:  keys, cipher, version and next record sequence number
 * @ci: out; the caller wipes it after use
 *
 * GCM: salt = the first 4 bytes of the static IV; iv = TLS 1.2: the explicit
 * nonce of the next record (OpenSSL uses the sequence number), TLS 1.3: the
 * last 8 bytes of the static IV. ChaCha20-Poly1305: iv = the 12-byte static IV.
 * rec_seq = @k->dk_seq, big-endian.
 *
 * Return: the number of bytes of @ci to pass to setsockopt; -ENOTSUP for a
 * cipher or version kTLS does not take; -EINVAL for inconsistent lengths.
 */
int mk_ktls_crypto_info(const struct mk_tls_dir_keys *k, union mk_ktls_crypto_info *ci);

#define MK_TLS_CT_CHANGE_CIPHER_SPEC 20
#define MK_TLS_CT_ALERT 21
#define MK_TLS_CT_HANDSHAKE 22
#define MK_TLS_CT_APPLICATION_DATA 23

/**
 * mk_ktls_probe() - can this kernel do TLS_TX and TLS_RX?
 * @why:    on failure, a sentence saying why not ("TCP_ULP tls: No such
 *          file or directory (kernel without CONFIG_TLS, or module tls not
 *          loaded)")
 * @whylen: size of @why
 *
 * Tries on a loopback TCP connection it makes and closes.
 *
 * Return: true if kTLS works.
 */
bool mk_ktls_probe(char *why, size_t whylen);

/**
 * mk_ktls_probe_rekey() - can this kernel change the keys of a kTLS socket
 * (TLS 1.3 KeyUpdate, Linux 6.14 and later)?
 *
 * Tries it on a loopback TCP connection it makes and closes: sets TLS_TX,
 * then sets it again with other keys, which older kernels refuse (EBUSY).
 * The answer is kept for mk_ktls_can_rekey().
 *
 * Return: true if the second TLS_TX was taken.
 */
bool mk_ktls_probe_rekey(void);

/* The last answer of mk_ktls_probe_rekey() (false before the first). */
bool mk_ktls_can_rekey(void);

/**
 * mk_ktls_rekey() - give one direction of a kTLS socket its next keys
 * @fd: the kTLS socket
 * @tx: true for TLS_TX, false for TLS_RX
 * @k:  the keys; the record sequence number is @k->dk_seq (0 after a
 *      KeyUpdate)
 *
 * Return: 0, or negative errno from setsockopt.
 */
int mk_ktls_rekey(int fd, bool tx, const struct mk_tls_dir_keys *k);

/**
 * mk_ktls_rx_resume() - let the kernel decrypt again after a record that
 * starts a KeyUpdate message but does not hold all of it
 * @fd: the kTLS socket
 *
 * A kernel that can rekey stops decrypting after any handshake record that
 * begins with the KeyUpdate type until TLS_RX is set again. When the
 * message continues in the next record, that record is under the same
 * keys: this sets TLS_RX to what it is (keys and next sequence number, as
 * getsockopt returns them).
 *
 * Return: 0, or negative errno.
 */
int mk_ktls_rx_resume(int fd);

/**
 * mk_ktls_send_key_update() - send KeyUpdate(update_not_requested) as a
 * handshake record under the current TX keys
 * @fd: the kTLS socket
 *
 * Return: 0, or negative errno (-EAGAIN on a full non-blocking socket).
 */
int mk_ktls_send_key_update(int fd);

/**
 * mk_ktls_install() - switch @fd to kernel TLS in both directions
 * @fd:     an established TCP socket with nothing unread by user space
 * @tx:     keys and next sequence number for sending
 * @rx:     keys and next sequence number for receiving
 * @err:    on failure, a readable reason naming the setsockopt that failed
 *
 * Return: 0; negative errno from the failing setsockopt. On failure after
 * TLS_TX succeeded the socket is unusable and must be closed.
 */
int mk_ktls_install(int fd, const struct mk_tls_dir_keys *tx, const struct mk_tls_dir_keys *rx,
		    char *err, size_t errlen);

/**
 * mk_ktls_send_alert() - send an alert record on a kTLS socket
 * Return: 0, or negative errno.
 */
int mk_ktls_send_alert(int fd, uint8_t level, uint8_t description);

/**
 * mk_ktls_rx_version() - the TLS version of @fd's receive direction
 * @fd: a kTLS socket
 *
 * Return: TLS1_2_VERSION or TLS1_3_VERSION, or negative errno.
 */
int mk_ktls_rx_version(int fd);

/**
 * mk_ktls_recv_record() - read one record with its content type
 * (used when splice/recv report a non-data record)
 * @type: out, the record's content type
 * Return: bytes of payload read (>= 0), or negative errno (-EBADMSG on a
 * record that fails to decrypt, -EAGAIN).
 */
ssize_t mk_ktls_recv_record(int fd, uint8_t *buf, size_t len, uint8_t *type);

#endif
