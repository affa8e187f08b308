#!/usr/bin/env bash
# netkernel benchmarks (make bench; root). Same topology, same run:
#
#   native     the program in its own namespace N with a veth to P
#   netkernel  the program in the NIC-less namespace G, through nkd in H
#   slirp      the program in a NIC-less namespace S given a network by
#              slirp4netns, which NATs through H's veth to P
#   pasta      the same with pasta (passt) in namespace T
#   afxdp      last, the program in G through an nkd whose afxdp NSM serves
#              it on H's veth (nk_steer attached there, NSM address 10.N.0.5)
#
# Prints one line per benchmark
#   bench: NAME native=X netkernel=Y ratio=R unit=U [slirp=X pasta=X]
#          [cpu_native=C cpu_netkernel=D cpu_ratio=R cpu_unit=ms/GB
#           sys_native=S sys_netkernel=S sys_ratio=R sys_bg=PCT ...]
# (ratio = netkernel / native; cpu_* and sys_* are CPU time per unit of
# work, tests/bench/cost.sh) and writes $BUILD/bench.json. Rows named
# afxdp_* repeat a benchmark on the afxdp NSM: there netkernel= is the
# afxdp NSM's value, ratio = afxdp / native, and kernel_nsm= is the
# netkernel value of the plain row (kernel NSM) for comparison. Measurements
# are short (3-4 s); nothing here is asserted. A column that cannot be
# measured (tool missing, program failed) says n/a or fail, and the bench
# carries on. docs/benchmarks.md explains the method.
#
# Environment: NK_BENCH_T (seconds per measurement, default 3),
# NK_BENCH_ONLY (space-separated benchmark names to run; an afxdp_* name
# also runs its plain twin), NK_BENCH_AFXDP=0 skips the afxdp rows,
# NK_BENCH_CONNS (wrk connections of nginx_many, default 256),
# NK_BENCH_BASE (seconds of the idle baseline before each measurement,
# default 1), NK_BENCH_MUX (server counts of the mux_N rows, default
# "1 8 32"), NK_BENCH_MUX_RATE (requests/s to each server, default 50),
# NK_BENCH_MUX_T (seconds of mux load, default NK_BENCH_T),
# NK_BENCH_MUX_IDLE (seconds of the mux_N_idle reading, default 3),
# NK_BENCH_NOISY_RATE (B's requests/s in noisy_p99, default 200),
# NK_BENCH_NOISY_KINDS (its aggressors, default "cpu nop wrk iperf3
# connect attach").
# shm_iperf3 / shm_rtt_p50 start a second nkd of their own (shm=on guests).
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
TNAME=bench
[ "$(id -u)" = 0 ] || { echo "bench: run as root (it creates network namespaces)" >&2; exit 1; }
for c in iperf3 sockperf wrk nginx redis-server redis-benchmark jq; do
	command -v "$c" >/dev/null || { echo "bench: $c is missing (make deps)" >&2; exit 1; }
done
T=${NK_BENCH_T:-3}
NS_N=nk-n-$NK_ID
NS_S=nk-s-$NK_ID
NS_T=nk-t-$NK_ID
N4=10.$NK_N.1.1 # native namespace's address
NP4=10.$NK_N.1.2 # P's address on the native veth
RESULTS=$NK_TMP/results.tsv
: >"$RESULTS"
JSON_OUT=$BUILD/bench.json
GUEST=bench
CONNS=${NK_BENCH_CONNS:-256}
# nginx_many needs CONNS descriptors in nginx and wrk, and nkd 3 per guest
# socket (its socket budget follows its own RLIMIT_NOFILE, docs/config.md):
# make sure the limit is not what refuses them.
[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 16384 ] || ulimit -Hn 16384 2>/dev/null || true
[ "$(ulimit -n)" = unlimited ] || [ "$(ulimit -n)" -ge $((CONNS * 4)) ] || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# shellcheck source=tests/bench/cost.sh
. "$(dirname "$0")/cost.sh"
bench_exit() {
	local rc=$?
	set +e
	cost_cleanup
	(exit "$rc")
	afxdp_exit # = nk_cleanup unless the afxdp phase attached
}
trap bench_exit EXIT

have_nk=1
for f in "$NKD" "$NKRUN" "$NKSHIM"; do [ -e "$f" ] || have_nk=0; done
have_slirp=0
have_pasta=0
command -v slirp4netns >/dev/null && have_slirp=1
command -v pasta >/dev/null && have_pasta=1

# ---------------------------------------------------------------- setup

topo_up
topo_add_native "$NS_N"
# slirp4netns and pasta NAT out of H; pasta takes its addresses and gateway
# from the interface with the default route, so H gets one (towards P, the
# only host on the veth; P does not forward).
ip -n "$NS_H" route add default via "$P4"
if [ "$have_slirp" = 1 ]; then
	nk_netns_add "$NS_S"
	bg slirp ip netns exec "$NS_H" slirp4netns --configure --mtu=65520 \
		--disable-host-loopback --netns-type=path "/run/netns/$NS_S" tap0
	cg_move fwd "$LASTPID"
	wait_for 10 nk_link_up "$NS_S" tap0 || { log "slirp4netns did not come up"; have_slirp=0; }
fi
if [ "$have_pasta" = 1 ]; then
	nk_netns_add "$NS_T"
	# As root pasta would switch to nobody and then fail to enter the
	# namespace; --no-map-gw: P4 is the gateway and must stay P4.
	bg pasta ip netns exec "$NS_H" pasta -f -q --runas 0 -4 --no-map-gw \
		--config-net -t none -u none -T none -U none --netns "/run/netns/$NS_T"
	cg_move fwd "$LASTPID"
	wait_for 10 sh -c "ip -n '$NS_T' -br addr | grep -q '$H4'" ||
		{ log "pasta did not come up"; have_pasta=0; }
fi
if [ "$have_nk" = 1 ]; then
	start_nkd
	cg_move nkd "$NK_NKD_PID" # `ip netns exec` execs: this is nkd
else
	log "build/nkd, nkrun or libnkshim.so missing: netkernel column is n/a"
fi

# cli CONFIG CMD...: run a client program as CONFIG, bounded, in the prog
# cgroup. CLI_NS_N, CLI_NS_G, CLI_GUEST override the namespace and guest
# (the two-guest row).
cli() {
	local cfg=$1 CGX
	shift
	cgx prog
	case $cfg in
	native) "${CGX[@]}" timeout -k 5 60 ip netns exec "${CLI_NS_N:-$NS_N}" "$@" ;;
	netkernel | afxdp) "${CGX[@]}" timeout -k 5 60 ip netns exec "${CLI_NS_G:-$NS_G}" "$NKRUN" --guest "${CLI_GUEST:-$GUEST}" --socket "$NK_SOCK" -- "$@" ;;
	slirp) "${CGX[@]}" timeout -k 5 60 ip netns exec "$NS_S" "$@" ;;
	pasta) "${CGX[@]}" timeout -k 5 60 ip netns exec "$NS_T" "$@" ;;
	esac
}
# P's address as seen from CONFIG.
peer_addr() { [ "$1" = native ] && echo "$NP4" || echo "$P4"; }
available() {
	case $1 in
	native) return 0 ;;
	netkernel) [ "$have_nk" = 1 ] ;;
	slirp) [ "$have_slirp" = 1 ] ;;
	pasta) [ "$have_pasta" = 1 ] ;;
	afxdp) [ "$have_afxdp" = 1 ] ;;
	esac
}
have_afxdp=0
want() { [ -z "${NK_BENCH_ONLY:-}" ] || [[ " $NK_BENCH_ONLY " == *" $1 "* ]] || [[ " $NK_BENCH_ONLY " == *" afxdp_$1 "* ]]; }
# Values the afxdp_* rows compare against: VAL[NAME.CONFIG].
declare -A VAL

# record NAME UNIT HIGHER_IS_BETTER NATIVE NETKERNEL SLIRP PASTA NOTE [KERNEL_NSM]
# REC_EXTRA, if set, is more " key=value" fields for the line and the JSON.
# The CPU cost fields come from cost_end's results for NAME.
record() {
	local ex=${REC_EXTRA:-}
	REC_EXTRA=
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "${9:--}" "${ex:--}" >>"$RESULTS"
	VAL[$1.native]=$4
	VAL[$1.netkernel]=$5
	local ratio=n/a extra=""
	if [[ $4 =~ ^[0-9.]+$ ]] && [[ $5 =~ ^[0-9.]+$ ]] && [ "$(awk -v a="$4" 'BEGIN{print (a > 0)}')" = 1 ]; then
		ratio=$(awk -v a="$4" -v b="$5" 'BEGIN{printf "%.2f", b / a}')
	fi
	[ "$6" != - ] && extra="$extra slirp=$6"
	[ "$7" != - ] && extra="$extra pasta=$7"
	[ "${9:--}" != - ] && extra="$extra kernel_nsm=$9"
	extra="$extra$ex$(cost_fields "$1")"
	printf 'bench: %s native=%s netkernel=%s ratio=%s unit=%s%s\n' "$1" "$4" "$5" "$ratio" "$2" "$extra"
}

# ---------------------------------------------------------------- iperf3

# Results come back in RES (and RES2), not through $(...): a subshell would
# lose track of the background servers it starts.

# wait_gone PID SECS: until PID exited (bounded; builtins only).
wait_gone() {
	local i
	for ((i = 0; i < $2 * 20; i++)); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.05
	done
}

# iperf_bytes FILE: bytes the client's intervals counted, the omitted
# first second included: the work of the whole run, whose CPU cost_end
# measures (end.sum_* leave the omitted interval out).
iperf_bytes() { jq -r '[.intervals[].sum.bytes] | add' "$1" 2>/dev/null || echo n/a; }
iperf_gbps() { jq -r '.end.sum_received.bits_per_second / 1e9 | . * 100 | round / 100' "$1" 2>/dev/null || echo fail; }

# iperf_one CONFIG send|recv: RES = Gbit/s
iperf_one() {
	local cfg=$1 dir=$2 port=5301 out=$NK_TMP/iperf_$1_$2.json rev=() CGX
	RES=n/a
	available "$cfg" || return 0
	RES=fail
	[ "$dir" = recv ] && rev=(-R)
	cgx peer
	bg "iperf_s_${cfg}_$dir" "${CGX[@]}" ip netns exec "$NS_P" iperf3 -s -1 -p "$port"
	local sp=$LASTPID
	if wait_for 10 nk_port_listening "$NS_P" tcp "$port"; then
		cost_begin
		if cli "$cfg" iperf3 -c "$(peer_addr "$cfg")" -p "$port" -t "$T" -O 1 -J "${rev[@]}" >"$out" 2>&1; then
			RES=$(iperf_gbps "$out")
		fi
		# The server's last report may still be on its way: let it
		# finish inside the window.
		wait_gone "$sp" 2
		cost_end "iperf3_$dir" "$cfg" "$(iperf_bytes "$out")" GB
	fi
	nk_stop "$sp"
}
for dir in send recv; do
	want "iperf3_$dir" || continue
	v=()
	for cfg in native netkernel slirp pasta; do
		iperf_one "$cfg" "$dir"
		v+=("$RES")
	done
	record "iperf3_$dir" Gbit/s 1 "${v[@]}" "iperf3 -t $T -O 1, 1 stream, program $([ "$dir" = send ] && echo sends || echo receives)"
done

# ---------------------------------------------------------------- two guests

# Two programs at once, each sending with iperf3 to a server of its own in
# P. native: from N and from a second namespace N2 with its own veth;
# netkernel: from G and from a second NIC-less namespace G2, as two guests
# (bench, bench2) of the one nkd and its one kernel NSM.
NS_N2=nk-m-$NK_ID
NS_G2=nk-q-$NK_ID
N2P4=10.$NK_N.2.2 # P's address on N2's veth
two_up() {
	[ -z "${TWO_UP:-}" ] || return 0
	TWO_UP=1
	topo_veth_to_p "$NS_N2" nkn2 nkq2 2 # P: $N2P4
	nk_netns_add "$NS_G2"
	wait_for 5 nk_link_up "$NS_N2" nkn2 || log "second native veth not up"
}
# two_one CONFIG: RES = total Gbit/s, RES_A and RES_B each program's.
# TWO_B_P: streams of the second program (default 1); TWO_NAME: the row
# the CPU cost is counted for (default iperf3_send_2guests).
two_one() {
	local cfg=$1 sa sb pa pb oa=$NK_TMP/two_$1_a.json ob=$NK_TMP/two_$1_b.json ba bb CGX
	RES=n/a
	RES_A=n/a
	RES_B=n/a
	available "$cfg" || return 0
	RES=fail
	cgx peer
	bg "two_s_a_$cfg" "${CGX[@]}" ip netns exec "$NS_P" iperf3 -s -1 -p 5311
	sa=$LASTPID
	bg "two_s_b_$cfg" "${CGX[@]}" ip netns exec "$NS_P" iperf3 -s -1 -p 5312
	sb=$LASTPID
	if wait_for 10 nk_port_listening "$NS_P" tcp 5311 && wait_for 10 nk_port_listening "$NS_P" tcp 5312; then
		cost_begin
		if [ "$cfg" = native ]; then
			cli native iperf3 -c "$NP4" -p 5311 -t "$T" -O 1 -J >"$oa" 2>&1 &
			pa=$!
			CLI_NS_N=$NS_N2 cli native iperf3 -c "$N2P4" -p 5312 -t "$T" -O 1 -P "${TWO_B_P:-1}" -J >"$ob" 2>&1 &
			pb=$!
		else
			cli netkernel iperf3 -c "$P4" -p 5311 -t "$T" -O 1 -J >"$oa" 2>&1 &
			pa=$!
			CLI_NS_G=$NS_G2 CLI_GUEST=${GUEST}2 cli netkernel iperf3 -c "$P4" -p 5312 -t "$T" -O 1 -P "${TWO_B_P:-1}" -J >"$ob" 2>&1 &
			pb=$!
		fi
		wait "$pa" || true
		wait "$pb" || true
		wait_gone "$sa" 2
		wait_gone "$sb" 2
		ba=$(iperf_bytes "$oa")
		bb=$(iperf_bytes "$ob")
		[[ $ba =~ ^[0-9]+$ ]] && [[ $bb =~ ^[0-9]+$ ]] || ba=n/a
		cost_end "${TWO_NAME:-iperf3_send_2guests}" "$cfg" "$([ "$ba" = n/a ] && echo n/a || echo $((ba + bb)))" GB
		RES_A=$(iperf_gbps "$oa")
		RES_B=$(iperf_gbps "$ob")
		if [[ $RES_A =~ ^[0-9.]+$ ]] && [[ $RES_B =~ ^[0-9.]+$ ]]; then
			RES=$(awk -v a="$RES_A" -v b="$RES_B" 'BEGIN{printf "%.2f", a + b}')
		fi
	fi
	nk_stop "$sa"
	nk_stop "$sb"
}
if want iperf3_send_2guests; then
	two_up
	v=()
	ex=""
	for cfg in native netkernel; do
		two_one "$cfg"
		v+=("$RES")
		ex="$ex ${cfg}_a=$RES_A ${cfg}_b=$RES_B"
	done
	REC_EXTRA=$ex
	record iperf3_send_2guests Gbit/s 1 "${v[@]}" - - "two iperf3 -c -t $T -O 1 at once, each to its own server in P; native from two namespaces, netkernel as two guests on one kernel NSM; the value is the sum, _a/_b each program's"
fi

# fair_jain: the same two programs, the second with 8 streams (-P 8), no
# shaper: how evenly the pair shares what the machine moves. netkernel:
# nkd's own scheduling across its two guests (equal weights); native: the
# kernel's per-flow sharing between two namespaces. The value is Jain's
# index over the two programs' bytes (1: equal, 0.5: one takes all).
jain() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + b > 0) printf "%.3f", (a + b) ^ 2 / (2 * (a ^ 2 + b ^ 2)); else print "n/a" }'; }
# sched_snap: "holds peer_limited held_ms" of guests bench and bench2 from
# nkd's scheduler counters (docs/nkd.md "Scheduler"), for fair_jain's
# deltas: why a low index was low (was the 1-stream guest counted as
# waiting for its own peer, were the 8-stream guest's SENDs held).
sched_snap() {
	nkctl guests --json 2>/dev/null | jq -r --arg a "$GUEST" --arg b "${GUEST}2" \
		'[$a, $b] as $n | [.guests[]] as $g | $n | map(. as $x | ([$g[] | select(.name == $x)][0] // {}) | "\(.sched_tx_holds // 0) \(.sched_tx_peer_limited // 0) \(.sched_tx_held_ms // 0)") | join(" ")' 2>/dev/null || true
}
if want fair_jain; then
	two_up
	v=()
	ex=""
	for cfg in native netkernel; do
		[ "$cfg" = netkernel ] && s0=$(sched_snap)
		TWO_B_P=8 TWO_NAME=fair_jain two_one "$cfg"
		if [ "$cfg" = netkernel ]; then
			# a = bench (1 stream), b = bench2 (8): SENDs held,
			# passes judged peer-limited, ms held, over this run.
			read -r h0a p0a m0a h0b p0b m0b <<<"${s0:-}"
			read -r h1a p1a m1a h1b p1b m1b <<<"$(sched_snap)"
			if [[ ${m1b:-} =~ ^[0-9]+$ ]] && [[ ${m0b:-} =~ ^[0-9]+$ ]]; then
				ex="$ex holds_a=$((h1a - h0a)) holds_b=$((h1b - h0b)) peerlim_a=$((p1a - p0a)) peerlim_b=$((p1b - p0b)) held_ms_a=$((m1a - m0a)) held_ms_b=$((m1b - m0b))"
			fi
		fi
		if [[ $RES_A =~ ^[0-9.]+$ ]] && [[ $RES_B =~ ^[0-9.]+$ ]]; then
			v+=("$(jain "$RES_A" "$RES_B")")
		else
			v+=(fail)
		fi
		ex="$ex ${cfg}_a=$RES_A ${cfg}_b=$RES_B"
	done
	REC_EXTRA=$ex
	record fair_jain index 1 "${v[@]}" - - "iperf3 -c -t $T -O 1 (1 stream) beside iperf3 -c -P 8 (8 streams), each to its own server in P, no shaper; Jain's index over the two programs' Gbit/s (_a: 1 stream, _b: 8); native from two namespaces, netkernel as two guests of one kernel NSM (goal >= 0.98)"
fi

# ---------------------------------------------------------------- sockperf

# sockperf_one CONFIG: RES = p50, RES2 = p99 (us)
sockperf_one() {
	local cfg=$1 port=11111 out=$NK_TMP/sockperf_$1.txt CGX rtts
	RES=n/a
	RES2=n/a
	available "$cfg" || return 0
	RES=fail
	RES2=fail
	cgx peer
	bg "sockperf_s_$cfg" "${CGX[@]}" ip netns exec "$NS_P" sockperf sr --tcp -i 0.0.0.0 -p "$port"
	local sp=$LASTPID
	if wait_for 10 nk_port_listening "$NS_P" tcp "$port"; then
		cost_begin
		if cli "$cfg" sockperf pp --tcp -i "$(peer_addr "$cfg")" -p "$port" -m 64 -t "$T" --full-rtt >"$out" 2>&1; then
			RES=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' "$out" | head -n1)
			RES2=$(sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' "$out" | head -n1)
			RES=${RES:-fail}
			RES2=${RES2:-fail}
		fi
		# Round trips of the whole run, warm-up included (the window).
		rtts=$(sed -n 's/.*\[Total Run\].*ReceivedMessages=\([0-9]*\).*/\1/p' "$out" | head -n1)
		cost_end "sockperf_tcp_p50 sockperf_tcp_p99" "$cfg" "${rtts:-n/a}" 1k-rtt
	fi
	nk_stop "$sp" # sockperf sr ignores TERM while blocked: nk_stop escalates
}
if want sockperf_p50 || want sockperf_p99 || want sockperf_tcp_p50 || want sockperf_tcp_p99; then
	p50=()
	p99=()
	for cfg in native netkernel slirp pasta; do
		sockperf_one "$cfg"
		p50+=("$RES")
		p99+=("$RES2")
	done
	record sockperf_tcp_p50 us 0 "${p50[@]}" "sockperf pp --tcp -m 64 -t $T --full-rtt, blocking, round trip"
	record sockperf_tcp_p99 us 0 "${p99[@]}" "same run, 99th percentile"
fi

# ---------------------------------------------------------------- UDP

# udp_one CONFIG send|recv: RES = 64-byte datagrams per second that arrived
# (the receiver's byte count / 64, not what the sender managed to send).
# The cost is per 1,000 datagrams that arrived.
udp_one() {
	local cfg=$1 dir=$2 port=5302 out=$NK_TMP/udp_$1_$2.json rev=() CGX
	RES=n/a
	available "$cfg" || return 0
	RES=fail
	[ "$dir" = recv ] && rev=(-R)
	cgx peer
	bg "udp_s_${cfg}_$dir" "${CGX[@]}" ip netns exec "$NS_P" iperf3 -s -1 -p "$port"
	local sp=$LASTPID
	if wait_for 10 nk_port_listening "$NS_P" tcp "$port"; then
		cost_begin
		if cli "$cfg" iperf3 -c "$(peer_addr "$cfg")" -p "$port" -u -l 64 -b 0 -t "$T" -J "${rev[@]}" >"$out" 2>&1; then
			RES=$(jq -r '.end.sum_received | .bytes / 64 / .seconds | round' "$out" 2>/dev/null || echo fail)
		fi
		wait_gone "$sp" 2
		cost_end "udp64_$dir" "$cfg" "$(jq -r '.end.sum_received.bytes / 64' "$out" 2>/dev/null || echo n/a)" 1k-dgram
	fi
	nk_stop "$sp"
}
udp_note() { echo "iperf3 -u -l 64 -b 0 -t $T, program $([ "$1" = send ] && echo sends || echo receives); datagrams that arrived per second"; }
for dir in send recv; do
	want "udp64_$dir" || continue
	v=()
	for cfg in native netkernel; do
		udp_one "$cfg" "$dir"
		v+=("$RES")
	done
	record "udp64_$dir" pkt/s 1 "${v[@]}" - - "$(udp_note "$dir")"
done

# ---------------------------------------------------------------- nginx

NGX=$NK_TMP/nginx
mkdir -p "$NGX/www"
head -c 64 /dev/zero | tr '\0' x >"$NGX/www/index.html"
nginx_conf "$NGX" "8080 backlog=4096" "$NGX/www" 1 4096 "access_log off;" "sendfile on;" \
	"tcp_nodelay on;" "keepalive_requests 100000000;"

# srv_start CONFIG NAME CMD...: a server as CONFIG (native in N, netkernel
# in G), in the prog cgroup; SRV_ADDR is the address P uses to reach it.
srv_start() {
	local cfg=$1 name=$2 CGX
	shift 2
	cgx prog
	if [ "$cfg" = native ]; then
		bg "$name" "${CGX[@]}" ip netns exec "$NS_N" "$@"
		SRV_NS=$NS_N
		SRV_ADDR=$N4
	else
		bg "$name" "${CGX[@]}" ip netns exec "$NS_G" "$NKRUN" --guest "$GUEST" --socket "$NK_SOCK" -- "$@"
		SRV_NS=$NS_H
		SRV_ADDR=$H4
		[ "$cfg" = afxdp ] && SRV_ADDR=$X4
	fi
	SRV_PID=$LASTPID
}
# srv_listening CONFIG PORT: the server of srv_start listens (afxdp: in
# nk_ustack, which only nkd can list).
srv_listening() {
	if [ "$1" = afxdp ]; then
		nk_guest_listening "$2"
	else
		nk_port_listening "$SRV_NS" tcp "$2"
	fi
}

# nginx_one CONFIG MODES: for each mode (keepalive, close, many) of MODES
# one wrk run against nginx as CONFIG: RES = keep-alive req/s, RES2 =
# Connection: close req/s, RES3 = keep-alive req/s over $CONNS connections.
nginx_one() {
	local cfg=$1 mode out rps errs n conns CGX
	local -A got=([keepalive]=fail [close]=fail [many]=fail)
	RES=n/a
	RES2=n/a
	RES3=n/a
	available "$cfg" || return 0
	srv_start "$cfg" "nginx_$cfg" nginx -c "$NGX/nginx.conf" -p "$NGX" -e "$NGX/error.log"
	cgx peer
	if wait_for 20 srv_listening "$cfg" 8080; then
		for mode in $2; do
			out=$NK_TMP/wrk_${cfg}_$mode.txt
			hdr=()
			conns=32
			[ "$mode" = close ] && hdr=(-H "Connection: close")
			# Many connections share the server: a request may wait longer
			# than wrk's 2 s default on a loaded machine; that is slow,
			# not refused (connect errors still count).
			[ "$mode" = many ] && conns=$CONNS hdr=(--timeout 10s)
			cost_begin
			if "${CGX[@]}" timeout -k 5 60 ip netns exec "$NS_P" wrk -t1 -c"$conns" -d"${T}s" "${hdr[@]}" "http://$SRV_ADDR:8080/index.html" >"$out" 2>&1; then
				rps=$(awk '/Requests\/sec/{print $2}' "$out")
				errs=$(grep -cE 'Socket errors|Non-2xx' "$out" || true)
				if [ "$errs" != 0 ]; then
					rps="${rps}(errors)"
					log "wrk $cfg $mode: $(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' ' | tr '\n' ';')"
				fi
				got[$mode]=${rps:-fail}
			fi
			n=$(awk '/requests in/{print $1}' "$out")
			cost_end "nginx_$mode" "$cfg" "${n:-n/a}" 1k-req
			sleep 0.5
		done
	fi
	nk_stop "$SRV_PID"
	sleep 0.5
	RES=${got[keepalive]}
	RES2=${got[close]}
	RES3=${got[many]}
}
if want nginx_keepalive || want nginx_close || want nginx_many; then
	ka=()
	cl=()
	many=()
	modes=""
	want nginx_keepalive && modes="$modes keepalive"
	want nginx_close && modes="$modes close"
	want nginx_many && modes="$modes many"
	for cfg in native netkernel; do
		nginx_one "$cfg" "$modes"
		ka+=("$RES")
		cl+=("$RES2")
		many+=("$RES3")
	done
	if want nginx_keepalive; then
		record nginx_keepalive req/s 1 "${ka[@]}" - - "wrk -t1 -c32 -d${T}s from P, nginx 1 worker as the server, 64 B file"
	fi
	if want nginx_close; then
		record nginx_close req/s 1 "${cl[@]}" - - "same with -H 'Connection: close'"
	fi
	if want nginx_many; then
		record nginx_many req/s 1 "${many[@]}" - - "wrk -t1 -c$CONNS -d${T}s --timeout 10s keep-alive from P: many connections at once"
	fi
fi

# ---------------------------------------------------------------- redis

# redis_one CONFIG: RES = GET req/s, RES2 = SET req/s. SET runs first
# (as in -t get,set, so GET finds the key), each its own run and window.
redis_one() {
	local cfg=$1 out op v n CGX
	local -A got=([get]=fail [set]=fail)
	RES=n/a
	RES2=n/a
	available "$cfg" || return 0
	srv_start "$cfg" "redis_$cfg" redis-server --save '' --appendonly no --port 6390 \
		--bind 0.0.0.0 --protected-mode no --dir "$NK_TMP"
	cgx peer
	if wait_for 20 nk_port_listening "$SRV_NS" tcp 6390; then
		for op in set get; do
			out=$NK_TMP/redis_${cfg}_$op.txt
			n=n/a
			cost_begin
			# 100000 requests: 120 s allows 830 req/s (a loaded machine).
			if "${CGX[@]}" timeout -k 5 120 ip netns exec "$NS_P" redis-benchmark -h "$SRV_ADDR" -p 6390 \
				-n 100000 -c 50 -t "$op" -q >"$out" 2>&1; then
				v=$(tr '\r' '\n' <"$out" | sed -n "s/^${op^^}: \([0-9.]*\) requests per second.*/\1/p" | tail -n1)
				got[$op]=${v:-fail}
				n=100000
			fi
			cost_end "redis_$op" "$cfg" "$n" 1k-req
		done
	fi
	nk_stop "$SRV_PID"
	RES=${got[get]}
	RES2=${got[set]}
}
if want redis_get || want redis_set; then
	gv=()
	sv=()
	for cfg in native netkernel; do
		redis_one "$cfg"
		gv+=("$RES")
		sv+=("$RES2")
	done
	record redis_get req/s 1 "${gv[@]}" - - "redis-benchmark -n 100000 -c 50 -t get from P (after the -t set run), redis-server as the server"
	record redis_set req/s 1 "${sv[@]}" - - "same, -t set, a run of its own before the GET run"
fi

# ---------------------------------------------------------------- NOP

if want nop_rtt; then
	native=n/a
	nk=n/a
	cgx prog
	cost_begin
	"${CGX[@]}" timeout 60 "$TOOLS/nk_rawguest" pipe-bench 200000 >"$NK_TMP/pipe.out" 2>/dev/null || true
	r=$(grep RESULT "$NK_TMP/pipe.out" || true)
	cost_end nop_rtt native "$([ -n "$r" ] && echo 200000 || echo n/a)" 1k-op
	[ -n "$r" ] && native=$(field ops_per_s "$r")
	if [ "$have_nk" = 1 ]; then
		cost_begin
		"${CGX[@]}" timeout 60 ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK" --guest nop \
			nop-bench 200000 >"$NK_TMP/nop.out" 2>"$NK_TMP/nop.err" || true
		r=$(grep RESULT "$NK_TMP/nop.out" || true)
		cost_end nop_rtt netkernel "$([ -n "$r" ] && echo 200000 || echo n/a)" 1k-op
		nk=$(field ops_per_s "$r")
		nk=${nk:-fail}
	fi
	record nop_rtt ops/s 1 "$native" "$nk" - - "netkernel: NOP SQE -> nkd -> CQE, batch 1, raw ABI client; native: 1-byte pipe round trip between two processes (kernel IPC reference, not the same operation)"
fi

# ---------------------------------------------------------------- idle CPU

# cpu_pct PID SECS: % of one core used by PID over SECS.
cpu_pct() {
	local a b hz
	hz=$(getconf CLK_TCK)
	a=$(awk '{print $14 + $15}' "/proc/$1/stat")
	sleep "$2"
	b=$(awk '{print $14 + $15}' "/proc/$1/stat")
	awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$2" 'BEGIN{printf "%.2f", (b - a) / hz / s * 100}'
}
# cg_pct ROLE: % of one core ROLE's cgroup used between cost_snap b and c.
cg_pct() {
	[ -n "$CG" ] || {
		echo n/a
		return
	}
	awk -v a="${CS[b.$1]}" -v b="${CS[c.$1]}" -v ta="${CS[b.t]}" -v tb="${CS[c.t]}" \
		'BEGIN{printf "%.3f", (b - a) / (tb - ta) * 100}'
}
if want nkd_idle_cpu || want nkd_idle_cpu_guest || want idle; then
	idle=n/a
	idle_g=n/a
	idle_nkd=n/a
	idle_prog=n/a
	if [ "$have_nk" = 1 ] && nkd_alive; then
		# The pid in /proc is nkd itself: `ip netns exec` execs it.
		sleep 1
		idle=$(cpu_pct "$NK_NKD_PID" 10)
		# Again with a guest attached and holding an idle connection.
		bg_peer idle_echo "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 7009
		wait_for 10 nk_port_listening "$NS_P" tcp 7009 || true
		cgx prog
		bg idle_guest "${CGX[@]}" ip netns exec "$NS_G" "$NKRUN" --guest "$GUEST" --socket "$NK_SOCK" -- \
			"$PY" "$HELPERS/nkpy.py" hold "$P4" 7009 30
		if wait_for 10 grep -q connected=1 "$NK_TMP/idle_guest.log"; then
			sleep 1
			cost_snap b
			idle_g=$(cpu_pct "$NK_NKD_PID" 10)
			cost_snap c
			idle_nkd=$(cg_pct nkd)
			idle_prog=$(cg_pct prog)
		fi
	fi
	record nkd_idle_cpu "%core" 0 n/a "$idle" - - "nkd utime+stime over 10 s from /proc/PID/stat, no guest attached"
	record nkd_idle_cpu_guest "%core" 0 n/a "$idle_g" - - "same, one guest attached holding an idle TCP connection"
	REC_EXTRA=" guest=$idle_prog"
	record idle "%core" 0 n/a "$idle_nkd" - - "the same 10 s, from nkd's cgroup (cpu.stat usage_usec: exact, not 10 ms ticks); guest= is the idle guest program's own %core"
fi

# ---------------------------------------------------------------- multiplexing

# mux_N: N small HTTP servers, each its own guest of the one nkd (kernel
# NSM), under light fixed-rate load; native: the same N servers, each in a
# namespace of its own with its own veth to P. The server is nginx, one
# process (master_process off), 64 B file: about 3 MB each and microseconds
# of CPU per request, so 32 of them fit in memory and on 2 cores and the row
# measures the path, not the server (python's http.server would be ~20 MB
# and about a millisecond of interpreter per request each).
#
#   native     X_i (veth 10.N.(100+i).1 <-> .2 in P), nginx on port 8100+i
#   netkernel  Y_i (lo only), nkrun --guest mux<i>: each guest its own
#              (uid, netns) identity of the default config (unknown guests
#              allowed); its listener is on H4:8100+i in H (a port belongs
#              to one guest per NSM, so each guest has its own)
#
# The load generator (tests/bench/mux_load.py, in P, peer cgroup) keeps one
# keep-alive connection per server and sends NK_BENCH_MUX_RATE requests/s
# (default 50) to each for NK_BENCH_MUX_T seconds (default T), latency from
# each request's due time. Before the load, nkd's CPU with the N servers
# idle is taken over NK_BENCH_MUX_IDLE seconds (default 3): row mux_N_idle.
MUX_LIST=${NK_BENCH_MUX:-1 8 32}
MUX_RATE=${NK_BENCH_MUX_RATE:-50}
MUX_T=${NK_BENCH_MUX_T:-$T}
MUX_IDLE=${NK_BENCH_MUX_IDLE:-3}
MUXD=$NK_TMP/mux
MUX_UP=0 # namespaces 1..MUX_UP exist
# mux_up N: the native and guest namespaces and nginx configs 1..N.
mux_up() {
	local i x
	for ((i = MUX_UP + 1; i <= $1; i++)); do
		x=nk-x$i-$NK_ID
		topo_veth_to_p "$x" "nkx$i" "nkxp$i" $((100 + i))
		nk_netns_add "nk-y$i-$NK_ID"
		nginx_conf "$MUXD/$i" $((8100 + i)) "$NGX/www" 0 64 "access_log off;" \
			"keepalive_timeout 120s;" "keepalive_requests 100000000;"
	done
	for ((i = MUX_UP + 1; i <= $1; i++)); do
		wait_for 5 nk_link_up "nk-x$i-$NK_ID" "nkx$i" || log "mux: veth nkx$i not up"
	done
	[ "$1" -le "$MUX_UP" ] || MUX_UP=$1
}
# mux_start CONFIG N: servers 1..N as CONFIG (prog cgroup), pids in MUX_PIDS.
mux_start() {
	local cfg=$1 i CGX ngx
	MUX_PIDS=()
	cgx prog
	for ((i = 1; i <= $2; i++)); do
		ngx=(nginx -c "$MUXD/$i/nginx.conf" -p "$MUXD/$i" -e "$MUXD/$i/error.log")
		if [ "$cfg" = native ]; then
			bg "mux_${cfg}_$i" "${CGX[@]}" ip netns exec "nk-x$i-$NK_ID" "${ngx[@]}"
		else
			bg "mux_${cfg}_$i" "${CGX[@]}" ip netns exec "nk-y$i-$NK_ID" \
				"$NKRUN" --guest "mux$i" --socket "$NK_SOCK" -- "${ngx[@]}"
		fi
		MUX_PIDS+=("$LASTPID")
	done
}
# mux_wait CONFIG N: every server listens (a guest's listener is in H).
mux_wait() {
	local i ns
	for ((i = 1; i <= $2; i++)); do
		ns=$NS_H
		[ "$1" = native ] && ns=nk-x$i-$NK_ID
		wait_for 30 nk_port_listening "$ns" tcp $((8100 + i)) || {
			log "mux $1: server $i not listening on $((8100 + i)): $(tail -n 3 "$NK_TMP/mux_$1_$i.log" | tr '\n' ' ')"
			return 1
		}
	done
}
mux_stop() {
	local p
	for p in "${MUX_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${MUX_PIDS[@]}"; do nk_stop "$p"; done
	MUX_PIDS=()
	sleep 0.5
}
# ms_pct MS WALL_S: % of one core.
ms_pct() {
	if [[ $1 =~ ^[0-9.]+$ ]] && [[ $2 =~ ^[0-9.]+$ ]]; then
		awk -v m="$1" -v w="$2" 'BEGIN{ if (w > 0) printf "%.1f", m / w / 10; else printf "n/a" }'
	else
		echo n/a
	fi
}
# srv_cpu COSTLINE: the serving side's CPU per 1,000 requests, ms: the
# servers (prog) plus nkd, without the python load generator (peer), whose
# CPU per request would otherwise dominate cpu_*.
srv_cpu() {
	local p m w
	p=$(cost_kv prog_ms "$1")
	m=$(cost_kv nkd_ms "$1")
	w=$(cost_kv work "$1")
	[[ $m =~ ^[0-9.]+$ ]] || m=0
	if [[ $p =~ ^[0-9.]+$ ]] && [[ $w =~ ^[0-9.]+$ ]]; then
		awk -v p="$p" -v m="$m" -v w="$w" 'BEGIN{ if (w > 0) printf "%.1f", (p + m) / w * 1000; else printf "n/a" }'
	else
		echo n/a
	fi
}
# mux_one CONFIG N: RES = median over servers of their p99 (us); MUXR the
# load generator's RESULT line; for netkernel MUX_IDLE_NKD and
# MUX_IDLE_PROG (% of a core with the servers idle).
mux_one() {
	local cfg=$1 n=$2 out=$NK_TMP/mux_$1_$2 i targets=() CGX ok lp lf
	RES=n/a
	MUXR=
	MUX_IDLE_NKD=n/a
	MUX_IDLE_PROG=n/a
	[ "$cfg" = native ] || MUX_GUESTS=n/a
	available "$cfg" || return 0
	RES=fail
	for ((i = 1; i <= n; i++)); do
		if [ "$cfg" = native ]; then
			targets+=("10.$NK_N.$((100 + i)).1:$((8100 + i))")
		else
			targets+=("$H4:$((8100 + i))")
		fi
	done
	mux_start "$cfg" "$n"
	if mux_wait "$cfg" "$n"; then
		if [ "$cfg" = netkernel ]; then
			# Each server is a guest of its own: nkd's count of the
			# mux<i> guests with a connection.
			MUX_GUESTS=$(nkctl guests --json 2>/dev/null |
				jq '[.guests[] | select((.name | test("^mux[0-9]+$")) and .conns > 0)] | length' 2>/dev/null || echo n/a)
			sleep 1
			cost_snap b
			sleep "$MUX_IDLE"
			cost_snap c
			MUX_IDLE_NKD=$(cg_pct nkd)
			MUX_IDLE_PROG=$(cg_pct prog)
		fi
		# The client connects, says READY and waits for the go file: the
		# window holds the load, not python's start.
		cgx peer
		bg "mux_load_${cfg}_$n" "${CGX[@]}" timeout -k 5 $((MUX_T + 60)) ip netns exec "$NS_P" \
			"$PY" "$NK_ROOT/tests/bench/mux_load.py" "$MUX_RATE" "$MUX_T" "$out.per" "$out.go" "${targets[@]}"
		lp=$LASTPID
		lf=$NK_TMP/mux_load_${cfg}_$n.log
		wait_for 30 grep -q READY "$lf" || log "mux $cfg $n: load generator not ready"
		cost_begin
		: >"$out.go"
		wait "$lp" || true
		MUXR=$(grep '^RESULT' "$lf" || true)
		ok=$(field ok "$MUXR")
		cost_end "mux_$n" "$cfg" "${ok:-n/a}" 1k-req
		# Per server: index host:port ok errors p50 p99 max (us).
		mkdir -p "$BUILD/bench-mux"
		cp "$out.per" "$BUILD/bench-mux/mux_${n}_$cfg.txt" 2>/dev/null || true
		cp "$lf" "$BUILD/bench-mux/mux_${n}_$cfg.log" 2>/dev/null || true
		if grep -qv '^READY\|^RESULT' "$lf"; then
			log "mux $cfg $n: $(grep -v '^READY\|^RESULT' "$lf" | head -n 3 | tr '\n' ' ')"
		fi
		if [ -n "$MUXR" ] && [ -z "$(field fail "$MUXR")" ]; then
			RES=$(field p99_med "$MUXR")
			[ "$(field errors "$MUXR")" = 0 ] || RES="$RES(errors)"
		fi
	fi
	mux_stop
}
for n in $MUX_LIST; do
	want mux || want "mux_$n" || want "mux_${n}_idle" || continue
	if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 150 ]; then
		log "NK_BENCH_MUX: $n is not a server count in 1..150, skipped"
		continue
	fi
	mux_up "$n"
	v=()
	ex=""
	for cfg in native netkernel; do
		mux_one "$cfg" "$n"
		v+=("$RES")
		c=${COST[mux_$n.$cfg]:-}
		[ -n "$c" ] || continue
		ex="$ex p50_$cfg=$(field p50_med "$MUXR") p99_worst_$cfg=$(field p99_worst "$MUXR")"
		ex="$ex rps_$cfg=$(field rps "$MUXR") errors_$cfg=$(field errors "$MUXR")"
		ex="$ex srv_pct_$cfg=$(ms_pct "$(cost_kv prog_ms "$c")" "$(cost_kv wall_s "$c")")"
		ex="$ex srv_cpu_$cfg=$(srv_cpu "$c")"
		[ "$cfg" = netkernel ] && ex="$ex nkd_pct=$(ms_pct "$(cost_kv nkd_ms "$c")" "$(cost_kv wall_s "$c")")"
	done
	REC_EXTRA=" guests=$n rate=$MUX_RATE$ex"
	record "mux_$n" us 0 "${v[@]}" - - "$n nginx servers (1 process each, 64 B file), each its own guest (own netns, nkrun --guest mux<i>) of one nkd (kernel NSM) vs each in its own netns with a veth to P; from P one keep-alive connection per server at $MUX_RATE req/s each for ${MUX_T}s (tests/bench/mux_load.py; latency from sending, or from the due time when the previous response was late); value = median over servers of each server's p99; p50_* median p50, p99_worst_* worst server's p99, rps_* total responses/s, nkd_pct/srv_pct_* % of a core over the window"
	REC_EXTRA=" guests=$n nkd_guests=${MUX_GUESTS:-n/a} guest_progs=$MUX_IDLE_PROG"
	record "mux_${n}_idle" "%core" 0 n/a "$MUX_IDLE_NKD" - - "nkd's cgroup over ${MUX_IDLE}s with the $n guest nginx servers of mux_$n attached, listening and idle; nkd_guests = guests mux<i> nkd listed with a connection (nkctl guests), guest_progs = the $n servers' own %core together"
done

# ---------------------------------------------------------------- shm NSM

# shm_iperf3, shm_rtt_p50 (docs/shm-nsm.md): iperf3 and sockperf between
# two guests of one nkd whose policy lets them pair through the shm NSM
# (a second nkd, socket nkd-shm.sock, guests shma and shmb with shm=on),
# beside the same two programs natively over loopback TCP in one
# namespace (N): no NIC, no veth on either side.
# shm_one CONFIG: RES = iperf3 Gbit/s, RES2 = sockperf p50 (us).
shm_one() {
	local cfg=$1 sp out=$NK_TMP/shm_$1 srv=() cl=()
	RES=fail
	RES2=fail
	if [ "$cfg" = native ]; then
		srv=(ip netns exec "$NS_N")
		cl=(ip netns exec "$NS_N")
	else
		srv=(ip netns exec "$NS_G" "$NKRUN" --guest shma --socket "$SHM_SOCK" --)
		cl=(ip netns exec "$NS_G" "$NKRUN" --guest shmb --socket "$SHM_SOCK" --)
	fi
	bg "shm_ips_$cfg" "${srv[@]}" iperf3 -s -1 -p 5501
	sp=$LASTPID
	if wait_for 10 nk_port_listening "$([ "$cfg" = native ] && echo "$NS_N" || echo "$NS_H")" tcp 5501; then
		timeout -k 5 60 "${cl[@]}" iperf3 -c 127.0.0.1 -p 5501 -t "$T" -O 1 -J >"$out.iperf.json" 2>&1 || true
		RES=$(iperf_gbps "$out.iperf.json")
	fi
	wait_gone "$sp" 2
	nk_stop "$sp"
	bg "shm_sps_$cfg" "${srv[@]}" sockperf sr --tcp -i 0.0.0.0 -p 5502
	sp=$LASTPID
	if wait_for 10 nk_port_listening "$([ "$cfg" = native ] && echo "$NS_N" || echo "$NS_H")" tcp 5502; then
		if timeout -k 5 60 "${cl[@]}" sockperf pp --tcp -i 127.0.0.1 -p 5502 -m 64 -t "$T" --full-rtt >"$out.sockperf.txt" 2>&1; then
			RES2=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' "$out.sockperf.txt" | head -n1)
			RES2=${RES2:-fail}
		fi
	fi
	nk_stop "$sp"
}
# nkd_more NAME SOCK CONFIG [PREFIX...]: an nkd besides (or instead of)
# the first one, as PREFIX... nkd --socket SOCK --config CONFIG, log
# NAME.log, in the nkd cgroup; LASTPID its pid. True when SOCK is there
# within 10 s.
nkd_more() {
	local name=$1 sock=$2 conf=$3 pid
	shift 3
	bg "$name" "$@" "$NKD" --socket "$sock" --config "$conf"
	pid=$LASTPID
	cg_move nkd "$pid"
	LASTPID=$pid
	wait_for 10 test -S "$sock"
}
if { want shm_iperf3 || want shm_rtt_p50; } && [ "$have_nk" = 1 ]; then
	SHM_SOCK=$NK_TMP/nkd-shm.sock
	cat >"$NK_TMP/nkd-shm.conf" <<CONF
nsm kernel0 type=kernel
guest shma shm=on
guest shmb shm=on
CONF
	ip -n "$NS_N" link set lo up 2>/dev/null || true
	vi=()
	vr=()
	nkd_more nkd_shm "$SHM_SOCK" "$NK_TMP/nkd-shm.conf" ip netns exec "$NS_H" && rc=0 || rc=$?
	shm_nkd=$LASTPID
	if [ "$rc" = 0 ]; then
		for cfg in native netkernel; do
			shm_one "$cfg"
			vi+=("$RES")
			vr+=("$RES2")
		done
	else
		vi=(n/a n/a)
		vr=(n/a n/a)
	fi
	nk_stop "$shm_nkd"
	record shm_iperf3 Gbit/s 1 "${vi[@]}" - - "iperf3 -c 127.0.0.1 -t $T -O 1: native = client and server in one namespace over loopback TCP; netkernel = two guests (shma server, shmb client) of one nkd paired by shm=on through the shm NSM"
	record shm_rtt_p50 us 0 "${vr[@]}" - - "sockperf pp --tcp -m 64 -t $T --full-rtt to 127.0.0.1, p50 round trip; native and netkernel as in shm_iperf3"
fi

# ---------------------------------------------------------------- noisy neighbour

# noisy_p99: guest B's request latency while guest A saturates nkd, over
# B's latency alone, in the same run. B is one nginx (1 process, 64 B
# file, as mux_N) in guest noisyb (own netns), loaded from P at
# NK_BENCH_NOISY_RATE req/s (default 200) over one keep-alive connection
# for T seconds (tests/bench/mux_load.py: p50, p99 from each request's
# due time). A is guest noisya (own netns) running, one kind at a time
# (NK_BENCH_NOISY_KINDS, default "cpu nop wrk iperf3 connect attach"):
#
#   cpu      two shell loops that never sleep, no networking (both
#            configs): what nop's two never-sleeping spinners cost B
#            through the CPU alone
#   nop      nk_rawguest spin nop and spin inval: NOPs, and SOCKETs nkd
#            refuses, half an SQ of each in flight, never sleeping
#   wrk      nginx in A, wrk -c NK_BENCH_CONNS (256) -t 2 from P
#   iperf3   iperf3 -c -P 8 from A to P (bulk)
#   connect  wrk -c 32 -H 'Connection: close' from A to nginx in P: a
#            connect/close storm (one TCP connection per request)
#   attach   two nk_rawguest attach-many loops in A's namespace: processes
#            attaching and detaching (a new guest each) as fast as nkd
#            takes them
#
# Row value: the worst kind's ratio (p99 with A / p99 alone; goal <= 1.5);
# each kind's p99 and ratio are extra fields. The aggressor runs 1 s
# before and through the measurement; nkd's CPU share over the window is
# logged. The machine's own contention counts too (on 2 cores A's
# programs and nkd compete with B's nginx and the load generator): the
# native_* fields repeat wrk/iperf3/connect natively (A and B each in a
# namespace with a veth to P) as the reference for that.
NOISY_RATE=${NK_BENCH_NOISY_RATE:-200}
NOISY_KINDS=${NK_BENCH_NOISY_KINDS:-cpu nop wrk iperf3 connect attach}
NOISYD=$NK_TMP/noisy
noisy_up() {
	local x
	NS_NB=nk-nb-$NK_ID
	NS_NA=nk-na-$NK_ID
	nk_netns_add "$NS_NB"
	nk_netns_add "$NS_NA"
	# Native twins: B in nk-xb (10.N.150.1), A in nk-xa (10.N.151.1).
	for x in b a; do
		local ns=nk-x$x-$NK_ID o=150
		[ "$x" = a ] && o=151
		topo_veth_to_p "$ns" "nkx$x" "nkxp$x" "$o"
	done
	for x in b a p; do
		local port=8201 wc=64
		[ "$x" = a ] && port=8202 wc=4096
		[ "$x" = p ] && port=8203 wc=4096
		nginx_conf "$NOISYD/$x" "$port backlog=4096" "$NGX/www" 0 "$wc" "access_log off;" \
			"keepalive_timeout 120s;" "keepalive_requests 100000000;"
	done
	wait_for 5 nk_link_up "nk-xb-$NK_ID" nkxb || log "noisy: veth nkxb not up"
	wait_for 5 nk_link_up "nk-xa-$NK_ID" nkxa || log "noisy: veth nkxa not up"
}
# noisy_ngx CONFIG WHO (b|a|p): start that nginx (prog cgroup, P's in the
# peer cgroup); LASTPID; NOISY_ADDR is where P (or A) reaches it.
noisy_ngx() {
	local cfg=$1 x=$2 CGX ngx port=8201 ns
	[ "$x" = a ] && port=8202
	[ "$x" = p ] && port=8203
	ngx=(nginx -c "$NOISYD/$x/nginx.conf" -p "$NOISYD/$x" -e "$NOISYD/$x/error.log")
	if [ "$x" = p ]; then
		cgx peer
		bg "noisy_ngx_p" "${CGX[@]}" ip netns exec "$NS_P" "${ngx[@]}"
		ns=$NS_P
		NOISY_ADDR=$P4:$port
		[ "$cfg" = native ] && NOISY_ADDR=10.$NK_N.151.2:$port
	elif [ "$cfg" = native ]; then
		cgx prog
		ns=nk-x$x-$NK_ID
		bg "noisy_ngx_${cfg}_$x" "${CGX[@]}" ip netns exec "$ns" "${ngx[@]}"
		NOISY_ADDR=10.$NK_N.$([ "$x" = a ] && echo 151 || echo 150).1:$port
	else
		cgx prog
		ns=$NS_H
		bg "noisy_ngx_${cfg}_$x" "${CGX[@]}" ip netns exec "$([ "$x" = a ] && echo "$NS_NA" || echo "$NS_NB")" \
			"$NKRUN" --guest "noisy$x" --socket "$NK_SOCK" -- "${ngx[@]}"
		NOISY_ADDR=$H4:$port
	fi
	local pid=$LASTPID
	wait_for 30 nk_port_listening "$ns" tcp "$port" || log "noisy $cfg: nginx $x not listening on $port"
	LASTPID=$pid
}
# noisy_a CONFIG NS_OF_A CMD...: the aggressor program in A (prog cgroup).
noisy_a() {
	local cfg=$1 CGX
	shift
	cgx prog
	if [ "$cfg" = native ]; then
		bg "noisy_a_$NOISY_KIND" "${CGX[@]}" timeout -k 5 $((T + 30)) ip netns exec "nk-xa-$NK_ID" "$@"
	else
		bg "noisy_a_$NOISY_KIND" "${CGX[@]}" timeout -k 5 $((T + 30)) ip netns exec "$NS_NA" \
			"$NKRUN" --guest noisya --socket "$NK_SOCK" -- "$@"
	fi
	NOISY_APIDS+=("$LASTPID")
}
# noisy_agg CONFIG KIND: start aggressor KIND (pids in NOISY_APIDS, helper
# servers in NOISY_SPIDS); 1 if KIND does not apply to CONFIG.
noisy_agg() {
	local cfg=$1 kind=$2 secs=$((T + 3)) CGX peer_a
	NOISY_KIND=$kind
	NOISY_APIDS=()
	NOISY_SPIDS=()
	peer_a=$P4
	[ "$cfg" = native ] && peer_a=10.$NK_N.151.2
	case $kind in
	nop)
		[ "$cfg" = netkernel ] || return 1
		cgx prog
		bg noisy_a_nop "${CGX[@]}" timeout -k 5 $((T + 30)) ip netns exec "$NS_NA" \
			"$TOOLS/nk_rawguest" --socket "$NK_SOCK" --guest noisya spin nop "$secs"
		NOISY_APIDS+=("$LASTPID")
		bg noisy_a_inval "${CGX[@]}" timeout -k 5 $((T + 30)) ip netns exec "$NS_NA" \
			"$TOOLS/nk_rawguest" --socket "$NK_SOCK" --guest noisya spin inval "$secs"
		NOISY_APIDS+=("$LASTPID")
		;;
	cpu)
		# No networking: two processes that never sleep, as the
		# spinners of nop do, for the machine's share of their effect.
		cgx prog
		for i in 1 2; do
			bg "noisy_a_cpu$i" "${CGX[@]}" timeout -k 5 "$secs" ip netns exec "$NS_NA" \
				sh -c 'while :; do :; done'
			NOISY_APIDS+=("$LASTPID")
		done
		;;
	attach)
		[ "$cfg" = netkernel ] || return 1
		cgx prog
		for i in 1 2; do
			bg "noisy_a_attach$i" "${CGX[@]}" timeout -k 5 "$secs" ip netns exec "$NS_NA" \
				"$TOOLS/nk_rawguest" --socket "$NK_SOCK" attach-many "noisyat$i" 1000000
			NOISY_APIDS+=("$LASTPID")
		done
		;;
	wrk)
		noisy_ngx "$cfg" a
		NOISY_SPIDS+=("$LASTPID")
		cgx peer
		bg noisy_a_wrk "${CGX[@]}" timeout -k 5 $((T + 30)) ip netns exec "$NS_P" \
			wrk -t 2 -c "$CONNS" -d "${secs}s" "http://$NOISY_ADDR/index.html"
		NOISY_APIDS+=("$LASTPID")
		;;
	iperf3)
		cgx peer
		bg noisy_iperf_s "${CGX[@]}" ip netns exec "$NS_P" iperf3 -s -p 5310
		NOISY_SPIDS+=("$LASTPID")
		wait_for 10 nk_port_listening "$NS_P" tcp 5310 || log "noisy: iperf3 server not listening"
		noisy_a "$cfg" iperf3 -c "$peer_a" -p 5310 -P 8 -t "$secs"
		;;
	connect)
		noisy_ngx "$cfg" p
		NOISY_SPIDS+=("$LASTPID")
		noisy_a "$cfg" wrk -t 1 -c 32 -d "${secs}s" -H "Connection: close" "http://$NOISY_ADDR/index.html"
		;;
	*) return 1 ;;
	esac
	sleep 1
}
noisy_agg_stop() {
	local p
	for p in "${NOISY_APIDS[@]}" "${NOISY_SPIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${NOISY_APIDS[@]}" "${NOISY_SPIDS[@]}"; do nk_stop "$p"; done
	NOISY_APIDS=()
	NOISY_SPIDS=()
	sleep 0.5
}
# noisy_measure CONFIG TAG: B's latency now; RES = p99, RES2 = p50 (us).
noisy_measure() {
	local cfg=$1 tag=$2 lf=$NK_TMP/noisy_load_$1_$2.log CGX r
	RES=fail
	RES2=fail
	cgx peer
	"${CGX[@]}" timeout -k 5 $((T + 40)) ip netns exec "$NS_P" \
		"$PY" "$NK_ROOT/tests/bench/mux_load.py" "$NOISY_RATE" "$T" "$NK_TMP/noisy_$1_$2.per" - "$NOISY_B" \
		>"$lf" 2>&1 || true
	r=$(grep '^RESULT' "$lf" || true)
	if [ -n "$r" ] && [ -z "$(field fail "$r")" ]; then
		RES=$(field p99_med "$r")
		RES2=$(field p50_med "$r")
		[ "$(field errors "$r")" = 0 ] || RES="$RES(errors)"
	else
		log "noisy $cfg $tag: $(tail -n 3 "$lf" | tr '\n' ' ')"
	fi
}
noisy_ratio() {
	if [[ $1 =~ ^[0-9.]+$ ]] && [[ $2 =~ ^[0-9.]+$ ]]; then
		awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.2f", a / b; else printf "n/a" }'
	else
		echo n/a
	fi
}
if want noisy_p99; then
	noisy_up
	declare -A NW
	for cfg in native netkernel; do
		available "$cfg" || continue
		noisy_ngx "$cfg" b
		NOISY_BPID=$LASTPID
		NOISY_B=$NOISY_ADDR
		noisy_measure "$cfg" alone
		NW[$cfg.alone]=$RES
		NW[$cfg.alone50]=$RES2
		log "noisy $cfg: B alone p50 $RES2 p99 $RES us"
		for kind in $NOISY_KINDS; do
			if ! noisy_agg "$cfg" "$kind"; then
				noisy_agg_stop
				continue
			fi
			cost_begin
			noisy_measure "$cfg" "$kind"
			cost_end "noisy_$kind" "$cfg" n/a 1k-req
			c=${COST[noisy_$kind.$cfg]:-}
			NW[$cfg.$kind]=$RES
			NW[$cfg.${kind}50]=$RES2
			NW[$cfg.${kind}nkd]=$(ms_pct "$(cost_kv nkd_ms "$c")" "$(cost_kv wall_s "$c")")
			noisy_agg_stop
			log "noisy $cfg $kind: B p50 $RES2 p99 $RES us, ratio $(noisy_ratio "$RES" "${NW[$cfg.alone]}") (nkd ${NW[$cfg.${kind}nkd]} % core)"
		done
		kill -TERM "$NOISY_BPID" 2>/dev/null || true
		nk_stop "$NOISY_BPID"
	done
	ex=""
	worst=n/a
	worst_n=n/a
	for cfg in native netkernel; do
		ex="$ex p99_alone_$cfg=${NW[$cfg.alone]:-n/a} p50_alone_$cfg=${NW[$cfg.alone50]:-n/a}"
		for kind in $NOISY_KINDS; do
			[ -n "${NW[$cfg.$kind]:-}" ] || continue
			r=$(noisy_ratio "${NW[$cfg.$kind]}" "${NW[$cfg.alone]:-}")
			ex="$ex ${kind}_p99_$cfg=${NW[$cfg.$kind]} ${kind}_p50_$cfg=${NW[$cfg.${kind}50]} ${kind}_ratio_$cfg=$r"
			[ "$cfg" = netkernel ] && ex="$ex ${kind}_nkd_pct=${NW[$cfg.${kind}nkd]}"
			if [[ $r =~ ^[0-9.]+$ ]]; then
				if [ "$cfg" = netkernel ]; then
					{ [ "$worst" = n/a ] || awk -v a="$r" -v b="$worst" 'BEGIN{exit !(a > b)}'; } && worst=$r
				else
					{ [ "$worst_n" = n/a ] || awk -v a="$r" -v b="$worst_n" 'BEGIN{exit !(a > b)}'; } && worst_n=$r
				fi
			fi
		done
	done
	REC_EXTRA=" rate=$NOISY_RATE kinds=${NOISY_KINDS// /,}$ex"
	record noisy_p99 ratio 0 "$worst_n" "$worst" - - "guest B (nginx, 64 B, in its own netns) loaded from P at $NOISY_RATE req/s for ${T}s (mux_load.py) while guest A runs one aggressor at a time ($NOISY_KINDS: NOP + refused-entry spinners, wrk -c $CONNS at nginx in A, iperf3 -P 8 from A, wrk Connection: close from A, attach storm); value = worst kind's B p99 with A / B p99 alone (goal <= 1.5); native = the same with A and B in namespaces with veths (no nop or attach kind), the machine's own contention; cpu = two busy loops without networking, the reference for nop"
fi

# ---------------------------------------------------------------- afxdp NSM

# Last, because nk_steer on H's veth changes that veth for everything else
# (native XDP on a veth turns off GSO on its peer). The kernel-NSM nkd
# makes way for one whose afxdp NSM serves the same guest name.
afxdp_rows="iperf3_send iperf3_recv udp64_send udp64_recv sockperf_tcp_p50 sockperf_tcp_p99 nginx_keepalive nginx_close"
want_afxdp=0
for r in $afxdp_rows; do
	if [ -z "${NK_BENCH_ONLY:-}" ] || [[ " $NK_BENCH_ONLY " == *" afxdp_$r "* ]]; then
		want_afxdp=1
	fi
done
[ "${NK_BENCH_AFXDP:-1}" = 0 ] && want_afxdp=0
if [ "$want_afxdp" = 1 ] && [ "$have_nk" = 1 ]; then
	if [ ! -x "$NK_LOADER" ]; then
		log "$NK_LOADER missing: afxdp rows are n/a"
	elif ! afxdp_attach; then
		trap bench_exit EXIT # afxdp_attach set afxdp_exit; bench_exit calls it
		log "nk-loader attach failed, afxdp rows are n/a: $(cat "$NK_TMP/loader.log")"
	else
		trap bench_exit EXIT
		nk_stop "$NK_NKD_PID"
		rm -f "$NK_SOCK"
		cat >"$NK_TMP/nkd-afxdp.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 queues=$(afxdp_rxqueues) netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
CONF
		# In the host's namespaces, where the bpffs with the pins is.
		nkd_more nkd_afxdp "$NK_SOCK" "$NK_TMP/nkd-afxdp.conf" && rc=0 || rc=$?
		NK_NKD_PID=$LASTPID
		if [ "$rc" = 0 ] && nkd_alive; then
			have_afxdp=1
		else
			log "afxdp nkd did not start, afxdp rows are n/a: $(tail -n 3 "$NK_TMP/nkd_afxdp.log")"
		fi
	fi
fi
# arow NAME UNIT HIB AFXDP NOTE: an afxdp_* row next to NAME's values.
arow() {
	record "afxdp_$1" "$2" "$3" "${VAL[$1.native]:-n/a}" "$4" - - "$5 (afxdp NSM)" "${VAL[$1.netkernel]:-n/a}"
}
if [ "$want_afxdp" = 1 ]; then
	for dir in send recv; do
		if want "afxdp_iperf3_$dir"; then
			iperf_one afxdp "$dir"
			arow "iperf3_$dir" Gbit/s 1 "$RES" "iperf3 -t $T -O 1, 1 stream"
		fi
	done
	for dir in send recv; do
		if want "afxdp_udp64_$dir"; then
			udp_one afxdp "$dir"
			arow "udp64_$dir" pkt/s 1 "$RES" "$(udp_note "$dir")"
		fi
	done
	if want afxdp_sockperf_tcp_p50 || want afxdp_sockperf_tcp_p99; then
		sockperf_one afxdp
		arow sockperf_tcp_p50 us 0 "$RES" "sockperf pp --tcp -m 64 -t $T --full-rtt"
		arow sockperf_tcp_p99 us 0 "$RES2" "same run, 99th percentile"
	fi
	if want afxdp_nginx_keepalive || want afxdp_nginx_close; then
		nginx_one afxdp "keepalive close"
		arow nginx_keepalive req/s 1 "$RES" "wrk -t1 -c32 -d${T}s from P to nginx in the guest"
		arow nginx_close req/s 1 "$RES2" "same with -H 'Connection: close'"
	fi
fi

# ---------------------------------------------------------------- JSON

"$PY" - "$RESULTS" "$JSON_OUT" "$T" "$COST_TSV" "$COST_BASE" <<'EOF'
import json, sys, time, os
rows = []
def num(x):
    try:
        return float(x)
    except ValueError:
        return None if x in ("-", "n/a") else x
def kv(text):
    return {k: num(v) for k, v in (f.split("=", 1) for f in text.split() if "=" in f)}
# cost[row][config] = {"cpu": per unit, "sys": per unit, "cpu_ms": ...}
cost = {}
for line in open(sys.argv[4]):
    row, cfg, fields = line.rstrip("\n").split("\t")
    cost.setdefault(row, {})[cfg] = kv(fields)
def ratio(a, b, cost=False):
    # A CPU cost below zero is the noise of sys= on a busy machine.
    if isinstance(a, float) and isinstance(b, float) and a > 0 and (b > 0 or not cost):
        return round(b / a, 3)
    return None
for line in open(sys.argv[1]):
    name, unit, hib, nat, nk, sl, pa, note, knsm, extra = line.rstrip("\n").split("\t")
    r = {"name": name, "unit": unit, "higher_is_better": hib == "1",
         "native": num(nat), "netkernel": num(nk), "note": note}
    r["ratio"] = ratio(r["native"], r["netkernel"])
    if sl != "-":
        r["slirp"] = num(sl)
    if pa != "-":
        r["pasta"] = num(pa)
    if knsm != "-":
        r["kernel_nsm"] = num(knsm)
    if extra != "-":
        r.update(kv(extra))
    # The CPU cost of the row's work, as in the bench line; "cpu" has
    # every measured configuration with its split (docs/benchmarks.md).
    base, nkcfg = (name[6:], "afxdp") if name.startswith("afxdp_") else (name, "netkernel")
    c = cost.get(base, {})
    if "native" in c or nkcfg in c:
        nat_c, nk_c = c.get("native", {}), c.get(nkcfg, {})
        r["cpu_unit"] = next(iter(c.values())).get("unit")
        r["cpu_native"] = nat_c.get("cpu")
        r["cpu_netkernel"] = nk_c.get("cpu")
        r["cpu_ratio"] = ratio(nat_c.get("cpu"), nk_c.get("cpu"), True)
        r["cpu_nkd"] = nk_c.get("nkd")
        r["sys_native"] = nat_c.get("sys")
        r["sys_netkernel"] = nk_c.get("sys")
        r["sys_ratio"] = ratio(nat_c.get("sys"), nk_c.get("sys"), True)
        if nkcfg == "afxdp":
            names = {"native": "native", "afxdp": "netkernel", "netkernel": "kernel_nsm"}
        else:
            names = {"native": "native", "netkernel": "netkernel", "slirp": "slirp", "pasta": "pasta"}
        r["cpu"] = {names[k]: v for k, v in c.items() if k in names}
    rows.append(r)
out = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "host": os.uname().nodename, "kernel": os.uname().release,
       "cpus": os.cpu_count(), "seconds_per_measurement": int(sys.argv[3]),
       "baseline_seconds": float(sys.argv[5]),
       "benchmarks": rows}
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
EOF
log "wrote $JSON_OUT"
