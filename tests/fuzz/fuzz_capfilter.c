// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer target: the capability filter on backend output. Byte 0 picks
 * the protocol and drop_greeting, byte 1 the read size; the rest is what
 * the backend sends. Checked beyond the sanitizers: the output does not
 * depend on how the stream is split, done stays done, the filter never
 * emits more than it was given (it only removes).
 */
#include <stdlib.h>
#include <string.h>

#include "capfilter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run(enum mk_protocol proto, bool drop, const uint8_t *in, size_t len, size_t chunk,
	       struct mk_buf *out)
{
	struct mk_capfilter *f = mk_capfilter_new(proto, drop);
	size_t pos = 0, n, before;
	int ret = 0, done = 0;

	if (!f)
		abort();
	/* Bounded: pos grows by at least one byte per round. */
	while (pos < len) {
		n = len - pos < chunk ? len - pos : chunk;
		before = mk_buf_used(out);
		ret = mk_capfilter_feed(f, in + pos, n, out);
		if (ret < 0 || (done && ret != 1))
			abort();
		if (done && mk_buf_used(out) - before != n)
			abort();
		done = ret;
		pos += n;
	}
	if (mk_buf_used(out) > len)
		abort();
	mk_capfilter_free(f);
	return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mk_buf whole, chunked;
	enum mk_protocol proto;
	size_t chunk;
	bool drop;

	if (size < 2)
		return 0;
	proto = (enum mk_protocol)(data[0] % 3);
	drop = data[0] & 4;
	chunk = data[1] ? data[1] : 1;
	data += 2;
	size -= 2;
	mk_buf_init(&whole, size + 1);
	mk_buf_init(&chunked, size + 1);
	if (run(proto, drop, data, size, size ? size : 1, &whole) !=
	    run(proto, drop, data, size, chunk, &chunked))
		abort();
	if (mk_buf_used(&whole) != mk_buf_used(&chunked) ||
	    (mk_buf_used(&whole) &&
	     memcmp(mk_buf_head(&whole), mk_buf_head(&chunked), mk_buf_used(&whole))))
		abort();
	mk_buf_free(&whole);
	mk_buf_free(&chunked);
	return 0;
}
