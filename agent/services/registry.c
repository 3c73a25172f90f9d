// SPDX-License-Identifier: GPL-2.0
/*
 * The entry table of relayed connections: one compact entry per connection,
 * found by id (a slot index), by client address, by backend-local address
 * and by backend inode, each in O(1).
 *
 * Locking: mk_reg.r_lock protects the slots, the three indexes, the
 * counters and the index nodes of every entry; everything else in an entry
 * is written before it is published and never changed, and lookups copy
 * it out under the lock.  Work done under r_lock is bounded: no allocation
 * of entries, no hashing (the keyed hash is computed before locking), no
 * formatting, no system call.  One mutex, not a rwlock: the query server
 * is the only reader, the writers are the workers, and each holds the lock
 * for well under a microsecond (scripts/bench-query.sh measures it under
 * churn).  mk_reg.r_listeners_lock protects the listener list alone, so a
 * STATUS answer never holds up a worker.
 */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "hashtab.h"
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
	struct mk_hnode re_by_client;		/* r_lock */
	struct mk_hnode re_by_backend;		/* r_lock */
	struct mk_hnode re_by_inode;		/* r_lock */
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
 * The id of an entry is its slot and the slot's generation, so removal by
 * id is an index, and an id whose slot was reused since matches nothing.
 */
struct mk_reg_slot {
	struct mk_reg_entry *rs_entry;	/* NULL while free */
	uint32_t rs_gen;		/* bumped on every reuse, never 0 */
	uint32_t rs_next_free;		/* while free: next free slot + 1, 0 = none */
};

#define MK_REG_BUCKETS 1024		/* per index at start; they double */

static struct {
	pthread_mutex_t r_lock;
	struct mk_reg_slot *r_slots;		/* r_lock */
	uint32_t r_nslots;			/* r_lock */
	uint32_t r_free;			/* r_lock; first free slot + 1, 0 = none */
	struct mk_htable r_by_client;		/* r_lock */
	struct mk_htable r_by_backend;		/* r_lock */
	struct mk_htable r_by_inode;		/* r_lock */
	size_t r_n;				/* r_lock */
	size_t r_ktls_txrx;			/* r_lock */

	pthread_mutex_t r_listeners_lock;
	struct mk_reg_listener *r_listeners;	/* r_listeners_lock */
	size_t r_nlisteners;			/* r_listeners_lock */
} mk_reg = {
	.r_lock = PTHREAD_MUTEX_INITIALIZER,
	.r_listeners_lock = PTHREAD_MUTEX_INITIALIZER,
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

static int mk_reg_tables_init_locked(void)
{
	if (mk_reg.r_by_inode.ht_buckets)
		return 0;
	if (mk_htable_init(&mk_reg.r_by_client, MK_REG_BUCKETS) ||
	    mk_htable_init(&mk_reg.r_by_backend, MK_REG_BUCKETS) ||
	    mk_htable_init(&mk_reg.r_by_inode, MK_REG_BUCKETS)) {
		free(mk_reg.r_by_client.ht_buckets);
		free(mk_reg.r_by_backend.ht_buckets);
		mk_reg.r_by_client.ht_buckets = mk_reg.r_by_backend.ht_buckets = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Doubling: the copy is of pointers, rare, and O(1) per entry overall. */
static int mk_reg_slots_grow_locked(void)
{
	uint32_t n = mk_reg.r_nslots ? mk_reg.r_nslots * 2 : MK_REG_BUCKETS, i;
	struct mk_reg_slot *s;

	if (n <= mk_reg.r_nslots || n > UINT32_MAX / 2)
		return -ENOMEM;
	s = realloc(mk_reg.r_slots, n * sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (i = mk_reg.r_nslots; i < n; i++) {
		s[i].rs_entry = NULL;
		s[i].rs_gen = 1;
		s[i].rs_next_free = i + 1 < n ? i + 2 : mk_reg.r_free;
	}
	mk_reg.r_free = mk_reg.r_nslots + 1;
	mk_reg.r_slots = s;
	mk_reg.r_nslots = n;
	return 0;
}

/* Put @e into a free slot; Return: its id, or 0 when out of memory. */
static uint64_t mk_reg_slot_take_locked(struct mk_reg_entry *e)
{
	struct mk_reg_slot *s;
	uint32_t i;

	if (!mk_reg.r_free && mk_reg_slots_grow_locked())
		return 0;
	i = mk_reg.r_free - 1;
	s = &mk_reg.r_slots[i];
	mk_reg.r_free = s->rs_next_free;
	s->rs_entry = e;
	return (uint64_t)s->rs_gen << 32 | (i + 1);
}

/* The entry of @id, taken out of its slot; NULL for a stale or unknown id. */
static struct mk_reg_entry *mk_reg_slot_put_locked(uint64_t id)
{
	uint32_t i = (uint32_t)id - 1;
	struct mk_reg_slot *s;
	struct mk_reg_entry *e;

	if ((uint32_t)id == 0 || i >= mk_reg.r_nslots)
		return NULL;
	s = &mk_reg.r_slots[i];
	if (!s->rs_entry || s->rs_gen != (uint32_t)(id >> 32))
		return NULL;
	e = s->rs_entry;
	s->rs_entry = NULL;
	s->rs_gen = s->rs_gen == UINT32_MAX ? 1 : s->rs_gen + 1;
	s->rs_next_free = mk_reg.r_free;
	mk_reg.r_free = i + 1;
	return e;
}

/* --- the table ------------------------------------------------------------- */

/**
 * mk_registry_init() - set up the entry table; probe for the module
 *
 * Return: 0, or -ENOMEM.
 */
int mk_registry_init(void)
{
	int err;

	mk_registry_tag_open();
	pthread_mutex_lock(&mk_reg.r_lock);
	err = mk_reg_tables_init_locked();
	pthread_mutex_unlock(&mk_reg.r_lock);
	return err;
}

/* Index @e; growing a table may fail, which only lengthens its chains. */
static void mk_reg_link_locked(struct mk_reg_entry *e, const uint32_t hash[3])
{
	if (e->re_has_client)
		mk_htable_add(&mk_reg.r_by_client, &e->re_by_client, hash[0]);
	if (e->re_has_backend_local)
		mk_htable_add(&mk_reg.r_by_backend, &e->re_by_backend, hash[1]);
	if (e->re_backend_inode)
		mk_htable_add(&mk_reg.r_by_inode, &e->re_by_inode, hash[2]);
	mk_reg.r_n++;
	mk_reg.r_ktls_txrx += e->re_ktls_tx && e->re_ktls_rx;
}

/**
 * mk_registry_add() - record a connection and tag its sockets in the module
 * @s:          the session
 * @client_fd:  the client's socket (kTLS), or -1
 * @backend_fd: our socket towards the daemon, or -1
 *
 * Return: an id > 0 for mk_registry_remove(), or 0 when out of memory.
 */
uint64_t mk_registry_add(const struct mk_session *s, int client_fd, int backend_fd)
{
	struct mk_reg_entry *e;
	uint32_t hash[3];
	uint64_t id = 0;

	mk_registry_tag(s, client_fd);
	mk_registry_tag(s, backend_fd);
	e = mk_reg_entry_new(s, backend_fd);
	if (!e)
		return 0;
	hash[0] = mk_reg_key_hash(&e->re_client);
	hash[1] = mk_reg_key_hash(&e->re_backend_local);
	hash[2] = mk_reg_inode_hash(e->re_backend_inode);

	pthread_mutex_lock(&mk_reg.r_lock);
	if (mk_reg_tables_init_locked() == 0)
		id = mk_reg_slot_take_locked(e);
	if (id)
		mk_reg_link_locked(e, hash);
	pthread_mutex_unlock(&mk_reg.r_lock);
	if (!id)
		free(e);
	return id;
}

/**
 * mk_registry_remove() - forget a connection (its module tags go with its
 * sockets)
 * @id: from mk_registry_add(); 0 and stale ids are ignored
 */
void mk_registry_remove(uint64_t id)
{
	struct mk_reg_entry *e;

	if (!id)
		return;
	pthread_mutex_lock(&mk_reg.r_lock);
	e = mk_reg_slot_put_locked(id);
	if (e) {
		mk_htable_del(&mk_reg.r_by_client, &e->re_by_client);
		mk_htable_del(&mk_reg.r_by_backend, &e->re_by_backend);
		mk_htable_del(&mk_reg.r_by_inode, &e->re_by_inode);
		mk_reg.r_n--;
		mk_reg.r_ktls_txrx -= e->re_ktls_tx && e->re_ktls_rx;
	}
	pthread_mutex_unlock(&mk_reg.r_lock);
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

/*
 * The first entry on @hash's chain of @t that @match accepts: @node_off is
 * where that index's node sits in an entry.
 */
static int mk_reg_find(struct mk_htable *t, size_t node_off, uint32_t hash,
		       bool (*match)(const struct mk_reg_entry *e, const void *key),
		       const void *key, struct mk_session *out)
{
	union mk_reg_copy c;
	struct mk_hnode *n;
	bool found = false;

	pthread_mutex_lock(&mk_reg.r_lock);
	for (n = t->ht_buckets ? mk_htable_first(t, hash) : NULL; n && !found; n = mk_hnode_next(n)) {
		const struct mk_reg_entry *e = (const void *)((const char *)n - node_off);

		if (match(e, key)) {
			mk_reg_copy_locked(&c, e);
			found = true;
		}
	}
	pthread_mutex_unlock(&mk_reg.r_lock);
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
 * Return: 0, or -ENOENT.
 */
int mk_registry_find_addr(enum mk_reg_by by, const struct sockaddr *sa, struct mk_session *out)
{
	struct mk_reg_key k;

	if (!mk_reg_key_of(sa, &k))
		return -ENOENT;
	if (by == MK_REG_BY_CLIENT)
		return mk_reg_find(&mk_reg.r_by_client, offsetof(struct mk_reg_entry, re_by_client),
				   mk_reg_key_hash(&k), mk_reg_match_client, &k, out);
	return mk_reg_find(&mk_reg.r_by_backend, offsetof(struct mk_reg_entry, re_by_backend),
			   mk_reg_key_hash(&k), mk_reg_match_backend, &k, out);
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
	if (!inode)
		return -ENOENT;
	return mk_reg_find(&mk_reg.r_by_inode, offsetof(struct mk_reg_entry, re_by_inode),
			   mk_reg_inode_hash(inode), mk_reg_match_inode, &inode, out);
}

/**
 * mk_registry_counts() - how many connections, how many in kTLS both ways
 * @c: receives the counts
 */
void mk_registry_counts(struct mk_reg_counts *c)
{
	pthread_mutex_lock(&mk_reg.r_lock);
	c->rc_connections = mk_reg.r_n;
	c->rc_ktls_txrx = mk_reg.r_ktls_txrx;
	pthread_mutex_unlock(&mk_reg.r_lock);
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
	pthread_mutex_lock(&mk_reg.r_listeners_lock);
	free(mk_reg.r_listeners);
	mk_reg.r_listeners = l;
	mk_reg.r_nlisteners = n;
	pthread_mutex_unlock(&mk_reg.r_listeners_lock);
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

	pthread_mutex_lock(&mk_reg.r_listeners_lock);
	n = mk_reg.r_nlisteners;
	for (i = 0; i < n; i++)
		fn(&mk_reg.r_listeners[i], arg);
	pthread_mutex_unlock(&mk_reg.r_listeners_lock);
	return n;
}
