// SPDX-License-Identifier: GPL-2.0
/*
 * Key derivation for kernel TLS.
 *
 * Published vectors: RFC 8448 §3 "Simple 1-RTT Handshake" (traffic secrets,
 * their write keys and IVs, and the server's first application data record)
 * and the TLS 1.2 PRF vectors circulated on the IETF TLS list. RFC 8448 has
 * no KeyUpdate; the "traffic upd" step of its client secret was computed
 * once with Python's hmac module (an HKDF written from RFC 5869, not
 * OpenSSL's) and is checked here.
 *
 * Then the real thing: an OpenSSL client and server handshake in memory for
 * every AEAD kTLS takes, both TLS versions; the keys from
 * mk_tls_keys_derive(), put into the kernel's crypto_info by
 * mk_ktls_crypto_info(), must open the records OpenSSL wrote, with the
 * nonce and AAD built from that crypto_info the way the kernel builds them.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"

#include "ktls.h"
#include "tls_keys.h"

#define REC_HDR 5
#define TAG_LEN 16

static size_t unhex(const char *s, uint8_t *out, size_t max)
{
	size_t len = 0;

	if (!OPENSSL_hexstr2buf_ex(out, max, &len, s, '\0'))
		return 0;
	return len;
}

/* memcmp against a hex string; 0 when equal. */
static int cmp_hex(const uint8_t *got, size_t got_len, const char *want_hex)
{
	uint8_t want[256];
	size_t n = unhex(want_hex, want, sizeof(want));

	return n != got_len || memcmp(got, want, n);
}

/* --- RFC 8448 §3 ---------------------------------------------------------- */

struct rfc8448_vec {
	const char *rv_secret;
	const char *rv_key;
	const char *rv_iv;
};

static const struct rfc8448_vec rfc8448_vecs[] = {
	{ /* {server} handshake traffic secret */
	  "b67b7d690cc16c4e75e54213cb2d37b4e9c912bcded9105d42befd59d391ad38",
	  "3fce516009c21727d0f2e4e86ee403bc", "5d313eb2671276ee13000b30" },
	{ /* {server} application traffic secret */
	  "a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643",
	  "9f02283b6c9c07efc26bb9f2ac92e356", "cf782b88dd83549aadf1e984" },
	{ /* {client} application traffic secret */
	  "9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5",
	  "17422dda596ed5d9acd890e3c63f5051", "5b78923dee08579033e523d9" },
};

TEST(rfc8448_expand_label_key_and_iv)
{
	uint8_t secret[32], key[16], iv[12];
	size_t i;

	for (i = 0; i < sizeof(rfc8448_vecs) / sizeof(rfc8448_vecs[0]); i++) {
		ASSERT_EQ(32, unhex(rfc8448_vecs[i].rv_secret, secret, sizeof(secret)));
		ASSERT_EQ(0, mk_tls13_expand_label("SHA256", secret, 32, "key", NULL, 0, key, 16));
		ASSERT_EQ(0, mk_tls13_expand_label("SHA256", secret, 32, "iv", NULL, 0, iv, 12));
		EXPECT_EQ(0, cmp_hex(key, 16, rfc8448_vecs[i].rv_key)) TH_LOG("vector %zu key", i);
		EXPECT_EQ(0, cmp_hex(iv, 12, rfc8448_vecs[i].rv_iv)) TH_LOG("vector %zu iv", i);
	}
}

TEST(expand_label_with_context)
{
	/* RFC 8448 §3: "tls13 derived" from the early secret with Hash("") context. */
	uint8_t early[32], ctx[32], out[32];

	ASSERT_EQ(32, unhex("33ad0a1c607ec03b09e6cd9893680ce210adf300aa1f2660e1b22e10f170f92a",
			    early, sizeof(early)));
	ASSERT_EQ(32, unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
			    ctx, sizeof(ctx)));
	ASSERT_EQ(0, mk_tls13_expand_label("SHA256", early, 32, "derived", ctx, 32, out, 32));
	EXPECT_EQ(0, cmp_hex(out, 32,
			     "6f2615a108c702c5678f54fc9dbab69716c076189c48250cebeac3576c3611ba"));
}

TEST(expand_label_unknown_digest_fails)
{
	uint8_t secret[32] = { 0 }, out[16];

	EXPECT_EQ(-EIO, mk_tls13_expand_label("NO-SUCH-MD", secret, 32, "key", NULL, 0, out, 16));
}

/* RFC 8446 §7.2 on RFC 8448's client_application_traffic_secret_0 */
TEST(rfc8448_client_secret_next_generations)
{
	struct mk_tls13_traffic tt = { .tt_len = 32, .tt_cipher = 0x1301 };
	struct mk_tls_dir_keys k;
	uint8_t server0[32];

	ASSERT_EQ(32, unhex(rfc8448_vecs[2].rv_secret, tt.tt_client, sizeof(tt.tt_client)));
	ASSERT_EQ(32, unhex(rfc8448_vecs[1].rv_secret, tt.tt_server, sizeof(tt.tt_server)));
	memcpy(server0, tt.tt_server, 32);
	ASSERT_EQ(0, mk_tls13_traffic_update(&tt, true, &k));
	EXPECT_EQ(0, cmp_hex(tt.tt_client, 32,
			     "fcdfcc72725aaee48bf64e4fd8b749cdbdbab39d90da0b26e2245ca6ea167207"));
	EXPECT_EQ(0, cmp_hex(k.dk_key, 16, "3879d82f5f14056e623f2ce5bfc66fce"));
	EXPECT_EQ(0, cmp_hex(k.dk_iv, 12, "5dfb2c5938c3379b6cc5d1f2"));
	EXPECT_EQ(0x1301, k.dk_cipher);
	EXPECT_EQ(TLS1_3_VERSION, k.dk_version);
	EXPECT_EQ(0, k.dk_seq);
	/* the other direction is left alone */
	EXPECT_EQ(0, memcmp(tt.tt_server, server0, 32));
	ASSERT_EQ(0, mk_tls13_traffic_update(&tt, true, &k));
	EXPECT_EQ(0, cmp_hex(tt.tt_client, 32,
			     "68474fe58c172143d0a009a76edd231b0d934f3058588ea0852662279e54a573"));
	mk_tls_dir_keys_wipe(&k);
	mk_tls13_traffic_wipe(&tt);
	EXPECT_EQ(0, tt.tt_len | tt.tt_client[0] | tt.tt_server[31]);
}

TEST(traffic_update_refuses_unknown_suite_unchanged)
{
	struct mk_tls13_traffic tt = { .tt_len = 32, .tt_cipher = 0x1304 };	/* CCM */
	struct mk_tls_dir_keys k;

	memset(tt.tt_client, 0xab, sizeof(tt.tt_client));
	EXPECT_EQ(-ENOTSUP, mk_tls13_traffic_update(&tt, true, &k));
	EXPECT_EQ(0xab, tt.tt_client[0]);
	EXPECT_EQ(0, k.dk_key_len);
}

/* --- TLS 1.2 PRF ---------------------------------------------------------- */

TEST(tls12_prf_sha256_published_vector)
{
	static const char want[] =
		"e3f229ba727be17b8d122620557cd453c2aab21d07c3d495329b52d4e61edb5a"
		"6b301791e90d35c9c9a46b4e14baf9af0fa022f7077def17abfd3797c0564bab"
		"4fbc91666e9def9b97fce34f796789baa48082d122ee42c5a72e5a5110fff701"
		"87347b66";
	uint8_t secret[16], seed[16], out[100];

	ASSERT_EQ(16, unhex("9bbe436ba940f017b17652849a71db35", secret, sizeof(secret)));
	ASSERT_EQ(16, unhex("a0ba9f936cda311827a6f796ffd5198c", seed, sizeof(seed)));
	ASSERT_EQ(0, mk_tls12_prf("SHA256", secret, 16, "test label", seed, 16, NULL, 0, out,
				  sizeof(out)));
	EXPECT_EQ(0, cmp_hex(out, sizeof(out), want));

	/* The seed given in two parts is the same seed (server || client random). */
	memset(out, 0, sizeof(out));
	ASSERT_EQ(0, mk_tls12_prf("SHA256", secret, 16, "test label", seed, 5, seed + 5, 11, out,
				  sizeof(out)));
	EXPECT_EQ(0, cmp_hex(out, sizeof(out), want));
}

TEST(tls12_prf_sha384_published_vector)
{
	uint8_t secret[16], seed[16], out[48];

	ASSERT_EQ(16, unhex("b80b733d6ceefcdc71566ea48e5567df", secret, sizeof(secret)));
	ASSERT_EQ(16, unhex("cd665cf6a8447dd6ff8b27555edb7465", seed, sizeof(seed)));
	ASSERT_EQ(0, mk_tls12_prf("SHA384", secret, 16, "test label", seed, 16, NULL, 0, out,
				  sizeof(out)));
	EXPECT_EQ(0, cmp_hex(out, sizeof(out),
			     "7b0c18e9ced410ed1804f2cfa34a336a1c14dffb4900bb5fd7942107e81c83cd"
			     "e9ca0faa60be9fe34f82b1233c9146a0"));
}

/* --- record opening, as the kernel does it from a crypto_info -------------- */

/*
 * Mutable copy of what the kernel keeps per direction: the crypto_info as
 * given to setsockopt, advanced per record like tls_advance_record_sn().
 */
struct kstate {
	union mk_ktls_crypto_info ks_ci;
	uint8_t *ks_key, *ks_salt, *ks_iv, *ks_seq;
	size_t ks_key_len, ks_iv_len;
	const EVP_CIPHER *ks_cipher;
};

static void kstate_init(struct kstate *ks)
{
	union mk_ktls_crypto_info *ci = &ks->ks_ci;

	switch (ci->ci_info.cipher_type) {
	case TLS_CIPHER_AES_GCM_128:
		ks->ks_key = ci->ci_gcm128.key;
		ks->ks_key_len = 16;
		ks->ks_salt = ci->ci_gcm128.salt;
		ks->ks_iv = ci->ci_gcm128.iv;
		ks->ks_iv_len = 8;
		ks->ks_seq = ci->ci_gcm128.rec_seq;
		ks->ks_cipher = EVP_aes_128_gcm();
		break;
	case TLS_CIPHER_AES_GCM_256:
		ks->ks_key = ci->ci_gcm256.key;
		ks->ks_key_len = 32;
		ks->ks_salt = ci->ci_gcm256.salt;
		ks->ks_iv = ci->ci_gcm256.iv;
		ks->ks_iv_len = 8;
		ks->ks_seq = ci->ci_gcm256.rec_seq;
		ks->ks_cipher = EVP_aes_256_gcm();
		break;
	default:
		ks->ks_key = ci->ci_chacha.key;
		ks->ks_key_len = 32;
		ks->ks_salt = NULL;
		ks->ks_iv = ci->ci_chacha.iv;
		ks->ks_iv_len = 12;
		ks->ks_seq = ci->ci_chacha.rec_seq;
		ks->ks_cipher = EVP_chacha20_poly1305();
	}
}

static void be_increment(uint8_t *p, size_t n)
{
	while (n-- && ++p[n] == 0)
		;
}

static bool tls12_gcm(const struct kstate *ks)
{
	return ks->ks_ci.ci_info.version == TLS_1_2_VERSION && ks->ks_salt;
}

/*
 * The nonce as tls_sw builds it: TLS 1.2 GCM salt || explicit nonce (TX: the
 * crypto_info iv, advanced per record; RX: read from the record); else
 * (salt || iv) XOR the record sequence number.
 */
static void kstate_nonce(const struct kstate *ks, const uint8_t *explicit, uint8_t *nonce)
{
	size_t i;

	if (ks->ks_salt) {
		memcpy(nonce, ks->ks_salt, 4);
		memcpy(nonce + 4, tls12_gcm(ks) ? explicit : ks->ks_iv, 8);
	} else {
		memcpy(nonce, ks->ks_iv, 12);
	}
	if (!tls12_gcm(ks))
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= ks->ks_seq[i];
}

/* tls_make_aad(): TLS 1.2 seq || type || version || plaintext length; 1.3 the header. */
static size_t kstate_aad(const struct kstate *ks, const uint8_t *hdr, size_t plain_len,
			 uint8_t *aad)
{
	if (ks->ks_ci.ci_info.version != TLS_1_2_VERSION) {
		memcpy(aad, hdr, REC_HDR);
		return REC_HDR;
	}
	memcpy(aad, ks->ks_seq, 8);
	memcpy(aad + 8, hdr, 3);
	aad[11] = plain_len >> 8;
	aad[12] = plain_len & 0xff;
	return 13;
}

/* tls_advance_record_sn() */
static void kstate_advance(struct kstate *ks)
{
	be_increment(ks->ks_seq, 8);
	if (tls12_gcm(ks))
		be_increment(ks->ks_iv, 8);
}

static bool aead(const struct kstate *ks, bool enc, const uint8_t *nonce, const uint8_t *aad,
		 size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	int n, fin;
	bool ok;

	ok = ctx && EVP_CipherInit_ex(ctx, ks->ks_cipher, NULL, ks->ks_key, nonce, enc) &&
	     EVP_CipherUpdate(ctx, NULL, &n, aad, aad_len) &&
	     EVP_CipherUpdate(ctx, out, &n, in, len) &&
	     (enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_LEN, tag)) &&
	     EVP_CipherFinal_ex(ctx, out + n, &fin) > 0 &&
	     (!enc || EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_LEN, tag));
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

/* Open one record as kernel RX does. Returns the plaintext length, or -1. */
static int kstate_open(struct kstate *ks, const uint8_t *rec, size_t rec_len, uint8_t *out,
		       uint8_t *type)
{
	size_t explicit_len = tls12_gcm(ks) ? 8 : 0, ct_len, aad_len;
	uint8_t nonce[12], aad[13];

	if (rec_len < REC_HDR + explicit_len + TAG_LEN)
		return -1;
	ct_len = rec_len - REC_HDR - explicit_len - TAG_LEN;
	kstate_nonce(ks, rec + REC_HDR, nonce);
	aad_len = kstate_aad(ks, rec, ct_len, aad);
	if (!aead(ks, false, nonce, aad, aad_len, rec + REC_HDR + explicit_len, ct_len, out,
		  (uint8_t *)rec + rec_len - TAG_LEN))
		return -1;
	kstate_advance(ks);
	if (ks->ks_ci.ci_info.version == TLS_1_2_VERSION) {
		*type = rec[0];
		return ct_len;
	}
	/* TLSInnerPlaintext: content || type || zeros */
	while (ct_len > 0 && out[ct_len - 1] == 0)
		ct_len--;
	if (!ct_len)
		return -1;
	*type = out[ct_len - 1];
	return ct_len - 1;
}

/* Seal one record as kernel TX does (tls_fill_prepend()). Returns its length. */
static size_t kstate_seal(struct kstate *ks, uint8_t type, const void *data, size_t len,
			  uint8_t *rec)
{
	size_t explicit_len = tls12_gcm(ks) ? 8 : 0, plain_len = len, aad_len;
	uint8_t plain[64], nonce[12], aad[13];

	memcpy(plain, data, len);
	if (ks->ks_ci.ci_info.version != TLS_1_2_VERSION) {
		plain[plain_len++] = type;
		type = MK_TLS_CT_APPLICATION_DATA;
	}
	rec[0] = type;
	rec[1] = 3;
	rec[2] = 3;
	rec[3] = (explicit_len + plain_len + TAG_LEN) >> 8;
	rec[4] = (explicit_len + plain_len + TAG_LEN) & 0xff;
	memcpy(rec + REC_HDR, ks->ks_iv, explicit_len);
	kstate_nonce(ks, ks->ks_iv, nonce);
	aad_len = kstate_aad(ks, rec, plain_len, aad);
	if (!aead(ks, true, nonce, aad, aad_len, plain, plain_len, rec + REC_HDR + explicit_len,
		  rec + REC_HDR + explicit_len + plain_len))
		return 0;
	kstate_advance(ks);
	return REC_HDR + explicit_len + plain_len + TAG_LEN;
}

static int kstate_from_keys(struct kstate *ks, const struct mk_tls_dir_keys *k)
{
	int len = mk_ktls_crypto_info(k, &ks->ks_ci);

	if (len < 0)
		return len;
	kstate_init(ks);
	return 0;
}

TEST(rfc8448_server_record_opens_with_kernel_nonce)
{
	static const char record[] =
		"1703030043"
		"2e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efaf97d90"
		"e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2955d";
	struct mk_tls_dir_keys k = {
		.dk_version = TLS1_3_VERSION, .dk_cipher = 0x1301,
		.dk_key_len = 16, .dk_iv_len = 12, .dk_seq = 1, /* after NewSessionTicket */
	};
	uint8_t rec[128], out[128], type = 0;
	size_t rec_len, i;
	struct kstate ks;

	rec_len = unhex(record, rec, sizeof(rec));
	ASSERT_EQ(72, rec_len);
	ASSERT_EQ(16, unhex("9f02283b6c9c07efc26bb9f2ac92e356", k.dk_key, sizeof(k.dk_key)));
	ASSERT_EQ(12, unhex("cf782b88dd83549aadf1e984", k.dk_iv, sizeof(k.dk_iv)));
	ASSERT_EQ(0, kstate_from_keys(&ks, &k));
	ASSERT_EQ(50, kstate_open(&ks, rec, rec_len, out, &type));
	EXPECT_EQ(MK_TLS_CT_APPLICATION_DATA, type);
	for (i = 0; i < 50; i++)
		EXPECT_EQ(i, out[i]);
}

/* --- keylog callback ------------------------------------------------------ */

#define ZERO_RANDOM "0000000000000000000000000000000000000000000000000000000000000000"
#define SECRET32 "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define SECRET48 SECRET32 "202122232425262728292a2b2c2d2e2f"

FIXTURE(keylog) {
	SSL_CTX *ctx;
	SSL *ssl;
};

FIXTURE_SETUP(keylog)
{
	self->ctx = SSL_CTX_new(TLS_server_method());
	ASSERT_NE(NULL, self->ctx);
	self->ssl = SSL_new(self->ctx);
	ASSERT_NE(NULL, self->ssl);
	ASSERT_EQ(0, mk_tls_keys_attach(self->ssl));
	ASSERT_EQ(0, mk_tls_keys_attach(self->ssl));	/* second attach keeps the slot */
}

FIXTURE_TEARDOWN(keylog)
{
	SSL_free(self->ssl);
	SSL_CTX_free(self->ctx);
}

TEST_F(keylog, stores_both_application_secrets)
{
	const struct mk_tls_secrets *ts = mk_tls_keys_get(self->ssl);

	ASSERT_NE(NULL, ts);
	mk_tls_keylog_cb(self->ssl, "CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET48);
	EXPECT_EQ(1, ts->ts_have);
	mk_tls_keylog_cb(self->ssl, "SERVER_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET48);
	EXPECT_EQ(3, ts->ts_have);
	EXPECT_EQ(48, ts->ts_len);
	EXPECT_EQ(0, cmp_hex(ts->ts_client_app, 48, SECRET48));
	EXPECT_EQ(0, cmp_hex(ts->ts_server_app, 48, SECRET48));
}

TEST_F(keylog, ignores_other_labels_and_malformed_lines)
{
	static const char *const bad[] = {
		"CLIENT_HANDSHAKE_TRAFFIC_SECRET " ZERO_RANDOM " " SECRET32,
		"SERVER_HANDSHAKE_TRAFFIC_SECRET " ZERO_RANDOM " " SECRET32,
		"CLIENT_RANDOM " ZERO_RANDOM " " SECRET48,
		"EXPORTER_SECRET " ZERO_RANDOM " " SECRET32,
		"CLIENT_TRAFFIC_SECRET_1 " ZERO_RANDOM " " SECRET32,
		"CLIENT_TRAFFIC_SECRET_0 " SECRET32,			/* no random */
		"CLIENT_TRAFFIC_SECRET_0 00 " SECRET32,			/* short random */
		"CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM "0 " SECRET32,	/* long random */
		"CLIENT_TRAFFIC_SECRET_0 x" ZERO_RANDOM " " SECRET32,
		"CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET32 "0",	/* odd */
		"CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET48 "00",	/* too long */
		"CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET32 SECRET48,
		"CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " 0001020304050607",	/* short */
		"CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " "
		"zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
		"CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET32 " ",
		"CLIENT_TRAFFIC_SECRET_0",
		"",
	};
	const struct mk_tls_secrets *ts = mk_tls_keys_get(self->ssl);
	size_t i;

	ASSERT_NE(NULL, ts);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mk_tls_keylog_cb(self->ssl, bad[i]);
		EXPECT_EQ(0, ts->ts_have) TH_LOG("line %zu was accepted", i);
	}
	mk_tls_keylog_cb(self->ssl, NULL);
	EXPECT_EQ(0, ts->ts_have);
}

TEST_F(keylog, refuses_secrets_of_different_hashes)
{
	const struct mk_tls_secrets *ts = mk_tls_keys_get(self->ssl);

	ASSERT_NE(NULL, ts);
	mk_tls_keylog_cb(self->ssl, "CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET32);
	mk_tls_keylog_cb(self->ssl, "SERVER_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET48);
	EXPECT_EQ(1, ts->ts_have);
	EXPECT_EQ(32, ts->ts_len);
}

TEST_F(keylog, forget_drops_the_slot)
{
	mk_tls_keylog_cb(self->ssl, "CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET32);
	mk_tls_keys_forget(self->ssl);
	EXPECT_EQ(NULL, mk_tls_keys_get(self->ssl));
	mk_tls_keys_forget(self->ssl);
	/* A line for an SSL without a slot is dropped, not stored anywhere. */
	mk_tls_keylog_cb(self->ssl, "CLIENT_TRAFFIC_SECRET_0 " ZERO_RANDOM " " SECRET32);
	EXPECT_EQ(NULL, mk_tls_keys_get(self->ssl));
}

TEST_F(keylog, derive_before_handshake_is_einval)
{
	struct mk_tls_dir_keys tx, rx;

	EXPECT_EQ(-EINVAL, mk_tls_keys_derive(self->ssl, &tx, &rx));
}

/* --- real handshakes ------------------------------------------------------ */

static EVP_PKEY *gen_key(bool rsa)
{
	return rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
}

static X509 *self_signed(EVP_PKEY *pkey)
{
	X509 *x = X509_new();
	X509_NAME *name;

	if (!x)
		return NULL;
	name = X509_get_subject_name(x);
	if (!X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 3600) || !X509_set_pubkey(x, pkey) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const uint8_t *)"localhost",
					-1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || !X509_sign(x, pkey, EVP_sha256())) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static SSL_CTX *make_ctx(bool server, int version, const char *ciphers)
{
	SSL_CTX *ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
	int ok;

	if (!ctx)
		return NULL;
	ok = SSL_CTX_set_min_proto_version(ctx, version) &&
	     SSL_CTX_set_max_proto_version(ctx, version) &&
	     (version == TLS1_3_VERSION ? SSL_CTX_set_ciphersuites(ctx, ciphers) :
					  SSL_CTX_set_cipher_list(ctx, ciphers));
	if (!ok) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_keylog_callback(ctx, mk_tls_keylog_cb);
	return ctx;
}

FIXTURE(hs) {
	SSL_CTX *sctx, *cctx;
	SSL *server, *client;
	BIO *cbio, *sbio;	/* client's and server's ends of the pair */
};

FIXTURE_VARIANT(hs) {
	int version;
	const char *ciphers;
	uint16_t id;
	bool rsa;
	int derive_ret;
};

FIXTURE_VARIANT_ADD(hs, tls12_aes128gcm) {
	.version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256", .id = 0xC02B,
};

FIXTURE_VARIANT_ADD(hs, tls12_aes256gcm) {
	.version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384", .id = 0xC02C,
};

FIXTURE_VARIANT_ADD(hs, tls12_chacha20) {
	.version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305", .id = 0xCCA9,
};

FIXTURE_VARIANT_ADD(hs, tls12_rsa_aes256gcm) {
	.version = TLS1_2_VERSION, .ciphers = "ECDHE-RSA-AES256-GCM-SHA384", .id = 0xC030,
	.rsa = true,
};

FIXTURE_VARIANT_ADD(hs, tls13_aes128gcm) {
	.version = TLS1_3_VERSION, .ciphers = "TLS_AES_128_GCM_SHA256", .id = 0x1301,
};

FIXTURE_VARIANT_ADD(hs, tls13_aes256gcm) {
	.version = TLS1_3_VERSION, .ciphers = "TLS_AES_256_GCM_SHA384", .id = 0x1302,
};

FIXTURE_VARIANT_ADD(hs, tls13_chacha20) {
	.version = TLS1_3_VERSION, .ciphers = "TLS_CHACHA20_POLY1305_SHA256", .id = 0x1303,
};

FIXTURE_VARIANT_ADD(hs, tls12_cbc_refused) {
	.version = TLS1_2_VERSION, .ciphers = "ECDHE-ECDSA-AES128-SHA", .id = 0xC009,
	.derive_ret = -ENOTSUP,
};

FIXTURE_VARIANT_ADD(hs, tls13_ccm_refused) {
	.version = TLS1_3_VERSION, .ciphers = "TLS_AES_128_CCM_SHA256", .id = 0x1304,
	.derive_ret = -ENOTSUP,
};

FIXTURE_SETUP(hs)
{
	bool c_done = false, s_done = false;
	EVP_PKEY *pkey;
	X509 *cert;
	int i, r;

	pkey = gen_key(variant->rsa);
	ASSERT_NE(NULL, pkey);
	cert = self_signed(pkey);
	ASSERT_NE(NULL, cert);
	self->sctx = make_ctx(true, variant->version, variant->ciphers);
	self->cctx = make_ctx(false, variant->version, variant->ciphers);
	ASSERT_NE(NULL, self->sctx);
	ASSERT_NE(NULL, self->cctx);
	ASSERT_EQ(1, SSL_CTX_use_certificate(self->sctx, cert));
	ASSERT_EQ(1, SSL_CTX_use_PrivateKey(self->sctx, pkey));
	X509_free(cert);
	EVP_PKEY_free(pkey);

	self->server = SSL_new(self->sctx);
	self->client = SSL_new(self->cctx);
	ASSERT_NE(NULL, self->server);
	ASSERT_NE(NULL, self->client);
	ASSERT_EQ(0, mk_tls_keys_attach(self->server));
	ASSERT_EQ(0, mk_tls_keys_attach(self->client));
	ASSERT_EQ(1, BIO_new_bio_pair(&self->cbio, 0, &self->sbio, 0));
	SSL_set_bio(self->client, self->cbio, self->cbio);
	SSL_set_bio(self->server, self->sbio, self->sbio);
	SSL_set_connect_state(self->client);
	SSL_set_accept_state(self->server);

	for (i = 0; i < 32 && !(c_done && s_done); i++) {
		if (!c_done) {
			r = SSL_do_handshake(self->client);
			c_done = r == 1;
			ASSERT_TRUE(c_done || SSL_get_error(self->client, r) == SSL_ERROR_WANT_READ);
		}
		if (!s_done) {
			r = SSL_do_handshake(self->server);
			s_done = r == 1;
			ASSERT_TRUE(s_done || SSL_get_error(self->server, r) == SSL_ERROR_WANT_READ);
		}
	}
	ASSERT_TRUE(c_done && s_done);
	ASSERT_EQ(variant->version, SSL_version(self->server));
	ASSERT_EQ(variant->id, SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(self->server)));
}

FIXTURE_TEARDOWN(hs)
{
	SSL_free(self->client);
	SSL_free(self->server);
	SSL_CTX_free(self->cctx);
	SSL_CTX_free(self->sctx);
}

/*
 * One direction, kernel's view: @from writes "hello"; the raw records are
 * taken off the pair at @raw and opened as kernel RX would with @keys from
 * sequence number @seq (every one must open, the last must be "hello").
 * Then they go on to @to at @inject, followed by a record "kernel" sealed as
 * kernel TX would; @to must read "hellokernel".
 * Returns the number of records @from wrote, or -1.
 */
static int check_direction(struct __test_metadata *_metadata, SSL *from, SSL *to, BIO *raw,
			   BIO *inject, struct mk_tls_dir_keys *keys, uint64_t seq)
{
	uint8_t wire[8192], out[8192], type = 0;
	size_t wire_len = 0, off = 0, got = 0;
	int n, plain = -1, records = 0, i;
	struct kstate ks;

	if (SSL_write(from, "hello", 5) != 5)
		return -1;
	while (wire_len < sizeof(wire) &&
	       (n = BIO_read(raw, wire + wire_len, sizeof(wire) - wire_len)) > 0)
		wire_len += n;
	keys->dk_seq = seq;
	if (kstate_from_keys(&ks, keys))
		return -1;
	while (off + REC_HDR <= wire_len && records < 16) {
		size_t rec_len = REC_HDR + ((size_t)wire[off + 3] << 8 | wire[off + 4]);

		if (off + rec_len > wire_len)
			return -1;
		plain = kstate_open(&ks, wire + off, rec_len, out, &type);
		if (plain < 0) {
			TH_LOG("record %d (%zu bytes) does not open", records, rec_len);
			return -1;
		}
		off += rec_len;
		records++;
	}
	if (off != wire_len || type != MK_TLS_CT_APPLICATION_DATA || plain != 5 ||
	    memcmp(out, "hello", 5))
		return -1;

	n = kstate_seal(&ks, MK_TLS_CT_APPLICATION_DATA, "kernel", 6, wire + wire_len);
	OPENSSL_cleanse(&ks, sizeof(ks));
	if (!n || BIO_write(inject, wire, wire_len + n) != (int)wire_len + n)
		return -1;
	for (i = 0; i < 8 && got < 11; i++) {
		n = SSL_read(to, out + got, sizeof(out) - got);
		if (n <= 0)
			break;
		got += n;
	}
	if (got != 11 || memcmp(out, "hellokernel", 11)) {
		TH_LOG("peer read %zu bytes: %.*s", got, (int)got, out);
		return -1;
	}
	return records;
}

TEST_F(hs, derived_keys_work_both_ways_with_kernel_nonces)
{
	/* TLS 1.2: Finished went out under the new keys as record 0. */
	const uint64_t first = variant->version == TLS1_2_VERSION ? 1 : 0;
	struct mk_tls_dir_keys tx, rx, ctx_keys, crx_keys;
	int records;

	ASSERT_EQ(variant->derive_ret, mk_tls_keys_derive(self->server, &tx, &rx));
	if (variant->derive_ret) {
		EXPECT_EQ(0, tx.dk_key_len);
		EXPECT_EQ(0, rx.dk_key_len);
		return;
	}
	EXPECT_EQ(variant->version, tx.dk_version);
	EXPECT_EQ(variant->id, tx.dk_cipher);
	EXPECT_EQ(variant->id, rx.dk_cipher);
	EXPECT_EQ(0, tx.dk_seq);
	EXPECT_NE(0, memcmp(tx.dk_key, rx.dk_key, tx.dk_key_len));

	/* The client's view of the same session is the mirror image. */
	ASSERT_EQ(0, mk_tls_keys_derive(self->client, &ctx_keys, &crx_keys));
	EXPECT_EQ(0, memcmp(&ctx_keys, &rx, sizeof(rx)));
	EXPECT_EQ(0, memcmp(&crx_keys, &tx, sizeof(tx)));

	/* Server to client: TLS 1.3 NewSessionTickets precede "hello". */
	records = check_direction(_metadata, self->server, self->client, self->cbio, self->sbio,
				  &tx, first);
	ASSERT_LE(1, records);
	if (variant->version == TLS1_3_VERSION)
		EXPECT_EQ(3, records);	/* OpenSSL sends 2 tickets by default */

	/* Client to server. */
	EXPECT_EQ(1, check_direction(_metadata, self->client, self->server, self->sbio,
				     self->cbio, &rx, first));

	mk_tls_dir_keys_wipe(&tx);
	EXPECT_EQ(0, tx.dk_key_len);
	EXPECT_EQ(0, tx.dk_key[0] | tx.dk_key[15]);
	mk_tls_dir_keys_wipe(&rx);
	mk_tls_dir_keys_wipe(&ctx_keys);
	mk_tls_dir_keys_wipe(&crx_keys);
}

TEST_F(hs, derive_needs_captured_secrets)
{
	struct mk_tls_dir_keys tx, rx;

	if (variant->derive_ret)
		SKIP(return, "cipher not for kTLS");
	mk_tls_keys_forget(self->server);
	/* TLS 1.2 does not need the keylog: its master secret is in the session. */
	EXPECT_EQ(variant->version == TLS1_3_VERSION ? -EINVAL : 0,
		  mk_tls_keys_derive(self->server, &tx, &rx));
	mk_tls_dir_keys_wipe(&tx);
	mk_tls_dir_keys_wipe(&rx);
}

/*
 * Open the records at @raw as kernel RX would, starting with @k at sequence
 * 0; after a handshake record holding a KeyUpdate, go on with the keys of
 * the next secret of @tt's @client direction, as the agent does. Collects
 * the application data in @out; returns its length, or -1. *@updates
 * counts the KeyUpdates, *@requested the last one's request byte.
 */
static int open_across_updates(struct __test_metadata *_metadata, BIO *raw,
			       struct mk_tls_dir_keys *k, struct mk_tls13_traffic *tt,
			       bool client, int *updates, int *requested)
{
	static uint8_t wire[65536];
	uint8_t plain[17000], type;
	size_t wire_len = 0, off = 0, got = 0;
	static uint8_t out[8192];
	struct kstate ks;
	int n;

	while (wire_len < sizeof(wire) &&
	       (n = BIO_read(raw, wire + wire_len, sizeof(wire) - wire_len)) > 0)
		wire_len += n;
	k->dk_seq = 0;
	if (kstate_from_keys(&ks, k))
		return -1;
	while (off + REC_HDR <= wire_len) {
		size_t rec_len = REC_HDR + ((size_t)wire[off + 3] << 8 | wire[off + 4]);

		if (off + rec_len > wire_len)
			return -1;
		n = kstate_open(&ks, wire + off, rec_len, plain, &type);
		if (n < 0) {
			TH_LOG("record at %zu does not open", off);
			return -1;
		}
		off += rec_len;
		if (type == MK_TLS_CT_APPLICATION_DATA && got + n <= sizeof(out)) {
			memcpy(out + got, plain, n);
			got += n;
		} else if (type == MK_TLS_CT_HANDSHAKE && n == 5 && plain[0] == 24) {
			(*updates)++;
			*requested = plain[4];
			if (mk_tls13_traffic_update(tt, client, k) || kstate_from_keys(&ks, k))
				return -1;
		}
	}
	OPENSSL_cleanse(&ks, sizeof(ks));
	return got == 5 && !memcmp(out, "after", 5) ? (int)got : -1;
}

/*
 * OpenSSL's own KeyUpdates, both ways: the client updates and asks the
 * server to; the server (OpenSSL) answers with its own. Keys from
 * mk_tls13_traffic_update() must open every record after each update.
 */
TEST_F(hs, key_update_keys_open_openssl_records)
{
	struct mk_tls_dir_keys tx, rx;
	struct mk_tls13_traffic tt;
	int updates = 0, requested = -1, i, n;
	uint8_t buf[64], wire[4096];
	BIO *mem;

	if (variant->version != TLS1_3_VERSION || variant->derive_ret)
		SKIP(return, "KeyUpdate is TLS 1.3");
	ASSERT_EQ(0, mk_tls_keys_derive(self->server, &tx, &rx));
	ASSERT_EQ(0, mk_tls13_traffic_take(self->server, &tt));
	EXPECT_EQ(variant->id, tt.tt_cipher);

	/* client -> server: three updates, the last asking for one back */
	for (i = 0; i < 3; i++) {
		ASSERT_EQ(1, SSL_key_update(self->client, i == 2 ? SSL_KEY_UPDATE_REQUESTED :
								    SSL_KEY_UPDATE_NOT_REQUESTED));
		ASSERT_EQ(1, SSL_do_handshake(self->client));
	}
	ASSERT_EQ(5, SSL_write(self->client, "after", 5));
	/* read off the pair, opened, then passed on to the server */
	n = BIO_read(self->sbio, wire, sizeof(wire));
	ASSERT_LT(0, n);
	mem = BIO_new_mem_buf(wire, n);
	ASSERT_NE(NULL, mem);
	EXPECT_EQ(5, open_across_updates(_metadata, mem, &rx, &tt, true, &updates, &requested));
	BIO_free(mem);
	EXPECT_EQ(3, updates);
	EXPECT_EQ(1, requested);
	ASSERT_EQ(n, BIO_write(self->cbio, wire, n));
	ASSERT_EQ(5, SSL_read(self->server, buf, sizeof(buf)));

	/* server -> client: OpenSSL sends its KeyUpdate before "after" */
	ASSERT_EQ(5, SSL_write(self->server, "after", 5));
	updates = 0;
	ASSERT_EQ(5, open_across_updates(_metadata, self->cbio, &tx, &tt, false, &updates,
					 &requested));
	EXPECT_EQ(1, updates);
	EXPECT_EQ(0, requested);
	mk_tls13_traffic_wipe(&tt);
	mk_tls_dir_keys_wipe(&tx);
	mk_tls_dir_keys_wipe(&rx);
}

TEST_F(hs, traffic_take_is_tls13_only)
{
	struct mk_tls13_traffic tt;

	EXPECT_EQ(variant->version == TLS1_3_VERSION ? variant->derive_ret : -EINVAL,
		  mk_tls13_traffic_take(self->server, &tt));
	mk_tls13_traffic_wipe(&tt);
}

TEST_HARNESS_MAIN
