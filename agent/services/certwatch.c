// SPDX-License-Identifier: GPL-2.0
/*
 * Watching certificate and key files for renewal.
 *
 * A file replaced by rename is a new inode, so a watch on the file itself
 * would see nothing of the next renewal: the directory is watched instead,
 * and an event counts when it names one of the files. For a symlink (as in
 * /etc/letsencrypt/live/NAME/) the directory of the link and the directory
 * of its target are both watched: certbot swaps the link, an operator may
 * rewrite the target in place.
 *
 * Every watch the agent removes itself (each reload sets the watches
 * anew) is answered by the kernel with IN_IGNORED: only an IN_IGNORED for a
 * watch still in the set means the directory went away. Taking the others
 * for changes would make each reload schedule the next one.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "certwatch.h"

/* IN_MOVE_SELF and IN_DELETE_SELF: the directory itself was moved away or
 * removed (replaced by another), so the watch no longer sees the path. */
#define MK_CW_EVENTS (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | \
		      IN_DELETE | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF | IN_ONLYDIR)

/**
 * mk_certwatch_init() - open the inotify instance
 * @cw: the watcher
 *
 * Return: 0, or a negative errno.
 */
int mk_certwatch_init(struct mk_certwatch *cw)
{
	memset(cw, 0, sizeof(*cw));
	cw->cw_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	return cw->cw_fd < 0 ? -errno : 0;
}

static void certwatch_clear(struct mk_certwatch *cw)
{
	size_t i;

	for (i = 0; i < cw->cw_nwds; i++)
		inotify_rm_watch(cw->cw_fd, cw->cw_wds[i]);
	free(cw->cw_wds);
	free(cw->cw_names);
	cw->cw_wds = NULL;
	cw->cw_names = NULL;
	cw->cw_nwds = cw->cw_nnames = 0;
}

/* Watch the directory of @path and remember its base name. */
static int certwatch_add(struct mk_certwatch *cw, const char *path, size_t max)
{
	char dir[PATH_MAX], base[PATH_MAX];
	size_t i;
	int wd;

	if (strlen(path) >= sizeof(dir))
		return -ENAMETOOLONG;
	strcpy(dir, path);
	strcpy(base, path);
	wd = inotify_add_watch(cw->cw_fd, dirname(dir), MK_CW_EVENTS);
	/* A directory that is gone now is looked for again at the next
	 * reload or retry; the others are still watched. */
	if (wd < 0)
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	/* Adding a directory twice returns the same descriptor. */
	for (i = 0; i < cw->cw_nwds && cw->cw_wds[i] != wd; i++)
		;
	if (i == cw->cw_nwds && cw->cw_nwds < max)
		cw->cw_wds[cw->cw_nwds++] = wd;
	if (cw->cw_nnames < max && strlen(basename(base)) < sizeof(cw->cw_names[0]))
		strcpy(cw->cw_names[cw->cw_nnames++], basename(base));
	return 0;
}

/* The file as written and, when it is a symlink, what it points to. */
static int certwatch_add_file(struct mk_certwatch *cw, const char *path, size_t max)
{
	char *real;
	int err;

	err = certwatch_add(cw, path, max);
	if (err)
		return err;
	real = realpath(path, NULL);
	if (real && strcmp(real, path))
		err = certwatch_add(cw, real, max);
	free(real);
	return err;
}

/**
 * mk_certwatch_set() - watch the certificate, key, ticket key and client CA
 * files of @cfg
 * @cw:  the watcher
 * @cfg: the configuration in force
 *
 * Return: the number of directories watched, or a negative errno.
 */
int mk_certwatch_set(struct mk_certwatch *cw, const struct mk_config *cfg)
{
	size_t i, max = 0;
	int j, err = 0;

	if (cw->cw_fd < 0)
		return -EBADF;
	certwatch_clear(cw);
	for (i = 0; i < cfg->cf_nlisteners; i++)
		max += 4 * (size_t)cfg->cf_listeners[i].lc_ncerts + 4;
	if (!max)
		return 0;
	cw->cw_wds = calloc(max, sizeof(*cw->cw_wds));
	cw->cw_names = calloc(max, sizeof(*cw->cw_names));
	if (!cw->cw_wds || !cw->cw_names) {
		certwatch_clear(cw);
		return -ENOMEM;
	}
	for (i = 0; !err && i < cfg->cf_nlisteners; i++) {
		const struct mk_listener_cfg *lc = &cfg->cf_listeners[i];

		for (j = 0; !err && j < lc->lc_ncerts; j++) {
			err = certwatch_add_file(cw, lc->lc_certs[j].cp_cert, max);
			if (!err)
				err = certwatch_add_file(cw, lc->lc_certs[j].cp_key, max);
		}
		if (!err && lc->lc_ticket_keys.pc_path[0])
			err = certwatch_add_file(cw, lc->lc_ticket_keys.pc_path, max);
		if (!err && lc->lc_client_ca.pc_path[0])
			err = certwatch_add_file(cw, lc->lc_client_ca.pc_path, max);
	}
	return err ? err : (int)cw->cw_nwds;
}

static bool certwatch_has_wd(const struct mk_certwatch *cw, int wd)
{
	size_t i;

	for (i = 0; i < cw->cw_nwds; i++)
		if (cw->cw_wds[i] == wd)
			return true;
	return false;
}

static bool certwatch_is_ours(const struct mk_certwatch *cw, const struct inotify_event *ev)
{
	size_t i;

	if (ev->mask & IN_Q_OVERFLOW)
		return true;	/* lost events: look again */
	/* A watched directory moved, removed, or its watch ended by the
	 * kernel; a watch removed by certwatch_clear() is no longer in the
	 * set (watch descriptors are not reused soon). */
	if (ev->mask & (IN_IGNORED | IN_MOVE_SELF | IN_DELETE_SELF))
		return certwatch_has_wd(cw, ev->wd);
	if (!ev->len)
		return false;
	for (i = 0; i < cw->cw_nnames; i++)
		if (!strcmp(ev->name, cw->cw_names[i]))
			return true;
	return false;
}

/**
 * mk_certwatch_changed() - read the pending events
 * @cw: the watcher
 *
 * Return: true when a watched file changed.
 */
bool mk_certwatch_changed(struct mk_certwatch *cw)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	bool changed = false;
	ssize_t n;
	char *p;

	while ((n = read(cw->cw_fd, buf, sizeof(buf))) > 0) {
		for (p = buf; p < buf + n; p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			changed |= certwatch_is_ours(cw, ev);
		}
	}
	return changed;
}

/**
 * mk_certwatch_free() - drop every watch and close the instance
 * @cw: the watcher
 */
void mk_certwatch_free(struct mk_certwatch *cw)
{
	if (cw->cw_fd < 0)
		return;
	certwatch_clear(cw);
	close(cw->cw_fd);
	cw->cw_fd = -1;
}
