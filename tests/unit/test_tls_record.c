// SPDX-License-Identifier: GPL-2.0
/*
 * tls_record.c: the verdict on each control record a kTLS client can send
 * after the handshake, and the user-space scan for AEAD records too short
 * to authenticate, however the stream is split.
 */
#include <errno.h>
#include <string.h>

#include <openssl/tls1.h>

#include "kselftest_harness.h"
#include "tls_record.h"

#define CT_CCS 20
#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_DATA 23

struct control_case {
	const char *cc_name;
	uint16_t cc_version;
	uint8_t cc_type;
	uint8_t cc_len;
	uint8_t cc_bytes[8];
	enum mk_tls_control cc_want;
	uint8_t cc_alert;
};

static const struct control_case control_cases[] = {
	{ "close_notify", TLS1_3_VERSION, CT_ALERT, 2, { 1, 0 }, MK_TLS_CTL_CLOSE_NOTIFY, 0 },
	{ "fatal close_notify", TLS1_2_VERSION, CT_ALERT, 2, { 2, 0 }, MK_TLS_CTL_CLOSE_NOTIFY, 0 },
	{ "peer alert", TLS1_3_VERSION, CT_ALERT, 2, { 2, 40 }, MK_TLS_CTL_PEER_ALERT, 40 },
	{ "empty alert", TLS1_3_VERSION, CT_ALERT, 0, { 0 }, MK_TLS_CTL_FATAL, 10 },
	{ "one-byte alert", TLS1_2_VERSION, CT_ALERT, 1, { 1 }, MK_TLS_CTL_FATAL, 10 },
	{ "three-byte alert", TLS1_3_VERSION, CT_ALERT, 3, { 1, 0, 0 }, MK_TLS_CTL_FATAL, 10 },
	{ "alert level 3", TLS1_3_VERSION, CT_ALERT, 2, { 3, 0 }, MK_TLS_CTL_FATAL, 47 },
	{ "key_update", TLS1_3_VERSION, CT_HANDSHAKE, 5, { 24, 0, 0, 1, 0 },
	  MK_TLS_CTL_KEY_UPDATE, 0 },
	{ "key_update requested", TLS1_3_VERSION, CT_HANDSHAKE, 5, { 24, 0, 0, 1, 1 },
	  MK_TLS_CTL_KEY_UPDATE, 0 },
	{ "key_update value 2", TLS1_3_VERSION, CT_HANDSHAKE, 5, { 24, 0, 0, 1, 2 },
	  MK_TLS_CTL_FATAL, 47 },
	{ "key_update empty", TLS1_3_VERSION, CT_HANDSHAKE, 4, { 24, 0, 0, 0 }, MK_TLS_CTL_FATAL,
	  50 },
	/* RFC 8446 §4.6.3, §6: longer than its one byte: decode_error */
	{ "key_update long", TLS1_3_VERSION, CT_HANDSHAKE, 6, { 24, 0, 0, 2, 0, 0 },
	  MK_TLS_CTL_FATAL, 50 },
	{ "key_update huge", TLS1_3_VERSION, CT_HANDSHAKE, 4, { 24, 0xff, 0xff, 0xff },
	  MK_TLS_CTL_FATAL, 50 },
	{ "key_update then more", TLS1_3_VERSION, CT_HANDSHAKE, 6, { 24, 0, 0, 1, 0, 24 },
	  MK_TLS_CTL_FATAL, 10 },
	{ "finished", TLS1_3_VERSION, CT_HANDSHAKE, 5, { 20, 0, 0, 1, 0 }, MK_TLS_CTL_FATAL, 10 },
	{ "unknown message", TLS1_3_VERSION, CT_HANDSHAKE, 1, { 0xfe }, MK_TLS_CTL_FATAL, 10 },
	{ "empty handshake", TLS1_3_VERSION, CT_HANDSHAKE, 0, { 0 }, MK_TLS_CTL_FATAL, 10 },
	{ "fragment", TLS1_3_VERSION, CT_HANDSHAKE, 3, { 24, 0, 0 }, MK_TLS_CTL_MORE, 0 },
	{ "TLS 1.2 ClientHello", TLS1_2_VERSION, CT_HANDSHAKE, 6, { 1, 0, 0, 2, 3, 3 },
	  MK_TLS_CTL_WARNING, 100 },
	{ "TLS 1.2 ClientHello part", TLS1_2_VERSION, CT_HANDSHAKE, 6, { 1, 0, 0, 9, 3, 3 },
	  MK_TLS_CTL_FATAL, 10 },
	{ "TLS 1.2 ClientHello header part", TLS1_2_VERSION, CT_HANDSHAKE, 2, { 1, 0 },
	  MK_TLS_CTL_FATAL, 10 },
	{ "TLS 1.2 Finished", TLS1_2_VERSION, CT_HANDSHAKE, 4, { 20, 0, 0, 0 },
	  MK_TLS_CTL_FATAL, 10 },
	{ "change_cipher_spec", TLS1_3_VERSION, CT_CCS, 1, { 1 }, MK_TLS_CTL_FATAL, 10 },
	{ "unknown type", TLS1_3_VERSION, 24, 1, { 1 }, MK_TLS_CTL_FATAL, 10 },
};

TEST(control_records)
{
	const struct control_case *cc;
	enum mk_tls_control got;
	struct mk_tls_rx rx;
	uint8_t alert;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(control_cases); i++) {
		cc = &control_cases[i];
		memset(&rx, 0, sizeof(rx));
		alert = 0;
		got = mk_tls_control_record(&rx, cc->cc_version, cc->cc_type, cc->cc_bytes,
					    cc->cc_len, &alert);
		EXPECT_EQ(cc->cc_want, got) TH_LOG("%s", cc->cc_name);
		if (got == MK_TLS_CTL_FATAL || got == MK_TLS_CTL_PEER_ALERT ||
		    got == MK_TLS_CTL_WARNING)
			EXPECT_EQ(cc->cc_alert, alert) TH_LOG("%s", cc->cc_name);
		EXPECT_EQ(got == MK_TLS_CTL_MORE, mk_tls_rx_pending(&rx)) TH_LOG("%s", cc->cc_name);
	}
}

/* The request byte reaches the relay, which answers only when asked. */
TEST(key_update_request_flag)
{
	static const uint8_t asked[] = { 24, 0, 0, 1, 1 }, not_asked[] = { 24, 0, 0, 1, 0 };
	struct mk_tls_rx rx;
	uint8_t alert;

	memset(&rx, 0, sizeof(rx));
	ASSERT_EQ(MK_TLS_CTL_KEY_UPDATE, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE,
							       asked, sizeof(asked), &alert));
	EXPECT_TRUE(rx.rx_ku_requested);
	ASSERT_EQ(MK_TLS_CTL_KEY_UPDATE, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE,
							       not_asked, sizeof(not_asked),
							       &alert));
	EXPECT_FALSE(rx.rx_ku_requested);
	/* split: the flag comes with the last fragment */
	ASSERT_EQ(MK_TLS_CTL_MORE, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE,
							 asked, 4, &alert));
	ASSERT_EQ(MK_TLS_CTL_KEY_UPDATE, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE,
							       asked + 4, 1, &alert));
	EXPECT_TRUE(rx.rx_ku_requested);
}

/* A KeyUpdate split at every possible point is the same KeyUpdate. */
TEST(key_update_in_fragments)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	struct mk_tls_rx rx;
	uint8_t alert;
	size_t cut, off;

	for (cut = 1; cut < sizeof(ku); cut++) {
		memset(&rx, 0, sizeof(rx));
		EXPECT_EQ(MK_TLS_CTL_MORE,
			  mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE, ku, cut, &alert));
		EXPECT_EQ(MK_TLS_CTL_KEY_UPDATE,
			  mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE, ku + cut,
						sizeof(ku) - cut, &alert));
		EXPECT_FALSE(mk_tls_rx_pending(&rx));
	}
	/* one byte a record */
	memset(&rx, 0, sizeof(rx));
	for (off = 0; off + 1 < sizeof(ku); off++)
		EXPECT_EQ(MK_TLS_CTL_MORE, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE,
								 ku + off, 1, &alert));
	EXPECT_EQ(MK_TLS_CTL_KEY_UPDATE,
		  mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE, ku + off, 1, &alert));
}

/* RFC 8446 §5.1: nothing but handshake records between the fragments. */
TEST(interleaved_fragments)
{
	static const uint8_t part[] = { 24, 0 }, close_notify[] = { 1, 0 }, data[] = { 'x' };
	struct mk_tls_rx rx;
	uint8_t alert;

	memset(&rx, 0, sizeof(rx));
	ASSERT_EQ(MK_TLS_CTL_MORE, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE, part,
							 sizeof(part), &alert));
	EXPECT_EQ(MK_TLS_CTL_FATAL, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_DATA, data,
							  sizeof(data), &alert));
	EXPECT_EQ(10, alert);
	EXPECT_FALSE(mk_tls_rx_pending(&rx));
	ASSERT_EQ(MK_TLS_CTL_MORE, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_HANDSHAKE, part,
							 sizeof(part), &alert));
	EXPECT_EQ(MK_TLS_CTL_FATAL, mk_tls_control_record(&rx, TLS1_3_VERSION, CT_ALERT,
							  close_notify, 2, &alert));
	EXPECT_EQ(10, alert);
}

TEST(errno_alerts)
{
	EXPECT_EQ(20, mk_tls_errno_alert(-EBADMSG));
	EXPECT_EQ(22, mk_tls_errno_alert(-EMSGSIZE));
	EXPECT_EQ(-1, mk_tls_errno_alert(-EINVAL));
	EXPECT_EQ(-1, mk_tls_errno_alert(-ECONNRESET));
	EXPECT_EQ(-1, mk_tls_errno_alert(0));
}

TEST(header_alert)
{
	EXPECT_EQ(50, mk_tls_header_alert(TLS1_3_VERSION));
	EXPECT_EQ(70, mk_tls_header_alert(TLS1_2_VERSION));
}

TEST(min_ciphertext)
{
	EXPECT_EQ(24, mk_tls_min_ciphertext(TLS1_2_VERSION, 0xc02b));
	EXPECT_EQ(24, mk_tls_min_ciphertext(TLS1_2_VERSION, 0xc030));
	EXPECT_EQ(16, mk_tls_min_ciphertext(TLS1_2_VERSION, 0xcca8));
	EXPECT_EQ(16, mk_tls_min_ciphertext(TLS1_2_VERSION, 0xcca9));
	EXPECT_EQ(0, mk_tls_min_ciphertext(TLS1_3_VERSION, 0x1303));
	EXPECT_GE(MK_TLS_MIN_CIPHERTEXT_MAX, mk_tls_min_ciphertext(TLS1_2_VERSION, 0xc02c));
}

/* Records of 30, 24 and 7 bytes: the third is short for GCM (24). */
static size_t stream(uint8_t *s)
{
	static const uint16_t lens[] = { 30, 24, 7 };
	size_t i, off = 0;

	for (i = 0; i < ARRAY_SIZE(lens); i++) {
		s[off] = CT_DATA;
		s[off + 1] = 3;
		s[off + 2] = 3;
		s[off + 3] = (uint8_t)(lens[i] >> 8);
		s[off + 4] = (uint8_t)lens[i];
		memset(s + off + 5, 0xa5, lens[i]);
		off += 5 + lens[i];
	}
	return off;
}

/* The short record's low length byte is found however the bytes arrive. */
TEST(scan_finds_short_record)
{
	uint8_t s[128];
	size_t len = stream(s), want = 5 + 30 + 5 + 24 + 4, chunk, off, got, n;
	struct mk_tls_rx rx;

	for (chunk = 1; chunk <= len; chunk++) {
		memset(&rx, 0, sizeof(rx));
		got = 0;
		for (off = 0; off < len; off += n) {
			n = len - off < chunk ? len - off : chunk;
			got = mk_tls_rx_scan(&rx, 24, s + off, n);
			if (got < n) {
				got += off;
				break;
			}
		}
		EXPECT_EQ(want, got) TH_LOG("chunk %zu", chunk);
		EXPECT_TRUE(rx.rx_broken);
		EXPECT_EQ(0, mk_tls_rx_scan(&rx, 24, s, len));
	}
}

/* Records long enough pass untouched. */
TEST(scan_passes_valid_records)
{
	uint8_t s[128];
	size_t len = stream(s);
	struct mk_tls_rx rx;

	memset(&rx, 0, sizeof(rx));
	EXPECT_EQ(len, mk_tls_rx_scan(&rx, 7, s, len));
	EXPECT_FALSE(rx.rx_broken);
	EXPECT_EQ(0, rx.rx_left);
}

TEST_HARNESS_MAIN
