/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The state every worker shares: the configuration in force and the TLS
 * policy of each listener. A SIGHUP builds a new runtime and publishes it;
 * workers pick it up for new connections while established ones keep the
 * policy they started with (each connection holds a reference).
 */
#ifndef MAILKTLS_RUNTIME_H
#define MAILKTLS_RUNTIME_H

#include <stdatomic.h>
#include <stdbool.h>

#include "config.h"
#include "tls_policy.h"

struct mk_runtime {
	atomic_int rt_refs;
	struct mk_config *rt_cfg;
	struct mk_tls_policy *rt_policies[MK_MAX_LISTENERS];	/* by listener index */
	bool rt_ktls;			/* kernel TLS is used for new connections */
};

/**
 * mk_runtime_build() - load @path and build every listener's TLS policy
 * @err: "FILE:LINE: message" on failure
 * Return: the runtime, or NULL with @err set.
 */
struct mk_runtime *mk_runtime_build(const char *path, char *err, size_t errlen);

/* The runtime in force now, with a reference the caller must put. */
struct mk_runtime *mk_runtime_current(void);
/* Make @rt the one in force (takes over the caller's reference). */
void mk_runtime_publish(struct mk_runtime *rt);
void mk_runtime_get(struct mk_runtime *rt);
void mk_runtime_put(struct mk_runtime *rt);

/* Index of the listener called @name in @rt, or -1. */

#endif
