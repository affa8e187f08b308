#!/usr/bin/env bash
# Control-connection flood (issue 6, "budgets"). uid nobody opens 4,200
# idle control connections and never says HELLO. Before, they took all of
# nkd's 4,096 client slots and a configured guest got ENETDOWN. Now one uid
# holds at most max_ctl_per_uid connections (excess closed at accept) and
# a connection with neither HELLO nor QUERY is closed after hello_timeout:
# the configured guest `web` (another uid) attaches during the flood, the
# bystander's transfers and round trips stay intact, and the idle ones are
# all gone after the timeout.
# timeout: 150
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_netkernel
command -v setpriv >/dev/null || skip "setpriv missing"
FLOOD=4200
CAP=256
HELLO_TIMEOUT=8
BYS_BYTES=$((32 << 20))
BYS_PINGS=200

topo_up
chmod 755 "$NK_TMP" # nobody and uid 1000 reach the control socket
cat >"$NK_TMP/nkd.conf" <<EOF
nsm kernel0 type=kernel
guest bystander uid=0 netns=/run/netns/$NS_G
guest web uid=1000
max_ctl_per_uid $CAP
hello_timeout $HELLO_TIMEOUT
EOF
nk_use_san_nkd
start_nkd "$NK_TMP/nkd.conf"
nkfds() { find "/proc/$NK_NKD_PID/fd" -mindepth 1 -maxdepth 1 | wc -l; }
fds0=$(nkfds)
bg_peer echo_p "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 9512
wait_port "$NS_P" 9512 || fail "peer echo server not listening"
bystander_start 9500

mkdir -m 777 "$NK_TMP/flood"
bg flood bash -c 'ulimit -n 8192 && exec "$@"' _ ip netns exec "$NS_G" \
	setpriv --reuid=65534 --regid=65534 --clear-groups \
	"$PY" "$HELPERS/ctl_flood.py" "$NK_SOCK" "$FLOOD" 30 "$NK_TMP/flood/ready"
flood=$LASTPID
wait_file "$NK_TMP/flood/ready" 60 || fail "the flood did not get going: $(tail -n 3 "$NK_TMP/flood.log")"
log "flood: $(cat "$NK_TMP/flood/ready"), nkd holds $(nkfds) fds (had $fds0)"

# A configured guest of another uid attaches while nobody's connections
# are open (before the HELLO timeout).
rc=0
timeout -k 5 30 ip netns exec "$NS_G" setpriv --reuid=1000 --regid=1000 --clear-groups \
	"$NKRUN" --guest web --socket "$NK_SOCK" -- "$PY" -c "
import socket
s = socket.create_connection(('$P4', 9512), timeout=10)
s.sendall(b'x'); print('CONNECTED', s.recv(1))" >"$NK_TMP/web.out" 2>&1 || rc=$?
log "web during the flood: rc $rc: $(tr '\n' ' ' <"$NK_TMP/web.out")"
grep -q CONNECTED "$NK_TMP/web.out" || fail "web could not attach during the flood: $(cat "$NK_TMP/web.out")"

wait "$flood" || fail "flood tool failed: $(tail -n 3 "$NK_TMP/flood.log")"
r=$(grep RESULT "$NK_TMP/flood.log") || fail "flood tool printed no result"
log "flood: $r"
opened=$(field opened "$r")
[ "$opened" -ge 4097 ] || fail "flood opened only $opened connections"
[ "$(field closed_at_1s "$r")" -ge $((opened - CAP)) ] ||
	fail "nkd kept more than $CAP of nobody's connections: $r"
[ "$(field closed_end "$r")" = "$opened" ] ||
	fail "idle connections were not closed after the HELLO timeout: $r"
grep -q "max_ctl_per_uid" "$NK_TMP/nkd.log" || fail "no warning about the per-uid cap in nkd's log"
grep -q "sent no HELLO" "$NK_TMP/nkd.log" || fail "no log of the HELLO timeout"
[ "$(grep -c "max_ctl_per_uid" "$NK_TMP/nkd.log")" -le 5 ] || fail "the per-uid warning is not rate-limited"
fds1=$(nkfds)
log "nkd holds $fds1 fds after the timeout (had $fds0 before the flood)"
[ "$fds1" -le $((fds0 + 40)) ] || fail "nkd still holds $fds1 fds (had $fds0)"

bystander_finish
nk_san_stop
log "PASS"
