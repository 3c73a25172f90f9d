// SPDX-License-Identifier: GPL-2.0
/*
 * The agent's side of the key process: spawning it, the one socket every
 * worker thread signs over, and starting a new one when it dies.
 *
 * The key process is spawned by fork+exec of this same binary (posix_spawn
 * of /proc/self/exe -K), which is safe with worker threads running, so a
 * restart needs nothing the start did not. Its socket is the only
 * descriptor it inherits besides stdio: every other one of the agent is
 * close-on-exec, and it closes any stray one itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "keyproc.h"
#include "log.h"
#include "worker.h"

#define MK_KEYPROC_START_MS 10000	/* loading every key at start-up */

extern char **environ;

static struct {
	pthread_mutex_t kc_lock;	/* one request at a time on kc_fd; guards all */
	int kc_fd;			/* -1: no key process */
	pid_t kc_pid;			/* 0: none running (a restart is due) */
	uint32_t kc_seq;
	bool kc_enabled;		/* set once at start-up, then read-only */
} kc = { .kc_lock = PTHREAD_MUTEX_INITIALIZER, .kc_fd = -1 };

/* The bound on one receive on @fd: no poll() before each answer. */
static int set_recv_timeout(int fd, unsigned int ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };

	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ? -errno : 0;
}

/*
 * The answer to request @seq. Each receive waits at most the socket's
 * SO_RCVTIMEO; a late answer to an earlier request is skipped while
 * @deadline has not passed.
 */
static int wait_answer(int fd, uint32_t seq, struct mk_keyproc_ans *ans, uint64_t deadline)
{
	const size_t hdr = offsetof(struct mk_keyproc_ans, ka_data);
	ssize_t n;

	for (;;) {
		n = recv(fd, ans, sizeof(*ans), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return -ETIMEDOUT;
		if (n <= 0)
			return -EPIPE;
		if ((size_t)n < hdr || ans->ka_len > sizeof(ans->ka_data) ||
		    (size_t)n != hdr + ans->ka_len)
			return -EPROTO;
		if (ans->ka_seq == seq)
			return 0;
		if (mk_now_ms() >= deadline)
			return -ETIMEDOUT;
	}
}

static int spawn(const char *path, int *fd_out, pid_t *pid_out, char *err, size_t errlen)
{
	char *argv[] = { "mailktlsd", "-K", "-c", (char *)path, NULL };
	posix_spawn_file_actions_t fa;
	struct mk_keyproc_ans ans;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int sv[2], ret;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		ret = -errno;
		snprintf(err, errlen, "key process: socketpair: %s", strerror(-ret));
		return ret;
	}
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	/* dup2 onto itself would keep close-on-exec: never let sv[1] be it. */
	if (sv[1] == MK_KEYPROC_FD) {
		int moved = fcntl(sv[1], F_DUPFD_CLOEXEC, MK_KEYPROC_FD + 1);

		close(sv[1]);
		sv[1] = moved;
	}
	posix_spawn_file_actions_adddup2(&fa, sv[1], MK_KEYPROC_FD);
	ret = -posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(sv[1]);
	if (ret) {
		snprintf(err, errlen, "key process: cannot spawn: %s", strerror(-ret));
		goto out_close;
	}
	ans.ka_status = 0;
	ans.ka_len = 0;
	ret = set_recv_timeout(sv[0], MK_KEYPROC_START_MS);
	if (!ret)
		ret = wait_answer(sv[0], 0, &ans, mk_now_ms() + MK_KEYPROC_START_MS);
	if (!ret && ans.ka_status)
		ret = ans.ka_status;
	if (!ret)
		ret = set_recv_timeout(sv[0], MK_KEYPROC_TIMEOUT_MS);
	if (ret) {
		if (ans.ka_status && ans.ka_len)
			snprintf(err, errlen, "%.*s", (int)ans.ka_len, (char *)ans.ka_data);
		else
			snprintf(err, errlen, "key process: no answer: %s", strerror(-ret));
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		goto out_close;
	}
	mk_log(LOG_INFO, "key process PID %d holds %.*s", (int)pid, (int)ans.ka_len,
	       (char *)ans.ka_data);
	*fd_out = sv[0];
	*pid_out = pid;
	return 0;

out_close:
	close(sv[0]);
	return ret;
}

int mk_keyproc_start(const char *path, char *err, size_t errlen)
{
	int fd, ret;
	pid_t pid;

	ret = spawn(path, &fd, &pid, err, errlen);
	if (ret)
		return ret;
	pthread_mutex_lock(&kc.kc_lock);
	if (kc.kc_fd >= 0)
		close(kc.kc_fd);
	kc.kc_fd = fd;
	kc.kc_pid = pid;
	kc.kc_enabled = true;
	pthread_mutex_unlock(&kc.kc_lock);
	return 0;
}

int mk_keyproc_call(struct mk_keyproc_req *req, struct mk_keyproc_ans *ans)
{
	uint64_t deadline = mk_now_ms() + MK_KEYPROC_TIMEOUT_MS;
	struct timespec ts;
	int ret;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += MK_KEYPROC_TIMEOUT_MS / 1000;
	ts.tv_nsec += (MK_KEYPROC_TIMEOUT_MS % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	ret = -pthread_mutex_timedlock(&kc.kc_lock, &ts);
	if (ret)
		return ret;
	if (kc.kc_fd < 0) {
		ret = -ENOTCONN;
		goto out;
	}
	req->kr_seq = ++kc.kc_seq;
	if (req->kr_seq == 0)
		req->kr_seq = ++kc.kc_seq;	/* 0 is the start-up answer's */
	if (send(kc.kc_fd, req, offsetof(struct mk_keyproc_req, kr_data) + req->kr_len,
		 MSG_NOSIGNAL) < 0) {
		ret = -EPIPE;
		goto out;
	}
	ret = wait_answer(kc.kc_fd, req->kr_seq, ans, deadline);
out:
	pthread_mutex_unlock(&kc.kc_lock);
	return ret;
}

int mk_keyproc_reload(char *err, size_t errlen)
{
	struct mk_keyproc_req req = { .kr_op = MK_KEYPROC_RELOAD };
	struct mk_keyproc_ans ans;
	int ret = mk_keyproc_call(&req, &ans);

	if (ret) {
		snprintf(err, errlen, "key process: %s", strerror(-ret));
		return ret;
	}
	if (ans.ka_status) {
		snprintf(err, errlen, "%.*s", (int)ans.ka_len, (char *)ans.ka_data);
		return ans.ka_status;
	}
	mk_log(LOG_INFO, "key process PID %d loaded %.*s", (int)mk_keyproc_pid(),
	       (int)ans.ka_len, (char *)ans.ka_data);
	return 0;
}

void mk_keyproc_reload_end(bool commit)
{
	struct mk_keyproc_req req = { .kr_op = commit ? MK_KEYPROC_COMMIT : MK_KEYPROC_ABORT };
	struct mk_keyproc_ans ans;
	int ret = mk_keyproc_call(&req, &ans);

	/* A key process that is gone loads the file in force when restarted. */
	if (ret)
		mk_log(LOG_WARNING, "key process: cannot %s the reload: %s",
		       commit ? "commit" : "abort", strerror(-ret));
}

int mk_keyproc_reap(const char *path)
{
	pid_t pid = mk_keyproc_pid();
	int st;

	/* Only the key process's own end counts: the SIGCHLD of a start that
	 * failed must not bring the next try forward. */
	if (!kc.kc_enabled || !pid || waitpid(pid, &st, WNOHANG) != pid)
		return 0;
	if (WIFSIGNALED(st))
		mk_log(LOG_ERR, "key process PID %d killed by signal %d: starting a new one; "
		       "handshakes signing meanwhile fail", (int)pid, WTERMSIG(st));
	else
		mk_log(LOG_ERR, "key process PID %d exited with status %d: starting a new one; "
		       "handshakes signing meanwhile fail", (int)pid, WEXITSTATUS(st));
	pthread_mutex_lock(&kc.kc_lock);
	kc.kc_pid = 0;
	pthread_mutex_unlock(&kc.kc_lock);
	return mk_keyproc_retry(path);
}

int mk_keyproc_retry(const char *path)
{
	char err[MK_ERR_MAX];
	int ret;

	if (!kc.kc_enabled || mk_keyproc_pid())
		return 0;
	ret = mk_keyproc_start(path, err, sizeof(err));
	if (ret) {
		mk_log(LOG_ERR, "key process not started again, handshakes fail until it is "
		       "(next try in a second): %s", err);
		return ret;
	}
	return 1;
}

bool mk_keyproc_enabled(void)
{
	return kc.kc_enabled;
}

pid_t mk_keyproc_pid(void)
{
	pid_t pid;

	pthread_mutex_lock(&kc.kc_lock);
	pid = kc.kc_pid;
	pthread_mutex_unlock(&kc.kc_lock);
	return pid;
}

void mk_keyproc_stop(void)
{
	pid_t pid;

	pthread_mutex_lock(&kc.kc_lock);
	if (kc.kc_fd >= 0)
		close(kc.kc_fd);
	kc.kc_fd = -1;
	pid = kc.kc_pid;
	kc.kc_pid = 0;
	pthread_mutex_unlock(&kc.kc_lock);
	if (pid)
		waitpid(pid, NULL, 0);	/* it ends on EOF */
}
