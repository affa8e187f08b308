#!/usr/bin/env bash
# Runs every netkernel test: the cmocka unit tests in build/tests/ and
# build/tests/san/, then each tests/integration/*.sh, each under its own
# timeout. One line per test, then exactly one summary line
#   N passed, N failed, N skipped
# Exit status 0 when nothing failed. Exit code 77 from a test means skip.
#
#   tests/run-all.sh [PATTERN...]   only tests whose name contains a PATTERN
# Environment: BUILD (default build), NK_TEST_TIMEOUT (default per-test
# timeout for integration tests without a "# timeout: N" line, 300 s),
# NK_UNIT_TIMEOUT (120 s). Logs: $BUILD/test-logs/<name>.log (NK_LOGDIR).
set -eu
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
LOGDIR=${NK_LOGDIR:-$BUILD/test-logs}
rm -rf "$LOGDIR"
mkdir -p "$LOGDIR"
npass=0
nfail=0
nskip=0
failed=()

selected() {
	local p
	[ $# -gt 1 ] || return 0
	for p in "${@:2}"; do
		case $1 in *"$p"*) return 0 ;; esac
	done
	return 1
}

# Each test gets its own NK_ID (lib.sh names its namespaces nk-?-$NK_ID), so
# a namespace it leaves behind is found without touching other runs'.
seq_id=0
leftover_netns() { ip netns list 2>/dev/null | awk '{print $1}' | grep -- "^nk-.-$1\$" || true; }

# run_one NAME TIMEOUT CMD...
run_one() {
	local name=$1 t=$2 log rc t0 t1 leaked reason id
	shift 2
	log=$LOGDIR/$(printf '%s' "$name" | tr '/' '_').log
	seq_id=$((seq_id + 1))
	id=$((($$ % 100000) * 1000 + seq_id))
	t0=$(date +%s.%N)
	set +e
	NK_ID=$id timeout -k 15 "$t" "$@" </dev/null >"$log" 2>&1
	rc=$?
	set -e
	t1=$(date +%s.%N)
	leaked=$(leftover_netns "$id")
	local dur
	dur=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1fs", b-a}')
	if [ -n "$leaked" ]; then
		echo "  leaked namespaces: $leaked" >>"$log"
		for ns in $leaked; do
			for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
			ip netns del "$ns" 2>/dev/null || true
		done
		[ "$rc" = 0 ] && rc=1
	fi
	case $rc in
	0)
		npass=$((npass + 1))
		printf 'PASS  %-40s %s\n' "$name" "$dur"
		;;
	77)
		nskip=$((nskip + 1))
		reason=$(grep -o 'SKIP: .*' "$log" | tail -n1 | cut -c7-)
		printf 'SKIP  %-40s %s (%s)\n' "$name" "$dur" "${reason:-no reason given}"
		;;
	*)
		nfail=$((nfail + 1))
		failed+=("$name")
		reason=""
		[ "$rc" = 124 ] || [ "$rc" = 137 ] && reason=" (timed out after ${t}s)"
		[ -n "$leaked" ] && reason="$reason (left namespaces behind)"
		printf 'FAIL  %-40s %s exit %s%s\n' "$name" "$dur" "$rc" "$reason"
		tail -n 40 "$log" | sed 's/^/      | /'
		;;
	esac
}

# ---- unit tests (cmocka), normal then ASan/UBSan builds
for dir in "$BUILD/tests" "$BUILD/tests/san"; do
	[ -d "$dir" ] || continue
	for bin in "$dir"/*; do
		if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
		name=unit/${bin#"$BUILD"/tests/}
		selected "$name" "$@" || continue
		run_one "$name" "${NK_UNIT_TIMEOUT:-120}" "$bin"
	done
done

# ---- integration tests
for t in tests/integration/*.sh; do
	[ -e "$t" ] || continue
	name=integration/$(basename "$t" .sh)
	selected "$name" "$@" || continue
	to=$(sed -n 's/^# timeout: *\([0-9][0-9]*\).*/\1/p' "$t" | head -n1)
	run_one "$name" "${to:-${NK_TEST_TIMEOUT:-300}}" bash "$t"
done

[ ${#failed[@]} -eq 0 ] || echo "failed: ${failed[*]} (logs in $LOGDIR/)"
echo "$npass passed, $nfail failed, $nskip skipped"
[ "$nfail" -eq 0 ]
