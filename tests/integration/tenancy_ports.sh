#!/usr/bin/env bash
# Port takeover between guests of one NSM (issue 6 part 3). nkd creates
# every kernel-NSM socket as root in one namespace, so the kernel's
# same-uid rule for SO_REUSEPORT never separates guests: nkd's port
# ownership (userspace/nkd/tenancy/portown.c) must. Guest A listens on P with
# SO_REUSEPORT (as nginx does); guest B's bind to P — plain, SO_REUSEPORT,
# SO_REUSEADDR, on the wildcard and on H's address — fails with
# EADDRINUSE, and B's REUSEPORT server cannot even start: 20 connections
# from the peer all reach A. A's own second REUSEPORT socket on P is fine.
# B's listen() without bind gets another port; guest C, whose bind= rules
# do not allow the wildcard address, gets EACCES for it. UDP: B cannot
# bind A's UDP port. A bystander guest moves data meanwhile; ASan nkd.
# timeout: 180
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
P=9610
U=9611
BYS_BYTES=$((32 << 20))
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest ga
guest gb
guest gc bind=$H4/32:20000-20100
unknown_guests allow
CONF
san_nkd_up "$NK_TMP/nkd.conf"
bystander_start 9400

T=$HELPERS/nk_ports.py

# A: the victim's REUSEPORT listener and UDP socket.
GUEST=ga bg_guest a_tcp "$PY" "$T" serve tcp 0.0.0.0 "$P" reuseport A 200
atcp=$LASTPID
GUEST=ga bg_guest a_udp "$PY" "$T" serve udp 0.0.0.0 "$U" reuseaddr A 200
audp=$LASTPID
wait_for 20 grep -q READY "$NK_TMP/a_tcp.log" || fail "guest A did not listen: $(cat "$NK_TMP/a_tcp.log")"
wait_for 20 grep -q READY "$NK_TMP/a_udp.log" || fail "guest A did not bind UDP: $(cat "$NK_TMP/a_udp.log")"

# B tries to take P: every way fails.
for addr in 0.0.0.0 "$H4"; do
	for o in plain reuseport reuseaddr reuseaddr,reuseport; do
		expect_field "B binds TCP $addr:$P ($o)" bind EADDRINUSE "$(as_guest gb "$PY" "$T" trybind tcp "$addr" "$P" "$o")"
	done
done
expect_field "B binds TCP [::]:$P (reuseport)" bind EADDRINUSE "$(as_guest gb "$PY" "$T" trybind tcp :: "$P" reuseport)"
# B's would-be thief server: must not get to listen.
GUEST=gb bg_guest b_tcp "$PY" "$T" serve tcp 0.0.0.0 "$P" reuseport B 30
btcp=$LASTPID
wait_for 20 grep -qE 'READY|RESULT' "$NK_TMP/b_tcp.log" || fail "guest B's server printed nothing"
grep -q 'RESULT bind=EADDRINUSE' "$NK_TMP/b_tcp.log" || fail "guest B's REUSEPORT server started: $(cat "$NK_TMP/b_tcp.log")"

# 20 connections from the peer: all answered by A.
r=$(run_peer "$PY" "$T" banners "$H4" "$P" 20)
expect_field "20 peer connections to $P" A 20 "$r"

# UDP: B cannot bind A's port either.
for o in plain reuseaddr reuseport; do
	expect_field "B binds UDP 0.0.0.0:$U ($o)" bind EADDRINUSE "$(as_guest gb "$PY" "$T" trybind udp 0.0.0.0 "$U" "$o")"
done
r=$(run_peer "$PY" "$T" udp-ask "$H4" "$U")
expect_field "peer's datagram to $U" answer A "$r"

# A's own second REUSEPORT socket on P is allowed, as on Linux.
expect_field "A's second REUSEPORT socket" bind OK "$(as_guest ga "$PY" "$T" trybind tcp 0.0.0.0 "$P" reuseport)"

# Implicit binds: B's listen without bind gets a port of its own; C's
# bind= rules do not allow the wildcard address, so C gets EACCES.
r=$(as_guest gb "$PY" "$T" listen-nobind)
expect_field "B listen without bind" listen OK "$r"
port=$(field port "$(grep RESULT <<<"$r")")
[ "$port" != "$P" ] && [ "$port" != 0 ] || fail "B's listen without bind got port $port"
expect_field "C listen without bind (bind= forbids the wildcard)" listen EACCES "$(as_guest gc "$PY" "$T" listen-nobind)"
expect_field "C explicit bind inside its rules" bind OK "$(as_guest gc "$PY" "$T" trybind tcp "$H4" 20001 plain)"
expect_field "C explicit bind outside its rules" bind EACCES "$(as_guest gc "$PY" "$T" trybind tcp "$H4" 20200 plain)"

# A's ports are free again once A's sockets are closed.
run_peer "$PY" "$T" stop "$H4" "$P" || fail "cannot stop guest A's server"
wait "$atcp" || fail "guest A's server failed"
grep -q 'RESULT accepted=20' "$NK_TMP/a_tcp.log" || fail "guest A counted: $(grep RESULT "$NK_TMP/a_tcp.log")"
kill "$audp" 2>/dev/null || true
wait "$audp" 2>/dev/null || true
wait "$btcp" 2>/dev/null || true
# (A's connections sit in TIME_WAIT, created by A's REUSEPORT
# listener: only a REUSEPORT bind passes the kernel's own check.)
wait_for 10 sh -c "! ip netns exec $NS_H ss -Hltn 'sport = :$P' | grep -q ." || fail "A's listener is still there"
expect_field "B binds TCP 0.0.0.0:$P after A closed it" bind OK "$(as_guest gb "$PY" "$T" trybind tcp 0.0.0.0 "$P" reuseaddr,reuseport)"

bystander_finish
nk_san_stop
log "PASS"
