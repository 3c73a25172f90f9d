// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls.ko commands and permissions: TAG/UNTAG/GET/GET_ADDR/DUMP, peer
 * resolution over loopback TCP (IPv4, IPv6) and AF_UNIX, who may do what,
 * network namespaces, /proc/net/mailktls, and the agent's registry tagging
 * (a worker's: its own socket, no waiting, refusals read later and counted).
 */
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "kmod_util.h"
#include "registry.h"
#include "registry_tag.h"

static const struct km_tag tag13 = {
	.version = 0x0304, .cipher_id = 0x1302, .cipher = "TLS_AES_256_GCM_SHA384",
	.client = "203.0.113.9:51234", .listener = "imaps",
};

FIXTURE(mod) {
	struct mk_genl g;
};

FIXTURE_SETUP(mod)
{
	if (!km_module_loaded())
		SKIP(return, "mailktls.ko not loaded");
	/* Answers must come from the module, never from a query socket. */
	setenv(MAILKTLS_QUERY_ENV, "/nonexistent/query.sock", 1);
	ASSERT_EQ(0, mk_genl_open(&self->g));
}

FIXTURE_TEARDOWN(mod)
{
	mk_genl_close(&self->g);
}

TEST_F(mod, tag_then_get_own_socket)
{
	struct mailktls_info mi;
	char clause[64];
	int a, d;

	ASSERT_EQ(0, km_tcp_pair(AF_INET, &a, &d));
	EXPECT_EQ(-ENOENT, mailktls_query_fd(a, &mi));
	ASSERT_EQ(0, km_tag_fd(&self->g, a, &tag13));
	ASSERT_EQ(0, mailktls_query_fd(a, &mi));
	EXPECT_EQ(MAILKTLS_FROM_MODULE, mi.mi_source);
	EXPECT_FALSE(mi.mi_peer);
	EXPECT_EQ(0x0304, mi.mi_version);
	EXPECT_EQ(0x1302, mi.mi_cipher_id);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", mi.mi_cipher);
	EXPECT_STREQ("imaps", mi.mi_listener);
	EXPECT_EQ(MAILKTLS_INFO_KTLS_TX | MAILKTLS_INFO_KTLS_RX, mi.mi_ktls);
	EXPECT_EQ(AF_INET, mi.mi_client.ss_family);
	EXPECT_EQ(htons(51234), ((struct sockaddr_in *)&mi.mi_client)->sin_port);
	ASSERT_LT(0, mailktls_received_clause(&mi, clause, sizeof(clause)));
	EXPECT_STREQ("tls TLS_AES_256_GCM_SHA384", clause);
	close(a);
	close(d);
}

TEST_F(mod, retag_replaces_and_untag_removes)
{
	struct km_tag t12 = { .version = 0x0303, .cipher_id = 0xc02f,
			      .cipher = "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" };
	struct mailktls_info mi;
	int a, d;

	ASSERT_EQ(0, km_tcp_pair(AF_INET, &a, &d));
	ASSERT_EQ(0, km_tag_fd(&self->g, a, &tag13));
	ASSERT_EQ(0, km_tag_fd(&self->g, a, &t12));
	ASSERT_EQ(0, mailktls_query_fd(a, &mi));
	EXPECT_EQ(0x0303, mi.mi_version);
	EXPECT_STREQ("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", mi.mi_cipher);
	EXPECT_EQ(1, km_dump_count(&self->g));
	EXPECT_EQ(0, km_untag_fd(&self->g, a));
	EXPECT_EQ(-ENOENT, km_untag_fd(&self->g, a));
	EXPECT_EQ(-ENOENT, mailktls_query_fd(a, &mi));
	EXPECT_EQ(0, km_dump_count(&self->g));
	close(a);
	close(d);
}

TEST_F(mod, tag_refuses_bad_input)
{
	struct km_tag nover = { .cipher_id = 0x1301 };
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh;
	int u, a, d;

	u = socket(AF_INET, SOCK_DGRAM, 0);
	ASSERT_LE(0, u);
	EXPECT_EQ(-EPROTONOSUPPORT, km_tag_fd(&self->g, u, &tag13));
	close(u);
	EXPECT_EQ(-EBADF, km_tag_fd(&self->g, 1000, &tag13));
	u = open("/proc/self/status", O_RDONLY);
	EXPECT_EQ(-ENOTSOCK, km_tag_fd(&self->g, u, &tag13));
	close(u);

	ASSERT_EQ(0, km_tcp_pair(AF_INET, &a, &d));
	/* TLS version and cipher number are required. */
	nlh = mk_genl_cmd(&self->g, buf, MAILKTLS_CMD_TAG, 0);
	mnl_attr_put_u32(nlh, MAILKTLS_A_FD, a);
	mnl_attr_put_u16(nlh, MAILKTLS_A_CIPHER_ID, nover.cipher_id);
	EXPECT_EQ(-EINVAL, mk_genl_talk(&self->g, nlh, NULL, NULL));
	/* Oversized string. */
	nlh = mk_genl_cmd(&self->g, buf, MAILKTLS_CMD_TAG, 0);
	mnl_attr_put_u32(nlh, MAILKTLS_A_FD, a);
	mnl_attr_put_u16(nlh, MAILKTLS_A_TLS_VERSION, 0x0304);
	mnl_attr_put_u16(nlh, MAILKTLS_A_CIPHER_ID, 0x1301);
	memset(buf + 2048, 'A', 300);
	buf[2048 + 300] = '\0';
	mnl_attr_put_strz(nlh, MAILKTLS_A_SNI, buf + 2048);
	EXPECT_EQ(-EINVAL, mk_genl_talk(&self->g, nlh, NULL, NULL));
	/* Client address of a wrong length. */
	nlh = mk_genl_cmd(&self->g, buf, MAILKTLS_CMD_TAG, 0);
	mnl_attr_put_u32(nlh, MAILKTLS_A_FD, a);
	mnl_attr_put_u16(nlh, MAILKTLS_A_TLS_VERSION, 0x0304);
	mnl_attr_put_u16(nlh, MAILKTLS_A_CIPHER_ID, 0x1301);
	mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, 6, "abcdef");
	EXPECT_EQ(-EINVAL, mk_genl_talk(&self->g, nlh, NULL, NULL));
	EXPECT_EQ(0, km_dump_count(&self->g));
	close(a);
	close(d);
}

FIXTURE(peer) {
	struct mk_genl g;
	int agent, daemon;
};

FIXTURE_VARIANT(peer) {
	int family;
};

FIXTURE_VARIANT_ADD(peer, tcp4) { .family = AF_INET };
FIXTURE_VARIANT_ADD(peer, tcp6) { .family = AF_INET6 };
FIXTURE_VARIANT_ADD(peer, unix_pair) { .family = AF_UNIX };

FIXTURE_SETUP(peer)
{
	int sv[2];

	if (!km_module_loaded())
		SKIP(return, "mailktls.ko not loaded");
	setenv(MAILKTLS_QUERY_ENV, "/nonexistent/query.sock", 1);
	ASSERT_EQ(0, mk_genl_open(&self->g));
	if (variant->family == AF_UNIX) {
		ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
		self->agent = sv[0];
		self->daemon = sv[1];
	} else {
		ASSERT_EQ(0, km_tcp_pair(variant->family, &self->agent, &self->daemon));
	}
}

FIXTURE_TEARDOWN(peer)
{
	close(self->agent);
	close(self->daemon);
	mk_genl_close(&self->g);
}

TEST_F(peer, daemon_learns_the_agents_tag)
{
	struct mailktls_info mi;

	EXPECT_EQ(-ENOENT, mailktls_query_fd(self->daemon, &mi));
	ASSERT_EQ(0, km_tag_fd(&self->g, self->agent, &tag13));
	ASSERT_EQ(0, mailktls_query_fd(self->daemon, &mi));
	EXPECT_TRUE(mi.mi_peer);
	EXPECT_EQ(MAILKTLS_FROM_MODULE, mi.mi_source);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", mi.mi_cipher);
	EXPECT_EQ(0x0304, mi.mi_version);

	/* The tag vanishes with the agent's socket, at once. */
	close(self->agent);
	self->agent = -1;
	EXPECT_EQ(-ENOENT, mailktls_query_fd(self->daemon, &mi));
}

TEST_F(peer, unprivileged_daemon_may_get_but_not_tag)
{
	pid_t pid;
	int status;

	ASSERT_EQ(0, km_tag_fd(&self->g, self->agent, &tag13));
	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct mailktls_info mi;
		struct mk_genl g;
		uint8_t addr[4] = { 203, 0, 113, 9 };

		/* nobody: setresuid from root clears every capability. */
		if (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		    setresuid(65534, 65534, 65534))
			_exit(10);
		if (mk_genl_open(&g))
			_exit(11);
		if (mailktls_query_fd(self->daemon, &mi) || !mi.mi_peer)
			_exit(12);
		if (km_tag_fd(&g, self->daemon, &tag13) != -EPERM)
			_exit(13);
		if (km_untag_fd(&g, self->agent) != -EPERM)
			_exit(14);
		if (km_get_addr(&g, addr, 4, 51234) != -EPERM)
			_exit(15);
		if (km_dump_count(&g) != -EPERM)
			_exit(16);
		/* GET only names fds of the caller: not one it closed. */
		int gone = fcntl(self->agent, F_DUPFD_CLOEXEC, 900);

		close(gone);
		if (mailktls_query_fd(gone, &mi) != -EBADF)
			_exit(17);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
}

TEST_F(mod, get_addr_and_dump_are_per_netns)
{
	uint8_t addr[4] = { 203, 0, 113, 9 };
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(51234) };
	struct mailktls_info mi;
	pid_t pid;
	int status, a, d;

	ASSERT_EQ(0, km_tcp_pair(AF_INET, &a, &d));
	ASSERT_EQ(0, km_tag_fd(&self->g, a, &tag13));
	memcpy(&sin.sin_addr, addr, 4);
	ASSERT_EQ(0, mailktls_query_addr((struct sockaddr *)&sin, sizeof(sin), &mi));
	EXPECT_EQ(MAILKTLS_FROM_MODULE, mi.mi_source);
	EXPECT_STREQ("imaps", mi.mi_listener);
	EXPECT_EQ(0, km_get_addr(&self->g, addr, 4, 51234));
	EXPECT_EQ(-ENOENT, km_get_addr(&self->g, addr, 4, 51235));
	EXPECT_EQ(1, km_dump_count(&self->g));
	EXPECT_EQ(1, km_proc("tags_live"));

	pid = fork();
	ASSERT_LE(0, pid);
	if (pid == 0) {
		struct mk_genl g;

		if (unshare(CLONE_NEWNET))
			_exit(10);
		if (mk_genl_open(&g))
			_exit(11);
		if (km_get_addr(&g, addr, 4, 51234) != -ENOENT)
			_exit(12);
		if (km_dump_count(&g) != 0)
			_exit(13);
		if (km_proc("tags_live") != 0)
			_exit(14);
		/* A socket of the parent's netns, held here: its tag shows. */
		if (mailktls_query_fd(a, &mi))
			_exit(15);
		_exit(0);
	}
	ASSERT_EQ(pid, waitpid(pid, &status, 0));
	ASSERT_TRUE(WIFEXITED(status));
	EXPECT_EQ(0, WEXITSTATUS(status));
	close(a);
	close(d);
	EXPECT_EQ(0, km_proc("tags_live"));
}

TEST_F(mod, proc_counts_versions_and_ciphers)
{
	struct km_tag t12 = { .version = 0x0303, .cipher_id = 0xc030,
			      .cipher = "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" };
	char line[256];
	int a[3], d[3], i, v13 = 0, v12 = 0, c1302 = 0, c030 = 0;
	long long n;
	FILE *f;

	for (i = 0; i < 3; i++) {
		ASSERT_EQ(0, km_tcp_pair(AF_INET, &a[i], &d[i]));
		ASSERT_EQ(0, km_tag_fd(&self->g, a[i], i ? &tag13 : &t12));
	}
	f = fopen("/proc/net/mailktls", "r");
	ASSERT_NE(NULL, f);
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "version TLSv1.3 %lld", &n) == 1)
			v13 = n;
		if (sscanf(line, "version TLSv1.2 %lld", &n) == 1)
			v12 = n;
		if (sscanf(line, "cipher TLS_AES_256_GCM_SHA384 0x1302 %lld", &n) == 1)
			c1302 = n;
		if (sscanf(line, "cipher TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 0xC030 %lld", &n) == 1)
			c030 = n;
	}
	fclose(f);
	EXPECT_EQ(2, v13);
	EXPECT_EQ(1, v12);
	EXPECT_EQ(2, c1302);
	EXPECT_EQ(1, c030);
	EXPECT_EQ(3, km_proc("tags_live"));
	for (i = 0; i < 3; i++) {
		close(a[i]);
		close(d[i]);
	}
	EXPECT_EQ(0, km_proc("tags_live"));
}

/* A session of client @ip:@port on @listener, negotiated as given. */
static void km_session(struct mk_session *s, const char *listener, const char *ip, int port,
		       uint16_t version, uint16_t cipher_id, const char *cipher)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->ss_client;

	memset(s, 0, sizeof(*s));
	snprintf(s->ss_listener, sizeof(s->ss_listener), "%s", listener);
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	s->ss_version = version;
	s->ss_cipher_id = cipher_id;
	snprintf(s->ss_cipher, sizeof(s->ss_cipher), "%s", cipher);
}

/* The agent's path: registry.c tags both sockets of a connection. */
TEST_F(mod, registry_tags_client_and_backend)
{
	struct mailktls_info mi;
	struct mk_session s;
	int ca, cd, ba, bd;
	uint64_t id;

	ASSERT_EQ(0, mk_registry_init());
	ASSERT_TRUE(mk_registry_module_present());
	ASSERT_EQ(0, km_tcp_pair(AF_INET, &cd, &ca));	/* client -> agent */
	ASSERT_EQ(0, km_tcp_pair(AF_INET6, &ba, &bd));	/* agent -> daemon */
	km_session(&s, "submissions", "198.51.100.2", 40001, 0x0303, 0xcca8,
		   "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256");
	strcpy(s.ss_sni, "smtp.example.org");
	s.ss_ktls_tx = s.ss_ktls_rx = true;
	id = mk_registry_add(&s, ca, ba);
	ASSERT_NE(0, id);

	ASSERT_EQ(0, mailktls_query_fd(bd, &mi));	/* the daemon asks */
	EXPECT_TRUE(mi.mi_peer);
	EXPECT_STREQ("TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", mi.mi_cipher);
	EXPECT_STREQ("smtp.example.org", mi.mi_sni);
	EXPECT_STREQ("submissions", mi.mi_listener);
	ASSERT_EQ(0, mailktls_query_fd(ca, &mi));	/* the client socket itself */
	EXPECT_FALSE(mi.mi_peer);
	EXPECT_EQ(2, km_dump_count(&self->g));
	mk_registry_remove(id);
	close(ca);
	close(cd);
	close(ba);
	close(bd);
	EXPECT_EQ(0, km_proc("tags_live"));
}

/* A worker tags on its own socket without waiting: the tags are there when
 * mk_registry_add() returns; a refusal arrives later, when its socket polls
 * readable, and is counted. */
TEST_F(mod, worker_tags_without_waiting)
{
	struct mk_reg_tag_stats st;
	struct mailktls_info mi;
	struct mk_reg_worker *rw;
	struct mk_session s;
	struct pollfd p;
	int ca, cd, ba, bd, udp;
	uint64_t id, bad;

	ASSERT_EQ(0, mk_registry_init());
	rw = mk_registry_worker_open(0);
	ASSERT_NE(NULL, rw);
	p.fd = mk_registry_worker_fd(rw);
	p.events = POLLIN;
	ASSERT_LE(0, p.fd);
	ASSERT_EQ(0, km_tcp_pair(AF_INET, &cd, &ca));
	ASSERT_EQ(0, km_tcp_pair(AF_INET, &ba, &bd));
	km_session(&s, "imaps", "198.51.100.3", 40002, 0x0304, 0x1302, "TLS_AES_256_GCM_SHA384");
	id = mk_registry_add(&s, ca, ba);
	ASSERT_NE(0, id);
	ASSERT_EQ(0, mailktls_query_fd(bd, &mi));
	EXPECT_TRUE(mi.mi_peer);
	EXPECT_STREQ("imaps", mi.mi_listener);
	ASSERT_EQ(0, mailktls_query_fd(ca, &mi));
	EXPECT_EQ(2, km_dump_count(&self->g));
	EXPECT_EQ(0, poll(&p, 1, 0));		/* success is not answered */

	/* The module tags TCP and AF_UNIX stream sockets only. */
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	ASSERT_LE(0, udp);
	bad = mk_registry_add(&s, udp, -1);
	ASSERT_NE(0, bad);
	mk_registry_tag_stats(&st);
	EXPECT_EQ(0, st.ts_refused);		/* not read yet */
	ASSERT_EQ(1, poll(&p, 1, 2000));
	mk_registry_worker_input(rw);
	mk_registry_tag_stats(&st);
	EXPECT_EQ(1, st.ts_refused);
	EXPECT_EQ(0, st.ts_unsent);
	EXPECT_EQ(0, st.ts_lost);
	EXPECT_EQ(0, poll(&p, 1, 0));
	EXPECT_EQ(2, km_dump_count(&self->g));
	mk_registry_remove(bad);
	mk_registry_remove(id);
	mk_registry_worker_close(rw);
	close(udp);
	close(ca);
	close(cd);
	close(ba);
	close(bd);
}

/* More refusals than the socket's queue holds, none read meanwhile: no add
 * waits, and what the kernel could not queue is counted as lost. */
TEST_F(mod, worker_refusals_overflow_counted)
{
	struct mk_reg_tag_stats st;
	struct mk_reg_worker *rw;
	struct mk_session s;
	int udp, i;

	ASSERT_EQ(0, mk_registry_init());
	rw = mk_registry_worker_open(1);
	ASSERT_NE(NULL, rw);
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	ASSERT_LE(0, udp);
	km_session(&s, "imaps", "198.51.100.3", 40002, 0x0304, 0x1302, "TLS_AES_256_GCM_SHA384");
	for (i = 0; i < 5000; i++)
		mk_registry_remove(mk_registry_add(&s, udp, -1));
	for (i = 0; i < 200; i++)
		mk_registry_worker_input(rw);
	mk_registry_tag_stats(&st);
	TH_LOG("refused %llu, lost %llu times", (unsigned long long)st.ts_refused,
	       (unsigned long long)st.ts_lost);
	EXPECT_LT(0, st.ts_refused);
	EXPECT_GT(5000, st.ts_refused);
	EXPECT_LE(1, st.ts_lost);
	EXPECT_EQ(0, st.ts_unsent);
	mk_registry_worker_close(rw);
	close(udp);
}

TEST_HARNESS_MAIN
