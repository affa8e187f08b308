#!/usr/bin/env bash
# Datagram batches (docs/abi.md §5 "Datagram batches"): a peer sends 120
# datagrams of 4..1000 bytes to a guest's UDP socket while the guest does
# not read; the guest (python3, unmodified) then reads them all with
# recvfrom and checks every one (index, length, bytes, source port). Then
# nkd's counters must show that the reads took far fewer RECVs than
# datagrams (ops of the guest < 60): one RECV per datagram is the old
# behaviour. Counts entries, never times anything.
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd jq
topo_up
start_nkd
N=120
GO=$NK_TMP/go

rx_py='
import os, socket, sys, time, zlib
n, go = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("0.0.0.0", 7200))
for _ in range(400):
    if os.path.exists(go):
        break
    time.sleep(0.05)
s.settimeout(10)
ports = set()
for i in range(n):
    d, a = s.recvfrom(4096)
    want = 4 + (i * 53) % 997
    if len(d) != want or int.from_bytes(d[:4], "big") != i:
        sys.exit("datagram %d: %d bytes, index %d" % (i, len(d), int.from_bytes(d[:4], "big")))
    if d[4:] != (zlib.crc32(d[:4]).to_bytes(4, "big") * 250)[:want - 4]:
        sys.exit("datagram %d: wrong bytes" % i)
    ports.add(a[1])
s.setblocking(False)
try:
    s.recv(10)
    sys.exit("a datagram too many")
except BlockingIOError:
    pass
print("RESULT got=%d sources=%d" % (n, len(ports)))
'
tx_py='
import socket, sys, zlib
host, n = sys.argv[1], int(sys.argv[2])
ss = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
for i in range(n):
    h = i.to_bytes(4, "big")
    want = 4 + (i * 53) % 997
    d = h + (zlib.crc32(h).to_bytes(4, "big") * 250)[:want - 4]
    ss[i % 3].sendto(d, (host, 7200))
print("sent", n)
'

bg_guest rx "$PY" -c "$rx_py" "$N" "$GO"
rx=$LASTPID
wait_port "$NS_H" 7200 20 udp
before=$(nkctl guests --json | jq '[.guests[] | select(.name == "'"$GUEST"'") | .ops] | add')
run_peer "$PY" -c "$tx_py" "$H4" "$N" >/dev/null || fail "peer sender failed"
# Not a timing condition: later arrivals only make the batches smaller.
sleep 0.5
touch "$GO"
wait "$rx" || fail "guest receiver failed: $(tail -3 "$NK_TMP/rx.log")"
r=$(grep RESULT "$NK_TMP/rx.log") || fail "no RESULT: $(tail -3 "$NK_TMP/rx.log")"
log "guest: $r"
[ "$(field sources "$r")" = 3 ] || fail "sources: want 3"
after=$(nkctl guests --json | jq '[.guests[] | select(.name == "'"$GUEST"'") | .ops] | add')
ops=$((after - before))
log "guest ops while receiving $N datagrams: $ops"
[ "$ops" -lt $((N / 2)) ] || fail "$ops entries for $N datagrams: not batched"
log "ok"
