#!/usr/bin/python3
"""Small socket programs for the netkernel integration tests.

Ordinary Python sockets: each runs natively or as a netkernel guest under
nkrun unchanged. Every mode is bounded in time and prints one line
"RESULT key=value ..." on success; any failure exits non-zero with a
message on stderr.

  nkpy.py udp-echo-server HOST PORT COUNT
  nkpy.py udp-client HOST PORT COUNT [SEED [MAXLEN]]
  nkpy.py echo-server HOST PORT            (asyncio TCP echo, runs until killed)
  nkpy.py echo-client HOST PORT CONNS BYTES [SEED]
  nkpy.py sockets N [HOST PORT]            (open N TCP sockets, report errors;
                                            env NKPY_HOLD=SECS keeps them open)
  nkpy.py connect HOST PORT                (one connect; report errno)
  nkpy.py hold HOST PORT SECS              (connect, send a little, sleep)
  nkpy.py rtt-probe HOST PORT COUNT [MS]   (COUNT 64-byte echo round trips, one
                                            every MS ms; p50 and worst RTT)
  nkpy.py sink HOST PORT SECS              (accept and never read, for SECS)
"""
import asyncio
import errno
import os
import random
import socket
import sys
import time


def result(**kv):
    print("RESULT " + " ".join(f"{k}={v}" for k, v in kv.items()), flush=True)


def die(msg):
    print(f"nkpy: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def udp_echo_server(host, port, count):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.bind((host, int(port)))
    s.settimeout(30)
    n = 0
    while n < int(count):
        data, peer = s.recvfrom(65536)
        s.sendto(data, peer)
        n += 1
    result(mode="udp-echo-server", datagrams=n)


def udp_client(host, port, count, seed="1", maxlen="65507"):
    """COUNT datagrams echoed back byte for byte, at most MAXLEN bytes each
    (1472 keeps them in one Ethernet frame: the afxdp NSM gets no IP
    fragments). Each starts with (seed, index), so a late echo of an earlier
    run or retry is told apart and skipped."""
    seed, maxlen = int(seed), int(maxlen)
    rnd = random.Random(seed)
    sizes = [n for n in (1, 64, 512, 1400, 1464, 4000, 8000) if 8 + n <= maxlen]
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.settimeout(1.0)
    s.connect((host, int(port)))
    ok = retries = 0
    total = 0
    for i in range(int(count)):
        tag = seed.to_bytes(4, "big") + i.to_bytes(4, "big")
        payload = tag + rnd.randbytes(rnd.choice(sizes))
        for attempt in range(5):
            s.send(payload)
            try:
                while True:
                    back = s.recv(65536)
                    if back[:8] == tag:
                        break  # drop late duplicates of earlier retries
            except socket.timeout:
                retries += 1
                continue
            if back != payload:
                die(f"datagram {i}: echo differs ({len(back)} vs {len(payload)} bytes)")
            ok += 1
            total += len(payload)
            break
        else:
            die(f"datagram {i}: no echo after 5 tries")
    result(mode="udp-client", datagrams=ok, bytes=total, retries=retries)


async def _echo(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def echo_server(host, port):
    async def main():
        srv = await asyncio.start_server(_echo, host, int(port))
        async with srv:
            await srv.serve_forever()

    asyncio.run(main())


def echo_client(host, port, conns, nbytes, seed="1"):
    conns, nbytes = int(conns), int(nbytes)

    async def one(k):
        rnd = random.Random(int(seed) * 1000 + k)
        data = rnd.randbytes(nbytes)
        reader, writer = await asyncio.open_connection(host, int(port))

        async def send():
            for off in range(0, nbytes, 7919):
                writer.write(data[off:off + 7919])
                await writer.drain()
            writer.write_eof()

        t = asyncio.create_task(send())
        got = bytearray()
        while len(got) < nbytes:
            chunk = await reader.read(65536)
            if not chunk:
                break
            got += chunk
        await t
        writer.close()
        if bytes(got) != data:
            raise RuntimeError(f"conn {k}: echo differs ({len(got)} of {nbytes} bytes)")
        return len(got)

    async def main():
        return await asyncio.wait_for(
            asyncio.gather(*(one(k) for k in range(conns))), 60)

    try:
        sizes = asyncio.run(main())
    except Exception as e:  # noqa: BLE001 - report any failure
        die(f"echo-client: {e!r}")
    result(mode="echo-client", conns=conns, bytes=sum(sizes))


def sockets(n, host=None, port=None):
    held, errs = [], []
    for i in range(int(n)):
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(s)
        except OSError as e:
            errs.append(errno.errorcode.get(e.errno, str(e.errno)))
    connected = "none"
    if host:
        # With what is left, is the guest still able to work?
        for s in held[:1]:
            s.settimeout(5)
            try:
                s.connect((host, int(port)))
                connected = "ok"
            except OSError as e:
                connected = errno.errorcode.get(e.errno, str(e.errno))
    # Each errno once, in order of first appearance; refused= counts them.
    result(mode="sockets", opened=len(held),
           errors=",".join(dict.fromkeys(errs)) or "none", refused=len(errs),
           connect=connected)
    time.sleep(float(os.environ.get("NKPY_HOLD", "0")))  # keep them open


def connect(host, port):
    t0 = time.monotonic()
    try:
        s = socket.socket(family_of(host), socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect((host, int(port)))
        err = "none"
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
    result(mode="connect", error=err, secs=f"{time.monotonic() - t0:.2f}")
    sys.exit(0 if err == "none" else 1)


def hold(host, port, secs):
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(b"hello\n")
    print("RESULT mode=hold connected=1", flush=True)
    end = time.monotonic() + float(secs)
    s.settimeout(1)
    while time.monotonic() < end:
        try:
            if not s.recv(4096):
                die("hold: peer closed")
        except socket.timeout:
            pass
    result(mode="hold", done=1)


def rtt_probe(host, port, count, interval_ms="20"):
    """count 64-byte round trips on one connection to an echo server, one
    every interval_ms; reports the median and the worst round trip, so a
    test can tell a bystander that was stalled from one that was not."""
    count, gap = int(count), float(interval_ms) / 1000.0
    s = socket.create_connection((host, int(port)), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    rtts = []
    msg = bytes(range(64))
    for _ in range(count):
        t0 = time.monotonic()
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(len(msg) - len(got))
            if not chunk:
                die("rtt-probe: echo server closed")
            got += chunk
        if got != msg:
            die("rtt-probe: echo differs")
        rtts.append((time.monotonic() - t0) * 1000.0)
        time.sleep(gap)
    s.close()
    rtts.sort()
    result(mode="rtt-probe", count=count, p50_ms=f"{rtts[len(rtts) // 2]:.3f}",
           max_ms=f"{rtts[-1]:.3f}")


def sink(host, port, secs):
    """A peer that accepts and never reads: a sender to it fills up."""
    ls = socket.socket(family_of(host), socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(16)
    ls.settimeout(0.5)
    held = []
    end = time.monotonic() + float(secs)
    while time.monotonic() < end:
        try:
            held.append(ls.accept()[0])
        except socket.timeout:
            pass
    result(mode="sink", accepted=len(held))


MODES = {
    "udp-echo-server": udp_echo_server,
    "udp-client": udp_client,
    "echo-server": echo_server,
    "echo-client": echo_client,
    "sockets": sockets,
    "connect": connect,
    "hold": hold,
    "rtt-probe": rtt_probe,
    "sink": sink,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    try:
        MODES[sys.argv[1]](*sys.argv[2:])
    except OSError as e:
        die(f"{sys.argv[1]}: {e!r}")
