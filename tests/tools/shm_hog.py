#!/usr/bin/env python3
"""Memory pressure on nkd's shm NSM (tests/integration/shm.sh).

  shm_hog.py sink PORT SECS
      listen on 0.0.0.0:PORT with a backlog of 4096, print READY, accept
      nothing and read nothing for SECS seconds (bounded), then exit.
  shm_hog.py hog HOST PORT N HOLD
      open N non-blocking connections to HOST:PORT, send one 128 KiB
      chunk on each with a non-blocking send (what the peer cannot take
      at once nkd must queue or refuse), print
      RESULT conns=C sent=BYTES eagain=E other=O, keep the connections
      HOLD seconds (the test kills it sooner), then exit.
"""
import errno
import os
import select
import socket
import sys
import time

CHUNK = 128 * 1024


def sink(port, secs):
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", port))
    ls.listen(4096)
    print("READY", flush=True)
    time.sleep(secs)
    ls.close()


def hog(host, port, n, hold):
    data = os.urandom(CHUNK)
    socks, sent, eagain, other = [], 0, 0, 0
    for _ in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect((host, port))
        except BlockingIOError:
            pass
        # Connected (shm backlog has room): writable at once; bounded.
        select.select([], [s], [], 5)
        try:
            sent += s.send(data)
        except BlockingIOError:
            eagain += 1
        except OSError as e:
            if e.errno == errno.EAGAIN:
                eagain += 1
            else:
                other += 1
        socks.append(s)
    print("RESULT conns=%d sent=%d eagain=%d other=%d" %
          (len(socks), sent, eagain, other), flush=True)
    time.sleep(hold)
    for s in socks:
        s.close()


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "sink":
        sink(int(sys.argv[2]), float(sys.argv[3]))
    elif len(sys.argv) == 6 and sys.argv[1] == "hog":
        hog(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]),
            float(sys.argv[5]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
