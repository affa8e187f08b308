#!/usr/bin/env bash
# NOP spinning. Work that does nothing (NOPs, refused or failed entries,
# doorbells) used to count as work for nkd's adaptive spin, so one NOP per
# millisecond kept nkd busy-polling at ~99 % of a core. Now only real work
# earns the busy spin, and a guest that submits NOPs as fast as it can
# gets its per-pass budget (NK_POLL_BUDGET x weight entries) and no more,
# so others keep their latency.
#
# 1. Two raw guests spin NOPs as fast as their round trips go (one alone,
#    one in batches of 64) next to the bystander: no stall, transfers
#    intact.
# 2. Alone, one guest sends 1 NOP per millisecond for 10 s: nkd must sleep
#    between them (its loop-sleep counter grows with the NOPs; before, it
#    stayed in the busy spin). nkd's CPU time over those 10 s is logged,
#    not asserted.
# timeout: 150
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_rawguest
BYS_BYTES=$((32 << 20))
BYS_PINGS=300
SPIN_SECS=10
san_nkd_up

bystander_start 9400
sleep 0.5
bg "spin1" ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK" \
	--guest spinner1 nop-rate 0 "$SPIN_SECS" 1
s1=$LASTPID
bg "spin64" ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK" \
	--guest spinner2 nop-rate 0 "$SPIN_SECS" 64
s2=$LASTPID
bystander_finish
wait "$s1" || fail "spinner 1 failed: $(tail -n 3 "$NK_TMP/spin1.log")"
wait "$s2" || fail "spinner 2 failed: $(tail -n 3 "$NK_TMP/spin64.log")"
log "spinner 1: $(grep RESULT "$NK_TMP/spin1.log")"
log "spinner 2: $(grep RESULT "$NK_TMP/spin64.log")"

# nkd's CPU (utime + stime, clock ticks) and loop sleeps around a phase.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$NK_NKD_PID/stat"; }
sleeps() { nkctl stats | awk '$1 == "netkernel_loop_sleeps_total" { print $2 }'; }
sleep 1
z0=$(sleeps)
c0=$(cpu_ticks)
r=$(ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK" --guest ticker \
	nop-rate 1000 10) || fail "1 NOP/ms guest failed: $r"
c1=$(cpu_ticks)
z1=$(sleeps)
nops=$(field ops "$r")
hz=$(getconf CLK_TCK)
log "1 NOP/ms for 10 s: $r"
log "nkd CPU over it: $(awk -v t=$((c1 - c0)) -v hz="$hz" 'BEGIN { printf "%.2f s of 10 s (%.0f %%)", t / hz, t / hz * 10 }') (ASan build; informative), loop sleeps: $((z1 - z0)) for $nops NOPs"
[ $((z1 - z0)) -ge $((nops / 4)) ] ||
	fail "nkd slept only $((z1 - z0)) times for $nops sparse NOPs: NOPs keep it spinning"
nkd_alive || fail "nkd died"
nk_san_stop
log "PASS"
