#!/usr/bin/env bash
# Unread data survives fork and exec (docs/abi.md §5 "Unread data",
# docs/shim.md "Receive read-ahead"): what the shim read ahead for a
# process is handed back to nkd before execve and fork, so the next reader
# gets it, in order, as from a kernel socket. Unmodified python3 programs:
#  - exec:  a guest client reads 1 MiB of a 4 MiB stream from the peer in
#           256 KiB recv calls (whole buffers: read-ahead starts), then
#           os.execv's a second python3 that reads the rest with
#           recv(65536) from the inherited fd;
#  - fork:  the same, but the process forks after 1 MiB and only the child
#           reads on;
#  - udp:   20 datagrams wait at a guest UDP socket; the guest receives one
#           (a batch comes, 19 kept), execs, and the new image must receive
#           the other 19, in order, and then find the socket empty.
# sha256 of everything received must equal the sender's. Runs natively
# too (NK_NATIVE=1): the kernel is the oracle. No timing is asserted.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
topo_up
start_nkd
SRC=$NK_TMP/src
make_file "$SRC" 4
want=$(sha_of "$SRC")
# Every part runs; the failures are listed at the end.
bad=

srv_py='
import socket, sys
path, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
data = open(path, "rb").read()
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(4)
for _ in range(n):
    c, _ = ls.accept()
    c.sendall(data)
    c.close()
'
# Stage 1: read at least 1 MiB in 256 KiB calls, then hand over the fd.
first_py='
import os, socket, sys, time
mode, host, port, out, second = sys.argv[1:6]
s = socket.create_connection((host, int(port)))
# Lets the data queue up so the reads fill whole buffers; not a check.
time.sleep(0.5)
got = 0
with open(out, "wb") as f:
    while got < 1 << 20:
        d = s.recv(1 << 18)
        if not d:
            sys.exit("early EOF after %d" % got)
        f.write(d)
        got += len(d)
fd = s.detach()
os.set_inheritable(fd, True)
if mode == "exec":
    os.execv(sys.executable, [sys.executable, "-c", second, str(fd), out])
pid = os.fork()
if pid == 0:
    # Only the child reads on, in this same image.
    exec(second, {"__name__": "child", "ARGV": [str(fd), out]})
    os._exit(0)
_, st = os.waitpid(pid, 0)
os.close(fd)
sys.exit(os.waitstatus_to_exitcode(st))
'
# Stage 2: the rest from the inherited fd, appended to the same file.
second_py='
import array, fcntl, select, socket, sys, termios
argv = ARGV if __name__ == "child" else sys.argv[1:]
fd, out = int(argv[0]), argv[1]
s = socket.socket(fileno=fd)
# What is unread is readable and counted, before any recv.
if not select.select([s], [], [], 0)[0]:
    sys.exit("inherited socket not readable")
q = array.array("i", [0])
fcntl.ioctl(fd, termios.FIONREAD, q, True)
if q[0] <= 0:
    sys.exit("FIONREAD %d" % q[0])
s.settimeout(30)
n = 0
with open(out, "ab") as f:
    while True:
        d = s.recv(65536)
        if not d:
            break
        f.write(d)
        n += len(d)
print("RESULT stage2=%d" % n, flush=True)
'

bg_peer srv "$PY" -c "$srv_py" "$SRC" 7300 2
wait_port "$NS_P" 7300 20
for mode in exec fork; do
	out=$NK_TMP/out.$mode
	if ! r=$(run_guest "$PY" -c "$first_py" "$mode" "$P4" 7300 "$out" "$second_py"); then
		log "$mode: guest failed: $r"
		bad="$bad $mode"
		continue
	fi
	got=$(stat -c %s "$out")
	log "$mode: $r, $got bytes in all"
	if [ "$(sha_of "$out")" != "$want" ]; then
		log "$mode: sha256 differs ($got of $(stat -c %s "$SRC") bytes)"
		bad="$bad $mode"
	fi
done

# Datagrams: 20 queued, one received, the rest after exec.
N=20
GO=$NK_TMP/go
udp1_py='
import os, socket, sys, time
go, second, n = sys.argv[1:4]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("0.0.0.0", 7301))
for _ in range(400):
    if os.path.exists(go):
        break
    time.sleep(0.05)
s.settimeout(10)
d = s.recv(4096)
if int.from_bytes(d[:4], "big") != 0:
    sys.exit("first datagram is not #0")
fd = s.detach()
os.set_inheritable(fd, True)
os.execv(sys.executable, [sys.executable, "-c", second, str(fd), n])
'
udp2_py='
import array, fcntl, socket, sys, termios, zlib
n = int(sys.argv[2])
s = socket.socket(fileno=int(sys.argv[1]))
# FIONREAD on UDP: the length of the next datagram, #1: 57 bytes.
q = array.array("i", [0])
fcntl.ioctl(s.fileno(), termios.FIONREAD, q, True)
if q[0] != 57:
    sys.exit("FIONREAD %d, want 57" % q[0])
s.settimeout(5)
for i in range(1, n):
    d, a = s.recvfrom(4096)
    want = 4 + (i * 53) % 997
    if len(d) != want or int.from_bytes(d[:4], "big") != i:
        sys.exit("datagram %d: %d bytes, index %d" % (i, len(d), int.from_bytes(d[:4], "big")))
    if d[4:] != (zlib.crc32(d[:4]).to_bytes(4, "big") * 250)[:want - 4]:
        sys.exit("datagram %d: wrong bytes" % i)
s.setblocking(False)
try:
    s.recv(10)
    sys.exit("a datagram too many")
except BlockingIOError:
    pass
print("RESULT udp=%d" % (n - 1))
'
tx_py='
import socket, sys, zlib
host, n = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(n):
    h = i.to_bytes(4, "big")
    want = 4 + (i * 53) % 997
    s.sendto(h + (zlib.crc32(h).to_bytes(4, "big") * 250)[:want - 4], (host, 7301))
'
bg_guest udp "$PY" -c "$udp1_py" "$GO" "$udp2_py" "$N"
rx=$LASTPID
wait_port "$NS_H" 7301 20 udp
run_peer "$PY" -c "$tx_py" "$H4" "$N" || fail "peer sender failed"
# Not a timing condition: later arrivals only make the batch smaller.
sleep 0.5
touch "$GO"
if wait "$rx" && r=$(grep RESULT "$NK_TMP/udp.log"); then
	log "udp: $r"
else
	log "udp: guest failed: $(tail -3 "$NK_TMP/udp.log")"
	bad="$bad udp"
fi
[ -z "$bad" ] || fail "unread data lost in:$bad"
log "ok"
