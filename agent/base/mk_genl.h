/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Talking to the mailktls generic netlink family with libmnl; shared by the
 * agent (tags sockets) and libmailktls (asks).  Static inline so each user
 * links it on its own: the agent objects must not need libmailktls objects
 * (the fuzz targets link the agent alone), nor the library the agent.
 */
#ifndef MAILKTLS_MK_GENL_H
#define MAILKTLS_MK_GENL_H

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include <time.h>
#include <sys/time.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>

#include "uapi/linux/mailktls.h"

struct mk_genl {
	struct mnl_socket *g_nl;
	uint16_t g_family;
	unsigned int g_portid;
	uint32_t g_seq;
};

#define MK_GENL_BUF (MNL_SOCKET_BUFFER_SIZE > 16384 ? MNL_SOCKET_BUFFER_SIZE : 16384)

static inline struct nlmsghdr *mk_genl_put(void *buf, uint16_t type, uint8_t cmd,
					   uint8_t version, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	nlh->nlmsg_seq = seq;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = version;
	return nlh;
}

/*
 * Send @nlh and run @cb on every answer until the ack or NLMSG_DONE.
 * Return: 0, or the negative errno of the kernel's answer or of a socket
 * call.
 */
static inline int mk_genl_talk(struct mk_genl *g, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	char buf[MK_GENL_BUF];
	uint32_t seq = nlh->nlmsg_seq;
	ssize_t n;
	int ret;

	nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(g->g_nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(g->g_nl, buf, sizeof(buf));
		if (n < 0)
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		ret = mnl_cb_run(buf, n, seq, g->g_portid, cb, data);
	} while (ret == MNL_CB_OK);
	if (ret == MNL_CB_ERROR)
		return errno ? -errno : -EPROTO;
	return 0;
}

static inline int mk_genl_family_attr(const struct nlattr *a, void *data)
{
	uint16_t *id = data;

	if (mnl_attr_get_type(a) == CTRL_ATTR_FAMILY_ID &&
	    mnl_attr_validate(a, MNL_TYPE_U16) == 0)
		*id = mnl_attr_get_u16(a);
	return MNL_CB_OK;
}

static inline int mk_genl_family_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), mk_genl_family_attr, data);
}

static inline void mk_genl_close(struct mk_genl *g)
{
	if (g->g_nl)
		mnl_socket_close(g->g_nl);
	g->g_nl = NULL;
}

/*
 * A bound generic netlink socket in @g (zeroed first), of socket type
 * flags @flags (SOCK_CLOEXEC, SOCK_NONBLOCK). Return: 0 or a negative
 * errno, @g then closed.
 */
static inline int mk_genl_socket(struct mk_genl *g, int flags)
{
	int err;

	memset(g, 0, sizeof(*g));
	g->g_nl = mnl_socket_open2(NETLINK_GENERIC, flags);
	if (!g->g_nl)
		return -errno;
	if (mnl_socket_bind(g->g_nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		err = -errno;
		mk_genl_close(g);
		return err;
	}
	g->g_portid = mnl_socket_get_portid(g->g_nl);
	return 0;
}

/*
 * Open a generic netlink socket and resolve the mailktls family.
 * Return: 0, -ENOENT when the module is not loaded, or a negative errno.
 */
static inline int mk_genl_open(struct mk_genl *g)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct timeval tv = { .tv_sec = 2 };
	struct nlmsghdr *nlh;
	int err;

	err = mk_genl_socket(g, SOCK_CLOEXEC);
	if (err)
		return err;
	/* A stuck kernel answer must not hang a mail daemon. */
	setsockopt(mnl_socket_get_fd(g->g_nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	g->g_seq = (uint32_t)getpid() ^ (uint32_t)time(NULL);

	nlh = mk_genl_put(buf, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, 1, 0, ++g->g_seq);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, MAILKTLS_GENL_NAME);
	err = mk_genl_talk(g, nlh, mk_genl_family_cb, &g->g_family);
	if (err)
		goto out_close;
	if (!g->g_family) {
		err = -ENOENT;
		goto out_close;
	}
	return 0;

out_close:
	mk_genl_close(g);
	return err;
}

static inline struct nlmsghdr *mk_genl_cmd(struct mk_genl *g, void *buf, uint8_t cmd,
					   uint16_t flags)
{
	return mk_genl_put(buf, g->g_family, cmd, MAILKTLS_GENL_VERSION, flags, ++g->g_seq);
}

#endif
