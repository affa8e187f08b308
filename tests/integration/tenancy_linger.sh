#!/usr/bin/env bash
# Linger freeze: a guest fills a connection to a peer that never reads,
# sets SO_LINGER {1, 15} and closes it. A kernel socket closed with that
# linger blocks close() for up to 15 s; on nkd's only thread that froze
# every guest (a bystander's NOP took 15.2 s). nkd keeps the guest's value
# for getsockopt but never lets close() wait (docs/nkd.md "Close and
# SO_LINGER"). The bystander's transfers and latency probe run meanwhile:
# no round trip over NK_STALL_MS, and nkctl status answers.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_rawguest jq
BYS_BYTES=$((32 << 20))
BYS_PINGS=400
LINGER=15
san_nkd_up

bg_peer sink "$PY" "$HELPERS/nkpy.py" sink "$P4" 9350 60
wait_port "$NS_P" 9350 || fail "peer sink not listening"
bystander_start 9400
sleep 1

# Two rounds: the second one finds nkd after the first close.
for round in 1 2; do
	r=$(run_guest "$TOOLS/nk_rawguest" --socket "$NK_SOCK" --guest lingerer \
		linger-close "$P4" 9350 "$LINGER") || fail "round $round: linger-close failed: $r"
	r=$(grep RESULT <<<"$r")
	log "round $round: $r"
	[ "$(field linger "$r")" = "1,$LINGER" ] ||
		fail "getsockopt(SO_LINGER) did not return what the guest set: $(field linger "$r")"
	[ "$(field sent "$r")" -gt 0 ] || fail "the guest sent nothing before closing"
	t0=$(date +%s%N)
	nkctl status --json >"$NK_TMP/status.json" || fail "nkctl status failed after the linger close"
	log "round $round: nkctl status answered in $((($(date +%s%N) - t0) / 1000000)) ms"
done
jq -e '.pid > 0' "$NK_TMP/status.json" >/dev/null || fail "status JSON: $(cat "$NK_TMP/status.json")"

bystander_finish
nk_san_stop
log "PASS"
