// SPDX-License-Identifier: MIT
/*
 * The afxdp NSM's pure-ACK coalescing (ustack/ackq.c): only a newer ACK
 * of the same connection supersedes a held one; duplicate ACKs, other
 * connections, data and wire order are kept.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "ackq.h"

#define MAXF 64
static uint8_t sent[MAXF][1600];
static size_t sent_len[MAXF];
static unsigned nsent;

static void emit(void *arg, const uint8_t *f, size_t len)
{
	(void)arg;
	assert_true(nsent < MAXF);
	memcpy(sent[nsent], f, len);
	sent_len[nsent++] = len;
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	wr16(p, (uint16_t)(v >> 16));
	wr16(p + 2, (uint16_t)v);
}

/* Ethernet + IPv4 + TCP from 10.0.0.1:sport to 10.0.0.2:80, plen bytes. */
static size_t mk(uint8_t *f, uint16_t sport, uint32_t ack, uint8_t flags,
		 uint16_t plen)
{
	uint8_t *ip = f + 14, *th = ip + 20;

	memset(f, 0, 14 + 40 + plen);
	wr16(f + 12, 0x0800);
	ip[0] = 0x45;
	wr16(ip + 2, (uint16_t)(40 + plen));
	ip[8] = 64;
	ip[9] = 6;
	wr32(ip + 12, 0x0a000001);
	wr32(ip + 16, 0x0a000002);
	wr16(th, sport);
	wr16(th + 2, 80);
	wr32(th + 8, ack);
	th[12] = 5 << 4;
	th[13] = flags;
	return 14 + 40 + plen;
}

static uint32_t ack_of(unsigned i)
{
	const uint8_t *t = sent[i] + 34 + 8;

	return (uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 |
	       (uint32_t)t[2] << 8 | t[3];
}

static void test_newer_ack_supersedes(void **state)
{
	struct nk_ackq q = { 0 };
	uint8_t f[1600];
	size_t n;

	(void)state;
	nsent = 0;
	for (uint32_t a = 1000; a <= 5000; a += 1000) {
		n = mk(f, 1234, a, 0x10, 0);
		assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 1);
	}
	assert_int_equal(nsent, 0);
	nk_ackq__drain(&q, emit, NULL);
	assert_int_equal(nsent, 1);
	assert_int_equal(ack_of(0), 5000);
	assert_int_equal(q.coalesced, 4);
	/* across the 2^32 wrap too */
	nsent = 0;
	n = mk(f, 1234, 0xfffffff0u, 0x10, 0);
	nk_ackq__out(&q, f, n, emit, NULL);
	n = mk(f, 1234, 0x10, 0x10, 0);
	nk_ackq__out(&q, f, n, emit, NULL);
	nk_ackq__drain(&q, emit, NULL);
	assert_int_equal(nsent, 1);
	assert_int_equal(ack_of(0), 0x10);
}

static void test_dupacks_kept(void **state)
{
	struct nk_ackq q = { 0 };
	uint8_t f[1600];
	size_t n;

	(void)state;
	nsent = 0;
	for (int i = 0; i < 3; i++) {
		n = mk(f, 1234, 7000, 0x10, 0);
		nk_ackq__out(&q, f, n, emit, NULL);
	}
	nk_ackq__drain(&q, emit, NULL);
	assert_int_equal(nsent, 3);
	assert_int_equal(q.coalesced, 0);
	/* an older ACK never replaces a newer one */
	nsent = 0;
	n = mk(f, 1234, 9000, 0x10, 0);
	nk_ackq__out(&q, f, n, emit, NULL);
	n = mk(f, 1234, 8000, 0x10, 0);
	nk_ackq__out(&q, f, n, emit, NULL);
	nk_ackq__drain(&q, emit, NULL);
	assert_int_equal(nsent, 2);
	assert_int_equal(ack_of(0), 9000);
	assert_int_equal(ack_of(1), 8000);
}

static void test_flows_and_order(void **state)
{
	struct nk_ackq q = { 0 };
	uint8_t f[1600];
	size_t n;

	(void)state;
	nsent = 0;
	n = mk(f, 1, 100, 0x10, 0);
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 1);
	n = mk(f, 2, 200, 0x10, 0);
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 1);
	/* a FIN of flow 1 with an older ack: the held ACK goes first */
	n = mk(f, 1, 50, 0x11, 0);
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 0);
	assert_int_equal(nsent, 1);
	assert_int_equal(ack_of(0), 100);
	/* data of flow 2 acknowledging as much: the held ACK is not needed */
	n = mk(f, 2, 200, 0x18, 100);
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 0);
	assert_int_equal(nsent, 1);
	assert_int_equal(q.n, 0);
	/* a SYN (no ACK flag) and a RST are never held */
	n = mk(f, 3, 0, 0x02, 0);
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 0);
	n = mk(f, 3, 0, 0x04, 0);
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 0);
	/* not TCP, or IP options: passed through */
	n = mk(f, 4, 1, 0x10, 0);
	f[14 + 9] = 17;
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 0);
	n = mk(f, 4, 1, 0x10, 0);
	f[14] = 0x46;
	assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL), 0);
	assert_int_equal(nk_ackq__out(&q, f, 20, emit, NULL), 0);
}

static void test_full(void **state)
{
	struct nk_ackq q = { 0 };
	uint8_t f[1600];
	size_t n;

	(void)state;
	nsent = 0;
	for (uint16_t p = 1; p <= NK_ACKQ_MAX + 3; p++) {
		n = mk(f, p, 1, 0x10, 0);
		assert_int_equal(nk_ackq__out(&q, f, n, emit, NULL),
				 p <= NK_ACKQ_MAX);
	}
	nk_ackq__drain(&q, emit, NULL);
	assert_int_equal(nsent, NK_ACKQ_MAX);
	assert_int_equal(q.n, 0);
}

int main(void)
{
	const struct CMUnitTest t[] = {
		cmocka_unit_test(test_newer_ack_supersedes),
		cmocka_unit_test(test_dupacks_kept),
		cmocka_unit_test(test_flows_and_order),
		cmocka_unit_test(test_full),
	};

	return cmocka_run_group_tests(t, NULL, NULL);
}
