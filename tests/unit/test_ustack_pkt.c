// SPDX-License-Identifier: MIT
/*
 * Frame helpers of the afxdp NSM engine (ustack/pkt.c):
 * checksums against a byte-wise reference, the parser on valid, truncated
 * and malformed frames, and completion of veth-style partial checksums.
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

/* Reference: RFC 1071 sum over big-endian 16-bit words, byte by byte. */
static uint16_t ref_sum(const uint8_t *p, size_t len)
{
	uint32_t s = 0;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Builds Ethernet + IPv4 (+ TCP or UDP) with len payload bytes; returns
 * the frame length. Checksums are correct. */
static size_t build(uint8_t *f, uint8_t proto, size_t len)
{
	size_t l4h = proto == NK_IPPROTO_TCP ? 20 : 8, ip_len = 20 + l4h + len;
	uint8_t *ip = f + 14, *l4 = ip + 20;
	struct nk_pkt_info pi;
	size_t i;

	memset(f, 0, 14 + ip_len);
	memcpy(f, "\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02", 12);
	put16(f + 12, NK_ETH_P_IPV4);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)ip_len);
	put16(ip + 4, 0x1234);
	put16(ip + 6, 0x4000); /* DF */
	ip[8] = 64;
	ip[9] = proto;
	memcpy(ip + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8);
	put16(ip + 10, (uint16_t)~ref_sum(ip, 20));
	put16(l4, 40000);
	put16(l4 + 2, 7);
	if (proto == NK_IPPROTO_TCP) {
		l4[12] = 5 << 4;
		l4[13] = 0x18;
		put16(l4 + 14, 65535);
	} else {
		put16(l4 + 4, (uint16_t)(8 + len));
	}
	for (i = 0; i < len; i++)
		l4[l4h + i] = (uint8_t)(i * 7 + 3);
	assert_int_equal(nk_pkt_parse(f, 14 + ip_len, &pi), NK_PKT_OK);
	nk_pkt_fill_l4_csum(f, &pi);
	return 14 + ip_len;
}

static void test_csum_rfc1071_example(void **state)
{
	static const uint8_t b[] = { 0x00, 0x01, 0xf2, 0x03,
				     0xf4, 0xf5, 0xf6, 0xf7 };

	(void)state;
	assert_int_equal(nk_csum_fold(nk_csum_add(0, b, sizeof(b))), 0xddf2);
	assert_int_equal(nk_csum_fold(nk_csum_add(0, "\x01", 1)), 0x0100);
}

static void test_csum_matches_reference(void **state)
{
	uint8_t buf[3000];
	size_t len, i, cut;

	(void)state;
	srand(1);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)rand();
	for (len = 0; len < sizeof(buf); len += 1 + len / 7) {
		assert_int_equal(nk_csum_fold(nk_csum_add(0, buf, len)),
				 ref_sum(buf, len));
		/* chunked with an even first part gives the same sum */
		cut = (len / 2) & ~(size_t)1;
		assert_int_equal(
			nk_csum_fold(nk_csum_add(nk_csum_add(0, buf, cut),
						 buf + cut, len - cut)),
			ref_sum(buf, len));
	}
	/* all ones: stays 0xffff, never wraps to 0 */
	memset(buf, 0xff, 64);
	assert_int_equal(nk_csum_fold(nk_csum_add(0, buf, 64)), 0xffff);
}

static void test_parse_valid_tcp_udp(void **state)
{
	uint8_t f[2048];
	struct nk_pkt_info pi;
	size_t n;

	(void)state;
	n = build(f, NK_IPPROTO_TCP, 100);
	assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_OK);
	assert_int_equal(pi.ethertype, NK_ETH_P_IPV4);
	assert_int_equal(pi.proto, NK_IPPROTO_TCP);
	assert_int_equal(pi.saddr, inet_addr("10.0.0.1"));
	assert_int_equal(pi.daddr, inet_addr("10.0.0.2"));
	assert_int_equal(pi.l4_off, 34);
	assert_int_equal(pi.l4_len, 120);
	assert_int_equal(nk_pkt_l4_csum(f, &pi, 1), NK_CSUM_OK);
	/* Ethernet padding after the IP packet is allowed */
	assert_int_equal(nk_pkt_parse(f, n + 6, &pi), NK_PKT_OK);

	n = build(f, NK_IPPROTO_UDP, 33);
	assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_OK);
	assert_int_equal(pi.proto, NK_IPPROTO_UDP);
	assert_int_equal(nk_pkt_l4_csum(f, &pi, 0), NK_CSUM_OK);
	/* UDP checksum 0 = not computed */
	f[pi.l4_off + 6] = f[pi.l4_off + 7] = 0;
	assert_int_equal(nk_pkt_l4_csum(f, &pi, 0), NK_CSUM_OK);
}

static void test_bad_l4_checksum(void **state)
{
	uint8_t f[2048];
	struct nk_pkt_info pi;
	size_t n;

	(void)state;
	n = build(f, NK_IPPROTO_TCP, 200);
	f[n - 1] ^= 0x40;
	assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_OK);
	assert_int_equal(nk_pkt_l4_csum(f, &pi, 1), NK_CSUM_BAD);
	assert_int_equal(nk_pkt_l4_csum(f, &pi, 0), NK_CSUM_BAD);
}

static void test_partial_checksum_completed(void **state)
{
	uint8_t f[2048], good[2048];
	struct nk_pkt_info pi;
	size_t n, len;
	int proto;

	(void)state;
	for (proto = 0; proto < 2; proto++)
		for (len = 0; len < 1400; len += 97) {
			n = build(f, proto ? NK_IPPROTO_UDP : NK_IPPROTO_TCP,
				  len);
			memcpy(good, f, n);
			assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_OK);
			nk_pkt_make_partial(f, &pi);
			assert_int_equal(nk_pkt_l4_csum(f, &pi, 0),
					 NK_CSUM_BAD);
			assert_int_equal(nk_pkt_l4_csum(f, &pi, 1),
					 NK_CSUM_COMPLETED);
			assert_memory_equal(f, good, n);
			assert_int_equal(nk_pkt_l4_csum(f, &pi, 1), NK_CSUM_OK);
		}
}

static void test_ip_header_errors(void **state)
{
	uint8_t f[2048], g[2048];
	struct nk_pkt_info pi;
	size_t n;

	(void)state;
	n = build(f, NK_IPPROTO_TCP, 10);
	memcpy(g, f, n);
	g[14] = 0x44; /* IHL 4 */
	assert_int_equal(nk_pkt_parse(g, n, &pi), NK_PKT_DROP_IP_HDR);
	g[14] = 0x4f; /* IHL 15 = 60 bytes > total length 50 */
	assert_int_equal(nk_pkt_parse(g, 14 + 40, &pi), NK_PKT_DROP_IP_HDR);
	memset(g + n, 0, 20); /* room for 60 bytes, but total length 50 */
	assert_int_equal(nk_pkt_parse(g, n + 20, &pi), NK_PKT_DROP_IP_LEN);
	g[14] = 0x65; /* version 6 under ethertype IPv4 */
	assert_int_equal(nk_pkt_parse(g, n, &pi), NK_PKT_DROP_IP_HDR);
	memcpy(g, f, n);
	put16(g + 16, 0xffff); /* total length beyond the frame */
	assert_int_equal(nk_pkt_parse(g, n, &pi), NK_PKT_DROP_IP_LEN);
	memcpy(g, f, n);
	g[14 + 8] ^= 1; /* TTL changed, checksum not */
	assert_int_equal(nk_pkt_parse(g, n, &pi), NK_PKT_DROP_IP_CSUM);
}

static void fix_ip_csum(uint8_t *f)
{
	f[24] = f[25] = 0;
	put16(f + 24, (uint16_t)~ref_sum(f + 14, (size_t)(f[14] & 0xf) * 4));
}

static void test_l4_header_errors(void **state)
{
	uint8_t f[2048];
	struct nk_pkt_info pi;
	size_t n;

	(void)state;
	n = build(f, NK_IPPROTO_TCP, 10);
	f[34 + 12] = 4 << 4; /* data offset 4 */
	assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_DROP_L4_HDR);
	f[34 + 12] = 15 << 4; /* 60 bytes > 30 in the segment */
	assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_DROP_L4_HDR);

	n = build(f, NK_IPPROTO_UDP, 10);
	put16(f + 34 + 4, 17); /* UDP length != IP payload */
	assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_DROP_L4_HDR);

	/* TCP header cut short inside a consistent IP packet */
	n = build(f, NK_IPPROTO_TCP, 0);
	put16(f + 16, 20 + 12);
	fix_ip_csum(f);
	assert_int_equal(nk_pkt_parse(f, 14 + 32, &pi), NK_PKT_DROP_L4_HDR);
}

static void test_fragment_skips_l4(void **state)
{
	uint8_t f[2048];
	struct nk_pkt_info pi;
	size_t n;

	(void)state;
	n = build(f, NK_IPPROTO_UDP, 100);
	put16(f + 20, 0x2000); /* MF */
	f[34 + 6] ^= 0xff; /* checksum broken: not ours to check */
	fix_ip_csum(f);
	assert_int_equal(nk_pkt_parse(f, n, &pi), NK_PKT_OK);
	assert_true(pi.is_frag);
	assert_int_equal(nk_pkt_l4_csum(f, &pi, 1), NK_CSUM_SKIPPED);
}

static void test_every_truncation_refused(void **state)
{
	uint8_t f[2048], *c;
	struct nk_pkt_info pi;
	size_t n, len;

	(void)state;
	n = build(f, NK_IPPROTO_TCP, 64);
	for (len = 0; len < n; len++) {
		c = malloc(len ? len : 1); /* exact size: ASan sees overreads */
		memcpy(c, f, len);
		assert_int_not_equal(nk_pkt_parse(c, len, &pi), NK_PKT_OK);
		free(c);
	}
}

static void test_arp_and_ethertypes(void **state)
{
	uint8_t f[64] = { 0 };
	struct nk_pkt_info pi;

	(void)state;
	f[6 + 5] = 0x02; /* unicast Ethernet source */
	f[22 + 5] = 0x02; /* unicast ARP sender */
	put16(f + 12, NK_ETH_P_ARP);
	put16(f + 14, 1);
	put16(f + 16, NK_ETH_P_IPV4);
	f[18] = 6;
	f[19] = 4;
	put16(f + 20, 1);
	memcpy(f + 28, "\x0a\x00\x00\x01", 4);
	memcpy(f + 38, "\x0a\x00\x00\x02", 4);
	assert_int_equal(nk_pkt_parse(f, 42, &pi), NK_PKT_OK);
	assert_int_equal(pi.arp_op, 1);
	assert_int_equal(pi.arp_sip, inet_addr("10.0.0.1"));
	assert_int_equal(pi.arp_tip, inet_addr("10.0.0.2"));
	assert_int_equal(nk_pkt_parse(f, 41, &pi), NK_PKT_DROP_ARP);
	f[22] = 0xff; /* broadcast sender MAC: poisoning attempt */
	assert_int_equal(nk_pkt_parse(f, 42, &pi), NK_PKT_DROP_ARP);
	f[22] = 0;
	f[27] = 0; /* zero sender MAC */
	assert_int_equal(nk_pkt_parse(f, 42, &pi), NK_PKT_DROP_ARP);
	f[27] = 2;
	f[18] = 8;
	assert_int_equal(nk_pkt_parse(f, 42, &pi), NK_PKT_DROP_ARP);
	f[18] = 6;
	put16(f + 20, 9);
	assert_int_equal(nk_pkt_parse(f, 42, &pi), NK_PKT_DROP_ARP);
	put16(f + 12, NK_ETH_P_IPV6);
	assert_int_equal(nk_pkt_parse(f, 60, &pi), NK_PKT_DROP_ETHERTYPE);
	f[6] = 0x01; /* multicast source MAC */
	assert_int_equal(nk_pkt_parse(f, 60, &pi), NK_PKT_DROP_ETH_SRC);
	f[6] = 0;
	put16(f + 12, NK_ETH_P_VLAN);
	assert_int_equal(nk_pkt_parse(f, 60, &pi), NK_PKT_DROP_ETHERTYPE);
	assert_int_equal(nk_pkt_parse(f, 13, &pi), NK_PKT_DROP_RUNT);
}

static void test_random_frames_never_overread(void **state)
{
	struct nk_pkt_info pi;
	unsigned i, j;

	(void)state;
	srand(7);
	for (i = 0; i < 20000; i++) {
		size_t len = (size_t)(rand() % 200);
		uint8_t *f = malloc(len ? len : 1);

		for (j = 0; j < len; j++)
			f[j] = (uint8_t)rand();
		if (len > 14 && (i & 1)) { /* make the IPv4 path likely */
			f[12] = 0x08;
			f[13] = 0x00;
			f[14] = (uint8_t)(0x40 | (f[14] & 0xf));
		}
		if (nk_pkt_parse(f, len, &pi) == NK_PKT_OK)
			(void)nk_pkt_l4_csum(f, &pi, 1);
		free(f);
	}
}

static void test_drop_names(void **state)
{
	unsigned r;

	(void)state;
	for (r = 0; r < NK_PKT_DROP__MAX; r++)
		assert_string_not_equal(nk_pkt_drop__name(r), "?");
	assert_string_equal(nk_pkt_drop__name(NK_PKT_DROP__MAX), "?");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_csum_rfc1071_example),
		cmocka_unit_test(test_csum_matches_reference),
		cmocka_unit_test(test_parse_valid_tcp_udp),
		cmocka_unit_test(test_bad_l4_checksum),
		cmocka_unit_test(test_partial_checksum_completed),
		cmocka_unit_test(test_ip_header_errors),
		cmocka_unit_test(test_l4_header_errors),
		cmocka_unit_test(test_fragment_skips_l4),
		cmocka_unit_test(test_every_truncation_refused),
		cmocka_unit_test(test_arp_and_ethertypes),
		cmocka_unit_test(test_random_frames_never_overread),
		cmocka_unit_test(test_drop_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
