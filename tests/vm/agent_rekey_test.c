// SPDX-License-Identifier: GPL-2.0
/*
 * TLS 1.3 KeyUpdate through mailktlsd on kernel TLS (RFC 8446 §4.6.3).
 *
 * On a kernel that can rekey kTLS (6.14 and later: the VM's 7.3) every
 * connection must survive its client's KeyUpdates, both directions on kTLS
 * to the end, with the agent's own update when asked for; on one that
 * cannot (6.1, 6.12) the same client gets a clean end: internal_error, the
 * backend closed, `end=error:key_update_unsupported`, within a second.
 * Which of the two is expected is asked of the kernel the way the agent
 * asks it (mk_ktls_probe_rekey()), and checked against `mailktlsd -V`.
 *
 * The agent runs as a child (`ktls = require`), the test is the client
 * (OpenSSL, SSL_key_update()) and the backend; one variant per TLS 1.3
 * AEAD. The command-line clients (fixture rk_imap) talk IMAP to a real
 * Dovecot in the VM instead. Knobs (environment or NAME=VALUE in
 * VM_TEST_ARGS): MK_AGENT, MK_REKEY_MIB (bulk size each way, default 8),
 * MK_ONLY (tests whose name contains it).
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/resource.h>
#include <sys/socket.h>
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
#include "vm_dovecot.h"
#include "vm_records.h"
#include "vm_tls.h"

#define MK_REKEY_MIB_DEFAULT 8
#define A_INTERNAL_ERROR 80

#define MK_SKIP_UNSELECTED()							\
	do {									\
		const char *only = getenv("MK_ONLY");				\
		if (only && *only && !strstr(_metadata->name, only))		\
			SKIP(return, "not selected by MK_ONLY=%s", only);	\
	} while (0)

/*
 * The 6.1 harness runs a test's body even after its setup SKIPped (with
 * the fixture half made): a body whose setup did not finish returns.
 */
#define MK_RETURN_IF_SKIPPED(setup_done)					\
	do {									\
		if (!(setup_done))						\
			return;							\
	} while (0)

static const struct vm_env_opts rk_agent_opts = {
	.eo_tmpl = "/tmp/mk-rekey-XXXXXX",
	.eo_cn = "mailktls-rekey",
	.eo_backlog = 64,
};

/* The kernel's rekey counters (6.14 and later; absent before). */
struct rk_stat {
	long rs_rx_ok, rs_tx_ok, rs_rx_err, rs_tx_err, rs_rx_received;
};

static int rk_read_stat(struct rk_stat *st)
{
	char name[64];
	long v;
	FILE *f = fopen("/proc/net/tls_stat", "re");

	memset(st, 0, sizeof(*st));
	if (!f)
		return -errno;
	while (fscanf(f, "%63s %ld", name, &v) == 2) {
		if (!strcmp(name, "TlsRxRekeyOk"))
			st->rs_rx_ok = v;
		else if (!strcmp(name, "TlsTxRekeyOk"))
			st->rs_tx_ok = v;
		else if (!strcmp(name, "TlsRxRekeyError"))
			st->rs_rx_err = v;
		else if (!strcmp(name, "TlsTxRekeyError"))
			st->rs_tx_err = v;
		else if (!strcmp(name, "TlsRxRekeyReceived"))
			st->rs_rx_received = v;
	}
	fclose(f);
	return 0;
}

FIXTURE(rk)
{
	struct vm_env env;
	SSL_CTX *cctx;
	bool rekey;		/* the kernel can rekey kTLS */
	struct rk_stat st0;
};

FIXTURE_VARIANT(rk)
{
	const char *cipher;
};

FIXTURE_VARIANT_ADD(rk, aes128gcm)
{
	.cipher = "TLS_AES_128_GCM_SHA256",
};

FIXTURE_VARIANT_ADD(rk, aes256gcm)
{
	.cipher = "TLS_AES_256_GCM_SHA384",
};

FIXTURE_VARIANT_ADD(rk, chacha20)
{
	.cipher = "TLS_CHACHA20_POLY1305_SHA256",
};

FIXTURE_SETUP(rk)
{
	char why[256] = "";

	MK_SKIP_UNSELECTED();
	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ(0, mk_tls_keys_init());
	self->rekey = mk_ktls_probe_rekey();
	self->cctx = vm_client_ctx(TLS1_3_VERSION, variant->cipher);
	ASSERT_NE(NULL, self->cctx);
	SSL_CTX_set_keylog_callback(self->cctx, mk_tls_keylog_cb);
	ASSERT_EQ(0, vm_env_start(&self->env, &rk_agent_opts, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	ASSERT_EQ(0, rk_read_stat(&self->st0));
}

FIXTURE_TEARDOWN(rk)
{
	if (!self->cctx)
		return;
	vm_env_check_stop(_metadata, &self->env);
	if (!VM_PASSED(_metadata))
		vm_log_dump(&self->env);
	vm_env_cleanup(&self->env);
	SSL_CTX_free(self->cctx);
}

/*
 * On a kernel without rekey: internal_error, backend closed, one end line.
 * A client whose own write already met the close cannot read the alert
 * any more (@alert_readable false).
 */
static void rk_expect_clean_close(struct __test_metadata *_metadata, const struct vm_env *e,
				  struct vm_relay *r, uint64_t t0, bool alert_readable)
{
	char buf[16], end[96];
	uint64_t ms;
	int n;

	do {
		n = SSL_read(r->r_ssl, buf, sizeof(buf));
	} while (n > 0);
	ms = vm_ms() - t0;
	TH_LOG("no rekey in this kernel: closed %llu ms after the KeyUpdate, alert %d",
	       (unsigned long long)ms, r->r_alert);
	if (alert_readable)
		EXPECT_EQ(A_INTERNAL_ERROR, r->r_alert);
	EXPECT_GT(2000, ms);
	EXPECT_STREQ("error:key_update_unsupported",
		     vm_log_end(e, r->r_cport, end, sizeof(end)));
	EXPECT_EQ(0, mk_wait_eof(r->r_bfd, 5000));
}

TEST(version_says_rekey)
{
	char cmd[256], line[256], want[64];
	bool found = false;
	FILE *p;

	snprintf(want, sizeof(want), "ktls rekey: %s", mk_ktls_probe_rekey() ? "yes" : "no");
	snprintf(cmd, sizeof(cmd), "%s -V", vm_agent_path());
	p = popen(cmd, "r");
	ASSERT_NE(NULL, p);
	while (fgets(line, sizeof(line), p)) {
		TH_LOG("%s", strtok(line, "\n"));
		if (!strncmp(line, want, strlen(want)))
			found = true;
	}
	ASSERT_EQ(0, pclose(p));
	EXPECT_TRUE(found);
}

/* ------------------------------------------------------------------------ */
/* Bulk both ways, the client updating its key every MiB it sent. */

/* The client's KeyUpdates: how many, and how many asked for the agent's. */
struct rk_updates {
	int ku_sent, ku_requested;
	int ku_mode;			/* 0 not requested, 1 requested, 2 alternate */
};

/* SSL_key_update() before each MiB after the first; alternating requests. */
static void rk_client_maybe_update(SSL *ssl, struct vm_bulk_client *b)
{
	struct rk_updates *u = b->bc_arg;
	uint64_t mib = b->bc_sent >> 20;
	bool req;

	if (mib <= (uint64_t)u->ku_sent || b->bc_sent >= b->bc_total)
		return;
	req = u->ku_mode == 1 || (u->ku_mode == 2 && (u->ku_sent & 1));
	if (SSL_key_update(ssl, req ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED) !=
	    1) {
		b->bc_fail = "SSL_key_update failed";
		return;
	}
	u->ku_sent++;
	u->ku_requested += req;
}

/* The agent's KeyUpdates the client read (msg callback), counted. */
static void rk_count_cb(int write_p, int version, int content_type, const void *buf,
			size_t len, SSL *ssl, void *arg)
{
	const uint8_t *p = buf;
	int *n = arg;

	if (!write_p && content_type == SSL3_RT_HANDSHAKE && len == 5 && p[0] == 24)
		(*n)++;
}

static void rk_bulk(struct __test_metadata *_metadata, FIXTURE_DATA(rk) *self, const char *name,
		    int mode)
{
	uint64_t total = (uint64_t)vm_env_long("MK_REKEY_MIB", MK_REKEY_MIB_DEFAULT) << 20;
	struct rk_updates ku = { .ku_mode = mode };
	struct vm_bulk_client bc = { .bc_total = total, .bc_before_chunk = rk_client_maybe_update,
				     .bc_arg = &ku };
	struct vm_bulk_side sink = { .bs_total = total }, src = { .bs_total = total };
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	pthread_t tsink, tsrc;
	struct rk_stat st;
	int got_updates = 0;
	uint64_t t0, ms;
	uint8_t *pat;
	char end[96];

	MK_RETURN_IF_SKIPPED(self->cctx);
	pat = malloc(VM_PATTERN_LEN);
	ASSERT_NE(NULL, pat);
	ASSERT_EQ(1, RAND_bytes(pat, VM_PATTERN_LEN));
	bc.bc_stream = (struct vm_stream){ pat, 0 };
	src.bs_stream = (struct vm_stream){ pat, VM_PATTERN_LEN / 2 };
	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	if (!self->rekey) {
		t0 = vm_ms();
		ASSERT_EQ(1, SSL_key_update(r.r_ssl, mode ? SSL_KEY_UPDATE_REQUESTED :
							    SSL_KEY_UPDATE_NOT_REQUESTED));
		ASSERT_EQ(1, SSL_write(r.r_ssl, "x", 1));
		rk_expect_clean_close(_metadata, &self->env, &r, t0, true);
		vm_relay_close(&r);
		free(pat);
		return;
	}
	SSL_set_msg_callback(r.r_ssl, rk_count_cb);
	SSL_set_msg_callback_arg(r.r_ssl, &got_updates);
	sink.bs_fd = src.bs_fd = r.r_bfd;
	ASSERT_EQ(0, vm_set_nonblock(r.r_cfd, true));
	t0 = vm_ms();
	ASSERT_EQ(0, pthread_create(&tsink, NULL, vm_backend_sink, &sink));
	ASSERT_EQ(0, pthread_create(&tsrc, NULL, vm_backend_source, &src));
	vm_bulk_client_run(r.r_ssl, r.r_cfd, &bc);
	if (bc.bc_fail)
		shutdown(r.r_bfd, SHUT_RDWR);
	pthread_join(tsink, NULL);
	pthread_join(tsrc, NULL);
	ms = vm_ms() - t0;
	TH_LOG("%s: %llu MiB each way, %d KeyUpdates (%d requested), %d back, %llu ms",
	       name, (unsigned long long)(total >> 20), ku.ku_sent,
	       ku.ku_requested, got_updates, (unsigned long long)ms);
	ASSERT_EQ(NULL, bc.bc_fail) {
		TH_LOG("client: %s after %llu sent, %llu received, alert %d", bc.bc_fail,
		       (unsigned long long)bc.bc_sent, (unsigned long long)bc.bc_rcvd, r.r_alert);
		ERR_print_errors_fp(stderr);
	}
	EXPECT_LE(7, ku.ku_sent);
	EXPECT_EQ(total, sink.bs_done);
	EXPECT_EQ(total, bc.bc_rcvd);
	EXPECT_EQ(0, memcmp(bc.bc_md_out, sink.bs_md, 32));	/* client -> backend */
	EXPECT_EQ(0, memcmp(src.bs_md, bc.bc_md_in, 32));	/* backend -> client */
	/*
	 * The kernel counts the agent's TLS_TX changes. A request is answered
	 * before the agent's next record, and requests that arrive while its
	 * write to the client is still blocked share one answer (RFC 8446
	 * 4.6.3 asks for a KeyUpdate before the next record, not one per
	 * request): so at least one, never more than were asked. That each
	 * answer came in its place is shown by the client reading on to the
	 * end. (OpenSSL's message callback misses some of those it reads in
	 * this loop, so got_updates is only logged.)
	 */
	ASSERT_EQ(0, rk_read_stat(&st));
	EXPECT_EQ(self->st0.rs_rx_ok + ku.ku_sent, st.rs_rx_ok);
	EXPECT_GE(self->st0.rs_tx_ok + ku.ku_requested, st.rs_tx_ok);
	if (ku.ku_requested) {
		EXPECT_LT(self->st0.rs_tx_ok, st.rs_tx_ok);
	} else {
		EXPECT_EQ(self->st0.rs_tx_ok, st.rs_tx_ok);
	}
	EXPECT_EQ(self->st0.rs_rx_err, st.rs_rx_err);
	EXPECT_EQ(self->st0.rs_tx_err, st.rs_tx_err);

	ASSERT_EQ(0, vm_set_nonblock(r.r_cfd, false));
	SSL_shutdown(r.r_ssl);
	EXPECT_EQ(0, mk_wait_eof(r.r_bfd, 10000));
	close(r.r_bfd);	/* the daemon's end too: the agent logs the close */
	r.r_bfd = -1;
	EXPECT_STREQ("close_notify", vm_log_end(&self->env, r.r_cport, end, sizeof(end)));
	vm_relay_close(&r);
	free(pat);
}

TEST_F_TIMEOUT(rk, bulk_updates_not_requested, 280)
{
	rk_bulk(_metadata, self, variant->cipher, 0);
}

TEST_F_TIMEOUT(rk, bulk_updates_requested, 280)
{
	rk_bulk(_metadata, self, variant->cipher, 1);
}

TEST_F_TIMEOUT(rk, bulk_updates_alternating, 280)
{
	rk_bulk(_metadata, self, variant->cipher, 2);
}

/* Several KeyUpdates in a row, each sent alone, then data both ways. */
TEST_F(rk, several_in_a_row)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	struct rk_stat st;
	uint64_t t0;
	int i;

	MK_RETURN_IF_SKIPPED(self->cctx);
	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	t0 = vm_ms();
	for (i = 0; i < 5; i++) {
		ASSERT_EQ(1, SSL_key_update(r.r_ssl, SSL_KEY_UPDATE_NOT_REQUESTED));
		/* sends it; without rekey the agent may have closed already */
		if (SSL_do_handshake(r.r_ssl) != 1) {
			ASSERT_FALSE(self->rekey);
			break;
		}
	}
	if (!self->rekey) {
		rk_expect_clean_close(_metadata, &self->env, &r, t0, i == 5);
		vm_relay_close(&r);
		return;
	}
	ASSERT_EQ(0, vm_relay_ping(&r));
	ASSERT_EQ(0, rk_read_stat(&st));
	EXPECT_EQ(self->st0.rs_rx_ok + 5, st.rs_rx_ok);
	vm_relay_close(&r);
}

/*
 * A KeyUpdate split over two records (RFC 8446 §5.1 allows it), sealed by
 * the test under the client's keys; the kernel stops after the first
 * fragment and the agent lets it read the second. Then a record under the
 * client's next key must reach the backend.
 */
TEST_F(rk, split_across_records)
{
	static const uint8_t part1[] = { 24, 0 }, part2[] = { 0, 1, 0 };
	static const char cmd[] = "a2 NOOP\r\n";
	struct mk_tls_dir_keys tx, rx;
	struct mk_tls13_traffic tt;
	uint8_t rec[256], buf[64];
	struct mk_mc m;
	uint64_t t0;
	int bfd, n;

	MK_RETURN_IF_SKIPPED(self->cctx);
	ASSERT_EQ(0, mk_mc_relayed(&self->env, self->cctx, &m, &bfd));
	ASSERT_EQ(0, mk_tls_keys_derive(m.mc_ssl, &tx, &rx));
	ASSERT_EQ(0, mk_tls13_traffic_take(m.mc_ssl, &tt));
	tx.dk_seq = 1;	/* mk_mc_relayed sent one record */
	n = mk_seal_record(&tx, 22, part1, sizeof(part1), 0, rec, sizeof(rec));
	ASSERT_LT(0, n);
	tx.dk_seq++;
	ASSERT_TRUE(vm_send_all(m.mc_fd, rec, (size_t)n));
	usleep(100000);	/* the agent sees the first fragment alone */
	t0 = vm_ms();
	n = mk_seal_record(&tx, 22, part2, sizeof(part2), 0, rec, sizeof(rec));
	ASSERT_LT(0, n);
	ASSERT_TRUE(vm_send_all(m.mc_fd, rec, (size_t)n));
	if (!self->rekey) {
		EXPECT_GT(0, mk_mc_read(&m, buf, sizeof(buf), 10000));
		EXPECT_EQ(A_INTERNAL_ERROR, m.mc_alert);
		EXPECT_GT(2000, vm_ms() - t0);
		EXPECT_EQ(0, mk_wait_eof(bfd, 5000));
		goto out;
	}
	ASSERT_EQ(0, mk_tls13_traffic_update(&tt, true, &tx));
	n = mk_seal_record(&tx, 23, (const uint8_t *)cmd, sizeof(cmd) - 1, 0, rec, sizeof(rec));
	ASSERT_LT(0, n);
	ASSERT_TRUE(vm_send_all(m.mc_fd, rec, (size_t)n));
	ASSERT_TRUE(vm_recv_all(bfd, buf, sizeof(cmd) - 1));
	EXPECT_EQ(0, memcmp(buf, cmd, sizeof(cmd) - 1));
	/* and the other way, under the agent's unchanged key */
	ASSERT_TRUE(vm_send_all(bfd, "* OK\r\n", 6));
	EXPECT_EQ(6, mk_mc_read(&m, buf, 6, 10000));
out:
	mk_tls_dir_keys_wipe(&tx);
	mk_tls_dir_keys_wipe(&rx);
	mk_tls13_traffic_wipe(&tt);
	close(bfd);
	mk_mc_free(&m);
}

/*
 * The client's Finished, a KeyUpdate asking for ours and a command in one
 * segment: OpenSSL reads the KeyUpdate at the handover and answers it; the
 * kernel must start with the client's next key and the agent's next key.
 * Without rekey the kernel cannot take such a connection (ktls = require
 * here): it ends, never hangs.
 */
TEST_F(rk, in_finished_segment)
{
	static const char cmd[] = "a1 CAPABILITY\r\n", reply[] = "* CAPABILITY IMAP4rev1\r\n";
	uint8_t seg[4096], buf[64];
	int got_updates = 0, bfd;
	char line[512];
	struct mk_mc m;
	size_t n;

	MK_RETURN_IF_SKIPPED(self->cctx);
	ASSERT_EQ(0, mk_mc_new(&m, self->cctx, self->env.e_port));
	ASSERT_EQ(0, mk_mc_handshake(&m));
	ASSERT_EQ(1, SSL_key_update(m.mc_ssl, SSL_KEY_UPDATE_REQUESTED));
	ASSERT_EQ((int)sizeof(cmd) - 1, SSL_write(m.mc_ssl, cmd, sizeof(cmd) - 1));
	n = mk_mc_take(&m, seg, sizeof(seg));
	ASSERT_LT(5 + 5 + sizeof(cmd) - 1, n);
	ASSERT_EQ((ssize_t)n, send(m.mc_fd, seg, n, MSG_NOSIGNAL));	/* one segment */
	if (!self->rekey) {	/* the handover refuses it: no backend, a close */
		EXPECT_GE(0, mk_mc_read(&m, buf, sizeof(buf), 10000));	/* no data */
		EXPECT_TRUE(vm_log_has(&self->env, " end=error:ktls:", 10000));
		mk_mc_free(&m);
		return;
	}
	bfd = vm_backend_accept(&self->env, VM_IO_TIMEOUT_MS);
	ASSERT_LE(0, bfd);
	SSL_set_msg_callback(m.mc_ssl, rk_count_cb);
	SSL_set_msg_callback_arg(m.mc_ssl, &got_updates);
	ASSERT_TRUE(vm_recv_all(bfd, buf, sizeof(cmd) - 1));
	EXPECT_EQ(0, memcmp(buf, cmd, sizeof(cmd) - 1));
	ASSERT_TRUE(vm_send_all(bfd, reply, sizeof(reply) - 1));
	ASSERT_EQ((int)sizeof(reply) - 1, mk_mc_read(&m, buf, sizeof(reply) - 1, VM_IO_TIMEOUT_MS));
	EXPECT_EQ(0, memcmp(buf, reply, sizeof(reply) - 1));
	EXPECT_EQ(1, got_updates);
	/* the client goes on under its next key: a second command */
	ASSERT_EQ((int)sizeof(cmd) - 1, SSL_write(m.mc_ssl, cmd, sizeof(cmd) - 1));
	ASSERT_TRUE(mk_mc_flush(&m));
	ASSERT_TRUE(vm_recv_all(bfd, buf, sizeof(cmd) - 1));
	ASSERT_EQ(0, vm_log_line(&self->env, "tls", m.mc_cport, line, sizeof(line), 5000));
	EXPECT_NE(NULL, strstr(line, " ktls=tx,rx")) TH_LOG("%s", line);
	close(bfd);
	mk_mc_free(&m);
}

/*
 * More than 100 KeyUpdates in a second: closed, with a log line. The test
 * seals MK_RATE_BURST of them, each under the key the one before it set,
 * and sends them in one write: the agent reads them as fast as it can.
 */
#define MK_RATE_BURST 400

TEST_F(rk, rate_limit)
{
	static const uint8_t ku[] = { 24, 0, 0, 1, 0 };
	struct mk_tls_dir_keys tx, rx;
	struct mk_tls13_traffic tt;
	uint8_t *burst, buf[64];
	size_t off = 0;
	struct mk_mc m;
	char end[96];
	int bfd, i, n;

	MK_RETURN_IF_SKIPPED(self->cctx);
	burst = malloc(MK_RATE_BURST * 64);
	ASSERT_NE(NULL, burst);
	ASSERT_EQ(0, mk_mc_relayed(&self->env, self->cctx, &m, &bfd));
	ASSERT_EQ(0, mk_tls_keys_derive(m.mc_ssl, &tx, &rx));
	ASSERT_EQ(0, mk_tls13_traffic_take(m.mc_ssl, &tt));
	tx.dk_seq = 1;	/* mk_mc_relayed sent one record */
	for (i = 0; i < MK_RATE_BURST; i++) {
		n = mk_seal_record(&tx, 22, ku, sizeof(ku), 0, burst + off, 64);
		ASSERT_LT(0, n);
		off += (size_t)n;
		ASSERT_EQ(0, mk_tls13_traffic_update(&tt, true, &tx));
	}
	ASSERT_TRUE(vm_send_all(m.mc_fd, burst, off));
	EXPECT_GT(0, mk_mc_read(&m, buf, sizeof(buf), 20000));
	EXPECT_EQ(0, mk_wait_eof(bfd, 5000));
	if (self->rekey) {
		EXPECT_STREQ("error:key_update_rate",
			     vm_log_end(&self->env, m.mc_cport, end, sizeof(end)));
		EXPECT_TRUE(vm_log_has(&self->env, "more than 100 KeyUpdates in a second", 1000));
	} else {
		EXPECT_STREQ("error:key_update_unsupported",
			     vm_log_end(&self->env, m.mc_cport, end, sizeof(end)));
	}
	mk_tls_dir_keys_wipe(&tx);
	mk_tls_dir_keys_wipe(&rx);
	mk_tls13_traffic_wipe(&tt);
	close(bfd);
	mk_mc_free(&m);
	free(burst);
}

/* ------------------------------------------------------------------------ */
/*
 * Real clients to a real Dovecot through the agent: the command-line
 * clients' own KeyUpdate commands between IMAP commands, each answered by
 * Dovecot (vm_dovecot.h) in the VM. Only these tests start Dovecot.
 */

FIXTURE(rk_imap)
{
	struct vm_env env;
	struct vm_dovecot dc;
	bool started;		/* setup ran to the end (not skipped) */
	bool rekey;
	struct rk_stat st0;
	char out[128];		/* the client's stdout and stderr */
};

FIXTURE_VARIANT(rk_imap)
{
	const char *cipher;
};

FIXTURE_VARIANT_ADD(rk_imap, aes128gcm)
{
	.cipher = "TLS_AES_128_GCM_SHA256",
};

FIXTURE_VARIANT_ADD(rk_imap, aes256gcm)
{
	.cipher = "TLS_AES_256_GCM_SHA384",
};

FIXTURE_VARIANT_ADD(rk_imap, chacha20)
{
	.cipher = "TLS_CHACHA20_POLY1305_SHA256",
};

FIXTURE_SETUP(rk_imap)
{
	struct vm_env_opts o = rk_agent_opts;
	char why[256] = "";

	MK_SKIP_UNSELECTED();
	signal(SIGPIPE, SIG_IGN);
	self->rekey = mk_ktls_probe_rekey();
	ASSERT_EQ(0, vm_dovecot_start(&self->dc, why, sizeof(why))) {
		TH_LOG("%s", why);
		vm_dovecot_log_dump(&self->dc);
	}
	o.eo_backend_port = self->dc.d_port;
	ASSERT_EQ(0, vm_env_start(&self->env, &o, why, sizeof(why))) {
		TH_LOG("%s", why);
		vm_dovecot_stop(&self->dc);
	}
	ASSERT_EQ(0, rk_read_stat(&self->st0));
	snprintf(self->out, sizeof(self->out), "%s/client.out", self->dc.d_dir);
	self->started = true;
}

FIXTURE_TEARDOWN(rk_imap)
{
	if (!self->started)
		return;
	vm_env_check_stop(_metadata, &self->env);
	vm_dovecot_stop(&self->dc);
	if (!VM_PASSED(_metadata)) {
		vm_log_dump(&self->env);
		vm_dovecot_log_dump(&self->dc);
		vm_file_dump(self->out, "client");
	}
	vm_env_cleanup(&self->env);
	vm_dovecot_cleanup(&self->dc);
}

/* A line to the client's stdin (the clients read commands by line). */
static void rk_cli_send(FILE *p, const char *line)
{
	fputs(line, p);
	fflush(p);
}

/*
 * Dovecot's tagged answer to @tag in the client's output. Under TCG a
 * LOGIN (auth, then a new imap process and its Maildir) takes seconds.
 */
static bool rk_cli_answered(FIXTURE_DATA(rk_imap) *self, const char *tag)
{
	char needle[32];

	snprintf(needle, sizeof(needle), "\n%s OK ", tag);
	return vm_file_wait(self->out, needle, 1, 30000) >= 1;
}

/*
 * A command-line client started as @cmd (stdin a pipe, stdout to
 * self->out) logs in to Dovecot through the agent: a1 LOGIN, @update1,
 * a2 SELECT INBOX, @update2, a3 NOOP, a4 LOGOUT, each command after the
 * answer to the one before it; of the two KeyUpdate commands one asks for
 * the agent's. On a kernel that can rekey every command gets Dovecot's
 * OK back through the agent and the kernel's counters show two RX and one
 * TX key change; on one that cannot, a1 is answered, then the clean close.
 */
static void rk_cli_dialogue(struct __test_metadata *_metadata, FIXTURE_DATA(rk_imap) *self,
			    const char *cmd, const char *update1, const char *update2)
{
	struct rk_stat st;
	char *out;
	int status;
	FILE *p;

	p = popen(cmd, "w");
	ASSERT_NE(NULL, p);
	ASSERT_TRUE(vm_file_wait(self->out, "\n* OK [CAPABILITY ", 1, 30000) >= 1);	/* the greeting */
	rk_cli_send(p, "a1 LOGIN mk " VM_DOVECOT_PASS "\n");
	ASSERT_TRUE(rk_cli_answered(self, "a1"));
	rk_cli_send(p, update1);
	usleep(300000);	/* the update alone, before the next line */
	rk_cli_send(p, "a2 SELECT INBOX\n");
	if (!self->rekey) {
		TH_LOG("no rekey in this kernel: a1 answered, then the close");
		EXPECT_TRUE(vm_log_has(&self->env, " end=error:key_update_unsupported", 10000));
		out = vm_file_read(self->out);
		EXPECT_EQ(NULL, out ? strstr(out, "\na2 OK ") : NULL);
		free(out);
		goto out_close;
	}
	ASSERT_TRUE(rk_cli_answered(self, "a2"));
	rk_cli_send(p, update2);
	usleep(300000);
	rk_cli_send(p, "a3 NOOP\n");
	ASSERT_TRUE(rk_cli_answered(self, "a3"));
	ASSERT_EQ(0, rk_read_stat(&st));
	TH_LOG("a1 LOGIN, a2 SELECT, a3 NOOP answered across two KeyUpdates; "
	       "kernel key changes: %ld RX, %ld TX", st.rs_rx_ok - self->st0.rs_rx_ok,
	       st.rs_tx_ok - self->st0.rs_tx_ok);
	EXPECT_EQ(self->st0.rs_rx_ok + 2, st.rs_rx_ok);
	EXPECT_EQ(self->st0.rs_tx_ok + 1, st.rs_tx_ok);
	EXPECT_EQ(self->st0.rs_rx_err, st.rs_rx_err);
	EXPECT_EQ(self->st0.rs_tx_err, st.rs_tx_err);
	rk_cli_send(p, "a4 LOGOUT\n");	/* Dovecot answers, then closes */
	EXPECT_TRUE(rk_cli_answered(self, "a4"));
	EXPECT_TRUE(vm_log_has(&self->env, " end=", 10000));
	EXPECT_FALSE(vm_log_has(&self->env, " end=error", 0));
out_close:
	status = pclose(p);
	TH_LOG("client exit status %d", WEXITSTATUS(status));
}

/*
 * A real client: `openssl s_client`, whose `K` line sends a KeyUpdate
 * asking for ours and `k` one that does not, between commands (it takes
 * these command letters only without -ign_eof and -quiet).
 */
TEST_F_TIMEOUT(rk_imap, openssl_s_client_K_and_k, 180)
{
	char cmd[512];

	MK_RETURN_IF_SKIPPED(self->started);
	snprintf(cmd, sizeof(cmd), "exec timeout 120 openssl s_client -connect 127.0.0.1:%d "
		 "-tls1_3 -ciphersuites %s >%s 2>&1", self->env.e_port, variant->cipher,
		 self->out);
	rk_cli_dialogue(_metadata, self, cmd, "K\n", "k\n");
}

/*
 * Another TLS library: gnutls-cli's inline commands `^rekey1^` (a
 * KeyUpdate for its own key) and `^rekey^` (asking for ours too).
 */
static const char *rk_gnutls_cipher(const char *openssl_name)
{
	if (strstr(openssl_name, "AES_128"))
		return "AES-128-GCM";
	if (strstr(openssl_name, "AES_256"))
		return "AES-256-GCM";
	return "CHACHA20-POLY1305";
}

TEST_F_TIMEOUT(rk_imap, gnutls_cli_rekey, 180)
{
	char cmd[512];

	MK_RETURN_IF_SKIPPED(self->started);
	snprintf(cmd, sizeof(cmd), "exec timeout 120 gnutls-cli --insecure --inline-commands "
		 "--priority NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+%s --port %d 127.0.0.1 "
		 ">%s 2>&1", rk_gnutls_cipher(variant->cipher), self->env.e_port, self->out);
	rk_cli_dialogue(_metadata, self, cmd, "^rekey1^\n", "^rekey^\n");
}

/* CPU time the agent's threads have had, in ns (schedstat, first field). */
static long long rk_agent_cpu_ns(pid_t pid)
{
	char path[96], name[64];
	long long sum = 0, v;
	struct dirent *de;
	DIR *d;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(name, sizeof(name), "%.16s", de->d_name);
		snprintf(path, sizeof(path), "/proc/%d/task/%s/schedstat", (int)pid, name);
		f = fopen(path, "re");
		if (f && fscanf(f, "%lld", &v) == 1)
			sum += v;
		if (f)
			fclose(f);
	}
	closedir(d);
	return sum;
}

#define MK_CPU_ROUNDS 80
#define MK_CPU_GAP_US 20000	/* 50 a second, under the rate limit */

/* @rounds one-byte records, each after a KeyUpdate if @update; agent ns per round. */
static long long rk_cpu_rounds(struct __test_metadata *_metadata, FIXTURE_DATA(rk) *self,
			       struct vm_relay *r, bool update)
{
	long long t0, t1;
	char c;
	int i;

	t0 = rk_agent_cpu_ns(self->env.e_pid);
	for (i = 0; i < MK_CPU_ROUNDS; i++) {
		if (update && SSL_key_update(r->r_ssl, SSL_KEY_UPDATE_NOT_REQUESTED) != 1)
			return -1;
		if (SSL_write(r->r_ssl, "x", 1) != 1 || !vm_recv_all(r->r_bfd, &c, 1))
			return -1;
		usleep(MK_CPU_GAP_US);
	}
	t1 = rk_agent_cpu_ns(self->env.e_pid);
	return t0 < 0 || t1 < 0 ? -1 : (t1 - t0) / MK_CPU_ROUNDS;
}

/*
 * The cost of a rekey to the agent: CPU per one-byte record, then per
 * KeyUpdate plus one-byte record, in one run (TCG: only the ratio means
 * anything).
 */
TEST_F(rk, cpu_per_key_update)
{
	struct vm_relay r = { .r_cfd = -1, .r_bfd = -1 };
	long long plain, upd;

	MK_RETURN_IF_SKIPPED(self->cctx);
	if (!self->rekey)
		SKIP(return, "this kernel cannot rekey");
	ASSERT_EQ(0, vm_relay_open(&self->env, self->cctx, &r));
	ASSERT_EQ(0, vm_relay_ping(&r));
	plain = rk_cpu_rounds(_metadata, self, &r, false);
	upd = rk_cpu_rounds(_metadata, self, &r, true);
	ASSERT_LT(0, plain);
	ASSERT_LT(0, upd);
	TH_LOG("%s: agent CPU per plain record %lld us, per KeyUpdate + record %lld us: "
	       "a KeyUpdate costs %lld us more (%.1fx a record)", variant->cipher,
	       plain / 1000, upd / 1000, (upd - plain) / 1000, (double)upd / (double)plain);
	EXPECT_EQ(0, vm_relay_ping(&r));
	vm_relay_close(&r);
}

/* The 6.1 harness takes no arguments: NAME=VALUE become environment. */
int main(int argc, char **argv)
{
	vm_args_to_env(argc, argv);
	return test_harness_run(argc, argv);
}
