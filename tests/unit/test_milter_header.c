// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls-milter's Received header: RFC 5321 section 4.4 order (from, by,
 * with, then the RFC 8314 section 4.3 "tls" clause, then the date), and
 * nothing from the network (HELO, reverse name) that is no domain.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kselftest_harness.h"

#include "milter/received.h"

/* Tue, 01 Dec 2026 08:00:00 UTC */
#define T0 ((time_t)1796112000)

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

	sin->sin_family = AF_INET;
	sin->sin_port = htons(51234);
	inet_pton(AF_INET, ip, &sin->sin_addr);
	return ss;
}

static struct sockaddr_storage v6(const char *ip)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(51234);
	inet_pton(AF_INET6, ip, &sin6->sin6_addr);
	return ss;
}

FIXTURE(rcv) {
	struct sockaddr_storage client;
	struct mk_received rv;
	char buf[MK_RCV_VALUE_MAX];
};

FIXTURE_SETUP(rcv)
{
	setenv("TZ", "UTC", 1);
	tzset();
	self->client = v4("203.0.113.9");
	self->rv = (struct mk_received){
		.rv_helo = "client.example",
		.rv_client_name = "unknown",
		.rv_client = &self->client,
		.rv_by = "mail.example.org",
		.rv_auth = true,
		.rv_clause = "tls TLS_AES_256_GCM_SHA384",
		.rv_time = T0,
	};
}

FIXTURE_TEARDOWN(rcv)
{
}

TEST_F(rcv, authenticated_submission_is_esmtpsa_in_rfc5321_order)
{
	int n = mk_rcv_build(&self->rv, self->buf, sizeof(self->buf));

	ASSERT_GT(n, 0);
	ASSERT_EQ((size_t)n, strlen(self->buf));
	EXPECT_STREQ("from client.example ([203.0.113.9])\n"
		     "\tby mail.example.org (mailktls) with ESMTPSA tls TLS_AES_256_GCM_SHA384;\n"
		     "\tTue, 01 Dec 2026 08:00:00 +0000", self->buf);
}

TEST_F(rcv, unauthenticated_is_esmtps_and_reverse_name_in_tcp_info)
{
	self->rv.rv_auth = false;
	self->rv.rv_client_name = "host9.example.net";
	ASSERT_GT(mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)), 0);
	EXPECT_STREQ("from client.example (host9.example.net [203.0.113.9])\n"
		     "\tby mail.example.org (mailktls) with ESMTPS tls TLS_AES_256_GCM_SHA384;\n"
		     "\tTue, 01 Dec 2026 08:00:00 +0000", self->buf);
}

TEST_F(rcv, ipv6_client_is_an_ipv6_address_literal)
{
	self->client = v6("2001:db8::9");
	self->rv.rv_clause = "tls 0x1303";
	ASSERT_GT(mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)), 0);
	EXPECT_STREQ("from client.example ([IPv6:2001:db8::9])\n"
		     "\tby mail.example.org (mailktls) with ESMTPSA tls 0x1303;\n"
		     "\tTue, 01 Dec 2026 08:00:00 +0000", self->buf);
}

/* Whatever the client says in HELO, the header keeps its grammar. */
TEST_F(rcv, helo_that_is_no_domain_becomes_the_address_literal)
{
	static const char *const bad[] = {
		"", "evil\r\nX-Injected: yes", "a b", "x (comment", "x;y", "[1.2.3.4]",
		"-lead.example", "trail-.example", "dot..example", ".example",
		"exa_mple.org", "xn--\xc3\xa9.example", "a.b.", NULL,
	};
	static const char want[] = "from [203.0.113.9] ([203.0.113.9])\n\tby ";
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		self->rv.rv_helo = bad[i];
		self->rv.rv_client_name = bad[i];
		ASSERT_GT(mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)), 0);
		EXPECT_EQ(0, strncmp(self->buf, want, strlen(want)))
			TH_LOG("helo %zu gave %s", i, self->buf);
		EXPECT_EQ(NULL, strchr(self->buf, '\r'));
		EXPECT_EQ(NULL, strstr(self->buf, "Injected"));
	}
}

TEST_F(rcv, longest_domain_fits_and_one_more_octet_does_not)
{
	char name[MK_RCV_DOMAIN_MAX + 2];
	size_t i;

	/* 63-octet labels joined by dots, cut to exactly 255 octets */
	for (i = 0; i < sizeof(name) - 1; i++)
		name[i] = (i % 64 == 63) ? '.' : 'a';
	name[MK_RCV_DOMAIN_MAX] = '\0';
	EXPECT_TRUE(mk_rcv_domain_ok(name));
	self->rv.rv_helo = name;
	ASSERT_GT(mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)), 0);
	EXPECT_NE(NULL, strstr(self->buf, name));
	name[MK_RCV_DOMAIN_MAX] = 'a';
	name[MK_RCV_DOMAIN_MAX + 1] = '\0';
	EXPECT_FALSE(mk_rcv_domain_ok(name));
	/* a 64-octet label */
	memset(name, 'b', 64);
	name[64] = '\0';
	EXPECT_FALSE(mk_rcv_domain_ok(name));
}

TEST_F(rcv, clause_must_have_rfc8314_grammar)
{
	static const char *const bad[] = {
		"TLS_AES_256_GCM_SHA384", "tls ", "tls  TLS_X", "tls 1TLS", "tls TLS-X",
		"tls TLS_X;", "tls 0x13", "tls 0x13021", "tls 0xZZZZ", "tls TLS_X\n", NULL,
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		self->rv.rv_clause = bad[i];
		EXPECT_EQ(-EINVAL, mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)))
			TH_LOG("clause %zu accepted", i);
	}
	EXPECT_TRUE(mk_rcv_clause_ok("tls TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"));
	EXPECT_TRUE(mk_rcv_clause_ok("tls 0xc02B"));
}

TEST_F(rcv, unusable_host_name_or_address_is_an_error)
{
	struct sockaddr_storage none = { .ss_family = AF_UNIX };

	self->rv.rv_by = NULL;
	EXPECT_EQ(-EINVAL, mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)));
	self->rv.rv_by = "mail example";
	EXPECT_EQ(-EINVAL, mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)));
	self->rv.rv_by = "mail.example.org";
	self->rv.rv_client = &none;
	EXPECT_EQ(-EINVAL, mk_rcv_build(&self->rv, self->buf, sizeof(self->buf)));
}

TEST_F(rcv, small_buffer_is_enospc_and_empty)
{
	char small[40];

	EXPECT_EQ(-ENOSPC, mk_rcv_build(&self->rv, small, sizeof(small)));
	EXPECT_STREQ("", small);
}

TEST_HARNESS_MAIN
