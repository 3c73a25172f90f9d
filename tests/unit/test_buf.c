// SPDX-License-Identifier: GPL-2.0
/*
 * Bounded buffers: the limit holds, and the wipe before a free covers every
 * byte that ever held data (b_dirty), however the data came and went, but
 * not the untouched rest of the allocation.
 */
#include <string.h>

#include "kselftest_harness.h"
#include "buf.h"

#define BUF_MAX (64 * 1024)

static const char data[4000];	/* what the bytes are does not matter here */

/* @b, empty with room for BUF_MAX, after @n bytes were appended. */
static int buf_with(struct mk_buf *b, size_t n)
{
	mk_buf_init(b, BUF_MAX);
	return mk_buf_append(b, data, n);
}

TEST(limit_holds)
{
	struct mk_buf b;

	mk_buf_init(&b, 1000);
	EXPECT_EQ(0, mk_buf_append(&b, "x", 1));
	EXPECT_EQ(NULL, mk_buf_reserve(&b, 1000));
	EXPECT_EQ(-ENOBUFS, mk_buf_append(&b, "y", 1000));
	EXPECT_EQ(1, mk_buf_used(&b));
	mk_buf_free(&b);
}

/* Data consumed or reset is gone from b_len, not from the wipe's reach. */
TEST(wipe_covers_consumed_data)
{
	struct mk_buf b;

	ASSERT_EQ(0, buf_with(&b, 200));
	mk_buf_consume(&b, 200);
	EXPECT_EQ(0, mk_buf_used(&b));
	EXPECT_EQ(200, b.b_dirty);
	ASSERT_EQ(0, mk_buf_append(&b, data, 50));
	mk_buf_reset(&b);
	EXPECT_EQ(200, b.b_dirty);
	ASSERT_EQ(0, mk_buf_append(&b, data, 300));
	mk_buf_reset(&b);
	EXPECT_EQ(300, b.b_dirty);
	mk_buf_free(&b);
	EXPECT_EQ(0, b.b_dirty);
	EXPECT_EQ(0, b.b_cap);
}

/* Room reserved but never written (a 16 KiB receive that got 20 bytes) is
 * not wiped; what the writer added to b_len is. */
TEST(wipe_skips_unwritten_room)
{
	struct mk_buf b;
	uint8_t *p;

	mk_buf_init(&b, BUF_MAX);
	p = mk_buf_reserve(&b, 16 * 1024 + 512);
	ASSERT_NE(NULL, p);
	EXPECT_LE(16 * 1024 + 512, b.b_cap);
	memcpy(p, "a1 LOGIN user pass\r\n", 20);
	b.b_len += 20;
	mk_buf_consume(&b, 20);
	EXPECT_EQ(20, b.b_dirty);
	mk_buf_free(&b);
}

/* Moving data to the front or to a larger allocation keeps the mark. */
TEST(mark_survives_move_and_growth)
{
	struct mk_buf b;

	ASSERT_EQ(0, buf_with(&b, 200));
	mk_buf_consume(&b, 100);
	/* No room at the end: the 100 unread bytes move to the front. */
	ASSERT_NE(NULL, mk_buf_reserve(&b, b.b_cap - 150));
	EXPECT_EQ(0, b.b_off);
	EXPECT_EQ(200, b.b_dirty);
	/* Growth: the old allocation was wiped, the new one holds 100. */
	ASSERT_EQ(0, mk_buf_append(&b, data, sizeof(data)));
	EXPECT_EQ(100 + sizeof(data), mk_buf_used(&b));
	mk_buf_reset(&b);
	EXPECT_EQ(100 + sizeof(data), b.b_dirty);
	mk_buf_free(&b);
}

TEST_HARNESS_MAIN
