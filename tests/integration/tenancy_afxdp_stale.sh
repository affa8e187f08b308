#!/usr/bin/env bash
# Stale afxdp state and guest ids (issue 6). nkd is killed with -9 while
# guests hold a listener, a UDP socket and connections on its afxdp NSM:
# their endpoints, flows and ACL entries stay in nk_steer's pinned maps
# (counted with bpftool). A new nkd (ASan+UBSan) must remove them all
# before it serves anyone. Its first config guest gets the dead guest's id
# 1 with an allow-list of its own (the peer's address only): the dead
# guest's allow entry for a second peer address must not let that address
# in (before, the stale entry did). Then 1100 distinct guest names attach,
# open an afxdp socket and detach in sequence: ids are reused, so a fresh
# guest still gets an afxdp socket and a connection (before, ids only grew
# and the afxdp NSM refused ids >= 1024). A bystander guest on the afxdp
# NSM moves data meanwhile.
# timeout: 180
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
RAWGUEST=${NK_RAWGUEST:-$TOOLS/nk_rawguest}
need_afxdp "$RAWGUEST"
BYS_BYTES=$((32 << 20))
NK_CMD_TIMEOUT=60
NAMES=${NK_STALE_NAMES:-1100}
D4=10.$NK_N.0.9 # a second address of P: the dead guest allowed it
afxdp_up
ip -n "$NS_P" addr add "$D4/24" dev nkp

count() { bpftool -j map dump pinned "$NK_PIN/$1" | jq length; }
counts() { echo "endpoints=$(count nk_endpoints) flows=$(count nk_flows) acl=$(count nk_acl)"; }

# --- 1. a first nkd, killed with -9 while its guests hold state. They do
# not reattach (NK_REATTACH_S=0): what the new nkd must clear is the dead
# one's state, not what the same processes make again after a restart.
cat >"$NK_TMP/nkd1.conf" <<CONF
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
nsm kernel0 type=kernel netns=/run/netns/$NS_H
guest old nsm=xdp0 acl_allow=$D4 acl_allow=$P4
guest other nsm=xdp0 acl_deny=10.$NK_N.0.77
CONF
start_nkd_afxdp "$NK_TMP/nkd1.conf"
bg_peer peer_hold "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 7702
wait_port "$NS_P" 7702 || fail "peer echo server not listening"
GUEST=old NK_REATTACH_S=0 bg_guest old_srv "$TOOLS/nk_stream" recv listen 0.0.0.0 7701
wait_for 20 nk_guest_listening 7701 || fail "old guest not listening"
GUEST=old NK_REATTACH_S=0 bg_guest old_udp "$PY" "$HELPERS/nkpy.py" udp-echo-server 0.0.0.0 7703 1000
GUEST=other NK_REATTACH_S=0 bg_guest other_hold "$PY" "$HELPERS/nkpy.py" hold "$P4" 7702 60
wait_for 20 sh -c "[ \$(bpftool -j map dump pinned $NK_PIN/nk_flows | jq length) -ge 1 ]" ||
	fail "no flow installed for the other guest's connection"
wait_for 20 sh -c "[ \$(bpftool -j map dump pinned $NK_PIN/nk_endpoints | jq length) -ge 2 ]" ||
	fail "endpoints of the old guest not installed"
before=$(counts)
log "before kill -9: $before"
kill -KILL "$NK_NKD_PID"
wait "$NK_NKD_PID" 2>/dev/null || true
NK_NKD_PID=
after_kill=$(counts)
log "after kill -9: $after_kill"
[ "$(count nk_acl)" -ge 2 ] || fail "no ACL entries left by the dead nkd: $after_kill"

# --- 2. a new nkd: nothing stale may survive its start.
rm -f "$NK_SOCK"
cat >"$NK_TMP/nkd2.conf" <<CONF
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
nsm kernel0 type=kernel netns=/run/netns/$NS_H
guest new nsm=xdp0 acl_allow=$P4
guest $BYS_GUEST nsm=xdp0
unknown_guests allow
CONF
nk_use_san_nkd
start_nkd_afxdp "$NK_TMP/nkd2.conf"
# Give nkd time to have installed what it installs at start.
wait_for 10 sh -c "grep -q 'nsm xdp0: afxdp on' $NK_TMP/nkd.log" || true
grep -E 'flushed stale' "$NK_TMP/nkd.log" >&2 || true
fresh=$(counts)
log "after restart: $fresh"
[ "$(count nk_endpoints)" = 0 ] || fail "stale endpoints survived the restart: $fresh"
[ "$(count nk_flows)" = 0 ] || fail "stale flows survived the restart: $fresh"
# Only the new guest's own ACL entry (P4) may be there.
[ "$(count nk_acl)" -le 1 ] || fail "stale ACL entries survived the restart: $fresh"

bystander_start 9400

# The new guest (id 1, like the dead one) admits P4 only.
GUEST=new bg_guest new_srv "$TOOLS/nk_stream" recv listen 0.0.0.0 7711
NSRV=$LASTPID
wait_for 20 nk_guest_listening 7711 || fail "new guest not listening"
nkctl guests --json | jq -c '.guests[] | {name, id}' >&2 2>/dev/null || true
if run_peer "$PY" -c "
import socket
s = socket.socket(); s.bind(('$D4', 0)); s.settimeout(2)
s.connect(('$X4', 7711))" 2>/dev/null; then
	fail "the dead guest's ACL let $D4 into the new guest with its id"
fi
log "$D4 (allowed by the dead guest only) is refused for the new guest"
run_peer "$TOOLS/nk_stream" send connect "$X4" 7711 100000 3 >"$NK_TMP/new_send.out" ||
	fail "P4 (the new guest's own allow entry) refused: $(cat "$NK_TMP/new_send.out")"
wait "$NSRV" || fail "new guest's receiver failed"
grep -q "bytes=100000" "$NK_TMP/new_srv.log" || fail "new guest got: $(cat "$NK_TMP/new_srv.log")"

# --- 3. more distinct guest names than there are ids.
log "attaching $NAMES distinct guest names in sequence"
timeout 120 ip netns exec "$NS_G" "$RAWGUEST" --socket "$NK_SOCK" attach-many "churn$$" "$NAMES" \
	>"$NK_TMP/churn.out" 2>&1 || fail "attach-many failed: $(tail -n 3 "$NK_TMP/churn.out")"
R=$(grep RESULT "$NK_TMP/churn.out") || fail "no result from attach-many"
log "$R"
[ "$(field attach_refused "$R")" = 0 ] || fail "attaches refused: $R"
[ "$(field socket_failed "$R")" = 0 ] || fail "afxdp sockets refused: $R"
bg_peer peer_last "$TOOLS/nk_stream" recv listen "$P4" 7712
PLAST=$LASTPID
wait_port "$NS_P" 7712 || fail "peer receiver not listening"
GUEST=fresh-after-churn run_guest "$TOOLS/nk_stream" send connect "$P4" 7712 100000 4 >"$NK_TMP/fresh.out" 2>&1 ||
	fail "a fresh guest after the churn cannot use the afxdp NSM: $(cat "$NK_TMP/fresh.out")"
wait "$PLAST" || fail "peer receiver failed"
log "a fresh guest still connects after $NAMES names"

bystander_finish
nk_san_stop
log "ok"
