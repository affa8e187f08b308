#!/usr/bin/env bash
# nkctl's JSON, read with json-c and checked with jq:
# (a) a stand-in nkd (tests/tools/fake_nkd.py) answers with what the old
#     hand-written reader could not take: 30 columns, a 3000-character
#     value, \u escapes outside ASCII (a surrogate pair too), nested
#     objects and arrays, null, a reply in several chunks. The table keeps
#     every column and the whole value, the escapes decode to UTF-8, null
#     shows as "-", --json --guest filters and stays valid JSON;
# (b) a real nkd: `status --json` has "epoch" as a string equal to the
#     epoch nkd logged, nested budget objects; "not applicable" is null
#     (an NSM without a device, a listener's remote); --pretty parses and
#     says the same as --json; guests have their "kind" (local here);
#     --guest keeps one guest's rows in guests, sockets and stats; each
#     socket lists its holders with pid and comm, and they are the guest
#     processes that opened them; --version.
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
need_cmd jq

# ---- (a) the reader, against a stand-in nkd
long=$(head -c 3000 /dev/zero | tr '\0' x)
cols=""
for i in $(seq 1 26); do cols="$cols,\"c$i\":$i"; done
cat >"$NK_TMP/answer.json" <<JSON
{"guests":[{"name":"a\u00e9\u20ac\ud83d\ude00","nsm":null,"long":"$long","nested":{"x":0,"y":2,"deep":{"z":3}},"list":[{"pid":7,"comm":"sh"},{"pid":8,"comm":"cat"}]$cols},
 {"name":"b","nsm":"k0","long":"","nested":{"x":0},"list":[]$cols}]}
JSON
jq -e . "$NK_TMP/answer.json" >/dev/null || fail "the test's own answer is not JSON"
bg fake "$PY" "$HELPERS/fake_nkd.py" "$NK_TMP/fake.sock" "$NK_TMP/answer.json"
wait_for 10 test -S "$NK_TMP/fake.sock" || fail "fake nkd did not start"
fk() { timeout 10 "$NKCTL" --socket "$NK_TMP/fake.sock" "$@"; }
fk guests >"$NK_TMP/table" || fail "nkctl guests (fake nkd) failed: $(cat "$NK_TMP/table")"
head -n1 "$NK_TMP/table" | grep -q 'C26$' || fail "table lost columns: $(head -n1 "$NK_TMP/table" | cut -c1-200)"
[ "$(wc -l <"$NK_TMP/table")" = 3 ] || fail "table: want 3 lines: $(cut -c1-100 "$NK_TMP/table")"
row=$(sed -n 2p "$NK_TMP/table")
grep -q "^aé€😀 " <<<"$row" || fail "\\u escapes not decoded: $(cut -c1-60 <<<"$row")"
grep -q " $long " <<<"$row" || fail "the 3000-character value was cut"
grep -q "y=2,deep.z=3" <<<"$row" || fail "nested object cell: $(grep -o 'y=[^ ]*' <<<"$row")"
grep -q "7/sh,8/cat" <<<"$row" || fail "array of objects cell"
[ "$(awk '{print $2}' <<<"$row")" = - ] || fail "null is not shown as '-': $(awk '{print $2}' <<<"$row")"
fk guests --json --guest b >"$NK_TMP/b.json" || fail "--json --guest b failed"
[ "$(jq -c '[.guests[].name]' "$NK_TMP/b.json")" = '["b"]' ] || fail "--guest b: $(cat "$NK_TMP/b.json")"
fk guests --json --guest "aé€😀" | jq -e '.guests[0].nested.deep.z == 3 and (.guests[0].nsm == null) and (.guests[0].long | length) == 3000' >/dev/null ||
	fail "--guest with a UTF-8 name / nested values lost"
fk guests --pretty | jq -e '.guests | length == 2' >/dev/null || fail "--pretty (fake nkd) does not parse"
kill "$LASTPID" 2>/dev/null || true

# ---- (b) a real nkd
"$NKCTL" --version | grep -qx 'nkctl (netkernel) 0.4.0' || fail "nkctl --version: $("$NKCTL" --version 2>&1)"
topo_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest g1 nsm=kernel0 uid=0
guest g2 nsm=kernel0 uid=0
CONF
start_nkd "$NK_TMP/nkd.conf"

# Each guest: a listener and a pid file; g1 also a UDP socket.
listener() { # NAME PORT
	cat >"$NK_TMP/$1.py" <<PYEOF
import os, socket, time
s = socket.socket(); s.bind(("0.0.0.0", $2)); s.listen(4)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
open("$NK_TMP/$1.pid", "w").write(str(os.getpid()))
time.sleep(60)
PYEOF
	GUEST=$1 bg_guest "$1" "$PY" "$NK_TMP/$1.py"
	wait_file "$NK_TMP/$1.pid" 20 || fail "guest $1 did not start: $(cat "$NK_TMP/$1.log")"
}
listener g1 9501
listener g2 9502
p1=$(cat "$NK_TMP/g1.pid")
p2=$(cat "$NK_TMP/g2.pid")

nkctl status --json >"$NK_TMP/status.json" || fail "nkctl status --json failed"
jq -e '.epoch | type == "string"' "$NK_TMP/status.json" >/dev/null || fail "epoch is not a string: $(jq -c .epoch "$NK_TMP/status.json")"
logged=$(sed -n 's/.*epoch \([0-9]*\)$/\1/p' "$NK_TMP/nkd.log" | head -n1)
[ -n "$logged" ] || fail "nkd logged no epoch"
[ "$(jq -r .epoch "$NK_TMP/status.json")" = "$logged" ] ||
	fail "epoch $(jq -r .epoch "$NK_TMP/status.json") != logged $logged"
jq -e '.budget.sockets.limit > 0' "$NK_TMP/status.json" >/dev/null || fail "no nested budget in status"
nkctl status | grep -q '^budget.sockets.limit ' || fail "status table lost nested members"

nkctl nsms --json | jq -e '.nsms[0].dev == null' >/dev/null || fail "kernel NSM's dev is not null: $(nkctl nsms --json)"
# Guests of this host's processes are "local" (VM guests: vm_transport).
nkctl guests --json | jq -e '[.guests[].kind] == ["local", "local"]' >/dev/null ||
	fail "g1 and g2 are not kind local: $(nkctl guests --json | jq -c '[.guests[] | {name, kind}]')"

nkctl sockets --json >"$NK_TMP/sockets.json" || fail "nkctl sockets --json failed"
jq -e '[.sockets[] | select(.state == "LISTEN") | .remote] | length == 2 and all(. == null)' "$NK_TMP/sockets.json" >/dev/null ||
	fail "a listener's remote is not null: $(jq -c '.sockets[] | [.state,.remote]' "$NK_TMP/sockets.json")"
! grep -q '"-"' "$NK_TMP/sockets.json" || fail "nkd still says \"-\": $(cat "$NK_TMP/sockets.json")"

nkctl sockets --pretty >"$NK_TMP/pretty.json" || fail "nkctl sockets --pretty failed"
[ "$(wc -l <"$NK_TMP/pretty.json")" -gt 5 ] || fail "--pretty is not indented"
# The same sockets and holders (counters may move between two queries).
same() { jq -S -c '[.sockets[] | del(.ops, .bytes_tx, .bytes_rx, .errors)] | sort_by(.handle)' "$1"; }
[ "$(same "$NK_TMP/pretty.json")" = "$(same "$NK_TMP/sockets.json")" ] ||
	fail "--pretty says something else than --json: $(same "$NK_TMP/pretty.json") vs $(same "$NK_TMP/sockets.json")"

for cmd in sockets guests; do
	nkctl "$cmd" --json --guest g1 >"$NK_TMP/f.json" || fail "nkctl $cmd --guest g1 failed"
	key=guest
	[ "$cmd" = guests ] && key=name
	jq -e ".$cmd | length > 0 and all(.$key == \"g1\")" "$NK_TMP/f.json" >/dev/null ||
		fail "nkctl $cmd --guest g1: $(cat "$NK_TMP/f.json")"
done
[ "$(nkctl sockets --guest g2 | tail -n +2 | grep -c '^g2 ')" = 2 ] || fail "table with --guest g2: $(nkctl sockets --guest g2)"
nkctl stats --guest g1 | grep -q 'guest="g1"' || fail "stats --guest g1 lost g1"
! nkctl stats --guest g1 | grep -q 'guest="g2"' || fail "stats --guest g1 kept g2"

# Holders: the pid that opened each socket, and its comm from /proc.
for g in g1 g2; do
	pid=$(cat "$NK_TMP/$g.pid")
	comm=$(cat "/proc/$pid/comm")
	jq -e --argjson pid "$pid" --arg comm "$comm" --arg g "$g" \
		'[.sockets[] | select(.guest == $g)] | length == 2 and
		 all(.holders == [{"pid": $pid, "comm": $comm}])' "$NK_TMP/sockets.json" >/dev/null ||
		fail "holders of $g's sockets are not [$pid $comm]: $(jq -c ".sockets[] | select(.guest == \"$g\") | .holders" "$NK_TMP/sockets.json")"
done
nkctl sockets | grep -q "$p1/" || fail "the table shows no holder pid $p1"
nkctl sockets | head -n1 | grep -q HOLDERS || fail "the table has no HOLDERS column"
log "ok (holders g1=$p1 g2=$p2)"
