/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Inside the pre-TLS dialogue: what a protocol (pretls_imap.c, pretls_pop3.c,
 * pretls_smtp.c) tells the common engine (pretls.c). A protocol is mostly
 * data: its fixed replies and a table of the verbs it answers. The engine
 * does framing, limits, events and the lookup, the same way for all three,
 * so a refusal can only ever depend on the verb, never on its arguments.
 */
#ifndef MAILKTLS_PRETLS_PROTO_H
#define MAILKTLS_PRETLS_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "buf.h"
#include "pretls.h"

/* A fixed reply: t_pre, then (when t_post is set) the hostname and t_post. */
struct mk_pretls_text {
	const char *t_pre;
	const char *t_post;
};

enum mk_pretls_args {
	MK_PRETLS_ARGS_NONE,		/* arguments are a syntax error */
	MK_PRETLS_ARGS_ANY,		/* ignored, never looked at */
	MK_PRETLS_ARGS_REQUIRED,	/* must be present (SMTP EHLO/HELO) */
};

struct mk_pretls_verb {
	const char *v_name;			/* upper case; also the event name */
	enum mk_pretls_args v_args;
	const char *v_untagged;			/* IMAP: sent before "<tag> " */
	struct mk_pretls_text v_reply;		/* after "<tag> " for IMAP */
	enum mk_pretls_verdict v_verdict;
	bool v_auth;				/* an authentication refusal */
};

struct mk_pretls_proto {
	size_t pp_max_line;			/* default, line end included */
	struct mk_pretls_text pp_greeting;
	struct mk_pretls_text pp_timeout;
	struct mk_pretls_text pp_too_long;	/* then close */
	struct mk_pretls_text pp_too_many;	/* then close */
	struct mk_pretls_text pp_auth_limit;	/* after the last refusal, then close */
	struct mk_pretls_text pp_garbage;	/* unparsable line, NUL byte */
	const struct mk_pretls_verb *pp_verbs;
	size_t pp_nverbs;
	struct mk_pretls_verb pp_unknown;	/* v_name unused */
	struct mk_pretls_verb pp_syntax;	/* wrong arguments for a known verb */
	/*
	 * IMAP only: length of a valid tag at the start of @line, followed by
	 * a space; 0 when there is none.
	 */
	size_t (*pp_tag)(const char *line, size_t len);
	/*
	 * Length of the next complete command in @in (line end included), 0
	 * when more bytes are needed; sets *@too_long when it cannot fit in
	 * @max bytes. NULL: one line.
	 */
	size_t (*pp_frame)(const uint8_t *in, size_t len, size_t max, bool *too_long);
};

extern const struct mk_pretls_proto mk_pretls_imap;
extern const struct mk_pretls_proto mk_pretls_pop3;
extern const struct mk_pretls_proto mk_pretls_smtp;

/**
 * mk_pretls_frame_line() - length of the first line of @in, LF included
 * @in:       bytes
 * @len:      how many
 * @max:      longest acceptable line, line end included
 * @too_long: set when no line end can come within @max bytes
 *
 * Inline here, for the engine and IMAP's literal framing alike, so that no
 * protocol calls back into the engine that calls it.
 *
 * Return: the length, or 0 (incomplete or too long).
 */
static inline size_t mk_pretls_frame_line(const uint8_t *in, size_t len, size_t max,
					  bool *too_long)
{
	const uint8_t *lf = memchr(in, '\n', len < max ? len : max);

	if (lf)
		return (size_t)(lf - in) + 1;
	if (len >= max)
		*too_long = true;
	return 0;
}

#endif
