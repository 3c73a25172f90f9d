// SPDX-License-Identifier: GPL-2.0
/*
 * The query protocol (include/mailktls.h): one request line in, one answer
 * out, looked up in the entry table.  No state and no locking here: the
 * registry copies what it answers from.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uapi/linux/mailktls.h"

#include "mailktls.h"
#include "query.h"
#include "registry.h"
#include "mk_addr.h"

static bool mk_word(const char **p, const char *end, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(end - *p) < n || memcmp(*p, w, n))
		return false;
	*p += n;
	return true;
}

/**
 * mk_query_parse() - parse one request line
 * @line: the bytes, without "\n"
 * @len:  their number
 * @q:    the request
 *
 * Return: 0, -EINVAL, or -E2BIG.
 */
int mk_query_parse(const char *line, size_t len, struct mk_query *q)
{
	char arg[MAILKTLS_QUERY_LINE_MAX];
	const char *p = line, *end = line + len;
	unsigned long long ino;
	char *e;
	size_t n;

	memset(q, 0, sizeof(*q));
	if (len >= MAILKTLS_QUERY_LINE_MAX)
		return -E2BIG;
	if (len && line[len - 1] == '\r')
		end--;
	if (mk_word(&p, end, "STATUS"))
		return p == end ? (q->q_kind = MK_QUERY_STATUS, 0) : -EINVAL;
	if (mk_word(&p, end, "CLAUSE "))
		q->q_kind = MK_QUERY_CLAUSE;
	else if (!mk_word(&p, end, "QUERY "))
		return -EINVAL;
	else if (mk_word(&p, end, "PEER "))
		q->q_kind = MK_QUERY_PEER;
	else if (mk_word(&p, end, "ADDR "))
		q->q_kind = MK_QUERY_ADDR;
	else if (mk_word(&p, end, "INODE "))
		q->q_kind = MK_QUERY_INODE;
	else
		return -EINVAL;
	n = (size_t)(end - p);
	if (!n || memchr(p, '\0', n))
		return -EINVAL;
	memcpy(arg, p, n);
	arg[n] = '\0';
	if (q->q_kind != MK_QUERY_INODE)
		return mk_addr_parse(arg, &q->q_addr);
	if (arg[0] < '0' || arg[0] > '9')
		return -EINVAL;
	errno = 0;
	ino = strtoull(arg, &e, 10);
	if (errno || *e || !ino)
		return -EINVAL;
	q->q_inode = ino;
	return 0;
}

struct mk_out {
	char *o_buf;
	size_t o_len, o_pos;
};

static void mk_outf(struct mk_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void mk_outf(struct mk_out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (o->o_pos >= o->o_len)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->o_buf + o->o_pos, o->o_len - o->o_pos, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->o_pos += (size_t)n;
	if (o->o_pos >= o->o_len)
		o->o_pos = o->o_len - 1;
}

/* key=value with control bytes replaced: values come from the network. */
static void mk_out_kv(struct mk_out *o, const char *key, const char *val)
{
	char clean[MAILKTLS_SNI_MAX];
	size_t i;

	for (i = 0; val[i] && i + 1 < sizeof(clean); i++)
		clean[i] = ((unsigned char)val[i] < 0x20 || val[i] == 0x7f) ? '?' : val[i];
	clean[i] = '\0';
	mk_outf(o, "%s=%s\n", key, clean);
}

static void mk_out_session(struct mk_out *o, const struct mk_session *s)
{
	char addr[INET6_ADDRSTRLEN + 16] = "";

	mk_outf(o, "ok\nversion=0x%04x\n", s->ss_version);
	mk_out_kv(o, "version_name", s->ss_version_name[0] ? s->ss_version_name :
		  mk_tls_version_name(s->ss_version));
	mk_outf(o, "cipher_id=0x%04X\n", s->ss_cipher_id);
	mk_out_kv(o, "cipher", s->ss_cipher);
	mk_out_kv(o, "group", s->ss_group);
	mk_out_kv(o, "sigalg", s->ss_sigalg);
	mk_out_kv(o, "sni", s->ss_sni);
	mk_out_kv(o, "alpn", s->ss_alpn);
	mk_out_kv(o, "client_subject", s->ss_client_subject);
	mk_outf(o, "client_cert=%d\nverify=%d\n", s->ss_client_cert ? 1 : 0, s->ss_verify);
	mk_outf(o, "ktls=%s\n", s->ss_ktls_tx && s->ss_ktls_rx ? "tx,rx" :
		s->ss_ktls_tx ? "tx" : s->ss_ktls_rx ? "rx" : "none");
	mk_addr_format((const struct sockaddr *)&s->ss_client, addr, sizeof(addr));
	mk_outf(o, "client=%s\n", addr);
	mk_out_kv(o, "listener", s->ss_listener);
}

/* The connection @q asks about; Return: 0 or -ENOENT. */
static int mk_query_find(const struct mk_query *q, struct mk_session *s)
{
	const struct sockaddr *sa = (const struct sockaddr *)&q->q_addr;

	switch (q->q_kind) {
	case MK_QUERY_PEER:
		return mk_registry_find_addr(MK_REG_BY_BACKEND, sa, s);
	case MK_QUERY_ADDR:
	case MK_QUERY_CLAUSE:
		return mk_registry_find_addr(MK_REG_BY_CLIENT, sa, s);
	case MK_QUERY_INODE:
		return mk_registry_find_inode(q->q_inode, s);
	default:
		return -ENOENT;
	}
}

static void mk_out_listener(const struct mk_reg_listener *l, void *arg)
{
	mk_outf(arg, "listener=%s %s %s %s\n", l->rl_name, l->rl_listen, l->rl_protocol, l->rl_tls);
}

static void mk_out_status(struct mk_out *o)
{
	char lines[MAILKTLS_QUERY_ANSWER_MAX];
	struct mk_out lo = { .o_buf = lines, .o_len = sizeof(lines) };
	struct mk_reg_counts c;
	size_t n;

	lines[0] = '\0';
	n = mk_registry_each_listener(mk_out_listener, &lo);
	mk_registry_counts(&c);
	mk_outf(o, "ok\nmodule=%s\nconnections=%zu\nktls_txrx=%zu\nlisteners=%zu\n%s",
		mk_registry_module_present() ? "yes" : "no", c.rc_connections, c.rc_ktls_txrx,
		n, lines);
}

/*
 * CLAUSE: the RFC 8314 §4.3 clause alone ("tls TLS_AES_256_GCM_SHA384\n"),
 * or nothing at all for a connection the agent does not know, so that an
 * MTA can put the answer into its Received header as it is.
 */
static size_t mk_out_clause(struct mk_out *o, const struct mk_session *s)
{
	struct mailktls_info mi = { .mi_cipher_id = s->ss_cipher_id };
	char clause[96];

	mk_strlcpy(mi.mi_cipher, s->ss_cipher, sizeof(mi.mi_cipher));
	if (mailktls_received_clause(&mi, clause, sizeof(clause)) > 0)
		mk_outf(o, "%s\n", clause);
	return o->o_pos;
}

/**
 * mk_query_answer() - the full answer to one request line
 * @line:   the request, without "\n"
 * @len:    its length
 * @out:    receives the answer
 * @outlen: size of @out, at least 64
 *
 * Return: the answer's length (0: a CLAUSE without answer).
 */
size_t mk_query_answer(const char *line, size_t len, char *out, size_t outlen)
{
	struct mk_out o = { .o_buf = out, .o_len = outlen };
	struct mk_session s;
	struct mk_query q;
	int err;

	if (!outlen)
		return 0;
	out[0] = '\0';
	err = mk_query_parse(line, len, &q);
	if (!err && q.q_kind == MK_QUERY_CLAUSE)
		return mk_query_find(&q, &s) ? 0 : mk_out_clause(&o, &s);
	if (err && len >= 7 && !memcmp(line, "CLAUSE ", 7))
		return 0;	/* CLAUSE answers a clause or nothing */
	if (err) {
		mk_outf(&o, "error %s\n\n", err == -E2BIG ? "toolong" : "syntax");
		return o.o_pos;
	}
	if (q.q_kind == MK_QUERY_STATUS)
		mk_out_status(&o);
	else if (mk_query_find(&q, &s) == 0)
		mk_out_session(&o, &s);
	else
		mk_outf(&o, "error notfound\n");
	mk_outf(&o, "\n");
	return o.o_pos;
}
