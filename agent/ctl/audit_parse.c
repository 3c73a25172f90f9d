// SPDX-License-Identifier: GPL-2.0
/*
 * The parts of the audit that read what others send: DNS rdata (the SRV,
 * MX and TLSA records libunbound hands over as wire bytes) and the lines
 * mail servers say before TLS. Pure functions on bounded buffers, so that
 * tests/fuzz/fuzz_audit_parse.c can throw anything at them.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

#include <openssl/sha.h>

#include "audit.h"

#define AUDIT_DNAME_LABELS 128

/**
 * audit_dname_parse() - an uncompressed wire-format name to text.
 * @p: the record data
 * @len: its length
 * @off: where the name starts; moved past it
 * @out: the name with a trailing dot ("." for the root)
 * @outlen: size of @out
 *
 * libunbound hands rdata over with names decompressed (RFC 3597 says names
 * in SRV and TLSA rdata are never compressed; MX ones are expanded by the
 * resolver). Bytes outside letters, digits, '-' and '_' are refused rather
 * than escaped: no mail host needs them, and they would end up in a table.
 *
 * Return: 0, or -EBADMSG for a name that runs past @len, has a compression
 * pointer or an odd byte, -ENAMETOOLONG when it does not fit.
 */
int audit_dname_parse(const uint8_t *p, size_t len, size_t *off, char *out, size_t outlen)
{
	size_t o = *off, w = 0, labels = 0;

	if (outlen < 2)
		return -ENAMETOOLONG;
	for (;;) {
		uint8_t l;

		if (o >= len || ++labels > AUDIT_DNAME_LABELS)
			return -EBADMSG;
		l = p[o++];
		if (l == 0)
			break;
		if (l & 0xc0 || l > len - o)
			return -EBADMSG;
		if (w + l + 2 > outlen)
			return -ENAMETOOLONG;
		for (uint8_t i = 0; i < l; i++) {
			unsigned char c = p[o + i];

			if (!isalnum(c) && c != '-' && c != '_')
				return -EBADMSG;
			out[w++] = (char)tolower(c);
		}
		out[w++] = '.';
		o += l;
	}
	if (w == 0)
		out[w++] = '.';
	out[w] = '\0';
	*off = o;
	return 0;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

/**
 * audit_srv_parse() - an SRV record (RFC 2782): priority, weight, port, target.
 * Return: 0, or -EBADMSG for short data or trailing bytes.
 */
int audit_srv_parse(const uint8_t *rd, size_t len, struct audit_srv *out)
{
	size_t off = 6;
	int err;

	if (len < 7)
		return -EBADMSG;
	out->sr_prio = get16(rd);
	out->sr_weight = get16(rd + 2);
	out->sr_port = get16(rd + 4);
	err = audit_dname_parse(rd, len, &off, out->sr_target, sizeof(out->sr_target));
	if (err)
		return err;
	return off == len ? 0 : -EBADMSG;
}

/**
 * audit_mx_parse() - an MX record: preference and exchange.
 * Return: 0, or -EBADMSG.
 */
int audit_mx_parse(const uint8_t *rd, size_t len, uint16_t *pref, char *out, size_t outlen)
{
	size_t off = 2;
	int err;

	if (len < 3)
		return -EBADMSG;
	*pref = get16(rd);
	err = audit_dname_parse(rd, len, &off, out, outlen);
	if (err)
		return err;
	return off == len ? 0 : -EBADMSG;
}

/**
 * audit_tlsa_parse() - a TLSA record (RFC 6698): usage, selector, matching
 * type, association data.
 *
 * Association data of matching type 0 (a whole certificate or key) longer
 * than we keep is stored as its SHA-256, and compared as such.
 *
 * Return: 0, or -EBADMSG for a record without data or with a digest of the
 * wrong length for its matching type.
 */
int audit_tlsa_parse(const uint8_t *rd, size_t len, struct audit_tlsa *out)
{
	size_t n;

	if (len < 4)
		return -EBADMSG;
	memset(out, 0, sizeof(*out));
	out->tl_usage = rd[0];
	out->tl_selector = rd[1];
	out->tl_mtype = rd[2];
	n = len - 3;
	if ((out->tl_mtype == 1 && n != 32) || (out->tl_mtype == 2 && n != 64))
		return -EBADMSG;
	if (n > sizeof(out->tl_data)) {
		out->tl_full_too_long = true;
		SHA256(rd + 3, n, out->tl_full_sha256);
		return 0;
	}
	memcpy(out->tl_data, rd + 3, n);
	out->tl_len = n;
	return 0;
}

/**
 * audit_line_take() - the next line out of a receive buffer.
 * @buf: AUDIT_LINE_MAX bytes received and not yet consumed
 * @have: how many; reduced by what is taken
 * @line: AUDIT_LINE_MAX + 1 bytes: the line, CR LF or LF removed, NUL-ended
 * @len: its length
 *
 * Return: 1 with a line taken, 0 when more bytes are needed, -E2BIG when
 * @buf is full and holds no line end (a line longer than AUDIT_LINE_MAX).
 */
int audit_line_take(char *buf, size_t *have, char *line, size_t *len)
{
	char *nl = memchr(buf, '\n', *have);
	size_t l;

	if (!nl)
		return *have >= AUDIT_LINE_MAX ? -E2BIG : 0;
	l = (size_t)(nl - buf);
	*len = l && buf[l - 1] == '\r' ? l - 1 : l;
	memcpy(line, buf, *len);
	line[*len] = '\0';
	*have -= l + 1;
	memmove(buf, nl + 1, *have);
	return 1;
}

static bool is_sep(char c)
{
	return c == ' ' || c == '[' || c == ']';
}

/*
 * Does @line (no CRLF) contain @word as a whole token? Tokens are split at
 * spaces and brackets, for IMAP's "* OK [CAPABILITY ... STARTTLS] ready".
 */
static bool has_token(const char *line, size_t len, const char *word)
{
	size_t wl = strlen(word), i = 0;

	while (i < len) {
		size_t s;

		while (i < len && is_sep(line[i]))
			i++;
		s = i;
		while (i < len && !is_sep(line[i]))
			i++;
		if (i - s == wl && !strncasecmp(line + s, word, wl))
			return true;
		/* IMAP AUTH=PLAIN and friends: any AUTH= token counts. */
		if (!strcmp(word, "AUTH=") && i - s > 5 && !strncasecmp(line + s, "AUTH=", 5))
			return true;
	}
	return false;
}

/**
 * audit_caps_scan() - note what one capability line offers before TLS.
 * @proto: IMAP (a "* CAPABILITY" line or a greeting's [CAPABILITY ...]
 *	   code), POP3 (one CAPA line), SMTP (one EHLO line, "250-" or "250 ")
 * @line: the line without CRLF
 * @len: its length
 * @caps: flags to set; never cleared here
 */
void audit_caps_scan(enum audit_proto proto, const char *line, size_t len,
		     struct audit_caps *caps)
{
	switch (proto) {
	case AUDIT_IMAP:
		if (len < 2 || line[0] != '*')
			return;
		if (!memmem(line, len, "CAPABILITY", 10) && !memmem(line, len, "capability", 10))
			return;
		caps->ca_starttls |= has_token(line, len, "STARTTLS");
		caps->ca_logindisabled |= has_token(line, len, "LOGINDISABLED");
		caps->ca_auth |= has_token(line, len, "AUTH=");
		break;
	case AUDIT_POP3:
		caps->ca_starttls |= has_token(line, len, "STLS");
		caps->ca_auth |= has_token(line, len, "USER") || has_token(line, len, "SASL");
		break;
	case AUDIT_SMTP:
		if (len < 4 || strncmp(line, "250", 3) || (line[3] != '-' && line[3] != ' '))
			return;
		caps->ca_starttls |= has_token(line + 4, len - 4, "STARTTLS");
		if (len >= 8 && !strncasecmp(line + 4, "AUTH", 4) && (len == 8 || line[8] == ' ' ||
								      line[8] == '='))
			caps->ca_auth = true;
		break;
	}
}

/**
 * audit_line_classify() - is this line the end of a response, and good news?
 * @proto: the protocol
 * @tag: IMAP: the tag of the command waited for, or NULL for the greeting;
 *	 POP3: non-NULL while reading a multi-line (CAPA) answer
 * @line: the line without CRLF
 * @len: its length
 *
 * Return: AUDIT_ST_MORE when more lines belong to the response,
 * AUDIT_ST_OK / AUDIT_ST_NO for a final positive / negative answer,
 * AUDIT_ST_BAD for something that is not this protocol.
 */
enum audit_status audit_line_classify(enum audit_proto proto, const char *tag, const char *line,
				      size_t len)
{
	size_t tl;

	switch (proto) {
	case AUDIT_IMAP:
		if (!tag) {
			if (len >= 4 && !strncmp(line, "* OK", 4))
				return AUDIT_ST_OK;
			if (len >= 9 && !strncmp(line, "* PREAUTH", 9))
				return AUDIT_ST_OK;
			if (len >= 5 && !strncmp(line, "* BYE", 5))
				return AUDIT_ST_NO;
			return AUDIT_ST_BAD;
		}
		if (len >= 1 && line[0] == '*')
			return AUDIT_ST_MORE;
		tl = strlen(tag);
		if (len < tl + 3 || strncmp(line, tag, tl) || line[tl] != ' ')
			return AUDIT_ST_BAD;
		if (!strncasecmp(line + tl + 1, "OK", 2))
			return AUDIT_ST_OK;
		return AUDIT_ST_NO;
	case AUDIT_POP3:
		if (tag)
			return len == 1 && line[0] == '.' ? AUDIT_ST_OK : AUDIT_ST_MORE;
		if (len >= 3 && !strncmp(line, "+OK", 3))
			return AUDIT_ST_OK;
		if (len >= 4 && !strncmp(line, "-ERR", 4))
			return AUDIT_ST_NO;
		return AUDIT_ST_BAD;
	case AUDIT_SMTP:
		if (len < 3 || !isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) || !isdigit((unsigned char)line[2]) ||
		    (len > 3 && line[3] != ' ' && line[3] != '-'))
			return AUDIT_ST_BAD;
		if (len > 3 && line[3] == '-')
			return AUDIT_ST_MORE;
		return line[0] == '2' ? AUDIT_ST_OK : AUDIT_ST_NO;
	}
	return AUDIT_ST_BAD;
}
