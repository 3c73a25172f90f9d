// SPDX-License-Identifier: GPL-2.0
/*
 * The main thread once the workers run: it waits for signals and for
 * certificate files that changed, and reloads.
 *
 * SIGHUP, and certificate or key files replaced by an ACME client
 * (certwatch.c), build a new runtime from the configuration file and
 * publish it for new connections; established ones keep theirs. Under
 * systemd (Type=notify) the service manager hears READY=1 once every
 * listener is bound, RELOADING=1 then READY=1 around a reload, STOPPING=1
 * when the stop begins; sd_notify() does nothing without NOTIFY_SOCKET.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "keyproc.h"
#include "log.h"
#include "runtime.h"
#include "supervisor.h"

/* Let a renewal write its whole certificate and key before loading them. */
#define MK_CERT_SETTLE_MS 1000
/* A pair that does not load is tried again, less and less often. */
#define MK_CERT_RETRY_MS 5000
#define MK_CERT_RETRY_MAX_MS (5 * 60 * 1000)
/* A key process that could not be started again is retried this often. */
#define MK_KEYPROC_RETRY_MS 1000

/* Every listener is bound and every worker runs. A reload keeps the
 * listeners, so their number from the start holds. */
static void notify_ready(size_t nlisteners, unsigned int nworkers)
{
	sd_notifyf(0, "READY=1\nSTATUS=%zu listener%s, %u worker%s", nlisteners,
		   nlisteners == 1 ? "" : "s", nworkers, nworkers == 1 ? "" : "s");
}

/*
 * Build a new runtime from the file and publish it for new connections.
 * @err: receives why it failed (MK_ERR_MAX bytes)
 * Return: 0, or -1 when the running configuration stays.
 */
static int reload(const char *path, bool ktls, const char *why, char *err)
{
	struct mk_runtime *cur = mk_runtime_current(), *rt;
	bool keys = mk_keyproc_enabled();
	int ret = -1;
	size_t i;

	/* The key process first: the new certificates are matched against the
	 * keys it loads; they are in force only with the new runtime. */
	if (keys && mk_keyproc_reload(err, MK_ERR_MAX))
		goto out;
	rt = mk_runtime_build(path, err, MK_ERR_MAX);
	if (!rt)
		goto out_keys;
	/* Listening sockets stay as they are: a reload changes policies and
	 * certificates, not addresses. */
	if (rt->rt_cfg->cf_nlisteners != cur->rt_cfg->cf_nlisteners)
		goto out_mismatch;
	for (i = 0; i < rt->rt_cfg->cf_nlisteners; i++)
		if (strcmp(rt->rt_cfg->cf_listeners[i].lc_name, cur->rt_cfg->cf_listeners[i].lc_name) ||
		    strcmp(rt->rt_cfg->cf_listeners[i].lc_listen.sa_text,
			   cur->rt_cfg->cf_listeners[i].lc_listen.sa_text))
			goto out_mismatch;
	for (i = 0; i < rt->rt_cfg->cf_nlisteners; i++)
		if (mk_tls_policy_keep_tickets(rt->rt_policies[i], cur->rt_policies[i]))
			mk_log(LOG_WARNING, "listener %s: session tickets from before the reload "
			       "will not resume", rt->rt_cfg->cf_listeners[i].lc_name);
	rt->rt_ktls = ktls;
	if (keys)
		mk_keyproc_reload_end(true);
	mk_runtime_publish(rt);
	/* From here a worker takes the new runtime at its next accept, so a
	 * client that connects once this line is logged gets it. */
	atomic_fetch_add(&mk_reload_generation, 1);
	mk_log(LOG_INFO, "reloaded %s (%s): new connections use the new configuration", path, why);
	ret = 0;
	goto out;

out_mismatch:
	snprintf(err, MK_ERR_MAX, "listeners were added, removed or moved; restart instead");
	mk_runtime_put(rt);
out_keys:
	if (keys)
		mk_keyproc_reload_end(false);
out:
	mk_runtime_put(cur);
	return ret;
}

/* Watch the certificate files of the configuration now in force. */
static void supervisor_watch(struct mk_supervisor *sv)
{
	struct mk_runtime *rt = mk_runtime_current();
	int n;

	if (!rt || sv->sv_cw.cw_fd < 0)
		goto out;
	n = mk_certwatch_set(&sv->sv_cw, rt->rt_cfg);
	if (n < 0)
		mk_log(LOG_WARNING, "cannot watch certificate files (%s): renewals need SIGHUP",
		       strerror(-n));
out:
	mk_runtime_put(rt);
}

/*
 * A reload for the given reason, with systemd told around it.
 * @err: receives why it failed (MK_ERR_MAX bytes)
 */
static int supervisor_reload(struct mk_supervisor *sv, const char *why, char *err)
{
	unsigned int i;
	int ret;

	sd_notify(0, "RELOADING=1");
	ret = reload(sv->sv_path, sv->sv_ktls, why, err);
	if (!ret) {
		for (i = 0; i < sv->sv_nworkers; i++)
			mk_worker_wake(&sv->sv_workers[i]);
		supervisor_watch(sv);
	}
	notify_ready(sv->sv_nlisteners, sv->sv_nworkers);
	return ret;
}

/*
 * Certificate files changed (or a failed try is due again): reload. A pair
 * caught half-written keeps the running certificates with one log line; the
 * next event, or the retry timer, tries again without another line until
 * one load works.
 */
static void supervisor_cert_reload(struct mk_supervisor *sv)
{
	char err[MK_ERR_MAX];

	if (!supervisor_reload(sv, "certificate files changed", err)) {
		sv->sv_cert_failing = false;
		sv->sv_cert_due_ms = 0;
		sv->sv_cert_retry_ms = MK_CERT_RETRY_MS;
		return;
	}
	if (!sv->sv_cert_failing)
		mk_log(LOG_WARNING, "reload failed: certificate files changed but do not load, "
		       "keeping the running ones; trying again when they change, at least every "
		       "%u s: %s", MK_CERT_RETRY_MAX_MS / 1000, err);
	/* A directory removed and made again is a new inode: watch what is
	 * there now, so that its files coming back are seen. */
	supervisor_watch(sv);
	sv->sv_cert_failing = true;
	sv->sv_cert_due_ms = mk_now_ms() + sv->sv_cert_retry_ms;
	if (sv->sv_cert_retry_ms < MK_CERT_RETRY_MAX_MS)
		sv->sv_cert_retry_ms *= 2;
}

/*
 * The key process ended (@retry false), or starting it again failed a
 * while ago (@retry true): start one, and try again later if that fails.
 */
static void supervisor_keyproc(struct mk_supervisor *sv, bool retry)
{
	int ret = retry ? mk_keyproc_retry(sv->sv_path) : mk_keyproc_reap(sv->sv_path);
	unsigned int i;

	/* The workers take the new key process's channels, or learn that
	 * there is none (mk_keyproc_chan_refresh()). */
	if (ret)
		for (i = 0; i < sv->sv_nworkers; i++)
			mk_worker_wake(&sv->sv_workers[i]);
	if (ret < 0)
		sv->sv_keyproc_due_ms = mk_now_ms() + MK_KEYPROC_RETRY_MS;
	else if (retry || ret > 0)
		sv->sv_keyproc_due_ms = 0;
}

/**
 * mk_supervisor_wait() - wait for a signal or a certificate change, and act
 * @sv:  the supervisor
 * @sfd: the signalfd of SIGHUP, SIGTERM, SIGINT and SIGCHLD
 *
 * Return: 0 to go on, 1 when a stop was asked for.
 */
int mk_supervisor_wait(struct mk_supervisor *sv, int sfd)
{
	struct pollfd pfd[2] = {
		{ .fd = sfd, .events = POLLIN },
		{ .fd = sv->sv_cw.cw_fd, .events = POLLIN },
	};
	struct signalfd_siginfo si;
	uint64_t now = mk_now_ms();
	char err[MK_ERR_MAX];
	int timeout = -1;

	if (sv->sv_cert_due_ms)
		timeout = sv->sv_cert_due_ms > now ? (int)(sv->sv_cert_due_ms - now) : 0;
	if (sv->sv_keyproc_due_ms) {
		int t = sv->sv_keyproc_due_ms > now ? (int)(sv->sv_keyproc_due_ms - now) : 0;

		timeout = timeout < 0 || t < timeout ? t : timeout;
	}
	if (poll(pfd, sv->sv_cw.cw_fd >= 0 ? 2 : 1, timeout) < 0)
		return 0;
	if ((pfd[1].revents & POLLIN) && mk_certwatch_changed(&sv->sv_cw))
		sv->sv_cert_due_ms = mk_now_ms() + MK_CERT_SETTLE_MS;
	if (sv->sv_cert_due_ms && mk_now_ms() >= sv->sv_cert_due_ms)
		supervisor_cert_reload(sv);
	if (sv->sv_keyproc_due_ms && mk_now_ms() >= sv->sv_keyproc_due_ms)
		supervisor_keyproc(sv, true);
	if (!(pfd[0].revents & POLLIN) || read(sfd, &si, sizeof(si)) != sizeof(si))
		return 0;
	if (si.ssi_signo == SIGCHLD) {
		supervisor_keyproc(sv, false);
		return 0;
	}
	if (si.ssi_signo == SIGHUP) {
		if (supervisor_reload(sv, "SIGHUP", err))
			mk_log(LOG_ERR, "reload failed, keeping the running configuration: %s", err);
		return 0;
	}
	if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
		sd_notify(0, "STOPPING=1");
		mk_log(LOG_INFO, "stopping: closing every connection with close_notify");
		return 1;
	}
	return 0;
}


/**
 * mk_supervisor_init() - the supervisor before the workers start
 * @sv:         zeroed or not, it is overwritten
 * @path:       the configuration file
 * @ktls:       whether new connections use kernel TLS (decided at start-up)
 * @nlisteners: listeners in the configuration (a reload keeps them)
 */
void mk_supervisor_init(struct mk_supervisor *sv, const char *path, bool ktls, size_t nlisteners)
{
	memset(sv, 0, sizeof(*sv));
	sv->sv_path = path;
	sv->sv_ktls = ktls;
	sv->sv_nlisteners = nlisteners;
	sv->sv_cw.cw_fd = -1;
	sv->sv_cert_retry_ms = MK_CERT_RETRY_MS;
}

/**
 * mk_supervisor_ready() - every worker runs: watch the certificate files
 * and tell systemd
 * @sv:       the supervisor
 * @workers:  the workers, woken after each reload
 * @nworkers: how many
 */
void mk_supervisor_ready(struct mk_supervisor *sv, struct mk_worker *workers,
			 unsigned int nworkers)
{
	int err;

	sv->sv_workers = workers;
	sv->sv_nworkers = nworkers;
	err = mk_certwatch_init(&sv->sv_cw);
	if (err)
		mk_log(LOG_WARNING, "no inotify (%s): certificate renewals need SIGHUP",
		       strerror(-err));
	supervisor_watch(sv);
	notify_ready(sv->sv_nlisteners, sv->sv_nworkers);
}

/**
 * mk_supervisor_free() - stop watching
 * @sv: the supervisor
 */
void mk_supervisor_free(struct mk_supervisor *sv)
{
	mk_certwatch_free(&sv->sv_cw);
}
