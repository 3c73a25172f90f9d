// SPDX-License-Identifier: GPL-2.0
/*
 * Capability filter: Dovecot-like and Postfix-like backend transcripts in,
 * exact client bytes out, for every way the stream can be split into reads.
 */
#include <stdlib.h>
#include <string.h>

#include "kselftest_harness.h"
#include "capfilter.h"

#define OUT_MAX (256 * 1024)

struct cf_result {
	int r_ret;		/* return value of the last call */
	int r_first_done;	/* index of the first call that returned 1, or -1 */
	size_t r_len;
	char *r_out;
};

/* Feed @first bytes, then @step bytes at a time. */
static void cf_run(enum mk_protocol proto, bool drop, const char *in, size_t len, size_t first,
		   size_t step, struct cf_result *r)
{
	struct mk_capfilter *f = mk_capfilter_new(proto, drop);
	size_t pos = 0, n = first;
	struct mk_buf out;
	int call = 0;

	mk_buf_init(&out, OUT_MAX);
	r->r_first_done = -1;
	r->r_ret = 0;
	while (f && pos < len) {
		if (n > len - pos)
			n = len - pos;
		r->r_ret = mk_capfilter_feed(f, (const uint8_t *)in + pos, n, &out);
		if (r->r_ret < 0)
			break;
		if (r->r_ret == 1 && r->r_first_done < 0)
			r->r_first_done = call;
		/* Once done, always done. */
		if (r->r_first_done >= 0 && r->r_ret != 1)
			r->r_ret = -1000;
		pos += n;
		n = step;
		call++;
	}
	r->r_len = mk_buf_used(&out);
	r->r_out = malloc(r->r_len + 1);
	if (r->r_len)
		memcpy(r->r_out, mk_buf_head(&out), r->r_len);
	r->r_out[r->r_len] = '\0';
	mk_buf_free(&out);
	mk_capfilter_free(f);
}

/* Whole, one byte at a time, and cut in two at every offset: same bytes out. */
static void cf_check(struct __test_metadata *_metadata, enum mk_protocol proto, bool drop,
		     const char *in, size_t len, const char *want, size_t wantlen, int want_ret)
{
	struct cf_result r;
	size_t cut;

	cf_run(proto, drop, in, len, len, len, &r);
	ASSERT_EQ(want_ret, r.r_ret);
	ASSERT_EQ(wantlen, r.r_len);
	ASSERT_EQ(0, memcmp(want, r.r_out, wantlen)) {
		TH_LOG("got:\n%s", r.r_out);
	}
	free(r.r_out);

	cf_run(proto, drop, in, len, 1, 1, &r);
	ASSERT_EQ(want_ret, r.r_ret);
	ASSERT_EQ(wantlen, r.r_len);
	ASSERT_EQ(0, memcmp(want, r.r_out, wantlen));
	free(r.r_out);

	for (cut = 1; cut < len && len < 20000; cut++) {
		cf_run(proto, drop, in, len, cut, len, &r);
		ASSERT_EQ(want_ret, r.r_ret) {
			TH_LOG("cut at %zu", cut);
		}
		ASSERT_EQ(wantlen, r.r_len) {
			TH_LOG("cut at %zu", cut);
		}
		ASSERT_EQ(0, memcmp(want, r.r_out, wantlen));
		free(r.r_out);
	}
}

#define CHECK(proto, drop, in, want, ret) \
	cf_check(_metadata, proto, drop, in, strlen(in), want, strlen(want), ret)

#define DOVECOT_PRE "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE LITERAL+"
#define DOVECOT_POST "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT THREAD=REFERENCES " \
	"MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 LITERAL+ " \
	"NOTIFY SPECIAL-USE"

TEST(imap_dovecot_starttls_listener)
{
	static const char in[] =
		"* OK [CAPABILITY " DOVECOT_PRE " STARTTLS AUTH=PLAIN] Dovecot (Debian) ready.\r\n"
		"* CAPABILITY " DOVECOT_PRE " STARTTLS AUTH=PLAIN\r\n"
		"a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
		"* ID (\"name\" \"Dovecot\")\r\n"
		"a2 OK ID completed.\r\n"
		"a3 OK [CAPABILITY " DOVECOT_POST "] Logged in\r\n"
		"* CAPABILITY STARTTLS after done\r\n";
	static const char want[] =
		"* CAPABILITY " DOVECOT_PRE " AUTH=PLAIN\r\n"
		"a1 OK Pre-login capabilities listed, post-login capabilities have more.\r\n"
		"* ID (\"name\" \"Dovecot\")\r\n"
		"a2 OK ID completed.\r\n"
		"a3 OK [CAPABILITY " DOVECOT_POST "] Logged in\r\n"
		"* CAPABILITY STARTTLS after done\r\n";

	CHECK(MK_PROTO_IMAP, true, in, want, 1);
}

TEST(imap_implicit_listener_filters_greeting)
{
	static const char in[] =
		"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN] ready.\r\n"
		"* capability IMAP4rev1 starttls logindisabled\r\n"
		"a OK [CAPABILITY IMAP4rev1 STARTTLS] done\n"
		"rest";
	static const char want[] =
		"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready.\r\n"
		"* capability IMAP4rev1\r\n"
		"a OK [CAPABILITY IMAP4rev1] done\n"
		"rest";

	CHECK(MK_PROTO_IMAP, false, in, want, 1);
}

TEST(imap_untouched_lines)
{
	/* Not a capability list: STARTTLS in text, NO with a code, an atom prefix. */
	static const char in[] =
		"* OK Dovecot ready.\r\n"
		"a NO STARTTLS failed\r\n"
		"* OK [CAPABILITY IMAP4rev1 STARTTLSX XSTARTTLS] x\r\n"
		"+ STARTTLS\r\n"
		"* CAPABILITYX STARTTLS\r\n"
		"b OK no code\r\n";
	static const char want[] =
		"a NO STARTTLS failed\r\n"
		"* OK [CAPABILITY IMAP4rev1 STARTTLSX XSTARTTLS] x\r\n"
		"+ STARTTLS\r\n"
		"* CAPABILITYX STARTTLS\r\n"
		"b OK no code\r\n";

	CHECK(MK_PROTO_IMAP, true, in, want, 0);
}

TEST(imap_bye_greeting_passes)
{
	CHECK(MK_PROTO_IMAP, true, "* BYE Too many connections\r\n",
	      "* BYE Too many connections\r\n", 0);
}

TEST(imap_literal_not_parsed)
{
	static const char in[] =
		"* OK ready\r\n"
		"* 1 FETCH (BODY[] {25}\r\n* CAPABILITY X STARTTLS\r\n)\r\n"
		"* CAPABILITY X STARTTLS\r\n";
	static const char want[] =
		"* 1 FETCH (BODY[] {25}\r\n* CAPABILITY X STARTTLS\r\n)\r\n"
		"* CAPABILITY X\r\n";

	CHECK(MK_PROTO_IMAP, true, in, want, 0);
}

TEST(pop3_dovecot)
{
	static const char in[] =
		"+OK Dovecot (Debian) ready.\r\n"
		"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n"
		"STLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
		"+OK Logged in.\r\nSTLS\r\n";
	static const char want[] =
		"+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\nAUTH-RESP-CODE\r\n"
		"USER\r\nSASL PLAIN\r\n.\r\n"
		"+OK Logged in.\r\nSTLS\r\n";

	CHECK(MK_PROTO_POP3, true, in, want, 1);
}

TEST(pop3_implicit_keeps_greeting)
{
	static const char in[] = "+OK ready.\r\n+OK\r\nstls\nSTLSX\r\n.\n";
	static const char want[] = "+OK ready.\r\n+OK\r\nSTLSX\r\n.\n";

	CHECK(MK_PROTO_POP3, false, in, want, 1);
}

#define POSTFIX_EHLO_HEAD "250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n" \
	"250-VRFY\r\n250-ETRN\r\n"
#define POSTFIX_EHLO_TAIL "250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n" \
	"250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"

TEST(smtp_postfix_starttls_listener)
{
	static const char in[] =
		"220 mail.example.org ESMTP Postfix (Debian/GNU)\r\n"
		POSTFIX_EHLO_HEAD "250-STARTTLS\r\n" POSTFIX_EHLO_TAIL
		"250 2.1.0 Ok\r\n";
	static const char want[] = POSTFIX_EHLO_HEAD POSTFIX_EHLO_TAIL "250 2.1.0 Ok\r\n";

	CHECK(MK_PROTO_SUBMISSION, true, in, want, 1);
}

TEST(smtp_starttls_last_line)
{
	static const char in[] =
		"220-mail.example.org ESMTP\r\n220-multi-line\r\n220 greeting\r\n"
		"250 2.0.0 Ok\r\n"
		"250-mail.example.org\r\n250-PIPELINING\r\n250 starttls\r\n"
		"250-after\r\n250 STARTTLS\r\n";
	static const char want[] =
		"250 2.0.0 Ok\r\n"
		"250-mail.example.org\r\n250 PIPELINING\r\n"
		"250-after\r\n250 STARTTLS\r\n";

	CHECK(MK_PROTO_SUBMISSION, true, in, want, 1);
}

TEST(smtp_implicit_keeps_greeting)
{
	static const char in[] = "220 mail ESMTP\r\n250-mail\n250-STARTTLS\n250 DSN\n";
	static const char want[] = "220 mail ESMTP\r\n250-mail\n250 DSN\n";

	CHECK(MK_PROTO_SUBMISSION, false, in, want, 1);
}

TEST(greeting_seen)
{
	struct mk_capfilter *f = mk_capfilter_new(MK_PROTO_SUBMISSION, true);
	struct mk_buf out;

	ASSERT_NE(NULL, f);
	mk_buf_init(&out, 4096);
	EXPECT_FALSE(mk_capfilter_greeting_seen(f));
	EXPECT_EQ(0, mk_capfilter_feed(f, (const uint8_t *)"220-a\r\n220 b", 12, &out));
	EXPECT_FALSE(mk_capfilter_greeting_seen(f));
	EXPECT_EQ(0, mk_capfilter_feed(f, (const uint8_t *)"\r\n", 2, &out));
	EXPECT_TRUE(mk_capfilter_greeting_seen(f));
	EXPECT_EQ(0, mk_buf_used(&out));
	mk_buf_free(&out);
	mk_capfilter_free(f);
}

/* A line longer than 8 KiB: everything passes as is from there on. */
TEST(long_line_gives_up)
{
	static char in[9000 + 64], want[sizeof(in)];
	size_t n;

	strcpy(in, "* OK greeting\r\n* OK ");
	n = strlen(in);
	memset(in + n, 'x', 9000);
	strcpy(in + n + 9000, "\r\n* CAPABILITY STARTTLS\r\n");
	strcpy(want, in + strlen("* OK greeting\r\n"));
	cf_check(_metadata, MK_PROTO_IMAP, true, in, strlen(in), want, strlen(want), 1);
}

/* After 64 KiB of backend output the filter stops, whatever it has seen. */
TEST(total_budget)
{
	size_t line = strlen("* OK 0123456789\r\n"), n = 0, i;
	static char in[70000], want[sizeof(in)];

	strcpy(in, "* OK greeting\r\n");
	n = strlen(in);
	for (i = 0; n + line <= MK_CAPFILTER_MAX_TOTAL; i++, n += line)
		memcpy(in + n, "* OK 0123456789\r\n", line);
	strcpy(in + n, "* CAPABILITY STARTTLS\r\n");
	strcpy(want, in + strlen("* OK greeting\r\n"));
	cf_check(_metadata, MK_PROTO_IMAP, true, in, strlen(in), want, strlen(want), 1);
}

TEST(smtp_block_bound)
{
	static char in[10000], want[sizeof(in)];
	size_t n;

	strcpy(in, "220 x\r\n");
	n = strlen(in);
	while (n < 9000) {
		memcpy(in + n, "250-PADDING\r\n", 13);
		n += 13;
	}
	strcpy(in + n, "250 STARTTLS\r\n");
	strcpy(want, in + 7);
	cf_check(_metadata, MK_PROTO_SUBMISSION, true, in, strlen(in), want, strlen(want), 1);
}

TEST(output_full)
{
	struct mk_capfilter *f = mk_capfilter_new(MK_PROTO_POP3, false);
	struct mk_buf out;

	ASSERT_NE(NULL, f);
	mk_buf_init(&out, 4);
	EXPECT_EQ(-ENOBUFS, mk_capfilter_feed(f, (const uint8_t *)"+OK ready\r\n", 11, &out));
	mk_buf_free(&out);
	mk_capfilter_free(f);
}

TEST_HARNESS_MAIN
