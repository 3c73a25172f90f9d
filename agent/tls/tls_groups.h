/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Key-exchange groups: the listener's `groups` list checked against the
 * linked OpenSSL, and the name of the group a handshake negotiated.
 *
 * Without a `groups` key the agent leaves OpenSSL's own default list in
 * place: on OpenSSL 3.5 that offers and prefers the hybrid post-quantum
 * group X25519MLKEM768, which any list set by hand would switch off.
 */
#ifndef MAILKTLS_TLS_GROUPS_H
#define MAILKTLS_TLS_GROUPS_H

#include <stddef.h>

#include <openssl/ssl.h>

/**
 * mk_tls_groups_check() - can the linked OpenSSL use a group list?
 * @list:   a `groups` value in OpenSSL's syntax ("X25519MLKEM768:x25519")
 * @bad:    receives the first name OpenSSL does not know, or the whole list
 *          when every name is known but the list is refused as a whole
 * @badlen: size of @bad
 *
 * Return: 0 when SSL_CTX_set1_groups_list() accepts @list, -EINVAL with @bad
 * set when it does not, -ENOMEM.
 */
int mk_tls_groups_check(const char *list, char *bad, size_t badlen);

/**
 * mk_tls_group_name() - the negotiated key-exchange group of a handshake
 * @ssl: a connection whose handshake completed
 * @out: receives the group's TLS name as OpenSSL and the IANA registry
 *       write it ("x25519", "secp256r1", "X25519MLKEM768"), "0x11ec" for a
 *       group this OpenSSL has no name for, "" when there was none (a
 *       resumption without key exchange)
 * @len: size of @out
 */
void mk_tls_group_name(SSL *ssl, char *out, size_t len);

#endif
