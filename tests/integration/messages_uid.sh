#!/usr/bin/env bash
# The refusal nkd makes before any HELLO, for a second uid (root only: a
# user namespace made without privilege maps one uid, and uid 0 is the
# operator, never capped): with max_ctl_per_uid 2, two processes of uid
# nobody attached (the bare shim, no nkrun probe), a third one says
# "netkernel: refused: uid 65534 has 2 connections to nkd, its most
# (max_ctl_per_uid)" — through the bare shim and through nkrun (exit 125),
# never "cannot reach nkd"; when one of the two exits, the next attaches.
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_netkernel
need_nk
need_cmd setpriv
topo_up
chmod 755 "$NK_TMP" # nobody reaches the control socket
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest web nsm=kernel0 uid=65534
max_ctl_per_uid 2
CONF
start_nkd "$NK_TMP/nkd.conf"
AS=(setpriv --reuid=65534 --regid=65534 --clear-groups)
why="uid 65534 has 2 connections to nkd, its most (max_ctl_per_uid)"
PROG='import socket, sys, time
s = socket.socket()
print("ATTACHED", flush=True)
time.sleep(float(sys.argv[1]))'
# shim SECONDS: a bare-shim python of uid nobody in G, holding a socket
SHIM=(timeout -k 5 40 ip netns exec "$NS_G" "${AS[@]}" env LD_PRELOAD="$NKSHIM"
	NK_SOCKET="$NK_SOCK" NK_GUEST=web "$PY" -c "$PROG")
shim() { "${SHIM[@]}" "$1"; }
bg h1 "${SHIM[@]}" 30
h1=$LASTPID
wait_for 15 grep -q ATTACHED "$NK_TMP/h1.log" || fail "first holder: $(cat "$NK_TMP/h1.log")"
bg h2 "${SHIM[@]}" 30
wait_for 15 grep -q ATTACHED "$NK_TMP/h2.log" || fail "second holder: $(cat "$NK_TMP/h2.log")"

rc=0
shim 0 >"$NK_TMP/third.out" 2>&1 || rc=$?
log "third (shim): rc=$rc: $(head -n1 "$NK_TMP/third.out")"
grep -qF "netkernel: refused: $why" "$NK_TMP/third.out" || fail "the shim did not say why: $(cat "$NK_TMP/third.out")"
! grep -q "cannot reach" "$NK_TMP/third.out" || fail "the shim calls it unreachable: $(cat "$NK_TMP/third.out")"
! grep -q ATTACHED "$NK_TMP/third.out" || fail "the third process got a socket"

rc=0
timeout -k 5 30 ip netns exec "$NS_G" "${AS[@]}" "$NKRUN" --guest web --socket "$NK_SOCK" -- \
	"$PY" -c "$PROG" 0 >"$NK_TMP/nkrun.out" 2>&1 || rc=$?
log "fourth (nkrun): rc=$rc: $(head -n1 "$NK_TMP/nkrun.out")"
[ "$rc" = 125 ] || fail "nkrun exited $rc, not 125: $(cat "$NK_TMP/nkrun.out")"
grep -qF "netkernel: refused: $why" "$NK_TMP/nkrun.out" || fail "nkrun did not say why: $(cat "$NK_TMP/nkrun.out")"

nk_stop "$h1"
ok=0
for _ in 1 2 3 4 5 6 7 8 9 10; do
	if shim 0 >"$NK_TMP/fifth.out" 2>&1 && grep -q ATTACHED "$NK_TMP/fifth.out"; then
		ok=1
		break
	fi
	sleep 0.5
done
[ "$ok" = 1 ] || fail "a process could not attach after one of the two exited: $(cat "$NK_TMP/fifth.out")"
log "ok"
