#!/usr/bin/env bash
# Loopback and host services belong to the host (issue 6 part 3). A native
# TCP server in H (the kernel NSM's namespace), on 0.0.0.0:PORT with a
# banner, and a native UDP responder on 127.0.0.1:UPORT: guest lo
# (default policy) connecting to 127.0.0.1, ::ffff:127.0.0.1 and H's own
# address gets ECONNREFUSED and no banner; its datagrams (sendto, or
# connect + send) get EACCES. Its
# OWN 127.0.0.1 (and H-address) server/client pairs, TCP and UDP, work.
# Guest hostok (host_access=allow) reads the banner. Guest eg
# (egress=P4/32:EPORT) reaches the peer on EPORT and gets ENETUNREACH on
# another peer port (TCP and UDP). A bystander guest moves data meanwhile;
# ASan nkd.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
PORT=9620
UPORT=9621
EPORT=9622
OPORT=9623
BYS_BYTES=$((32 << 20))
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest lo
guest hostok host_access=allow
guest eg egress=$P4/32:$EPORT egress=$P4/32:9400-9402
unknown_guests allow
CONF
san_nkd_up "$NK_TMP/nkd.conf"
bystander_start 9400

T=$HELPERS/nk_ports.py

# Host services in H, natively (not guests).
bg host_tcp ip netns exec "$NS_H" "$PY" "$T" serve tcp 0.0.0.0 "$PORT" plain SECRET-BANNER 90
bg host_udp ip netns exec "$NS_H" "$PY" "$T" serve udp 127.0.0.1 "$UPORT" plain SECRET-UDP 90
wait_port "$NS_H" "$PORT" || fail "host server not listening"
wait_port "$NS_H" "$UPORT" 10 udp || fail "host UDP responder not bound"
r=$(run_host "$PY" "$T" banner 127.0.0.1 "$PORT")
expect_field "native client in H (setup)" banner SECRET-BANNER "$r"

# Default policy: the NSM's loopback and addresses are not the guest's.
for dst in 127.0.0.1 ::ffff:127.0.0.1 "$H4" 127.0.0.2; do
	r=$(as_guest lo "$PY" "$T" banner "$dst" "$PORT")
	expect_field "guest lo connects to $dst:$PORT" connect ECONNREFUSED "$r"
	expect_field "guest lo connects to $dst:$PORT" banner - "$r"
done
r=$(as_guest lo "$PY" "$T" udp-ask 127.0.0.1 "$UPORT")
expect_field "guest lo sends to 127.0.0.1:$UPORT" send EACCES "$r"
r=$(as_guest lo "$PY" "$T" udp-ask 127.0.0.1 "$UPORT" connect)
expect_field "guest lo connects UDP to 127.0.0.1:$UPORT and sends" send EACCES "$r"

# The guest's own loopback traffic keeps working.
for h in 127.0.0.1 ::1 "$H4"; do
	r=$(as_guest lo "$PY" "$T" self-loop "$h")
	expect_field "guest lo's own pair over $h" tcp OK "$r"
	expect_field "guest lo's own pair over $h" udp OK "$r"
done

# host_access=allow: the operator lets this guest reach host services.
r=$(as_guest hostok "$PY" "$T" banner 127.0.0.1 "$PORT")
expect_field "guest hostok connects to 127.0.0.1:$PORT" banner SECRET-BANNER "$r"
r=$(as_guest hostok "$PY" "$T" udp-ask 127.0.0.1 "$UPORT")
expect_field "guest hostok asks 127.0.0.1:$UPORT" answer SECRET-UDP "$r"

# egress=: only the listed peer destinations.
bg_peer peer_e "$PY" "$T" serve tcp "$P4" "$EPORT" plain PEER-E 90
bg_peer peer_o "$PY" "$T" serve tcp "$P4" "$OPORT" plain PEER-O 90
bg_peer peer_u "$PY" "$T" serve udp "$P4" "$OPORT" plain PEER-U 90
wait_port "$NS_P" "$EPORT" || fail "peer server not listening"
wait_port "$NS_P" "$OPORT" || fail "peer server not listening"
r=$(as_guest eg "$PY" "$T" banner "$P4" "$EPORT")
expect_field "guest eg connects to the allowed $P4:$EPORT" banner PEER-E "$r"
r=$(as_guest eg "$PY" "$T" banner "$P4" "$OPORT")
expect_field "guest eg connects to $P4:$OPORT" connect ENETUNREACH "$r"
r=$(as_guest eg "$PY" "$T" udp-ask "$P4" "$OPORT")
expect_field "guest eg sends to $P4:$OPORT" send ENETUNREACH "$r"
r=$(as_guest lo "$PY" "$T" banner "$P4" "$OPORT")
expect_field "guest lo (no egress=) connects to $P4:$OPORT" banner PEER-O "$r"

bystander_finish
nk_san_stop
log "PASS"
