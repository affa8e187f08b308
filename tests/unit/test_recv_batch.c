// SPDX-License-Identifier: MIT
/*
 * nk_rbatch__fill() (userspace/nkd/nsm/kernel/recv_batch.c) with a fake
 * socket: records laid out as docs/abi.md §5 "Datagram batches" says,
 * never a byte outside the guest's buffer, at most NK_RECV_BATCH_MAX,
 * errors become records and end the batch.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "recv_batch.h"

#define GUARD 64u
#define CANARY 0xA5

/* A fake kernel socket: queued datagram lengths, an optional error. */
struct fake {
	uint32_t lens[300];
	int n, next;
	int err_at; /* index that fails with -ECONNREFUSED, -1 none */
	uint32_t max_room_seen;
};

static int fake_recv(void *arg, uint8_t *data, uint32_t room,
		     struct sockaddr_storage *sa, socklen_t *salen)
{
	struct fake *f = arg;
	struct sockaddr_in *s4 = (struct sockaddr_in *)sa;
	uint32_t len;

	if (f->next >= f->n)
		return -EAGAIN;
	if (f->next == f->err_at) {
		f->next++;
		return -ECONNREFUSED;
	}
	len = f->lens[f->next];
	/* As batch_recv_one: only a datagram that fits whole is taken. */
	if (len > room)
		return -EAGAIN;
	if (room > f->max_room_seen)
		f->max_room_seen = room;
	memset(data, (int)(f->next & 0xff), len);
	s4->sin_family = AF_INET;
	s4->sin_port = htons((uint16_t)(1000 + f->next));
	s4->sin_addr.s_addr = htonl(0x7f000001);
	*salen = sizeof(*s4);
	f->next++;
	return (int)len;
}

/* A guest buffer with canaries on both sides. */
static uint8_t *guarded(uint32_t len)
{
	uint8_t *m = malloc(len + 2 * GUARD);

	memset(m, CANARY, len + 2 * GUARD);
	return m + GUARD;
}

static void check_guards(uint8_t *buf, uint32_t len)
{
	for (uint32_t i = 0; i < GUARD; i++) {
		assert_int_equal(buf[-1 - (int)i], CANARY);
		assert_int_equal(buf[len + i], CANARY);
	}
	free(buf - GUARD);
}

/* Walks the records as a guest would; returns how many, checks each. */
static int walk(const uint8_t *buf, uint32_t used, const struct fake *f,
		int first)
{
	uint32_t off = 0;
	int n = 0;

	while (off < used) {
		struct nk_dgram h;

		assert_true(used - off >= sizeof(h));
		memcpy(&h, buf + off, sizeof(h));
		assert_int_equal(h.resv, 0);
		assert_true(h.len <= used - off - sizeof(h));
		if (!h.err) {
			int idx = first + n;

			assert_int_equal(h.full_len, f->lens[idx]);
			assert_int_equal(h.len, f->lens[idx]);
			for (uint32_t i = 0; i < h.len; i++)
				assert_int_equal(buf[off + sizeof(h) + i],
						 idx & 0xff);
			if (n) {
				assert_int_equal(h.addr.family, AF_INET);
				assert_int_equal(ntohs(h.addr.port),
						 1000 + idx);
			}
		}
		n++;
		off = (off + (uint32_t)sizeof(h) + h.len + NK_DGRAM_ALIGN - 1) &
		      ~(NK_DGRAM_ALIGN - 1);
	}
	return n;
}

static void test_packs_in_order(void **state)
{
	struct fake f = { .n = 20, .next = 1, .err_at = -1 };
	uint32_t len = 8192, used, data;
	uint8_t *buf = guarded(len);
	struct sockaddr_storage sa = { 0 };
	int r;

	(void)state;
	for (int i = 0; i < f.n; i++)
		f.lens[i] = (uint32_t)(i * 37) % 300;
	/* The first datagram: already received by the caller. */
	memset(buf + sizeof(struct nk_dgram), 0, f.lens[0]);
	r = nk_rbatch__fill(buf, len, (int)f.lens[0], &sa, sizeof(sa),
			    fake_recv, &f, &used, &data);
	assert_int_equal(r, 20);
	assert_true(used <= len);
	assert_int_equal(walk(buf, used, &f, 0), 20);
	check_guards(buf, len);
}

static void test_stops_when_full(void **state)
{
	struct fake f = { .n = 100, .next = 1, .err_at = -1 };
	uint32_t len = 1000, used, data;
	uint8_t *buf = guarded(len);
	struct sockaddr_storage sa = { 0 };
	int r;

	(void)state;
	for (int i = 0; i < f.n; i++)
		f.lens[i] = 99; /* odd: padding between records */
	memset(buf + sizeof(struct nk_dgram), 0, 99);
	r = nk_rbatch__fill(buf, len, 99, &sa, sizeof(sa), fake_recv, &f, &used,
			    &data);
	assert_true(r >= 2 && r < 100);
	assert_true(used <= len);
	assert_int_equal(walk(buf, used, &f, 0), r);
	assert_int_equal(data, 99u * (uint32_t)r);
	/* What did not fit is still queued, for the next RECV. */
	assert_int_equal(f.next, r);
	assert_true(f.max_room_seen <= len - sizeof(struct nk_dgram));
	check_guards(buf, len);
}

static void test_max_records(void **state)
{
	struct fake f = { .n = 300, .next = 1, .err_at = -1 };
	uint32_t len = 65536, used, data;
	uint8_t *buf = guarded(len);
	struct sockaddr_storage sa = { 0 };

	(void)state;
	for (int i = 0; i < f.n; i++)
		f.lens[i] = 0; /* empty datagrams are datagrams too */
	assert_int_equal(nk_rbatch__fill(buf, len, 0, &sa, sizeof(sa),
					 fake_recv, &f, &used, &data),
			 NK_RECV_BATCH_MAX);
	assert_int_equal(walk(buf, used, &f, 0), NK_RECV_BATCH_MAX);
	check_guards(buf, len);
}

static void test_error_record(void **state)
{
	struct fake f = { .n = 10, .next = 1, .err_at = 4 };
	uint32_t len = 4096, used, data, off = 0;
	uint8_t *buf = guarded(len);
	struct sockaddr_storage sa = { 0 };
	struct nk_dgram h;
	int r;

	(void)state;
	for (int i = 0; i < f.n; i++)
		f.lens[i] = 10;
	r = nk_rbatch__fill(buf, len, 10, &sa, sizeof(sa), fake_recv, &f, &used,
			    &data);
	assert_int_equal(r, 5); /* 0..3, then the error */
	for (int i = 0; i < 4; i++) {
		memcpy(&h, buf + off, sizeof(h));
		assert_int_equal(h.err, 0);
		off = (off + (uint32_t)sizeof(h) + h.len + 7) & ~7u;
	}
	memcpy(&h, buf + off, sizeof(h));
	assert_int_equal(h.err, ECONNREFUSED);
	assert_int_equal(h.len, 0);
	assert_int_equal(used, off + sizeof(h));
	check_guards(buf, len);
}

static void test_first_cut_and_errors(void **state)
{
	struct fake f = { .n = 0, .err_at = -1 };
	uint32_t len = 100, used, data;
	uint8_t *buf = guarded(len);
	struct sockaddr_storage sa = { 0 };
	struct nk_dgram h;

	(void)state;
	/* A first datagram longer than the room: cut, full length kept. */
	assert_int_equal(nk_rbatch__fill(buf, len, 5000, &sa, sizeof(sa),
					 fake_recv, &f, &used, &data),
			 1);
	memcpy(&h, buf, sizeof(h));
	assert_int_equal(h.len, len - sizeof(h));
	assert_int_equal(h.full_len, 5000);
	assert_int_equal(used, len);
	/* An error first is the RECV's result; nothing written. */
	assert_int_equal(nk_rbatch__fill(buf, len, -EAGAIN, &sa, sizeof(sa),
					 fake_recv, &f, &used, &data),
			 -EAGAIN);
	assert_int_equal(used, 0);
	/* No callback (a shared socket): one record. */
	f.n = 5;
	assert_int_equal(nk_rbatch__fill(buf, len, 1, &sa, sizeof(sa), NULL, &f,
					 &used, &data),
			 1);
	/* Too small for a header: refused, nothing written. */
	assert_int_equal(nk_rbatch__fill(buf, 47, 1, &sa, sizeof(sa), fake_recv,
					 &f, &used, &data),
			 -EINVAL);
	check_guards(buf, len);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_packs_in_order),
		cmocka_unit_test(test_stops_when_full),
		cmocka_unit_test(test_max_records),
		cmocka_unit_test(test_error_record),
		cmocka_unit_test(test_first_cut_and_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
