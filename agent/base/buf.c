// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "buf.h"

/**
 * mk_buf_init() - an empty buffer that never grows past @max bytes
 * @b:   the buffer
 * @max: hard limit
 */
void mk_buf_init(struct mk_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->b_max = max;
}

/**
 * mk_buf_free() - wipe and free the memory (it may have held plaintext)
 * @b: the buffer; empty and reusable afterwards
 */
void mk_buf_free(struct mk_buf *b)
{
	if (b->b_data && !b->b_borrowed) {
		OPENSSL_cleanse(b->b_data, b->b_len > b->b_written ? b->b_len : b->b_written);
		free(b->b_data);
	}
	b->b_data = NULL;
	b->b_off = b->b_len = b->b_cap = b->b_written = 0;
	b->b_borrowed = false;
}

/**
 * mk_buf_reset() - forget the contents and give the memory back
 * @b: the buffer
 */
void mk_buf_reset(struct mk_buf *b)
{
	mk_buf_free(b);
}

/**
 * mk_buf_borrow() - let an empty @b hold @len bytes at @data, used in place
 * @b:    the buffer, empty
 * @data: memory @b does not own; the caller gets it back after
 *        mk_buf_unborrow()
 * @len:  bytes there
 */
void mk_buf_borrow(struct mk_buf *b, uint8_t *data, size_t len)
{
	mk_buf_free(b);
	b->b_data = data;
	b->b_len = b->b_cap = len;
	b->b_borrowed = true;
}

/**
 * mk_buf_unborrow() - stop using borrowed memory: what is still unread is
 * copied into memory of the buffer's own, exactly its size
 * @b: the buffer (nothing happens unless it holds borrowed memory)
 *
 * Return: 0, or -ENOMEM (the unread bytes are then lost).
 */
int mk_buf_unborrow(struct mk_buf *b)
{
	size_t used = mk_buf_used(b);
	uint8_t *n = NULL;
	int err = 0;

	if (!b->b_borrowed)
		return 0;
	if (used) {
		n = malloc(used);
		if (n)
			memcpy(n, b->b_data + b->b_off, used);
		else
			err = -ENOMEM;
	}
	b->b_borrowed = false;
	b->b_data = n;
	b->b_off = 0;
	b->b_len = b->b_cap = n ? used : 0;
	return err;
}

/**
 * mk_buf_consume() - drop @len bytes from the front
 * @b:   the buffer
 * @len: bytes used (clamped to what is there)
 */
void mk_buf_consume(struct mk_buf *b, size_t len)
{
	if (len > mk_buf_used(b))
		len = mk_buf_used(b);
	b->b_off += len;
	if (b->b_off == b->b_len)
		mk_buf_free(b);
}

/**
 * mk_buf_reserve() - make room for @len bytes at the end
 * @b:   the buffer
 * @len: bytes wanted; the caller adds what it wrote to b_len
 *
 * Return: where to write, or NULL past b_max or out of memory.
 */
uint8_t *mk_buf_reserve(struct mk_buf *b, size_t len)
{
	size_t used = mk_buf_used(b), want, ncap;
	uint8_t *n;

	/* Growing borrowed memory: the unread bytes move into our own. */
	if (b->b_borrowed) {
		if (used + len > b->b_max || mk_buf_unborrow(b))
			return NULL;
	}
	if (b->b_off && b->b_len + len > b->b_cap) {
		/* b_len shrinks here and only here: past it lie old bytes. */
		if (b->b_len > b->b_written)
			b->b_written = b->b_len;
		memmove(b->b_data, b->b_data + b->b_off, used);
		b->b_off = 0;
		b->b_len = used;
	}
	want = b->b_len + len;
	if (want > b->b_max)
		return NULL;
	if (want <= b->b_cap)
		return b->b_data + b->b_len;
	ncap = b->b_cap ? b->b_cap : 256;
	while (ncap < want)
		ncap *= 2;
	if (ncap > b->b_max)
		ncap = b->b_max;
	n = malloc(ncap);
	if (!n)
		return NULL;
	if (b->b_data) {
		memcpy(n, b->b_data, b->b_len);
		OPENSSL_cleanse(b->b_data, b->b_len > b->b_written ? b->b_len : b->b_written);
		free(b->b_data);
	}
	b->b_data = n;
	b->b_cap = ncap;
	return b->b_data + b->b_len;
}

/**
 * mk_buf_append() - copy bytes to the end
 * @b:    the buffer
 * @data: bytes
 * @len:  how many
 *
 * Return: 0, -ENOBUFS past b_max, -ENOMEM.
 */
int mk_buf_append(struct mk_buf *b, const void *data, size_t len)
{
	uint8_t *p;

	if (!len)
		return 0;
	if (b->b_len - b->b_off + len > b->b_max)
		return -ENOBUFS;
	p = mk_buf_reserve(b, len);
	if (!p)
		return -ENOMEM;
	memcpy(p, data, len);
	b->b_len += len;
	return 0;
}
