/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers for the mailktls.ko VM tests: raw generic netlink commands (the
 * library only asks; the agent tags through registry.c), socket pairs over
 * loopback TCP and AF_UNIX, and /proc readers.
 */
#ifndef MAILKTLS_KMOD_UTIL_H
#define MAILKTLS_KMOD_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "mailktls.h"
#include "mk_addr.h"
#include "mk_genl.h"

#define KM_MODULE_PATH "/mk/kmod/mailktls.ko"

struct km_tag {
	uint16_t version;
	uint16_t cipher_id;
	const char *cipher;
	const char *client;	/* "ip:port" or NULL */
	const char *listener;
};

static inline int km_tag_fd(struct mk_genl *g, int fd, const struct km_tag *t)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mk_genl_cmd(g, buf, MAILKTLS_CMD_TAG, 0);
	struct sockaddr_storage ss;

	mnl_attr_put_u32(nlh, MAILKTLS_A_FD, (uint32_t)fd);
	mnl_attr_put_u16(nlh, MAILKTLS_A_TLS_VERSION, t->version);
	mnl_attr_put_u16(nlh, MAILKTLS_A_CIPHER_ID, t->cipher_id);
	mnl_attr_put_u8(nlh, MAILKTLS_A_KTLS, MAILKTLS_KTLS_TX | MAILKTLS_KTLS_RX);
	if (t->cipher)
		mnl_attr_put_strz(nlh, MAILKTLS_A_CIPHER_NAME, t->cipher);
	if (t->listener)
		mnl_attr_put_strz(nlh, MAILKTLS_A_LISTENER, t->listener);
	if (t->client && mk_addr_parse(t->client, &ss) == 0) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		if (ss.ss_family == AF_INET) {
			mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, 4, &sin->sin_addr);
			mnl_attr_put_u16(nlh, MAILKTLS_A_CLIENT_PORT, ntohs(sin->sin_port));
		} else {
			mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, 16, &sin6->sin6_addr);
			mnl_attr_put_u16(nlh, MAILKTLS_A_CLIENT_PORT, ntohs(sin6->sin6_port));
		}
	}
	return mk_genl_talk(g, nlh, NULL, NULL);
}

static inline int km_untag_fd(struct mk_genl *g, int fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mk_genl_cmd(g, buf, MAILKTLS_CMD_UNTAG, 0);

	mnl_attr_put_u32(nlh, MAILKTLS_A_FD, (uint32_t)fd);
	return mk_genl_talk(g, nlh, NULL, NULL);
}

/* A raw GET on @g, for loops: the library opens a socket per call. */
static inline int km_get_fd(struct mk_genl *g, int fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mk_genl_cmd(g, buf, MAILKTLS_CMD_GET, 0);

	mnl_attr_put_u32(nlh, MAILKTLS_A_FD, (uint32_t)fd);
	return mk_genl_talk(g, nlh, NULL, NULL);
}

/* A raw GET_ADDR: the library would fall back to the query socket. */
static inline int km_get_addr(struct mk_genl *g, const void *addr, int alen, uint16_t port)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mk_genl_cmd(g, buf, MAILKTLS_CMD_GET_ADDR, 0);

	mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, alen, addr);
	mnl_attr_put_u16(nlh, MAILKTLS_A_CLIENT_PORT, port);
	return mk_genl_talk(g, nlh, NULL, NULL);
}

static inline int km_count_cb(const struct nlmsghdr *nlh, void *data)
{
	(*(int *)data)++;
	return MNL_CB_OK;
}

/* Return: number of tags DUMP lists, or a negative errno. */
static inline int km_dump_count(struct mk_genl *g)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mk_genl_cmd(g, buf, MAILKTLS_CMD_DUMP, NLM_F_DUMP);
	int n = 0, err;

	err = mk_genl_talk(g, nlh, km_count_cb, &n);
	return err ? err : n;
}

/* A connected loopback TCP pair: *agent is the connecting end. */
static inline int km_tcp_pair(int family, int *agent, int *daemon)
{
	struct sockaddr_storage ss = { .ss_family = family };
	socklen_t sl = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	int lfd, err = -1;

	if (family == AF_INET)
		((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else
		((struct sockaddr_in6 *)&ss)->sin6_addr = in6addr_loopback;
	lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		return -1;
	if (bind(lfd, (struct sockaddr *)&ss, sl) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&ss, &sl))
		goto out;
	*agent = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*agent < 0)
		goto out;
	if (connect(*agent, (struct sockaddr *)&ss, sl)) {
		close(*agent);
		goto out;
	}
	*daemon = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (*daemon < 0) {
		close(*agent);
		goto out;
	}
	err = 0;
out:
	close(lfd);
	return err;
}

/* A value from /proc/net/mailktls ("key value"), or -1. */
static inline long long km_proc(const char *key)
{
	char line[256], k[128];
	long long v, ret = -1;
	FILE *f = fopen("/proc/net/mailktls", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127s %lld", k, &v) == 2 && !strcmp(k, key))
			ret = v;
	fclose(f);
	return ret;
}

static inline long long km_meminfo(const char *key)
{
	char line[256], k[128];
	long long v, ret = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%127[^:]: %lld", k, &v) == 2 && !strcmp(k, key))
			ret = v;
	fclose(f);
	return ret;
}

/* Wait until the GC has freed the tags of closed sockets (bounded). */
static inline int km_wait_gc(void)
{
	int i;

	for (i = 0; i < 100; i++) {
		if (km_proc("tags_pending_free") == 0)
			return 0;
		usleep(50 * 1000);
	}
	return -1;
}

static inline int km_set_gc_ms(unsigned int ms)
{
	FILE *f = fopen("/sys/module/mailktls/parameters/gc_interval_ms", "w");

	if (!f)
		return -1;
	fprintf(f, "%u\n", ms);
	return fclose(f);
}

static inline double km_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static inline int km_module_loaded(void)
{
	return access("/sys/module/mailktls", F_OK) == 0;
}

#endif
