// SPDX-License-Identifier: GPL-2.0
/*
 * Key-exchange groups on kernel TLS. The group changes only the handshake,
 * but the handshake is where the agent must put a large ClientHello back
 * together from several segments, and where a HelloRetryRequest adds a
 * flight, before it hands the keys to the kernel at the right sequence
 * numbers. So a real OpenSSL client sends its ClientHello in three TCP
 * segments 50 ms apart to the agent on its default groups, and to a
 * listener with `groups = secp384r1`, which the client offers no key share
 * for (a HelloRetryRequest); each connection must then be offloaded both
 * ways and carry data both ways intact, and the tls log line must name the
 * group the client negotiated.
 *
 * Which group the default gives depends on the OpenSSL in the VM, which
 * both sides share: with OpenSSL 3.5 (the VMs of Debian 13's kernels, see
 * scripts/vm/kernel.sh, or any VM on a Debian 13 host) the client offers
 * X25519MLKEM768 with its 1,216-byte key share and the agent must choose it;
 * with OpenSSL 3.0 (Debian 12) x25519, as before. The test says which it
 * saw, so the TAP shows where the post-quantum group ran on kTLS.
 *
 * Runs in the VM (scripts/vm-run.sh): needs kTLS.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/param.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "kselftest_harness.h"

#include "ktls.h"
#include "tls_keys.h"
#include "vm_agent.h"
#include "vm_records.h"
#include "vm_tls.h"

/* TLS SupportedGroup code points (IANA) and their key share sizes */
#define GRP_X25519 0x001d
#define GRP_X25519MLKEM768 0x11ec
#define GRP_X25519MLKEM768_SHARE 1216	/* ML-KEM-768 key (1,184) + X25519 (32) */
#define EXT_KEY_SHARE 51

#define GRP_DATA_LEN (64 * 1024)	/* each way: four full records and more */

/* The key share the client offers for @group in the ClientHello record
 * @rec: its length, 0 when there is none, -1 when the record is no
 * ClientHello this parser can walk. */
static int grp_share_len(const uint8_t *rec, size_t len, unsigned int group)
{
	const uint8_t *p = rec + 5 + 4 + 2 + 32, *end = rec + len;
	size_t skip, ext_len, ext_type, shares_len;
	const uint8_t *ext_end, *s;

	if (len < 5 + 4 + 2 + 32 + 1 || rec[0] != 22 || rec[5] != 1)
		return -1;
	skip = 1 + p[0];				/* session id */
	if ((size_t)(end - p) < skip + 2)
		return -1;
	p += skip;
	skip = 2 + ((size_t)p[0] << 8 | p[1]);		/* cipher suites */
	if ((size_t)(end - p) < skip + 1)
		return -1;
	p += skip;
	skip = 1 + p[0];				/* compression methods */
	if ((size_t)(end - p) < skip + 2)
		return -1;
	p += skip + 2;					/* extensions' length */
	while (end - p >= 4) {
		ext_type = (size_t)p[0] << 8 | p[1];
		ext_len = (size_t)p[2] << 8 | p[3];
		p += 4;
		if ((size_t)(end - p) < ext_len)
			return -1;
		if (ext_type == EXT_KEY_SHARE && ext_len >= 2) {
			shares_len = (size_t)p[0] << 8 | p[1];
			ext_end = p + 2 + MIN(shares_len, ext_len - 2);
			for (s = p + 2; ext_end - s >= 4;
			     s += 4 + ((size_t)s[2] << 8 | s[3])) {
				if (((unsigned int)s[0] << 8 | s[1]) == group)
					return (int)((size_t)s[2] << 8 | s[3]);
			}
			return 0;
		}
		p += ext_len;
	}
	return 0;
}

/* Does the OpenSSL in the VM have ML-KEM (3.5 and later)? */
static bool grp_have_mlkem(void)
{
	return OpenSSL_version_num() >= 0x30500000L;
}

FIXTURE(grp)
{
	struct vm_env env;
	SSL_CTX *cctx;
	struct vm_tls_stat st0;
};

FIXTURE_VARIANT(grp)
{
	const char *listener_extra;	/* the listener's groups line, or NULL */
	const char *group;		/* the group to negotiate, NULL: the default's */
};

/* The agent's default: OpenSSL's own list. */
FIXTURE_VARIANT_ADD(grp, default_groups)
{
	.listener_extra = NULL,
	.group = NULL,
};

/* A group the client has no key share for: the server asks again. */
FIXTURE_VARIANT_ADD(grp, hello_retry_secp384r1)
{
	.listener_extra = "groups = secp384r1\n",
	.group = "secp384r1",
};

FIXTURE_SETUP(grp)
{
	struct vm_env_opts opts = {
		.eo_tmpl = "/tmp/mk-groups-XXXXXX",
		.eo_cn = "mailktls-vm",
		.eo_backlog = 16,
		.eo_listener_extra = variant->listener_extra,
	};
	char why[256] = "";

	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ(0, mk_tls_keys_init());
	/* the client's default groups and key shares, as a real client has them */
	self->cctx = vm_client_ctx(TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256");
	ASSERT_NE(NULL, self->cctx);
	ASSERT_EQ(0, vm_env_start(&self->env, &opts, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	ASSERT_EQ(0, vm_read_tls_stat(&self->st0));
}

FIXTURE_TEARDOWN(grp)
{
	vm_env_check_stop(_metadata, &self->env);
	if (!VM_PASSED(_metadata))
		vm_log_dump(&self->env);
	vm_env_cleanup(&self->env);
	SSL_CTX_free(self->cctx);
}

/* Send the client's ClientHello in three segments, 50 ms apart. */
static void grp_send_split_hello(struct __test_metadata *_metadata, struct mk_mc *m,
				 const FIXTURE_VARIANT(grp) *variant)
{
	uint8_t hello[4096];
	size_t n, third;
	int one = 1, r;

	r = SSL_do_handshake(m->mc_ssl);
	ASSERT_EQ(SSL_ERROR_WANT_READ, SSL_get_error(m->mc_ssl, r));
	n = mk_mc_take(m, hello, sizeof(hello));
	ASSERT_LT(5u, n);
	if (!variant->group && grp_have_mlkem()) {
		EXPECT_EQ(GRP_X25519MLKEM768_SHARE, grp_share_len(hello, n, GRP_X25519MLKEM768));
	} else if (!variant->group) {
		EXPECT_EQ(32, grp_share_len(hello, n, GRP_X25519));
	}
	TH_LOG("ClientHello %zu bytes, in three segments", n);

	ASSERT_EQ(0, setsockopt(m->mc_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)));
	third = n / 3;
	ASSERT_TRUE(vm_send_all(m->mc_fd, hello, third));
	usleep(50000);
	ASSERT_TRUE(vm_send_all(m->mc_fd, hello + third, third));
	usleep(50000);
	ASSERT_TRUE(vm_send_all(m->mc_fd, hello + 2 * third, n - 2 * third));
}

/* GRP_DATA_LEN bytes of a pattern that differs per direction. */
static void grp_fill(uint8_t *buf, uint8_t seed)
{
	size_t i;

	for (i = 0; i < GRP_DATA_LEN; i++)
		buf[i] = (uint8_t)(i * 31 + seed + (i >> 12));
}

/* Client to daemon, then daemon to client, each compared byte for byte. */
static void grp_data_both_ways(struct __test_metadata *_metadata, struct mk_mc *m, int bfd)
{
	static uint8_t out[GRP_DATA_LEN], in[GRP_DATA_LEN];
	size_t off;

	grp_fill(out, 1);
	for (off = 0; off < GRP_DATA_LEN; off += MK_CHUNK) {
		ASSERT_EQ(MK_CHUNK, SSL_write(m->mc_ssl, out + off, MK_CHUNK));
		ASSERT_TRUE(mk_mc_flush(m));	/* one record a send() */
	}
	ASSERT_TRUE(vm_recv_all(bfd, in, GRP_DATA_LEN));
	EXPECT_EQ(0, memcmp(in, out, GRP_DATA_LEN));

	grp_fill(out, 2);
	ASSERT_TRUE(vm_send_all(bfd, out, GRP_DATA_LEN));
	ASSERT_EQ(GRP_DATA_LEN, mk_mc_read(m, in, GRP_DATA_LEN, VM_IO_TIMEOUT_MS));
	EXPECT_EQ(0, memcmp(in, out, GRP_DATA_LEN));
}

TEST_F(grp, split_client_hello_over_ktls)
{
	char line[512], want[96], greeting[sizeof(MK_PROLOGUE)];
	const char *name, *expect;
	struct vm_tls_stat st;
	struct mk_mc m;
	int bfd;

	ASSERT_EQ(0, mk_mc_new(&m, self->cctx, self->env.e_port));
	grp_send_split_hello(_metadata, &m, variant);
	ASSERT_EQ(0, mk_mc_handshake(&m));
	ASSERT_TRUE(mk_mc_flush(&m));

	name = SSL_group_to_name(m.mc_ssl, SSL_get_negotiated_group(m.mc_ssl));
	ASSERT_NE(NULL, name);
	expect = variant->group ?: grp_have_mlkem() ? "X25519MLKEM768" : "x25519";
	EXPECT_EQ(0, strcasecmp(expect, name)) {
		TH_LOG("negotiated %s, want %s", name, expect);
	}
	TH_LOG("%s: negotiated %s", OpenSSL_version(OPENSSL_VERSION), name);

	bfd = vm_backend_accept(&self->env, VM_IO_TIMEOUT_MS);
	ASSERT_LE(0, bfd);
	vm_set_timeouts(bfd, 10000);
	ASSERT_TRUE(vm_send_all(bfd, MK_PROLOGUE, sizeof(MK_PROLOGUE) - 1));
	ASSERT_EQ((int)sizeof(MK_PROLOGUE) - 1,
		  mk_mc_read(&m, (uint8_t *)greeting, sizeof(MK_PROLOGUE) - 1, VM_IO_TIMEOUT_MS));

	/* offloaded both ways, as the agent says and the kernel counts */
	ASSERT_EQ(0, vm_log_line(&self->env, "tls", m.mc_cport, line, sizeof(line), 5000));
	snprintf(want, sizeof(want), " group=%s ", name);
	EXPECT_NE(NULL, strcasestr(line, want)) {
		TH_LOG("tls line: %s", line);
	}
	EXPECT_NE(NULL, strstr(line, " ktls=tx,rx")) {
		TH_LOG("tls line: %s", line);
	}
	ASSERT_EQ(0, vm_read_tls_stat(&st));
	EXPECT_EQ(self->st0.ts_curr_tx_sw + 1, st.ts_curr_tx_sw);
	EXPECT_EQ(self->st0.ts_curr_rx_sw + 1, st.ts_curr_rx_sw);

	grp_data_both_ways(_metadata, &m, bfd);
	close(bfd);
	mk_mc_free(&m);
}

TEST_HARNESS_MAIN
