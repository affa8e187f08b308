#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Hostile frames at the ustack engine through the kernel side of its TAP.

  ustack_hostile.py [--seq-after-fin] IFACE ENGINE_MAC ENGINE_IP KERNEL_IP FAKE_IP

Sends, over an AF_PACKET socket on IFACE: random bytes, every truncation of
Ethernet/IPv4/TCP/UDP/ICMP headers, bad IHL and total lengths, wrong IP and
L4 checksums, martian sources (the engine's own address, loopback,
broadcast), broken TCP options, odd flag combinations, overlapping and
oversized IP fragments, malformed and spoofed ARP. Then it opens a real TCP
connection from FAKE_IP (answering the engine's ARP itself) to the echo
server on port 7 and sends a stream as overlapping, duplicated and
out-of-order segments; the echo must equal the stream. Exit 0 / 1.

--seq-after-fin: the ACKs sent after our FIN carry the sequence number
after it (correct TCP). Without it they carry the FIN's own, which the
engine answers with a duplicate ACK that this script ACKs again: an ACK
loop until the server side closes. That is harmless when the server closes
at once (the engine's own echo) but starves a server behind nkd.
"""
import os
import random
import socket
import struct
import sys
import time

from nkpkt import csum, mac

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def ip4(s):
    return socket.inet_aton(s)


class Wire:
    def __init__(self, ifname, emac, eip, kip, fip):
        self.s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.s.bind((ifname, 0))
        self.s.settimeout(0.05)
        self.emac, self.eip, self.kip, self.fip = mac(emac), ip4(eip), ip4(kip), ip4(fip)
        self.fmac = bytes([0x02, 0, 0, 0, 0, 0x50])
        self.sent = 0

    def eth(self, payload, etype=0x0800, dst=None, src=None):
        return (dst or self.emac) + (src or self.fmac) + struct.pack("!H", etype) + payload

    def send(self, frame):
        try:
            self.s.send(frame)
            self.sent += 1
        except OSError:
            pass  # e.g. shorter than an Ethernet header: the kernel refuses

    def iph(self, proto, payload, src=None, dst=None, ihl=5, tot=None, frag=0x4000,
            ttl=64, good_csum=True, opts=b""):
        tot = tot if tot is not None else 4 * ihl + len(payload)
        h = struct.pack("!BBHHHBBH4s4s", 0x40 | (ihl & 0xF), 0, tot & 0xFFFF, random.randrange(65536),
                        frag, ttl, proto, 0, src or self.fip, dst or self.eip) + opts
        c = csum(h)
        if not good_csum:
            c ^= 0x1234
        return h[:10] + struct.pack("!H", c) + h[12:]

    def l4_csum(self, proto, seg, src=None, dst=None):
        ph = struct.pack("!4s4sBBH", src or self.fip, dst or self.eip, 0, proto, len(seg))
        return csum(ph + seg)

    def tcp(self, sport, dport, seq, ack, flags, payload=b"", win=65535, opts=b"",
            doff=None, src=None, dst=None, good_csum=True):
        doff = doff if doff is not None else (20 + len(opts)) // 4
        h = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                        (doff & 0xF) << 4, flags, win, 0, 0) + opts
        seg = h + payload
        c = self.l4_csum(6, seg, src, dst)
        if not good_csum:
            c ^= 0x0F0F
        return seg[:16] + struct.pack("!H", c) + seg[18:]

    def udp(self, sport, dport, payload, ulen=None, src=None, dst=None, good_csum=True):
        ulen = ulen if ulen is not None else 8 + len(payload)
        seg = struct.pack("!HHHH", sport, dport, ulen & 0xFFFF, 0) + payload
        c = self.l4_csum(17, seg, src, dst) or 0xFFFF
        if not good_csum:
            c ^= 0x0F0F
        return seg[:6] + struct.pack("!H", c) + seg[8:]

    def ip_frame(self, proto, seg, **kw):
        return self.eth(self.iph(proto, seg, **kw) + seg)

    def recv(self):
        try:
            d, a = self.s.recvfrom(65536)
        except socket.timeout:
            return None
        if a[2] == PACKET_OUTGOING:
            return None
        return d

    def answer_arp(self, d):
        """Replies to ARP requests for FAKE_IP; returns True if d was ARP."""
        if len(d) < 42 or d[12:14] != b"\x08\x06":
            return False
        op = struct.unpack("!H", d[20:22])[0]
        if op == 1 and d[38:42] == self.fip:
            rep = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, self.fmac, self.fip, d[22:28], d[28:32])
            self.send(d[6:12] + self.fmac + b"\x08\x06" + rep)
        return True


def blast(w):
    rnd = random.Random(1234)
    n0 = w.sent
    # 1. random bytes and random frames with our headers
    for _ in range(1500):
        w.send(bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 200))))
    for _ in range(1500):
        body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 120)))
        w.send(w.eth(body, etype=rnd.choice([0x0800, 0x0806, 0x86DD, 0x8100, rnd.randrange(65536)])))
    # 2. every truncation of valid TCP, UDP, ICMP and ARP frames
    syn = w.ip_frame(6, w.tcp(41000, 7, 1, 0, 0x02, opts=b"\x02\x04\x05\xb4"))
    udp = w.ip_frame(17, w.udp(41001, 7, b"hello"))
    icmp_body = struct.pack("!BBHHH", 8, 0, 0, 1, 1) + b"x" * 16
    icmp_body = icmp_body[:2] + struct.pack("!H", csum(icmp_body)) + icmp_body[4:]
    icmp = w.ip_frame(1, icmp_body)
    arp = w.eth(struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, w.fmac, w.fip, b"\0" * 6, w.eip),
                etype=0x0806, dst=b"\xff" * 6)
    for f in (syn, udp, icmp, arp):
        for cut in range(0, len(f)):
            w.send(f[:cut])
    # 3. IPv4 header fields
    seg = w.tcp(41002, 7, 1, 0, 0x02)
    for ihl in range(0, 16):
        w.send(w.eth(w.iph(6, seg, ihl=ihl) + seg))
    for tot in (0, 1, 19, 20, 21, 39, 41, 200, 65535):
        w.send(w.eth(w.iph(6, seg, tot=tot) + seg))
    w.send(w.eth(w.iph(6, seg, good_csum=False) + seg))
    w.send(w.eth(w.iph(6, seg, opts=b"\x44\x08\x05\x00\x00\x00\x00\x00", ihl=7) + seg))  # timestamp opt
    w.send(w.eth(w.iph(6, seg, opts=b"\x01\x01\x01\x00", ihl=6) + seg))
    w.send(w.eth(w.iph(6, seg, opts=b"\x07\x00\x00\x00", ihl=6) + seg))  # option length 0
    w.send(w.eth(b"\x65" + w.iph(6, seg)[1:] + seg))  # version 6
    # 4. L4 headers and checksums
    for doff in range(0, 16):
        w.send(w.ip_frame(6, w.tcp(41003, 7, 1, 0, 0x02, doff=doff)))
    w.send(w.ip_frame(6, w.tcp(41004, 7, 1, 0, 0x02, good_csum=False)))
    w.send(w.ip_frame(6, w.tcp(41004, 7, 1, 0, 0x10, b"data", good_csum=False)))
    for ulen in (0, 7, 8, 9, 12, 13, 14, 65535):
        w.send(w.ip_frame(17, w.udp(41005, 7, b"hello", ulen=ulen)))
    w.send(w.ip_frame(17, w.udp(41005, 7, b"hello", good_csum=False)))
    w.send(w.ip_frame(1, icmp_body[:4]))
    bad_icmp = bytearray(icmp_body)
    bad_icmp[2] ^= 0xFF
    w.send(w.ip_frame(1, bytes(bad_icmp)))
    w.send(w.ip_frame(1, b"\x0d\x00" + b"\x00" * 18))  # timestamp request
    w.send(w.ip_frame(1, b"\x03\x03\x00\x00" + b"\x00" * 4 + w.iph(6, seg)[:20] + seg[:8]))  # port unreach
    # 5. TCP options and flags
    for opts in (b"\x02\x00\x00\x00", b"\x02\x02\x00\x00", b"\x02\x04\x00\x00", b"\x03\x03\xff\x00",
                 b"\x03\x02\x00\x00", b"\x08\x0a" + b"\0" * 8 + b"\x00\x00", b"\x05\x22" + b"\0" * 2,
                 b"\xff" * 4, b"\x01\x01\x01\x02", b"\x04\x02\x00\x00", b"\x02\x28" + b"\0" * 38):
        w.send(w.ip_frame(6, w.tcp(41006, 7, 100, 0, 0x02, opts=opts)))
    for flags in range(0, 64):
        w.send(w.ip_frame(6, w.tcp(41007 + flags, 7, rnd.randrange(1 << 32), rnd.randrange(1 << 32), flags, b"zz")))
        w.send(w.ip_frame(6, w.tcp(41100 + flags, 9, rnd.randrange(1 << 32), 0, flags)))
    w.send(w.ip_frame(6, w.tcp(41200, 7, 5, 0, 0x02, b"SYN with data")))
    w.send(w.ip_frame(6, w.tcp(41201, 7, 5, 0, 0x02, win=0)))
    # 6. martian sources and destinations
    for src in (w.eip, ip4("127.0.0.1"), ip4("0.0.0.0"), ip4("255.255.255.255"), ip4("224.0.0.1")):
        w.send(w.eth(w.iph(6, w.tcp(41300, 7, 1, 0, 0x02, src=src), src=src) + w.tcp(41300, 7, 1, 0, 0x02, src=src)))
        w.send(w.eth(w.iph(1, icmp_body, src=src) + icmp_body))
    for dst in (ip4("255.255.255.255"), ip4("10.255.255.255"), ip4("224.0.0.1"), ip4("8.8.8.8")):
        seg2 = w.tcp(41301, 7, 1, 0, 0x02, dst=dst)
        w.send(w.eth(w.iph(6, seg2, dst=dst) + seg2))
        w.send(w.eth(w.iph(1, icmp_body, dst=dst) + icmp_body, dst=b"\xff" * 6))
    w.send(w.eth(w.iph(6, seg) + seg, dst=b"\x02\x11\x22\x33\x44\x55"))  # other MAC
    # 7. fragments: overlapping, tiny, beyond 64 KiB, never completed
    payload = icmp_body + b"F" * 3000
    for off, ln, mf in ((0, 1480, 1), (800, 1480, 1), (8, 8, 1), (2000, 1024, 0), (1480, 1480, 1)):
        part = payload[off:off + ln]
        w.send(w.eth(w.iph(1, part, frag=((off // 8) | (0x2000 if mf else 0))) + part))
    for i in range(40):  # many incomplete datagrams
        part = b"G" * 64
        h = w.iph(17, part, frag=0x2000 | (i * 3))
        w.send(w.eth(h + part))
    big = b"H" * 1000
    w.send(w.eth(w.iph(1, big, frag=0x1FFF) + big))  # offset 65528 + 1000 > 65535
    # 8. ARP: malformed, spoofing the engine's own address, odd opcodes
    for hl, pl, op in ((6, 4, 3), (8, 4, 1), (6, 6, 1), (6, 4, 0)):
        w.send(w.eth(struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, hl, pl, op, w.fmac, w.fip, b"\0" * 6, w.eip),
                     etype=0x0806, dst=b"\xff" * 6))
    w.send(w.eth(struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 2, w.fmac, w.eip, w.emac, w.eip), etype=0x0806))
    w.send(w.eth(struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, b"\xff" * 6, w.kip, b"\0" * 6, w.eip),
                 etype=0x0806, dst=b"\xff" * 6))
    return w.sent - n0


def overlap_stream(w):
    """A real connection from FAKE_IP, data as overlapping segments."""
    data = bytes((i * 31 + 7) % 251 for i in range(6000))
    sport, isn = 42000 + random.randrange(1000), 1000
    deadline = time.time() + 15
    got = {}
    peer = {"seq": None, "fin": None}

    def pump(until):
        while time.time() < until:
            d = w.recv()
            if d is None:
                continue
            if w.answer_arp(d):
                continue
            if len(d) < 54 or d[12:14] != b"\x08\x00" or d[23] != 6 or d[26:30] != w.eip:
                continue
            ihl = (d[14] & 0xF) * 4
            t = d[14 + ihl:]
            sp, dp, seq, _ack, off, fl = struct.unpack("!HHIIBB", t[:14])
            if sp != 7 or dp != sport:
                continue
            tot = struct.unpack("!H", d[16:18])[0]
            body = d[14 + ihl + (off >> 4) * 4:14 + tot]
            if fl & 0x12 == 0x12:
                peer["seq"] = seq + 1
                continue
            if fl & 0x04:
                if peer["fin"] is not None:
                    continue  # a stray ACK of ours after the close: fine
                raise RuntimeError("engine reset the connection (seq %d, got %d bytes, fin %s, sent %d)" % (seq - (peer["seq"] or 0), sum(len(v) for v in got.values()), peer["fin"], sent_upto[0]))
            if peer["seq"] is None:
                continue
            rel = seq - peer["seq"]
            if body:
                got[rel] = body
            if fl & 0x01:
                peer["fin"] = rel + len(body)
            contiguous = 0
            while contiguous in got:
                contiguous += len(got[contiguous])
            ackv = peer["seq"] + contiguous + (1 if peer["fin"] is not None and contiguous >= peer["fin"] else 0)
            w.send(w.ip_frame(6, w.tcp(sport, 7, isn + 1 + sent_upto[0] + fin_sent[0], ackv, 0x10)))

    sent_upto = [0]
    fin_sent = [0]
    w.send(w.ip_frame(6, w.tcp(sport, 7, isn, 0, 0x02, opts=b"\x02\x04\x05\xb4")))
    t0 = time.time()
    while peer["seq"] is None and time.time() < t0 + 5:
        pump(time.time() + 0.2)
        if peer["seq"] is None:
            w.send(w.ip_frame(6, w.tcp(sport, 7, isn, 0, 0x02, opts=b"\x02\x04\x05\xb4")))
    if peer["seq"] is None:
        raise RuntimeError("no SYN-ACK from the engine")
    w.send(w.ip_frame(6, w.tcp(sport, 7, isn + 1, peer["seq"], 0x10)))
    pieces = [(0, 100), (50, 200), (150, 160), (300, 400), (200, 350), (0, 50), (400, 1000),
              (900, 1500), (1500, 1500), (2500, 3000), (1500, 2600), (2990, 3100), (3100, 4000),
              (3050, 4500), (4500, 5800), (5000, 5500), (5700, 6000)]
    for a, b in pieces:
        w.send(w.ip_frame(6, w.tcp(sport, 7, isn + 1 + a, peer["seq"], 0x18, data[a:b])))
        sent_upto[0] = max(sent_upto[0], b)
        pump(time.time() + 0.02)
    # same bytes again, wrong checksum: must be ignored; then FIN
    w.send(w.ip_frame(6, w.tcp(sport, 7, isn + 1 + 100, peer["seq"], 0x18, b"X" * 100, good_csum=False)))
    fin = w.ip_frame(6, w.tcp(sport, 7, isn + 1 + len(data), peer["seq"], 0x11))
    w.send(fin)
    if SEQ_AFTER_FIN:
        fin_sent[0] = 1
    while time.time() < deadline:
        pump(time.time() + 0.3)
        if peer["fin"] is not None:
            break
        w.send(fin)
    echoed = b""
    while len(echoed) in got:
        echoed += got[len(echoed)]
    if echoed != data:
        raise RuntimeError("echo differs: got %d bytes, want %d (first diff at %s)" % (
            len(echoed), len(data), next((i for i in range(min(len(echoed), len(data))) if echoed[i] != data[i]), "end")))
    if peer["fin"] is None:
        raise RuntimeError("engine never closed the echo connection")
    return len(data)


SEQ_AFTER_FIN = False


def main():
    global SEQ_AFTER_FIN
    args = sys.argv[1:]
    if args and args[0] == "--seq-after-fin":
        SEQ_AFTER_FIN = True
        args = args[1:]
    if len(args) != 5:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    w = Wire(*args)
    n = blast(w)
    print("hostile: sent %d malformed or hostile frames" % n)
    try:
        m = overlap_stream(w)
    except RuntimeError as e:
        print("ustack_hostile: FAIL: overlapping segments: %s" % e, file=sys.stderr)
        sys.exit(1)
    print("hostile: %d bytes echoed intact through overlapping/out-of-order segments" % m)
    n = blast(w)
    print("hostile: sent %d more" % n)


if __name__ == "__main__":
    main()
