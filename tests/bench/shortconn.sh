#!/usr/bin/env bash
# Per-connection cost of short connections, counted rather than timed
# (docs/benchmarks.md, "Short connections"). nginx (1 worker, 64 B file)
# runs in a NIC-less guest; from P a bounded client opens N connections one
# after the other, each `GET / HTTP/1.1` with `Connection: close`, and reads
# to EOF. What is counted over exactly those N connections:
#
#   strace     strace -c -f attached to nkd and to the nginx worker after
#              both are up, detached after the last connection: system
#              calls per connection on each side
#   callgrind  nkd under valgrind --tool=callgrind, instrumentation on
#              for the N connections only: instructions per connection and
#              calls of each function (ring ops by their handlers)
#   none       CPU time (schedstat) and context switches of nkd and the
#              worker, nkd's loop sleeps and spin hits, per connection
#   perf       perf record (cpu-clock, call graphs) of nkd and of the
#              worker over the N connections: where their CPU goes
#   ops        nkd's ops_total for the guest (nkctl stats) before/after:
#              ring operations per connection (always reported)
#
# Usage (root): tests/bench/shortconn.sh [strace|callgrind|none|perf]
# Environment: NK_SC_N (connections, default 2000), BUILD (whose nkd, nkrun
# and shim: e.g. BUILD=/work/base/build for an older tree), NK_SC_OUT
# (directory the raw outputs are copied to, default $BUILD/shortconn),
# NK_SC_WRK=C (instead of the sequential client, wrk -cC -d3s with
# Connection: close, the bench's load; N is then what wrk completed),
# NK_SC_NOSPIN=1 (nkd and the shim do not spin before sleeping).
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
[ "$(id -u)" = 0 ] || { echo "shortconn: run as root" >&2; exit 1; }
MODE=${1:-strace}
N=${NK_SC_N:-2000}
OUT=${NK_SC_OUT:-$BUILD/shortconn}
mkdir -p "$OUT"
need_cmd nginx
[ "$MODE" = strace ] && need_cmd strace
[ "$MODE" = callgrind ] && need_cmd valgrind callgrind_control
[ "$MODE" = perf ] && need_cmd perf
# NK_SC_NOSPIN=1: nkd and the shim sleep at once instead of spinning, so
# CPU time and context switches count work and wake-ups, not spin.
if [ "${NK_SC_NOSPIN:-0}" = 1 ]; then
	export NK_SPIN_MAX_NS=0 NK_WAIT_SPIN_MAX_NS=0 NK_MUX_SPIN_MAX_NS=0
fi
topo_up

if [ "$MODE" = callgrind ]; then
	bg nkd ip netns exec "$NS_H" valgrind --tool=callgrind --instr-atstart=no \
		--callgrind-out-file="$NK_TMP/nkd.cg" "$NKD" --socket "$NK_SOCK"
	NK_NKD_PID=$LASTPID
	wait_for 60 test -S "$NK_SOCK" || fail "nkd under valgrind did not start"
else
	start_nkd
fi

ngx=$NK_TMP/nginx
mkdir -p "$ngx/www"
head -c 64 /dev/zero | tr '\0' x >"$ngx/www/index.html"
nginx_conf "$ngx" "8080 backlog=4096" "$ngx/www" 1 4096 "access_log off;" "sendfile on;" "tcp_nodelay on;"
nginx_guest nginx "$ngx" 8080 60
master=$(pgrep -o -f "nginx -c $ngx/nginx.conf")
wait_for 10 pgrep -P "$master" || fail "no nginx worker"
worker=$(pgrep -P "$master" | head -n1)

# client N: N sequential Connection: close requests from P; prints the
# number that got a full 200 response.
client() { close_requests "$H4" 8080 "$1"; }
# runtime PID: scheduler runtime (ns) and context switches of all its
# threads, "NS VOL INVOL".
runtime() {
	local t ns=0 v=0 iv=0 a
	for t in /proc/"$1"/task/*; do
		read -r a _ <"$t/schedstat" || continue
		ns=$((ns + a))
		v=$((v + $(awk '/^voluntary_ctxt/{print $2}' "$t/status")))
		iv=$((iv + $(awk '/^nonvoluntary_ctxt/{print $2}' "$t/status")))
	done
	echo "$ns $v $iv"
}
# threads PID: "COMM RUNTIME_NS" per thread.
threads() {
	local t a
	for t in /proc/"$1"/task/*; do
		read -r a _ <"$t/schedstat" 2>/dev/null || continue
		echo "$(cat "$t/comm") $a"
	done
}
metric() { nkctl stats 2>/dev/null | awk -v m="$1" '$1 == m {print $2}'; }
ops() { nkctl stats 2>/dev/null | awk -v g="$GUEST" '$1 ~ /^netkernel_guest_ops_total/ && index($1, "guest=\"" g "\"") {s += $2} END {print s + 0}'; }

client 20 >/dev/null # warm up: first-use costs are not per-connection
sleep 0.5
ops0=$(ops)
sl0=$(metric netkernel_loop_sleeps_total)
hi0=$(metric netkernel_loop_spin_hits_total)
read -r nkns0 nkv0 nkiv0 < <(runtime "$NK_NKD_PID")
read -r wns0 wv0 wiv0 < <(runtime "$worker")
threads "$NK_NKD_PID" >"$NK_TMP/thr0"
case $MODE in
strace)
	strace -c -f -o "$NK_TMP/nkd.strace" -p "$NK_NKD_PID" 2>/dev/null &
	st1=$!
	strace -c -f -o "$NK_TMP/worker.strace" -p "$worker" 2>/dev/null &
	st2=$!
	sleep 1
	;;
callgrind) callgrind_control -i on "$NK_NKD_PID" >/dev/null ;;
perf)
	perf record -q -e cpu-clock -g -o "$NK_TMP/nkd.perf" -p "$NK_NKD_PID" 2>/dev/null &
	st1=$!
	perf record -q -e cpu-clock -g -o "$NK_TMP/worker.perf" -p "$worker" 2>/dev/null &
	st2=$!
	sleep 1
	;;
esac
if [ "${NK_SC_WRK:-0}" -gt 0 ]; then
	# The bench's load instead: wrk -c NK_SC_WRK for 3 s; N becomes the
	# requests it completed.
	run_peer wrk -t1 -c"$NK_SC_WRK" -d3s -H "Connection: close" "http://$H4:8080/index.html" >"$NK_TMP/wrk.txt" 2>&1
	N=$(awk '/requests in/{print $1}' "$NK_TMP/wrk.txt")
	ok="$(grep -cE 'Socket errors|Non-2xx' "$NK_TMP/wrk.txt" || true) wrk error lines"
else
	ok=$(client "$N")
fi
case $MODE in
strace | perf)
	kill -INT "$st1" "$st2"
	wait "$st1" "$st2" || true
	;;
callgrind)
	callgrind_control -i off "$NK_NKD_PID" >/dev/null
	callgrind_control -d "$NK_NKD_PID" >/dev/null
	;;
esac
ops1=$(ops)
sl1=$(metric netkernel_loop_sleeps_total)
hi1=$(metric netkernel_loop_spin_hits_total)
read -r nkns1 nkv1 nkiv1 < <(runtime "$NK_NKD_PID")
read -r wns1 wv1 wiv1 < <(runtime "$worker")
threads "$NK_NKD_PID" >"$NK_TMP/thr1"
per() { awk -v a="$1" -v b="$2" -v n="$N" -v d="${3:-1}" 'BEGIN{printf "%.2f", (b - a) / n / d}'; }
if [ "$MODE" = none ]; then
	log "nkd: $(per "$nkns0" "$nkns1" 1000) us CPU, $(per "$nkv0" "$nkv1") voluntary + $(per "$nkiv0" "$nkiv1") involuntary context switches, $(per "${sl0:-0}" "${sl1:-0}") loop sleeps, $(per "${hi0:-0}" "${hi1:-0}") spin hits per connection"
	log "nkd threads (us CPU per connection): $(awk -v n="$N" 'NR == FNR {a[$1] += $2; next} {b[$1] += $2} END {for (k in b) printf "%s=%.1f ", k, (b[k] - a[k]) / n / 1000}' "$NK_TMP/thr0" "$NK_TMP/thr1")"
	log "nginx worker: $(per "$wns0" "$wns1" 1000) us CPU, $(per "$wv0" "$wv1") voluntary + $(per "$wiv0" "$wiv1") involuntary context switches per connection"
fi
log "connections: $N, full responses: $ok"
log "ring ops per connection: $(awk -v a="$ops0" -v b="$ops1" -v n="$N" 'BEGIN{printf "%.2f", (b - a) / n}')"
perconn() { # strace -c file: calls per connection, by syscall
	awk -v n="$N" '$1 ~ /^[0-9.]+$/ && NF >= 5 {c = $4; name = $NF; printf "%8.3f %s\n", c / n, name}' "$1" | sort -rn
}
case $MODE in
strace)
	cp "$NK_TMP/nkd.strace" "$NK_TMP/worker.strace" "$OUT/"
	log "nkd system calls per connection:"
	perconn "$NK_TMP/nkd.strace" >&2
	log "nginx worker system calls per connection:"
	perconn "$NK_TMP/worker.strace" >&2
	;;
perf)
	for w in nkd worker; do
		cp "$NK_TMP/$w.perf" "$OUT/"
		log "$w: where the CPU goes (perf report --no-children, $OUT/$w.perf):"
		perf report -i "$OUT/$w.perf" --no-children --stdio -g none \
			--percent-limit 1 2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 40 >&2
	done
	;;
callgrind)
	sleep 1
	# shellcheck disable=SC2012  # our own file names: the newest dump
	f=$(ls -t "$NK_TMP"/nkd.cg* | head -n1)
	cp "$f" "$OUT/nkd.cg"
	ir=$(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/{gsub(",", "", $1); print $1}')
	log "nkd instructions per connection: $(awk -v a="$ir" -v n="$N" 'BEGIN{printf "%.0f", a / n}') (callgrind, $OUT/nkd.cg)"
	;;
esac
