// SPDX-License-Identifier: GPL-2.0
/*
 * mailktls-milter's lookup: the MTA's {client_addr}/{client_port} macros,
 * and a bounded wait for an agent that does not answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "kselftest_harness.h"

#include "mailktls.h"
#include "milter/lookup.h"

TEST(client_macros_ipv4_ipv6_and_sendmail_form)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	char ip[INET6_ADDRSTRLEN];

	ASSERT_EQ(0, mk_lookup_client("203.0.113.9", "51234", &ss));
	EXPECT_EQ(AF_INET, ss.ss_family);
	EXPECT_EQ(51234, ntohs(sin->sin_port));
	inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
	EXPECT_STREQ("203.0.113.9", ip);

	ASSERT_EQ(0, mk_lookup_client("2001:db8::9", "465", &ss));
	EXPECT_EQ(AF_INET6, ss.ss_family);
	EXPECT_EQ(465, ntohs(sin6->sin6_port));

	ASSERT_EQ(0, mk_lookup_client("IPv6:2001:db8::9", "65535", &ss));
	EXPECT_EQ(AF_INET6, ss.ss_family);
}

TEST(client_macros_missing_or_malformed)
{
	struct sockaddr_storage ss;

	EXPECT_EQ(-ENOENT, mk_lookup_client(NULL, "1", &ss));
	EXPECT_EQ(-ENOENT, mk_lookup_client("203.0.113.9", NULL, &ss));
	EXPECT_EQ(-ENOENT, mk_lookup_client("", "1", &ss));
	EXPECT_EQ(-EINVAL, mk_lookup_client("203.0.113.9", "0", &ss));
	EXPECT_EQ(-EINVAL, mk_lookup_client("203.0.113.9", "65536", &ss));
	EXPECT_EQ(-EINVAL, mk_lookup_client("203.0.113.9", "-1", &ss));
	EXPECT_EQ(-EINVAL, mk_lookup_client("203.0.113.9", "+80", &ss));
	EXPECT_EQ(-EINVAL, mk_lookup_client("203.0.113.9", "80x", &ss));
	EXPECT_EQ(-EINVAL, mk_lookup_client("unknown", "80", &ss));
	EXPECT_EQ(-EINVAL, mk_lookup_client("[203.0.113.9]", "80", &ss));
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * An agent that accepts the connection but never answers (the kernel
 * completes the unix connect from the backlog): the lookup gives up after
 * MAILKTLS_QUERY_TIMEOUT_MS, not the library's default 2 s.
 */
TEST(silent_agent_costs_at_most_the_timeout)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct sockaddr_storage ss;
	char clause[MK_LOOKUP_CLAUSE_MAX];
	const char *source;
	double t0, took;
	int lfd;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "/tmp/mk-milter-silent.%d", getpid());
	unlink(sun.sun_path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	ASSERT_LE(0, lfd);
	ASSERT_EQ(0, bind(lfd, (struct sockaddr *)&sun, sizeof(sun)));
	ASSERT_EQ(0, listen(lfd, 4));
	setenv(MAILKTLS_QUERY_ENV, sun.sun_path, 1);
	setenv(MAILKTLS_QUERY_TIMEOUT_ENV, "200", 1);
	ASSERT_EQ(0, mk_lookup_client("203.0.113.9", "51234", &ss));

	t0 = now_s();
	EXPECT_EQ(-ETIMEDOUT, mk_lookup_clause(&ss, clause, sizeof(clause), &source));
	took = now_s() - t0;
	EXPECT_LE(0.19, took);
	EXPECT_GT(0.9, took) TH_LOG("took %.3f s", took);

	/* Out-of-range values fall back to the library's 2 s bound. */
	setenv(MAILKTLS_QUERY_TIMEOUT_ENV, "0", 1);
	t0 = now_s();
	EXPECT_EQ(-ETIMEDOUT, mk_lookup_clause(&ss, clause, sizeof(clause), &source));
	took = now_s() - t0;
	EXPECT_LE(1.9, took);
	EXPECT_GT(3.0, took) TH_LOG("took %.3f s", took);
	close(lfd);
	unlink(sun.sun_path);
}

TEST(no_agent_is_notfound_at_once)
{
	struct sockaddr_storage ss;
	char clause[MK_LOOKUP_CLAUSE_MAX];
	const char *source;
	double t0;

	setenv(MAILKTLS_QUERY_ENV, "/nonexistent/mk-query.sock", 1);
	ASSERT_EQ(0, mk_lookup_client("203.0.113.9", "51234", &ss));
	t0 = now_s();
	EXPECT_GT(0, mk_lookup_clause(&ss, clause, sizeof(clause), &source));
	EXPECT_GT(0.5, now_s() - t0);
}

TEST_HARNESS_MAIN
