// SPDX-License-Identifier: GPL-2.0
/*
 * bench_tag - what registering a connection costs a worker when mailktls.ko
 * is loaded, for scripts/bench-vm.sh (in the VM: the host loads no
 * modules).  Links the agent's objects, like bench_query.
 *
 *   bench_tag worker|shared THREADS COUNT
 *
 * Each of THREADS threads owns a loopback TCP pair and, COUNT times,
 * registers it as a connection (mk_registry_add(): both sockets tagged in
 * the module, an entry in the table) and removes it again, as a worker
 * does for every connection.  "worker": each thread is bound as a worker
 * (mk_registry_worker_open()): its own shard, its own netlink socket, tags
 * sent without waiting.  "shared": threads that are no worker, which take
 * the path every worker took before: one table lock and one netlink socket
 * under a mutex, waiting for each tag's answer.
 *
 * Prints one key=value line:
 *   mode=M threads=T adds=N seconds=S us_per_add=U refused=R
 * (seconds: wall time until the last thread is done; us_per_add: a
 * thread's average time per add + remove).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "registry.h"
#include "registry_tag.h"

#define BT_MAX_THREADS 64

struct bt_thread {
	pthread_t bt_thread;
	unsigned int bt_id;
	bool bt_worker;
	long bt_count;
	double bt_seconds;
	int bt_failed;
};

static double bt_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A connected loopback TCP pair: *@a accepted, *@b connected. */
static int bt_pair(int *a, int *b)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);
	int l;

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM, 0);
	if (l < 0 || bind(l, (struct sockaddr *)&sin, sizeof(sin)) || listen(l, 1) ||
	    getsockname(l, (struct sockaddr *)&sin, &len))
		return -1;
	*b = socket(AF_INET, SOCK_STREAM, 0);
	if (*b < 0 || connect(*b, (struct sockaddr *)&sin, sizeof(sin)))
		return -1;
	*a = accept(l, NULL, NULL);
	close(l);
	return *a < 0 ? -1 : 0;
}

static void bt_session(struct mk_session *s, unsigned int id)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&s->ss_client;

	memset(s, 0, sizeof(*s));
	strcpy(s->ss_listener, "bench");
	strcpy(s->ss_version_name, "TLSv1.3");
	strcpy(s->ss_cipher, "TLS_AES_128_GCM_SHA256");
	strcpy(s->ss_group, "x25519");
	strcpy(s->ss_sni, "mail.example.org");
	s->ss_version = 0x0304;
	s->ss_cipher_id = 0x1301;
	s->ss_ktls_tx = s->ss_ktls_rx = true;
	sin->sin_family = AF_INET;
	sin->sin_port = htons((uint16_t)(40000 + id));
	inet_pton(AF_INET, "198.51.100.7", &sin->sin_addr);
}

static void *bt_run(void *arg)
{
	struct bt_thread *t = arg;
	struct mk_reg_worker *rw = NULL;
	struct mk_session s;
	int a, b;
	double t0;

	if (bt_pair(&a, &b)) {
		t->bt_failed = 1;
		return NULL;
	}
	bt_session(&s, t->bt_id);
	if (t->bt_worker)
		rw = mk_registry_worker_open(t->bt_id);
	t0 = bt_now();
	for (long i = 0; i < t->bt_count; i++) {
		uint64_t id = mk_registry_add(&s, a, b);

		t->bt_failed += !id;
		mk_registry_remove(id);
		/* A worker reads refusals when its ring says so; here, now and then. */
		if (rw && i % 64 == 63)
			mk_registry_worker_input(rw);
	}
	t->bt_seconds = bt_now() - t0;
	mk_registry_worker_close(rw);
	close(a);
	close(b);
	return NULL;
}

int main(int argc, char **argv)
{
	static struct bt_thread th[BT_MAX_THREADS];
	struct mk_reg_tag_stats st;
	double t0, sum = 0;
	int nthreads, failed = 0;
	long count;
	bool worker;

	if (argc != 4 || (strcmp(argv[1], "worker") && strcmp(argv[1], "shared"))) {
		fprintf(stderr, "usage: bench_tag worker|shared THREADS COUNT\n");
		return 2;
	}
	worker = !strcmp(argv[1], "worker");
	nthreads = atoi(argv[2]);
	count = atol(argv[3]);
	if (nthreads < 1 || nthreads > BT_MAX_THREADS || count < 1)
		return 2;
	if (mk_registry_init() || !mk_registry_module_present()) {
		fprintf(stderr, "bench_tag: mailktls.ko is not loaded\n");
		return 1;
	}
	t0 = bt_now();
	for (int i = 0; i < nthreads; i++) {
		th[i] = (struct bt_thread){ .bt_id = (unsigned int)i, .bt_worker = worker,
					    .bt_count = count };
		if (pthread_create(&th[i].bt_thread, NULL, bt_run, &th[i]))
			return 1;
	}
	for (int i = 0; i < nthreads; i++) {
		pthread_join(th[i].bt_thread, NULL);
		failed += th[i].bt_failed;
		sum += th[i].bt_seconds;
	}
	t0 = bt_now() - t0;
	mk_registry_tag_stats(&st);
	printf("mode=%s threads=%d adds=%ld seconds=%.3f us_per_add=%.1f refused=%llu\n", argv[1],
	       nthreads, count * nthreads, t0, sum / nthreads / count * 1e6,
	       (unsigned long long)(st.ts_refused + st.ts_unsent + st.ts_lost));
	return failed ? 1 : 0;
}
