// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for mk_config_parse_buffer(). Besides memory safety it
 * checks the parser's promises: a failure comes with "NAME:..." and no
 * config; a success gives listeners with every required value in range.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/tls1.h>

#include "config.h"

#define NAME "fuzz.conf"

static void check(bool ok)
{
	if (!ok)
		abort();
}

static void check_listener(const struct mk_listener_cfg *lc)
{
	int i;

	check(memchr(lc->lc_name, '\0', sizeof(lc->lc_name)) && lc->lc_name[0]);
	check(lc->lc_listen.sa_storage.ss_family == AF_INET ||
	      lc->lc_listen.sa_storage.ss_family == AF_INET6);
	check(lc->lc_backend.sa_len > 0 &&
	      lc->lc_backend.sa_len <= sizeof(lc->lc_backend.sa_storage));
	check(lc->lc_ncerts >= 1 && lc->lc_ncerts <= MK_MAX_CERTS);
	for (i = 0; i < lc->lc_ncerts; i++)
		check(lc->lc_certs[i].cp_cert[0] && lc->lc_certs[i].cp_key[0] &&
		      lc->lc_certs[i].cp_line > 0);
	check(lc->lc_min_version == TLS1_2_VERSION || lc->lc_min_version == TLS1_3_VERSION);
	check(lc->lc_handshake_timeout_ms > 0 && lc->lc_idle_timeout_ms > 0 &&
	      lc->lc_pretls_timeout_ms > 0 && lc->lc_max_connections > 0 &&
	      lc->lc_pretls_max_commands > 0);
	/* The name goes into greetings: never CR, LF or spaces. */
	check(strcspn(lc->lc_hostname, "\r\n \t") == strlen(lc->lc_hostname));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_config *cfg = NULL;
	char err[MK_ERR_MAX];
	size_t i;
	int ret;

	ret = mk_config_parse_buffer(NAME, (const char *)data, size, &cfg, err, sizeof(err));
	if (ret) {
		check(ret == -EINVAL || ret == -ENOMEM);
		check(cfg == NULL);
		check(memchr(err, '\0', sizeof(err)) &&
		      strncmp(err, NAME ":", strlen(NAME ":")) == 0);
		return 0;
	}
	check(cfg && cfg->cf_nlisteners >= 1 && cfg->cf_nlisteners <= MK_MAX_LISTENERS);
	for (i = 0; i < cfg->cf_nlisteners; i++)
		check_listener(&cfg->cf_listeners[i]);
	mk_config_free(cfg);
	return 0;
}
