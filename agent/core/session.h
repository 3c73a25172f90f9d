/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the agent learnt about one relayed connection: the facts the log
 * lines, the PROXY v2 header, the module's tag and the query socket report.
 * Filled once when TLS is established and never changed afterwards, so it
 * can be copied into the registry without further locking.
 */
#ifndef MAILKTLS_SESSION_H
#define MAILKTLS_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "mk_addr.h"	/* mk_sockaddr_str() for the lines that name a client */

struct mk_session {
	char ss_listener[MK_NAME_MAX];
	struct sockaddr_storage ss_client;	/* the MUA's address */
	struct sockaddr_storage ss_local;	/* the address it connected to */
	struct sockaddr_storage ss_backend_local; /* our end towards the daemon */
	uint64_t ss_backend_inode;		/* our backend socket, for AF_UNIX */
	uint16_t ss_version;			/* 0x0303, 0x0304 */
	uint16_t ss_cipher_id;			/* IANA number */
	char ss_version_name[16];		/* "TLSv1.3" */
	char ss_cipher[64];			/* IANA name, "TLS_AES_128_GCM_SHA256" */
	char ss_group[32];			/* "x25519", "" when unknown */
	char ss_sigalg[32];			/* "ecdsa_secp256r1_sha256" */
	char ss_sni[256];
	char ss_alpn[32];
	char ss_client_subject[256];		/* client certificate, if any */
	char ss_client_cn[256];			/* its CN, only when verified */
	int32_t ss_verify;			/* X509_V_OK, or the error */
	bool ss_client_cert;
	bool ss_resumed;			/* session resumed (ticket or cache) */
	bool ss_ktls_tx;
	bool ss_ktls_rx;
};

#endif
