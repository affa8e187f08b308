#!/usr/bin/env bash
# A python asyncio TCP echo server in a NIC-less guest, checked from P with
# 8 concurrent connections of 2 MiB random data each (echo must match).
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
topo_up
start_nkd
bg_guest echo_g "$PY" "$HELPERS/nkpy.py" echo-server 0.0.0.0 7000
wait_port "$NS_H" 7000 20
r=$(run_peer "$PY" "$HELPERS/nkpy.py" echo-client "$H4" 7000 8 $((2 << 20)) 3) ||
	fail "echo client failed"
log "$r"
[ "$(field bytes "$r")" = $((8 * (2 << 20))) ] || fail "echo returned $(field bytes "$r") bytes"
log "ok"
