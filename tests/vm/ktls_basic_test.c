// SPDX-License-Identifier: GPL-2.0
/*
 * End-to-end check of the key handover to kernel TLS, without the agent:
 * an OpenSSL client and an OpenSSL server handshake over a real loopback
 * TCP connection, then the server side's keys go to the kernel through
 * mk_tls_keys_derive() and mk_ktls_install() and the server talks with
 * plain send()/recv() while the client keeps using OpenSSL. If a key, IV,
 * salt or sequence number were wrong, the first record either way would
 * fail to decrypt (EBADMSG in the kernel, a bad_record_mac in OpenSSL).
 *
 * One variant per TLS version x AEAD kTLS supports. The server sends no
 * TLS 1.3 session tickets here (SSL_CTX_set_num_tickets(0)), so its first
 * application record has sequence number 0; the agent's own handshake code
 * counts tickets. Runs in the VM (scripts/vm-run.sh): needs kTLS.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "kselftest_harness.h"

#include "ktls.h"
#include "tls_keys.h"
#include "vm_tls.h"

#define MK_DATA_LEN (1u << 20)		/* bytes sent each way */
#define MK_HANDSHAKE_ROUNDS 200		/* poll rounds before giving up */
#define MK_POLL_MS 1000

FIXTURE(ktls)
{
	SSL_CTX *sctx;
	SSL_CTX *cctx;
	SSL *srv;		/* server side: handed to the kernel */
	SSL *cli;		/* client side: stays in OpenSSL */
	int sfd;
	int cfd;
	struct mk_tls_dir_keys tx;
	struct mk_tls_dir_keys rx;
	struct vm_tls_stat stat;	/* just before the install */
};

/* One TLS version x cipher combination. */
FIXTURE_VARIANT(ktls)
{
	int version;		/* TLS1_2_VERSION, TLS1_3_VERSION */
	const char *cipher;	/* OpenSSL name: cipher list (1.2) or suite (1.3) */
	uint16_t iana;		/* IANA number of the suite */
};

FIXTURE_VARIANT_ADD(ktls, tls12_aes128gcm)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-AES128-GCM-SHA256",
	.iana = 0xC02B,
};

FIXTURE_VARIANT_ADD(ktls, tls12_aes256gcm)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-AES256-GCM-SHA384",
	.iana = 0xC02C,
};

FIXTURE_VARIANT_ADD(ktls, tls12_chacha20)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-CHACHA20-POLY1305",
	.iana = 0xCCA9,
};

FIXTURE_VARIANT_ADD(ktls, tls13_aes128gcm)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_AES_128_GCM_SHA256",
	.iana = 0x1301,
};

FIXTURE_VARIANT_ADD(ktls, tls13_aes256gcm)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_AES_256_GCM_SHA384",
	.iana = 0x1302,
};

FIXTURE_VARIANT_ADD(ktls, tls13_chacha20)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_CHACHA20_POLY1305_SHA256",
	.iana = 0x1303,
};

/* Connected loopback TCP pair: @cfd connected, @sfd accepted. */
static int mk_tcp_pair(int *cfd, int *sfd)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int lfd, ret = -1;

	*cfd = *sfd = -1;
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -1;
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len))
		goto out;
	*cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*cfd < 0 || connect(*cfd, (struct sockaddr *)&sin, sizeof(sin)))
		goto out;
	*sfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	ret = *sfd < 0 ? -1 : 0;
out:
	close(lfd);
	return ret;
}

/* One step of a non-blocking handshake: 1 done, 0 wants I/O, -1 failed. */
static int mk_step(SSL *ssl)
{
	int r = SSL_do_handshake(ssl);

	if (r == 1)
		return 1;
	r = SSL_get_error(ssl, r);
	return r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* Drive both ends of the handshake in this thread, bounded in time. */
static int mk_handshake(SSL *cli, SSL *srv, int cfd, int sfd)
{
	struct pollfd pfd[2] = { { .fd = cfd, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
	int cdone = 0, sdone = 0, i;

	for (i = 0; i < MK_HANDSHAKE_ROUNDS; i++) {
		if (!cdone)
			cdone = mk_step(cli);
		if (!sdone)
			sdone = mk_step(srv);
		if (cdone < 0 || sdone < 0)
			return -1;
		if (cdone && sdone)
			return 0;
		if (poll(pfd, 2, MK_POLL_MS) < 0 && errno != EINTR)
			return -1;
	}
	return -1;
}

FIXTURE_SETUP(ktls)
{
	char err[256] = "";
	int ret;

	self->sfd = self->cfd = -1;
	self->sctx = SSL_CTX_new(TLS_server_method());
	self->cctx = SSL_CTX_new(TLS_client_method());
	ASSERT_NE(NULL, self->sctx);
	ASSERT_NE(NULL, self->cctx);
	ASSERT_EQ(0, vm_ctx_use_self_signed(self->sctx, "mailktls-vm"));
	ASSERT_EQ(0, vm_pin_cipher(self->sctx, variant->version, variant->cipher));
	ASSERT_EQ(0, vm_pin_cipher(self->cctx, variant->version, variant->cipher));
	ASSERT_EQ(1, SSL_CTX_set_num_tickets(self->sctx, 0));
	SSL_CTX_set_keylog_callback(self->sctx, mk_tls_keylog_cb);

	ASSERT_EQ(0, mk_tcp_pair(&self->cfd, &self->sfd));
	ASSERT_EQ(0, vm_set_nonblock(self->cfd, true));
	ASSERT_EQ(0, vm_set_nonblock(self->sfd, true));
	self->srv = SSL_new(self->sctx);
	self->cli = SSL_new(self->cctx);
	ASSERT_NE(NULL, self->srv);
	ASSERT_NE(NULL, self->cli);
	ASSERT_EQ(0, mk_tls_keys_attach(self->srv));
	ASSERT_EQ(1, SSL_set_fd(self->srv, self->sfd));
	ASSERT_EQ(1, SSL_set_fd(self->cli, self->cfd));
	SSL_set_accept_state(self->srv);
	SSL_set_connect_state(self->cli);

	ASSERT_EQ(0, mk_handshake(self->cli, self->srv, self->cfd, self->sfd)) {
		ERR_print_errors_fp(stderr);
	}
	ASSERT_EQ(variant->version, SSL_version(self->srv));
	ASSERT_EQ(variant->iana,
		  SSL_CIPHER_get_protocol_id(SSL_get_current_cipher(self->srv)));
	/* kTLS takes over the socket: nothing may be left inside OpenSSL */
	ASSERT_EQ(0, SSL_has_pending(self->srv));

	ret = mk_tls_keys_derive(self->srv, &self->tx, &self->rx);
	ASSERT_EQ(0, ret);
	ASSERT_EQ(variant->iana, self->tx.dk_cipher);
	ASSERT_EQ(variant->iana, self->rx.dk_cipher);
	ASSERT_EQ(variant->version, self->tx.dk_version);
	/*
	 * TLS 1.2: each side's Finished was record 0 under the new keys.
	 * TLS 1.3: the application keys are fresh and, without tickets, the
	 * server sent nothing under them yet.
	 */
	self->tx.dk_seq = variant->version == TLS1_2_VERSION ? 1 : 0;
	self->rx.dk_seq = variant->version == TLS1_2_VERSION ? 1 : 0;

	ASSERT_EQ(0, vm_set_nonblock(self->cfd, false));
	ASSERT_EQ(0, vm_set_nonblock(self->sfd, false));
	ASSERT_EQ(0, vm_read_tls_stat(&self->stat));
	ret = mk_ktls_install(self->sfd, &self->tx, &self->rx, err, sizeof(err));
	ASSERT_EQ(0, ret) {
		TH_LOG("mk_ktls_install: %s", err);
	}
}

FIXTURE_TEARDOWN(ktls)
{
	mk_tls_dir_keys_wipe(&self->tx);
	mk_tls_dir_keys_wipe(&self->rx);
	SSL_free(self->cli);
	SSL_free(self->srv);	/* never used again after the handover */
	SSL_CTX_free(self->cctx);
	SSL_CTX_free(self->sctx);
	if (self->cfd >= 0)
		close(self->cfd);
	if (self->sfd >= 0)
		close(self->sfd);
}

/* The server half of one transfer, run in a thread while the client runs. */
struct mk_xfer {
	int xf_fd;
	uint8_t *xf_buf;
	size_t xf_len;
	int xf_err;		/* 0, or errno of the failing call */
};

static void *mk_server_recv(void *arg)
{
	struct mk_xfer *x = arg;
	size_t got = 0;
	ssize_t n;

	while (got < x->xf_len) {
		/* odd read sizes so reads straddle record boundaries */
		n = recv(x->xf_fd, x->xf_buf + got, MIN(x->xf_len - got, 7001), 0);
		if (n <= 0) {
			x->xf_err = n < 0 ? errno : EPIPE;
			break;
		}
		got += n;
	}
	return NULL;
}

static void *mk_server_send(void *arg)
{
	struct mk_xfer *x = arg;
	size_t sent = 0;
	ssize_t n;

	while (sent < x->xf_len) {
		n = send(x->xf_fd, x->xf_buf + sent, x->xf_len - sent, MSG_NOSIGNAL);
		if (n <= 0) {
			x->xf_err = n < 0 ? errno : EPIPE;
			break;
		}
		sent += n;
	}
	return NULL;
}

/* SSL_write()/SSL_read() all of @len bytes; 0 or the SSL error code. */
static int mk_ssl_io(SSL *ssl, uint8_t *buf, size_t len, int writing)
{
	size_t done = 0, n;
	int ok;

	while (done < len) {
		if (writing)
			ok = SSL_write_ex(ssl, buf + done, MIN(len - done, 10000), &n);
		else
			ok = SSL_read_ex(ssl, buf + done, len - done, &n);
		if (!ok)
			return SSL_get_error(ssl, 0) ?: -1;
		done += n;
	}
	return 0;
}

TEST(probe_finds_ktls)
{
	char why[256] = "";

	ASSERT_TRUE(mk_ktls_probe(why, sizeof(why))) {
		TH_LOG("%s", why);
	}
}

/*
 * 1 MiB client -> server (OpenSSL encrypts, the kernel decrypts) and 1 MiB
 * server -> client (the kernel encrypts, OpenSSL decrypts), byte for byte;
 * the kernel counted the socket as one more software TX and RX kTLS socket
 * and saw no record fail to decrypt.
 */
TEST_F(ktls, data_both_ways)
{
	struct vm_tls_stat st = { 0 };
	struct mk_xfer x = { .xf_fd = self->sfd, .xf_len = MK_DATA_LEN };
	uint8_t *out, *in;
	pthread_t th;

	out = malloc(MK_DATA_LEN);
	in = malloc(MK_DATA_LEN);
	ASSERT_NE(NULL, out);
	ASSERT_NE(NULL, in);

	ASSERT_EQ(1, RAND_bytes(out, MK_DATA_LEN));
	x.xf_buf = in;
	ASSERT_EQ(0, pthread_create(&th, NULL, mk_server_recv, &x));
	EXPECT_EQ(0, mk_ssl_io(self->cli, out, MK_DATA_LEN, 1));
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(0, x.xf_err) {
		TH_LOG("server recv: %s", strerror(x.xf_err));
	}
	ASSERT_EQ(0, memcmp(out, in, MK_DATA_LEN));

	ASSERT_EQ(1, RAND_bytes(out, MK_DATA_LEN));
	memset(in, 0, MK_DATA_LEN);
	x.xf_buf = out;
	ASSERT_EQ(0, pthread_create(&th, NULL, mk_server_send, &x));
	EXPECT_EQ(0, mk_ssl_io(self->cli, in, MK_DATA_LEN, 0)) {
		ERR_print_errors_fp(stderr);
	}
	ASSERT_EQ(0, pthread_join(th, NULL));
	ASSERT_EQ(0, x.xf_err) {
		TH_LOG("server send: %s", strerror(x.xf_err));
	}
	ASSERT_EQ(0, memcmp(out, in, MK_DATA_LEN));

	ASSERT_EQ(0, vm_read_tls_stat(&st));
	EXPECT_EQ(self->stat.ts_tx_sw + 1, st.ts_tx_sw);
	EXPECT_EQ(self->stat.ts_rx_sw + 1, st.ts_rx_sw);
	EXPECT_EQ(self->stat.ts_curr_tx_sw + 1, st.ts_curr_tx_sw);
	EXPECT_EQ(self->stat.ts_curr_rx_sw + 1, st.ts_curr_rx_sw);
	EXPECT_EQ(self->stat.ts_decrypt_error, st.ts_decrypt_error);
	free(out);
	free(in);
}

/*
 * Closing in both directions: the client's close_notify reaches the server
 * as an alert record (a plain recv() would fail with EIO), and the server's
 * close_notify sent with mk_ktls_send_alert() ends the client's read cleanly.
 */
TEST_F(ktls, close_notify_both_ways)
{
	uint8_t buf[64], type = 0;
	size_t n = 0;
	ssize_t r;

	ASSERT_EQ(0, SSL_shutdown(self->cli));	/* 0: sent, peer's not seen yet */
	r = mk_ktls_recv_record(self->sfd, buf, sizeof(buf), &type);
	ASSERT_EQ(2, r);
	EXPECT_EQ(MK_TLS_CT_ALERT, type);
	EXPECT_EQ(1, buf[0]);	/* warning */
	EXPECT_EQ(0, buf[1]);	/* close_notify */

	ASSERT_EQ(0, mk_ktls_send_alert(self->sfd, 1, 0));
	EXPECT_EQ(0, SSL_read_ex(self->cli, buf, sizeof(buf), &n));
	EXPECT_EQ(SSL_ERROR_ZERO_RETURN, SSL_get_error(self->cli, 0));
}

TEST_HARNESS_MAIN
