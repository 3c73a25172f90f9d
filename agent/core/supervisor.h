/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The main thread's loop once the workers run: signals, reloads,
 * certificate renewals, systemd readiness (supervisor.c).
 */
#ifndef MAILKTLS_SUPERVISOR_H
#define MAILKTLS_SUPERVISOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "certwatch.h"
#include "worker.h"

/* What the main thread keeps between signals. */
struct mk_supervisor {
	const char *sv_path;
	bool sv_ktls;
	struct mk_worker *sv_workers;
	unsigned int sv_nworkers;
	size_t sv_nlisteners;
	struct mk_certwatch sv_cw;
	uint64_t sv_cert_due_ms;	/* 0: no certificate reload pending */
	unsigned int sv_cert_retry_ms;
	bool sv_cert_failing;		/* the last try failed, and said so */
	uint64_t sv_keyproc_due_ms;	/* 0: no key process restart pending */
};

void mk_supervisor_init(struct mk_supervisor *sv, const char *path, bool ktls, size_t nlisteners);
void mk_supervisor_ready(struct mk_supervisor *sv, struct mk_worker *workers,
			 unsigned int nworkers);
int mk_supervisor_wait(struct mk_supervisor *sv, int sfd);
void mk_supervisor_free(struct mk_supervisor *sv);

#endif
