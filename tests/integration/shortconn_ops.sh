#!/usr/bin/env bash
# Short connections cost no barrier: nginx (1 worker) in a NIC-less guest
# serves 40 `Connection: close` requests from P, one connection after the
# other, each checked by content; nkd's ops_total for the guest must grow
# by at most 5 ring operations per connection (ACCEPT, RECV, 2 SENDs,
# CLOSE). A peer on another host gets NK_CQE_F_REMOTE on its ACCEPT, so
# the worker's next epoll_wait puts no NOP barrier behind the connection's
# SENDs and CLOSE (abi.md §5); without it this was 6 per connection. The
# barrier for loopback peers is checked by the semantics test
# (epoll_edge_send). A count, not a timing (docs/benchmarks.md "Short
# connections").
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd nginx
topo_up
start_nkd

d=$NK_TMP/nginx
mkdir -p "$d/www"
head -c 64 /dev/zero | tr '\0' x >"$d/www/index.html"
nginx_conf "$d" 8080 "$d/www" 1 256 "access_log off;" "sendfile on;" "tcp_nodelay on;"
nginx_guest nginx "$d" 8080

# requests N: N sequential Connection: close requests from P; prints how
# many got the whole file.
requests() { close_requests "$H4" 8080 "$1"; }
ops() {
	nkctl stats | awk -v g="$GUEST" '$1 ~ /^netkernel_guest_ops_total/ && index($1, "guest=\"" g "\"") {s += $2} END {print s + 0}'
}

[ "$(requests 3)" = 3 ] || fail "warm-up requests failed"
sleep 0.5
n=40
before=$(ops)
got=$(requests $n)
sleep 0.5 # the last CLOSE, and a barrier if any, taken
after=$(ops)
[ "$got" = $n ] || fail "$got of $n responses complete"
per=$(awk -v a="$before" -v b="$after" -v n=$n 'BEGIN{printf "%.2f", (b - a) / n}')
log "$n connections: $((after - before)) ring operations, $per per connection"
awk -v p="$per" 'BEGIN{exit !(p > 0 && p <= 5.0)}' ||
	fail "$per ring operations per connection, expected at most 5 (ACCEPT, RECV, 2 SENDs, CLOSE: no NOP barrier for a remote peer)"
log "ok"
