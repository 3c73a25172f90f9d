// SPDX-License-Identifier: GPL-2.0
/*
 * The metrics endpoint: HTTP GET /metrics on a loopback TCP address or a
 * unix socket (`metrics_listen`), answered from metrics.c.
 *
 * One thread, one client at a time: a scrape is rare and short, and a
 * client gets MK_METRICS_READ_MS to send its request line and
 * MK_METRICS_SEND_MS for the answer, so a stuck scraper delays only the
 * next scrape, never mail. Nothing of the request but its first line is
 * looked at, and at most MK_METRICS_REQUEST_MAX bytes of it are read.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "listen_sock.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"

#define MK_METRICS_REQUEST_MAX 4096
#define MK_METRICS_READ_MS 2000
#define MK_METRICS_SEND_MS 2000

static struct mk_service mk_ms = MK_SERVICE_INIT("metrics");

/**
 * mk_metrics_parse_request() - the verdict on the request received so far
 * @buf: the bytes
 * @len: their number
 *
 * Return: 200, 404, 405, 400, or 0 when the request line is incomplete.
 */
int mk_metrics_parse_request(const char *buf, size_t len)
{
	const char *eol = memchr(buf, '\n', len), *sp, *path, *end;
	size_t n;

	if (!eol)
		return len >= MK_METRICS_REQUEST_MAX ? 400 : 0;
	n = (size_t)(eol - buf);
	if (n && buf[n - 1] == '\r')
		n--;
	/* METHOD SP PATH [SP HTTP/x.y] */
	sp = memchr(buf, ' ', n);
	if (!sp || sp == buf)
		return 400;
	path = sp + 1;
	end = memchr(path, ' ', (size_t)(buf + n - path));
	if (!end)
		end = buf + n;
	if (end == path || *path != '/')
		return 400;
	if (end < buf + n && (buf + n - end < 6 || memcmp(end + 1, "HTTP/", 5)))
		return 400;
	if (sp - buf != 3 || memcmp(buf, "GET", 3))
		return 405;
	n = (size_t)(end - path);
	/* a query string is allowed and ignored */
	if ((n >= 8 && !memcmp(path, "/metrics", 8) && (n == 8 || path[8] == '?')) ||
	    n == 1 || path[1] == '?')
		return 200;
	return 404;
}

/* Read until the request line is complete or the time is up. */
static int read_request(int fd)
{
	char buf[MK_METRICS_REQUEST_MAX];
	int64_t deadline = (int64_t)mk_now_ms() + MK_METRICS_READ_MS;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;
	int verdict;

	for (;;) {
		int left = (int)(deadline - (int64_t)mk_now_ms());

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -1;
		n = recv(fd, buf + got, sizeof(buf) - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
		verdict = mk_metrics_parse_request(buf, got);
		if (verdict)
			return verdict;
	}
}

static void send_all(int fd, const char *p, size_t len)
{
	int64_t deadline = (int64_t)mk_now_ms() + MK_METRICS_SEND_MS;
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	ssize_t n;

	while (len) {
		int left = (int)(deadline - (int64_t)mk_now_ms());

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return;
		n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void serve(int fd)
{
	char head[256];
	char *body = NULL;
	const char *status;
	long blen = 0;
	int verdict = read_request(fd);

	if (verdict < 0)
		return;
	if (verdict == 200) {
		blen = mk_metrics_render(&body);
		if (blen < 0) {
			verdict = 503;
			body = NULL;
		}
	}
	status = verdict == 200 ? "200 OK" : verdict == 404 ? "404 Not Found" :
		 verdict == 405 ? "405 Method Not Allowed" : verdict == 503 ?
		 "503 Service Unavailable" : "400 Bad Request";
	if (!body) {
		blen = (long)strlen(status) + 1;
		body = malloc((size_t)blen + 1);
		if (!body)
			return;
		snprintf(body, (size_t)blen + 1, "%s\n", status);
	}
	snprintf(head, sizeof(head), "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %ld\r\n"
		 "Connection: close\r\n\r\n", status, verdict == 200 ?
		 "text/plain; version=0.0.4; charset=utf-8" : "text/plain", blen);
	send_all(fd, head, strlen(head));
	send_all(fd, body, (size_t)blen);
	free(body);
}

static void *metrics_thread(void *arg)
{
	struct pollfd pfd[2] = {
		{ .fd = mk_ms.se_listen_fd, .events = POLLIN },
		{ .fd = mk_ms.se_stop_fd, .events = POLLIN },
	};
	int fd;

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(mk_ms.se_listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* out of descriptors: rest rather than spin */
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
				poll(NULL, 0, 100);
			continue;
		}
		serve(fd);
		close(fd);
	}
	return NULL;
}

/**
 * mk_metrics_server_start() - serve GET /metrics at @addr on a thread
 * @addr: where (loopback TCP, or unix:/path, checked by the config parser)
 *
 * Return: 0, -EALREADY, or a negative errno (bind failure, ...).
 */
int mk_metrics_server_start(const struct mk_sockaddr *addr)
{
	int err;

	err = mk_service_open(&mk_ms, (const struct sockaddr *)&addr->sa_storage, addr->sa_len,
			      16);
	return err ? err : mk_service_run(&mk_ms, metrics_thread);
}

/**
 * mk_metrics_server_stop() - stop the thread, remove a unix socket
 */
void mk_metrics_server_stop(void)
{
	mk_service_stop(&mk_ms);
}
