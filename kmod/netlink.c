// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls: the "mailktls" generic netlink family.
 *
 * The family runs with parallel_ops: handlers may run on several CPUs at
 * once and rely on the locking of tags.c alone.  Handlers run in the context
 * of the sending process, so MAILKTLS_A_FD names a file of the caller.
 */
#include <linux/file.h>
#include <linux/net.h>
#include <linux/capability.h>
#include <net/af_unix.h>
#include <net/flow.h>
#include <net/genetlink.h>
#include <net/inet_hashtables.h>
#include <net/inet6_hashtables.h>
#include <net/tcp.h>

#include "mailktls_int.h"

/* Exported, but no longer declared in a public header since 6.10 or so. */
struct sock *unix_peer_get(struct sock *sk);

static const struct nla_policy mk_policy[MAILKTLS_A_MAX + 1] = {
	[MAILKTLS_A_FD]			= { .type = NLA_U32 },
	[MAILKTLS_A_TLS_VERSION]	= { .type = NLA_U16 },
	[MAILKTLS_A_CIPHER_ID]		= { .type = NLA_U16 },
	[MAILKTLS_A_CIPHER_NAME]	= { .type = NLA_NUL_STRING,
					    .len = MAILKTLS_CIPHER_MAX - 1 },
	[MAILKTLS_A_GROUP]		= { .type = NLA_NUL_STRING,
					    .len = MAILKTLS_GROUP_MAX - 1 },
	[MAILKTLS_A_SIGALG]		= { .type = NLA_NUL_STRING,
					    .len = MAILKTLS_SIGALG_MAX - 1 },
	[MAILKTLS_A_SNI]		= { .type = NLA_NUL_STRING,
					    .len = MAILKTLS_SNI_MAX - 1 },
	[MAILKTLS_A_ALPN]		= { .type = NLA_NUL_STRING,
					    .len = MAILKTLS_ALPN_MAX - 1 },
	[MAILKTLS_A_CLIENT_SUBJECT]	= { .type = NLA_NUL_STRING,
					    .len = MAILKTLS_SUBJECT_MAX - 1 },
	[MAILKTLS_A_VERIFY_RESULT]	= { .type = NLA_U32 },
	[MAILKTLS_A_KTLS]		= NLA_POLICY_MAX(NLA_U8, MAILKTLS_KTLS_TX |
							 MAILKTLS_KTLS_RX),
	[MAILKTLS_A_CLIENT_ADDR]	= { .type = NLA_BINARY, .len = 16 },
	[MAILKTLS_A_CLIENT_PORT]	= { .type = NLA_U16 },
	[MAILKTLS_A_LISTENER]		= { .type = NLA_NUL_STRING,
					    .len = MAILKTLS_LISTENER_MAX - 1 },
	[MAILKTLS_A_PEER]		= { .type = NLA_FLAG },
	[MAILKTLS_A_CLIENT_CERT]	= { .type = NLA_FLAG },
};

static struct genl_family mk_family;

static bool mk_sock_supported(const struct sock *sk)
{
	if (sk->sk_type != SOCK_STREAM)
		return false;
	if (sk->sk_family == AF_UNIX)
		return true;
	return (sk->sk_family == AF_INET || sk->sk_family == AF_INET6) &&
	       sk->sk_protocol == IPPROTO_TCP;
}

/* The caller's socket named by MAILKTLS_A_FD, with a file reference. */
static struct socket *mk_fd_socket(struct genl_info *info, int *err)
{
	struct socket *sock;

	if (!info->attrs[MAILKTLS_A_FD]) {
		GENL_SET_ERR_MSG(info, "missing MAILKTLS_A_FD");
		*err = -EINVAL;
		return NULL;
	}
	sock = sockfd_lookup(nla_get_u32(info->attrs[MAILKTLS_A_FD]), err);
	if (!sock)
		return NULL;
	if (!sock->sk || !mk_sock_supported(sock->sk)) {
		sockfd_put(sock);
		*err = -EPROTONOSUPPORT;
		return NULL;
	}
	return sock;
}

/*
 * TAG and UNTAG change a socket that may live in another netns than the
 * netlink socket the core checked: CAP_NET_ADMIN is needed in the tagged
 * socket's own netns.
 */
static struct socket *mk_fd_socket_admin(struct genl_info *info, int *err)
{
	struct socket *sock = mk_fd_socket(info, err);

	if (!sock)
		return NULL;
	if (!ns_capable(sock_net(sock->sk)->user_ns, CAP_NET_ADMIN)) {
		sockfd_put(sock);
		*err = -EPERM;
		return NULL;
	}
	return sock;
}

static void mk_nla_str(char *dst, size_t len, const struct nlattr *nla)
{
	if (nla)
		nla_strscpy(dst, nla, len);
}

static int mk_parse_tag(struct genl_info *info, struct mk_tag_data *d)
{
	struct nlattr **a = info->attrs;

	if (!a[MAILKTLS_A_TLS_VERSION] || !a[MAILKTLS_A_CIPHER_ID]) {
		GENL_SET_ERR_MSG(info, "TAG needs TLS_VERSION and CIPHER_ID");
		return -EINVAL;
	}
	memset(d, 0, sizeof(*d));
	d->td_version = nla_get_u16(a[MAILKTLS_A_TLS_VERSION]);
	d->td_cipher_id = nla_get_u16(a[MAILKTLS_A_CIPHER_ID]);
	if (a[MAILKTLS_A_VERIFY_RESULT])
		d->td_verify = nla_get_u32(a[MAILKTLS_A_VERIFY_RESULT]);
	if (a[MAILKTLS_A_KTLS])
		d->td_ktls = nla_get_u8(a[MAILKTLS_A_KTLS]);
	d->td_client_cert = nla_get_flag(a[MAILKTLS_A_CLIENT_CERT]);
	if (a[MAILKTLS_A_CLIENT_ADDR]) {
		int len = nla_len(a[MAILKTLS_A_CLIENT_ADDR]);

		if (len != 4 && len != 16) {
			GENL_SET_ERR_MSG(info, "CLIENT_ADDR must be 4 or 16 bytes");
			return -EINVAL;
		}
		d->td_addr_len = len;
		nla_memcpy(d->td_addr, a[MAILKTLS_A_CLIENT_ADDR], len);
	}
	if (a[MAILKTLS_A_CLIENT_PORT])
		d->td_port = nla_get_u16(a[MAILKTLS_A_CLIENT_PORT]);
	mk_nla_str(d->td_cipher, sizeof(d->td_cipher), a[MAILKTLS_A_CIPHER_NAME]);
	mk_nla_str(d->td_group, sizeof(d->td_group), a[MAILKTLS_A_GROUP]);
	mk_nla_str(d->td_sigalg, sizeof(d->td_sigalg), a[MAILKTLS_A_SIGALG]);
	mk_nla_str(d->td_sni, sizeof(d->td_sni), a[MAILKTLS_A_SNI]);
	mk_nla_str(d->td_alpn, sizeof(d->td_alpn), a[MAILKTLS_A_ALPN]);
	mk_nla_str(d->td_subject, sizeof(d->td_subject), a[MAILKTLS_A_CLIENT_SUBJECT]);
	mk_nla_str(d->td_listener, sizeof(d->td_listener), a[MAILKTLS_A_LISTENER]);
	return 0;
}

static int mk_put_str(struct sk_buff *skb, int type, const char *s)
{
	return *s ? nla_put_string(skb, type, s) : 0;
}

static int mk_fill(struct sk_buff *skb, const struct mk_tag_data *d, bool peer)
{
	if (nla_put_u16(skb, MAILKTLS_A_TLS_VERSION, d->td_version) ||
	    nla_put_u16(skb, MAILKTLS_A_CIPHER_ID, d->td_cipher_id) ||
	    nla_put_u32(skb, MAILKTLS_A_VERIFY_RESULT, d->td_verify) ||
	    nla_put_u8(skb, MAILKTLS_A_KTLS, d->td_ktls) ||
	    mk_put_str(skb, MAILKTLS_A_CIPHER_NAME, d->td_cipher) ||
	    mk_put_str(skb, MAILKTLS_A_GROUP, d->td_group) ||
	    mk_put_str(skb, MAILKTLS_A_SIGALG, d->td_sigalg) ||
	    mk_put_str(skb, MAILKTLS_A_SNI, d->td_sni) ||
	    mk_put_str(skb, MAILKTLS_A_ALPN, d->td_alpn) ||
	    mk_put_str(skb, MAILKTLS_A_CLIENT_SUBJECT, d->td_subject) ||
	    mk_put_str(skb, MAILKTLS_A_LISTENER, d->td_listener))
		return -EMSGSIZE;
	if (d->td_addr_len &&
	    (nla_put(skb, MAILKTLS_A_CLIENT_ADDR, d->td_addr_len, d->td_addr) ||
	     nla_put_u16(skb, MAILKTLS_A_CLIENT_PORT, d->td_port)))
		return -EMSGSIZE;
	if (d->td_client_cert && nla_put_flag(skb, MAILKTLS_A_CLIENT_CERT))
		return -EMSGSIZE;
	if (peer && nla_put_flag(skb, MAILKTLS_A_PEER))
		return -EMSGSIZE;
	return 0;
}

static int mk_reply(struct genl_info *info, const struct mk_tag_data *d, bool peer)
{
	struct sk_buff *msg;
	void *hdr;
	int err;

	msg = genlmsg_new(NLMSG_GOODSIZE, GFP_KERNEL);
	if (!msg) {
		err = -ENOMEM;
		goto out;
	}
	hdr = genlmsg_put_reply(msg, info, &mk_family, 0, info->genlhdr->cmd);
	if (!hdr) {
		err = -EMSGSIZE;
		goto out_free;
	}
	err = mk_fill(msg, d, peer);
	if (err)
		goto out_free;
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

out_free:
	nlmsg_free(msg);
out:
	return err;
}

static int mk_cmd_tag(struct sk_buff *skb, struct genl_info *info)
{
	struct mk_tag_data *d;
	struct socket *sock;
	int err;

	sock = mk_fd_socket_admin(info, &err);
	if (!sock)
		goto out;
	d = kmalloc(sizeof(*d), GFP_KERNEL);
	if (!d) {
		err = -ENOMEM;
		goto out_put;
	}
	err = mk_parse_tag(info, d);
	if (err)
		goto out_free;
	err = mk_tag_set(sock->sk, d);
out_free:
	kfree(d);
out_put:
	sockfd_put(sock);
out:
	return err;
}

static int mk_cmd_untag(struct sk_buff *skb, struct genl_info *info)
{
	struct socket *sock;
	int err;

	sock = mk_fd_socket_admin(info, &err);
	if (!sock)
		return err;
	err = mk_tag_clear(sock->sk);
	sockfd_put(sock);
	return err;
}

/*
 * The established-socket lookups, by the reversed 4-tuple of @sk, on
 * loopback. Kernels after 6.12 find the table from the netns and take no
 * inet_hashinfo (Kbuild asks the headers and defines MK_LOOKUP_HASHINFO).
 */
static struct sock *mk_lookup4(struct sock *sk)
{
	struct inet_sock *inet = inet_sk(sk);

	return inet_lookup_established(sock_net(sk),
#ifdef MK_LOOKUP_HASHINFO
				       sock_net(sk)->ipv4.tcp_death_row.hashinfo,
#endif
				       inet->inet_rcv_saddr, inet->inet_sport,
				       inet->inet_daddr, inet->inet_dport, LOOPBACK_IFINDEX);
}

#if IS_ENABLED(CONFIG_IPV6)
static struct sock *mk_lookup6(struct sock *sk)
{
	struct inet_sock *inet = inet_sk(sk);

	return __inet6_lookup_established(sock_net(sk),
#ifdef MK_LOOKUP_HASHINFO
					  sock_net(sk)->ipv4.tcp_death_row.hashinfo,
#endif
					  &sk->sk_v6_rcv_saddr, inet->inet_sport,
					  &sk->sk_v6_daddr, ntohs(inet->inet_dport),
					  LOOPBACK_IFINDEX, 0);
}
#endif

/*
 * The other end of a local TCP connection: the established socket in the
 * same netns whose 4-tuple is ours reversed.  Returns a referenced full
 * socket or NULL.
 */
static struct sock *mk_tcp_peer(struct sock *sk)
{
	struct sock *peer;

	if (sk->sk_state != TCP_ESTABLISHED && sk->sk_state != TCP_CLOSE_WAIT)
		return NULL;
#if IS_ENABLED(CONFIG_IPV6)
	if (sk->sk_family == AF_INET6 && !ipv6_addr_v4mapped(&sk->sk_v6_daddr))
		peer = mk_lookup6(sk);
	else
#endif
		peer = mk_lookup4(sk);
	if (peer && !sk_fullsock(peer)) {
		sock_gen_put(peer);
		peer = NULL;
	}
	return peer;
}

static int mk_peer_tag(struct sock *sk, struct mk_tag_data *d)
{
	struct sock *peer;
	int err;

	if (sk->sk_family == AF_UNIX)
		peer = unix_peer_get(sk);
	else
		peer = mk_tcp_peer(sk);
	if (!peer)
		return -ENOENT;
	err = mk_tag_get(peer, d);
	sock_put(peer);
	return err;
}

static int mk_cmd_get(struct sk_buff *skb, struct genl_info *info)
{
	struct mk_net *mn = mk_net(genl_info_net(info));
	struct mk_tag_data *d;
	struct socket *sock;
	bool peer = false;
	int err;

	atomic64_inc(&mn->mn_queries);
	sock = mk_fd_socket(info, &err);
	if (!sock)
		goto out;
	d = kmalloc(sizeof(*d), GFP_KERNEL);
	if (!d) {
		err = -ENOMEM;
		goto out_put;
	}
	err = mk_tag_get(sock->sk, d);
	if (err == -ENOENT) {
		err = mk_peer_tag(sock->sk, d);
		peer = true;
	}
	if (err)
		goto out_free;
	atomic64_inc(&mn->mn_hits);
	err = mk_reply(info, d, peer);
out_free:
	kfree(d);
out_put:
	sockfd_put(sock);
out:
	return err;
}

static int mk_cmd_get_addr(struct sk_buff *skb, struct genl_info *info)
{
	struct mk_net *mn = mk_net(genl_info_net(info));
	struct nlattr *addr = info->attrs[MAILKTLS_A_CLIENT_ADDR];
	struct nlattr *port = info->attrs[MAILKTLS_A_CLIENT_PORT];
	struct mk_tag_data *d;
	int err;

	atomic64_inc(&mn->mn_queries);
	if (!addr || !port || (nla_len(addr) != 4 && nla_len(addr) != 16)) {
		GENL_SET_ERR_MSG(info, "GET_ADDR needs CLIENT_ADDR (4/16 bytes) and CLIENT_PORT");
		err = -EINVAL;
		goto out;
	}
	d = kmalloc(sizeof(*d), GFP_KERNEL);
	if (!d) {
		err = -ENOMEM;
		goto out;
	}
	err = mk_tag_get_addr(genl_info_net(info), nla_data(addr), nla_len(addr),
			      nla_get_u16(port), d);
	if (err)
		goto out_free;
	atomic64_inc(&mn->mn_hits);
	err = mk_reply(info, d, false);
out_free:
	kfree(d);
out:
	return err;
}

struct mk_dump_arg {
	struct sk_buff *da_skb;
	struct netlink_callback *da_cb;
};

static int mk_dump_one(const struct mk_tag_data *d, void *arg)
{
	struct mk_dump_arg *da = arg;
	void *hdr;

	hdr = genlmsg_put(da->da_skb, NETLINK_CB(da->da_cb->skb).portid,
			  da->da_cb->nlh->nlmsg_seq, &mk_family, NLM_F_MULTI,
			  MAILKTLS_CMD_DUMP);
	if (!hdr)
		return -EMSGSIZE;
	if (mk_fill(da->da_skb, d, false)) {
		genlmsg_cancel(da->da_skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(da->da_skb, hdr);
	return 0;
}

static int mk_cmd_dump(struct sk_buff *skb, struct netlink_callback *cb)
{
	struct mk_dump_arg da = { .da_skb = skb, .da_cb = cb };
	int err;

	err = mk_tag_dump(sock_net(skb->sk), (unsigned long *)&cb->args[0], mk_dump_one, &da);
	/* A full skb ends this part; the core calls again from cb->args. */
	if (err == -EMSGSIZE && skb->len)
		return skb->len;
	return err ? err : skb->len;
}

static const struct genl_small_ops mk_ops[] = {
	{
		.cmd = MAILKTLS_CMD_TAG,
		.doit = mk_cmd_tag,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = MAILKTLS_CMD_UNTAG,
		.doit = mk_cmd_untag,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = MAILKTLS_CMD_GET,
		.doit = mk_cmd_get,
	},
	{
		.cmd = MAILKTLS_CMD_GET_ADDR,
		.doit = mk_cmd_get_addr,
		.flags = GENL_UNS_ADMIN_PERM,
	},
	{
		.cmd = MAILKTLS_CMD_DUMP,
		.dumpit = mk_cmd_dump,
		.flags = GENL_UNS_ADMIN_PERM,
	},
};

static struct genl_family mk_family __ro_after_init = {
	.name = MAILKTLS_GENL_NAME,
	.version = MAILKTLS_GENL_VERSION,
	.maxattr = MAILKTLS_A_MAX,
	.policy = mk_policy,
	.netnsok = true,
	.parallel_ops = true,
	.module = THIS_MODULE,
	.small_ops = mk_ops,
	.n_small_ops = ARRAY_SIZE(mk_ops),
	.resv_start_op = MAILKTLS_CMD_DUMP + 1,
};

/**
 * mk_netlink_init() - register the generic netlink family
 * Return: 0 or a negative errno from genl_register_family().
 */
int mk_netlink_init(void)
{
	return genl_register_family(&mk_family);
}

/**
 * mk_netlink_exit() - unregister the family; returns when no handler runs
 */
void mk_netlink_exit(void)
{
	genl_unregister_family(&mk_family);
}
