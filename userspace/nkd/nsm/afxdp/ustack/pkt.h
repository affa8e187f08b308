/* SPDX-License-Identifier: MIT */
/*
 * Pure frame helpers of the afxdp NSM's TCP/IP engine: Internet checksums,
 * a bounds-checked Ethernet/ARP/IPv4/TCP/UDP parser and the completion of
 * "partial" L4 checksums that a Linux peer on veth leaves in its frames.
 *
 * Nothing here does I/O, allocates or knows about lwIP, so all of it is unit
 * tested (tests/unit/test_ustack_pkt.c). Byte order: every address and port
 * in struct nk_pkt_info is in network byte order, exactly as on the wire;
 * lengths and offsets are host order.
 */
#ifndef NK_USTACK_PKT_H
#define NK_USTACK_PKT_H

#include <stddef.h>
#include <stdint.h>

#define NK_ETH_HLEN 14u
#define NK_ETH_P_IPV4 0x0800u
#define NK_ETH_P_ARP 0x0806u
#define NK_ETH_P_IPV6 0x86ddu
#define NK_ETH_P_VLAN 0x8100u

#define NK_IPPROTO_ICMP 1u
#define NK_IPPROTO_TCP 6u
#define NK_IPPROTO_UDP 17u

/* Why a frame was refused by nk_pkt_parse() (0 = accepted). */
enum nk_pkt_drop {
	NK_PKT_OK = 0,
	NK_PKT_DROP_RUNT, /* shorter than an Ethernet header */
	NK_PKT_DROP_ETH_SRC, /* multicast/broadcast/zero source MAC */
	NK_PKT_DROP_ETHERTYPE, /* not ARP or IPv4 (IPv6, VLAN, ...) */
	NK_PKT_DROP_ARP, /* malformed, non-Ethernet/IPv4, or a multicast,
			  * broadcast or zero sender MAC (cache poisoning) */
	NK_PKT_DROP_IP_HDR, /* truncated header, version != 4, bad IHL */
	NK_PKT_DROP_IP_LEN, /* total length < IHL or beyond the frame */
	NK_PKT_DROP_IP_CSUM, /* IPv4 header checksum wrong */
	NK_PKT_DROP_L4_HDR, /* TCP/UDP header truncated or inconsistent */
	NK_PKT_DROP__MAX
};

/* Name of a drop reason, for counters and logs; "?" when out of range. */
const char *nk_pkt_drop__name(unsigned reason);

struct nk_pkt_info {
	uint16_t ethertype; /* host order */
	/* ARP (ethertype NK_ETH_P_ARP) */
	uint16_t arp_op; /* host order: 1 request, 2 reply */
	uint32_t arp_sip, arp_tip; /* sender/target protocol address */
	/* IPv4 (ethertype NK_ETH_P_IPV4) */
	uint32_t saddr, daddr;
	uint8_t proto;
	uint8_t is_frag; /* MF set or offset != 0: L4 not checked here */
	uint16_t ip_hlen; /* bytes */
	uint16_t ip_len; /* total length from the header */
	uint16_t l4_off; /* from the start of the frame */
	uint16_t l4_len; /* ip_len - ip_hlen */
};

/*
 * One's complement sum of len bytes at data, added to sum (32-bit
 * accumulator, not folded). The bytes are summed as big-endian 16-bit words,
 * so the result is independent of the host's byte order; an odd final byte
 * is padded with zero. Only the last chunk of a sum may have an odd length.
 */
uint32_t nk_csum_add(uint32_t sum, const void *data, size_t len);

/* Folds a 32-bit accumulator to 16 bits (not inverted), host order. */
uint16_t nk_csum_fold(uint32_t sum);

/* Accumulator of the IPv4 pseudo header (addresses in network order). */
uint32_t nk_csum_pseudo4(uint32_t saddr, uint32_t daddr, uint8_t proto,
			 uint16_t l4_len);

/*
 * Parses and bounds-checks frame[0..len). Returns NK_PKT_OK and fills *pi,
 * or an enum nk_pkt_drop reason. Checks: Ethernet header with a unicast
 * source; ARP for
 * Ethernet/IPv4 only; IPv4 version, IHL >= 5, IHL and total length inside
 * the frame, header checksum; for unfragmented TCP a data offset >= 5 inside
 * the segment, for UDP a length field equal to the IP payload length. L4
 * checksums are left to nk_pkt_l4_csum().
 */
int nk_pkt_parse(const uint8_t *frame, size_t len, struct nk_pkt_info *pi);

enum nk_csum_result {
	NK_CSUM_OK = 0, /* checksum correct (or UDP without checksum) */
	NK_CSUM_COMPLETED, /* was a partial checksum; now completed */
	NK_CSUM_BAD, /* wrong and not a partial checksum */
	NK_CSUM_SKIPPED, /* not TCP/UDP or a fragment: nothing checked */
};

/*
 * Checks the TCP or UDP checksum of a frame nk_pkt_parse() accepted. If it
 * is wrong and complete_partial is set, and the checksum field holds exactly
 * the folded, non-inverted pseudo-header sum — what a Linux sender leaves for
 * checksum offload (CHECKSUM_PARTIAL) and what a veth peer hands to XDP —
 * the checksum is computed and written into the frame (NK_CSUM_COMPLETED).
 * Verification comes first, so a correct frame is never rewritten.
 */
int nk_pkt_l4_csum(uint8_t *frame, const struct nk_pkt_info *pi,
		   int complete_partial);

/*
 * Writes the checksum field of a TCP/UDP segment as a Linux sender with
 * checksum offload would: the folded pseudo-header sum, not inverted. Used
 * by the tests to fabricate veth-style frames.
 */
void nk_pkt_make_partial(uint8_t *frame, const struct nk_pkt_info *pi);

/* Computes and stores a correct L4 (TCP/UDP) checksum in the frame. */
void nk_pkt_fill_l4_csum(uint8_t *frame, const struct nk_pkt_info *pi);

#endif /* NK_USTACK_PKT_H */
