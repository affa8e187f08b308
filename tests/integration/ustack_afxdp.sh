#!/usr/bin/env bash
# The afxdp NSM's TCP/IP engine over the AF_XDP backend (root): namespaces
# A (engine, device without an IP) and B (kernel peer) joined by a veth with
# one RX/TX queue. libxdp's default XDP program redirects everything on A's
# veth to the engine's XSK (copy mode; zero-copy is requested and must fall
# back cleanly, veth has none). From B: ping, curl, 64 MiB TCP echo and UDP
# echo; the engine as a client sends 32 MiB to a Python echo server in B;
# SHA-256 checked both ways. B keeps checksum offload on, so the engine must
# complete partial checksums (counted); a second round with `ethtool -K tx
# off` on B and --csum strict must need none. Exit 0 pass, 1 fail, 77 skip.
# timeout: 300
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
DRV=${NK_USTACK_DRV:-$BUILD/tools/ustack_echo}
PEER=$NK_ROOT/tests/tools/ustack_peer.py
BYTES=${NK_USTACK_BYTES:-$((64 << 20))}
CBYTES=${NK_USTACK_CLIENT_BYTES:-$((32 << 20))}
[ "$(id -u)" = 0 ] || skip "needs root (XDP program load and AF_XDP RX)"
[ -x "$DRV" ] || fail "missing $DRV (run make)"
command -v curl >/dev/null || skip "curl not installed"
command -v ethtool >/dev/null || skip "ethtool not installed"
ID=$NK_ID
N=$((ID % 200 + 20))
K=10.$N.0.1
E=10.$N.0.2
NSA=nk-a-$ID # nk-?-ID: run-all.sh checks these for leaks
NSB=nk-b-$ID

inA() { ip netns exec "$NSA" "$@"; }
inB() { ip netns exec "$NSB" "$@"; }

nk_netns_add "$NSA"
nk_netns_add "$NSB"
ip link add vxa$((ID % 100000)) numrxqueues 1 numtxqueues 1 type veth \
	peer name vxb$((ID % 100000)) numrxqueues 1 numtxqueues 1
VA=vxa$((ID % 100000))
VB=vxb$((ID % 100000))
ip link set "$VA" netns "$NSA"
ip link set "$VB" netns "$NSB"
ip -n "$NSA" link set "$VA" up
ip -n "$NSB" addr add "$K/24" dev "$VB"
ip -n "$NSB" link set "$VB" up

# start_engine LOGNAME ARGS...: the engine in A, libxdp's default program
start_engine() {
	local name=$1
	shift
	rm -f "$NK_TMP/ready"
	# exec chain (ip netns exec, env): $! is the driver itself
	ip netns exec "$NSA" env LIBXDP_SKIP_DISPATCHER=1 "$DRV" --backend afxdp --if "$VA" \
		--default-prog --addr "$E/24" --ready-file "$NK_TMP/ready" \
		--timeout 280 "$@" 2>"$NK_TMP/$name.log" &
	SRV=$!
	NK_PIDS+=("$SRV")
	if ! wait_file "$NK_TMP/ready" 15; then
		if grep -q -e 'Address family not supported' -e 'Operation not supported' "$NK_TMP/$name.log"; then
			skip "no AF_XDP here: $(cat "$NK_TMP/$name.log")"
		fi
		fail "engine did not start: $(cat "$NK_TMP/$name.log")"
	fi
}

# stop_engine LOGNAME: SIGTERM, exit status 0, counters line in $LINE
stop_engine() {
	local rc=0
	alive "$SRV" || fail "engine died: $(cat "$NK_TMP/$1.log")"
	kill "$SRV"
	wait "$SRV" || rc=$?
	[ "$rc" = 0 ] || fail "engine exited with $rc: $(cat "$NK_TMP/$1.log")"
	LINE=$(grep '^stats:' "$NK_TMP/$1.log" | tail -1)
	printf '%s\n' "$LINE" >&2
}

stat_of() { # LINE KEY
	printf '%s\n' "$1" | tr ' ' '\n' | sed -n "s/^$2=//p"
}

log "engine on $VA in $NSA as $E, AF_XDP (zero-copy requested)"
start_engine srv --zc --tcp-echo 7 --http 8080 --udp-echo 7
inA ip link show "$VA" | grep -q 'prog/xdp' || fail "no XDP program on $VA"
grep -q 'ustack_echo: afxdp copy ' "$NK_TMP/srv.log" ||
	fail "expected a clean fallback to copy mode: $(cat "$NK_TMP/srv.log")"
grep 'ustack_echo: afxdp' "$NK_TMP/srv.log" >&2

log "ping $E"
inB timeout 20 ping -c 3 -W 2 "$E" >&2 || fail "no ICMP echo replies"
log "curl"
body=$(inB timeout 20 curl -sS -m 10 "http://$E:8080/") || fail "curl failed"
[ "$body" = "hello from the netkernel ustack" ] || fail "unexpected body: $body"
log "TCP echo: $BYTES bytes"
inB timeout 200 "$PY" "$PEER" tcp-echo "$E" 7 "$BYTES" >&2 || fail "TCP echo transfer"
log "UDP echo"
inB timeout 60 "$PY" "$PEER" udp-echo "$E" 7 70 >&2 || fail "UDP echo"
stop_engine srv
[ "$(field rx_csum_completed "$LINE")" -gt 0 ] ||
	fail "expected partial checksums from the veth peer to be completed"
[ "$(field rx_csum_bad "$LINE")" = 0 ] || fail "checksum errors counted"
# lwIP trusted our verify instead of summing each segment again
# (lwip_csum.c interposes liblwip's ip_chksum_pseudo)
[ "$(field rx_csum_once "$LINE")" -gt 0 ] ||
	fail "lwIP verified every checksum again (rx_csum_once 0 or missing)"

log "engine as client -> python echo server $K:9000, $CBYTES bytes"
head -c "$CBYTES" /dev/urandom >"$NK_TMP/send.bin"
inB timeout 200 "$PY" "$PEER" echo-server "$K" 9000 "$NK_TMP/server.sha" &
NK_PIDS+=($!)
wait_file "$NK_TMP/server.sha.ready" 10 || fail "python echo server did not start"
inA timeout 200 env LIBXDP_SKIP_DISPATCHER=1 "$DRV" --backend afxdp \
	--if "$VA" --default-prog --addr "$E/24" --connect "$K:9000" \
	--send-file "$NK_TMP/send.bin" --recv-file "$NK_TMP/recv.bin" \
	--timeout 180 2>"$NK_TMP/client.log" ||
	fail "client driver failed: $(cat "$NK_TMP/client.log")"
ustack_check_echo_transfer "$CBYTES"

log "peer with tx checksum offload off, engine in strict mode"
inB ethtool -K "$VB" tx off >/dev/null
start_engine strict --csum strict --tcp-echo 7
inB timeout 100 "$PY" "$PEER" tcp-echo "$E" 7 $((8 << 20)) >&2 || fail "TCP echo (strict)"
stop_engine strict
[ "$(field rx_csum_completed "$LINE")" = 0 ] || fail "partial checksums with tx off?"
[ "$(field rx_csum_bad "$LINE")" = 0 ] || fail "checksum errors in strict mode"
log "PASS"
