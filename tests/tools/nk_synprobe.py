#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""TCP handshake probes for the afxdp NSM's sequence numbers and SYN bound.

  nk_synprobe.py sniff IFACE SRC_IP SECS OUT
      AF_PACKET capture on IFACE for SECS seconds (or until 400000 frames):
      every TCP segment from SRC_IP with SYN set is written to OUT as
      "time flags sport dport seq daddr" (hex flags); the count of segments
      to or from SRC_IP carrying SACK blocks is the last line ("sack N").
  nk_synprobe.py isn OUT MAXCLOSE
      The ISNs in OUT, in capture order, per kind (SYN, SYN-ACK): fails if
      more than MAXCLOSE consecutive differences (mod 2^32, either way) are
      below 2^20, as a counter (lwIP: 6510, 6511, ...) or a slow clock is.
  nk_synprobe.py retrans OUT LIMIT
      Distinct 4-tuples whose SYN-ACK was seen again 1 s or more after the
      first (SYN_RCVD connections still alive, retransmitting): fails above
      LIMIT.
  nk_synprobe.py serve HOST PORT N
      Accepts N connections, closes each at once.
  nk_synprobe.py conns HOST PORT N
      N connections, one after the other, each waiting for the server's
      close.
  nk_synprobe.py flood IFACE DST_MAC DST_IP DPORT COUNT RATE SRC_IP...
      COUNT SYNs to DST_IP:DPORT from the SRC_IPs (spoofed, behind a MAC
      nobody has; an ARP request from each first, so the target answers
      them), source ports counting up from a random start (distinct
      4-tuples up to 64512 per address), random sequence numbers, at most
      RATE per second. Bounded in count and rate.
"""
import os
import random
import signal
import socket
import struct
import sys
import time

from nkpkt import csum, mac

ETH_P_ALL = 0x0003
FAKE_MAC = bytes([0x02, 0, 0, 0x5e, 0x17, 0x66])


def sniff(ifname, src, secs, out):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    s.bind((ifname, 0))
    s.settimeout(0.2)
    src = socket.inet_aton(src)
    end = time.time() + float(secs)
    n = sack = 0
    with open(out, "w") as f:
        while not stop and time.time() < end and n < 400000:
            try:
                fr = s.recv(256)
            except (socket.timeout, InterruptedError):
                continue
            n += 1
            if len(fr) < 54 or fr[12:14] != b"\x08\x00" or fr[23] != 6:
                continue
            ihl = (fr[14] & 15) * 4
            t = fr[14 + ihl:]
            if len(t) < 20:
                continue
            if src in (fr[26:30], fr[30:34]):
                doff = (t[12] >> 4) * 4
                i = 20
                while i < min(doff, len(t)):
                    k = t[i]
                    if k == 0:
                        break
                    if k == 1:
                        i += 1
                        continue
                    if i + 1 >= len(t) or t[i + 1] < 2:
                        break
                    if k == 5:
                        sack += 1
                    i += t[i + 1]
            if fr[26:30] != src or not t[13] & 0x02:
                continue
            sport, dport, seq = struct.unpack("!HHI", t[:8])
            f.write("%.6f %x %d %d %d %s\n" % (time.time(), t[13], sport, dport, seq,
                                             socket.inet_ntoa(fr[30:34])))
        f.write("sack %d\n" % sack)


def load(out):
    rows = []
    with open(out) as f:
        for line in f:
            p = line.split()
            if p[0] == "sack":
                continue
            rows.append((float(p[0]), int(p[1], 16), int(p[2]), int(p[3]), int(p[4]), p[5]))
    return rows


def isn(out, maxclose):
    rows = load(out)
    bad = 0
    for kind, name in ((0x02, "SYN"), (0x12, "SYN-ACK")):
        seen, seqs = set(), []
        for r in rows:
            key = (r[2], r[3], r[5])
            if r[1] & 0x12 == kind and key not in seen:  # first per tuple
                seen.add(key)
                seqs.append(r[4])
        close = 0
        for a, b in zip(seqs, seqs[1:]):
            d = (b - a) & 0xFFFFFFFF
            if min(d, (1 << 32) - d) < (1 << 20):
                close += 1
        print("%s: %d ISNs, first %s, %d consecutive differences < 2^20"
              % (name, len(seqs), seqs[:6], close))
        if len(seqs) < 10:
            print("%s: too few ISNs captured" % name)
            bad = 1
        if close > int(maxclose):
            bad = 1
    sys.exit(bad)


def retrans(out, limit):
    first, last = {}, {}
    for r in load(out):
        if r[1] & 0x12 == 0x12:
            key = (r[2], r[3], r[5])
            first.setdefault(key, r[0])
            last[key] = r[0]
    cnt = first
    # lwIP's first retransmission comes >= 3 s later; 1 s tells it apart
    n = sum(1 for k in first if last[k] - first[k] >= 1.0)
    print("SYN-ACKs to %d tuples, %d of them retransmitted" % (len(cnt), n))
    sys.exit(1 if n > int(limit) else 0)


def serve(host, port, n):
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((host, int(port)))
    l.listen(64)
    for _ in range(int(n)):
        c, _ = l.accept()
        c.close()
    print("RESULT accepted=%s" % n)


def conns(host, port, n):
    for i in range(int(n)):
        c = socket.create_connection((host, int(port)), timeout=10)
        c.settimeout(10)
        while c.recv(4096):
            pass
        c.close()
    print("RESULT conns=%s" % n)


def flood(ifname, dmac, dip, dport, count, rate, *srcs):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((ifname, 0))
    dmac, dipb, dport = mac(dmac), socket.inet_aton(dip), int(dport)
    count, rate = int(count), max(1, int(rate))
    srcs = [socket.inet_aton(a) for a in srcs]
    rnd = random.Random(os.getpid())

    def arp():
        for a in srcs:  # who-has DST tell SRC, from the fake MAC
            s.send(dmac + FAKE_MAC + b"\x08\x06" +
                   struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + FAKE_MAC + a + b"\0" * 6 + dipb)

    base = rnd.randrange(64512)
    arp()
    time.sleep(0.2)
    t0 = time.time()
    for i in range(count):
        if i % 5000 == 0:
            arp()
        src = srcs[i % len(srcs)]
        # distinct 4-tuples (up to 64512 per source): a repeat would look
        # like a retransmission to "retrans"
        sport = 1024 + (base + i // len(srcs)) % 64512
        tcp = struct.pack("!HHIIBBHHH", sport, dport, rnd.getrandbits(32), 0, 0x50, 0x02,
                          64240, 0, 0)
        c = csum(src + dipb + struct.pack("!BBH", 0, 6, 20) + tcp)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src, dipb)
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        try:
            s.send(dmac + FAKE_MAC + b"\x08\x00" + ip + tcp)
        except OSError:  # ENOBUFS: the device queue is full, pace down
            time.sleep(0.01)
        ahead = (i + 1) / rate - (time.time() - t0)
        if ahead > 0.005:
            time.sleep(ahead)
    dt = time.time() - t0
    print("RESULT syns=%d secs=%.1f rate=%.0f" % (count, dt, count / max(dt, 1e-6)))


MODES = {"sniff": sniff, "isn": isn, "retrans": retrans, "serve": serve, "conns": conns,
         "flood": flood}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit(__doc__)
    MODES[sys.argv[1]](*sys.argv[2:])
