# SPDX-License-Identifier: MIT
"""Packet-building helpers shared by the test tools that write raw frames
(ustack_hostile.py, ustack_peer.py, nk_synprobe.py). Tools run as
`python3 tests/tools/X.py`, so this directory is on sys.path."""
import struct


def csum(b):
    """The Internet checksum (RFC 1071) of b."""
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(s):
    """"aa:bb:cc:dd:ee:ff" as 6 bytes."""
    return bytes(int(x, 16) for x in s.split(":"))
