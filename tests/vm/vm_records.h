/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A TLS client for the agent tests that decides what goes on the wire:
 * its records go through memory BIOs, so a test can put several flights in
 * one segment, flip a byte, or send records it seals itself with the
 * client's write keys. Used by agent_ktls_test (kernel TLS in the VM) and
 * agent_records_test (on the VM's kTLS path and on the host's user-space
 * path). Header only: each tests/vm test is one program.
 */
#ifndef MAILKTLS_VM_RECORDS_H
#define MAILKTLS_VM_RECORDS_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "tls_keys.h"
#include "vm_agent.h"

#define MK_CHUNK 16384
#define MK_PROLOGUE "a0 OK [CAPABILITY IMAP4rev1] mailktls test backend\r\n"
#define MK_ALERT_NONE (-1)

/* Wait up to @ms for the peer of @fd to end: 0 EOF, -ECONNRESET..., -ETIMEDOUT. */
static int mk_wait_eof(int fd, int ms)
{
	uint64_t end = vm_ms() + (uint64_t)ms;
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[4096];
	ssize_t n;

	while (vm_ms() < end) {
		if (poll(&p, 1, 100) != 1)
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0)
			return 0;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return -ETIMEDOUT;
}

/* The last alert the client received (msg callback), MK_ALERT_NONE if none. */
static void mk_msg_cb(int write_p, int version, int content_type, const void *buf, size_t len,
		      SSL *ssl, void *arg)
{
	int *alert = arg;

	if (!write_p && content_type == SSL3_RT_ALERT && len >= 2)
		*alert = ((const uint8_t *)buf)[1];
}

/* ------------------------------------------------------------------------ */
/* Records the test seals itself (zero-length records), with the client's
 * write keys: TLS 1.3 (RFC 8446 §5.2) and TLS 1.2 AEAD (RFC 5246 §6.2.3.3,
 * RFC 5288, RFC 7905). Return: record length, or -1. */

static const EVP_CIPHER *mk_aead(const struct mk_tls_dir_keys *k)
{
	switch (k->dk_cipher) {
	case 0x1303:
	case 0xCCA8:
	case 0xCCA9:
		return EVP_chacha20_poly1305();
	default:
		return k->dk_key_len == 32 ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
	}
}

static int mk_seal_record_outer(const struct mk_tls_dir_keys *k, uint8_t outer, uint8_t type,
				const uint8_t *pt, size_t ptlen, size_t padding, uint8_t *out,
				size_t outlen)
{
	bool tls13 = k->dk_version == TLS1_3_VERSION;
	bool explicit = !tls13 && k->dk_iv_len == 4;	/* TLS 1.2 GCM */
	uint8_t nonce[12] = { 0 }, aad[13], inner[MK_CHUNK + 256];
	size_t inlen = ptlen, hdr = explicit ? 13 : 5, reclen, i;
	EVP_CIPHER_CTX *ctx;
	int n, ok = 0;

	if (ptlen + 1 + padding > sizeof(inner))
		return -1;
	memcpy(inner, pt, ptlen);
	if (tls13) {
		inner[inlen++] = type;
		memset(inner + inlen, 0, padding);
		inlen += padding;
	}
	reclen = hdr + inlen + 16;
	if (reclen > outlen)
		return -1;
	for (i = 0; i < 8; i++)
		aad[i] = (uint8_t)(k->dk_seq >> (56 - 8 * i));
	if (explicit) {
		memcpy(nonce, k->dk_iv, 4);
		memcpy(nonce + 4, aad, 8);	/* explicit nonce = sequence number */
	} else {
		memcpy(nonce, k->dk_iv, 12);
		for (i = 0; i < 8; i++)
			nonce[4 + i] ^= aad[i];
	}
	out[0] = tls13 ? outer : type;
	out[1] = 3;
	out[2] = 3;
	out[3] = (uint8_t)((reclen - 5) >> 8);
	out[4] = (uint8_t)(reclen - 5);
	if (explicit)
		memcpy(out + 5, nonce + 4, 8);
	if (!tls13) {	/* seq || type || version || plaintext length */
		aad[8] = type;
		aad[9] = 3;
		aad[10] = 3;
		aad[11] = (uint8_t)(ptlen >> 8);
		aad[12] = (uint8_t)ptlen;
	}
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -1;
	if (!EVP_EncryptInit_ex(ctx, mk_aead(k), NULL, NULL, NULL) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, 12, NULL) ||
	    !EVP_EncryptInit_ex(ctx, NULL, NULL, k->dk_key, nonce) ||
	    !EVP_EncryptUpdate(ctx, NULL, &n, tls13 ? out : aad, tls13 ? 5 : 13) ||
	    (inlen && !EVP_EncryptUpdate(ctx, out + hdr, &n, inner, (int)inlen)) ||
	    !EVP_EncryptFinal_ex(ctx, out + hdr + inlen, &n) ||
	    !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, out + hdr + inlen))
		goto out;
	ok = 1;
out:
	EVP_CIPHER_CTX_free(ctx);
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok ? (int)reclen : -1;
}

/* The same with the outer type TLS 1.3 requires (application_data). */
static int mk_seal_record(const struct mk_tls_dir_keys *k, uint8_t type, const uint8_t *pt,
			  size_t ptlen, size_t padding, uint8_t *out, size_t outlen)
{
	return mk_seal_record_outer(k, 23, type, pt, ptlen, padding, out, outlen);
}

/* ------------------------------------------------------------------------ */
/* A client whose TLS bytes go through memory BIOs, so the test decides what
 * goes into each send(): several flights in one segment, a flipped byte,
 * records of its own making. */

struct mk_mc {
	SSL *mc_ssl;
	BIO *mc_rb, *mc_wb;
	int mc_fd;
	int mc_cport;
	int mc_alert;
};

static int mk_mc_new(struct mk_mc *m, SSL_CTX *ctx, int port)
{
	memset(m, 0, sizeof(*m));
	m->mc_alert = MK_ALERT_NONE;
	m->mc_fd = vm_connect(port, &m->mc_cport);
	m->mc_ssl = SSL_new(ctx);
	m->mc_rb = BIO_new(BIO_s_mem());
	m->mc_wb = BIO_new(BIO_s_mem());
	if (m->mc_fd < 0 || !m->mc_ssl || !m->mc_rb || !m->mc_wb)
		return -1;
	BIO_set_mem_eof_return(m->mc_rb, -1);
	SSL_set_bio(m->mc_ssl, m->mc_rb, m->mc_wb);
	SSL_set_connect_state(m->mc_ssl);
	SSL_set_msg_callback(m->mc_ssl, mk_msg_cb);
	SSL_set_msg_callback_arg(m->mc_ssl, &m->mc_alert);
	return mk_tls_keys_attach(m->mc_ssl);
}

static void mk_mc_free(struct mk_mc *m)
{
	SSL_free(m->mc_ssl);	/* frees the BIOs too */
	if (m->mc_fd >= 0)
		close(m->mc_fd);
	memset(m, 0, sizeof(*m));
	m->mc_fd = -1;
}

/* Take what the client SSL wrote (to send it, or to tamper with it). */
static size_t mk_mc_take(struct mk_mc *m, uint8_t *buf, size_t len)
{
	int n = BIO_read(m->mc_wb, buf, (int)len);

	return n > 0 ? (size_t)n : 0;
}

/* Send everything the client SSL wrote, in one send() call. */
static bool mk_mc_flush(struct mk_mc *m)
{
	uint8_t buf[65536];
	size_t n = mk_mc_take(m, buf, sizeof(buf));

	return !n || vm_send_all(m->mc_fd, buf, n);
}

/* One recv() into the client's read BIO: bytes, 0 at EOF, -1 error/timeout. */
static int mk_mc_fill(struct mk_mc *m, int ms)
{
	struct pollfd p = { .fd = m->mc_fd, .events = POLLIN };
	uint8_t buf[65536];
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return -1;
	n = recv(m->mc_fd, buf, sizeof(buf), 0);
	if (n > 0 && BIO_write(m->mc_rb, buf, (int)n) != (int)n)
		return -1;
	return n < 0 ? -1 : (int)n;
}

/* Run the handshake; the client's last flight stays unsent in its BIO. */
static int mk_mc_handshake(struct mk_mc *m)
{
	int i, r;

	for (i = 0; i < 50; i++) {
		r = SSL_do_handshake(m->mc_ssl);
		if (r == 1)
			return 0;
		if (SSL_get_error(m->mc_ssl, r) != SSL_ERROR_WANT_READ || !mk_mc_flush(m) ||
		    mk_mc_fill(m, VM_IO_TIMEOUT_MS) <= 0)
			return -1;
	}
	return -1;
}

/*
 * Read @len bytes of application data. Return: @len, 0 on close_notify,
 * -1 on an error (the alert, if any, is in mc_alert) or when the peer
 * closed without close_notify (-2).
 */
static int mk_mc_read(struct mk_mc *m, uint8_t *buf, size_t len, int ms)
{
	size_t got = 0, n;
	int err, f;

	while (got < len) {
		if (SSL_read_ex(m->mc_ssl, buf + got, len - got, &n)) {
			got += n;
			continue;
		}
		err = SSL_get_error(m->mc_ssl, 0);
		if (err == SSL_ERROR_ZERO_RETURN)
			return 0;
		if (err != SSL_ERROR_WANT_READ)
			return -1;
		f = mk_mc_fill(m, ms);
		if (f == 0)
			return -2;
		if (f < 0)
			return -1;
	}
	return (int)len;
}

/* Open a mem-BIO client through the agent, past one exchange each way. */
static int mk_mc_relayed(const struct vm_env *e, SSL_CTX *ctx, struct mk_mc *m, int *bfd)
{
	static const char cmd[] = "a1 NOOP\r\n";
	uint8_t buf[sizeof(MK_PROLOGUE)];

	*bfd = -1;
	if (mk_mc_new(m, ctx, e->e_port) || mk_mc_handshake(m) || !mk_mc_flush(m))
		return -1;
	*bfd = vm_backend_accept(e, VM_IO_TIMEOUT_MS);
	if (*bfd < 0 || !vm_send_all(*bfd, MK_PROLOGUE, sizeof(MK_PROLOGUE) - 1) ||
	    mk_mc_read(m, buf, sizeof(MK_PROLOGUE) - 1, VM_IO_TIMEOUT_MS) !=
		    (int)sizeof(MK_PROLOGUE) - 1)
		return -1;
	if (SSL_write(m->mc_ssl, cmd, sizeof(cmd) - 1) != (int)sizeof(cmd) - 1 ||
	    !mk_mc_flush(m) || !vm_recv_all(*bfd, buf, sizeof(cmd) - 1) ||
	    memcmp(buf, cmd, sizeof(cmd) - 1))
		return -1;
	return 0;
}

#endif
