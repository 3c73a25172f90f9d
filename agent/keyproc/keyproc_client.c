// SPDX-License-Identifier: GPL-2.0
/*
 * The agent's side of the key processes: spawning them with a control
 * socket each (the main thread's, used under a lock) and one signing
 * channel per worker they serve (keyproc_chan.c), and starting a new one
 * when one dies, whose channels then go to the workers.
 *
 * The key process is spawned by fork+exec of this same binary (posix_spawn
 * of /proc/self/exe -K), which is safe with worker threads running, so a
 * restart needs nothing the start did not. Its sockets are the only
 * descriptors it inherits besides stdio: every other one of the agent is
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

#include "clock.h"
#include "config.h"
#include "keyproc_chan.h"
#include "log.h"

#define MK_KEYPROC_START_MS 10000	/* loading every key at start-up */

extern char **environ;

struct kp_proc {
	int kp_fd;			/* control socket; -1: not running */
	pid_t kp_pid;			/* 0: not running (a restart is due) */
	uint32_t kp_seq;
};

static struct {
	pthread_mutex_t kc_lock;	/* one request at a time on a control socket;
					 * guards kc_proc */
	struct kp_proc kc_proc[MK_KEYPROC_PROCS_MAX];
	unsigned int kc_nprocs, kc_nchan; /* set once at start-up */
	struct mk_keyproc_chan **kc_chan;
	bool kc_enabled;		/* set once at start-up, then read-only */
} kc = { .kc_lock = PTHREAD_MUTEX_INITIALIZER };

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

/* Move @fd to a number of at least @min, close-on-exec. Return: it, or -1. */
static int fd_above(int fd, int min)
{
	int moved;

	if (fd >= min)
		return fd;
	moved = fcntl(fd, F_DUPFD_CLOEXEC, min);
	close(fd);
	return moved;
}

/*
 * Key process @p with its control socket and one channel per worker it
 * serves: the agent's ends in @fd_out (control) and chan_fd[] (by channel,
 * -1 for channels of other key processes).
 */
static int spawn(const char *path, unsigned int p, int *fd_out, pid_t *pid_out, int *chan_fd,
		 char *err, size_t errlen)
{
	int child[MK_KEYPROC_CHANNELS_MAX + 1], sv[2], ret = 0, top, ctl = -1;
	char nbuf[16], *argv[] = { "mailktlsd", "-K", "-k", nbuf, "-c", (char *)path, NULL };
	posix_spawn_file_actions_t fa;
	struct mk_keyproc_ans ans;
	posix_spawnattr_t attr;
	unsigned int i, n = 0;
	sigset_t none, all;
	pid_t pid;

	for (i = 0; i < kc.kc_nchan; i++)
		chan_fd[i] = -1;
	top = MK_KEYPROC_FD + 1 + (int)kc.kc_nchan;
	/* The child's ends go above the numbers they get in the child, so no
	 * dup2 overwrites one not yet placed; n + 1 of them, control first. */
	for (i = 0; ret == 0 && i <= kc.kc_nchan; i++) {
		if (i > 0 && mk_keyproc_chan_proc(kc.kc_chan[i - 1]) != p)
			continue;
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
			ret = -errno;
			break;
		}
		child[n] = fd_above(sv[1], top);
		if (i == 0)
			ctl = sv[0];
		else
			chan_fd[i - 1] = sv[0];
		if (child[n++] < 0)
			ret = -EMFILE;
	}
	if (ret) {
		snprintf(err, errlen, "key process: socketpair: %s", strerror(-ret));
		goto out_close;
	}
	snprintf(nbuf, sizeof(nbuf), "%u", n - 1);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&fa);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	for (i = 0; i < n; i++)
		posix_spawn_file_actions_adddup2(&fa, child[i], MK_KEYPROC_FD + (int)i);
	ret = -posix_spawn(&pid, "/proc/self/exe", &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	for (i = 0; i < n; i++)
		close(child[i]);
	n = 0;
	if (ret) {
		snprintf(err, errlen, "key process: cannot spawn: %s", strerror(-ret));
		goto out_close;
	}
	ans.ka_status = 0;
	ans.ka_len = 0;
	ret = set_recv_timeout(ctl, MK_KEYPROC_START_MS);
	if (!ret)
		ret = wait_answer(ctl, 0, &ans, mk_now_ms() + MK_KEYPROC_START_MS);
	if (!ret && ans.ka_status)
		ret = ans.ka_status;
	if (!ret)
		ret = set_recv_timeout(ctl, MK_KEYPROC_TIMEOUT_MS);
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
	*fd_out = ctl;
	*pid_out = pid;
	return 0;

out_close:
	for (i = 0; i < n; i++)
		if (child[i] >= 0)
			close(child[i]);
	if (ctl >= 0)
		close(ctl);
	for (i = 0; i < kc.kc_nchan; i++) {
		if (chan_fd[i] >= 0)
			close(chan_fd[i]);
		chan_fd[i] = -1;
	}
	return ret;
}

/* (Re)start key process @p; its channels' new sockets go to the workers. */
static int start_one(const char *path, unsigned int p, char *err, size_t errlen)
{
	int fd, ret, *chan_fd = calloc(kc.kc_nchan ? kc.kc_nchan : 1, sizeof(int));
	unsigned int i;
	pid_t pid;

	if (!chan_fd) {
		snprintf(err, errlen, "key process: out of memory");
		return -ENOMEM;
	}
	ret = spawn(path, p, &fd, &pid, chan_fd, err, errlen);
	if (!ret) {
		pthread_mutex_lock(&kc.kc_lock);
		if (kc.kc_proc[p].kp_fd >= 0)
			close(kc.kc_proc[p].kp_fd);
		kc.kc_proc[p].kp_fd = fd;
		kc.kc_proc[p].kp_pid = pid;
		pthread_mutex_unlock(&kc.kc_lock);
	}
	for (i = 0; i < kc.kc_nchan; i++)
		if (mk_keyproc_chan_proc(kc.kc_chan[i]) == p)
			mk_keyproc_chan_publish(kc.kc_chan[i],
						ret ? MK_KEYPROC_CHAN_DOWN : chan_fd[i]);
	free(chan_fd);
	return ret;
}

int mk_keyproc_start(const char *path, unsigned int nprocs, unsigned int nchan, char *err,
		     size_t errlen)
{
	unsigned int i;
	int ret;

	if (nchan < 1)
		nchan = 1;
	if (nchan > MK_KEYPROC_CHANNELS_MAX)
		nchan = MK_KEYPROC_CHANNELS_MAX;
	nprocs = nprocs < 1 ? 1 : nprocs > nchan ? nchan : nprocs;
	if (nprocs > MK_KEYPROC_PROCS_MAX)
		nprocs = MK_KEYPROC_PROCS_MAX;
	mk_keyproc_async_init();
	kc.kc_chan = calloc(nchan, sizeof(*kc.kc_chan));
	if (!kc.kc_chan) {
		snprintf(err, errlen, "key process: out of memory");
		return -ENOMEM;
	}
	kc.kc_nchan = nchan;
	kc.kc_nprocs = nprocs;
	for (i = 0; i < nprocs; i++)
		kc.kc_proc[i].kp_fd = -1;
	for (i = 0; i < nchan; i++) {
		kc.kc_chan[i] = mk_keyproc_chan_new(i % nprocs);
		if (!kc.kc_chan[i]) {
			snprintf(err, errlen, "key process: out of memory");
			ret = -ENOMEM;
			goto out_stop;
		}
	}
	for (i = 0; i < nprocs; i++) {
		ret = start_one(path, i, err, errlen);
		if (ret)
			goto out_stop;
	}
	kc.kc_enabled = true;
	return 0;

out_stop:
	mk_keyproc_stop();
	return ret;
}

struct mk_keyproc_chan *mk_keyproc_chan_get(unsigned int i)
{
	return kc.kc_enabled && kc.kc_nchan ? kc.kc_chan[i % kc.kc_nchan] : NULL;
}

int mk_keyproc_call(unsigned int i, struct mk_keyproc_req *req, struct mk_keyproc_ans *ans)
{
	struct kp_proc *kp = &kc.kc_proc[i < kc.kc_nprocs ? i : 0];
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
	if (kp->kp_fd < 0) {
		ret = -ENOTCONN;
		goto out;
	}
	req->kr_seq = ++kp->kp_seq;
	if (req->kr_seq == 0)
		req->kr_seq = ++kp->kp_seq;	/* 0 is the start-up answer's */
	if (send(kp->kp_fd, req, offsetof(struct mk_keyproc_req, kr_data) + req->kr_len,
		 MSG_NOSIGNAL) < 0) {
		ret = -EPIPE;
		goto out;
	}
	ret = wait_answer(kp->kp_fd, req->kr_seq, ans, deadline);
out:
	pthread_mutex_unlock(&kc.kc_lock);
	return ret;
}

int mk_keyproc_reload(char *err, size_t errlen)
{
	struct mk_keyproc_req req = { .kr_op = MK_KEYPROC_RELOAD };
	struct mk_keyproc_ans ans;
	unsigned int i;
	int ret;

	for (i = 0; i < kc.kc_nprocs; i++) {
		ret = mk_keyproc_call(i, &req, &ans);
		if (ret) {
			snprintf(err, errlen, "key process: %s", strerror(-ret));
			goto out_abort;
		}
		if (ans.ka_status) {
			snprintf(err, errlen, "%.*s", (int)ans.ka_len, (char *)ans.ka_data);
			ret = ans.ka_status;
			goto out_abort;
		}
		mk_log(LOG_INFO, "key process PID %d loaded %.*s", (int)mk_keyproc_pid(i),
		       (int)ans.ka_len, (char *)ans.ka_data);
	}
	return 0;

out_abort:
	/* The ones that loaded drop what they loaded. */
	while (i-- > 0) {
		req.kr_op = MK_KEYPROC_ABORT;
		mk_keyproc_call(i, &req, &ans);
	}
	return ret;
}

void mk_keyproc_reload_end(bool commit)
{
	struct mk_keyproc_req req = { .kr_op = commit ? MK_KEYPROC_COMMIT : MK_KEYPROC_ABORT };
	struct mk_keyproc_ans ans;
	unsigned int i;
	int ret;

	for (i = 0; i < kc.kc_nprocs; i++) {
		ret = mk_keyproc_call(i, &req, &ans);
		/* A key process that is gone loads the file in force when
		 * restarted. */
		if (ret)
			mk_log(LOG_WARNING, "key process: cannot %s the reload: %s",
			       commit ? "commit" : "abort", strerror(-ret));
	}
}

int mk_keyproc_reap(const char *path)
{
	bool died = false;
	unsigned int i;
	pid_t pid;
	int st;

	/* Only a key process's own end counts: the SIGCHLD of a start that
	 * failed must not bring the next try forward. */
	for (i = 0; kc.kc_enabled && i < kc.kc_nprocs; i++) {
		pid = mk_keyproc_pid(i);
		if (!pid || waitpid(pid, &st, WNOHANG) != pid)
			continue;
		if (WIFSIGNALED(st))
			mk_log(LOG_ERR, "key process PID %d killed by signal %d: starting a new one; "
			       "signatures it owed go to it", (int)pid, WTERMSIG(st));
		else
			mk_log(LOG_ERR, "key process PID %d exited with status %d: starting a new one; "
			       "signatures it owed go to it", (int)pid, WEXITSTATUS(st));
		pthread_mutex_lock(&kc.kc_lock);
		kc.kc_proc[i].kp_pid = 0;
		pthread_mutex_unlock(&kc.kc_lock);
		died = true;
	}
	return died ? mk_keyproc_retry(path) : 0;
}

int mk_keyproc_retry(const char *path)
{
	char err[MK_ERR_MAX];
	unsigned int i;
	int ret = 0, r;
	bool started = false;

	for (i = 0; kc.kc_enabled && i < kc.kc_nprocs; i++) {
		if (mk_keyproc_pid(i))
			continue;
		r = start_one(path, i, err, sizeof(err));
		if (r) {
			mk_log(LOG_ERR, "key process not started again, handshakes that need it fail "
			       "until it is (next try in a second): %s", err);
			ret = r;
		} else {
			started = true;
		}
	}
	return ret ? ret : started ? 1 : 0;
}

bool mk_keyproc_enabled(void)
{
	return kc.kc_enabled;
}

unsigned int mk_keyproc_count(void)
{
	return kc.kc_enabled ? kc.kc_nprocs : 0;
}

pid_t mk_keyproc_pid(unsigned int i)
{
	pid_t pid;

	if (i >= kc.kc_nprocs)
		return 0;
	pthread_mutex_lock(&kc.kc_lock);
	pid = kc.kc_proc[i].kp_pid;
	pthread_mutex_unlock(&kc.kc_lock);
	return pid;
}

void mk_keyproc_stop(void)
{
	pid_t pid[MK_KEYPROC_PROCS_MAX];
	unsigned int i;

	pthread_mutex_lock(&kc.kc_lock);
	for (i = 0; i < kc.kc_nprocs; i++) {
		if (kc.kc_proc[i].kp_fd >= 0)
			close(kc.kc_proc[i].kp_fd);
		kc.kc_proc[i].kp_fd = -1;
		pid[i] = kc.kc_proc[i].kp_pid;
		kc.kc_proc[i].kp_pid = 0;
	}
	pthread_mutex_unlock(&kc.kc_lock);
	for (i = 0; kc.kc_chan && i < kc.kc_nchan; i++) {
		mk_keyproc_chan_free(kc.kc_chan[i]);
		kc.kc_chan[i] = NULL;
	}
	for (i = 0; i < kc.kc_nprocs; i++)
		if (pid[i])
			waitpid(pid[i], NULL, 0);	/* it ends on EOF */
}
