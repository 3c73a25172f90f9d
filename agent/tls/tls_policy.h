/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The TLS policy of one listener as OpenSSL contexts: versions (1.2 minimum),
 * AEAD-only ECDHE suites for 1.2, no compression, no renegotiation,
 * RSA and ECDSA certificates side by side, SNI, strict ALPN.
 */
#ifndef MAILKTLS_TLS_POLICY_H
#define MAILKTLS_TLS_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "config.h"

struct mk_tls_policy;

/**
 * mk_tls_policy_build() - build the contexts of a listener
 * @cfg:    whole configuration (for the file name in messages)
 * @lc:     the listener
 * @out:    result
 * @err:    "FILE:LINE: message" naming the first problem: certificate or
 *          key missing/unreadable/unparsable, key not matching certificate
 *
 * Return: 0, -EINVAL with @err set, -ENOMEM.
 */
int mk_tls_policy_build(const struct mk_config *cfg, const struct mk_listener_cfg *lc,
			struct mk_tls_policy **out, char *err, size_t errlen);

/**
 * mk_tls_policy_new_ssl() - a server SSL for one accepted connection, with
 * the secrets slot attached (tls_keys.h) and the listener's ALPN rule.
 * Return: the SSL, or NULL.
 */
SSL *mk_tls_policy_new_ssl(struct mk_tls_policy *p);

/* Keep TLS 1.3 traffic secrets for kernel TLS (the default) or not; call
 * before any other thread uses @p. */
void mk_tls_policy_capture_secrets(struct mk_tls_policy *p, bool on);

/**
 * mk_tls_policy_keep_tickets() - without ticket_keys, let @p accept the
 * session tickets @old issued (a reload keeps resumption working)
 * @p:   the new policy, not yet published
 * @old: the same listener's policy in force until now
 *
 * Return: 0 (also when ticket_keys decides), or -EINVAL.
 */
int mk_tls_policy_keep_tickets(struct mk_tls_policy *p, struct mk_tls_policy *old);

/* Reference counting: a reload swaps policies while old connections still
 * hold the old one. */
void mk_tls_policy_get(struct mk_tls_policy *p);
void mk_tls_policy_put(struct mk_tls_policy *p);

/* The private key of a pair, read from its file ("FILE:LINE: message" in
 * @err on failure). */
EVP_PKEY *mk_tls_read_key(const struct mk_config *cfg, const struct mk_certpair *cp,
			  char *err, size_t errlen);

/* The ALPN protocol id this listener expects: "imap", "pop3", "smtp". */
const char *mk_tls_policy_alpn_id(enum mk_protocol proto);

#endif
