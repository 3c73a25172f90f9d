/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared body of fuzz_pretls_{imap,pop3,smtp}.c. The input drives the
 * dialogue the way the agent does (starttls.c): bytes arrive in chunks, the
 * unconsumed tail is fed again with the next chunk. Checked, beyond the
 * sanitizers: the replies and verdict do not depend on the chunking, nothing
 * is answered after STARTTLS/CLOSE, consumed never exceeds the input,
 * events are bounded and name a verb, never arguments.
 *
 * Byte 0: limits (commands, auth refusals); byte 1: chunk size; the rest is
 * what the client sends.
 */
#ifndef MAILKTLS_FUZZ_PRETLS_H
#define MAILKTLS_FUZZ_PRETLS_H

#include <stdlib.h>
#include <string.h>

#include "pretls.h"

#define FZ_EV 4

struct fz_run {
	struct mk_buf r_out;
	enum mk_pretls_verdict r_verdict;
	size_t r_used;			/* input bytes consumed in total */
};

static bool fz_event_ok(const struct mk_pretls_event *e)
{
	static const char *const names[] = {
		"LOGIN", "AUTHENTICATE", "USER", "PASS", "APOP", "AUTH",
		"LINE-TOO-LONG", "TOO-MANY-COMMANDS", "OUTPUT-FULL",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(e->pe_command, names[i]))
			return e->pe_auth_refused == (i < 6);
	return false;
}

static void fz_drive(enum mk_protocol proto, const struct mk_pretls_limits *lim,
		     const uint8_t *in, size_t len, size_t chunk, struct fz_run *r)
{
	struct mk_pretls *p = mk_pretls_new(proto, "fuzz.example", lim);
	struct mk_pretls_event ev[FZ_EV];
	size_t start = 0, end = 0, consumed, nev, i;

	if (!p)
		abort();
	mk_buf_init(&r->r_out, 1 << 20);
	r->r_verdict = MK_PRETLS_CONTINUE;
	if (mk_pretls_greeting(p, &r->r_out))
		abort();
	/* Bounded: end grows by @chunk each round, start never passes it. */
	while (r->r_verdict == MK_PRETLS_CONTINUE && end < len) {
		end = end + chunk < len ? end + chunk : len;
		do {
			nev = FZ_EV;
			r->r_verdict = mk_pretls_input(p, in + start, end - start, &consumed,
						       &r->r_out, ev, &nev);
			if (consumed > end - start || nev > FZ_EV)
				abort();
			for (i = 0; i < nev; i++)
				if (!fz_event_ok(&ev[i]))
					abort();
			start += consumed;
		} while (r->r_verdict == MK_PRETLS_CONTINUE && consumed && start < end);
	}
	r->r_used = start;
	if (r->r_verdict != MK_PRETLS_CONTINUE) {
		size_t before = mk_buf_used(&r->r_out);

		if (mk_pretls_input(p, in, len, &consumed, &r->r_out, NULL, NULL) !=
		    MK_PRETLS_CLOSE || consumed || mk_buf_used(&r->r_out) != before)
			abort();
	}
	mk_pretls_free(p);
}

static int fz_pretls(enum mk_protocol proto, const uint8_t *data, size_t size)
{
	struct mk_pretls_limits lim = { 0, 0, 0 };
	struct fz_run whole, chunked;
	size_t chunk;

	if (size < 2)
		return 0;
	lim.pl_max_commands = data[0] & 0x40 ? 1000 : (data[0] & 0x3f);
	lim.pl_max_auth_refusals = data[0] >> 7 ? 0 : (data[0] & 3);
	lim.pl_max_line = data[0] & 0x20 ? 64 : 0;
	chunk = data[1] ? data[1] : 1;
	data += 2;
	size -= 2;
	fz_drive(proto, &lim, data, size, size ? size : 1, &whole);
	fz_drive(proto, &lim, data, size, chunk, &chunked);
	if (whole.r_verdict != chunked.r_verdict ||
	    mk_buf_used(&whole.r_out) != mk_buf_used(&chunked.r_out) ||
	    (mk_buf_used(&whole.r_out) &&
	     memcmp(mk_buf_head(&whole.r_out), mk_buf_head(&chunked.r_out),
		    mk_buf_used(&whole.r_out))))
		abort();
	if (whole.r_verdict != MK_PRETLS_CONTINUE && whole.r_used != chunked.r_used)
		abort();
	mk_buf_free(&whole.r_out);
	mk_buf_free(&chunked.r_out);
	return 0;
}

#endif
