// SPDX-License-Identifier: GPL-2.0
/*
 * Address ranges of trusted_proxies: what parses, and which addresses fall
 * inside, at the edges of the prefix and across the families.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "cidr.h"
#include "kselftest_harness.h"

static struct sockaddr_storage addr(const char *ip)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (void *)&ss;
	struct sockaddr_in6 *s6 = (void *)&ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
	} else {
		s6->sin6_family = AF_INET6;
		inet_pton(AF_INET6, ip, &s6->sin6_addr);
	}
	return ss;
}

static bool in(const struct mk_cidrs *set, const char *ip)
{
	struct sockaddr_storage ss = addr(ip);

	return mk_cidrs_match(set, (const struct sockaddr *)&ss);
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void set_of(struct __test_metadata *_metadata, struct mk_cidrs *set,
		   const char *const *ranges, size_t n)
{
	size_t i;

	memset(set, 0, sizeof(*set));
	for (i = 0; i < n; i++)
		ASSERT_EQ(0, mk_cidr_parse(ranges[i], &set->cs_net[set->cs_n++])) {
			TH_LOG("%s", ranges[i]);
		}
}

TEST(parse)
{
	static const char *const good[] = {
		"10.0.0.0/8", "127.0.0.1/32", "127.0.0.1", "0.0.0.0/0", "192.0.2.128/25",
		"::1/128", "::1", "2001:db8::/32", "::/0", "2001:db8:0:1::/64",
	};
	static const char *const bad[] = {
		"", "/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x",
		"10.0.0.0/0008", "10.1.2.3/8", "2001:db8::1/32", "::/129", "lb.example.org",
		"10.0.0.0 /8", "[::1]/128", "1.2.3/24",
	};
	struct mk_cidr c;
	size_t i;

	for (i = 0; i < N(good); i++)
		EXPECT_EQ(0, mk_cidr_parse(good[i], &c)) {
			TH_LOG("refused good[%zu]", i);
		}
	for (i = 0; i < N(bad); i++)
		EXPECT_EQ(-EINVAL, mk_cidr_parse(bad[i], &c)) {
			TH_LOG("accepted bad[%zu]", i);
		}
	ASSERT_EQ(0, mk_cidr_parse("127.0.0.1", &c));
	EXPECT_EQ(AF_INET, c.ci_family);
	EXPECT_EQ(32, c.ci_prefix);
	ASSERT_EQ(0, mk_cidr_parse("::1", &c));
	EXPECT_EQ(AF_INET6, c.ci_family);
	EXPECT_EQ(128, c.ci_prefix);
}

TEST(match_edges)
{
	static const char *const r[] = { "192.0.2.128/25", "10.0.0.0/8", "2001:db8:0:80::/57" };
	struct mk_cidrs set;

	set_of(_metadata, &set, r, N(r));
	EXPECT_TRUE(in(&set, "192.0.2.128"));
	EXPECT_TRUE(in(&set, "192.0.2.255"));
	EXPECT_FALSE(in(&set, "192.0.2.127"));
	EXPECT_FALSE(in(&set, "192.0.3.128"));
	EXPECT_TRUE(in(&set, "10.255.255.255"));
	EXPECT_FALSE(in(&set, "11.0.0.0"));
	EXPECT_TRUE(in(&set, "2001:db8:0:80::1"));
	EXPECT_TRUE(in(&set, "2001:db8:0:ff:ffff::"));
	EXPECT_FALSE(in(&set, "2001:db8:0:7f::1"));
	EXPECT_FALSE(in(&set, "2001:db8:0:100::"));
	/* Families never cross, except an IPv4-mapped address. */
	EXPECT_FALSE(in(&set, "::ffff:11.0.0.1"));
	EXPECT_TRUE(in(&set, "::ffff:10.1.2.3"));
	EXPECT_FALSE(in(&set, "::a01:203"));	/* IPv4-compatible, not mapped */
}

TEST(whole_and_host)
{
	static const char *const all4[] = { "0.0.0.0/0" };
	static const char *const host6[] = { "::1" };
	struct mk_cidrs set;
	struct sockaddr sa = { .sa_family = AF_UNIX };

	set_of(_metadata, &set, all4, N(all4));
	EXPECT_TRUE(in(&set, "255.255.255.255"));
	EXPECT_FALSE(in(&set, "::1"));
	EXPECT_FALSE(mk_cidrs_match(&set, &sa));
	set_of(_metadata, &set, host6, N(host6));
	EXPECT_TRUE(in(&set, "::1"));
	EXPECT_FALSE(in(&set, "::2"));
	EXPECT_FALSE(in(&set, "127.0.0.1"));
	memset(&set, 0, sizeof(set));
	EXPECT_FALSE(in(&set, "127.0.0.1"));
}

TEST_HARNESS_MAIN
