// SPDX-License-Identifier: GPL-2.0
/*
 * Message submission before STARTTLS (RFC 5321, RFC 3207, RFC 6409,
 * RFC 8314).
 *
 * EHLO offers 8BITMIME, ENHANCEDSTATUSCODES and STARTTLS only. Not AUTH
 * (RFC 4954 §4: nothing would be accepted), not PIPELINING: RFC 3207 §4.2
 * forbids pipelining past STARTTLS anyway, and not offering it keeps honest
 * clients from batching commands across the TLS boundary (CVE-2011-0411);
 * the backend offers it inside TLS. STARTTLS is accepted at any time after
 * the greeting, as RFC 3207 allows, even before EHLO.
 *
 * AUTH, whatever its mechanism and initial response, and every mail
 * transaction command get "530 5.7.0 Must issue a STARTTLS command first"
 * (RFC 3207 §4): no 334 challenge is ever sent. Limits close with 421.
 */
#include "pretls_proto.h"

#define SMTP_530 "530 5.7.0 Must issue a STARTTLS command first\r\n"
#define SMTP_OK "250 2.0.0 OK\r\n"
#define SMTP_TXN(name) \
	{ name, MK_PRETLS_ARGS_ANY, NULL, { SMTP_530, NULL }, MK_PRETLS_CONTINUE, false }

static const struct mk_pretls_verb smtp_verbs[] = {
	{ "EHLO", MK_PRETLS_ARGS_REQUIRED, NULL,
	  { "250-", "\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 STARTTLS\r\n" },
	  MK_PRETLS_CONTINUE, false },
	{ "HELO", MK_PRETLS_ARGS_REQUIRED, NULL, { "250 ", "\r\n" }, MK_PRETLS_CONTINUE, false },
	{ "NOOP", MK_PRETLS_ARGS_ANY, NULL, { SMTP_OK, NULL }, MK_PRETLS_CONTINUE, false },
	{ "RSET", MK_PRETLS_ARGS_NONE, NULL, { SMTP_OK, NULL }, MK_PRETLS_CONTINUE, false },
	{ "QUIT", MK_PRETLS_ARGS_NONE, NULL, { "221 2.0.0 Bye\r\n", NULL },
	  MK_PRETLS_CLOSE, false },
	{ "STARTTLS", MK_PRETLS_ARGS_NONE, NULL, { "220 2.0.0 Ready to start TLS\r\n", NULL },
	  MK_PRETLS_STARTTLS, false },
	{ "AUTH", MK_PRETLS_ARGS_ANY, NULL, { SMTP_530, NULL }, MK_PRETLS_CONTINUE, true },
	SMTP_TXN("MAIL"),
	SMTP_TXN("RCPT"),
	SMTP_TXN("DATA"),
	SMTP_TXN("BDAT"),
	SMTP_TXN("VRFY"),
	SMTP_TXN("EXPN"),
	SMTP_TXN("ETRN"),
	SMTP_TXN("HELP"),
};

const struct mk_pretls_proto mk_pretls_smtp = {
	.pp_max_line = 512,	/* RFC 5321 §4.5.3.1.4, CRLF included */
	.pp_greeting = { "220 ", " ESMTP ready\r\n" },
	.pp_timeout = { "421 4.4.2 ", " Error: timeout exceeded\r\n" },
	.pp_too_long = { "421 4.7.0 ", " Error: command line too long\r\n" },
	.pp_too_many = { "421 4.7.0 ", " Error: too many commands before STARTTLS\r\n" },
	.pp_auth_limit = { "421 4.7.0 ", " Error: too many authentication attempts\r\n" },
	.pp_garbage = { "500 5.5.2 Error: bad syntax\r\n", NULL },
	.pp_verbs = smtp_verbs,
	.pp_nverbs = sizeof(smtp_verbs) / sizeof(smtp_verbs[0]),
	.pp_unknown = { "", MK_PRETLS_ARGS_ANY, NULL,
			{ "500 5.5.2 Error: command not recognized\r\n", NULL },
			MK_PRETLS_CONTINUE, false },
	.pp_syntax = { "", MK_PRETLS_ARGS_ANY, NULL,
		       { "501 5.5.4 Syntax error in parameters or arguments\r\n", NULL },
		       MK_PRETLS_CONTINUE, false },
};
