#!/usr/bin/env bash
# Lost EINTR: a signal whose handler has no SA_RESTART, delivered while a
# blocking recv waits, must make the recv return EINTR (docs/shim.md
# "Signals"). nk_eintr_race (tests/tools/nk_eintr_race.c) signals a thread
# blocked in recv at random moments, 300 times, while another thread keeps
# completions flowing (so the shim's waiter wakes often), and counts the
# handlers that ran without recv returning EINTR; then 30 tries with an
# SA_RESTART handler (recv must not return EINTR), and what sigaction()
# reports back (the program's own handler and flags, SA_RESETHAND).
# Runs natively in H first (the kernel: 0 lost), then in G through nkd,
# with CPU load (bounded busy loops) beside it: every count must be 0.
# No timing is asserted.
# timeout: 300
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
RACE=$TOOLS/nk_eintr_race
[ -x "$RACE" ] || fail "missing $RACE (run make)"
need_nk
topo_up
start_nkd

TRIES=${NK_EINTR_TRIES:-300}
args=(--tries "$TRIES" --restart-tries 30 --grace 500)

# CPU load: as many bounded busy loops as CPUs, gone after 240 s at most.
load_up() {
	local n i
	n=$(nproc)
	for i in $(seq 1 "$n"); do
		bg "load$i" timeout 240 sh -c 'while :; do :; done'
	done
}
load_up

log "native run in H (validates the check)"
out=$(run_host "$RACE" "${args[@]}" 2>&1) || {
	printf '%s\n' "$out" >&2
	fail "nk_eintr_race fails natively, so the test itself is wrong"
}
printf '%s\n' "$out" | sed 's/^/  native: /' >&2

log "guest run in G through nkd"
set +e
out=$(run_guest "$RACE" "${args[@]}" 2>&1)
rc=$?
set -e
printf '%s\n' "$out" | sed 's/^/  guest: /' >&2
if [ -z "${NK_NATIVE:-}" ]; then
	nkd_alive || fail "nkd died during the guest run"
fi
[ "$rc" = 0 ] || fail "under nkd: $(printf '%s\n' "$out" | grep -E '^(lost|restart_eintr|sigaction_bad) ' | tr '\n' ' ')(exit status $rc)"
log "ok: $(printf '%s\n' "$out" | grep '^lost ')"
