/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which TLS each relayed connection negotiated, for daemons that ask.
 *
 * Two ways to answer: the mailktls module (the agent tags the client and
 * backend sockets; any process can then ask the kernel about a socket it
 * holds; registry_tag.c), and the agent's own query socket (query.h),
 * answered from the entry table kept here, for hosts without the module.
 *
 * Workers add and remove entries; the query server looks them up.  Entries
 * are copied in and out, never shared, and found in O(1) by client
 * address, by the agent's backend-local address and by backend inode.
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
 * mk_registry_init() - set up the entry table; probe for the module
 * Return: 0, or -ENOMEM (a missing module is not an error).
 */
int mk_registry_init(void);

/**
 * mk_registry_module_present() - was the module found by mk_registry_init()?
 * Return: true when the mailktls family answered.
 */
bool mk_registry_module_present(void);

/**
 * mk_registry_add() - record a connection whose TLS is established, and tag
 * @client_fd and @backend_fd in the module when it is present
 * Return: an id > 0 for mk_registry_remove(), or 0 when out of memory (the
 * connection works on, it just cannot be queried).
 */
uint64_t mk_registry_add(const struct mk_session *s, int client_fd, int backend_fd);

/* Forget a connection, in O(1); 0 and ids already removed are ignored. */
void mk_registry_remove(uint64_t id);

/*
 * A worker's own part of the registry: a shard of the entry table (the
 * worker adds and removes there under a lock no other worker takes) and a
 * netlink socket that tags without waiting.  Opened and closed on the
 * worker's thread, which it binds: mk_registry_add() on that thread uses
 * it.  Threads without one share shard 0 and a socket under a mutex.
 */
struct mk_reg_worker;

/**
 * mk_registry_worker_open() - bind the calling worker thread to its shard
 * and open its netlink socket (when the module is there)
 * @id: the worker's number
 * Return: the binding, or NULL when out of memory (shard 0 then).
 */
struct mk_reg_worker *mk_registry_worker_open(unsigned int id);

/**
 * mk_registry_worker_fd() - what to poll for the module's answers
 * Return: a descriptor to poll for POLLIN, then call
 * mk_registry_worker_input(); -1 when there is none.
 */
int mk_registry_worker_fd(const struct mk_reg_worker *rw);

/* Read the module's answers that arrived (refusals), never blocking. */
void mk_registry_worker_input(struct mk_reg_worker *rw);

/* Log this worker's untagged count, close its socket, unbind the thread. */
void mk_registry_worker_close(struct mk_reg_worker *rw);

/* Which address a lookup is by. */
enum mk_reg_by {
	MK_REG_BY_CLIENT,	/* the MUA's address and port */
	MK_REG_BY_BACKEND,	/* our end towards the daemon (its peer) */
};

/**
 * mk_registry_find_addr() - the newest connection with this address
 * @by:  which address of the connection
 * @sa:  AF_INET or AF_INET6 (IPv4-mapped IPv6 is IPv4); anything else
 *       matches nothing
 * @out: the session as far as the registry keeps it (client, backend
 *       address and inode, version, cipher, group, sigalg, SNI, ALPN,
 *       client subject, verify, kTLS)
 * Return: 0, or -ENOENT.
 */
int mk_registry_find_addr(enum mk_reg_by by, const struct sockaddr *sa, struct mk_session *out);

/**
 * mk_registry_find_inode() - the newest connection whose backend socket has
 * inode @inode
 * Return: 0, or -ENOENT (always for inode 0).
 */
int mk_registry_find_inode(uint64_t inode, struct mk_session *out);

struct mk_reg_counts {
	size_t rc_connections;
	size_t rc_ktls_txrx;		/* kTLS both ways */
};

/* How many connections there are, without walking them. */
void mk_registry_counts(struct mk_reg_counts *c);

/* A listener as "mailktlsctl status" shows it. */
struct mk_reg_listener {
	char rl_name[MK_NAME_MAX];
	char rl_listen[128];
	const char *rl_protocol;	/* static strings */
	const char *rl_tls;
};

/* Listener names and ports, for "mailktlsctl status". */
void mk_registry_set_listeners(const struct mk_config *cfg);

/**
 * mk_registry_each_listener() - call @fn for every listener, in config order
 * @fn:  called with the listener lock held: must not call back in here
 * @arg: passed to @fn
 * Return: the number of listeners.
 */
size_t mk_registry_each_listener(void (*fn)(const struct mk_reg_listener *l, void *arg), void *arg);

/*
 * The query socket answers from this table, and what starts the agent
 * starts both: its API (mk_query_server_start() ...) comes with this header.
 */
#include "query.h"

#endif
