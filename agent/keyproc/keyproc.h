/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Private keys in a process of their own: the agent's side (the wire
 * protocol is keyproc_proto.h).
 *
 * The agent parses network input, so it never reads a private key: key
 * processes (mailktlsd -K, spawned before anything reads a key) load every
 * listener's keys from the configuration and sign what the workers send
 * them. A certificate's public key becomes an EVP_PKEY whose private
 * operation is forwarded (keyproc_pkey.c), so libssl signs with it as with
 * any key. On a worker the handshake runs as an OpenSSL async job: the
 * signature is a request on the worker's own channel and the job pauses
 * until the answer comes back through the worker's ring
 * (keyproc_chan.c), so the worker never waits. The main thread restarts a
 * key process that dies; signatures it owed are asked again of its
 * successor, once.
 */
#ifndef MAILKTLS_KEYPROC_H
#define MAILKTLS_KEYPROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "keyproc_proto.h"

/* One attempt at a signature, or one control request, waits at most this
 * for its answer. */
#define MK_KEYPROC_TIMEOUT_MS 1000
#define MK_KEYPROC_PROCS_MAX 64

struct mk_keyproc_chan;

/**
 * mk_keyproc_start() - spawn the key processes and wait until each holds
 * the keys of @path
 * @path:   configuration file
 * @nprocs: key processes (at least 1; at most @nchan and
 *          MK_KEYPROC_PROCS_MAX)
 * @nchan:  signing channels, one per worker; worker i signs through the
 *          key process i % @nprocs
 * @err:    why it failed: the key process's own "FILE:LINE: message"
 * @errlen: size of @err
 *
 * Return: 0, or a negative errno with @err set.
 */
int mk_keyproc_start(const char *path, unsigned int nprocs, unsigned int nchan, char *err,
		     size_t errlen);

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
 * mk_keyproc_reap() - after SIGCHLD: start a new key process for each that
 * died; the workers must then be woken (mk_keyproc_chan_refresh())
 * @path: configuration file
 *
 * Return: 0 nothing to do, 1 restarted, a negative errno when a restart
 * failed (mk_keyproc_retry() later).
 */
int mk_keyproc_reap(const char *path);

/**
 * mk_keyproc_retry() - start each key process that does not run (a restart
 * failed); the workers must then be woken
 * @path: configuration file
 *
 * Return: 0 all run, 1 started, a negative errno when one failed again.
 */
int mk_keyproc_retry(const char *path);

/**
 * mk_keyproc_enabled() - whether keys live in a key process
 *
 * Return: true once mk_keyproc_start() succeeded, for the process's life.
 */
bool mk_keyproc_enabled(void);

/**
 * mk_keyproc_pid() - a key process running now
 * @i: which one, below mk_keyproc_count()
 *
 * Return: its PID, or 0 when it does not run (a restart is due).
 */
pid_t mk_keyproc_pid(unsigned int i);

/**
 * mk_keyproc_count() - how many key processes there are
 *
 * Return: the number, 0 without key processes.
 */
unsigned int mk_keyproc_count(void);

/**
 * mk_keyproc_stop() - close the sockets and wait for the key processes,
 * which end on EOF; after the workers are gone
 */
void mk_keyproc_stop(void);

/**
 * mk_keyproc_call() - one request and its answer on a key process's
 * control socket, bounded by twice MK_KEYPROC_TIMEOUT_MS; safe from any
 * thread, but it blocks: the main thread's, and signatures made outside
 * a worker's async job
 * @i:   which key process
 * @req: the request (kr_seq is set here)
 * @ans: the answer
 *
 * Return: 0 with @ans filled (ka_status may still be an error), -ETIMEDOUT,
 * -EPIPE when the key process is gone, -ENOTCONN when there is none.
 */
int mk_keyproc_call(unsigned int i, struct mk_keyproc_req *req, struct mk_keyproc_ans *ans);

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

/*
 * A worker's signing channel (keyproc_chan.c). The worker polls
 * mk_keyproc_chan_fd() in its ring and calls mk_keyproc_chan_input() when
 * it is readable, mk_keyproc_chan_refresh() when woken, and
 * mk_keyproc_chan_expire() on its tick; each calls @resume for a waiter
 * whose signature is answered (or failed): the waiter then runs its
 * handshake again, which resumes the paused job.
 */
typedef void (*mk_keyproc_resume_fn)(void *waiter, void *arg);

/**
 * mk_keyproc_chan_get() - the signing channel of worker @i
 * @i: the worker's index
 *
 * Return: the channel, or NULL without key processes.
 */
struct mk_keyproc_chan *mk_keyproc_chan_get(unsigned int i);

/**
 * mk_keyproc_chan_bind() - signatures asked from an async job on this
 * thread go through @ch, and answers go to @resume
 * @ch:     the channel (NULL: none)
 * @resume: called for each answered waiter
 * @arg:    its second argument
 */
void mk_keyproc_chan_bind(struct mk_keyproc_chan *ch, mk_keyproc_resume_fn resume, void *arg);

/**
 * mk_keyproc_chan_fd() - the socket to poll for answers
 * @ch: the channel
 *
 * Return: the descriptor, or -1 while its key process is being restarted.
 */
int mk_keyproc_chan_fd(const struct mk_keyproc_chan *ch);

/**
 * mk_keyproc_chan_input() - read every answer waiting on @ch
 * @ch: the channel
 *
 * Return: 0, or -EPIPE when the key process is gone (the fd is closed;
 * what it owed is asked again of its successor).
 */
int mk_keyproc_chan_input(struct mk_keyproc_chan *ch);

/**
 * mk_keyproc_chan_refresh() - take the socket of a restarted key process
 * and send it what its predecessor owed; or, when it could not be
 * restarted, fail what waits for it
 * @ch: the channel
 */
void mk_keyproc_chan_refresh(struct mk_keyproc_chan *ch);

/**
 * mk_keyproc_chan_expire() - fail the signatures that waited too long
 * @ch:  the channel
 * @now: mk_now_ms()
 */
void mk_keyproc_chan_expire(struct mk_keyproc_chan *ch, uint64_t now);

/**
 * mk_keyproc_set_waiter() - who asks the next signature on this thread
 * @waiter: the connection whose handshake runs now (NULL after it)
 */
void mk_keyproc_set_waiter(void *waiter);

/**
 * mk_keyproc_cancel() - @waiter goes away: its signature is no longer
 * wanted; the paused job must still be run once to its end
 * @waiter: as given to mk_keyproc_set_waiter()
 */
void mk_keyproc_cancel(void *waiter);


#endif
