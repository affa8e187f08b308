#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A checksummed TCP transfer that measures its steady rate (rate_cap.sh).

  nkrate.py send listen|connect HOST PORT BYTES   deterministic bytes, FIN
  nkrate.py recv listen|connect HOST PORT [SKIP]  reads to EOF

Both print one line:
  RESULT role=R bytes=N sha256=HEX secs=S mbps=M win_mbps=W win_secs=T

win_mbps is the receiver's rate over the transfer without its first SKIP
seconds (default 1.0: slow start and the first burst of a token bucket)
and without its last 0.2 s (the drain): the rate a cap holds, measured
where the bytes arrive, from many samples over seconds.
"""
import bisect
import hashlib
import random
import socket
import sys
import time


def sock(mode, host, port):
    if mode == "listen":
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, port))
        ls.listen(1)
        s, _ = ls.accept()
        ls.close()
        return s
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(None)
    return s


def send(s, n):
    r = random.Random(4242)
    h = hashlib.sha256()
    left = n
    t0 = time.monotonic()
    while left:
        b = r.randbytes(min(left, 1 << 16))
        h.update(b)
        s.sendall(b)
        left -= len(b)
    s.shutdown(socket.SHUT_WR)
    while s.recv(1 << 16):
        pass
    secs = time.monotonic() - t0
    print(f"RESULT role=send bytes={n} sha256={h.hexdigest()} "
          f"secs={secs:.3f} mbps={n * 8 / secs / 1e6:.3f}", flush=True)


def recv(s, skip):
    h = hashlib.sha256()
    ts, cum = [], []
    n = 0
    while True:
        b = s.recv(1 << 16)
        if not b:
            break
        now = time.monotonic()
        n += len(b)
        h.update(b)
        ts.append(now)
        cum.append(n)
    s.close()
    if not ts:
        print("RESULT role=recv bytes=0 sha256=- secs=0 mbps=0 win_mbps=0 "
              "win_secs=0", flush=True)
        return
    secs = ts[-1] - ts[0]
    a = ts[0] + skip
    z = ts[-1] - 0.2
    win, wsecs = 0.0, 0.0
    if z > a:
        i = bisect.bisect_left(ts, a)
        j = bisect.bisect_right(ts, z) - 1
        if j > i:
            wsecs = ts[j] - ts[i]
            win = (cum[j] - cum[i]) * 8 / wsecs / 1e6
    print(f"RESULT role=recv bytes={n} sha256={h.hexdigest()} "
          f"secs={secs:.3f} mbps={n * 8 / max(secs, 1e-9) / 1e6:.3f} "
          f"win_mbps={win:.3f} win_secs={wsecs:.3f}", flush=True)


def main():
    role, mode, host, port = sys.argv[1:5]
    if role == "send":
        send(sock(mode, host, int(port)), int(sys.argv[5]))
    else:
        recv(sock(mode, host, int(port)),
             float(sys.argv[5]) if len(sys.argv) > 5 else 1.0)


main()
