// SPDX-License-Identifier: GPL-2.0
/*
 * bench_query - load generator for the agent's query socket, for
 * scripts/bench-query.sh.  Links the agent's objects (like the unit tests):
 * it fills the registry in-process with ENTRIES connections (no TLS, no
 * sockets: mk_registry_add() with made-up sessions, half IPv4, half IPv6),
 * starts the query server on SOCKET, and then for SECONDS:
 *   - CLIENTS threads each ask one lookup after the other, the way
 *     libmailktls does (connect, one line, read to the end, close):
 *     QUERY ADDR, CLAUSE and QUERY PEER in turn, for random connections,
 *     and check every answer;
 *   - with -S, one stalled client stays connected and never sends (when
 *     the server closes it, it connects again at once);
 *   - with -r, a churn thread removes and adds connections at that rate,
 *     as the workers do, and times each call.
 * With -w WORKERS (default 2) the entries are spread over that many
 * workers' shards, as an agent with that many workers holds them, and the
 * churn thread adds as worker 0: a lookup then asks every shard.
 *
 *   bench_query -s SOCKET [-n ENTRIES] [-c CLIENTS] [-d SECONDS] [-r CHURN] [-S] [-w WORKERS]
 *
 * Prints one key=value line:
 *   lookups=N seconds=S rate=R p50_ms= p99_ms= max_ms= errors=N
 *   stall_reconnects=N churn_ops=N churn_p99_us= churn_max_us=
 * It uses only the registry API that every version of the agent has, but
 * for the shards' binding: declared weak below, so that the registry of an
 * agent without shards (scripts/bench-query.sh's "before") links too, and
 * all its entries are in its one table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "registry.h"

#define MAX_CLIENTS 64

/* Registries without shards have neither (see the top). */
struct mk_reg_worker *mk_registry_worker_open(unsigned int id) __attribute__((weak));
void mk_registry_worker_close(struct mk_reg_worker *rw) __attribute__((weak));

static const char *sock_path;
static unsigned int n_entries = 10000, n_clients = 8, seconds = 5, churn_rate, n_workers = 2;
static bool stalled;
static atomic_bool done;
static atomic_ulong stall_reconnects;

struct lane {
	pthread_t l_thread;
	unsigned int l_seed;
	uint32_t *l_us;		/* latency of each lookup, microseconds */
	size_t l_n, l_cap;
	unsigned long l_errors;
};

static int64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Connection @i: its client (IPv4 or IPv6), backend address, inode, SNI. */
static void fill_session(struct mk_session *s, unsigned int i)
{
	struct sockaddr_in *c4 = (struct sockaddr_in *)&s->ss_client;
	struct sockaddr_in6 *c6 = (struct sockaddr_in6 *)&s->ss_client;
	struct sockaddr_in *b4 = (struct sockaddr_in *)&s->ss_backend_local;

	memset(s, 0, sizeof(*s));
	strcpy(s->ss_listener, "submissions");
	if (i % 2) {
		c6->sin6_family = AF_INET6;
		c6->sin6_port = htons((uint16_t)(1024 + i % 60000));
		inet_pton(AF_INET6, "2001:db8::", &c6->sin6_addr);
		c6->sin6_addr.s6_addr[12] = (uint8_t)(i >> 24);
		c6->sin6_addr.s6_addr[13] = (uint8_t)(i >> 16);
		c6->sin6_addr.s6_addr[14] = (uint8_t)(i >> 8);
		c6->sin6_addr.s6_addr[15] = (uint8_t)i;
	} else {
		c4->sin_family = AF_INET;
		c4->sin_port = htons((uint16_t)(1024 + i % 60000));
		c4->sin_addr.s_addr = htonl(0x0a000000u | i);
	}
	b4->sin_family = AF_INET;
	b4->sin_port = htons((uint16_t)(20000 + i % 40000));
	b4->sin_addr.s_addr = htonl(0x7f000000u | (i + 1));
	s->ss_backend_inode = 1000000 + i;
	s->ss_version = 0x0304;
	s->ss_cipher_id = 0x1302;
	strcpy(s->ss_version_name, "TLSv1.3");
	strcpy(s->ss_cipher, "TLS_AES_256_GCM_SHA384");
	strcpy(s->ss_group, "x25519");
	snprintf(s->ss_sni, sizeof(s->ss_sni), "host-%u.example", i);
	strcpy(s->ss_alpn, "smtp");
	s->ss_ktls_tx = s->ss_ktls_rx = true;
}

static int qconnect(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One lookup as libmailktls does it; Return: true when the answer is right. */
static bool lookup(unsigned int i, unsigned int kind)
{
	char req[128], ans[2048], want[64], ip[INET6_ADDRSTRLEN];
	struct mk_session s;
	size_t got = 0;
	ssize_t n;
	int fd, len;

	fill_session(&s, i);
	if (s.ss_client.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&s.ss_client)->sin6_addr, ip, sizeof(ip));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&s.ss_client)->sin_addr, ip, sizeof(ip));
	if (kind == 0)
		len = snprintf(req, sizeof(req), s.ss_client.ss_family == AF_INET6 ?
			       "QUERY ADDR [%s]:%u\n" : "QUERY ADDR %s:%u\n", ip, 1024 + i % 60000);
	else if (kind == 1)
		len = snprintf(req, sizeof(req), s.ss_client.ss_family == AF_INET6 ?
			       "CLAUSE [%s]:%u\n" : "CLAUSE %s:%u\n", ip, 1024 + i % 60000);
	else
		len = snprintf(req, sizeof(req), "QUERY PEER 127.%u.%u.%u:%u\n", ((i + 1) >> 16) & 0xff,
			       ((i + 1) >> 8) & 0xff, (i + 1) & 0xff, 20000 + i % 40000);
	fd = qconnect();
	if (fd < 0)
		return false;
	if (send(fd, req, (size_t)len, MSG_NOSIGNAL) != len) {
		close(fd);
		return false;
	}
	while (got + 1 < sizeof(ans) && (n = recv(fd, ans + got, sizeof(ans) - 1 - got, 0)) > 0)
		got += (size_t)n;
	ans[got] = '\0';
	close(fd);
	if (kind == 1)
		return !strcmp(ans, "tls TLS_AES_256_GCM_SHA384\n");
	snprintf(want, sizeof(want), "\nsni=host-%u.example\n", i);
	return !strncmp(ans, "ok\n", 3) && strstr(ans, want) && strstr(ans, "\n\n");
}

static void *lane_run(void *arg)
{
	struct lane *l = arg;
	unsigned int k = 0;
	int64_t t0;

	while (!atomic_load(&done)) {
		unsigned int i = (unsigned int)rand_r(&l->l_seed) % n_entries;

		t0 = now_us();
		if (!lookup(i, k++ % 3))
			l->l_errors++;
		if (l->l_n == l->l_cap) {
			l->l_cap = l->l_cap ? l->l_cap * 2 : 65536;
			l->l_us = realloc(l->l_us, l->l_cap * sizeof(*l->l_us));
			if (!l->l_us)
				abort();
		}
		l->l_us[l->l_n++] = (uint32_t)(now_us() - t0);
	}
	return NULL;
}

/* Stays connected and silent; connects again when the server closes it. */
static void *stall_run(void *arg)
{
	struct pollfd p = { .events = POLLIN };
	char c;

	while (!atomic_load(&done)) {
		p.fd = qconnect();
		if (p.fd < 0) {
			usleep(1000);
			continue;
		}
		while (!atomic_load(&done)) {
			if (poll(&p, 1, 50) > 0 && recv(p.fd, &c, 1, MSG_DONTWAIT) <= 0) {
				atomic_fetch_add(&stall_reconnects, 1);
				break;
			}
		}
		close(p.fd);
	}
	return NULL;
}

/* The calling thread adds into worker @id's shard from now on. */
static struct mk_reg_worker *worker_bind(unsigned int id)
{
	return mk_registry_worker_open ? mk_registry_worker_open(id) : NULL;
}

/* Back to the shared shard; the entries stay where they were added. */
static void worker_unbind(struct mk_reg_worker *rw)
{
	if (mk_registry_worker_close)
		mk_registry_worker_close(rw);
}

/* @n_entries made-up connections, spread over the workers' shards. */
static int fill_registry(void)
{
	struct mk_reg_worker *rw;
	struct mk_session s;
	unsigned int w, n;

	for (w = 0; w < n_workers; w++) {
		rw = worker_bind(w);
		for (n = w; n < n_entries; n += n_workers) {
			fill_session(&s, n);
			if (!mk_registry_add(&s, -1, -1)) {
				fprintf(stderr, "bench_query: registry full at %u\n", n);
				worker_unbind(rw);
				return -1;
			}
		}
		worker_unbind(rw);
	}
	return 0;
}

struct churn {
	pthread_t ch_thread;
	uint32_t *ch_us;	/* each add or remove, microseconds */
	size_t ch_n, ch_cap;
};

/* Connections n_entries.. come and go; the measured ones stay. */
static void *churn_run(void *arg)
{
	struct churn *ch = arg;
	uint64_t ids[256] = { 0 };
	int64_t next = now_us(), t0;
	unsigned int k = 0;
	struct mk_reg_worker *rw = worker_bind(0);
	struct mk_session s;

	while (!atomic_load(&done) && ch->ch_n + 2 <= ch->ch_cap) {
		unsigned int slot = k % 256;

		fill_session(&s, n_entries + 1 + k % 100000);
		t0 = now_us();
		mk_registry_remove(ids[slot]);
		ch->ch_us[ch->ch_n++] = (uint32_t)(now_us() - t0);
		t0 = now_us();
		ids[slot] = mk_registry_add(&s, -1, -1);
		ch->ch_us[ch->ch_n++] = (uint32_t)(now_us() - t0);
		k++;
		next += 1000000 / churn_rate;
		t0 = now_us();
		if (next > t0)
			usleep((useconds_t)(next - t0));
	}
	for (k = 0; k < 256; k++)
		mk_registry_remove(ids[k]);
	worker_unbind(rw);
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double pct(const uint32_t *v, size_t n, double p)
{
	size_t i = (size_t)(p * (double)(n - 1));

	return n ? v[i] : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: bench_query -s SOCKET [-n ENTRIES] [-c CLIENTS] [-d SECONDS] [-r CHURN_PER_S] [-S] [-w WORKERS]\n");
	exit(2);
}

static void options(int argc, char **argv)
{
	int o;

	while ((o = getopt(argc, argv, "s:n:c:d:r:Sw:")) != -1) {
		switch (o) {
		case 's':
			sock_path = optarg;
			break;
		case 'n':
			n_entries = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			n_clients = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'd':
			seconds = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'r':
			churn_rate = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		case 'S':
			stalled = true;
			break;
		case 'w':
			n_workers = (unsigned int)strtoul(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	if (!sock_path || !n_entries || !n_clients || n_clients > MAX_CLIENTS || !seconds ||
	    seconds > 600 || churn_rate > 100000 || !n_workers || n_workers > 64)
		usage();
}

int main(int argc, char **argv)
{
	static struct lane lanes[MAX_CLIENTS];
	struct churn ch = { 0 };
	pthread_t stall;
	uint32_t *all;
	size_t total = 0, i, at = 0;
	unsigned long errors = 0;
	int64_t t0, t1;
	unsigned int n;

	options(argc, argv);
	if (mk_registry_init() || mk_query_server_start(sock_path)) {
		fprintf(stderr, "bench_query: cannot start the query server on %s\n", sock_path);
		return 1;
	}
	if (fill_registry())
		return 1;
	if (stalled)
		pthread_create(&stall, NULL, stall_run, NULL);
	if (churn_rate) {
		ch.ch_cap = (size_t)churn_rate * seconds * 2 + 2;
		ch.ch_us = calloc(ch.ch_cap, sizeof(*ch.ch_us));
		if (!ch.ch_us)
			return 1;
		pthread_create(&ch.ch_thread, NULL, churn_run, &ch);
	}
	usleep(100000);		/* the stalled client is connected first */
	t0 = now_us();
	for (n = 0; n < n_clients; n++) {
		lanes[n].l_seed = 12345 + n;
		pthread_create(&lanes[n].l_thread, NULL, lane_run, &lanes[n]);
	}
	usleep((useconds_t)seconds * 1000000);
	atomic_store(&done, true);
	for (n = 0; n < n_clients; n++) {
		pthread_join(lanes[n].l_thread, NULL);
		total += lanes[n].l_n;
		errors += lanes[n].l_errors;
	}
	t1 = now_us();
	if (stalled)
		pthread_join(stall, NULL);
	if (churn_rate)
		pthread_join(ch.ch_thread, NULL);
	mk_query_server_stop();

	all = malloc((total + 1) * sizeof(*all));
	if (!all)
		return 1;
	for (n = 0; n < n_clients; n++)
		for (i = 0; i < lanes[n].l_n; i++)
			all[at++] = lanes[n].l_us[i];
	qsort(all, total, sizeof(*all), cmp_u32);
	qsort(ch.ch_us, ch.ch_n, sizeof(*ch.ch_us), cmp_u32);
	printf("lookups=%zu seconds=%.2f rate=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f errors=%lu "
	       "stall_reconnects=%lu churn_ops=%zu churn_p99_us=%.0f churn_max_us=%.0f\n",
	       total, (double)(t1 - t0) / 1e6, (double)total * 1e6 / (double)(t1 - t0),
	       pct(all, total, 0.50) / 1000.0, pct(all, total, 0.99) / 1000.0,
	       total ? all[total - 1] / 1000.0 : 0.0, errors, atomic_load(&stall_reconnects),
	       ch.ch_n, pct(ch.ch_us, ch.ch_n, 0.99), ch.ch_n ? (double)ch.ch_us[ch.ch_n - 1] : 0.0);
	return errors ? 3 : 0;
}
