// SPDX-License-Identifier: GPL-2.0
/* POP3 before STLS: every command's exact reply, injection, limits. */
#include <string.h>

#include "kselftest_harness.h"
#include "pretls_test.h"

#define REFUSAL "-ERR [SYS/PERM] Authentication not allowed before STLS\r\n"
#define UNKNOWN "-ERR Unknown command or not allowed before STLS\r\n"
#define CAPA "+OK Capability list follows\r\nSTLS\r\nRESP-CODES\r\n.\r\n"
#define C MK_PRETLS_CONTINUE

FIXTURE(pop3) {
	struct mk_pretls *p;
	struct pt_result r;
};

FIXTURE_SETUP(pop3)
{
	self->p = pt_new(MK_PROTO_POP3, 0, 0);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(pop3)
{
	mk_pretls_free(self->p);
}

TEST_F(pop3, greeting_and_timeout)
{
	struct mk_buf out;

	mk_buf_init(&out, 4096);
	ASSERT_EQ(0, mk_pretls_greeting(self->p, &out));
	ASSERT_EQ(0, mk_pretls_timeout(self->p, &out));
	ASSERT_EQ(0, mk_buf_append(&out, "", 1));
	/* No APOP timestamp: nothing to tempt a client into APOP. */
	EXPECT_STREQ("+OK " PT_HOST " ready.\r\n-ERR timeout\r\n", (char *)mk_buf_head(&out));
	mk_buf_free(&out);
	EXPECT_EQ(8192, mk_pretls_max_line(self->p));
}

TEST_F(pop3, commands)
{
	static const struct pt_step steps[] = {
		{ "CAPA\r\n", CAPA, C, PT_ALL },
		{ "capa\n", CAPA, C, PT_ALL },
		{ "CAPA x\r\n", "-ERR Unexpected arguments\r\n", C, PT_ALL },
		{ "NOOP\r\n", UNKNOWN, C, PT_ALL },
		{ "STAT\r\n", UNKNOWN, C, PT_ALL },
		{ "RETR 1\r\n", UNKNOWN, C, PT_ALL },
		{ "\r\n", UNKNOWN, C, PT_ALL },
		{ "STLS now\r\n", "-ERR Unexpected arguments\r\n", C, PT_ALL },
		{ "CA", "", C, 0 },
		{ "QUIT\r\n", "+OK Logging out\r\n", MK_PRETLS_CLOSE, PT_ALL },
		{ "CAPA\r\n", "", MK_PRETLS_CLOSE, 0 },
	};

	pt_steps(_metadata, self->p, steps, sizeof(steps) / sizeof(steps[0]));
}

TEST_F(pop3, nul_byte_refused)
{
	pt_feed(self->p, "CAPA\0\r\n", 7, &self->r);
	EXPECT_STREQ("-ERR Invalid command line\r\n", self->r.r_out);
	pt_feed(self->p, "USER a\0b\r\n", 10, &self->r);
	EXPECT_STREQ(REFUSAL, self->r.r_out);
	EXPECT_EQ(C, self->r.r_verdict);
}

TEST_F(pop3, stls_discards_pipelined)
{
	pt_feed_str(self->p, "STLS\r\nCAPA\r\n", &self->r);
	EXPECT_STREQ("+OK Begin TLS negotiation\r\n", self->r.r_out);
	EXPECT_EQ(MK_PRETLS_STARTTLS, self->r.r_verdict);
	EXPECT_EQ(strlen("STLS\r\n"), self->r.r_consumed);
	pt_feed_str(self->p, "CAPA\r\n", &self->r);
	EXPECT_STREQ("", self->r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, self->r.r_verdict);
}

/* RFC 8314 §4.1: the refusal is the same whatever the credentials. */
TEST(refusal_identical)
{
	static const char *const user[] = {
		"USER alice\r\n", "USER nobody-at-all\r\n", "user\r\n", "USER \r\n",
	};
	static const char *const pass[] = {
		"PASS correct-horse\r\n", "PASS wrong\r\n", "PASS with spaces in it\r\n",
		"PASS\r\n",
	};
	static const char *const apop[] = {
		"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\n",
		"APOP mallory 00000000000000000000000000000000\r\n", "APOP\r\n",
	};
	static const char *const auth[] = {
		"AUTH PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2U=\r\n", "AUTH PLAIN AGFsaWNlAHdyb25n\r\n",
		"AUTH PLAIN\r\n", "AUTH LOGIN\r\n", "AUTH\r\n", "auth plain =\r\n",
	};

	pt_same_reply(_metadata, MK_PROTO_POP3, user, sizeof(user) / sizeof(user[0]), REFUSAL,
		      "USER");
	pt_same_reply(_metadata, MK_PROTO_POP3, pass, sizeof(pass) / sizeof(pass[0]), REFUSAL,
		      "PASS");
	pt_same_reply(_metadata, MK_PROTO_POP3, apop, sizeof(apop) / sizeof(apop[0]), REFUSAL,
		      "APOP");
	pt_same_reply(_metadata, MK_PROTO_POP3, auth, sizeof(auth) / sizeof(auth[0]), REFUSAL,
		      "AUTH");
}

TEST(line_limit)
{
	struct mk_pretls_limits l = { 64, 0, 0 };
	struct mk_pretls *p = mk_pretls_new(MK_PROTO_POP3, PT_HOST, &l);
	static struct pt_result r;
	char line[80];

	ASSERT_NE(NULL, p);
	memset(line, 'x', sizeof(line));
	memcpy(line, "USER ", 5);
	memcpy(line + 62, "\r\n", 2);
	pt_feed(p, line, 64, &r);
	EXPECT_STREQ(REFUSAL, r.r_out);
	memcpy(line + 62, "xx\r\n", 4);
	pt_feed(p, line, 66, &r);
	EXPECT_STREQ("-ERR Command line too long\r\n", r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	mk_pretls_free(p);
}

TEST(command_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_POP3, 2, 0);
	static struct pt_result r;

	ASSERT_NE(NULL, p);
	pt_feed_str(p, "CAPA\r\nFOO\r\nSTLS\r\n", &r);
	EXPECT_STREQ(CAPA UNKNOWN "-ERR Too many commands before STLS\r\n", r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	mk_pretls_free(p);
}

TEST(auth_refusal_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_POP3, 0, 2);
	static struct pt_result r;

	ASSERT_NE(NULL, p);
	pt_feed_str(p, "USER a\r\nPASS b\r\nUSER c\r\n", &r);
	/* POP3 has no unsolicited reply: the second refusal, then close. */
	EXPECT_STREQ(REFUSAL REFUSAL, r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	EXPECT_EQ(strlen("USER a\r\nPASS b\r\n"), r.r_consumed);
	ASSERT_EQ(2, r.r_nev);
	EXPECT_STREQ("USER", r.r_ev[0].pe_command);
	EXPECT_STREQ("PASS", r.r_ev[1].pe_command);
	mk_pretls_free(p);
}

TEST_HARNESS_MAIN
