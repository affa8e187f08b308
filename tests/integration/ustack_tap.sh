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
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
DRV=${NK_USTACK_DRV:-$BUILD/tools/ustack_echo}
PEER=$ROOT/tests/tools/ustack_peer.py
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
BYTES=${NK_USTACK_BYTES:-$((64 << 20))}
CBYTES=${NK_USTACK_CLIENT_BYTES:-$((32 << 20))}
T=ustack_tap

log() { printf '[%s] %s\n' "$T" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
skip() { log "SKIP: $*"; exit 77; }

if [ "${NK_USTACK_INNER:-}" != 1 ]; then
	[ -x "$DRV" ] || fail "missing $DRV (run make)"
	[ -c /dev/net/tun ] || skip "no /dev/net/tun on this machine"
	{ [ -r /dev/net/tun ] && [ -w /dev/net/tun ]; } ||
		skip "/dev/net/tun is not readable and writable for this user"
	command -v curl >/dev/null || skip "curl not installed"
	unshare -Urn true 2>/dev/null ||
		skip "unshare -Urn not permitted (unprivileged user namespaces off)"
	NK_USTACK_INNER=1 exec unshare -Urn "$0" "$@"
fi

# ---- inside a private user + network namespace ----
ID=${NK_ID:-$$}
N=$((ID % 200 + 20))
K=10.$N.0.1 # kernel side
E=10.$N.0.2 # engine
KC=10.$((N + 1)).0.1 # second TAP: the engine as a client
EC=10.$((N + 1)).0.2
TAP=nkus$((ID % 100000))
TAPC=nkuc$((ID % 100000))
TMP=$(mktemp -d "/tmp/nk-ustack-$ID.XXXXXX")
PIDS=()

cleanup() {
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	rm -rf "$TMP"
}
trap cleanup EXIT

wait_file() { # FILE SECONDS
	local i
	for i in $(seq $(($2 * 10))); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

alive() { kill -0 "$1" 2>/dev/null; }

ip link set lo up

log "engine on $TAP as $E (TCP echo :7, HTTP :8080, UDP echo :7)"
"$DRV" --backend tap --if "$TAP" --addr "$E/24" --tcp-echo 7 --http 8080 \
	--udp-echo 7 --ready-file "$TMP/ready" --timeout 280 2>"$TMP/server.log" &
SRV=$!
PIDS+=("$SRV")
wait_file "$TMP/ready" 10 || fail "driver never became ready: $(cat "$TMP/server.log")"
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

alive "$SRV" || fail "server driver died: $(cat "$TMP/server.log")"

log "engine as client on $TAPC ($EC) -> python echo server $KC:9000, $CBYTES bytes"
ip tuntap add dev "$TAPC" mode tap
ip addr add "$KC/24" dev "$TAPC"
head -c "$CBYTES" /dev/urandom >"$TMP/send.bin"
timeout 200 "$PY" "$PEER" echo-server "$KC" 9000 "$TMP/server.sha" &
PIDS+=($!)
wait_file "$TMP/server.sha.ready" 10 || fail "python echo server did not start"
# the TAP is persistent: bring it up before the driver attaches
ip link set "$TAPC" up
timeout 200 "$DRV" --backend tap --if "$TAPC" --addr "$EC/24" \
	--connect "$KC:9000" --send-file "$TMP/send.bin" \
	--recv-file "$TMP/recv.bin" --timeout 180 2>"$TMP/client.log" ||
	fail "client driver failed: $(cat "$TMP/client.log")"
wait_file "$TMP/server.sha" 20 || fail "python server did not finish"
sent=$(sha256sum <"$TMP/send.bin" | cut -d' ' -f1)
back=$(sha256sum <"$TMP/recv.bin" | cut -d' ' -f1)
read -r seen n <"$TMP/server.sha"
[ "$n" = "$CBYTES" ] || fail "server received $n of $CBYTES bytes"
[ "$seen" = "$sent" ] || fail "engine -> kernel sha256 mismatch ($seen != $sent)"
[ "$back" = "$sent" ] || fail "kernel -> engine sha256 mismatch ($back != $sent)"
log "client transfer ok: sha256 $sent both ways"

kill -USR1 "$SRV"
sleep 0.3
alive "$SRV" || fail "server driver died: $(cat "$TMP/server.log")"
kill "$SRV"
rc=0
wait "$SRV" || rc=$?
[ "$rc" = 0 ] || fail "server driver exited with $rc: $(cat "$TMP/server.log")"
grep '^stats:' "$TMP/server.log" | tail -1 >&2
log "PASS"
