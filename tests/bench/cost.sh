# shellcheck shell=bash
# CPU cost of a benchmark, sourced by tests/bench/run.sh after lib.sh. The
# method (docs/benchmarks.md, "CPU cost"):
#
#   cost_begin                      the server side is up and idle: 1 s of
#                                   the machine's busy time as a baseline,
#                                   then the window opens
#   ...run the measured program(s) to completion...
#   cost_end ROWS CFG WORK UNIT     the window closes; the cost of WORK
#                                   units (bytes for GB, else counts) is
#                                   stored for each row in ROWS
#
# Two measures of the same window:
#   cpu  the CPU time of what the row started: the program, the load
#        generator or server in P, the middle (nkd, slirp4netns or pasta),
#        each role in a cgroup v2 of its own (cpu.stat usage_usec: the
#        scheduler's exact runtime, all threads, children and processes
#        that exited in the window), plus the ksoftirqd threads. The
#        kernel's network work mostly runs as softirq in the context of
#        the process that sent (veth is all softirq), and this kernel
#        (tick accounting, no IRQ_TIME_ACCOUNTING) charges it to that
#        process, so it is in here. Untouched by other tenants.
#   sys  the machine's busy time from /proc/stat (user + nice + system +
#        irq + softirq, all CPUs) minus the rate of a baseline taken just
#        before, times the window: also softirq on idle CPUs and kernel
#        threads, but also whatever else the machine ran; only meaningful
#        on a quiet machine (bg_pct, the baseline's busy share, says how
#        quiet it was). With a busy baseline it undercounts: the others
#        get less CPU while the row runs.
# The processes are put in their cgroups by a prefix ("${CGX[@]}" from
# cgx ROLE), so everything they fork is accounted too.

COST_BASE=${NK_BENCH_BASE:-1}
COST_TSV=$NK_TMP/cost.tsv
: >"$COST_TSV"
COST_HZ=$(getconf CLK_TCK)
COST_NCPU=$(getconf _NPROCESSORS_ONLN)
KSOFTIRQD=$(pgrep '^ksoftirqd/' || true)
declare -A CS COST COST_UNIT

# One cgroup v2 directory per role under a per-run parent; empty CG (no
# cgroup2 mount, or not writable) leaves the `cpu` measure n/a (sys stays).
CG=
cost_cg_root=$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)
if [ -n "$cost_cg_root" ] && mkdir "$cost_cg_root/nk-bench-$NK_ID" 2>/dev/null; then
	CG=$cost_cg_root/nk-bench-$NK_ID
	if ! mkdir "$CG/prog" "$CG/peer" "$CG/nkd" "$CG/fwd" 2>/dev/null ||
		[ ! -r "$CG/prog/cpu.stat" ]; then
		rmdir "$CG/prog" "$CG/peer" "$CG/nkd" "$CG/fwd" 2>/dev/null || true
		rmdir "$CG" 2>/dev/null || true
		CG=
	fi
fi
[ -n "$CG" ] || log "no writable cgroup v2: the cpu_* columns are n/a (sys_* stay)"

# cgx ROLE: CGX is a command prefix that runs the command in ROLE's cgroup
# (an exec chain, so $! and kill still reach the program).
cgx() {
	CGX=()
	[ -n "$CG" ] || return 0
	# shellcheck disable=SC2016,SC2034 # $0 and $@ are sh's; CGX is for the caller
	CGX=(sh -c 'echo 0 >"$0/cgroup.procs" && exec "$@"' "$CG/$1")
}
# cg_move ROLE PID: an already running process (all its threads) to ROLE.
cg_move() {
	[ -n "$CG" ] && [ -n "$2" ] || return 0
	echo "$2" >"$CG/$1/cgroup.procs" 2>/dev/null ||
		log "could not move pid $2 into the $1 cgroup"
}
# The cgroups go when their processes have: nk_cleanup kills them, then
# exits, so a short bounded loop outlives it.
cost_cleanup() {
	[ -n "$CG" ] || return 0
	(
		for _ in $(seq 100); do
			rmdir "$CG/prog" "$CG/peer" "$CG/nkd" "$CG/fwd" "$CG" 2>/dev/null
			[ -d "$CG" ] || break
			sleep 0.1
		done
	) >/dev/null 2>&1 &
}

# cost_snap NAME: the counters now, with builtins only (no fork inside the
# window's edges).
cost_snap() {
	local p=$1 u n s irq sirq r v pid f
	CS[$p.t]=${EPOCHREALTIME//[!0-9]/}
	read -r _ u n s _ _ irq sirq _ </proc/stat
	CS[$p.busy]=$((u + n + s + irq + sirq))
	CS[$p.sirq]=$((irq + sirq))
	for r in prog peer nkd fwd; do
		v=0
		[ -n "$CG" ] && read -r _ v <"$CG/$r/cpu.stat"
		CS[$p.$r]=$v
	done
	v=0
	for pid in $KSOFTIRQD; do
		if read -r -a f <"/proc/$pid/stat"; then
			v=$((v + f[13] + f[14]))
		fi
	done 2>/dev/null
	CS[$p.ksi]=$v
}

cost_begin() {
	cost_snap a
	sleep "$COST_BASE"
	cost_snap b
}

# cost_end ROWS CFG WORK UNIT: UNIT is GB (WORK in bytes) or 1k-req,
# 1k-dgram, 1k-rtt, 1k-op (WORK a count). A WORK that is not a positive
# number stores n/a.
cost_end() {
	local rows=$1 cfg=$2 work=$3 unit=$4 mid=none div=1000 line r
	cost_snap c
	case $cfg in
	netkernel | afxdp) mid=nkd ;;
	slirp | pasta) mid=fwd ;;
	esac
	[ "$unit" = GB ] && div=1e9
	[[ $work =~ ^[0-9.]+$ ]] || work=0
	# Baseline rate (busy ticks per microsecond) over a..b, charged for
	# the window b..c. cpu (own): cgroups in us, ksoftirqd in ticks.
	line=$(awk -v hz="$COST_HZ" -v ncpu="$COST_NCPU" -v cg="${CG:+1}" -v mid="$mid" \
		-v work="$work" -v div="$div" \
		-v ta="${CS[a.t]}" -v tb="${CS[b.t]}" -v tc="${CS[c.t]}" \
		-v ba="${CS[a.busy]}" -v bb="${CS[b.busy]}" -v bc="${CS[c.busy]}" \
		-v sb="${CS[b.sirq]}" -v sc="${CS[c.sirq]}" \
		-v pb="${CS[b.prog]}" -v pc="${CS[c.prog]}" \
		-v qb="${CS[b.peer]}" -v qc="${CS[c.peer]}" \
		-v mb="${CS[b.$mid]:-0}" -v mc="${CS[c.$mid]:-0}" \
		-v kb="${CS[b.ksi]}" -v kc="${CS[c.ksi]}" '
	function f(x, a) {
		a = x < 0 ? -x : x
		return sprintf((a >= 100) ? "%.0f" : ((a >= 10) ? "%.1f" : "%.2f"), x)
	}
	BEGIN {
		tick = 1000 / hz; win = (tc - tb) / 1000; base = (tb - ta) / 1000
		bg = base > 0 ? (bb - ba) * tick / base : 0
		busy = (bc - bb) * tick
		total = busy - bg * win
		units = work / div
		prog = (pc - pb) / 1000; peer = (qc - qb) / 1000
		m = mid == "none" ? 0 : (mc - mb) / 1000
		ksi = (kc - kb) * tick
		own = prog + peer + m + ksi
		o = (units > 0 && cg) ? f(own / units) : "n/a"
		t = (units > 0) ? f(total / units) : "n/a"
		om = cg ? sprintf("%.1f", own) : "n/a"
		printf "cpu=%s sys=%s", o, t
		if (mid != "none")
			printf " %s=%s", mid, (units > 0 && cg) ? f(m / units) : "n/a"
		printf " cpu_ms=%s sys_ms=%.1f busy_ms=%.0f bg_pct=%.0f", om, total, busy, bg * 100 / ncpu
		if (cg) {
			printf " prog_ms=%.1f peer_ms=%.1f", prog, peer
			if (mid != "none")
				printf " %s_ms=%.1f", mid, m
		}
		printf " ksoftirqd_ms=%.0f softirq_ms=%.0f wall_s=%.2f work=%s\n",
			ksi, (sc - sb) * tick, win / 1000, work
	}')
	log "cost $rows $cfg: $line"
	for r in $rows; do
		COST[$r.$cfg]=$line
		COST_UNIT[$r]=ms/$unit
		printf '%s\t%s\t%s unit=ms/%s\n' "$r" "$cfg" "$line" "$unit" >>"$COST_TSV"
	done
}

# cost_kv KEY LINE: KEY's value in a cost line (n/a when absent).
cost_kv() {
	local re="(^| )$1=([^ ]*)"
	[[ $2 =~ $re ]] && echo "${BASH_REMATCH[2]}" || echo n/a
}

# cost_fields ROW: the cost fields of a bench line: the plain row's
# configs, or for afxdp_X the native and afxdp values of X with the
# kernel NSM's as cpu_kernel_nsm.
cost_fields() {
	local base=$1 nkcfg=netkernel out cfg v a b bg=0 x
	if [[ $1 == afxdp_* ]]; then
		base=${1#afxdp_}
		nkcfg=afxdp
	fi
	[ -n "${COST[$base.native]:-}${COST[$base.$nkcfg]:-}" ] || return 0
	a=$(cost_kv cpu "${COST[$base.native]:-}")
	b=$(cost_kv cpu "${COST[$base.$nkcfg]:-}")
	out=" cpu_native=$a cpu_netkernel=$b cpu_ratio=$(cost_ratio "$a" "$b") cpu_unit=${COST_UNIT[$base]}"
	out="$out cpu_nkd=$(cost_kv nkd "${COST[$base.$nkcfg]:-}")"
	a=$(cost_kv sys "${COST[$base.native]:-}")
	b=$(cost_kv sys "${COST[$base.$nkcfg]:-}")
	out="$out sys_native=$a sys_netkernel=$b sys_ratio=$(cost_ratio "$a" "$b")"
	for cfg in native "$nkcfg"; do
		x=$(cost_kv bg_pct "${COST[$base.$cfg]:-}")
		[[ $x =~ ^[0-9]+$ ]] && [ "$x" -gt "$bg" ] && bg=$x
	done
	out="$out sys_bg=$bg"
	if [ "$nkcfg" = afxdp ]; then
		[ -n "${COST[$base.netkernel]:-}" ] &&
			out="$out cpu_kernel_nsm=$(cost_kv cpu "${COST[$base.netkernel]}")"
	else
		for cfg in slirp pasta; do
			v=${COST[$base.$cfg]:-}
			[ -n "$v" ] && out="$out cpu_$cfg=$(cost_kv cpu "$v")"
		done
	fi
	printf '%s' "$out"
}
cost_ratio() {
	if [[ $1 =~ ^[0-9.]+$ ]] && [[ $2 =~ ^[0-9.]+$ ]]; then
		awk -v a="$1" -v b="$2" 'BEGIN{ if (a > 0) printf "%.2f", b / a; else printf "n/a" }'
	else
		echo n/a
	fi
}
