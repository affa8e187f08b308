#!/usr/bin/env bash
# nkd names the RX queue whose AF_XDP socket fails: nk_steer attached for 2
# queues (--queues 2) on a veth that has 1, nkd configured with queues=2
# stops at start with "RX queue 1 of queues=2" and the hint to check the
# device's queues (before: "Invalid argument" alone). Then the same nkd
# with queues=1 starts (the device really has one queue).
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_afxdp
nk_netns_add "$NS_H"
nk_netns_add "$NS_P"
ip link add nkh netns "$NS_H" numrxqueues 1 numtxqueues 1 type veth \
	peer name nkp netns "$NS_P" numrxqueues 1 numtxqueues 1
ip -n "$NS_H" link set nkh up
ip -n "$NS_P" link set nkp up
NK_XDEV=nkx$((NK_ID % 100000000))
ip -n "$NS_H" link set nkh name "$NK_XDEV" || fail "cannot rename nkh"
NK_PIN=/sys/fs/bpf/netkernel/$NK_XDEV
trap afxdp_exit EXIT
nsenter --net="/run/netns/$NS_H" "$NK_LOADER" attach "$NK_XDEV" --mode skb --queues 2 \
	>"$NK_TMP/loader.log" 2>&1 || fail "nk-loader attach: $(cat "$NK_TMP/loader.log")"
conf() {
	printf 'nsm xdp0 type=afxdp dev=%s addr=%s/24 queues=%s netns=/run/netns/%s\nguest g1 nsm=xdp0\n' \
		"$NK_XDEV" "$X4" "$1" "$NS_H" >"$NK_TMP/nkd$1.conf"
}
conf 2
rc=0
timeout -k 5 30 "$NKD" --socket "$NK_SOCK" --config "$NK_TMP/nkd2.conf" >"$NK_TMP/nkd2.log" 2>&1 || rc=$?
log "queues=2 on a 1-queue veth: exit $rc: $(grep -i 'queue' "$NK_TMP/nkd2.log" | head -n 2 | tr '\n' ' ')"
{ [ "$rc" != 0 ] && [ "$rc" != 124 ]; } || fail "nkd with queues=2 on a 1-queue device: exit $rc"
grep -q "RX queue 1 of queues=2: " "$NK_TMP/nkd2.log" || fail "nkd does not name the failing queue: $(cat "$NK_TMP/nkd2.log")"
grep -q "ethtool -l" "$NK_TMP/nkd2.log" || fail "no hint to check the device's queues: $(cat "$NK_TMP/nkd2.log")"
conf 1
rm -f "$NK_SOCK"
start_nkd_afxdp "$NK_TMP/nkd1.conf"
log "ok"
