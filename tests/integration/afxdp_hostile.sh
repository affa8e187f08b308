#!/usr/bin/env bash
# Hostile input from the wire at nkd's afxdp NSM (issue 3: malformed frames
# from the peer never crash nkd), with the ASan+UBSan build of nkd when
# there is one. A guest on the afxdp NSM serves TCP and UDP echo on port 7
# at the NSM's address; from P, tests/tools/ustack_hostile.py sends random
# bytes, every truncation of Ethernet/IPv4/TCP/UDP/ICMP/ARP, bad IHL and
# lengths, wrong checksums, martian sources, broken TCP options, odd flags,
# fragments and spoofed ARP at H's veth end (the device the NSM owns, behind
# nk_steer), then runs a real TCP connection from an unused address whose
# data arrives as overlapping, duplicated, out-of-order segments (the echo
# must be exact). Afterwards nkd must be alive, answer nkctl, the guest
# must still echo TCP and UDP with the data checked, nk_steer's counters
# must show the malformed frames refused (left to the kernel) and the
# guest's source ACL drops, and nkd must stop on SIGTERM with exit 0 and no
# sanitizer report.
# Exit 0 pass, 1 fail, 77 skip.
# timeout: 85
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_netkernel
need_cmd nsenter bpftool jq
need_nk "$NK_LOADER"
HOSTILE=$NK_ROOT/tests/tools/ustack_hostile.py
[ -r "$HOSTILE" ] || fail "missing $HOSTILE"
if [ -x "$BUILD/san/nkd" ]; then
	NKD=$BUILD/san/nkd
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=67
else
	log "no $BUILD/san/nkd: running the plain nkd (no sanitizer checks)"
fi
FAKE=10.$NK_N.0.50
NK_CMD_TIMEOUT=30

san_check() {
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$NK_TMP/nkd.log"; then
		grep -E -A30 'AddressSanitizer|LeakSanitizer|runtime error' "$NK_TMP/nkd.log" | head -60 >&2
		fail "sanitizer report from nkd ($NKD) $1"
	fi
}
nkd_dead() {
	san_check "$1"
	tail -n 30 "$NK_TMP/nkd.log" >&2
	fail "nkd died $1"
}

afxdp_up
# The guest refuses 127.0.0.0/8 in XDP: the generator's loopback-sourced
# SYNs to port 7 are then dropped by nk_steer and counted (xdp_drops); the
# other martians still reach the engine.
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0 acl_deny=127.0.0.0/8
CONF
start_nkd_afxdp "$NK_TMP/nkd.conf"

# TCP echo with blocking sockets, a thread per connection (thread_echo_py:
# nkpy's asyncio echo-server would miss the peer's FIN on this NSM, and the
# generator's stream check, which waits for the FIN, would fail for that
# reason instead of the hostile input).
thread_echo_py 7
bg_guest echo_tcp "$PY" "$NK_TMP/techo.py"
wait_for 20 nk_guest_listening 7 || fail "guest TCP echo not listening on 7"
# UDP echo: enough datagrams for the checks before and after the attack
# and the generator's well-formed UDP probes (the server exits after that
# many, or after 30 s without any).
bg_guest echo_udp "$PY" "$HELPERS/nkpy.py" udp-echo-server 0.0.0.0 7 100000
UDPPID=$LASTPID

# serving WHEN SEED: from P, TCP echo (2 x 256 KiB) and 20 UDP datagrams of
# up to 1472 bytes (nk_steer leaves IP fragments to the kernel), each echo
# compared.
serving() {
	local r
	r=$(run_peer "$PY" "$HELPERS/nkpy.py" echo-client "$X4" 7 2 $((256 << 10)) "$2") ||
		fail "TCP echo from P to the guest failed $1"
	log "$1: $r"
	alive "$UDPPID" || fail "guest UDP echo server gone $1: $(cat "$NK_TMP/echo_udp.log")"
	r=$(run_peer "$PY" "$HELPERS/nkpy.py" udp-client "$X4" 7 20 "$2" 1472) ||
		fail "UDP echo from P to the guest failed $1"
	log "$1: $r"
}
wait_for 20 run_peer "$PY" "$HELPERS/nkpy.py" connect "$X4" 7 ||
	fail "guest echo not reachable at $X4:7"
serving "before the attack" 1

EMAC=$(ip -n "$NS_H" -j link show "$NK_XDEV" | jq -r '.[0].address')
case $EMAC in "" | null) fail "no MAC for $NK_XDEV" ;; esac
log "NSM $X4 at $EMAC (H's $NK_XDEV); attacking from P as $FAKE"
xdp_json() { nsenter --net="/run/netns/$NS_H" "$NK_LOADER" status "$NK_XDEV" --json; }
xdp_json >"$NK_TMP/xdp0.json" || fail "nk-loader status failed"

rc=0
timeout -k 5 45 ip netns exec "$NS_P" "$PY" "$HOSTILE" --seq-after-fin nkp "$EMAC" "$X4" "$P4" "$FAKE" \
	>"$NK_TMP/hostile.out" 2>&1 || rc=$?
# (--seq-after-fin: without it the generator's ACKs after its FIN are old
# segments that lwIP answers each with an ACK, which the generator ACKs
# again: a loop at full speed until the guest's FIN, which comes through
# nkd later than from the engine's own echo in ustack_hostile.sh.)
cat "$NK_TMP/hostile.out" >&2
nkd_alive || nkd_dead "under the attack"
[ "$rc" = 0 ] || fail "hostile generator failed (exit $rc; nkd alive)"
grep -q 'bytes echoed intact through overlapping' "$NK_TMP/hostile.out" ||
	fail "the overlapping-segment stream check did not run"

log "still serving?"
nkctl status --json >"$NK_TMP/status.json" || fail "nkctl status failed after the attack"
jq -e '.pid > 0' "$NK_TMP/status.json" >/dev/null || fail "nkctl status JSON: $(cat "$NK_TMP/status.json")"
serving "after the attack" 2
nkd_alive || nkd_dead "after the attack"

# nk_steer: the malformed frames were left to the kernel (never steered to
# the NSM), the ACL dropped the loopback-sourced ones; the guest counted
# redirected frames and drops.
xdp_json >"$NK_TMP/xdp1.json" || fail "nk-loader status failed"
jq -c . "$NK_TMP/xdp1.json" >&2
nkctl guests >&2
j=$(nkctl guests --json) || fail "nkctl guests failed"
pk=$(printf '%s' "$j" | jq ".guests[] | select(.name == \"$GUEST\") | .xdp_packets")
dr=$(printf '%s' "$j" | jq ".guests[] | select(.name == \"$GUEST\") | .xdp_drops")
[ "${pk:-0}" -gt 0 ] || fail "no XDP packets counted for $GUEST"
[ "${dr:-0}" -gt 0 ] || fail "no XDP (ACL) drops counted for $GUEST"
log "guest $GUEST: xdp_packets=$pk xdp_drops=$dr"
exits() { # FILE: "name packets" per exit path
	jq -r '.exits // {} | to_entries[] | "\(.key) \(.value.packets)"' "$1"
}
exits "$NK_TMP/xdp0.json" >"$NK_TMP/exits0"
exits "$NK_TMP/xdp1.json" >"$NK_TMP/exits1"
moved() { # NAME: the exit counter grew during the attack
	local a b
	a=$(awk -v k="$1" '$1 == k {s += $2} END {print s + 0}' "$NK_TMP/exits0")
	b=$(awk -v k="$1" '$1 == k {s += $2} END {print s + 0}' "$NK_TMP/exits1")
	[ "$b" -gt "$a" ] || fail "nk_steer exit counter $1 did not move ($a -> $b)"
	log "nk_steer $1: +$((b - a))"
}
# (Frames shorter than an Ethernet header never reach XDP: AF_PACKET pads
# them to 14 bytes.)
for k in pass_l3_other pass_trunc_arp pass_trunc_ip4 pass_trunc_l4 pass_bad_ip4 \
	pass_bad_ip6 pass_frag pass_frag_first drop_acl redirect_arp redirect_icmp redirect_ep; do
	moved "$k"
done

# Clean shutdown under the sanitizers: no report, no leak, exit 0.
kill -TERM "$NK_NKD_PID"
rc=0
wait "$NK_NKD_PID" || rc=$?
NK_NKD_PID=
san_check "after SIGTERM"
[ "$rc" = 0 ] || fail "nkd exited with $rc after SIGTERM"
log "ok"
