// SPDX-License-Identifier: GPL-2.0
/*
 * The engine of the pre-TLS dialogue, shared by IMAP, POP3 and submission:
 * framing, limits, verb lookup, events. Protocol files only hold data.
 *
 * Decisions (documented in pretls.h too):
 *  - a line ends at LF; a CR just before it is dropped, so CRLF and bare LF
 *    both work (clients in the wild send both; nothing here is relayed, so
 *    there is no smuggling risk in being lenient);
 *  - trailing spaces and tabs are ignored;
 *  - a line holding a NUL byte gets the protocol's "bad line" reply and
 *    counts as a command, except for authentication verbs, whose arguments
 *    are never read (their refusal must not depend on them);
 *  - a line longer than the limit (line end included) closes the
 *    connection after a final reply: the agent cannot resynchronise with a
 *    client that exceeds it, and a real MUA never does before TLS;
 *  - the (max_commands + 1)th command is not executed: it closes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "pretls.h"
#include "pretls_proto.h"

#define MK_PRETLS_DEF_COMMANDS 32

struct mk_pretls {
	const struct mk_pretls_proto *p_proto;
	size_t p_max_line;
	unsigned int p_max_commands;
	unsigned int p_max_auth;
	unsigned int p_ncommands;
	unsigned int p_nauth;
	bool p_finished;		/* STARTTLS or CLOSE was returned */
	char p_host[MK_HOSTNAME_MAX];
};

/* Outcome of one command, for the loop in mk_pretls_input(). */
struct mk_pretls_step {
	enum mk_pretls_verdict s_verdict;
	const char *s_event;		/* NULL: nothing to report */
	bool s_auth;
};

static bool host_ok(const char *h)
{
	size_t i, n = strlen(h);

	if (!n || n >= MK_HOSTNAME_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (h[i] <= ' ' || h[i] > '~')
			return false;
	return true;
}

static const struct mk_pretls_proto *proto_of(enum mk_protocol proto)
{
	switch (proto) {
	case MK_PROTO_IMAP:
		return &mk_pretls_imap;
	case MK_PROTO_POP3:
		return &mk_pretls_pop3;
	case MK_PROTO_SUBMISSION:
		return &mk_pretls_smtp;
	}
	return NULL;
}

/**
 * mk_pretls_new() - start the dialogue of one client connection
 * @proto:    protocol of the listener
 * @hostname: name in the greeting and replies; NULL or "" for this host's
 *            name; must be printable ASCII without spaces (it is sent)
 * @limits:   NULL or zeros for the defaults
 *
 * Return: the state, or NULL with errno set (EINVAL, ENOMEM).
 */
struct mk_pretls *mk_pretls_new(enum mk_protocol proto, const char *hostname,
				const struct mk_pretls_limits *limits)
{
	const struct mk_pretls_proto *pp = proto_of(proto);
	struct mk_pretls *p;

	if (!pp || (hostname && *hostname && !host_ok(hostname))) {
		errno = EINVAL;
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->p_proto = pp;
	if (hostname && *hostname) {
		strcpy(p->p_host, hostname);
	} else if (gethostname(p->p_host, sizeof(p->p_host) - 1) || !host_ok(p->p_host)) {
		strcpy(p->p_host, "localhost");
	}
	p->p_max_line = limits && limits->pl_max_line ? limits->pl_max_line : pp->pp_max_line;
	p->p_max_commands = limits && limits->pl_max_commands ? limits->pl_max_commands :
							      MK_PRETLS_DEF_COMMANDS;
	p->p_max_auth = limits ? limits->pl_max_auth_refusals : 0;
	return p;
}

/**
 * mk_pretls_free() - free the dialogue state
 * @p: state, or NULL
 */
void mk_pretls_free(struct mk_pretls *p)
{
	free(p);
}

/**
 * mk_pretls_max_line() - longest command line accepted, line end included
 * @p: state
 *
 * The caller's input buffer must hold at least this many bytes, or a client
 * could stall the dialogue until the timeout with an endless line.
 *
 * Return: the limit in bytes.
 */
size_t mk_pretls_max_line(const struct mk_pretls *p)
{
	return p->p_max_line;
}

static int put_text(const struct mk_pretls *p, const struct mk_pretls_text *t,
		    struct mk_buf *out)
{
	int err;

	if (!t->t_pre)
		return 0;
	err = mk_buf_append(out, t->t_pre, strlen(t->t_pre));
	if (err || !t->t_post)
		return err;
	err = mk_buf_append(out, p->p_host, strlen(p->p_host));
	return err ?: mk_buf_append(out, t->t_post, strlen(t->t_post));
}

/**
 * mk_pretls_greeting() - append the greeting sent on accept
 * @p:   state
 * @out: reply buffer
 *
 * Return: 0, or -ENOBUFS / -ENOMEM.
 */
int mk_pretls_greeting(struct mk_pretls *p, struct mk_buf *out)
{
	return put_text(p, &p->p_proto->pp_greeting, out);
}

/**
 * mk_pretls_timeout() - append the reply sent when the client was too slow
 * @p:   state
 * @out: reply buffer
 *
 * Return: 0, or -ENOBUFS / -ENOMEM.
 */
int mk_pretls_timeout(struct mk_pretls *p, struct mk_buf *out)
{
	return put_text(p, &p->p_proto->pp_timeout, out);
}

/* Verb of @line (before the first space), checked against its arguments. */
static const struct mk_pretls_verb *lookup(const struct mk_pretls_proto *pp, const char *line,
					   size_t len)
{
	const char *sp = memchr(line, ' ', len);
	size_t wlen = sp ? (size_t)(sp - line) : len;
	bool args = wlen < len;
	size_t i;

	for (i = 0; i < pp->pp_nverbs; i++) {
		const struct mk_pretls_verb *v = &pp->pp_verbs[i];

		if (strlen(v->v_name) != wlen || strncasecmp(v->v_name, line, wlen))
			continue;
		if ((v->v_args == MK_PRETLS_ARGS_NONE && args) ||
		    (v->v_args == MK_PRETLS_ARGS_REQUIRED && !args))
			return &pp->pp_syntax;
		return v;
	}
	return &pp->pp_unknown;
}

static int answer(const struct mk_pretls *p, const struct mk_pretls_verb *v, const char *tag,
		  size_t taglen, struct mk_buf *out)
{
	int err = 0;

	if (v->v_untagged)
		err = mk_buf_append(out, v->v_untagged, strlen(v->v_untagged));
	if (!err && taglen) {
		err = mk_buf_append(out, tag, taglen);
		err = err ?: mk_buf_append(out, " ", 1);
	}
	return err ?: put_text(p, &v->v_reply, out);
}

/* Strip the final line end and trailing blanks. */
static size_t trim(const char *s, size_t len)
{
	if (len && s[len - 1] == '\n')
		len--;
	if (len && s[len - 1] == '\r')
		len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
		len--;
	return len;
}

static struct mk_pretls_step command(struct mk_pretls *p, const char *line, size_t len,
				     struct mk_buf *out)
{
	const struct mk_pretls_proto *pp = p->p_proto;
	struct mk_pretls_step st = { MK_PRETLS_CONTINUE, NULL, false };
	const struct mk_pretls_verb *v;
	size_t taglen = 0;

	if (++p->p_ncommands > p->p_max_commands) {
		st.s_verdict = MK_PRETLS_CLOSE;
		st.s_event = "TOO-MANY-COMMANDS";
		if (put_text(p, &pp->pp_too_many, out))
			st.s_event = "OUTPUT-FULL";
		return st;
	}
	len = trim(line, len);
	if (pp->pp_tag) {
		taglen = pp->pp_tag(line, len);
		if (!taglen)
			goto garbage;
	}
	v = lookup(pp, line + taglen + !!taglen, len - taglen - !!taglen);
	/* The arguments of an authentication verb are never read, not even for this. */
	if (!v->v_auth && memchr(line, '\0', len))
		goto garbage;
	if (answer(p, v, line, taglen, out))
		goto full;
	st.s_verdict = v->v_verdict;
	if (!v->v_auth)
		return st;
	st.s_event = v->v_name;
	st.s_auth = true;
	if (p->p_max_auth && ++p->p_nauth >= p->p_max_auth) {
		st.s_verdict = MK_PRETLS_CLOSE;
		if (put_text(p, &pp->pp_auth_limit, out))
			goto full;
	}
	return st;
garbage:
	if (!put_text(p, &pp->pp_garbage, out))
		return st;
full:
	/* No room to answer: the client is flooding us, give up on it. */
	st.s_verdict = MK_PRETLS_CLOSE;
	st.s_event = "OUTPUT-FULL";
	return st;
}

static void add_event(const struct mk_pretls_step *st, struct mk_pretls_event *ev, size_t cap,
		      size_t *n)
{
	if (!st->s_event || !ev || *n >= cap)
		return;
	ev[*n].pe_command = st->s_event;
	ev[*n].pe_auth_refused = st->s_auth;
	(*n)++;
}

/**
 * mk_pretls_input() - feed bytes the client sent before TLS
 * @p:        dialogue state
 * @in:       bytes
 * @len:      how many
 * @consumed: how many of @in were used (see pretls.h)
 * @out:      reply bytes are appended here
 * @ev:       events (may be NULL)
 * @nev:      in: capacity of @ev, out: count (events past it are dropped)
 *
 * Return: the verdict; once STARTTLS or CLOSE was returned, every later
 * call returns CLOSE without reading anything.
 */
enum mk_pretls_verdict mk_pretls_input(struct mk_pretls *p, const uint8_t *in, size_t len,
				       size_t *consumed, struct mk_buf *out,
				       struct mk_pretls_event *ev, size_t *nev)
{
	const struct mk_pretls_proto *pp = p->p_proto;
	struct mk_pretls_step st = { MK_PRETLS_CONTINUE, NULL, false };
	size_t cap = nev ? *nev : 0, n = 0, pos = 0, unit;
	bool too_long = false;

	*consumed = 0;
	if (nev)
		*nev = 0;
	if (p->p_finished)
		return MK_PRETLS_CLOSE;
	/* Bounded: every round consumes at least one byte or leaves. */
	while (st.s_verdict == MK_PRETLS_CONTINUE && pos < len) {
		if (pp->pp_frame)
			unit = pp->pp_frame(in + pos, len - pos, p->p_max_line, &too_long);
		else
			unit = mk_pretls_frame_line(in + pos, len - pos, p->p_max_line, &too_long);
		if (too_long) {
			st.s_verdict = MK_PRETLS_CLOSE;
			st.s_event = "LINE-TOO-LONG";
			st.s_auth = false;
			put_text(p, &pp->pp_too_long, out);
			add_event(&st, ev, cap, &n);
			break;
		}
		if (!unit)
			break;
		st = command(p, (const char *)in + pos, unit, out);
		pos += unit;
		add_event(&st, ev, cap, &n);
	}
	*consumed = pos;
	if (nev)
		*nev = n;
	if (st.s_verdict != MK_PRETLS_CONTINUE)
		p->p_finished = true;
	return st.s_verdict;
}
