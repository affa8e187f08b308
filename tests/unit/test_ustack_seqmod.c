// SPDX-License-Identifier: MIT
/*
 * Sequence number modulation of the afxdp engine
 * (ustack/seqmod.c): SipHash test vector, RFC 1624 updates
 * against a full recompute, translation both ways, retransmitted and new
 * SYNs, retransmissions counted, wraparound, SACK blocks at odd offsets,
 * table bound and sweep.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "pkt.h"
#include "seqmod.h"

#define LA 0x0a000005u /* host order; frames carry network order */
#define RA 0x0a000002u
#define LP 80
#define RP 40000

static const uint8_t KEY[32] = { 1,  2,	 3,  4,	 5,  6,	 7,  8,	 9,  10, 11,
				 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22,
				 23, 24, 25, 26, 27, 28, 29, 30, 31, 32 };

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/*
 * Ethernet + IPv4 + TCP from src to dst with flags, seq, ack, the given
 * options (padded to 4 bytes) and plen payload bytes; correct checksums.
 */
static size_t mk(uint8_t *f, uint32_t src, uint16_t sport, uint32_t dst,
		 uint16_t dport, uint8_t flags, uint32_t seq, uint32_t ack,
		 const uint8_t *opt, size_t olen, size_t plen)
{
	size_t doff = 20 + ((olen + 3) & ~(size_t)3), ip_len = 20 + doff + plen;
	uint8_t *ip = f + 14, *t = ip + 20;
	struct nk_pkt_info pi;
	size_t i;

	memset(f, 0, 14 + ip_len);
	memcpy(f, "\x02\0\0\0\0\1\x02\0\0\0\0\2", 12);
	put16(f + 12, 0x0800);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)ip_len);
	ip[8] = 64;
	ip[9] = 6;
	put32(ip + 12, src);
	put32(ip + 16, dst);
	put16(ip + 10, (uint16_t)~nk_csum_fold(nk_csum_add(0, ip, 20)));
	put16(t, sport);
	put16(t + 2, dport);
	put32(t + 4, seq);
	put32(t + 8, ack);
	t[12] = (uint8_t)(doff / 4 << 4);
	t[13] = flags;
	put16(t + 14, 65535);
	if (olen)
		memcpy(t + 20, opt, olen);
	for (i = 0; i < plen; i++)
		t[doff + i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(nk_pkt_parse(f, 14 + ip_len, &pi), NK_PKT_OK);
	nk_pkt_fill_l4_csum(f, &pi);
	return 14 + ip_len;
}

/* The checksum is right: a full recompute agrees. */
static void csum_valid(uint8_t *f, size_t len)
{
	struct nk_pkt_info pi;

	assert_int_equal(nk_pkt_parse(f, len, &pi), NK_PKT_OK);
	assert_int_equal(nk_pkt_l4_csum(f, &pi, 0), NK_CSUM_OK);
}

#define T(f) ((f) + 34)

static struct nk_seqmod *new_sm(uint32_t max)
{
	struct nk_seqmod *sm;

	assert_int_equal(nk_seqmod__create(max, KEY, &sm), 0);
	return sm;
}

/* lwIP sends a SYN-ACK with iss; returns the wire ISN. */
static uint32_t synack(struct nk_seqmod *sm, uint32_t iss, uint64_t now)
{
	uint8_t f[128];
	struct nk_seqmod_undo u;
	size_t n = mk(f, LA, LP, RA, RP, 0x12, iss, 1000, NULL, 0, 0);
	uint32_t w;

	assert_int_equal(nk_seqmod__out(sm, f, n, now, &u), NK_SEQMOD_XLATED);
	csum_valid(f, n);
	w = get32(T(f) + 4);
	nk_seqmod__undo(f, &u);
	assert_int_equal(get32(T(f) + 4), iss);
	csum_valid(f, n);
	return w;
}

static void test_siphash_vector(void **state)
{
	uint8_t k[16], m[15];
	unsigned i;

	(void)state;
	for (i = 0; i < 16; i++)
		k[i] = (uint8_t)i;
	for (i = 0; i < 15; i++)
		m[i] = (uint8_t)i;
	/* the SipHash paper, appendix A */
	assert_true(nk_siphash24(k, m, 15) == 0xa129ca6149be45e5ULL);
}

static void test_csum_update_matches_recompute(void **state)
{
	uint8_t f[128];
	size_t n;
	unsigned i;

	(void)state;
	srand(7);
	for (i = 0; i < 2000; i++) {
		uint32_t a = (uint32_t)rand() ^ (uint32_t)rand() << 16;
		uint32_t b = (uint32_t)rand() ^ (uint32_t)rand() << 16;
		uint32_t oa, nb;
		uint16_t c;

		if (i < 4) /* edges: zero, all ones */
			a = i & 1 ? 0 : 0xffffffffu,
			b = i & 2 ? 0 : 0xffffffffu;
		n = mk(f, LA, LP, RA, RP, 0x10, a, 5, NULL, 0, i % 13);
		memcpy(&oa, T(f) + 4, 4);
		put32(T(f) + 4, b);
		memcpy(&nb, T(f) + 4, 4);
		memcpy(&c, T(f) + 16, 2);
		c = nk_csum_update32(c, oa, nb);
		memcpy(T(f) + 16, &c, 2);
		csum_valid(f, n);
	}
}

static void test_translation_both_ways(void **state)
{
	struct nk_seqmod *sm = new_sm(16);
	struct nk_seqmod_undo u;
	struct nk_seqmod_stats st;
	uint8_t f[2048];
	uint32_t iss = 6510, w, off;
	size_t n;

	(void)state;
	w = synack(sm, iss, 1000000);
	off = w - iss;
	assert_true(off != 0);
	/* a data segment out: seq + off */
	n = mk(f, LA, LP, RA, RP, 0x18, iss + 1, 1001, NULL, 0, 1400);
	assert_int_equal(nk_seqmod__out(sm, f, n, 2000000, &u),
			 NK_SEQMOD_XLATED);
	assert_int_equal(get32(T(f) + 4), iss + 1 + off);
	assert_int_equal(get32(T(f) + 8), 1001); /* ack untouched */
	csum_valid(f, n);
	/* its ACK in: ack - off, seq untouched */
	n = mk(f, RA, RP, LA, LP, 0x10, 1001, w + 1401, NULL, 0, 0);
	assert_int_equal(nk_seqmod__in(sm, f, n), 1);
	assert_int_equal(get32(T(f) + 8), iss + 1401);
	assert_int_equal(get32(T(f) + 4), 1001);
	csum_valid(f, n);
	/* a segment without ACK (e.g. a RST) keeps its fields */
	n = mk(f, RA, RP, LA, LP, 0x04, 1001, 77, NULL, 0, 0);
	assert_int_equal(nk_seqmod__in(sm, f, n), 1);
	assert_int_equal(get32(T(f) + 8), 77);
	csum_valid(f, n);
	/* other connections pass untouched */
	n = mk(f, RA, RP + 1, LA, LP, 0x10, 1, 2, NULL, 0, 10);
	assert_int_equal(nk_seqmod__in(sm, f, n), 0);
	assert_int_equal(get32(T(f) + 8), 2);
	n = mk(f, LA, LP, RA, RP + 1, 0x10, 3, 4, NULL, 0, 10);
	assert_int_equal(nk_seqmod__out(sm, f, n, 0, &u), NK_SEQMOD_PASS);
	assert_int_equal(get32(T(f) + 4), 3);
	nk_seqmod__stats(sm, &st);
	assert_int_equal(st.entries, 1);
	assert_int_equal(st.created, 1);
	nk_seqmod__destroy(sm);
}

/* out: lwIP sends (LA,LP)->(RA,RP) with flags, seq and plen bytes. */
static void out(struct nk_seqmod *sm, uint8_t flags, uint32_t seq, size_t plen)
{
	uint8_t f[2048];
	struct nk_seqmod_undo u;
	size_t n = mk(f, LA, LP, RA, RP, flags, seq, 1001, NULL, 0, plen);

	assert_int_equal(nk_seqmod__out(sm, f, n, 1000000, &u),
			 NK_SEQMOD_XLATED);
}

static uint64_t retrans(struct nk_seqmod *sm)
{
	struct nk_seqmod_stats st;

	nk_seqmod__stats(sm, &st);
	return st.retrans;
}

/* Segments sent again are counted; new ones, pure ACKs and RSTs not. */
static void test_retransmits_counted(void **state)
{
	struct nk_seqmod *sm = new_sm(16);
	uint32_t iss = 0xfffffff0u; /* the sequence space wraps below */

	(void)state;
	out(sm, 0x12, iss, 0); /* SYN-ACK */
	assert_int_equal(retrans(sm), 0);
	out(sm, 0x12, iss, 0); /* SYN-ACK again */
	assert_int_equal(retrans(sm), 1);
	out(sm, 0x18, iss + 1, 1000); /* new data across the wrap */
	out(sm, 0x18, iss + 1001, 1000);
	out(sm, 0x10, iss + 2001, 0); /* pure ACKs, twice */
	out(sm, 0x10, iss + 2001, 0);
	assert_int_equal(retrans(sm), 1);
	out(sm, 0x18, iss + 1, 1000); /* a timeout: the first again */
	assert_int_equal(retrans(sm), 2);
	out(sm, 0x18, iss + 1001, 500); /* part of the second again */
	assert_int_equal(retrans(sm), 3);
	out(sm, 0x18, iss + 2001, 100); /* new data goes on */
	out(sm, 0x11, iss + 2101, 0); /* FIN */
	assert_int_equal(retrans(sm), 3);
	out(sm, 0x11, iss + 2101, 0); /* FIN again */
	assert_int_equal(retrans(sm), 4);
	out(sm, 0x04, iss + 2102, 0); /* RST */
	out(sm, 0x14, iss + 2102, 0);
	assert_int_equal(retrans(sm), 4);
	/* A new connection on the 4-tuple (new ISN) starts afresh. */
	out(sm, 0x12, 5000, 0);
	out(sm, 0x18, 5001, 100);
	assert_int_equal(retrans(sm), 4);
	nk_seqmod__destroy(sm);
}

static void test_isn_unpredictable_and_stable(void **state)
{
	struct nk_seqmod *sm = new_sm(64);
	struct nk_seqmod *sm2;
	uint32_t w1, w2;
	uint8_t f[128], k2[32];
	struct nk_seqmod_undo u;
	size_t n;

	(void)state;
	w1 = synack(sm, 6510, 1000000);
	/* retransmitted SYN-ACK (same lwIP ISN): same wire ISN */
	assert_int_equal(synack(sm, 6510, 900000000), w1);
	/* a new connection on the same 4-tuple: new ISN from F + M */
	w2 = synack(sm, 6511, 1000000 + (4096u << 10));
	assert_int_equal(w2, w1 + 1024); /* same F, M advanced 1024 ticks */
	/* sequential lwIP ISNs on other ports: far apart on the wire */
	n = mk(f, LA, LP, RA, RP + 1, 0x12, 6512, 1, NULL, 0, 0);
	assert_int_equal(nk_seqmod__out(sm, f, n, 1000000, &u),
			 NK_SEQMOD_XLATED);
	w2 = get32(T(f) + 4);
	assert_true(w2 - w1 > (1u << 20) && w1 - w2 > (1u << 20));
	/* another secret: another ISN for the same tuple and time */
	memcpy(k2, KEY, 32);
	k2[0] ^= 1;
	assert_int_equal(nk_seqmod__create(8, k2, &sm2), 0);
	assert_true(synack(sm2, 6510, 1000000) != w1);
	nk_seqmod__destroy(sm2);
	nk_seqmod__destroy(sm);
	/* getrandom keys work */
	assert_int_equal(nk_seqmod__create(8, NULL, &sm), 0);
	synack(sm, 1, 1);
	nk_seqmod__destroy(sm);
}

static void test_wraparound(void **state)
{
	struct nk_seqmod *sm = new_sm(4);
	struct nk_seqmod_undo u;
	uint8_t f[256];
	uint32_t iss = 0xfffffff0u, w, off;
	size_t n;
	unsigned i;

	(void)state;
	w = synack(sm, iss, 5);
	off = w - iss;
	for (i = 0; i < 40; i++) { /* crosses 2^32 on both sides */
		uint32_t s = iss + 1 + i * 100;

		n = mk(f, LA, LP, RA, RP, 0x10, s, 9, NULL, 0, 100);
		assert_int_equal(nk_seqmod__out(sm, f, n, 9, &u),
				 NK_SEQMOD_XLATED);
		assert_int_equal(get32(T(f) + 4), s + off);
		csum_valid(f, n);
		n = mk(f, RA, RP, LA, LP, 0x10, 9, s + off + 100, NULL, 0, 0);
		assert_int_equal(nk_seqmod__in(sm, f, n), 1);
		assert_int_equal(get32(T(f) + 8), s + 100);
		csum_valid(f, n);
	}
	nk_seqmod__destroy(sm);
}

static void test_sack_blocks(void **state)
{
	struct nk_seqmod *sm = new_sm(4);
	uint8_t f[256], opt[40];
	uint32_t iss = 123456, w, off;
	size_t n, o;
	unsigned pad, k, b;

	(void)state;
	w = synack(sm, iss, 5);
	off = w - iss;
	/* 0..3 NOPs before the option: even and odd offsets; 1..4 blocks */
	for (pad = 0; pad < 4; pad++)
		for (b = 1; b <= 4 && pad + 2 + 8 * b <= 40; b++) {
			o = 0;
			for (k = 0; k < pad; k++)
				opt[o++] = 1;
			opt[o++] = 5;
			opt[o++] = (uint8_t)(2 + 8 * b);
			for (k = 0; k < 2 * b; k++, o += 4)
				put32(opt + o, w + 1000 * (k + 1) - 3);
			n = mk(f, RA, RP, LA, LP, 0x10, 9, w + 1, opt, o, 5);
			assert_int_equal(nk_seqmod__in(sm, f, n), 1);
			csum_valid(f, n);
			assert_int_equal(get32(T(f) + 8), iss + 1);
			for (k = 0; k < 2 * b; k++)
				assert_int_equal(
					get32(T(f) + 20 + pad + 2 + 4 * k),
					w + 1000 * (k + 1) - 3 - off);
		}
	/* timestamps (kind 8) and a truncated SACK are left alone */
	o = 0;
	opt[o++] = 8;
	opt[o++] = 10;
	put32(opt + o, 0x11111111);
	put32(opt + o + 4, w);
	o += 8;
	opt[o++] = 5;
	opt[o++] = 30; /* beyond the header */
	n = mk(f, RA, RP, LA, LP, 0x10, 9, w + 1, opt, o, 0);
	assert_int_equal(nk_seqmod__in(sm, f, n), 1);
	assert_int_equal(get32(T(f) + 26), w);
	csum_valid(f, n);
	nk_seqmod__destroy(sm);
}

static void test_table_bound_and_sweep(void **state)
{
	struct nk_seqmod *sm = new_sm(3);
	struct nk_seqmod_undo u;
	struct nk_seqmod_stats st;
	uint8_t f[128];
	size_t n;
	unsigned i;

	(void)state;
	for (i = 0; i < 5; i++) {
		n = mk(f, LA, LP, RA, (uint16_t)(RP + i), 0x02, 100 + i, 0,
		       NULL, 0, 0);
		assert_int_equal(nk_seqmod__out(sm, f, n, 1, &u),
				 i < 3 ? NK_SEQMOD_XLATED : NK_SEQMOD_FULL);
		if (i >= 3) /* not sent: untouched */
			assert_int_equal(get32(T(f) + 4), 100 + i);
	}
	nk_seqmod__stats(sm, &st);
	assert_int_equal(st.entries, 3);
	assert_int_equal(st.full, 2);
	/* the stack still has the second connection only */
	nk_seqmod__sweep_begin(sm);
	nk_seqmod__mark(sm, htonl(LA), htons(LP), htonl(RA), htons(RP + 1));
	nk_seqmod__mark(sm, htonl(LA), htons(LP), htonl(RA), htons(RP + 9));
	assert_int_equal(nk_seqmod__sweep_end(sm), 2);
	nk_seqmod__stats(sm, &st);
	assert_int_equal(st.entries, 1);
	n = mk(f, RA, RP + 1, LA, LP, 0x10, 1, 2, NULL, 0, 0);
	assert_int_equal(nk_seqmod__in(sm, f, n), 1);
	n = mk(f, RA, RP, LA, LP, 0x10, 1, 2, NULL, 0, 0);
	assert_int_equal(nk_seqmod__in(sm, f, n), 0);
	/* room again */
	n = mk(f, LA, LP, RA, RP + 4, 0x02, 104, 0, NULL, 0, 0);
	assert_int_equal(nk_seqmod__out(sm, f, n, 1, &u), NK_SEQMOD_XLATED);
	/* many entries, one sweep with nothing marked frees all */
	nk_seqmod__destroy(sm);
	sm = new_sm(5000);
	for (i = 0; i < 5000; i++) {
		n = mk(f, LA, (uint16_t)(i / 1000 + 1), RA, (uint16_t)i, 0x02,
		       i, 0, NULL, 0, 0);
		assert_int_equal(nk_seqmod__out(sm, f, n, 1, &u),
				 NK_SEQMOD_XLATED);
	}
	nk_seqmod__sweep_begin(sm);
	assert_int_equal(nk_seqmod__sweep_end(sm), 5000);
	nk_seqmod__destroy(sm);
	assert_int_equal(nk_seqmod__create(0, KEY, &sm), -22);
}

static void test_not_tcp_or_malformed(void **state)
{
	struct nk_seqmod *sm = new_sm(4);
	struct nk_seqmod_undo u;
	uint8_t f[128], g[128];
	size_t n, k;

	(void)state;
	synack(sm, 1, 1);
	n = mk(f, RA, RP, LA, LP, 0x10, 1, 2, NULL, 0, 0);
	/* every truncation: never a read beyond len (ASan build) */
	for (k = 0; k < n; k++) {
		memcpy(g, f, n);
		nk_seqmod__in(sm, g, k);
		nk_seqmod__out(sm, g, k, 1, &u);
	}
	/* a fragment is left alone */
	memcpy(g, f, n);
	g[14 + 6] = 0x20;
	assert_int_equal(nk_seqmod__in(sm, g, n), 0);
	/* UDP is left alone */
	memcpy(g, f, n);
	g[14 + 9] = 17;
	assert_int_equal(nk_seqmod__in(sm, g, n), 0);
	nk_seqmod__destroy(sm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_siphash_vector),
		cmocka_unit_test(test_csum_update_matches_recompute),
		cmocka_unit_test(test_translation_both_ways),
		cmocka_unit_test(test_retransmits_counted),
		cmocka_unit_test(test_isn_unpredictable_and_stable),
		cmocka_unit_test(test_wraparound),
		cmocka_unit_test(test_sack_blocks),
		cmocka_unit_test(test_table_bound_and_sweep),
		cmocka_unit_test(test_not_tcp_or_malformed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
