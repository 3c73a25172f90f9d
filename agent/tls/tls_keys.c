// SPDX-License-Identifier: GPL-2.0
/*
 * Traffic keys of an established TLS session for kernel TLS.
 *
 * TLS 1.3: the application traffic secrets reach us through OpenSSL's keylog
 * callback (the only public way to get them in OpenSSL 3.0) and are kept in
 * an ex_data slot of the SSL until the keys are derived. TLS 1.2: the key
 * block is computed from the session's master secret. Both use OpenSSL's
 * KDF implementations; nothing here hand-rolls HMAC or HKDF.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/ssl.h>

#include "tls_keys.h"

#define MK_TLS_RANDOM_LEN 32		/* client_random, server_random */
#define MK_TLS12_MASTER_LEN 48
#define MK_TLS12_KEY_BLOCK_MAX (2 * 32 + 2 * 12)
#define MK_HAVE_CLIENT 1u
#define MK_HAVE_SERVER 2u

/* The AEAD suites kernel TLS accepts, and what their record protection needs. */
struct mk_suite {
	uint16_t su_id;		/* IANA cipher suite number */
	uint16_t su_version;	/* TLS1_2_VERSION or TLS1_3_VERSION */
	const char *su_md;	/* PRF / HKDF hash */
	size_t su_key_len;
	size_t su_iv_len;	/* TLS 1.2 GCM: fixed_iv_length 4 (RFC 5288) */
};

static const struct mk_suite mk_suites[] = {
	{ 0xC02B, TLS1_2_VERSION, "SHA256", 16, 4 },	/* ECDHE-ECDSA-AES128-GCM-SHA256 */
	{ 0xC02F, TLS1_2_VERSION, "SHA256", 16, 4 },	/* ECDHE-RSA-AES128-GCM-SHA256 */
	{ 0xC02C, TLS1_2_VERSION, "SHA384", 32, 4 },	/* ECDHE-ECDSA-AES256-GCM-SHA384 */
	{ 0xC030, TLS1_2_VERSION, "SHA384", 32, 4 },	/* ECDHE-RSA-AES256-GCM-SHA384 */
	{ 0xCCA8, TLS1_2_VERSION, "SHA256", 32, 12 },	/* ECDHE-RSA-CHACHA20-POLY1305 */
	{ 0xCCA9, TLS1_2_VERSION, "SHA256", 32, 12 },	/* ECDHE-ECDSA-CHACHA20-POLY1305 */
	{ 0x1301, TLS1_3_VERSION, "SHA256", 16, 12 },	/* TLS_AES_128_GCM_SHA256 */
	{ 0x1302, TLS1_3_VERSION, "SHA384", 32, 12 },	/* TLS_AES_256_GCM_SHA384 */
	{ 0x1303, TLS1_3_VERSION, "SHA256", 32, 12 },	/* TLS_CHACHA20_POLY1305_SHA256 */
};

static CRYPTO_ONCE mk_keys_once = CRYPTO_ONCE_STATIC_INIT;
static int mk_keys_idx = -1;

static void mk_secrets_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
			    void *argp)
{
	OPENSSL_clear_free(ptr, sizeof(struct mk_tls_secrets));
}

static void mk_keys_register(void)
{
	mk_keys_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, mk_secrets_free);
}

/**
 * mk_tls_keys_init() - register the SSL ex_data slot used for secrets
 *
 * Safe to call more than once and from several threads.
 *
 * Return: 0, or -ENOMEM.
 */
int mk_tls_keys_init(void)
{
	if (!CRYPTO_THREAD_run_once(&mk_keys_once, mk_keys_register) || mk_keys_idx < 0)
		return -ENOMEM;
	return 0;
}

/**
 * mk_tls_keys_attach() - give @ssl a secrets slot (call before the handshake)
 * @ssl: the SSL whose keylog lines are to be kept
 *
 * Return: 0 (also when @ssl already has a slot), or -ENOMEM.
 */
int mk_tls_keys_attach(SSL *ssl)
{
	struct mk_tls_secrets *ts;
	int err;

	err = mk_tls_keys_init();
	if (err)
		return err;
	if (SSL_get_ex_data(ssl, mk_keys_idx))
		return 0;
	ts = OPENSSL_zalloc(sizeof(*ts));
	if (!ts)
		return -ENOMEM;
	if (!SSL_set_ex_data(ssl, mk_keys_idx, ts)) {
		OPENSSL_free(ts);
		return -ENOMEM;
	}
	return 0;
}

/**
 * mk_tls_keys_get() - the secrets captured so far for @ssl
 * @ssl: an SSL given a slot by mk_tls_keys_attach()
 *
 * Return: the slot, or NULL when @ssl has none.
 */
const struct mk_tls_secrets *mk_tls_keys_get(const SSL *ssl)
{
	if (mk_keys_idx < 0)
		return NULL;
	return SSL_get_ex_data(ssl, mk_keys_idx);
}

/**
 * mk_tls_keys_forget() - wipe and release the secrets slot of @ssl
 * @ssl: the SSL; SSL_free() does the same through the ex_data free callback
 */
void mk_tls_keys_forget(SSL *ssl)
{
	struct mk_tls_secrets *ts;

	if (mk_keys_idx < 0)
		return;
	ts = SSL_get_ex_data(ssl, mk_keys_idx);
	if (!ts)
		return;
	SSL_set_ex_data(ssl, mk_keys_idx, NULL);
	OPENSSL_clear_free(ts, sizeof(*ts));
}

/* True if @s starts with @n hex digits followed by a space. */
static bool mk_hex_field(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (OPENSSL_hexchar2int((unsigned char)s[i]) < 0)
			return false;
	return s[n] == ' ';
}

/**
 * mk_tls_keylog_cb() - SSL_CTX_set_keylog_callback() target
 * @ssl:  the SSL the line belongs to
 * @line: "LABEL <client_random hex> <secret hex>", NUL-terminated
 *
 * Keeps CLIENT_TRAFFIC_SECRET_0 and SERVER_TRAFFIC_SECRET_0 in the SSL's
 * slot (if it has one); every other label is ignored. Malformed or
 * over-long lines are ignored too. Nothing is ever printed.
 */
void mk_tls_keylog_cb(const SSL *ssl, const char *line)
{
	static const char client_label[] = "CLIENT_TRAFFIC_SECRET_0 ";
	static const char server_label[] = "SERVER_TRAFFIC_SECRET_0 ";
	const size_t label_len = sizeof(client_label) - 1;
	uint8_t secret[MK_TLS_MAX_SECRET];
	struct mk_tls_secrets *ts;
	const char *hex;
	unsigned int bit;
	uint8_t *dst;
	size_t len = 0;
	size_t n;

	ts = (struct mk_tls_secrets *)mk_tls_keys_get(ssl);
	if (!ts || !line)
		return;
	if (!strncmp(line, client_label, label_len)) {
		bit = MK_HAVE_CLIENT;
		dst = ts->ts_client_app;
	} else if (!strncmp(line, server_label, label_len)) {
		bit = MK_HAVE_SERVER;
		dst = ts->ts_server_app;
	} else {
		return;
	}
	if (!mk_hex_field(line + label_len, 2 * MK_TLS_RANDOM_LEN))
		return;
	hex = line + label_len + 2 * MK_TLS_RANDOM_LEN + 1;
	n = strnlen(hex, 2 * MK_TLS_MAX_SECRET + 1);
	if (n != 64 && n != 96)
		return;
	if (!OPENSSL_hexstr2buf_ex(secret, sizeof(secret), &len, hex, '\0'))
		goto out_wipe;
	/* Both secrets of one session come from the same hash. */
	if (ts->ts_have && ts->ts_len != len)
		goto out_wipe;
	memcpy(dst, secret, len);
	ts->ts_len = len;
	ts->ts_have |= bit;
out_wipe:
	OPENSSL_cleanse(secret, sizeof(secret));
}

/* Run the KDF @name with @params into @out. */
static int mk_kdf(const char *name, const OSSL_PARAM *params, uint8_t *out, size_t out_len)
{
	EVP_KDF_CTX *kctx = NULL;
	EVP_KDF *kdf;
	int err = -EIO;

	kdf = EVP_KDF_fetch(NULL, name, NULL);
	if (!kdf)
		return -EIO;
	kctx = EVP_KDF_CTX_new(kdf);
	if (kctx && EVP_KDF_derive(kctx, out, out_len, params) > 0)
		err = 0;
	EVP_KDF_CTX_free(kctx);	/* clears the copy of the secret it held */
	EVP_KDF_free(kdf);
	return err;
}

/**
 * mk_tls13_expand_label() - HKDF-Expand-Label (RFC 8446 §7.1), via TLS13-KDF
 * @md_name:     "SHA256" or "SHA384"
 * @secret:      the PRK, e.g. a traffic secret
 * @secret_len:  its length
 * @label:       label without the "tls13 " prefix, e.g. "key"
 * @context:     context (may be NULL when @context_len is 0)
 * @context_len: its length
 * @out:         output
 * @out_len:     bytes wanted
 *
 * Return: 0, or -EIO.
 */
int mk_tls13_expand_label(const char *md_name, const uint8_t *secret, size_t secret_len,
			  const char *label, const uint8_t *context, size_t context_len,
			  uint8_t *out, size_t out_len)
{
	int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
	OSSL_PARAM params[7], *p = params;

	*p++ = OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode);
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_name, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, secret_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PREFIX, "tls13 ", 6);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_LABEL, (void *)label,
						 strlen(label));
	if (context_len)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_DATA, (void *)context,
							 context_len);
	*p = OSSL_PARAM_construct_end();
	return mk_kdf(OSSL_KDF_NAME_TLS1_3_KDF, params, out, out_len);
}

/**
 * mk_tls12_prf() - the TLS 1.2 PRF (RFC 5246 §5), via TLS1-PRF
 * @md_name:    "SHA256" or "SHA384"
 * @secret:     e.g. the master secret
 * @secret_len: its length
 * @label:      ASCII label, e.g. "key expansion"
 * @seed1:      first part of the seed
 * @seed1_len:  its length
 * @seed2:      second part of the seed (may be NULL when @seed2_len is 0)
 * @seed2_len:  its length
 * @out:        output
 * @out_len:    bytes wanted
 *
 * Return: 0, or -EIO.
 */
int mk_tls12_prf(const char *md_name, const uint8_t *secret, size_t secret_len,
		 const char *label, const uint8_t *seed1, size_t seed1_len,
		 const uint8_t *seed2, size_t seed2_len, uint8_t *out, size_t out_len)
{
	OSSL_PARAM params[6], *p = params;

	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_name, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)secret,
						 secret_len);
	/* TLS1-PRF concatenates repeated seed parameters: label || seed1 || seed2. */
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (void *)label,
						 strlen(label));
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (void *)seed1, seed1_len);
	if (seed2_len)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, (void *)seed2,
							 seed2_len);
	*p = OSSL_PARAM_construct_end();
	return mk_kdf(OSSL_KDF_NAME_TLS1_PRF, params, out, out_len);
}

static const struct mk_suite *mk_suite_find(uint16_t id, int version)
{
	size_t i;

	for (i = 0; i < sizeof(mk_suites) / sizeof(mk_suites[0]); i++)
		if (mk_suites[i].su_id == id && mk_suites[i].su_version == version)
			return &mk_suites[i];
	return NULL;
}

static void mk_dir_keys_set(struct mk_tls_dir_keys *k, const struct mk_suite *su,
			    const uint8_t *key, const uint8_t *iv)
{
	memset(k, 0, sizeof(*k));
	k->dk_version = su->su_version;
	k->dk_cipher = su->su_id;
	k->dk_key_len = su->su_key_len;
	k->dk_iv_len = su->su_iv_len;
	memcpy(k->dk_key, key, su->su_key_len);
	memcpy(k->dk_iv, iv, su->su_iv_len);
}

/* TLS 1.3 (RFC 8446 §7.3): key and iv of one direction from its traffic secret. */
static int mk_tls13_dir(const struct mk_suite *su, const uint8_t *secret, size_t secret_len,
			struct mk_tls_dir_keys *k)
{
	uint8_t key[32], iv[12];
	int err;

	err = mk_tls13_expand_label(su->su_md, secret, secret_len, "key", NULL, 0, key,
				    su->su_key_len);
	if (!err)
		err = mk_tls13_expand_label(su->su_md, secret, secret_len, "iv", NULL, 0, iv,
					    sizeof(iv));
	if (!err)
		mk_dir_keys_set(k, su, key, iv);
	OPENSSL_cleanse(key, sizeof(key));
	OPENSSL_cleanse(iv, sizeof(iv));
	return err;
}

static int mk_tls13_derive(SSL *ssl, const struct mk_suite *su, struct mk_tls_dir_keys *client,
			   struct mk_tls_dir_keys *server)
{
	const struct mk_tls_secrets *ts = mk_tls_keys_get(ssl);
	int md_len;
	int err;

	if (!ts || ts->ts_have != (MK_HAVE_CLIENT | MK_HAVE_SERVER))
		return -EINVAL;
	md_len = EVP_MD_get_size(SSL_CIPHER_get_handshake_digest(SSL_get_current_cipher(ssl)));
	if (md_len <= 0 || (size_t)md_len != ts->ts_len)
		return -EINVAL;
	err = mk_tls13_dir(su, ts->ts_client_app, ts->ts_len, client);
	if (!err)
		err = mk_tls13_dir(su, ts->ts_server_app, ts->ts_len, server);
	return err;
}

/*
 * TLS 1.2 (RFC 5246 §6.3): key_block = PRF(master, "key expansion",
 * server_random + client_random); AEAD suites have no MAC keys, so it is
 * client_write_key, server_write_key, client_write_IV, server_write_IV.
 */
static int mk_tls12_derive(SSL *ssl, const struct mk_suite *su, struct mk_tls_dir_keys *client,
			   struct mk_tls_dir_keys *server)
{
	uint8_t cr[MK_TLS_RANDOM_LEN], sr[MK_TLS_RANDOM_LEN];
	uint8_t master[MK_TLS12_MASTER_LEN];
	uint8_t block[MK_TLS12_KEY_BLOCK_MAX];
	const size_t kl = su->su_key_len, il = su->su_iv_len;
	SSL_SESSION *sess = SSL_get_session(ssl);
	size_t master_len;
	int err = -EINVAL;

	if (!sess)
		return -EINVAL;
	master_len = SSL_SESSION_get_master_key(sess, master, sizeof(master));
	if (master_len != sizeof(master))
		goto out_wipe;
	if (SSL_get_client_random(ssl, cr, sizeof(cr)) != sizeof(cr) ||
	    SSL_get_server_random(ssl, sr, sizeof(sr)) != sizeof(sr))
		goto out_wipe;
	err = mk_tls12_prf(su->su_md, master, master_len, "key expansion", sr, sizeof(sr), cr,
			   sizeof(cr), block, 2 * kl + 2 * il);
	if (err)
		goto out_wipe;
	mk_dir_keys_set(client, su, block, block + 2 * kl);
	mk_dir_keys_set(server, su, block + kl, block + 2 * kl + il);
out_wipe:
	OPENSSL_cleanse(master, sizeof(master));
	OPENSSL_cleanse(block, sizeof(block));
	return err;
}

/**
 * mk_tls_keys_derive() - derive both directions' keys of an established SSL
 * @ssl: SSL with the handshake complete (server side, or client side)
 * @tx:  keys for what @ssl sends (the server's write keys on a server)
 * @rx:  keys for what @ssl receives (the client's write keys on a server)
 *
 * The sequence numbers are left at 0; the caller knows how many records
 * went each way and sets them. Call mk_tls_keys_forget() afterwards to drop
 * the TLS 1.3 secrets.
 *
 * Return: 0; -ENOTSUP for a cipher kTLS cannot take; -EINVAL if the
 * secrets were not captured; -EIO when OpenSSL's KDF fails.
 */
int mk_tls_keys_derive(SSL *ssl, struct mk_tls_dir_keys *tx, struct mk_tls_dir_keys *rx)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	struct mk_tls_dir_keys *client = rx, *server = tx;
	const struct mk_suite *su;
	int err;

	memset(tx, 0, sizeof(*tx));
	memset(rx, 0, sizeof(*rx));
	if (!cipher || !SSL_is_init_finished(ssl))
		return -EINVAL;
	su = mk_suite_find(SSL_CIPHER_get_protocol_id(cipher), SSL_version(ssl));
	if (!su)
		return -ENOTSUP;
	if (!SSL_is_server(ssl)) {
		client = tx;
		server = rx;
	}
	if (su->su_version == TLS1_3_VERSION)
		err = mk_tls13_derive(ssl, su, client, server);
	else
		err = mk_tls12_derive(ssl, su, client, server);
	if (err) {
		mk_tls_dir_keys_wipe(tx);
		mk_tls_dir_keys_wipe(rx);
	}
	return err;
}

/**
 * mk_tls_dir_keys_wipe() - erase one direction's keys
 * @k: the keys; all of it is zeroed
 */
void mk_tls_dir_keys_wipe(struct mk_tls_dir_keys *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

/**
 * mk_tls13_traffic_take() - copy @ssl's TLS 1.3 application traffic secrets
 * @ssl: an established TLS 1.3 SSL whose secrets were captured
 * @tt:  out; wipe it with mk_tls13_traffic_wipe()
 *
 * Return: 0; -EINVAL if @ssl is not TLS 1.3 or its secrets are missing;
 * -ENOTSUP for a suite kernel TLS does not take.
 */
int mk_tls13_traffic_take(SSL *ssl, struct mk_tls13_traffic *tt)
{
	const SSL_CIPHER *cipher = SSL_get_current_cipher(ssl);
	const struct mk_tls_secrets *ts = mk_tls_keys_get(ssl);

	memset(tt, 0, sizeof(*tt));
	if (!cipher || SSL_version(ssl) != TLS1_3_VERSION)
		return -EINVAL;
	if (!mk_suite_find(SSL_CIPHER_get_protocol_id(cipher), TLS1_3_VERSION))
		return -ENOTSUP;
	if (!ts || ts->ts_have != (MK_HAVE_CLIENT | MK_HAVE_SERVER))
		return -EINVAL;
	memcpy(tt->tt_client, ts->ts_client_app, ts->ts_len);
	memcpy(tt->tt_server, ts->ts_server_app, ts->ts_len);
	tt->tt_len = (uint8_t)ts->ts_len;
	tt->tt_cipher = SSL_CIPHER_get_protocol_id(cipher);
	return 0;
}

/**
 * mk_tls13_next_secret() - application_traffic_secret_N+1 (RFC 8446 §7.2)
 * @md_name: "SHA256" or "SHA384"
 * @secret:  the current secret; replaced by the next, the old one wiped
 * @len:     its length (the hash's)
 *
 * Return: 0, or -EIO (@secret unchanged).
 */
int mk_tls13_next_secret(const char *md_name, uint8_t *secret, size_t len)
{
	uint8_t next[MK_TLS_MAX_SECRET];
	int err;

	if (len > sizeof(next))
		return -EIO;
	err = mk_tls13_expand_label(md_name, secret, len, "traffic upd", NULL, 0, next, len);
	if (!err)
		memcpy(secret, next, len);
	OPENSSL_cleanse(next, sizeof(next));
	return err;
}

/**
 * mk_tls13_traffic_update() - step one direction to its next secret and
 * derive that secret's key and IV
 * @tt:     the connection's secrets
 * @client: true for the client's direction, false for the server's
 * @k:      out: the keys, sequence number 0 (RFC 8446 §5.3: it restarts)
 *
 * The secret is stepped in a copy and kept only when the keys could be
 * derived, so a failure leaves the connection's state as it was.
 *
 * Return: 0, or -EIO / -ENOTSUP with @tt unchanged and @k wiped.
 */
int mk_tls13_traffic_update(struct mk_tls13_traffic *tt, bool client,
			    struct mk_tls_dir_keys *k)
{
	const struct mk_suite *su = mk_suite_find(tt->tt_cipher, TLS1_3_VERSION);
	uint8_t *cur = client ? tt->tt_client : tt->tt_server;
	uint8_t next[MK_TLS_MAX_SECRET];
	int err;

	memset(k, 0, sizeof(*k));
	if (!su || tt->tt_len > sizeof(next))
		return -ENOTSUP;
	memcpy(next, cur, tt->tt_len);
	err = mk_tls13_next_secret(su->su_md, next, tt->tt_len);
	if (!err)
		err = mk_tls13_dir(su, next, tt->tt_len, k);
	if (!err)
		memcpy(cur, next, tt->tt_len);
	else
		mk_tls_dir_keys_wipe(k);
	OPENSSL_cleanse(next, sizeof(next));
	return err;
}

/**
 * mk_tls13_traffic_wipe() - erase the kept secrets
 * @tt: all of it is zeroed
 */
void mk_tls13_traffic_wipe(struct mk_tls13_traffic *tt)
{
	OPENSSL_cleanse(tt, sizeof(*tt));
}
