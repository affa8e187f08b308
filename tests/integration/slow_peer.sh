#!/usr/bin/env bash
# The byte scheduler (docs/nkd.md "Scheduler") does not let a guest whose
# own peer reads slowly hold the others to its pace. Two guests of one
# nkd (kernel NSM) send to one peer through a veth with a 100 Mbit/s
# bottleneck (tc tbf on H's egress, as fair_share.sh). Guest gt sends to a
# reader that takes 16 KiB every 50 ms (trickle.py, 12 s, bounded); guest
# gb runs one iperf3 flow for 7 s, alone first, then beside gt's trickle,
# with a checksummed 4 MB transfer (sha256 at both ends) beside it too.
# gb's bytes per second where they arrive (the peer's iperf3 intervals
# from 2 s to 6 s) beside the trickle must be more than a third of what
# it moved alone in the same test: a share, never a speed. Before nkd
# told a peer-limited guest (TCP_INFO: its flow limited by the peer's
# receive window, not the path) from a starved one, gt "contended" and gb
# got one SEND per 250 ms beside it (a few % of its share). nkctl guests
# counts gt's sched_tx_peer_limited; gt's reader got its trickle.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd iperf3 jq tc
bottleneck_up gt gb

SECS=7
# bulk N: gb's one iperf3 flow for SECS s, port 5400+N; sets B.
bulk() {
	local port=$((5400 + $1)) sp cp
	bg_peer "srv_b$1" iperf3 -s -1 -B "$P4" -p "$port" -J
	sp=$LASTPID
	wait_port "$NS_P" "$port"
	GUEST=gb bg_guest "cli_b$1" iperf3 -c "$P4" -p "$port" -t "$SECS" -J
	cp=$LASTPID
	wait "$cp" || fail "bulk $1: iperf3 client failed: $(tail -n 5 "$NK_TMP/cli_b$1.log")"
	wait "$sp" || fail "bulk $1: iperf3 server failed: $(tail -n 5 "$NK_TMP/srv_b$1.log")"
	B=$(iperf3_received "$NK_TMP/srv_b$1.log")
}

bulk 1
ALONE=$B
[ "$ALONE" -gt 0 ] || fail "gb alone moved nothing"
log "gb alone: $ALONE bytes/s"

# gt's trickle: 16 KiB per 50 ms at most (320 KiB/s), for 12 s.
bg_peer trickle "$PY" "$HELPERS/trickle.py" "$P4" 5450 12 16384 0.05
tp=$LASTPID
wait_port "$NS_P" 5450
GUEST=gt bg_guest slow "$TOOLS/nk_stream" send connect "$P4" 5450 $((1 << 30)) 3
sl=$LASTPID
sleep 1 # gt's socket and the peer's receive buffer fill
bg_peer sum_p "$PY" "$HELPERS/nkrate.py" recv listen "$P4" 5451
sump=$LASTPID
wait_port "$NS_P" 5451
GUEST=gb bg_guest sum_g "$PY" "$HELPERS/nkrate.py" send connect "$P4" 5451 4000000
sumg=$LASTPID
bulk 2
WITH=$B
wait "$sumg" || fail "gb's checksummed transfer failed: $(tail -n 3 "$NK_TMP/sum_g.log")"
wait "$sump" || fail "peer's checksummed receiver failed: $(tail -n 3 "$NK_TMP/sum_p.log")"
r=$(grep RESULT "$NK_TMP/sum_p.log") || fail "checksummed transfer: no result"
s=$(grep RESULT "$NK_TMP/sum_g.log") || fail "checksummed transfer: no result from the guest"
{ [ "$(field bytes "$r")" = 4000000 ] && [ "$(field sha256 "$r")" = "$(field sha256 "$s")" ]; } ||
	fail "gb's checksummed transfer beside the trickle differs: sent $s, received $r"
wait "$tp" || fail "trickle reader failed: $(tail -n 3 "$NK_TMP/trickle.log")"
wait "$sl" || true # its peer closed on it: EPIPE or ECONNRESET
tb=$(field bytes "$(grep RESULT "$NK_TMP/trickle.log")")
[ "${tb:-0}" -gt 0 ] || fail "gt's trickle moved nothing"
g=$(nkctl guests --json | jq -c '[.guests[] | {name, sched_tx_holds, sched_tx_held_ms, sched_tx_peer_limited}]')
log "gb beside gt's trickle: $WITH bytes/s (alone $ALONE); gt's reader got $tb bytes in 12 s; $g"
awk -v w="$WITH" -v a="$ALONE" 'BEGIN { exit !(w * 3 > a) }' ||
	fail "gb beside a guest whose peer reads at a trickle moved $WITH bytes/s, not more than a third of its $ALONE alone: held to the slow guest's pace"
pl=$(nkctl guests --json | jq '.guests[] | select(.name == "gt") | .sched_tx_peer_limited // 0')
[ "$pl" -gt 0 ] || fail "nkctl guests: gt never found waiting for its own peer (sched_tx_peer_limited $pl)"
log "ok: gb kept $(awk -v w="$WITH" -v a="$ALONE" 'BEGIN { printf "%.2f", w / a }') of its share beside gt's slow peer; gb's 4 MB by sha256"
log "ok"
