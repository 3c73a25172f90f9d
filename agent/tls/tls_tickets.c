// SPDX-License-Identifier: GPL-2.0
/*
 * Session tickets under keys from a file, so that a ticket one host issued
 * resumes on another (TLS 1.2 tickets and TLS 1.3 PSKs alike: OpenSSL
 * protects both with the same callback).
 *
 * Rotation, as haproxy does it: the file holds at least three keys, the
 * last three are kept, the second-to-last encrypts. An operator appends a
 * new key and drops the oldest; during the roll-out a host still on the old
 * file already accepts the key the updated hosts encrypt with (it was the
 * last one), and the updated hosts still accept the old encrypting key. A
 * ticket under a key that no longer encrypts is accepted and replaced.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "tls_tickets.h"

#define MK_TICKET_LINE_MAX	128	/* base64 of 80 bytes is 108 */

static int ticket_ex_idx = -1;
static pthread_once_t ticket_ex_once = PTHREAD_ONCE_INIT;

static void ticket_ex_register(void)
{
	ticket_ex_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int tickets_err(char *err, size_t errlen, const struct mk_config *cfg,
		       const struct mk_listener_cfg *lc, int line, const char *msg)
{
	if (line)
		snprintf(err, errlen, "%s:%d: ticket_keys %s line %d: %s", cfg->cf_path,
			 lc->lc_ticket_keys.pc_line, lc->lc_ticket_keys.pc_path, line, msg);
	else
		snprintf(err, errlen, "%s:%d: ticket_keys %s: %s", cfg->cf_path,
			 lc->lc_ticket_keys.pc_line, lc->lc_ticket_keys.pc_path, msg);
	return -EINVAL;
}

/* The whole file, if only its owner and group may read it. */
static int tickets_read(const char *path, char *buf, size_t cap, size_t *len, char *msg,
			size_t msglen)
{
	struct stat st;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		snprintf(msg, msglen, "cannot open: %s", strerror(errno));
		return -EINVAL;
	}
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_mode & S_IRWXO)) {
		snprintf(msg, msglen, "must be a regular file that others cannot read or "
			 "write (mode %04o; chmod o-rwx)", (unsigned int)(st.st_mode & 07777));
		close(fd);
		return -EINVAL;
	}
	*len = 0;
	while (*len < cap) {
		n = read(fd, buf + *len, cap - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		*len += (size_t)n;
	}
	close(fd);
	if (*len == cap) {
		snprintf(msg, msglen, "larger than %d bytes", MK_TICKET_FILE_MAX);
		return -EINVAL;
	}
	return 0;
}

/* One base64 line into @out; returns the decoded length or -1. */
static int tickets_decode(const char *line, size_t len, uint8_t *out)
{
	EVP_ENCODE_CTX *ec = EVP_ENCODE_CTX_new();
	int n = -1, m = 0;

	if (!ec)
		return -1;
	EVP_DecodeInit(ec);
	if (EVP_DecodeUpdate(ec, out, &n, (const unsigned char *)line, (int)len) >= 0 &&
	    EVP_DecodeFinal(ec, out + n, &m) == 1)
		n += m;
	else
		n = -1;
	EVP_ENCODE_CTX_free(ec);
	return n;
}

/* Lines into the ring of the last MK_TICKET_KEYS_USED keys, as haproxy fills it. */
static int tickets_parse(struct mk_ticket_keys *k, char *text, size_t len, int *bad_line,
			 const char **msg)
{
	uint8_t raw[MK_TICKET_LINE_MAX];
	char *p = text, *end = text + len, *nl;
	unsigned int nkeys = 0;
	int line = 0, n;
	size_t l;

	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		l = (nl ? nl : end) - p;
		line++;
		*bad_line = line;
		if (l && p[l - 1] == '\r')
			l--;
		if (l == 0) {
			p = nl ? nl + 1 : end;
			continue;
		}
		*msg = "not the base64 of a 48 or 80 byte key";
		n = l < MK_TICKET_LINE_MAX ? tickets_decode(p, l, raw) : -1;
		if (n != 48 && n != 80)
			goto out_wipe;
		if (k->tks_len && (size_t)n != MK_TICKET_NAME_LEN + 2 * k->tks_len) {
			*msg = "48 and 80 byte keys mixed (the first key sets the size)";
			goto out_wipe;
		}
		k->tks_len = (size_t)(n - MK_TICKET_NAME_LEN) / 2;
		memcpy(k->tks_key[nkeys % MK_TICKET_KEYS_USED].tk_name, raw, MK_TICKET_NAME_LEN);
		memcpy(k->tks_key[nkeys % MK_TICKET_KEYS_USED].tk_aes, raw + MK_TICKET_NAME_LEN,
		       k->tks_len);
		memcpy(k->tks_key[nkeys % MK_TICKET_KEYS_USED].tk_hmac,
		       raw + MK_TICKET_NAME_LEN + k->tks_len, k->tks_len);
		nkeys++;
		OPENSSL_cleanse(raw, sizeof(raw));
		p = nl ? nl + 1 : end;
	}
	*bad_line = 0;
	if (nkeys < MK_TICKET_KEYS_USED) {
		*msg = "fewer than 3 keys (the last 3 are used, the second-to-last encrypts)";
		return -EINVAL;
	}
	k->tks_enc = (nkeys - 2) % MK_TICKET_KEYS_USED;
	return 0;

out_wipe:
	OPENSSL_cleanse(raw, sizeof(raw));
	return -EINVAL;
}

int mk_ticket_keys_load(const struct mk_config *cfg, const struct mk_listener_cfg *lc,
			struct mk_ticket_keys **out, char *err, size_t errlen)
{
	struct mk_ticket_keys *k;
	const char *msg = "";
	char rmsg[160];
	int line = 0, ret;
	size_t len = 0;
	char *text;

	text = malloc(MK_TICKET_FILE_MAX);
	k = OPENSSL_secure_zalloc(sizeof(*k));
	if (!text || !k) {
		ret = -ENOMEM;
		goto out_free;
	}
	ret = tickets_read(lc->lc_ticket_keys.pc_path, text, MK_TICKET_FILE_MAX, &len, rmsg,
			   sizeof(rmsg));
	if (ret) {
		tickets_err(err, errlen, cfg, lc, 0, rmsg);
		goto out_free;
	}
	ret = tickets_parse(k, text, len, &line, &msg);
	if (ret) {
		tickets_err(err, errlen, cfg, lc, line, msg);
		goto out_free;
	}
	OPENSSL_cleanse(text, len);
	free(text);
	*out = k;
	return 0;

out_free:
	if (text)
		OPENSSL_cleanse(text, len);
	free(text);
	mk_ticket_keys_free(k);
	return ret;
}

/**
 * mk_ticket_keys_free() - wipe and free ticket keys
 * @keys: from mk_ticket_keys_load(), or NULL
 */
void mk_ticket_keys_free(struct mk_ticket_keys *keys)
{
	if (keys)
		OPENSSL_secure_clear_free(keys, sizeof(*keys));
}

static int ticket_key_use(const struct mk_ticket_keys *k, const struct mk_ticket_key *key,
			  unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
	const EVP_CIPHER *cipher = k->tks_len == 32 ? EVP_aes_256_cbc() : EVP_aes_128_cbc();
	OSSL_PARAM params[3];

	params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key->tk_hmac,
						      k->tks_len);
	params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[2] = OSSL_PARAM_construct_end();
	if (!EVP_MAC_CTX_set_params(hctx, params))
		return -1;
	if (enc && RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1)
		return -1;
	if (!EVP_CipherInit_ex(cctx, cipher, NULL, key->tk_aes, iv, enc))
		return -1;
	return 0;
}

/*
 * SSL_CTX_set_tlsext_ticket_key_evp_cb(): encrypt with the second-to-last
 * key; decrypt with whichever of the three has the ticket's name. Return 1
 * (done), 2 (accepted, issue a new ticket under the current key), 0 (not
 * ours: full handshake), -1 (error).
 */
static int ticket_key_cb(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
			 EVP_MAC_CTX *hctx, int enc)
{
	const struct mk_ticket_keys *k = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ticket_ex_idx);
	unsigned int i;

	if (!k)
		return -1;
	if (enc) {
		memcpy(name, k->tks_key[k->tks_enc].tk_name, MK_TICKET_NAME_LEN);
		return ticket_key_use(k, &k->tks_key[k->tks_enc], iv, cctx, hctx, 1) ? -1 : 1;
	}
	for (i = 0; i < MK_TICKET_KEYS_USED; i++) {
		if (CRYPTO_memcmp(name, k->tks_key[i].tk_name, MK_TICKET_NAME_LEN))
			continue;
		if (ticket_key_use(k, &k->tks_key[i], iv, cctx, hctx, 0))
			return -1;
		return i == k->tks_enc ? 1 : 2;
	}
	return 0;
}

int mk_ticket_keys_attach(SSL_CTX *ctx, const struct mk_ticket_keys *keys)
{
	pthread_once(&ticket_ex_once, ticket_ex_register);
	if (ticket_ex_idx < 0 || !SSL_CTX_set_ex_data(ctx, ticket_ex_idx, (void *)keys))
		return -ENOMEM;
	if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, ticket_key_cb) != 1)
		return -ENOMEM;
	return 0;
}
