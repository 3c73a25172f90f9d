// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls: /proc/net/mailktls, one per network namespace.
 *
 * "key value" lines, stable for scripts:
 *   tags_live, tags_pending_free, tags_total, tags_closed, queries,
 *   query_hits, then "version NAME COUNT" and "cipher NAME 0xID COUNT"
 *   for the live tags.
 */
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <net/net_namespace.h>

#include "mailktls_int.h"

static int mk_proc_show(struct seq_file *seq, void *v)
{
	struct net *net = seq_file_single_net(seq);
	struct mk_net *mn = mk_net(net);
	struct mk_stats *st;
	unsigned int i;

	st = kzalloc(sizeof(*st), GFP_KERNEL);
	if (!st)
		return -ENOMEM;
	mk_tag_stats(net, st);

	seq_printf(seq, "tags_live %llu\n", st->st_live);
	seq_printf(seq, "tags_pending_free %llu\n", st->st_pending);
	seq_printf(seq, "tags_total %lld\n", (long long)atomic64_read(&mn->mn_tagged));
	seq_printf(seq, "tags_closed %lld\n", (long long)atomic64_read(&mn->mn_closed));
	seq_printf(seq, "queries %lld\n", (long long)atomic64_read(&mn->mn_queries));
	seq_printf(seq, "query_hits %lld\n", (long long)atomic64_read(&mn->mn_hits));
	seq_printf(seq, "version TLSv1.2 %llu\n", st->st_tls12);
	seq_printf(seq, "version TLSv1.3 %llu\n", st->st_tls13);
	if (st->st_other_version)
		seq_printf(seq, "version other %llu\n", st->st_other_version);
	for (i = 0; i < st->st_nciphers; i++)
		seq_printf(seq, "cipher %s 0x%04X %llu\n",
			   st->st_ciphers[i].cc_name[0] ? st->st_ciphers[i].cc_name : "-",
			   st->st_ciphers[i].cc_id, st->st_ciphers[i].cc_count);
	if (st->st_other_cipher)
		seq_printf(seq, "cipher other - %llu\n", st->st_other_cipher);
	kfree(st);
	return 0;
}

/**
 * mk_proc_init_net() - create /proc/net/mailktls in @net
 * @net: the new netns
 * Return: 0 or -ENOMEM.
 */
int mk_proc_init_net(struct net *net)
{
	if (!proc_create_net_single("mailktls", 0444, net->proc_net, mk_proc_show, NULL))
		return -ENOMEM;
	return 0;
}

/**
 * mk_proc_exit_net() - remove /proc/net/mailktls from @net
 * @net: the netns going away, or every netns at unload
 */
void mk_proc_exit_net(struct net *net)
{
	remove_proc_entry("mailktls", net->proc_net);
}
