/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The key process's wire protocol: what the agent and mailktlsd -K say to
 * each other over SOCK_SEQPACKET socketpairs, one request or answer per
 * packet. Descriptor MK_KEYPROC_FD is the control socket (the main
 * thread's: start-up answer, reloads, key look-ups); the next ones, as
 * many as -k says, are the signing channels of the workers this key
 * process serves, so that each worker waits on its own socket and no
 * worker's request queues behind another's lock. A key is named by the
 * SHA-256 of its SubjectPublicKeyInfo, which the agent computes from the
 * certificate: no list of keys has to be kept in step between the two.
 */
#ifndef MAILKTLS_KEYPROC_PROTO_H
#define MAILKTLS_KEYPROC_PROTO_H

#include <stdint.h>

#define MK_KEYPROC_ID_LEN 32		/* SHA-256 of the SPKI DER */
#define MK_KEYPROC_DATA_MAX 1024	/* an RSA-8192 block; an error text */
#define MK_KEYPROC_FD 3			/* the key process's control socket */
#define MK_KEYPROC_CHANNELS_MAX 256	/* signing channels of one key process */

enum mk_keyproc_op {
	MK_KEYPROC_RSA_PRIVATE = 1,	/* raw RSA private operation, kr_padding */
	MK_KEYPROC_ECDSA = 2,		/* ECDSA over a digest, DER answer */
	MK_KEYPROC_HAVE = 3,		/* does it hold kr_id (in the reload's set)? */
	MK_KEYPROC_RELOAD = 4,		/* read the configuration file again */
	MK_KEYPROC_COMMIT = 5,		/* the reload's keys are in force */
	MK_KEYPROC_ABORT = 6,		/* the reload failed: drop its keys */
};

/* Agent to key process. */
struct mk_keyproc_req {
	uint32_t kr_seq;
	uint16_t kr_op;			/* enum mk_keyproc_op */
	uint16_t kr_padding;		/* RSA_PKCS1_PADDING or RSA_NO_PADDING */
	uint8_t kr_id[MK_KEYPROC_ID_LEN];
	uint16_t kr_len;		/* bytes used in kr_data */
	uint8_t kr_data[MK_KEYPROC_DATA_MAX];
};

/* Key process to agent: a signature, or (ka_status < 0) an error text. */
struct mk_keyproc_ans {
	uint32_t ka_seq;
	int32_t ka_status;		/* 0 or a negative errno */
	uint16_t ka_len;
	uint8_t ka_data[MK_KEYPROC_DATA_MAX];
};

/**
 * mk_keyproc_main() - the key process: load, then answer on the control
 * socket and on @nchan signing channels (descriptors MK_KEYPROC_FD + 1
 * onwards) until the control socket reaches EOF
 * @path:  configuration file
 * @nchan: number of signing channels
 *
 * Return: the process exit code.
 */
int mk_keyproc_main(const char *path, unsigned int nchan);

#endif
