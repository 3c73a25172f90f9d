/* SPDX-License-Identifier: GPL-2.0 */
/*
 * After TLS, the daemon behind the agent must not offer STARTTLS or STLS to
 * a client that already has TLS. This filter sits on the first bytes the
 * backend sends to the client, removes those capabilities, and (for
 * STARTTLS listeners) swallows the backend's greeting, since the client
 * already had the agent's. Once the first capability responses are past it
 * reports done, and the relay goes zero-copy.
 *
 * What is removed (case-insensitive, whole words):
 *  - IMAP: the STARTTLS and LOGINDISABLED atoms from "* CAPABILITY" lines
 *    and from "[CAPABILITY ...]" response codes of status responses;
 *  - POP3: a line that is exactly "STLS" (it can only be a CAPA entry);
 *  - SMTP: the "250-STARTTLS" / "250 STARTTLS" line of a multi-line reply,
 *    which is held whole so that the line before a removed last line can
 *    become "250 ".
 * With drop_greeting the first reply is swallowed (SMTP: every "220-" line
 * up to the last one), except an IMAP "* BYE", which is valid at any time.
 *
 * Done rule (return 1, then everything passes untouched):
 *  - IMAP: after the first tagged OK carrying a [CAPABILITY] code (what
 *    Dovecot, Cyrus and others send after LOGIN/AUTHENTICATE);
 *  - POP3: after the first "." line, the end of the first multi-line
 *    response (clients send CAPA first after STLS, RFC 2595 §4);
 *  - SMTP: after the first multi-line 250 reply (EHLO's);
 *  - always: after MK_CAPFILTER_MAX_TOTAL bytes of backend output, or when a
 *    line (or an SMTP multi-line reply) exceeds MK_CAPFILTER_MAX_LINE bytes;
 *    what is held is then flushed as it is.
 * IMAP literals ("{N}" at a line end) pass untouched, never parsed as lines.
 * Decisions are taken at line ends or fixed byte counts, so the output is
 * the same however the stream is split.
 */
#ifndef MAILKTLS_CAPFILTER_H
#define MAILKTLS_CAPFILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

struct mk_capfilter;

#define MK_CAPFILTER_MAX_LINE 8192	/* bytes held at most, line end included */
#define MK_CAPFILTER_MAX_TOTAL 65536	/* backend bytes filtered at most */

/* @drop_greeting: true for STARTTLS listeners. */
struct mk_capfilter *mk_capfilter_new(enum mk_protocol proto, bool drop_greeting);
void mk_capfilter_free(struct mk_capfilter *f);

/**
 * mk_capfilter_feed() - filter bytes from the backend
 * @f:    state
 * @in:   backend bytes
 * @len:  how many (all are consumed; partial lines are held inside)
 * @out:  bytes to send to the client are appended here
 *
 * Return: 1 when the filter is done (everything held has been flushed to
 * @out; pass later bytes straight through), 0 to keep filtering, negative
 * errno on error (-ENOBUFS: @out full).
 */
int mk_capfilter_feed(struct mk_capfilter *f, const uint8_t *in, size_t len, struct mk_buf *out);

/* The greeting has been seen (and dropped when asked): used by the relay to
 * know the backend is ready before relaying client bytes. */
bool mk_capfilter_greeting_seen(const struct mk_capfilter *f);

#endif
