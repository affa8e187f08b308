#!/usr/bin/env bash
# A hostile guest next to an honest one. Two raw ABI clients
# (tests/tools/nk_rawguest.c fuzz) write garbage into their rings — random
# opcodes, flags and reserved bytes, foreign and stale handles, buffers
# outside the data area, SQ tail and CQ head jumps, header scribbles,
# malformed control messages — and attach again whenever nkd drops them.
# Meanwhile guest g1 moves 256 MiB each way with the peer; both transfers
# must complete with matching sha256, and nkd must still be up and answer
# nkctl afterwards.
# timeout: 240
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd jq
# The ASan+UBSan build of nkd takes the garbage: a memory error or leak that
# does not crash the normal build still fails this test.
nk_use_san_nkd
[ -x "$TOOLS/nk_rawguest" ] || fail "missing $TOOLS/nk_rawguest (run make)"
[ -x "$TOOLS/nk_stream" ] || fail "missing $TOOLS/nk_stream (run make)"
topo_up
start_nkd
BYTES=$((256 << 20))
# The fuzzers run until both transfers are done (SIGTERM), at most this long.
FUZZ_SECS=${NK_FUZZ_SECS:-120}

fz=()
for seed in 1 2; do
	bg "fuzz$seed" ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK" \
		--guest "fz$seed" fuzz "$((seed * 7919 + NK_ID))" 50000000 "$FUZZ_SECS"
	fz+=("$LASTPID")
done
sleep 1

check() { # what sender-line receiver-line
	[ "$(field bytes "$3")" = "$BYTES" ] || fail "$1: receiver got $(field bytes "$3") of $BYTES bytes"
	[ "$(field sha256 "$2")" = "$(field sha256 "$3")" ] || fail "$1: sha256 mismatch"
	log "$1: $BYTES bytes, sha256 matches"
}
bg_peer recv_p "$TOOLS/nk_stream" recv listen "$P4" 9300
rp=$LASTPID
wait_port "$NS_P" 9300
s=$(run_guest "$TOOLS/nk_stream" send connect "$P4" 9300 "$BYTES" 21) || fail "guest sender failed during the fuzz"
wait "$rp" || fail "peer receiver failed"
check "guest->peer" "$(grep RESULT <<<"$s")" "$(grep RESULT "$NK_TMP/recv_p.log")"

bg_guest recv_g "$TOOLS/nk_stream" recv listen 0.0.0.0 9301
rg=$LASTPID
wait_port "$NS_H" 9301 20
s=$(run_peer "$TOOLS/nk_stream" send connect "$H4" 9301 "$BYTES" 22) || fail "peer sender failed during the fuzz"
wait "$rg" || fail "guest receiver failed during the fuzz"
check "peer->guest" "$(grep RESULT <<<"$s")" "$(grep RESULT "$NK_TMP/recv_g.log")"

fuzz_running=0
for p in "${fz[@]}"; do kill -0 "$p" 2>/dev/null && fuzz_running=$((fuzz_running + 1)); done
log "transfers done with $fuzz_running fuzzer(s) still running"
[ "$fuzz_running" -gt 0 ] || log "warning: fuzzers ended before the transfers did"
for p in "${fz[@]}"; do kill -TERM "$p" 2>/dev/null || true; done

for i in 1 2; do
	rc=0
	wait "${fz[i - 1]}" || rc=$?
	r=$(grep RESULT "$NK_TMP/fuzz$i.log" || true)
	log "fuzzer $i (exit $rc): $r"
	[ "$rc" -lt 128 ] || fail "fuzzer $i died from signal $((rc - 128))"
	[ -n "$r" ] || fail "fuzzer $i printed no result"
	bad=$(($(field errors "$r") + $(field disconnects "$r") + $(field stalls "$r")))
	[ "$bad" -gt 0 ] || fail "fuzzer $i got no error completions and no disconnects: the garbage was accepted?"
	[ "$rc" = 3 ] && log "note: fuzzer $i could not attach again at some point (nkd refused it)"
done

nkd_alive || fail "nkd died under the fuzz"
nkctl status --json >"$NK_TMP/status.json" || fail "nkctl status failed after the fuzz"
jq -e '.pid > 0' "$NK_TMP/status.json" >/dev/null || fail "nkctl status JSON: $(cat "$NK_TMP/status.json")"
nkctl guests --json >"$NK_TMP/guests.json" || fail "nkctl guests failed"
jq -c '.guests[] | {name, errors, abuse, disconnects}' "$NK_TMP/guests.json" >&2 || fail "nkctl guests JSON unreadable"
# The honest guest can still start new work.
out=$(run_guest "$PY" "$HELPERS/nkpy.py" sockets 1) || fail "a new guest process cannot open a socket after the fuzz"
log "$out"

# Clean shutdown under the sanitizers: no report, no leak, exit 0.
nk_san_stop
log "ok"
