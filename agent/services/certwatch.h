/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Certificate renewal without a signal: inotify on the directories of every
 * certificate and key file, so that when certbot or dehydrated replaces a
 * file (they write elsewhere and rename over, or swap a symlink) the main
 * thread reloads, as on SIGHUP. Owned by the main thread alone.
 */
#ifndef MAILKTLS_CERTWATCH_H
#define MAILKTLS_CERTWATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct mk_certwatch {
	int cw_fd;			/* inotify, non-blocking; -1 when unavailable */
	int *cw_wds;			/* one watch per directory */
	size_t cw_nwds;
	char (*cw_names)[256];		/* base names of the watched files */
	size_t cw_nnames;
};

/**
 * mk_certwatch_init() - open the inotify instance
 * @cw: the watcher
 *
 * Return: 0, or a negative errno (the agent then works on, reloading on
 * SIGHUP only).
 */
int mk_certwatch_init(struct mk_certwatch *cw);

/**
 * mk_certwatch_set() - watch the certificate and key files of @cfg
 * @cw:  the watcher
 * @cfg: the configuration in force; earlier watches are dropped
 *
 * Return: the number of directories watched, or a negative errno.
 */
int mk_certwatch_set(struct mk_certwatch *cw, const struct mk_config *cfg);

/**
 * mk_certwatch_changed() - read the pending events
 * @cw: the watcher
 *
 * Return: true when a watched file was written, renamed, replaced or removed.
 */
bool mk_certwatch_changed(struct mk_certwatch *cw);

void mk_certwatch_free(struct mk_certwatch *cw);

#endif
