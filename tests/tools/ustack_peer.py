#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Kernel-side peer for the ustack integration tests (tests/integration/ustack_*.sh).

  ustack_peer.py tcp-echo HOST PORT BYTES      send BYTES random bytes to a TCP echo
                                               server, read them back, compare SHA-256
  ustack_peer.py udp-echo HOST PORT COUNT      COUNT datagram round trips, sizes 1..3000
  ustack_peer.py echo-server HOST PORT OUT     accept one connection, echo it, write
                                               the SHA-256 of what came in to OUT
  ustack_peer.py ping HOST COUNT               ICMP echo over a raw socket (when the
                                               ping binary is missing)

Exit 0 on success, 1 on failure (with a reason on stderr). Every wait is bounded.
"""
import hashlib
import os
import socket
import struct
import sys
import threading
import time

from nkpkt import csum


def fail(msg):
    print("ustack_peer: FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def tcp_echo(host, port, total):
    s = socket.create_connection((host, port), timeout=20)
    s.settimeout(30)
    tx_hash = hashlib.sha256()
    rx_hash = hashlib.sha256()
    err = []
    chunk = os.urandom(1 << 20)

    def sender():
        try:
            left = total
            i = 0
            while left:
                # vary the data: rotate the random block by i
                block = chunk[i % 4096:] + chunk[:i % 4096]
                n = min(left, len(block))
                s.sendall(block[:n])
                tx_hash.update(block[:n])
                left -= n
                i += 1237
            s.shutdown(socket.SHUT_WR)
        except Exception as e:  # noqa: BLE001
            err.append(e)

    t = threading.Thread(target=sender)
    t0 = time.time()
    t.start()
    got = 0
    while True:
        d = s.recv(1 << 20)
        if not d:
            break
        rx_hash.update(d)
        got += len(d)
    t.join(60)
    dt = time.time() - t0
    s.close()
    if err:
        fail("sender: %r" % err[0])
    if got != total:
        fail("echoed %d of %d bytes" % (got, total))
    if tx_hash.digest() != rx_hash.digest():
        fail("sha256 mismatch: sent %s got %s" % (tx_hash.hexdigest(), rx_hash.hexdigest()))
    print("tcp-echo: %d bytes, sha256 %s, %.1f MB/s both ways" %
          (total, rx_hash.hexdigest(), total / dt / 1e6))


def udp_echo(host, port, count):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(1.0)
    sizes = [1, 64, 512, 1400, 1472, 2000, 3000]
    ok = 0
    for i in range(count):
        size = sizes[i % len(sizes)]
        msg = struct.pack("!I", i) + os.urandom(size - 4) if size >= 4 else b"x" * size
        for _attempt in range(3):
            u.sendto(msg, (host, port))
            try:
                while True:
                    d, src = u.recvfrom(65536)
                    if d == msg:
                        break
            except socket.timeout:
                continue
            if src != (host, port):
                fail("reply from %r" % (src,))
            ok += 1
            break
    if ok != count:
        fail("udp-echo: %d of %d round trips" % (ok, count))
    print("udp-echo: %d round trips, sizes %s" % (ok, sizes))


def echo_server(host, port, out):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(1)
    ls.settimeout(30)
    with open(out + ".tmp", "w") as f:
        f.write("listening\n")
    os.rename(out + ".tmp", out + ".ready")
    c, _ = ls.accept()
    c.settimeout(30)
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        h.update(d)
        n += len(d)
        c.sendall(d)
    c.shutdown(socket.SHUT_WR)
    c.close()
    with open(out, "w") as f:
        f.write("%s %d\n" % (h.hexdigest(), n))


def ping(host, count):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    s.settimeout(2)
    ident = os.getpid() & 0xFFFF
    ok = 0
    for seq in range(1, count + 1):
        payload = os.urandom(56)
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload
        t0 = time.time()
        s.sendto(pkt, (host, 0))
        try:
            while True:
                d, _ = s.recvfrom(2048)
                ihl = (d[0] & 0xF) * 4
                t, _c, _k, i, q = struct.unpack("!BBHHH", d[ihl:ihl + 8])
                if t == 0 and i == ident and q == seq and d[ihl + 8:] == payload:
                    if csum(d[ihl:]) != 0:
                        fail("echo reply with a bad checksum")
                    print("reply from %s: icmp_seq=%d time=%.2f ms" % (host, seq, (time.time() - t0) * 1e3))
                    ok += 1
                    break
        except socket.timeout:
            pass
    if ok != count:
        fail("ping: %d of %d replies" % (ok, count))


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    cmd, a = sys.argv[1], sys.argv[2:]
    if cmd == "tcp-echo":
        tcp_echo(a[0], int(a[1]), int(a[2]))
    elif cmd == "udp-echo":
        udp_echo(a[0], int(a[1]), int(a[2]))
    elif cmd == "echo-server":
        echo_server(a[0], int(a[1]), a[2])
    elif cmd == "ping":
        ping(a[0], int(a[1]))
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
