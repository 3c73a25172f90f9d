// SPDX-License-Identifier: GPL-2.0
/*
 * Module tagging: one TAG request per socket to the mailktls genetlink
 * family, carrying what the session negotiated.
 *
 * Locking: mk_tag.t_lock serialises the one netlink socket, which all
 * workers share; t_module is written once, under it, before any worker
 * runs.
 */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "mailktls.h"
#include "log.h"
#include "registry.h"
#include "registry_tag.h"
#include "mk_addr.h"
#include "mk_genl.h"

static struct {
	pthread_mutex_t t_lock;
	struct mk_genl t_nl;		/* t_lock */
	bool t_module;			/* set once by mk_registry_tag_open() */
	bool t_warned;			/* t_lock */
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

/**
 * mk_registry_tag() - tag one socket in the module
 * @s:  what was negotiated
 * @fd: the socket, or -1 for none
 *
 * Does nothing without the module.  A refusal is logged once: the query
 * socket still answers for the connection.
 */
void mk_registry_tag(const struct mk_session *s, int fd)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int err;

	if (fd < 0 || !mk_tag.t_module)
		return;
	pthread_mutex_lock(&mk_tag.t_lock);
	err = mk_genl_talk(&mk_tag.t_nl, mk_tag_msg(&mk_tag.t_nl, buf, s, fd), NULL, NULL);
	if (err && !mk_tag.t_warned) {
		mk_tag.t_warned = true;
		mk_log(LOG_WARNING, "mailktls module: cannot tag sockets: %s (answering on the query socket only)",
		       strerror(-err));
	}
	pthread_mutex_unlock(&mk_tag.t_lock);
}

/**
 * mk_registry_tag_open() - look for the module, once
 */
void mk_registry_tag_open(void)
{
	pthread_mutex_lock(&mk_tag.t_lock);
	if (!mk_tag.t_module)
		mk_tag.t_module = mk_genl_open(&mk_tag.t_nl) == 0;
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
