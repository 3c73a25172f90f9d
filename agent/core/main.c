// SPDX-License-Identifier: GPL-2.0
/*
 * mailktlsd: command line, start-up checks, workers, signals.
 *
 *   mailktlsd -c FILE      run in the foreground
 *   mailktlsd -c FILE -t   check the configuration and exit
 *   mailktlsd -V           version and the kernel features found
 *   mailktlsd -K -k N -c FILE   a key process (keyproc_proto.h), spawned by the agent
 *
 * The main thread only waits for signals: SIGTERM/SIGINT stop (listeners
 * closed, every connection closed with close_notify), SIGHUP reloads the
 * configuration and certificates for new connections.
 *
 * What the main thread does between signals, reloads and certificate
 * renewals included, is in supervisor.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <openssl/opensslv.h>

#include "fdbudget.h"
#include "keyproc.h"
#include "ktls.h"
#include "log.h"
#include "metrics.h"
#include "registry.h"
#include "runtime.h"
#include "stage.h"
#include "supervisor.h"
#include "tls_keys.h"
#include "worker.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: mailktlsd -c FILE [-t]\n"
		   "       mailktlsd -V\n"
		   "  -c FILE  configuration file (INI)\n"
		   "  -t       check the configuration and exit\n"
		   "  -V       print version and kernel features, exit\n");
}

static int print_version(void)
{
	char why[256];
	bool ktls = mk_ktls_probe(why, sizeof(why));

	mk_registry_init();
	printf("mailktlsd %s (%s)\n", MAILKTLS_VERSION, OpenSSL_version(OPENSSL_VERSION));
	printf("ktls: %s%s%s\n", ktls ? "yes (TLS_TX, TLS_RX)" : "no", ktls ? "" : ": ",
	       ktls ? "" : why);
	/* probed, not guessed from the version: distributions backport */
	printf("ktls rekey: %s\n", !ktls ? "no (no kernel TLS)" :
				    mk_ktls_probe_rekey() ? "yes (TLS 1.3 KeyUpdate followed)" :
				    "no (kernel before 6.14: a KeyUpdate closes the connection)");
	printf("module: %s\n", mk_registry_module_present() ? "yes (mailktls genetlink)" :
								"no (query socket only)");
	return 0;
}

/* Decide once whether new connections use kernel TLS. */
static int choose_ktls(struct mk_runtime *rt, bool quiet)
{
	char why[256];
	bool have = mk_ktls_probe(why, sizeof(why)), rekey;

	switch (rt->rt_cfg->cf_ktls) {
	case MK_KTLS_OFF:
		rt->rt_ktls = false;
		if (!quiet)
			mk_log(LOG_INFO, "ktls off by configuration: TLS records in user space");
		return 0;
	case MK_KTLS_REQUIRE:
		if (!have) {
			mk_log(LOG_ERR, "ktls = require, but kernel TLS is unavailable: %s", why);
			return -1;
		}
		break;
	case MK_KTLS_AUTO:
		break;
	}
	rt->rt_ktls = have;
	rekey = have && mk_ktls_probe_rekey();
	if (!quiet)
		mk_log(LOG_INFO, rt->rt_ktls ? "ktls available: TLS records in the kernel (TLS_TX, "
					       "TLS_RX)%s" :
					       "ktls unavailable (%s): TLS records in user space",
		       rt->rt_ktls ? (rekey ? ", rekey (TLS 1.3 KeyUpdate)" : ", no rekey") : why);
	return 0;
}

static unsigned int worker_count(const struct mk_config *cfg)
{
	long n = cfg->cf_workers ? (long)cfg->cf_workers : sysconf(_SC_NPROCESSORS_ONLN);

	return n < 1 ? 1 : n > 256 ? 256 : (unsigned int)n;
}

static void log_listeners(const struct mk_config *cfg, unsigned int nworkers)
{
	size_t i;

	for (i = 0; i < cfg->cf_nlisteners; i++) {
		const struct mk_listener_cfg *l = &cfg->cf_listeners[i];

		mk_log(LOG_INFO, "listener %s: %s %s tls=%s -> %s proxy_protocol=%s", l->lc_name,
		       l->lc_listen.sa_text, mk_protocol_name(l->lc_protocol),
		       l->lc_tls == MK_TLS_IMPLICIT ? "implicit" : "starttls",
		       l->lc_backend.sa_text, l->lc_proxy_v2 ? "v2" : "none");
	}
	mk_log(LOG_INFO, "started: %u worker%s", nworkers, nworkers == 1 ? "" : "s");
}

/* What a hard limit of "unlimited" means: the kernel's per-process cap. */
static rlim_t nofile_cap(void)
{
	unsigned long long n = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");

	if (f) {
		if (fscanf(f, "%llu", &n) != 1)
			n = 0;
		fclose(f);
	}
	return n ? (rlim_t)n : 1048576;
}

/*
 * Connections are bounded by descriptors, and the soft limit is only a
 * default the service manager hands down (1024 under systemd): take what
 * the hard limit allows, as daemons do.
 * Return: the soft limit in force afterwards.
 */
static uint64_t nofile_raise(void)
{
	struct rlimit rl;
	rlim_t was;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 0;
	was = rl.rlim_cur;
	if (rl.rlim_max == RLIM_INFINITY)
		rl.rlim_max = nofile_cap();
	if (rl.rlim_cur >= rl.rlim_max) {
		mk_log(LOG_INFO, "RLIMIT_NOFILE %llu (the hard limit)", (unsigned long long)was);
		return was;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl)) {
		mk_log(LOG_WARNING, "RLIMIT_NOFILE stays %llu: cannot raise it to %llu: %s",
		       (unsigned long long)was, (unsigned long long)rl.rlim_max, strerror(errno));
		return was;
	}
	mk_log(LOG_INFO, "RLIMIT_NOFILE raised from %llu to the hard limit %llu",
	       (unsigned long long)was, (unsigned long long)rl.rlim_cur);
	return rl.rlim_cur;
}

/* Descriptors open now, inherited ones included; 0 if /proc cannot say. */
static unsigned int fds_open(void)
{
	DIR *d = opendir("/proc/self/fd");
	unsigned int n = 0;
	struct dirent *e;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n ? n - 1 : 0;	/* not the directory's own */
}

/* The connection ceiling, said once: an operator must see what bounds it. */
static int admission_init(struct mk_admission *adm, const struct mk_runtime *rt,
			  unsigned int nworkers)
{
	const struct mk_config *cfg = rt->rt_cfg;
	struct mk_fd_budget b = {
		.fb_nofile = nofile_raise(),
		.fb_open = fds_open(),
		.fb_workers = nworkers,
		.fb_listeners = (unsigned int)cfg->cf_nlisteners,
		.fb_ktls = rt->rt_ktls,
	};
	char pipes[96] = "";
	size_t i;

	for (i = 0; i < cfg->cf_nlisteners; i++)
		b.fb_max_connections += cfg->cf_listeners[i].lc_max_connections;
	if (mk_fd_budget_compute(&b)) {
		mk_log(LOG_ERR, "RLIMIT_NOFILE %llu leaves no descriptor for connections: the "
		       "agent itself needs %llu (idle pipes included), a connection %u more",
		       (unsigned long long)b.fb_nofile,
		       (unsigned long long)(b.fb_reserve + 2ull * nworkers * b.fb_pipe_pool),
		       b.fb_per_conn);
		return -1;
	}
	if (b.fb_ktls)
		snprintf(pipes, sizeof(pipes),
			 " (client, backend, two pipes), %u x %u idle pipes pooled", nworkers,
			 b.fb_pipe_pool);
	mk_log(LOG_INFO, "connection ceiling %u (RLIMIT_NOFILE %llu: %u descriptors a connection%s, "
	       "%llu reserved; max_connections %llu in total)", b.fb_ceiling,
	       (unsigned long long)b.fb_nofile, b.fb_per_conn, pipes,
	       (unsigned long long)b.fb_reserve, (unsigned long long)b.fb_max_connections);
	adm->ad_ceiling = b.fb_fd_ceiling;
	adm->ad_pipe_pool = b.fb_pipe_pool;
	return 0;
}

/* The metrics endpoint is for monitoring: the agent runs without it. */
static void metrics_start(const struct mk_sockaddr *addr)
{
	int err = mk_metrics_server_start(addr);

	if (err)
		mk_log(LOG_WARNING, "metrics on %s unavailable: %s", addr->sa_text, strerror(-err));
	else
		mk_log(LOG_INFO, "metrics on %s (GET /metrics)", addr->sa_text);
}

/*
 * No transparent huge pages for this process. What a worker keeps is many
 * small long-lived objects among short-lived handshake buffers, and its
 * 8 MiB stack is almost all untouched: huge pages only inflate that. With
 * THP "always" (Debian's default), khugepaged collapsed such a range into
 * one 2 MiB page at a moment of its choosing, and the resident size of 1,000
 * idle connections doubled in some runs. The setting is process-wide;
 * failure (a kernel without THP) changes nothing.
 */
static void no_huge_pages(void)
{
	prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
}

static int run(const char *path, struct mk_runtime *rt)
{
	unsigned int nworkers = worker_count(rt->rt_cfg), i, started = 0;
	struct mk_supervisor sv;
	static struct mk_admission adm;
	struct mk_worker *workers;
	sigset_t set;
	int sfd, rc = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGPIPE);
	sigaddset(&set, SIGCHLD);	/* the key process ended */
	/* Blocked before any thread exists, so every thread inherits it. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0) {
		mk_log(LOG_ERR, "signalfd: %s", strerror(errno));
		return 1;
	}
	mk_supervisor_init(&sv, path, rt->rt_ktls, rt->rt_cfg->cf_nlisteners);
	if (admission_init(&adm, rt, nworkers))
		return 1;
	mk_registry_set_listeners(rt->rt_cfg);
	mk_metrics_set_listeners(rt->rt_cfg);
	if (rt->rt_cfg->cf_metrics_listen.sa_len)
		metrics_start(&rt->rt_cfg->cf_metrics_listen);
	if (rt->rt_cfg->cf_query_socket[0] && mk_query_server_start(rt->rt_cfg->cf_query_socket))
		mk_log(LOG_WARNING, "query socket %s unavailable; daemons can use the module only",
		       rt->rt_cfg->cf_query_socket);
	no_huge_pages();
	workers = calloc(nworkers, sizeof(*workers));
	if (!workers)
		return 1;
	mk_runtime_publish(rt);
	mk_conn_set_entry(MK_TLS_IMPLICIT, mk_handshake_start);
	mk_conn_set_entry(MK_TLS_STARTTLS, mk_starttls_start);
	mk_conn_set_proxy_entry(mk_proxy_in_start);
	for (i = 0; i < nworkers; i++) {
		if (mk_worker_start(&workers[i], (int)i, rt, &adm)) {
			rc = 1;
			break;
		}
		started++;
	}
	if (!rc) {
		log_listeners(rt->rt_cfg, nworkers);
		mk_supervisor_ready(&sv, workers, started);
	}
	while (!rc && !mk_supervisor_wait(&sv, sfd))
		;
	atomic_store(&mk_stop_requested, true);
	for (i = 0; i < started; i++)
		mk_worker_wake(&workers[i]);
	for (i = 0; i < started; i++) {
		mk_worker_join(&workers[i]);
		rc |= workers[i].w_exit_code;
	}
	mk_supervisor_free(&sv);
	mk_metrics_server_stop();
	mk_query_server_stop();
	mk_runtime_publish(NULL);
	mk_keyproc_stop();
	free(workers);
	close(sfd);
	mk_log(LOG_INFO, "stopped");
	return rc;
}

/*
 * Unless key_process = no, spawn the key process before anything reads a
 * key: the agent then loads certificates only. A configuration check (-t)
 * reads and matches the keys itself: it serves no network, and it reports
 * the same errors without a second process.
 * Return: 0, or -1 with the reason on stderr.
 */
static int keys_apart(const char *path)
{
	struct mk_config *cfg;
	unsigned int nworkers, nprocs;
	char err[MK_ERR_MAX];
	bool apart;

	if (mk_config_load(path, &cfg, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	apart = cfg->cf_key_process;
	nworkers = worker_count(cfg);
	/* auto: signing scales with the cores, up to one per worker. */
	nprocs = cfg->cf_key_processes ? cfg->cf_key_processes :
		 (unsigned int)sysconf(_SC_NPROCESSORS_ONLN);
	mk_log_open(cfg->cf_log);
	mk_config_free(cfg);
	if (!apart) {
		mk_log(LOG_INFO, "key_process = no: private keys in the agent itself");
		return 0;
	}
	if (mk_keyproc_start(path, nprocs, nworkers, err, sizeof(err))) {
		mk_log(LOG_ERR, "%s", err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool test_only = false, key_process = false;
	unsigned long nchan = 0;
	struct mk_runtime *rt;
	char err[MK_ERR_MAX];
	int opt;

	/* An OpenSSL built with enable-sslkeylog (3.5) writes the secrets of
	 * every session to this file, whatever keylog callback the agent
	 * sets: the agent, its workers and its key process never see it. */
	unsetenv("SSLKEYLOGFILE");
	while ((opt = getopt(argc, argv, "c:tVhKk:")) != -1) {
		switch (opt) {
		case 'c':
			path = optarg;
			break;
		case 't':
			test_only = true;
			break;
		case 'V':
			return print_version();
		case 'K':
			key_process = true;
			break;
		case 'k':
			nchan = strtoul(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!path || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (key_process)
		return mk_keyproc_main(path, (unsigned int)nchan);
	if (mk_tls_keys_init() || mk_registry_init()) {
		fprintf(stderr, "mailktlsd: out of memory\n");
		return 1;
	}
	if (!test_only && keys_apart(path))
		return 1;
	rt = mk_runtime_build(path, err, sizeof(err));
	if (!rt) {
		fprintf(stderr, "%s\n", err);
		mk_keyproc_stop();
		return 1;
	}
	if (test_only) {
		printf("configuration ok\n");
		mk_runtime_put(rt);
		return 0;
	}
	mk_log_open(rt->rt_cfg->cf_log);
	if (choose_ktls(rt, false)) {
		mk_runtime_put(rt);
		mk_keyproc_stop();
		return 1;
	}
	return run(path, rt);
}
