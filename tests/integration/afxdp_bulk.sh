#!/usr/bin/env bash
# Bulk TCP through the afxdp NSM, each way, verified by SHA-256
# (build/tools/nk_stream), while a kernel server in H on H's own address
# (a port no guest owns) keeps answering P: the hybrid. Then a source the
# guest's ACL denies is dropped in XDP and counted, and the guest's
# counters match the bytes moved: socket bytes exactly, XDP frame bytes
# within the header overhead. The NSM's stack counters (nkctl nsms,
# nkctl stats) count at least the bytes moved each way, and a SYN the
# guest sends to the denied source, which never gets its answer, again
# as a TCP retransmission.
#
# NK_AFXDP_MIB sets the size each way (default 1024: 1 GiB each way, about
# 15 s per direction here; both ends hash with SHA-256 on 2 cores, which is
# what bounds nk_stream, not the NSM: see docs/afxdp-nsm.md "Measured in
# nkd").
# timeout: 240
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_cmd nsenter bpftool jq curl
need_nk "$NK_LOADER" "$TOOLS/nk_stream"
MIB=${NK_AFXDP_MIB:-1024}
BYTES=$((MIB * 1024 * 1024))
D4=10.$NK_N.0.9 # a second address of P, denied by the guest's ACL
afxdp_up
ip -n "$NS_P" addr add "$D4/24" dev nkp
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0 acl_deny=$D4
CONF
start_nkd_afxdp "$NK_TMP/nkd.conf"

gstat() { nkctl guests --json | jq ".guests[] | select(.name == \"$GUEST\") | .$1"; }
# nstat COUNTER: the NSM's stack counter (nkctl nsms "stack"), e.g.
# rx_frames or rx_drops.not_ours.
nstat() { nkctl nsms --json | jq ".nsms[] | select(.name == \"xdp0\") | .stack.$1"; }
hash_want=$("$TOOLS/nk_stream" gen "$BYTES" 7 | sed -n 's/.*sha256=\([0-9a-f]*\).*/\1/p')

# The hybrid, checked during the transfers: a kernel server in H.
mkdir -p "$NK_TMP/www"
echo hybrid-ok >"$NK_TMP/www/h"
bg_group web_h ip netns exec "$NS_H" "$PY" -m http.server --bind "$H4" --directory "$NK_TMP/www" 9090
wait_port "$NS_H" 9090

xfer() { # DIR: "in" (P sends to the guest) or "out" (guest sends to P)
	local dir=$1 rx0 xb0 t0 t1 r h
	rx0=$(gstat bytes_rx)
	xb0=$(gstat xdp_bytes)
	t0=$(date +%s.%N)
	if [ "$dir" = in ]; then
		bg_guest recv_g "$TOOLS/nk_stream" recv listen 0.0.0.0 5001
		rpid=$LASTPID
		wait_for 20 nk_guest_listening 5001 || fail "guest receiver not listening"
		run_peer "$TOOLS/nk_stream" send connect "$X4" 5001 "$BYTES" 7 >"$NK_TMP/send_in.out" ||
			fail "P sender failed: $(cat "$NK_TMP/send_in.out")"
		wait "$rpid" || fail "guest receiver failed: $(cat "$NK_TMP/recv_g.log")"
		r=$(grep RESULT "$NK_TMP/recv_g.log")
	else
		bg_peer recv_p "$TOOLS/nk_stream" recv listen "$P4" 5002
		rpid=$LASTPID
		wait_port "$NS_P" 5002
		run_guest "$TOOLS/nk_stream" send connect "$P4" 5002 "$BYTES" 7 >"$NK_TMP/send_out.out" ||
			fail "guest sender failed: $(cat "$NK_TMP/send_out.out")"
		wait "$rpid" || fail "P receiver failed: $(cat "$NK_TMP/recv_p.log")"
		r=$(grep RESULT "$NK_TMP/recv_p.log")
	fi
	t1=$(date +%s.%N)
	h=$(field sha256 "$r")
	[ "$h" = "$hash_want" ] || fail "$dir: sha256 $h, want $hash_want"
	[ "$(field bytes "$r")" = "$BYTES" ] || fail "$dir: $(field bytes "$r") bytes, want $BYTES"
	log "$dir: $MIB MiB ok, $(awk -v a="$t0" -v b="$t1" -v n="$BYTES" 'BEGIN{printf "%.1f s, %.2f Gbit/s", b-a, n*8/(b-a)/1e9}')"
	# The hybrid still works while the guest's flows are steered away.
	run_peer curl -sS --max-time 5 "http://$H4:9090/h" | grep -q hybrid-ok ||
		fail "kernel server in H not reachable from P"
	if [ "$dir" = in ]; then
		local drx dxb
		drx=$(($(gstat bytes_rx) - rx0))
		dxb=$(($(gstat xdp_bytes) - xb0))
		log "counters: socket bytes_rx +$drx, XDP bytes +$dxb"
		[ "$drx" = "$BYTES" ] || fail "bytes_rx grew by $drx, want $BYTES"
		# Every payload byte came through XDP, plus <= 10% headers/ACKs.
		[ "$dxb" -ge "$BYTES" ] && [ "$dxb" -le $((BYTES + BYTES / 10)) ] ||
			fail "XDP bytes grew by $dxb for $BYTES payload bytes"
	fi
}
# Guest sockets live in nk_ustack, not in any kernel namespace: ask nkd.
nk_guest_listening() {
	nkctl sockets --json | jq -e ".sockets[] | select(.state == \"LISTEN\" and (.local | endswith(\":$1\")))" >/dev/null
}

n_rx0=$(nstat rx_frames)
n_tx0=$(nstat tx_frames)
n_rxb0=$(nstat rx_bytes)
n_txb0=$(nstat tx_bytes)
n_dl0=$(nstat rx_delivered)
[ "$n_rx0" -ge 0 ] 2>/dev/null || fail "nkctl nsms has no stack counters for xdp0: $(nkctl nsms --json)"
xfer in
xfer out
# The stack's own counters: every payload byte crossed the device each way.
n_rxb=$(($(nstat rx_bytes) - n_rxb0))
n_txb=$(($(nstat tx_bytes) - n_txb0))
log "xdp0's stack: rx_frames +$(($(nstat rx_frames) - n_rx0)) rx_bytes +$n_rxb tx_frames +$(($(nstat tx_frames) - n_tx0)) tx_bytes +$n_txb rx_delivered +$(($(nstat rx_delivered) - n_dl0)) tcp_retransmits $(nstat tcp_retransmits)"
[ "$n_rxb" -ge "$BYTES" ] || fail "xdp0's stack counted rx_bytes +$n_rxb for $BYTES bytes in"
[ "$n_txb" -ge "$BYTES" ] || fail "xdp0's stack counted tx_bytes +$n_txb for $BYTES bytes out"
[ "$(nstat rx_frames)" -gt "$n_rx0" ] || fail "xdp0's stack rx_frames did not move"
[ "$(nstat tx_frames)" -gt "$n_tx0" ] || fail "xdp0's stack tx_frames did not move"
[ "$(nstat rx_delivered)" -gt "$n_dl0" ] || fail "xdp0's stack rx_delivered did not move"
nkctl stats | grep -q '^netkernel_nsm_stack_rx_drops_total{nsm="xdp0",type="afxdp",reason="not_ours"} [0-9]' ||
	fail "nkctl stats has no netkernel_nsm_stack_rx_drops_total for xdp0: $(nkctl stats | grep nsm_stack | head -n 5)"
[ "$(nkctl stats | awk '$1 == "netkernel_nsm_stack_rx_bytes_total{nsm=\"xdp0\",type=\"afxdp\"}" { print $2 }')" -ge $((n_rxb0 + n_rxb)) ] ||
	fail "nkctl stats' netkernel_nsm_stack_rx_bytes_total for xdp0 is not nkctl nsms' rx_bytes"

log "ACL: $D4 is denied for $GUEST"
d0=$(gstat xdp_drops)
bg_guest srv_acl "$TOOLS/nk_stream" recv listen 0.0.0.0 5003
wait_for 20 nk_guest_listening 5003 || fail "guest ACL server not listening"
if run_peer "$PY" -c "
import socket
s = socket.socket(); s.bind(('$D4', 0)); s.settimeout(2)
s.connect(('$X4', 5003))" 2>/dev/null; then
	fail "a connection from denied $D4 got through"
fi
d1=$(gstat xdp_drops)
log "XDP drops for $GUEST: $d0 -> $d1"
[ "$d1" -gt "$d0" ] || fail "denied SYNs were not counted as drops"
# The guest connecting to $D4: what P answers is dropped in XDP, so the
# stack sends its SYN again (lwIP: after 3 s) and counts a retransmission.
r0=$(nstat tcp_retransmits)
run_guest "$PY" -c "
import socket
s = socket.socket(); s.settimeout(8)
try:
    s.connect(('$D4', 5004))
except OSError:
    pass" || true
retrans_moved() { [ "$(nstat tcp_retransmits)" -gt "$r0" ]; }
wait_for 10 retrans_moved ||
	fail "a SYN sent again did not count in xdp0's tcp_retransmits ($r0 -> $(nstat tcp_retransmits))"
log "tcp_retransmits $r0 -> $(nstat tcp_retransmits) for a connect to denied $D4"
# An allowed source still gets in (and ends the server).
run_peer "$TOOLS/nk_stream" send connect "$X4" 5003 1000 >/dev/null ||
	fail "allowed source refused"
nkctl guests >&2
nkctl nsms >&2
log "ok"
