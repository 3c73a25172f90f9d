// SPDX-License-Identifier: GPL-2.0
/*
 * The TLS policy of a listener, checked with real handshakes: an OpenSSL
 * client and the listener's server SSL talk through a BIO pair in memory.
 * Certificates (RSA and ECDSA for mail.example.org, ECDSA for
 * other.example.net) are made at test time in a temporary directory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "config.h"
#include "session.h"
#include "tls_client_cert.h"
#include "tls_groups.h"
#include "tls_keys.h"
#include "tls_policy.h"
#include "kselftest_harness.h"

static const char *const files[] = {
	"rsa.pem", "rsa.key", "ec.pem", "ec.key", "other.pem", "other.key", "rsa2.pem",
	"rsa2.key", "bad.pem",
};

/* The two usual pairs, at lines 6-9 of every config below. */
#define PAIRS "certificate = @/rsa.pem\nprivate_key = @/rsa.key\n" \
	"certificate = @/ec.pem\nprivate_key = @/ec.key\n"
#define OTHER "certificate = @/other.pem\nprivate_key = @/other.key\n"

static int last_alert;		/* alert the client received; each test is its own process */

static int write_pem(const char *dir, const char *name, X509 *x, EVP_PKEY *k)
{
	char path[256];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	ok = x ? PEM_write_X509(f, x) : PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	fclose(f);
	return ok ? 0 : -1;
}

/* A self-signed certificate for @dns, written as @base.pem and @base.key. */
static int make_pair(const char *dir, const char *base, EVP_PKEY *k, const char *dns)
{
	char name[64], san[128];
	X509_EXTENSION *ext;
	X509V3_CTX v3;
	X509_NAME *n;
	X509 *x = X509_new();
	int ret = -1;

	if (!x || !X509_set_version(x, 2) || !ASN1_INTEGER_set(X509_get_serialNumber(x), 1) ||
	    !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), 86400) || !X509_set_pubkey(x, k))
		goto out;
	n = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)dns, -1, -1, 0);
	X509_set_issuer_name(x, n);
	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	snprintf(san, sizeof(san), "DNS:%s", dns);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
	if (!ext || !X509_add_ext(x, ext, -1))
		goto out;
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, k, EVP_sha256()))
		goto out;
	snprintf(name, sizeof(name), "%s.pem", base);
	if (write_pem(dir, name, x, NULL))
		goto out;
	snprintf(name, sizeof(name), "%s.key", base);
	ret = write_pem(dir, name, NULL, k);
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return ret;
}

FIXTURE(pol) {
	char dir[64];
	struct mk_config *cfg;
	struct mk_tls_policy *p;
	char err[MK_ERR_MAX];
	SSL_CTX *cctx;
};

FIXTURE_SETUP(pol)
{
	char path[128];
	FILE *f;

	strcpy(self->dir, "/tmp/mk-tls-policy-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	ASSERT_EQ(0, make_pair(self->dir, "rsa", EVP_RSA_gen(2048), "mail.example.org"));
	ASSERT_EQ(0, make_pair(self->dir, "ec", EVP_EC_gen("P-256"), "mail.example.org"));
	ASSERT_EQ(0, make_pair(self->dir, "other", EVP_EC_gen("P-384"), "other.example.net"));
	ASSERT_EQ(0, make_pair(self->dir, "rsa2", EVP_RSA_gen(2048), "mail.example.org"));
	snprintf(path, sizeof(path), "%s/bad.pem", self->dir);
	f = fopen(path, "w");
	ASSERT_NE(NULL, f);
	fputs("this is not a certificate\n", f);
	fclose(f);
	self->cctx = SSL_CTX_new(TLS_client_method());
	ASSERT_NE(NULL, self->cctx);
	self->cfg = NULL;
	self->p = NULL;
	last_alert = -1;
}

FIXTURE_TEARDOWN(pol)
{
	char path[128];
	size_t i;

	mk_tls_policy_put(self->p);
	mk_config_free(self->cfg);
	SSL_CTX_free(self->cctx);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", self->dir, files[i]);
		unlink(path);
	}
	rmdir(self->dir);
}

/*
 * Parse a listener (lines 1-5 fixed, then @body with '@' standing for the
 * certificate directory) and build its policy into self->p.
 */
static int build(FIXTURE_DATA(pol) *self, const char *proto, const char *body)
{
	char text[4096], *t;
	int n;

	n = snprintf(text, sizeof(text), "[listener imaps]\nlisten = 127.0.0.1:993\n"
		     "protocol = %s\ntls = implicit\nbackend = 127.0.0.1:143\n", proto);
	for (t = text + n; *body && t < text + sizeof(text) - 100; body++) {
		if (*body == '@')
			t += sprintf(t, "%s", self->dir);
		else
			*t++ = *body;
	}
	*t = '\0';
	mk_config_free(self->cfg);
	self->cfg = NULL;
	if (mk_config_parse_buffer("t.conf", text, strlen(text), &self->cfg, self->err,
				   sizeof(self->err)))
		return -1;
	return mk_tls_policy_build(self->cfg, &self->cfg->cf_listeners[0], &self->p, self->err,
				   sizeof(self->err));
}

static void info_cb(const SSL *ssl, int where, int ret)
{
	if (where & SSL_CB_READ_ALERT)
		last_alert = ret & 0xff;
}

static bool settled(SSL *ssl, int rc, bool *failed)
{
	int e;

	if (rc == 1)
		return true;
	e = SSL_get_error(ssl, rc);
	if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
		return false;
	*failed = true;
	return true;
}

/* Run a handshake between two SSLs in memory; 0 when both sides completed. */
static int handshake_with(SSL *server, SSL *client)
{
	bool c_done = false, s_done = false, c_fail = false, s_fail = false;
	BIO *cb, *sb;
	int i;

	if (!BIO_new_bio_pair(&cb, 0, &sb, 0))
		return -ENOMEM;
	SSL_set_bio(client, cb, cb);
	SSL_set_bio(server, sb, sb);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	SSL_set_info_callback(client, info_cb);
	for (i = 0; i < 50 && !(c_done && s_done) && !(c_fail && s_fail); i++) {
		if (!c_done || c_fail)
			c_done = settled(client, SSL_do_handshake(client), &c_fail);
		if (!s_done || s_fail)
			s_done = settled(server, SSL_do_handshake(server), &s_fail);
		if ((c_fail || s_fail) && i > 10)
			break;
	}
	ERR_clear_error();
	return c_done && s_done && !c_fail && !s_fail ? 0 : -EPROTO;
}

/* The same with a new server SSL of @p, kept in *@server_out if asked for. */
static int handshake(struct mk_tls_policy *p, SSL *client, SSL **server_out)
{
	SSL *server = mk_tls_policy_new_ssl(p);
	int ret;

	if (!server)
		return -ENOMEM;
	ret = handshake_with(server, client);
	if (server_out)
		*server_out = server;
	else
		SSL_free(server);
	return ret;
}

static SSL *client_new(SSL_CTX *cctx, int minv, int maxv, const char *sni)
{
	SSL *c = SSL_new(cctx);

	if (!c)
		return NULL;
	SSL_set_min_proto_version(c, minv);
	SSL_set_max_proto_version(c, maxv);
	if (sni)
		SSL_set_tlsext_host_name(c, sni);
	return c;
}

/* Handshake with the default client; fills the negotiated version/cipher. */
static int run(FIXTURE_DATA(pol) *self, SSL *c, char *ver, char *cipher)
{
	int ret = handshake(self->p, c, NULL);

	if (ver)
		strcpy(ver, ret ? "" : SSL_get_version(c));
	if (cipher)
		strcpy(cipher, ret ? "" : SSL_CIPHER_standard_name(SSL_get_current_cipher(c)));
	return ret;
}

static int peer_key_type(SSL *c)
{
	X509 *x = SSL_get0_peer_certificate(c);

	return x ? EVP_PKEY_get_base_id(X509_get0_pubkey(x)) : -1;
}

TEST_F(pol, build_both_pairs)
{
	char ver[32], cipher[64];
	SSL *c;

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	c = client_new(self->cctx, 0, 0, NULL);
	EXPECT_EQ(0, run(self, c, ver, cipher));
	EXPECT_STREQ("TLSv1.3", ver);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", cipher);
	SSL_free(c);
	EXPECT_STREQ("imap", mk_tls_policy_alpn_id(MK_PROTO_IMAP));
	EXPECT_STREQ("pop3", mk_tls_policy_alpn_id(MK_PROTO_POP3));
	EXPECT_STREQ("smtp", mk_tls_policy_alpn_id(MK_PROTO_SUBMISSION));
}

TEST_F(pol, file_errors)
{
	char msg[512];

	EXPECT_EQ(-EINVAL, build(self, "imap", PAIRS "certificate = @/none.pem\n"
				 "private_key = @/ec.key\n"));
	snprintf(msg, sizeof(msg), "t.conf:10: cannot open certificate %s/none.pem: No such file "
		 "or directory", self->dir);
	EXPECT_STREQ(msg, self->err);

	EXPECT_EQ(-EINVAL, build(self, "imap", "certificate = @/rsa.pem\n"
				 "private_key = @/none.key\n"));
	snprintf(msg, sizeof(msg), "t.conf:6: cannot open private key %s/none.key: No such file "
		 "or directory", self->dir);
	EXPECT_STREQ(msg, self->err);

	EXPECT_EQ(-EINVAL, build(self, "imap", "certificate = @/bad.pem\n"
				 "private_key = @/rsa.key\n"));
	snprintf(msg, sizeof(msg), "t.conf:6: %s/bad.pem is not a PEM certificate", self->dir);
	EXPECT_STREQ(msg, self->err);

	EXPECT_EQ(-EINVAL, build(self, "imap", "certificate = @/rsa.pem\n"
				 "private_key = @/rsa.pem\n"));
	snprintf(msg, sizeof(msg), "t.conf:6: %s/rsa.pem is not an unencrypted PEM private key",
		 self->dir);
	EXPECT_STREQ(msg, self->err);
	EXPECT_EQ(NULL, self->p);
}

TEST_F(pol, key_mismatch)
{
	char msg[512];

	/* Same type (RSA key for another RSA certificate) and different type. */
	EXPECT_EQ(-EINVAL, build(self, "imap", "certificate = @/rsa.pem\n"
				 "private_key = @/rsa2.key\n"));
	snprintf(msg, sizeof(msg), "t.conf:6: private key %s/rsa2.key does not match certificate "
		 "%s/rsa.pem", self->dir, self->dir);
	EXPECT_STREQ(msg, self->err);
	EXPECT_EQ(-EINVAL, build(self, "imap", "certificate = @/rsa.pem\nprivate_key = @/rsa.key\n"
				 "certificate = @/ec.pem\nprivate_key = @/other.key\n"));
	snprintf(msg, sizeof(msg), "t.conf:8: private key %s/other.key does not match certificate "
		 "%s/ec.pem", self->dir, self->dir);
	EXPECT_STREQ(msg, self->err);
}

/* Two RSA certificates for the same names: the second could never be used. */
TEST_F(pol, duplicate_key_type)
{
	char msg[512];

	EXPECT_EQ(-EINVAL, build(self, "imap", PAIRS "certificate = @/rsa2.pem\n"
				 "private_key = @/rsa2.key\n"));
	snprintf(msg, sizeof(msg), "t.conf:10: certificate %s/rsa2.pem has the same names and key "
		 "type as the one at line 6", self->dir);
	EXPECT_STREQ(msg, self->err);
}

TEST_F(pol, tls11_refused)
{
	SSL *c;

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	SSL_CTX_set_security_level(self->cctx, 0);
	ASSERT_EQ(1, SSL_CTX_set_cipher_list(self->cctx, "ALL:@SECLEVEL=0"));
	c = client_new(self->cctx, TLS1_VERSION, TLS1_1_VERSION, NULL);
	EXPECT_EQ(-EPROTO, run(self, c, NULL, NULL));
	EXPECT_EQ(SSL_AD_PROTOCOL_VERSION, last_alert);
	SSL_free(c);
}

TEST_F(pol, tls12_suites)
{
	static const char *const refused[] = {
		"AES128-GCM-SHA256",			/* RSA key exchange */
		"DHE-RSA-AES128-GCM-SHA256",		/* finite-field DH */
		/* CBC */
		"ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES256-SHA",
	};
	char ver[32], cipher[64];
	size_t i;
	SSL *c;

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	SSL_CTX_set_security_level(self->cctx, 0);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		ASSERT_EQ(1, SSL_CTX_set_cipher_list(self->cctx, refused[i]));
		c = client_new(self->cctx, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
		EXPECT_EQ(-EPROTO, run(self, c, NULL, NULL)) TH_LOG("%s accepted", refused[i]);
		EXPECT_EQ(SSL_AD_HANDSHAKE_FAILURE, last_alert);
		SSL_free(c);
	}
	ASSERT_EQ(1, SSL_CTX_set_cipher_list(self->cctx, "ECDHE-RSA-AES128-GCM-SHA256"));
	c = client_new(self->cctx, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
	EXPECT_EQ(0, run(self, c, ver, cipher));
	EXPECT_STREQ("TLSv1.2", ver);
	EXPECT_STREQ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", cipher);
	SSL_free(c);
	ASSERT_EQ(1, SSL_CTX_set_cipher_list(self->cctx, "ECDHE-ECDSA-CHACHA20-POLY1305"));
	c = client_new(self->cctx, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
	EXPECT_EQ(0, run(self, c, ver, cipher));
	EXPECT_STREQ("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", cipher);
	SSL_free(c);
}

/*
 * A TLS 1.2 client offering only the AES-256-GCM ECDHE and DHE suites with
 * the groups secp256r1 and ffdhe2048 (as `openssl s_client -tls1_2 -cipher
 * ... -groups P-256:ffdhe2048` does) gets ECDHE over P-256, with either
 * certificate, as from `openssl s_server`.
 */
TEST_F(pol, tls12_p256_and_ffdhe2048_offered)
{
	static const char *const certs[] = { PAIRS, "certificate = @/ec.pem\nprivate_key = @/ec.key\n",
					     "certificate = @/rsa.pem\nprivate_key = @/rsa.key\n" };
	char ver[32], cipher[64];
	size_t i;
	SSL *c;

	ASSERT_EQ(1, SSL_CTX_set_cipher_list(self->cctx, "ECDHE-ECDSA-AES256-GCM-SHA384:"
				"ECDHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES256-GCM-SHA384"));
	ASSERT_EQ(1, SSL_CTX_set1_groups_list(self->cctx, "P-256:ffdhe2048"));
	for (i = 0; i < sizeof(certs) / sizeof(certs[0]); i++) {
		ASSERT_EQ(0, build(self, "imap", certs[i])) TH_LOG("%s", self->err);
		c = client_new(self->cctx, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
		EXPECT_EQ(0, run(self, c, ver, cipher)) TH_LOG("alert %d", last_alert);
		EXPECT_STREQ("TLSv1.2", ver);
		EXPECT_EQ(NID_X9_62_prime256v1, SSL_get_negotiated_group(c));
		EXPECT_NE(NULL, strstr(cipher, "ECDHE_")) TH_LOG("%s", cipher);
		SSL_free(c);
		mk_tls_policy_put(self->p);
		self->p = NULL;
	}
}

TEST_F(pol, tls13_suites)
{
	static const char *const suites[] = {
		"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
	};
	char ver[32], cipher[64];
	size_t i;
	SSL *c;

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	for (i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
		ASSERT_EQ(1, SSL_CTX_set_ciphersuites(self->cctx, suites[i]));
		c = client_new(self->cctx, TLS1_3_VERSION, TLS1_3_VERSION, NULL);
		EXPECT_EQ(0, run(self, c, ver, cipher));
		EXPECT_STREQ("TLSv1.3", ver);
		EXPECT_STREQ(suites[i], cipher);
		SSL_free(c);
	}
	/* The groups of earlier versions, set by hand: a client offering just
	 * ffdhe2048 is refused (OpenSSL 3.0's default list would take it). */
	mk_tls_policy_put(self->p);
	self->p = NULL;
	ASSERT_EQ(0, build(self, "imap", PAIRS "groups = x25519:P-256:P-384\n"))
		TH_LOG("%s", self->err);
	ASSERT_EQ(1, SSL_CTX_set1_groups_list(self->cctx, "ffdhe2048"));
	c = client_new(self->cctx, TLS1_3_VERSION, TLS1_3_VERSION, NULL);
	EXPECT_EQ(-EPROTO, run(self, c, NULL, NULL));
	SSL_free(c);
}

/* The client's signature algorithms choose between RSA and ECDSA. */
TEST_F(pol, sigalgs_pick_certificate)
{
	static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };
	size_t i;
	SSL *c;

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	for (i = 0; i < 2; i++) {
		c = client_new(self->cctx, versions[i], versions[i], "mail.example.org");
		ASSERT_EQ(1, SSL_set1_sigalgs_list(c, "ECDSA+SHA256"));
		EXPECT_EQ(0, run(self, c, NULL, NULL));
		EXPECT_EQ(EVP_PKEY_EC, peer_key_type(c));
		SSL_free(c);
		c = client_new(self->cctx, versions[i], versions[i], "mail.example.org");
		ASSERT_EQ(1, SSL_set1_sigalgs_list(c, "rsa_pss_rsae_sha256:RSA+SHA256"));
		EXPECT_EQ(0, run(self, c, NULL, NULL));
		EXPECT_EQ(EVP_PKEY_RSA, peer_key_type(c));
		SSL_free(c);
	}
}

TEST_F(pol, sni_picks_certificate)
{
	static const struct { const char *sni, *cert_name; } cases[] = {
		{ "other.example.net", "other.example.net" },
		{ "OTHER.example.NET", "other.example.net" },
		{ "mail.example.org", "mail.example.org" },
		{ "unknown.example", "mail.example.org" },
		{ NULL, "mail.example.org" },
	};
	size_t i;
	SSL *c;

	/* The other name first in the file: SNI, not the order, must decide. */
	ASSERT_EQ(0, build(self, "imap", "certificate = @/rsa.pem\nprivate_key = @/rsa.key\n"
			   OTHER "certificate = @/ec.pem\nprivate_key = @/ec.key\n"))
		TH_LOG("%s", self->err);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = client_new(self->cctx, 0, 0, cases[i].sni);
		ASSERT_EQ(0, run(self, c, NULL, NULL));
		EXPECT_EQ(1, X509_check_host(SSL_get0_peer_certificate(c), cases[i].cert_name, 0, 0,
					     NULL)) TH_LOG("sni %s", cases[i].sni);
		SSL_free(c);
	}
	/* In the other name's context too, sigalgs still pick the key type. */
	c = client_new(self->cctx, 0, 0, "mail.example.org");
	ASSERT_EQ(1, SSL_set1_sigalgs_list(c, "rsa_pss_rsae_sha256"));
	EXPECT_EQ(0, run(self, c, NULL, NULL));
	EXPECT_EQ(EVP_PKEY_RSA, peer_key_type(c));
	SSL_free(c);
}

/* Returns the handshake result; @selected gets the ALPN the server chose. */
static int alpn_run(FIXTURE_DATA(pol) *self, const char *wire, size_t len, char *selected)
{
	const unsigned char *sel = NULL;
	unsigned int sel_len = 0;
	SSL *c = client_new(self->cctx, 0, 0, NULL);
	int ret;

	if (len)
		SSL_set_alpn_protos(c, (const unsigned char *)wire, len);
	ret = run(self, c, NULL, NULL);
	SSL_get0_alpn_selected(c, &sel, &sel_len);
	snprintf(selected, 16, "%.*s", (int)sel_len, sel ? (const char *)sel : "");
	SSL_free(c);
	return ret;
}

#define ALPN(s) s, sizeof(s) - 1

TEST_F(pol, alpn_strict)
{
	char sel[16];

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	EXPECT_EQ(-EPROTO, alpn_run(self, ALPN("\x08http/1.1"), sel));
	EXPECT_EQ(SSL_AD_NO_APPLICATION_PROTOCOL, last_alert);
	EXPECT_EQ(120, last_alert);
	last_alert = -1;
	EXPECT_EQ(-EPROTO, alpn_run(self, ALPN("\x04pop3\x04smtp"), sel));
	EXPECT_EQ(120, last_alert);
	EXPECT_EQ(0, alpn_run(self, ALPN("\x04imap"), sel));
	EXPECT_STREQ("imap", sel);
	EXPECT_EQ(0, alpn_run(self, ALPN("\x08http/1.1\x04imap"), sel));
	EXPECT_STREQ("imap", sel);
	EXPECT_EQ(0, alpn_run(self, NULL, 0, sel));
	EXPECT_STREQ("", sel);
}

TEST_F(pol, alpn_strict_pop3_and_submission)
{
	char sel[16];

	ASSERT_EQ(0, build(self, "pop3", PAIRS)) TH_LOG("%s", self->err);
	EXPECT_EQ(-EPROTO, alpn_run(self, ALPN("\x04imap"), sel));
	EXPECT_EQ(120, last_alert);
	EXPECT_EQ(0, alpn_run(self, ALPN("\x04pop3"), sel));
	EXPECT_STREQ("pop3", sel);
	mk_tls_policy_put(self->p);
	self->p = NULL;
	ASSERT_EQ(0, build(self, "submission", PAIRS)) TH_LOG("%s", self->err);
	EXPECT_EQ(-EPROTO, alpn_run(self, ALPN("\x04imap"), sel));
	EXPECT_EQ(0, alpn_run(self, ALPN("\x04smtp"), sel));
	EXPECT_STREQ("smtp", sel);
}

TEST_F(pol, alpn_off)
{
	char sel[16];

	ASSERT_EQ(0, build(self, "imap", PAIRS "alpn = off\n")) TH_LOG("%s", self->err);
	EXPECT_EQ(0, alpn_run(self, ALPN("\x08http/1.1"), sel));
	EXPECT_STREQ("", sel);
	EXPECT_EQ(0, alpn_run(self, ALPN("\x08http/1.1\x04imap"), sel));
	EXPECT_STREQ("imap", sel);
}

TEST_F(pol, min_version_13)
{
	char ver[32];
	SSL *c;

	ASSERT_EQ(0, build(self, "imap", PAIRS "min_version = 1.3\n")) TH_LOG("%s", self->err);
	c = client_new(self->cctx, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
	EXPECT_EQ(-EPROTO, run(self, c, NULL, NULL));
	EXPECT_EQ(SSL_AD_PROTOCOL_VERSION, last_alert);
	SSL_free(c);
	c = client_new(self->cctx, TLS1_2_VERSION, 0, NULL);
	EXPECT_EQ(0, run(self, c, ver, NULL));
	EXPECT_STREQ("TLSv1.3", ver);
	SSL_free(c);
}

/*
 * One connection, then a second one offering its session: 1 if resumed.
 * Both sides end as after a kTLS handover: the SSLs are freed without a
 * close_notify, marked shut down so OpenSSL keeps the session cached.
 */
static int resume(struct __test_metadata *_metadata, FIXTURE_DATA(pol) *self, int version,
		  bool tickets)
{
	SSL_SESSION *sess = NULL;
	SSL *c, *s = NULL;
	char buf[1];
	int i, reused = -1;

	if (!tickets)
		SSL_CTX_set_options(self->cctx, SSL_OP_NO_TICKET);
	for (i = 0; i < 2; i++) {
		c = client_new(self->cctx, version, version, NULL);
		if (i == 1)
			SSL_set_session(c, sess);
		EXPECT_EQ(0, handshake(self->p, c, &s));
		if (i == 0) {
			/* TLS 1.3 tickets come after the handshake. */
			EXPECT_EQ(-1, SSL_read(c, buf, sizeof(buf)));
			sess = SSL_get1_session(c);
			EXPECT_EQ(1, SSL_SESSION_is_resumable(sess));
			EXPECT_EQ(0, SSL_session_reused(c));
		} else {
			reused = SSL_session_reused(c);
			SSL_SESSION_free(sess);
		}
		SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(s);
		SSL_free(c);
	}
	return reused;
}

TEST_F(pol, resumption)
{
	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	EXPECT_EQ(1, resume(_metadata, self, TLS1_3_VERSION, true));
	EXPECT_EQ(1, resume(_metadata, self, TLS1_2_VERSION, true));
	/* Without tickets, TLS 1.2 resumes from the server's session cache. */
	EXPECT_EQ(1, resume(_metadata, self, TLS1_2_VERSION, false));
}

/* Sessions (tickets here) of one listener do not resume on another. */
TEST_F(pol, resumption_per_listener)
{
	struct mk_tls_policy *first;
	SSL_SESSION *sess;
	SSL *c, *s = NULL;
	char buf[1];

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	first = self->p;
	c = client_new(self->cctx, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
	ASSERT_EQ(0, handshake(first, c, &s));
	SSL_read(c, buf, sizeof(buf));
	sess = SSL_get1_session(c);
	SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
	SSL_free(s);
	SSL_free(c);
	/* "imaps" again but another listener name: lines 1-5 differ only by it. */
	self->p = NULL;
	mk_config_free(self->cfg);
	self->cfg = NULL;
	{
		char text[2048], err[MK_ERR_MAX];

		snprintf(text, sizeof(text), "[listener other]\nlisten = 127.0.0.1:994\n"
			 "protocol = imap\ntls = implicit\nbackend = 127.0.0.1:143\n"
			 "certificate = %s/rsa.pem\nprivate_key = %s/rsa.key\n", self->dir,
			 self->dir);
		ASSERT_EQ(0, mk_config_parse_buffer("t.conf", text, strlen(text), &self->cfg,
						    err, sizeof(err)));
		ASSERT_EQ(0, mk_tls_policy_build(self->cfg, &self->cfg->cf_listeners[0],
						 &self->p, err, sizeof(err)));
	}
	c = client_new(self->cctx, TLS1_2_VERSION, TLS1_2_VERSION, NULL);
	SSL_set_session(c, sess);
	EXPECT_EQ(0, handshake(self->p, c, NULL));
	EXPECT_EQ(0, SSL_session_reused(c));
	SSL_free(c);
	SSL_SESSION_free(sess);
	mk_tls_policy_put(first);
}

/* A client presenting @cert (NULL: none) to a listener with @mode; the session facts. */
static int with_client_cert(FIXTURE_DATA(pol) *self, int version, const char *mode,
			    const char *cert, struct mk_session *sess)
{
	char body[512], crt[128], key[128];
	SSL *c, *s = NULL;
	int ret;

	snprintf(body, sizeof(body), PAIRS "client_cert = %s\nclient_ca = @/ec.pem\n", mode);
	mk_tls_policy_put(self->p);
	self->p = NULL;
	if (build(self, "imap", body))
		return -EINVAL;
	c = client_new(self->cctx, version, version, NULL);
	if (cert) {
		snprintf(crt, sizeof(crt), "%s/%s.pem", self->dir, cert);
		snprintf(key, sizeof(key), "%s/%s.key", self->dir, cert);
		SSL_use_certificate_file(c, crt, SSL_FILETYPE_PEM);
		SSL_use_PrivateKey_file(c, key, SSL_FILETYPE_PEM);
	}
	ret = handshake(self->p, c, &s);
	memset(sess, 0, sizeof(*sess));
	if (!ret)
		mk_client_cert_describe(s, sess);
	else
		SSL_read(c, body, 1);	/* TLS 1.3: the verdict follows the client's Finished */
	SSL_free(s);
	SSL_free(c);
	return ret;
}

/* client_ca is the ec certificate itself (self-signed): ec verifies, other does not. */
TEST_F(pol, client_cert)
{
	struct mk_session ss;
	int v;

	for (v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
		ASSERT_EQ(0, with_client_cert(self, v, "require", "ec", &ss)) TH_LOG("%s", self->err);
		EXPECT_TRUE(ss.ss_client_cert);
		EXPECT_EQ(X509_V_OK, ss.ss_verify);
		EXPECT_STREQ("/CN=mail.example.org", ss.ss_client_subject);
		EXPECT_STREQ("mail.example.org", ss.ss_client_cn);

		last_alert = -1;
		EXPECT_EQ(-EPROTO, with_client_cert(self, v, "require", NULL, &ss));
		EXPECT_EQ(v == TLS1_3_VERSION ? 116 : SSL_AD_HANDSHAKE_FAILURE, last_alert);
		last_alert = -1;
		EXPECT_EQ(-EPROTO, with_client_cert(self, v, "require", "other", &ss));
		EXPECT_EQ(SSL_AD_UNKNOWN_CA, last_alert);

		EXPECT_EQ(0, with_client_cert(self, v, "optional", NULL, &ss));
		EXPECT_FALSE(ss.ss_client_cert);
		EXPECT_STREQ("", ss.ss_client_cn);
		/* optional, as nginx's: a certificate that does not verify is refused. */
		last_alert = -1;
		EXPECT_EQ(-EPROTO, with_client_cert(self, v, "optional", "other", &ss));
		EXPECT_EQ(SSL_AD_UNKNOWN_CA, last_alert);
	}
	mk_tls_policy_put(self->p);
	self->p = NULL;
	EXPECT_NE(0, build(self, "imap", PAIRS "client_cert = require\nclient_ca = @/bad.pem\n"));
	EXPECT_NE(NULL, strstr(self->err, "t.conf:11: client_ca "));
	EXPECT_NE(NULL, strstr(self->err, "bad.pem: "));
}

/* Only a single, printable CN becomes a user name. */
TEST(client_cert_cn)
{
	X509_NAME *n = X509_NAME_new();
	char cn[16];

	mk_client_cert_cn(n, cn, sizeof(cn));
	EXPECT_STREQ("", cn);
	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC, (const unsigned char *)"Org", -1, -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8,
				   (const unsigned char *)"j\xc3\xb6rg", -1, -1, 0);
	mk_client_cert_cn(n, cn, sizeof(cn));
	EXPECT_STREQ("j\xc3\xb6rg", cn);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"bob", -1, -1, 0);
	mk_client_cert_cn(n, cn, sizeof(cn));
	EXPECT_STREQ("", cn);
	X509_NAME_free(n);

	n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)"a\nb", -1, -1, 0);
	mk_client_cert_cn(n, cn, sizeof(cn));
	EXPECT_STREQ("", cn);
	X509_NAME_free(n);

	n = X509_NAME_new();
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
				   (const unsigned char *)"sixteen-or-more!", -1, -1, 0);
	mk_client_cert_cn(n, cn, sizeof(cn));
	EXPECT_STREQ("", cn);
	X509_NAME_free(n);
}

/* An SSL keeps its policy alive after the listener dropped it (reload). */
TEST_F(pol, ssl_outlives_policy)
{
	const unsigned char *sel = NULL;
	unsigned int sel_len = 0;
	SSL *c, *s;

	ASSERT_EQ(0, build(self, "imap", PAIRS OTHER)) TH_LOG("%s", self->err);
	s = mk_tls_policy_new_ssl(self->p);
	ASSERT_NE(NULL, s);
	mk_tls_policy_put(self->p);	/* only the SSL holds it now */
	self->p = NULL;
	/* SNI and ALPN callbacks use the policy during the handshake. */
	c = client_new(self->cctx, 0, 0, "other.example.net");
	SSL_set_alpn_protos(c, (const unsigned char *)"\x04imap", 5);
	EXPECT_EQ(0, handshake_with(s, c));
	EXPECT_EQ(1, X509_check_host(SSL_get0_peer_certificate(c), "other.example.net", 0, 0,
				     NULL));
	SSL_get0_alpn_selected(c, &sel, &sel_len);
	EXPECT_EQ(4, sel_len);
	SSL_free(s);	/* frees the policy: the sanitizer build checks for leaks */
	SSL_free(c);
}

/* The secrets slot and keylog callback are in place: kTLS keys derive. */
TEST_F(pol, keys_derivable)
{
	static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };
	struct mk_tls_dir_keys tx, rx;
	SSL *c, *s = NULL;
	size_t i;

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	for (i = 0; i < 2; i++) {
		c = client_new(self->cctx, versions[i], versions[i], NULL);
		ASSERT_EQ(0, handshake(self->p, c, &s));
		EXPECT_EQ(0, mk_tls_keys_derive(s, &tx, &rx));
		EXPECT_EQ(versions[i], tx.dk_version);
		EXPECT_EQ(versions[i], rx.dk_version);
		mk_tls_dir_keys_wipe(&tx);
		mk_tls_dir_keys_wipe(&rx);
		SSL_free(s);
		SSL_free(c);
	}
}

/*
 * With the records in user space no secret is kept, on every context of
 * the listener (the SNI one too), and switching capture back on restores
 * the kTLS keys.
 */
TEST_F(pol, secrets_captured_only_when_asked)
{
	static const char *const snis[] = { NULL, "other.example.net" };
	struct mk_tls_dir_keys tx, rx;
	SSL *c, *s = NULL;
	size_t i;

	ASSERT_EQ(0, build(self, "imap", PAIRS OTHER)) TH_LOG("%s", self->err);
	for (i = 0; i < 2; i++) {
		mk_tls_policy_capture_secrets(self->p, false);
		c = client_new(self->cctx, TLS1_3_VERSION, TLS1_3_VERSION, snis[i]);
		ASSERT_EQ(0, handshake(self->p, c, &s));
		EXPECT_EQ(NULL, mk_tls_keys_get(s));
		EXPECT_EQ(-EINVAL, mk_tls_keys_derive(s, &tx, &rx));
		SSL_free(s);
		SSL_free(c);

		mk_tls_policy_capture_secrets(self->p, true);
		c = client_new(self->cctx, TLS1_3_VERSION, TLS1_3_VERSION, snis[i]);
		ASSERT_EQ(0, handshake(self->p, c, &s));
		ASSERT_NE(NULL, mk_tls_keys_get(s));
		EXPECT_EQ(0, mk_tls_keys_derive(s, &tx, &rx));
		mk_tls_dir_keys_wipe(&tx);
		mk_tls_dir_keys_wipe(&rx);
		SSL_free(s);
		SSL_free(c);
	}
}

/*
 * The group a default client and a default OpenSSL server agree on: what
 * the agent must give when no groups key is set (3.5: X25519MLKEM768).
 */
static void openssl_default_group(struct __test_metadata *_metadata, SSL_CTX *cctx,
				  const char *dir, char *out, size_t len)
{
	SSL_CTX *sctx = SSL_CTX_new(TLS_server_method());
	char cert[128], key[128];
	SSL *c, *s;

	ASSERT_NE(NULL, sctx);
	snprintf(cert, sizeof(cert), "%s/ec.pem", dir);
	snprintf(key, sizeof(key), "%s/ec.key", dir);
	ASSERT_EQ(1, SSL_CTX_use_certificate_chain_file(sctx, cert));
	ASSERT_EQ(1, SSL_CTX_use_PrivateKey_file(sctx, key, SSL_FILETYPE_PEM));
	c = SSL_new(cctx);
	s = SSL_new(sctx);
	ASSERT_EQ(0, handshake_with(s, c));
	mk_tls_group_name(s, out, len);
	SSL_free(s);
	SSL_free(c);
	SSL_CTX_free(sctx);
}

TEST_F(pol, groups_default_is_openssls)
{
	char want[64], got[64];
	SSL *c, *s = NULL;

	openssl_default_group(_metadata, self->cctx, self->dir, want, sizeof(want));
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
	EXPECT_STREQ("X25519MLKEM768", want);
#else
	EXPECT_STREQ("x25519", want);
#endif
	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	c = client_new(self->cctx, 0, 0, NULL);
	ASSERT_EQ(0, handshake(self->p, c, &s));
	mk_tls_group_name(s, got, sizeof(got));
	EXPECT_STREQ(want, got);
	/* The client sees the same group under the same name. */
	mk_tls_group_name(c, got, sizeof(got));
	EXPECT_STREQ(want, got);
	SSL_free(s);
	SSL_free(c);
}

/* A list replaces the default: the client's first key share is refused
 * (HelloRetryRequest) and the listener's group is used. */
TEST_F(pol, groups_set)
{
	static const int versions[] = { TLS1_2_VERSION, TLS1_3_VERSION };
	char got[64];
	SSL *c, *s = NULL;
	size_t i;

	ASSERT_EQ(0, build(self, "imap", PAIRS "groups = secp384r1:secp256r1\n"))
		TH_LOG("%s", self->err);
	for (i = 0; i < 2; i++) {
		c = client_new(self->cctx, versions[i], versions[i], NULL);
		ASSERT_EQ(0, handshake(self->p, c, &s)) TH_LOG("alert %d", last_alert);
		mk_tls_group_name(s, got, sizeof(got));
		EXPECT_STREQ("secp384r1", got);
		SSL_free(s);
		SSL_free(c);
	}
}

TEST_F(pol, groups_unknown_refused)
{
	EXPECT_EQ(-EINVAL, build(self, "imap", PAIRS "groups = x25519:brainpool999:P-256\n"));
	EXPECT_EQ(0, strncmp(self->err, "t.conf:10: groups: 'brainpool999' is not a key-"
			     "exchange group OpenSSL ", strlen("t.conf:10: groups: 'brainpool999' "
			     "is not a key-exchange group OpenSSL "))) TH_LOG("%s", self->err);
	EXPECT_EQ(NULL, self->p);
#if OPENSSL_VERSION_NUMBER < 0x30500000L
	/* 3.0 has no ML-KEM: the operator hears so before the agent starts. */
	EXPECT_EQ(-EINVAL, build(self, "imap", PAIRS "groups = X25519MLKEM768:x25519\n"));
	EXPECT_EQ(0, strncmp(self->err, "t.conf:10: groups: 'X25519MLKEM768' is not",
			     strlen("t.conf:10: groups: 'X25519MLKEM768' is not")))
		TH_LOG("%s", self->err);
#else
	EXPECT_EQ(0, build(self, "imap", PAIRS "groups = X25519MLKEM768:x25519\n"))
		TH_LOG("%s", self->err);
#endif
}

TEST(groups_check)
{
	char bad[64];

	EXPECT_EQ(0, mk_tls_groups_check("x25519:secp256r1:P-384", bad, sizeof(bad)));
	EXPECT_EQ(-EINVAL, mk_tls_groups_check("x25519:nosuch", bad, sizeof(bad)));
	EXPECT_STREQ("nosuch", bad);
	EXPECT_EQ(-EINVAL, mk_tls_groups_check("nosuch1:nosuch2", bad, sizeof(bad)));
	EXPECT_STREQ("nosuch1", bad);
#if OPENSSL_VERSION_NUMBER >= 0x30500000L
	/* 3.5's syntax: '?' skips an unknown name, '*' asks for a key share. */
	EXPECT_EQ(0, mk_tls_groups_check("?nosuch:*X25519MLKEM768/x25519", bad, sizeof(bad)));
	EXPECT_EQ(-EINVAL, mk_tls_groups_check("*x25519:nosuch", bad, sizeof(bad)));
	EXPECT_STREQ("nosuch", bad);
#endif
}

static int tickets_seen;

static int count_ticket(SSL *ssl, SSL_SESSION *sess)
{
	tickets_seen++;
	return 0;	/* not kept */
}

/* One TLS 1.3 ticket per handshake, full or resumed. */
TEST_F(pol, one_ticket_per_handshake)
{
	SSL_SESSION *sess = NULL;
	SSL *c, *s = NULL;
	char buf[1];
	int i;

	ASSERT_EQ(0, build(self, "imap", PAIRS)) TH_LOG("%s", self->err);
	SSL_CTX_set_session_cache_mode(self->cctx, SSL_SESS_CACHE_CLIENT |
				       SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(self->cctx, count_ticket);
	for (i = 0; i < 2; i++) {
		tickets_seen = 0;
		c = client_new(self->cctx, TLS1_3_VERSION, TLS1_3_VERSION, NULL);
		if (sess)
			SSL_set_session(c, sess);
		ASSERT_EQ(0, handshake(self->p, c, &s));
		EXPECT_EQ(-1, SSL_read(c, buf, sizeof(buf)));
		EXPECT_EQ(1, tickets_seen);
		EXPECT_EQ(i, SSL_session_reused(c));
		SSL_SESSION_free(sess);
		sess = SSL_get1_session(c);
		SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_set_shutdown(c, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
		SSL_free(s);
		SSL_free(c);
	}
	SSL_SESSION_free(sess);
}

TEST_HARNESS_MAIN
