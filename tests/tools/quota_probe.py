#!/usr/bin/env python3
"""A guest at its socket quota (messages.sh).

Usage: quota_probe.py N TRIES
Opens N sockets (the quota), then tries TRIES more socket() calls, then
binds each held socket (port 0) and a fresh socket() + bind() after
closing one. Prints one RESULT line: opened, the errnos seen on the
refused socket() calls, on bind, and after the close.
"""
import errno
import socket
import sys
import time

n, tries = int(sys.argv[1]), int(sys.argv[2])
held, errs, binds = [], [], []


def name(e):
    return errno.errorcode.get(e.errno, str(e.errno))


for _ in range(n):
    held.append(socket.socket())
t0 = time.monotonic()
for _ in range(tries):
    try:
        held.append(socket.socket())
    except OSError as e:
        errs.append(name(e))
elapsed = time.monotonic() - t0
opened = len(held)
for s in held:
    try:
        s.bind(("127.0.0.1", 0))
        binds.append("ok")
    except OSError as e:
        binds.append(name(e))
# A freed slot is usable again (the close completes asynchronously).
held.pop().close()
after = "none"
for _ in range(100):
    try:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        after = "ok"
        break
    except OSError as e:
        after = name(e)
        time.sleep(0.05)
print("RESULT opened=%d socket_errors=%s refused=%d bind=%s after_close=%s secs=%d" % (
    opened, ",".join(dict.fromkeys(errs)) or "none", len(errs),
    ",".join(dict.fromkeys(binds)) or "none", after, int(elapsed) + 1), flush=True)
