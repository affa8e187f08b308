#!/usr/bin/env bash
# Hostile input at the afxdp NSM's TCP/IP engine, rootless (unshare -Urn,
# TAP backend): tests/tools/ustack_hostile.py sends random bytes, every
# truncation of Ethernet/IPv4/TCP/UDP/ICMP/ARP headers, bad IHL and
# lengths, wrong checksums, martian sources, broken TCP options, odd flags,
# overlapping and oversized fragments, spoofed ARP, and a real connection
# whose data arrives as overlapping, duplicated, out-of-order segments (the
# echo must be exact). Afterwards the driver must still be alive, answer
# ping, HTTP, TCP and UDP echo, count the drops, and exit cleanly.
# Exit 0 pass, 1 fail, 77 skip.
# timeout: 180
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
DRV=${NK_USTACK_DRV:-$BUILD/tools/ustack_echo}
PEER=$NK_ROOT/tests/tools/ustack_peer.py
HOSTILE=$NK_ROOT/tests/tools/ustack_hostile.py
[ -x "$DRV" ] || fail "missing $DRV (run make)"
[ -c /dev/net/tun ] || skip "no /dev/net/tun on this machine"
{ [ -r /dev/net/tun ] && [ -w /dev/net/tun ]; } ||
	skip "/dev/net/tun is not readable and writable for this user"
command -v curl >/dev/null || skip "curl not installed"
nk_reexec_userns "$@"
ID=$NK_ID
N=$((ID % 200 + 20))
K=10.$N.0.1
E=10.$N.0.2
FAKE=10.$N.0.50
TAP=nkuh$((ID % 100000))
ping3() {
	if command -v ping >/dev/null; then
		timeout 20 ping -c 3 -W 2 "$E" >/dev/null
	else
		timeout 20 "$PY" "$PEER" ping "$E" 3 >/dev/null
	fi
}

ip link set lo up
"$DRV" --backend tap --if "$TAP" --addr "$E/24" --tcp-echo 7 --http 8080 \
	--udp-echo 7 --ready-file "$NK_TMP/ready" --timeout 170 2>"$NK_TMP/drv.log" &
SRV=$!
NK_PIDS+=("$SRV")
wait_file "$NK_TMP/ready" 10 || fail "driver never became ready: $(cat "$NK_TMP/drv.log")"
ip addr add "$K/24" dev "$TAP"
ip link set "$TAP" up
ping3 || fail "no ICMP echo before the attack"
EMAC=$(ip neigh show "$E" dev "$TAP" | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}')
[ -n "$EMAC" ] || fail "engine MAC not learnt by the kernel"
log "engine $E at $EMAC; attacking"

timeout 120 "$PY" "$HOSTILE" "$TAP" "$EMAC" "$E" "$K" "$FAKE" >&2 || {
	alive "$SRV" || fail "driver died under attack: $(tail -5 "$NK_TMP/drv.log")"
	fail "hostile script failed (driver alive)"
}
alive "$SRV" || fail "driver died under attack: $(tail -5 "$NK_TMP/drv.log")"

log "still serving?"
ping3 || fail "no ICMP echo after the attack"
body=$(timeout 20 curl -sS -m 10 "http://$E:8080/") || fail "curl failed after the attack"
[ "$body" = "hello from the netkernel ustack" ] || fail "unexpected body: $body"
timeout 60 "$PY" "$PEER" tcp-echo "$E" 7 $((4 << 20)) >&2 || fail "TCP echo after the attack"
timeout 30 "$PY" "$PEER" udp-echo "$E" 7 14 >&2 || fail "UDP echo after the attack"

kill "$SRV"
rc=0
wait "$SRV" || rc=$?
[ "$rc" = 0 ] || fail "driver exited with $rc: $(tail -5 "$NK_TMP/drv.log")"
LINE=$(grep '^stats:' "$NK_TMP/drv.log" | tail -1)
printf '%s\n' "$LINE" >&2
for k in drop_ip_header drop_ip_length drop_ip_checksum drop_l4_header \
	drop_arp_malformed drop_ethertype rx_martian rx_csum_bad rx_not_ours; do
	v=$(field "$k" "$LINE")
	[ "${v:-0}" -gt 0 ] || fail "counter $k did not move ($LINE)"
done
log "PASS"
