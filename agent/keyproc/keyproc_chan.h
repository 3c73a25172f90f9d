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

#endif
