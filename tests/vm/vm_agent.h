/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The real agent under test in the VM (agent_ktls, agent_query): mailktlsd
 * started as a child with a fresh certificate and config in a temp dir, one
 * implicit-TLS IMAP listener "t" in front of a backend the test plays (or a
 * real daemon's port: eo_backend_port), its log read back, and the loopback
 * plumbing of client and backend.
 *
 * MK_AGENT names the binary (default agent/mailktlsd; the VM's /mk is the
 * cwd). Header only: each tests/vm test is one program.
 */
#ifndef MAILKTLS_VM_AGENT_H
#define MAILKTLS_VM_AGENT_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "kselftest_harness.h"
#include "vm_tls.h"

/*
 * Whether the test has passed so far (in a teardown: dump the agent's log
 * if not). The harness comes from this machine's linux-source: 6.1's
 * counts in _metadata->passed, the one of 6.9 and later (Debian 13's
 * 6.12) in an exit code read by __test_passed(), the change that also
 * brought XFAIL_ADD.
 */
#ifdef XFAIL_ADD
#define VM_PASSED(m) __test_passed(m)
#else
#define VM_PASSED(m) ((m)->passed)
#endif

/* No progress for this long: fail. 60 s, not less: under QEMU TCG on a
 * loaded 2-core host a direction of the 64 MiB bulk test was seen quiet
 * for over 20 s while the other went on (2 of 6 variants passed). */
#define VM_IO_TIMEOUT_MS 60000

static inline uint64_t vm_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A loopback TCP listening socket on a free port (in *@port), or -1. */
static inline int vm_listen_tcp(int *port, int backlog)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(fd, backlog) ||
	    getsockname(fd, (struct sockaddr *)&sin, &len)) {
		close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

static inline int vm_listen_unix(const char *path, int backlog)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(fd, backlog)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A port free on 127.0.0.1 a moment ago, for the agent's listener. */
static inline int vm_free_port(void)
{
	int port = -1, fd = vm_listen_tcp(&port, 1);

	if (fd < 0)
		return -1;
	close(fd);
	return port;
}

/*
 * The 6.1 harness takes no arguments; scripts/vm-run.sh passes VM_TEST_ARGS
 * to the program, so knobs come as MK_NAME=VALUE arguments: into the
 * environment with them.
 */
static inline void vm_args_to_env(int argc, char **argv)
{
	char *eq;
	int i;

	for (i = 1; i < argc; i++) {
		eq = strchr(argv[i], '=');
		if (!strncmp(argv[i], "MK_", 3) && eq) {
			*eq = '\0';
			setenv(argv[i], eq + 1, 1);
		}
	}
}

/* ------------------------------------------------------------------------ */
/* The agent, its directory, config, log and backend listener. */

struct vm_env {
	char e_dir[64];
	char e_conf[96];
	char e_log[96];
	char e_qsock[96];	/* where the query socket is (or would be) */
	char e_bsock[96];	/* unix backend path, "" for TCP */
	pid_t e_pid;
	int e_port;		/* the agent's listener */
	int e_blfd;		/* backend listening socket */
	int e_bport;
};

/* How vm_env_start() sets the agent up. */
struct vm_env_opts {
	const char *eo_tmpl;	/* mkdtemp() template of the directory */
	const char *eo_cn;	/* the certificate's common name */
	int eo_backlog;		/* of the backend listener */
	bool eo_unix_backend;	/* else TCP on 127.0.0.1 */
	bool eo_qsock;		/* give the agent a query socket */
	bool eo_ticket_keys;	/* and a ticket_keys file (tickets under our callback) */
	const char *eo_listener_extra;	/* more "key = value\n" lines for the listener */
	int eo_backend_port;	/* a real daemon on 127.0.0.1 (vm_dovecot.h), no
				 * listener of the test's; 0: the test's own */
};

static inline const char *vm_agent_path(void)
{
	return getenv("MK_AGENT") ?: "agent/mailktlsd";
}

/* Three random keys in haproxy's format: dir/tickets, mode 0600. */
static inline int vm_write_ticket_keys(const char *dir)
{
	unsigned char raw[80], line[112];
	char path[160];
	FILE *f;
	int i, fd;

	snprintf(path, sizeof(path), "%s/tickets", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f)
		return -1;
	for (i = 0; i < 3; i++) {
		if (RAND_bytes(raw, sizeof(raw)) != 1)
			break;
		EVP_EncodeBlock(line, raw, sizeof(raw));
		fprintf(f, "%s\n", line);
	}
	OPENSSL_cleanse(raw, sizeof(raw));
	return fclose(f) || i < 3 ? -1 : 0;
}

static inline int vm_write_config(const struct vm_env *e, bool qsock, bool tickets,
				  const char *listener_extra)
{
	char backend[128];
	FILE *f;

	if (tickets && vm_write_ticket_keys(e->e_dir))
		return -1;
	f = fopen(e->e_conf, "we");
	if (!f)
		return -1;
	if (e->e_bsock[0])
		snprintf(backend, sizeof(backend), "unix:%s", e->e_bsock);
	else
		snprintf(backend, sizeof(backend), "127.0.0.1:%d", e->e_bport);
	/* MK_KTLS=off runs the same test on the user-space record path (host) */
	fprintf(f, "[global]\nworkers = 1\nlog = stderr\nquery_socket = %s\nktls = %s\n"
		   "[listener t]\nlisten = 127.0.0.1:%d\nprotocol = imap\ntls = implicit\n"
		   "backend = %s\nproxy_protocol = none\n"
		   "certificate = %s/cert.pem\nprivate_key = %s/key.pem\nalpn = off\n",
		   qsock ? e->e_qsock : "", getenv("MK_KTLS") ?: "require", e->e_port, backend,
		   e->e_dir, e->e_dir);
	if (tickets)
		fprintf(f, "ticket_keys = %s/tickets\n", e->e_dir);
	if (listener_extra)
		fputs(listener_extra, f);
	return fclose(f) ? -1 : 0;
}

/* A whole file, NUL-terminated (free it), or NULL. */
static inline char *vm_file_read(const char *path)
{
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	FILE *f = fopen(path, "re");

	if (!f)
		return NULL;
	do {
		if (cap - len < 4097) {
			char *nb = realloc(buf, cap ? cap * 2 : 65536);

			if (!nb)
				break;
			buf = nb;
			cap = cap ? cap * 2 : 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n);
	fclose(f);
	if (buf)
		buf[len] = '\0';
	return buf;
}

/* The last 60 lines of a file on stderr, as "#   @who: " lines. */
static inline void vm_file_dump(const char *path, const char *who)
{
	char *text = vm_file_read(path), *p, *nl;
	int lines = 0, skip;

	for (p = text; p && (p = strchr(p, '\n')); p++)
		lines++;
	skip = lines > 60 ? lines - 60 : 0;
	for (p = text; p && *p; p = nl + 1) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		if (skip-- <= 0)
			fprintf(stderr, "#   %s: %.*s\n", who, (int)(nl - p), p);
	}
	free(text);
}

/* The whole agent log (free it), or NULL. */
static inline char *vm_log_read(const struct vm_env *e)
{
	return vm_file_read(e->e_log);
}

/*
 * The agent's `kind` line ("tls", "close") for the client at local port
 * @cport of listener "t", waited for up to @ms; copied into @out.
 * Return: 0 or -1.
 */
static inline int vm_log_line(const struct vm_env *e, const char *kind, int cport, char *out,
			      size_t len, int ms)
{
	uint64_t end = vm_ms() + (uint64_t)ms;
	char needle[96], *log, *p, *nl;

	snprintf(needle, sizeof(needle), "mailktlsd: %s listener=t client=127.0.0.1:%d ", kind,
		 cport);
	do {
		log = vm_log_read(e);
		p = log ? strstr(log, needle) : NULL;
		if (p) {
			nl = strchr(p, '\n');
			snprintf(out, len, "%.*s", nl ? (int)(nl - p) : (int)strlen(p), p);
			free(log);
			return 0;
		}
		free(log);
		usleep(20000);
	} while (vm_ms() < end);
	return -1;
}

/* The `end=` value of the close line of the client at @cport, or "". */
static inline const char *vm_log_end(const struct vm_env *e, int cport, char *out, size_t len)
{
	char line[512];
	const char *p;

	out[0] = '\0';
	if (vm_log_line(e, "close", cport, line, sizeof(line), 10000))
		return out;
	p = strstr(line, " end=");
	if (p)
		snprintf(out, len, "%s", p + 5);
	return out;
}

/* A number from the environment (a test's size knob), or @def. */
static inline long vm_env_long(const char *name, long def)
{
	const char *v = getenv(name);

	return v && *v ? strtol(v, NULL, 10) : def;
}

/* How often @needle occurs in the file @path (0 when it cannot be read). */
static inline int vm_file_count(const char *path, const char *needle)
{
	char *text = vm_file_read(path), *p;
	int n = 0;

	for (p = text; p && (p = strstr(p, needle)); p += strlen(needle))
		n++;
	free(text);
	return n;
}

/* Wait until @path holds @needle @n times; return how many times it has. */
static inline int vm_file_wait(const char *path, const char *needle, int n, int ms)
{
	uint64_t end = vm_ms() + (uint64_t)ms;
	int have;

	while ((have = vm_file_count(path, needle)) < n && vm_ms() < end)
		usleep(20000);
	return have;
}

/* Lines of the agent log that contain @needle. */
static inline int vm_log_count(const struct vm_env *e, const char *needle)
{
	return vm_file_count(e->e_log, needle);
}

/* Wait until the log holds @n lines with @needle; return how many it has. */
static inline int vm_log_wait(const struct vm_env *e, const char *needle, int n, int ms)
{
	return vm_file_wait(e->e_log, needle, n, ms);
}

/* Does the log have @needle, within @ms? */
static inline bool vm_log_has(const struct vm_env *e, const char *needle, int ms)
{
	return vm_log_wait(e, needle, 1, ms) >= 1;
}

static inline void vm_log_dump(const struct vm_env *e)
{
	char *log = vm_log_read(e), *p, *nl;
	int lines = 0;

	for (p = log; p && *p && lines < 60; p = nl + 1, lines++) {
		nl = strchr(p, '\n');
		if (!nl)
			break;
		fprintf(stderr, "#   agent: %.*s\n", (int)(nl - p), p);
	}
	free(log);
}

/* The directory, backend listener, certificate and config of the agent. */
static inline int vm_env_prepare(struct vm_env *e, const struct vm_env_opts *o, char *why,
				 size_t whylen)
{
	snprintf(e->e_dir, sizeof(e->e_dir), "%s", o->eo_tmpl);
	if (!mkdtemp(e->e_dir)) {
		snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(e->e_conf, sizeof(e->e_conf), "%s/mailktlsd.conf", e->e_dir);
	snprintf(e->e_log, sizeof(e->e_log), "%s/agent.log", e->e_dir);
	snprintf(e->e_qsock, sizeof(e->e_qsock), "%s/q.sock", e->e_dir);
	if (o->eo_backend_port) {
		e->e_bport = o->eo_backend_port;
	} else if (o->eo_unix_backend) {
		snprintf(e->e_bsock, sizeof(e->e_bsock), "%s/b.sock", e->e_dir);
		e->e_blfd = vm_listen_unix(e->e_bsock, o->eo_backlog);
	} else {
		e->e_blfd = vm_listen_tcp(&e->e_bport, o->eo_backlog);
	}
	e->e_port = vm_free_port();
	if ((e->e_blfd < 0 && !o->eo_backend_port) || e->e_port < 0 ||
	    vm_write_cert(e->e_dir, o->eo_cn) ||
	    vm_write_config(e, o->eo_qsock, o->eo_ticket_keys, o->eo_listener_extra)) {
		snprintf(why, whylen, "cannot prepare %s", e->e_dir);
		return -1;
	}
	return 0;
}

/*
 * Run the program @path with @argv as a child of the test, its stdout
 * and stderr into the file @log (truncated), killed if the test dies.
 * Return: its PID, or -1 with the reason in @why.
 */
static inline pid_t vm_spawn_logged(const char *path, char *const argv[], const char *log,
				    char *why, size_t whylen)
{
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	pid_t pid;

	if (fd < 0) {
		snprintf(why, whylen, "%s: %s", log, strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid == 0) {
		/* Never outlive the test, whatever happens to it. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(path, argv);
		_exit(127);
	}
	if (pid < 0)
		snprintf(why, whylen, "fork: %s", strerror(errno));
	close(fd);
	return pid;
}

/* Start the agent with a fresh certificate and config; wait for "started". */
static inline int vm_env_start(struct vm_env *e, const struct vm_env_opts *o, char *why,
			       size_t whylen)
{
	char *argv[] = { "mailktlsd", "-c", e->e_conf, NULL };

	e->e_pid = -1;
	e->e_blfd = -1;
	if (vm_env_prepare(e, o, why, whylen))
		return -1;
	e->e_pid = vm_spawn_logged(vm_agent_path(), argv, e->e_log, why, whylen);
	if (e->e_pid < 0)
		return -1;
	if (!vm_log_has(e, "mailktlsd: started:", 20000)) {
		snprintf(why, whylen, "%s did not start (see its log)", vm_agent_path());
		vm_log_dump(e);
		return -1;
	}
	return 0;
}

/*
 * SIGTERM to a child of the test, a wait of at most @ms, then SIGKILL.
 * Return: its wait status, or -1 if it hung and was killed.
 */
static inline int vm_stop_child(pid_t pid, int ms)
{
	uint64_t end = vm_ms() + (uint64_t)ms;
	int status = -1;
	pid_t r;

	kill(pid, SIGTERM);
	while ((r = waitpid(pid, &status, WNOHANG)) == 0 && vm_ms() < end)
		usleep(20000);
	if (r == 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		status = -1;
	}
	return status;
}

/* Stop the agent (bounded); return its wait status, or -1 if it hung. */
static inline int vm_env_stop(struct vm_env *e)
{
	int status = -1;

	if (e->e_pid > 0)
		status = vm_stop_child(e->e_pid, 15000);
	e->e_pid = -1;
	if (e->e_blfd >= 0)
		close(e->e_blfd);
	e->e_blfd = -1;
	return status;
}

static inline void vm_env_cleanup(struct vm_env *e)
{
	static const char *const files[] = { "cert.pem", "key.pem", "mailktlsd.conf",
					     "agent.log", "q.sock", "b.sock", "tickets" };
	char path[160];
	size_t i;

	if (!e->e_dir[0])
		return;
	for (i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(path, sizeof(path), "%s/%s", e->e_dir, files[i]);
		unlink(path);
	}
	rmdir(e->e_dir);
}

/* Stop the agent; it must exit 0 (after an ASSERT the harness would print
 * an EXPECT's message even when it holds, hence the explicit test). */
static inline void vm_env_check_stop(struct __test_metadata *_metadata, struct vm_env *e)
{
	int status = vm_env_stop(e);
	bool clean = status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0;

	if (!clean)
		TH_LOG("agent wait status %#x (-1: did not stop within 15 s)", status);
	EXPECT_TRUE(clean);
}

/* ------------------------------------------------------------------------ */
/* Client and backend plumbing. */

static inline void vm_set_timeouts(int fd, int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

/* A TCP connection to 127.0.0.1:@port; its local port in *@cport. */
static inline int vm_connect(int port, int *cport)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	int fd, one = 1;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    getsockname(fd, (struct sockaddr *)&sin, &len)) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	vm_set_timeouts(fd, VM_IO_TIMEOUT_MS);
	if (cport)
		*cport = ntohs(sin.sin_port);
	return fd;
}

/* The agent's connection to the backend, waited for up to @ms. */
static inline int vm_backend_accept(const struct vm_env *e, int ms)
{
	struct pollfd p = { .fd = e->e_blfd, .events = POLLIN };
	int fd, one = 1;

	if (poll(&p, 1, ms) != 1)
		return -1;
	fd = accept4(e->e_blfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd >= 0) {
		/* fails harmlessly on a unix backend */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		vm_set_timeouts(fd, VM_IO_TIMEOUT_MS);
	}
	return fd;
}

static inline bool vm_send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static inline bool vm_recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = recv(fd, p, len, 0);
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

#endif
