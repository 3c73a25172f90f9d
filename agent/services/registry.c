// SPDX-License-Identifier: GPL-2.0
/*
 * The entry table of relayed connections: one compact entry per connection,
 * found by id (a slot index), by client address, by backend-local address
 * and by backend inode, each in O(1).
 *
 * The table is cut in shards, one per worker (struct mk_reg_worker binds
 * the worker's thread to its shard and its netlink socket): a worker adds
 * and removes in its own shard only (an id names its shard), so no worker
 * waits on a lock another worker holds; threads that are no worker (the
 * tests, tools) share shard 0, and workers beyond MK_REG_SHARDS - 1 share
 * theirs.  A lookup asks every shard in use, one after the other, and
 * answers with the newest match: entries carry a sequence number from one
 * process-wide counter, taken under the shard's lock, so within a shard
 * the chains' order (newest first) and the numbers agree.
 *
 * Locking: each shard's sh_lock protects its slots, its three indexes, its
 * counters and the index nodes of its entries; everything else in an
 * entry is written before it is published and never changed, and lookups
 * copy it out under the lock.  Work done under sh_lock is bounded: no
 * allocation of entries, no hashing (the keyed hash is computed before
 * locking), no formatting, no system call.  A mutex, not a rwlock: the
 * query server is the only reader, its worker the only writer of a
 * shard, and each holds the lock for well under a microsecond
 * (scripts/bench-query.sh measures it under churn).  No two shard locks
 * are ever held at once.  mk_reg_listeners.rl_lock protects the listener
 * list alone, so a STATUS answer never holds up a worker.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "hashtab.h"
#include "log.h"
#include "registry.h"
#include "registry_tag.h"
#include "mk_addr.h"

/*
 * An address and port as the indexes key them: IPv6 bytes, IPv4 mapped
 * (::ffff:a.b.c.d), so IPv4 and IPv4-mapped IPv6 are one key.
 */
struct mk_reg_key {
	uint8_t rk_ip[16];
	uint16_t rk_port;		/* network order */
};

/*
 * One relayed connection, kept as small as the answers allow: it lives as
 * long as the connection, which must cost about 2 KiB in all when idle.  A
 * struct mk_session is 1.2 KiB, mostly fixed-size strings that are empty
 * or short (SNI, client subject), so the strings are packed here
 * NUL-terminated one after the other, in mk_reg_strs[] order.
 */
struct mk_reg_entry {
	struct mk_hnode re_by_client;		/* its shard's sh_lock */
	struct mk_hnode re_by_backend;		/* its shard's sh_lock */
	struct mk_hnode re_by_inode;		/* its shard's sh_lock */
	uint64_t re_seq;			/* set before it is linked: newer is more */
	uint32_t re_size;			/* bytes, strings included */
	uint64_t re_backend_inode;		/* 0: none */
	struct mk_reg_key re_client;
	struct mk_reg_key re_backend_local;
	bool re_has_client;
	bool re_has_backend_local;
	uint16_t re_version;
	uint16_t re_cipher_id;
	int32_t re_verify;
	bool re_client_cert;
	bool re_ktls_tx;
	bool re_ktls_rx;
	char re_strs[];
};

#define MK_SS_STR(f) { offsetof(struct mk_session, f), sizeof(((struct mk_session *)0)->f) }

/* The string fields of struct mk_session an entry keeps: where, how big. */
static const struct {
	size_t rs_off, rs_size;
} mk_reg_strs[] = {
	MK_SS_STR(ss_listener), MK_SS_STR(ss_version_name), MK_SS_STR(ss_cipher),
	MK_SS_STR(ss_group), MK_SS_STR(ss_sigalg), MK_SS_STR(ss_sni), MK_SS_STR(ss_alpn),
	MK_SS_STR(ss_client_subject),
};
#define MK_REG_NSTRS (sizeof(mk_reg_strs) / sizeof(mk_reg_strs[0]))

/* No entry is bigger: its strings are shorter than the session's arrays. */
#define MK_REG_ENTRY_MAX (sizeof(struct mk_reg_entry) + sizeof(struct mk_session))

/*
 * The id of an entry is its shard, its slot and the slot's generation, so
 * removal by id is an index, and an id whose slot was reused since matches
 * nothing: bits 56-63 the shard, 32-55 the generation, 0-31 the slot + 1.
 */
struct mk_reg_slot {
	struct mk_reg_entry *rs_entry;	/* NULL while free */
	uint32_t rs_gen;		/* bumped on every reuse, never 0, < 2^24 */
	uint32_t rs_next_free;		/* while free: next free slot + 1, 0 = none */
};

#define MK_REG_GEN_MAX 0xffffffu
#define MK_REG_BUCKETS 1024		/* per index at start; they double */
#define MK_REG_SHARDS 64		/* shard 0: threads that are no worker */

/* A worker's part of the table; aligned so that two never share a line. */
struct mk_reg_shard {
	pthread_mutex_t sh_lock;
	struct mk_reg_slot *sh_slots;		/* sh_lock */
	uint32_t sh_nslots;			/* sh_lock */
	uint32_t sh_free;			/* sh_lock; first free slot + 1, 0 = none */
	struct mk_htable sh_by_client;		/* sh_lock */
	struct mk_htable sh_by_backend;		/* sh_lock */
	struct mk_htable sh_by_inode;		/* sh_lock */
	size_t sh_n;				/* sh_lock */
	size_t sh_ktls_txrx;			/* sh_lock */
	atomic_bool sh_used;			/* set, under sh_lock, before its first entry */
} __attribute__((aligned(64)));

static struct mk_reg_shard mk_reg_shards[MK_REG_SHARDS] = {
	[0 ... MK_REG_SHARDS - 1] = { .sh_lock = PTHREAD_MUTEX_INITIALIZER },
};

/* Newer entries get larger numbers; taken under the entry's shard lock. */
static atomic_uint_fast64_t mk_reg_seq;

/*
 * A worker's binding: its shard and its netlink socket.  Owned by the
 * worker's thread, which mk_reg_self points at it; NULL in other threads.
 */
struct mk_reg_worker {
	unsigned int rw_id;			/* the worker's number, for logs */
	struct mk_reg_shard *rw_shard;
	struct mk_reg_tagger rw_tagger;
};

static __thread struct mk_reg_worker *mk_reg_self;

static struct {
	pthread_mutex_t rl_lock;
	struct mk_reg_listener *rl_list;	/* rl_lock */
	size_t rl_n;				/* rl_lock */
} mk_reg_listeners = {
	.rl_lock = PTHREAD_MUTEX_INITIALIZER,
};

/* --- keys ------------------------------------------------------------------ */

/* @k for @sa; Return: false for anything but IPv4 and IPv6. */
static bool mk_reg_key_of(const struct sockaddr *sa, struct mk_reg_key *k)
{
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

	memset(k, 0, sizeof(*k));
	if (sa->sa_family == AF_INET) {
		k->rk_ip[10] = k->rk_ip[11] = 0xff;
		memcpy(&k->rk_ip[12], &sin->sin_addr, 4);
		k->rk_port = sin->sin_port;
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		memcpy(k->rk_ip, &sin6->sin6_addr, 16);
		k->rk_port = sin6->sin6_port;
		return true;
	}
	return false;
}

/* The address back from @k: IPv4 when it is a mapped one. */
static void mk_reg_key_addr(const struct mk_reg_key *k, struct sockaddr_storage *ss)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	static const uint8_t v4mapped[12] = { [10] = 0xff, [11] = 0xff };

	memset(ss, 0, sizeof(*ss));
	if (!memcmp(k->rk_ip, v4mapped, sizeof(v4mapped))) {
		sin->sin_family = AF_INET;
		sin->sin_port = k->rk_port;
		memcpy(&sin->sin_addr, &k->rk_ip[12], 4);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = k->rk_port;
		memcpy(&sin6->sin6_addr, k->rk_ip, 16);
	}
}

static uint32_t mk_reg_key_hash(const struct mk_reg_key *k)
{
	return mk_hash(k, sizeof(*k));
}

static uint32_t mk_reg_inode_hash(uint64_t inode)
{
	return mk_hash(&inode, sizeof(inode));
}

/* --- compact entries ------------------------------------------------------- */

/* Our backend end, when the caller did not say: what daemons will ask by. */
static void mk_fill_backend(struct mk_reg_entry *e, const struct mk_session *s, int backend_fd)
{
	struct sockaddr_storage ss = s->ss_backend_local;
	socklen_t sl = sizeof(ss);
	struct stat st;

	e->re_backend_inode = s->ss_backend_inode;
	if (backend_fd >= 0 && ss.ss_family == AF_UNSPEC &&
	    getsockname(backend_fd, (struct sockaddr *)&ss, &sl) < 0)
		memset(&ss, 0, sizeof(ss));
	e->re_has_backend_local = mk_reg_key_of((struct sockaddr *)&ss, &e->re_backend_local);
	if (backend_fd >= 0 && !e->re_backend_inode && fstat(backend_fd, &st) == 0)
		e->re_backend_inode = st.st_ino;
}

/* A compact copy of @s (see struct mk_reg_entry); NULL when out of memory. */
static struct mk_reg_entry *mk_reg_entry_new(const struct mk_session *s, int backend_fd)
{
	size_t len[MK_REG_NSTRS], total = 0, i;
	struct mk_reg_entry *e;
	char *p;

	for (i = 0; i < MK_REG_NSTRS; i++) {
		len[i] = strnlen((const char *)s + mk_reg_strs[i].rs_off,
				 mk_reg_strs[i].rs_size - 1);
		total += len[i] + 1;
	}
	e = calloc(1, sizeof(*e) + total);
	if (!e)
		return NULL;
	e->re_size = (uint32_t)(sizeof(*e) + total);
	e->re_has_client = mk_reg_key_of((const struct sockaddr *)&s->ss_client, &e->re_client);
	mk_fill_backend(e, s, backend_fd);
	e->re_version = s->ss_version;
	e->re_cipher_id = s->ss_cipher_id;
	e->re_verify = s->ss_verify;
	e->re_client_cert = s->ss_client_cert;
	e->re_ktls_tx = s->ss_ktls_tx;
	e->re_ktls_rx = s->ss_ktls_rx;
	for (p = e->re_strs, i = 0; i < MK_REG_NSTRS; p += len[i++] + 1)
		memcpy(p, (const char *)s + mk_reg_strs[i].rs_off, len[i]);
	return e;
}

/* The session back from @e, as far as the answers use it. */
static void mk_reg_entry_expand(const struct mk_reg_entry *e, struct mk_session *s)
{
	const char *p = e->re_strs;
	size_t i;

	memset(s, 0, sizeof(*s));
	if (e->re_has_client)
		mk_reg_key_addr(&e->re_client, &s->ss_client);
	if (e->re_has_backend_local)
		mk_reg_key_addr(&e->re_backend_local, &s->ss_backend_local);
	s->ss_backend_inode = e->re_backend_inode;
	s->ss_version = e->re_version;
	s->ss_cipher_id = e->re_cipher_id;
	s->ss_verify = e->re_verify;
	s->ss_client_cert = e->re_client_cert;
	s->ss_ktls_tx = e->re_ktls_tx;
	s->ss_ktls_rx = e->re_ktls_rx;
	for (i = 0; i < MK_REG_NSTRS; i++, p += strlen(p) + 1)
		mk_strlcpy((char *)s + mk_reg_strs[i].rs_off, p, mk_reg_strs[i].rs_size);
}

/* --- slots ----------------------------------------------------------------- */

static int mk_reg_tables_init_locked(struct mk_reg_shard *sh)
{
	if (sh->sh_by_inode.ht_buckets)
		return 0;
	if (mk_htable_init(&sh->sh_by_client, MK_REG_BUCKETS) ||
	    mk_htable_init(&sh->sh_by_backend, MK_REG_BUCKETS) ||
	    mk_htable_init(&sh->sh_by_inode, MK_REG_BUCKETS)) {
		free(sh->sh_by_client.ht_buckets);
		free(sh->sh_by_backend.ht_buckets);
		sh->sh_by_client.ht_buckets = sh->sh_by_backend.ht_buckets = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Doubling: the copy is of pointers, rare, and O(1) per entry overall. */
static int mk_reg_slots_grow_locked(struct mk_reg_shard *sh)
{
	uint32_t n = sh->sh_nslots ? sh->sh_nslots * 2 : MK_REG_BUCKETS, i;
	struct mk_reg_slot *s;

	if (n <= sh->sh_nslots || n > UINT32_MAX / 2)
		return -ENOMEM;
	s = realloc(sh->sh_slots, n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (i = sh->sh_nslots; i < n; i++) {
		s[i].rs_entry = NULL;
		s[i].rs_gen = 1;
		s[i].rs_next_free = i + 1 < n ? i + 2 : sh->sh_free;
	}
	sh->sh_free = sh->sh_nslots + 1;
	sh->sh_slots = s;
	sh->sh_nslots = n;
	return 0;
}

/* Put @e into a free slot; Return: its id, or 0 when out of memory. */
static uint64_t mk_reg_slot_take_locked(struct mk_reg_shard *sh, struct mk_reg_entry *e)
{
	struct mk_reg_slot *s;
	uint32_t i;

	if (!sh->sh_free && mk_reg_slots_grow_locked(sh))
		return 0;
	i = sh->sh_free - 1;
	s = &sh->sh_slots[i];
	sh->sh_free = s->rs_next_free;
	s->rs_entry = e;
	return (uint64_t)(sh - mk_reg_shards) << 56 | (uint64_t)s->rs_gen << 32 | (i + 1);
}

/* The entry of @id, taken out of its slot; NULL for a stale or unknown id. */
static struct mk_reg_entry *mk_reg_slot_put_locked(struct mk_reg_shard *sh, uint64_t id)
{
	uint32_t i = (uint32_t)id - 1;
	struct mk_reg_slot *s;
	struct mk_reg_entry *e;

	if ((uint32_t)id == 0 || i >= sh->sh_nslots)
		return NULL;
	s = &sh->sh_slots[i];
	if (!s->rs_entry || s->rs_gen != ((id >> 32) & MK_REG_GEN_MAX))
		return NULL;
	e = s->rs_entry;
	s->rs_entry = NULL;
	s->rs_gen = s->rs_gen == MK_REG_GEN_MAX ? 1 : s->rs_gen + 1;
	s->rs_next_free = sh->sh_free;
	sh->sh_free = i + 1;
	return e;
}

/* --- workers --------------------------------------------------------------- */

/**
 * mk_registry_worker_open() - bind the calling thread, a worker, to its
 * shard and give it a netlink socket of its own
 * @id: the worker's number
 *
 * Return: the binding, for mk_registry_worker_fd() and the calls after, or
 * NULL when out of memory (the thread then uses shard 0 and the shared
 * socket: slower, still correct).
 */
struct mk_reg_worker *mk_registry_worker_open(unsigned int id)
{
	struct mk_reg_worker *rw = calloc(1, sizeof(*rw));
	int err;

	if (!rw)
		return NULL;
	rw->rw_id = id;
	rw->rw_shard = &mk_reg_shards[1 + id % (MK_REG_SHARDS - 1)];
	err = mk_registry_tagger_open(&rw->rw_tagger);
	if (err && err != -ENOENT)
		mk_log(LOG_WARNING, "worker %u: mailktls module: no netlink socket: %s (tagging on the shared one)",
		       id, strerror(-err));
	mk_reg_self = rw;
	return rw;
}

/**
 * mk_registry_worker_fd() - the descriptor the worker polls (POLLIN) and
 * then calls mk_registry_worker_input() for
 * @rw: the binding, or NULL
 *
 * Return: the descriptor, or -1 when there is nothing to poll.
 */
int mk_registry_worker_fd(const struct mk_reg_worker *rw)
{
	return rw ? mk_registry_tagger_fd(&rw->rw_tagger) : -1;
}

/**
 * mk_registry_worker_input() - read what the module answered (refusals),
 * without blocking
 * @rw: the binding, or NULL
 */
void mk_registry_worker_input(struct mk_reg_worker *rw)
{
	if (rw)
		mk_registry_tagger_input(&rw->rw_tagger);
}

/**
 * mk_registry_worker_close() - unbind the calling thread and close its
 * netlink socket, reading the last answers first
 * @rw: from mk_registry_worker_open() on this thread, or NULL
 *
 * The shard stays, with whatever entries are left in it.
 */
void mk_registry_worker_close(struct mk_reg_worker *rw)
{
	const struct mk_reg_tag_stats *st;

	if (!rw)
		return;
	mk_registry_tagger_input(&rw->rw_tagger);
	st = &rw->rw_tagger.tg_stats;
	if (st->ts_refused || st->ts_unsent || st->ts_lost)
		mk_log(LOG_WARNING, "worker %u: mailktls module: %llu tags refused, %llu not sent, refusals lost %llu times",
		       rw->rw_id, (unsigned long long)st->ts_refused,
		       (unsigned long long)st->ts_unsent, (unsigned long long)st->ts_lost);
	mk_registry_tagger_close(&rw->rw_tagger);
	if (mk_reg_self == rw)
		mk_reg_self = NULL;
	free(rw);
}

/* --- the table ------------------------------------------------------------- */

/**
 * mk_registry_init() - set up the entry table; probe for the module
 *
 * Return: 0, or -ENOMEM.
 */
int mk_registry_init(void)
{
	struct mk_reg_shard *sh = &mk_reg_shards[0];
	int err;

	mk_registry_tag_open();
	pthread_mutex_lock(&sh->sh_lock);
	err = mk_reg_tables_init_locked(sh);
	pthread_mutex_unlock(&sh->sh_lock);
	return err;
}

/* Index @e; growing a table may fail, which only lengthens its chains. */
static void mk_reg_link_locked(struct mk_reg_shard *sh, struct mk_reg_entry *e,
			       const uint32_t hash[3])
{
	e->re_seq = atomic_fetch_add_explicit(&mk_reg_seq, 1, memory_order_relaxed);
	if (e->re_has_client)
		mk_htable_add(&sh->sh_by_client, &e->re_by_client, hash[0]);
	if (e->re_has_backend_local)
		mk_htable_add(&sh->sh_by_backend, &e->re_by_backend, hash[1]);
	if (e->re_backend_inode)
		mk_htable_add(&sh->sh_by_inode, &e->re_by_inode, hash[2]);
	sh->sh_n++;
	sh->sh_ktls_txrx += e->re_ktls_tx && e->re_ktls_rx;
}

/**
 * mk_registry_add() - record a connection and tag its sockets in the module
 * @s:          the session
 * @client_fd:  the client's socket (kTLS), or -1
 * @backend_fd: our socket towards the daemon, or -1
 *
 * In a worker bound by mk_registry_worker_open(), takes only its own
 * shard's lock and tags without waiting; elsewhere, shard 0 and the shared
 * netlink socket.
 *
 * Return: an id > 0 for mk_registry_remove(), or 0 when out of memory.
 */
uint64_t mk_registry_add(const struct mk_session *s, int client_fd, int backend_fd)
{
	struct mk_reg_worker *rw = mk_reg_self;
	struct mk_reg_shard *sh = rw ? rw->rw_shard : &mk_reg_shards[0];
	struct mk_reg_entry *e;
	uint32_t hash[3];
	uint64_t id = 0;

	mk_registry_tag(rw ? &rw->rw_tagger : NULL, s, client_fd, backend_fd);
	e = mk_reg_entry_new(s, backend_fd);
	if (!e)
		return 0;
	hash[0] = mk_reg_key_hash(&e->re_client);
	hash[1] = mk_reg_key_hash(&e->re_backend_local);
	hash[2] = mk_reg_inode_hash(e->re_backend_inode);

	pthread_mutex_lock(&sh->sh_lock);
	if (mk_reg_tables_init_locked(sh) == 0)
		id = mk_reg_slot_take_locked(sh, e);
	if (id) {
		atomic_store(&sh->sh_used, true);
		mk_reg_link_locked(sh, e, hash);
	}
	pthread_mutex_unlock(&sh->sh_lock);
	if (!id)
		free(e);
	return id;
}

/**
 * mk_registry_remove() - forget a connection (its module tags go with its
 * sockets)
 * @id: from mk_registry_add(); 0 and stale ids are ignored
 *
 * Takes the lock of the shard @id names: the adding worker's own.
 */
void mk_registry_remove(uint64_t id)
{
	struct mk_reg_shard *sh;
	struct mk_reg_entry *e;

	if (!id || (id >> 56) >= MK_REG_SHARDS)
		return;
	sh = &mk_reg_shards[id >> 56];
	pthread_mutex_lock(&sh->sh_lock);
	e = mk_reg_slot_put_locked(sh, id);
	if (e) {
		mk_htable_del(&sh->sh_by_client, &e->re_by_client);
		mk_htable_del(&sh->sh_by_backend, &e->re_by_backend);
		mk_htable_del(&sh->sh_by_inode, &e->re_by_inode);
		sh->sh_n--;
		sh->sh_ktls_txrx -= e->re_ktls_tx && e->re_ktls_rx;
	}
	pthread_mutex_unlock(&sh->sh_lock);
	free(e);
}

/* Lookups copy the entry out under the lock and expand it after. */
union mk_reg_copy {
	struct mk_reg_entry rc_entry;
	char rc_bytes[MK_REG_ENTRY_MAX];
};

static void mk_reg_copy_locked(union mk_reg_copy *c, const struct mk_reg_entry *e)
{
	memcpy(c->rc_bytes, e, e->re_size < sizeof(*c) ? e->re_size : sizeof(*c));
}

static bool mk_reg_match_client(const struct mk_reg_entry *e, const void *key)
{
	return !memcmp(&e->re_client, key, sizeof(e->re_client));
}

static bool mk_reg_match_backend(const struct mk_reg_entry *e, const void *key)
{
	return !memcmp(&e->re_backend_local, key, sizeof(e->re_backend_local));
}

static bool mk_reg_match_inode(const struct mk_reg_entry *e, const void *key)
{
	return e->re_backend_inode == *(const uint64_t *)key;
}

/* How a lookup finds its entries: which index, its node, its key. */
struct mk_reg_query {
	size_t rq_table_off;		/* of the index in struct mk_reg_shard */
	size_t rq_node_off;		/* of its node in struct mk_reg_entry */
	uint32_t rq_hash;
	bool (*rq_match)(const struct mk_reg_entry *e, const void *key);
	const void *rq_key;
};

/*
 * The first entry of @sh that @q matches, the newest of that shard, copied
 * into @c when it is newer than what @c holds (@found says whether it
 * holds anything).
 */
static void mk_reg_find_shard(struct mk_reg_shard *sh, const struct mk_reg_query *q,
			      union mk_reg_copy *c, bool *found)
{
	const struct mk_htable *t = (const void *)((const char *)sh + q->rq_table_off);
	struct mk_hnode *n;

	pthread_mutex_lock(&sh->sh_lock);
	for (n = t->ht_buckets ? mk_htable_first(t, q->rq_hash) : NULL; n; n = mk_hnode_next(n)) {
		const struct mk_reg_entry *e = (const void *)((const char *)n - q->rq_node_off);

		if (!q->rq_match(e, q->rq_key))
			continue;
		if (!*found || e->re_seq > c->rc_entry.re_seq)
			mk_reg_copy_locked(c, e);
		*found = true;
		break;
	}
	pthread_mutex_unlock(&sh->sh_lock);
}

/* The newest entry of all shards that @q matches. */
static int mk_reg_find(const struct mk_reg_query *q, struct mk_session *out)
{
	union mk_reg_copy c;
	bool found = false;
	size_t i;

	for (i = 0; i < MK_REG_SHARDS; i++)
		if (atomic_load(&mk_reg_shards[i].sh_used))
			mk_reg_find_shard(&mk_reg_shards[i], q, &c, &found);
	if (!found)
		return -ENOENT;
	mk_reg_entry_expand(&c.rc_entry, out);
	return 0;
}

/**
 * mk_registry_find_addr() - the newest connection with this address
 * @by:  client or backend-local address
 * @sa:  the address, IPv4 or IPv6
 * @out: receives the session
 *
 * Takes each shard's lock in turn, never two at once.
 *
 * Return: 0, or -ENOENT.
 */
int mk_registry_find_addr(enum mk_reg_by by, const struct sockaddr *sa, struct mk_session *out)
{
	struct mk_reg_query q;
	struct mk_reg_key k;

	if (!mk_reg_key_of(sa, &k))
		return -ENOENT;
	q.rq_hash = mk_reg_key_hash(&k);
	q.rq_key = &k;
	if (by == MK_REG_BY_CLIENT) {
		q.rq_table_off = offsetof(struct mk_reg_shard, sh_by_client);
		q.rq_node_off = offsetof(struct mk_reg_entry, re_by_client);
		q.rq_match = mk_reg_match_client;
	} else {
		q.rq_table_off = offsetof(struct mk_reg_shard, sh_by_backend);
		q.rq_node_off = offsetof(struct mk_reg_entry, re_by_backend);
		q.rq_match = mk_reg_match_backend;
	}
	return mk_reg_find(&q, out);
}

/**
 * mk_registry_find_inode() - the newest connection with this backend inode
 * @inode: the inode; 0 matches nothing
 * @out:   receives the session
 *
 * Return: 0, or -ENOENT.
 */
int mk_registry_find_inode(uint64_t inode, struct mk_session *out)
{
	struct mk_reg_query q = {
		.rq_table_off = offsetof(struct mk_reg_shard, sh_by_inode),
		.rq_node_off = offsetof(struct mk_reg_entry, re_by_inode),
		.rq_hash = mk_reg_inode_hash(inode),
		.rq_match = mk_reg_match_inode,
		.rq_key = &inode,
	};

	if (!inode)
		return -ENOENT;
	return mk_reg_find(&q, out);
}

/**
 * mk_registry_counts() - how many connections, how many in kTLS both ways
 * @c: receives the counts, summed over the shards (each under its lock)
 */
void mk_registry_counts(struct mk_reg_counts *c)
{
	size_t i;

	c->rc_connections = c->rc_ktls_txrx = 0;
	for (i = 0; i < MK_REG_SHARDS; i++) {
		struct mk_reg_shard *sh = &mk_reg_shards[i];

		if (!atomic_load(&sh->sh_used))
			continue;
		pthread_mutex_lock(&sh->sh_lock);
		c->rc_connections += sh->sh_n;
		c->rc_ktls_txrx += sh->sh_ktls_txrx;
		pthread_mutex_unlock(&sh->sh_lock);
	}
}

/* --- listeners ------------------------------------------------------------- */

/**
 * mk_registry_set_listeners() - remember the listeners for STATUS
 * @cfg: the configuration in force
 */
void mk_registry_set_listeners(const struct mk_config *cfg)
{
	struct mk_reg_listener *l = NULL;
	size_t i, n = cfg ? cfg->cf_nlisteners : 0;

	if (n) {
		l = calloc(n, sizeof(*l));
		if (!l)
			n = 0;
	}
	for (i = 0; i < n; i++) {
		const struct mk_listener_cfg *lc = &cfg->cf_listeners[i];

		mk_strlcpy(l[i].rl_name, lc->lc_name, sizeof(l[i].rl_name));
		mk_strlcpy(l[i].rl_listen, lc->lc_listen.sa_text, sizeof(l[i].rl_listen));
		l[i].rl_protocol = mk_protocol_name(lc->lc_protocol);
		l[i].rl_tls = lc->lc_tls == MK_TLS_STARTTLS ? "starttls" : "implicit";
	}
	pthread_mutex_lock(&mk_reg_listeners.rl_lock);
	free(mk_reg_listeners.rl_list);
	mk_reg_listeners.rl_list = l;
	mk_reg_listeners.rl_n = n;
	pthread_mutex_unlock(&mk_reg_listeners.rl_lock);
}

/**
 * mk_registry_each_listener() - visit the listeners
 * @fn:  called for each, with the listener lock held
 * @arg: passed to @fn
 *
 * Return: the number of listeners.
 */
size_t mk_registry_each_listener(void (*fn)(const struct mk_reg_listener *l, void *arg), void *arg)
{
	size_t i, n;

	pthread_mutex_lock(&mk_reg_listeners.rl_lock);
	n = mk_reg_listeners.rl_n;
	for (i = 0; i < n; i++)
		fn(&mk_reg_listeners.rl_list[i], arg);
	pthread_mutex_unlock(&mk_reg_listeners.rl_lock);
	return n;
}
