// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls.ko: tag sockets with the TLS parameters a user-space TLS agent
 * negotiated, so the daemon on the other end of a local connection can ask
 * which TLS its client used (RFC 8314 section 4.3 Received clause, logs).
 */
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <net/net_namespace.h>
#include <net/genetlink.h>
#include <net/netns/generic.h>

#include "mailktls_int.h"

unsigned int mk_net_id __read_mostly;

unsigned int mk_gc_interval_ms __read_mostly = 1000;
module_param_named(gc_interval_ms, mk_gc_interval_ms, uint, 0644);
MODULE_PARM_DESC(gc_interval_ms, "how often tags of closed sockets are freed (ms, min 10)");

unsigned int mk_max_tags __read_mostly = 1 << 20;
module_param_named(max_tags, mk_max_tags, uint, 0644);
MODULE_PARM_DESC(max_tags, "most tags held at once; TAG fails with ENOSPC beyond");

/**
 * mk_net() - the module's per-netns counters
 * @net: the netns
 * Return: its struct mk_net.
 */
struct mk_net *mk_net(const struct net *net)
{
	return net_generic(net, mk_net_id);
}

static int __net_init mk_net_init(struct net *net)
{
	struct mk_net *mn = mk_net(net);

	atomic64_set(&mn->mn_tagged, 0);
	atomic64_set(&mn->mn_closed, 0);
	atomic64_set(&mn->mn_queries, 0);
	atomic64_set(&mn->mn_hits, 0);
	return mk_proc_init_net(net);
}

static void __net_exit mk_net_exit(struct net *net)
{
	/* Sockets of user space pin their netns, so only tags of kernel
	 * sockets could still point here; drop them before @net goes.
	 */
	mk_tags_flush(net);
	mk_proc_exit_net(net);
}

static struct pernet_operations mk_net_ops = {
	.init = mk_net_init,
	.exit = mk_net_exit,
	.id = &mk_net_id,
	.size = sizeof(struct mk_net),
};

static int __init mk_init(void)
{
	int err;

	mk_tags_start();
	err = register_pernet_subsys(&mk_net_ops);
	if (err)
		goto out;
	err = mk_netlink_init();
	if (err)
		goto out_pernet;
	pr_info("mailktls: generic netlink family %s version %d\n",
		MAILKTLS_GENL_NAME, MAILKTLS_GENL_VERSION);
	return 0;

out_pernet:
	unregister_pernet_subsys(&mk_net_ops);
out:
	return err;
}

static void __exit mk_exit(void)
{
	/* No new commands, no running handler; then no GC; then no tags. */
	mk_netlink_exit();
	mk_tags_stop();
	unregister_pernet_subsys(&mk_net_ops);
}

module_init(mk_init);
module_exit(mk_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("mailktls developers");
MODULE_DESCRIPTION("Tag sockets with the TLS a user-space agent negotiated");
MODULE_ALIAS_GENL_FAMILY(MAILKTLS_GENL_NAME);
