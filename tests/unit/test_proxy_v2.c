// SPDX-License-Identifier: GPL-2.0
/*
 * PROXY v2 encoder/decoder and CRC32C. The expected headers are assembled
 * by hand from haproxy's proxy-protocol.txt; their CRC values were computed
 * with an independent bit-by-bit CRC32C that reproduces the RFC 3720
 * vectors below.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "kselftest_harness.h"
#include "proxy_in.h"
#include "proxy_v2.h"
#include "session.h"

#define SIG "\r\n\r\n\0\r\nQUIT\n"

/* 203.0.113.9:51234 -> 192.0.2.1:993, every TLV the agent sends. */
static const uint8_t expect_v4[] =
	SIG "\x21" "\x11" "\x00\x71"			/* PROXY, TCP4, 113 bytes follow */
	"\xcb\x00\x71\x09" "\xc0\x00\x02\x01"		/* src, dst address */
	"\xc8\x22" "\x03\xe1"				/* 51234, 993 */
	"\x01\x00\x04" "imap"				/* ALPN */
	"\x02\x00\x10" "mail.example.org"		/* AUTHORITY */
	"\x20\x00\x41" "\x01" "\x00\x00\x00\x00"	/* SSL: CLIENT_SSL, verify 0 */
	"\x21\x00\x07" "TLSv1.3"
	"\x23\x00\x16" "TLS_AES_256_GCM_SHA384"
	"\x24\x00\x16" "ecdsa_secp256r1_sha256"
	"\x03\x00\x04" "\x0f\xbc\x4d\x08";		/* CRC32C */

/* [2001:db8::9]:51234 -> [2001:db8::1]:995, verify in network order. */
static const uint8_t expect_v6[] =
	SIG "\x21" "\x21" "\x00\x94"			/* PROXY, TCP6, 148 bytes follow */
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09"
	"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"
	"\xc8\x22" "\x03\xe3"				/* 51234, 995 */
	"\x01\x00\x04" "pop3"
	"\x02\x00\x0f" "pop.example.net"
	"\x20\x00\x4d" "\x03" "\x12\x34\x56\x78"	/* SSL + CERT_CONN, verify */
	"\x21\x00\x07" "TLSv1.2"
	"\x23\x00\x25" "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
	"\x24\x00\x13" "rsa_pss_rsae_sha256"
	"\x03\x00\x04" "\x87\x0c\x4f\x35";

/*
 * Tests that damage a header re-seal it, so the CRC cannot be what rejects
 * it: the header ends with the 4-byte CRC32C value.
 */
static void reseal(uint8_t *b, size_t n)
{
	uint32_t crc;

	memset(b + n - 4, 0, 4);
	crc = mk_crc32c(0, b, n);
	b[n - 4] = crc >> 24;
	b[n - 3] = crc >> 16;
	b[n - 2] = crc >> 8;
	b[n - 1] = crc;
}

static void sin4(struct sockaddr_in *s, const char *ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->sin_family = AF_INET;
	s->sin_port = htons(port);
	inet_pton(AF_INET, ip, &s->sin_addr);
}

static void sin6(struct sockaddr_in6 *s, const char *ip, uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->sin6_family = AF_INET6;
	s->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &s->sin6_addr);
}

FIXTURE(pp2)
{
	struct sockaddr_in src4, dst4;
	struct sockaddr_in6 src6, dst6;
	struct mk_proxy_info info4, info6;
	uint8_t buf[PP2_HEADER_MAX];
	struct mk_proxy_decoded dec;
	char long_cn[257];
};

FIXTURE_SETUP(pp2)
{
	sin4(&self->src4, "203.0.113.9", 51234);
	sin4(&self->dst4, "192.0.2.1", 993);
	sin6(&self->src6, "2001:db8::9", 51234);
	sin6(&self->dst6, "2001:db8::1", 995);
	self->info4 = (struct mk_proxy_info){
		.pi_src = (void *)&self->src4, .pi_dst = (void *)&self->dst4,
		.pi_ssl = true, .pi_client_flags = PP2_CLIENT_SSL, .pi_verify = 0,
		.pi_version = "TLSv1.3", .pi_cipher = "TLS_AES_256_GCM_SHA384",
		.pi_sig_alg = "ecdsa_secp256r1_sha256",
		.pi_authority = "mail.example.org", .pi_alpn = "imap",
	};
	self->info6 = (struct mk_proxy_info){
		.pi_src = (void *)&self->src6, .pi_dst = (void *)&self->dst6,
		.pi_ssl = true, .pi_client_flags = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN,
		.pi_verify = 0x12345678, .pi_version = "TLSv1.2",
		.pi_cipher = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
		.pi_sig_alg = "rsa_pss_rsae_sha256",
		.pi_authority = "pop.example.net", .pi_alpn = "pop3",
	};
}

FIXTURE_TEARDOWN(pp2)
{
}

/* RFC 3720 appendix B.4 and the customary "123456789" check value. */
TEST(crc32c_published_vectors)
{
	uint8_t b[32];
	int i;

	EXPECT_EQ(0xE3069283u, mk_crc32c(0, "123456789", 9));
	memset(b, 0, sizeof(b));
	EXPECT_EQ(0x8A9136AAu, mk_crc32c(0, b, sizeof(b)));
	memset(b, 0xff, sizeof(b));
	EXPECT_EQ(0x62A8AB43u, mk_crc32c(0, b, sizeof(b)));
	for (i = 0; i < 32; i++)
		b[i] = i;
	EXPECT_EQ(0x46DD794Eu, mk_crc32c(0, b, sizeof(b)));
	for (i = 0; i < 32; i++)
		b[i] = 31 - i;
	EXPECT_EQ(0x113FDB5Cu, mk_crc32c(0, b, sizeof(b)));
	EXPECT_EQ(0u, mk_crc32c(0, b, 0));
}

TEST(crc32c_chains)
{
	EXPECT_EQ(0xE3069283u, mk_crc32c(mk_crc32c(0, "1234", 4), "56789", 5));
}

TEST_F(pp2, encode_ipv4_exact)
{
	ssize_t n = mk_proxy_v2_encode(self->buf, sizeof(self->buf), &self->info4);

	ASSERT_EQ((ssize_t)sizeof(expect_v4) - 1, n);
	EXPECT_EQ(0, memcmp(expect_v4, self->buf, n));
}

TEST_F(pp2, encode_ipv6_exact)
{
	ssize_t n = mk_proxy_v2_encode(self->buf, sizeof(self->buf), &self->info6);

	ASSERT_EQ((ssize_t)sizeof(expect_v6) - 1, n);
	EXPECT_EQ(0, memcmp(expect_v6, self->buf, n));
}

/* Without SSL and strings: address block and CRC only (16 + 12 + 7). */
TEST_F(pp2, encode_minimal_omits_empty)
{
	struct mk_proxy_info mi = { .pi_src = (void *)&self->src4, .pi_dst = (void *)&self->dst4,
				    .pi_authority = "", .pi_alpn = "" };
	ssize_t n = mk_proxy_v2_encode(self->buf, sizeof(self->buf), &mi);

	ASSERT_EQ(35, n);
	EXPECT_EQ(0, memcmp(expect_v4, self->buf, 14));
	EXPECT_EQ(0, self->buf[14]);
	EXPECT_EQ(19, self->buf[15]);
	EXPECT_EQ(0, memcmp(expect_v4 + 16, self->buf + 16, 12));
	EXPECT_EQ(PP2_TYPE_CRC32C, self->buf[28]);
	ASSERT_EQ(35, mk_proxy_v2_decode(self->buf, n, &self->dec));
	EXPECT_FALSE(self->dec.pd_has_ssl);
	EXPECT_TRUE(self->dec.pd_crc_ok);
}

TEST_F(pp2, encode_mixed_families_unspec)
{
	struct mk_proxy_info mi = self->info4;
	ssize_t n;

	mi.pi_dst = (void *)&self->dst6;
	n = mk_proxy_v2_encode(self->buf, sizeof(self->buf), &mi);
	ASSERT_GT(n, 16);
	EXPECT_EQ(0x21, self->buf[12]);
	EXPECT_EQ(0x00, self->buf[13]);
	ASSERT_EQ(n, mk_proxy_v2_decode(self->buf, n, &self->dec));
	EXPECT_EQ(0, self->dec.pd_family);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", self->dec.pd_cipher);
}

TEST_F(pp2, encode_small_buffer_enospc)
{
	size_t cap;

	for (cap = 0; cap < sizeof(expect_v4) - 1; cap++)
		ASSERT_EQ(-ENOSPC, mk_proxy_v2_encode(self->buf, cap, &self->info4));
	EXPECT_EQ((ssize_t)cap, mk_proxy_v2_encode(self->buf, cap, &self->info4));
}

TEST_F(pp2, encode_long_string_einval)
{
	char big[300];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	self->info4.pi_authority = big;
	EXPECT_EQ(-EINVAL, mk_proxy_v2_encode(self->buf, sizeof(self->buf), &self->info4));
	big[255] = '\0';	/* the longest SNI a ClientHello can carry */
	EXPECT_GT(mk_proxy_v2_encode(self->buf, sizeof(self->buf), &self->info4), 0);
}

TEST_F(pp2, roundtrip_ipv4)
{
	struct sockaddr_in *s = (void *)&self->dec.pd_src, *d = (void *)&self->dec.pd_dst;
	ssize_t n = mk_proxy_v2_encode(self->buf, sizeof(self->buf), &self->info4);

	ASSERT_GT(n, 0);
	ASSERT_EQ(n, mk_proxy_v2_decode(self->buf, n, &self->dec));
	EXPECT_EQ(1, self->dec.pd_command);
	EXPECT_EQ(1, self->dec.pd_family);
	EXPECT_EQ(AF_INET, s->sin_family);
	EXPECT_EQ(self->src4.sin_addr.s_addr, s->sin_addr.s_addr);
	EXPECT_EQ(self->src4.sin_port, s->sin_port);
	EXPECT_EQ(self->dst4.sin_addr.s_addr, d->sin_addr.s_addr);
	EXPECT_EQ(self->dst4.sin_port, d->sin_port);
	EXPECT_TRUE(self->dec.pd_has_ssl);
	EXPECT_EQ(PP2_CLIENT_SSL, self->dec.pd_client_flags);
	EXPECT_EQ(0u, self->dec.pd_verify);
	EXPECT_STREQ("TLSv1.3", self->dec.pd_version);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", self->dec.pd_cipher);
	EXPECT_STREQ("ecdsa_secp256r1_sha256", self->dec.pd_sig_alg);
	EXPECT_STREQ("mail.example.org", self->dec.pd_authority);
	EXPECT_STREQ("imap", self->dec.pd_alpn);
	EXPECT_TRUE(self->dec.pd_has_crc);
	EXPECT_TRUE(self->dec.pd_crc_ok);
	EXPECT_EQ((size_t)n, self->dec.pd_len);
}

TEST_F(pp2, roundtrip_ipv6)
{
	struct sockaddr_in6 *s = (void *)&self->dec.pd_src, *d = (void *)&self->dec.pd_dst;
	ssize_t n = mk_proxy_v2_encode(self->buf, sizeof(self->buf), &self->info6);

	ASSERT_GT(n, 0);
	/* Bytes after the header (the client's first data) are not consumed. */
	memcpy(self->buf + n, "a1 LOGIN", 8);
	ASSERT_EQ(n, mk_proxy_v2_decode(self->buf, n + 8, &self->dec));
	EXPECT_EQ(2, self->dec.pd_family);
	EXPECT_EQ(0, memcmp(&self->src6.sin6_addr, &s->sin6_addr, 16));
	EXPECT_EQ(0, memcmp(&self->dst6.sin6_addr, &d->sin6_addr, 16));
	EXPECT_EQ(htons(51234), s->sin6_port);
	EXPECT_EQ(htons(995), d->sin6_port);
	EXPECT_EQ(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, self->dec.pd_client_flags);
	EXPECT_EQ(0x12345678u, self->dec.pd_verify);
	EXPECT_STREQ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", self->dec.pd_cipher);
	EXPECT_STREQ("pop.example.net", self->dec.pd_authority);
}

/*
 * expect_v4 with TLVs left out one at a time, in the documented order:
 * AUTHORITY, SSL_SIG_ALG, SSL_CIPHER, SSL_VERSION, CRC32C, ALPN, SSL.
 */
#define V4_FIXED SIG "\x21" "\x11"
#define V4_ADDR "\xcb\x00\x71\x09" "\xc0\x00\x02\x01" "\xc8\x22" "\x03\xe1"
#define ALPN_IMAP "\x01\x00\x04" "imap"
#define SSL_V13 "\x21\x00\x07" "TLSv1.3"
#define SSL_AES256 "\x23\x00\x16" "TLS_AES_256_GCM_SHA384"
#define SSL_ECDSA "\x24\x00\x16" "ecdsa_secp256r1_sha256"
static const struct drop_step {
	const char *ds_bytes;
	size_t ds_len;
	unsigned int ds_omitted;
} drop_steps[] = {
	{ V4_FIXED "\x00\x5e" V4_ADDR ALPN_IMAP
	  "\x20\x00\x41" "\x01" "\x00\x00\x00\x00" SSL_V13 SSL_AES256 SSL_ECDSA
	  "\x03\x00\x04" "\x29\xe2\x93\xdd", 110, PP2_SEND_AUTHORITY },
	{ V4_FIXED "\x00\x45" V4_ADDR ALPN_IMAP
	  "\x20\x00\x28" "\x01" "\x00\x00\x00\x00" SSL_V13 SSL_AES256
	  "\x03\x00\x04" "\x03\xad\xa3\xcc", 85, 0x03 },
	{ V4_FIXED "\x00\x2c" V4_ADDR ALPN_IMAP
	  "\x20\x00\x0f" "\x01" "\x00\x00\x00\x00" SSL_V13
	  "\x03\x00\x04" "\xaa\x44\x5a\x21", 60, 0x07 },
	{ V4_FIXED "\x00\x22" V4_ADDR ALPN_IMAP
	  "\x20\x00\x05" "\x01" "\x00\x00\x00\x00"
	  "\x03\x00\x04" "\x4d\xac\x2b\x18", 50, 0x0f },
	{ V4_FIXED "\x00\x1b" V4_ADDR ALPN_IMAP
	  "\x20\x00\x05" "\x01" "\x00\x00\x00\x00", 43, 0x1f },
	{ V4_FIXED "\x00\x14" V4_ADDR
	  "\x20\x00\x05" "\x01" "\x00\x00\x00\x00", 36, 0x3f },
	{ V4_FIXED "\x00\x0c" V4_ADDR, 28, PP2_SEND_ALL & ~PP2_SEND_SSL_CN },
};

/* The longest SNI a ClientHello carries: 253 octets, labels of 63. */
static void long_sni(char *sni)
{
	int i;

	memset(sni, 'a', 253);
	for (i = 63; i < 253; i += 64)
		sni[i] = '.';
	sni[253] = '\0';
}

/* Decode @n bytes of @b; the CRC, when sent, must be right. */
static void decodes(struct __test_metadata *_metadata, const uint8_t *b, ssize_t n,
		    struct mk_proxy_decoded *dec, bool with_crc)
{
	ASSERT_GT(n, 0);
	ASSERT_EQ(n, mk_proxy_v2_decode(b, (size_t)n, dec));
	EXPECT_EQ(with_crc, dec->pd_has_crc);
	EXPECT_EQ(with_crc, dec->pd_crc_ok);
}

TEST_F(pp2, within_no_limit_is_encode)
{
	unsigned int omitted = 1;
	ssize_t n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
					      PP2_SEND_ALL, 1500, &omitted);

	ASSERT_EQ((ssize_t)sizeof(expect_v4) - 1, n);
	EXPECT_EQ(0, memcmp(expect_v4, self->buf, n));
	EXPECT_EQ(0u, omitted);
	/* Exactly the full length still fits. */
	EXPECT_EQ(n, mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
					       PP2_SEND_ALL, (size_t)n, &omitted));
	EXPECT_EQ(0u, omitted);
}

TEST_F(pp2, within_each_drop_step_exact)
{
	struct mk_proxy_decoded dec;
	unsigned int omitted;
	size_t i;
	ssize_t n;

	for (i = 0; i < sizeof(drop_steps) / sizeof(drop_steps[0]); i++) {
		const struct drop_step *ds = &drop_steps[i];

		/* One byte short of the previous step, and the step's own size. */
		n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
					      PP2_SEND_ALL, ds->ds_len, &omitted);
		ASSERT_EQ((ssize_t)ds->ds_len, n) TH_LOG("step %zu", i);
		EXPECT_EQ(0, memcmp(ds->ds_bytes, self->buf, ds->ds_len)) TH_LOG("step %zu", i);
		EXPECT_EQ(ds->ds_omitted, omitted) TH_LOG("step %zu", i);
		decodes(_metadata, self->buf, n, &dec, !(omitted & PP2_SEND_CRC32C));
		n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
					      PP2_SEND_ALL, (i ? drop_steps[i - 1].ds_len
						      : sizeof(expect_v4) - 1) - 1, &omitted);
		EXPECT_EQ((ssize_t)ds->ds_len, n) TH_LOG("step %zu", i);
	}
	/* Not even the addresses: the only size error there is. */
	EXPECT_EQ(-ENOSPC, mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
						     PP2_SEND_ALL, 27, &omitted));
	/* The buffer limits like @max does. */
	EXPECT_EQ(85, mk_proxy_v2_encode_within(self->buf, 100, &self->info4, PP2_SEND_ALL,
						1500, &omitted));
}

/* Every limit: the header fits, decodes, and what is left out is a prefix of the order. */
TEST_F(pp2, within_order_for_every_limit)
{
	struct mk_proxy_decoded dec;
	unsigned int omitted, prev = 0, o;
	size_t max;
	ssize_t n;

	for (max = sizeof(expect_v4) - 1; max >= 28; max--) {
		n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info6,
					      PP2_SEND_ALL, max + 24, &omitted);
		ASSERT_GT(n, 0);
		ASSERT_LE((size_t)n, max + 24);
		n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
					      PP2_SEND_ALL, max, &omitted);
		ASSERT_LE((size_t)n, max);
		/* info4 has no CN: nothing of it to leave out. */
		o = omitted & PP2_SEND_SSL ? omitted | PP2_SEND_SSL_CN : omitted;
		EXPECT_EQ(0u, o & (o + 1)) TH_LOG("max %zu omitted %#x", max, omitted);
		EXPECT_LE(prev, omitted);
		prev = omitted;
		decodes(_metadata, self->buf, n, &dec, !(omitted & PP2_SEND_CRC32C));
		EXPECT_EQ(!(omitted & PP2_SEND_SSL), dec.pd_has_ssl);
		EXPECT_EQ(!(omitted & PP2_SEND_ALPN), dec.pd_alpn[0] != '\0');
		EXPECT_EQ(!(omitted & PP2_SEND_AUTHORITY), dec.pd_authority[0] != '\0');
		EXPECT_EQ(!(omitted & PP2_SEND_SSL_CIPHER), dec.pd_cipher[0] != '\0');
		EXPECT_EQ(self->src4.sin_port, ((struct sockaddr_in *)&dec.pd_src)->sin_port);
	}
	EXPECT_EQ(PP2_SEND_ALL & ~PP2_SEND_SSL_CN, prev);
}

/*
 * A verified client certificate's CN rides inside PP2_TYPE_SSL; it is left
 * out after ALPN and before the SSL TLV itself, and only when asked to.
 */
TEST_F(pp2, ssl_cn)
{
	struct mk_proxy_decoded dec;
	unsigned int omitted;
	ssize_t full, n;

	self->info4.pi_client_flags |= PP2_CLIENT_CERT_CONN;
	self->info4.pi_cn = "alice@example.org";
	full = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
					 PP2_SEND_ALL, 1500, &omitted);
	ASSERT_EQ((ssize_t)sizeof(expect_v4) - 1 + 3 + 17, full);
	EXPECT_EQ(0u, omitted);
	decodes(_metadata, self->buf, full, &dec, true);
	EXPECT_STREQ("alice@example.org", dec.pd_cn);
	EXPECT_EQ(PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, dec.pd_client_flags);
	/* Room for the addresses, SSL and its CN: ALPN went, CN stayed. */
	n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
				      PP2_SEND_ALL, 28 + 3 + 5 + 3 + 17, &omitted);
	ASSERT_EQ(28 + 3 + 5 + 3 + 17, n);
	EXPECT_EQ(0x3fu, omitted);
	decodes(_metadata, self->buf, n, &dec, false);
	EXPECT_STREQ("alice@example.org", dec.pd_cn);
	EXPECT_TRUE(dec.pd_has_ssl);
	/* One byte less: the CN goes, the SSL flags stay. */
	n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
				      PP2_SEND_ALL, 28 + 3 + 5 + 3 + 16, &omitted);
	ASSERT_EQ(36, n);
	EXPECT_EQ(0x7fu, omitted);
	decodes(_metadata, self->buf, n, &dec, false);
	EXPECT_STREQ("", dec.pd_cn);
	EXPECT_TRUE(dec.pd_has_ssl);
	/* Not in proxy_tlvs: never sent, never reported as left out. */
	n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
				      PP2_SEND_ALL & ~PP2_SEND_SSL_CN, 1500, &omitted);
	EXPECT_EQ(full - 20, n);
	EXPECT_EQ(0u, omitted);
	/* Longer than a CN the decoder keeps: refused, not cut. */
	self->info4.pi_cn = self->long_cn;
	memset(self->long_cn, 'c', 256);
	self->long_cn[256] = '\0';
	EXPECT_EQ(-EINVAL, mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
						     PP2_SEND_ALL, 1500, &omitted));
}

/* What the listener does not send is neither sent nor reported as left out. */
TEST_F(pp2, within_send_mask)
{
	struct mk_proxy_decoded dec;
	unsigned int omitted;
	ssize_t n;

	n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
				      PP2_SEND_SSL | PP2_SEND_ALPN, 1500, &omitted);
	EXPECT_EQ(0u, omitted);
	decodes(_metadata, self->buf, n, &dec, false);
	EXPECT_EQ(43, n);
	EXPECT_TRUE(dec.pd_has_ssl);
	EXPECT_EQ(PP2_CLIENT_SSL, dec.pd_client_flags);
	EXPECT_STREQ("imap", dec.pd_alpn);
	EXPECT_STREQ("", dec.pd_authority);
	EXPECT_STREQ("", dec.pd_cipher);
	n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4, 0, 1500,
				      &omitted);
	EXPECT_EQ(28, n);
	EXPECT_EQ(0, memcmp(drop_steps[6].ds_bytes, self->buf, 28));
	self->info4.pi_authority = NULL;
	n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), &self->info4,
				      PP2_SEND_ALL, 110, &omitted);
	EXPECT_EQ(110, n);
	EXPECT_EQ(0u, omitted);		/* nothing to leave out: no SNI */
}

/*
 * The agent's header for a submission client: ALPN submission, AUTHORITY,
 * SSL with version and cipher, CRC32C. With a 253-octet SNI that is 347
 * (IPv4) and 371 (IPv6) bytes in full, over Exim's and Cyrus's 232; within
 * 232 only AUTHORITY goes, and Dovecot keeps ALPN and the PP2_CLIENT_SSL
 * flag. A short SNI fits whole.
 */
TEST_F(pp2, within_sni_sizes)
{
	static const struct {
		bool v6, long_sni;
		size_t max, len;
		unsigned int omitted;
	} cases[] = {
		{ false, true, 232, 91, PP2_SEND_AUTHORITY }, { true, true, 232, 115, PP2_SEND_AUTHORITY },
		{ false, true, 1500, 347, 0 }, { true, true, 1500, 371, 0 },
		{ false, true, 536, 347, 0 }, { true, true, 536, 371, 0 },
		{ false, false, 232, 111, 0 }, { true, false, 232, 135, 0 },
		{ false, false, 1500, 111, 0 }, { true, false, 1500, 135, 0 },
	};
	struct mk_proxy_decoded dec;
	struct mk_proxy_info *pi;
	unsigned int omitted;
	char sni[254];
	size_t i;
	ssize_t n;

	long_sni(sni);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *want = cases[i].long_sni ? sni : "mail.example.test";

		pi = cases[i].v6 ? &self->info6 : &self->info4;
		pi->pi_authority = want;
		pi->pi_alpn = "submission";
		pi->pi_sig_alg = NULL;
		pi->pi_client_flags = PP2_CLIENT_SSL;
		pi->pi_verify = 0;
		pi->pi_version = "TLSv1.3";
		pi->pi_cipher = "TLS_AES_256_GCM_SHA384";
		n = mk_proxy_v2_encode_within(self->buf, sizeof(self->buf), pi, PP2_SEND_ALL,
					      cases[i].max, &omitted);
		EXPECT_EQ((ssize_t)cases[i].len, n) TH_LOG("case %zu", i);
		EXPECT_EQ(cases[i].omitted, omitted) TH_LOG("case %zu", i);
		decodes(_metadata, self->buf, n, &dec, true);
		EXPECT_EQ(cases[i].v6 ? 2 : 1, dec.pd_family);
		EXPECT_TRUE(dec.pd_has_ssl);
		EXPECT_EQ(PP2_CLIENT_SSL, dec.pd_client_flags);
		EXPECT_STREQ("submission", dec.pd_alpn);
		EXPECT_STREQ("TLSv1.3", dec.pd_version);
		EXPECT_STREQ("TLS_AES_256_GCM_SHA384", dec.pd_cipher);
		EXPECT_STREQ(omitted ? "" : want, dec.pd_authority);
	}
}

static void session_new(struct mk_session *s, const char *client_alpn)
{
	memset(s, 0, sizeof(*s));
	sin4((struct sockaddr_in *)&s->ss_client, "203.0.113.9", 51234);
	sin4((struct sockaddr_in *)&s->ss_local, "192.0.2.1", 993);
	strcpy(s->ss_version_name, "TLSv1.3");
	strcpy(s->ss_cipher, "TLS_AES_256_GCM_SHA384");
	strcpy(s->ss_sni, "mail.example.org");
	strcpy(s->ss_alpn, client_alpn);
}

/*
 * Dovecot 2.4.1 and later drop a connection whose ALPN TLV is not imap,
 * pop3 or submission: the header names the port's protocol whether the
 * client offered nothing, the same, or "smtp" (submission's ALPN id).
 */
TEST(session_info_alpn_is_the_ports_protocol)
{
	static const struct {
		enum mk_protocol proto;
		const char *client, *sent;
	} cases[] = {
		{ MK_PROTO_IMAP, "", "imap" }, { MK_PROTO_IMAP, "imap", "imap" },
		{ MK_PROTO_POP3, "", "pop3" }, { MK_PROTO_POP3, "pop3", "pop3" },
		{ MK_PROTO_SUBMISSION, "", "submission" },
		{ MK_PROTO_SUBMISSION, "smtp", "submission" },
	};
	struct mk_proxy_decoded dec;
	struct mk_proxy_info pi;
	struct mk_session s;
	uint8_t buf[PP2_HEADER_MAX];
	size_t i;
	ssize_t n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		session_new(&s, cases[i].client);
		mk_proxy_v2_session_info(&pi, &s, mk_protocol_name(cases[i].proto));
		n = mk_proxy_v2_encode(buf, sizeof(buf), &pi);
		ASSERT_GT(n, 0);
		ASSERT_EQ(n, mk_proxy_v2_decode(buf, (size_t)n, &dec));
		EXPECT_STREQ(cases[i].sent, dec.pd_alpn) TH_LOG("case %zu", i);
		EXPECT_STREQ("mail.example.org", dec.pd_authority);
		EXPECT_STREQ("TLSv1.3", dec.pd_version);
		EXPECT_TRUE(dec.pd_has_ssl);
	}
}

/*
 * Client flags and verify (haproxy's proxy-protocol.txt 2.2.5): verify is
 * 0 only for a certificate that was sent and verified, the one case
 * Dovecot 2.4.4 counts as valid; CERT_CONN only when it came with this
 * connection (not a resumption); the CN only when verified.
 */
TEST(session_info_client_cert_flags)
{
	static const struct {
		bool cert, resumed;
		int32_t verify;
		uint8_t flags;
		uint32_t sent_verify;
		const char *cn;
	} cases[] = {
		{ false, false, 0, PP2_CLIENT_SSL, PP2_VERIFY_NO_CERT, "" },
		{ false, true, 0, PP2_CLIENT_SSL, PP2_VERIFY_NO_CERT, "" },
		{ true, false, 0, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS, 0,
		  "mkuser" },
		{ true, true, 0, PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS, 0, "mkuser" },
		{ true, false, 20, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS, 20,
		  "" },
	};
	struct mk_proxy_decoded dec;
	struct mk_proxy_info pi;
	struct mk_session s;
	uint8_t buf[PP2_HEADER_MAX];
	size_t i;
	ssize_t n;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		session_new(&s, "imap");
		s.ss_client_cert = cases[i].cert;
		s.ss_resumed = cases[i].resumed;
		s.ss_verify = cases[i].verify;
		/* mk_client_cert_describe() keeps a CN only when verified; the
		 * header must not rely on that. */
		strcpy(s.ss_client_cn, cases[i].cert ? "mkuser" : "");
		mk_proxy_v2_session_info(&pi, &s, mk_protocol_name(MK_PROTO_IMAP));
		n = mk_proxy_v2_encode(buf, sizeof(buf), &pi);
		ASSERT_GT(n, 0);
		ASSERT_EQ(n, mk_proxy_v2_decode(buf, (size_t)n, &dec));
		EXPECT_EQ(cases[i].flags, dec.pd_client_flags) TH_LOG("case %zu", i);
		EXPECT_EQ(cases[i].sent_verify, dec.pd_verify) TH_LOG("case %zu", i);
		EXPECT_STREQ(cases[i].cn, dec.pd_cn) TH_LOG("case %zu", i);
	}
}

/*
 * Within the most of a PROXY v2 header each daemon reads (Exim and Cyrus
 * 232 bytes, Postfix 536, Dovecot 1500), for every port kind, with a
 * 253-octet SNI and a verified certificate's 64-byte CN: the header
 * fits, Dovecot's 1500 takes it whole, and within 232 the ALPN TLV and
 * PP2_CLIENT_SSL survive.
 */
TEST(session_info_within_daemon_limits)
{
	static const enum mk_protocol protos[] = {
		MK_PROTO_IMAP, MK_PROTO_POP3, MK_PROTO_SUBMISSION,
	};
	static const size_t limits[] = { 232, 536, 1500 };
	struct mk_proxy_decoded dec;
	struct mk_proxy_info pi;
	struct mk_session s;
	uint8_t buf[PP2_HEADER_MAX];
	unsigned int omitted;
	size_t i, j;
	ssize_t n;

	for (i = 0; i < sizeof(protos) / sizeof(protos[0]); i++) {
		for (j = 0; j < sizeof(limits) / sizeof(limits[0]); j++) {
			session_new(&s, "");
			sin6((struct sockaddr_in6 *)&s.ss_client, "2001:db8::9", 51234);
			sin6((struct sockaddr_in6 *)&s.ss_local, "2001:db8::1", 993);
			long_sni(s.ss_sni);
			s.ss_client_cert = true;
			memset(s.ss_client_cn, 'c', 64);
			s.ss_client_cn[64] = '\0';
			mk_proxy_v2_session_info(&pi, &s, mk_protocol_name(protos[i]));
			n = mk_proxy_v2_encode_within(buf, sizeof(buf), &pi, PP2_SEND_ALL,
						      limits[j], &omitted);
			ASSERT_GT(n, 0);
			EXPECT_LE((size_t)n, limits[j]);
			ASSERT_EQ(n, mk_proxy_v2_decode(buf, (size_t)n, &dec));
			EXPECT_STREQ(mk_protocol_name(protos[i]), dec.pd_alpn);
			EXPECT_TRUE(dec.pd_has_ssl);
			EXPECT_EQ(PP2_CLIENT_SSL, dec.pd_client_flags & PP2_CLIENT_SSL);
			if (limits[j] == 1500)
				EXPECT_EQ(0u, omitted) TH_LOG("proto %zu: %#x", i, omitted);
		}
	}
}

TEST_F(pp2, tlv_names)
{
	unsigned int bit;
	int named = 0;

	for (bit = 1; bit <= PP2_SEND_ALL; bit <<= 1)
		named += mk_proxy_v2_tlv_name(bit) != NULL;
	EXPECT_EQ(7, named);
	EXPECT_STREQ("ssl_cn", mk_proxy_v2_tlv_name(PP2_SEND_SSL_CN));
	EXPECT_STREQ("authority", mk_proxy_v2_tlv_name(PP2_SEND_AUTHORITY));
	EXPECT_STREQ("ssl", mk_proxy_v2_tlv_name(PP2_SEND_SSL));
	EXPECT_EQ(NULL, mk_proxy_v2_tlv_name(PP2_SEND_SSL_SIG_ALG));
	EXPECT_EQ(NULL, mk_proxy_v2_tlv_name(PP2_SEND_ALPN | PP2_SEND_SSL));
}

/* Every proper prefix asks for more bytes; none is mistaken for a header. */
TEST(decode_truncated_needs_more)
{
	struct mk_proxy_decoded dec;
	size_t len;

	for (len = 0; len < sizeof(expect_v4) - 1; len++)
		ASSERT_EQ(0, mk_proxy_v2_decode(expect_v4, len, &dec));
}

TEST(decode_rejects_bad_signature)
{
	uint8_t b[sizeof(expect_v4)];
	struct mk_proxy_decoded dec;

	memcpy(b, expect_v4, sizeof(b));
	b[11] = 'X';
	reseal(b, sizeof(b) - 1);
	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, sizeof(b) - 1, &dec));
	/* Known to be wrong from the first byte: no waiting for more. */
	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode((const uint8_t *)"PROXY TCP4 ", 11, &dec));
}

TEST(decode_rejects_bad_version_command_family)
{
	static const uint8_t bad[][2] = { { 0x11, 0x11 }, { 0x31, 0x11 }, { 0x22, 0x11 },
					  { 0x21, 0x41 }, { 0x21, 0x13 } };
	uint8_t b[sizeof(expect_v4)];
	struct mk_proxy_decoded dec;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memcpy(b, expect_v4, sizeof(b));
		b[12] = bad[i][0];
		b[13] = bad[i][1];
		reseal(b, sizeof(b) - 1);
		EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, sizeof(b) - 1, &dec));
	}
}

TEST(decode_rejects_bad_crc)
{
	uint8_t b[sizeof(expect_v4)];
	struct mk_proxy_decoded dec;
	size_t n = sizeof(b) - 1;

	memcpy(b, expect_v4, sizeof(b));
	b[n - 1] ^= 1;				/* the CRC value itself */
	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, n, &dec));
	b[n - 1] ^= 1;
	b[24] ^= 0x80;				/* the client's port */
	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, n, &dec));
}

TEST(decode_rejects_tlv_overrun)
{
	uint8_t b[sizeof(expect_v4)];
	struct mk_proxy_decoded dec;
	size_t n = sizeof(b) - 1;

	memcpy(b, expect_v4, sizeof(b));
	b[15] -= 1;			/* header ends one byte inside the CRC TLV */
	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, n, &dec));

	memcpy(b, expect_v4, sizeof(b));
	b[29] = 0xff;			/* ALPN TLV claims 0xff04 bytes */
	reseal(b, n);
	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, n, &dec));

	memcpy(b, expect_v4, sizeof(b));
	b[99] += 1;			/* SIG_ALG sub-TLV runs past the SSL TLV */
	reseal(b, n);
	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, n, &dec));

}

TEST(decode_rejects_short_address_block)
{
	static const uint8_t b[] = SIG "\x21\x11\x00\x0b"
		"\x7f\x00\x00\x01" "\x7f\x00\x00\x01" "\x00\x01" "\x00";
	struct mk_proxy_decoded dec;

	EXPECT_EQ(-EINVAL, mk_proxy_v2_decode(b, 16 + 11, &dec));
}

/* No CRC TLV: valid, but reported as unchecked. LOCAL command accepted. */
TEST(decode_local_without_crc)
{
	static const uint8_t b[] = SIG "\x20\x00\x00\x07" "\x04\x00\x04" "abcd";
	struct mk_proxy_decoded dec;

	ASSERT_EQ(23, mk_proxy_v2_decode(b, sizeof(b) - 1, &dec));
	EXPECT_EQ(0, dec.pd_command);
	EXPECT_FALSE(dec.pd_has_crc);
	EXPECT_FALSE(dec.pd_crc_ok);
}

/* The reader asks for 16 bytes, then exactly what the header announces. */
TEST(wanted)
{
	uint8_t b[sizeof(expect_v4) - 1];
	size_t i;

	memcpy(b, expect_v4, sizeof(b));
	for (i = 0; i < 16; i++)
		EXPECT_EQ((ssize_t)(16 - i), mk_proxy_v2_wanted(b, i, 3072));
	for (i = 16; i <= sizeof(b); i++)
		EXPECT_EQ((ssize_t)(sizeof(b) - i), mk_proxy_v2_wanted(b, i, 3072));
	EXPECT_EQ(-EMSGSIZE, mk_proxy_v2_wanted(b, 16, sizeof(b) - 1));
	EXPECT_EQ(0, mk_proxy_v2_wanted(b, sizeof(b), sizeof(b)));
	b[14] = 0xff;	/* 16 + 0xff71 */
	EXPECT_EQ(-EMSGSIZE, mk_proxy_v2_wanted(b, 16, 3072));
	EXPECT_EQ(-EINVAL, mk_proxy_v2_wanted((const uint8_t *)"\x16\x03\x01", 3, 3072));
	EXPECT_EQ(-EINVAL, mk_proxy_v2_wanted((const uint8_t *)"PROXY TCP4 ", 11, 3072));
	memcpy(b, expect_v4, sizeof(b));
	b[12] = 0x11;	/* version 1 in a binary header */
	EXPECT_EQ(-EINVAL, mk_proxy_v2_wanted(b, 13, 3072));
	b[11] ^= 1;
	EXPECT_EQ(-EINVAL, mk_proxy_v2_wanted(b, 12, 3072));
}

TEST(incoming_proxy)
{
	const struct sockaddr_in *src, *dst;
	struct mk_proxy_in pn;
	const char *reason = NULL;

	ASSERT_EQ(0, mk_proxy_in_parse(expect_v4, sizeof(expect_v4) - 1, &pn, &reason));
	EXPECT_FALSE(pn.pn_local);
	src = (const void *)&pn.pn_client;
	dst = (const void *)&pn.pn_dest;
	EXPECT_EQ(AF_INET, src->sin_family);
	EXPECT_EQ(htonl(0xcb007109), src->sin_addr.s_addr);
	EXPECT_EQ(htons(51234), src->sin_port);
	EXPECT_EQ(htonl(0xc0000201), dst->sin_addr.s_addr);
	EXPECT_EQ(htons(993), dst->sin_port);
	ASSERT_EQ(0, mk_proxy_in_parse(expect_v6, sizeof(expect_v6) - 1, &pn, &reason));
	EXPECT_EQ(AF_INET6, pn.pn_client.ss_family);
	EXPECT_EQ(AF_INET6, pn.pn_dest.ss_family);
}

TEST(incoming_local_and_refusals)
{
	/* LOCAL with an address block: still LOCAL, the block is ignored. */
	static const uint8_t local[] = SIG "\x20" "\x11" "\x00\x0c"
		"\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01" "\x00\x02";
	static const uint8_t local_unspec[] = SIG "\x20" "\x00" "\x00\x00";
	static const uint8_t proxy_unspec[] = SIG "\x21" "\x00" "\x00\x00";
	static const uint8_t proxy_udp[] = SIG "\x21" "\x12" "\x00\x0c"
		"\x01\x02\x03\x04" "\x05\x06\x07\x08" "\x00\x01" "\x00\x02";
	static const uint8_t short_addr[] = SIG "\x21" "\x11" "\x00\x08"
		"\x01\x02\x03\x04" "\x05\x06\x07\x08";
	uint8_t bad_crc[sizeof(expect_v4) - 1];
	struct mk_proxy_in pn;
	const char *reason = NULL;

	ASSERT_EQ(0, mk_proxy_in_parse(local, sizeof(local) - 1, &pn, &reason));
	EXPECT_TRUE(pn.pn_local);
	EXPECT_EQ(0, pn.pn_client.ss_family);
	ASSERT_EQ(0, mk_proxy_in_parse(local_unspec, sizeof(local_unspec) - 1, &pn, &reason));
	EXPECT_TRUE(pn.pn_local);
	EXPECT_EQ(-EINVAL, mk_proxy_in_parse(proxy_unspec, sizeof(proxy_unspec) - 1, &pn,
					     &reason));
	EXPECT_STREQ("unsupported_address", reason);
	reason = NULL;
	EXPECT_EQ(-EINVAL, mk_proxy_in_parse(proxy_udp, sizeof(proxy_udp) - 1, &pn, &reason));
	EXPECT_STREQ("unsupported_address", reason);
	reason = NULL;
	EXPECT_EQ(-EINVAL, mk_proxy_in_parse(short_addr, sizeof(short_addr) - 1, &pn, &reason));
	EXPECT_STREQ("malformed", reason);
	memcpy(bad_crc, expect_v4, sizeof(bad_crc));
	bad_crc[sizeof(bad_crc) - 1] ^= 1;
	reason = NULL;
	EXPECT_EQ(-EINVAL, mk_proxy_in_parse(bad_crc, sizeof(bad_crc), &pn, &reason));
	EXPECT_STREQ("malformed", reason);
	/* Bytes past the header are not part of it: the caller read too much. */
	reason = NULL;
	EXPECT_EQ(-EINVAL, mk_proxy_in_parse(local, sizeof(local), &pn, &reason));
	EXPECT_STREQ("malformed", reason);
}

TEST_HARNESS_MAIN
