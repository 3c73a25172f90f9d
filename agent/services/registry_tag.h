/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tagging sockets in mailktls.ko over its generic netlink family, for the
 * entry table (registry.c): the kernel then answers for them itself.
 *
 * Each worker tags through its own netlink socket (struct mk_reg_tagger),
 * without waiting for an answer: a request to a kernel netlink family is
 * handled inside the sendmsg() that carries it, so the tag exists when the
 * send returns, and only refusals come back, later, as NLMSG_ERROR messages
 * the worker reads when its ring says the socket is readable.  Threads
 * without a tagger of their own share one socket, under a mutex, and wait
 * for the answer.
 */
#ifndef MAILKTLS_REGISTRY_TAG_H
#define MAILKTLS_REGISTRY_TAG_H

#include <stdbool.h>
#include <stdint.h>

#include "mk_genl.h"
#include "session.h"

/* Counts of tags that did not happen. */
struct mk_reg_tag_stats {
	uint64_t ts_refused;		/* the module answered with an error */
	uint64_t ts_unsent;		/* the request could not be sent */
	uint64_t ts_lost;		/* times answers were dropped (ENOBUFS) */
};

/* One worker's netlink socket: used by that worker's thread alone. */
struct mk_reg_tagger {
	struct mk_genl tg_nl;		/* g_nl NULL: none (no module) */
	struct mk_reg_tag_stats tg_stats;	/* this tagger's, since it opened */
};

/*
 * Look for the module once, on the shared socket; later calls do nothing.
 * A missing module leaves mk_registry_module_present() false.
 */
void mk_registry_tag_open(void);

/**
 * mk_registry_tagger_open() - a worker's own netlink socket
 * @t: the tagger to set up
 *
 * Return: 0; -ENOENT without the module (@t then tags nothing), or the
 * negative errno of the socket calls.
 */
int mk_registry_tagger_open(struct mk_reg_tagger *t);

/* Close @t's socket; a closed or never opened tagger is left alone. */
void mk_registry_tagger_close(struct mk_reg_tagger *t);

/* The socket to poll for refusals, or -1 when there is none. */
int mk_registry_tagger_fd(const struct mk_reg_tagger *t);

/**
 * mk_registry_tagger_input() - read the refusals that arrived, without
 * blocking; logs the first of the process once and counts every one
 * @t: an open tagger
 */
void mk_registry_tagger_input(struct mk_reg_tagger *t);

/**
 * mk_registry_tag() - tag a connection's sockets with @s
 * @t:          the calling worker's tagger, or NULL for the shared socket
 * @s:          what was negotiated
 * @client_fd:  -1 for none
 * @backend_fd: -1 for none
 *
 * Does nothing without the module.
 */
void mk_registry_tag(struct mk_reg_tagger *t, const struct mk_session *s, int client_fd,
		     int backend_fd);

/* Fill @st with the process's counts so far (all taggers, the shared socket). */
void mk_registry_tag_stats(struct mk_reg_tag_stats *st);

#endif
