/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's query socket (protocol: include/mailktls.h), for daemons on
 * hosts without the module: query_proto.c parses and answers one request
 * line from the entry table (registry.h), query_server.c serves the unix
 * socket.
 *
 * The server is one thread with one epoll set: every client socket is
 * non-blocking, so a slow or silent client never holds up another.  Each
 * client has a buffer of one request line and a deadline; when
 * MK_QUERY_CLIENTS_MAX are connected, the oldest is closed for the next.
 */
#ifndef MAILKTLS_QUERY_H
#define MAILKTLS_QUERY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Clients connected at once; the oldest goes first when one more comes. */
#define MK_QUERY_CLIENTS_MAX 256
/* From accept to the last byte of the answer (the protocol allows 2 s). */
#define MK_QUERY_CLIENT_MS 2000

/**
 * mk_query_server_start() - serve the query socket at @path on a thread
 * Return: 0, -EALREADY, or negative errno (bind failure, ...).
 */
int mk_query_server_start(const char *path);

/* Stop the thread, close every client, remove the socket. */
void mk_query_server_stop(void);

/* One parsed query-socket request. */
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
 * Return: the answer's length; 0 for a CLAUSE that has no answer.
 */
size_t mk_query_answer(const char *line, size_t len, char *out, size_t outlen);

#endif
