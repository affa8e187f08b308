#!/usr/bin/env bash
# Short connections on the afxdp NSM: the guest's server closes first, so
# lwIP holds each connection in TIME_WAIT (120 s); a client reusing its
# port soon must still get in (RFC 1122 4.2.2.13, as Linux does): before,
# lwIP answered the new SYN with an ACK of the old connection, the peer
# reset it, and the SYN retransmitted until the TIME_WAIT was over (seconds
# of stall per reused port: nginx close ran 4-5x slower than the kernel
# NSM). Then 300 connections from ephemeral ports, each with the right
# bytes (TIME_WAIT capped at tw_max, lingering flows in a hash).
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_cmd curl nsenter bpftool jq
need_nk "$NK_LOADER"
afxdp_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
CONF
start_nkd_afxdp "$NK_TMP/nkd.conf"

mkdir -p "$NK_TMP/www"
make_file "$NK_TMP/www/blob" 1
want=$(sha_of "$NK_TMP/www/blob")
# http.server speaks HTTP/1.0: it closes first, after every response.
bg_guest web_g "$PY" -m http.server --bind 0.0.0.0 --directory "$NK_TMP/www" 8081
wait_for 20 run_peer curl -s -o /dev/null --max-time 2 "http://$X4:8081/" ||
	fail "guest server not reachable at $X4:8081"

log "the same client port 5 times in a row"
# The client reads to EOF before it closes, so the server (which closes
# after every response) is the one in TIME_WAIT; SO_REUSEADDR in case.
cat >"$NK_TMP/sameport.py" <<'PYEOF'
import hashlib, socket, sys, time
host, port, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(1, 6):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 45123))
    s.settimeout(3)
    try:
        s.connect((host, port))
        s.sendall(b"GET /blob HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except OSError as e:
        sys.exit(f"connection {i} from port 45123 failed: {e!r}")
    s.close()
    body = data.split(b"\r\n\r\n", 1)[1]
    if hashlib.sha256(body).hexdigest() != want:
        sys.exit(f"connection {i}: wrong bytes")
    time.sleep(0.3)
print("5 connections from port 45123")
PYEOF
r=$(run_peer "$PY" "$NK_TMP/sameport.py" "$X4" 8081 "$want" 2>&1) ||
	fail "$r (a SYN for a 4-tuple in lwIP's TIME_WAIT)"
log "$r"

log "300 short connections"
urls=()
for _ in $(seq 100); do urls+=("http://$X4:8081/blob"); done
for round in 1 2 3; do
	rm -rf "$NK_TMP/many"
	mkdir -p "$NK_TMP/many"
	(cd "$NK_TMP/many" && run_peer curl -sS --max-time 60 --remote-name-all "${urls[@]}") ||
		fail "round $round of 100 connections failed"
	[ "$(sha_of "$NK_TMP/many/blob")" = "$want" ] || fail "round $round: wrong bytes"
done
nkd_alive || fail "nkd died"
log "ok"
