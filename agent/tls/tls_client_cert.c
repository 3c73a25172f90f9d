// SPDX-License-Identifier: GPL-2.0
/*
 * Client certificates, verified by OpenSSL against the listener's client_ca.
 *
 * client_cert = optional follows nginx's "optional", not "optional_no_ca":
 * a client may send no certificate, but one it sends must verify, or the
 * handshake fails (OpenSSL's verification error becomes the alert). So a
 * certificate that reaches a session is a verified one; the CN is still
 * taken only when the verify result says so, as Dovecot 2.3 trusts the CN
 * of a PROXY header without looking at the verify field.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "tls_client_cert.h"

/* Leaf, intermediates, root: more than enough for a mail client's chain. */
#define MK_CLIENT_VERIFY_DEPTH 4

static int ca_err(char *err, size_t errlen, const struct mk_config *cfg,
		  const struct mk_listener_cfg *lc, const char *what)
{
	unsigned long e = ERR_peek_last_error();

	snprintf(err, errlen, "%s:%d: client_ca %s: %s%s%s", cfg->cf_path,
		 lc->lc_client_ca.pc_line, lc->lc_client_ca.pc_path, what, e ? ": " : "",
		 e ? ERR_reason_error_string(e) : "");
	ERR_clear_error();
	return -EINVAL;
}

int mk_client_cert_setup(SSL_CTX *ctx, const struct mk_config *cfg,
			 const struct mk_listener_cfg *lc, char *err, size_t errlen)
{
	STACK_OF(X509_NAME) *names;
	int mode = SSL_VERIFY_PEER;

	if (lc->lc_client_cert == MK_CLIENT_CERT_NONE)
		return 0;
	if (lc->lc_client_cert == MK_CLIENT_CERT_REQUIRE)
		mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
	if (SSL_CTX_load_verify_file(ctx, lc->lc_client_ca.pc_path) != 1)
		return ca_err(err, errlen, cfg, lc, "cannot load the CA certificates");
	/* The CA names go into the CertificateRequest, so that a client
	 * holding several certificates picks the right one. */
	names = SSL_load_client_CA_file(lc->lc_client_ca.pc_path);
	if (!names)
		return ca_err(err, errlen, cfg, lc, "holds no PEM certificate");
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, mode, NULL);
	SSL_CTX_set_verify_depth(ctx, MK_CLIENT_VERIFY_DEPTH);
	return 0;
}

void mk_client_cert_cn(const X509_NAME *name, char *out, size_t len)
{
	int i = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
	unsigned char *utf8 = NULL;
	int n, j;

	out[0] = '\0';
	if (i < 0 || X509_NAME_get_index_by_NID(name, NID_commonName, i) >= 0)
		return;		/* none, or two: which one is the user? */
	n = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i)));
	if (n <= 0 || (size_t)n >= len) {
		OPENSSL_free(utf8);
		return;
	}
	for (j = 0; j < n; j++) {
		if (utf8[j] < 0x20 || utf8[j] == 0x7f) {
			OPENSSL_free(utf8);
			return;
		}
	}
	memcpy(out, utf8, (size_t)n);
	out[n] = '\0';
	OPENSSL_free(utf8);
}

void mk_client_cert_describe(SSL *ssl, struct mk_session *s)
{
	X509 *peer = SSL_get0_peer_certificate(ssl);

	if (!peer)
		return;
	s->ss_client_cert = true;
	X509_NAME_oneline(X509_get_subject_name(peer), s->ss_client_subject,
			  sizeof(s->ss_client_subject));
	s->ss_verify = (int32_t)SSL_get_verify_result(ssl);
	if (s->ss_verify == X509_V_OK)
		mk_client_cert_cn(X509_get_subject_name(peer), s->ss_client_cn,
				  sizeof(s->ss_client_cn));
}
