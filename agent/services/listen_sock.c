// SPDX-License-Identifier: GPL-2.0
/*
 * Binding the agent's local services. A unix socket left by a previous run
 * is replaced (nothing else is ever removed), gets mode 0660 so that only
 * the socket's group may connect, and a missing last directory level of
 * its path is created: /run/mailktls is not there after boot when no
 * service manager made it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen_sock.h"

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

/**
 * mk_listen_stream() - a listening stream socket for a local service
 * @sa:      TCP address, or a unix socket path (sockaddr_un)
 * @len:     its length
 * @backlog: for listen(2)
 *
 * Return: the socket (non-blocking, close-on-exec), or a negative errno.
 */
int mk_listen_stream(const struct sockaddr *sa, socklen_t len, int backlog)
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
