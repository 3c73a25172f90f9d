// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: what mailktlsctl audit reads from others
 * (agent/ctl/audit_parse.c). Byte 0 picks the parser:
 *   0, 1, 2   SRV, MX, TLSA rdata (as libunbound hands it over);
 *   3 to 5    a server's bytes for IMAP, POP3, SMTP, byte 1 the read size,
 *             split into lines and read as responses, with the audit's
 *             limits (line length, lines and bytes per response).
 * Checked beyond the sanitizers: names come out NUL-ended, shorter than
 * the buffer, absolute and made of the allowed bytes; lines are never
 * longer than AUDIT_LINE_MAX; a line that is too long stops the reading.
 */
#include <stdlib.h>
#include <string.h>

#include "audit.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_name(const char *n, size_t cap)
{
	size_t l = strnlen(n, cap);

	if (l == cap || l == 0 || n[l - 1] != '.')
		abort();
	for (size_t i = 0; i < l; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyz0123456789-_.", n[i]))
			abort();
}

static void rdata(uint8_t kind, const uint8_t *p, size_t len)
{
	struct audit_srv srv;
	struct audit_tlsa tl;
	char name[AUDIT_NAME_MAX];
	uint16_t pref;

	if (kind == 0 && !audit_srv_parse(p, len, &srv))
		check_name(srv.sr_target, sizeof(srv.sr_target));
	if (kind == 1 && !audit_mx_parse(p, len, &pref, name, sizeof(name)))
		check_name(name, sizeof(name));
	if (kind == 2 && !audit_tlsa_parse(p, len, &tl) &&
	    tl.tl_len > sizeof(tl.tl_data))
		abort();
}

static void lines(enum audit_proto proto, size_t chunk, const uint8_t *p, size_t len)
{
	static char buf[AUDIT_LINE_MAX], line[AUDIT_LINE_MAX + 1];
	const char *tag = proto == AUDIT_IMAP ? "a1" : NULL;
	struct audit_caps caps = { 0 };
	size_t have = 0, pos = 0, l, nlines = 0;

	while (pos < len || have) {
		size_t n = len - pos < chunk ? len - pos : chunk;
		int rc;

		if (n > AUDIT_LINE_MAX - have)
			n = AUDIT_LINE_MAX - have;
		memcpy(buf + have, p + pos, n);
		have += n;
		pos += n;
		while ((rc = audit_line_take(buf, &have, line, &l)) == 1) {
			if (l > AUDIT_LINE_MAX || strlen(line) > l)
				abort();
			audit_caps_scan(proto, line, l, &caps);
			if (audit_line_classify(proto, nlines++ ? tag : NULL, line, l) == AUDIT_ST_BAD)
				return;
		}
		if (rc < 0) {
			if (have != AUDIT_LINE_MAX)
				abort();
			return;
		}
		if (!n)
			return; /* the rest has no line end */
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	if (data[0] % 6 < 3)
		rdata(data[0] % 6, data + 1, size - 1);
	else
		lines((enum audit_proto)(data[0] % 6 - 3), (size_t)data[1] % 64 + 1, data + 2,
		      size - 2);
	return 0;
}
