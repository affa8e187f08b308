#!/usr/bin/env bash
# The afxdp NSM's TCP/IP engine (lwIP) over the TAP backend, rootless: in
# `unshare -Urn` the driver build/tools/ustack_echo serves 10.N.0.2 on a TAP
# whose kernel side is 10.N.0.1. From the kernel side: ICMP echo, HTTP with
# curl, 64 MiB through the TCP echo checked by SHA-256, UDP echo round trips
# (fragmented sizes included). Then the engine as a client: a second driver
# sends 32 MiB to a Python echo server on the kernel side, both directions
# checked by SHA-256. Exit 0 pass, 1 fail, 77 skip.
# timeout: 300
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
DRV=${NK_USTACK_DRV:-$BUILD/tools/ustack_echo}
PEER=$NK_ROOT/tests/tools/ustack_peer.py
BYTES=${NK_USTACK_BYTES:-$((64 << 20))}
CBYTES=${NK_USTACK_CLIENT_BYTES:-$((32 << 20))}
[ -x "$DRV" ] || fail "missing $DRV (run make)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun on this machine"
{ [ -r /dev/net/tun ] && [ -w /dev/net/tun ]; } ||
	skip "/dev/net/tun is not readable and writable for this user"
command -v curl >/dev/null || skip "curl not installed"
nk_reexec_userns "$@"
ID=$NK_ID
N=$((ID % 200 + 20))
K=10.$N.0.1 # kernel side
E=10.$N.0.2 # engine
KC=10.$((N + 1)).0.1 # second TAP: the engine as a client
EC=10.$((N + 1)).0.2
TAP=nkus$((ID % 100000))
TAPC=nkuc$((ID % 100000))



ip link set lo up

log "engine on $TAP as $E (TCP echo :7, HTTP :8080, UDP echo :7)"
"$DRV" --backend tap --if "$TAP" --addr "$E/24" --tcp-echo 7 --http 8080 \
	--udp-echo 7 --ready-file "$NK_TMP/ready" --timeout 280 2>"$NK_TMP/server.log" &
SRV=$!
NK_PIDS+=("$SRV")
wait_file "$NK_TMP/ready" 10 || fail "driver never became ready: $(cat "$NK_TMP/server.log")"
ip addr add "$K/24" dev "$TAP"
ip link set "$TAP" up

log "ping $E"
if command -v ping >/dev/null; then
	timeout 20 ping -c 3 -W 2 "$E" >&2 || fail "no ICMP echo replies"
else
	timeout 20 "$PY" "$PEER" ping "$E" 3 >&2 || fail "no ICMP echo replies"
fi

log "curl http://$E:8080/"
body=$(timeout 20 curl -sS -m 10 "http://$E:8080/") || fail "curl failed"
[ "$body" = "hello from the netkernel ustack" ] || fail "unexpected body: $body"
for i in $(seq 20); do
	timeout 10 curl -sS -m 5 -o /dev/null "http://$E:8080/req$i" ||
		fail "request $i of 20 failed"
done

log "TCP echo: $BYTES bytes"
timeout 200 "$PY" "$PEER" tcp-echo "$E" 7 "$BYTES" >&2 || fail "TCP echo transfer"

log "UDP echo"
timeout 60 "$PY" "$PEER" udp-echo "$E" 7 70 >&2 || fail "UDP echo"

alive "$SRV" || fail "server driver died: $(cat "$NK_TMP/server.log")"

log "engine as client on $TAPC ($EC) -> python echo server $KC:9000, $CBYTES bytes"
ip tuntap add dev "$TAPC" mode tap
ip addr add "$KC/24" dev "$TAPC"
head -c "$CBYTES" /dev/urandom >"$NK_TMP/send.bin"
timeout 200 "$PY" "$PEER" echo-server "$KC" 9000 "$NK_TMP/server.sha" &
NK_PIDS+=($!)
wait_file "$NK_TMP/server.sha.ready" 10 || fail "python echo server did not start"
# the TAP is persistent: bring it up before the driver attaches
ip link set "$TAPC" up
timeout 200 "$DRV" --backend tap --if "$TAPC" --addr "$EC/24" \
	--connect "$KC:9000" --send-file "$NK_TMP/send.bin" \
	--recv-file "$NK_TMP/recv.bin" --timeout 180 2>"$NK_TMP/client.log" ||
	fail "client driver failed: $(cat "$NK_TMP/client.log")"
ustack_check_echo_transfer "$CBYTES"

kill -USR1 "$SRV"
sleep 0.3
alive "$SRV" || fail "server driver died: $(cat "$NK_TMP/server.log")"
kill "$SRV"
rc=0
wait "$SRV" || rc=$?
[ "$rc" = 0 ] || fail "server driver exited with $rc: $(cat "$NK_TMP/server.log")"
grep '^stats:' "$NK_TMP/server.log" | tail -1 >&2
log "PASS"
