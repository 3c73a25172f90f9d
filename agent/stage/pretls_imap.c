// SPDX-License-Identifier: GPL-2.0
/*
 * IMAP before STARTTLS (RFC 3501, RFC 9051 §6.2.1, RFC 2595, RFC 8314).
 *
 * LOGIN and AUTHENTICATE get one tagged NO with the RFC 5530 PRIVACYREQUIRED
 * code, whatever follows the verb: no "+" continuation is ever sent, so a
 * SASL exchange never starts and a synchronising literal is never invited.
 * A client that sends non-synchronising literals anyway (LITERAL+, RFC 7888,
 * not advertised here) has them skipped as part of the command, so a
 * password inside one is never parsed as a command line of its own.
 */
#include <string.h>

#include "pretls_proto.h"

#define IMAP_REFUSAL "NO [PRIVACYREQUIRED] Authentication not allowed before STARTTLS\r\n"
#define IMAP_CAPS "IMAP4rev1 STARTTLS LOGINDISABLED"
#define IMAP_MAX_LITERAL_DIGITS 9

static const struct mk_pretls_verb imap_verbs[] = {
	{ "CAPABILITY", MK_PRETLS_ARGS_NONE, "* CAPABILITY " IMAP_CAPS "\r\n",
	  { "OK CAPABILITY completed\r\n", NULL }, MK_PRETLS_CONTINUE, false },
	{ "NOOP", MK_PRETLS_ARGS_NONE, NULL, { "OK NOOP completed\r\n", NULL },
	  MK_PRETLS_CONTINUE, false },
	{ "LOGOUT", MK_PRETLS_ARGS_NONE, "* BYE Logging out\r\n",
	  { "OK LOGOUT completed\r\n", NULL }, MK_PRETLS_CLOSE, false },
	{ "STARTTLS", MK_PRETLS_ARGS_NONE, NULL, { "OK Begin TLS negotiation now\r\n", NULL },
	  MK_PRETLS_STARTTLS, false },
	{ "LOGIN", MK_PRETLS_ARGS_ANY, NULL, { IMAP_REFUSAL, NULL }, MK_PRETLS_CONTINUE, true },
	{ "AUTHENTICATE", MK_PRETLS_ARGS_ANY, NULL, { IMAP_REFUSAL, NULL },
	  MK_PRETLS_CONTINUE, true },
};

/* tag = 1*<any ASTRING-CHAR except "+"> (RFC 9051 §9) */
static bool imap_tag_char(unsigned char c)
{
	return c > ' ' && c < 0x7f && !strchr("(){%*\"\\+", c);
}

static size_t imap_tag(const char *line, size_t len)
{
	size_t i = 0;

	while (i < len && imap_tag_char((unsigned char)line[i]))
		i++;
	if (!i || i == len || line[i] != ' ')
		return 0;
	return i;
}

/*
 * Size of the non-synchronising literal "{N+}" ending the line in[0..end)
 * (LF included), or -1 when the line does not end with one. Sizes with more
 * than IMAP_MAX_LITERAL_DIGITS digits return SIZE_MAX: too long anyway.
 */
static size_t imap_nonsync_literal(const uint8_t *in, size_t end, bool *found)
{
	size_t i = end - 1, n = 0, mul = 1, digits = 0;

	*found = false;
	if (i && in[i - 1] == '\r')
		i--;
	if (i < 4 || in[i - 1] != '}' || in[i - 2] != '+')
		return 0;
	for (i -= 3; i > 0 && in[i] >= '0' && in[i] <= '9'; i--, digits++) {
		if (digits == IMAP_MAX_LITERAL_DIGITS) {
			*found = true;
			return SIZE_MAX;
		}
		n += (size_t)(in[i] - '0') * mul;
		mul *= 10;
	}
	if (!digits || in[i] != '{')
		return 0;
	*found = true;
	return n;
}

/* A command with its non-synchronising literals, all within @max bytes. */
static size_t imap_frame(const uint8_t *in, size_t len, size_t max, bool *too_long)
{
	size_t pos = 0, n, lit;
	bool found;

	/* Bounded: pos grows by at least one byte per round and stays <= max. */
	for (;;) {
		n = mk_pretls_frame_line(in + pos, len - pos, max - pos, too_long);
		if (!n)
			return 0;
		pos += n;
		lit = imap_nonsync_literal(in, pos, &found);
		if (!found)
			return pos;
		if (lit >= max - pos) {
			*too_long = true;
			return 0;
		}
		if (len - pos < lit)
			return 0;
		pos += lit;
	}
}

const struct mk_pretls_proto mk_pretls_imap = {
	.pp_max_line = 8192,
	.pp_greeting = { "* OK [CAPABILITY " IMAP_CAPS "] ", " ready.\r\n" },
	.pp_timeout = { "* BYE Autologout; idle too long\r\n", NULL },
	.pp_too_long = { "* BYE Command line too long\r\n", NULL },
	.pp_too_many = { "* BYE Too many commands before STARTTLS\r\n", NULL },
	.pp_auth_limit = { "* BYE Too many authentication attempts\r\n", NULL },
	.pp_garbage = { "* BAD Invalid tag or command line\r\n", NULL },
	.pp_verbs = imap_verbs,
	.pp_nverbs = sizeof(imap_verbs) / sizeof(imap_verbs[0]),
	.pp_unknown = { "", MK_PRETLS_ARGS_ANY, NULL,
			{ "BAD Unknown command or not allowed before STARTTLS\r\n", NULL },
			MK_PRETLS_CONTINUE, false },
	.pp_syntax = { "", MK_PRETLS_ARGS_ANY, NULL, { "BAD Unexpected arguments\r\n", NULL },
		       MK_PRETLS_CONTINUE, false },
	.pp_tag = imap_tag,
	.pp_frame = imap_frame,
};
