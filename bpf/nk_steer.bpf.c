// SPDX-License-Identifier: GPL-2.0 OR MIT
/*
 * nk_steer: the XDP program netkernel attaches to each NIC it serves.
 *
 * It picks, packet by packet, the frames that belong to a guest served by
 * the afxdp NSM and redirects them to that NSM's AF_XDP socket for the RX
 * queue; everything else goes to the kernel untouched (XDP_PASS): that is
 * the hybrid. Order of decisions:
 *   1. ARP for an NSM address                      -> NSM   (knob steer_arp)
 *   2. ICMP/ICMPv6 for an NSM address, ND target   -> NSM   (knob steer_icmp)
 *   3. TCP/UDP: flow table (5-tuple), then endpoint table (exact local
 *      address, then wildcard)                     -> guest
 *   4. anything else, anything malformed           -> kernel
 * Before a redirect the guest's source ACL is applied (XDP_DROP, counted).
 * Every return goes through nk_exit(), which counts it in nk_exit_stats.
 * See docs/steering.md.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nk_steer_shared.h"
#include "nk_parse.h"
#include "nk_maps.h"

/*
 * Knobs, set by the loader through the skeleton before load. The verifier
 * sees them as constants, so a disabled feature costs no instructions.
 */
const volatile struct nk_steer_knobs nk_knobs = {
	.magic = NK_KNOBS_MAGIC,
	.version = NK_KNOBS_VERSION,
	.nr_queues = 1,
	.slots_per_queue = 1,
	.steer_arp = 1,
	.steer_icmp = 1,
};

/* Last decision, written only when nk_knobs.debug is set. */
struct nk_dbg nk_dbg;

/* Count the packet on exit path e and return the verdict unchanged. */
static __always_inline int nk_exit(struct xdp_md *ctx, __u32 e, int verdict)
{
	struct nk_exit_stats *st;
	__u32 key = e;

	st = bpf_map_lookup_elem(&nk_exit_stats, &key);
	if (st) {
		st->packets++;
		st->bytes += ctx->data_end - ctx->data;
	}
	if (nk_knobs.debug)
		nk_dbg.exit = e;
	return verdict;
}

/*
 * Apply the guest's source ACL. Returns 0 to accept, or an
 * enum nk_drop_reason + 1 to drop. saddr is network order, mapped.
 */
static __always_inline __u32 nk_acl_check(__u32 guest_id, const __u8 *saddr)
{
	struct nk_guest_cfg *cfg;
	struct nk_acl_key key;
	__u32 *action;

	cfg = bpf_map_lookup_elem(&nk_guest_cfg, &guest_id);
	if (!cfg || cfg->acl_mode == NK_ACL_MODE_OFF)
		return 0;
	key.prefixlen = 32 + 128;
	key.guest_id = guest_id;
	__builtin_memcpy(key.addr, saddr, 16);
	action = bpf_map_lookup_elem(&nk_acl, &key);
	if (action)
		return *action == NK_ACL_DENY ? NK_DROP_ACL_DENY + 1 : 0;
	if (cfg->acl_mode == NK_ACL_MODE_ALLOW_LIST)
		return NK_DROP_ACL_NOT_ALLOWED + 1;
	return 0;
}

/*
 * Hand a matched packet to its target: validate the entry, apply the ACL
 * (saddr may be NULL: ARP is not filtered), redirect to the XSK slot of the
 * RX queue. ok is the exit to count on a successful redirect.
 */
static __always_inline int nk_deliver(struct xdp_md *ctx,
				      const struct nk_target *t,
				      const __u8 *saddr, __u32 ok)
{
	__u64 len = ctx->data_end - ctx->data;
	__u32 q = ctx->rx_queue_index;
	struct nk_guest_stats *gs;
	__u32 guest = t->guest_id;
	__u32 slot = t->xsk_slot;
	__u32 idx, drop;
	int ret;

	if (nk_knobs.debug)
		nk_dbg.guest_id = guest;
	if (guest >= NK_MAX_GUESTS || slot >= nk_knobs.slots_per_queue)
		return nk_exit(ctx, NK_EXIT_PASS_BAD_TARGET, XDP_PASS);
	if (q >= nk_knobs.nr_queues)
		return nk_exit(ctx, NK_EXIT_PASS_QUEUE, XDP_PASS);
	gs = bpf_map_lookup_elem(&nk_guest_stats, &guest);

	if (saddr) {
		drop = nk_acl_check(guest, saddr);
		if (drop) {
			if (gs) {
				gs->drops[(drop - 1) & (NK_DROP__MAX - 1)]++;
				gs->drop_bytes += len;
			}
			return nk_exit(ctx, NK_EXIT_DROP_ACL, XDP_DROP);
		}
	}

	idx = q * nk_knobs.slots_per_queue + slot;
	if (nk_knobs.debug)
		nk_dbg.xsk_index = idx;
	ret = bpf_redirect_map(&nk_xsks, idx, XDP_PASS);
	if (ret != XDP_REDIRECT) {
		if (gs) {
			gs->xsk_miss++;
			gs->xsk_miss_bytes += len;
		}
		return nk_exit(ctx, NK_EXIT_PASS_XSK_MISS, ret);
	}
	if (gs) {
		gs->packets++;
		gs->bytes += len;
	}
	return nk_exit(ctx, ok, XDP_REDIRECT);
}

/* ARP: steer requests and replies whose target is an NSM address. */
static __always_inline int nk_handle_arp(struct xdp_md *ctx,
					 struct nk_cursor *c)
{
	struct nk_addr_key key;
	struct nk_target *t;
	__u32 rc;

	if (!nk_knobs.steer_arp)
		return nk_exit(ctx, NK_EXIT_PASS_ARP, XDP_PASS);
	rc = nk_parse_arp(c, key.addr);
	if (rc != NK_OK)
		return nk_exit(ctx, rc, XDP_PASS);
	t = bpf_map_lookup_elem(&nk_nsm_addrs, &key);
	if (!t)
		return nk_exit(ctx, NK_EXIT_PASS_ARP, XDP_PASS);
	return nk_deliver(ctx, t, NULL, NK_EXIT_REDIRECT_ARP);
}

/* ICMP/ICMPv6 for an NSM address (destination, or ND target). */
static __always_inline int nk_handle_icmp(struct xdp_md *ctx,
					  struct nk_cursor *c, struct nk_pkt *p)
{
	struct nk_addr_key key;
	struct nk_target *t;
	int is_nd;
	__u32 rc;

	if (!nk_knobs.steer_icmp)
		return nk_exit(ctx, NK_EXIT_PASS_ICMP, XDP_PASS);
	rc = nk_parse_icmp(c, p, key.addr, &is_nd);
	if (rc != NK_OK)
		return nk_exit(ctx, rc, XDP_PASS);
	if (!is_nd)
		__builtin_memcpy(key.addr, p->daddr, 16);
	t = bpf_map_lookup_elem(&nk_nsm_addrs, &key);
	if (!t)
		return nk_exit(ctx, NK_EXIT_PASS_ICMP, XDP_PASS);
	return nk_deliver(ctx, t, p->saddr, NK_EXIT_REDIRECT_ICMP);
}

/* TCP/UDP: flow, then exact endpoint, then wildcard endpoint. */
static __always_inline int nk_handle_l4(struct xdp_md *ctx, struct nk_pkt *p)
{
	struct nk_flow_key fk;
	struct nk_ep_key ek;
	struct nk_target *t;

	__builtin_memcpy(fk.laddr, p->daddr, 16);
	__builtin_memcpy(fk.raddr, p->saddr, 16);
	fk.lport = p->dport;
	fk.rport = p->sport;
	fk.proto = p->l4proto;
	fk.pad[0] = fk.pad[1] = fk.pad[2] = 0;
	t = bpf_map_lookup_elem(&nk_flows, &fk);
	if (t)
		return nk_deliver(ctx, t, p->saddr, NK_EXIT_REDIRECT_FLOW);

	__builtin_memcpy(ek.addr, p->daddr, 16);
	ek.port = p->dport;
	ek.proto = p->l4proto;
	ek.pad = 0;
	t = bpf_map_lookup_elem(&nk_endpoints, &ek);
	if (t)
		return nk_deliver(ctx, t, p->saddr, NK_EXIT_REDIRECT_EP);

	__builtin_memset(ek.addr, 0, 16);
	t = bpf_map_lookup_elem(&nk_endpoints, &ek);
	if (t)
		return nk_deliver(ctx, t, p->saddr, NK_EXIT_REDIRECT_EP_ANY);
	return nk_exit(ctx, NK_EXIT_PASS_NO_MATCH, XDP_PASS);
}

SEC("xdp")
int nk_steer(struct xdp_md *ctx)
{
	struct nk_cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
	};
	struct nk_pkt p = {};
	__be16 proto;
	__u32 rc;

	if (nk_knobs.debug) {
		nk_dbg.guest_id = ~0u;
		nk_dbg.xsk_index = ~0u;
		nk_dbg.seq++;
	}

	rc = nk_parse_eth(&c, &proto);
	if (rc != NK_OK)
		return nk_exit(ctx, rc, XDP_PASS);
	if (proto == bpf_htons(NK_ETH_P_ARP))
		return nk_handle_arp(ctx, &c);
	if (proto == bpf_htons(NK_ETH_P_IP))
		rc = nk_parse_ipv4(&c, &p);
	else if (proto == bpf_htons(NK_ETH_P_IPV6))
		rc = nk_parse_ipv6(&c, &p);
	else
		return nk_exit(ctx, NK_EXIT_PASS_L3_OTHER, XDP_PASS);
	if (rc != NK_OK)
		return nk_exit(ctx, rc, XDP_PASS);

	switch (p.l4proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
		rc = nk_parse_ports(&c, &p);
		if (rc != NK_OK)
			return nk_exit(ctx, rc, XDP_PASS);
		return nk_handle_l4(ctx, &p);
	case IPPROTO_ICMP:
		if (p.is_v6)
			break;
		return nk_handle_icmp(ctx, &c, &p);
	case NK_IPPROTO_ICMPV6:
		if (!p.is_v6)
			break;
		return nk_handle_icmp(ctx, &c, &p);
	}
	return nk_exit(ctx, NK_EXIT_PASS_L4_OTHER, XDP_PASS);
}

char _license[] SEC("license") = "Dual MIT/GPL";
