#!/usr/bin/env bash
# nk_steer BPF logic through BPF_PROG_TEST_RUN (build/tests-bpf/steer_test):
# verdicts, redirect targets, exit and per-guest counters, ACL drops,
# truncated and malformed frames. No traffic: the test binary works in a
# private network namespace of its own. Root needed; 77 = skip.
# timeout: 60
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
bin=$BUILD/tests-bpf/steer_test
if [ "$(id -u)" != 0 ]; then
	echo "[steer_prog] SKIP: needs root (BPF_PROG_TEST_RUN of XDP)" >&2
	exit 77
fi
[ -x "$bin" ] || { echo "[steer_prog] FAIL: missing $bin (run make)" >&2; exit 1; }
timeout -k 5 50 "$bin"
rc=$?
case $rc in 0 | 77) exit $rc ;; *) exit 1 ;; esac
