// SPDX-License-Identifier: GPL-2.0
/*
 * Capability filter on the first bytes from the backend (see capfilter.h
 * for the rules). The filter works on whole lines: bytes are held until
 * their LF (SMTP: until the last line of a multi-line reply), then passed,
 * rewritten or dropped. Because every decision is taken at a line end or
 * at a fixed byte count, the output does not depend on how the stream was
 * split into reads.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "capfilter.h"

struct mk_capfilter {
	enum mk_protocol f_proto;
	bool f_drop_greeting;
	bool f_greeting_seen;
	bool f_done;
	size_t f_total;			/* backend bytes seen while filtering */
	size_t f_literal;		/* IMAP: literal bytes still to pass as is */
	struct mk_buf f_line;		/* the line being received */
	struct mk_buf f_block;		/* SMTP: lines of a multi-line reply */
};

enum { CF_NEXT, CF_GIVE_UP };

/* A line: text without its line end, and the line end. */
struct cf_line {
	const char *l_text;
	size_t l_len;
	size_t l_endlen;
};

/* The first line of [p, p + avail), or all of it when there is no LF. */
static struct cf_line line_at(const uint8_t *p, size_t avail)
{
	const uint8_t *lf = memchr(p, '\n', avail);
	struct cf_line l = { (const char *)p, lf ? (size_t)(lf - p) + 1 : avail, 0 };

	if (l.l_len && l.l_text[l.l_len - 1] == '\n')
		l.l_endlen++;
	if (l.l_len > l.l_endlen && l.l_text[l.l_len - l.l_endlen - 1] == '\r')
		l.l_endlen++;
	l.l_len -= l.l_endlen;
	return l;
}

static struct cf_line split_line(const struct mk_buf *b)
{
	return line_at(mk_buf_head(b), mk_buf_used(b));
}

/* Does the word at @s (up to a space or @len) equal @w, ignoring case? */
static bool word_is(const char *s, size_t len, const char *w)
{
	size_t n = strlen(w);

	return len >= n && !strncasecmp(s, w, n) && (len == n || s[n] == ' ');
}

static size_t word_len(const char *s, size_t len)
{
	const char *sp = memchr(s, ' ', len);

	return sp ? (size_t)(sp - s) : len;
}

/**
 * mk_capfilter_new() - start filtering one backend stream
 * @proto:         protocol of the listener
 * @drop_greeting: swallow the backend's greeting (STARTTLS listeners)
 *
 * Return: the state, or NULL (ENOMEM).
 */
struct mk_capfilter *mk_capfilter_new(enum mk_protocol proto, bool drop_greeting)
{
	struct mk_capfilter *f = calloc(1, sizeof(*f));

	if (!f)
		return NULL;
	f->f_proto = proto;
	f->f_drop_greeting = drop_greeting;
	mk_buf_init(&f->f_line, MK_CAPFILTER_MAX_LINE);
	mk_buf_init(&f->f_block, MK_CAPFILTER_MAX_LINE);
	return f;
}

/**
 * mk_capfilter_free() - free the filter, wiping what it held
 * @f: state, or NULL
 */
void mk_capfilter_free(struct mk_capfilter *f)
{
	if (!f)
		return;
	mk_buf_free(&f->f_line);
	mk_buf_free(&f->f_block);
	free(f);
}

/**
 * mk_capfilter_greeting_seen() - has the backend's greeting gone by?
 * @f: state
 *
 * Return: true once the whole greeting was received (and dropped or passed).
 */
bool mk_capfilter_greeting_seen(const struct mk_capfilter *f)
{
	return f->f_greeting_seen;
}

/* Append what @b holds (an empty mk_buf may have no memory at all). */
static int put_buf(struct mk_buf *out, const struct mk_buf *b)
{
	return mk_buf_used(b) ? mk_buf_append(out, mk_buf_head(b), mk_buf_used(b)) : 0;
}

static int put_line(struct mk_buf *out, const struct cf_line *l)
{
	return mk_buf_append(out, l->l_text, l->l_len + l->l_endlen);
}

/* --- IMAP ------------------------------------------------------------------ */

static bool imap_dropped_cap(const char *s, size_t len)
{
	return (len == 8 && !strncasecmp(s, "STARTTLS", 8)) ||
	       (len == 13 && !strncasecmp(s, "LOGINDISABLED", 13));
}

/*
 * Find the capability list in an IMAP response line: after "* CAPABILITY"
 * or inside a "[CAPABILITY ...]" response code of a status response.
 * Sets [*start, *end) to the list (starting at its first space) and
 * *tagged_ok for a tagged OK. Return: whether there is one.
 */
static bool imap_caps(const struct cf_line *l, size_t *start, size_t *end, bool *tagged_ok)
{
	const char *s = l->l_text;
	size_t len = l->l_len, tag = word_len(s, len), pos = tag + 1;
	const char *rb;

	*tagged_ok = false;
	if (tag >= len)
		return false;
	if (tag == 1 && s[0] == '*' && word_is(s + pos, len - pos, "CAPABILITY")) {
		*start = pos + 10;
		*end = len;
		return true;
	}
	if (tag == 1 && s[0] == '+')
		return false;
	*tagged_ok = !(tag == 1 && s[0] == '*') && word_is(s + pos, len - pos, "OK");
	pos += word_len(s + pos, len - pos) + 1;
	if (pos >= len || len - pos < 11 || strncasecmp(s + pos, "[CAPABILITY", 11))
		return false;
	pos += 11;
	rb = memchr(s + pos, ']', len - pos);
	if (pos < len && s[pos] != ' ' && s + pos != rb)
		return false;
	*start = pos;
	*end = rb ? (size_t)(rb - s) : len;
	return true;
}

static int imap_filter_caps(const struct cf_line *l, size_t start, size_t end, struct mk_buf *out)
{
	const char *s = l->l_text;
	size_t i, n;
	bool drop = false;
	int err;

	for (i = start; i < end; i += n + 1) {
		if (s[i] == ' ') {
			n = 0;
			continue;
		}
		n = word_len(s + i, end - i);
		drop |= imap_dropped_cap(s + i, n);
	}
	if (!drop)
		return put_line(out, l);
	err = mk_buf_append(out, s, start);
	for (i = start; !err && i < end; i += n + 1) {
		n = s[i] == ' ' ? 0 : word_len(s + i, end - i);
		if (n && !imap_dropped_cap(s + i, n)) {
			err = mk_buf_append(out, " ", 1);
			err = err ?: mk_buf_append(out, s + i, n);
		}
	}
	return err ?: mk_buf_append(out, s + end, l->l_len - end + l->l_endlen);
}

/*
 * "{N}" at the end of a line: the next N bytes are a literal (message data,
 * say), passed as they are, never taken for response lines.
 */
static size_t imap_literal(const struct cf_line *l)
{
	size_t i = l->l_len, n = 0;

	if (i < 3 || l->l_text[i - 1] != '}')
		return 0;
	for (i -= 2; i > 0 && l->l_text[i] >= '0' && l->l_text[i] <= '9'; i--)
		;
	if (l->l_text[i] != '{' || i + 2 == l->l_len)
		return 0;
	/* Past the byte budget anyway: no need to parse further. */
	if (l->l_len - i - 2 > 9)
		return MK_CAPFILTER_MAX_TOTAL;
	for (i++; i < l->l_len - 1; i++)
		n = n * 10 + (size_t)(l->l_text[i] - '0');
	return n;
}

static int imap_line(struct mk_capfilter *f, struct mk_buf *out)
{
	struct cf_line l = split_line(&f->f_line);
	size_t start, end;
	bool tagged_ok;
	int err;

	if (!f->f_greeting_seen) {
		f->f_greeting_seen = true;
		/* An untagged BYE is valid at any time: let the client see why. */
		if (f->f_drop_greeting &&
		    !(l.l_len > 2 && !strncmp(l.l_text, "* ", 2) &&
		      word_is(l.l_text + 2, l.l_len - 2, "BYE")))
			return CF_NEXT;
	}
	f->f_literal = imap_literal(&l);
	if (!imap_caps(&l, &start, &end, &tagged_ok))
		return put_line(out, &l);
	err = imap_filter_caps(&l, start, end, out);
	if (!err && tagged_ok)
		f->f_done = true;
	return err;
}

/* --- POP3 ------------------------------------------------------------------ */

static int pop3_line(struct mk_capfilter *f, struct mk_buf *out)
{
	struct cf_line l = split_line(&f->f_line);

	if (!f->f_greeting_seen) {
		f->f_greeting_seen = true;
		if (f->f_drop_greeting)
			return CF_NEXT;
	}
	if (l.l_len == 4 && !strncasecmp(l.l_text, "STLS", 4))
		return CF_NEXT;
	/* The end of the first multi-line response, normally CAPA's. */
	if (l.l_len == 1 && l.l_text[0] == '.')
		f->f_done = true;
	return put_line(out, &l);
}

/* --- SMTP ------------------------------------------------------------------ */

static bool smtp_continued(const struct cf_line *l)
{
	return l->l_len >= 4 && l->l_text[3] == '-';
}

/*
 * Does the reply line start with @code? The text is bytes from the
 * backend, not a C string: compare only what the line holds.
 */
static bool smtp_code_is(const struct cf_line *l, const char *code)
{
	return l->l_len >= 3 && memcmp(l->l_text, code, 3) == 0;
}

static bool smtp_is_starttls(const struct cf_line *l)
{
	return l->l_len >= 12 && smtp_code_is(l, "250") &&
	       (l->l_text[3] == '-' || l->l_text[3] == ' ') &&
	       word_is(l->l_text + 4, l->l_len - 4, "STARTTLS");
}

/* Pass a whole multi-line reply without its STARTTLS line. */
static int smtp_flush_block(struct mk_capfilter *f, struct mk_buf *out)
{
	const uint8_t *p = mk_buf_head(&f->f_block), *end = p + mk_buf_used(&f->f_block);
	size_t last_kept = SIZE_MAX;
	bool last_dropped = false;
	struct cf_line l;
	int err = 0;

	/* Bounded: each round takes one non-empty line off the block. */
	for (; !err && p < end; p += l.l_len + l.l_endlen) {
		l = line_at(p, (size_t)(end - p));
		last_dropped = smtp_is_starttls(&l);
		if (last_dropped)
			continue;
		last_kept = mk_buf_used(out);
		err = put_line(out, &l);
	}
	/* The dropped line was the last one: its predecessor ends the reply. */
	if (!err && last_dropped && last_kept != SIZE_MAX)
		mk_buf_head(out)[last_kept + 3] = ' ';
	mk_buf_reset(&f->f_block);
	return err;
}

static int smtp_line(struct mk_capfilter *f, struct mk_buf *out)
{
	struct cf_line l = split_line(&f->f_line), first;
	bool more = smtp_continued(&l);

	if (!f->f_greeting_seen) {
		f->f_greeting_seen = !more;
		if (f->f_drop_greeting)
			return CF_NEXT;
		return put_line(out, &l);
	}
	if (!more && !mk_buf_used(&f->f_block))
		return put_line(out, &l);
	if (mk_buf_append(&f->f_block, l.l_text, l.l_len + l.l_endlen))
		return CF_GIVE_UP;
	if (more)
		return CF_NEXT;
	/* The first multi-line 250 reply after the greeting is EHLO's. */
	first = split_line(&f->f_block);
	f->f_done = smtp_code_is(&first, "250");
	return smtp_flush_block(f, out);
}

/* --------------------------------------------------------------------------- */

/* Flush what is held, pass the rest of @in through, and stop filtering. */
static int finish(struct mk_capfilter *f, const uint8_t *in, size_t len, struct mk_buf *out)
{
	int err;

	f->f_done = true;
	err = put_buf(out, &f->f_block);
	err = err ?: put_buf(out, &f->f_line);
	err = err ?: mk_buf_append(out, in, len);
	mk_buf_free(&f->f_block);
	mk_buf_free(&f->f_line);
	return err ?: 1;
}

static int one_line(struct mk_capfilter *f, struct mk_buf *out)
{
	switch (f->f_proto) {
	case MK_PROTO_IMAP:
		return imap_line(f, out);
	case MK_PROTO_POP3:
		return pop3_line(f, out);
	case MK_PROTO_SUBMISSION:
		return smtp_line(f, out);
	}
	return -EINVAL;
}

/**
 * mk_capfilter_feed() - filter bytes from the backend
 * @f:   state
 * @in:  backend bytes
 * @len: how many (all are consumed; partial lines are held inside)
 * @out: bytes to send to the client are appended here
 *
 * Return: 1 when done, 0 to keep filtering, negative errno on error.
 */
int mk_capfilter_feed(struct mk_capfilter *f, const uint8_t *in, size_t len, struct mk_buf *out)
{
	size_t pos = 0, n;
	const uint8_t *lf;
	int ret;

	if (f->f_done)
		return mk_buf_append(out, in, len) ?: 1;
	/* Bounded: each round consumes at least one byte or returns. */
	while (pos < len) {
		if (f->f_total >= MK_CAPFILTER_MAX_TOTAL)
			return finish(f, in + pos, len - pos, out);
		n = len - pos;
		if (n > MK_CAPFILTER_MAX_TOTAL - f->f_total)
			n = MK_CAPFILTER_MAX_TOTAL - f->f_total;
		if (f->f_literal) {
			n = n < f->f_literal ? n : f->f_literal;
			ret = mk_buf_append(out, in + pos, n);
			if (ret)
				return ret;
			f->f_literal -= n;
			f->f_total += n;
			pos += n;
			continue;
		}
		lf = memchr(in + pos, '\n', n);
		if (lf)
			n = (size_t)(lf - (in + pos)) + 1;
		if (mk_buf_used(&f->f_line) + n > MK_CAPFILTER_MAX_LINE)
			return finish(f, in + pos, len - pos, out);
		ret = mk_buf_append(&f->f_line, in + pos, n);
		if (ret)
			return ret;
		f->f_total += n;
		pos += n;
		if (!lf)
			continue;
		ret = one_line(f, out);
		if (ret < 0)
			return ret;
		if (ret == CF_GIVE_UP)
			return finish(f, in + pos, len - pos, out);
		mk_buf_reset(&f->f_line);
		if (f->f_done)
			return finish(f, in + pos, len - pos, out);
	}
	return 0;
}
