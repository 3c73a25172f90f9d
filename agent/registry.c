// SPDX-License-Identifier: GPL-2.0
/*
 * The registry of relayed connections: tags them in mailktls.ko when it is
 * loaded, and answers the query socket (protocol: include/mailktls.h).
 *
 * Locking: mk_reg.r_lock protects the entry table, the listener list and
 * the id counter; entries are copied in and out under it.  mk_reg.r_nl_lock
 * serialises the one netlink socket used for tagging.  The query thread
 * owns the listening socket; mk_query_server_stop() joins it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "mailktls.h"
#include "log.h"
#include "registry.h"
#include "lib/mk_addr.h"
#include "lib/mk_genl.h"

#define MK_QUERY_READ_MS 500

/*
 * An address the query protocol can match or print: IPv4 or IPv6 (any other
 * family keeps only sa_family, which mk_addr_equal() never matches).
 */
union mk_reg_addr {
	struct sockaddr sa;
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
};

/*
 * One relayed connection, kept as small as the answers allow: it lives as
 * long as the connection, and issue 3 gives an idle connection about 2 KiB
 * in all. A struct mk_session is 1.2 KiB, mostly fixed-size strings that
 * are empty or short (SNI, client subject), so the strings are packed here
 * NUL-terminated one after the other, in mk_reg_strs[] order.
 */
struct mk_reg_entry {
	uint64_t re_id;
	uint64_t re_backend_inode;
	union mk_reg_addr re_client;
	union mk_reg_addr re_backend_local;
	uint16_t re_version;
	uint16_t re_cipher_id;
	int32_t re_verify;
	bool re_client_cert;
	bool re_ktls_tx;
	bool re_ktls_rx;
	char re_strs[];
};

#define MK_SS_STR(f) { offsetof(struct mk_session, f), sizeof(((struct mk_session *)0)->f) }

/* The string fields of struct mk_session an entry keeps: where, how big. */
static const struct {
	size_t rs_off, rs_size;
} mk_reg_strs[] = {
	MK_SS_STR(ss_listener), MK_SS_STR(ss_version_name), MK_SS_STR(ss_cipher),
	MK_SS_STR(ss_group), MK_SS_STR(ss_sigalg), MK_SS_STR(ss_sni), MK_SS_STR(ss_alpn),
	MK_SS_STR(ss_client_subject),
};
#define MK_REG_NSTRS (sizeof(mk_reg_strs) / sizeof(mk_reg_strs[0]))
#define MK_REG_STR_CIPHER 2		/* ss_cipher's place in mk_reg_strs[] */

struct mk_reg_listener {
	char rl_name[MK_NAME_MAX];
	char rl_listen[128];
	const char *rl_protocol;
	const char *rl_tls;
};

static struct {
	pthread_mutex_t r_lock;
	struct mk_reg_entry **r_entries;	/* r_lock; unordered */
	size_t r_n, r_cap;			/* r_lock */
	uint64_t r_next_id;			/* r_lock */
	struct mk_reg_listener *r_listeners;	/* r_lock */
	size_t r_nlisteners;			/* r_lock */

	pthread_mutex_t r_nl_lock;
	struct mk_genl r_nl;			/* r_nl_lock */
	bool r_module;				/* set once by init */
	bool r_tag_warned;			/* r_nl_lock */

	pthread_t r_thread;			/* query server */
	int r_listen_fd;
	int r_stop_fd;				/* eventfd that ends the thread */
	bool r_running;
	char r_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
} mk_reg = {
	.r_lock = PTHREAD_MUTEX_INITIALIZER,
	.r_nl_lock = PTHREAD_MUTEX_INITIALIZER,
	.r_listen_fd = -1,
	.r_stop_fd = -1,
};

/* --- module tagging -------------------------------------------------------- */

/* @s is a @size byte array; the kernel takes at most @max - 1 bytes. */
static void mk_put_str(struct nlmsghdr *nlh, uint16_t type, const char *s, size_t size,
		       size_t max)
{
	char tmp[MAILKTLS_SNI_MAX];
	size_t n = size < max ? size : max;

	if (!*s)
		return;
	mk_strlcpy(tmp, s, n < sizeof(tmp) ? n : sizeof(tmp));
	mnl_attr_put_strz(nlh, type, tmp);
}

static void mk_put_client(struct nlmsghdr *nlh, const struct sockaddr_storage *client)
{
	struct sockaddr_storage ss;
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

	mk_addr_unmap((const struct sockaddr *)client, &ss);
	if (ss.ss_family == AF_INET) {
		mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, 4, &sin->sin_addr);
		mnl_attr_put_u16(nlh, MAILKTLS_A_CLIENT_PORT, ntohs(sin->sin_port));
	} else if (ss.ss_family == AF_INET6) {
		mnl_attr_put(nlh, MAILKTLS_A_CLIENT_ADDR, 16, &sin6->sin6_addr);
		mnl_attr_put_u16(nlh, MAILKTLS_A_CLIENT_PORT, ntohs(sin6->sin6_port));
	}
}

/* Build a TAG request for @fd in @buf (MNL_SOCKET_BUFFER_SIZE bytes). */
static struct nlmsghdr *mk_tag_msg(struct mk_genl *g, void *buf, const struct mk_session *s,
				   int fd)
{
	struct nlmsghdr *nlh = mk_genl_cmd(g, buf, MAILKTLS_CMD_TAG, 0);
	uint8_t ktls = (s->ss_ktls_tx ? MAILKTLS_KTLS_TX : 0) | (s->ss_ktls_rx ? MAILKTLS_KTLS_RX : 0);

	mnl_attr_put_u32(nlh, MAILKTLS_A_FD, (uint32_t)fd);
	mnl_attr_put_u16(nlh, MAILKTLS_A_TLS_VERSION, s->ss_version);
	mnl_attr_put_u16(nlh, MAILKTLS_A_CIPHER_ID, s->ss_cipher_id);
	mnl_attr_put_u32(nlh, MAILKTLS_A_VERIFY_RESULT, (uint32_t)s->ss_verify);
	mnl_attr_put_u8(nlh, MAILKTLS_A_KTLS, ktls);
	mk_put_str(nlh, MAILKTLS_A_CIPHER_NAME, s->ss_cipher, sizeof(s->ss_cipher), MAILKTLS_CIPHER_MAX);
	mk_put_str(nlh, MAILKTLS_A_GROUP, s->ss_group, sizeof(s->ss_group), MAILKTLS_GROUP_MAX);
	mk_put_str(nlh, MAILKTLS_A_SIGALG, s->ss_sigalg, sizeof(s->ss_sigalg), MAILKTLS_SIGALG_MAX);
	mk_put_str(nlh, MAILKTLS_A_SNI, s->ss_sni, sizeof(s->ss_sni), MAILKTLS_SNI_MAX);
	mk_put_str(nlh, MAILKTLS_A_ALPN, s->ss_alpn, sizeof(s->ss_alpn), MAILKTLS_ALPN_MAX);
	mk_put_str(nlh, MAILKTLS_A_CLIENT_SUBJECT, s->ss_client_subject, sizeof(s->ss_client_subject), MAILKTLS_SUBJECT_MAX);
	mk_put_str(nlh, MAILKTLS_A_LISTENER, s->ss_listener, sizeof(s->ss_listener), MAILKTLS_LISTENER_MAX);
	if (s->ss_client_cert)
		mnl_attr_put(nlh, MAILKTLS_A_CLIENT_CERT, 0, NULL);
	mk_put_client(nlh, &s->ss_client);
	return nlh;
}

static void mk_tag_fd(const struct mk_session *s, int fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int err;

	if (fd < 0)
		return;
	pthread_mutex_lock(&mk_reg.r_nl_lock);
	err = mk_genl_talk(&mk_reg.r_nl, mk_tag_msg(&mk_reg.r_nl, buf, s, fd), NULL, NULL);
	if (err && !mk_reg.r_tag_warned) {
		mk_reg.r_tag_warned = true;
		mk_log(LOG_WARNING, "mailktls module: cannot tag sockets: %s (answering on the query socket only)",
		       strerror(-err));
	}
	pthread_mutex_unlock(&mk_reg.r_nl_lock);
}

/* --- registry -------------------------------------------------------------- */

/**
 * mk_registry_init() - set up the registry; probe for the module
 * Return: 0 (a missing module is not an error).
 */
int mk_registry_init(void)
{
	pthread_mutex_lock(&mk_reg.r_nl_lock);
	if (!mk_reg.r_module)
		mk_reg.r_module = mk_genl_open(&mk_reg.r_nl) == 0;
	pthread_mutex_unlock(&mk_reg.r_nl_lock);
	return 0;
}

/**
 * mk_registry_module_present() - was the module found by mk_registry_init()?
 * Return: true when the mailktls family answered.
 */
bool mk_registry_module_present(void)
{
	return mk_reg.r_module;
}

static void mk_reg_addr_pack(union mk_reg_addr *a, const struct sockaddr_storage *ss)
{
	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET)
		memcpy(&a->sin, ss, sizeof(a->sin));
	else if (ss->ss_family == AF_INET6)
		memcpy(&a->sin6, ss, sizeof(a->sin6));
	else
		a->sa.sa_family = ss->ss_family;
}

/* Our backend end, when the caller did not say: what daemons will ask by. */
static void mk_fill_backend(struct mk_reg_entry *e, const struct mk_session *s, int backend_fd)
{
	struct sockaddr_storage ss = s->ss_backend_local;
	socklen_t sl = sizeof(ss);
	struct stat st;

	e->re_backend_inode = s->ss_backend_inode;
	if (backend_fd >= 0 && ss.ss_family == AF_UNSPEC &&
	    getsockname(backend_fd, (struct sockaddr *)&ss, &sl) < 0)
		memset(&ss, 0, sizeof(ss));
	mk_reg_addr_pack(&e->re_backend_local, &ss);
	if (backend_fd >= 0 && !e->re_backend_inode && fstat(backend_fd, &st) == 0)
		e->re_backend_inode = st.st_ino;
}

/* A compact copy of @s (see struct mk_reg_entry); NULL when out of memory. */
static struct mk_reg_entry *mk_reg_entry_new(const struct mk_session *s, int backend_fd)
{
	size_t len[MK_REG_NSTRS], total = 0, i;
	struct mk_reg_entry *e;
	char *p;

	for (i = 0; i < MK_REG_NSTRS; i++) {
		len[i] = strnlen((const char *)s + mk_reg_strs[i].rs_off,
				 mk_reg_strs[i].rs_size - 1);
		total += len[i] + 1;
	}
	e = calloc(1, sizeof(*e) + total);
	if (!e)
		return NULL;
	mk_reg_addr_pack(&e->re_client, &s->ss_client);
	mk_fill_backend(e, s, backend_fd);
	e->re_version = s->ss_version;
	e->re_cipher_id = s->ss_cipher_id;
	e->re_verify = s->ss_verify;
	e->re_client_cert = s->ss_client_cert;
	e->re_ktls_tx = s->ss_ktls_tx;
	e->re_ktls_rx = s->ss_ktls_rx;
	for (p = e->re_strs, i = 0; i < MK_REG_NSTRS; p += len[i++] + 1)
		memcpy(p, (const char *)s + mk_reg_strs[i].rs_off, len[i]);
	return e;
}

/* The @n-th packed string of @e (mk_reg_strs[] order). */
static const char *mk_reg_str(const struct mk_reg_entry *e, size_t n)
{
	const char *p = e->re_strs;

	while (n--)
		p += strlen(p) + 1;
	return p;
}

/* The session back from @e, as far as the answers use it. */
static void mk_reg_entry_expand(const struct mk_reg_entry *e, struct mk_session *s)
{
	const char *p = e->re_strs;
	size_t i;

	memset(s, 0, sizeof(*s));
	memcpy(&s->ss_client, &e->re_client, sizeof(e->re_client));
	memcpy(&s->ss_backend_local, &e->re_backend_local, sizeof(e->re_backend_local));
	s->ss_backend_inode = e->re_backend_inode;
	s->ss_version = e->re_version;
	s->ss_cipher_id = e->re_cipher_id;
	s->ss_verify = e->re_verify;
	s->ss_client_cert = e->re_client_cert;
	s->ss_ktls_tx = e->re_ktls_tx;
	s->ss_ktls_rx = e->re_ktls_rx;
	for (i = 0; i < MK_REG_NSTRS; i++, p += strlen(p) + 1)
		mk_strlcpy((char *)s + mk_reg_strs[i].rs_off, p, mk_reg_strs[i].rs_size);
}

static int mk_reg_grow_locked(void)
{
	struct mk_reg_entry **n;
	size_t cap;

	if (mk_reg.r_n < mk_reg.r_cap)
		return 0;
	cap = mk_reg.r_cap ? mk_reg.r_cap * 2 : 64;
	n = realloc(mk_reg.r_entries, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	mk_reg.r_entries = n;
	mk_reg.r_cap = cap;
	return 0;
}

/**
 * mk_registry_add() - record a connection and tag its sockets in the module
 * @s:          the session
 * @client_fd:  the client's socket (kTLS), or -1
 * @backend_fd: our socket towards the daemon, or -1
 *
 * Return: an id > 0 for mk_registry_remove(), or 0 when out of memory.
 */
uint64_t mk_registry_add(const struct mk_session *s, int client_fd, int backend_fd)
{
	struct mk_reg_entry *e;
	uint64_t id = 0;

	if (mk_reg.r_module) {
		mk_tag_fd(s, client_fd);
		mk_tag_fd(s, backend_fd);
	}
	e = mk_reg_entry_new(s, backend_fd);
	if (!e)
		return 0;

	pthread_mutex_lock(&mk_reg.r_lock);
	if (mk_reg_grow_locked() == 0) {
		id = ++mk_reg.r_next_id;
		e->re_id = id;
		mk_reg.r_entries[mk_reg.r_n++] = e;
	}
	pthread_mutex_unlock(&mk_reg.r_lock);
	if (!id)
		free(e);
	return id;
}

/**
 * mk_registry_remove() - forget a connection (its module tags go with its
 * sockets)
 * @id: from mk_registry_add(); 0 is ignored
 */
void mk_registry_remove(uint64_t id)
{
	struct mk_reg_entry *e = NULL;
	size_t i;

	if (!id)
		return;
	pthread_mutex_lock(&mk_reg.r_lock);
	for (i = 0; i < mk_reg.r_n; i++) {
		if (mk_reg.r_entries[i]->re_id == id) {
			e = mk_reg.r_entries[i];
			mk_reg.r_entries[i] = mk_reg.r_entries[--mk_reg.r_n];
			break;
		}
	}
	pthread_mutex_unlock(&mk_reg.r_lock);
	free(e);
}

/**
 * mk_registry_set_listeners() - remember the listeners for STATUS
 * @cfg: the configuration in force
 */
void mk_registry_set_listeners(const struct mk_config *cfg)
{
	struct mk_reg_listener *l = NULL;
	size_t i, n = cfg ? cfg->cf_nlisteners : 0;

	if (n) {
		l = calloc(n, sizeof(*l));
		if (!l)
			n = 0;
	}
	for (i = 0; i < n; i++) {
		const struct mk_listener_cfg *lc = &cfg->cf_listeners[i];

		mk_strlcpy(l[i].rl_name, lc->lc_name, sizeof(l[i].rl_name));
		mk_strlcpy(l[i].rl_listen, lc->lc_listen.sa_text, sizeof(l[i].rl_listen));
		l[i].rl_protocol = mk_protocol_name(lc->lc_protocol);
		l[i].rl_tls = lc->lc_tls == MK_TLS_STARTTLS ? "starttls" : "implicit";
	}
	pthread_mutex_lock(&mk_reg.r_lock);
	free(mk_reg.r_listeners);
	mk_reg.r_listeners = l;
	mk_reg.r_nlisteners = n;
	pthread_mutex_unlock(&mk_reg.r_lock);
}

/* --- query protocol -------------------------------------------------------- */

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

static bool mk_entry_matches(const struct mk_reg_entry *e, const struct mk_query *q)
{
	switch (q->q_kind) {
	case MK_QUERY_PEER:
		return mk_addr_equal(&e->re_backend_local.sa, (const struct sockaddr *)&q->q_addr);
	case MK_QUERY_ADDR:
	case MK_QUERY_CLAUSE:
		return mk_addr_equal(&e->re_client.sa, (const struct sockaddr *)&q->q_addr);
	case MK_QUERY_INODE:
		return e->re_backend_inode == q->q_inode;
	default:
		return false;
	}
}

static void mk_out_status(struct mk_out *o)
{
	size_t i, txrx = 0;

	pthread_mutex_lock(&mk_reg.r_lock);
	for (i = 0; i < mk_reg.r_n; i++)
		txrx += mk_reg.r_entries[i]->re_ktls_tx && mk_reg.r_entries[i]->re_ktls_rx;
	mk_outf(o, "ok\nmodule=%s\nconnections=%zu\nktls_txrx=%zu\nlisteners=%zu\n",
		mk_reg.r_module ? "yes" : "no", mk_reg.r_n, txrx, mk_reg.r_nlisteners);
	for (i = 0; i < mk_reg.r_nlisteners; i++) {
		const struct mk_reg_listener *l = &mk_reg.r_listeners[i];

		mk_outf(o, "listener=%s %s %s %s\n", l->rl_name, l->rl_listen, l->rl_protocol,
			l->rl_tls);
	}
	pthread_mutex_unlock(&mk_reg.r_lock);
}

/*
 * CLAUSE: the RFC 8314 §4.3 clause alone ("tls TLS_AES_256_GCM_SHA384\n"),
 * or nothing at all for a connection the agent does not know, so that an
 * MTA can put the answer into its Received header as it is.
 */
static size_t mk_out_clause(struct mk_out *o, const struct mk_query *q)
{
	struct mailktls_info mi = { 0 };
	char clause[96];
	bool found = false;
	size_t i;

	pthread_mutex_lock(&mk_reg.r_lock);
	for (i = 0; i < mk_reg.r_n; i++) {
		const struct mk_reg_entry *e = mk_reg.r_entries[i];

		if (mk_entry_matches(e, q)) {
			mi.mi_cipher_id = e->re_cipher_id;
			mk_strlcpy(mi.mi_cipher, mk_reg_str(e, MK_REG_STR_CIPHER),
				   sizeof(mi.mi_cipher));
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&mk_reg.r_lock);
	if (found && mailktls_received_clause(&mi, clause, sizeof(clause)) > 0)
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
 * Return: the answer's length.
 */
size_t mk_query_answer(const char *line, size_t len, char *out, size_t outlen)
{
	struct mk_out o = { .o_buf = out, .o_len = outlen };
	struct mk_session *s = NULL;
	struct mk_query q;
	size_t i;
	int err;

	if (!outlen)
		return 0;
	out[0] = '\0';
	err = mk_query_parse(line, len, &q);
	if (!err && q.q_kind == MK_QUERY_CLAUSE)
		return mk_out_clause(&o, &q);
	if (err && len >= 7 && !memcmp(line, "CLAUSE ", 7))
		return 0;	/* CLAUSE answers a clause or nothing */
	if (err) {
		mk_outf(&o, "error %s\n\n", err == -E2BIG ? "toolong" : "syntax");
		return o.o_pos;
	}
	if (q.q_kind == MK_QUERY_STATUS) {
		mk_out_status(&o);
		mk_outf(&o, "\n");
		return o.o_pos;
	}
	s = malloc(sizeof(*s));
	pthread_mutex_lock(&mk_reg.r_lock);
	for (i = 0; s && i < mk_reg.r_n; i++) {
		if (mk_entry_matches(mk_reg.r_entries[i], &q)) {
			mk_reg_entry_expand(mk_reg.r_entries[i], s);
			break;
		}
	}
	pthread_mutex_unlock(&mk_reg.r_lock);
	if (s && i < mk_reg.r_n)
		mk_out_session(&o, s);
	else
		mk_outf(&o, s ? "error notfound\n" : "error nomem\n");
	mk_outf(&o, "\n");
	free(s);
	return o.o_pos;
}

/* --- query server ---------------------------------------------------------- */

static int64_t mk_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read one line within MK_QUERY_READ_MS; Return: its length or -1. */
static ssize_t mk_read_line(int fd, char *buf, size_t len)
{
	int64_t deadline = mk_now_ms() + MK_QUERY_READ_MS;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t got = 0;
	ssize_t n;
	char *nl;

	while (got < len) {
		int left = (int)(deadline - mk_now_ms());

		if (left <= 0 || poll(&pfd, 1, left) <= 0)
			return -1;
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return -1;
		nl = memchr(buf + got, '\n', (size_t)n);
		got += (size_t)n;
		if (nl)
			return nl - buf;
	}
	return (ssize_t)len;	/* too long: the parser says so */
}

static void mk_serve_client(int fd)
{
	char line[MAILKTLS_QUERY_LINE_MAX + 1];
	char *ans = malloc(MAILKTLS_QUERY_ANSWER_MAX);
	struct timeval tv = { .tv_sec = 1 };
	ssize_t n;
	size_t alen;

	if (!ans)
		return;
	n = mk_read_line(fd, line, sizeof(line));
	if (n >= 0) {
		alen = mk_query_answer(line, (size_t)n, ans, MAILKTLS_QUERY_ANSWER_MAX);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (send(fd, ans, alen, MSG_NOSIGNAL) < 0)
			mk_log(LOG_DEBUG, "query socket: send: %s", strerror(errno));
	}
	free(ans);
}

static void *mk_query_thread(void *arg)
{
	struct pollfd pfd[2] = {
		{ .fd = mk_reg.r_listen_fd, .events = POLLIN },
		{ .fd = mk_reg.r_stop_fd, .events = POLLIN },
	};
	int fd;

	for (;;) {
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(mk_reg.r_listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		mk_serve_client(fd);
		close(fd);
	}
	return NULL;
}

static int mk_bind_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, err;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	/* A socket left by a previous run; never remove anything else. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 64) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	/* Daemons in the socket's group may ask; others may not. */
	chmod(path, 0660);
	return fd;
}

/* /run/mailktls is not there after boot: create the last level only. */
static int mk_mkdir_parent(const char *path)
{
	char dir[sizeof(mk_reg.r_path)];
	char *slash;

	mk_strlcpy(dir, path, sizeof(dir));
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return -ENOENT;
	*slash = '\0';
	return mkdir(dir, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

/**
 * mk_query_server_start() - serve the query socket at @path on a thread
 * @path: where to bind; a missing last directory level is created (0755)
 *
 * Return: 0, -EALREADY, or a negative errno.
 */
int mk_query_server_start(const char *path)
{
	int err;

	if (mk_reg.r_running)
		return -EALREADY;
	mk_reg.r_stop_fd = eventfd(0, EFD_CLOEXEC);
	if (mk_reg.r_stop_fd < 0)
		return -errno;
	mk_reg.r_listen_fd = mk_bind_unix(path);
	if (mk_reg.r_listen_fd == -ENOENT && mk_mkdir_parent(path) == 0)
		mk_reg.r_listen_fd = mk_bind_unix(path);
	if (mk_reg.r_listen_fd < 0) {
		err = mk_reg.r_listen_fd;
		goto out_stop;
	}
	mk_strlcpy(mk_reg.r_path, path, sizeof(mk_reg.r_path));
	err = -pthread_create(&mk_reg.r_thread, NULL, mk_query_thread, NULL);
	if (err)
		goto out_listen;
	mk_reg.r_running = true;
	return 0;

out_listen:
	close(mk_reg.r_listen_fd);
	unlink(path);
	mk_reg.r_listen_fd = -1;
out_stop:
	close(mk_reg.r_stop_fd);
	mk_reg.r_stop_fd = -1;
	return err;
}

/**
 * mk_query_server_stop() - stop the query thread and remove the socket
 */
void mk_query_server_stop(void)
{
	uint64_t one = 1;

	if (!mk_reg.r_running)
		return;
	if (write(mk_reg.r_stop_fd, &one, sizeof(one)) != sizeof(one))
		mk_log(LOG_ERR, "query socket: cannot wake the query thread");
	pthread_join(mk_reg.r_thread, NULL);
	close(mk_reg.r_listen_fd);
	close(mk_reg.r_stop_fd);
	unlink(mk_reg.r_path);
	mk_reg.r_listen_fd = mk_reg.r_stop_fd = -1;
	mk_reg.r_running = false;
}
