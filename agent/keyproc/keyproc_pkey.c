// SPDX-License-Identifier: GPL-2.0
/*
 * Keys whose private half is in the key process: an RSA or EC public key
 * with a method whose private operation asks the key process.
 *
 * Why RSA_METHOD and EC_KEY_METHOD, deprecated in OpenSSL 3: they are the
 * documented way, in 3.0, to give one key its own private operation (a
 * key with a foreign method stays on the legacy EVP path, which libssl
 * uses like any other key: TLS 1.2 and 1.3, PKCS#1 v1.5 and PSS, ECDSA),
 * and OpenSMTPD's key process does the same. A provider would be the
 * route once 3.0 is no longer the oldest OpenSSL to support. Hence
 * OPENSSL_SUPPRESS_DEPRECATED (OpenSSL's own switch) in this one file.
 *
 * RSA: libssl pads (PSS, or the DigestInfo for PKCS#1 v1.5) and hands the
 * block to priv_enc, forwarded with its padding mode. ECDSA: the digest is
 * forwarded and the DER signature comes back.
 */
#define OPENSSL_SUPPRESS_DEPRECATED

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>

#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#include "keyproc.h"
#include "keyproc_chan.h"
#include "log.h"

static RSA_METHOD *rsa_meth;
static EC_KEY_METHOD *ec_meth;
static int rsa_id_idx = -1, ec_id_idx = -1;
static pthread_once_t meth_once = PTHREAD_ONCE_INIT;

int mk_keyproc_key_id(const EVP_PKEY *pkey, uint8_t id[MK_KEYPROC_ID_LEN])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(pkey, &der);

	if (len <= 0)
		return -ENOMEM;
	SHA256(der, (size_t)len, id);
	OPENSSL_free(der);
	return 0;
}

/* A signature the key process refused or could not give: the handshake
 * fails with an alert, and the log says why once per failure. */
static int forward(uint16_t op, uint16_t padding, const uint8_t *id, const unsigned char *in,
		   size_t inlen, unsigned char *out, size_t outmax)
{
	struct mk_keyproc_req req = { .kr_op = op, .kr_padding = padding };
	struct mk_keyproc_ans ans;
	unsigned int proc;
	int ret;

	if (!id || inlen > sizeof(req.kr_data))
		return -1;
	memcpy(req.kr_id, id, MK_KEYPROC_ID_LEN);
	memcpy(req.kr_data, in, inlen);
	req.kr_len = (uint16_t)inlen;
	if (mk_keyproc_chan_can_wait(&proc))
		ret = mk_keyproc_chan_sign(&req, &ans);
	else
		ret = mk_keyproc_call(proc, &req, &ans);
	if (!ret && ans.ka_status)
		ret = ans.ka_status;
	if (!ret && ans.ka_len > outmax)
		ret = -EPROTO;
	if (ret) {
		/* A connection that went away is no failure to report. */
		if (ret != -ECANCELED)
			mk_log_limited(MK_LOG_HANDSHAKE, LOG_WARNING,
				       "key process did not sign: %s", strerror(-ret));
		return -1;
	}
	memcpy(out, ans.ka_data, ans.ka_len);
	return ans.ka_len;
}

static int rsa_priv_enc(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
			int padding)
{
	if (flen < 0 || (padding != RSA_PKCS1_PADDING && padding != RSA_NO_PADDING))
		return -1;
	return forward(MK_KEYPROC_RSA_PRIVATE, (uint16_t)padding, RSA_get_ex_data(rsa, rsa_id_idx),
		       from, (size_t)flen, to, (size_t)RSA_size(rsa));
}

static int rsa_priv_dec(int flen, const unsigned char *from, unsigned char *to, RSA *rsa,
			int padding)
{
	return -1;	/* no RSA key exchange on offer: only ECDHE suites */
}

static int ec_sign(int type, const unsigned char *dgst, int dlen, unsigned char *sig,
		   unsigned int *siglen, const BIGNUM *kinv, const BIGNUM *r, EC_KEY *eckey)
{
	int n;

	if (dlen < 0)
		return 0;
	n = forward(MK_KEYPROC_ECDSA, 0, EC_KEY_get_ex_data(eckey, ec_id_idx), dgst,
		    (size_t)dlen, sig, (size_t)ECDSA_size(eckey));
	if (n < 0)
		return 0;
	*siglen = (unsigned int)n;
	return 1;
}

static void id_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
		    void *argp)
{
	free(ptr);
}

static void meth_init(void)
{
	int (*sign_setup)(EC_KEY *, BN_CTX *, BIGNUM **, BIGNUM **) = NULL;
	ECDSA_SIG *(*sign_sig)(const unsigned char *, int, const BIGNUM *, const BIGNUM *,
			       EC_KEY *) = NULL;

	rsa_id_idx = RSA_get_ex_new_index(0, NULL, NULL, NULL, id_free);
	ec_id_idx = EC_KEY_get_ex_new_index(0, NULL, NULL, NULL, id_free);
	rsa_meth = RSA_meth_dup(RSA_PKCS1_OpenSSL());
	if (rsa_meth && (!RSA_meth_set1_name(rsa_meth, "mailktls key process") ||
			 !RSA_meth_set_priv_enc(rsa_meth, rsa_priv_enc) ||
			 !RSA_meth_set_priv_dec(rsa_meth, rsa_priv_dec))) {
		RSA_meth_free(rsa_meth);
		rsa_meth = NULL;
	}
	ec_meth = EC_KEY_METHOD_new(EC_KEY_OpenSSL());
	if (ec_meth) {
		EC_KEY_METHOD_get_sign(EC_KEY_OpenSSL(), NULL, &sign_setup, &sign_sig);
		EC_KEY_METHOD_set_sign(ec_meth, ec_sign, sign_setup, sign_sig);
	}
}

static EVP_PKEY *rsa_forwarding(const EVP_PKEY *pub, uint8_t *id)
{
	RSA *rsa = RSAPublicKey_dup(EVP_PKEY_get0_RSA(pub));
	EVP_PKEY *k = EVP_PKEY_new();

	if (!rsa || !k || !rsa_meth || !RSA_set_method(rsa, rsa_meth) ||
	    !RSA_set_ex_data(rsa, rsa_id_idx, id))
		goto out_free;
	if (EVP_PKEY_assign_RSA(k, rsa) == 1)
		return k;
out_free:
	if (rsa && RSA_get_ex_data(rsa, rsa_id_idx) == id)
		id = NULL;	/* the RSA owns it now */
	RSA_free(rsa);
	EVP_PKEY_free(k);
	free(id);
	return NULL;
}

static EVP_PKEY *ec_forwarding(const EVP_PKEY *pub, uint8_t *id)
{
	EC_KEY *ec = EC_KEY_dup(EVP_PKEY_get0_EC_KEY(pub));
	EVP_PKEY *k = EVP_PKEY_new();

	if (!ec || !k || !ec_meth || !EC_KEY_set_method(ec, ec_meth) ||
	    !EC_KEY_set_ex_data(ec, ec_id_idx, id))
		goto out_free;
	if (EVP_PKEY_assign_EC_KEY(k, ec) == 1)
		return k;
out_free:
	if (ec && EC_KEY_get_ex_data(ec, ec_id_idx) == id)
		id = NULL;
	EC_KEY_free(ec);
	EVP_PKEY_free(k);
	free(id);
	return NULL;
}

EVP_PKEY *mk_keyproc_pkey(X509 *leaf, char *err, size_t errlen)
{
	struct mk_keyproc_req req = { .kr_op = MK_KEYPROC_HAVE };
	EVP_PKEY *pub = X509_get0_pubkey(leaf);
	struct mk_keyproc_ans ans;
	uint8_t *id;
	int ret;

	pthread_once(&meth_once, meth_init);
	if (!pub || mk_keyproc_key_id(pub, req.kr_id)) {
		snprintf(err, errlen, "certificate without a usable public key");
		return NULL;
	}
	ret = mk_keyproc_call(0, &req, &ans);
	if (!ret)
		ret = ans.ka_status;
	if (ret) {
		snprintf(err, errlen, ret == -ENOKEY ? "the key process holds no private key for it" :
			 "the key process does not answer: %s", strerror(-ret));
		return NULL;
	}
	id = malloc(MK_KEYPROC_ID_LEN);
	if (!id) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	memcpy(id, req.kr_id, MK_KEYPROC_ID_LEN);
	switch (EVP_PKEY_get_base_id(pub)) {
	case EVP_PKEY_RSA:
		return rsa_forwarding(pub, id);
	case EVP_PKEY_EC:
		return ec_forwarding(pub, id);
	default:
		free(id);
		snprintf(err, errlen, "only RSA and ECDSA keys can be in the key process");
		return NULL;
	}
}
