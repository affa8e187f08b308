#!/usr/bin/env bash
# Guests survive an nkd restart (docs/shim.md "When nkd restarts").
# Unmodified servers in G, started once: python3 -m http.server (poll),
# a python epoll server (select.epoll: TCP + UDP echo) and node's http
# (libuv, epoll), a python http.server whose listener came through exec,
# nginx (master + 2 workers sharing the listener through
# fork). Peers in P fetch files by sha256. Then nkd is stopped (SIGTERM,
# later SIGKILL) and started again on the same socket path, and with the
# same server processes (pids checked):
#  1. every server answers again: files fetched, sha256 matches, the UDP
#     echo answers (the listener/bound socket re-created under the same fd,
#     its epoll registration kept), a guest's connected UDP socket talks
#     to its peer again, and each process is guest g1 at the new nkd;
#  2. a transfer started after the restart completes (checksummed);
#  3. a connection open across the restart ends with a reset or EOF in the
#     guest program (its epoll loop is told), bounded, never a hang;
#  4. restart during load: a bounded loop of fetches runs while nkd is
#     killed and restarted; every request eventually succeeds.
# timeout: 300
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
need_cmd curl sha256sum
nk_use_san_nkd
topo_up
start_nkd

mkdir -p "$NK_TMP/www"
make_file "$NK_TMP/www/blob" 4
make_file "$NK_TMP/www/big" 16
want=$(sha_of "$NK_TMP/www/blob")
wantbig=$(sha_of "$NK_TMP/www/big")

# An epoll server: HTTP/1.0 GET of a file (port 8001), "HOLD" connections
# that it reports the end of, UDP echo (port 9001). Non-blocking accept.
cat >"$NK_TMP/epsrv.py" <<'EOF'
import errno, os, select, socket, sys
root = sys.argv[1]
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", 8001))
ls.listen(64)
ls.setblocking(False)
us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
us.bind(("0.0.0.0", 9001))
us.setblocking(False)
ep = select.epoll()
ep.register(ls.fileno(), select.EPOLLIN)
ep.register(us.fileno(), select.EPOLLIN)
conns = {}
print("ready", flush=True)
while True:
    for fd, ev in ep.poll(5):
        if fd == ls.fileno():
            try:
                c, _ = ls.accept()
            except OSError as e:
                print("accept error", errno.errorcode.get(e.errno), flush=True)
                continue
            c.setblocking(False)
            conns[c.fileno()] = [c, b""]
            ep.register(c.fileno(), select.EPOLLIN)
        elif fd == us.fileno():
            try:
                d, a = us.recvfrom(2048)
                us.sendto(d, a)
            except OSError as e:
                print("udp error", errno.errorcode.get(e.errno), flush=True)
        else:
            c, buf = conns[fd]
            try:
                d = c.recv(65536)
                err = "EOF" if not d else None
            except BlockingIOError:
                continue
            except OSError as e:
                d, err = b"", errno.errorcode.get(e.errno, str(e.errno))
            if err:
                if buf.startswith(b"HOLD"):
                    print("held connection ended:", err, flush=True)
                ep.unregister(fd)
                del conns[fd]
                c.close()
                continue
            buf += d
            conns[fd][1] = buf
            if buf.startswith(b"GET ") and b"\r\n\r\n" in buf:
                name = buf.split()[1].decode().lstrip("/")
                data = open(os.path.join(root, name), "rb").read()
                ep.unregister(fd)
                del conns[fd]
                c.setblocking(True)
                # A reset between the request and the answer (nkd killed
                # with the request already in our stash) ends this
                # connection only, as it would on a kernel socket.
                try:
                    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n"
                              % len(data) + data)
                except OSError as e:
                    print("send error", errno.errorcode.get(e.errno), flush=True)
                finally:
                    c.close()
            elif buf.startswith(b"HOLD"):
                print("holding", flush=True)
EOF
cat >"$NK_TMP/nodesrv.js" <<'EOF'
const http = require('http'), fs = require('fs'), path = require('path');
const root = process.argv[2];
const srv = http.createServer((req, res) => {
  const f = path.join(root, path.basename(req.url));
  fs.stat(f, (err, st) => {
    if (err) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, {'Content-Length': st.size});
    fs.createReadStream(f).pipe(res);
  });
});
srv.on('error', (e) => { console.log('server error', e.code); process.exit(3); });
srv.listen(8002, '0.0.0.0', () => console.log('ready'));
EOF
# UDP echo check from P: one datagram answered, a few tries.
cat >"$NK_TMP/udpc.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
for i in range(20):
    msg = b"ping %d" % i
    s.sendto(msg, (sys.argv[1], 9001))
    try:
        while True:
            d, _ = s.recvfrom(2048)
            if d == msg:
                print("udp echo ok")
                sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
EOF
# A connection to the epoll server held open by P: prints how it ended.
cat >"$NK_TMP/holdc.py" <<'EOF'
import socket, sys
s = socket.create_connection((sys.argv[1], 8001), timeout=10)
s.sendall(b"HOLD\n")
print("held", flush=True)
s.settimeout(120)
try:
    d = s.recv(1)
    print("peer end:", "EOF" if not d else "data", flush=True)
except OSError as e:
    print("peer end:", e, flush=True)
EOF

# A connected UDP socket in G: one datagram to P's echo every 0.1 s.
cat >"$NK_TMP/udpconn.py" <<'EOF'
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect((sys.argv[1], 9100))
s.settimeout(0.2)
n = 0
for i in range(2000):
    time.sleep(0.1)
    try:
        s.send(b"seq %d" % i)
        # An echo later than the timeout answers a later recv: skip the
        # stale ones, or every reply from then on is one step behind.
        while s.recv(2048) != b"seq %d" % i:
            pass
        n += 1
        print("echo ok", n, flush=True)
    except OSError as e:
        print("udp", e, flush=True)
EOF
cat >"$NK_TMP/udpecho.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 9100))
while True:
    d, a = s.recvfrom(2048)
    s.sendto(d, a)
EOF
bg_peer udpecho "$PY" "$NK_TMP/udpecho.py" "$P4"
bg_guest udpconn_g "$PY" "$NK_TMP/udpconn.py" "$P4"
pid_udpconn=$LASTPID

# A listener inherited through exec: the new image never saw its bind.
cat >"$NK_TMP/execsrv.py" <<'EOF'
import functools, http.server, os, socket, sys
if sys.argv[1] == "parent":
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 8004))
    s.listen(16)
    s.set_inheritable(True)
    os.execv(sys.executable, [sys.executable, sys.argv[0], "child",
                              str(s.fileno()), sys.argv[2]])
sock = socket.socket(fileno=int(sys.argv[2]))
h = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[3])
srv = http.server.ThreadingHTTPServer(("0.0.0.0", 8004), h, bind_and_activate=False)
srv.socket.close()
srv.socket = sock
srv.serve_forever()
EOF
bg_guest exec_g "$PY" "$NK_TMP/execsrv.py" parent "$NK_TMP/www"
pid_exec=$LASTPID

bg_guest http_g "$PY" -m http.server -d "$NK_TMP/www" -b 0.0.0.0 8000
pid_http=$LASTPID
bg_guest ep_g "$PY" "$NK_TMP/epsrv.py" "$NK_TMP/www"
pid_ep=$LASTPID
servers="http_g ep_g udpconn_g exec_g"
ports="8000 8001 8004"
if command -v node >/dev/null; then
	bg_guest node_g node "$NK_TMP/nodesrv.js" "$NK_TMP/www"
	pid_node=$LASTPID
	servers="$servers node_g"
	ports="$ports 8002"
else
	log "no node: skipping the node server"
	pid_node=
fi
if command -v nginx >/dev/null; then
	# master + 2 workers: the listener is shared through fork.
	d=$NK_TMP/nginx
	nginx_conf "$d" 8003 "$NK_TMP/www" 2 1024 "access_log off;"
	bg_guest nginx_g nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log"
	pid_nginx=$LASTPID
	ports="$ports 8003"
else
	log "no nginx: skipping the nginx server"
	pid_nginx=
fi
for p in $ports; do wait_port "$NS_H" "$p" 20; done

# fetch PORT FILE OUT: curl from P, bounded; true if the sha256 matches.
fetch() {
	local w=$want
	[ "$2" = big ] && w=$wantbig
	rm -f "$3"
	run_peer curl -sS -f --max-time 30 -o "$3" "http://$H4:$1/$2" 2>>"$NK_TMP/curl.err" &&
		[ "$(sha_of "$3")" = "$w" ]
}
# all_answer WHAT: every server serves blob (retrying while nkd comes
# back), the UDP echo answers, and every server is the process we started.
all_answer() {
	local p ok end
	for p in $ports; do
		ok=
		end=$((SECONDS + 30))
		while [ "$SECONDS" -lt "$end" ]; do
			if fetch "$p" blob "$NK_TMP/got"; then ok=1; break; fi
			sleep 0.5
		done
		[ -n "$ok" ] || fail "$1: server on port $p never answered (sha256 of blob)"
	done
	run_peer timeout 20 "$PY" "$NK_TMP/udpc.py" "$H4" >/dev/null ||
		fail "$1: the UDP echo on port 9001 never answered"
	n=$(grep -c "echo ok" "$NK_TMP/udpconn_g.log" || true)
	wait_for 20 sh -c "[ \$(grep -c 'echo ok' '$NK_TMP/udpconn_g.log') -gt $n ]" ||
		fail "$1: the guest's connected UDP socket gets no echo: $(tail -n 3 "$NK_TMP/udpconn_g.log")"
	if [ -n "$pid_nginx" ]; then
		alive "$pid_nginx" || fail "$1: nginx master died"
		[ "$(pgrep -c -P "$pid_nginx" || true)" -ge 2 ] || fail "$1: nginx lost workers"
	fi
	for p in $pid_http $pid_ep $pid_node $pid_udpconn $pid_exec; do
		alive "$p" || fail "$1: guest program $p died"
		grep -q "guest g1 conn [0-9]* attached: pid $p " "$NK_TMP/nkd.log" ||
			fail "$1: process $p is not guest g1 at this nkd"
	done
	log "$1: ports $ports and UDP 9001 answer, same processes"
}
# restart_nkd SIGNAL: stop nkd with SIGNAL, wait for it, start another on
# the same socket path, wait until every server process reattached.
restart_nkd() {
	local old=$NK_NKD_PID s before=() t=30
	for s in $servers; do
		before+=("$(grep -c "reattached to nkd" "$NK_TMP/$s.log" || true)")
	done
	kill "-$1" "$old"
	wait_for 10 sh -c "! kill -0 $old 2>/dev/null" || fail "nkd ignored SIG$1"
	wait "$old" 2>/dev/null || true
	! grep -E "ERROR: AddressSanitizer|runtime error" "$NK_TMP/nkd.log" >&2 ||
		fail "the ASan nkd reported an error"
	mv "$NK_TMP/nkd.log" "$NK_TMP/nkd-$old.log.old"
	rm -f "$NK_SOCK"
	sleep 0.5
	start_nkd
	for s in $servers; do
		# Not fatal here: whether the servers answer is the check.
		if wait_for "$t" sh -c "[ \$(grep -c 'reattached to nkd' '$NK_TMP/$s.log') -gt ${before[0]} ]"; then
			grep "reattached to nkd" "$NK_TMP/$s.log" | tail -n 1 >&2
		else
			log "SIG$1: $s did not reattach: $(tail -n 2 "$NK_TMP/$s.log")"
			t=1
		fi
		before=("${before[@]:1}")
	done
}

log "1. before any restart"
all_answer "start"

log "2. SIGTERM: servers come back; a connection held across it ends"
bg_peer holdc "$PY" "$NK_TMP/holdc.py" "$H4"
wait_for 10 grep -q holding "$NK_TMP/ep_g.log" || fail "epoll server never saw the held connection"
restart_nkd TERM
wait_for 20 grep -q "held connection ended" "$NK_TMP/ep_g.log" ||
	fail "the connection held across the restart never ended in the guest (hang)"
log "guest saw: $(grep 'held connection ended' "$NK_TMP/ep_g.log")"
wait_for 20 grep -q "peer end" "$NK_TMP/holdc.log" || fail "peer of the held connection hangs"
all_answer "after SIGTERM"
for p in $ports; do
	fetch "$p" big "$NK_TMP/gotbig" || fail "16 MiB transfer from port $p after the restart failed"
done
log "16 MiB transfers after the restart: sha256 ok"

log "3. SIGKILL"
restart_nkd KILL
all_answer "after SIGKILL"

log "4. restart during load"
cat >"$NK_TMP/load.sh" <<EOF
ok=0
for i in \$(seq 30); do
	for t in \$(seq 100); do
		if curl -sS -f --max-time 10 -o "$NK_TMP/load.out" "http://$H4:\$((8000 + i % 2))/blob" 2>/dev/null &&
			[ "\$(sha256sum <"$NK_TMP/load.out" | cut -d' ' -f1)" = "$want" ]; then
			ok=\$((ok + 1)); break
		fi
		sleep 0.2
	done
	echo "request \$i tries \$t ok \$ok"
done
echo "DONE ok=\$ok"
EOF
bg_peer load sh "$NK_TMP/load.sh"
lpid=$LASTPID
wait_for 30 grep -q "request 5 " "$NK_TMP/load.log" || fail "load loop did not start"
restart_nkd KILL
wait_for 120 grep -q DONE "$NK_TMP/load.log" || fail "load loop did not finish"
grep -q "DONE ok=30" "$NK_TMP/load.log" || fail "some requests never succeeded: $(tail -n 3 "$NK_TMP/load.log")"
log "load: $(grep -c . "$NK_TMP/load.log") lines, $(tail -n 1 "$NK_TMP/load.log"), retries: $(awk '$4 > 1' "$NK_TMP/load.log" | wc -l) requests"
wait "$lpid" 2>/dev/null || true
all_answer "after the restart under load"

log "5. the reattach gives up when nkd stays away (NK_REATTACH_S=2)"
cat >"$NK_TMP/giveup.py" <<'EOF'
import socket, sys, time
s = socket.socket()
s.bind(("0.0.0.0", 8009))
s.listen(4)
print("ready", flush=True)
sys.stdin.read()
EOF
NK_REATTACH_S=2 bg_guest giveup_g sh -c "sleep 120 | $PY $NK_TMP/giveup.py"
wait_for 20 grep -q ready "$NK_TMP/giveup_g.log" || fail "giveup guest did not start"
# The monitor thread sleeps in poll while nkd is up.
for t in /proc/"$pid_ep"/task/*; do
	[ "$(cat "$t/comm")" = nk-restart ] && log "epoll server's monitor thread: $(cat "$t/wchan"), $(awk '{print $14 + $15}' "$t/stat") CPU ticks"
done
kill -KILL "$NK_NKD_PID"
wait "$NK_NKD_PID" 2>/dev/null || true
wait_for 20 grep -q "gave up reattaching to nkd at $NK_SOCK after 2 s" "$NK_TMP/giveup_g.log" ||
	fail "no give-up line: $(tail -n 3 "$NK_TMP/giveup_g.log")"
log "$(grep "gave up" "$NK_TMP/giveup_g.log")"
log "ok"
