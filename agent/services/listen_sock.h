/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Listening sockets of the agent's local services (the query socket, the
 * metrics endpoint): one way to bind them, one rule for unix sockets.
 */
#ifndef MAILKTLS_LISTEN_SOCK_H
#define MAILKTLS_LISTEN_SOCK_H

#include <sys/socket.h>

int mk_listen_stream(const struct sockaddr *sa, socklen_t len, int backlog);

#endif
