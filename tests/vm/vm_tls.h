/* SPDX-License-Identifier: GPL-2.0 */
/*
 * OpenSSL helpers shared by the kernel TLS VM tests (ktls_basic, agent_ktls,
 * agent_query): throw-away certificates, contexts pinned to one version and
 * cipher, and the kernel's kTLS counters. Header only: each
 * tests/vm test is one program.
 */
#ifndef MAILKTLS_VM_TLS_H
#define MAILKTLS_VM_TLS_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "kselftest_harness.h"

/* Counters of /proc/net/tls_stat the tests look at. */
struct vm_tls_stat {
	long ts_tx_sw;
	long ts_rx_sw;
	long ts_curr_tx_sw;
	long ts_curr_rx_sw;
	long ts_decrypt_error;
};

static const struct {
	const char *sf_name;
	size_t sf_off;
} vm_tls_stat_fields[] = {
	{ "TlsTxSw", offsetof(struct vm_tls_stat, ts_tx_sw) },
	{ "TlsRxSw", offsetof(struct vm_tls_stat, ts_rx_sw) },
	{ "TlsCurrTxSw", offsetof(struct vm_tls_stat, ts_curr_tx_sw) },
	{ "TlsCurrRxSw", offsetof(struct vm_tls_stat, ts_curr_rx_sw) },
	{ "TlsDecryptError", offsetof(struct vm_tls_stat, ts_decrypt_error) },
};

/* Fill @st from /proc/net/tls_stat; -ENOENT if a counter is missing. */
static inline int vm_read_tls_stat(struct vm_tls_stat *st)
{
	char name[64];
	size_t i, found = 0;
	long val;
	FILE *f;

	f = fopen("/proc/net/tls_stat", "re");
	if (!f)
		return -errno;
	while (fscanf(f, "%63s %ld", name, &val) == 2) {
		for (i = 0; i < ARRAY_SIZE(vm_tls_stat_fields); i++) {
			if (strcmp(name, vm_tls_stat_fields[i].sf_name))
				continue;
			*(long *)((char *)st + vm_tls_stat_fields[i].sf_off) = val;
			found++;
		}
	}
	fclose(f);
	return found == ARRAY_SIZE(vm_tls_stat_fields) ? 0 : -ENOENT;
}

/*
 * A throw-away self-signed P-256 certificate for @cn, valid for an hour
 * either side of now. Return: 0 with *@pkey and *@x to free, or -1.
 */
static inline int vm_self_signed(const char *cn, EVP_PKEY **pkey, X509 **x)
{
	*pkey = EVP_EC_gen("P-256");
	*x = X509_new();
	if (!*pkey || !*x)
		goto fail;
	X509_set_version(*x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(*x), 1);
	X509_gmtime_adj(X509_getm_notBefore(*x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(*x), 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(*x), "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(*x, X509_get_subject_name(*x));
	if (X509_set_pubkey(*x, *pkey) && X509_sign(*x, *pkey, EVP_sha256()))
		return 0;
fail:
	X509_free(*x);
	EVP_PKEY_free(*pkey);
	*x = NULL;
	*pkey = NULL;
	return -1;
}

/* Serve a fresh self-signed certificate for @cn from @ctx. Return: 0 or -1. */
static inline int vm_ctx_use_self_signed(SSL_CTX *ctx, const char *cn)
{
	EVP_PKEY *pkey;
	X509 *x;
	int ok;

	if (vm_self_signed(cn, &pkey, &x))
		return -1;
	ok = SSL_CTX_use_certificate(ctx, x) && SSL_CTX_use_PrivateKey(ctx, pkey);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ok ? 0 : -1;
}

/* A fresh self-signed certificate for @cn as @dir/cert.pem and @dir/key.pem. */
static inline int vm_write_cert(const char *dir, const char *cn)
{
	char path[128];
	EVP_PKEY *pkey;
	FILE *f = NULL;
	X509 *x;
	int ok = 0;

	if (vm_self_signed(cn, &pkey, &x))
		return -1;
	snprintf(path, sizeof(path), "%s/cert.pem", dir);
	f = fopen(path, "we");
	if (!f || !PEM_write_X509(f, x))
		goto out;
	fclose(f);
	snprintf(path, sizeof(path), "%s/key.pem", dir);
	f = fopen(path, "we");
	if (!f || !PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL))
		goto out;
	ok = 1;
out:
	if (f)
		fclose(f);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return ok ? 0 : -1;
}

/*
 * Restrict @ctx to exactly @version (TLS1_2_VERSION, TLS1_3_VERSION) and
 * @cipher (OpenSSL's name: a cipher list for 1.2, a suite for 1.3).
 */
static inline int vm_pin_cipher(SSL_CTX *ctx, int version, const char *cipher)
{
	if (!SSL_CTX_set_min_proto_version(ctx, version) ||
	    !SSL_CTX_set_max_proto_version(ctx, version))
		return -1;
	if (version == TLS1_3_VERSION)
		return SSL_CTX_set_ciphersuites(ctx, cipher) ? 0 : -1;
	return SSL_CTX_set_cipher_list(ctx, cipher) ? 0 : -1;
}

/* A client context pinned to one version and cipher, or NULL. */
static inline SSL_CTX *vm_client_ctx(int version, const char *cipher)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		return NULL;
	if (vm_pin_cipher(ctx, version, cipher)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	/* The test client does not verify the throw-away certificate. */
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static inline int vm_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -1;
	return fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

#endif
