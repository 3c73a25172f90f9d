// SPDX-License-Identifier: GPL-2.0
/*
 * libmailktls on a host without the module: answers come from the agent's
 * query socket (registry.c, started in-process), and the RFC 8314 Received
 * clause has exactly the registered grammar.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kselftest_harness.h"

#include "mailktls.h"
#include "registry.h"

static void fill_session(struct mk_session *s, const char *client_ip, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->ss_client;

	memset(s, 0, sizeof(*s));
	strcpy(s->ss_listener, "imaps");
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, client_ip, &sin->sin_addr);
	s->ss_version = 0x0304;
	s->ss_cipher_id = 0x1302;
	strcpy(s->ss_version_name, "TLSv1.3");
	strcpy(s->ss_cipher, "TLS_AES_256_GCM_SHA384");
	strcpy(s->ss_group, "x25519");
	strcpy(s->ss_sni, "mail.example.org");
	strcpy(s->ss_alpn, "imap");
	s->ss_ktls_tx = true;
	s->ss_ktls_rx = true;
}

static struct sockaddr_in v4(const char *ip, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };

	inet_pton(AF_INET, ip, &sin.sin_addr);
	return sin;
}

FIXTURE(qs) {
	char path[108];
	char dir[64];
};

FIXTURE_SETUP(qs)
{
	strcpy(self->dir, "/tmp/mk-test-lib-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	/* The last level is missing, as /run/mailktls is after boot. */
	snprintf(self->path, sizeof(self->path), "%s/run/query.sock", self->dir);
	setenv(MAILKTLS_QUERY_ENV, self->path, 1);
	ASSERT_EQ(0, mk_registry_init());
	ASSERT_FALSE(mk_registry_module_present());
	ASSERT_EQ(0, mk_query_server_start(self->path));
}

FIXTURE_TEARDOWN(qs)
{
	char sub[80];

	mk_query_server_stop();
	snprintf(sub, sizeof(sub), "%s/run", self->dir);
	rmdir(sub);
	rmdir(self->dir);
}

TEST_F(qs, query_addr_finds_session)
{
	struct sockaddr_in c = v4("203.0.113.9", 51234);
	struct mailktls_info mi;
	struct mk_session s;
	char clause[64];
	uint64_t id;

	fill_session(&s, "203.0.113.9", 51234);
	id = mk_registry_add(&s, -1, -1);
	ASSERT_NE(0, id);

	ASSERT_EQ(0, mailktls_query_addr((struct sockaddr *)&c, sizeof(c), &mi));
	EXPECT_EQ(MAILKTLS_FROM_QUERY_SOCKET, mi.mi_source);
	EXPECT_EQ(0x0304, mi.mi_version);
	EXPECT_EQ(0x1302, mi.mi_cipher_id);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", mi.mi_cipher);
	EXPECT_STREQ("x25519", mi.mi_group);
	EXPECT_STREQ("mail.example.org", mi.mi_sni);
	EXPECT_STREQ("imap", mi.mi_alpn);
	EXPECT_STREQ("imaps", mi.mi_listener);
	EXPECT_EQ(MAILKTLS_INFO_KTLS_TX | MAILKTLS_INFO_KTLS_RX, mi.mi_ktls);
	EXPECT_EQ(AF_INET, mi.mi_client.ss_family);
	EXPECT_EQ(0, memcmp(&((struct sockaddr_in *)&mi.mi_client)->sin_addr, &c.sin_addr, 4));
	EXPECT_EQ(c.sin_port, ((struct sockaddr_in *)&mi.mi_client)->sin_port);
	ASSERT_EQ(26, mailktls_received_clause(&mi, clause, sizeof(clause)));
	EXPECT_STREQ("tls TLS_AES_256_GCM_SHA384", clause);

	/* Another port of the same client is another connection. */
	c.sin_port = htons(51235);
	EXPECT_EQ(-ENOENT, mailktls_query_addr((struct sockaddr *)&c, sizeof(c), &mi));

	mk_registry_remove(id);
	c.sin_port = htons(51234);
	EXPECT_EQ(-ENOENT, mailktls_query_addr((struct sockaddr *)&c, sizeof(c), &mi));
}

TEST_F(qs, query_fd_on_loopback_tcp_finds_peer)
{
	struct sockaddr_in a = v4("127.0.0.1", 0);
	socklen_t al = sizeof(a);
	struct mailktls_info mi;
	struct mk_session s;
	int lfd, backend, daemon_fd;
	uint64_t id;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	ASSERT_LE(0, lfd);
	ASSERT_EQ(0, bind(lfd, (struct sockaddr *)&a, sizeof(a)));
	ASSERT_EQ(0, listen(lfd, 4));
	ASSERT_EQ(0, getsockname(lfd, (struct sockaddr *)&a, &al));
	backend = socket(AF_INET, SOCK_STREAM, 0);	/* the agent's end */
	ASSERT_EQ(0, connect(backend, (struct sockaddr *)&a, sizeof(a)));
	daemon_fd = accept(lfd, NULL, NULL);		/* the daemon's end */
	ASSERT_LE(0, daemon_fd);

	/* Not registered yet: nobody knows this connection. */
	EXPECT_EQ(-ENOENT, mailktls_query_fd(daemon_fd, &mi));

	fill_session(&s, "198.51.100.7", 40000);
	strcpy(s.ss_cipher, "TLS_CHACHA20_POLY1305_SHA256");
	s.ss_cipher_id = 0x1303;
	s.ss_ktls_rx = false;
	id = mk_registry_add(&s, -1, backend);	/* backend local address taken from the fd */
	ASSERT_NE(0, id);

	ASSERT_EQ(0, mailktls_query_fd(daemon_fd, &mi));
	EXPECT_EQ(MAILKTLS_FROM_QUERY_SOCKET, mi.mi_source);
	EXPECT_STREQ("TLS_CHACHA20_POLY1305_SHA256", mi.mi_cipher);
	EXPECT_EQ(0x1303, mi.mi_cipher_id);
	EXPECT_EQ(MAILKTLS_INFO_KTLS_TX, mi.mi_ktls);
	EXPECT_EQ(htons(40000), ((struct sockaddr_in *)&mi.mi_client)->sin_port);

	/* The agent's own socket has the daemon as peer: not a tagged one. */
	EXPECT_EQ(-ENOENT, mailktls_query_fd(backend, &mi));

	mk_registry_remove(id);
	EXPECT_EQ(-ENOENT, mailktls_query_fd(daemon_fd, &mi));
	close(daemon_fd);
	close(backend);
	close(lfd);
}

TEST_F(qs, query_fd_on_unix_stream_finds_peer_by_inode)
{
	struct mailktls_info mi;
	struct mk_session s;
	uint64_t id;
	int sv[2];
	int err;

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	fill_session(&s, "192.0.2.1", 1234);
	id = mk_registry_add(&s, -1, sv[0]);
	ASSERT_NE(0, id);
	err = mailktls_query_fd(sv[1], &mi);
	if (err == -ENOENT || err == -EINVAL || err == -EOPNOTSUPP) {
		/* ENOENT could also mean "no unix_diag here": tell them apart. */
		mk_registry_remove(id);
		if (mailktls_query_fd(sv[1], &mi) == err && err != -ENOENT)
			SKIP(return, "sock_diag for AF_UNIX unavailable: %s", strerror(-err));
	}
	ASSERT_EQ(0, err);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", mi.mi_cipher);
	mk_registry_remove(id);
	EXPECT_EQ(-ENOENT, mailktls_query_fd(sv[1], &mi));
	close(sv[0]);
	close(sv[1]);
}

/* A daemon whose client already left asks too late: "no such connection",
 * the same answer the module and the TCP path give, not ENOTCONN. */
TEST_F(qs, query_fd_after_unix_peer_closed_is_enoent)
{
	struct mailktls_info mi;
	int sv[2];

	ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
	close(sv[0]);
	EXPECT_EQ(-ENOENT, mailktls_query_fd(sv[1], &mi));
	close(sv[1]);
}

TEST_F(qs, status_counts_connections_and_ktls)
{
	struct mk_session s;
	char buf[MAILKTLS_QUERY_ANSWER_MAX];
	uint64_t a, b;

	fill_session(&s, "192.0.2.1", 1);
	a = mk_registry_add(&s, -1, -1);
	s.ss_ktls_rx = false;
	b = mk_registry_add(&s, -1, -1);
	ASSERT_LT(0, mailktls_status(buf, sizeof(buf)));
	EXPECT_EQ(0, strncmp(buf, "ok\n", 3));
	EXPECT_NE(NULL, strstr(buf, "\nconnections=2\n"));
	EXPECT_NE(NULL, strstr(buf, "\nktls_txrx=1\n"));
	EXPECT_NE(NULL, strstr(buf, "\nmodule=no\n"));
	mk_registry_remove(a);
	mk_registry_remove(b);
}

TEST_F(qs, no_agent_is_enoent)
{
	struct sockaddr_in c = v4("203.0.113.9", 1);
	struct mailktls_info mi;

	setenv(MAILKTLS_QUERY_ENV, "/nonexistent/mailktls.sock", 1);
	EXPECT_EQ(-ENOENT, mailktls_query_addr((struct sockaddr *)&c, sizeof(c), &mi));
}

TEST_F(qs, answer_values_have_no_control_bytes)
{
	struct mk_session s;
	char ans[MAILKTLS_QUERY_ANSWER_MAX];
	uint64_t id;

	fill_session(&s, "192.0.2.44", 2);
	strcpy(s.ss_sni, "evil\nversion=0x0301\r");
	id = mk_registry_add(&s, -1, -1);
	mk_query_answer("QUERY ADDR 192.0.2.44:2", 23, ans, sizeof(ans));
	EXPECT_NE(NULL, strstr(ans, "\nsni=evil?version=0x0301?\n"));
	EXPECT_EQ(NULL, strstr(ans, "\nversion=0x0301"));
	mk_registry_remove(id);
}

/* CLAUSE: the clause line alone, or nothing, so an MTA can use it as is. */
TEST(query_clause_answers_the_line_or_nothing)
{
	struct mk_session s;
	char ans[MAILKTLS_QUERY_ANSWER_MAX];
	uint64_t id;

	fill_session(&s, "192.0.2.45", 3);
	id = mk_registry_add(&s, -1, -1);
	ASSERT_NE(0, id);
	EXPECT_EQ(strlen("tls ") + strlen(s.ss_cipher) + 1,
		  mk_query_answer("CLAUSE 192.0.2.45:3", 19, ans, sizeof(ans)));
	EXPECT_EQ(0, strncmp(ans, "tls ", 4));
	EXPECT_EQ(0, strncmp(ans + 4, s.ss_cipher, strlen(s.ss_cipher)));
	EXPECT_EQ('\n', ans[strlen(ans) - 1]);
	EXPECT_EQ(0, mk_query_answer("CLAUSE 192.0.2.45:4", 19, ans, sizeof(ans)));
	EXPECT_EQ(0, mk_query_answer("CLAUSE 192.0.2.45", 17, ans, sizeof(ans)));
	EXPECT_STREQ("", ans);
	/* an unregistered name goes out as the IANA number */
	mk_registry_remove(id);
	strcpy(s.ss_cipher, "");
	s.ss_cipher_id = 0x1302;
	id = mk_registry_add(&s, -1, -1);
	mk_query_answer("CLAUSE 192.0.2.45:3", 19, ans, sizeof(ans));
	EXPECT_STREQ("tls 0x1302\n", ans);
	mk_registry_remove(id);
	EXPECT_EQ(0, mk_query_answer("CLAUSE 192.0.2.45:3", 19, ans, sizeof(ans)));
}

TEST(query_parser)
{
	char longline[MAILKTLS_QUERY_LINE_MAX + 10];
	struct mk_query q;

	ASSERT_EQ(0, mk_query_parse("STATUS", 6, &q));
	EXPECT_EQ(MK_QUERY_STATUS, q.q_kind);
	ASSERT_EQ(0, mk_query_parse("STATUS\r", 7, &q));
	ASSERT_EQ(0, mk_query_parse("QUERY PEER 127.0.0.1:4321", 25, &q));
	EXPECT_EQ(MK_QUERY_PEER, q.q_kind);
	EXPECT_EQ(AF_INET, q.q_addr.ss_family);
	EXPECT_EQ(htons(4321), ((struct sockaddr_in *)&q.q_addr)->sin_port);
	ASSERT_EQ(0, mk_query_parse("QUERY ADDR [2001:db8::1]:993", 28, &q));
	EXPECT_EQ(AF_INET6, q.q_addr.ss_family);
	ASSERT_EQ(0, mk_query_parse("QUERY INODE 123456", 18, &q));
	EXPECT_EQ(123456, q.q_inode);
	ASSERT_EQ(0, mk_query_parse("CLAUSE [2001:db8::1]:465", 24, &q));
	EXPECT_EQ(MK_QUERY_CLAUSE, q.q_kind);
	EXPECT_EQ(AF_INET6, q.q_addr.ss_family);

	EXPECT_EQ(-EINVAL, mk_query_parse("", 0, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("STATUS x", 8, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("QUERY PEER 127.0.0.1", 20, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("QUERY PEER 127.0.0.1:65536", 26, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("QUERY ADDR 2001:db8::1:993", 26, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("QUERY INODE -1", 14, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("QUERY INODE 12x", 15, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("QUERY ADDR 1.2.3.4:5\0x", 22, &q));
	EXPECT_EQ(-EINVAL, mk_query_parse("query status", 12, &q));
	memset(longline, 'A', sizeof(longline));
	EXPECT_EQ(-E2BIG, mk_query_parse(longline, sizeof(longline), &q));
}

TEST(received_clause_known_name)
{
	struct mailktls_info mi = { .mi_cipher_id = 0x1301 };
	char buf[64];

	strcpy(mi.mi_cipher, "TLS_AES_128_GCM_SHA256");
	EXPECT_EQ(26, mailktls_received_clause(&mi, buf, sizeof(buf)));
	EXPECT_STREQ("tls TLS_AES_128_GCM_SHA256", buf);
}

TEST(received_clause_unknown_name_is_hex)
{
	struct mailktls_info mi = { .mi_cipher_id = 0x1302 };
	char buf[64];

	EXPECT_EQ(10, mailktls_received_clause(&mi, buf, sizeof(buf)));
	EXPECT_STREQ("tls 0x1302", buf);

	/* An OpenSSL-style name is not tls-cipher-name: hex, upper case. */
	mi.mi_cipher_id = 0xc02f;
	strcpy(mi.mi_cipher, "ECDHE-RSA-AES128-GCM-SHA256");
	EXPECT_EQ(10, mailktls_received_clause(&mi, buf, sizeof(buf)));
	EXPECT_STREQ("tls 0xC02F", buf);
}

TEST(received_clause_errors)
{
	struct mailktls_info mi = { .mi_cipher_id = 0x1302 };
	char buf[64];

	strcpy(mi.mi_cipher, "TLS_AES_256_GCM_SHA384");
	strcpy(buf, "junk");
	EXPECT_EQ(-ENOSPC, mailktls_received_clause(&mi, buf, 26));
	EXPECT_STREQ("", buf);
	EXPECT_EQ(26, mailktls_received_clause(&mi, buf, 27));
	EXPECT_EQ(-ENOSPC, mailktls_received_clause(&mi, buf, 0));

	memset(&mi, 0, sizeof(mi));
	EXPECT_EQ(-EINVAL, mailktls_received_clause(&mi, buf, sizeof(buf)));
}

TEST_HARNESS_MAIN
