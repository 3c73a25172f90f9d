// SPDX-License-Identifier: GPL-2.0
/*
 * query_backend: a stand-in for a mail daemon behind mailktlsd, for
 * tests/integration/query_test.sh. It asks libmailktls, as a daemon would,
 * which TLS the client of each accepted connection negotiated.
 *
 *   query_backend PORT COUNT
 *
 * Listens on 127.0.0.1:PORT, prints "ready", then serves COUNT connections
 * one after the other: sends an IMAP-like greeting, waits for the client's
 * first line (so the agent is relaying and knows the connection), calls
 * mailktls_query_fd() on the accepted socket and prints what it learnt as
 * "N key=value" lines (N counts connections from 1). At the client's EOF it
 * ends its side and prints "N gone=<errno> ms=<ms>" once the query fails
 * (or "N gone=0" if it still answers after 5 s). Built by the test itself
 * against agent/libmailktls.a; the Makefile does not build it.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mailktls.h"
#include "mk_addr.h"

#define QB_GREETING "* OK ready\r\n"
#define QB_LINE_MAX 512
#define QB_GONE_MS 5000
#define QB_IO_SECONDS 20

static long long qb_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read up to and including the first "\n". Return: 0, or -1 on EOF/error. */
static int qb_read_line(int fd)
{
	char c;
	int n;

	for (n = 0; n < QB_LINE_MAX; n++) {
		if (recv(fd, &c, 1, 0) != 1)
			return -1;
		if (c == '\n')
			return 0;
	}
	return -1;
}

static void qb_report(int n, int fd)
{
	char clause[96] = "", client[64] = "";
	struct mailktls_info mi;
	int err;

	err = mailktls_query_fd(fd, &mi);
	printf("%d query=%d\n", n, err);
	if (err)
		return;
	if (mailktls_received_clause(&mi, clause, sizeof(clause)) < 0)
		snprintf(clause, sizeof(clause), "(none)");
	mk_addr_format((const struct sockaddr *)&mi.mi_client, client, sizeof(client));
	printf("%d clause=%s\n", n, clause);
	printf("%d source=%s\n", n,
	       mi.mi_source == MAILKTLS_FROM_MODULE ? "module" : "query_socket");
	printf("%d version=%s\n%d cipher=%s\n%d cipher_id=0x%04X\n", n,
	       mailktls_version_name(mi.mi_version), n, mi.mi_cipher, n, mi.mi_cipher_id);
	printf("%d sni=%s\n%d alpn=%s\n%d client=%s\n%d listener=%s\n", n, mi.mi_sni, n,
	       mi.mi_alpn, n, client, n, mi.mi_listener);
}

/* After the client's EOF: end our side, then wait for the answer to go. */
static void qb_wait_gone(int n, int fd)
{
	long long t0 = qb_ms();
	struct mailktls_info mi;
	char buf[256];
	int err = 0;

	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	shutdown(fd, SHUT_WR);
	while (qb_ms() - t0 < QB_GONE_MS) {
		err = mailktls_query_fd(fd, &mi);
		if (err)
			break;
		usleep(20000);
	}
	printf("%d gone=%d ms=%lld\n", n, err, qb_ms() - t0);
}

static int qb_listen(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 8)) {
		close(fd);
		return -1;
	}
	return fd;
}

int main(int argc, char **argv)
{
	struct timeval tv = { .tv_sec = QB_IO_SECONDS };
	int lfd, fd, n, count;

	if (argc != 3 || atoi(argv[1]) <= 0 || atoi(argv[2]) <= 0) {
		fprintf(stderr, "usage: query_backend PORT COUNT\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	lfd = qb_listen(atoi(argv[1]));
	if (lfd < 0) {
		perror("query_backend: listen");
		return 1;
	}
	printf("ready\n");
	count = atoi(argv[2]);
	for (n = 1; n <= count; n++) {
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			perror("query_backend: accept");
			return 1;
		}
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (send(fd, QB_GREETING, strlen(QB_GREETING), MSG_NOSIGNAL) < 0 ||
		    qb_read_line(fd)) {
			printf("%d query=relay-failed\n", n);
			close(fd);
			continue;
		}
		qb_report(n, fd);
		qb_wait_gone(n, fd);
		close(fd);
	}
	close(lfd);
	return 0;
}
