#!/usr/bin/env bash
# Descriptor exhaustion by several guests: every guest socket costs nkd
# three descriptors, so a few default guests at their max_sockets used to
# exhaust nkd's RLIMIT_NOFILE (five guests with ~3.9 k sockets each took
# all 20,000), and then every guest failed. nkd now has a socket budget
# derived from its descriptors: configured guests reserve sockets
# (reserve=), the rest is shared, and one guest the config does not name
# gets at most default_share (50 %) of the shared pool. Here nkd runs
# with 8192 descriptors; four unnamed guests open sockets as fast as they
# can (up to 4000 each) and hold them, while the bystander (reserve=64)
# moves its data and can still open new sockets. Attackers get ENOBUFS
# (docs/nkd.md "Budgets"), and nkd itself never runs out of descriptors.
# timeout: 150
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd jq
BYS_BYTES=$((32 << 20))
BYS_PINGS=300
ATTACKERS=4
PER_ATTACKER=4000
HOLD=20
# nkd (and everything else this test starts) gets 8192 descriptors.
ulimit -n 8192 || skip "cannot set RLIMIT_NOFILE to 8192"

cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest $BYS_GUEST reserve=64
unknown_guests allow
CONF
san_nkd_up "$NK_TMP/nkd.conf"
nkctl status --json >"$NK_TMP/status0.json" || fail "nkctl status failed"
log "budget: $(jq -c .budget "$NK_TMP/status0.json")"

bystander_start 9400
sleep 1

atk=()
for i in $(seq 1 "$ATTACKERS"); do
	NKPY_HOLD=$HOLD GUEST=atk$i bg_guest "atk$i" "$PY" "$HELPERS/nkpy.py" sockets "$PER_ATTACKER"
	atk+=("$LASTPID")
done
# Until every attacker has opened what it could (they then hold).
for i in $(seq 1 "$ATTACKERS"); do
	wait_for 60 grep -q RESULT "$NK_TMP/atk$i.log" || fail "attacker $i did not finish opening sockets"
done
nkctl status --json >"$NK_TMP/status1.json" || fail "nkctl status failed under the attack"
log "under attack: $(jq -c .budget.sockets "$NK_TMP/status1.json")"

# The bystander still opens new sockets and connects while they hold.
r=$(GUEST=$BYS_GUEST run_guest "$PY" "$HELPERS/nkpy.py" sockets 40 "$P4" "$((BYS_BASE + 2))") ||
	fail "bystander could not open sockets under the attack: $r"
r=$(grep RESULT <<<"$r")
log "bystander under attack: $r"
[ "$(field opened "$r")" = 40 ] && [ "$(field errors "$r")" = none ] ||
	fail "bystander was refused sockets under the attack: $r"
[ "$(field connect "$r")" = ok ] || fail "bystander could not connect under the attack: $r"

total=0
for i in $(seq 1 "$ATTACKERS"); do
	r=$(grep RESULT "$NK_TMP/atk$i.log")
	log "attacker $i: $r"
	total=$((total + $(field opened "$r")))
	if [ "$(field opened "$r")" -lt "$PER_ATTACKER" ]; then
		case ",$(field errors "$r")," in
		*,ENOBUFS,*) ;;
		*) fail "attacker $i was refused with $(field errors "$r"), not ENOBUFS" ;;
		esac
	fi
done
log "attackers hold $total sockets"
[ "$total" -lt $((ATTACKERS * PER_ATTACKER)) ] || fail "attackers got every socket they asked for: no budget"
bystander_finish
# The budget nkctl shows: derived from the 8192 descriptors, with the
# reservation, and the attackers' refusals counted.
limit=$(jq -r '.budget.sockets.limit' "$NK_TMP/status1.json")
[ "$limit" -gt 0 ] && [ "$limit" -lt 8192 ] || fail "socket budget not derived from 8192 descriptors: $limit"
[ "$(jq -r '.budget.sockets.reserved' "$NK_TMP/status1.json")" = 64 ] || fail "reserve=64 not in the budget"
[ "$(jq -r '.budget.sockets.refused' "$NK_TMP/status1.json")" -gt 0 ] || fail "no refusal counted"
for p in "${atk[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${atk[@]}"; do wait "$p" 2>/dev/null || true; done
if grep -qiE 'too many open files|EMFILE' "$NK_TMP/nkd.log"; then
	grep -iE 'too many open files|EMFILE' "$NK_TMP/nkd.log" | head -5 >&2
	fail "nkd ran out of descriptors"
fi
nk_san_stop
log "PASS"
