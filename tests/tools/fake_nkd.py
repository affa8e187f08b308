#!/usr/bin/env python3
"""A stand-in nkd control socket for nkctl's reader (nkctl_json.sh).

Usage: fake_nkd.py SOCKET ANSWER-FILE
Answers every NK_CTL_QUERY with the file's text (in 1000-byte chunks, so
nkctl must join them) until killed. Speaks only the query part of
include/netkernel/ctl.h: header {u32 type, u32 len, u64 seq}, then
status (i32) and flags (u32, NK_QUERY_F_LAST on the last chunk).
"""
import os
import socket
import struct
import sys

NK_CTL_QUERY, NK_CTL_QUERY_REPLY, NK_QUERY_F_LAST = 10, 11, 1

path, answer = sys.argv[1], open(sys.argv[2], "rb").read()
srv = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
if os.path.exists(path):
    os.unlink(path)
srv.bind(path)
srv.listen(8)
while True:
    c, _ = srv.accept()
    msg = c.recv(65536)
    if len(msg) >= 16:
        typ, _len, seq = struct.unpack_from("=IIQ", msg)
        if typ == NK_CTL_QUERY:
            chunks = [answer[i:i + 1000] for i in range(0, len(answer), 1000)] or [b""]
            for i, ch in enumerate(chunks):
                flags = NK_QUERY_F_LAST if i == len(chunks) - 1 else 0
                hdr = struct.pack("=IIQiI", NK_CTL_QUERY_REPLY, 24 + len(ch), seq, 0, flags)
                c.send(hdr + ch)
    c.close()
