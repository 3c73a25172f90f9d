// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the query socket parser (mk_query_parse) and the
 * full answer path (mk_query_answer) over a registry holding one session.
 * Beyond memory safety: every answer ends with an empty line, starts with
 * "ok" or "error ", and a request the parser accepts is answered "ok" or
 * "error notfound", never "error syntax".
 */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "mailktls.h"
#include "registry.h"

static void setup_once(void)
{
	static int done;
	struct mk_session s;
	struct sockaddr_in *sin = (struct sockaddr_in *)&s.ss_client;

	if (done)
		return;
	done = 1;
	mk_registry_init();
	memset(&s, 0, sizeof(s));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(993);
	inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);
	memcpy(&s.ss_backend_local, &s.ss_client, sizeof(s.ss_client));
	s.ss_backend_inode = 42;
	strcpy(s.ss_cipher, "TLS_AES_128_GCM_SHA256\n\x01");
	s.ss_version = 0x0304;
	mk_registry_add(&s, -1, -1);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char ans[MAILKTLS_QUERY_ANSWER_MAX];
	struct mk_query q;
	size_t n;
	int err;

	setup_once();
	err = mk_query_parse((const char *)data, size, &q);
	n = mk_query_answer((const char *)data, size, ans, sizeof(ans));
	if (size >= 7 && !memcmp(data, "CLAUSE ", 7)) {
		/* nothing, or one clause line that no value can break */
		if (n && (strncmp(ans, "tls ", 4) || memchr(ans, '\n', n) != ans + n - 1))
			abort();
		return 0;
	}
	if (n < 2 || n >= sizeof(ans) || strlen(ans) != n || strcmp(ans + n - 2, "\n\n"))
		abort();
	if (strncmp(ans, "ok\n", 3) && strncmp(ans, "error ", 6))
		abort();
	if (!err && !strncmp(ans, "error ", 6) && strncmp(ans, "error notfound\n", 15))
		abort();
	if (err && strncmp(ans, "error ", 6))
		abort();
	/* One line per key: a value never breaks the line structure. */
	if (memmem(ans, n, "\n\n", 2) != ans + n - 2)
		abort();
	return 0;
}
