/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The cleartext dialogue of a STARTTLS listener (IMAP, POP3, submission),
 * spoken by the agent itself before TLS. Pure: bytes in, reply bytes and a
 * verdict out, no I/O, so the unit tests and fuzz targets drive exactly the
 * code the agent runs.
 *
 * Security rules it enforces (RFC 8314 §4.1: no authentication before TLS):
 *  - authentication commands get one fixed refusal per protocol, identical
 *    whatever the credentials, and are never forwarded;
 *  - after the STARTTLS/STLS command, the rest of the input is discarded
 *    (the caller must drop everything it buffered after @consumed);
 *  - line length, command count limits.
 *
 * Framing (pretls.c): a line ends at LF, with or without CR before it; a
 * line longer than the limit (line end included) gets a final reply and
 * CLOSE; a NUL byte outside an authentication command's arguments gets the
 * protocol's "bad line" reply; the (max_commands + 1)th line gets a final
 * reply and CLOSE without being executed. The protocol files document their
 * replies (pretls_imap.c, pretls_pop3.c, pretls_smtp.c).
 */
#ifndef MAILKTLS_PRETLS_H
#define MAILKTLS_PRETLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

struct mk_pretls;

struct mk_pretls_limits {
	size_t pl_max_line;		/* 0: protocol default (SMTP 512, else 8192) */
	unsigned int pl_max_commands;	/* 0: default 32 */
	unsigned int pl_max_auth_refusals; /* 0: no limit */
};

enum mk_pretls_verdict {
	MK_PRETLS_CONTINUE,	/* send the reply, keep reading */
	MK_PRETLS_STARTTLS,	/* send the reply, then start the TLS handshake */
	MK_PRETLS_CLOSE,	/* send the reply, then close */
};

/* One event per refused or notable command, for the agent's log. */
struct mk_pretls_event {
	const char *pe_command;	/* "LOGIN", "AUTH", "USER", ...: never arguments */
	bool pe_auth_refused;
};

struct mk_pretls *mk_pretls_new(enum mk_protocol proto, const char *hostname,
				const struct mk_pretls_limits *limits);
void mk_pretls_free(struct mk_pretls *p);

/**
 * mk_pretls_greeting() - append the greeting sent on accept
 * Return: 0, or -ENOBUFS.
 */
int mk_pretls_greeting(struct mk_pretls *p, struct mk_buf *out);

/*
 * Longest command line accepted, line end included: the caller's input
 * buffer must hold at least this much, or an endless line would stall the
 * dialogue instead of closing it.
 */
size_t mk_pretls_max_line(const struct mk_pretls *p);

/**
 * mk_pretls_input() - feed bytes the client sent before TLS
 * @p:        dialogue state
 * @in:       bytes
 * @len:      how many
 * @consumed: how many of @in were used; the rest must be fed again with
 *            more data (an incomplete line), except after STARTTLS or CLOSE,
 *            when the caller discards them
 * @out:      reply bytes are appended here
 * @ev:       events (may be NULL); @nev in: capacity, out: count; events
 *            past the capacity are dropped. Auth refusals carry the verb
 *            ("LOGIN", "AUTHENTICATE", "USER", "PASS", "APOP", "AUTH") and
 *            pe_auth_refused; a limit closing the dialogue reports
 *            "LINE-TOO-LONG", "TOO-MANY-COMMANDS" or "OUTPUT-FULL".
 *
 * Return: the verdict. After STARTTLS or CLOSE every later call returns
 * CLOSE and reads nothing.
 */
enum mk_pretls_verdict mk_pretls_input(struct mk_pretls *p, const uint8_t *in, size_t len,
				       size_t *consumed, struct mk_buf *out,
				       struct mk_pretls_event *ev, size_t *nev);

/**
 * mk_pretls_timeout() - append the reply sent when the client was too slow
 * (e.g. IMAP "* BYE", SMTP "421"); the caller then closes.
 */
int mk_pretls_timeout(struct mk_pretls *p, struct mk_buf *out);

#endif
