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
# (ratio = netkernel / native) and writes $BUILD/bench.json. Rows named
# afxdp_* repeat a benchmark on the afxdp NSM: there netkernel= is the
# afxdp NSM's value, ratio = afxdp / native, and kernel_nsm= is the
# netkernel value of the plain row (kernel NSM) for comparison. Measurements
# are short (3-4 s); nothing here is asserted. A column that cannot be
# measured (tool missing, program failed) says n/a or fail, and the bench
# carries on. docs/benchmarks.md explains the method.
#
# Environment: NK_BENCH_T (seconds per measurement, default 3),
# NK_BENCH_ONLY (space-separated benchmark names to run; an afxdp_* name
# also runs its plain twin), NK_BENCH_AFXDP=0 skips the afxdp rows.
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
	wait_for 10 nk_link_up "$NS_S" tap0 || { log "slirp4netns did not come up"; have_slirp=0; }
fi
if [ "$have_pasta" = 1 ]; then
	nk_netns_add "$NS_T"
	# As root pasta would switch to nobody and then fail to enter the
	# namespace; --no-map-gw: P4 is the gateway and must stay P4.
	bg pasta ip netns exec "$NS_H" pasta -f -q --runas 0 -4 --no-map-gw \
		--config-net -t none -u none -T none -U none --netns "/run/netns/$NS_T"
	wait_for 10 sh -c "ip -n '$NS_T' -br addr | grep -q '$H4'" ||
		{ log "pasta did not come up"; have_pasta=0; }
fi
if [ "$have_nk" = 1 ]; then
	start_nkd
else
	log "build/nkd, nkrun or libnkshim.so missing: netkernel column is n/a"
fi

# cli CONFIG CMD...: run a client program as CONFIG, bounded.
cli() {
	local cfg=$1
	shift
	case $cfg in
	native) timeout -k 5 60 ip netns exec "$NS_N" "$@" ;;
	netkernel | afxdp) timeout -k 5 60 ip netns exec "$NS_G" "$NKRUN" --guest "$GUEST" --socket "$NK_SOCK" -- "$@" ;;
	slirp) timeout -k 5 60 ip netns exec "$NS_S" "$@" ;;
	pasta) timeout -k 5 60 ip netns exec "$NS_T" "$@" ;;
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
record() {
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$6" "$7" "$8" "${9:--}" >>"$RESULTS"
	VAL[$1.native]=$4
	VAL[$1.netkernel]=$5
	local ratio=n/a extra=""
	if [[ $4 =~ ^[0-9.]+$ ]] && [[ $5 =~ ^[0-9.]+$ ]] && [ "$(awk -v a="$4" 'BEGIN{print (a > 0)}')" = 1 ]; then
		ratio=$(awk -v a="$4" -v b="$5" 'BEGIN{printf "%.2f", b / a}')
	fi
	[ "$6" != - ] && extra="$extra slirp=$6"
	[ "$7" != - ] && extra="$extra pasta=$7"
	[ "${9:--}" != - ] && extra="$extra kernel_nsm=$9"
	printf 'bench: %s native=%s netkernel=%s ratio=%s unit=%s%s\n' "$1" "$4" "$5" "$ratio" "$2" "$extra"
}

# ---------------------------------------------------------------- iperf3

# Results come back in RES (and RES2), not through $(...): a subshell would
# lose track of the background servers it starts.

# iperf_one CONFIG send|recv: RES = Gbit/s
iperf_one() {
	local cfg=$1 dir=$2 port=5301 out=$NK_TMP/iperf_$1_$2.json rev=()
	RES=n/a
	available "$cfg" || return 0
	RES=fail
	[ "$dir" = recv ] && rev=(-R)
	bg "iperf_s_${cfg}_$dir" ip netns exec "$NS_P" iperf3 -s -1 -p "$port"
	local sp=$LASTPID
	if wait_for 10 nk_port_listening "$NS_P" tcp "$port" &&
		cli "$cfg" iperf3 -c "$(peer_addr "$cfg")" -p "$port" -t "$T" -O 1 -J "${rev[@]}" >"$out" 2>&1; then
		RES=$(jq -r '.end.sum_received.bits_per_second / 1e9 | . * 100 | round / 100' "$out" 2>/dev/null || echo fail)
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

# ---------------------------------------------------------------- sockperf

# sockperf_one CONFIG: RES = p50, RES2 = p99 (us)
sockperf_one() {
	local cfg=$1 port=11111 out=$NK_TMP/sockperf_$1.txt
	RES=n/a
	RES2=n/a
	available "$cfg" || return 0
	RES=fail
	RES2=fail
	bg "sockperf_s_$cfg" ip netns exec "$NS_P" sockperf sr --tcp -i 0.0.0.0 -p "$port"
	local sp=$LASTPID
	if wait_for 10 nk_port_listening "$NS_P" tcp "$port" &&
		cli "$cfg" sockperf pp --tcp -i "$(peer_addr "$cfg")" -p "$port" -m 64 -t "$T" --full-rtt >"$out" 2>&1; then
		RES=$(sed -n 's/.*percentile 50.000 = *\([0-9.]*\).*/\1/p' "$out" | head -n1)
		RES2=$(sed -n 's/.*percentile 99.000 = *\([0-9.]*\).*/\1/p' "$out" | head -n1)
		RES=${RES:-fail}
		RES2=${RES2:-fail}
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
udp_one() {
	local cfg=$1 dir=$2 port=5302 out=$NK_TMP/udp_$1_$2.json rev=()
	RES=n/a
	available "$cfg" || return 0
	RES=fail
	[ "$dir" = recv ] && rev=(-R)
	bg "udp_s_${cfg}_$dir" ip netns exec "$NS_P" iperf3 -s -1 -p "$port"
	local sp=$LASTPID
	if wait_for 10 nk_port_listening "$NS_P" tcp "$port" &&
		cli "$cfg" iperf3 -c "$(peer_addr "$cfg")" -p "$port" -u -l 64 -b 0 -t "$T" -J "${rev[@]}" >"$out" 2>&1; then
		RES=$(jq -r '.end.sum_received | .bytes / 64 / .seconds | round' "$out" 2>/dev/null || echo fail)
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
mkdir -p "$NGX/www" "$NGX/tmp"
head -c 64 /dev/zero | tr '\0' x >"$NGX/www/index.html"
cat >"$NGX/nginx.conf" <<EOF
user root root;
worker_processes 1;
daemon off;
master_process on;
pid $NGX/nginx.pid;
error_log $NGX/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_requests 100000000;
    client_body_temp_path $NGX/tmp;
    proxy_temp_path $NGX/tmp;
    fastcgi_temp_path $NGX/tmp;
    uwsgi_temp_path $NGX/tmp;
    scgi_temp_path $NGX/tmp;
    server {
        listen 8080 backlog=4096;
        root $NGX/www;
        location / { }
    }
}
EOF

# srv_start CONFIG NAME CMD...: a server as CONFIG (native in N, netkernel
# in G); echoes the address P uses to reach it.
srv_start() {
	local cfg=$1 name=$2
	shift 2
	if [ "$cfg" = native ]; then
		bg "$name" ip netns exec "$NS_N" "$@"
		SRV_NS=$NS_N
		SRV_ADDR=$N4
	else
		bg_guest "$name" "$@"
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

# nginx_one CONFIG: RES = keep-alive req/s, RES2 = Connection: close req/s
nginx_one() {
	local cfg=$1 ka=fail cl=fail mode out
	RES=n/a
	RES2=n/a
	available "$cfg" || return 0
	srv_start "$cfg" "nginx_$cfg" nginx -c "$NGX/nginx.conf" -p "$NGX" -e "$NGX/error.log"
	if wait_for 20 srv_listening "$cfg" 8080; then
		for mode in keepalive close; do
			out=$NK_TMP/wrk_${cfg}_$mode.txt
			hdr=()
			[ "$mode" = close ] && hdr=(-H "Connection: close")
			if timeout -k 5 60 ip netns exec "$NS_P" wrk -t1 -c32 -d"${T}s" "${hdr[@]}" "http://$SRV_ADDR:8080/index.html" >"$out" 2>&1; then
				local rps errs
				rps=$(awk '/Requests\/sec/{print $2}' "$out")
				errs=$(grep -cE 'Socket errors|Non-2xx' "$out" || true)
				[ "$errs" = 0 ] || rps="${rps}(errors)"
				[ "$mode" = keepalive ] && ka=${rps:-fail} || cl=${rps:-fail}
			fi
			sleep 0.5
		done
	fi
	nk_stop "$SRV_PID"
	sleep 0.5
	RES=$ka
	RES2=$cl
}
if want nginx_keepalive || want nginx_close; then
	ka=()
	cl=()
	for cfg in native netkernel; do
		nginx_one "$cfg"
		ka+=("$RES")
		cl+=("$RES2")
	done
	record nginx_keepalive req/s 1 "${ka[@]}" - - "wrk -t1 -c32 -d${T}s from P, nginx 1 worker as the server, 64 B file"
	record nginx_close req/s 1 "${cl[@]}" - - "same with -H 'Connection: close'"
fi

# ---------------------------------------------------------------- redis

# redis_one CONFIG: RES = GET req/s, RES2 = SET req/s
redis_one() {
	local cfg=$1 out=$NK_TMP/redis_$1.txt get=fail set=fail
	RES=n/a
	RES2=n/a
	available "$cfg" || return 0
	srv_start "$cfg" "redis_$cfg" redis-server --save '' --appendonly no --port 6390 \
		--bind 0.0.0.0 --protected-mode no --dir "$NK_TMP"
	if wait_for 20 nk_port_listening "$SRV_NS" tcp 6390; then
		if timeout -k 5 60 ip netns exec "$NS_P" redis-benchmark -h "$SRV_ADDR" -p 6390 \
			-n 100000 -c 50 -t get,set -q >"$out" 2>&1; then
			set=$(tr '\r' '\n' <"$out" | sed -n 's/^SET: \([0-9.]*\) requests per second.*/\1/p' | tail -n1)
			get=$(tr '\r' '\n' <"$out" | sed -n 's/^GET: \([0-9.]*\) requests per second.*/\1/p' | tail -n1)
		fi
	fi
	nk_stop "$SRV_PID"
	RES=${get:-fail}
	RES2=${set:-fail}
}
if want redis_get || want redis_set; then
	gv=()
	sv=()
	for cfg in native netkernel; do
		redis_one "$cfg"
		gv+=("$RES")
		sv+=("$RES2")
	done
	record redis_get req/s 1 "${gv[@]}" - - "redis-benchmark -n 100000 -c 50 -t get from P, redis-server as the server"
	record redis_set req/s 1 "${sv[@]}" - - "same, SET"
fi

# ---------------------------------------------------------------- NOP

if want nop_rtt; then
	native=n/a
	nk=n/a
	r=$(timeout 60 "$TOOLS/nk_rawguest" pipe-bench 200000 2>/dev/null | grep RESULT || true)
	[ -n "$r" ] && native=$(field ops_per_s "$r")
	if [ "$have_nk" = 1 ]; then
		r=$(timeout 60 ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK" --guest nop \
			nop-bench 200000 2>"$NK_TMP/nop.err" | grep RESULT || true)
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
if want nkd_idle_cpu; then
	idle=n/a
	idle_g=n/a
	if [ "$have_nk" = 1 ] && nkd_alive; then
		# The pid in /proc is nkd itself: `ip netns exec` execs it.
		sleep 1
		idle=$(cpu_pct "$NK_NKD_PID" 10)
		# Again with a guest attached and holding an idle connection.
		bg_peer idle_echo "$PY" "$HELPERS/nkpy.py" echo-server "$P4" 7009
		wait_for 10 nk_port_listening "$NS_P" tcp 7009 || true
		bg_guest idle_guest "$PY" "$HELPERS/nkpy.py" hold "$P4" 7009 30
		if wait_for 10 grep -q connected=1 "$NK_TMP/idle_guest.log"; then
			sleep 1
			idle_g=$(cpu_pct "$NK_NKD_PID" 10)
		fi
	fi
	record nkd_idle_cpu "%core" 0 n/a "$idle" - - "nkd utime+stime over 10 s from /proc/PID/stat, no guest attached"
	record nkd_idle_cpu_guest "%core" 0 n/a "$idle_g" - - "same, one guest attached holding an idle TCP connection"
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
		log "nk-loader attach failed, afxdp rows are n/a: $(cat "$NK_TMP/loader.log")"
	else
		nk_stop "$NK_NKD_PID"
		rm -f "$NK_SOCK"
		cat >"$NK_TMP/nkd-afxdp.conf" <<CONF
nsm kernel0 type=kernel netns=/run/netns/$NS_H
nsm xdp0 type=afxdp dev=$NK_XDEV addr=$X4/24 queues=$(afxdp_rxqueues) netns=/run/netns/$NS_H
guest $GUEST nsm=xdp0
CONF
		# In the host's namespaces, where the bpffs with the pins is.
		bg nkd_afxdp "$NKD" --socket "$NK_SOCK" --config "$NK_TMP/nkd-afxdp.conf"
		NK_NKD_PID=$LASTPID
		if wait_for 10 test -S "$NK_SOCK" && nkd_alive; then
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
		nginx_one afxdp
		arow nginx_keepalive req/s 1 "$RES" "wrk -t1 -c32 -d${T}s from P to nginx in the guest"
		arow nginx_close req/s 1 "$RES2" "same with -H 'Connection: close'"
	fi
fi

# ---------------------------------------------------------------- JSON

"$PY" - "$RESULTS" "$JSON_OUT" "$T" <<'EOF'
import json, sys, time, os
rows = []
def num(x):
    try:
        return float(x)
    except ValueError:
        return None if x in ("-", "n/a") else x
for line in open(sys.argv[1]):
    name, unit, hib, nat, nk, sl, pa, note, knsm = line.rstrip("\n").split("\t")
    r = {"name": name, "unit": unit, "higher_is_better": hib == "1",
         "native": num(nat), "netkernel": num(nk), "note": note}
    if isinstance(r["native"], float) and isinstance(r["netkernel"], float) and r["native"]:
        r["ratio"] = round(r["netkernel"] / r["native"], 3)
    else:
        r["ratio"] = None
    if sl != "-":
        r["slirp"] = num(sl)
    if pa != "-":
        r["pasta"] = num(pa)
    if knsm != "-":
        r["kernel_nsm"] = num(knsm)
    rows.append(r)
out = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "host": os.uname().nodename, "kernel": os.uname().release,
       "cpus": os.cpu_count(), "seconds_per_measurement": int(sys.argv[3]),
       "benchmarks": rows}
with open(sys.argv[2], "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
EOF
log "wrote $JSON_OUT"
