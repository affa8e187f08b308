#!/usr/bin/env bash
# Rate caps per guest (rate= in the config, docs/config.md): guest capped
# has rate=60M (burst=256k: a scheduling hiccup of the loaded test
# machine up to 35 ms loses no tokens). Its checksummed TCP transfers to
# the peer (egress) and from the peer (ingress) are checked two ways, so
# that neither depends on the machine's speed:
#   - the cap holds: where the bytes arrive, over the transfer without
#     its first second (slow start, the bucket's burst) and its last
#     0.2 s, at most cap x 1.05 (a sender that gets little CPU only makes
#     this easier to meet);
#   - the cap is the cap, not less: at least cap x 0.95 arrived, or, when
#     the machine did not run the sender (or nkd) in time for that (54.7
#     Mbit/s under 60 on a loaded machine), nkd's own counters (nkctl
#     guests: bytes the bucket let through, time the guest's ops waited
#     for it, on nkd's clock) show that while the guest waited, the
#     bucket let bytes through at >= cap x 0.9 (bytes - burst over the
#     time waited). A sender starved of CPU waits less, not slower: this
#     needs no CPU from it. (The 10 % are nkd's own stalls: a stall of
#     nkd longer than the burst's 35 ms while ops are held loses tokens.)
# An uncapped guest (the bystander) moves its checksummed bytes each way
# beside it. `nkctl set capped rate=30M` changes the cap at run time and
# the next transfer holds 30 Mbit/s; `nkctl guests` shows the caps and the
# buckets' counters (bytes passed, time throttled); a reload with
# rate_tx=20M rate_rx=10M burst=256k applies them and egress holds 20.
# timeout: 150
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd jq
[ -x "$TOOLS/nk_stream" ] || fail "missing $TOOLS/nk_stream (run make)"
topo_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest capped nsm=kernel0 uid=0 rate=60M burst=256k
guest bystander nsm=kernel0 uid=0
unknown_guests deny
CONF
nk_use_san_nkd # the new engine paths under ASan+UBSan
start_nkd "$NK_TMP/nkd.conf"
RATE=$HELPERS/nkrate.py

gj() { # FIELD of guest capped in nkctl guests --json
	nkctl guests --json | jq -r ".guests[] | select(.name == \"capped\") | $1"
}
BURST=262144 # burst=256k, every guest line here
# capped NAME GOT CAP: GOT (Mbit/s, where the bytes arrived) <= CAP*1.05.
capped() {
	awk -v g="$2" -v c="$3" 'BEGIN { exit !(g + 0 <= c * 1.05) }' ||
		fail "$1: $2 Mbit/s over a cap of $3 Mbit/s (allowed $(awk -v c="$3" 'BEGIN { printf "%.1f", c * 1.05 }'))"
	log "ok: $1: $2 Mbit/s under a cap of $3 Mbit/s"
}
# at_cap NAME GOT BYTES MS CAP: the cap is not less than CAP. Where the
# bytes arrived, GOT >= CAP*0.95 shows it at once. Less than that is the
# machine (the sender, or nkd, not run in time) or a cap too strict; nkd's
# counters tell which: while the guest's ops waited MS ms for its bucket,
# it let BYTES through, and (BYTES - BURST) over MS must be >= CAP*0.9.
# Not asserted when the ops waited under 1 s (the cap hardly bound: a
# sender short of CPU).
at_cap() {
	local mbps
	if awk -v g="$2" -v c="$5" 'BEGIN { exit !(g + 0 >= c * 0.95) }'; then
		log "ok: $1: $2 Mbit/s arrived, at least 95 % of the cap ($5 Mbit/s)"
		return 0
	fi
	if [ "$4" -lt 1000 ]; then
		log "$1: $2 Mbit/s arrived, but the guest waited only $4 ms for its bucket: the cap hardly bound (sender short of CPU), lower bound not checked"
		return 0
	fi
	mbps=$(awk -v b="$3" -v ms="$4" -v burst="$BURST" 'BEGIN { printf "%.3f", (b - burst) * 8 / ms / 1000 }')
	awk -v g="$mbps" -v c="$5" 'BEGIN { exit !(g + 0 >= c * 0.9) }' ||
		fail "$1: $2 Mbit/s arrived, and nkd let $3 bytes through in $4 ms of waiting = $mbps Mbit/s, cap $5 Mbit/s (want >= $(awk -v c="$5" 'BEGIN { printf "%.1f", c * 0.9 }'))"
	log "ok: $1: $2 Mbit/s arrived (the machine was slow), but nkd let bytes through at $mbps Mbit/s while the guest waited ($4 ms) under a cap of $5 Mbit/s"
}
# xfer DIR PORT BYTES CAP: one transfer of guest capped (tx: guest sends
# to the peer; rx: the peer sends to the guest), checked by sha256 and rate.
xfer() {
	local dir=$1 port=$2 bytes=$3 cap=$4 r b0 t0
	b0=$(gj ".rate_${dir}_bytes") t0=$(gj ".rate_${dir}_throttled_ms")
	if [ "$dir" = tx ]; then
		bg_peer "r_p$port" "$PY" "$RATE" recv listen "$P4" "$port"
		wait_port "$NS_P" "$port" || fail "peer receiver not listening"
		GUEST=capped run_guest "$PY" "$RATE" send connect "$P4" "$port" "$bytes" \
			>"$NK_TMP/s_g$port.log" || fail "capped guest's send failed"
		wait "$LASTPID" || fail "peer receiver failed"
		r=$(grep RESULT "$NK_TMP/r_p$port.log")
		[ "$(field sha256 "$r")" = "$(field sha256 "$(grep RESULT "$NK_TMP/s_g$port.log")")" ] ||
			fail "egress: sha256 mismatch"
	else
		bg_peer "s_p$port" "$PY" "$RATE" send listen "$P4" "$port" "$bytes"
		wait_port "$NS_P" "$port" || fail "peer sender not listening"
		GUEST=capped run_guest "$PY" "$RATE" recv connect "$P4" "$port" \
			>"$NK_TMP/r_g$port.log" || fail "capped guest's receive failed"
		wait "$LASTPID" || fail "peer sender failed"
		r=$(grep RESULT "$NK_TMP/r_g$port.log")
		[ "$(field sha256 "$r")" = "$(field sha256 "$(grep RESULT "$NK_TMP/s_p$port.log")")" ] ||
			fail "ingress: sha256 mismatch"
	fi
	[ "$(field bytes "$r")" = "$bytes" ] || fail "$dir: $(field bytes "$r") of $bytes bytes arrived"
	log "$dir: $r"
	capped "$dir at ${cap}M over $(field win_secs "$r") s" "$(field win_mbps "$r")" "$cap"
	at_cap "$dir at ${cap}M" "$(field win_mbps "$r")" $(($(gj ".rate_${dir}_bytes") - b0)) \
		$(($(gj ".rate_${dir}_throttled_ms") - t0)) "$cap"
}

[ "$(gj .rate_tx)" = 60000000 ] && [ "$(gj .rate_rx)" = 60000000 ] ||
	fail "nkctl guests does not show rate=60M: $(nkctl guests --json)"
BYS_BYTES=$((64 << 20))
bystander_start 9400
ticks() { awk '{ print $14 + $15 }' "/proc/$NK_NKD_PID/stat"; }
# 45 MB: 6 s at 60 Mbit/s.
xfer tx 9500 45000000 60
xfer rx 9501 45000000 60
bystander_finish
t0=$(ticks) s0=$(date +%s%N)
xfer tx 9505 30000000 60
log "nkd used $(($(ticks) - t0)) clock ticks ($(getconf CLK_TCK)/s) in $((($(date +%s%N) - s0) / 1000000)) ms of a capped transfer alone (information, not asserted)"
log "bystander (uncapped) transfers intact beside the capped guest"
[ "$(gj .rate_tx_bytes)" -ge 45000000 ] && [ "$(gj .rate_rx_bytes)" -ge 45000000 ] ||
	fail "bucket counters do not count the transfers: $(nkctl guests --json)"
[ "$(gj .rate_tx_throttled_ms)" -gt 1000 ] && [ "$(gj .rate_rx_throttled_ms)" -gt 1000 ] ||
	fail "bucket counters show no throttled time: $(nkctl guests --json)"
nkctl stats | grep -q '^netkernel_guest_rate_rx_bytes_total{guest="capped",nsm="kernel0"} [1-9]' ||
	fail "nkctl stats lacks the capped guest's rate_rx_bytes_total"
log "counters: tx $(gj .rate_tx_bytes) bytes, $(gj .rate_tx_throttled_ms) ms throttled; rx $(gj .rate_rx_bytes) bytes, $(gj .rate_rx_throttled_ms) ms throttled"

# At run time: 30 Mbit/s each way; the guest line itself stays.
out=$(nkctl set capped rate=30M) || fail "nkctl set capped rate=30M: $out"
[ "$(gj .rate_tx)" = 30000000 ] && [ "$(gj .rate_rx)" = 30000000 ] ||
	fail "nkctl guests does not show the new cap: $(nkctl guests --json)"
if out=$(nkctl set capped rate=fast 2>&1); then
	fail "nkctl set accepted rate=fast: $out"
fi
# 22.5 MB: 6 s at 30 Mbit/s.
xfer tx 9502 22500000 30
xfer rx 9503 22500000 30
# On reload too: rate_tx=/rate_rx= from the changed guest line.
sed -i 's/^guest capped .*/guest capped nsm=kernel0 uid=0 rate_tx=20M rate_rx=10M burst=256k/' "$NK_TMP/nkd.conf"
out=$(nkctl reload) || fail "nkctl reload: $out"
[ "$(gj .rate_tx)" = 20000000 ] && [ "$(gj .rate_rx)" = 10000000 ] ||
	fail "reload did not apply rate_tx=20M rate_rx=10M: $(nkctl guests --json)"
# 15 MB: 6 s at 20 Mbit/s.
xfer tx 9504 15000000 20
nk_san_stop
log "ok"
