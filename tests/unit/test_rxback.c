// SPDX-License-Identifier: MIT
/*
 * Unread data given back (core/rxback.c): order, peeks, partial reads,
 * datagram records and batches, FIONREAD, the caps, and hostile records.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "netkernel/abi.h"
#include "rxback.h"

static int rcv(struct nk_rxback **q, int type, uint8_t *buf, uint32_t len,
	       uint32_t sqe_flags, uint32_t msg_flags, uint32_t *fl,
	       uint32_t *aux)
{
	uint64_t bytes;

	return nk_rxback__recv(q, type, buf, len, sqe_flags, msg_flags, fl, aux,
			       &bytes);
}

static void test_stream_order(void **state)
{
	struct nk_rxback *q = NULL;
	uint8_t buf[16];
	uint32_t fl, aux;

	(void)state;
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM,
					   (const uint8_t *)"world", 5),
			 5);
	/* Read last from the head: goes in front. */
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM,
					   (const uint8_t *)"hello ", 6),
			 6);
	assert_int_equal(nk_rxback__bytes(q), 11);
	assert_int_equal(nk_rxback__fionread(q, SOCK_STREAM, 100), 111);
	/* A peek leaves it; spans both pieces. */
	assert_int_equal(rcv(&q, SOCK_STREAM, buf, 8, 0, MSG_PEEK, &fl, &aux),
			 8);
	assert_memory_equal(buf, "hello wo", 8);
	assert_int_equal(nk_rxback__bytes(q), 11);
	assert_int_equal(rcv(&q, SOCK_STREAM, buf, 4, 0, 0, &fl, &aux), 4);
	assert_memory_equal(buf, "hell", 4);
	assert_int_equal(rcv(&q, SOCK_STREAM, buf, 4, 0, 0, &fl, &aux), 4);
	assert_memory_equal(buf, "o wo", 4);
	assert_int_equal(nk_rxback__bytes(q), 3);
	assert_int_equal(rcv(&q, SOCK_STREAM, buf, 16, 0, 0, &fl, &aux), 3);
	assert_memory_equal(buf, "rld", 3);
	/* Empty: gone, the NSM answers from now on. */
	assert_null(q);
	assert_int_equal(nk_rxback__fionread(q, SOCK_STREAM, 7), 7);
}

static void test_stream_addr(void **state)
{
	struct nk_rxback *q = NULL;
	uint8_t buf[64];
	uint32_t fl, aux;
	struct nk_sockaddr a;

	(void)state;
	memset(buf, 0xee, sizeof(buf));
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM,
					   (const uint8_t *)"abc", 3),
			 3);
	assert_int_equal(
		rcv(&q, SOCK_STREAM, buf, 40, NK_SQE_F_ADDR, 0, &fl, &aux), 3);
	memcpy(&a, buf, sizeof(a));
	assert_int_equal(a.family, 0);
	assert_int_equal(fl, 0);
	assert_memory_equal(buf + 32, "abc", 3);
	assert_null(q);
}

static void test_caps(void **state)
{
	struct nk_rxback *q = NULL;
	uint8_t *big = calloc(1, NK_RXBACK_MAX_BYTES + 1);

	(void)state;
	assert_non_null(big);
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM, big, 0), -EINVAL);
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM, big,
					   NK_RXBACK_MAX_BYTES + 1),
			 -ENOBUFS);
	assert_null(q);
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM, big,
					   NK_RXBACK_MAX_BYTES),
			 (int)NK_RXBACK_MAX_BYTES);
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM, big, 1), -ENOBUFS);
	nk_rxback__free(&q);
	/* Many tiny pieces: the item cap, not just bytes. */
	for (unsigned i = 0; i < NK_RXBACK_MAX_ITEMS; i++)
		assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM, big, 1), 1);
	assert_int_equal(nk_rxback__unread(&q, SOCK_STREAM, big, 1), -ENOBUFS);
	nk_rxback__free(&q);
	assert_null(q);
	free(big);
}

/* Append a record at *off of buf. */
static void put_rec(uint8_t *buf, uint32_t *off, uint32_t len, int32_t err,
		    uint16_t port, uint8_t fill)
{
	struct nk_dgram h = { .len = len, .full_len = len, .err = err };

	h.addr.family = AF_INET;
	h.addr.port = port;
	memcpy(buf + *off, &h, sizeof(h));
	memset(buf + *off + sizeof(h), fill, len);
	*off = (*off + (uint32_t)sizeof(h) + len + 7) & ~7u;
}

static void test_dgrams(void **state)
{
	struct nk_rxback *q = NULL;
	uint8_t in[1024] = { 0 }, buf[512];
	uint32_t off = 0, fl, aux;
	struct nk_sockaddr a;
	struct nk_dgram h;

	(void)state;
	put_rec(in, &off, 5, 0, 1, 'a');
	put_rec(in, &off, 100, 0, 2, 'b');
	put_rec(in, &off, 0, 0, 3, 0);
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, off), 3);
	assert_int_equal(nk_rxback__fionread(q, SOCK_DGRAM, 999), 5);
	/* Single RECV with the source, peeked, then taken. */
	assert_int_equal(rcv(&q, SOCK_DGRAM, buf, 64, NK_SQE_F_ADDR, MSG_PEEK,
			     &fl, &aux),
			 5);
	assert_true(fl & NK_CQE_F_ADDR);
	memcpy(&a, buf, sizeof(a));
	assert_int_equal(a.port, 1);
	assert_int_equal(
		rcv(&q, SOCK_DGRAM, buf, 64, NK_SQE_F_ADDR, 0, &fl, &aux), 5);
	assert_memory_equal(buf + 32, "aaaaa", 5);
	/* Cut: TRUNC, and MSG_TRUNC gives the full length. */
	assert_int_equal(rcv(&q, SOCK_DGRAM, buf, 10, 0, MSG_TRUNC, &fl, &aux),
			 100);
	assert_true(fl & NK_CQE_F_TRUNC);
	assert_int_equal(aux, 10);
	assert_int_equal(rcv(&q, SOCK_DGRAM, buf, 10, 0, 0, &fl, &aux), 0);
	assert_null(q);

	/* A batch: records in order, an error record ends it. */
	off = 0;
	put_rec(in, &off, 7, 0, 1, 'x');
	put_rec(in, &off, 0, ECONNREFUSED, 0, 0);
	put_rec(in, &off, 9, 0, 2, 'y');
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, off), 3);
	assert_int_equal(rcv(&q, SOCK_DGRAM, buf, sizeof(buf), NK_SQE_F_BATCH,
			     0, &fl, &aux),
			 2);
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.len, 7);
	assert_memory_equal(buf + sizeof(h), "xxxxxxx", 7);
	memcpy(&h, buf + 56, sizeof(h));
	assert_int_equal(h.err, ECONNREFUSED);
	assert_int_equal(aux, 56 + sizeof(h));
	/* A single RECV of an error record returns it. */
	nk_rxback__free(&q);
	off = 0;
	put_rec(in, &off, 0, EHOSTUNREACH, 0, 0);
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, off), 1);
	assert_int_equal(nk_rxback__fionread(q, SOCK_DGRAM, 3), 0);
	assert_int_equal(rcv(&q, SOCK_DGRAM, buf, 64, 0, 0, &fl, &aux),
			 -EHOSTUNREACH);
	assert_null(q);
}

static void test_hostile_dgrams(void **state)
{
	struct nk_rxback *q = NULL;
	uint8_t in[512] = { 0 };
	struct nk_dgram h = { .len = 4, .full_len = 4 };
	uint32_t off = 0;

	(void)state;
	h.addr.family = AF_INET;
	/* len past the end */
	h.len = 400;
	h.full_len = 400;
	memcpy(in, &h, sizeof(h));
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, 100), -EINVAL);
	/* full_len below len, resv set, odd family, negative err */
	h.len = 4;
	h.full_len = 3;
	memcpy(in, &h, sizeof(h));
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, 52), -EINVAL);
	h.full_len = 4;
	h.resv = 1;
	memcpy(in, &h, sizeof(h));
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, 52), -EINVAL);
	h.resv = 0;
	h.addr.family = 1;
	memcpy(in, &h, sizeof(h));
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, 52), -EINVAL);
	h.addr.family = AF_INET6;
	h.err = -5;
	h.len = 0;
	memcpy(in, &h, sizeof(h));
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, 48), -EINVAL);
	/* A good record then a truncated header: nothing is taken. */
	off = 0;
	put_rec(in, &off, 4, 0, 1, 'z');
	assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, in, off + 20),
			 -EINVAL);
	assert_null(q);
	/* Too many records at once. */
	{
		uint32_t n = NK_RXBACK_MAX_ITEMS + 1, sz = n * 48;
		uint8_t *many = calloc(1, sz);

		assert_non_null(many);
		off = 0;
		for (uint32_t i = 0; i < n; i++)
			put_rec(many, &off, 0, 0, 1, 0);
		assert_int_equal(nk_rxback__unread(&q, SOCK_DGRAM, many, off),
				 -ENOBUFS);
		assert_null(q);
		free(many);
	}
	assert_int_equal(nk_rxback__unread(&q, 99, in, 48), -EOPNOTSUPP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stream_order),
		cmocka_unit_test(test_stream_addr),
		cmocka_unit_test(test_caps),
		cmocka_unit_test(test_dgrams),
		cmocka_unit_test(test_hostile_dgrams),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
