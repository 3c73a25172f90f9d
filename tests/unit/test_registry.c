// SPDX-License-Identifier: GPL-2.0
/*
 * The entry table behind the query socket: every connection is found by
 * client address, by the agent's backend-local address and by backend
 * inode, with many connections in it, after removals, when an address is
 * reused, and with IPv4, IPv6 and IPv4-mapped IPv6 meaning what a daemon
 * expects; workers that each add and remove in their own shard, while
 * lookups see every shard and answer with the newest entry of all.
 * Every test runs in a fresh process: the table starts empty.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"

#include "mailktls.h"
#include "registry.h"

#define MANY 10000

static void set_v4(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	inet_pton(AF_INET, ip, &sin->sin_addr);
}

static void set_v6(struct sockaddr_storage *ss, const char *ip, uint16_t port)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
}

static void base_session(struct mk_session *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->ss_listener, "submissions");
	s->ss_version = 0x0304;
	s->ss_cipher_id = 0x1302;
	strcpy(s->ss_cipher, "TLS_AES_256_GCM_SHA384");
	s->ss_ktls_tx = s->ss_ktls_rx = true;
}

/* Connection @i: client, backend address and inode all its own. */
static void many_session(struct mk_session *s, unsigned int i)
{
	char ip[64];

	base_session(s);
	if (i % 2) {
		snprintf(ip, sizeof(ip), "2001:db8::%x:%x", i >> 8, i & 0xff);
		set_v6(&s->ss_client, ip, (uint16_t)(1024 + i));
	} else {
		snprintf(ip, sizeof(ip), "10.%u.%u.%u", i >> 16, (i >> 8) & 0xff, i & 0xff);
		set_v4(&s->ss_client, ip, (uint16_t)(1024 + i));
	}
	snprintf(ip, sizeof(ip), "127.0.%u.%u", (i >> 8) & 0xff, i & 0xff);
	set_v4(&s->ss_backend_local, ip, (uint16_t)(20000 + i));
	s->ss_backend_inode = 100000 + i;
	snprintf(s->ss_sni, sizeof(s->ss_sni), "host-%u.example", i);
}

/* Does every index find connection @i (and the right one)? */
static int found_by_all(unsigned int i)
{
	struct mk_session want, got;
	char sni[64];
	int n = 0;

	many_session(&want, i);
	snprintf(sni, sizeof(sni), "host-%u.example", i);
	n += !mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&want.ss_client, &got) &&
	     !strcmp(got.ss_sni, sni);
	n += !mk_registry_find_addr(MK_REG_BY_BACKEND, (struct sockaddr *)&want.ss_backend_local,
				    &got) && !strcmp(got.ss_sni, sni);
	n += !mk_registry_find_inode(want.ss_backend_inode, &got) && !strcmp(got.ss_sni, sni);
	return n;
}

TEST(many_entries_each_found_by_every_key)
{
	static uint64_t id[MANY];
	struct mk_reg_counts c;
	struct mk_session s;
	unsigned int i, all = 0, kept = 0, gone = 0;

	ASSERT_EQ(0, mk_registry_init());
	for (i = 0; i < MANY; i++) {
		many_session(&s, i);
		id[i] = mk_registry_add(&s, -1, -1);
		ASSERT_NE(0, id[i]);
	}
	mk_registry_counts(&c);
	EXPECT_EQ(MANY, c.rc_connections);
	EXPECT_EQ(MANY, c.rc_ktls_txrx);
	for (i = 0; i < MANY; i++)
		all += found_by_all(i) == 3;
	EXPECT_EQ(MANY, all);

	/* Every other one leaves: those are gone from every index, the rest stay. */
	for (i = 0; i < MANY; i += 2)
		mk_registry_remove(id[i]);
	for (i = 0; i < MANY; i++) {
		if (i % 2)
			kept += found_by_all(i) == 3;
		else
			gone += found_by_all(i) == 0;
	}
	EXPECT_EQ(MANY / 2, kept);
	EXPECT_EQ(MANY / 2, gone);
	mk_registry_counts(&c);
	EXPECT_EQ(MANY / 2, c.rc_connections);

	/* The freed places are used again, and everything is still found. */
	for (i = 0; i < MANY; i += 2) {
		many_session(&s, i);
		id[i] = mk_registry_add(&s, -1, -1);
		ASSERT_NE(0, id[i]);
	}
	for (all = 0, i = 0; i < MANY; i++)
		all += found_by_all(i) == 3;
	EXPECT_EQ(MANY, all);
	for (i = 0; i < MANY; i++)
		mk_registry_remove(id[i]);
	mk_registry_counts(&c);
	EXPECT_EQ(0, c.rc_connections);
	EXPECT_EQ(0, c.rc_ktls_txrx);
}

TEST(same_address_reused_after_close)
{
	struct mk_session s, got;
	uint64_t a, b;

	base_session(&s);
	set_v4(&s.ss_client, "198.51.100.20", 40000);
	strcpy(s.ss_cipher, "TLS_AES_128_GCM_SHA256");
	a = mk_registry_add(&s, -1, -1);
	ASSERT_NE(0, a);
	mk_registry_remove(a);
	ASSERT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));

	strcpy(s.ss_cipher, "TLS_CHACHA20_POLY1305_SHA256");
	b = mk_registry_add(&s, -1, -1);
	ASSERT_NE(0, b);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));
	EXPECT_STREQ("TLS_CHACHA20_POLY1305_SHA256", got.ss_cipher);

	/* The id of the closed one is stale: it never removes the new one. */
	mk_registry_remove(a);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));
	EXPECT_STREQ("TLS_CHACHA20_POLY1305_SHA256", got.ss_cipher);
	mk_registry_remove(0);
	mk_registry_remove(~0ULL);
	mk_registry_remove(b + (1ULL << 32));

	/* Two at once (NAT, a port reused before the agent saw the close):
	 * the newest answers, the older one again once the newest is gone. */
	strcpy(s.ss_cipher, "TLS_AES_256_GCM_SHA384");
	a = mk_registry_add(&s, -1, -1);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", got.ss_cipher);
	mk_registry_remove(a);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));
	EXPECT_STREQ("TLS_CHACHA20_POLY1305_SHA256", got.ss_cipher);
	mk_registry_remove(b);
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));
}

/* IPv4 and IPv4-mapped IPv6 are one address (a daemon on [::] sees the
 * agent's IPv4 connection as mapped); other IPv6 addresses are not. */
TEST(v4_v6_and_v4_mapped)
{
	struct sockaddr_storage q;
	struct mk_session s, got;
	char ans[MAILKTLS_QUERY_ANSWER_MAX];
	uint64_t a, b, c;

	base_session(&s);
	set_v4(&s.ss_client, "192.0.2.7", 993);
	set_v6(&s.ss_backend_local, "::ffff:127.0.0.1", 50001);
	strcpy(s.ss_sni, "four");
	a = mk_registry_add(&s, -1, -1);
	set_v6(&s.ss_client, "::ffff:192.0.2.8", 993);
	set_v4(&s.ss_backend_local, "127.0.0.1", 50002);
	strcpy(s.ss_sni, "mapped");
	b = mk_registry_add(&s, -1, -1);
	set_v6(&s.ss_client, "2001:db8::7", 993);
	set_v6(&s.ss_backend_local, "::1", 50003);
	strcpy(s.ss_sni, "six");
	c = mk_registry_add(&s, -1, -1);
	ASSERT_TRUE(a && b && c);

	set_v6(&q, "::ffff:192.0.2.7", 993);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	EXPECT_STREQ("four", got.ss_sni);
	EXPECT_EQ(AF_INET, got.ss_client.ss_family);
	set_v4(&q, "192.0.2.8", 993);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	EXPECT_STREQ("mapped", got.ss_sni);
	set_v4(&q, "127.0.0.1", 50001);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_BACKEND, (struct sockaddr *)&q, &got));
	EXPECT_STREQ("four", got.ss_sni);
	set_v6(&q, "::ffff:127.0.0.1", 50002);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_BACKEND, (struct sockaddr *)&q, &got));
	EXPECT_STREQ("mapped", got.ss_sni);
	set_v6(&q, "2001:db8::7", 993);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	EXPECT_STREQ("six", got.ss_sni);
	EXPECT_EQ(AF_INET6, got.ss_client.ss_family);

	/* Same bytes, other meaning; other port; the other index. */
	set_v6(&q, "::192.0.2.7", 993);
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	set_v4(&q, "192.0.2.7", 994);
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	set_v4(&q, "192.0.2.7", 993);
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_BACKEND, (struct sockaddr *)&q, &got));

	/* On the protocol: asked either way, printed as the daemon wrote it. */
	mk_query_answer("QUERY ADDR [::ffff:192.0.2.7]:993", 33, ans, sizeof(ans));
	EXPECT_NE(NULL, strstr(ans, "\nclient=192.0.2.7:993\n"));
	mk_query_answer("QUERY ADDR [2001:db8::7]:993", 28, ans, sizeof(ans));
	EXPECT_NE(NULL, strstr(ans, "\nclient=[2001:db8::7]:993\n"));
	mk_query_answer("QUERY PEER [::1]:50003", 22, ans, sizeof(ans));
	EXPECT_NE(NULL, strstr(ans, "\nsni=six\n"));
	mk_registry_remove(a);
	mk_registry_remove(b);
	mk_registry_remove(c);
}

/* Without an address (a unix backend, a test's session) nothing is found
 * by address, not even by [::]:0 or 0.0.0.0:0, and inode 0 is nobody. */
TEST(entries_without_address_or_inode)
{
	struct sockaddr_storage q;
	struct mk_reg_counts c;
	struct mk_session s, got;
	uint64_t id;

	base_session(&s);
	id = mk_registry_add(&s, -1, -1);
	ASSERT_NE(0, id);
	mk_registry_counts(&c);
	EXPECT_EQ(1, c.rc_connections);
	set_v6(&q, "::", 0);
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_BACKEND, (struct sockaddr *)&q, &got));
	set_v4(&q, "0.0.0.0", 0);
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	EXPECT_EQ(-ENOENT, mk_registry_find_inode(0, &got));
	q.ss_family = AF_UNIX;
	EXPECT_EQ(-ENOENT, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&q, &got));
	mk_registry_remove(id);
	mk_registry_remove(id);
	mk_registry_counts(&c);
	EXPECT_EQ(0, c.rc_connections);
}

/* What a lookup returns is the session as it was added. */
TEST(lookup_returns_every_field)
{
	struct mk_session s, got;
	uint64_t id;

	base_session(&s);
	set_v4(&s.ss_client, "203.0.113.9", 51234);
	set_v4(&s.ss_backend_local, "127.0.0.1", 40001);
	s.ss_backend_inode = 77;
	strcpy(s.ss_version_name, "TLSv1.3");
	strcpy(s.ss_group, "x25519");
	strcpy(s.ss_sigalg, "ecdsa_secp256r1_sha256");
	strcpy(s.ss_sni, "mail.example.org");
	strcpy(s.ss_alpn, "smtp");
	strcpy(s.ss_client_subject, "CN=alice");
	s.ss_client_cert = true;
	s.ss_verify = 20;
	s.ss_ktls_rx = false;
	id = mk_registry_add(&s, -1, -1);
	ASSERT_EQ(0, mk_registry_find_inode(77, &got));
	EXPECT_EQ(0, memcmp(&s.ss_client, &got.ss_client, sizeof(struct sockaddr_in)));
	EXPECT_EQ(0, memcmp(&s.ss_backend_local, &got.ss_backend_local, sizeof(struct sockaddr_in)));
	EXPECT_STREQ("submissions", got.ss_listener);
	EXPECT_STREQ("TLSv1.3", got.ss_version_name);
	EXPECT_STREQ("TLS_AES_256_GCM_SHA384", got.ss_cipher);
	EXPECT_STREQ("x25519", got.ss_group);
	EXPECT_STREQ("ecdsa_secp256r1_sha256", got.ss_sigalg);
	EXPECT_STREQ("mail.example.org", got.ss_sni);
	EXPECT_STREQ("smtp", got.ss_alpn);
	EXPECT_STREQ("CN=alice", got.ss_client_subject);
	EXPECT_EQ(0x0304, got.ss_version);
	EXPECT_EQ(0x1302, got.ss_cipher_id);
	EXPECT_EQ(20, got.ss_verify);
	EXPECT_TRUE(got.ss_client_cert);
	EXPECT_TRUE(got.ss_ktls_tx);
	EXPECT_FALSE(got.ss_ktls_rx);
	mk_registry_remove(id);
}

/* A thread bound as worker wt_id, running wt_fn(wt_arg) there. */
struct worker_thread {
	pthread_t wt_thread;
	unsigned int wt_id;
	void (*wt_fn)(void *arg);
	void *wt_arg;
};

static void *worker_thread_main(void *arg)
{
	struct worker_thread *wt = arg;
	struct mk_reg_worker *rw = mk_registry_worker_open(wt->wt_id);

	if (!rw)
		return (void *)1;
	/* No module on this host: nothing to poll, nothing to tag. */
	if (mk_registry_worker_fd(rw) != -1)
		return (void *)1;
	wt->wt_fn(wt->wt_arg);
	mk_registry_worker_close(rw);
	return NULL;
}

static int run_as_worker(unsigned int id, void (*fn)(void *arg), void *arg)
{
	struct worker_thread wt = { .wt_id = id, .wt_fn = fn, .wt_arg = arg };
	void *ret;

	if (pthread_create(&wt.wt_thread, NULL, worker_thread_main, &wt))
		return -1;
	pthread_join(wt.wt_thread, &ret);
	return ret ? -1 : 0;
}

/* One worker's part of the churn: entries first..first+n, half removed. */
struct churn {
	unsigned int ch_first, ch_n;
	uint64_t *ch_ids;
	unsigned int ch_id;
	pthread_t ch_thread;
	int ch_failed;
	atomic_uint *ch_done;		/* workers finished */
};

static void churn_add(void *arg)
{
	struct churn *ch = arg;
	struct mk_session s;
	unsigned int i;

	for (i = ch->ch_first; i < ch->ch_first + ch->ch_n; i++) {
		many_session(&s, i);
		ch->ch_ids[i] = mk_registry_add(&s, -1, -1);
		ch->ch_failed += !ch->ch_ids[i];
		/* Every other one goes at once: churn in the worker's shard. */
		if (i % 2 == 0) {
			mk_registry_remove(ch->ch_ids[i]);
			ch->ch_ids[i] = 0;
		}
	}
}

static void *churn_main(void *arg)
{
	struct churn *ch = arg;
	int err = run_as_worker(ch->ch_id, churn_add, ch);

	atomic_fetch_add(ch->ch_done, 1);
	return err ? (void *)1 : NULL;
}

#define NWORKERS 4

/* Four workers add and remove at once while lookups run; then every
 * entry kept is found by every key, every one removed by none. */
TEST(workers_in_their_shards_lookups_see_all)
{
	static uint64_t id[MANY];
	struct churn ch[NWORKERS];
	struct mk_reg_counts c;
	struct mk_session got;
	unsigned int i, all = 0, gone = 0, lookups = 0;
	atomic_uint done = 0;
	void *ret;

	ASSERT_EQ(0, mk_registry_init());
	for (i = 0; i < NWORKERS; i++) {
		ch[i] = (struct churn){ .ch_first = i * (MANY / NWORKERS), .ch_n = MANY / NWORKERS,
					.ch_ids = id, .ch_id = i, .ch_done = &done };
		ASSERT_EQ(0, pthread_create(&ch[i].ch_thread, NULL, churn_main, &ch[i]));
	}
	/* The query server's side, meanwhile: must never see a torn entry. */
	for (i = 0; atomic_load(&done) < NWORKERS && i < 100000000; i++) {
		struct mk_session want;

		many_session(&want, (i * 7919) % MANY);
		if (!mk_registry_find_inode(want.ss_backend_inode, &got)) {
			ASSERT_STREQ(want.ss_sni, got.ss_sni);
			lookups++;
		}
	}
	for (i = 0; i < NWORKERS; i++) {
		pthread_join(ch[i].ch_thread, &ret);
		ASSERT_EQ(NULL, ret);
		ASSERT_EQ(0, ch[i].ch_failed);
	}
	for (i = 0; i < MANY; i++) {
		if (i % 2)
			all += found_by_all(i) == 3;
		else
			gone += found_by_all(i) == 0;
	}
	EXPECT_EQ(MANY / 2, all);
	EXPECT_EQ(MANY / 2, gone);
	mk_registry_counts(&c);
	EXPECT_EQ(MANY / 2, c.rc_connections);
	EXPECT_EQ(MANY / 2, c.rc_ktls_txrx);
	/* Each id names its shard: any thread may remove it. */
	for (i = 1; i < MANY; i += 2)
		mk_registry_remove(id[i]);
	mk_registry_counts(&c);
	EXPECT_EQ(0, c.rc_connections);
	EXPECT_EQ(0, found_by_all(1));
	TH_LOG("%u lookups hit during the churn", lookups);
}

struct one_add {
	const struct mk_session *oa_s;
	uint64_t oa_id;
};

static void add_one(void *arg)
{
	struct one_add *oa = arg;

	oa->oa_id = mk_registry_add(oa->oa_s, -1, -1);
}

/* The same client in three shards (workers 0 and 1, a thread that is no
 * worker): the newest answers, whichever shard holds it. */
TEST(newest_of_all_shards_answers)
{
	struct mk_session s, got;
	struct one_add a = { .oa_s = &s }, b = { .oa_s = &s };
	uint64_t z;

	ASSERT_EQ(0, mk_registry_init());
	base_session(&s);
	set_v4(&s.ss_client, "198.51.100.30", 40000);
	s.ss_backend_inode = 4242;
	strcpy(s.ss_sni, "first.example");
	ASSERT_EQ(0, run_as_worker(0, add_one, &a));
	strcpy(s.ss_sni, "second.example");
	ASSERT_EQ(0, run_as_worker(1, add_one, &b));
	ASSERT_NE(0, a.oa_id);
	ASSERT_NE(0, b.oa_id);
	ASSERT_NE(a.oa_id >> 56, b.oa_id >> 56);	/* two shards */
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));
	EXPECT_STREQ("second.example", got.ss_sni);

	strcpy(s.ss_sni, "third.example");
	z = mk_registry_add(&s, -1, -1);
	ASSERT_NE(0, z);
	ASSERT_EQ(0, mk_registry_find_inode(4242, &got));
	EXPECT_STREQ("third.example", got.ss_sni);

	/* An id with another shard's number is nobody's. */
	mk_registry_remove(b.oa_id ^ (7ULL << 56));	/* shard 5 */
	mk_registry_remove(z);
	ASSERT_EQ(0, mk_registry_find_inode(4242, &got));
	EXPECT_STREQ("second.example", got.ss_sni);
	mk_registry_remove(b.oa_id);
	ASSERT_EQ(0, mk_registry_find_addr(MK_REG_BY_CLIENT, (struct sockaddr *)&s.ss_client, &got));
	EXPECT_STREQ("first.example", got.ss_sni);
	mk_registry_remove(a.oa_id);
	EXPECT_EQ(-ENOENT, mk_registry_find_inode(4242, &got));
}

TEST_HARNESS_MAIN
