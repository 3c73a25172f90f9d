// SPDX-License-Identifier: GPL-2.0
/*
 * bench_backend - plaintext backend for scripts/bench.sh: sink, source and
 * echo on one port, single-threaded epoll, so that it costs as little CPU
 * as possible next to the TLS terminator being measured.
 *
 * Usage: bench_backend PORT [login|greet|silent]
 *   (listens on 127.0.0.1 only, runs until killed; the second argument
 *   picks the greeting, see bench_proto.h; default login)
 *
 * Per connection, the client sends requests of 9 bytes: one mode byte and a
 * 64-bit big-endian count N, then
 *   'U'  the client sends N bytes, which are discarded; the backend answers
 *        one byte 'K' when all N have arrived (the end of an upload);
 *   'D'  the backend sends N bytes (a download);
 *   'E'  the client sends N bytes (N <= 4096), the backend sends them back.
 * Requests repeat until EOF. Every connection starts with BENCH_GREETING
 * from the backend (see bench_proto.h for why).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_proto.h"

#define BB_MAX_EVENTS 256
#define BB_IO_SIZE (256 * 1024)
#define BB_ECHO_MAX 4096

struct bb_conn {
	int bc_fd;
	unsigned char bc_hdr[9];
	size_t bc_hdr_len;
	char bc_mode;		/* 0 while reading a request header */
	uint64_t bc_left;	/* bytes still to receive (U, E) or send (D) */
};

static unsigned char bb_buf[BB_IO_SIZE];
static const char *bb_greeting = BENCH_GREETING;

static int bb_listen(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	int one = 1, fd;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 4096)) {
		close(fd);
		return -1;
	}
	return fd;
}

static void bb_close(int ep, struct bb_conn *c)
{
	epoll_ctl(ep, EPOLL_CTL_DEL, c->bc_fd, NULL);
	close(c->bc_fd);
	free(c);
}

static int bb_watch(int ep, struct bb_conn *c, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = c };

	return epoll_ctl(ep, EPOLL_CTL_MOD, c->bc_fd, &ev);
}

/* Send as much of a download as the socket takes; 1 when it is complete. */
static int bb_send_some(struct bb_conn *c)
{
	while (c->bc_left) {
		size_t n = c->bc_left < BB_IO_SIZE ? c->bc_left : BB_IO_SIZE;
		ssize_t w = send(c->bc_fd, bb_buf, n, MSG_NOSIGNAL);

		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		c->bc_left -= w;
	}
	return 1;
}

static int bb_start(int ep, struct bb_conn *c)
{
	uint64_t n;

	memcpy(&n, c->bc_hdr + 1, sizeof(n));
	c->bc_left = be64toh(n);
	c->bc_mode = c->bc_hdr[0];
	c->bc_hdr_len = 0;
	switch (c->bc_mode) {
	case 'U':
	case 'E':
		if (c->bc_mode == 'E' && c->bc_left > BB_ECHO_MAX)
			return -1;
		if (!c->bc_left) {	/* empty request: answer at once */
			if (c->bc_mode == 'U' && send(c->bc_fd, "K", 1, MSG_NOSIGNAL) != 1)
				return -1;
			c->bc_mode = 0;
		}
		return 0;
	case 'D':
		if (bb_send_some(c) < 0)
			return -1;
		if (!c->bc_left) {
			c->bc_mode = 0;
			return 0;
		}
		return bb_watch(ep, c, EPOLLOUT);
	}
	return -1;
}

/* Consume readable bytes; -1 closes the connection. */
static int bb_readable(int ep, struct bb_conn *c)
{
	for (int rounds = 0; rounds < 64; rounds++) {
		size_t want = BB_IO_SIZE;
		ssize_t r;

		if (!c->bc_mode)
			want = sizeof(c->bc_hdr) - c->bc_hdr_len;
		else if (c->bc_left < want)
			want = c->bc_left;
		r = recv(c->bc_fd, c->bc_mode ? bb_buf : c->bc_hdr + c->bc_hdr_len, want, 0);
		if (r == 0)
			return -1;
		if (r < 0)
			return errno == EAGAIN ? 0 : -1;
		if (!c->bc_mode) {
			c->bc_hdr_len += r;
			if (c->bc_hdr_len == sizeof(c->bc_hdr) && bb_start(ep, c))
				return -1;
			if (c->bc_mode == 'D')
				return 0;	/* no pipelining while sending */
			continue;
		}
		c->bc_left -= r;
		if (c->bc_mode == 'E' && send(c->bc_fd, bb_buf, r, MSG_NOSIGNAL) != r)
			return -1;
		if (!c->bc_left) {
			if (c->bc_mode == 'U' && send(c->bc_fd, "K", 1, MSG_NOSIGNAL) != 1)
				return -1;
			c->bc_mode = 0;
		}
	}
	return 0;
}

static void bb_accept(int ep, int lfd)
{
	for (int i = 0; i < 256; i++) {
		struct epoll_event ev = { .events = EPOLLIN };
		int one = 1, fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct bb_conn *c;

		if (fd < 0)
			return;
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			return;
		}
		c->bc_fd = fd;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		/* A fresh socket's send buffer always takes the short greeting. */
		if (*bb_greeting && send(fd, bb_greeting, strlen(bb_greeting), MSG_NOSIGNAL) !=
		    (ssize_t)strlen(bb_greeting)) {
			close(fd);
			free(c);
			continue;
		}
		ev.data.ptr = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev)) {
			close(fd);
			free(c);
		}
	}
}

int main(int argc, char **argv)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL }, evs[BB_MAX_EVENTS];
	int lfd, ep;

	if (argc == 3 && !strcmp(argv[2], "greet"))
		bb_greeting = BENCH_GREETING_PRELOGIN;
	else if (argc == 3 && !strcmp(argv[2], "silent"))
		bb_greeting = "";
	else if (argc != 2 && !(argc == 3 && !strcmp(argv[2], "login"))) {
		fprintf(stderr, "usage: %s PORT [login|greet|silent]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(bb_buf); i++)
		bb_buf[i] = (unsigned char)(i * 2654435761u >> 13);
	lfd = bb_listen(atoi(argv[1]));
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (lfd < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev)) {
		perror("bench_backend");
		return 1;
	}
	for (;;) {
		int n = epoll_wait(ep, evs, BB_MAX_EVENTS, -1);

		for (int i = 0; i < n; i++) {
			struct bb_conn *c = evs[i].data.ptr;
			int r;

			if (!c) {
				bb_accept(ep, lfd);
				continue;
			}
			if (c->bc_mode == 'D') {
				r = bb_send_some(c);
				if (r == 1) {
					c->bc_mode = 0;
					r = bb_watch(ep, c, EPOLLIN);
				}
			} else {
				r = bb_readable(ep, c);
			}
			if (r < 0)
				bb_close(ep, c);
		}
	}
}
