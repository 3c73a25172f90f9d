// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target for mailktls-milter's Received header: the HELO name
 * and reverse name come from the network (input split at the first NUL).
 * Beyond memory safety: whatever they are, the value is one RFC 5321
 * trace field, lines folded only where the builder folds them, no CR, no
 * byte outside printable ASCII and tab, and the client's words appear
 * only when they are a domain.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "milter/received.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	char in[2 * MK_RCV_DOMAIN_MAX + 4], out[MK_RCV_VALUE_MAX];
	const char *helo, *name;
	struct mk_received rv;
	int n, folds = 0, i;

	if (size >= sizeof(in))
		size = sizeof(in) - 1;
	memcpy(in, data, size);
	in[size] = '\0';
	helo = in;
	name = memchr(in, '\0', size) ? in + strlen(in) + 1 : NULL;
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, "192.0.2.1", &sin->sin_addr);
	rv = (struct mk_received){
		.rv_helo = helo,
		.rv_client_name = name,
		.rv_client = &ss,
		.rv_by = "mail.example.org",
		.rv_auth = size & 1,
		.rv_clause = "tls TLS_AES_256_GCM_SHA384",
		.rv_time = 1796112000,
	};
	n = mk_rcv_build(&rv, out, sizeof(out));
	if (n < 0)
		abort();
	if (strncmp(out, "from ", 5) || (int)strlen(out) != n)
		abort();
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c == '\n') {
			if (out[i + 1] != '\t')
				abort();
			folds++;
		} else if ((c < 0x20 && c != '\t') || c > 0x7e) {
			abort();
		}
	}
	if (folds != 2 || !strstr(out, " (mailktls) with ESMTPS") ||
	    !strstr(out, " tls TLS_AES_256_GCM_SHA384;\n\t"))
		abort();
	if (!mk_rcv_domain_ok(helo) && strncmp(out, "from [192.0.2.1] (", 18))
		abort();
	return 0;
}
