#!/usr/bin/python3
"""Port and destination probes for the tenancy tests (tenancy_ports.sh,
tenancy_loopback.sh). Ordinary Python sockets: each mode runs natively or
as a guest under nkrun. Every mode is bounded in time; a probe whose
outcome is the subject of the test prints "RESULT ..." and exits 0 either
way, so the test compares the outcome.

  nk_ports.py serve PROTO HOST PORT OPTS TAG SECS
        TCP: listen, answer each connection with "TAG\\n", until SECS pass
        or a "STOP" connection; UDP: answer each datagram with TAG.
        Prints "READY" once listening (or "RESULT bind=ERRNO" if the bind
        or listen fails) and "RESULT accepted=N" at the end.
  nk_ports.py trybind PROTO HOST PORT OPTS
        bind (and listen for TCP); "RESULT bind=OK|ERRNO port=P".
  nk_ports.py listen-nobind [HOST6]
        TCP listen without bind; "RESULT listen=OK|ERRNO port=P".
  nk_ports.py banner HOST PORT
        TCP connect and read a line; "RESULT connect=OK|ERRNO banner=TEXT".
  nk_ports.py banners HOST PORT N
        N connections one after another; "RESULT TAG=COUNT ..." per banner.
  nk_ports.py udp-ask HOST PORT [sendto|connect]
        UDP sendto (or connect + send) from an unbound socket, wait 2 s
        for an answer (twice);
        "RESULT send=OK|ERRNO answer=TEXT".
  nk_ports.py self-loop HOST
        the process's own server and client over HOST (127.0.0.1, ::1 or
        an address of the NSM): TCP echo and UDP echo through ephemeral
        ports; "RESULT tcp=OK|ERRNO udp=OK|ERRNO".
  nk_ports.py stop HOST PORT       ends a TCP "serve".

OPTS: comma-separated of plain, reuseport, reuseaddr.
"""
import errno
import select
import socket
import sys
import time


def result(**kv):
    print("RESULT " + " ".join(f"{k}={v}" for k, v in kv.items()), flush=True)


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else str(e)


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def make(proto, host, opts):
    t = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(family_of(host), t)
    for o in opts.split(","):
        if o == "reuseport":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        elif o == "reuseaddr":
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    return s


def serve(proto, host, port, opts, tag, secs):
    s = make(proto, host, opts)
    try:
        s.bind((host, int(port)))
        if proto == "tcp":
            s.listen(64)
    except OSError as e:
        result(bind=ename(e))
        return
    print("READY", flush=True)
    n = 0
    end = time.monotonic() + float(secs)
    while time.monotonic() < end:
        r, _, _ = select.select([s], [], [], 0.2)
        if not r:
            continue
        if proto == "udp":
            data, src = s.recvfrom(2048)
            n += 1
            s.sendto(tag.encode(), src)
            continue
        c, _ = s.accept()
        c.settimeout(2)
        try:
            first = c.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except OSError:
            first = b""
        if first.startswith(b"STOP"):
            c.close()
            break
        n += 1
        try:
            c.sendall((tag + "\n").encode())
        except OSError:
            pass
        c.close()
    result(accepted=n)


def trybind(proto, host, port, opts):
    s = make(proto, host, opts)
    try:
        s.bind((host, int(port)))
        if proto == "tcp":
            s.listen(8)
        result(bind="OK", port=s.getsockname()[1])
    except OSError as e:
        result(bind=ename(e), port=0)


def listen_nobind(host6=None):
    s = socket.socket(socket.AF_INET6 if host6 else socket.AF_INET)
    try:
        s.listen(8)
        result(listen="OK", port=s.getsockname()[1])
    except OSError as e:
        result(listen=ename(e), port=0)


def banner(host, port):
    s = socket.socket(family_of(host))
    s.settimeout(5)
    try:
        s.connect((host, int(port)))
        data = s.recv(256).decode(errors="replace").strip() or "-"
        result(connect="OK", banner=data)
    except OSError as e:
        result(connect=ename(e), banner="-")


def banners(host, port, n):
    seen = {}
    for _ in range(int(n)):
        s = socket.socket(family_of(host))
        s.settimeout(5)
        try:
            s.connect((host, int(port)))
            tag = s.recv(256).decode(errors="replace").strip() or "-"
        except OSError as e:
            tag = ename(e)
        s.close()
        seen[tag] = seen.get(tag, 0) + 1
    result(**seen)


def udp_ask(host, port, how="sendto"):
    s = socket.socket(family_of(host), socket.SOCK_DGRAM)
    s.settimeout(2)
    if how == "connect":
        try:
            s.connect((host, int(port)))
        except OSError as e:
            result(send="connect-" + ename(e), answer="-")
            return
    # Under nkd a datagram's refusal shows on a later send or in SO_ERROR
    # (sends are asynchronous, like an ICMP error on Linux).
    data, err = "-", None
    for _ in range(2):
        try:
            if how == "connect":
                s.send(b"ask")
            else:
                s.sendto(b"ask", (host, int(port)))
            data = s.recv(256).decode(errors="replace").strip() or "-"
            break
        except socket.timeout:
            pass
        except OSError as e:
            err = e
            break
    if err is None:
        e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if e:
            err = OSError(e, "")
    result(send=ename(err) if err else "OK", answer=data)


def self_loop(host):
    fam = family_of(host)
    out = {}
    try:
        ls = socket.socket(fam)
        ls.bind((host, 0))
        ls.listen(4)
        c = socket.socket(fam)
        c.settimeout(5)
        c.connect((host, ls.getsockname()[1]))
        a, _ = ls.accept()
        c.sendall(b"ping-tcp")
        a.sendall(a.recv(64))
        out["tcp"] = "OK" if c.recv(64) == b"ping-tcp" else "MISMATCH"
    except OSError as e:
        out["tcp"] = ename(e)
    try:
        u = socket.socket(fam, socket.SOCK_DGRAM)
        u.bind((host, 0))
        v = socket.socket(fam, socket.SOCK_DGRAM)
        v.settimeout(5)
        v.sendto(b"ping-udp", (host, u.getsockname()[1]))
        u.settimeout(5)
        d, src = u.recvfrom(64)
        u.sendto(d, src)
        out["udp"] = "OK" if v.recv(64) == b"ping-udp" else "MISMATCH"
    except OSError as e:
        out["udp"] = ename(e)
    result(**out)


def stop(host, port):
    s = socket.socket(family_of(host))
    s.settimeout(5)
    s.connect((host, int(port)))
    s.sendall(b"STOP")
    s.close()


MODES = {
    "serve": serve,
    "trybind": trybind,
    "listen-nobind": listen_nobind,
    "banner": banner,
    "banners": banners,
    "udp-ask": udp_ask,
    "self-loop": self_loop,
    "stop": stop,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit(__doc__)
    MODES[sys.argv[1]](*sys.argv[2:])
