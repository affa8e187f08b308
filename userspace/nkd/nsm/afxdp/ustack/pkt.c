// SPDX-License-Identifier: MIT
/* Pure frame helpers; see pkt.h for the contracts. */
#include "pkt.h"

#include <arpa/inet.h>
#include <string.h>

static const char *const drop_names[NK_PKT_DROP__MAX] = {
	[NK_PKT_OK] = "ok",
	[NK_PKT_DROP_RUNT] = "runt",
	[NK_PKT_DROP_ETH_SRC] = "eth_source",
	[NK_PKT_DROP_ETHERTYPE] = "ethertype",
	[NK_PKT_DROP_ARP] = "arp_malformed",
	[NK_PKT_DROP_IP_HDR] = "ip_header",
	[NK_PKT_DROP_IP_LEN] = "ip_length",
	[NK_PKT_DROP_IP_CSUM] = "ip_checksum",
	[NK_PKT_DROP_L4_HDR] = "l4_header",
};

_Static_assert(sizeof(drop_names) / sizeof(drop_names[0]) == NK_PKT_DROP__MAX,
	       "a name for every drop reason");

const char *nk_pkt_drop__name(unsigned reason)
{
	if (reason >= NK_PKT_DROP__MAX || !drop_names[reason])
		return "?";
	return drop_names[reason];
}

/*
 * The one's complement sum does not depend on byte order as long as all
 * words are taken in the same order (RFC 1071, section 2(B)): sum native
 * 32-bit halves into a 64-bit accumulator, fold, and swap once at the end.
 */
uint32_t nk_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t acc = 0;

	while (len >= 8) {
		uint64_t w;

		memcpy(&w, p, 8);
		acc += (w & 0xffffffffu) + (w >> 32);
		p += 8;
		len -= 8;
	}
	while (len >= 2) {
		uint16_t w;

		memcpy(&w, p, 2);
		acc += w;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t w = 0;

		memcpy(&w, p, 1); /* first byte of a word, second byte zero */
		acc += w;
	}
	while (acc >> 16)
		acc = (acc & 0xffff) + (acc >> 16);
	return sum + ntohs((uint16_t)acc);
}

uint16_t nk_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

uint32_t nk_csum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto,
			 uint16_t l4_len)
{
	uint32_t sum = 0;

	sum = nk_csum_add(sum, &saddr, 4);
	sum = nk_csum_add(sum, &daddr, 4);
	return sum + proto + l4_len;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32n(const uint8_t *p) /* keeps network order */
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

/* A source or ARP sender hardware address no station can have. */
static int bad_hwsrc(const uint8_t *m)
{
	static const uint8_t zero[6];

	return (m[0] & 1) || !memcmp(m, zero, 6);
}

static int parse_arp(const uint8_t *a, size_t len, struct nk_pkt_info *pi)
{
	/* htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4: 28 bytes */
	if (len < 28 || rd16(a) != 1 || rd16(a + 2) != NK_ETH_P_IPV4 ||
	    a[4] != 6 || a[5] != 4)
		return NK_PKT_DROP_ARP;
	pi->arp_op = rd16(a + 6);
	if ((pi->arp_op != 1 && pi->arp_op != 2) || bad_hwsrc(a + 8))
		return NK_PKT_DROP_ARP;
	pi->arp_sip = rd32n(a + 14);
	pi->arp_tip = rd32n(a + 24);
	return NK_PKT_OK;
}

static int parse_l4(const uint8_t *l4, struct nk_pkt_info *pi)
{
	if (pi->proto == NK_IPPROTO_TCP) {
		unsigned doff;

		if (pi->l4_len < 20)
			return NK_PKT_DROP_L4_HDR;
		doff = (unsigned)(l4[12] >> 4) * 4;
		if (doff < 20 || doff > pi->l4_len)
			return NK_PKT_DROP_L4_HDR;
	} else if (pi->proto == NK_IPPROTO_UDP) {
		/* lwIP sums the whole IP payload: the UDP length must match */
		if (pi->l4_len < 8 || rd16(l4 + 4) != pi->l4_len)
			return NK_PKT_DROP_L4_HDR;
	}
	return NK_PKT_OK;
}

static int parse_ipv4(const uint8_t *frame, size_t len, struct nk_pkt_info *pi)
{
	const uint8_t *ip = frame + NK_ETH_HLEN;
	size_t room = len - NK_ETH_HLEN;
	unsigned hlen, tot, frag;

	if (room < 20 || (ip[0] >> 4) != 4)
		return NK_PKT_DROP_IP_HDR;
	hlen = (unsigned)(ip[0] & 0xf) * 4;
	if (hlen < 20 || hlen > room)
		return NK_PKT_DROP_IP_HDR;
	tot = rd16(ip + 2);
	if (tot < hlen || tot > room)
		return NK_PKT_DROP_IP_LEN;
	if (nk_csum_fold(nk_csum_add(0, ip, hlen)) != 0xffff)
		return NK_PKT_DROP_IP_CSUM;
	frag = rd16(ip + 6);
	pi->is_frag = (frag & 0x2000) || (frag & 0x1fff);
	pi->proto = ip[9];
	pi->saddr = rd32n(ip + 12);
	pi->daddr = rd32n(ip + 16);
	pi->ip_hlen = (uint16_t)hlen;
	pi->ip_len = (uint16_t)tot;
	pi->l4_off = (uint16_t)(NK_ETH_HLEN + hlen);
	pi->l4_len = (uint16_t)(tot - hlen);
	if (pi->is_frag)
		return NK_PKT_OK; /* lwIP reassembles and checks the rest */
	return parse_l4(frame + pi->l4_off, pi);
}

int nk_pkt_parse(const uint8_t *frame, size_t len, struct nk_pkt_info *pi)
{
	memset(pi, 0, sizeof(*pi));
	if (len < NK_ETH_HLEN)
		return NK_PKT_DROP_RUNT;
	if (bad_hwsrc(frame + 6))
		return NK_PKT_DROP_ETH_SRC;
	pi->ethertype = rd16(frame + 12);
	switch (pi->ethertype) {
	case NK_ETH_P_ARP:
		return parse_arp(frame + NK_ETH_HLEN, len - NK_ETH_HLEN, pi);
	case NK_ETH_P_IPV4:
		return parse_ipv4(frame, len, pi);
	default:
		return NK_PKT_DROP_ETHERTYPE;
	}
}

static unsigned csum_field_off(const struct nk_pkt_info *pi)
{
	return pi->l4_off + (pi->proto == NK_IPPROTO_TCP ? 16u : 6u);
}

static int l4_checkable(const struct nk_pkt_info *pi)
{
	return pi->ethertype == NK_ETH_P_IPV4 && !pi->is_frag &&
	       (pi->proto == NK_IPPROTO_TCP || pi->proto == NK_IPPROTO_UDP);
}

void nk_pkt_fill_l4_csum(uint8_t *frame, const struct nk_pkt_info *pi)
{
	uint8_t *f = frame + csum_field_off(pi);
	uint32_t sum;
	uint16_t c;

	f[0] = f[1] = 0;
	sum = nk_csum_pseudo4(pi->saddr, pi->daddr, pi->proto, pi->l4_len);
	sum = nk_csum_add(sum, frame + pi->l4_off, pi->l4_len);
	c = (uint16_t)~nk_csum_fold(sum);
	if (c == 0 && pi->proto == NK_IPPROTO_UDP)
		c = 0xffff; /* 0 means "no checksum" in UDP */
	f[0] = (uint8_t)(c >> 8);
	f[1] = (uint8_t)c;
}

void nk_pkt_make_partial(uint8_t *frame, const struct nk_pkt_info *pi)
{
	uint8_t *f = frame + csum_field_off(pi);
	uint16_t c = nk_csum_fold(
		nk_csum_pseudo4(pi->saddr, pi->daddr, pi->proto, pi->l4_len));

	f[0] = (uint8_t)(c >> 8);
	f[1] = (uint8_t)c;
}

int nk_pkt_l4_csum(uint8_t *frame, const struct nk_pkt_info *pi,
		   int complete_partial)
{
	const uint8_t *f;
	uint32_t pseudo, sum;

	if (!l4_checkable(pi))
		return NK_CSUM_SKIPPED;
	f = frame + csum_field_off(pi);
	if (pi->proto == NK_IPPROTO_UDP && f[0] == 0 && f[1] == 0)
		return NK_CSUM_OK; /* sender did not checksum */
	pseudo = nk_csum_pseudo4(pi->saddr, pi->daddr, pi->proto, pi->l4_len);
	sum = nk_csum_add(pseudo, frame + pi->l4_off, pi->l4_len);
	if (nk_csum_fold(sum) == 0xffff)
		return NK_CSUM_OK;
	if (complete_partial && rd16(f) == nk_csum_fold(pseudo)) {
		/* The same sum without the field (one's complement: add its
		 * complement) is what nk_pkt_fill_l4_csum() would compute
		 * in a second pass over the segment. */
		uint8_t *w = frame + csum_field_off(pi);
		uint16_t c = (uint16_t)~nk_csum_fold(sum + (uint16_t)~rd16(f));

		if (c == 0 && pi->proto == NK_IPPROTO_UDP)
			c = 0xffff; /* 0 means "no checksum" in UDP */
		w[0] = (uint8_t)(c >> 8);
		w[1] = (uint8_t)c;
		return NK_CSUM_COMPLETED;
	}
	return NK_CSUM_BAD;
}
