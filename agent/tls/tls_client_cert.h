/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Client certificates (RFC 8314 §4.2): a listener asks for one, verifies it
 * against its client_ca file, and tells the daemon behind it the subject of
 * a verified one (PROXY v2 PP2_SUBTYPE_SSL_CN, for SASL EXTERNAL).
 */
#ifndef MAILKTLS_TLS_CLIENT_CERT_H
#define MAILKTLS_TLS_CLIENT_CERT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"
#include "session.h"

/**
 * mk_client_cert_setup() - make @ctx ask for and verify client certificates
 * @ctx:    a server context of the listener
 * @cfg:    whole configuration (for the file name in messages)
 * @lc:     the listener; nothing is done for client_cert = none
 * @err:    "FILE:LINE: message" about client_ca
 * @errlen: size of @err
 *
 * Return: 0, -EINVAL with @err set (client_ca unreadable or without a
 * certificate), -ENOMEM.
 */
int mk_client_cert_setup(SSL_CTX *ctx, const struct mk_config *cfg,
			 const struct mk_listener_cfg *lc, char *err, size_t errlen);

/**
 * mk_client_cert_describe() - what the session says about the client's
 * certificate: ss_client_cert, ss_client_subject, ss_verify, and
 * ss_client_cn only when the certificate was verified
 * @ssl: the SSL, handshake complete
 * @s:   the session to fill
 */
void mk_client_cert_describe(SSL *ssl, struct mk_session *s);

/**
 * mk_client_cert_cn() - the single commonName of @name as UTF-8
 * @name: a subject name
 * @out:  result, "" when there is none, more than one, or one holding a
 *        NUL or another control character
 * @len:  size of @out; a longer CN gives ""
 */
void mk_client_cert_cn(const X509_NAME *name, char *out, size_t len);

#endif
