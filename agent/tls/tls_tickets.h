/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Session ticket keys shared by several hosts (ticket_keys = FILE), in
 * haproxy's tls-ticket-keys format and rotation scheme: one base64 key per
 * line, 48 bytes (16 name, 16 AES-128, 16 HMAC-SHA256) or 80 bytes (16
 * name, 32 AES-256, 32 HMAC-SHA256), all of one size; the last three keys
 * decrypt, the second-to-last encrypts.
 */
#ifndef MAILKTLS_TLS_TICKETS_H
#define MAILKTLS_TLS_TICKETS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "config.h"

#define MK_TICKET_KEYS_USED	3	/* haproxy's TLS_TICKETS_NO */
#define MK_TICKET_NAME_LEN	16
#define MK_TICKET_FILE_MAX	(64 * 1024)

struct mk_ticket_key {
	uint8_t tk_name[MK_TICKET_NAME_LEN];	/* sent in clear in every ticket */
	uint8_t tk_aes[32];
	uint8_t tk_hmac[32];
};

/* Read-only once loaded: every worker's handshakes read it without a lock. */
struct mk_ticket_keys {
	struct mk_ticket_key tks_key[MK_TICKET_KEYS_USED];
	size_t tks_len;			/* AES and HMAC key length: 16 or 32 */
	unsigned int tks_enc;		/* index of the key that encrypts */
};

/**
 * mk_ticket_keys_load() - read the listener's ticket_keys file
 * @cfg:    whole configuration (for the file name in messages)
 * @lc:     the listener, lc_ticket_keys set
 * @out:    the keys, for mk_ticket_keys_free()
 * @err:    "FILE:LINE: message", LINE being the ticket_keys key's; the
 *          message names the key file and its line, never key material
 * @errlen: size of @err
 *
 * Refused: a file others may read or write, larger than 64 KiB, a line that
 * is not the base64 of 48 or 80 bytes, sizes mixed, fewer than three keys.
 *
 * Return: 0, -EINVAL with @err set, -ENOMEM.
 */
int mk_ticket_keys_load(const struct mk_config *cfg, const struct mk_listener_cfg *lc,
			struct mk_ticket_keys **out, char *err, size_t errlen);

/**
 * mk_ticket_keys_attach() - encrypt and decrypt @ctx's tickets with @keys
 * @ctx:  a server context
 * @keys: must outlive @ctx
 *
 * Return: 0, or -ENOMEM.
 */
int mk_ticket_keys_attach(SSL_CTX *ctx, const struct mk_ticket_keys *keys);

/* Wipe and free; NULL is fine. */
void mk_ticket_keys_free(struct mk_ticket_keys *keys);

#endif
