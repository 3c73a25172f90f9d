/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Helpers shared by test_pretls_{imap,pop3,smtp}.c: feed a string to a
 * pre-TLS dialogue and compare the exact reply bytes. Include after
 * kselftest_harness.h.
 */
#ifndef MAILKTLS_PRETLS_TEST_H
#define MAILKTLS_PRETLS_TEST_H

#include <string.h>

#include "pretls.h"

#define PT_HOST "mail.example.org"
#define PT_MAX_EV 16
#define PT_ALL ((size_t)-1)	/* expected consumed: the whole input */

struct pt_result {
	enum mk_pretls_verdict r_verdict;
	size_t r_consumed;
	char r_out[65536];
	size_t r_outlen;
	struct mk_pretls_event r_ev[PT_MAX_EV];
	size_t r_nev;
};

/* One exchange: what the client sends, the exact reply, the verdict. */
struct pt_step {
	const char *s_in;
	const char *s_out;
	enum mk_pretls_verdict s_verdict;
	size_t s_consumed;		/* PT_ALL or a byte count */
};

static inline void pt_feed(struct mk_pretls *p, const void *in, size_t len, struct pt_result *r)
{
	struct mk_buf out;

	mk_buf_init(&out, sizeof(r->r_out) - 1);
	r->r_nev = PT_MAX_EV;
	r->r_verdict = mk_pretls_input(p, in, len, &r->r_consumed, &out, r->r_ev, &r->r_nev);
	r->r_outlen = mk_buf_used(&out);
	if (r->r_outlen)
		memcpy(r->r_out, mk_buf_head(&out), r->r_outlen);
	r->r_out[r->r_outlen] = '\0';
	mk_buf_free(&out);
}

static inline void pt_feed_str(struct mk_pretls *p, const char *in, struct pt_result *r)
{
	pt_feed(p, in, strlen(in), r);
}

static inline struct mk_pretls *pt_new(enum mk_protocol proto, unsigned int max_commands,
				       unsigned int max_auth)
{
	struct mk_pretls_limits l = { 0, max_commands, max_auth };

	return mk_pretls_new(proto, PT_HOST, &l);
}

/* Run @n steps on one dialogue, asserting each reply byte for byte. */
static inline void pt_steps(struct __test_metadata *_metadata, struct mk_pretls *p,
			    const struct pt_step *s, size_t n)
{
	static struct pt_result r;
	size_t i;

	for (i = 0; i < n; i++) {
		pt_feed_str(p, s[i].s_in, &r);
		ASSERT_STREQ(s[i].s_out, r.r_out) {
			TH_LOG("step %zu: %s", i, s[i].s_in);
		}
		ASSERT_EQ(s[i].s_verdict, r.r_verdict);
		ASSERT_EQ(s[i].s_consumed == PT_ALL ? strlen(s[i].s_in) : s[i].s_consumed,
			  r.r_consumed);
	}
}

/* Each input alone on a fresh dialogue: the replies must be byte-identical. */
static inline void pt_same_reply(struct __test_metadata *_metadata, enum mk_protocol proto,
				 const char *const *in, size_t n, const char *want,
				 const char *event)
{
	static struct pt_result r;
	struct mk_pretls *p;
	size_t i;

	for (i = 0; i < n; i++) {
		p = pt_new(proto, 0, 0);
		ASSERT_NE(NULL, p);
		pt_feed_str(p, in[i], &r);
		mk_pretls_free(p);
		ASSERT_STREQ(want, r.r_out) {
			TH_LOG("input %zu", i);
		}
		ASSERT_EQ(MK_PRETLS_CONTINUE, r.r_verdict);
		ASSERT_EQ(strlen(in[i]), r.r_consumed);
		ASSERT_EQ(1, r.r_nev);
		ASSERT_STREQ(event, r.r_ev[0].pe_command);
		ASSERT_TRUE(r.r_ev[0].pe_auth_refused);
	}
}

#endif
