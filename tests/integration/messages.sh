#!/usr/bin/env bash
# Messages that say what happened (issue 9):
# (a) a refused guest says "netkernel: refused: " and nkd's reason, both
#     through nkrun and with the shim alone (LD_PRELOAD, no nkrun);
# (b) a control connection nkd closes before answering (no HELLO within
#     hello_timeout) gets the reason too: an early refusal (docs/abi.md);
# (c) a guest at its socket quota (max_sockets) gets ENFILE on socket(),
#     never EMFILE (its own descriptor table is not full), bind works on
#     the sockets it holds, a closed socket's slot is usable again; nkd
#     logs the refusals rate-limited: one line naming the guest and the
#     limit for 300 refusals (at most one more per 10 s they took), and
#     nkctl counts every one under the guest's refusals;
# (d) redis-server, whose listen code says "unable to bind socket, errno: N"
#     when socket() fails (the issue's "EMFILE even on bind"), gets errno 23
#     (ENFILE) at max_sockets=1 for its second listener, not 24 (EMFILE);
# (e) a guest at max_conns=1: a second process says "netkernel: refused:
#     guest 'c' already has its max_conns of 1 processes attached", not
#     "Too many open files".
# timeout: 60
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_netns "$@"
need_netkernel
need_nk
need_cmd jq
topo_up
cat >"$NK_TMP/nkd.conf" <<CONF
nsm kernel0 type=kernel
guest q nsm=kernel0 uid=0 max_sockets=4
guest r nsm=kernel0 uid=0 max_sockets=1
guest c nsm=kernel0 uid=0 max_conns=1
hello_timeout 1
unknown_guests deny
CONF
start_nkd "$NK_TMP/nkd.conf"
why="guest 'stranger' is not in nkd's config"

# (a) through nkrun: it asks nkd before running the program.
rc=0
GUEST=stranger run_guest "$PY" -c 'import socket; socket.socket()' >"$NK_TMP/a1.out" 2>&1 || rc=$?
log "nkrun: rc=$rc: $(cat "$NK_TMP/a1.out")"
[ "$rc" = 125 ] || fail "nkrun for a refused guest exited $rc, not 125"
grep -qF "netkernel: refused: $why" "$NK_TMP/a1.out" || fail "nkrun did not say 'netkernel: refused: $why': $(cat "$NK_TMP/a1.out")"
# The shim alone.
rc=0
timeout 20 ip netns exec "$NS_G" env LD_PRELOAD="$NKSHIM" NK_GUEST=stranger NK_SOCKET="$NK_SOCK" \
	"$PY" -c 'import socket; socket.socket()' >"$NK_TMP/a2.out" 2>&1 || rc=$?
log "shim: rc=$rc: $(head -n1 "$NK_TMP/a2.out")"
grep -qF "netkernel: refused: $why" "$NK_TMP/a2.out" || fail "the shim did not say 'netkernel: refused: $why': $(cat "$NK_TMP/a2.out")"
! grep -q "cannot reach nkd" "$NK_TMP/a2.out" || fail "the shim calls a refusal unreachable: $(cat "$NK_TMP/a2.out")"

# (b) a client that says nothing: nkd closes it after hello_timeout, with why.
"$PY" - "$NK_SOCK" >"$NK_TMP/b.out" <<'PYEOF' || fail "silent client: $(cat "$NK_TMP/b.out")"
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.settimeout(20)
m = s.recv(4096)
typ, ln, seq, status = struct.unpack_from("=IIQi", m)
print("type=%d seq=%d status=%d why=%s" % (typ, seq, status, m[32:].decode()))
PYEOF
log "silent client: $(cat "$NK_TMP/b.out")"
grep -q "^type=2 seq=0 status=-110 why=no HELLO within 1s (hello_timeout)$" "$NK_TMP/b.out" ||
	fail "no early refusal for a silent client: $(cat "$NK_TMP/b.out")"

# (c) the socket quota.
GUEST=q run_guest "$PY" "$HELPERS/quota_probe.py" 4 300 >"$NK_TMP/c.out" 2>&1 || fail "quota probe failed: $(cat "$NK_TMP/c.out")"
r=$(grep RESULT "$NK_TMP/c.out") || fail "quota probe printed nothing: $(cat "$NK_TMP/c.out")"
log "q: $r"
expect() { [ "$(field "$1" "$r")" = "$2" ] || fail "$1=$(field "$1" "$r"), want $2 ($r)"; }
expect opened 4
expect socket_errors ENFILE
expect refused 300
expect bind ok
expect after_close ok
lines=$(grep -c "guest q refused (sockets): max_sockets 4 reached" "$NK_TMP/nkd.log" || true)
most=$((1 + $(field secs "$r") / 10))
log "nkd logged $lines line(s) for 300 refusals in $(field secs "$r") s"
{ [ "$lines" -ge 1 ] && [ "$lines" -le "$most" ]; } ||
	fail "nkd logged $lines lines for 300 refusals (want 1..$most): $(grep 'refused (sockets)' "$NK_TMP/nkd.log" | head -5)"
! grep -q "EMFILE" "$NK_TMP/nkd.log" || fail "nkd's log speaks of EMFILE"
n=$(nkctl guests --json --guest q | jq '.guests[0].refusals.sockets')
[ "$n" = 300 ] || fail "nkctl counts $n socket refusals for q, want 300"

# (d) a real program's view.
if command -v redis-server >/dev/null; then
	rc=0
	GUEST=r NK_CMD_TIMEOUT=20 run_guest redis-server --port 6390 --bind '* -::*' --save "" \
		--appendonly no >"$NK_TMP/redis.out" 2>&1 || rc=$?
	line=$(grep "unable to bind socket" "$NK_TMP/redis.out" | head -n1)
	log "redis (exit $rc): ${line#*# }"
	grep -q "unable to bind socket, errno: 23$" <<<"$line" ||
		fail "redis at max_sockets=1: $(tail -n 3 "$NK_TMP/redis.out")"
else
	log "redis-server missing: (d) not run"
fi

# (e) max_conns.
GUEST=c bg_guest c1 "$PY" -c 'import socket, time; s = socket.socket(); print("ATTACHED", flush=True); time.sleep(30)'
wait_for 20 grep -q ATTACHED "$NK_TMP/c1.log" || fail "first process of c: $(cat "$NK_TMP/c1.log")"
rc=0
GUEST=c run_guest "$PY" -c 'import socket; socket.socket()' >"$NK_TMP/e.out" 2>&1 || rc=$?
log "second process of c: rc=$rc: $(head -n1 "$NK_TMP/e.out")"
grep -qF "netkernel: refused: guest 'c' already has its max_conns of 1 processes attached" "$NK_TMP/e.out" ||
	fail "max_conns refusal: $(cat "$NK_TMP/e.out")"
! grep -qi "too many open files" "$NK_TMP/e.out" || fail "max_conns shows as EMFILE: $(cat "$NK_TMP/e.out")"
log "ok"
