#!/usr/bin/env bash
# A NIC-less guest on the afxdp NSM (userspace TCP/IP on AF_XDP, flows
# steered by nk_steer) next to the kernel on the same veth (the hybrid):
# curl in the guest fetches from python http.server in P, P's curl fetches
# from a guest http.server, UDP echo both ways, a server in H on H's kernel
# address stays reachable from P, iperf3 runs with the guest as the client
# in both directions and as the server, SO_RCVTIMEO gives EAGAIN, and
# nkctl shows the XDP counters.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_cmd curl nsenter bpftool jq
need_nk "$NK_LOADER"
afxdp_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
CONF
start_nkd_afxdp "$NK_TMP/nkd.conf"
nkctl nsms >&2

mkdir -p "$NK_TMP/www"
make_file "$NK_TMP/www/blob" 8
want=$(sha_of "$NK_TMP/www/blob")

log "guest curl -> http.server in P"
bg_peer web_p "$PY" -m http.server --bind "$P4" --directory "$NK_TMP/www" 8080
wait_port "$NS_P" 8080
run_guest curl -sS --max-time 30 -o "$NK_TMP/got1" "http://$P4:8080/blob" ||
	fail "guest curl failed"
[ "$(sha_of "$NK_TMP/got1")" = "$want" ] || fail "guest fetched wrong bytes"

log "P curl -> guest http.server"
bg_guest web_g "$PY" -m http.server --bind 0.0.0.0 --directory "$NK_TMP/www" 8081
wait_for 20 run_peer curl -s -o /dev/null --max-time 2 "http://$X4:8081/" ||
	fail "guest server not reachable at $X4:8081"
run_peer curl -sS --max-time 30 -o "$NK_TMP/got2" "http://$X4:8081/blob" ||
	fail "peer curl from guest failed"
[ "$(sha_of "$NK_TMP/got2")" = "$want" ] || fail "peer fetched wrong bytes"

log "hybrid: H's kernel still serves $H4:8081 (same port as the guest)"
bg_group web_h ip netns exec "$NS_H" "$PY" -m http.server --bind "$H4" --directory "$NK_TMP/www" 8081
wait_port "$NS_H" 8081
run_peer curl -sS --max-time 30 -o "$NK_TMP/got3" "http://$H4:8081/blob" ||
	fail "kernel server in H unreachable from P"
[ "$(sha_of "$NK_TMP/got3")" = "$want" ] || fail "kernel server: wrong bytes"

# nk_steer leaves IP fragments to the kernel (docs/steering.md), so the
# datagrams here fit one frame: up to 1472 bytes of payload.
bg_peer udp_p "$PY" "$HELPERS/nkpy.py" udp-echo-server "$P4" 7100 100
wait_port "$NS_P" 7100 10 udp
r=$(run_guest "$PY" "$HELPERS/nkpy.py" udp-client "$P4" 7100 100 1 1472) || fail "guest UDP client failed"
log "$r"
bg_guest udp_g "$PY" "$HELPERS/nkpy.py" udp-echo-server 0.0.0.0 7101 100
sleep 1
r=$(run_peer "$PY" "$HELPERS/nkpy.py" udp-client "$X4" 7101 100 2 1472) || fail "peer UDP client failed"
log "$r"

# SO_RCVTIMEO on the userspace stack: the engine keeps the deadline and
# cancels the NSM's op (core/optimer.c); the guest sees EAGAIN on a UDP
# recv, an accept and a TCP recv that get nothing. No timing is asserted:
# without the timeout the calls hang and run_guest's timeout fails it.
r=$(run_guest "$PY" - "$P4" 8080 <<'PYEOF'
import socket, struct, sys
tv = struct.pack("ll", 0, 300000)
def times_out(what, s, fn):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)
    try:
        fn()
    except BlockingIOError:
        return
    sys.exit(f"{what} with SO_RCVTIMEO returned instead of EAGAIN")
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 7300))
times_out("UDP recv", u, lambda: u.recv(100))
l = socket.socket()
l.bind(("0.0.0.0", 7301))
l.listen()
times_out("accept", l, l.accept)
c = socket.create_connection((sys.argv[1], int(sys.argv[2])))
times_out("TCP recv", c, lambda: c.recv(100))
c.sendall(b"GET / HTTP/1.0\r\n\r\n")
if not c.recv(100).startswith(b"HTTP/"):
    sys.exit("no answer after the timeout")
print("RESULT mode=rcvtimeo ok")
PYEOF
) || fail "SO_RCVTIMEO on the afxdp NSM failed"
log "$r"

# End of stream reaches an event loop: the guest's asyncio echo server
# (epoll) must see the peer's FIN after the data, echo it all and close.
bg_guest echo_g "$PY" "$HELPERS/nkpy.py" echo-server 0.0.0.0 7200
wait_for 20 nk_guest_listening 7200 || fail "guest echo server not listening"
r=$(run_peer "$PY" - "$X4" 7200 <<'PYEOF'
import os, socket, sys
data = os.urandom(6000)
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
except socket.timeout:
    sys.exit(f"no EOF from the guest after {len(got)} of {len(data)} bytes")
if got != data:
    sys.exit(f"echo differs: {len(got)} of {len(data)} bytes")
print(f"RESULT mode=echo-eof bytes={len(got)}")
PYEOF
) || fail "echo with half-close failed"
log "$r"

# iperf3 both directions on the userspace stack, the guest as the client.
need_cmd iperf3
iperf_check() { # NAME JSONFILE
	local err bytes
	err=$(jq -r '.error // empty' "$2")
	[ -z "$err" ] || fail "iperf3 ($1): $err"
	bytes=$(jq -r '.end.sum_received.bytes' "$2")
	[ "${bytes:-0}" -gt 0 ] || fail "iperf3 ($1) moved no data"
	log "iperf3 $1: $bytes bytes, $(jq -r '.end.sum_received.bits_per_second / 1e9 | . * 100 | floor / 100' "$2") Gbit/s"
}
for dir in send recv; do
	port=$((5301 + ${#dir}))
	bg_peer "iperf_s_$dir" iperf3 -s -1 -B "$P4" -p "$port"
	wait_port "$NS_P" "$port"
	extra=()
	[ "$dir" = recv ] && extra=(-R)
	run_guest iperf3 -c "$P4" -p "$port" -t 2 -J "${extra[@]}" >"$NK_TMP/iperf_$dir.json" ||
		{ cat "$NK_TMP/iperf_$dir.json" >&2; fail "guest iperf3 client ($dir) failed"; }
	iperf_check "guest client $dir" "$NK_TMP/iperf_$dir.json"
done
# The guest as the iperf3 server: a second accept on the listener (the data
# connection) while the control connection is open.
bg_guest iperf_g iperf3 -s -1 -p 5310
wait_for 20 nk_guest_listening 5310 || fail "guest iperf3 server not listening"
run_peer iperf3 -c "$X4" -p 5310 -t 2 -J >"$NK_TMP/iperf_srv.json" ||
	{ cat "$NK_TMP/iperf_srv.json" >&2; fail "peer iperf3 client to the guest failed"; }
iperf_check "guest server" "$NK_TMP/iperf_srv.json"

nkctl guests >&2
j=$(nkctl guests --json)
pk=$(printf '%s' "$j" | jq ".guests[] | select(.name == \"$GUEST\") | .xdp_packets")
[ "${pk:-0}" -gt 0 ] || fail "no XDP packets counted for $GUEST"
nkctl stats | grep -q '^netkernel_guest_xdp_bytes_total{guest="'"$GUEST"'"' ||
	fail "no XDP bytes in the Prometheus text"
log "ok"
