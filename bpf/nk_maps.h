/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * nk_steer maps (BPF side). Keys and values are defined and documented in
 * nk_steer_shared.h; nk-loader pins each map as
 * /sys/fs/bpf/netkernel/<DEV>/<map name>. Sizes are the defaults; the loader
 * resizes nk_xsks to nr_queues * slots_per_queue before load.
 */
#ifndef NK_MAPS_H
#define NK_MAPS_H

#include "nk_steer_shared.h"

/* Guest endpoints: (local addr, local port, proto) -> owning guest and XSK
 * slot. Written by nkd when a guest binds/listens; a wildcard entry has an
 * all-zero address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NK_MAX_ENDPOINTS);
	__type(key, struct nk_ep_key);
	__type(value, struct nk_target);
} nk_endpoints SEC(".maps");

/* Connected flows: full 5-tuple -> guest and XSK slot. Looked up before the
 * endpoints, so a connection can be served apart from its listener. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NK_MAX_FLOWS);
	__type(key, struct nk_flow_key);
	__type(value, struct nk_target);
} nk_flows SEC(".maps");

/* AF_XDP sockets, index rx_queue_index * slots_per_queue + xsk_slot. The
 * socket at an index must be bound to that RX queue of this device. An
 * empty index makes bpf_redirect_map() fall back to XDP_PASS. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} nk_xsks SEC(".maps");

/* Addresses the NSM owns: ARP and ICMP/ICMPv6 (echo, ND targets) for them go
 * to the target here (guest id NK_GUEST_NSM by convention). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NK_MAX_NSM_ADDRS);
	__type(key, struct nk_addr_key);
	__type(value, struct nk_target);
} nk_nsm_addrs SEC(".maps");

/* Per-guest configuration (ACL mode), indexed by guest id. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NK_MAX_GUESTS);
	__type(key, __u32);
	__type(value, struct nk_guest_cfg);
} nk_guest_cfg SEC(".maps");

/* Per-guest source ACL: (guest id, source prefix) -> enum nk_acl_action.
 * The longest matching prefix decides; no match falls to the guest's
 * acl_mode. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NK_MAX_ACL);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nk_acl_key);
	__type(value, __u32);
} nk_acl SEC(".maps");

/* Per-guest per-CPU counters, indexed by guest id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NK_MAX_GUESTS);
	__type(key, __u32);
	__type(value, struct nk_guest_stats);
} nk_guest_stats SEC(".maps");

/* Per-CPU counters of every exit path, indexed by enum nk_exit. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NK_EXIT__MAX);
	__type(key, __u32);
	__type(value, struct nk_exit_stats);
} nk_exit_stats SEC(".maps");

#endif /* NK_MAPS_H */
