// SPDX-License-Identifier: GPL-2.0
/*
 * mailktlsctl: the libmailktls queries for shells and MTA configurations.
 *
 *   mailktlsctl [-s PATH] status
 *   mailktlsctl [-s PATH] query --fd N | --addr IP:PORT
 *   mailktlsctl [-s PATH] received --addr IP:PORT
 *   mailktlsctl metrics [IP:PORT | unix:PATH]
 *   mailktlsctl audit DOMAIN [--resolver ADDR[:PORT]] [--trust-anchor FILE]
 *                            [--json] [--timeout S]       (audit.c)
 *
 * -s PATH names the agent's query socket (default $MAILKTLS_QUERY_SOCKET,
 * then /run/mailktls/query.sock).  Exit status: 0 found, 1 not found,
 * 2 usage, 3 other errors; audit: 0 no MUST failed, 1 a MUST failed,
 * 2 usage, 3 the audit could not run.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "mailktls.h"
#include "mk_addr.h"
#include "audit.h"

#define MK_METRICS_DEFAULT "/run/mailktls/metrics.sock"

static int usage(void)
{
	fprintf(stderr,
		"usage: mailktlsctl [-s PATH] status\n"
		"       mailktlsctl [-s PATH] query --fd N | --addr IP:PORT\n"
		"       mailktlsctl [-s PATH] received --addr IP:PORT\n"
		"       mailktlsctl metrics [IP:PORT | unix:PATH]   (default $MAILKTLS_METRICS,\n"
		"                                                 then unix:" MK_METRICS_DEFAULT ")\n"
		"       mailktlsctl audit DOMAIN [--resolver ADDR[:PORT]] [--trust-anchor FILE]\n"
		"                                [--json] [--timeout S]\n");
	return 2;
}

static int fail(const char *what, int err)
{
	fprintf(stderr, "mailktlsctl: %s: %s\n", what,
		err == -ENOENT ? "no such TLS connection known" : strerror(-err));
	return err == -ENOENT ? 1 : 3;
}

static void print_info(const struct mailktls_info *mi)
{
	char addr[INET6_ADDRSTRLEN + 16] = "";

	mk_addr_format((const struct sockaddr *)&mi->mi_client, addr, sizeof(addr));
	printf("source=%s\n", mi->mi_source == MAILKTLS_FROM_MODULE ? "module" : "query_socket");
	printf("version=%s\nversion_id=0x%04x\n", mailktls_version_name(mi->mi_version),
	       mi->mi_version);
	printf("cipher=%s\ncipher_id=0x%04X\n", mi->mi_cipher, mi->mi_cipher_id);
	printf("group=%s\nsigalg=%s\nsni=%s\nalpn=%s\n", mi->mi_group, mi->mi_sigalg, mi->mi_sni,
	       mi->mi_alpn);
	printf("client_cert=%d\nclient_subject=%s\nverify=%u\n", mi->mi_client_cert ? 1 : 0,
	       mi->mi_client_subject, mi->mi_verify);
	printf("ktls=%s%s%s\n", mi->mi_ktls & MAILKTLS_INFO_KTLS_TX ? "tx" : "",
	       mi->mi_ktls == (MAILKTLS_INFO_KTLS_TX | MAILKTLS_INFO_KTLS_RX) ? "," : "",
	       mi->mi_ktls & MAILKTLS_INFO_KTLS_RX ? "rx" : (mi->mi_ktls ? "" : "none"));
	printf("client=%s\nlistener=%s\n", addr, mi->mi_listener);
}

/* Exactly one of --fd and --addr. */
static int lookup(int argc, char **argv, struct mailktls_info *mi)
{
	static const struct option opts[] = {
		{ "fd", required_argument, NULL, 'f' },
		{ "addr", required_argument, NULL, 'a' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fd = NULL, *addr = NULL;
	struct sockaddr_storage ss;
	char *end;
	long n;
	int c, err;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'f')
			fd = optarg;
		else if (c == 'a')
			addr = optarg;
		else
			return -EINVAL;
	}
	if (optind != argc || !fd == !addr)
		return -EINVAL;
	if (fd) {
		n = strtol(fd, &end, 10);
		if (*end || end == fd || n < 0 || n > 65535)
			return -EINVAL;
		err = mailktls_query_fd((int)n, mi);
	} else {
		if (mk_addr_parse(addr, &ss))
			return -EINVAL;
		err = mailktls_query_addr((struct sockaddr *)&ss, sizeof(ss), mi);
	}
	return err == -EINVAL ? -EIO : err;
}

#define MK_METRICS_TIMEOUT_S 5

/* The agent's metrics_listen endpoint, connected. */
static int metrics_connect(const char *where)
{
	struct timeval tv = { .tv_sec = MK_METRICS_TIMEOUT_S };
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_un *sun = (struct sockaddr_un *)&ss;
	socklen_t len = sizeof(ss);
	int fd;

	if (!strncmp(where, "unix:", 5)) {
		if (strlen(where + 5) >= sizeof(sun->sun_path))
			return -ENAMETOOLONG;
		sun->sun_family = AF_UNIX;
		strcpy(sun->sun_path, where + 5);
		len = sizeof(*sun);
	} else if (mk_addr_parse(where, &ss)) {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ss, len) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

/* GET /metrics, the body on stdout. */
static int cmd_metrics(const char *where)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	size_t len = 0, cap = 65536;
	char *buf = malloc(cap), *body;
	ssize_t n;
	int fd, ok;

	if (!where)
		where = getenv("MAILKTLS_METRICS") ? getenv("MAILKTLS_METRICS") :
						       "unix:" MK_METRICS_DEFAULT;
	if (!buf)
		return fail("metrics", -ENOMEM);
	fd = metrics_connect(where);
	if (fd < 0) {
		free(buf);
		return fail(where, fd == -EINVAL ? -EINVAL : fd);
	}
	if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != sizeof(req) - 1)
		len = 0;
	while ((n = recv(fd, buf + len, cap - len - 1, 0)) > 0) {
		len += (size_t)n;
		if (len + 1 == cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	close(fd);
	buf[len] = '\0';
	body = strstr(buf, "\r\n\r\n");
	ok = !strncmp(buf, "HTTP/1.1 200 ", 13) && body;
	if (ok)
		fputs(body + 4, stdout);
	else
		fprintf(stderr, "mailktlsctl: metrics: %s: %.60s\n", where, len ? buf : "no answer");
	free(buf);
	return ok ? 0 : 3;
}

static int cmd_status(void)
{
	char buf[MAILKTLS_QUERY_ANSWER_MAX];
	FILE *f;
	int n;

	n = mailktls_status(buf, sizeof(buf));
	if (n < 0)
		return fail("status", n);
	fputs(strncmp(buf, "ok\n", 3) ? buf : buf + 3, stdout);
	f = fopen("/proc/net/mailktls", "r");
	if (f) {
		puts("# /proc/net/mailktls");
		while (fgets(buf, sizeof(buf), f))
			fputs(buf, stdout);
		fclose(f);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mailktls_info mi;
	char clause[96];
	int c, err;

	while ((c = getopt(argc, argv, "+s:h")) != -1) {
		if (c != 's')
			return usage();
		if (setenv(MAILKTLS_QUERY_ENV, optarg, 1))
			return 3;
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return usage();
	if (!strcmp(argv[0], "status") && argc == 1)
		return cmd_status();
	if (!strcmp(argv[0], "audit"))
		return audit_main(argc, argv);
	if (!strcmp(argv[0], "metrics") && argc <= 2)
		return cmd_metrics(argc == 2 ? argv[1] : NULL);
	if (strcmp(argv[0], "query") && strcmp(argv[0], "received"))
		return usage();
	err = lookup(argc, argv, &mi);
	if (err == -EINVAL)
		return usage();
	if (err)
		return fail(argv[0], err);
	if (argv[0][0] == 'q') {
		print_info(&mi);
		return 0;
	}
	err = mailktls_received_clause(&mi, clause, sizeof(clause));
	if (err < 0)
		return fail("received", err);
	puts(clause);
	return 0;
}
