/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Traffic keys of an established TLS session, derived in the agent so that
 * both directions can be handed to kernel TLS for TLS 1.2 and 1.3 (OpenSSL
 * 3.0 cannot offload TLS 1.3 receive itself).
 *
 * The secrets come from OpenSSL's keylog callback (TLS 1.3 traffic secrets)
 * and SSL_SESSION_get_master_key() (TLS 1.2); keys are derived with
 * OpenSSL's own KDFs (TLS13-KDF for HKDF-Expand-Label, TLS1-PRF for the
 * TLS 1.2 key block). Every buffer that held a secret is wiped.
 */
#ifndef MAILKTLS_TLS_KEYS_H
#define MAILKTLS_TLS_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#define MK_TLS_MAX_SECRET 48	/* SHA-384 */

/* One direction's record protection state. */
struct mk_tls_dir_keys {
	uint16_t dk_version;	/* TLS1_2_VERSION, TLS1_3_VERSION */
	uint16_t dk_cipher;	/* IANA number, e.g. 0x1301 */
	uint8_t dk_key[32];
	size_t dk_key_len;	/* 16 or 32 */
	uint8_t dk_iv[12];	/* full static IV (TLS 1.2 GCM: 4-byte salt + 8 unused) */
	size_t dk_iv_len;	/* 12 for 1.3 and ChaCha; 4 for 1.2 GCM */
	uint64_t dk_seq;	/* next record sequence number */
};

/* Secrets captured during the handshake of one SSL (kept in its ex_data). */
struct mk_tls_secrets {
	uint8_t ts_client_app[MK_TLS_MAX_SECRET];
	uint8_t ts_server_app[MK_TLS_MAX_SECRET];
	size_t ts_len;
	unsigned int ts_have;	/* bit 0: client, bit 1: server */
};

/*
 * The current application traffic secrets of a TLS 1.3 connection on kernel
 * TLS, kept after the handover so that the connection can follow the
 * client's KeyUpdates (RFC 8446 §4.6.3): the next secret is derived from
 * the current one, so both must be kept, and nothing else need be.
 */
struct mk_tls13_traffic {
	uint8_t tt_client[MK_TLS_MAX_SECRET];
	uint8_t tt_server[MK_TLS_MAX_SECRET];
	uint8_t tt_len;		/* 32 or 48: the suite's hash length */
	uint16_t tt_cipher;	/* IANA number, 0x1301..0x1303 */
};

/**
 * mk_tls_keys_init() - register the SSL ex_data slot used for secrets
 * Return: 0, or -ENOMEM.
 */
int mk_tls_keys_init(void);

/**
 * mk_tls_keys_attach() - give @ssl a secrets slot (call before the handshake)
 * Return: 0, or -ENOMEM.
 */
int mk_tls_keys_attach(SSL *ssl);

/* SSL_CTX_set_keylog_callback() target: stores TLS 1.3 application traffic
 * secrets in the SSL's slot; never logs anything. */
void mk_tls_keylog_cb(const SSL *ssl, const char *line);

/**
 * mk_tls_keys_derive() - derive both directions' keys of an established SSL
 * @ssl:       SSL with the handshake complete (server side; client side works too)
 * @tx:        keys for what @ssl sends (server: the server write keys)
 * @rx:        keys for what @ssl receives (server: the client write keys)
 *
 * The sequence numbers are left at 0; the caller knows how many records
 * went each way and sets them.
 *
 * Return: 0; -ENOTSUP for a cipher kTLS cannot take; -EINVAL if the
 * secrets were not captured; -EIO when OpenSSL's KDF fails.
 */
int mk_tls_keys_derive(SSL *ssl, struct mk_tls_dir_keys *tx, struct mk_tls_dir_keys *rx);

/* Wipe and release the secrets slot of @ssl (also done by SSL_free). */
void mk_tls_keys_forget(SSL *ssl);

/**
 * mk_tls13_expand_label() - HKDF-Expand-Label (RFC 8446 §7.1), via TLS13-KDF
 * @md_name: "SHA256" or "SHA384"
 * Return: 0, or -EIO.
 */
int mk_tls13_expand_label(const char *md_name, const uint8_t *secret, size_t secret_len,
			  const char *label, const uint8_t *context, size_t context_len,
			  uint8_t *out, size_t out_len);

/**
 * mk_tls12_prf() - TLS 1.2 PRF (RFC 5246 §5), via TLS1-PRF:
 * P_<md>(secret, label || seed1 || seed2)
 * @md_name: "SHA256" or "SHA384"
 * Return: 0, or -EIO.
 */
int mk_tls12_prf(const char *md_name, const uint8_t *secret, size_t secret_len,
		 const char *label, const uint8_t *seed1, size_t seed1_len,
		 const uint8_t *seed2, size_t seed2_len, uint8_t *out, size_t out_len);

/**
 * mk_tls13_traffic_take() - copy @ssl's TLS 1.3 application traffic secrets
 * @ssl: an established TLS 1.3 SSL whose secrets were captured
 * @tt:  out; wipe it with mk_tls13_traffic_wipe()
 *
 * Return: 0; -EINVAL if @ssl is not TLS 1.3 or its secrets are missing;
 * -ENOTSUP for a suite kernel TLS does not take.
 */
int mk_tls13_traffic_take(SSL *ssl, struct mk_tls13_traffic *tt);

/**
 * mk_tls13_next_secret() - application_traffic_secret_N+1 (RFC 8446 §7.2)
 * @md_name: "SHA256" or "SHA384"
 * @secret:  the current secret; replaced by the next, the old one wiped
 * @len:     its length (the hash's)
 *
 * HKDF-Expand-Label(secret, "traffic upd", "", Hash.length).
 *
 * Return: 0, or -EIO (@secret unchanged).
 */
int mk_tls13_next_secret(const char *md_name, uint8_t *secret, size_t len);

/**
 * mk_tls13_traffic_update() - step one direction to its next secret and
 * derive that secret's key and IV
 * @tt:     the connection's secrets
 * @client: true for the client's direction, false for the server's
 * @k:      out: the keys, sequence number 0 (RFC 8446 §5.3: it restarts)
 *
 * Return: 0, or -EIO / -ENOTSUP with @tt unchanged and @k wiped.
 */
int mk_tls13_traffic_update(struct mk_tls13_traffic *tt, bool client,
			    struct mk_tls_dir_keys *k);

/* Erase the kept secrets. */
void mk_tls13_traffic_wipe(struct mk_tls13_traffic *tt);

/* The secrets slot of @ssl (NULL if none): for tests and diagnostics. */
const struct mk_tls_secrets *mk_tls_keys_get(const SSL *ssl);

void mk_tls_dir_keys_wipe(struct mk_tls_dir_keys *k);

#endif
