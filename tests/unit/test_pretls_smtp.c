// SPDX-License-Identifier: GPL-2.0
/* Submission before STARTTLS: every command's exact reply, injection, limits. */
#include <string.h>

#include "kselftest_harness.h"
#include "pretls_test.h"

#define R530 "530 5.7.0 Must issue a STARTTLS command first\r\n"
#define EHLO "250-" PT_HOST "\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n"
#define SYNTAX "501 5.5.4 Syntax error in parameters or arguments\r\n"
#define UNKNOWN "500 5.5.2 Error: command not recognized\r\n"
#define C MK_PRETLS_CONTINUE

FIXTURE(smtp) {
	struct mk_pretls *p;
	struct pt_result r;
};

FIXTURE_SETUP(smtp)
{
	self->p = pt_new(MK_PROTO_SUBMISSION, 0, 0);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(smtp)
{
	mk_pretls_free(self->p);
}

TEST_F(smtp, greeting_and_timeout)
{
	struct mk_buf out;

	mk_buf_init(&out, 4096);
	ASSERT_EQ(0, mk_pretls_greeting(self->p, &out));
	ASSERT_EQ(0, mk_pretls_timeout(self->p, &out));
	ASSERT_EQ(0, mk_buf_append(&out, "", 1));
	EXPECT_STREQ("220 " PT_HOST " ESMTP ready\r\n421 4.4.2 " PT_HOST
		     " Error: timeout exceeded\r\n", (char *)mk_buf_head(&out));
	mk_buf_free(&out);
	EXPECT_EQ(512, mk_pretls_max_line(self->p));
}

TEST_F(smtp, commands)
{
	static const struct pt_step steps[] = {
		{ "EHLO client.example.net\r\n", EHLO, C, PT_ALL },
		{ "ehlo [192.0.2.1]\n", EHLO, C, PT_ALL },
		{ "EHLO\r\n", SYNTAX, C, PT_ALL },
		{ "HELO client\r\n", "250 " PT_HOST "\r\n", C, PT_ALL },
		{ "HELO\r\n", SYNTAX, C, PT_ALL },
		{ "NOOP\r\n", "250 2.0.0 OK\r\n", C, PT_ALL },
		{ "NOOP anything\r\n", "250 2.0.0 OK\r\n", C, PT_ALL },
		{ "RSET\r\n", "250 2.0.0 OK\r\n", C, PT_ALL },
		{ "RSET x\r\n", SYNTAX, C, PT_ALL },
		{ "MAIL FROM:<a@example.org>\r\n", R530, C, PT_ALL },
		{ "RCPT TO:<b@example.org>\r\n", R530, C, PT_ALL },
		{ "DATA\r\n", R530, C, PT_ALL },
		{ "BDAT 10 LAST\r\n", R530, C, PT_ALL },
		{ "VRFY root\r\n", R530, C, PT_ALL },
		{ "EXPN staff\r\n", R530, C, PT_ALL },
		{ "HELP\r\n", R530, C, PT_ALL },
		{ "XCLIENT ADDR=1.2.3.4\r\n", UNKNOWN, C, PT_ALL },
		{ "\r\n", UNKNOWN, C, PT_ALL },
		{ "STARTTLS now\r\n", SYNTAX, C, PT_ALL },
		{ "QU", "", C, 0 },
		{ "QUIT\r\n", "221 2.0.0 Bye\r\n", MK_PRETLS_CLOSE, PT_ALL },
		{ "NOOP\r\n", "", MK_PRETLS_CLOSE, 0 },
	};

	pt_steps(_metadata, self->p, steps, sizeof(steps) / sizeof(steps[0]));
}

TEST_F(smtp, nul_byte_refused)
{
	pt_feed(self->p, "EHLO a\0b\r\n", 10, &self->r);
	EXPECT_STREQ("500 5.5.2 Error: bad syntax\r\n", self->r.r_out);
	EXPECT_EQ(C, self->r.r_verdict);
}

TEST_F(smtp, starttls_discards_pipelined)
{
	pt_feed_str(self->p, "EHLO x\r\nSTARTTLS\r\nEHLO y\r\n", &self->r);
	EXPECT_STREQ(EHLO "220 2.0.0 Ready to start TLS\r\n", self->r.r_out);
	EXPECT_EQ(MK_PRETLS_STARTTLS, self->r.r_verdict);
	EXPECT_EQ(strlen("EHLO x\r\nSTARTTLS\r\n"), self->r.r_consumed);
	pt_feed_str(self->p, "EHLO y\r\n", &self->r);
	EXPECT_STREQ("", self->r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, self->r.r_verdict);
}

/* RFC 3207 allows STARTTLS before EHLO. */
TEST_F(smtp, starttls_without_ehlo)
{
	pt_feed_str(self->p, "starttls\r\n", &self->r);
	EXPECT_STREQ("220 2.0.0 Ready to start TLS\r\n", self->r.r_out);
	EXPECT_EQ(MK_PRETLS_STARTTLS, self->r.r_verdict);
}

/* RFC 8314 §4.1: the refusal is the same whatever the credentials. */
TEST(refusal_identical)
{
	static const char *const auth[] = {
		"AUTH PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2U=\r\n",
		"AUTH PLAIN AGFsaWNlAHdyb25n\r\n",
		"AUTH PLAIN =\r\n",
		"AUTH PLAIN\r\n",
		"AUTH LOGIN YWxpY2U=\r\n",
		"AUTH LOGIN bm9ib2R5\r\n",
		"AUTH LOGIN\r\n",
		"auth cram-md5\r\n",
		"AUTH\r\n",
	};

	pt_same_reply(_metadata, MK_PROTO_SUBMISSION, auth, sizeof(auth) / sizeof(auth[0]), R530,
		      "AUTH");
}

TEST(line_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_SUBMISSION, 0, 0);
	static struct pt_result r;
	char line[520];

	ASSERT_NE(NULL, p);
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + 510, "\r\n", 2);	/* 512 with CRLF: RFC 5321 §4.5.3.1.4 */
	pt_feed(p, line, 512, &r);
	EXPECT_STREQ("250 2.0.0 OK\r\n", r.r_out);
	memcpy(line + 510, "x\r\n", 3);
	pt_feed(p, line, 513, &r);
	EXPECT_STREQ("421 4.7.0 " PT_HOST " Error: command line too long\r\n", r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	mk_pretls_free(p);
}

TEST(command_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_SUBMISSION, 2, 0);
	static struct pt_result r;

	ASSERT_NE(NULL, p);
	pt_feed_str(p, "NOOP\r\nDATA\r\nSTARTTLS\r\n", &r);
	EXPECT_STREQ("250 2.0.0 OK\r\n" R530 "421 4.7.0 " PT_HOST
		     " Error: too many commands before STARTTLS\r\n", r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	mk_pretls_free(p);
}

TEST(auth_refusal_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_SUBMISSION, 0, 1);
	static struct pt_result r;

	ASSERT_NE(NULL, p);
	pt_feed_str(p, "AUTH PLAIN AGFsaWNlAHdyb25n\r\nNOOP\r\n", &r);
	EXPECT_STREQ(R530 "421 4.7.0 " PT_HOST " Error: too many authentication attempts\r\n",
		     r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	ASSERT_EQ(1, r.r_nev);
	EXPECT_STREQ("AUTH", r.r_ev[0].pe_command);
	EXPECT_TRUE(r.r_ev[0].pe_auth_refused);
	mk_pretls_free(p);
}

TEST_HARNESS_MAIN
