#!/usr/bin/env bash
# Datagram batches on the afxdp NSM (docs/abi.md §5 "Datagram batches",
# docs/afxdp-nsm.md): a peer sends 150 datagrams of 4..1400 bytes from 3
# ports, and an empty one after every 25th, to a guest UDP socket
# (python3, unmodified) that is not reading; the guest then reads them all
# and checks each one: index (order), length, bytes (CRC-32 pattern),
# source address and port, a short buffer that cuts a datagram (the rest
# is gone, MSG_TRUNC, the next read gets the next datagram), the empty
# ones (recv returns b"": the old engine dropped them), and EAGAIN once
# drained. nkd's counters must show
# that the reads took far fewer RECVs than datagrams (guest ops < 75): the
# old NSM answered a batch RECV with EOPNOTSUPP, so the shim read one
# datagram per RECV (ops >= 150). Counts entries, never times anything.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_afxdp
afxdp_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
CONF
start_nkd_afxdp "$NK_TMP/nkd.conf"
N=150
NE=$((N / 25)) # empty datagrams
GO=$NK_TMP/go
READY=$NK_TMP/ready

rx_py='
import os, socket, sys, time, zlib
n, go, ready, peer = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 7200))
open(ready, "w").close()
for _ in range(600):
    if os.path.exists(go):
        break
    time.sleep(0.05)
s.settimeout(20)
def want(i):
    h = i.to_bytes(4, "big")
    return h + (zlib.crc32(h).to_bytes(4, "big") * 400)[:4 + (i * 97) % 1397 - 4]
ports = set()
for i in range(n):
    w = want(i)
    if i % 10 == 7:
        # A short buffer: the datagram is cut, the rest discarded.
        d, anc, fl, a = s.recvmsg(16)
        if d != w[:16] or bool(fl & socket.MSG_TRUNC) != (len(w) > 16):
            sys.exit("datagram %d: cut read %r flags %#x, want %d bytes" % (i, d[:8], fl, len(w)))
    else:
        d, a = s.recvfrom(4096)
        if len(d) != len(w) or d[:4] != w[:4]:
            sys.exit("datagram %d: %d bytes, index %d (want %d bytes)" % (i, len(d), int.from_bytes(d[:4], "big"), len(w)))
        if d != w:
            sys.exit("datagram %d: wrong bytes" % i)
    if a[0] != peer:
        sys.exit("datagram %d: source %r" % (i, a))
    if a[1] != 7300 + i % 3:
        sys.exit("datagram %d: source port %d, want %d" % (i, a[1], 7300 + i % 3))
    ports.add(a[1])
    if i % 25 == 24:
        d, a = s.recvfrom(4096)
        if d != b"" or a != (peer, 7300 + i % 3):
            sys.exit("after datagram %d: %r from %r, want an empty datagram" % (i, d[:8], a))
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
ss = []
for k in range(3):
    t = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    t.bind(("0.0.0.0", 7300 + k))
    ss.append(t)
for i in range(n):
    h = i.to_bytes(4, "big")
    d = h + (zlib.crc32(h).to_bytes(4, "big") * 400)[:4 + (i * 97) % 1397 - 4]
    ss[i % 3].sendto(d, (host, 7200))
    if i % 25 == 24:
        ss[i % 3].sendto(b"", (host, 7200))
print("sent", n)
'

bg_guest rx "$PY" -c "$rx_py" "$N" "$GO" "$READY" "$P4"
rx=$LASTPID
wait_for 20 test -e "$READY" || fail "guest receiver did not bind"
# P resolves the NSM address first: datagrams sent while its ARP entry is
# incomplete wait in the neighbour queue, which drops the oldest when full
# and can be overtaken by later sends once the reply comes (seen: index 7
# read first). The order checked below is then the sender's.
wait_for 10 run_peer ping -c 1 -W 1 "$X4" >/dev/null || fail "P cannot ping $X4"
before=$(nkctl guests --json | jq '[.guests[] | select(.name == "'"$GUEST"'") | .ops] | add')
run_peer "$PY" -c "$tx_py" "$X4" "$N" >/dev/null || fail "peer sender failed"
# Every datagram is in the NSM's socket queue before the guest reads (the
# XDP counter of the guest counts them), so batches can form; later
# arrivals would only make them smaller.
wait_for 20 sh -c "[ \"\$(timeout 10 '$NKCTL' --socket '$NK_SOCK' guests --json | jq '[.guests[] | select(.name == \"$GUEST\") | .xdp_packets] | add')\" -ge $((N + NE)) ]" ||
	fail "the guest's XDP counter did not reach $((N + NE)) packets"
touch "$GO"
wait "$rx" || fail "guest receiver failed: $(tail -3 "$NK_TMP/rx.log")"
r=$(grep RESULT "$NK_TMP/rx.log") || fail "no RESULT: $(tail -3 "$NK_TMP/rx.log")"
log "guest: $r"
[ "$(field sources "$r")" = 3 ] || fail "sources: want 3"
after=$(nkctl guests --json | jq '[.guests[] | select(.name == "'"$GUEST"'") | .ops] | add')
ops=$((after - before))
log "guest ops while receiving $((N + NE)) datagrams: $ops"
[ "$ops" -lt $((N / 2)) ] || fail "$ops entries for $((N + NE)) datagrams: not batched"
nk_stop "$NK_NKD_PID"
NK_NKD_PID=
s=$(grep "frames in" "$NK_TMP/nkd.log") || fail "nkd logged no NSM counters at exit"
log "${s#*info: }"
case $s in *"batch RECVs 0 "*) fail "the NSM counted no batch RECV" ;; esac
log "ok"
