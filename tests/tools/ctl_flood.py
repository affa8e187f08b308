#!/usr/bin/env python3
"""Control-connection flood (tests/integration/tenancy_ctl_flood.sh).

  ctl_flood.py SOCKET COUNT HOLD_S READY_FILE

Opens up to COUNT idle AF_UNIX SOCK_SEQPACKET connections to nkd's control
socket (never sending HELLO), writes "opened N" to READY_FILE, then checks
every second for HOLD_S seconds how many nkd has closed (EOF or reset).
Prints one line per check and a final RESULT line:
  RESULT opened=N closed_at_1s=A closed_end=B
Bounded: COUNT connections, HOLD_S seconds.
"""
import os
import resource
import socket
import struct
import sys
import time


def closed(s):
    try:
        # nkd may say why first (an early refusal, docs/abi.md section 1),
        # then closes: read past it to the end.
        while True:
            if s.recv(4096, socket.MSG_DONTWAIT) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def main():
    path, count, hold, ready = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, count + 64)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    socks = []
    t0 = time.monotonic()
    for _ in range(count):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Blocking connect waits for room in nkd's backlog, at most 5 s.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 5, 0))
        try:
            s.connect(path)
        except OSError as e:
            print(f"connect {len(socks)}: {e}", flush=True)
            s.close()
            break
        socks.append(s)
    print(f"opened {len(socks)} in {time.monotonic() - t0:.1f}s", flush=True)
    with open(ready + ".tmp", "w") as f:
        f.write(f"opened {len(socks)}\n")
    os.rename(ready + ".tmp", ready)
    first = None
    n = 0
    for sec in range(1, hold + 1):
        time.sleep(1)
        n = sum(1 for s in socks if closed(s))
        if first is None:
            first = n
        print(f"t={sec}s closed={n}", flush=True)
        if n == len(socks):
            break
    print(f"RESULT opened={len(socks)} closed_at_1s={first} closed_end={n}", flush=True)


if __name__ == "__main__":
    main()
