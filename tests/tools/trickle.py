#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A reader slower than any path (tests/integration/slow_peer.sh).

  trickle.py HOST PORT SECS CHUNK INTERVAL
      accept one connection on HOST:PORT, read at most CHUNK bytes every
      INTERVAL seconds for SECS seconds, print RESULT bytes=N, close.
"""
import socket
import sys
import time


def main():
    if len(sys.argv) != 6:
        sys.exit(__doc__)
    host, port = sys.argv[1], int(sys.argv[2])
    secs, chunk, interval = (float(sys.argv[3]), int(sys.argv[4]),
                             float(sys.argv[5]))
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(1)
    ls.settimeout(30)
    s, _ = ls.accept()
    ls.close()
    s.settimeout(interval)
    got, end = 0, time.monotonic() + secs
    while time.monotonic() < end:
        try:
            b = s.recv(chunk)
        except socket.timeout:
            b = None
        if b == b"":
            break
        got += len(b or b"")
        time.sleep(interval)
    print("RESULT bytes=%d" % got, flush=True)
    s.close()


if __name__ == "__main__":
    main()
