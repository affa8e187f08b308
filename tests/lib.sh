# shellcheck shell=bash
# Shared helpers for netkernel integration tests, the demo and the bench.
# Source it from a bash script that runs with `set -eu`:
#
#   . "$(dirname "$0")/../lib.sh"
#   need_netns "$@"    # own user and network namespaces: no privilege
#   topo_up            # namespaces H (nkd), P (peer), G (NIC-less guest)
#   start_nkd          # nkd in H, socket in $NK_TMP
#   run_guest curl ... # a program in G through nkd
#
# Everything is named after this run ($NK_ID) so two runs never collide,
# every wait is bounded, and an EXIT trap removes namespaces, processes and
# the temp dir even when the test fails.
#
# Topology (root):
#
#   G (lo only) --AF_UNIX ctl + shared memory--> nkd in H
#   H  nkh <== veth ==> nkp  P
#      10.N.0.1/24          10.N.0.2/24
#      fd00:N::1/64         fd00:N::2/64
#
# Exit codes: 0 pass, 1 fail, 77 skip.
#
# NK_NATIVE=1 runs the "guest" programs natively in H instead (no nkd): a
# check of the tests themselves and of the topology, not of netkernel.
# shellcheck disable=SC2034,SC2119,SC2120  # variables and helpers for sourcers

NK_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$NK_ROOT/build}
case $BUILD in /*) ;; *) BUILD=$NK_ROOT/$BUILD ;; esac
NKD=$BUILD/nkd
NKCTL=$BUILD/nkctl
NKRUN=$BUILD/nkrun
NKSHIM=$BUILD/libnkshim.so
TOOLS=$BUILD/tools
# Debian's interpreter, not whatever a version manager puts first in PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
HELPERS=$NK_ROOT/tests/tools

NK_ID=${NK_ID:-$$}
NK_N=$((NK_ID % 200 + 20))
NS_H=nk-h-$NK_ID
NS_P=nk-p-$NK_ID
NS_G=nk-g-$NK_ID
H4=10.$NK_N.0.1
P4=10.$NK_N.0.2
H6=fd00:$NK_N::1
P6=fd00:$NK_N::2
GUEST=${GUEST:-g1}
NK_TMP=$(mktemp -d "/tmp/nk-test-$NK_ID.XXXXXX")
NK_SOCK=$NK_TMP/nkd.sock
NK_NKD_PID=
NK_PIDS=()
NK_PGIDS=()
NK_NETNS=()
NK_ETC_NETNS=()
TNAME=$(basename "$0" .sh)

log() { printf '[%s] %s\n' "$TNAME" "$*" >&2; }
fail() {
	printf '[%s] FAIL: %s\n' "$TNAME" "$*" >&2
	exit 1
}
skip() {
	printf '[%s] SKIP: %s\n' "$TNAME" "$*" >&2
	exit 77
}
need_root() { [ "$(id -u)" = 0 ] || skip "needs root (BPF/XDP or several real uids; docs/testing.md)"; }
need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "missing program: $c"
	done
}
# The netkernel binaries are products of `make`; their absence is a failure
# of the build, not a reason to skip.
need_nk() {
	local f
	[ -n "${NK_NATIVE:-}" ] && return 0
	for f in "$NKD" "$NKCTL" "$NKRUN" "$NKSHIM" "$@"; do
		[ -e "$f" ] || fail "missing $f (run make)"
	done
}

# ---------------------------------------------------------------- cleanup

# Kill one pid: TERM, wait up to 2 s, then KILL.
nk_stop() {
	local pid=$1 i
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 20); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

nk_cleanup() {
	local rc=$? pid ns
	trap - EXIT INT TERM
	set +e
	if [ "$rc" != 0 ] && [ "$rc" != 77 ] && [ -z "${NK_QUIET_LOGS:-}" ]; then
		for f in "$NK_TMP"/*.log; do
			[ -s "$f" ] || continue
			printf -- '--- %s (last 20 lines)\n' "$(basename "$f")" >&2
			tail -n 20 "$f" >&2
		done
	fi
	for ((i = ${#NK_PIDS[@]} - 1; i >= 0; i--)); do
		nk_stop "${NK_PIDS[i]}"
	done
	for pid in "${NK_PGIDS[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null
	done
	[ ${#NK_PGIDS[@]} -gt 0 ] && sleep 0.5
	for pid in "${NK_PGIDS[@]}"; do
		kill -KILL -- "-$pid" 2>/dev/null
	done
	# Anything still living in our namespaces (children of guests, servers
	# that daemonised) dies with them.
	for ns in "${NK_NETNS[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
	done
	for ns in "${NK_NETNS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	for d in "${NK_ETC_NETNS[@]}"; do
		rm -rf "/etc/netns/$d"
	done
	rm -rf "$NK_TMP"
	exit "$rc"
}
trap nk_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------- processes

# bg NAME CMD...: start CMD in the background, output to $NK_TMP/NAME.log;
# its pid is in $LASTPID and is killed at cleanup.
bg() {
	local name=$1
	shift
	"$@" >"$NK_TMP/$name.log" 2>&1 &
	LASTPID=$!
	NK_PIDS+=("$LASTPID")
}

# bg_group NAME CMD...: like bg, but CMD leads a new session; cleanup kills
# the whole process group (for shells that start several programs).
bg_group() {
	local name=$1
	shift
	setsid "$@" >"$NK_TMP/$name.log" 2>&1 &
	LASTPID=$!
	NK_PGIDS+=("$LASTPID")
}

# ---------------------------------------------------------------- waiting

# wait_for SECONDS CMD...: poll CMD every 0.1 s until it succeeds.
wait_for() {
	local t=$1 i
	shift
	for ((i = 0; i < t * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}

# wait_file PATH [SECONDS]: the path exists (file or socket).
wait_file() { wait_for "${2:-10}" test -e "$1"; }

nk_port_listening() { # NS PROTO(tcp|udp) PORT
	local opt=-Hltn
	[ "$2" = udp ] && opt=-Hlun
	[ -n "$(ip netns exec "$1" ss $opt "sport = :$3" 2>/dev/null)" ]
}
# wait_port NS PORT [SECONDS] [tcp|udp]: something listens on PORT in NS.
# A guest's listening socket lives in H, where its NSM is.
wait_port() {
	wait_for "${3:-10}" nk_port_listening "$1" "${4:-tcp}" "$2" ||
		fail "nothing listening on port $2 in $1 after ${3:-10}s"
}

# ---------------------------------------------------------------- topology

nk_netns_add() {
	ip netns add "$1"
	NK_NETNS+=("$1")
	ip -n "$1" link set lo up
}

nk_link_up() { ip -n "$1" link show "$2" 2>/dev/null | grep -q LOWER_UP; }

# topo_up: H and P joined by a veth (IPv4 + IPv6), G with only lo.
topo_up() {
	nk_netns_add "$NS_H"
	nk_netns_add "$NS_P"
	nk_netns_add "$NS_G"
	ip link add nkh netns "$NS_H" type veth peer name nkp netns "$NS_P"
	ip -n "$NS_H" addr add "$H4/24" dev nkh
	ip -n "$NS_P" addr add "$P4/24" dev nkp
	ip -n "$NS_H" addr add "$H6/64" dev nkh nodad
	ip -n "$NS_P" addr add "$P6/64" dev nkp nodad
	ip -n "$NS_H" link set nkh up
	ip -n "$NS_P" link set nkp up
	wait_for 5 nk_link_up "$NS_H" nkh || fail "veth in $NS_H not up"
	wait_for 5 nk_link_up "$NS_P" nkp || fail "veth in $NS_P not up"
}

# topo_add_native NAME: another namespace with its own veth to P
# (10.N.1.1 <-> 10.N.1.2), the "native kernel path" of the bench.
topo_add_native() { topo_veth_to_p "$1" nkn nkq 1; }

# topo_veth_to_p NS DEV PDEV OCTET: namespace NS with a veth DEV to P
# (PDEV there), 10.N.OCTET.1/24 in NS <-> 10.N.OCTET.2/24 in P, both ends
# set up (not waited for): the bench's native twins of its guests.
topo_veth_to_p() {
	nk_netns_add "$1"
	ip link add "$2" netns "$1" type veth peer name "$3" netns "$NS_P"
	ip -n "$1" addr add "10.$NK_N.$4.1/24" dev "$2"
	ip -n "$NS_P" addr add "10.$NK_N.$4.2/24" dev "$3"
	ip -n "$1" link set "$2" up
	ip -n "$NS_P" link set "$3" up
}

# set_resolv NS NAMESERVER: /etc/resolv.conf inside `ip netns exec NS`.
set_resolv() {
	# In need_netns's user namespace only when /etc/netns existed.
	mkdir -p "/etc/netns/$1" 2>/dev/null ||
		skip "cannot write /etc/netns (rootless: mkdir /etc/netns as root once)"
	NK_ETC_NETNS+=("$1")
	printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$2" \
		>"/etc/netns/$1/resolv.conf"
}

# ---------------------------------------------------------------- nkd

# Tests that look at nkd itself (nkctl, faults) cannot run natively.
need_netkernel() { [ -z "${NK_NATIVE:-}" ] || skip "NK_NATIVE=1: test needs nkd"; }

# start_nkd [CONFIG]: nkd in H, ready when its socket exists.
start_nkd() {
	local cfgopt=()
	[ -n "${NK_NATIVE:-}" ] && return 0
	[ $# -gt 0 ] && cfgopt=(--config "$1")
	need_nk
	bg nkd ip netns exec "$NS_H" "$NKD" --socket "$NK_SOCK" "${cfgopt[@]}"
	NK_NKD_PID=$LASTPID
	if ! wait_for 10 test -S "$NK_SOCK"; then
		fail "nkd did not create $NK_SOCK within 10 s"
	fi
	kill -0 "$NK_NKD_PID" 2>/dev/null || fail "nkd exited at start"
}

alive() { kill -0 "$1" 2>/dev/null; }

# ustack_check_echo_transfer BYTES: after the engine ran as a client with
# --send-file/--recv-file in $NK_TMP against ustack_peer.py's echo server
# (which wrote "sha256 bytes" to $NK_TMP/server.sha), both directions must
# carry the same bytes.
ustack_check_echo_transfer() {
	local sent back seen n
	wait_file "$NK_TMP/server.sha" 20 || fail "python server did not finish"
	sent=$(sha256sum <"$NK_TMP/send.bin" | cut -d' ' -f1)
	back=$(sha256sum <"$NK_TMP/recv.bin" | cut -d' ' -f1)
	read -r seen n <"$NK_TMP/server.sha"
	[ "$n" = "$1" ] || fail "server received $n of $1 bytes"
	[ "$seen" = "$sent" ] || fail "engine -> kernel sha256 mismatch ($seen != $sent)"
	[ "$back" = "$sent" ] || fail "kernel -> engine sha256 mismatch ($back != $sent)"
	log "client transfer ok: sha256 $sent both ways"
}

# nk_reexec_userns ARGS...: run this test again inside `unshare -Urn` (a
# private user and network namespace: rootless), where NK_USERNS=1. The
# outer run leaves nothing behind: it has started nothing yet.
nk_reexec_userns() {
	[ "${NK_USERNS:-}" = 1 ] && return 0
	unshare -Urn true 2>/dev/null ||
		skip "unshare -Urn not permitted (unprivileged user namespaces off)"
	rm -rf "$NK_TMP"
	trap - EXIT INT TERM
	NK_USERNS=1 NK_ID=$NK_ID exec unshare -Urn "$0" "$@"
}

# need_netns [ARGS...]: the test needs network namespaces, veths and nkd,
# but no privilege beyond them. It runs again (ARGS are its arguments) as
# root of a fresh user namespace with its own network, mount and pid
# namespaces (`unshare -Urnm --pid`), where `ip netns add`, veth pairs, `ip
# netns exec` and nkd work without real privilege. Real root runs it the
# same way, as user nobody when nobody can read the build tree, so the
# rootless path is the one CI exercises. NK_ROOTLESS=0 makes root run it
# directly in the host's namespaces instead (the old way). The pid namespace
# ends every process of the test with it, daemons included.
need_netns() {
	local as=()
	[ "${NK_USERNS:-}" = 1 ] && return 0
	if [ "$(id -u)" = 0 ]; then
		[ "${NK_ROOTLESS:-1}" = 0 ] && return 0
		# Mount points for the private tmpfs (iproute2 makes them too).
		mkdir -p /run/netns /etc/netns 2>/dev/null || true
		# shellcheck disable=SC2016  # expanded by sh -c
		if command -v setpriv >/dev/null &&
			setpriv --reuid=65534 --regid=65534 --clear-groups sh -c \
				'test -r "$1" && test -x "$2" && test -r "$3" && test -r "$4"' \
				_ "$0" "$NKD" "$NKSHIM" "$NK_ROOT/tests/lib.sh" 2>/dev/null; then
			as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		else
			log "nobody cannot read $0 or the build: root in the user namespace"
		fi
	fi
	if ! "${as[@]}" unshare -Urnm --pid --fork --kill-child --mount-proc \
		true 2>/dev/null; then
		[ "$(id -u)" = 0 ] || skip "needs root or unprivileged user namespaces (unshare -Urnm)"
		log "user namespaces unavailable: running as root in the host's namespaces"
		return 0
	fi
	rm -rf "$NK_TMP"
	trap - EXIT INT TERM
	NK_USERNS=1 NK_USERNS_NETNS=1 NK_ID=$NK_ID exec "${as[@]}" \
		unshare -Urnm --pid --fork --kill-child --mount-proc \
		"$BASH" "$0" "$@"
}

# Inside need_netns's namespaces: private tmpfs on /run/netns (ip netns
# add's bind mounts) and /etc/netns (set_resolv), neither visible outside.
# Without a /etc/netns to mount on, set_resolv skips.
nk_userns_setup() {
	if [ -d /run/netns ]; then
		mount -t tmpfs -o mode=755 nk-netns /run/netns
	else
		mount -t tmpfs -o mode=755 nk-run /run
		mkdir /run/netns
	fi || fail "cannot mount a tmpfs for /run/netns in the user namespace"
	if [ -d /etc/netns ]; then
		mount -t tmpfs -o mode=755 nk-etc-netns /etc/netns ||
			fail "cannot mount a tmpfs on /etc/netns in the user namespace"
	fi
	ip link set lo up
	log "in a user namespace: uid 0 here is uid $(awk '$1 == 0 {print $2}' /proc/self/uid_map) outside"
	# nobody's HOME (/root, /nonexistent) is not ours to read.
	[ -w "${HOME:-/}" ] || export HOME=$NK_TMP
}
# Once: a nested run of lib.sh (harness.sh) shares these mounts.
if [ "${NK_USERNS_NETNS:-}" = 1 ]; then
	unset NK_USERNS_NETNS
	nk_userns_setup
fi

nkd_alive() { [ -n "$NK_NKD_PID" ] && kill -0 "$NK_NKD_PID" 2>/dev/null; }

nkctl() { timeout 10 "$NKCTL" --socket "$NK_SOCK" "$@"; }

# ---------------------------------------------------------------- running

# Per-command bound (seconds) for run_* helpers; tests may lower it.
NK_CMD_TIMEOUT=${NK_CMD_TIMEOUT:-120}

# run_guest CMD...: CMD in the NIC-less namespace G through nkd, as guest
# $GUEST. Exit status is CMD's (124 if it hit the timeout).
run_guest() {
	if [ -n "${NK_NATIVE:-}" ]; then
		run_host "$@"
		return
	fi
	timeout -k 5 "$NK_CMD_TIMEOUT" ip netns exec "$NS_G" \
		"$NKRUN" --guest "$GUEST" --socket "$NK_SOCK" -- "$@"
}
run_peer() { timeout -k 5 "$NK_CMD_TIMEOUT" ip netns exec "$NS_P" "$@"; }
run_host() { timeout -k 5 "$NK_CMD_TIMEOUT" ip netns exec "$NS_H" "$@"; }

# bg_guest NAME CMD...: background guest program.
bg_guest() {
	local name=$1
	shift
	if [ -n "${NK_NATIVE:-}" ]; then
		bg "$name" ip netns exec "$NS_H" "$@"
		return
	fi
	bg "$name" ip netns exec "$NS_G" "$NKRUN" --guest "$GUEST" \
		--socket "$NK_SOCK" -- "$@"
}
bg_peer() {
	local name=$1
	shift
	bg "$name" ip netns exec "$NS_P" "$@"
}

# ---------------------------------------------------------------- data

# make_file PATH MIB: deterministic pseudo-random content.
make_file() {
	"$PY" - "$1" "$2" <<'EOF'
import random, sys
r = random.Random(12345)
with open(sys.argv[1], "wb") as f:
    for _ in range(int(sys.argv[2])):
        f.write(r.randbytes(1 << 20))
EOF
}
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# field KEY LINE: value of KEY=VALUE in a "RESULT k=v k=v" line.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1; }

# ---------------------------------------------------------------- afxdp

# afxdp_up [QUEUES]: the topology with a single-queue veth (one XSK serves
# it), nk_steer attached to H's end (nsenter keeps the host's bpffs), and
# an EXIT-safe detach. NSM address: $X4 (10.N.0.5), next to H's $H4 on the
# same veth: the hybrid. Sets NK_PIN, NK_LOADER.
X4=10.$NK_N.0.5
NK_LOADER=$BUILD/nk-loader
NK_PIN=
afxdp_up() {
	nk_netns_add "$NS_H"
	nk_netns_add "$NS_P"
	nk_netns_add "$NS_G"
	ip link add nkh netns "$NS_H" numrxqueues 1 numtxqueues 1 type veth \
		peer name nkp netns "$NS_P" numrxqueues 1 numtxqueues 1
	ip -n "$NS_H" addr add "$H4/24" dev nkh
	ip -n "$NS_P" addr add "$P4/24" dev nkp
	ip -n "$NS_H" link set nkh up
	ip -n "$NS_P" link set nkp up
	wait_for 5 nk_link_up "$NS_H" nkh || fail "veth in $NS_H not up"
	wait_for 5 nk_link_up "$NS_P" nkp || fail "veth in $NS_P not up"
	# bpffs is global: the pin directory is per device NAME, so a run
	# uses a name of its own (nkh exists in every test's H).
	NK_XDEV=nkx$((NK_ID % 100000000))
	ip -n "$NS_H" link set nkh name "$NK_XDEV" 2>/dev/null ||
		fail "cannot rename nkh"
	NK_PIN=/sys/fs/bpf/netkernel/$NK_XDEV
	nsenter --net="/run/netns/$NS_H" "$NK_LOADER" attach "$NK_XDEV" \
		--mode native >"$NK_TMP/loader.log" 2>&1 ||
		fail "nk-loader attach: $(cat "$NK_TMP/loader.log")"
	trap afxdp_exit EXIT
}

# EXIT trap of afxdp tests: detach, then the usual cleanup with the
# test's own exit status.
afxdp_exit() {
	local rc=$?
	set +e
	if [ -n "$NK_PIN" ] && [ -e "$NK_PIN" ]; then
		# nkd removes its entries on exit; stop it before detaching.
		[ -n "$NK_NKD_PID" ] && nk_stop "$NK_NKD_PID"
		nsenter --net="/run/netns/$NS_H" "$NK_LOADER" detach \
			"$NK_XDEV" >/dev/null 2>&1 || rm -rf "$NK_PIN"
	fi
	(exit "$rc")
	nk_cleanup
}

# need_afxdp [FILE...]: what an afxdp test needs: root, nkd (not native),
# nsenter, bpftool and jq, the loader, nk_stream and the FILEs.
need_afxdp() {
	need_root
	need_netkernel
	need_cmd nsenter bpftool jq
	need_nk "$NK_LOADER" "$TOOLS/nk_stream" "$@"
}

# thread_echo_py PORT: writes $NK_TMP/techo.py, a TCP echo server on
# 0.0.0.0:PORT with blocking sockets, a thread per connection. For guests
# on the afxdp NSM: nkpy's asyncio echo-server never sees the peer's FIN on
# this NSM when it arrives after the data was drained (no EOF readiness
# through epoll), so it would never close, and a client waiting for the
# FIN would fail for that reason.
thread_echo_py() {
	cat >"$NK_TMP/techo.py" <<PYEOF
import socket, threading
def one(c):
    with c:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", $1))
l.listen(64)
while True:
    c, _ = l.accept()
    threading.Thread(target=one, args=(c,), daemon=True).start()
PYEOF
}

# start_nkd_afxdp CONFIG: nkd in the host's own namespaces (its afxdp and
# kernel NSMs say netns=/run/netns/$NS_H), so it sees the host bpffs that
# `ip netns exec` would hide.
start_nkd_afxdp() {
	need_nk
	bg nkd "$NKD" --socket "$NK_SOCK" --config "$1"
	NK_NKD_PID=$LASTPID
	wait_for 10 test -S "$NK_SOCK" ||
		fail "nkd did not create $NK_SOCK within 10 s"
	kill -0 "$NK_NKD_PID" 2>/dev/null || fail "nkd exited at start"
}

# afxdp_attach: nk_steer on H's end of an existing topo_up veth, renamed to
# a per-run name as afxdp_up does, with the same EXIT-safe detach (set
# before the attach, so a half-done attach is cleaned up too). Returns
# non-zero with the reason in $NK_TMP/loader.log instead of failing: the
# bench carries on without its afxdp column.
afxdp_attach() {
	NK_XDEV=nkx$((NK_ID % 100000000))
	ip -n "$NS_H" link set nkh name "$NK_XDEV" >"$NK_TMP/loader.log" 2>&1 ||
		return 1
	NK_PIN=/sys/fs/bpf/netkernel/$NK_XDEV
	trap afxdp_exit EXIT
	nsenter --net="/run/netns/$NS_H" "$NK_LOADER" attach "$NK_XDEV" \
		--mode native >"$NK_TMP/loader.log" 2>&1
}

# nk_guest_listening PORT: a guest socket listens on PORT in nkd (sockets
# of the afxdp NSM live in nk_ustack, not in any kernel namespace).
nk_guest_listening() {
	nkctl sockets --json | jq -e ".sockets[] | select(.state == \"LISTEN\" and (.local | endswith(\":$1\")))" >/dev/null
}

# afxdp_rxqueues: RX queues of $NK_XDEV in H (topo_up's veth has one per
# CPU); the NSM's queues= must cover them all, or flows hashed to the
# others are dropped by nk_steer (no XSK in that slot).
afxdp_rxqueues() {
	ip netns exec "$NS_H" sh -c "ls -d /sys/class/net/$NK_XDEV/queues/rx-*" 2>/dev/null | wc -l
}

# ---------------------------------------------------------------- attacks

# Tests of an attack on nkd (the tenancy tests) run the ASan+UBSan nkd, so
# a memory error the normal build survives still fails them. Call before
# start_nkd; nk_san_stop at the end stops it and fails on any report.
nk_use_san_nkd() {
	[ -x "$BUILD/san/nkd" ] || fail "missing $BUILD/san/nkd (run make)"
	NKD=$BUILD/san/nkd
	export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=66
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:exitcode=67
}

# need_rawguest [CMD...]: what a test driving nk_rawguest needs: need_netns, nkd
# (not native), the commands named, the nk_rawguest binary.
need_rawguest() {
	need_netns
	need_netkernel
	need_cmd "$@"
	[ -x "$TOOLS/nk_rawguest" ] || fail "missing $TOOLS/nk_rawguest (run make)"
}

# san_nkd_up [CONFIG]: the kernel-NSM topology and the ASan+UBSan nkd in it.
san_nkd_up() {
	topo_up
	nk_use_san_nkd
	start_nkd "$@"
}

# as_guest GUEST CMD...: CMD run as guest GUEST, its output.
as_guest() {
	local g=$1
	shift
	GUEST=$g run_guest "$@"
}

# expect_field WHAT KEY WANT OUTPUT: the RESULT line in OUTPUT has KEY=WANT.
expect_field() {
	local got
	got=$(field "$2" "$(grep RESULT <<<"$4")")
	[ "$got" = "$3" ] || fail "$1: $2=$got, expected $3 ($4)"
	log "ok: $1: $2=$got"
}

# transfer_ok SENDER RECEIVER BYTES [LOGPREFIX [MSGPREFIX]]: the RESULT
# lines in $NK_TMP/LOGPREFIX{SENDER,RECEIVER}.log show BYTES received, with
# the sender's sha256. Failures say MSGPREFIX first.
transfer_ok() {
	local s r
	s=$(grep RESULT "$NK_TMP/${4:-}$1.log") || fail "${5:-}no result from $1"
	r=$(grep RESULT "$NK_TMP/${4:-}$2.log") || fail "${5:-}no result from $2"
	[ "$(field bytes "$r")" = "$3" ] || fail "${5:-}$2 got $(field bytes "$r") of $3 bytes"
	[ "$(field sha256 "$s")" = "$(field sha256 "$r")" ] || fail "${5:-}sha256 mismatch $1 -> $2"
}

# nk_san_stop: SIGTERM nkd; it must exit 0 with no sanitizer report.
nk_san_stop() {
	local rc=0
	nkd_alive || fail "nkd is not running (it died during the test)"
	kill -TERM "$NK_NKD_PID"
	wait "$NK_NKD_PID" || rc=$?
	NK_NKD_PID=
	if grep -qE 'AddressSanitizer|LeakSanitizer|runtime error' "$NK_TMP/nkd.log"; then
		grep -E -A12 'AddressSanitizer|LeakSanitizer|runtime error' "$NK_TMP/nkd.log" | head -40 >&2
		fail "sanitizer report from nkd ($NKD)"
	fi
	[ "$rc" = 0 ] || fail "nkd exited with $rc after SIGTERM"
}

# The bystander: an innocent guest ($BYS_GUEST, in G) that moves
# $BYS_BYTES each way with the peer, checked by sha256, while a latency
# probe makes $BYS_PINGS echo round trips. Start it, run the attack, then
# bystander_finish: both transfers intact, no round trip over
# $NK_STALL_MS (a stall detector with a wide margin, not a benchmark:
# the attacks it catches stall for seconds).
BYS_GUEST=${BYS_GUEST:-bystander}
BYS_BYTES=${BYS_BYTES:-$((64 << 20))}
BYS_PINGS=${BYS_PINGS:-300}
NK_STALL_MS=${NK_STALL_MS:-1500}
BYS_PIDS=()

# bystander_start [BASEPORT]: ports BASEPORT..BASEPORT+2 (default 9400).
bystander_start() {
	local base=${1:-9400}
	BYS_BASE=$base
	BYS_PIDS=()
	bg_peer bys_recv_p "$TOOLS/nk_stream" recv listen "$P4" "$base"
	BYS_PIDS+=("$LASTPID")
	bg_peer bys_send_p "$TOOLS/nk_stream" send listen "$P4" "$((base + 1))" "$BYS_BYTES" 31
	BYS_PIDS+=("$LASTPID")
	bg_peer bys_echo_p "$PY" "$HELPERS/nkpy.py" echo-server "$P4" "$((base + 2))"
	BYS_ECHO=$LASTPID
	wait_port "$NS_P" "$base" || fail "bystander: peer receiver not listening"
	wait_port "$NS_P" "$((base + 1))" || fail "bystander: peer sender not listening"
	wait_port "$NS_P" "$((base + 2))" || fail "bystander: peer echo server not listening"
	GUEST=$BYS_GUEST bg_guest bys_send_g "$TOOLS/nk_stream" send connect "$P4" "$base" "$BYS_BYTES" 30
	BYS_PIDS+=("$LASTPID")
	GUEST=$BYS_GUEST bg_guest bys_recv_g "$TOOLS/nk_stream" recv connect "$P4" "$((base + 1))"
	BYS_PIDS+=("$LASTPID")
	GUEST=$BYS_GUEST bg_guest bys_ping_g "$PY" "$HELPERS/nkpy.py" rtt-probe "$P4" "$((base + 2))" "$BYS_PINGS" 20
	BYS_PIDS+=("$LASTPID")
	log "bystander $BYS_GUEST: $BYS_BYTES bytes each way and $BYS_PINGS round trips under way"
}

# bystander_finish: waits (bounded by the run_* timeout) and checks.
bystander_finish() {
	local p r max
	for p in "${BYS_PIDS[@]}"; do
		wait "$p" || fail "bystander: a program failed (exit $?): $(tail -n 3 "$NK_TMP"/bys_*.log)"
	done
	kill "$BYS_ECHO" 2>/dev/null || true
	for dir in "send_g recv_p" "send_p recv_g"; do
		set -- $dir
		transfer_ok "$1" "$2" "$BYS_BYTES" bys_ "bystander: "
	done
	r=$(grep RESULT "$NK_TMP/bys_ping_g.log") || fail "bystander: no result from the latency probe"
	max=$(field max_ms "$r")
	log "bystander $BYS_GUEST: transfers intact, round trips p50 $(field p50_ms "$r") ms, worst $max ms"
	awk -v m="$max" -v lim="$NK_STALL_MS" 'BEGIN { exit !(m + 0 <= lim + 0) }' ||
		fail "bystander stalled: a round trip took $max ms (limit $NK_STALL_MS)"
}

# ---------------------------------------------------------------- shared set-ups

# bottleneck_up GUEST...: what fair_share.sh and slow_peer.sh share: a
# 100 Mbit/s bottleneck (tc tbf on H's egress, which every byte to the
# peer crosses; half of what the loaded 2-core machine moves at worst, so
# the machine is not the bottleneck instead) and one nkd (kernel NSM)
# with the GUESTs (uid 0) and no others. Skips without tbf.
bottleneck_up() {
	local g
	topo_up
	tc -n "$NS_H" qdisc add dev nkh root tbf rate 100mbit burst 64k latency 20ms ||
		skip "tc tbf not available here"
	{
		echo "nsm kernel0 type=kernel"
		for g in "$@"; do
			echo "guest $g nsm=kernel0 uid=0"
		done
		echo "unknown_guests deny"
	} >"$NK_TMP/nkd.conf"
	start_nkd "$NK_TMP/nkd.conf"
}

# iperf3_received LOG: bytes per second an iperf3 -J server (LOG) got from
# 2 s to $SECS - 1 s (slow start, and the last second that clients started
# a few 100 ms apart do not share, left out), over the intervals' own
# lengths (a loaded machine reports some late: one longer, the next
# shorter).
iperf3_received() {
	jq "[.intervals[].sum | select(.start >= 1.99 and .end <= $SECS - 0.99)] |
		if length == 0 then 0 else (map(.bytes) | add) / (map(.seconds) | add) | floor end" "$1"
}

# nginx_conf DIR LISTEN ROOT WORKERS CONNS [HTTP_LINE...]: writes
# DIR/nginx.conf (and DIR/tmp) for nginx in the foreground, logs and
# temp files in DIR: WORKERS workers under a master (as root, so it needs
# no other user), or WORKERS=0: one process, no master. `listen LISTEN`,
# files from ROOT, CONNS worker_connections, the HTTP_LINEs (access_log,
# sendfile, ...) first in the http block.
nginx_conf() {
	local d=$1 listen=$2 root=$3 workers=$4 conns=$5 master=on line
	shift 5
	mkdir -p "$d/tmp"
	{
		if [ "$workers" = 0 ]; then
			master=off workers=1
		else
			echo "user root root;"
		fi
		cat <<CONF
worker_processes $workers;
daemon off;
master_process $master;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections $conns; }
http {
CONF
		for line in "$@"; do
			printf '    %s\n' "$line"
		done
		cat <<CONF
    client_body_temp_path $d/tmp;
    proxy_temp_path $d/tmp;
    fastcgi_temp_path $d/tmp;
    uwsgi_temp_path $d/tmp;
    scgi_temp_path $d/tmp;
    server {
        listen $listen;
        root $root;
        location / { }
    }
}
CONF
	} >"$d/nginx.conf"
}

# nginx_guest NAME DIR PORT [SECONDS]: nginx of nginx_conf DIR as guest
# $GUEST in G (log $NK_TMP/NAME.log, pid $LASTPID), listening on PORT in
# H within SECONDS (20).
nginx_guest() {
	local d=$2
	bg_guest "$1" nginx -c "$d/nginx.conf" -p "$d" -e "$d/error.log"
	wait_port "$NS_H" "$3" "${4:-20}"
}

# close_requests HOST PORT N: N sequential `Connection: close` GETs of
# /index.html from P, one connection each; prints how many got a 200 with
# a body of 64 x (the index.html the nginx tests serve).
close_requests() {
	run_peer "$PY" - "$1" "$2" "$3" <<'PYEOF'
import socket, sys
host, port, n, ok = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 0
req = b"GET /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
for _ in range(n):
    s = socket.create_connection((host, port), timeout=10)
    s.sendall(req)
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    ok += data.startswith(b"HTTP/1.1 200") and data.endswith(b"\r\n\r\n" + b"x" * 64)
print(ok)
PYEOF
}

# fork_srv_py PATH PORT: writes PATH, a forking TCP server on
# 0.0.0.0:PORT that answers each connection's first line with "pong LINE"
# (a process per connection: fork through the shim).
fork_srv_py() {
	cat >"$1" <<PYEOF
import socketserver
class H(socketserver.StreamRequestHandler):
    def handle(self):
        line = self.rfile.readline()
        self.wfile.write(b"pong " + line)
socketserver.ForkingTCPServer.allow_reuse_address = True
with socketserver.ForkingTCPServer(("0.0.0.0", $2), H) as s:
    s.serve_forever()
PYEOF
}
