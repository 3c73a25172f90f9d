// SPDX-License-Identifier: GPL-2.0
/*
 * Intrusive hash table with SipHash-2-4 from OpenSSL (EVP_MAC "SIPHASH"),
 * keyed once per process from the OpenSSL random generator.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "hashtab.h"

/* Keyed once by mk_hash_setup(), then only duplicated: read-only. */
static EVP_MAC_CTX *mk_hash_template;
static pthread_once_t mk_hash_once = PTHREAD_ONCE_INIT;

static void mk_hash_setup(void)
{
	unsigned char key[16];
	size_t size = 8;
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
		OSSL_PARAM_construct_end(),
	};
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

	if (ctx && RAND_bytes(key, sizeof(key)) == 1 &&
	    EVP_MAC_init(ctx, key, sizeof(key), params))
		mk_hash_template = ctx;
	else
		EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	OPENSSL_cleanse(key, sizeof(key));
}

/**
 * mk_hash() - keyed hash of @len bytes at @key
 * @key: the bytes
 * @len: their number
 *
 * Without a working SipHash (out of memory) every key hashes to 0: the
 * table still answers right, in linear time.
 *
 * Return: the low 32 bits of SipHash-2-4 over the bytes.
 */
uint32_t mk_hash(const void *key, size_t len)
{
	unsigned char out[8] = { 0 };
	EVP_MAC_CTX *ctx;
	size_t outlen;

	pthread_once(&mk_hash_once, mk_hash_setup);
	ctx = mk_hash_template ? EVP_MAC_CTX_dup(mk_hash_template) : NULL;
	if (!ctx || !EVP_MAC_update(ctx, key, len) || !EVP_MAC_final(ctx, out, &outlen, sizeof(out)))
		memset(out, 0, sizeof(out));
	EVP_MAC_CTX_free(ctx);
	return (uint32_t)out[0] | (uint32_t)out[1] << 8 | (uint32_t)out[2] << 16 |
	       (uint32_t)out[3] << 24;
}

/**
 * mk_htable_init() - an empty table
 * @t:       the table
 * @buckets: how many to start with (rounded up to a power of two, at least 16)
 *
 * Return: 0, or -ENOMEM.
 */
int mk_htable_init(struct mk_htable *t, size_t buckets)
{
	size_t n = 16;

	while (n < buckets)
		n *= 2;
	t->ht_buckets = calloc(n, sizeof(*t->ht_buckets));
	if (!t->ht_buckets)
		return -ENOMEM;
	t->ht_mask = n - 1;
	t->ht_count = 0;
	return 0;
}

static void mk_hnode_link(struct mk_hnode **head, struct mk_hnode *n)
{
	n->hn_next = *head;
	if (n->hn_next)
		n->hn_next->hn_pprev = &n->hn_next;
	n->hn_pprev = head;
	*head = n;
}

/*
 * Twice the buckets, every node relinked by its kept hash.  O(n), but only
 * when the count has doubled since the last time, so O(1) per insertion.
 */
static int mk_htable_grow(struct mk_htable *t)
{
	size_t mask = t->ht_mask * 2 + 1, i;
	struct mk_hnode **b = calloc(mask + 1, sizeof(*b));
	struct mk_hnode *n, *next;

	if (!b)
		return -ENOMEM;
	for (i = 0; i <= t->ht_mask; i++) {
		for (n = t->ht_buckets[i]; n; n = next) {
			next = n->hn_next;
			mk_hnode_link(&b[n->hn_hash & mask], n);
		}
	}
	free(t->ht_buckets);
	t->ht_buckets = b;
	t->ht_mask = mask;
	return 0;
}

/**
 * mk_htable_add() - insert a node in front of its chain
 * @t:    the table
 * @n:    the node, in no table
 * @hash: mk_hash() of its key
 *
 * Return: 0, or -ENOMEM when the table could not grow (@n is in anyway).
 */
int mk_htable_add(struct mk_htable *t, struct mk_hnode *n, uint32_t hash)
{
	int err = 0;

	if (t->ht_count > t->ht_mask)
		err = mk_htable_grow(t);
	n->hn_hash = hash;
	mk_hnode_link(&t->ht_buckets[hash & t->ht_mask], n);
	t->ht_count++;
	return err;
}

/**
 * mk_htable_del() - remove a node
 * @t: the table holding @n
 * @n: the node; one in no table is left alone
 */
void mk_htable_del(struct mk_htable *t, struct mk_hnode *n)
{
	if (!n->hn_pprev)
		return;
	*n->hn_pprev = n->hn_next;
	if (n->hn_next)
		n->hn_next->hn_pprev = n->hn_pprev;
	n->hn_next = NULL;
	n->hn_pprev = NULL;
	t->ht_count--;
}

static struct mk_hnode *mk_hnode_match(struct mk_hnode *n, uint32_t hash)
{
	while (n && n->hn_hash != hash)
		n = n->hn_next;
	return n;
}

/**
 * mk_htable_first() - the first node of a hash
 * @t:    the table
 * @hash: mk_hash() of the key looked for
 *
 * Return: the node, or NULL.
 */
struct mk_hnode *mk_htable_first(const struct mk_htable *t, uint32_t hash)
{
	return mk_hnode_match(t->ht_buckets[hash & t->ht_mask], hash);
}

/**
 * mk_hnode_next() - the next node with the same hash
 * @n: a node from mk_htable_first() or mk_hnode_next()
 *
 * Return: the node, or NULL.
 */
struct mk_hnode *mk_hnode_next(const struct mk_hnode *n)
{
	return mk_hnode_match(n->hn_next, n->hn_hash);
}
