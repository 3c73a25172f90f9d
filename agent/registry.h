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

#endif
