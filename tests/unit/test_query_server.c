// SPDX-License-Identifier: GPL-2.0
/*
 * The query socket server with real unix sockets: clients that send
 * nothing, send slowly or send too much never hold up the others, a line
 * may come in many pieces, and no more than MK_QUERY_CLIENTS_MAX clients
 * are kept (the oldest go first) nor kept longer than MK_QUERY_CLIENT_MS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kselftest_harness.h"

#include "mailktls.h"
#include "registry.h"

/* What a lookup may take while silent clients are connected: the old
 * one-at-a-time server took 500 ms per silent client. */
#define QUICK_MS 250

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int qconnect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 4 };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	if (fd < 0)
		return -1;
	strcpy(sun.sun_path, path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Everything until the server closes; Return: the length, -1 on timeout. */
static ssize_t read_all(int fd, char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	while (got + 1 < len) {
		n = recv(fd, buf + got, len - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	return (ssize_t)got;
}

/* One request, its whole answer, and how long it took. */
static ssize_t ask(const char *path, const char *req, char *buf, size_t len, int64_t *ms)
{
	int64_t t0 = now_ms();
	ssize_t n = -1;
	int fd = qconnect(path);

	if (fd < 0)
		return -1;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) == (ssize_t)strlen(req))
		n = read_all(fd, buf, len);
	close(fd);
	if (ms)
		*ms = now_ms() - t0;
	return n;
}

/* Has the server closed @fd (EOF within @ms)?  1 closed, 0 still open. */
static int closed_within(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, ms) <= 0)
		return 0;
	return recv(fd, &c, 1, MSG_DONTWAIT) == 0;
}

static uint64_t add_client(const char *ip, uint16_t port, const char *cipher)
{
	struct mk_session s;
	struct sockaddr_in *sin = (struct sockaddr_in *)&s.ss_client;

	memset(&s, 0, sizeof(s));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	strcpy(s.ss_listener, "imaps");
	s.ss_version = 0x0304;
	s.ss_cipher_id = 0x1301;
	strcpy(s.ss_cipher, cipher);
	return mk_registry_add(&s, -1, -1);
}

FIXTURE(srv) {
	char dir[64];
	char path[108];
};

FIXTURE_SETUP(srv)
{
	strcpy(self->dir, "/tmp/mk-test-qs-XXXXXX");
	ASSERT_NE(NULL, mkdtemp(self->dir));
	snprintf(self->path, sizeof(self->path), "%s/query.sock", self->dir);
	ASSERT_EQ(0, mk_registry_init());
	ASSERT_EQ(0, mk_query_server_start(self->path));
	ASSERT_NE(0, add_client("192.0.2.9", 4000, "TLS_AES_128_GCM_SHA256"));
}

FIXTURE_TEARDOWN(srv)
{
	mk_query_server_stop();
	rmdir(self->dir);
}

TEST_F(srv, silent_clients_do_not_delay_others)
{
	char buf[MAILKTLS_QUERY_ANSWER_MAX];
	int64_t ms, worst = 0;
	int silent[3], i, slow = 0;

	for (i = 0; i < 3; i++)
		ASSERT_LE(0, silent[i] = qconnect(self->path));
	for (i = 0; i < 50; i++) {
		ASSERT_LT(0, ask(self->path, "QUERY ADDR 192.0.2.9:4000\n", buf, sizeof(buf), &ms));
		ASSERT_EQ(0, strncmp(buf, "ok\n", 3));
		ASSERT_NE(NULL, strstr(buf, "\ncipher=TLS_AES_128_GCM_SHA256\n"));
		if (ms > worst)
			worst = ms;
		slow += ms > 10;
	}
	TH_LOG("slowest of 50 lookups with 3 silent clients: %lld ms", (long long)worst);
	EXPECT_GT(QUICK_MS, worst);
	/* Most within a few ms; the margin is for a busy machine's scheduler. */
	EXPECT_GT(10, slow);
	/* They were not dropped to make room: they are merely waiting. */
	for (i = 0; i < 3; i++) {
		EXPECT_EQ(0, closed_within(silent[i], 0));
		close(silent[i]);
	}
}

TEST_F(srv, line_in_many_pieces_while_others_are_answered)
{
	const char *req = "QUERY ADDR 192.0.2.9:4000\r\n";
	char buf[MAILKTLS_QUERY_ANSWER_MAX];
	size_t i, half = strlen(req) / 2;
	int64_t ms;
	int fd;

	fd = qconnect(self->path);
	ASSERT_LE(0, fd);
	for (i = 0; i < half; i++) {
		ASSERT_EQ(1, send(fd, req + i, 1, MSG_NOSIGNAL));
		usleep(2000);
	}
	/* Half a line is pending: another client is answered meanwhile. */
	ASSERT_LT(0, ask(self->path, "CLAUSE 192.0.2.9:4000\n", buf, sizeof(buf), &ms));
	EXPECT_STREQ("tls TLS_AES_128_GCM_SHA256\n", buf);
	EXPECT_GT(QUICK_MS, ms);
	for (; i < strlen(req); i++) {
		ASSERT_EQ(1, send(fd, req + i, 1, MSG_NOSIGNAL));
		usleep(2000);
	}
	ASSERT_LT(0, read_all(fd, buf, sizeof(buf)));
	EXPECT_EQ(0, strncmp(buf, "ok\n", 3));
	EXPECT_NE(NULL, strstr(buf, "\nclient=192.0.2.9:4000\n"));
	close(fd);
}

/* Many clients at once, each half-way through its line, finished in the
 * reverse order: each gets its own answer. */
TEST_F(srv, interleaved_clients_get_their_own_answers)
{
	char buf[MAILKTLS_QUERY_ANSWER_MAX], req[64], want[64];
	int fd[20], i;

	for (i = 0; i < 20; i++)
		ASSERT_NE(0, add_client("198.51.100.1", (uint16_t)(5000 + i),
					i % 2 ? "TLS_AES_256_GCM_SHA384" : "TLS_CHACHA20_POLY1305_SHA256"));
	for (i = 0; i < 20; i++) {
		ASSERT_LE(0, fd[i] = qconnect(self->path));
		ASSERT_EQ(7, send(fd[i], "CLAUSE ", 7, MSG_NOSIGNAL));
	}
	for (i = 19; i >= 0; i--) {
		snprintf(req, sizeof(req), "198.51.100.1:%d\n", 5000 + i);
		ASSERT_EQ((ssize_t)strlen(req), send(fd[i], req, strlen(req), MSG_NOSIGNAL));
	}
	for (i = 0; i < 20; i++) {
		snprintf(want, sizeof(want), "tls %s\n",
			 i % 2 ? "TLS_AES_256_GCM_SHA384" : "TLS_CHACHA20_POLY1305_SHA256");
		ASSERT_LT(0, read_all(fd[i], buf, sizeof(buf)));
		EXPECT_STREQ(want, buf);
		close(fd[i]);
	}
}

TEST_F(srv, too_long_line)
{
	char line[4096], buf[MAILKTLS_QUERY_ANSWER_MAX];
	int64_t ms;
	int fd;

	/* No end of line in sight: answered once the buffer is full, and the
	 * rest does not reset the answer away. */
	memset(line, 'A', sizeof(line));
	fd = qconnect(self->path);
	ASSERT_LE(0, fd);
	ASSERT_EQ((ssize_t)sizeof(line), send(fd, line, sizeof(line), MSG_NOSIGNAL));
	EXPECT_LT(0, read_all(fd, buf, sizeof(buf)));
	EXPECT_STREQ("error toolong\n\n", buf);
	close(fd);

	/* The longest line that fits is parsed; one byte more is too long. */
	memcpy(line, "QUERY ADDR ", 11);
	line[MAILKTLS_QUERY_LINE_MAX - 1] = '\n';
	line[MAILKTLS_QUERY_LINE_MAX] = '\0';
	ASSERT_LT(0, ask(self->path, line, buf, sizeof(buf), &ms));
	EXPECT_STREQ("error syntax\n\n", buf);
	line[MAILKTLS_QUERY_LINE_MAX - 1] = 'A';
	line[MAILKTLS_QUERY_LINE_MAX] = '\n';
	line[MAILKTLS_QUERY_LINE_MAX + 1] = '\0';
	ASSERT_LT(0, ask(self->path, line, buf, sizeof(buf), &ms));
	EXPECT_STREQ("error toolong\n\n", buf);

	/* A CLAUSE gets nothing at all, however malformed. */
	memcpy(line, "CLAUSE ", 7);
	EXPECT_EQ(0, ask(self->path, line, buf, sizeof(buf), &ms));
	EXPECT_EQ(0, ask(self->path, "CLAUSE 192.0.2.9:4001\n", buf, sizeof(buf), &ms));
	EXPECT_EQ(0, ask(self->path, "CLAUSE 192.0.2.9:4001\nmore", buf, sizeof(buf), &ms));
}

TEST_F(srv, more_clients_than_the_cap_close_the_oldest)
{
	static int fd[MK_QUERY_CLIENTS_MAX];
	int extra[11];
	char buf[MAILKTLS_QUERY_ANSWER_MAX];
	int64_t ms;
	int i, open_ones = 0;

	for (i = 0; i < MK_QUERY_CLIENTS_MAX; i++)
		ASSERT_LE(0, fd[i] = qconnect(self->path));
	/* One more, who asks: answered at once; the oldest silent one goes. */
	ASSERT_LT(0, ask(self->path, "STATUS\n", buf, sizeof(buf), &ms));
	EXPECT_EQ(0, strncmp(buf, "ok\n", 3));
	EXPECT_NE(NULL, strstr(buf, "\nconnections=1\n"));
	EXPECT_GT(QUICK_MS, ms);
	EXPECT_EQ(1, closed_within(fd[0], 1000));
	for (i = 1; i < MK_QUERY_CLIENTS_MAX; i++)
		open_ones += !closed_within(fd[i], 0);
	EXPECT_EQ(MK_QUERY_CLIENTS_MAX - 1, open_ones);

	/* Eleven more silent ones (the asking one has gone) push out the next
	 * ten oldest, in order. */
	for (i = 0; i < 11; i++)
		ASSERT_LE(0, extra[i] = qconnect(self->path));
	for (i = 1; i <= 10; i++)
		EXPECT_EQ(1, closed_within(fd[i], 1000));
	EXPECT_EQ(0, closed_within(fd[11], 0));
	EXPECT_EQ(0, closed_within(fd[MK_QUERY_CLIENTS_MAX - 1], 0));
	for (i = 0; i < 11; i++) {
		EXPECT_EQ(0, closed_within(extra[i], 0));
		close(extra[i]);
	}
	for (i = 0; i < MK_QUERY_CLIENTS_MAX; i++)
		close(fd[i]);
}

TEST_F(srv, silent_client_closed_at_its_deadline)
{
	int64_t t0 = now_ms(), waited;
	int fd = qconnect(self->path), half = qconnect(self->path);
	char c;

	ASSERT_LE(0, fd);
	ASSERT_LE(0, half);
	ASSERT_EQ(6, send(half, "QUERY ", 6, MSG_NOSIGNAL));
	EXPECT_EQ(0, recv(fd, &c, 1, 0));	/* EOF, no answer */
	waited = now_ms() - t0;
	EXPECT_LE(MK_QUERY_CLIENT_MS - 50, waited);
	EXPECT_GT(MK_QUERY_CLIENT_MS + 1000, waited);
	EXPECT_EQ(1, closed_within(half, 1000));
	close(fd);
	close(half);
}

TEST_HARNESS_MAIN
