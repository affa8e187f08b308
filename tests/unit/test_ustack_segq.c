// SPDX-License-Identifier: MIT
/*
 * The afxdp NSM's receive-segment queue (ustack/segq.c):
 * stream and datagram reads, bounds, ownership of the queued buffers.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "segq.h"

struct buf {
	size_t len;
	uint8_t data[];
};

static int released;

static struct buf *mk(size_t len, uint8_t first)
{
	struct buf *b = malloc(sizeof(*b) + len);
	size_t i;

	b->len = len;
	for (i = 0; i < len; i++)
		b->data[i] = (uint8_t)(first + i);
	return b;
}

static size_t copy(void *obj, size_t off, void *dst, size_t len)
{
	struct buf *b = obj;

	assert_true(off + len <= b->len);
	memcpy(dst, b->data + off, len);
	return len;
}

static void release(void *obj)
{
	released++;
	free(obj);
}

static void test_init_args(void **state)
{
	struct nk_segq q;

	(void)state;
	assert_int_equal(nk_segq__init(&q, 0, 10, copy, release), -EINVAL);
	assert_int_equal(nk_segq__init(&q, 4, 0, copy, release), -EINVAL);
	assert_int_equal(nk_segq__init(&q, 4, 10, NULL, release), -EINVAL);
	assert_int_equal(nk_segq__init(&q, 5, 10, copy, release), 0);
	assert_int_equal(q.mask, 7); /* rounded up to a power of two */
	nk_segq__fini(&q);
	nk_segq__fini(NULL);
}

static void test_stream_reads_cross_entries(void **state)
{
	struct nk_segq q;
	uint8_t out[64];
	size_t i;

	(void)state;
	released = 0;
	assert_int_equal(nk_segq__init(&q, 8, 1000, copy, release), 0);
	assert_int_equal(nk_segq__push(&q, mk(10, 0), 10, 0, 0), 0);
	assert_int_equal(nk_segq__push(&q, mk(5, 10), 5, 0, 0), 0);
	assert_int_equal(nk_segq__push(&q, mk(20, 15), 20, 0, 0), 0);
	assert_int_equal(nk_segq__bytes(&q), 35);
	assert_int_equal(nk_segq__read(&q, out, 3), 3);
	assert_int_equal(nk_segq__read(&q, out + 3, 9), 9); /* 7 + 2 */
	assert_int_equal(released, 1);
	assert_int_equal(nk_segq__bytes(&q), 23);
	assert_int_equal(nk_segq__read(&q, out + 12, 64), 23);
	for (i = 0; i < 35; i++)
		assert_int_equal(out[i], i);
	assert_int_equal(released, 3);
	assert_int_equal(nk_segq__read(&q, out, 64), 0);
	nk_segq__fini(&q);
}

static void test_bounds(void **state)
{
	struct nk_segq q;
	struct buf *b;
	int i;

	(void)state;
	released = 0;
	assert_int_equal(nk_segq__init(&q, 4, 100, copy, release), 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(nk_segq__push(&q, mk(1, 0), 1, 0, 0), 0);
	b = mk(1, 0);
	assert_int_equal(nk_segq__push(&q, b, 1, 0, 0), -ENOBUFS);
	free(b); /* refused: still ours */
	nk_segq__fini(&q);
	assert_int_equal(released, 4);

	assert_int_equal(nk_segq__init(&q, 16, 100, copy, release), 0);
	assert_int_equal(nk_segq__push(&q, mk(60, 0), 60, 0, 0), 0);
	b = mk(41, 0);
	assert_int_equal(nk_segq__push(&q, b, 41, 0, 0), -ENOBUFS);
	assert_int_equal(nk_segq__push(&q, b, 40, 0, 0), 0); /* exactly full */
	nk_segq__fini(&q);
}

static void test_datagrams(void **state)
{
	struct nk_segq q;
	uint8_t out[8];
	uint32_t addr;
	uint16_t port;
	size_t full;

	(void)state;
	assert_int_equal(nk_segq__init(&q, 4, 1000, copy, release), 0);
	assert_int_equal(nk_segq__pop_dgram(&q, out, 8, NULL, NULL, NULL),
			 -EAGAIN);
	assert_int_equal(nk_segq__push(&q, mk(12, 1), 12, 0x0100000a, 0x3500),
			 0);
	assert_int_equal(nk_segq__push(&q, mk(3, 9), 3, 0x0200000a, 0x3600), 0);
	/* truncated to the buffer, the rest of the datagram discarded */
	assert_int_equal(nk_segq__pop_dgram(&q, out, 8, &addr, &port, &full),
			 8);
	assert_int_equal(full, 12);
	assert_int_equal(addr, 0x0100000a);
	assert_int_equal(port, 0x3500);
	assert_int_equal(out[0], 1);
	assert_int_equal(nk_segq__bytes(&q), 3);
	assert_int_equal(nk_segq__pop_dgram(&q, out, 8, &addr, &port, &full),
			 3);
	assert_int_equal(out[2], 11);
	assert_int_equal(addr, 0x0200000a);
	assert_int_equal(nk_segq__count(&q), 0);
	nk_segq__fini(&q);
}

/* An empty datagram is one: queued, counted, read as 0 bytes, in order. */
static void test_empty_datagrams(void **state)
{
	struct nk_segq q;
	uint8_t out[8] = { 0 };
	uint32_t addr;
	uint16_t port;
	size_t full = 99;

	(void)state;
	released = 0;
	assert_int_equal(nk_segq__init(&q, 4, 1000, copy, release), 0);
	assert_int_equal(nk_segq__push(&q, mk(0, 0), 0, 0x0100000a, 0x3500), 0);
	assert_int_equal(nk_segq__push(&q, mk(2, 5), 2, 0x0200000a, 0x3600), 0);
	assert_int_equal(nk_segq__count(&q), 2);
	assert_int_equal(nk_segq__bytes(&q), 2);
	assert_int_equal(nk_segq__pop_dgram(&q, out, 8, &addr, &port, &full),
			 0);
	assert_int_equal(full, 0);
	assert_int_equal(addr, 0x0100000a);
	assert_int_equal(port, 0x3500);
	assert_int_equal(nk_segq__count(&q), 1);
	assert_int_equal(nk_segq__pop_dgram(&q, out, 8, &addr, &port, &full),
			 2);
	assert_int_equal(out[0], 5);
	assert_int_equal(released, 2);
	/* A stream read passes over an empty entry. */
	assert_int_equal(nk_segq__push(&q, mk(0, 0), 0, 0, 0), 0);
	assert_int_equal(nk_segq__push(&q, mk(3, 7), 3, 0, 0), 0);
	assert_int_equal(nk_segq__read(&q, out, 8), 3);
	assert_int_equal(out[0], 7);
	assert_int_equal(nk_segq__count(&q), 0);
	nk_segq__fini(&q);
	assert_int_equal(released, 4);
}

static void test_wraparound(void **state)
{
	struct nk_segq q;
	uint8_t out[16];
	unsigned i;

	(void)state;
	released = 0;
	assert_int_equal(nk_segq__init(&q, 4, 1 << 20, copy, release), 0);
	for (i = 0; i < 10000; i++) {
		assert_int_equal(nk_segq__push(&q, mk(7, (uint8_t)i), 7, 0, 0),
				 0);
		if (i % 3 == 2) {
			while (nk_segq__read(&q, out, 5))
				;
		}
	}
	assert_int_equal(nk_segq__count(&q), 1);
	nk_segq__fini(&q);
	assert_int_equal(released, 10000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_args),
		cmocka_unit_test(test_stream_reads_cross_entries),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_datagrams),
		cmocka_unit_test(test_empty_datagrams),
		cmocka_unit_test(test_wraparound),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
