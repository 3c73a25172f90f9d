// SPDX-License-Identifier: GPL-2.0
/*
 * libmailktls: ask the module, then the agent's query socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <linux/sock_diag.h>
#include <linux/unix_diag.h>

#include "mailktls.h"
#include "mk_addr.h"
#include "mk_genl.h"

#define MK_API __attribute__((visibility("default")))
#define MK_QS_TIMEOUT_MS 2000

/* The whole exchange with the agent, from connect to the empty line. */
static int mk_qs_timeout_ms(void)
{
	const char *v = getenv(MAILKTLS_QUERY_TIMEOUT_ENV);
	char *end;
	long ms;

	if (!v || !*v)
		return MK_QS_TIMEOUT_MS;
	ms = strtol(v, &end, 10);
	if (*end || ms < 1 || ms > MK_QS_TIMEOUT_MS)
		return MK_QS_TIMEOUT_MS;
	return (int)ms;
}

static int64_t mk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until @fd is readable before @deadline: 0, -ETIMEDOUT or -errno. */
static int mk_qs_wait(int fd, int64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int64_t left;
	int n;

	for (;;) {
		left = deadline - mk_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

/* --- module ---------------------------------------------------------------- */

static void mk_copy_str(char *dst, size_t len, const struct nlattr *a)
{
	size_t n = mnl_attr_get_payload_len(a);
	const char *s = mnl_attr_get_str(a);

	if (n >= len)
		n = len - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static void mk_set_client(struct mailktls_info *out, const void *addr, size_t alen, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->mi_client;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->mi_client;

	if (alen == 4) {
		sin->sin_family = AF_INET;
		memcpy(&sin->sin_addr, addr, 4);
		sin->sin_port = htons(port);
	} else if (alen == 16) {
		sin6->sin6_family = AF_INET6;
		memcpy(&sin6->sin6_addr, addr, 16);
		sin6->sin6_port = htons(port);
	}
}

struct mk_reply {
	struct mailktls_info *r_out;
	const void *r_addr;
	size_t r_alen;
	uint16_t r_port;
	bool r_got;
};

static int mk_reply_attr(const struct nlattr *a, void *data)
{
	struct mk_reply *r = data;
	struct mailktls_info *o = r->r_out;
	int type = mnl_attr_get_type(a);

	switch (type) {
	case MAILKTLS_A_TLS_VERSION:
	case MAILKTLS_A_CIPHER_ID:
	case MAILKTLS_A_CLIENT_PORT:
		if (mnl_attr_validate(a, MNL_TYPE_U16) < 0)
			return MNL_CB_OK;
		if (type == MAILKTLS_A_TLS_VERSION)
			o->mi_version = mnl_attr_get_u16(a);
		else if (type == MAILKTLS_A_CIPHER_ID)
			o->mi_cipher_id = mnl_attr_get_u16(a);
		else
			r->r_port = mnl_attr_get_u16(a);
		break;
	case MAILKTLS_A_VERIFY_RESULT:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			o->mi_verify = mnl_attr_get_u32(a);
		break;
	case MAILKTLS_A_KTLS:
		if (mnl_attr_validate(a, MNL_TYPE_U8) == 0)
			o->mi_ktls = mnl_attr_get_u8(a);
		break;
	case MAILKTLS_A_CLIENT_ADDR:
		r->r_addr = mnl_attr_get_payload(a);
		r->r_alen = mnl_attr_get_payload_len(a);
		break;
	case MAILKTLS_A_PEER:
		o->mi_peer = true;
		break;
	case MAILKTLS_A_CLIENT_CERT:
		o->mi_client_cert = true;
		break;
	case MAILKTLS_A_CIPHER_NAME:
		mk_copy_str(o->mi_cipher, sizeof(o->mi_cipher), a);
		break;
	case MAILKTLS_A_GROUP:
		mk_copy_str(o->mi_group, sizeof(o->mi_group), a);
		break;
	case MAILKTLS_A_SIGALG:
		mk_copy_str(o->mi_sigalg, sizeof(o->mi_sigalg), a);
		break;
	case MAILKTLS_A_SNI:
		mk_copy_str(o->mi_sni, sizeof(o->mi_sni), a);
		break;
	case MAILKTLS_A_ALPN:
		mk_copy_str(o->mi_alpn, sizeof(o->mi_alpn), a);
		break;
	case MAILKTLS_A_CLIENT_SUBJECT:
		mk_copy_str(o->mi_client_subject, sizeof(o->mi_client_subject), a);
		break;
	case MAILKTLS_A_LISTENER:
		mk_copy_str(o->mi_listener, sizeof(o->mi_listener), a);
		break;
	}
	return MNL_CB_OK;
}

static int mk_reply_cb(const struct nlmsghdr *nlh, void *data)
{
	struct mk_reply *r = data;
	int ret;

	r->r_addr = NULL;
	ret = mnl_attr_parse(nlh, sizeof(struct genlmsghdr), mk_reply_attr, r);
	if (r->r_addr)
		mk_set_client(r->r_out, r->r_addr, r->r_alen, r->r_port);
	r->r_got = true;
	return ret;
}

/* GET or GET_ADDR; -ENOENT also when the module is not loaded. */
static int mk_module_ask(uint8_t cmd, int fd, const struct sockaddr *sa,
			 struct mailktls_info *out)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct mk_reply r = { .r_out = out };
	struct nlmsghdr *nlh;
	struct mk_genl g;
	int err;

	err = mk_genl_open(&g);
	if (err)
		return err;
	nlh = mk_genl_cmd(&g, buf, cmd, 0);
	if (cmd == MAILKTLS_CMD_GET) {
		mnl_attr_put_u32(nlh, MAILKTLS_A_FD, (uint32_t)fd);
	} else if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, 4, &sin->sin_addr);
		mnl_attr_put_u16(nlh, MAILKTLS_A_CLIENT_PORT, ntohs(sin->sin_port));
	} else {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, 16, &sin6->sin6_addr);
		mnl_attr_put_u16(nlh, MAILKTLS_A_CLIENT_PORT, ntohs(sin6->sin6_port));
	}
	memset(out, 0, sizeof(*out));
	err = mk_genl_talk(&g, nlh, mk_reply_cb, &r);
	mk_genl_close(&g);
	if (!err && !r.r_got)
		err = -EPROTO;
	if (!err)
		out->mi_source = MAILKTLS_FROM_MODULE;
	return err;
}

/* --- query socket ---------------------------------------------------------- */

static int mk_qs_connect(int timeout_ms)
{
	const char *path = getenv(MAILKTLS_QUERY_ENV);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct timeval tv = {
		.tv_sec = timeout_ms / 1000,
		.tv_usec = (timeout_ms % 1000) * 1000,
	};
	int fd, err;

	if (!path || !*path)
		path = MAILKTLS_QUERY_SOCKET;
	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		err = errno == ECONNREFUSED ? -ENOENT : -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* Send @req (without "\n"), read the answer up to the empty line. */
static int mk_qs_ask(const char *req, char *ans, size_t len)
{
	char line[MAILKTLS_QUERY_LINE_MAX + 2];
	int timeout_ms = mk_qs_timeout_ms();
	int64_t deadline = mk_now_ms() + timeout_ms;
	size_t got = 0;
	ssize_t n;
	int fd, err = 0, ll;

	ll = snprintf(line, sizeof(line), "%s\n", req);
	if (ll < 0 || (size_t)ll > MAILKTLS_QUERY_LINE_MAX)
		return -EINVAL;
	fd = mk_qs_connect(timeout_ms);
	if (fd < 0)
		return fd;
	if (send(fd, line, ll, MSG_NOSIGNAL) != ll) {
		err = -EIO;
		goto out;
	}
	while (got + 1 < len) {
		/* A trickling agent must not stretch the bound recv by recv. */
		err = mk_qs_wait(fd, deadline);
		if (err)
			goto out;
		n = recv(fd, ans + got, len - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno == EAGAIN ? -ETIMEDOUT : -errno;
			goto out;
		}
		if (n == 0)
			break;
		got += n;
		ans[got] = '\0';
		if (strstr(ans, "\n\n"))
			break;
	}
	ans[got] = '\0';
	if (!strstr(ans, "\n\n"))
		err = got + 1 >= len ? -EMSGSIZE : -EPROTO;
out:
	close(fd);
	return err ? err : (int)got;
}

static void mk_kv(struct mailktls_info *o, const char *k, const char *v)
{
	if (!strcmp(k, "version"))
		o->mi_version = (uint16_t)strtoul(v, NULL, 0);
	else if (!strcmp(k, "cipher_id"))
		o->mi_cipher_id = (uint16_t)strtoul(v, NULL, 0);
	else if (!strcmp(k, "verify"))
		o->mi_verify = (uint32_t)strtoul(v, NULL, 0);
	else if (!strcmp(k, "client_cert"))
		o->mi_client_cert = !strcmp(v, "1");
	else if (!strcmp(k, "ktls"))
		o->mi_ktls = (strstr(v, "tx") ? MAILKTLS_INFO_KTLS_TX : 0) |
			     (strstr(v, "rx") ? MAILKTLS_INFO_KTLS_RX : 0);
	else if (!strcmp(k, "client"))
		mk_addr_parse(v, &o->mi_client);
	else if (!strcmp(k, "cipher"))
		mk_strlcpy(o->mi_cipher, v, sizeof(o->mi_cipher));
	else if (!strcmp(k, "group"))
		mk_strlcpy(o->mi_group, v, sizeof(o->mi_group));
	else if (!strcmp(k, "sigalg"))
		mk_strlcpy(o->mi_sigalg, v, sizeof(o->mi_sigalg));
	else if (!strcmp(k, "sni"))
		mk_strlcpy(o->mi_sni, v, sizeof(o->mi_sni));
	else if (!strcmp(k, "alpn"))
		mk_strlcpy(o->mi_alpn, v, sizeof(o->mi_alpn));
	else if (!strcmp(k, "client_subject"))
		mk_strlcpy(o->mi_client_subject, v, sizeof(o->mi_client_subject));
	else if (!strcmp(k, "listener"))
		mk_strlcpy(o->mi_listener, v, sizeof(o->mi_listener));
}

/* Parse an answer (modified in place). */
static int mk_qs_parse(char *ans, struct mailktls_info *o)
{
	char *line, *save = NULL, *eq;

	line = strtok_r(ans, "\n", &save);
	if (!line)
		return -EPROTO;
	if (!strcmp(line, "error notfound"))
		return -ENOENT;
	if (strcmp(line, "ok"))
		return -EPROTO;
	memset(o, 0, sizeof(*o));
	while ((line = strtok_r(NULL, "\n", &save))) {
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		mk_kv(o, line, eq + 1);
	}
	o->mi_source = MAILKTLS_FROM_QUERY_SOCKET;
	return 0;
}

static int mk_qs_query(const char *req, struct mailktls_info *out)
{
	char ans[MAILKTLS_QUERY_ANSWER_MAX];
	int n;

	n = mk_qs_ask(req, ans, sizeof(ans));
	if (n < 0)
		return n;
	return mk_qs_parse(ans, out);
}

/* --- AF_UNIX peer inode through sock_diag ------------------------------------ */

struct mk_diag_peer {
	uint32_t dp_ino;
	bool dp_seen;			/* UNIX_DIAG_PEER was there */
};

static int mk_diag_attr(const struct nlattr *a, void *data)
{
	struct mk_diag_peer *dp = data;

	if (mnl_attr_get_type(a) == UNIX_DIAG_PEER && mnl_attr_validate(a, MNL_TYPE_U32) == 0) {
		dp->dp_ino = mnl_attr_get_u32(a);
		dp->dp_seen = true;
	}
	return MNL_CB_OK;
}

static int mk_diag_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct unix_diag_msg), mk_diag_attr, data);
}

/*
 * The inode of the peer of AF_UNIX socket @fd.  Return: 0; -ENOTCONN when
 * it never had a peer; -ENOENT when the peer was closed: the kernel still
 * names it, with inode 0, but the connection is over, so neither the
 * module nor the agent knows it any more (as for a TCP peer that left).
 */
static int mk_unix_peer_inode(int fd, uint32_t *peer)
{
	struct mk_diag_peer dp = { 0 };
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct unix_diag_req *req;
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	struct stat st;
	unsigned int portid;
	ssize_t n;
	int ret, err = 0;

	*peer = 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	nl = mnl_socket_open2(NETLINK_SOCK_DIAG, SOCK_CLOEXEC);
	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = 1;
	req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = AF_UNIX;
	req->udiag_states = -1;
	req->udiag_ino = (uint32_t)st.st_ino;
	req->udiag_show = UDIAG_SHOW_PEER;
	req->udiag_cookie[0] = req->udiag_cookie[1] = ~0U;
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		err = -errno;
		goto out;
	}
	n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
	if (n < 0) {
		err = -errno;
		goto out;
	}
	ret = mnl_cb_run(buf, n, 1, portid, mk_diag_cb, &dp);
	if (ret == MNL_CB_ERROR)
		err = -errno;
	else if (!dp.dp_seen)
		err = -ENOTCONN;
	else if (!dp.dp_ino)
		err = -ENOENT;
	*peer = dp.dp_ino;
out:
	mnl_socket_close(nl);
	return err;
}

/* --- API ------------------------------------------------------------------- */

static int mk_fd_request(int fd, char *req, size_t len)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char addr[INET6_ADDRSTRLEN + 16];
	uint32_t ino;
	int err;

	if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	if (ss.ss_family == AF_UNIX) {
		err = mk_unix_peer_inode(fd, &ino);
		if (err)
			return err;
		snprintf(req, len, "QUERY INODE %u", ino);
		return 0;
	}
	sl = sizeof(ss);
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) < 0)
		return -errno;
	err = mk_addr_format((struct sockaddr *)&ss, addr, sizeof(addr));
	if (err)
		return err;
	snprintf(req, len, "QUERY PEER %s", addr);
	return 0;
}

/**
 * mailktls_query_fd() - which TLS did the peer of this socket negotiate?
 * @fd:  a connected TCP or AF_UNIX stream socket
 * @out: the answer
 *
 * Return: 0, -ENOENT, or another negative errno.
 */
MK_API int mailktls_query_fd(int fd, struct mailktls_info *out)
{
	char req[MAILKTLS_QUERY_LINE_MAX];
	int err;

	if (!out)
		return -EINVAL;
	err = mk_module_ask(MAILKTLS_CMD_GET, fd, NULL, out);
	if (err != -ENOENT)
		return err;
	err = mk_fd_request(fd, req, sizeof(req));
	if (err)
		return err;
	return mk_qs_query(req, out);
}

/**
 * mailktls_query_addr() - which TLS did the client at this address use?
 * @sa:    AF_INET or AF_INET6 address and port
 * @salen: its length
 * @out:   the answer
 *
 * Return: 0, -ENOENT, or another negative errno.
 */
MK_API int mailktls_query_addr(const struct sockaddr *sa, socklen_t salen,
			       struct mailktls_info *out)
{
	char req[MAILKTLS_QUERY_LINE_MAX];
	char addr[INET6_ADDRSTRLEN + 16];
	int err;

	if (!sa || !out)
		return -EINVAL;
	if ((sa->sa_family == AF_INET && salen < sizeof(struct sockaddr_in)) ||
	    (sa->sa_family == AF_INET6 && salen < sizeof(struct sockaddr_in6)))
		return -EINVAL;
	if (sa->sa_family != AF_INET && sa->sa_family != AF_INET6)
		return -EAFNOSUPPORT;
	err = mk_module_ask(MAILKTLS_CMD_GET_ADDR, -1, sa, out);
	/* Without CAP_NET_ADMIN the module refuses; the agent may answer. */
	if (err != -ENOENT && err != -EPERM)
		return err;
	err = mk_addr_format(sa, addr, sizeof(addr));
	if (err)
		return err;
	snprintf(req, sizeof(req), "QUERY ADDR %s", addr);
	return mk_qs_query(req, out);
}

/**
 * mailktls_status() - the agent's STATUS answer
 * @buf: receives the key=value lines
 * @len: size of @buf
 *
 * Return: the length, or a negative errno.
 */
MK_API int mailktls_status(char *buf, size_t len)
{
	if (!buf || len < 2)
		return -EINVAL;
	return mk_qs_ask("STATUS", buf, len);
}
