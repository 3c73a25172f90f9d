/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The agent's local services (the query socket, the metrics endpoint): one
 * way to bind their sockets, one rule for unix sockets, and one way to run
 * each on a thread of its own that the main thread starts and stops.
 */
#ifndef MAILKTLS_LISTEN_SOCK_H
#define MAILKTLS_LISTEN_SOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>

/*
 * A local service: its listening socket, and the eventfd that ends its
 * thread. Written by the main thread before the thread starts and after it
 * was joined; the thread only reads the two descriptors.
 */
struct mk_service {
	const char *se_name;			/* for a log line: "metrics" */
	pthread_t se_thread;
	bool se_running;
	int se_listen_fd;
	int se_stop_fd;				/* readable: the thread returns */
	char se_path[sizeof(((struct sockaddr_un *)0)->sun_path)];	/* unix only */
};

#define MK_SERVICE_INIT(name) { .se_name = (name), .se_listen_fd = -1, .se_stop_fd = -1 }

int mk_service_open(struct mk_service *se, const struct sockaddr *sa, socklen_t len,
		    int backlog);
int mk_service_run(struct mk_service *se, void *(*fn)(void *arg));
void mk_service_close(struct mk_service *se);
void mk_service_stop(struct mk_service *se);

#endif
