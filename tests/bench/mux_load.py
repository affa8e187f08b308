#!/usr/bin/python3
"""Rate-limited HTTP load for the bench's mux_N rows (tests/bench/run.sh).

    mux_load.py RATE SECONDS OUT GO HOST:PORT [HOST:PORT ...]

One keep-alive HTTP/1.1 connection per target (one target = one server,
one guest), all opened first; then the client prints READY and waits (up
to 30 s) for the file GO to exist ("-": no wait). Each connection sends GET /index.html at a fixed RATE per
second for SECONDS: request k of target i is due at
t0 + (i / n_targets + k) / RATE (the targets' schedules are staggered
evenly over one period), is sent when due or, if the previous response
has not come yet, as soon as it has. A request's latency runs to its last
response byte from when it was sent, or from when it was due if the
previous response came after that: a late response also counts against
the requests queued behind it (no coordinated omission), while the
client's own timer lateness (asyncio wakes up to 1 ms late) does not. The rate
is bounded and so is the run: a target that has not answered a request
within 5 s counts the rest of its schedule as errors.

Prints one line

    RESULT targets=N rate=R seconds=S ok=K errors=E rps=X p50_med=U
           p99_med=U p50_worst=U p99_worst=U worst=I

(latencies in microseconds: per target the p50 and p99 of its requests,
then the median over targets and the worst target; rps = responses that
completed / the time from the first due time to the last response, or
SECONDS if that is longer: below N x RATE when the servers fell behind) and writes one line per target to OUT:
"index host:port ok errors p50 p99 max".
"""
import asyncio
import math
import os
import sys
import time

TIMEOUT = 5.0
# (due time - t0, latency us) of every response, for the per-second trace.
trace = []
# When the last response came.
last = [0.0]


def pct(sorted_v, p):
    if not sorted_v:
        return None
    # Nearest rank.
    k = max(1, math.ceil(p / 100.0 * len(sorted_v)))
    return sorted_v[k - 1]


class Http(asyncio.Protocol):
    """One keep-alive connection. The response's end is timed in
    data_received, before any task switch: asyncio's future and task
    machinery between the socket and a coroutine costs hundreds of
    microseconds on a busy machine, more than the paths being compared."""

    def __init__(self):
        self.transport = None
        self.buf = b""
        self.fut = None
        self.done = 0.0
        self.lost = None

    def connection_made(self, transport):
        self.transport = transport

    def request(self, req):
        self.fut = asyncio.get_running_loop().create_future()
        self.transport.write(req)
        return self.fut

    def data_received(self, data):
        now = time.monotonic()
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end]
        clen = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                clen = int(line[15:].strip())
        if len(self.buf) < end + 4 + clen:
            return
        self.buf = self.buf[end + 4 + clen:]
        self.done = now
        if self.fut is not None and not self.fut.done():
            self.fut.set_result(head.split(b" ", 2)[1:2] == [b"200"])

    def connection_lost(self, exc):
        self.lost = exc or ConnectionError("closed by the server")
        if self.fut is not None and not self.fut.done():
            self.fut.set_exception(self.lost)


async def target(i, n, conn, rate, seconds, t0, res):
    lat = []
    ok = 0
    errors = 0
    total = int(rate * seconds)
    host, port, proto = conn
    req = ("GET /index.html HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port)).encode()
    k = 0
    prev_done = 0.0
    try:
        if proto is None:
            raise ConnectionError("no connection")
        for k in range(total):
            due = t0 + (i / n + k) / rate
            now = time.monotonic()
            if due > now:
                await asyncio.sleep(due - now)
            # Waiting for the server counts, the client's own lateness
            # does not: asyncio's timers wake up to a millisecond late
            # (epoll's resolution), which would hide a path's microseconds.
            start = due if prev_done > due else time.monotonic()
            good = await asyncio.wait_for(proto.request(req), TIMEOUT)
            prev_done = proto.done
            if good:
                ok += 1
                lat.append((prev_done - start) * 1e6)
                trace.append((due - t0, (prev_done - start) * 1e6))
                last[0] = max(last[0], prev_done)
            else:
                errors += 1
        k = total
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError) as e:
        # The rest of the schedule is lost with the connection.
        errors += total - k
        print("target %d (%s:%d): %s: %r" % (i, host, port, type(e).__name__, e), file=sys.stderr)
    finally:
        if proto is not None and proto.transport is not None:
            proto.transport.close()
    lat.sort()
    res[i] = (ok, errors, lat)


async def connect(host, port):
    loop = asyncio.get_running_loop()
    try:
        _, proto = await asyncio.wait_for(loop.create_connection(Http, host, port), TIMEOUT)
        return (host, port, proto)
    except (OSError, asyncio.TimeoutError) as e:
        print("connect %s:%d: %r" % (host, port, e), file=sys.stderr)
        return (host, port, None)


async def main():
    rate = float(sys.argv[1])
    seconds = float(sys.argv[2])
    out = sys.argv[3]
    go = sys.argv[4]
    targets = []
    for t in sys.argv[5:]:
        h, p = t.rsplit(":", 1)
        targets.append((h, int(p)))
    n = len(targets)
    res = {}
    # Connect first, then wait for GO: the bench opens its CPU window
    # after the interpreter's start and the connects.
    conns = await asyncio.gather(*(connect(h, p) for h, p in targets))
    print("READY", flush=True)
    if go != "-":
        for _ in range(3000):
            if os.path.exists(go):
                break
            await asyncio.sleep(0.01)
    t0 = time.monotonic() + 0.05
    start = time.monotonic()
    await asyncio.gather(*(target(i, n, c, rate, seconds, t0, res) for i, c in enumerate(conns)))
    wall = time.monotonic() - start
    if os.environ.get("MUX_TRACE"):
        # p50 and max latency of the requests due in each second.
        for sec in range(int(seconds) + 1):
            v = sorted(l for d, l in trace if sec <= d < sec + 1)
            if v:
                print("second %d: n=%d p50=%.0f max=%.0f" % (sec, len(v), pct(v, 50), v[-1]), file=sys.stderr)
    # Responses per second from the first due time to the last response:
    # below N x RATE when the servers fell behind the schedule.
    span = max(last[0] - t0, seconds)
    p50s, p99s = [], []
    ok_all = err_all = 0
    with open(out, "w") as f:
        for i, (h, p) in enumerate(targets):
            ok, err, lat = res[i]
            ok_all += ok
            err_all += err
            a, b = pct(lat, 50), pct(lat, 99)
            if a is not None:
                p50s.append((a, i))
                p99s.append((b, i))
            f.write("%d %s:%d %d %d %s %s %s\n" % (i, h, p, ok, err,
                    "%.0f" % a if a is not None else "n/a",
                    "%.0f" % b if b is not None else "n/a",
                    "%.0f" % lat[-1] if lat else "n/a"))
    if len(p99s) != n:
        print("RESULT targets=%d rate=%g seconds=%g ok=%d errors=%d fail=1 wall=%.2f"
              % (n, rate, seconds, ok_all, err_all, wall))
        return
    p50s.sort()
    p99s.sort()
    med = lambda v: v[(len(v) - 1) // 2][0] if len(v) % 2 else (v[len(v) // 2 - 1][0] + v[len(v) // 2][0]) / 2
    print("RESULT targets=%d rate=%g seconds=%g ok=%d errors=%d rps=%.1f p50_med=%.0f p99_med=%.0f "
          "p50_worst=%.0f p99_worst=%.0f worst=%d wall=%.2f"
          % (n, rate, seconds, ok_all, err_all, ok_all / span, med(p50s), med(p99s),
             p50s[-1][0], p99s[-1][0], p99s[-1][1], wall))


if __name__ == "__main__":
    if len(sys.argv) < 6:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    asyncio.run(main())
