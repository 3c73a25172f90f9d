// SPDX-License-Identifier: GPL-2.0
/*
 * Kernel TLS glue, host side: the crypto_info handed to setsockopt, byte for
 * byte; what probe and install say on a kernel without kTLS; refusing keys
 * before the socket is touched; the record helpers on a plain socket.
 * (The kTLS paths themselves run in the VM tests.)
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "kselftest_harness.h"

#include "ktls.h"

static size_t unhex(const char *s, uint8_t *out, size_t max)
{
	size_t len = 0;

	if (!OPENSSL_hexstr2buf_ex(out, max, &len, s, '\0'))
		return 0;
	return len;
}

/* A connected loopback TCP pair. */
static int tcp_pair(int fds[2])
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t slen = sizeof(sin);
	int lfd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen))
		return -1;
	fds[0] = socket(AF_INET, SOCK_STREAM, 0);
	if (fds[0] < 0 || connect(fds[0], (struct sockaddr *)&sin, sizeof(sin)))
		return -1;
	fds[1] = accept(lfd, NULL, NULL);
	close(lfd);
	return fds[1] < 0 ? -1 : 0;
}

/* Does this kernel have the TLS ULP at all? */
static bool kernel_has_tls_ulp(void)
{
	int fds[2], ret;

	if (tcp_pair(fds))
		return false;
	ret = setsockopt(fds[0], SOL_TCP, TCP_ULP, "tls", sizeof("tls"));
	close(fds[0]);
	close(fds[1]);
	return ret == 0;
}

/* Keys with recognisable bytes: key 10 11 12 .., static IV a0 a1 .., seq 01..08. */
static void fill_keys(struct mk_tls_dir_keys *k, uint16_t version, uint16_t cipher,
		      size_t key_len, size_t iv_len)
{
	size_t i;

	memset(k, 0, sizeof(*k));
	if (key_len > sizeof(k->dk_key) || iv_len > sizeof(k->dk_iv))
		return;
	k->dk_version = version;
	k->dk_cipher = cipher;
	k->dk_key_len = key_len;
	k->dk_iv_len = iv_len;
	for (i = 0; i < key_len; i++)
		k->dk_key[i] = 0x10 + i;
	for (i = 0; i < iv_len; i++)
		k->dk_iv[i] = 0xa0 + i;
	k->dk_seq = 0x0102030405060708ull;
}

#define KEY16 "101112131415161718191a1b1c1d1e1f"
#define KEY32 KEY16 "202122232425262728292a2b2c2d2e2f"
#define SEQ "0102030405060708"

struct layout_case {
	const char *lc_name;
	uint16_t lc_version, lc_cipher;
	size_t lc_key_len, lc_iv_len;
	/* the whole struct: version, cipher_type (host order, little-endian
	 * here), then the cipher's fields in <linux/tls.h> order */
	const char *lc_bytes;
};

static const struct layout_case layout_cases[] = {
	{ "TLS 1.2 AES-128-GCM: iv = explicit nonce = seq, salt = implicit IV",
	  TLS1_2_VERSION, 0xC02F, 16, 4,
	  "0303" "3300" SEQ KEY16 "a0a1a2a3" SEQ },
	{ "TLS 1.2 AES-256-GCM", TLS1_2_VERSION, 0xC02C, 32, 4,
	  "0303" "3400" SEQ KEY32 "a0a1a2a3" SEQ },
	{ "TLS 1.2 ChaCha20-Poly1305: iv = 12-byte static IV, no salt",
	  TLS1_2_VERSION, 0xCCA8, 32, 12,
	  "0303" "3600" "a0a1a2a3a4a5a6a7a8a9aaab" KEY32 SEQ },
	{ "TLS 1.3 AES-128-GCM: salt = iv[0..4], iv = iv[4..12]",
	  TLS1_3_VERSION, 0x1301, 16, 12,
	  "0403" "3300" "a4a5a6a7a8a9aaab" KEY16 "a0a1a2a3" SEQ },
	{ "TLS 1.3 AES-256-GCM", TLS1_3_VERSION, 0x1302, 32, 12,
	  "0403" "3400" "a4a5a6a7a8a9aaab" KEY32 "a0a1a2a3" SEQ },
	{ "TLS 1.3 ChaCha20-Poly1305", TLS1_3_VERSION, 0x1303, 32, 12,
	  "0403" "3600" "a0a1a2a3a4a5a6a7a8a9aaab" KEY32 SEQ },
};

TEST(crypto_info_layout_byte_for_byte)
{
	union mk_ktls_crypto_info ci;
	struct mk_tls_dir_keys k;
	uint8_t want[sizeof(ci)];
	size_t i, want_len;
	int len;

	for (i = 0; i < sizeof(layout_cases) / sizeof(layout_cases[0]); i++) {
		const struct layout_case *lc = &layout_cases[i];

		fill_keys(&k, lc->lc_version, lc->lc_cipher, lc->lc_key_len, lc->lc_iv_len);
		want_len = unhex(lc->lc_bytes, want, sizeof(want));
		ASSERT_NE(0, want_len);
		len = mk_ktls_crypto_info(&k, &ci);
		EXPECT_EQ(want_len, len) TH_LOG("%s", lc->lc_name);
		EXPECT_EQ(0, memcmp(&ci, want, want_len)) TH_LOG("%s", lc->lc_name);
	}
}

TEST(crypto_info_struct_sizes_match_kernel)
{
	struct mk_tls_dir_keys k;
	union mk_ktls_crypto_info ci;

	fill_keys(&k, TLS1_3_VERSION, 0x1301, 16, 12);
	EXPECT_EQ(sizeof(struct tls12_crypto_info_aes_gcm_128), mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_3_VERSION, 0x1302, 32, 12);
	EXPECT_EQ(sizeof(struct tls12_crypto_info_aes_gcm_256), mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_3_VERSION, 0x1303, 32, 12);
	EXPECT_EQ(sizeof(struct tls12_crypto_info_chacha20_poly1305),
		  mk_ktls_crypto_info(&k, &ci));
}

TEST(crypto_info_refuses_what_ktls_cannot_take)
{
	union mk_ktls_crypto_info ci;
	struct mk_tls_dir_keys k;

	fill_keys(&k, TLS1_2_VERSION, 0xC013, 16, 12);	/* ECDHE-RSA-AES128-SHA (CBC) */
	EXPECT_EQ(-ENOTSUP, mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_3_VERSION, 0x1304, 16, 12);	/* TLS_AES_128_CCM_SHA256 */
	EXPECT_EQ(-ENOTSUP, mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_2_VERSION, 0x1301, 16, 12);	/* 1.3 suite at 1.2 */
	EXPECT_EQ(-ENOTSUP, mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_1_VERSION, 0xC02F, 16, 4);
	EXPECT_EQ(-ENOTSUP, mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_2_VERSION, 0xC02F, 32, 4);	/* AES-128 with a 32-byte key */
	EXPECT_EQ(-EINVAL, mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_2_VERSION, 0xC02F, 16, 12);	/* 1.2 GCM takes a 4-byte IV */
	EXPECT_EQ(-EINVAL, mk_ktls_crypto_info(&k, &ci));
	fill_keys(&k, TLS1_3_VERSION, 0x1301, 16, 4);
	EXPECT_EQ(-EINVAL, mk_ktls_crypto_info(&k, &ci));
}

TEST(install_refuses_bad_keys_before_any_setsockopt)
{
	struct mk_tls_dir_keys good, bad;
	char err[256] = "";

	fill_keys(&good, TLS1_3_VERSION, 0x1301, 16, 12);
	fill_keys(&bad, TLS1_2_VERSION, 0x009C, 16, 4);	/* RSA-AES128-GCM: not ours */
	/* fd -1: any setsockopt would have answered -EBADF. */
	EXPECT_EQ(-ENOTSUP, mk_ktls_install(-1, &bad, &good, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "TLS_TX")) TH_LOG("%s", err);
	EXPECT_NE(NULL, strstr(err, "0x009c")) TH_LOG("%s", err);
	EXPECT_EQ(-ENOTSUP, mk_ktls_install(-1, &good, &bad, err, sizeof(err)));
	EXPECT_NE(NULL, strstr(err, "TLS_RX")) TH_LOG("%s", err);
	EXPECT_EQ(-ENOTSUP, mk_ktls_install(-1, &good, &bad, NULL, 0));
}

TEST(probe_explains_a_kernel_without_ktls)
{
	char why[256] = "";
	bool ok;

	ok = mk_ktls_probe(why, sizeof(why));
	if (kernel_has_tls_ulp()) {
		EXPECT_TRUE(ok) TH_LOG("kernel has the TLS ULP but probe says: %s", why);
		return;
	}
	EXPECT_FALSE(ok);
	EXPECT_NE(NULL, strstr(why, "TCP_ULP")) TH_LOG("%s", why);
	EXPECT_NE(NULL, strstr(why, "No such file or directory")) TH_LOG("%s", why);
	EXPECT_NE(NULL, strstr(why, "CONFIG_TLS")) TH_LOG("%s", why);
	TH_LOG("probe: %s", why);
}

TEST(install_on_kernel_without_ktls_is_enoent)
{
	struct mk_tls_dir_keys tx, rx;
	char err[256] = "";
	char ulp[16];
	socklen_t ulp_len = sizeof(ulp);
	int fds[2];

	if (kernel_has_tls_ulp())
		SKIP(return, "this kernel has kTLS; the VM tests cover install");
	ASSERT_EQ(0, tcp_pair(fds));
	fill_keys(&tx, TLS1_3_VERSION, 0x1302, 32, 12);
	fill_keys(&rx, TLS1_3_VERSION, 0x1302, 32, 12);
	EXPECT_EQ(-ENOENT, mk_ktls_install(fds[0], &tx, &rx, err, sizeof(err)));
	EXPECT_EQ(0, strcmp(err, "setsockopt(SOL_TCP, TCP_ULP, \"tls\"): No such file or "
			    "directory (kernel has no TLS ULP (CONFIG_TLS off or module tls "
			    "not loaded))")) TH_LOG("%s", err);
	/* The socket is still plain TCP and usable for the user-space fallback. */
	ASSERT_EQ(0, getsockopt(fds[0], SOL_TCP, TCP_ULP, ulp, &ulp_len));
	EXPECT_EQ(0, ulp_len);
	EXPECT_EQ(3, write(fds[0], "abc", 3));
	EXPECT_EQ(3, read(fds[1], ulp, 3));
	close(fds[0]);
	close(fds[1]);
}

TEST(send_alert_writes_level_then_description)
{
	uint8_t buf[4];
	int fds[2];

	/* On a plain socket the SOL_TLS cmsg is ignored and the body shows. */
	ASSERT_EQ(0, tcp_pair(fds));
	ASSERT_EQ(0, mk_ktls_send_alert(fds[0], 2, 40));
	ASSERT_EQ(2, read(fds[1], buf, sizeof(buf)));
	EXPECT_EQ(2, buf[0]);
	EXPECT_EQ(40, buf[1]);
	close(fds[1]);
	EXPECT_EQ(-EBADF, mk_ktls_send_alert(-1, 1, 0));
	close(fds[0]);
}

static int readable(int fd)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	return poll(&pfd, 1, 2000);
}

TEST(recv_record_needs_a_record_type)
{
	uint8_t buf[16], type = 99;
	int fds[2];

	ASSERT_EQ(0, tcp_pair(fds));
	ASSERT_EQ(0, fcntl(fds[1], F_SETFL, O_NONBLOCK));
	EXPECT_EQ(-EAGAIN, mk_ktls_recv_record(fds[1], buf, sizeof(buf), &type));
	/* Data without TLS_GET_RECORD_TYPE: this is not a kTLS socket. */
	ASSERT_EQ(2, write(fds[0], "hi", 2));
	ASSERT_EQ(1, readable(fds[1]));
	EXPECT_EQ(-EPROTO, mk_ktls_recv_record(fds[1], buf, sizeof(buf), &type));
	close(fds[0]);
	ASSERT_EQ(1, readable(fds[1]));
	EXPECT_EQ(0, mk_ktls_recv_record(fds[1], buf, sizeof(buf), &type));
	EXPECT_EQ(0, type);
	close(fds[1]);
}

TEST_HARNESS_MAIN
