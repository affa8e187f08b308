#!/usr/bin/env bash
# The afxdp NSM's TCP/IP engine over the AF_PACKET backend, rootless: in
# `unshare -Urn` a veth pair; the engine owns one end (no kernel address on
# it) through AF_PACKET, the kernel has 10.N.0.1 on the other. The kernel
# side keeps checksum offload on (partial checksums, completed by the
# engine) but TSO/GSO off (AF_PACKET would see 64 KiB super-frames). ping,
# curl, 32 MiB TCP echo with SHA-256, UDP echo. Exit 0 pass, 1 fail, 77 skip.
# timeout: 200
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
DRV=${NK_USTACK_DRV:-$BUILD/tools/ustack_echo}
PEER=$NK_ROOT/tests/tools/ustack_peer.py
BYTES=${NK_USTACK_BYTES:-$((32 << 20))}
[ -x "$DRV" ] || fail "missing $DRV (run make)"
command -v curl >/dev/null || skip "curl not installed"
command -v ethtool >/dev/null || skip "ethtool not installed"
nk_reexec_userns "$@"
ID=$NK_ID
N=$((ID % 200 + 20))
K=10.$N.0.1
E=10.$N.0.2
VE=nkpe$((ID % 100000))
VK=nkpk$((ID % 100000))

ip link set lo up
ip link add "$VE" type veth peer name "$VK"
ethtool -K "$VK" tso off gso off >/dev/null
# the engine's end: no IPv4 address, no IPv6 chatter from the kernel
sysctl -qw "net.ipv6.conf.$VE.disable_ipv6=1" 2>/dev/null || true
ip addr add "$K/24" dev "$VK"
ip link set "$VE" up
ip link set "$VK" up

"$DRV" --backend packet --if "$VE" --addr "$E/24" --tcp-echo 7 --http 8080 \
	--udp-echo 7 --ready-file "$NK_TMP/ready" --timeout 190 2>"$NK_TMP/drv.log" &
SRV=$!
NK_PIDS+=("$SRV")
wait_file "$NK_TMP/ready" 10 || fail "driver never became ready: $(cat "$NK_TMP/drv.log")"

log "ping $E"
if command -v ping >/dev/null; then
	timeout 20 ping -c 3 -W 2 "$E" >&2 || fail "no ICMP echo replies"
else
	timeout 20 "$PY" "$PEER" ping "$E" 3 >&2 || fail "no ICMP echo replies"
fi
body=$(timeout 20 curl -sS -m 10 "http://$E:8080/") || fail "curl failed"
[ "$body" = "hello from the netkernel ustack" ] || fail "unexpected body: $body"
log "TCP echo: $BYTES bytes"
timeout 150 "$PY" "$PEER" tcp-echo "$E" 7 "$BYTES" >&2 || fail "TCP echo transfer"
timeout 60 "$PY" "$PEER" udp-echo "$E" 7 28 >&2 || fail "UDP echo"

alive "$SRV" || fail "driver died: $(cat "$NK_TMP/drv.log")"
kill "$SRV"
rc=0
wait "$SRV" || rc=$?
[ "$rc" = 0 ] || fail "driver exited with $rc: $(cat "$NK_TMP/drv.log")"
LINE=$(grep '^stats:' "$NK_TMP/drv.log" | tail -1)
printf '%s\n' "$LINE" >&2
[ "$(field rx_csum_bad "$LINE")" = 0 ] || fail "checksum errors counted"
log "PASS"
