#!/usr/bin/env bash
# Holding, not naming (issue 6 §2). A victim process of guest "web" holds a
# connection on which the peer sent a secret, and a listener with a client
# waiting. A process of the same guest that holds none of them
# (nk_rawguest thief, attached as "web") tries RECV, SEND, ACCEPT,
# GETPEERNAME and CLOSE on guessed handles (indices 1..8 x generations
# 1..64) and on the victim's real handles (read from nkctl): every one
# must fail with EBADF, the victim must then read the whole secret, the
# peer must get exactly the victim's bytes (nothing injected) and the
# victim must accept the waiting client. Handles are not 1<<20|index and
# differ between runs. Hand-over tokens presented by processes they were
# not made for (a grandchild, an unrelated process, by hand) are refused,
# the real child's is accepted, and the token does not stay readable in
# an exec'd image's /proc/PID/environ. ASan+UBSan nkd, with a bystander.
# timeout: 150
set -eu
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/../lib.sh"
need_rawguest jq
san_nkd_up
BYS_BYTES=$((32 << 20))
bystander_start 9400

SECRET=$((256 << 10))
RG=(ip netns exec "$NS_G" "$TOOLS/nk_rawguest" --socket "$NK_SOCK")

# The peer: sends the secret, then reads what the victim sends until EOF.
cat >"$NK_TMP/peer.py" <<'PY'
import hashlib, random, socket, sys
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
secret = random.Random(4242).randbytes(n)
l = socket.create_server((host, port))
l.settimeout(60)
c, _ = l.accept()
c.sendall(secret)
got = bytearray()
while True:
    d = c.recv(65536)
    if not d:
        break
    got += d
print("RESULT secret_sha=%s got_sha=%s got_len=%d" % (
    hashlib.sha256(secret).hexdigest(), hashlib.sha256(got).hexdigest(),
    len(got)), flush=True)
PY
# The victim (guest web, through the shim).
cat >"$NK_TMP/victim.py" <<'PY'
import hashlib, os, socket, sys, time
peer, port, lport, n, tmp = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
c = socket.create_connection((peer, port))
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("0.0.0.0", lport))
l.listen(8)
open(tmp + "/victim.ready", "w").write("ok")
for _ in range(1200):
    if os.path.exists(tmp + "/victim.go"):
        break
    time.sleep(0.05)
got = bytearray()
while len(got) < n:
    d = c.recv(65536)
    if not d:
        break
    got += d
mine = b"VICTIM-DATA-" * 4096
c.sendall(mine)
c.shutdown(socket.SHUT_WR)
c.close()
l.settimeout(10)
a, _ = l.accept()
hello = a.recv(64).decode(errors="replace")
print("RESULT secret_sha=%s secret_len=%d mine_sha=%s hello=%s" % (
    hashlib.sha256(got).hexdigest(), len(got),
    hashlib.sha256(mine).hexdigest(), hello), flush=True)
PY

bg_peer peer "$PY" "$NK_TMP/peer.py" "$P4" 9500 "$SECRET"
wait_port "$NS_P" 9500 || fail "peer not listening"
GUEST=web bg_guest victim "$PY" "$NK_TMP/victim.py" "$P4" 9500 9501 "$SECRET" "$NK_TMP"
victim=$LASTPID
wait_file "$NK_TMP/victim.ready" 20 || fail "victim did not start: $(tail -n 5 "$NK_TMP/victim.log")"
# A client waits on the victim's listener: the thief's ACCEPTs must not get it.
bg_peer client "$PY" -c '
import socket, sys, time
s = socket.create_connection((sys.argv[1], 9501))
s.sendall(b"CLIENT-HELLO")
time.sleep(30)' "$H4"
client=$LASTPID
sleep 0.5

nkctl sockets --json >"$NK_TMP/sockets.json" || fail "nkctl sockets failed"
mapfile -t vh < <(jq -r '.. | objects | select(.guest? == "web") | .handle' "$NK_TMP/sockets.json")
[ "${#vh[@]}" -ge 2 ] || fail "expected the victim's 2 sockets in nkctl sockets: $(cat "$NK_TMP/sockets.json")"
for h in "${vh[@]}"; do
	[ $((h >> 20)) -gt 1 ] || log "note: handle $h has generation $((h >> 20))"
done
log "victim handles: ${vh[*]}"

r=$("${RG[@]}" --guest web thief 8 64 "${vh[@]}" | grep RESULT) || fail "thief failed"
log "thief: $r"
[ "$(field ok "$r")" = 0 ] || fail "a process that holds no socket got $(field ok "$r") operations through: $r"
[ "$(field recv_bytes "$r")" = 0 ] || fail "thief read $(field recv_bytes "$r") bytes of the victim's connection"
[ "$(field accepted "$r")" = 0 ] || fail "thief accepted a connection on the victim's listener"
[ "$(field ebadf "$r")" -gt 0 ] || fail "thief got no EBADF at all: $r"

touch "$NK_TMP/victim.go"
wait "$victim" || fail "victim failed: $(tail -n 5 "$NK_TMP/victim.log")"
kill "$client" 2>/dev/null || true
for _ in $(seq 50); do grep -q RESULT "$NK_TMP/peer.log" && break; sleep 0.1; done
v=$(grep RESULT "$NK_TMP/victim.log") || fail "no result from the victim"
p=$(grep RESULT "$NK_TMP/peer.log") || fail "no result from the peer"
[ "$(field secret_len "$v")" = "$SECRET" ] || fail "victim read $(field secret_len "$v") of $SECRET secret bytes"
[ "$(field secret_sha "$v")" = "$(field secret_sha "$p")" ] || fail "victim's secret differs from what the peer sent"
[ "$(field got_sha "$p")" = "$(field mine_sha "$v")" ] || fail "peer got other bytes than the victim sent (injected?): $p"
[ "$(field hello "$v")" = CLIENT-HELLO ] || fail "victim did not accept its waiting client: $v"
log "victim: secret intact, nothing injected, its client accepted"

# Handles are not 1<<20|index and differ between runs (fresh guests: index 1).
h1=$("${RG[@]}" --guest hrun1 tokens | sed -n 's/^TOKENS .*handle=\([0-9]*\).*/\1/p')
h2=$("${RG[@]}" --guest hrun2 tokens | sed -n 's/^TOKENS .*handle=\([0-9]*\).*/\1/p')
log "first handle of two runs: $h1 $h2"
[ -n "$h1" ] && [ -n "$h2" ] || fail "no handle from the token runs"
[ "$h1" != $((1 << 20 | 1)) ] || [ "$h2" != $((1 << 20 | 1)) ] || fail "handles are 1<<20|1 again: guessable"
[ "$h1" != "$h2" ] || fail "two runs got the same handle $h1"

# Tokens: wrong processes refused, the real child accepted.
"${RG[@]}" --guest web tokens 4 >"$NK_TMP/tokens.log" 2>&1 &
tp=$!
wait_for 10 grep -q '^RESULT' "$NK_TMP/tokens.log" || fail "tokens: $(cat "$NK_TMP/tokens.log")"
r=$(grep '^RESULT' "$NK_TMP/tokens.log")
log "tokens: $r"
[ "$(field grandchild_fork "$r")" = refused ] || fail "a fork token was claimed by a grandchild: $r"
[ "$(field grandchild_exec "$r")" = refused ] || fail "an exec token was claimed by another process: $r"
[ "$(field child_fork "$r")" = ok ] || fail "the real child could not claim its fork token: $r"
wait_for 5 grep -q '^TOKENS exec=[0-9]*$' "$NK_TMP/tokens.log" || fail "no second token"
tok=$(sed -n 's/^TOKENS exec=\([0-9]*\)$/\1/p' "$NK_TMP/tokens.log")
"${RG[@]}" --guest web token "$tok" >"$NK_TMP/stolen.log" 2>&1 || fail "an unrelated process inherited with a stolen token: $(cat "$NK_TMP/stolen.log")"
log "stolen exec token from an unrelated process: $(cat "$NK_TMP/stolen.log")"
wait "$tp" || true

# An exec'd image does not keep the token readable in /proc/PID/environ.
GUEST=web bg_guest execd "$PY" -c '
import os, socket
s = socket.socket()
s.bind(("0.0.0.0", 0))
os.set_inheritable(s.fileno(), True)
os.execv("/bin/sleep", ["sleep", "3"])'
ep=$LASTPID
wait_for 10 sh -c "tr '\0' '\n' </proc/$ep/environ | grep -q '^NK_INHERIT_TOKEN='" ||
	fail "the exec'd image got no NK_INHERIT_TOKEN (no hand-over?)"
sleep 0.5
if tr '\0' '\n' <"/proc/$ep/environ" | grep -q '^NK_INHERIT_TOKEN=[0-9]'; then
	tok=$(tr '\0' '\n' <"/proc/$ep/environ" | sed -n 's/^NK_INHERIT_TOKEN=//p')
	log "token readable in /proc/$ep/environ; presenting it from another process"
	"${RG[@]}" --guest web token "$tok" >/dev/null 2>&1 || fail "a token read from /proc/$ep/environ was accepted"
fi
wait "$ep" || true

bystander_finish
nk_san_stop
log "PASS"
