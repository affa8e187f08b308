#!/usr/bin/env bash
# 1 GiB each direction between a NIC-less guest and the peer, verified by
# SHA-256 of the stream at both ends (tests/tools/nk_stream.c):
#  - guest connects and sends, peer listens and receives;
#  - guest listens and receives, peer connects and sends.
# NK_BULK_BYTES overrides the size (default 1 GiB).
# timeout: 300
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
[ -x "$TOOLS/nk_stream" ] || fail "missing $TOOLS/nk_stream (run make)"
topo_up
start_nkd
BYTES=${NK_BULK_BYTES:-$((1 << 30))}
NK_CMD_TIMEOUT=240

check() { # what sender-line receiver-line
	[ "$(field bytes "$3")" = "$BYTES" ] || fail "$1: receiver got $(field bytes "$3") of $BYTES bytes"
	[ "$(field sha256 "$2")" = "$(field sha256 "$3")" ] ||
		fail "$1: sha256 mismatch: sent $(field sha256 "$2") received $(field sha256 "$3")"
	log "$1: $BYTES bytes, sha256 $(field sha256 "$3" | cut -c1-16)..., $(field gbps "$3") Gbit/s"
}

log "guest -> peer"
bg_peer recv_p "$TOOLS/nk_stream" recv listen "$P4" 9100
rp=$LASTPID
wait_port "$NS_P" 9100
s=$(run_guest "$TOOLS/nk_stream" send connect "$P4" 9100 "$BYTES" 11) || fail "guest sender failed"
wait "$rp" || fail "peer receiver failed"
check "guest->peer" "$(grep RESULT <<<"$s")" "$(grep RESULT "$NK_TMP/recv_p.log")"

log "peer -> guest"
bg_guest recv_g "$TOOLS/nk_stream" recv listen 0.0.0.0 9101
rg=$LASTPID
wait_port "$NS_H" 9101 20
s=$(run_peer "$TOOLS/nk_stream" send connect "$H4" 9101 "$BYTES" 12) || fail "peer sender failed"
wait "$rg" || fail "guest receiver failed"
check "peer->guest" "$(grep RESULT <<<"$s")" "$(grep RESULT "$NK_TMP/recv_g.log")"
log "ok"
