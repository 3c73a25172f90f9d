// SPDX-License-Identifier: GPL-2.0
/*
 * bench_client - TLS 1.3 client for scripts/bench.sh (OpenSSL, blocking
 * sockets, 127.0.0.1 only). Talks the bench_backend request protocol
 * (greeting, then mode byte + 64-bit big-endian count) through the TLS
 * terminator.
 *
 *   bench_client bulk PORT up|down BYTES
 *       one connection; upload BYTES to the sink (timed until the backend's
 *       acknowledgement) or download BYTES from the source.
 *       Prints: bytes=N seconds=S mbps=R        (MB = 10^6 bytes)
 *   bench_client hs PORT COUNT PROCS
 *       COUNT full handshakes (no resumption) spread over PROCS processes,
 *       each connection also echoes one byte through the backend so that
 *       the server has finished its side, then sends close_notify.
 *       Prints: handshakes=N seconds=S rate=R
 *   bench_client idle PORT COUNT SECONDS [login|greet|silent]
 *       opens COUNT connections and holds them until SIGTERM or SECONDS
 *       have passed, printing "ready N" once all are open. login (the
 *       default): read the logged-in greeting and relay one byte each way,
 *       as in IMAP IDLE; greet: read the pre-login greeting only; silent:
 *       the handshake only (the backend says nothing). See bench_proto.h.
 *
 * Every session uses TLS 1.3 with TLS_AES_128_GCM_SHA256 and X25519 only,
 * and is a full handshake: no session is ever offered for resumption, and
 * a connection the server reports as resumed counts as failed. The server
 * certificate is not verified (self-signed, and verification would only
 * add client CPU to the figures).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "bench_proto.h"

#define BC_IO_SIZE (256 * 1024)
#define BC_IO_TIMEOUT_S 60
#define BC_MAX_PROCS 16
#define BC_MAX_IDLE 20000

static volatile sig_atomic_t bc_stop;

static double bc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void bc_die(const char *what)
{
	fprintf(stderr, "bench_client: %s failed\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static SSL_CTX *bc_ctx(void)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx ||
	    !SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256") ||
	    !SSL_CTX_set1_groups_list(ctx, "X25519"))
		bc_die("SSL_CTX setup");
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	return ctx;
}

static int bc_read_full(SSL *ssl, unsigned char *buf, uint64_t len, size_t chunk);

/*
 * Connect to 127.0.0.1:port, complete a full handshake and read the
 * backend's greeting, @greeting_len bytes; NULL on error.
 */
static SSL *bc_connect_greeted(SSL_CTX *ctx, int port, size_t greeting_len)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	struct timeval tv = { .tv_sec = BC_IO_TIMEOUT_S };
	unsigned char greeting[256];
	int one = 1, fd;
	SSL *ssl;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (greeting_len > sizeof(greeting))
		return NULL;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin))) {
		close(fd);
		return NULL;
	}
	ssl = SSL_new(ctx);
	if (!ssl || !SSL_set_fd(ssl, fd) || SSL_connect(ssl) != 1 || SSL_session_reused(ssl) ||
	    (greeting_len && bc_read_full(ssl, greeting, greeting_len, greeting_len))) {
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	return ssl;
}

static SSL *bc_connect(SSL_CTX *ctx, int port)
{
	return bc_connect_greeted(ctx, port, sizeof(BENCH_GREETING) - 1);
}

static void bc_close(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);

	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
}

static int bc_request(SSL *ssl, char mode, uint64_t count)
{
	unsigned char hdr[9];
	uint64_t be = htobe64(count);

	hdr[0] = mode;
	memcpy(hdr + 1, &be, sizeof(be));
	return SSL_write(ssl, hdr, sizeof(hdr)) == sizeof(hdr) ? 0 : -1;
}

static int bc_read_full(SSL *ssl, unsigned char *buf, uint64_t len, size_t chunk)
{
	while (len) {
		int r = SSL_read(ssl, buf, len < chunk ? len : chunk);

		if (r <= 0)
			return -1;
		len -= r;
	}
	return 0;
}

/*
 * One byte through the backend and back: the server side is up. Request
 * and byte go in one record, as an interactive client would send a command
 * line; two small writes would measure the proxies' Nagle handling instead.
 */
static int bc_echo(SSL *ssl)
{
	unsigned char req[10] = { 'E', 0, 0, 0, 0, 0, 0, 0, 1, 'x' };

	if (SSL_write(ssl, req, sizeof(req)) != sizeof(req))
		return -1;
	return bc_read_full(ssl, req, 1, 1);
}

static int bc_bulk(SSL_CTX *ctx, int port, const char *dir, uint64_t bytes)
{
	unsigned char *buf = calloc(1, BC_IO_SIZE);
	int up = !strcmp(dir, "up");
	uint64_t left = bytes;
	double t0, t1;
	SSL *ssl;

	if (!buf || (!up && strcmp(dir, "down")))
		return 2;
	for (size_t i = 0; i < BC_IO_SIZE; i++)
		buf[i] = (unsigned char)(i * 40503u >> 7);
	ssl = bc_connect(ctx, port);
	if (!ssl)
		bc_die("connect/handshake");
	t0 = bc_now();
	if (bc_request(ssl, up ? 'U' : 'D', bytes))
		bc_die("request");
	if (up) {
		while (left) {
			int n = left < BC_IO_SIZE ? left : BC_IO_SIZE;

			if (SSL_write(ssl, buf, n) != n)
				bc_die("SSL_write");
			left -= n;
		}
		if (bc_read_full(ssl, buf, 1, 1) || buf[0] != 'K')
			bc_die("upload acknowledgement");
	} else if (bc_read_full(ssl, buf, bytes, BC_IO_SIZE)) {
		bc_die("SSL_read");
	}
	t1 = bc_now();
	bc_close(ssl);
	free(buf);
	printf("bytes=%llu seconds=%.3f mbps=%.1f\n", (unsigned long long)bytes, t1 - t0,
	       bytes / (t1 - t0) / 1e6);
	return 0;
}

static int bc_hs_child(SSL_CTX *ctx, int port, long count)
{
	for (long i = 0; i < count; i++) {
		SSL *ssl = bc_connect(ctx, port);

		if (!ssl || bc_echo(ssl)) {
			fprintf(stderr, "bench_client: handshake %ld failed\n", i);
			ERR_print_errors_fp(stderr);
			return 1;
		}
		bc_close(ssl);
	}
	return 0;
}

static int bc_hs(SSL_CTX *ctx, int port, long count, int procs)
{
	pid_t pids[BC_MAX_PROCS];
	int failed = 0;
	double t0;

	if (procs < 1 || procs > BC_MAX_PROCS || count < procs)
		return 2;
	t0 = bc_now();
	for (int i = 0; i < procs; i++) {
		pids[i] = fork();
		if (pids[i] < 0)
			bc_die("fork");
		if (!pids[i])
			_exit(bc_hs_child(ctx, port, count / procs));
	}
	for (int i = 0; i < procs; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
			failed = 1;
	}
	if (failed) {
		fprintf(stderr, "bench_client: a handshake process failed\n");
		return 1;
	}
	count = count / procs * procs;
	t0 = bc_now() - t0;
	printf("handshakes=%ld seconds=%.3f rate=%.1f\n", count, t0, count / t0);
	return 0;
}

static void bc_on_term(int sig)
{
	bc_stop = 1;
}

static int bc_idle(SSL_CTX *ctx, int port, long count, long seconds, const char *state)
{
	bool login = !strcmp(state, "login");
	size_t greeting_len = sizeof(BENCH_GREETING) - 1;
	SSL **conns;

	if (!strcmp(state, "greet"))
		greeting_len = sizeof(BENCH_GREETING_PRELOGIN) - 1;
	else if (!strcmp(state, "silent"))
		greeting_len = 0;
	else if (!login)
		return 2;
	if (count < 1 || count > BC_MAX_IDLE)
		return 2;
	conns = calloc(count, sizeof(*conns));
	if (!conns)
		bc_die("calloc");
	signal(SIGTERM, bc_on_term);
	for (long i = 0; i < count; i++) {
		conns[i] = bc_connect_greeted(ctx, port, greeting_len);
		if (!conns[i] || (login && bc_echo(conns[i]))) {
			fprintf(stderr, "bench_client: idle connection %ld failed\n", i);
			return 1;
		}
	}
	printf("ready %ld\n", count);
	fflush(stdout);
	for (long s = 0; s < seconds * 10 && !bc_stop; s++)
		usleep(100000);
	for (long i = 0; i < count; i++)
		bc_close(conns[i]);
	free(conns);
	return 0;
}

int main(int argc, char **argv)
{
	SSL_CTX *ctx;

	if (argc != 5 && !(argc == 6 && !strcmp(argv[1], "idle"))) {
		fprintf(stderr, "usage: %s bulk PORT up|down BYTES | hs PORT COUNT PROCS |"
			" idle PORT COUNT SECONDS [login|greet|silent]\n", argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	ctx = bc_ctx();
	if (!strcmp(argv[1], "bulk"))
		return bc_bulk(ctx, atoi(argv[2]), argv[3], strtoull(argv[4], NULL, 0));
	if (!strcmp(argv[1], "hs"))
		return bc_hs(ctx, atoi(argv[2]), atol(argv[3]), atoi(argv[4]));
	if (!strcmp(argv[1], "idle"))
		return bc_idle(ctx, atoi(argv[2]), atol(argv[3]), atol(argv[4]),
			       argc == 6 ? argv[5] : "login");
	return 2;
}
