#!/usr/bin/env bash
# Fair share per guest, not per flow (docs/nkd.md "Scheduler"): two guests
# of one nkd (kernel NSM) send to one peer through a veth with a 100 Mbit/s
# bottleneck the test makes (tc tbf on H's egress, which every byte to the
# peer crosses). Guest ga runs 1 iperf3 flow, guest gb 8 (-P 8) for 7 s.
# Measured where the bytes arrive (the peer's iperf3 servers' intervals
# from 2 s to 6 s: slow start, the sockets' first fill and the clients'
# different start times left out; bytes over the intervals' seconds):
#   - equal weights: Jain's index over the two guests' rates >= 0.95
#     (per-flow sharing, the old behaviour, gives about 0.6);
#   - `nkctl set ga weight=2`: ga's rate / gb's rate = 2 within 10 %.
# Beside the first round, gb moves a checksummed 4 MB transfer (sha256 at
# both ends) through the same bottleneck; nkctl guests and stats show that
# gb's SENDs waited for their turn. Shares are asserted, never speeds.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd iperf3 jq tc
bottleneck_up ga gb

SECS=7 # each round; bytes counted from 2 s to 6 s
# round N [CHECKSUMMED]: one 7 s round, ports 5300+N*10...; sets A and B.
round() {
	local base=$((5300 + $1 * 10)) pa pb pids=()
	pa=$base pb=$((base + 1))
	bg_peer "srv_a$1" iperf3 -s -1 -B "$P4" -p "$pa" -J
	pids+=("$LASTPID")
	bg_peer "srv_b$1" iperf3 -s -1 -B "$P4" -p "$pb" -J
	pids+=("$LASTPID")
	wait_port "$NS_P" "$pa"
	wait_port "$NS_P" "$pb"
	if [ -n "${2:-}" ]; then
		bg_peer "sum_p$1" "$PY" "$HELPERS/nkrate.py" recv listen "$P4" "$((base + 2))"
		pids+=("$LASTPID")
		wait_port "$NS_P" "$((base + 2))"
		GUEST=gb bg_guest "sum_g$1" "$PY" "$HELPERS/nkrate.py" send connect "$P4" "$((base + 2))" 4000000
		pids+=("$LASTPID")
	fi
	GUEST=ga bg_guest "cli_a$1" iperf3 -c "$P4" -p "$pa" -t "$SECS" -J
	pids+=("$LASTPID")
	GUEST=gb bg_guest "cli_b$1" iperf3 -c "$P4" -p "$pb" -t "$SECS" -P 8 -J
	pids+=("$LASTPID")
	for p in "${pids[@]}"; do
		wait "$p" || fail "round $1: a program failed: $(tail -n 5 "$NK_TMP"/cli_*"$1".log "$NK_TMP"/sum_*"$1".log 2>/dev/null)"
	done
	if [ -n "${2:-}" ]; then
		local r s
		r=$(grep RESULT "$NK_TMP/sum_p$1.log") || fail "checksummed transfer: no result"
		s=$(grep RESULT "$NK_TMP/sum_g$1.log") || fail "checksummed transfer: no result from the guest"
		[ "$(field bytes "$r")" = 4000000 ] && [ "$(field sha256 "$r")" = "$(field sha256 "$s")" ] ||
			fail "checksummed transfer beside the round differs: sent $s, received $r"
		log "checksummed 4 MB transfer of gb intact (sha256 $(field sha256 "$r"))"
	fi
	A=$(iperf3_received "$NK_TMP/srv_a$1.log")
	B=$(iperf3_received "$NK_TMP/srv_b$1.log")
	log "round $1: MB per interval (start s), ga $(jq -c '[.intervals[].sum | "\(.start | . * 10 | round / 10):\(.bytes / 1e6 | round)"]' "$NK_TMP/srv_a$1.log"), gb $(jq -c '[.intervals[].sum | "\(.start | . * 10 | round / 10):\(.bytes / 1e6 | round)"]' "$NK_TMP/srv_b$1.log")"
	[ "$A" -gt 0 ] && [ "$B" -gt 0 ] || fail "round $1: a guest moved nothing (ga $A, gb $B bytes/s)"
	log "round $1: ga (1 flow) $A bytes/s, gb (8 flows) $B bytes/s; $(nkctl guests --json |
		jq -c '[.guests[] | {name, sched_tx_holds, sched_tx_held_ms}]')"
}

round 1 checksummed
jain=$(awk -v a="$A" -v b="$B" 'BEGIN { printf "%.3f", (a + b) ^ 2 / (2 * (a ^ 2 + b ^ 2)) }')
awk -v j="$jain" 'BEGIN { exit !(j >= 0.95) }' ||
	fail "equal weights: Jain's index $jain < 0.95 (ga $A, gb $B bytes/s): shared per flow, not per guest"
log "ok: equal weights, 1 flow vs 8 flows: Jain's index $jain"
# The scheduler's counters: gb's SENDs waited for their turn.
[ "$(nkctl guests --json | jq '.guests[] | select(.name == "gb") | .sched_tx_holds')" -gt 0 ] ||
	fail "nkctl guests shows no scheduler holds for gb: $(nkctl guests --json)"
nkctl stats | grep -q '^netkernel_guest_sched_tx_holds_total{guest="gb",nsm="kernel0"} [1-9]' ||
	fail "nkctl stats lacks gb's sched_tx_holds_total"

out=$(nkctl set ga weight=2) || fail "nkctl set ga weight=2: $out"
round 2
ratio=$(awk -v a="$A" -v b="$B" 'BEGIN { printf "%.3f", a / b }')
awk -v r="$ratio" 'BEGIN { exit !(r >= 1.8 && r <= 2.2) }' ||
	fail "weights 2:1: ga/gb = $ratio, not 2 within 10 % (ga $A, gb $B bytes/s)"
log "ok: weights 2:1, 1 flow vs 8 flows: ga/gb = $ratio"
log "ok"
