#!/usr/bin/env bash
# Received data pushed to the guest (standing receives, docs/abi.md §5
# "Standing receive"): nginx in a NIC-less guest answers 300 keep-alive
# GETs on one connection from P, every body checked by sha256; nkd must
# have pushed most requests into the worker's buffer before it asked
# (nkctl guests rx_pushed: at least 250 of the 300; an nkd without
# standing receives pushes none). Beside it, a forking echo server (the
# accepted socket goes to the child: no standing receive may take data the
# child waits for) answers 200 round trips of checked data. Counts, not
# times.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd nginx jq
topo_up
start_nkd
d=$NK_TMP/nginx
mkdir -p "$d/www"
head -c 10000 /dev/urandom >"$d/www/blob"
want=$(sha256sum <"$d/www/blob" | cut -d' ' -f1)
nginx_conf "$d" 8080 "$d/www" 1 256 "access_log off;" "keepalive_requests 1000;" "tcp_nodelay on;"
nginx_guest nginx "$d" 8080

cat >"$NK_TMP/forksrv.py" <<'PYEOF'
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)
socketserver.ForkingTCPServer.allow_reuse_address = True
print("ready", flush=True)
socketserver.ForkingTCPServer(("0.0.0.0", 8090), H).serve_forever()
PYEOF
bg_guest forksrv /usr/bin/python3 "$NK_TMP/forksrv.py"
wait_port "$NS_H" 8090 20

pushed() { nkctl guests --json | jq ".guests[] | select(.name == \"$GUEST\") | .rx_pushed"; }
before=$(pushed)
case $before in '' | null) fail "nkctl guests shows no rx_pushed: nkd does not push received data" ;; esac

# 300 GETs on one keep-alive connection; prints how many bodies matched.
got=$(run_peer "$PY" - "$H4" 8080 300 "$want" <<'PYEOF'
import hashlib, socket, sys
host, port, n, want = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")
ok = 0
for _ in range(n):
    s.sendall(b"GET /blob HTTP/1.1\r\nHost: x\r\n\r\n")
    status = f.readline()
    length = 0
    while True:
        h = f.readline()
        if h in (b"\r\n", b""):
            break
        if h.lower().startswith(b"content-length:"):
            length = int(h.split(b":")[1])
    body = f.read(length)
    ok += status.startswith(b"HTTP/1.1 200") and hashlib.sha256(body).hexdigest() == want
print(ok)
PYEOF
)
[ "$got" = 300 ] || fail "$got of 300 keep-alive responses intact"

# The forking server's child reads what the client sends, all of it.
echoed=$(run_peer "$PY" - "$H4" 8090 200 <<'PYEOF'
import hashlib, os, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.create_connection((host, port), timeout=10)
f = s.makefile("rb")
ok = 0
for i in range(n):
    line = os.urandom(1 + i * 7 % 3000).hex().encode() + b"\n"
    s.sendall(line)
    ok += f.readline() == line
print(ok)
PYEOF
)
[ "$echoed" = 200 ] || fail "forking server: $echoed of 200 lines echoed intact"

after=$(pushed)
log "300 keep-alive GETs (sha256 ok), 200 echoes through a forked child; rx_pushed $before -> $after"
[ $((after - before)) -ge 250 ] ||
	fail "only $((after - before)) of 300 requests pushed to the guest (want >= 250): received data is not pushed"
log "ok"
