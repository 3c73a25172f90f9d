// SPDX-License-Identifier: GPL-2.0
/*
 * The agent's local services: binding, and the thread of each. A unix
 * socket left by a previous run is replaced (nothing else is ever
 * removed), gets mode 0660 so that only the socket's group may connect,
 * and a missing last directory level of its path is created: /run/mailktls
 * is not there after boot when no service manager made it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen_sock.h"
#include "log.h"

/* The directory of @path, the last level only, mode 0755. */
static int listen_mkdir_parent(const char *path)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -ENOENT;
	*slash = '\0';
	return mkdir(dir, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

static int listen_once(const struct sockaddr *sa, socklen_t len, int backlog)
{
	int fd, err, one = 1;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (sa->sa_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, sa, len) < 0 || listen(fd, backlog) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/*
 * A listening stream socket for a local service at @sa: TCP, or a unix
 * socket path. Return: the socket (non-blocking, close-on-exec), or a
 * negative errno.
 */
static int listen_stream(const struct sockaddr *sa, socklen_t len, int backlog)
{
	const struct sockaddr_un *sun = (const struct sockaddr_un *)sa;
	struct stat st;
	int fd;

	if (sa->sa_family != AF_UNIX)
		return listen_once(sa, len, backlog);
	if (lstat(sun->sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(sun->sun_path);
	fd = listen_once(sa, len, backlog);
	if (fd == -ENOENT && listen_mkdir_parent(sun->sun_path) == 0)
		fd = listen_once(sa, len, backlog);
	if (fd >= 0)
		chmod(sun->sun_path, 0660);
	return fd;
}

/**
 * mk_service_open() - bind a local service and make the eventfd that will
 * end its thread
 * @se:      the service, MK_SERVICE_INIT() or stopped
 * @sa:      TCP address, or a unix socket path (sockaddr_un)
 * @len:     its length
 * @backlog: for listen(2)
 *
 * The caller may set up more (an epoll set over both descriptors), then
 * calls mk_service_run(), or mk_service_close() to give up.
 *
 * Return: 0, -EALREADY (running), or a negative errno.
 */
int mk_service_open(struct mk_service *se, const struct sockaddr *sa, socklen_t len,
		    int backlog)
{
	int err;

	if (se->se_running)
		return -EALREADY;
	se->se_stop_fd = eventfd(0, EFD_CLOEXEC);
	if (se->se_stop_fd < 0)
		return -errno;
	se->se_listen_fd = listen_stream(sa, len, backlog);
	if (se->se_listen_fd < 0) {
		err = se->se_listen_fd;
		mk_service_close(se);
		return err;
	}
	if (sa->sa_family == AF_UNIX)
		snprintf(se->se_path, sizeof(se->se_path), "%s",
			 ((const struct sockaddr_un *)sa)->sun_path);
	return 0;
}

/**
 * mk_service_run() - start the thread of a service opened by
 * mk_service_open()
 * @se: the service
 * @fn: the thread; returns when se_stop_fd is readable
 *
 * Return: 0, or a negative errno (the service is then closed).
 */
int mk_service_run(struct mk_service *se, void *(*fn)(void *arg))
{
	int err = -pthread_create(&se->se_thread, NULL, fn, NULL);

	if (err) {
		mk_service_close(se);
		return err;
	}
	se->se_running = true;
	return 0;
}

/**
 * mk_service_close() - close what mk_service_open() made, remove a unix
 * socket it bound
 * @se: the service, its thread not running
 */
void mk_service_close(struct mk_service *se)
{
	if (se->se_listen_fd >= 0)
		close(se->se_listen_fd);
	if (se->se_stop_fd >= 0)
		close(se->se_stop_fd);
	if (se->se_path[0])
		unlink(se->se_path);
	se->se_listen_fd = se->se_stop_fd = -1;
	se->se_path[0] = '\0';
}

/**
 * mk_service_stop() - end the thread of a running service, join it and
 * close the service
 * @se: the service; nothing happens if it is not running
 */
void mk_service_stop(struct mk_service *se)
{
	uint64_t one = 1;

	if (!se->se_running)
		return;
	if (write(se->se_stop_fd, &one, sizeof(one)) != sizeof(one))
		mk_log(LOG_ERR, "%s: cannot wake its thread", se->se_name);
	pthread_join(se->se_thread, NULL);
	mk_service_close(se);
	se->se_running = false;
}
