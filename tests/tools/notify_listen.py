#!/usr/bin/python3
# A stand-in for systemd's notify socket (sd_notify(3)): binds an AF_UNIX
# datagram socket at PATH (a leading '@' means the abstract namespace, as
# in NOTIFY_SOCKET) and appends every message to OUT, one line per field
# ("READY=1", "STATUS=..."), flushed at once, with "--" after each message.
# Exits after SECONDS.
import socket
import sys
import time

path, out, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + path[1:] if path.startswith("@") else path)
deadline = time.monotonic() + seconds
with open(out, "a", buffering=1) as f:
    f.write("LISTENING\n")
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            msg = s.recv(4096)
        except socket.timeout:
            break
        for field in msg.decode(errors="replace").split("\n"):
            if field:
                f.write(field + "\n")
        f.write("--\n")
