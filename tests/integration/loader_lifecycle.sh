#!/usr/bin/env bash
# nk-loader lifecycle on a veth pair between two namespaces of our own:
# exit codes (usage, not root, no such device, not attached, already
# attached, foreign program, no native XDP on lo), attach native and skb, pins visible to bpftool, status text and
# JSON, the nk_steer_maps API, real traffic (fallback counted with exact
# bytes, ACL drops, a real AF_XDP receive, the kernel still serving ports no
# guest owns), a loader SIGKILLed while alive leaving a working attachment,
# detach leaving no pins and no program, a device deleted under a pinned
# link, the refusal to pin from inside `ip netns exec`, and a default veth
# (1 RX queue in use, ethtool's maximum 2 on a 2-CPU machine) getting
# nr_queues 1: the queues the device uses, not its maximum; and in a
# mount namespace of the test's own without a bpffs, nk-loader mounts one.
#
# The loader runs as `nsenter --net=/run/netns/NS nk-loader ...`: only the
# network namespace changes, /sys/fs/bpf stays the host's bpffs (see
# docs/steering.md, "Namespaces").
# timeout: 120
set -eu
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
T=loader_lifecycle
log() { printf '[%s] %s\n' "$T" "$*" >&2; }
fail() {
	printf '[%s] FAIL: %s\n' "$T" "$*" >&2
	exit 1
}
if [ "$(id -u)" != 0 ]; then
	log "SKIP: needs root (XDP, bpffs, namespaces)"
	exit 77
fi
for c in ip nsenter bpftool python3 timeout; do
	command -v "$c" >/dev/null || { log "SKIP: missing $c"; exit 77; }
done
LOADER=$BUILD/nk-loader
MAPS_TEST=$BUILD/tests-bpf/maps_test
[ -x "$LOADER" ] && [ -x "$MAPS_TEST" ] || fail "missing $LOADER or $MAPS_TEST (run make)"
LOADER=$(realpath "$LOADER")
MAPS_TEST=$(realpath "$MAPS_TEST")

ID=${NK_ID:-$$}
NS=nk-l-$ID # run-all.sh looks for leaked nk-?-ID namespaces
PEER=nk-m-$ID
DEV=nkl$((ID % 100000000))
PDEV=nkp$((ID % 100000000))
PIN=/sys/fs/bpf/netkernel/$(printf '%s' "$DEV" | tr . :)
QDEV=nkr$((ID % 100000000)) # a veth with the kernel's default queues
QPIN=/sys/fs/bpf/netkernel/$QDEV
N=$((ID % 200 + 20))
A=10.251.$N.1
B=10.251.$N.2
TMP=$(mktemp -d "/tmp/nk-$T.XXXXXX")
PIDS=()

cleanup() {
	local rc=$? p
	trap - EXIT INT TERM
	set +e
	for p in "${PIDS[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	if [ -e "$PIN" ]; then
		nsenter --net="/run/netns/$NS" "$LOADER" detach "$DEV" >/dev/null 2>&1 ||
			rm -rf "$PIN"
	fi
	if [ -e "$QPIN" ]; then
		nsenter --net="/run/netns/$NS" "$LOADER" detach "$QDEV" >/dev/null 2>&1 ||
			rm -rf "$QPIN"
	fi
	rm -f "/sys/fs/bpf/nk-foreign-$ID"
	ip netns del "$NS" 2>/dev/null
	ip netns del "$PEER" 2>/dev/null
	[ "$rc" = 0 ] || { for f in "$TMP"/*.out; do [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done >&2; }
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

L() { timeout -k 2 20 nsenter --net="/run/netns/$NS" "$LOADER" "$@"; }
# expect_rc WANT CMD...: run CMD, its exit status must be WANT
expect_rc() {
	local want=$1 rc=0
	shift
	"$@" >"$TMP/last.out" 2>&1 || rc=$?
	[ "$rc" = "$want" ] || fail "'$*' exited $rc, want $want: $(cat "$TMP/last.out")"
}
json() { L status "$DEV" --json >"$TMP/status.json" || fail "status --json failed"; }
# jq-like read of status.json with python: jget 'd["guests"]...'
jget() { python3 -c "import json,sys; d=json.load(open('$TMP/status.json')); print($1)"; }
guest() { # guest ID FIELD: a per-guest counter from status.json (0 if absent)
	jget "next((g$2 for g in d['guests'] if g['id']==$1), 0)"
}
# send PORT COUNT: COUNT one-byte UDP datagrams from the peer to A:PORT
send() {
	ip netns exec "$PEER" python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range($2):
    s.sendto(b'x', ('$A', $1))
"
	sleep 0.3
}
FRAME=$((14 + 20 + 8 + 1)) # eth + ipv4 + udp + 1 byte, no FCS, no padding on veth

# ---------------------------------------------------------------- topology
ip netns add "$NS"
ip netns add "$PEER"
ip -n "$NS" link add "$DEV" numrxqueues 1 numtxqueues 1 type veth \
	peer name "$PDEV" numrxqueues 1 numtxqueues 1 netns "$PEER"
ip -n "$NS" addr add "$A/24" dev "$DEV"
ip -n "$PEER" addr add "$B/24" dev "$PDEV"
ip -n "$NS" link set lo up
ip -n "$PEER" link set lo up
ip -n "$NS" link set "$DEV" up
ip -n "$PEER" link set "$PDEV" up
# static neighbours: no ARP noise in the counters
MAC_A=$(ip -n "$NS" -br link show "$DEV" | awk '{print $3}')
MAC_B=$(ip -n "$PEER" -br link show "$PDEV" | awk '{print $3}')
ip -n "$PEER" neigh replace "$A" lladdr "$MAC_A" dev "$PDEV" nud permanent
ip -n "$NS" neigh replace "$B" lladdr "$MAC_B" dev "$DEV" nud permanent
# no IPv6 autoconf chatter either
ip netns exec "$NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
ip netns exec "$PEER" sysctl -qw net.ipv6.conf.all.disable_ipv6=1

# ---------------------------------------------------------------- errors
expect_rc 0 "$LOADER" --help
expect_rc 2 "$LOADER" frobnicate
expect_rc 2 "$LOADER" attach
expect_rc 2 "$LOADER" attach "$DEV" --mode turbo
expect_rc 4 L attach "nodev$ID"
grep -q "no such device" "$TMP/last.out" || fail "no clear 'no such device' message"
expect_rc 7 L detach "$DEV"
expect_rc 7 L status "$DEV"
if command -v setpriv >/dev/null; then
	expect_rc 3 setpriv --reuid=65534 --regid=65534 --clear-groups "$LOADER" attach "$DEV"
	grep -q "root" "$TMP/last.out" || fail "no clear 'not root' message"
fi
# lo has no driver-mode XDP: "kernel or driver lacks support" (pins are
# keyed by name: skipped if some other namespace's lo is attached)
if [ ! -e /sys/fs/bpf/netkernel/lo ]; then
	expect_rc 6 L attach lo --mode native
	grep -q "lacks support" "$TMP/last.out" || fail "no clear 'lacks support' message"
	[ ! -e /sys/fs/bpf/netkernel/lo ] || fail "pins left after a failed attach on lo"
fi
log "error exit codes ok"

# a foreign XDP program on the device: refused with 'already attached'
bpftool prog load "$BUILD/bpf/nk_steer.bpf.o" "/sys/fs/bpf/nk-foreign-$ID" type xdp
nsenter --net="/run/netns/$NS" bpftool net attach xdpgeneric pinned "/sys/fs/bpf/nk-foreign-$ID" dev "$DEV"
expect_rc 5 L attach "$DEV"
grep -q "already has an XDP program" "$TMP/last.out" || fail "foreign program: $(cat "$TMP/last.out")"
nsenter --net="/run/netns/$NS" bpftool net detach xdpgeneric dev "$DEV"
rm -f "/sys/fs/bpf/nk-foreign-$ID"
[ ! -e "$PIN" ] || fail "pins left after a refused attach"
log "foreign program refused"

# ---------------------------------------------------------------- attach native
expect_rc 0 L attach "$DEV" --mode native
ip -n "$NS" link show "$DEV" | grep -qw xdp || fail "no native xdp on $DEV after attach"
for m in link nk_endpoints nk_flows nk_xsks nk_nsm_addrs nk_guest_cfg nk_acl \
	nk_guest_stats nk_exit_stats nk_knobs; do
	[ -e "$PIN/$m" ] || fail "missing pin $PIN/$m"
done
for m in nk_endpoints nk_exit_stats nk_guest_cfg nk_knobs; do
	bpftool map dump pinned "$PIN/$m" >/dev/null || fail "bpftool map dump pinned $PIN/$m"
done
bpftool map dump pinned "$PIN/nk_knobs" | grep -q '"nr_queues": 1' || fail "knobs not visible through bpftool"
bpftool link show pinned "$PIN/link" >"$TMP/link.out" || fail "bpftool link show pinned"
PROG_ID=$(awk '/prog/ {for (i = 1; i < NF; i++) if ($i == "prog") print $(i + 1)}' "$TMP/link.out" | head -n1)
[ -n "$PROG_ID" ] || fail "no prog id in: $(cat "$TMP/link.out")"
log "attached native, prog $PROG_ID, pins visible to bpftool"

L status "$DEV" >"$TMP/status.out" || fail "status"
grep -q "^$DEV: attached, mode native, prog id $PROG_ID" "$TMP/status.out" ||
	fail "status text: $(cat "$TMP/status.out")"
L status >"$TMP/status_all.out" || fail "status (all)"
grep -q "^$DEV: attached" "$TMP/status_all.out" || fail "status without DEV misses $DEV"
json
[ "$(jget 'd["dev"]')" = "$DEV" ] || fail "json dev"
[ "$(jget 'd["attached"]')" = True ] || fail "json attached"
[ "$(jget 'd["mode"]')" = native ] || fail "json mode"
[ "$(jget 'd["prog_id"]')" = "$PROG_ID" ] || fail "json prog_id"
L status --json | python3 -c "import json,sys; l=json.load(sys.stdin); assert any(x['dev']=='$DEV' for x in l)" ||
	fail "status --json (all) is not a JSON list containing $DEV"
log "status text and json ok"

expect_rc 5 L attach "$DEV"
grep -q "already attached" "$TMP/last.out" || fail "attach twice: $(cat "$TMP/last.out")"
log "second attach refused (exit 5)"

# ---------------------------------------------------------------- maps API + traffic
nsenter --net="/run/netns/$NS" "$MAPS_TEST" api "$DEV" >"$TMP/api.out" 2>&1 || fail "maps_test api: $(cat "$TMP/api.out")"
nsenter --net="/run/netns/$NS" "$MAPS_TEST" setup "$DEV" 9999 9998 >"$TMP/setup.out" 2>&1 ||
	fail "maps_test setup: $(cat "$TMP/setup.out")"

# guest 3 owns :9999 but has no XSK: counted as xsk_miss, handed to the kernel
send 9999 10
# guest 4 owns :9998 with an empty allow-list: every datagram dropped
send 9998 7
json
[ "$(guest 3 "['xsk_miss']")" = 10 ] || fail "guest 3 xsk_miss $(guest 3 "['xsk_miss']"), want 10"
[ "$(guest 3 "['xsk_miss_bytes']")" = $((10 * FRAME)) ] || fail "guest 3 bytes $(guest 3 "['xsk_miss_bytes']"), want $((10 * FRAME))"
[ "$(guest 4 "['drops']['acl_not_allowed']")" = 7 ] || fail "guest 4 ACL drops $(guest 4 "['drops']['acl_not_allowed']"), want 7"
[ "$(guest 4 "['drop_bytes']")" = $((7 * FRAME)) ] || fail "guest 4 drop bytes"
[ "$(jget 'd["exits"]["drop_acl"]["packets"]')" = 7 ] || fail "exit drop_acl counter"
log "counters match the traffic (fallback 10 x $FRAME B, ACL drops 7)"

# the hybrid: a kernel socket on a port no guest owns still gets its data
ip netns exec "$NS" timeout 10 python3 -c "
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$A', 9996)); s.settimeout(8)
open('$TMP/kready', 'w').close()
print(s.recvfrom(100)[0].decode())
" >"$TMP/kernel.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -e "$TMP/kready" ] && break; sleep 0.1; done
send 9996 1
wait "${PIDS[-1]}" || fail "kernel UDP server got nothing: $(cat "$TMP/kernel.out")"
grep -qx x "$TMP/kernel.out" || fail "kernel server output: $(cat "$TMP/kernel.out")"
log "port owned by no guest still served by the kernel"

# a real AF_XDP socket in slot 0 of queue 0 receives guest 2's frames
nsenter --net="/run/netns/$NS" timeout 20 "$MAPS_TEST" xsk "$DEV" 9997 5 10 >"$TMP/xsk.out" 2>&1 &
XPID=$!
PIDS+=($XPID)
for _ in $(seq 50); do grep -q ready "$TMP/xsk.out" && break; sleep 0.1; done
grep -q ready "$TMP/xsk.out" || fail "xsk receiver not ready: $(cat "$TMP/xsk.out")"
send 9997 5
wait "$XPID" || fail "AF_XDP receive: $(cat "$TMP/xsk.out")"
json
[ "$(guest 2 "['packets']")" = 5 ] || fail "guest 2 redirected $(guest 2 "['packets']"), want 5"
[ "$(guest 2 "['bytes']")" = $((5 * FRAME)) ] || fail "guest 2 bytes"
log "AF_XDP socket received 5 steered frames; counters agree"

# ---------------------------------------------------------------- detach
expect_rc 0 L detach "$DEV"
[ ! -e "$PIN" ] || fail "pins left after detach: $(ls "$PIN")"
ip -n "$NS" link show "$DEV" | grep -q xdp && fail "program still on $DEV after detach"
bpftool prog show id "$PROG_ID" >/dev/null 2>&1 && fail "prog $PROG_ID still loaded after detach"
ls /sys/fs/bpf/netkernel-staging 2>/dev/null | grep -q "^$DEV:" && fail "staging leftovers"
log "detach: no pins, no program"

# ---------------------------------------------------------------- SIGKILL
NK_LOADER_TEST_HOLD=30 nsenter --net="/run/netns/$NS" "$LOADER" attach "$DEV" --mode skb >"$TMP/hold.out" 2>&1 &
HPID=$!
PIDS+=($HPID)
for _ in $(seq 100); do grep -q attached "$TMP/hold.out" && break; sleep 0.1; done
grep -q attached "$TMP/hold.out" || fail "held loader did not attach: $(cat "$TMP/hold.out")"
kill -0 "$HPID" 2>/dev/null || fail "held loader already gone"
kill -KILL "$HPID"
wait "$HPID" 2>/dev/null || true
ip -n "$NS" link show "$DEV" | grep -qw xdpgeneric || fail "attachment gone with the killed loader"
json
[ "$(jget 'd["mode"]')" = skb ] || fail "json mode after skb attach: $(jget 'd["mode"]')"
before=$(jget 'd["exits"]["pass_no_match"]["packets"]')
send 9995 4
json
after=$(jget 'd["exits"]["pass_no_match"]["packets"]')
[ "$after" -ge $((before + 4)) ] || fail "program not running after loader SIGKILL ($before -> $after)"
expect_rc 0 L detach "$DEV"
[ ! -e "$PIN" ] || fail "pins left"
ip -n "$NS" link show "$DEV" | grep -q xdp && fail "program left after detach"
log "SIGKILLed loader left a working attachment; detach removed it"

# ---------------------------------------------------------------- ip netns exec is refused
expect_rc 1 timeout 20 ip netns exec "$NS" "$LOADER" attach "$DEV"
grep -q nsenter "$TMP/last.out" || fail "no nsenter hint: $(cat "$TMP/last.out")"
ip -n "$NS" link show "$DEV" | grep -q xdp && fail "ip netns exec attach left a program"
log "attach from ip netns exec refused with a hint"

# ---------------------------------------------------------------- queues in use, not the maximum
ip -n "$NS" link add "$QDEV" type veth peer name "${QDEV}p" netns "$PEER"
ip -n "$NS" link set "$QDEV" up
inuse=$(ip netns exec "$NS" ethtool -l "$QDEV" 2>/dev/null | awk '/^Current/ {c = 1} c && /^RX:/ {print $2; exit}')
most=$(ip netns exec "$NS" ethtool -l "$QDEV" 2>/dev/null | awk '/^RX:/ {print $2; exit}')
log "default veth: RX queues in use ${inuse:-?}, maximum ${most:-?}"
expect_rc 0 L attach "$QDEV" --mode skb
grep -q "1 queue\b" "$TMP/last.out" || fail "attach on a 1-queue veth: $(cat "$TMP/last.out")"
bpftool map dump pinned "$QPIN/nk_knobs" | grep -q '"nr_queues": 1,' ||
	fail "nr_queues on a 1-queue veth: $(bpftool map dump pinned "$QPIN/nk_knobs" | grep nr_queues)"
expect_rc 0 L detach "$QDEV"
log "a default veth gets nr_queues 1 (its maximum is ${most:-?})"

# ---------------------------------------------------------------- no bpffs: nk-loader mounts one
# A fresh machine, safely: a mount namespace of our own (with its own pid
# namespace, so that its pid 1 shares it and nk-loader does not take it for
# `ip netns exec`'s) where /sys/fs/bpf is unmounted. The host's bpffs and
# its pins are untouched; whatever we pin dies with the namespace.
if command -v unshare >/dev/null && command -v stat >/dev/null; then
	rc=0
	# shellcheck disable=SC2016  # expanded by sh -c
	unshare -m --propagation private --pid --fork --mount-proc sh -c '
		while [ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ]; do
			umount /sys/fs/bpf || exit 9
		done
		echo "before: $(stat -f -c %T /sys/fs/bpf)"
		nsenter --net="/run/netns/$1" "$2" attach "$3" --mode skb || exit 10
		echo "after: $(stat -f -c %T /sys/fs/bpf)"
		"$2" status "$3" >/dev/null || exit 11
		[ -e "/sys/fs/bpf/netkernel/$3/link" ] || exit 12
		nsenter --net="/run/netns/$1" "$2" detach "$3" || exit 13
	' _ "$NS" "$LOADER" "$QDEV" >"$TMP/bpffs.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || fail "attach without a bpffs (exit $rc): $(cat "$TMP/bpffs.out")"
	grep -q "^before: sysfs" "$TMP/bpffs.out" || fail "bpffs still mounted in the test's namespace: $(cat "$TMP/bpffs.out")"
	grep -q "^after: bpf_fs" "$TMP/bpffs.out" || fail "nk-loader did not mount a bpffs: $(cat "$TMP/bpffs.out")"
	grep -q "mounted a bpffs on /sys/fs/bpf" "$TMP/bpffs.out" || fail "nk-loader did not say it mounted: $(cat "$TMP/bpffs.out")"
	[ "$(stat -f -c %T /sys/fs/bpf)" = bpf_fs ] || fail "the host's bpffs is gone"
	ip -n "$NS" link show "$QDEV" | grep -q xdp && fail "program left on $QDEV"
	log "no bpffs in a fresh mount namespace: nk-loader mounted one and said so"
else
	log "unshare or stat missing: bpffs mount not checked"
fi

# ---------------------------------------------------------------- device deleted
expect_rc 0 L attach "$DEV"
ip -n "$NS" link del "$DEV"
L status "$DEV" >"$TMP/status.out" || fail "status after device deletion"
grep -q "link defunct" "$TMP/status.out" || fail "status: $(cat "$TMP/status.out")"
expect_rc 0 L detach "$DEV"
[ ! -e "$PIN" ] || fail "pins left after detaching a deleted device"
log "deleted device: status says defunct, detach cleans up"
log PASS
