// SPDX-License-Identifier: GPL-2.0
/*
 * What mailktlsd answers to control and malformed records once the session
 * is established: the test seals each record itself with the client's write
 * keys (vm_records.h), sends it through the agent and asserts the alert the
 * client receives and that the agent closes both sides.
 *
 * One table, two record paths: in the VM (`ktls = require`) the kernel
 * decrypts and the agent answers from what recvmsg tells it; on the host
 * (tests/integration/records_test.sh runs this program with MK_KTLS=off)
 * OpenSSL decrypts in user space. Each case states the alert RFC 8446
 * (RFC 5246 for TLS 1.2) prescribes; where Linux 6.1 decides for the agent
 * and the kTLS answer differs, the case says so and asserts what happens.
 *
 * Knobs, from the environment or as NAME=VALUE arguments (VM_TEST_ARGS):
 * MK_AGENT (default agent/mailktlsd), MK_KTLS (default require; off for the
 * user-space path).
 */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "kselftest_harness.h"

#include "ktls.h"
#include "tls_keys.h"
#include "vm_agent.h"
#include "vm_records.h"
#include "vm_tls.h"

/* RFC 8446 §6 alert descriptions the cases expect. */
#define A_UNEXPECTED_MESSAGE 10
#define A_BAD_RECORD_MAC 20
#define A_RECORD_OVERFLOW 22
#define A_ILLEGAL_PARAMETER 47
#define A_DECODE_ERROR 50
#define A_PROTOCOL_VERSION 70
#define A_INTERNAL_ERROR 80
#define A_NO_RENEGOTIATION 100

#define CT_ALERT 21
#define CT_HANDSHAKE 22
#define CT_APPLICATION_DATA 23
#define HS_KEY_UPDATE 24

static const struct vm_env_opts rec_agent_opts = {
	.eo_tmpl = "/tmp/mk-records-XXXXXX",
	.eo_cn = "mailktls-records",
	.eo_backlog = 16,
};

static bool rec_ktls(void)
{
	const char *v = getenv("MK_KTLS");

	return !v || strcmp(v, "off");
}

FIXTURE(rec)
{
	struct vm_env env;
	SSL_CTX *cctx;
	struct mk_mc mc;
	struct mk_tls_dir_keys tx;	/* the client's write keys, next seq */
	int bfd;
};

FIXTURE_VARIANT(rec)
{
	int version;
	const char *cipher;
};

FIXTURE_VARIANT_ADD(rec, tls13_aes128gcm)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_AES_128_GCM_SHA256",
};

FIXTURE_VARIANT_ADD(rec, tls13_chacha20)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_CHACHA20_POLY1305_SHA256",
};

FIXTURE_VARIANT_ADD(rec, tls12_aes128gcm)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-AES128-GCM-SHA256",
};

FIXTURE_VARIANT_ADD(rec, tls12_chacha20)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-CHACHA20-POLY1305",
};

/* A relayed connection, one exchange each way done, the client's keys known. */
FIXTURE_SETUP(rec)
{
	struct mk_tls_dir_keys rx;
	char why[256] = "";

	signal(SIGPIPE, SIG_IGN);
	self->bfd = -1;
	self->mc.mc_fd = -1;
	ASSERT_EQ(0, mk_tls_keys_init());
	self->cctx = vm_client_ctx(variant->version, variant->cipher);
	ASSERT_NE(NULL, self->cctx);
	SSL_CTX_set_keylog_callback(self->cctx, mk_tls_keylog_cb);
	ASSERT_EQ(0, vm_env_start(&self->env, &rec_agent_opts, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	ASSERT_EQ(0, mk_mc_relayed(&self->env, self->cctx, &self->mc, &self->bfd));
	ASSERT_EQ(0, mk_tls_keys_derive(self->mc.mc_ssl, &self->tx, &rx));
	mk_tls_dir_keys_wipe(&rx);
	/* the client sent one record after the handshake (TLS 1.2: and Finished) */
	self->tx.dk_seq = variant->version == TLS1_2_VERSION ? 2 : 1;
}

FIXTURE_TEARDOWN(rec)
{
	mk_tls_dir_keys_wipe(&self->tx);
	if (self->bfd >= 0)
		close(self->bfd);
	mk_mc_free(&self->mc);
	vm_env_check_stop(_metadata, &self->env);
	if (!VM_PASSED(_metadata))
		vm_log_dump(&self->env);
	vm_env_cleanup(&self->env);
	SSL_CTX_free(self->cctx);
}

/* Seal one record of @type (TLS 1.3: the inner type) and send it. */
static bool rec_send(FIXTURE_DATA(rec) *self, uint8_t type, const void *pt, size_t len,
		     size_t padding)
{
	static uint8_t rec[MK_CHUNK + 512];
	int n;

	n = mk_seal_record(&self->tx, type, pt, len, padding, rec, sizeof(rec));
	if (n < 0)
		return false;
	self->tx.dk_seq++;
	return vm_send_all(self->mc.mc_fd, rec, (size_t)n);
}

/*
 * The client reads until the agent ends the connection: the alert it sent
 * (MK_ALERT_NONE if none), and the backend must see the end too.
 */
static int rec_answer(struct __test_metadata *_metadata, FIXTURE_DATA(rec) *self)
{
	uint8_t buf[64];
	int r;

	r = mk_mc_read(&self->mc, buf, sizeof(buf), 10000);
	EXPECT_GT(0, r) {
		TH_LOG("the client read %d bytes: the connection went on", r);
	}
	EXPECT_EQ(0, mk_wait_eof(self->bfd, 10000));
	return self->mc.mc_alert;
}

/* The connection goes on: a line from the backend reaches the client. */
static void rec_still_relays(struct __test_metadata *_metadata, FIXTURE_DATA(rec) *self)
{
	static const char line[] = "* OK still here\r\n";
	uint8_t buf[sizeof(line)];

	ASSERT_TRUE(vm_send_all(self->bfd, line, sizeof(line) - 1));
	ASSERT_EQ((int)sizeof(line) - 1, mk_mc_read(&self->mc, buf, sizeof(line) - 1, 10000)) {
		TH_LOG("alert %d", self->mc.mc_alert);
	}
	EXPECT_EQ(0, memcmp(buf, line, sizeof(line) - 1));
	EXPECT_EQ(MK_ALERT_NONE, self->mc.mc_alert);
}

#define EXPECT_ALERT(want, got)							\
	EXPECT_EQ(want, got) {							\
		TH_LOG("%s path: alert %d, RFC answer %d",			\
		       rec_ktls() ? "kTLS" : "user-space", got, want);		\
	}

/*
 * RFC 8446 §5.1: an alert record holds exactly one two-byte alert. A
 * record that breaks this is fatal; of the two alerts RFC 8446 §6 allows
 * (decode_error, unexpected_message) OpenSSL sends unexpected_message, and
 * so does the kTLS path.
 */
TEST_F(rec, empty_alert)
{
	ASSERT_TRUE(rec_send(self, CT_ALERT, NULL, 0, 0));
	EXPECT_ALERT(A_UNEXPECTED_MESSAGE, rec_answer(_metadata, self));
}

TEST_F(rec, three_byte_alert)
{
	static const uint8_t alert[] = { 1, 0, 0 };

	ASSERT_TRUE(rec_send(self, CT_ALERT, alert, sizeof(alert), 0));
	EXPECT_ALERT(A_UNEXPECTED_MESSAGE, rec_answer(_metadata, self));
}

/* RFC 8446 §5.2, RFC 5246 §6.2.3: more than 2^14 bytes of plaintext. */
TEST_F(rec, oversized_record)
{
	static uint8_t big[MK_CHUNK + 1];

	memset(big, 'x', sizeof(big));
	ASSERT_TRUE(rec_send(self, CT_APPLICATION_DATA, big, sizeof(big), 0));
	EXPECT_ALERT(A_RECORD_OVERFLOW, rec_answer(_metadata, self));
}

/* A ciphertext shorter than the AEAD tag cannot authenticate: bad_record_mac. */
TEST_F(rec, ciphertext_shorter_than_tag)
{
	uint8_t rec[5 + 15] = { CT_APPLICATION_DATA, 3, 3, 0, 15 };

	memset(rec + 5, 0x5a, 15);
	ASSERT_TRUE(vm_send_all(self->mc.mc_fd, rec, sizeof(rec)));
	EXPECT_ALERT(A_BAD_RECORD_MAC, rec_answer(_metadata, self));
}

/*
 * A record header with another version than 0x0303. OpenSSL refuses it
 * before decrypting (TLS 1.3: decode_error; TLS 1.2: protocol_version,
 * RFC 5246 §6.2.1); Linux 6.1 stops its record parser with EINVAL
 * (tls_rx_msg_size()), which the agent answers the same way.
 */
TEST_F(rec, wrong_record_version)
{
	static const char cmd[] = "a2 NOOP\r\n";
	uint8_t rec[256];
	int n;

	n = mk_seal_record(&self->tx, CT_APPLICATION_DATA, (const uint8_t *)cmd, sizeof(cmd) - 1,
			   0, rec, sizeof(rec));
	ASSERT_LT(0, n);
	rec[2] = 1;	/* 3.1 */
	ASSERT_TRUE(vm_send_all(self->mc.mc_fd, rec, (size_t)n));
	EXPECT_ALERT(variant->version == TLS1_3_VERSION ? A_DECODE_ERROR : A_PROTOCOL_VERSION,
		     rec_answer(_metadata, self));
}

/*
 * RFC 8446 §5.2: a TLS 1.3 record's outer type is application_data; OpenSSL
 * refuses another with unexpected_message. Linux 6.1 does not look at it:
 * it authenticates the record as if the type were application_data
 * (tls_make_aad()), so a record sealed over its real header fails to
 * decrypt and the kTLS path answers bad_record_mac.
 */
TEST_F(rec, tls13_outer_type_not_data)
{
	static const char cmd[] = "a2 NOOP\r\n";
	uint8_t rec[256];
	int n;

	if (variant->version != TLS1_3_VERSION)
		SKIP(return, "the outer content type is TLS 1.3 only");
	n = mk_seal_record_outer(&self->tx, CT_HANDSHAKE, CT_APPLICATION_DATA,
				 (const uint8_t *)cmd, sizeof(cmd) - 1, 0, rec, sizeof(rec));
	ASSERT_LT(0, n);
	ASSERT_TRUE(vm_send_all(self->mc.mc_fd, rec, (size_t)n));
	EXPECT_ALERT(rec_ktls() ? A_BAD_RECORD_MAC : A_UNEXPECTED_MESSAGE,
		     rec_answer(_metadata, self));
}

/*
 * RFC 8446 §5.4: a plaintext of zeros only has no content type:
 * unexpected_message. Linux 6.1 (tls_padding_length()) fails such a record
 * with EBADMSG, the errno of a record that fails to decrypt, so on kTLS the
 * agent cannot tell them apart and answers bad_record_mac.
 */
TEST_F(rec, zero_inner_content_type)
{
	if (variant->version != TLS1_3_VERSION)
		SKIP(return, "the inner content type is TLS 1.3 only");
	ASSERT_TRUE(rec_send(self, 0, NULL, 0, 8));
	EXPECT_ALERT(rec_ktls() ? A_BAD_RECORD_MAC : A_UNEXPECTED_MESSAGE,
		     rec_answer(_metadata, self));
}

/* Post-handshake messages (TLS 1.3): a client may only send KeyUpdate here. */
#define HANDSHAKE_CASE(name, ...)						\
	TEST_F(rec, name)							\
	{									\
		static const uint8_t msg[] = { __VA_ARGS__ };			\
										\
		if (variant->version != TLS1_3_VERSION)				\
			SKIP(return, "KeyUpdate is TLS 1.3 only");		\
		ASSERT_TRUE(rec_send(self, CT_HANDSHAKE, msg, sizeof(msg), 0));	\
		rec_check_##name(_metadata, self);				\
	}

/* RFC 8446 §6: a message type the state does not allow: unexpected_message. */
static void rec_check_handshake_unexpected_type(struct __test_metadata *_metadata,
						FIXTURE_DATA(rec) *self)
{
	EXPECT_ALERT(A_UNEXPECTED_MESSAGE, rec_answer(_metadata, self));
}
HANDSHAKE_CASE(handshake_unexpected_type, 0x14 /* finished */, 0, 0, 1, 0)

/* RFC 8446 §4.6.3: request_update is 0 or 1, else illegal_parameter. */
static void rec_check_key_update_bad_value(struct __test_metadata *_metadata,
					   FIXTURE_DATA(rec) *self)
{
	EXPECT_ALERT(A_ILLEGAL_PARAMETER, rec_answer(_metadata, self));
}
HANDSHAKE_CASE(key_update_bad_value, HS_KEY_UPDATE, 0, 0, 1, 2)

/* A KeyUpdate without its one byte cannot be parsed: decode_error. */
static void rec_check_key_update_empty(struct __test_metadata *_metadata,
				       FIXTURE_DATA(rec) *self)
{
	EXPECT_ALERT(A_DECODE_ERROR, rec_answer(_metadata, self));
}
HANDSHAKE_CASE(key_update_empty, HS_KEY_UPDATE, 0, 0, 0)

/*
 * A KeyUpdate longer than its one byte: RFC 8446 §4.6.3 and §6 call for
 * decode_error, which the kTLS path sends on every kernel. OpenSSL (the
 * user-space path) refuses a message longer than its type allows with
 * illegal_parameter before it parses it.
 */
static void rec_check_key_update_too_long(struct __test_metadata *_metadata,
					  FIXTURE_DATA(rec) *self)
{
	EXPECT_ALERT(rec_ktls() ? A_DECODE_ERROR : A_ILLEGAL_PARAMETER,
		     rec_answer(_metadata, self));
}
HANDSHAKE_CASE(key_update_too_long, HS_KEY_UPDATE, 0, 0, 2, 0, 0)

/*
 * After a KeyUpdate the client's records are under its next key: one such
 * record must reach the backend (so the agent has taken the update).
 */
static void rec_data_after_update(struct __test_metadata *_metadata, FIXTURE_DATA(rec) *self)
{
	static const char cmd[] = "a3 NOOP\r\n";
	struct mk_tls13_traffic tt;
	uint8_t buf[sizeof(cmd)];

	ASSERT_EQ(0, mk_tls13_traffic_take(self->mc.mc_ssl, &tt));
	ASSERT_EQ(0, mk_tls13_traffic_update(&tt, true, &self->tx));
	mk_tls13_traffic_wipe(&tt);
	ASSERT_TRUE(rec_send(self, CT_APPLICATION_DATA, cmd, sizeof(cmd) - 1, 0));
	ASSERT_TRUE(vm_recv_all(self->bfd, buf, sizeof(cmd) - 1));
	EXPECT_EQ(0, memcmp(buf, cmd, sizeof(cmd) - 1));
}

/*
 * A well-formed KeyUpdate: OpenSSL rekeys, so the user-space path goes on,
 * and so does the kTLS path on a kernel that can rekey (6.14 and later,
 * asked as the agent asks it); before 6.14: internal_error and a clean
 * close of both sides.
 */
static void rec_check_key_update(struct __test_metadata *_metadata, FIXTURE_DATA(rec) *self)
{
	if (rec_ktls() && !mk_ktls_probe_rekey()) {
		EXPECT_ALERT(A_INTERNAL_ERROR, rec_answer(_metadata, self));
	} else {
		rec_data_after_update(_metadata, self);
		rec_still_relays(_metadata, self);
	}
}
HANDSHAKE_CASE(key_update, HS_KEY_UPDATE, 0, 0, 1, 0)

static void rec_count_updates(int write_p, int version, int content_type, const void *buf,
			      size_t len, SSL *ssl, void *arg)
{
	const uint8_t *p = buf;

	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len == 5 && p[0] == HS_KEY_UPDATE)
		++*(int *)arg;
}

/*
 * update_requested: the server must send its own KeyUpdate before any
 * record under its next key. OpenSSL does on the user-space path, the
 * agent on a kernel that can rekey; before 6.14 the same clean close.
 */
static void rec_check_key_update_requested(struct __test_metadata *_metadata,
					   FIXTURE_DATA(rec) *self)
{
	int updates = 0;

	if (rec_ktls() && !mk_ktls_probe_rekey()) {
		EXPECT_ALERT(A_INTERNAL_ERROR, rec_answer(_metadata, self));
		return;
	}
	SSL_set_msg_callback(self->mc.mc_ssl, rec_count_updates);
	SSL_set_msg_callback_arg(self->mc.mc_ssl, &updates);
	rec_data_after_update(_metadata, self);
	rec_still_relays(_metadata, self);
	EXPECT_EQ(1, updates);
}
HANDSHAKE_CASE(key_update_requested, HS_KEY_UPDATE, 0, 0, 1, 1)

/* RFC 8446 §5.1: a handshake message may span records: same as above. */
TEST_F(rec, key_update_fragmented)
{
	static const uint8_t part1[] = { HS_KEY_UPDATE, 0 }, part2[] = { 0, 1, 0 };

	if (variant->version != TLS1_3_VERSION)
		SKIP(return, "KeyUpdate is TLS 1.3 only");
	ASSERT_TRUE(rec_send(self, CT_HANDSHAKE, part1, sizeof(part1), 0));
	usleep(100000);	/* the agent sees the first fragment alone */
	ASSERT_TRUE(rec_send(self, CT_HANDSHAKE, part2, sizeof(part2), 0));
	rec_check_key_update(_metadata, self);
}

/*
 * RFC 8446 §5.1: handshake messages MUST NOT be interleaved with other
 * record types: application data between the fragments is
 * unexpected_message.
 */
TEST_F(rec, key_update_interleaved_with_data)
{
	static const uint8_t part1[] = { HS_KEY_UPDATE, 0, 0 }, part2[] = { 1, 0 };

	if (variant->version != TLS1_3_VERSION)
		SKIP(return, "KeyUpdate is TLS 1.3 only");
	ASSERT_TRUE(rec_send(self, CT_HANDSHAKE, part1, sizeof(part1), 0));
	usleep(100000);
	ASSERT_TRUE(rec_send(self, CT_APPLICATION_DATA, "a2 NOOP\r\n", 9, 0));
	ASSERT_TRUE(rec_send(self, CT_HANDSHAKE, part2, sizeof(part2), 0));
	EXPECT_ALERT(A_UNEXPECTED_MESSAGE, rec_answer(_metadata, self));
}

/*
 * A TLS 1.2 client offering only the AES-256-GCM ECDHE and DHE suites with
 * the groups secp256r1 and ffdhe2048 gets a ServerHello and ECDHE over
 * P-256, as from `openssl s_server`.
 */
TEST(tls12_p256_ffdhe2048_offer)
{
	char why[256] = "", cmd[512], out[8192];
	struct vm_env env;
	size_t n = 0;
	FILE *f;

	ASSERT_EQ(0, vm_env_start(&env, &rec_agent_opts, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	snprintf(cmd, sizeof(cmd), "timeout 20 openssl s_client -connect 127.0.0.1:%d -tls1_2 "
		 "-cipher ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
		 "DHE-RSA-AES256-GCM-SHA384 -groups P-256:ffdhe2048 </dev/null 2>&1",
		 env.e_port);
	f = popen(cmd, "r");
	ASSERT_NE(NULL, f);
	while (n < sizeof(out) - 1 && fgets(out + n, (int)(sizeof(out) - n), f))
		n += strlen(out + n);
	pclose(f);
	EXPECT_NE(NULL, strstr(out, "Cipher is ECDHE-ECDSA-AES256-GCM-SHA384")) {
		TH_LOG("s_client said:\n%s", out);
	}
	/* "Server Temp Key" in OpenSSL 3.0's s_client, "Peer Temp Key" in 3.5's */
	EXPECT_NE(NULL, strstr(out, " Temp Key: ECDH, prime256v1")) {
		TH_LOG("s_client said:\n%s", out);
	}
	vm_env_check_stop(_metadata, &env);
	vm_env_cleanup(&env);
}

/*
 * TLS 1.2 renegotiation (a ClientHello after the handshake), which the
 * agent never does: a no_renegotiation warning (RFC 5246 §7.2.2), as
 * OpenSSL answers, and the connection goes on.
 */
TEST_F(rec, tls12_renegotiation)
{
	static const uint8_t hello[] = { 1, 0, 0, 2, 3, 3 };
	static const char cmd[] = "a2 NOOP\r\n";
	uint64_t end = vm_ms() + 10000;
	uint8_t buf[sizeof(cmd)];
	char byte;

	if (variant->version != TLS1_2_VERSION)
		SKIP(return, "renegotiation is TLS 1.2 only");
	ASSERT_TRUE(rec_send(self, CT_HANDSHAKE, hello, sizeof(hello), 0));
	while (self->mc.mc_alert == MK_ALERT_NONE && vm_ms() < end &&
	       mk_mc_fill(&self->mc, 1000) >= 0)
		SSL_peek(self->mc.mc_ssl, &byte, 1);
	EXPECT_ALERT(A_NO_RENEGOTIATION, self->mc.mc_alert);
	/*
	 * OpenSSL's client takes that warning as fatal, as it never asked for
	 * a renegotiation: a record the test seals shows the agent goes on.
	 */
	ASSERT_TRUE(rec_send(self, CT_APPLICATION_DATA, cmd, sizeof(cmd) - 1, 0));
	ASSERT_TRUE(vm_recv_all(self->bfd, buf, sizeof(cmd) - 1));
	EXPECT_EQ(0, memcmp(buf, cmd, sizeof(cmd) - 1));
}

/* The kselftest harness of 6.1 takes no arguments: NAME=VALUE become env. */
int main(int argc, char **argv)
{
	vm_args_to_env(argc, argv);
	return test_harness_run(argc, argv);
}
