// SPDX-License-Identifier: GPL-2.0
/*
 * The query path end to end on kernel TLS: an OpenSSL client -> the real
 * agent (`ktls = require`) -> a backend played by the test, over loopback
 * TCP or a unix socket. The backend asks libmailktls about its accepted
 * socket, as a mail daemon would, and must learn the TLS version, the IANA
 * cipher name, SNI and ALPN the client negotiated, from mailktls.ko. Then
 * `mailktlsctl received|query|status` must say the same, and once the
 * connection is over the tag must be gone within the module's GC interval.
 *
 * One variant per TLS version x cipher x backend kind; some run the agent
 * without a query socket, so that only the module can answer at all.
 *
 * Knobs (environment): MK_AGENT (default agent/mailktlsd), MK_CTL (default
 * agent/mailktlsctl); the VM's /mk is the cwd.
 *
 * Runs in the VM (scripts/vm-run.sh): needs kTLS and mailktls.ko loaded.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kselftest_harness.h"

#include "kmod_util.h"
#include "vm_agent.h"
#include "vm_tls.h"

#define MQ_GC_SLACK_MS 3000	/* TCG is slow; the GC interval is the promise */
#define MQ_GREETING "* OK ready\r\n"
#define MQ_CMD "a1 NOOP\r\n"
#define MQ_SNI "mail.example.test"
#define MQ_ALPN "imap"
#define MQ_OUT_MAX 8192

/* ------------------------------------------------------------------------ */
/* One relayed connection: the client's SSL and the backend's socket. */

struct mq_conn {
	SSL *c_ssl;
	int c_cfd;
	int c_bfd;
	int c_cport;		/* the client's local port: its address at the agent */
	char c_client[32];	/* "127.0.0.1:<c_cport>" */
};

static SSL_CTX *mq_client_ctx(int version, const char *cipher)
{
	static const unsigned char alpn[] = "\x04" MQ_ALPN;
	SSL_CTX *ctx = vm_client_ctx(version, cipher);

	if (ctx && SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1)) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/*
 * Connect through the agent: handshake, the backend's greeting to the
 * client and one command back, so the relay is running (the agent tags its
 * sockets before it starts relaying). Return: NULL or what failed.
 */
static const char *mq_conn_open(const struct vm_env *e, SSL_CTX *ctx, struct mq_conn *c)
{
	char buf[64];

	c->c_ssl = NULL;
	c->c_bfd = -1;
	c->c_cfd = vm_connect(e->e_port, &c->c_cport);
	if (c->c_cfd < 0)
		return "connect to the agent";
	snprintf(c->c_client, sizeof(c->c_client), "127.0.0.1:%d", c->c_cport);
	c->c_ssl = SSL_new(ctx);
	if (!c->c_ssl || !SSL_set_fd(c->c_ssl, c->c_cfd) ||
	    !SSL_set_tlsext_host_name(c->c_ssl, MQ_SNI) || SSL_connect(c->c_ssl) != 1)
		return "TLS handshake";
	c->c_bfd = vm_backend_accept(e, VM_IO_TIMEOUT_MS);
	if (c->c_bfd < 0)
		return "the agent did not connect to the backend";
	if (!vm_send_all(c->c_bfd, MQ_GREETING, strlen(MQ_GREETING)) ||
	    SSL_read(c->c_ssl, buf, (int)strlen(MQ_GREETING)) != (int)strlen(MQ_GREETING) ||
	    memcmp(buf, MQ_GREETING, strlen(MQ_GREETING)))
		return "greeting backend -> client";
	if (SSL_write(c->c_ssl, MQ_CMD, (int)strlen(MQ_CMD)) != (int)strlen(MQ_CMD) ||
	    !vm_recv_all(c->c_bfd, buf, strlen(MQ_CMD)) || memcmp(buf, MQ_CMD, strlen(MQ_CMD)))
		return "command client -> backend";
	return NULL;
}

static void mq_conn_close(struct mq_conn *c)
{
	SSL_free(c->c_ssl);
	c->c_ssl = NULL;
	if (c->c_cfd >= 0)
		close(c->c_cfd);
	if (c->c_bfd >= 0)
		close(c->c_bfd);
	c->c_cfd = c->c_bfd = -1;
}

/*
 * End the connection as client and daemon do: close_notify from the client,
 * which reaches the backend as EOF; the backend then ends its side. The
 * backend keeps its fd open, so that a query on it can still be asked.
 * Return: 0 when the agent closed the client (the connection is over).
 */
static int mq_conn_end(struct mq_conn *c)
{
	char buf[64];

	SSL_shutdown(c->c_ssl);
	if (recv(c->c_bfd, buf, sizeof(buf), 0) != 0)
		return -1;
	shutdown(c->c_bfd, SHUT_WR);
	/* the agent's close_notify, then EOF */
	if (SSL_read(c->c_ssl, buf, sizeof(buf)) > 0)
		return -1;
	return recv(c->c_cfd, buf, sizeof(buf), 0) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* mailktlsctl as a subprocess. */

/*
 * Run mailktlsctl with @args (NULL-terminated, after the -s option) and
 * collect its stdout and stderr into @out. Return: its exit status, or -1.
 */
static int mq_ctl(const struct vm_env *e, const char *const *args, char *out, size_t len)
{
	const char *argv[12] = { "mailktlsctl", "-s", e->e_qsock };
	size_t n = 3, got = 0;
	int pfd[2], status;
	ssize_t r;
	pid_t pid;

	while (*args && n < ARRAY_SIZE(argv) - 1)
		argv[n++] = *args++;
	argv[n] = NULL;
	out[0] = '\0';
	if (pipe2(pfd, O_CLOEXEC))
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		execv(getenv("MK_CTL") ?: "agent/mailktlsctl", (char *const *)argv);
		_exit(127);
	}
	close(pfd[1]);
	while (pid > 0 && got < len - 1 && (r = read(pfd[0], out + got, len - 1 - got)) > 0)
		got += (size_t)r;
	out[got] = '\0';
	close(pfd[0]);
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Does @text have the line @line (without its "\n")? */
static bool mq_has_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p;

	for (p = text; (p = strstr(p, line)); p += n)
		if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

static unsigned int mq_gc_interval_ms(void)
{
	unsigned int ms = 0;
	FILE *f = fopen("/sys/module/mailktls/parameters/gc_interval_ms", "re");

	if (f) {
		if (fscanf(f, "%u", &ms) != 1)
			ms = 0;
		fclose(f);
	}
	return ms;
}

/* ------------------------------------------------------------------------ */

FIXTURE(query)
{
	struct vm_env env;
	SSL_CTX *cctx;
	struct mq_conn conn;
	long long live0;	/* the module's live tags before the connection */
};

FIXTURE_VARIANT(query)
{
	int version;
	const char *cipher;	/* OpenSSL's name for the client's config */
	const char *iana;	/* what must come back */
	bool unix_backend;
	bool qsock;		/* agent with a query socket (else only the module knows) */
};

FIXTURE_VARIANT_ADD(query, tls13_aes128gcm_tcp)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_AES_128_GCM_SHA256",
	.iana = "TLS_AES_128_GCM_SHA256",
	.qsock = true,
};

FIXTURE_VARIANT_ADD(query, tls13_aes256gcm_unix)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_AES_256_GCM_SHA384",
	.iana = "TLS_AES_256_GCM_SHA384",
	.unix_backend = true,
	.qsock = true,
};

FIXTURE_VARIANT_ADD(query, tls13_chacha20_tcp_no_query_socket)
{
	.version = TLS1_3_VERSION,
	.cipher = "TLS_CHACHA20_POLY1305_SHA256",
	.iana = "TLS_CHACHA20_POLY1305_SHA256",
};

FIXTURE_VARIANT_ADD(query, tls12_aes128gcm_unix)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-AES128-GCM-SHA256",
	.iana = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
	.unix_backend = true,
	.qsock = true,
};

FIXTURE_VARIANT_ADD(query, tls12_aes256gcm_tcp)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-AES256-GCM-SHA384",
	.iana = "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
	.qsock = true,
};

FIXTURE_VARIANT_ADD(query, tls12_chacha20_unix_no_query_socket)
{
	.version = TLS1_2_VERSION,
	.cipher = "ECDHE-ECDSA-CHACHA20-POLY1305",
	.iana = "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
	.unix_backend = true,
};

FIXTURE_SETUP(query)
{
	const struct vm_env_opts opts = {
		.eo_tmpl = "/tmp/mk-query-XXXXXX",
		.eo_cn = MQ_SNI,
		.eo_backlog = 16,
		.eo_unix_backend = variant->unix_backend,
		.eo_qsock = variant->qsock,
	};
	char why[256] = "";
	const char *fail;

	signal(SIGPIPE, SIG_IGN);
	self->conn.c_cfd = self->conn.c_bfd = -1;
	self->env.e_pid = -1;
	self->env.e_blfd = -1;
	ASSERT_EQ(0, access("/proc/net/mailktls", R_OK)) {
		TH_LOG("mailktls.ko is not loaded (make module, then scripts/vm-run.sh)");
	}
	self->cctx = mq_client_ctx(variant->version, variant->cipher);
	ASSERT_NE(NULL, self->cctx);
	ASSERT_EQ(0, vm_env_start(&self->env, &opts, why, sizeof(why))) {
		TH_LOG("%s", why);
	}
	/* the library's fallback: this agent's socket, never a system one */
	setenv(MAILKTLS_QUERY_ENV, self->env.e_qsock, 1);
	self->live0 = km_proc("tags_live");
	fail = mq_conn_open(&self->env, self->cctx, &self->conn);
	ASSERT_EQ(NULL, fail) {
		TH_LOG("%s failed", fail);
		ERR_print_errors_fp(stderr);
		vm_log_dump(&self->env);
	}
}

FIXTURE_TEARDOWN(query)
{
	mq_conn_close(&self->conn);
	vm_env_check_stop(_metadata, &self->env);
	if (!VM_PASSED(_metadata))
		vm_log_dump(&self->env);
	vm_env_cleanup(&self->env);
	SSL_CTX_free(self->cctx);
}

/* What the client negotiated, in IANA terms, is what the variant asked for. */
static void mq_check_negotiated(struct __test_metadata *_metadata, SSL *ssl,
				const FIXTURE_VARIANT(query) *variant)
{
	const SSL_CIPHER *ciph = SSL_get_current_cipher(ssl);

	ASSERT_NE(NULL, ciph);
	ASSERT_EQ(variant->version, SSL_version(ssl));
	ASSERT_STREQ(variant->iana, SSL_CIPHER_standard_name(ciph));
}

/*
 * The daemon's view: mailktls_query_fd() on the accepted backend socket
 * answers from the module with what the client negotiated.
 */
TEST_F(query, daemon_learns_client_tls_from_module)
{
	const SSL_CIPHER *ciph = SSL_get_current_cipher(self->conn.c_ssl);
	struct mailktls_info mi;
	char clause[96], want[96], client[64] = "";

	mq_check_negotiated(_metadata, self->conn.c_ssl, variant);
	memset(&mi, 0xa5, sizeof(mi));
	ASSERT_EQ(0, mailktls_query_fd(self->conn.c_bfd, &mi));
	EXPECT_EQ(MAILKTLS_FROM_MODULE, mi.mi_source);
	EXPECT_TRUE(mi.mi_peer);	/* the agent's backend socket carries the tag */
	EXPECT_EQ(SSL_version(self->conn.c_ssl), mi.mi_version);
	EXPECT_STREQ(SSL_get_version(self->conn.c_ssl), mailktls_version_name(mi.mi_version));
	EXPECT_EQ(SSL_CIPHER_get_protocol_id(ciph), mi.mi_cipher_id);
	EXPECT_STREQ(SSL_CIPHER_standard_name(ciph), mi.mi_cipher);
	EXPECT_EQ(MAILKTLS_INFO_KTLS_TX | MAILKTLS_INFO_KTLS_RX, mi.mi_ktls);
	EXPECT_STREQ(MQ_SNI, mi.mi_sni);
	EXPECT_STREQ(MQ_ALPN, mi.mi_alpn);
	EXPECT_STREQ("t", mi.mi_listener);
	mk_addr_format((const struct sockaddr *)&mi.mi_client, client, sizeof(client));
	EXPECT_STREQ(self->conn.c_client, client);

	snprintf(want, sizeof(want), "tls %s", variant->iana);
	EXPECT_EQ((int)strlen(want), mailktls_received_clause(&mi, clause, sizeof(clause)));
	EXPECT_STREQ(want, clause);

	/* the client's address, as the MTA's Received header would ask */
	memset(&mi, 0, sizeof(mi));
	ASSERT_EQ(0, mailktls_query_addr((const struct sockaddr *)&(struct sockaddr_in){
		.sin_family = AF_INET, .sin_port = htons(self->conn.c_cport),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) }, sizeof(struct sockaddr_in), &mi));
	EXPECT_EQ(MAILKTLS_FROM_MODULE, mi.mi_source);
	EXPECT_STREQ(variant->iana, mi.mi_cipher);

	/* both of the agent's sockets are tagged */
	EXPECT_EQ(self->live0 + 2, km_proc("tags_live"));
}

/* mailktlsctl says the same, for shells and MTA configs. */
TEST_F(query, mailktlsctl_received_query_status)
{
	const char *received[] = { "received", "--addr", self->conn.c_client, NULL };
	const char *query[] = { "query", "--addr", self->conn.c_client, NULL };
	static const char *const status[] = { "status", NULL };
	char out[MQ_OUT_MAX], want[128];

	mq_check_negotiated(_metadata, self->conn.c_ssl, variant);
	ASSERT_EQ(0, mq_ctl(&self->env, received, out, sizeof(out))) {
		TH_LOG("mailktlsctl received: %s", out);
	}
	snprintf(want, sizeof(want), "tls %s\n", variant->iana);
	EXPECT_STREQ(want, out);

	ASSERT_EQ(0, mq_ctl(&self->env, query, out, sizeof(out))) {
		TH_LOG("mailktlsctl query: %s", out);
	}
	snprintf(want, sizeof(want), "cipher=%s", variant->iana);
	EXPECT_TRUE(mq_has_line(out, want));
	EXPECT_TRUE(mq_has_line(out, "source=module"));
	EXPECT_TRUE(mq_has_line(out, variant->version == TLS1_3_VERSION ? "version=TLSv1.3" :
							 "version=TLSv1.2"));
	EXPECT_TRUE(mq_has_line(out, "sni=" MQ_SNI));
	EXPECT_TRUE(mq_has_line(out, "alpn=" MQ_ALPN));
	EXPECT_TRUE(mq_has_line(out, "ktls=tx,rx"));
	snprintf(want, sizeof(want), "client=%s", self->conn.c_client);
	EXPECT_TRUE(mq_has_line(out, want));
	if (!VM_PASSED(_metadata))
		TH_LOG("mailktlsctl query printed:\n%s", out);

	if (!variant->qsock) {
		/* the listeners and counts are the agent's to tell */
		EXPECT_EQ(1, mq_ctl(&self->env, status, out, sizeof(out))) {
			TH_LOG("mailktlsctl status without a query socket: %s", out);
		}
		return;
	}
	ASSERT_EQ(0, mq_ctl(&self->env, status, out, sizeof(out))) {
		TH_LOG("mailktlsctl status: %s", out);
	}
	snprintf(want, sizeof(want), "listener=t 127.0.0.1:%d imap implicit", self->env.e_port);
	EXPECT_TRUE(mq_has_line(out, want));
	EXPECT_TRUE(mq_has_line(out, "listeners=1"));
	EXPECT_TRUE(mq_has_line(out, "connections=1"));
	EXPECT_TRUE(mq_has_line(out, "ktls_txrx=1"));
	EXPECT_TRUE(mq_has_line(out, "module=yes"));
	EXPECT_TRUE(mq_has_line(out, "# /proc/net/mailktls"));
	if (!VM_PASSED(_metadata))
		TH_LOG("mailktlsctl status printed:\n%s", out);
}

/*
 * A daemon's fd whose connection is over: -ENOENT, or for TCP -ENOTCONN
 * (both ends closed, the socket has no peer left to look up).
 */
static bool mq_fd_gone(int err)
{
	return err == -ENOENT || err == -ENOTCONN;
}

/*
 * Once the connection is over the answers stop at once, and the module
 * frees the tags within its GC interval.
 */
TEST_F(query, tag_gone_after_close)
{
	const char *received[] = { "received", "--addr", self->conn.c_client, NULL };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(self->conn.c_cport),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned int gc_ms = mq_gc_interval_ms();
	struct mailktls_info mi;
	int efd = -1, eaddr = -1;
	char out[MQ_OUT_MAX];
	uint64_t t0, ms;

	ASSERT_LT(0, gc_ms);
	ASSERT_EQ(0, mailktls_query_fd(self->conn.c_bfd, &mi));
	ASSERT_EQ(0, mq_conn_end(&self->conn));
	t0 = vm_ms();
	do {
		efd = mailktls_query_fd(self->conn.c_bfd, &mi);
		eaddr = mailktls_query_addr((struct sockaddr *)&sin, sizeof(sin), &mi);
		if (mq_fd_gone(efd) && eaddr == -ENOENT)
			break;
		usleep(20000);
	} while (vm_ms() - t0 < gc_ms + MQ_GC_SLACK_MS);
	EXPECT_TRUE(mq_fd_gone(efd)) {
		TH_LOG("mailktls_query_fd() on the backend socket: %d", efd);
	}
	EXPECT_EQ(-ENOENT, eaddr);
	EXPECT_EQ(1, mq_ctl(&self->env, received, out, sizeof(out))) {
		TH_LOG("mailktlsctl received after close: %s", out);
	}
	/* freed, not only dead */
	while ((km_proc("tags_live") != self->live0 || km_proc("tags_pending_free") != 0) &&
	       vm_ms() - t0 < gc_ms + MQ_GC_SLACK_MS)
		usleep(20000);
	ms = vm_ms() - t0;
	EXPECT_EQ(self->live0, km_proc("tags_live"));
	EXPECT_EQ(0, km_proc("tags_pending_free"));
	TH_LOG("tags gone %llu ms after the close (gc_interval_ms %u)", (unsigned long long)ms,
	       gc_ms);
	EXPECT_TRUE(vm_log_has(&self->env, "mailktlsd: close listener=t client=", 5000));
}

TEST_HARNESS_MAIN
