// SPDX-License-Identifier: GPL-2.0
/*
 * first_answer - the first-answer latency for scripts/bench.sh and the VM
 * bench: the time from the end of the TLS handshake to the answer to the
 * client's first command, as a mail client sees it. The client keeps
 * Nagle's algorithm on (no TCP_NODELAY), as most mail clients do, and uses
 * OpenSSL the way they do (blocking socket, one SSL_write() per command),
 * so a TCP segment that waits for an ACK (a cork, a delayed ACK) shows as
 * a 40 ms class answer. Each session: connect, (the STARTTLS dialogue in
 * clear), the handshake, (the greeting), then one command (IMAP "a1 NOOP",
 * SMTP "EHLO") and its answer, timed. No session is resumed.
 *
 *   first_answer backend IMAP_PORT SMTP_PORT
 *       line backends on 127.0.0.1: greet like the server, answer every
 *       line at once (IMAP "TAG OK done", SMTP "250 ok"); run until killed
 *   first_answer client PORT imap|smtp implicit|starttls 1.2|1.3 N
 *       N sessions one after another; prints "p50=MS p99=MS n=N", or
 *       "fail=REASON" and exits 1
 *
 * Every socket has a 10 s timeout; N bounds the loop.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define FA_TIMEOUT_S 10
#define FA_LINE_MAX 4096
#define FA_MAX_SESSIONS 100000

/* A line reader over the raw socket (before TLS) or over TLS. */
struct fa_conn {
	int fc_fd;
	SSL *fc_ssl;			/* NULL: in clear */
	char fc_buf[FA_LINE_MAX];
	size_t fc_len;
};

static double fa_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void fa_timeouts(int fd)
{
	struct timeval tv = { .tv_sec = FA_TIMEOUT_S };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int fa_write(struct fa_conn *c, const char *s)
{
	int len = (int)strlen(s);

	if (c->fc_ssl)
		return SSL_write(c->fc_ssl, s, len) == len ? 0 : -1;
	return send(c->fc_fd, s, (size_t)len, MSG_NOSIGNAL) == len ? 0 : -1;
}

/*
 * One line into @line (NUL-terminated, the CRLF kept). In clear the socket
 * is read a byte at a time: what follows the STARTTLS answer belongs to
 * the TLS handshake. Return: 0, or -1 on EOF, error or a line too long.
 */
static int fa_read_line(struct fa_conn *c, char *line)
{
	char *nl;
	int n;

	for (;;) {
		nl = memchr(c->fc_buf, '\n', c->fc_len);
		if (nl) {
			size_t len = (size_t)(nl - c->fc_buf) + 1;

			memcpy(line, c->fc_buf, len);
			line[len] = '\0';
			memmove(c->fc_buf, c->fc_buf + len, c->fc_len - len);
			c->fc_len -= len;
			return 0;
		}
		if (c->fc_len >= sizeof(c->fc_buf) - 1)
			return -1;
		if (c->fc_ssl)
			n = SSL_read(c->fc_ssl, c->fc_buf + c->fc_len,
				     (int)(sizeof(c->fc_buf) - 1 - c->fc_len));
		else
			n = (int)recv(c->fc_fd, c->fc_buf + c->fc_len, 1, 0);
		if (n <= 0)
			return -1;
		c->fc_len += (size_t)n;
	}
}

/* A whole reply: IMAP one line, SMTP up to the line without "NNN-". */
static int fa_read_reply(struct fa_conn *c, bool smtp)
{
	char line[FA_LINE_MAX];

	do {
		if (fa_read_line(c, line))
			return -1;
	} while (smtp && strlen(line) > 3 && line[3] == '-');
	return 0;
}

static int fa_connect(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fa_timeouts(fd);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The cleartext part of a STARTTLS session, up to the server's go-ahead. */
static int fa_starttls(struct fa_conn *c, bool smtp)
{
	if (fa_read_reply(c, smtp))
		return -1;
	if (smtp && (fa_write(c, "EHLO client.bench\r\n") || fa_read_reply(c, smtp)))
		return -1;
	if (fa_write(c, smtp ? "STARTTLS\r\n" : "a0 STARTTLS\r\n") || fa_read_reply(c, smtp))
		return -1;
	return c->fc_len ? -1 : 0;	/* nothing may follow the go-ahead */
}

/* One session. Return: milliseconds to the first answer, or < 0. */
static double fa_session(SSL_CTX *ctx, int port, bool smtp, bool starttls, const char **why)
{
	struct fa_conn *c = calloc(1, sizeof(*c));
	double t0, ms = -1;

	*why = "connect";
	if (!c)
		return -1;
	c->fc_fd = fa_connect(port);
	if (c->fc_fd < 0)
		goto out;
	*why = "starttls_dialogue";
	if (starttls && fa_starttls(c, smtp))
		goto out;
	*why = "handshake";
	c->fc_ssl = SSL_new(ctx);
	if (!c->fc_ssl || !SSL_set_fd(c->fc_ssl, c->fc_fd) ||
	    !SSL_set_tlsext_host_name(c->fc_ssl, "localhost") || SSL_connect(c->fc_ssl) != 1)
		goto out;
	*why = "greeting";
	if (!starttls && fa_read_reply(c, smtp))
		goto out;
	*why = "first_answer";
	t0 = fa_now_ms();
	if (fa_write(c, smtp ? "EHLO client.bench\r\n" : "a1 NOOP\r\n") || fa_read_reply(c, smtp))
		goto out;
	ms = fa_now_ms() - t0;
out:
	SSL_free(c->fc_ssl);
	if (c->fc_fd >= 0)
		close(c->fc_fd);
	free(c);
	return ms;
}

static int fa_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The @p percentile of the sorted @v, as the host bench always took it. */
static double fa_pct(const double *v, long n, int p)
{
	long i = n * p / 100;

	return v[i < n - 1 ? i : n - 1];
}

static int fa_client(int port, const char *proto, const char *mode, const char *version, long n)
{
	int v = !strcmp(version, "1.2") ? TLS1_2_VERSION : TLS1_3_VERSION;
	bool smtp = !strcmp(proto, "smtp"), starttls = !strcmp(mode, "starttls");
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	double *ms = calloc((size_t)n, sizeof(*ms));
	const char *why = "setup";
	long i;

	if (!ctx || !ms || !SSL_CTX_set_min_proto_version(ctx, v) ||
	    !SSL_CTX_set_max_proto_version(ctx, v))
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	for (i = 0; i < n; i++) {
		ms[i] = fa_session(ctx, port, smtp, starttls, &why);
		if (ms[i] < 0)
			goto fail;
	}
	qsort(ms, (size_t)n, sizeof(*ms), fa_cmp);
	printf("p50=%.2f p99=%.2f n=%ld\n", fa_pct(ms, n, 50), fa_pct(ms, n, 99), n);
	return 0;
fail:
	printf("fail=%s\n", why);
	return 1;
}

/* --- the line backends ------------------------------------------------------ */

struct fa_serve {
	int fs_fd;
	bool fs_smtp;
};

static void *fa_serve(void *arg)
{
	struct fa_serve *s = arg;
	struct fa_conn c = { .fc_fd = s->fs_fd };
	char line[FA_LINE_MAX], answer[FA_LINE_MAX + 16];
	int one = 1;
	size_t tag;

	setsockopt(c.fc_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	fa_timeouts(c.fc_fd);
	if (fa_write(&c, s->fs_smtp ? "220 bench ESMTP\r\n" : "* OK ready\r\n"))
		goto out;
	while (!fa_read_line(&c, line)) {
		tag = strcspn(line, " \r\n");
		if (s->fs_smtp)
			snprintf(answer, sizeof(answer), "250 ok\r\n");
		else
			snprintf(answer, sizeof(answer), "%.*s OK done\r\n", (int)tag, line);
		if (fa_write(&c, answer))
			break;
	}
out:
	close(s->fs_fd);
	free(s);
	return NULL;
}

struct fa_listener {
	int fl_fd;
	bool fl_smtp;
};

static void *fa_accept_loop(void *arg)
{
	const struct fa_listener *l = arg;
	struct fa_serve *s;
	pthread_t t;
	int fd;

	for (;;) {
		fd = accept4(l->fl_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		s = malloc(sizeof(*s));
		if (!s) {
			close(fd);
			continue;
		}
		s->fs_fd = fd;
		s->fs_smtp = l->fl_smtp;
		if (pthread_create(&t, NULL, fa_serve, s)) {
			close(fd);
			free(s);
			continue;
		}
		pthread_detach(t);
	}
	return NULL;
}

static int fa_listen(int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -1;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, 512)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int fa_backend(int imap_port, int smtp_port)
{
	static struct fa_listener imap = { .fl_smtp = false }, smtp = { .fl_smtp = true };
	pthread_t t;

	imap.fl_fd = fa_listen(imap_port);
	smtp.fl_fd = fa_listen(smtp_port);
	if (imap.fl_fd < 0 || smtp.fl_fd < 0) {
		perror("first_answer: listen");
		return 1;
	}
	if (pthread_create(&t, NULL, fa_accept_loop, &imap))
		return 1;
	fa_accept_loop(&smtp);
	return 0;
}

static void fa_usage(void)
{
	fprintf(stderr, "usage: first_answer backend IMAP_PORT SMTP_PORT\n"
			"       first_answer client PORT imap|smtp implicit|starttls 1.2|1.3 N\n");
	exit(2);
}

int main(int argc, char **argv)
{
	long n;

	if (argc == 4 && !strcmp(argv[1], "backend"))
		return fa_backend(atoi(argv[2]), atoi(argv[3]));
	if (argc != 7 || strcmp(argv[1], "client"))
		fa_usage();
	n = strtol(argv[6], NULL, 10);
	if (n < 1 || n > FA_MAX_SESSIONS ||
	    (strcmp(argv[3], "imap") && strcmp(argv[3], "smtp")) ||
	    (strcmp(argv[4], "implicit") && strcmp(argv[4], "starttls")) ||
	    (strcmp(argv[5], "1.2") && strcmp(argv[5], "1.3")))
		fa_usage();
	return fa_client(atoi(argv[2]), argv[3], argv[4], argv[5], n);
}
