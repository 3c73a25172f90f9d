/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Private keys in a process of their own.
 *
 * The agent parses network input, so it never reads a private key: a small
 * key process (mailktlsd -K, spawned before anything reads a key) loads
 * every listener's keys from the configuration and signs what the workers
 * send it over a SOCK_SEQPACKET socketpair. A key is named by the SHA-256
 * of its SubjectPublicKeyInfo, which the agent computes from the
 * certificate: no list of keys has to be kept in step between the two.
 *
 * In the agent, a certificate's public key becomes an EVP_PKEY whose
 * private operation is forwarded (keyproc_pkey.c), so libssl signs with it
 * as with any key. The main thread restarts a key process that dies; a
 * handshake whose signature was in flight fails with an alert.
 */
#ifndef MAILKTLS_KEYPROC_H
#define MAILKTLS_KEYPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#define MK_KEYPROC_ID_LEN 32		/* SHA-256 of the SPKI DER */
#define MK_KEYPROC_DATA_MAX 1024	/* an RSA-8192 block; an error text */
/* The lock wait, then the answer, each at most this: a signature fails
 * within twice this when the key process does not answer. */
#define MK_KEYPROC_TIMEOUT_MS 1000
#define MK_KEYPROC_FD 3			/* the key process's end of the socket */

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
 * mk_keyproc_main() - the key process: load, then answer until EOF
 * @path: configuration file
 *
 * Return: the process exit code.
 */
int mk_keyproc_main(const char *path);

/**
 * mk_keyproc_start() - spawn the key process and wait until it holds the
 * keys of @path
 * @path:   configuration file
 * @err:    why it failed: the key process's own "FILE:LINE: message"
 * @errlen: size of @err
 *
 * Return: 0, or a negative errno with @err set.
 */
int mk_keyproc_start(const char *path, char *err, size_t errlen);

/**
 * mk_keyproc_reload() - make the key process read the configuration again,
 * into a set that mk_keyproc_pkey() checks certificates against until
 * mk_keyproc_reload_end() says whether it is in force
 * @err: its message on failure
 *
 * Return: 0, or a negative errno with @err set (the old keys stay).
 */
int mk_keyproc_reload(char *err, size_t errlen);

/**
 * mk_keyproc_reload_end() - the reload's keys are in force (@commit), the
 * previous ones kept for handshakes on the previous certificates; or the
 * reload failed and its keys go
 * @commit: whether the new runtime was published
 */
void mk_keyproc_reload_end(bool commit);

/**
 * mk_keyproc_reap() - after SIGCHLD: start a new key process if it died
 * @path: configuration file
 *
 * Return: 0 nothing to do, 1 restarted, a negative errno when the restart
 * failed (mk_keyproc_retry() later).
 */
int mk_keyproc_reap(const char *path);

/**
 * mk_keyproc_retry() - start a key process if none runs (a restart failed)
 * @path: configuration file
 *
 * Return: 0 one runs, 1 started, a negative errno when it failed again.
 */
int mk_keyproc_retry(const char *path);

/**
 * mk_keyproc_enabled() - whether keys live in a key process
 *
 * Return: true once mk_keyproc_start() succeeded, for the process's life.
 */
bool mk_keyproc_enabled(void);

/**
 * mk_keyproc_pid() - the key process running now
 *
 * Return: its PID, or 0 when none runs (a restart is due).
 */
pid_t mk_keyproc_pid(void);

/**
 * mk_keyproc_stop() - close the socket and wait for the key process, which
 * ends on EOF
 */
void mk_keyproc_stop(void);

/**
 * mk_keyproc_call() - one request and its answer, bounded by twice
 * MK_KEYPROC_TIMEOUT_MS; safe from any thread
 * @req: the request (kr_seq is set here)
 * @ans: the answer
 *
 * Return: 0 with @ans filled (ka_status may still be an error), -ETIMEDOUT,
 * -EPIPE when the key process is gone, -ENOTCONN when there is none.
 */
int mk_keyproc_call(struct mk_keyproc_req *req, struct mk_keyproc_ans *ans);

/**
 * mk_keyproc_key_id() - the name of a key: SHA-256 of its SPKI DER
 * @pkey: a public or private key
 * @id:   result
 *
 * Return: 0, or -ENOMEM.
 */
int mk_keyproc_key_id(const EVP_PKEY *pkey, uint8_t id[MK_KEYPROC_ID_LEN]);

/**
 * mk_keyproc_pkey() - a key for SSL_CTX_use_PrivateKey() whose private
 * operations the key process does, from a certificate's public key
 * @leaf: the certificate
 * @err:  "the key process holds no key for it" and the like
 *
 * Return: the key, or NULL with @err set (no key, unsupported type, the
 * key process unreachable).
 */
EVP_PKEY *mk_keyproc_pkey(X509 *leaf, char *err, size_t errlen);

#endif
