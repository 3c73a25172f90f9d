// SPDX-License-Identifier: GPL-2.0
/*
 * Bounded buffers: the limit holds, a drained buffer gives its memory back
 * (an idle connection owns none), and the wipe before a free reaches every
 * byte that held data (b_written), even after the data moved.
 */
#include <stdint.h>
#include <string.h>

#include "kselftest_harness.h"
#include "buf.h"

#define BUF_MAX (64 * 1024)

static const char data[4000];	/* what the bytes are does not matter here */

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

/* Consumed to the end, or reset: nothing stays allocated. */
TEST(drained_buffer_is_freed)
{
	struct mk_buf b;

	mk_buf_init(&b, BUF_MAX);
	ASSERT_EQ(0, mk_buf_append(&b, data, 200));
	mk_buf_consume(&b, 150);
	EXPECT_NE(NULL, b.b_data);
	mk_buf_consume(&b, 50);
	EXPECT_EQ(NULL, b.b_data);
	EXPECT_EQ(0, b.b_cap);
	ASSERT_EQ(0, mk_buf_append(&b, data, 300));
	mk_buf_reset(&b);
	EXPECT_EQ(NULL, b.b_data);
	EXPECT_EQ(0, b.b_written);
}

/* Moving unread bytes to the front shrinks b_len: the mark keeps what lay
 * past it, so the free still wipes the old bytes there. */
TEST(mark_survives_move)
{
	struct mk_buf b;
	size_t cap;

	mk_buf_init(&b, BUF_MAX);
	ASSERT_EQ(0, mk_buf_append(&b, data, 200));
	cap = b.b_cap;
	mk_buf_consume(&b, 100);
	ASSERT_NE(NULL, mk_buf_reserve(&b, cap - 150));
	EXPECT_EQ(0, b.b_off);
	EXPECT_EQ(100, mk_buf_used(&b));
	EXPECT_LE(200, b.b_written);
	mk_buf_free(&b);
}

/* Borrowed memory (a ring buffer) is used in place; what is left unread
 * moves into memory of the buffer's own, exactly its size. */
TEST(borrowed_memory_is_copied_only_when_kept)
{
	uint8_t ring[64];
	struct mk_buf b;

	memset(ring, 'r', sizeof(ring));
	mk_buf_init(&b, BUF_MAX);
	mk_buf_borrow(&b, ring, sizeof(ring));
	EXPECT_EQ((uintptr_t)ring, (uintptr_t)b.b_data);
	mk_buf_consume(&b, 60);
	ASSERT_EQ(0, mk_buf_unborrow(&b));
	EXPECT_NE((uintptr_t)ring, (uintptr_t)b.b_data);
	EXPECT_EQ(4, mk_buf_used(&b));
	EXPECT_EQ(4, b.b_cap);
	EXPECT_EQ(0, memcmp(mk_buf_head(&b), "rrrr", 4));
	mk_buf_free(&b);
}

TEST_HARNESS_MAIN
