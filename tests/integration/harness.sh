#!/usr/bin/env bash
# The harness itself, without netkernel: the topology comes up, the peer and
# the host reach each other over IPv4 and IPv6 with the programs the other
# tests use (curl, python http.server, nk_stream), the guest namespace has
# no route out, and cleanup leaves nothing behind (checked by run-all's
# sweep and by test_cleanup below, which runs a nested topology).
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd curl sha256sum ss
[ -x "$TOOLS/nk_stream" ] || fail "missing $TOOLS/nk_stream (run make)"

if [ "${1:-}" = nested ]; then
	# Child run: bring a topology up and leave it to the EXIT trap.
	topo_up
	bg sleeper ip netns exec "$NS_P" sleep 300
	echo "$NS_H $NS_P $NS_G $NK_TMP $LASTPID"
	exit 0
fi

topo_up
log "topology $NS_H/$NS_P/$NS_G up"

# G has lo and nothing else.
links=$(ip -n "$NS_G" -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')
[ "$links" = "lo " ] || fail "guest namespace has links: $links"
[ -z "$(ip -n "$NS_G" route show)" ] || fail "guest namespace has routes"
if ip netns exec "$NS_G" timeout 5 "$PY" -c "
import socket; socket.create_connection(('$P4', 9), timeout=2)" 2>/dev/null; then
	fail "guest namespace reaches the peer without nkd"
fi

# HTTP both ways, content by sha256.
mkdir -p "$NK_TMP/www"
make_file "$NK_TMP/www/blob" 4
want=$(sha_of "$NK_TMP/www/blob")
bg http_p ip netns exec "$NS_P" "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
wait_port "$NS_P" 8000
got=$(run_host curl -sf "http://$P4:8000/blob" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "H fetched wrong content from P"
bg http_p6 ip netns exec "$NS_P" "$PY" -m http.server -d "$NK_TMP/www" -b "$P6" 8006
wait_port "$NS_P" 8006
got=$(run_host curl -sf -g "http://[$P6]:8006/blob" | sha256sum | cut -d' ' -f1)
[ "$got" = "$want" ] || fail "H fetched wrong content from P over IPv6"

# nk_stream both ways, 64 MiB.
bg recv_p ip netns exec "$NS_P" "$TOOLS/nk_stream" recv listen "$P4" 9000
wait_port "$NS_P" 9000
s=$(run_host "$TOOLS/nk_stream" send connect "$P4" 9000 $((64 << 20)) 5)
wait "$LASTPID" || fail "receiver failed"
r=$(grep RESULT "$NK_TMP/recv_p.log")
[ "$(field sha256 "$s")" = "$(field sha256 "$r")" ] || fail "stream sha mismatch: $s / $r"
[ "$(field bytes "$r")" = $((64 << 20)) ] || fail "short stream: $r"

# Cleanup of a nested run leaves nothing behind.
out=$(NK_ID=$((NK_ID + 1)) bash "$0" nested 2>"$NK_TMP/nested.err") ||
	{ cat "$NK_TMP/nested.err" >&2; fail "nested topology run failed"; }
# shellcheck disable=SC2086  # split on purpose
set -- $out
for ns in "$1" "$2" "$3"; do
	ip netns list | grep -qw "$ns" && fail "namespace $ns left behind"
done
[ -e "$4" ] && fail "temp dir $4 left behind"
kill -0 "$5" 2>/dev/null && fail "process $5 left behind"
log "ok"
