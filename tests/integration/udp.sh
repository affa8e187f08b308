#!/usr/bin/env bash
# UDP both ways through nkd: a guest client against an echo server in P, and
# a guest echo server (socket in H) used by a client in P. 200 datagrams of
# 1..8000 bytes each way, every echo compared byte for byte.
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
topo_up
start_nkd
N=200

log "guest client -> peer server"
bg_peer udp_p "$PY" "$HELPERS/nkpy.py" udp-echo-server "$P4" 7100 "$N"
wait_port "$NS_P" 7100 10 udp
r=$(run_guest "$PY" "$HELPERS/nkpy.py" udp-client "$P4" 7100 "$N" 1) || fail "guest UDP client failed"
log "$r"

log "peer client -> guest server"
bg_guest udp_g "$PY" "$HELPERS/nkpy.py" udp-echo-server 0.0.0.0 7101 "$N"
wait_port "$NS_H" 7101 20 udp
r=$(run_peer "$PY" "$HELPERS/nkpy.py" udp-client "$H4" 7101 "$N" 2) || fail "peer UDP client failed"
log "$r"
log "ok"
