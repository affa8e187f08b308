#!/usr/bin/python3
"""Programs of tests/integration/tenancy_afxdp_flows.sh (afxdp flow takeover).

Each runs natively (the peer) or as a netkernel guest under nkrun, is
bounded in time and prints one line "RESULT key=value ...".

  victim-client HOST PORT BYTES SEED PORTFILE GOFILE
      connect, write the local port to PORTFILE, send half of BYTES, wait
      for GOFILE (the attack is over), send the rest; sha256 of what it sent.
  victim-server PORT PEERFILE
      listen on PORT, accept one connection, close the listener, write the
      peer's port to PEERFILE, read to EOF; sha256 and bytes received.
  sender HOST PORT BYTES SEED GOFILE   (the peer's side of victim-server)
  attacker PEER PORT_A PORTFILE_A PORT_B PEERFILE_B ECHO_PORT
      1. bind the victim client's port (SO_REUSEADDR) and connect to the
         peer port it talks to; 2. bind the victim server's port and connect
         to its client's port; reports the errno of each (ok if it worked);
         3. ports of 8 TCP connects and 8 UDP sends (implicit binds).
"""
import errno
import hashlib
import os
import random
import socket
import sys
import time

CHUNK = 64 * 1024


def result(**kv):
    print("RESULT " + " ".join(f"{k}={v}" for k, v in kv.items()), flush=True)


def wait_file(path, secs=30):
    end = time.monotonic() + secs
    while not os.path.exists(path):
        if time.monotonic() > end:
            sys.exit(f"{path} did not appear")
        time.sleep(0.05)


def stream_send(s, nbytes, seed, gofile):
    r = random.Random(int(seed))
    h = hashlib.sha256()
    sent = 0
    half = nbytes // 2
    while sent < nbytes:
        if sent >= half and gofile:
            wait_file(gofile)
            gofile = None
        n = min(CHUNK, nbytes - sent)
        d = r.randbytes(n)
        s.sendall(d)
        h.update(d)
        sent += n
    s.shutdown(socket.SHUT_WR)
    # the receiver closes once it has everything
    while s.recv(CHUNK):
        pass
    return h.hexdigest(), sent


def victim_client(host, port, nbytes, seed, portfile, gofile):
    s = socket.create_connection((host, int(port)), timeout=20)
    with open(portfile + ".tmp", "w") as f:
        f.write(str(s.getsockname()[1]))
    os.rename(portfile + ".tmp", portfile)
    sha, n = stream_send(s, int(nbytes), seed, gofile)
    result(role="victim-client", bytes=n, sha256=sha)


def victim_server(port, peerfile):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("0.0.0.0", int(port)))
    ls.listen(4)
    ls.settimeout(30)
    c, peer = ls.accept()
    ls.close()
    c.settimeout(20)
    with open(peerfile + ".tmp", "w") as f:
        f.write(str(peer[1]))
    os.rename(peerfile + ".tmp", peerfile)
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(CHUNK)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.close()
    result(role="victim-server", bytes=n, sha256=h.hexdigest())


def sender(host, port, nbytes, seed, gofile):
    s = socket.create_connection((host, int(port)), timeout=20)
    sha, n = stream_send(s, int(nbytes), seed, gofile)
    result(role="sender", bytes=n, sha256=sha)


def try_take(lport, peer, rport):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(3)
    step = "bind"
    try:
        s.bind(("0.0.0.0", lport))
        step = "connect"
        s.connect((peer, rport))
        return "ok"
    except OSError as e:
        if e.errno is None:
            return f"{step}:timeout"
        return f"{step}:{errno.errorcode.get(e.errno, e.errno)}"
    finally:
        s.close()


def attacker(peer, port_a, portfile_a, port_b, peerfile_b, echo_port):
    wait_file(portfile_a)
    wait_file(peerfile_b)
    vport = int(open(portfile_a).read())
    bpeer = int(open(peerfile_b).read())
    a1 = try_take(vport, peer, int(port_a))
    a2 = try_take(int(port_b), peer, bpeer)
    tcp = []
    socks = []
    for _ in range(8):
        s = socket.create_connection((peer, int(echo_port)), timeout=10)
        tcp.append(s.getsockname()[1])
        socks.append(s)
    udp = []
    for _ in range(8):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.sendto(b"x", (peer, int(echo_port)))
        udp.append(u.getsockname()[1])
        socks.append(u)
    for s in socks:
        s.close()
    result(a1=a1, a2=a2, victim_port=vport,
           tcp=",".join(map(str, tcp)), udp=",".join(map(str, udp)))


MODES = {
    "victim-client": victim_client,
    "victim-server": victim_server,
    "sender": sender,
    "attacker": attacker,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in MODES:
        sys.exit(__doc__)
    MODES[sys.argv[1]](*sys.argv[2:])
