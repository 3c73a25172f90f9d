// SPDX-License-Identifier: GPL-2.0
/* IMAP before STARTTLS: every command's exact reply, injection, limits. */
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "pretls_test.h"

#define CAPS "IMAP4rev1 STARTTLS LOGINDISABLED"
#define REFUSAL "NO [PRIVACYREQUIRED] Authentication not allowed before STARTTLS\r\n"
#define UNKNOWN "BAD Unknown command or not allowed before STARTTLS\r\n"
#define GARBAGE "* BAD Invalid tag or command line\r\n"
#define C MK_PRETLS_CONTINUE

FIXTURE(imap) {
	struct mk_pretls *p;
	struct pt_result r;
};

FIXTURE_SETUP(imap)
{
	self->p = pt_new(MK_PROTO_IMAP, 0, 0);
	ASSERT_NE(NULL, self->p);
}

FIXTURE_TEARDOWN(imap)
{
	mk_pretls_free(self->p);
}

TEST_F(imap, greeting_and_timeout)
{
	struct mk_buf out;

	mk_buf_init(&out, 4096);
	ASSERT_EQ(0, mk_pretls_greeting(self->p, &out));
	ASSERT_EQ(0, mk_pretls_timeout(self->p, &out));
	ASSERT_EQ(0, mk_buf_append(&out, "", 1));
	EXPECT_STREQ("* OK [CAPABILITY " CAPS "] " PT_HOST " ready.\r\n"
		     "* BYE Autologout; idle too long\r\n", (char *)mk_buf_head(&out));
	mk_buf_free(&out);
	EXPECT_EQ(8192, mk_pretls_max_line(self->p));
}

TEST_F(imap, commands)
{
	static const struct pt_step steps[] = {
		{ "a1 CAPABILITY\r\n", "* CAPABILITY " CAPS "\r\na1 OK CAPABILITY completed\r\n",
		  C, PT_ALL },
		{ "a2 noop\r\n", "a2 OK NOOP completed\r\n", C, PT_ALL },
		{ "a3 Capability\n", "* CAPABILITY " CAPS "\r\na3 OK CAPABILITY completed\r\n",
		  C, PT_ALL },
		{ "a4 NOOP  \r\n", "a4 OK NOOP completed\r\n", C, PT_ALL },
		{ "a5 SELECT INBOX\r\n", "a5 " UNKNOWN, C, PT_ALL },
		{ "a6 CAPABILITY now\r\n", "a6 BAD Unexpected arguments\r\n", C, PT_ALL },
		{ "a7 STARTTLS x\r\n", "a7 BAD Unexpected arguments\r\n", C, PT_ALL },
		{ "a8\r\n", GARBAGE, C, PT_ALL },
		{ "\r\n", GARBAGE, C, PT_ALL },
		{ "* NOOP\r\n", GARBAGE, C, PT_ALL },
		{ "+1 NOOP\r\n", GARBAGE, C, PT_ALL },
		{ "a(b NOOP\r\n", GARBAGE, C, PT_ALL },
		{ "]x NOOP\r\n", "]x OK NOOP completed\r\n", C, PT_ALL },
		{ "a9 NOOP\r\na10 NOOP\r\n", "a9 OK NOOP completed\r\na10 OK NOOP completed\r\n", C,
		  PT_ALL },
		{ "a11 NO", "", C, 0 },
		{ "a12 LOGOUT\r\n", "* BYE Logging out\r\na12 OK LOGOUT completed\r\n",
		  MK_PRETLS_CLOSE, PT_ALL },
		{ "a13 NOOP\r\n", "", MK_PRETLS_CLOSE, 0 },
	};

	pt_steps(_metadata, self->p, steps, sizeof(steps) / sizeof(steps[0]));
}

TEST_F(imap, nul_byte_refused)
{
	static const char lit[] = "a3 LOGIN {5+}\r\n\0\0\0\0\0 x\r\n";

	pt_feed(self->p, "a1 NO\0OP\r\n", 10, &self->r);
	EXPECT_STREQ(GARBAGE, self->r.r_out);
	pt_feed(self->p, "a1 NOOP \0\r\n", 11, &self->r);
	EXPECT_STREQ(GARBAGE, self->r.r_out);
	EXPECT_EQ(C, self->r.r_verdict);
	/* Not even a NUL changes an authentication refusal. */
	pt_feed(self->p, "a2 LOGIN alice pass\0word\r\n", 27, &self->r);
	EXPECT_STREQ("a2 " REFUSAL, self->r.r_out);
	pt_feed(self->p, lit, sizeof(lit) - 1, &self->r);
	EXPECT_STREQ("a3 " REFUSAL, self->r.r_out);
	EXPECT_EQ(sizeof(lit) - 1, self->r.r_consumed);
}

TEST_F(imap, starttls_discards_pipelined)
{
	static const char in[] = "a STARTTLS\r\nb NOOP\r\n";

	pt_feed_str(self->p, in, &self->r);
	EXPECT_STREQ("a OK Begin TLS negotiation now\r\n", self->r.r_out);
	EXPECT_EQ(MK_PRETLS_STARTTLS, self->r.r_verdict);
	EXPECT_EQ(strlen("a STARTTLS\r\n"), self->r.r_consumed);
	EXPECT_EQ(0, self->r.r_nev);
	/* Whatever the caller feeds afterwards is never answered. */
	pt_feed_str(self->p, in + self->r.r_consumed, &self->r);
	EXPECT_STREQ("", self->r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, self->r.r_verdict);
}

/* RFC 8314 §4.1: the refusal is the same whatever the credentials. */
TEST(refusal_identical)
{
	static const char *const login[] = {
		"t LOGIN alice correct-horse\r\n",
		"t LOGIN alice wrong\r\n",
		"t LOGIN \"nobody@example.org\" \"x y\"\r\n",
		"t login\r\n",
		"t LOGIN {5}\r\n",
		"t LOGIN {5+}\r\nalice {13+}\r\ncorrect-horse\r\n",
		"t LOGIN {0+}\r\n {3+}\r\nabc\r\n",
	};
	static const char *const authenticate[] = {
		"t AUTHENTICATE PLAIN AGFsaWNlAGNvcnJlY3QtaG9yc2U=\r\n",
		"t AUTHENTICATE PLAIN AGFsaWNlAHdyb25n\r\n",
		"t AUTHENTICATE PLAIN =\r\n",
		"t AUTHENTICATE PLAIN\r\n",
		"t authenticate XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB4AQE=\r\n",
		"t AUTHENTICATE\r\n",
	};

	pt_same_reply(_metadata, MK_PROTO_IMAP, login, sizeof(login) / sizeof(login[0]),
		      "t " REFUSAL, "LOGIN");
	pt_same_reply(_metadata, MK_PROTO_IMAP, authenticate,
		      sizeof(authenticate) / sizeof(authenticate[0]), "t " REFUSAL, "AUTHENTICATE");
}

/* A password in a LITERAL+ literal is skipped, never read as a command. */
TEST_F(imap, nonsync_literal_is_part_of_command)
{
	static const char in[] = "a LOGIN {4+}\r\nb NO {8+}\r\nc LOGOUT\r\nd NOOP\r\n";

	pt_feed_str(self->p, in, &self->r);
	EXPECT_STREQ("a " REFUSAL "d OK NOOP completed\r\n", self->r.r_out);
	EXPECT_EQ(C, self->r.r_verdict);
	EXPECT_EQ(strlen(in), self->r.r_consumed);
	/* Incomplete literal: wait for the rest. */
	pt_feed_str(self->p, "e LOGIN {10+}\r\nabc", &self->r);
	EXPECT_STREQ("", self->r.r_out);
	EXPECT_EQ(0, self->r.r_consumed);
}

TEST_F(imap, refusal_events)
{
	pt_feed_str(self->p, "a LOGIN u p\r\nb AUTHENTICATE PLAIN\r\nc NOOP\r\n", &self->r);
	ASSERT_EQ(2, self->r.r_nev);
	EXPECT_STREQ("LOGIN", self->r.r_ev[0].pe_command);
	EXPECT_TRUE(self->r.r_ev[0].pe_auth_refused);
	EXPECT_STREQ("AUTHENTICATE", self->r.r_ev[1].pe_command);
	EXPECT_EQ(C, self->r.r_verdict);
}

TEST(line_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_IMAP, 0, 0);
	static struct pt_result r;
	static char line[8200];

	ASSERT_NE(NULL, p);
	/* 8192 bytes with CRLF: accepted. */
	memset(line, 'x', sizeof(line));
	memcpy(line, "a NOOP ", 7);
	memcpy(line + 8190, "\r\n", 2);
	pt_feed(p, line, 8192, &r);
	EXPECT_STREQ("a BAD Unexpected arguments\r\n", r.r_out);
	EXPECT_EQ(8192, r.r_consumed);
	/* 8191 bytes without a line end: could still end in time. */
	memset(line, 'x', sizeof(line));
	pt_feed(p, line, 8191, &r);
	EXPECT_STREQ("", r.r_out);
	EXPECT_EQ(C, r.r_verdict);
	/* 8192 without LF: the line cannot fit any more. */
	pt_feed(p, line, 8192, &r);
	EXPECT_STREQ("* BYE Command line too long\r\n", r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	ASSERT_EQ(1, r.r_nev);
	EXPECT_STREQ("LINE-TOO-LONG", r.r_ev[0].pe_command);
	EXPECT_FALSE(r.r_ev[0].pe_auth_refused);
	mk_pretls_free(p);

	/* A literal that cannot fit closes as well. */
	p = pt_new(MK_PROTO_IMAP, 0, 0);
	pt_feed_str(p, "a LOGIN {8190+}\r\n", &r);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	EXPECT_STREQ("* BYE Command line too long\r\n", r.r_out);
	mk_pretls_free(p);
	p = pt_new(MK_PROTO_IMAP, 0, 0);
	pt_feed_str(p, "a LOGIN {99999999999999999999+}\r\n", &r);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	mk_pretls_free(p);
}

TEST(command_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_IMAP, 3, 0);
	static struct pt_result r;

	ASSERT_NE(NULL, p);
	pt_feed_str(p, "a NOOP\r\nb NOOP\r\nc NOOP\r\nd STARTTLS\r\n", &r);
	EXPECT_STREQ("a OK NOOP completed\r\nb OK NOOP completed\r\nc OK NOOP completed\r\n"
		     "* BYE Too many commands before STARTTLS\r\n", r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	ASSERT_EQ(1, r.r_nev);
	EXPECT_STREQ("TOO-MANY-COMMANDS", r.r_ev[0].pe_command);
	mk_pretls_free(p);

	/* Default: 32. */
	p = pt_new(MK_PROTO_IMAP, 0, 0);
	for (int i = 0; i < 32; i++) {
		pt_feed_str(p, "a NOOP\r\n", &r);
		ASSERT_EQ(C, r.r_verdict);
	}
	pt_feed_str(p, "a NOOP\r\n", &r);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	mk_pretls_free(p);
}

TEST(auth_refusal_limit)
{
	struct mk_pretls *p = pt_new(MK_PROTO_IMAP, 0, 2);
	static struct pt_result r;

	ASSERT_NE(NULL, p);
	pt_feed_str(p, "a LOGIN u p\r\n", &r);
	EXPECT_STREQ("a " REFUSAL, r.r_out);
	EXPECT_EQ(C, r.r_verdict);
	pt_feed_str(p, "b AUTHENTICATE PLAIN\r\nc NOOP\r\n", &r);
	EXPECT_STREQ("b " REFUSAL "* BYE Too many authentication attempts\r\n", r.r_out);
	EXPECT_EQ(MK_PRETLS_CLOSE, r.r_verdict);
	EXPECT_EQ(strlen("b AUTHENTICATE PLAIN\r\n"), r.r_consumed);
	ASSERT_EQ(1, r.r_nev);
	EXPECT_STREQ("AUTHENTICATE", r.r_ev[0].pe_command);
	mk_pretls_free(p);
}

TEST(output_full_closes)
{
	struct mk_pretls *p = pt_new(MK_PROTO_IMAP, 0, 0);
	struct mk_pretls_event ev[2];
	size_t consumed, nev = 2;
	struct mk_buf out;

	ASSERT_NE(NULL, p);
	mk_buf_init(&out, 30);
	EXPECT_EQ(MK_PRETLS_CLOSE, mk_pretls_input(p, (const uint8_t *)"a CAPABILITY\r\n", 14,
						   &consumed, &out, ev, &nev));
	ASSERT_EQ(1, nev);
	EXPECT_STREQ("OUTPUT-FULL", ev[0].pe_command);
	mk_buf_free(&out);
	mk_pretls_free(p);
}

TEST(hostname)
{
	struct mk_pretls *p;

	EXPECT_EQ(NULL, mk_pretls_new(MK_PROTO_IMAP, "bad host", NULL));
	EXPECT_EQ(NULL, mk_pretls_new(MK_PROTO_IMAP, "evil\r\n* OK", NULL));
	p = mk_pretls_new(MK_PROTO_IMAP, NULL, NULL);
	ASSERT_NE(NULL, p);
	mk_pretls_free(p);
}

TEST_HARNESS_MAIN
