// SPDX-License-Identifier: GPL-2.0
/*
 * Module tagging: one TAG request per socket to the mailktls genetlink
 * family, carrying what the session negotiated.
 *
 * Each worker has its own netlink socket (struct mk_reg_tagger) and sends
 * a connection's two TAG requests in one non-blocking sendmsg(), without
 * NLM_F_ACK: the kernel handles a request to its own family inside that
 * sendmsg() (netlink_unicast_kernel), so the tag is there when it returns,
 * and answers only a refusal, which waits in the socket's receive queue
 * until the worker's ring reports it readable and
 * mk_registry_tagger_input() reads it.  Nothing is queued for later, so a
 * socket closed right after (its descriptor number reused by the next
 * accept) can never be tagged by a late request.  There is no UNTAG: the
 * module's tag dies with its socket.
 *
 * Nothing is lost silently.  A send that fails (the kernel out of memory:
 * ENOBUFS, ENOMEM) counts its requests as unsent; a refusal counts as
 * refused; refusals that overflow the receive queue make the next read
 * fail with ENOBUFS, counted as lost (how many is unknown).  The first of
 * these in the process is logged, as a warning; the counts are logged
 * when a worker stops.  A tag that did not happen costs the daemons the
 * module's answer for that socket only: the query socket still answers.
 *
 * Locking: mk_tag.t_lock serialises the shared socket, which threads
 * without a tagger use (and wait on).  t_module and t_family are written
 * once, under it, before any worker starts.  A tagger belongs to one
 * thread.  The counters are atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include "mailktls.h"
#include "log.h"
#include "registry.h"
#include "registry_tag.h"
#include "mk_addr.h"

/* A TAG request: its attributes add up to well under 1 KiB. */
#define MK_TAG_MSG_MAX 2048

static struct {
	pthread_mutex_t t_lock;
	struct mk_genl t_nl;		/* t_lock */
	bool t_module;			/* set once by mk_registry_tag_open() */
	uint16_t t_family;		/* set once by mk_registry_tag_open() */
	atomic_bool t_warned;
	atomic_uint_fast64_t t_refused;
	atomic_uint_fast64_t t_unsent;
	atomic_uint_fast64_t t_lost;
} mk_tag = {
	.t_lock = PTHREAD_MUTEX_INITIALIZER,
};

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

/* Build a TAG request for @fd in @buf (MK_TAG_MSG_MAX bytes). */
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

/*
 * @n tags did not happen, for @err: count them in the process's @all and,
 * with a tagger, in its @own; the process's first is logged.
 */
static void mk_tag_failed(atomic_uint_fast64_t *all, uint64_t *own, uint64_t n, int err)
{
	atomic_fetch_add_explicit(all, n, memory_order_relaxed);
	if (own)
		*own += n;
	if (!atomic_exchange(&mk_tag.t_warned, true))
		mk_log(LOG_WARNING, "mailktls module: cannot tag sockets: %s (answering on the query socket only)",
		       strerror(err));
}

/* Threads without a tagger: one request at a time, waiting for its ack. */
static void mk_tag_shared(const struct mk_session *s, int fd)
{
	char buf[MK_TAG_MSG_MAX];
	int err;

	if (fd < 0)
		return;
	pthread_mutex_lock(&mk_tag.t_lock);
	err = mk_genl_talk(&mk_tag.t_nl, mk_tag_msg(&mk_tag.t_nl, buf, s, fd), NULL, NULL);
	pthread_mutex_unlock(&mk_tag.t_lock);
	if (err)
		mk_tag_failed(&mk_tag.t_refused, NULL, 1, -err);
}

/* Both requests in one datagram; the kernel handles them one by one. */
static void mk_tag_send(struct mk_reg_tagger *t, const struct mk_session *s, int client_fd,
			int backend_fd)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	char buf[2 * MK_TAG_MSG_MAX];
	struct nlmsghdr *nlh;
	char *end = buf;
	uint64_t n = 0;

	if (client_fd >= 0) {
		nlh = mk_tag_msg(&t->tg_nl, end, s, client_fd);
		end = mnl_nlmsg_get_payload_tail(nlh);
		n++;
	}
	if (backend_fd >= 0) {
		nlh = mk_tag_msg(&t->tg_nl, end, s, backend_fd);
		end = mnl_nlmsg_get_payload_tail(nlh);
		n++;
	}
	if (n && sendto(mnl_socket_get_fd(t->tg_nl.g_nl), buf, (size_t)(end - buf), MSG_DONTWAIT,
			(struct sockaddr *)&kernel, sizeof(kernel)) < 0)
		mk_tag_failed(&mk_tag.t_unsent, &t->tg_stats.ts_unsent, n, errno);
}

/**
 * mk_registry_tag() - tag a connection's sockets in the module
 * @t:          the calling worker's tagger; NULL (or one without a socket):
 *              the shared socket, waiting for each answer
 * @s:          what was negotiated
 * @client_fd:  the client's socket, or -1
 * @backend_fd: our socket towards the daemon, or -1
 *
 * Does nothing without the module.  Never blocks with a tagger: a refusal
 * arrives later, for mk_registry_tagger_input().
 */
void mk_registry_tag(struct mk_reg_tagger *t, const struct mk_session *s, int client_fd,
		     int backend_fd)
{
	if (!mk_tag.t_module)
		return;
	if (t && t->tg_nl.g_nl) {
		mk_tag_send(t, s, client_fd, backend_fd);
		return;
	}
	mk_tag_shared(s, client_fd);
	mk_tag_shared(s, backend_fd);
}

/* One datagram of answers: the errors among them are refusals. */
static void mk_tag_answers(struct mk_reg_tagger *t, const char *buf, size_t len)
{
	const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
	int left = (int)len;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
		const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);

		if (nlh->nlmsg_type == NLMSG_ERROR &&
		    nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(*e)) && e->error)
			mk_tag_failed(&mk_tag.t_refused, &t->tg_stats.ts_refused, 1, -e->error);
	}
}

/**
 * mk_registry_tagger_input() - read the refusals that arrived
 * @t: an open tagger
 *
 * Reads until the socket is empty, never waiting.  Each refusal is
 * counted; answers the kernel dropped because the queue was full show as
 * one ENOBUFS, counted as lost.
 */
void mk_registry_tagger_input(struct mk_reg_tagger *t)
{
	char buf[MK_GENL_BUF];
	ssize_t n;
	int i;

	if (!t->tg_nl.g_nl)
		return;
	/* Bounded: a ring turn must not be spent here if answers keep coming. */
	for (i = 0; i < 64; i++) {
		n = recv(mnl_socket_get_fd(t->tg_nl.g_nl), buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0) {
			mk_tag_answers(t, buf, (size_t)n);
		} else if (n < 0 && errno == ENOBUFS) {
			mk_tag_failed(&mk_tag.t_lost, &t->tg_stats.ts_lost, 1, ENOBUFS);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else {
			break;
		}
	}
}

/**
 * mk_registry_tagger_open() - a worker's own netlink socket
 * @t: the tagger to set up
 *
 * The module was probed once by mk_registry_tag_open(); this only opens a
 * socket and takes the family id found then.
 *
 * Return: 0; -ENOENT without the module (@t then tags nothing), or the
 * negative errno of socket() or bind().
 */
int mk_registry_tagger_open(struct mk_reg_tagger *t)
{
	struct mk_genl *g = &t->tg_nl;
	int one = 1, err;

	memset(t, 0, sizeof(*t));
	if (!mk_tag.t_module)
		return -ENOENT;
	err = mk_genl_socket(g, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (err)
		return err;
	/* A refusal need not quote the request: more of them fit the queue. */
	setsockopt(mnl_socket_get_fd(g->g_nl), SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	g->g_family = mk_tag.t_family;
	return 0;
}

/**
 * mk_registry_tagger_close() - close a worker's netlink socket
 * @t: the tagger; one never opened (zeroed) or closed already is left alone
 */
void mk_registry_tagger_close(struct mk_reg_tagger *t)
{
	mk_genl_close(&t->tg_nl);
}

/**
 * mk_registry_tagger_fd() - the socket a worker polls for refusals
 * @t: the tagger
 *
 * Return: its descriptor, or -1 when it has none.
 */
int mk_registry_tagger_fd(const struct mk_reg_tagger *t)
{
	return t->tg_nl.g_nl ? mnl_socket_get_fd(t->tg_nl.g_nl) : -1;
}

/**
 * mk_registry_tag_stats() - the tags that did not happen, since start
 * @st: receives the counts
 */
void mk_registry_tag_stats(struct mk_reg_tag_stats *st)
{
	st->ts_refused = atomic_load_explicit(&mk_tag.t_refused, memory_order_relaxed);
	st->ts_unsent = atomic_load_explicit(&mk_tag.t_unsent, memory_order_relaxed);
	st->ts_lost = atomic_load_explicit(&mk_tag.t_lost, memory_order_relaxed);
}

/**
 * mk_registry_tag_open() - look for the module, once
 */
void mk_registry_tag_open(void)
{
	pthread_mutex_lock(&mk_tag.t_lock);
	if (!mk_tag.t_module && mk_genl_open(&mk_tag.t_nl) == 0) {
		mk_tag.t_family = mk_tag.t_nl.g_family;
		mk_tag.t_module = true;
	}
	pthread_mutex_unlock(&mk_tag.t_lock);
}

/**
 * mk_registry_module_present() - was the module found?
 * Return: true when the mailktls family answered mk_registry_tag_open().
 */
bool mk_registry_module_present(void)
{
	return mk_tag.t_module;
}
