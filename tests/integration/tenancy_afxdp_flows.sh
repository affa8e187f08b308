#!/usr/bin/env bash
# afxdp flow takeover (issue 6): guests of the afxdp NSM share one port
# space and nk_steer's flow table. A victim guest holds two connections with
# the peer, each carrying a checksummed stream that pauses halfway: one it
# connected (local port P, random), one it accepted on port 7602 and then
# closed its listener. An attacker guest, knowing the ports, binds P with
# SO_REUSEADDR and connects to the same peer port (the flow key of the
# victim's first connection), then binds 7602 and connects to the victim's
# client's port (the key of the second). Each attempt must fail with
# EADDRINUSE (at bind: P is held; at connect: the flow key is the
# victim's), and both victim streams must then finish with matching sha256:
# before, the attacker's flow_add replaced the victim's XDP flow and its
# failed connect deleted it, and the victim's connection died. Last, ports
# of 8 TCP connects and 8 UDP sends in a row must not be sequential (they
# came from a +1 counter). A bystander guest (also on the afxdp NSM) moves
# data beside it; nkd is the ASan+UBSan build.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_afxdp
FL=$NK_ROOT/tests/tools/tenancy_flows.py
BYTES=$((8 << 20))
BYS_BYTES=$((32 << 20))
NK_CMD_TIMEOUT=60
afxdp_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
nsm kernel0 type=kernel netns=/run/netns/$NS_H
guest victim nsm=xdp0
guest attacker nsm=xdp0
guest $BYS_GUEST nsm=xdp0
CONF
nk_use_san_nkd
start_nkd_afxdp "$NK_TMP/nkd.conf"
GO=$NK_TMP/attack_done

bystander_start 9400

# The peer: a receiver for the victim's client stream, an echo server for
# the attacker's port sample.
bg_peer peer_recv "$TOOLS/nk_stream" recv listen "$P4" 7601
PRECV=$LASTPID
bg_peer peer_echo "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 7603
wait_port "$NS_P" 7601 || fail "peer receiver not listening"
wait_port "$NS_P" 7603 || fail "peer echo server not listening"

GUEST=victim bg_guest victim_srv "$PY" "$FL" victim-server 7602 "$NK_TMP/peer_b"
VSRV=$LASTPID
wait_for 20 nk_guest_listening 7602 || fail "victim server not listening"
bg_peer peer_send "$PY" "$FL" sender "$X4" 7602 "$BYTES" 5 "$GO"
PSEND=$LASTPID
GUEST=victim bg_guest victim_cli "$PY" "$FL" victim-client "$P4" 7601 "$BYTES" 6 "$NK_TMP/port_a" "$GO"
VCLI=$LASTPID
wait_file "$NK_TMP/port_a" 20 || fail "victim client did not connect: $(cat "$NK_TMP/victim_cli.log")"
wait_file "$NK_TMP/peer_b" 20 || fail "victim server did not accept: $(cat "$NK_TMP/victim_srv.log")"
log "victim: client port $(cat "$NK_TMP/port_a"), server's peer port $(cat "$NK_TMP/peer_b")"
nkctl sockets >&2 || true

GUEST=attacker run_guest "$PY" "$FL" attacker "$P4" 7601 "$NK_TMP/port_a" 7602 "$NK_TMP/peer_b" 7603 \
	>"$NK_TMP/attacker.out" 2>&1 || fail "attacker program failed: $(cat "$NK_TMP/attacker.out")"
touch "$GO"
R=$(grep RESULT "$NK_TMP/attacker.out") || fail "no result from the attacker"
log "attacker: $R"

# The victim's streams first: they are what the attack kills.
wait "$VCLI" || fail "victim client failed: $(tail -n 3 "$NK_TMP/victim_cli.log")"
wait "$PRECV" || fail "peer receiver failed: $(tail -n 3 "$NK_TMP/peer_recv.log")"
wait "$PSEND" || fail "peer sender failed: $(tail -n 3 "$NK_TMP/peer_send.log")"
wait "$VSRV" || fail "victim server failed: $(tail -n 3 "$NK_TMP/victim_srv.log")"
for pair in "victim_cli peer_recv" "peer_send victim_srv"; do
	set -- $pair
	transfer_ok "$1" "$2" "$BYTES"
done
log "victim: both streams intact ($BYTES bytes each, sha256 match)"

a1=$(field a1 "$R")
a2=$(field a2 "$R")
case $a1 in *:EADDRINUSE) ;; *) fail "taking the victim client's port: $a1, want EADDRINUSE" ;; esac
case $a2 in *:EADDRINUSE) ;; *) fail "taking the victim server's flow: $a2, want EADDRINUSE" ;; esac

# Ephemeral ports: random, not +1 each.
seq_count() { # comma-separated ports -> how many neighbours differ by 1
	echo "$1" | tr ',' '\n' | awk 'NR > 1 && ($1 - p == 1 || p - $1 == 1) { n++ } { p = $1 } END { print n + 0 }'
}
for proto in tcp udp; do
	ports=$(field "$proto" "$R")
	n=$(seq_count "$ports")
	log "$proto ephemeral ports: $ports ($n of 7 steps are +-1)"
	[ "$n" -le 1 ] || fail "$proto ephemeral ports are sequential: $ports"
done

bystander_finish
nk_san_stop
log "ok"
