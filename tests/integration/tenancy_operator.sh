#!/usr/bin/env bash
# The operator's hand, beside a bystander guest (its checksummed transfers
# and latency probe must run on intact through everything below):
# (a) root inside the guests' network namespace G is not the operator:
#     nkctl queries and commands from G are refused with the reason, while
#     nkctl from the test's own namespace works, and so does uid nobody,
#     which the config names (`operator uid=65534`); another uid is refused;
# (b) `nkctl set` lowers the attacker guest's max_sockets at run time: its
#     next sockets fail with ENFILE, counted under reason "sockets" in
#     `nkctl guests` and in `nkctl stats`;
# (c) `nkctl evict` disconnects the attacker (its connection dies);
# (d) `nkctl reload` and SIGHUP apply a changed policy to the attacker only
#     (the bystander, whose line did not change, keeps its connections); a
#     broken config and an NSM change are refused and the old config stays.
# timeout: 120
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_root
need_netkernel
need_cmd jq setpriv
[ -x "$TOOLS/nk_stream" ] || fail "missing $TOOLS/nk_stream (run make)"
topo_up
# Others may reach the control socket (uid nobody is an operator here).
chmod 755 "$NK_TMP"

conf() { # ATTACKER-EXTRA [MORE-LINES]
	cat <<CONF
nsm kernel0 type=kernel
guest bystander nsm=kernel0 uid=0
guest atk nsm=kernel0 uid=0 $1
operator uid=65534
unknown_guests deny
${2:-}
CONF
}
conf "max_sockets=64" >"$NK_TMP/nkd.conf"
nk_use_san_nkd
start_nkd "$NK_TMP/nkd.conf"
BYS_BYTES=$((48 << 20))
BYS_PINGS=${BYS_PINGS_OP:-1000}
bystander_start 9400

# The attacker: one connection to the peer's echo server, kept open.
GUEST=atk bg_guest atk_hold "$PY" "$HELPERS/nkpy.py" hold "$P4" 9402 90
hold=$LASTPID
wait_for 20 grep -q connected=1 "$NK_TMP/atk_hold.log" || fail "attacker did not connect: $(cat "$NK_TMP/atk_hold.log")"

log_count() { # PATTERN N: nkd's log has N lines matching PATTERN
	[ "$(grep -c -- "$1" "$NK_TMP/nkd.log")" = "$2" ]
}
gj() { # GUEST FIELD
	nkctl guests --json | jq -r ".guests[] | select(.name == \"$1\") | $2"
}
refused_from_g() { # expect nkctl ARGS... from G to be refused as a guest's root
	local rc=0 out
	out=$(ip netns exec "$NS_G" timeout 10 "$NKCTL" --socket "$NK_SOCK" "$@" 2>&1) || rc=$?
	[ "$rc" = 3 ] || fail "nkctl $* from the guests' namespace: exit $rc, not refused (3): $out"
	grep -Eq "^nkctl: refused: uid 0 in network namespace of guest '(atk|bystander)' is not the operator$" <<<"$out" ||
		fail "nkctl $* from G: unexpected message: $out"
	log "from G: nkctl $*: $out"
}

# (a) who is the operator
for q in status guests sockets stats; do refused_from_g "$q"; done
refused_from_g evict atk
refused_from_g set atk max_sockets=1
refused_from_g reload
[ "$(gj atk .conns)" -ge 1 ] || fail "the attacker lost its connection to a refused evict"
nkctl status >/dev/null || fail "nkctl status from the test's namespace failed"
out=$(setpriv --reuid=65534 --regid=65534 --clear-groups timeout 10 "$NKCTL" --socket "$NK_SOCK" status --json) ||
	fail "uid nobody, named by 'operator uid=65534', was refused: $out"
jq -e '.pid > 0' <<<"$out" >/dev/null || fail "nkctl status as nobody: $out"
rc=0
out=$(setpriv --reuid=65533 --regid=65533 --clear-groups timeout 10 "$NKCTL" --socket "$NK_SOCK" guests 2>&1) || rc=$?
[ "$rc" = 3 ] && grep -q "uid 65533 is not the operator" <<<"$out" ||
	fail "uid 65533 (not named) was not refused: exit $rc: $out"
log "operator: root here and nobody (named) work; root in G and uid 65533 are refused"

# (b) quota changed at run time
out=$(nkctl set atk max_sockets=2) || fail "nkctl set failed: $out"
log "set: $out"
rc=0
out=$(nkctl set atk max_sockets=zero 2>&1) || rc=$?
[ "$rc" = 4 ] && grep -q "max_sockets must be" <<<"$out" || fail "a bad value was not refused (exit $rc): $out"
rc=0
out=$(nkctl set nosuch weight=2 2>&1) || rc=$?
[ "$rc" = 4 ] || fail "set of an unknown guest: exit $rc: $out"
r=$(GUEST=atk run_guest "$PY" "$HELPERS/nkpy.py" sockets 4 | grep RESULT) || fail "attacker socket program failed"
log "attacker after set max_sockets=2 (holding 1): $r"
[ "$(field opened "$r")" = 1 ] || fail "attacker opened $(field opened "$r") sockets, want 1 (max_sockets=2, 1 held)"
[ "$(field errors "$r")" = ENFILE ] && [ "$(field refused "$r")" = 3 ] ||
	fail "attacker's refused sockets: $(field refused "$r") x $(field errors "$r"), want 3 x ENFILE"
n=$(gj atk .refusals.sockets)
[ "$n" = 3 ] || fail "nkctl guests: refusals.sockets of atk is $n, want 3"
[ "$(gj bystander .refusals.sockets)" = 0 ] || fail "bystander has refusals it did not earn"
nkctl stats | grep -qx 'netkernel_guest_refusals_total{guest="atk",nsm="kernel0",reason="sockets"} 3' ||
	fail "nkctl stats lacks the attacker's sockets refusals: $(nkctl stats | grep refusals)"
nkctl guests | grep -E '^atk ' | grep -q 'sockets=3' || fail "nkctl guests table: $(nkctl guests)"
grep -q "guest atk refused (sockets): max_sockets 2 reached" "$NK_TMP/nkd.log" || fail "no refusal line in nkd's log"
[ "$(grep -c 'guest atk refused (sockets)' "$NK_TMP/nkd.log")" = 1 ] || fail "refusal log lines are not rate-limited"

# (c) evict
out=$(nkctl evict atk) || fail "nkctl evict failed: $out"
log "evict: $out"
wait_for 15 sh -c "! kill -0 $hold" || fail "the evicted attacker's program still runs"
rc=0
wait "$hold" || rc=$?
[ "$rc" != 0 ] || fail "the evicted attacker's connection carried on (exit 0)"
log "attacker program after evict: exit $rc: $(tail -n 1 "$NK_TMP/atk_hold.log")"
atk_sockets_gone() { [ "$(gj atk .sockets)" = 0 ]; }
wait_for 10 atk_sockets_gone || fail "attacker sockets left after evict: $(gj atk .sockets)"
[ "$(gj atk .conns)" = 0 ] || fail "attacker conns left after evict"
[ "$(gj atk .refusals.sockets)" = 3 ] || fail "evict lost the attacker's counters"

# (d) reload: only the attacker's line changes
conf "max_sockets=1" >"$NK_TMP/nkd.conf"
out=$(nkctl reload) || fail "nkctl reload failed: $out"
log "reload: $out"
grep -q "1 guests unchanged, 1 updated" <<<"$out" || fail "reload touched more than the attacker: $out"
r=$(GUEST=atk run_guest "$PY" "$HELPERS/nkpy.py" sockets 3 | grep RESULT) || fail "attacker socket program failed"
[ "$(field opened "$r")" = 1 ] || fail "after reload (max_sockets=1) the attacker opened $(field opened "$r")"

conf "max_sockets=2" >"$NK_TMP/nkd.conf"
kill -HUP "$NK_NKD_PID"
wait_for 10 log_count 'reloaded ' 2 || fail "SIGHUP did not reload"
r=$(GUEST=atk run_guest "$PY" "$HELPERS/nkpy.py" sockets 3 | grep RESULT) || fail "attacker socket program failed"
[ "$(field opened "$r")" = 2 ] || fail "after SIGHUP reload (max_sockets=2) the attacker opened $(field opened "$r")"

conf "max_sockets=zero" >"$NK_TMP/nkd.conf"
rc=0
out=$(nkctl reload 2>&1) || rc=$?
[ "$rc" = 4 ] && grep -Eq "nkd.conf:3: guest atk: max_sockets must be" <<<"$out" ||
	fail "a broken config was not refused with file:line (exit $rc): $out"
log "broken config: $out"
kill -HUP "$NK_NKD_PID"
wait_for 10 log_count 'reload of .* refused' 2 || fail "SIGHUP with a broken config: no refusal logged"
conf "max_sockets=1" "nsm k2 type=kernel" >"$NK_TMP/nkd.conf"
rc=0
out=$(nkctl reload 2>&1) || rc=$?
[ "$rc" = 4 ] && grep -q "NSM changes need a restart" <<<"$out" || fail "an NSM change was not refused (exit $rc): $out"
log "nsm change: $out"
r=$(GUEST=atk run_guest "$PY" "$HELPERS/nkpy.py" sockets 3 | grep RESULT) || fail "attacker socket program failed"
[ "$(field opened "$r")" = 2 ] || fail "a refused reload changed the policy: attacker opened $(field opened "$r"), want 2"
nkd_alive || fail "nkd died"

alive "${BYS_PIDS[-1]}" || log "note: the bystander's probe finished before the last reload (raise BYS_PINGS_OP)"
[ "$(gj bystander .disconnects)" = 0 ] || fail "the bystander was disconnected"
bystander_finish
nk_san_stop
log "ok"
