#!/usr/bin/env bash
# Quotas from nkd's config: guest q has max_sockets=4. A python guest's 5th
# socket() fails with ENFILE (not EMFILE: docs/nkd.md), its 4 sockets still work, and guest g1 works
# at the same time. An unknown guest is refused (unknown_guests deny).
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_cmd curl
topo_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest q nsm=kernel0 uid=0 max_sockets=4
guest g1 nsm=kernel0 uid=0
unknown_guests deny
CONF
start_nkd "$NK_TMP/nkd.conf"
mkdir -p "$NK_TMP/www"
echo quota-ok >"$NK_TMP/www/index.html"
bg_peer http_p "$PY" -m http.server -d "$NK_TMP/www" -b "$P4" 8000
wait_port "$NS_P" 8000

# q opens 5 sockets, connects one, then holds them while g1 works.
GUEST=q NKPY_HOLD=8 bg_guest q "$PY" "$HELPERS/nkpy.py" sockets 5 "$P4" 8000
qp=$LASTPID
wait_for 15 grep -q RESULT "$NK_TMP/q.log" || fail "guest q printed nothing: $(cat "$NK_TMP/q.log")"
r=$(grep RESULT "$NK_TMP/q.log")
log "q: $r"
[ "$(field opened "$r")" = 4 ] || fail "guest q opened $(field opened "$r") sockets with max_sockets=4"
[ "$(field errors "$r")" = ENFILE ] || fail "guest q's 5th socket() failed with $(field errors "$r"), not ENFILE"
[ "$(field connect "$r")" = ok ] || fail "guest q could not use its sockets within quota: $(field connect "$r")"

out=$(run_guest curl -sS -f --max-time 10 "http://$P4:8000/") || fail "guest g1 failed while q was at its quota"
[ "$out" = quota-ok ] || fail "guest g1 got '$out'"
out=$(run_guest "$PY" "$HELPERS/nkpy.py" sockets 8) || fail "guest g1 cannot open 8 sockets"
[ "$(field opened "$out")" = 8 ] || fail "guest g1 is limited too: $out"
wait "$qp" || fail "guest q exited with an error"

rc=0
GUEST=stranger run_guest "$PY" "$HELPERS/nkpy.py" connect "$P4" 8000 >"$NK_TMP/stranger.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || fail "an unknown guest was let in with unknown_guests deny"
log "stranger: $(tr '\n' ' ' <"$NK_TMP/stranger.out")"
log "ok"
