#!/usr/bin/env python3
"""A resolver of its own, as dig or c-ares are: reads /etc/resolv.conf's
first nameserver and asks it for NAME's A records over UDP or TCP.

  nk_dnsq.py udp|tcp NAME    prints the addresses, comma-separated, or
                             "error ERRNO-NAME" (exit 1)
"""
import errno
import random
import socket
import struct
import sys


def nameserver():
    with open("/etc/resolv.conf") as f:
        for line in f:
            w = line.split()
            if len(w) >= 2 and w[0] == "nameserver":
                return w[1]
    return "127.0.0.1"


def query(name, qid):
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\0" + struct.pack(">HH", 1, 1)


def skip_name(m, i):
    while True:
        n = m[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += 1 + n


def answers(m, qid):
    rid, flags, qd, an = struct.unpack(">HHHH", m[:8])
    if rid != qid:
        raise ValueError("answer to another query")
    i = 12
    for _ in range(qd):
        i = skip_name(m, i) + 4
    out = []
    for _ in range(an):
        i = skip_name(m, i)
        typ, cls, _ttl, rdlen = struct.unpack(">HHIH", m[i:i + 10])
        i += 10
        if typ == 1 and cls == 1 and rdlen == 4:
            out.append(socket.inet_ntoa(m[i:i + 4]))
        i += rdlen
    return out


def main():
    how, name = sys.argv[1], sys.argv[2]
    ns = nameserver()
    qid = random.randrange(1, 65535)
    q = query(name, qid)
    try:
        if how == "udp":
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(5)
            s.sendto(q, (ns, 53))
            m, src = s.recvfrom(4096)
            # As c-ares and dig do: an answer from elsewhere is not one.
            if src != (ns, 53):
                print("error answer from %s:%d, asked %s" % (src[0], src[1], ns))
                return 1
        else:
            s = socket.create_connection((ns, 53), timeout=5)
            s.sendall(struct.pack(">H", len(q)) + q)
            hdr = s.recv(2, socket.MSG_WAITALL)
            (n,) = struct.unpack(">H", hdr)
            m = s.recv(n, socket.MSG_WAITALL)
    except OSError as e:
        print("error " + errno.errorcode.get(e.errno, str(e)))
        return 1
    print(",".join(answers(m, qid)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
