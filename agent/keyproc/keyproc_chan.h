/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Between keyproc_client.c (the main thread, which spawns key processes)
 * and keyproc_chan.c (the workers' channels): how a new socket reaches a
 * worker.
 */
#ifndef MAILKTLS_KEYPROC_CHAN_H
#define MAILKTLS_KEYPROC_CHAN_H

#include "keyproc.h"

#define MK_KEYPROC_CHAN_DOWN (-2)	/* its key process could not be restarted */

/**
 * mk_keyproc_chan_new() - a channel served by key process @proc
 * @proc: the key process's index
 *
 * Return: the channel, or NULL.
 */
struct mk_keyproc_chan *mk_keyproc_chan_new(unsigned int proc);

/**
 * mk_keyproc_chan_proc() - which key process serves @ch
 * @ch: the channel
 *
 * Return: the index.
 */
unsigned int mk_keyproc_chan_proc(const struct mk_keyproc_chan *ch);

/**
 * mk_keyproc_chan_publish() - hand the worker a new socket, or
 * MK_KEYPROC_CHAN_DOWN; a socket it has not taken yet is closed
 * @ch: the channel
 * @fd: the agent's end of a new key process's channel
 */
void mk_keyproc_chan_publish(struct mk_keyproc_chan *ch, int fd);

/**
 * mk_keyproc_chan_free() - close and free @ch; after its worker is gone
 * @ch: the channel
 */
void mk_keyproc_chan_free(struct mk_keyproc_chan *ch);

/**
 * mk_keyproc_async_init() - size the stacks of OpenSSL's async jobs, before
 * the first job
 */
void mk_keyproc_async_init(void);

/**
 * mk_keyproc_chan_can_wait() - may this thread's signature pause for its
 * answer?
 * @proc: set to the key process this thread's channel signs through (0
 *        without a channel)
 *
 * Return: true in a worker's handshake job with a channel and a waiter
 * set: mk_keyproc_chan_sign() then applies; false elsewhere (start-up, a
 * reload's checks, the unit tests), where the caller makes a blocking call
 * on @proc's control socket instead.
 */
bool mk_keyproc_chan_can_wait(unsigned int *proc);

/**
 * mk_keyproc_chan_sign() - a private-key operation on this thread's
 * channel: the request goes out and the job pauses until its answer (or
 * its key process's successor's) is in
 * @req: the request
 * @ans: the answer
 *
 * Only where mk_keyproc_chan_can_wait() said true.
 *
 * Return: 0 with @ans filled (ka_status may be an error), -ENOTCONN when
 * the key process cannot be restarted, -ECANCELED when the connection went
 * away, -EIO when the job could not pause, -ENOMEM.
 */
int mk_keyproc_chan_sign(struct mk_keyproc_req *req, struct mk_keyproc_ans *ans);

#endif
