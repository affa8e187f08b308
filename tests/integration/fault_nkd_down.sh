#!/usr/bin/env bash
# nkd not running, or killed mid-run: guest programs get clear errors and
# exit, never hang.
#  1. No nkd at the socket path: a python socket() fails with ENETDOWN
#     (--fallback fail, the default), curl fails, and stderr carries exactly
#     one line "netkernel: cannot reach nkd at PATH: ..."; each within 15 s.
#  2. --fallback passthrough: the same python program reaches libc instead
#     (G has no route, so connect fails with ENETUNREACH, not ENETDOWN).
#  3. nkd SIGKILLed while a guest holds a connection and while curl is
#     downloading: both programs exit with an error within 15 s.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
need_cmd curl
topo_up
NOPE=$NK_TMP/absent/nkd.sock

# bounded RESULT-VAR CMD...: run CMD in G with a 20 s bound, record its exit
# status in $rc and the seconds it took in $secs.
bounded() {
	local t0 t1
	t0=$(date +%s.%N)
	rc=0
	timeout -k 2 20 "$@" >"$NK_TMP/out" 2>"$NK_TMP/err" || rc=$?
	t1=$(date +%s.%N)
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		cat "$NK_TMP/err" >&2
		fail "$* hung (killed after 20 s)"
	fi
}
one_message() {
	local n
	# "netkernel:" or "netkernel[PID]:"
	n=$(grep -cE "^netkernel(\[[0-9]+\])?: cannot reach nkd at $NOPE" "$NK_TMP/err" || true)
	[ "$n" = 1 ] || { cat "$NK_TMP/err" >&2; fail "$1: expected one 'netkernel: cannot reach nkd at $NOPE' line on stderr, got $n"; }
}

log "1. no nkd"
bounded ip netns exec "$NS_G" "$NKRUN" --guest g1 --socket "$NOPE" -- \
	"$PY" "$HELPERS/nkpy.py" connect "$P4" 80
cat "$NK_TMP/out" "$NK_TMP/err" >&2
[ "$rc" != 0 ] || fail "python connect succeeded without nkd"
grep -q 'error=ENETDOWN' "$NK_TMP/out" || fail "python socket/connect did not fail with ENETDOWN: $(cat "$NK_TMP/out")"
one_message python
log "python: ENETDOWN in ${secs}s"

bounded ip netns exec "$NS_G" "$NKRUN" --guest g1 --socket "$NOPE" -- \
	curl -sS --max-time 10 "http://$P4:8000/"
[ "$rc" != 0 ] || fail "curl succeeded without nkd"
one_message curl
log "curl: exit $rc in ${secs}s"

log "2. --fallback passthrough"
bounded ip netns exec "$NS_G" "$NKRUN" --guest g1 --socket "$NOPE" --fallback passthrough -- \
	"$PY" "$HELPERS/nkpy.py" connect "$P4" 80
cat "$NK_TMP/out" "$NK_TMP/err" >&2
grep -q 'error=ENETUNREACH' "$NK_TMP/out" || fail "passthrough: expected libc's ENETUNREACH: $(cat "$NK_TMP/out")"
one_message passthrough

log "3. nkd killed mid-run"
start_nkd
make_file "$NK_TMP/big" 64
mkdir -p "$NK_TMP/www" && mv "$NK_TMP/big" "$NK_TMP/www/big"
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
bg_peer echo_p "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 7000
wait_port "$NS_P" 8000
wait_port "$NS_P" 7000
bg_guest hold "$PY" "$HELPERS/nkpy.py" hold "$P4" 7000 60
hp=$LASTPID
bg_guest curl curl -sS --limit-rate 2M -o "$NK_TMP/partial" "http://$P4:8000/big"
cp=$LASTPID
wait_for 10 grep -q connected=1 "$NK_TMP/hold.log" || fail "guest never connected: $(cat "$NK_TMP/hold.log")"
wait_for 10 test -s "$NK_TMP/partial" || fail "curl in the guest never started receiving"
kill -KILL "$NK_NKD_PID"
log "nkd killed"
for p in "$hp" "$cp"; do
	for i in $(seq 150); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$p" 2>/dev/null && fail "guest program $p still running 15 s after nkd died"
	rc=0
	wait "$p" || rc=$?
	[ "$rc" != 0 ] || fail "guest program $p exited 0 although nkd died under it"
done
log "hold: $(tail -n1 "$NK_TMP/hold.log")"
log "curl: $(tail -n1 "$NK_TMP/curl.log")"
log "ok"
