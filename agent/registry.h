/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which TLS each relayed connection negotiated, for daemons that ask.
 *
 * Two ways to answer: the mailktls module (the agent tags the client and
 * backend sockets; any process can then ask the kernel about a socket it
 * holds), and the agent's own query socket (a unix socket answered from the
 * registry kept here), for hosts without the module.
 *
 * Workers add and remove entries; the query thread reads them. The registry
 * has one mutex; entries are copied in and out, never shared.
 */
#ifndef MAILKTLS_REGISTRY_H
#define MAILKTLS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "session.h"

/**
 * mk_registry_init() - set up the registry; probe for the module
 * Return: 0, or -ENOMEM.
 */
int mk_registry_init(void);

/* Is the mailktls module loaded and answering? (probed at init) */
bool mk_registry_module_present(void);

/**
 * mk_registry_add() - record a connection whose TLS is established, and tag
 * @client_fd and @backend_fd in the module when it is present
 * Return: an id > 0 for mk_registry_remove(), or 0 when out of memory (the
 * connection works on, it just cannot be queried).
 */
uint64_t mk_registry_add(const struct mk_session *s, int client_fd, int backend_fd);

void mk_registry_remove(uint64_t id);

/* Listener names and ports, for "mailktlsctl status". */
void mk_registry_set_listeners(const struct mk_config *cfg);

/**
 * mk_query_server_start() - serve the query socket at @path on a thread
 * Return: 0, or negative errno (bind failure, ...).
 */
int mk_query_server_start(const char *path);
void mk_query_server_stop(void);


/* One parsed query-socket request (protocol: include/mailktls.h). */
enum mk_query_kind { MK_QUERY_PEER, MK_QUERY_INODE, MK_QUERY_ADDR, MK_QUERY_STATUS, MK_QUERY_CLAUSE };

struct mk_query {
	enum mk_query_kind q_kind;
	struct sockaddr_storage q_addr;	/* PEER, ADDR, CLAUSE */
	uint64_t q_inode;		/* INODE */
};

/**
 * mk_query_parse() - parse one request line (fuzz target)
 * @line: the bytes, without the "\n"; need not be NUL-terminated
 * @len:  their number
 * @q:    the request
 * Return: 0, -EINVAL on a syntax error, -E2BIG when longer than the limit.
 */
int mk_query_parse(const char *line, size_t len, struct mk_query *q);

/**
 * mk_query_answer() - the full answer to one request line
 * @line, @len: as for mk_query_parse()
 * @out:    receives the answer text, NUL-terminated
 * @outlen: size of @out (MAILKTLS_QUERY_ANSWER_MAX is always enough)
 * Return: the answer's length.
 */
size_t mk_query_answer(const char *line, size_t len, char *out, size_t outlen);

#endif
