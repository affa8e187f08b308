#!/usr/bin/env bash
# iperf3 in a NIC-less guest through nkd, against an iperf3 server in P,
# 3 s each direction (guest sends, then -R: guest receives). Checks that data
# moved and iperf3 reported no error; the rate is printed, never asserted.
# timeout: 90
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_cmd iperf3 jq
topo_up
start_nkd

for dir in send recv; do
	port=$((5201 + ${#dir}))
	bg_peer "iperf_s_$dir" iperf3 -s -1 -B "$P4" -p "$port"
	wait_port "$NS_P" "$port"
	extra=()
	[ "$dir" = recv ] && extra=(-R)
	run_guest iperf3 -c "$P4" -p "$port" -t 3 -J "${extra[@]}" >"$NK_TMP/iperf_$dir.json" ||
		{ cat "$NK_TMP/iperf_$dir.json" >&2; fail "iperf3 ($dir) exited with an error"; }
	err=$(jq -r '.error // empty' "$NK_TMP/iperf_$dir.json")
	[ -z "$err" ] || fail "iperf3 ($dir): $err"
	bytes=$(jq -r '.end.sum_received.bytes' "$NK_TMP/iperf_$dir.json")
	rate=$(jq -r '.end.sum_received.bits_per_second / 1e9 | . * 100 | floor / 100' "$NK_TMP/iperf_$dir.json")
	[ "${bytes:-0}" -gt 0 ] || fail "iperf3 ($dir) moved no data"
	log "$dir: $bytes bytes received, $rate Gbit/s"
done
log "ok"
