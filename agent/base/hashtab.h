/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A hash table of intrusive nodes, for lookups by keys that come from the
 * network (client addresses and ports): the hash is SipHash with a key
 * drawn at start-up, so nobody can choose addresses that share a bucket.
 *
 * The table does no locking and never compares keys: the caller holds its
 * own lock around every call, embeds a struct mk_hnode in its objects,
 * walks the chain of a hash with mk_htable_first()/mk_hnode_next() and
 * compares its keys itself.  Removal is O(1) (the node knows the pointer
 * that points at it); lookups are O(1) on average as the table doubles
 * whenever it holds more nodes than buckets.
 */
#ifndef MAILKTLS_HASHTAB_H
#define MAILKTLS_HASHTAB_H

#include <stddef.h>
#include <stdint.h>

struct mk_hnode {
	struct mk_hnode *hn_next;
	struct mk_hnode **hn_pprev;	/* NULL while not in a table */
	uint32_t hn_hash;		/* kept so that growing rehashes nothing */
};

struct mk_htable {
	struct mk_hnode **ht_buckets;
	size_t ht_mask;			/* buckets - 1; buckets a power of two */
	size_t ht_count;
};

/**
 * mk_hash() - keyed hash of @len bytes at @key (thread-safe)
 * Return: the hash; the same bytes give the same hash for the life of the
 * process.
 */
uint32_t mk_hash(const void *key, size_t len);

/**
 * mk_htable_init() - an empty table of @buckets buckets (rounded up to a
 * power of two)
 * Return: 0, or -ENOMEM.
 */
int mk_htable_init(struct mk_htable *t, size_t buckets);

/**
 * mk_htable_add() - insert @n with @hash, in front of its chain, so that
 * the newest of equal keys is found first; grows the table when it is full
 * Return: 0; -ENOMEM when the table was full and could not grow (@n is
 * inserted anyway, the chains just get longer).
 */
int mk_htable_add(struct mk_htable *t, struct mk_hnode *n, uint32_t hash);

/* Remove @n from @t; a node that is in no table is left alone. */
void mk_htable_del(struct mk_htable *t, struct mk_hnode *n);

/* The first node whose hash is @hash, or NULL. */
struct mk_hnode *mk_htable_first(const struct mk_htable *t, uint32_t hash);

/* The next node after @n with the same hash, or NULL. */
struct mk_hnode *mk_hnode_next(const struct mk_hnode *n);

#endif
