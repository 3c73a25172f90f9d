// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls: the table of tagged sockets.
 *
 * Locking: mk_lock (a spinlock, process context only) protects both hash
 * tables and mk_nr_tags.  It is never held across an allocation or a
 * sock_put(): tags are built before and freed after the critical section.
 * A tag is published complete and never modified; re-tagging replaces it.
 */
#include <linux/hashtable.h>
#include <linux/jhash.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/workqueue.h>

#include "mailktls_int.h"

#define MK_HASH_BITS 12

static DEFINE_SPINLOCK(mk_lock);
static DEFINE_HASHTABLE(mk_sk_hash, MK_HASH_BITS);	/* by socket, mk_lock */
static DEFINE_HASHTABLE(mk_addr_hash, MK_HASH_BITS);	/* by client, mk_lock */
static unsigned int mk_nr_tags;				/* mk_lock */

static void mk_gc_work_fn(struct work_struct *work);
static DECLARE_DELAYED_WORK(mk_gc_work, mk_gc_work_fn);
static bool mk_gc_stopped;				/* mk_lock */

static u32 mk_addr_key(const u8 *addr, u8 addr_len, u16 port)
{
	return jhash(addr, addr_len, port);
}

/* A closed socket's tag is dead at once; the GC frees it later. */
static bool mk_sk_dead(const struct sock *sk)
{
	return sock_flag(sk, SOCK_DEAD);
}

static struct mk_tag *mk_find_locked(const struct sock *sk)
{
	struct mk_tag *t;

	hash_for_each_possible(mk_sk_hash, t, tg_sk_node, (unsigned long)sk)
		if (t->tg_sk == sk)
			return t;
	return NULL;
}

static void mk_unhash_locked(struct mk_tag *t)
{
	hash_del(&t->tg_sk_node);
	hash_del(&t->tg_addr_node);
	mk_nr_tags--;
}

static void mk_tag_free(struct mk_tag *t)
{
	sock_put(t->tg_sk);
	kfree(t);
}

static void mk_gc_kick(void)
{
	unsigned long delay = msecs_to_jiffies(max(mk_gc_interval_ms, 10U));

	spin_lock(&mk_lock);
	if (!mk_gc_stopped)
		schedule_delayed_work(&mk_gc_work, delay);
	spin_unlock(&mk_lock);
}

/**
 * mk_tag_set() - attach a tag to a socket, replacing any previous one
 * @sk:   a TCP or AF_UNIX stream socket the caller holds a file on
 * @data: the tag; copied
 *
 * Return: 0, -ENOMEM, or -ENOSPC when max_tags tags exist already.
 */
int mk_tag_set(struct sock *sk, const struct mk_tag_data *data)
{
	struct mk_tag *t, *old;
	int err;

	t = kmalloc(sizeof(*t), GFP_KERNEL);
	if (!t) {
		err = -ENOMEM;
		goto out;
	}
	t->tg_data = *data;
	t->tg_net = sock_net(sk);
	t->tg_sk = sk;
	sock_hold(sk);

	spin_lock(&mk_lock);
	old = mk_find_locked(sk);
	if (old) {
		mk_unhash_locked(old);
	} else if (mk_nr_tags >= mk_max_tags) {
		spin_unlock(&mk_lock);
		err = -ENOSPC;
		goto out_free;
	}
	hash_add(mk_sk_hash, &t->tg_sk_node, (unsigned long)sk);
	hash_add(mk_addr_hash, &t->tg_addr_node,
		 mk_addr_key(data->td_addr, data->td_addr_len, data->td_port));
	mk_nr_tags++;
	spin_unlock(&mk_lock);

	if (old)
		mk_tag_free(old);
	atomic64_inc(&mk_net(sock_net(sk))->mn_tagged);
	mk_gc_kick();
	return 0;

out_free:
	mk_tag_free(t);
out:
	return err;
}

/**
 * mk_tag_clear() - remove the tag of a socket
 * @sk: the socket
 *
 * Return: 0, or -ENOENT when it had none.
 */
int mk_tag_clear(struct sock *sk)
{
	struct mk_tag *t;

	spin_lock(&mk_lock);
	t = mk_find_locked(sk);
	if (t)
		mk_unhash_locked(t);
	spin_unlock(&mk_lock);

	if (!t)
		return -ENOENT;
	mk_tag_free(t);
	return 0;
}

/**
 * mk_tag_get() - copy the tag of a socket
 * @sk:  the socket
 * @out: receives the tag
 *
 * Return: 0, or -ENOENT when the socket has no live tag.
 */
int mk_tag_get(struct sock *sk, struct mk_tag_data *out)
{
	struct mk_tag *t;
	int err = -ENOENT;

	spin_lock(&mk_lock);
	t = mk_find_locked(sk);
	if (t && !mk_sk_dead(sk)) {
		*out = t->tg_data;
		err = 0;
	}
	spin_unlock(&mk_lock);
	return err;
}

/**
 * mk_tag_get_addr() - find a live tag by the client's address
 * @net:      only tags of sockets in this netns
 * @addr:     4 or 16 bytes
 * @addr_len: 4 or 16
 * @port:     client port
 * @out:      receives the tag
 *
 * Return: 0, or -ENOENT.
 */
int mk_tag_get_addr(const struct net *net, const u8 *addr, u8 addr_len, u16 port,
		    struct mk_tag_data *out)
{
	u32 key = mk_addr_key(addr, addr_len, port);
	struct mk_tag *t;
	int err = -ENOENT;

	spin_lock(&mk_lock);
	hash_for_each_possible(mk_addr_hash, t, tg_addr_node, key) {
		const struct mk_tag_data *d = &t->tg_data;

		if (!net_eq(t->tg_net, net) || mk_sk_dead(t->tg_sk) ||
		    d->td_addr_len != addr_len || d->td_port != port ||
		    memcmp(d->td_addr, addr, addr_len))
			continue;
		*out = *d;
		err = 0;
		break;
	}
	spin_unlock(&mk_lock);
	return err;
}

/**
 * mk_tag_dump() - call @fill for the live tags of @net, resumably
 * @net:  the netns
 * @pos:  two cursors (bucket, index in bucket); zero at the first call
 * @fill: called under mk_lock, must not sleep; nonzero stops the walk
 * @arg:  passed to @fill
 *
 * Return: 0 when the walk is complete, or what @fill returned; @pos then
 * names the tag @fill refused, to start from next time.
 */
int mk_tag_dump(const struct net *net, unsigned long *pos,
		int (*fill)(const struct mk_tag_data *data, void *arg), void *arg)
{
	struct mk_tag *t;
	unsigned long idx;
	int err = 0;

	spin_lock(&mk_lock);
	for (; pos[0] < HASH_SIZE(mk_sk_hash); pos[0]++, pos[1] = 0) {
		idx = 0;
		hlist_for_each_entry(t, &mk_sk_hash[pos[0]], tg_sk_node) {
			if (idx++ < pos[1])
				continue;
			if (!net_eq(t->tg_net, net) || mk_sk_dead(t->tg_sk))
				continue;
			err = fill(&t->tg_data, arg);
			if (err) {
				pos[1] = idx - 1;
				goto out_unlock;
			}
		}
	}
out_unlock:
	spin_unlock(&mk_lock);
	return err;
}

static void mk_stats_add_cipher(struct mk_stats *st, const struct mk_tag_data *d)
{
	unsigned int i;

	for (i = 0; i < st->st_nciphers; i++) {
		if (st->st_ciphers[i].cc_id == d->td_cipher_id &&
		    !strcmp(st->st_ciphers[i].cc_name, d->td_cipher)) {
			st->st_ciphers[i].cc_count++;
			return;
		}
	}
	if (st->st_nciphers == MK_STAT_CIPHERS) {
		st->st_other_cipher++;
		return;
	}
	st->st_ciphers[i].cc_id = d->td_cipher_id;
	strscpy(st->st_ciphers[i].cc_name, d->td_cipher, sizeof(st->st_ciphers[i].cc_name));
	st->st_ciphers[i].cc_count = 1;
	st->st_nciphers++;
}

/**
 * mk_tag_stats() - count the tags of a netns
 * @net: the netns
 * @st:  zeroed by the caller; receives the counts
 *
 * Takes mk_lock one bucket at a time, so readers of /proc never stall TAG
 * for long; the counts are a consistent picture of each bucket only.
 */
void mk_tag_stats(const struct net *net, struct mk_stats *st)
{
	struct mk_tag *t;
	unsigned int b;

	for (b = 0; b < HASH_SIZE(mk_sk_hash); b++) {
		spin_lock(&mk_lock);
		hlist_for_each_entry(t, &mk_sk_hash[b], tg_sk_node) {
			if (!net_eq(t->tg_net, net))
				continue;
			if (mk_sk_dead(t->tg_sk)) {
				st->st_pending++;
				continue;
			}
			st->st_live++;
			if (t->tg_data.td_version == 0x0303)
				st->st_tls12++;
			else if (t->tg_data.td_version == 0x0304)
				st->st_tls13++;
			else
				st->st_other_version++;
			mk_stats_add_cipher(st, &t->tg_data);
		}
		spin_unlock(&mk_lock);
	}
}

/*
 * Unhash the tags of bucket @b that @all selects, or whose socket is dead,
 * onto @out.  With @net, only tags of that netns.
 */
static void mk_collect_bucket(unsigned int b, const struct net *net, bool all,
			      struct hlist_head *out)
{
	struct hlist_node *tmp;
	struct mk_tag *t;

	spin_lock(&mk_lock);
	hlist_for_each_entry_safe(t, tmp, &mk_sk_hash[b], tg_sk_node) {
		if (net && !net_eq(t->tg_net, net))
			continue;
		if (!all && !mk_sk_dead(t->tg_sk))
			continue;
		mk_unhash_locked(t);
		hlist_add_head(&t->tg_sk_node, out);
	}
	spin_unlock(&mk_lock);
}

/* Free what mk_collect_bucket() gathered; returns how many. */
static unsigned int mk_free_list(struct hlist_head *list, bool count_closed)
{
	struct hlist_node *tmp;
	struct mk_tag *t;
	unsigned int n = 0;

	hlist_for_each_entry_safe(t, tmp, list, tg_sk_node) {
		hlist_del(&t->tg_sk_node);
		if (count_closed)
			atomic64_inc(&mk_net(t->tg_net)->mn_closed);
		mk_tag_free(t);
		n++;
	}
	return n;
}

static void mk_gc_work_fn(struct work_struct *work)
{
	HLIST_HEAD(dead);
	unsigned int b;
	bool again;

	for (b = 0; b < HASH_SIZE(mk_sk_hash); b++) {
		mk_collect_bucket(b, NULL, false, &dead);
		mk_free_list(&dead, true);
		cond_resched();
	}

	spin_lock(&mk_lock);
	again = mk_nr_tags > 0;
	spin_unlock(&mk_lock);
	if (again)
		mk_gc_kick();
}

/**
 * mk_tags_flush() - drop tags, whether their sockets are open or not
 * @net: only the tags of this netns, or NULL for all (module unload)
 *
 * Per-netns counters are not touched: at unload and at netns exit they are
 * about to go away.
 */
void mk_tags_flush(const struct net *net)
{
	HLIST_HEAD(list);
	unsigned int b;

	for (b = 0; b < HASH_SIZE(mk_sk_hash); b++) {
		mk_collect_bucket(b, net, true, &list);
		mk_free_list(&list, false);
		cond_resched();
	}
}

/**
 * mk_tags_start() - allow the garbage collector to run
 */
void mk_tags_start(void)
{
	spin_lock(&mk_lock);
	mk_gc_stopped = false;
	spin_unlock(&mk_lock);
}

/**
 * mk_tags_stop() - stop the garbage collector and free every tag
 *
 * Called at unload after the netlink family is gone, so no TAG can race.
 */
void mk_tags_stop(void)
{
	spin_lock(&mk_lock);
	mk_gc_stopped = true;
	spin_unlock(&mk_lock);
	cancel_delayed_work_sync(&mk_gc_work);
	mk_tags_flush(NULL);
}
