/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * Packet parsing helpers for nk_steer (BPF side only).
 *
 * Every helper takes a cursor, checks the bounds of what it is about to read
 * against the end of the frame first, advances the cursor past the header it
 * parsed and returns NK_OK, or the enum nk_exit reason the packet must leave
 * with (always an XDP_PASS reason: a packet we cannot parse belongs to the
 * kernel, which applies its own checks). Byte order is stated per output.
 */
#ifndef NK_PARSE_H
#define NK_PARSE_H

#include "nk_steer_shared.h"

/* Success value of the parsers: one past the last enum nk_exit. */
#define NK_OK NK_EXIT__MAX

/* Ethertypes and protocol numbers, in network byte order where compared
 * against packet fields (vmlinux.h carries no #defines). */
#define NK_ETH_P_IP 0x0800
#define NK_ETH_P_ARP 0x0806
#define NK_ETH_P_IPV6 0x86DD
#define NK_ETH_P_8021Q 0x8100
#define NK_ETH_P_8021AD 0x88A8
#define NK_ARPHRD_ETHER 1

#define NK_IP_MF 0x2000 /* host order, after bpf_ntohs(frag_off) */
#define NK_IP_OFFSET 0x1FFF

#define NK_NEXTHDR_HOP 0
#define NK_NEXTHDR_ROUTING 43
#define NK_NEXTHDR_FRAGMENT 44
#define NK_NEXTHDR_AUTH 51
#define NK_NEXTHDR_DEST 60
#define NK_IPPROTO_ICMPV6 58

#define NK_ICMP_ECHOREPLY 0
#define NK_ICMP_ECHO 8
#define NK_ICMPV6_ECHO_REQUEST 128
#define NK_ICMPV6_ECHO_REPLY 129
#define NK_NDISC_NEIGHBOUR_SOLICITATION 135
#define NK_NDISC_NEIGHBOUR_ADVERTISEMENT 136

/* A position in the frame and its end; pos only moves forward. */
struct nk_cursor {
	void *pos;
	void *end;
};

/* What the parsers learnt about an IP packet. */
struct nk_pkt {
	__u8 saddr[16]; /* network order, IPv4 mapped to ::ffff:0:0/96 */
	__u8 daddr[16]; /* network order, same mapping */
	__be16 sport; /* network order (0 for ICMP) */
	__be16 dport; /* network order (0 for ICMP) */
	__u8 l4proto; /* IPPROTO_* of the upper layer header */
	__u8 is_v6;
	__u8 icmp_type; /* for ICMP/ICMPv6 */
	__u8 pad;
};

/* Write the IPv4-mapped form of a network-order IPv4 address into out. */
static __always_inline void nk_addr_map4(__u8 out[16], __be32 a)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &a, 4);
}

/*
 * Ethernet, with at most one 802.1Q/802.1ad tag.
 * On NK_OK *proto is the ethertype of the payload, NETWORK byte order.
 * A second tag is not unwrapped: its ethertype is returned as is (and then
 * matches nothing, so the frame is passed).
 */
static __always_inline __u32 nk_parse_eth(struct nk_cursor *c, __be16 *proto)
{
	struct ethhdr *eth = c->pos;
	struct vlan_hdr *vh;

	if ((void *)(eth + 1) > c->end)
		return NK_EXIT_PASS_TRUNC_ETH;
	c->pos = eth + 1;
	*proto = eth->h_proto;
	if (*proto != bpf_htons(NK_ETH_P_8021Q) &&
	    *proto != bpf_htons(NK_ETH_P_8021AD))
		return NK_OK;
	vh = c->pos;
	if ((void *)(vh + 1) > c->end)
		return NK_EXIT_PASS_TRUNC_VLAN;
	c->pos = vh + 1;
	*proto = vh->h_vlan_encapsulated_proto;
	return NK_OK;
}

/*
 * ARP for Ethernet/IPv4 (the only kind we steer). On NK_OK tpa is the
 * target protocol address, IPv4-mapped, network order. Other hardware or
 * protocol types return NK_EXIT_PASS_ARP.
 */
static __always_inline __u32 nk_parse_arp(struct nk_cursor *c, __u8 tpa[16])
{
	struct arphdr *ah = c->pos;
	__u8 *body;
	__be32 a;

	if ((void *)(ah + 1) > c->end)
		return NK_EXIT_PASS_TRUNC_ARP;
	if (ah->ar_hrd != bpf_htons(NK_ARPHRD_ETHER) ||
	    ah->ar_pro != bpf_htons(NK_ETH_P_IP) || ah->ar_hln != 6 ||
	    ah->ar_pln != 4)
		return NK_EXIT_PASS_ARP;
	/* sha[6] spa[4] tha[6] tpa[4] */
	body = (__u8 *)(ah + 1);
	if ((void *)(body + 20) > c->end)
		return NK_EXIT_PASS_TRUNC_ARP;
	__builtin_memcpy(&a, body + 16, 4);
	nk_addr_map4(tpa, a);
	c->pos = body + 20;
	return NK_OK;
}

/*
 * IPv4, options skipped by IHL. Fills saddr/daddr (network order, mapped)
 * and l4proto. Fragments: a non-first fragment carries no L4 header
 * (NK_EXIT_PASS_FRAG); a first fragment has one, but the rest of its
 * datagram would reach the kernel, so it is passed too
 * (NK_EXIT_PASS_FRAG_FIRST): a datagram is never split between two stacks.
 */
static __always_inline __u32 nk_parse_ipv4(struct nk_cursor *c,
					   struct nk_pkt *p)
{
	struct iphdr *iph = c->pos;
	__u32 hlen;
	__u16 frag;

	if ((void *)(iph + 1) > c->end)
		return NK_EXIT_PASS_TRUNC_IP4;
	if (iph->version != 4 || iph->ihl < 5)
		return NK_EXIT_PASS_BAD_IP4;
	hlen = iph->ihl * 4;
	if (c->pos + hlen > c->end)
		return NK_EXIT_PASS_TRUNC_IP4;
	frag = bpf_ntohs(iph->frag_off);
	if (frag & NK_IP_OFFSET)
		return NK_EXIT_PASS_FRAG;
	if (frag & NK_IP_MF)
		return NK_EXIT_PASS_FRAG_FIRST;
	nk_addr_map4(p->saddr, iph->saddr);
	nk_addr_map4(p->daddr, iph->daddr);
	p->l4proto = iph->protocol;
	p->is_v6 = 0;
	c->pos += hlen;
	return NK_OK;
}

/*
 * IPv6 and up to NK_IPV6_EXT_MAX extension headers (hop-by-hop, routing,
 * destination options, AH, fragment). Fills saddr/daddr (network order) and
 * l4proto (the first header that is not one of those). A fragment header
 * with a non-zero offset is NK_EXIT_PASS_FRAG, with M set
 * NK_EXIT_PASS_FRAG_FIRST; an atomic fragment (offset 0, M clear) is
 * skipped like any other extension header.
 */
static __always_inline __u32 nk_parse_ipv6(struct nk_cursor *c,
					   struct nk_pkt *p)
{
	struct ipv6hdr *ip6 = c->pos;
	struct ipv6_opt_hdr *oh;
	struct frag_hdr *fh;
	__u32 len;
	__u16 frag;
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > c->end)
		return NK_EXIT_PASS_TRUNC_IP6;
	if (ip6->version != 6)
		return NK_EXIT_PASS_BAD_IP6;
	__builtin_memcpy(p->saddr, &ip6->saddr, 16);
	__builtin_memcpy(p->daddr, &ip6->daddr, 16);
	p->is_v6 = 1;
	nh = ip6->nexthdr;
	c->pos = ip6 + 1;

#pragma unroll
	for (i = 0; i < NK_IPV6_EXT_MAX; i++) {
		switch (nh) {
		case NK_NEXTHDR_HOP:
		case NK_NEXTHDR_ROUTING:
		case NK_NEXTHDR_DEST:
		case NK_NEXTHDR_AUTH:
			oh = c->pos;
			if ((void *)(oh + 1) > c->end)
				return NK_EXIT_PASS_TRUNC_EXT;
			/* AH counts 4-byte units minus 2, the others
			 * 8-byte units minus 1 (RFC 4302, RFC 8200) */
			if (nh == NK_NEXTHDR_AUTH)
				len = ((__u32)oh->hdrlen + 2) * 4;
			else
				len = ((__u32)oh->hdrlen + 1) * 8;
			if (c->pos + len > c->end)
				return NK_EXIT_PASS_TRUNC_EXT;
			nh = oh->nexthdr;
			c->pos += len;
			break;
		case NK_NEXTHDR_FRAGMENT:
			fh = c->pos;
			if ((void *)(fh + 1) > c->end)
				return NK_EXIT_PASS_TRUNC_EXT;
			frag = bpf_ntohs(fh->frag_off);
			if (frag & 0xFFF8)
				return NK_EXIT_PASS_FRAG;
			if (frag & 1)
				return NK_EXIT_PASS_FRAG_FIRST;
			nh = fh->nexthdr;
			c->pos = fh + 1;
			break;
		default:
			p->l4proto = nh;
			return NK_OK;
		}
	}
	return NK_EXIT_PASS_EXT_LIMIT;
}

/*
 * TCP or UDP ports: p->sport/p->dport in network order. Only the first
 * eight bytes are needed, but a TCP segment must hold its 20-byte header.
 */
static __always_inline __u32 nk_parse_ports(struct nk_cursor *c,
					    struct nk_pkt *p)
{
	if (p->l4proto == IPPROTO_TCP) {
		struct tcphdr *th = c->pos;

		if ((void *)(th + 1) > c->end)
			return NK_EXIT_PASS_TRUNC_L4;
		p->sport = th->source;
		p->dport = th->dest;
		c->pos = th + 1;
		return NK_OK;
	}
	struct udphdr *uh = c->pos;

	if ((void *)(uh + 1) > c->end)
		return NK_EXIT_PASS_TRUNC_L4;
	p->sport = uh->source;
	p->dport = uh->dest;
	c->pos = uh + 1;
	return NK_OK;
}

/*
 * ICMP (v4) or ICMPv6 header: p->icmp_type. For an ICMPv6 neighbour
 * solicitation/advertisement, *nd_target receives the target address
 * (network order) and *is_nd is set: ND goes to the owner of the target, not
 * of the (multicast) destination address.
 */
static __always_inline __u32 nk_parse_icmp(struct nk_cursor *c,
					   struct nk_pkt *p, __u8 nd_target[16],
					   int *is_nd)
{
	__u8 *h = c->pos;

	*is_nd = 0;
	/* type, code, checksum, 4 bytes of rest-of-header: both families */
	if ((void *)(h + 8) > c->end)
		return NK_EXIT_PASS_TRUNC_L4;
	p->icmp_type = h[0];
	if (p->is_v6 && (h[0] == NK_NDISC_NEIGHBOUR_SOLICITATION ||
			 h[0] == NK_NDISC_NEIGHBOUR_ADVERTISEMENT)) {
		if ((void *)(h + 24) > c->end)
			return NK_EXIT_PASS_TRUNC_L4;
		__builtin_memcpy(nd_target, h + 8, 16);
		*is_nd = 1;
	}
	c->pos = h + 8;
	return NK_OK;
}

#endif /* NK_PARSE_H */
