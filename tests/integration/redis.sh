#!/usr/bin/env bash
# redis-server as a NIC-less guest (no persistence, port 6380), loaded by
# redis-benchmark -n 20000 -t get,set from P; both tests must complete and
# report a rate, and a value set from P must read back.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd redis-server redis-benchmark redis-cli
topo_up
start_nkd

bg_guest redis redis-server --save '' --appendonly no --port 6380 --bind 0.0.0.0 \
	--protected-mode no --dir "$NK_TMP" --logfile "$NK_TMP/redis-server.log"
wait_port "$NS_H" 6380 20
run_peer redis-cli -h "$H4" -p 6380 set nk-key nk-value-42 >/dev/null || fail "redis-cli set failed"
v=$(run_peer redis-cli -h "$H4" -p 6380 get nk-key) || fail "redis-cli get failed"
[ "$v" = nk-value-42 ] || fail "redis get returned '$v'"
run_peer redis-benchmark -h "$H4" -p 6380 -n 20000 -t get,set -q >"$NK_TMP/bench.txt" 2>&1 ||
	{ cat "$NK_TMP/bench.txt" >&2; fail "redis-benchmark failed"; }
tr '\r' '\n' <"$NK_TMP/bench.txt" | grep -E '^(SET|GET):' | tee "$NK_TMP/rates.txt" >&2
for t in SET GET; do
	grep -qE "^$t: [0-9.]+ requests per second" "$NK_TMP/rates.txt" || fail "redis-benchmark reported no $t rate"
done
log "ok"
