/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A bounded byte buffer: data at [off, len), growing up to a hard cap so
 * that nothing a peer sends can make it grow without limit. An empty buffer
 * owns no memory: reading the last byte or a reset gives it back, so that a
 * connection that waits keeps nothing.
 *
 * A buffer can also lend itself memory it does not own (a receive buffer
 * of the ring, mk_buf_borrow()): the bytes are used in place, and what is
 * left is copied into memory of its own only when it must wait
 * (mk_buf_unborrow()).
 */
#ifndef MAILKTLS_BUF_H
#define MAILKTLS_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mk_buf {
	uint8_t *b_data;
	size_t b_off;		/* first unread byte */
	size_t b_len;		/* end of data */
	size_t b_cap;		/* allocated */
	size_t b_max;		/* never allocate more than this */
	size_t b_written;	/* bytes ever written, at most: what a free wipes */
	bool b_borrowed;	/* b_data is not ours: never freed, never grown */
};

void mk_buf_init(struct mk_buf *b, size_t max);
/* Free the memory, wiping it first (it may have held plaintext or keys). */
void mk_buf_free(struct mk_buf *b);
/* Append; returns 0 or -ENOBUFS when b_max would be exceeded, -ENOMEM. */
int mk_buf_append(struct mk_buf *b, const void *data, size_t len);
/* Make room for @len more bytes at the end; returns the pointer or NULL. */
uint8_t *mk_buf_reserve(struct mk_buf *b, size_t len);
static inline size_t mk_buf_used(const struct mk_buf *b) { return b->b_len - b->b_off; }
static inline uint8_t *mk_buf_head(const struct mk_buf *b)
{
	static uint8_t empty[1];

	/* Never NULL, so callers may pass it with a zero length. */
	return b->b_data ? b->b_data + b->b_off : empty;
}
void mk_buf_consume(struct mk_buf *b, size_t len);
void mk_buf_reset(struct mk_buf *b);
void mk_buf_borrow(struct mk_buf *b, uint8_t *data, size_t len);
int mk_buf_unborrow(struct mk_buf *b);

#endif
