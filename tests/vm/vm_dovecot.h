/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A real Dovecot IMAP server in the VM, as the agent's backend: plain IMAP
 * on 127.0.0.1 at a free port, any user with the password "pass" (static
 * passdb), Maildir under a temp dir, its log in a file the test prints
 * when it fails. Started in the foreground (`dovecot -F`) as a child of
 * the test, stopped by its PID. The config is written in the syntax of the
 * Dovecot there: 2.3 (Debian 12) or 2.4 (Debian 13).
 *
 * Dovecot comes from this host (tests/vm/extra-files lists its programs;
 * the master checks that every service's executable is there, so all of
 * them are listed, and their libraries come with them). The VM's
 * /etc/passwd has root only: the users Dovecot runs its login and internal
 * processes as are added here when missing. Mail belongs to uid
 * VM_DOVECOT_MAIL_UID, which Dovecot needs in no passwd file. Header only:
 * each tests/vm test is one program.
 */
#ifndef MAILKTLS_VM_DOVECOT_H
#define MAILKTLS_VM_DOVECOT_H

#include <dirent.h>
#include <ftw.h>
#include <pwd.h>

#include "vm_agent.h"

#define VM_DOVECOT_BIN "/usr/sbin/dovecot"
#define VM_DOVECOT_MAIL_UID 5000
#define VM_DOVECOT_PASS "pass"

struct vm_dovecot {
	char d_dir[64];
	char d_conf[96];
	char d_log[96];		/* log_path: Dovecot's own log */
	char d_out[96];		/* the master's stderr (errors before logging starts) */
	pid_t d_pid;
	int d_port;		/* its IMAP listener */
};

/* dovecot and dovenull (Dovecot's default users), when the VM lacks them. */
static inline int vm_dovecot_users(void)
{
	FILE *f;

	if (getpwnam("dovecot") && getpwnam("dovenull"))
		return 0;
	f = fopen("/etc/passwd", "ae");
	if (!f)
		return -1;
	fputs("dovecot:x:111:111::/nonexistent:/bin/false\n"
	      "dovenull:x:112:112::/nonexistent:/bin/false\n", f);
	if (fclose(f))
		return -1;
	f = fopen("/etc/group", "ae");
	if (!f)
		return -1;
	fputs("dovecot:x:111:\ndovenull:x:112:\n", f);
	return fclose(f) ? -1 : 0;
}

/*
 * The installed Dovecot's version as `dovecot --version` gives it (2.3.19.1
 * on Debian 12, 2.4.1 on Debian 13) into @out; whether it takes the 2.4
 * syntax (renamed settings, named passdb/userdb blocks, %{variables}).
 */
static inline int vm_dovecot_version(char *out, size_t len, bool *v24)
{
	FILE *p = popen(VM_DOVECOT_BIN " --version 2>/dev/null", "r");
	int major = 0, minor = 0;
	char line[128] = "";

	if (!p)
		return -1;
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	pclose(p);
	if (sscanf(line, "%d.%d", &major, &minor) != 2)
		return -1;
	snprintf(out, len, "%.*s", (int)strcspn(line, " -\n"), line);
	*v24 = major > 2 || (major == 2 && minor >= 4);
	return 0;
}

/*
 * Plain IMAP on 127.0.0.1 only, any user with VM_DOVECOT_PASS, mail as
 * VM_DOVECOT_MAIL_UID; base_dir and state_dir under d_dir (nothing of the
 * host's own), in the syntax of the installed release.
 */
static inline int vm_dovecot_write_config(const struct vm_dovecot *d)
{
	char version[32];
	bool v24;
	FILE *f;

	if (vm_dovecot_version(version, sizeof(version), &v24))
		return -1;
	f = fopen(d->d_conf, "we");
	if (!f)
		return -1;
	if (v24)	/* these two first */
		fprintf(f, "dovecot_config_version = %s\ndovecot_storage_version = %s\n"
			   "auth_allow_cleartext = yes\nmail_driver = maildir\n"
			   "mail_path = %s/mail/%%{user}\n"
			   "passdb static {\n  password = %s\n}\n"
			   "userdb static {\n  fields {\n    uid = %d\n    gid = %d\n"
			   "    home = %s/mail/%%{user}\n  }\n}\n",
			version, version, d->d_dir, VM_DOVECOT_PASS, VM_DOVECOT_MAIL_UID,
			VM_DOVECOT_MAIL_UID, d->d_dir);
	else
		fprintf(f, "disable_plaintext_auth = no\nmail_location = maildir:%s/mail/%%u\n"
			   "passdb {\n  driver = static\n  args = password=%s\n}\n"
			   "userdb {\n  driver = static\n"
			   "  args = uid=%d gid=%d home=%s/mail/%%u\n}\n",
			d->d_dir, VM_DOVECOT_PASS, VM_DOVECOT_MAIL_UID, VM_DOVECOT_MAIL_UID,
			d->d_dir);
	fprintf(f, "base_dir = %s/run\nstate_dir = %s/state\ninstance_name = mk-%d\n"
		   "protocols = imap\nlisten = 127.0.0.1\nssl = no\nauth_mechanisms = plain\n"
		   "log_path = %s\nfirst_valid_uid = %d\nlast_valid_uid = %d\n"
		   "service imap-login {\n"
		   "  inet_listener imap {\n    %s = 127.0.0.1\n    port = %d\n  }\n"
		   "  inet_listener imaps {\n    port = 0\n  }\n}\n",
		d->d_dir, d->d_dir, d->d_port, d->d_log, VM_DOVECOT_MAIL_UID,
		VM_DOVECOT_MAIL_UID, v24 ? "listen" : "address", d->d_port);
	return fclose(f) ? -1 : 0;
}

/* Its greeting ("* OK ...") on a connection of ours, within @ms. */
static inline bool vm_dovecot_greets(int port, int ms)
{
	uint64_t end = vm_ms() + (uint64_t)ms;
	char buf[8];
	bool ok = false;
	int fd;

	do {
		fd = vm_connect(port, NULL);
		if (fd >= 0) {
			vm_set_timeouts(fd, ms);
			ok = vm_recv_all(fd, buf, 4) && !memcmp(buf, "* OK", 4);
			close(fd);
			if (ok)
				return true;
		}
		usleep(100000);
	} while (vm_ms() < end);
	return false;
}

/*
 * Dovecot in a fresh temp dir, answering IMAP on d_port.
 * Return: 0, or -1 with the reason in @why.
 */
static inline int vm_dovecot_start(struct vm_dovecot *d, char *why, size_t whylen)
{
	char *argv[] = { "dovecot", "-F", "-c", d->d_conf, NULL };
	char mail[96];

	d->d_pid = -1;
	snprintf(d->d_dir, sizeof(d->d_dir), "/tmp/mk-dovecot-XXXXXX");
	if (!mkdtemp(d->d_dir)) {
		d->d_dir[0] = '\0';
		snprintf(why, whylen, "mkdtemp: %s", strerror(errno));
		return -1;
	}
	snprintf(d->d_conf, sizeof(d->d_conf), "%s/dovecot.conf", d->d_dir);
	snprintf(d->d_log, sizeof(d->d_log), "%s/dovecot.log", d->d_dir);
	snprintf(d->d_out, sizeof(d->d_out), "%s/dovecot.out", d->d_dir);
	snprintf(mail, sizeof(mail), "%s/mail", d->d_dir);
	d->d_port = vm_free_port();
	/* the mail user's imap process walks down to its Maildir */
	if (d->d_port < 0 || chmod(d->d_dir, 0755) || mkdir(mail, 0700) ||
	    chown(mail, VM_DOVECOT_MAIL_UID, VM_DOVECOT_MAIL_UID) || vm_dovecot_users() ||
	    vm_dovecot_write_config(d)) {
		snprintf(why, whylen, "cannot prepare %s: %s", d->d_dir, strerror(errno));
		return -1;
	}
	d->d_pid = vm_spawn_logged(VM_DOVECOT_BIN, argv, d->d_out, why, whylen);
	if (d->d_pid < 0)
		return -1;
	/* its first start under TCG (config, log, anvil, auth) takes seconds */
	if (!vm_dovecot_greets(d->d_port, 30000)) {
		snprintf(why, whylen, "dovecot gave no greeting on 127.0.0.1:%d within 30 s",
			 d->d_port);
		return -1;
	}
	return 0;
}

#define VM_DOVECOT_KIDS 32

/*
 * State and parent of process @pid from /proc ("pid (comm) state ppid":
 * comm may hold spaces and ')', the last ')' ends it). Return: 0, or -1
 * when it is gone.
 */
static inline int vm_proc_stat(pid_t pid, char *state, int *ppid)
{
	char path[64], stat[512], *p;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	p = fgets(stat, sizeof(stat), f) ? strrchr(stat, ')') : NULL;
	fclose(f);
	return p && sscanf(p + 1, " %c %d", state, ppid) == 2 ? 0 : -1;
}

/* Running, not a zombie (an orphan's exit status waits for PID 1's wait). */
static inline bool vm_pid_alive(pid_t pid)
{
	char state;
	int ppid;

	return !vm_proc_stat(pid, &state, &ppid) && state != 'Z';
}

/* The PIDs whose parent is @ppid, at most @max; how many. */
static inline int vm_children_of(pid_t ppid, pid_t *kids, int max)
{
	struct dirent *de;
	DIR *d = opendir("/proc");
	int n = 0, parent;
	pid_t pid;
	char state;

	while (d && n < max && (de = readdir(d))) {
		pid = (pid_t)atoi(de->d_name);
		if (pid > 0 && !vm_proc_stat(pid, &state, &parent) && parent == ppid)
			kids[n++] = pid;
	}
	if (d)
		closedir(d);
	return n;
}

/*
 * SIGTERM to the master, bounded wait; then its children (log, auth,
 * stats, anvil, config) until they are gone: 2.4's master exits before
 * they have seen it go, and none may outlive the test's teardown.
 * Return: the master's wait status, or -1 if it had to be killed.
 */
static inline int vm_dovecot_stop(struct vm_dovecot *d)
{
	pid_t kids[VM_DOVECOT_KIDS];
	uint64_t end;
	int status, n, i;

	if (d->d_pid <= 0)
		return -1;
	n = vm_children_of(d->d_pid, kids, VM_DOVECOT_KIDS);
	status = vm_stop_child(d->d_pid, 15000);
	d->d_pid = -1;
	for (i = 0; i < n; i++) {
		end = vm_ms() + 5000;
		while (vm_pid_alive(kids[i]) && vm_ms() < end)
			usleep(20000);
		if (vm_pid_alive(kids[i]))
			kill(kids[i], SIGKILL);
	}
	return status;
}

/* Dovecot's log and the master's stderr, as "#   dovecot: " lines. */
static inline void vm_dovecot_log_dump(const struct vm_dovecot *d)
{
	vm_file_dump(d->d_out, "dovecot");
	vm_file_dump(d->d_log, "dovecot");
}

static inline int vm_dovecot_rm(const char *path, const struct stat *st, int flag,
				struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Its whole directory: config, log, sockets, Maildir. */
static inline void vm_dovecot_cleanup(struct vm_dovecot *d)
{
	if (d->d_dir[0])
		nftw(d->d_dir, vm_dovecot_rm, 16, FTW_DEPTH | FTW_PHYS);
	d->d_dir[0] = '\0';
}

#endif
