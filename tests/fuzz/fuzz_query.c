// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for the query socket parser (mk_query_parse) and the
 * full answer path (mk_query_answer) over a registry holding two sessions,
 * one with a cipher name no client should be able to smuggle out.
 * Beyond memory safety: a QUERY or STATUS answer ends with an empty line,
 * starts with "ok" or "error ", and a request the parser accepts is
 * answered "ok" or "error notfound", never "error syntax"; a CLAUSE answer
 * is nothing at all or one line "tls <name or 0xNNNN>" of safe bytes.
 */
#include <ctype.h>
#include <stdbool.h>
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
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&s.ss_client;

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
	s.ss_cipher_id = 0x1301;
	s.ss_version = 0x0304;
	mk_registry_add(&s, -1, -1);

	memset(&s, 0, sizeof(s));
	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(465);
	inet_pton(AF_INET6, "2001:db8::1", &sin6->sin6_addr);
	strcpy(s.ss_cipher, "TLS_AES_256_GCM_SHA384");
	s.ss_cipher_id = 0x1302;
	s.ss_version = 0x0304;
	mk_registry_add(&s, -1, -1);
}

/* "tls NAME\n" with NAME of letters, digits and "_" only. */
static bool is_clause_line(const char *a, size_t n)
{
	size_t i;

	if (n < 6 || strncmp(a, "tls ", 4) || a[n - 1] != '\n')
		return false;
	for (i = 4; i + 1 < n; i++)
		if (!isalnum((unsigned char)a[i]) && a[i] != '_')
			return false;
	return true;
}

static void check_query_answer(const char *ans, size_t n, int err)
{
	if (n < 2 || strcmp(ans + n - 2, "\n\n"))
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
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char ans[MAILKTLS_QUERY_ANSWER_MAX];
	bool clause = size >= 7 && !memcmp(data, "CLAUSE ", 7);
	struct mk_query q;
	size_t n;
	int err;

	setup_once();
	err = mk_query_parse((const char *)data, size, &q);
	if (!err && (q.q_kind == MK_QUERY_CLAUSE) != clause)
		abort();
	n = mk_query_answer((const char *)data, size, ans, sizeof(ans));
	if (n >= sizeof(ans) || strlen(ans) != n)
		abort();
	if (!clause)
		check_query_answer(ans, n, err);
	else if (n && (err || !is_clause_line(ans, n)))
		abort();
	return 0;
}
