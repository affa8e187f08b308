#!/usr/bin/env bash
# ISN predictability at the afxdp NSM (issue 6). lwIP picks initial
# sequence numbers from a counter (6510, 6511, 6512, ...), so an off-path
# host could guess them and inject data or resets into a guest's
# connections. The engine now translates every connection's sequence space
# to an RFC 6528 ISN (userspace/nkd/nsm/afxdp/ustack/seqmod.c).
#
# From P, 50 connections to a guest listener and 50 from the guest to a
# listener in P; an AF_PACKET sniffer in P records the ISN of every SYN-ACK
# and SYN the NSM sends: fails if more than 3 consecutive ISNs are closer
# than 2^20. Then transfers both ways, checked by sha256, with 1% loss on
# P's side (netem, when the module is there) so retransmissions and
# duplicate ACKs cross the translation; the bystander guest (on the same
# afxdp NSM) moves its own checksummed data meanwhile. ASan+UBSan nkd.
# (lwIP does not offer SACK, so a Linux peer sends no SACK blocks: their
# translation is covered by tests/unit/test_ustack_seqmod.c; the sniffer
# logs how many it saw.)
# Exit 0 pass, 1 fail, 77 skip.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_afxdp
PROBE=$HELPERS/nk_synprobe.py
N=50
BYS_BYTES=$((32 << 20))
NK_CMD_TIMEOUT=60
nk_use_san_nkd

afxdp_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
guest $BYS_GUEST nsm=xdp0
CONF
start_nkd_afxdp "$NK_TMP/nkd.conf"
bystander_start 9400

bg_peer sniff "$PY" "$PROBE" sniff nkp "$X4" 40 "$NK_TMP/syns.txt"
SNIFF=$LASTPID
sleep 0.5

# P -> guest: the NSM answers with SYN-ACKs
bg_guest serve_g "$PY" "$PROBE" serve 0.0.0.0 7001 "$N"
SERVE=$LASTPID
wait_for 20 nk_guest_listening 7001 || fail "guest listener not up"
run_peer "$PY" "$PROBE" conns "$X4" 7001 "$N" >"$NK_TMP/conns_p.out" ||
	fail "connections from P failed: $(cat "$NK_TMP/conns_p.out")"
wait "$SERVE" || fail "guest server failed: $(cat "$NK_TMP/serve_g.log")"

# guest -> P: the NSM sends SYNs
bg_peer serve_p "$PY" "$PROBE" serve "$P4" 7002 "$N"
SERVE=$LASTPID
wait_port "$NS_P" 7002
run_guest "$PY" "$PROBE" conns "$P4" 7002 "$N" >"$NK_TMP/conns_g.out" ||
	fail "connections from the guest failed: $(cat "$NK_TMP/conns_g.out")"
wait "$SERVE" || fail "P server failed: $(cat "$NK_TMP/serve_p.log")"

# Transfers each way with loss on P's side, when netem is available.
LOSS=
if ip netns exec "$NS_P" tc qdisc add dev nkp root netem loss 1% 2>"$NK_TMP/netem.err"; then
	LOSS=" (1% loss on P's side)"
else
	log "no netem ($(head -c 200 "$NK_TMP/netem.err")): transfers without loss"
fi
BYTES=$((16 << 20))
want=$("$TOOLS/nk_stream" gen "$BYTES" 11 | sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p')
bg_guest recv_g "$TOOLS/nk_stream" recv listen 0.0.0.0 7003
RPID=$LASTPID
wait_for 20 nk_guest_listening 7003 || fail "guest receiver not listening"
run_peer "$TOOLS/nk_stream" send connect "$X4" 7003 "$BYTES" 11 >/dev/null ||
	fail "P sender failed"
wait "$RPID" || fail "guest receiver failed: $(cat "$NK_TMP/recv_g.log")"
r=$(grep RESULT "$NK_TMP/recv_g.log")
[ "$(field sha256 "$r")" = "$want" ] || fail "P -> guest$LOSS: data corrupted ($r)"
bg_peer recv_p "$TOOLS/nk_stream" recv listen "$P4" 7004
RPID=$LASTPID
wait_port "$NS_P" 7004
run_guest "$TOOLS/nk_stream" send connect "$P4" 7004 "$BYTES" 11 >/dev/null ||
	fail "guest sender failed"
wait "$RPID" || fail "P receiver failed: $(cat "$NK_TMP/recv_p.log")"
r=$(grep RESULT "$NK_TMP/recv_p.log")
[ "$(field sha256 "$r")" = "$want" ] || fail "guest -> P$LOSS: data corrupted ($r)"
log "16 MiB each way intact$LOSS"
[ -z "$LOSS" ] || ip netns exec "$NS_P" tc qdisc del dev nkp root 2>/dev/null || true

bystander_finish
kill "$SNIFF" 2>/dev/null || true
wait "$SNIFF" 2>/dev/null || true
[ -s "$NK_TMP/syns.txt" ] || fail "the sniffer captured nothing"
log "SACK options seen: $(sed -n 's/^sack //p' "$NK_TMP/syns.txt")"
"$PY" "$PROBE" isn "$NK_TMP/syns.txt" 3 >"$NK_TMP/isn.out" 2>&1 || {
	cat "$NK_TMP/isn.out" >&2
	fail "the NSM's initial sequence numbers are predictable"
}
cat "$NK_TMP/isn.out" >&2
nk_san_stop
log "ok"
