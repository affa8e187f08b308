#!/usr/bin/env bash
# A guest killed (SIGKILL) in the middle of a transfer: nkd must close its
# sockets on the NSM and free its resources. Afterwards `nkctl sockets
# --json` lists none of the guest's sockets and `nkctl guests --json` no
# connections for it (polled for 10 s); the peer's sender sees the
# connection die instead of hanging; another guest still works.
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd jq
[ -x "$TOOLS/nk_stream" ] || fail "missing $TOOLS/nk_stream (run make)"
topo_up
start_nkd
victim_sockets() { nkctl sockets --json | jq '[.sockets[] | select(.guest == "victim")] | length'; }
victim_conns() { nkctl guests --json | jq '[.guests[] | select(.name == "victim") | .conns + .sockets] | add // 0'; }

# The victim: receives an endless (bounded: 64 GiB) stream from P, and holds
# a listening socket too.
GUEST=victim bg_guest victim "$TOOLS/nk_stream" recv listen 0.0.0.0 9400
wait_port "$NS_H" 9400 20
bg_peer sender "$TOOLS/nk_stream" send connect "$H4" 9400 $((64 << 30)) 3
sp=$LASTPID
GUEST=victim bg_guest victim2 "$PY" -m http.server -b 0.0.0.0 9401
wait_port "$NS_H" 9401 20
wait_for 10 sh -c "[ \"\$(timeout 10 '$NKCTL' --socket '$NK_SOCK' sockets --json | jq '[.sockets[] | select(.guest == \"victim\" and .state == \"ESTABLISHED\")] | length')\" -ge 1 ]" ||
	fail "nkctl never showed the victim's established socket: $(nkctl sockets --json)"
sleep 1
n=$(victim_sockets)
log "victim has $n socket(s) on nkd; killing it"
nkctl sockets --json | jq -c '.sockets[] | select(.guest == "victim") | {handle, state, local, remote, bytes_rx}' >&2

for pid in $(ip netns pids "$NS_G"); do kill -KILL "$pid" 2>/dev/null || true; done

if ! wait_for 10 sh -c "[ \"\$(timeout 10 '$NKCTL' --socket '$NK_SOCK' sockets --json | jq '[.sockets[] | select(.guest == \"victim\")] | length')\" = 0 ]"; then
	nkctl sockets --json >&2
	fail "10 s after SIGKILL nkd still lists $(victim_sockets) socket(s) of the victim"
fi
c=$(victim_conns)
[ "$c" = 0 ] || { nkctl guests --json >&2; fail "nkctl guests still shows connections/sockets for the victim ($c)"; }
# The NSM socket is gone: H has nothing on those ports any more.
wait_for 5 sh -c "[ -z \"\$(ip netns exec '$NS_H' ss -Htn state established '( sport = :9400 )')\" ]" ||
	fail "an established socket on port 9400 is still open in H"
nk_port_listening "$NS_H" tcp 9401 && fail "the victim's listening socket on 9401 is still open in H"
# The peer's sender must notice (reset or EOF), not hang.
for i in $(seq 100); do kill -0 "$sp" 2>/dev/null || break; sleep 0.1; done
kill -0 "$sp" 2>/dev/null && fail "peer sender still running 10 s after the victim died (connection not closed)"
nkd_alive || fail "nkd died"
run_guest "$PY" "$HELPERS/nkpy.py" sockets 2 >&2 || fail "another guest cannot work after the kill"
log "ok"
