/* SPDX-License-Identifier: GPL-2.0 */
/*
 * mailktls.ko internals: the tag table, its netlink and procfs front ends.
 *
 * Lifetime design.  A tag must never outlive its socket, and the module must
 * be unloadable while tags exist.  Wrapping sk->sk_destruct would notice the
 * end of a socket at once, but other code (kTLS device offload, sockmap)
 * wraps it too, so the module could neither restore it safely on unload nor
 * be sure its wrapper is not called after its text is gone.  Instead every
 * tag holds a reference on its socket (sock_hold), which keeps the struct
 * sock, and so the key of the hash, valid.  A socket whose file was closed
 * is marked SOCK_DEAD by sock_orphan(); from that moment lookups treat its
 * tag as absent, and the garbage collector (a delayed work, every
 * gc_interval_ms) unhashes it and drops the reference.  Unloading drops
 * every reference; nothing of the module is left in any socket.
 */
#ifndef MAILKTLS_INT_H
#define MAILKTLS_INT_H

#include <linux/types.h>
#include <linux/list.h>
#include <linux/atomic.h>
#include <net/sock.h>
#include <uapi/linux/mailktls.h>

/* What the agent negotiated; immutable once the tag is published. */
struct mk_tag_data {
	u16 td_version;
	u16 td_cipher_id;
	u32 td_verify;
	u8 td_ktls;			/* MAILKTLS_KTLS_* */
	bool td_client_cert;
	u8 td_addr_len;			/* 0, 4 or 16 */
	u16 td_port;
	u8 td_addr[16];
	char td_cipher[MAILKTLS_CIPHER_MAX];
	char td_group[MAILKTLS_GROUP_MAX];
	char td_sigalg[MAILKTLS_SIGALG_MAX];
	char td_sni[MAILKTLS_SNI_MAX];
	char td_alpn[MAILKTLS_ALPN_MAX];
	char td_subject[MAILKTLS_SUBJECT_MAX];
	char td_listener[MAILKTLS_LISTENER_MAX];
};

/*
 * One tagged socket.  All list linkage is protected by mk_lock (tags.c);
 * tg_sk, tg_net and tg_data are written before the tag is hashed and never
 * change afterwards, so a reader holding mk_lock may copy them.
 */
struct mk_tag {
	struct hlist_node tg_sk_node;	/* mk_sk_hash, under mk_lock */
	struct hlist_node tg_addr_node;	/* mk_addr_hash, under mk_lock */
	struct sock *tg_sk;		/* counted reference (sock_hold) */
	struct net *tg_net;		/* sock_net(tg_sk); the socket pins it */
	struct mk_tag_data tg_data;
};

/* Per network namespace counters (net_generic); atomics, no lock. */
struct mk_net {
	atomic64_t mn_tagged;		/* successful TAG commands */
	atomic64_t mn_closed;		/* tags dropped because the socket closed */
	atomic64_t mn_queries;		/* GET and GET_ADDR commands */
	atomic64_t mn_hits;		/* ... that found a tag */
};

/* Counts of the live tags of one netns, for /proc/net/mailktls. */
#define MK_STAT_CIPHERS 32
struct mk_cipher_count {
	u16 cc_id;
	char cc_name[MAILKTLS_CIPHER_MAX];
	u64 cc_count;
};

struct mk_stats {
	u64 st_live;
	u64 st_pending;			/* closed, memory freed at the next GC */
	u64 st_tls12;
	u64 st_tls13;
	u64 st_other_version;
	unsigned int st_nciphers;
	struct mk_cipher_count st_ciphers[MK_STAT_CIPHERS];
	u64 st_other_cipher;		/* when more than MK_STAT_CIPHERS differ */
};

extern unsigned int mk_net_id;
extern unsigned int mk_gc_interval_ms;
extern unsigned int mk_max_tags;

struct mk_net *mk_net(const struct net *net);

int mk_tag_set(struct sock *sk, const struct mk_tag_data *data);
int mk_tag_clear(struct sock *sk);
int mk_tag_get(struct sock *sk, struct mk_tag_data *out);
int mk_tag_get_addr(const struct net *net, const u8 *addr, u8 addr_len, u16 port,
		    struct mk_tag_data *out);
int mk_tag_dump(const struct net *net, unsigned long *pos,
		int (*fill)(const struct mk_tag_data *data, void *arg), void *arg);
void mk_tag_stats(const struct net *net, struct mk_stats *st);
void mk_tags_flush(const struct net *net);
void mk_tags_start(void);
void mk_tags_stop(void);

int mk_netlink_init(void);
void mk_netlink_exit(void);

int mk_proc_init_net(struct net *net);
void mk_proc_exit_net(struct net *net);

#endif /* MAILKTLS_INT_H */
