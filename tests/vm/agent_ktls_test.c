// SPDX-License-Identifier: GPL-2.0
/*
 * mailktlsd end to end on kernel TLS: the real agent binary runs as a child
 * with `ktls = require`, a real OpenSSL client talks to it over loopback and
 * the test itself plays the IMAP daemon behind it (backend). Every test
 * checks what a user relies on: bytes arrive intact both ways, the agent's
 * socket is offloaded both ways, each way of ending a connection ends it
 * cleanly with the right `end=` in the log, and an idle connection is cheap.
 *
 * One variant per TLS version x AEAD kTLS takes. The backend's first line is
 * a tagged OK with a CAPABILITY code, as after an IMAP LOGIN: it ends the
 * agent's capability filter, so from then on both directions are spliced
 * (the zero-copy path is what is tested, not the filter).
 *
 * Knobs, from the environment or as NAME=VALUE arguments (VM_TEST_ARGS):
 * MK_AGENT (default agent/mailktlsd; the VM's /mk is the cwd), MK_BULK_MIB
 * (bulk size each way, default MK_BULK_MIB_DEFAULT), MK_IDLE_CONNS (default
 * 1000), MK_ONLY (run only tests whose name contains it).
 *
 * Runs in the VM (scripts/vm-run.sh): needs kTLS.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "kselftest_harness.h"

#include "ktls.h"
#include "tls_keys.h"
#include "vm_agent.h"
#include "vm_bulk.h"
#include "vm_records.h"
#include "vm_tls.h"

/*
 * Bulk size each way: 64 MiB, hundreds of pipe fills and thousands of
 * records, so a byte lost or reordered anywhere shows. Under QEMU TCG on the
 * 2-CPU CI machine that takes 10-12 s per variant (measured on a quiet
 * host), so the VM suite takes about four minutes;
 * MK_BULK_MIB=8 makes a quick run while developing:
 * VM_ONLY=agent_ktls_test VM_TEST_ARGS="MK_BULK_MIB=8" scripts/vm-run.sh
 */
#define MK_BULK_MIB_DEFAULT 64
#define MK_IDLE_CONNS_DEFAULT 1000
/* Per idle connection, in each idle state: the target of 2 KiB. What stays
 * is the connection (~660 bytes), its registry entry (~190) and, until the
 * daemon's capability response, the capability filter (~100); receive
 * buffers come from the worker's ring only while bytes are being handled.
 * 1,000 connections measured 1.0-1.1 KiB each logged in, the rest being
 * heap growth steps and library pages touched for the first time. (Before
 * the agent opted out of transparent huge pages, khugepaged sometimes added
 * a 2 MiB page: 4.4 KiB each.) */
#define MK_IDLE_BOUND_KIB 2
/* What Dovecot greets with before login: the capability filter stays on. */
#define MK_GREETING_PRELOGIN                                                             \
	"* OK [CAPABILITY IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+ "    \
	"AUTH=PLAIN] Dovecot (Debian) ready.\r\n"

/* MK_ONLY=substring runs only the tests whose name has it (the 6.1 harness
 * has no filter of its own); the others are reported as skipped. */
#define MK_SKIP_UNSELECTED()							\
	do {									\
		const char *only = getenv("MK_ONLY");				\
		if (only && *only && !strstr(_metadata->name, only))		\
			SKIP(_exit(255), "not selected by MK_ONLY=%s", only);	\
	} while (0)

/* ------------------------------------------------------------------------ */
/* The agent under test (vm_agent.h) and what its log says of one client. */

/* No query socket; the backend listener takes the idle test's connections.
 * Tickets are sealed under a ticket_keys file, as on a fleet. */
static const struct vm_env_opts mk_agent_opts = {
	.eo_tmpl = "/tmp/mk-agent-XXXXXX",
	.eo_cn = "mailktls-vm",
	.eo_backlog = 4096,
	.eo_ticket_keys = true,
};

/* ------------------------------------------------------------------------ */
/* Client and backend plumbing. */

static void mk_reset(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

/* ------------------------------------------------------------------------ */
/* The fixture: one agent per test, one variant per TLS version x AEAD. */

FIXTURE(agent)
{
	struct vm_env env;
	SSL_CTX *cctx;
	struct vm_tls_stat st0;		/* after the agent's own kTLS probe */
};

FIXTURE_VARIANT(agent)
{
	int version;		/* TLS1_2_VERSION, TLS1_3_VERSION */
	const char *cipher;	/* OpenSSL name: cipher list (1.2) or suite (1.3) */
	const char *iana_name;	/* what the agent logs */
};

FIXTURE_VARIANT_ADD(agent, tls12_aes128gcm)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-AES128-GCM-SHA256",
	.iana_name = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
};

FIXTURE_VARIANT_ADD(agent, tls12_aes256gcm)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-AES256-GCM-SHA384",
	.iana_name = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
};

FIXTURE_VARIANT_ADD(agent, tls12_chacha20)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-CHACHA20-POLY1305",
	.iana_name = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
};

FIXTURE_VARIANT_ADD(agent, tls13_aes128gcm)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_AES_128_GCM_SHA256",
	.iana_name = "TLS_AES_128_GCM_SHA256",
};

FIXTURE_VARIANT_ADD(agent, tls13_aes256gcm)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_AES_256_GCM_SHA384",
	.iana_name = "TLS_AES_256_GCM_SHA384",
};

FIXTURE_VARIANT_ADD(agent, tls13_chacha20)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_CHACHA20_POLY1305_SHA256",
	.iana_name = "TLS_CHACHA20_POLY1305_SHA256",
};

/* A client context pinned to exactly one version and cipher. */
static SSL_CTX *mk_client_ctx(int version, const char *cipher)
{
	SSL_CTX *ctx = vm_client_ctx(version, cipher);

	/* TLS 1.3 traffic secrets, for records the test seals itself. */
	if (ctx)
		SSL_CTX_set_keylog_callback(ctx, mk_tls_keylog_cb);
	return ctx;
}

FIXTURE_SETUP(agent)
{
	char why[256] = "";

	MK_SKIP_UNSELECTED();
	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ(0, mk_tls_keys_init());
	self->cctx = mk_client_ctx(variant->version, variant->cipher);
	ASSERT_NE(NULL, self->cctx);
	ASSERT_EQ(0, vm_env_start(&self->env, &mk_agent_opts, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	ASSERT_EQ(0, vm_read_tls_stat(&self->st0));
}

FIXTURE_TEARDOWN(agent)
{
	/* SIGTERM is the orderly stop: exit status 0, never a crash or hang */
	vm_env_check_stop(_metadata, &self->env);
	if (!VM_PASSED(_metadata))
		vm_log_dump(&self->env);
	vm_env_cleanup(&self->env);
	SSL_CTX_free(self->cctx);
}

/* The tls line the agent logged for the client on @cport names its version and AEAD. */
static void mk_check_log_tls(struct __test_metadata *_metadata, const struct vm_env *e,
			     int cport, const FIXTURE_VARIANT(agent) *variant)
{
	char line[512], want[160];

	ASSERT_EQ(0, vm_log_line(e, "tls", cport, line, sizeof(line), 5000));
	snprintf(want, sizeof(want), " version=%s cipher=%s ",
		 variant->version == TLS1_3_VERSION ? "TLSv1.3" : "TLSv1.2", variant->iana_name);
	EXPECT_NE(NULL, strstr(line, want)) {
		TH_LOG("tls line: %s", line);
	}
	EXPECT_NE(NULL, strstr(line, " ktls=tx,rx")) {
		TH_LOG("tls line: %s", line);
	}
}

/*
 * MK_BULK_MIB (default MK_BULK_MIB_DEFAULT) each way at the same time,
 * checksummed; the agent's socket is offloaded both ways meanwhile.
 */
TEST_F_TIMEOUT(agent, bulk_both_ways, 280)
{
	uint64_t total = (uint64_t)vm_env_long("MK_BULK_MIB", MK_BULK_MIB_DEFAULT) << 20;
	struct vm_bulk_client bc = { .bc_total = total };
	struct vm_bulk_side sink = { .bs_total = total }, src = { .bs_total = total };
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	struct vm_tls_stat st;
	pthread_t tsink, tsrc;
	uint8_t *pat;
	uint64_t t0, ms;
	char end[96];

	pat = malloc(VM_PATTERN_LEN);
	ASSERT_NE(NULL, pat);
	ASSERT_EQ(1, RAND_bytes(pat, VM_PATTERN_LEN));
	bc.bc_stream = (struct vm_stream){ pat, 0 };
	src.bs_stream = (struct vm_stream){ pat, VM_PATTERN_LEN / 2 };

	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	mk_check_log_tls(_metadata, &self->env, r.r_cport, variant);
	/* the agent's end is the one new kTLS socket, offloaded both ways */
	ASSERT_EQ(0, vm_read_tls_stat(&st));
	EXPECT_EQ(self->st0.ts_tx_sw + 1, st.ts_tx_sw);
	EXPECT_EQ(self->st0.ts_rx_sw + 1, st.ts_rx_sw);
	EXPECT_LE(1, st.ts_curr_tx_sw);
	EXPECT_LE(1, st.ts_curr_rx_sw);

	sink.bs_fd = src.bs_fd = r.r_bfd;
	ASSERT_EQ(0, vm_set_nonblock(r.r_cfd, true));
	t0 = vm_ms();
	ASSERT_EQ(0, pthread_create(&tsink, NULL, vm_backend_sink, &sink));
	ASSERT_EQ(0, pthread_create(&tsrc, NULL, vm_backend_source, &src));
	vm_bulk_client_run(r.r_ssl, r.r_cfd, &bc);
	if (bc.bc_fail)	/* unblock the backend threads */
		shutdown(r.r_bfd, SHUT_RDWR);
	pthread_join(tsink, NULL);
	pthread_join(tsrc, NULL);
	ms = vm_ms() - t0;
	TH_LOG("%s: %llu MiB each way in %llu.%03llu s", variant->cipher,
	       (unsigned long long)(total >> 20), (unsigned long long)(ms / 1000),
	       (unsigned long long)(ms % 1000));
	ASSERT_EQ(NULL, bc.bc_fail) {
		TH_LOG("client: %s after %llu sent, %llu received", bc.bc_fail,
		       (unsigned long long)bc.bc_sent, (unsigned long long)bc.bc_rcvd);
		ERR_print_errors_fp(stderr);
	}
	ASSERT_EQ(0, sink.bs_err);
	ASSERT_EQ(0, src.bs_err);
	EXPECT_EQ(total, sink.bs_done);
	EXPECT_EQ(total, bc.bc_rcvd);
	EXPECT_EQ(0, memcmp(bc.bc_md_out, sink.bs_md, 32));	/* client -> backend */
	EXPECT_EQ(0, memcmp(src.bs_md, bc.bc_md_in, 32));	/* backend -> client */

	ASSERT_EQ(0, vm_read_tls_stat(&st));
	EXPECT_LE(1, st.ts_curr_tx_sw);
	EXPECT_LE(1, st.ts_curr_rx_sw);
	EXPECT_EQ(self->st0.ts_decrypt_error, st.ts_decrypt_error);

	ASSERT_EQ(0, vm_set_nonblock(r.r_cfd, false));
	SSL_shutdown(r.r_ssl);
	EXPECT_EQ(0, mk_wait_eof(r.r_bfd, 10000));
	close(r.r_bfd);
	r.r_bfd = -1;
	EXPECT_STREQ("close_notify", vm_log_end(&self->env, r.r_cport, end, sizeof(end)));
	vm_relay_close(&r);
	free(pat);
}

/* ------------------------------------------------------------------------ */

/*
 * The client's last handshake flight and its first application record in
 * one segment: the agent must not let OpenSSL keep the record, nor start
 * the kernel at the wrong sequence number. TLS 1.3: Finished + data after a
 * full handshake. TLS 1.2: the client sends Finished last only when it
 * resumes a session, so resume one and send ChangeCipherSpec + Finished +
 * data together.
 */
TEST_F(agent, finished_and_data_in_one_segment)
{
	static const char cmd[] = "a1 CAPABILITY\r\n", reply[] = "* CAPABILITY IMAP4rev1\r\n";
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	SSL_SESSION *sess = NULL;
	uint8_t seg[4096], buf[64];
	struct mk_mc m;
	size_t n;
	int bfd;

	if (variant->version == TLS1_2_VERSION) {
		ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
		sess = SSL_get1_session(r.r_ssl);
		ASSERT_NE(NULL, sess);
		SSL_shutdown(r.r_ssl);
		vm_relay_close(&r);
	}
	ASSERT_EQ(0, mk_mc_new(&m, self->cctx, self->env.e_port));
	if (sess) {
		ASSERT_EQ(1, SSL_set_session(m.mc_ssl, sess));
		SSL_SESSION_free(sess);
	}
	ASSERT_EQ(0, mk_mc_handshake(&m));
	if (variant->version == TLS1_2_VERSION)
		ASSERT_TRUE(SSL_session_reused(m.mc_ssl));
	ASSERT_EQ((int)sizeof(cmd) - 1, SSL_write(m.mc_ssl, cmd, sizeof(cmd) - 1));
	n = mk_mc_take(&m, seg, sizeof(seg));
	ASSERT_LT(5 + sizeof(cmd) - 1, n);
	ASSERT_EQ((ssize_t)n, send(m.mc_fd, seg, n, MSG_NOSIGNAL));	/* one segment */

	bfd = vm_backend_accept(&self->env, VM_IO_TIMEOUT_MS);
	ASSERT_LE(0, bfd);
	ASSERT_TRUE(vm_recv_all(bfd, buf, sizeof(cmd) - 1));
	EXPECT_EQ(0, memcmp(buf, cmd, sizeof(cmd) - 1));
	ASSERT_TRUE(vm_send_all(bfd, MK_PROLOGUE, sizeof(MK_PROLOGUE) - 1));
	ASSERT_TRUE(vm_send_all(bfd, reply, sizeof(reply) - 1));
	ASSERT_EQ((int)sizeof(MK_PROLOGUE) - 1,
		  mk_mc_read(&m, seg, sizeof(MK_PROLOGUE) - 1, VM_IO_TIMEOUT_MS));
	EXPECT_EQ(0, memcmp(seg, MK_PROLOGUE, sizeof(MK_PROLOGUE) - 1));
	ASSERT_EQ((int)sizeof(reply) - 1, mk_mc_read(&m, buf, sizeof(reply) - 1, VM_IO_TIMEOUT_MS));
	EXPECT_EQ(0, memcmp(buf, reply, sizeof(reply) - 1));
	mk_check_log_tls(_metadata, &self->env, m.mc_cport, variant);
	close(bfd);
	mk_mc_free(&m);
}

/*
 * A session resumed from a ticket sealed under the ticket_keys file goes to
 * the kernel like a new one: TLS 1.2 (the server's Finished is the one
 * record under the keys) and TLS 1.3 (the NewSessionTicket written with the
 * final flight moves the kernel's send sequence number).
 */
TEST_F(agent, resumed_session)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	SSL_SESSION *sess;
	char line[512];
	int i;

	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	sess = SSL_get1_session(r.r_ssl);
	ASSERT_NE(NULL, sess);
	ASSERT_TRUE(SSL_SESSION_is_resumable(sess));
	SSL_shutdown(r.r_ssl);
	vm_relay_close(&r);
	for (i = 0; i < 2; i++) {
		ASSERT_EQ(0, vm_relay_resume(&self->env, self->cctx, sess, &r));
		EXPECT_TRUE(SSL_session_reused(r.r_ssl));
		ASSERT_EQ(0, vm_relay_ping(&r));
		ASSERT_EQ(0, vm_relay_ping(&r));
		ASSERT_EQ(0, vm_log_line(&self->env, "tls", r.r_cport, line, sizeof(line), 5000));
		EXPECT_NE(NULL, strstr(line, " ktls=tx,rx resumed=yes")) TH_LOG("%s", line);
		SSL_shutdown(r.r_ssl);
		vm_relay_close(&r);
	}
	SSL_SESSION_free(sess);
}

/* The client's close_notify reaches the backend as EOF; end=close_notify. */
TEST_F(agent, close_notify_from_client)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	char end[96];

	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	ASSERT_EQ(0, SSL_shutdown(r.r_ssl));	/* sent; the agent's not seen yet */
	ASSERT_EQ(0, mk_wait_eof(r.r_bfd, 5000));
	close(r.r_bfd);
	r.r_bfd = -1;
	/* the daemon's EOF then comes back as the agent's close_notify */
	EXPECT_EQ(1, SSL_shutdown(r.r_ssl));
	EXPECT_STREQ("close_notify", vm_log_end(&self->env, r.r_cport, end, sizeof(end)));
	vm_relay_close(&r);
}

/* The backend closes: the client reads a clean close_notify, no truncation. */
TEST_F(agent, close_notify_from_backend)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	char buf[16], end[96];

	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	ASSERT_TRUE(vm_send_all(r.r_bfd, "* BYE\r\n", 7));
	close(r.r_bfd);
	r.r_bfd = -1;
	ASSERT_EQ(7, SSL_read(r.r_ssl, buf, 7));
	EXPECT_EQ(0, memcmp(buf, "* BYE\r\n", 7));
	EXPECT_EQ(0, SSL_read(r.r_ssl, buf, sizeof(buf)));
	EXPECT_EQ(SSL_ERROR_ZERO_RETURN, SSL_get_error(r.r_ssl, 0));
	EXPECT_EQ(0, r.r_alert);	/* close_notify */
	SSL_shutdown(r.r_ssl);
	vm_log_end(&self->env, r.r_cport, end, sizeof(end));
	EXPECT_STRNE("", end);
	EXPECT_NE(0, strncmp(end, "error", 5)) {
		TH_LOG("end=%s", end);
	}
	vm_relay_close(&r);
}

/* A TCP reset from the client: backend closed, end=reset, agent alive. */
TEST_F(agent, client_reset)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 }, r2 = { .r_cfd = -1, .r_bfd = -1 };
	char end[96];

	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	mk_reset(r.r_cfd);
	r.r_cfd = -1;
	EXPECT_NE(-ETIMEDOUT, mk_wait_eof(r.r_bfd, 5000));	/* EOF or reset */
	EXPECT_STREQ("reset", vm_log_end(&self->env, r.r_cport, end, sizeof(end)));
	vm_relay_close(&r);
	/* the agent still serves */
	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r2));
	EXPECT_EQ(0, vm_relay_ping(&r2));
	vm_relay_close(&r2);
}

/* A TCP reset from the backend: the client gets a clean TLS end. */
TEST_F(agent, backend_reset)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	char buf[16], end[96];
	int n, err;

	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	mk_reset(r.r_bfd);
	r.r_bfd = -1;
	n = SSL_read(r.r_ssl, buf, sizeof(buf));
	err = SSL_get_error(r.r_ssl, n);
	EXPECT_GE(0, n);
	/* close_notify, or a fatal alert; not a bare TCP close */
	EXPECT_TRUE(err == SSL_ERROR_ZERO_RETURN || (err == SSL_ERROR_SSL && r.r_alert > 0)) {
		TH_LOG("SSL_read %d, error %d, alert %d", n, err, r.r_alert);
	}
	vm_log_end(&self->env, r.r_cport, end, sizeof(end));
	EXPECT_EQ(0, strncmp(end, "error:", 6)) {
		TH_LOG("end=%s", end);
	}
	vm_relay_close(&r);
}

/*
 * TLS 1.3 KeyUpdate from the client: kernels before 6.14 cannot rekey, so
 * the agent ends the connection with an alert at once; never a hang. On
 * one that can (asked as the agent asks it), the connection goes on;
 * agent_rekey_test.c tests that at length.
 */
TEST_F(agent, key_update_from_client)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	char buf[16], end[96];
	uint64_t t0, ms;
	int n, err;

	if (variant->version != TLS1_3_VERSION)
		SKIP(return, "KeyUpdate is TLS 1.3 only");
	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	ASSERT_EQ(1, SSL_key_update(r.r_ssl, SSL_KEY_UPDATE_NOT_REQUESTED));
	t0 = vm_ms();
	ASSERT_EQ(1, SSL_write(r.r_ssl, "x", 1));	/* KeyUpdate goes out first */
	if (mk_ktls_probe_rekey()) {
		ASSERT_TRUE(vm_recv_all(r.r_bfd, buf, 1));
		EXPECT_EQ(0, vm_relay_ping(&r));
		vm_relay_close(&r);
		return;
	}
	n = SSL_read(r.r_ssl, buf, sizeof(buf));
	err = SSL_get_error(r.r_ssl, n);
	ms = vm_ms() - t0;
	TH_LOG("connection ended %llu ms after the KeyUpdate: SSL_read %d, error %d, alert %d",
	       (unsigned long long)ms, n, err, r.r_alert);
	EXPECT_GE(0, n);
	EXPECT_TRUE(err == SSL_ERROR_ZERO_RETURN || err == SSL_ERROR_SSL ||
		    err == SSL_ERROR_SYSCALL);
	EXPECT_GT(2000, ms);	/* "within a second", with TCG slack */
	EXPECT_STREQ("error:key_update_unsupported",
		     vm_log_end(&self->env, r.r_cport, end, sizeof(end)));
	EXPECT_EQ(0, mk_wait_eof(r.r_bfd, 5000));
	vm_relay_close(&r);
}

/* A record with one flipped ciphertext bit: bad_record_mac, then close. */
TEST_F(agent, corrupted_record)
{
	struct vm_tls_stat st;
	uint8_t rec[256], buf[16];
	struct mk_mc m;
	char end[96];
	size_t n;
	int bfd;

	ASSERT_EQ(0, mk_mc_relayed(&self->env, self->cctx, &m, &bfd));
	ASSERT_LT(0, SSL_write(m.mc_ssl, "a2 NOOP\r\n", 9));
	n = mk_mc_take(&m, rec, sizeof(rec));
	ASSERT_LT(5 + 9, n);
	rec[n / 2] ^= 0x10;
	ASSERT_TRUE(vm_send_all(m.mc_fd, rec, n));
	EXPECT_GT(0, mk_mc_read(&m, buf, sizeof(buf), 5000));
	EXPECT_EQ(20, m.mc_alert) {	/* bad_record_mac */
		TH_LOG("alert received: %d", m.mc_alert);
	}
	EXPECT_STREQ("error:bad_record_mac", vm_log_end(&self->env, m.mc_cport, end, sizeof(end)));
	EXPECT_EQ(0, mk_wait_eof(bfd, 5000));
	ASSERT_EQ(0, vm_read_tls_stat(&st));
	EXPECT_EQ(self->st0.ts_decrypt_error + 1, st.ts_decrypt_error);
	close(bfd);
	mk_mc_free(&m);
}

/*
 * Zero-length application data records (legal in TLS 1.2 and 1.3), sealed
 * by the test with the client's write keys between ordinary records: the
 * kernel hands the agent a 0-byte read for them, which must not be taken
 * for the end of the stream. TLS 1.3 also gets a padded empty record.
 */
TEST_F(agent, zero_length_records)
{
	static const char a[] = "a2 NOOP\r\n", b[] = "a3 NOOP\r\n", pong[] = "a3 OK done\r\n";
	struct mk_tls_dir_keys tx, rx;
	uint8_t seg[1024], buf[64];
	size_t off = 0;
	struct mk_mc m;
	int bfd, n;

	ASSERT_EQ(0, mk_mc_relayed(&self->env, self->cctx, &m, &bfd));
	ASSERT_EQ(0, mk_tls_keys_derive(m.mc_ssl, &tx, &rx));
	/* the client sent one record after the handshake (TLS 1.2: and Finished) */
	tx.dk_seq = variant->version == TLS1_2_VERSION ? 2 : 1;
	n = mk_seal_record(&tx, 23, NULL, 0, 0, seg + off, sizeof(seg) - off);
	ASSERT_LT(0, n);
	off += n;
	tx.dk_seq++;
	n = mk_seal_record(&tx, 23, (const uint8_t *)a, sizeof(a) - 1, 0, seg + off,
			   sizeof(seg) - off);
	ASSERT_LT(0, n);
	off += n;
	tx.dk_seq++;
	/* alone in its segment too: the agent's read sees only it */
	ASSERT_TRUE(vm_send_all(m.mc_fd, seg, off));
	ASSERT_TRUE(vm_recv_all(bfd, buf, sizeof(a) - 1));
	EXPECT_EQ(0, memcmp(buf, a, sizeof(a) - 1));
	off = 0;
	n = mk_seal_record(&tx, 23, NULL, 0, variant->version == TLS1_3_VERSION ? 100 : 0, seg,
			   sizeof(seg));
	ASSERT_LT(0, n);
	tx.dk_seq++;
	ASSERT_TRUE(vm_send_all(m.mc_fd, seg, n));
	usleep(200000);
	n = mk_seal_record(&tx, 23, (const uint8_t *)b, sizeof(b) - 1, 0, seg, sizeof(seg));
	ASSERT_LT(0, n);
	ASSERT_TRUE(vm_send_all(m.mc_fd, seg, n));
	mk_tls_dir_keys_wipe(&tx);
	mk_tls_dir_keys_wipe(&rx);
	ASSERT_TRUE(vm_recv_all(bfd, buf, sizeof(b) - 1));
	EXPECT_EQ(0, memcmp(buf, b, sizeof(b) - 1));
	ASSERT_TRUE(vm_send_all(bfd, pong, sizeof(pong) - 1));
	ASSERT_EQ((int)sizeof(pong) - 1, mk_mc_read(&m, buf, sizeof(pong) - 1, VM_IO_TIMEOUT_MS));
	EXPECT_EQ(0, memcmp(buf, pong, sizeof(pong) - 1));
	close(bfd);
	mk_mc_free(&m);
}

/* TLS 1.3 records padded by the client (RFC 8446 §5.4) arrive intact. */
TEST_F(agent, padded_records)
{
	static const size_t sizes[] = { 1, 200, 255, 256, 257, 1000, 4095, 16000 };
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	uint8_t out[16384], in[16384];
	size_t i;

	if (variant->version != TLS1_3_VERSION)
		SKIP(return, "record padding is TLS 1.3 only");
	ASSERT_EQ(1, SSL_CTX_set_block_padding(self->cctx, 256));
	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	for (i = 0; i < ARRAY_SIZE(sizes); i++) {
		ASSERT_EQ(1, RAND_bytes(out, (int)sizes[i]));
		ASSERT_EQ((int)sizes[i], SSL_write(r.r_ssl, out, (int)sizes[i]));
		ASSERT_TRUE(vm_recv_all(r.r_bfd, in, sizes[i]));
		EXPECT_EQ(0, memcmp(out, in, sizes[i])) {
			TH_LOG("record of %zu bytes changed", sizes[i]);
		}
	}
	EXPECT_EQ(0, vm_relay_ping(&r));
	SSL_shutdown(r.r_ssl);
	vm_relay_close(&r);
}

/* ------------------------------------------------------------------------ */
/*
 * Many idle relayed connections: what one costs the agent in memory, in the
 * three states a connection waits in, each with a fresh agent: handshake
 * done and the daemon silent (a slow daemon, a mass reconnect), after the
 * daemon's pre-login greeting, and logged in (IMAP IDLE).
 */

FIXTURE(idle)
{
	struct vm_env env;
	SSL_CTX *cctx;
};

FIXTURE_VARIANT(idle)
{
	const char *greeting;	/* what the backend sends first, NULL: nothing */
	bool relay_bytes;	/* then one byte each way */
};

FIXTURE_VARIANT_ADD(idle, backend_silent)
{
	.greeting = NULL,
};

FIXTURE_VARIANT_ADD(idle, greeted_before_login)
{
	.greeting = MK_GREETING_PRELOGIN,
};

FIXTURE_VARIANT_ADD(idle, logged_in)
{
	.greeting = MK_PROLOGUE,
	.relay_bytes = true,
};

FIXTURE_SETUP(idle)
{
	struct rlimit rl = { .rlim_cur = 16384, .rlim_max = 16384 };
	char why[256] = "";

	MK_SKIP_UNSELECTED();
	signal(SIGPIPE, SIG_IGN);
	/* the agent inherits it: 2 sockets a connection on each side */
	ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &rl));
	ASSERT_EQ(0, mk_tls_keys_init());
	self->cctx = mk_client_ctx(TLS1_3_VERSION, "TLS_AES_128_GCM_SHA256");
	ASSERT_NE(NULL, self->cctx);
	ASSERT_EQ(0, vm_env_start(&self->env, &mk_agent_opts, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
}

FIXTURE_TEARDOWN(idle)
{
	vm_env_check_stop(_metadata, &self->env);
	if (!VM_PASSED(_metadata))
		vm_log_dump(&self->env);
	vm_env_cleanup(&self->env);
	SSL_CTX_free(self->cctx);
}

static long mk_vmrss_kib(pid_t pid)
{
	char path[64], line[128];
	long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/*
 * A connection brought to the variant's idle state. The backend's accept
 * means the agent is past the handshake and the handover. Return: 0 or -1.
 */
static int mk_idle_open(const struct vm_env *e, SSL_CTX *ctx, const FIXTURE_VARIANT(idle) *v,
			struct vm_relay *r)
{
	char buf[256], c;
	size_t len = v->greeting ? strlen(v->greeting) : 0;

	r->r_bfd = -1;
	r->r_alert = MK_ALERT_NONE;
	r->r_cfd = vm_connect(e->e_port, &r->r_cport);
	r->r_ssl = SSL_new(ctx);
	if (r->r_cfd < 0 || !r->r_ssl || !SSL_set_fd(r->r_ssl, r->r_cfd) ||
	    SSL_connect(r->r_ssl) != 1)
		return -1;
	r->r_bfd = vm_backend_accept(e, VM_IO_TIMEOUT_MS);
	if (r->r_bfd < 0 || len > sizeof(buf))
		return -1;
	if (len && (!vm_send_all(r->r_bfd, v->greeting, len) ||
		    SSL_read(r->r_ssl, buf, (int)len) != (int)len || memcmp(buf, v->greeting, len)))
		return -1;
	/* one byte each way, through the spliced relay */
	if (v->relay_bytes &&
	    (SSL_write(r->r_ssl, "x", 1) != 1 || !vm_recv_all(r->r_bfd, &c, 1) ||
	     !vm_send_all(r->r_bfd, "y", 1) || SSL_read(r->r_ssl, &c, 1) != 1))
		return -1;
	return 0;
}

TEST_F_TIMEOUT(idle, thousand_idle_connections, 280)
{
	long nconn = vm_env_long("MK_IDLE_CONNS", MK_IDLE_CONNS_DEFAULT), i, before, after;
	struct vm_relay warm = { .r_cfd = -1, .r_bfd = -1 };
	int *cfd, *bfd, closes;
	uint64_t t0;
	double per;

	cfd = calloc(nconn, sizeof(*cfd));
	bfd = calloc(nconn, sizeof(*bfd));
	ASSERT_TRUE(cfd && bfd);
	/* one connection first, so one-time allocations are not counted */
	ASSERT_EQ(0, mk_idle_open(&self->env, self->cctx, variant, &warm));
	vm_relay_close(&warm);
	ASSERT_EQ(1, vm_log_wait(&self->env, "mailktlsd: close ", 1, 10000));
	before = mk_vmrss_kib(self->env.e_pid);
	ASSERT_LT(0, before);

	t0 = vm_ms();
	for (i = 0; i < nconn; i++) {
		struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };

		ASSERT_EQ(0, mk_idle_open(&self->env, self->cctx, variant, &r)) {
			TH_LOG("connection %ld", i);
		}
		SSL_free(r.r_ssl);	/* the fd stays open, idle */
		cfd[i] = r.r_cfd;
		bfd[i] = r.r_bfd;
	}
	after = mk_vmrss_kib(self->env.e_pid);
	per = (double)(after - before) * 1024 / (double)nconn;
	TH_LOG("%ld connections opened in %llu ms", nconn, (unsigned long long)(vm_ms() - t0));
	ksft_print_msg("agent VmRSS %ld kB -> %ld kB with %ld idle connections (%s): "
		       "%.0f bytes each\n", before, after, nconn,
		       !variant->greeting ? "backend silent" :
		       variant->relay_bytes ? "logged in" : "greeted, before login", per);
	EXPECT_GT(MK_IDLE_BOUND_KIB * 1024.0, per);

	for (i = 0; i < nconn; i++) {
		close(cfd[i]);
		close(bfd[i]);
	}
	closes = vm_log_wait(&self->env, "mailktlsd: close ", (int)nconn + 1, 60000);
	EXPECT_EQ(nconn + 1, closes);
	free(cfd);
	free(bfd);
}

/*
 * The 6.1 harness takes no arguments; scripts/vm-run.sh passes VM_TEST_ARGS
 * to the program, so knobs come as NAME=VALUE arguments, e.g.
 * VM_ONLY=agent_ktls_test VM_TEST_ARGS="MK_BULK_MIB=64" scripts/vm-run.sh
 */
int main(int argc, char **argv)
{
	vm_args_to_env(argc, argv);
	return test_harness_run(argc, argv);
}
