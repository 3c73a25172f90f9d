/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tagging sockets in mailktls.ko over its generic netlink family, for the
 * entry table (registry.c): the kernel then answers for them itself.
 */
#ifndef MAILKTLS_REGISTRY_TAG_H
#define MAILKTLS_REGISTRY_TAG_H

#include "session.h"

/*
 * Open the netlink socket once; later calls do nothing.  A missing module
 * leaves mk_registry_module_present() false.
 */
void mk_registry_tag_open(void);

/* Tag @fd (-1: nothing) with @s; warns once when the module refuses. */
void mk_registry_tag(const struct mk_session *s, int fd);

#endif
