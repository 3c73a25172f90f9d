// SPDX-License-Identifier: GPL-2.0
/*
 * POP3 before STLS (RFC 1939, RFC 2449, RFC 2595, RFC 8314).
 *
 * USER, PASS, APOP and AUTH get one fixed refusal, whatever their
 * arguments, with the RFC 3206 [SYS/PERM] response code: the refusal is a
 * policy of this server, not a verdict on the credentials ([AUTH] would tell
 * the user the password is wrong), and it will not change until the client
 * uses TLS. AUTH never sends a "+" continuation, so no SASL exchange starts.
 * The greeting has no APOP timestamp, so clients do not try APOP.
 *
 * CAPA lists STLS and RESP-CODES only: no USER, no SASL (nothing would be
 * accepted), no PIPELINING (pipelining across STLS is what the injection
 * attacks use; the backend advertises it inside TLS). NOOP is a TRANSACTION
 * state command (RFC 1939 §5) and is refused like any unknown command.
 */
#include "pretls_proto.h"

#define POP3_REFUSAL "-ERR [SYS/PERM] Authentication not allowed before STLS\r\n"

static const struct mk_pretls_verb pop3_verbs[] = {
	{ "CAPA", MK_PRETLS_ARGS_NONE, NULL,
	  { "+OK Capability list follows\r\nSTLS\r\nRESP-CODES\r\n.\r\n", NULL },
	  MK_PRETLS_CONTINUE, false },
	{ "QUIT", MK_PRETLS_ARGS_NONE, NULL, { "+OK Logging out\r\n", NULL },
	  MK_PRETLS_CLOSE, false },
	{ "STLS", MK_PRETLS_ARGS_NONE, NULL, { "+OK Begin TLS negotiation\r\n", NULL },
	  MK_PRETLS_STARTTLS, false },
	{ "USER", MK_PRETLS_ARGS_ANY, NULL, { POP3_REFUSAL, NULL }, MK_PRETLS_CONTINUE, true },
	{ "PASS", MK_PRETLS_ARGS_ANY, NULL, { POP3_REFUSAL, NULL }, MK_PRETLS_CONTINUE, true },
	{ "APOP", MK_PRETLS_ARGS_ANY, NULL, { POP3_REFUSAL, NULL }, MK_PRETLS_CONTINUE, true },
	{ "AUTH", MK_PRETLS_ARGS_ANY, NULL, { POP3_REFUSAL, NULL }, MK_PRETLS_CONTINUE, true },
};

/* POP3 has no unsolicited reply: limits close after the last answer. */
const struct mk_pretls_proto mk_pretls_pop3 = {
	.pp_max_line = 8192,
	.pp_greeting = { "+OK ", " ready.\r\n" },
	.pp_timeout = { "-ERR timeout\r\n", NULL },
	.pp_too_long = { "-ERR Command line too long\r\n", NULL },
	.pp_too_many = { "-ERR Too many commands before STLS\r\n", NULL },
	.pp_auth_limit = { NULL, NULL },
	.pp_garbage = { "-ERR Invalid command line\r\n", NULL },
	.pp_verbs = pop3_verbs,
	.pp_nverbs = sizeof(pop3_verbs) / sizeof(pop3_verbs[0]),
	.pp_unknown = { "", MK_PRETLS_ARGS_ANY, NULL,
			{ "-ERR Unknown command or not allowed before STLS\r\n", NULL },
			MK_PRETLS_CONTINUE, false },
	.pp_syntax = { "", MK_PRETLS_ARGS_ANY, NULL, { "-ERR Unexpected arguments\r\n", NULL },
		       MK_PRETLS_CONTINUE, false },
};
