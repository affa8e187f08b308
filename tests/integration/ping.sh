#!/usr/bin/env bash
# ping (issue 9 part 5): iputils ping, unmodified, in guest G through nkd's
# kernel NSM (namespace H). It uses the unprivileged ICMP echo socket
# (SOCK_DGRAM + IPPROTO_ICMP / IPPROTO_ICMPV6), which nkd creates in H.
# - with H's net.ipv4.ping_group_range at a new namespace's "1 0" (ping
#   sockets off) the guest gets EACCES and nkd's log says why; then the
#   range is set as systemd sets the host's;
# - 3 echoes to the peer P, IPv4 and IPv6: 0% loss, 3 received;
# - a guest whose egress= does not list a destination gets a clear error
#   ("Network is unreachable") from ping, not silent loss, while the
#   listed destination answers;
# - with a range that admits some gid but not nkd's (gid 0), nkd still
#   makes the socket (its gid for that one call) and ping works.
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd ping
topo_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest g1
guest eg egress=$P4/32:0-65535
unknown_guests allow
CONF
start_nkd "$NK_TMP/nkd.conf"
PING=$(command -v ping)

# Off in H (a new namespace's "1 0"): EACCES in the guest, and nkd's log
# says why.
# (ping itself then tries a raw socket, which the shim leaves to the
# guest's own empty namespace or refuses: no echo either way.)
ICMP_SOCK='import errno, socket, sys
try:
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
else:
    print("created")'
r=$(run_guest "$PY" -c "$ICMP_SOCK" 2>&1) || fail "python in the guest: $r"
[ "$r" = EACCES ] || fail "ICMP socket with ping sockets off in H: $r (want EACCES)"
rc=0
out=$(run_guest "$PING" -c 1 -W 2 "$P4" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "ping with ping sockets off in H succeeded: $out"
log "range 1 0: ICMP socket $r, ping rc $rc"
grep -q "ICMP echo sockets are off" "$NK_TMP/nkd.log" || fail "nkd did not say why ping sockets fail"

# systemd sets "0 2147483647"; a user namespace maps gid 0 only.
ip netns exec "$NS_H" sysctl -qw net.ipv4.ping_group_range="0 0"

check_3() { # LABEL OUTPUT
	grep -q "3 packets transmitted, 3 received, 0% packet loss" <<<"$2" ||
		fail "$1: expected 3 of 3 echoes: $2"
	log "$1: $(grep 'packets transmitted' <<<"$2")"
}

out=$(run_guest "$PING" -c 3 -i 0.2 -W 5 "$P4" 2>&1) || fail "ping $P4 in the guest failed: $out"
check_3 "ping $P4" "$out"
out=$(run_guest "$PING" -6 -c 3 -i 0.2 -W 5 "$P6" 2>&1) || fail "ping -6 $P6 in the guest failed: $out"
check_3 "ping -6 $P6" "$out"

# Egress: P4 is listed, H's veth peer address 10.N.0.9 is not.
out=$(GUEST=eg run_guest "$PING" -c 3 -i 0.2 -W 5 "$P4" 2>&1) || fail "ping $P4 as guest eg failed: $out"
check_3 "ping $P4 (egress allows)" "$out"
rc=0
out=$(GUEST=eg run_guest "$PING" -c 3 -i 0.2 -W 2 "10.$NK_N.0.9" 2>&1) || rc=$?
[ "$rc" != 0 ] || fail "ping to a destination egress= does not list succeeded: $out"
grep -qi "unreachable" <<<"$out" || fail "denied ping: no clear error (rc $rc): $out"
log "egress-denied ping: rc $rc: $(grep -i unreachable <<<"$out" | head -1)"
# The ICMP socket itself, without ping's UDP probe first: the datagram is
# refused with ENETUNREACH (datagram sends are asynchronous, so, as for
# UDP, on a later send or receive: ping's own loop of send, then wait for
# the echo; at most 5 rounds).
r=$(GUEST=eg run_guest "$PY" -c '
import errno, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP)
s.settimeout(0.5)
for i in range(5):
    try:
        s.sendto(b"\x08\x00\x00\x00\x00\x00\x00\x01ping", (sys.argv[1], 0))
        s.recv(100)
    except socket.timeout:
        continue
    except OSError as e:
        print(errno.errorcode.get(e.errno, e.errno))
        break
else:
    print("5 echoes, no error")
' "10.$NK_N.0.9" 2>&1) || fail "python ICMP socket in guest eg: $r"
[ "$r" = ENETUNREACH ] || fail "ICMP echo to a denied destination: $r (want ENETUNREACH)"
log "ICMP socket to a denied destination: $r"

# A range without gid 0: nkd creates the socket as gid 1000 for that call
# (only where gid 1000 exists: not in need_netns's user namespace).
if ip netns exec "$NS_H" sysctl -qw net.ipv4.ping_group_range="1000 1000" 2>/dev/null; then
	out=$(run_guest "$PING" -c 3 -i 0.2 -W 5 "$P4" 2>&1) || fail "ping with range 1000-1000 failed: $out"
	check_3 "ping $P4, range 1000 1000" "$out"
else
	log "range 1000 1000: gid 1000 not mapped here (user namespace), not checked"
fi

log "ok"
