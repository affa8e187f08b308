#!/usr/bin/env bash
# Placeholder-end abuse (issue 6 §4). nkd makes every readiness socketpair
# and gives a guest only the app end (docs/abi.md §6): the old
# guest-made PLACEHOLDER, with which a guest could keep a copy of the nkd
# end, is refused (the client is dropped). Then an attacker guest floods
# its own placeholder fds from 3 threads (write and read as fast as it
# can, bounded time) while making nkd mirror readiness on them (datagrams
# to itself, RECVs until EAGAIN): every drain/fill loop of nkd has a byte
# budget, so the bystander's transfers stay intact and its latency probe
# sees no stall. A SOCKET naming another process's pool placeholder
# (NK_SQE_F_PH) is refused. ASan+UBSan nkd.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_rawguest
san_nkd_up
RG=(ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK")
HAMMER_SECS=${NK_HAMMER_SECS:-8}

r=$("${RG[@]}" --guest attacker ph-old | grep RESULT) || fail "ph-old failed"
log "old PLACEHOLDER: $r"
[ "$(field refused "$r")" = 1 ] || fail "nkd took a guest-made placeholder (the guest keeps the nkd end): $r"

# A SOCKET naming another process's pool placeholder (NK_SQE_F_PH) is
# refused as abuse and leaves it the owner's; its own binds and mirrors.
r=$("${RG[@]}" --guest attacker ph-steal | grep RESULT) || fail "ph-steal failed: $r"
log "placeholder named in the SQE: $r"
[ "$(field feature "$r")" = 1 ] || fail "nkd does not offer NK_FEAT_PH_SQE: $r"
[ "$(field stolen "$r")" = 0 ] || fail "a SOCKET bound another process's placeholder: $r"
[ "$(field abuse "$r")" = 1 ] || fail "naming another process's placeholder was not refused as abuse: $r"
[ "$(field own "$r")" = 1 ] || fail "a SOCKET naming its own placeholder failed: $r"
[ "$(field mirrored "$r")" = 1 ] || fail "its own placeholder, named in the SOCKET, does not mirror readiness: $r"
[ "$(field reuse_refused "$r")" = 1 ] || fail "a placeholder id was usable twice: $r"
[ "$(field other_ok "$r")" = 1 ] || fail "the refused placeholder was lost to its owner: $r"

BYS_BYTES=$((32 << 20))
bystander_start 9400
# Two attackers, 16 placeholders each, 3 flooding threads each.
hp=()
for i in 1 2; do
	bg "hammer$i" "${RG[@]}" --guest "attacker$i" ph-hammer "$HAMMER_SECS" 16
	hp+=("$LASTPID")
done
for i in 1 2; do
	wait "${hp[i - 1]}" || fail "attacker $i failed: $(tail -n 3 "$NK_TMP/hammer$i.log")"
	r=$(grep RESULT "$NK_TMP/hammer$i.log") || fail "attacker $i printed no result"
	log "attacker $i: $r"
	[ "$(field written "$r")" -gt 0 ] || fail "attacker $i wrote nothing into its placeholders: $r"
done
bystander_finish
nkd_alive || fail "nkd died"
nk_san_stop
log "PASS"
