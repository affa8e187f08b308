/* SPDX-License-Identifier: MIT */
/*
 * nk_steer: types shared by the XDP steering program (bpf/nk_steer.bpf.c)
 * and userspace (nk-loader, nkd through lib/steer/nk_steer_maps.h, tests).
 *
 * Every map key and value the program reads lives here, with its layout
 * pinned by _Static_assert at the bottom: a change that moves a field breaks
 * the build of both sides instead of silently corrupting lookups.
 *
 * Byte order: addresses and ports inside map keys are in NETWORK byte order
 * (they are compared byte for byte with packet headers, so the fast path
 * never swaps). Counters, ids and knobs are in HOST byte order.
 *
 * Addresses are always 16 bytes: IPv6 as is, IPv4 as the IPv4-mapped IPv6
 * address ::ffff:a.b.c.d (RFC 4291 2.5.5.2). The all-zero address in an
 * endpoint key is the wildcard ("bound to any address", both families).
 *
 * The steering design is documented in docs/steering.md.
 */
#ifndef NK_STEER_SHARED_H
#define NK_STEER_SHARED_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Build-time limits; a build may override them with -D. */
#ifndef NK_MAX_GUESTS
#define NK_MAX_GUESTS 1024 /* guest ids are 0 .. NK_MAX_GUESTS - 1 */
#endif
#ifndef NK_MAX_ENDPOINTS
#define NK_MAX_ENDPOINTS 16384
#endif
#ifndef NK_MAX_FLOWS
#define NK_MAX_FLOWS 65536
#endif
#ifndef NK_MAX_NSM_ADDRS
#define NK_MAX_NSM_ADDRS 256
#endif
#ifndef NK_MAX_ACL
#define NK_MAX_ACL 16384
#endif
/* Upper bound for nr_queues * slots_per_queue (the XSKMAP size). */
#define NK_MAX_XSKS 4096
/* IPv6 extension headers skipped before giving up (XDP_PASS). */
#define NK_IPV6_EXT_MAX 6

/* Guest id 0 is the NSM itself: ARP and ICMP for its own addresses. */
#define NK_GUEST_NSM 0u

/*
 * Steering target: the value of the endpoint, flow and NSM address maps.
 * The XSKMAP index is rx_queue_index * slots_per_queue + xsk_slot, so one
 * NSM that opens one XSK per RX queue uses the same slot on every queue.
 */
struct nk_target {
	__u32 guest_id; /* < NK_MAX_GUESTS, host order */
	__u32 xsk_slot; /* < knobs.slots_per_queue, host order */
};

/*
 * Guest endpoint: a socket a guest has bound (listener or unconnected UDP).
 * Key of map nk_endpoints. addr all-zero = wildcard (any local address).
 */
struct nk_ep_key {
	__u8 addr[16]; /* local (destination) address, network order */
	__be16 port; /* local (destination) port, network order */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad; /* must be zero */
};

/*
 * Connected flow: a guest's established 5-tuple, seen from the guest
 * (local = destination of a received packet). Key of map nk_flows.
 */
struct nk_flow_key {
	__u8 laddr[16]; /* local address, network order */
	__u8 raddr[16]; /* remote address, network order */
	__be16 lport; /* local port, network order */
	__be16 rport; /* remote port, network order */
	__u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
	__u8 pad[3]; /* must be zero */
};

/* Key of map nk_nsm_addrs: an address the NSM itself answers ARP/ICMP for. */
struct nk_addr_key {
	__u8 addr[16]; /* network order */
};

/*
 * Key of the LPM trie nk_acl. prefixlen counts bits from the start of
 * guest_id: always 32 (the whole guest id) + the source prefix length in the
 * 16-byte address (an IPv4 /24 is 32 + 96 + 24). Value: enum nk_acl_action.
 */
struct nk_acl_key {
	__u32 prefixlen; /* host order, 32 .. 160 */
	__u32 guest_id; /* matched as 4 raw bytes: any order, same on both sides */
	__u8 addr[16]; /* source address, network order */
};

enum nk_acl_action {
	NK_ACL_ALLOW = 1,
	NK_ACL_DENY = 2,
};

/*
 * Per-guest configuration, map nk_guest_cfg (array indexed by guest id).
 * acl_mode picks what a source without a matching nk_acl entry gets.
 */
enum nk_acl_mode {
	NK_ACL_MODE_OFF = 0, /* no source filtering */
	NK_ACL_MODE_ALLOW_LIST = 1, /* unmatched sources are dropped */
	NK_ACL_MODE_DENY_LIST = 2, /* unmatched sources are accepted */
};

struct nk_guest_cfg {
	__u32 acl_mode; /* enum nk_acl_mode */
	__u32 resv; /* must be zero */
};

/* Why a packet for a guest was dropped (index into nk_guest_stats.drops). */
enum nk_drop_reason {
	NK_DROP_ACL_DENY = 0, /* longest matching ACL entry says deny */
	NK_DROP_ACL_NOT_ALLOWED = 1, /* allow-list mode, no entry matched */
	NK_DROP__MAX = 4, /* room for later reasons, keeps the struct stable */
};

/*
 * Per-guest counters, map nk_guest_stats (per-CPU array indexed by guest
 * id; sum over CPUs). bytes are frame bytes as XDP sees them (L2 header
 * included, no FCS).
 */
struct nk_guest_stats {
	__u64 packets; /* steered to the guest's XSK (XDP_REDIRECT) */
	__u64 bytes;
	__u64 xsk_miss; /* matched, but no XSK in the slot: fell back to PASS */
	__u64 xsk_miss_bytes;
	__u64 drops[NK_DROP__MAX]; /* by enum nk_drop_reason */
	__u64 drop_bytes;
	__u64 resv;
};

/*
 * Every exit of the program, map nk_exit_stats (per-CPU array indexed by
 * this enum): each return path bumps exactly one of them, so the sum over
 * all entries is the number of packets the program saw.
 */
enum nk_exit {
	NK_EXIT_PASS_L3_OTHER = 0, /* not IPv4/IPv6/ARP (or a second VLAN) */
	NK_EXIT_PASS_TRUNC_ETH, /* shorter than an Ethernet header */
	NK_EXIT_PASS_TRUNC_VLAN, /* VLAN tag cut short */
	NK_EXIT_PASS_TRUNC_ARP, /* ARP header/payload cut short */
	NK_EXIT_PASS_TRUNC_IP4, /* IPv4 header (or its options) cut short */
	NK_EXIT_PASS_TRUNC_IP6, /* IPv6 header cut short */
	NK_EXIT_PASS_TRUNC_EXT, /* IPv6 extension header cut short */
	NK_EXIT_PASS_TRUNC_L4, /* TCP/UDP/ICMP header cut short */
	NK_EXIT_PASS_BAD_IP4, /* IHL < 5 or version != 4 */
	NK_EXIT_PASS_BAD_IP6, /* version != 6 */
	NK_EXIT_PASS_FRAG, /* non-first fragment (no L4 header) */
	NK_EXIT_PASS_FRAG_FIRST, /* first fragment of a fragmented datagram */
	NK_EXIT_PASS_EXT_LIMIT, /* more than NK_IPV6_EXT_MAX extension headers */
	NK_EXIT_PASS_L4_OTHER, /* not TCP/UDP, nor ICMP for the NSM */
	NK_EXIT_PASS_ARP, /* ARP not for an NSM address (or ARP steering off) */
	NK_EXIT_PASS_ICMP, /* ICMP not for an NSM address (or steering off) */
	NK_EXIT_PASS_NO_MATCH, /* TCP/UDP that no guest owns: the kernel's */
	NK_EXIT_PASS_QUEUE, /* rx queue >= knobs.nr_queues */
	NK_EXIT_PASS_BAD_TARGET, /* map entry with guest id/slot out of range */
	NK_EXIT_PASS_XSK_MISS, /* matched, no XSK in the slot (fallback) */
	NK_EXIT_REDIRECT_FLOW, /* flow table hit */
	NK_EXIT_REDIRECT_EP, /* endpoint hit (exact local address) */
	NK_EXIT_REDIRECT_EP_ANY, /* endpoint hit (wildcard address) */
	NK_EXIT_REDIRECT_ARP, /* ARP for an NSM address */
	NK_EXIT_REDIRECT_ICMP, /* ICMP/ICMPv6 for an NSM address */
	NK_EXIT_DROP_ACL, /* source refused by the guest's ACL */
	NK_EXIT__MAX
};

/* Value of nk_exit_stats. */
struct nk_exit_stats {
	__u64 packets;
	__u64 bytes;
};

/*
 * Load-time knobs: the program's only const volatile global, set through
 * the skeleton (skel->rodata->nk_knobs) before load so the verifier prunes
 * disabled paths. The loader pins the frozen .rodata map as "nk_knobs", so
 * its single value (key 0) is this struct and nkd can read the layout the
 * program was loaded with (slots_per_queue in particular).
 */
struct nk_steer_knobs {
	__u32 magic; /* NK_KNOBS_MAGIC */
	__u32 version; /* NK_KNOBS_VERSION */
	__u32 nr_queues; /* RX queues served (rx_queue_index below this) */
	__u32 slots_per_queue; /* XSK slots per queue (>= 1) */
	__u32 ifindex; /* informational: device at load time */
	__u32 xdp_flags; /* informational: XDP_FLAGS_* used to attach */
	__u8 steer_arp; /* ARP for NSM addresses goes to the NSM */
	__u8 steer_icmp; /* ICMP/ICMPv6 (echo, ND) for NSM addresses too */
	__u8 debug; /* record the last decision in nk_dbg (the .bss) */
	__u8 resv[5]; /* zero */
};

#define NK_KNOBS_MAGIC 0x4e4b5354u /* "NKST" */
#define NK_KNOBS_VERSION 1u

/* Last decision, written only with knobs.debug (tests read it). */
struct nk_dbg {
	__u32 exit; /* enum nk_exit */
	__u32 guest_id;
	__u32 xsk_index; /* XSKMAP index tried, or ~0 */
	__u32 seq; /* bumped each packet */
};

#define NK_MAP_ENDPOINTS "nk_endpoints"
#define NK_MAP_FLOWS "nk_flows"
#define NK_MAP_XSKS "nk_xsks"
#define NK_MAP_NSM_ADDRS "nk_nsm_addrs"
#define NK_MAP_GUEST_CFG "nk_guest_cfg"
#define NK_MAP_ACL "nk_acl"
#define NK_MAP_GUEST_STATS "nk_guest_stats"
#define NK_MAP_EXIT_STATS "nk_exit_stats"
#define NK_MAP_KNOBS "nk_knobs" /* pin name of the .rodata map */
#define NK_PIN_LINK "link"
#define NK_PIN_ROOT "/sys/fs/bpf/netkernel"

_Static_assert(sizeof(struct nk_target) == 8, "nk_target");
_Static_assert(sizeof(struct nk_ep_key) == 20, "nk_ep_key");
_Static_assert(__builtin_offsetof(struct nk_ep_key, port) == 16, "ep port");
_Static_assert(__builtin_offsetof(struct nk_ep_key, proto) == 18, "ep proto");
_Static_assert(sizeof(struct nk_flow_key) == 40, "nk_flow_key");
_Static_assert(__builtin_offsetof(struct nk_flow_key, raddr) == 16, "raddr");
_Static_assert(__builtin_offsetof(struct nk_flow_key, lport) == 32, "lport");
_Static_assert(__builtin_offsetof(struct nk_flow_key, rport) == 34, "rport");
_Static_assert(__builtin_offsetof(struct nk_flow_key, proto) == 36, "proto");
_Static_assert(sizeof(struct nk_addr_key) == 16, "nk_addr_key");
_Static_assert(sizeof(struct nk_acl_key) == 24, "nk_acl_key");
_Static_assert(__builtin_offsetof(struct nk_acl_key, guest_id) == 4, "acl id");
_Static_assert(__builtin_offsetof(struct nk_acl_key, addr) == 8, "acl addr");
_Static_assert(sizeof(struct nk_guest_cfg) == 8, "nk_guest_cfg");
_Static_assert(sizeof(struct nk_guest_stats) == 80, "nk_guest_stats");
_Static_assert(__builtin_offsetof(struct nk_guest_stats, drops) == 32, "drops");
_Static_assert(sizeof(struct nk_exit_stats) == 16, "nk_exit_stats");
_Static_assert(sizeof(struct nk_steer_knobs) == 32, "nk_steer_knobs");
_Static_assert(__builtin_offsetof(struct nk_steer_knobs, steer_arp) == 24,
	       "knobs steer_arp");
_Static_assert(sizeof(struct nk_dbg) == 16, "nk_dbg");
_Static_assert(NK_EXIT__MAX <= 64, "exit table size");

#endif /* NK_STEER_SHARED_H */
