#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Stream socket end states, printed as RESULT lines, for the shm test
(tests/integration/shm.sh): run natively, then as two guests of nkd, and
compared. Ordinary sockets code; orderings come from the connection
itself (a peer waits for data or EOF), never from sleeping alone.

  shm_sem.py server PORT SCEN     (one connection, then exits)
  shm_sem.py client HOST PORT SCEN
SCEN: halfclose | reset | linger0 | peerclose | backlog
"""
import errno
import select
import socket
import struct
import sys
import time

P = {select.POLLIN: "IN", select.POLLOUT: "OUT", select.POLLERR: "ERR",
     select.POLLHUP: "HUP", select.POLLRDHUP: "RDHUP"}


def pollstr(s):
    p = select.poll()
    p.register(s, select.POLLIN | select.POLLOUT | select.POLLRDHUP)
    ev = p.poll(2000)
    m = ev[0][1] if ev else 0
    return "|".join(n for b, n in sorted(P.items()) if m & b) or "-"


def err(f):
    try:
        r = f()
        return "ok" if r is None else ("eof" if r == b"" else repr(r)
                                        if isinstance(r, bytes) else str(r))
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))


def recv_all(c):
    out = b""
    while True:
        d = c.recv(65536)
        if not d:
            return out
        out += d


def wait_readable(c):
    select.select([c], [], [], 30)


def server(port, scen):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(1 if scen == "backlog" else 8)
    print("READY", flush=True)
    if scen == "backlog":
        # Accepts nothing while the client counts, then drains.
        time.sleep(2)
        ls.settimeout(1)
        n = 0
        try:
            while n < 5:
                ls.accept()[0].close()
                n += 1
        except OSError:
            pass
        print("RESULT role=server scen=backlog", flush=True)
        return
    c, _ = ls.accept()
    r = {}
    if scen == "halfclose":
        r["got"] = recv_all(c).decode()
        r["poll_eof"] = pollstr(c)
        c.sendall(b"world")
        c.close()
    elif scen == "reset":
        wait_readable(c)
        time.sleep(0.2)  # all 100 bytes in: close with unread data
        c.close()
    elif scen == "linger0":
        r["recv"] = err(lambda: c.recv(10))
        r["recv2"] = err(lambda: c.recv(10))
    elif scen == "peerclose":
        c.sendall(b"bye")
        r["wait"] = err(lambda: c.recv(10))  # client's FIN
        c.close()
    print("RESULT role=server scen=%s %s" % (
        scen, " ".join("%s=%s" % kv for kv in sorted(r.items()))), flush=True)


def client(host, port, scen):
    r = {}
    if scen == "backlog":
        socks = []
        for i in range(5):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            e = s.connect_ex((host, port))
            socks.append(s)
        # Connected ones are writable at once; the rest wait for room.
        _, w, _ = select.select([], socks, [], 0.5)
        r["connected"] = sum(1 for s in w
                             if s.getsockopt(socket.SOL_SOCKET,
                                             socket.SO_ERROR) == 0)
        for s in socks:
            s.close()
        print("RESULT role=client scen=backlog connected=%d" % r["connected"],
              flush=True)
        return
    c = socket.create_connection((host, port), timeout=30)
    if scen == "halfclose":
        c.sendall(b"hello")
        c.shutdown(socket.SHUT_WR)
        r["send_after_shut"] = err(lambda: c.send(b"x"))
        r["got"] = recv_all(c).decode()
        r["poll_end"] = pollstr(c)
    elif scen == "reset":
        c.sendall(b"z" * 100)
        r["recv"] = err(lambda: c.recv(10))
        r["recv2"] = err(lambda: c.recv(10))
        # (A send now: EPIPE natively, but the shim's sends are
        # asynchronous with any NSM; docs/shm-nsm.md.)
    elif scen == "linger0":
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                     struct.pack("ii", 1, 0))
        c.close()
    elif scen == "peerclose":
        r["got"] = c.recv(10).decode()
        c.shutdown(socket.SHUT_WR)
        r["eof"] = err(lambda: c.recv(10))
        r["poll_end"] = pollstr(c)
    print("RESULT role=client scen=%s %s" % (
        scen, " ".join("%s=%s" % kv for kv in sorted(r.items()))), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]), sys.argv[3])
    else:
        client(sys.argv[2], int(sys.argv[3]), sys.argv[4])
